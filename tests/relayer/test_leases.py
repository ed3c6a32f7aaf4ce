"""Several relayer instances on one PostgreSQL queue: items and batches are leased with ``FOR UPDATE SKIP
LOCKED``, every claimed row names its instance, and a take-over after a lease runs out fences the old holder."""

from __future__ import annotations

import threading
import time

import pytest

from og_settle import InvariantViolation
from og_settle.relayer import BatchState, ItemKind, ItemState, Lane, LeaseLost, NewItem, PostgresStore
from tests.support.postgres import PostgresServer


def _item(n: int) -> NewItem:
    return NewItem(kind=ItemKind.INFERENCE, lane=Lane.BATCH, key=n.to_bytes(32, "big"), payload={"n": n}, source="t")


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    return postgres.create_database("lease")


def test_concurrent_claims_are_disjoint_and_name_their_worker(pg_url: str) -> None:
    """Four instances claiming at once, 7 at a time, until nothing is left: every item is claimed exactly once and
    carries the id of the instance that claimed it."""
    stores = [PostgresStore(pg_url, worker=f"relayer-{i}") for i in range(4)]
    stores[0].add_items([_item(n) for n in range(300)])
    claims: dict[str, list[int]] = {}
    barrier = threading.Barrier(4)

    def work(store: PostgresStore) -> None:
        barrier.wait()
        mine: list[int] = []
        while batch := store.claim_items(Lane.BATCH, 7, ttl=60):
            mine.extend(i.id for i in batch)
        claims[store.worker] = mine

    threads = [threading.Thread(target=work, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for ids in claims.values() for i in ids]
    assert sorted(every) == sorted(i.id for i in stores[0].items())  # each of the 300 exactly once
    assert sum(1 for ids in claims.values() if ids) >= 2  # the work was actually shared
    for worker, ids in claims.items():
        assert {stores[0].claimed_by(i) for i in ids} <= {worker}
    for store in stores:
        store.close()


def test_a_live_claim_keeps_others_out_and_an_expired_one_does_not(pg_url: str) -> None:
    """Items another instance claimed cannot be batched or claimed by this one until the claim runs out."""
    a, b = PostgresStore(pg_url, worker="a"), PostgresStore(pg_url, worker="b")
    ids = [o.item_id for o in a.add_items([_item(n) for n in range(4)])]
    assert [i.id for i in a.claim_items(Lane.BATCH, 2, ttl=60)] == ids[:2]
    assert [i.id for i in b.claim_items(Lane.BATCH, 10, ttl=60)] == ids[2:]
    with pytest.raises(InvariantViolation, match="free for b"):
        b.create_batch(Lane.BATCH, ids[:2], root=b"\1" * 32, dump_path=None, dump=None)
    batch = a.create_batch(Lane.BATCH, ids[:2], root=b"\1" * 32, dump_path=None, dump=None)
    assert {i.batch_id for i in a.batch_items(batch.id)} == {batch.id}
    short = PostgresStore(pg_url, worker="c")
    a.add_items([_item(10)])
    (taken,) = short.claim_items(Lane.BATCH, 1, ttl=0.5)
    assert b.claim_items(Lane.BATCH, 10, ttl=60) == []  # c holds the new one; b's own live claim is not new work
    time.sleep(0.6)
    assert [i.id for i in b.claim_items(Lane.BATCH, 10, ttl=60)] == [taken.id]  # c's claim ran out
    assert b.claimed_by(taken.id) == "b"
    for store in (a, b, short):
        store.close()


def test_batch_leases_skip_held_batches_and_fence_a_lost_holder(pg_url: str) -> None:
    """A built batch is held by the instance that built it; after its lease runs out another takes it over with a
    larger fencing token, and the old holder can no longer renew."""
    a, b = PostgresStore(pg_url, worker="a"), PostgresStore(pg_url, worker="b")
    ids = [o.item_id for o in a.add_items([_item(n) for n in range(2)])]
    batch = a.create_batch(Lane.BATCH, ids, root=b"\1" * 32, dump_path=None, dump=None)
    assert b.claim_batches([BatchState.BUILT], 5, ttl=60) == []  # its builder holds it
    assert a.claim_batches([BatchState.BUILT], 5, ttl=60) == []  # a live lease is not new work, even one's own
    (held,) = a.claim_batches([BatchState.BUILT], 5, ttl=0.2, reclaim=True)  # a restarted `a` takes it back
    assert (held.batch.id, held.worker) == (batch.id, "a")
    renewed = a.renew_lease(held, ttl=0.05)
    assert renewed is not None and renewed.fence == held.fence
    time.sleep(0.1)
    (taken,) = b.claim_batches([BatchState.BUILT], 5, ttl=60)
    assert taken.worker == "b" and taken.fence > held.fence
    assert a.renew_lease(held, ttl=60) is None  # fenced out
    assert b.renew_lease(taken, ttl=60) is not None
    for store in (a, b):
        store.close()


def test_a_fenced_out_instance_cannot_change_the_batch_it_lost(pg_url: str) -> None:
    """After a take-over, every change the old holder tries on the batch (sign it, confirm it, settle part of it) is
    refused with LeaseLost and changes nothing; it learns of the loss when it renews, and no longer lists the batch
    as its own. The new holder's changes go through."""
    a = PostgresStore(pg_url, worker="a", lease_ttl=0.2)
    b = PostgresStore(pg_url, worker="b")
    ids = [o.item_id for o in a.add_items([_item(n) for n in range(3)])]
    batch = a.create_batch(Lane.BATCH, ids, root=b"\2" * 32, dump_path=None, dump=None)
    assert [x.id for x in a.held_batches(BatchState.BUILT)] == [batch.id]
    assert b.held_batches(BatchState.BUILT) == []
    with pytest.raises(LeaseLost, match="a holds it"):  # b holds no lease on it: a's live lease keeps b out
        b.record_signed_tx(batch.id, tx_hash=b"\3" * 32, nonce=0, sender="0xb", raw=b"b")
    time.sleep(0.3)
    (taken,) = b.claim_batches([BatchState.BUILT], 5, ttl=60)
    assert taken.batch.id == batch.id
    for attempt in (
        lambda: a.record_signed_tx(batch.id, tx_hash=b"\4" * 32, nonce=0, sender="0xa", raw=b"a"),
        lambda: a.resolve_items(batch.id, confirmed={ids[0]: "on chain"}, failed={}),
        lambda: a.confirm_batch(batch.id, tx_hash=None, block_number=None, gas_used=None),
    ):
        with pytest.raises(LeaseLost, match=r"taken over by b|b holds it"):
            attempt()
    assert a.renew_leases(ttl=60) == []  # the refusals already told it; it holds nothing now
    assert a.held_batches(BatchState.BUILT, BatchState.SUBMITTED) == []
    assert b.batch(batch.id).state is BatchState.BUILT and b.batch_txs(batch.id) == []
    tx = b.record_signed_tx(batch.id, tx_hash=b"\5" * 32, nonce=0, sender="0xb", raw=b"b")
    assert b.held_batches(BatchState.SUBMITTED) == [b.batch(batch.id)] and tx.sender == "0xb"
    b.confirm_batch(batch.id, tx_hash=tx.tx_hash, block_number=1, gas_used=1)
    assert {i.state for i in b.batch_items(batch.id)} == {ItemState.CONFIRMED}
    assert b.renew_leases(ttl=60) == [] and b.held_batches(BatchState.SUBMITTED) == []  # finished: not lost, let go
    for store in (a, b):
        store.close()


def test_renewal_reports_a_lease_lost_to_a_take_over(pg_url: str) -> None:
    """An instance that stalls past its lease learns at its next renewal which batches another instance took."""
    a = PostgresStore(pg_url, worker="a", lease_ttl=0.2)
    b = PostgresStore(pg_url, worker="b")
    ids = [o.item_id for o in a.add_items([_item(n) for n in range(4)])]
    first = a.create_batch(Lane.BATCH, ids[:2], root=b"\6" * 32, dump_path=None, dump=None)
    time.sleep(0.3)
    assert [x.batch.id for x in b.claim_batches([BatchState.BUILT], 5, ttl=60)] == [first.id]
    second = a.create_batch(Lane.BATCH, ids[2:], root=b"\7" * 32, dump_path=None, dump=None)
    assert a.renew_leases(ttl=60) == [first.id]
    assert [x.id for x in a.held_batches(BatchState.BUILT)] == [second.id]
    for store in (a, b):
        store.close()


def test_an_upto_payment_is_claimed_only_by_the_instance_it_names(pg_url: str) -> None:
    """An upto payment names the account allowed to settle it: on a shared queue only the instance signing with
    that account claims it; exact payments go to whoever claims first."""
    from eth_account import Account

    from og_settle._x402 import PaymentRequirements, create_payment_payload
    from og_settle.relayer import payment_key

    payer = Account.create()
    a_account, b_account = Account.create().address, Account.create().address

    def payment(nonce: int, scheme: str, facilitator: str | None) -> NewItem:
        extra: dict[str, object] = {"assetTransferMethod": "permit2", "name": "OPG", "version": "1"}
        if facilitator is not None:
            extra["facilitator"] = facilitator
        requirements = PaymentRequirements(
            scheme=scheme, network="eip155:84532", amount=10, asset="0x" + "11" * 20, pay_to="0x" + "22" * 20,
            max_timeout_seconds=600, extra=extra,
        )  # fmt: skip
        payload = create_payment_payload(requirements, payer.key, spender="0x" + "33" * 20, nonce=nonce)
        return NewItem(
            kind=ItemKind.PAYMENT,
            lane=Lane.PAYMENT,
            key=payment_key(payer.address, nonce),
            payload={"paymentPayload": payload.to_json()},
            source="t",
        )

    a = PostgresStore(pg_url, worker="a")
    b = PostgresStore(pg_url, worker="b")
    ids = [
        o.item_id
        for o in a.add_items(
            [payment(1, "upto", b_account), payment(2, "exact", None), payment(3, "upto", a_account.lower())]
        )
    ]
    assert [i.id for i in a.claim_items(Lane.PAYMENT, 10, ttl=60, settler=a_account)] == [ids[1], ids[2]]
    assert [i.id for i in b.claim_items(Lane.PAYMENT, 10, ttl=60, settler=b_account)] == [ids[0]]
    for store in (a, b):
        store.close()


def test_the_heartbeat_keeps_a_live_instances_batches_and_a_stopped_one_loses_them(pg_url: str) -> None:
    """While its heartbeat runs, an instance keeps its batches however long its own step takes (a slow node, an
    outage); once it stops (as a killed process stops), another instance adopts them after the lease runs out."""
    from og_settle.relayer import EventLog
    from og_settle.relayer._fleet import LeaseKeeper

    a = PostgresStore(pg_url, worker="a", lease_ttl=1.0)
    b = PostgresStore(pg_url, worker="b")
    ids = [o.item_id for o in a.add_items([_item(n) for n in range(2)])]
    batch = a.create_batch(Lane.BATCH, ids, root=b"\x08" * 32, dump_path=None, dump=None)
    stop = threading.Event()
    beat = LeaseKeeper(a, EventLog(), ttl=1.0).heartbeat(stop)
    time.sleep(2.5)  # well past the lease: only the heartbeat keeps it
    assert b.claim_batches([BatchState.BUILT], 5, ttl=60) == []
    stop.set()
    beat.join()
    time.sleep(1.2)
    assert [lease.batch.id for lease in b.claim_batches([BatchState.BUILT], 5, ttl=60)] == [batch.id]
    for store in (a, b):
        store.close()
