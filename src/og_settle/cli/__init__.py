"""The ``og-settle`` command line. Each command group lives in its own module and registers itself here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from og_settle._errors import InvalidInput, ToolchainError
from og_settle.cli import (
    _batch,
    _chain,
    _demo,
    _deploy,
    _facilitator,
    _gateway,
    _payment,
    _permit2,
    _relayer,
    _status,
    _tee,
)

# Each module exposes ``register(subparsers)``; the parser it adds sets ``handler`` to a function
# taking the parsed namespace and returning the exit code.
_COMMAND_GROUPS = (_batch, _chain, _demo, _deploy, _facilitator, _gateway, _payment, _permit2, _relayer, _status, _tee)


def _installed_version() -> str:
    """The installed distribution's version (from its metadata, not a copy kept in the source)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("og-settle")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="og-settle", description="On-chain settlement for paid, TEE-verified LLM inference."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_installed_version()}")
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    for module in _COMMAND_GROUPS:
        module.register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except (InvalidInput, ToolchainError) as err:
        print(f"og-settle: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
