"""Gasless Permit2 approval (x402's ``eip2612GasSponsoring``): a first-time payer of an EIP-2612 token pays with
no approval transaction, on every route of the facilitator, and hostile permits are refused or tolerated.

The payers here are fresh keys that hold the token and nothing else: no ETH, no Permit2 allowance, no
transaction ever sent (their account nonce stays 0). The token is ``PermitToken``, OpenZeppelin's ERC20Permit;
Permit2, the x402 proxies (the replica's stand-ins at the canonical addresses), StockPaymentBatcher and
PaymentFacilitator are the deployed ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ape
import pytest
from eth_account import Account

from og_settle import PERMIT2_ADDRESS, X402_EXACT_PERMIT2_PROXY
from og_settle._deploy import Deployment
from og_settle._eip712 import TokenDomain
from og_settle._eip2612 import EIP2612_GAS_SPONSORING, Eip2612Permit, sign_permit
from og_settle._x402 import PaymentPayload, PaymentRequirements, create_payment_payload
from og_settle.clients import make_web3
from og_settle.facilitator import Facilitator, SqliteSettlementStore

ONE = 10**18


@pytest.fixture(scope="module")
def token(project: Any, deployer: Any) -> Any:
    return project.PermitToken.deploy(sender=deployer)


@pytest.fixture
def fresh(token: Any, deployer: Any) -> Callable[[], Any]:
    """``fresh()``: a new key holding 10 tokens and nothing else (no ETH, no allowance)."""

    def make() -> Any:
        account = Account.create()
        token.mint(account.address, 10 * ONE, sender=deployer)
        return account

    return make


@pytest.fixture
def make_facilitator(deployment: Deployment, rpc_url: str, relayer: Any, tmp_path: Path) -> Callable[..., Facilitator]:
    made: list[Facilitator] = []

    def make(*, stock: bool = True, **options: Any) -> Facilitator:
        from og_settle.facilitator._stock import stock_route

        w3 = make_web3(rpc_url)
        if stock:
            options["stock"] = stock_route(w3, deployment.stock_payment_batcher, deployment.chain_id)
        store = SqliteSettlementStore(tmp_path / f"settlements-{len(made)}.sqlite3")
        facilitator = Facilitator(deployment, w3, Account.from_key(relayer.private_key), store=store, **options)
        facilitator.check_node()
        facilitator.start()
        made.append(facilitator)
        return facilitator

    yield make
    for facilitator in made:
        facilitator.close()


def requirements(token: Any, payee: Any, chain_id: int, scheme: str = "exact", **extra: Any) -> PaymentRequirements:
    return PaymentRequirements(
        scheme=scheme,
        network=f"eip155:{chain_id}",
        amount=2 * ONE,
        asset=token.address,
        pay_to=payee.address,
        max_timeout_seconds=600,
        extra={"assetTransferMethod": "permit2", "name": "Permit Token", "version": "1", **extra},
    )


def permit_for(
    token: Any, chain_id: int, account: Any, value: int, deadline: int, *, nonce: int | None = None, **kw: Any
) -> Eip2612Permit:
    separator = TokenDomain("Permit Token", "1", chain_id, token.address).separator()
    current = int(token.nonces(account.address)) if nonce is None else nonce
    return sign_permit(account.key, token=token.address, domain_separator=separator, nonce=current, value=value,
                       deadline=deadline, **kw)  # fmt: skip


def body(payload: PaymentPayload, reqs: PaymentRequirements, permit: Eip2612Permit | None) -> dict[str, Any]:
    if permit is not None:
        payload = dataclasses.replace(payload, extensions=permit.extension())
    return {"x402Version": 2, "paymentPayload": payload.to_json(), "paymentRequirements": reqs.to_json()}


def untouched(chain: Any, account: Any) -> bool:
    """The payer never sent a transaction and holds no ETH."""
    w3 = chain.provider.web3
    return int(w3.eth.get_transaction_count(account.address)) == 0 and int(w3.eth.get_balance(account.address)) == 0


def test_the_token_domain_is_what_the_client_computes(token: Any, chain_id: int) -> None:
    assert bytes(token.DOMAIN_SEPARATOR()) == TokenDomain("Permit Token", "1", chain_id, token.address).separator()


def test_supported_advertises_the_extension(make_facilitator: Callable[..., Facilitator]) -> None:
    assert make_facilitator().supported()["extensions"] == [EIP2612_GAS_SPONSORING]


@pytest.mark.parametrize(
    ("scheme", "stock"),
    [("exact", True), ("upto", True), ("exact", False), ("upto", False)],
    ids=["exact-batcher", "upto-batcher", "exact-proxy", "upto-proxy"],
)
def test_a_first_time_stock_payer_pays_without_an_approval_transaction(
    make_facilitator: Callable[..., Facilitator],
    fresh: Callable[[], Any],
    token: Any,
    payee: Any,
    relayer: Any,
    deployment: Deployment,
    chain: Any,
    chain_id: int,
    now: int,
    scheme: str,
    stock: bool,
) -> None:
    """Without the permit the payer is refused (no allowance); with it, verify passes and one settlement
    transaction (x402 proxy ``settleWithPermit``, or the batcher's ``settleWithPermits``) approves and pays."""
    facilitator = make_facilitator(stock=stock)
    payer = fresh()
    settler = (deployment.stock_payment_batcher if stock else relayer.address) if scheme == "upto" else None
    reqs = requirements(token, payee, chain_id, scheme, **({"facilitatorAddress": settler} if settler else {}))
    payload = create_payment_payload(reqs, payer.key, now=now)
    assert token.allowance(payer.address, PERMIT2_ADDRESS) == 0

    refused = facilitator.verify(body(payload, reqs, None))
    assert (refused.is_valid, refused.invalid_reason) == (False, "permit2_allowance_required")

    permit = permit_for(token, chain_id, payer, 2 * ONE, payload.payload.authorization.deadline)
    verified = facilitator.verify(body(payload, reqs, permit))
    assert verified.is_valid, verified

    charge = ONE if scheme == "upto" else 2 * ONE
    at_settle = dataclasses.replace(reqs, amount=charge)
    payee_before = token.balanceOf(payee)
    answer = facilitator.settle(body(payload, at_settle, permit))
    assert answer.success, answer
    tx = chain.provider.web3.eth.get_transaction(answer.transaction)
    expected_to = deployment.stock_payment_batcher if stock else (
        X402_EXACT_PERMIT2_PROXY if scheme == "exact" else "0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002"
    )  # fmt: skip
    assert tx["to"] == expected_to and tx["from"] == relayer.address
    assert token.balanceOf(payee) - payee_before == charge
    assert token.balanceOf(payer.address) == 10 * ONE - charge
    assert token.nonces(payer.address) == 1  # the permit was spent in that transaction
    assert untouched(chain, payer)

    # The same payload again answers the first transaction and moves nothing.
    again = facilitator.settle(body(payload, at_settle, permit))
    assert again.success and again.transaction == answer.transaction
    assert token.balanceOf(payee) - payee_before == charge


def test_payment_facilitator_single_and_batched_with_permits(
    make_facilitator: Callable[..., Facilitator],
    fresh: Callable[[], Any],
    token: Any,
    payee: Any,
    deployment: Deployment,
    chain: Any,
    chain_id: int,
    now: int,
) -> None:
    """Payloads whose spender is og-settle's PaymentFacilitator: ``settleWithPermit`` alone, and
    ``settleBatchWithPermits`` for a batch mixing first-time payers with one that needs no permit."""
    import concurrent.futures

    single = make_facilitator()
    reqs = requirements(token, payee, chain_id, spender=deployment.payment_facilitator)
    payer = fresh()
    payload = create_payment_payload(reqs, payer.key, now=now)
    permit = permit_for(token, chain_id, payer, 5 * ONE, payload.payload.authorization.deadline)  # covers 2
    before = token.balanceOf(payee)
    answer = single.settle(body(payload, reqs, permit))
    assert answer.success, answer.error_message
    assert chain.provider.web3.eth.get_transaction(answer.transaction)["to"] == deployment.payment_facilitator
    assert token.balanceOf(payee) - before == 2 * ONE and untouched(chain, payer)
    assert token.allowance(payer.address, PERMIT2_ADDRESS) == 3 * ONE  # what the permit approved, less the payment

    batching = make_facilitator(batch_window=1.0)
    newcomers = [fresh() for _ in range(3)]
    bodies = []
    for account in newcomers:
        p = create_payment_payload(reqs, account.key, now=now)
        bodies.append(body(p, reqs, permit_for(token, chain_id, account, 2 * ONE, p.payload.authorization.deadline)))
    bodies.append(body(create_payment_payload(reqs, payer.key, now=now), reqs, None))  # approved by now
    before = token.balanceOf(payee)
    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(batching.settle, bodies))
    assert all(a.success for a in answers), [a.error_message for a in answers]
    assert len({a.transaction for a in answers}) == 1  # one settleBatchWithPermits
    assert token.balanceOf(payee) - before == 8 * ONE
    assert all(untouched(chain, account) for account in newcomers)


