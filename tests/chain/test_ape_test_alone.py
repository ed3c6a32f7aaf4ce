"""``ape test`` alone works as Ape users expect (issue #13 item 6): with no ``OG_SETTLE_UPSTREAM_RPC`` and no
``--network``, a plain ``ape test`` runs on the project's default network, the Base Sepolia fork, whose upstream
``tests/conftest.py`` starts (a replica) before Ape connects."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from og_settle.replica import FORK_NODE_ENV
from tests.support.upstream import _network_from_argv

ROOT = Path(__file__).resolve().parents[2]


def test_plain_ape_test_starts_its_own_upstream() -> None:
    inherited = ("OG_SETTLE_", "BASE_SEPOLIA_RPC", "BASE_RPC", FORK_NODE_ENV)
    env = {k: v for k, v in os.environ.items() if not k.startswith(inherited)}
    ape = Path(sys.executable).with_name("ape")
    result = subprocess.run(
        [str(ape), "test", "tests/chain/test_replica.py", "-p", "no:cacheprovider", "-q", "-s"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "replica up at http://127.0.0.1:" in output  # started by tests/conftest.py, not by chain exec
    assert "5 passed" in output  # test_replica.py asserts chain id 84532, Permit2 and OPG


def test_a_base_mainnet_fork_on_the_command_line_selects_the_base_replica() -> None:
    assert _network_from_argv(["ape", "test", "--network", "base:mainnet-fork:foundry"]) == "base"
    assert _network_from_argv(["ape", "test", "--network=base:mainnet-fork:foundry"]) == "base"
    assert _network_from_argv(["ape", "test", "--network", "base:sepolia-fork:foundry"]) is None
    assert _network_from_argv(["ape", "test"]) is None
