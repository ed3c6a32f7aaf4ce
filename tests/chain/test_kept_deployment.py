"""Deployment fixtures survive Ape's snapshot reverts (``tests.support.deployed``): a deployment whose contracts a
revert took away is deployed again before a test gets its file, instead of failing with "no contract code"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from og_settle._deploy import deploy, load_deployment
from scripts.deploy import ApeSender
from tests.support.deployed import KeptDeployment


def _has_code(chain: Any, path: Path) -> list[bool]:
    return [bool(bytes(chain.provider.get_code(a))) for a in load_deployment(path).contracts().values()]


def test_a_deployment_reverted_away_is_deployed_again(
    chain: Any, deployer: Any, relayer: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    made: list[Path] = []

    def make() -> Path:
        out_dir = tmp_path_factory.mktemp("deployments")
        made.append(
            out_dir / f"{deploy(ApeSender(deployer), relayers=[relayer.address], out_dir=out_dir).chain_id}.json"
        )
        return made[-1]

    before = chain.snapshot()
    kept = KeptDeployment(make)
    first = kept.path(chain)
    assert all(_has_code(chain, first)) and kept.path(chain) == first and len(made) == 1  # kept while on chain
    chain.restore(before)  # what Ape's isolation does to a fixture's deployment in a rebase
    assert not any(_has_code(chain, first))
    again = kept.path(chain)
    assert len(made) == 2 and all(_has_code(chain, again))
