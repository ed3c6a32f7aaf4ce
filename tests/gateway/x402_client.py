"""Runs inside the x402==2.25.0 virtualenv (never imported by og-settle's own tests).

Reads ``{"key", "url", "network", "asset", "modes"}`` on stdin; pays the gateway with the unmodified SDK's httpx
client (``x402HttpxClient`` over ``x402Client`` with the EVM exact scheme), once per settlement mode, and prints one
JSON object with each answer's status, body and settlement headers.
"""

import asyncio
import base64
import json
import sys

from eth_account import Account
from x402 import x402Client
from x402.http.clients import x402HttpxClient
from x402.mechanisms.evm import EthAccountSigner
from x402.mechanisms.evm.exact.register import register_exact_evm_client


async def run(cfg):
    client = x402Client()
    register_exact_evm_client(client, EthAccountSigner(Account.from_key(cfg["key"])), networks=[cfg["network"]])
    client.set_spend_controls({"allowed_assets": [{"network": cfg["network"], "asset": cfg["asset"]}]})
    results = []
    async with x402HttpxClient(client, base_url=cfg["url"], timeout=120) as http:
        for mode in cfg["modes"]:
            body = {"model": "stand-in-echo", "messages": [{"role": "user", "content": f"record this in {mode}"}]}
            response = await http.post("/v1/chat/completions", json=body, headers={"X-SETTLEMENT-TYPE": mode})
            payment = response.headers.get("payment-response")
            results.append(
                {
                    "mode": mode,
                    "request": body,
                    "status": response.status_code,
                    "body": response.json(),
                    "payment_response": json.loads(base64.b64decode(payment)) if payment else None,
                    "blob_id": response.headers.get("x-settlement-walrus-blob-id"),
                    "tx_hash": response.headers.get("x-settlement-tx-hash"),
                }
            )
    return {"results": results}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(json.load(sys.stdin)))))
