"""Gas: every registry operation's total transaction gas goes into gas-snapshot.json, and the issue's targets hold.

Targets (measured on the replica fork): batch record <= 75,000 whatever the batch size; individual settlement
<= 70,000; metadata settlement <= 15,000 above its unavoidable cost. "Unavoidable" for metadata is: the least any
transaction carrying the same calldata and emitting the same logs pays (max of 21,000 + EIP-2028 calldata + log
cost, and the EIP-7623 floor, which the Prague-based fork charges), plus what the issue itself mandates: one fresh
storage slot for the record digest (22,100) and the signature recovery (3,000). The overhead under pre-Prague
accounting (no floor) is printed too; it is larger for small records, where the floor does not bind.
"""

from __future__ import annotations

from typing import Any

import pytest

from og_settle._hex import keccak256
from tests.contracts.conftest import NITRO, Deployment
from tests.contracts.test_tee_registry import new_key

pytestmark = pytest.mark.gas

BATCH_TARGET = 75_000
INDIVIDUAL_TARGET = 70_000
METADATA_OVERHEAD_TARGET = 15_000
# A CIDv1 (base32) IPFS URI, the size of a typical data-availability pointer.
DA_POINTER = b"ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
TX_BASE = 21_000
SSTORE_FRESH_SLOT = 22_100  # cold SLOAD (2,100) + zero-to-nonzero SSTORE (20,000)
ECRECOVER = 3_000


def calldata_gas(data: bytes) -> tuple[int, int]:
    """(EIP-2028 calldata gas, EIP-7623 floor gas for the whole transaction including the 21,000 base)."""
    zeros = data.count(0)
    nonzeros = len(data) - zeros
    return 4 * zeros + 16 * nonzeros, TX_BASE + 10 * (zeros + 4 * nonzeros)


def log_gas(receipt: Any) -> int:
    """LOG cost: 375 per log, 375 per topic, 8 per byte of data."""
    return sum(375 + 375 * len(log["topics"]) + 8 * len(bytes(log["data"])) for log in receipt.logs)


def tx_input(receipt: Any, chain: Any) -> bytes:
    return bytes(receipt.transaction.data)


def test_tee_registry_gas(d_gas: Deployment, gas_snapshot: Any) -> None:
    d = d_gas
    measurement = keccak256(b"gas measurement")
    gas_snapshot.record(
        "tee.approveMeasurement", d.registry.approveMeasurement(measurement, NITRO, "v1", sender=d.admin).gas_used
    )
    gas_snapshot.record("tee.registerTee", d.register(new_key(100), measurement=measurement).gas_used)
    tee_id = new_key(100).tee_id
    gas_snapshot.record("tee.disableTee", d.registry.disableTee(tee_id, sender=d.operator).gas_used)
    gas_snapshot.record("tee.enableTee", d.registry.enableTee(tee_id, sender=d.operator).gas_used)
    gas_snapshot.record("tee.revokeMeasurement", d.registry.revokeMeasurement(measurement, sender=d.admin).gas_used)


@pytest.mark.parametrize("size", [1, 1_000, 1_000_000])
def test_record_batch_gas_is_constant(d_gas: Deployment, gas_snapshot: Any, size: int) -> None:
    """A batch costs the same whatever its size: leaves are never touched on chain."""
    d = d_gas
    d.settlement.recordBatch(keccak256(b"warm-up"), 1, DA_POINTER, sender=d.relayer)  # counters slot non-zero
    receipt = d.settlement.recordBatch(keccak256(b"root %d" % size), size, DA_POINTER, sender=d.relayer)
    gas = gas_snapshot.record(f"settlement.recordBatch(size={size})", receipt.gas_used)
    assert gas <= BATCH_TARGET
    assert gas / size <= 75 or size < 1_000


def test_settle_individual_gas(d_gas: Deployment, gas_snapshot: Any, chain: Any, payer: Any) -> None:
    d = d_gas
    settlement, signature = d.individual(timestamp=int(chain.blocks.head.timestamp), payer=payer.address)
    receipt = d.settlement.settleIndividual(settlement.as_abi(), signature, sender=d.relayer)
    assert gas_snapshot.record("settlement.settleIndividual", receipt.gas_used) <= INDIVIDUAL_TARGET


