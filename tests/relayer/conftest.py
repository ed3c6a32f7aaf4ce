"""Relayer test fixtures: a queue in a temporary SQLite file, a queue on each store (SQLite and a real PostgreSQL
server started for the session), and (module-scoped) a live chain of our own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from og_settle.relayer import QueueStore, open_store
from tests.relayer.support import LiveChain, start_chain
from tests.support.postgres import PostgresServer, postgres_server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server in a temporary directory for the whole session (skips, saying how to get one,
    where none can be started; fails instead when OG_SETTLE_REQUIRE_POSTGRES=1)."""
    yield from postgres_server()


@pytest.fixture(params=["sqlite", "postgres"])
def queue_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where a fresh, empty queue lives, once per store: an SQLite file path or a PostgreSQL database URL."""
    if request.param == "sqlite":
        yield str(tmp_path / "queue.db")
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    url = server.create_database()
    yield url
    server.drop_database(url)


@pytest.fixture
def store(queue_db: str) -> Iterator[QueueStore]:
    """A fresh queue on each store in turn (the store contract tests run against both)."""
    queue = open_store(queue_db)
    yield queue
    queue.close()


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveChain]:
    """Anvil (chain id 84532, genuine Permit2, OPG) with og-settle deployed, for one test module."""
    live = start_chain(tmp_path_factory.mktemp("chain"))
    yield live
    live.anvil.stop()
