"""The envelope of a ``/verify`` or ``/settle`` body, and a Permit2 payment parsed out of it.

Parsing raises :class:`Malformed` with the x402 reason code and a message that names the field; the
protocol answers it as ``isValid: false`` / ``success: false`` (the stock SDKs read only HTTP 200 bodies).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from og_settle._eip2612 import Eip2612Permit
from og_settle._errors import InvalidInput
from og_settle._x402 import X402_VERSION, PaymentPayload, PaymentRequirements, ReasonCode

__all__ = ["Malformed", "Permit2Request", "parse_envelope", "parse_request", "where_in"]


@dataclass(frozen=True, slots=True)
class Permit2Request:
    payload: PaymentPayload
    requirements: PaymentRequirements
    amount: int | None
    permit: Eip2612Permit | None = None


class Malformed(Exception):
    def __init__(self, reason: ReasonCode, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def where_in(message: str, root: str) -> str:
    return message if message.startswith(("paymentPayload", "paymentRequirements")) else f"{root}.{message}"


def parse_request(body: Any, *, settling: bool) -> Permit2Request:
    """A ``/verify`` or ``/settle`` body, validated; raises Malformed with the reason code and a message."""
    _check_envelope(body)
    try:
        parsed_payload = PaymentPayload.from_json(body["paymentPayload"])
    except InvalidInput as err:
        raise Malformed(ReasonCode.INVALID_PAYLOAD, where_in(str(err), "paymentPayload")) from None
    try:
        permit = Eip2612Permit.from_extensions(parsed_payload.extensions)
    except InvalidInput as err:
        raise Malformed(ReasonCode.INVALID_EIP2612_EXTENSION_FORMAT, f"paymentPayload.{err}") from None
    requirements, amount = _requirements_of(body, settling=settling)
    return Permit2Request(payload=parsed_payload, requirements=requirements, amount=amount, permit=permit)


def parse_envelope(body: Any, *, settling: bool) -> tuple[PaymentRequirements, int | None]:
    """What every ``/verify`` or ``/settle`` body carries, whatever the payment: the versions, ``paymentPayload``
    being an object, the requirements, and (settling) the top-level ``amount`` alias. Raises Malformed."""
    _check_envelope(body)
    return _requirements_of(body, settling=settling)


def _check_envelope(body: Any) -> None:
    if not isinstance(body, Mapping):
        raise Malformed(ReasonCode.INVALID_PAYLOAD, f"body: expected a JSON object, got {type(body).__name__}")
    version = body.get("x402Version")
    if "x402Version" not in body or not isinstance(version, int) or isinstance(version, bool):
        raise Malformed(ReasonCode.INVALID_PAYLOAD, f"x402Version: expected the integer 2, got {version!r}")
    payload = body.get("paymentPayload")
    payload_version = payload.get("x402Version", X402_VERSION) if isinstance(payload, Mapping) else X402_VERSION
    if version != X402_VERSION or payload_version != X402_VERSION:
        raise Malformed(ReasonCode.INVALID_X402_VERSION, f"x402Version: only {X402_VERSION} is served")
    for name in ("paymentPayload", "paymentRequirements"):
        if not isinstance(body.get(name), Mapping):
            got = "missing" if name not in body else f"expected a JSON object, got {type(body[name]).__name__}"
            raise Malformed(ReasonCode.INVALID_PAYLOAD, f"{name}: {got}")


def _requirements_of(body: Mapping[str, Any], *, settling: bool) -> tuple[PaymentRequirements, int | None]:
    from og_settle._hex import parse_uint256

    try:
        requirements = PaymentRequirements.from_json(body["paymentRequirements"])
    except InvalidInput as err:
        raise Malformed(ReasonCode.INVALID_PAYLOAD, where_in(str(err), "paymentRequirements")) from None
    amount = None
    if settling and body.get("amount") is not None:
        try:
            amount = parse_uint256(body["amount"], "amount")
        except InvalidInput as err:
            raise Malformed(ReasonCode.INVALID_PAYLOAD, str(err)) from None
    return requirements, amount
