"""The x402 facilitator's ASGI app on the fork: httpx (Starlette's TestClient) against the app, the genuine
Permit2, real settlements. Uvicorn runs (load, slow clients, SIGTERM, restarts) are in test_facilitator_server.py.

Each test builds its own Facilitator (a fresh TxSender, so its local nonce matches the test's snapshot) with the
``relayer`` account's key taken from the environment as the CLI does.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from og_settle._deploy import Deployment
from og_settle._x402 import PaymentPayload, PaymentRequirements, create_payment_payload
from og_settle.cli._keys import account_from_env
from og_settle.clients import make_web3
from og_settle.facilitator import ApiKeys, Facilitator, RequestLog, SqliteSettlementStore, create_app

with warnings.catch_warnings():
    # Starlette 1.x would rather have httpx2; the brief (and the SDK) use httpx, which it still supports.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

KEY_ENV = "OG_SETTLE_TEST_FACILITATOR_KEY"
API_KEY = "test-settle-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
ONE = 10**18


MakeFacilitator = Callable[..., Facilitator]


@pytest.fixture
def make_facilitator(
    deployment: Deployment, rpc_url: str, relayer: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> MakeFacilitator:
    monkeypatch.setenv(KEY_ENV, relayer.private_key)

    def make(**options: Any) -> Facilitator:
        options.setdefault("store", SqliteSettlementStore(tmp_path / "settlements.sqlite3"))
        options.setdefault("receipt_timeout", 20)
        facilitator = Facilitator(deployment, make_web3(rpc_url), account_from_env(KEY_ENV), **options)
        facilitator.check_node()
        return facilitator

    return make


Client = Callable[..., TestClient]


@pytest.fixture
def serve(make_facilitator: MakeFacilitator, tmp_path: Path) -> Iterator[Client]:
    """``serve(**facilitator_options) -> TestClient`` with the app's lifespan running; logs to requests.log."""
    stack: list[Any] = []

    def start(*, api_keys: ApiKeys | None = None, **options: Any) -> TestClient:
        log = (tmp_path / "requests.log").open("a")
        stack.append(log)
        keys = api_keys if api_keys is not None else ApiKeys([API_KEY])
        app = create_app(make_facilitator(**options), api_keys=keys, log=RequestLog(log))
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        stack.append(client)
        return client

    yield start
    for item in reversed(stack):
        if isinstance(item, TestClient):
            item.__exit__(None, None, None)
        else:
            item.close()


@pytest.fixture
def requirements(deployment: Deployment, opg: Any, payee: Any, chain_id: int) -> Callable[..., PaymentRequirements]:
    def make(scheme: str = "exact", amount: int = ONE, **extra: Any) -> PaymentRequirements:
        return PaymentRequirements(
            scheme=scheme,
            network=f"eip155:{chain_id}",
            amount=amount,
            asset=opg.address,
            pay_to=payee.address,
            max_timeout_seconds=3600,
            extra={"assetTransferMethod": "permit2", "spender": deployment.payment_facilitator, **extra},
        )

    return make


def body(payload: PaymentPayload, reqs: PaymentRequirements, **extra: Any) -> dict[str, Any]:
    return {"x402Version": 2, "paymentPayload": payload.to_json(), "paymentRequirements": reqs.to_json(), **extra}


