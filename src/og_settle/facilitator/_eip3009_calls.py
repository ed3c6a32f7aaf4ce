"""How EIP-3009 payments are sent, and what their reverts mean: the token's ``transferWithAuthorization`` for one
payment (``v, r, s`` for a 65-byte signature, ``bytes`` otherwise), ``Eip3009Batcher.settle`` for several, and the
x402 reason code of a token's revert (custom errors as ReplicaUSDC raises them, FiatToken's revert strings as the
stock SDK reads them). :mod:`og_settle.facilitator._eip3009` verifies and settles with these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from eth_abi.abi import encode

from og_settle._eip3009 import Eip3009Payment, erc6492_inner
from og_settle._errors import InvalidInput
from og_settle._hex import keccak256
from og_settle._x402 import ReasonCode

if TYPE_CHECKING:
    from og_settle.clients import ContractCall
    from og_settle.facilitator._engine import SettlementJob

__all__ = [
    "BATCH_ROUTE",
    "ITEM_GAS",
    "ROUTE",
    "describe_eip3009_revert",
    "eip3009_batch_builder",
    "eip3009_call",
    "settles_through_eip3009_batcher",
    "transfer_with_authorization_call",
]

ROUTE: Final = "eip3009"
BATCH_ROUTE: Final = "eip3009-batch"
# Each batched item's gas cap: a USDC transferWithAuthorization costs about 40,000 inside a batch; the rest leaves
# room for an ERC-1271 wallet's isValidSignature.
ITEM_GAS: Final = 200_000

_TRANSFER_VRS: Final = keccak256(
    b"transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)"
)[:4]
_TRANSFER_BYTES: Final = keccak256(b"transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)")[
    :4
]
_BATCH_SETTLE: Final = keccak256(b"settle(address,uint256,(address,address,uint256,uint256,uint256,bytes32,bytes)[])")[
    :4
]
_HAS_ROLE: Final = keccak256(b"hasRole(bytes32,address)")[:4]
_SETTLER_ROLE: Final = keccak256(b"SETTLER_ROLE")


def transfer_with_authorization_call(payment: Eip3009Payment) -> ContractCall:
    """The token's ``transferWithAuthorization`` for ``payment``: ``(v, r, s)`` for a 65-byte signature (every
    EIP-3009 token has it), the ``bytes`` form (USDC v2.2, ERC-1271) otherwise."""
    from og_settle.clients import ContractCall

    auth = payment.payload.authorization
    head = [auth.owner, auth.to, auth.value, auth.valid_after, auth.valid_before, auth.nonce]
    types = ["address", "address", "uint256", "uint256", "uint256", "bytes32"]
    signature = _normalized(payment.payload.signature)
    if len(signature) == 65:
        v = signature[64]
        data = _TRANSFER_VRS + encode(
            [*types, "uint8", "bytes32", "bytes32"], [*head, v, signature[:32], signature[32:64]]
        )
    else:
        data = _TRANSFER_BYTES + encode([*types, "bytes"], [*head, signature])
    return ContractCall(
        payment.token, data, f"transferWithAuthorization(from={auth.owner}, nonce=0x{auth.nonce.hex()})"
    )


def _normalized(signature: bytes) -> bytes:
    """The signature the token takes: an ERC-6492 wrapper's inner signature (verification required the wallet to
    be deployed), and a 65-byte signature's ``v`` as 27/28 (some signers give 0/1); anything else unchanged."""
    signature = erc6492_inner(signature) or signature
    if len(signature) == 65 and signature[64] < 27:
        return signature[:64] + bytes([signature[64] + 27])
    return signature


def _payment(job: SettlementJob) -> Eip3009Payment:
    if not isinstance(job.payload, Eip3009Payment):
        raise InvalidInput(f"job {job.key}: not an EIP-3009 payment")
    return job.payload


def eip3009_call(jobs: Sequence[SettlementJob]) -> ContractCall:
    """The engine's builder for the single-payment route: one ``transferWithAuthorization``."""
    (job,) = jobs
    return transfer_with_authorization_call(_payment(job))


