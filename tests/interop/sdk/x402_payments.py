"""Pay through a facilitator with the unmodified PyPI ``x402==2.25.0`` SDK, as its documentation shows.

Runs inside the SDK's own virtualenv (``tests/support/sdk_envs.py``), never the project's: it imports only the
SDK and its dependencies. Reads one JSON object on standard input and prints one JSON object on standard output.

Input::

    {"facilitator": URL, "apiKey": KEY or null, "network": "eip155:N", "asset": TOKEN, "payTo": ADDRESS,
     "payerKey": HEX, "maxTimeoutSeconds": N,
     "payments": [{"scheme": "exact" | "upto", "price": ATOMIC, "charge": ATOMIC or null, "settles": N}]}

A payment may give ``"money": "$1.25"`` instead of ``price``: the resource server then prices it in the SDK's default
asset for the network (USDC, paid with EIP-3009 ``transferWithAuthorization``), exactly as its documentation's
``price="$0.01"`` does; ``asset`` must then be that USDC (the spend controls allow only ``asset``).

Gasless approval (x402's ``eip2612GasSponsoring``): with ``"gasSponsoring": true`` the resource server declares the
extension in its 402 answer (``declare_eip2612_gas_sponsoring_extension``), and with ``"rpcUrl"`` the client signs
through ``EthAccountSignerWithRPC``, which can read the chain: a payer short of Permit2 allowance then adds its
EIP-2612 permit to the payload. A payment's ``"tokenDomain": {"name", "version"}`` goes into ``extra`` (the
token's EIP-712 domain, which the client's permit is signed over).

For each payment the resource server (``x402ResourceServerSync`` over ``HTTPFacilitatorClientSync``, with
``create_headers`` sending ``Authorization: Bearer <apiKey>``) builds the requirements from the facilitator's
``/supported``; the client (``x402ClientSync`` with the EVM exact and upto schemes, OPG allowed through
``set_spend_controls``) signs them; the resource server verifies, then settles ``settles`` times. An upto
``charge`` is applied as the SDK's ``settlement_overrides`` does: the settle-time requirements carry the charged
amount. Every payment is verified first, then settled (all at once from a thread pool with
``"concurrentSettle": true``). Output: ``{"kinds": [exact, upto], "payments": [{"requirements", "payload",
"verify", "settles"}]}`` with the SDK's own models dumped by alias, or ``{"error": ...}`` for a step the SDK
raised on.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from eth_account import Account
from x402 import ResourceConfig, x402ClientSync, x402ResourceServerSync
from x402.extensions.eip2612_gas_sponsoring import declare_eip2612_gas_sponsoring_extension
from x402.http import HTTPFacilitatorClientSync
from x402.mechanisms.evm.exact import ExactEvmClientScheme, ExactEvmServerScheme
from x402.mechanisms.evm.signers import EthAccountSignerWithRPC
from x402.mechanisms.evm.upto import UptoEvmClientScheme, UptoEvmServerScheme
from x402.schemas import ResourceInfo


def dump(model: Any) -> Any:
    return json.loads(model.model_dump_json(by_alias=True, exclude_none=True))


def facilitator_client(url: str, api_key: str | None) -> HTTPFacilitatorClientSync:
    if api_key is None:
        return HTTPFacilitatorClientSync({"url": url})

    def create_headers() -> dict[str, dict[str, str]]:
        bearer = {"Authorization": f"Bearer {api_key}"}
        return {"verify": bearer, "settle": bearer, "supported": {}}

    return HTTPFacilitatorClientSync({"url": url, "create_headers": create_headers})


def attempt(step: Any) -> Any:
    try:
        return dump(step())
    except Exception as error:  # the SDK's own exception, reported to the test as data
        return {"error": f"{type(error).__name__}: {error}"}


def main() -> None:
    job = json.load(sys.stdin)
    network = job["network"]
    server = x402ResourceServerSync(facilitator_client(job["facilitator"], job.get("apiKey")))
    server.register(network, ExactEvmServerScheme())
    server.register(network, UptoEvmServerScheme())
    server.initialize()  # fetches /supported; refuses to start unless it lists both schemes on this network

    account = Account.from_key(job["payerKey"])
    payer = EthAccountSignerWithRPC(account, job["rpcUrl"]) if job.get("rpcUrl") else account
    client = x402ClientSync()
    client.register(network, ExactEvmClientScheme(payer))
    client.register(network, UptoEvmClientScheme(payer))
    declared = declare_eip2612_gas_sponsoring_extension() if job.get("gasSponsoring") else None
    client.set_spend_controls({"allowed_assets": [{"network": network, "asset": job["asset"]}]})

    kinds = [server.get_supported_kind(2, network, scheme) for scheme in ("exact", "upto")]
    out: dict[str, Any] = {"kinds": [None if kind is None else dump(kind) for kind in kinds], "payments": []}
    pending = []
    for payment in job["payments"]:
        config = ResourceConfig(
            scheme=payment["scheme"],
            pay_to=job["payTo"],
            price=payment["money"]
            if "money" in payment  # a money string ("$1.25"): the SDK picks its default asset (USDC, EIP-3009)
            else {
                "amount": str(payment["price"]),
                "asset": job["asset"],
                "extra": {"assetTransferMethod": "permit2", **payment.get("tokenDomain", {})},
            },
            network=network,
            max_timeout_seconds=job.get("maxTimeoutSeconds", 300),
        )
        requirements = server.build_payment_requirements(config)
        required = server.create_payment_required_response(
            requirements,
            ResourceInfo(url="http://127.0.0.1/paid", description="og-settle interop"),
            extensions=declared,
        )
        payload = client.create_payment_payload(required)
        accepted = payload.accepted
        verify = attempt(lambda: server.verify_payment(payload, accepted).verify)  # noqa: B023
        at_settle = accepted
        if payment.get("charge") is not None:
            at_settle = accepted.model_copy(update={"amount": str(payment["charge"])})
        pending.append((payload, at_settle, payment.get("settles", 1)))
        out["payments"].append({"requirements": dump(requirements[0]), "payload": dump(payload), "verify": verify})

    def settle(index: int) -> list[Any]:
        payload, at_settle, count = pending[index]
        return [attempt(lambda: server.settle_payment(payload, at_settle)) for _ in range(count)]

    # "concurrentSettle": every payment's /settle at once, as a busy resource server sends them.
    workers = len(pending) if job.get("concurrentSettle") and pending else 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for entry, settles in zip(out["payments"], pool.map(settle, range(len(pending))), strict=True):
            entry["settles"] = settles
    print(json.dumps(out))


if __name__ == "__main__":
    main()
