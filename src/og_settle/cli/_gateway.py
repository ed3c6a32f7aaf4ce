"""``og-settle gateway serve``: the paid-inference gateway (x402 resource server + stand-in TEE + model).

It serves ``POST /v1/chat/completions`` and ``POST /v1/completions`` the way OpenGradient's TEE gateway does,
asks for payment with x402 (``402`` + ``PAYMENT-REQUIRED``), verifies and settles through an x402 facilitator
(``--facilitator``), signs every answer with the stand-in TEE's RSA key (``--tee-key``, created if missing),
and queues inference records for the relayer (``--queue`` with ``--deployment``) in the mode the client asks
for with ``X-SETTLEMENT-TYPE``. DA blobs go to ``--blobs``.

The model is the deterministic stand-in (``--model stand-in``) or any OpenAI-compatible API
(``--model openai --upstream-url URL``, key from ``--upstream-key-env``).

Prints one line with the bound URL (a JSON object with ``--json``) once listening, then one JSON log line per
request on stderr. SIGTERM or SIGINT stop it after requests in flight finish. Exit codes: 0 stopped by a
signal; 2 bad input (price file, key, unreachable facilitator, address in use).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
from pathlib import Path
from typing import Any

from og_settle._errors import InvalidInput

_STAND_IN_PRICES = {
    "format": "og-settle-prices-v1",
    "models": {
        # Model names as OpenGradient's SDK sends them (it strips the provider prefix).
        name: {"exact": "1000000000000000", "upto_base": "0", "upto_per_output_token": "10000000000000"}
        for name in ("gpt-4.1-2025-04-14", "gpt-4o", "claude-4.0-sonnet", "gemini-2.5-flash", "stand-in-echo")
    },
}


def register(groups: Any) -> None:
    gateway = groups.add_parser("gateway")
    commands = gateway.add_subparsers(dest="gateway_command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="serve /v1/chat/completions and /v1/completions behind x402; SIGTERM/SIGINT stop it cleanly",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    serve.add_argument("--facilitator", required=True, help="the x402 facilitator's base URL")
    serve.add_argument(
        "--facilitator-key-env", default=None, help="environment variable holding the facilitator's /settle API key"
    )
    serve.add_argument("--network", default="base-sepolia", help="where payments are made: base-sepolia or base")
    serve.add_argument("--pay-to", required=True, help="the address that receives payments")
    serve.add_argument("--prices", type=Path, default=None, help="price file (og-settle-prices-v1 JSON)")
    serve.add_argument(
        "--tee-key", type=Path, required=True, help="the stand-in TEE's RSA key (PEM; created if absent)"
    )
    serve.add_argument("--model", choices=("stand-in", "openai"), default="stand-in", help="the model backend")
    serve.add_argument("--stand-in-delay", type=float, default=0.0, help="--model stand-in: seconds between pieces")
    serve.add_argument("--upstream-url", default=None, help="--model openai: the API base URL, e.g. .../v1")
    serve.add_argument("--upstream-key-env", default=None, help="--model openai: env variable with the API key")
    serve.add_argument("--model-map", default=None, help="--model openai: JSON object, gateway model -> upstream model")
    serve.add_argument(
        "--queue",
        default=None,
        help="the relayer's queue (batch/individual/metadata): an SQLite file or postgresql://user[:password]@host/db",
    )
    serve.add_argument("--deployment", type=Path, default=None, help="deployments/<chain id>.json (with --queue)")
    serve.add_argument("--blobs", type=Path, default=None, help="directory of the local DA blob store")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    serve.add_argument("--max-body", type=int, default=1_048_576, help="largest request body accepted (bytes)")
    serve.add_argument("--model-timeout", type=float, default=120.0, help="seconds the model may take")
    serve.add_argument("--json", action="store_true", help="print the start line as a JSON object")
    serve.set_defaults(handler=_serve)


def _secret(variable: str | None, flag: str) -> str | None:
    if variable is None:
        return None
    value = os.environ.get(variable)
    if not value:
        raise InvalidInput(f"{flag}: environment variable {variable} is not set")
    return value.strip()


def build_gateway(args: argparse.Namespace) -> Any:
    """The :class:`~og_settle.gateway.Gateway` the arguments describe (nothing is started)."""
    from og_settle._hex import parse_address
    from og_settle._networks import network
    from og_settle.gateway import (
        FacilitatorClient,
        Gateway,
        GatewayConfig,
        LocalBlobStore,
        OpenAICompatibleBackend,
        RelayerQueueSink,
        StandInEchoModel,
        StandInTee,
        load_prices,
        parse_prices,
    )

    net = network(args.network)
    prices = load_prices(args.prices) if args.prices is not None else parse_prices(_STAND_IN_PRICES)
    if args.model == "openai":
        if not args.upstream_url:
            raise InvalidInput("--upstream-url: required with --model openai")
        try:
            model_map = json.loads(args.model_map) if args.model_map else {}
        except json.JSONDecodeError as err:
            raise InvalidInput(f"--model-map: not JSON ({err.msg})") from None
        backend: Any = OpenAICompatibleBackend(
            args.upstream_url, api_key=_secret(args.upstream_key_env, "--upstream-key-env"), model_map=model_map
        )
    else:
        backend = StandInEchoModel(delay=args.stand_in_delay)
    tee = StandInTee.load_or_create(args.tee_key)
    sink = None
    if args.queue is not None:
        if args.deployment is None:
            raise InvalidInput("--deployment: required with --queue (the contracts the relayer settles to)")
        from og_settle._deploy import load_deployment

        deployment = load_deployment(args.deployment)
        if deployment.chain_id != net.chain_id:
            raise InvalidInput(
                f"--deployment: chain {deployment.chain_id}, but --network is {net.name} ({net.chain_id})"
            )
        try:
            sink = RelayerQueueSink(args.queue, deployment, tee_keys=[tee.key.public])
        except InvalidInput as err:
            raise InvalidInput(f"--queue: {str(err).removeprefix('db: ')}") from None
    config = GatewayConfig(
        network=net,
        pay_to=parse_address(args.pay_to, "--pay-to"),
        prices=prices,
        model_timeout=args.model_timeout,
    )
    facilitator = FacilitatorClient(
        args.facilitator, api_key=_secret(args.facilitator_key_env, "--facilitator-key-env")
    )
    return Gateway(
        config,
        tee,
        backend,
        facilitator,
        sink=sink,
        blobs=LocalBlobStore(args.blobs) if args.blobs is not None else None,
    )


def _check_facilitator(url: str) -> None:
    """Fail fast, in one line, when the facilitator is unreachable (the app reads /supported again at start)."""
    import httpx

    try:
        response = httpx.get(url.rstrip("/") + "/supported", timeout=10)
    except httpx.HTTPError as err:
        raise InvalidInput(f"--facilitator: cannot reach {url} ({type(err).__name__}: {err})") from None
    if response.status_code != 200:
        raise InvalidInput(f"--facilitator: {url}/supported answered HTTP {response.status_code}")


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from og_settle.facilitator._log import RequestLog, route_uvicorn_logs
    from og_settle.gateway import create_app

    if not 0 <= args.port <= 65_535:
        raise InvalidInput(f"--port: expected 0..65535, got {args.port}")
    if args.max_body < 1:
        raise InvalidInput(f"--max-body: must be positive, got {args.max_body}")
    gateway = build_gateway(args)
    _check_facilitator(args.facilitator)
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
        # Listening before the start line is printed: a client that read it connects at once and waits in the
        # backlog until uvicorn (after the app's start-up) accepts.
        sock.listen(2048)
    except OSError as err:
        raise InvalidInput(f"--host/--port: cannot listen on {args.host}:{args.port} ({err.strerror or err})") from None
    host, port = sock.getsockname()[:2]
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    app = create_app(gateway, max_body_bytes=args.max_body)
    # uvicorn's own messages as JSON lines on stderr with an ISO 8601 time, like the app's line per request.
    route_uvicorn_logs(RequestLog())
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=30)
    )
    start = {
        "url": url,
        "network": gateway.config.network.caip2,
        "tee_id": "0x" + gateway.tee.tee_id.hex(),
        "pay_to": gateway.config.pay_to,
        "facilitator": args.facilitator,
    }
    if args.json:
        print(json.dumps(start), flush=True)
    else:
        print(
            f"og-settle gateway listening on {url} ({start['network']}, STAND-IN TEE {start['tee_id']}, "
            f"paid to {start['pay_to']} via {args.facilitator})",
            flush=True,
        )
    server.run(sockets=[sock])
    return 0
