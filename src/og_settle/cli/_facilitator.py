"""``og-settle facilitator serve``: the x402 facilitator for one deployment, served by uvicorn.

Endpoints (JSON): ``POST /verify`` and ``POST /settle`` take ``{x402Version, paymentPayload, paymentRequirements}``
and answer ``{isValid, invalidReason?, invalidMessage?, payer?}`` and ``{success, errorReason?, errorMessage?,
payer?, transaction, network, amount?}``; ``GET /supported`` lists the exact and upto Permit2 kinds (upto with
``extra.facilitatorAddress``); ``GET /health``; ``GET /settle/status/<payment id or tx hash>``.

``/settle`` requires ``Authorization: Bearer <key>``; keys come from the store (``og-settle facilitator keys add``,
each with its rate limits and spend quotas: over one, HTTP 429 with ``Retry-After``), ``--api-keys-file`` (one per
line) and/or the environment variable named by ``--api-keys-env`` (no limits). ``/verify`` is open to anonymous
callers unless ``--verify-auth``; a valid key given on it has its limits applied. ``--no-auth`` serves
everything open (tests, private networks). Every verify and settle is recorded in the store (``GET /usage``,
``og-settle facilitator usage``), and a settlement's receipt travels in its answer's ``extensions``.
Settlements are sent from the account whose private key is in the environment variable named by
``--key-env`` (never on the command line). The server holds that signer's lease (``og_settle._lease``) and
refuses to start when another og-settle process (a relayer, another facilitator) signs with the same key.

With ``--queue``, ``POST /settle_data`` (authenticated like ``/settle``) takes OpenGradient's settlement data
(``x-settlement-type``, ``x-settlement-data``) into that relayer queue, after the relayer's intake checks (each leaf's
signer against the TEE registry's active key); ``og-settle relayer run`` on the same queue settles it.

Settlements are stored in ``--store`` (an SQLite file, or a ``postgresql://`` URL shared by several instances, each
with its own settling account), so a replayed ``/settle`` answers its first transaction, even after a restart.
``--batch-window-ms`` gathers concurrent stock-client settlements into one transaction.

Prints one line with the bound URL (or a JSON object with ``--json``) once listening, then one JSON log line per
request on stderr. SIGTERM or SIGINT stops it after the requests in flight finish. Exit codes: 0 stopped by a
signal; 2 bad input (deployment file, key, keys file, unreachable node or wrong chain, address in use, lease).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from og_settle._errors import InvalidInput
from og_settle.cli._fees import add_fee_options, fee_bump
from og_settle.cli._keys import account_from_env
from og_settle.cli._network import (
    add_network_option,
    add_rpc_url_option,
    check_node_network,
    node_web3,
    require_deployed,
)

_KEY_ENV_DEFAULT = "OG_SETTLE_RELAYER_KEY"


def register(groups: Any) -> None:
    facilitator = groups.add_parser("facilitator")
    commands = facilitator.add_subparsers(dest="facilitator_command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="serve POST /verify, POST /settle, GET /supported and GET /health; SIGTERM/SIGINT stop it cleanly",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    serve.add_argument(
        "--deployment", type=Path, required=True, help="deployments/<chain id>.json from `og-settle deploy`"
    )
    add_rpc_url_option(serve, required=True, dest="rpc")
    add_network_option(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    serve.add_argument(
        "--key-env", default=_KEY_ENV_DEFAULT, help="environment variable holding the settling account's private key"
    )
    serve.add_argument("--api-keys-file", type=Path, default=None, help="file of /settle bearer keys, one per line")
    serve.add_argument("--api-keys-env", default=None, help="environment variable of /settle bearer keys (a,b,...)")
    serve.add_argument("--no-auth", action="store_true", help="serve /settle without authentication (tests only)")
    serve.add_argument("--verify-auth", action="store_true", help="refuse /verify without a valid bearer key")
    serve.add_argument(
        "--pay-to", action="append", default=None, metavar="ADDRESS", help="allow only this payTo (repeatable)"
    )
    serve.add_argument(
        "--store",
        default=None,
        help="settlements, keys, limits, usage: an SQLite file (default: facilitator-<chain id>.sqlite3 beside the"
        " deployment file) or a postgresql:// URL",
    )
    serve.add_argument(
        "--batch-window-ms", type=int, default=0, help="gather stock settlements this long into one tx (0: off)"
    )
    serve.add_argument("--max-batch", type=int, default=50, help="most payments in one batch transaction")
    serve.add_argument("--max-body", type=int, default=65_536, help="largest request body accepted (bytes)")
    serve.add_argument("--receipt-timeout", type=float, default=20.0, help="seconds to wait for a receipt")
    sending = serve.add_argument_group("settlement transactions")
    sending.add_argument(
        "--fee-bump-after",
        type=float,
        default=6.0,
        help="seconds unmined before a settlement is replaced with higher fees (same nonce; within --receipt-timeout)",
    )
    add_fee_options(sending)
    sending.add_argument(
        "--confirmations", type=int, default=1, help="blocks deep before /settle answers success (1 = mined)"
    )
    serve.add_argument(
        "--request-timeout", type=float, default=None, help="whole-request deadline (default: receipt timeout + 10)"
    )
    serve.add_argument("--body-timeout", type=float, default=5.0, help="seconds a client may take to send its body")
    serve.add_argument("--threads", type=int, default=64, help="worker threads for chain calls")
    serve.add_argument(
        "--queue",
        default=None,
        help="the relayer's queue (an SQLite file or postgresql://user[:password]@host[:port]/dbname): serve "
        "POST /settle_data, OpenGradient settlement data for the relayer",
    )
    serve.add_argument(
        "--assets",
        type=Path,
        default=None,
        help="TOML/JSON file of ERC-20s to accept besides the network's OPG and USDC ([[asset]] network, symbol, "
        "address, decimals, name, version, transfer_methods = eip3009/permit2)",
    )
    serve.add_argument("--json", action="store_true", help="print the start line as a JSON object")
    serve.set_defaults(handler=_serve)

    from og_settle.cli._facilitator_ops import register_ops

    register_ops(commands)


def _stock_route(deployment: Any, w3: Any, account: Any) -> Any:
    """The StockPaymentBatcher route when the deployment has a batcher and this account is one of its settlers;
    None otherwise (stock payloads then go straight to the proxies)."""
    from og_settle.facilitator._stock import settles_through, stock_route

    batcher = deployment.stock_payment_batcher
    if not batcher:
        return None
    try:
        if not settles_through(w3, batcher, account.address):
            return None
    except Exception:  # no batcher code on this node (an older deployment file): use the proxies directly
        return None
    return stock_route(w3, batcher, deployment.chain_id)


def _eip3009_batcher(deployment: Any, w3: Any, account: Any) -> str | None:
    """The Eip3009Batcher when the deployment has one and this account is one of its settlers; None otherwise
    (EIP-3009 payments then settle one per transaction)."""
    from og_settle.facilitator._eip3009_calls import settles_through_eip3009_batcher

    batcher = getattr(deployment, "eip3009_batcher", "")
    if not batcher:
        return None
    try:
        return str(batcher) if settles_through_eip3009_batcher(w3, batcher, account.address) else None
    except Exception:  # no batcher code on this node (an older deployment file): settle one by one
        return None


def _assets(deployment: Any, assets_file: Path | None) -> Any:
    """The deployment network's assets plus the operator's (``--assets``); None: the facilitator's default."""
    from og_settle._networks import NETWORKS, configured_network

    if assets_file is None:
        return None
    if not any(n.chain_id == deployment.chain_id for n in NETWORKS):
        raise InvalidInput(f"--assets: chain {deployment.chain_id} is not a named network (base-sepolia, base)")
    try:
        return configured_network(deployment.chain_id, assets_file).assets
    except InvalidInput as err:
        raise InvalidInput(f"--assets: {err}") from None


