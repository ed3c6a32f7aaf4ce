"""The durable queue: states move only along allowed transitions, atomically, and survive reopening.

The contract tests take ``store`` / ``queue_db`` and run once on SQLite and once on a real PostgreSQL server,
which shows both stores keep the same guarantees."""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from og_settle import InvalidInput, InvariantViolation
from og_settle.relayer import (
    BatchContent,
    BatchPolicy,
    BatchState,
    ItemKind,
    ItemState,
    Lane,
    NewItem,
    QueueStore,
    SqliteStore,
    Trigger,
    open_store,
)
from og_settle.relayer._states import ITEM_TRANSITIONS, check_item_transition


def _item(n: int, lane: Lane = Lane.BATCH) -> NewItem:
    kind = ItemKind.PAYMENT if lane is Lane.PAYMENT else ItemKind.INFERENCE
    return NewItem(kind=kind, lane=lane, key=n.to_bytes(32, "big"), payload={"n": n}, source=f"test:{n}")


def test_wal_and_full_sync(tmp_path: Path) -> None:
    """The queue file runs in WAL mode with synchronous=FULL (2)."""
    store = SqliteStore(tmp_path / "queue.db")
    db = sqlite3.connect(store.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_duplicate_intake_is_detected_not_queued(store: QueueStore) -> None:
    """A second record with the same idempotency key is reported as a duplicate of the first."""
    first = store.add_items([_item(1), _item(2)])
    again = store.add_items([_item(2), _item(3)])
    assert [o.duplicate for o in first] == [False, False]
    assert again[0].duplicate and again[0].item_id == first[1].item_id
    assert not again[1].duplicate
    assert store.status().items_by_state == {"received": 3}


def test_full_lifecycle_and_reopen(queue_db: str) -> None:
    """received -> batched -> submitted -> confirmed, with the signed transaction kept across a reopen."""
    store = open_store(queue_db)
    ids = [o.item_id for o in store.add_items([_item(n) for n in range(5)])]
    batch = store.create_batch(Lane.BATCH, ids[:3], root=b"\1" * 32, dump_path=None, dump="{}")
    assert {i.state for i in store.batch_items(batch.id)} == {ItemState.BATCHED}
    tx = store.record_signed_tx(batch.id, tx_hash=b"\2" * 32, nonce=7, sender="0xabc", raw=b"raw-bytes")
    store.close()

    reopened = open_store(queue_db)
    assert reopened.batch(batch.id).state is BatchState.SUBMITTED
    assert reopened.current_tx(batch.id) == tx
    assert reopened.status().in_flight == 5
    reopened.confirm_batch(batch.id, tx_hash=tx.tx_hash, block_number=12, gas_used=50_000)
    assert {i.state for i in reopened.batch_items(batch.id)} == {ItemState.CONFIRMED}
    status = reopened.status()
    assert status.items_by_state == {"confirmed": 3, "received": 2}
    assert status.last_transaction is not None and status.last_transaction.state == "mined"
    assert status.oldest_pending is not None and status.oldest_pending.id == ids[3]
    reopened.close()


def test_cut_batch_takes_the_oldest_waiting_items_whole_or_not_at_all(store: QueueStore) -> None:
    """A cut hands the builder the oldest waiting payloads of the lane in id order and batches exactly those; a
    builder that fails leaves the queue as it was; nothing waiting gives None. The cheap counts agree with
    ``status``."""
    ids = [o.item_id for o in store.add_items([_item(n) for n in range(5)] + [_item(9, Lane.PAYMENT)])]

    def fails(payloads: Sequence[str]) -> BatchContent:
        raise RuntimeError("no tree")

    with pytest.raises(RuntimeError, match="no tree"):
        store.cut_batch(Lane.BATCH, 3, fails, ttl=30)
    assert store.status().items_by_state == {"received": 6} and not store.batches()
    seen: list[int] = []

    def builds(payloads: Sequence[str]) -> BatchContent:
        seen.extend(json.loads(p)["n"] for p in payloads)
        return BatchContent(root=bytes([len(seen)]) * 32)

    first = store.cut_batch(Lane.BATCH, 3, builds, ttl=30)
    second = store.cut_batch(Lane.BATCH, 10, builds, ttl=30)
    assert first is not None and second is not None and seen == [0, 1, 2, 3, 4]
    assert (first.size, first.root, second.size) == (3, b"\3" * 32, 2)
    assert [i.id for i in store.batch_items(first.id)] == ids[:3]
    assert [i.id for i in store.batch_items(second.id)] == ids[3:5]
    assert store.cut_batch(Lane.BATCH, 10, builds, ttl=30) is None
    assert store.item_counts() == dict(store.status().items_by_state) == {"batched": 5, "received": 1}
    assert store.any_in_flight()
    store.settle_without_tx([ids[5]], "done")
    store.fail_batch(first.id, "gone")
    assert store.any_in_flight()  # the second batch's items
    store.dissolve_batch(second.id, "undone")
    assert store.item_counts() == {"failed": 3, "confirmed": 1, "received": 2} and store.any_in_flight()
    assert {i.reason for i in store.batch_items(first.id)} == {"gone"}
    third = store.cut_batch(Lane.BATCH, 10, builds, ttl=30)
    assert third is not None
    store.confirm_batch(third.id, tx_hash=None, block_number=None, gas_used=None, note="found on chain")
    assert not store.any_in_flight()
    assert store.status().in_flight == 0


def test_reopen_batch_after_replacement(store: QueueStore) -> None:
    """A replaced transaction sends its batch back to built and its items back to batched."""
    ids = [o.item_id for o in store.add_items([_item(n, Lane.PAYMENT) for n in range(3)])]
    batch = store.create_batch(Lane.PAYMENT, ids, root=None, dump_path=None, dump=None)
    store.record_signed_tx(batch.id, tx_hash=b"\3" * 32, nonce=1, sender="0xabc", raw=b"r")
    store.reopen_batch(batch.id, "replaced")
    assert store.batch(batch.id).state is BatchState.BUILT
    assert {i.state for i in store.batch_items(batch.id)} == {ItemState.BATCHED}
    assert store.current_tx(batch.id) is not None and store.current_tx(batch.id).state == "replaced"  # type: ignore[union-attr]
    store.resolve_items(batch.id, confirmed={ids[0]: "settled elsewhere"}, failed={ids[1]: "permit2_invalid_nonce"})
    tx = store.record_signed_tx(batch.id, tx_hash=b"\4" * 32, nonce=2, sender="0xabc", raw=b"r2")
    store.confirm_batch(batch.id, tx_hash=tx.tx_hash, block_number=3, gas_used=1, item_failures={})
    states = {i.id: (i.state, i.reason) for i in store.batch_items(batch.id)}
    assert states[ids[0]] == (ItemState.CONFIRMED, "settled elsewhere")
    assert states[ids[1]] == (ItemState.FAILED, "permit2_invalid_nonce")
    assert states[ids[2]][0] is ItemState.CONFIRMED
    assert store.batch(batch.id).attempts == 2


def test_a_fee_bump_is_a_second_transaction_of_the_submitted_batch(store: QueueStore) -> None:
    """A replacement (same sender and nonce) is recorded while the batch stays submitted and becomes its current
    transaction; confirming with one of them marks it mined and every other replaced. A replacement with another
    nonce or sender, or for a batch not submitted, is refused and changes nothing."""
    ids = [o.item_id for o in store.add_items([_item(n) for n in range(2)])]
    batch = store.create_batch(Lane.BATCH, ids, root=b"\1" * 32, dump_path=None, dump="{}")
    with pytest.raises(InvariantViolation):
        store.record_replacement_tx(batch.id, tx_hash=b"\5" * 32, nonce=4, sender="0xabc", raw=b"r0")
    store.record_signed_tx(batch.id, tx_hash=b"\6" * 32, nonce=4, sender="0xabc", raw=b"r1")
    bump = store.record_replacement_tx(batch.id, tx_hash=b"\7" * 32, nonce=4, sender="0xabc", raw=b"r2")
    for nonce, sender in ((5, "0xabc"), (4, "0xdef")):
        with pytest.raises(InvariantViolation):
            store.record_replacement_tx(batch.id, tx_hash=b"\x08" * 32, nonce=nonce, sender=sender, raw=b"r3")
    assert store.batch(batch.id).state is BatchState.SUBMITTED and store.batch(batch.id).attempts == 1
    assert store.current_tx(batch.id) == bump and bump.state == "sent"
    assert [tx.tx_hash for tx in store.batch_txs(batch.id)] == [b"\7" * 32, b"\6" * 32]
    store.confirm_batch(batch.id, tx_hash=b"\6" * 32, block_number=9, gas_used=1)
    assert {tx.tx_hash: tx.state for tx in store.batch_txs(batch.id)} == {b"\6" * 32: "mined", b"\7" * 32: "replaced"}


def test_failed_transition_changes_nothing(store: QueueStore) -> None:
    """A transition that breaks the state machine raises and leaves the queue as it was."""
    ids = [o.item_id for o in store.add_items([_item(n) for n in range(2)])]
    batch = store.create_batch(Lane.BATCH, ids, root=b"\1" * 32, dump_path=None, dump=None)
    store.fail_batch(batch.id, "InvalidBatchRoot")
    before = store.status()
    with pytest.raises(InvariantViolation):
        store.confirm_batch(batch.id, tx_hash=None, block_number=None, gas_used=None)
    assert store.status() == before
    with pytest.raises(InvariantViolation):  # items of another lane cannot join a batch
        store.create_batch(Lane.PAYMENT, ids, root=None, dump_path=None, dump=None)
    assert store.status() == before


def test_rejected_records_are_visible_with_reason(store: QueueStore) -> None:
    """A rejected record is stored with its reason and counted, never queued."""
    store.add_rejected(ItemKind.PAYMENT, "in.jsonl:3", "{...\0}", "permit2_deadline_expired: too late")
    status = store.status()
    assert status.items_by_state == {"rejected": 1}
    assert status.in_flight == 0
    assert status.failure_reasons == {"permit2_deadline_expired: too late": 1}


@settings(max_examples=30)
@given(st.lists(st.sampled_from(list(ItemState)), min_size=1, max_size=8))
def test_terminal_states_are_final(path: list[ItemState]) -> None:
    """Confirmed, failed and rejected are terminal: no transition leaves them."""
    for old, new in itertools.pairwise(path):
        if old in (ItemState.CONFIRMED, ItemState.FAILED, ItemState.REJECTED):
            with pytest.raises(InvariantViolation):
                check_item_transition(old, new)
        elif new in ITEM_TRANSITIONS[old]:
            check_item_transition(old, new)


def test_policy_triggers() -> None:
    """Size, idle and max-age triggers fire as configured; individual items never wait."""
    from og_settle.relayer import LaneBacklog

    policy = BatchPolicy.opengradient()
    assert (policy.max_items, policy.idle_seconds, policy.max_age_seconds) == (20, 300.0, 900.0)
    assert BatchPolicy.bulk().max_items == 100_000
    now = 10_000.0
    full = LaneBacklog(Lane.BATCH, 20, now - 1, now)
    assert policy.trigger(full, now) == Trigger.SIZE
    young = LaneBacklog(Lane.BATCH, 5, now - 10, now - 1)
    assert policy.trigger(young, now) is None
    assert policy.trigger(young, now, drain=True) == Trigger.DRAIN
    idle = LaneBacklog(Lane.BATCH, 5, now - 400, now - 300)
    assert policy.trigger(idle, now) == Trigger.IDLE
    old = LaneBacklog(Lane.BATCH, 5, now - 900, now - 1)
    assert policy.trigger(old, now) == Trigger.MAX_AGE
    assert policy.trigger(LaneBacklog(Lane.INDIVIDUAL, 1, now, now), now) == Trigger.SIZE
    assert policy.capacity(Lane.PAYMENT) == 50
    assert policy.capacity(Lane.INDIVIDUAL) == 20  # one settleIndividualBatch
    assert policy.capacity(Lane.METADATA) == 1
    assert BatchPolicy(individual_per_tx=256).capacity(Lane.INDIVIDUAL) == 256
    with pytest.raises(InvalidInput):
        BatchPolicy(individual_per_tx=257)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=60), st.integers(1, 7))
def test_batches_partition_items(kind: str, request: pytest.FixtureRequest, keys: list[int], max_items: int) -> None:
    """Cutting batches of at most max_items puts every distinct record in exactly one batch."""
    import tempfile

    # Each example gets a queue of its own (the fixtures used here hold no per-example state).
    with tempfile.TemporaryDirectory() as tmp:
        postgres = request.getfixturevalue("postgres") if kind == "postgres" else None
        location = str(Path(tmp) / "q.db") if postgres is None else postgres.create_database()
        store = open_store(location)
        store.add_items([_item(k) for k in keys])
        while True:
            waiting = store.items(state=ItemState.RECEIVED, lane=Lane.BATCH, limit=max_items)
            if not waiting:
                break
            store.create_batch(Lane.BATCH, [i.id for i in waiting], root=b"\1" * 32, dump_path=None, dump=None)
        batched = [i for b in store.batches() for i in store.batch_items(b.id)]
        assert sorted(i.key for i in batched) == sorted(k.to_bytes(32, "big") for k in set(keys))  # type: ignore[misc]
        assert all(b.size <= max_items for b in store.batches())
        store.close()
        if postgres is not None:
            postgres.drop_database(location)
