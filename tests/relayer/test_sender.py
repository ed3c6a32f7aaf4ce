"""Transactions in flight (``og_settle.relayer._sender``) on a real anvil with mining under the test's control.

Automine is switched off; blocks come from ``evm_mine``. A rising base fee (``anvil_setNextBlockBaseFeePerGas``)
strands a transaction so that it must be replaced; ``anvil_reorg`` takes a mined settlement out of the chain.
Each test proves its outcome from chain state (receipts, blocks, the registry), not from the relayer's word.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from og_settle._hex import keccak256, to_hex
from og_settle.relayer import (
    BatchPolicy,
    BatchState,
    EventLog,
    Relayer,
    RelayerConfig,
    SenderConfig,
    SqliteStore,
    open_store,
)
from og_settle.replica._rpc import JsonRpc
from tests.relayer.proofs import opg_balance
from tests.relayer.support import (
    DEPLOYER_KEY,
    PAY_TO,
    RELAYER_KEY,
    LiveChain,
    cli,
    dev_key,
    inference_record,
    payment_record,
    read_events,
    spawn_relayer,
    write_jsonl,
)
from tests.support.postgres import PostgresServer

RELAYER = Account.from_key(RELAYER_KEY).address
GWEI = 10**9


@pytest.fixture
def rpc(chain: LiveChain) -> Iterator[JsonRpc]:
    """The module's anvil with automine off for one test (blocks only on ``evm_mine``); automine is back after."""
    node = JsonRpc(chain.rpc_url)
    node.call("evm_setAutomine", False)
    try:
        yield node
    finally:
        node.call("anvil_setNextBlockBaseFeePerGas", hex(GWEI))  # undo any base fee a test raised
        node.call("evm_setAutomine", True)
        node.call("evm_mine")


class _Run:
    """An in-process relayer over a fresh queue, whose JSON log lines are kept for the test."""

    def __init__(
        self,
        tmp_path: Path,
        chain: LiveChain,
        records: list[dict[str, Any]] | None,
        *,
        key: str = RELAYER_KEY,
        db: str | None = None,
        worker: str | None = None,
        lease_ttl: float = 30.0,
        **sending: Any,
    ) -> None:
        """``db``: a PostgreSQL URL (one relayer instance, ``worker``, on a shared queue); else an SQLite file."""
        target = db or str(tmp_path / "queue.db")
        if records is not None:
            self._submit(target, chain, write_jsonl(tmp_path / "in.jsonl", records))
        self.store = SqliteStore(target) if db is None else open_store(target, worker=worker, lease_ttl=lease_ttl)
        self.stream = io.StringIO()
        config = RelayerConfig(
            policy=BatchPolicy(max_items=2),
            sending=SenderConfig(**{"fee_bump_after": 3600.0, "rebroadcast_after": 3600.0, **sending}),
            dump_dir=tmp_path / "dumps",
            drain=True,
            poll_interval=0.01,
            lease_ttl=lease_ttl,
        )
        self.relayer = Relayer(
            self.store,
            chain.deployment,
            Account.from_key(key),
            rpc_url=chain.rpc_url,
            config=config,
            log=EventLog(self.stream),
        )
        self.relayer.reconcile()

    @classmethod
    def reopen(cls, tmp_path: Path, chain: LiveChain, *, key: str = RELAYER_KEY, **options: Any) -> _Run:
        """A new relayer (a restart, or another instance) on the queue an earlier run left (in ``tmp_path``, or
        at ``db=``)."""
        return cls(tmp_path, chain, None, key=key, **options)

    @staticmethod
    def _submit(db: Path | str, chain: LiveChain, path: Path) -> None:
        result = cli(
            "relayer",
            "submit",
            "--db",
            str(db),
            "--deployment",
            str(chain.deployment_path),
            "--rpc-url",
            chain.rpc_url,
            str(path),
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def events(self, name: str) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.stream.getvalue().splitlines() if line.strip()]
        return [e for e in lines if e["event"] == name]

    def txs(self, batch_id: int) -> list[Any]:
        return sorted(self.store.batch_txs(batch_id), key=lambda tx: tx.id)

    def close(self) -> None:
        self.store.close()


def _records(chain: LiveChain, start: int, count: int) -> list[dict[str, Any]]:
    return [inference_record(chain.deployment, start + i) for i in range(count)]


def _block(rpc: JsonRpc, number: int | str = "latest") -> dict[str, Any]:
    tag = number if isinstance(number, str) else hex(number)
    block: dict[str, Any] = rpc.call("eth_getBlockByNumber", tag, True)
    return block


