"""Gas per individual inference: ``settleIndividual`` alone against ``settleIndividualBatch`` with 20 records
(five payers, one secp256k1 TEE), on an anvil with the replica's settings (``--optimism``).

Deploys the committed TeeRegistry and SettlementRegistry artifacts, registers a stand-in secp256k1 TEE (its key
made here, a stand-in for an enclave), and reports receipt gasUsed. The batch's per-item outcomes are checked
(every item must settle) so a figure never comes from a batch whose items failed.
"""

from __future__ import annotations

import argparse
import secrets
from typing import Any

from rsa_gas import PRICINGS, _deploy, _send, _start

Row = tuple[str, str, str]
BATCH = 20


def _measure(w3: Any) -> dict[str, int]:
    from og_settle._artifacts import artifact
    from og_settle._attestation import (
        IndividualSettlement,
        TeeKey,
        TeeRegistration,
        settlement_domain,
        tee_registry_domain,
    )
    from og_settle._hex import keccak256
    from og_settle.clients import IndividualBatchItem, encode_individual_batch

    admin, operator, relayer = w3.eth.accounts[:3]
    payers = w3.eth.accounts[3:8]
    registry_art, settlement_art = artifact("TeeRegistry"), artifact("SettlementRegistry")
    registry = _deploy(w3, admin, registry_art.abi, registry_art.initcode, admin)
    settlement = _deploy(w3, admin, settlement_art.abi, settlement_art.initcode, registry.address, admin, 3600, 300)
    _send(w3, registry.functions.grantRole(keccak256(b"OPERATOR_ROLE"), operator), admin)
    _send(w3, settlement.functions.grantRole(keccak256(b"RELAYER_ROLE"), relayer), admin)
    measurement = keccak256(b"stand-in tee measurement")
    _send(w3, registry.functions.approveMeasurement(measurement, 1, "bench"), admin)
    tee = TeeKey(secrets.token_bytes(32))
    registration = TeeRegistration(tee.public_key, measurement, keccak256(b"attestation"), operator, "https://t")
    proof = tee.sign_registration(tee_registry_domain(w3.eth.chain_id, registry.address), registration, operator)
    _send(w3, registry.functions.registerTee(registration.as_abi(), proof), operator)

    domain = settlement_domain(w3.eth.chain_id, settlement.address)
    now = int(w3.eth.get_block("latest")["timestamp"])

    def item(i: int) -> IndividualBatchItem:
        record = IndividualSettlement(
            tee.tee_id, keccak256(b"in %d" % i), keccak256(b"out %d" % i), now, payers[i % len(payers)]
        )
        return IndividualBatchItem(record, tee.sign_individual(domain, record))

    alone = item(10_000)
    figures = {
        "alone": _send(w3, settlement.functions.settleIndividual(alone.settlement.as_abi(), alone.signature), relayer)
    }
    items = [item(i) for i in range(BATCH)]
    tx = settlement.functions.settleIndividualBatch(encode_individual_batch(items)).transact(
        {"from": relayer, "gas": 5_000_000}
    )
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    from web3.logs import DISCARD

    failed = settlement.events.SettlementItemFailed().process_receipt(receipt, errors=DISCARD)
    if receipt["status"] != 1 or failed:
        raise RuntimeError(f"the batch did not settle every item: status {receipt['status']}, {len(failed)} failed")
    figures["batch"] = int(receipt["gasUsed"])
    return figures


def individual_gas(options: argparse.Namespace) -> list[Row]:
    """The benchmark's rows (the replica's pricing only: no precompile is involved)."""
    del options
    label, extra = PRICINGS[0]
    anvil, w3 = _start(extra)
    try:
        figures = _measure(w3)
    finally:
        anvil.stop()
    return [
        (f"settleIndividual alone [{label}]", f"{figures['alone']:,}", "one inference per transaction"),
        (
            f"settleIndividualBatch, {BATCH} records, per inference [{label}]",
            f"{figures['batch'] // BATCH:,}",
            f"target <= 50,000; total {figures['batch']:,}",
        ),
    ]


if __name__ == "__main__":
    for row in individual_gas(argparse.Namespace()):
        print(" | ".join(row))
