"""A real PostgreSQL server for tests, started in a temporary directory on a free 127.0.0.1 port.

``PostgresServer.start()`` runs ``initdb`` and ``pg_ctl`` from the machine's PostgreSQL (``OG_SETTLE_PG_BIN``,
else the newest ``/usr/lib/postgresql/*/bin``, else ``initdb`` on PATH). PostgreSQL refuses to run as root, so
as root the server runs as the ``postgres`` system user (through ``runuser``) in a directory that user owns.
``OG_SETTLE_TEST_POSTGRES_URL`` points the tests at a server of your own instead (a superuser URL: each test
creates its own database). Where neither works, ``start()`` raises ``PostgresUnavailable`` saying how to get one.

Run by hand: ``python -m tests.support.postgres`` starts a server, prints its URL and waits for Ctrl-C.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

__all__ = ["HOW_TO_GET_ONE", "PostgresServer", "PostgresUnavailable", "postgres_server"]

HOW_TO_GET_ONE: Final = (
    "install PostgreSQL (Debian/Ubuntu: apt-get install postgresql-15, or run `make postgres` as root), or set"
    " OG_SETTLE_PG_BIN to a folder holding initdb and pg_ctl, or OG_SETTLE_TEST_POSTGRES_URL to a superuser URL"
    " of a running server"
)
# Stops the server and deletes its folder if the process that started it dies without stopping it (a killed or
# timed-out test run); exits on its own once the folder is gone (a normal stop).
_WATCHDOG: Final = """
import os, shutil, subprocess, sys, time
parent, base, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
while os.path.isdir(base):
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        subprocess.run(stop, capture_output=True, timeout=60, check=False)
        shutil.rmtree(base, ignore_errors=True)
        break
    time.sleep(1)
"""
_SERVICE_USER: Final = "postgres"
_SUPERUSER: Final = "og_settle"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be started or reached here; the message says why and how to get one."""


