"""Payments that can no longer settle, and the relayer accounts a queue knows.

- A received payment whose Permit2 deadline passed is failed (``permit2_deadline_expired``) by the relayer, under
  the claim rules: never one another instance holds a live claim on, never one already in a batch.
- Every ``relayer run`` records its account in the queue (instead of overwriting one ``relayer_address``), so
  ``relayer submit`` accepts upto payments naming any instance's account, and ``relayer status`` lists the accounts
  and warns about upto payments naming an account no instance has run with.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from eth_account import Account

from og_settle._deploy import Deployment
from og_settle._networks import BASE_SEPOLIA_CAIP2, OPG_ADDRESS
from og_settle._x402 import PaymentRequirements, create_payment_payload
from og_settle.relayer import (
    IntakeConfig,
    ItemKind,
    ItemState,
    Lane,
    NewItem,
    PostgresStore,
    QueueStore,
    open_store,
    parse_record,
)
from og_settle.relayer._fleet import EXPIRED_REASON
from tests.relayer.support import (
    OFFLINE_DEPLOYMENT,
    PAY_TO,
    PAYER_KEYS,
    RELAYER_KEY,
    LiveChain,
    cli,
    payment_record,
    read_events,
    spawn_relayer,
    write_jsonl,
)
from tests.support.postgres import PostgresServer

_UNKNOWN = Account.from_key("0x" + "5a" * 32).address


def _upto_record(deployment: Deployment, index: int, facilitator: str, *, now: int, timeout: int) -> dict[str, Any]:
    """A signed upto payment (real Permit2 signature) that only ``facilitator`` may settle."""
    reqs = PaymentRequirements(
        scheme="upto", network=BASE_SEPOLIA_CAIP2, amount=10**15, asset=OPG_ADDRESS, pay_to=PAY_TO,
        max_timeout_seconds=timeout,
        extra={"assetTransferMethod": "permit2", "name": "OPG", "version": "1", "facilitator": facilitator},
    )  # fmt: skip
    payload = create_payment_payload(
        reqs, PAYER_KEYS[index % 3], spender=deployment.payment_facilitator, now=now, nonce=(1 << 220) + index,
        permit2=deployment.permit2,
    )  # fmt: skip
    return {
        "kind": "payment",
        "ref": f"upto-{index}",
        "paymentPayload": payload.to_json(),
        "paymentRequirements": reqs.to_json(),
    }


def _queued(deployment: Deployment, record: dict[str, Any], *, at: int) -> NewItem:
    """The record as intake queued it at time ``at`` (it was valid then)."""
    return parse_record(record, IntakeConfig(deployment=deployment), source="t", now=at)


def _payment_item(n: int, deadline: int) -> NewItem:
    payload = {"payer": "0x" + "77" * 20, "nonce": str(n), "deadline": deadline, "amount": "1"}
    return NewItem(kind=ItemKind.PAYMENT, lane=Lane.PAYMENT, key=n.to_bytes(32, "big"), payload=payload, source="t")


def test_expired_received_payments_fail_and_nothing_else_does(store: QueueStore) -> None:
    now = int(time.time())
    expired, fresh, batched = (
        o.item_id
        for o in store.add_items(
            [_payment_item(1, now - 600), _payment_item(2, now + 600), _payment_item(3, now - 600)]
        )
    )
    store.create_batch(
        Lane.PAYMENT, [batched], root=None, dump_path=None, dump=None
    )  # its holder checks it before sending
    assert store.expire_payments(now - 60, EXPIRED_REASON, now=now) == [expired]
    assert store.expire_payments(now - 60, EXPIRED_REASON, now=now) == []
    assert store.item(expired).state is ItemState.FAILED and store.item(expired).reason == EXPIRED_REASON
    assert store.item(fresh).state is ItemState.RECEIVED
    assert store.item(batched).state is ItemState.BATCHED
    assert store.status().failure_reasons == {EXPIRED_REASON: 1}


def test_expiry_leaves_a_payment_another_instance_claimed(postgres: PostgresServer) -> None:
    """On a shared queue an instance fails only expired payments nobody else holds a live claim on."""
    url = postgres.create_database("expiry")
    a, b = PostgresStore(url, worker="a"), PostgresStore(url, worker="b")
    try:
        now = int(time.time())
        (item,) = (o.item_id for o in a.add_items([_payment_item(1, now - 600)]))
        assert [i.id for i in a.claim_items(Lane.PAYMENT, 10, ttl=0.5)] == [item]
        assert b.expire_payments(now - 60, EXPIRED_REASON, now=time.time()) == []
        assert b.item(item).state is ItemState.RECEIVED
        time.sleep(0.6)  # a's claim runs out: the payment is anyone's again
        assert b.expire_payments(now - 60, EXPIRED_REASON, now=time.time()) == [item]
    finally:
        a.close()
        b.close()


def test_relayer_accounts_are_kept_per_instance_and_submit_checks_upto_payments_against_all(
    tmp_path: Path, queue_db: str
) -> None:
    """Two instances' accounts (and an older og-settle's single ``relayer_address``) are all known; ``relayer submit``
    accepts an upto payment naming either instance and refuses one naming neither."""
    first, second = Account.from_key(RELAYER_KEY).address, Account.create().address
    legacy = Account.create().address
    store = open_store(queue_db)
    try:
        store.record_relayer_account(first, instance="one@host", started_at=1.0)
        store.record_relayer_account(second, instance="two@host", started_at=2.0)
        store.set_meta("relayer_address", legacy)
        assert store.relayer_accounts() == {
            first: {"instance": "one@host", "started_at": 1.0},
            second: {"instance": "two@host", "started_at": 2.0},
            legacy: {},
        }
    finally:
        store.close()
    deployment_path = tmp_path / "deployment.json"
    deployment_path.write_text(OFFLINE_DEPLOYMENT.to_json())
    now = int(time.time())
    records = [
        _upto_record(OFFLINE_DEPLOYMENT, i, who, now=now, timeout=600)
        for i, who in enumerate((first, second, _UNKNOWN))
    ]
    result = cli(
        "relayer",
        "submit",
        "--db",
        queue_db,
        "--deployment",
        str(deployment_path),
        str(write_jsonl(tmp_path / "in.jsonl", records)),
    )
    reports = [json.loads(line) for line in result.stdout.splitlines()][:-1]
    assert [r["status"] for r in reports] == ["accepted", "accepted", "rejected"], result.stdout
    assert reports[2]["reason"] == "upto_facilitator_mismatch" and _UNKNOWN in reports[2]["detail"]


def test_the_relayer_fails_an_unclaimable_expired_upto_payment_and_status_flags_unserved_ones(
    tmp_path: Path, chain: LiveChain, postgres: PostgresServer
) -> None:
    """On a PostgreSQL queue, an upto payment naming an account no instance runs cannot be claimed by any instance.
    Once its deadline has passed, a running instance fails it (``permit2_deadline_expired``) while settling the rest;
    `relayer status` lists the instance's account and warns about a waiting upto payment naming an unknown one."""
    db = postgres.create_database("upto")
    exact = [payment_record(chain.deployment, 70_000 + i) for i in range(2)]
    assert cli("relayer", "submit", "--db", db, "--deployment", str(chain.deployment_path),
               str(write_jsonl(tmp_path / "in.jsonl", exact)), "--quiet").returncode == 0  # fmt: skip
    signed_at = int(time.time()) - 3600
    stale = _upto_record(chain.deployment, 1, _UNKNOWN, now=signed_at, timeout=120)  # deadline an hour ago
    store = open_store(db, create=False)
    try:
        (stale_id,) = (o.item_id for o in store.add_items([_queued(chain.deployment, stale, at=signed_at + 1)]))
    finally:
        store.close()
    log = tmp_path / "relayer.log"
    proc = spawn_relayer(
        db, chain, "--drain", "--exit-when-done", "--poll", "0.05", "--payments-per-tx", "5", log_path=log
    )
    assert proc.wait(timeout=120) == 1, log.read_text()[-3000:]  # an item of this run failed
    (expired,) = [e for e in read_events(log) if e["event"] == "payment.expired"]
    assert expired["items"] == [stale_id]

    # A fresh upto payment for an account no instance has run with waits: status says so.
    fresh = _upto_record(chain.deployment, 2, _UNKNOWN, now=int(time.time()), timeout=3600)
    store = open_store(db, create=False)
    try:
        store.add_items([_queued(chain.deployment, fresh, at=int(time.time()))])
        assert store.item(stale_id).reason == EXPIRED_REASON
    finally:
        store.close()
    body = json.loads(cli("relayer", "status", "--db", db, "--json").stdout)
    assert body["items"] == {"confirmed": 2, "failed": 1, "received": 1}
    assert body["failure_reasons"] == {EXPIRED_REASON: 1}
    relayer = Account.from_key(RELAYER_KEY).address
    assert [r["address"] for r in body["relayers"]] == [relayer]
    assert body["upto_unserved"] == {_UNKNOWN.lower(): 1}
    text = cli("relayer", "status", "--db", db).stdout
    assert f"wait for relayer account {_UNKNOWN.lower()}, which no instance has run with" in text, text
