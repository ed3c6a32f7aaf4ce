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
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from og_settle._errors import InvalidInput

if TYPE_CHECKING:
    from og_settle._merkle_dump import DumpFile, DumpProof

_T = TypeVar("_T")


def register(groups: Any) -> None:
    batch = groups.add_parser("batch")
    commands = batch.add_subparsers(dest="batch_command", required=True, metavar="COMMAND")

    build = commands.add_parser("build", help="build the batch tree of a JSON-lines file of leaves")
    build.add_argument(
        "leaves", type=Path, help="JSON lines: {tee_id, input_hash, output_hash, tee_signature, timestamp}"
    )
    build.add_argument("-o", "--output", type=Path, required=True, help="where to write the standard-v1 dump")
    build.add_argument("--json", action="store_true", help='print {"root", "count"} as JSON')
    build.add_argument(
        "--progress",
        action="store_true",
        help="report progress on stderr even when it is not a terminal (on one, big inputs always show it)",
    )
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


# -- build


def _build(args: argparse.Namespace) -> int:
    from og_settle._hex import to_hex
    from og_settle._merkle_stream import build_dump
    from og_settle.cli._progress import Progress

    path: Path = args.leaves
    try:
        size = path.stat().st_size
    except OSError as err:
        raise InvalidInput(f"{path}: cannot read: {err.strerror or err}") from None
    progress = Progress("reading leaves", size, sys.stderr, forced=args.progress)

    def report(stage: str, done: int, total: int) -> None:
        if stage == "reading":
            progress.update(done)
        else:
            progress.status(f"building the tree and writing the dump of {total:,} leaves")

    try:
        summary = build_dump(path, args.output, report)
    finally:
        progress.close()
    root = to_hex(summary.root)
    if args.json:
        print(json.dumps({"root": root, "count": summary.count}))
    else:
        print(f"wrote {args.output}: {summary.count} leaves, root {root}")
    return 0


# -- reading dumps


def _with_dump(path: Path, action: Callable[[DumpFile], _T]) -> _T:
    """Open the dump at ``path`` (streamed when compact) and run ``action`` on it; InvalidInput names the file."""
    from og_settle._merkle_dump import with_fallback

    try:
        return with_fallback(path, action)
    except InvalidInput as err:
        raise InvalidInput(f"{path}: {err}") from None


def _unreadable(path: Path, err: OSError) -> InvalidInput:
    return InvalidInput(f"{path}: cannot read: {err.strerror or err}")


def _prove(args: argparse.Namespace) -> int:
    from og_settle._hex import parse_bytes32, to_hex

    wanted = None if args.leaf_hash is None else parse_bytes32(args.leaf_hash, "--leaf-hash")

    def prove(dump: DumpFile) -> DumpProof:
        if wanted is not None:
            try:
                index = dump.index_of(wanted)
            except InvalidInput:
                raise _NotALeaf from None
        else:
            index = args.index
            if not 0 <= index < len(dump):
                raise _OutOfRange(len(dump))
        return dump.prove(index)

    try:
        found = _with_dump(args.dump, prove)
    except OSError as err:
        raise _unreadable(args.dump, err) from None
    except _NotALeaf:
        raise InvalidInput(f"--leaf-hash: {to_hex(wanted or b'')} is not a leaf of {args.dump}") from None
    except _OutOfRange as err:
        raise InvalidInput(f"--index: {args.index} is out of range for a dump of {err.args[0]} leaves") from None
    proof = [to_hex(node) for node in found.proof]
    result: dict[str, Any] = {
        "root": to_hex(found.root),
        "index": found.index,
        "tree_index": found.tree_index,
        "leaf_hash": to_hex(found.leaf_hash),
        "value": found.value,
        "proof": proof,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"root       {result['root']}")
        print(f"index      {found.index} (tree slot {found.tree_index})")
        print(f"leaf hash  {result['leaf_hash']}")
        print(f"value      {json.dumps(found.value)}")
        print(f"proof      {len(found.proof)} nodes")
        for node in proof:
            print(f"  {node}")
    return 0


class _NotALeaf(Exception):
    pass


class _OutOfRange(Exception):
    pass


def _summary(dump: DumpFile) -> dict[str, Any]:
    from og_settle._hex import to_hex
    from og_settle._merkle import STANDARD_V1

    return {
        "format": STANDARD_V1,
        "root": to_hex(dump.root),
        "count": len(dump),
        "leafEncoding": list(dump.leaf_encoding),
    }


def _verify(args: argparse.Namespace) -> int:
    def verify(dump: DumpFile) -> dict[str, Any]:
        dump.verify()
        return _summary(dump)

    try:
        summary = _with_dump(args.dump, verify)
    except OSError as err:  # an unreadable file is bad input (exit 2), not an invalid dump
        raise _unreadable(args.dump, err) from None
    except InvalidInput as err:
        if args.json:
            print(json.dumps({"valid": False, "error": str(err)}))
        print(f"og-settle: invalid dump: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"valid": True, **summary}))
    else:
        print(f"{args.dump}: valid {summary['format']} dump, {summary['count']} leaves, root {summary['root']}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    def inspect(dump: DumpFile) -> dict[str, Any]:
        dump.check_count()
        return _summary(dump)

    try:
        summary = _with_dump(args.dump, inspect)
    except OSError as err:
        raise _unreadable(args.dump, err) from None
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"format    {summary['format']}")
        print(f"root      {summary['root']}")
        print(f"count     {summary['count']}")
        print(f"encoding  {', '.join(summary['leafEncoding'])}")
    return 0
