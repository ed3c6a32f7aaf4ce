"""Queueing JSONL: records verified by a pool of worker processes, a chunk of lines at a time, in order.

Verifying a record is CPU work (JSON, hashing, and above all the TEE signature: secp256k1 recovery or RSA-PSS), so
one process tops out at a few thousand records a second. Here the parent reads the lines and cuts them into chunks;
forked workers run :func:`parse_jsonl` on each chunk with the parent's :class:`IntakeConfig` and send back the
``ParsedLine`` results, and the parent hands them on in line order. At most ``2 * workers + 1`` chunks are read
ahead, so memory stays flat however long the input is.

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
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

from og_settle._errors import InvalidInput
from og_settle._hex import to_hex
from og_settle.relayer._intake import ParsedLine, parse_jsonl
from og_settle.relayer._intake_checks import IntakeConfig, Rejected
from og_settle.relayer._store import NewItem, QueueStore
from og_settle.relayer._store_intake import RejectedRecord

__all__ = ["DEFAULT_CHUNK_LINES", "IntakeReport", "default_workers", "submit_records", "verify_lines"]

# Lines per task: large enough that a task's overhead (pickling, the queue) is small beside verifying it, small
# enough that the workers stay busy to the end of the file.
DEFAULT_CHUNK_LINES: Final = 1_000

# What a worker verifies against: (config, name, now), set in each worker by _init (inherited through fork).
_job: tuple[IntakeConfig, str, float] | None = None


def default_workers() -> int:
    """Worker processes to verify with by default: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - platforms without sched_getaffinity
        return max(1, os.cpu_count() or 1)


def _init(config: IntakeConfig, name: str, now: float) -> None:
    global _job
    _job = (config, name, now)


def _verify_chunk(first_line: int, lines: list[bytes]) -> list[ParsedLine]:
    assert _job is not None, "_init runs first in every worker"
    config, name, now = _job
    return list(parse_jsonl(lines, config, name=name, now=now, first_line=first_line))


def _chunks(lines: Iterable[str | bytes], size: int) -> Iterator[tuple[int, list[bytes]]]:
    chunk: list[bytes] = []
    first = 1
    for number, line in enumerate(lines, start=1):
        if not chunk:
            first = number
        chunk.append(line.encode() if isinstance(line, str) else line)
        if len(chunk) >= size:
            yield first, chunk
            chunk = []
    if chunk:
        yield first, chunk


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
    if workers < 1:
        raise InvalidInput(f"workers: expected at least 1, got {workers}")
    if chunk_lines < 1:
        raise InvalidInput(f"chunk_lines: expected at least 1, got {chunk_lines}")
    current = time.time() if now is None else now
    if workers == 1:
        yield from parse_jsonl(lines, config, name=name, now=current)
        return
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init, initargs=(config, name, current)) as pool:
        pending: deque[Future[list[ParsedLine]]] = deque()
        for first, chunk in _chunks(lines, chunk_lines):
            pending.append(pool.submit(_verify_chunk, first, chunk))
            while len(pending) > 2 * workers:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()


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
    input ends (``QueueStore.add_all``), so the first report comes after the last line (stdin too). If anything
    fails before that commit (a node that stops answering, an interrupt), nothing of this input is queued; running
    it again is safe either way, as queued records come back as duplicates."""
    seen: list[tuple[str, bytes | None, bool, Rejected | None]] = []

    def entries() -> Iterator[NewItem | RejectedRecord]:
        for parsed in verify_lines(lines, config, name=name, now=now, workers=workers):
            error, item = parsed.rejected, parsed.item
            if error is not None:
                seen.append((parsed.source, None, False, error))
                yield RejectedRecord(error.kind, parsed.source, parsed.raw, str(error))
            elif item is not None:
                seen.append((parsed.source, item.key, item.payload.get("tee_verified") is False, None))
                yield item

    outcomes = store.add_all(entries())
    for (source, key, unverified, error), outcome in zip(seen, outcomes, strict=True):
        if error is not None:
            yield IntakeReport(source, "rejected", outcome.item_id, reason=error.reason, detail=str(error))
        else:
            status = "duplicate" if outcome.duplicate else "accepted"
            yield IntakeReport(source, status, outcome.item_id, key=key, unverified=unverified)
