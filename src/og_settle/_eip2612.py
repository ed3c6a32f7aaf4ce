"""Gasless Permit2 approval: EIP-2612 ``permit`` data for Permit2, as x402's ``eip2612GasSponsoring`` extension.

A payer who never approved Permit2 cannot pay through it. For tokens with EIP-2612 ``permit``, x402 v2 lets the
client sign a ``Permit(owner, spender = Permit2, value, nonce, deadline)`` over the token's EIP-712 domain and
send it beside the Permit2 payment, in ``PaymentPayload.extensions``::

    {"eip2612GasSponsoring": {"info": {"from", "asset", "spender", "amount", "nonce", "deadline",
                                       "signature", "version": "1"}}}

(amounts as decimal strings, the signature 65 bytes ``r ‖ s ‖ v`` in hex). The facilitator advertises the
extension in ``/supported`` (``extensions``), the resource server declares it in ``PaymentRequired.extensions``
(:func:`declaration`), and the stock clients (PyPI ``x402`` 2.25.0, npm ``@x402/evm``) sign it when the payer's
Permit2 allowance falls short, with ``amount`` the required amount and ``deadline`` the Permit2 deadline. The
settling contract applies the permit first, in the same transaction: x402's proxies in ``settleWithPermit``,
og-settle's StockPaymentBatcher in ``settleWithPermits`` and PaymentFacilitator in ``settleWithPermit`` /
``settleBatchWithPermits``.

:class:`Eip2612Permit` parses, builds and signs that data. A client calls :func:`gasless_permit` (which reads the
payer's allowance, the token's nonce and domain separator, and signs only when the allowance falls short) and
:func:`with_permit`; ``og-settle payment sign --gasless`` does both. :func:`check_permit` is what a facilitator
checks before relying on it (payer, token, spender, value, deadline, the token's current nonce and the signature over
the token's own domain separator, read from the chain).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from eth_abi.abi import encode

from og_settle._errors import InvalidInput
from og_settle._hex import keccak256, parse_address, parse_hex_bytes, parse_uint256, to_hex
from og_settle._networks import PERMIT2_ADDRESS
from og_settle._permit2 import is_canonical_signature, recover_digest_signer
from og_settle._x402 import PaymentPayload, PaymentRequirements, ReasonCode, VerifyResult
from og_settle._x402_verify import ChainReader, Web3ChainReader, verify_payment

__all__ = [
    "EIP2612_GAS_SPONSORING",
    "PERMIT_TYPE",
    "Eip2612Permit",
    "PermitProblem",
    "check_permit",
    "declaration",
    "gasless_permit",
    "sign_permit",
    "token_permit_reads",
    "verify_with_permit",
    "with_permit",
]

EIP2612_GAS_SPONSORING: Final = "eip2612GasSponsoring"
"""The extension's key in ``/supported`` ``extensions``, ``PaymentRequired.extensions`` and
``PaymentPayload.extensions``."""

PERMIT_TYPE: Final = "Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"
_PERMIT_TYPEHASH: Final = keccak256(PERMIT_TYPE.encode())
DEADLINE_MARGIN_SECONDS: Final = 6
"""A permit must stay valid this long past the latest block (the stock facilitator's margin too), so that it
has not expired by the time the settlement is mined."""

_INFO_FIELDS: Final = ("from", "asset", "spender", "amount", "nonce", "deadline", "signature")


@dataclass(frozen=True, slots=True)
class Eip2612Permit:
    """A signed EIP-2612 permit of ``token`` by ``owner`` for ``spender`` (Permit2).

    Attributes:
        owner: the payer.
        token: the token whose ``permit`` is called.
        spender: the approved spender; a facilitator accepts only Permit2.
        value: the approval amount.
        nonce: the token's ``nonces(owner)`` the signature is for.
        deadline: the permit's deadline (a Unix timestamp).
        signature: 65 bytes ``r ‖ s ‖ v``.
    """

    owner: str
    token: str
    spender: str
    value: int
    nonce: int
    deadline: int
    signature: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "owner", parse_address(self.owner, "from"))
        object.__setattr__(self, "token", parse_address(self.token, "asset"))
        object.__setattr__(self, "spender", parse_address(self.spender, "spender"))
        object.__setattr__(self, "value", parse_uint256(self.value, "amount"))
        object.__setattr__(self, "nonce", parse_uint256(self.nonce, "nonce"))
        object.__setattr__(self, "deadline", parse_uint256(self.deadline, "deadline"))
        signature = parse_hex_bytes(self.signature, "signature", max_len=65)
        if len(signature) != 65:
            raise InvalidInput(f"signature: expected 65 bytes (r, s, v), got {len(signature)}")
        object.__setattr__(self, "signature", signature)

    @property
    def v(self) -> int:
        """The signature's ``v`` (27 or 28 for a canonical signature)."""
        return self.signature[64]

    @property
    def r(self) -> bytes:
        """The signature's ``r``."""
        return self.signature[:32]

    @property
    def s(self) -> bytes:
        """The signature's ``s``."""
        return self.signature[32:64]

    def struct_hash(self) -> bytes:
        """The EIP-712 hash of the ``Permit`` struct."""
        return keccak256(
            encode(
                ["bytes32", "address", "address", "uint256", "uint256", "uint256"],
                [_PERMIT_TYPEHASH, self.owner, self.spender, self.value, self.nonce, self.deadline],
            )
        )

    def digest(self, domain_separator: bytes) -> bytes:
        """The digest the token checks the signature against, under its ``DOMAIN_SEPARATOR()``."""
        return keccak256(b"\x19\x01" + domain_separator + self.struct_hash())

    def signer(self, domain_separator: bytes) -> str | None:
        """Who signed the permit under ``domain_separator``; ``None`` for a malformed or malleable signature."""
        return recover_digest_signer(self.digest(domain_separator), self.signature)

    def info(self) -> dict[str, str]:
        """The extension's ``info`` object."""
        return {
            "from": self.owner,
            "asset": self.token,
            "spender": self.spender,
            "amount": str(self.value),
            "nonce": str(self.nonce),
            "deadline": str(self.deadline),
            "signature": to_hex(self.signature),
            "version": "1",
        }

    def extension(self) -> dict[str, Any]:
        """``{"eip2612GasSponsoring": {"info": ...}}``, to merge into ``PaymentPayload.extensions``."""
        return {EIP2612_GAS_SPONSORING: {"info": self.info()}}

    @classmethod
    def from_extensions(cls, extensions: Mapping[str, Any] | None) -> Eip2612Permit | None:
        """The permit a payload's ``extensions`` carry; ``None`` without the extension. Raises InvalidInput,
        naming the field, when the extension is there but malformed."""
        if not extensions or EIP2612_GAS_SPONSORING not in extensions:
            return None
        where = f"extensions.{EIP2612_GAS_SPONSORING}"
        entry = extensions[EIP2612_GAS_SPONSORING]
        info = entry.get("info") if isinstance(entry, Mapping) else None
        if not isinstance(info, Mapping):
            raise InvalidInput(f"{where}.info: expected a JSON object")
        for name in _INFO_FIELDS:
            if not isinstance(info.get(name), str):
                raise InvalidInput(f"{where}.info.{name}: expected a string")
        for name in ("amount", "nonce", "deadline"):
            if not info[name].isdigit():
                raise InvalidInput(f"{where}.info.{name}: expected a decimal integer, got {info[name]!r}")
        try:
            return cls(
                owner=info["from"],
                token=info["asset"],
                spender=info["spender"],
                value=int(info["amount"]),
                nonce=int(info["nonce"]),
                deadline=int(info["deadline"]),
                signature=info["signature"],
            )
        except InvalidInput as err:
            raise InvalidInput(f"{where}.info.{err}") from None


def sign_permit(
    private_key: Any,
    *,
    token: str,
    domain_separator: bytes,
    nonce: int,
    value: int,
    deadline: int,
    spender: str = PERMIT2_ADDRESS,
) -> Eip2612Permit:
    """Sign a permit of ``token`` for ``spender`` (Permit2) with the payer's key, as a client does: ``nonce`` is
    the token's current ``nonces(owner)`` and ``domain_separator`` its ``DOMAIN_SEPARATOR()`` (or
    ``og_settle.TokenDomain(name, version, chain_id, token).separator()``)."""
    import coincurve
    from eth_account import Account

    owner = Account.from_key(private_key).address
    unsigned = Eip2612Permit(owner, token, spender, value, nonce, deadline, bytes(64) + b"\x1b")
    key = coincurve.PrivateKey(bytes(Account.from_key(private_key).key))
    raw = key.sign_recoverable(unsigned.digest(domain_separator), hasher=None)
    permit = Eip2612Permit(owner, token, spender, value, nonce, deadline, raw[:64] + bytes([raw[64] + 27]))
    if permit.signer(domain_separator) != owner:  # coincurve signs low-s; a mismatch would be a bug here
        raise InvalidInput("signature: the permit did not recover to its owner")
    return permit


def declaration() -> dict[str, Any]:
    """What a resource server puts in ``PaymentRequired.extensions`` to ask clients for the permit (the shape
    the stock SDK's ``declare_eip2612_gas_sponsoring_extension`` produces)."""
    return {
        EIP2612_GAS_SPONSORING: {
            "info": {
                "description": "The facilitator accepts an EIP-2612 permit of the asset for Permit2.",
                "version": "1",
            }
        }
    }


@dataclass(frozen=True, slots=True)
class PermitProblem:
    """Why a permit cannot be relied on.

    Attributes:
        reason: the x402 reason code.
        message: a one-line explanation.
    """

    reason: ReasonCode
    message: str


def check_permit(
    permit: Eip2612Permit,
    *,
    payer: str,
    token: str,
    amount: int,
    exact_value: bool,
    permit2: str,
    now: int,
    token_nonce: int | None,
    domain_separator: bytes | None,
) -> PermitProblem | None:
    """Whether ``permit`` approves Permit2 for ``amount`` of ``token`` from ``payer`` when submitted now.

    ``exact_value``: the value must equal ``amount`` (x402's proxies revert ``Permit2612AmountMismatch``
    otherwise) rather than cover it. ``token_nonce`` and ``domain_separator`` are the token's ``nonces(payer)``
    and ``DOMAIN_SEPARATOR()`` (``None`` when the token does not answer them: no EIP-2612). Returns the first
    problem, or ``None``.
    """
    if permit.owner != payer:
        return PermitProblem(
            ReasonCode.EIP2612_FROM_MISMATCH, f"from: the permit is by {permit.owner}, the payer is {payer}"
        )
    if permit.token != token:
        return PermitProblem(ReasonCode.EIP2612_ASSET_MISMATCH, f"asset: the permit is for {permit.token}, not {token}")
    if permit.spender != permit2:
        return PermitProblem(
            ReasonCode.EIP2612_SPENDER_NOT_PERMIT2,
            f"spender: the permit approves {permit.spender}, not Permit2 ({permit2})",
        )
    if (permit.value != amount) if exact_value else (permit.value < amount):
        wanted = f"equal {amount}" if exact_value else f"cover {amount}"
        return PermitProblem(
            ReasonCode.EIP2612_AMOUNT_MISMATCH, f"amount: the permit approves {permit.value}; it must {wanted}"
        )
    if permit.deadline < now + DEADLINE_MARGIN_SECONDS:
        return PermitProblem(
            ReasonCode.EIP2612_DEADLINE_EXPIRED,
            f"deadline: {permit.deadline} is before {now} + {DEADLINE_MARGIN_SECONDS} s",
        )
    if token_nonce is None or domain_separator is None:
        return PermitProblem(
            ReasonCode.EIP2612_NOT_SUPPORTED,
            f"asset: {token} answers no nonces()/DOMAIN_SEPARATOR() (no EIP-2612 permit)",
        )
    if permit.nonce != token_nonce:
        return PermitProblem(
            ReasonCode.EIP2612_INVALID_NONCE,
            f"nonce: the permit is for nonce {permit.nonce}, the token's is {token_nonce}",
        )
    if not is_canonical_signature(permit.signature) or permit.signer(domain_separator) != payer:
        return PermitProblem(
            ReasonCode.INVALID_EIP2612_SIGNATURE,
            f"signature: not a canonical signature by {payer} under the token's domain",
        )
    return None


def _read_word(web3: Any, to: str, data: bytes) -> bytes | None:
    """One ``eth_call`` word; ``None`` when the call reverts or answers less than a word."""
    from web3.exceptions import ContractLogicError

    try:
        result = bytes(web3.eth.call({"to": to, "data": to_hex(data)}))
    except ContractLogicError:
        return None
    return result[:32] if len(result) >= 32 else None


def token_permit_reads(web3: Any, token: str, owner: str) -> tuple[int | None, bytes | None]:
    """The token's EIP-2612 ``nonces(owner)`` and ``DOMAIN_SEPARATOR()`` (each ``None`` if it does not answer)."""
    nonce = _read_word(web3, token, keccak256(b"nonces(address)")[:4] + encode(["address"], [owner]))
    separator = _read_word(web3, token, keccak256(b"DOMAIN_SEPARATOR()")[:4])
    return (None if nonce is None else int.from_bytes(nonce, "big")), separator


def gasless_permit(
    web3: Any,
    requirements: PaymentRequirements,
    private_key: Any,
    *,
    deadline: int,
    permit2: str = PERMIT2_ADDRESS,
) -> Eip2612Permit | None:
    """The EIP-2612 permit a payer adds to a Permit2 payment for ``requirements`` so that it needs no approval
    transaction, or ``None`` when its allowance to Permit2 already covers ``requirements.amount``.

    Reads the allowance, the token's ``nonces(payer)`` and ``DOMAIN_SEPARATOR()`` on ``web3``, and signs a
    permit of ``requirements.amount`` (what x402's proxies require) until ``deadline`` (the Permit2 deadline, as
    the stock clients sign). Raises InvalidInput when the token has no EIP-2612 ``permit``."""
    from eth_account import Account

    owner = Account.from_key(private_key).address
    token = requirements.asset
    if Web3ChainReader(web3, permit2).allowance(token, owner, permit2) >= requirements.amount:
        return None
    nonce, separator = token_permit_reads(web3, token, owner)
    if nonce is None or separator is None:
        raise InvalidInput(f"asset: {token} has no EIP-2612 permit (no nonces()/DOMAIN_SEPARATOR()); approve Permit2")
    return sign_permit(
        private_key,
        token=token,
        domain_separator=separator,
        nonce=nonce,
        value=requirements.amount,
        deadline=deadline,
        spender=permit2,
    )


def with_permit(payload: PaymentPayload, permit: Eip2612Permit) -> PaymentPayload:
    """``payload`` carrying ``permit`` in its ``extensions`` (other extensions kept)."""
    return dataclasses.replace(payload, extensions={**(payload.extensions or {}), **permit.extension()})


@dataclass(frozen=True, slots=True)
class _CoveredAllowance:
    """A ChainReader whose Permit2 allowance is taken as covering ``amount`` (the permit's own checks decide)."""

    reader: ChainReader
    amount: int

    def nonce_bitmap(self, owner: str, word_position: int) -> int:
        return self.reader.nonce_bitmap(owner, word_position)

    def balance_of(self, token: str, owner: str) -> int:
        return self.reader.balance_of(token, owner)

    def allowance(self, token: str, owner: str, spender: str) -> int:
        return self.amount


def verify_with_permit(
    payload: PaymentPayload,
    requirements: PaymentRequirements,
    *,
    permit: Eip2612Permit | None,
    reader: ChainReader,
    now: int,
    token_nonce: int | None,
    domain_separator: bytes | None,
    exact_value: bool,
    permit2: str = PERMIT2_ADDRESS,
    **checks: Any,
) -> tuple[VerifyResult, Eip2612Permit | None]:
    """:func:`~og_settle._x402_verify.verify_payment` for a payload that may carry a payer's EIP-2612 permit, and the
    permit the settlement must apply (``None`` when the allowance is already there or there is no permit).

    When the payer's Permit2 allowance falls short and ``permit`` is given, the payment is checked as if the
    allowance covered it, then the permit with :func:`check_permit`. ``checks`` are verify_payment's other
    keyword arguments (``spender``, ``settler``, ``request_hash``)."""
    auth = payload.payload.authorization
    if permit is not None and reader.allowance(auth.token, auth.owner, permit2) >= auth.amount:
        permit = None  # approved already: the permit is not needed, and not checked
    checked = reader if permit is None else _CoveredAllowance(reader, auth.amount)
    result = verify_payment(payload, requirements, now=now, reader=checked, permit2=permit2, **checks)
    if not result.is_valid or permit is None:
        return result, None
    problem = check_permit(
        permit,
        payer=auth.owner,
        token=auth.token,
        amount=auth.amount,
        exact_value=exact_value,
        permit2=permit2,
        now=now,
        token_nonce=token_nonce,
        domain_separator=domain_separator,
    )
    if problem is not None:
        invalid = VerifyResult(
            is_valid=False, invalid_reason=problem.reason, payer=auth.owner, invalid_message=problem.message
        )
        return invalid, None
    return result, permit
