"""OpenGradient's settlement data: what a TEE gateway sends its facilitator's ``POST /settle_data``.

Two headers carry it: ``x-settlement-type`` (``private``, ``batch`` or ``individual``; SDK and product-document names
are read by :meth:`SettlementMode.parse`) and ``x-settlement-data``, base64 of a JSON object with snake_case keys:

- ``tee_id`` (bytes32 hex), ``input_hash`` and ``output_hash`` (bytes32 hex, ``0x`` optional: the gateway writes bare
  hex), ``tee_signature`` (base64 of the raw signature bytes: 256 for RSA-2048), ``tee_timestamp`` (a decimal string;
  a JSON integer is read too);
- ``individual`` adds ``input`` and ``output`` (the request and the answer, any JSON), ``timestamp`` (equal to
  ``tee_timestamp``) and ``eth_address`` (the payer).

``private`` carries no data: nothing about the inference goes on chain. A batch record becomes a Merkle leaf
``[teeId, inputHash, outputHash, teeSignature, timestamp]`` with the signature's raw bytes, as OpenGradient's leaves
are.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from og_settle._errors import InvalidInput
from og_settle._hex import keccak256, parse_address, parse_uint256, to_hex
from og_settle._merkle import TEE_SIGNATURE_MAX_BYTES
from og_settle.tee._canonical import request_hash, response_output_hash
from og_settle.tee._hashing import canonical_json, tee_message_hash
from og_settle.tee._rsa import decode_signature

__all__ = ["MAX_SETTLEMENT_DATA_BYTES", "SETTLEMENT_DATA_MODES", "SettlementData"]

#: Longest accepted ``x-settlement-data`` value (base64 text), in bytes; an individual record carries its input and
#: output.
MAX_SETTLEMENT_DATA_BYTES: Final = 256 * 1024
#: The modes that carry data (``private`` carries none).
SETTLEMENT_DATA_MODES: Final = ("batch", "individual")
_BATCH_KEYS: Final = frozenset({"tee_id", "input_hash", "output_hash", "tee_signature", "tee_timestamp"})
_INDIVIDUAL_KEYS: Final = _BATCH_KEYS | {"input", "output", "timestamp", "eth_address"}


def _bytes32(obj: Mapping[str, Any], name: str) -> bytes:
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{name}: missing (expected 32 bytes of hex)")
    digits = value[2:] if value.startswith(("0x", "0X")) else value
    try:
        data = bytes.fromhex(digits)
    except ValueError:
        raise InvalidInput(f"{name}: not hex: {value[:70]!r}") from None
    if len(data) != 32:
        raise InvalidInput(f"{name}: expected 32 bytes, got {len(data)}")
    return data


def _uint(obj: Mapping[str, Any], name: str) -> int:
    value = obj.get(name)
    if value is None:
        raise InvalidInput(f"{name}: missing (expected a decimal string)")
    if isinstance(value, str):
        value = value.strip()
    return parse_uint256(value, name)


def _hashes_to(value: Any, expected: bytes, *, is_output: bool) -> bool:
    """Whether an individual record's ``input`` / ``output`` is what the signed hash commits to."""
    candidates: list[bytes] = []
    if isinstance(value, str):
        try:
            candidates.append(keccak256(value.encode("utf-8")))
            value = json.loads(value)
        except (UnicodeEncodeError, ValueError):
            return expected in candidates
    if isinstance(value, Mapping):
        with contextlib.suppress(InvalidInput):  # not a request / response shape: only the plain JSON hash is left
            candidates.append(response_output_hash(value) if is_output else request_hash(value))
        candidates.append(keccak256(canonical_json(value, "output" if is_output else "input")))
    return expected in candidates


