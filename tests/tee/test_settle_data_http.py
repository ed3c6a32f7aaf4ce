"""``POST /settle_data`` on ``og-settle facilitator serve --queue``: OpenGradient settlement data, over real HTTP,
checked by the relayer's intake against the TEE registry, queued, and settled by ``og-settle relayer run``."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from og_settle._attestation import InferenceAttestation, TeeKey, settlement_domain
from og_settle._hex import keccak256, to_hex
from og_settle.tee import SettlementData
from tests.relayer.support import OG_SETTLE, TEE_KEY, LiveChain, dev_key, live_chain
from tests.support.children import json_child
from tests.tee.live import inference_status, leaf_of, settle_queue

BEARER = "settle-data-test-key-0123456789"


def _data(chain: LiveChain, key: TeeKey, index: int, *, signature: bytes | None = None) -> dict[str, Any]:
    """Settlement data from a secp256k1 TEE: its leaf signature is the EIP-712 Inference signature the registry
    checks (``verifyInferenceSignature``), base64 as OpenGradient's wire carries signatures."""
    when = int(time.time()) - 30
    inference = InferenceAttestation(key.tee_id, keccak256(b"in %d" % index), keccak256(b"out %d" % index), when)
    domain = settlement_domain(chain.deployment.chain_id, chain.deployment.settlement_registry)
    signed = key.sign_inference(domain, inference) if signature is None else signature
    return {
        "tee_id": to_hex(key.tee_id),
        "input_hash": inference.input_hash.hex(),
        "output_hash": inference.output_hash.hex(),
        "tee_signature": base64.b64encode(signed).decode(),
        "tee_timestamp": str(when),
    }


def _post(url: str, settlement_type: str | None, data: dict[str, Any] | None, *, auth: bool = True) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = f"Bearer {BEARER}"
    if settlement_type is not None:
        headers["x-settlement-type"] = settlement_type
    if data is not None:
        headers["x-settlement-data"] = base64.b64encode(json.dumps(data).encode()).decode()
    return httpx.post(url + "/settle_data", headers=headers, content=b"{}", timeout=30)


def test_settle_data_queues_checked_leaves_that_the_relayer_settles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    leases = tmp_path / "leases"
    leases.mkdir()
    monkeypatch.setenv("OG_SETTLE_LEASE_DIR", str(leases))  # signer leases of this test's processes only
    with live_chain(tmp_path / "chain") as chain:
        queue = tmp_path / "queue.db"
        argv = [
            OG_SETTLE, "facilitator", "serve", "--deployment", str(chain.deployment_path), "--rpc", chain.rpc_url,
            "--key-env", "FACILITATOR_KEY", "--api-keys-env", "FACILITATOR_BEARERS", "--queue", str(queue), "--json",
        ]  # fmt: skip
        env = {"FACILITATOR_KEY": dev_key(2), "FACILITATOR_BEARERS": BEARER, "OG_SETTLE_LEASE_DIR": str(leases)}
        honest = _data(chain, TEE_KEY, 1)
        with json_child("facilitator", argv, tmp_path / "facilitator.log", env=env) as child:
            url = child.start["url"]
            assert child.start["settleData"] == str(queue)
            assert _post(url, "batch", honest, auth=False).status_code == 401
            missing = _post(url, None, honest)
            assert missing.status_code == 400 and "x-settlement-type" in missing.json()["error"]

            private = _post(url, "private", None)
            assert private.status_code == 202 and private.json()["settlementJob"] is None
            empty_body = httpx.post(
                url + "/settle_data", headers={"Authorization": f"Bearer {BEARER}", "x-settlement-type": "private"}
            )
            assert empty_body.status_code == 202, empty_body.text
            not_json = httpx.post(
                url + "/settle_data",
                headers={"Authorization": f"Bearer {BEARER}", "x-settlement-type": "private"},
                content=b"{nope",
            )
            assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]

            first = _post(url, "batch", honest)
            assert first.status_code == 202, first.text
            job = first.json()["settlementJob"]
            assert job["status"] == "queued" and job["settlementType"] == "batch"
            again = _post(url, "SETTLE_BATCH", honest).json()["settlementJob"]
            assert again["status"] == "duplicate" and again["jobId"] == job["jobId"]

            refused = {
                "tee_not_active": _post(url, "batch", _data(chain, TeeKey(keccak256(b"unregistered")), 2)),
                "invalid_tee_signature": _post(url, "batch", _data(chain, TEE_KEY, 3, signature=os.urandom(64))),
                "invalid_record": _post(url, "batch", {**honest, "tee_timestamp": "soon"}),
            }
            for reason, answer in refused.items():
                assert answer.status_code == 400 and answer.json()["reason"] == reason, (reason, answer.text)

        (dump,) = settle_queue(queue, chain, tmp_path)
        leaf = leaf_of(SettlementData.from_json("batch", honest))
        code, body = inference_status(chain, "--leaf", json.dumps(leaf), "--dump", str(dump))
        assert code == 0 and body["settled"] is True, body
