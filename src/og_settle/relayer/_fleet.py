"""Several relayer instances on one queue: which instance builds on and sends which batch.

Each instance (``relayer run`` process) has an id (``--instance-id``; by default its signer's address and
host) and signs with its own key, so nonces never need sharing: a transaction's nonce belongs to the key that
signed it. Work is split by leases in the queue (PostgreSQL; see ``PostgresStore``):

- received items are *claimed* (``FOR UPDATE SKIP LOCKED``) by the instance that batches them, so two
  instances never put one item in two batches;
- a batch is held by the instance that built it, for ``lease_ttl`` seconds at a time, renewed every round;
  only its holder signs, confirms, reopens or fails it;
- a batch whose lease ran out (its holder was killed, or stalled longer than the lease) is *adopted* by another
  instance, which draws a larger fencing token. Every change the old holder then tries on that batch is
  refused (``LeaseLost``), so a late instance cannot sign the batch again or overwrite its outcome;
- an adopted batch may carry a transaction signed by the old holder's key. The adopter treats it like its own
  after a restart: it asks for a receipt, compares the old key's mined nonce, rebroadcasts the same signed
  bytes, or (the nonce was used by another transaction) signs the batch again with its own key;
- a restarted instance (same id) takes its own batches back at once instead of waiting for their leases to run
  out (``reclaim``): one process per id, because the id names the signer and a signer is leased to one process;
- the heartbeat renews only while the main loop shows progress (a watchdog): a loop that made no progress for
  ``stall_after`` seconds (a call blocked without a timeout, a deadlock) is *stalled*. Then the heartbeat stops
  renewing, logs ``relayer.stalled`` and calls ``on_stall`` (``relayer run`` exits 4 there, for a supervisor to
  restart it), so the stalled instance's batches are adopted instead of being held forever. Waiting for a node
  that is down is progress (every retry counts), so a node outage alone does not give batches away.

An SQLite queue has one relayer: the store holds every batch for it, and ``relayer run`` refuses a second.

Payments that can no longer settle: a received payment whose Permit2 deadline passed (more than
``EXPIRY_MARGIN`` seconds ago, for clock skew between hosts and the chain) is failed with
:data:`EXPIRED_REASON` by whichever instance sweeps first (:class:`PaymentExpiry`, every ``EXPIRY_EVERY``
seconds), under the claim rules (``QueueStore.expire_payments``): a payment another instance claimed is left to it.
That covers an upto payment naming an account no instance runs, which no instance may claim. Payments already in a
batch are checked by their batch's holder before it signs (the engine's ``_drop_unsettleable``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from og_settle.relayer._log import EventLog
from og_settle.relayer._states import BatchState
from og_settle.relayer._store import QueueStore

__all__ = ["EXPIRED_REASON", "EXPIRY_EVERY", "EXPIRY_MARGIN", "LeaseKeeper", "PaymentExpiry"]

_OPEN = (BatchState.SUBMITTED, BatchState.BUILT)
# The most batches taken over from stopped instances in one round: the rest wait for the next round (or for
# another instance), so one instance does not hoard a dead instance's backlog.
_ADOPT_PER_ROUND = 2
EXPIRY_MARGIN = 60.0
EXPIRY_EVERY = 30.0
EXPIRED_REASON = (
    f"permit2_deadline_expired: the payment's Permit2 deadline passed (by more than {EXPIRY_MARGIN:.0f} s) before "
    "a relayer settled it"
)


class LeaseKeeper:
    """Keeps this instance's batch leases: takes its own back at start, renews them every round, and adopts
    batches other instances stopped holding."""

    def __init__(self, store: QueueStore, log: EventLog, *, ttl: float) -> None:
        self.store = store
        self.log = log
        self.ttl = ttl

    def reclaim(self) -> int:
        """At start: take back the unfinished batches this instance id held before it stopped. Returns how many."""
        leases = self.store.claim_batches(_OPEN, 1_000_000, ttl=self.ttl, reclaim=True)
        if leases:
            self.log.info("lease.reclaimed", batches=[lease.batch.id for lease in leases])
        return len(leases)

    def renew(self) -> None:
        """Extend every lease held; log the batches another instance took over meanwhile."""
        for batch_id in self.store.renew_leases(ttl=self.ttl):
            self.log.warning("lease.lost", batch=batch_id, note="another instance took the batch over")

    def heartbeat(
        self,
        stop: threading.Event,
        *,
        progress: Callable[[], float] | None = None,
        stall_after: float | None = None,
        on_stall: Callable[[], None] | None = None,
    ) -> threading.Thread:
        """Renew the leases every third of ``ttl`` from a thread of their own until ``stop`` is set, so that a
        long step (a slow node, a node outage) does not cost a live instance its batches: only a stopped process
        (killed, crashed, or cut off from the queue's database) lets them run out.

        The watchdog: with ``progress`` (the ``time.monotonic()`` of the main loop's last sign of life), once it
        is more than ``stall_after`` seconds old the leases are renewed no more, ``relayer.stalled`` is logged and
        ``on_stall`` called; the leases then run out within ``ttl`` and other instances adopt the batches. It
        watches from a thread of its own, so a renewal stuck on the database (the main loop may hold the store's
        connection in a hung query) does not keep it from acting."""
        stalled = threading.Event()

        def beat() -> None:
            while not stop.wait(self.ttl / 3) and not stalled.is_set():
                try:
                    self.renew()
                except Exception as err:  # the database is unreachable: the leases run out, as for a dead one
                    self.log.warning("lease.renew_failed", error=str(err)[:200])

        def watch(last_tick: Callable[[], float], limit: float) -> None:
            while not stop.wait(min(self.ttl, limit) / 3):
                idle = time.monotonic() - last_tick()
                if idle > limit:
                    stalled.set()
                    self.log.error(
                        "relayer.stalled",
                        idle_s=round(idle, 1),
                        stall_timeout_s=limit,
                        note="the main loop made no progress: leases are no longer renewed, so other instances "
                        "adopt this instance's batches; restart it",
                    )
                    if on_stall is not None:
                        on_stall()
                    return

        if progress is not None and stall_after is not None:
            threading.Thread(target=watch, args=(progress, stall_after), name="lease-watchdog", daemon=True).start()
        thread = threading.Thread(target=beat, name="lease-heartbeat", daemon=True)
        thread.start()
        return thread

    def adopt(self, *, room: bool) -> bool:
        """Take over batches whose holder stopped renewing them, when this instance has ``room`` for more
        transactions in flight. True when it took any."""
        if not room:
            return False
        leases = self.store.claim_batches(_OPEN, _ADOPT_PER_ROUND, ttl=self.ttl)
        for lease in leases:
            self.log.info("lease.adopted", batch=lease.batch.id, state=lease.batch.state.value, fence=lease.fence)
        return bool(leases)


class PaymentExpiry:
    """Fails the received payments whose Permit2 deadline has passed, every ``every`` seconds (the first time at
    once)."""

    def __init__(
        self, store: QueueStore, log: EventLog, *, margin: float = EXPIRY_MARGIN, every: float = EXPIRY_EVERY
    ) -> None:
        self.store = store
        self.log = log
        self.margin = margin
        self.every = every
        self._next = 0.0

    def sweep(self) -> bool:
        """Fail what expired (when due); True when any payment was failed."""
        if time.monotonic() < self._next:
            return False
        self._next = time.monotonic() + self.every
        now = time.time()
        failed = self.store.expire_payments(int(now - self.margin), EXPIRED_REASON, now=now)
        if failed:
            self.log.warning("payment.expired", count=len(failed), items=failed[:50], reason=EXPIRED_REASON)
        return bool(failed)
