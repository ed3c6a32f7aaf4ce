"""The relayer's durable queue on PostgreSQL: ``QueueStore`` with the SQLite store's states and guarantees.

The state machine's statements are written once, in the SQLite store, in SQL both databases accept; this store
runs them through a small connection adapter (``?`` placeholders, rows readable by index and by name) and keeps
only what differs here: the connection, transactions, the schema, bulk intake, ids from ``RETURNING``, and row
locks. Every state change is one transaction that moves the batch, its items and its transaction record
together, as in SQLite; the rows a change depends on are locked (``SELECT … FOR UPDATE``, in id order) before
they are checked, so several processes on one database see each transition happen once, whole, or not at all.
PostgreSQL's default ``synchronous_commit=on`` makes a committed change durable.

The schema lives in numbered SQL files (``_migrations/postgres/NNNN_name.sql``), applied as
:mod:`og_settle._postgres` describes; ``schema_migrations`` records which ones ran.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Final, cast

from og_settle._errors import InvalidInput, InvariantViolation
from og_settle._postgres import (
    Migration,
    SchemaHistory,
    SqliteStyleConnection,
    apply_migrations,
    connect,
    load_migrations,
)
from og_settle.relayer._states import BatchState, ItemKind, ItemState, Lane
from og_settle.relayer._store import (
    Batch,
    BatchLease,
    IntakeOutcome,
    Item,
    LeaseLost,
    NewItem,
    SqliteStore,
    default_worker,
)
from og_settle.relayer._store_api import BatchContent
from og_settle.relayer._store_fleet import PostgresFleetQueries
from og_settle.relayer._store_intake import StagedRow, staged_row
from og_settle.relayer._store_rows import STORED_COLUMNS, STORED_ITEMS, batch_of, item_of
from og_settle.relayer._store_transitions import _now

__all__ = ["PostgresStore", "migrations"]

# The migration lock's key is "ogsettle" as an int64, so unrelated users of the database are not blocked.
_HISTORY: Final = SchemaHistory(
    package="og_settle.relayer",
    table="schema_migrations",
    lock=int.from_bytes(b"ogsettle", "big") >> 1,
    label="queue",
    option="db",
)
# Rows per statement of bulk intake: enough to amortise the round trips, few enough that the last one is quick.
_INSERT_CHUNK: Final = 5_000
# Bulk intake's staging table (one per session) and the statement that moves it into the queue. Each staged row
# draws its item id as ``COPY`` writes it, so ids increase in row order. The keys go first into item_keys, in row
# order (a key already there, or earlier in the stage, skipped: the first copy wins); then the rows that have no key
# (rejected records) or whose key went in become items, each with its payload. It returns each new item's id and
# key, and beside them how many payloads were written.
_STAGE_COLUMNS: Final = "seq, kind, lane, key, payload, state, reason, source"
_STAGE_TABLE: Final = (
    "CREATE TEMP TABLE IF NOT EXISTS intake_stage (seq BIGINT PRIMARY KEY, id BIGINT NOT NULL"
    " DEFAULT nextval('items_id_seq'), kind TEXT NOT NULL, lane TEXT, key BYTEA, payload TEXT NOT NULL,"
    " state TEXT NOT NULL, reason TEXT, source TEXT NOT NULL)"
)
_INSERT_STAGE: Final = (
    "WITH k AS (INSERT INTO item_keys (key, item_id) SELECT key, id FROM intake_stage WHERE key IS NOT NULL"
    " ORDER BY seq ON CONFLICT (key) DO NOTHING RETURNING item_id),"
    " new AS (INSERT INTO items (id, kind, lane, key, state, reason, source, received_at, updated_at)"
    " SELECT id, kind, lane, key, state, reason, source, %s, %s FROM intake_stage"
    " WHERE key IS NULL OR id IN (SELECT item_id FROM k) ORDER BY id RETURNING id, key),"
    " p AS (INSERT INTO payloads (item_id, payload) SELECT id, payload FROM intake_stage"
    " WHERE key IS NULL OR id IN (SELECT item_id FROM k) ORDER BY id RETURNING 1)"
    " SELECT id, key, (SELECT COUNT(*) FROM p) FROM new"
)
# Items read back per statement after a claim.
_READ_CHUNK: Final = 5_000
_OPEN_BATCHES: Final = [BatchState.BUILT.value, BatchState.SUBMITTED.value]
# Where a queued payment names the account that must settle it (upto only; x402 v2 payload, Permit2 witness).
_UPTO_FACILITATOR: Final = "{paymentPayload,payload,permit2Authorization,witness,facilitator}"


def migrations() -> list[Migration]:
    """The queue's PostgreSQL schema migrations shipped with og-settle, in order."""
    return load_migrations(_HISTORY.package)


