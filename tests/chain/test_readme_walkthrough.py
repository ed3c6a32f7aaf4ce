"""The README's walkthrough, run as written: its `og-settle chain up` block starts the replica, its steps block runs
in bash in an empty folder, and every step must succeed, ending with the payment and the inference settled on
chain. The one change: port 8545 becomes a free port, so parallel runs do not collide."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from og_settle.replica._rpc import JsonRpc, RpcError

README = Path(__file__).resolve().parents[2] / "README.md"


def _block(name: str) -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(rf"<!-- walkthrough: {name} -->\n```sh\n(.*?)```", text, flags=re.S)
    assert found is not None, f"the README lost its walkthrough '{name}' block"
    return found.group(1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _wait_for_node(url: str, process: subprocess.Popen[str], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"`chain up` exited with {process.returncode}: {process.communicate()[1][-2000:]}")
        try:
            JsonRpc(url, timeout=2).call("eth_chainId")
            return
        except (OSError, RpcError):
            time.sleep(0.5)
    raise AssertionError(f"the replica did not answer at {url} within {timeout} s")


def test_the_readme_walkthrough_settles_a_payment_and_an_individual_inference(tmp_path: Path) -> None:
    port = str(_free_port())
    chain_up, steps = _block("chain").replace("8545", port), _block("steps").replace("8545", port)
    assert chain_up.strip().startswith("og-settle chain up")
    env = {
        key: value for key, value in os.environ.items() if not key.startswith("OG_SETTLE_") or key == "OG_SETTLE_HOME"
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # og-settle, as after `. ./tools-env.sh`
    env["OG_SETTLE_LEASE_DIR"] = str(tmp_path / "leases")  # the dev relayer key may be in use by another test run
    (tmp_path / "leases").mkdir()
    work = tmp_path / "walkthrough"
    work.mkdir()
    replica = subprocess.Popen(
        ["bash", "-c", f"exec {chain_up.strip()}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        _wait_for_node(f"http://127.0.0.1:{port}", replica)
        done = subprocess.run(["bash", "-c", steps], capture_output=True, text=True, timeout=600, env=env, cwd=work)
    finally:
        replica.send_signal(signal.SIGTERM)
        replica.wait(timeout=30)
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    lines = done.stdout.splitlines()
    assert '{"summary": {"accepted": 2, "duplicate": 0, "rejected": 0}}' in lines
    assert any(
        re.match(r"payment 0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC/\d+: settled in 0x[0-9a-f]{64}", line)
        for line in lines
    )
    assert any(
        re.match(
            r"inference 0x[0-9a-f]{64}: settled \(individual\) by 0x70997970C51812dc3A010C7d01b50e0d17dc79C8", line
        )
        for line in lines
    )
    assert "Traceback" not in done.stderr
