"""``make bench`` -> ``facilitator-verify``: concurrent ``POST /verify`` on loopback, og-settle vs the x402 SDK.

One run, one local replica (Base Sepolia, with Permit2, OPG and the canonical x402 proxies), two facilitators
side by side on it:

* og-settle: ``og-settle facilitator serve`` (a child process, as an operator runs it), on a fresh deployment;
* the reference: the PyPI ``x402==2.25.0`` SDK's own facilitator classes (``x402FacilitatorSync`` with the EVM
  exact and upto schemes over ``FacilitatorWeb3Signer``), served by ``x402_reference_facilitator.py`` in the
  SDK's virtualenv.

The workload is the stock client's: every request verifies a distinct exact Permit2 payment signed by the SDK's
``x402ClientSync`` (spender = the canonical exact proxy), from a payer that holds OPG and approved Permit2, so a
correct facilitator answers ``isValid: true`` to each. ``--verify-clients`` clients (default 200) keep one
request each in flight over their own keep-alive connections until ``--verify-requests`` requests (default 2,000)
are answered or ``--verify-seconds`` (default 60) pass; the load then stops by itself. A short warm-up (not
counted) precedes each measurement. Reported per facilitator: requests/s, p50/p90/p99 latency, the count of
valid answers, and errors (transport failures, time-outs, non-200 answers). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

Row = tuple[str, str, str]

# The replica's funded dev accounts (anvil's well-known test mnemonic). Each signer has its own account.
DEPLOYER_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
OG_SETTLE_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
REFERENCE_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"
PAYER_KEY = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6"
PAYEE = "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f"
WARM_UP = 20

_SIGN = """
import json, sys
from eth_account import Account
from x402 import x402ClientSync
from x402.mechanisms.evm.exact import ExactEvmClientScheme
from x402.schemas import PaymentRequired, PaymentRequirements, ResourceInfo
job = json.load(sys.stdin)
requirements = PaymentRequirements.model_validate(job["requirements"])
client = x402ClientSync()
client.register(requirements.network, ExactEvmClientScheme(Account.from_key(job["payerKey"])))
client.set_spend_controls({"allowed_assets": [{"network": requirements.network, "asset": requirements.asset}]})
required = PaymentRequired(x402_version=2, accepts=[requirements], resource=ResourceInfo(url="http://127.0.0.1/"))
payloads = [client.create_payment_payload(required).model_dump(by_alias=True, exclude_none=True)
            for _ in range(job["count"])]
