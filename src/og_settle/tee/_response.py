"""A gateway response's TEE proof: produce the ``tee_*`` fields, and check them against a key.

A TEE gateway answers an OpenAI-style request with the usual body plus ``tee_signature`` (base64),
``tee_request_hash`` and ``tee_output_hash`` (hex, no ``0x``), ``tee_timestamp`` (seconds) and ``tee_id`` (``0x`` hex).
:func:`verify_response` does what OpenGradient's reference verifier (the SDK's ``tee_verify.verify_response``)
does, in the same order:

1. the key's teeId must equal the response's ``tee_id`` (and ``expected_tee_id`` when given);
2. the request hash recomputed from the request actually sent must equal ``tee_request_hash``;
3. the output hash recomputed from the output actually received must equal ``tee_output_hash``;
4. the signature must verify over ``keccak256(inputHash ‖ outputHash ‖ uint256 tee_timestamp)``.

It accepts RSA keys (RSASSA-PSS, as OpenGradient's enclaves sign) and secp256k1 keys (65-byte ECDSA over the same
hash), and optionally a freshness window like the registry's. :func:`sign_response` is the other side, for a TEE
(or the stand-in TEE of the tests and the demo).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from og_settle._errors import InvalidInput
from og_settle._hex import parse_bytes32, to_hex
from og_settle.tee._canonical import request_hash, response_output_hash
from og_settle.tee._hashing import output_hash, tee_message_hash
from og_settle.tee._keys import KeyType, TeeSigningKey, parse_public_key
from og_settle.tee._rsa import decode_signature

__all__ = ["ResponseVerificationError", "TeeProof", "sign_response", "verify_response"]

TEE_FIELDS = ("tee_signature", "tee_request_hash", "tee_output_hash", "tee_timestamp", "tee_id")


class ResponseVerificationError(InvalidInput):
    """A response failed TEE verification; ``reason`` says which step.

    Attributes:
        reason: ``missing_field``, ``tee_id_mismatch``, ``request_hash_mismatch``, ``output_hash_mismatch``,
            ``invalid_signature``, ``timestamp_too_old`` or ``timestamp_in_future``.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TeeProof:
    """The verified provenance of one response.

    Attributes:
        tee_id: The TEE's id.
        key_type: The kind of key that signed.
        input_hash: keccak256 of the canonical request.
        output_hash: keccak256 of the signed output.
        timestamp: The enclave's signing time (seconds).
        message_hash: ``keccak256(input_hash ‖ output_hash ‖ uint256 timestamp)``, what was signed.
        signature: The signature bytes (base64-decoded).
    """

    tee_id: bytes
    key_type: KeyType
    input_hash: bytes
    output_hash: bytes
    timestamp: int
    message_hash: bytes
    signature: bytes


