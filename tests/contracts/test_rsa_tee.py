"""RSA TEEs (OpenGradient's enclaves): registration with an RSA-PSS proof of possession, PCR measurements, TEE types,
heartbeats and liveness, views; OpenGradient's individual settlement and batch-leaf signature proofs."""

from __future__ import annotations

from typing import Any

import ape
import pytest
from hypothesis import given
from hypothesis import strategies as st

from og_settle._hex import keccak256
from og_settle._merkle import OG_LEAF_ENCODING, StandardMerkleTree
from tests.contracts.conftest import MEASUREMENT, TDX, Deployment, isolated
from tests.contracts.rsa_support import (
    heartbeat_message,
    og_message,
    register_rsa,
    registration_for,
    rsa_key,
)
from tests.contracts.test_rsa_pss import PssError
from tests.contracts.test_tee_registry import new_key

SECP256K1, RSA = 1, 2
NONE_BY, OPERATOR_BY, ADMIN_BY = 0, 1, 2
# og-evm scripts/tee-mgmt-cli/Registration.md, as quoted in FORMATS.md.
PCR0 = bytes.fromhex("8c7b728e1a8e034aa1cc6c82521adeacec05118b766d5203c80aaf84322b73d095e05672d98fba613ba2b3aaa0e6a482")
PCR1 = bytes.fromhex("4b4d5b3661b3efc12920900c80e126e4ce783c522de6c02a2a5bf7af3a2b9327b86776f188e4be1c1c404a129dbda493")
PCR2 = bytes.fromhex("74787f27d0c4bbead44d7a61a02df3b8297b0ab1faffb8ebd113a34b434147acb7cd21504b82eeea34100034ccaaed94")
PCR_HASH = bytes.fromhex("77786f3515030fe50a260c26d229eff15d2db0e211008f1581dc3e91bfd25703")
LLM_PROXY = 0
HEARTBEAT_TYPE = "Heartbeat(bytes32 teeId,uint256 timestamp)"


@pytest.fixture
def d(deployment: Deployment) -> Deployment:
    return deployment


@pytest.fixture
def rsa(d: Deployment) -> Any:
    """An RSA-2048 TEE registered under the module's measurement."""
    key = rsa_key(2048)
    register_rsa(d, key, MEASUREMENT)
    return key


def now(chain: Any) -> int:
    return int(chain.blocks.head.timestamp)


# --- PCRs and TEE types -----------------------------------------------------------------------------------------------


def test_og_evm_pcr_vector(d: Deployment) -> None:
    """The og-evm registration vector gives its documented pcrHash, and approvePcrs approves exactly that."""
    assert d.registry.computePcrHash(PCR0, PCR1, PCR2) == PCR_HASH == keccak256(PCR0 + PCR1 + PCR2)
    receipt = d.registry.approvePcrs(PCR0, PCR1, PCR2, LLM_PROXY, "tee-gateway v1", sender=d.admin)
    assert receipt.return_value == PCR_HASH
    assert receipt.events == [
        d.registry.MeasurementApproved(
            measurement=PCR_HASH, teeType=LLM_PROXY, admin=d.admin.address, version="tee-gateway v1"
        )
    ]
    assert d.registry.getMeasurement(PCR_HASH).teeType == LLM_PROXY
    with ape.reverts(d.registry.InvalidPcrLength, index=1, length=47):
        d.registry.computePcrHash(PCR0, PCR1[:47], PCR2)
    with ape.reverts(d.registry.InvalidPcrLength, index=2, length=96):
        d.registry.approvePcrs(PCR0, PCR1, PCR2 * 2, LLM_PROXY, "v", sender=d.admin)