class PostgresStore(PostgresFleetQueries, SqliteStore):
    """``QueueStore`` on a PostgreSQL database (``postgresql://user[:password]@host[:port]/dbname``).

    Several processes (relayers, ``relayer submit``, the facilitator) may use one database at the same time. One
    store holds one connection; a lock serialises its use across threads. It reuses the SQLite store's
    statements (see the module's description); the contract tests run against both stores.
    """

    def __init__(
        self, url: str, *, connect_timeout: float = 10.0, worker: str | None = None, lease_ttl: float = 30.0
    ) -> None:
        self.url = url
        # The instance id written on every row this store claims or batches (host and process by default).
        self._worker = worker or default_worker()
        # How long a batch this instance builds stays its own without renewal; the fencing tokens it holds.
        self.lease_ttl = lease_ttl
        self._fences: dict[int, int] = {}
        conn = connect(url, option="db", connect_timeout=connect_timeout)
        self._lock = threading.RLock()
        self._intake_lock = threading.Lock()  # one bulk intake at a time per connection (one staging table)
        self._pg = SqliteStyleConnection(conn, self._lock)
        self._db = cast(sqlite3.Connection, self._pg)
        self.migrate()

    # -- schema ------------------------------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The highest migration applied to this database (0 for an empty database)."""
        if not self._pg.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()[0]:
            return 0
        return int(self._pg.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0])

    def migrate(self) -> list[int]:
        """Apply the migrations this database lacks, each in its own transaction; returns their numbers."""
        return apply_migrations(self._pg, self._write, self.url, _HISTORY)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction; it commits when the block ends and rolls back if it raises."""
        with self._lock, self._pg.conn.transaction():
            yield self._db

    # -- what differs from SQLite --------------------------------------------------------------------------------

    def add_items(self, items: Sequence[NewItem]) -> list[IntakeOutcome]:
        rows = [staged_row(seq, new) for seq, new in enumerate(items)]  # refuses a key that is not 32 bytes
        if not rows:
            return []
        with self._write():
            return self._insert_rows(rows, _now())

    def add_staged(self, runs: Iterable[list[StagedRow]]) -> list[IntakeOutcome]:
        """Bulk intake in one transaction held open while the records arrive: each chunk goes straight into
        ``items`` and ``payloads``, so the server's work overlaps the verifying and little is left after the last
        line. All or nothing still: other sessions see none of it before the commit (their ``SKIP LOCKED`` claims
        pass over the new rows; a concurrent insert of one of its keys waits for the commit, then finds it queued),
        and a submit that fails before the commit leaves the queue as it was.

        The chunks are written by a thread of their own, one at a time in order, while this one reads on: the
        server's work on one chunk overlaps the verifying workers' output being gathered into the next."""
        outcomes: list[IntakeOutcome] = []
        now = _now()
        with self._write(), ThreadPoolExecutor(1, thread_name_prefix="og-settle-intake") as writer:
            # Leaving the block waits for the chunk being written, so the transaction ends (commits, or rolls back
            # if reading the input raised) only once its connection is idle.
            writing: Future[list[IntakeOutcome]] | None = None
            rows: list[StagedRow] = []
            for run in runs:
                rows += run
                if len(rows) >= _INSERT_CHUNK:
                    if writing is not None:
                        outcomes += writing.result()
                    writing, rows = writer.submit(self._insert_rows, rows, now), []
            if writing is not None:
                outcomes += writing.result()
            if rows:
                outcomes += self._insert_rows(rows, now)
        return outcomes

    def _insert_rows(self, rows: Sequence[StagedRow], now: float) -> list[IntakeOutcome]:
        """Queue ``rows`` (staged form, in order) inside the caller's transaction; one outcome per row, in order.

        The rows are copied (``COPY``) into a session-local TEMP table, each drawing its item id there (so ids
        increase with row order), then one statement queues them (``_INSERT_STAGE``). A key already queued (by
        anyone: this transaction's earlier chunks too, or a transaction that commits meanwhile, waited for), or
        earlier in these rows, is skipped and reported as a duplicate of the item holding it."""
        conn = self._pg.conn
        conn.execute(_STAGE_TABLE)
        conn.execute("TRUNCATE intake_stage")
        with conn.cursor() as cursor, cursor.copy(f"COPY intake_stage ({_STAGE_COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                # PostgreSQL text cannot hold NUL; only a rejected record's raw text can carry one.
                copy.write_row(row if row[3] is not None else (*row[:4], row[4].replace("\0", "\ufffd"), *row[5:]))
        inserted = conn.execute(_INSERT_STAGE, (now, now)).fetchall()
        keyed = {bytes(key): int(item_id) for item_id, key, _written in inserted if key is not None}
        if inserted and int(inserted[0][2]) != len(inserted):
            raise InvariantViolation(f"intake: {len(inserted)} items inserted, {inserted[0][2]} payloads written")
        if len(inserted) == len(rows):  # every row went in, in order
            return [IntakeOutcome(item_id=item_id, duplicate=False) for item_id in sorted(r[0] for r in inserted)]
        held: dict[bytes, int] = {}
        missing = list({row[3] for row in rows if row[3] is not None} - keyed.keys())
        if missing:
            found = conn.execute("SELECT item_id, key FROM item_keys WHERE key = ANY(%s)", (missing,)).fetchall()
            held = {bytes(key): int(item_id) for item_id, key in found}
        keyless = iter(sorted(int(item_id) for item_id, key, _written in inserted if key is None))
        outcomes: list[IntakeOutcome] = []
        for row in rows:
            key = row[3]
            if key is None:
                if (item_id := next(keyless, None)) is None:
                    raise InvariantViolation("intake: a rejected record was not inserted")
                outcomes.append(IntakeOutcome(item_id=item_id, duplicate=False))
            elif (item_id := keyed.pop(key, None)) is not None:  # the first row with this key was inserted
                outcomes.append(IntakeOutcome(item_id=item_id, duplicate=False))
                held[key] = item_id  # a later row with it is a duplicate
            elif key in held:
                outcomes.append(IntakeOutcome(item_id=held[key], duplicate=True))
            else:
                raise InvariantViolation("intake: a record's key is in no queued item")
        return outcomes

    def add_rejected(self, kind: ItemKind, source: str, raw: str, reason: str) -> int:
        now = _now()
        with self._write() as db:
            row = db.execute(
                "INSERT INTO items (kind, lane, key, state, reason, source, received_at, updated_at)"
                " VALUES (?, NULL, NULL, 'rejected', ?, ?, ?, ?) RETURNING id",
                (kind.value, reason, source, now, now),
            ).fetchone()
            # PostgreSQL text cannot hold NUL characters; a rejected record is kept for operators to read.
            db.execute(
                "INSERT INTO payloads (item_id, payload) VALUES (?, ?)", (row[0], raw[:4096].replace("\0", "\ufffd"))
            )
            return int(row[0])

    def create_batch(
        self, lane: Lane, item_ids: Sequence[int], *, root: bytes | None, dump_path: str | None, dump: str | None
    ) -> Batch:
        if not item_ids:
            raise InvariantViolation("a batch needs at least one item")
        with self._write() as db:
            batch, fence = self._leased_batch(db, lane, sorted(set(item_ids)), BatchContent(root, dump_path, dump))
        self._fences[batch.id] = fence  # once committed
        return batch

    def cut_batch(
        self,
        lane: Lane,
        limit: int,
        build: Callable[[Sequence[str]], BatchContent],
        *,
        ttl: float,
        settler: str | None = None,
    ) -> Batch | None:
        """``claim_items`` and ``create_batch`` in one transaction: the items are locked (``FOR UPDATE SKIP
        LOCKED``: another instance skips them) while the batch is built, then batched, each item row written once.
        A crash meanwhile rolls it all back and releases them."""
        route, extra = self._route(lane, settler)
        ids: list[int] = []
        payloads: list[str] = []
        with self._write() as db:
            # Locked and read in one pass, streamed from a server-side cursor (memory stays flat).
            with self._pg.conn.cursor(name="og_settle_cut") as cursor:
                cursor.itersize = 4 * _READ_CHUNK
                cursor.execute(
                    "SELECT items.id, payloads.payload FROM items JOIN payloads ON payloads.item_id = items.id"
                    " WHERE items.state = 'received' AND items.lane = %s"
                    f" AND (claimed_until IS NULL OR claimed_until < %s OR claimed_by = %s){route.replace('?', '%s')}"
                    " ORDER BY items.id LIMIT %s FOR UPDATE OF items SKIP LOCKED",
                    (lane.value, _now(), self.worker, *extra, limit),
                )
                for row in cursor:
                    ids.append(int(row[0]))
                    payloads.append(str(row[1]))
            if not ids:
                return None
            batch, fence = self._leased_batch(db, lane, ids, build(payloads))
        self._fences[batch.id] = fence  # once committed
        return batch

    def _leased_batch(
        self, db: sqlite3.Connection, lane: Lane, wanted: list[int], content: BatchContent
    ) -> tuple[Batch, int]:
        """A new batch of these received items, leased to this instance (nobody else signs it while the lease is
        renewed), and its fencing token; the caller holds the transaction."""
        now = _now()
        row = self._insert_batch(db, lane, len(wanted), content, now)
        # The WHERE clause is re-checked after any concurrent writer commits, so an item another process batched
        # meanwhile is not counted here and the whole batch is refused. Items another instance holds a live claim
        # on are not this instance's to batch. The ids as a joined set, not ``id = ANY(array)``: that one is a
        # linear search of the array per row (19 s for a 100,000-item batch).
        # ``wanted`` is sorted and distinct: when it is a whole run of ids (a bulk intake's usually are), the range
        # names the same rows and is read straight off the primary key (about 0.2 s less for 100,000 items).
        named: list[Any] = [wanted[0], wanted[-1]]
        chosen = "id BETWEEN ? AND ?"
        if wanted[-1] - wanted[0] + 1 != len(wanted):
            chosen, named = f"id IN {self._ID_SET}", [wanted]
        changed = db.execute(
            "UPDATE items SET state = 'batched', batch_id = ?, updated_at = ?, claimed_by = ?"
            f" WHERE {chosen} AND state = 'received' AND lane = ?"
            " AND (claimed_by IS NULL OR claimed_by = ? OR claimed_until < ?)",
            [row["id"], now, self.worker, *named, lane.value, self.worker, now],
        ).rowcount
        if changed != len(wanted):
            raise InvariantViolation(
                f"batch {row['id']}: some of items {wanted[:20]} are not received {lane} items free for {self.worker}"
            )
        leased = db.execute(
            "UPDATE batches SET worker = ?, lease_until = ?, fence = nextval('lease_fence') WHERE id = ? RETURNING *",
            (self.worker, now + self.lease_ttl, row["id"]),
        ).fetchone()
        return batch_of(leased), int(leased["fence"])

    _ID_SET = "(SELECT unnest(?::bigint[]))"

    @staticmethod
    def _ids_param(ids: Sequence[int]) -> Any:
        return list(ids)

    def _move_items(
        self, db: sqlite3.Connection, ids: Sequence[int], new: ItemState, *, reason: str | None, now: float
    ) -> None:
        # Lock the rows (in id order, so two writers cannot deadlock) before the SQLite store's check and update.
        db.execute(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM items WHERE id IN {self._ID_SET} ORDER BY id FOR UPDATE) AS locked",
            (sorted(set(ids)),),
        )
        super()._move_items(db, ids, new, reason=reason, now=now)

    def _lock_batch_items(self, db: sqlite3.Connection, batch_id: int, *states: ItemState) -> None:
        # In id order, as above; counted on the server, so that no row travels.
        db.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM items WHERE batch_id = ? AND state = ANY(?) ORDER BY id FOR UPDATE)"
            " AS locked",
            (batch_id, [s.value for s in states]),
        )

    def _hold_batch(self, db: sqlite3.Connection, batch_id: int) -> None:
        """Lock the batch's row and refuse (``LeaseLost``) a change by an instance that no longer holds it: its
        fencing token is not the batch's any more, or, holding none, another instance's lease is live."""
        row = db.execute(
            "SELECT worker, fence, lease_until FROM batches WHERE id = ? FOR UPDATE", (batch_id,)
        ).fetchone()
        if row is None:
            return  # the SQLite store's check names the missing batch
        held = self._fences.get(batch_id)
        if held is not None:
            if row["worker"] == self.worker and int(row["fence"]) == held:
                return
            self._fences.pop(batch_id, None)
            raise LeaseLost(f"batch {batch_id}: taken over by {row['worker']} (fence {row['fence']}, this had {held})")
        if row["worker"] not in (None, self.worker) and row["lease_until"] is not None and row["lease_until"] >= _now():
            raise LeaseLost(f"batch {batch_id}: {row['worker']} holds it")

    # -- leases (several instances on one queue) -----------------------------------------------------------------

    def _route(self, lane: Lane, settler: str | None) -> tuple[str, list[str]]:
        """With ``settler`` (the instance's signing account), an upto payment is taken only by the instance whose
        account it names as its facilitator: the contract lets no other account settle it."""
        if settler is None or lane is not Lane.PAYMENT:
            return "", []
        facilitator = f"(SELECT payload FROM payloads WHERE item_id = items.id)::jsonb #>> '{_UPTO_FACILITATOR}'"
        return f" AND COALESCE(lower({facilitator}), ?) = ?", [settler.lower()] * 2

    def _read_items(self, ids: list[int]) -> list[Item]:
        """Items by id, in chunks: a 100,000-item read never holds all its rows twice (result set and items)."""
        items: list[Item] = []
        for start in range(0, len(ids), _READ_CHUNK):
            chunk = ids[start : start + _READ_CHUNK]
            rows = self._db.execute(
                f"SELECT {STORED_COLUMNS} FROM {STORED_ITEMS} WHERE i.id = ANY(?) ORDER BY i.id", (chunk,)
            )
            items.extend(item_of(row) for row in rows)
        return items

    def claim_items(self, lane: Lane, limit: int, *, ttl: float, settler: str | None = None) -> list[Item]:
        """Claim up to ``limit`` received items of ``lane`` for this instance for ``ttl`` seconds, oldest first.
        Rows another instance is claiming right now are skipped, not waited for (``FOR UPDATE SKIP LOCKED``);
        rows under a live claim (anyone's, this instance's too) are left alone, so calling it again returns new
        work only (``cut_batch`` claims and batches in one step). With ``settler``, an upto payment is claimed only
        by the instance it names (``_route``)."""
        now = _now()
        route, extra = self._route(lane, settler)
        with self._write() as db:
            claimed = db.execute(
                "UPDATE items SET claimed_by = ?, claimed_until = ? WHERE id IN ("
                " SELECT id FROM items WHERE state = 'received' AND lane = ?"
                f" AND (claimed_until IS NULL OR claimed_until < ?){route} ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED)"
                " RETURNING id",
                (self.worker, now + ttl, lane.value, now, *extra, limit),
            ).fetchall()
        return self._read_items(sorted(int(row[0]) for row in claimed))

    def claimed_by(self, item_id: int) -> str | None:
        """The instance that claimed or batched the item, if any."""
        row = self._db.execute("SELECT claimed_by FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise InvalidInput(f"item: no item with id {item_id}")
        return None if row[0] is None else str(row[0])

    def claim_batches(
        self, states: Sequence[BatchState], limit: int, *, ttl: float, reclaim: bool = False
    ) -> list[BatchLease]:
        """Lease up to ``limit`` batches in ``states`` that nobody holds (or whose lease ran out), oldest first, for
        ``ttl`` seconds; each lease gets a new fencing token. With ``reclaim``, take instead the batches under this
        instance's own id, even with a live lease: a restarted instance takes back what it held before (one
        process per instance id: the id names the signer, and a signer is leased to one process). A lease this
        instance holds is kept with ``renew_lease`` / ``renew_leases``."""
        now = _now()
        with self._write() as db:
            rows = db.execute(
                "UPDATE batches SET worker = ?, lease_until = ?, fence = nextval('lease_fence') WHERE id IN ("
                " SELECT id FROM batches WHERE state = ANY(?)"
                " AND CASE WHEN ? THEN worker = ? ELSE lease_until IS NULL OR lease_until < ? END"
                " ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED) RETURNING *",
                (self.worker, now + ttl, [s.value for s in states], reclaim, self.worker, now, limit),
            ).fetchall()
            leases = [BatchLease(batch_of(r), self.worker, int(r["fence"]), float(r["lease_until"])) for r in rows]
            self._fences.update({lease.batch.id: lease.fence for lease in leases})
        return sorted(leases, key=lambda lease: lease.batch.id)

    def renew_lease(self, lease: BatchLease, *, ttl: float) -> BatchLease | None:
        """Extend a lease this instance holds; None when it was lost (its fencing token is no longer the batch's,
        because another instance took the batch over after the lease ran out)."""
        now = _now()
        with self._write() as db:
            row = db.execute(
                "UPDATE batches SET lease_until = ? WHERE id = ? AND worker = ? AND fence = ? RETURNING *",
                (now + ttl, lease.batch.id, lease.worker, lease.fence),
            ).fetchone()
            if row is None:
                self._fences.pop(lease.batch.id, None)
                return None
            self._fences[lease.batch.id] = lease.fence
        return BatchLease(batch_of(row), lease.worker, lease.fence, now + ttl)

    def renew_leases(self, *, ttl: float) -> list[int]:
        """Extend every lease this instance holds on an unfinished batch, in one statement; returns the ids of the
        batches it lost to another instance (and forgets them, and the finished ones). Safe to call from another
        thread (a heartbeat): the store's lock covers the held fencing tokens too."""
        now = _now()
        with self._write() as db:
            held = sorted(self._fences.items())
            if not held:
                return []
            renewed = db.execute(
                "UPDATE batches AS b SET lease_until = ? FROM unnest(?::bigint[], ?::bigint[]) AS h(id, fence)"
                " WHERE b.id = h.id AND b.fence = h.fence AND b.worker = ? AND b.state = ANY(?) RETURNING b.id",
                (now + ttl, [i for i, _ in held], [f for _, f in held], self.worker, _OPEN_BATCHES),
            ).fetchall()
            rest = [i for i, _ in held if i not in {int(r[0]) for r in renewed}]
            lost = []
            if rest:
                for row in db.execute("SELECT id, worker, fence FROM batches WHERE id = ANY(?)", (rest,)).fetchall():
                    if row["worker"] != self.worker or int(row["fence"]) != self._fences[int(row["id"])]:
                        lost.append(int(row["id"]))
                    del self._fences[int(row["id"])]
        return sorted(lost)

    def held_batches(self, *states: BatchState) -> list[Batch]:
        """The batches in ``states`` this instance holds a lease on (by fencing token), oldest first."""
        with self._lock:
            held = sorted(self._fences.items())
            if not held:
                return []
            rows = self._db.execute(
                "SELECT b.* FROM batches AS b JOIN unnest(?::bigint[], ?::bigint[]) AS h(id, fence)"
                " ON b.id = h.id AND b.fence = h.fence WHERE b.worker = ? AND b.state = ANY(?) ORDER BY b.id",
                ([i for i, _ in held], [f for _, f in held], self.worker, [s.value for s in states]),
            ).fetchall()
        return [batch_of(row) for row in rows]