def _bin_dir() -> Path | None:
    configured = os.environ.get("OG_SETTLE_PG_BIN")
    if configured:
        return Path(configured)
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name or 0)
    )
    if candidates:
        return Path(candidates[-1]).parent
    on_path = shutil.which("initdb")
    return None if on_path is None else Path(on_path).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PostgresServer:
    """A PostgreSQL server this process started (or an external one named by ``OG_SETTLE_TEST_POSTGRES_URL``)."""

    admin_url: str
    base_dir: Path | None = None
    bin_dir: Path | None = None
    _as_user: list[str] = field(default_factory=list)
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @classmethod
    def start(cls, *, timeout: float = 60.0, fsync: bool = False) -> PostgresServer:
        """Start a server (``fsync`` off by default: tests need its semantics, not its crash safety)."""
        external = os.environ.get("OG_SETTLE_TEST_POSTGRES_URL")
        if external:
            server = cls(admin_url=external)
            server._check_reachable()
            return server
        bin_dir = _bin_dir()
        if bin_dir is None or not (bin_dir / "initdb").is_file() or not (bin_dir / "pg_ctl").is_file():
            raise PostgresUnavailable(f"no PostgreSQL binaries (initdb, pg_ctl) found; {HOW_TO_GET_ONE}")
        as_user: list[str] = []
        # As root the server runs as another user, who must be able to reach the folder: /tmp, not $TMPDIR.
        base = Path(tempfile.mkdtemp(prefix="og-settle-pg-", dir="/tmp" if os.geteuid() == 0 else None))
        if os.geteuid() == 0:
            try:
                service = pwd.getpwnam(_SERVICE_USER)
            except KeyError:
                shutil.rmtree(base, ignore_errors=True)
                raise PostgresUnavailable(
                    f"running as root and there is no {_SERVICE_USER!r} user to run PostgreSQL as; {HOW_TO_GET_ONE}"
                ) from None
            runuser = shutil.which("runuser")
            if runuser is None:
                shutil.rmtree(base, ignore_errors=True)
                raise PostgresUnavailable(f"running as root without runuser to drop to {_SERVICE_USER!r}")
            os.chown(base, service.pw_uid, service.pw_gid)
            as_user = [runuser, "-u", _SERVICE_USER, "--"]
        base.chmod(0o700)
        server = cls(admin_url="", base_dir=base, bin_dir=bin_dir, _as_user=as_user)
        try:
            server._init_and_start(timeout, fsync=fsync)
        except BaseException:
            server.stop()
            raise
        return server

    def _run(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        assert self.bin_dir is not None
        command = [*self._as_user, str(self.bin_dir / args[0]), *args[1:]]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, cwd=self.base_dir, env=_clean_env()
        )

    def _init_and_start(self, timeout: float, *, fsync: bool) -> None:
        assert self.base_dir is not None
        data = self.base_dir / "data"
        result = self._run(
            "initdb", "-D", str(data), "-U", _SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync", timeout=timeout
        )
        if result.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {result.stderr.strip()[-500:]}; {HOW_TO_GET_ONE}")
        last_error = ""
        for _attempt in range(3):  # a free port can be taken between the probe and the bind: try another
            port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={self.base_dir}"
                f" -c max_connections=60 -c shared_buffers=32MB -c fsync={'on' if fsync else 'off'}"
            )
            result = self._run(
                "pg_ctl", "-D", str(data), "-l", str(self.base_dir / "server.log"), "-o", options, "-w",
                "-t", str(int(timeout)), "start", timeout=timeout + 10,
            )  # fmt: skip
            if result.returncode == 0:
                self.admin_url = f"postgresql://{_SUPERUSER}@127.0.0.1:{port}/postgres"
                stop = [*self._as_user, str(self.bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
                subprocess.Popen(
                    [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(self.base_dir), *stop],
                    start_new_session=True,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                self._check_reachable()
                return
            last_error = self.log_tail() or result.stderr
        raise PostgresUnavailable(f"PostgreSQL did not start: {last_error.strip()[-500:]}")

    def _check_reachable(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self.admin_url, connect_timeout=10) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as err:
            raise PostgresUnavailable(f"cannot reach PostgreSQL at {self.admin_url}: {err}; {HOW_TO_GET_ONE}") from None

    def log_tail(self) -> str:
        if self.base_dir is None:
            return ""
        log = self.base_dir / "server.log"
        return log.read_text(errors="replace")[-2000:] if log.is_file() else ""

    def create_database(self, prefix: str = "q") -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = f"{prefix}_{os.getpid()}_{next(self._counter)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.admin_url.rsplit("/", 1)[0] + "/" + name

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Stop the server this process started and delete its directory (an external server is left alone)."""
        if self.base_dir is None:
            return
        if (self.base_dir / "data" / "postmaster.pid").is_file():
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._run("pg_ctl", "-D", str(self.base_dir / "data"), "-m", "immediate", "-w", "stop", timeout=30)
        shutil.rmtree(self.base_dir, ignore_errors=True)
        self.base_dir = None


def postgres_server() -> Iterator[PostgresServer]:
    """The body of a pytest fixture: a started server, stopped afterwards. Where none can be started the test
    skips with the reason and how to get one (printed as a warning too), unless OG_SETTLE_REQUIRE_POSTGRES=1,
    as CI sets it, makes that a failure."""
    import pytest

    try:
        server = PostgresServer.start()
    except PostgresUnavailable as err:
        if os.environ.get("OG_SETTLE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required (OG_SETTLE_REQUIRE_POSTGRES=1) but unavailable: {err}")
        warnings.warn(f"PostgreSQL tests skipped: {err}", stacklevel=1)
        pytest.skip(f"PostgreSQL tests skipped: {err}")
    try:
        yield server
    finally:
        server.stop()


def _clean_env() -> dict[str, str]:
    """The environment for PostgreSQL's tools, without variables that would point them elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def main() -> None:
    server = PostgresServer.start()
    print(server.admin_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
