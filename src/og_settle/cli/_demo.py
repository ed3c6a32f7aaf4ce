"""``og-settle demo``: the README's main job, run end to end on a fresh local replica."""

from __future__ import annotations

import argparse
from typing import Any


def register(groups: Any) -> None:
    demo = groups.add_parser("demo", help="run the end-to-end demo on a fresh local replica")
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from og_settle.replica import running_replica

    with running_replica() as info:
        print(f"Base Sepolia replica (chain id {info.chain_id}) at {info.rpc_url}, up in {info.startup_seconds:.2f}s")
        print(f"  Permit2  {info.permit2}")
        print(f"  OPG      {info.opg}")
        for account in info.dev_accounts:
            print(f"  funded   {account}")
    return 0
