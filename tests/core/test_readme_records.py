"""The README's example relayer records are what intake accepts: each parses, in its mode, with its signature
checked (and a tampered copy is refused), so the documented schema cannot drift from ``relayer/_intake*.py``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from og_settle._deploy import Deployment
from og_settle.relayer import IntakeConfig, Rejected, parse_record

README = Path(__file__).resolve().parents[2] / "README.md"
# The deployment the examples were signed for (the README names it: chain 84532, a registry at 0x5555…5555).
EXAMPLE_DEPLOYMENT = Deployment(
    chain_id=84532,
    admin="0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    tee_registry="0x4444444444444444444444444444444444444444",
    settlement_registry="0x5555555555555555555555555555555555555555",
    payment_facilitator="0x6666666666666666666666666666666666666666",
)


def _examples() -> list[dict[str, Any]]:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- relayer-record-examples -->\n```json\n(.*?)```", text, flags=re.S)
    assert block is not None, "the README lost its relayer-record-examples block"
    return [json.loads(line) for line in block.group(1).splitlines() if line.strip()]


def _parse(record: dict[str, Any]) -> Any:
    config = IntakeConfig(EXAMPLE_DEPLOYMENT, allow_unverified=True)
    return parse_record(record, config, source="README", now=record["timestamp"])


def test_there_is_one_example_per_inference_mode() -> None:
    assert sorted(record["mode"] for record in _examples()) == ["batch", "individual", "metadata", "private"]


@pytest.mark.parametrize("index", range(4))
def test_each_example_is_accepted_in_its_mode(index: int) -> None:
    record = _examples()[index]
    item = _parse(record)
    assert item.lane is not None and item.lane.value == record["mode"]
    assert item.payload["tee_id"] == record["tee_id"]


@pytest.mark.parametrize("index", range(4))
def test_a_tampered_example_is_refused(index: int) -> None:
    record = dict(_examples()[index])
    field = "output" if record["mode"] == "metadata" else "output_hash"
    record[field] = record[field][:-1] + ("0" if record[field][-1] != "0" else "1")
    with pytest.raises(Rejected, match="invalid_tee_signature"):
        _parse(record)
