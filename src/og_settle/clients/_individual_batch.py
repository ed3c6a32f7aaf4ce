"""Many individual settlements in one transaction: ``SettlementRegistry.settleIndividualBatch``'s packed encoding
and its per-item outcomes.

Each item is either an EIP-712 :class:`~og_settle._attestation.IndividualSettlement` signed by a secp256k1 TEE or
an :class:`~og_settle.clients.OpenGradientSettlement` signed (RSA-PSS) by an RSA TEE. The registry settles every
item in its own gas-capped call: an item that fails (bad signature, already settled, outside the timestamp window,
TEE not active) is reported by a ``SettlementItemFailed`` event with its named error, and the others settle.

Layout (big-endian, no padding; see ``ISettlementRegistry.settleIndividualBatch``)::

    uint32 itemGas | uint8 teeCount | bytes32 teeId * teeCount
    item*: uint8 kind | uint8 teeIndex | bytes32 inputHash | bytes32 outputHash | uint64 timestamp | address payer
           | (kind 1: uint16 daLength | daPointer) | uint16 signatureLength | signature
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from og_settle._attestation import IndividualSettlement
from og_settle._errors import InvalidInput
from og_settle.clients._errors import NamedError
from og_settle.clients._registry import OpenGradientSettlement

__all__ = [
    "DEFAULT_INDIVIDUAL_ITEM_GAS",
    "MAX_INDIVIDUAL_BATCH_ITEMS",
    "IndividualBatchItem",
    "IndividualOutcome",
    "encode_individual_batch",
    "individual_batch_gas_limit",
]

MAX_INDIVIDUAL_BATCH_ITEMS: Final = 256  # SettlementRegistry.MAX_BATCH_ITEMS
_MAX_TEES: Final = 255
# An ECDSA item uses about 35k inside its call (a fresh digest slot, ecrecover, the event, the registry read); an
# RSA-4096 item about 75k. Unused gas is not charged; the cap only bounds what one item may burn.
DEFAULT_INDIVIDUAL_ITEM_GAS: Final = 150_000
_GAS_RESERVE: Final = 10_000  # SettlementRegistry._GAS_RESERVE
_BATCH_OVERHEAD_GAS: Final = 60_000
_KIND_INDIVIDUAL: Final = 0
_KIND_OPEN_GRADIENT: Final = 1


@dataclass(frozen=True, slots=True)
class IndividualBatchItem:
    """One record of an individual batch and its TEE's signature.

    Attributes:
        settlement: an EIP-712 individual settlement (secp256k1 TEE) or an OpenGradient one (RSA TEE).
        signature: the TEE's signature: 65-byte ECDSA over the EIP-712 digest, or raw RSA-PSS bytes over
            ``settlement.message_hash``.
    """

    settlement: IndividualSettlement | OpenGradientSettlement
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.signature, bytes) or len(self.signature) > 0xFFFF:
            raise InvalidInput("signature: expected at most 65535 bytes")
        if not 0 <= self.settlement.timestamp < 2**64:
            raise InvalidInput(f"timestamp: must fit in 64 bits in a batch, got {self.settlement.timestamp}")


@dataclass(frozen=True, slots=True)
class IndividualOutcome:
    """What happened to one item of a mined ``settleIndividualBatch``.

    Attributes:
        index: its position in the batch.
        settled: True when the registry recorded it.
        error: the named error it failed with (None when settled): for example ``InvalidTeeSignature``,
            ``SettlementAlreadyRecorded``, ``TimestampTooOld``, ``TeeNotActive``, ``ItemOutOfGas``.
    """

    index: int
    settled: bool
    error: NamedError | None = None


def encode_individual_batch(
    items: Sequence[IndividualBatchItem], *, item_gas: int = DEFAULT_INDIVIDUAL_ITEM_GAS
) -> bytes:
    """The packed ``batch`` argument of ``settleIndividualBatch``.

    Raises:
        InvalidInput: no items, more than 256 items or 255 TEEs, or an ``item_gas`` outside uint32.
    """
    if not items:
        raise InvalidInput("items: an individual batch needs at least one item")
    if len(items) > MAX_INDIVIDUAL_BATCH_ITEMS:
        raise InvalidInput(f"items: at most {MAX_INDIVIDUAL_BATCH_ITEMS} per batch, got {len(items)}")
    if not 0 < item_gas < 2**32:
        raise InvalidInput(f"item_gas: expected a positive uint32, got {item_gas}")
    tees: dict[bytes, int] = {}
    for item in items:
        tees.setdefault(item.settlement.tee_id, len(tees))
    if len(tees) > _MAX_TEES:
        raise InvalidInput(f"items: at most {_MAX_TEES} TEEs per batch, got {len(tees)}")
    out = bytearray(item_gas.to_bytes(4, "big") + bytes([len(tees)]) + b"".join(tees))
    for item in items:
        s = item.settlement
        kind = _KIND_OPEN_GRADIENT if isinstance(s, OpenGradientSettlement) else _KIND_INDIVIDUAL
        out += bytes([kind, tees[s.tee_id]]) + s.input_hash + s.output_hash + s.timestamp.to_bytes(8, "big")
        out += bytes.fromhex(s.payer.removeprefix("0x"))
        if isinstance(s, OpenGradientSettlement):
            out += len(s.da_pointer).to_bytes(2, "big") + s.da_pointer
        out += len(item.signature).to_bytes(2, "big") + item.signature
    return bytes(out)


def individual_batch_gas_limit(count: int, *, item_gas: int = DEFAULT_INDIVIDUAL_ITEM_GAS) -> int:
    """A gas limit with which no item can be short of its cap (each may use it all, plus the 1/64 kept back)."""
    return _BATCH_OVERHEAD_GAS + count * (item_gas + item_gas // 63 + _GAS_RESERVE + 3_000)
