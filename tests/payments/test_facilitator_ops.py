"""Facilitator operations under real uvicorn (``og-settle facilitator serve`` subprocesses) on the fork: per-key
rate limits and spend quotas (429 with Retry-After, nothing settled), two instances on one real PostgreSQL,
usage totals against the chain's Transfer logs, and receipts checked against the chain alone."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from og_settle._deploy import Deployment
from og_settle._lease import LEASE_DIR_ENV
from og_settle._x402 import PaymentRequirements, create_payment_payload
from tests.payments.test_eip3009_facilitator import PRICE, Body, funded, make_body, usdc_asset
from tests.support.postgres import PostgresServer, postgres_server

__all__ = ["funded", "make_body", "usdc_asset"]  # fixtures shared with test_eip3009_facilitator

KEY = "ops-test-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
AMOUNT = 1_000


def requirements_for(
    deployment: Deployment, asset: str, pay_to: str, chain_id: int, amount: int
) -> PaymentRequirements:
    return PaymentRequirements(
        scheme="exact",
        network=f"eip155:{chain_id}",
        amount=amount,
        asset=asset,
        pay_to=pay_to,
        max_timeout_seconds=3600,
        extra={"assetTransferMethod": "permit2", "spender": deployment.payment_facilitator},
    )


def body(payload: Any, reqs: PaymentRequirements) -> dict[str, Any]:
    return {"x402Version": 2, "paymentPayload": payload.to_json(), "paymentRequirements": reqs.to_json()}


def cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "og_settle.cli", "facilitator", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def add_key(store: str, *limits: str) -> None:
    done = cli(
        "keys", "add", "--store", store, "--name", "merchant", "--key-env", "OPS_KEY", *limits, env={"OPS_KEY": KEY}
    )
    assert done.returncode == 0, done.stderr
    assert KEY not in done.stdout  # a registered key is never echoed


class Serve:
    """``serve(store, *args, signer=relayer) -> url``: ``og-settle facilitator serve`` in a subprocess;
    ``serve.stop(url)`` sends it SIGTERM and checks it stopped cleanly (exit 0, no traceback)."""

    def __init__(self, deployment_file: Path, rpc_url: str, relayer: Any, folder: Path) -> None:
        self.deployment_file, self.rpc_url, self.relayer, self.folder = deployment_file, rpc_url, relayer, folder
        self.running: dict[str, tuple[subprocess.Popen[str], Path]] = {}

    def __call__(self, store: str, *extra: str, signer: Any = None) -> str:
        signer = signer or self.relayer
        env = {**os.environ, "OG_SETTLE_RELAYER_KEY": signer.private_key, LEASE_DIR_ENV: str(self.folder / "leases")}
        argv = [sys.executable, "-m", "og_settle.cli", "facilitator", "serve", "--json", "--store", store]
        argv += ["--deployment", str(self.deployment_file), "--rpc", self.rpc_url, *extra]
        log = self.folder / f"server-{len(self.running)}.log"  # a file: a full stderr pipe would stall the server
        with log.open("w") as err:
            process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, process.wait(timeout=30) and log.read_text()
        url = str(json.loads(line)["url"])
        self.running[url] = (process, log)
        return url

    def stop(self, url: str) -> None:
        process, log = self.running.pop(url)
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(timeout=30) == 0
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        finally:
            assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


@pytest.fixture
def serve(deployment_file: Path, rpc_url: str, relayer: Any, tmp_path: Path) -> Iterator[Serve]:
    servers = Serve(deployment_file, rpc_url, relayer, tmp_path)
    yield servers
    for url in list(servers.running):
        servers.stop(url)


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the one test that needs it (function scope: a wider fixture first requested
    mid-module would make Ape rebase its chain snapshots)."""
    yield from postgres_server()


