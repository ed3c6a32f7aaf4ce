"""The offline core stays offline: importing og_settle loads neither web3 nor Ape (clients import web3 lazily)."""

from __future__ import annotations

import subprocess
import sys


def test_import_og_settle_loads_no_network_stack() -> None:
    probe = "import sys, og_settle; print(sorted(m for m in ('web3', 'ape', 'requests') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
