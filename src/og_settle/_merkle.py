"""OpenZeppelin ``StandardMerkleTree``, byte for byte, and fast enough for million-leaf settlement batches.

The layout, hashing and dump format follow ``@openzeppelin/merkle-tree`` 1.0.x exactly:

* A leaf is ``keccak256(keccak256(abi.encode(values)))`` under the tree's leaf encoding (a tuple of ABI
  type strings). The double hash keeps a leaf from ever being read as a 64-byte internal node.
* An internal node is ``keccak256(min(a, b) ‖ max(a, b))``: pairs are sorted, so a proof carries no
  left/right flags and verifies with OpenZeppelin's ``MerkleProof`` library on chain.
* The tree is one flat array of ``2n - 1`` hashes: the root at 0, the children of node ``i`` at ``2i + 1`` and
  ``2i + 2``, and the ``n`` leaves in the last ``n`` slots in reverse order (the first leaf last). By default
  the leaves are first sorted by hash (a stable sort), which makes multiproofs usable on chain.
* ``proof(i)`` and ``multiproof(indices)`` take positions in the *input* order of the values, as
  OpenZeppelin's ``getProof(i)`` and ``getMultiProof(indices)`` do.
* ``dump()`` returns the ``standard-v1`` JSON document ``{format, leafEncoding, tree, values: [{value,
  treeIndex}]}``; ``json.dumps(dump, separators=(",", ":"))`` (see :meth:`StandardMerkleTree.dump_json`) is
  byte-identical to ``JSON.stringify(tree.dump())`` in Node when the JS values are written the way this module
  writes them: ``bytes``/``bytesN`` as lowercase ``0x`` hex, integers as decimal strings, addresses in EIP-55
  form, booleans as JSON booleans, strings as they are, arrays and tuples as JSON arrays. :meth:`load`
  accepts the other spellings OpenZeppelin accepts (hex integers, lowercase addresses, upper-case hex) and
  keeps values in canonical form, so re-dumping such a file normalises those spellings; the tree, the tree
  indices and every hash stay the same.

Every proof is verified against the root before it is returned; a failure raises
:class:`~og_settle.InvariantViolation` because it can only be a bug here. The OpenGradient leaf encoding
``OG_LEAF_ENCODING`` has a hand-written ABI encoder; every other encoding goes through ``eth_abi``.
"""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from operator import add, eq, itemgetter
from typing import Any, Final, TypeAlias

import sha3

from og_settle._errors import InvalidInput, InvariantViolation
from og_settle._hex import (
    UINT256_MAX,
    parse_address,
    parse_bytes32,
    parse_fixed_bytes,
    parse_hex_bytes,
    parse_uint256,
    to_hex,
)

__all__ = [
    "OG_LEAF_ENCODING",
    "STANDARD_V1",
    "TEE_SIGNATURE_MAX_BYTES",
    "InferenceLeaf",
    "MultiProof",
    "StandardMerkleTree",
    "leaf_hash",
    "verify_multiproof",
]

OG_LEAF_ENCODING: Final = ("bytes32", "bytes32", "bytes32", "bytes", "uint256")
"""OpenGradient's batch leaf: ``(teeId, inputHash, outputHash, teeSignature, timestamp)``."""

STANDARD_V1: Final = "standard-v1"

TEE_SIGNATURE_MAX_BYTES: Final = 1024
"""Cap on an :class:`InferenceLeaf` signature. An RSA-2048 PSS signature is 256 bytes; 1024 bytes leaves room
for RSA-8192 while keeping a single leaf (and its calldata when settled individually) small."""

LeafValue: TypeAlias = tuple[Any, ...]

_keccak = sha3.keccak_256
_OG_FIELDS: Final = ("tee_id", "input_hash", "output_hash", "tee_signature", "timestamp")
_OG_HEAD_OFFSET: Final = (5 * 32).to_bytes(32, "big")  # where the dynamic ``bytes`` tail starts
_ZERO_PADDING: Final = tuple(bytes(-n % 32) for n in range(32))


# --------------------------------------------------------------------------------------------------------
# Data types