@dataclass(frozen=True, slots=True)
class SettlementData:
    """One ``x-settlement-data`` record (batch or individual).

    Attributes:
        mode: ``batch`` or ``individual``.
        tee_id: The TEE's id.
        input_hash: keccak256 of the canonical request.
        output_hash: keccak256 of the output.
        tee_signature: The raw signature bytes (base64-decoded).
        tee_timestamp: The TEE's signing time, in seconds.
        input: The request (individual only; any JSON value).
        output: The answer (individual only; any JSON value).
        eth_address: The payer's checksummed address (individual only).
    """

    mode: str
    tee_id: bytes
    input_hash: bytes
    output_hash: bytes
    tee_signature: bytes
    tee_timestamp: int
    input: Any = None
    output: Any = None
    eth_address: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in SETTLEMENT_DATA_MODES:
            raise InvalidInput(f"x-settlement-type: {self.mode!r} carries no settlement data")
        if not 0 < len(self.tee_signature) <= TEE_SIGNATURE_MAX_BYTES:
            size, limit = len(self.tee_signature), TEE_SIGNATURE_MAX_BYTES
            raise InvalidInput(f"tee_signature: {size} bytes (expected 1..{limit})")
        if self.mode == "individual":
            if self.eth_address is None:
                raise InvalidInput("eth_address: missing (an individual record names its payer)")
            object.__setattr__(self, "eth_address", parse_address(self.eth_address, "eth_address"))

    @classmethod
    def from_json(cls, mode: str, obj: Any) -> SettlementData:
        """A record from its decoded JSON object; unknown keys are refused, naming the first."""
        if not isinstance(obj, Mapping):
            raise InvalidInput(f"x-settlement-data: expected a JSON object, got {type(obj).__name__}")
        allowed = _INDIVIDUAL_KEYS if mode == "individual" else _BATCH_KEYS
        unknown = sorted(set(obj) - allowed)
        if unknown:
            raise InvalidInput(f"{unknown[0]}: unknown key for {mode} settlement data")
        if "tee_signature" not in obj:
            raise InvalidInput("tee_signature: missing (expected base64)")
        signature = decode_signature(obj["tee_signature"], "tee_signature")
        timestamp = _uint(obj, "tee_timestamp")
        fields: dict[str, Any] = {}
        if mode == "individual":
            for name in ("input", "output"):
                if name not in obj:
                    raise InvalidInput(f"{name}: missing (an individual record carries the {name})")
                fields[name] = obj[name]
            if "timestamp" in obj and _uint(obj, "timestamp") != timestamp:
                raise InvalidInput(f"timestamp: {obj['timestamp']} differs from tee_timestamp {timestamp}")
            fields["eth_address"] = obj.get("eth_address")
        return cls(
            mode=mode,
            tee_id=_bytes32(obj, "tee_id"),
            input_hash=_bytes32(obj, "input_hash"),
            output_hash=_bytes32(obj, "output_hash"),
            tee_signature=signature,
            tee_timestamp=timestamp,
            **fields,
        )

    @classmethod
    def from_header(cls, mode: str, header: str | bytes) -> SettlementData:
        """A record from an ``x-settlement-data`` header value (base64 JSON)."""
        raw = header.encode("ascii", "replace") if isinstance(header, str) else bytes(header)
        if len(raw) > MAX_SETTLEMENT_DATA_BYTES:
            raise InvalidInput(f"x-settlement-data: {len(raw)} bytes is over the limit of {MAX_SETTLEMENT_DATA_BYTES}")
        try:
            text = base64.b64decode(raw.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise InvalidInput("x-settlement-data: not base64 of UTF-8 JSON") from None
        try:
            obj = json.loads(text)
        except ValueError as err:
            raise InvalidInput(f"x-settlement-data: not JSON ({err})") from None
        return cls.from_json(mode, obj)

    def to_json(self) -> dict[str, Any]:
        """The JSON object, snake_case, as OpenGradient's gateway sends it."""
        body: dict[str, Any] = {
            "tee_id": to_hex(self.tee_id),
            "input_hash": to_hex(self.input_hash),
            "output_hash": to_hex(self.output_hash),
            "tee_signature": base64.b64encode(self.tee_signature).decode("ascii"),
            "tee_timestamp": str(self.tee_timestamp),
        }
        if self.mode == "individual":
            body.update(
                input=self.input, output=self.output, timestamp=str(self.tee_timestamp), eth_address=self.eth_address
            )
        return body

    def to_header(self) -> str:
        """The ``x-settlement-data`` header value."""
        return base64.b64encode(json.dumps(self.to_json()).encode("utf-8")).decode("ascii")

    @property
    def message_hash(self) -> bytes:
        """``keccak256(inputHash ‖ outputHash ‖ uint256 tee_timestamp)``: what the signature is over."""
        return tee_message_hash(self.input_hash, self.output_hash, self.tee_timestamp)

    def check_payload(self) -> None:
        """For an individual record, that ``input`` and ``output`` are what ``input_hash`` and ``output_hash`` commit
        to (the request, raw or canonical, or its text; the answer's text, or a response object). Raises InvalidInput
        naming the field that does not match."""
        if self.mode != "individual":
            return
        if not _hashes_to(self.input, self.input_hash, is_output=False):
            raise InvalidInput(f"input: does not hash to input_hash {to_hex(self.input_hash)}")
        if not _hashes_to(self.output, self.output_hash, is_output=True):
            raise InvalidInput(f"output: does not hash to output_hash {to_hex(self.output_hash)}")
