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
        env={"OG_SETTLE_TEST_PAUSE": "signed:3"},
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
