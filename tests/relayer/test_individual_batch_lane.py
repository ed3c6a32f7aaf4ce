"""The relayer's individual lane settles many records in one ``settleIndividualBatch`` transaction, and a record
that fails on chain fails alone, with the registry's named error, while the others settle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eth_account import Account

from og_settle._hex import parse_bytes32
from og_settle.relayer import ItemState, SqliteStore
from tests.relayer.support import (
    DEPLOYER_KEY,
    LiveChain,
    cli,
    inference_record,
    read_events,
    spawn_relayer,
    write_jsonl,
)


def test_a_batch_with_one_bad_record_settles_the_rest(tmp_path: Path, chain: LiveChain) -> None:
    """Five individual records pass intake; then the admin narrows the registry's timestamp window so that one of
    them is too old. The relayer sends all five in one transaction: four settle, the old one fails alone with
    TimestampTooOld."""
    import time

    from og_settle.clients import ContractCall, SettlementRegistryClient, TxSender

    now = int(time.time())
    records: list[dict[str, Any]] = [
        inference_record(chain.deployment, 91_000 + i, mode="individual") for i in range(4)
    ]
    old = inference_record(chain.deployment, 91_100, mode="individual", now=now - 2_000)
    records.insert(2, old)
    db = tmp_path / "queue.db"
    path = write_jsonl(tmp_path / "in.jsonl", records)
    submitted = cli("relayer", "submit", "--db", str(db), "--deployment", str(chain.deployment_path), str(path))
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr

    w3 = chain.web3()
    registry = SettlementRegistryClient(w3, chain.deployment.settlement_registry)
    data = registry.contract.encode_abi("setTimestampWindow", args=[1_000, 300])
    TxSender(w3, Account.from_key(DEPLOYER_KEY)).send(
        ContractCall(registry.address, bytes.fromhex(data.removeprefix("0x")), "setTimestampWindow(1000, 300)")
    )
    try:
        log = tmp_path / "relayer.log"
        proc = spawn_relayer(db, chain, "--drain", "--exit-when-done", "--poll", "0.05", log_path=log)
        assert proc.wait(timeout=120) == 1, log.read_text()[-3000:]  # 1: an item failed this run
    finally:
        data = registry.contract.encode_abi("setTimestampWindow", args=[3 * 24 * 3600, 300])
        TxSender(w3, Account.from_key(DEPLOYER_KEY)).send(
            ContractCall(registry.address, bytes.fromhex(data.removeprefix("0x")), "setTimestampWindow(3 days)")
        )

    store = SqliteStore(db)
    try:
        items = {item.record()["ref"]: item for item in store.items()}
    finally:
        store.close()
    bad = items[old["ref"]]
    assert bad.state is ItemState.FAILED and bad.reason is not None and bad.reason.startswith("TimestampTooOld")
    good = [items[r["ref"]] for r in records if r is not old]
    assert all(item.state is ItemState.CONFIRMED for item in good)
    assert len({item.batch_id for item in items.values()}) == 1  # one batch, one transaction
    for item in items.values():
        digest = parse_bytes32(item.record()["digest"], "digest")
        assert registry.is_settled(digest) == (item is not bad)
    confirmed = [e for e in read_events(log) if e.get("event") == "batch.confirmed"]
    assert [(e["lane"], e["size"], e["failed"]) for e in confirmed] == [("individual", 5, 1)]
    assert confirmed[0]["gas_used"] < 5 * 69_000
