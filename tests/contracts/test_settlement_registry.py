"""SettlementRegistry unit tests: every function and every error path, each asserting the named error."""

from __future__ import annotations

from typing import Any

import ape
import pytest

from og_settle._attestation import (
    INDIVIDUAL_SETTLEMENT_TYPE,
    INFERENCE_TYPE,
    METADATA_SETTLEMENT_TYPE,
    IndividualSettlement,
    InferenceAttestation,
    MetadataSettlement,
    TeeKey,
)
from og_settle._hex import keccak256
from og_settle._merkle import OG_LEAF_ENCODING, StandardMerkleTree
from tests.contracts.conftest import MAX_AGE, MAX_FUTURE_DRIFT, MEASUREMENT, Deployment

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ZERO32 = b"\x00" * 32
DA_POINTER = b"ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
INDIVIDUAL, METADATA = 1, 2


@pytest.fixture
def d(deployment: Deployment) -> Deployment:
    return deployment


def head_time(chain: Any) -> int:
    return int(chain.blocks.head.timestamp)


def next_block_at(chain: Any, timestamp: int) -> None:
    chain.provider.make_request("evm_setNextBlockTimestamp", [timestamp])


def malleate(signature: bytes) -> bytes:
    """The same ECDSA signature in its high-s form (valid for plain ecrecover, rejected by OpenZeppelin ECDSA)."""
    s = int.from_bytes(signature[32:64], "big")
    return signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - signature[64]])


# --- construction and constants -------------------------------------------------------------------------------------


def test_constants_and_domain_match_python(d: Deployment) -> None:
    s = d.settlement
    assert s.INFERENCE_TYPEHASH() == keccak256(INFERENCE_TYPE.encode())
    assert s.INDIVIDUAL_SETTLEMENT_TYPEHASH() == keccak256(INDIVIDUAL_SETTLEMENT_TYPE.encode())
    assert s.METADATA_SETTLEMENT_TYPEHASH() == keccak256(METADATA_SETTLEMENT_TYPE.encode())
    domain = s.eip712Domain()
    assert (domain.name, domain.version, domain.chainId, domain.verifyingContract) == (
        "OG Settlement Registry",
        "1",
        d.domain.chain_id,
        s.address,
    )
    assert s.teeRegistry() == d.registry.address
    assert tuple(s.timestampWindow()) == (MAX_AGE, MAX_FUTURE_DRIFT)
    assert (s.MAX_DA_POINTER_LENGTH(), s.MAX_METADATA_SIZE(), s.MAX_WINDOW()) == (256, 65536, 30 * 86400)


def test_digests_match_python(d: Deployment, payer: Any) -> None:
    settlement = IndividualSettlement(d.tee.tee_id, keccak256(b"i"), keccak256(b"o"), 1234, payer.address)
    assert d.settlement.individualDigest(settlement.as_abi()) == d.domain.digest(settlement.struct_hash())
    record = MetadataSettlement(d.tee.tee_id, 99, payer.address, "m", b"in", b"out", b"meta")
    assert d.settlement.metadataDigest(record.as_abi()) == d.domain.digest(record.struct_hash())
    inference = InferenceAttestation(d.tee.tee_id, keccak256(b"i"), keccak256(b"o"), 7)
    assert d.settlement.inferenceDigest(*inference.message().values()) == d.domain.digest(inference.struct_hash())


def test_constructor_errors(project: Any, deployer: Any, admin: Any, d: Deployment, stranger: Any) -> None:
    with ape.reverts(project.SettlementRegistry.InvalidTeeRegistry, registry=stranger.address):
        project.SettlementRegistry.deploy(stranger, admin, MAX_AGE, MAX_FUTURE_DRIFT, sender=deployer)
    with ape.reverts(project.SettlementRegistry.InvalidTimestampWindow, maxAge=30 * 86400 + 1, maxFutureDrift=0):
        project.SettlementRegistry.deploy(d.registry, admin, 30 * 86400 + 1, 0, sender=deployer)