def post_all(urls: list[str], path: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    """Every body at once, spread over the servers in turn."""

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(limits=limits, timeout=120) as client:
            sends = [client.post(urls[i % len(urls)] + path, json=b, headers=AUTH) for i, b in enumerate(bodies)]
            return await asyncio.gather(*sends)

    return asyncio.run(run())


def test_a_burst_past_the_settle_rate_gets_429_and_settles_nothing(
    serve: Serve, deployment: Deployment, opg: Any, payers: list[Any], payee: Any, chain_id: int, now: int,
    tmp_path: Path, permit2_approved: None,
) -> None:  # fmt: skip
    store = str(tmp_path / "ops.sqlite3")
    add_key(store, "--settle-rps", "1")
    url = serve(store)
    reqs = requirements_for(deployment, opg.address, payee.address, chain_id, AMOUNT)
    bodies = [body(create_payment_payload(reqs, payers[i % 5].private_key, now=now), reqs) for i in range(6)]
    before = opg.balanceOf(payee)

    answers = post_all([url], "/settle", bodies)

    settled = [a for a in answers if a.status_code == 200]
    limited = [(a, b) for a, b in zip(answers, bodies, strict=True) if a.status_code == 429]
    assert limited, [a.status_code for a in answers]
    assert sorted({a.status_code for a in answers}) == [200, 429]
    for answer, _ in limited:
        assert int(answer.headers["Retry-After"]) >= 1
        assert answer.json()["reason"] == "rate_limited"
    assert all(a.json()["success"] for a in settled)
    assert opg.balanceOf(payee) - before == len(settled) * AMOUNT
    # Nothing was sent for a refused payment: its permit is still unspent, so it still verifies.
    checks = [httpx.post(url + "/verify", json=b, headers=AUTH, timeout=60).json() for _, b in limited]
    assert all(c["isValid"] for c in checks), checks
    usage = httpx.get(url + "/usage", headers=AUTH, timeout=30).json()
    assert usage["requests"]["settle"] == {"settled": len(settled), "rate_limited": len(limited)}
    assert usage["requests"]["verify"] == {"valid": len(limited)}
    assert usage["settled"] == [
        {
            "network": f"eip155:{chain_id}",
            "asset": opg.address,
            "payments": len(settled),
            "amount": str(len(settled) * AMOUNT),
        }
    ]


def _quota_run(
    urls: list[str], deployment: Deployment, opg: Any, payers: list[Any], payee: Any, chain_id: int, now: int
) -> tuple[list[httpx.Response], int]:
    reqs = requirements_for(deployment, opg.address, payee.address, chain_id, AMOUNT)
    bodies = [body(create_payment_payload(reqs, payers[i % 5].private_key, now=now), reqs) for i in range(10)]
    before = opg.balanceOf(payee)
    answers = post_all(urls, "/settle", bodies)
    return answers, opg.balanceOf(payee) - before


def test_concurrent_settles_cannot_exceed_a_spend_quota(
    serve: Serve, deployment: Deployment, opg: Any, payers: list[Any], payee: Any, chain_id: int, now: int,
    tmp_path: Path, permit2_approved: None,
) -> None:  # fmt: skip
    store = str(tmp_path / "ops.sqlite3")
    add_key(store, "--quota", f"{opg.address}:{3 * AMOUNT}/day")
    url = serve(store, "--batch-window-ms", "300")
    reqs = requirements_for(deployment, opg.address, payee.address, chain_id, AMOUNT)
    # A payment that fails (its signature is another chain's) reserves, then releases, its charge.
    bad = body(create_payment_payload(reqs, payers[0].private_key, now=now), reqs)
    bad["paymentPayload"]["payload"]["signature"] = "0x" + "11" * 65
    refused = httpx.post(url + "/settle", json=bad, headers=AUTH, timeout=60).json()
    assert refused["success"] is False

    answers, paid = _quota_run([url], deployment, opg, payers, payee, chain_id, now)

    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 3 + [429] * 7, codes
    assert all(a.json()["success"] for a in answers if a.status_code == 200)
    over = [a for a in answers if a.status_code == 429]
    assert {a.json()["reason"] for a in over} == {"over_quota"}
    assert all(1 <= int(a.headers["Retry-After"]) <= 86_400 for a in over)
    assert paid == 3 * AMOUNT


def test_quotas_are_per_asset_whatever_the_transfer_method(
    serve: Serve, deployment: Deployment, opg: Any, usdc: Any, payers: list[Any], payee: Any, chain_id: int,
    now: int, rpc_url: str, tmp_path: Path, make_body: Body, funded: list[Any], permit2_approved: None,
) -> None:  # fmt: skip
    """USDC over EIP-3009 and OPG over Permit2, each with its own quota under one key."""
    store = str(tmp_path / "ops.sqlite3")
    add_key(store, "--quota", f"{usdc.address}:{2 * PRICE}/day", "--quota", f"{opg.address}:{AMOUNT}/day")
    url = serve(store, "--batch-window-ms", "200")
    before = usdc.balanceOf(payee)

    answers = post_all([url], "/settle", [make_body(payers[i].private_key) for i in range(3)])

    assert sorted(a.status_code for a in answers) == [200, 200, 429]
    assert usdc.balanceOf(payee) - before == 2 * PRICE
    receipts = [a.json()["extensions"]["og-settle"]["receipt"] for a in answers if a.status_code == 200]
    assert {r["asset"] for r in receipts} == {usdc.address}
    (tmp_path / "usdc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in receipts))
    checked = cli("receipt", "verify", str(tmp_path / "usdc.jsonl"), "--rpc-url", rpc_url)
    assert checked.returncode == 0 and checked.stdout.count(": ok: ") == 2, checked.stdout + checked.stderr
    # OPG's quota is its own: the USDC spent does not count against it.
    reqs = requirements_for(deployment, opg.address, payee.address, chain_id, AMOUNT)
    opg_bodies = [body(create_payment_payload(reqs, payers[i].private_key, now=now), reqs) for i in range(2)]
    first, second = (httpx.post(url + "/settle", json=b, headers=AUTH, timeout=60) for b in opg_bodies)
    assert first.status_code == 200 and first.json()["success"] is True
    assert second.status_code == 429 and second.json()["reason"] == "over_quota"


def test_two_instances_on_one_postgresql_share_the_quota(
    serve: Serve, postgres: PostgresServer, deployment: Deployment, opg: Any, payers: list[Any], payee: Any,
    stranger: Any, chain_id: int, now: int, permit2_approved: None,
) -> None:  # fmt: skip
    """Two servers, each settling from its own account, on one database: 10 concurrent settles, 4 fit."""
    url = postgres.create_database("ops")
    try:
        add_key(url, "--quota", f"{opg.address}:{4 * AMOUNT}/hour")
        urls = [serve(url, "--batch-window-ms", "200"), serve(url, "--batch-window-ms", "200", signer=stranger)]

        answers, paid = _quota_run(urls, deployment, opg, payers, payee, chain_id, now)

        codes = sorted(a.status_code for a in answers)
        assert codes == [200] * 4 + [429] * 6, codes
        assert paid == 4 * AMOUNT
        senders = {a.json()["transaction"] for a in answers if a.status_code == 200}
        assert senders  # settled on chain
        # Either instance reports the same totals: the usage is in the shared store.
        totals = [httpx.get(u + "/usage", headers=AUTH, timeout=30).json()["settled"] for u in urls]
        assert totals[0] == totals[1] and totals[0][0]["payments"] == 4
    finally:
        postgres.drop_database(url)


def test_usage_totals_and_receipts_match_the_chain_over_300_payments(
    serve: Serve, deployment: Deployment, opg: Any, payers: list[Any], chain: Any, chain_id: int, now: int,
    rpc_url: str, tmp_path: Path, permit2_approved: None,
) -> None:  # fmt: skip
    store = str(tmp_path / "ops.sqlite3")
    add_key(store)
    url = serve(store, "--batch-window-ms", "200", "--max-batch", "50")
    pay_tos = ["0x" + f"{n:040x}" for n in (0xA1, 0xA2, 0xA3)]
    bodies = []
    for i in range(300):
        reqs = requirements_for(deployment, opg.address, pay_tos[i % 3], chain_id, AMOUNT + i)
        bodies.append(body(create_payment_payload(reqs, payers[i % 5].private_key, now=now), reqs))
    start_block = chain.provider.web3.eth.block_number + 1

    answers: list[httpx.Response] = []
    for chunk in range(0, 300, 50):
        answers += post_all([url], "/settle", bodies[chunk : chunk + 50])

    assert [a.status_code for a in answers] == [200] * 300
    assert all(a.json()["success"] for a in answers)
    # The chain's view: every Transfer of OPG to the three payTo addresses since the run began.
    w3 = chain.provider.web3
    topic = w3.keccak(text="Transfer(address,address,uint256)")
    logs = w3.eth.get_logs(
        {"address": opg.address, "fromBlock": start_block, "toBlock": "latest",
         "topics": [topic, None, ["0x" + "00" * 12 + p[2:] for p in pay_tos]]}
    )  # fmt: skip
    on_chain: dict[tuple[str, str], int] = {}
    for log in logs:
        pair = ("0x" + log["topics"][1][-20:].hex(), "0x" + log["topics"][2][-20:].hex())
        on_chain[pair] = on_chain.get(pair, 0) + int.from_bytes(log["data"], "big")
    assert sum(on_chain.values()) == sum(AMOUNT + i for i in range(300))

    usage = httpx.get(url + "/usage", params={"group": "payer,payTo"}, headers=AUTH, timeout=60).json()
    assert usage["requests"]["settle"] == {"settled": 300}
    reported = {(r["payer"].lower(), r["payTo"].lower()): int(r["amount"]) for r in usage["settled"]}
    assert reported == on_chain
    assert sum(r["payments"] for r in usage["settled"]) == 300 == len(logs)

    # The operator's export says the same, as CSV.
    exported = cli("usage", "--store", store, "--group", "payer,payTo", "--format", "csv")
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert {(r["payer"].lower(), r["payTo"].lower()): int(r["amount"]) for r in rows} == on_chain

    # Every receipt holds against the chain alone; each names its own Transfer log.
    receipts = [a.json()["extensions"]["og-settle"]["receipt"] for a in answers]
    assert len({(r["transaction"], r["logIndex"]) for r in receipts}) == 300
    file = tmp_path / "receipts.jsonl"
    file.write_text("".join(json.dumps(r) + "\n" for r in receipts))
    checked = cli("receipt", "verify", str(file), "--rpc-url", rpc_url)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count(": ok: ") == 300
    forged = dict(receipts[0], amount=str(int(receipts[0]["amount"]) + 1))
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps(bodies[0]["paymentPayload"]))
    refused = cli("receipt", "verify", str(tmp_path / "forged.json"), "--rpc-url", rpc_url, "--payload", str(payload))
    assert refused.returncode == 1
    assert "receipt does not hold: logIndex: log" in refused.stdout and "is not" in refused.stdout
    (tmp_path / "first.json").write_text(json.dumps(receipts[0]))
    held = cli("receipt", "verify", str(tmp_path / "first.json"), "--rpc-url", rpc_url, "--payload", str(payload))
    assert held.returncode == 0, held.stdout


def test_usage_cli_bad_input_is_one_line(tmp_path: Path) -> None:
    store = str(tmp_path / "ops.sqlite3")
    add_key(store)
    for argv, message in (
        (["--from", "yesterday"], "from: expected an ISO 8601 date or time"),
        (["--from", "2026-11-29", "--to", "2026-11-28"], "to: 2026-11-28T00:00:00Z is before from"),
        (["--group", "asset"], "group: expected a comma-separated subset of payer, payTo"),
    ):
        done = cli("usage", "--store", store, *argv)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    missing = cli("usage", "--store", str(tmp_path / "nothing.sqlite3"))
    assert missing.returncode == 2 and "no facilitator store at" in missing.stderr
    bad_quota = cli("keys", "set", "--store", store, "--name", "merchant", "--quota", "0x12:5/day")
    assert bad_quota.returncode == 2 and bad_quota.stderr.count("\n") == 1
    (tmp_path / "r.jsonl").write_text('{"kind": "og-settle/receipt/v1"}\nnot json\n')
    bad_receipt = cli("receipt", "verify", str(tmp_path / "r.jsonl"), "--rpc-url", "http://127.0.0.1:9")
    assert bad_receipt.returncode == 2 and "r.jsonl:2: not JSON" in bad_receipt.stderr


def test_verify_rate_verify_auth_and_usage_errors(
    serve: Serve, deployment: Deployment, opg: Any, payers: list[Any], payee: Any, chain_id: int, now: int,
    tmp_path: Path, permit2_approved: None,
) -> None:  # fmt: skip
    store = str(tmp_path / "ops.sqlite3")
    add_key(store, "--verify-rps", "1")
    url = serve(store, "--verify-auth")
    reqs = requirements_for(deployment, opg.address, payee.address, chain_id, AMOUNT)
    sent = body(create_payment_payload(reqs, payers[0].private_key, now=now), reqs)

    anonymous = httpx.post(url + "/verify", json=sent, timeout=30)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    answers = post_all([url], "/verify", [sent] * 5)
    limited = [a for a in answers if a.status_code == 429]
    assert limited and all(a.json()["reason"] == "rate_limited" and int(a.headers["Retry-After"]) >= 1 for a in limited)
    assert all(a.json()["isValid"] for a in answers if a.status_code == 200)

    for params, message in (
        ({"from": "last week"}, "from: expected an ISO 8601 date or time"),
        ({"colour": "red"}, "colour: unknown query parameter"),
        ({"group": "asset"}, "group: expected a comma-separated subset of payer, payTo"),
    ):
        bad = httpx.get(url + "/usage", params=params, headers=AUTH, timeout=30)
        assert bad.status_code == 400 and message in bad.json()["error"], bad.text
    assert httpx.get(url + "/usage", timeout=30).status_code == 401
    usage = httpx.get(url + "/usage", params={"from": "2000-01-01", "to": "2999-01-01"}, headers=AUTH, timeout=30)
    counts = usage.json()["requests"]["verify"]
    assert counts == {"valid": 5 - len(limited), "rate_limited": len(limited)}


def test_a_quota_holds_across_a_restart(
    serve: Serve, deployment: Deployment, opg: Any, payers: list[Any], payee: Any, chain_id: int, now: int,
    tmp_path: Path, permit2_approved: None,
) -> None:  # fmt: skip
    store = str(tmp_path / "ops.sqlite3")
    add_key(store, "--quota", f"{opg.address}:{2 * AMOUNT}/day")
    reqs = requirements_for(deployment, opg.address, payee.address, chain_id, AMOUNT)
    bodies = [body(create_payment_payload(reqs, payers[i].private_key, now=now), reqs) for i in range(3)]
    before = opg.balanceOf(payee)
    url = serve(store)
    assert httpx.post(url + "/settle", json=bodies[0], headers=AUTH, timeout=60).json()["success"] is True
    serve.stop(url)

    url = serve(store)
    assert httpx.post(url + "/settle", json=bodies[1], headers=AUTH, timeout=60).json()["success"] is True
    over = httpx.post(url + "/settle", json=bodies[2], headers=AUTH, timeout=60)
    assert over.status_code == 429 and over.json()["reason"] == "over_quota"
    assert opg.balanceOf(payee) - before == 2 * AMOUNT
