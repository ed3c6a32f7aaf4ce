"""Relayer intake of OpenGradient settlement data, and each leaf's signer checked against the TEE's registered key."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from og_settle._attestation import InferenceAttestation, TeeKey, settlement_domain
from og_settle._deploy import Deployment
from og_settle._hex import keccak256, to_hex
from og_settle._merkle import InferenceLeaf
from og_settle.relayer import (
    IntakeConfig,
    Lane,
    Rejected,
    SqliteStore,
    StaticTeeDirectory,
    parse_record,
    parse_settlement_data,
    submit_records,
)
from og_settle.tee import RsaTeeKey, SettlementData, sign_response

DEPLOYMENT = Deployment(
    chain_id=84532,
    admin="0x" + "11" * 20,
    tee_registry="0x" + "22" * 20,
    settlement_registry="0x" + "33" * 20,
    payment_facilitator="0x" + "44" * 20,
)
RSA = RsaTeeKey.generate(2048)
OTHER_RSA = RsaTeeKey.generate(2048)
EC = TeeKey(keccak256(b"registered secp256k1 TEE"))
CONFIG = IntakeConfig(deployment=DEPLOYMENT, tee_directory=StaticTeeDirectory([RSA.public, EC.public]))
REQUEST = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}
RESPONSE = {"choices": [{"message": {"content": "hello"}, "finish_reason": "stop"}]}


def _gateway_data(key: Any = RSA, *, mode: str = "batch", when: int | None = None) -> dict[str, Any]:
    """Settlement data the way a gateway derives it from a signed response."""
    fields = sign_response(key, REQUEST, RESPONSE, timestamp=int(time.time()) - 30 if when is None else when)
    data = {
        "tee_id": fields["tee_id"],
        "input_hash": fields["tee_request_hash"],
        "output_hash": fields["tee_output_hash"],
        "tee_signature": fields["tee_signature"],
        "tee_timestamp": str(fields["tee_timestamp"]),
    }
    if mode == "individual":
        data |= {"input": json.dumps(REQUEST), "output": "hello", "eth_address": "0x" + "55" * 20}
    return data


def _noise(size: int) -> str:
    return base64.b64encode(os.urandom(size)).decode()


def _header(data: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(data).encode()).decode()


def test_a_batch_record_becomes_a_leaf_with_the_raw_rsa_signature() -> None:
    data = _gateway_data()
    item = parse_settlement_data("batch", _header(data), CONFIG, source="settle_data")
    assert item is not None and item.lane is Lane.BATCH
    signature = base64.b64decode(data["tee_signature"])
    assert item.payload["tee_signature"] == to_hex(signature) and len(signature) == 256
    leaf = InferenceLeaf.from_json(
        {k: item.payload[k] for k in ("tee_id", "input_hash", "output_hash", "timestamp")}
        | {"tee_signature": item.payload["tee_signature"]}
    )
    assert leaf.tee_signature == signature and leaf.timestamp == int(data["tee_timestamp"])
    assert RSA.public.verify(SettlementData.from_json("batch", data).message_hash, leaf.tee_signature)
    # SDK and product-document names for the type are read too; the same leaf is the same item
    again = parse_settlement_data("SETTLE_BATCH", data, CONFIG, source="x")
    assert again is not None and again.key == item.key


def test_an_individual_record_is_queued_for_settle_open_gradient() -> None:
    """An RSA TEE's individual record: the registry records it under keccak256(teeId || message), once."""
    data = _gateway_data(mode="individual")
    item = parse_settlement_data("individual", _header(data), CONFIG, source="settle_data")
    assert item is not None and item.lane is Lane.INDIVIDUAL
    record = SettlementData.from_json("individual", data)
    assert item.key == keccak256(record.tee_id + record.message_hash)
    assert item.payload["scheme"] == "opengradient" and item.payload["payer"] == record.eth_address
    assert item.payload["input"] == data["input"] and item.payload["output"] == "hello"


