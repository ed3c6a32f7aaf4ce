"""The gateway's parts without a chain: DA blob store, price files, request validation, the stand-in model, and
the stand-in TEE's hashes and signatures judged by the OpenGradient SDK's own verifier (opengradient==1.1.4)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from og_settle import InvalidInput, InvariantViolation
from og_settle.gateway import (
    LocalBlobStore,
    ModelOutput,
    StandInEchoModel,
    StandInTee,
    blob_id_for,
    parse_inference_request,
    parse_prices,
)
from tests.support.sdk_envs import python_env, run_python


@pytest.fixture(scope="module")
def tee() -> StandInTee:
    return StandInTee.generate()


# -- DA blob store -------------------------------------------------------------------------------------------


def test_blob_store_is_content_addressed_and_durable(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    data = b'{"tee_id":"0x01"}'
    blob_id = store.put(data)
    assert blob_id == base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    assert store.put(data) == blob_id  # idempotent
    assert LocalBlobStore(tmp_path / "blobs").get(blob_id) == data  # a new process reads it back
    assert store.pointer(blob_id) == b"local-sha256:" + blob_id.encode()
    assert LocalBlobStore.blob_id_from_pointer(store.pointer(blob_id)) == blob_id
    assert not [p for p in store.path(blob_id).parent.iterdir() if p.name.startswith(".tmp-")]


def test_blob_store_refuses_unknown_malformed_and_corrupted(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    with pytest.raises(InvalidInput, match="no blob"):
        store.get(blob_id_for(b"never stored"))
    with pytest.raises(InvalidInput, match="43 base64url"):
        store.get("../../etc/passwd")
    blob_id = store.put(b"original")
    store.path(blob_id).write_bytes(b"tampered")
    with pytest.raises(InvariantViolation, match="does not match its content"):
        store.get(blob_id)
    with pytest.raises(InvalidInput, match="expected local-sha256"):
        LocalBlobStore.blob_id_from_pointer(b"walrus:abc")


# -- prices ----------------------------------------------------------------------------------------------------


def test_prices_parse_and_meter() -> None:
    prices = parse_prices(
        {
            "format": "og-settle-prices-v1",
            "models": {
                "a": {"exact": "1000", "upto_base": 5, "upto_per_output_token": "7"},
                "b": {"exact": 3},
            },
        }
    )
    assert prices["a"].upto_maximum(10) == 75 and prices["a"].upto_charge(0) == 5
    assert prices["b"].upto_per_output_token is None
    with pytest.raises(InvalidInput, match="upto is not offered"):
        prices["b"].upto_charge(1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"models": {"a": {"exact": 1}}}, "format"),
        ({"format": "og-settle-prices-v1", "models": {}}, "models"),
        ({"format": "og-settle-prices-v1", "models": {"a": {}}}, "models.a: give an exact price"),
        ({"format": "og-settle-prices-v1", "models": {"a": {"exact": "-1"}}}, "models.a.exact"),
        ({"format": "og-settle-prices-v1", "models": {"a": {"exact": 0}}}, "a price of 0"),
        ({"format": "og-settle-prices-v1", "models": {"a": {"exact": 1, "per_token": 2}}}, "unknown field"),
    ],
)
def test_bad_price_files_name_the_field(data: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_prices(data)


# -- requests and the stand-in model ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "body", "message"),
    [
        ("chat", [], "body: expected a JSON object"),
        ("chat", {"messages": [{"role": "user", "content": "x"}]}, "model"),
        ("chat", {"model": "m", "messages": []}, "messages: expected a non-empty list"),
        ("chat", {"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, r"messages\[0\].role"),
        ("chat", {"model": "m", "messages": [{"role": "user", "content": 5}]}, r"messages\[0\].content"),
        ("chat", {"model": "m", "messages": [{"role": "user"}], "max_tokens": 0}, "max_tokens"),
        ("chat", {"model": "m", "messages": [{"role": "user"}], "temperature": "hot"}, "temperature"),
        ("chat", {"model": "m", "messages": [{"role": "user"}], "stream": "yes"}, "stream"),
        ("chat", {"model": "m", "messages": [{"role": "user"}], "tools": {"a": 1}}, "tools"),
        ("completion", {"model": "m"}, "prompt"),
        ("completion", {"model": "m", "prompt": "p", "stop": [1]}, "stop"),
    ],
)
def test_malformed_requests_name_the_field(kind: Any, body: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_inference_request(kind, body)


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_stand_in_model_is_deterministic_and_meters_words() -> None:
    model = StandInEchoModel()
    chat = parse_inference_request(
        "chat", {"model": "m", "messages": [{"role": "user", "content": "one two three"}], "max_tokens": 3}
    )
    output = _run(model.generate(chat))
    assert output == ModelOutput("You said: one", "length", 3, 3)
    pieces = _run(_collect(model.stream(chat)))
    assert "".join(p for p in pieces[:-1]) == output.text and pieces[-1] == output
    completion = parse_inference_request("completion", {"model": "m", "prompt": "a b"})
    assert _run(model.generate(completion)) == ModelOutput("a b", "stop", 2, 2)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    called = _run(
        model.generate(
            parse_inference_request(
                "chat", {"model": "m", "messages": [{"role": "user", "content": "Dallas"}], "tools": tools}
            )
        )
    )
    assert called.finish_reason == "tool_calls"
    assert called.tool_calls[0]["function"] == {"name": "get_weather", "arguments": '{"input": "Dallas"}'}


async def _collect(stream: Any) -> list[Any]:
    return [item async for item in stream]


# -- the stand-in TEE, judged by OpenGradient's SDK -------------------------------------------------------------

_VERIFY = """
import json, sys
from opengradient.client import tee_verify as tv
cases = json.load(sys.stdin)
results = []
for case in cases:
    if case["kind"] == "chat":
        _, canonical = tv.build_inner_request(case["request"])
        content = tv.response_content_for_hash(case["response"])
    else:
        canonical, content = case["canonical"], case["content"]
    try:
        proof = tv.verify_response(canonical_request=canonical, response_body=case["response"],
                                   response_content=content, signing_key_pem=case["pem"])
        results.append({"ok": True, "tee_id": proof.tee_id, "request_hash": proof.request_hash})
    except tv.VerificationError as err:
        results.append({"ok": False, "error": str(err)})
