"""The C hashing of the batch tools (``og_settle._batch_native`` through ``_merkle_hash``) against safe-pysha3 and
the Python fallback: Keccak-256 itself, leaf hashes, whole trees (also split across threads), their checks."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from array import array
from collections.abc import Iterator

import pytest
import sha3
from hypothesis import example, given, settings
from hypothesis import strategies as st

from og_settle import StandardMerkleTree
from og_settle import _merkle_hash as hashing
from og_settle._merkle_leaf import og_encodings

native = hashing._native
pytestmark = pytest.mark.skipif(native is None, reason="og_settle._batch_native is not built")


def keccak(data: bytes) -> bytes:
    return sha3.keccak_256(data).digest()


@pytest.fixture
def python_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(hashing, "_native", None)
    yield


@settings(max_examples=300)
@given(data=st.integers(min_value=0, max_value=1000).flatmap(lambda n: st.binary(min_size=n, max_size=n)))
@example(data=b"")
@example(data=b"\x01" * 135)  # the padding's 0x01 and 0x80 in one byte
@example(data=b"\xff" * 136)  # a whole rate: the padding takes a block of its own
@example(data=b"\x80" * 137)
@example(data=bytes(range(256)) + bytes(16))  # 272 = 2 x 136
def test_keccak256_is_ethereums(data: bytes) -> None:
    assert native is not None
    assert native.keccak256(data) == keccak(data)


def test_keccak256_known_digests() -> None:
    assert native is not None
    assert native.keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert native.keccak256(b"abc").hex() == "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_leaf_hashes_are_double_keccak(threads: int) -> None:
    assert native is not None
    rng = random.Random(threads)
    encodings = [rng.randbytes(rng.randrange(0, 700)) for _ in range(2500)]  # past the threshold for threads
    expected = b"".join(keccak(keccak(encoded)) for encoded in encodings)
    assert native.leaf_hashes(encodings, threads) == expected
    assert native.leaf_hashes([], threads) == b""
    with pytest.raises(TypeError):
        native.leaf_hashes([b"", "text"], threads)


@pytest.mark.parametrize("length", [0, 1, 31, 32, 64, 135, 136, 137, 272, 448, 1000])
def test_leaf_hashes_four_at_a_time(length: int) -> None:
    """Runs of equal lengths go four at a time (AVX2) and the rest one by one: all are double keccak."""
    assert native is not None
    rng = random.Random(length)
    encodings = [rng.randbytes(length) for _ in range(9)] + [rng.randbytes(rng.randrange(300)) for _ in range(5)]
    encodings += [rng.randbytes(length) for _ in range(6)]
    assert native.leaf_hashes(encodings, 1) == b"".join(keccak(keccak(encoded)) for encoded in encodings)


def test_the_one_at_a_time_path_gives_the_same() -> None:
    """Without AVX-512 (OG_SETTLE_NO_AVX512) and one state at a time (OG_SETTLE_NO_AVX2) trees and checks are
    the same."""
    probe = (
        "import random, sys; from og_settle import _batch_native as n; r = random.Random(3); "
        "leaves = n.leaf_hashes([r.randbytes(448) for _ in range(3000)], 2); "
        "tree, slots = n.merkle_tree(leaves, True, 2); "
        "sys.stdout.write(tree.hex() + ' ' + str(n.first_bad_node(tree[:32] + bytes(32) + tree[64:], 2)))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", probe], env={**os.environ, **extra}, capture_output=True, text=True, check=True
        ).stdout
        for extra in ({}, {"OG_SETTLE_NO_AVX512": "1"}, {"OG_SETTLE_NO_AVX2": "1"})
    }
    assert len(outputs) == 1 and outputs.pop().endswith(" 0")


def python_tree(leaves: bytes, sort: bool) -> tuple[bytes, list[int]]:
    saved, hashing._native = hashing._native, None
    try:
        return hashing.merkle_tree(leaves, sort)
    finally:
        hashing._native = saved


@settings(max_examples=60)
@given(count=st.integers(min_value=1, max_value=40), sort=st.booleans(), seed=st.integers(0, 2**32))
def test_trees_are_the_python_trees(count: int, sort: bool, seed: int) -> None:
    """Node for node and slot for slot, with repeated leaves (the sort is stable) and without sorting."""
    rng = random.Random(seed)
    pool = [rng.randbytes(32) for _ in range(max(1, count // 2))]
    leaves = b"".join(rng.choice(pool) for _ in range(count))
    assert hashing.merkle_tree(leaves, sort) == python_tree(leaves, sort)


def test_hashes_sharing_their_first_bytes_sort_by_the_whole_hash() -> None:
    """The C sort keys on the first 8 bytes; longer common prefixes and whole duplicates still sort stably."""
    rng = random.Random(5)
    prefixes = [rng.randbytes(8) for _ in range(20)]
    tails = [rng.randbytes(24) for _ in range(20)]
    leaves = b"".join(
        rng.choice(prefixes) + (rng.choice(tails) if rng.random() < 0.5 else rng.randbytes(24)) for _ in range(3000)
    )
    assert hashing.merkle_tree(leaves, True) == python_tree(leaves, True)


def test_a_large_tree_split_across_threads_is_openzeppelins() -> None:
    assert native is not None
    values = [
        (bytes([i % 7]) * 32, i.to_bytes(32, "big"), b"\x11" * 32, bytes([i % 256]) * (i % 300), i) for i in range(5000)
    ]
    tree = StandardMerkleTree.of(values)
    encodings = list(og_encodings(values))
    for threads in (1, 2, 4):
        flat, tree_index = native.merkle_tree(native.leaf_hashes(encodings, threads), True, threads)
        assert flat == b"".join(tree._tree)
        assert tree_index == [tree.tree_index(i) for i in range(len(values))]
        assert native.first_bad_node(flat, threads) == -1


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_the_first_bad_node_is_the_lowest(threads: int) -> None:
    assert native is not None
    rng = random.Random(threads)
    flat, _ = native.merkle_tree(rng.randbytes(32 * 4000), True, threads)
    for bad in ([3000], [2500, 10], [7000, 3998], [0]):
        nodes = bytearray(flat)
        for node in bad:
            nodes[32 * node + 5] ^= 1
        expected = min((node - 1) // 2 if node else 0 for node in bad)  # a changed node breaks its parent
        assert native.first_bad_node(bytes(nodes), threads) == expected
        saved, hashing._native = hashing._native, None
        try:
            assert hashing.first_bad_node(bytes(nodes)) == expected
        finally:
            hashing._native = saved
    with pytest.raises(ValueError):
        native.first_bad_node(bytes(64), threads)


def test_nodes_render_as_the_python_path(python_path: None) -> None:
    assert native is not None
    flat = random.Random(1).randbytes(32 * 9)
    for start, stop in ((0, 9), (3, 4), (5, 5)):
        assert native.render_nodes(flat, start, stop) == hashing.render_nodes(flat, start, stop)
    with pytest.raises(IndexError):
        native.render_nodes(flat, 8, 10)


def test_check_leaves_marks_only_a_whole_good_block() -> None:
    assert native is not None
    flat, tree_index = native.merkle_tree(random.Random(2).randbytes(32 * 8), False, 1)
    hashes = b"".join(flat[32 * slot : 32 * slot + 32] for slot in tree_index)
    used = array("q", [-1]) * 8
    assert native.check_leaves(flat, hashes[:96], tree_index[:3], 7, used, 0)
    assert list(used) == [-1] * 5 + [2, 1, 0]  # by slot - 7; value i sits on slot 14 - i
    for slots, block in (
        ([tree_index[3], tree_index[3]], hashes[96:160]),  # the same slot twice
        ([tree_index[3], tree_index[0]], hashes[96:160]),  # a slot already used
        ([tree_index[3], 6], hashes[96:160]),  # an internal node
        ([tree_index[3], 15], hashes[96:160]),  # past the tree
        ([tree_index[4], tree_index[3]], hashes[96:160]),  # values that do not hash to their slots
    ):
        before = list(used)
        assert not native.check_leaves(flat, block, slots, 7, used, 3)
        assert list(used) == before


def test_tree_text_decodes_as_unhexlify_does() -> None:
    assert native is not None
    nodes = random.Random(4).randbytes(32 * 5)
    text = bytearray(b"".join(b'"0x' + nodes[k : k + 32].hex().encode() + b'",' for k in range(0, len(nodes), 32)))
    assert native.decode_nodes(text) == nodes
    text[3 + 69 * 2 : 13 + 69 * 2] = text[3 + 69 * 2 : 13 + 69 * 2].upper()  # upper case is hex too
    assert native.decode_nodes(text) == nodes
    for bad in (b"g", b" ", b"\xff"):
        spoiled = bytearray(text)
        spoiled[69 * 4 + 66] = bad[0]
        assert native.decode_nodes(spoiled) is None
