"""Properties of StandardMerkleTree: encoding round trips, proof soundness, and validation on load."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from og_settle import (
    OG_LEAF_ENCODING,
    InferenceLeaf,
    InvalidInput,
    InvariantViolation,
    MultiProof,
    StandardMerkleTree,
    leaf_hash,
    verify_multiproof,
)
from tests.core.strategies import batches, og_batches, og_values


def flip_bit(data: bytes, bit: int) -> bytes:
    bit %= len(data) * 8
    flipped = bytearray(data)
    flipped[bit // 8] ^= 1 << (bit % 8)
    return bytes(flipped)


def flip_in_value(value: tuple[Any, ...], field: int, bit: int) -> tuple[Any, ...]:
    """The OpenGradient value with one bit of one field flipped (an empty signature gains a byte instead)."""
    items = list(value)
    if field == 4:
        items[4] = value[4] ^ (1 << (bit % 256))
    elif field == 3 and not value[3]:
        items[3] = b"\x00"
    else:
        items[field] = flip_bit(value[field], bit)
    return tuple(items)


@given(batch=batches(), sort_leaves=st.booleans())
def test_dump_load_dump_round_trip(batch: tuple[tuple[str, ...], list[Any]], sort_leaves: bool) -> None:
    """load(dump) reproduces the tree exactly: same dump, same JSON text, same values and proofs."""
    encoding, values = batch
    tree = StandardMerkleTree.of(values, encoding, sort_leaves=sort_leaves)
    dump = tree.dump()
    again = StandardMerkleTree.load(json.loads(json.dumps(dump)))
    assert again.dump() == dump
    assert again.dump_json() == tree.dump_json()
    assert again.values == tree.values
    assert again.proofs() == tree.proofs()


@given(batch=batches())
def test_json_form_values_build_the_same_tree(batch: tuple[tuple[str, ...], list[Any]]) -> None:
    """Values given in the dump's JSON form (hex and decimal strings) build the same tree as Python values."""
    encoding, values = batch
    tree = StandardMerkleTree.of(values, encoding)
    as_json = [entry["value"] for entry in tree.dump()["values"]]
    assert StandardMerkleTree.of(as_json, encoding).dump() == tree.dump()


@given(batch=batches())
def test_every_proof_verifies(batch: tuple[tuple[str, ...], list[Any]]) -> None:
    """proofs() equals proof(i) for every i, and each verifies for its value against the root."""
    encoding, values = batch
    tree = StandardMerkleTree.of(values, encoding)
    proofs = tree.proofs()
    assert proofs == [tree.proof(i) for i in range(len(values))]
    for value, proof in zip(tree.values, proofs, strict=True):
        assert StandardMerkleTree.verify(tree.root, encoding, value, proof)
    assert len(proofs[0]) <= len(values).bit_length()


@given(batch=og_batches, data=st.data())
def test_any_flipped_bit_fails_verification(batch: list[Any], data: st.DataObject) -> None:
    """Flipping one bit of the value, of one proof node or of the root makes verification fail."""
    tree = StandardMerkleTree.of(batch)
    index = data.draw(st.integers(0, len(batch) - 1))
    value, proof, root = tree.values[index], list(tree.proof(index)), tree.root
    bit = data.draw(st.integers(0, 2**16))
    assert StandardMerkleTree.verify(root, OG_LEAF_ENCODING, value, proof)
    assert not StandardMerkleTree.verify(flip_bit(root, bit), OG_LEAF_ENCODING, value, proof)
    field = data.draw(st.integers(0, 4))
    assert not StandardMerkleTree.verify(root, OG_LEAF_ENCODING, flip_in_value(value, field, bit), proof)
    if proof:
        position = data.draw(st.integers(0, len(proof) - 1))
        tampered = [*proof[:position], flip_bit(proof[position], bit), *proof[position + 1 :]]
        assert not StandardMerkleTree.verify(root, OG_LEAF_ENCODING, value, tampered)
        assert not StandardMerkleTree.verify(root, OG_LEAF_ENCODING, value, proof[:-1])