# --- batch ----------------------------------------------------------------------------------------------------------


def test_record_batch_stores_packed_record_and_emits(d: Deployment, chain: Any) -> None:
    root1, root2 = keccak256(b"root 1"), keccak256(b"root 2")
    receipt = d.settlement.recordBatch(root1, 1000, DA_POINTER, sender=d.relayer)
    assert receipt.return_value == 1
    assert receipt.events == [
        d.settlement.BatchRecorded(batchId=1, root=root1, relayer=d.relayer.address, size=1000, daPointer=DA_POINTER)
    ]
    batch = d.settlement.getBatch(root1)
    assert (batch.relayer, batch.batchId, batch.size, batch.recordedAt) == (
        d.relayer.address,
        1,
        1000,
        head_time(chain),
    )
    receipt = d.settlement.recordBatch(root2, 2**32 - 1, b"\x01", sender=d.relayer)
    assert receipt.events[0].batchId == 2
    assert tuple(d.settlement.counters()) == (2, 1000 + 2**32 - 1)


def test_record_batch_errors(d: Deployment, stranger: Any) -> None:
    s, root = d.settlement, keccak256(b"root")
    with ape.reverts(s.AccessControlUnauthorizedAccount, account=stranger.address):
        s.recordBatch(root, 1, DA_POINTER, sender=stranger)
    with ape.reverts(s.InvalidBatchRoot, root=ZERO32):
        s.recordBatch(ZERO32, 1, DA_POINTER, sender=d.relayer)
    with ape.reverts(s.InvalidBatchSize, size=0):
        s.recordBatch(root, 0, DA_POINTER, sender=d.relayer)
    with ape.reverts(s.InvalidBatchSize, size=2**32):
        s.recordBatch(root, 2**32, DA_POINTER, sender=d.relayer)
    with ape.reverts(s.InvalidDaPointerLength, length=0, max=256):
        s.recordBatch(root, 1, b"", sender=d.relayer)
    with ape.reverts(s.InvalidDaPointerLength, length=257, max=256):
        s.recordBatch(root, 1, b"x" * 257, sender=d.relayer)
    s.recordBatch(root, 1, b"x" * 256, sender=d.relayer)
    with ape.reverts(s.BatchRootAlreadyRecorded, root=root, batchId=1):
        s.recordBatch(root, 5, DA_POINTER, sender=d.relayer)


# --- individual -----------------------------------------------------------------------------------------------------


def test_settle_individual_records_digest_once(d: Deployment, chain: Any, payer: Any) -> None:
    settlement, signature = d.individual(timestamp=head_time(chain), payer=payer.address)
    digest = d.domain.digest(settlement.struct_hash())
    receipt = d.settlement.settleIndividual(settlement.as_abi(), signature, sender=d.relayer)
    assert receipt.return_value == digest
    assert receipt.events == [
        d.settlement.IndividualSettled(
            digest=digest,
            teeId=settlement.tee_id,
            payer=payer.address,
            inputHash=settlement.input_hash,
            outputHash=settlement.output_hash,
            timestamp=settlement.timestamp,
            relayer=d.relayer.address,
        )
    ]
    assert d.settlement.isSettled(digest)
    assert tuple(d.settlement.getSettlement(digest)) == (INDIVIDUAL, head_time(chain), d.relayer.address)
    assert tuple(d.settlement.counters()) == (0, 0)  # individual settlements are counted by events
    with ape.reverts(d.settlement.SettlementAlreadyRecorded, digest=digest):
        d.settlement.settleIndividual(settlement.as_abi(), signature, sender=d.relayer)


