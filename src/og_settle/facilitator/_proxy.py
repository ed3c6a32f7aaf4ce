"""Direct calls to the canonical x402 Permit2 proxies, for stock payloads when no StockPaymentBatcher is used.

The exact proxy's ``settle(permit, owner, witness, signature)`` may be called by anyone (built by
:func:`og_settle.clients.exact_proxy_call`); the upto proxy's ``settle(permit, amount, owner, witness,
signature)`` only by ``witness.facilitator``, which is then this server's own account (the
``facilitatorAddress`` announced in ``/supported``). The upto call is encoded here with eth-abi from the
interface in ``contracts/interfaces/IX402Permit2Proxy.sol``; nothing depends on the replica's stand-ins.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from eth_abi.abi import encode

from og_settle._hex import keccak256
from og_settle._networks import X402_UPTO_PERMIT2_PROXY

if TYPE_CHECKING:
    from og_settle.clients import ContractCall
    from og_settle.facilitator._engine import SettlementJob

__all__ = ["proxy_settle_call"]

_PERMIT: Final = "((address,uint256),uint256,uint256)"
_UPTO: Final = f"settle({_PERMIT},uint256,address,(address,address,uint256),bytes)"


def proxy_settle_call(jobs: Sequence[SettlementJob]) -> ContractCall:
    """The proxy ``settle`` call for one stock payment (exact: the permitted amount; upto: the charge)."""
    from og_settle.clients import ContractCall, StockPayment, exact_proxy_call

    (job,) = jobs
    payment = StockPayment.from_x402(
        job.permit2_payload, dataclasses.replace(job.permit2_payload.accepted, amount=job.amount)
    )
    if payment.scheme == "exact":
        return exact_proxy_call(payment)
    permit = ((payment.token, payment.permitted), payment.nonce, payment.deadline)
    witness = (payment.to, payment.facilitator, payment.valid_after)
    types = [_PERMIT, "uint256", "address", "(address,address,uint256)", "bytes"]
    data = keccak256(_UPTO.encode())[:4] + encode(
        types, [permit, payment.charge, payment.owner, witness, payment.signature]
    )
    return ContractCall(
        X402_UPTO_PERMIT2_PROXY, data, f"x402 upto proxy settle(owner={payment.owner}, nonce={payment.nonce})"
    )