def _receipt(rpc: JsonRpc, tx_hash: bytes) -> dict[str, Any] | None:
    receipt: dict[str, Any] | None = rpc.call("eth_getTransactionReceipt", to_hex(tx_hash))
    return receipt


def _our_txs_in(rpc: JsonRpc, first: int, last: int) -> list[dict[str, Any]]:
    """Every transaction from the relayer's account in blocks ``first``..``last`` of the canonical chain."""
    found = []
    for number in range(first, last + 1):
        found += [tx for tx in _block(rpc, number)["transactions"] if tx["from"].lower() == RELAYER.lower()]
    return found


def _head(rpc: JsonRpc) -> int:
    return int(rpc.call("eth_blockNumber"), 16)


def _root_recorded(chain: LiveChain, root: bytes) -> Any:
    from og_settle.clients import SettlementRegistryClient

    return SettlementRegistryClient(chain.web3(), chain.deployment.settlement_registry).get_batch(root)


def _grant_relayer_role(chain: LiveChain, rpc: JsonRpc, account: str) -> None:
    """The deployer grants ``account`` the registry's RELAYER_ROLE (mined at once, automine back off after)."""
    from og_settle.clients import ContractCall, TxSender

    role = keccak256(b"RELAYER_ROLE")
    grant = keccak256(b"grantRole(bytes32,address)")[:4] + role + bytes(12) + bytes.fromhex(account[2:])
    rpc.call("evm_setAutomine", True)
    try:
        TxSender(chain.web3(), Account.from_key(DEPLOYER_KEY)).send(
            ContractCall(chain.deployment.settlement_registry, grant, "grantRole(RELAYER_ROLE)")
        )
    finally:
        rpc.call("evm_setAutomine", False)


def test_a_stuck_transaction_is_replaced_with_higher_fees_and_exactly_one_version_lands(
    tmp_path: Path, chain: LiveChain, rpc: JsonRpc
) -> None:
    """The base fee jumps after the relayer signs, twice: each time its transaction is stranded, and after
    ``fee_bump_blocks`` blocks it is replaced (same nonce, both fees up by at least 12.5%). The chain ends with
    exactly one transaction of that nonce mined, the last replacement; the other two never land."""
    run = _Run(tmp_path, chain, _records(chain, 91_000, 2), fee_bump_blocks=2, confirmations=1, max_fee_per_gas=10**13)
    try:
        start = _head(rpc) + 1
        run.relayer.step()
        [batch] = run.store.batches(BatchState.SUBMITTED)
        [first] = run.txs(batch.id)
        base = int(_block(rpc)["baseFeePerGas"], 16)
        rpc.call("anvil_setNextBlockBaseFeePerGas", hex(base * 20))  # far above the first transaction's maxFee
        for _ in range(2):
            rpc.call("evm_mine")
            run.relayer.step()
        assert _receipt(rpc, first.tx_hash) is None  # stranded by the base fee
        assert len(run.txs(batch.id)) == 2, "no replacement after 2 blocks"
        second = run.txs(batch.id)[1]
        # The base fee jumps again, past the first replacement too.
        rpc.call("anvil_setNextBlockBaseFeePerGas", hex(base * 200))
        for _ in range(2):
            rpc.call("evm_mine")
            run.relayer.step()
        assert _receipt(rpc, second.tx_hash) is None
        txs = run.txs(batch.id)
        assert len(txs) == 3, "no second replacement"
        rpc.call("evm_mine")
        run.relayer.step()

        assert run.store.batch(batch.id).state is BatchState.CONFIRMED
        bumps = run.events("tx.fee_bumped")
        assert len(bumps) == 2
        for bump in bumps:
            assert bump["max_fee"] >= bump["old_max_fee"] * 1.125 and bump["tip"] >= bump["old_tip"] * 1.125
        assert {tx.nonce for tx in txs} == {first.nonce}
        assert [tx.state for tx in run.txs(batch.id)] == ["replaced", "replaced", "mined"]
        # The chain: exactly one transaction with that nonce was mined, the last replacement, and it succeeded.
        mined = [tx for tx in _our_txs_in(rpc, start, _head(rpc)) if int(tx["nonce"], 16) == first.nonce]
        assert [tx["hash"] for tx in mined] == [to_hex(txs[2].tx_hash)]
        receipt = _receipt(rpc, txs[2].tx_hash)
        assert receipt is not None and receipt["status"] == "0x1"
        assert int(receipt["effectiveGasPrice"], 16) > base * 20  # it paid the risen base fee
        assert _receipt(rpc, txs[0].tx_hash) is None and _receipt(rpc, txs[1].tx_hash) is None
        assert batch.root is not None and _root_recorded(chain, batch.root) is not None
    finally:
        run.close()


