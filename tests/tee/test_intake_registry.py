"""M-2: intake checks every batch leaf's signer against the TEE registry, and ``status inference`` proves the signature.

On a live anvil with og-settle deployed and one registered TEE: a leaf signed by a fresh, unregistered key and a
leaf carrying 64 bytes of noise as its "signature" are refused at intake (``relayer submit --rpc``); without a
registry to ask, leaves are refused unless queued explicitly unverified. A forged leaf that was queued unverified and
settled in a batch is reported as *not* settled by ``og-settle status inference`` (``verifyInferenceSignature``),
while its honest neighbour is.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from og_settle._attestation import InferenceAttestation, TeeKey, settlement_domain
from og_settle._hex import keccak256, to_hex
from tests.relayer.support import (
    TEE_ID,
    LiveChain,
    cli,
    inference_record,
    live_chain,
    write_jsonl,
)
from tests.tee.live import inference_status, settle_queue

FRESH_KEY = TeeKey(keccak256(b"a key nobody registered"))


def _forged_record(chain: LiveChain, index: int) -> dict[str, Any]:
    """A batch leaf signed, correctly, by a key that is not in the registry (its teeId is its own)."""
    timestamp = int(time.time()) - 60
    inference = InferenceAttestation(
        FRESH_KEY.tee_id, keccak256(b"forged in %d" % index), keccak256(b"forged out %d" % index), timestamp
    )
    domain = settlement_domain(chain.deployment.chain_id, chain.deployment.settlement_registry)
    return {
        "kind": "inference",
        "mode": "batch",
        "ref": f"forged-{index}",
        "tee_id": to_hex(FRESH_KEY.tee_id),
        "input_hash": to_hex(inference.input_hash),
        "output_hash": to_hex(inference.output_hash),
        "timestamp": timestamp,
        "tee_signature": to_hex(FRESH_KEY.sign_inference(domain, inference)),
    }


def _noise_record(index: int) -> dict[str, Any]:
    """A leaf naming the registered TEE, with 64 random bytes where the signature goes."""
    return {
        "kind": "inference",
        "mode": "batch",
        "ref": f"noise-{index}",
        "tee_id": to_hex(TEE_ID),
        "input_hash": to_hex(keccak256(b"noise in %d" % index)),
        "output_hash": to_hex(keccak256(b"noise out %d" % index)),
        "timestamp": int(time.time()) - 60,
        "tee_signature": to_hex(os.urandom(64)),
    }


def _submit(chain: LiveChain, db: Path, path: Path, *extra: str) -> dict[str, Any]:
    result = cli("relayer", "submit", "--db", str(db), "--deployment", str(chain.deployment_path), str(path), *extra)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert lines, result.stderr
    return {"reports": lines[:-1], **lines[-1]["summary"]}


def _status(chain: LiveChain, record: dict[str, Any], dump: Path) -> tuple[int, dict[str, Any]]:
    leaf = {k: record[k] for k in ("tee_id", "input_hash", "output_hash", "tee_signature", "timestamp")}
    return inference_status(chain, "--leaf", json.dumps(leaf), "--dump", str(dump))


def test_forged_and_noise_leaves_are_refused_at_intake_and_never_reported_settled(tmp_path: Path) -> None:
    with live_chain(tmp_path / "chain") as chain:
        honest = [inference_record(chain.deployment, i) for i in range(3)]
        forged, noise = _forged_record(chain, 0), _noise_record(0)
        path = write_jsonl(tmp_path / "in.jsonl", [honest[0], forged, honest[1], noise, honest[2]])

        checked = _submit(chain, tmp_path / "checked.db", path, "--rpc", chain.rpc_url)
        reasons = {r["source"]: r.get("reason") for r in checked["reports"]}
        assert checked["accepted"] == 3 and checked["rejected"] == 2, checked
        assert reasons == {
            "in.jsonl:1": None,
            "in.jsonl:2": "tee_not_active",
            "in.jsonl:3": None,
            "in.jsonl:4": "invalid_tee_signature",
            "in.jsonl:5": None,
        }

        # No registry to ask: a leaf cannot be checked, so it is refused unless explicitly queued unverified.
        unchecked = _submit(chain, tmp_path / "unchecked.db", path)
        assert unchecked["accepted"] == 0 and unchecked["rejected"] == 5
        assert {r["reason"] for r in unchecked["reports"]} == {"tee_unverifiable"}

        db = tmp_path / "unverified.db"
        marked = _submit(chain, db, write_jsonl(tmp_path / "two.jsonl", [honest[0], forged]), "--allow-unverified")
        assert marked["accepted"] == 2 and all(r["unverified"] for r in marked["reports"])

        (dump,) = settle_queue(db, chain, tmp_path)

        code, body = _status(chain, honest[0], dump)
        assert code == 0 and body["settled"] is True, body
        code, body = _status(chain, forged, dump)
        assert code == 1 and body["settled"] is False, body
        assert body["reason"] == "TeeNotActive", body
