"""The relayer's durable queue on PostgreSQL: ``QueueStore`` with the SQLite store's states and guarantees.

Every state change is one transaction that moves the batch, its items and its transaction record together, as in
SQLite. Rows a change depends on are locked (``SELECT … FOR UPDATE``) before they are checked, so several
processes on one database see each transition happen once, whole, or not at all. PostgreSQL's default
``synchronous_commit=on`` makes a committed change durable.

The schema lives in numbered SQL files (``_migrations/postgres/NNNN_name.sql``), applied in order, each in its
own transaction, under an advisory lock so that instances starting together do not race; ``schema_migrations``
records which ones ran. A database newer than this og-settle is refused.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final, cast

from og_settle._errors import InvalidInput, InvariantViolation
from og_settle.relayer._states import (
    BatchState,
    ItemKind,
    ItemState,
    Lane,
    check_batch_transition,
    check_item_transition,
)
from og_settle.relayer._store import (
    _IN_FLIGHT_ITEMS,
    Batch,
    IntakeOutcome,
    Item,
    LaneBacklog,
    NewItem,
    QueueStatus,
    SqliteStore,
    TxRecord,
    _now,
)

__all__ = ["Migration", "PostgresStore", "migrations", "redact_url"]

# pg_advisory_xact_lock key taken while migrating: "og-settle" as an int64, so unrelated users of the database
# are not blocked.
_MIGRATION_LOCK: Final = int.from_bytes(b"ogsettle", "big") >> 1
_MIGRATION_NAME: Final = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema change.

    Attributes:
        version: its number (the file name's four digits); applied in increasing order.
        name: the rest of the file name.
        sql: the statements.
    """

    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The PostgreSQL schema migrations shipped with og-settle, in order."""
    found = []
    folder = resources.files("og_settle.relayer").joinpath("_migrations", "postgres")
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match is not None:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise InvariantViolation(f"PostgreSQL migrations are not numbered 1..n: {[m.version for m in found]}")
    return found


def redact_url(url: str) -> str:
    """The connection URL with any password replaced by ``***``, for messages."""
    return re.sub(r"^(postgres(?:ql)?://[^:/@]*:)[^@]*@", r"\1***@", url)


class PostgresStore:
    """``QueueStore`` on a PostgreSQL database (``postgresql://user[:password]@host[:port]/dbname``).

    Several processes (relayers, ``relayer submit``, the facilitator) may use one database at the same time.
    One store holds one connection; a lock serialises its use across threads.
    """

    def __init__(self, url: str, *, connect_timeout: float = 10.0) -> None:
        try:
            import psycopg
            from psycopg.rows import dict_row
        except ImportError:  # pragma: no cover - depends on the installation
            raise InvalidInput(
                "db: PostgreSQL needs psycopg; install og-settle[postgres] (pip install 'psycopg[binary]')"
            ) from None
        self.url = url
        try:
            self._db: Any = psycopg.connect(
                url, autocommit=True, row_factory=dict_row, connect_timeout=max(1, int(connect_timeout))
            )
        except psycopg.Error as err:
            detail = " ".join(str(err).split())
            raise InvalidInput(f"db: cannot connect to PostgreSQL at {redact_url(url)}: {detail}") from None
        self._lock = threading.RLock()
        self.migrate()

    # -- schema ------------------------------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The highest migration applied to this database (0 for an empty database)."""
        with self._lock:
            exists = self._db.execute("SELECT to_regclass('schema_migrations') IS NOT NULL AS present").fetchone()
            if not exists["present"]:
                return 0
            row = self._db.execute("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations").fetchone()
            return int(row["v"])

    def migrate(self) -> list[int]:
        """Apply the migrations this database lacks, each in its own transaction; returns their numbers."""
        known = migrations()
        applied: list[int] = []
        with self._lock:
            for migration in known:
                with self._db.transaction():
                    self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                    self._db.execute(
                        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                        " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                    )
                    newest = self._db.execute("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
                    current = int(newest.fetchone()["v"])
                    if current > known[-1].version:
                        raise InvalidInput(
                            f"db: {redact_url(self.url)} has queue schema version {current}; this og-settle"
                            f" knows versions up to {known[-1].version}"
                        )
                    if migration.version <= current:
                        continue
                    self._db.execute(migration.sql)
                    self._db.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
                    applied.append(migration.version)
        return applied

    @contextmanager
    def _write(self) -> Iterator[Any]:
        """One transaction; it commits when the block ends and rolls back if it raises."""
        with self._lock, self._db.transaction():
            yield self._db

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            rows: list[dict[str, Any]] = self._db.execute(sql, params).fetchall()
            return rows

    def close(self) -> None:
        self._db.close()

    # -- meta --------------------------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = %s", (key,))
        return None if not rows else str(rows[0]["value"])

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (key, value),
            )

    # -- intake ------------------------------------------------------------------------------------------------

    def add_items(self, items: Sequence[NewItem]) -> list[IntakeOutcome]:
        for new in items:
            if len(new.key) != 32:
                raise InvariantViolation(f"idempotency key must be 32 bytes, got {len(new.key)}")
        first: dict[bytes, NewItem] = {}
        for new in items:
            first.setdefault(new.key, new)
        if not first:
            return []
        now = _now()
        fresh = list(first.values())
        with self._write() as db:
            # One statement for the whole chunk: rows go in input order (ids increase with intake order), a key
            # already queued (by anyone, even a transaction that commits meanwhile) is skipped, not an error.
            inserted = db.execute(
                "INSERT INTO items (kind, lane, key, payload, state, source, received_at, updated_at)"
                " SELECT kind, lane, key, payload, %s, source, %s, %s"
                " FROM unnest(%s::text[], %s::text[], %s::bytea[], %s::text[], %s::text[]) WITH ORDINALITY"
                " AS t(kind, lane, key, payload, source, ord) ORDER BY ord"
                " ON CONFLICT (key) DO NOTHING RETURNING id, key",
                (
                    ItemState.RECEIVED.value,
                    now,
                    now,
                    [n.kind.value for n in fresh],
                    [n.lane.value for n in fresh],
                    [n.key for n in fresh],
                    [json.dumps(n.payload, sort_keys=True, separators=(",", ":")) for n in fresh],
                    [n.source for n in fresh],
                ),
            ).fetchall()
            new_ids = {bytes(row["key"]): int(row["id"]) for row in inserted}
            missing = [key for key in first if key not in new_ids]
            old_ids: dict[bytes, int] = {}
            if missing:
                rows = db.execute("SELECT id, key FROM items WHERE key = ANY(%s)", (missing,)).fetchall()
                old_ids = {bytes(row["key"]): int(row["id"]) for row in rows}
        outcomes = []
        seen: set[bytes] = set()
        for new in items:
            if new.key in new_ids and new.key not in seen:
                outcomes.append(IntakeOutcome(item_id=new_ids[new.key], duplicate=False))
            else:
                outcomes.append(IntakeOutcome(item_id=new_ids.get(new.key) or old_ids[new.key], duplicate=True))
            seen.add(new.key)
        return outcomes

    def add_rejected(self, kind: ItemKind, source: str, raw: str, reason: str) -> int:
        now = _now()
        with self._write() as db:
            row = db.execute(
                "INSERT INTO items (kind, lane, key, payload, state, reason, source, received_at, updated_at)"
                " VALUES (%s, NULL, NULL, %s, %s, %s, %s, %s, %s) RETURNING id",
                # PostgreSQL text cannot hold NUL characters; a rejected record is kept for operators to read.
                (kind.value, raw[:4096].replace("\0", "\ufffd"), ItemState.REJECTED.value, reason, source, now, now),
            ).fetchone()
            return int(row["id"])

    # -- reads -------------------------------------------------------------------------------------------------
    # Rows come back as dicts keyed by column name, which the SQLite store's row readers accept as they are.

    @staticmethod
    def _item(row: Mapping[str, Any]) -> Item:
        return SqliteStore._item(cast(sqlite3.Row, row))

    @staticmethod
    def _batch(row: Mapping[str, Any]) -> Batch:
        return SqliteStore._batch(cast(sqlite3.Row, row))

    @staticmethod
    def _tx(row: Mapping[str, Any]) -> TxRecord:
        return SqliteStore._tx(cast(sqlite3.Row, row))

    def item(self, item_id: int) -> Item:
        rows = self._query("SELECT * FROM items WHERE id = %s", (item_id,))
        if not rows:
            raise InvalidInput(f"item: no item with id {item_id}")
        return self._item(rows[0])

    def items(
        self, *, state: ItemState | None = None, lane: Lane | None = None, limit: int | None = None
    ) -> list[Item]:
        sql = (
            "SELECT * FROM items WHERE (%(state)s::text IS NULL OR state = %(state)s)"
            " AND (%(lane)s::text IS NULL OR lane = %(lane)s) ORDER BY id LIMIT %(limit)s"
        )
        params = {
            "state": None if state is None else state.value,
            "lane": None if lane is None else lane.value,
            "limit": limit,
        }
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [self._item(row) for row in rows]

    def backlog(self, lane: Lane) -> LaneBacklog | None:
        row = self._query(
            "SELECT COUNT(*) AS n, MIN(received_at) AS oldest, MAX(received_at) AS newest FROM items"
            " WHERE state = %s AND lane = %s",
            (ItemState.RECEIVED.value, lane.value),
        )[0]
        if not row["n"]:
            return None
        return LaneBacklog(
            lane=lane, count=int(row["n"]), oldest_at=float(row["oldest"]), newest_at=float(row["newest"])
        )

    def batch(self, batch_id: int) -> Batch:
        rows = self._query("SELECT * FROM batches WHERE id = %s", (batch_id,))
        if not rows:
            raise InvalidInput(f"batch: no batch with id {batch_id}")
        return self._batch(rows[0])

    def batches(self, *states: BatchState) -> list[Batch]:
        rows = self._query(
            "SELECT * FROM batches WHERE cardinality(%s::text[]) = 0 OR state = ANY(%s::text[]) ORDER BY id",
            ([s.value for s in states], [s.value for s in states]),
        )
        return [self._batch(row) for row in rows]

    def batch_items(self, batch_id: int) -> list[Item]:
        return [self._item(r) for r in self._query("SELECT * FROM items WHERE batch_id = %s ORDER BY id", (batch_id,))]

    def open_items(self, batch_id: int) -> list[Item]:
        """The batch's items that are not yet confirmed or failed."""
        rows = self._query(
            "SELECT * FROM items WHERE batch_id = %s AND state = ANY(%s) ORDER BY id",
            (batch_id, [ItemState.BATCHED.value, ItemState.SUBMITTED.value]),
        )
        return [self._item(row) for row in rows]

    def current_tx(self, batch_id: int) -> TxRecord | None:
        rows = self._query("SELECT * FROM transactions WHERE batch_id = %s ORDER BY id DESC LIMIT 1", (batch_id,))
        return None if not rows else self._tx(rows[0])

    def batch_txs(self, batch_id: int) -> list[TxRecord]:
        """Every transaction signed for the batch, newest first."""
        rows = self._query("SELECT * FROM transactions WHERE batch_id = %s ORDER BY id DESC", (batch_id,))
        return [self._tx(row) for row in rows]

    # -- transitions -------------------------------------------------------------------------------------------

    @staticmethod
    def _move_items(db: Any, ids: Sequence[int], new: ItemState, *, reason: str | None, now: float) -> None:
        """Move items to ``new``, checking each transition; the caller holds the transaction."""
        if not ids:
            return
        wanted = sorted(set(ids))
        rows = db.execute("SELECT id, state FROM items WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (wanted,)).fetchall()
        if len(rows) != len(wanted):
            raise InvariantViolation(f"items {sorted(set(wanted) - {r['id'] for r in rows})} do not exist")
        for row in rows:
            check_item_transition(ItemState(row["state"]), new)
        db.execute(
            "UPDATE items SET state = %s, reason = %s, updated_at = %s WHERE id = ANY(%s)",
            (new.value, reason, now, wanted),
        )

    def _move_batch(self, db: Any, batch_id: int, new: BatchState, **fields: Any) -> Batch:
        row = db.execute("SELECT * FROM batches WHERE id = %s FOR UPDATE", (batch_id,)).fetchone()
        if row is None:
            raise InvariantViolation(f"batch {batch_id} does not exist")
        batch = self._batch(row)
        check_batch_transition(batch.state, new)
        sets = ", ".join(f"{name} = %s" for name in ("state", "updated_at", *fields))
        db.execute(f"UPDATE batches SET {sets} WHERE id = %s", [new.value, _now(), *fields.values(), batch_id])
        return batch

    @staticmethod
    def _batch_item_ids(db: Any, batch_id: int, *states: ItemState) -> list[int]:
        """Ids of the batch's items, optionally only those in ``states``."""
        rows = db.execute(
            "SELECT id FROM items WHERE batch_id = %s AND (cardinality(%s::text[]) = 0 OR state = ANY(%s::text[]))"
            " ORDER BY id",
            (batch_id, [s.value for s in states], [s.value for s in states]),
        ).fetchall()
        return [int(r["id"]) for r in rows]

    def create_batch(
        self, lane: Lane, item_ids: Sequence[int], *, root: bytes | None, dump_path: str | None, dump: str | None
    ) -> Batch:
        if not item_ids:
            raise InvariantViolation("a batch needs at least one item")
        now = _now()
        wanted = sorted(set(item_ids))
        with self._write() as db:
            row = db.execute(
                "INSERT INTO batches (lane, state, size, root, dump_path, dump, created_at, updated_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
                (lane.value, BatchState.BUILT.value, len(item_ids), root, dump_path, dump, now, now),
            ).fetchone()
            # The WHERE clause is re-checked after any concurrent writer commits, so an item another process
            # batched meanwhile is not counted here and the whole batch is refused.
            changed = db.execute(
                "UPDATE items SET state = %s, batch_id = %s, updated_at = %s"
                " WHERE id = ANY(%s) AND state = %s AND lane = %s",
                (ItemState.BATCHED.value, row["id"], now, wanted, ItemState.RECEIVED.value, lane.value),
            ).rowcount
            if changed != len(wanted):
                raise InvariantViolation(f"batch {row['id']}: some of items {wanted} are not received {lane} items")
        return self._batch(row)

    def record_signed_tx(self, batch_id: int, *, tx_hash: bytes, nonce: int, sender: str, raw: bytes) -> TxRecord:
        now = _now()
        with self._write() as db:
            batch = self._move_batch(db, batch_id, BatchState.SUBMITTED)
            db.execute("UPDATE batches SET attempts = %s WHERE id = %s", (batch.attempts + 1, batch_id))
            open_ids = self._batch_item_ids(db, batch_id, ItemState.BATCHED)
            if not open_ids:
                raise InvariantViolation(f"batch {batch_id} has no open items to submit")
            self._move_items(db, open_ids, ItemState.SUBMITTED, reason=None, now=now)
            row = db.execute(
                "INSERT INTO transactions (batch_id, tx_hash, nonce, sender, raw, state, created_at, updated_at)"
                " VALUES (%s, %s, %s, %s, %s, 'sent', %s, %s) RETURNING *",
                (batch_id, tx_hash, nonce, sender, raw, now, now),
            ).fetchone()
        return self._tx(row)

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
            ids = self._batch_item_ids(db, batch_id, ItemState.BATCHED, ItemState.SUBMITTED)
            unknown = set(failures) - set(ids)
            if unknown:
                raise InvariantViolation(f"batch {batch_id}: failures reported for items {sorted(unknown)} not in it")
            self._move_items(db, [i for i in ids if i not in failures], ItemState.CONFIRMED, reason=note, now=now)
            for item_id, reason in failures.items():
                self._move_items(db, [item_id], ItemState.FAILED, reason=reason, now=now)
            if tx_hash is not None:
                db.execute(
                    "UPDATE transactions SET state = 'mined', block_number = %s, gas_used = %s, updated_at = %s"
                    " WHERE tx_hash = %s",
                    (block_number, gas_used, now, tx_hash),
                )
            # Any other transaction signed for this batch can never be mined now (the contract would refuse it).
            db.execute(
                "UPDATE transactions SET state = 'replaced', note = COALESCE(note, 'batch confirmed by another'),"
                " updated_at = %s WHERE batch_id = %s AND state = 'sent'",
                (now, batch_id),
            )

    def fail_batch(
        self, batch_id: int, reason: str, *, tx_hash: bytes | None = None, block_number: int | None = None
    ) -> None:
        now = _now()
        with self._write() as db:
            self._move_batch(db, batch_id, BatchState.FAILED, reason=reason)
            open_ids = self._batch_item_ids(db, batch_id, ItemState.BATCHED, ItemState.SUBMITTED)
            self._move_items(db, open_ids, ItemState.FAILED, reason=reason, now=now)
            if tx_hash is not None:
                db.execute(
                    "UPDATE transactions SET state = 'reverted', block_number = %s, note = %s, updated_at = %s"
                    " WHERE tx_hash = %s",
                    (block_number, reason, now, tx_hash),
                )

    def reopen_batch(self, batch_id: int, note: str) -> None:
        """A submitted batch's transaction can never be mined (its nonce went to another): sign it again."""
        now = _now()
        with self._write() as db:
            self._move_batch(db, batch_id, BatchState.BUILT, reason=note)
            open_ids = self._batch_item_ids(db, batch_id, ItemState.SUBMITTED)
            self._move_items(db, open_ids, ItemState.BATCHED, reason=None, now=now)
            db.execute(
                "UPDATE transactions SET state = 'replaced', note = %s, updated_at = %s"
                " WHERE batch_id = %s AND state = 'sent'",
                (note, now, batch_id),
            )

    def dissolve_batch(self, batch_id: int, note: str) -> None:
        """A built batch that was never signed is undone: its items go back to ``received``."""
        now = _now()
        with self._write() as db:
            self._move_batch(db, batch_id, BatchState.FAILED, reason=note)
            ids = self._batch_item_ids(db, batch_id, ItemState.BATCHED)
            self._move_items(db, ids, ItemState.RECEIVED, reason=None, now=now)
            db.execute("UPDATE items SET batch_id = NULL WHERE id = ANY(%s)", (ids,))

    def resolve_items(self, batch_id: int, *, confirmed: Mapping[int, str], failed: Mapping[int, str]) -> None:
        """Some open items of a built batch turned out settled (or unsettleable) on chain before its transaction
        was signed: move them to confirmed / failed with a note; the rest stay in the batch."""
        now = _now()
        with self._write() as db:
            db.execute("SELECT id FROM batches WHERE id = %s FOR UPDATE", (batch_id,))
            open_ids = set(self._batch_item_ids(db, batch_id, ItemState.BATCHED))
            stray = (set(confirmed) | set(failed)) - open_ids
            if stray:
                raise InvariantViolation(f"batch {batch_id}: items {sorted(stray)} are not open items of it")
            for item_id, note in confirmed.items():
                self._move_items(db, [item_id], ItemState.CONFIRMED, reason=note, now=now)
            for item_id, reason in failed.items():
                self._move_items(db, [item_id], ItemState.FAILED, reason=reason, now=now)

    def settle_without_tx(self, item_ids: Sequence[int], note: str) -> None:
        """Items that need no transaction (private mode) are done."""
        with self._write() as db:
            self._move_items(db, item_ids, ItemState.CONFIRMED, reason=note, now=_now())

    def fail_items(self, item_ids: Sequence[int], reason: str) -> None:
        with self._write() as db:
            self._move_items(db, item_ids, ItemState.FAILED, reason=reason, now=_now())

    # -- status ------------------------------------------------------------------------------------------------

    def status(self) -> QueueStatus:
        by_state: dict[str, int] = {}
        by_lane: dict[str, dict[str, int]] = {}
        # One snapshot for every count, so the figures agree with each other.
        with self._lock, self._db.transaction():
            db = self._db
            db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            for row in db.execute("SELECT lane, state, COUNT(*) AS n FROM items GROUP BY lane, state"):
                lane = row["lane"] or "unknown"
                by_state[row["state"]] = by_state.get(row["state"], 0) + int(row["n"])
                by_lane.setdefault(lane, {})[row["state"]] = int(row["n"])
            batches = {
                str(r["state"]): int(r["n"])
                for r in db.execute("SELECT state, COUNT(*) AS n FROM batches GROUP BY state")
            }
            oldest = db.execute(
                "SELECT * FROM items WHERE state = ANY(%s) ORDER BY received_at, id LIMIT 1",
                ([s.value for s in _IN_FLIGHT_ITEMS],),
            ).fetchone()
            last_tx = db.execute("SELECT * FROM transactions ORDER BY id DESC LIMIT 1").fetchone()
            reasons = {
                str(r["reason"]): int(r["n"])
                for r in db.execute(
                    "SELECT reason, COUNT(*) AS n FROM items WHERE state IN ('failed', 'rejected') GROUP BY reason"
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