def test_tee_types_are_admin_defined(d: Deployment, stranger: Any) -> None:
    assert d.registry.teeTypeName(LLM_PROXY) == "LLMProxy"
    assert d.registry.teeTypeName(9) == ""
    receipt = d.registry.addTeeType(9, "AgentExecutor", sender=d.admin)
    assert receipt.events == [d.registry.TeeTypeAdded(teeType=9, name="AgentExecutor", admin=d.admin.address)]
    d.registry.approveMeasurement(keccak256(b"agent"), 9, "agent v1", sender=d.admin)
    with ape.reverts(d.registry.TeeTypeAlreadyDefined, teeType=9):
        d.registry.addTeeType(9, "again", sender=d.admin)
    with ape.reverts(d.registry.InvalidTeeTypeName, length=0, max=64):
        d.registry.addTeeType(10, "", sender=d.admin)
    with ape.reverts(d.registry.AccessControlUnauthorizedAccount, account=stranger.address):
        d.registry.addTeeType(10, "x", sender=stranger)


# --- registration -----------------------------------------------------------------------------------------------------


def test_register_rsa_tee_uses_opengradients_tee_id(d: Deployment, chain: Any) -> None:
    key = rsa_key(2048)
    tls = keccak256(b"tls certificate der")
    receipt = register_rsa(d, key, MEASUREMENT, tls=tls)
    tee_id = key.tee_id
    assert receipt.return_value == tee_id == keccak256(key.der)
    registration = registration_for(key, MEASUREMENT, d.operator.address, tls=tls)
    assert receipt.events == [
        d.registry.RsaTeeRegistered(
            teeId=tee_id,
            operator=d.operator.address,
            measurement=MEASUREMENT,
            attestationHash=registration.attestation_hash,
            tlsCertificateHash=tls,
            paymentAddress=d.operator.address,
            endpoint="https://og-tee.test",
            publicKey=key.der,
        )
    ]
    tee = d.registry.getTee(tee_id)
    assert (tee.keyType, tee.signer, tee.enabled, tee.disabledBy, tee.teeType) == (
        RSA,
        ape.utils.ZERO_ADDRESS,
        True,
        NONE_BY,
        TDX,
    )
    assert tee.lastHeartbeat == tee.registeredAt == now(chain)
    assert tee.tlsCertificateHash == tls
    assert tuple(d.registry.teePublicKey(tee_id)) == (RSA, key.der)
    assert d.registry.keyTypeOf(tee_id) == RSA
    assert d.registry.isActive(tee_id) and d.registry.isLive(tee_id)
    assert d.registry.activeSigner(tee_id) == ape.utils.ZERO_ADDRESS  # never an ECDSA signer
    assert d.registry.signerOf(tee_id) == ape.utils.ZERO_ADDRESS
    assert tuple(d.registry.teePublicKey(d.tee.tee_id)) == (SECP256K1, b"")
    assert list(d.registry.activeTeeIdsByType(TDX, 0, 10)) == [d.tee.tee_id, tee_id]
    assert list(d.registry.activeTeeIdsByOwner(d.operator, 0, 10)) == [d.tee.tee_id, tee_id]
    assert d.registry.teeCountByType(TDX) == d.registry.teeCountByOwner(d.operator) == 2
    d.registry.disableTee(tee_id, sender=d.operator)
    assert list(d.registry.activeTeeIdsByType(TDX, 0, 10)) == [d.tee.tee_id]
    assert list(d.registry.activeTeeIdsByOwner(d.operator, 1, 10)) == []


@pytest.mark.parametrize("bits", [2049, 3072, 4096])
def test_register_other_rsa_sizes(d: Deployment, bits: int) -> None:
    key = rsa_key(bits)
    register_rsa(d, key, MEASUREMENT)
    assert tuple(d.registry.teePublicKey(key.tee_id)) == (RSA, key.der)


