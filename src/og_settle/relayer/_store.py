"""The relayer's durable queue on SQLite (the interface and its records: ``_store_api``; the schema:
``_store_schema``; the state machine: ``_store_transitions``).

SQLite runs in WAL mode with ``synchronous=FULL``: a transaction that returned is on disk and survives a
SIGKILL or a power cut. Every state change is one transaction that moves the batch, its items and its
transaction record together, so a crash leaves either the old state or the new one, never a mix.
"""

from __future__ import annotations

import math
import os
import socket
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from og_settle._errors import InvalidInput, InvariantViolation
from og_settle.relayer._states import (
    BatchState,
    ItemKind,
    ItemState,
    Lane,
)
from og_settle.relayer._store_api import (
    _IN_FLIGHT_ITEMS,
    Batch,
    BatchLease,
    IntakeOutcome,
    Item,
    LaneBacklog,
    LeaseLost,
    NewItem,
    QueueStatus,
    QueueStore,
    TxRecord,
)
from og_settle.relayer._store_fleet import FleetQueries
from og_settle.relayer._store_intake import StagedIntake, StagedRow, encode_payload
from og_settle.relayer._store_rows import ITEM_COLUMNS, STORED_COLUMNS, STORED_ITEMS, batch_of, item_of, tx_of
from og_settle.relayer._store_schema import SCHEMA_VERSION, ensure_schema
from og_settle.relayer._store_transitions import QueueTransitions, _now

__all__ = [
    "SCHEMA_VERSION",
    "Batch",
    "BatchLease",
    "IntakeOutcome",
    "Item",
    "LaneBacklog",
    "LeaseLost",
    "NewItem",
    "QueueStatus",
    "QueueStore",
    "SqliteStore",
    "TxRecord",
]


