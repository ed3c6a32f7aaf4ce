"""x402 v2 wire formats for Permit2 payments and client-side payload creation.

Wire objects (``PaymentRequirements``, ``PaymentRequired``, ``PaymentPayload``, ``SettleResponse``) convert to
and from their camelCase JSON with ``to_json`` / ``from_json`` and travel in HTTP headers as base64 JSON
(:func:`encode_header`, ``decode_*_header``). Verification, as a facilitator does it, is in
:mod:`og_settle._x402_verify`.

The Permit2 spender is the canonical x402 proxy of the scheme, as every stock client signs, unless the
requirements name og-settle's PaymentFacilitator. og-settle extensions, all optional: ``witness.requestHash``
(the request-bound variants, PaymentFacilitator only), and in ``PaymentRequirements.extra`` the keys
``spender`` (the PaymentFacilitator contract), ``facilitator`` (who settles upto payments through it; x402's
own key ``facilitatorAddress`` is read too) and ``requestHash`` (asks the client to bind its payment).
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from og_settle._errors import InvalidInput
from og_settle._hex import parse_address, parse_bytes32, parse_hex_bytes, parse_uint256, to_hex
from og_settle._networks import PERMIT2_ADDRESS, X402_EXACT_PERMIT2_PROXY, X402_UPTO_PERMIT2_PROXY
from og_settle._permit2 import (
    Permit2Authorization,
    new_authorization,
    sign_authorization,
)

__all__ = [
    "PAYMENT_REQUIRED_HEADER",
    "PAYMENT_RESPONSE_HEADER",
    "PAYMENT_SIGNATURE_HEADER",
    "X402_VERSION",
    "PaymentPayload",
    "PaymentRequired",
    "PaymentRequirements",
    "Permit2Payload",
    "ReasonCode",
    "SettleResponse",
    "VerifyResult",
    "create_payment_payload",
    "decode_header",
    "decode_payment_required_header",
    "decode_payment_response_header",
    "decode_payment_signature_header",
    "encode_header",
]

X402_VERSION: Final = 2
PAYMENT_REQUIRED_HEADER: Final = "PAYMENT-REQUIRED"
PAYMENT_SIGNATURE_HEADER: Final = "PAYMENT-SIGNATURE"
PAYMENT_RESPONSE_HEADER: Final = "PAYMENT-RESPONSE"
# A header value is at most this many characters; it bounds what a client can make us decode.
MAX_HEADER_LENGTH: Final = 16_384


class ReasonCode(enum.StrEnum):
    """x402 reason codes for failed verification or settlement (wire values)."""

    INVALID_X402_VERSION = "invalid_x402_version"
    UNSUPPORTED_SCHEME = "unsupported_scheme"
    INVALID_NETWORK = "invalid_network"
    INVALID_PERMIT2_SPENDER = "invalid_permit2_spender"
    INVALID_PERMIT2_RECIPIENT_MISMATCH = "invalid_permit2_recipient_mismatch"
    PERMIT2_DEADLINE_EXPIRED = "permit2_deadline_expired"
    PERMIT2_NOT_YET_VALID = "permit2_not_yet_valid"
    PERMIT2_AMOUNT_MISMATCH = "permit2_amount_mismatch"
    PERMIT2_TOKEN_MISMATCH = "permit2_token_mismatch"
    INVALID_PERMIT2_SIGNATURE = "invalid_permit2_signature"
    PERMIT2_ALLOWANCE_REQUIRED = "permit2_allowance_required"
    PERMIT2_INVALID_AMOUNT = "permit2_invalid_amount"
    PERMIT2_INVALID_NONCE = "permit2_invalid_nonce"
    PERMIT2_INSUFFICIENT_BALANCE = "permit2_insufficient_balance"
    PERMIT2_SIMULATION_FAILED = "permit2_simulation_failed"
    INVALID_PAYLOAD = "invalid_payload"
    UPTO_FACILITATOR_MISMATCH = "upto_facilitator_mismatch"
    UPTO_SETTLEMENT_EXCEEDS_AMOUNT = "invalid_upto_evm_payload_settlement_exceeds_amount"
    SETTLEMENT_PENDING = "settlement_pending"
    TRANSACTION_FAILED = "transaction_failed"
    # og-settle additions: the bound request hash (a field standard payloads do not carry), a payTo outside the
    # facilitator's allow-list, and a settlement whose permit already settled for a different amount.
    INVALID_PERMIT2_REQUEST_HASH = "invalid_permit2_request_hash"
    PAY_TO_NOT_ALLOWED = "pay_to_not_allowed"
    # EIP-3009 (exact, transferWithAuthorization): the stock SDK's codes, same wire values.
    EIP3009_INVALID_SIGNATURE = "invalid_exact_evm_payload_signature"
    EIP3009_UNDEPLOYED_SMART_WALLET = "invalid_exact_evm_payload_undeployed_smart_wallet"
    EIP6492_FACTORY_NOT_ALLOWED = "eip6492_factory_not_allowed"
    EIP3009_RECIPIENT_MISMATCH = "invalid_exact_evm_payload_recipient_mismatch"
    EIP3009_VALUE_MISMATCH = "invalid_exact_evm_payload_authorization_value_mismatch"
    EIP3009_VALID_BEFORE_EXPIRED = "invalid_exact_evm_payload_authorization_valid_before"
    EIP3009_VALID_AFTER_FUTURE = "invalid_exact_evm_payload_authorization_valid_after"
    EIP3009_NONCE_ALREADY_USED = "invalid_exact_evm_nonce_already_used"
    EIP3009_INSUFFICIENT_BALANCE = "invalid_exact_evm_insufficient_balance"
    MISSING_EIP712_DOMAIN = "missing_eip712_domain"
    EIP3009_FAILED_TO_GET_ASSET_INFO = "invalid_exact_evm_failed_to_get_asset_info"
    EIP3009_TOKEN_NAME_MISMATCH = "invalid_exact_evm_token_name_mismatch"
    EIP3009_TOKEN_VERSION_MISMATCH = "invalid_exact_evm_token_version_mismatch"
    EIP3009_NOT_SUPPORTED = "invalid_exact_evm_eip3009_not_supported"
    EIP3009_SIMULATION_FAILED = "invalid_exact_evm_transaction_simulation_failed"
    ASSET_NOT_DEPLOYED_CONTRACT = "asset_not_deployed_contract"
    # The eip2612GasSponsoring extension (gasless Permit2 approval): x402's own codes, then og-settle's checks of
    # the permit's value, nonce and signature, and a token without EIP-2612.
    INVALID_EIP2612_EXTENSION_FORMAT = "invalid_eip2612_extension_format"
    EIP2612_FROM_MISMATCH = "eip2612_from_mismatch"
    EIP2612_ASSET_MISMATCH = "eip2612_asset_mismatch"
    EIP2612_SPENDER_NOT_PERMIT2 = "eip2612_spender_not_permit2"
    EIP2612_DEADLINE_EXPIRED = "eip2612_deadline_expired"
    EIP2612_AMOUNT_MISMATCH = "eip2612_amount_mismatch"
    EIP2612_INVALID_NONCE = "eip2612_invalid_nonce"
    INVALID_EIP2612_SIGNATURE = "invalid_eip2612_signature"
    EIP2612_NOT_SUPPORTED = "eip2612_not_supported"


def _require(data: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{where}: expected a JSON object, got {type(data).__name__}")
    if key not in data:
        raise InvalidInput(f"{where}.{key}: missing")
    return data[key]


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: expected a string, got {type(value).__name__}")
    return value


def _chain_id_of(network: str) -> int:
    namespace, _, reference = network.partition(":")
    if namespace != "eip155" or not reference.isdigit():
        raise InvalidInput(f"network: expected a CAIP-2 EVM network like 'eip155:84532', got {network!r}")
    return int(reference)


@dataclass(frozen=True, slots=True)
class PaymentRequirements:
    """One way to pay that a server accepts (x402 v2 ``PaymentRequirements``).

    Attributes:
        scheme: ``"exact"`` or ``"upto"``.
        network: CAIP-2 network, e.g. ``"eip155:84532"``.
        amount: Atomic units: the price (exact) or the maximum (upto).
        asset: The token address (OPG).
        pay_to: The recipient address.
        max_timeout_seconds: How long a signed payment stays valid.
        extra: Scheme extras, e.g. ``{"assetTransferMethod": "permit2", "name": ..., "version": ...}``.
    """

    scheme: str
    network: str
    amount: int
    asset: str
    pay_to: str
    max_timeout_seconds: int
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scheme", _string(self.scheme, "scheme"))
        _chain_id_of(_string(self.network, "network"))
        object.__setattr__(self, "amount", parse_uint256(self.amount, "amount"))
        object.__setattr__(self, "asset", parse_address(self.asset, "asset"))
        object.__setattr__(self, "pay_to", parse_address(self.pay_to, "payTo"))
        object.__setattr__(self, "max_timeout_seconds", parse_uint256(self.max_timeout_seconds, "maxTimeoutSeconds"))
        if not isinstance(self.extra, Mapping):
            raise InvalidInput(f"extra: expected a JSON object, got {type(self.extra).__name__}")
        object.__setattr__(self, "extra", dict(self.extra))

    @property
    def chain_id(self) -> int:
        """The EIP-155 chain id of ``network``."""
        return _chain_id_of(self.network)

    @property
    def spender(self) -> str:
        """The Permit2 spender a payment for these requirements names: og-settle's ``extra.spender`` when set
        (the PaymentFacilitator), else the canonical x402 proxy of the scheme, which stock clients hard-code."""
        named = self.extra.get("spender")
        if named is not None:
            return parse_address(named, "extra.spender")
        if self.scheme == "upto":
            return X402_UPTO_PERMIT2_PROXY
        return X402_EXACT_PERMIT2_PROXY

    @property
    def settler(self) -> str | None:
        """upto: the account that settles (``extra.facilitator``, else x402's ``extra.facilitatorAddress``)."""
        named = self.extra.get("facilitator", self.extra.get("facilitatorAddress"))
        return None if named is None else parse_address(named, "extra.facilitatorAddress")

    def to_json(self) -> dict[str, Any]:
        """The camelCase JSON object (amounts as decimal strings)."""
        return {
            "scheme": self.scheme,
            "network": self.network,
            "amount": str(self.amount),
            "asset": self.asset,
            "payTo": self.pay_to,
            "maxTimeoutSeconds": self.max_timeout_seconds,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "paymentRequirements") -> PaymentRequirements:
        """Parse and validate the JSON object; errors name the bad field."""
        return cls(
            scheme=_require(data, "scheme", where),
            network=_require(data, "network", where),
            amount=_require(data, "amount", where),
            asset=_require(data, "asset", where),
            pay_to=_require(data, "payTo", where),
            max_timeout_seconds=_require(data, "maxTimeoutSeconds", where),
            extra=data.get("extra") or {},
        )


@dataclass(frozen=True, slots=True)
class PaymentRequired:
    """The body of a 402 answer, carried in the ``PAYMENT-REQUIRED`` header.

    Attributes:
        accepts: The payment options, in the server's order of preference.
        error: A human-readable reason, if any.
        resource: The resource object (``url``, ``description``, ``mimeType``), passed through as is.
        extensions: Protocol extensions, passed through as is.
    """

    accepts: tuple[PaymentRequirements, ...]
    error: str | None = None
    resource: Mapping[str, Any] | None = None
    extensions: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The camelCase JSON object."""
        body: dict[str, Any] = {"x402Version": X402_VERSION}
        if self.error is not None:
            body["error"] = self.error
        if self.resource is not None:
            body["resource"] = dict(self.resource)
        body["accepts"] = [option.to_json() for option in self.accepts]
        if self.extensions is not None:
            body["extensions"] = dict(self.extensions)
        return body

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PaymentRequired:
        """Parse and validate; rejects versions other than 2."""
        _check_version(_require(data, "x402Version", "paymentRequired"))
        accepts = _require(data, "accepts", "paymentRequired")
        if not isinstance(accepts, list):
            raise InvalidInput("paymentRequired.accepts: expected a list")
        return cls(
            accepts=tuple(PaymentRequirements.from_json(item, f"accepts[{i}]") for i, item in enumerate(accepts)),
            error=data.get("error"),
            resource=data.get("resource"),
            extensions=data.get("extensions"),
        )


def _check_version(version: Any) -> None:
    if version != X402_VERSION or isinstance(version, bool):
        raise InvalidInput(f"x402Version: expected {X402_VERSION}, got {version!r}")


@dataclass(frozen=True, slots=True)
class Permit2Payload:
    """The scheme payload of a Permit2 payment: the signature and the signed authorisation.

    Attributes:
        signature: The payer's signature (65 bytes for an EOA).
        authorization: The signed ``permit2Authorization``.
    """

    signature: bytes
    authorization: Permit2Authorization

    def to_json(self) -> dict[str, Any]:
        """``{signature, permit2Authorization: {from, permitted, spender, nonce, deadline, witness}}``."""
        auth = self.authorization
        witness: dict[str, Any] = {"to": auth.to}
        if auth.facilitator is not None:
            witness["facilitator"] = auth.facilitator
        witness["validAfter"] = str(auth.valid_after)
        if auth.request_hash is not None:
            witness["requestHash"] = to_hex(auth.request_hash)
        return {
            "signature": to_hex(self.signature),
            "permit2Authorization": {
                "from": auth.owner,
                "permitted": {"token": auth.token, "amount": str(auth.amount)},
                "spender": auth.spender,
                "nonce": str(auth.nonce),
                "deadline": str(auth.deadline),
                "witness": witness,
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "payload") -> Permit2Payload:
        """Parse and validate; errors name the bad field."""
        signature = parse_hex_bytes(_require(data, "signature", where), f"{where}.signature", max_len=4096)
        auth = _require(data, "permit2Authorization", where)
        where = f"{where}.permit2Authorization"
        permitted = _require(auth, "permitted", where)
        witness = _require(auth, "witness", where)
        request_hash = witness.get("requestHash") if isinstance(witness, Mapping) else None
        try:
            authorization = Permit2Authorization(
                owner=_require(auth, "from", where),
                token=_require(permitted, "token", f"{where}.permitted"),
                amount=_require(permitted, "amount", f"{where}.permitted"),
                spender=_require(auth, "spender", where),
                nonce=_require(auth, "nonce", where),
                deadline=_require(auth, "deadline", where),
                to=_require(witness, "to", f"{where}.witness"),
                valid_after=_require(witness, "validAfter", f"{where}.witness"),
                facilitator=witness.get("facilitator"),
                request_hash=None if request_hash is None else parse_bytes32(request_hash, "witness.requestHash"),
            )
        except InvalidInput as err:  # name the field by its path in the payload (nonce, deadline, witness...)
            message = str(err)
            raise InvalidInput(message if message.startswith(where) else f"{where}.{message}") from None
        return cls(signature=signature, authorization=authorization)


@dataclass(frozen=True, slots=True)
class PaymentPayload:
    """What the client sends in ``PAYMENT-SIGNATURE`` (x402 v2 ``PaymentPayload``).

    Attributes:
        accepted: The requirements the client chose to pay.
        payload: The Permit2 signature and authorisation.
        resource: The resource object, passed through as is.
        extensions: Protocol extensions, passed through as is.
    """

    accepted: PaymentRequirements
    payload: Permit2Payload
    resource: Mapping[str, Any] | None = None
    extensions: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The camelCase JSON object."""
        body: dict[str, Any] = {"x402Version": X402_VERSION}
        if self.resource is not None:
            body["resource"] = dict(self.resource)
        body["accepted"] = self.accepted.to_json()
        body["payload"] = self.payload.to_json()
        if self.extensions is not None:
            body["extensions"] = dict(self.extensions)
        return body

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PaymentPayload:
        """Parse and validate; rejects versions other than 2."""
        _check_version(_require(data, "x402Version", "paymentPayload"))
        return cls(
            accepted=PaymentRequirements.from_json(_require(data, "accepted", "paymentPayload"), "accepted"),
            payload=Permit2Payload.from_json(_require(data, "payload", "paymentPayload")),
            resource=data.get("resource"),
            extensions=data.get("extensions"),
        )


@dataclass(frozen=True, slots=True)
class SettleResponse:
    """The settlement result, carried in ``PAYMENT-RESPONSE`` (and the body of ``POST /settle``).

    Attributes:
        success: Whether the payment settled.
        transaction: The transaction hash (empty string when nothing was sent).
        network: CAIP-2 network.
        payer: The payer's address, when known.
        error_reason: An x402 reason code when ``success`` is false.
        amount: The settled amount in atomic units (upto; an exact success carries none).
        error_message: A human-readable explanation of ``error_reason``.
        extensions: Protocol extensions, passed through as is.
    """

    success: bool
    transaction: str
    network: str
    payer: str | None = None
    error_reason: str | None = None
    amount: int | None = None
    error_message: str | None = None
    extensions: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The camelCase JSON object (``transaction`` and ``network`` always present)."""
        body: dict[str, Any] = {"success": self.success}
        if self.error_reason is not None:
            body["errorReason"] = self.error_reason
        if self.error_message is not None:
            body["errorMessage"] = self.error_message
        if self.payer is not None:
            body["payer"] = self.payer
        body["transaction"] = self.transaction
        body["network"] = self.network
        if self.amount is not None:
            body["amount"] = str(self.amount)
        if self.extensions is not None:
            body["extensions"] = dict(self.extensions)
        return body

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SettleResponse:
        """Parse and validate."""
        success = _require(data, "success", "settleResponse")
        if not isinstance(success, bool):
            raise InvalidInput("settleResponse.success: expected a boolean")
        amount = data.get("amount")
        payer = data.get("payer")
        extensions = data.get("extensions")
        return cls(
            success=success,
            transaction=_string(_require(data, "transaction", "settleResponse"), "settleResponse.transaction"),
            network=_string(_require(data, "network", "settleResponse"), "settleResponse.network"),
            payer=None if payer is None else parse_address(payer, "settleResponse.payer"),
            error_reason=data.get("errorReason"),
            amount=None if amount is None else parse_uint256(amount, "settleResponse.amount"),
            error_message=data.get("errorMessage"),
            extensions=extensions if isinstance(extensions, Mapping) else None,
        )


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The answer of :func:`verify_payment` (the body of ``POST /verify``).

    Attributes:
        is_valid: Whether the payload would settle.
        invalid_reason: The x402 reason code when not valid.
        payer: The payer's address (``permit2Authorization.from``).
        invalid_message: A human-readable explanation of ``invalid_reason``.
        extensions: Protocol extensions, passed through as is.
    """

    is_valid: bool
    invalid_reason: ReasonCode | None = None
    payer: str | None = None
    invalid_message: str | None = None
    extensions: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """``{isValid, invalidReason?, invalidMessage?, payer?, extensions?}``."""
        body: dict[str, Any] = {"isValid": self.is_valid}
        if self.invalid_reason is not None:
            body["invalidReason"] = str(self.invalid_reason)
        if self.invalid_message is not None:
            body["invalidMessage"] = self.invalid_message
        if self.payer is not None:
            body["payer"] = self.payer
        if self.extensions is not None:
            body["extensions"] = dict(self.extensions)
        return body


def encode_header(message: PaymentRequired | PaymentPayload | SettleResponse) -> str:
    """The base64 header value of a wire object (compact JSON, then standard base64)."""
    text = json.dumps(message.to_json(), separators=(",", ":"))
    return base64.b64encode(text.encode()).decode("ascii")


def decode_header(value: str, header: str) -> Any:
    """The JSON inside a base64 header value; ``header`` names the header in errors."""
    if not isinstance(value, str) or len(value) > MAX_HEADER_LENGTH:
        raise InvalidInput(f"{header}: expected a base64 string of at most {MAX_HEADER_LENGTH} characters")
    try:
        text = base64.b64decode(value.strip(), validate=True).decode()
        return json.loads(text)
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidInput(f"{header}: not base64-encoded JSON ({error})") from None


def decode_payment_signature_header(value: str) -> PaymentPayload:
    """Parse a ``PAYMENT-SIGNATURE`` header value."""
    return PaymentPayload.from_json(decode_header(value, PAYMENT_SIGNATURE_HEADER))


def decode_payment_required_header(value: str) -> PaymentRequired:
    """Parse a ``PAYMENT-REQUIRED`` header value."""
    return PaymentRequired.from_json(decode_header(value, PAYMENT_REQUIRED_HEADER))


def decode_payment_response_header(value: str) -> SettleResponse:
    """Parse a ``PAYMENT-RESPONSE`` header value."""
    return SettleResponse.from_json(decode_header(value, PAYMENT_RESPONSE_HEADER))


def create_payment_payload(
    requirements: PaymentRequirements,
    private_key: Any,
    *,
    spender: str | None = None,
    facilitator: str | None = None,
    request_hash: bytes | str | None = None,
    resource: Mapping[str, Any] | None = None,
    now: int | None = None,
    nonce: int | None = None,
    permit2: str = PERMIT2_ADDRESS,
) -> PaymentPayload:
    """Sign a Permit2 payment for ``requirements`` as an x402 client does.

    ``spender`` defaults to :attr:`PaymentRequirements.spender` (``extra.spender``, else the canonical x402
    proxy, as stock clients sign), ``facilitator`` (upto only) to :attr:`PaymentRequirements.settler` and
    ``request_hash`` (bound variants) to ``extra.requestHash``.
    """
    from eth_account import Account

    extra = requirements.extra
    spender = spender if spender is not None else requirements.spender
    if requirements.scheme == "upto":
        facilitator = facilitator if facilitator is not None else requirements.settler
        if facilitator is None:
            raise InvalidInput("facilitator: the upto scheme needs the settling facilitator's address")
    elif requirements.scheme == "exact":
        if facilitator is not None:
            raise InvalidInput("facilitator: the exact scheme's witness has no facilitator")
    else:
        raise InvalidInput(f"scheme: expected 'exact' or 'upto', got {requirements.scheme!r}")
    request_hash = request_hash if request_hash is not None else extra.get("requestHash")
    authorization = new_authorization(
        owner=Account.from_key(private_key).address,
        token=requirements.asset,
        amount=requirements.amount,
        spender=spender,
        to=requirements.pay_to,
        max_timeout_seconds=requirements.max_timeout_seconds,
        facilitator=facilitator,
        request_hash=request_hash,
        now=now,
        nonce=nonce,
    )
    signature = sign_authorization(authorization, private_key, requirements.chain_id, permit2)
    return PaymentPayload(accepted=requirements, payload=Permit2Payload(signature, authorization), resource=resource)
