"""Relayer intake's native fast path (``og_settle._intake_native`` through ``_intake_fast``) accepts only lines the
Python code accepts, and gives exactly the staged row Python gives for them: the same leaf hash, payload text, lane,
line number and source. Every other line is left to Python, so the reports and the queue do not depend on it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import coincurve
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from og_settle._attestation import InferenceAttestation, settlement_domain
from og_settle._hex import keccak256, to_hex
from og_settle.relayer import IntakeConfig, SqliteStore, parse_jsonl, submit_records
from og_settle.relayer._intake_fast import fast_leaves
from og_settle.relayer._intake_submit import _Job, _verified_run
from og_settle.relayer._store_intake import StagedRow, staged_row
from og_settle.tee import KeyType, RegisteredTeeKey, TeeKey
from og_settle.tee._secp256k1 import SECP256K1_N
from tests.relayer.support import OFFLINE_DEPLOYMENT, TEE_KEY
from tests.tee.test_intake_settlement_data import RSA

NOW = 1_800_000_000.25
OTHER_KEY = TeeKey(bytes.fromhex("5c" * 32))  # not in the directory: not an active TEE
LOWER_KEY = TeeKey(bytes.fromhex("3a" * 32))  # registered with its signer in lowercase, which Python never matches
DOMAIN = settlement_domain(OFFLINE_DEPLOYMENT.chain_id, OFFLINE_DEPLOYMENT.settlement_registry)


class Directory:
    """The registry's answers: a secp256k1 TEE's signer address (as RegistryTeeDirectory gives it), an RSA key."""

    def __init__(self) -> None:
        self._keys = {
            TEE_KEY.tee_id: RegisteredTeeKey(TEE_KEY.tee_id, KeyType.SECP256K1, signer=TEE_KEY.address),
            LOWER_KEY.tee_id: RegisteredTeeKey(LOWER_KEY.tee_id, KeyType.SECP256K1, signer=LOWER_KEY.address.lower()),
            RSA.public.tee_id: RegisteredTeeKey(RSA.public.tee_id, KeyType.RSA, public_key=RSA.public),
        }
        self.asked: list[bytes] = []

    def active_key(self, tee_id: bytes) -> RegisteredTeeKey | None:
        self.asked.append(tee_id)
        return self._keys.get(tee_id)


CONFIG = IntakeConfig(deployment=OFFLINE_DEPLOYMENT, tee_directory=Directory(), max_record_bytes=4096)
HIGHEST = math.floor(NOW + CONFIG.max_future_drift_seconds)
LOWEST = math.ceil(NOW - CONFIG.max_age_seconds)


def _signature(key: TeeKey, tee_id: bytes, inputs: bytes, outputs: bytes, timestamp: int) -> bytes:
    digest = DOMAIN.digest(InferenceAttestation(tee_id, inputs, outputs, timestamp).struct_hash())
    signed = coincurve.PrivateKey(key.private_key).sign_recoverable(digest, hasher=None)  # low s
    return signed[:64] + bytes([27 + signed[64]])


def leaf(index: int, *, key: TeeKey = TEE_KEY, timestamp: int = int(NOW) - 60, **fields: Any) -> dict[str, Any]:
    """A signed batch leaf record (``fields`` added or replacing; ``None`` removes one)."""
    inputs, outputs = keccak256(b"request %d" % index), keccak256(b"response %d" % index)
    tee_id = key.tee_id
    record: dict[str, Any] = {
        "kind": "inference",
        "mode": "batch",
        "ref": f"r-{index}",
        "tee_id": to_hex(tee_id),
        "timestamp": timestamp,
        "input_hash": to_hex(inputs),
        "output_hash": to_hex(outputs),
        "tee_signature": to_hex(_signature(key, tee_id, inputs, outputs, timestamp)),
    }
    record.update(fields)
    return {name: value for name, value in record.items() if value is not None}


def _high_s(record: dict[str, Any]) -> dict[str, Any]:
    signature = bytes.fromhex(record["tee_signature"][2:])
    s = SECP256K1_N - int.from_bytes(signature[32:64], "big")
    flipped = signature[:32] + s.to_bytes(32, "big") + bytes([55 - signature[64]])  # the same point, high s
    return {**record, "tee_signature": to_hex(flipped)}


def _with_v(record: dict[str, Any], v: int) -> dict[str, Any]:
    signature = bytes.fromhex(record["tee_signature"][2:])
    return {**record, "tee_signature": to_hex(signature[:64] + bytes([v]))}


def _python_row(line: bytes | str, number: int, config: IntakeConfig = CONFIG) -> StagedRow | None:
    """The row Python stages for an accepted line, or None if it refuses the line (or it is blank)."""
    parsed = list(parse_jsonl([line], config, name="in", now=NOW, first_line=number))
    if not parsed or parsed[0].item is None:
        return None
    return staged_row(number, parsed[0].item)


def _agree(lines: list[bytes], config: IntakeConfig = CONFIG) -> list[StagedRow | None]:
    """The fast path's rows, each checked against Python's judgement of its line."""
    fast = fast_leaves(config, "in", NOW)
    assert fast is not None
    rows = fast(7, list(lines))
    assert len(rows) == len(lines)
    for number, (line, row) in enumerate(zip(lines, rows, strict=True), start=7):
        if row is not None:
            assert row == _python_row(line, number, config), line
    return rows


def _lines(*records: dict[str, Any], **dumps: Any) -> list[bytes]:
    return [(json.dumps(record, **dumps) + "\n").encode() for record in records]


def _taken(lines: list[bytes], config: IntakeConfig = CONFIG) -> list[bool]:
    return [row is not None for row in _agree(lines, config)]


def test_plain_leaves_are_taken_and_match_python() -> None:
    records = [
        leaf(1),
        leaf(2, mode="private"),
        leaf(3, mode=None),
        leaf(4, ref=None),
        {**leaf(5), "ref": None},
        leaf(6, ref=""),
        leaf(7, ref="a ref with spaces, {braces}: and 'quotes' ~"),
        leaf(8, timestamp=HIGHEST),
        leaf(9, timestamp=LOWEST),
        leaf(10, timestamp=0) if LOWEST <= 0 else leaf(10, timestamp=LOWEST + 1),
    ]
    lines = _lines(*records) + _lines(*records, separators=(",", ":"))
    lines.append(
        b'\t { "kind" :"inference","tee_id":'
        + json.dumps(records[0]["tee_id"]).encode()
        + b" ,"
        + json.dumps({k: v for k, v in records[0].items() if k not in ("kind", "tee_id")})[1:].encode()
        + b" \r\n"
    )
    upper = dict(records[0])
    for name in ("tee_id", "input_hash", "output_hash", "tee_signature"):
        upper[name] = "0X" + upper[name][2:].upper()
    lines += _lines(upper, dict(reversed(list(records[1].items()))))
    lines.append(json.dumps(records[0]).encode())  # the last line, without a newline
    assert all(_taken(lines)), [line for line, taken in zip(lines, _taken(lines), strict=True) if not taken]
    rows = _agree(lines)
    assert {row[2] for row in rows if row is not None} == {"batch", "private"}
    assert rows[0] is not None and rows[0][7] == "in:7" and rows[0][0] == 7


def test_everything_else_is_left_to_python() -> None:
    base = leaf(1)
    text = json.dumps(base)
    records = [
        leaf(2, mode="BATCH"),  # Python accepts it (mode names are case-insensitive), natively left
        leaf(3, mode="SETTLE_BATCH"),
        leaf(4, ref=7),
        leaf(5, ref='a "quoted" ref'),
        leaf(6, ref="tab\there"),
        leaf(7, ref="caf\u00e9"),
        leaf(8, payer="0x" + "11" * 20),
        leaf(9, extra=1),
        leaf(10, mode="individual"),
        leaf(11, kind="Inference"),
        leaf(12, key=OTHER_KEY),  # not an active TEE
        leaf(13, key=LOWER_KEY),  # a signer Python's comparison never matches
        {**leaf(14), "tee_id": to_hex(RSA.public.tee_id)},  # an RSA TEE
        leaf(15, timestamp=HIGHEST + 1),
        leaf(16, timestamp=LOWEST - 1),
        {**leaf(17), "tee_signature": leaf(18)["tee_signature"]},  # another leaf's signature
        {**leaf(19, key=OTHER_KEY), "tee_id": to_hex(TEE_KEY.tee_id)},  # signed by another key
        _high_s(leaf(20)),
        _with_v(leaf(21), 0),
        _with_v(leaf(22), 29),
        {**leaf(23), "tee_signature": leaf(23)["tee_signature"][:-2]},  # 64 bytes
        {**leaf(24), "tee_signature": leaf(24)["tee_signature"] + "00"},  # 66 bytes
        {**leaf(25), "tee_signature": "0x" + "00" * 64 + "1b"},  # r = s = 0
        {**leaf(26), "timestamp": float(int(NOW) - 60)},
        {**leaf(27), "timestamp": 10**20},
        {**leaf(28), "timestamp": -5},
        {**leaf(29), "timestamp": True},
        {**leaf(30), "input_hash": "0x" + "ab" * 31},
        {**leaf(31), "input_hash": "ab" * 32},
        {**leaf(32), "tee_id": "0x" + "g" * 64},
        {key: value for key, value in leaf(33).items() if key != "output_hash"},
        {key: value for key, value in leaf(34).items() if key != "kind"},
    ]
    lines = _lines(*records)
    lines += _lines(leaf(35, ref="caf\u00e9"), ensure_ascii=False)  # raw UTF-8
    lines += [
        b"",
        b"\n",
        b"   \n",
        b"{not json\n",
        b"\xef\xbb\xbf" + text.encode(),  # a BOM
        text.replace('"kind": "inference"', '"kind": "inference", "kind": "inference"').encode(),
        text.replace('"mode": "batch"', '"mode": "batch", "mode": "private"').encode(),
        text.replace('"timestamp": ', '"timestamp": 0').encode(),  # a leading zero
        text.replace('"mode": "batch"', '"mode": "b\\u0061tch"').encode(),
        (text + " x").encode(),
        (text + "}").encode(),
        text[:-1].encode(),
        text.replace('"inference"', "'inference'").encode(),
        json.dumps([base]).encode(),
    ]
    assert not any(_taken(lines)), [line for line, taken in zip(lines, _taken(lines), strict=True) if taken]
    # Python's own verdicts on them: the mode aliases, an int ref, escapes, raw UTF-8, a payer and repeated keys
    # (the last one counts) are accepted, the rest refused (or blank)
    accepted = [line for number, line in enumerate(lines) if _python_row(line, number + 1) is not None]
    refs = ["r-2", "r-3", 7, 'a "quoted" ref', "tab\there", "caf\u00e9", "r-8", "caf\u00e9", "r-1", "r-1", "r-1"]
    assert [json.loads(line)["ref"] for line in accepted] == refs


def test_the_record_limit_counts_the_whole_line() -> None:
    line = (json.dumps(leaf(1)) + "\n").encode()
    exact = IntakeConfig(deployment=OFFLINE_DEPLOYMENT, tee_directory=Directory(), max_record_bytes=len(line))
    short = IntakeConfig(deployment=OFFLINE_DEPLOYMENT, tee_directory=Directory(), max_record_bytes=len(line) - 1)
    assert _taken([line], exact) == [True]
    assert _taken([line], short) == [False]
    assert _python_row(line, 1, short) is None


def test_no_fast_path_without_a_directory_or_signature_checks() -> None:
    assert fast_leaves(IntakeConfig(deployment=OFFLINE_DEPLOYMENT), "in", NOW) is None
    unchecked = IntakeConfig(deployment=OFFLINE_DEPLOYMENT, tee_directory=Directory(), verify_tee_signatures=False)
    assert fast_leaves(unchecked, "in", NOW) is None


def test_each_tee_is_asked_once_per_chunk() -> None:
    directory = Directory()
    config = IntakeConfig(deployment=OFFLINE_DEPLOYMENT, tee_directory=directory)
    assert all(_taken(_lines(*(leaf(i) for i in range(5))), config))
    assert directory.asked == [TEE_KEY.tee_id] * 6  # once natively, once for each Python re-check in _agree


def test_a_verified_run_is_the_same_with_and_without_the_fast_path() -> None:
    """Good and bad lines, bytes and text: the rows, refusals and line numbers do not depend on the fast path."""
    lines: list[Any] = _lines(leaf(1), leaf(2, ref=7), _high_s(leaf(3)), leaf(4, mode="private"))
    lines += ["", json.dumps(leaf(5)), b"{bad\n", *_lines(leaf(1), leaf(6, key=OTHER_KEY), leaf(7))]
    job = _Job(CONFIG, "in", NOW, None)
    fast = _Job(CONFIG, "in", NOW, fast_leaves(CONFIG, "in", NOW))
    slow_run, fast_run = _verified_run(job, 3, lines), _verified_run(fast, 3, lines)
    assert fast_run.rows == slow_run.rows and fast_run.unverified == slow_run.unverified
    assert [(i, e.reason, str(e)) for i, e in fast_run.refusals.items()] == [
        (i, e.reason, str(e)) for i, e in slow_run.refusals.items()
    ]
    assert [row[0] for row in fast_run.rows] == [3, 4, 5, 6, 8, 9, 10, 11, 12]
    assert {index: error.reason for index, error in fast_run.refusals.items()} == {
        2: "invalid_tee_signature",
        5: "malformed",
        7: "tee_not_active",
    }


_LINE = json.dumps(leaf(1))
_ALPHABET = '0123456789abcdefABCDEFxX"\\{}[]:, \t\r.-+eE\u00e9\x00nulltrue'


@settings(max_examples=400, deadline=None)
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(_LINE)), st.integers(0, 3), st.text(_ALPHABET, max_size=3)), min_size=1, max_size=3
    )
)
def test_an_edited_leaf_is_taken_only_as_python_takes_it(edits: list[tuple[int, int, str]]) -> None:
    """Any few edits of a good line (characters replaced, removed or inserted anywhere): the fast path either leaves
    the line to Python or gives exactly Python's row for it."""
    text = _LINE
    for at, removed, inserted in edits:
        text = text[:at] + inserted + text[at + removed :]
    _agree([text.encode("utf-8", errors="surrogatepass")])