# --- hostile permits ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"spender": "0x000000000000000000000000000000000000dEaD"}, "eip2612_spender_not_permit2"),
        ({"value": ONE}, "eip2612_amount_mismatch"),
        ({"value": 3 * ONE}, "eip2612_amount_mismatch"),  # x402's proxies want exactly the permitted amount
        ({"deadline": -1}, "eip2612_deadline_expired"),
        ({"nonce": 7}, "eip2612_invalid_nonce"),
        ({"signer": "other"}, "invalid_eip2612_signature"),
        ({"owner": "other"}, "eip2612_from_mismatch"),
    ],
    ids=["wrong-spender", "value-short", "value-over", "expired", "future-nonce", "forged", "someone-else"],
)
def test_a_bad_permit_is_refused_and_nothing_is_sent(
    make_facilitator: Callable[..., Facilitator],
    fresh: Callable[[], Any],
    token: Any,
    payee: Any,
    chain_id: int,
    now: int,
    change: dict[str, Any],
    reason: str,
) -> None:
    facilitator = make_facilitator()
    payer, other = fresh(), fresh()
    reqs = requirements(token, payee, chain_id)
    payload = create_payment_payload(reqs, payer.key, now=now)
    deadline = now - 1 if change.get("deadline") == -1 else payload.payload.authorization.deadline
    signer = other if "signer" in change or "owner" in change else payer
    permit = permit_for(
        token,
        chain_id,
        signer,
        change.get("value", 2 * ONE),
        deadline,
        nonce=change.get("nonce"),
        spender=change.get("spender", PERMIT2_ADDRESS),
    )
    if "signer" in change:  # signed by another key, claiming to be the payer's
        permit = dataclasses.replace(permit, owner=payer.address)
    verified = facilitator.verify(body(payload, reqs, permit))
    assert (verified.is_valid, verified.invalid_reason) == (False, reason), verified
    before = token.balanceOf(payee)
    answer = facilitator.settle(body(payload, reqs, permit))
    assert (answer.success, answer.error_reason, answer.transaction) == (False, reason, "")
    assert token.balanceOf(payee) == before and token.nonces(payer.address) == 0