def _check_args(args: argparse.Namespace) -> float:
    if not 0 <= args.port <= 65_535:
        raise InvalidInput(f"--port: expected 0..65535, got {args.port}")
    if args.max_body < 1:
        raise InvalidInput(f"--max-body: must be positive, got {args.max_body}")
    if args.batch_window_ms < 0:
        raise InvalidInput(f"--batch-window-ms: must be 0 or more, got {args.batch_window_ms}")
    if args.max_batch < 1:
        raise InvalidInput(f"--max-batch: must be positive, got {args.max_batch}")
    if args.receipt_timeout <= 0:
        raise InvalidInput(f"--receipt-timeout: must be positive, got {args.receipt_timeout}")
    if not 0 < args.body_timeout <= (args.request_timeout or args.receipt_timeout + 10.0):
        raise InvalidInput(f"--body-timeout: must be positive and within the request deadline, got {args.body_timeout}")
    if args.threads < 1:
        raise InvalidInput(f"--threads: must be positive, got {args.threads}")
    if args.fee_bump_after <= 0:
        raise InvalidInput(f"--fee-bump-after: must be positive, got {args.fee_bump_after:g}")
    if args.confirmations < 1:
        raise InvalidInput(f"--confirmations: must be at least 1, got {args.confirmations}")
    fee_bump(args)
    timeout = args.request_timeout if args.request_timeout is not None else args.receipt_timeout + 10.0
    if timeout <= args.receipt_timeout:
        raise InvalidInput(f"--request-timeout: must exceed --receipt-timeout ({args.receipt_timeout:g}s)")
    if args.no_auth and (args.api_keys_file is not None or args.api_keys_env is not None or args.verify_auth):
        raise InvalidInput("--no-auth: cannot be combined with --api-keys-file/--api-keys-env/--verify-auth")
    return float(timeout)


