"""A fork upstream for a plain ``ape test``: start the local replica when none is configured.

``make test`` runs the suite under ``og-settle chain exec``, which starts the replica and sets
``OG_SETTLE_UPSTREAM_RPC`` (and ``OG_SETTLE_REPLICA=1``). An Ape user runs ``ape test`` (or ``ape test --network
base:sepolia-fork:foundry``) directly; then nothing has set the upstream, so :func:`ensure_upstream` does what
``chain exec`` does, in-process, before Ape connects: the real chain's RPC when ``BASE_SEPOLIA_RPC_URL`` (or the
network's variable) is set, else a fresh replica that lives until the test process exits.
"""

from __future__ import annotations

import atexit
import os
import sys
from contextlib import ExitStack
from typing import Final

from og_settle.replica import FORK_NODE_ENV, fork_node_host

UPSTREAM_ENV: Final = "OG_SETTLE_UPSTREAM_RPC"
_STACK = ExitStack()


def _network_from_argv(argv: list[str]) -> str | None:
    """``base`` when the command line selects a Base mainnet fork (``--network base:mainnet-fork:...``)."""
    for index, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--network=") else None
        if arg == "--network" and index + 1 < len(argv):
            value = argv[index + 1]
        if value is not None and value.startswith("base:mainnet"):
            return "base"
    return None


def ensure_upstream() -> str | None:
    """Set ``OG_SETTLE_UPSTREAM_RPC`` (and the project's config) when it is unset; returns the URL it set, or None
    when an upstream was already configured. Also choose the fork node's port (``APE_FOUNDRY_HOST``), as
    ``chain exec`` does."""
    os.environ.setdefault(FORK_NODE_ENV, fork_node_host())
    if os.environ.get(UPSTREAM_ENV):
        return None
    from og_settle._networks import DEFAULT_NETWORK, network
    from og_settle.replica import running_replica, upstream_rpc_override

    name = os.environ.get("OG_SETTLE_NETWORK") or _network_from_argv(sys.argv)
    chosen = network(name) if name else DEFAULT_NETWORK
    os.environ.setdefault("OG_SETTLE_NETWORK", chosen.name)
    url = upstream_rpc_override(chosen)
    if url is None:
        info = _STACK.enter_context(running_replica(network=chosen))
        atexit.register(_STACK.close)
        url = info.rpc_url
        os.environ["OG_SETTLE_REPLICA"] = "1"
        print(f"og-settle: no {UPSTREAM_ENV}; replica up at {url} for this test run", file=sys.stderr, flush=True)
    os.environ[UPSTREAM_ENV] = url
    _reload_ape_config()
    return url


def _reload_ape_config() -> None:
    """Ape expands ``${OG_SETTLE_UPSTREAM_RPC}`` in ape-config.yaml when it reads it; read it again if it already
    has."""
    if "ape" not in sys.modules:
        return
    from ape import project

    project.reconfigure()


def own_ape_env() -> dict[str, str]:
    """The environment for a child Ape process with a fork node of its own: a fresh ``APE_FOUNDRY_HOST``, since
    with the parent's it would attach to the parent's node instead of starting one."""
    env = dict(os.environ)
    env[FORK_NODE_ENV] = fork_node_host()
    return env
