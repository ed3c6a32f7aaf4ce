"""The command line's shared options: ``--version``, one ``--rpc-url`` (alias ``--rpc``) everywhere."""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from og_settle.cli import build_parser, main


def _parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield " ".join(path), parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def _rpc_actions() -> list[tuple[str, argparse.Action]]:
    return [
        (command, action)
        for command, parser in _parsers(build_parser())
        for action in parser._actions
        if {"--rpc", "--rpc-url"} & set(action.option_strings)
    ]


def test_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"og-settle {version('og-settle')}\n"


def test_every_rpc_flag_is_rpc_url_with_the_rpc_alias() -> None:
    found = _rpc_actions()
    commands = {command for command, _ in found}
    # The commands that talk to a node (a sample that must stay covered).
    assert {
        "deploy",
        "relayer run",
        "relayer submit",
        "status batch",
        "facilitator serve",
        "permit2 approve",
    } <= commands
    for command, action in found:
        assert action.option_strings == ["--rpc-url", "--rpc"], command


def test_required_rpc_url_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OG_SETTLE_RPC_URL", "http://127.0.0.1:8545")
    args = build_parser().parse_args(["status", "batch", "0x" + "00" * 32, "--deployment", "d.json"])
    assert args.rpc == "http://127.0.0.1:8545"
    # Optional ones, whose presence switches on-chain checks on, do not pick it up.
    args = build_parser().parse_args(["relayer", "submit", "--db", "q.db", "--deployment", "d.json"])
    assert args.rpc is None
    monkeypatch.delenv("OG_SETTLE_RPC_URL")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["status", "batch", "0x" + "00" * 32, "--deployment", "d.json"])


def test_help_lists_every_command() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "og_settle.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name in (
        "batch",
        "chain",
        "demo",
        "deploy",
        "facilitator",
        "gateway",
        "payment",
        "permit2",
        "relayer",
        "status",
        "tee",
    ):
        assert f"    {name} " in shown or f"    {name}\n" in shown, name


def test_only_the_invoked_commands_module_is_imported() -> None:
    probe = (
        "import sys\n"
        "from og_settle.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('og_settle.cli._')))\n"
    )

    def loaded(*argv: str) -> str:
        return subprocess.run(
            [sys.executable, "-c", probe, *argv], capture_output=True, text=True, check=True
        ).stdout.splitlines()[-1]

    assert loaded("batch", "--help") == "['og_settle.cli._batch']"
    assert loaded("--help") == "[]"
    assert loaded("--version") == "[]"


def test_only_the_scripts_own_call_freezes_the_collector(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``og-settle`` (main() without arguments) ends the process next, so it freezes what is loaded (the exit skips a
    collection over it); a caller passing its own arguments (tests, embedding) keeps its collector as it was."""
    argv = ["relayer", "status", "--db", str(tmp_path / "missing.db")]
    monkeypatch.setattr(sys, "argv", ["og-settle", *argv])
    before = gc.get_freeze_count()
    try:
        assert main(argv) == 2
        assert gc.get_freeze_count() == before
        assert main() == 2
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("words", [["relayer", "status", "--json"], ["relayer", "status"]], ids=["json", "text"])
def test_a_reader_that_went_away_ends_the_command_quietly(words: list[str], tmp_path: Path) -> None:
    """``og-settle … | head``: once the reader has gone, the command stops with the status a shell gives a process
    ended by SIGPIPE, and says nothing (no traceback)."""
    from og_settle.relayer import SqliteStore

    SqliteStore(tmp_path / "q.db").close()
    read_end, write_end = os.pipe()
    os.close(read_end)  # no reader at all: the first write fails with EPIPE
    try:
        command = [sys.executable, "-m", "og_settle.cli", *words, "--db", str(tmp_path / "q.db")]
        done = subprocess.run(command, stdout=write_end, stderr=subprocess.PIPE, timeout=60)
    finally:
        os.close(write_end)
    assert done.returncode == 141, done.stderr.decode()[-2000:]
    assert done.stderr == b""
