"""The relayer's record states and the only transitions allowed between them.

An item (one inference record or one payment) moves

    received -> batched -> submitted -> confirmed
                   \\           \\-> failed (reason)
                    \\-> failed (reason)
    rejected (reason)               -- at intake; never queued

A batch (the items one transaction settles) moves

    built -> submitted -> confirmed
      \\          \\-> failed (reason)
       \\          \\-> built  (its transaction was replaced or dropped and the chain does not hold it: rebuild)
        \\-> failed (reason)

``received`` items wait for the batching policy; ``batched`` items belong to a built batch whose transaction is
not yet signed; ``submitted`` items belong to a batch whose signed transaction, hash and nonce are on disk.
"""

from __future__ import annotations

import enum
from typing import Final

from og_settle._errors import InvariantViolation


class ItemState(enum.StrEnum):
    """Where one queued record stands."""

    RECEIVED = "received"
    BATCHED = "batched"
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    REJECTED = "rejected"


class BatchState(enum.StrEnum):
    """Where one batch (one settlement transaction's worth of items) stands."""

    BUILT = "built"
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"
    FAILED = "failed"


class ItemKind(enum.StrEnum):
    """What an item settles: a TEE inference record, or an x402 payment."""

    INFERENCE = "inference"
    PAYMENT = "payment"
    UNKNOWN = "unknown"  # only for rejected records whose kind could not be read


class Lane(enum.StrEnum):
    """How items are grouped into transactions; each lane has its own batching trigger state.

    ``batch`` items become Merkle leaves (one root per transaction); ``individual`` and ``metadata`` items are
    recorded one by one (many per transaction); ``payment`` items settle through the facilitator's batched call;
    ``private`` items record nothing on chain.
    """

    PRIVATE = "private"
    BATCH = "batch"
    INDIVIDUAL = "individual"
    METADATA = "metadata"
    PAYMENT = "payment"


ITEM_TRANSITIONS: Final[dict[ItemState, frozenset[ItemState]]] = {
    ItemState.RECEIVED: frozenset({ItemState.BATCHED, ItemState.CONFIRMED, ItemState.FAILED}),
    ItemState.BATCHED: frozenset({ItemState.SUBMITTED, ItemState.RECEIVED, ItemState.CONFIRMED, ItemState.FAILED}),
    ItemState.SUBMITTED: frozenset({ItemState.CONFIRMED, ItemState.FAILED, ItemState.BATCHED}),
    ItemState.CONFIRMED: frozenset(),
    ItemState.FAILED: frozenset(),
    ItemState.REJECTED: frozenset(),
}

BATCH_TRANSITIONS: Final[dict[BatchState, frozenset[BatchState]]] = {
    BatchState.BUILT: frozenset({BatchState.SUBMITTED, BatchState.CONFIRMED, BatchState.FAILED}),
    BatchState.SUBMITTED: frozenset({BatchState.CONFIRMED, BatchState.FAILED, BatchState.BUILT}),
    BatchState.CONFIRMED: frozenset(),
    BatchState.FAILED: frozenset(),
}

IN_FLIGHT_ITEM_STATES: Final = frozenset({ItemState.RECEIVED, ItemState.BATCHED, ItemState.SUBMITTED})
IN_FLIGHT_BATCH_STATES: Final = frozenset({BatchState.BUILT, BatchState.SUBMITTED})


def check_item_transition(old: ItemState, new: ItemState) -> None:
    """Raise InvariantViolation unless ``old -> new`` is an allowed item transition."""
    if new not in ITEM_TRANSITIONS[old]:
        raise InvariantViolation(f"item state {old} -> {new} is not an allowed transition")


def check_batch_transition(old: BatchState, new: BatchState) -> None:
    """Raise InvariantViolation unless ``old -> new`` is an allowed batch transition."""
    if new not in BATCH_TRANSITIONS[old]:
        raise InvariantViolation(f"batch state {old} -> {new} is not an allowed transition")
