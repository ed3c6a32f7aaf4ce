"""Revert data -> the contracts' named errors -> x402 reason codes.

A revert carries a 4-byte selector and ABI-encoded arguments. ``decode_revert`` names it from the ABIs of
og-settle's contracts plus the errors of the contracts they call (Permit2, OpenZeppelin ERC-20 and access
control), and ``x402_reason`` maps a payment failure to the reason codes the x402 SDKs use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final

from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError

from og_settle._hex import keccak256

__all__ = [
    "X402_REASONS",
    "ContractRevert",
    "NamedError",
    "decode_revert",
    "error_table",
    "x402_reason",
]

# Errors raised by contracts that og-settle's contracts call, written as their Solidity signatures.
# Permit2 (SignatureTransfer, SignatureVerification, PermitErrors), OpenZeppelin 5 (ERC-20, AccessControl,
# Pausable, ReentrancyGuard, ECDSA, MerkleProof, SafeERC20), and Solidity's built-in Error/Panic.
_EXTERNAL_ERRORS: Final = (
    "InvalidSignature()",
    "InvalidSigner()",
    "InvalidContractSignature()",
    "InvalidSignatureLength()",
    "SignatureExpired(uint256)",
    "InvalidNonce()",
    "InvalidAmount(uint256)",
    "LengthMismatch()",
    "ERC20InsufficientBalance(address,uint256,uint256)",
    "ERC20InsufficientAllowance(address,uint256,uint256)",
    "ERC20InvalidSender(address)",
    "ERC20InvalidReceiver(address)",
    "SafeERC20FailedOperation(address)",
    "AccessControlUnauthorizedAccount(address,bytes32)",
    "EnforcedPause()",
    "ExpectedPause()",
    "ReentrancyGuardReentrantCall()",
    "ECDSAInvalidSignature()",
    "ECDSAInvalidSignatureLength(uint256)",
    "ECDSAInvalidSignatureS(bytes32)",
    "MerkleProofInvalidMultiproof()",
    "Error(string)",
    "Panic(uint256)",
)

# og_settle._x402_verify.reason_for_revert maps the facilitator's and Permit2's errors to x402 reason codes. These add
# the errors it leaves at permit2_simulation_failed: the token's own (OpenZeppelin ERC-20) and token checks.
X402_REASONS: Final[Mapping[str, str]] = {
    "ERC20InsufficientBalance": "permit2_insufficient_balance",
    "ERC20InsufficientAllowance": "permit2_allowance_required",
    "TokenHasNoCode": "permit2_token_mismatch",
    "TransferShortfall": "permit2_token_mismatch",
    "ZeroOwner": "invalid_payload",
    "FieldNotInWitness": "invalid_payload",
}
_DEFAULT_X402_REASON: Final = "permit2_simulation_failed"


@dataclass(frozen=True, slots=True)
class NamedError:
    """A decoded revert.

    Attributes:
        name: the error's name (``Error`` for a revert string, ``Panic`` for a panic code, ``unknown`` when
            the selector is not known, ``empty`` when the revert carried no data, for example out of gas).
        args: the decoded arguments in declaration order, as (name, value) pairs; bytes as ``0x`` hex.
        selector: the 4-byte selector (empty for ``empty``).
        data: the full revert data.
    """

    name: str
    args: tuple[tuple[str, Any], ...] = ()
    selector: bytes = b""
    data: bytes = b""

    def arg(self, name: str) -> Any:
        """The argument called ``name``."""
        for key, value in self.args:
            if key == name:
                return value
        raise KeyError(f"{self.name} has no argument {name!r}")

    def __str__(self) -> str:
        if not self.args:
            return f"{self.name}()"
        return f"{self.name}(" + ", ".join(f"{key}={value}" for key, value in self.args) + ")"


class ContractRevert(RuntimeError):
    """A call or transaction reverted with ``error`` (a named error of the contract, when known).

    Attributes:
        error: the decoded revert.
        x402_reason: the x402 reason code for it (meaningful for payment failures).
    """

    def __init__(self, error: NamedError, *, context: str = "") -> None:
        super().__init__(f"{context}: reverted with {error}" if context else f"reverted with {error}")
        self.error = error
        self.x402_reason = x402_reason(error)


@dataclass(frozen=True, slots=True)
class _ErrorSpec:
    name: str
    types: tuple[str, ...]
    names: tuple[str, ...] = field(default=())


def _canonical_type(item: Mapping[str, Any]) -> str:
    kind = str(item["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in item.get("components", ()))
        return f"({inner}){kind[5:]}"
    return kind


def _specs_from_abi(abi: Iterable[Mapping[str, Any]]) -> list[_ErrorSpec]:
    specs = []
    for entry in abi:
        if entry.get("type") != "error":
            continue
        inputs = entry.get("inputs", ())
        specs.append(
            _ErrorSpec(
                name=str(entry["name"]),
                types=tuple(_canonical_type(i) for i in inputs),
                names=tuple(str(i.get("name") or f"arg{n}") for n, i in enumerate(inputs)),
            )
        )
    return specs


def _spec_from_signature(signature: str) -> _ErrorSpec:
    name, _, rest = signature.partition("(")
    types = tuple(t for t in rest.rstrip(")").split(",") if t)
    return _ErrorSpec(name=name, types=types, names=tuple(f"arg{n}" for n in range(len(types))))


def _selector(spec: _ErrorSpec) -> bytes:
    return keccak256(f"{spec.name}({','.join(spec.types)})".encode())[:4]


def error_table(abis: Sequence[Sequence[Mapping[str, Any]]] = ()) -> dict[bytes, _ErrorSpec]:
    """Selector -> error for the given ABIs plus the external errors og-settle's contracts can bubble up."""
    table = {_selector(spec): spec for spec in map(_spec_from_signature, _EXTERNAL_ERRORS)}
    for abi in abis:
        for spec in _specs_from_abi(abi):
            table[_selector(spec)] = spec
    return table


