"""A Merkle batch's leaves from its queued payloads: the C path (``_batch_native.encode_payloads``) gives exactly
the Python encoding (msgspec + ``og_encoding_of``) for every payload it takes, and leaves the rest to Python.

The payloads are JSON texts as the queue stores them (``encode_payload``: sorted keys, compact) and in other
spellings (key order, whitespace, escapes, extra keys of every JSON type, wrong field forms, invalid JSON)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from og_settle import InvalidInput
from og_settle._merkle_hash import _native
from og_settle.relayer import _batching as batching
from og_settle.relayer._batching import _python_encoding, leaf_encodings
from og_settle.relayer._store_intake import encode_payload

HEX = "0123456789abcdefABCDEF"


def _python_or_error(payload: str) -> bytes | str:
    """The Python encoding of ``payload``, or the name of the error it raises."""
    try:
        return _python_encoding(payload)
    except (InvalidInput, msgspec.DecodeError, msgspec.ValidationError) as err:
        return type(err).__name__


def hex_text(digits: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=HEX, min_size=digits, max_size=digits)


def words() -> st.SearchStrategy[str]:
    """A bytes32 field: mostly canonical, sometimes spelled otherwise."""
    return st.one_of(
        hex_text(64).map(lambda digits: "0x" + digits),
        hex_text(64).map(lambda digits: "0X" + digits),
        st.integers(0, 70).flatmap(hex_text).map(lambda digits: "0x" + digits),
        hex_text(64),
        st.text(max_size=70),
    )


def signatures() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(0, 140).flatmap(hex_text).map(lambda digits: "0x" + digits),
        st.sampled_from([2046, 2047, 2048, 2049, 2050]).flatmap(hex_text).map(lambda digits: "0x" + digits),
        st.text(max_size=20),
    )


def timestamps() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(0, 2**40),
        st.integers(2**256 - 3, 2**256 + 3),
        st.integers(-(2**64), -1),
        st.booleans(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.none(),
        st.text(max_size=5),
    )


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6,
)

# JSON value texts for an extra key: valid ones of each kind, and near misses the C path must not take.
RAW_VALUES = [
    "0",
    "-0",
    "01",
    "-01",
    "1.5",
    "1e5",
    "-",
    "true",
    "tru",
    "false",
    "null",
    "nul",
    '""',
    '"a\\u0041"',
    '"a\\x"',
    '"\t"',
    '"é"',
    "[]",
    "{}",
    "[1,2]",
    '{"a":1}',
    " 1 ",
    "+1",
    "1x",
    '"abc',
]

LEAF_KEYS = ("tee_id", "input_hash", "output_hash", "tee_signature", "timestamp")


@st.composite
def payloads(draw: st.DrawFn) -> str:
    """A payload text: a leaf (fields sometimes missing or spelled wrong) with extra keys, serialized in one of
    several ways."""
    if draw(st.booleans()):  # half of them a valid leaf, so that the extra keys and spellings decide
        word = hex_text(64).map(lambda digits: "0x" + digits)
        record: dict[str, Any] = {
            "tee_id": draw(word),
            "input_hash": draw(word),
            "output_hash": draw(word),
            "tee_signature": "0x" + draw(st.integers(0, 140).flatmap(lambda n: hex_text(2 * n))),
            "timestamp": draw(st.integers(0, 2**256 - 1)),
        }
    else:
        record = {
            "tee_id": draw(words()),
            "input_hash": draw(words()),
            "output_hash": draw(words()),
            "tee_signature": draw(signatures()),
            "timestamp": draw(timestamps()),
        }
        for key in draw(st.lists(st.sampled_from(LEAF_KEYS), max_size=2, unique=True)):
            del record[key]
    extras = draw(
        st.dictionaries(st.sampled_from(["ref", "leaf_hash", "payer", "tee_verified", "kind", "x"]), JSON_VALUES)
    )
    record.update(extras)
    style = draw(
        st.sampled_from(["stored", "spaced", "ascii-escaped", "reordered", "duplicate", "mangled", "raw-extra"])
    )
    if style == "stored":
        return encode_payload(record)
    if style == "spaced":
        return json.dumps(record, indent=draw(st.sampled_from([None, 1])), ensure_ascii=False)
    if style == "ascii-escaped":
        return json.dumps(record, ensure_ascii=True)
    if style == "reordered":
        items = draw(st.permutations(list(record.items())))
        return json.dumps(dict(items), separators=(",", ":"))
    text = encode_payload(record)
    if style == "raw-extra":  # an extra key whose value is JSON text in any spelling, valid or not
        value = draw(st.sampled_from(RAW_VALUES) | st.text(alphabet='0123456789-+.eE"\\tuxnlrsfa ', max_size=6))
        return text[:-1] + ("," if len(text) > 2 else "") + '"extra":' + value + "}"
    if style == "duplicate" and record:
        key = draw(st.sampled_from(sorted(record)))
        return text[:-1] + ("," if len(text) > 2 else "") + json.dumps({key: record[key]})[1:]
    cut = draw(st.integers(0, len(text)))
    return text[:cut] + draw(st.sampled_from(["", " ", "x", "0", "\\", '"', "}", "\n", "01", "\x00"])) + text[cut:]


def canonical_payload(index: int, **extra: Any) -> str:
    digits = f"{index:064x}"
    record = {
        "tee_id": "0x" + "ab" * 32,
        "input_hash": "0x" + digits,
        "output_hash": "0x" + digits[::-1],
        "tee_signature": "0x" + "cd" * 65,
        "timestamp": 1_795_910_340 + index,
        "ref": f"bench-{index}",
        "leaf_hash": "0x" + "ef" * 32,
    }
    return encode_payload(record | extra)


def test_the_c_path_takes_stored_payloads() -> None:
    """The queue's own payloads (every extra key the intake writes) are taken natively, not left to Python."""
    assert _native is not None, "`make setup` builds og_settle._batch_native"
    texts = [
        canonical_payload(0),
        canonical_payload(1, tee_verified=False),
        canonical_payload(2, payer="0x" + "12" * 20, tee_verified=True),
        canonical_payload(3, note=None, count=-7),
        canonical_payload(4).replace('"bench-4"', '"caf\u00e9 \u2603"'),  # UTF-8 text, not escaped
    ]
    taken = _native.encode_payloads(texts)
    assert None not in taken
    assert taken == [_python_encoding(text) for text in texts]


