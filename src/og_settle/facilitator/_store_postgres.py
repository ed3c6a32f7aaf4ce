"""The facilitator's store on PostgreSQL: settlements, API keys, limits, usage and receipts shared by instances.

:class:`PostgresSettlementStore` runs the SQLite store's statements (written once, in SQL both accept) through
the adapter of :mod:`og_settle._postgres` (``?`` placeholders). What differs lives here: the connection, the
transaction, a transaction-scoped advisory lock per name (an API key, a payment, a transaction) where SQLite's
``BEGIN IMMEDIATE`` locks the whole file, and the clock, which is the database server's so that instances on
several hosts count rate limits and quota windows on one clock.

Several ``og-settle facilitator serve`` instances (each with its own settling account) may share one database:
a key's rate limits and spend quotas are checked and updated under that key's lock, so they hold across them.
The schema lives in ``_migrations/postgres/NNNN_name.sql``, applied in order under an advisory lock and recorded
in ``facilitator_schema_migrations`` (so the relayer's queue may share the database).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, cast

from og_settle._postgres import (
    Migration,
    SchemaHistory,
    SqliteStyleConnection,
    apply_migrations,
    connect,
    load_migrations,
)
from og_settle.facilitator._store import SqliteSettlementStore

__all__ = ["PostgresSettlementStore", "facilitator_migrations"]

# pg_advisory_xact_lock(namespace, hashtext(name)): the namespace keeps these locks apart from other users'.
_LOCK_NAMESPACE: Final = int.from_bytes(b"ogfa", "big") >> 1
_HISTORY: Final = SchemaHistory(
    package="og_settle.facilitator",
    table="facilitator_schema_migrations",
    lock=int.from_bytes(b"ogsetfac", "big") >> 1,
    label="facilitator",
    option="--store",
)


def facilitator_migrations() -> list[Migration]:
    """The facilitator store's PostgreSQL migrations, in order."""
    return load_migrations(_HISTORY.package)


class PostgresSettlementStore(SqliteSettlementStore):
    """The facilitator's store on ``postgresql://user[:password]@host[:port]/dbname``. One connection per store,
    serialised across the process's threads; any number of processes may share the database."""

    def __init__(self, url: str, *, connect_timeout: float = 10.0) -> None:
        self.url = url
        conn = connect(url, option="--store", connect_timeout=connect_timeout)
        self._lock = threading.RLock()  # type: ignore[assignment]
        self._pg = SqliteStyleConnection(conn, cast(threading.RLock, self._lock))
        self._db = cast(sqlite3.Connection, self._pg)
        self.migrate()

    def migrate(self) -> list[int]:
        """Apply the migrations this database lacks; returns their numbers."""
        return apply_migrations(self._pg, self._write, self.url, _HISTORY)

    @contextmanager
    def _write(self) -> Iterator[Any]:
        with self._lock, self._pg.conn.transaction():
            yield self._db

    @contextmanager
    def _read(self) -> Iterator[Any]:
        with self._lock:
            yield self._db

    def _lock_name(self, db: Any, name: str) -> None:
        db.execute("SELECT pg_advisory_xact_lock(?, hashtext(?))", (_LOCK_NAMESPACE, name))

    def _clock(self, db: Any) -> float:
        return float(db.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()[0])
