"""``og-settle deploy``: deterministic CREATE2 deployment over plain JSON-RPC with a local key."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from og_settle._errors import InvalidInput
from og_settle.cli._keys import account_from_env
from og_settle.cli._network import add_network_option, add_rpc_url_option, check_node_network, node_url


def register(groups: Any) -> None:
    cmd = groups.add_parser("deploy")
    add_rpc_url_option(cmd)
    cmd.add_argument(
        "--key-env",
        default="OG_SETTLE_DEPLOYER_KEY",
        help="name of the environment variable holding the deployer's private key (never pass keys as arguments)",
    )
    cmd.add_argument("--admin", default=None, help="admin of the registries (default: the deployer)")
    cmd.add_argument("--relayer", dest="relayers", action="append", default=[], help="grant the relayer role")
    cmd.add_argument("--operator", dest="operators", action="append", default=[], help="grant the TEE operator role")
    cmd.add_argument("--out-dir", type=Path, default=Path("deployments"))
    cmd.add_argument("--dry-run", action="store_true", help="print the predicted addresses and send nothing")
    add_network_option(cmd)
    cmd.set_defaults(handler=_deploy)


def _deploy(args: argparse.Namespace) -> int:
    from og_settle._deploy import Web3Sender, deploy, plan_deployment

    if args.dry_run and args.admin:
        for plan in plan_deployment(args.admin):
            print(f"{plan.name:<19} {plan.address}  salt 0x{plan.salt.hex()}")
        return 0
    if not args.rpc_url:
        raise InvalidInput("--rpc-url (or OG_SETTLE_RPC_URL) is required")
    account = account_from_env(args.key_env, holder="the deployer")
    check_node_network(args, args.rpc_url, "--rpc-url")
    sender = Web3Sender(node_url(args.rpc_url), account.key)
    if args.dry_run:
        for plan in plan_deployment(args.admin or sender.address):
            print(f"{plan.name:<19} {plan.address}  salt 0x{plan.salt.hex()}")
        return 0
    deployment = deploy(
        sender,
        admin=args.admin,
        relayers=args.relayers,
        operators=args.operators,
        out_dir=args.out_dir,
        log=lambda line: print(line, file=sys.stderr),
    )
    print(deployment.to_json(), end="")
    return 0
