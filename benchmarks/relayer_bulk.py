"""``relayer-bulk``: the relayer's intake rate and a 100,000-record bulk run, as whole processes, on SQLite and on
PostgreSQL; beside them the in-process intake rate and the gas per individual inference in a batch.

A chain of our own (anvil with Permit2 and OPG, og-settle deployed, a registered stand-in secp256k1 TEE, as the
relayer tests start it) and, for each store, 100,000 distinct TEE-signed batch leaves (generated once a day under
``.cache/bench/``; a store's leaves differ from the other's, so each settles its own root). Then, timed from
outside, what an operator runs:

1. ``og-settle relayer submit --db DB --deployment … --rpc-url … --quiet FILE``: every record verified, each leaf's
   signer checked against the TEE registry, and queued. The intake rate is records / wall-clock seconds of the
   whole process (interpreter start, imports, reading, verifying, writing);
2. ``og-settle relayer run --preset bulk --drain --exit-when-done``: one 100,000-leaf Merkle batch built, its dump
   written, its root settled on chain and confirmed.

The bulk run is (1) + (2) end to end. Memory is the peak over each command's whole process tree (its verifying
workers included): the largest single process (``wait4``'s maxrss) and the tree's summed proportional set size
(PSS, shared pages split between the processes sharing them), sampled every 20 ms. Targets (issue 13): at least
10,000 records/s at intake, and the bulk run in at most 10 s with at most 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.relayer.support, tests.support.postgres

from batch import CACHE, OG_SETTLE, REPO, verdict

Row = tuple[str, str, str]
RECORDS = 100_000
MB = 1_000_000


@dataclass(frozen=True)
class Measured:
    """One command, timed from outside.

    Attributes:
        wall: wall-clock seconds.
        cpu: user + system CPU seconds of the process and its children.
        max_rss: the largest resident set of any one of its processes, in bytes.
        tree_pss: the largest sampled sum of PSS over the process and its descendants, in bytes.
        stdout: what it printed.
        own_cpu: user + system CPU seconds of the process itself, without its children (its last sample, at most
            20 ms before it ended).
    """

    wall: float
    cpu: float
    max_rss: int
    tree_pss: int
    stdout: str
    own_cpu: float = 0.0


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with open(task / "children") as handle:
            found.extend(int(child) for child in handle.read().split())
    return found


def _tree_pss(root: int) -> int:
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/smaps_rollup") as handle:
                total += next(int(line.split()[1]) * 1024 for line in handle if line.startswith("Pss:"))
            todo.extend(_children(pid))
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue  # gone meanwhile
    return total


def _own_cpu(pid: int) -> float | None:
    """The CPU seconds (user + system) of process ``pid`` alone, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14 and 15)


