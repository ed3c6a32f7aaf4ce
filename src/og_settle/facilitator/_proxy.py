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
from typing import TYPE_CHECKING, Any, Final

from eth_abi.abi import encode

from og_settle._hex import keccak256
from og_settle._networks import X402_UPTO_PERMIT2_PROXY

if TYPE_CHECKING:
    from og_settle.clients import ContractCall
    from og_settle.facilitator._engine import SettlementJob

__all__ = ["proxy_settle_call"]

_PERMIT: Final = "((address,uint256),uint256,uint256)"
_PERMIT_2612: Final = "(uint256,uint256,bytes32,bytes32,uint8)"
_UPTO_ARGS: Final = f"{_PERMIT},uint256,address,(address,address,uint256),bytes"


def proxy_settle_call(jobs: Sequence[SettlementJob]) -> ContractCall:
    """The proxy ``settle`` call for one stock payment (exact: the permitted amount; upto: the charge), or
    ``settleWithPermit`` when the job carries the payer's EIP-2612 permit for Permit2."""
    from og_settle.clients import ContractCall, StockPayment, exact_proxy_call, proxy_permit_2612

    (job,) = jobs
    payment = StockPayment.from_x402(
        job.permit2_payload, dataclasses.replace(job.permit2_payload.accepted, amount=job.amount)
    )
    if payment.scheme == "exact":
        return exact_proxy_call(payment, job.permit)
    permit = ((payment.token, payment.permitted), payment.nonce, payment.deadline)
    witness = (payment.to, payment.facilitator, payment.valid_after)
    types = [_PERMIT, "uint256", "address", "(address,address,uint256)", "bytes"]
    values: list[Any] = [permit, payment.charge, payment.owner, witness, payment.signature]
    name, signature = "settle", f"settle({_UPTO_ARGS})"
    if job.permit is not None:
        types, values = [_PERMIT_2612, *types], [proxy_permit_2612(job.permit), *values]
        name, signature = "settleWithPermit", f"settleWithPermit({_PERMIT_2612},{_UPTO_ARGS})"
    data = keccak256(signature.encode())[:4] + encode(types, values)
    return ContractCall(
        X402_UPTO_PERMIT2_PROXY, data, f"x402 upto proxy {name}(owner={payment.owner}, nonce={payment.nonce})"
    )
