"""EIP-3009 ``TransferWithAuthorization``: the authorisation x402's exact scheme signs for stablecoins such as USDC.

The payer signs, over the **token's** EIP-712 domain ``{name, version, chainId, verifyingContract: token}``::

    TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,
                              bytes32 nonce)

and anyone submits it with the token's ``transferWithAuthorization``. The nonce is 32 random bytes, spent once per
payer (``authorizationState(from, nonce)``). It is valid strictly after ``validAfter`` and strictly before
``validBefore``. The x402 payload is ``{signature, authorization: {from, to, value, validAfter, validBefore,
nonce}}`` with decimal strings for the numbers and ``0x`` hex for the nonce, as the stock SDKs send it.

Only eth-abi, eth-account and the keccak are imported here; recovery is _permit2's (coincurve).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_account import Account

from og_settle._eip712 import TokenDomain
from og_settle._errors import InvalidInput, InvariantViolation
from og_settle._hex import (
    keccak256,
    parse_address,
    parse_bytes32,
    parse_hex_bytes,
    parse_uint256,
    to_hex,
)
from og_settle._permit2 import recover_digest_signer

__all__ = [
    "TRANSFER_WITH_AUTHORIZATION_TYPE",
    "Eip3009Authorization",
    "Eip3009Payload",
    "Eip3009Payment",
    "TokenDomain",  # its home is og_settle._eip712; named here too, beside what signs over it
    "erc6492_inner",
    "erc6492_wrapped",
    "is_eip3009_body",
    "new_eip3009_authorization",
    "recover_eip3009_signer",
    "sign_eip3009",
]

TRANSFER_WITH_AUTHORIZATION_TYPE: Final = (
    "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,"
    "bytes32 nonce)"
)
# ERC-6492: a signature by a not-yet-deployed contract wallet ends with this 32-byte magic value.
_ERC6492_MAGIC: Final = bytes.fromhex("6492" * 16)
_MAX_SIGNATURE_BYTES: Final = 4096


@dataclass(frozen=True, slots=True)
class Eip3009Authorization:
    """A ``TransferWithAuthorization`` message.

    Attributes:
        owner: ``from``, the payer and signer.
        to: the payee.
        value: the amount in the token's atomic units.
        valid_after: valid strictly after this timestamp.
        valid_before: valid strictly before this timestamp.
        nonce: 32 bytes, unique per payer.
    """

    owner: str
    to: str
    value: int
    valid_after: int
    valid_before: int
    nonce: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "owner", parse_address(self.owner, "from"))
        object.__setattr__(self, "to", parse_address(self.to, "to"))
        for name in ("value", "valid_after", "valid_before"):
            label = {"valid_after": "validAfter", "valid_before": "validBefore"}.get(name, name)
            object.__setattr__(self, name, parse_uint256(getattr(self, name), label))
        object.__setattr__(self, "nonce", parse_bytes32(self.nonce, "nonce"))

    def struct_hash(self) -> bytes:
        return keccak256(
            encode(
                ["bytes32", "address", "address", "uint256", "uint256", "uint256", "bytes32"],
                [
                    keccak256(TRANSFER_WITH_AUTHORIZATION_TYPE.encode()),
                    self.owner,
                    self.to,
                    self.value,
                    self.valid_after,
                    self.valid_before,
                    self.nonce,
                ],
            )
        )

    def digest(self, domain: TokenDomain) -> bytes:
        """The EIP-712 digest the payer signs."""
        return domain.digest(self.struct_hash())

    def typed_data(self, domain: TokenDomain) -> dict[str, Any]:
        """The EIP-712 typed data (eth-account's ``full_message`` form), as the stock x402 SDKs build it."""
        return domain.typed_data(
            TRANSFER_WITH_AUTHORIZATION_TYPE,
            {
                "from": self.owner,
                "to": self.to,
                "value": self.value,
                "validAfter": self.valid_after,
                "validBefore": self.valid_before,
                "nonce": self.nonce,
            },
        )

    def to_json(self) -> dict[str, str]:
        """The x402 ``authorization`` object (numbers as decimal strings, the nonce as 0x hex)."""
        return {
            "from": self.owner,
            "to": self.to,
            "value": str(self.value),
            "validAfter": str(self.valid_after),
            "validBefore": str(self.valid_before),
            "nonce": to_hex(self.nonce),
        }


def _field(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise InvalidInput(f"{where}.{key}: missing")
    return data[key]


@dataclass(frozen=True, slots=True)
class Eip3009Payload:
    """The scheme payload of an EIP-3009 x402 payment.

    Attributes:
        signature: the payer's signature: 65 bytes ``r ‖ s ‖ v`` for an EOA, an ERC-1271 blob for a contract
            wallet, or an ERC-6492-wrapped one for a wallet not deployed yet.
        authorization: the signed authorisation.
    """

    signature: bytes
    authorization: Eip3009Authorization

    def to_json(self) -> dict[str, Any]:
        """``{authorization: {...}, signature}``."""
        return {"authorization": self.authorization.to_json(), "signature": to_hex(self.signature)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "payload") -> Eip3009Payload:
        """Parse and validate; errors name the bad field by its path."""
        if not isinstance(data, Mapping):
            raise InvalidInput(f"{where}: expected a JSON object, got {type(data).__name__}")
        signature = parse_hex_bytes(
            _field(data, "signature", where), f"{where}.signature", max_len=_MAX_SIGNATURE_BYTES
        )
        auth = _field(data, "authorization", where)
        where = f"{where}.authorization"
        if not isinstance(auth, Mapping):
            raise InvalidInput(f"{where}: expected a JSON object, got {type(auth).__name__}")
        fields = {k: _field(auth, k, where) for k in ("from", "to", "value", "validAfter", "validBefore", "nonce")}
        for key in ("value", "validAfter", "validBefore"):
            if not isinstance(fields[key], str | int) or isinstance(fields[key], bool):
                raise InvalidInput(f"{where}.{key}: expected a decimal string, got {type(fields[key]).__name__}")
        try:
            authorization = Eip3009Authorization(
                owner=fields["from"],
                to=fields["to"],
                value=fields["value"],
                valid_after=fields["validAfter"],
                valid_before=fields["validBefore"],
                nonce=fields["nonce"],
            )
        except InvalidInput as err:
            message = str(err)
            raise InvalidInput(message if message.startswith(where) else f"{where}.{message}") from None
        return cls(signature=signature, authorization=authorization)


@dataclass(frozen=True, slots=True)
class Eip3009Payment:
    """An EIP-3009 payment to settle: the signed payload and the token domain it was signed over.

    Attributes:
        payload: the payer's authorisation and signature.
        domain: the token's EIP-712 domain (its address is the token).
    """

    payload: Eip3009Payload
    domain: TokenDomain

    @property
    def token(self) -> str:
        return self.domain.token

    @property
    def key(self) -> str:
        """The payment's id: the authorisation's EIP-712 digest (``0x`` + 64 hex digits)."""
        return to_hex(self.payload.authorization.digest(self.domain))


def new_eip3009_authorization(
    owner: str,
    to: str,
    value: int,
    max_timeout_seconds: int,
    *,
    now: int | None = None,
    nonce: bytes | None = None,
) -> Eip3009Authorization:
    """An authorisation as the stock SDK client makes it: ``validAfter`` 0, ``validBefore`` now + timeout, a
    random nonce."""
    now = int(time.time()) if now is None else now
    return Eip3009Authorization(
        owner=owner,
        to=to,
        value=value,
        valid_after=0,
        valid_before=now + max_timeout_seconds,
        nonce=secrets.token_bytes(32) if nonce is None else nonce,
    )


def sign_eip3009(authorization: Eip3009Authorization, private_key: Any, domain: TokenDomain) -> bytes:
    """Sign with eth-account's EIP-712 typed-data signing; returns 65 bytes ``r ‖ s ‖ v``. The digest eth-account
    signed is checked against the hand-computed one."""
    signed = Account.sign_typed_data(private_key, full_message=authorization.typed_data(domain))
    if bytes(signed.message_hash) != authorization.digest(domain):
        raise InvariantViolation("eth-account's EIP-3009 digest differs from og_settle's hand-computed digest")
    return bytes(signed.signature)


def recover_eip3009_signer(authorization: Eip3009Authorization, signature: bytes, domain: TokenDomain) -> str | None:
    """The EOA that signed, or None unless ``signature`` is a canonical 65-byte ECDSA signature (low ``s``, ``v``
    27 or 28: what the token's ``ecrecover`` path accepts)."""
    if len(signature) != 65:  # no EIP-2098 short form: the token's ecrecover path takes v, r, s
        return None
    return recover_digest_signer(authorization.digest(domain), signature)


def is_eip3009_body(body: Any) -> bool:
    """Whether a ``/verify`` or ``/settle`` body carries an EIP-3009 payload (``payload.authorization``)."""
    if not isinstance(body, Mapping):
        return False
    payment = body.get("paymentPayload")
    payload = payment.get("payload") if isinstance(payment, Mapping) else None
    return isinstance(payload, Mapping) and "authorization" in payload and "permit2Authorization" not in payload


def erc6492_wrapped(signature: bytes) -> bool:
    """Whether ``signature`` is ERC-6492-wrapped (a counterfactual wallet's: factory, calldata, inner signature)."""
    return len(signature) >= 32 and signature[-32:] == _ERC6492_MAGIC


def erc6492_inner(signature: bytes) -> bytes | None:
    """The signature inside an ERC-6492 wrapper ``abi.encode(factory, calldata, inner) ‖ magic`` (what a deployed
    wallet's ERC-1271 check and the token take), ``signature`` itself when it is not wrapped, None when the
    wrapper does not decode."""
    if not erc6492_wrapped(signature):
        return signature
    try:
        _, _, inner = decode(["address", "bytes", "bytes"], signature[:-32])
    except (DecodingError, ValueError, OverflowError):
        return None
    return bytes(inner)
