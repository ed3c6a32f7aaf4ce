"""The fee flags ``relayer run`` and ``facilitator serve`` share (``--fee-bump``, ``--max-fee-gwei``), read into
one :class:`og_settle.clients.FeeBump`."""

from __future__ import annotations

import argparse
from typing import Any

from og_settle._errors import InvalidInput

__all__ = ["add_fee_options", "fee_bump"]


def add_fee_options(group: Any) -> None:
    """Add ``--fee-bump`` and ``--max-fee-gwei`` to an argument group (or parser)."""
    group.add_argument(
        "--fee-bump", type=float, default=12.5, help="percent both EIP-1559 fees rise in a replacement (at least 10)"
    )
    group.add_argument("--max-fee-gwei", type=float, default=100.0, help="cap on maxFeePerGas, in gwei")


def fee_bump(args: argparse.Namespace) -> Any:
    """The ``FeeBump`` the flags ask for; a bad value is a one-line error naming its flag."""
    from og_settle.clients import FeeBump

    if not 10 <= args.fee_bump <= 900:
        raise InvalidInput(
            f"--fee-bump: must be 10 to 900 percent (nodes refuse smaller replacements), got {args.fee_bump:g}"
        )
    if args.max_fee_gwei <= 0:
        raise InvalidInput(f"--max-fee-gwei: must be positive, got {args.max_fee_gwei:g}")
    return FeeBump(factor=1 + args.fee_bump / 100, max_fee_per_gas=int(args.max_fee_gwei * 10**9))
