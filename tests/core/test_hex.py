"""Parsing helpers: canonical results, and InvalidInput naming the field for every kind of bad value."""

from __future__ import annotations

from typing import Any

import pytest
from eth_utils import to_checksum_address as reference_checksum
from hypothesis import given
from hypothesis import strategies as st

from og_settle import InvalidInput
from og_settle._hex import parse_address, parse_bytes32, parse_hex_bytes, parse_uint256, to_checksum_address


def test_parse_bytes32_accepts_hex_and_bytes() -> None:
    assert parse_bytes32("0x" + "Ab" * 32, "h") == bytes([0xAB]) * 32
    assert parse_bytes32(b"\x01" * 32, "h") == b"\x01" * 32


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0x" + "ab" * 31, "tee_id: expected 32 bytes, got 31"),
        ("0x" + "ab" * 33, "tee_id: expected 32 bytes, got 33"),
        ("ab" * 32, "tee_id: expected a 0x-prefixed hex string"),
        ("0x" + "zz" * 32, "tee_id: not a hex string"),
        ("0x" + "a" * 63, "tee_id: hex string has an odd number of digits"),
        (12, "tee_id: expected a 0x-prefixed hex string, got int"),
        (b"\x00" * 31, "tee_id: expected 32 bytes, got 31"),
    ],
)
def test_parse_bytes32_names_the_field(value: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_bytes32(value, "tee_id")
    assert str(info.value).startswith(message)


def test_parse_hex_bytes_cap() -> None:
    assert parse_hex_bytes("0x", "sig") == b""
    assert parse_hex_bytes("0x" + "00" * 4, "sig", max_len=4) == b"\x00" * 4
    with pytest.raises(InvalidInput, match=r"^sig: 5 bytes is over the limit of 4 bytes"):
        parse_hex_bytes("0x" + "00" * 5, "sig", max_len=4)


@given(st.binary(min_size=20, max_size=20))
def test_checksum_matches_eth_utils(raw: bytes) -> None:
    """Our EIP-55 checksum equals eth_utils' for every address, and all three spellings parse to it."""
    expected = reference_checksum(raw)
    assert to_checksum_address(raw) == expected
    for spelling in (expected, "0x" + raw.hex(), "0x" + raw.hex().upper()):
        assert parse_address(spelling, "payTo") == expected


def test_parse_address_checksum_rules() -> None:
    good = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    assert parse_address(good, "to", require_checksum=True) == good
    with pytest.raises(InvalidInput, match=r"^to: address .* is not EIP-55 checksummed"):
        parse_address(good.lower(), "to", require_checksum=True)
    broken = good[:-1] + "D"
    with pytest.raises(InvalidInput, match=r"^to: address .* has a wrong EIP-55 checksum"):
        parse_address(broken, "to")
    with pytest.raises(InvalidInput, match=r"^to: expected a 20-byte address"):
        parse_address("0x1234", "to")


@pytest.mark.parametrize(("value", "expected"), [(0, 0), ("0", 0), ("42", 42), ("0x2a", 42), (2**256 - 1, 2**256 - 1)])
def test_parse_uint256_accepts(value: Any, expected: int) -> None:
    assert parse_uint256(value, "amount") == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "amount: -1 is negative"),
        (2**256, "amount: 115792089237316195423570985008687907853269984665640564039457584007913129639936 does"),
        ("1e3", "amount: not a decimal or 0x-hex integer"),
        ("0x", "amount: not a hex integer"),
        (True, "amount: expected an integer, got a boolean"),
        (1.5, "amount: expected an integer, got float"),
        ("٣", "amount: not a decimal or 0x-hex integer"),
    ],
)
def test_parse_uint256_names_the_field(value: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_uint256(value, "amount")
    assert str(info.value).startswith(message)


@given(st.sampled_from(["0x", "0X", "", "x0"]), st.text(alphabet="0123456789abcdefABCDEF \t\ng\u0660", max_size=12))
def test_hex_bytes_accept_exactly_an_even_run_of_hex_digits(prefix: str, digits: str) -> None:
    """A 0x-prefixed string parses iff every character after the prefix is a hex digit and they pair up."""
    value = prefix + digits
    valid = prefix in ("0x", "0X") and all(ch in "0123456789abcdefABCDEF" for ch in digits) and len(digits) % 2 == 0
    if valid:
        assert parse_hex_bytes(value, "f") == bytes.fromhex(digits)
    else:
        with pytest.raises(InvalidInput, match=r"^f: "):
            parse_hex_bytes(value, "f")
