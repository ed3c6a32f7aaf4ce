"""Typed clients against the deployed contracts: writes, reads, inclusion, named reverts, and `og-settle status`."""

from __future__ import annotations

import json
from pathlib import Path

from eth_account import Account

from og_settle._hex import keccak256, to_hex
from og_settle._merkle import OG_LEAF_ENCODING, StandardMerkleTree
from og_settle._x402 import PaymentPayload
from og_settle.clients import (
    ContractRevert,
    PaymentFacilitatorClient,
    Permit2Client,
    SettlementRegistryClient,
    TxSender,
)
from og_settle.relayer._calls import leaf
from tests.relayer.support import RELAYER_KEY, LiveChain, cli, inference_record, payment_record


def test_batch_record_read_inclusion_and_named_revert(chain: LiveChain, tmp_path: Path) -> None:
    """A recorded root reads back, its leaves prove inclusion on chain, and recording it again reverts with
    BatchRootAlreadyRecorded carrying the root and batch id; `og-settle status` agrees."""
    w3 = chain.web3()
    sender = TxSender(w3, Account.from_key(RELAYER_KEY))
    registry = SettlementRegistryClient(w3, chain.deployment.settlement_registry)
    leaves = [leaf(inference_record(chain.deployment, 90_000 + i)) for i in range(5)]
    tree = StandardMerkleTree.of([leaf.values() for leaf in leaves], OG_LEAF_ENCODING)
    assert registry.get_batch(tree.root) is None
    registry.send_record_batch(sender, tree.root, len(tree), b"og-settle:test")
    recorded = registry.get_batch(tree.root)
    assert recorded is not None and recorded.size == 5 and recorded.relayer == sender.address
    assert registry.verify_inclusion(tree.root, leaves[2], tree.proof(2))
    assert not registry.verify_inclusion(tree.root, leaves[2], tree.proof(3))
    assert registry.verify_multi_inclusion(tree.root, tree.multiproof([0, 3, 4]))
    assert not registry.verify_multi_inclusion(keccak256(b"never recorded"), tree.multiproof([0, 3, 4]))
    batch_id, signer = registry.verify_inference_signature(tree.root, leaves[2], tree.proof(2))
    # teeId = keccak256(public key), and the signer is the last 20 bytes of that same hash.
    assert (batch_id, signer.lower()) == (recorded.batch_id, "0x" + leaves[2].tee_id[12:].hex())
    try:
        registry.verify_inference_signature(tree.root, leaves[2], tree.proof(3))
    except ContractRevert as revert:
        assert revert.error.name == "InvalidInclusionProof"
    else:
        raise AssertionError("a wrong proof must not verify")
    try:
        registry.send_record_batch(sender, tree.root, len(tree), b"og-settle:test")
    except ContractRevert as revert:
        assert revert.error.name == "BatchRootAlreadyRecorded"
        assert revert.error.arg("root") == to_hex(tree.root)
        assert revert.error.arg("batchId") == recorded.batch_id
    else:
        raise AssertionError("recording a root twice must revert")

    dump = tmp_path / "dump.json"
    dump.write_text(tree.dump_json())
    deployment = str(chain.deployment_path)
    shown = cli("status", "batch", to_hex(tree.root), "--rpc", chain.rpc_url, "--deployment", deployment, "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["batch_id"] == recorded.batch_id
    leaf_json = json.dumps(leaves[1].to_json())
    args = ("--rpc", chain.rpc_url, "--deployment", deployment, "--leaf", leaf_json, "--dump", str(dump), "--json")
    proved = cli("status", "inference", *args)
    assert proved.returncode == 0 and json.loads(proved.stdout)["settled"] is True
    unknown = cli("status", "batch", to_hex(keccak256(b"never")), "--rpc", chain.rpc_url, "--deployment", deployment)
    assert unknown.returncode == 1 and "not recorded" in unknown.stdout


def test_payment_settle_and_x402_reason(chain: LiveChain, tmp_path: Path) -> None:
    """A settled payment spends its Permit2 nonce; settling it again reverts NonceAlreadyUsed, which maps to the
    x402 reason permit2_invalid_nonce; in a batch the replay fails alone with the same reason."""
    w3 = chain.web3()
    sender = TxSender(w3, Account.from_key(RELAYER_KEY))
    facilitator = PaymentFacilitatorClient(w3, chain.deployment.payment_facilitator)
    permit2 = Permit2Client(w3, chain.deployment.permit2)
    records = [payment_record(chain.deployment, 95_000 + i) for i in range(2)]
    payments = []
    for record in records:
        payload = PaymentPayload.from_json(record["paymentPayload"])
        payments.append(payload.payload.authorization.payment_args(payload.payload.signature))
    owner, nonce = payments[0][1], payments[0][2][1]
    assert not permit2.nonce_spent(owner, nonce)
    facilitator.send_settle(sender, payments[0])
    assert permit2.nonce_spent(owner, nonce)
    error = facilitator.simulate_settle(payments[0], sender.address)
    assert error is not None and error.name == "NonceAlreadyUsed"
    outcomes = facilitator.send_settle_batch(sender, [payments[0], payments[1]])
    assert [o.settled for o in outcomes] == [False, True]
    assert outcomes[0].reason == "permit2_invalid_nonce"
    found = facilitator.settled_payment(owner, nonce)
    assert found is not None and found.amount == payments[0][7] and found.mismatch(payments[0]) is None
    chain_args = ("--rpc", chain.rpc_url, "--deployment", str(chain.deployment_path))
    payload_file = tmp_path / "payload.json"
    payload_file.write_text(json.dumps(records[0]["paymentPayload"]))
    shown = cli("status", "payment", owner, str(nonce), "--payload", str(payload_file), *chain_args)
    assert shown.returncode == 0 and "settled in" in shown.stdout
    # Without the payload, (payer, nonce) alone is not called settled: the payer may have spent the nonce itself.
    bare = cli("status", "payment", owner, str(nonce), *chain_args)
    assert bare.returncode == 1 and "pass --payload" in bare.stdout
