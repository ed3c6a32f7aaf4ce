"""x-settlement-data records: OpenGradient's base64 JSON, snake_case keys, base64 signatures, decimal timestamps."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from og_settle import InvalidInput
from og_settle._hex import keccak256
from og_settle.tee import RsaTeeKey, SettlementData, request_hash, response_output_hash

KEY = RsaTeeKey.generate(2048)
REQUEST = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}
RESPONSE = {"choices": [{"message": {"content": "hello"}, "finish_reason": "stop"}]}
PAYER = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"


def _record(**extra: Any) -> dict[str, Any]:
    in_hash, out_hash = request_hash(REQUEST), response_output_hash(RESPONSE)
    data = SettlementData("batch", KEY.tee_id, in_hash, out_hash, b"\x01", 1_764_400_000)
    signature = KEY.sign(data.message_hash)
    return {
        "tee_id": "0x" + KEY.tee_id.hex(),
        "input_hash": in_hash.hex(),  # the gateway writes bare hex
        "output_hash": out_hash.hex(),
        "tee_signature": base64.b64encode(signature).decode(),
        "tee_timestamp": "1764400000",
        **extra,
    }


def _header(obj: Any) -> str:
    return base64.b64encode(json.dumps(obj).encode()).decode()


def test_a_batch_record_round_trips_and_carries_the_raw_signature() -> None:
    data = SettlementData.from_header("batch", _header(_record()))
    assert data.tee_timestamp == 1_764_400_000 and len(data.tee_signature) == 256
    assert KEY.public.verify(data.message_hash, data.tee_signature)
    assert SettlementData.from_header("batch", data.to_header()) == data
    assert data.to_json()["tee_timestamp"] == "1764400000"


def test_an_individual_record_names_its_payer_and_carries_what_the_hashes_commit_to() -> None:
    obj = _record(input=REQUEST, output="hello", timestamp="1764400000", eth_address=PAYER.lower())
    data = SettlementData.from_header("individual", _header(obj))
    assert data.eth_address == PAYER
    data.check_payload()
    SettlementData.from_json("individual", {**obj, "input": json.dumps(REQUEST), "output": RESPONSE}).check_payload()
    with pytest.raises(InvalidInput, match=r"^output: does not hash"):
        SettlementData.from_json("individual", {**obj, "output": "hello!"}).check_payload()
    with pytest.raises(InvalidInput, match=r"^input: does not hash"):
        SettlementData.from_json("individual", {**obj, "input": {**REQUEST, "model": "x"}}).check_payload()


@pytest.mark.parametrize(
    ("mode", "header", "match"),
    [
        ("batch", "%%%", "^x-settlement-data: not base64"),
        ("batch", base64.b64encode(b"{nope").decode(), "^x-settlement-data: not JSON"),
        ("batch", _header([1]), "^x-settlement-data: expected a JSON object"),
        ("batch", _header(_record(extra=1)), "^extra: unknown key"),
        ("batch", _header(_record(tee_timestamp="12a")), "^tee_timestamp: not a decimal"),
        ("batch", _header(_record(tee_timestamp="-1")), "^tee_timestamp"),
        ("batch", _header(_record(input_hash="0x1234")), "^input_hash: expected 32 bytes"),
        ("batch", _header({k: v for k, v in _record().items() if k != "tee_id"}), "^tee_id: missing"),
        ("batch", _header(_record(tee_signature="")), "^tee_signature"),
        ("batch", _header(_record(tee_signature="!!!")), "^tee_signature: not base64"),
        ("batch", _header(_record(eth_address=PAYER)), "^eth_address: unknown key for batch"),
        ("individual", _header(_record(input="a", output="b")), "^eth_address: missing"),
        ("individual", _header(_record(input="a", eth_address=PAYER)), "^output: missing"),
        ("individual", _header(_record(input="a", output="b", eth_address=PAYER, timestamp="5")), "^timestamp: 5"),
        ("private", _header(_record()), "carries no settlement data"),
    ],
)
def test_malformed_records_are_one_line_errors_naming_the_field(mode: str, header: str, match: str) -> None:
    with pytest.raises(InvalidInput, match=match) as err:
        SettlementData.from_header(mode, header)
    assert "\n" not in str(err.value)


def test_the_header_size_is_capped() -> None:
    with pytest.raises(InvalidInput, match="over the limit"):
        SettlementData.from_header("individual", "A" * (256 * 1024 + 4))
    assert keccak256(b"") != keccak256(b"\x00")  # sanity: the hash is not constant