def default_worker() -> str:
    """An instance id when none is given: this host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


_STAGE_TABLE: Final = (
    "CREATE TEMP TABLE IF NOT EXISTS intake_stage (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, lane TEXT,"
    " key BLOB, payload TEXT NOT NULL, state TEXT NOT NULL, reason TEXT, source TEXT NOT NULL)"
)
_INSERT_STAGED: Final = (
    "INSERT INTO items (kind, lane, key, state, reason, source, received_at, updated_at)"
    " SELECT kind, lane, key, state, reason, source, ?, ? FROM {stage} WHERE true ORDER BY seq"
    " ON CONFLICT (key) DO NOTHING"
)
# Then, in the same transaction, their payloads (``{new}`` picks the new items): a keyed item's from the first
# staged row with its key (the one that was inserted: staged rows are read in ``seq`` order and a later one with
# the same key is skipped), a rejected item's by order (rejected rows were inserted in ``seq`` order, so the n-th
# new keyless item is the n-th staged rejected row).
_STAGED_PAYLOADS: Final = (
    "INSERT INTO payloads (item_id, payload) SELECT i.id, s.payload FROM {stage} AS s JOIN items AS i"
    " ON i.key = s.key WHERE i.{new} ORDER BY s.seq ON CONFLICT (item_id) DO NOTHING",
    "INSERT INTO payloads (item_id, payload) SELECT i.id, s.payload FROM"
    " (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS n FROM items WHERE key IS NULL AND {new}) AS i"
    " JOIN (SELECT payload, ROW_NUMBER() OVER (ORDER BY seq) AS n FROM {stage} WHERE key IS NULL) AS s"
    " ON s.n = i.n",
)


def insert_staged_payloads(db: sqlite3.Connection, stage: str, new: str, param: Any, count: int) -> None:
    """Write the payloads of the ``count`` items just inserted from the staging table (``new``: a condition on
    ``id`` naming them, with one parameter); refuses to leave an item without its payload."""
    written = sum(
        db.execute(statement.format(stage=stage, new=new), (param,)).rowcount for statement in _STAGED_PAYLOADS
    )
    if written != count:
        raise InvariantViolation(f"intake: {count} items inserted, {written} payloads written")


_STAGED_MATCHES: Final = "SELECT s.key IS NULL, i.id FROM {stage} s LEFT JOIN items i ON i.key = s.key ORDER BY s.seq"


class SqliteStore(QueueTransitions, StagedIntake, FleetQueries):
    """``QueueStore`` on one SQLite file in WAL mode with ``synchronous=FULL``.

    Several processes may open the same file (for example ``relayer submit`` feeding a running relayer);
    writers wait up to ``busy_timeout`` seconds for each other.
    """

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0, worker: str | None = None) -> None:
        self.path = Path(path)
        self._worker = worker or default_worker()
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(path) != ":memory:" and mode.lower() != "wal":
            raise InvalidInput(f"db: {path} cannot use WAL mode (journal_mode is {mode}); is it on a network share?")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._intake_lock = threading.Lock()  # one bulk intake at a time per connection (one staging table)
        self._create_schema()

    def _create_schema(self) -> None:
        with self._write() as db:
            ensure_schema(db, self.path)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken with BEGIN IMMEDIATE so that concurrent writers queue up."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    # -- meta --------------------------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
                (key, value, value),
            )

    def init_meta(self, key: str, value: str) -> str:
        """Set ``key`` to ``value`` unless it is set already (by anyone, even concurrently); returns the value
        that holds."""
        with self._write() as db:
            db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING", (key, value))
            return str(db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])

    # -- intake ------------------------------------------------------------------------------------------------

    def add_items(self, items: Sequence[NewItem]) -> list[IntakeOutcome]:
        outcomes: list[IntakeOutcome] = []
        now = _now()
        with self._write() as db:
            for new in items:
                if len(new.key) != 32:
                    raise InvariantViolation(f"idempotency key must be 32 bytes, got {len(new.key)}")
                existing = db.execute("SELECT id FROM items WHERE key = ?", (new.key,)).fetchone()
                if existing is not None:
                    outcomes.append(IntakeOutcome(item_id=int(existing[0]), duplicate=True))
                    continue
                cursor = db.execute(
                    "INSERT INTO items (kind, lane, key, state, source, received_at, updated_at)"
                    " VALUES (?, ?, ?, 'received', ?, ?, ?)",
                    (new.kind.value, new.lane.value, new.key, new.source, now, now),
                )
                item_id = int(cursor.lastrowid or 0)
                db.execute(
                    "INSERT INTO payloads (item_id, payload) VALUES (?, ?)", (item_id, encode_payload(new.payload))
                )
                outcomes.append(IntakeOutcome(item_id=item_id, duplicate=False))
        return outcomes

    # Bulk intake (``_store_intake``): staged in the connection's TEMP database, which takes no lock on the queue.

    def _open_stage(self) -> None:
        self._intake_lock.acquire()
        try:
            self._db.execute(_STAGE_TABLE)
            self._db.execute("DELETE FROM temp.intake_stage")
        except BaseException:
            self._intake_lock.release()
            raise

    def _stage(self, rows: list[StagedRow]) -> None:
        self._db.execute("BEGIN")
        try:
            self._db.executemany("INSERT INTO temp.intake_stage VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _insert_staged(self, now: float) -> list[int]:
        with self._write() as db:
            before = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM items").fetchone()[0])
            inserted = db.execute(_INSERT_STAGED.format(stage="temp.intake_stage"), (now, now)).rowcount
            insert_staged_payloads(db, "temp.intake_stage", "id > ?", before, inserted)
            return [int(row[0]) for row in db.execute("SELECT id FROM items WHERE id > ? ORDER BY id", (before,))]

    def _staged_matches(self) -> Iterator[tuple[bool, int | None]]:
        for row in self._db.execute(_STAGED_MATCHES.format(stage="temp.intake_stage")):
            yield bool(row[0]), None if row[1] is None else int(row[1])

    def _close_stage(self) -> None:
        try:
            self._db.execute("DELETE FROM temp.intake_stage")
        finally:
            self._intake_lock.release()

    def add_rejected(self, kind: ItemKind, source: str, raw: str, reason: str) -> int:
        now = _now()
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO items (kind, lane, key, state, reason, source, received_at, updated_at)"
                " VALUES (?, NULL, NULL, 'rejected', ?, ?, ?, ?)",
                (kind.value, reason, source, now, now),
            )
            item_id = int(cursor.lastrowid or 0)
            db.execute("INSERT INTO payloads (item_id, payload) VALUES (?, ?)", (item_id, raw[:4096]))
            return item_id

    # -- reads -------------------------------------------------------------------------------------------------

    def item(self, item_id: int) -> Item:
        row = self._db.execute(f"SELECT {ITEM_COLUMNS} FROM item_view WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise InvalidInput(f"item: no item with id {item_id}")
        return item_of(row)

    def items(
        self, *, state: ItemState | None = None, lane: Lane | None = None, limit: int | None = None
    ) -> list[Item]:
        # Received and rejected items are stored as reported; the state is written out, so that waiting items are
        # read through their index (a partial index serves a literal, not a parameter).
        stored = state in (ItemState.RECEIVED, ItemState.REJECTED)
        columns, table, row = (STORED_COLUMNS, STORED_ITEMS, "i.") if stored else (ITEM_COLUMNS, "item_view", "")
        clauses, params = [], []
        if state is not None:
            clauses.append(f"{row}state = '{state.value}'")
        if lane is not None:
            clauses.append(f"{row}lane = ?")
            params.append(lane.value)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        sql = f"SELECT {columns} FROM {table}{where} ORDER BY {row}id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [item_of(row) for row in self._db.execute(sql, params)]

    def backlog(self, lane: Lane) -> LaneBacklog | None:
        row = self._db.execute(
            "SELECT COUNT(*), MIN(received_at), MAX(received_at) FROM items WHERE state = 'received' AND lane = ?",
            (lane.value,),
        ).fetchone()
        if not row[0]:
            return None
        return LaneBacklog(lane=lane, count=int(row[0]), oldest_at=float(row[1]), newest_at=float(row[2]))

    def batch(self, batch_id: int) -> Batch:
        row = self._db.execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
        if row is None:
            raise InvalidInput(f"batch: no batch with id {batch_id}")
        return batch_of(row)

    def batches(self, *states: BatchState) -> list[Batch]:
        if states:
            marks = ",".join("?" * len(states))
            rows = self._db.execute(
                f"SELECT * FROM batches WHERE state IN ({marks}) ORDER BY id", [s.value for s in states]
            )
        else:
            rows = self._db.execute("SELECT * FROM batches ORDER BY id")
        return [batch_of(row) for row in rows]

    def batch_items(self, batch_id: int) -> list[Item]:
        rows = self._db.execute(f"SELECT {ITEM_COLUMNS} FROM item_view WHERE batch_id = ? ORDER BY id", (batch_id,))
        return [item_of(row) for row in rows]

    def current_tx(self, batch_id: int) -> TxRecord | None:
        row = self._db.execute(
            "SELECT * FROM transactions WHERE batch_id = ? ORDER BY id DESC LIMIT 1", (batch_id,)
        ).fetchone()
        return None if row is None else tx_of(row)

    def batch_txs(self, batch_id: int) -> list[TxRecord]:
        """Every transaction signed for the batch, newest first."""
        rows = self._db.execute("SELECT * FROM transactions WHERE batch_id = ? ORDER BY id DESC", (batch_id,))
        return [tx_of(row) for row in rows]

    # -- leases: one relayer per SQLite queue (``relayer run`` refuses a second), so it holds all the work --------

    @property
    def worker(self) -> str:
        """The instance id written in logs."""
        return self._worker

    def claim_items(self, lane: Lane, limit: int, *, ttl: float, settler: str | None = None) -> list[Item]:
        """The oldest ``limit`` received items of ``lane`` (nobody else works on this queue, so an upto payment
        naming another ``settler`` is taken too, and fails on chain with its reason)."""
        return self.items(state=ItemState.RECEIVED, lane=lane, limit=limit)

    def claim_batches(
        self, states: Sequence[BatchState], limit: int, *, ttl: float, reclaim: bool = False
    ) -> list[BatchLease]:
        """With ``reclaim`` (at start), the oldest ``limit`` batches in ``states``, each as a lease that never runs
        out; without, none: no other instance ever leaves batches behind on this queue."""
        if not reclaim:
            return []
        return [BatchLease(b, self._worker, 0, math.inf) for b in self.batches(*states)[:limit]]

    def renew_leases(self, *, ttl: float) -> list[int]:
        """Nothing to renew and nothing lost: returns no batch ids."""
        return []

    def held_batches(self, *states: BatchState) -> list[Batch]:
        """Every batch in ``states``: this instance holds them all."""
        return self.batches(*states)

    # -- status ------------------------------------------------------------------------------------------------

    def item_counts(self) -> dict[str, int]:
        return {
            str(row[0]): int(row[1]) for row in self._db.execute("SELECT state, COUNT(*) FROM item_view GROUP BY state")
        }

    def any_in_flight(self) -> bool:
        row = self._db.execute(
            "SELECT EXISTS (SELECT 1 FROM items WHERE state = 'received')"
            " OR EXISTS (SELECT 1 FROM batches AS b JOIN items AS i ON i.batch_id = b.id"
            " WHERE b.state IN ('built', 'submitted') AND i.state = 'batched')"
        ).fetchone()
        return bool(row[0])

    def status(self) -> QueueStatus:
        by_state: dict[str, int] = {}
        by_lane: dict[str, dict[str, int]] = {}
        for row in self._db.execute("SELECT lane, state, COUNT(*) FROM item_view GROUP BY lane, state"):
            lane = row[0] or "unknown"
            by_state[row[1]] = by_state.get(row[1], 0) + int(row[2])
            by_lane.setdefault(lane, {})[row[1]] = int(row[2])
        batches = {str(r[0]): int(r[1]) for r in self._db.execute("SELECT state, COUNT(*) FROM batches GROUP BY state")}
        marks = ",".join("?" * len(_IN_FLIGHT_ITEMS))
        oldest = self._db.execute(
            f"SELECT {ITEM_COLUMNS} FROM item_view WHERE state IN ({marks}) ORDER BY received_at, id LIMIT 1",
            [s.value for s in _IN_FLIGHT_ITEMS],
        ).fetchone()
        last_tx = self._db.execute("SELECT * FROM transactions ORDER BY id DESC LIMIT 1").fetchone()
        reasons = {
            str(r[0]): int(r[1])
            for r in self._db.execute(
                "SELECT reason, COUNT(*) FROM item_view WHERE state IN ('failed', 'rejected') GROUP BY reason"
                " ORDER BY COUNT(*) DESC LIMIT 20"
            )
        }
        return QueueStatus(
            items_by_state=by_state,
            items_by_lane_and_state=by_lane,
            batches_by_state=batches,
            oldest_pending=None if oldest is None else item_of(oldest),
            last_transaction=None if last_tx is None else tx_of(last_tx),
            failure_reasons=reasons,
        )
