"""Batch files at million-leaf scale, in bounded memory: JSON-lines leaves in, ``standard-v1`` dumps out and back.

``og-settle batch`` works through this module; :class:`~og_settle.StandardMerkleTree` (``_merkle``) is the
in-memory reference it agrees with byte for byte.

:func:`build_dump` reads a JSON-lines file of OpenGradient leaves in 8 MiB blocks of whole lines. Each line
is decoded by ``msgspec`` into a strict struct, and a leaf in canonical form is checked and ABI-encoded from
its hex text in one ``unhexlify``; anything else (a blank line, an odd spelling such as ``0X``, an error)
goes through :meth:`InferenceLeaf.from_json`, which stays the judge of what is valid and reports
``FILE:LINE: field: problem``. Only each leaf's ABI encoding is kept; the dump is then written in blocks to a
temporary file that replaces the output only once complete and fsynced. The hashing, the tree and the
rendering of its nodes are ``_merkle_hash``'s (in C when the extension is built).

The dumps are read back by ``_merkle_dump``.
"""

from __future__ import annotations

import binascii
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BufferedReader
from pathlib import Path
from typing import BinaryIO, Final

import msgspec

from og_settle._errors import InvalidInput
from og_settle._hex import UINT256_MAX
from og_settle._merkle import STANDARD_V1
from og_settle._merkle_flat import _gc_paused
from og_settle._merkle_hash import _native, leaf_hashes, merkle_tree, render_nodes
from og_settle._merkle_leaf import OG_LEAF_ENCODING, TEE_SIGNATURE_MAX_BYTES, InferenceLeaf, og_encodings

__all__ = ["BuildSummary", "OgTree", "build_dump", "og_encoding_of", "read_leaf_encodings"]

_BLOCK: Final = 1 << 23  # bytes read at a time: 8 MiB
_WRITE_BLOCK: Final = 128  # values per write (about 100 kB: small writes reuse memory, big ones map it anew)
_unhexlify = binascii.unhexlify

# The fixed hex words of an OpenGradient leaf's ABI encoding (see ``_merkle.og_encodings``).
_OFFSET_HEX: Final = f"{5 * 32:064x}"
_LENGTH_HEX: Final = tuple(f"{n:064x}" for n in range(TEE_SIGNATURE_MAX_BYTES + 1))
_PADDING_HEX: Final = tuple("00" * (-n % 32) for n in range(32))
_SIGNATURE_HEX_MAX: Final = 2 + 2 * TEE_SIGNATURE_MAX_BYTES


@dataclass(frozen=True, slots=True)
class BuildSummary:
    """What :func:`build_dump` wrote.

    Attributes:
        root: the Merkle root (32 bytes).
        count: the number of leaves.
    """

    root: bytes
    count: int


# --------------------------------------------------------------------------------------------------------
# OpenGradient leaves from their JSON text


def _og_encoding(tee_id: str, input_hash: str, output_hash: str, signature: str, timestamp: int) -> bytes | None:
    """The ABI encoding of a leaf given in canonical JSON form (``0x`` + lowercase or uppercase hex, an int), or
    None when any field is not in that form; the caller then asks :meth:`InferenceLeaf.from_json` (which accepts
    every spelling it should and names the field that is wrong). One ``unhexlify`` of the whole encoding checks
    every digit: it rejects non-hex characters, whitespace and odd lengths."""
    if not (
        len(tee_id) == 66
        and len(input_hash) == 66
        and len(output_hash) == 66
        and len(signature) <= _SIGNATURE_HEX_MAX
        and tee_id[:2] == "0x"
        and input_hash[:2] == "0x"
        and output_hash[:2] == "0x"
        and signature[:2] == "0x"
        and type(timestamp) is int
        and 0 <= timestamp <= UINT256_MAX
    ):
        return None
    length = (len(signature) - 2) >> 1
    try:
        return _unhexlify(
            tee_id[2:]
            + input_hash[2:]
            + output_hash[2:]
            + _OFFSET_HEX
            + f"{timestamp:064x}"
            + _LENGTH_HEX[length]
            + signature[2:]
            + _PADDING_HEX[length & 31]
        )
    except (ValueError, UnicodeEncodeError):  # binascii.Error is a ValueError
        return None


