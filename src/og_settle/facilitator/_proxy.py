"""Direct calls to the canonical x402 Permit2 proxies, for stock payloads when no StockPaymentBatcher is used.

The exact proxy's ``settle(permit, owner, witness, signature)`` may be called by anyone; the upto proxy's
``settle(permit, amount, owner, witness, signature)`` only by ``witness.facilitator``, which is then this
server's own account (the ``facilitatorAddress`` announced in ``/supported``). Encoded with eth-abi from the
interface in ``contracts/interfaces/IX402Permit2Proxy.sol``; nothing here depends on the replica's stand-ins.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from eth_abi.abi import encode

from og_settle._hex import keccak256
from og_settle._networks import X402_EXACT_PERMIT2_PROXY, X402_UPTO_PERMIT2_PROXY

if TYPE_CHECKING:
    from og_settle.clients import ContractCall
    from og_settle.facilitator._engine import SettlementJob

__all__ = ["proxy_settle_call"]

_PERMIT: Final = "((address,uint256),uint256,uint256)"
_EXACT: Final = f"settle({_PERMIT},address,(address,uint256),bytes)"
_UPTO: Final = f"settle({_PERMIT},uint256,address,(address,address,uint256),bytes)"


def proxy_settle_call(jobs: Sequence[SettlementJob]) -> ContractCall:
    """The proxy ``settle`` call for one stock payment (exact: the permitted amount; upto: the charge)."""
    from og_settle.clients import ContractCall

    (job,) = jobs
    signed = job.payload.payload
    auth = signed.authorization
    permit = ((auth.token, auth.amount), auth.nonce, auth.deadline)
    if auth.scheme.is_upto:
        witness = (auth.to, auth.facilitator, auth.valid_after)
        types = [_PERMIT, "uint256", "address", "(address,address,uint256)", "bytes"]
        data = keccak256(_UPTO.encode())[:4] + encode(
            types, [permit, job.amount, auth.owner, witness, signed.signature]
        )
        return ContractCall(
            X402_UPTO_PERMIT2_PROXY, data, f"x402 upto proxy settle(owner={auth.owner}, nonce={auth.nonce})"
        )
    witness_exact = (auth.to, auth.valid_after)
    types = [_PERMIT, "address", "(address,uint256)", "bytes"]
    data = keccak256(_EXACT.encode())[:4] + encode(types, [permit, auth.owner, witness_exact, signed.signature])
    return ContractCall(
        X402_EXACT_PERMIT2_PROXY, data, f"x402 exact proxy settle(owner={auth.owner}, nonce={auth.nonce})"
    )
