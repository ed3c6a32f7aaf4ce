"""OpenGradient's hashes for TEE-verified inference: input, output, the signed message, and the heartbeat.

* ``input_hash(request) = keccak256(json.dumps(request, sort_keys=True))``. The JSON text is exactly what
  Python's ``json.dumps`` produces with its defaults apart from ``sort_keys``: separators ``", "`` and
  ``": "``, ``ensure_ascii=True`` (so non-ASCII characters appear as ``\\uXXXX`` escapes and the text is
  pure ASCII), and ``NaN``/``Infinity`` written as such. Any other JSON serialiser (JavaScript's
  ``JSON.stringify``, compact separators) gives a different hash. OpenGradient hashes the *canonical* request
  (:func:`og_settle.tee.canonical_request`); :func:`og_settle.tee.request_hash` does both steps.
* ``output_hash = keccak256(completion text as UTF-8)``; when the model answered with tool calls it is
  ``keccak256(json.dumps(tool_calls, sort_keys=True))`` instead, with the same JSON conventions.
* The TEE signs ``tee_message_hash = keccak256(inputHash ‖ outputHash ‖ uint256 timestamp)``
  (``abi.encodePacked(bytes32, bytes32, uint256)``, 96 bytes).
* The settlement registry records an OpenGradient settlement once, under
  ``open_gradient_digest = keccak256(teeId ‖ tee_message_hash)``.
* An RSA TEE's heartbeat signs ``heartbeat_message_hash = keccak256(teeId ‖ uint256 timestamp)``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from og_settle._errors import InvalidInput
from og_settle._hex import keccak256, parse_bytes32, parse_uint256

__all__ = [
    "canonical_json",
    "heartbeat_message_hash",
    "input_hash",
    "open_gradient_digest",
    "output_hash",
    "tee_message_hash",
]


def canonical_json(value: Any, field: str) -> bytes:
    """``json.dumps(value, sort_keys=True)`` as bytes: the serialisation every OpenGradient hash is taken over."""
    try:
        text = json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as err:
        raise InvalidInput(f"{field}: not JSON-serialisable: {err}") from None
    return text.encode("ascii")  # ensure_ascii=True makes the text pure ASCII


def input_hash(request: Mapping[str, Any]) -> bytes:
    """``keccak256(json.dumps(request, sort_keys=True))``: the hash of the (already canonical) request a TEE served."""
    if not isinstance(request, Mapping):
        raise InvalidInput(f"request: expected a JSON object (a mapping), got {type(request).__name__}")
    return keccak256(canonical_json(dict(request), "request"))


def output_hash(completion: str | None = None, *, tool_calls: Sequence[Any] | None = None) -> bytes:
    """The hash of what the model answered.

    With a non-empty ``tool_calls`` list it is ``keccak256(json.dumps(tool_calls, sort_keys=True))``, and any
    ``completion`` text is ignored (as in OpenGradient's gateway: tool calls take precedence). Otherwise it is
    ``keccak256(completion.encode("utf-8"))``; ``completion`` is then required (an empty string is a valid
    completion). An empty ``tool_calls`` list counts as no tool calls.
    """
    if tool_calls is not None:
        if isinstance(tool_calls, str | bytes | Mapping) or not isinstance(tool_calls, Sequence):
            raise InvalidInput(f"tool_calls: expected a list of tool calls, got {type(tool_calls).__name__}")
        if tool_calls:
            return keccak256(canonical_json(list(tool_calls), "tool_calls"))
    if completion is None:
        raise InvalidInput("completion: required when there are no tool_calls")
    if not isinstance(completion, str):
        raise InvalidInput(f"completion: expected text, got {type(completion).__name__}")
    try:
        data = completion.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("completion: not valid Unicode (it contains a lone surrogate)") from None
    return keccak256(data)


def tee_message_hash(input_hash: Any, output_hash: Any, timestamp: Any) -> bytes:
    """``keccak256(abi.encodePacked(inputHash, outputHash, uint256(timestamp)))``: what the TEE signs.

    Hashes may be ``bytes`` or ``0x`` hex; the timestamp an ``int`` or a decimal/hex string.
    """
    packed = (
        parse_bytes32(input_hash, "input_hash")
        + parse_bytes32(output_hash, "output_hash")
        + parse_uint256(timestamp, "timestamp").to_bytes(32, "big")
    )
    return keccak256(packed)


def open_gradient_digest(tee_id: Any, input_hash: Any, output_hash: Any, timestamp: Any) -> bytes:
    """``keccak256(teeId ‖ tee_message_hash(...))``: what ``SettlementRegistry.settleOpenGradient`` records, once."""
    return keccak256(parse_bytes32(tee_id, "tee_id") + tee_message_hash(input_hash, output_hash, timestamp))


def heartbeat_message_hash(tee_id: Any, timestamp: Any) -> bytes:
    """``keccak256(teeId ‖ uint256 timestamp)``: what an RSA TEE signs for ``TeeRegistry.heartbeat``."""
    return keccak256(parse_bytes32(tee_id, "tee_id") + parse_uint256(timestamp, "timestamp").to_bytes(32, "big"))
