"""``og-settle demo``: the README's main job, run end to end on a fresh local replica."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(groups: Any) -> None:
    demo = groups.add_parser("demo")
    demo.add_argument("--count", type=int, default=300, help="synthetic inferences to create (default 300)")
    demo.add_argument("--out-dir", type=Path, default=Path("demo-output"), help="where dumps, logs and the queue go")
    demo.add_argument("--skip-http", action="store_true", help="skip the HTTP half (clients -> gateway -> chain)")
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from og_settle.demo import format_http_report, format_report, run_demo, run_http_demo

    report = run_demo(args.out_dir, count=args.count)
    print(format_report(report, args.out_dir))
    failed = bool(report.failures)
    if not args.skip_http:
        print("\n-> the product flow over HTTP: clients pay the gateway, the TEE signs, the chain proves", flush=True)
        http = run_http_demo(args.out_dir / "http")
        print(format_http_report(http))
        failed = failed or bool(http.failures)
    return 1 if failed else 0
