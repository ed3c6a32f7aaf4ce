"""Permit2 ``PermitWitnessTransferFrom`` typed data for x402 payments: build, hash, sign, recover.

Four witness layouts are supported, matching ``contracts/interfaces/IPaymentFacilitator.sol``: x402 v2
``exact`` and ``upto`` unchanged, and og-settle's request-bound variants that add ``bytes32 requestHash``.
Hashes are computed by hand (eth-abi + keccak) and the same message is available as eth-account typed data;
the tests check that both give one digest and that Permit2 accepts the signature.

Only eth-abi, eth-account and the keccak are imported here; :func:`ensure_opg_approval` imports web3 lazily.
"""

from __future__ import annotations

import enum
import functools
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import coincurve
from eth_abi.abi import encode
from eth_account import Account

from og_settle._eip712 import Eip712Domain, type_fields
from og_settle._errors import InvalidInput, InvariantViolation
from og_settle._hex import (
    keccak256,
    parse_address,
    parse_bytes32,
    parse_hex_bytes,
    parse_uint256,
    to_checksum_address,
    to_hex,
)
from og_settle._networks import OPG_ADDRESS, PERMIT2_ADDRESS

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

__all__ = [
    "PERMIT_WITNESS_TRANSFER_FROM_STUB",
    "TOKEN_PERMISSIONS_TYPE",
    "ApprovalResult",
    "PaymentScheme",
    "Permit2Authorization",
    "domain_separator",
    "ensure_opg_approval",
    "is_canonical_signature",
    "new_authorization",
    "nonce_position",
    "permit2_domain",
    "recover_digest_signer",
    "recover_signer",
    "sign_authorization",
]

TOKEN_PERMISSIONS_TYPE: Final = "TokenPermissions(address token,uint256 amount)"
PERMIT_WITNESS_TRANSFER_FROM_STUB: Final = (
    "PermitWitnessTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline,"
)
_PERMIT_WITNESS_TRANSFER_FROM: Final = PERMIT_WITNESS_TRANSFER_FROM_STUB + "Witness witness)"
# x402 client default: a payment may settle from ten minutes before it was signed (clock skew).
VALID_AFTER_SKEW_SECONDS: Final = 600

_SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_ZERO_ADDRESS: Final = "0x" + "00" * 20

_WITNESS_FIELDS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "exact": (("to", "address"), ("validAfter", "uint256")),
    "upto": (("to", "address"), ("facilitator", "address"), ("validAfter", "uint256")),
    "exact_bound": (("to", "address"), ("validAfter", "uint256"), ("requestHash", "bytes32")),
    "upto_bound": (
        ("to", "address"),
        ("facilitator", "address"),
        ("validAfter", "uint256"),
        ("requestHash", "bytes32"),
    ),
}


class PaymentScheme(enum.IntEnum):
    """The witness layout a payer signed; the values equal ``IPaymentFacilitator.PaymentScheme`` in Solidity."""

    EXACT = 0
    UPTO = 1
    EXACT_BOUND = 2
    UPTO_BOUND = 3

    @classmethod
    def of(cls, x402_scheme: str, *, bound: bool) -> PaymentScheme:
        """The layout for an x402 scheme name (``"exact"`` or ``"upto"``), bound to a request hash or not."""
        if x402_scheme not in ("exact", "upto"):
            raise InvalidInput(f"scheme: expected 'exact' or 'upto', got {x402_scheme!r}")
        return cls[f"{x402_scheme.upper()}_BOUND" if bound else x402_scheme.upper()]

    @property
    def is_upto(self) -> bool:
        """Whether the settler chooses the amount (and only ``witness.facilitator`` may settle)."""
        return self in (PaymentScheme.UPTO, PaymentScheme.UPTO_BOUND)

    @property
    def is_bound(self) -> bool:
        """Whether the witness carries a ``requestHash``."""
        return self in (PaymentScheme.EXACT_BOUND, PaymentScheme.UPTO_BOUND)

    @property
    def x402_scheme(self) -> str:
        """The x402 scheme name: ``"exact"`` or ``"upto"``."""
        return "upto" if self.is_upto else "exact"

    @property
    def witness_fields(self) -> tuple[tuple[str, str], ...]:
        """The witness struct's ``(name, type)`` fields, in order."""
        return _WITNESS_FIELDS[self.name.lower()]

    @property
    def witness_type(self) -> str:
        """The EIP-712 encoding of the witness struct, e.g. ``Witness(address to,uint256 validAfter)``."""
        return "Witness(" + ",".join(f"{kind} {name}" for name, kind in self.witness_fields) + ")"

    @property
    def witness_type_string(self) -> str:
        """The string handed to Permit2's ``permitWitnessTransferFrom`` (the tail from ``Witness witness)``)."""
        return "Witness witness)" + TOKEN_PERMISSIONS_TYPE + self.witness_type

    @property
    def full_type(self) -> str:
        """The complete EIP-712 type of the signed ``PermitWitnessTransferFrom`` message."""
        return PERMIT_WITNESS_TRANSFER_FROM_STUB + self.witness_type_string


