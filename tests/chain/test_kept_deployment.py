"""Deployment fixtures survive Ape's snapshot reverts (``tests.support.deployed``): a deployment whose contracts a
revert took away is deployed again before a test gets its file, instead of failing with "no contract code"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from og_settle._deploy import load_deployment
from tests.support.deployed import kept_og_settle


def _has_code(chain: Any, path: Path) -> list[bool]:
    return [bool(bytes(chain.provider.get_code(a))) for a in load_deployment(path).contracts().values()]


def test_a_deployment_reverted_away_is_deployed_again(
    chain: Any, deployer: Any, relayer: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    before = chain.snapshot()
    kept = kept_og_settle(chain, deployer, relayer, tmp_path_factory)
    first = kept.get()
    assert all(_has_code(chain, first)) and kept.get() == first  # kept while its code is on chain
    chain.restore(before)  # what Ape's isolation does to a fixture's deployment in a rebase
    assert not any(_has_code(chain, first))
    again = kept.get()
    assert again != first and all(_has_code(chain, again))
