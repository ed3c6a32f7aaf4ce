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

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import add
from typing import Any, Final

from og_settle._errors import InvalidInput, InvariantViolation
from og_settle._hex import parse_bytes32, to_hex
from og_settle._merkle_flat import (
    _check_depth,
    _gc_paused,
    _process_multiproof,
    _process_proof,
    _tree_and_slots,
    _tree_is_consistent,
    _twice,
)
from og_settle._merkle_leaf import OG_LEAF_ENCODING, TEE_SIGNATURE_MAX_BYTES, InferenceLeaf, LeafValue, _short_repr
from og_settle._merkle_values import _canonical_values, _check_encoding, _codec, _coerce_value, _leaf_hashes, leaf_hash

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

STANDARD_V1: Final = "standard-v1"


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
