"""The facilitator's durable settlement store: what makes ``POST /settle`` idempotent across restarts.

One row per payment, keyed by the payment's Permit2 EIP-712 digest (it commits to the chain, Permit2, the
spender, payer's token, permitted amount, nonce, deadline and witness, so two payloads with one digest are one
payment). The intent is written, with the signed transaction's hash and raw bytes, *before* the transaction is
broadcast; after a crash the row tells which transaction to look for (or to send again, byte for byte).

States: ``submitted`` (broadcast, or about to be; receipt not seen), ``settled`` (receipt seen, payment moved),
``failed`` (its transaction reverted or was dropped: the payment may be tried again).

:class:`SettlementStore` is the interface; :class:`SqliteSettlementStore` implements it with the standard
library, ``_store_postgres.PostgresSettlementStore`` on PostgreSQL (several instances, one database). Both also
hold the operations tables (:mod:`og_settle.facilitator._store_ops`): API keys with their limits, the limits'
state, usage records and receipts. :func:`open_settlement_store` picks one from a path or a ``postgresql://`` URL.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from og_settle._errors import InvalidInput
from og_settle.facilitator._store_ops import OPERATIONS_SCHEMA_SQLITE, OperationsTables

__all__ = ["SettlementRecord", "SettlementState", "SettlementStore", "SqliteSettlementStore", "open_settlement_store"]


class SettlementState:
    """The states a stored settlement moves through."""

    SUBMITTED: Final = "submitted"
    SETTLED: Final = "settled"
    FAILED: Final = "failed"


@dataclass(frozen=True, slots=True)
class SettlementRecord:
    """One payment's settlement, as stored.

    Attributes:
        key: the payment's Permit2 digest (``0x`` + 64 hex digits).
        payer: the Permit2 owner.
        pay_to: the recipient (``witness.to``).
        token: the ERC-20 transferred.
        network: CAIP-2 network.
        scheme: ``"exact"`` or ``"upto"``.
        amount: the amount charged (atomic units).
        state: a :class:`SettlementState` value.
        transaction: the transaction hash (``0x`` + 64 hex digits).
        raw_tx: the signed transaction, to send again if the node lost it.
        error_reason: the x402 reason code of a failed settlement.
        updated_at: unix time of the last change.
    """

    key: str
    payer: str
    pay_to: str
    token: str
    network: str
    scheme: str
    amount: int
    state: str
    transaction: str
    raw_tx: bytes = b""
    error_reason: str | None = None
    updated_at: float = 0.0


class SettlementStore(Protocol):
    """Durable settlement records; every method is atomic and safe to call from several threads."""

    def get(self, key: str) -> SettlementRecord | None:
        """The record of payment ``key``, if any."""
        ...

    def by_transaction(self, transaction: str) -> list[SettlementRecord]:
        """The records settled (or being settled) by ``transaction``."""
        ...

    def put_submitted(self, records: Sequence[SettlementRecord]) -> None:
        """Store the intents of one transaction. Raises InvalidInput if a key is already submitted or settled."""
        ...

    def mark(self, key: str, state: str, error_reason: str | None = None) -> None:
        """Move ``key`` to ``state`` (``settled`` or ``failed``)."""
        ...

    def replace_transaction(self, old: str, new: str, raw_tx: bytes) -> None:
        """The submitted records of transaction ``old`` now name ``new`` (a fee-bumped replacement with the same
        nonce, written before it is broadcast; or the earlier version that was mined after all). ``old`` is
        remembered among the records' earlier transactions."""
        ...

    def earlier_transactions(self, transaction: str) -> list[str]:
        """The transactions the records of ``transaction`` replaced (same nonce, lower fees), newest first: any
        of them may be the one mined."""
        ...

    def close(self) -> None:
        """Release the store."""
        ...


_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS settlements (
    key TEXT PRIMARY KEY,
    payer TEXT NOT NULL,
    pay_to TEXT NOT NULL,
    token TEXT NOT NULL,
    network TEXT NOT NULL,
    scheme TEXT NOT NULL,
    amount TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('submitted', 'settled', 'failed')),
    transaction_hash TEXT NOT NULL,
    raw_tx BLOB NOT NULL,
    error_reason TEXT,
    updated_at REAL NOT NULL,
    earlier_txs TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS settlements_by_tx ON settlements (transaction_hash);
