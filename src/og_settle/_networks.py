"""The one home of network facts: the chains og-settle settles on and the canonical contracts on them.

Two named networks exist, Base Sepolia (``"base-sepolia"``, ``eip155:84532``, the default) and Base mainnet
(``"base"``, ``eip155:8453``, where OpenGradient's SDK pays). Both carry the same canonical contracts, at the
same addresses on every chain: Uniswap's Permit2, the x402 Permit2 proxies every stock x402 client names as
its spender, and the deterministic deployment proxy. Only the OPG token's address differs.

Look a network up with :func:`network` by name, CAIP-2 id or chain id::

    network("base").opg                     # '0xFbC2051AE2265686a469421b2C5A2D5462FbF5eB'
    network("eip155:84532").name            # 'base-sepolia'
    network(8453).caip2                     # 'eip155:8453'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from og_settle._errors import InvalidInput

# --- canonical contracts, the same address on every chain -----------------------------------------------

PERMIT2_ADDRESS: Final = "0x000000000022D473030F116dDEE9F6B43aC78BA3"
# Permit2's canonical CREATE2 salt; with the deterministic deployer it puts Permit2 at PERMIT2_ADDRESS.
PERMIT2_SALT: Final = bytes.fromhex("0000000000000000000000000000000000000000d3af2663da51c10215000000")

# Arachnid's deterministic deployment proxy: calldata = salt (32 bytes) ++ initcode.
DETERMINISTIC_DEPLOYER: Final = "0x4e59b44847b379578588920cA78FbF26c0B4956C"

# The x402 canonical Permit2 proxies (CREATE2 through DETERMINISTIC_DEPLOYER). Every stock x402 client hard-codes
# one of them as the spender of its Permit2 authorisation, so a stock payload settles only through them.
X402_EXACT_PERMIT2_PROXY: Final = "0x402085c248EeA27D92E8b30b2C58ed07f9E20001"
X402_UPTO_PERMIT2_PROXY: Final = "0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002"

OPG_DECIMALS: Final = 18

# --- per-network facts -------------------------------------------------------------------------------------

BASE_SEPOLIA_CHAIN_ID: Final = 84532
BASE_SEPOLIA_CAIP2: Final = "eip155:84532"
BASE_SEPOLIA_OPG: Final = "0x240b09731D96979f50B2C649C9CE10FcF9C7987F"

BASE_CHAIN_ID: Final = 8453
BASE_CAIP2: Final = "eip155:8453"
BASE_OPG: Final = "0xFbC2051AE2265686a469421b2C5A2D5462FbF5eB"

# OPG on the default network (Base Sepolia); code that serves several networks reads ``Network.opg`` instead.
OPG_ADDRESS: Final = BASE_SEPOLIA_OPG


@dataclass(frozen=True, slots=True)
class Network:
    """One EVM network og-settle settles on, with the canonical contracts on it.

    Attributes:
        name: the short name used on the command line (``"base-sepolia"``, ``"base"``).
        label: a human-readable name (``"Base Sepolia"``).
        chain_id: the EIP-155 chain id.
        opg: the OPG token's address (18 decimals).
        rpc_env: the environment variable that names a real RPC endpoint for this network.
        permit2: Uniswap Permit2 (the same address on every chain).
        x402_exact_proxy: the x402 exact-scheme Permit2 proxy.
        x402_upto_proxy: the x402 upto-scheme Permit2 proxy.
        deterministic_deployer: the CREATE2 deployment proxy every canonical address above comes from.
    """

    name: str
    label: str
    chain_id: int
    opg: str
    rpc_env: str
    permit2: str = PERMIT2_ADDRESS
    x402_exact_proxy: str = X402_EXACT_PERMIT2_PROXY
    x402_upto_proxy: str = X402_UPTO_PERMIT2_PROXY
    deterministic_deployer: str = DETERMINISTIC_DEPLOYER

    @property
    def caip2(self) -> str:
        """The CAIP-2 id x402 uses for this network (``"eip155:<chain id>"``)."""
        return f"eip155:{self.chain_id}"

    @property
    def opg_decimals(self) -> int:
        """OPG's decimals on this network."""
        return OPG_DECIMALS

    def x402_proxy(self, scheme: str) -> str:
        """The canonical x402 Permit2 proxy for ``scheme`` (``"exact"`` or ``"upto"``)."""
        if scheme == "exact":
            return self.x402_exact_proxy
        if scheme == "upto":
            return self.x402_upto_proxy
        raise InvalidInput(f"scheme: expected 'exact' or 'upto', got {scheme!r}")


BASE_SEPOLIA: Final = Network(
    name="base-sepolia",
    label="Base Sepolia",
    chain_id=BASE_SEPOLIA_CHAIN_ID,
    opg=BASE_SEPOLIA_OPG,
    rpc_env="BASE_SEPOLIA_RPC_URL",
)
BASE: Final = Network(
    name="base",
    label="Base",
    chain_id=BASE_CHAIN_ID,
    opg=BASE_OPG,
    rpc_env="BASE_MAINNET_RPC_URL",
)

NETWORKS: Final[tuple[Network, ...]] = (BASE_SEPOLIA, BASE)
DEFAULT_NETWORK: Final = BASE_SEPOLIA
NETWORK_NAMES: Final[tuple[str, ...]] = tuple(n.name for n in NETWORKS)


def network(key: str | int) -> Network:
    """The named network for a short name (``"base"``), a CAIP-2 id (``"eip155:8453"``) or a chain id.

    Raises:
        InvalidInput: the key names no network og-settle knows, with the known ones listed.
    """
    for candidate in NETWORKS:
        if isinstance(key, int) and not isinstance(key, bool):
            if candidate.chain_id == key:
                return candidate
        elif isinstance(key, str):
            text = key.strip()
            if text in (candidate.name, candidate.caip2) or text == str(candidate.chain_id):
                return candidate
    known = ", ".join(f"{n.name} ({n.caip2})" for n in NETWORKS)
    raise InvalidInput(f"network: unknown network {key!r}; known: {known}")