def test_register_rsa_rejects_malformed_keys(d: Deployment) -> None:
    key = rsa_key(2048)
    reg = registration_for(key, MEASUREMENT, d.operator.address)
    args = list(reg.as_abi())

    def attempt(der: bytes) -> None:
        d.registry.registerRsaTee((der, *args[1:]), b"\x00" * 256, sender=d.operator)

    with ape.reverts(d.registry.InvalidRsaPublicKey):
        attempt(key.der[:-1])  # truncated
    with ape.reverts(d.registry.InvalidRsaPublicKey):
        attempt(key.der + b"\x00")  # trailing byte
    with ape.reverts(d.registry.InvalidRsaPublicKey, offset=4):
        attempt(
            key.der[:4] + b"\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0a" + key.der[17:]
        )  # not rsaEncryption
    with ape.reverts(d.registry.InvalidRsaPublicKey):
        attempt(b"")
    small = rsa_key(1024)
    with ape.reverts(d.registry.InvalidRsaModulus, bits=1024):
        attempt(small.der)
    from cryptography.hazmat.primitives.asymmetric import rsa as crypto_rsa

    from tests.contracts.rsa_support import RsaTeeKey

    e3 = RsaTeeKey(crypto_rsa.generate_private_key(public_exponent=3, key_size=2048))
    with ape.reverts(d.registry.InvalidRsaExponent, exponent=3):
        attempt(e3.der)


def test_register_rsa_proof_of_possession(d: Deployment, admin: Any) -> None:
    """The key must sign this exact registration, for this operator, on this chain and registry."""
    key, other = rsa_key(2048), rsa_key(2048, 1)
    reg = registration_for(key, MEASUREMENT, d.operator.address)
    digest = d.registry_domain.digest(reg.struct_hash(d.operator.address))
    with ape.reverts(d.registry.InvalidRsaProofOfPossession, teeId=key.tee_id):
        d.registry.registerRsaTee(reg.as_abi(), other.sign(digest), sender=d.operator)
    for_other_operator = key.sign(d.registry_domain.digest(reg.struct_hash(admin.address)))
    with ape.reverts(d.registry.InvalidRsaProofOfPossession, teeId=key.tee_id, reason=PssError.DIGEST_MISMATCH):
        d.registry.registerRsaTee(reg.as_abi(), for_other_operator, sender=d.operator)
    with ape.reverts(d.registry.InvalidRsaProofOfPossession, teeId=key.tee_id, reason=PssError.INVALID_LENGTH):
        d.registry.registerRsaTee(reg.as_abi(), key.sign(digest)[:-1], sender=d.operator)
    d.registry.registerRsaTee(reg.as_abi(), key.sign(digest), sender=d.operator)
    with ape.reverts(d.registry.TeeAlreadyRegistered, teeId=key.tee_id):
        d.registry.registerRsaTee(reg.as_abi(), key.sign(digest), sender=d.operator)
    with ape.reverts(d.registry.AccessControlUnauthorizedAccount, account=admin.address):
        d.registry.registerRsaTee(reg.as_abi(), key.sign(digest), sender=admin)


def test_rsa_registration_typehash_matches_python(d: Deployment) -> None:
    from og_settle._attestation import RSA_TEE_REGISTRATION_TYPE

    assert d.registry.RSA_TEE_REGISTRATION_TYPEHASH() == keccak256(RSA_TEE_REGISTRATION_TYPE.encode())


# --- heartbeat --------------------------------------------------------------------------------------------------------


