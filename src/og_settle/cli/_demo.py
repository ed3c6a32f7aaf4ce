"""``og-settle demo``: the README's main job, run end to end on a fresh local replica."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(groups: Any) -> None:
    demo = groups.add_parser("demo", help="run the end-to-end demo on a fresh local replica")
    demo.add_argument("--count", type=int, default=300, help="synthetic inferences to create (default 300)")
    demo.add_argument("--out-dir", type=Path, default=Path("demo-output"), help="where dumps, logs and the queue go")
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from og_settle._demo import format_report, run_demo

    report = run_demo(args.out_dir, count=args.count)
    print(format_report(report, args.out_dir))
    return 1 if report.failures else 0
