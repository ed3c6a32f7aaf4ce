"""Relayer test fixtures: a queue in a temporary SQLite file, and (module-scoped) a live chain of our own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from og_settle.relayer import SqliteStore
from tests.relayer.support import LiveChain, start_chain


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    queue = SqliteStore(tmp_path / "queue.db")
    yield queue
    queue.close()


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveChain]:
    """Anvil (chain id 84532, genuine Permit2, OPG) with og-settle deployed, for one test module."""
    live = start_chain(tmp_path_factory.mktemp("chain"))
    yield live
    live.anvil.stop()
