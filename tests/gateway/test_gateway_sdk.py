"""OpenGradient's own SDK (opengradient==1.1.4, unmodified, in its own virtualenv) against the gateway, on a replica
of Base mainnet (chain 8453, where the SDK pays), with ``BASE_MAINNET_RPC`` pointing at the replica.

For ``private`` and ``batch``: ``ensure_opg_approval`` sends one approval and then none; chat, streamed chat and
completion are paid through the canonical x402 proxies and settle on chain; the SDK's ``tee_verify.verify_response``
accepts every answer; for ``batch``, every leaf is in a root the registry recorded, with a proof from the stored dump
that verifies on chain.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from og_settle.clients import make_web3
from tests.gateway.stack import Stack, address_of, running_stack, settles_stock_payloads
from tests.support.sdk_envs import python_env, run_python

SDK_CLIENT = Path(__file__).with_name("sdk_client.py")
EXACT_PROXY = "0x402085c248EeA27D92E8b30b2C58ed07f9E20001"
UPTO_PROXY = "0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("gateway-base"), "base") as stack:
        yield stack


@pytest.fixture(scope="module")
def sdk_run(stack: Stack) -> dict[str, Any]:
    if not settles_stock_payloads(stack):
        pytest.skip("the facilitator on main does not settle canonical-proxy (stock) payloads yet (issue 9 items 1-3)")
    # The trust anchor is the key the TEE registry holds, not anything the gateway says about itself.
    der = on_chain_tee_key(stack)
    result: dict[str, Any] = run_python(
        python_env("opengradient"),
        SDK_CLIENT,
        input_json={
            "key": stack.payer_key(0),
            "url": stack.gateway_url,
            "der": der.hex(),
            "modes": ["private", "batch"],
        },
        env={"BASE_MAINNET_RPC": stack.rpc_url, "HOME": str(stack.work)},
        timeout=600,
    )
    return result


def on_chain_tee_key(stack: Stack) -> bytes:
    """The DER public key the TeeRegistry holds for the gateway's TEE (``teePublicKey(teeId)``)."""
    from og_settle._artifacts import abi
    from og_settle.clients._registry import KEY_TYPES

    registry = make_web3(stack.rpc_url).eth.contract(address=stack.deployment.tee_registry, abi=abi("TeeRegistry"))
    key_type, public_key = registry.functions.teePublicKey(stack.tee.tee_id).call()
    assert KEY_TYPES[key_type] == "rsa", key_type
    return bytes(public_key)


def test_ensure_opg_approval_approves_once(sdk_run: dict[str, Any]) -> None:
    approval = sdk_run["approval"]
    assert approval["tx"] and int(approval["after"]) >= 5 * 10**18
    assert approval["second_tx"] is None


def test_every_answer_verifies_with_the_sdks_own_verifier(sdk_run: dict[str, Any], stack: Stack) -> None:
    results = sdk_run["results"]
    assert [(r["mode"], r["call"]) for r in results] == [
        (mode, call) for mode in ("private", "batch") for call in ("chat", "chat-stream", "completion")
    ]
    for result in results:
        assert result["verify"]["ok"], result
        assert result["verify"]["tee_id"] == "0x" + stack.tee.tee_id.hex()
    chat = [r for r in results if r["call"].startswith("chat")]
    assert {r["content"] for r in chat} == {"You said: What is the capital of France?"}
    assert all(r["chunks"] == 8 for r in results if r["call"] == "chat-stream")
    assert {r["content"] for r in results if r["call"] == "completion"} == {"Translate to French: good morning"}


def test_the_tee_key_the_sdk_trusted_is_the_one_registered_on_chain(stack: Stack) -> None:
    from cryptography.hazmat.primitives import serialization

    public_key = on_chain_tee_key(stack)
    published = httpx.get(stack.gateway_url + "/signing-key", timeout=10).json()["public_key"]
    on_chain_pem = serialization.load_der_public_key(public_key).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert on_chain_pem.decode() == published


def test_payments_settled_through_the_canonical_proxies(sdk_run: dict[str, Any], stack: Stack) -> None:
    w3 = make_web3(stack.rpc_url)
    payer = address_of(stack.payer_key(0))
    settled = [line for line in stack.gateway.log_lines() if line.get("payer") == payer and line.get("transaction")]
    assert len(settled) == 6, settled
    for line in settled:
        receipt = w3.eth.get_transaction_receipt(line["transaction"])
        assert receipt["status"] == 1
        # The proxy emits Settled() (no arguments) when it moves the tokens.
        emitters = {log["address"] for log in receipt["logs"]}
        assert emitters & {EXACT_PROXY, UPTO_PROXY}, emitters


def test_batch_leaves_are_in_a_recorded_root_with_proofs_that_verify_on_chain(
    sdk_run: dict[str, Any], stack: Stack
) -> None:
    from og_settle import StandardMerkleTree
    from og_settle.clients import SettlementRegistryClient
    from og_settle.gateway import LocalBlobStore
    from og_settle.relayer import SqliteStore

    ran = stack.run_relayer()
    assert ran.returncode == 0, ran.stderr[-3000:]
    registry = SettlementRegistryClient(make_web3(stack.rpc_url), stack.deployment.settlement_registry)
    store = SqliteStore(stack.queue)
    try:
        batches = [b for b in store.batches() if b.root is not None]
    finally:
        store.close()
    pointers = {event["root"]: event["da_pointer"] for event in registry.batch_recorded_events()}
    blobs = LocalBlobStore(stack.work / "blobs")
    proven = 0
    for batch in batches:
        assert registry.get_batch(batch.root) is not None
        tree = StandardMerkleTree.load(json.loads(blobs.get(LocalBlobStore.blob_id_from_pointer(pointers[batch.root]))))
        for index, leaf in enumerate(tree.values):
            assert registry.verify_inclusion(batch.root, leaf, tree.proof(index))
            proven += 1
    assert proven == 3  # chat, streamed chat and completion in batch mode; private ones queue nothing