print(json.dumps(results))
"""


def _answer(tee: StandInTee, kind: Any, body: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    request = parse_inference_request(kind, body)
    output = _run(StandInEchoModel().generate(request))
    attestation = tee.attest(request, output)
    message: dict[str, Any] = {"role": "assistant", "content": output.text}
    if output.tool_calls:
        message["tool_calls"] = [dict(c) for c in output.tool_calls]
    response = {"choices": [{"index": 0, "message": message, "finish_reason": output.finish_reason}]}
    response.update(attestation.response_fields())
    return response, output


def test_stand_in_tee_signs_what_opengradients_verifier_accepts(tee: StandInTee) -> None:
    """Chat (developer role, attachments, tools, tool calls) and completion answers verify with the SDK's
    ``tee_verify.verify_response`` against the TEE's public key; a tampered answer does not."""
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    chats = [
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        {
            "model": "gpt-4.1-2025-04-14",
            "temperature": 0.7,
            "max_tokens": 50,
            "stop": ["\n"],
            "messages": [
                {"role": "developer", "content": "be brief"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "see file"},
                        {"type": "file", "file": {"filename": "a.pdf", "file_data": "QUJD"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}, "x": 1}
                    ],
                },
                {"role": "tool", "content": "42", "tool_call_id": "c1"},
                {"role": "user", "content": "thanks"},
            ],
        },
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "weather?"}],
            "tools": tools,
            "tool_choice": "auto",
        },
    ]
    cases: list[dict[str, Any]] = []
    for body in chats:
        response, _ = _answer(tee, "chat", body)
        cases.append({"kind": "chat", "request": body, "response": response, "pem": tee.public_key_pem})
    completion = {"model": "gpt-4o", "prompt": "Translate: hello", "max_tokens": 20}
    response, output = _answer(tee, "completion", completion)
    canonical = {"model": "gpt-4o", "prompt": "Translate: hello", "temperature": 0.0, "max_tokens": 20}
    cases.append(
        {
            "kind": "completion",
            "canonical": canonical,
            "content": output.text,
            "response": response,
            "pem": tee.public_key_pem,
        }
    )
    tampered = json.loads(json.dumps(cases[0]))
    tampered["response"]["choices"][0]["message"]["content"] += "!"
    cases.append(tampered)
    other = StandInTee.generate()
    wrong_key = json.loads(json.dumps(cases[0]))
    wrong_key["pem"] = other.public_key_pem
    cases.append(wrong_key)

    results = run_python(python_env("opengradient"), _VERIFY, input_json=cases)
    assert [r["ok"] for r in results] == [True, True, True, True, False, False], results
    assert all(r["tee_id"] == "0x" + tee.tee_id.hex() for r in results[:4])
    assert "output hash mismatch" in results[4]["error"]
    assert "tee_id mismatch" in results[5]["error"]


def test_stand_in_tee_key_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "tee.pem"
    first = StandInTee.load_or_create(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert StandInTee.load_or_create(path).tee_id == first.tee_id
    path.write_text("not a key")
    with pytest.raises(InvalidInput, match="not a readable PEM private key"):
        StandInTee.load_or_create(path)
