"""``og-settle tee sign``: the records it prints are accepted by intake in every mode, and its mistakes are one line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from og_settle.cli import main
from og_settle.relayer import IntakeConfig, Rejected, parse_record
from og_settle.tee import RsaTeeKey
from tests.core.test_readme_records import EXAMPLE_DEPLOYMENT

TEE_KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
PAYER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
HASH_A, HASH_B = "0x" + "0a" * 32, "0x" + "0b" * 32
MODE_ARGS = {
    "individual": ["--input-hash", HASH_A, "--output-hash", HASH_B, "--payer", PAYER],
    "batch": ["--input-hash", HASH_A, "--output-hash", HASH_B],
    "private": ["--input-hash", HASH_A, "--output-hash", HASH_B, "--payer", PAYER],
    "metadata": ["--payer", PAYER, "--model", "m", "--input", "question", "--output", "answer", "--metadata", "{}"],
}


@pytest.fixture
def deployment_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OG_SETTLE_TEST_TEE_KEY", TEE_KEY)
    path = tmp_path / "84532.json"
    path.write_text(EXAMPLE_DEPLOYMENT.to_json())
    return path


def _sign(deployment_file: Path, *extra: str) -> list[str]:
    return ["tee", "sign", "--deployment", str(deployment_file), "--tee-key-env", "OG_SETTLE_TEST_TEE_KEY", *extra]


@pytest.mark.parametrize("mode", sorted(MODE_ARGS))
def test_a_signed_record_is_accepted_by_intake(
    mode: str, deployment_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_sign(deployment_file, "--mode", mode, "--ref", "r1", *MODE_ARGS[mode])) == 0
    record = json.loads(capsys.readouterr().out)
    item = parse_record(record, IntakeConfig(EXAMPLE_DEPLOYMENT, allow_unverified=True), source="t")
    assert item.lane is not None and item.lane.value == mode
    assert record["ref"] == "r1"
    # Signed for this deployment's domain only: another registry's intake refuses it.
    other = IntakeConfig(replace(EXAMPLE_DEPLOYMENT, settlement_registry="0x" + "77" * 20), allow_unverified=True)
    with pytest.raises(Rejected, match="invalid_tee_signature"):
        parse_record(record, other, source="t")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--mode", "individual", "--input-hash", HASH_A, "--output-hash", HASH_B], "--payer: required"),
        (["--mode", "metadata", "--input-hash", HASH_A], "--input-hash: a metadata record carries"),
        (["--mode", "batch", "--input-hash", HASH_A, "--output-hash", HASH_B, "--model", "m"], "--model: only"),
        (["--mode", "batch", "--input-hash", "0x12", "--output-hash", HASH_B], "--input-hash"),
    ],
)
def test_mistakes_are_one_line(
    extra: list[str], message: str, deployment_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_sign(deployment_file, *extra)) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and message in err


def test_an_rsa_key_is_sent_to_the_settlement_data_path(
    deployment_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pem = tmp_path / "tee.pem"
    pem.write_text(RsaTeeKey.generate().to_pem())
    argv = ["tee", "sign", "--deployment", str(deployment_file), "--tee-key-file", str(pem), *MODE_ARGS["batch"]]
    assert main(argv) == 2
    assert "settlement_data" in capsys.readouterr().err
