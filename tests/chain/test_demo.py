"""`make demo` end to end, small: every mode and both payment schemes settle on a fresh replica of its own."""

from __future__ import annotations

from pathlib import Path

from og_settle.demo import MODES, format_report, run_demo


def test_demo_settles_every_mode_and_reports_success(tmp_path: Path) -> None:
    report = run_demo(tmp_path, count=24, say=lambda line: None)
    assert report.failures == [], format_report(report, tmp_path)
    assert set(report.inferences_by_mode) == set(MODES)
    assert report.payments_by_scheme == {"exact": 12, "upto": 12}
    assert report.settled_by_lane["payment"] == 24
    for mode in ("batch", "individual", "metadata"):
        assert report.settled_by_lane[mode] == report.inferences_by_mode[mode]
        assert report.gas_by_lane[mode] > 0
    assert report.dumps and all(Path(dump).is_file() for dump in report.dumps)
    assert (tmp_path / "deployments" / "84532.json").is_file()
    assert "OK: every inference and payment settled" in format_report(report, tmp_path)
