"""Queueing JSONL: records verified by a pool of worker processes, a chunk of lines at a time, in order.

Verifying a record is CPU work (JSON, hashing, and above all the TEE signature: secp256k1 recovery or RSA-PSS), so
one process tops out at a few thousand records a second. Here the parent reads the lines and cuts them into chunks;
forked workers verify each chunk with the parent's :class:`IntakeConfig` and send back the results, and the parent
hands them on in line order. At most ``2 * workers + 1`` chunks are read ahead, so memory stays flat however long
the input is. :func:`verify_lines` gives :func:`parse_jsonl`'s ``ParsedLine`` results; :func:`submit_records` has
the workers send back the rows as the queue stages them (:func:`~og_settle.relayer._store_intake.staged_row`), the
common secp256k1 batch leaf checked natively (:mod:`og_settle.relayer._intake_fast`), so the parent only stages
them.

The result is the same whatever the worker count: every worker checks against the same ``now`` and the same
configuration, and results come back in line order. Workers are forked, so the configuration is inherited, not
pickled. Chain clients inside it must not carry connections this process has already opened (the children would
share them): :class:`RegistryTeeDirectory` given an RPC URL, and clients not used before intake, are safe. As with
any fork, a process whose other threads may hold locks (a threaded server) should verify with one worker, as the
gateway and the facilitator do; ``relayer submit`` is single-threaded.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter
from typing import Any, Final, NamedTuple, TypeVar

from og_settle._errors import InvalidInput, InvariantViolation
from og_settle._hex import to_hex
from og_settle.relayer._intake import ParsedLine, parse_jsonl
from og_settle.relayer._intake_checks import IntakeConfig, Rejected
from og_settle.relayer._intake_fast import FastLeaves, fast_leaves
from og_settle.relayer._store import NewItem, QueueStore
from og_settle.relayer._store_intake import RejectedRecord, StagedRow, staged_row

__all__ = [
    "DEFAULT_CHUNK_LINES",
    "IntakeReport",
    "VerifiedRun",
    "default_workers",
    "submit_records",
    "verify_lines",
    "verify_runs",
]

# Lines per task: large enough that a task's overhead (pickling, the queue) is small beside verifying it, small
# enough that the workers stay busy to the end of the file.
DEFAULT_CHUNK_LINES: Final = 1_000

_T = TypeVar("_T")


class VerifiedRun(NamedTuple):
    """A chunk of lines verified, as the queue stages them.

    Attributes:
        rows: one staged row per non-blank line, ``seq`` its line number.
        refusals: the refusal of each rejected row, by its index in ``rows``.
        unverified: the indexes of accepted leaves queued unverified.
    """

    rows: list[StagedRow]
    refusals: dict[int, Rejected]
    unverified: set[int]


class _Job(NamedTuple):
    config: IntakeConfig
    name: str
    now: float
    fast: FastLeaves | None


# What a worker verifies against, set in each worker by _init (inherited through fork).
_job: _Job | None = None


def default_workers() -> int:
    """Worker processes to verify with by default: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - platforms without sched_getaffinity
        return max(1, os.cpu_count() or 1)


def _init(job: _Job) -> None:
    global _job
    _job = job


def _verify_chunk(first_line: int, lines: list[str | bytes]) -> list[ParsedLine]:
    assert _job is not None, "_init runs first in every worker"
    return list(parse_jsonl(lines, _job.config, name=_job.name, now=_job.now, first_line=first_line))


def _stage_chunk(first_line: int, lines: list[str | bytes]) -> VerifiedRun:
    assert _job is not None, "_init runs first in every worker"
    return _verified_run(_job, first_line, lines)


def _verified_run(job: _Job, first_line: int, lines: list[str | bytes]) -> VerifiedRun:
    run = VerifiedRun([], {}, set())
    fast = None if job.fast is None else job.fast(first_line, lines)
    if fast is None:
        for parsed in parse_jsonl(lines, job.config, name=job.name, now=job.now, first_line=first_line):
            _add(run, parsed)
        return run
    if None not in fast:  # every line taken natively (the common case)
        return VerifiedRun(fast, {}, set())  # type: ignore[arg-type]  # no None in it
    for offset, row in enumerate(fast):
        if row is not None:
            run.rows.append(row)
            continue
        line = lines[offset : offset + 1]  # Python judges the lines the fast path left
        for parsed in parse_jsonl(line, job.config, name=job.name, now=job.now, first_line=first_line + offset):
            _add(run, parsed)
    return run


def _add(run: VerifiedRun, parsed: ParsedLine) -> None:
    entry: NewItem | RejectedRecord
    if parsed.rejected is not None:
        run.refusals[len(run.rows)] = parsed.rejected
        entry = RejectedRecord(parsed.rejected.kind, parsed.source, parsed.raw, str(parsed.rejected))
    else:
        assert parsed.item is not None
        if parsed.item.payload.get("tee_verified") is False:
            run.unverified.add(len(run.rows))
        entry = parsed.item
    run.rows.append(staged_row(parsed.line, entry))


def _chunks(lines: Iterable[str | bytes], size: int) -> Iterator[tuple[int, list[str | bytes]]]:
    iterator = iter(lines)
    first = 1
    while chunk := list(islice(iterator, size)):
        yield first, chunk
        first += len(chunk)


