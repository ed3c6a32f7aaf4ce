"""A compilation that is not cached says what it compiles and how long it should take, that it is still running
(here every 0.2 s instead of 30 s), and how long it took, on stderr; its output is untouched."""

from __future__ import annotations

import sys

import pytest

from og_settle.replica._toolchain import _run_with_progress


def test_a_long_compile_reports_progress_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    slow = "import sys, time; data = sys.stdin.read(); time.sleep(0.7); print(len(data))"
    code, out, err = _run_with_progress(
        [sys.executable, "-c", slow], "x" * 100_000, "Thing", "about a second", every=0.2
    )
    assert (code, out, err) == (0, "100000\n", "")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "og-settle: compiling Thing (first run only, cached in .cache/solc; about a second)"
    assert len([line for line in lines if line.startswith("og-settle: still compiling Thing: ")]) >= 2
    assert lines[-1].startswith("og-settle: compiled Thing in ")
