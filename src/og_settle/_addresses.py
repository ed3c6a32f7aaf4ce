"""Deprecated alias, kept so older imports keep working: network facts live in :mod:`og_settle._networks`, their
one home, and og-settle itself imports them from there."""

from og_settle._networks import (
    BASE_SEPOLIA_CAIP2,
    BASE_SEPOLIA_CHAIN_ID,
    DETERMINISTIC_DEPLOYER,
    OPG_ADDRESS,
    OPG_DECIMALS,
    PERMIT2_ADDRESS,
    PERMIT2_SALT,
    X402_EXACT_PERMIT2_PROXY,
    X402_UPTO_PERMIT2_PROXY,
)

__all__ = [
    "BASE_SEPOLIA_CAIP2",
    "BASE_SEPOLIA_CHAIN_ID",
    "DETERMINISTIC_DEPLOYER",
    "OPG_ADDRESS",
    "OPG_DECIMALS",
    "PERMIT2_ADDRESS",
    "PERMIT2_SALT",
    "X402_EXACT_PERMIT2_PROXY",
    "X402_UPTO_PERMIT2_PROXY",
]