def _in_pool(
    task: Callable[[int, list[str | bytes]], _T],
    lines: Iterable[str | bytes],
    job: _Job,
    workers: int,
    chunk_lines: int,
) -> Iterator[_T]:
    """``task`` over the chunks of ``lines`` in ``workers`` forked processes, the results in order."""
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init, initargs=(job,)) as pool:
        pending: deque[Future[_T]] = deque()
        for first, chunk in _chunks(lines, chunk_lines):
            pending.append(pool.submit(task, first, chunk))
            while len(pending) > 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _checked(workers: int, chunk_lines: int) -> None:
    if workers < 1:
        raise InvalidInput(f"workers: expected at least 1, got {workers}")
    if chunk_lines < 1:
        raise InvalidInput(f"chunk_lines: expected at least 1, got {chunk_lines}")


def verify_lines(
    lines: Iterable[str | bytes],
    config: IntakeConfig,
    *,
    name: str = "stdin",
    now: float | None = None,
    workers: int = 1,
    chunk_lines: int = DEFAULT_CHUNK_LINES,
) -> Iterator[ParsedLine]:
    """What :func:`parse_jsonl` gives for ``lines``, in the same order, verified by ``workers`` processes.

    ``workers`` = 1 verifies in this process. ``now`` (default: the time of the call) is the one instant every
    record's time window is checked against."""
    _checked(workers, chunk_lines)
    current = time.time() if now is None else now
    if workers == 1:
        yield from parse_jsonl(lines, config, name=name, now=current)
        return
    for parsed in _in_pool(_verify_chunk, lines, _Job(config, name, current, None), workers, chunk_lines):
        yield from parsed


def verify_runs(
    lines: Iterable[str | bytes],
    config: IntakeConfig,
    *,
    name: str = "stdin",
    now: float | None = None,
    workers: int = 1,
    chunk_lines: int = DEFAULT_CHUNK_LINES,
) -> Iterator[VerifiedRun]:
    """``lines`` verified by ``workers`` processes, a chunk at a time, as the queue stages them, in order: the rows
    :func:`parse_jsonl`'s results make (:func:`~og_settle.relayer._store_intake.staged_row`, ``seq`` the line
    number), whatever the worker count."""
    _checked(workers, chunk_lines)
    current = time.time() if now is None else now
    job = _Job(config, name, current, fast_leaves(config, name, current))
    if workers == 1:
        for first, chunk in _chunks(lines, chunk_lines):
            yield _verified_run(job, first, chunk)
        return
    yield from _in_pool(_stage_chunk, lines, job, workers, chunk_lines)


@dataclass(frozen=True, slots=True)
class IntakeReport:
    """What happened to one offered record.

    Attributes:
        source: ``<name>:<line>``.
        status: ``accepted``, ``duplicate`` (an item with the same idempotency key is queued) or ``rejected``.
        item_id: the queued item (the earlier one for a duplicate; the stored rejection for a rejected record).
        reason: the rejection reason code, for rejected records.
        detail: the rejection's explanation, naming the field.
        key: the idempotency key, for accepted and duplicate records.
        unverified: an accepted leaf whose TEE signature could not be checked (queued explicitly unverified).
    """

    source: str
    status: str
    item_id: int
    reason: str | None = None
    detail: str | None = None
    key: bytes | None = None
    unverified: bool = False

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"source": self.source, "status": self.status, "item": self.item_id}
        if self.key is not None:
            body["key"] = to_hex(self.key)
        if self.unverified:
            body["unverified"] = True
        if self.reason is not None:
            body["reason"] = self.reason
            body["detail"] = self.detail
        return body


def submit_records(
    store: QueueStore,
    lines: Iterable[str | bytes],
    config: IntakeConfig,
    *,
    name: str = "stdin",
    now: float | None = None,
    workers: int = 1,
) -> Iterator[IntakeReport]:
    """Verify JSONL records and queue them; rejected ones are stored with their reason. One report per record, in
    line order. ``workers`` processes verify the records (see :func:`verify_lines`); the outcome is the same for
    any number.

    All or nothing: records are staged as they are read and verified, then queued in one transaction once the
    input ends (``QueueStore.add_staged``), so the first report comes after the last line (stdin too). If anything
    fails before that commit (a node that stops answering, an interrupt), nothing of this input is queued; running
    it again is safe either way, as queued records come back as duplicates."""
    sources: list[str] = []
    keys: list[bytes | None] = []
    unverified: set[int] = set()
    refusals: dict[int, Rejected] = {}
    source_of, key_of = itemgetter(7), itemgetter(3)

    def runs() -> Iterator[list[StagedRow]]:
        for run in verify_runs(lines, config, name=name, now=now, workers=workers):
            first = len(sources)
            sources.extend(map(source_of, run.rows))
            keys.extend(map(key_of, run.rows))
            unverified.update(first + index for index in run.unverified)
            refusals.update((first + index, error) for index, error in run.refusals.items())
            yield run.rows

    outcomes = store.add_staged(runs())
    if len(outcomes) != len(sources):
        raise InvariantViolation(f"intake: {len(outcomes)} outcomes for {len(sources)} records")
    for index, outcome in enumerate(outcomes):
        error = refusals.get(index)
        if error is not None:
            yield IntakeReport(sources[index], "rejected", outcome.item_id, reason=error.reason, detail=str(error))
        else:
            status = "duplicate" if outcome.duplicate else "accepted"
            yield IntakeReport(sources[index], status, outcome.item_id, key=keys[index], unverified=index in unverified)
