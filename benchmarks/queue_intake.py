"""``queue-intake``: how fast each queue store takes verified records (``QueueStore.add_items``), on SQLite (a
file in a temporary directory) and on PostgreSQL (a throwaway local server, as the tests start it). Only the store
is timed: records are prepared up front, so verification is not part of the figure."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support.postgres

from og_settle.relayer import ItemKind, Lane, NewItem, QueueStore, open_store

Row = tuple[str, str, str]
RECORDS = 50_000
CHUNK = 1_000


def _records(count: int) -> list[NewItem]:
    payload = {"tee_id": "0x" + "ab" * 32, "input_hash": "0x" + "cd" * 32, "output_hash": "0x" + "ef" * 32}
    return [
        NewItem(ItemKind.INFERENCE, Lane.BATCH, n.to_bytes(32, "big"), {**payload, "n": n}, f"bench:{n}")
        for n in range(count)
    ]


def _rate(store: QueueStore, records: list[NewItem]) -> float:
    started = time.perf_counter()
    for start in range(0, len(records), CHUNK):
        store.add_items(records[start : start + CHUNK])
    elapsed = time.perf_counter() - started
    assert store.status().items_by_state == {"received": len(records)}
    store.close()
    return len(records) / elapsed


def queue_intake(options: argparse.Namespace) -> list[Row]:
    records = _records(RECORDS)
    note = f"{RECORDS:,} records in add_items chunks of {CHUNK:,}"
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        rate = _rate(open_store(Path(tmp) / "q.db"), records)
        rows.append(("SQLite (WAL, synchronous=FULL)", f"{rate:,.0f}/s", note))
    from tests.support.postgres import PostgresServer, PostgresUnavailable

    try:
        server = PostgresServer.start(fsync=True)
    except PostgresUnavailable as err:
        return [*rows, ("PostgreSQL", "skipped", str(err)[:100])]
    try:
        rate = _rate(open_store(server.create_database("bench")), records)
        rows.append(("PostgreSQL on 127.0.0.1 (fsync on)", f"{rate:,.0f}/s", note))
    finally:
        server.stop()
    return rows
