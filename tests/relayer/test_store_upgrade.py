"""A queue written by the previous schema (SQLite version 1; PostgreSQL migrations 1-2), with items in every state
of the old layout (waiting, batched, submitted with a signed transaction, confirmed), opens under the current one
with the same states and settles everything it holds."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from og_settle import InvalidInput
from og_settle.relayer import BatchState, ItemKind, ItemState, Lane, NewItem, PostgresStore, QueueStore, SqliteStore
from og_settle.relayer._store_postgres import migrations
from og_settle.relayer._store_schema import SCHEMA_VERSION
from tests.support.postgres import PostgresServer

# The SQLite queue schema version 1, as og-settle wrote it before items followed their batch.
_SQLITE_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE items (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, lane TEXT, key BLOB UNIQUE, payload TEXT NOT NULL,
    state TEXT NOT NULL, reason TEXT, batch_id INTEGER REFERENCES batches(id), source TEXT NOT NULL,
    received_at REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE INDEX items_by_state ON items (state, lane, id);
CREATE INDEX items_by_batch ON items (batch_id);
CREATE TABLE batches (
    id INTEGER PRIMARY KEY, lane TEXT NOT NULL, state TEXT NOT NULL, size INTEGER NOT NULL, root BLOB,
    dump_path TEXT, dump TEXT, reason TEXT, attempts INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX batches_by_state ON batches (state, id);
CREATE TABLE transactions (
    id INTEGER PRIMARY KEY, batch_id INTEGER NOT NULL REFERENCES batches(id), tx_hash BLOB NOT NULL UNIQUE,
    nonce INTEGER NOT NULL, sender TEXT NOT NULL, raw BLOB NOT NULL, state TEXT NOT NULL, block_number INTEGER,
    gas_used INTEGER, note TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE INDEX transactions_by_batch ON transactions (batch_id, id);
INSERT INTO meta (key, value) VALUES ('schema_version', '1');
"""

# Rows as the old layout stored them: batch 1 confirmed, 2 submitted (its transaction signed), 3 built; items
# 1-2 in batch 1, 3-4 in batch 2, 5-6 in batch 3, 7-9 waiting.
_BATCHES = [(1, "confirmed", 2, 1), (2, "submitted", 2, 1), (3, "built", 2, 0)]
_ITEMS: list[tuple[int, str, int | None]] = [
    (1, "confirmed", 1),
    (2, "confirmed", 1),
    (3, "submitted", 2),
    (4, "submitted", 2),
    (5, "batched", 3),
    (6, "batched", 3),
    (7, "received", None),
    (8, "received", None),
    (9, "received", None),
]
_OLD_STATES = {"confirmed": 2, "submitted": 2, "batched": 2, "received": 3}


def _fill(run: Callable[[str, tuple[Any, ...]], object], mark: str) -> None:
    """Write the old rows with ``run(sql, params)`` and ``mark`` as the placeholder."""
    for batch_id, state, size, attempts in _BATCHES:
        run(
            "INSERT INTO batches (id, lane, state, size, root, attempts, created_at, updated_at)"
            f" VALUES ({mark}, 'batch', {mark}, {mark}, {mark}, {mark}, 1, 1)",
            (batch_id, state, size, bytes([batch_id]) * 32, attempts),
        )
    for item_id, state, batch_id in _ITEMS:
        run(
            "INSERT INTO items (id, kind, lane, key, payload, state, batch_id, source, received_at, updated_at)"
            f" VALUES ({mark}, 'inference', 'batch', {mark}, '{{}}', {mark}, {mark}, 'old', {mark}, 1)",
            (item_id, item_id.to_bytes(32, "big"), state, batch_id, float(item_id)),
        )
    for tx_batch, tx_state in ((1, "mined"), (2, "sent")):
        run(
            "INSERT INTO transactions (batch_id, tx_hash, nonce, sender, raw, state, created_at, updated_at)"
            f" VALUES ({mark}, {mark}, {mark}, '0xabc', {mark}, {mark}, 1, 1)",
            (tx_batch, bytes([tx_batch]) * 32, tx_batch, b"raw", tx_state),
        )


def _settles_everything(store: QueueStore) -> None:
    """The old states read back unchanged, then every batch and waiting item settles."""
    assert store.status().items_by_state == _OLD_STATES
    assert [i.state for i in store.batch_items(2)] == [ItemState.SUBMITTED] * 2
    assert store.current_tx(2) is not None and store.open_count(2) == 2
    store.confirm_batch(2, tx_hash=bytes([2]) * 32, block_number=5, gas_used=60_000)
    store.record_signed_tx(3, tx_hash=b"\3" * 32, nonce=3, sender="0xabc", raw=b"raw")
    assert [i.state for i in store.batch_items(3)] == [ItemState.SUBMITTED] * 2
    store.confirm_batch(3, tx_hash=b"\3" * 32, block_number=6, gas_used=60_000)
    waiting = store.items(state=ItemState.RECEIVED, lane=Lane.BATCH)
    batch = store.create_batch(Lane.BATCH, [i.id for i in waiting], root=b"\4" * 32, dump_path=None, dump="{}")
    store.record_signed_tx(batch.id, tx_hash=b"\4" * 32, nonce=4, sender="0xabc", raw=b"raw")
    store.confirm_batch(batch.id, tx_hash=b"\4" * 32, block_number=7, gas_used=60_000)
    assert store.status().items_by_state == {"confirmed": 9}
    assert {b.state for b in store.batches()} == {BatchState.CONFIRMED}
    assert store.status().in_flight == 0


def test_a_version_1_sqlite_queue_is_upgraded_and_settles(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(_SQLITE_V1)
    _fill(db.execute, "?")
    db.commit()
    db.close()
    store = SqliteStore(path)
    try:
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
        _settles_everything(store)
    finally:
        store.close()
    with sqlite3.connect(path) as check:  # the old index is gone, the partial one serves waiting items
        names = {row[0] for row in check.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "items_by_state" not in names and "items_received" in names
    with sqlite3.connect(path) as check:  # payloads live beside the items, each item has its own
        assert check.execute("SELECT COUNT(*) FROM payloads").fetchone()[0] == len(_ITEMS)
        assert "payload" not in {row[1] for row in check.execute("PRAGMA table_info(items)")}


def test_a_postgres_queue_of_migration_2_is_upgraded_and_settles(postgres: PostgresServer) -> None:
    url = postgres.create_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        for migration in migrations()[:2]:
            conn.execute(migration.sql)
            conn.execute("INSERT INTO schema_migrations VALUES (%s, %s)", (migration.version, migration.name))
        _fill(conn.execute, "%s")
        for table in ("items", "batches"):  # the rows above were given their ids
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 100)")
    store = PostgresStore(url)
    try:
        assert store.schema_version() == migrations()[-1].version
        _settles_everything(store)
        # the old items' keys moved to item_keys (migration 0006): queued again, each is a duplicate of its item
        again = [NewItem(ItemKind.INFERENCE, Lane.BATCH, n.to_bytes(32, "big"), {}, "again") for n in (1, 9, 500)]
        outcomes = store.add_items(again)
        assert [(o.item_id, o.duplicate) for o in outcomes[:2]] == [(1, True), (9, True)]
        assert not outcomes[2].duplicate and outcomes[2].item_id > 100
    finally:
        store.close()
        postgres.drop_database(url)


def test_a_newer_sqlite_queue_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    SqliteStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    newer, known = SCHEMA_VERSION + 1, SCHEMA_VERSION
    with pytest.raises(InvalidInput, match=rf"schema version {newer}; this og-settle reads up to version {known}$"):
        SqliteStore(path)