@given(batch=batches(), data=st.data())
def test_multiproof_of_any_subset_verifies(batch: tuple[tuple[str, ...], list[Any]], data: st.DataObject) -> None:
    """A multiproof of any subset of values (including none and all) verifies against the root."""
    encoding, values = batch
    tree = StandardMerkleTree.of(values, encoding)
    subset = data.draw(st.lists(st.integers(0, len(values) - 1), unique=True))
    multiproof = tree.multiproof(subset)
    assert sorted(multiproof.leaves) == sorted(tree.values[i] for i in subset)
    assert verify_multiproof(tree.root, encoding, multiproof)


@given(batch=og_batches, data=st.data())
def test_tampered_multiproof_fails(batch: list[Any], data: st.DataObject) -> None:
    """Flipping a bit of a proven leaf or of a multiproof node makes multiproof verification fail."""
    tree = StandardMerkleTree.of(batch)
    subset = data.draw(st.lists(st.integers(0, len(batch) - 1), unique=True, min_size=1))
    multiproof = tree.multiproof(subset)
    bit = data.draw(st.integers(0, 2**16))
    which = data.draw(st.integers(0, len(multiproof.leaves) - 1))
    leaves = list(multiproof.leaves)
    leaves[which] = flip_in_value(leaves[which], data.draw(st.integers(0, 4)), bit)
    bad_leaf = MultiProof(tuple(leaves), multiproof.proof, multiproof.proof_flags)
    assert not verify_multiproof(tree.root, OG_LEAF_ENCODING, bad_leaf)
    if multiproof.proof:
        nodes = list(multiproof.proof)
        position = data.draw(st.integers(0, len(nodes) - 1))
        nodes[position] = flip_bit(nodes[position], bit)
        bad_node = MultiProof(multiproof.leaves, tuple(nodes), multiproof.proof_flags)
        assert not verify_multiproof(tree.root, OG_LEAF_ENCODING, bad_node)
    assert not verify_multiproof(flip_bit(tree.root, bit), OG_LEAF_ENCODING, multiproof)


@given(batch=og_batches, data=st.data())
def test_load_rejects_any_changed_hash_or_value(batch: list[Any], data: st.DataObject) -> None:
    """A dump with one bit changed in any tree node or any value is rejected by load."""
    dump = StandardMerkleTree.of(batch).dump()
    bit = data.draw(st.integers(0, 2**16))
    tampered = json.loads(json.dumps(dump))
    if data.draw(st.booleans()):
        node = data.draw(st.integers(0, len(dump["tree"]) - 1))
        tampered["tree"][node] = "0x" + flip_bit(bytes.fromhex(dump["tree"][node][2:]), bit).hex()
    else:
        index = data.draw(st.integers(0, len(batch) - 1))
        value = StandardMerkleTree.load(dump).values[index]
        changed = flip_in_value(value, data.draw(st.integers(0, 4)), bit)
        tampered["values"][index]["value"] = StandardMerkleTree.of([changed]).dump()["values"][0]["value"]
    with pytest.raises(InvalidInput):
        StandardMerkleTree.load(tampered)


@given(batch=og_batches)
def test_leaf_hash_is_double_keccak_of_abi_encoding(batch: list[Any]) -> None:
    """The hand-written OpenGradient encoder agrees with eth_abi.encode for every value."""
    from eth_abi import encode
    from eth_utils import keccak

    for value in batch:
        assert leaf_hash(OG_LEAF_ENCODING, value) == keccak(keccak(encode(list(OG_LEAF_ENCODING), value)))


@given(value=og_values)
def test_inference_leaf_json_round_trip(value: tuple[Any, ...]) -> None:
    """InferenceLeaf -> JSON -> InferenceLeaf is the identity, and it hashes like its value tuple."""
    if len(value[3]) > 1024:
        return
    leaf = InferenceLeaf(*value)
    assert InferenceLeaf.from_json(json.loads(json.dumps(leaf.to_json()))) == leaf
    assert StandardMerkleTree.of([leaf]).root == leaf_hash(OG_LEAF_ENCODING, value)


