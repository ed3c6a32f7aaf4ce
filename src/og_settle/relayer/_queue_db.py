"""Which queue store a ``--db`` names: a ``postgresql://`` URL opens PostgreSQL, anything else an SQLite file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from og_settle._errors import InvalidInput
from og_settle._lease import SignerLease
from og_settle.relayer._store import QueueStore, SqliteStore

__all__ = ["is_postgres_url", "lock_sqlite_queue", "open_store", "remove_sqlite_files", "store_for_write"]

_SQLITE_HEADER: Final = b"SQLite format 3\x00"
_POSTGRES_SCHEMES: Final = ("postgresql://", "postgres://")
_RUN_LOCK_SUFFIX: Final = "-relayer.lock"


def is_postgres_url(db: str | os.PathLike[str]) -> bool:
    """True when ``db`` is a PostgreSQL connection URL rather than a file."""
    return isinstance(db, str) and db.startswith(_POSTGRES_SCHEMES)


def _check_sqlite_path(path: Path, *, create: bool) -> None:
    if path.is_dir():
        raise InvalidInput(f"db: {path} is a directory; give the queue's SQLite file (or a postgresql:// URL)")
    if not path.exists():
        if not create:
            raise InvalidInput(f"db: {path} does not exist")
        return
    with path.open("rb") as handle:
        header = handle.read(len(_SQLITE_HEADER))
    if header and header != _SQLITE_HEADER:
        raise InvalidInput(f"db: {path} is not an SQLite database (it does not start with the SQLite header)")


def open_store(
    db: str | os.PathLike[str], *, create: bool = True, worker: str | None = None, lease_ttl: float = 30.0
) -> QueueStore:
    """The queue at ``db``: a ``postgresql://…`` URL or an SQLite file (created if missing unless ``create`` is
    False). A directory, a file that is not SQLite, or an unreachable server is an ``InvalidInput``. ``worker``
    is the relayer instance using it; ``lease_ttl`` how long the batches it builds stay its own unrenewed."""
    if is_postgres_url(db):
        from og_settle.relayer._store_postgres import PostgresStore

        return PostgresStore(str(db), worker=worker, lease_ttl=lease_ttl)
    path = Path(db)
    _check_sqlite_path(path, create=create)
    return SqliteStore(path, worker=worker)


def lock_sqlite_queue(db: str | os.PathLike[str]) -> SignerLease:
    """Take the SQLite queue's relayer lease: one ``relayer run`` per SQLite file (several instances need a
    PostgreSQL queue). Refused with a one-line ``InvalidInput`` naming the process that holds it. Released when
    the process exits, however it exits."""
    return SignerLease.at_path(
        Path(str(db) + _RUN_LOCK_SUFFIX),
        role="relayer",
        refusal=lambda holder: (
            f"db: {db} is already being settled by {holder}; an SQLite queue takes one relayer"
            " (run several instances on a postgresql:// queue)"
        ),
    )


def remove_sqlite_files(db: str | os.PathLike[str]) -> None:
    """Delete an SQLite queue file with its WAL and shared-memory files (for a queue this run created)."""
    for suffix in ("", "-wal", "-shm", "-journal", _RUN_LOCK_SUFFIX):
        Path(str(db) + suffix).unlink(missing_ok=True)


@contextmanager
def store_for_write(db: str | os.PathLike[str]) -> Iterator[QueueStore]:
    """``open_store`` for a command that may create the queue: if the command fails before the new SQLite file
    holds any item, the file is removed again, so a failed first run leaves nothing behind. Closes the store."""
    created = not is_postgres_url(db) and not Path(db).exists()
    store: QueueStore | None = None
    try:
        store = open_store(db)
        yield store
    except BaseException:
        if created and (store is None or not store.status().items_by_state):
            if store is not None:
                store.close()
                store = None
            remove_sqlite_files(db)
        raise
    finally:
        if store is not None:
            store.close()
