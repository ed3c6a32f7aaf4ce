"""og-settle: on-chain settlement for paid, TEE-verified LLM inference."""

from og_settle._addresses import (
    BASE_SEPOLIA_CHAIN_ID,
    DETERMINISTIC_DEPLOYER,
    OPG_ADDRESS,
    OPG_DECIMALS,
    PERMIT2_ADDRESS,
)
from og_settle._errors import InvalidInput, InvariantViolation, ToolchainError

__all__ = [
    "BASE_SEPOLIA_CHAIN_ID",
    "DETERMINISTIC_DEPLOYER",
    "OPG_ADDRESS",
    "OPG_DECIMALS",
    "PERMIT2_ADDRESS",
    "InvalidInput",
    "InvariantViolation",
    "ToolchainError",
]
