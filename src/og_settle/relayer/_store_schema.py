"""The SQLite queue's schema, its version and its upgrades (PostgreSQL's: ``_migrations/postgres``).

An item of a batch takes its state from the batch: ``create_batch`` writes each item row once, with the state
``batched`` and its batch id, and every later step of the batch (signed, confirmed, failed, signed again) changes
the batch row only. The view ``item_view`` gives every item its state as the relayer reports it: a row stored as
``batched`` is ``batched`` while its batch is built, and then ``submitted``, ``confirmed`` or ``failed`` (with the
batch's reason) as its batch is. A row that leaves its batch on its own (an item failed inside a confirmed batch,
one found settled before its batch was signed, a batch dissolved) is written with its own state.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

from og_settle._errors import InvalidInput

__all__ = ["SCHEMA_VERSION", "ensure_schema"]

SCHEMA_VERSION: Final = 2

# Both stores define this view (PostgreSQL in migration 0003), with the items table's columns in its order.
ITEM_VIEW: Final = """
CREATE VIEW item_view AS
SELECT i.id, i.kind, i.lane, i.key, i.payload,
    CASE WHEN i.state <> 'batched' THEN i.state WHEN b.state = 'built' THEN 'batched' ELSE b.state END AS state,
    CASE WHEN i.state = 'batched' AND b.state IN ('confirmed', 'failed') THEN b.reason ELSE i.reason END AS reason,
    i.batch_id, i.source, i.received_at,
    CASE WHEN i.state = 'batched' THEN b.updated_at ELSE i.updated_at END AS updated_at
FROM items AS i LEFT JOIN batches AS b ON b.id = i.batch_id
"""

_TABLES: Final = """
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

# Version 2: items follow their batch (a stored ``submitted`` item is a ``batched`` one of a submitted batch), and
# only waiting items are indexed by lane (the index the batching policy reads; rows leaving it are not re-indexed).
_VERSION_2: Final = (
    "UPDATE items SET state = 'batched' WHERE state = 'submitted'",
    "DROP INDEX IF EXISTS items_by_state",
    "CREATE INDEX items_received ON items (lane, id) WHERE state = 'received'",
    ITEM_VIEW,
)


def _statements(script: str) -> list[str]:
    return [statement for statement in script.split(";") if statement.strip()]


def ensure_schema(db: sqlite3.Connection, path: str | Path) -> None:
    """Create the schema in an empty file, or upgrade a version 1 file to this one; the caller holds the write
    transaction. A file of a newer version is refused."""
    fresh = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'items'").fetchone() is None
    for statement in _statements(_TABLES):
        db.execute(statement)
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    version = int(row[0]) if row is not None else 0 if fresh else 1  # version 1 files always had the row
    if version > SCHEMA_VERSION:
        raise InvalidInput(
            f"db: {path} has queue schema version {version}; this og-settle reads up to version {SCHEMA_VERSION}"
        )
    if version < SCHEMA_VERSION:
        for statement in _VERSION_2:
            db.execute(statement)
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE SET value = ?",
            (str(SCHEMA_VERSION), str(SCHEMA_VERSION)),
        )
