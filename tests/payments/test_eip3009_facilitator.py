"""The facilitator's EIP-3009 path over HTTP: x402 exact payments in USDC with ``transferWithAuthorization``.

Payloads are built as the stock SDK builds them (``payload.authorization`` + ``signature``, requirements ``extra``
``{name, version}`` without ``assetTransferMethod``). Each rejection carries the stock SDK's reason code, at
``/verify`` and at ``/settle``, and moves nothing; balances and ``authorizationState`` are read on chain.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import encode

from og_settle._deploy import Deployment
from og_settle._eip712 import TokenDomain
from og_settle._eip3009 import Eip3009Authorization, Eip3009Payload, sign_eip3009
from og_settle._networks import BASE, BASE_SEPOLIA, Asset
from og_settle._x402 import PaymentRequirements
from og_settle.facilitator import SqliteSettlementStore
from tests.payments.test_facilitator_http import (
    AUTH,
    Client,
    MakeFacilitator,
    make_facilitator,
    serve,
    settle_concurrently,
)
from tests.support.tokens import deal_opg

__all__ = ["make_facilitator", "serve"]  # fixtures shared with test_facilitator_http

PRICE = 750_000
FUNDS = 1_000 * 10**6
Body = Callable[..., dict[str, Any]]


@pytest.fixture
def usdc_asset(chain_id: int) -> Asset:
    return (BASE if chain_id == BASE.chain_id else BASE_SEPOLIA).asset("USDC")


@pytest.fixture
def funded(usdc: Any, payers: list[Any], chain: Any) -> list[Any]:
    for account in payers:
        deal_opg(chain.provider, usdc, account.address, FUNDS)
    return payers


@pytest.fixture
def make_body(usdc_asset: Asset, payee: Any, chain: Any, chain_id: int) -> Body:
    """``make_body(signer_key, **overrides) -> /verify or /settle body``. Overrides: authorization fields, ``asset``,
    ``extra``, ``scheme``, ``amount`` (the requirements'), ``sign_domain`` (what the signature is made over)."""

    def make(key: Any, **overrides: Any) -> dict[str, Any]:
        from eth_account import Account

        fields = {
            "owner": overrides.pop("owner", Account.from_key(key).address),
            "to": overrides.pop("to", payee.address),
            "value": overrides.pop("value", PRICE),
            "valid_after": overrides.pop("valid_after", 0),
            "valid_before": overrides.pop("valid_before", int(chain.pending_timestamp) + 600),
            "nonce": overrides.pop("nonce", secrets.token_bytes(32)),
        }
        auth = Eip3009Authorization(**fields)
        assert usdc_asset.eip712_name is not None and usdc_asset.eip712_version is not None
        domain = TokenDomain(usdc_asset.eip712_name, usdc_asset.eip712_version, chain_id, usdc_asset.address)
        signature = overrides.pop("signature", None) or sign_eip3009(auth, key, overrides.pop("sign_domain", domain))
        requirements = PaymentRequirements(
            scheme=overrides.pop("scheme", "exact"),
            network=f"eip155:{chain_id}",
            amount=overrides.pop("amount", PRICE),
            asset=overrides.pop("asset", usdc_asset.address),
            pay_to=payee.address,
            max_timeout_seconds=600,
            extra=overrides.pop("extra", usdc_asset.extra("eip3009")),
        )
        assert not overrides, overrides
        payload = {"x402Version": 2, "accepted": requirements.to_json(), "payload": {}}
        payload["payload"] = Eip3009Payload(signature, auth).to_json()
        return {"x402Version": 2, "paymentPayload": payload, "paymentRequirements": requirements.to_json()}

    return make


def _nonce(body: dict[str, Any]) -> bytes:
    return bytes.fromhex(body["paymentPayload"]["payload"]["authorization"]["nonce"][2:])


def test_usdc_verifies_settles_once_and_a_retry_after_a_restart_answers_the_first_transaction(
    serve: Client, make_body: Body, funded: list[Any], payee: Any, usdc: Any, chain: Any, tmp_path: Path
) -> None:
    payer = funded[0]
    body = make_body(payer.private_key)
    before = (usdc.balanceOf(payer), usdc.balanceOf(payee))
    client = serve()
    verified = client.post("/verify", json=body).json()
    assert verified["isValid"] is True and verified["payer"] == payer.address, verified
    first = client.post("/settle", json=body, headers=AUTH).json()
    assert first["success"] is True, first
    assert int(chain.provider.web3.eth.get_transaction_receipt(first["transaction"])["status"]) == 1
    # A new server on the same store (a restart) answers the same transaction and sends nothing.
    again = serve(store=SqliteSettlementStore(tmp_path / "settlements.sqlite3"))
    retry = again.post("/settle", json=body, headers=AUTH).json()
    assert retry["success"] is True and retry["transaction"] == first["transaction"], retry
    assert usdc.authorizationState(payer, _nonce(body))
    assert (usdc.balanceOf(payer), usdc.balanceOf(payee)) == (before[0] - PRICE, before[1] + PRICE)
    verify_again = client.post("/verify", json=body).json()
    assert verify_again["invalidReason"] == "invalid_exact_evm_nonce_already_used"


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("recipient", "invalid_exact_evm_payload_recipient_mismatch"),
        ("value", "invalid_exact_evm_payload_authorization_value_mismatch"),
        ("expired", "invalid_exact_evm_payload_authorization_valid_before"),
        ("not-yet-valid", "invalid_exact_evm_payload_authorization_valid_after"),
        ("wrong-signer", "invalid_exact_evm_payload_signature"),
        ("other-chain", "invalid_exact_evm_payload_signature"),
        ("high-s", "invalid_exact_evm_payload_signature"),
        ("token-name", "invalid_exact_evm_token_name_mismatch"),
        ("no-domain", "missing_eip712_domain"),
        ("not-eip3009-asset", "invalid_exact_evm_eip3009_not_supported"),
        ("upto", "unsupported_scheme"),
        ("poor", "invalid_exact_evm_insufficient_balance"),
        ("erc6492-undeployed", "eip6492_factory_not_allowed"),
    ],
)
def test_each_bad_payment_gets_the_stock_reason_code_and_moves_nothing(
    case: str,
    reason: str,
    serve: Client,
    make_body: Body,
    funded: list[Any],
    stranger: Any,
    payee: Any,
    usdc: Any,
    opg: Any,
    usdc_asset: Asset,
    chain: Any,
    chain_id: int,
) -> None:
    payer = funded[0]
    key = payer.private_key
    now = int(chain.pending_timestamp)
    assert usdc_asset.eip712_name is not None
    domain = TokenDomain(usdc_asset.eip712_name, "2", chain_id, usdc.address)
    bodies: dict[str, Callable[[], dict[str, Any]]] = {
        "recipient": lambda: make_body(key, to=stranger.address),
        "value": lambda: make_body(key, value=PRICE + 1),
        "expired": lambda: make_body(key, valid_before=now + 2),
        "not-yet-valid": lambda: make_body(key, valid_after=now + 100),
        "wrong-signer": lambda: make_body(stranger.private_key, owner=payer.address),
        "other-chain": lambda: make_body(key, sign_domain=TokenDomain(domain.name, "2", chain_id + 1, usdc.address)),
        "high-s": lambda: _high_s(make_body(key)),
        "token-name": lambda: make_body(key, extra={"name": "Not USDC", "version": "2"}),
        "no-domain": lambda: make_body(key, extra={}),
        "not-eip3009-asset": lambda: make_body(key, asset=opg.address),
        "upto": lambda: make_body(key, scheme="upto"),
        "poor": lambda: make_body(funded[1].private_key),
        "erc6492-undeployed": lambda: make_body(key, owner=stranger.address, signature=_erc6492(stranger.address)),
    }
    if case == "poor":
        deal_opg(chain.provider, usdc, funded[1].address, PRICE - 1)
    body = bodies[case]()
    client = serve()
    before = usdc.balanceOf(payee)
    verified = client.post("/verify", json=body).json()
    assert verified["isValid"] is False and verified["invalidReason"] == reason, verified
    assert verified["invalidMessage"]
    settled = client.post("/settle", json=body, headers=AUTH).json()
    assert settled["success"] is False and settled["errorReason"] == reason, settled
    assert settled["transaction"] == ""
    assert usdc.balanceOf(payee) == before


