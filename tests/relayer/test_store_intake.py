"""Bulk intake (``QueueStore.add_all``) on both stores: one outcome per record in order, duplicates pointed at the
first copy, rejected records kept, and all or nothing: an input that fails part-way queues none of its records."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from og_settle.relayer import (
    IntakeConfig,
    IntakeOutcome,
    ItemKind,
    ItemState,
    Lane,
    NewItem,
    QueueStore,
    RejectedRecord,
    SqliteStore,
    StaticTeeDirectory,
    open_store,
    submit_records,
)
from tests.relayer.support import OFFLINE_DEPLOYMENT, TEE_KEY, inference_record


def _item(n: int) -> NewItem:
    return NewItem(ItemKind.INFERENCE, Lane.BATCH, n.to_bytes(32, "big"), {"n": n, "text": "é\u2028"}, f"in:{n}")


def _rejected(n: int) -> RejectedRecord:
    return RejectedRecord(ItemKind.INFERENCE, f"in:{n}", f"{{bad {n}\0" + "x" * 5000, "malformed: not JSON")


def test_outcomes_in_order_with_duplicates_and_rejections(store: QueueStore) -> None:
    (earlier,) = store.add_items([_item(7)])
    outcomes = store.add_all([_item(1), _rejected(2), _item(7), _item(3), _item(1), _rejected(5), _item(4)])
    assert [o.duplicate for o in outcomes] == [False, False, True, False, True, False, False]
    assert outcomes[2].item_id == earlier.item_id and outcomes[4].item_id == outcomes[0].item_id
    new = [o.item_id for o in outcomes if not o.duplicate]
    assert new == sorted(new) and min(new) > earlier.item_id  # ids increase in input order
    rows = {item.id: item for item in store.items()}
    assert [rows[i].source for i in new] == ["in:1", "in:2", "in:3", "in:5", "in:4"]
    assert rows[new[0]].record() == {"n": 1, "text": "é\u2028"} and rows[new[0]].state is ItemState.RECEIVED
    rejected = rows[new[1]]
    assert rejected.state is ItemState.REJECTED and rejected.reason == "malformed: not JSON" and rejected.key is None
    assert rejected.payload.startswith("{bad 2") and len(rejected.payload) == 4096  # cut, and NUL kept or replaced
    # every new item carries its own record (payloads are stored beside the items), the duplicate the first copy's
    assert [rows[new[i]].record()["n"] for i in (0, 2, 4)] == [1, 3, 4]
    assert rows[new[3]].payload.startswith("{bad 5") and rows[earlier.item_id].record()["n"] == 7
    assert store.add_all([]) == []


def test_all_new_records_take_the_new_ids_in_order(store: QueueStore) -> None:
    """No duplicates (the outcomes are the new ids without matching keys): each record's id holds that record."""
    store.add_items([_item(9)])
    outcomes = store.add_all([_item(3), _rejected(4), _item(1), _item(2), _rejected(5)])
    assert not any(o.duplicate for o in outcomes)
    rows = {item.id: item for item in store.items()}
    assert [rows[o.item_id].source for o in outcomes] == ["in:3", "in:4", "in:1", "in:2", "in:5"]
    keys = [None if n is None else n.to_bytes(32, "big") for n in (3, None, 1, 2, None)]
    assert [rows[o.item_id].key for o in outcomes] == keys


def test_an_input_that_fails_part_way_queues_nothing(store: QueueStore) -> None:
    def entries() -> Iterator[NewItem | RejectedRecord]:
        yield _item(1)
        yield _rejected(2)
        yield from (_item(n) for n in range(3, 5000))
        raise KeyboardInterrupt  # the operator's Ctrl-C, after thousands of records were staged

    with pytest.raises(KeyboardInterrupt):
        store.add_all(entries())
    assert store.status().items_by_state == {}
    # the staging table was emptied: the next intake sees only its own records
    outcomes = store.add_all([_item(1), _item(2)])
    assert [o.duplicate for o in outcomes] == [False, False]
    assert store.status().items_by_state == {"received": 2}


