"""Several relayer instances on one queue, as real ``og-settle relayer run`` processes.

On a real PostgreSQL server: three instances, each with its own key, share one queue of a few thousand mixed
records; two of them are SIGKILLed at random moments and the node becomes unreachable and comes back
in between. Every record settles exactly once, proven from chain state, no transaction of any instance fails or
settles anything twice, and the queue shows everything settled.

On SQLite: a second ``relayer run`` on the same file is refused with a one-line error (SQLite queues take one
relayer; several instances need PostgreSQL).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from eth_account import Account

from og_settle.relayer import open_store
from tests.relayer.proofs import assert_settled_exactly_once, opg_balance, queued_digests
from tests.relayer.support import (
    PAY_TO,
    RELAYER_KEY,
    LiveChain,
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

# Three instances, three keys (anvil dev accounts 1, 7 and 8), each granted the relayer role.
_KEYS = (RELAYER_KEY, dev_key(7), dev_key(8))
_ADDRESSES = tuple(Account.from_key(k).address for k in _KEYS)


class _Instance:
    """One ``og-settle relayer run`` process (restartable with the same key), logging to its own file."""

    def __init__(self, index: int, db: str, chain: LiveChain, rpc_url: str, args: tuple[str, ...], log: Path) -> None:
        self.index = index
        self.db = db
        self.chain = chain
        self.rpc_url = rpc_url
        self.args = args
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {"OG_SETTLE_RELAYER_KEY": _KEYS[self.index], "OG_SETTLE_TEST_PAUSE": "signed:0.15,broadcast:0.15"}
        self.proc = spawn_relayer(self.db, self.chain, *self.args, env=env, log_path=self.log, rpc_url=self.rpc_url)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        return [e for e in read_events(self.log) if name is None or e.get("event") == name]

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, f"instance {self.index} already ended"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _submit(db: str, chain: LiveChain, path: Path) -> dict[str, int]:
    result = cli(
        "relayer", "submit", "--db", db, "--deployment", str(chain.deployment_path), str(path),
        "--allow-unverified", "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    summary: dict[str, int] = json.loads(result.stdout.splitlines()[-1])["summary"]
    return summary


def _relayer_transactions(chain: LiveChain) -> list[tuple[str, Any]]:
    """Every transaction any of the three instances got mined, with its receipt: (sender, receipt)."""
    w3 = chain.web3()
    ours = {a.lower() for a in _ADDRESSES}
    found = []
    for number in range(w3.eth.block_number + 1):
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            if str(tx["from"]).lower() in ours:
                found.append((str(tx["from"]), w3.eth.get_transaction_receipt(tx["hash"])))
    return found


def test_three_instances_on_one_postgres_queue_survive_kills_and_a_node_outage(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    """Three instances with their own keys on one PostgreSQL queue of 2,956 mixed records. One is SIGKILLed at a
    random moment early on and restarted later with the same key; the node becomes unreachable for a while (a
    relay in front of it is cut); a second instance is SIGKILLed at a random moment during the outage and stays
    dead, so the others must take its batches over. Every record settles exactly once (from chain state), every
    transaction mined for any instance succeeded with no per-item failure (nothing was sent twice), and the queue
    shows all settled."""
    seed = int(os.environ.get("OG_SETTLE_FLEET_SEED", str(time.time_ns() % 1_000_000)))
    rng = random.Random(seed)
    context = f"seed {seed}; OG_SETTLE_FLEET_SEED={seed} repeats it"
    with live_chain(tmp_path / "chain", relayer_keys=_KEYS) as chain:
        deployment = chain.deployment
        batch_records = [inference_record(deployment, i) for i in range(2700)]
        singles = [inference_record(deployment, 10_000 + i, mode="individual") for i in range(40)]
        singles += [inference_record(deployment, 20_000 + i, mode="metadata") for i in range(6)]
        private = [inference_record(deployment, 30_000 + i, mode="private") for i in range(10)]
        payments = [payment_record(deployment, i) for i in range(200)]
        records: list[Any] = batch_records + singles + private + payments
        rng.shuffle(records)
        db = postgres.create_database("fleet")
        summary = _submit(db, chain, write_jsonl(tmp_path / "in.jsonl", records))
        assert summary == {"accepted": len(records), "duplicate": 0, "rejected": 0}
        paid_before = opg_balance(chain, PAY_TO)

        dump_dir = tmp_path / "dumps"
        args = (
            "--drain", "--exit-when-done", "--max-batch", "200", "--payments-per-tx", "25", "--poll", "0.05",
            "--lease-ttl", "3", "--dump-dir", str(dump_dir),
        )  # fmt: skip
        # The instances reach the node through a relay the test can cut: a real outage, the chain left intact.
        relay = CuttableRelay(chain.port)
        fleet = [_Instance(i, db, chain, relay.url, args, tmp_path / f"relayer-{i}.log") for i in range(3)]
        try:
            for instance in fleet:
                instance.start()
            first, second = fleet[1], fleet[2]

            # Kill 1: instance 1 at a random moment of its first transactions (right after it signed, right after
            # it broadcast, or after a random time).
            point = rng.choice(["tx.signed", "tx.broadcast", "delay"])
            if point == "delay":
                wait_until("instance 1 to start", lambda: first.events("relayer.start"), timeout=60, context=context)
                time.sleep(rng.uniform(0.5, 3.0))
            else:
                nth = rng.randint(1, 2)
                wait_until(
                    f"instance 1's {point} #{nth}", lambda: len(first.events(point)) >= nth, timeout=90, context=context
                )
            first.kill()

            # The outage: once a few batches are confirmed, the node becomes unreachable right after instance 2
            # broadcast a transaction, so that it has work in flight when the node goes.
            wait_until(
                "3 confirmed batches",
                lambda: sum(len(i.events("batch.confirmed")) for i in fleet) >= 3,
                timeout=90,
                context=context,
            )
            sent = len(second.events("tx.broadcast"))
            wait_until(
                "instance 2's next broadcast",
                lambda: len(second.events("tx.broadcast")) > sent,
                timeout=90,
                context=context,
            )
            relay.cut()
            down_at = time.monotonic()
            # Kill 2: instance 2 at a random moment while it retries the node, holding work it had in flight.
            wait_until(
                "instance 2 to notice the outage", lambda: second.events("rpc.retry"), timeout=60, context=context
            )
            time.sleep(rng.uniform(0.0, 1.5))
            second.kill()
            time.sleep(max(0.0, 2.5 - (time.monotonic() - down_at)))
            relay.restore()
            # Instance 1 comes back with its key (and so its id): it takes back what it still held.
            first.start()

            for instance in (fleet[0], first):
                assert instance.proc is not None
                code = instance.proc.wait(timeout=150)
                assert code == 0, (
                    f"instance {instance.index} exited {code} ({context}): " + instance.log.read_text()[-3000:]
                )
        finally:
            for instance in fleet:
                instance.stop()
            relay.close()

        # The queue: everything settled, nothing in flight.
        store = open_store(db, create=False)
        try:
            state = store.status()
        finally:
            store.close()
        assert state.items_by_state == {"confirmed": len(records)}, context
        status = cli("relayer", "status", "--db", db, "--json")
        assert json.loads(status.stdout)["in_flight"] == 0

        # The chain: every record exactly once.
        assert_settled_exactly_once(chain, dump_dir, batch_records, payments, queued_digests(db), paid_before)
        # Nothing was sent twice: every transaction of every instance succeeded, and no item in a batch transaction
        # failed (a second settlement of the same record would revert, or fail its item).
        mined = _relayer_transactions(chain)
        assert mined and all(receipt["status"] == 1 for _, receipt in mined), context
        w3 = chain.web3()
        from og_settle.clients import PaymentFacilitatorClient, SettlementRegistryClient

        registry = SettlementRegistryClient(w3, deployment.settlement_registry)
        facilitator = PaymentFacilitatorClient(w3, deployment.payment_facilitator)
        assert registry.contract.events.SettlementItemFailed.get_logs(from_block=0) == []
        assert facilitator.contract.events.PaymentFailed.get_logs(from_block=0) == []

        # The work was shared and taken over: several keys sent settlements, the dead instance's batches were
        # adopted by another instance, and every log line names its instance.
        senders = Counter(sender for sender, _ in mined)
        assert len(senders) >= 2, f"{senders} ({context})"
        adopted = [e for i in (fleet[0], first) for e in i.events("lease.adopted")]
        assert adopted, f"no instance took over the killed instance's batches ({context})"
        for instance in fleet:
            ids = {e.get("instance") for e in instance.events()}
            assert ids == {f"{_ADDRESSES[instance.index]}@{os.uname().nodename}"}, ids


def test_a_second_relayer_on_one_sqlite_queue_is_refused(tmp_path: Path, chain: LiveChain) -> None:
    """SQLite stays single-instance: while one `relayer run` serves a queue file, a second (another key, so not
    the signer lease) exits 2 with a one-line error naming the holder and pointing to PostgreSQL."""
    db = tmp_path / "queue.db"
    records = write_jsonl(tmp_path / "in.jsonl", [inference_record(chain.deployment, 70_000)])
    assert _submit(str(db), chain, records)["accepted"] == 1
    log = tmp_path / "first.log"
    first = spawn_relayer(db, chain, "--poll", "0.05", "--dump-dir", str(tmp_path / "dumps"), log_path=log)
    try:
        wait_until(
            "the first relayer to start",
            lambda: any(e.get("event") == "relayer.start" for e in read_events(log)),
            timeout=60,
            context=log.read_text(),
        )
        second = cli(
            "relayer", "run", "--db", str(db), "--rpc-url", chain.rpc_url, env={"OG_SETTLE_RELAYER_KEY": dev_key(7)}
        )
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert "already being settled by relayer (pid" in lines[0] and "postgresql://" in lines[0], lines[0]
        assert first.poll() is None  # the first one goes on
    finally:
        first.kill()
        first.wait(10)
    # Once the first is gone (however it went), the queue takes a relayer again.
    again = spawn_relayer(
        db, chain, "--drain", "--exit-when-done", "--poll", "0.05", "--dump-dir", str(tmp_path / "dumps"), log_path=log
    )
    assert again.wait(timeout=90) == 0, log.read_text()[-2000:]
