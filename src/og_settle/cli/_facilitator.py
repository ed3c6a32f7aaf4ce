"""``og-settle facilitator serve``: an x402 facilitator HTTP server for one deployment.

Endpoints (JSON): ``POST /verify`` and ``POST /settle`` take ``{x402Version, paymentPayload, paymentRequirements}``
(``/settle`` also an optional ``amount`` for upto payments) and answer ``{isValid, invalidReason?, payer?}`` and
``{success, errorReason?, payer?, transaction, network, amount?}``; ``GET /supported`` lists the exact and upto
Permit2 kinds. Settlements are sent from the account whose private key is in the environment variable named by
``--key-env`` (never on the command line); that account is also the only settler an upto payment may name.

Prints one line with the bound URL (or a JSON object with ``--json``) once listening, then one JSON log line per
request on stderr. SIGTERM or SIGINT stops it after the requests in flight finish. Exit codes: 0 stopped by a
signal; 2 bad input (deployment file, key, unreachable node or wrong chain, address in use).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from og_settle._errors import InvalidInput

_KEY_ENV_DEFAULT = "OG_SETTLE_RELAYER_KEY"


def register(groups: Any) -> None:
    facilitator = groups.add_parser("facilitator", help="x402 facilitator HTTP server: /verify, /settle, /supported")
    commands = facilitator.add_subparsers(dest="facilitator_command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="serve POST /verify, POST /settle and GET /supported; SIGTERM/SIGINT stop it cleanly",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    serve.add_argument(
        "--deployment", type=Path, required=True, help="deployments/<chain id>.json from `og-settle deploy`"
    )
    serve.add_argument("--rpc", required=True, help="the node's HTTP JSON-RPC URL")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    serve.add_argument(
        "--key-env", default=_KEY_ENV_DEFAULT, help="environment variable holding the settling account's private key"
    )
    serve.add_argument("--max-body", type=int, default=65_536, help="largest request body accepted (bytes)")
    serve.add_argument("--receipt-timeout", type=float, default=60.0, help="seconds to wait for a settlement receipt")
    serve.add_argument("--json", action="store_true", help="print the start line as a JSON object")
    serve.set_defaults(handler=_serve)


def _account(variable: str) -> Any:
    from eth_account import Account

    value = os.environ.get(variable)
    if not value:
        raise InvalidInput(f"--key-env: environment variable {variable} is not set (the settling account's key)")
    try:
        return Account.from_key(value.strip())
    except (ValueError, TypeError):
        # The error text could quote the value: say what is wrong without echoing a secret.
        raise InvalidInput(f"--key-env: {variable} does not hold a valid private key") from None


def _serve(args: argparse.Namespace) -> int:
    from og_settle._deploy import load_deployment
    from og_settle.clients import make_web3
    from og_settle.facilitator import Facilitator, FacilitatorServer

    if not 0 <= args.port <= 65_535:
        raise InvalidInput(f"--port: expected 0..65535, got {args.port}")
    if args.max_body < 1:
        raise InvalidInput(f"--max-body: must be positive, got {args.max_body}")
    deployment = load_deployment(args.deployment)
    account = _account(args.key_env)
    try:
        w3 = make_web3(args.rpc)
    except InvalidInput as err:
        raise InvalidInput(f"--{str(err).replace('rpc_url', 'rpc', 1)}") from None
    facilitator = Facilitator(deployment, w3, account, receipt_timeout=args.receipt_timeout)
    try:
        facilitator.check_node()
    except InvalidInput:
        raise
    except Exception as err:
        raise InvalidInput(f"--rpc: cannot use the node at {args.rpc} ({err})") from None
    try:
        server = FacilitatorServer(facilitator, args.host, args.port, max_body_bytes=args.max_body)
    except OSError as err:
        raise InvalidInput(f"--host/--port: cannot listen on {args.host}:{args.port} ({err.strerror or err})") from None
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    loop = threading.Thread(target=server.serve_forever, name="facilitator-http", daemon=True)
    loop.start()
    try:
        if args.json:
            start = {
                "url": server.url,
                "network": facilitator.network,
                "spender": facilitator.spender,
                "facilitator": facilitator.relayer,
            }
            print(json.dumps(start), flush=True)
        else:
            print(
                f"og-settle facilitator listening on {server.url} ({facilitator.network}, "
                f"spender {facilitator.spender}, settling from {facilitator.relayer})",
                flush=True,
            )
        while not stop.wait(0.5):
            pass
        server.log.write("facilitator.stop", reason="signal")
    finally:
        server.shutdown()
        server.server_close()  # waits for the requests in flight
        loop.join()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