def _valid_dump() -> dict[str, Any]:
    values = [(bytes([i]) * 32, b"\x02" * 32, b"\x03" * 32, b"sig", i) for i in range(5)]
    return StandardMerkleTree.of(values).dump()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format="standard-v2"), "format: expected 'standard-v1'"),
        (lambda d: d.pop("leafEncoding"), "leafEncoding: missing"),
        (lambda d: d.update(leafEncoding=["bytes32", "uint7"]), "leafEncoding[1]: not a valid ABI type"),
        (lambda d: d.update(extra=1), "extra: unknown field"),
        (lambda d: d.update(tree=[]), "tree: expected a non-empty array"),
        (lambda d: d["tree"].pop(), "tree: a complete tree has an odd number of nodes"),
        (lambda d: d["tree"].__setitem__(3, "0x1234"), "tree[3]: expected 32 bytes, got 2"),
        (lambda d: d["values"].pop(), "values: a tree of 9 nodes has 5 leaves, but there are 4"),
        (lambda d: d["values"][1].update(treeIndex=0), "values[1].treeIndex: expected a leaf slot in [4, 8]"),
        (lambda d: d["values"][1].update(treeIndex=True), "values[1].treeIndex: expected a leaf slot"),
        (lambda d: d["values"][1].update(treeIndex=d["values"][0]["treeIndex"]), "values[1].treeIndex: leaf slot"),
        (lambda d: d["values"][2]["value"].__setitem__(4, "x"), "values[2].value[4]: not a decimal or 0x-hex"),
        (lambda d: d["values"][2]["value"].__setitem__(0, "0x00"), "values[2].value[0]: expected 32 bytes, got 1"),
        (lambda d: d["values"][2]["value"].pop(), "values[2].value: expected 5 values"),
        (lambda d: d["values"][2].update(extra=1), "values[2]: expected an object with exactly"),
    ],
)
def test_load_names_what_is_wrong(mutate: Any, message: str) -> None:
    dump = _valid_dump()
    mutate(dump)
    with pytest.raises(InvalidInput) as info:
        StandardMerkleTree.load(dump)
    assert str(info.value).startswith(message)


def test_load_rejects_swapped_values() -> None:
    dump = _valid_dump()
    dump["values"][0]["treeIndex"], dump["values"][1]["treeIndex"] = (
        dump["values"][1]["treeIndex"],
        dump["values"][0]["treeIndex"],
    )
    with pytest.raises(InvalidInput, match=r"^values\[0\]: the value does not hash to tree\["):
        StandardMerkleTree.load(dump)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([], "values: a Merkle tree needs at least one value"),
        ([(b"\x00" * 31, b"\x00" * 32, b"\x00" * 32, b"", 0)], "values[0][0]: expected 32 bytes, got 31"),
        ([(b"\x00" * 32, b"\x00" * 32, b"\x00" * 32, b"", 2**256)], "values[0][4]: "),
        ([(b"\x00" * 32, b"\x00" * 32, b"\x00" * 32, b"")], "values[0]: expected 5 values"),
    ],
)
def test_of_names_what_is_wrong(values: list[Any], message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        StandardMerkleTree.of(values)
    assert str(info.value).startswith(message)


def test_inference_leaf_caps_the_signature() -> None:
    base = (b"\x00" * 32, b"\x00" * 32, b"\x00" * 32)
    InferenceLeaf(*base, b"\x00" * 1024, 0)
    with pytest.raises(InvalidInput, match=r"^tee_signature: 1025 bytes is over the limit of 1024"):
        InferenceLeaf(*base, b"\x00" * 1025, 0)


def test_corrupted_tree_is_caught_before_a_proof_is_returned() -> None:
    """A proof is checked before it is returned. The only way to make the check fail is a bug, so this test
    corrupts the tree's private array directly (a deliberate fault injection, not a supported use)."""
    tree = StandardMerkleTree.of([(bytes([i]) * 32, b"\x02" * 32, b"\x03" * 32, b"", i) for i in range(6)])
    tree._tree[1] = b"\xff" * 32  # an internal node that no longer hashes its children
    with pytest.raises(InvariantViolation):
        tree.proofs()
    with pytest.raises(InvariantViolation):
        # slots 5 and 6 are the leaves under node 2, whose proofs carry node 1 as a sibling
        tree.proof(next(i for i in range(6) if tree.tree_index(i) in (5, 6)))


def test_proof_index_out_of_range() -> None:
    tree = StandardMerkleTree.of([(b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, b"", 1)])
    assert tree.proof(0) == ()
    assert tree.root == tree.leaf_hash(tree.values[0])
    with pytest.raises(InvalidInput, match=r"^index: 1 is out of range"):
        tree.proof(1)
    with pytest.raises(InvalidInput, match=r"^indices: cannot prove the same value twice"):
        tree.multiproof([0, 0])
