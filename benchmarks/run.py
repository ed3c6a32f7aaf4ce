"""og-settle benchmarks (``make bench``): prints one small table per benchmark.

Benchmarks register themselves with ``@benchmark("name")``; each takes the parsed options and returns rows
``(measurement, value, note)``. Run all of them, or pick some with ``--only NAME``.

Registered:

* ``merkle-vs-openzeppelin``: on the same N OpenGradient-format leaves (default 100,000; 256-byte signatures,
  the size of an RSA-2048 TEE signature), the time to build the StandardMerkleTree, read its root and produce
  every leaf's proof, in og_settle (``StandardMerkleTree.of(values)``, ``.root``, ``.proofs()``) and in
  ``@openzeppelin/merkle-tree`` under Node (``StandardMerkleTree.of(values, encoding)``, ``.root``,
  ``getProof(i)`` for every i). Both libraries check every proof against the root before returning it. Only
  the tree work is timed: generating the values and Node's start-up and JSON parsing are not. The roots must
  agree. Reported as a speed-up ratio (goal: at least 50x).
* ``merkle-1m``: the same work (root plus all verified proofs) for 1,000,000 leaves in one Python process
  (goal: at most 10 s). Wall-clock and process CPU time are both shown; on a shared machine the CPU time is
  the fairer single-core figure (the header shows the load average). The figure includes checking every
  proof (one hash per internal node, see ``StandardMerkleTree.proofs``). The million new proof tuples are
  promoted to the collector's oldest generation as they are returned, so no young-generation pass walks them.
* ``facilitator-verify``: 200 concurrent clients send 2,000 ``POST /verify`` calls (distinct stock exact payments
  signed by the x402 SDK) on loopback to ``og-settle facilitator serve`` and, side by side on the same replica,
  to a reference facilitator built from the x402 SDK's own facilitator classes; requests/s, p50/p90/p99 latency,
  valid answers and errors for each (``facilitator_load.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from facilitator_load import add_options as add_facilitator_load_options

from og_settle import OG_LEAF_ENCODING, StandardMerkleTree

REPO = Path(__file__).resolve().parents[1]

Row = tuple[str, str, str]
Benchmark = Callable[[argparse.Namespace], list[Row]]
BENCHMARKS: dict[str, Benchmark] = {}


def benchmark(name: str) -> Callable[[Benchmark], Benchmark]:
    def register(function: Benchmark) -> Benchmark:
        BENCHMARKS[name] = function
        return function

    return register


def og_values(count: int, seed: int = 1) -> list[tuple[bytes, bytes, bytes, bytes, int]]:
    """Deterministic OpenGradient leaves: one TEE, random hashes, 256-byte signatures, increasing timestamps."""
    rng = random.Random(seed)
    tee_id = rng.randbytes(32)
    return [(tee_id, rng.randbytes(32), rng.randbytes(32), rng.randbytes(256), 1_700_000_000 + i) for i in range(count)]


def time_og_settle(values: list[Any]) -> tuple[float, float, float, StandardMerkleTree, int]:
    """(wall seconds, CPU seconds, wall seconds of of() alone, tree, proof nodes) for of + root + proofs()."""
    wall, cpu = time.perf_counter(), time.process_time()
    tree = StandardMerkleTree.of(values)
    _ = tree.root
    built = time.perf_counter() - wall
    proofs = tree.proofs()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, built, tree, sum(map(len, proofs))


@benchmark("merkle-vs-openzeppelin")
def merkle_vs_openzeppelin(options: argparse.Namespace) -> list[Row]:
    count = options.compare_leaves
    node = shutil.which("node")
    if node is None:
        return [("@openzeppelin/merkle-tree", "skipped", "node is not on PATH")]
    values = og_values(count)
    wall, cpu, built, tree, nodes = time_og_settle(values)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "values.json"
        as_json = [entry["value"] for entry in tree.dump()["values"]]
        path.write_text(json.dumps({"encoding": list(OG_LEAF_ENCODING), "values": as_json}))
        del as_json
        print(f"  running @openzeppelin/merkle-tree on {count:,} leaves (this takes a while)...", file=sys.stderr)
        result = subprocess.run(
            [node, str(REPO / "benchmarks" / "oz_merkle_bench.js"), str(path)],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
    theirs = json.loads(result.stdout)
    if theirs["root"] != "0x" + tree.root.hex() or theirs["nodes"] != nodes:
        raise SystemExit(f"roots or proofs differ: og_settle {tree.root.hex()}, OpenZeppelin {theirs['root']}")
    their_total = theirs["of_seconds"] + theirs["proofs_seconds"]
    ratio = their_total / wall
    return [
        ("leaves", f"{count:,}", "OpenGradient format, 256-byte signatures; same values, same root"),
        ("og_settle of + root + proofs()", f"{wall:.2f} s", f"CPU {cpu:.2f} s; of() {built:.2f} s"),
        (
            "OpenZeppelin of + root + getProof(i)",
            f"{their_total:.2f} s",
            f"of() {theirs['of_seconds']:.2f} s, proofs {theirs['proofs_seconds']:.2f} s (Node {_node_version(node)})",
        ),
        ("speed-up", f"{ratio:.0f}x", "goal: >= 50x " + ("(met)" if ratio >= 50 else "(NOT met)")),
    ]


@benchmark("merkle-1m")
def merkle_1m(options: argparse.Namespace) -> list[Row]:
    count = options.large_leaves
    values = og_values(count, seed=2)
    wall, cpu, built, tree, nodes = time_og_settle(values)
    return [
        ("leaves", f"{count:,}", f"{nodes:,} proof nodes in all, depth {len(tree.proof(0))}"),
        ("of + root + proofs(), wall", f"{wall:.2f} s", f"of() {built:.2f} s; goal: <= 10 s"),
        ("of + root + proofs(), CPU", f"{cpu:.2f} s", "goal: <= 10 s " + ("(met)" if cpu <= 10 else "(NOT met)")),
    ]


@benchmark("facilitator-verify")
def facilitator_verify(options: argparse.Namespace) -> list[Row]:
    """Concurrent /verify on loopback: og-settle's server vs the x402 SDK's reference facilitator (see
    ``facilitator_load.py``)."""
    from facilitator_load import verify_load

    return verify_load(options)


def _node_version(node: str) -> str:
    return subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()


def print_table(title: str, rows: list[Row]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    print(f"\n{title}")
    print("-" * len(title))
    for measurement, value, note in rows:
        print(f"  {measurement:<{widths[0]}}  {value:>{widths[1]}}  {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), help="run only this benchmark")
    parser.add_argument("--compare-leaves", type=int, default=100_000, help="leaves for merkle-vs-openzeppelin")
    parser.add_argument("--large-leaves", type=int, default=1_000_000, help="leaves for merkle-1m")
    add_facilitator_load_options(parser)
    options = parser.parse_args(argv)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"og-settle benchmarks (Python {sys.version.split()[0]}, one process; {os.cpu_count()} CPUs, load {load})")
    for name in options.only or list(BENCHMARKS):
        print_table(name, BENCHMARKS[name](options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
