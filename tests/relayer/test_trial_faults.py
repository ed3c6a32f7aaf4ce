"""Faults a newcomer's trial found (issue #12, "Faults from the trial"), each reproduced with the real
``og-settle relayer run`` process against a real anvil with the genuine Permit2."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from eth_account import Account

from og_settle._lease import LEASE_DIR_ENV, SignerLease
from og_settle.relayer import ItemState, SqliteStore
from og_settle.replica import free_port
from tests.relayer.support import (
    OG_SETTLE,
    RELAYER_KEY,
    LiveChain,
    _env,
    cli,
    payment_record,
    read_events,
    spawn_relayer,
    write_jsonl,
)


def _submit(db: Path, chain: LiveChain, records: list[object]) -> None:
    path = write_jsonl(db.with_suffix(".jsonl"), list(records))
    result = cli("relayer", "submit", "--db", str(db), "--deployment", str(chain.deployment_path), str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_drain_skips_expired_payments_without_a_transaction_and_exits_non_zero(
    tmp_path: Path, chain: LiveChain
) -> None:
    """Payments that expired after intake fail before anything is sent (no gas spent on them), and
    ``--drain --exit-when-done`` exits 1 because items failed."""
    now = int(time.time())
    # Valid for 10 s more: long enough for intake on a loaded machine, short enough to expire before the run.
    records = [payment_record(chain.deployment, 80_000 + i, now=now - 3600 + 10, timeout=3600) for i in range(3)]
    db = tmp_path / "queue.db"
    _submit(db, chain, records)
    time.sleep(max(0.0, now + 12 - time.time()))
    relayer = Account.from_key(RELAYER_KEY).address
    nonce_before = chain.web3().eth.get_transaction_count(relayer)
    log = tmp_path / "relayer.log"
    proc = spawn_relayer(db, chain, "--drain", "--exit-when-done", "--poll", "0.05", log_path=log)
    assert proc.wait(timeout=120) == 1, log.read_text()[-3000:]
    assert chain.web3().eth.get_transaction_count(relayer) == nonce_before, "a transaction was sent for them"
    assert not [e for e in read_events(log) if e["event"] == "tx.signed"]
    store = SqliteStore(db)
    try:
        failed = store.items(state=ItemState.FAILED)
    finally:
        store.close()
    assert len(failed) == 3
    assert all(item.reason is not None and item.reason.startswith("permit2_deadline_expired") for item in failed)


def test_sigterm_while_the_node_is_unreachable_stops_cleanly(tmp_path: Path, chain: LiveChain) -> None:
    """With nothing listening at --rpc the relayer backs off; SIGTERM then stops it at once: exit 0, no
    traceback."""
    db = tmp_path / "queue.db"
    _submit(db, chain, [payment_record(chain.deployment, 81_000)])
    log = tmp_path / "relayer.log"
    dead = f"http://127.0.0.1:{free_port()}"
    handle = log.open("ab")
    proc = subprocess.Popen(
        [OG_SETTLE, "relayer", "run", "--db", str(db), "--rpc", dead], stdout=handle, stderr=handle, env=_env()
    )
    try:
        deadline = time.monotonic() + 30
        while not any(e.get("event") == "rpc.retry" for e in read_events(log)):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the relayer never retried"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert code == 0, text[-3000:]
    assert any(e.get("event") == "relayer.stopped" for e in read_events(log))


def test_relayer_refuses_a_key_the_facilitator_is_settling_with(tmp_path: Path, chain: LiveChain) -> None:
    """The facilitator and the relayer sharing one key collided (replaced transactions, a /settle hanging 60 s):
    while a facilitator holds the signer's lease, ``relayer run`` with the same key refuses in one line."""
    lease_dir = tmp_path / "leases"
    db = tmp_path / "queue.db"
    _submit(db, chain, [payment_record(chain.deployment, 82_000)])
    relayer = Account.from_key(RELAYER_KEY).address

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [OG_SETTLE, "relayer", "run", "--db", str(db), "--rpc", chain.rpc_url, "--drain", "--exit-when-done"],
            capture_output=True,
            text=True,
            timeout=120,
            env=_env({LEASE_DIR_ENV: str(lease_dir)}),
            check=False,
        )

    with SignerLease.acquire(chain.deployment.chain_id, relayer, role="facilitator", directory=lease_dir):
        proc = run()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "facilitator" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    # Once the facilitator is gone, the relayer runs (and holds the lease itself while it does).
    done = run()
    assert done.returncode == 0, done.stderr[-3000:]


