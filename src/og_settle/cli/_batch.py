"""``og-settle batch``: build, prove, verify and inspect OpenGradient batch trees (standard-v1 dumps), offline.

``build LEAVES.jsonl -o DUMP.json`` reads one leaf per line, as the JSON object
``{"tee_id", "input_hash", "output_hash", "tee_signature", "timestamp"}``: the three hashes as ``0x`` + 64 hex
digits, the signature as ``0x`` hex of at most ``TEE_SIGNATURE_MAX_BYTES`` (1024) bytes, the timestamp as a JSON
integer in [0, 2**256). Blank (whitespace-only) lines are skipped, so a trailing newline or a separating blank
line is harmless. Unknown fields are rejected, so a misspelt field is reported rather than silently dropped.
The first bad line is reported as ``LEAVES.jsonl:LINE: <field>: <what is wrong>`` with exit code 2, and no
output file is written. The dump is written atomically (a temporary file in the same folder, fsynced, then
renamed over DUMP.json), as compact JSON byte-identical to ``JSON.stringify(tree.dump())``.

Exit codes: 0 success; 1 ``verify`` found the dump invalid; 2 bad input (unreadable file, malformed line,
bad arguments).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

from og_settle._errors import InvalidInput

# A progress bar is drawn on a terminal for inputs of at least this many bytes (about 1,000 leaves).
_PROGRESS_MIN_BYTES = 1_000_000


def register(groups: Any) -> None:
    batch = groups.add_parser("batch", help="build, prove, verify and inspect batch Merkle trees (offline)")
    commands = batch.add_subparsers(dest="batch_command", required=True, metavar="COMMAND")

    build = commands.add_parser("build", help="build the batch tree of a JSON-lines file of leaves")
    build.add_argument(
        "leaves", type=Path, help="JSON lines: {tee_id, input_hash, output_hash, tee_signature, timestamp}"
    )
    build.add_argument("-o", "--output", type=Path, required=True, help="where to write the standard-v1 dump")
    build.add_argument("--json", action="store_true", help='print {"root", "count"} as JSON')
    build.set_defaults(handler=_build)

    prove = commands.add_parser("prove", help="the inclusion proof of one leaf of a dump")
    prove.add_argument("dump", type=Path, help="a standard-v1 dump")
    which = prove.add_mutually_exclusive_group(required=True)
    which.add_argument("--index", type=int, help="the leaf's position in the dump's values (input order)")
    which.add_argument("--leaf-hash", help="the leaf's hash (0x + 64 hex digits)")
    prove.add_argument("--json", action="store_true", help="print one JSON object")
    prove.set_defaults(handler=_prove)

    verify = commands.add_parser("verify", help="re-validate a whole dump (format, encoding, every hash)")
    verify.add_argument("dump", type=Path, help="a standard-v1 dump")
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.set_defaults(handler=_verify)

    inspect = commands.add_parser("inspect", help="root, leaf count and leaf encoding of a dump")
    inspect.add_argument("dump", type=Path, help="a standard-v1 dump")
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    inspect.set_defaults(handler=_inspect)


# -- progress


class _Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal and the job is big."""

    def __init__(self, label: str, total: int, stream: TextIO) -> None:
        self._label = label
        self._total = max(total, 1)
        self._stream = stream
        self._enabled = stream.isatty() and total >= _PROGRESS_MIN_BYTES
        self._last = 0.0

    def update(self, done: int, note: str = "") -> None:
        now = time.monotonic()
        if not self._enabled or now - self._last < 0.1:
            return
        self._last = now
        fraction = min(done / self._total, 1.0)
        filled = int(fraction * 30)
        self._stream.write(f"\r{self._label} [{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%} {note}")
        self._stream.flush()

    def status(self, text: str) -> None:
        if self._enabled:
            self._stream.write(f"\r{text}\033[K")
            self._stream.flush()

    def close(self) -> None:
        if self._enabled:
            self._stream.write("\r\033[K")
            self._stream.flush()


# -- build


