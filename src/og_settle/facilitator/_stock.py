"""The StockPaymentBatcher route: stock x402 payloads settled in batches through the canonical proxies.

:func:`stock_route` wraps the ``clients`` StockPaymentBatcher client as a
:class:`~og_settle.facilitator.StockRoute`: the batcher is the upto ``facilitatorAddress``, and each settlement
transaction carries the payments the engine gathered (one scheme and token per transaction).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from og_settle.facilitator._protocol import StockRoute

if TYPE_CHECKING:
    from og_settle.clients import ContractCall
    from og_settle.facilitator._engine import SettlementJob

__all__ = ["stock_route"]


def stock_route(w3: Any, batcher: str, chain_id: int) -> StockRoute:
    """The route through the StockPaymentBatcher at ``batcher`` on ``chain_id``."""
    from og_settle.clients import StockPayment, StockPaymentBatcherClient

    client = StockPaymentBatcherClient(w3, batcher)

    def build(jobs: Sequence[SettlementJob]) -> ContractCall:
        payments = [
            StockPayment.from_x402(
                job.permit2_payload, dataclasses.replace(job.permit2_payload.accepted, amount=job.amount)
            )
            for job in jobs
        ]
        # First-time payers' EIP-2612 permits ride along (settleWithPermits); one per payer is enough.
        permits = list({job.permit.owner: job.permit for job in jobs if job.permit is not None}.values())
        return client.settle_call(payments, chain_id=chain_id, permits=permits)

    return StockRoute(batcher=client.address, build=build)


def settles_through(w3: Any, batcher: str, account: str) -> bool:
    """Whether ``account`` may call the StockPaymentBatcher at ``batcher`` (its settler role)."""
    from og_settle.clients import StockPaymentBatcherClient

    return bool(StockPaymentBatcherClient(w3, batcher).is_settler(account))
