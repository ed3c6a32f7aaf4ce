"""The operations tables of the facilitator's store: API keys and their limits, limit state, usage, receipts.

:class:`OperationsTables` is written once, in SQL that SQLite and PostgreSQL both accept (``?`` placeholders,
``ON CONFLICT``); the SQLite and PostgreSQL stores supply a transaction (``_write``), a per-name lock inside it
(``_lock_name``: SQLite's ``BEGIN IMMEDIATE`` already serialises writers, PostgreSQL takes a transaction-scoped
advisory lock) and the clock (``_clock``: the database server's on PostgreSQL, so that instances on several hosts
share one). A limit check and its update happen in one transaction under the key's lock, so concurrent requests
on any number of instances see each other's reservations. Amounts are stored as decimal text (uint256 does not
fit SQLite's integers) and added up in Python under that lock.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Final

from og_settle._errors import InvalidInput
from og_settle.facilitator._limits import KeyLimits, LimitExceeded, Quota, parse_quota, rate_admit, window_start
from og_settle.facilitator._receipts import Receipt
from og_settle.facilitator._usage import UsageRecord

__all__ = ["OperationsTables"]

HELD: Final = "held"
SPENT: Final = "spent"
RELEASED: Final = "released"

_WINDOW: Final = "key_name = ? AND asset = ? AND period = ? AND window_start = ?"
_RECEIPT_COLUMNS: Final = (
    "network, transaction_hash, block_number, block_hash, log_index, asset, payer, pay_to, amount, scheme,"
    " payment_id, payload_digest, settled_at"
)
_USAGE_COLUMNS: Final = (
    "at, key_name, endpoint, outcome, reason, payer, pay_to, asset, amount, scheme, network, transaction_hash,"
    " block_number, payment_id"
)


def limits_to_text(limits: KeyLimits) -> str:
    return json.dumps(
        {
            "verifyPerSecond": limits.verify_per_second,
            "settlePerSecond": limits.settle_per_second,
            "quotas": [q.spec() for q in limits.quotas],
        }
    )


def limits_from_text(text: str) -> KeyLimits:
    data = json.loads(text)
    return KeyLimits(
        verify_per_second=data.get("verifyPerSecond"),
        settle_per_second=data.get("settlePerSecond"),
        quotas=tuple(parse_quota(spec) for spec in data.get("quotas", [])),
    )


def _receipt(row: Sequence[Any]) -> Receipt:
    net, tx, block, block_hash, index, asset, payer, pay_to, amount, scheme, pid, digest, at = row
    return Receipt(
        network=str(net),
        transaction=str(tx),
        block_number=int(block),
        block_hash=str(block_hash),
        log_index=int(index),
        asset=str(asset),
        payer=str(payer),
        pay_to=str(pay_to),
        amount=int(str(amount)),
        scheme=str(scheme),
        payment_id=str(pid),
        payload_digest=str(digest),
        settled_at=float(at),
    )


def _usage(row: Sequence[Any]) -> UsageRecord:
    at, key, endpoint, outcome, reason, payer, pay_to, asset, amount, scheme, network, tx, block, pid = row
    return UsageRecord(
        at=float(at),
        key=str(key),
        endpoint=str(endpoint),
        outcome=str(outcome),
        reason=reason,
        payer=payer,
        pay_to=pay_to,
        asset=asset,
        amount=None if amount is None else int(str(amount)),
        scheme=scheme,
        network=network,
        transaction=tx,
        block=None if block is None else int(block),
        payment_id=pid,
    )


class OperationsTables:
    """API keys, limits, usage and receipts; mixed into a settlement store (see the module description)."""

    def _write(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _lock_name(self, db: Any, name: str) -> None:
        raise NotImplementedError

    def _clock(self, db: Any) -> float:
        raise NotImplementedError

    # -- keys ----------------------------------------------------------------------------------------------------

    def put_key(self, name: str, digest: str | None, limits: KeyLimits) -> None:
        """Add key ``name`` (``digest``: hex SHA-256 of the key) or, with ``digest=None``, change its limits."""
        with self._write() as db:
            now = self._clock(db)
            if digest is None:
                changed = db.execute(
                    "UPDATE api_keys SET limits = ?, updated_at = ? WHERE name = ?", (limits_to_text(limits), now, name)
                ).rowcount
                if changed != 1:
                    raise InvalidInput(f"--name: no key named {name!r} in the store")
                return
            taken = db.execute("SELECT name FROM api_keys WHERE name = ? OR digest = ?", (name, digest)).fetchone()
            if taken is not None:
                raise InvalidInput(f"--name: the store already holds key {taken[0]!r} (or that key under another name)")
            db.execute(
                "INSERT INTO api_keys (name, digest, limits, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                (name, digest, limits_to_text(limits), now, now),
            )

    def remove_key(self, name: str) -> bool:
        with self._write() as db:
            return bool(db.execute("DELETE FROM api_keys WHERE name = ?", (name,)).rowcount)

    def list_keys(self) -> list[tuple[str, KeyLimits]]:
        with self._read() as db:
            rows = db.execute("SELECT name, limits FROM api_keys ORDER BY name").fetchall()
        return [(str(row[0]), limits_from_text(str(row[1]))) for row in rows]

    def key_by_digest(self, digest: str) -> tuple[str, KeyLimits] | None:
        with self._read() as db:
            row = db.execute("SELECT name, limits FROM api_keys WHERE digest = ?", (digest,)).fetchone()
        return None if row is None else (str(row[0]), limits_from_text(str(row[1])))

    def key_limits(self, name: str) -> KeyLimits:
        with self._read() as db:
            row = db.execute("SELECT limits FROM api_keys WHERE name = ?", (name,)).fetchone()
        return KeyLimits() if row is None else limits_from_text(str(row[0]))

    # -- limits --------------------------------------------------------------------------------------------------

    def admit(self, name: str, endpoint: str, rate: float) -> None:
        """Count one request of key ``name`` on ``endpoint``; LimitExceeded if over ``rate`` per second."""
        with self._write() as db:
            self._lock_name(db, "key:" + name)
            now = self._clock(db)
            row = db.execute(
                "SELECT tat FROM rate_state WHERE key_name = ? AND endpoint = ?", (name, endpoint)
            ).fetchone()
            tat, wait = rate_admit(None if row is None else float(row[0]), now, rate)
            if tat is None:
                raise LimitExceeded(
                    f"rate limit: key {name!r} may make {rate:g} /{endpoint} requests per second", wait, "rate_limited"
                )
            db.execute(
                "INSERT INTO rate_state (key_name, endpoint, tat) VALUES (?, ?, ?)"
                " ON CONFLICT (key_name, endpoint) DO UPDATE SET tat = excluded.tat",
                (name, endpoint, tat),
            )

    def reserve(self, hold_id: str, name: str, asset: str, amount: int, quotas: Sequence[Quota]) -> None:
        """Reserve ``amount`` of ``asset`` in the current window of each quota, or raise LimitExceeded (nothing
        reserved) when one would go over."""
        asset = asset.lower()
        with self._write() as db:
            self._lock_name(db, "key:" + name)
            now = self._clock(db)
            windows = []
            for quota in quotas:
                start = window_start(now, quota.period)
                row = db.execute(
                    f"SELECT used FROM quota_windows WHERE {_WINDOW}",
                    (name, asset, quota.period, start),
                ).fetchone()
                used = 0 if row is None else int(str(row[0]))
                if used + amount > quota.amount:
                    raise LimitExceeded(
                        f"quota: key {name!r} has {max(0, quota.amount - used)} of its {quota.spec()} left, the payment"
                        f" is {amount}",
                        start + quota.period - now,
                        "over_quota",
                    )
                windows.append((quota.period, start, used + amount))
            for period, start, used in windows:
                db.execute(
                    "INSERT INTO quota_windows (key_name, asset, period, window_start, used) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (key_name, asset, period, window_start) DO UPDATE SET used = excluded.used",
                    (name, asset, period, start, str(used)),
                )
            db.execute(
                "INSERT INTO quota_holds (hold_id, key_name, asset, amount, windows, state, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (hold_id, name, asset, str(amount), json.dumps([[p, s] for p, s, _ in windows]), HELD, now, now),
            )

    def finish_hold(self, hold_id: str, payment_id: str | None, outcome: str) -> None:
        """Settle a reservation: ``settled`` spends it (or, when another reservation of the same key already holds
        that payment, a replay, releases it), ``pending`` keeps it for the payment, ``failed`` releases it and any
        other reservation held for the payment."""
        with self._write() as db:
            row = db.execute("SELECT key_name FROM quota_holds WHERE hold_id = ?", (hold_id,)).fetchone()
            if row is None:
                return
            name = str(row[0])
            self._lock_name(db, "key:" + name)
            state = db.execute("SELECT state FROM quota_holds WHERE hold_id = ?", (hold_id,)).fetchone()[0]
            if state != HELD:
                return
            others = []
            if payment_id is not None:
                others = db.execute(
                    "SELECT hold_id, state FROM quota_holds WHERE payment_id = ? AND key_name = ? AND hold_id <> ?"
                    " AND state IN (?, ?)",
                    (payment_id, name, hold_id, HELD, SPENT),
                ).fetchall()
            now = self._clock(db)
            if outcome == "failed":
                for other, other_state in others:
                    if other_state == HELD:
                        self._release(db, str(other), now)
                self._release(db, hold_id, now)
            elif others:
                self._release(db, hold_id, now)
                if outcome == "settled":
                    db.execute(
                        "UPDATE quota_holds SET state = ?, updated_at = ? WHERE payment_id = ? AND key_name = ?"
                        " AND state = ?",
                        (SPENT, now, payment_id, name, HELD),
                    )
            else:
                db.execute(
                    "UPDATE quota_holds SET state = ?, payment_id = ?, updated_at = ? WHERE hold_id = ?",
                    (SPENT if outcome == "settled" else HELD, payment_id, now, hold_id),
                )

    def _release(self, db: Any, hold_id: str, now: float) -> None:
        name, asset, amount, windows = db.execute(
            "SELECT key_name, asset, amount, windows FROM quota_holds WHERE hold_id = ?", (hold_id,)
        ).fetchone()
        for period, start in json.loads(str(windows)):
            where = (name, asset, period, start)
            used = db.execute(
                f"SELECT used FROM quota_windows WHERE {_WINDOW}",
                where,
            ).fetchone()
            if used is not None:
                db.execute(
                    f"UPDATE quota_windows SET used = ? WHERE {_WINDOW}",
                    (str(max(0, int(str(used[0])) - int(str(amount)))), *where),
                )
        db.execute("UPDATE quota_holds SET state = ?, updated_at = ? WHERE hold_id = ?", (RELEASED, now, hold_id))

    def quota_used(self, name: str, quota: Quota) -> int:
        """What key ``name`` has reserved or spent of ``quota`` in its current window."""
        with self._write() as db:
            start = window_start(self._clock(db), quota.period)
            row = db.execute(
                f"SELECT used FROM quota_windows WHERE {_WINDOW}",
                (name, quota.asset.lower(), quota.period, start),
            ).fetchone()
        return 0 if row is None else int(str(row[0]))

    # -- usage and receipts --------------------------------------------------------------------------------------

    def add_usage(self, *records: UsageRecord) -> None:
        """Append usage records, in one transaction."""
        rows = [
            (
                r.at, r.key, r.endpoint, r.outcome, r.reason, r.payer, r.pay_to, r.asset,
                None if r.amount is None else str(r.amount), r.scheme, r.network, r.transaction, r.block,
                r.payment_id,
            )
            for r in records
        ]  # fmt: skip
        with self._write() as db:
            for row in rows:
                db.execute(f"INSERT INTO usage_records ({_USAGE_COLUMNS}) VALUES ({', '.join('?' * 14)})", row)

    def add_receipt(self, key: str, draft: Receipt, log_indexes: Sequence[int]) -> Receipt | None:
        """Store the receipt of ``draft.payment_id`` at the first of ``log_indexes`` no other receipt of that
        transaction claims (two identical transfers in one batch get one log each); an already stored receipt
        of the payment is returned as it is. None when every candidate log is taken."""
        with self._write() as db:
            self._lock_name(db, "tx:" + draft.transaction)
            row = db.execute(
                f"SELECT {_RECEIPT_COLUMNS} FROM receipts WHERE payment_id = ?", (draft.payment_id,)
            ).fetchone()
            if row is not None:
                return _receipt(row)
            taken = {
                int(r[0])
                for r in db.execute(
                    "SELECT log_index FROM receipts WHERE transaction_hash = ?", (draft.transaction,)
                ).fetchall()
            }
            free = [index for index in log_indexes if index not in taken]
            if not free:
                return None
            d = draft
            db.execute(
                f"INSERT INTO receipts (key_name, {_RECEIPT_COLUMNS}) VALUES ({', '.join('?' * 14)})",
                (
                    key,
                    d.network,
                    d.transaction,
                    d.block_number,
                    d.block_hash,
                    free[0],
                    d.asset,
                    d.payer,
                    d.pay_to,
                    str(d.amount),
                    d.scheme,
                    d.payment_id,
                    d.payload_digest,
                    d.settled_at,
                ),
            )
        return dataclasses.replace(d, log_index=free[0])

    def receipt(self, payment_id: str) -> Receipt | None:
        with self._read() as db:
            row = db.execute(f"SELECT {_RECEIPT_COLUMNS} FROM receipts WHERE payment_id = ?", (payment_id,)).fetchone()
        return None if row is None else _receipt(row)

    def usage_records(self, key: str | None, begin: float, end: float) -> list[UsageRecord]:
        """The requests of ``key`` (None: every key) in ``[begin, end)``, oldest first."""
        rows = self._between("usage_records", _USAGE_COLUMNS, "at", "id", key, begin, end)
        return [_usage(row) for row in rows]

    def receipts_between(self, key: str | None, begin: float, end: float) -> list[Receipt]:
        """The receipts of ``key`` (None: every key) settled in ``[begin, end)``."""
        rows = self._between("receipts", _RECEIPT_COLUMNS, "settled_at", "settled_at, payment_id", key, begin, end)
        return [_receipt(row) for row in rows]

    def _between(
        self, table: str, columns: str, time: str, order: str, key: str | None, begin: float, end: float
    ) -> list[Any]:
        where, params = f"{time} >= ? AND {time} < ?", list[Any]([begin, end])
        if key is not None:
            where, params = where + " AND key_name = ?", [*params, key]
        with self._read() as db:
            return list(db.execute(f"SELECT {columns} FROM {table} WHERE {where} ORDER BY {order}", params).fetchall())


OPERATIONS_SCHEMA_SQLITE: Final = """
CREATE TABLE IF NOT EXISTS api_keys (
    name TEXT PRIMARY KEY, digest TEXT NOT NULL UNIQUE, limits TEXT NOT NULL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rate_state (
    key_name TEXT NOT NULL, endpoint TEXT NOT NULL, tat REAL NOT NULL, PRIMARY KEY (key_name, endpoint)
);
CREATE TABLE IF NOT EXISTS quota_windows (
    key_name TEXT NOT NULL, asset TEXT NOT NULL, period INTEGER NOT NULL, window_start INTEGER NOT NULL,
    used TEXT NOT NULL, PRIMARY KEY (key_name, asset, period, window_start)
);
CREATE TABLE IF NOT EXISTS quota_holds (
    hold_id TEXT PRIMARY KEY, key_name TEXT NOT NULL, asset TEXT NOT NULL, amount TEXT NOT NULL,
    windows TEXT NOT NULL, state TEXT NOT NULL CHECK (state IN ('held', 'spent', 'released')), payment_id TEXT,
    created_at REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS quota_holds_by_payment ON quota_holds (payment_id);
CREATE TABLE IF NOT EXISTS usage_records (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, key_name TEXT NOT NULL, endpoint TEXT NOT NULL,
    outcome TEXT NOT NULL, reason TEXT, payer TEXT, pay_to TEXT, asset TEXT, amount TEXT, scheme TEXT,
    network TEXT, transaction_hash TEXT, block_number INTEGER, payment_id TEXT
);
CREATE INDEX IF NOT EXISTS usage_by_key_time ON usage_records (key_name, at);
CREATE TABLE IF NOT EXISTS receipts (
    payment_id TEXT PRIMARY KEY, key_name TEXT NOT NULL, network TEXT NOT NULL, transaction_hash TEXT NOT NULL,
    block_number INTEGER NOT NULL, block_hash TEXT NOT NULL, log_index INTEGER NOT NULL, asset TEXT NOT NULL,
    payer TEXT NOT NULL, pay_to TEXT NOT NULL, amount TEXT NOT NULL, scheme TEXT NOT NULL,
    payload_digest TEXT NOT NULL, settled_at REAL NOT NULL, UNIQUE (transaction_hash, log_index)
);
CREATE INDEX IF NOT EXISTS receipts_by_key_time ON receipts (key_name, settled_at);
"""
