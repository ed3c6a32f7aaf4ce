"""The demo's HTTP half: clients pay the gateway for completions in every settlement mode, and the chain proves them.

On a fresh Base replica (chain 8453, where OpenGradient's SDK pays), with every part a real process (the
facilitator, the gateway with its STAND-IN TEE registered on the TeeRegistry, the relayer):

1. for each mode (private, batch, individual, metadata) and each scheme (exact, upto), a client asks for a chat
   completion, gets 402, signs the x402 Permit2 payment the stock clients sign (the canonical proxy as spender),
   and asks again;
2. every answer's TEE fields are checked against the key the TeeRegistry holds (``og_settle.tee.verify_response``);
3. the relayer settles what was queued; batch leaves are proven with ``verifyInferenceSignature`` against their
   recorded root (the dump read back from the DA store the on-chain pointer names), individual and metadata
   settlements are found on chain with their DA pointer;
4. the OPG that moved equals what the gateway charged (upto: the metered output, below the authorised maximum).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from og_settle._x402 import (
    create_payment_payload,
    decode_payment_required_header,
    decode_payment_response_header,
    encode_header,
)
from og_settle.demo._stack import Stack, running_stack

__all__ = ["HttpDemoReport", "format_http_report", "run_http_demo"]

MODES = ("private", "batch", "individual", "metadata")
SCHEMES = ("exact", "upto")


@dataclass
class HttpDemoReport:
    """What the HTTP demo did; ``failures`` empty means success.

    Attributes:
        answers: one line per paid request (mode, scheme, charge, payment transaction, blob).
        checks: what was proven, one line each.
        failures: what went wrong, one line each.
        timings: seconds per step.
    """

    answers: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def _check(report: HttpDemoReport, ok: bool, line: str) -> None:
    (report.checks if ok else report.failures).append(f"{line}: {'ok' if ok else 'FAILED'}")


def _pay(stack: Stack, http: Any, mode: str, scheme: str, payer_key: str) -> dict[str, Any]:
    body = {
        "model": "stand-in-echo",
        "messages": [{"role": "user", "content": f"settle this answer in {mode} mode, paid with {scheme}"}],
        "max_tokens": 64,
    }
    headers = {"X-SETTLEMENT-TYPE": mode}
    first = http.post("/v1/chat/completions", json=body, headers=headers)
    if first.status_code != 402:
        raise RuntimeError(f"{mode}/{scheme}: expected 402 without payment, got {first.status_code}")
    offer = next(
        r for r in decode_payment_required_header(first.headers["PAYMENT-REQUIRED"]).accepts if r.scheme == scheme
    )
    payload = create_payment_payload(offer, payer_key, facilitator=offer.extra.get("facilitatorAddress"))
    paid = http.post(
        "/v1/chat/completions", json=body, headers={**headers, "PAYMENT-SIGNATURE": encode_header(payload)}
    )
    return {"mode": mode, "scheme": scheme, "request": body, "offer": offer, "response": paid}


def run_http_demo(out_dir: Path, say: Callable[[str], None] = print) -> HttpDemoReport:
    """Run the HTTP flow on a fresh Base replica; the report lists what was paid and proven."""
    import httpx

    from og_settle import StandardMerkleTree
    from og_settle._artifacts import abi
    from og_settle._blobs import LocalBlobStore
    from og_settle._x402_verify import Web3ChainReader
    from og_settle.clients import SettlementRegistryClient, make_web3
    from og_settle.relayer import SqliteStore
    from og_settle.tee import RsaPublicKey, verify_response

    report = HttpDemoReport()
    started = time.monotonic()
    # Each run is a fresh chain: yesterday's queue, blobs and key would only describe a chain that is gone.
    shutil.rmtree(out_dir, ignore_errors=True)
    with running_stack(out_dir, "base") as stack:
        report.timings["stack up (replica, deploy, TEE registration, facilitator, gateway)"] = (
            time.monotonic() - started
        )
        say(f"gateway {stack.gateway_url} (STAND-IN TEE 0x{stack.tee.tee_id.hex()[:16]}..., replica {stack.rpc_url})")
        w3 = make_web3(stack.rpc_url)
        reader = Web3ChainReader(w3)
        opg = stack.deployment.opg
        payer = stack.payer_key(1)
        before = reader.balance_of(opg, stack.pay_to)
        step = time.monotonic()
        results = []
        with httpx.Client(base_url=stack.gateway_url, timeout=120) as http:
            for mode in MODES:
                for scheme in SCHEMES:
                    results.append(_pay(stack, http, mode, scheme, payer))
        report.timings["8 paid requests over HTTP"] = time.monotonic() - step

        registry_contract = w3.eth.contract(address=stack.deployment.tee_registry, abi=abi("TeeRegistry"))
        _, der = registry_contract.functions.teePublicKey(stack.tee.tee_id).call()
        on_chain_key = RsaPublicKey(bytes(der))
        charged = 0
        for result in results:
            response = result["response"]
            label = f"{result['mode']:<10} {result['scheme']:<5}"
            if response.status_code != 200:
                report.failures.append(f"{label} answered {response.status_code}: {response.text[:200]}")
                continue
            settled = decode_payment_response_header(response.headers["PAYMENT-RESPONSE"])
            amount = settled.amount if settled.amount is not None else result["offer"].amount
            charged += amount
            blob = response.headers.get("x-settlement-walrus-blob-id")
            report.answers.append(
                f"{label} {amount / 10**18:.6f} OPG (offered {result['offer'].amount / 10**18:.6f}) "
                f"tx {settled.transaction[:18]}...{'  blob ' + blob[:12] + '...' if blob else ''}"
            )
            try:
                verify_response(result["request"], response.json(), on_chain_key)
                _check(report, True, f"{label} TEE signature against the registry's key")
            except Exception as err:  # the check failed; say why
                report.failures.append(f"{label} TEE signature: {err}")

        step = time.monotonic()
        ran = stack.run_relayer()
        report.timings["relayer settles the queue"] = time.monotonic() - step
        if ran.returncode != 0:
            report.failures.append(f"relayer exited {ran.returncode}: {ran.stderr[-300:]}")
        registry = SettlementRegistryClient(w3, stack.deployment.settlement_registry)
        blobs = LocalBlobStore(stack.work / "blobs")
        for event in registry.batch_recorded_events():
            tree = StandardMerkleTree.load(
                json.loads(blobs.get(LocalBlobStore.blob_id_from_pointer(event["da_pointer"])))
            )
            for index, leaf in enumerate(tree.values):
                batch_id, _ = registry.verify_inference_signature(event["root"], leaf, tree.proof(index))
                _check(
                    report,
                    batch_id == event["batch_id"],
                    f"batch leaf {index} of root 0x{event['root'].hex()[:12]}... "
                    "in the recorded root, RSA signature checked on chain",
                )
        store = SqliteStore(stack.queue)
        try:
            keys = [item.key for item in store.items() if item.record().get("scheme") == "opengradient"]
        finally:
            store.close()
        contract = w3.eth.contract(address=stack.deployment.settlement_registry, abi=abi("SettlementRegistry"))
        events = {e["args"]["digest"]: e for e in contract.events.OpenGradientSettled.get_logs(from_block=0)}
        for key in keys:
            found = events.get(key)
            ok = key is not None and registry.is_settled(key) and found is not None
            pointer = bytes(found["args"]["daPointer"]).decode() if found is not None else ""
            _check(
                report,
                ok and pointer.startswith("local-sha256:"),
                f"individual settlement 0x{(key or b'').hex()[:12]}... on chain, DA pointer {pointer[:24]}...",
            )
        received = reader.balance_of(opg, stack.pay_to) - before
        _check(
            report,
            received == charged,
            f"OPG received by the operator ({received}) = charged by the gateway ({charged})",
        )
        _check(report, len(keys) == 4, f"{len(keys)} individual/metadata settlements queued (expected 4)")
    report.timings["HTTP demo total"] = time.monotonic() - started
    return report


def format_http_report(report: HttpDemoReport) -> str:
    lines = ["", "=== og-settle demo over HTTP: clients -> gateway (x402) -> facilitator, TEE, relayer ==="]
    lines.append("paid answers (mode, scheme, charge, payment tx, DA blob):")
    lines.extend(f"  {line}" for line in report.answers)
    lines.append("on-chain checks:")
    lines.extend(f"  {line}" for line in report.checks)
    lines.append("timings:")
    lines.extend(f"  {name:<66} {seconds:7.2f} s" for name, seconds in report.timings.items())
    if report.failures:
        lines.append(f"FAILED ({len(report.failures)}):")
        lines.extend(f"  {failure}" for failure in report.failures)
    else:
        lines.append("OK: every mode paid over HTTP, signed by the TEE, settled and proven on chain.")
    return "\n".join(lines)
