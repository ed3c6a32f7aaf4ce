"""What the chain already holds of a batch: its root recorded, its digests settled, its Permit2 nonces spent.

The relayer asks before it signs a batch, after a restart, and when its transaction was replaced: a batch may
have reached the chain some other way (an earlier run, another instance, a transaction the node forgot it had
sent). Payments are matched by the whole ``PaymentSettled`` event, never by (payer, nonce) alone.
"""

from __future__ import annotations

from og_settle._errors import InvariantViolation
from og_settle._hex import parse_bytes32, to_hex
from og_settle.relayer._calls import ChainView, payment_args
from og_settle.relayer._config import RelayerConfig
from og_settle.relayer._log import EventLog
from og_settle.relayer._states import BatchState, Lane
from og_settle.relayer._store import Batch, Item, QueueStore, TxRecord

__all__ = ["ChainFacts"]


class ChainFacts:
    """Reads the chain for a batch's effects and confirms what it finds in the queue."""

    def __init__(self, store: QueueStore, chain: ChainView, config: RelayerConfig, log: EventLog) -> None:
        self.store = store
        self.chain = chain
        self.config = config
        self.log = log

    def confirm_found(
        self, batch: Batch, note: str, *, tx: TxRecord | None = None, own: tuple[TxRecord, int] | None = None
    ) -> None:
        """Confirm a batch whose effects are on chain; ``own`` is our own transaction (and its block) when the
        effects are known to be its, so that it is recorded as mined rather than as replaced."""
        tx_hash, block = (None, None) if own is None else (own[0].tx_hash, own[1])
        self.store.confirm_batch(batch.id, tx_hash=tx_hash, block_number=block, gas_used=None, note=note)
        self.log.info("batch.found_on_chain", batch=batch.id, lane=batch.lane.value, note=note)

    def settled_on_chain(
        self, batch: Batch, *, replaced: bool = False, own: tuple[TxRecord, int] | None = None
    ) -> bool:
        """Ask the chain whether the batch's effects are there; if all are, confirm it and return True.

        For payments, items whose Permit2 nonce is spent are resolved one by one (settled by this facilitator,
        or spent elsewhere); only the rest are signed again. That happens only for a batch not yet signed or
        whose transaction was ``replaced``: a transaction that may still be mined keeps its items, and its
        receipt tells which of them settled."""
        registry = self.chain.registry
        if batch.lane is Lane.BATCH:
            if batch.root is None:
                raise InvariantViolation(f"batch {batch.id} has no root")
            recorded = registry.get_batch(batch.root)
            if recorded is None:
                return False
            if recorded.size != batch.size:
                raise InvariantViolation(
                    f"root {to_hex(batch.root)} recorded with size {recorded.size}, not {batch.size}"
                )
            self.confirm_found(batch, f"root recorded on chain as batch {recorded.batch_id}", own=own)
            return True
        items = self.store.open_items(batch.id)
        if batch.lane in (Lane.INDIVIDUAL, Lane.METADATA):
            digests = [parse_bytes32(i.record()["digest"], "digest") for i in items]
            if digests and all(registry.is_settled(d) for d in digests):
                self.confirm_found(batch, "digest recorded on chain", own=own)
                return True
            return False
        if batch.lane is Lane.PAYMENT:
            confirmed: dict[int, str] = {}
            failed: dict[int, str] = {}
            for item in items:
                record = item.record()
                if not self.chain.permit2.nonce_spent(record["payer"], int(record["nonce"])):
                    continue
                verdict = self.spent_elsewhere(item)
                if verdict is None:
                    confirmed[item.id] = "settled on chain by another transaction"
                else:
                    failed[item.id] = verdict
            if not confirmed and not failed:
                return False
            if own is not None and len(confirmed) < len(items):
                return False  # our mined transaction's receipt will tell what happened to the others
            if len(confirmed) + len(failed) == len(items):
                if failed:
                    self.store.confirm_batch(
                        batch.id,
                        tx_hash=None,
                        block_number=None,
                        gas_used=None,
                        item_failures=failed,
                        note="found on chain",
                    )
                else:
                    self.confirm_found(batch, "every Permit2 nonce spent on chain", own=own)
                return True
            if batch.state is BatchState.SUBMITTED:
                if not replaced:
                    return False
                self.store.reopen_batch(batch.id, "its transaction was replaced; some payments settled elsewhere")
            self.store.resolve_items(batch.id, confirmed=confirmed, failed=failed)
            self.log.info("payments.found_on_chain", batch=batch.id, confirmed=len(confirmed), failed=len(failed))
            return False
        raise InvariantViolation(f"batch {batch.id}: unexpected lane {batch.lane}")

    def spent_elsewhere(self, item: Item) -> str | None:
        """The item's Permit2 nonce is spent, not by a transaction of this batch: None if the settlement that
        spent it is this very payment (recipient, token, amount, scheme and request hash all equal), else the
        failure reason. (payer, nonce) alone proves nothing: the payer can sign another payment with the same
        nonce, say 1 wei to itself, and settle it first (issue #12 H-2)."""
        record = item.record()
        found = self.chain.facilitator.settled_payment(
            record["payer"], int(record["nonce"]), from_block=self.config.log_from_block
        )
        if found is None:
            return "permit2_invalid_nonce: the Permit2 nonce was spent outside this facilitator"
        mismatch = found.mismatch(payment_args(record))
        if mismatch is None:
            self.log.info("payment.settled_elsewhere", item=item.id, tx=found.tx_hash, block=found.block_number)
            return None
        self.log.warning("payment.nonce_stolen", item=item.id, tx=found.tx_hash, mismatch=mismatch)
        return (
            f"permit2_invalid_nonce: the Permit2 nonce was spent by a different payment ({found.describe()}; "
            f"{mismatch})"
        )
