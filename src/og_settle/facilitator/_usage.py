"""Usage records: every ``/verify`` and ``/settle`` an API key made, and the totals ``GET /usage`` reports.

Each request is one :class:`UsageRecord` in the facilitator's store: the key, the endpoint, the outcome
(``valid``/``invalid`` for verify; ``settled``/``failed``/``pending``/``error`` for settle; ``rate_limited`` or
``over_quota`` for a 429), the payment's payer, payTo, asset, amount and scheme, and for a settlement its
transaction and block. Settled amounts are totalled over the settled records, one per payment id, so a
replayed ``/settle`` that answers the first transaction is a request in the counts but not a second payment.
(A payment whose ``settlement_pending`` is resolved only through ``GET /settle/status``, never by a retried
``/settle``, counts as pending.)

Periods are half-open ``[from, to)`` in ISO 8601 (``2026-11-29``, ``2026-11-29T12:00:00Z``; a time without an
offset is UTC).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from og_settle._errors import InvalidInput
from og_settle._time import iso_utc, parse_iso

__all__ = ["UsageRecord", "usage_totals", "write_records"]

GROUPS: Final = ("payer", "payTo")
RECORD_FIELDS: Final = (
    "time",
    "key",
    "endpoint",
    "outcome",
    "reason",
    "payer",
    "payTo",
    "asset",
    "amount",
    "scheme",
    "network",
    "transaction",
    "block",
    "paymentId",
)


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One ``/verify`` or ``/settle`` request.

    Attributes:
        at: Unix time of the answer.
        key: the API key's name (``""`` without authentication).
        endpoint: ``"verify"`` or ``"settle"``.
        outcome: what happened (see the module description).
        reason: the x402 reason code or limit message, when not a success.
        payer, pay_to, asset, amount, scheme, network: the payment, as far as the request named it.
        transaction: the settling transaction, if any.
        block: its block, once mined.
        payment_id: the facilitator's payment id, if known.
    """

    at: float
    key: str
    endpoint: str
    outcome: str
    reason: str | None = None
    payer: str | None = None
    pay_to: str | None = None
    asset: str | None = None
    amount: int | None = None
    scheme: str | None = None
    network: str | None = None
    transaction: str | None = None
    block: int | None = None
    payment_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "time": iso_utc(self.at, milliseconds=False),
            "key": self.key,
            "endpoint": self.endpoint,
            "outcome": self.outcome,
            "reason": self.reason,
            "payer": self.payer,
            "payTo": self.pay_to,
            "asset": self.asset,
            "amount": None if self.amount is None else str(self.amount),
            "scheme": self.scheme,
            "network": self.network,
            "transaction": self.transaction,
            "block": self.block,
            "paymentId": self.payment_id,
        }


def parse_period(start: str | None, end: str | None, *, now: float) -> tuple[float, float]:
    """``[from, to)`` from optional ISO 8601 bounds (default: everything up to now); InvalidInput if reversed."""
    begin = 0.0 if start is None else parse_iso(start, "from")
    finish = now if end is None else parse_iso(end, "to")
    if finish < begin:
        raise InvalidInput(
            f"to: {iso_utc(finish, milliseconds=False)} is before from: {iso_utc(begin, milliseconds=False)}"
        )
    return begin, finish


def parse_groups(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    groups = tuple(part.strip() for part in text.split(",") if part.strip())
    for group in groups:
        if group not in GROUPS:
            raise InvalidInput(f"group: expected a comma-separated subset of {', '.join(GROUPS)}, got {group!r}")
    return groups


def usage_totals(
    key: str | None, begin: float, end: float, records: Iterable[UsageRecord], groups: Sequence[str] = ()
) -> dict[str, Any]:
    """The ``GET /usage`` body: request counts per endpoint and outcome, and settled payments and amounts per
    network and asset (and per payer and/or payTo when ``groups`` names them)."""
    requests: dict[str, dict[str, int]] = {"verify": {}, "settle": {}}
    settled: dict[tuple[str, ...], list[int]] = {}
    seen: set[tuple[Any, ...]] = set()
    for record in records:
        counts = requests.setdefault(record.endpoint, {})
        counts[record.outcome] = counts.get(record.outcome, 0) + 1
        if record.endpoint != "settle" or record.outcome != "settled":
            continue
        payment = (record.payment_id,) if record.payment_id else (record.transaction, record.payer, record.amount)
        if payment in seen:
            continue
        seen.add(payment)
        group: tuple[str, ...] = (str(record.network), str(record.asset))
        group += tuple(str(record.payer if g == "payer" else record.pay_to) for g in groups)
        totals = settled.setdefault(group, [0, 0])
        totals[0] += 1
        totals[1] += record.amount or 0
    rows = []
    for group, (payments, amount) in sorted(settled.items()):
        row: dict[str, Any] = {"network": group[0], "asset": group[1]}
        row.update(zip(groups, group[2:], strict=True))
        row.update(payments=payments, amount=str(amount))
        rows.append(row)
    return {
        "key": key,
        "from": iso_utc(begin, milliseconds=False),
        "to": iso_utc(end, milliseconds=False),
        "requests": requests,
        "settled": rows,
    }


def write_records(rows: Sequence[dict[str, Any]], fmt: str) -> str:
    """Rows (JSON objects with the same keys) as JSON lines or CSV (header first)."""
    if fmt == "jsonl":
        return "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows)
    out = io.StringIO()
    names = list(rows[0]) if rows else list(RECORD_FIELDS)
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()
