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
    records = [payment_record(chain.deployment, 80_000 + i, now=now - 3600 + 3, timeout=3600) for i in range(3)]
    db = tmp_path / "queue.db"
    _submit(db, chain, records)  # still valid for about 3 s
    time.sleep(max(0.0, now + 5 - time.time()))
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
