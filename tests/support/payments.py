"""PaymentFacilitator's PaymentSettled events in an Ape receipt (their data is packed, so Ape cannot decode it)."""

from __future__ import annotations

from typing import Any

from og_settle.clients import SettledPayment


def settled_events(facilitator: Any, tx: Any) -> list[SettledPayment]:
    """The PaymentSettled events ``facilitator`` emitted in ``tx``, decoded by the client's decoder, in order."""
    found = []
    for log in tx.logs:
        if str(log["address"]).lower() == str(facilitator.address).lower():
            event = SettledPayment.from_log(log)
            if event is not None:
                found.append(event)
    return found