def test_a_malformed_extension_is_invalid_payload_format(
    make_facilitator: Callable[..., Facilitator], fresh: Callable[[], Any], token: Any, payee: Any, chain_id: int
) -> None:
    facilitator = make_facilitator()
    reqs = requirements(token, payee, chain_id)
    request = body(create_payment_payload(reqs, fresh().key), reqs, None)
    request["paymentPayload"]["extensions"] = {EIP2612_GAS_SPONSORING: {"info": {"from": "0x12"}}}
    verified = facilitator.verify(request)
    assert verified.invalid_reason == "invalid_eip2612_extension_format"
    assert verified.invalid_message is not None and "info.asset" in verified.invalid_message


def test_a_spent_permit_cannot_pay_twice(
    make_facilitator: Callable[..., Facilitator],
    fresh: Callable[[], Any],
    token: Any,
    payee: Any,
    chain_id: int,
    now: int,
) -> None:
    """Replay: after the permit's approval is used up, a second payment carrying the same permit is refused
    (its token nonce is spent), and nothing moves."""
    facilitator = make_facilitator()
    payer = fresh()
    reqs = requirements(token, payee, chain_id)
    first = create_payment_payload(reqs, payer.key, now=now)
    permit = permit_for(token, chain_id, payer, 2 * ONE, first.payload.authorization.deadline)
    assert facilitator.settle(body(first, reqs, permit)).success
    assert token.allowance(payer.address, PERMIT2_ADDRESS) == 0
    second = create_payment_payload(reqs, payer.key, now=now)
    before = token.balanceOf(payee)
    answer = facilitator.settle(body(second, reqs, permit))
    assert (answer.success, answer.error_reason) == (False, "eip2612_invalid_nonce")
    assert token.balanceOf(payee) == before


