"""The facilitator's store on PostgreSQL: settlements, API keys, limits, usage and receipts shared by instances.

:class:`PostgresSettlementStore` runs the SQLite store's statements (written once, in SQL both accept) through
the relayer's small connection adapter (``?`` placeholders). What differs lives here: the connection, the
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
from importlib import resources
from typing import Any, Final, cast

from og_settle._errors import InvalidInput, InvariantViolation
from og_settle.facilitator._store import SqliteSettlementStore
from og_settle.relayer._store_postgres import _MIGRATION_NAME, Migration, _Connection, redact_url

__all__ = ["PostgresSettlementStore", "facilitator_migrations"]

# pg_advisory_xact_lock(namespace, hashtext(name)): the namespace keeps these locks apart from other users'.
_LOCK_NAMESPACE: Final = int.from_bytes(b"ogfa", "big") >> 1
_MIGRATION_LOCK: Final = int.from_bytes(b"ogsetfac", "big") >> 1


def facilitator_migrations() -> list[Migration]:
    """The facilitator store's PostgreSQL migrations, in order."""
    folder = resources.files("og_settle.facilitator").joinpath("_migrations", "postgres")
    found = sorted(
        (Migration(int(m[1]), m[2], entry.read_text(encoding="utf-8")) for entry in folder.iterdir()
         if (m := _MIGRATION_NAME.match(entry.name)) is not None),
        key=lambda m: m.version,
    )  # fmt: skip
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise InvariantViolation(f"facilitator migrations are not numbered 1..n: {[m.version for m in found]}")
    return found


class PostgresSettlementStore(SqliteSettlementStore):
    """The facilitator's store on ``postgresql://user[:password]@host[:port]/dbname``. One connection per store,
    serialised across the process's threads; any number of processes may share the database."""

    def __init__(self, url: str, *, connect_timeout: float = 10.0) -> None:
        try:
            import psycopg
        except ImportError:  # pragma: no cover - depends on the installation
            raise InvalidInput("--store: PostgreSQL needs psycopg; install og-settle[postgres]") from None
        self.url = url
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(connect_timeout)))
        except psycopg.Error as err:
            detail = " ".join(str(err).split())
            raise InvalidInput(f"--store: cannot connect to PostgreSQL at {redact_url(url)}: {detail}") from None
        self._lock = threading.RLock()  # type: ignore[assignment]
        self._pg = _Connection(conn, cast(threading.RLock, self._lock))
        self._db = cast(sqlite3.Connection, self._pg)
        self.migrate()

    def migrate(self) -> list[int]:
        """Apply the migrations this database lacks; returns their numbers."""
        known = facilitator_migrations()
        applied: list[int] = []
        for migration in known:
            with self._write() as db:
                db.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
                db.execute(
                    "CREATE TABLE IF NOT EXISTS facilitator_schema_migrations (version INTEGER PRIMARY KEY,"
                    " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                current = int(
                    db.execute("SELECT COALESCE(MAX(version), 0) FROM facilitator_schema_migrations").fetchone()[0]
                )
                if current > known[-1].version:
                    raise InvalidInput(
                        f"--store: {redact_url(self.url)} has facilitator schema version {current}; this og-settle"
                        f" knows versions up to {known[-1].version}"
                    )
                if migration.version <= current:
                    continue
                self._pg.conn.execute(migration.sql)
                db.execute(
                    "INSERT INTO facilitator_schema_migrations (version, name) VALUES (?, ?)",
                    (migration.version, migration.name),
                )
                applied.append(migration.version)
        return applied

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