def _word(value: str | int | bytes) -> bytes:
    """One static ABI word: an address (``0x`` + 40 hex digits), a uint256, or 32 bytes."""
    if isinstance(value, str):
        return bytes(12) + bytes.fromhex(value[2:])
    if isinstance(value, int):
        return value.to_bytes(32, "big")
    return value


@functools.lru_cache(maxsize=16)
def _type_hash(encoded_type: str) -> bytes:
    return keccak256(encoded_type.encode())


@functools.lru_cache(maxsize=64)
def permit2_domain(chain_id: int, permit2: str = PERMIT2_ADDRESS) -> Eip712Domain:
    """Permit2's EIP-712 domain: ``(name "Permit2", chainId, verifyingContract)``, no version."""
    return Eip712Domain("Permit2", None, chain_id, permit2)


def domain_separator(chain_id: int, permit2: str = PERMIT2_ADDRESS) -> bytes:
    """Permit2's EIP-712 domain separator."""
    return permit2_domain(chain_id, permit2).separator()


def nonce_position(nonce: int) -> tuple[int, int]:
    """Where Permit2's unordered nonce bitmap keeps ``nonce``: ``(word position, bit position)``."""
    return nonce >> 8, nonce & 0xFF


@dataclass(frozen=True, slots=True)
class Permit2Authorization:
    """What the payer signs: x402's ``permit2Authorization`` (token, permitted amount, nonce, deadline, witness).

    Construction validates and normalises every field (addresses checksummed, integers range-checked) and
    raises :class:`~og_settle.InvalidInput` naming the bad field.

    Attributes:
        owner: The payer (x402 ``from``).
        token: The ERC-20 permitted (OPG).
        amount: The permitted amount in atomic units: exact for ``exact``, the maximum for ``upto``.
        spender: The Permit2 spender, i.e. the PaymentFacilitator contract.
        nonce: Permit2 unordered nonce (random 256-bit by default).
        deadline: Unix time after which the signature is void.
        to: ``witness.to``, the recipient (x402 ``payTo``).
        valid_after: ``witness.validAfter``, the earliest settlement time.
        facilitator: ``witness.facilitator`` for upto (the only address allowed to settle), else ``None``.
        request_hash: ``witness.requestHash`` for the bound variants, else ``None``.
    """

    owner: str
    token: str
    amount: int
    spender: str
    nonce: int
    deadline: int
    to: str
    valid_after: int
    facilitator: str | None = None
    request_hash: bytes | None = None

    def __post_init__(self) -> None:
        for name in ("owner", "token", "spender", "to"):
            object.__setattr__(self, name, parse_address(getattr(self, name), name))
        for name in ("amount", "nonce", "deadline", "valid_after"):
            object.__setattr__(self, name, parse_uint256(getattr(self, name), name))
        if self.facilitator is not None:
            object.__setattr__(self, "facilitator", parse_address(self.facilitator, "facilitator"))
        if self.request_hash is not None:
            object.__setattr__(self, "request_hash", parse_bytes32(self.request_hash, "request_hash"))

    @property
    def scheme(self) -> PaymentScheme:
        """The witness layout implied by which optional witness fields are set."""
        return PaymentScheme.of(
            "upto" if self.facilitator is not None else "exact", bound=self.request_hash is not None
        )

    def witness_values(self) -> dict[str, Any]:
        """The witness struct's values by EIP-712 field name (``requestHash`` as bytes)."""
        values: dict[str, Any] = {"to": self.to, "facilitator": self.facilitator, "validAfter": self.valid_after}
        values["requestHash"] = self.request_hash
        return {name: values[name] for name, _ in self.scheme.witness_fields}

    def witness_hash(self) -> bytes:
        """``hashStruct(witness)``: the bytes32 passed to Permit2 as ``witness``."""
        values = self.witness_values()
        words = [_type_hash(self.scheme.witness_type), *(_word(values[name]) for name, _ in self.scheme.witness_fields)]
        return keccak256(b"".join(words))

    def struct_hash(self) -> bytes:
        """``hashStruct(PermitWitnessTransferFrom)``, computed by hand as Permit2's PermitHash does.

        Every member is a static 32-byte word (address, uint256, bytes32), so the ABI encoding is the words
        concatenated; the tests hold this to eth-account's EIP-712 encoding."""
        permitted = keccak256(_type_hash(TOKEN_PERMISSIONS_TYPE) + _word(self.token) + _word(self.amount))
        words = (
            _type_hash(self.scheme.full_type),
            permitted,
            _word(self.spender),
            _word(self.nonce),
            _word(self.deadline),
            self.witness_hash(),
        )
        return keccak256(b"".join(words))

    def digest(self, chain_id: int, permit2: str = PERMIT2_ADDRESS) -> bytes:
        """The EIP-712 digest the payer signs and Permit2 recovers from."""
        return permit2_domain(chain_id, permit2).digest(self.struct_hash())

    def typed_data(self, chain_id: int, permit2: str = PERMIT2_ADDRESS) -> dict[str, Any]:
        """The message as EIP-712 typed data (eth-account's ``full_message`` / ``eth_signTypedData_v4``)."""
        witness = self.witness_values()
        if "requestHash" in witness:
            witness["requestHash"] = to_hex(witness["requestHash"])
        nested = {
            "TokenPermissions": type_fields(TOKEN_PERMISSIONS_TYPE),
            "Witness": [{"name": name, "type": kind} for name, kind in self.scheme.witness_fields],
        }
        message = {
            "permitted": {"token": self.token, "amount": self.amount},
            "spender": self.spender,
            "nonce": self.nonce,
            "deadline": self.deadline,
            "witness": witness,
        }
        return permit2_domain(chain_id, permit2).typed_data(_PERMIT_WITNESS_TRANSFER_FROM, message, nested=nested)

    def payment_args(self, signature: bytes, amount: int | None = None) -> tuple[Any, ...]:
        """The ``IPaymentFacilitator.Payment`` tuple for ``settle`` / ``settleBatch``.

        ``amount`` is what to transfer: always the permitted amount for exact (the default), any non-zero
        amount up to it for upto.
        """
        settled = self.amount if amount is None else parse_uint256(amount, "amount")
        return (
            int(self.scheme),
            self.owner,
            ((self.token, self.amount), self.nonce, self.deadline),
            self.to,
            self.facilitator or _ZERO_ADDRESS,
            self.valid_after,
            self.request_hash or b"\0" * 32,
            settled,
            bytes(signature),
        )


