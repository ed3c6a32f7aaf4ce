"""The queue's state machine, written once for both stores in SQL both accept (the PostgreSQL store runs it through
its connection adapter and adds row locks and lease checks through the hooks here).

Every state change is one transaction that moves the batch, its items and its transaction record together. The
items of a batch follow it (``_store_schema``): signing, confirming, failing or re-opening a batch writes the
batch row, not its items; only items that leave the batch's path are written one by one.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Final

from og_settle._errors import InvariantViolation
from og_settle.relayer._states import BatchState, ItemState, Lane, check_batch_transition, check_item_transition
from og_settle.relayer._store_api import Batch, BatchContent, Item, TxRecord
from og_settle.relayer._store_rows import ITEM_COLUMNS, batch_of, item_of, item_state, tx_of

__all__ = ["QueueTransitions"]


def _now() -> float:
    return time.time()


_OPEN_ITEM_STATES: Final = (ItemState.BATCHED, ItemState.SUBMITTED)
_OPEN_BATCH_STATES: Final = (BatchState.BUILT.value, BatchState.SUBMITTED.value)


class QueueTransitions:
    """Batches and their items moving through their states (a mixin of the stores)."""

    _db: sqlite3.Connection
    # A set of item ids as one statement parameter: a JSON array here, an array on PostgreSQL.
    _ID_SET: str = "(SELECT value FROM json_each(?))"

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def claim_items(self, lane: Lane, limit: int, *, ttl: float, settler: str | None = None) -> list[Item]:
        raise NotImplementedError

    @staticmethod
    def _ids_param(ids: Sequence[int]) -> Any:
        return json.dumps([int(i) for i in ids])

    # -- hooks (PostgreSQL locks rows and checks leases) -------------------------------------------------------

    def _hold_batch(self, db: sqlite3.Connection, batch_id: int) -> None:
        """Lock the batch's row and check that this instance may change it (PostgreSQL; SQLite's write
        transaction holds the whole database already)."""

    def _lock_batch_items(self, db: sqlite3.Connection, batch_id: int, *states: ItemState) -> None:
        """Lock the batch's items stored in ``states`` before they are written (PostgreSQL)."""

    # -- reads -------------------------------------------------------------------------------------------------

    def open_items(self, batch_id: int) -> list[Item]:
        """The batch's items that are not yet confirmed or failed."""
        rows = self._db.execute(
            f"SELECT {ITEM_COLUMNS} FROM item_view WHERE batch_id = ? AND state IN (?, ?) ORDER BY id",
            (batch_id, *(s.value for s in _OPEN_ITEM_STATES)),
        )
        return [item_of(row) for row in rows]

    def open_count(self, batch_id: int) -> int:
        """How many of the batch's items are not yet confirmed or failed (a Merkle batch needs no more)."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM items WHERE batch_id = ? AND state = 'batched'"
            " AND (SELECT state FROM batches WHERE id = ?) IN (?, ?)",
            (batch_id, batch_id, *_OPEN_BATCH_STATES),
        ).fetchone()
        return int(row[0])

    # -- building blocks (the caller holds the write transaction) -------------------------------------------------

    def _move_items(
        self, db: sqlite3.Connection, ids: Sequence[int], new: ItemState, *, reason: str | None, now: float
    ) -> None:
        """Move items to ``new`` on their own rows, checking every transition (once per distinct current state,
        from a grouped count)."""
        wanted = sorted(set(ids))
        if not wanted:
            return
        param = self._ids_param(wanted)
        counts = db.execute(
            f"SELECT state, COUNT(*) FROM item_view WHERE id IN {self._ID_SET} GROUP BY state", (param,)
        )
        found = {item_state(str(row[0])): int(row[1]) for row in counts}
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

    def _move_batch(self, db: sqlite3.Connection, batch_id: int, new: BatchState, **fields: Any) -> Batch:
        """Move the batch (and so the items that follow it) to ``new``, setting ``fields`` too."""
        self._hold_batch(db, batch_id)
        row = db.execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
        if row is None:
            raise InvariantViolation(f"batch {batch_id} does not exist")
        batch = batch_of(row)
        check_batch_transition(batch.state, new)
        sets = ", ".join(f"{name} = ?" for name in ("state", "updated_at", *fields))
        db.execute(f"UPDATE batches SET {sets} WHERE id = ?", [new.value, _now(), *fields.values(), batch_id])
        return batch

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
            f"SELECT id FROM item_view WHERE id IN {self._ID_SET} AND batch_id = ? AND state IN ({marks})",
            (self._ids_param(wanted), batch_id, *(s.value for s in states)),
        )
        stray = set(wanted) - {int(row[0]) for row in rows}
        if stray:
            raise InvariantViolation(f"batch {batch_id}: {what} {sorted(stray)} not open items of it")

    def _insert_batch(self, db: sqlite3.Connection, lane: Lane, size: int, content: BatchContent, now: float) -> Any:
        """A new built batch's row (the caller then moves its items into it)."""
        return db.execute(
            "INSERT INTO batches (lane, state, size, root, dump_path, dump, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
            (lane.value, BatchState.BUILT.value, size, content.root, content.dump_path, content.dump, now, now),
        ).fetchone()

    def _insert_tx(
        self, db: sqlite3.Connection, batch_id: int, *, tx_hash: bytes, nonce: int, sender: str, raw: bytes, now: float
    ) -> TxRecord:
        """Store a signed transaction of the batch as ``sent``."""
        row = db.execute(
            "INSERT INTO transactions (batch_id, tx_hash, nonce, sender, raw, state, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, 'sent', ?, ?) RETURNING *",
            (batch_id, tx_hash, nonce, sender, raw, now, now),
        ).fetchone()
        return tx_of(row)

    # -- transitions -------------------------------------------------------------------------------------------

    def create_batch(
        self, lane: Lane, item_ids: Sequence[int], *, root: bytes | None, dump_path: str | None, dump: str | None
    ) -> Batch:
        if not item_ids:
            raise InvariantViolation("a batch needs at least one item")
        now = _now()
        with self._write() as db:
            row = self._insert_batch(db, lane, len(item_ids), BatchContent(root, dump_path, dump), now)
            self._batch_items(db, int(row["id"]), lane, sorted(set(item_ids)), now)
        return batch_of(row)

    def _batch_items(self, db: sqlite3.Connection, batch_id: int, lane: Lane, wanted: list[int], now: float) -> None:
        """Put received items of ``lane`` into the batch: each item row written once, as ``batched``."""
        changed = db.execute(
            f"UPDATE items SET state = 'batched', batch_id = ?, updated_at = ?"
            f" WHERE id IN {self._ID_SET} AND state = 'received' AND lane = ?",
            (batch_id, now, self._ids_param(wanted), lane.value),
        ).rowcount
        if changed != len(wanted):
            raise InvariantViolation(
                f"batch {batch_id}: {len(wanted) - changed} of its {len(wanted)} items are not received {lane} items"
            )

    def cut_batch(
        self,
        lane: Lane,
        limit: int,
        build: Callable[[Sequence[str]], BatchContent],
        *,
        ttl: float,
        settler: str | None = None,
    ) -> Batch | None:
        """Take up to ``limit`` of the oldest received items of ``lane``, build the batch's content from their
        payloads with ``build`` and create the batch, in one write transaction; None when no item waits. One
        relayer works on an SQLite queue, so nothing is skipped (``ttl`` and ``settler`` matter on PostgreSQL)."""
        del ttl, settler
        waiting = f"SELECT id FROM items WHERE state = 'received' AND lane = ? ORDER BY id LIMIT {int(limit)}"
        with self._write() as db:
            cursor = db.cursor()
            cursor.row_factory = None  # plain tuples: 100,000 of them are read here
            rows = cursor.execute(
                "SELECT i.id, p.payload FROM items AS i JOIN payloads AS p ON p.item_id = i.id"
                f" WHERE i.state = 'received' AND i.lane = ? ORDER BY i.id LIMIT {int(limit)}",
                (lane.value,),
            )
            ids, payloads = [], []
            for item_id, payload in rows:
                ids.append(item_id)
                payloads.append(payload)
            if not ids:
                return None
            content = build(payloads)
            del payloads
            now = _now()
            row = self._insert_batch(db, lane, len(ids), content, now)
            # The same items: nobody else writes while this transaction holds the queue.
            changed = db.execute(
                f"UPDATE items SET state = 'batched', batch_id = ?, updated_at = ? WHERE id IN ({waiting})",
                (row["id"], now, lane.value),
            ).rowcount
            if changed != len(ids):
                raise InvariantViolation(f"batch {row['id']}: {changed} of its {len(ids)} items were batched")
        return batch_of(row)

    def record_signed_tx(self, batch_id: int, *, tx_hash: bytes, nonce: int, sender: str, raw: bytes) -> TxRecord:
        now = _now()
        with self._write() as db:
            batch = self._move_batch(db, batch_id, BatchState.SUBMITTED)
            db.execute("UPDATE batches SET attempts = ? WHERE id = ?", (batch.attempts + 1, batch_id))
            waiting = "SELECT 1 FROM items WHERE batch_id = ? AND state = 'batched' LIMIT 1"
            if db.execute(waiting, (batch_id,)).fetchone() is None:
                raise InvariantViolation(f"batch {batch_id} has no open items to submit")
            return self._insert_tx(db, batch_id, tx_hash=tx_hash, nonce=nonce, sender=sender, raw=raw, now=now)

    def record_replacement_tx(self, batch_id: int, *, tx_hash: bytes, nonce: int, sender: str, raw: bytes) -> TxRecord:
        """A fee bump: another transaction for a submitted batch, with the same nonce as its current one and
        higher fees, written before it is broadcast. The batch stays ``submitted``; whichever of its
        transactions is mined confirms it, and ``confirm_batch`` marks the others replaced."""
        now = _now()
        with self._write() as db:
            self._hold_batch(db, batch_id)
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
            # The failed items leave the batch's path before it is confirmed; the rest are confirmed with it.
            self._hold_batch(db, batch_id)
            self._check_open_items(db, batch_id, failures, "failures reported for")
            for item_id, reason in failures.items():
                self._move_items(db, [item_id], ItemState.FAILED, reason=reason, now=now)
            self._move_batch(db, batch_id, BatchState.CONFIRMED, reason=note)
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
            db.execute(
                "UPDATE items SET state = 'received', reason = NULL, updated_at = ?, batch_id = NULL"
                " WHERE batch_id = ? AND state = 'batched'",
                (now, batch_id),
            )

    def resolve_items(self, batch_id: int, *, confirmed: Mapping[int, str], failed: Mapping[int, str]) -> None:
        """Some open items of a built batch turned out settled (or unsettleable) on chain before its transaction
        was signed: move them to confirmed / failed with a note; the rest stay in the batch."""
        now = _now()
        with self._write() as db:
            self._hold_batch(db, batch_id)
            self._check_open_items(db, batch_id, [*confirmed, *failed], "items", states=(ItemState.BATCHED,))
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
