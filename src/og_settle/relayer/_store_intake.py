"""Bulk intake for both queue stores: a whole submit is queued at once, or not at all.

On SQLite, records are first staged, as they arrive, in the connection's TEMP database, so a file of any length is
streamed and the queue's write lock is not held while its records are verified. Then one transaction moves the
staged rows into ``items`` in their order (``INSERT … SELECT … ORDER BY seq ON CONFLICT (key) DO NOTHING``): a key
already queued, or staged earlier in the same submit, is skipped and reported as a duplicate; the rest get
increasing ids. PostgreSQL (``PostgresStore.add_staged``) writes each chunk of rows into ``items`` as it arrives,
inside one transaction held open for the whole submit (row locks only: other sessions see nothing of it before
the commit), so the server's work overlaps the verifying. Either way a submit that fails before its transaction
commits (a bad configuration, a lost node, Ctrl-C) leaves the queue as it was.

Which staged row got which id: inserted rows take increasing ids in staging order, so walking the staged rows in
order beside the new ids (ascending) pairs them; a keyed row was inserted exactly when the item now holding its
key has the next new id. A store supplies the four steps (SQLite); PostgreSQL overrides ``add_staged``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from og_settle._errors import InvariantViolation
from og_settle.relayer._states import ItemKind, ItemState

if TYPE_CHECKING:  # _store imports this module
    from og_settle.relayer._store import IntakeOutcome, NewItem

__all__ = ["RejectedRecord", "StagedIntake", "StagedRow", "encode_payload", "staged_row"]

# Rows staged per statement: enough to amortise the round trip, small enough to keep memory flat.
_STAGE_CHUNK: Final = 2_000

# (seq, kind, lane, key, payload, state, reason, source), as the TEMP table holds them. ``seq`` orders the rows of one
# intake (increasing; gaps allowed): ``add_all`` numbers its entries 0, 1, ...; ``relayer submit`` uses line numbers.
StagedRow = tuple[int, str, str | None, bytes | None, str, str, str | None, str]


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """A record intake refused, kept in the queue (state ``rejected``) for operators to see.

    Attributes:
        kind: what it claimed to be.
        source: where it came from (``<name>:<line>``).
        raw: its text (the first 4 KiB are kept).
        reason: why it was refused (a reason code, a colon, the explanation).
    """

    kind: ItemKind
    source: str
    raw: str
    reason: str


def encode_payload(payload: Mapping[str, Any]) -> str:
    """The stored text of a queued record's payload: compact JSON with sorted keys."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def staged_row(seq: int, entry: NewItem | RejectedRecord) -> StagedRow:
    """``entry`` as the staging table holds it (its payload encoded, a rejected record's text cut to 4 KiB)."""
    if isinstance(entry, RejectedRecord):
        state = ItemState.REJECTED.value
        return (seq, entry.kind.value, None, None, entry.raw[:4096], state, entry.reason, entry.source)
    if len(entry.key) != 32:
        raise InvariantViolation(f"idempotency key must be 32 bytes, got {len(entry.key)}")
    payload = encode_payload(entry.payload)
    return (seq, entry.kind.value, entry.lane.value, entry.key, payload, ItemState.RECEIVED.value, None, entry.source)


class StagedIntake:
    """``add_all`` for a queue store; the store implements the four steps below for its database."""

    def _open_stage(self) -> None:
        """Create (or empty) this session's staging table."""
        raise NotImplementedError

    def _stage(self, rows: list[StagedRow]) -> None:
        """Append rows to the staging table."""
        raise NotImplementedError

    def _insert_staged(self, now: float) -> list[int]:
        """In one transaction, insert the staged rows into ``items`` in ``seq`` order, skipping keys already
        there; the new rows' ids, ascending."""
        raise NotImplementedError

    def _staged_matches(self) -> Iterator[tuple[bool, int | None]]:
        """For each staged row in ``seq`` order: whether it is a rejected record, and the id of the item now
        holding its key (None for rejected records)."""
        raise NotImplementedError

    def _close_stage(self) -> None:
        """Empty the staging table."""
        raise NotImplementedError

    def add_all(self, entries: Iterable[NewItem | RejectedRecord]) -> list[IntakeOutcome]:
        """Queue ``entries`` (``NewItem`` or :class:`RejectedRecord`, in order) all at once, or none of them if
        this raises; one ``IntakeOutcome`` per entry, in order. ``entries`` may be a long-running iterator: it is
        consumed before the queue is written."""
        return self.add_staged(_runs(staged_row(seq, entry) for seq, entry in enumerate(entries)))

    def add_staged(self, runs: Iterable[list[StagedRow]]) -> list[IntakeOutcome]:
        """``add_all`` for entries already in staged form (:func:`staged_row`), given in runs (lists of rows, as
        workers verified them), ``seq`` increasing throughout; one ``IntakeOutcome`` per row, in order."""
        from og_settle.relayer._store_api import IntakeOutcome  # a cycle at import time
        from og_settle.relayer._store_transitions import _now

        self._open_stage()
        try:
            rows: list[StagedRow] = []
            staged = 0
            for run in runs:
                rows += run
                staged += len(run)
                if len(rows) >= _STAGE_CHUNK:
                    self._stage(rows)
                    rows = []
            if rows:
                self._stage(rows)
            inserted = self._insert_staged(_now())
            if len(inserted) == staged:  # every row went in (each adds at most one item): nothing to match
                return [IntakeOutcome(item_id=item_id, duplicate=False) for item_id in inserted]
            new_ids = iter(inserted)
            outcomes = []
            pending = next(new_ids, None)
            for rejected, queued in self._staged_matches():
                if rejected or queued == pending:
                    if pending is None:
                        raise InvariantViolation("intake: more staged rows were inserted than new items exist")
                    outcomes.append(IntakeOutcome(item_id=pending, duplicate=False))
                    pending = next(new_ids, None)
                elif queued is None:
                    raise InvariantViolation("intake: a staged record's key is in no queued item")
                else:
                    outcomes.append(IntakeOutcome(item_id=queued, duplicate=True))
            if pending is not None:
                raise InvariantViolation(f"intake: new item {pending} matches no staged record")
            return outcomes
        finally:
            self._close_stage()


def _runs(rows: Iterable[StagedRow]) -> Iterator[list[StagedRow]]:
    run: list[StagedRow] = []
    for row in rows:
        run.append(row)
        if len(run) >= _STAGE_CHUNK:
            yield run
            run = []
    if run:
        yield run