def settle_concurrently(client: TestClient, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """POST every body to /settle at once (one thread each); the answers, in order."""
    answers: dict[int, dict[str, Any]] = {}

    def settle(i: int) -> None:
        answers[i] = client.post("/settle", json=bodies[i], headers=AUTH).json()

    threads = [threading.Thread(target=settle, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return [answers[i] for i in range(len(bodies))]


@pytest.fixture
def stock(opg: Any, payee: Any, chain_id: int) -> Callable[..., PaymentRequirements]:
    """Requirements as a stock resource server builds them: no extra.spender, so clients sign for the proxy."""

    def make(scheme: str, amount: int, **extra: Any) -> PaymentRequirements:
        return PaymentRequirements(
            scheme=scheme,
            network=f"eip155:{chain_id}",
            amount=amount,
            asset=opg.address,
            pay_to=payee.address,
            max_timeout_seconds=600,
            extra={"assetTransferMethod": "permit2", "name": "OpenGradient", "version": "1", **extra},
        )

    return make


@pytest.fixture
def funded(permit2_approved: None) -> None:
    """Payers hold OPG and approved Permit2 (the conftest's idempotent set-up)."""


def test_supported_and_health_are_open(serve: Client, deployment: Deployment, relayer: Any, chain_id: int) -> None:
    client = serve()
    answer = client.get("/supported")
    assert answer.status_code == 200
    network = f"eip155:{chain_id}"
    exact, upto = answer.json()["kinds"]
    assets = exact["extra"].pop("assets")  # the configured tokens: OPG (Permit2), USDC (EIP-3009 and Permit2)
    assert exact == {
        "x402Version": 2,
        "scheme": "exact",
        "network": network,
        "extra": {"assetTransferMethod": "permit2", "paymentFacilitator": deployment.payment_facilitator},
    }
    assert [(a["symbol"], a["transferMethods"]) for a in assets] == [
        ("OPG", ["permit2"]),
        ("USDC", ["eip3009", "permit2"]),
    ]
    assert upto["scheme"] == "upto" and upto["network"] == network
    # Without a StockPaymentBatcher, the upto settler is this server's account.
    assert upto["extra"]["facilitatorAddress"] == relayer.address
    assert answer.json()["extensions"] == ["eip2612GasSponsoring"]  # gasless Permit2 approval (EIP-2612)
    assert answer.json()["signers"] == {"eip155:*": [relayer.address]}
    assert client.get("/health").json() == {"status": "ok", "network": network}


def test_verify_then_settle_once_and_replay_answers_the_original_transaction(
    serve: Client,
    requirements: Any,
    payer: Any,
    payee: Any,
    relayer: Any,
    opg: Any,
    now: int,
    chain: Any,
    funded: None,
) -> None:
    """A valid payment settles once; the same /settle again answers the first transaction and sends nothing."""
    client = serve()
    reqs = requirements(amount=2 * ONE)
    payload = create_payment_payload(reqs, payer.private_key, now=now)
    payment_id = "0x" + payload.payload.authorization.digest(int(reqs.chain_id)).hex()
    extensions = {"og-settle": {"paymentId": payment_id}}  # the id the status route takes
    answer = client.post("/verify", json=body(payload, reqs))
    assert (answer.status_code, answer.json()) == (
        200,
        {"isValid": True, "payer": payer.address, "extensions": extensions},
    )

    payee_before, payer_before = opg.balanceOf(payee), opg.balanceOf(payer)
    first = client.post("/settle", json=body(payload, reqs), headers=AUTH).json()
    assert first["success"] is True, first
    assert first["payer"] == payer.address and "amount" not in first  # an exact success carries no amount
    assert first["network"] == reqs.network and len(first["transaction"]) == 66
    assert first["extensions"] == extensions
    assert opg.balanceOf(payee) - payee_before == 2 * ONE
    assert payer_before - opg.balanceOf(payer) == 2 * ONE

    sent_before = chain.provider.web3.eth.get_transaction_count(relayer.address)
    again = client.post("/settle", json=body(payload, reqs), headers=AUTH).json()
    assert again == first
    assert chain.provider.web3.eth.get_transaction_count(relayer.address) == sent_before
    assert opg.balanceOf(payee) - payee_before == 2 * ONE
    answer = client.post("/verify", json=body(payload, reqs)).json()
    assert answer["isValid"] is False and answer["invalidReason"] == "permit2_invalid_nonce"
    assert "already used" in answer["invalidMessage"]

    status = client.get(f"/settle/status/{first['transaction']}", headers=AUTH).json()
    assert status["settlements"] == [first]
    assert client.get(f"/settle/status/{payment_id}", headers=AUTH).json() == status


def test_settle_requires_a_bearer_key(
    serve: Client,
    requirements: Any,
    payer: Any,
    payee: Any,
    relayer: Any,
    opg: Any,
    now: int,
    chain: Any,
    funded: None,
) -> None:
    """M-1: /settle is not open. Without a valid key nothing is verified, sent or paid; /verify stays open."""
    client = serve()
    reqs = requirements()
    payload = create_payment_payload(reqs, payer.private_key, now=now)
    sent_before = chain.provider.web3.eth.get_transaction_count(relayer.address)
    before = opg.balanceOf(payee)
    for headers in ({}, {"Authorization": "Bearer wrong-key-0123456789"}, {"Authorization": API_KEY}):
        answer = client.post("/settle", json=body(payload, reqs), headers=headers)
        assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Bearer")
        assert "Bearer" in answer.json()["error"]
    assert client.get("/settle/status/0x" + "00" * 32).status_code == 401
    assert chain.provider.web3.eth.get_transaction_count(relayer.address) == sent_before
    assert opg.balanceOf(payee) == before
    assert client.post("/verify", json=body(payload, reqs)).json()["isValid"] is True
    assert client.post("/settle", json=body(payload, reqs), headers=AUTH).json()["success"] is True


def test_upto_charges_the_settle_time_requirements_amount(
    serve: Client,
    requirements: Any,
    payers: list[Any],
    payee: Any,
    relayer: Any,
    opg: Any,
    now: int,
    funded: None,
) -> None:
    """upto as the SDK does it: /verify with the maximum, /settle with paymentRequirements.amount = the charge."""
    client = serve()
    maximum = requirements("upto", 3 * ONE, facilitator=relayer.address)
    payload = create_payment_payload(maximum, payers[1].private_key, now=now)
    assert client.post("/verify", json=body(payload, maximum)).json()["isValid"] is True

    over = client.post("/settle", json=body(payload, requirements("upto", 4 * ONE)), headers=AUTH).json()
    assert over["success"] is False and over["transaction"] == ""
    assert over["errorReason"] == "invalid_upto_evm_payload_settlement_exceeds_amount" and over["errorMessage"]

    before = opg.balanceOf(payee)
    charged = client.post("/settle", json=body(payload, requirements("upto", ONE)), headers=AUTH).json()
    assert charged["success"] is True and charged["amount"] == str(ONE), charged
    assert opg.balanceOf(payee) - before == ONE
    # The same permit cannot be charged again for another amount.
    other = client.post("/settle", json=body(payload, requirements("upto", 2 * ONE)), headers=AUTH).json()
    assert other["success"] is False and other["errorReason"] == "permit2_invalid_nonce"
    assert opg.balanceOf(payee) - before == ONE


def test_zero_upto_is_a_success_that_sends_nothing(
    serve: Client,
    requirements: Any,
    payers: list[Any],
    relayer: Any,
    now: int,
    chain: Any,
    permit2: Any,
    funded: None,
) -> None:
    client = serve()
    maximum = requirements("upto", 3 * ONE, facilitator=relayer.address)
    payload = create_payment_payload(maximum, payers[2].private_key, now=now)
    sent_before = chain.provider.web3.eth.get_transaction_count(relayer.address)
    answer = client.post("/settle", json=body(payload, requirements("upto", 0)), headers=AUTH).json()
    assert answer.pop("extensions")["og-settle"]["paymentId"].startswith("0x")
    assert answer == {
        "success": True,
        "payer": payers[2].address,
        "transaction": "",
        "network": maximum.network,
        "amount": "0",
    }
    assert chain.provider.web3.eth.get_transaction_count(relayer.address) == sent_before
    auth = payload.payload.authorization
    assert (permit2.nonceBitmap(auth.owner, auth.nonce >> 8) >> (auth.nonce & 0xFF)) & 1 == 0


def test_upto_naming_another_settler_is_refused(
    serve: Client, requirements: Any, payers: list[Any], stranger: Any, now: int, funded: None
) -> None:
    client = serve()
    reqs = requirements("upto", ONE)
    other = create_payment_payload(reqs, payers[2].private_key, facilitator=stranger.address, now=now)
    answer = client.post("/verify", json=body(other, reqs)).json()
    assert answer["isValid"] is False and answer["invalidReason"] == "upto_facilitator_mismatch"
    answer = client.post("/settle", json=body(other, reqs), headers=AUTH).json()
    assert answer["success"] is False and answer["errorReason"] == "upto_facilitator_mismatch"


def test_rejections_are_x402_answers_and_only_non_json_is_http_400(
    serve: Client, requirements: Any, payer: Any, stranger: Any, now: int, funded: None
) -> None:
    client = serve()
    reqs = requirements()
    payload = create_payment_payload(reqs, payer.private_key, now=now)
    good = body(payload, reqs)

    def verify(data: Any) -> dict[str, Any]:
        answer = client.post("/verify", json=data)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    broken = json.loads(json.dumps(good))
    del broken["paymentRequirements"]["payTo"]
    assert verify(broken) == {
        "isValid": False,
        "invalidReason": "invalid_payload",
        "invalidMessage": "paymentRequirements.payTo: missing",
    }
    broken = json.loads(json.dumps(good))
    broken["paymentPayload"]["payload"]["permit2Authorization"]["nonce"] = "many"
    answer = verify(broken)
    assert answer["invalidReason"] == "invalid_payload" and "nonce" in answer["invalidMessage"]
    assert verify([1, 2])["invalidReason"] == "invalid_payload"
    assert verify({k: v for k, v in good.items() if k != "paymentPayload"})["invalidMessage"] == (
        "paymentPayload: missing"
    )
    assert verify({**good, "x402Version": 1})["invalidReason"] == "invalid_x402_version"
    wrong_network = body(payload, PaymentRequirements.from_json({**reqs.to_json(), "network": "eip155:1"}))
    assert verify(wrong_network)["invalidReason"] == "invalid_network"
    elsewhere = create_payment_payload(reqs, payer.private_key, spender=stranger.address, now=now)
    answer = verify(body(elsewhere, reqs))
    assert answer["invalidReason"] == "invalid_permit2_spender" and stranger.address in answer["invalidMessage"]

    settle = client.post("/settle", json=broken, headers=AUTH)
    assert settle.status_code == 200
    answer = settle.json()
    assert answer.pop("errorMessage").startswith("paymentPayload.payload.permit2Authorization.nonce")
    assert answer == {"success": False, "errorReason": "invalid_payload", "transaction": "", "network": reqs.network}

    answer = client.post("/verify", content=b'{"x402Version": 2, ')
    assert answer.status_code == 400 and answer.json()["error"].startswith("body: not valid JSON")
    answer = client.post("/verify", content=b" " * (64 * 1024 + 1))
    assert answer.status_code == 413 and "limit" in answer.json()["error"]
    answer = client.post("/nowhere", json=good)
    assert answer.status_code == 404 and "/nowhere" in answer.json()["error"]
    assert client.get("/verify").status_code == 405


def test_pay_to_allow_list(
    serve: Client, requirements: Any, payer: Any, payee: Any, stranger: Any, now: int, funded: None
) -> None:
    client = serve(pay_to_allowlist=[stranger.address])
    reqs = requirements()
    payload = create_payment_payload(reqs, payer.private_key, now=now)
    answer = client.post("/verify", json=body(payload, reqs)).json()
    assert answer["isValid"] is False and answer["invalidReason"] == "pay_to_not_allowed"
    assert payee.address in answer["invalidMessage"]


def test_late_receipt_answers_settlement_pending_then_resolves(
    serve: Client,
    requirements: Any,
    payers: list[Any],
    payee: Any,
    opg: Any,
    now: int,
    chain: Any,
    funded: None,
) -> None:
    """With mining paused, /settle answers settlement_pending with the hash; after a block, the identical call
    and the status route answer the same transaction as settled, and the payment moved once."""
    client = serve(receipt_timeout=1.0)
    reqs = requirements()
    payload = create_payment_payload(reqs, payers[3].private_key, now=now)
    web3 = chain.provider.web3
    before = opg.balanceOf(payee)
    web3.provider.make_request("evm_setAutomine", [False])
    try:
        pending = client.post("/settle", json=body(payload, reqs), headers=AUTH).json()
        assert pending["success"] is False and pending["errorReason"] == "settlement_pending", pending
        assert len(pending["transaction"]) == 66
        status = client.get(f"/settle/status/{pending['transaction']}", headers=AUTH).json()
        assert status["settlements"][0]["errorReason"] == "settlement_pending"
        web3.provider.make_request("evm_mine", [])
    finally:
        web3.provider.make_request("evm_setAutomine", [True])
    settled = client.post("/settle", json=body(payload, reqs), headers=AUTH).json()
    assert settled["success"] is True and settled["transaction"] == pending["transaction"], settled
    assert opg.balanceOf(payee) - before == ONE
    status = client.get(f"/settle/status/{pending['transaction']}", headers=AUTH).json()
    assert status["settlements"] == [settled]


def test_batch_window_gathers_concurrent_settlements_into_one_transaction(
    serve: Client, requirements: Any, payers: list[Any], payee: Any, opg: Any, now: int, funded: None
) -> None:
    """Four concurrent /settle calls within the window share one settleBatch transaction; each gets its own
    answer, and a bad item (a spent nonce) fails alone."""
    client = serve(batch_window=0.5)
    reqs = requirements()
    payloads = [create_payment_payload(reqs, p.private_key, now=now) for p in payers[:4]]
    before = opg.balanceOf(payee)
    answers = settle_concurrently(client, [body(p, reqs) for p in payloads])
    assert all(answer["success"] for answer in answers), answers
    assert len({answer["transaction"] for answer in answers}) == 1
    assert [answer["payer"] for answer in answers] == [p.address for p in payers[:4]]
    assert opg.balanceOf(payee) - before == 4 * ONE


def test_request_log_is_one_json_line_per_request_with_iso_time(
    serve: Client, requirements: Any, payer: Any, now: int, tmp_path: Path, funded: None
) -> None:
    client = serve()
    reqs = requirements()
    client.post("/verify", json=body(create_payment_payload(reqs, payer.private_key, now=now), reqs))
    client.get("/health")
    lines = [json.loads(line) for line in (tmp_path / "requests.log").read_text().splitlines()]
    requests = [line for line in lines if line["event"] == "http.request"]
    assert [(r["method"], r["path"], r["status"]) for r in requests] == [
        ("POST", "/verify", 200),
        ("GET", "/health", 200),
    ]
    assert requests[0]["isValid"] is True and requests[0]["time"].endswith("Z") and "T" in requests[0]["time"]


def test_stock_payloads_settle_through_the_canonical_proxies(
    serve: Client,
    stock: Callable[..., PaymentRequirements],
    opg: Any,
    payee: Any,
    payers: list[Any],
    relayer: Any,
    chain_id: int,
    now: int,
    funded: None,
) -> None:
    """Payloads signed as every stock client signs them (spender = the canonical x402 proxy) verify and settle:
    exact for the permitted amount, upto for the settle-time paymentRequirements.amount; /supported's upto
    facilitatorAddress is the account the upto proxy accepts as witness.facilitator."""
    from og_settle._networks import X402_EXACT_PERMIT2_PROXY, X402_UPTO_PERMIT2_PROXY

    client = serve()
    settler = client.get("/supported").json()["kinds"][1]["extra"]["facilitatorAddress"]

    exact = stock("exact", ONE)
    payload = create_payment_payload(exact, payers[0].private_key, now=now)
    assert payload.payload.authorization.spender == X402_EXACT_PERMIT2_PROXY
    assert client.post("/verify", json=body(payload, exact)).json()["isValid"] is True
    before = opg.balanceOf(payee)
    answer = client.post("/settle", json=body(payload, exact), headers=AUTH).json()
    assert answer["success"] is True and "amount" not in answer, answer
    assert opg.balanceOf(payee) - before == ONE

    maximum = stock("upto", 5 * ONE, facilitatorAddress=settler)
    payload = create_payment_payload(maximum, payers[1].private_key, now=now)
    assert payload.payload.authorization.spender == X402_UPTO_PERMIT2_PROXY
    assert payload.payload.authorization.facilitator == relayer.address
    assert client.post("/verify", json=body(payload, maximum)).json()["isValid"] is True
    charge = dataclasses.replace(maximum, amount=2 * ONE)
    answer = client.post("/settle", json=body(payload, charge), headers=AUTH).json()
    assert answer["success"] is True and answer["amount"] == str(2 * ONE), answer
    assert opg.balanceOf(payee) - before == 3 * ONE
    again = client.post("/settle", json=body(payload, charge), headers=AUTH).json()
    assert again == answer and opg.balanceOf(payee) - before == 3 * ONE


def test_stock_payloads_batch_through_the_stock_payment_batcher(
    serve: Client,
    stock: Callable[..., PaymentRequirements],
    deployment: Deployment,
    rpc_url: str,
    opg: Any,
    payee: Any,
    payers: list[Any],
    chain_id: int,
    now: int,
    funded: None,
) -> None:
    """With the StockPaymentBatcher route, /supported announces the batcher as upto facilitatorAddress,
    concurrent stock settlements within the window share one batcher transaction (each caller its own answer),
    and an upto payment bound to the batcher settles its settle-time charge."""
    from og_settle.facilitator._stock import stock_route

    route = stock_route(make_web3(rpc_url), deployment.stock_payment_batcher, chain_id)
    client = serve(stock=route, batch_window=0.5)
    upto_kind = client.get("/supported").json()["kinds"][1]
    assert upto_kind["extra"]["facilitatorAddress"] == deployment.stock_payment_batcher

    exact = stock("exact", ONE)
    payloads = [create_payment_payload(exact, p.private_key, now=now) for p in payers[:3]]
    before = opg.balanceOf(payee)
    answers = settle_concurrently(client, [body(p, exact) for p in payloads])
    assert all(answer["success"] for answer in answers), answers
    assert len({answer["transaction"] for answer in answers}) == 1
    assert opg.balanceOf(payee) - before == 3 * ONE

    maximum = stock("upto", 4 * ONE, facilitatorAddress=deployment.stock_payment_batcher)
    payload = create_payment_payload(maximum, payers[3].private_key, now=now)
    assert client.post("/verify", json=body(payload, maximum)).json()["isValid"] is True
    answer = client.post("/settle", json=body(payload, dataclasses.replace(maximum, amount=ONE)), headers=AUTH).json()
    assert answer["success"] is True and answer["amount"] == str(ONE), answer
    assert opg.balanceOf(payee) - before == 4 * ONE


def test_an_intent_written_before_a_crash_is_sent_and_answered_after_it(
    serve: Client,
    make_facilitator: MakeFacilitator,
    requirements: Any,
    payers: list[Any],
    payee: Any,
    opg: Any,
    now: int,
    funded: None,
) -> None:
    """A crash between writing the intent and broadcasting leaves a signed transaction in the store; the next
    identical /settle sends those very bytes (not a second payment) and answers with their hash."""
    from og_settle.facilitator import SettlementJob

    reqs = requirements()
    payload = create_payment_payload(reqs, payers[4].private_key, now=now)
    crashed = make_facilitator()  # the process that wrote its intent and died before broadcasting
    auth = payload.payload.authorization
    job = SettlementJob(
        key="0x" + auth.digest(crashed.chain_id, crashed.permit2).hex(),
        payload=payload,
        amount=auth.amount,
        route="facilitator",
        network=crashed.network,
    )
    call = crashed.client.settle_call(auth.payment_args(payload.payload.signature))
    signed = crashed.engine.sender.sign(call, nonce=crashed.engine.sender.next_nonce())
    crashed.store.put_submitted([job.record("0x" + signed.tx_hash.hex(), signed.raw)])
    crashed.store.close()

    before = opg.balanceOf(payee)
    client = serve()  # the restarted server, on the same store file
    answer = client.post("/settle", json=body(payload, reqs), headers=AUTH).json()
    assert answer["success"] is True and answer["transaction"] == "0x" + signed.tx_hash.hex(), answer
    assert opg.balanceOf(payee) - before == ONE


def test_a_payer_cannot_settle_its_own_upto_payment_for_one_wei(
    serve: Client, requirements: Any, payers: list[Any], payee: Any, relayer: Any, opg: Any, now: int, funded: None
) -> None:
    """M-1's first attack: the payer, holding its own signed upto payload, asks /settle to charge 1 wei. Without
    the resource server's key it is refused and nothing moves; the merchant's own settle then charges in full."""
    client = serve()
    maximum = requirements("upto", 3 * ONE, facilitator=relayer.address)
    payload = create_payment_payload(maximum, payers[0].private_key, now=now)
    before = opg.balanceOf(payee)
    attack = client.post("/settle", json=body(payload, requirements("upto", 1)))
    assert attack.status_code == 401 and opg.balanceOf(payee) == before
    merchant = client.post("/settle", json=body(payload, requirements("upto", 3 * ONE)), headers=AUTH).json()
    assert merchant["success"] is True and merchant["amount"] == str(3 * ONE), merchant
    assert opg.balanceOf(payee) - before == 3 * ONE
