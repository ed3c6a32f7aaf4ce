"""RSA (OpenGradient TEE) gas under two modexp pricings: the replica's (EIP-2565, as on Base today) and Osaka's
(EIP-7883, which raised modexp's price; Base may adopt it).

Each run starts its own anvil on a free loopback port (``--optimism`` for the replica's pricing; plain
``--hardfork osaka`` for Osaka, which anvil offers in L1 mode only), deploys the committed TeeRegistry and
SettlementRegistry artifacts and the test-only RsaPssHarness (compiled with the project compiler), registers an
RSA-2048 TEE whose key ``cryptography`` makes, and measures: PSS verification alone (gas inside the call), a
heartbeat that updates the TEE, an OpenGradient individual settlement (with the 1,800 s liveness requirement),
and the registration. Figures are receipt gasUsed unless noted.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path
from typing import Any

Row = tuple[str, str, str]

PRICINGS = (
    ("replica (EIP-2565 modexp, Base today)", ("--optimism",)),
    ("osaka (EIP-7883 modexp)", ("--hardfork", "osaka")),
)
MNEMONIC = "test test test test test test test test test test test junk"


def _start(extra: tuple[str, ...]) -> tuple[Any, Any]:
    from web3 import Web3

    from og_settle.replica._node import AnvilProcess, free_port
    from og_settle.replica._toolchain import anvil_executable

    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="og-settle-rsa-gas-")) / "anvil.log"
    anvil = AnvilProcess(
        [str(anvil_executable()), "--host", "127.0.0.1", "--port", str(port), "--mnemonic", MNEMONIC, *extra], log
    )
    w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{port}", request_kwargs={"timeout": 60}))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if w3.is_connected():
                return anvil, w3
        except Exception:
            pass
        time.sleep(0.1)
    anvil.stop()
    raise RuntimeError(f"anvil did not start: {anvil.tail()}")


def _deploy(w3: Any, sender: str, abi: Any, initcode: bytes, *args: Any) -> Any:
    contract = w3.eth.contract(abi=abi, bytecode=initcode)
    tx = contract.constructor(*args).transact({"from": sender})
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    return w3.eth.contract(address=receipt["contractAddress"], abi=abi)


def _send(w3: Any, fn: Any, sender: str) -> int:
    receipt = w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender, "gas": 5_000_000}))
    if receipt["status"] != 1:
        raise RuntimeError(f"transaction failed: {fn.fn_name}")
    return int(receipt["gasUsed"])


def _measure(w3: Any) -> dict[str, int]:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    from og_settle._artifacts import artifact
    from og_settle._attestation import RsaTeeRegistration, tee_registry_domain
    from og_settle._hashing import tee_message_hash
    from og_settle._hex import keccak256
    from og_settle.replica._toolchain import compile_replica_contract

    admin, operator, relayer = w3.eth.accounts[:3]
    registry_art, settlement_art = artifact("TeeRegistry"), artifact("SettlementRegistry")
    registry = _deploy(w3, admin, registry_art.abi, registry_art.initcode, admin)
    settlement = _deploy(w3, admin, settlement_art.abi, settlement_art.initcode, registry.address, admin, 3600, 300)
    harness_build = compile_replica_contract("contracts/test/RsaPssHarness.sol", "RsaPssHarness")
    harness = _deploy(w3, admin, harness_build.abi, harness_build.initcode)
    _send(w3, registry.functions.grantRole(keccak256(b"OPERATOR_ROLE"), operator), admin)
    _send(w3, settlement.functions.grantRole(keccak256(b"RELAYER_ROLE"), relayer), admin)
    _send(w3, settlement.functions.setMaxHeartbeatAge(1800), admin)
    measurement = keccak256(b"tee-gateway pcrs")
    _send(w3, registry.functions.approveMeasurement(measurement, 0, "tee-gateway"), admin)

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)

    def sign(message: bytes) -> bytes:
        return key.sign(message, pss, hashes.SHA256())

    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    registration = RsaTeeRegistration(der, measurement, keccak256(b"attestation"), b"\x00" * 32, operator, "https://t")
    domain = tee_registry_domain(w3.eth.chain_id, registry.address)
    proof = sign(domain.digest(registration.struct_hash(operator)))
    figures = {"registerRsaTee": _send(w3, registry.functions.registerRsaTee(registration.as_abi(), proof), operator)}
    tee_id = registration.tee_id

    w3.provider.make_request("evm_increaseTime", [60])
    w3.provider.make_request("evm_mine", [])
    now = int(w3.eth.get_block("latest")["timestamp"])
    beat = sign(keccak256(tee_id + now.to_bytes(32, "big")))
    figures["heartbeat"] = _send(w3, registry.functions.heartbeat(tee_id, now, beat), relayer)

    input_hash, output_hash = keccak256(b"request"), keccak256(b"answer")
    message = tee_message_hash(input_hash, output_hash, now)
    signature = sign(message)
    record = (tee_id, input_hash, output_hash, now, relayer, b"walrus:" + b"b" * 43)
    figures["settleOpenGradient"] = _send(w3, settlement.functions.settleOpenGradient(record, signature), relayer)

    n = key.public_key().public_numbers().n.to_bytes(256, "big")
    reason, gas = harness.functions.verifyGas(hashlib.sha256(message).digest(), signature, b"\x01\x00\x01", n).call()
    if reason != 0:
        raise RuntimeError(f"PSS verification failed in the harness: reason {reason}")
    figures["pss"] = int(gas)
    return figures


def rsa_gas(options: argparse.Namespace) -> list[Row]:
    """The benchmark: one table row per figure and pricing."""
    del options
    rows: list[Row] = []
    for label, extra in PRICINGS:
        anvil, w3 = _start(extra)
        try:
            figures = _measure(w3)
        finally:
            anvil.stop()
        rows += [
            (f"RSA-2048 PSS verification alone [{label}]", f"{figures['pss']:,}", "gas inside the call"),
            (f"settleOpenGradient, live TEE required [{label}]", f"{figures['settleOpenGradient']:,}", "target 90k"),
            (f"heartbeat updating a TEE [{label}]", f"{figures['heartbeat']:,}", "target 65k"),
            (f"registerRsaTee [{label}]", f"{figures['registerRsaTee']:,}", "key stored as contract code"),
        ]
    return rows


if __name__ == "__main__":
    for row in rsa_gas(argparse.Namespace()):
        print(" | ".join(row))
