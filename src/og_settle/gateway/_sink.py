"""Where settled inferences go: the relayer's durable queue (``batch``, ``individual``, ``metadata`` modes).

The gateway builds one relayer intake record per inference (see :mod:`og_settle.relayer._intake` for the
format) and hands it to a :class:`SettlementSink`. :class:`RelayerQueueSink` writes it into the relayer's queue
(an SQLite file or a PostgreSQL database), the same one ``og-settle relayer submit`` fills and ``og-settle relayer
run`` drains, through the relayer's own intake, so every check the relayer makes at intake is made here, before the
client is charged.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from og_settle._errors import InvalidInput

if TYPE_CHECKING:
    from og_settle._deploy import Deployment
    from og_settle.tee import TeePublicKey

__all__ = ["RelayerQueueSink", "SettlementSink", "SinkReceipt"]


@dataclass(frozen=True, slots=True)
class SinkReceipt:
    """What queuing a record gave back.

    Attributes:
        item_id: the queue's id for the item.
        key: its idempotency key (a batch leaf's hash, an individual or metadata record's digest), ``0x`` hex.
        duplicate: whether the same record was queued before.
    """

    item_id: int
    key: str | None
    duplicate: bool


class SettlementSink(Protocol):
    """Accepts inference records for on-chain settlement."""

    def check(self, record: Mapping[str, Any]) -> None:
        """Raise InvalidInput if the record would be refused (called before the client is charged)."""
        ...

    async def submit(self, record: Mapping[str, Any]) -> SinkReceipt:
        """Queue the record durably; raise InvalidInput if it is refused."""
        ...

    def close(self) -> None:
        """Release the queue."""
        ...


class RelayerQueueSink:
    """Queues records in the relayer's queue at ``db`` (an SQLite file or a ``postgresql://`` URL, as ``relayer
    submit --db`` takes) for the ``deployment``'s contracts. The queue is tied to that deployment (the first time)
    as ``relayer submit`` ties it; a queue tied to another one is refused (``InvalidInput``, one line)."""

    def __init__(
        self, db: str | os.PathLike[str], deployment: Deployment, *, tee_keys: Iterable[TeePublicKey] = ()
    ) -> None:
        from og_settle.relayer import IntakeConfig, StaticTeeDirectory, bind_deployment, open_store

        self._store = open_store(db)
        try:  # the queue settles to this deployment only, as ``relayer submit`` ties it (another one is refused)
            bind_deployment(self._store, deployment)
        except BaseException:
            self._store.close()
            raise
        # Intake checks each leaf's signer; the gateway vouches for its own TEE's key (``tee_keys``). A leaf whose key
        # is not among them is refused.
        self._config = IntakeConfig(deployment=deployment, tee_directory=StaticTeeDirectory(tee_keys))
        self._lock = threading.Lock()

    def check(self, record: Mapping[str, Any]) -> None:
        from og_settle.relayer import parse_record

        parse_record(dict(record), self._config, source="gateway")

    def _submit(self, line: str) -> SinkReceipt:
        from og_settle.relayer import submit_records

        with self._lock:
            (report,) = list(submit_records(self._store, [line], self._config, name="gateway"))
        if report.status == "rejected":
            raise InvalidInput(f"relayer intake refused the record: {report.detail}")
        key = None if report.key is None else "0x" + bytes(report.key).hex()
        return SinkReceipt(item_id=int(report.item_id), key=key, duplicate=report.status == "duplicate")

    async def submit(self, record: Mapping[str, Any]) -> SinkReceipt:
        return await asyncio.to_thread(self._submit, json.dumps(dict(record), separators=(",", ":")))

    def close(self) -> None:
        with self._lock:
            self._store.close()