@dataclass(frozen=True, slots=True)
class InferenceLeaf:
    """One settled inference in an OpenGradient batch, in the order of :data:`OG_LEAF_ENCODING`.

    Attributes:
        tee_id: keccak256 of the TEE's DER-encoded public key (32 bytes).
        input_hash: keccak256 of the canonical request JSON (32 bytes).
        output_hash: keccak256 of the completion or tool calls (32 bytes).
        tee_signature: the TEE's signature over the message hash, at most ``TEE_SIGNATURE_MAX_BYTES`` bytes.
        timestamp: the TEE's timestamp in seconds, a uint256.
    """

    tee_id: bytes
    input_hash: bytes
    output_hash: bytes
    tee_signature: bytes
    timestamp: int

    def __post_init__(self) -> None:
        for name in ("tee_id", "input_hash", "output_hash"):
            value = getattr(self, name)
            if type(value) is not bytes or len(value) != 32:
                raise InvalidInput(f"{name}: expected 32 bytes, got {_short_repr(value)}")
        if type(self.tee_signature) is not bytes:
            raise InvalidInput(f"tee_signature: expected bytes, got {type(self.tee_signature).__name__}")
        if len(self.tee_signature) > TEE_SIGNATURE_MAX_BYTES:
            raise InvalidInput(
                f"tee_signature: {len(self.tee_signature)} bytes is over the limit of {TEE_SIGNATURE_MAX_BYTES}"
            )
        if type(self.timestamp) is not int or not 0 <= self.timestamp <= UINT256_MAX:
            raise InvalidInput(f"timestamp: expected an integer in [0, 2**256), got {_short_repr(self.timestamp)}")

    @classmethod
    def from_json(cls, obj: Any) -> InferenceLeaf:
        """Parse ``{"tee_id", "input_hash", "output_hash", "tee_signature", "timestamp"}`` (hex strings and an
        integer). Unknown fields are rejected, so a misspelt field cannot pass unnoticed."""
        if not isinstance(obj, Mapping):
            raise InvalidInput(f"expected a JSON object, got {type(obj).__name__}")
        unknown = sorted(set(obj) - set(_OG_FIELDS))
        if unknown:
            raise InvalidInput(f"{unknown[0]}: unknown field (expected {', '.join(_OG_FIELDS)})")
        missing = [name for name in _OG_FIELDS if name not in obj]
        if missing:
            raise InvalidInput(f"{missing[0]}: missing field")
        timestamp = obj["timestamp"]
        if type(timestamp) is not int:
            raise InvalidInput(f"timestamp: expected a JSON integer, got {_short_repr(timestamp)}")
        return cls(
            tee_id=parse_bytes32(obj["tee_id"], "tee_id"),
            input_hash=parse_bytes32(obj["input_hash"], "input_hash"),
            output_hash=parse_bytes32(obj["output_hash"], "output_hash"),
            tee_signature=parse_hex_bytes(obj["tee_signature"], "tee_signature", TEE_SIGNATURE_MAX_BYTES),
            timestamp=parse_uint256(timestamp, "timestamp"),
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON object :meth:`from_json` reads."""
        return {
            "tee_id": to_hex(self.tee_id),
            "input_hash": to_hex(self.input_hash),
            "output_hash": to_hex(self.output_hash),
            "tee_signature": to_hex(self.tee_signature),
            "timestamp": self.timestamp,
        }

    def values(self) -> LeafValue:
        """The leaf as a value tuple for :data:`OG_LEAF_ENCODING`."""
        return (self.tee_id, self.input_hash, self.output_hash, self.tee_signature, self.timestamp)


@dataclass(frozen=True, slots=True)
class MultiProof:
    """A proof that several values are in one tree, in OpenZeppelin's layout (``MerkleProof.multiProofVerify``).

    Attributes:
        leaves: the proven values, in the order the verifier consumes them (descending tree index).
        proof: the sibling hashes the verifier needs, each 32 bytes.
        proof_flags: for each hashing step, True to take the next computed node, False to take from ``proof``.
    """

    leaves: tuple[LeafValue, ...]
    proof: tuple[bytes, ...]
    proof_flags: tuple[bool, ...]


# --------------------------------------------------------------------------------------------------------
# ABI values: coercion from Python or JSON forms, JSON rendering, encoding


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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


def og_encodings(values: Iterable[LeafValue]) -> Iterator[bytes]:
    """``abi.encode`` of canonical OpenGradient values, by hand: three words, the offset 160 of the tail, the
    timestamp, then the tail: the length word and the signature right-padded with zeros to a whole word."""
    offset = _OG_HEAD_OFFSET
    padding = _ZERO_PADDING
    join = b"".join
    for tee, inp, out, sig, ts in values:
        yield join(
            (tee, inp, out, offset, ts.to_bytes(32, "big"), len(sig).to_bytes(32, "big"), sig, padding[len(sig) & 31])
        )


def _og_leaf_hashes(values: list[LeafValue]) -> list[bytes]:
    from og_settle import _merkle_hash  # the C hashing, when built (it imports this module, so not at the top)

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


# --------------------------------------------------------------------------------------------------------
# Tree algorithms on the flat array


def _node_hash(a: bytes, b: bytes) -> bytes:
    digest: bytes = _keccak(a + b if a < b else b + a).digest()
    return digest


def _build_tree(leaves: list[bytes]) -> list[bytes]:
    """The flat array: leaves reversed in the last ``n`` slots, internal nodes filled level by level (each
    level's children are one contiguous run of the array, so a level is one list comprehension)."""
    n = len(leaves)
    size = 2 * n - 1
    tree: list[bytes] = [b""] * (n - 1) + leaves[::-1]
    keccak = _keccak
    last_internal = n - 2
    depth = (last_internal + 1).bit_length() - 1 if n > 1 else -1
    while depth >= 0:
        lo = (1 << depth) - 1
        hi = min((1 << (depth + 1)) - 2, last_internal)
        children = tree[2 * lo + 1 : 2 * hi + 3]
        tree[lo : hi + 1] = [
            keccak(a + b if a < b else b + a).digest() for a, b in zip(children[0::2], children[1::2], strict=True)
        ]
        depth -= 1
    assert len(tree) == size
    return tree


def _tree_and_slots(hashes: list[bytes], sort: bool) -> tuple[list[bytes], list[int]]:
    """The flat array over the leaf ``hashes`` (stably sorted by hash first when ``sort``) and each leaf's slot."""
    from og_settle import _merkle_hash  # the C tree, when built (it imports this module, so not at the top)

    if _merkle_hash._native is not None:
        flat, tree_index = _merkle_hash.merkle_tree(b"".join(hashes), sort)
        return [flat[k : k + 32] for k in range(0, len(flat), 32)], tree_index
    n = len(hashes)
    order = sorted(range(n), key=hashes.__getitem__) if sort else range(n)
    tree = _build_tree(list(map(hashes.__getitem__, order)))
    tree_index = [0] * n
    last = 2 * n - 2
    for position, leaf in enumerate(order):
        tree_index[leaf] = last - position
    return tree, tree_index


def _process_proof(leaf: bytes, proof: Iterable[bytes]) -> bytes:
    node = leaf
    keccak = _keccak
    for sibling in proof:
        node = keccak(node + sibling if node < sibling else sibling + node).digest()
    return node


def _process_multiproof(leaves: Sequence[bytes], proof: Sequence[bytes], flags: Sequence[bool]) -> bytes | None:
    """OpenZeppelin's ``processMultiProof``; None when the shapes are inconsistent (never a valid proof)."""
    if len(proof) < sum(1 for flag in flags if not flag) or len(leaves) + len(proof) != len(flags) + 1:
        return None
    queue = list(leaves)
    position = 0  # next unread entry of ``queue``; consumed entries are never revisited
    spare = iter(proof)
    for flag in flags:
        if position >= len(queue):
            return None
        a = queue[position]
        position += 1
        if flag:
            if position >= len(queue):
                return None
            b = queue[position]
            position += 1
        else:
            taken = next(spare, None)
            if taken is None:
                return None
            b = taken
        queue.append(_node_hash(a, b))
    rest = list(spare)
    if len(queue) - position + len(rest) != 1:
        return None
    return queue[-1] if position < len(queue) else rest[0]


def _tree_is_consistent(tree: list[bytes]) -> int | None:
    """The index of the first internal node that is not the hash of its children, or None."""
    keccak = _keccak
    n_internal = len(tree) // 2
    for i in range(n_internal):
        a = tree[2 * i + 1]
        b = tree[2 * i + 2]
        if keccak(a + b if a < b else b + a).digest() != tree[i]:
            return i
    return None


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building millions of acyclic tuples: otherwise each
    allocation burst triggers full collections that traverse every earlier tuple (a 2x slow-down at 1M leaves)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        # Promote what was just built straight to the oldest generation (freeze + unfreeze moves lists, it does
        # not traverse them), so the next young-generation collection does not walk a million fresh tuples.
        # Nothing becomes uncollectable: the oldest generation is still swept by full collections.
        gc.freeze()
        gc.unfreeze()
        if was_enabled:
            gc.enable()


def _twice(items: list[tuple[bytes, ...]]) -> list[tuple[bytes, ...]]:
    doubled = items * 2
    doubled[0::2] = items
    doubled[1::2] = items
    return doubled


def _check_depth(
    tree: list[bytes], start: int, end: int, proofs: list[tuple[bytes, ...]], parent_proofs: list[tuple[bytes, ...]]
) -> None:
    """Check the proofs of nodes ``start .. end - 1`` (one depth, sibling pairs) given their parents' checked
    proofs. For every node ``c`` with parent ``p``: ``proof(c)[0]`` is the sibling of ``c``, the hash of ``c``
    and its sibling recomputes ``tree[p]``, and ``proof(c)[1:]`` equals ``proof(p)``. Then folding ``proof(c)``
    from ``tree[c]`` gives ``tree[p]`` after one step and continues exactly as ``proof(p)`` does, so by
    induction from the root (whose proof is empty) every proof folds to the root. Raises InvariantViolation."""
    keccak = _keccak
    nodes = tree[start:end]
    heads = list(map(itemgetter(0), proofs))
    if heads[0::2] != nodes[1::2] or heads[1::2] != nodes[0::2]:
        raise InvariantViolation(f"a proof at depth of node {start} does not start with its sibling")
    tail = itemgetter(slice(1, None))  # streamed, so each short-lived slice reuses the tuple free list
    if not all(map(eq, map(tail, proofs[0::2]), parent_proofs)) or not all(
        map(eq, map(tail, proofs[1::2]), parent_proofs)
    ):
        raise InvariantViolation(f"a proof at depth of node {start} does not continue with its parent's proof")
    parent_start = (start - 1) // 2
    recomputed = [keccak(a + b if a < b else b + a).digest() for a, b in zip(nodes[0::2], nodes[1::2], strict=True)]
    if recomputed != tree[parent_start : parent_start + len(recomputed)]:
        raise InvariantViolation(f"an internal node above depth of node {start} is not the hash of its children")


# --------------------------------------------------------------------------------------------------------
# The tree


class StandardMerkleTree:
    """An OpenZeppelin ``StandardMerkleTree``. Build one with :meth:`of` or :meth:`load`."""

    __slots__ = ("_encoding", "_hash_lookup", "_tree", "_tree_index", "_values")

    def __init__(
        self, tree: list[bytes], values: list[LeafValue], tree_index: list[int], encoding: tuple[str, ...]
    ) -> None:
        """Internal: use :meth:`of` or :meth:`load`, which establish the tree's invariants."""
        self._tree = tree
        self._values = tuple(values)
        self._tree_index = tree_index
        self._encoding = encoding
        self._hash_lookup: dict[bytes, int] | None = None

    # -- construction

    @classmethod
    def of(
        cls,
        values: Iterable[Any],
        leaf_encoding: Sequence[str] = OG_LEAF_ENCODING,
        *,
        sort_leaves: bool = True,
    ) -> StandardMerkleTree:
        """Build the tree of ``values`` (each a sequence matching ``leaf_encoding``, or an InferenceLeaf).

        Values may be given in Python form (``bytes``, ``int``) or in the dump's JSON form (hex and decimal
        strings); they are kept in canonical Python form. ``sort_leaves`` (the default, as in OpenZeppelin)
        orders the leaves by hash with a stable sort.
        """
        encoding = _check_encoding(leaf_encoding, "leaf_encoding")
        with _gc_paused():
            canonical = _canonical_values(encoding, values, "values")
            if not canonical:
                raise InvalidInput("values: a Merkle tree needs at least one value")
            tree, tree_index = _tree_and_slots(_leaf_hashes(encoding, canonical), sort_leaves)
        return cls(tree, canonical, tree_index, encoding)

    @classmethod
    def load(cls, data: Any) -> StandardMerkleTree:
        """Load and fully validate a ``standard-v1`` dump (as :meth:`dump` or OpenZeppelin's ``dump()`` make).

        Checks the format tag, the leaf encoding, that ``tree`` is a complete array of 32-byte hashes whose
        internal nodes hash their children, that every value sits on its own leaf slot, that values and leaf
        slots correspond one to one, and that every value hashes to its leaf. Raises InvalidInput naming the
        offending field.
        """
        if not isinstance(data, Mapping):
            raise InvalidInput(f"dump: expected a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - {"format", "leafEncoding", "tree", "values"})
        if unknown:
            raise InvalidInput(f"{unknown[0]}: unknown field in a {STANDARD_V1} dump")
        if data.get("format") != STANDARD_V1:
            raise InvalidInput(f"format: expected {STANDARD_V1!r}, got {_short_repr(data.get('format'))}")
        if "leafEncoding" not in data:
            raise InvalidInput("leafEncoding: missing")
        encoding = _check_encoding(data["leafEncoding"])
        raw_tree = data.get("tree")
        if not isinstance(raw_tree, list) or not raw_tree:
            raise InvalidInput("tree: expected a non-empty array of 32-byte hex hashes")
        tree = [parse_bytes32(node, f"tree[{i}]") for i, node in enumerate(raw_tree)]
        if len(tree) % 2 == 0:
            raise InvalidInput(f"tree: a complete tree has an odd number of nodes, got {len(tree)}")
        raw_values = data.get("values")
        if not isinstance(raw_values, list):
            raise InvalidInput("values: expected an array of {value, treeIndex} objects")
        n = (len(tree) + 1) // 2
        if len(raw_values) != n:
            raise InvalidInput(f"values: a tree of {len(tree)} nodes has {n} leaves, but there are {len(raw_values)}")
        first_leaf = n - 1
        seen: dict[int, int] = {}
        tree_index: list[int] = []
        plain_values: list[Any] = []
        for i, entry in enumerate(raw_values):
            if not isinstance(entry, Mapping) or set(entry) != {"value", "treeIndex"}:
                raise InvalidInput(f"values[{i}]: expected an object with exactly 'value' and 'treeIndex'")
            index = entry["treeIndex"]
            if type(index) is not int or not first_leaf <= index < len(tree):
                raise InvalidInput(
                    f"values[{i}].treeIndex: expected a leaf slot in [{first_leaf}, {len(tree) - 1}], got "
                    f"{_short_repr(index)}"
                )
            if index in seen:
                raise InvalidInput(f"values[{i}].treeIndex: leaf slot {index} is already used by values[{seen[index]}]")
            seen[index] = i
            tree_index.append(index)
            plain_values.append(entry["value"])
        values = [_coerce_value(encoding, value, f"values[{i}].value") for i, value in enumerate(plain_values)]
        hashes = _leaf_hashes(encoding, values)
        for i, (expected, index) in enumerate(zip(hashes, tree_index, strict=True)):
            if tree[index] != expected:
                raise InvalidInput(f"values[{i}]: the value does not hash to tree[{index}]")
        broken = _tree_is_consistent(tree)
        if broken is not None:
            children = f"tree[{2 * broken + 1}] and tree[{2 * broken + 2}]"
            raise InvalidInput(f"tree[{broken}]: is not the hash of its children {children}")
        return cls(tree, values, tree_index, encoding)

    @classmethod
    def load_json(cls, text: str | bytes) -> StandardMerkleTree:
        """Parse and :meth:`load` a dump's JSON text."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as err:
            raise InvalidInput(f"dump: not valid JSON: {err}") from None
        return cls.load(data)

    # -- reading

    @property
    def root(self) -> bytes:
        """The Merkle root (32 bytes)."""
        return self._tree[0]

    @property
    def leaf_encoding(self) -> tuple[str, ...]:
        """The ABI types of each value."""
        return self._encoding

    @property
    def values(self) -> tuple[LeafValue, ...]:
        """The values in input order, in canonical Python form."""
        return self._values

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"<StandardMerkleTree root={to_hex(self.root)} leaves={len(self)} encoding={list(self._encoding)}>"

    def leaf_hash(self, value: Any) -> bytes:
        """The leaf hash of ``value`` under this tree's encoding (it need not be in the tree)."""
        return leaf_hash(self._encoding, value)

    def tree_index(self, index: int) -> int:
        """The array slot of the value at input position ``index``."""
        return self._tree_index[self._check_index(index)]

    def index_of(self, leaf_hash: bytes) -> int:
        """The input position of the (first) value whose leaf hash is ``leaf_hash``; InvalidInput if absent."""
        if self._hash_lookup is None:
            lookup: dict[bytes, int] = {}
            for i, index in enumerate(self._tree_index):
                lookup.setdefault(self._tree[index], i)
            self._hash_lookup = lookup
        try:
            return self._hash_lookup[leaf_hash]
        except KeyError:
            raise InvalidInput(f"leaf_hash: {to_hex(leaf_hash)} is not a leaf of this tree") from None

    def _check_index(self, index: int) -> int:
        if type(index) is not int:
            raise InvalidInput(f"index: expected an integer, got {_short_repr(index)}")
        if not 0 <= index < len(self._values):
            raise InvalidInput(f"index: {index} is out of range for a tree of {len(self._values)} values")
        return index

    # -- proofs

    def proof(self, index: int) -> tuple[bytes, ...]:
        """The proof for the value at input position ``index``, leaf to root, checked against the root."""
        node = self._tree_index[self._check_index(index)]
        tree = self._tree
        proof = []
        while node > 0:
            proof.append(tree[node - 1 if node % 2 == 0 else node + 1])
            node = (node - 1) // 2
        result = tuple(proof)
        if _process_proof(tree[self._tree_index[index]], result) != tree[0]:
            raise InvariantViolation(f"the proof for value {index} does not verify against the root")
        return result

    def proofs(self) -> list[tuple[bytes, ...]]:
        """The proofs of all values, in input order, each checked against the root.

        The proofs are built one depth at a time: a node's proof is its sibling followed by its parent's
        proof. Each depth is checked before the next is built (see :func:`_check_depth`), which shows by
        induction from the root that every returned proof folds from its leaf to the root, at the cost of
        one hash per internal node instead of ``log2(n)`` hashes per leaf.
        """
        with _gc_paused():
            return self._proofs()

    def _proofs(self) -> list[tuple[bytes, ...]]:
        tree = self._tree
        size = len(tree)
        first_leaf = len(self._values) - 1
        by_slot: list[tuple[bytes, ...]] = [()] * size  # filled for the leaf slots only
        parent_proofs: list[tuple[bytes, ...]] = [()]  # the root's proof is empty
        start = 1
        while start < size:
            # nodes start .. end - 1 form one depth and come in sibling pairs (start is a left child)
            end = min(2 * start + 1, size)
            nodes = tree[start:end]
            siblings = nodes[:]
            siblings[0::2] = nodes[1::2]
            siblings[1::2] = nodes[0::2]
            parents = parent_proofs[: (end - start) // 2]
            level = list(map(add, zip(siblings), _twice(parents)))  # (sibling,) + parent's proof, in C
            _check_depth(tree, start, end, level, parents)
            if end > first_leaf:
                skip = max(first_leaf - start, 0)
                by_slot[start + skip : end] = level[skip:]
            parent_proofs = level
            start = end
        return list(map(by_slot.__getitem__, self._tree_index))

    def multiproof(self, indices: Iterable[int]) -> MultiProof:
        """A multiproof for the values at the given input positions, checked against the root."""
        positions = [self._check_index(i) for i in indices]
        nodes = sorted((self._tree_index[i] for i in positions), reverse=True)
        if len(set(nodes)) != len(nodes):
            raise InvalidInput("indices: cannot prove the same value twice")
        tree = self._tree
        queue = list(nodes)
        position = 0
        proof: list[bytes] = []
        flags: list[bool] = []
        while position < len(queue) and queue[position] > 0:
            node = queue[position]
            position += 1
            sibling = node - 1 if node % 2 == 0 else node + 1
            if position < len(queue) and queue[position] == sibling:
                flags.append(True)
                position += 1
            else:
                flags.append(False)
                proof.append(tree[sibling])
            queue.append((node - 1) // 2)
        if not nodes:
            proof.append(tree[0])
        by_node = {self._tree_index[i]: i for i in positions}
        result = MultiProof(
            leaves=tuple(self._values[by_node[node]] for node in nodes),
            proof=tuple(proof),
            proof_flags=tuple(flags),
        )
        if _process_multiproof([tree[node] for node in nodes], result.proof, result.proof_flags) != tree[0]:
            raise InvariantViolation("a multiproof does not verify against the root")
        return result

    # -- verification

    @staticmethod
    def verify(root: Any, leaf_encoding: Sequence[str], value: Any, proof: Iterable[Any]) -> bool:
        """True if ``proof`` shows ``value`` is under ``root``. Malformed hashes or values raise InvalidInput."""
        expected = parse_bytes32(root, "root")
        nodes = [parse_bytes32(node, f"proof[{i}]") for i, node in enumerate(proof)]
        return _process_proof(leaf_hash(leaf_encoding, value), nodes) == expected

    def verify_proof(self, value: Any, proof: Iterable[Any]) -> bool:
        """:meth:`verify` against this tree's root and encoding."""
        return self.verify(self.root, self._encoding, value, proof)

    # -- serialisation

    def dump(self) -> dict[str, Any]:
        """The ``standard-v1`` document, keys in OpenZeppelin's order."""
        to_json = [_codec(t)[1] for t in self._encoding]
        return {
            "format": STANDARD_V1,
            "leafEncoding": list(self._encoding),
            "tree": ["0x" + node.hex() for node in self._tree],
            "values": [
                {"value": [render(item) for render, item in zip(to_json, value, strict=True)], "treeIndex": index}
                for value, index in zip(self._values, self._tree_index, strict=True)
            ],
        }

    def dump_json(self) -> str:
        """The dump as compact JSON, byte-identical to ``JSON.stringify(tree.dump())`` in Node."""
        return json.dumps(self.dump(), separators=(",", ":"), ensure_ascii=False)


def verify_multiproof(root: Any, leaf_encoding: Sequence[str], multiproof: MultiProof) -> bool:
    """True if ``multiproof`` shows all its leaves are under ``root`` (OpenZeppelin's ``verifyMultiProof``).

    Structurally inconsistent proofs return False; malformed hashes or values raise InvalidInput.
    """
    expected = parse_bytes32(root, "root")
    encoding = _check_encoding(leaf_encoding, "leaf_encoding")
    leaves = _leaf_hashes(encoding, _canonical_values(encoding, multiproof.leaves, "multiproof.leaves"))
    proof = [parse_bytes32(node, f"multiproof.proof[{i}]") for i, node in enumerate(multiproof.proof)]
    flags = list(multiproof.proof_flags)
    if not all(isinstance(flag, bool) for flag in flags):
        raise InvalidInput("multiproof.proof_flags: expected booleans")
    return _process_multiproof(leaves, proof, flags) == expected
