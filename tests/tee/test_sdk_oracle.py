"""og-settle's OpenGradient hashes and response verification agree with the OpenGradient SDK itself.

The oracle is PyPI ``opengradient==1.1.4``, unmodified, in its own virtualenv (``tests/support/sdk_envs.py``):
``tests/tee/sdk_oracle.py`` runs there and answers with the SDK's ``build_inner_request``,
``response_content_for_hash``, ``tee_id_for_key`` and ``verify_response``. One SDK process serves the whole module.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from og_settle import InvalidInput
from og_settle.tee import (
    RsaTeeKey,
    canonical_request,
    request_hash,
    response_output_hash,
    sign_response,
    verify_response,
)
from tests.support import sdk_envs
from tests.tee.corpus import BAD_CHAT_REQUESTS, CHAT_REQUESTS, RESPONSES, random_requests

ORACLE = Path(__file__).with_name("sdk_oracle.py")
RANDOM = random_requests(seed=20261129, count=400)
KEYS = {bits: RsaTeeKey.generate(bits) for bits in (2048, 3072, 4096)}
SIGNED_AT = 1_764_400_000


def _ours(body: Any) -> dict[str, str]:
    try:
        return {"hash": request_hash(body).hex()}
    except InvalidInput:
        return {"error": "refused"}


def _signed_cases() -> list[tuple[str, dict[str, Any], bool]]:
    """(name, {request, response, pem}, should verify): honest responses we sign, and tampered copies of them."""
    key = KEYS[2048]
    other = KEYS[3072]
    cases: list[tuple[str, dict[str, Any], bool]] = []
    pairs = [
        ("every optional field present", "text"),
        ("attachments reduced to type and filename", "content as a list of parts is joined"),
        (
            "assistant tool calls reduced to id/type/function{name,arguments}",
            "tool calls hash json.dumps(tool_calls, sort_keys=True)",
        ),
        ("non-ASCII text is escaped as json.dumps does", "non-ASCII text is hashed as UTF-8"),
    ]
    for request_name, response_name in pairs:
        request, response = CHAT_REQUESTS[request_name], RESPONSES[response_name]
        for signer in (key, other):
            signed = {**response, **sign_response(signer, request, response, timestamp=SIGNED_AT)}
            pem = signer.public.pem
            label = f"{request_name} / {response_name} / {signer.public.bits}"
            cases.append((f"honest: {label}", {"request": request, "response": signed, "pem": pem}, True))
            flipped = bytearray(base64.b64decode(signed["tee_signature"]))
            flipped[len(flipped) // 2] ^= 0x01
            tampered: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
                ("one signature bit", request, {**signed, "tee_signature": base64.b64encode(flipped).decode()}, pem),
                ("the timestamp", request, {**signed, "tee_timestamp": SIGNED_AT + 1}, pem),
                ("the request", {**request, "temperature": 0.5}, signed, pem),
                ("the output", request, {**signed, "choices": [{"message": {"content": "edited"}}]}, pem),
                ("another key", request, signed, (other if signer is key else key).public.pem),
            ]
            for what, req, resp, used_pem in tampered:
                cases.append((f"tampered {what}: {label}", {"request": req, "response": resp, "pem": used_pem}, False))
    return cases


SIGNED = _signed_cases()


@pytest.fixture(scope="module")
def oracle() -> dict[str, Any]:
    env = sdk_envs.python_env("opengradient")
    job = {
        "requests": [*CHAT_REQUESTS.values(), *BAD_CHAT_REQUESTS.values(), *RANDOM],
        "responses": list(RESPONSES.values()),
        "keys": [key.public.pem for key in KEYS.values()],
        "verify": [case for _, case, _ in SIGNED],
    }
    answer: dict[str, Any] = sdk_envs.run_python(env, ORACLE, input_json=job, timeout=600)
    return answer


@pytest.mark.parametrize("index", range(len(CHAT_REQUESTS)), ids=list(CHAT_REQUESTS))
def test_request_hash_equals_the_sdks(oracle: dict[str, Any], index: int) -> None:
    """For every rule of build_inner_request, og-settle's request hash is the SDK's, byte for byte."""
    body = list(CHAT_REQUESTS.values())[index]
    theirs = oracle["requests"][index]
    assert "hash" in theirs, f"the SDK refused a corpus request: {theirs}"
    assert request_hash(body).hex() == theirs["hash"]


@pytest.mark.parametrize("index", range(len(BAD_CHAT_REQUESTS)), ids=list(BAD_CHAT_REQUESTS))
def test_requests_the_sdk_refuses_are_refused(oracle: dict[str, Any], index: int) -> None:
    body = list(BAD_CHAT_REQUESTS.values())[index]
    assert "error" in oracle["requests"][len(CHAT_REQUESTS) + index]
    with pytest.raises(InvalidInput):
        request_hash(body)


def test_random_requests_hash_as_the_sdk_hashes_them(oracle: dict[str, Any]) -> None:
    """400 seeded random requests (odd parts, tool calls with missing fields, falsy optional fields, extra
    fields): every hash, and every refusal, matches the SDK."""
    theirs = oracle["requests"][len(CHAT_REQUESTS) + len(BAD_CHAT_REQUESTS) :]
    ours = [_ours(body) for body in RANDOM]
    mismatched = [
        (i, o, t) for i, (o, t) in enumerate(zip(ours, theirs, strict=True)) if o.get("hash") != t.get("hash")
    ]
    assert not mismatched, f"{len(mismatched)} of {len(RANDOM)} differ, first: {RANDOM[mismatched[0][0]]}"
    assert sum("hash" in t for t in theirs) > 300  # the corpus is mostly requests the SDK accepts


@pytest.mark.parametrize("index", range(len(RESPONSES)), ids=list(RESPONSES))
def test_output_hash_equals_the_sdks(oracle: dict[str, Any], index: int) -> None:
    body = list(RESPONSES.values())[index]
    assert response_output_hash(body).hex() == oracle["responses"][index]


def test_tee_id_equals_the_sdks(oracle: dict[str, Any]) -> None:
    """teeId = keccak256(DER SubjectPublicKeyInfo), for 2048-, 3072- and 4096-bit keys."""
    assert [key.tee_id.hex() for key in KEYS.values()] == [t.removeprefix("0x") for t in oracle["keys"]]


@pytest.mark.parametrize("index", range(len(SIGNED)), ids=[name for name, _, _ in SIGNED])
def test_verify_response_agrees_with_the_sdks(oracle: dict[str, Any], index: int) -> None:
    """Responses signed by og-settle verify in the SDK's verify_response; every tampered copy fails in both."""
    _, case, honest = SIGNED[index]
    theirs = oracle["verify"][index]
    assert theirs["ok"] is honest, theirs
    if honest:
        proof = verify_response(case["request"], case["response"], case["pem"])
        assert proof.input_hash == request_hash(case["request"])
    else:
        with pytest.raises(InvalidInput):
            verify_response(case["request"], case["response"], case["pem"])


def test_canonicalising_twice_changes_nothing() -> None:
    """verify_response may be given the canonical request instead of the one sent."""
    for body in [*CHAT_REQUESTS.values(), *RANDOM]:
        try:
            once = canonical_request(body)
        except InvalidInput:
            continue
        assert canonical_request(once) == once