def _high_s(body: dict[str, Any]) -> dict[str, Any]:
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    signature = bytes.fromhex(body["paymentPayload"]["payload"]["signature"][2:])
    s = int.from_bytes(signature[32:64], "big")
    flipped = signature[:32] + (n - s).to_bytes(32, "big") + bytes([55 - signature[64]])
    body["paymentPayload"]["payload"]["signature"] = "0x" + flipped.hex()
    return body


def _erc6492(factory: str) -> bytes:
    wrapped = encode(["address", "bytes", "bytes"], [factory, b"\x01\x02", b"\x11" * 65])
    return wrapped + bytes.fromhex("6492" * 16)


def test_an_authorisation_someone_else_submitted_first_answers_the_transaction_that_paid(
    serve: Client, make_body: Body, funded: list[Any], stranger: Any, payee: Any, usdc: Any
) -> None:
    """Front-running: the signed authorisation leaks and someone submits it first. The payee was paid by that
    transaction; /settle finds it (AuthorizationUsed + the matching Transfer) and answers it, sending nothing."""
    payer = funded[0]
    body = make_body(payer.private_key)
    auth = body["paymentPayload"]["payload"]["authorization"]
    signature = bytes.fromhex(body["paymentPayload"]["payload"]["signature"][2:])
    before = usdc.balanceOf(payee)
    front = usdc.transferWithAuthorization(
        auth["from"],
        auth["to"],
        int(auth["value"]),
        int(auth["validAfter"]),
        int(auth["validBefore"]),
        _nonce(body),
        signature,
        sender=stranger,
    )
    settled = serve().post("/settle", json=body, headers=AUTH).json()
    assert settled["success"] is True and settled["transaction"] == front.txn_hash, settled
    assert usdc.balanceOf(payee) == before + PRICE  # once


