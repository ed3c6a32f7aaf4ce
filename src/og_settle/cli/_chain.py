"""``og-settle chain``: run a local replica of Base Sepolia (default) or Base, or run a command against one."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
from types import FrameType
from typing import Any

from og_settle._errors import InvalidInput
from og_settle._networks import USDC_DECIMALS
from og_settle.cli._network import NETWORK_ENV, add_network_option, selected_network


def register(groups: Any) -> None:
    chain = groups.add_parser("chain")
    commands = chain.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")

    up = commands.add_parser("up", help="start the replica in the foreground; Ctrl-C or SIGTERM stops it")
    up.add_argument("--port", type=int, default=None, help="TCP port (default: a free one)")
    up.add_argument("--json", action="store_true", help="print what is deployed where as one JSON line")
    add_network_option(up)
    up.set_defaults(handler=_up)

    run = commands.add_parser(
        "exec",
        help="run a command with OG_SETTLE_UPSTREAM_RPC pointing at a fresh replica "
        "(or at the network's real RPC, BASE_SEPOLIA_RPC_URL / BASE_MAINNET_RPC_URL, when that is set)",
    )
    add_network_option(run)
    run.add_argument("argv", nargs=argparse.REMAINDER, help="the command, after --")
    run.set_defaults(handler=_exec)


def _holdings(info: Any) -> list[tuple[int, int, int]]:
    """Each dev account's (wei, OPG base units, USDC base units), read from the node."""
    from og_settle.replica._rpc import JsonRpc

    rpc = JsonRpc(info.rpc_url, timeout=10)

    def balance_of(token: str, account: str) -> int:
        data = "0x70a08231" + account[2:].lower().rjust(64, "0")  # balanceOf(address)
        return int(rpc.call("eth_call", {"to": token, "data": data}, "latest"), 16)

    return [
        (
            int(rpc.call("eth_getBalance", account, "latest"), 16),
            balance_of(info.opg, account),
            balance_of(info.usdc, account),
        )
        for account in info.dev_accounts
    ]


def _print_accounts(info: Any, holdings: list[tuple[int, int, int]]) -> None:
    """The dev accounts and their keys, laid out as anvil prints them, with what each holds."""
    from og_settle._hex import parse_address

    print("\nAvailable Accounts\n==================")
    for index, (account, (wei, opg, usdc)) in enumerate(zip(info.dev_accounts, holdings, strict=True)):
        address = parse_address(account, "dev account")
        print(f"({index}) {address} ({_units(wei)} ETH, {_units(opg)} OPG, {_units(usdc, USDC_DECIMALS)} USDC)")
    print("\nPrivate Keys\n==================")
    for index, key in enumerate(info.dev_keys):
        print(f"({index}) {key}")
    holders = [str(index) for index, (_, opg, _) in enumerate(holdings) if opg > 0]
    usdc_holders = [str(index) for index, (_, _, usdc) in enumerate(holdings) if usdc > 0]
    print(
        f"\nOPG holders: accounts {', '.join(holders) or 'none'}; USDC holders: accounts "
        f"{', '.join(usdc_holders) or 'none'}; these keys are public, for local use only\n"
    )


def _units(amount: int, decimals: int = 18) -> str:
    """An amount of ``decimals`` decimals in whole units (trailing zeros dropped)."""
    whole, frac = divmod(amount, 10**decimals)
    return f"{whole}.{str(frac).rjust(decimals, '0').rstrip('0')}" if frac else str(whole)


def _describe(info: Any, holdings: list[tuple[int, int, int]]) -> dict[str, Any]:
    return {
        "rpc_url": info.rpc_url,
        "chain_id": info.chain_id,
        "network": info.network,
        "permit2": info.permit2,
        "opg": info.opg,
        "usdc": info.usdc,
        "usdc_decimals": USDC_DECIMALS,
        "x402_exact_proxy": info.x402_exact_proxy,
        "x402_upto_proxy": info.x402_upto_proxy,
        "dev_accounts": list(info.dev_accounts),
        "dev_keys": list(info.dev_keys),
        "opg_balances": [str(amount) for _, amount, _ in holdings],
        "usdc_balances": [str(amount) for _, _, amount in holdings],
        "startup_seconds": round(info.startup_seconds, 2),
    }


def _stop_on_signals() -> threading.Event:
    """An event that SIGINT and SIGTERM set from now on (instead of raising KeyboardInterrupt or killing us)."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    return stop


def _up(args: argparse.Namespace) -> int:
    from og_settle.replica import running_replica

    # The handlers are in place before anything starts: a stop signal at any instant (during start-up, at the
    # announcement, later) is a clean stop. During start-up it takes effect once the node is up.
    stop = _stop_on_signals()
    network = selected_network(args)
    with running_replica(port=args.port, network=network) as info:
        if not stop.is_set():
            holdings = _holdings(info)
            if args.json:
                print(json.dumps(_describe(info, holdings)), flush=True)
            else:
                print(f"{network.label} replica (chain id {info.chain_id}) at {info.rpc_url}", flush=True)
                print(f"  Permit2     {info.permit2}  (genuine, CREATE2 at its canonical address)")
                print(f"  OPG         {info.opg}  (18 decimals, replica stand-in)")
                print(f"  USDC        {info.usdc}  ({USDC_DECIMALS} decimals, EIP-3009, replica stand-in)")
                print(f"  x402 exact  {info.x402_exact_proxy}  (replica stand-in for the canonical proxy)")
                print(f"  x402 upto   {info.x402_upto_proxy}  (replica stand-in for the canonical proxy)")
                _print_accounts(info, holdings)
                print(f"  started in {info.startup_seconds:.2f}s; Ctrl-C to stop", flush=True)
            stop.wait()
    print("replica stopped", file=sys.stderr)
    return 0


def _exec(args: argparse.Namespace) -> int:
    from og_settle.replica import FORK_NODE_ENV, fork_node_host, running_replica, upstream_rpc_override

    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        raise InvalidInput("chain exec: no command given (usage: og-settle chain exec -- CMD ...)")
    network = selected_network(args)
    env = dict(os.environ)
    env[NETWORK_ENV] = network.name
    # Ape's fork node gets a port chosen here unless the caller chose one (see replica.fork_node_host).
    env.setdefault(FORK_NODE_ENV, fork_node_host())
    if (real := upstream_rpc_override(network)) is not None:
        env["OG_SETTLE_UPSTREAM_RPC"] = real
        print(f"og-settle: upstream is the real {network.label} ({network.rpc_env})", file=sys.stderr, flush=True)
        return subprocess.call(argv, env=env)
    with running_replica(network=network) as info:
        env["OG_SETTLE_UPSTREAM_RPC"] = info.rpc_url
        env["OG_SETTLE_REPLICA"] = "1"
        print(
            f"og-settle: replica up at {info.rpc_url} in {info.startup_seconds:.2f}s",
            file=sys.stderr,
            flush=True,
        )
        # Relay stop signals to the command from before it starts (one arriving first stops it at once).
        children: list[subprocess.Popen[bytes]] = []
        relayed: list[int] = []

        def forward(signum: int, frame: FrameType | None) -> None:
            if children:
                children[0].send_signal(signum)
            else:
                relayed.append(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        children.append(subprocess.Popen(argv, env=env))
        if relayed:
            children[0].send_signal(relayed[0])
        return children[0].wait()