class _LaggingReceipts:
    """A JSON-RPC proxy on loopback in front of anvil whose receipt index lags: it answers ``null`` to
    ``eth_getTransactionReceipt`` for the hashes in ``hidden`` and forwards everything else (as a load-balanced
    or restarted RPC endpoint may for a while)."""

    def __init__(self, upstream: str, hidden: set[str]) -> None:
        import json
        import threading
        import urllib.request
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = json.loads(body)
                calls = request if isinstance(request, list) else [request]
                if all(c.get("method") == "eth_getTransactionReceipt" and c["params"][0] in hidden for c in calls):
                    answers = [{"jsonrpc": "2.0", "id": c["id"], "result": None} for c in calls]
                    out = json.dumps(answers if isinstance(request, list) else answers[0]).encode()
                else:
                    forward = urllib.request.Request(upstream, data=body, headers={"Content-Type": "application/json"})
                    with urllib.request.urlopen(forward, timeout=30) as response:
                        out = response.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_own_mined_transaction_without_a_receipt_is_not_a_replacement(tmp_path: Path, chain: LiveChain) -> None:
    """After a crash and a restart against a node that has no receipt (yet) for the relayer's own mined
    transaction, the relayer recognises its own broadcast: no ``tx.replaced``, the transaction is stored as
    mined, and every item is confirmed."""
    db = tmp_path / "queue.db"
    _submit(db, chain, [payment_record(chain.deployment, 83_000 + i) for i in range(4)])
    log = tmp_path / "relayer.log"
    first = spawn_relayer(
        db,
        chain,
        "--drain",
        "--exit-when-done",
        "--poll",
        "0.05",
        env={"OG_SETTLE_TEST_PAUSE": "broadcast:5"},
        log_path=log,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(e.get("event") == "tx.broadcast" for e in read_events(log)):
            assert first.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)  # broadcast (and, on anvil, mined), but no receipt processed
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)
    sent = _transactions(db)
    assert [state for _, state in sent] == ["sent"]
    proxy = _LaggingReceipts(chain.rpc_url, {"0x" + tx_hash.hex() for tx_hash, _ in sent})
    try:
        second_log = tmp_path / "second.log"
        handle = second_log.open("ab")
        second = subprocess.Popen(
            [OG_SETTLE, "relayer", "run", "--db", str(db), "--rpc", proxy.url, "--drain", "--exit-when-done"],
            stdout=handle,
            stderr=handle,
            env=_env(),
        )
        assert second.wait(timeout=120) == 0, second_log.read_text()[-3000:]
    finally:
        proxy.close()
    events = [e["event"] for e in read_events(second_log)]
    assert "tx.replaced" not in events, second_log.read_text()[-3000:]
    assert [state for _, state in _transactions(db)] == ["mined"]
    store = SqliteStore(db)
    try:
        assert store.status().items_by_state == {"confirmed": 4}
    finally:
        store.close()


def _transactions(db: Path) -> list[tuple[bytes, str]]:
    """(hash, state) of every transaction the queue recorded, read straight from its SQLite file."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        return [(bytes(h), str(s)) for h, s in conn.execute("SELECT tx_hash, state FROM transactions ORDER BY id")]


def test_relayer_refuses_a_network_its_queue_does_not_settle_to(tmp_path: Path, chain: LiveChain) -> None:
    """With the node down the chain id cannot be asked, so ``--network`` is checked against the queue's
    deployment: a Base Sepolia queue run as ``--network base`` is refused in one line, exit 2."""
    db = tmp_path / "queue.db"
    _submit(db, chain, [payment_record(chain.deployment, 83_000)])
    dead = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [OG_SETTLE, "relayer", "run", "--db", str(db), "--rpc", dead, "--network", "base"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "--network base: this queue settles to chain 84532" in done.stderr
