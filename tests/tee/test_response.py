"""verify_response: each of the reference verifier's checks, in its order, with a named reason; and sign_response."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from og_settle.tee import (
    ResponseVerificationError,
    RsaTeeKey,
    TeeKey,
    canonical_completion_request,
    canonical_request,
    request_hash,
    response_output,
    sign_response,
    verify_response,
)

KEY = RsaTeeKey.generate(2048)
OTHER = RsaTeeKey.generate(2048)
REQUEST = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.3, "n": 1}
RESPONSE = {"choices": [{"message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}]}
NOW = 1_764_400_000


def _signed(key: Any = KEY, **overrides: Any) -> dict[str, Any]:
    return {**RESPONSE, **sign_response(key, REQUEST, RESPONSE, timestamp=NOW), **overrides}


def test_the_gateways_field_formats() -> None:
    fields = sign_response(KEY, REQUEST, RESPONSE, timestamp=NOW)
    assert fields["tee_id"] == "0x" + KEY.tee_id.hex()
    assert fields["tee_request_hash"] == request_hash(REQUEST).hex()  # bare hex, as the gateway writes it
    assert fields["tee_timestamp"] == NOW
    assert len(base64.b64decode(fields["tee_signature"], validate=True)) == 256


def test_an_honest_response_verifies_by_pem_der_or_key() -> None:
    for key in (KEY.public, KEY.public.pem, KEY.public.der):
        proof = verify_response(REQUEST, _signed(), key, expected_tee_id=KEY.tee_id)
        assert proof.tee_id == KEY.tee_id and proof.timestamp == NOW
    # the canonical request verifies as well as the one sent
    verify_response(canonical_request(REQUEST), _signed(), KEY.public)


@pytest.mark.parametrize(
    ("response", "request_body", "reason"),
    [
        ({**RESPONSE}, REQUEST, "missing_field"),
        (_signed(tee_id="0x" + OTHER.tee_id.hex()), REQUEST, "tee_id_mismatch"),
        (_signed(), {**REQUEST, "temperature": 0.4}, "request_hash_mismatch"),
        (_signed(choices=[{"message": {"content": "hello!"}}]), REQUEST, "output_hash_mismatch"),
        (_signed(tee_timestamp=NOW - 1), REQUEST, "invalid_signature"),
        (_signed(tee_signature="not base64!"), REQUEST, "invalid_signature"),
        (_signed(tee_signature=_signed(OTHER)["tee_signature"]), REQUEST, "invalid_signature"),
        (_signed(tee_timestamp=True), REQUEST, "missing_field"),
        (_signed(tee_request_hash="zz"), REQUEST, "missing_field"),
    ],
)
def test_each_failed_check_is_named(response: dict[str, Any], request_body: dict[str, Any], reason: str) -> None:
    with pytest.raises(ResponseVerificationError) as err:
        verify_response(request_body, response, KEY.public)
    assert err.value.reason == reason


def test_expected_tee_id_and_the_freshness_window() -> None:
    with pytest.raises(ResponseVerificationError, match=r"^tee_id_mismatch"):
        verify_response(REQUEST, _signed(), KEY.public, expected_tee_id=OTHER.tee_id)
    window = {"max_age_seconds": 3600, "max_future_drift_seconds": 300}
    verify_response(REQUEST, _signed(), KEY.public, now=NOW + 3600, **window)
    with pytest.raises(ResponseVerificationError, match=r"^timestamp_too_old"):
        verify_response(REQUEST, _signed(), KEY.public, now=NOW + 3601, **window)
    with pytest.raises(ResponseVerificationError, match=r"^timestamp_in_future"):
        verify_response(REQUEST, _signed(), KEY.public, now=NOW - 301, **window)


def test_a_secp256k1_tee_signs_and_verifies_the_same_way() -> None:
    key = TeeKey(bytes.fromhex("7e" * 32))
    proof = verify_response(REQUEST, _signed(key), key.public)
    assert len(proof.signature) == 65
    with pytest.raises(ResponseVerificationError, match=r"^invalid_signature"):
        verify_response(REQUEST, _signed(key, tee_timestamp=NOW + 1), key.public)


def test_a_stream_signs_and_verifies_the_text_it_sent() -> None:
    final_frame = {"choices": [{"delta": {}, "finish_reason": "stop"}]}
    fields = sign_response(KEY, REQUEST, final_frame, timestamp=NOW, output="streamed text")
    verify_response(REQUEST, {**final_frame, **fields}, KEY.public, output="streamed text")
    with pytest.raises(ResponseVerificationError, match=r"^output_hash_mismatch"):
        verify_response(REQUEST, {**final_frame, **fields}, KEY.public, output="streamed text!")


def test_completion_requests_reduce_as_the_gateways_completions_endpoint() -> None:
    body = {"model": "m", "prompt": "Say hi", "temperature": 1, "max_tokens": 0, "stop": ["\n"], "web_search": 1}
    body |= {"n": 3, "echo": True}
    expected = {"model": "m", "prompt": "Say hi", "temperature": 1.0, "max_tokens": 0, "stop": ["\n"]}
    assert canonical_request(body) == canonical_completion_request(body) == {**expected, "web_search": True}
    assert canonical_request({"model": "m", "prompt": "x", "stop": [], "max_tokens": None}) == {
        "model": "m",
        "prompt": "x",
        "temperature": 0.0,
    }
    completion = {"choices": [{"text": "Hi!", "index": 0, "finish_reason": "stop"}]}
    assert response_output(completion) == "Hi!"
    fields = sign_response(KEY, body, completion, timestamp=NOW)
    verify_response(body, {**completion, **fields}, KEY.public)
