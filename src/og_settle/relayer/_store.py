"""The relayer's durable queue on SQLite (the interface and its records: ``_store_api``).

SQLite runs in WAL mode with ``synchronous=FULL``: a transaction that returned is on disk and survives a
SIGKILL or a power cut. Every state change is one transaction that moves the batch, its items and its
transaction record together, so a crash leaves either the old state or the new one, never a mix.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from og_settle._errors import InvalidInput, InvariantViolation
from og_settle.relayer._states import (
    BatchState,
    ItemKind,
    ItemState,
    Lane,
    check_batch_transition,
    check_item_transition,
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
from og_settle.relayer._store_intake import StagedIntake, StagedRow, encode_payload

__all__ = [
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

SCHEMA_VERSION: Final = 1

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    lane TEXT,
    key BLOB UNIQUE,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    batch_id INTEGER REFERENCES batches(id),
    source TEXT NOT NULL,
    received_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS items_by_state ON items (state, lane, id);
CREATE INDEX IF NOT EXISTS items_by_batch ON items (batch_id);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    lane TEXT NOT NULL,
    state TEXT NOT NULL,
    size INTEGER NOT NULL,
    root BLOB,
    dump_path TEXT,
    dump TEXT,
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_by_state ON batches (state, id);
CREATE TABLE IF NOT EXISTS transactions (
    id INTEGER PRIMARY KEY,
    batch_id INTEGER NOT NULL REFERENCES batches(id),
    tx_hash BLOB NOT NULL UNIQUE,
    nonce INTEGER NOT NULL,
    sender TEXT NOT NULL,
    raw BLOB NOT NULL,
    state TEXT NOT NULL,
    block_number INTEGER,
    gas_used INTEGER,
    note TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS transactions_by_batch ON transactions (batch_id, id);
"""


# Enum members by stored value (a dict lookup; calling the enum costs more, once per column of 100k-item reads).
_KINDS: Final = {kind.value: kind for kind in ItemKind}
_LANES: Final = {lane.value: lane for lane in Lane}
_ITEM_STATES: Final = {state.value: state for state in ItemState}


# An item's columns in ``Item``'s field order: items are read by position (100k-item reads are the hot path).
_ITEM_COLUMNS: Final = "id, kind, lane, key, payload, state, reason, batch_id, source, received_at, updated_at"
_OPEN_ITEM_STATES: Final = (ItemState.BATCHED, ItemState.SUBMITTED)


def _now() -> float:
    return time.time()


