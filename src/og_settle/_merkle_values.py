"""The ABI values of a tree's leaves: coercion from Python or JSON forms, JSON rendering, leaf hashes."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any, Final, TypeAlias

import sha3

from og_settle import _merkle_hash
from og_settle._errors import InvalidInput
from og_settle._hex import UINT256_MAX, parse_address, parse_fixed_bytes, parse_hex_bytes, parse_uint256, to_hex
from og_settle._merkle_leaf import OG_LEAF_ENCODING, InferenceLeaf, LeafValue, _short_repr, og_encodings

__all__ = ["leaf_hash"]

_keccak = sha3.keccak_256


_Codec: TypeAlias = tuple[Callable[[Any, str], Any], Callable[[Any], Any]]


@lru_cache(maxsize=256)
def _codec(type_str: str) -> _Codec:
    """(coerce, to_json) for an ABI type: coerce maps a Python or JSON value to its canonical Python form
    (``bytes``, ``int``, ``bool``, ``str``, checksummed address ``str``, tuples), raising InvalidInput naming
    the path; to_json maps the canonical form to the dump's JSON form. Elementary types in their canonical
    spelling (``uint256``, ``bytes32``, ``address``...) are read without eth_abi, which the batch tools do not
    otherwise import; every other type string goes through ``eth_abi.grammar``."""
    simple = _ELEMENTARY_TYPE.fullmatch(type_str)
    if simple is not None and simple["size"] in _ELEMENTARY_SIZES[simple["base"]]:
        return _elementary_codec(type_str, simple["base"], int(simple["size"]) if simple["size"] else None)
    from eth_abi.exceptions import ABITypeError, ParseError
    from eth_abi.grammar import BasicType, TupleType, normalize, parse

    try:
        abi_type = parse(normalize(type_str))  # type: ignore[no-untyped-call]  # eth_abi.grammar is unannotated
        abi_type.validate()
    except (ParseError, ABITypeError) as err:
        raise InvalidInput(f"not a valid ABI type {type_str!r}: {err}") from None
    if abi_type.is_array:
        item_coerce, item_json = _codec(abi_type.item_type.to_type_str())
        dims = abi_type.arrlist[-1]
        size = dims[0] if dims else None

        def coerce_array(value: Any, path: str) -> Any:
            if not isinstance(value, list | tuple):
                raise InvalidInput(f"{path}: expected an array for {type_str}, got {type(value).__name__}")
            if size is not None and len(value) != size:
                raise InvalidInput(f"{path}: expected {size} items for {type_str}, got {len(value)}")
            return tuple(item_coerce(item, f"{path}[{i}]") for i, item in enumerate(value))

        return coerce_array, lambda value: [item_json(item) for item in value]
    if isinstance(abi_type, TupleType):
        parts = [_codec(component.to_type_str()) for component in abi_type.components]

        def coerce_tuple(value: Any, path: str) -> Any:
            if not isinstance(value, list | tuple) or len(value) != len(parts):
                raise InvalidInput(f"{path}: expected an array of {len(parts)} items for {type_str}")
            return tuple(
                coerce(item, f"{path}[{i}]") for i, ((coerce, _), item) in enumerate(zip(parts, value, strict=True))
            )

        return coerce_tuple, lambda value: [to_json(item) for (_, to_json), item in zip(parts, value, strict=True)]
    assert isinstance(abi_type, BasicType)
    return _elementary_codec(type_str, abi_type.base, int(abi_type.sub) if abi_type.sub else None)


_ELEMENTARY_SIZES: Final = {
    "uint": {str(bits) for bits in range(8, 257, 8)},
    "int": {str(bits) for bits in range(8, 257, 8)},
    "bytes": {""} | {str(size) for size in range(1, 33)},
    "address": {""},
    "bool": {""},
    "string": {""},
}
_ELEMENTARY_TYPE: Final = re.compile("(?P<base>uint|int|bytes|address|bool|string)(?P<size>[0-9]*)")


def _elementary_codec(type_str: str, base: str, sub: int | None) -> _Codec:
    if base == "uint":
        assert sub is not None
        limit = 2**sub

        def coerce_uint(value: Any, path: str) -> int:
            number = parse_uint256(value, path)
            if number >= limit:
                raise InvalidInput(f"{path}: {number} does not fit in {type_str}")
            return number

        return coerce_uint, str
    if base == "int":
        assert sub is not None
        half = 2 ** (sub - 1)

        def coerce_int(value: Any, path: str) -> int:
            if isinstance(value, str) and value.startswith("-"):
                number = -parse_uint256(value[1:], path)
            elif isinstance(value, int) and not isinstance(value, bool) and value < 0:
                number = value
            else:
                number = parse_uint256(value, path)
            if not -half <= number < half:
                raise InvalidInput(f"{path}: {number} does not fit in {type_str}")
            return number

        return coerce_int, str
    if base == "address":
        return parse_address, lambda value: value
    if base == "bool":

        def coerce_bool(value: Any, path: str) -> bool:
            if not isinstance(value, bool):
                raise InvalidInput(f"{path}: expected a boolean, got {_short_repr(value)}")
            return value

        return coerce_bool, lambda value: value
    if base == "bytes" and sub:
        length = sub
        return (lambda value, path: parse_fixed_bytes(value, path, length)), to_hex
    if base == "bytes":
        return parse_hex_bytes, to_hex
    if base == "string":

        def coerce_string(value: Any, path: str) -> str:
            if not isinstance(value, str):
                raise InvalidInput(f"{path}: expected a string, got {type(value).__name__}")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidInput(f"{path}: string is not valid Unicode (lone surrogate)") from None
            return value

        return coerce_string, lambda value: value
    raise InvalidInput(f"ABI type {type_str!r} is not supported in Merkle leaves")


def _check_encoding(leaf_encoding: Iterable[str], field: str = "leafEncoding") -> tuple[str, ...]:
    if isinstance(leaf_encoding, str | bytes):
        raise InvalidInput(f"{field}: expected a list of ABI type strings, got a single string")
    try:
        encoding = tuple(leaf_encoding)
    except TypeError:
        raise InvalidInput(f"{field}: expected a list of ABI type strings") from None
    if not encoding:
        raise InvalidInput(f"{field}: must name at least one ABI type")
    for i, type_str in enumerate(encoding):
        if not isinstance(type_str, str):
            raise InvalidInput(f"{field}[{i}]: expected an ABI type string, got {_short_repr(type_str)}")
        try:
            _codec(type_str)
        except InvalidInput as err:
            raise InvalidInput(f"{field}[{i}]: {err}") from None
    return encoding


def _coerce_value(encoding: tuple[str, ...], value: Any, path: str) -> LeafValue:
    if isinstance(value, InferenceLeaf):
        if encoding != OG_LEAF_ENCODING:
            raise InvalidInput(f"{path}: an InferenceLeaf needs the OpenGradient leaf encoding")
        return value.values()
    if not isinstance(value, list | tuple):
        raise InvalidInput(f"{path}: expected an array of {len(encoding)} values, got {type(value).__name__}")
    if len(value) != len(encoding):
        raise InvalidInput(f"{path}: expected {len(encoding)} values for {list(encoding)}, got {len(value)}")
    return tuple(_codec(t)[0](item, f"{path}[{i}]") for i, (t, item) in enumerate(zip(encoding, value, strict=True)))


def _og_leaf_hashes(values: list[LeafValue]) -> list[bytes]:
    if _merkle_hash._native is not None:
        joined = _merkle_hash.leaf_hashes(list(og_encodings(values)))
        return [joined[k : k + 32] for k in range(0, len(joined), 32)]
    keccak = _keccak
    return [keccak(keccak(encoded).digest()).digest() for encoded in og_encodings(values)]


def _leaf_hashes(encoding: tuple[str, ...], values: list[LeafValue]) -> list[bytes]:
    if encoding == OG_LEAF_ENCODING:
        return _og_leaf_hashes(values)
    from eth_abi.abi import encode
    from eth_abi.grammar import normalize

    types = [normalize(t) for t in encoding]  # type: ignore[no-untyped-call]  # eth_abi.grammar is unannotated
    keccak = _keccak
    hashes = []
    for i, value in enumerate(values):
        try:
            encoded = encode(types, value)
        except Exception as err:  # eth_abi raises several unrelated types for unencodable values
            raise InvalidInput(f"values[{i}]: cannot ABI-encode as {list(encoding)}: {err}") from None
        hashes.append(keccak(keccak(encoded).digest()).digest())
    return hashes


def _canonical_values(encoding: tuple[str, ...], values: Iterable[Any], prefix: str) -> list[LeafValue]:
    if encoding == OG_LEAF_ENCODING:
        # already canonical? (inlined, as it runs once per leaf of million-leaf batches)
        return [
            value
            if type(value) is tuple
            and len(value) == 5
            and type(value[0]) is bytes
            and len(value[0]) == 32
            and type(value[1]) is bytes
            and len(value[1]) == 32
            and type(value[2]) is bytes
            and len(value[2]) == 32
            and type(value[3]) is bytes
            and type(value[4]) is int
            and 0 <= value[4] <= UINT256_MAX
            else _coerce_value(encoding, value, f"{prefix}[{i}]")
            for i, value in enumerate(values)
        ]
    return [_coerce_value(encoding, value, f"{prefix}[{i}]") for i, value in enumerate(values)]


def leaf_hash(leaf_encoding: Sequence[str], value: Any) -> bytes:
    """``keccak256(keccak256(abi.encode(value)))`` under ``leaf_encoding``, as OpenZeppelin's
    ``standardLeafHash``. ``value`` may be in Python form (bytes, ints) or JSON form (hex and decimal strings)."""
    encoding = _check_encoding(leaf_encoding, "leaf_encoding")
    return _leaf_hashes(encoding, _canonical_values(encoding, [value], "value"))[0]
