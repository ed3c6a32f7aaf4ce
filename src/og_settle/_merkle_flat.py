"""The tree algorithms on OpenZeppelin's flat array: build, proofs, multiproofs and their checks."""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from operator import eq, itemgetter

import sha3

from og_settle._errors import InvariantViolation

_keccak = sha3.keccak_256


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