def test_settle_individual_access_and_input_errors(d: Deployment, chain: Any, payer: Any, stranger: Any) -> None:
    s = d.settlement
    settlement, signature = d.individual(timestamp=head_time(chain), payer=payer.address)
    with ape.reverts(s.AccessControlUnauthorizedAccount, account=stranger.address):
        s.settleIndividual(settlement.as_abi(), signature, sender=stranger)
    no_payer = (*settlement.as_abi()[:4], ape.utils.ZERO_ADDRESS)
    with ape.reverts(s.InvalidPayer, payer=ape.utils.ZERO_ADDRESS):
        s.settleIndividual(no_payer, signature, sender=d.relayer)


def test_settle_individual_timestamp_window_bounds(d: Deployment, chain: Any, payer: Any) -> None:
    """Exactly now - maxAge and now + maxFutureDrift are accepted; one second beyond either is rejected."""
    s = d.settlement
    now = head_time(chain) + 100
    old, signature = d.individual(timestamp=now - MAX_AGE - 1, payer=payer.address)
    next_block_at(chain, now)
    with ape.reverts(s.TimestampTooOld, timestamp=now - MAX_AGE - 1, oldest=now - MAX_AGE):
        s.settleIndividual(old.as_abi(), signature, sender=d.relayer)
    future, signature = d.individual(timestamp=now + MAX_FUTURE_DRIFT + 1, payer=payer.address)
    next_block_at(chain, now)
    with ape.reverts(s.TimestampInFuture, timestamp=now + MAX_FUTURE_DRIFT + 1, latest=now + MAX_FUTURE_DRIFT):
        s.settleIndividual(future.as_abi(), signature, sender=d.relayer)
    for i, ts in enumerate((now - MAX_AGE, now + MAX_FUTURE_DRIFT)):
        settlement, signature = d.individual(timestamp=ts, payer=payer.address, seed=b"edge%d" % i)
        next_block_at(chain, now)
        s.settleIndividual(settlement.as_abi(), signature, sender=d.relayer)
        assert s.isSettled(d.domain.digest(settlement.struct_hash()))


def test_set_timestamp_window(d: Deployment, chain: Any, payer: Any, stranger: Any) -> None:
    s = d.settlement
    with ape.reverts(s.AccessControlUnauthorizedAccount, account=stranger.address):
        s.setTimestampWindow(10, 10, sender=stranger)
    with ape.reverts(s.InvalidTimestampWindow, maxAge=0, maxFutureDrift=30 * 86400 + 1):
        s.setTimestampWindow(0, 30 * 86400 + 1, sender=d.admin)
    receipt = s.setTimestampWindow(60, 0, sender=d.admin)
    assert receipt.events == [s.TimestampWindowUpdated(maxAge=60, maxFutureDrift=0, admin=d.admin.address)]
    assert tuple(s.timestampWindow()) == (60, 0)
    now = head_time(chain) + 50
    settlement, signature = d.individual(timestamp=now - 61, payer=payer.address)
    next_block_at(chain, now)
    with ape.reverts(s.TimestampTooOld, timestamp=now - 61, oldest=now - 60):
        s.settleIndividual(settlement.as_abi(), signature, sender=d.relayer)


@pytest.mark.parametrize("state", ["unknown", "disabled", "revoked"])
def test_settle_rejects_inactive_tee(d: Deployment, chain: Any, payer: Any, state: str) -> None:
    """No unknown, disabled or revoked TEE settles, in individual or metadata mode."""
    key = TeeKey(keccak256(b"unregistered")) if state == "unknown" else d.tee
    if state == "disabled":
        d.registry.disableTee(key.tee_id, sender=d.operator)
    elif state == "revoked":
        d.registry.revokeMeasurement(MEASUREMENT, sender=d.admin)
    settlement, signature = d.individual(key=key, timestamp=head_time(chain), payer=payer.address)
    with ape.reverts(d.settlement.TeeNotActive, teeId=key.tee_id):
        d.settlement.settleIndividual(settlement.as_abi(), signature, sender=d.relayer)
    record, signature = d.metadata(key=key, timestamp=head_time(chain), payer=payer.address)
    with ape.reverts(d.settlement.TeeNotActive, teeId=key.tee_id):
        d.settlement.settleMetadata(record.as_abi(), signature, sender=d.relayer)


