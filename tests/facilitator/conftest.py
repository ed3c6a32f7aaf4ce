"""Facilitator store fixtures: a fresh store on each backend (an SQLite file, a database on a real PostgreSQL
server started for the session)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import PostgresServer, postgres_server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session (skips, saying how to get one, where none can be started)."""
    yield from postgres_server()


@pytest.fixture(params=["sqlite", "postgres"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where a fresh facilitator store lives, once per backend: an SQLite file or a PostgreSQL database URL."""
    if request.param == "sqlite":
        yield str(tmp_path / "facilitator.sqlite3")
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    url = server.create_database("fac")
    yield url
    server.drop_database(url)
