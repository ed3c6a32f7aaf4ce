"""The demo's HTTP half (``make demo``): every mode and scheme paid over HTTP and proven on chain."""

from __future__ import annotations

from pathlib import Path

from og_settle.demo import format_http_report, run_http_demo


def test_the_http_demo_pays_every_mode_and_proves_it(tmp_path: Path) -> None:
    report = run_http_demo(tmp_path, say=lambda line: None)
    assert not report.failures, format_http_report(report)
    assert len(report.answers) == 8  # 4 modes x (exact, upto)
    proven = "\n".join(report.checks)
    assert proven.count("TEE signature against the registry's key: ok") == 8
    assert proven.count("RSA signature on chain") + proven.count("RSA signature checked on chain") == 2  # batch
    assert proven.count("individual settlement") == 4  # individual and metadata, with their DA pointers
    assert "OK" in format_http_report(report)
