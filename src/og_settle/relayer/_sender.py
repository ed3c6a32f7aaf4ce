"""Transactions in flight for one signer: nonces, fee bumps, confirmation depth and reorgs.

The relayer's engine decides *what* to send (a batch's call) and what a final receipt means for the queue; this
module decides *how* it travels: which nonce, at what fees, when it counts as final, and what to do when it
stalls or falls out of the chain.

- **Several in flight.** Up to ``max_in_flight`` batches are submitted at once, with consecutive nonces. The
  next nonce is tracked locally, never below the chain's mined count, and resynced (pending count, and every
  transaction of ours the queue still has in flight) on start and after a nonce error.
- **Durable.** Every signed transaction, first send or fee bump, is written to the queue before it is
  broadcast (write-ahead), so a restarted relayer finds every transaction of its own that may be on chain.
- **Fee bumps.** A transaction not mined ``fee_bump_blocks`` blocks or ``fee_bump_after`` seconds after it was
  sent is replaced: same nonce, same call, both EIP-1559 fees raised by ``fee_bump`` (at least +10%, what
  geth-based nodes such as Base's require of a replacement) and never below what a new transaction would pay,
  up to ``max_fee_per_gas``. Whichever version is mined settles the batch; the others can never be mined.
  At the cap the same bytes are offered again at each such interval instead.
- **Age survives a restart.** A transaction's age is counted from its row's ``created_at`` (the Unix time it was
  signed, written before it was broadcast), so a relayer restarted, or adopting a batch, bumps a transaction
  that is already old at once instead of waiting ``fee_bump_after`` again. The block count restarts from the
  head on a restart (the queue does not know the block at broadcast, and block timestamps would only re-derive
  the same age): the time rule is what carries over.
- **Stranded foreign transactions.** A transaction another key signed (a batch adopted from a stopped relayer
  instance, or a relayer restarted with a new key) cannot be replaced here. When it is past the bump threshold
  and still not mined (no receipt, that key's mined nonce not past it), the check answers ``stranded`` and the
  engine signs the batch's work again with this key, in a transaction of its own nonce. That is safe because
  settlement is idempotent on chain: if both land, the later one is refused per lane by the contract's
  once-only rule (a root recorded once, a digest settled once: the whole transaction reverts with
  ``BatchRootAlreadyRecorded``/``SettlementAlreadyRecorded``; a payment's Permit2 nonce spent once: that item
  of ``settleBatch`` fails alone with ``InvalidNonce``), and the engine records either outcome as settled, not
  failed. The stranded transaction is marked ``replaced`` in the queue (this instance no longer follows it).
- **Confirmation depth.** A receipt counts only once it is ``confirmations`` blocks deep in the canonical
  chain (its block hash is checked against the chain's block at that height).
- **Reorgs.** A receipt that disappears, or moves to another block, is noticed on the next check. A transaction
  that fell out of the chain is broadcast again byte for byte (same nonce, so it cannot settle twice; if the
  batch reached the chain another way meanwhile, the contract's once-only rule makes it revert with the named
  "already recorded" error, which the engine records as settled). Reorgs deeper than ``confirmations`` after a
  batch was confirmed are not followed: the depth is the finality assumption.
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from og_settle._errors import InvalidInput, InvariantViolation
from og_settle.clients._fees import MIN_FEE_BUMP, UNDERPRICED, FeeBump, broadcast_priced, tx_fees
from og_settle.relayer._log import EventLog
from og_settle.relayer._states import BatchState
from og_settle.relayer._store import Batch, QueueStore, TxRecord

__all__ = [
    "DEFAULT_CONFIRMATIONS",
    "MIN_FEE_BUMP",
    "UNDERPRICED",
    "SendCheck",
    "SendStatus",
    "SenderConfig",
    "TxPipeline",
    "fault_pause",
]

# Base makes a block every 2 s: 5 blocks is about 10 s. The sequencer's unsafe head is reorged only in rare
# incidents; the depth keeps a settlement from being reported before a shallow reorg could undo it.
DEFAULT_CONFIRMATIONS: Final = 5
# Local development nodes (anvil, Hardhat) mine only when a transaction arrives: waiting for more blocks than the
# transaction's own would wait forever, and there is nothing to reorg.
_DEV_NODE_CONFIRMATIONS: Final = 1
_DEV_NODES: Final = ("anvil/", "hardhat", "ganache")
_TEST_PAUSE_ENV: Final = "OG_SETTLE_TEST_PAUSE"


def fault_pause(point: str) -> None:
    """Fault-test hook: ``OG_SETTLE_TEST_PAUSE=signed:2,broadcast:2`` sleeps that long at that point, so a test
    can SIGKILL the process inside the window. Unset in production: no effect."""
    spec = os.environ.get(_TEST_PAUSE_ENV)
    if not spec:
        return
    for part in spec.split(","):
        name, _, seconds = part.partition(":")
        if name.strip() == point:
            time.sleep(float(seconds or "1"))


@dataclass(frozen=True, slots=True)
class SenderConfig:
    """How settlement transactions travel.

    Attributes:
        max_in_flight: most batches submitted and not yet final at once (consecutive nonces).
        confirmations: how many blocks deep a receipt must be before its batch counts as settled (1 = mined);
            None picks :data:`DEFAULT_CONFIRMATIONS`, or 1 on a local development node (anvil, Hardhat).
        fee_bump_after: seconds a transaction may wait unmined before it is replaced with higher fees.
        fee_bump_blocks: blocks a transaction may wait unmined before it is replaced with higher fees.
        fee_bump: the factor both EIP-1559 fees are raised by in a replacement (at least 1.10).
        max_fee_per_gas: the cap on maxFeePerGas, in wei; no transaction, first or replacement, pays more.
        rebroadcast_after: seconds without a receipt after which the current transaction is broadcast again.
    """

    max_in_flight: int = 4
    confirmations: int | None = None
    fee_bump_after: float = 30.0
    fee_bump_blocks: int = 5
    fee_bump: float = 1.125
    max_fee_per_gas: int = 100 * 10**9
    rebroadcast_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_in_flight < 1:
            raise InvalidInput(f"max_in_flight: must be at least 1, got {self.max_in_flight}")
        if self.confirmations is not None and self.confirmations < 1:
            raise InvalidInput(f"confirmations: must be at least 1, got {self.confirmations}")
        if self.fee_bump_after <= 0:
            raise InvalidInput(f"fee_bump_after: must be positive, got {self.fee_bump_after}")
        if self.fee_bump_blocks < 1:
            raise InvalidInput(f"fee_bump_blocks: must be at least 1, got {self.fee_bump_blocks}")
        _ = self.bump  # checks fee_bump and max_fee_per_gas
        if self.rebroadcast_after <= 0:
            raise InvalidInput(f"rebroadcast_after: must be positive, got {self.rebroadcast_after}")

    @property
    def bump(self) -> FeeBump:
        """The fee rules (shared with the x402 facilitator's sender, ``og_settle.clients.FeeBump``)."""
        return FeeBump(factor=self.fee_bump, max_fee_per_gas=self.max_fee_per_gas)


class SendStatus(enum.StrEnum):
    """What :meth:`TxPipeline.check` found."""

    PENDING = "pending"  # not mined yet, or mined but not deep enough; nothing for the engine to do
    FINAL = "final"  # mined ``confirmations`` deep in the canonical chain: the engine processes the receipt
    NONCE_TAKEN = "nonce_taken"  # the nonce is mined and none of the batch's transactions has a receipt
    # another key's transaction, past the bump threshold and not mined: the engine signs the work again itself
    STRANDED = "stranded"


@dataclass(frozen=True, slots=True)
class SendCheck:
    """The outcome of one check of a submitted batch.

    Attributes:
        status: what was found.
        tx: the batch's transaction it concerns (the mined one, for ``final``; the newest, otherwise).
        receipt: the receipt, when mined.
        worked: True when the check sent something (a rebroadcast or a fee bump).
    """

    status: SendStatus
    tx: TxRecord
    receipt: Any = None
    worked: bool = False


@dataclass(slots=True)
class _Watch:
    """What this process knows of one submitted batch's transaction (in memory; a restart rebuilds it from the
    queue: the age from the row's ``created_at``, the block count from the head)."""

    sent_at: float
    sent_block: int
    mined: tuple[bytes, int, bytes | None] | None = None  # (tx hash, block number, block hash) last seen
    capped: bool = False


class TxPipeline:
    """Sends, watches and replaces one signer's settlement transactions (see the module docstring)."""

    def __init__(self, sender: Any, store: QueueStore, config: SenderConfig, log: EventLog) -> None:
        self.sender = sender
        self.store = store
        self.config = config
        self.log = log
        self._next_nonce: int | None = None
        self._watches: dict[int, _Watch] = {}
        self._confirmations = config.confirmations

    # -- set-up and nonces -------------------------------------------------------------------------------------

    @property
    def confirmations(self) -> int:
        """The confirmation depth in force (resolved against the node on first use)."""
        if self._confirmations is None:
            version = self.sender.client_version().lower()
            dev = version.startswith(_DEV_NODES)
            self._confirmations = _DEV_NODE_CONFIRMATIONS if dev else DEFAULT_CONFIRMATIONS
            self.log.info("sender.confirmations", confirmations=self._confirmations, node=version, auto=True)
        return self._confirmations

    def resync(self) -> int:
        """Take the next nonce from the chain's pending count, and past every transaction of ours in flight."""
        pending = self.sender.chain_nonce("pending")
        ours = [tx.nonce + 1 for tx in self._sent_txs() if tx.sender == self.sender.address]
        self._next_nonce = max([pending, *ours])
        return self._next_nonce

    def next_nonce(self) -> int:
        """The nonce the next new transaction uses: tracked locally, never below the chain's mined count."""
        if self._next_nonce is None:
            self.resync()
        assert self._next_nonce is not None
        return max(self._next_nonce, int(self.sender.chain_nonce("latest")))

    def _sent_txs(self) -> list[TxRecord]:
        txs: list[TxRecord] = []
        for batch in self.store.batches(BatchState.SUBMITTED):
            txs.extend(tx for tx in self.store.batch_txs(batch.id) if tx.state == "sent")
        return txs

    def has_room(self, submitted: Sequence[Batch]) -> bool:
        """Whether another batch may be sent while ``submitted`` are in flight."""
        return len(submitted) < self.config.max_in_flight

    def nonce_of(self, batch: Batch) -> int:
        """The nonce of the batch's current transaction (-1 if it has none)."""
        tx = self.store.current_tx(batch.id)
        return -1 if tx is None else tx.nonce

    # -- sending -----------------------------------------------------------------------------------------------

    def _fees(self) -> tuple[int, int]:
        """(maxFeePerGas, maxPriorityFeePerGas) for a new transaction, within the cap."""
        wanted = self.sender.fees()
        fees = self.config.bump.cap(wanted)
        if fees[0] < wanted[0]:
            self.log.warning("tx.fee_capped", wanted=wanted[0], cap=self.config.max_fee_per_gas)
        return fees

    def send(self, batch: Batch, call: Any, *, gas: int, items: int) -> tuple[TxRecord, str]:
        """Sign ``call`` for ``batch`` with the next nonce, write it to the queue, then broadcast it.

        Returns the stored transaction and the node's answer (a ``BroadcastOutcome``)."""
        from og_settle.clients import BroadcastOutcome

        signed = self.sender.sign(call, nonce=self.next_nonce(), gas=gas, fees=self._fees())
        # Write-ahead: the signed transaction is on disk before any node has seen it.
        tx = self.store.record_signed_tx(
            batch.id, tx_hash=signed.tx_hash, nonce=signed.nonce, sender=signed.sender, raw=signed.raw
        )
        self.log.info(
            "tx.signed", batch=batch.id, lane=batch.lane.value, tx=tx.tx_hash, nonce=tx.nonce, gas=gas, items=items
        )
        fault_pause("signed")
        outcome = self._broadcast(signed.raw)
        self._next_nonce = max(self._next_nonce or 0, signed.nonce + 1)
        self._watches[batch.id] = _Watch(sent_at=time.monotonic(), sent_block=self.sender.block_number())
        self.log.info("tx.broadcast", batch=batch.id, tx=tx.tx_hash, nonce=tx.nonce, outcome=outcome)
        fault_pause("broadcast")
        if outcome == BroadcastOutcome.NONCE_USED:
            self.resync()
        return tx, outcome

    def _broadcast(self, raw: bytes) -> str:
        """Broadcast ``raw``; a node refusing it for its price (below the base fee) answers ``underpriced``: the
        transaction stays recorded and is replaced with higher fees after ``fee_bump_blocks``/``fee_bump_after``."""
        return broadcast_priced(self.sender, raw)

    def _rebroadcast(
        self, batch: Batch, tx: TxRecord, watch: _Watch, event: str, *, restart_timer: bool = True, **fields: Any
    ) -> None:
        outcome = self._broadcast(tx.raw)
        if restart_timer:
            watch.sent_at, watch.sent_block = time.monotonic(), self.sender.block_number()
        self.log.info(event, batch=batch.id, tx=tx.tx_hash, nonce=tx.nonce, outcome=outcome, **fields)

    def _restore_watch(self, tx: TxRecord) -> _Watch:
        """The watch of a transaction this process did not send (a restart, an adopted batch): its age from the
        row's ``created_at``, its block count from now."""
        age = max(0.0, time.time() - tx.created_at)
        return _Watch(sent_at=time.monotonic() - age, sent_block=self.sender.block_number())

    def _bump(self, batch: Batch, tx: TxRecord, watch: _Watch) -> bool:
        """Replace ``tx`` (signed by this key) with the same call and nonce at higher fees; False if the cap leaves
        no room."""
        old_max, old_tip = tx_fees(tx.raw)
        replaced = self.config.bump.replace(self.sender.account, tx.raw, self.sender.fees())
        if replaced is None:
            if not watch.capped:
                watch.capped = True
                cap = self.config.max_fee_per_gas
                self.log.warning("tx.fee_cap_reached", batch=batch.id, tx=tx.tx_hash, max_fee=old_max, cap=cap)
            return False
        raw, tx_hash = replaced
        max_fee, tip = tx_fees(raw)
        new = self.store.record_replacement_tx(batch.id, tx_hash=tx_hash, nonce=tx.nonce, sender=tx.sender, raw=raw)
        outcome = self._broadcast(raw)
        watch.sent_at, watch.sent_block = time.monotonic(), self.sender.block_number()
        self.log.warning(
            "tx.fee_bumped",
            batch=batch.id,
            tx=new.tx_hash,
            replaces=tx.tx_hash,
            nonce=tx.nonce,
            max_fee=max_fee,
            tip=tip,
            old_max_fee=old_max,
            old_tip=old_tip,
            outcome=outcome,
        )
        return True

    # -- watching ----------------------------------------------------------------------------------------------

    def check(self, batch: Batch) -> SendCheck:
        """Look at a submitted batch's transactions on chain and move them along (rebroadcast, bump)."""
        txs = [tx for tx in self.store.batch_txs(batch.id) if tx.state == "sent"]  # newest first
        if not txs:
            raise InvariantViolation(f"submitted batch {batch.id} has no transaction in flight")
        current = txs[0]
        sender = self.sender
        # The mined nonce is read before the receipts: a transaction mined between the two reads must not look
        # replaced (nonce used, no receipt).
        # A batch adopted from a stopped relayer instance carries that instance's transaction: its key's nonce
        # tells whether it can still be mined, and it cannot be re-signed with higher fees here (only re-sent).
        own = current.sender.lower() == str(sender.address).lower()
        mined_nonce = sender.chain_nonce("latest") if own else sender.transaction_count(current.sender, "latest")
        for tx in txs:
            receipt = sender.receipt(tx.tx_hash)
            if receipt is not None:
                return self._on_mined(batch, tx, receipt)
        watch = self._watches.get(batch.id)
        if watch is not None and watch.mined is not None:
            tx_hash, block, block_hash = watch.mined
            gone = next((tx for tx in txs if tx.tx_hash == tx_hash), current)
            watch.mined = None
            self.log.warning(
                "tx.reorged", batch=batch.id, tx=tx_hash, block=block, block_hash=block_hash, receipt="gone"
            )
            self._rebroadcast(batch, gone, watch, "tx.resent", reason="reorg")
            return SendCheck(SendStatus.PENDING, gone, worked=True)
        if mined_nonce > current.nonce:
            return SendCheck(SendStatus.NONCE_TAKEN, current)
        restored = watch is None
        if watch is None:  # first look since (re)start or adoption: its age comes from the queue
            watch = self._watches[batch.id] = self._restore_watch(current)
        waited_s = time.monotonic() - watch.sent_at
        waited_blocks = sender.block_number() - watch.sent_block
        if waited_s >= self.config.fee_bump_after or waited_blocks >= self.config.fee_bump_blocks:
            if not own:
                self.log.warning(
                    "tx.stranded",
                    batch=batch.id,
                    tx=current.tx_hash,
                    signer=current.sender,
                    nonce=current.nonce,
                    waited_s=round(waited_s),
                )
                return SendCheck(SendStatus.STRANDED, current)
            if self._bump(batch, current, watch):
                return SendCheck(SendStatus.PENDING, current, worked=True)
            # No replacement possible (the fee cap): offer the same bytes again, as a node refuses them while the
            # base fee is above their maxFee and may have dropped them.
            self._rebroadcast(
                batch, current, watch, "tx.rebroadcast", reason="no replacement possible: fee cap reached"
            )
            return SendCheck(SendStatus.PENDING, current, worked=True)
        if restored:  # make sure a node has it; its age keeps counting from when it was signed
            self._rebroadcast(batch, current, watch, "tx.rebroadcast", restart_timer=False, reason="restart")
            return SendCheck(SendStatus.PENDING, current, worked=True)
        if waited_s >= self.config.rebroadcast_after:
            self._rebroadcast(batch, current, watch, "tx.rebroadcast", reason="no receipt", waited_s=round(waited_s))
            return SendCheck(SendStatus.PENDING, current, worked=True)
        return SendCheck(SendStatus.PENDING, current)

    def _on_mined(self, batch: Batch, tx: TxRecord, receipt: Any) -> SendCheck:
        watch = self._watches.get(batch.id)
        if watch is None:
            watch = self._watches[batch.id] = _Watch(sent_at=time.monotonic(), sent_block=receipt.block_number)
        seen = (tx.tx_hash, receipt.block_number, receipt.block_hash)
        if watch.mined is not None and watch.mined != seen:
            self.log.warning(
                "tx.reorged",
                batch=batch.id,
                tx=tx.tx_hash,
                block=watch.mined[1],
                block_hash=watch.mined[2],
                now_block=receipt.block_number,
                now_block_hash=receipt.block_hash,
            )
        if watch.mined != seen:
            self.log.info("tx.mined", batch=batch.id, tx=tx.tx_hash, block=receipt.block_number, nonce=tx.nonce)
        watch.mined = seen
        depth = self.sender.block_number() - receipt.block_number + 1
        if depth < self.confirmations:
            return SendCheck(SendStatus.PENDING, tx, receipt)
        if self.confirmations > 1 and self.sender.block_hash(receipt.block_number) != receipt.block_hash:
            # The receipt's block is no longer the chain's block at that height: look again next round.
            return SendCheck(SendStatus.PENDING, tx, receipt)
        del self._watches[batch.id]
        return SendCheck(SendStatus.FINAL, tx, receipt)

    def forget(self, batch_id: int) -> None:
        """The engine settled or reopened the batch: stop watching it."""
        self._watches.pop(batch_id, None)