def measure(argv: list[str], env: dict[str, str]) -> Measured:
    """Run ``argv`` to completion and measure it (fails loudly if it fails)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=err, env=env)
        peak = [0]
        own = [0.0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.02):
                peak[0] = max(peak[0], _tree_pss(process.pid))
                own[0] = _own_cpu(process.pid) or own[0]

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise SystemExit(f"{' '.join(argv[:3])} failed ({process.returncode}): {err.read().decode()[-2000:]}")
        cpu = usage.ru_utime + usage.ru_stime
        return Measured(wall, cpu, usage.ru_maxrss * 1024, peak[0], out.read().decode(), own[0])


def _sign_chunk(chain_id: int, registry: str, first: int, count: int, timestamp: int) -> str:
    import coincurve

    from og_settle._attestation import InferenceAttestation, settlement_domain
    from og_settle._hex import keccak256, to_hex
    from tests.relayer.support import TEE_KEY

    signer = coincurve.PrivateKey(TEE_KEY.private_key)
    domain = settlement_domain(chain_id, registry)
    tee_id = to_hex(TEE_KEY.tee_id)
    lines = []
    for index in range(first, first + count):
        input_hash, output_hash = keccak256(b"request %d" % index), keccak256(b"response %d" % index)
        digest = domain.digest(InferenceAttestation(TEE_KEY.tee_id, input_hash, output_hash, timestamp).struct_hash())
        signature = signer.sign_recoverable(digest, hasher=None)  # r || s || recovery id, low s
        record = {
            "kind": "inference",
            "mode": "batch",
            "ref": f"bench-{index}",
            "tee_id": tee_id,
            "timestamp": timestamp,
            "input_hash": to_hex(input_hash),
            "output_hash": to_hex(output_hash),
            "tee_signature": to_hex(signature[:64] + bytes([27 + signature[64]])),
        }
        lines.append(json.dumps(record) + "\n")
    return "".join(lines)


def records_file(chain_id: int, registry: str, count: int, first: int) -> Path:
    """``count`` TEE-signed batch leaves numbered from ``first``, for the settlement registry at ``registry``
    (regenerated daily: intake refuses timestamps older than three days)."""
    day = int(time.time()) // 86_400
    path = CACHE / f"relayer-leaves-{chain_id}-{registry[2:10].lower()}-{first}-{count}-{day}.jsonl"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    timestamp = day * 86_400 - 60 if day * 86_400 < time.time() - 60 else int(time.time()) - 60
    step = 10_000
    temporary = path.with_suffix(".tmp")
    with ProcessPoolExecutor(2) as pool, temporary.open("w") as out:
        starts = range(first, first + count, step)
        sizes = [min(step, first + count - start) for start in starts]
        for text in pool.map(
            _sign_chunk,
            *zip(*((chain_id, registry, s, n, timestamp) for s, n in zip(starts, sizes, strict=True)), strict=True),
        ):
            out.write(text)
    temporary.replace(path)
    return path


def _env(lease_dir: str) -> dict[str, str]:
    from tests.relayer.support import RELAYER_KEY

    env = dict(os.environ)
    env.update(OG_SETTLE_RELAYER_KEY=RELAYER_KEY, OG_SETTLE_HOME=str(REPO), OG_SETTLE_LEASE_DIR=lease_dir)
    return env


def _bulk_rows(label: str, db: str, records: Path, chain: object, env: dict[str, str]) -> list[Row]:
    deployment_path = str(chain.deployment_path)  # type: ignore[attr-defined]
    rpc = str(chain.rpc_url)  # type: ignore[attr-defined]
    common = ["--db", db, "--rpc-url", rpc]
    submit = measure(
        [*OG_SETTLE, "relayer", "submit", *common, "--deployment", deployment_path, "--quiet", str(records)], env
    )
    summary = json.loads(submit.stdout.strip().splitlines()[-1])["summary"]
    if summary != {"accepted": RECORDS, "duplicate": 0, "rejected": 0}:
        raise SystemExit(f"relayer submit ({label}): {summary}")
    dumps = str(Path(env["OG_SETTLE_LEASE_DIR"]) / f"dumps-{label}")
    run_options = ["--preset", "bulk", "--drain", "--exit-when-done", "--dump-dir", dumps]
    run = measure([*OG_SETTLE, "relayer", "run", *common, *run_options], env)
    status = subprocess.run(
        [*OG_SETTLE, "relayer", "status", "--db", db, "--json"], capture_output=True, text=True, env=env, check=True
    )
    states = json.loads(status.stdout)["items"]
    if states != {"confirmed": RECORDS}:
        raise SystemExit(f"relayer run ({label}) did not settle every record: {states}")
    total = submit.wall + run.wall
    memory = max(submit.tree_pss, run.tree_pss)
    return [
        (
            f"{label}: relayer submit, {RECORDS:,} leaves",
            f"{RECORDS / submit.wall:,.0f}/s",
            f"target >= 10,000/s {verdict(RECORDS / submit.wall >= 10_000)}; {submit.wall:.2f} s wall, "
            f"CPU {submit.cpu:.2f} s ({RECORDS / submit.cpu:,.0f}/CPU-s; the parent process {submit.own_cpu:.2f} s, "
            f"its verifying workers the rest), peak PSS {submit.tree_pss / MB:,.0f} MB "
            f"(largest process {submit.max_rss / MB:,.0f} MB)",
        ),
        (
            f"{label}: relayer run --preset bulk",
            f"{run.wall:.2f} s",
            f"one {RECORDS:,}-leaf batch built, dumped, settled, confirmed; CPU {run.cpu:.2f} s, "
            f"peak PSS {run.tree_pss / MB:,.0f} MB",
        ),
        (
            f"{label}: bulk run end to end",
            f"{total:.2f} s",
            f"target <= 10 s {verdict(total <= 10)}; peak {memory / MB:,.0f} MB, target <= 300 MB "
            f"{verdict(memory <= 300 * MB)}",
        ),
    ]


def _in_process_rate(records: Path, chain: object) -> Row:
    from og_settle._x402_verify import Web3ChainReader
    from og_settle.clients import make_web3
    from og_settle.relayer import IntakeConfig, RegistryTeeDirectory, SqliteStore, default_workers, submit_records

    deployment = chain.deployment  # type: ignore[attr-defined]
    rpc = str(chain.rpc_url)  # type: ignore[attr-defined]
    config = IntakeConfig(
        deployment=deployment,
        chain_reader=Web3ChainReader(make_web3(rpc), deployment.permit2),
        tee_directory=RegistryTeeDirectory(rpc, deployment.tee_registry),
    )
    workers = default_workers()
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "q.db")
        try:
            start = time.perf_counter()
            with records.open("rb") as handle:
                count = sum(1 for _ in submit_records(store, handle, config, name="bench", workers=workers))
            wall = time.perf_counter() - start
        finally:
            store.close()
    return (
        "in-process submit_records (SQLite)",
        f"{count / wall:,.0f}/s",
        f"{workers} workers; the function alone, beside the whole process above",
    )


def _individual_gas_rows() -> list[Row]:
    """Gas per individual inference in a ``settleIndividualBatch`` of 20, as the gas tests recorded it."""
    snapshot = json.loads((REPO / "gas-snapshot.json").read_text())
    alone = snapshot["settlement.settleIndividual"]
    rows = []
    for kind in ("ECDSA", "RSA-2048"):
        gas = snapshot[f"settlement.settleIndividualBatch(20 {kind}) per inference"]
        note = f"gas-snapshot.json; {alone:,} alone" + (
            "; target <= 50,000 " + verdict(gas <= 50_000) if kind == "ECDSA" else ""
        )
        rows.append((f"gas per individual inference, batch of 20 ({kind})", f"{gas:,}", note))
    return rows


def relayer_bulk(options: argparse.Namespace) -> list[Row]:
    del options
    from tests.relayer.support import live_chain
    from tests.support.postgres import PostgresServer, PostgresUnavailable

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="og-settle-bench-bulk-") as tmp, live_chain(Path(tmp)) as chain:
        deployment = chain.deployment
        env = _env(tmp)
        sqlite_records = records_file(deployment.chain_id, deployment.settlement_registry, RECORDS, 0)
        rows.append(_in_process_rate(sqlite_records, chain))
        rows += _bulk_rows("SQLite", str(Path(tmp) / "queue.db"), sqlite_records, chain, env)
        postgres_records = records_file(deployment.chain_id, deployment.settlement_registry, RECORDS, RECORDS)
        try:
            server = PostgresServer.start(fsync=True)
        except PostgresUnavailable as err:
            rows.append(("PostgreSQL", "skipped", str(err)[:100]))
        else:
            try:
                rows += _bulk_rows("PostgreSQL", server.create_database("bulk"), postgres_records, chain, env)
            finally:
                server.stop()
    rows += _individual_gas_rows()
    return rows


if __name__ == "__main__":
    for row in relayer_bulk(argparse.Namespace()):
        print(" | ".join(row))
