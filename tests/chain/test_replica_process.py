"""The replica as a process: `og-settle chain up` prints where it is and stops cleanly; start-up failures
show anvil's own output."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from og_settle import ToolchainError
from og_settle.replica._node import start_anvil


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
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The node went down with it.
    with pytest.raises(OSError):
        _chain_id(info["rpc_url"])


def test_anvil_start_failure_shows_its_output() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ToolchainError, match=rf"anvil did not start on port {port}.*last output:\n.+"):
            start_anvil(port)
