"""The relayer's engine: cut batches, submit them with write-ahead intent, confirm them, recover after a crash.

Write-ahead intent. A settlement transaction is signed, and the signed bytes, hash and nonce are committed to
the queue (batch ``submitted``) *before* it is broadcast. So after a crash at any point the queue knows every
transaction that might be on chain, and can ask the chain about it instead of guessing.

How transactions travel (several in flight with consecutive nonces, fee bumps, confirmation depth, reorgs) is
``og_settle.relayer._sender``'s concern; the engine hands it a batch's call and handles what a final receipt,
or a nonce taken by another transaction, means for the queue.

Several instances may share one (PostgreSQL) queue: each works only on the batches it holds a lease on, and
adopts those a stopped instance left (``og_settle.relayer._fleet``). On an SQLite queue the one relayer holds all.

Recovery (``reconcile``, run on every start, before anything new is signed; it covers the batches this instance
held before it stopped):

1. take the account's pending nonce from the chain (and past every transaction of ours in flight);
2. for every ``submitted`` batch, in nonce order: if one of its transactions has a receipt, process it exactly
   as a live receipt once it is deep enough (confirmed, or failed with the contract's named error); otherwise,
   if the chain's mined nonce has passed the transaction's nonce, ask the chain whether the batch's effects are
   there (root recorded? digest settled? Permit2 nonce spent?) and confirm it, or else send the batch back to
   ``built`` to be signed again; otherwise broadcast the very same signed bytes again (the node accepts them or
   already knows them; they cannot settle twice because they carry the same nonce, and they keep the nonces
   after them usable);
3. ``built`` batches are checked against the chain again right before they are signed (step 2's questions), so
   a batch that reached the chain some other way is confirmed, not resubmitted.

The contracts' own once-only rules (a root is recorded once, a digest once, a Permit2 nonce spent once) are the
last guard: a duplicate would revert, and that revert is recognised and recorded as "already settled".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from eth_account.signers.local import LocalAccount

from og_settle._deploy import Deployment
from og_settle._errors import InvalidInput
from og_settle._hex import to_hex
from og_settle.relayer._batching import BatchCutter
from og_settle.relayer._calls import ChainView, payment_args, settlement_call
from og_settle.relayer._chain_facts import ChainFacts
from og_settle.relayer._config import RelayerConfig, RelayerHalted, bind_deployment
from og_settle.relayer._fleet import LeaseKeeper, PaymentExpiry
from og_settle.relayer._log import EventLog
from og_settle.relayer._sender import SendStatus, TxPipeline
from og_settle.relayer._states import BatchState, ItemState, Lane
from og_settle.relayer._store import Batch, Item, LeaseLost, QueueStore, TxRecord

__all__ = ["Relayer"]

# Named errors that mean "this is already on chain": the batch is settled, whoever sent it.
_ALREADY_SETTLED: Final = frozenset({"BatchRootAlreadyRecorded", "SettlementAlreadyRecorded"})
# Named errors that are about the relayer's set-up or the contract's state, not about the items: never fail
# items for them. Paused: wait. Missing role: stop and tell the operator.
_WAIT_ERRORS: Final = frozenset({"EnforcedPause"})
_HALT_ERRORS: Final = frozenset({"AccessControlUnauthorizedAccount"})
_MAX_ATTEMPTS: Final = 5
# PaymentFacilitator's per-item gas cap in settleBatch (ITEM_GAS_LIMIT): payers with code are simulated under it.
_ITEM_GAS_LIMIT: Final = 200_000
# Named errors of an estimate that mean "this batch is too big for the gas available", not "this item is bad".
_SPLIT_ERRORS: Final = frozenset({"InsufficientGasForItem"})


class Relayer:
    """Settles what the queue holds. ``run`` loops until stopped; ``step`` does one round of work."""

    def __init__(
        self,
        store: QueueStore,
        deployment: Deployment,
        account: LocalAccount,
        *,
        rpc_url: str | None = None,
        w3: Any = None,
        config: RelayerConfig | None = None,
        log: EventLog | None = None,
        stop: threading.Event | None = None,
        registry_abi: Sequence[dict[str, Any]] | None = None,
        facilitator_abi: Sequence[dict[str, Any]] | None = None,
        on_stall: Callable[[], None] | None = None,
    ) -> None:
        from og_settle.clients import (
            PaymentFacilitatorClient,
            Permit2Client,
            RetryPolicy,
            SettlementRegistryClient,
            TxSender,
            make_web3,
        )

        self.store = store
        self.deployment = bind_deployment(store, deployment)
        self._config = config or RelayerConfig()
        self.log = log or EventLog()
        self.stop = stop or threading.Event()
        if w3 is None:
            if rpc_url is None:
                raise InvalidInput("rpc_url: pass the node's URL (or a Web3 instance)")
            w3 = make_web3(rpc_url)
        # The relayer never gives up on the node: it backs off (capped) until the node is back or it is stopped.
        retry = RetryPolicy(initial_delay=0.2, max_delay=5.0, max_elapsed=None)
        hooks: dict[str, Any] = {"on_retry": self._on_retry, "should_stop": self.stop.is_set}
        sender = TxSender(
            w3,
            account,
            chain_id=self.deployment.chain_id,
            gas_margin=self._config.gas_margin,
            retry=retry,
            on_retry=self._on_retry,
            should_stop=self.stop.is_set,
        )
        self.chain = ChainView(
            w3=w3,
            sender=sender,
            registry=SettlementRegistryClient(
                w3, self.deployment.settlement_registry, abi=registry_abi, retry=retry, **hooks
            ),
            facilitator=PaymentFacilitatorClient(
                w3, self.deployment.payment_facilitator, abi=facilitator_abi, retry=retry, **hooks
            ),
            permit2=Permit2Client(w3, self.deployment.permit2, retry=retry, **hooks),
        )
        self.facts = ChainFacts(store, self.chain, self._config, self.log)
        self.cutter = BatchCutter(store, self._config, self.log, self.stop, settler=sender.address)
        self.pipeline = TxPipeline(sender, store, self._config.sending, self.log)
        self.leases = LeaseKeeper(store, self.log, ttl=self._config.lease_ttl)
        self.expiry = PaymentExpiry(store, self.log)
        self._outage_since: float | None = None
        self._receipt_pending: set[int] = set()
        self._paused_until = 0.0
        # The watchdog (``_fleet``): when the loop last showed progress, and what to do once it stalls (stop;
        # ``relayer run`` exits the process, since a blocked call cannot be interrupted).
        self._last_tick = time.monotonic()
        self.stalled = False
        self._on_stall_hook = on_stall

    @property
    def config(self) -> RelayerConfig:
        """How it runs; setting it takes effect from the next step."""
        return self._config

    @config.setter
    def config(self, config: RelayerConfig) -> None:
        self._config = self.facts.config = self.cutter.config = config

    # -- logging helpers ---------------------------------------------------------------------------------------

    def _tick(self) -> None:
        """The main loop shows progress (the lease watchdog reads it)."""
        self._last_tick = time.monotonic()

    def _on_stall(self) -> None:
        self.stalled = True
        self.stop.set()
        if self._on_stall_hook is not None:
            self._on_stall_hook()

    def _on_retry(self, what: str, attempt: int, wait: float, err: BaseException) -> None:
        self._tick()  # waiting for the node is progress: an outage alone must not give the batches away
        if self._outage_since is None:
            self._outage_since = time.monotonic()
        self.log.warning("rpc.retry", call=what, attempt=attempt, wait_s=round(wait, 2), error=str(err)[:200])

    def _rpc_ok(self) -> None:
        if self._outage_since is not None:
            self.log.info("rpc.recovered", outage_s=round(time.monotonic() - self._outage_since, 2))
            self._outage_since = None

    # -- the loop ----------------------------------------------------------------------------------------------

    def run(self) -> int:
        """Reconcile, then loop until stopped (or, with ``exit_when_done``, until nothing is in flight).

        Returns 0, or 1 when ``exit_when_done`` ends a run in which items failed."""
        from og_settle.clients import NodeUnavailable

        self.log.info(
            "relayer.start",
            instance=self.store.worker,
            relayer=self.chain.sender.address,
            chain_id=self.deployment.chain_id,
            registry=self.deployment.settlement_registry,
            facilitator=self.deployment.payment_facilitator,
            max_items=self.config.policy.max_items,
            confirmations=self.config.sending.confirmations or "auto",
            max_in_flight=self.config.sending.max_in_flight,
        )
        failed_before = self._failed_count()
        done = threading.Event()
        self._tick()
        heartbeat = self.leases.heartbeat(
            done, progress=lambda: self._last_tick, stall_after=self.config.stall_after, on_stall=self._on_stall
        )
        try:
            self.reconcile()
            while not self.stop.is_set():
                self._tick()
                worked = self.step()
                if self.config.exit_when_done and not self.store.any_in_flight():
                    counts = self.store.item_counts()
                    failed = counts.get(ItemState.FAILED.value, 0) - failed_before
                    self.log.info("relayer.done", failed_this_run=failed, items=counts)
                    return 1 if failed else 0
                if not worked:
                    self.stop.wait(self.config.poll_interval)
        except NodeUnavailable as err:
            if not self.stop.is_set():
                raise
            self.log.info("relayer.stopping", detail=str(err)[:200])
        finally:
            done.set()
            heartbeat.join()
        self.log.info("relayer.stopped", **self._counts())
        return 4 if self.stalled else 0

    def _failed_count(self) -> int:
        return self.store.item_counts().get(ItemState.FAILED.value, 0)

    def _counts(self) -> dict[str, Any]:
        return {"items": self.store.item_counts()}

    def step(self) -> bool:
        """One round: adopt batches a stopped instance left (while there is room for them), fail expired payments,
        settle private items, cut due batches, then advance the transactions in flight. (``run`` renews the leases
        from a thread.)"""
        try:
            worked = self.leases.adopt(room=self.pipeline.has_room(self.store.held_batches(BatchState.SUBMITTED)))
            worked |= self.expiry.sweep()
            worked |= self.cutter.settle_private()
            worked |= self.cutter.cut_batches()
            worked |= self._advance()
        except LeaseLost as err:
            # Nothing was changed or sent for the batch; it is the other instance's now.
            self.log.warning("lease.lost", detail=str(err))
            return True
        return worked

    # -- submission --------------------------------------------------------------------------------------------

    def _advance(self) -> bool:
        """Move the transactions in flight along, then sign the next ones while there is room."""
        worked = False
        for batch in sorted(self.store.held_batches(BatchState.SUBMITTED), key=self.pipeline.nonce_of):
            self._tick()
            worked |= self._poll(batch)
        while not self.stop.is_set() and time.monotonic() >= self._paused_until:
            self._tick()
            if not self.pipeline.has_room(self.store.held_batches(BatchState.SUBMITTED)):
                break
            built = self.store.held_batches(BatchState.BUILT)
            if not built:
                break
            self._submit(built[0])
            worked = True
        return worked

    def _submit(self, batch: Batch) -> None:
        from og_settle.clients import ContractRevert, NodeUnavailable, is_connection_error

        # Check the chain first: a batch may have reached it some other way (a previous run, another relayer).
        if self.facts.settled_on_chain(batch):
            return
        # A Merkle batch's transaction carries only its root and size: its items are counted, not read.
        items: list[Item] = []
        if batch.lane is Lane.BATCH:
            open_count = self.store.open_count(batch.id)
        else:
            items = self.store.open_items(batch.id)
            if batch.lane is Lane.PAYMENT:
                items = self._drop_unsettleable(batch, items)
            open_count = len(items)
        if not open_count:
            self.store.confirm_batch(batch.id, tx_hash=None, block_number=None, gas_used=None, note="nothing left")
            return
        if batch.attempts >= _MAX_ATTEMPTS:
            self._fail(batch, f"gave up after {batch.attempts} transactions")
            return
        call = settlement_call(self.chain, self.config, batch, items)
        sender = self.chain.sender
        try:
            gas = sender.estimate_gas(call)
        except ContractRevert as revert:
            self._rpc_ok()
            if revert.error.name in _SPLIT_ERRORS and batch.lane is Lane.PAYMENT:
                self._split(batch, items, f"gas estimate: {revert.error}")
                return
            self._on_revert(batch, revert.error, tx=None)
            return
        except Exception as err:
            if isinstance(err, NodeUnavailable) or is_connection_error(err):
                raise
            why = f"gas estimate failed without revert data: {str(err)[:200]}"
            if batch.lane is not Lane.PAYMENT:
                # One record (or one Merkle root) per transaction: nothing to split. Retry later, do not crash.
                self._paused_until = time.monotonic() + 30.0
                self.log.warning("tx.estimate_failed", batch=batch.id, lane=batch.lane.value, error=why, retry_in_s=30)
                return
            # No revert data names an item (the batch may not fit a block, or an item burns its gas): split the
            # batch until the bad item stands alone, instead of crashing or failing every item.
            self._split(batch, items, why)
            return
        self.pipeline.send(batch, call, gas=gas, items=open_count)
        self._rpc_ok()

    def _drop_unsettleable(self, batch: Batch, items: list[Item]) -> list[Item]:
        """Fail, before anything is sent, the payments that cannot settle, at no gas; return the rest.

        - Deadline passed: Permit2 and the facilitator would reject them.
        - Payers with code (ERC-1271 wallets, EIP-7702 accounts): Permit2 asks their code to approve the
          signature, and that code may refuse, or burn all the gas it gets (issue #12 H-1). Each is simulated
          alone with ``settle`` under the batch's per-item gas cap; one that fails is failed here with its reason.
        """
        now = max(self.chain.sender.latest_timestamp(), int(time.time()))
        failed: dict[int, str] = {}
        code_checked: dict[str, bool] = {}
        for item in items:
            record = item.record()
            if int(record["deadline"]) < now:
                failed[item.id] = f"permit2_deadline_expired: deadline {record['deadline']} passed (now {now})"
                continue
            payer = str(record["payer"])
            if payer not in code_checked:
                code_checked[payer] = self.chain.sender.has_code(payer)
            if code_checked[payer] and (verdict := self._simulate_payer_code(record)) is not None:
                failed[item.id] = verdict
        if not failed:
            return items
        self.store.resolve_items(batch.id, confirmed={}, failed=failed)
        for item_id, reason in failed.items():
            self.log.warning("item.failed", item=item_id, batch=batch.id, reason=reason, sent=False)
        return [item for item in items if item.id not in failed]

    def _simulate_payer_code(self, record: dict[str, Any]) -> str | None:
        """None if ``settle`` of this payment (whose payer has code) succeeds in simulation within the per-item
        gas cap, else the failure reason."""
        from og_settle.clients import NodeUnavailable, is_connection_error, x402_reason

        try:
            error = self.chain.facilitator.simulate_settle(
                payment_args(record), self.chain.sender.address, gas=_ITEM_GAS_LIMIT
            )
        except Exception as err:
            if isinstance(err, NodeUnavailable) or is_connection_error(err):
                raise
            return (
                f"invalid_permit2_signature: the payer's account code did not approve the payment within "
                f"{_ITEM_GAS_LIMIT} gas in simulation ({str(err)[:120]})"
            )
        if error is None:
            return None
        return f"{x402_reason(error)}: {error} (simulated; the payer has account code)"

    def _split(self, batch: Batch, items: list[Item], why: str) -> None:
        """Undo a payment batch that cannot be sent as a whole and queue its halves as two batches; a single item
        that cannot be sent fails with ``why``."""
        if len(items) <= 1:
            self._fail(batch, f"invalid_transaction_state: {why}")
            return
        ids = [item.id for item in items]
        half = len(ids) // 2
        self.store.dissolve_batch(batch.id, f"split: {why}")
        halves = [
            self.store.create_batch(batch.lane, part, root=None, dump_path=None, dump=None)
            for part in (ids[:half], ids[half:])
        ]
        self.log.warning(
            "batch.split", batch=batch.id, into=[b.id for b in halves], sizes=[half, len(ids) - half], reason=why
        )

    def _poll(self, batch: Batch, *, recovering: bool = False) -> bool:
        """Check the batch's transactions: confirm or fail the batch once its receipt is deep enough, or find its
        nonce taken; the pipeline rebroadcasts, bumps fees and follows reorgs meanwhile."""
        check = self.pipeline.check(batch)
        self._rpc_ok()
        if check.status is SendStatus.FINAL:
            if recovering:
                self.log.info("recovery.receipt", batch=batch.id, tx=check.tx.tx_hash, block=check.receipt.block_number)
            self._on_receipt(batch, check.tx, check.receipt)
            self.pipeline.forget(batch.id)
            return True
        if check.status is SendStatus.STRANDED:
            self._take_over(batch, check.tx)
            return True
        if check.status is SendStatus.NONCE_TAKEN:
            # This transaction, or another with its nonce, is mined; _on_replaced tells which.
            worked = self._on_replaced(batch, check.tx)
            if self.store.batch(batch.id).state is not BatchState.SUBMITTED:
                self.pipeline.forget(batch.id)
            return worked
        return check.worked

    # -- outcomes ----------------------------------------------------------------------------------------------

    def _on_receipt(self, batch: Batch, tx: TxRecord, receipt: Any) -> None:
        if not receipt.succeeded:
            error = self.chain.sender.replay_revert(
                settlement_call(self.chain, self.config, batch, self.store.open_items(batch.id)), receipt
            )
            self.log.warning("tx.reverted", batch=batch.id, tx=tx.tx_hash, block=receipt.block_number, error=str(error))
            if error.name == "unknown":  # it does not revert when replayed: out of gas, or state moved; retry
                self.store.reopen_batch(batch.id, f"transaction {to_hex(tx.tx_hash)} reverted without a reason")
                return
            self._on_revert(batch, error, tx=tx, block=receipt.block_number)
            return
        failures: dict[int, str] = {}
        notes: dict[int, str] = {}
        if batch.lane is Lane.PAYMENT:
            items = self.store.open_items(batch.id)
            outcomes = self.chain.facilitator.batch_outcomes(receipt, [payment_args(i.record()) for i in items])
            for item, outcome in zip(items, outcomes, strict=True):
                if outcome.settled:
                    continue
                if outcome.error is not None and outcome.error.name in ("NonceAlreadyUsed", "InvalidNonce"):
                    verdict = self.facts.spent_elsewhere(item)
                    if verdict is None:
                        notes[item.id] = "settled by another transaction"
                        continue
                    failures[item.id] = verdict
                    continue
                failures[item.id] = f"{outcome.reason}: {outcome.error}"
        elif batch.lane is Lane.INDIVIDUAL and len(items := self.store.open_items(batch.id)) > 1:
            for item, result in zip(
                items, self.chain.registry.individual_batch_outcomes(receipt, len(items)), strict=True
            ):
                if result.error is None:
                    continue
                if result.error.name in _ALREADY_SETTLED:
                    notes[item.id] = f"already on chain ({result.error})"
                    continue
                failures[item.id] = f"{result.error.name}: {result.error}"
        self.store.confirm_batch(
            batch.id,
            tx_hash=tx.tx_hash,
            block_number=receipt.block_number,
            gas_used=receipt.gas_used,
            item_failures=failures,
        )
        self.log.info(
            "batch.confirmed",
            batch=batch.id,
            lane=batch.lane.value,
            tx=tx.tx_hash,
            block=receipt.block_number,
            gas_used=receipt.gas_used,
            size=batch.size,
            failed=len(failures),
            settled_elsewhere=len(notes),
        )
        for item_id, reason in failures.items():
            self.log.warning("item.failed", item=item_id, batch=batch.id, reason=reason)

    def _on_revert(self, batch: Batch, error: Any, *, tx: TxRecord | None, block: int | None = None) -> None:
        name = error.name
        if name in _ALREADY_SETTLED:
            self.facts.confirm_found(batch, f"already on chain ({error})", tx=tx)
            return
        if name in _WAIT_ERRORS:
            self._paused_until = time.monotonic() + 30.0
            if tx is not None:
                self.store.reopen_batch(batch.id, f"reverted with {error}; waiting")
            self.log.warning("registry.paused", batch=batch.id, error=str(error), retry_in_s=30)
            return
        if name in _HALT_ERRORS:
            if tx is not None:
                self.store.reopen_batch(batch.id, f"reverted with {error}")
            self.log.error("relayer.halted", batch=batch.id, error=str(error), relayer=self.chain.sender.address)
            raise RelayerHalted(
                f"{error}: grant the relayer account {self.chain.sender.address} the registry's RELAYER_ROLE"
            )
        if batch.lane is Lane.PAYMENT:
            from og_settle.clients import x402_reason

            self._fail(batch, f"{x402_reason(error)}: {error}", tx=tx, block=block)
            return
        self._fail(batch, f"{name}: {error}", tx=tx, block=block)

    def _fail(self, batch: Batch, reason: str, *, tx: TxRecord | None = None, block: int | None = None) -> None:
        self.store.fail_batch(batch.id, reason, tx_hash=None if tx is None else tx.tx_hash, block_number=block)
        self.log.error("batch.failed", batch=batch.id, lane=batch.lane.value, reason=reason)

    def _on_replaced(self, batch: Batch, tx: TxRecord) -> bool:
        """The account's mined nonce passed the transaction's and the node has no receipt for it.

        That is not yet a replacement: the transaction may be our own, mined, with the node's receipt index
        lagging (a load-balanced or restarted RPC), or an earlier broadcast of the same batch may be the one
        mined. Only when neither holds was the nonce used by another transaction: then confirm what the chain
        already holds, and sign the rest again."""
        for earlier in self.store.batch_txs(batch.id):
            if earlier.tx_hash == tx.tx_hash:
                continue
            receipt = self.chain.sender.receipt(earlier.tx_hash)
            if receipt is not None:
                self.log.info("tx.mined", batch=batch.id, tx=earlier.tx_hash, note="an earlier broadcast of this batch")
                self._on_receipt(batch, earlier, receipt)
                return True
        mined_in = self.chain.sender.mined_block(tx.tx_hash)
        if mined_in is not None:
            # Our own transaction is in a block: its effects are ours; without the receipt, per-item outcomes
            # come from the chain's state (as after a crash). If they are not all there yet, wait for the receipt.
            if self.facts.settled_on_chain(batch, own=(tx, mined_in)):
                self.log.info("tx.mined", batch=batch.id, tx=tx.tx_hash, block=mined_in, note="no receipt from node")
                return True
            if batch.id not in self._receipt_pending:
                self._receipt_pending.add(batch.id)
                self.log.info("tx.receipt_pending", batch=batch.id, tx=tx.tx_hash, block=mined_in)
            return False
        self.log.warning("tx.replaced", batch=batch.id, tx=tx.tx_hash, nonce=tx.nonce)
        settled = self.facts.settled_on_chain(batch, replaced=True)
        if not settled and self.store.batch(batch.id).state is BatchState.SUBMITTED:
            self.store.reopen_batch(batch.id, f"transaction {to_hex(tx.tx_hash)} was replaced")
        self.pipeline.resync()
        return True

    def _take_over(self, batch: Batch, tx: TxRecord) -> None:
        """Another key's transaction for the batch (a stopped instance's, or this instance's before a key change)
        is stranded unmined past the bump threshold, and only that key could replace it: send the batch back to
        ``built``, so that it is checked against the chain and signed again with this relayer's key and nonce.

        If the stranded one lands too, the contract's once-only rules refuse the later of the two (see
        ``_sender``), and either order is recorded as settled: a reverted duplicate through ``_ALREADY_SETTLED``,
        a payment settled by the other through ``ChainFacts.spent_elsewhere``."""
        relayer = self.chain.sender.address
        self.store.reopen_batch(
            batch.id, f"transaction {to_hex(tx.tx_hash)} of {tx.sender} stranded unmined; signed again by {relayer}"
        )
        self.pipeline.forget(batch.id)
        self.log.warning(
            "tx.taken_over", batch=batch.id, tx=tx.tx_hash, signer=tx.sender, nonce=tx.nonce, relayer=relayer
        )

    # -- recovery ----------------------------------------------------------------------------------------------

    def reconcile(self) -> None:
        """Bring the queue in line with the chain after a (re)start; see the module docstring."""
        pending = self.pipeline.resync()
        mined = self.chain.sender.chain_nonce("latest")
        self._rpc_ok()
        self.leases.reclaim()
        submitted = sorted(self.store.held_batches(BatchState.SUBMITTED), key=self.pipeline.nonce_of)
        built = self.store.held_batches(BatchState.BUILT)
        self.log.info(
            "recovery.start", mined_nonce=mined, pending_nonce=pending, submitted=len(submitted), built=len(built)
        )
        for batch in submitted:
            self._tick()
            try:
                self._poll(batch, recovering=True)
            except LeaseLost as err:  # another instance took it over meanwhile: it is theirs to finish
                self.log.warning("lease.lost", batch=batch.id, detail=str(err))
        self.pipeline.resync()
        self.log.info("recovery.done", **self._counts())
