"""Intake verified by several processes gives exactly what one process gives: the same reports, line numbers and
queue rows, whatever the worker count and however the lines are cut into chunks."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from og_settle._errors import InvalidInput
from og_settle._hex import to_hex
from og_settle.relayer import (
    IntakeConfig,
    ParsedLine,
    SqliteStore,
    StaticTeeDirectory,
    parse_jsonl,
    submit_records,
    verify_lines,
)
from tests.relayer.support import OFFLINE_DEPLOYMENT, TEE_KEY, inference_record, payment_record
from tests.tee.test_intake_settlement_data import RSA, _gateway_data, _header

DEPLOYMENT = OFFLINE_DEPLOYMENT
CONFIG = IntakeConfig(
    deployment=DEPLOYMENT, tee_directory=StaticTeeDirectory([TEE_KEY.public, RSA.public]), max_record_bytes=4096
)
NOW = time.time()


def _lines() -> list[str]:
    """Every kind of record and every way a line can be bad, good and bad lines interleaved."""
    good = [inference_record(DEPLOYMENT, i, now=int(NOW)) for i in range(8)]
    forged = {**good[1], "tee_signature": to_hex(TEE_KEY.sign_digest(b"\x01" * 32))}
    rsa = {
        "kind": "settlement_data",
        "settlement_type": "batch",
        "data": _header(_gateway_data(RSA, when=int(NOW) - 30)),
    }
    lines = [json.dumps(r) for r in good[:3]]
    lines += [
        "{not json",
        "",
        json.dumps(forged),
        json.dumps(inference_record(DEPLOYMENT, 20, mode="individual", now=int(NOW))),
        json.dumps(inference_record(DEPLOYMENT, 21, mode="metadata", now=int(NOW))),
        json.dumps(rsa),
        json.dumps(good[0]),  # a duplicate of line 1
        json.dumps({"kind": "inference", "mode": "batch", "tee_id": "0x12"}),
        "x" * 5000,  # oversized
        json.dumps(payment_record(DEPLOYMENT, 1, now=int(NOW))),
        json.dumps({**good[3], "timestamp": int(NOW) - 10 * 24 * 3600}),
        "   ",
        json.dumps({"kind": "refund"}),
        *(json.dumps(r) for r in good[4:]),
    ]
    return lines


def _view(parsed: ParsedLine) -> tuple[Any, ...]:
    error = parsed.rejected
    return (parsed.line, parsed.source, parsed.item, parsed.raw, None if error is None else (error.reason, str(error)))


def test_the_workers_verify_exactly_what_one_process_does() -> None:
    """Same lines, sources, items, refusals and raw text for 1 to 3 workers and any chunk size, in line order."""
    lines = _lines()
    alone = [_view(p) for p in parse_jsonl(lines, CONFIG, name="in.jsonl", now=NOW)]
    assert len(alone) == len(lines) - 2  # the blank lines give nothing
    refused = {line: error[0] for line, _, _, _, error in alone if error is not None}
    assert refused == {
        4: "malformed",
        6: "invalid_tee_signature",
        11: "invalid_record",
        12: "oversized",
        14: "timestamp_too_old",
        16: "unknown_kind",
    }
    for workers, chunk_lines in ((1, 1000), (2, 1), (2, 4), (3, 5)):
        parallel = verify_lines(lines, CONFIG, name="in.jsonl", now=NOW, workers=workers, chunk_lines=chunk_lines)
        assert [_view(p) for p in parallel] == alone, (workers, chunk_lines)


def _queue(store: SqliteStore) -> list[tuple[Any, ...]]:
    return [(i.id, i.kind, i.lane, i.key, i.payload, i.state, i.reason, i.source) for i in store.items()]


def test_submit_gives_the_same_reports_and_queue_for_any_worker_count(tmp_path: Path) -> None:
    lines = _lines()
    outcomes = []
    for workers in (1, 2):
        store = SqliteStore(tmp_path / f"q{workers}.db")
        try:
            reports = [r.to_json() for r in submit_records(store, lines, CONFIG, name="in", now=NOW, workers=workers)]
            outcomes.append((reports, _queue(store)))
        finally:
            store.close()
    assert outcomes[0] == outcomes[1]
    reports, queue = outcomes[0]
    statuses = {r["source"]: r["status"] for r in reports}
    assert statuses["in:10"] == "duplicate" and statuses["in:4"] == "rejected" and statuses["in:9"] == "accepted"
    # one row per accepted or rejected line, in line order; a duplicate points at the row of its first line
    assert [row[-1] for row in queue] == [r["source"] for r in reports if r["status"] != "duplicate"]
    assert [r["item"] for r in reports if r["source"] in ("in:1", "in:10")] == [queue[0][0]] * 2


def test_a_worker_count_below_one_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"^workers: expected at least 1, got 0$"):
        list(verify_lines(["{}"], CONFIG, workers=0))
