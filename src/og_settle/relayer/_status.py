"""``og-settle relayer status``: counts by state, the oldest record in flight, the last transaction, and the fleet:
the relayer accounts seen and the upto payments waiting for an account no instance has run with."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from og_settle._hex import to_hex
from og_settle.relayer._store import QueueStatus, QueueStore

__all__ = ["FleetStatus", "fleet_status", "format_status", "status_json"]


@dataclass(frozen=True, slots=True)
class FleetStatus:
    """The relayer instances a queue has seen, and who its waiting upto payments name.

    Attributes:
        accounts: every relayer account an instance started with: address -> ``{"instance", "started_at"}``.
        upto_waiting: received upto payments by the account that must settle them (lower-case address).
    """

    accounts: Mapping[str, Mapping[str, Any]]
    upto_waiting: Mapping[str, int]

    def unserved(self) -> dict[str, int]:
        """The waiting upto payments naming an account no instance has started with (none when no account is
        known: then nothing can be said)."""
        if not self.accounts:
            return {}
        known = {address.lower() for address in self.accounts}
        return {account: n for account, n in self.upto_waiting.items() if account not in known}


def fleet_status(store: QueueStore) -> FleetStatus:
    """What the queue knows of its relayer instances."""
    return FleetStatus(accounts=store.relayer_accounts(), upto_waiting=store.upto_waiting())


def status_json(status: QueueStatus, *, now: float | None = None, fleet: FleetStatus | None = None) -> dict[str, Any]:
    """The status as one JSON object (what ``relayer status --json`` prints)."""
    current = time.time() if now is None else now
    extra: dict[str, Any] = {}
    if fleet is not None:
        extra["relayers"] = [
            {"address": address, "instance": info.get("instance"), "started_at": info.get("started_at")}
            for address, info in sorted(fleet.accounts.items())
        ]
        extra["upto_waiting"] = dict(fleet.upto_waiting)
        extra["upto_unserved"] = fleet.unserved()
    oldest = status.oldest_pending
    last = status.last_transaction
    return {
        "items": dict(sorted(status.items_by_state.items())),
        "items_by_lane": {lane: dict(sorted(c.items())) for lane, c in sorted(status.items_by_lane_and_state.items())},
        "batches": dict(sorted(status.batches_by_state.items())),
        "in_flight": status.in_flight,
        "oldest_pending": None
        if oldest is None
        else {
            "item": oldest.id,
            "lane": None if oldest.lane is None else oldest.lane.value,
            "state": oldest.state.value,
            "source": oldest.source,
            "age_seconds": round(current - oldest.received_at, 1),
        },
        "last_transaction": None
        if last is None
        else {
            "tx_hash": to_hex(last.tx_hash),
            "batch": last.batch_id,
            "nonce": last.nonce,
            "state": last.state,
            "block": last.block_number,
            "gas_used": last.gas_used,
            "age_seconds": round(current - last.created_at, 1),
        },
        "failure_reasons": dict(status.failure_reasons),
        **extra,
    }


def format_status(status: QueueStatus, *, now: float | None = None, fleet: FleetStatus | None = None) -> str:
    """The status for a terminal."""
    data = status_json(status, now=now, fleet=fleet)
    lines = ["items:    " + (", ".join(f"{k} {v}" for k, v in data["items"].items()) or "none")]
    for lane, counts in data["items_by_lane"].items():
        lines.append(f"  {lane:<10} " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    lines.append("batches:  " + (", ".join(f"{k} {v}" for k, v in data["batches"].items()) or "none"))
    oldest = data["oldest_pending"]
    if oldest is None:
        lines.append("oldest pending: none (nothing in flight)")
    else:
        lines.append(
            f"oldest pending: item {oldest['item']} ({oldest['lane']}, {oldest['state']}, from {oldest['source']}), "
            f"{oldest['age_seconds']:.0f}s old"
        )
    last = data["last_transaction"]
    if last is None:
        lines.append("last transaction: none")
    else:
        block = "" if last["block"] is None else f", block {last['block']}, gas {last['gas_used']}"
        lines.append(
            f"last transaction: {last['tx_hash']} (batch {last['batch']}, nonce {last['nonce']}, {last['state']}"
            f"{block}), {last['age_seconds']:.0f}s ago"
        )
    if data["failure_reasons"]:
        lines.append("failures and rejections by reason:")
        for reason, count in data["failure_reasons"].items():
            lines.append(f"  {count:>6}  {reason[:160]}")
    if data.get("relayers"):
        lines.append(
            "relayers: " + ", ".join(f"{r['address']} ({r['instance'] or 'older og-settle'})" for r in data["relayers"])
        )
    for account, count in data.get("upto_unserved", {}).items():
        lines.append(
            f"warning: {count} upto payment(s) wait for relayer account {account}, which no instance has run with;"
            " start one with its key, or they fail once their Permit2 deadline passes"
        )
    return "\n".join(lines)
