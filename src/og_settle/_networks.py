"""The one home of network facts: the chains og-settle settles on and the canonical contracts on them.

Two named networks exist, Base Sepolia (``"base-sepolia"``, ``eip155:84532``, the default) and Base mainnet
(``"base"``, ``eip155:8453``, where OpenGradient's SDK pays). Both carry the same canonical contracts, at the
same addresses on every chain: Uniswap's Permit2, the x402 Permit2 proxies every stock x402 client names as
its spender, and the deterministic deployment proxy. Only the tokens' addresses differ.

Look a network up with :func:`network` by name, CAIP-2 id or chain id::

    network("base").opg                     # '0xFbC2051AE2265686a469421b2C5A2D5462FbF5eB'
    network("eip155:84532").name            # 'base-sepolia'
    network(8453).caip2                     # 'eip155:8453'
    network("base").asset("USDC").eip712_name   # 'USD Coin'

**Assets.** Each network lists the ERC-20 tokens it pays in (:class:`Asset`): OPG (Permit2 only) and USDC
(EIP-3009 ``transferWithAuthorization``, x402's default for stablecoins, and Permit2). An operator adds tokens
with an assets file (:func:`load_assets`, TOML or JSON) and :meth:`Network.with_assets`::

    [[asset]]
    network = "base-sepolia"
    symbol = "EURC"
    address = "0x808456652fdb597867f38412077A9182bf77359F"
    decimals = 6
    name = "EURC"          # EIP-712 domain name (required for eip3009)
    version = "2"          # EIP-712 domain version (required for eip3009)
    transfer_methods = ["eip3009", "permit2"]
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

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
USDC_DECIMALS: Final = 6

# How a token moves in an x402 payment (the wire value of ``extra.assetTransferMethod``): EIP-3009
# ``transferWithAuthorization`` (x402's default when ``assetTransferMethod`` is absent), or Permit2.
EIP3009: Final = "eip3009"
PERMIT2: Final = "permit2"
TRANSFER_METHODS: Final[tuple[str, ...]] = (EIP3009, PERMIT2)

# --- per-network facts -------------------------------------------------------------------------------------

BASE_SEPOLIA_CHAIN_ID: Final = 84532
BASE_SEPOLIA_CAIP2: Final = "eip155:84532"
BASE_SEPOLIA_OPG: Final = "0x240b09731D96979f50B2C649C9CE10FcF9C7987F"

BASE_CHAIN_ID: Final = 8453
BASE_CAIP2: Final = "eip155:8453"
BASE_OPG: Final = "0xFbC2051AE2265686a469421b2C5A2D5462FbF5eB"

# Circle's USDC (6 decimals, EIP-3009 and EIP-2612 over the EIP-712 domain {name, "2", chainId, token}).
BASE_SEPOLIA_USDC: Final = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
BASE_USDC: Final = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"

# OPG on the default network (Base Sepolia); code that serves several networks reads ``Network.opg`` instead.
OPG_ADDRESS: Final = BASE_SEPOLIA_OPG


@dataclass(frozen=True, slots=True)
class Asset:
    """One ERC-20 token a network pays in.

    Attributes:
        symbol: a short name, unique on its network (``"OPG"``, ``"USDC"``); looked up case-insensitively.
        address: the token's checksummed address.
        decimals: the token's decimals.
        eip712_name: the token's EIP-712 domain name (x402 ``extra.name``); required for EIP-3009.
        eip712_version: the token's EIP-712 domain version (x402 ``extra.version``); required for EIP-3009.
        transfer_methods: how payments move it, preferred first: ``"eip3009"`` and/or ``"permit2"``.
    """

    symbol: str
    address: str
    decimals: int
    eip712_name: str | None
    eip712_version: str | None
    transfer_methods: tuple[str, ...]

    def __post_init__(self) -> None:
        from og_settle._hex import parse_address

        where = f"asset {self.symbol!r}"
        if not isinstance(self.symbol, str) or not self.symbol.strip():
            raise InvalidInput(f"asset symbol: expected a non-empty string, got {self.symbol!r}")
        object.__setattr__(self, "address", parse_address(self.address, f"{where}: address"))
        if not isinstance(self.decimals, int) or isinstance(self.decimals, bool) or not 0 <= self.decimals <= 77:
            raise InvalidInput(f"{where}: decimals: expected an integer from 0 to 77, got {self.decimals!r}")
        methods = tuple(self.transfer_methods)
        if not methods or len(set(methods)) != len(methods) or any(m not in TRANSFER_METHODS for m in methods):
            raise InvalidInput(
                f"{where}: transfer_methods: expected distinct values from {list(TRANSFER_METHODS)}, "
                f"got {list(methods)}"
            )
        object.__setattr__(self, "transfer_methods", methods)
        for label, value in (("name", self.eip712_name), ("version", self.eip712_version)):
            if value is not None and not isinstance(value, str):
                raise InvalidInput(f"{where}: {label}: expected a string, got {type(value).__name__}")
        if EIP3009 in methods and (not self.eip712_name or not self.eip712_version):
            raise InvalidInput(f"{where}: eip3009 needs the token's EIP-712 name and version")

    def supports(self, method: str) -> bool:
        """Whether payments may move this token with ``method`` (``"eip3009"`` or ``"permit2"``)."""
        return method in self.transfer_methods

    def extra(self, method: str | None = None) -> dict[str, Any]:
        """x402 ``PaymentRequirements.extra`` for paying with ``method`` (default: the preferred one).

        EIP-3009 gives ``{name, version}`` exactly as the stock SDK's resource server does (no
        ``assetTransferMethod``: its absence means EIP-3009); Permit2 gives ``{assetTransferMethod: "permit2"}``
        plus the EIP-712 name and version when known."""
        method = method if method is not None else self.transfer_methods[0]
        if method not in self.transfer_methods:
            raise InvalidInput(
                f"asset {self.symbol}: {method!r} is not one of its transfer methods {list(self.transfer_methods)}"
            )
        extra: dict[str, Any] = {} if method == EIP3009 else {"assetTransferMethod": PERMIT2}
        if self.eip712_name is not None:
            extra["name"] = self.eip712_name
        if self.eip712_version is not None:
            extra["version"] = self.eip712_version
        return extra

    def to_json(self) -> dict[str, Any]:
        """``{symbol, address, decimals, name?, version?, transferMethods}`` (as ``/supported`` lists it)."""
        body: dict[str, Any] = {"symbol": self.symbol, "address": self.address, "decimals": self.decimals}
        if self.eip712_name is not None:
            body["name"] = self.eip712_name
        if self.eip712_version is not None:
            body["version"] = self.eip712_version
        body["transferMethods"] = list(self.transfer_methods)
        return body


def _opg(address: str) -> Asset:
    return Asset("OPG", address, OPG_DECIMALS, "OpenGradient", "1", (PERMIT2,))


def _usdc(address: str, eip712_name: str) -> Asset:
    return Asset("USDC", address, USDC_DECIMALS, eip712_name, "2", (EIP3009, PERMIT2))


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
        assets: the tokens payments may use, OPG and USDC by default, plus any an operator adds.
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
    assets: tuple[Asset, ...] = ()

    @property
    def caip2(self) -> str:
        """The CAIP-2 id x402 uses for this network (``"eip155:<chain id>"``)."""
        return f"eip155:{self.chain_id}"

    @property
    def opg_decimals(self) -> int:
        """OPG's decimals on this network."""
        return OPG_DECIMALS

    @property
    def usdc(self) -> str:
        """USDC's address on this network (6 decimals, EIP-3009)."""
        return self.asset("USDC").address

    def asset(self, key: str) -> Asset:
        """The asset with symbol (case-insensitive) or address ``key``.

        Raises:
            InvalidInput: the network lists no such asset, with the ones it lists.
        """
        text = key.strip()
        for candidate in self.assets:
            if text.lower() in (candidate.symbol.lower(), candidate.address.lower()):
                return candidate
        known = ", ".join(f"{a.symbol} ({a.address})" for a in self.assets)
        raise InvalidInput(f"asset: {key!r} is not an asset of {self.name}; known: {known}")

    def find_asset(self, address: str) -> Asset | None:
        """The asset at ``address`` (any case), or None."""
        return next((a for a in self.assets if a.address.lower() == address.lower()), None)

    def with_assets(self, extra: Iterable[Asset]) -> Network:
        """This network with ``extra`` assets added after its own.

        Raises:
            InvalidInput: an added asset reuses a listed symbol or address.
        """
        assets = list(self.assets)
        for added in extra:
            for known in assets:
                if added.symbol.lower() == known.symbol.lower() or added.address == known.address:
                    raise InvalidInput(
                        f"asset {added.symbol} ({added.address}): {self.name} already lists "
                        f"{known.symbol} ({known.address})"
                    )
            assets.append(added)
        return replace(self, assets=tuple(assets))

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
    assets=(_opg(BASE_SEPOLIA_OPG), _usdc(BASE_SEPOLIA_USDC, "USDC")),
)
BASE: Final = Network(
    name="base",
    label="Base",
    chain_id=BASE_CHAIN_ID,
    opg=BASE_OPG,
    rpc_env="BASE_MAINNET_RPC_URL",
    assets=(_opg(BASE_OPG), _usdc(BASE_USDC, "USD Coin")),
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


_ASSET_KEYS: Final = frozenset({"network", "symbol", "address", "decimals", "name", "version", "transfer_methods"})


def _asset_entry(entry: Any, where: str) -> tuple[str, Asset]:
    if not isinstance(entry, Mapping):
        raise InvalidInput(f"{where}: expected a table/object, got {type(entry).__name__}")
    unknown = sorted(set(entry) - _ASSET_KEYS)
    if unknown:
        raise InvalidInput(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_ASSET_KEYS))})")
    for key in ("network", "symbol", "address", "decimals", "transfer_methods"):
        if key not in entry:
            raise InvalidInput(f"{where}: {key}: missing")
    methods = entry["transfer_methods"]
    if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
        raise InvalidInput(f"{where}: transfer_methods: expected a list of strings")
    try:
        known = network(entry["network"])
        asset = Asset(
            symbol=entry["symbol"],
            address=entry["address"],
            decimals=entry["decimals"],
            eip712_name=entry.get("name"),
            eip712_version=entry.get("version"),
            transfer_methods=tuple(methods),
        )
    except InvalidInput as err:
        raise InvalidInput(f"{where}: {err}") from None
    return known.name, asset


