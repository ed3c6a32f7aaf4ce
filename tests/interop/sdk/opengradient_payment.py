"""Pay x402 402-answers with the unmodified PyPI ``opengradient==1.1.4`` SDK's own x402 client.

Runs inside the OpenGradient SDK's virtualenv (``tests/support/sdk_envs.py``), where its fork ``og-x402`` is the
module ``x402``. ``BASE_MAINNET_RPC`` must point at a ``--network base`` replica before the SDK is imported (the
SDK reads it at import time, for the upto scheme's chain reads and for ``ensure_opg_approval``).

Input (one JSON object on stdin)::

    {"facilitator": URL, "apiKey": KEY, "asset": OPG, "payTo": ADDRESS, "payerKey": HEX,
     "payments": [{"scheme": "exact" | "upto", "price": ATOMIC, "charge": ATOMIC or null}]}

The client is exactly what the SDK builds for a developer: ``og.LLM.from_url(private_key, url)`` and its
``resolve_tee_connection().http_client`` (an ``x402HttpxClient`` registered for ``eip155:8453`` only); the payer
approves Permit2 with the SDK's ``ensure_opg_approval``. It POSTs an OpenAI-style chat request to a small paid
endpoint served here on loopback. That endpoint stands in for an OpenGradient TEE gateway: it is built from the
same fork's resource-server classes (``x402ResourceServerSync`` over ``HTTPFacilitatorClientSync`` with
``create_headers``), answers 402 with the requirements built from the facilitator's ``/supported``, and on the
paid retry verifies and settles through the facilitator (an upto ``charge`` replaces the amount at settle time).
Prints ``{"approval": ..., "payments": [{"status", "requirements", "payload", "verify", "settle"}]}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import opengradient as og
from eth_account import Account
from opengradient.client.opg_token import ensure_opg_approval
from x402 import x402ResourceServerSync
from x402.http import HTTPFacilitatorClientSync
from x402.http.utils import (
    decode_payment_signature_header,
    encode_payment_required_header,
    encode_payment_response_header,
)
from x402.mechanisms.evm.exact import ExactEvmServerScheme
from x402.mechanisms.evm.upto import UptoEvmServerScheme
from x402.schemas import ResourceConfig, ResourceInfo

NETWORK = "eip155:8453"  # the only network the OpenGradient SDK pays on


def dump(model: Any) -> Any:
    return json.loads(model.model_dump_json(by_alias=True, exclude_none=True))


def resource_server(job: dict[str, Any]) -> x402ResourceServerSync:
    bearer = {"Authorization": f"Bearer {job['apiKey']}"}
    facilitator = HTTPFacilitatorClientSync(
        {"url": job["facilitator"], "create_headers": lambda: {"verify": bearer, "settle": bearer, "supported": {}}}
    )
    server = x402ResourceServerSync(facilitator)
    server.register(NETWORK, ExactEvmServerScheme())
    server.register(NETWORK, UptoEvmServerScheme())
    server.initialize()
    return server


def serve_paid_endpoint(job: dict[str, Any], server: x402ResourceServerSync, log: list[dict[str, Any]]) -> str:
    """A paid ``POST /v1/chat/completions?payment=N`` on a free loopback port; returns its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            index = int(parse_qs(urlparse(self.path).query)["payment"][0])
            payment = job["payments"][index]
            config = ResourceConfig(
                scheme=payment["scheme"],
                pay_to=job["payTo"],
                price={
                    "amount": str(payment["price"]),
                    "asset": job["asset"],
                    "extra": {"assetTransferMethod": "permit2"},
                },
                network=NETWORK,
                max_timeout_seconds=600,
            )
            requirements = server.build_payment_requirements(config)
            signature = self.headers.get("PAYMENT-SIGNATURE")
            if signature is None:
                required = server.create_payment_required_response(
                    requirements, ResourceInfo(url=f"http://127.0.0.1{self.path}", description="inference")
                )
                self.answer(402, {}, {"PAYMENT-REQUIRED": encode_payment_required_header(required)})
                return
            payload = decode_payment_signature_header(signature)
            entry: dict[str, Any] = {"requirements": dump(requirements[0]), "payload": dump(payload)}
            log.append(entry)
            verified = server.verify_payment(payload, payload.accepted)
            entry["verify"] = dump(getattr(verified, "verify", verified))
            if not entry["verify"].get("isValid"):
                self.answer(402, {"error": "payment rejected"}, {})
                return
            at_settle = payload.accepted
            if payment.get("charge") is not None:
                at_settle = at_settle.model_copy(update={"amount": str(payment["charge"])})
            settled = server.settle_payment(payload, at_settle)
            entry["settle"] = dump(settled)
            headers = {"PAYMENT-RESPONSE": encode_payment_response_header(settled)}
            self.answer(200, {"choices": [{"message": {"role": "assistant", "content": "paid"}}]}, headers)

        def answer(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    host, port = httpd.server_address[:2]
    return f"http://{host}:{port}"


async def pay(job: dict[str, Any], base_url: str, log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    llm = og.LLM.from_url(private_key=job["payerKey"], llm_server_url=base_url)
    tee = llm.resolve_tee_connection()
    out = []
    for index in range(len(job["payments"])):
        before = len(log)
        response = await tee.http_client.post(
            f"{base_url}/v1/chat/completions?payment={index}",
            json={"model": "stand-in", "messages": [{"role": "user", "content": "hi"}]},
        )
        entry = log[before] if len(log) > before else {}
        out.append({"status": response.status_code, **entry})
    await llm.close()
    return out


def main() -> None:
    job = json.load(sys.stdin)
    payer = Account.from_key(job["payerKey"])
    approval = ensure_opg_approval(payer, min_allowance=1000.0)
    server = resource_server(job)
    log: list[dict[str, Any]] = []
    base_url = serve_paid_endpoint(job, server, log)
    payments = asyncio.run(pay(job, base_url, log))
    approved = {"before": str(approval.allowance_before), "after": str(approval.allowance_after)}
    print(json.dumps({"approval": approved, "payments": payments}))


if __name__ == "__main__":
    main()
