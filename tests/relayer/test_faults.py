"""Fault tests with real processes on loopback: the relayer is SIGKILLed, the node goes away, input is hostile.

Every check of "settled exactly once" reads the chain: BatchRecorded events and the dumps they point to,
the registry's digests, Permit2's nonce bitmap, PaymentSettled events and token balances.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from og_settle._hex import parse_bytes32, to_hex
from og_settle.relayer import ItemState, SqliteStore
from tests.relayer.proofs import assert_settled_exactly_once, opg_balance, queued_digests
from tests.relayer.support import (
    PAY_TO,
    LiveChain,
    cli,
    inference_record,
    live_chain,
    payment_record,
    read_events,
    spawn_relayer,
    write_jsonl,
)
from tests.support.outage import CuttableRelay


def _submit(db: Path, chain: LiveChain, path: Path, *extra: str) -> dict[str, Any]:
    # Without --rpc the TEE registry cannot be asked: leaves are queued explicitly unverified (M-2's intake check).
    result = cli(
        "relayer", "submit", "--db", str(db), "--deployment", str(chain.deployment_path), str(path),
        "--allow-unverified", *extra,
    )  # fmt: skip
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert lines, result.stderr
    summary: dict[str, Any] = lines[-1]["summary"]
    summary["reports"] = lines[:-1]
    return summary


def _wait_for(proc: subprocess.Popen[bytes], log: Path, event: str, *, after: int, timeout: float) -> bool:
    """Wait until the log holds more than ``after`` lines of ``event`` (False if the process ended first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(1 for e in read_events(log) if e.get("event") == event) > after:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    raise AssertionError(f"no new {event} event within {timeout}s")


def _count(log: Path, event: str) -> int:
    return sum(1 for e in read_events(log) if e.get("event") == event)


def test_crash_recovery_settles_everything_exactly_once(tmp_path: Path) -> None:
    """SIGKILLed at random moments (at least 5 times, including between broadcast and receipt), the relayer
    still settles every record exactly once, proven from chain state, and leaves nothing in flight."""
    rng = random.Random(20261122)
    with live_chain(tmp_path / "chain") as chain:
        deployment = chain.deployment
        batch_records = [inference_record(deployment, i) for i in range(2000)]
        singles = [inference_record(deployment, 10_000 + i, mode="individual") for i in range(3)]
        singles += [inference_record(deployment, 20_000 + i, mode="metadata") for i in range(2)]
        payments = [payment_record(deployment, i) for i in range(150)]
        records: list[Any] = batch_records + singles + payments
        rng.shuffle(records)
        db = tmp_path / "queue.db"
        summary = _submit(db, chain, write_jsonl(tmp_path / "in.jsonl", records))
        assert summary["accepted"] == len(records) and summary["rejected"] == 0
        paid_before = opg_balance(chain, PAY_TO)

        log = tmp_path / "relayer.log"
        dump_dir = tmp_path / "dumps"
        args = ("--drain", "--exit-when-done", "--max-batch", "350", "--poll", "0.05", "--dump-dir", str(dump_dir))
        # The pauses widen the windows after signing and after broadcasting, so kills land inside them.
        pauses = {"OG_SETTLE_TEST_PAUSE": "signed:0.25,broadcast:0.25"}
        kills: list[str] = []
        # (what to wait for, or a delay in seconds) for each of the kills
        plan: list[str | float] = ["batch.built", "tx.broadcast", rng.uniform(0.3, 1.5), "tx.signed", "tx.broadcast"]
        plan += [rng.uniform(0.3, 2.0), "tx.broadcast"]
        for step in plan:
            proc = spawn_relayer(db, chain, *args, env=pauses, log_path=log)
            try:
                if isinstance(step, str):
                    if not _wait_for(proc, log, step, after=_count(log, step), timeout=60):
                        break  # finished before the kill point: nothing left to interrupt
                else:
                    time.sleep(step)
                if proc.poll() is not None:
                    break
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                kills.append(str(step))
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
        final = spawn_relayer(db, chain, *args, log_path=log)
        assert final.wait(timeout=120) == 0, log.read_text()[-3000:]

        assert len(kills) >= 5, f"only {len(kills)} kills happened: {kills}"
        assert kills.count("tx.broadcast") >= 2
        events = read_events(log)
        # At least once a restart found a receipt the previous run never recorded (killed after broadcast).
        assert any(e["event"] == "recovery.receipt" for e in events), "no kill landed between broadcast and receipt"

        status = SqliteStore(db)
        try:
            state = status.status()
        finally:
            status.close()
        assert state.in_flight == 0
        assert state.items_by_state == {"confirmed": len(records)}
        assert_settled_exactly_once(chain, dump_dir, batch_records, payments, queued_digests(db), paid_before)


def test_node_outage_backs_off_and_loses_nothing(tmp_path: Path) -> None:
    """With the node unreachable mid-run and reachable again (the same chain: the relayer reaches the node through a
    relay that the test cuts, refusing connections and dropping open ones, then restores), the relayer backs off,
    resumes and settles every record exactly once."""
    with live_chain(tmp_path / "chain") as chain:
        deployment = chain.deployment
        batch_records = [inference_record(deployment, i) for i in range(400)]
        payments = [payment_record(deployment, i) for i in range(60)]
        records: list[Any] = batch_records + payments
        db = tmp_path / "queue.db"
        assert _submit(db, chain, write_jsonl(tmp_path / "in.jsonl", records))["accepted"] == len(records)
        paid_before = opg_balance(chain, PAY_TO)
        log = tmp_path / "relayer.log"
        dump_dir = tmp_path / "dumps"
        relay = CuttableRelay(chain.port)
        proc = spawn_relayer(
            db,
            chain,
            "--drain",
            "--exit-when-done",
            "--max-batch",
            "100",
            "--payments-per-tx",
            "20",
            "--poll",
            "0.05",
            "--dump-dir",
            str(dump_dir),
            env={"OG_SETTLE_TEST_PAUSE": "broadcast:0.3"},
            log_path=log,
            rpc_url=relay.url,
        )
        try:
            assert _wait_for(proc, log, "batch.confirmed", after=0, timeout=60)
            relay.cut()
            outage_start = time.monotonic()
            deadline = time.monotonic() + 30
            while _count(log, "rpc.retry") < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _count(log, "rpc.retry") >= 3, "the relayer did not notice the outage"
            assert proc.poll() is None, "the relayer must survive the outage"
            time.sleep(max(0.0, 2.0 - (time.monotonic() - outage_start)))
            relay.restore()
            assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            relay.close()
        events = read_events(log)
        assert any(e["event"] == "rpc.recovered" for e in events)
        retries = [e for e in events if e["event"] == "rpc.retry"]
        waits = [e["wait_s"] for e in retries]
        assert max(waits) > min(waits), "backoff must grow"
        store = SqliteStore(db)
        try:
            assert store.status().items_by_state == {"confirmed": len(records)}
        finally:
            store.close()
        assert_settled_exactly_once(chain, dump_dir, batch_records, payments, [], paid_before)


def test_bad_input_is_rejected_with_reasons_and_good_records_settle(tmp_path: Path, chain: LiveChain) -> None:
    """Malformed, oversized, forged and expired records are rejected with reasons; an unpayable payment fails
    on chain with an x402 reason; the good records around them settle."""
    from og_settle._attestation import InferenceAttestation, TeeKey, settlement_domain

    deployment = chain.deployment
    now = int(time.time())
    good = [inference_record(deployment, 50_000 + i) for i in range(30)]
    good_payments = [payment_record(deployment, 50_000 + i) for i in range(5)]
    forged_tee = inference_record(deployment, 60_000)
    impostor = TeeKey(bytes.fromhex("11" * 32))
    domain = settlement_domain(deployment.chain_id, deployment.settlement_registry)
    forged_tee["tee_signature"] = to_hex(
        impostor.sign_inference(
            domain,
            InferenceAttestation(
                parse_bytes32(forged_tee["tee_id"], "tee_id"),
                parse_bytes32(forged_tee["input_hash"], "input_hash"),
                parse_bytes32(forged_tee["output_hash"], "output_hash"),
                forged_tee["timestamp"],
            ),
        )
    )
    forged_payment = payment_record(deployment, 60_001)
    forged_payment["paymentPayload"]["payload"]["permit2Authorization"]["permitted"]["amount"] = str(10**18)
    forged_payment["paymentRequirements"]["amount"] = str(10**18)
    forged_payment["paymentPayload"]["accepted"]["amount"] = str(10**18)
    expired = payment_record(deployment, 60_002, now=now - 7200, timeout=60)
    wrong_spender = payment_record(deployment, 60_003)
    wrong_spender["paymentPayload"]["payload"]["permit2Authorization"]["spender"] = PAY_TO
    stale = inference_record(deployment, 60_004, mode="individual", now=now - 10 * 24 * 3600)
    oversized = json.dumps({"kind": "inference", "mode": "batch", "pad": "x" * 300_000})
    missing_payer = inference_record(deployment, 60_005, mode="individual")
    del missing_payer["payer"]
    bad_lines: list[Any] = [
        "{not json",
        oversized,
        json.dumps({"kind": "refund"}),
        [1, 2, 3],
        forged_tee,
        forged_payment,
        expired,
        wrong_spender,
        stale,
        missing_payer,
    ]
    expected_reasons = [
        "malformed",
        "oversized",
        "unknown_kind",
        "malformed",
        "invalid_tee_signature",
        "invalid_permit2_signature",
        "permit2_deadline_expired",
        "invalid_permit2_spender",
        "timestamp_too_old",
        "invalid_record",
    ]
    # An unfunded payer: the signature is genuine, so it passes offline checks, but it cannot pay on chain.
    from eth_account import Account

    from og_settle._x402 import create_payment_payload
    from tests.relayer.support import requirements

    broke = Account.create()
    reqs = requirements(10**15)
    broke_payment = {
        "kind": "payment",
        "paymentPayload": create_payment_payload(
            reqs, broke.key, spender=deployment.payment_facilitator, permit2=deployment.permit2
        ).to_json(),
        "paymentRequirements": reqs.to_json(),
    }
    lines: list[Any] = []
    for i, bad in enumerate(bad_lines):
        lines += [*good[3 * i : 3 * i + 3], bad]
    lines += [*good_payments[:3], broke_payment, *good_payments[3:]]
    db = tmp_path / "queue.db"
    summary = _submit(db, chain, write_jsonl(tmp_path / "in.jsonl", lines))
    rejected = [r for r in summary["reports"] if r["status"] == "rejected"]
    assert [r["reason"] for r in rejected] == expected_reasons
    assert all(r["detail"] for r in rejected)
    assert summary["accepted"] == len(good) + len(good_payments) + 1

    # With chain reads at intake, the unfunded payment is rejected up front instead.
    rechecked = _submit(
        tmp_path / "other.db", chain, write_jsonl(tmp_path / "broke.jsonl", [broke_payment]), "--rpc", chain.rpc_url
    )
    assert rechecked["reports"][0]["reason"] == "permit2_allowance_required"

    log = tmp_path / "relayer.log"
    proc = spawn_relayer(
        db, chain, "--drain", "--exit-when-done", "--poll", "0.05", "--dump-dir", str(tmp_path / "dumps"), log_path=log
    )
    assert proc.wait(timeout=120) == 1, log.read_text()[-3000:]  # an item failed: --exit-when-done says so
    store = SqliteStore(db)
    try:
        state = store.status()
        failed = store.items(state=ItemState.FAILED)
    finally:
        store.close()
    assert state.items_by_state == {
        "confirmed": len(good) + len(good_payments),
        "failed": 1,
        "rejected": len(bad_lines),
    }
    assert len(failed) == 1 and failed[0].reason is not None
    assert failed[0].reason.startswith("permit2_simulation_failed"), failed[0].reason
    status = cli("relayer", "status", "--db", str(db), "--json")
    body = json.loads(status.stdout)
    assert body["in_flight"] == 0 and body["items"]["failed"] == 1
    assert body["last_transaction"]["state"] == "mined"