def new_authorization(
    *,
    owner: str,
    token: str,
    amount: int,
    spender: str,
    to: str,
    max_timeout_seconds: int,
    facilitator: str | None = None,
    request_hash: bytes | str | None = None,
    now: int | None = None,
    nonce: int | None = None,
) -> Permit2Authorization:
    """An authorisation with the x402 client defaults: a random 256-bit nonce, ``validAfter = now - 600`` and
    ``deadline = now + max_timeout_seconds``."""
    timeout = parse_uint256(max_timeout_seconds, "max_timeout_seconds")
    if timeout == 0:
        raise InvalidInput("max_timeout_seconds: must be positive")
    current = int(time.time()) if now is None else parse_uint256(now, "now")
    return Permit2Authorization(
        owner=owner,
        token=token,
        amount=amount,
        spender=spender,
        nonce=secrets.randbits(256) if nonce is None else nonce,
        deadline=current + timeout,
        to=to,
        valid_after=max(current - VALID_AFTER_SKEW_SECONDS, 0),
        facilitator=facilitator,
        request_hash=None if request_hash is None else parse_bytes32(request_hash, "request_hash"),
    )


def sign_authorization(
    authorization: Permit2Authorization, private_key: Any, chain_id: int, permit2: str = PERMIT2_ADDRESS
) -> bytes:
    """Sign ``authorization`` with eth-account's EIP-712 typed-data signing; returns 65 bytes ``r ‖ s ‖ v``.

    The digest eth-account signed is checked against the hand-computed one before the signature is returned.
    """
    signed = Account.sign_typed_data(private_key, full_message=authorization.typed_data(chain_id, permit2))
    if bytes(signed.message_hash) != authorization.digest(chain_id, permit2):
        raise InvariantViolation("eth-account's typed-data digest differs from og_settle's hand-computed digest")
    return bytes(signed.signature)


def is_canonical_signature(signature: bytes) -> bool:
    """Whether a 65-byte or 64-byte (EIP-2098) signature has a low ``s`` and (65 bytes) ``v`` of 27 or 28."""
    if len(signature) == 65:
        s, v = int.from_bytes(signature[32:64], "big"), signature[64]
        return v in (27, 28) and 0 < s <= _SECP256K1_N // 2
    if len(signature) == 64:
        s = int.from_bytes(signature[32:64], "big") & ((1 << 255) - 1)
        return 0 < s <= _SECP256K1_N // 2
    return False


def recover_signer(
    authorization: Permit2Authorization, signature: bytes | str, chain_id: int, permit2: str = PERMIT2_ADDRESS
) -> str | None:
    """The address that signed ``authorization`` on ``chain_id``, or ``None`` if the signature is malformed or
    not canonical (high ``s``, bad ``v``). EIP-2098 64-byte signatures are expanded first."""
    return recover_digest_signer(authorization.digest(chain_id, permit2), signature)


