"""x402 verification of Permit2 payments, as a facilitator does it, and the reason codes of settlement reverts.

:func:`verify_payment` checks a payload against its requirements and answers with x402 reason codes; the chain
reads it needs sit behind the small :class:`ChainReader` protocol, so the pure checks run offline and
:class:`Web3ChainReader` plugs in a node. The wire formats it reads live in :mod:`og_settle._x402`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Protocol

from eth_abi.abi import encode

from og_settle._errors import InvalidInput
from og_settle._hex import keccak256, parse_address, parse_bytes32, parse_hex_bytes, to_hex
from og_settle._networks import PERMIT2_ADDRESS
from og_settle._permit2 import is_canonical_signature, nonce_position, recover_signer
from og_settle._x402 import PaymentPayload, PaymentRequirements, ReasonCode, VerifyResult

__all__ = ["ChainReader", "Web3ChainReader", "reason_for_revert", "verify_payment"]


class ChainReader(Protocol):
    """The three chain reads verification needs (all at the latest block)."""

    def nonce_bitmap(self, owner: str, word_position: int) -> int:
        """Permit2's ``nonceBitmap(owner, wordPos)``."""
        ...

    def balance_of(self, token: str, owner: str) -> int:
        """The token's ``balanceOf(owner)``."""
        ...

    def allowance(self, token: str, owner: str, spender: str) -> int:
        """The token's ``allowance(owner, spender)``."""
        ...


def _call_uint(web3: Any, to: str, signature: bytes, types: list[str], args: list[Any]) -> int:
    data = keccak256(signature)[:4] + encode(types, args)
    result = bytes(web3.eth.call({"to": to, "data": to_hex(data)}))
    if len(result) != 32:
        raise InvalidInput(f"{to}: {signature.decode()} did not return one uint256")
    return int.from_bytes(result, "big")


@dataclass(frozen=True, slots=True)
class Web3ChainReader:
    """A :class:`ChainReader` over a web3.py ``Web3`` instance.

    Attributes:
        web3: The connected ``Web3``.
        permit2: Permit2's address on that chain.
    """

    web3: Any
    permit2: str = PERMIT2_ADDRESS

    def nonce_bitmap(self, owner: str, word_position: int) -> int:
        """Permit2's ``nonceBitmap(owner, wordPos)``."""
        return _call_uint(
            self.web3, self.permit2, b"nonceBitmap(address,uint256)", ["address", "uint256"], [owner, word_position]
        )

    def balance_of(self, token: str, owner: str) -> int:
        """The token's ``balanceOf(owner)``."""
        return _call_uint(self.web3, token, b"balanceOf(address)", ["address"], [owner])

    def allowance(self, token: str, owner: str, spender: str) -> int:
        """The token's ``allowance(owner, spender)``."""
        return _call_uint(self.web3, token, b"allowance(address,address)", ["address", "address"], [owner, spender])


def verify_payment(
    payload: PaymentPayload,
    requirements: PaymentRequirements,
    *,
    spender: str,
    now: int,
    reader: ChainReader | None = None,
    settler: str | None = None,
    request_hash: bytes | str | None = None,
    permit2: str = PERMIT2_ADDRESS,
) -> VerifyResult:
    """Check ``payload`` against ``requirements`` as an x402 facilitator's ``/verify`` does.

    Offline checks: version, scheme, network, spender (our PaymentFacilitator), recipient, token, amount, time
    window at ``now``, upto facilitator (= ``settler`` when given), bound request hash (= ``request_hash`` or
    ``requirements.extra.requestHash`` when given), and the signature (canonical, recovering to ``from`` on
    the requirements' chain). With a ``reader``: nonce unspent, Permit2 allowance and balance. Returns the
    first failure's x402 reason code.
    """
    auth = payload.payload.authorization
    payer = auth.owner

    def invalid(reason: ReasonCode, message: str) -> VerifyResult:
        return VerifyResult(is_valid=False, invalid_reason=reason, payer=payer, invalid_message=message)

    accepted = payload.accepted
    if accepted.scheme != requirements.scheme or auth.scheme.x402_scheme != requirements.scheme:
        return invalid(
            ReasonCode.UNSUPPORTED_SCHEME,
            f"scheme: accepted {accepted.scheme!r}, signed {auth.scheme.x402_scheme!r}, "
            f"required {requirements.scheme!r}",
        )
    if accepted.network != requirements.network:
        return invalid(
            ReasonCode.INVALID_NETWORK, f"network: accepted {accepted.network}, required {requirements.network}"
        )
    if auth.spender != parse_address(spender, "spender"):
        return invalid(ReasonCode.INVALID_PERMIT2_SPENDER, f"spender: signed {auth.spender}, expected {spender}")
    if auth.to != requirements.pay_to:
        return invalid(
            ReasonCode.INVALID_PERMIT2_RECIPIENT_MISMATCH,
            f"witness.to: signed {auth.to}, payTo is {requirements.pay_to}",
        )
    if auth.token != requirements.asset:
        return invalid(
            ReasonCode.PERMIT2_TOKEN_MISMATCH, f"permitted.token: signed {auth.token}, asset is {requirements.asset}"
        )
    if auth.amount == 0:
        return invalid(ReasonCode.PERMIT2_INVALID_AMOUNT, "permitted.amount: zero")
    if auth.amount != requirements.amount:
        return invalid(
            ReasonCode.PERMIT2_AMOUNT_MISMATCH,
            f"permitted.amount: signed {auth.amount}, required {requirements.amount}",
        )
    if now > auth.deadline:
        return invalid(ReasonCode.PERMIT2_DEADLINE_EXPIRED, f"deadline: {auth.deadline} is before {now}")
    if now < auth.valid_after:
        return invalid(ReasonCode.PERMIT2_NOT_YET_VALID, f"witness.validAfter: {auth.valid_after} is after {now}")
    if auth.scheme.is_upto and settler is not None and auth.facilitator != parse_address(settler, "settler"):
        return invalid(
            ReasonCode.UPTO_FACILITATOR_MISMATCH,
            f"witness.facilitator: signed {auth.facilitator}, settler is {settler}",
        )
    expected_hash = request_hash if request_hash is not None else requirements.extra.get("requestHash")
    if expected_hash is not None and auth.request_hash != parse_bytes32(expected_hash, "request_hash"):
        return invalid(ReasonCode.INVALID_PERMIT2_REQUEST_HASH, "witness.requestHash: not the request's hash")
    signature = payload.payload.signature
    if (
        not is_canonical_signature(signature)
        or recover_signer(auth, signature, requirements.chain_id, permit2) != payer
    ):
        return invalid(
            ReasonCode.INVALID_PERMIT2_SIGNATURE,
            f"signature: not a canonical signature by {payer} on chain {requirements.chain_id}",
        )
    if reader is not None:
        word, bit = nonce_position(auth.nonce)
        if (reader.nonce_bitmap(payer, word) >> bit) & 1:
            return invalid(ReasonCode.PERMIT2_INVALID_NONCE, f"nonce: {auth.nonce} is already used")
        if reader.allowance(auth.token, payer, permit2) < auth.amount:
            return invalid(
                ReasonCode.PERMIT2_ALLOWANCE_REQUIRED, f"allowance: {payer} has not approved Permit2 for {auth.amount}"
            )
        if reader.balance_of(auth.token, payer) < auth.amount:
            return invalid(ReasonCode.PERMIT2_INSUFFICIENT_BALANCE, f"balance: {payer} holds less than {auth.amount}")
    return VerifyResult(is_valid=True, payer=payer)


