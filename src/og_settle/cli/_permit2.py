"""``og-settle permit2 approve``: let Permit2 spend a payer's OPG (``ensure_opg_approval`` from the command line).

x402 payments over Permit2 need the payer's one-time ERC-20 approval of Permit2; without it ``/verify`` answers
``permit2_allowance_required``. The payer's key is read from the environment variable named by ``--key-env``
(never from the command line).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from og_settle._errors import InvalidInput
from og_settle.cli._network import add_network_option, add_rpc_url_option, explicit_network, node_web3

_KEY_ENV_DEFAULT = "OG_SETTLE_PAYER_KEY"
_MAX_UINT256 = 2**256 - 1


def register(groups: Any) -> None:
    permit2 = groups.add_parser("permit2")
    commands = permit2.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    approve = commands.add_parser(
        "approve",
        help="approve Permit2 for OPG when the allowance is below --amount (no transaction when it is not)",
    )
    add_rpc_url_option(approve, required=True)
    add_network_option(approve)
    approve.add_argument(
        "--amount",
        required=True,
        help="the allowance wanted, in OPG base units (18 decimals), or 'max' for 2**256-1",
    )
    approve.add_argument(
        "--key-env",
        default=_KEY_ENV_DEFAULT,
        help=f"environment variable holding the payer's private key (default {_KEY_ENV_DEFAULT})",
    )
    approve.add_argument("--json", action="store_true", help="print the result as one JSON line")
    approve.set_defaults(handler=_approve)


def _amount(text: str) -> int:
    if text.strip().lower() == "max":
        return _MAX_UINT256
    try:
        value = int(text.strip(), 10)
    except ValueError:
        raise InvalidInput(f"--amount: expected an integer number of OPG base units or 'max', got {text!r}") from None
    if not 0 < value <= _MAX_UINT256:
        raise InvalidInput(f"--amount: {value} is not in 1..2**256-1")
    return value


def _approve(args: argparse.Namespace) -> int:
    from og_settle._networks import network
    from og_settle._permit2 import ensure_opg_approval
    from og_settle.cli._keys import account_from_env
    from og_settle.clients import is_connection_error

    amount = _amount(args.amount)
    key = account_from_env(args.key_env, holder="the payer").key
    web3 = node_web3(args.rpc_url)
    try:
        chain_id = int(web3.eth.chain_id)
    except Exception as err:
        if is_connection_error(err):
            raise InvalidInput(f"--rpc-url: cannot reach the node at {args.rpc_url} ({type(err).__name__})") from None
        raise
    chosen = explicit_network(args)
    if chosen is not None and chosen.chain_id != chain_id:
        raise InvalidInput(
            f"--network {chosen.name}: the node at {args.rpc_url} is chain {chain_id}, not {chosen.chain_id}"
        )
    net = chosen or network(str(chain_id))
    try:
        result = ensure_opg_approval(
            amount, private_key=key, web3=web3, token=net.opg, spender=net.permit2, approve_amount=amount
        )
    except RuntimeError as err:
        raise InvalidInput(f"permit2 approve: {err}") from None
    except Exception as err:
        if is_connection_error(err):
            raise InvalidInput(f"--rpc-url: lost the node at {args.rpc_url} ({type(err).__name__})") from None
        raise
    if args.json:
        print(json.dumps({"network": net.name, "token": net.opg, "spender": net.permit2, **_fields(result)}))
    elif result.tx_hash is None:
        print(f"Permit2 already allowed {result.allowance_before} OPG base units on {net.label}; nothing sent")
    else:
        print(
            f"approved Permit2 on {net.label}: allowance {result.allowance_before} -> {result.allowance_after} "
            f"(tx {result.tx_hash})"
        )
    return 0


def _fields(result: Any) -> dict[str, Any]:
    return {
        "allowance_before": str(result.allowance_before),
        "allowance_after": str(result.allowance_after),
        "tx_hash": result.tx_hash,
    }