@pytest.mark.parametrize("size", [1024, 16 * 1024])
def test_settle_metadata_gas(d_gas: Deployment, gas_snapshot: Any, chain: Any, payer: Any, size: int) -> None:
    d = d_gas
    record, signature = d.metadata(timestamp=int(chain.blocks.head.timestamp), payer=payer.address, size=size)
    receipt = d.settlement.settleMetadata(record.as_abi(), signature, sender=d.relayer, gas=2_000_000)
    label = f"{size // 1024}KiB"
    gas = gas_snapshot.record(f"settlement.settleMetadata({label})", receipt.gas_used)
    calldata, floor = calldata_gas(tx_input(receipt, chain))
    logs = log_gas(receipt)
    # The least any transaction carrying this calldata and emitting these logs pays on the fork's hardfork (Prague:
    # the EIP-7623 floor applies when it is higher than base + calldata + execution).
    carry_only = max(TX_BASE + calldata + logs, floor)
    # What the issue mandates on top: the one stored digest (a fresh slot) and recovering the TEE's signature.
    overhead = gas - carry_only - SSTORE_FRESH_SLOT - ECRECOVER
    # The same figure with pre-Prague (EIP-2028 only) accounting, which ignores the floor; reported, not asserted.
    overhead_eip2028 = gas - (TX_BASE + calldata + logs) - SSTORE_FRESH_SLOT - ECRECOVER
    print(f"\nsettleMetadata({label}): gas {gas}; calldata {calldata}, floor {floor}, logs {logs}")
    floor_bound = gas == floor  # execution + calldata stayed under the floor: the floor is all that was charged
    pre_prague = "n/a, floor-bound" if floor_bound else overhead_eip2028
    print(f"  overhead above calldata/log/digest/ecrecover: {overhead} (EIP-2028 accounting: {pre_prague})")
    assert overhead <= METADATA_OVERHEAD_TARGET


# --- RSA (OpenGradient) ---------------------------------------------------------------------------------------------

RSA_INDIVIDUAL_TARGET = 90_000
HEARTBEAT_TARGET = 65_000


@pytest.mark.parametrize("bits", [2048, 3072, 4096])
def test_rsa_pss_verification_gas(project: Any, deployer: Any, gas_snapshot: Any, bits: int) -> None:
    """The PSS verification's own cost (inputs in memory, from the library call to its return)."""
    from tests.contracts.rsa_support import og_message, rsa_key

    harness = project.RsaPssHarness.deploy(sender=deployer)
    key = rsa_key(bits)
    message = og_message(b"\x01" * 32, b"\x02" * 32, 1_700_000_000)
    import hashlib

    reason, gas = harness.verifyGas(hashlib.sha256(message).digest(), key.sign(message), key.e, key.n)
    assert reason == 0
    gas_snapshot.record(f"RsaPss.verify(RSA-{bits})", gas)


def test_rsa_tee_gas(d_gas: Deployment, gas_snapshot: Any, chain: Any, payer: Any) -> None:
    """RSA-2048 registration, a heartbeat updating an existing TEE, and OpenGradient's individual settlement (with
    and without the liveness requirement)."""
    from tests.contracts.rsa_support import heartbeat_message, og_message, register_rsa, rsa_key

    d = d_gas
    key = rsa_key(2048)
    gas_snapshot.record("tee.registerRsaTee(RSA-2048)", register_rsa(d, key, keccak256_measurement(d)).gas_used)
    chain.pending_timestamp = int(chain.blocks.head.timestamp) + 60
    chain.mine()
    ts = int(chain.blocks.head.timestamp)
    receipt = d.registry.heartbeat(key.tee_id, ts, key.sign(heartbeat_message(key.tee_id, ts)), sender=d.relayer)
    assert gas_snapshot.record("tee.heartbeat(RSA-2048)", receipt.gas_used) <= HEARTBEAT_TARGET
    for live, label in ((False, ""), (True, ", live TEE required")):
        if live:
            d.settlement.setMaxHeartbeatAge(1800, sender=d.admin)
        ts = int(chain.blocks.head.timestamp)
        input_hash, output_hash = keccak256(b"in" + label.encode()), keccak256(b"out" + label.encode())
        signature = key.sign(og_message(input_hash, output_hash, ts))
        settlement = (key.tee_id, input_hash, output_hash, ts, payer.address, b"walrus:" + b"b" * 43)
        receipt = d.settlement.settleOpenGradient(settlement, signature, sender=d.relayer)
        gas = gas_snapshot.record(f"settlement.settleOpenGradient(RSA-2048{label})", receipt.gas_used)
        assert gas <= RSA_INDIVIDUAL_TARGET


def keccak256_measurement(d: Deployment) -> bytes:
    """A fresh approved measurement for the RSA TEE (the module's own one is shared)."""
    measurement = keccak256(b"rsa gas measurement")
    d.registry.approveMeasurement(measurement, 0, "tee-gateway", sender=d.admin)
    return measurement
