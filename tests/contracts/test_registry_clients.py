"""The typed clients (``og_settle.clients``) against the RSA features: TeeRegistryClient (PCRs, RSA registration,
heartbeat, views, named reverts) and SettlementRegistryClient.settle_open_gradient_call."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account

from og_settle._hex import keccak256
from og_settle._merkle import OG_LEAF_ENCODING, StandardMerkleTree
from og_settle.clients import (
    ContractRevert,
    OpenGradientSettlement,
    SettlementRegistryClient,
    TeeRegistryClient,
    TxSender,
)
from tests.contracts.conftest import Deployment
from tests.contracts.rsa_support import registration_for, rsa_key
from tests.contracts.test_rsa_tee import LLM_PROXY, PCR0, PCR1, PCR2, PCR_HASH


@pytest.fixture
def clients(deployment: Deployment, chain: Any) -> tuple[Any, TeeRegistryClient, SettlementRegistryClient]:
    w3 = chain.provider.web3
    return (
        w3,
        TeeRegistryClient(w3, deployment.registry.address),
        SettlementRegistryClient(w3, deployment.settlement.address),
    )


def sender_for(account: Any, w3: Any) -> TxSender:
    return TxSender(w3, Account.from_key(account.private_key))


def test_tee_registry_client_registers_and_heartbeats_an_rsa_tee(deployment: Deployment, clients: Any) -> None:
    d = deployment
    w3, tees, _ = clients
    admin, operator, relayer = (sender_for(a, w3) for a in (d.admin, d.operator, d.relayer))
    assert tees.compute_pcr_hash(PCR0, PCR1, PCR2) == PCR_HASH
    admin.send(tees.approve_pcrs_call((PCR0, PCR1, PCR2), LLM_PROXY, "tee-gateway v1"))
    assert tees.get_measurement(PCR_HASH)[:2] == ("approved", LLM_PROXY)
    assert tees.tee_type_name(LLM_PROXY) == "LLMProxy"

    key = rsa_key(2048)
    registration = registration_for(key, PCR_HASH, operator.address)
    proof = key.sign(d.registry_domain.digest(registration.struct_hash(operator.address)))
    operator.send(tees.register_rsa_tee_call(registration, proof))
    tee = tees.get_tee(key.tee_id)
    assert tee is not None and (tee.key_type, tee.tee_type, tee.operator) == ("rsa", LLM_PROXY, operator.address)
    assert tees.tee_public_key(key.tee_id) == ("rsa", key.der)
    assert tees.is_active(key.tee_id) and tees.is_live(key.tee_id) and tees.heartbeat_window() == 1800
    assert tees.active_tee_ids_by_type(LLM_PROXY) == [key.tee_id]
    assert tees.active_tee_ids_by_owner(operator.address, page=1) == [d.tee.tee_id, key.tee_id]
    assert set(tees.active_tee_ids(page=1)) == {d.tee.tee_id, key.tee_id}
    assert tees.get_tee(keccak256(b"nobody")) is None

    ts = int(w3.eth.get_block("latest")["timestamp"])
    signature = key.sign(tees.heartbeat_message(key.tee_id, ts + 1))
    w3.provider.make_request("evm_mine", [ts + 2])
    relayer.send(tees.heartbeat_call(key.tee_id, ts + 1, signature))
    refreshed = tees.get_tee(key.tee_id)
    assert refreshed is not None and refreshed.last_heartbeat == ts + 1
    with pytest.raises(ContractRevert) as replay:
        relayer.send(tees.heartbeat_call(key.tee_id, ts + 1, signature))
    assert replay.value.error.name == "HeartbeatNotNewer"
    # The secp256k1 stand-in TEE heartbeats through the same call, signing the client's EIP-712 digest.
    digest = tees.secp256k1_heartbeat_digest(d.tee.tee_id, ts + 1)
    relayer.send(tees.heartbeat_call(d.tee.tee_id, ts + 1, d.tee.sign_digest(digest)))
    secp = tees.get_tee(d.tee.tee_id)
    assert secp is not None and secp.last_heartbeat == ts + 1 and secp.key_type == "secp256k1"


def test_settlement_client_settles_opengradient(deployment: Deployment, clients: Any, payer: Any) -> None:
    d = deployment
    w3, tees, settlements = clients
    operator, relayer = sender_for(d.operator, w3), sender_for(d.relayer, w3)
    key = rsa_key(2048)
    registration = registration_for(key, d.registry.measurementOf(d.tee.tee_id), operator.address)
    operator.send(
        tees.register_rsa_tee_call(
            registration, key.sign(d.registry_domain.digest(registration.struct_hash(operator.address)))
        )
    )
    ts = int(w3.eth.get_block("latest")["timestamp"])
    record = OpenGradientSettlement(key.tee_id, keccak256(b"req"), keccak256(b"out"), ts, payer.address, b"blob-1")
    signature = key.sign(record.message_hash)
    receipt = relayer.send(settlements.settle_open_gradient_call(record, signature))
    assert settlements.settled_digests(receipt) == [record.digest] == [settlements.open_gradient_digest(record)]
    settled = settlements.get_settlement(record.digest)
    assert settled is not None and settled.kind == "opengradient"
    assert settlements.max_heartbeat_age() == 0
    with pytest.raises(ContractRevert) as again:
        relayer.send(settlements.settle_open_gradient_call(record, signature))
    assert again.value.error.name == "SettlementAlreadyRecorded"

    leaf = (key.tee_id, record.input_hash, record.output_hash, signature, ts)
    tree = StandardMerkleTree.of([leaf, (*leaf[:4], ts + 1)], OG_LEAF_ENCODING)
    relayer.send(settlements.record_batch_call(tree.root, len(tree), b"walrus-batch"))
    batch_id, signer = settlements.verify_inference_signature(tree.root, tree.values[0], tree.proof(0))
    assert batch_id >= 1 and int(signer, 16) == 0
    with pytest.raises(ContractRevert) as forged:
        settlements.verify_inference_signature(tree.root, tree.values[1], tree.proof(1))
    assert forged.value.error.name == "InvalidRsaTeeSignature"
