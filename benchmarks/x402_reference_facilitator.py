"""The x402 SDK's own reference facilitator, served over HTTP: the yardstick ``make bench`` compares og-settle to.

Runs inside the x402 SDK's virtualenv (``tests/support/sdk_envs.py``), never the project's. It is built from the
PyPI ``x402==2.25.0`` SDK's facilitator classes, unmodified: ``x402FacilitatorSync`` with the EVM exact and upto
schemes over ``FacilitatorWeb3Signer``. Starlette and uvicorn (the same versions og-settle's server uses) only
carry the three routes of the x402 facilitator API; each call runs the SDK's synchronous code in Starlette's
thread pool, as a FastAPI facilitator written from the SDK's examples would.

Usage (settling key in ``X402_REFERENCE_KEY``)::

    python x402_reference_facilitator.py --rpc URL --network eip155:N

Prints ``{"url": ..., "address": ...}`` once listening on a free loopback port; SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from x402 import x402FacilitatorSync
from x402.mechanisms.evm import FacilitatorWeb3Signer
from x402.mechanisms.evm.exact import ExactEvmFacilitatorScheme
from x402.mechanisms.evm.upto import UptoEvmFacilitatorScheme
from x402.schemas import PaymentPayload, PaymentRequirements


def dump(model: Any) -> Any:
    return json.loads(model.model_dump_json(by_alias=True, exclude_none=True))


def build_app(facilitator: x402FacilitatorSync) -> Starlette:
    async def call(request: Request, method: str) -> JSONResponse:
        try:
            body = await request.json()
            payload = PaymentPayload.model_validate(body["paymentPayload"])
            requirements = PaymentRequirements.model_validate(body["paymentRequirements"])
        except (ValueError, KeyError, TypeError) as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        result = await run_in_threadpool(getattr(facilitator, method), payload, requirements)
        return JSONResponse(dump(result))

    async def verify(request: Request) -> JSONResponse:
        return await call(request, "verify")

    async def settle(request: Request) -> JSONResponse:
        return await call(request, "settle")

    async def supported(request: Request) -> JSONResponse:
        return JSONResponse(dump(facilitator.get_supported()))

    routes = [
        Route("/verify", verify, methods=["POST"]),
        Route("/settle", settle, methods=["POST"]),
        Route("/supported", supported, methods=["GET"]),
    ]
    return Starlette(routes=routes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rpc", required=True)
    parser.add_argument("--network", required=True, help="CAIP-2, e.g. eip155:84532")
    args = parser.parse_args()
    signer = FacilitatorWeb3Signer(private_key=os.environ["X402_REFERENCE_KEY"], rpc_url=args.rpc)
    facilitator = x402FacilitatorSync()
    facilitator.register([args.network], ExactEvmFacilitatorScheme(signer))
    facilitator.register([args.network], UptoEvmFacilitatorScheme(signer))

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    host, port = sock.getsockname()
    config = uvicorn.Config(build_app(facilitator), log_level="warning", access_log=False, backlog=2048)
    print(json.dumps({"url": f"http://{host}:{port}", "address": signer.address}), flush=True)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