@cache
def _default_table() -> dict[bytes, _ErrorSpec]:
    abis = []
    try:
        from og_settle._artifacts import DEPLOYABLE_CONTRACTS, abi

        for name in DEPLOYABLE_CONTRACTS:
            try:
                abis.append(abi(name))
            except KeyError:
                continue
    except ImportError:  # pragma: no cover - the artifacts package is part of og_settle
        pass
    return error_table(abis)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, tuple | list):
        return type(value)(_plain(v) for v in value)
    return value


def decode_revert(data: bytes, table: Mapping[bytes, _ErrorSpec] | None = None) -> NamedError:
    """Name the revert ``data``; never raises (undecodable data gives ``unknown``)."""
    if not data:
        return NamedError(name="empty")
    selector = bytes(data[:4])
    spec = (table if table is not None else _default_table()).get(selector)
    if spec is None:
        return NamedError(name="unknown", selector=selector, data=bytes(data))
    try:
        values = abi_decode(list(spec.types), bytes(data[4:])) if spec.types else ()
    except (DecodingError, ValueError, OverflowError):
        return NamedError(name=spec.name, selector=selector, data=bytes(data))
    names = spec.names if spec.names else tuple(f"arg{n}" for n in range(len(values)))
    return NamedError(
        name=spec.name,
        args=tuple((n, _plain(v)) for n, v in zip(names, values, strict=True)),
        selector=selector,
        data=bytes(data),
    )


def x402_reason(error: NamedError) -> str:
    """The x402 reason code for a payment that failed with ``error``."""
    from og_settle._x402_verify import reason_for_revert

    code = str(reason_for_revert(error.data)) if error.data else _DEFAULT_X402_REASON
    if code == _DEFAULT_X402_REASON:
        return X402_REASONS.get(error.name, _DEFAULT_X402_REASON)
    return code