def test_several_transactions_are_in_flight_with_consecutive_nonces_and_land_in_one_block(
    tmp_path: Path, chain: LiveChain, rpc: JsonRpc
) -> None:
    """Four batches, ``max_in_flight=3``: three transactions are sent before any is mined, with consecutive
    nonces, and one block holds all three; the fourth goes out once there is room."""
    run = _Run(tmp_path, chain, _records(chain, 92_000, 8), max_in_flight=3, confirmations=1)
    try:
        nonce = int(rpc.call("eth_getTransactionCount", RELAYER, "latest"), 16)
        run.relayer.step()
        submitted = run.store.batches(BatchState.SUBMITTED)
        assert len(submitted) == 3 and len(run.store.batches(BatchState.BUILT)) == 1
        sent = [run.txs(b.id)[0] for b in submitted]
        assert [tx.nonce for tx in sent] == [nonce, nonce + 1, nonce + 2]
        rpc.call("evm_mine")
        block = _block(rpc)
        assert [tx["hash"] for tx in block["transactions"]] == [to_hex(tx.tx_hash) for tx in sent]
        run.relayer.step()  # confirms the three, sends the fourth
        assert all(run.store.batch(b.id).state is BatchState.CONFIRMED for b in submitted)
        [fourth] = run.store.batches(BatchState.SUBMITTED)
        assert run.txs(fourth.id)[0].nonce == nonce + 3
        rpc.call("evm_mine")
        run.relayer.step()
        assert run.store.status().items_by_state == {"confirmed": 8}
        for batch in run.store.batches():
            assert batch.root is not None and _root_recorded(chain, batch.root) is not None
    finally:
        run.close()


def test_settlements_reorged_out_of_the_chain_are_detected_and_sent_again(
    tmp_path: Path, chain: LiveChain, rpc: JsonRpc
) -> None:
    """With ``confirmations=3`` three batches mined together in one block are not yet settled. ``anvil_reorg``
    replaces that block with an empty one: the relayer sees the three receipts gone, broadcasts the same signed
    transactions again (same nonces, in order), and confirms each batch once its new inclusion is 3 blocks deep.
    The chain shows the block replaced and every root recorded by the relayer's transaction in its new block."""
    run = _Run(tmp_path, chain, _records(chain, 93_000, 6), confirmations=3, max_in_flight=3)
    try:
        run.relayer.step()
        batches = run.store.batches(BatchState.SUBMITTED)
        txs = [run.txs(batch.id)[0] for batch in batches]
        assert len(txs) == 3
        rpc.call("evm_mine")
        run.relayer.step()
        first = [r for r in (_receipt(rpc, tx.tx_hash) for tx in txs) if r is not None]
        assert len(first) == 3 and len({r["blockHash"] for r in first}) == 1  # all three in one block
        mined_in, old_hash = int(first[0]["blockNumber"], 16), first[0]["blockHash"]
        assert {run.store.batch(b.id).state for b in batches} == {BatchState.SUBMITTED}  # 1 deep of 3
        roots = [b.root for b in batches if b.root is not None]
        assert len(roots) == 3 and all(_root_recorded(chain, root) is not None for root in roots)

        rpc.call("anvil_reorg", 1, [])  # the block holding them is replaced by an empty one
        assert _block(rpc, mined_in)["hash"] != old_hash
        assert all(_receipt(rpc, tx.tx_hash) is None for tx in txs)
        assert all(_root_recorded(chain, root) is None for root in roots)
        run.relayer.step()
        reorged = run.events("tx.reorged")
        assert [e["tx"] for e in reorged] == [to_hex(tx.tx_hash) for tx in txs]
        assert {e["receipt"] for e in reorged} == {"gone"}
        assert [e["nonce"] for e in run.events("tx.resent")] == [tx.nonce for tx in txs]
        for _ in range(3):
            rpc.call("evm_mine")
            run.relayer.step()

        assert {run.store.batch(b.id).state for b in batches} == {BatchState.CONFIRMED}
        for batch, tx, root in zip(batches, txs, roots, strict=True):
            again = _receipt(rpc, tx.tx_hash)
            assert again is not None and again["status"] == "0x1"
            assert again["blockHash"] != old_hash and int(again["blockNumber"], 16) > mined_in
            recorded = _root_recorded(chain, root)
            assert recorded is not None and recorded.relayer == RELAYER
            assert [t.state for t in run.txs(batch.id)] == ["mined"]
            assert run.txs(batch.id)[0].block_number == int(again["blockNumber"], 16)
        assert run.store.status().items_by_state == {"confirmed": 6}
    finally:
        run.close()


