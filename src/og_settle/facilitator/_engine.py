"""The facilitator's settlement engine: one sending thread, one nonce manager, an optional batching window.

Callers hand :class:`SettlementJob` s to :meth:`SettlementEngine.submit` and wait on the returned future. One
thread owns the :class:`~og_settle.clients.TxSender` (so account nonces never race) and, for each transaction:

1. builds the call (one job, or every batchable job gathered within ``batch_window`` seconds);
2. estimates gas (a revert here fails the jobs with its x402 reason, or splits a batch into single sends);
3. signs (maxFeePerGas held to the cap), **writes the intent to the store** (transaction hash and raw bytes),
   then broadcasts;
4. hands the transaction to a waiter thread, which resolves each job from the receipt once it is
   ``confirmations`` deep. A transaction still unmined ``fee_bump_after`` seconds after it was sent is replaced
   within the request's time budget (``receipt_timeout``): same nonce, same call, both fees raised by the
   relayer's rules (:class:`og_settle.clients.FeeBump`: +12.5% by default, at least what a new transaction
   pays, never above ``max_fee_per_gas``). The replacement is written to the store before it is broadcast.
   Every version carries the one nonce, so at most one is mined and the payment is pulled at most once;
   whichever is mined is the transaction the answer and the store name.

A job's payment counts as settled when the receipt holds the token's ``Transfer(payer, payTo, amount)``: the
check names the whole payment (payer, recipient, token, amount), not just the Permit2 nonce, so another
transaction spending the same nonce never passes for it. No receipt within ``receipt_timeout`` answers
``pending``; the store keeps the row ``submitted`` and :meth:`SettlementEngine.resolve` finishes it later.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from og_settle._eip3009 import Eip3009Payment
from og_settle._errors import InvalidInput, InvariantViolation
from og_settle._hex import keccak256
from og_settle.clients._fees import FeeBump, broadcast_priced
from og_settle.facilitator._store import SettlementRecord, SettlementState, SettlementStore

if TYPE_CHECKING:
    from og_settle._eip2612 import Eip2612Permit
    from og_settle._x402 import PaymentPayload
    from og_settle.clients import ContractCall, Receipt, SignedTx, TxSender

__all__ = ["Outcome", "SettlementEngine", "SettlementJob"]

_TRANSFER_TOPIC: Final = keccak256(b"Transfer(address,address,uint256)")


@dataclass(frozen=True, slots=True)
class SettlementJob:
    """One payment to settle.

    Attributes:
        key: the payment's Permit2 digest, or EIP-3009 digest (the store key).
        payload: the client's payment: a Permit2 x402 payload, or an EIP-3009 payment.
        amount: what to charge (atomic units, at most the permitted amount).
        route: which call settles it: ``"facilitator"`` (PaymentFacilitator), ``"stock"`` (canonical proxies),
            ``"eip3009"`` (the token's ``transferWithAuthorization``), ...
        network: CAIP-2 network.
        permit: the payer's EIP-2612 permit for Permit2, when the payment relies on it (no allowance yet): the
            settling call applies it first, in the same transaction.
    """

    key: str
    payload: PaymentPayload | Eip3009Payment
    amount: int
    route: str
    network: str
    permit: Eip2612Permit | None = None

    @property
    def parties(self) -> tuple[str, str, str, str]:
        """``(payer, payTo, token, scheme)`` of the payment."""
        if isinstance(self.payload, Eip3009Payment):
            auth3009 = self.payload.payload.authorization
            return auth3009.owner, auth3009.to, self.payload.token, "exact"
        auth = self.payload.payload.authorization
        return auth.owner, auth.to, auth.token, auth.scheme.x402_scheme

    @property
    def permit2_payload(self) -> PaymentPayload:
        """The Permit2 payload (for the Permit2 routes' call builders)."""
        if isinstance(self.payload, Eip3009Payment):
            raise InvariantViolation(f"job {self.key}: an EIP-3009 payment on the Permit2 route {self.route!r}")
        return self.payload

    def record(self, transaction: str, raw: bytes) -> SettlementRecord:
        payer, pay_to, token, scheme = self.parties
        return SettlementRecord(
            key=self.key,
            payer=payer,
            pay_to=pay_to,
            token=token,
            network=self.network,
            scheme=scheme,
            amount=self.amount,
            state=SettlementState.SUBMITTED,
            transaction=transaction,
            raw_tx=raw,
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a settlement ended (so far).

    Attributes:
        state: ``"settled"``, ``"failed"`` or ``"pending"``.
        transaction: the transaction hash, ``""`` when nothing was sent.
        reason: the x402 reason code when not settled.
        message: a human-readable explanation when not settled.
        revert: the named revert, for the log.
    """

    state: str
    transaction: str = ""
    reason: str | None = None
    message: str | None = None
    revert: str | None = None


PENDING: Final = "pending"
CallBuilder = Callable[[Sequence[SettlementJob]], "ContractCall"]


def _hex(tx_hash: bytes) -> str:
    return "0x" + tx_hash.hex()


def _transfers(receipt: Receipt) -> dict[tuple[str, str, str, int], int]:
    """How many ERC-20 ``Transfer(from, to, value)`` logs of each (token, from, to, value) the receipt holds."""
    counts: dict[tuple[str, str, str, int], int] = {}
    for log in receipt.logs:
        topics = [bytes(t) for t in log["topics"]]
        if len(topics) != 3 or topics[0] != _TRANSFER_TOPIC:
            continue
        data = bytes(log["data"])
        key = (
            str(log["address"]).lower(),
            "0x" + topics[1][-20:].hex(),
            "0x" + topics[2][-20:].hex(),
            int.from_bytes(data[:32], "big") if len(data) >= 32 else -1,
        )
        counts[key] = counts.get(key, 0) + 1
    return counts


def _paid(record: SettlementRecord) -> tuple[str, str, str, int]:
    return (record.token.lower(), record.payer.lower(), record.pay_to.lower(), record.amount)


class SettlementEngine:
    """Sends settlements from one account. ``builders`` maps a job's route to the call that settles its jobs;
    routes in ``batchable`` are gathered for ``batch_window`` seconds (at most ``max_batch`` per transaction).
    ``fee_bump``, ``fee_bump_after`` and ``confirmations`` set how a transaction travels (module docstring);
    ``on_event(name, fields)`` hears of fee bumps."""

    def __init__(
        self,
        sender: TxSender,
        store: SettlementStore,
        builders: Mapping[str, CallBuilder],
        *,
        batchable: frozenset[str] = frozenset(),
        batch_window: float = 0.0,
        max_batch: int = 50,
        receipt_timeout: float = 20.0,
        describe_revert: Callable[[Any], tuple[str, str]] | None = None,
        describe_route: Mapping[str, Callable[[Any], tuple[str, str]]] | None = None,
        fee_bump: FeeBump | None = None,
        fee_bump_after: float = 6.0,
        confirmations: int = 1,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        if fee_bump_after <= 0:
            raise InvalidInput(f"fee_bump_after: must be positive, got {fee_bump_after}")
        if confirmations < 1:
            raise InvalidInput(f"confirmations: must be at least 1, got {confirmations}")
        self.sender = sender
        self.fee_bump = fee_bump or FeeBump()
        self.fee_bump_after = fee_bump_after
        self.confirmations = confirmations
        self._on_event = on_event

        self.store = store
        self.builders = dict(builders)
        self.batchable = batchable
        self.batch_window = batch_window
        self.max_batch = max(1, max_batch)
        self.receipt_timeout = receipt_timeout
        self._describe = describe_revert
        self._describe_route = dict(describe_route or {})
        self._queue: queue.Queue[tuple[SettlementJob, Future[Outcome]] | None] = queue.Queue()
        self._waiters = ThreadPoolExecutor(max_workers=8, thread_name_prefix="settle-wait")
        self._thread = threading.Thread(target=self._run, name="settle-send", daemon=True)
        self._resync = False
        self._started = False
        self.batches_sent = 0

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the queued jobs and the receipts being waited for, then stop."""
        if self._started:
            self._queue.put(None)
            self._thread.join(timeout)
        self._waiters.shutdown(wait=True, cancel_futures=False)

    def submit(self, job: SettlementJob) -> Future[Outcome]:
        future: Future[Outcome] = Future()
        self._queue.put((job, future))
        return future

    # -- the sending thread ------------------------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is None:
                break
            gathered = [item]
            if item[0].route in self.batchable and self.batch_window > 0:
                deadline = time.monotonic() + self.batch_window
                while len(gathered) < self.max_batch:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    try:
                        more = self._queue.get(timeout=left)
                    except queue.Empty:
                        break
                    if more is None:
                        stopping = True
                        break
                    gathered.append(more)
            groups: dict[tuple[str, str, str], list[tuple[SettlementJob, Future[Outcome]]]] = {}
            singles: list[list[tuple[SettlementJob, Future[Outcome]]]] = []
            for job, future in gathered:
                if job.route in self.batchable:  # one transaction settles one route, scheme and token
                    _, _, token, scheme = job.parties
                    key = (job.route, scheme, token)
                    groups.setdefault(key, []).append((job, future))
                else:
                    singles.append([(job, future)])
            for group in [*groups.values(), *singles]:
                self._send(group)

    def _fail_all(self, group: Sequence[tuple[SettlementJob, Future[Outcome]]], outcome: Outcome) -> None:
        for _, future in group:
            if not future.done():
                future.set_result(outcome)

    def _send(self, group: list[tuple[SettlementJob, Future[Outcome]]]) -> None:
        from og_settle.clients import BroadcastOutcome, ContractRevert

        jobs = [job for job, _ in group]
        try:
            call = self.builders[jobs[0].route](jobs)
            if self._resync:
                self.sender.resync_nonce()
                self._resync = False
            try:
                gas = self.sender.estimate_gas(call)
            except ContractRevert as revert:
                if len(group) > 1:  # one bad item must not sink the batch: settle each on its own
                    for single in group:
                        self._send([single])
                    return
                reason, message = self._explain(revert.error, jobs[0].route)
                self._fail_all(group, Outcome("failed", reason=reason, message=message, revert=str(revert.error)))
                return
            fees = self.fee_bump.cap(self.sender.fees())
            signed = self.sender.sign(call, nonce=self.sender.next_nonce(), gas=gas, fees=fees)
            self.store.put_submitted([job.record(_hex(signed.tx_hash), signed.raw) for job in jobs])
            outcome = self.sender.broadcast(signed.raw)
            if outcome == BroadcastOutcome.NONCE_USED:
                for job in jobs:
                    self.store.mark(job.key, SettlementState.FAILED, "nonce_conflict")
                self.sender.resync_nonce()
                signed = self.sender.sign(call, nonce=self.sender.next_nonce(), gas=gas, fees=fees)
                self.store.put_submitted([job.record(_hex(signed.tx_hash), signed.raw) for job in jobs])
                self.sender.broadcast(signed.raw)
            self.sender.nonce_used(signed.nonce)
            self.batches_sent += 1
        except Exception as err:
            # The account's next nonce is unknown after a failed send: take the chain's count next time.
            self._resync = True
            for _, future in group:
                if not future.done():
                    future.set_exception(err)
            return
        self._waiters.submit(self._finish, group, call, signed)

    def _explain(self, error: Any, route: str | None = None) -> tuple[str, str]:
        from og_settle.clients import x402_reason

        if route is not None and route in self._describe_route:
            return self._describe_route[route](error)
        if self._describe is not None:
            return self._describe(error)
        return x402_reason(error), f"the settlement would revert: {error}"

    # -- receipts ----------------------------------------------------------------------------------------------

    def _finish(self, group: list[tuple[SettlementJob, Future[Outcome]]], call: ContractCall, signed: SignedTx) -> None:
        try:
            receipt, tx_hash = self._watch([(signed.tx_hash, signed.raw)], timeout=self.receipt_timeout)
            records = [job.record(_hex(tx_hash), b"") for job, _ in group]
            outcomes = self._judge(records, receipt, call, group[0][0].route)
            for (_, future), outcome in zip(group, outcomes, strict=True):
                future.set_result(outcome)
        except Exception as err:
            for _, future in group:
                if not future.done():
                    future.set_exception(err)

    def _watch(
        self, versions: list[tuple[bytes, bytes]], *, timeout: float, age: float = 0.0, poll: float = 0.1
    ) -> tuple[Receipt | None, bytes]:
        """Wait up to ``timeout`` seconds for a version (hash, raw) of one transaction to be mined
        ``confirmations`` deep, replacing the newest with higher fees each time it stays unmined
        ``fee_bump_after`` seconds. Returns the receipt (None at the deadline) and the hash of the version it is
        for (the newest, when None). ``age``: seconds since the newest was signed."""
        deadline = time.monotonic() + timeout
        sent_at = time.monotonic() - age
        while True:
            receipt = self._mined(versions)
            if receipt is not None:
                if self.sender.confirmations(receipt) >= self.confirmations:
                    return receipt, receipt.tx_hash
            elif time.monotonic() - sent_at >= self.fee_bump_after and self._bump(versions):
                sent_at = time.monotonic()
            if time.monotonic() >= deadline:
                return None, versions[-1][0]
            time.sleep(poll)

    def _mined(self, versions: Sequence[tuple[bytes, bytes]]) -> Receipt | None:
        for tx_hash, _ in reversed(versions):
            receipt = self.sender.receipt(tx_hash)
            if receipt is not None:
                if tx_hash != versions[-1][0]:  # an earlier version was mined: the store names it again
                    self.store.replace_transaction(_hex(versions[-1][0]), _hex(tx_hash), dict(versions)[tx_hash])
                return receipt
        return None

    def _bump(self, versions: list[tuple[bytes, bytes]]) -> bool:
        """Replace the newest version with higher fees (written to the store, then broadcast); False at the cap."""
        from eth_account import Account

        from og_settle.clients import is_connection_error, tx_fees

        old_hash, old_raw = versions[-1]
        if Account.recover_transaction(old_raw).lower() != self.sender.address.lower():
            return False  # another instance's (a shared store): only its key may replace it
        replaced = self.fee_bump.replace(self.sender.account, old_raw, self.sender.fees())
        if replaced is None:
            return False
        raw, tx_hash = replaced
        self.store.replace_transaction(_hex(old_hash), _hex(tx_hash), raw)
        versions.append((tx_hash, raw))
        try:
            outcome = broadcast_priced(self.sender, raw)
        except Exception as err:  # refused (say, "replacement underpriced"): the earlier versions still stand
            if is_connection_error(err):
                raise
            outcome = f"refused: {str(err)[:200]}"
        if self._on_event is not None:
            old_fees, fees = tx_fees(old_raw), tx_fees(raw)
            self._on_event(
                "settle.fee_bumped",
                {
                    "tx": _hex(tx_hash),
                    "replaces": _hex(old_hash),
                    "max_fee": fees[0],
                    "tip": fees[1],
                    "old_max_fee": old_fees[0],
                    "old_tip": old_fees[1],
                    "outcome": str(outcome),
                },
            )
        return True

    def _judge(
        self,
        records: Sequence[SettlementRecord],
        receipt: Receipt | None,
        call: ContractCall | None,
        route: str | None = None,
    ) -> list[Outcome]:
        """Each record's outcome from its transaction's receipt (None: not mined yet); stores final states."""
        if not records:
            return []
        transaction = records[0].transaction
        if receipt is None:
            return [
                Outcome(PENDING, transaction, "settlement_pending", f"no receipt for {transaction} yet")
                for _ in records
            ]
        if not receipt.succeeded:
            reason, message, revert = "transaction_failed", f"transaction {transaction} reverted", None
            if call is not None and len(records) == 1:
                error = self.sender.replay_revert(call, receipt)
                reason, message = self._explain(error, route)
                revert = str(error)
            for record in records:
                self.store.mark(record.key, SettlementState.FAILED, reason)
            return [Outcome("failed", transaction, reason, message, revert) for _ in records]
        available = _transfers(receipt)
        outcomes = []
        for record in records:
            paid = _paid(record)
            if available.get(paid, 0) > 0:
                available[paid] -= 1
                self.store.mark(record.key, SettlementState.SETTLED)
                outcomes.append(Outcome("settled", transaction))
            else:
                reason = "permit2_simulation_failed"
                self.store.mark(record.key, SettlementState.FAILED, reason)
                message = f"transaction {transaction} mined without transferring {record.amount} to {record.pay_to}"
                outcomes.append(Outcome("failed", transaction, reason, message))
        return outcomes

    def resolve(self, record: SettlementRecord, *, wait: float) -> Outcome:
        """The outcome of a stored ``submitted`` record: its receipt once ``confirmations`` deep (any version of
        it: the stored one or one it replaced), waiting up to ``wait`` seconds, during which a transaction still
        unmined is sent again and replaced with higher fees as in the first request; else ``pending``. A
        transaction that can no longer be mined (its account nonce went to another) fails, so that the payment
        can be settled anew."""
        from og_settle.clients import BroadcastOutcome

        tx_hash = bytes.fromhex(record.transaction.removeprefix("0x"))
        receipt = self.sender.receipt(tx_hash)
        for earlier in [] if receipt is not None else self.store.earlier_transactions(record.transaction):
            # A fee bump replaced it: the version replaced may be the one mined (the same nonce: at most one is).
            receipt = self.sender.receipt(bytes.fromhex(earlier.removeprefix("0x")))
            if receipt is not None:
                self.store.replace_transaction(record.transaction, earlier, b"")
                record = dataclasses.replace(record, transaction=earlier, raw_tx=b"")
                tx_hash = receipt.tx_hash
                break
        if (
            receipt is None
            and record.raw_tx
            and broadcast_priced(self.sender, record.raw_tx) == BroadcastOutcome.NONCE_USED
        ):
            receipt = self.sender.receipt(tx_hash)
            if receipt is None:
                self.store.mark(record.key, SettlementState.FAILED, "transaction_dropped")
                return Outcome("failed", record.transaction, "transaction_dropped", "the transaction was dropped")
        if receipt is None and wait > 0 and record.raw_tx:
            # Still unmined: wait as the first request did, replacing it with higher fees while it stays stuck.
            age = max(0.0, time.time() - record.updated_at)  # when it was signed (written before broadcast)
            receipt, mined = self._watch([(tx_hash, record.raw_tx)], timeout=wait, age=age)
            if receipt is not None and mined != tx_hash:
                record = dataclasses.replace(record, transaction=_hex(mined))
        elif receipt is None and wait > 0:
            receipt = self.sender.wait(tx_hash, timeout=wait, confirmations=self.confirmations)
        elif receipt is not None and self.sender.confirmations(receipt) < self.confirmations:
            mined_hash = receipt.tx_hash  # not deep enough yet: pending, unless it gets there within ``wait``
            receipt = (
                None if wait <= 0 else self.sender.wait(mined_hash, timeout=wait, confirmations=self.confirmations)
            )
        siblings = [r for r in self.store.by_transaction(record.transaction) if r.state != SettlementState.FAILED]
        if receipt is not None and len(siblings) > 1:
            # Judge the whole transaction's records together, so identical transfers are counted once each.
            outcomes = self._judge(siblings, receipt, None)
            return next(o for r, o in zip(siblings, outcomes, strict=True) if r.key == record.key)
        return self._judge([record], receipt, None)[0]
