"""Signer leases: one process at a time sends transactions from a given account on a given chain.

The facilitator and the relayer each keep their own account nonce. Two of them signing with one key collide:
replaced transactions, a ``/settle`` that hangs and then fails. Before sending anything, each takes the lease
of its signer: an exclusive ``flock`` on ``<lease dir>/<chain id>-<address>.lock``. The kernel releases it
when the process exits, however it exits, so a crash never leaves a stale lease. The file records the holder
(role, pid, start time) so that the refusal names it.

The lease directory is ``$OG_SETTLE_LEASE_DIR``, else ``og-settle-signer-leases`` in the system temporary
directory: every og-settle process on one host sees the same leases by default. Processes on different hosts
sharing a key are not detected; give each host its own key (or point them at a shared lease directory on a
file system with working ``flock``).

Use::

    with SignerLease.acquire(chain_id, address, role="facilitator"):
        ...  # send transactions
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Final

from og_settle._errors import InvalidInput
from og_settle._hex import parse_address

__all__ = ["LEASE_DIR_ENV", "SignerLease", "lease_dir"]

LEASE_DIR_ENV: Final = "OG_SETTLE_LEASE_DIR"


def lease_dir() -> Path:
    """Where signer leases live: ``$OG_SETTLE_LEASE_DIR`` or a folder in the system temporary directory."""
    configured = os.environ.get(LEASE_DIR_ENV)
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "og-settle-signer-leases"


class SignerLease:
    """An exclusive claim on one signer (chain id, address), held until :meth:`release` or process exit."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, chain_id: int, address: str, *, role: str, directory: Path | None = None) -> SignerLease:
        """Take the lease, or raise InvalidInput naming the process that holds it."""
        address = parse_address(address, "signer")
        folder = directory if directory is not None else lease_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InvalidInput(f"signer lease: cannot create {folder}: {err.strerror or err}") from None
        path = folder / f"{chain_id}-{address.lower()}.lock"
        return cls.at_path(
            path,
            role=role,
            refusal=lambda holder: (
                f"signer {address} on chain {chain_id} is already in use by {holder} (lease {path}); "
                "the facilitator and the relayer must settle from different keys"
            ),
        )

    @classmethod
    def at_path(cls, path: Path, *, role: str, refusal: Callable[[str], str]) -> SignerLease:
        """Take the exclusive lease that ``path`` stands for (the file is created if missing), or raise
        InvalidInput with ``refusal(holder)``, holder naming the process that holds it."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise InvalidInput(f"lease: cannot open {path}: {err.strerror or err}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise InvalidInput(refusal(holder)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"role": role, "pid": os.getpid(), "since": int(time.time())}).encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        """Give the lease up (idempotent)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> SignerLease:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"{data.get('role', 'another process')} (pid {data.get('pid', '?')})"
    except (OSError, ValueError):
        return "another process"
