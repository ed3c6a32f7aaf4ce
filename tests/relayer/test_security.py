"""Security findings of issue #12 that concern the relayer, reproduced on a real anvil with the genuine Permit2,
the deployed contracts and ``og-settle relayer run`` as a subprocess."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from eth_account import Account

from og_settle._x402 import PaymentPayload, create_payment_payload
from og_settle.relayer import ItemState, SqliteStore
from tests.relayer.support import (
    PAYER_KEYS,
    LiveChain,
    cli,
    dev_key,
    payment_record,
    read_events,
    requirements,
    spawn_relayer,
    write_jsonl,
)

ATTACKER_SINK = Account.from_key(dev_key(7)).address  # another account of the payer's


def _submit(db: Path, chain: LiveChain, records: list[Any]) -> None:
    path = write_jsonl(db.with_suffix(".jsonl"), records)
    result = cli("relayer", "submit", "--db", str(db), "--deployment", str(chain.deployment_path), str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def _spend_nonce_first(chain: LiveChain, record: dict[str, Any]) -> str:
    """The payer settles a 1-wei payment to an account of its own with the same Permit2 nonce, through the same
    PaymentFacilitator, from its own account: the nonce is spent and a PaymentSettled event names it."""
    from og_settle.clients import PaymentFacilitatorClient, TxSender

    auth = record["paymentPayload"]["payload"]["permit2Authorization"]
    key = next(k for k in PAYER_KEYS if Account.from_key(k).address == auth["from"])
    dust = replace(requirements(1), pay_to=ATTACKER_SINK)
    payload = create_payment_payload(
        dust,
        key,
        spender=chain.deployment.payment_facilitator,
        nonce=int(auth["nonce"]),
        permit2=chain.deployment.permit2,
    )
    w3 = chain.web3()
    facilitator = PaymentFacilitatorClient(w3, chain.deployment.payment_facilitator)
    receipt = facilitator.send_settle(
        TxSender(w3, Account.from_key(key)), payload.payload.authorization.payment_args(payload.payload.signature)
    )
    assert receipt.succeeded
    return str(auth["from"])


def _wait_for_event(proc: subprocess.Popen[bytes], log: Path, event: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not any(e.get("event") == event for e in read_events(log)):
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"no {event} within {timeout}s"
        time.sleep(0.02)


def test_a_payer_spending_the_nonce_first_does_not_get_the_merchants_payment_confirmed(
    tmp_path: Path, chain: LiveChain
) -> None:
    """H-2: the payer spends its Permit2 nonce on a 1-wei payment to itself, once before the relayer starts
    (reconciliation path) and once between the relayer signing and broadcasting (receipt path). Neither queued
    payment is marked confirmed: both fail with a reason naming the other payment, and ``og-settle status
    payment`` does not call them settled."""
    first, raced = payment_record(chain.deployment, 70_000), payment_record(chain.deployment, 70_001)
    db = tmp_path / "queue.db"
    _submit(db, chain, [first, raced])
    _spend_nonce_first(chain, first)

    log = tmp_path / "relayer.log"
    proc = spawn_relayer(
        db,
        chain,
        "--drain",
        "--exit-when-done",
        "--poll",
        "0.05",
        env={"OG_SETTLE_TEST_PAUSE": "signed:8"},
        log_path=log,
    )
    try:
        _wait_for_event(proc, log, "tx.signed")
        _spend_nonce_first(chain, raced)  # lands before the relayer's own transaction
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    store = SqliteStore(db)
    try:
        items = {i.record()["ref"]: i for i in store.items() if i.kind.value == "payment"}
    finally:
        store.close()
    for ref in ("pay-70000", "pay-70001"):
        item = items[ref]
        assert item.state is ItemState.FAILED, f"{ref}: {item.state} ({item.reason})"
        assert item.reason is not None and "different payment" in item.reason, item.reason
    assert proc.returncode != 0, "items failed, so the run must not exit 0"

    for record in (first, raced):
        auth = record["paymentPayload"]["payload"]["permit2Authorization"]
        payload_file = tmp_path / f"payload-{auth['nonce']}.json"
        payload_file.write_text(json.dumps(record["paymentPayload"]))
        deployment = str(chain.deployment_path)
        args = ("--rpc", chain.rpc_url, "--deployment", deployment, "--json")
        bare = cli("status", "payment", auth["from"], auth["nonce"], *args)
        checked = cli("status", "payment", auth["from"], auth["nonce"], "--payload", str(payload_file), *args)
        for shown in (bare, checked):
            assert shown.returncode == 1, shown.stdout + shown.stderr
            assert json.loads(shown.stdout)["settled"] is False
        assert "different payment" in json.loads(checked.stdout)["detail"]
    assert PaymentPayload.from_json(first["paymentPayload"]).payload.authorization.to != ATTACKER_SINK


# A delegate whose code loops until its gas is gone: JUMPDEST; PUSH1 0; JUMP. An EIP-7702 account delegating to it
# still signs with its ordinary key (so intake accepts its payments), but Permit2's isValidSignature call on it
# burns everything it is given.
_GAS_BURNER_CODE = "0x5b600056"
_GAS_BURNER = "0x00000000000000000000000000000000000b0b0b"


def test_a_payer_whose_code_burns_gas_is_isolated_before_anything_is_sent(tmp_path: Path, chain: LiveChain) -> None:
    """H-1 off chain: ten honest payments and one from an EIP-7702 payer whose delegate burns all gas. The relayer
    simulates payers with code before sending, fails that one item with a reason and settles the others, without
    the griefer ever reaching a transaction (no PaymentFailed for it, no item cap paid)."""
    from og_settle.clients import PaymentFacilitatorClient

    w3 = chain.web3()
    griefer_key = PAYER_KEYS[2]
    griefer = Account.from_key(griefer_key).address
    honest = [r for r in (payment_record(chain.deployment, 71_000 + i) for i in range(15)) if _payer(r) != griefer]
    bad = next(r for r in (payment_record(chain.deployment, 71_100 + i) for i in range(3)) if _payer(r) == griefer)
    db = tmp_path / "queue.db"
    _submit(db, chain, [*honest[:5], bad, *honest[5:10]])
    w3.provider.make_request("anvil_setCode", [_GAS_BURNER, _GAS_BURNER_CODE])
    w3.provider.make_request("anvil_setCode", [griefer, "0xef0100" + _GAS_BURNER[2:]])
    try:
        log = tmp_path / "relayer.log"
        proc = spawn_relayer(db, chain, "--drain", "--exit-when-done", "--poll", "0.05", log_path=log)
        assert proc.wait(timeout=120) == 1, log.read_text()[-3000:]  # one item failed
    finally:
        w3.provider.make_request("anvil_setCode", [griefer, "0x"])
    store = SqliteStore(db)
    try:
        items = {i.record()["ref"]: i for i in store.items()}
    finally:
        store.close()
    assert all(items[r["ref"]].state is ItemState.CONFIRMED for r in honest[:10])
    failed = items[bad["ref"]]
    assert failed.state is ItemState.FAILED and failed.reason is not None
    assert "account code" in failed.reason, failed.reason
    facilitator = PaymentFacilitatorClient(w3, chain.deployment.payment_facilitator)
    failures = facilitator.contract.events.PaymentFailed.get_logs(from_block=0)
    bad_nonce = int(bad["paymentPayload"]["payload"]["permit2Authorization"]["nonce"])
    assert not [e for e in failures if int(e["args"]["nonce"]) == bad_nonce], "the griefer's payment was sent"


def test_a_batch_whose_estimate_fails_is_split_until_it_fits(tmp_path: Path, chain: LiveChain) -> None:
    """H-1 off chain: when the gas estimate of a batch fails (here the block gas limit is too small for it, so the
    estimate fails without naming an item), the relayer splits the batch and settles the halves instead of
    crashing or failing every item."""
    w3 = chain.web3()
    records = [payment_record(chain.deployment, 72_000 + i) for i in range(6)]
    db = tmp_path / "queue.db"
    _submit(db, chain, records)
    # Too little for all six (their estimate fails) but enough for three: the split has to happen.
    w3.provider.make_request("anvil_setBlockGasLimit", [hex(400_000)])
    try:
        log = tmp_path / "relayer.log"
        proc = spawn_relayer(db, chain, "--drain", "--exit-when-done", "--poll", "0.05", log_path=log)
        code = proc.wait(timeout=120)
    finally:
        w3.provider.make_request("anvil_setBlockGasLimit", [hex(30_000_000)])
    assert code == 0, log.read_text()[-3000:]
    assert any(e["event"] == "batch.split" for e in read_events(log))
    store = SqliteStore(db)
    try:
        assert store.status().items_by_state == {"confirmed": len(records)}
    finally:
        store.close()


def _payer(record: dict[str, Any]) -> str:
    return str(record["paymentPayload"]["payload"]["permit2Authorization"]["from"])


def test_a_bound_payment_links_to_exactly_one_request_instance(tmp_path: Path, chain: LiveChain) -> None:
    """I-1: a bound payment's requestHash commits to the inference's input hash and a per-request nonce
    (``request_binding``). Two identical requests (one input hash) paid separately: each settled payment proves,
    with its nonce, that it paid for that input hash, and neither passes for the other request; the inference
    itself settles under the same input hash."""
    from og_settle import new_request_nonce, request_binding
    from og_settle._hex import keccak256, to_hex
    from tests.relayer.support import inference_record

    inference = inference_record(chain.deployment, 73_000, mode="individual")
    input_hash = keccak256(b"request 73000")
    assert inference["input_hash"] == to_hex(input_hash)
    nonces = [new_request_nonce(), new_request_nonce()]
    assert nonces[0] != nonces[1] and request_binding(input_hash, nonces[0]) != request_binding(input_hash, nonces[1])
    payments = []
    for i, nonce in enumerate(nonces):
        reqs = requirements(10**15)
        reqs = replace(reqs, extra={**reqs.extra, "requestHash": to_hex(request_binding(input_hash, nonce))})
        payload = create_payment_payload(
            reqs, PAYER_KEYS[i], spender=chain.deployment.payment_facilitator, permit2=chain.deployment.permit2
        )
        payments.append({"kind": "payment", "ref": f"bound-{i}", "paymentPayload": payload.to_json(),
                         "paymentRequirements": reqs.to_json()})  # fmt: skip
    db = tmp_path / "queue.db"
    _submit(db, chain, [inference, *payments])
    log = tmp_path / "relayer.log"
    proc = spawn_relayer(db, chain, "--drain", "--exit-when-done", "--poll", "0.05", log_path=log)
    assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]

    deployment = str(chain.deployment_path)
    chain_args = ("--rpc", chain.rpc_url, "--deployment", deployment, "--json")
    store = SqliteStore(db)
    try:
        digest = next(i.record()["digest"] for i in store.items() if i.record().get("ref") == inference["ref"])
    finally:
        store.close()
    # The inference settled under a digest of (teeId, inputHash, outputHash, timestamp, payer): its record carries
    # the input hash the payments commit to.
    settled = cli("status", "inference", digest, *chain_args)
    assert settled.returncode == 0 and json.loads(settled.stdout)["settled"] is True
    for i, payment in enumerate(payments):
        auth = payment["paymentPayload"]["payload"]["permit2Authorization"]
        payload_file = tmp_path / f"bound-{i}.json"
        payload_file.write_text(json.dumps(payment["paymentPayload"]))
        base = ("status", "payment", auth["from"], auth["nonce"], "--payload", str(payload_file), *chain_args)
        own = cli(*base, "--input-hash", to_hex(input_hash), "--request-nonce", to_hex(nonces[i]))
        assert own.returncode == 0, own.stdout + own.stderr
        body = json.loads(own.stdout)
        assert body["settled"] is True and body["pays_for"]["linked"] is True
        other = cli(*base, "--input-hash", to_hex(input_hash), "--request-nonce", to_hex(nonces[1 - i]))
        assert other.returncode == 1, other.stdout + other.stderr
        assert json.loads(other.stdout)["pays_for"]["linked"] is False