def test_duplicates_and_rejections_across_chunks(store: QueueStore) -> None:
    """An input longer than one statement's worth of rows (PostgreSQL writes it in chunks of 5,000 inside one
    transaction): a key repeated thousands of records later, or already queued, is a duplicate of its first copy,
    and rejected records keep their order and their own text."""
    (earlier,) = store.add_items([_item(90_000)])
    entries: list[NewItem | RejectedRecord] = [_item(n) for n in range(6_000)]
    entries += [_rejected(6_000), _item(5), _item(90_000), _item(5_999)]
    entries += [_item(n) for n in range(6_001, 11_000)] + [_rejected(11_000), _item(10_999), _item(0)]
    outcomes = store.add_all(entries)
    dupes = [index for index, outcome in enumerate(outcomes) if outcome.duplicate]
    assert dupes == [6_001, 6_002, 6_003, 11_004, 11_005]
    assert [outcomes[i].item_id for i in dupes] == [
        outcomes[5].item_id,
        earlier.item_id,
        outcomes[5_999].item_id,
        outcomes[11_002].item_id,
        outcomes[0].item_id,
    ]
    new = [o.item_id for o in outcomes if not o.duplicate]
    assert new == sorted(new) and len(set(new)) == len(new) == 11_001
    rows = {item.id: item for item in store.items()}
    assert rows[outcomes[6_000].item_id].payload.startswith("{bad 6000")
    assert rows[outcomes[11_003].item_id].payload.startswith("{bad 11000")
    assert all(rows[outcomes[i].item_id].record()["n"] == i for i in (0, 4_999, 5_000, 5_999))
    assert rows[outcomes[6_004].item_id].record()["n"] == 6_001


def test_records_are_unseen_until_the_input_ends(queue_db: str) -> None:
    """While an input is being read, another session on the queue sees none of its records (nothing to claim),
    even after thousands were written; they appear together once it ends. Another session queueing one of its
    keys meanwhile waits for it (PostgreSQL) or is refused as busy (SQLite), then finds it queued: one item per key."""
    writer, reader = open_store(queue_db), open_store(queue_db)
    seen: list[dict[str, int]] = []
    racing: list[IntakeOutcome] = []

    def entries() -> Iterator[NewItem]:
        yield from (_item(n) for n in range(12_000))
        seen.append(reader.status().items_by_state)
        seen.append({"claimed": len(reader.claim_items(Lane.BATCH, 10, ttl=30.0))})
        if isinstance(writer, SqliteStore):
            return  # its records are written only after the input ends
        racer.start()
        racer.join(0.5)
        seen.append({"racer waiting": racer.is_alive()})

    racer = threading.Thread(target=lambda: racing.extend(reader.add_items([_item(5)])))
    try:
        outcomes = writer.add_all(entries())
        if racer.ident is not None:
            racer.join(10)
        assert seen[:2] == [{}, {"claimed": 0}]
        assert reader.status().items_by_state == {"received": 12_000}
        if not isinstance(writer, SqliteStore):
            assert seen[2] == {"racer waiting": True}
            assert racing == [IntakeOutcome(item_id=outcomes[5].item_id, duplicate=True)]
    finally:
        writer.close()
        reader.close()


def test_submit_is_all_or_nothing_per_input(tmp_path: Path) -> None:
    """A read error half-way through a file leaves the queue as it was; the same file read whole is queued."""
    config = IntakeConfig(deployment=OFFLINE_DEPLOYMENT, tee_directory=StaticTeeDirectory([TEE_KEY.public]))
    lines = [json.dumps(inference_record(OFFLINE_DEPLOYMENT, n)) for n in range(6)]

    def broken() -> Iterator[str]:
        yield from lines[:4]
        raise OSError("read error")

    store = SqliteStore(tmp_path / "q.db")
    try:
        for workers in (1, 2):
            with pytest.raises(OSError, match="read error"):
                list(submit_records(store, broken(), config, workers=workers))
            assert store.status().items_by_state == {}
        reports = list(submit_records(store, lines, config, workers=2))
        assert [r.status for r in reports] == ["accepted"] * 6
    finally:
        store.close()
