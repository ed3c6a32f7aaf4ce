"""``og-settle relayer status``: counts by state, the oldest record in flight, and the last transaction."""

from __future__ import annotations

import time
from typing import Any

from og_settle._hex import to_hex
from og_settle.relayer._store import QueueStatus

__all__ = ["format_status", "status_json"]


def status_json(status: QueueStatus, *, now: float | None = None) -> dict[str, Any]:
    """The status as one JSON object (what ``relayer status --json`` prints)."""
    current = time.time() if now is None else now
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
    }


def format_status(status: QueueStatus, *, now: float | None = None) -> str:
    """The status for a terminal."""
    data = status_json(status, now=now)
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
    return "\n".join(lines)
