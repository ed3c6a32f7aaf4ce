"""Reading ``standard-v1`` dumps at million-leaf scale, in bounded memory (``og-settle batch prove/verify/inspect``).

:func:`open_dump` reads a dump in the compact layout that ``JSON.stringify(tree.dump())`` and ``og-settle batch
build`` write (``{"format":"standard-v1","leafEncoding":[..],"tree":["0x..",..],"values":[{"value":[..],
"treeIndex":N},..]}``). The header is decoded; the tree is kept as its text, its framing checked, and a node
is decoded where it is used (``verify`` decodes them all, 32 bytes each); the values are streamed through one
buffer in blocks cut at entry boundaries. So ``prove`` reads up to its entry and decodes that block only,
``inspect`` counts the entries without decoding them, and ``verify`` holds one block at a time (compact
OpenGradient entries are read back by the C extension, others by ``msgspec``). A dump in any other layout
(pretty-printed, keys in another order) is loaded whole by :meth:`StandardMerkleTree.load`, as before.

Every block is decoded by a strict JSON decoder, and a JSON array cut at element boundaries whose pieces all
decode is itself valid JSON with exactly those elements, so the streamed reading accepts what the whole-file
reading accepts; anything unexpected makes the command start again on the dump loaded whole, whose message
names the fault. ``prove`` checks what its proof rests on: the entry hashes to its leaf slot and every node on
the path hashes its children up to the root; ``inspect`` checks the layout and the counts; ``verify`` checks
everything :meth:`StandardMerkleTree.load` checks.
"""

from __future__ import annotations

import binascii
import os
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final, NoReturn, Protocol, TypeVar

import msgspec
import sha3

from og_settle import _merkle_hash as _hashing
from og_settle._errors import InvalidInput, InvariantViolation
from og_settle._hex import parse_bytes32, to_hex
from og_settle._merkle import OG_LEAF_ENCODING, STANDARD_V1, StandardMerkleTree
from og_settle._merkle_leaf import og_encodings
from og_settle._merkle_stream import _og_encoding
from og_settle._merkle_values import _check_encoding, _codec, _coerce_value, _leaf_hashes

__all__ = ["DumpFile", "DumpProof", "open_dump", "with_fallback"]

_BLOCK: Final = 1 << 23  # bytes read at a time: 8 MiB
_T = TypeVar("_T")
_keccak = sha3.keccak_256
_unhexlify = binascii.unhexlify


@dataclass(frozen=True, slots=True)
class DumpProof:
    """The inclusion proof of one value of a dump, checked against the dump's root before it is returned.

    Attributes:
        root: the dump's root (32 bytes).
        index: the value's position in the dump's ``values`` (input order).
        tree_index: the value's slot in the tree array.
        leaf_hash: the value's leaf hash (32 bytes).
        value: the value in the dump's canonical JSON form.
        proof: the sibling hashes from the leaf up to the root.
    """

    root: bytes
    index: int
    tree_index: int
    leaf_hash: bytes
    value: list[Any]
    proof: tuple[bytes, ...]


# --------------------------------------------------------------------------------------------------------
# Reading a dump


class DumpFile(Protocol):
    """A ``standard-v1`` dump opened by :func:`open_dump`."""

    @property
    def leaf_encoding(self) -> tuple[str, ...]: ...

    @property
    def root(self) -> bytes: ...

    def __len__(self) -> int: ...

    def prove(self, index: int) -> DumpProof:
        """The proof of the value at input position ``index`` (checked against the root)."""
        ...

    def index_of(self, leaf_hash: bytes) -> int:
        """The input position of the first value whose leaf hash is ``leaf_hash``; InvalidInput if absent."""
        ...

    def verify(self) -> None:
        """Check every field and hash as :meth:`StandardMerkleTree.load` does; InvalidInput names the first fault."""
        ...

    def check_count(self) -> None:
        """Check that there is one value per leaf slot, without decoding the values; InvalidInput if not."""
        ...


class _NotCompact(Exception):
    """The dump is not in the compact layout; it is read whole instead."""


