"""The gateway over real HTTP, in front of a real facilitator on a fresh Base Sepolia replica.

Payments are signed exactly as the stock x402 SDK signs them (``tests/support/stock.py``: the canonical proxy as
spender), so what settles here is what a stock client would pay. Every refusal is checked for its status and
reason *and* for its cost: the payer's OPG balance and Permit2 nonce must not move.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from og_settle._hashing import output_hash, tee_message_hash
from og_settle._hex import keccak256
from og_settle._networks import network
from og_settle._permit2 import nonce_position
from og_settle._x402 import decode_payment_required_header, decode_payment_response_header
from og_settle._x402_verify import Web3ChainReader
from og_settle.clients import make_web3
from og_settle.gateway import LocalBlobStore, parse_inference_request
from og_settle.gateway._tee import canonical_request
from tests.gateway.stack import Stack, address_of, running_stack, settles_stock_payloads
from tests.support.stock import stock_payment

MODEL = "stand-in-echo"
EXACT_PRICE = 10**15
PER_TOKEN = 10**13


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("gateway"),
        "base-sepolia",
        gateway_args=["--stand-in-delay", "0.02"],
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=60) as client:
        yield client


def _supports_canonical(stack: Stack) -> None:
    if not settles_stock_payloads(stack):
        pytest.skip("the facilitator on main does not settle canonical-proxy (stock) payloads yet (issue 9 items 1-3)")


def chat(content: str, max_tokens: int = 50, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens, **extra}


def required(client: httpx.Client, body: dict[str, Any], path: str = "/v1/chat/completions") -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == 402, response.text
    return {r.scheme: r for r in decode_payment_required_header(response.headers["PAYMENT-REQUIRED"]).accepts}


def pay(stack: Stack, requirement: Any, payer: int = 1, **overrides: Any) -> str:
    """A ``PAYMENT-SIGNATURE`` header value, signed as the stock SDK signs."""
    w3 = make_web3(stack.rpc_url)
    now = int(w3.eth.get_block("latest")["timestamp"])
    payment = stock_payment(
        stack.payer_key(payer),
        chain_id=requirement.chain_id,
        token=requirement.asset,
        amount=overrides.pop("amount", requirement.amount),
        to=requirement.pay_to,
        now=now,
        scheme=requirement.scheme,
        facilitator=requirement.extra.get("facilitatorAddress"),
        **overrides,
    )
    body = {"x402Version": 2, "accepted": requirement.to_json(), "payload": payment.payload()}
    return base64.b64encode(json.dumps(body).encode()).decode()


def payment_nonce(header: str) -> tuple[str, int]:
    auth = json.loads(base64.b64decode(header))["payload"]["permit2Authorization"]
    return auth["from"], int(auth["nonce"])


class Ledger:
    """Balances and one nonce, before and after: what a request cost."""

    def __init__(self, stack: Stack, header: str) -> None:
        self.reader = Web3ChainReader(make_web3(stack.rpc_url))
        self.opg = network(stack.network).opg
        self.payer, self.nonce = payment_nonce(header)
        self.pay_to = stack.pay_to
        self.before = self._balances()

    def _balances(self) -> tuple[int, int]:
        return self.reader.balance_of(self.opg, self.payer), self.reader.balance_of(self.opg, self.pay_to)

    def nonce_used(self) -> bool:
        word, bit = nonce_position(self.nonce)
        return bool((self.reader.nonce_bitmap(self.payer, word) >> bit) & 1)

    def charged(self) -> int:
        payer_now, pay_to_now = self._balances()
        assert self.before[0] - payer_now == pay_to_now - self.before[1], "OPG is not conserved"
        return self.before[0] - payer_now


def test_without_payment_the_answer_is_402_with_exact_and_upto(stack: Stack, client: httpx.Client) -> None:
    response = client.post("/v1/chat/completions", json=chat("hello", max_tokens=40))
    assert response.status_code == 402
    header = decode_payment_required_header(response.headers["PAYMENT-REQUIRED"])
    assert response.json() == header.to_json()
    upto, exact = header.accepts
    assert (upto.scheme, exact.scheme) == ("upto", "exact")
    for option in (upto, exact):
        assert option.network == "eip155:84532"
        assert option.asset == "0x240b09731D96979f50B2C649C9CE10FcF9C7987F"  # OPG on Base Sepolia
        assert option.pay_to == stack.pay_to
        assert option.extra["assetTransferMethod"] == "permit2"
    assert exact.amount == EXACT_PRICE
    assert upto.amount == 40 * PER_TOKEN  # metered: the most max_tokens=40 can cost
    assert exact.extra["spender"] == "0x402085c248EeA27D92E8b30b2C58ed07f9E20001"
    assert upto.extra["spender"] == "0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002"
    supported = httpx.get(stack.facilitator_url + "/supported").json()
    announced = next(k for k in supported["kinds"] if k["scheme"] == "upto")["extra"]
    assert upto.extra["facilitatorAddress"] == (announced.get("facilitatorAddress") or announced.get("facilitator"))


@pytest.mark.parametrize(
    ("raw", "headers", "status", "code"),
    [
        (b'{"model": "stand-in-echo", "messages": [', {}, 400, "invalid_json"),
        (json.dumps({"model": MODEL, "messages": "hi"}).encode(), {}, 400, "invalid_request"),
        (json.dumps(chat("hi") | {"model": "gpt-9"}).encode(), {}, 404, "model_not_found"),
        (json.dumps(chat("hi")).encode(), {"X-SETTLEMENT-TYPE": "settle_everything"}, 400, "invalid_settlement_type"),
        (json.dumps(chat("x" * 2_000_000)).encode(), {}, 413, "body_too_large"),
    ],
    ids=["malformed-json", "malformed-request", "unknown-model", "unknown-settlement-type", "oversized-body"],
)
def test_bad_input_gets_a_clear_error_and_costs_nothing(
    stack: Stack, client: httpx.Client, raw: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    """Each bad request carries a valid payment: it is refused before the payment is looked at."""
    header = pay(stack, required(client, chat("hi"))["exact"])
    ledger = Ledger(stack, header)
    response = client.post(
        "/v1/chat/completions",
        content=raw,
        headers={"Content-Type": "application/json", "PAYMENT-SIGNATURE": header, **headers},
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert "Traceback" not in response.text
    assert ledger.charged() == 0 and not ledger.nonce_used()


def test_payment_for_too_little_is_refused_and_costs_nothing(stack: Stack, client: httpx.Client) -> None:
    exact = required(client, chat("cheap"))["exact"]
    header = pay(stack, exact, amount=exact.amount - 1)
    ledger = Ledger(stack, header)
    response = client.post("/v1/chat/completions", json=chat("cheap"), headers={"PAYMENT-SIGNATURE": header})
    assert response.status_code == 402
    refused = decode_payment_required_header(response.headers["PAYMENT-REQUIRED"])
    assert refused.error is not None and refused.error.startswith("permit2_amount_mismatch")
    assert ledger.charged() == 0 and not ledger.nonce_used()


def test_private_exact_pays_once_and_a_replay_is_refused(stack: Stack, client: httpx.Client) -> None:
    _supports_canonical(stack)
    body = chat("what is two plus two")
    header = pay(stack, required(client, body)["exact"])
    ledger = Ledger(stack, header)
    response = client.post(
        "/v1/chat/completions", json=body, headers={"PAYMENT-SIGNATURE": header, "X-SETTLEMENT-TYPE": "private"}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["choices"][0]["message"]["content"] == "You said: what is two plus two"
    settled = decode_payment_response_header(response.headers["PAYMENT-RESPONSE"])
    assert settled.success and settled.transaction
    receipt = make_web3(stack.rpc_url).eth.get_transaction_receipt(settled.transaction)
    assert receipt["status"] == 1
    assert ledger.charged() == EXACT_PRICE and ledger.nonce_used()
    # The TEE fields are OpenGradient's: hashes of the canonical request and of the text, signed together.
    request = parse_inference_request("chat", body)
    assert (
        answer["tee_request_hash"] == keccak256(json.dumps(canonical_request(request), sort_keys=True).encode()).hex()
    )
    assert answer["tee_output_hash"] == output_hash(answer["choices"][0]["message"]["content"]).hex()
    assert answer["tee_id"] == "0x" + stack.tee.tee_id.hex()
    message = tee_message_hash(
        "0x" + answer["tee_request_hash"], "0x" + answer["tee_output_hash"], answer["tee_timestamp"]
    )
    public_key = serialization.load_pem_public_key(stack.tee.public_key_pem.encode())
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    public_key.verify(base64.b64decode(answer["tee_signature"]), message, pss, hashes.SHA256())  # type: ignore[union-attr]
    assert "x-settlement-walrus-blob-id" not in response.headers  # private: nothing about the inference is kept

    replay = client.post(
        "/v1/chat/completions", json=body, headers={"PAYMENT-SIGNATURE": header, "X-SETTLEMENT-TYPE": "private"}
    )
    assert replay.status_code == 402
    assert decode_payment_required_header(replay.headers["PAYMENT-REQUIRED"]).error.startswith("permit2_invalid_nonce")
    assert ledger.charged() == EXACT_PRICE  # still only once


def test_upto_charges_the_metered_output(stack: Stack, client: httpx.Client) -> None:
    _supports_canonical(stack)
    body = chat("one two three four", max_tokens=100)
    upto = required(client, body)["upto"]
    header = pay(stack, upto, payer=2)
    ledger = Ledger(stack, header)
    response = client.post(
        "/v1/chat/completions", json=body, headers={"PAYMENT-SIGNATURE": header, "X-SETTLEMENT-TYPE": "private"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] == 6  # "You said: one two three four"
    assert ledger.charged() == 6 * PER_TOKEN < upto.amount


def test_a_client_that_leaves_mid_stream_pays_for_what_it_was_sent(stack: Stack, client: httpx.Client) -> None:
    """upto: the pieces sent before the disconnect; no TEE signature exists, so nothing is queued."""
    _supports_canonical(stack)
    words = " ".join(f"w{i}" for i in range(300))
    body = chat(words, max_tokens=400, stream=True)
    header = pay(stack, required(client, body)["upto"], payer=3)
    ledger = Ledger(stack, header)
    received = 0
    with client.stream(
        "POST", "/v1/chat/completions", json=body, headers={"PAYMENT-SIGNATURE": header, "X-SETTLEMENT-TYPE": "batch"}
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                received += 1
                if received == 5:
                    break
    stream_log = _wait_for_log(stack, "http.stream", address_of(stack.payer_key(3)))
    assert stream_log["disconnected"] is True
    pieces = stream_log["charged_pieces"]
    assert 5 <= pieces < 302
    assert ledger.charged() == pieces * PER_TOKEN


def _wait_for_log(stack: Stack, event: str, payer: str, timeout: float = 30.0) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in stack.gateway.log_lines():
            if line.get("event") == event and line.get("payer") == payer:
                return line
        time.sleep(0.2)
    raise AssertionError(f"no {event} log line for {payer}:\n{stack.gateway.log.read_text()[-2000:]}")


def test_batch_leaf_lands_in_a_recorded_root(stack: Stack, client: httpx.Client, tmp_path: Path) -> None:
    """The relayer records the root; the stored dump's proof of our leaf verifies on chain."""
    _supports_canonical(stack)
    from og_settle import StandardMerkleTree
    from og_settle.clients import SettlementRegistryClient
    from og_settle.relayer import SqliteStore

    body = chat("remember this answer")
    header = pay(stack, required(client, body)["exact"], payer=4)
    response = client.post(
        "/v1/chat/completions", json=body, headers={"PAYMENT-SIGNATURE": header, "X-SETTLEMENT-TYPE": "batch"}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    ran = stack.run_relayer()
    assert ran.returncode == 0, ran.stderr[-3000:]
    store = SqliteStore(stack.queue)
    try:
        batches = [b for b in store.batches() if b.root is not None]
    finally:
        store.close()
    registry = SettlementRegistryClient(make_web3(stack.rpc_url), stack.deployment.settlement_registry)
    pointers = {event["root"]: event["da_pointer"] for event in registry.batch_recorded_events()}
    blobs = LocalBlobStore(stack.work / "blobs")
    for batch in batches:
        # The dump is a blob in the DA store, and the pointer on chain names it.
        blob_id = LocalBlobStore.blob_id_from_pointer(pointers[batch.root])
        tree = StandardMerkleTree.load(json.loads(blobs.get(blob_id)))
        assert tree.root == batch.root
        for index, leaf in enumerate(tree.values):
            if bytes(leaf[1]).hex() == answer["tee_request_hash"] and bytes(leaf[2]).hex() == answer["tee_output_hash"]:
                assert registry.get_batch(batch.root) is not None
                assert registry.verify_inclusion(batch.root, leaf, tree.proof(index))
                assert base64.b64encode(bytes(leaf[3])).decode() == answer["tee_signature"]
                # One call: the leaf is in the root and its RSA signature verifies against the registered key.
                batch_id, _ = registry.verify_inference_signature(batch.root, leaf, tree.proof(index))
                assert batch_id == registry.get_batch(batch.root).batch_id  # type: ignore[union-attr]
                return
    raise AssertionError("the inference's leaf is in no recorded batch")


def test_batch_dumps_go_to_the_da_store_and_their_pointer_on_chain(stack: Stack) -> None:
    """Without a payment in the way: the gateway's queue sink takes a TEE-signed leaf, the relayer (``--blobs``)
    stores the dump as a content-addressed blob, and the root's on-chain pointer names that blob."""
    import asyncio

    from og_settle import StandardMerkleTree
    from og_settle._hashing import SettlementMode
    from og_settle.clients import SettlementRegistryClient
    from og_settle.gateway import RelayerQueueSink, StandInEchoModel
    from og_settle.gateway._core import Gateway, GatewayConfig

    request = parse_inference_request("chat", chat("a leaf for the store"))
    output = asyncio.run(StandInEchoModel().generate(request))
    attestation = stack.tee.attest(request, output)
    sink = RelayerQueueSink(stack.queue, stack.deployment, tee_keys=[stack.tee.key.public])
    gateway = Gateway(GatewayConfig(network(stack.network), stack.pay_to, {}), stack.tee, None, None, sink=sink)  # type: ignore[arg-type]
    record = gateway.inference_record(SettlementMode.BATCH, request, output, attestation, stack.pay_to)
    try:
        receipt = asyncio.run(sink.submit(record or {}))
    finally:
        sink.close()
    assert not receipt.duplicate and receipt.key
    ran = stack.run_relayer()
    assert ran.returncode == 0, ran.stderr[-3000:]
    registry = SettlementRegistryClient(make_web3(stack.rpc_url), stack.deployment.settlement_registry)
    blobs = LocalBlobStore(stack.work / "blobs")
    for event in registry.batch_recorded_events():
        tree = StandardMerkleTree.load(json.loads(blobs.get(LocalBlobStore.blob_id_from_pointer(event["da_pointer"]))))
        assert tree.root == event["root"]
        for index, leaf in enumerate(tree.values):
            if bytes(leaf[1]) == attestation.request_hash:
                assert bytes(leaf[3]) == attestation.signature  # the RSA signature bytes, as OpenGradient's leaves
                assert registry.verify_inclusion(event["root"], leaf, tree.proof(index))
                return
    raise AssertionError("the leaf is in no recorded batch")


def test_zz_facilitator_down_is_503_and_costs_nothing(stack: Stack, client: httpx.Client) -> None:
    """Last in this module: it stops the module's facilitator. The gateway answers 503 and charges nothing."""
    body = chat("is anyone there")
    header = pay(stack, required(client, body)["exact"], payer=5)
    ledger = Ledger(stack, header)
    assert stack.facilitator.stop() == 0
    response = client.post("/v1/chat/completions", json=body, headers={"PAYMENT-SIGNATURE": header})
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "facilitator_unavailable" and error["message"].endswith("nothing was charged")
    assert ledger.charged() == 0 and not ledger.nonce_used()