def _render_og(encoded: bytes) -> str:
    """The dump's JSON text of the value whose ABI encoding is ``encoded``, without the enclosing brackets."""
    text = encoded.hex()
    length = int(text[320:384], 16)
    return (
        f'"0x{text[:64]}","0x{text[64:128]}","0x{text[128:192]}","0x{text[384 : 384 + 2 * length]}",'
        f'"{int(text[256:320], 16)}"'
    )


class _JsonLeaf(msgspec.Struct, forbid_unknown_fields=True):
    tee_id: str
    input_hash: str
    output_hash: str
    tee_signature: str
    timestamp: int


_leaf_decoder: Final = msgspec.json.Decoder(_JsonLeaf)


def _line_blocks(handle: BufferedReader) -> Iterator[tuple[bytearray, int]]:
    """The file in blocks of whole lines: ``(buffer, end)`` with the lines in ``buffer[:end]`` (each ending with
    a newline, except perhaps the file's last). One buffer is reused (and grown for a longer line), so reading
    a big file does not map fresh memory for every block; use each block before asking for the next."""
    buffer = bytearray(_BLOCK)
    filled = 0
    while True:
        if filled == len(buffer):
            buffer.extend(bytes(len(buffer)))  # a line longer than the buffer
        with memoryview(buffer) as view:
            read = handle.readinto(view[filled:])
        if not read:
            if filled:
                yield buffer, filled
            return
        filled += read
        end = buffer.rfind(b"\n", 0, filled) + 1
        if end:
            yield buffer, end
            buffer[: filled - end] = buffer[end:filled]
            filled -= end


def _slow_line(path: Path, number: int, raw: bytes) -> bytes | None:
    """One line the exact way: None for a blank line, else the leaf's encoding; InvalidInput names FILE:LINE."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}:{number}: not UTF-8 text") from None
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        raise InvalidInput(f"{path}:{number}: not valid JSON: {err.msg} at column {err.colno}") from None
    try:
        leaf = InferenceLeaf.from_json(obj)
    except InvalidInput as err:
        raise InvalidInput(f"{path}:{number}: {err}") from None
    return next(og_encodings([leaf.values()]))


def read_leaf_encodings(path: Path, progress: Callable[[int, int], None] | None = None) -> list[bytes]:
    """The ABI encodings of the leaves of a JSON-lines file, in file order (see the module docstring).

    ``progress(bytes_read, leaves)`` is called after each block. Raises InvalidInput naming ``path:line``.
    """
    try:
        handle = path.open("rb")
    except OSError as err:
        raise InvalidInput(f"{path}: cannot read: {err.strerror or err}") from None
    encodings: list[bytes] = []
    native = _native
    decode = _leaf_decoder.decode
    fast = _og_encoding
    number = 0
    done = 0
    with handle:
        for block, end in _line_blocks(handle):
            done += end
            position = 0
            while position < end:
                if native is not None:  # C takes every line it is sure of, up to the first it is not
                    taken, stop = native.encode_lines(block, position, end)
                    encodings += taken
                    number += len(taken)
                    if stop >= end:
                        break
                    position = stop
                line_end = block.find(b"\n", position, end)
                line_end = end if line_end < 0 else line_end
                raw = bytes(block[position:line_end])
                position = line_end + 1
                number += 1
                try:
                    leaf = decode(raw)
                except (msgspec.DecodeError, UnicodeDecodeError):
                    encoded = None
                else:
                    encoded = fast(leaf.tee_id, leaf.input_hash, leaf.output_hash, leaf.tee_signature, leaf.timestamp)
                if encoded is None:
                    encoded = _slow_line(path, number, raw)
                    if encoded is None:  # a blank line
                        continue
                encodings.append(encoded)
            if progress is not None:
                progress(done, len(encodings))
    if not encodings:
        raise InvalidInput(f"{path}: no leaves (the file is empty or blank)")
    return encodings


# --------------------------------------------------------------------------------------------------------
# Writing a dump


def _write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Run ``write`` on a temporary file beside ``path``, fsync it, then rename it over ``path``: readers see
    the old file or the whole new one, never a part, and nothing is left behind on failure."""
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as err:
        raise InvalidInput(f"{path}: cannot write: {err.strerror or err}") from None
    try:
        umask = os.umask(0o022)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # as open() would create it; mkstemp makes it private (0600)
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException as err:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise InvalidInput(f"{path}: cannot write: {err.strerror or err}") from None
        raise