def test_private_settles_nothing() -> None:
    assert parse_settlement_data("private", None, CONFIG, source="x") is None
    assert parse_settlement_data("SETTLE", None, CONFIG, source="x") is None


@pytest.mark.parametrize(
    ("settlement_type", "data", "reason", "match"),
    [
        ("batch", _gateway_data(OTHER_RSA), "tee_not_active", "is not an active TEE"),
        ("batch", {**_gateway_data(), "tee_signature": _noise(256)}, "invalid_tee_signature", "RSA"),
        ("batch", {**_gateway_data(), "tee_signature": _noise(64)}, "invalid_tee_signature", "64 bytes"),
        ("batch", {**_gateway_data(), "tee_timestamp": "1"}, "timestamp_too_old", "timestamp 1"),
        ("batch", {**_gateway_data(), "output_hash": "00" * 32}, "invalid_tee_signature", "RSA"),
        ("batch", "%%%", "invalid_record", "not base64"),
        ("batch", None, "invalid_record", "x-settlement-data: missing"),
        ("metadata", _gateway_data(), "invalid_record", "metadata"),
        ("refund", _gateway_data(), "invalid_record", "unknown mode"),
        ("individual", {**_gateway_data(mode="individual"), "output": "hello!"}, "invalid_record", "does not hash"),
        ("individual", _gateway_data(EC, mode="individual"), "invalid_record", "for RSA TEEs"),
        ("individual", {**_gateway_data(mode="individual"), "tee_signature": _noise(256)}, "invalid_tee_signature",
         "RSA"),
        ("individual", _gateway_data(OTHER_RSA, mode="individual"), "tee_not_active", "is not an active TEE"),
    ],
)  # fmt: skip
def test_bad_settlement_data_is_refused_with_a_reason(settlement_type: str, data: Any, reason: str, match: str) -> None:
    header = _header(data) if isinstance(data, dict) else data
    with pytest.raises(Rejected, match=match) as err:
        parse_settlement_data(settlement_type, header, CONFIG, source="x")
    assert err.value.reason == reason


def test_secp256k1_leaves_are_checked_against_the_registered_signer() -> None:
    domain = settlement_domain(DEPLOYMENT.chain_id, DEPLOYMENT.settlement_registry)
    when = int(time.time()) - 30
    attestation = InferenceAttestation(EC.tee_id, keccak256(b"i"), keccak256(b"o"), when)
    record = {
        "kind": "inference",
        "tee_id": to_hex(EC.tee_id),
        "input_hash": to_hex(attestation.input_hash),
        "output_hash": to_hex(attestation.output_hash),
        "timestamp": when,
        "tee_signature": to_hex(EC.sign_inference(domain, attestation)),
    }
    assert parse_record(record, CONFIG, source="x").lane is Lane.BATCH
    for signature in (os.urandom(64), EC.sign_message_hash(keccak256(b"something else"))):
        with pytest.raises(Rejected) as err:
            parse_record({**record, "tee_signature": to_hex(signature)}, CONFIG, source="x")
        assert err.value.reason == "invalid_tee_signature"


def test_settlement_data_lines_in_jsonl(tmp_path: Path) -> None:
    lines = [
        json.dumps({"kind": "settlement_data", "settlement_type": "batch", "data": _header(_gateway_data()), "ref": 7}),
        json.dumps({"kind": "settlement_data", "settlement_type": "private"}),
        json.dumps({"kind": "settlement_data", "settlement_type": "batch", "data": "AAAA", "extra": 1}),
    ]
    store = SqliteStore(tmp_path / "q.db")
    try:
        reports = list(submit_records(store, lines, CONFIG, name="in"))
    finally:
        store.close()
    assert [(r.status, r.reason) for r in reports] == [
        ("accepted", None),
        ("rejected", "nothing_to_settle"),
        ("rejected", "invalid_record"),
    ]
