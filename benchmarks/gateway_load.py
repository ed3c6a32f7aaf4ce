"""``make bench`` -> ``gateway-paid``: paid chat requests per second through ``og-settle gateway serve`` on loopback.

One fresh Base Sepolia replica; ``og-settle facilitator serve`` and ``og-settle gateway serve`` (stand-in TEE, the
deterministic stand-in model) run as child processes, as an operator runs them (``tests/gateway/stack.py``). Every
request is a paid ``POST /v1/chat/completions`` with its own exact payment, signed beforehand as the stock x402 SDK
signs (the canonical exact proxy as spender), in ``private`` mode: verify through the facilitator, run the model,
sign with the TEE, settle on chain. ``--gateway-clients`` clients (default 8) keep one request each in flight until
``--gateway-requests`` (default 200) are answered.

Reported: requests/s, p50/p99 latency as the client sees it, errors, and from the gateway's own per-request log the
share of the gateway's time spent in the facilitator's ``/verify`` and ``/settle`` (the rest is the model, the TEE
signature and the HTTP handling). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

Row = tuple[str, str, str]
_BODY = {"model": "stand-in-echo", "messages": [{"role": "user", "content": "what is the capital of France"}]}


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gateway-requests", type=int, default=200, help="paid requests for gateway-paid")
    parser.add_argument("--gateway-clients", type=int, default=8, help="concurrent clients for gateway-paid")


def _payments(stack: Any, requirement: Any, count: int) -> list[str]:
    from og_settle.clients import make_web3
    from tests.support.stock import stock_payment

    now = int(make_web3(stack.rpc_url).eth.get_block("latest")["timestamp"])
    headers = []
    for index in range(count):
        payment = stock_payment(
            stack.payer_key(1 + index % 5),
            chain_id=requirement.chain_id,
            token=requirement.asset,
            amount=requirement.amount,
            to=requirement.pay_to,
            now=now,
        )
        body = {"x402Version": 2, "accepted": requirement.to_json(), "payload": payment.payload()}
        headers.append(base64.b64encode(json.dumps(body).encode()).decode())
    return headers


async def _load(url: str, headers: list[str], clients: int) -> tuple[list[float], int, float]:
    import httpx

    queue: asyncio.Queue[str] = asyncio.Queue()
    for header in headers:
        queue.put_nowait(header)
    latencies: list[float] = []
    errors = 0

    async def client() -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            while not queue.empty():
                header = queue.get_nowait()
                started = time.perf_counter()
                try:
                    response = await http.post(
                        "/v1/chat/completions",
                        json=_BODY,
                        headers={"PAYMENT-SIGNATURE": header, "X-SETTLEMENT-TYPE": "private"},
                    )
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, errors, time.perf_counter() - started


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def gateway_paid(options: argparse.Namespace) -> list[Row]:
    import httpx

    from og_settle._x402 import decode_payment_required_header
    from og_settle.demo._stack import running_stack

    with (
        tempfile.TemporaryDirectory(prefix="og-settle-gateway-bench-") as work,
        running_stack(Path(work), "base-sepolia", register_tee=False) as stack,
    ):
        answer = httpx.post(stack.gateway_url + "/v1/chat/completions", json=_BODY, timeout=30)
        requirement = next(
            r for r in decode_payment_required_header(answer.headers["PAYMENT-REQUIRED"]).accepts if r.scheme == "exact"
        )
        warm_up = _payments(stack, requirement, 10)
        asyncio.run(_load(stack.gateway_url, warm_up, 2))
        headers = _payments(stack, requirement, options.gateway_requests)
        latencies, errors, seconds = asyncio.run(_load(stack.gateway_url, headers, options.gateway_clients))
        paid = [
            line
            for line in stack.gateway.log_lines()
            if line.get("event") == "http.request" and line.get("status") == 200 and "settle_ms" in line
        ][len(warm_up) :]
    total = sum(line["ms"] for line in paid) or float("nan")
    verify = sum(line["verify_ms"] for line in paid)
    settle = sum(line["settle_ms"] for line in paid)
    model = sum(line["model_ms"] for line in paid)
    return [
        (
            "paid requests answered",
            f"{len(latencies)}",
            f"of {options.gateway_requests}, {options.gateway_clients} clients",
        ),
        ("errors", f"{errors}", "non-200 answers or transport failures"),
        ("throughput", f"{len(latencies) / seconds:.1f}", "paid requests/s (verify + model + TEE + settle on chain)"),
        ("latency p50", f"{_percentile(latencies, 0.50) * 1000:.1f}", "ms, as the client sees it"),
        ("latency p99", f"{_percentile(latencies, 0.99) * 1000:.1f}", "ms"),
        ("share in /verify", f"{100 * verify / total:.0f}%", "of the gateway's time per request (facilitator call)"),
        ("share in /settle", f"{100 * settle / total:.0f}%", "of the gateway's time (facilitator call, tx + receipt)"),
        ("share in model + TEE", f"{100 * model / total:.0f}%", "stand-in model and RSA-PSS signature"),
    ]
