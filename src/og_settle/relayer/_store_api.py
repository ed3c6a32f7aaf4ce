"""What the relayer's durable queue holds (items, batches, transactions, leases, status) and the one storage
interface (``QueueStore``) its stores implement: SQLite (``_store``) and PostgreSQL (``_store_postgres``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from og_settle.relayer._states import BatchState, ItemKind, ItemState, Lane
from og_settle.relayer._store_intake import RejectedRecord, StagedRow

__all__ = [
    "Batch",
    "BatchContent",
    "BatchLease",
    "IntakeOutcome",
    "Item",
    "LaneBacklog",
    "LeaseLost",
    "NewItem",
    "QueueStatus",
    "QueueStore",
    "TxRecord",
]


@dataclass(frozen=True, slots=True)
class NewItem:
    """A verified record ready to be queued.

    Attributes:
        kind: inference record or payment.
        lane: how it settles (its settlement mode, or ``payment``).
        key: the idempotency key (32 bytes); a second item with the same key is a duplicate.
        payload: the normalised record, JSON-serialisable.
        source: where it came from, for operators (for example ``intake.jsonl:12``).
    """

    kind: ItemKind
    lane: Lane
    key: bytes
    payload: Mapping[str, Any]
    source: str


@dataclass(frozen=True, slots=True)
class Item:
    """One queued record as stored.

    Attributes:
        id: row id, increasing in intake order.
        kind: inference record or payment.
        lane: how it settles; None only for rejected records whose mode could not be read.
        key: the idempotency key; None for rejected records.
        payload: the normalised record (for rejected records, the raw text, cut to 4 KiB).
        state: where it stands.
        reason: why it failed or was rejected (an x402 reason code for payments), or a note.
        batch_id: the batch it belongs to, once batched.
        source: where it came from.
        received_at: Unix time of intake.
        updated_at: Unix time of the last state change.
    """

    id: int
    kind: ItemKind
    lane: Lane | None
    key: bytes | None
    payload: str
    state: ItemState
    reason: str | None
    batch_id: int | None
    source: str
    received_at: float
    updated_at: float

    def record(self) -> dict[str, Any]:
        """The normalised record this item carries."""
        value: dict[str, Any] = json.loads(self.payload)
        return value


@dataclass(frozen=True, slots=True)
class TxRecord:
    """One signed settlement transaction, written to disk before it was broadcast.

    Attributes:
        id: row id.
        batch_id: the batch it settles.
        tx_hash: its hash (32 bytes).
        nonce: the sender's account nonce it uses.
        sender: the relayer account that signed it.
        raw: the signed raw transaction, so that it can be broadcast again byte for byte.
        state: ``sent`` (written, maybe broadcast), ``mined``, ``reverted`` or ``replaced`` (its nonce was
            used by another transaction, so it can never be mined).
        block_number: the block it was mined in, once known.
        gas_used: gas used, once mined.
        note: extra detail (a revert reason, why it was replaced).
        created_at: Unix time it was signed.
    """

    id: int
    batch_id: int
    tx_hash: bytes
    nonce: int
    sender: str
    raw: bytes
    state: str
    block_number: int | None
    gas_used: int | None
    note: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class Batch:
    """The items one settlement transaction settles.

    Attributes:
        id: row id.
        lane: batch (a Merkle root), individual, metadata or payment.
        state: where it stands.
        size: number of items.
        root: the Merkle root, for ``batch`` lanes.
        dump_path: where the tree's standard-v1 dump was written, if written to a file.
        dump: the dump inline, if not written to a file.
        reason: why it failed, or a note.
        attempts: how many transactions were signed for it.
        created_at: Unix time it was built.
        updated_at: Unix time of the last state change.
    """

    id: int
    lane: Lane
    state: BatchState
    size: int
    root: bytes | None
    dump_path: str | None
    dump: str | None
    reason: str | None
    attempts: int
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class BatchContent:
    """What a new batch records besides its items (``QueueStore.cut_batch``'s builder returns it).

    Attributes:
        root: the Merkle root, for ``batch`` lanes.
        dump_path: where the tree's dump was written (durably, before the batch exists), if to a file.
        dump: the dump inline, if not written to a file.
    """

    root: bytes | None = None
    dump_path: str | None = None
    dump: str | None = None


@dataclass(frozen=True, slots=True)
class BatchLease:
    """A batch this instance holds: nobody else builds on or sends it until ``until``.

    Attributes:
        batch: the batch as claimed.
        worker: the instance holding it.
        fence: the fencing token drawn when it was claimed; a later claim by anyone draws a larger one.
        until: Unix time the lease runs out unless renewed.
    """

    batch: Batch
    worker: str
    fence: int
    until: float


class LeaseLost(RuntimeError):
    """Another instance took the batch over (this instance's lease ran out and its fencing token is stale): the
    change was not made, and the batch is no longer this instance's to build on or send."""


@dataclass(frozen=True, slots=True)
class IntakeOutcome:
    """What happened to one record offered to the queue.

    Attributes:
        item_id: the stored item (the earlier one, for a duplicate).
        duplicate: True when an item with the same idempotency key was already queued.
    """

    item_id: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class LaneBacklog:
    """Items of one lane waiting for the batching policy.

    Attributes:
        lane: the lane.
        count: how many are waiting.
        oldest_at: Unix intake time of the oldest waiting item.
        newest_at: Unix intake time of the newest waiting item.
    """

    lane: Lane
    count: int
    oldest_at: float
    newest_at: float


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """What an operator needs at a glance.

    Attributes:
        items_by_state: item counts by state.
        items_by_lane_and_state: item counts by lane, then state.
        batches_by_state: batch counts by state.
        oldest_pending: the oldest item still in flight (received, batched or submitted), if any.
        last_transaction: the most recently signed transaction, if any.
        failure_reasons: counts of failed and rejected items by reason.
    """

    items_by_state: Mapping[str, int]
    items_by_lane_and_state: Mapping[str, Mapping[str, int]]
    batches_by_state: Mapping[str, int]
    oldest_pending: Item | None
    last_transaction: TxRecord | None
    failure_reasons: Mapping[str, int]

    @property
    def in_flight(self) -> int:
        """Items received, batched or submitted but not yet confirmed or failed."""
        return sum(self.items_by_state.get(state.value, 0) for state in _IN_FLIGHT_ITEMS)


_IN_FLIGHT_ITEMS: Final = (ItemState.RECEIVED, ItemState.BATCHED, ItemState.SUBMITTED)


class QueueStore(Protocol):
    """Durable storage for the relayer. Every method that changes state is atomic."""

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def init_meta(self, key: str, value: str) -> str: ...

    def add_items(self, items: Sequence[NewItem]) -> list[IntakeOutcome]: ...

    def add_rejected(self, kind: ItemKind, source: str, raw: str, reason: str) -> int: ...

    def add_all(self, entries: Iterable[NewItem | RejectedRecord]) -> list[IntakeOutcome]:
        """Queue accepted and rejected records all at once or none of them (see ``_store_intake``)."""
        ...

    def add_staged(self, runs: Iterable[list[StagedRow]]) -> list[IntakeOutcome]:
        """``add_all`` for records already in staged form (``_store_intake.staged_row``), in runs."""
        ...

    def item(self, item_id: int) -> Item: ...

    def items(
        self, *, state: ItemState | None = None, lane: Lane | None = None, limit: int | None = None
    ) -> list[Item]: ...

    def backlog(self, lane: Lane) -> LaneBacklog | None: ...

    def create_batch(
        self, lane: Lane, item_ids: Sequence[int], *, root: bytes | None, dump_path: str | None, dump: str | None
    ) -> Batch: ...

    def cut_batch(
        self,
        lane: Lane,
        limit: int,
        build: Callable[[Sequence[str]], BatchContent],
        *,
        ttl: float,
        settler: str | None = None,
    ) -> Batch | None:
        """Claim up to ``limit`` of the oldest received items of ``lane`` free for this instance, build the batch's
        content from their payloads (``build``, given them in id order) and create the batch, as one step that a
        crash undoes whole; None when no item is free."""
        ...

    def batch(self, batch_id: int) -> Batch: ...

    def batches(self, *states: BatchState) -> list[Batch]: ...

    def batch_items(self, batch_id: int) -> list[Item]: ...

    def record_signed_tx(self, batch_id: int, *, tx_hash: bytes, nonce: int, sender: str, raw: bytes) -> TxRecord: ...

    def record_replacement_tx(
        self, batch_id: int, *, tx_hash: bytes, nonce: int, sender: str, raw: bytes
    ) -> TxRecord: ...

    def current_tx(self, batch_id: int) -> TxRecord | None: ...

    def batch_txs(self, batch_id: int) -> list[TxRecord]: ...

    def confirm_batch(
        self,
        batch_id: int,
        *,
        tx_hash: bytes | None,
        block_number: int | None,
        gas_used: int | None,
        item_failures: Mapping[int, str] | None = None,
        note: str | None = None,
    ) -> None: ...

    def fail_batch(
        self, batch_id: int, reason: str, *, tx_hash: bytes | None = None, block_number: int | None = None
    ) -> None: ...

    def reopen_batch(self, batch_id: int, note: str) -> None: ...

    def dissolve_batch(self, batch_id: int, note: str) -> None: ...

    def resolve_items(self, batch_id: int, *, confirmed: Mapping[int, str], failed: Mapping[int, str]) -> None: ...

    def open_items(self, batch_id: int) -> list[Item]: ...

    def open_count(self, batch_id: int) -> int: ...

    def settle_without_tx(self, item_ids: Sequence[int], note: str) -> None: ...

    def fail_items(self, item_ids: Sequence[int], reason: str) -> None: ...

    def status(self) -> QueueStatus: ...

    def item_counts(self) -> dict[str, int]:
        """Item counts by state (``status().items_by_state`` alone, in one statement)."""
        ...

    def any_in_flight(self) -> bool:
        """Whether any item is received, batched or submitted (``status().in_flight > 0``, without counting)."""
        ...

    def close(self) -> None: ...

    # Leases: which instance builds on and sends which work. One instance per SQLite queue holds everything.

    @property
    def worker(self) -> str: ...

    def claim_items(self, lane: Lane, limit: int, *, ttl: float, settler: str | None = None) -> list[Item]: ...

    def claim_batches(
        self, states: Sequence[BatchState], limit: int, *, ttl: float, reclaim: bool = False
    ) -> list[BatchLease]: ...

    def renew_leases(self, *, ttl: float) -> list[int]: ...

    def held_batches(self, *states: BatchState) -> list[Batch]: ...

    # The fleet's questions (``_store_fleet``): relayer accounts seen, upto payments waiting, payment expiry.

    def record_relayer_account(self, address: str, *, instance: str, started_at: float) -> None: ...

    def relayer_accounts(self) -> dict[str, dict[str, Any]]: ...

    def upto_waiting(self) -> dict[str, int]: ...

    def expire_payments(self, before: int, reason: str, *, now: float, limit: int = 1000) -> list[int]: ...
