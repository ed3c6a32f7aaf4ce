"""Hints name only flags that exist: every ``--flag`` in og_settle's messages, and every flag the README gives an
``og-settle`` command, is an option of the command line (for the README: of that very command)."""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import og_settle
from og_settle.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(og_settle.__file__).parent
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
# Strings under replica/ are arguments to anvil and solc-js, not hints to og-settle's user.
EXTERNAL_TOOLS = PACKAGE / "replica"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


def _all_options(parser: argparse.ArgumentParser) -> set[str]:
    found = _options(parser)
    for sub in _subcommands(parser).values():
        found |= _all_options(sub)
    return found


def _message_flags() -> dict[str, set[str]]:
    """Each ``--flag`` in a string literal of og_settle (f-string parts included), with the files naming it."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if EXTERNAL_TOOLS in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for flag in FLAG.findall(node.value):
                    found.setdefault(flag, set()).add(str(path.relative_to(PACKAGE)))
    return found


def test_every_flag_a_message_names_exists() -> None:
    options = _all_options(build_parser())
    flags = _message_flags()
    assert "--rpc-url" in flags and "--deployment" in flags  # the scan sees the messages
    unknown = {flag: sorted(files) for flag, files in flags.items() if flag not in options}
    assert unknown == {}


def test_the_relayer_names_no_removed_flag() -> None:
    # The hint that used to suggest --registry and --facilitator, which relayer submit never had.
    assert "--registry" not in _message_flags()


def _readme_commands() -> list[str]:
    """Every ``og-settle …`` command line in the README: in fenced shell blocks (continuations joined) and in
    inline code spans."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            commands += re.findall(r"(?:^|[\s;&|(=])(og-settle\s[^|;&#>]*)", line)
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    commands += [span for span in re.findall(r"`([^`\n]+)`", prose) if span.startswith("og-settle ")]
    return commands


def _check_command(line: str, root: argparse.ArgumentParser) -> list[str]:
    words = line.split()[1:]
    parser, path = root, ["og-settle"]
    while words and words[0] in _subcommands(parser):
        parser = _subcommands(parser)[words[0]]
        path.append(words.pop(0))
    rest = " ".join(["", *words]).split(" -- ")[0]  # what follows `--` belongs to another program (chain exec)
    known = _options(parser) | _options(root)
    return [f"{' '.join(path)}: {flag}" for flag in FLAG.findall(rest) if flag not in known]


def test_every_flag_the_readme_gives_a_command_is_one_of_its_options() -> None:
    root = build_parser()
    commands = _readme_commands()
    assert len(commands) > 30  # the extraction sees the README's commands
    problems = [problem for line in commands for problem in _check_command(line, root)]
    assert problems == []


def test_the_check_catches_a_flag_the_command_lacks() -> None:
    root = build_parser()
    assert _check_command("og-settle relayer submit --db q --registry 0x01", root) == [
        "og-settle relayer submit: --registry"
    ]
    assert _check_command("og-settle chain exec -- ape test --network x", root) == []