def test_a_used_nonce_with_another_value_is_not_passed_off_as_paid(
    serve: Client, make_body: Body, funded: list[Any], stranger: Any, usdc: Any, usdc_asset: Any, chain_id: int
) -> None:
    """The lookup matches the whole payment: a nonce the payer spent on another transfer does not count."""
    payer = funded[0]
    nonce = secrets.token_bytes(32)
    spent = make_body(payer.private_key, nonce=nonce, value=PRICE // 2, amount=PRICE // 2)
    auth = spent["paymentPayload"]["payload"]["authorization"]
    signature = bytes.fromhex(spent["paymentPayload"]["payload"]["signature"][2:])
    usdc.transferWithAuthorization(
        auth["from"], auth["to"], PRICE // 2, 0, int(auth["validBefore"]), nonce, signature, sender=stranger
    )
    body = make_body(payer.private_key, nonce=nonce)
    settled = serve().post("/settle", json=body, headers=AUTH).json()
    assert settled["success"] is False and settled["errorReason"] == "invalid_exact_evm_nonce_already_used", settled


def test_a_contract_wallet_pays_through_erc1271(
    serve: Client,
    make_body: Body,
    project: Any,
    deployer: Any,
    payers: list[Any],
    payee: Any,
    stranger: Any,
    usdc: Any,
    chain: Any,
) -> None:
    wallet = project.OwnedWallet.deploy(payers[2].address, sender=deployer)
    deal_opg(chain.provider, usdc, wallet.address, FUNDS)
    client = serve()
    refused = client.post("/verify", json=make_body(stranger.private_key, owner=wallet.address)).json()
    assert refused["invalidReason"] == "invalid_exact_evm_payload_signature", refused
    body = make_body(payers[2].private_key, owner=wallet.address)  # the owner's key signs for the wallet
    assert client.post("/verify", json=body).json()["isValid"] is True
    before = usdc.balanceOf(payee)
    settled = client.post("/settle", json=body, headers=AUTH).json()
    assert settled["success"] is True, settled
    assert usdc.balanceOf(payee) == before + PRICE and usdc.balanceOf(wallet) == FUNDS - PRICE


def test_an_operator_asset_without_code_or_without_eip3009_is_refused(
    make_facilitator: MakeFacilitator, make_body: Body, funded: list[Any], opg: Any, stranger: Any, usdc: Any
) -> None:
    ghost = Asset("GHOST", stranger.address, 6, "USDC", "2", ("eip3009",))  # an address without code
    fake = Asset("FAKE", opg.address, 18, "USDC", "2", ("eip3009",))  # a token without authorizationState
    facilitator = make_facilitator(assets=[ghost, fake])
    try:
        key = funded[0].private_key
        extra = {"name": "USDC", "version": "2"}
        no_code = facilitator.verify(make_body(key, asset=stranger.address, extra=extra))
        assert no_code.invalid_reason == "asset_not_deployed_contract", no_code
        no_3009 = facilitator.verify(make_body(key, asset=opg.address, extra=extra))
        assert no_3009.invalid_reason == "invalid_exact_evm_eip3009_not_supported", no_3009
        unlisted = facilitator.verify(make_body(key))  # USDC is not among this facilitator's assets
        assert unlisted.invalid_reason == "invalid_exact_evm_eip3009_not_supported", unlisted
        supported = facilitator.supported()["kinds"][0]["extra"]["assets"]
        assert [a["symbol"] for a in supported] == ["GHOST", "FAKE"]
    finally:
        facilitator.close()


def test_settle_without_the_bearer_key_moves_nothing(
    serve: Client, make_body: Body, funded: list[Any], payee: Any, usdc: Any
) -> None:
    body = make_body(funded[0].private_key)
    before = usdc.balanceOf(payee)
    answer = serve().post("/settle", json=body, headers={"Authorization": "Bearer not-a-key-0123456789"})
    assert answer.status_code == 401
    assert usdc.balanceOf(payee) == before and not usdc.authorizationState(funded[0], _nonce(body))


def test_a_batch_settles_in_one_transaction_and_a_front_run_item_answers_the_front_runners(
    serve: Client,
    make_body: Body,
    deployment: Deployment,
    funded: list[Any],
    stranger: Any,
    payee: Any,
    usdc: Any,
    chain: Any,
) -> None:
    """Concurrent /settle calls gather into one Eip3009Batcher transaction; one authorisation is submitted by
    someone else while the batch waits. Every caller is answered success: the batch's transaction, or for the
    front-run one the transaction that paid it. The payee receives each payment exactly once."""
    import threading

    bodies = [make_body(p.private_key) for p in funded[:3]]
    client = serve(batch_window=2.0, eip3009_batcher=deployment.eip3009_batcher)
    before = usdc.balanceOf(payee)
    front: list[str] = []

    def front_run() -> None:
        auth = bodies[1]["paymentPayload"]["payload"]["authorization"]
        signature = bytes.fromhex(bodies[1]["paymentPayload"]["payload"]["signature"][2:])
        args = [auth["from"], auth["to"], int(auth["value"]), 0, int(auth["validBefore"]), _nonce(bodies[1])]
        front.append(usdc.transferWithAuthorization(*args, signature, sender=stranger).txn_hash)

    timer = threading.Timer(0.5, front_run)
    timer.start()
    answers = settle_concurrently(client, bodies)
    timer.join()
    assert all(a["success"] is True for a in answers), answers
    assert answers[1]["transaction"] == front[0]
    assert answers[0]["transaction"] == answers[2]["transaction"] != front[0]
    receipt = chain.provider.web3.eth.get_transaction_receipt(answers[0]["transaction"])
    assert receipt["to"] == deployment.eip3009_batcher
    assert usdc.balanceOf(payee) == before + 3 * PRICE


def test_a_batched_payment_that_fails_on_chain_says_why_in_eip3009_terms(
    serve: Client, make_body: Body, deployment: Deployment, funded: list[Any], payee: Any, usdc: Any, chain: Any
) -> None:
    """A payer empties its balance after /settle verified the payment and while the batch waits: its item fails
    alone in the batch, and its caller gets ``invalid_exact_evm_insufficient_balance`` (re-checked after the
    receipt showed no transfer), not a generic code; the others settle."""
    import threading

    bodies = [make_body(p.private_key) for p in funded[:3]]
    client = serve(batch_window=3.0, eip3009_batcher=deployment.eip3009_batcher)
    before = usdc.balanceOf(payee)
    timer = threading.Timer(1.5, lambda: deal_opg(chain.provider, usdc, funded[1].address, 0))
    timer.start()
    answers = settle_concurrently(client, bodies)
    timer.join()
    assert [a["success"] for a in answers] == [True, False, True], answers
    assert answers[1]["errorReason"] == "invalid_exact_evm_insufficient_balance", answers[1]
    assert answers[1]["transaction"] == answers[0]["transaction"]  # it failed inside the batch, not at verify
    assert usdc.balanceOf(payee) == before + 2 * PRICE and usdc.balanceOf(funded[1]) == 0


def test_a_deployed_wallet_may_send_an_erc6492_wrapped_signature(
    serve: Client, make_body: Body, project: Any, deployer: Any, payers: list[Any], payee: Any, usdc: Any, chain: Any
) -> None:
    """ERC-6492: a wallet that signed before it existed wraps its signature with its factory call; once deployed,
    the inner signature is what counts. Verified by the wallet's ERC-1271, settled with the inner signature."""
    from eth_account import Account

    wallet = project.OwnedWallet.deploy(payers[3].address, sender=deployer)
    deal_opg(chain.provider, usdc, wallet.address, FUNDS)
    plain = make_body(payers[3].private_key, owner=wallet.address)
    inner = bytes.fromhex(plain["paymentPayload"]["payload"]["signature"][2:])
    wrapped = encode(["address", "bytes", "bytes"], [Account.create().address, b"\x01\x02", inner])
    plain["paymentPayload"]["payload"]["signature"] = "0x" + (wrapped + bytes.fromhex("6492" * 16)).hex()
    client = serve()
    assert client.post("/verify", json=plain).json()["isValid"] is True
    before = usdc.balanceOf(payee)
    settled = client.post("/settle", json=plain, headers=AUTH).json()
    assert settled["success"] is True, settled
    assert usdc.balanceOf(payee) == before + PRICE and usdc.balanceOf(wallet) == FUNDS - PRICE