def default_worker() -> str:
    """An instance id when none is given: this host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


_STAGE_TABLE: Final = (
    "CREATE TEMP TABLE IF NOT EXISTS intake_stage (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, lane TEXT,"
    " key BLOB, payload TEXT NOT NULL, state TEXT NOT NULL, reason TEXT, source TEXT NOT NULL)"
)
_INSERT_STAGED: Final = (
    "INSERT INTO items (kind, lane, key, payload, state, reason, source, received_at, updated_at)"
    " SELECT kind, lane, key, payload, state, reason, source, ?, ? FROM {stage} WHERE true ORDER BY seq"
    " ON CONFLICT (key) DO NOTHING"
)
_STAGED_MATCHES: Final = "SELECT s.key IS NULL, i.id FROM {stage} s LEFT JOIN items i ON i.key = s.key ORDER BY s.seq"


class SqliteStore(StagedIntake):
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
        with self._write():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise InvalidInput(
                    f"db: {self.path} has queue schema version {row[0]}; this og-settle reads version {SCHEMA_VERSION}"
                )

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
                    "INSERT INTO items (kind, lane, key, payload, state, source, received_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        new.kind.value,
                        new.lane.value,
                        new.key,
                        encode_payload(new.payload),
                        ItemState.RECEIVED.value,
                        new.source,
                        now,
                        now,
                    ),
                )
                outcomes.append(IntakeOutcome(item_id=int(cursor.lastrowid or 0), duplicate=False))
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
            db.execute(_INSERT_STAGED.format(stage="temp.intake_stage"), (now, now))
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
                "INSERT INTO items (kind, lane, key, payload, state, reason, source, received_at, updated_at)"
                " VALUES (?, NULL, NULL, ?, ?, ?, ?, ?, ?)",
                (kind.value, raw[:4096], ItemState.REJECTED.value, reason, source, now, now),
            )
            return int(cursor.lastrowid or 0)

    # -- reads -------------------------------------------------------------------------------------------------

    @staticmethod
    def _item(row: sqlite3.Row) -> Item:
        """An item from a row of ``_ITEM_COLUMNS`` (read by position)."""
        key, lane = row[3], row[2]
        return Item(
            int(row[0]),
            _KINDS[row[1]],
            None if lane is None else _LANES[lane],
            None if key is None else bytes(key),
            str(row[4]),
            _ITEM_STATES[row[5]],
            row[6],
            row[7],
            str(row[8]),
            float(row[9]),
            float(row[10]),
        )

    @staticmethod
    def _batch(row: sqlite3.Row) -> Batch:
        return Batch(
            id=int(row["id"]),
            lane=Lane(row["lane"]),
            state=BatchState(row["state"]),
            size=int(row["size"]),
            root=None if row["root"] is None else bytes(row["root"]),
            dump_path=row["dump_path"],
            dump=row["dump"],
            reason=row["reason"],
            attempts=int(row["attempts"]),
            created_at=float(row["created_at"]),
            updated_at=float(row["updated_at"]),
        )

    @staticmethod
    def _tx(row: sqlite3.Row) -> TxRecord:
        return TxRecord(
            id=int(row["id"]),
            batch_id=int(row["batch_id"]),
            tx_hash=bytes(row["tx_hash"]),
            nonce=int(row["nonce"]),
            sender=str(row["sender"]),
            raw=bytes(row["raw"]),
            state=str(row["state"]),
            block_number=row["block_number"],
            gas_used=row["gas_used"],
            note=row["note"],
            created_at=float(row["created_at"]),
        )

    def item(self, item_id: int) -> Item:
        row = self._db.execute(f"SELECT {_ITEM_COLUMNS} FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise InvalidInput(f"item: no item with id {item_id}")
        return self._item(row)

    def items(
        self, *, state: ItemState | None = None, lane: Lane | None = None, limit: int | None = None
    ) -> list[Item]:
        clauses, params = [], []
        if state is not None:
            clauses.append("state = ?")
            params.append(state.value)
        if lane is not None:
            clauses.append("lane = ?")
            params.append(lane.value)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        sql = f"SELECT {_ITEM_COLUMNS} FROM items{where} ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [self._item(row) for row in self._db.execute(sql, params)]

    def backlog(self, lane: Lane) -> LaneBacklog | None:
        row = self._db.execute(
            "SELECT COUNT(*), MIN(received_at), MAX(received_at) FROM items WHERE state = ? AND lane = ?",
            (ItemState.RECEIVED.value, lane.value),
        ).fetchone()
        if not row[0]:
            return None
        return LaneBacklog(lane=lane, count=int(row[0]), oldest_at=float(row[1]), newest_at=float(row[2]))

    def batch(self, batch_id: int) -> Batch:
        row = self._db.execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
        if row is None:
            raise InvalidInput(f"batch: no batch with id {batch_id}")
        return self._batch(row)

    def batches(self, *states: BatchState) -> list[Batch]:
        if states:
            marks = ",".join("?" * len(states))
            rows = self._db.execute(
                f"SELECT * FROM batches WHERE state IN ({marks}) ORDER BY id", [s.value for s in states]
            )
        else:
            rows = self._db.execute("SELECT * FROM batches ORDER BY id")
        return [self._batch(row) for row in rows]

    def batch_items(self, batch_id: int) -> list[Item]:
        rows = self._db.execute(f"SELECT {_ITEM_COLUMNS} FROM items WHERE batch_id = ? ORDER BY id", (batch_id,))
        return [self._item(row) for row in rows]

    def current_tx(self, batch_id: int) -> TxRecord | None:
        row = self._db.execute(
            "SELECT * FROM transactions WHERE batch_id = ? ORDER BY id DESC LIMIT 1", (batch_id,)
        ).fetchone()
        return None if row is None else self._tx(row)

    def batch_txs(self, batch_id: int) -> list[TxRecord]:
        """Every transaction signed for the batch, newest first."""
        rows = self._db.execute("SELECT * FROM transactions WHERE batch_id = ? ORDER BY id DESC", (batch_id,))
        return [self._tx(row) for row in rows]

    # -- transitions -------------------------------------------------------------------------------------------

    # A set of item ids as one statement parameter: a JSON array here, an array on PostgreSQL.
    _ID_SET: str = "(SELECT value FROM json_each(?))"

    @staticmethod
    def _ids_param(ids: Sequence[int]) -> Any:
        return json.dumps([int(i) for i in ids])

    def _move_items(
        self, db: sqlite3.Connection, ids: Sequence[int], new: ItemState, *, reason: str | None, now: float
    ) -> None:
        """Move items to ``new``, checking every transition (once per distinct current state, from a grouped
        count); the caller holds the write transaction."""
        wanted = sorted(set(ids))
        if not wanted:
            return
        param = self._ids_param(wanted)
        counts = db.execute(f"SELECT state, COUNT(*) FROM items WHERE id IN {self._ID_SET} GROUP BY state", (param,))
        found = {_ITEM_STATES[str(row[0])]: int(row[1]) for row in counts}
        if sum(found.values()) != len(wanted):
            present = {int(r[0]) for r in db.execute(f"SELECT id FROM items WHERE id IN {self._ID_SET}", (param,))}
            raise InvariantViolation(f"items {sorted(set(wanted) - present)[:20]} do not exist")
        for state in found:
            check_item_transition(state, new)
        changed = db.execute(
            f"UPDATE items SET state = ?, reason = ?, updated_at = ? WHERE id IN {self._ID_SET}",
            (new.value, reason, now, param),
        ).rowcount
        if changed != len(wanted):
            raise InvariantViolation(f"moving {len(wanted)} items to {new}: {changed} changed")

    def _move_batch_items(
        self,
        db: sqlite3.Connection,
        batch_id: int,
        old: Sequence[ItemState],
        new: ItemState,
        *,
        reason: str | None,
        now: float,
        detach: bool = False,
    ) -> int:
        """Move every item of the batch that is in one of the ``old`` states to ``new`` in one statement (each
        ``old`` -> ``new`` transition checked first), optionally taking them out of the batch; returns how many
        moved. The caller holds the write transaction (and the batch's row: every change to a batch's items
        goes through its batch)."""
        for state in old:
            check_item_transition(state, new)
        marks = ",".join("?" * len(old))
        batch_column = ", batch_id = NULL" if detach else ""
        return int(
            db.execute(
                f"UPDATE items SET state = ?, reason = ?, updated_at = ?{batch_column}"
                f" WHERE batch_id = ? AND state IN ({marks})",
                (new.value, reason, now, batch_id, *(s.value for s in old)),
            ).rowcount
        )

    def _move_batch(self, db: sqlite3.Connection, batch_id: int, new: BatchState, **fields: Any) -> Batch:
        row = db.execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
        if row is None:
            raise InvariantViolation(f"batch {batch_id} does not exist")
        batch = self._batch(row)
        check_batch_transition(batch.state, new)
        sets = ", ".join(f"{name} = ?" for name in ("state", "updated_at", *fields))
        db.execute(f"UPDATE batches SET {sets} WHERE id = ?", [new.value, _now(), *fields.values(), batch_id])
        return batch

    def _lock_batch_items(self, db: sqlite3.Connection, batch_id: int, *states: ItemState) -> None:
        """Lock the batch's items in ``states`` before they are moved (PostgreSQL; SQLite's write transaction
        holds the whole database already)."""

    def _check_open_items(
        self,
        db: sqlite3.Connection,
        batch_id: int,
        ids: Iterable[int],
        what: str,
        *,
        states: Sequence[ItemState] = _OPEN_ITEM_STATES,
    ) -> None:
        """Refuse ids that are not items of the batch in ``states``."""
        wanted = sorted(set(ids))
        if not wanted:
            return
        marks = ",".join("?" * len(states))
        rows = db.execute(
            f"SELECT id FROM items WHERE id IN {self._ID_SET} AND batch_id = ? AND state IN ({marks})",
            (self._ids_param(wanted), batch_id, *(s.value for s in states)),
        )
        stray = set(wanted) - {int(row[0]) for row in rows}
        if stray:
            raise InvariantViolation(f"batch {batch_id}: {what} {sorted(stray)} not open items of it")

    def create_batch(
        self, lane: Lane, item_ids: Sequence[int], *, root: bytes | None, dump_path: str | None, dump: str | None
    ) -> Batch:
        if not item_ids:
            raise InvariantViolation("a batch needs at least one item")
        now = _now()
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO batches (lane, state, size, root, dump_path, dump, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (lane.value, BatchState.BUILT.value, len(item_ids), root, dump_path, dump, now, now),
            )
            batch_id = int(cursor.lastrowid or 0)
            wanted = sorted(set(item_ids))
            changed = db.execute(
                f"UPDATE items SET state = ?, batch_id = ?, updated_at = ?"
                f" WHERE id IN {self._ID_SET} AND state = ? AND lane = ?",
                (ItemState.BATCHED.value, batch_id, now, self._ids_param(wanted), ItemState.RECEIVED.value, lane.value),
            ).rowcount
            if changed != len(wanted):
                raise InvariantViolation(
                    f"batch {batch_id}: {len(wanted) - changed} of its {len(wanted)} items are not received"
                    f" {lane} items"
                )
            row = db.execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
        return self._batch(row)

    def _insert_tx(
        self, db: sqlite3.Connection, batch_id: int, *, tx_hash: bytes, nonce: int, sender: str, raw: bytes, now: float
    ) -> TxRecord:
        """Store a signed transaction of the batch as ``sent``; the caller holds the write transaction."""
        db.execute(
            "INSERT INTO transactions (batch_id, tx_hash, nonce, sender, raw, state, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, 'sent', ?, ?)",
            (batch_id, tx_hash, nonce, sender, raw, now, now),
        )
        return self._tx(db.execute("SELECT * FROM transactions WHERE tx_hash = ?", (tx_hash,)).fetchone())

    def record_signed_tx(self, batch_id: int, *, tx_hash: bytes, nonce: int, sender: str, raw: bytes) -> TxRecord:
        now = _now()
        with self._write() as db:
            batch = self._move_batch(db, batch_id, BatchState.SUBMITTED)
            db.execute("UPDATE batches SET attempts = ? WHERE id = ?", (batch.attempts + 1, batch_id))
            self._lock_batch_items(db, batch_id, ItemState.BATCHED)
            if not self._move_batch_items(db, batch_id, [ItemState.BATCHED], ItemState.SUBMITTED, reason=None, now=now):
                raise InvariantViolation(f"batch {batch_id} has no open items to submit")
            return self._insert_tx(db, batch_id, tx_hash=tx_hash, nonce=nonce, sender=sender, raw=raw, now=now)

    def record_replacement_tx(self, batch_id: int, *, tx_hash: bytes, nonce: int, sender: str, raw: bytes) -> TxRecord:
        """A fee bump: another transaction for a submitted batch, with the same nonce as its current one and
        higher fees, written before it is broadcast. The batch stays ``submitted``; whichever of its
        transactions is mined confirms it, and ``confirm_batch`` marks the others replaced."""
        now = _now()
        with self._write() as db:
            row = db.execute("SELECT state FROM batches WHERE id = ?", (batch_id,)).fetchone()
            if row is None or BatchState(row[0]) is not BatchState.SUBMITTED:
                raise InvariantViolation(
                    f"batch {batch_id} is not submitted; a replacement needs a transaction to replace"
                )
            current = db.execute(
                "SELECT nonce, sender FROM transactions WHERE batch_id = ? ORDER BY id DESC LIMIT 1", (batch_id,)
            ).fetchone()
            if current is None or int(current[0]) != nonce or str(current[1]) != sender:
                raise InvariantViolation(f"batch {batch_id}: a replacement must reuse its sender and nonce {nonce}")
            return self._insert_tx(db, batch_id, tx_hash=tx_hash, nonce=nonce, sender=sender, raw=raw, now=now)

    def confirm_batch(
        self,
        batch_id: int,
        *,
        tx_hash: bytes | None,
        block_number: int | None,
        gas_used: int | None,
        item_failures: Mapping[int, str] | None = None,
        note: str | None = None,
    ) -> None:
        now = _now()
        failures = dict(item_failures or {})
        with self._write() as db:
            self._move_batch(db, batch_id, BatchState.CONFIRMED, reason=note)
            self._lock_batch_items(db, batch_id, *_OPEN_ITEM_STATES)
            self._check_open_items(db, batch_id, failures, "failures reported for")
            for item_id, reason in failures.items():
                self._move_items(db, [item_id], ItemState.FAILED, reason=reason, now=now)
            self._move_batch_items(db, batch_id, _OPEN_ITEM_STATES, ItemState.CONFIRMED, reason=note, now=now)
            if tx_hash is not None:
                db.execute(
                    "UPDATE transactions SET state = 'mined', block_number = ?, gas_used = ?, updated_at = ?"
                    " WHERE tx_hash = ?",
                    (block_number, gas_used, now, tx_hash),
                )
            # Any other transaction signed for this batch can never be mined now (the contract would refuse it).
            db.execute(
                "UPDATE transactions SET state = 'replaced', note = COALESCE(note, 'batch confirmed by another'),"
                " updated_at = ? WHERE batch_id = ? AND state = 'sent'",
                (now, batch_id),
            )

    def fail_batch(
        self, batch_id: int, reason: str, *, tx_hash: bytes | None = None, block_number: int | None = None
    ) -> None:
        now = _now()
        with self._write() as db:
            self._move_batch(db, batch_id, BatchState.FAILED, reason=reason)
            self._lock_batch_items(db, batch_id, *_OPEN_ITEM_STATES)
            self._move_batch_items(db, batch_id, _OPEN_ITEM_STATES, ItemState.FAILED, reason=reason, now=now)
            if tx_hash is not None:
                db.execute(
                    "UPDATE transactions SET state = 'reverted', block_number = ?, note = ?, updated_at = ?"
                    " WHERE tx_hash = ?",
                    (block_number, reason, now, tx_hash),
                )

    def reopen_batch(self, batch_id: int, note: str) -> None:
        """A submitted batch's transaction can never be mined (its nonce went to another): sign it again."""
        now = _now()
        with self._write() as db:
            self._move_batch(db, batch_id, BatchState.BUILT, reason=note)
            self._lock_batch_items(db, batch_id, ItemState.SUBMITTED)
            self._move_batch_items(db, batch_id, [ItemState.SUBMITTED], ItemState.BATCHED, reason=None, now=now)
            db.execute(
                "UPDATE transactions SET state = 'replaced', note = ?, updated_at = ?"
                " WHERE batch_id = ? AND state = 'sent'",
                (note, now, batch_id),
            )

    def dissolve_batch(self, batch_id: int, note: str) -> None:
        """A built batch that was never signed is undone: its items go back to ``received``."""
        now = _now()
        with self._write() as db:
            self._move_batch(db, batch_id, BatchState.FAILED, reason=note)
            self._lock_batch_items(db, batch_id, ItemState.BATCHED)
            self._move_batch_items(
                db, batch_id, [ItemState.BATCHED], ItemState.RECEIVED, reason=None, now=now, detach=True
            )

    def resolve_items(self, batch_id: int, *, confirmed: Mapping[int, str], failed: Mapping[int, str]) -> None:
        """Some open items of a built batch turned out settled (or unsettleable) on chain before its transaction
        was signed: move them to confirmed / failed with a note; the rest stay in the batch."""
        now = _now()
        with self._write() as db:
            self._check_open_items(db, batch_id, [*confirmed, *failed], "items", states=(ItemState.BATCHED,))
            for item_id, note in confirmed.items():
                self._move_items(db, [item_id], ItemState.CONFIRMED, reason=note, now=now)
            for item_id, reason in failed.items():
                self._move_items(db, [item_id], ItemState.FAILED, reason=reason, now=now)

    def open_items(self, batch_id: int) -> list[Item]:
        """The batch's items that are not yet confirmed or failed."""
        rows = self._db.execute(
            f"SELECT {_ITEM_COLUMNS} FROM items WHERE batch_id = ? AND state IN (?, ?) ORDER BY id",
            (batch_id, *(s.value for s in _OPEN_ITEM_STATES)),
        )
        return [self._item(row) for row in rows]

    def open_count(self, batch_id: int) -> int:
        """How many of the batch's items are not yet confirmed or failed (a Merkle batch needs no more)."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM items WHERE batch_id = ? AND state IN (?, ?)",
            (batch_id, *(s.value for s in _OPEN_ITEM_STATES)),
        ).fetchone()
        return int(row[0])

    def settle_without_tx(self, item_ids: Sequence[int], note: str) -> None:
        """Items that need no transaction (private mode) are done."""
        with self._write() as db:
            self._move_items(db, item_ids, ItemState.CONFIRMED, reason=note, now=_now())

    def fail_items(self, item_ids: Sequence[int], reason: str) -> None:
        with self._write() as db:
            self._move_items(db, item_ids, ItemState.FAILED, reason=reason, now=_now())

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

    def status(self) -> QueueStatus:
        by_state: dict[str, int] = {}
        by_lane: dict[str, dict[str, int]] = {}
        for row in self._db.execute("SELECT lane, state, COUNT(*) FROM items GROUP BY lane, state"):
            lane = row[0] or "unknown"
            by_state[row[1]] = by_state.get(row[1], 0) + int(row[2])
            by_lane.setdefault(lane, {})[row[1]] = int(row[2])
        batches = {str(r[0]): int(r[1]) for r in self._db.execute("SELECT state, COUNT(*) FROM batches GROUP BY state")}
        marks = ",".join("?" * len(_IN_FLIGHT_ITEMS))
        oldest = self._db.execute(
            f"SELECT {_ITEM_COLUMNS} FROM items WHERE state IN ({marks}) ORDER BY received_at, id LIMIT 1",
            [s.value for s in _IN_FLIGHT_ITEMS],
        ).fetchone()
        last_tx = self._db.execute("SELECT * FROM transactions ORDER BY id DESC LIMIT 1").fetchone()
        reasons = {
            str(r[0]): int(r[1])
            for r in self._db.execute(
                "SELECT reason, COUNT(*) FROM items WHERE state IN ('failed', 'rejected') GROUP BY reason"
                " ORDER BY COUNT(*) DESC LIMIT 20"
            )
        }
        return QueueStatus(
            items_by_state=by_state,
            items_by_lane_and_state=by_lane,
            batches_by_state=batches,
            oldest_pending=None if oldest is None else self._item(oldest),
            last_transaction=None if last_tx is None else self._tx(last_tx),
            failure_reasons=reasons,
        )
