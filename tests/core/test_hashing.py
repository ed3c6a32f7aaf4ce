"""OpenGradient hashing conventions: worked examples with independently computed hashes, and SettlementMode.

The expected hashes below were computed with a different implementation: Node's ``@noble/hashes``
``keccak_256`` (node_modules/@noble/hashes/sha3) over JSON text written out by hand in Python's
``json.dumps(..., sort_keys=True)`` style (", " and ": " separators, non-ASCII as \\uXXXX escapes).
"""

from __future__ import annotations

import pytest

from og_settle import InvalidInput, SettlementMode, input_hash, output_hash, tee_message_hash

REQUEST = {"model": "gpt-4o", "temperature": 0.5, "messages": [{"role": "user", "content": "Héllo"}]}
# keccak256('{"messages": [{"content": "H\\u00e9llo", "role": "user"}], "model": "gpt-4o", "temperature": 0.5}')
REQUEST_HASH = "0x6606233150e231c6e987d4fa9ed499fa08ad970e122068236d6945234d80e25b"
COMPLETION = "Hello, world! \u2713"
# keccak256 of the UTF-8 bytes of COMPLETION
COMPLETION_HASH = "0xf130fde52811eeeddf05e01aaa78cfa46baa7dcbb78cd7176ce4adcabf83a2da"
TOOL_CALLS = [
    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
]
# keccak256('[{"function": {"arguments": "{\\"city\\": \\"Paris\\"}", "name": "get_weather"}, "id": "call_1",
#            "type": "function"}]')
TOOL_CALLS_HASH = "0x1f0f20185d50442efcef1911793ef7e5e09834db7c50217a15c779df0db9b122"
# keccak256(REQUEST_HASH ‖ COMPLETION_HASH ‖ uint256(1700000000)), 96 packed bytes
TEE_MESSAGE_HASH = "0x5c1b9aeb8d494422e2e15aad6aa878ac75063ed3a468f61485168a3b71de57a5"
EMPTY_HASH = "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"  # keccak256("")


def test_input_hash_uses_python_json_conventions() -> None:
    assert "0x" + input_hash(REQUEST).hex() == REQUEST_HASH


def test_input_hash_ignores_key_order() -> None:
    reordered = {"messages": REQUEST["messages"], "temperature": 0.5, "model": "gpt-4o"}
    assert input_hash(reordered) == input_hash(REQUEST)


def test_input_hash_changes_with_any_field() -> None:
    assert input_hash({**REQUEST, "temperature": 0.6}) != input_hash(REQUEST)


def test_output_hash_of_completion_text() -> None:
    assert "0x" + output_hash(COMPLETION).hex() == COMPLETION_HASH
    assert "0x" + output_hash("").hex() == EMPTY_HASH


def test_output_hash_of_tool_calls_takes_precedence() -> None:
    assert "0x" + output_hash(tool_calls=TOOL_CALLS).hex() == TOOL_CALLS_HASH
    assert "0x" + output_hash(COMPLETION, tool_calls=TOOL_CALLS).hex() == TOOL_CALLS_HASH
    assert output_hash(COMPLETION, tool_calls=[]) == output_hash(COMPLETION)


def test_tee_message_hash_packs_two_hashes_and_a_uint256() -> None:
    assert "0x" + tee_message_hash(REQUEST_HASH, COMPLETION_HASH, 1700000000).hex() == TEE_MESSAGE_HASH
    as_bytes = tee_message_hash(bytes.fromhex(REQUEST_HASH[2:]), bytes.fromhex(COMPLETION_HASH[2:]), "1700000000")
    assert "0x" + as_bytes.hex() == TEE_MESSAGE_HASH


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: input_hash(["not", "a", "mapping"]), "request"),  # type: ignore[arg-type]
        (lambda: input_hash({"x": object()}), "request"),
        (lambda: output_hash(), "completion"),
        (lambda: output_hash(tool_calls="call"), "tool_calls"),  # type: ignore[arg-type]
        (lambda: tee_message_hash("0x12", COMPLETION_HASH, 1), "input_hash"),
        (lambda: tee_message_hash(REQUEST_HASH, COMPLETION_HASH[:-2], 1), "output_hash"),
        (lambda: tee_message_hash(REQUEST_HASH, COMPLETION_HASH, 2**256), "timestamp"),
        (lambda: tee_message_hash(REQUEST_HASH, COMPLETION_HASH, -1), "timestamp"),
    ],
)
def test_bad_input_names_the_field(call: object, field: str) -> None:
    with pytest.raises(InvalidInput, match=f"^{field}"):
        call()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("private", SettlementMode.PRIVATE),
        ("batch", SettlementMode.BATCH),
        ("individual", SettlementMode.INDIVIDUAL),
        ("metadata", SettlementMode.METADATA),
        ("PRIVATE", SettlementMode.PRIVATE),
        ("SETTLE_BATCH", SettlementMode.BATCH),
        ("BATCH_HASHED", SettlementMode.BATCH),
        ("SETTLE", SettlementMode.PRIVATE),  # the product documents: SETTLE posts no input or output hashes
        ("SETTLE_INDIVIDUAL", SettlementMode.INDIVIDUAL),
        ("SETTLE_METADATA", SettlementMode.METADATA),
        ("SETTLE_INDIVIDUAL_WITH_METADATA", SettlementMode.METADATA),
        ("INDIVIDUAL_FULL", SettlementMode.INDIVIDUAL),  # older SDKs sent the wire string "individual" for it
        ("settle_individual", SettlementMode.INDIVIDUAL),
    ],
)
def test_settlement_mode_accepts_wire_strings_and_sdk_names(name: str, mode: SettlementMode) -> None:
    assert SettlementMode.parse(name) is mode
    assert SettlementMode.parse(mode) is mode


def test_settlement_mode_wire_strings() -> None:
    assert [mode.value for mode in SettlementMode] == ["private", "batch", "individual", "metadata"]


@pytest.mark.parametrize("name", ["", "batched", " batch", "SETTLEMENT", "full"])
def test_settlement_mode_rejects_unknown_names(name: str) -> None:
    with pytest.raises(InvalidInput, match=r"^settlement_mode: unknown mode"):
        SettlementMode.parse(name)
