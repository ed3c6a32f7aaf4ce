"""The bulk hashing of ``og-settle batch``: OpenGradient leaf hashes, whole flat trees, and their checks.

With the C extension ``og_settle._batch_native`` (built by ``pip install``, see ``setup.py``) the hashing runs
in C, outside the GIL and split across the CPUs this process may use; without it the same results come from
safe-pysha3 in Python, slower. Trees are flat byte strings here, 32 bytes per node, in the layout of
:class:`~og_settle.StandardMerkleTree` (root first, leaves reversed in the last ``n`` slots).
"""

from __future__ import annotations

import os
from array import array
from types import ModuleType
from typing import Final

import sha3

from og_settle._merkle_flat import _tree_and_slots

try:
    from og_settle import _batch_native as _native_module
except ImportError:  # not built: the same results in Python, slower
    _native: ModuleType | None = None
else:
    _native = _native_module

__all__ = ["check_leaves", "decode_nodes", "first_bad_node", "leaf_hashes", "merkle_tree", "render_nodes"]

_affinity = getattr(os, "sched_getaffinity", None)
THREADS: Final = max(1, min(len(_affinity(0)) if _affinity else (os.cpu_count() or 1), 8))
"""Threads the C hashing uses: the CPUs this process may run on (at most 8)."""

_keccak = sha3.keccak_256


def leaf_hashes(encodings: list[bytes]) -> bytes:
    """``keccak256(keccak256(e))`` of each ABI encoding ``e``, 32 bytes each, concatenated."""
    if _native is not None:
        hashes: bytes = _native.leaf_hashes(encodings, THREADS)
        return hashes
    keccak = _keccak
    return b"".join([keccak(keccak(encoded).digest()).digest() for encoded in encodings])


def merkle_tree(leaves: bytes, sort: bool = True) -> tuple[bytes, list[int]]:
    """The flat tree over the concatenated 32-byte ``leaves`` (stably sorted first when ``sort``), and each
    leaf's slot in it (``tree_index[i]`` for leaf ``i``)."""
    if _native is not None:
        built: tuple[bytes, list[int]] = _native.merkle_tree(leaves, sort, THREADS)
        return built
    tree, tree_index = _tree_and_slots([leaves[k : k + 32] for k in range(0, len(leaves), 32)], sort)
    return b"".join(tree), tree_index


def first_bad_node(nodes: bytes) -> int | None:
    """The first internal node of the flat tree ``nodes`` that is not the hash of its sorted children, or None."""
    if _native is not None:
        bad: int = _native.first_bad_node(nodes, THREADS)
        return None if bad < 0 else bad
    keccak = _keccak
    for i in range(len(nodes) // 64):
        a, b = nodes[64 * i + 32 : 64 * i + 64], nodes[64 * i + 64 : 64 * i + 96]
        if keccak(a + b if a < b else b + a).digest() != nodes[32 * i : 32 * i + 32]:
            return i
    return None


def render_nodes(nodes: bytes, start: int, stop: int) -> bytes:
    """The dump's ``"0x.."`` strings of nodes ``start .. stop - 1`` of ``nodes``, comma-separated."""
    if _native is not None:
        text: bytes = _native.render_nodes(nodes, start, stop)
        return text
    return ",".join([f'"0x{nodes[32 * i : 32 * i + 32].hex()}"' for i in range(start, stop)]).encode()


def decode_nodes(text: bytearray) -> bytes | None:
    """The 32-byte nodes of a dump's tree text (``"0x<64 hex digits>",`` per node, framing already checked) in
    C; None without the extension or when a digit is not hex (the caller then decodes and names the node)."""
    if _native is None:
        return None
    nodes: bytes | None = _native.decode_nodes(text)
    return nodes


def check_leaves(
    nodes: bytes, hashes: bytes, slots: list[int], first_leaf: int, used_by: array[int], first: int
) -> bool:
    """Whether values ``first ..`` (leaf hashes ``hashes``, tree indexes ``slots``) sit on free leaf slots of
    ``nodes`` and hash to them; if so the slots are marked in ``used_by`` (int64 per leaf slot, -1 where free).
    False, ``used_by`` unchanged, if anything is wrong (the caller names the fault)."""
    if _native is not None:
        ok: bool = _native.check_leaves(nodes, hashes, slots, first_leaf, used_by, first)
        return ok
    return False  # the caller's own loop checks and names every fault
