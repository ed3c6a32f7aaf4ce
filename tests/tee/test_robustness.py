"""Arbitrary input never breaks og_settle.tee: it is canonicalised, hashed, verified or refused with InvalidInput."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from og_settle import InvalidInput
from og_settle.tee import (
    RsaTeeKey,
    SettlementData,
    canonical_request,
    request_hash,
    response_output_hash,
    verify_response,
)

KEY = RsaTeeKey.generate(2048)
_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
JSON = st.recursive(
    _SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
)
_ROLES = st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"] * 3 + ["critic", None])
MESSAGE = st.fixed_dictionaries(
    {"role": _ROLES},
    optional={"content": JSON, "tool_calls": JSON, "tool_call_id": JSON, "name": JSON},
)
REQUEST = st.fixed_dictionaries(
    {"model": st.text(min_size=1, max_size=6), "messages": st.lists(MESSAGE, min_size=1, max_size=4)},
    optional={k: JSON for k in ("temperature", "max_tokens", "stop", "tools", "response_format", "web_search")},
)


@given(REQUEST | st.dictionaries(st.sampled_from(["model", "messages", "prompt", "temperature"]), JSON) | JSON)
def test_requests_are_canonicalised_or_refused_and_canonical_forms_are_fixed_points(body: Any) -> None:
    """Any JSON body: a canonical request (that canonicalises to itself) and a hash, or InvalidInput."""
    try:
        canonical = canonical_request(body)
    except InvalidInput:
        return
    assert json.dumps(canonical_request(canonical), sort_keys=True) == json.dumps(canonical, sort_keys=True)  # NaN-safe
    assert request_hash(body) == request_hash(canonical)


@given(JSON)
def test_any_response_body_gives_an_output_hash_or_invalid_input(body: Any) -> None:
    with contextlib.suppress(InvalidInput):
        assert len(response_output_hash(body)) == 32


@given(st.dictionaries(st.sampled_from(["tee_signature", "tee_request_hash", "tee_output_hash", "tee_timestamp",
                                         "tee_id", "choices"]), JSON))  # fmt: skip
def test_any_tee_fields_fail_verification_cleanly(response: dict[str, Any]) -> None:
    request = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    try:
        verify_response(request, response, KEY.public)
    except InvalidInput:
        return
    raise AssertionError("unsigned fields verified")


@given(st.sampled_from(["batch", "individual"]), JSON | st.binary(max_size=64))
def test_any_settlement_data_header_is_parsed_or_refused(mode: str, value: Any) -> None:
    header = value if isinstance(value, bytes) else base64.b64encode(json.dumps(value).encode()).decode()
    with contextlib.suppress(InvalidInput):
        SettlementData.from_header(mode, header)