@pytest.mark.parametrize(
    "text",
    [
        canonical_payload(0, ref="a\\b"),  # an escape in an extra value
        canonical_payload(0, ref="tab\there"),
        canonical_payload(0, nested={"a": 1}),
        canonical_payload(0, ratio=1.5),
        canonical_payload(0).replace('"tee_id"', '"tee\\u005fid"'),
        canonical_payload(0).replace('"ref":"bench-0"', '"ref":01'),
        canonical_payload(0).replace("0xab", "0Xab"),
        canonical_payload(0)[:-1] + ',"timestamp":5}',  # a leaf field twice
        canonical_payload(0) + " x",
    ],
)
def test_the_c_path_leaves_what_it_is_not_sure_of(text: str) -> None:
    assert _native is not None
    assert _native.encode_payloads([text]) == [None]


@settings(max_examples=400, deadline=None)
@given(texts=st.lists(payloads(), min_size=1, max_size=6))
def test_c_and_python_agree(texts: list[str]) -> None:
    """Every payload the C path takes has exactly the Python encoding (and Python accepts it)."""
    assert _native is not None
    for text, native in zip(texts, _native.encode_payloads(texts), strict=True):
        if native is not None:
            assert _python_or_error(text) == native, text


@settings(max_examples=100, deadline=None)
@given(texts=st.lists(payloads(), min_size=1, max_size=6))
def test_leaf_encodings_with_and_without_the_extension(texts: list[str]) -> None:
    """``leaf_encodings`` gives the same encodings, or the same error, through C and in Python alone."""

    def outcome() -> list[bytes] | str:
        try:
            return leaf_encodings(texts)
        except (InvalidInput, msgspec.DecodeError, msgspec.ValidationError) as err:
            return f"{type(err).__name__}: {err}"

    with_c = outcome()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(batching, "_native", None)
        without = outcome()
    assert with_c == without