def _write_og_dump(out: BinaryIO, tree: bytes, encodings: list[bytes], tree_index: list[int]) -> None:
    """The compact JSON of the dump, byte-identical to ``StandardMerkleTree.dump_json()``, written in blocks
    (``tree`` is the flat tree, 32 bytes per node)."""
    encoding_json = json.dumps(list(OG_LEAF_ENCODING), separators=(",", ":"))
    out.write(f'{{"format":"{STANDARD_V1}","leafEncoding":{encoding_json},"tree":['.encode())
    size = len(tree) // 32
    for start in range(0, size, 16 * _WRITE_BLOCK):
        if start:
            out.write(b",")
        out.write(render_nodes(tree, start, min(start + 16 * _WRITE_BLOCK, size)))
    out.write(b'],"values":[')
    native = _native
    for start in range(0, len(encodings), _WRITE_BLOCK):
        stop = start + _WRITE_BLOCK
        if start:
            out.write(b",")
        if native is not None:
            out.write(native.render_values(encodings, tree_index, start, min(stop, len(encodings))))
            continue
        entries = ",".join(
            [
                f'{{"value":[{_render_og(encoded)}],"treeIndex":{index}}}'
                for encoded, index in zip(encodings[start:stop], tree_index[start:stop], strict=True)
            ]
        )
        out.write(entries.encode())
    out.write(b"]}")


@dataclass(frozen=True, slots=True)
class OgTree:
    """The OpenGradient batch tree of some leaves' ABI encodings, ready to be written as a ``standard-v1`` dump.

    Attributes:
        root: the Merkle root (32 bytes).
        count: the number of leaves.
    """

    root: bytes
    count: int
    _tree: bytes
    _encodings: list[bytes]
    _tree_index: list[int]

    @classmethod
    def of(cls, encodings: list[bytes]) -> OgTree:
        """The tree of ``encodings`` (each a leaf's ``abi.encode``, as :func:`og_encoding_of` gives it)."""
        if not encodings:
            raise InvalidInput("leaves: a tree needs at least one leaf")
        tree, tree_index = merkle_tree(leaf_hashes(encodings))
        return cls(tree[:32], len(encodings), tree, encodings, tree_index)

    def write_dump(self, out: BinaryIO) -> None:
        """The dump's compact JSON, byte-identical to ``StandardMerkleTree.dump_json()``, written in blocks."""
        _write_og_dump(out, self._tree, self._encodings, self._tree_index)


def og_encoding_of(tee_id: str, input_hash: str, output_hash: str, tee_signature: str, timestamp: int) -> bytes:
    """A leaf's ``abi.encode`` from its JSON form (hex strings and an integer); InvalidInput names a bad field."""
    encoded = _og_encoding(tee_id, input_hash, output_hash, tee_signature, timestamp)
    if encoded is not None:
        return encoded
    fields = {"tee_id": tee_id, "input_hash": input_hash, "output_hash": output_hash}
    leaf = InferenceLeaf.from_json(fields | {"tee_signature": tee_signature, "timestamp": timestamp})
    return next(og_encodings([leaf.values()]))


def build_dump(source: Path, output: Path, progress: Callable[[str, int, int], None] | None = None) -> BuildSummary:
    """Build the OpenGradient batch tree of the JSON-lines file ``source`` and write its ``standard-v1`` dump to
    ``output`` atomically. ``progress(stage, done, total)`` reports reading (bytes) and writing (values)."""
    try:
        size = source.stat().st_size
    except OSError as err:
        raise InvalidInput(f"{source}: cannot read: {err.strerror or err}") from None
    with _gc_paused():
        encodings = read_leaf_encodings(
            source, None if progress is None else (lambda done, _leaves: progress("reading", done, size))
        )
        tree = OgTree.of(encodings)
        if progress is not None:
            progress("writing", 0, tree.count)
        _write_atomically(output, tree.write_dump)
    return BuildSummary(root=tree.root, count=tree.count)
