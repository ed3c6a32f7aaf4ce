"""The SQLite queue's schema, its version and its upgrades (PostgreSQL's: ``_migrations/postgres``).

An item of a batch takes its state from the batch: ``create_batch`` writes each item row once, with the state
``batched`` and its batch id, and every later step of the batch (signed, confirmed, failed, signed again) changes
the batch row only. The view ``item_view`` gives every item its state as the relayer reports it: a row stored as
``batched`` is ``batched`` while its batch is built, and then ``submitted``, ``confirmed`` or ``failed`` (with the
batch's reason) as its batch is. A row that leaves its batch on its own (an item failed inside a confirmed batch,
one found settled before its batch was signed, a batch dissolved) is written with its own state.

A record's payload (its normalised JSON, or a rejected record's text) lives in ``payloads``, written once with its
item in the same transaction and never changed, so the item rows that change stay small.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

from og_settle._errors import InvalidInput

__all__ = ["SCHEMA_VERSION", "ensure_schema"]

SCHEMA_VERSION: Final = 3

# Both stores define this view (PostgreSQL in its migrations), with ``ITEM_COLUMNS`` in ``Item``'s order.
_ITEM_VIEW: Final = """
CREATE VIEW item_view AS
SELECT i.id, i.kind, i.lane, i.key, p.payload,
    CASE WHEN i.state <> 'batched' THEN i.state WHEN b.state = 'built' THEN 'batched' ELSE b.state END AS state,
    CASE WHEN i.state = 'batched' AND b.state IN ('confirmed', 'failed') THEN b.reason ELSE i.reason END AS reason,
    i.batch_id, i.source, i.received_at,
    CASE WHEN i.state = 'batched' THEN b.updated_at ELSE i.updated_at END AS updated_at
FROM items AS i LEFT JOIN batches AS b ON b.id = i.batch_id LEFT JOIN payloads AS p ON p.item_id = i.id
"""

_TABLES: Final = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    lane TEXT,
    key BLOB UNIQUE,
    state TEXT NOT NULL,
    reason TEXT,
    batch_id INTEGER REFERENCES batches(id),
    source TEXT NOT NULL,
    received_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX items_by_batch ON items (batch_id);
CREATE INDEX items_received ON items (lane, id) WHERE state = 'received';
CREATE TABLE payloads (
    item_id INTEGER PRIMARY KEY,
    payload TEXT NOT NULL
);
CREATE TABLE batches (
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
CREATE INDEX batches_by_state ON batches (state, id);
CREATE TABLE transactions (
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
CREATE INDEX transactions_by_batch ON transactions (batch_id, id);
"""

# The upgrade from each earlier version to the next. Version 2: items follow their batch (a stored ``submitted``
# item is a ``batched`` one of a submitted batch), and only waiting items are indexed by lane (rows leaving that
# state are not re-indexed). Version 3: payloads move out of the item rows.
_UPGRADES: Final = {
    1: (
        "UPDATE items SET state = 'batched' WHERE state = 'submitted'",
        "DROP INDEX items_by_state",
        "CREATE INDEX items_received ON items (lane, id) WHERE state = 'received'",
    ),
    2: (
        "CREATE TABLE payloads (item_id INTEGER PRIMARY KEY, payload TEXT NOT NULL)",
        "INSERT INTO payloads (item_id, payload) SELECT id, payload FROM items",
        "DROP VIEW IF EXISTS item_view",
        "ALTER TABLE items DROP COLUMN payload",
        _ITEM_VIEW,
    ),
}


def ensure_schema(db: sqlite3.Connection, path: str | Path) -> None:
    """Create the schema in an empty file, or upgrade a file of an earlier version to this one; the caller holds
    the write transaction. A file of a newer version is refused."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() is None:
        for statement in [*_TABLES.split(";"), _ITEM_VIEW]:
            if statement.strip():
                db.execute(statement)
        version = SCHEMA_VERSION
        db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(version),))
        return
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    version = 1 if row is None else int(row[0])
    if version > SCHEMA_VERSION:
        raise InvalidInput(
            f"db: {path} has queue schema version {version}; this og-settle reads up to version {SCHEMA_VERSION}"
        )
    if version == SCHEMA_VERSION:
        return
    for step in range(version, SCHEMA_VERSION):
        for statement in _UPGRADES[step]:
            db.execute(statement)
    db.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE SET value = ?",
        (str(SCHEMA_VERSION), str(SCHEMA_VERSION)),
    )