"""
_COLUMNS: Final = (
    "key, payer, pay_to, token, network, scheme, amount, state, transaction_hash, raw_tx, error_reason, updated_at"
)

_UPDATE_ALL: Final = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS.split(", ")[1:])


def _record(row: tuple[object, ...]) -> SettlementRecord:
    key, payer, pay_to, token, network, scheme, amount, state, tx, raw, reason, updated = row
    return SettlementRecord(
        key=str(key),
        payer=str(payer),
        pay_to=str(pay_to),
        token=str(token),
        network=str(network),
        scheme=str(scheme),
        amount=int(str(amount)),
        state=str(state),
        transaction=str(tx),
        raw_tx=bytes(raw) if isinstance(raw, bytes | bytearray | memoryview) else b"",
        error_reason=None if reason is None else str(reason),
        updated_at=float(str(updated)),
    )


class SqliteSettlementStore(OperationsTables):
    """A :class:`SettlementStore` in one SQLite file (WAL mode, synchronous=FULL: a written intent survives a
    power cut). ``":memory:"`` gives a throwaway store for tests. Several processes may share the file on one
    host (writers take the database lock with ``BEGIN IMMEDIATE``)."""

    def __init__(self, path: str | Path) -> None:
        target = str(path)
        if target != ":memory:":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA + OPERATIONS_SCHEMA_SQLITE)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(settlements)")}
            if "earlier_txs" not in columns:  # a store from before fee bumps (version 2)
                self._db.execute("ALTER TABLE settlements ADD COLUMN earlier_txs TEXT NOT NULL DEFAULT ''")
            self._db.execute("PRAGMA user_version = 3")
        except sqlite3.Error as err:
            raise InvalidInput(f"--store: cannot open the settlement store {target}: {err}") from None
        self._lock = threading.Lock()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db

    def _lock_name(self, db: sqlite3.Connection, name: str) -> None:
        """Nothing to take: ``BEGIN IMMEDIATE`` holds the database's write lock for the whole transaction."""

    def _clock(self, db: sqlite3.Connection) -> float:
        return time.time()

    def get(self, key: str) -> SettlementRecord | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM settlements WHERE key = ?", (key,)).fetchone()
        return None if row is None else _record(row)

    def by_transaction(self, transaction: str) -> list[SettlementRecord]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM settlements WHERE transaction_hash = ? ORDER BY key", (transaction.lower(),)
            ).fetchall()
        return [_record(row) for row in rows]

    def put_submitted(self, records: Sequence[SettlementRecord]) -> None:
        with self._write() as db:
            now = self._clock(db)
            for r in records:
                self._lock_name(db, "payment:" + r.key)
                existing = db.execute("SELECT state FROM settlements WHERE key = ?", (r.key,)).fetchone()
                if existing is not None and existing[0] != SettlementState.FAILED:
                    raise InvalidInput(f"settlement {r.key}: already {existing[0]}")
                db.execute(
                    f"INSERT INTO settlements ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
                    f" ON CONFLICT (key) DO UPDATE SET {_UPDATE_ALL}, earlier_txs = ''",
                    (
                        r.key,
                        r.payer,
                        r.pay_to,
                        r.token,
                        r.network,
                        r.scheme,
                        str(r.amount),
                        SettlementState.SUBMITTED,
                        r.transaction.lower(),
                        r.raw_tx,
                        None,
                        now,
                    ),
                )

    def mark(self, key: str, state: str, error_reason: str | None = None) -> None:
        if state not in (SettlementState.SETTLED, SettlementState.FAILED):
            raise InvalidInput(f"state: expected 'settled' or 'failed', got {state!r}")
        with self._lock:
            self._db.execute(
                "UPDATE settlements SET state = ?, error_reason = ?, updated_at = ? WHERE key = ?",
                (state, error_reason, time.time(), key),
            )

    def replace_transaction(self, old: str, new: str, raw_tx: bytes) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE settlements SET transaction_hash = ?, raw_tx = ?, updated_at = ?,"
                " earlier_txs = TRIM(earlier_txs || ' ' || ?) WHERE transaction_hash = ? AND state = ?",
                (new.lower(), raw_tx, self._clock(db), old.lower(), old.lower(), SettlementState.SUBMITTED),
            )

    def earlier_transactions(self, transaction: str) -> list[str]:
        with self._read() as db:
            row = db.execute(
                "SELECT earlier_txs FROM settlements WHERE transaction_hash = ? LIMIT 1", (transaction.lower(),)
            ).fetchone()
        return [] if row is None or not row[0] else list(reversed(str(row[0]).split()))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_settlement_store(target: str | Path) -> SqliteSettlementStore:
    """The facilitator's store at ``target``: a ``postgresql://`` URL (PostgreSQL, shared by several instances) or
    an SQLite file (created if missing)."""
    from og_settle.relayer._queue_db import is_postgres_url

    if is_postgres_url(str(target)):
        from og_settle.facilitator._store_postgres import PostgresSettlementStore

        return PostgresSettlementStore(str(target))
    return SqliteSettlementStore(target)