def recover_digest_signer(digest: bytes, signature: bytes | str) -> str | None:
    """The address whose key signed the 32-byte ``digest``, or ``None`` if the signature is malformed or not
    canonical (high ``s``, bad ``v``). EIP-2098 64-byte signatures are expanded first."""
    raw = parse_hex_bytes(signature, "signature", max_len=65)
    if not is_canonical_signature(raw):
        return None
    if len(raw) == 64:
        vs = int.from_bytes(raw[32:], "big")
        raw = raw[:32] + (vs & ((1 << 255) - 1)).to_bytes(32, "big") + bytes([27 + (vs >> 255)])
    try:
        public_key = coincurve.PublicKey.from_signature_and_message(
            raw[:64] + bytes([raw[64] - 27]), digest, hasher=None
        )
    except ValueError:  # r or s out of range, or no point on the curve: no signer
        return None
    recovered = to_checksum_address(keccak256(public_key.format(compressed=False)[1:])[12:])
    return recovered


@dataclass(frozen=True, slots=True)
class ApprovalResult:
    """The outcome of :func:`ensure_opg_approval`.

    Attributes:
        allowance_before: The token allowance the owner had granted Permit2 before the call.
        allowance_after: The allowance after the call (equal to ``allowance_before`` if nothing was sent).
        tx_hash: The approve transaction's hash, or ``None`` when the allowance already sufficed.
    """

    allowance_before: int
    allowance_after: int
    tx_hash: str | None


_ALLOWANCE_SELECTOR: Final = keccak256(b"allowance(address,address)")[:4]
_APPROVE_SELECTOR: Final = keccak256(b"approve(address,uint256)")[:4]


def _read_allowance(web3: Any, token: str, owner: str, spender: str) -> int:
    data = _ALLOWANCE_SELECTOR + encode(["address", "address"], [owner, spender])
    result = bytes(web3.eth.call({"to": token, "data": to_hex(data)}))
    if len(result) != 32:
        raise InvalidInput(f"token: {token} did not answer allowance() with one uint256 (is it an ERC-20?)")
    return int.from_bytes(result, "big")


def ensure_opg_approval(
    min_allowance: int,
    *,
    private_key: Any,
    web3: Any = None,
    rpc_url: str | None = None,
    token: str = OPG_ADDRESS,
    spender: str = PERMIT2_ADDRESS,
    approve_amount: int | None = None,
    timeout_seconds: float = 120,
) -> ApprovalResult:
    """Make sure ``private_key``'s account lets Permit2 spend at least ``min_allowance`` of OPG.

    As OpenGradient's SDK does, an ``approve`` transaction is sent only when the current allowance is below
    ``min_allowance``; it approves ``approve_amount`` (default: ``min_allowance``). Pass either a ``web3``
    instance or an ``rpc_url``. Raises :class:`~og_settle.InvalidInput` for bad arguments and ``RuntimeError``
    if the approve transaction reverts.
    """
    minimum = parse_uint256(min_allowance, "min_allowance")
    amount = minimum if approve_amount is None else parse_uint256(approve_amount, "approve_amount")
    if amount < minimum:
        raise InvalidInput(f"approve_amount: {amount} is below min_allowance {minimum}")
    token, spender = parse_address(token, "token"), parse_address(spender, "spender")
    if web3 is None:
        if rpc_url is None:
            raise InvalidInput("web3: pass a Web3 instance or rpc_url")
        from web3 import Web3  # lazy: og_settle must import without web3

        web3 = Web3(Web3.HTTPProvider(rpc_url))
    account: LocalAccount = Account.from_key(private_key)
    before = _read_allowance(web3, token, account.address, spender)
    if before >= minimum:
        return ApprovalResult(allowance_before=before, allowance_after=before, tx_hash=None)
    data = _APPROVE_SELECTOR + encode(["address", "uint256"], [spender, amount])
    tx: dict[str, Any] = {
        "from": account.address,
        "to": token,
        "data": to_hex(data),
        "value": 0,
        "nonce": web3.eth.get_transaction_count(account.address, "pending"),
        "chainId": web3.eth.chain_id,
    }
    tx["gas"] = web3.eth.estimate_gas(tx)
    latest = web3.eth.get_block("latest")
    tip = web3.eth.max_priority_fee
    tx["maxPriorityFeePerGas"] = tip
    tx["maxFeePerGas"] = 2 * int(latest["baseFeePerGas"]) + tip
    signed = account.sign_transaction(tx)
    tx_hash = web3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = web3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout_seconds)
    if receipt["status"] != 1:
        raise RuntimeError(f"approve transaction {to_hex(bytes(tx_hash))} reverted")
    after = _read_allowance(web3, token, account.address, spender)
    return ApprovalResult(allowance_before=before, allowance_after=after, tx_hash=to_hex(bytes(tx_hash)))
