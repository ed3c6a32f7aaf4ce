"""Whole-process benchmarks of ``og-settle batch`` (registered in ``run.py``): what a user runs, timed from outside.

Each command runs as its own process; the figures are its wall-clock time, its CPU time (user + system, from
``wait4``) and its peak resident set size. On a shared machine the CPU time is the fairer figure, so both are
printed, and every comparison is made between processes of the same run.

* ``batch-vs-openzeppelin``: ``og-settle batch build`` on N leaves (default 100,000; 256-byte signatures, the
  size of an RSA-2048 TEE signature) against ``node benchmarks/oz_build.js`` (``@openzeppelin/merkle-tree``:
  read the same JSON lines, ``StandardMerkleTree.of``, write ``JSON.stringify(tree.dump())``). The two dumps
  must be byte-identical. Both run once on 1,000 leaves first, untimed (see ``warm_up``). Goal: at least 50x.
* ``batch-1m``: ``og-settle batch build`` on 1,000,000 leaves against the machine's keccak floor, 3,000,000
  ``keccak_256(64 bytes).digest()`` calls through safe-pysha3 timed in this process (goal: within 4x, and at
  most 1 GiB peak RSS); then ``batch prove --index``, ``batch prove --leaf-hash``, ``batch verify`` and
  ``batch inspect`` on the 1M dump (goal for prove and verify: at most 3 s and 1 GiB each).

Inputs are generated deterministically under ``.cache/bench/`` (about 80 MB per 100,000 leaves) and reused.
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
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "bench"
_SCRIPT = Path(sys.executable).with_name("og-settle")  # the console script a user runs
OG_SETTLE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "og_settle.cli"]
GIB = 1 << 30

Row = tuple[str, str, str]


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float
    peak_rss: int  # bytes
    stdout: str


def run_process(argv: list[str]) -> Run:
    """Run ``argv`` to completion; its wall time, CPU time (user + system) and peak RSS, from ``wait4``."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        process = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        error = process.stderr.read().decode() if process.stderr else ""
        if process.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({process.returncode}): {error.strip()}")
        out.seek(0)
        text = out.read().decode()
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, text)


def leaves_file(count: int, seed: int = 1) -> Path:
    """A JSON-lines file of ``count`` deterministic OpenGradient leaves (one TEE, 256-byte signatures)."""
    path = CACHE / f"leaves-{count}-{seed}.jsonl"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    tee = rng.randbytes(32).hex()
    temporary = path.with_suffix(".tmp")
    with temporary.open("w") as out:
        for start in range(0, count, 10_000):
            out.write(
                "".join(
                    f'{{"tee_id":"0x{tee}","input_hash":"0x{rng.randbytes(32).hex()}",'
                    f'"output_hash":"0x{rng.randbytes(32).hex()}","tee_signature":"0x{rng.randbytes(256).hex()}",'
                    f'"timestamp":{1_700_000_000 + i}}}\n'
                    for i in range(start, min(start + 10_000, count))
                )
            )
    temporary.replace(path)
    return path


def keccak_floor(calls: int) -> float:
    """CPU seconds for ``calls`` keccak-256 digests of 64-byte inputs through safe-pysha3, in this process."""
    import sha3

    keccak = sha3.keccak_256
    data = bytes(range(64))
    start = time.process_time()
    for _ in range(calls):
        keccak(data).digest()
    return time.process_time() - start


def figures(run: Run) -> str:
    return f"CPU {run.cpu:.2f} s, peak RSS {run.peak_rss / 2**20:,.0f} MiB"


def verdict(met: bool) -> str:
    return "(met)" if met else "(NOT met)"