def _selector(signature: str) -> bytes:
    return keccak256(signature.encode())[:4]


# Revert selectors of PaymentFacilitator and Permit2 mapped to the x402 reason code a settlement reports.
_REVERT_REASONS: Final[dict[bytes, ReasonCode]] = {
    _selector("PaymentExpired(uint256,uint256)"): ReasonCode.PERMIT2_DEADLINE_EXPIRED,
    _selector("SignatureExpired(uint256)"): ReasonCode.PERMIT2_DEADLINE_EXPIRED,
    _selector("PaymentNotYetValid(uint256,uint256)"): ReasonCode.PERMIT2_NOT_YET_VALID,
    _selector("ZeroAmount()"): ReasonCode.PERMIT2_INVALID_AMOUNT,
    _selector("ExactAmountMismatch(uint256,uint256)"): ReasonCode.PERMIT2_AMOUNT_MISMATCH,
    _selector("AmountExceedsPermitted(uint256,uint256)"): ReasonCode.PERMIT2_AMOUNT_MISMATCH,
    _selector("InvalidAmount(uint256)"): ReasonCode.PERMIT2_AMOUNT_MISMATCH,
    _selector("AmountTooLarge(uint256)"): ReasonCode.PERMIT2_INVALID_AMOUNT,
    _selector("MalformedPackedPayment(uint256,uint256)"): ReasonCode.INVALID_PAYLOAD,
    _selector("InvalidRecipient(address)"): ReasonCode.INVALID_PERMIT2_RECIPIENT_MISMATCH,
    _selector("UnauthorizedFacilitator(address,address)"): ReasonCode.UPTO_FACILITATOR_MISMATCH,
    _selector("NonceAlreadyUsed(address,uint256)"): ReasonCode.PERMIT2_INVALID_NONCE,
    _selector("InvalidNonce()"): ReasonCode.PERMIT2_INVALID_NONCE,
    _selector("MalleableSignature(bytes32)"): ReasonCode.INVALID_PERMIT2_SIGNATURE,
    _selector("InvalidSignatureV(uint8)"): ReasonCode.INVALID_PERMIT2_SIGNATURE,
    _selector("MalformedSignature(uint256)"): ReasonCode.INVALID_PERMIT2_SIGNATURE,
    _selector("InvalidSigner()"): ReasonCode.INVALID_PERMIT2_SIGNATURE,
    _selector("InvalidSignature()"): ReasonCode.INVALID_PERMIT2_SIGNATURE,
    _selector("InvalidSignatureLength()"): ReasonCode.INVALID_PERMIT2_SIGNATURE,
    _selector("InvalidContractSignature()"): ReasonCode.INVALID_PERMIT2_SIGNATURE,
    _selector("PermitDidNotApprove(address,address,uint256,uint256)"): ReasonCode.PERMIT2_ALLOWANCE_REQUIRED,
    _selector("Permit2612AmountMismatch()"): ReasonCode.EIP2612_AMOUNT_MISMATCH,
    # Permit2 (solmate SafeTransferLib) turns a token failure - balance or allowance - into
    # Error("TRANSFER_FROM_FAILED") without the token's reason, so that maps to permit2_simulation_failed.
}


def reason_for_revert(revert_data: bytes | str) -> ReasonCode:
    """The x402 reason code for a settlement's revert data (from ``PaymentFailed`` or a failed ``settle``).

    Unrecognised or empty data (for example an item that ran out of gas) maps to ``permit2_simulation_failed``.
    """
    data = parse_hex_bytes(revert_data, "revert_data")
    return _REVERT_REASONS.get(data[:4], ReasonCode.PERMIT2_SIMULATION_FAILED)