def test_heartbeat_updates_liveness_once(d: Deployment, rsa: Any, chain: Any, stranger: Any) -> None:
    tee_id = rsa.tee_id
    assert d.registry.heartbeatWindow() == 1800
    chain.pending_timestamp = now(chain) + 1900
    chain.mine()
    assert d.registry.isActive(tee_id) and not d.registry.isLive(tee_id)
    ts = now(chain) - 10
    signature = rsa.sign(heartbeat_message(tee_id, ts))
    receipt = d.registry.heartbeat(tee_id, ts, signature, sender=stranger)  # anyone may relay
    assert receipt.events == [d.registry.HeartbeatReceived(teeId=tee_id, timestamp=ts, relayer=stranger.address)]
    assert d.registry.getTee(tee_id).lastHeartbeat == ts and d.registry.isLive(tee_id)
    with ape.reverts(d.registry.HeartbeatNotNewer, timestamp=ts, lastHeartbeat=ts):
        d.registry.heartbeat(tee_id, ts, signature, sender=stranger)
    future = now(chain) + 100
    with ape.reverts(d.registry.HeartbeatInFuture, timestamp=future):
        d.registry.heartbeat(tee_id, future, rsa.sign(heartbeat_message(tee_id, future)), sender=stranger)
    with ape.reverts(d.registry.HeartbeatTooOld):
        d.registry.heartbeat(tee_id, ts - 2000, rsa.sign(heartbeat_message(tee_id, ts - 2000)), sender=stranger)
    other = rsa_key(2048, 1)
    with ape.reverts(d.registry.InvalidHeartbeatSignature, teeId=tee_id):
        d.registry.heartbeat(tee_id, ts + 1, other.sign(heartbeat_message(tee_id, ts + 1)), sender=stranger)
    with ape.reverts(d.registry.InvalidHeartbeatSignature, teeId=tee_id, reason=PssError.DIGEST_MISMATCH):
        d.registry.heartbeat(tee_id, ts + 1, signature, sender=stranger)  # signed for another timestamp
    with ape.reverts(d.registry.TeeNotRegistered, teeId=keccak256(b"nobody")):
        d.registry.heartbeat(keccak256(b"nobody"), ts + 1, signature, sender=stranger)
    d.registry.disableTee(tee_id, sender=d.operator)
    with ape.reverts(d.registry.TeeNotActive, teeId=tee_id):
        d.registry.heartbeat(tee_id, ts + 1, rsa.sign(heartbeat_message(tee_id, ts + 1)), sender=stranger)


def secp256k1_heartbeat(d: Deployment, key: Any, tee_id: bytes, timestamp: int) -> bytes:
    from eth_abi.abi import encode

    struct_hash = keccak256(
        encode(["bytes32", "bytes32", "uint256"], [keccak256(HEARTBEAT_TYPE.encode()), tee_id, timestamp])
    )
    signature: bytes = key.sign_digest(d.registry_domain.digest(struct_hash))
    return signature


def test_secp256k1_tee_heartbeats_with_eip712(d: Deployment, chain: Any, stranger: Any) -> None:
    """og-settle's own secp256k1 TEEs stay live too: an ECDSA signature over the EIP-712 Heartbeat."""
    tee_id = d.tee.tee_id
    assert d.registry.HEARTBEAT_TYPEHASH() == keccak256(HEARTBEAT_TYPE.encode())
    chain.pending_timestamp = now(chain) + 1900
    chain.mine()
    assert not d.registry.isLive(tee_id)
    ts = now(chain)
    receipt = d.registry.heartbeat(tee_id, ts, secp256k1_heartbeat(d, d.tee, tee_id, ts), sender=stranger)
    assert receipt.events == [d.registry.HeartbeatReceived(teeId=tee_id, timestamp=ts, relayer=stranger.address)]
    assert d.registry.isLive(tee_id)
    impostor = new_key(77)
    forged = secp256k1_heartbeat(d, impostor, tee_id, ts + 1)
    chain.pending_timestamp = ts + 5
    chain.mine()
    with ape.reverts(d.registry.InvalidHeartbeatSigner, teeId=tee_id, recovered=impostor.address):
        d.registry.heartbeat(tee_id, ts + 1, forged, sender=stranger)
    with ape.reverts(d.registry.InvalidHeartbeatSigner, teeId=tee_id, recovered=ape.utils.ZERO_ADDRESS):
        d.registry.heartbeat(tee_id, ts + 1, forged[:64], sender=stranger)


def test_heartbeat_window_is_configurable(d: Deployment, stranger: Any) -> None:
    receipt = d.registry.setHeartbeatWindow(600, sender=d.admin)
    assert receipt.events == [d.registry.HeartbeatWindowUpdated(window=600, admin=d.admin.address)]
    assert d.registry.heartbeatWindow() == 600
    with ape.reverts(d.registry.InvalidHeartbeatWindow, window=0):
        d.registry.setHeartbeatWindow(0, sender=d.admin)
    with ape.reverts(d.registry.AccessControlUnauthorizedAccount, account=stranger.address):
        d.registry.setHeartbeatWindow(60, sender=stranger)


# --- OpenGradient individual settlement -------------------------------------------------------------------------------


