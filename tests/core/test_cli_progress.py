"""Long work shows progress on stderr, never on stdout: in place on a terminal for big inputs, as plain lines when
asked for with --progress, and nothing otherwise."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from og_settle.cli._progress import AUTO_MIN_BYTES, Progress
from tests.core.test_readme_records import EXAMPLE_DEPLOYMENT


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_for_big_inputs_only() -> None:
    big, small = _Terminal(), _Terminal()
    Progress("reading", AUTO_MIN_BYTES, big).update(AUTO_MIN_BYTES // 2)
    Progress("reading", AUTO_MIN_BYTES - 1, small).update(10)
    assert big.getvalue().startswith("\rreading [###############...............]  50%")
    assert small.getvalue() == ""


def test_elsewhere_only_when_asked_and_as_plain_lines() -> None:
    quiet, asked = io.StringIO(), io.StringIO()
    Progress("reading", 10 * AUTO_MIN_BYTES, quiet).update(5)
    progress = Progress("reading", 200, asked, forced=True)
    progress.update(50, "note")
    progress.update(100)  # within the interval: not written again
    progress.close()
    assert quiet.getvalue() == ""
    assert asked.getvalue() == "og-settle: reading 25% note\n"


def _og_settle(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "og_settle.cli", *argv], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def test_batch_build_progress_goes_to_stderr(tmp_path: Path) -> None:
    leaf = {"tee_id": "0x" + "11" * 32, "input_hash": "0x" + "22" * 32, "output_hash": "0x" + "33" * 32}
    lines = [json.dumps({**leaf, "tee_signature": "0x" + "44" * 65, "timestamp": n}) for n in range(50)]
    (tmp_path / "leaves.jsonl").write_text("\n".join(lines) + "\n")
    done = _og_settle("batch", "build", "leaves.jsonl", "-o", "dump.json", "--json", "--progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["count"] == 50  # stdout is the data alone
    assert done.stderr.startswith("og-settle: reading leaves ")


def test_relayer_submit_progress_goes_to_stderr(tmp_path: Path) -> None:
    (tmp_path / "d.json").write_text(EXAMPLE_DEPLOYMENT.to_json())
    (tmp_path / "records.jsonl").write_text('{"kind": "inference"}\n' * 20)
    argv = ["relayer", "submit", "--db", "q.sqlite", "--deployment", "d.json", "records.jsonl", "--progress"]
    done = _og_settle(*argv, cwd=tmp_path)
    assert done.returncode == 1  # every record is refused (tee_id missing), and said so on stdout
    reports = [json.loads(line) for line in done.stdout.splitlines()]
    assert reports[-1] == {"summary": {"accepted": 0, "duplicate": 0, "rejected": 20}}
    assert done.stderr.startswith("og-settle: records.jsonl ")
    assert "Traceback" not in done.stderr