def _hex32(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise ResponseVerificationError("missing_field", f"{name}: expected a hex string")
    digits = value[2:] if value.startswith(("0x", "0X")) else value
    try:
        data = bytes.fromhex(digits)
    except ValueError:
        raise ResponseVerificationError("missing_field", f"{name}: not hex: {value[:70]!r}") from None
    if len(data) != 32:
        raise ResponseVerificationError("missing_field", f"{name}: expected 32 bytes, got {len(data)}")
    return data


def _timestamp(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ResponseVerificationError("missing_field", "tee_timestamp: expected an integer")
    try:
        number = int(value)
    except ValueError:
        raise ResponseVerificationError("missing_field", f"tee_timestamp: not an integer: {value!r}") from None
    if not 0 <= number < 2**256:
        raise ResponseVerificationError("missing_field", f"tee_timestamp: {number} is not a uint256")
    return number


def verify_response(
    request: Mapping[str, Any],
    response: Mapping[str, Any],
    public_key: Any,
    *,
    expected_tee_id: Any = None,
    output: str | None = None,
    now: float | None = None,
    max_age_seconds: int | None = None,
    max_future_drift_seconds: int | None = None,
) -> TeeProof:
    """Check a gateway response's ``tee_*`` fields against ``public_key`` (a registered TEE key).

    Args:
        request: The request as sent (chat or completion); it is canonicalised here (canonicalising an already
            canonical request changes nothing).
        response: The parsed response body (or a stream's final frame) carrying the ``tee_*`` fields.
        public_key: The TEE's key: :class:`RsaPublicKey`, :class:`Secp256k1PublicKey`, PEM, or DER/raw bytes.
        expected_tee_id: When given, the response's teeId must be this one as well.
        output: The exact output text received (for streams); by default taken from ``response``.
        now: The current time for the freshness window (default: the clock).
        max_age_seconds: When given, ``tee_timestamp`` may be at most this old (OpenGradient allows 3,600).
        max_future_drift_seconds: When given, ``tee_timestamp`` may be at most this far ahead (OpenGradient: 300).

    Raises:
        ResponseVerificationError: naming the check that failed.
        InvalidInput: for a malformed request or key.
    """
    if not isinstance(response, Mapping):
        raise ResponseVerificationError("missing_field", f"response: expected a JSON object, got {type(response)}")
    for name in TEE_FIELDS:
        if response.get(name) is None:
            raise ResponseVerificationError("missing_field", f"{name}: missing from the response")
    key = parse_public_key(public_key)
    reported_id = _hex32(response["tee_id"], "tee_id")
    if reported_id != key.tee_id:
        raise ResponseVerificationError(
            "tee_id_mismatch", f"the response says {to_hex(reported_id)}, the key's teeId is {to_hex(key.tee_id)}"
        )
    expected = None if expected_tee_id is None else parse_bytes32(expected_tee_id, "expected_tee_id")
    if expected is not None and reported_id != expected:
        raise ResponseVerificationError(
            "tee_id_mismatch", f"the response says {to_hex(reported_id)}, expected {to_hex(expected)}"
        )
    computed_input = request_hash(request)
    reported_input = _hex32(response["tee_request_hash"], "tee_request_hash")
    if computed_input != reported_input:
        raise ResponseVerificationError(
            "request_hash_mismatch",
            f"the TEE signed request {to_hex(reported_input)}, the request sent hashes to {to_hex(computed_input)}",
        )
    computed_output = response_output_hash(response) if output is None else output_hash(output)
    reported_output = _hex32(response["tee_output_hash"], "tee_output_hash")
    if computed_output != reported_output:
        raise ResponseVerificationError(
            "output_hash_mismatch",
            f"the TEE signed output {to_hex(reported_output)}, the output received hashes to {to_hex(computed_output)}",
        )
    timestamp = _timestamp(response["tee_timestamp"])
    message_hash = tee_message_hash(computed_input, computed_output, timestamp)
    try:
        signature = decode_signature(response["tee_signature"], "tee_signature")
    except InvalidInput as err:
        raise ResponseVerificationError("invalid_signature", str(err)) from None
    if not key.verify(message_hash, signature):
        kind = "RSA-PSS" if KeyType.of(key) is KeyType.RSA else "ECDSA"
        raise ResponseVerificationError(
            "invalid_signature", f"the {kind} signature does not verify under {to_hex(key.tee_id)}"
        )
    current = time.time() if now is None else now
    if max_age_seconds is not None and timestamp < current - max_age_seconds:
        raise ResponseVerificationError(
            "timestamp_too_old", f"tee_timestamp {timestamp} is more than {max_age_seconds}s before {int(current)}"
        )
    if max_future_drift_seconds is not None and timestamp > current + max_future_drift_seconds:
        raise ResponseVerificationError(
            "timestamp_in_future",
            f"tee_timestamp {timestamp} is more than {max_future_drift_seconds}s after {int(current)}",
        )
    return TeeProof(
        tee_id=reported_id,
        key_type=KeyType.of(key),
        input_hash=computed_input,
        output_hash=computed_output,
        timestamp=timestamp,
        message_hash=message_hash,
        signature=signature,
    )


def sign_response(
    key: TeeSigningKey,
    request: Mapping[str, Any],
    response: Mapping[str, Any],
    *,
    timestamp: int | None = None,
    output: str | None = None,
) -> dict[str, Any]:
    """The ``tee_*`` fields a gateway adds to ``response`` for ``request``, signed with ``key``.

    Formats as OpenGradient's gateway writes them: ``tee_request_hash`` and ``tee_output_hash`` as bare lowercase hex,
    ``tee_id`` as ``0x`` hex, ``tee_timestamp`` an integer, ``tee_signature`` base64. ``output`` overrides the
    output text taken from ``response`` (a stream signs the text it sent).
    """
    when = int(time.time()) if timestamp is None else timestamp
    input_hash = request_hash(request)
    out_hash = response_output_hash(response) if output is None else output_hash(output)
    signature = key.sign_message_hash(tee_message_hash(input_hash, out_hash, when))
    return {
        "tee_signature": base64.b64encode(signature).decode("ascii"),
        "tee_request_hash": input_hash.hex(),
        "tee_output_hash": out_hash.hex(),
        "tee_timestamp": when,
        "tee_id": to_hex(key.tee_id),
    }
