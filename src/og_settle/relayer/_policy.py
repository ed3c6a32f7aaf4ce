"""When the relayer cuts a batch: by size, after an idle spell, or when the oldest item has waited too long."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from og_settle._errors import InvalidInput
from og_settle.relayer._states import Lane
from og_settle.relayer._store import LaneBacklog

__all__ = ["BULK_BATCH_SIZE", "BatchPolicy", "CutForecast", "Trigger"]

# One setting for very large Merkle batches (one root for up to this many inferences).
BULK_BATCH_SIZE: Final = 100_000


class Trigger:
    """Why a batch was cut (the value logged with the batch)."""

    SIZE: Final = "size"
    IDLE: Final = "idle"
    MAX_AGE: Final = "max_age"
    DRAIN: Final = "drain"


@dataclass(frozen=True, slots=True)
class CutForecast:
    """When and why the batch now waiting in a lane will be cut, if nothing else arrives.

    Attributes:
        at: Unix time at which a time trigger fires.
        trigger: which one fires first, ``Trigger.IDLE`` or ``Trigger.MAX_AGE``.
        size_in: how many more items would cut it at once (the size trigger).
    """

    at: float
    trigger: str
    size_in: int


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """The batching triggers. A lane's waiting items are cut into a batch when any trigger fires.

    Attributes:
        max_items: most leaves in one Merkle batch; a full batch is cut at once.
        idle_seconds: cut whatever waits when no item has arrived for this long.
        max_age_seconds: cut whatever waits when the oldest waiting item is this old.
        payments_per_tx: most payments in one ``settleBatch`` transaction (bounded by block gas).
        payment_max_wait_seconds: longest a payment waits for others to share its transaction. Payments carry
            deadlines (x402 ``maxTimeoutSeconds``), so they do not wait for the inference triggers.
        individual_per_tx: most individual records in one ``settleIndividualBatch`` transaction (1..256); they
            never wait for others, a batch takes whatever is waiting.
    """

    max_items: int = 20
    idle_seconds: float = 300.0
    max_age_seconds: float = 900.0
    payments_per_tx: int = 50
    payment_max_wait_seconds: float = 2.0
    individual_per_tx: int = 20

    def __post_init__(self) -> None:
        if not 1 <= self.max_items <= 2**32 - 1:
            raise InvalidInput(f"max_items: must be between 1 and 2**32-1, got {self.max_items}")
        if self.idle_seconds < 0:
            raise InvalidInput(f"idle_seconds: must not be negative, got {self.idle_seconds}")
        if self.max_age_seconds < 0:
            raise InvalidInput(f"max_age_seconds: must not be negative, got {self.max_age_seconds}")
        if self.payment_max_wait_seconds < 0:
            raise InvalidInput(f"payment_max_wait_seconds: must not be negative, got {self.payment_max_wait_seconds}")
        if not 1 <= self.payments_per_tx <= 1000:
            raise InvalidInput(f"payments_per_tx: must be between 1 and 1000, got {self.payments_per_tx}")
        if not 1 <= self.individual_per_tx <= 256:
            raise InvalidInput(f"individual_per_tx: must be between 1 and 256, got {self.individual_per_tx}")

    @classmethod
    def opengradient(cls) -> BatchPolicy:
        """OpenGradient's own relay: 20 items, 5 minutes idle, 15 minutes maximum age."""
        return cls(max_items=20, idle_seconds=300.0, max_age_seconds=900.0)

    @classmethod
    def bulk(cls, max_items: int = BULK_BATCH_SIZE) -> BatchPolicy:
        """Very large Merkle batches (100k leaves by default) with the same idle and age triggers."""
        return cls(max_items=max_items, idle_seconds=300.0, max_age_seconds=900.0)

    def capacity(self, lane: Lane) -> int:
        """Most items one transaction of ``lane`` carries."""
        if lane is Lane.BATCH:
            return self.max_items
        if lane is Lane.PAYMENT:
            return self.payments_per_tx
        if lane is Lane.PRIVATE:
            return self.max_items
        if lane is Lane.INDIVIDUAL:
            return self.individual_per_tx
        return 1  # metadata records are settled one per transaction

    def next_cut(self, backlog: LaneBacklog | None) -> CutForecast | None:
        """For a lane whose items wait (no trigger fired yet), when and why the policy will cut them; None when
        nothing waits or the lane never waits."""
        if backlog is None or backlog.count == 0 or backlog.lane in (Lane.INDIVIDUAL, Lane.METADATA, Lane.PRIVATE):
            return None
        size_in = max(self.capacity(backlog.lane) - backlog.count, 0)
        if backlog.lane is Lane.PAYMENT:
            return CutForecast(backlog.oldest_at + self.payment_max_wait_seconds, Trigger.MAX_AGE, size_in)
        by_age = backlog.oldest_at + self.max_age_seconds
        by_idle = backlog.newest_at + self.idle_seconds
        if by_age <= by_idle:
            return CutForecast(by_age, Trigger.MAX_AGE, size_in)
        return CutForecast(by_idle, Trigger.IDLE, size_in)

    def trigger(self, backlog: LaneBacklog | None, now: float, *, drain: bool = False) -> str | None:
        """Which trigger fires for ``backlog`` at Unix time ``now`` (None: keep waiting).

        Individual, metadata and private items never wait: each one is a complete settlement by itself.
        ``drain`` cuts whatever waits (used on shutdown requests and by ``--drain``).
        """
        if backlog is None or backlog.count == 0:
            return None
        if backlog.lane in (Lane.INDIVIDUAL, Lane.METADATA, Lane.PRIVATE):
            return Trigger.SIZE
        if backlog.count >= self.capacity(backlog.lane):
            return Trigger.SIZE
        if backlog.lane is Lane.PAYMENT and now - backlog.oldest_at >= self.payment_max_wait_seconds:
            return Trigger.MAX_AGE
        if now - backlog.oldest_at >= self.max_age_seconds:
            return Trigger.MAX_AGE
        if now - backlog.newest_at >= self.idle_seconds:
            return Trigger.IDLE
        if drain:
            return Trigger.DRAIN
        return None
