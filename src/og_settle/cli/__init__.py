"""The ``og-settle`` command line. Each command group lives in its own module, imported only when it is run."""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from og_settle._errors import InvalidInput, ToolchainError

# Command -> (module under og_settle.cli, one-line help). Each module exposes ``register(subparsers)``; the parser
# it adds sets ``handler`` to a function taking the parsed namespace and returning the exit code. Only the invoked
# command's module is imported (so ``og-settle batch build`` does not load the servers); the others appear in
# ``--help`` from this table.
_COMMANDS: dict[str, tuple[str, str]] = {
    "batch": ("_batch", "build, prove, verify and inspect batch Merkle trees (offline)"),
    "chain": ("_chain", "the local replica of Base Sepolia or Base"),
    "demo": ("_demo", "run the end-to-end demo on a fresh local replica"),
    "deploy": (
        "_deploy",
        "deploy (or find) TeeRegistry, SettlementRegistry and PaymentFacilitator at their CREATE2 addresses",
    ),
    "facilitator": ("_facilitator", "x402 facilitator HTTP server: /verify, /settle, /supported"),
    "gateway": ("_gateway", "the paid-inference gateway: OpenAI routes, x402, TEE signatures"),
    "payment": ("_payment", "x402 Permit2 payments: write requirements, sign, verify (offline)"),
    "permit2": ("_permit2", "the payer's one-time OPG approval of Uniswap Permit2"),
    "relayer": ("_relayer", "the settlement relayer: durable queue, batching, submission"),
    "status": ("_status", "settlement status of a batch, an inference or a payment, on chain"),
    "tee": (
        "_tee",
        "TEE registry: register a TEE (RSA or secp256k1), heartbeat, list, show; sign an inference (stand-in)",
    ),
}


def _installed_version() -> str:
    """The installed distribution's version (from its metadata, not a copy kept in the source)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("og-settle")
    except PackageNotFoundError:
        return "unknown (not installed)"


class _Groups:
    """The subparsers action, handing each command its help from ``_COMMANDS``."""

    def __init__(self, groups: Any) -> None:
        self._groups = groups

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = self._groups.add_parser(name, help=_COMMANDS[name][1], **kwargs)
        return parser


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``og-settle`` parser: every command in full, or with ``only`` just that one (the rest as names)."""
    parser = argparse.ArgumentParser(
        prog="og-settle", description="On-chain settlement for paid, TEE-verified LLM inference."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_installed_version()}")
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    for name, (module, help_text) in _COMMANDS.items():
        if only is None or name == only:
            importlib.import_module(f"og_settle.cli.{module}").register(_Groups(groups))
        else:
            groups.add_parser(name, help=help_text, add_help=False)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names (its first word that is not an option), if it is one; else None."""
    first = next((word for word in argv if not word.startswith("-")), None)
    return first if first in _COMMANDS else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` names (default: the process's own arguments) and give its exit status.

    Called without ``argv`` (the ``og-settle`` script, ``python -m og_settle.cli``) it is the process's last work:
    what the command loaded then stays until the exit, so the collector is not run over it once more at exit
    (``gc.freeze``: about 0.1 s once web3 is loaded)."""
    try:
        code = _main(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`og-settle … | head`): the rest of the output has nowhere to go. Point stdout at
        # /dev/null so that the flush at exit does not fail again, and end as a shell shows a SIGPIPE ending.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    if argv is None:
        gc.freeze()
    return code


def _main(words: list[str]) -> int:
    command = _command(words)
    # Without a known command (--help, --version, a typo) only the names are needed, and nothing is imported.
    args = build_parser(only=command or "").parse_args(words)
    try:
        code: int = args.handler(args)
    except (InvalidInput, ToolchainError) as err:
        print(f"og-settle: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        raise  # our own stdout, not the node (main ends the command quietly)
    except Exception as err:
        # A node that cannot be reached, wherever in a command it is first used: one line, not a traceback.
        rpc_url = getattr(args, "rpc_url", None) or getattr(args, "rpc", None)
        if rpc_url is None or not _is_node_failure(err):
            raise
        print(
            f"og-settle: error: --rpc-url: cannot reach the node at {rpc_url} ({type(err).__name__})", file=sys.stderr
        )
        return 2
    return code


def _is_node_failure(err: BaseException) -> bool:
    """True when ``err`` says the JSON-RPC node could not be reached (refused, reset, timed out, HTTP 5xx)."""
    if isinstance(err, ConnectionError | TimeoutError):
        return True
    if "og_settle.clients._tx" not in sys.modules:  # web3 was never loaded, so the failure is none of its kinds
        return False
    from og_settle.clients import NodeUnavailable, is_connection_error

    return isinstance(err, NodeUnavailable) or is_connection_error(err)


if __name__ == "__main__":
    sys.exit(main())