def test_a_front_run_permit_does_not_stop_the_payment(
    make_facilitator: Callable[..., Facilitator],
    fresh: Callable[[], Any],
    token: Any,
    payee: Any,
    stranger: Any,
    chain_id: int,
    now: int,
) -> None:
    """Someone submits the payer's permit to the token between /verify and /settle: the allowance is then in
    place and the payment settles (the facilitator sees the allowance and settles without the permit)."""
    facilitator = make_facilitator()
    payer = fresh()
    reqs = requirements(token, payee, chain_id)
    payload = create_payment_payload(reqs, payer.key, now=now)
    permit = permit_for(token, chain_id, payer, 2 * ONE, payload.payload.authorization.deadline)
    assert facilitator.verify(body(payload, reqs, permit)).is_valid
    token.permit(payer.address, PERMIT2_ADDRESS, permit.value, permit.deadline, permit.v, permit.r, permit.s,
                 sender=stranger)  # fmt: skip
    before = token.balanceOf(payee)
    answer = facilitator.settle(body(payload, reqs, permit))
    assert answer.success, answer
    assert token.balanceOf(payee) - before == 2 * ONE


# --- the contracts, called directly: front-run tolerance and named errors ----------------------------------------


def _topic(event: str) -> bytes:
    from og_settle._hex import keccak256

    return keccak256(event.encode())


def _front_run(token: Any, permit: Eip2612Permit, stranger: Any) -> None:
    token.permit(permit.owner, PERMIT2_ADDRESS, permit.value, permit.deadline, permit.v, permit.r, permit.s,
                 sender=stranger)  # fmt: skip