def test_settle_individual_rejects_bad_signatures(d: Deployment, chain: Any, payer: Any, stranger: Any) -> None:
    s, tee_id = d.settlement, d.tee.tee_id
    settlement, signature = d.individual(timestamp=head_time(chain), payer=payer.address)
    impostor = TeeKey(keccak256(b"impostor"))
    forged = impostor.sign_individual(d.domain, settlement)
    with ape.reverts(s.InvalidTeeSignature, teeId=tee_id, recovered=impostor.address):
        s.settleIndividual(settlement.as_abi(), forged, sender=d.relayer)
    # High-s twin of a valid signature: OpenZeppelin ECDSA refuses it (no malleability).
    with ape.reverts(s.InvalidTeeSignature, teeId=tee_id, recovered=ape.utils.ZERO_ADDRESS):
        s.settleIndividual(settlement.as_abi(), malleate(signature), sender=d.relayer)
    for bad in (signature[:64], signature + b"\x00", b""):
        with ape.reverts(s.InvalidTeeSignature, teeId=tee_id, recovered=ape.utils.ZERO_ADDRESS):
            s.settleIndividual(settlement.as_abi(), bad, sender=d.relayer)
    # The payer is signed: a relayer cannot re-attribute the inference to another payer.
    reattributed = (*settlement.as_abi()[:4], stranger.address)
    with ape.reverts(s.InvalidTeeSignature, teeId=tee_id):
        s.settleIndividual(reattributed, signature, sender=d.relayer)
    # A signature from another deployment's (or chain's) domain does not verify here.
    other_domain = type(d.domain)(d.domain.name, d.domain.version, d.domain.chain_id + 1, s.address)
    with ape.reverts(s.InvalidTeeSignature, teeId=tee_id):
        s.settleIndividual(settlement.as_abi(), d.tee.sign_individual(other_domain, settlement), sender=d.relayer)
    # A batch-leaf (Inference) signature over the same fields is not an individual-settlement signature.
    leaf_sig = d.leaf_signature(d.tee, tee_id, settlement.input_hash, settlement.output_hash, settlement.timestamp)
    with ape.reverts(s.InvalidTeeSignature, teeId=tee_id):
        s.settleIndividual(settlement.as_abi(), leaf_sig, sender=d.relayer)


# --- metadata -------------------------------------------------------------------------------------------------------


def test_settle_metadata_hashes_on_chain_and_emits_the_data(d: Deployment, chain: Any, payer: Any) -> None:
    record, signature = d.metadata(timestamp=head_time(chain), payer=payer.address)
    digest = d.domain.digest(record.struct_hash())
    receipt = d.settlement.settleMetadata(record.as_abi(), signature, sender=d.relayer)
    assert receipt.return_value == digest
    assert receipt.events == [
        d.settlement.MetadataSettled(
            digest=digest,
            teeId=record.tee_id,
            payer=payer.address,
            inputHash=keccak256(record.input),
            outputHash=keccak256(record.output),
            timestamp=record.timestamp,
            relayer=d.relayer.address,
            modelId=record.model_id,
            input=record.input,
            output=record.output,
            metadata=record.metadata,
        )
    ]
    assert tuple(d.settlement.getSettlement(digest)) == (METADATA, head_time(chain), d.relayer.address)
    assert tuple(d.settlement.counters()) == (0, 0)
    with ape.reverts(d.settlement.SettlementAlreadyRecorded, digest=digest):
        d.settlement.settleMetadata(record.as_abi(), signature, sender=d.relayer)