print(json.dumps(payloads))
"""


@dataclass(frozen=True, slots=True)
class LoadResult:
    answered: int
    valid: int
    errors: int
    seconds: float
    latencies: tuple[float, ...]
    first_error: str


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verify-clients", type=int, default=200, help="concurrent /verify clients")
    parser.add_argument("--verify-requests", type=int, default=2_000, help="/verify requests per facilitator")
    parser.add_argument("--verify-seconds", type=float, default=60.0, help="time limit per facilitator")


def _send(rpc: Any, key: str, to: str, data: bytes) -> None:
    from eth_account import Account

    account = Account.from_key(key)
    tx = {
        "to": to,
        "data": data,
        "from": account.address,
        "nonce": rpc.eth.get_transaction_count(account.address),
        "gas": 200_000,
        "gasPrice": rpc.eth.gas_price,
        "chainId": rpc.eth.chain_id,
    }
    receipt = rpc.eth.wait_for_transaction_receipt(
        rpc.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    )
    if int(receipt["status"]) != 1:
        raise RuntimeError(f"set-up transaction to {to} reverted")


def _approve_permit2(rpc_url: str, opg: str) -> None:
    from eth_abi import encode
    from eth_utils import keccak

    from og_settle import PERMIT2_ADDRESS
    from og_settle.clients import make_web3

    selector = keccak(text="approve(address,uint256)")[:4]
    _send(make_web3(rpc_url), PAYER_KEY, opg, selector + encode(["address", "uint256"], [PERMIT2_ADDRESS, 2**256 - 1]))


async def _load(url: str, bodies: list[bytes], clients: int, limit_seconds: float) -> LoadResult:
    # aiohttp, not httpx: httpx's asyncio connection pool costs the load generator more CPU than the servers
    # under test at 200 connections, which would measure the client instead of the facilitators.
    import aiohttp

    queue = iter(bodies)
    latencies: list[float] = []
    counts = {"valid": 0, "errors": 0}
    first_error: list[str] = []
    deadline = time.monotonic() + limit_seconds

    async def worker(client: aiohttp.ClientSession) -> None:
        for body in queue:
            if time.monotonic() > deadline:
                return
            started = time.perf_counter()
            try:
                async with client.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                    text = await response.text()
                elapsed = time.perf_counter() - started
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}: {text[:120]}")
                answer = json.loads(text)
            except Exception as error:
                counts["errors"] += 1
                if not first_error:
                    first_error.append(f"{type(error).__name__}: {error or repr(error.__cause__)}"[:160])
                continue
            latencies.append(elapsed)
            counts["valid"] += answer.get("isValid") is True
            if answer.get("isValid") is not True and not first_error:
                first_error.append(f"isValid false: {answer.get('invalidReason')}")

    # Idle connections expire on the client side before uvicorn's 5 s keep-alive timeout: otherwise a client can
    # reuse a connection the server is closing at that moment and count a ReadError that no server caused.
    connector = aiohttp.TCPConnector(limit=clients, keepalive_timeout=2.0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30.0)) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        seconds = time.perf_counter() - started
    answered = len(latencies)
    return LoadResult(
        answered, counts["valid"], counts["errors"], seconds, tuple(sorted(latencies)), "".join(first_error)
    )


def _percentile(values: tuple[float, ...], fraction: float) -> float:
    return values[min(len(values) - 1, int(fraction * len(values)))] if values else float("nan")


def _rows(name: str, result: LoadResult, attempted: int) -> list[Row]:
    rate = result.answered / result.seconds if result.seconds else 0.0
    ms = {p: 1000 * _percentile(result.latencies, p / 100) for p in (50, 90, 99)}
    note = result.first_error and f"first problem: {result.first_error}"
    return [
        (
            f"{name}: requests/s",
            f"{rate:,.0f}",
            f"{result.answered:,} of {attempted:,} answered in {result.seconds:.1f}s",
        ),
        (f"{name}: latency p50/p90/p99", f"{ms[50]:.0f}/{ms[90]:.0f}/{ms[99]:.0f} ms", ""),
        (f"{name}: valid / errors", f"{result.valid:,} / {result.errors:,}", note),
    ]


def verify_load(options: argparse.Namespace) -> list[Row]:
    from eth_account import Account

    from og_settle._lease import LEASE_DIR_ENV
    from og_settle.replica import running_replica
    from tests.support import sdk_envs
    from tests.support.children import ChildFailed, json_child

    clients, total = options.verify_clients, options.verify_requests
    x402 = sdk_envs.python_env("x402", progress=True)
    rows: list[Row] = []
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder_name, running_replica() as replica:
        folder = Path(folder_name)
        network = f"eip155:{replica.chain_id}"
        og_settle = [sys.executable, "-m", "og_settle.cli"]
        deploy = [*og_settle, "deploy", "--rpc-url", replica.rpc_url, "--out-dir", str(folder)]
        deploy += ["--relayer", Account.from_key(OG_SETTLE_KEY).address]
        subprocess.run(
            deploy, env={**os.environ, "OG_SETTLE_DEPLOYER_KEY": DEPLOYER_KEY}, check=True, capture_output=True
        )
        _approve_permit2(replica.rpc_url, replica.opg)
        requirements = {
            "scheme": "exact",
            "network": network,
            "asset": replica.opg,
            "amount": "1000",
            "payTo": PAYEE,
            "maxTimeoutSeconds": 3600,
            "extra": {"assetTransferMethod": "permit2"},
        }
        print(f"  signing {2 * (total + WARM_UP):,} stock payloads with x402 2.25.0 ...", file=sys.stderr, flush=True)
        job = {"requirements": requirements, "payerKey": PAYER_KEY, "count": 2 * (total + WARM_UP)}
        payloads = sdk_envs.run_python(x402, _SIGN, input_json=job, timeout=600)
        bodies = [
            json.dumps({"x402Version": 2, "paymentPayload": p, "paymentRequirements": requirements}).encode()
            for p in payloads
        ]
        keys = folder / "api-keys"
        keys.write_text("bench-settle-key-0123456789\n")  # og-settle wants 16+ characters
        serve = [*og_settle, "facilitator", "serve", "--json", "--deployment", str(folder / f"{replica.chain_id}.json")]
        serve += ["--rpc", replica.rpc_url, "--api-keys-file", str(keys), "--store", str(folder / "store.sqlite3")]
        reference = [str(x402.python), str(Path(__file__).with_name("x402_reference_facilitator.py"))]
        reference += ["--rpc", replica.rpc_url, "--network", network]
        servers = [
            # Its own lease folder: signer leases are keyed by chain id, which every local replica shares.
            ("og-settle", serve, {"OG_SETTLE_RELAYER_KEY": OG_SETTLE_KEY, LEASE_DIR_ENV: str(folder / "leases")}),
            ("x402 reference", reference, {"X402_REFERENCE_KEY": REFERENCE_KEY}),
        ]
        for index, (name, argv, env) in enumerate(servers):
            mine = bodies[index * (total + WARM_UP) : (index + 1) * (total + WARM_UP)]
            try:
                with json_child(name, argv, folder / f"server-{index}.log", env) as child:
                    url = child.start["url"] + "/verify"
                    print(f"  {name}: {clients} clients, {total:,} /verify at {url} ...", file=sys.stderr, flush=True)
                    asyncio.run(_load(url, mine[:WARM_UP], min(clients, WARM_UP), options.verify_seconds))
                    result = asyncio.run(_load(url, mine[WARM_UP:], clients, options.verify_seconds))
            except (ChildFailed, sdk_envs.SdkEnvError) as error:
                rows.append((f"{name}: not measured", "-", str(error).splitlines()[0][:200]))
                continue
            rows += _rows(name, result, total)
            rates[name] = result.answered / result.seconds if result.seconds else 0.0
    if rates.get("x402 reference"):
        ratio = rates.get("og-settle", 0.0) / rates["x402 reference"]
        rows.append(("og-settle / reference: /verify rate", f"{ratio:.1f}x", "issue 9 target: >= 5x, zero errors"))
    return rows