def test_contracts_tolerate_a_front_run_permit(
    project: Any,
    fresh: Callable[[], Any],
    token: Any,
    payee: Any,
    relayer: Any,
    stranger: Any,
    deployment: Deployment,
    chain_id: int,
    now: int,
) -> None:
    """The permit is submitted by someone else first (its token nonce spent): PaymentFacilitator's
    ``settleWithPermit`` and the batcher's ``settleWithPermits`` skip it and settle; x402's exact proxy tries it,
    reports the failure by event, and settles."""
    from og_settle.clients import StockPayment, StockPaymentBatcherClient, exact_proxy_call

    facilitator = project.PaymentFacilitator.at(deployment.payment_facilitator)
    own = requirements(token, payee, chain_id, spender=deployment.payment_facilitator)
    payer = fresh()
    payload = create_payment_payload(own, payer.key, now=now)
    auth = payload.payload.authorization
    permit = permit_for(token, chain_id, payer, 2 * ONE, auth.deadline)
    _front_run(token, permit, stranger)
    before = token.balanceOf(payee)
    facilitator.settleWithPermit(
        (permit.value, permit.deadline, permit.v, permit.r, permit.s),
        auth.payment_args(payload.payload.signature),
        sender=relayer,
    )
    assert token.balanceOf(payee) - before == 2 * ONE

    stock = requirements(token, payee, chain_id)
    w3 = make_web3(str(ape.chain.provider.http_uri))
    batcher = StockPaymentBatcherClient(w3, deployment.stock_payment_batcher)
    for via in ("batcher", "proxy"):
        payer = fresh()
        payload = create_payment_payload(stock, payer.key, now=now)
        permit = permit_for(token, chain_id, payer, 2 * ONE, payload.payload.authorization.deadline)
        _front_run(token, permit, stranger)
        payment = StockPayment.from_x402(payload, stock)
        call = (
            batcher.settle_call([payment], permits=[permit]) if via == "batcher" else exact_proxy_call(payment, permit)
        )
        before = token.balanceOf(payee)
        receipt = w3.eth.wait_for_transaction_receipt(
            w3.eth.send_transaction({"from": relayer.address, "to": call.to, "data": call.data, "gas": 1_000_000})
        )
        assert receipt["status"] == 1, via
        assert token.balanceOf(payee) - before == 2 * ONE, via
        # The proxy tried the spent permit and reported it (the original's EIP2612PermitFailedWithData: OZ's
        # ERC2612InvalidSigner); the batcher saw the allowance and did not try it (no PermitFailed).
        topics = {bytes(log["topics"][0]) for log in receipt["logs"]}
        assert (_topic("EIP2612PermitFailedWithData(address,address,bytes)") in topics) == (via == "proxy")
        assert _topic("PermitFailed(uint256,address)") not in topics


def test_payment_facilitator_names_a_permit_that_did_not_approve(
    project: Any,
    fresh: Callable[[], Any],
    token: Any,
    payee: Any,
    relayer: Any,
    deployment: Deployment,
    chain_id: int,
    now: int,
) -> None:
    facilitator = project.PaymentFacilitator.at(deployment.payment_facilitator)
    reqs = requirements(token, payee, chain_id, spender=deployment.payment_facilitator)
    payer = fresh()
    payload = create_payment_payload(reqs, payer.key, now=now)
    auth = payload.payload.authorization
    short = permit_for(token, chain_id, payer, ONE, auth.deadline)  # approves 1 of the 2 due
    args = (short.value, short.deadline, short.v, short.r, short.s)
    with ape.reverts(
        facilitator.PermitDidNotApprove, token=token.address, owner=payer.address, allowance=ONE, needed=2 * ONE
    ):
        facilitator.settleWithPermit(args, auth.payment_args(payload.payload.signature), sender=relayer)
    with ape.reverts(facilitator.InvalidPermitIndex, index=1, size=1):
        facilitator.settleBatchWithPermits([auth.payment_args(payload.payload.signature)], [(1, args)], sender=relayer)


# --- gas --------------------------------------------------------------------------------------------------------


def _receipt(raw: Any) -> Any:
    from og_settle.clients import Receipt

    mined = (bytes(raw["transactionHash"]), int(raw["blockNumber"]), raw["status"] == 1, raw["gasUsed"])
    return Receipt(*mined, logs=raw["logs"])


def _send(w3: Any, sender: Any, call: Any) -> Any:
    tx = w3.eth.send_transaction({"from": sender.address, "to": call.to, "data": call.data, "gas": 15_000_000})
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    assert receipt["status"] == 1, call.description
    return receipt


