"""The x402 facilitator HTTP server on the fork: real HTTP over loopback, the genuine Permit2, real settlements.

Each test starts a server on port 0 in a thread, pointed at the fork's RPC, with the contracts deployed through
``og_settle._deploy.deploy`` and the ``relayer`` account's key taken from the environment as the CLI does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from og_settle._deploy import Deployment, deploy
from og_settle._x402 import PaymentPayload, PaymentRequirements, create_payment_payload
from og_settle.cli._facilitator import _account
from og_settle.clients import make_web3
from og_settle.facilitator import Facilitator, FacilitatorServer, RequestLog
from scripts.deploy import ApeSender

KEY_ENV = "OG_SETTLE_TEST_FACILITATOR_KEY"
ONE = 10**18

Post = Callable[..., tuple[int, Any]]


@pytest.fixture(scope="module")
def deployment_file(
    deployer: Any,
    tmp_path_factory: pytest.TempPathFactory,
    payers: list[Any],
    payer: Any,
    payee: Any,
    stranger: Any,
    relayer: Any,
    opg: Any,
    chain_id: int,
) -> Path:
    """Deployed once per module; it also pulls in every wider-scoped fixture the tests use, so that they all
    set up before the first test's snapshot (Ape's isolation wants wider scopes first)."""
    out_dir = tmp_path_factory.mktemp("deployments")
    deployed = deploy(ApeSender(deployer), out_dir=out_dir)
    return out_dir / f"{deployed.chain_id}.json"


@pytest.fixture
def deployment(deployment_file: Path) -> Deployment:
    return Deployment.from_json(deployment_file.read_text())


@pytest.fixture
def rpc_url(chain: Any) -> str:
    return str(chain.provider.http_uri)


@pytest.fixture
def server(
    deployment: Deployment, rpc_url: str, relayer: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[FacilitatorServer]:
    """A facilitator for this test (a fresh TxSender, so its local nonce matches the test's snapshot)."""
    monkeypatch.setenv(KEY_ENV, relayer.private_key)
    facilitator = Facilitator(deployment, make_web3(rpc_url), _account(KEY_ENV), receipt_timeout=20)
    facilitator.check_node()
    log_path = tmp_path / "requests.log"
    with log_path.open("w") as log:
        httpd = FacilitatorServer(facilitator, "127.0.0.1", 0, log=RequestLog(log))
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield httpd
        finally:
            httpd.shutdown()
            httpd.server_close()
            thread.join(timeout=10)


def request(url: str, *, data: bytes | None = None, method: str | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture
def post(server: FacilitatorServer) -> Post:
    def send(path: str, body: Any = None, *, raw: bytes | None = None) -> tuple[int, Any]:
        return request(server.url + path, data=raw if raw is not None else json.dumps(body).encode(), method="POST")

    return send


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


@pytest.fixture
def funded(permit2_approved: None) -> None:
    """Payers hold OPG and approved Permit2 (the conftest's idempotent set-up)."""


def test_supported_lists_exact_and_upto_on_the_deployment_chain(
    server: FacilitatorServer, deployment: Deployment, relayer: Any, chain_id: int
) -> None:
    status, answer = request(server.url + "/supported")
    assert status == 200
    extra = {
        "assetTransferMethod": "permit2",
        "spender": deployment.payment_facilitator,
        "facilitator": relayer.address,
    }
    assert answer["kinds"] == [
        {"x402Version": 2, "scheme": "exact", "network": f"eip155:{chain_id}", "extra": extra},
        {"x402Version": 2, "scheme": "upto", "network": f"eip155:{chain_id}", "extra": extra},
    ]


def test_verify_valid_then_settle_moves_opg_exactly_once(
    post: Post, requirements: Any, payer: Any, payee: Any, opg: Any, now: int, funded: None
) -> None:
    """A valid payment settles once (payee +amount, payer -amount); replaying it fails on the spent nonce."""
    reqs = requirements(amount=2 * ONE)
    payload = create_payment_payload(reqs, payer.private_key, now=now)
    status, answer = post("/verify", body(payload, reqs))
    assert (status, answer) == (200, {"isValid": True, "payer": payer.address})

    payee_before, payer_before = opg.balanceOf(payee), opg.balanceOf(payer)
    status, answer = post("/settle", body(payload, reqs))
    assert status == 200 and answer["success"] is True, answer
    assert answer["payer"] == payer.address and answer["amount"] == str(2 * ONE)
    assert answer["network"] == reqs.network and answer["transaction"].startswith("0x")
    assert len(answer["transaction"]) == 66
    assert opg.balanceOf(payee) - payee_before == 2 * ONE
    assert payer_before - opg.balanceOf(payer) == 2 * ONE

    status, again = post("/settle", body(payload, reqs))
    assert status == 200
    assert again == {
        "success": False,
        "errorReason": "permit2_invalid_nonce",
        "payer": payer.address,
        "transaction": "",
        "network": reqs.network,
    }
    assert opg.balanceOf(payee) - payee_before == 2 * ONE
    status, answer = post("/verify", body(payload, reqs))
    assert answer == {"isValid": False, "invalidReason": "permit2_invalid_nonce", "payer": payer.address}


def test_verify_rejects_expired_and_wrong_spender(
    post: Post, requirements: Any, payer: Any, stranger: Any, now: int, funded: None
) -> None:
    reqs = requirements()
    expired = create_payment_payload(reqs, payer.private_key, now=now - 7200)  # deadline = now - 3600
    status, answer = post("/verify", body(expired, reqs))
    assert (status, answer) == (
        200,
        {"isValid": False, "invalidReason": "permit2_deadline_expired", "payer": payer.address},
    )

    elsewhere = create_payment_payload(reqs, payer.private_key, spender=stranger.address, now=now)
    status, answer = post("/verify", body(elsewhere, reqs))
    assert answer == {"isValid": False, "invalidReason": "invalid_permit2_spender", "payer": payer.address}
    status, answer = post("/settle", body(elsewhere, reqs))
    assert answer["success"] is False and answer["errorReason"] == "invalid_permit2_spender"


def test_settlement_revert_maps_to_its_reason_code(
    post: Post,
    requirements: Any,
    payers: list[Any],
    payee: Any,
    opg: Any,
    chain: Any,
    funded: None,
    tmp_path: Path,
) -> None:
    """A payment valid at the latest block but expired by the next one: /verify accepts it, the chain's revert
    (Permit2 SignatureExpired / PaymentExpired) comes back as permit2_deadline_expired and nothing moves."""
    latest = int(chain.blocks.head.timestamp)
    reqs = requirements()
    payload = create_payment_payload(reqs, payers[3].private_key, now=latest - 3600)  # deadline == latest
    status, answer = post("/verify", body(payload, reqs))
    assert (status, answer["isValid"]) == (200, True)
    chain.pending_timestamp = latest + 60
    before = opg.balanceOf(payee)
    status, answer = post("/settle", body(payload, reqs))
    assert (status, answer["success"], answer["errorReason"]) == (200, False, "permit2_deadline_expired")
    assert opg.balanceOf(payee) == before
    chain.mine()
    logged = [json.loads(line) for line in (tmp_path / "requests.log").read_text().splitlines()]
    assert logged[-1]["path"] == "/settle" and logged[-1]["revert"].startswith(("PaymentExpired", "SignatureExpired"))


def test_upto_settles_the_requested_amount_and_only_for_this_relayer(
    post: Post,
    requirements: Any,
    payers: list[Any],
    payer: Any,
    payee: Any,
    relayer: Any,
    stranger: Any,
    opg: Any,
    now: int,
    funded: None,
) -> None:
    """upto: the top-level amount (<= permitted) is what moves; a payment naming another settler is refused."""
    reqs = requirements("upto", 3 * ONE, facilitator=relayer.address)
    payload = create_payment_payload(reqs, payers[1].private_key, now=now)
    status, answer = post("/settle", body(payload, reqs, amount=str(4 * ONE)))
    assert answer["success"] is False and answer["errorReason"] == "permit2_amount_mismatch"

    before = opg.balanceOf(payee)
    status, answer = post("/settle", body(payload, reqs, amount=str(ONE)))
    assert answer["success"] is True and answer["amount"] == str(ONE), answer
    assert opg.balanceOf(payee) - before == ONE

    other = create_payment_payload(reqs, payers[2].private_key, facilitator=stranger.address, now=now)
    status, answer = post("/verify", body(other, reqs))
    assert status == 200 and answer["isValid"] is False and answer["invalidReason"] == "invalid_permit2_facilitator"


def test_bad_requests_name_the_problem(
    server: FacilitatorServer, post: Post, requirements: Any, payer: Any, now: int
) -> None:
    reqs = requirements()
    payload = create_payment_payload(reqs, payer.private_key, now=now)
    good = body(payload, reqs)

    status, answer = post("/verify", raw=b'{"x402Version": 2, ')
    assert status == 400 and answer["error"].startswith("body: not valid JSON")
    status, answer = post("/verify", [1, 2])
    assert status == 400 and "expected a JSON object" in answer["error"]
    status, answer = post("/settle", {k: v for k, v in good.items() if k != "paymentRequirements"})
    assert (status, answer) == (400, {"error": "paymentRequirements: missing"})
    broken = json.loads(json.dumps(good))
    del broken["paymentRequirements"]["payTo"]
    status, answer = post("/verify", broken)
    assert (status, answer) == (400, {"error": "paymentRequirements.payTo: missing"})
    broken = json.loads(json.dumps(good))
    broken["paymentPayload"]["payload"]["permit2Authorization"]["nonce"] = "many"
    status, answer = post("/verify", broken)
    assert status == 400 and "nonce" in answer["error"]
    status, answer = post("/settle", {**good, "amount": "-1"})
    assert status == 400 and answer["error"].startswith("amount")

    status, answer = post("/verify", raw=b" " * (64 * 1024 + 1))
    assert status == 413 and "limit" in answer["error"]
    status, answer = post("/nowhere", good)
    assert status == 404 and "/nowhere" in answer["error"]
    status, answer = request(server.url + "/verify")
    assert status == 405
    status, answer = post("/verify", {**good, "x402Version": 1})
    assert (status, answer) == (200, {"isValid": False, "invalidReason": "invalid_x402_version"})


def test_cli_serves_until_sigterm(deployment_file: Path, rpc_url: str, relayer: Any) -> None:
    """``og-settle facilitator serve --json`` prints its URL, answers, and exits 0 on SIGTERM."""
    env = {**os.environ, "OG_SETTLE_RELAYER_KEY": relayer.private_key}
    argv = [sys.executable, "-m", "og_settle.cli", "facilitator", "serve", "--json"]
    argv += ["--deployment", str(deployment_file), "--rpc", rpc_url]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        start = json.loads(process.stdout.readline())
        assert start["url"].startswith("http://127.0.0.1:") and start["facilitator"] == relayer.address
        status, answer = request(start["url"] + "/supported")
        assert status == 200 and len(answer["kinds"]) == 2
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        log = [json.loads(line) for line in process.communicate(timeout=5)[1].splitlines()]
        assert {"event": "http.request", "method": "GET", "path": "/supported", "status": 200}.items() <= log[0].items()
        assert log[-1]["event"] == "facilitator.stop"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
