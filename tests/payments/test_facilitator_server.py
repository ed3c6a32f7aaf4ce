"""The facilitator under real uvicorn on 127.0.0.1, port 0: load, slow clients, SIGTERM, restarts, signer leases.

Correctness only; throughput figures belong to ``make bench``. The CLI runs as a subprocess (``og-settle
facilitator serve``) against the fork's RPC, the way an operator runs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from web3.exceptions import TransactionNotFound

from og_settle._deploy import Deployment
from og_settle._lease import LEASE_DIR_ENV, SignerLease
from og_settle._x402 import PaymentRequirements, create_payment_payload
from og_settle.clients import make_web3
from og_settle.facilitator import Facilitator, FacilitatorServer, RequestLog, bind, create_app

API_KEY = "server-test-key-0123456789"
ONE = 10**18


@pytest.fixture
def requirements(deployment: Deployment, opg: Any, payee: Any, chain_id: int) -> PaymentRequirements:
    return PaymentRequirements(
        scheme="exact",
        network=f"eip155:{chain_id}",
        amount=ONE,
        asset=opg.address,
        pay_to=payee.address,
        max_timeout_seconds=3600,
        extra={"assetTransferMethod": "permit2", "spender": deployment.payment_facilitator},
    )


def body(payload: Any, reqs: PaymentRequirements) -> dict[str, Any]:
    return {"x402Version": 2, "paymentPayload": payload.to_json(), "paymentRequirements": reqs.to_json()}


@pytest.fixture
def lease_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "leases"
    monkeypatch.setenv(LEASE_DIR_ENV, str(folder))
    return folder


Start = Callable[..., tuple[subprocess.Popen[str], dict[str, Any]]]


@pytest.fixture
def start_cli(deployment_file: Path, rpc_url: str, relayer: Any, lease_dir: Path, tmp_path: Path) -> Iterator[Start]:
    """``start(*extra_args) -> (process, start line)``: ``og-settle facilitator serve --json`` in a subprocess."""
    processes: list[subprocess.Popen[str]] = []

    def start(*extra: str, expect_start: bool = True) -> tuple[subprocess.Popen[str], dict[str, Any]]:
        env = {
            **os.environ,
            "OG_SETTLE_RELAYER_KEY": relayer.private_key,
            "OG_SETTLE_TEST_API_KEYS": API_KEY,
            LEASE_DIR_ENV: str(lease_dir),
        }
        argv = [sys.executable, "-m", "og_settle.cli", "facilitator", "serve", "--json"]
        argv += ["--deployment", str(deployment_file), "--rpc", rpc_url, "--api-keys-env", "OG_SETTLE_TEST_API_KEYS"]
        argv += ["--store", str(tmp_path / "settlements.sqlite3"), *extra]
        process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        processes.append(process)
        if not expect_start:
            return process, {}
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, process.communicate(timeout=30)[1]
        return process, json.loads(line)

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def stop(process: subprocess.Popen[str], timeout: float = 20) -> tuple[int, list[dict[str, Any]]]:
    """SIGTERM, then the exit code and the stderr lines, each of which must be one JSON object."""
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=timeout)
    stderr = process.communicate(timeout=5)[1]
    assert "Traceback" not in stderr, stderr
    return code, [json.loads(line) for line in stderr.splitlines()]


def test_200_concurrent_verifies_are_all_answered(
    deployment: Deployment,
    rpc_url: str,
    relayer: Any,
    requirements: PaymentRequirements,
    payers: list[Any],
    now: int,
    tmp_path: Path,
    permit2_approved: None,
) -> None:
    """200 clients at once against uvicorn: every one gets its 200 answer (bounded: correctness, not timing)."""
    from eth_account import Account

    facilitator = Facilitator(deployment, make_web3(rpc_url), Account.from_key(relayer.private_key))
    log_path = tmp_path / "requests.log"
    with log_path.open("w") as log:
        server = FacilitatorServer(
            create_app(facilitator, log=RequestLog(log)), bind("127.0.0.1", 0), log=RequestLog(log)
        )
        server.start_in_thread()
        try:
            bodies = [
                body(create_payment_payload(requirements, payers[i % 5].private_key, now=now), requirements)
                for i in range(200)
            ]

            async def run() -> list[httpx.Response]:
                limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
                async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=120) as client:
                    return await asyncio.gather(*(client.post("/verify", json=b) for b in bodies))

            answers = asyncio.run(run())
        finally:
            server.stop()
    assert [a.status_code for a in answers] == [200] * 200
    for answer, sent in zip(answers, bodies, strict=True):
        result = answer.json()
        assert result.pop("extensions")["og-settle"]["paymentId"].startswith("0x")
        assert result == {"isValid": True, "payer": sent["paymentPayload"]["payload"]["permit2Authorization"]["from"]}
    logged = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert sum(1 for line in logged if line.get("path") == "/verify" and line["status"] == 200) == 200


def _slow_client(url: str, head_only: bool = False) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    if head_only:
        sock.sendall(b"POST /verify HTTP/1.1\r\nHo")  # and then nothing: stuck in the headers
    else:
        sock.sendall(
            b"POST /verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{"
        )
    return sock


def test_slow_clients_get_408_and_do_not_hold_up_sigterm(start_cli: Start) -> None:
    """L-1: clients sending a body byte by byte get 408 at the body deadline (well before the 30 s request
    deadline); with others stalled in their headers or body, SIGTERM still stops the server within seconds, with
    exit 0 and no traceback."""
    process, started = start_cli("--receipt-timeout", "1", "--request-timeout", "30", "--body-timeout", "2")
    url = started["url"]
    slow = [_slow_client(url) for _ in range(3)]
    began = time.monotonic()
    for sock in slow:
        sock.sendall(b'"')  # trickling: still inside the deadline's reach
    answers = [sock.recv(4096).decode() for sock in slow]
    assert all(answer.startswith("HTTP/1.1 408") for answer in answers), answers
    assert time.monotonic() - began < 10
    for sock in slow:
        sock.close()

    stalled = [_slow_client(url), _slow_client(url, head_only=True), _slow_client(url, head_only=True)]
    assert httpx.get(url + "/health").json()["status"] == "ok"  # still serving while they stall
    began = time.monotonic()
    code, log = stop(process)
    assert code == 0 and time.monotonic() - began < 10
    for sock in stalled:
        sock.close()
    requests = [line for line in log if line["event"] == "http.request"]
    assert [line["status"] for line in requests if line["path"] == "/verify"][:3] == [408, 408, 408]
    assert all(line["time"].endswith("Z") for line in log)
    assert log[-1]["event"] == "facilitator.stop"


def test_client_disconnect_is_logged_without_a_traceback(start_cli: Start) -> None:
    process, started = start_cli("--receipt-timeout", "1", "--request-timeout", "5")
    sock = _slow_client(started["url"])
    sock.close()  # gone mid-body
    time.sleep(0.5)
    code, log = stop(process)
    assert code == 0
    verify = [line for line in log if line.get("path") == "/verify"]
    assert verify and verify[0]["status"] == 499 and verify[0]["error"] == "client disconnected"


def test_settlements_survive_a_restart(
    start_cli: Start,
    requirements: PaymentRequirements,
    payers: list[Any],
    payee: Any,
    relayer: Any,
    opg: Any,
    chain: Any,
    now: int,
    permit2_approved: None,
) -> None:
    """A payment settled before a restart is answered with its original transaction after it, and is not paid
    again; nothing is sent for the replay."""
    payload = body(create_payment_payload(requirements, payers[4].private_key, now=now), requirements)
    auth = {"Authorization": f"Bearer {API_KEY}"}
    process, started = start_cli()
    first = httpx.post(started["url"] + "/settle", json=payload, headers=auth, timeout=60).json()
    assert first["success"] is True, first
    assert stop(process)[0] == 0

    before = opg.balanceOf(payee)
    sent = chain.provider.web3.eth.get_transaction_count(relayer.address)
    process, started = start_cli()
    again = httpx.post(started["url"] + "/settle", json=payload, headers=auth, timeout=60).json()
    assert again == first
    status = httpx.get(f"{started['url']}/settle/status/{first['transaction']}", headers=auth).json()
    assert status == {"settlements": [first]}
    assert opg.balanceOf(payee) == before
    assert chain.provider.web3.eth.get_transaction_count(relayer.address) == sent
    assert stop(process)[0] == 0


def test_refuses_a_settling_key_in_use_by_a_relayer_or_another_facilitator(
    start_cli: Start, relayer: Any, chain_id: int, lease_dir: Path
) -> None:
    """The facilitator side of "facilitator and relayer share one key": it will not start on a leased signer."""
    with SignerLease.acquire(chain_id, relayer.address, role="relayer", directory=lease_dir):
        process, _ = start_cli(expect_start=False)
        assert process.wait(timeout=30) == 2
        err = process.communicate(timeout=5)[1]
        assert f"signer {relayer.address} on chain {chain_id} is already in use by relayer (pid {os.getpid()})" in err

    first, _ = start_cli()
    second, _ = start_cli(expect_start=False)
    assert second.wait(timeout=30) == 2
    assert "already in use by facilitator" in second.communicate(timeout=5)[1]
    assert stop(first)[0] == 0


def test_settle_keys_are_required_to_start(start_cli: Start) -> None:
    process, _ = start_cli("--api-keys-env", "OG_SETTLE_UNSET_VARIABLE", expect_start=False)
    assert process.wait(timeout=30) == 2
    assert "OG_SETTLE_UNSET_VARIABLE is not set" in process.communicate(timeout=5)[1]


class _Mempool:
    """The fork node's pool and mining, as seen by one settling account (automine off)."""

    def __init__(self, web3: Any, sender: str) -> None:
        self.web3 = web3
        self.sender = sender.lower()
        self.base = int(self.rpc("eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16)

    def rpc(self, method: str, *params: Any) -> Any:
        answer = self.web3.provider.make_request(method, list(params))
        assert "error" not in answer, answer
        return answer["result"]

    def pending(self, nonce: int) -> dict[str, Any] | None:
        """The account's transaction with ``nonce`` waiting in the pool."""
        pool = self.rpc("txpool_content")["pending"]
        mine = next((txs for address, txs in pool.items() if address.lower() == self.sender), {})
        found: dict[str, Any] | None = mine.get(str(nonce))
        return found

    def strand(self, nonce: int) -> tuple[str, int]:
        """Wait for the settlement with ``nonce`` in the pool, then raise the base fee tenfold past its
        maxFeePerGas and mine a block without it. Returns its hash and the risen base fee."""
        sent = wait_for("the settlement in the pool", lambda: self.pending(nonce))
        jump = int(sent["maxFeePerGas"], 16) * 10
        self.mine(jump)
        return str(sent["hash"]), jump

    def replacement(self, nonce: int, first: str) -> str:
        """Wait for another transaction with ``nonce`` than ``first`` in the pool; its hash."""
        found = wait_for("a replacement", lambda: (tx := self.pending(nonce)) and tx["hash"] != first and tx["hash"])
        return str(found)

    def mine(self, base_fee: int | None = None) -> None:
        if base_fee is not None:
            self.rpc("anvil_setNextBlockBaseFeePerGas", hex(base_fee))
        self.rpc("evm_mine")

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Automine off for the block; after it, the base fee back where it was and automine on again."""
        self.rpc("evm_setAutomine", False)
        try:
            yield
        finally:
            self.rpc("anvil_setNextBlockBaseFeePerGas", hex(self.base))
            self.rpc("evm_setAutomine", True)
            self.rpc("evm_mine")


def wait_for(what: str, condition: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def test_a_stuck_settlement_is_replaced_with_higher_fees_and_answered_once_it_is_deep_enough(
    start_cli: Start,
    requirements: PaymentRequirements,
    payers: list[Any],
    payee: Any,
    relayer: Any,
    opg: Any,
    chain: Any,
    now: int,
    permit2_approved: None,
) -> None:
    """Mining paused and a base-fee jump after the facilitator signs: its settlement is stranded. After
    ``--fee-bump-after`` it is replaced (same nonce, both fees up at least 12.5%, written to the store first);
    the open ``POST /settle`` answers only once the replacement is ``--confirmations 2`` deep, with the
    replacement's hash. The payee is paid once, the nonce is used once and the first version never lands."""
    web3 = chain.provider.web3
    node = _Mempool(web3, relayer.address)
    payload = body(create_payment_payload(requirements, payers[3].private_key, now=now), requirements)
    auth = {"Authorization": f"Bearer {API_KEY}"}
    process, started = start_cli("--fee-bump-after", "2", "--receipt-timeout", "40", "--confirmations", "2")
    before = opg.balanceOf(payee)
    nonce = web3.eth.get_transaction_count(relayer.address)
    with node.paused(), ThreadPoolExecutor(1) as pool:
        answer = pool.submit(
            lambda: httpx.post(started["url"] + "/settle", json=payload, headers=auth, timeout=90).json()
        )
        first, jump = node.strand(nonce)  # the base fee jumps past the first version's maxFeePerGas
        # Not mined (anvil's pool drops it, as one priced below the base fee).
        assert web3.eth.get_transaction_count(relayer.address) == nonce
        second = node.replacement(nonce, first)
        assert not answer.done()
        node.mine(jump)
        receipt = web3.eth.get_transaction_receipt(second)
        assert receipt["status"] == 1
        time.sleep(1.0)
        assert not answer.done()  # mined, but 1 deep of 2
        node.mine()
        settled = answer.result(timeout=30)
    assert settled["success"] is True and settled["transaction"] == second, settled
    assert opg.balanceOf(payee) - before == ONE
    assert web3.eth.get_transaction_count(relayer.address) == nonce + 1
    with pytest.raises(TransactionNotFound):
        web3.eth.get_transaction_receipt(first)
    status = httpx.get(f"{started['url']}/settle/status/{second}", headers=auth).json()
    assert status == {"settlements": [settled]}
    code, lines = stop(process)
    assert code == 0
    [bump] = [line for line in lines if line["event"] == "settle.fee_bumped"]
    assert bump["replaces"] == first and bump["tx"] == second
    assert bump["max_fee"] >= bump["old_max_fee"] * 1.125 and bump["tip"] >= bump["old_tip"] * 1.125
    assert bump["max_fee"] > jump  # it pays the risen base fee


def test_a_replaced_settlement_whose_first_version_lands_is_answered_after_a_restart(
    start_cli: Start,
    requirements: PaymentRequirements,
    payers: list[Any],
    payee: Any,
    relayer: Any,
    opg: Any,
    chain: Any,
    now: int,
    tmp_path: Path,
    permit2_approved: None,
) -> None:
    """The facilitator replaces a stranded settlement and is SIGKILLed before either version is mined; then the
    first version lands after all (the replacement is gone from the pool, the base fee falls). Restarted, it
    answers the same ``/settle`` with success and the first version's hash, from the replaced hashes kept in the
    store, instead of calling the payment's transaction dropped; the payee is paid once."""
    import sqlite3

    web3 = chain.provider.web3
    node = _Mempool(web3, relayer.address)
    payload = body(create_payment_payload(requirements, payers[2].private_key, now=now), requirements)
    auth = {"Authorization": f"Bearer {API_KEY}"}
    process, started = start_cli("--fee-bump-after", "2", "--receipt-timeout", "40")
    before = opg.balanceOf(payee)
    nonce = web3.eth.get_transaction_count(relayer.address)
    with node.paused():
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(httpx.post, started["url"] + "/settle", json=payload, headers=auth, timeout=90)
            first, _ = node.strand(nonce)
            with sqlite3.connect(tmp_path / "settlements.sqlite3") as db:
                [(first_raw,)] = db.execute("SELECT raw_tx FROM settlements WHERE transaction_hash = ?", (first,))
            second = node.replacement(nonce, first)
            process.kill()
            process.wait(10)
            with pytest.raises(httpx.HTTPError):
                answer.result(timeout=30)
        node.rpc("anvil_dropTransaction", second)
        node.rpc("anvil_setNextBlockBaseFeePerGas", hex(node.base))
        node.rpc("eth_sendRawTransaction", "0x" + bytes(first_raw).hex())
        node.mine()
    assert web3.eth.get_transaction_receipt(first)["status"] == 1
    assert opg.balanceOf(payee) - before == ONE

    process, started = start_cli()
    again = httpx.post(started["url"] + "/settle", json=payload, headers=auth, timeout=60).json()
    assert again["success"] is True and again["transaction"] == first, again
    status = httpx.get(f"{started['url']}/settle/status/{first}", headers=auth).json()
    assert status == {"settlements": [again]}
    assert opg.balanceOf(payee) - before == ONE
    assert web3.eth.get_transaction_count(relayer.address) == nonce + 1
    assert stop(process)[0] == 0


def test_a_settlement_still_stuck_when_replayed_is_replaced_at_once(
    start_cli: Start,
    requirements: PaymentRequirements,
    payers: list[Any],
    payee: Any,
    relayer: Any,
    opg: Any,
    chain: Any,
    now: int,
    permit2_approved: None,
) -> None:
    """``--receipt-timeout 2`` is shorter than ``--fee-bump-after 3``: the first ``/settle`` of a stranded
    settlement answers ``settlement_pending`` without a replacement. The same ``/settle`` a little later finds
    the transaction older than the bump threshold (its age comes from the store) and replaces it at once; the
    replacement is mined within that request, which answers success with its hash."""
    web3 = chain.provider.web3
    node = _Mempool(web3, relayer.address)
    payload = body(create_payment_payload(requirements, payers[1].private_key, now=now), requirements)
    auth = {"Authorization": f"Bearer {API_KEY}"}
    process, started = start_cli("--fee-bump-after", "3", "--receipt-timeout", "2")
    before = opg.balanceOf(payee)
    nonce = web3.eth.get_transaction_count(relayer.address)
    with node.paused():
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(httpx.post, started["url"] + "/settle", json=payload, headers=auth, timeout=60)
            first, jump = node.strand(nonce)
            late = answer.result(timeout=30).json()
        assert late["success"] is False and late["errorReason"] == "settlement_pending" and late["transaction"] == first
        assert (node.pending(nonce) or {}).get("hash") in (None, first)  # not replaced within the first request
        time.sleep(1.5)
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(httpx.post, started["url"] + "/settle", json=payload, headers=auth, timeout=60)
            second = node.replacement(nonce, first)
            node.mine(jump)
            settled = answer.result(timeout=30).json()
    assert settled["success"] is True and settled["transaction"] == second, settled
    assert opg.balanceOf(payee) - before == ONE
    assert web3.eth.get_transaction_count(relayer.address) == nonce + 1
    code, lines = stop(process)
    assert code == 0
    assert [line["replaces"] for line in lines if line["event"] == "settle.fee_bumped"] == [first]