@pytest.mark.gas
def test_gas_first_time_payers_with_permits(
    fresh: Callable[[], Any],
    token: Any,
    payee: Any,
    relayer: Any,
    deployer: Any,
    deployment: Deployment,
    rpc_url: str,
    chain_id: int,
    now: int,
    gas_snapshot: Any,
) -> None:
    """What the permit adds to a first-time payer's payment, on each route (the payee already holds the token;
    every payer is new: no allowance, a cold token nonce)."""
    from og_settle.clients import (
        PaymentFacilitatorClient,
        StockPayment,
        StockPaymentBatcherClient,
        exact_proxy_call,
    )

    w3 = make_web3(rpc_url)
    token.mint(payee.address, ONE, sender=deployer)
    stock = requirements(token, payee, chain_id)
    own = requirements(token, payee, chain_id, spender=deployment.payment_facilitator)

    def signed(reqs: PaymentRequirements) -> tuple[PaymentPayload, Eip2612Permit]:
        payer = fresh()
        payload = create_payment_payload(reqs, payer.key, now=now)
        return payload, permit_for(token, chain_id, payer, 2 * ONE, payload.payload.authorization.deadline)

    payload, permit = signed(stock)
    proxy = _send(w3, relayer, exact_proxy_call(StockPayment.from_x402(payload, stock), permit))
    gas_snapshot.record("StandInX402ExactProxy.settleWithPermit (first-time payer)", proxy["gasUsed"])

    facilitator = PaymentFacilitatorClient(w3, deployment.payment_facilitator)
    payload, permit = signed(own)
    args = payload.payload.authorization.payment_args(payload.payload.signature)
    single = _send(w3, relayer, facilitator.settle_with_permit_call(permit, args))
    gas_snapshot.record("PaymentFacilitator.settleWithPermit(exact, first-time payer)", single["gasUsed"])

    count = 20
    batcher = StockPaymentBatcherClient(w3, deployment.stock_payment_batcher)
    signed_stock = [signed(stock) for _ in range(count)]
    payments = [StockPayment.from_x402(p, stock) for p, _ in signed_stock]
    before = token.balanceOf(payee)
    batch = _send(w3, relayer, batcher.settle_call(payments, permits=[permit for _, permit in signed_stock]))
    assert token.balanceOf(payee) - before == count * 2 * ONE
    name = f"StockPaymentBatcher.settleWithPermits({count} exact, {count} first-time payers)"
    gas_snapshot.record(f"{name} per payment", batch["gasUsed"] // count)
    gas_snapshot.record(f"{name} total", batch["gasUsed"])

    signed_own = [signed(own) for _ in range(count)]
    items = [p.payload.authorization.payment_args(p.payload.signature) for p, _ in signed_own]
    before = token.balanceOf(payee)
    call = facilitator.settle_batch_with_permits_call(items, [(i, permit) for i, (_, permit) in enumerate(signed_own)])
    batch = _send(w3, relayer, call)
    assert token.balanceOf(payee) - before == count * 2 * ONE
    name = f"PaymentFacilitator.settleBatchWithPermits({count} exact, {count} first-time payers)"
    gas_snapshot.record(f"{name} per payment", batch["gasUsed"] // count)
    gas_snapshot.record(f"{name} total", batch["gasUsed"])


# --- og-settle's own client and CLI -----------------------------------------------------------------------------


def test_og_settle_client_adds_a_permit_only_when_needed(
    make_facilitator: Callable[..., Facilitator],
    fresh: Callable[[], Any],
    token: Any,
    opg: Any,
    payee: Any,
    deployer: Any,
    chain: Any,
    rpc_url: str,
    chain_id: int,
    now: int,
) -> None:
    """``gasless_permit`` signs for a payer without allowance (who then pays, no transaction of its own), signs
    nothing for one already approved, and refuses a token without EIP-2612 (OPG here) in one line."""
    from og_settle import InvalidInput, gasless_permit, with_permit

    facilitator = make_facilitator()
    w3 = make_web3(rpc_url)
    reqs = requirements(token, payee, chain_id)
    payer = fresh()
    payload = create_payment_payload(reqs, payer.key, now=now)
    permit = gasless_permit(w3, reqs, payer.key, deadline=payload.payload.authorization.deadline)
    assert permit is not None and (permit.value, permit.nonce) == (2 * ONE, 0)
    before = token.balanceOf(payee)
    answer = facilitator.settle(body(with_permit(payload, permit), reqs, None))
    assert answer.success, answer.error_message
    assert token.balanceOf(payee) - before == 2 * ONE and untouched(chain, payer)

    token.mint(deployer.address, 2 * ONE, sender=deployer)
    token.approve(PERMIT2_ADDRESS, 2 * ONE, sender=deployer)
    assert gasless_permit(w3, reqs, deployer.private_key, deadline=now + 600) is None

    plain = dataclasses.replace(reqs, asset=opg.address)
    with pytest.raises(InvalidInput, match="no EIP-2612 permit"):
        gasless_permit(w3, plain, fresh().key, deadline=now + 600)


def test_cli_sign_gasless(
    make_facilitator: Callable[..., Facilitator],
    fresh: Callable[[], Any],
    token: Any,
    payee: Any,
    chain: Any,
    rpc_url: str,
    chain_id: int,
    tmp_path: Path,
) -> None:
    """``og-settle payment sign --gasless --rpc-url`` adds the permit; the facilitator settles it."""
    import json
    import os
    import subprocess
    import sys

    facilitator = make_facilitator()
    payer = fresh()
    reqs = requirements(token, payee, chain_id)
    source = tmp_path / "requirements.json"
    source.write_text(json.dumps(reqs.to_json()))
    env = {**os.environ, "PAYER_KEY": payer.key.hex()}
    argv = [sys.executable, "-m", "og_settle.cli", "payment", "sign", str(source), "--key-env", "PAYER_KEY"]
    missing = subprocess.run([*argv, "--gasless"], env={**env, "OG_SETTLE_RPC_URL": ""}, capture_output=True, text=True)
    assert missing.returncode != 0 and "--gasless: needs --rpc-url" in missing.stderr
    assert "Traceback" not in missing.stderr
    done = subprocess.run([*argv, "--gasless", "--rpc-url", rpc_url], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    signed = json.loads(done.stdout)
    assert signed["extensions"][EIP2612_GAS_SPONSORING]["info"]["spender"] == PERMIT2_ADDRESS
    # `payment verify --rpc-url` takes the permit into account as the facilitator does; without it the payer has
    # no allowance.
    paid = tmp_path / "payment.json"
    verify = ["payment", "verify", str(paid), "--requirements", str(source), "--rpc-url", rpc_url]
    paid.write_text(json.dumps(signed))
    checked = subprocess.run([sys.executable, "-m", "og_settle.cli", *verify], env=env, capture_output=True, text=True)
    assert checked.returncode == 0 and checked.stdout.startswith("valid:"), (checked.stdout, checked.stderr)
    paid.write_text(json.dumps({key: value for key, value in signed.items() if key != "extensions"}))
    checked = subprocess.run([sys.executable, "-m", "og_settle.cli", *verify], env=env, capture_output=True, text=True)
    assert checked.returncode == 1 and "permit2_allowance_required" in checked.stdout, checked.stdout
    before = token.balanceOf(payee)
    answer = facilitator.settle({"x402Version": 2, "paymentPayload": signed, "paymentRequirements": reqs.to_json()})
    assert answer.success, answer.error_message
    assert token.balanceOf(payee) - before == 2 * ONE and untouched(chain, payer)


def test_a_bad_permit_in_a_batch_fails_its_item_alone(
    fresh: Callable[[], Any],
    token: Any,
    payee: Any,
    relayer: Any,
    deployment: Deployment,
    rpc_url: str,
    chain_id: int,
    now: int,
) -> None:
    """StockPaymentBatcher.settleWithPermits with one forged permit (another key signed it for the payer): that
    payer's item fails alone and ``PermitFailed`` names it; the other first-time payer settles; nothing reverts.
    PaymentFacilitator.settleBatchWithPermits likewise."""
    from og_settle.clients import PaymentFacilitatorClient, StockPayment, StockPaymentBatcherClient

    w3 = make_web3(rpc_url)
    for route in ("batcher", "facilitator"):
        extra = {"spender": deployment.payment_facilitator} if route == "facilitator" else {}
        reqs = requirements(token, payee, chain_id, **extra)
        good, bad, forger = fresh(), fresh(), fresh()
        payloads = [create_payment_payload(reqs, account.key, now=now) for account in (good, bad)]
        deadline = payloads[0].payload.authorization.deadline
        forged = dataclasses.replace(permit_for(token, chain_id, forger, 2 * ONE, deadline), owner=bad.address)
        permits = [permit_for(token, chain_id, good, 2 * ONE, deadline), forged]
        before = token.balanceOf(payee)
        if route == "batcher":
            client = StockPaymentBatcherClient(w3, deployment.stock_payment_batcher)
            payments = [StockPayment.from_x402(p, reqs) for p in payloads]
            receipt = _send(w3, relayer, client.settle_call(payments, permits=permits))
            assert [o.settled for o in client.outcomes(_receipt(receipt), payments)] == [True, False]
            flagged = [
                int.from_bytes(bytes(log["topics"][1]), "big")
                for log in receipt["logs"]
                if bytes(log["topics"][0]) == _topic("PermitFailed(uint256,address)")
            ]
            assert flagged == [1]
        else:
            facilitator = PaymentFacilitatorClient(w3, deployment.payment_facilitator)
            items = [p.payload.authorization.payment_args(p.payload.signature) for p in payloads]
            receipt = _send(w3, relayer, facilitator.settle_batch_with_permits_call(items, list(enumerate(permits))))
            assert [o.settled for o in facilitator.batch_outcomes(_receipt(receipt), items)] == [True, False]
        assert token.balanceOf(payee) - before == 2 * ONE, route
        assert token.balanceOf(bad.address) == 10 * ONE and token.nonces(bad.address) == 0, route


def test_permits_in_a_batch_get_their_whole_gas_cap_or_the_batch_reverts(
    fresh: Callable[[], Any],
    token: Any,
    payee: Any,
    relayer: Any,
    deployment: Deployment,
    rpc_url: str,
    chain_id: int,
    now: int,
) -> None:
    """63/64 rule: with too little gas for a permit's capped calls, the batch reverts with a named error instead of
    letting the caller's gas limit decide which permit fails (InsufficientGasForPermit on the batcher,
    InsufficientGasForItem naming the item on PaymentFacilitator)."""
    from web3.exceptions import ContractLogicError

    from og_settle.clients import PaymentFacilitatorClient, StockPayment, StockPaymentBatcherClient

    w3 = make_web3(rpc_url)
    stock, own = (
        requirements(token, payee, chain_id),
        requirements(token, payee, chain_id, spender=deployment.payment_facilitator),
    )
    payer = fresh()
    stock_payload = create_payment_payload(stock, payer.key, now=now)
    own_payload = create_payment_payload(own, payer.key, now=now)
    permit = permit_for(token, chain_id, payer, 2 * ONE, stock_payload.payload.authorization.deadline)
    batcher = StockPaymentBatcherClient(w3, deployment.stock_payment_batcher)
    facilitator = PaymentFacilitatorClient(w3, deployment.payment_facilitator)
    own_args = own_payload.payload.authorization.payment_args(own_payload.payload.signature)
    calls = {
        "InsufficientGasForPermit(uint256,uint256,uint256)": batcher.settle_call(
            [StockPayment.from_x402(stock_payload, stock)], permits=[permit]
        ),
        "InsufficientGasForItem(uint256,uint256)": facilitator.settle_batch_with_permits_call(
            [own_args], [(0, permit)]
        ),
    }
    for error, call in calls.items():
        with pytest.raises(ContractLogicError) as raised:
            w3.eth.call({"from": relayer.address, "to": call.to, "data": call.data, "gas": 250_000})
        data = raised.value.data if isinstance(raised.value.data, str) else ""
        assert data.startswith("0x" + _topic(error)[:4].hex()), (error, raised.value)
    assert token.nonces(payer.address) == 0
