"""Stock x402 payloads, signed as the reference SDK signs them (PyPI ``x402`` 2.25.0, ``permit2_utils``).

The typed data below is transcribed from the SDK's constants (``PERMIT2_WITNESS_TYPES``,
``UPTO_PERMIT2_WITNESS_TYPES``) and its ``_build_permit2_typed_data``: the Permit2 domain without a version, the
spender fixed to the canonical proxy, ``validAfter`` 0, a random 256-bit nonce, and the deadline ``now +
maxTimeoutSeconds``. It is signed with eth-account, independently of og-settle's own ``_permit2`` module, so a
test that settles these payloads checks our proxies and batcher against the SDK's format, not against ourselves.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from typing import Any

from eth_account import Account

from og_settle import PERMIT2_ADDRESS, X402_EXACT_PERMIT2_PROXY, X402_UPTO_PERMIT2_PROXY

_TOKEN_PERMISSIONS = [{"name": "token", "type": "address"}, {"name": "amount", "type": "uint256"}]
_PERMIT = [
    {"name": "permitted", "type": "TokenPermissions"},
    {"name": "spender", "type": "address"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
    {"name": "witness", "type": "Witness"},
]
_WITNESS = {
    "exact": [{"name": "to", "type": "address"}, {"name": "validAfter", "type": "uint256"}],
    "upto": [
        {"name": "to", "type": "address"},
        {"name": "facilitator", "type": "address"},
        {"name": "validAfter", "type": "uint256"},
    ],
}
_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


@dataclass(frozen=True, slots=True)
class StockPayment:
    """One stock x402 Permit2 authorisation and its signature.

    Attributes:
        scheme: ``"exact"`` or ``"upto"``.
        owner: the payer.
        token: the permitted token.
        amount: the permitted amount.
        spender: the canonical proxy (what the SDK hard-codes).
        nonce: the Permit2 nonce.
        deadline: the Permit2 deadline.
        to: the witness recipient (``payTo``).
        valid_after: the witness ``validAfter``.
        facilitator: the upto witness facilitator (None for exact).
        signature: the 65-byte signature.
    """

    scheme: str
    owner: str
    token: str
    amount: int
    spender: str
    nonce: int
    deadline: int
    to: str
    valid_after: int
    facilitator: str | None
    signature: bytes

    def permit(self) -> tuple[Any, ...]:
        return ((self.token, self.amount), self.nonce, self.deadline)

    def witness(self) -> tuple[Any, ...]:
        if self.scheme == "exact":
            return (self.to, self.valid_after)
        return (self.to, self.facilitator, self.valid_after)

    def exact_args(self) -> tuple[Any, ...]:
        """Arguments of the exact proxy's ``settle``."""
        return (self.permit(), self.owner, self.witness(), self.signature)

    def upto_args(self, amount: int) -> tuple[Any, ...]:
        """Arguments of the upto proxy's ``settle`` charging ``amount``."""
        return (self.permit(), amount, self.owner, self.witness(), self.signature)

    def payload(self) -> dict[str, Any]:
        """The x402 v2 ``payload`` object as the SDK sends it."""
        witness: dict[str, Any] = {"to": self.to, "validAfter": str(self.valid_after)}
        if self.facilitator is not None:
            witness = {"to": self.to, "facilitator": self.facilitator, "validAfter": str(self.valid_after)}
        return {
            "signature": "0x" + self.signature.hex(),
            "permit2Authorization": {
                "from": self.owner,
                "permitted": {"token": self.token, "amount": str(self.amount)},
                "spender": self.spender,
                "nonce": str(self.nonce),
                "deadline": str(self.deadline),
                "witness": witness,
            },
        }


def typed_data(payment: StockPayment, chain_id: int) -> dict[str, Any]:
    """The EIP-712 message the SDK signs for ``payment`` (eth-account ``full_message`` form)."""
    witness: dict[str, Any] = {"to": payment.to, "validAfter": payment.valid_after}
    if payment.scheme == "upto":
        witness = {"to": payment.to, "facilitator": payment.facilitator, "validAfter": payment.valid_after}
    return {
        "types": {
            "EIP712Domain": _DOMAIN_TYPE,
            "PermitWitnessTransferFrom": _PERMIT,
            "TokenPermissions": _TOKEN_PERMISSIONS,
            "Witness": _WITNESS[payment.scheme],
        },
        "primaryType": "PermitWitnessTransferFrom",
        "domain": {"name": "Permit2", "chainId": chain_id, "verifyingContract": PERMIT2_ADDRESS},
        "message": {
            "permitted": {"token": payment.token, "amount": payment.amount},
            "spender": payment.spender,
            "nonce": payment.nonce,
            "deadline": payment.deadline,
            "witness": witness,
        },
    }


def stock_payment(
    key: Any,
    *,
    chain_id: int,
    token: str,
    amount: int,
    to: str,
    now: int,
    scheme: str = "exact",
    facilitator: str | None = None,
    max_timeout_seconds: int = 3600,
    sign_key: Any = None,
    **overrides: Any,
) -> StockPayment:
    """A payment signed like the SDK's ``create_permit2_payload``; ``overrides`` replace fields before signing,
    ``sign_key`` signs with another key (a wrong signer)."""
    account = Account.from_key(key)
    payment = StockPayment(
        scheme=scheme,
        owner=account.address,
        token=token,
        amount=amount,
        spender=X402_EXACT_PERMIT2_PROXY if scheme == "exact" else X402_UPTO_PERMIT2_PROXY,
        nonce=secrets.randbits(256),
        deadline=now + max_timeout_seconds,
        to=to,
        valid_after=0,
        facilitator=facilitator if scheme == "upto" else None,
        signature=b"",
    )
    payment = replace(payment, **overrides)
    signed = Account.sign_typed_data(key if sign_key is None else sign_key, full_message=typed_data(payment, chain_id))
    return replace(payment, signature=bytes(signed.signature))


def as_x402(payment: StockPayment, chain_id: int, charge: int | None = None) -> tuple[Any, Any]:
    """The x402 v2 ``(PaymentPayload, PaymentRequirements)`` a facilitator's ``/settle`` receives for ``payment``,
    parsed by og-settle's x402 types; ``charge`` is the upto ``paymentRequirements.amount`` (default: permitted)."""
    from og_settle import PaymentPayload, PaymentRequirements

    requirements = PaymentRequirements(
        scheme=payment.scheme,
        network=f"eip155:{chain_id}",
        amount=payment.amount if charge is None else charge,
        asset=payment.token,
        pay_to=payment.to,
        max_timeout_seconds=3600,
        extra={"assetTransferMethod": "permit2"},
    )
    accepted = {**requirements.to_json(), "amount": str(payment.amount)}
    payload = PaymentPayload.from_json({"x402Version": 2, "accepted": accepted, "payload": payment.payload()})
    return payload, requirements