class _LoadedDump:
    """A dump in another layout, loaded and fully checked by :meth:`StandardMerkleTree.load`."""

    def __init__(self, tree: StandardMerkleTree) -> None:
        self._tree = tree

    @property
    def leaf_encoding(self) -> tuple[str, ...]:
        return self._tree.leaf_encoding

    @property
    def root(self) -> bytes:
        return self._tree.root

    def __len__(self) -> int:
        return len(self._tree)

    def prove(self, index: int) -> DumpProof:
        tree = self._tree
        renderers = [_codec(t)[1] for t in tree.leaf_encoding]
        value = tree.values[index]
        return DumpProof(
            root=tree.root,
            index=index,
            tree_index=tree.tree_index(index),
            leaf_hash=tree.leaf_hash(value),
            value=[render(item) for render, item in zip(renderers, value, strict=True)],
            proof=tree.proof(index),
        )

    def index_of(self, leaf_hash: bytes) -> int:
        return self._tree.index_of(leaf_hash)

    def verify(self) -> None:
        return None  # load() checked everything

    def check_count(self) -> None:
        return None  # load() checked everything


_HEAD: Final = f'{{"format":"{STANDARD_V1}","leafEncoding":'.encode()
_TREE_KEY: Final = b',"tree":['
_VALUES_KEY: Final = b'],"values":['
_BOUNDARY: Final = b'},{"value":'  # in valid JSON these bytes occur only between two entries of "values"
_NODE: Final = 69  # '"0x' + 64 hex digits + '"' + ','
_NODES_PER_READ: Final = 1 << 16


class _Entry(msgspec.Struct, forbid_unknown_fields=True):
    value: Any
    treeIndex: int  # the dump's key, as it is spelt there


_entries_decoder: Final = msgspec.json.Decoder(list[_Entry])


def _check_tree_text(text: bytearray) -> None:
    """Check that ``text`` is ``"0x<64 characters>",`` repeated (the digits are checked where decoded)."""
    count, rest = divmod(len(text), _NODE)
    if rest or not (
        text[0::_NODE] == b'"' * count
        and text[1::_NODE] == b"0" * count
        and text[2::_NODE] == b"x" * count
        and text[67::_NODE] == b'"' * count
        and text[68::_NODE] == b"," * count
    ):
        raise _NotCompact


