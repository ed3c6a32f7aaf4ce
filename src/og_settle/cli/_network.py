"""The shared ``--network`` option: every command that talks to a chain or produces requirements takes it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from og_settle._errors import InvalidInput
from og_settle._networks import DEFAULT_NETWORK, NETWORK_NAMES, Network, network

NETWORK_ENV = "OG_SETTLE_NETWORK"
RPC_URL_ENV = "OG_SETTLE_RPC_URL"


def add_rpc_url_option(
    parser: argparse.ArgumentParser,
    *,
    required: bool = False,
    dest: str = "rpc_url",
    help: str | None = None,
    from_env: bool = True,
) -> None:
    """Add ``--rpc-url URL`` (alias ``--rpc``), defaulting to ``$OG_SETTLE_RPC_URL`` when ``from_env``.

    With ``required``, the flag may still be left out when the environment variable is set. Optional flags whose
    presence switches extra checks on (``payment verify``, ``relayer submit``) pass ``from_env=False``.
    """
    default = (os.environ.get(RPC_URL_ENV) or None) if from_env else None
    suffix = f" (default: ${RPC_URL_ENV})" if from_env else ""
    parser.add_argument(
        "--rpc-url",
        "--rpc",
        dest=dest,
        default=default,
        required=required and default is None,
        metavar="URL",
        help=f"{help or 'the HTTP JSON-RPC URL of the node'}{suffix}",
    )


def add_network_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--network NAME`` (a name, CAIP-2 id or chain id; default ``$OG_SETTLE_NETWORK`` or base-sepolia)."""
    parser.add_argument(
        "--network",
        default=None,
        metavar="NETWORK",
        help=f"{' | '.join(NETWORK_NAMES)} (or a CAIP-2 id / chain id); default: ${NETWORK_ENV} or "
        f"{DEFAULT_NETWORK.name}",
    )


def selected_network(args: argparse.Namespace) -> Network:
    """The network ``--network`` names, else ``$OG_SETTLE_NETWORK``, else Base Sepolia.

    Raises:
        InvalidInput: an unknown network, as a one-line error naming the known ones.
    """
    key = getattr(args, "network", None) or os.environ.get(NETWORK_ENV) or DEFAULT_NETWORK.name
    return network(key)


def explicit_network(args: argparse.Namespace) -> Network | None:
    """The network ``--network`` or ``$OG_SETTLE_NETWORK`` names, or None when neither is given."""
    key = getattr(args, "network", None) or os.environ.get(NETWORK_ENV)
    return None if not key else network(key)


def check_node_network(
    args: argparse.Namespace, rpc_url: str, option: str = "--rpc-url", *, unreachable_ok: bool = False
) -> Network | None:
    """When a network was named, check that the node at ``rpc_url`` serves it; return it (None when unnamed).

    With ``unreachable_ok`` (long-running services that back off until their node is back), a node that cannot
    be reached skips the check instead of failing it.

    Raises:
        InvalidInput: the node is another chain, or cannot be reached, as a one-line error.
    """
    node_url(rpc_url, option)
    chosen = explicit_network(args)
    if chosen is None:
        return None
    from og_settle.replica._rpc import JsonRpc, RpcError

    try:
        chain_id = int(JsonRpc(rpc_url, timeout=10).call("eth_chainId"), 16)
    except (OSError, RpcError, ValueError) as err:
        if unreachable_ok:
            return chosen
        raise InvalidInput(f"{option}: cannot reach the node at {rpc_url} ({type(err).__name__})") from None
    if chain_id != chosen.chain_id:
        raise InvalidInput(
            f"--network {chosen.name}: the node at {rpc_url} is chain {chain_id}, {chosen.label} is {chosen.chain_id}"
        )
    return chosen


def node_url(rpc_url: str, option: str = "--rpc-url") -> str:
    """``rpc_url`` if it is an http(s) URL (the JSON-RPC transports the CLI speaks).

    Raises:
        InvalidInput: another scheme or none, as a one-line error naming ``option``.
    """
    if not rpc_url.startswith(("http://", "https://")):
        raise InvalidInput(f"{option}: expected an http(s):// URL, got {rpc_url!r}")
    return rpc_url


def node_web3(rpc_url: str, option: str = "--rpc-url", *, timeout: float = 10.0) -> Any:
    """A web3.py client for the node at ``rpc_url`` (``og_settle.clients.make_web3``), the URL checked first."""
    from og_settle.clients import make_web3

    return make_web3(node_url(rpc_url, option), timeout=timeout)


def require_deployed(w3: Any, deployment: Any, source: Path | str) -> None:
    """Check that ``deployment`` is the chain the node serves and that each of its contracts has code there.

    A deployment file outlives the chain it was written for (a restarted local replica, another network's node),
    and a call to an address without code answers nothing a client can tell from "not found".

    Raises:
        InvalidInput: the node is another chain, or a contract has no code, as a one-line error naming the file.
    """
    chain_id = int(w3.eth.chain_id)
    if chain_id != deployment.chain_id:
        raise InvalidInput(f"{source}: the deployment is for chain {deployment.chain_id}, the node is chain {chain_id}")
    for name, address in deployment.contracts().items():
        if not bytes(w3.eth.get_code(address)):
            raise InvalidInput(
                f"{source}: no contract code at the {name} address {address} on chain {chain_id} (a fresh or "
                "restarted chain, or another deployment's file): deploy with `og-settle deploy`"
            )
