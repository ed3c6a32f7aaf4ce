"""OpenGradient's batch leaf: :class:`InferenceLeaf`, the limits on it, and its ABI encoding by hand."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from og_settle._errors import InvalidInput
from og_settle._hex import UINT256_MAX, parse_bytes32, parse_hex_bytes, parse_uint256, to_hex

__all__ = ["OG_LEAF_ENCODING", "TEE_SIGNATURE_MAX_BYTES", "InferenceLeaf", "LeafValue", "og_encodings"]

OG_LEAF_ENCODING: Final = ("bytes32", "bytes32", "bytes32", "bytes", "uint256")
"""OpenGradient's batch leaf: ``(teeId, inputHash, outputHash, teeSignature, timestamp)``."""

TEE_SIGNATURE_MAX_BYTES: Final = 1024
"""Cap on an :class:`InferenceLeaf` signature. An RSA-2048 PSS signature is 256 bytes; 1024 bytes leaves room
for RSA-8192 while keeping a single leaf (and its calldata when settled individually) small."""

LeafValue: TypeAlias = tuple[Any, ...]

_OG_FIELDS: Final = ("tee_id", "input_hash", "output_hash", "tee_signature", "timestamp")
_OG_HEAD_OFFSET: Final = (5 * 32).to_bytes(32, "big")  # where the dynamic ``bytes`` tail starts
_ZERO_PADDING: Final = tuple(bytes(-n % 32) for n in range(32))


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True, slots=True)
class InferenceLeaf:
    """One settled inference in an OpenGradient batch, in the order of :data:`OG_LEAF_ENCODING`.

    Attributes:
        tee_id: keccak256 of the TEE's DER-encoded public key (32 bytes).
        input_hash: keccak256 of the canonical request JSON (32 bytes).
        output_hash: keccak256 of the completion or tool calls (32 bytes).
        tee_signature: the TEE's signature over the message hash, at most ``TEE_SIGNATURE_MAX_BYTES`` bytes.
        timestamp: the TEE's timestamp in seconds, a uint256.
    """

    tee_id: bytes
    input_hash: bytes
    output_hash: bytes
    tee_signature: bytes
    timestamp: int

    def __post_init__(self) -> None:
        for name in ("tee_id", "input_hash", "output_hash"):
            value = getattr(self, name)
            if type(value) is not bytes or len(value) != 32:
                raise InvalidInput(f"{name}: expected 32 bytes, got {_short_repr(value)}")
        if type(self.tee_signature) is not bytes:
            raise InvalidInput(f"tee_signature: expected bytes, got {type(self.tee_signature).__name__}")
        if len(self.tee_signature) > TEE_SIGNATURE_MAX_BYTES:
            raise InvalidInput(
                f"tee_signature: {len(self.tee_signature)} bytes is over the limit of {TEE_SIGNATURE_MAX_BYTES}"
            )
        if type(self.timestamp) is not int or not 0 <= self.timestamp <= UINT256_MAX:
            raise InvalidInput(f"timestamp: expected an integer in [0, 2**256), got {_short_repr(self.timestamp)}")

    @classmethod
    def from_json(cls, obj: Any) -> InferenceLeaf:
        """Parse ``{"tee_id", "input_hash", "output_hash", "tee_signature", "timestamp"}`` (hex strings and an
        integer). Unknown fields are rejected, so a misspelt field cannot pass unnoticed."""
        if not isinstance(obj, Mapping):
            raise InvalidInput(f"expected a JSON object, got {type(obj).__name__}")
        unknown = sorted(set(obj) - set(_OG_FIELDS))
        if unknown:
            raise InvalidInput(f"{unknown[0]}: unknown field (expected {', '.join(_OG_FIELDS)})")
        missing = [name for name in _OG_FIELDS if name not in obj]
        if missing:
            raise InvalidInput(f"{missing[0]}: missing field")
        timestamp = obj["timestamp"]
        if type(timestamp) is not int:
            raise InvalidInput(f"timestamp: expected a JSON integer, got {_short_repr(timestamp)}")
        return cls(
            tee_id=parse_bytes32(obj["tee_id"], "tee_id"),
            input_hash=parse_bytes32(obj["input_hash"], "input_hash"),
            output_hash=parse_bytes32(obj["output_hash"], "output_hash"),
            tee_signature=parse_hex_bytes(obj["tee_signature"], "tee_signature", TEE_SIGNATURE_MAX_BYTES),
            timestamp=parse_uint256(timestamp, "timestamp"),
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON object :meth:`from_json` reads."""
        return {
            "tee_id": to_hex(self.tee_id),
            "input_hash": to_hex(self.input_hash),
            "output_hash": to_hex(self.output_hash),
            "tee_signature": to_hex(self.tee_signature),
            "timestamp": self.timestamp,
        }

    def values(self) -> LeafValue:
        """The leaf as a value tuple for :data:`OG_LEAF_ENCODING`."""
        return (self.tee_id, self.input_hash, self.output_hash, self.tee_signature, self.timestamp)


def og_encodings(values: Iterable[LeafValue]) -> Iterator[bytes]:
    """``abi.encode`` of canonical OpenGradient values, by hand: three words, the offset 160 of the tail, the
    timestamp, then the tail: the length word and the signature right-padded with zeros to a whole word."""
    offset = _OG_HEAD_OFFSET
    padding = _ZERO_PADDING
    join = b"".join
    for tee, inp, out, sig, ts in values:
        yield join(
            (tee, inp, out, offset, ts.to_bytes(32, "big"), len(sig).to_bytes(32, "big"), sig, padding[len(sig) & 31])
        )