def eip3009_batch_builder(batcher: str) -> Callable[[Sequence[SettlementJob]], ContractCall]:
    """The engine's builder for the batched route: ``Eip3009Batcher.settle(token, ITEM_GAS, items)`` for several
    payments of one token (the engine groups by token), the token's own call for one."""
    from og_settle.clients import ContractCall

    def build(jobs: Sequence[SettlementJob]) -> ContractCall:
        payments = [_payment(job) for job in jobs]
        if len(payments) == 1:
            return transfer_with_authorization_call(payments[0])
        token = payments[0].token
        items = []
        for payment in payments:
            auth = payment.payload.authorization
            signature = _normalized(payment.payload.signature)
            items.append((auth.owner, auth.to, auth.value, auth.valid_after, auth.valid_before, auth.nonce, signature))
        types = ["address", "uint256", "(address,address,uint256,uint256,uint256,bytes32,bytes)[]"]
        data = _BATCH_SETTLE + encode(types, [token, ITEM_GAS, items])
        return ContractCall(batcher, data, f"Eip3009Batcher.settle({len(items)} payments of {token})")

    return build


def settles_through_eip3009_batcher(w3: Any, batcher: str, account: str) -> bool:
    """Whether ``account`` holds the Eip3009Batcher's ``SETTLER_ROLE`` (False when ``batcher`` has no code)."""
    data = _HAS_ROLE + encode(["bytes32", "address"], [_SETTLER_ROLE, account])
    result = bytes(w3.eth.call({"to": batcher, "data": "0x" + data.hex()}))
    return len(result) == 32 and int.from_bytes(result, "big") == 1


# The token's failures, by the error's name (custom errors as decoded; FiatToken's revert strings by substring).
_REVERT_REASONS: Final[Mapping[str, ReasonCode]] = {
    "AuthorizationUsedOrCanceled": ReasonCode.EIP3009_NONCE_ALREADY_USED,
    "AuthorizationExpired": ReasonCode.EIP3009_VALID_BEFORE_EXPIRED,
    "AuthorizationNotYetValid": ReasonCode.EIP3009_VALID_AFTER_FUTURE,
    "InvalidSignature": ReasonCode.EIP3009_INVALID_SIGNATURE,
    "ERC20InsufficientBalance": ReasonCode.EIP3009_INSUFFICIENT_BALANCE,
}
_REVERT_STRINGS: Final = (
    ("authorization is used", ReasonCode.EIP3009_NONCE_ALREADY_USED),
    ("authorization is expired", ReasonCode.EIP3009_VALID_BEFORE_EXPIRED),
    ("authorization is not yet valid", ReasonCode.EIP3009_VALID_AFTER_FUTURE),
    ("invalid signature", ReasonCode.EIP3009_INVALID_SIGNATURE),
    ("transfer amount exceeds balance", ReasonCode.EIP3009_INSUFFICIENT_BALANCE),
)
_SELECTORS: Final[Mapping[bytes, str]] = {
    keccak256(signature.encode())[:4]: signature.partition("(")[0]
    for signature in (
        "AuthorizationUsedOrCanceled(address,bytes32)",
        "AuthorizationExpired(uint256,uint256)",
        "AuthorizationNotYetValid(uint256,uint256)",
        "InvalidSignature(address)",
    )
}


def describe_eip3009_revert(error: Any) -> tuple[str, str]:
    """The x402 reason code and message for a token's ``transferWithAuthorization`` revert (a decoded
    ``NamedError``); unknown reverts are ``invalid_exact_evm_transaction_simulation_failed``."""
    name = str(getattr(error, "name", ""))
    data = bytes(getattr(error, "data", b"") or b"")
    name = _SELECTORS.get(data[:4], name)
    reason = _REVERT_REASONS.get(name)
    if reason is None and name == "Error":
        text = " ".join(str(value) for _, value in getattr(error, "args", ())).lower()
        reason = next((code for needle, code in _REVERT_STRINGS if needle in text), None)
    shown = name if name not in ("unknown", "") else str(error)
    return str(
        reason or ReasonCode.EIP3009_SIMULATION_FAILED
    ), f"the token's transferWithAuthorization reverts: {shown}"
