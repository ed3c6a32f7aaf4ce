"""A relayer instance whose main loop hangs gives its batches up: its heartbeat stops renewing their leases once
the loop shows no progress for ``--stall-timeout`` seconds, it logs ``relayer.stalled`` and exits 4 (for a
supervisor to restart it), and another instance adopts what it held.

Real processes on a real PostgreSQL queue: the hung instance reaches the node through a TCP relay that starts
answering one byte a second right after the instance signed its first transaction, so its broadcast call blocks
(the HTTP client's read timeout counts the time between bytes, which never runs out).
"""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path
from typing import Any

from og_settle.relayer import BatchState, open_store
from tests.relayer.proofs import assert_settled_exactly_once, opg_balance, queued_digests
from tests.relayer.support import (
    PAY_TO,
    RELAYER_KEY,
    cli,
    dev_key,
    inference_record,
    live_chain,
    payment_record,
    read_events,
    spawn_relayer,
    wait_until,
    write_jsonl,
)
from tests.support.outage import CuttableRelay
from tests.support.postgres import PostgresServer

_HUNG_KEY, _OTHER_KEY = RELAYER_KEY, dev_key(7)


def _events(log: Path, name: str) -> list[dict[str, Any]]:
    return [e for e in read_events(log) if e.get("event") == name]


def test_a_hung_instance_stops_renewing_and_another_adopts_its_batch(tmp_path: Path, postgres: PostgresServer) -> None:
    with live_chain(tmp_path / "chain", relayer_keys=(_HUNG_KEY, _OTHER_KEY)) as chain:
        deployment = chain.deployment
        batch_records = [inference_record(deployment, i) for i in range(300)]
        payments = [payment_record(deployment, i) for i in range(30)]
        records: list[Any] = batch_records + payments
        db = postgres.create_database("watchdog")
        submitted = cli(
            "relayer", "submit", "--db", db, "--deployment", str(chain.deployment_path),
            str(write_jsonl(tmp_path / "in.jsonl", records)), "--allow-unverified", "--quiet",
        )  # fmt: skip
        assert submitted.returncode == 0, submitted.stderr[-2000:]
        paid_before = opg_balance(chain, PAY_TO)
        dump_dir = tmp_path / "dumps"
        args = (
            "--drain", "--exit-when-done", "--max-batch", "100", "--payments-per-tx", "10", "--poll", "0.05",
            "--lease-ttl", "2", "--stall-timeout", "6", "--dump-dir", str(dump_dir),
        )  # fmt: skip
        relay = CuttableRelay(chain.port)
        hung_log, other_log = tmp_path / "hung.log", tmp_path / "other.log"
        hung = spawn_relayer(
            db, chain, *args, env={"OG_SETTLE_RELAYER_KEY": _HUNG_KEY, "OG_SETTLE_TEST_PAUSE": "signed:1"},
            log_path=hung_log, rpc_url=relay.url,
        )  # fmt: skip
        other = None
        try:
            wait_until(
                "the first instance's first signed transaction",
                lambda: _events(hung_log, "tx.signed"),
                timeout=90,
                context=lambda: hung_log.read_text()[-3000:],
            )
            relay.stall()  # its broadcast (after the 1 s pause) now blocks: the main loop hangs
            held = _events(hung_log, "tx.signed")[0]["batch"]
            other = spawn_relayer(
                db, chain, *args, env={"OG_SETTLE_RELAYER_KEY": _OTHER_KEY}, log_path=other_log
            )  # fmt: skip
            # The hung instance notices, stops renewing and exits 4, not before its stall timeout: its own count of
            # idle seconds says so (a wall clock taken here would start late when the log is read late under load).
            code = hung.wait(timeout=60)
            assert code == 4, hung_log.read_text()[-3000:]
            (stalled,) = _events(hung_log, "relayer.stalled")
            assert stalled["level"] == "error" and stalled["idle_s"] >= 6, stalled
            # The other instance adopts the batch the hung one held, and settles everything.
            assert other.wait(timeout=120) == 0, other_log.read_text()[-3000:]
        finally:
            for proc in (hung, other):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
            relay.close()
        adopted = [e["batch"] for e in _events(other_log, "lease.adopted")]
        assert held in adopted, (held, adopted)
        store = open_store(db, create=False)
        try:
            assert store.status().items_by_state == {"confirmed": len(records)}
        finally:
            store.close()
        status = json.loads(cli("relayer", "status", "--db", db, "--json").stdout)
        assert status["in_flight"] == 0
        assert_settled_exactly_once(chain, dump_dir, batch_records, payments, queued_digests(db), paid_before)


def test_the_watchdog_acts_while_a_renewal_is_stuck_on_the_database(postgres: PostgresServer) -> None:
    """The main loop hung inside a query holds the store's connection, so a lease renewal waits for it forever; the
    watchdog, on a thread of its own, still notices the stall and calls ``on_stall``, and nothing is renewed."""
    from og_settle.relayer import EventLog, ItemKind, Lane, NewItem, PostgresStore
    from og_settle.relayer._fleet import LeaseKeeper

    store = PostgresStore(postgres.create_database("stuck"), worker="a", lease_ttl=0.3)
    stream = io.StringIO()
    keeper = LeaseKeeper(store, EventLog(stream), ttl=0.3)
    (item,) = store.add_items([NewItem(ItemKind.INFERENCE, Lane.BATCH, b"\1" * 32, {"n": 1}, "t")])
    batch = store.create_batch(Lane.BATCH, [item.item_id], root=b"\2" * 32, dump_path=None, dump=None)
    stalled, done = threading.Event(), threading.Event()
    last_tick = time.monotonic()
    store._lock.acquire()  # the hung main loop's query
    try:
        keeper.heartbeat(done, progress=lambda: last_tick, stall_after=0.6, on_stall=stalled.set)
        assert stalled.wait(10), stream.getvalue()
    finally:
        store._lock.release()
        done.set()
    (event,) = [json.loads(line) for line in stream.getvalue().splitlines() if "relayer.stalled" in line]
    assert event["level"] == "error" and event["idle_s"] >= 0.6
    time.sleep(0.5)  # nothing renews the lease any more: it runs out and another instance can adopt the batch
    other = PostgresStore(store.url, worker="b")
    try:
        assert [lease.batch.id for lease in other.claim_batches([BatchState.BUILT], 10, ttl=5)] == [batch.id]
    finally:
        other.close()
        store.close()
