"""The replica as a process: `og-settle chain up` prints where it is and stops cleanly; start-up failures
show anvil's own output."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from eth_account import Account

from og_settle import ToolchainError
from og_settle.replica._node import start_anvil
from og_settle.replica._toolchain import anvil_executable


def _chain_id(url: str) -> int:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(json.loads(response.read())["result"], 16)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_chain_up_serves_base_sepolia_and_stops_cleanly(stop_signal: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "og_settle.cli", "chain", "up", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["chain_id"] == 84532
        assert info["permit2"] == "0x000000000022D473030F116dDEE9F6B43aC78BA3"
        assert _chain_id(info["rpc_url"]) == 84532
        # As anvil prints them: the dev accounts' keys (same order), and what each holds in OPG (read from chain).
        assert len(info["dev_keys"]) == len(info["dev_accounts"]) == len(info["opg_balances"]) == 10
        for key, account in zip(info["dev_keys"], info["dev_accounts"], strict=True):
            assert Account.from_key(key).address.lower() == account.lower()
        assert all(int(amount) == 1_000_000 * 10**18 for amount in info["opg_balances"])
        # USDC: the stand-in at Base Sepolia's USDC address, 6 decimals, held by every dev account (read from chain).
        assert (info["usdc"], info["usdc_decimals"]) == ("0x036CbD53842c5426634e7929541eC2318f3dCF7e", 6)
        assert len(info["usdc_balances"]) == 10
        assert all(int(amount) == 1_000_000 * 10**6 for amount in info["usdc_balances"])
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The node went down with it.
    with pytest.raises(OSError):
        _chain_id(info["rpc_url"])


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_chain_up_stops_cleanly_when_the_signal_lands_during_start_up(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    """A stop signal before start-up is announced (here: while anvil is still starting, made slow on purpose)
    is a clean stop too: exit 0, no traceback, no announcement, no node left behind. (Issue #12: a SIGINT right
    at the announcement once ended `chain up` with 130, because its handlers were installed after it.)"""
    started = tmp_path / "anvil-starting"
    slow_anvil = tmp_path / "slow-anvil"
    slow_anvil.write_text(f'#!/bin/sh\ntouch "{started}"\nsleep 2\nexec "{anvil_executable()}" "$@"\n')
    slow_anvil.chmod(0o755)
    proc = subprocess.Popen(
        [sys.executable, "-m", "og_settle.cli", "chain", "up", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OG_SETTLE_ANVIL": str(slow_anvil)},
    )
    try:
        deadline = time.monotonic() + 30
        while not started.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "anvil was never started"
            time.sleep(0.01)
        proc.send_signal(stop_signal)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert out == ""


def test_anvil_start_failure_shows_its_output() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ToolchainError, match=rf"anvil did not start on port {port}.*last output:\n.+"):
            start_anvil(port)


def _exec_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "APE_FOUNDRY_HOST"}
    env.update(extra)
    return env


def test_chain_exec_gives_ape_a_fork_node_port_outside_the_ephemeral_range() -> None:
    """Ape's own "auto" port is drawn from the kernel's range for outgoing connections, where a busy run can
    have taken it by the time anvil binds (seen as "Timed out waiting for successful RPC connection")."""
    low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    probe = "import os; print(os.environ['APE_FOUNDRY_HOST'])"
    argv = [sys.executable, "-m", "og_settle.cli", "chain", "exec", "--", sys.executable, "-c", probe]
    hosts = [
        subprocess.run(argv, capture_output=True, text=True, timeout=120, env=_exec_env({}), check=True).stdout.strip()
        for _ in range(2)
    ]
    for host in hosts:
        assert host.startswith("http://127.0.0.1:")
        port = int(host.rsplit(":", 1)[1])
        assert not low <= port <= high
    # A host the caller chose is kept.
    chosen = {"APE_FOUNDRY_HOST": "http://127.0.0.1:23456"}
    kept = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=_exec_env(chosen), check=True)
    assert kept.stdout.strip() == "http://127.0.0.1:23456"