def warm_up(node: str, source: Path) -> None:
    """Compile og_settle's bytecode, run both builds once, untimed, on a small file, and read ``source`` once: the
    timed runs then start alike, with the code and the input in the page cache, instead of charging one-off costs
    to whichever side runs first. The bytecode is what an installed package has; without it (a fresh editable
    install, or PYTHONDONTWRITEBYTECODE set as in some sandboxes) every run compiles the package from source."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "src" / "og_settle")], check=True)
    small = leaves_file(1_000)
    run_process([*OG_SETTLE, "batch", "build", str(small), "-o", str(CACHE / "warm-up.json")])
    run_process([node, str(REPO / "benchmarks" / "oz_build.js"), str(small), str(CACHE / "warm-up.json")])
    (CACHE / "warm-up.json").unlink()
    with source.open("rb") as handle:
        while handle.read(1 << 24):
            pass


def batch_vs_openzeppelin(options: argparse.Namespace) -> list[Row]:
    count = options.compare_leaves
    node = shutil.which("node")
    if node is None:
        return [("@openzeppelin/merkle-tree", "skipped", "node is not on PATH")]
    source = leaves_file(count)
    ours_path, theirs_path = CACHE / f"og-settle-{count}.json", CACHE / f"openzeppelin-{count}.json"
    print(f"  og-settle batch build and @openzeppelin/merkle-tree on {count:,} leaves...", file=sys.stderr)
    warm_up(node, source)
    ours = run_process([*OG_SETTLE, "batch", "build", str(source), "-o", str(ours_path), "--json"])
    theirs = run_process([node, str(REPO / "benchmarks" / "oz_build.js"), str(source), str(theirs_path)])
    our_root, their_root = json.loads(ours.stdout)["root"], json.loads(theirs.stdout)["root"]
    if our_root != their_root or ours_path.read_bytes() != theirs_path.read_bytes():
        raise SystemExit(f"the dumps differ: og-settle root {our_root}, OpenZeppelin root {their_root}")
    theirs_path.unlink()
    wall_ratio, cpu_ratio = theirs.wall / ours.wall, theirs.cpu / ours.cpu
    return [
        ("leaves", f"{count:,}", f"{source.stat().st_size / 1e6:,.0f} MB of JSON lines; same root, identical dumps"),
        ("og-settle batch build", f"{ours.wall:.2f} s", figures(ours)),
        ("@openzeppelin/merkle-tree (Node)", f"{theirs.wall:.2f} s", figures(theirs)),
        ("speed-up, wall", f"{wall_ratio:.1f}x", f"goal: >= 50x {verdict(wall_ratio >= 50)}"),
        ("speed-up, CPU", f"{cpu_ratio:.1f}x", f"goal: >= 50x {verdict(cpu_ratio >= 50)}"),
    ]


def batch_1m(options: argparse.Namespace) -> list[Row]:
    count = options.large_leaves
    source = leaves_file(count, seed=2)
    dump = CACHE / f"og-settle-{count}.json"
    print(f"  og-settle batch build, prove, verify, inspect on {count:,} leaves...", file=sys.stderr)
    floor = keccak_floor(3 * count)
    build = run_process([*OG_SETTLE, "batch", "build", str(source), "-o", str(dump), "--json"])
    middle = count // 2
    prove = run_process([*OG_SETTLE, "batch", "prove", str(dump), "--index", str(middle), "--json"])
    proof = json.loads(prove.stdout)
    by_hash = run_process([*OG_SETTLE, "batch", "prove", str(dump), "--leaf-hash", proof["leaf_hash"], "--json"])
    if json.loads(by_hash.stdout) != proof:
        raise SystemExit("prove --leaf-hash and prove --index disagree")
    verify = run_process([*OG_SETTLE, "batch", "verify", str(dump), "--json"])
    inspect = run_process([*OG_SETTLE, "batch", "inspect", str(dump), "--json"])
    if not json.loads(verify.stdout)["valid"] or json.loads(inspect.stdout)["root"] != proof["root"]:
        raise SystemExit("verify or inspect disagree with build")
    ratio_wall, ratio_cpu = build.wall / floor, build.cpu / floor
    rows = [
        ("leaves", f"{count:,}", f"{source.stat().st_size / 1e6:,.0f} MB in, {dump.stat().st_size / 1e6:,.0f} MB dump"),
        ("keccak floor", f"{floor:.2f} s", f"{3 * count:,} keccak-256 of 64 bytes through safe-pysha3, CPU"),
        ("build", f"{build.wall:.2f} s", figures(build)),
        ("build / floor, wall", f"{ratio_wall:.1f}x", f"goal: <= 4x {verdict(ratio_wall <= 4)}"),
        ("build / floor, CPU", f"{ratio_cpu:.1f}x", f"goal: <= 4x {verdict(ratio_cpu <= 4)}"),
        ("build peak RSS", f"{build.peak_rss / 2**20:,.0f} MiB", f"goal: <= 1024 MiB {verdict(build.peak_rss <= GIB)}"),
    ]
    for name, run in (("prove --index", prove), ("prove --leaf-hash", by_hash), ("verify", verify)):
        small = run.peak_rss <= GIB
        goal = f"goal: <= 3 s, <= 1 GiB: CPU {verdict(run.cpu <= 3 and small)}, wall {verdict(run.wall <= 3 and small)}"
        rows.append((name, f"{run.wall:.2f} s", f"{figures(run)}; {goal}"))
    rows.append(("inspect", f"{inspect.wall:.2f} s", figures(inspect)))
    return rows


BATCH_BENCHMARKS: dict[str, Callable[[argparse.Namespace], list[Row]]] = {
    "batch-vs-openzeppelin": batch_vs_openzeppelin,
    "batch-1m": batch_1m,
}