@pytest.mark.parametrize("field", ["tee_id", "input_hash", "output_hash", "tee_signature"])
def test_a_changed_digit_is_caught_by_the_signature(field: str) -> None:
    record = leaf(1)
    digits = record[field]
    changed = {**record, field: digits[:-1] + ("0" if digits[-1] != "0" else "1")}
    assert _taken(_lines(changed)) == [False]
    assert _python_row(_lines(changed)[0], 1) is None


def test_the_time_window_is_the_python_one() -> None:
    """``now`` with a fraction: the last accepted second on each side, natively and in Python."""
    for timestamp, accepted in ((HIGHEST, True), (HIGHEST + 1, False), (LOWEST, True), (LOWEST - 1, False)):
        line = _lines(leaf(1, timestamp=timestamp))
        assert _taken(line) == [accepted]
        assert (_python_row(line[0], 1) is not None) == accepted
    assert HIGHEST < NOW + CONFIG.max_future_drift_seconds < HIGHEST + 1


def test_submit_queues_the_same_with_and_without_the_fast_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reports and queue rows (payload text, keys, reasons, sources, duplicates) through submit_records."""
    from og_settle.relayer import _intake_submit

    lines: list[Any] = _lines(leaf(1), leaf(2, mode="private"), _high_s(leaf(3)), leaf(1), leaf(4, ref=7))
    lines += ["", b"{bad\n", *_lines(leaf(5, key=OTHER_KEY), leaf(2, mode="private"), leaf(6))]
    outcomes = []
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(_intake_submit, "fast_leaves", lambda *args: None)
        for workers in (1, 2):
            store = SqliteStore(tmp_path / f"q-{fast}-{workers}.db")
            try:
                reports = [
                    r.to_json() for r in submit_records(store, lines, CONFIG, name="in", now=NOW, workers=workers)
                ]
                queue = [(i.id, i.kind, i.lane, i.key, i.payload, i.state, i.reason, i.source) for i in store.items()]
            finally:
                store.close()
            outcomes.append((reports, queue))
    assert all(outcome == outcomes[0] for outcome in outcomes[1:])
    reports = outcomes[0][0]
    statuses = [
        "accepted",
        "accepted",
        "rejected",
        "duplicate",
        "accepted",
        "rejected",
        "rejected",
        "duplicate",
        "accepted",
    ]
    assert [r["status"] for r in reports] == statuses