def _serve(args: argparse.Namespace) -> int:
    from og_settle._deploy import load_deployment
    from og_settle._lease import SignerLease
    from og_settle._postgres import redact_url
    from og_settle.facilitator import (
        ApiKeys,
        Facilitator,
        FacilitatorServer,
        NodeError,
        Operations,
        RequestLog,
        bind,
        create_app,
        open_settlement_store,
    )

    request_timeout = _check_args(args)
    given = args.api_keys_file is not None or args.api_keys_env is not None
    api_keys = ApiKeys.load(file=args.api_keys_file, env=args.api_keys_env) if given else None
    deployment = load_deployment(args.deployment)
    check_node_network(args, args.rpc)
    account = account_from_env(args.key_env, holder="the settling account")
    w3 = node_web3(args.rpc)
    require_deployed(w3, deployment, args.deployment)
    lease = SignerLease.acquire(deployment.chain_id, account.address, role="facilitator")
    try:
        store_path = args.store or str(args.deployment.parent / f"facilitator-{deployment.chain_id}.sqlite3")
        store = open_settlement_store(store_path)
        if not args.no_auth and api_keys is None and not store.list_keys():
            store.close()
            raise InvalidInput(
                "--api-keys-file/--api-keys-env: /settle needs bearer keys: give some, add them to the store with"
                " `og-settle facilitator keys add`, or serve with --no-auth (tests)"
            )
        log = RequestLog()
        operations = Operations(
            store, w3, api_keys=api_keys, open_access=args.no_auth, verify_requires_key=args.verify_auth
        )
        facilitator = Facilitator(
            deployment,
            w3,
            account,
            rpc_url=args.rpc,
            store=store,
            stock=_stock_route(deployment, w3, account),
            receipt_timeout=args.receipt_timeout,
            batch_window=args.batch_window_ms / 1000.0,
            max_batch=args.max_batch,
            pay_to_allowlist=args.pay_to,
            assets=_assets(deployment, args.assets),
            eip3009_batcher=_eip3009_batcher(deployment, w3, account),
            fee_bump=fee_bump(args),
            fee_bump_after=args.fee_bump_after,
            confirmations=args.confirmations,
            on_event=lambda event, fields: log.write(event, **fields),
        )
        try:
            facilitator.check_node()
        except NodeError as err:
            raise InvalidInput(f"--rpc-url: cannot use the node at {args.rpc} ({err})") from None
        settle_data = None
        if args.queue is not None:
            from og_settle.facilitator import SettlementDataQueue
            from og_settle.relayer import RegistryTeeDirectory

            directory = RegistryTeeDirectory(w3, deployment.tee_registry, cache_seconds=60.0)
            try:
                settle_data = SettlementDataQueue(args.queue, deployment, tee_directory=directory)
            except InvalidInput as err:
                raise InvalidInput(f"--queue: {str(err).removeprefix('db: ')}") from None
        sock = bind(args.host, args.port)
        app = create_app(
            facilitator,
            api_keys=api_keys,
            request_timeout=request_timeout,
            body_timeout=args.body_timeout,
            max_body_bytes=args.max_body,
            log=log,
            threads=args.threads,
            settle_data=settle_data,
            operations=operations,
        )
        server: FacilitatorServer

        def announce() -> None:
            start = {
                "url": server.url,
                "network": facilitator.network,
                "spender": facilitator.spender,
                "facilitator": facilitator.relayer,
                "uptoFacilitator": facilitator.upto_facilitator,
                "stockRoute": "proxy" if facilitator.stock is None else "StockPaymentBatcher",
                "eip3009Route": "token" if facilitator.eip3009_batcher is None else "Eip3009Batcher",
                "assets": [f"{a.symbol} {a.address}" for a in facilitator.assets],
                "store": redact_url(str(store_path)),
                "auth": not args.no_auth,
                "settleData": None if args.queue is None else redact_url(args.queue),
            }
            if args.json:
                print(json.dumps(start), flush=True)
            else:
                print(
                    f"og-settle facilitator listening on {server.url} ({facilitator.network}, settling from "
                    f"{facilitator.relayer}, upto facilitatorAddress {facilitator.upto_facilitator})",
                    flush=True,
                )

        server = FacilitatorServer(app, sock, log=log, graceful_timeout=request_timeout + 5.0, on_started=announce)
        try:
            if not server.run():
                raise InvalidInput("facilitator: the server failed to start (see the log)")
        finally:
            if settle_data is not None:
                settle_data.close()
    finally:
        lease.release()
    return 0