def og_settlement(key: Any, payer: str, timestamp: int, seed: bytes = b"0", da: bytes = b"walrus-blob-1") -> Any:
    input_hash, output_hash = keccak256(b"in" + seed), keccak256(b"out" + seed)
    signature = key.sign(og_message(input_hash, output_hash, timestamp))
    return (key.tee_id, input_hash, output_hash, timestamp, payer, da), signature


def test_settle_opengradient(d: Deployment, rsa: Any, chain: Any, payer: Any, stranger: Any) -> None:
    s = d.settlement
    settlement, signature = og_settlement(rsa, payer.address, now(chain))
    tee_id, input_hash, output_hash, ts, _, da = settlement
    digest = s.openGradientDigest(tee_id, input_hash, output_hash, ts)
    assert digest == keccak256(tee_id + og_message(input_hash, output_hash, ts))
    assert s.openGradientMessage(input_hash, output_hash, ts) == og_message(input_hash, output_hash, ts)
    receipt = s.settleOpenGradient(settlement, signature, sender=d.relayer)
    assert receipt.return_value == digest
    assert receipt.events == [
        s.OpenGradientSettled(
            digest=digest,
            teeId=tee_id,
            payer=payer.address,
            inputHash=input_hash,
            outputHash=output_hash,
            timestamp=ts,
            relayer=d.relayer.address,
            daPointer=da,
        )
    ]
    assert s.getSettlement(digest).kind == 3 and s.isSettled(digest)
    with ape.reverts(s.SettlementAlreadyRecorded, digest=digest):
        s.settleOpenGradient(settlement, signature, sender=d.relayer)
    # The payer and DA pointer are not signed, so they cannot make a second record of the same inference.
    with ape.reverts(s.SettlementAlreadyRecorded, digest=digest):
        s.settleOpenGradient((*settlement[:4], stranger.address, b"other"), signature, sender=d.relayer)
    with ape.reverts(s.AccessControlUnauthorizedAccount, account=stranger.address):
        s.settleOpenGradient(og_settlement(rsa, payer.address, ts, b"1")[0], signature, sender=stranger)


def test_settle_opengradient_errors(d: Deployment, rsa: Any, chain: Any, payer: Any) -> None:
    s, ts = d.settlement, now(chain)
    settlement, signature = og_settlement(rsa, payer.address, ts)
    with ape.reverts(s.InvalidRsaTeeSignature, teeId=rsa.tee_id, reason=PssError.DIGEST_MISMATCH):
        s.settleOpenGradient((*settlement[:3], ts + 1, *settlement[4:]), signature, sender=d.relayer)
    with ape.reverts(s.InvalidRsaTeeSignature, teeId=rsa.tee_id, reason=PssError.INVALID_LENGTH):
        s.settleOpenGradient(settlement, signature + b"\x00", sender=d.relayer)
    with ape.reverts(s.NotRsaTee, teeId=d.tee.tee_id):
        s.settleOpenGradient((d.tee.tee_id, *settlement[1:]), signature, sender=d.relayer)
    with ape.reverts(s.TeeNotActive, teeId=keccak256(b"nobody")):
        s.settleOpenGradient((keccak256(b"nobody"), *settlement[1:]), signature, sender=d.relayer)
    with ape.reverts(s.InvalidPayer):
        s.settleOpenGradient((*settlement[:4], ape.utils.ZERO_ADDRESS, b""), signature, sender=d.relayer)
    with ape.reverts(s.InvalidDaPointerLength, length=257, max=256):
        s.settleOpenGradient((*settlement[:5], b"x" * 257), signature, sender=d.relayer)
    old = og_settlement(rsa, payer.address, ts - 4000)
    with ape.reverts(s.TimestampTooOld):
        s.settleOpenGradient(*old, sender=d.relayer)
    ahead = og_settlement(rsa, payer.address, ts + 1000)
    with ape.reverts(s.TimestampInFuture):
        s.settleOpenGradient(*ahead, sender=d.relayer)
    d.registry.disableTee(rsa.tee_id, sender=d.admin)
    with ape.reverts(s.TeeNotActive, teeId=rsa.tee_id):
        s.settleOpenGradient(settlement, signature, sender=d.relayer)