def test_settle_metadata_errors(d: Deployment, chain: Any, payer: Any, stranger: Any) -> None:
    s, now = d.settlement, head_time(chain)
    record, signature = d.metadata(timestamp=now, payer=payer.address)
    with ape.reverts(s.AccessControlUnauthorizedAccount, account=stranger.address):
        s.settleMetadata(record.as_abi(), signature, sender=stranger)
    fields = list(record.as_abi())
    # 65,537 bytes in total: one over the cap (the model id counts too).
    too_big = (*fields[:3], "m", b"\x01" * 40_000, b"\x02" * 25_536, b"")
    with ape.reverts(s.MetadataTooLarge, size=65_537, max=65_536):
        s.settleMetadata(too_big, signature, sender=d.relayer)
    with ape.reverts(s.InvalidPayer, payer=ape.utils.ZERO_ADDRESS):
        s.settleMetadata((*fields[:2], ape.utils.ZERO_ADDRESS, *fields[3:]), signature, sender=d.relayer)
    with ape.reverts(s.TimestampTooOld):
        old, sig = d.metadata(timestamp=now - MAX_AGE - 100, payer=payer.address)
        s.settleMetadata(old.as_abi(), sig, sender=d.relayer)
    with ape.reverts(s.TimestampInFuture):
        future, sig = d.metadata(timestamp=now + MAX_FUTURE_DRIFT + 100, payer=payer.address)
        s.settleMetadata(future.as_abi(), sig, sender=d.relayer)
    # Any change to the data changes the on-chain hashes, so the TEE signature no longer matches.
    tampered = (*fields[:4], fields[4] + b" ", *fields[5:])
    with ape.reverts(s.InvalidTeeSignature, teeId=record.tee_id):
        s.settleMetadata(tampered, signature, sender=d.relayer)
    with ape.reverts(s.InvalidTeeSignature, teeId=record.tee_id, recovered=ape.utils.ZERO_ADDRESS):
        s.settleMetadata(record.as_abi(), malleate(signature), sender=d.relayer)


def test_settle_metadata_accepts_exactly_the_cap(d: Deployment, chain: Any, payer: Any) -> None:
    record = MetadataSettlement(d.tee.tee_id, head_time(chain), payer.address, "m", b"i" * 65_000, b"o" * 535)
    assert record.size == 65_536
    signature = d.tee.sign_metadata(d.domain, record)
    d.settlement.settleMetadata(record.as_abi(), signature, sender=d.relayer, gas=8_000_000)
    assert d.settlement.isSettled(d.domain.digest(record.struct_hash()))


# --- pause ----------------------------------------------------------------------------------------------------------


def test_pause_stops_every_state_change_and_keeps_views(d: Deployment, chain: Any, payer: Any, stranger: Any) -> None:
    s = d.settlement
    with ape.reverts(s.AccessControlUnauthorizedAccount, account=stranger.address):
        s.pause(sender=stranger)
    root = keccak256(b"before pause")
    s.recordBatch(root, 1, DA_POINTER, sender=d.relayer)
    receipt = s.pause(sender=d.admin)
    assert receipt.events == [s.Paused(account=d.admin.address)]
    assert s.paused()
    settlement, signature = d.individual(timestamp=head_time(chain), payer=payer.address)
    record, record_sig = d.metadata(timestamp=head_time(chain), payer=payer.address)
    with ape.reverts(s.EnforcedPause):
        s.recordBatch(keccak256(b"during pause"), 1, DA_POINTER, sender=d.relayer)
    with ape.reverts(s.EnforcedPause):
        s.settleIndividual(settlement.as_abi(), signature, sender=d.relayer)
    with ape.reverts(s.EnforcedPause):
        s.settleMetadata(record.as_abi(), record_sig, sender=d.relayer)
    assert s.getBatch(root).batchId == 1  # views keep working
    with ape.reverts(s.AccessControlUnauthorizedAccount, account=stranger.address):
        s.unpause(sender=stranger)
    receipt = s.unpause(sender=d.admin)
    assert receipt.events == [s.Unpaused(account=d.admin.address)]
    s.settleIndividual(settlement.as_abi(), signature, sender=d.relayer)