def test_a_settlement_moved_to_another_block_by_a_reorg_counts_its_depth_again(
    tmp_path: Path, chain: LiveChain, rpc: JsonRpc
) -> None:
    """``anvil_reorg`` rebuilds the last two blocks with the relayer's transaction one block later. The relayer
    notices the receipt's block changed (number and hash) and counts the 3 confirmations from the new block: the
    batch is not settled on the depth it had in the old chain."""
    run = _Run(tmp_path, chain, _records(chain, 97_000, 2), confirmations=3)
    try:
        run.relayer.step()
        [batch] = run.store.batches(BatchState.SUBMITTED)
        [tx] = run.txs(batch.id)
        rpc.call("evm_mine")
        run.relayer.step()
        before = _receipt(rpc, tx.tx_hash)
        assert before is not None
        rpc.call("evm_mine")
        run.relayer.step()  # 2 deep of 3
        assert run.store.batch(batch.id).state is BatchState.SUBMITTED

        rpc.call("anvil_reorg", 2, [[to_hex(tx.raw), 1]])
        after = _receipt(rpc, tx.tx_hash)
        assert after is not None and after["blockHash"] != before["blockHash"]
        assert int(after["blockNumber"], 16) == int(before["blockNumber"], 16) + 1
        run.relayer.step()  # 1 deep in the new chain: the old depth does not count
        [moved] = run.events("tx.reorged")
        assert moved["block_hash"] == before["blockHash"] and moved["now_block_hash"] == after["blockHash"]
        assert run.store.batch(batch.id).state is BatchState.SUBMITTED
        rpc.call("evm_mine")
        run.relayer.step()  # 2 deep
        assert run.store.batch(batch.id).state is BatchState.SUBMITTED
        rpc.call("evm_mine")
        run.relayer.step()  # 3 deep
        assert run.store.batch(batch.id).state is BatchState.CONFIRMED
        assert run.txs(batch.id)[0].block_number == int(after["blockNumber"], 16)
        assert run.events("tx.resent") == []  # it never left the chain: nothing was sent again
    finally:
        run.close()


def test_a_reorged_settlement_that_another_relayer_recorded_is_settled_not_failed(
    tmp_path: Path, chain: LiveChain, rpc: JsonRpc
) -> None:
    """The reorg's new block carries another relayer's ``recordBatch`` of the same root. The relayer re-sends
    its own transaction (keeping its nonce sequence intact); the contract rejects it as already recorded, and
    the batch and its items are confirmed with that note, not failed."""
    from og_settle.clients import SettlementRegistryClient, TxSender

    other_key = dev_key(8)
    other = Account.from_key(other_key)
    w3 = chain.web3()
    _grant_relayer_role(chain, rpc, other.address)

    run = _Run(tmp_path, chain, _records(chain, 94_000, 2), confirmations=2)
    try:
        run.relayer.step()
        [batch] = run.store.batches(BatchState.SUBMITTED)
        [tx] = run.txs(batch.id)
        rpc.call("evm_mine")
        run.relayer.step()
        assert batch.root is not None and batch.dump_path is not None
        # The same root, recorded by the other relayer, goes into the block that replaces ours.
        call = SettlementRegistryClient(w3, chain.deployment.settlement_registry).record_batch_call(
            batch.root, batch.size, b"elsewhere"
        )
        signed = TxSender(w3, Account.from_key(other_key)).sign(
            call, nonce=int(rpc.call("eth_getTransactionCount", other.address, "latest"), 16), gas=300_000
        )
        rpc.call("anvil_reorg", 1, [[to_hex(signed.raw), 0]])
        recorded = _root_recorded(chain, batch.root)
        assert recorded is not None and recorded.relayer == other.address
        assert _receipt(rpc, tx.tx_hash) is None
        for _ in range(4):
            run.relayer.step()
            rpc.call("evm_mine")
        run.relayer.step()

        assert run.store.batch(batch.id).state is BatchState.CONFIRMED
        assert run.store.status().items_by_state == {"confirmed": 2}
        assert all("already" in (item.reason or "") for item in run.store.batch_items(batch.id))
        resent = _receipt(rpc, tx.tx_hash)
        assert resent is not None and resent["status"] == "0x0"  # re-sent, and refused by the contract
        recorded = _root_recorded(chain, batch.root)
        assert recorded is not None and recorded.relayer == other.address
    finally:
        run.close()


