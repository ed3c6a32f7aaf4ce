"""og-settle deployed for many tests on Ape's fork, safe under Ape's snapshots.

Ape reverts the chain to a snapshot after each test, and when a wider-scoped fixture first appears in the middle
of a module it reverts further back (a "rebase"), which can take away contracts a module- or session-scoped
fixture deployed while keeping that fixture's cached value: a test then meets a deployment file whose addresses
have no code ("no contract code at the TeeRegistry address"). :class:`KeptDeployment` keeps the deployment for as
long as its code is on chain and deploys again when it is not; call :meth:`KeptDeployment.path` from a
function-scoped fixture, so each test checks (a few ``eth_getCode`` calls), as the payer set-up does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from og_settle._deploy import load_deployment

__all__ = ["KeptDeployment", "kept_og_settle"]


class KeptDeployment:
    """A deployment file whose contracts are on chain whenever :meth:`path` returns it. ``make`` deploys og-settle
    and returns the deployment file it wrote."""

    def __init__(self, make: Callable[[], Path]) -> None:
        self._make = make
        self._path: Path | None = None

    def path(self, chain: Any) -> Path:
        """The deployment file, after deploying again if the chain no longer holds its contracts."""
        if self._path is None or not _on_chain(chain, self._path):
            self._path = self._make()
        return self._path


def kept_og_settle(deployer: Any, relayer: Any, tmp_path_factory: Any) -> KeptDeployment:
    """og-settle deployed by ``deployer`` (an Ape account) with ``relayer`` holding the relayer role, each time in a
    new temporary folder."""
    from og_settle._deploy import deploy
    from scripts.deploy import ApeSender

    def make() -> Path:
        out_dir = tmp_path_factory.mktemp("deployments")
        deployed = deploy(ApeSender(deployer), relayers=[relayer.address], out_dir=out_dir)
        return out_dir / f"{deployed.chain_id}.json"

    return KeptDeployment(make)


def _on_chain(chain: Any, path: Path) -> bool:
    provider = chain.provider
    return all(bytes(provider.get_code(address)) for address in load_deployment(path).contracts().values())
