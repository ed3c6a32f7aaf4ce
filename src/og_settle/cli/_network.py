"""The shared ``--network`` option: every command that talks to a chain or produces requirements takes it."""

from __future__ import annotations

import argparse
import os

from og_settle._networks import DEFAULT_NETWORK, NETWORK_NAMES, Network, network

NETWORK_ENV = "OG_SETTLE_NETWORK"


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
