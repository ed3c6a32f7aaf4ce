"""What the relayer's queue and the facilitator's store share on PostgreSQL: the connection, an adapter that runs
the SQLite stores' statements unchanged, and numbered schema migrations.

Each store writes its statements once, in SQL both databases accept, with ``?`` placeholders and rows read by
index or by name as ``sqlite3.Row`` allows; :class:`SqliteStyleConnection` gives a psycopg connection that face.
Migrations are SQL files ``NNNN_name.sql`` in a package's ``_migrations/postgres`` folder, applied in order, each
in its own transaction under an advisory lock (so instances starting together do not race), and recorded in a
table of the store's own. A database newer than this og-settle is refused.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

from og_settle._errors import InvalidInput, InvariantViolation

__all__ = [
    "Migration",
    "SchemaHistory",
    "SqliteStyleConnection",
    "apply_migrations",
    "connect",
    "load_migrations",
    "redact_url",
]

_MIGRATION_FILE: Final = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


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


@dataclass(frozen=True, slots=True)
class SchemaHistory:
    """Where a store records its migrations.

    Attributes:
        package: the package whose ``_migrations/postgres`` folder holds them.
        table: the table that records which ran.
        lock: the ``pg_advisory_xact_lock`` key taken while migrating.
        label: what the schema is called in messages ("queue", "facilitator").
        option: the option that named the database, for messages ("db", "--store").
    """

    package: str
    table: str
    lock: int
    label: str
    option: str


def load_migrations(package: str) -> list[Migration]:
    """The migrations shipped in ``package``, in order; they must be numbered 1..n."""
    folder = resources.files(package).joinpath("_migrations", "postgres")
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match is not None:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise InvariantViolation(f"{package}: migrations are not numbered 1..n: {[m.version for m in found]}")
    return found


def redact_url(url: str) -> str:
    """The connection URL with any password replaced by ``***``, for messages."""
    return re.sub(r"^(postgres(?:ql)?://[^:/@]*:)[^@]*@", r"\1***@", url)


class _Row:
    """A result row readable by column index and by column name, as ``sqlite3.Row`` is."""

    __slots__ = ("_names", "_values")

    def __init__(self, names: dict[str, int], values: Sequence[Any]) -> None:
        self._names = names
        self._values = values

    def __getitem__(self, key: int | str) -> Any:
        return self._values[key if isinstance(key, int) else self._names[key]]


def _rows(cursor: Any) -> Callable[[Sequence[Any]], _Row]:
    names = {column.name: index for index, column in enumerate(cursor.description or ())}
    return lambda values: _Row(names, values)


class SqliteStyleConnection:
    """The part of ``sqlite3.Connection`` the SQLite stores' statements use, over a psycopg connection: ``?``
    placeholders become ``%s``; each statement holds the store's lock, so threads sharing the store never run a
    statement inside another thread's transaction. ``conn`` is the psycopg connection itself."""

    def __init__(self, conn: Any, lock: threading.RLock) -> None:
        self.conn = conn
        self._lock = lock

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._lock:
            return self.conn.execute(sql.replace("?", "%s"), params)

    def close(self) -> None:
        self.conn.close()


def connect(url: str, *, option: str, connect_timeout: float) -> Any:
    """A psycopg connection in autocommit mode whose rows read like ``sqlite3.Row``; one-line InvalidInput naming
    ``option`` when psycopg is missing or the server cannot be reached."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - depends on the installation
        raise InvalidInput(
            f"{option}: PostgreSQL needs psycopg; install og-settle[postgres] (pip install 'psycopg[binary]')"
        ) from None
    try:
        return psycopg.connect(url, autocommit=True, row_factory=_rows, connect_timeout=max(1, int(connect_timeout)))
    except psycopg.Error as err:
        detail = " ".join(str(err).split())
        raise InvalidInput(f"{option}: cannot connect to PostgreSQL at {redact_url(url)}: {detail}") from None


def apply_migrations(
    connection: SqliteStyleConnection,
    write: Callable[[], AbstractContextManager[Any]],
    url: str,
    history: SchemaHistory,
) -> list[int]:
    """Apply the migrations the database lacks, each in its own ``write()`` transaction; returns their numbers."""
    known = load_migrations(history.package)
    applied: list[int] = []
    for migration in known:
        with write() as db:
            db.execute("SELECT pg_advisory_xact_lock(?)", (history.lock,))
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {history.table} (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            current = int(db.execute(f"SELECT COALESCE(MAX(version), 0) FROM {history.table}").fetchone()[0])
            if current > known[-1].version:
                raise InvalidInput(
                    f"{history.option}: {redact_url(url)} has {history.label} schema version {current}; this"
                    f" og-settle knows versions up to {known[-1].version}"
                )
            if migration.version <= current:
                continue
            connection.conn.execute(migration.sql)  # several statements, no parameters
            db.execute(
                f"INSERT INTO {history.table} (version, name) VALUES (?, ?)", (migration.version, migration.name)
            )
            applied.append(migration.version)
    return applied
