"""The gateway tests' stack: :mod:`og_settle.demo._stack` (real processes on a fresh replica), plus a probe."""

from __future__ import annotations

from og_settle._networks import network
from og_settle.demo._stack import Stack, address_of, dev_keys, register_stand_in_tee, running_stack

__all__ = ["Stack", "address_of", "dev_keys", "register_stand_in_tee", "running_stack", "settles_stock_payloads"]


def settles_stock_payloads(stack: Stack) -> bool:
    """Whether the facilitator on this checkout settles canonical-proxy (stock client) payloads: a probe ``/verify``
    of a stock exact payment is refused for anything but its spender (issue 9 items 1-3 until they land)."""
    import httpx

    from og_settle.clients import make_web3
    from tests.support.stock import stock_payment

    net = network(stack.network)
    now = int(make_web3(stack.rpc_url).eth.get_block("latest")["timestamp"])
    requirement = {
        "scheme": "exact",
        "network": net.caip2,
        "amount": "1",
        "asset": net.opg,
        "payTo": stack.pay_to,
        "maxTimeoutSeconds": 300,
        "extra": {"assetTransferMethod": "permit2"},
    }
    payment = stock_payment(
        stack.payer_key(3), chain_id=net.chain_id, token=net.opg, amount=1, to=stack.pay_to, now=now
    )
    body = {
        "x402Version": 2,
        "paymentPayload": {"x402Version": 2, "accepted": requirement, "payload": payment.payload()},
        "paymentRequirements": requirement,
    }
    answer = httpx.post(stack.facilitator_url + "/verify", json=body, timeout=30).json()
    return answer.get("invalidReason") != "invalid_permit2_spender"
