"""og-settle: on-chain settlement for paid, TEE-verified LLM inference."""

from og_settle._addresses import (
    BASE_SEPOLIA_CHAIN_ID,
    DETERMINISTIC_DEPLOYER,
    OPG_ADDRESS,
    OPG_DECIMALS,
    PERMIT2_ADDRESS,
)
from og_settle._attestation import (
    Eip712Domain,
    IndividualSettlement,
    InferenceAttestation,
    MetadataSettlement,
    TeeKey,
    TeeRegistration,
    settlement_domain,
    tee_id_for,
    tee_registry_domain,
    tee_signer_for,
)
from og_settle._errors import InvalidInput, InvariantViolation, ToolchainError

__all__ = [
    "BASE_SEPOLIA_CHAIN_ID",
    "DETERMINISTIC_DEPLOYER",
    "OPG_ADDRESS",
    "OPG_DECIMALS",
    "PERMIT2_ADDRESS",
    "Eip712Domain",
    "IndividualSettlement",
    "InferenceAttestation",
    "InvalidInput",
    "InvariantViolation",
    "MetadataSettlement",
    "TeeKey",
    "TeeRegistration",
    "ToolchainError",
    "settlement_domain",
    "tee_id_for",
    "tee_registry_domain",
    "tee_signer_for",
]
