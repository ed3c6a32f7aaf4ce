"""An OpenGradient RSA TEE from registration to settlement, on a live anvil, only through og-settle's own commands.

``og-settle tee approve`` (the og-evm PCR vector) and ``tee register`` (a PEM RSA key, proof of possession by
RSA-PSS), ``tee heartbeat``, ``tee list`` / ``tee show``; then responses signed by that key become settlement data,
sent over HTTP to ``facilitator serve --queue``'s ``POST /settle_data`` (batch and individual), settled by
``relayer run``, and proven on chain by ``status inference`` (``verifyInferenceSignature`` for the batch leaf's RSA
signature; the recorded digest for the individual record).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from og_settle._hex import keccak256
from og_settle.tee import RsaTeeKey, SettlementData, canonical_request, open_gradient_digest, sign_response
from tests.relayer.support import (
    DEPLOYER_KEY,
    OG_SETTLE,
    PAY_TO,
    TEE_KEY,
    LiveChain,
    cli,
    dev_key,
    live_chain,
    read_events,
)
from tests.support.children import json_child
from tests.tee.live import inference_status, leaf_of, settle_queue

# og-evm scripts/tee-mgmt-cli/Registration.md (FORMATS.md) and its documented pcrHash.
PCRS = (
    "8c7b728e1a8e034aa1cc6c82521adeacec05118b766d5203c80aaf84322b73d095e05672d98fba613ba2b3aaa0e6a482",
    "4b4d5b3661b3efc12920900c80e126e4ce783c522de6c02a2a5bf7af3a2b9327b86776f188e4be1c1c404a129dbda493",
    "74787f27d0c4bbead44d7a61a02df3b8297b0ab1faffb8ebd113a34b434147acb7cd21504b82eeea34100034ccaaed94",
)
PCR_HASH = "0x77786f3515030fe50a260c26d229eff15d2db0e211008f1581dc3e91bfd25703"
BEARER = "rsa-end-to-end-bearer-0123456789"
KEY = RsaTeeKey.generate(2048)


@dataclass
class RsaChain:
    chain: LiveChain
    pem: Path
    tee_id: str
    work: Path

    def tee(self, *args: str) -> Any:
        return cli("tee", *args, "--rpc", self.chain.rpc_url, "--deployment", str(self.chain.deployment_path))


@pytest.fixture(scope="module")
def rsa_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RsaChain]:
    work = tmp_path_factory.mktemp("rsa-e2e")
    mp = pytest.MonkeyPatch()
    mp.setenv("OG_SETTLE_OPERATOR_KEY", DEPLOYER_KEY)  # the deployer is admin and operator on the test chain
    mp.setenv("OG_SETTLE_LEASE_DIR", str(work))
    pem = work / "tee.pem"
    pem.write_text(KEY.to_pem())
    try:
        with live_chain(work / "chain") as chain:
            state = RsaChain(chain, pem, "0x" + KEY.tee_id.hex(), work)
            approved = state.tee(
                "approve", "--pcrs", *PCRS, "--type", "0", "--type-name", "LLMProxy", "--version", "tee-gateway v1",
                "--json",
            )  # fmt: skip
            assert approved.returncode == 0, approved.stdout + approved.stderr
            assert json.loads(approved.stdout)["measurement"] == PCR_HASH
            registered = state.tee(
                "register", "--tee-key-file", str(pem), "--pcrs", *PCRS, "--type", "0",
                "--endpoint", "https://enclave.test", "--payment-address", PAY_TO,
                "--attestation-hash", "0x" + keccak256(b"nitro attestation document").hex(), "--json",
            )  # fmt: skip
            assert registered.returncode == 0, registered.stdout + registered.stderr
            body = json.loads(registered.stdout)
            assert body["tee_id"] == state.tee_id and body["key_type"] == "rsa"
            yield state
    finally:
        mp.undo()


def test_registered_rsa_tee_is_listed_shown_and_beats(rsa_chain: RsaChain) -> None:
    shown = rsa_chain.tee("show", rsa_chain.tee_id, "--json")
    assert shown.returncode == 0, shown.stderr
    row = json.loads(shown.stdout)
    assert row["key_type"] == "rsa" and row["active"] and row["live"] and row["tee_type"] == 0
    assert row["public_key"] == "0x" + KEY.public.der.hex() and row["measurement"] == PCR_HASH
    listed = json.loads(rsa_chain.tee("list", "--json").stdout)["tees"]
    assert {t["key_type"] for t in listed} == {"rsa", "secp256k1"}
    by_type = json.loads(rsa_chain.tee("list", "--type", "0", "--json").stdout)["tees"]
    assert [t["tee_id"] for t in by_type] == [rsa_chain.tee_id]

    for method, params in (("evm_increaseTime", [60]), ("evm_mine", [])):  # a minute after registration
        httpx.post(rsa_chain.chain.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    beat = rsa_chain.tee("heartbeat", "--tee-key-file", str(rsa_chain.pem), "--json")
    assert beat.returncode == 0, beat.stdout + beat.stderr
    when = json.loads(beat.stdout)["timestamp"]
    assert json.loads(rsa_chain.tee("show", rsa_chain.tee_id, "--json").stdout)["last_heartbeat"] == when
    again = rsa_chain.tee("heartbeat", "--tee-key-file", str(rsa_chain.pem), "--timestamp", str(when), "--json")
    assert again.returncode == 1 and json.loads(again.stdout)["error"] == "HeartbeatNotNewer"
    # the secp256k1 TEE registered beside it beats too (ECDSA over the registry's EIP-712 Heartbeat)
    ec_key = rsa_chain.work / "secp256k1.key"
    ec_key.write_text("0x" + TEE_KEY.private_key.hex())
    ec_beat = rsa_chain.tee("heartbeat", "--tee-key-file", str(ec_key), "--json")
    assert ec_beat.returncode == 0, ec_beat.stdout + ec_beat.stderr
    ec_when = json.loads(ec_beat.stdout)["timestamp"]
    assert json.loads(rsa_chain.tee("show", "0x" + TEE_KEY.tee_id.hex(), "--json").stdout)["last_heartbeat"] == ec_when


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("show", "0x" + "00" * 32), "not registered"),
        (("register", "--tee-key-file", "{pem}", "--measurement", PCR_HASH, "--endpoint", "e", "--payment-address",
          PAY_TO, "--attestation-hash", "0x" + "11" * 32), "already registered"),
        (("register", "--tee-key-file", "{other}", "--measurement", PCR_HASH, "--type", "3", "--endpoint", "e",
          "--payment-address", PAY_TO, "--attestation-hash", "0x" + "11" * 32), "approved for TEE type 0, not 3"),
        (("register", "--tee-key-file", "{other}", "--measurement", "0x" + "22" * 32, "--endpoint", "e",
          "--payment-address", PAY_TO, "--attestation-hash", "0x" + "11" * 32), "is not approved (none)"),
        (("heartbeat", "--tee-key-file", "{missing}"), "cannot read the TEE key"),
        (("heartbeat", "--tee-key-env", "NO_SUCH_VARIABLE"), "NO_SUCH_VARIABLE: not set"),
        (("register", "--tee-key-file", "{other}", "--pcrs", "0x00", "0x00", "0x00", "--endpoint", "e",
          "--payment-address", PAY_TO, "--attestation-hash", "0x" + "11" * 32), "expected 48 bytes"),
    ],
)  # fmt: skip
def test_mistakes_are_one_line(rsa_chain: RsaChain, args: tuple[str, ...], match: str) -> None:
    other = rsa_chain.work / "other.pem"
    if not other.exists():
        other.write_text(RsaTeeKey.generate(2048).to_pem())
    paths = {"{pem}": str(rsa_chain.pem), "{other}": str(other), "{missing}": str(rsa_chain.work / "missing.pem")}
    result = rsa_chain.tee(*(paths.get(a, a) for a in args))
    output = (result.stdout + result.stderr).strip()
    assert result.returncode in (1, 2) and match in output, output
    assert len(output.splitlines()) == 1 and "Traceback" not in output


def _settlement_data(mode: str, index: int) -> SettlementData:
    """What an OpenGradient gateway sends for one response signed by the registered enclave key."""
    request = {"model": "gpt-4.1", "messages": [{"role": "user", "content": f"question {index}"}]}
    response = {"choices": [{"message": {"content": f"answer {index}"}, "finish_reason": "stop"}]}
    fields = sign_response(KEY, request, response, timestamp=int(time.time()) - 20)
    extra: dict[str, Any] = {}
    if mode == "individual":
        extra = {
            "input": json.dumps(canonical_request(request), sort_keys=True),
            "output": f"answer {index}",
            "eth_address": PAY_TO,
        }
    return SettlementData(
        mode=mode,
        tee_id=KEY.tee_id,
        input_hash=bytes.fromhex(fields["tee_request_hash"]),
        output_hash=bytes.fromhex(fields["tee_output_hash"]),
        tee_signature=base64.b64decode(fields["tee_signature"]),
        tee_timestamp=fields["tee_timestamp"],
        **extra,
    )


def test_rsa_settlement_data_is_settled_and_proven_on_chain(rsa_chain: RsaChain) -> None:
    chain, work = rsa_chain.chain, rsa_chain.work
    queue = work / "queue.db"
    argv = [
        OG_SETTLE, "facilitator", "serve", "--deployment", str(chain.deployment_path), "--rpc", chain.rpc_url,
        "--key-env", "FACILITATOR_KEY", "--api-keys-env", "FACILITATOR_BEARERS", "--queue", str(queue), "--json",
    ]  # fmt: skip
    env = {"FACILITATOR_KEY": dev_key(2), "FACILITATOR_BEARERS": BEARER}
    batch, individual = _settlement_data("batch", 1), _settlement_data("individual", 2)
    another = _settlement_data("individual", 3)  # the two individual records share one settleIndividualBatch
    with json_child("facilitator", argv, work / "facilitator.log", env=env) as child:
        for data in (batch, individual, another):
            answer = httpx.post(
                child.start["url"] + "/settle_data",
                headers={
                    "Authorization": f"Bearer {BEARER}",
                    "x-settlement-type": data.mode,
                    "x-settlement-data": data.to_header(),
                },
                json={},
                timeout=30,
            )
            assert answer.status_code == 202, answer.text
            assert answer.json()["settlementJob"]["settlementType"] == data.mode
    (dump,) = settle_queue(queue, chain, work)
    code, body = inference_status(chain, "--leaf", json.dumps(leaf_of(batch)), "--dump", str(dump))
    assert code == 0 and body["settled"] is True, body  # verifyInferenceSignature checked the RSA-PSS leaf
    events = read_events(work / "relayer.log")
    assert [e["size"] for e in events if e.get("event") == "batch.confirmed" and e.get("lane") == "individual"] == [2]
    for record in (individual, another):
        digest = open_gradient_digest(record.tee_id, record.input_hash, record.output_hash, record.tee_timestamp)
        code, body = inference_status(chain, "0x" + digest.hex())
        assert code == 0 and body["mode"] == "opengradient", body