def test_a_restarted_relayer_finds_its_stuck_transactions_and_does_not_reuse_their_nonces(
    tmp_path: Path, chain: LiveChain, rpc: JsonRpc
) -> None:
    """Three transactions are stranded in the mempool by a base-fee jump when the relayer "crashes" (its object
    is dropped). A new relayer on the same queue takes them from the queue: it signs the fourth batch with the
    next nonce after them, not with the chain's count, and replaces the stranded three. Each nonce lands once."""
    records = _records(chain, 95_000, 8)
    first = _Run(tmp_path, chain, records, max_in_flight=3, confirmations=1, max_fee_per_gas=10**13)
    nonce = int(rpc.call("eth_getTransactionCount", RELAYER, "latest"), 16)
    start = _head(rpc) + 1
    first.relayer.step()
    stranded = {b.id for b in first.store.batches(BatchState.SUBMITTED)}
    assert len(stranded) == 3
    rpc.call("anvil_setNextBlockBaseFeePerGas", hex(int(_block(rpc)["baseFeePerGas"], 16) * 20))
    rpc.call("evm_mine")
    assert _our_txs_in(rpc, start, _head(rpc)) == []
    first.close()

    second = _Run.reopen(tmp_path, chain, max_in_flight=4, confirmations=1, fee_bump_blocks=1, max_fee_per_gas=10**13)
    try:
        second.relayer.step()  # sends the fourth batch
        [fourth] = [b for b in second.store.batches(BatchState.SUBMITTED) if b.id not in stranded]
        assert second.txs(fourth.id)[0].nonce == nonce + 3
        for _ in range(3):
            rpc.call("evm_mine")
            second.relayer.step()
        assert second.store.status().items_by_state == {"confirmed": 8}
        assert len(second.events("tx.fee_bumped")) >= 3
        landed = sorted(int(tx["nonce"], 16) for tx in _our_txs_in(rpc, start, _head(rpc)))
        assert landed == [nonce, nonce + 1, nonce + 2, nonce + 3]
        for batch in second.store.batches():
            assert batch.root is not None and _root_recorded(chain, batch.root) is not None
            assert [tx.state for tx in second.txs(batch.id)].count("mined") == 1
    finally:
        second.close()


