"""The offline core stays offline: importing og_settle loads neither web3 nor Ape (clients import web3 lazily)."""

from __future__ import annotations

import subprocess
import sys


def test_import_og_settle_loads_no_network_stack() -> None:
    probe = "import sys, og_settle; print(sorted(m for m in ('web3', 'ape', 'requests') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_relayer_status_loads_no_chain_stack() -> None:
    """``og-settle relayer status`` and the queue need no chain client: ``og_settle.relayer`` loads its parts on first
    use, so opening a queue and showing its status imports neither web3 nor eth_abi / eth_account; the engine
    (``Relayer``) is loaded when it is asked for."""
    probe = (
        "import sys; from og_settle.relayer import open_store, status_json, format_status, fleet_status, BatchPolicy; "
        "print(sorted(m for m in ('web3', 'eth_abi', 'eth_account', 'og_settle.clients') if m in sys.modules)); "
        "from og_settle.relayer import Relayer; print(Relayer.__module__)"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.split("\n")[:2] == ["[]", "og_settle.relayer._engine"]
