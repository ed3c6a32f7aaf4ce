"""Shared steps of the live-chain TEE tests: drain a queue with ``relayer run``, ask ``status inference``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from og_settle.tee import SettlementData
from tests.relayer.support import LiveChain, cli, spawn_relayer


def settle_queue(queue: Path, chain: LiveChain, work: Path, *, timeout: float = 180) -> list[Path]:
    """Run ``og-settle relayer run --drain --exit-when-done`` on ``queue``; the batch dumps it wrote."""
    dumps = work / "dumps"
    log = work / "relayer.log"
    proc = spawn_relayer(
        queue, chain, "--drain", "--exit-when-done", "--poll", "0.05", "--dump-dir", str(dumps), log_path=log
    )
    assert proc.wait(timeout=timeout) == 0, log.read_text()[-3000:]
    return sorted(dumps.glob("*.json"))


def leaf_of(data: SettlementData) -> dict[str, Any]:
    """The batch leaf a settlement-data record becomes, as ``status inference --leaf`` takes it."""
    return {
        "tee_id": "0x" + data.tee_id.hex(),
        "input_hash": "0x" + data.input_hash.hex(),
        "output_hash": "0x" + data.output_hash.hex(),
        "tee_signature": "0x" + data.tee_signature.hex(),
        "timestamp": data.tee_timestamp,
    }


def inference_status(chain: LiveChain, *args: str) -> tuple[int, dict[str, Any]]:
    """``og-settle status inference ARGS --json``: its exit code and answer."""
    result = cli(
        "status", "inference", "--rpc", chain.rpc_url, "--deployment", str(chain.deployment_path), "--json", *args
    )
    lines = result.stdout.strip().splitlines()
    assert lines, result.stderr
    return result.returncode, json.loads(lines[-1])
