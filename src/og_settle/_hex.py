"""Parsing helpers for the hex strings and integers that cross og_settle's boundaries.

Every helper takes the value and the name of the field it came from, returns a canonical Python value, and
raises :class:`~og_settle.InvalidInput` naming that field when the value is malformed. Hex strings must carry
the ``0x`` prefix (either case of the digits is accepted); ``bytes`` are accepted as they are.
"""

from __future__ import annotations

from typing import Any, Final

import sha3

from og_settle._errors import InvalidInput

__all__ = [
    "UINT256_MAX",
    "keccak256",
    "parse_address",
    "parse_bytes32",
    "parse_hex_bytes",
    "parse_uint256",
    "to_checksum_address",
    "to_hex",
]

UINT256_MAX: Final = 2**256 - 1
_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")


def keccak256(data: bytes) -> bytes:
    """The Ethereum Keccak-256 digest of ``data`` (not NIST SHA3-256)."""
    digest: bytes = sha3.keccak_256(data).digest()
    return digest


def to_hex(data: bytes) -> str:
    """``data`` as a lowercase ``0x``-prefixed hex string."""
    return "0x" + data.hex()


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _hex_digits(value: str, field: str) -> str:
    if not value.startswith(("0x", "0X")):
        raise InvalidInput(f"{field}: expected a 0x-prefixed hex string, got {_describe(value)}")
    digits = value[2:]
    if not _HEX_DIGITS.issuperset(digits):
        bad = next(ch for ch in digits if ch not in _HEX_DIGITS)
        raise InvalidInput(f"{field}: not a hex string (bad character {bad!r}): {_describe(value)}")
    if len(digits) % 2:
        raise InvalidInput(f"{field}: hex string has an odd number of digits ({len(digits)})")
    return digits


def _fast_hex(value: str) -> bytes | None:
    """``0x`` hex as bytes, or None when it is anything else. ``fromhex`` refuses every non-hex character but skips
    whitespace, which the length then shows."""
    if value[:2] not in ("0x", "0X"):
        return None
    try:
        data = bytes.fromhex(value[2:])
    except ValueError:
        return None
    return data if 2 * len(data) == len(value) - 2 else None


def parse_hex_bytes(value: Any, field: str, max_len: int | None = None) -> bytes:
    """Parse a ``0x``-prefixed hex string (or take ``bytes``) of at most ``max_len`` bytes."""
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
    elif isinstance(value, str):
        fast = _fast_hex(value)
        data = bytes.fromhex(_hex_digits(value, field)) if fast is None else fast  # the slow path says what is wrong
    else:
        raise InvalidInput(f"{field}: expected a 0x-prefixed hex string, got {type(value).__name__}")
    if max_len is not None and len(data) > max_len:
        raise InvalidInput(f"{field}: {len(data)} bytes is over the limit of {max_len} bytes")
    return data


def parse_fixed_bytes(value: Any, field: str, length: int) -> bytes:
    """Parse exactly ``length`` bytes given as ``0x`` hex or ``bytes``."""
    data = parse_hex_bytes(value, field)
    if len(data) != length:
        raise InvalidInput(f"{field}: expected {length} bytes, got {len(data)}")
    return data


def parse_bytes32(value: Any, field: str) -> bytes:
    """Parse a 32-byte value (a hash, an id) given as ``0x`` + 64 hex digits or as ``bytes``."""
    if type(value) is bytes and len(value) == 32:
        return value
    return parse_fixed_bytes(value, field, 32)


# EIP-55 by whole-string byte arithmetic (it runs for every signature intake recovers): 0x20 where the hash nibble is
# 8 or more, 0x20 where the address digit is a letter; subtracting their AND upper-cases exactly those letters
# (each byte is at least 0x61 where 0x20 is taken off, so nothing borrows across bytes).
_HIGH_NIBBLE: Final = bytes(0x20 if ch in b"89abcdef" else 0 for ch in range(256))
_LETTER: Final = bytes(0x20 if ch in b"abcdef" else 0 for ch in range(256))


def to_checksum_address(address: bytes) -> str:
    """The EIP-55 mixed-case checksum form of a 20-byte address."""
    lower = address.hex().encode("ascii")
    nibbles = keccak256(lower).hex().encode("ascii")[:40]
    upper = int.from_bytes(nibbles.translate(_HIGH_NIBBLE), "big") & int.from_bytes(lower.translate(_LETTER), "big")
    return "0x" + (int.from_bytes(lower, "big") - upper).to_bytes(40, "big").decode("ascii")


def parse_address(value: Any, field: str, require_checksum: bool = False) -> str:
    """Parse a 20-byte address and return its EIP-55 checksummed form.

    An all-lowercase or all-uppercase address carries no checksum and is accepted unless ``require_checksum``
    is set. A mixed-case address whose checksum is wrong is always rejected: it is most likely a typo.
    """
    if isinstance(value, bytes) and len(value) == 20:
        return to_checksum_address(value)
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: expected a 0x-prefixed address string, got {type(value).__name__}")
    digits = _hex_digits(value, field)
    if len(digits) != 40:
        raise InvalidInput(f"{field}: expected a 20-byte address (40 hex digits), got {len(digits)} digits")
    checksummed = to_checksum_address(bytes.fromhex(digits))
    if value[2:] == checksummed[2:]:
        return checksummed
    if digits in (digits.lower(), digits.upper()):
        if require_checksum:
            raise InvalidInput(f"{field}: address {value} is not EIP-55 checksummed (expected {checksummed})")
        return checksummed
    raise InvalidInput(f"{field}: address {value} has a wrong EIP-55 checksum (expected {checksummed})")


def parse_uint256(value: Any, field: str) -> int:
    """Parse an unsigned 256-bit integer: a Python ``int``, a decimal string, or a ``0x`` hex string."""
    if isinstance(value, bool):
        raise InvalidInput(f"{field}: expected an integer, got a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        if value.startswith(("0x", "0X")):
            digits = value[2:]
            if not digits or not _HEX_DIGITS.issuperset(digits):
                raise InvalidInput(f"{field}: not a hex integer: {_describe(value)}")
            number = int(digits, 16)
        elif value.isascii() and value.isdigit():
            number = int(value)
        else:
            raise InvalidInput(f"{field}: not a decimal or 0x-hex integer: {_describe(value)}")
    else:
        raise InvalidInput(f"{field}: expected an integer, got {type(value).__name__}")
    if number < 0:
        raise InvalidInput(f"{field}: {number} is negative; expected an unsigned 256-bit integer")
    if number > UINT256_MAX:
        raise InvalidInput(f"{field}: {number} does not fit in uint256 (it must be below 2**256)")
    return number