def test_settle_opengradient_can_require_liveness(d: Deployment, rsa: Any, chain: Any, payer: Any) -> None:
    s = d.settlement
    receipt = s.setMaxHeartbeatAge(1800, sender=d.admin)
    assert receipt.events == [s.LivenessRequirementUpdated(maxHeartbeatAge=1800, admin=d.admin.address)]
    assert s.maxHeartbeatAge() == 1800
    with ape.reverts(s.InvalidMaxHeartbeatAge, maxHeartbeatAge=31 * 86400):
        s.setMaxHeartbeatAge(31 * 86400, sender=d.admin)
    registered = d.registry.getTee(rsa.tee_id).lastHeartbeat
    chain.pending_timestamp = now(chain) + 1801
    chain.mine()
    settlement, signature = og_settlement(rsa, payer.address, now(chain))
    with ape.reverts(s.TeeNotLive, teeId=rsa.tee_id, lastHeartbeat=registered):
        s.settleOpenGradient(settlement, signature, sender=d.relayer)
    ts = now(chain)
    d.registry.heartbeat(rsa.tee_id, ts, rsa.sign(heartbeat_message(rsa.tee_id, ts)), sender=d.relayer)
    s.settleOpenGradient(settlement, signature, sender=d.relayer)


@given(bit=st.integers(0, 2047))
def test_every_corrupted_settlement_signature_is_rejected_by_name(
    d: Deployment, rsa: Any, chain: Any, payer: Any, bit: int
) -> None:
    """Any single-bit corruption of the TEE's signature is refused with InvalidRsaTeeSignature and a reason."""
    settlement, signature = og_settlement(rsa, payer.address, now(chain), seed=b"flip")
    flipped = bytearray(signature)
    flipped[bit // 8] ^= 0x80 >> (bit % 8)
    with isolated(chain), ape.reverts(d.settlement.InvalidRsaTeeSignature, teeId=rsa.tee_id):
        d.settlement.settleOpenGradient(settlement, bytes(flipped), sender=d.relayer)


# --- batch leaves with RSA signatures ---------------------------------------------------------------------------------


def test_verify_inference_signature_for_rsa_leaves(d: Deployment, rsa: Any) -> None:
    """OpenGradient's leaves carry raw RSA-PSS bytes; one call proves inclusion and the leaf's signature."""
    values = []
    for i in range(4):
        input_hash, output_hash, ts = keccak256(b"i%d" % i), keccak256(b"o%d" % i), 1_700_000_000 + i
        values.append((rsa.tee_id, input_hash, output_hash, rsa.sign(og_message(input_hash, output_hash, ts)), ts))
    corrupted = bytearray(values[0][3])
    corrupted[100] ^= 1
    values.append((*values[0][:3], bytes(corrupted), values[0][4]))
    values.append((*values[1][:4], values[1][4] + 1))  # signed for another timestamp
    tree = StandardMerkleTree.of(values, OG_LEAF_ENCODING)
    s = d.settlement
    s.recordBatch(tree.root, len(tree), b"walrus-batch", sender=d.relayer)
    for i in range(4):
        assert tuple(s.verifyInferenceSignature(tree.root, tree.values[i], tree.proof(i))) == (
            1,
            ape.utils.ZERO_ADDRESS,
        )
    with ape.reverts(s.InvalidRsaTeeSignature, teeId=rsa.tee_id):
        s.verifyInferenceSignature(tree.root, tree.values[4], tree.proof(4))
    with ape.reverts(s.InvalidRsaTeeSignature, teeId=rsa.tee_id, reason=PssError.DIGEST_MISMATCH):
        s.verifyInferenceSignature(tree.root, tree.values[5], tree.proof(5))
    d.registry.disableTee(rsa.tee_id, sender=d.operator)
    with ape.reverts(s.TeeNotActive, teeId=rsa.tee_id):
        s.verifyInferenceSignature(tree.root, tree.values[0], tree.proof(0))
