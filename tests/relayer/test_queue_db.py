"""``--db``: an SQLite file or a ``postgresql://`` URL; PostgreSQL's migrations and concurrent writers; one-line
errors for a ``--db`` that is no queue, and no empty queue file left behind by a failed ``submit``."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from og_settle import InvalidInput, InvariantViolation
from og_settle.relayer import Batch, BatchContent, ItemKind, ItemState, Lane, NewItem, PostgresStore, open_store
from og_settle.relayer._store_postgres import migrations
from tests.relayer.support import (
    OFFLINE_DEPLOYMENT,
    LiveChain,
    cli,
    inference_record,
    payment_record,
    spawn_relayer,
    write_jsonl,
)
from tests.support.postgres import PostgresServer

DEPLOYMENT = OFFLINE_DEPLOYMENT


def _item(n: int) -> NewItem:
    return NewItem(kind=ItemKind.INFERENCE, lane=Lane.BATCH, key=n.to_bytes(32, "big"), payload={"n": n}, source="t")


@pytest.fixture
def deployment_file(tmp_path: Path) -> Path:
    path = tmp_path / "84532.json"
    path.write_text(DEPLOYMENT.to_json(), encoding="utf-8")
    return path


# -- PostgreSQL: migrations and concurrency ---------------------------------------------------------------------


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    return postgres.create_database()


def test_migrations_run_once_in_order_and_newer_schemas_are_refused(pg_url: str) -> None:
    """A new database gets every numbered migration once; reopening applies none; a database migrated by a newer
    og-settle is refused with a one-line error naming both versions."""
    known = migrations()
    assert [m.version for m in known] == list(range(1, len(known) + 1))
    store = PostgresStore(pg_url)
    assert store.schema_version() == known[-1].version
    assert store.migrate() == []
    store._db.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, 'from_the_future')", (99,))
    store.close()
    with pytest.raises(InvalidInput, match=rf"schema version 99; this og-settle knows versions up to {len(known)}$"):
        PostgresStore(pg_url)


def test_unreachable_server_is_a_one_line_error_without_the_password() -> None:
    with pytest.raises(InvalidInput) as err:
        PostgresStore("postgresql://og:secret@127.0.0.1:1/none", connect_timeout=2)
    assert "\n" not in str(err.value) and "secret" not in str(err.value) and "og:***@" in str(err.value)


def test_concurrent_intake_queues_each_key_once(pg_url: str) -> None:
    """Four processes' worth of connections offering overlapping records at once: every key is queued once, and
    each writer learns the id of the one stored item for the keys it lost."""
    stores = [PostgresStore(pg_url) for _ in range(4)]
    results: dict[int, list[int]] = {}

    def offer(index: int) -> None:
        outcomes = []
        for start in range(0, 200, 20):  # overlapping chunks, in a different order per writer
            chunk = [_item((k * (index + 1)) % 200) for k in range(start, start + 20)]
            outcomes.extend(o.item_id for o in stores[index].add_items(chunk))
        results[index] = outcomes

    threads = [threading.Thread(target=offer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    items = stores[0].items()
    assert len(items) == 200 and len({i.key for i in items}) == 200
    by_key = {i.key: i.id for i in items}
    for index, ids in results.items():
        keys = [((k * (index + 1)) % 200).to_bytes(32, "big") for k in range(200)]
        assert ids == [by_key[key] for key in keys]
    for store in stores:
        store.close()


def test_two_writers_cannot_batch_the_same_items(pg_url: str) -> None:
    """Two instances cutting a batch from the same received items: exactly one batch gets them, the other's
    attempt changes nothing."""
    first, second = PostgresStore(pg_url), PostgresStore(pg_url)
    ids = [o.item_id for o in first.add_items([_item(n) for n in range(10)])]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def cut(store: PostgresStore) -> None:
        barrier.wait()
        try:
            store.create_batch(Lane.BATCH, ids, root=b"\1" * 32, dump_path=None, dump=None)
        except InvariantViolation as err:
            errors.append(err)

    threads = [threading.Thread(target=cut, args=(s,)) for s in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(errors) == 1
    assert len(first.batches()) == 1  # the loser's batch row rolled back with its transaction
    assert {i.batch_id for i in first.items()} == {first.batches()[0].id}
    assert first.status().items_by_state == {ItemState.BATCHED.value: 10}
    first.close()
    second.close()


def test_an_instance_cutting_a_batch_holds_its_items_and_others_skip_them(pg_url: str) -> None:
    """While one instance builds a batch (its items locked, nothing written yet), another instance's cut takes the
    next items instead of waiting; the first batch then holds exactly its own items."""
    first, second = PostgresStore(pg_url, worker="a"), PostgresStore(pg_url, worker="b")
    ids = [o.item_id for o in first.add_items([_item(n) for n in range(6)])]
    inner: list[Batch | None] = []

    def build_while_the_other_cuts(payloads: Sequence[str]) -> BatchContent:
        assert [json.loads(p)["n"] for p in payloads] == [0, 1, 2]
        inner.append(second.cut_batch(Lane.BATCH, 10, lambda _: BatchContent(root=b"\2" * 32), ttl=30))
        return BatchContent(root=b"\1" * 32)

    outer = first.cut_batch(Lane.BATCH, 3, build_while_the_other_cuts, ttl=30)
    assert outer is not None and inner[0] is not None
    assert [i.id for i in first.batch_items(outer.id)] == ids[:3]
    assert [i.id for i in first.batch_items(inner[0].id)] == ids[3:]
    assert {first.claimed_by(i) for i in ids[:3]} == {"a"} and {first.claimed_by(i) for i in ids[3:]} == {"b"}
    first.close()
    second.close()


# -- the CLI's --db ----------------------------------------------------------------------------------------------


def test_cli_submit_status_and_items_on_postgres(pg_url: str, deployment_file: Path, tmp_path: Path) -> None:
    """`relayer submit/status/items --db postgresql://…` queue, count and list signed payments; a resubmission is
    reported as duplicates."""
    records = write_jsonl(tmp_path / "in.jsonl", [payment_record(DEPLOYMENT, i) for i in range(3)])
    first = cli("relayer", "submit", "--db", pg_url, "--deployment", str(deployment_file), "--quiet", str(records))
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"summary": {"accepted": 3, "duplicate": 0, "rejected": 0}}
    again = cli("relayer", "submit", "--db", pg_url, "--quiet", str(records))
    assert json.loads(again.stdout) == {"summary": {"accepted": 0, "duplicate": 3, "rejected": 0}}
    status = cli("relayer", "status", "--db", pg_url, "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["items"] == {"received": 3}
    listed = cli("relayer", "items", "--db", pg_url)
    assert [json.loads(line)["lane"] for line in listed.stdout.splitlines()] == ["payment"] * 3


@pytest.mark.parametrize("command", ["submit", "status", "items"])
def test_cli_db_that_is_a_directory_or_not_sqlite(command: str, tmp_path: Path, deployment_file: Path) -> None:
    """A directory or a file that is not SQLite as --db: one line naming it, exit 2, and the file untouched."""
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n", encoding="utf-8")
    for db, reason in ((tmp_path, "is a directory"), (text, "is not an SQLite database")):
        extra = ["--deployment", str(deployment_file), str(deployment_file)] if command == "submit" else []
        result = cli("relayer", command, "--db", str(db), *extra)
        assert result.returncode == 2, result.stderr
        assert reason in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert text.read_text(encoding="utf-8") == "not a database\n"


def test_failed_submit_leaves_no_queue_file(tmp_path: Path, deployment_file: Path) -> None:
    """A first submit that fails (no deployment; a missing input file) leaves no empty queue behind; one that
    queued records keeps them."""
    db = tmp_path / "new" / "queue.db"
    records = write_jsonl(tmp_path / "in.jsonl", [payment_record(DEPLOYMENT, 0)])
    no_deployment = cli("relayer", "submit", "--db", str(db), str(records))
    assert no_deployment.returncode == 2 and "--deployment" in no_deployment.stderr
    missing_file = cli("relayer", "submit", "--db", str(db), "--deployment", str(deployment_file), "nope.jsonl")
    assert missing_file.returncode == 2 and "nope.jsonl is not a file" in missing_file.stderr
    assert sorted(p.name for p in db.parent.iterdir()) == []
    ok = cli("relayer", "submit", "--db", str(db), "--deployment", str(deployment_file), str(records))
    assert ok.returncode == 0, ok.stderr
    failed_later = cli("relayer", "submit", "--db", str(db), "nope.jsonl")
    assert failed_later.returncode == 2
    reopened = open_store(db, create=False)
    assert reopened.status().items_by_state == {"received": 1}
    reopened.close()


def test_relayer_run_settles_a_postgres_queue_on_chain(pg_url: str, chain: LiveChain, tmp_path: Path) -> None:
    """`relayer submit` and `relayer run --db postgresql://…` on anvil: payments, batch leaves and an individual
    record settle, each transaction is mined successfully on chain, and the Merkle root is recorded there."""
    records = [payment_record(chain.deployment, 81_000 + i) for i in range(3)]
    records += [inference_record(chain.deployment, 81_100 + i) for i in range(4)]
    records.append(inference_record(chain.deployment, 81_200, mode="individual"))
    path = write_jsonl(tmp_path / "in.jsonl", records)
    submitted = cli(
        "relayer", "submit", "--db", pg_url, "--deployment", str(chain.deployment_path), "--rpc", chain.rpc_url,
        "--quiet", str(path),
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    log = tmp_path / "relayer.log"
    proc = spawn_relayer(
        pg_url,  # type: ignore[arg-type]
        chain, "--drain", "--exit-when-done", "--poll", "0.05", "--dump-dir", str(tmp_path / "dumps"), log_path=log,
    )  # fmt: skip
    try:
        assert proc.wait(timeout=180) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    store = open_store(pg_url)
    try:
        assert store.status().items_by_state == {"confirmed": 8}
        batches = store.batches()
        assert {b.lane for b in batches} == {Lane.PAYMENT, Lane.BATCH, Lane.INDIVIDUAL}
        w3 = chain.web3()
        for batch in batches:
            tx = store.current_tx(batch.id)
            assert tx is not None and tx.state == "mined"
            assert w3.eth.get_transaction_receipt(tx.tx_hash)["status"] == 1
        root = next(b.root for b in batches if b.lane is Lane.BATCH)
        assert root is not None
        status = cli(
            "status", "batch", "0x" + root.hex(), "--rpc", chain.rpc_url, "--deployment", str(chain.deployment_path)
        )
        assert status.returncode == 0 and "not recorded" not in status.stdout, status.stdout + status.stderr
    finally:
        store.close()