def read_leaves(path: Path, progress: _Progress | None = None) -> list[Any]:
    """Parse a JSON-lines leaves file into InferenceLeaf objects; InvalidInput names ``path:line`` and the field."""
    from og_settle._merkle import InferenceLeaf

    leaves: list[Any] = []
    try:
        handle = path.open("rb")
    except OSError as err:
        raise InvalidInput(f"{path}: cannot read: {err.strerror or err}") from None
    with handle:
        done = 0
        for number, raw in enumerate(handle, start=1):
            done += len(raw)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInput(f"{path}:{number}: not UTF-8 text") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise InvalidInput(f"{path}:{number}: not valid JSON: {err.msg} at column {err.colno}") from None
            try:
                leaves.append(InferenceLeaf.from_json(obj))
            except InvalidInput as err:
                raise InvalidInput(f"{path}:{number}: {err}") from None
            if progress is not None and number % 4096 == 0:
                progress.update(done, f"{len(leaves):,} leaves")
    if not leaves:
        raise InvalidInput(f"{path}: no leaves (the file is empty or blank)")
    return leaves


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as err:
        raise InvalidInput(f"{path}: cannot write: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException as err:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise InvalidInput(f"{path}: cannot write: {err.strerror or err}") from None
        raise


def _build(args: argparse.Namespace) -> int:
    from og_settle._hex import to_hex
    from og_settle._merkle import StandardMerkleTree

    path: Path = args.leaves
    try:
        size = path.stat().st_size
    except OSError as err:
        raise InvalidInput(f"{path}: cannot read: {err.strerror or err}") from None
    progress = _Progress("reading leaves", size, sys.stderr)
    try:
        leaves = read_leaves(path, progress)
        progress.status(f"building the tree of {len(leaves):,} leaves...")
        tree = StandardMerkleTree.of(leaves)
        progress.status("writing the dump...")
        write_atomically(args.output, tree.dump_json())
    finally:
        progress.close()
    root = to_hex(tree.root)
    if args.json:
        print(json.dumps({"root": root, "count": len(tree)}))
    else:
        print(f"wrote {args.output}: {len(tree)} leaves, root {root}")
    return 0


# -- reading dumps


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise InvalidInput(f"{path}: cannot read: {err.strerror or err}") from None


def _parse_dump(path: Path, text: bytes) -> Any:
    from og_settle._merkle import StandardMerkleTree

    try:
        return StandardMerkleTree.load_json(text)
    except InvalidInput as err:
        raise InvalidInput(f"{path}: {err}") from None


def load_dump(path: Path) -> Any:
    """Read and fully validate a standard-v1 dump; InvalidInput names the file and the field."""
    return _parse_dump(path, _read(path))


def _prove(args: argparse.Namespace) -> int:
    from og_settle._hex import parse_bytes32, to_hex

    tree = load_dump(args.dump)
    if args.leaf_hash is not None:
        wanted = parse_bytes32(args.leaf_hash, "--leaf-hash")
        try:
            index = tree.index_of(wanted)
        except InvalidInput:
            raise InvalidInput(f"--leaf-hash: {to_hex(wanted)} is not a leaf of {args.dump}") from None
    else:
        index = args.index
        if not 0 <= index < len(tree):
            raise InvalidInput(f"--index: {index} is out of range for a dump of {len(tree)} leaves")
    proof = tree.proof(index)
    value = tree.dump()["values"][index]["value"]
    leaf = tree.leaf_hash(tree.values[index])
    result = {
        "root": to_hex(tree.root),
        "index": index,
        "tree_index": tree.tree_index(index),
        "leaf_hash": to_hex(leaf),
        "value": value,
        "proof": [to_hex(node) for node in proof],
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"root       {result['root']}")
        print(f"index      {index} (tree slot {result['tree_index']})")
        print(f"leaf hash  {result['leaf_hash']}")
        print(f"value      {json.dumps(value)}")
        print(f"proof      {len(proof)} nodes")
        for node in result["proof"]:
            print(f"  {node}")
    return 0


def _summary(tree: Any) -> dict[str, Any]:
    from og_settle._hex import to_hex
    from og_settle._merkle import STANDARD_V1

    return {
        "format": STANDARD_V1,
        "root": to_hex(tree.root),
        "count": len(tree),
        "leafEncoding": list(tree.leaf_encoding),
    }


def _verify(args: argparse.Namespace) -> int:
    text = _read(args.dump)  # an unreadable file is bad input (exit 2), not an invalid dump
    try:
        tree = _parse_dump(args.dump, text)
    except InvalidInput as err:
        if args.json:
            print(json.dumps({"valid": False, "error": str(err)}))
        print(f"og-settle: invalid dump: {err}", file=sys.stderr)
        return 1
    summary = _summary(tree)
    if args.json:
        print(json.dumps({"valid": True, **summary}))
    else:
        print(f"{args.dump}: valid {summary['format']} dump, {summary['count']} leaves, root {summary['root']}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    summary = _summary(load_dump(args.dump))
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"format    {summary['format']}")
        print(f"root      {summary['root']}")
        print(f"count     {summary['count']}")
        print(f"encoding  {', '.join(summary['leafEncoding'])}")
    return 0