def load_assets(path: str | Path) -> dict[str, tuple[Asset, ...]]:
    """The operator's added assets by network name, from a TOML file (``[[asset]]`` tables) or a JSON file
    (``{"asset": [...]}`` or a list); each entry has ``network``, ``symbol``, ``address``, ``decimals``,
    ``transfer_methods`` and, for EIP-3009, ``name`` and ``version``.

    Raises:
        InvalidInput: the file cannot be read or parsed, or an entry is invalid (named by its position).
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInput(f"{file}: cannot read the assets file: {err}") from None
    data: Any
    try:
        data = json.loads(text) if file.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise InvalidInput(f"{file}: not valid {'JSON' if file.suffix.lower() == '.json' else 'TOML'}: {err}") from None
    entries = data.get("asset", []) if isinstance(data, Mapping) else data
    if not isinstance(entries, list):
        raise InvalidInput(f"{file}: expected a list of assets under 'asset'")
    added: dict[str, list[Asset]] = {}
    for index, entry in enumerate(entries):
        where = f"{file}: asset[{index}]"
        name, asset = _asset_entry(entry, where)
        try:  # a symbol or address listed already, built in or earlier in the file
            network(name).with_assets([*added.get(name, []), asset])
        except InvalidInput as err:
            raise InvalidInput(f"{where}: {err}") from None
        added.setdefault(name, []).append(asset)
    return {name: tuple(assets) for name, assets in added.items()}


def configured_network(key: str | int, assets_file: str | Path | None = None) -> Network:
    """:func:`network` with the operator's assets from ``assets_file`` (when given) added."""
    known = network(key)
    if assets_file is None:
        return known
    return known.with_assets(load_assets(assets_file).get(known.name, ()))