class _StreamedDump:
    """A compact dump: the header and the tree's text in memory (nodes decoded where used), values streamed."""

    def __init__(
        self, path: Path, encoding: tuple[str, ...], tree_text: bytearray, values_start: int, values_end: int
    ) -> None:
        self._path = path
        self._encoding = encoding
        self._tree_text = tree_text  # '"0x<64 hex>",' per node
        self._size = len(tree_text) // _NODE
        self._count = (self._size + 1) // 2
        self._values = (values_start, values_end)

    @classmethod
    def open(cls, path: Path, handle: BinaryIO) -> _StreamedDump:
        head = handle.read(1 << 16)
        if not head.startswith(_HEAD):
            raise _NotCompact
        key = head.find(_TREE_KEY, len(_HEAD))
        if key < 0:
            raise _NotCompact
        try:
            raw_encoding = msgspec.json.decode(head[len(_HEAD) : key])
        except msgspec.DecodeError:
            raise _NotCompact from None
        encoding = _check_encoding(raw_encoding)
        tree_start = key + len(_TREE_KEY)
        handle.seek(tree_start)
        tree_text = bytearray()
        while (close := tree_text.find(b"]", max(len(tree_text) - _BLOCK, 0))) < 0:
            window = handle.read(_BLOCK)
            if not window:
                raise _NotCompact
            tree_text += window
        del tree_text[close:]
        tree_end = tree_start + close
        tree_text += b","
        _check_tree_text(tree_text)
        size = len(tree_text) // _NODE
        if size == 0 or size % 2 == 0:
            raise _NotCompact  # load() names the fault
        handle.seek(tree_end)
        if handle.read(len(_VALUES_KEY)) != _VALUES_KEY:
            raise _NotCompact
        tail_start = max(handle.seek(0, os.SEEK_END) - 64, 0)
        handle.seek(tail_start)
        tail = handle.read().rstrip(b" \t\r\n")
        if not tail.endswith(b"]}"):
            raise _NotCompact
        values_end = tail_start + len(tail) - 2
        values_start = tree_end + len(_VALUES_KEY)
        if values_end < values_start:
            raise _NotCompact
        return cls(path, encoding, tree_text, values_start, values_end)

    @property
    def leaf_encoding(self) -> tuple[str, ...]:
        return self._encoding

    @property
    def root(self) -> bytes:
        return self._node(0)

    def __len__(self) -> int:
        return self._count

    def _node(self, index: int) -> bytes:
        start = _NODE * index + 3
        try:
            node = _unhexlify(self._tree_text[start : start + 64])
        except ValueError:
            self._bad_node(index)
        return node

    def _bad_node(self, index: int) -> NoReturn:
        """Raise load()'s InvalidInput for node ``index``, whose 64 characters are not all hex digits."""
        start = _NODE * index + 1
        parse_bytes32(self._tree_text[start : start + 66].decode("utf-8", "replace"), f"tree[{index}]")
        raise InvariantViolation(f"tree[{index}] was refused as hex but parses")  # pragma: no cover

    def _nodes(self) -> bytes:
        """Every node's 32 bytes, in tree order."""
        decoded = _hashing.decode_nodes(self._tree_text)
        if decoded is not None:
            return decoded
        text, parts = self._tree_text, []
        step = _NODE * _NODES_PER_READ
        for start in range(0, len(text), step):
            window = bytes(text[start : start + step])
            try:
                nodes = _unhexlify(window.replace(b'",', b"").replace(b'"0x', b""))
            except ValueError:
                nodes = b""
            if len(nodes) * _NODE != len(window) * 32:  # a character that is not a hex digit: find the node
                first = start // _NODE
                for index in range(first, first + len(window) // _NODE):
                    self._node(index)
                raise InvariantViolation("a tree window was refused as hex but each node parses")
            parts.append(nodes)
        return b"".join(parts)

    # -- the values, streamed

    def _scan(self) -> Iterator[tuple[int, bytearray, int, int]]:
        """Over the values array: ``(first, text, stop, count)``, where ``text[:stop]`` holds the ``count``
        whole entries from index ``first`` on, joined by commas. ``text`` is one buffer, reused (and grown for
        a longer entry): use each block before asking for the next."""
        start, end = self._values
        first = 0
        buffer = bytearray(_BLOCK)
        filled = 0
        with self._path.open("rb") as handle:
            handle.seek(start)
            remaining = end - start
            while remaining > 0:
                if filled == len(buffer):
                    buffer.extend(bytes(len(buffer)))
                with memoryview(buffer) as view:
                    read = handle.readinto(view[filled : filled + min(len(buffer) - filled, remaining)])
                if not read:
                    raise InvalidInput("values: the file ended early")
                remaining -= read
                filled += read
                stop = buffer.rfind(_BOUNDARY, 0, filled) + 1 if remaining > 0 else filled
                if stop == 0:
                    continue
                count = buffer.count(_BOUNDARY, 0, stop) + 1
                yield first, buffer, stop, count
                first += count
                rest = min(stop + 1, filled)  # past the comma between two blocks' entries
                buffer[: filled - rest] = buffer[rest:filled]
                filled -= rest

    def _entries(self, text: bytearray, stop: int, count: int) -> list[_Entry]:
        try:
            entries = _entries_decoder.decode(b"[" + text[:stop] + b"]")
        except (msgspec.DecodeError, UnicodeDecodeError):
            raise _NotCompact from None
        if len(entries) != count:
            raise _NotCompact
        return entries

    def _check_value_count(self, seen: int) -> None:
        if seen != self._count:
            raise InvalidInput(f"values: a tree of {self._size} nodes has {self._count} leaves, but there are {seen}")

    def _tree_index(self, i: int, index: int) -> int:
        """``index``, the tree index of value ``i``, if it names a leaf slot; else InvalidInput."""
        first_leaf = self._count - 1
        if not first_leaf <= index < self._size:
            raise InvalidInput(
                f"values[{i}].treeIndex: expected a leaf slot in [{first_leaf}, {self._size - 1}], got {index}"
            )
        return index

    def _leaf_hashes(self, first: int, entries: list[_Entry]) -> list[bytes]:
        """The leaf hashes of entries ``first ..``, each value checked as load() checks it."""
        encoding = self._encoding
        if encoding == OG_LEAF_ENCODING:
            encodings: list[bytes] = []
            for offset, entry in enumerate(entries):
                value = entry.value
                encoded = None
                if type(value) is list and len(value) == 5 and type(value[4]) is str and value[4].isdigit():
                    t, i, o, s, ts = value
                    if type(t) is str and type(i) is str and type(o) is str and type(s) is str and ts.isascii():
                        encoded = _og_encoding(t, i, o, s, int(ts))
                if encoded is None:
                    canonical = _coerce_value(encoding, value, f"values[{first + offset}].value")
                    encoded = next(og_encodings([canonical]))
                encodings.append(encoded)
            joined = _hashing.leaf_hashes(encodings)
            return [joined[k : k + 32] for k in range(0, len(joined), 32)]
        values = [
            _coerce_value(encoding, entry.value, f"values[{first + offset}].value")
            for offset, entry in enumerate(entries)
        ]
        return _leaf_hashes(encoding, values)

    def _entry(self, index: int) -> _Entry:
        """The entry at input position ``index`` (the scan stops there: a proof rests on its entry and the tree)."""
        for first, text, stop, count in self._scan():
            if index < first + count:
                return self._entries(text, stop, count)[index - first]
        raise InvalidInput(f"values: there is no values[{index}] in a dump whose tree has {self._count} leaves")

    # -- proofs

    def prove(self, index: int) -> DumpProof:
        if not 0 <= index < self._count:
            raise InvalidInput(f"index: {index} is out of range for a dump of {self._count} values")
        entry = self._entry(index)
        slot = self._tree_index(index, entry.treeIndex)
        leaf = self._leaf_hashes(index, [entry])[0]
        if leaf != self._node(slot):
            raise InvalidInput(f"values[{index}]: the value does not hash to tree[{slot}]")
        proof: list[bytes] = []
        node, digest = slot, leaf
        while node > 0:
            sibling = self._node(node - 1 if node % 2 == 0 else node + 1)
            proof.append(sibling)
            node = (node - 1) // 2
            digest = _keccak(digest + sibling if digest < sibling else sibling + digest).digest()
            if digest != self._node(node):
                left, right = 2 * node + 1, 2 * node + 2
                raise InvalidInput(f"tree[{node}]: is not the hash of its children tree[{left}] and tree[{right}]")
        result = tuple(proof)
        if StandardMerkleTree.verify(self.root, self._encoding, entry.value, result) is not True:
            raise InvariantViolation(f"the proof for value {index} does not verify against the root")
        renderers = [_codec(t)[1] for t in self._encoding]
        canonical = _coerce_value(self._encoding, entry.value, f"values[{index}].value")
        return DumpProof(
            root=self.root,
            index=index,
            tree_index=slot,
            leaf_hash=leaf,
            value=[render(item) for render, item in zip(renderers, canonical, strict=True)],
            proof=result,
        )

    def _leaf_slots(self, leaf_hash: bytes) -> list[int]:
        """The leaf slots holding ``leaf_hash``: found in the tree's text, or in the decoded nodes when the text
        spells hashes in upper case."""
        text, first_leaf = self._tree_text, self._count - 1
        slots = []
        needle = f'"0x{leaf_hash.hex()}"'.encode()
        at = text.find(needle, _NODE * first_leaf)
        while at >= 0:
            if at % _NODE == 0:
                slots.append(at // _NODE)
            at = text.find(needle, at + 1)
        if not slots and any(65 <= byte <= 70 for byte in memoryview(text)[3::_NODE]):
            nodes = self._nodes()
            at = nodes.find(leaf_hash, 32 * first_leaf)
            while at >= 0:
                if at % 32 == 0:
                    slots.append(at // 32)
                at = nodes.find(leaf_hash, at + 1)
        return slots

    def index_of(self, leaf_hash: bytes) -> int:
        slots = self._leaf_slots(leaf_hash)
        if slots:
            needles = [f'"treeIndex":{slot}}}'.encode() for slot in slots]
            for first, text, stop, _ in self._scan():
                found = [at for at in (text.find(needle, 0, stop) for needle in needles) if at >= 0]
                if found:  # the compact spelling; an entry's "treeIndex" is its last key
                    return first + text.count(_BOUNDARY, 0, min(found))
            for first, text, stop, count in self._scan():  # any other spelling inside the entries
                for offset, entry in enumerate(self._entries(text, stop, count)):
                    if entry.treeIndex in slots:
                        return first + offset
        raise InvalidInput(f"leaf_hash: {to_hex(leaf_hash)} is not a leaf of this tree")

    # -- verification

    def check_count(self) -> None:
        seen = 0
        for first, _, _, count in self._scan():
            seen = first + count
        self._check_value_count(seen)

    def verify(self) -> None:
        nodes = self._nodes()
        first_leaf = self._count - 1
        used_by = array("q", [-1]) * self._count  # the value on each leaf slot, by slot - first_leaf
        native = _hashing._native if self._encoding == OG_LEAF_ENCODING else None
        seen = 0
        for first, text, stop, count in self._scan():
            parsed = None if native is None else native.parse_entries(text, 0, stop)
            entries: list[_Entry] = []
            encodings: list[bytes] = []
            if parsed is not None and parsed[2] == stop and len(parsed[0]) == count:
                encodings, slots = parsed[0], parsed[1]  # every entry in the compact form, read in C
            else:
                entries = self._entries(text, stop, count)
                slots = [entry.treeIndex for entry in entries]
            if encodings and _hashing.check_leaves(
                nodes, _hashing.leaf_hashes(encodings), slots, first_leaf, used_by, first
            ):
                seen = first + count  # every value on its own free slot, hashing to it
                continue
            for offset, slot in enumerate(slots):
                if not first_leaf <= slot < self._size:
                    self._tree_index(first + offset, slot)  # raises, naming the value
                previous = used_by[slot - first_leaf]
                if previous >= 0:
                    at, used = first + offset, f"values[{previous}]"
                    raise InvalidInput(f"values[{at}].treeIndex: leaf slot {slot} is already used by {used}")
                used_by[slot - first_leaf] = first + offset
            if entries:
                hashes = self._leaf_hashes(first, entries)
            else:
                joined = _hashing.leaf_hashes(encodings)
                hashes = [joined[k : k + 32] for k in range(0, len(joined), 32)]
            for offset, (digest, slot) in enumerate(zip(hashes, slots, strict=True)):
                if nodes[32 * slot : 32 * slot + 32] != digest:
                    raise InvalidInput(f"values[{first + offset}]: the value does not hash to tree[{slot}]")
            seen = first + count
        self._check_value_count(seen)
        _check_internal_nodes(nodes)


def _check_internal_nodes(nodes: bytes) -> None:
    """Raise InvalidInput naming the first internal node (of the 32-byte ``nodes``) that does not hash its children."""
    bad = _hashing.first_bad_node(nodes)
    if bad is not None:
        raise InvalidInput(f"tree[{bad}]: is not the hash of its children tree[{2 * bad + 1}] and tree[{2 * bad + 2}]")


def _load_whole(path: Path, handle: BinaryIO) -> _LoadedDump:
    handle.seek(0)
    return _LoadedDump(StandardMerkleTree.load_json(handle.read()))


def open_dump(path: Path) -> DumpFile:
    """Open a ``standard-v1`` dump: streamed when it is in the compact layout, else loaded whole (and then
    already checked). InvalidInput names the field (the caller adds the file name)."""
    with path.open("rb") as handle:
        try:
            return _StreamedDump.open(path, handle)
        except _NotCompact:
            return _load_whole(path, handle)


def with_fallback(path: Path, action: Callable[[DumpFile], _T]) -> _T:
    """Run ``action`` on the opened dump; when a streamed dump turns out not to be compact after all (a block
    that does not decode), run it again on the dump loaded whole, which names the fault exactly."""
    dump = open_dump(path)
    try:
        return action(dump)
    except _NotCompact:
        with path.open("rb") as handle:
            return action(_load_whole(path, handle))