def test_the_fee_cap_stops_the_bumps(tmp_path: Path, chain: LiveChain, rpc: JsonRpc) -> None:
    """With ``max_fee_per_gas`` just above the first transaction's maxFee, a base-fee jump leaves no room for a
    +10% replacement: the relayer says so once and sends nothing above the cap."""
    base = int(_block(rpc)["baseFeePerGas"], 16)
    tip = int(rpc.call("eth_maxPriorityFeePerGas"), 16)
    cap = 2 * base + tip + base // 20  # what a first transaction pays (2 x base fee + tip), and 5% of base more
    run = _Run(tmp_path, chain, _records(chain, 96_000, 2), fee_bump_blocks=1, confirmations=1, max_fee_per_gas=cap)
    try:
        run.relayer.step()
        [batch] = run.store.batches(BatchState.SUBMITTED)
        rpc.call("anvil_setNextBlockBaseFeePerGas", hex(base * 20))
        for _ in range(3):
            rpc.call("evm_mine")
            run.relayer.step()
        assert len(run.events("tx.fee_cap_reached")) == 1
        assert run.events("tx.fee_bumped") == []
        [tx] = run.txs(batch.id)
        assert _receipt(rpc, tx.tx_hash) is None and run.store.batch(batch.id).state is BatchState.SUBMITTED
    finally:
        run.close()
        # Leave no stranded transaction behind for the next test: let it be mined at a normal base fee.
        rpc.call("anvil_setNextBlockBaseFeePerGas", hex(GWEI // 10))
        rpc.call("evm_mine")


def test_relayer_run_takes_the_in_flight_options(tmp_path: Path, chain: LiveChain, rpc: JsonRpc) -> None:
    """``og-settle relayer run --max-in-flight 3 --confirmations 2`` as a process: three transactions are
    broadcast before any block is mined, one block holds them, and nothing counts as settled until the next
    block; then the run exits 0 with every record confirmed."""
    db = tmp_path / "queue.db"
    _Run._submit(db, chain, write_jsonl(tmp_path / "in.jsonl", _records(chain, 98_000, 6)))
    log = tmp_path / "relayer.log"
    args = ("--max-batch", "2", "--max-in-flight", "3", "--confirmations", "2", "--drain", "--exit-when-done")
    proc = spawn_relayer(db, chain, *args, "--poll", "0.05", log_path=log)
    try:
        deadline = time.monotonic() + 60
        while sum(e["event"] == "tx.broadcast" for e in read_events(log)) < 3:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        [start] = [e for e in read_events(log) if e["event"] == "relayer.start"]
        assert start["max_in_flight"] == 3 and start["confirmations"] == 2
        rpc.call("evm_mine")
        sent = [e["tx"] for e in read_events(log) if e["event"] == "tx.broadcast"]
        assert [tx["hash"] for tx in _block(rpc)["transactions"]] == sent
        while sum(e["event"] == "tx.mined" for e in read_events(log)) < 3:  # it has seen the 3 receipts, 1 deep
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        assert not any(e["event"] == "batch.confirmed" for e in read_events(log))
        rpc.call("evm_mine")
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    store = SqliteStore(db)
    try:
        assert store.status().items_by_state == {"confirmed": 6}
        for batch in store.batches():
            assert batch.root is not None and _root_recorded(chain, batch.root) is not None
    finally:
        store.close()


def _strand(run: _Run, rpc: JsonRpc) -> tuple[Any, Any, int]:
    """``run`` signs its one batch; then the base fee jumps 20x, past the transaction's maxFeePerGas, and a block
    is mined without it. Returns the batch, its transaction and the base fee before the jump."""
    run.relayer.step()
    [batch] = run.store.batches(BatchState.SUBMITTED)
    [tx] = run.txs(batch.id)
    base = int(_block(rpc)["baseFeePerGas"], 16)
    rpc.call("anvil_setNextBlockBaseFeePerGas", hex(base * 20))
    rpc.call("evm_mine")
    assert _receipt(rpc, tx.tx_hash) is None
    return batch, tx, base


def _offer(rpc: JsonRpc, raw: bytes) -> None:
    """Broadcast ``raw`` (as another node, or the dead instance, still holding it would); known is fine."""
    try:
        rpc.call("eth_sendRawTransaction", to_hex(raw))
    except Exception as err:
        assert "already" in str(err).lower() or "known" in str(err).lower(), err


def _wait_age(tx: Any, seconds: float) -> None:
    """Sleep until ``tx`` was signed at least ``seconds`` ago (by its row's ``created_at``)."""
    time.sleep(max(0.0, tx.created_at + seconds - time.time()))


def test_a_restarted_relayer_bumps_a_transaction_that_is_already_old_at_once(
    tmp_path: Path, chain: LiveChain, rpc: JsonRpc
) -> None:
    """The relayer "crashes" with a transaction stranded by a base-fee jump; it is restarted after the bump
    threshold (``fee_bump_after``) has passed since the transaction was signed. The restarted relayer replaces
    it straight away (its age comes from the queue, not from the restart), before any block is mined, and the
    replacement lands."""
    first = _Run(tmp_path, chain, _records(chain, 99_200, 2), confirmations=1, max_fee_per_gas=10**13)
    batch, old, _ = _strand(first, rpc)
    first.close()
    _wait_age(old, 3.5)

    head = _head(rpc)
    # fee_bump_blocks is out of reach: only the transaction's age can trigger the bump.
    second = _Run.reopen(
        tmp_path, chain, confirmations=1, fee_bump_after=3.0, fee_bump_blocks=50, max_fee_per_gas=10**13
    )
    try:
        second.relayer.step()
        assert _head(rpc) == head
        [bump] = second.events("tx.fee_bumped")
        assert bump["replaces"] == to_hex(old.tx_hash) and bump["nonce"] == old.nonce
        assert bump["max_fee"] >= bump["old_max_fee"] * 1.125
        assert second.events("tx.rebroadcast") == []  # replaced at once, not first offered again as it was
        rpc.call("evm_mine")
        second.relayer.step()
        assert second.store.batch(batch.id).state is BatchState.CONFIRMED
        [_, new] = second.txs(batch.id)
        receipt = _receipt(rpc, new.tx_hash)
        assert receipt is not None and receipt["status"] == "0x1" and _receipt(rpc, old.tx_hash) is None
    finally:
        second.close()


def test_a_stranded_transaction_adopted_from_a_dead_instance_is_settled_once_with_the_adopters_key(
    tmp_path: Path, chain: LiveChain, rpc: JsonRpc, postgres: PostgresServer
) -> None:
    """Two instances on one PostgreSQL queue. The first signs a batch, a base-fee jump strands its transaction,
    and it dies (its lease runs out). The second adopts the batch; the stranded transaction is past the bump
    threshold and unmined, and only the dead key could replace it, so the adopter settles the same work with its
    own key and nonce, and the root is recorded by it. When the base fee falls, the dead instance's
    transaction is mined too and reverts with ``BatchRootAlreadyRecorded``: the root is recorded exactly once,
    and the queue shows the batch settled, not failed."""
    adopter_key = dev_key(9)
    adopter = Account.from_key(adopter_key).address
    _grant_relayer_role(chain, rpc, adopter)
    url = postgres.create_database("sender")
    dead = _Run(tmp_path, chain, _records(chain, 99_300, 2), db=url, worker="dead", lease_ttl=1.0, confirmations=1)
    try:
        batch, stranded, _ = _strand(dead, rpc)
        assert stranded.sender == RELAYER
    finally:
        dead.close()  # killed: it renews nothing any more
    _wait_age(stranded, 2.5)  # its lease (1 s) ran out, and it is older than the adopter's fee_bump_after

    run = _Run.reopen(
        tmp_path,
        chain,
        key=adopter_key,
        db=url,
        worker="adopter",
        confirmations=1,
        fee_bump_after=2.0,
        max_fee_per_gas=10**13,
    )
    try:
        start = _head(rpc) + 1
        run.relayer.step()  # adopts the batch, finds its transaction stranded, signs the work again
        [adopted] = run.events("lease.adopted")
        assert adopted["batch"] == batch.id
        [taken] = run.events("tx.taken_over")
        assert taken["tx"] == to_hex(stranded.tx_hash) and taken["signer"] == RELAYER
        mine, theirs = sorted(run.store.batch_txs(batch.id), key=lambda tx: -tx.id)
        assert theirs.tx_hash == stranded.tx_hash and mine.sender == adopter
        rpc.call("evm_mine")
        run.relayer.step()
        assert run.store.batch(batch.id).state is BatchState.CONFIRMED
        assert run.store.status().items_by_state == {"confirmed": 2}
        receipt = _receipt(rpc, mine.tx_hash)
        assert receipt is not None and receipt["status"] == "0x1"
        assert batch.root is not None and _root_recorded(chain, batch.root).relayer == adopter

        # The base fee falls: the dead instance's transaction, still out there (anvil's pool evicts it, a
        # network's nodes may not: it is offered again here), lands after all, and the contract refuses it.
        rpc.call("anvil_setNextBlockBaseFeePerGas", hex(GWEI // 10))
        _offer(rpc, stranded.raw)
        rpc.call("evm_mine")
        late = _receipt(rpc, stranded.tx_hash)
        assert late is not None and late["status"] == "0x0"
        run.relayer.step()
        assert run.store.batch(batch.id).state is BatchState.CONFIRMED
        assert _root_recorded(chain, batch.root).relayer == adopter
        # On chain: the adopter's one transaction succeeded; the dead key's was mined and refused.
        mined = [
            tx
            for n in range(start, _head(rpc) + 1)
            for tx in _block(rpc, n)["transactions"]
            if tx["hash"] in (to_hex(mine.tx_hash), to_hex(stranded.tx_hash))
        ]
        assert len(mined) == 2
    finally:
        run.close()
        postgres.drop_database(url)


def test_a_relayer_restarted_with_another_key_settles_the_old_keys_stranded_work_once(
    tmp_path: Path, chain: LiveChain, rpc: JsonRpc
) -> None:
    """The relayer is restarted with a new key while a transaction of the old key is stranded. The new one
    cannot replace it (another key signed it); once it is past the bump threshold it signs the batch again with
    its own key and nonce, beside its own new work. Then the base fee falls and both versions reach the same
    block: whichever comes second is refused by the contract, the root is recorded once, and the queue records
    the batch as settled either way."""
    new_key = dev_key(9)
    new_address = Account.from_key(new_key).address
    _grant_relayer_role(chain, rpc, new_address)
    old = _Run(tmp_path, chain, _records(chain, 99_000, 2), confirmations=1)
    stranded, old_tx, base = _strand(old, rpc)
    old.close()

    new = _Run.reopen(tmp_path, chain, confirmations=1, fee_bump_blocks=1, max_in_flight=2, key=new_key)
    try:
        new._submit(tmp_path / "queue.db", chain, write_jsonl(tmp_path / "more.jsonl", _records(chain, 99_100, 2)))
        new.relayer.step()  # the first look offers the old transaction again (it is young)
        assert [e["reason"] for e in new.events("tx.rebroadcast")] == ["restart"]
        assert new.events("tx.taken_over") == []
        rpc.call("anvil_setNextBlockBaseFeePerGas", hex(base * 20))
        rpc.call("evm_mine")
        new.relayer.step()  # a block later it is past fee_bump_blocks: taken over
        [taken] = new.events("tx.taken_over")
        assert taken["tx"] == to_hex(old_tx.tx_hash) and taken["relayer"] == new_address
        ours = new.store.current_tx(stranded.id)
        assert ours is not None and ours.sender == new_address
        rpc.call("anvil_setNextBlockBaseFeePerGas", hex(GWEI // 10))
        _offer(rpc, old_tx.raw)  # still out there (anvil's pool evicts it; a network's nodes may not)
        rpc.call("evm_mine")  # both the old key's transaction and the new one's are mined here
        new.relayer.step()
        new.relayer.step()
        assert new.store.status().items_by_state == {"confirmed": 4}
        assert new.store.batch(stranded.id).state is BatchState.CONFIRMED
        statuses = {tx.tx_hash: (_receipt(rpc, tx.tx_hash) or {}).get("status") for tx in (old_tx, ours)}
        assert sorted(statuses.values()) == ["0x0", "0x1"]  # one recorded the root, the other was refused
        [winner] = [h for h, status in statuses.items() if status == "0x1"]
        assert stranded.root is not None
        recorded = _root_recorded(chain, stranded.root)
        assert recorded.relayer == (RELAYER if winner == old_tx.tx_hash else new_address)
    finally:
        new.close()


def test_a_payment_batch_taken_over_is_settled_once_when_the_stranded_transaction_lands_first(
    tmp_path: Path, chain: LiveChain, rpc: JsonRpc
) -> None:
    """The payment lane when both versions land, the stranded one first: a relayer restarted with a new key takes
    over a stranded ``settleBatch`` of two payments. The old key's transaction is mined first (ours is held out of
    that block); ours follows, and inside it each payment fails alone with Permit2's ``InvalidNonce``. The relayer
    finds each payment's own ``PaymentSettled`` event in the other transaction and records the items settled, not
    failed; the payee was paid once per payment."""
    new_key = dev_key(9)
    new_address = Account.from_key(new_key).address
    _grant_relayer_role(chain, rpc, new_address)
    amount = 10**15
    records = [payment_record(chain.deployment, 99_500 + i, amount=amount) for i in range(2)]
    paid_before = opg_balance(chain, PAY_TO)
    old = _Run(tmp_path, chain, records, confirmations=1)
    batch, old_tx, base = _strand(old, rpc)
    old.close()

    new = _Run.reopen(tmp_path, chain, confirmations=1, fee_bump_blocks=1, key=new_key)
    try:
        rpc.call("anvil_setNextBlockBaseFeePerGas", hex(base * 20))
        rpc.call("evm_mine")
        new.relayer.step()  # past fee_bump_blocks: taken over, signed again with the new key
        [taken] = new.events("tx.taken_over")
        assert taken["tx"] == to_hex(old_tx.tx_hash)
        ours = new.store.current_tx(batch.id)
        assert ours is not None and ours.sender == new_address
        # The old key's transaction lands first: ours is held out of that block, then offered again.
        rpc.call("anvil_dropTransaction", to_hex(ours.tx_hash))
        rpc.call("anvil_setNextBlockBaseFeePerGas", hex(GWEI // 10))
        _offer(rpc, old_tx.raw)
        rpc.call("evm_mine")
        first = _receipt(rpc, old_tx.tx_hash)
        assert first is not None and first["status"] == "0x1"
        assert opg_balance(chain, PAY_TO) - paid_before == 2 * amount
        new.relayer.step()  # ours has no receipt: the batch waits for it (and replaces it: a block went by)
        assert new.store.batch(batch.id).state is BatchState.SUBMITTED
        latest = new.store.current_tx(batch.id)
        assert latest is not None and latest.sender == new_address and latest.nonce == ours.nonce
        _offer(rpc, latest.raw)
        rpc.call("evm_mine")
        second = _receipt(rpc, latest.tx_hash)
        assert second is not None and second["status"] == "0x1"  # mined; each item refused inside it
        new.relayer.step()

        assert new.store.batch(batch.id).state is BatchState.CONFIRMED
        assert new.store.status().items_by_state == {"confirmed": 2}
        [confirmed] = new.events("batch.confirmed")
        assert confirmed["tx"] == to_hex(latest.tx_hash) and confirmed["settled_elsewhere"] == 2
        elsewhere = new.events("payment.settled_elsewhere")
        assert sorted(e["item"] for e in elsewhere) == sorted(i.id for i in new.store.batch_items(batch.id))
        assert {e["tx"] for e in elsewhere} == {to_hex(old_tx.tx_hash)}
        assert opg_balance(chain, PAY_TO) - paid_before == 2 * amount  # paid once per payment
        assert new.events("item.failed") == []
    finally:
        new.close()
