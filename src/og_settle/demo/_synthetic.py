"""The end-to-end demo (``make demo`` / ``og-settle demo``): the whole system on a fresh local replica.

1. start the Base Sepolia replica (genuine Permit2, OPG);
2. deploy the contracts with the deterministic CREATE2 deployment (the routine ``ape run deploy`` wraps);
3. register a local TEE signing key, a STAND-IN for an enclave key, under an approved measurement;
4. create synthetic inferences hashed by OpenGradient's conventions, in every settlement mode;
5. have payers sign x402 Permit2 payments, exact and upto, bound to the inference they pay for;
6. run the relayer until everything is settled;
7. check a sample of inclusions and settlements on chain, and the token movements;
8. print a report. The exit code is non-zero if anything failed.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from og_settle._attestation import (
    IndividualSettlement,
    InferenceAttestation,
    MetadataSettlement,
    TeeKey,
    TeeRegistration,
    settlement_domain,
    tee_registry_domain,
)
from og_settle._deploy import Deployment, Web3Sender, deploy
from og_settle._hashing import input_hash, output_hash
from og_settle._hex import keccak256, to_hex
from og_settle._merkle import StandardMerkleTree
from og_settle._networks import OPG_ADDRESS
from og_settle._x402 import PaymentRequirements, create_payment_payload
from og_settle._x402_verify import Web3ChainReader
from og_settle.demo._stack import dev_keys

__all__ = ["MODES", "DemoReport", "format_report", "run_demo"]

# The stand-in TEE key is derived from a fixed label, so every run registers the same TEE. A real TEE's key is
# generated inside the enclave and bound to its attestation report; this one is neither.
STAND_IN_TEE_KEY = keccak256(b"og-settle demo: STAND-IN TEE key, not an enclave")
DEMO_MEASUREMENT = keccak256(b"og-settle demo measurement (stand-in for a TDX MRTD)")
DEMO_ATTESTATION = keccak256(b"og-settle demo attestation report (stand-in)")
PRICE_PER_INFERENCE = 10**15  # 0.001 OPG
UPTO_MAXIMUM = 5 * 10**15
MODES = ("batch", "individual", "metadata", "private")


@dataclass
class DemoReport:
    """What the demo did; ``failures`` empty means success."""

    inferences_by_mode: Counter[str] = field(default_factory=Counter)
    payments_by_scheme: Counter[str] = field(default_factory=Counter)
    gas_by_lane: Counter[str] = field(default_factory=Counter)
    settled_by_lane: Counter[str] = field(default_factory=Counter)
    transactions: list[tuple[str, str, int, int]] = field(default_factory=list)  # lane, tx hash, items, gas
    dumps: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


class _Timer:
    def __init__(self, report: DemoReport, say: Callable[[str], None]) -> None:
        self.report, self.say = report, say

    def step(self, name: str, fn: Callable[[], Any]) -> Any:
        self.say(f"-> {name}")
        started = time.monotonic()
        result = fn()
        self.report.timings[name] = time.monotonic() - started
        return result


def _register_stand_in_tee(rpc_url: str, deployment: Deployment, admin_key: str, operator_key: str) -> TeeKey:
    from og_settle.clients import make_web3

    w3 = make_web3(rpc_url)
    tee = TeeKey(STAND_IN_TEE_KEY)
    admin, operator = Web3Sender(rpc_url, admin_key), Web3Sender(rpc_url, operator_key)
    registry = w3.eth.contract(address=deployment.tee_registry, abi=_abi("TeeRegistry"))
    if registry.functions.getMeasurement(DEMO_MEASUREMENT).call()[0] == 0:
        admin.send(
            deployment.tee_registry,
            _calldata(registry, "approveMeasurement", DEMO_MEASUREMENT, 1, "og-settle demo (stand-in)"),
        )
    if not registry.functions.isActive(tee.tee_id).call():
        registration = TeeRegistration(
            public_key=tee.public_key,
            measurement=DEMO_MEASUREMENT,
            attestation_hash=DEMO_ATTESTATION,
            payment_address=operator.address,
            endpoint="https://tee.invalid/stand-in",
        )
        proof = tee.sign_registration(
            tee_registry_domain(deployment.chain_id, deployment.tee_registry), registration, operator.address
        )
        operator.send(deployment.tee_registry, _calldata(registry, "registerTee", registration.as_abi(), proof))
    return tee


def _calldata(contract: Any, function: str, *args: Any) -> bytes:
    return bytes.fromhex(contract.encode_abi(function, list(args)).removeprefix("0x"))


def _abi(name: str) -> list[dict[str, Any]]:
    from og_settle._artifacts import abi

    return abi(name)


def _synthetic_records(
    count: int, tee: TeeKey, deployment: Deployment, payer_keys: list[str], relayer: str, pay_to: str, now: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Counter[str], Counter[str]]:
    """Inference records (OpenGradient hashing, TEE-signed) and the x402 payments that pay for them."""
    from eth_account import Account

    rng = random.Random(84532)
    domain = settlement_domain(deployment.chain_id, deployment.settlement_registry)
    records: list[dict[str, Any]] = []
    payments: list[dict[str, Any]] = []
    by_mode: Counter[str] = Counter()
    by_scheme: Counter[str] = Counter()
    for i in range(count):
        mode = MODES[0] if i % 10 < 6 else MODES[1 + i % 3]  # 60% batch, the rest spread over the other modes
        payer_key = payer_keys[i % len(payer_keys)]
        payer = Account.from_key(payer_key).address
        model = "openai/gpt-4.1"
        request = {
            "model": model,
            "messages": [{"role": "user", "content": f"demo question #{i}: what is {rng.randint(2, 99)} squared?"}],
            "max_tokens": 64,
            "temperature": 0.0,
        }
        completion = f"demo answer #{i}: {rng.random():.6f}"
        in_hash, out_hash, ts = input_hash(request), output_hash(completion), now - rng.randint(0, 120)
        record: dict[str, Any] = {"kind": "inference", "mode": mode, "ref": f"demo-{i}", "tee_id": to_hex(tee.tee_id)}
        record["timestamp"] = ts
        if mode in ("batch", "private"):
            signature = tee.sign_inference(domain, InferenceAttestation(tee.tee_id, in_hash, out_hash, ts))
            record.update(input_hash=to_hex(in_hash), output_hash=to_hex(out_hash))
        elif mode == "individual":
            signature = tee.sign_individual(domain, IndividualSettlement(tee.tee_id, in_hash, out_hash, ts, payer))
            record.update(input_hash=to_hex(in_hash), output_hash=to_hex(out_hash), payer=payer)
        else:
            request_text = json.dumps(request, sort_keys=True)
            meta = MetadataSettlement(
                tee_id=tee.tee_id,
                timestamp=ts,
                payer=payer,
                model_id=model,
                input=request_text.encode(),
                output=completion.encode(),
                metadata=b'{"demo":true}',
            )
            signature = tee.sign_metadata(domain, meta)
            record.update(payer=payer, model=model, input=request_text, output=completion, metadata='{"demo":true}')
        record["tee_signature"] = to_hex(signature)
        records.append(record)
        by_mode[mode] += 1

        scheme = "exact" if i % 2 == 0 else "upto"
        requirements = PaymentRequirements(
            scheme=scheme,
            network=f"eip155:{deployment.chain_id}",
            amount=PRICE_PER_INFERENCE if scheme == "exact" else UPTO_MAXIMUM,
            asset=OPG_ADDRESS,
            pay_to=pay_to,
            max_timeout_seconds=3600,
            extra={"assetTransferMethod": "permit2", "name": "OpenGradient", "version": "1"},
        )
        payload = create_payment_payload(
            requirements,
            payer_key,
            spender=deployment.payment_facilitator,
            facilitator=relayer if scheme == "upto" else None,
            request_hash=in_hash,  # binds the payment to the inference it paid for
        )
        payment: dict[str, Any] = {
            "kind": "payment",
            "ref": f"demo-{i}",
            "paymentPayload": payload.to_json(),
            "paymentRequirements": requirements.to_json(),
        }
        if scheme == "upto":
            payment["amount"] = str(PRICE_PER_INFERENCE + rng.randint(0, 4) * 10**14)  # metered, below the max
        payments.append(payment)
        by_scheme[scheme] += 1
    return records, payments, by_mode, by_scheme


def run_demo(out_dir: Path, count: int = 300, say: Callable[[str], None] = print) -> DemoReport:
    """Run every step on a fresh replica and return the report (``report.failures`` empty on success)."""
    from eth_account import Account

    from og_settle.clients import SettlementRegistryClient, make_web3
    from og_settle.relayer import (
        IntakeConfig,
        RegistryTeeDirectory,
        Relayer,
        RelayerConfig,
        SqliteStore,
        submit_records,
    )
    from og_settle.relayer._policy import BatchPolicy
    from og_settle.replica import running_replica

    report = DemoReport()
    timer = _Timer(report, say)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("queue.sqlite", "queue.sqlite-wal", "queue.sqlite-shm"):
        (out_dir / stale).unlink(missing_ok=True)
    started = time.monotonic()
    keys = dev_keys(8)
    deployer_key, relayer_key, operator_key, payer_keys = keys[0], keys[1], keys[2], keys[3:8]
    relayer = Account.from_key(relayer_key)
    operator = Account.from_key(operator_key).address

    with running_replica() as replica:
        say(f"replica: chain id {replica.chain_id} at {replica.rpc_url} (up in {replica.startup_seconds:.2f}s)")
        report.timings["replica start"] = replica.startup_seconds
        w3 = make_web3(replica.rpc_url)

        deployment = timer.step(
            "deploy (deterministic CREATE2)",
            lambda: deploy(
                Web3Sender(replica.rpc_url, deployer_key),
                relayers=[relayer.address],
                operators=[operator],
                out_dir=out_dir / "deployments",
                log=lambda line: say(f"   {line}"),
            ),
        )
        tee = timer.step(
            "register the STAND-IN TEE key",
            lambda: _register_stand_in_tee(replica.rpc_url, deployment, deployer_key, operator_key),
        )
        say(f"   teeId {to_hex(tee.tee_id)} signer {tee.address} (a local key standing in for an enclave)")
        for key in payer_keys:
            _approve_permit2(replica.rpc_url, key)

        chain_reader = Web3ChainReader(w3)
        balances_before = {a: chain_reader.balance_of(OPG_ADDRESS, a) for a in _holders(payer_keys, operator)}
        now = int(w3.eth.get_block("latest")["timestamp"])
        records, payments, report.inferences_by_mode, report.payments_by_scheme = timer.step(
            f"create {count} inferences and sign their x402 payments",
            lambda: _synthetic_records(count, tee, deployment, payer_keys, relayer.address, operator, now),
        )
        intake_path = out_dir / "intake.jsonl"
        intake_path.write_text("".join(json.dumps(r) + "\n" for r in records + payments), encoding="utf-8")

        store = SqliteStore(out_dir / "queue.sqlite")
        try:
            config = IntakeConfig(
                deployment=deployment,
                relayer=relayer.address,
                chain_reader=chain_reader,
                tee_directory=RegistryTeeDirectory(w3, deployment.tee_registry),
            )
            intake = timer.step(
                "relayer intake (off-chain verification)",
                lambda: Counter(r.status for r in submit_records(store, intake_path.open(), config, name="intake")),
            )
            if intake.get("rejected"):
                report.failures.append(f"intake rejected {intake['rejected']} demo records")
            engine = Relayer(
                store,
                deployment,
                relayer,
                w3=w3,
                config=RelayerConfig(
                    policy=BatchPolicy(max_items=100),
                    dump_dir=out_dir / "batches",
                    drain=True,
                    exit_when_done=True,
                    poll_interval=0.05,
                ),
                log=_quiet_log(out_dir / "relayer.log"),
                stop=threading.Event(),
            )
            timer.step("relayer settles everything", engine.run)
            _collect(store, w3, report)
            registry = SettlementRegistryClient(w3, deployment.settlement_registry)
            timer.step("check inclusions and balances on chain", lambda: _check(store, registry, report))
            _check_balances(chain_reader, balances_before, store, operator, report)
        finally:
            store.close()
    report.timings["total wall time"] = time.monotonic() - started
    return report


def _holders(payer_keys: list[str], operator: str) -> list[str]:
    from eth_account import Account

    return [Account.from_key(k).address for k in payer_keys] + [operator]


def _approve_permit2(rpc_url: str, key: str) -> None:
    """The payers' one-time Permit2 approval, as OpenGradient's ``ensure_opg_approval`` does it."""
    from og_settle._permit2 import ensure_opg_approval

    ensure_opg_approval(10**24, rpc_url=rpc_url, private_key=key)


def _quiet_log(path: Path) -> Any:
    from og_settle.relayer import EventLog

    return EventLog(path.open("w", encoding="utf-8"))


def _collect(store: Any, w3: Any, report: DemoReport) -> None:
    from og_settle.relayer import BatchState

    for batch in store.batches():
        tx = store.current_tx(batch.id)
        if batch.state != BatchState.CONFIRMED:
            report.failures.append(f"batch {batch.id} ({batch.lane}) ended {batch.state}: {batch.reason}")
            continue
        # The receipt is the source of truth (the relayer may have confirmed a batch from chain state instead).
        gas = int(w3.eth.get_transaction_receipt(tx.tx_hash)["gasUsed"]) if tx is not None else 0
        report.gas_by_lane[str(batch.lane)] += gas
        report.settled_by_lane[str(batch.lane)] += batch.size
        if tx is not None:
            report.transactions.append((str(batch.lane), to_hex(tx.tx_hash), batch.size, gas))
        if batch.dump_path:
            report.dumps.append(batch.dump_path)
    status = store.status()
    for reason, n in status.failure_reasons.items():
        report.failures.append(f"{n} item(s) failed or rejected: {reason}")
    if status.in_flight:
        report.failures.append(f"{status.in_flight} item(s) still in flight")


def _check(store: Any, registry: Any, report: DemoReport) -> None:
    """Sample inclusion proofs against roots stored on chain, and individual/metadata digests."""
    from og_settle.relayer import Lane

    rng = random.Random(7)
    for batch in store.batches():
        if batch.lane == Lane.BATCH and batch.root is not None:
            dump = json.loads(Path(batch.dump_path).read_text()) if batch.dump_path else json.loads(batch.dump or "{}")
            tree = StandardMerkleTree.load(dump)
            for index in rng.sample(range(len(tree)), min(3, len(tree))):
                ok = registry.verify_inclusion(batch.root, tree.values[index], tree.proof(index))
                (report.checks if ok else report.failures).append(
                    f"inclusion of leaf {index} in root {to_hex(batch.root)[:18]}...: {'ok' if ok else 'FAILED'}"
                )
            batch_id, signer = registry.verify_inference_signature(batch.root, tree.values[0], tree.proof(0))
            report.checks.append(f"TEE {signer} signed leaf 0, settled in batch {batch_id}: ok (one on-chain call)")
            subset = rng.sample(range(len(tree)), min(5, len(tree)))
            ok = registry.verify_multi_inclusion(batch.root, tree.multiproof(subset))
            (report.checks if ok else report.failures).append(
                f"multiproof of {len(subset)} leaves in root {to_hex(batch.root)[:18]}...: {'ok' if ok else 'FAILED'}"
            )
            fake = bytes(32)
            if registry.verify_inclusion(fake, tree.values[0], tree.proof(0)):
                report.failures.append("a proof against a root never stored was accepted")
    for lane in (Lane.INDIVIDUAL, Lane.METADATA):
        items = [item for item in store.items(lane=lane) if item.key is not None]
        for item in rng.sample(items, min(3, len(items))):
            ok = registry.is_settled(item.key)
            (report.checks if ok else report.failures).append(
                f"{lane} digest {to_hex(item.key)[:18]}... recorded on chain: {'ok' if ok else 'FAILED'}"
            )


def _check_balances(
    chain: Web3ChainReader, before: dict[str, int], store: Any, pay_to: str, report: DemoReport
) -> None:
    from og_settle.relayer import ItemState, Lane

    paid = sum(int(item.record()["amount"]) for item in store.items(lane=Lane.PAYMENT, state=ItemState.CONFIRMED))
    received = chain.balance_of(OPG_ADDRESS, pay_to) - before[pay_to]
    spent = sum(before[a] - chain.balance_of(OPG_ADDRESS, a) for a in before if a != pay_to)
    line = f"OPG conserved: payers spent {spent}, the TEE's payment address received {received}"
    (report.checks if spent == received and received > 0 else report.failures).append(line)
    if paid != received:
        report.failures.append(f"queue says {paid} OPG wei were paid, the chain says {received}")


def format_report(report: DemoReport, out_dir: Path) -> str:
    lines = ["", "=== og-settle demo report ==="]
    lines.append("inferences by mode:  " + ", ".join(f"{m} {report.inferences_by_mode[m]}" for m in MODES))
    lines.append("payments by scheme:  " + ", ".join(f"{s} {n}" for s, n in sorted(report.payments_by_scheme.items())))
    lines.append("")
    lines.append(f"{'lane':<11} {'settled':>8} {'txs':>4} {'gas total':>11} {'gas/item':>9}")
    tx_count = Counter(lane for lane, *_ in report.transactions)
    for lane in ("batch", "individual", "metadata", "payment"):
        settled, gas = report.settled_by_lane[lane], report.gas_by_lane[lane]
        per = f"{gas // settled:,}" if settled else "-"
        lines.append(f"{lane:<11} {settled:>8} {tx_count[lane]:>4} {gas:>11,} {per:>9}")
    lines.append(f"private     {report.inferences_by_mode['private']:>8}    0           0         0  (payment only)")
    lines.append("")
    lines.append("transactions:")
    for lane, tx_hash, items, gas in report.transactions[:12]:
        lines.append(f"  {lane:<11} {tx_hash}  {items:>4} items  {gas:>9,} gas")
    if len(report.transactions) > 12:
        lines.append(f"  ... and {len(report.transactions) - 12} more (see {out_dir / 'relayer.log'})")
    lines.append("batch dumps (OpenZeppelin standard-v1):")
    for path in report.dumps:
        lines.append(f"  {path}")
    lines.append("on-chain checks:")
    for check in report.checks:
        lines.append(f"  {check}")
    lines.append("timings:")
    for name, seconds in report.timings.items():
        lines.append(f"  {name:<54} {seconds:7.2f} s")
    lines.append("")
    if report.failures:
        lines.append(f"FAILED ({len(report.failures)}):")
        lines.extend(f"  {failure}" for failure in report.failures)
    else:
        lines.append("OK: every inference and payment settled exactly as intended.")
    return "\n".join(lines)
