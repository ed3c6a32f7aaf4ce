"""``og-settle payment sign`` and ``payment verify`` for EIP-3009 (x402's exact scheme for USDC).

A requirement of the ``exact`` scheme whose ``extra`` has no ``assetTransferMethod`` (or ``"eip3009"``) is paid as
the stock SDK pays it: ``payload: {signature, authorization: {from, to, value, validAfter: "0", validBefore: now +
maxTimeoutSeconds, nonce}}``, signed over the token's EIP-712 domain (``extra.name``, ``extra.version``). Typed
data and signing are :mod:`og_settle._eip3009`'s; verification is the facilitator's own
:class:`~og_settle.facilitator._eip3009.Eip3009Verifier` (offline, or on chain with ``--rpc-url``).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from og_settle._errors import InvalidInput

if TYPE_CHECKING:
    from og_settle._x402 import PaymentRequirements, VerifyResult

__all__ = [
    "is_eip3009_requirements",
    "report_eip3009",
    "sign_eip3009_command",
    "sign_eip3009_payment",
    "verify_eip3009_payment",
]


def is_eip3009_requirements(requirements: PaymentRequirements) -> bool:
    """Whether ``requirements`` are paid with EIP-3009: exact, and ``extra.assetTransferMethod`` absent or eip3009."""
    from og_settle._networks import EIP3009

    return requirements.scheme == "exact" and requirements.extra.get("assetTransferMethod", EIP3009) == EIP3009


def sign_eip3009_payment(
    requirements: PaymentRequirements, private_key: Any, resource: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The x402 ``PaymentPayload`` JSON of an EIP-3009 payment for ``requirements``, signed with ``private_key``."""
    from eth_account import Account

    from og_settle._eip3009 import Eip3009Payload, TokenDomain, new_eip3009_authorization, sign_eip3009
    from og_settle._x402 import X402_VERSION

    name, version = requirements.extra.get("name"), requirements.extra.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        raise InvalidInput("extra.name/extra.version: EIP-3009 signs over the token's EIP-712 name and version")
    domain = TokenDomain(name, version, requirements.chain_id, requirements.asset)
    owner = Account.from_key(private_key).address
    authorization = new_eip3009_authorization(
        owner, requirements.pay_to, requirements.amount, requirements.max_timeout_seconds
    )
    payload = Eip3009Payload(signature=sign_eip3009(authorization, private_key, domain), authorization=authorization)
    body: dict[str, Any] = {"x402Version": X402_VERSION}
    if resource is not None:
        body["resource"] = dict(resource)
    body["accepted"] = requirements.to_json()
    body["payload"] = payload.to_json()
    return body


def verify_eip3009_payment(
    payload: Mapping[str, Any],
    requirements: PaymentRequirements,
    *,
    rpc_url: str | None,
    now: int | None,
) -> VerifyResult:
    """The facilitator's ``/verify`` answer for an EIP-3009 ``payload`` against ``requirements``: offline when
    ``rpc_url`` is None, else also the token's code, ``authorizationState``, balance and (for a contract payer)
    ERC-1271, at the latest block (or ``now``)."""
    from og_settle._networks import network
    from og_settle._x402 import X402_VERSION
    from og_settle.facilitator._chain import RpcBatchReader, RpcError
    from og_settle.facilitator._eip3009 import Eip3009Verifier
    from og_settle.facilitator._protocol import NodeError

    try:
        known = network(requirements.chain_id)
    except InvalidInput:
        raise InvalidInput(f"network: {requirements.network} has no EIP-3009 assets (base-sepolia, base)") from None
    reader = None if rpc_url is None else RpcBatchReader(rpc_url, known.permit2)
    verifier = Eip3009Verifier(known.assets, network=requirements.network, reader=reader, now=now)
    body = {"x402Version": X402_VERSION, "paymentPayload": dict(payload), "paymentRequirements": requirements.to_json()}
    try:
        return verifier.verify(body)
    except (NodeError, RpcError) as err:
        raise InvalidInput(f"--rpc-url: cannot reach the node at {rpc_url} ({err})") from None


def report_eip3009(
    payload: Mapping[str, Any],
    requirements: PaymentRequirements,
    *,
    rpc_url: str | None,
    now: int | None,
    as_json: bool,
) -> int:
    """Verify (:func:`verify_eip3009_payment`), print the verdict (``/verify`` JSON with ``as_json``), and return
    the exit code: 0 valid, 1 invalid."""
    import json

    result = verify_eip3009_payment(payload, requirements, rpc_url=rpc_url, now=now)
    if as_json:
        print(json.dumps(result.to_json()))
        return 0 if result.is_valid else 1
    auth = payload["payload"]["authorization"]
    where = "offline and on chain" if rpc_url is not None else "offline; pass --rpc-url for nonce and balance"
    if result.is_valid:
        print(
            f"valid: exact EIP-3009 payment of {auth['value']} (atomic) {requirements.asset} from {auth['from']} to "
            f"{auth['to']}, nonce {auth['nonce']}, validBefore {auth['validBefore']} ({where})"
        )
    else:
        detail = f": {result.invalid_message}" if result.invalid_message else ""
        print(f"invalid: {result.invalid_reason}{detail} (payer {result.payer}; checked {where})")
    return 0 if result.is_valid else 1


def sign_eip3009_command(args: argparse.Namespace, requirements: PaymentRequirements, key: Any, resource: Any) -> int:
    """``payment sign`` of EIP-3009 requirements: refuse the Permit2-only options, sign, print JSON or a header."""
    import base64
    import json

    for option, value in (
        ("--spender", args.spender),
        ("--facilitator", args.facilitator),
        ("--request-hash", args.request_hash),
        ("--gasless", args.gasless or None),
        ("--record", args.record or None),
    ):
        if value is not None:
            raise InvalidInput(f"{option}: not for an EIP-3009 payment (paid with transferWithAuthorization)")
    body = sign_eip3009_payment(requirements, key, resource)
    if args.header:
        print(base64.b64encode(json.dumps(body, separators=(",", ":")).encode()).decode("ascii"))
    else:
        print(json.dumps(body))
    return 0