# --- proofs ---------------------------------------------------------------------------------------------------------


def signed_tree(d: Deployment, n: int, timestamp: int) -> StandardMerkleTree:
    values = []
    for i in range(n):
        input_hash, output_hash = keccak256(b"in %d" % i), keccak256(b"out %d" % i)
        sig = d.leaf_signature(d.tee, d.tee.tee_id, input_hash, output_hash, timestamp + i)
        values.append((d.tee.tee_id, input_hash, output_hash, sig, timestamp + i))
    return StandardMerkleTree.of(values, OG_LEAF_ENCODING)


def test_leaf_hash_matches_python(d: Deployment) -> None:
    tree = signed_tree(d, 3, 1000)
    for value in tree.values:
        assert d.settlement.leafHash(value) == tree.leaf_hash(value)


def test_inclusion_views(d: Deployment) -> None:
    s, tree = d.settlement, signed_tree(d, 5, 1000)
    value, proof = tree.values[2], tree.proof(2)
    assert not s.verifyInclusion(tree.root, value, proof)  # not recorded yet
    with ape.reverts(s.UnknownBatchRoot, root=tree.root):
        s.verifyInferenceSignature(tree.root, value, proof)
    s.recordBatch(tree.root, len(tree), DA_POINTER, sender=d.relayer)
    assert s.verifyInclusion(tree.root, value, proof)
    assert not s.verifyInclusion(tree.root, tree.values[3], proof)
    assert tuple(s.verifyInferenceSignature(tree.root, value, proof)) == (1, d.tee.address)
    with ape.reverts(s.InvalidInclusionProof, root=tree.root, leafHash=tree.leaf_hash(tree.values[3])):
        s.verifyInferenceSignature(tree.root, tree.values[3], proof)
    multi = tree.multiproof([0, 3, 4])
    assert s.verifyMultiInclusion(tree.root, list(multi.leaves), list(multi.proof), list(multi.proof_flags))
    assert not s.verifyMultiInclusion(tree.root, [], [tree.root], [])  # the empty multiproof proves nothing
    with ape.reverts(s.MerkleProofInvalidMultiproof):
        s.verifyMultiInclusion(tree.root, list(multi.leaves), [], list(multi.proof_flags))


def test_signature_view_checks_the_tee(d: Deployment) -> None:
    """A leaf included in a stored root still needs its TEE's valid EIP-712 signature and an active TEE."""
    s = d.settlement
    rsa_like = (d.tee.tee_id, keccak256(b"i"), keccak256(b"o"), b"\x5a" * 256, 1000)  # an RSA-PSS-sized signature
    impostor = TeeKey(keccak256(b"impostor"))
    forged = (d.tee.tee_id, keccak256(b"i"), keccak256(b"o"), b"", 1001)
    forged = (*forged[:3], d.leaf_signature(impostor, *forged[:3], 1001), 1001)
    tree = StandardMerkleTree.of([rsa_like, forged, *signed_tree(d, 2, 2000).values], OG_LEAF_ENCODING)
    s.recordBatch(tree.root, len(tree), DA_POINTER, sender=d.relayer)
    with ape.reverts(s.InvalidTeeSignature, teeId=d.tee.tee_id, recovered=ape.utils.ZERO_ADDRESS):
        s.verifyInferenceSignature(tree.root, tree.values[0], tree.proof(0))
    with ape.reverts(s.InvalidTeeSignature, teeId=d.tee.tee_id, recovered=impostor.address):
        s.verifyInferenceSignature(tree.root, tree.values[1], tree.proof(1))
    assert s.verifyInferenceSignature(tree.root, tree.values[2], tree.proof(2))[1] == d.tee.address
    d.registry.disableTee(d.tee.tee_id, sender=d.operator)
    with ape.reverts(s.TeeNotActive, teeId=d.tee.tee_id):
        s.verifyInferenceSignature(tree.root, tree.values[2], tree.proof(2))
