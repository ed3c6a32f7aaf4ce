"""Canonical Base Sepolia facts that og-settle interoperates with (chain id 84532)."""

from __future__ import annotations

from typing import Final

BASE_SEPOLIA_CHAIN_ID: Final = 84532
BASE_SEPOLIA_CAIP2: Final = "eip155:84532"

PERMIT2_ADDRESS: Final = "0x000000000022D473030F116dDEE9F6B43aC78BA3"
# Permit2's canonical CREATE2 salt; with the deterministic deployer it puts Permit2 at PERMIT2_ADDRESS.
PERMIT2_SALT: Final = bytes.fromhex("0000000000000000000000000000000000000000d3af2663da51c10215000000")

OPG_ADDRESS: Final = "0x240b09731D96979f50B2C649C9CE10FcF9C7987F"
OPG_DECIMALS: Final = 18

# Arachnid's deterministic deployment proxy: calldata = salt (32 bytes) ++ initcode.
DETERMINISTIC_DEPLOYER: Final = "0x4e59b44847b379578588920cA78FbF26c0B4956C"

# The x402 reference exact-scheme Permit2 proxy, for comparison only.
X402_EXACT_PERMIT2_PROXY: Final = "0x402085c248EeA27D92E8b30b2C58ed07f9E20001"
