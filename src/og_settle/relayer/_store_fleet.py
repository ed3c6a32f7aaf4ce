"""What a fleet of relayer instances asks the queue, for both stores: which relayer accounts it has seen, which
waiting upto payments name which account, and the expiry of payments whose Permit2 deadline passed.

Every instance that starts records its signing account (meta ``relayer_account:<address>``), so that ``relayer
submit`` checks an upto payment against every instance's account, not only the last one started, and ``relayer
status`` can flag upto payments that name an account no instance has run with (they can never be claimed: the
contract lets only that account settle them).

A received payment whose deadline has passed can never settle. :meth:`FleetQueries.expire_payments` fails such
payments under the same claim rules as batching: on PostgreSQL only rows no other instance holds a live claim on,
locked with ``FOR UPDATE SKIP LOCKED`` and re-checked (still received) when locked, so a payment another instance
is batching right now is left to that instance (whose pre-send check fails it if it is expired).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Final

from og_settle.relayer._states import ItemState, Lane

__all__ = ["RELAYER_ACCOUNT_META", "FleetQueries", "PostgresFleetQueries", "RelayerAccount"]

# The meta key prefix of the relayer accounts seen; the key ends with the account's checksummed address.
RELAYER_ACCOUNT_META: Final = "relayer_account:"
# The single account older queues recorded (the last instance started); read as one more known account.
_LEGACY_META: Final = "relayer_address"

RelayerAccount = dict[str, Any]

# A queued item's payload, in a statement over ``items`` (payloads live in their own table: ``_store_schema``).
_PAYLOAD: Final = "(SELECT payload FROM payloads WHERE item_id = items.id)"


class FleetQueries:
    """The fleet's queries, on the SQLite store's connection (``_db``) and transactions (``_write``)."""

    _db: sqlite3.Connection
    # Where a stored payment's fields are, in each database's JSON syntax.
    _DEADLINE_SQL: ClassVar[str] = f"CAST(json_extract({_PAYLOAD}, '$.deadline') AS INTEGER)"
    _UPTO_FACILITATOR_SQL: ClassVar[str] = (
        f"lower(json_extract({_PAYLOAD}, '$.paymentPayload.payload.permit2Authorization.witness.facilitator'))"
    )

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def record_relayer_account(self, address: str, *, instance: str, started_at: float) -> None:
        """Note that an instance signing with ``address`` started (one entry per account, the latest start)."""
        value = json.dumps({"instance": instance, "started_at": started_at}, separators=(",", ":"))
        with self._write() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
                (RELAYER_ACCOUNT_META + address, value, value),
            )

    def relayer_accounts(self) -> dict[str, RelayerAccount]:
        """Every relayer account an instance started with on this queue: address -> ``{"instance", "started_at"}``
        (an account only an older og-settle recorded has an empty entry)."""
        rows = self._db.execute(
            "SELECT key, value FROM meta WHERE key LIKE ? OR key = ? ORDER BY key",
            (RELAYER_ACCOUNT_META + "%", _LEGACY_META),
        ).fetchall()
        accounts: dict[str, RelayerAccount] = {}
        for key, value in rows:
            if key == _LEGACY_META:
                accounts.setdefault(str(value), {})
            elif str(key).startswith(RELAYER_ACCOUNT_META):
                accounts[str(key)[len(RELAYER_ACCOUNT_META) :]] = json.loads(value)
        return accounts

    def upto_waiting(self) -> dict[str, int]:
        """Received upto payments by the account that must settle them (``witness.facilitator``, lower-case)."""
        rows = self._db.execute(
            f"SELECT {self._UPTO_FACILITATOR_SQL} AS f, COUNT(*) FROM items WHERE state = ? AND lane = ?"
            f" AND {self._UPTO_FACILITATOR_SQL} IS NOT NULL GROUP BY f ORDER BY f",
            (ItemState.RECEIVED.value, Lane.PAYMENT.value),
        ).fetchall()
        return {str(row[0]): int(row[1]) for row in rows}

    def expire_payments(self, before: int, reason: str, *, now: float, limit: int = 1000) -> list[int]:
        """Fail up to ``limit`` received payments whose deadline is before ``before`` (Unix time) with ``reason``,
        oldest first; returns their ids. (One relayer per SQLite queue: nobody else holds a claim.)"""
        with self._write() as db:
            rows = db.execute(
                "UPDATE items SET state = ?, reason = ?, updated_at = ? WHERE id IN (SELECT id FROM items"
                f" WHERE state = ? AND lane = ? AND {self._DEADLINE_SQL} < ?{self._unclaimed()} ORDER BY id LIMIT ?"
                f"{self._skip_locked()}) AND state = ? RETURNING id",
                (
                    ItemState.FAILED.value,
                    reason,
                    now,
                    ItemState.RECEIVED.value,
                    Lane.PAYMENT.value,
                    before,
                    *self._unclaimed_args(now),
                    limit,
                    ItemState.RECEIVED.value,
                ),
            ).fetchall()
        return sorted(int(row[0]) for row in rows)

    # What only PostgreSQL's store needs: claims of other instances, and row locks.

    def _unclaimed(self) -> str:
        return ""

    def _unclaimed_args(self, now: float) -> Iterator[Any]:
        return iter(())

    def _skip_locked(self) -> str:
        return ""


class PostgresFleetQueries(FleetQueries):
    """The same on PostgreSQL: JSON read with ``jsonb``, and other instances' live claims respected."""

    _DEADLINE_SQL: ClassVar[str] = f"({_PAYLOAD}::jsonb ->> 'deadline')::numeric"
    _UPTO_FACILITATOR_SQL: ClassVar[str] = (
        f"lower({_PAYLOAD}::jsonb #>> '{{paymentPayload,payload,permit2Authorization,witness,facilitator}}')"
    )

    _worker: str  # this instance's id (the store's)

    def _unclaimed(self) -> str:
        return " AND (claimed_until IS NULL OR claimed_until < ? OR claimed_by = ?)"

    def _unclaimed_args(self, now: float) -> Iterator[Any]:
        return iter((now, self._worker))

    def _skip_locked(self) -> str:
        return " FOR UPDATE SKIP LOCKED"
