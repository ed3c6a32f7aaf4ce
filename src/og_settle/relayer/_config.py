"""How the relayer runs (``RelayerConfig``), the queue's tie to one deployment, and the halting error."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from og_settle._blobs import BlobStore
from og_settle._deploy import Deployment
from og_settle._errors import InvalidInput
from og_settle.relayer._policy import BatchPolicy
from og_settle.relayer._store import QueueStore

if TYPE_CHECKING:
    from og_settle.relayer._sender import SenderConfig

__all__ = ["RelayerConfig", "RelayerHalted", "bind_deployment"]


def _default_sending() -> SenderConfig:
    # here, not at import: the sender loads the chain clients (web3), which intake and status do not need
    from og_settle.relayer._sender import SenderConfig

    return SenderConfig()


class RelayerHalted(RuntimeError):
    """The relayer cannot go on without the operator (for example, it lacks the registry's relayer role)."""


@dataclass(frozen=True, slots=True)
class RelayerConfig:
    """How the relayer runs.

    Attributes:
        policy: the batching triggers.
        sending: how transactions travel: how many in flight, confirmation depth, fee bumps
            (:class:`og_settle.relayer._sender.SenderConfig`).
        poll_interval: seconds between loop iterations when there is nothing to do.
        dump_dir: where Merkle tree dumps (standard-v1 JSON, named ``<root>.json``) are written; None keeps
            them in the queue database.
        da_prefix: the on-chain data-availability pointer of a batch is this prefix followed by the root in hex.
        blob_store: a content-addressed DA store (:class:`og_settle._blobs.BlobStore`); when set, each dump is
            stored there before its batch exists, and the batch's on-chain pointer is the store's pointer to it
            (``dump_dir`` and ``da_prefix`` are then unused).
        gas_margin: the node's gas estimate is multiplied by this.
        drain: cut batches from whatever waits instead of waiting for the triggers (for catching up, tests).
        exit_when_done: stop once nothing is in flight (with ``drain``: once everything is settled).
        log_from_block: first block to search for events (payments settled by another transaction).
        lease_ttl: seconds a batch stays this instance's without renewal (several instances on one queue); a
            stopped instance's batches are taken over after this long.
        build_ahead: the most built, unsent batches this instance holds before it cuts more (None: no limit), so
            that several instances on one queue share the work instead of one cutting it all.
        stall_timeout: seconds the main loop may show no progress before the lease heartbeat stops renewing
            (the watchdog, :mod:`og_settle.relayer._fleet`); None: three times ``lease_ttl``, at least 30 s (more
            than one node call's timeout).
    """

    policy: BatchPolicy = field(default_factory=BatchPolicy)
    sending: SenderConfig = field(default_factory=_default_sending)
    poll_interval: float = 0.5
    dump_dir: Path | None = None
    da_prefix: str = "og-settle:"
    blob_store: BlobStore | None = None
    gas_margin: float = 1.25
    drain: bool = False
    exit_when_done: bool = False
    log_from_block: int = 0
    lease_ttl: float = 30.0
    build_ahead: int | None = None
    stall_timeout: float | None = None

    def __post_init__(self) -> None:
        if self.lease_ttl <= 0:
            raise InvalidInput(f"lease_ttl: must be positive, got {self.lease_ttl}")
        if self.stall_timeout is not None and self.stall_timeout <= 0:
            raise InvalidInput(f"stall_timeout: must be positive, got {self.stall_timeout}")
        if self.build_ahead is not None and self.build_ahead < 1:
            raise InvalidInput(f"build_ahead: must be at least 1, got {self.build_ahead}")

    @property
    def stall_after(self) -> float:
        """The watchdog's limit in seconds (``stall_timeout``, or its default)."""
        return self.stall_timeout if self.stall_timeout is not None else max(3 * self.lease_ttl, 30.0)


def bind_deployment(store: QueueStore, deployment: Deployment | None) -> Deployment:
    """Tie the queue to one deployment (the first time), or check it is the one it is tied to.

    A queue holds records verified for one chain and one set of contracts; settling them elsewhere would be
    wrong, so a mismatch is an error, not a silent switch."""
    stored = store.get_meta("deployment")
    if stored is None:
        if deployment is None:
            raise InvalidInput("deployment: this queue is new; pass --deployment (the file `og-settle deploy` wrote)")
        store.set_meta("deployment", deployment.to_json())
        return deployment
    bound = Deployment.from_json(stored)
    if deployment is not None and (
        bound.chain_id != deployment.chain_id
        or bound.settlement_registry != deployment.settlement_registry
        or bound.payment_facilitator != deployment.payment_facilitator
        or bound.permit2 != deployment.permit2
    ):
        raise InvalidInput(
            f"deployment: this queue settles to chain {bound.chain_id}, registry {bound.settlement_registry}, "
            f"facilitator {bound.payment_facilitator}; it cannot switch to chain {deployment.chain_id}, registry "
            f"{deployment.settlement_registry}, facilitator {deployment.payment_facilitator}"
        )
    return bound
