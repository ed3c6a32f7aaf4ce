"""PaymentFacilitator against the genuine Permit2 and OPG: what settles, what is rejected, and with which error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ape
import pytest

from og_settle import PERMIT2_ADDRESS
from og_settle._hex import keccak256
from og_settle._permit2 import PaymentScheme
from og_settle._x402 import PaymentRequirements, create_payment_payload, decode_payment_signature_header, encode_header
from og_settle.clients._facilitator import pack_payment
from tests.payments.conftest import Sign
from tests.support.payments import settled_events

ONE = 10**18
ZERO_ADDRESS = "0x" + "00" * 20
REQUEST_HASH = bytes.fromhex("ab" * 32)
SETTLE_PACKED = keccak256(b"settlePacked()")[:4]


@pytest.fixture(params=["abi", "packed"])
def settle(request: pytest.FixtureRequest, facilitator: Any) -> Callable[..., Any]:
    """``settle(payment_tuple, sender=...)`` through ``settle(Payment)`` (ABI) or ``settlePacked()`` (what
    og-settle's client sends): every check must answer the same through both."""
    if request.param == "abi":
        return lambda payment, sender: facilitator.settle(payment, sender=sender)
    return lambda payment, sender: sender.transfer(facilitator.address, 0, data=SETTLE_PACKED + pack_payment(payment))


# --- what settles ------------------------------------------------------------------------------------------------


def test_exact_moves_exactly_the_permitted_amount_to_witness_to(
    settle: Callable[..., Any], facilitator: Any, sign: Sign, payer: Any, payee: Any, relayer: Any, opg: Any, now: int
) -> None:
    authorization, signature = sign(payer, amount=3 * ONE + 7)
    payer_before, payee_before = opg.balanceOf(payer), opg.balanceOf(payee)
    tx = settle(authorization.payment_args(signature), sender=relayer)
    assert opg.balanceOf(payee) - payee_before == 3 * ONE + 7
    assert payer_before - opg.balanceOf(payer) == 3 * ONE + 7
    assert opg.balanceOf(facilitator) == 0
    [event] = settled_events(facilitator, tx)
    assert (event.payer, event.to, event.token) == (payer.address, payee.address, opg.address)
    assert (event.amount, event.nonce, event.scheme, bytes(event.request_hash)) == (
        3 * ONE + 7,
        authorization.nonce,
        PaymentScheme.EXACT,
        b"\0" * 32,
    )


def test_upto_settles_any_amount_up_to_the_permitted_one(
    settle: Callable[..., Any], facilitator: Any, sign: Sign, payer: Any, payee: Any, relayer: Any, opg: Any
) -> None:
    authorization, signature = sign(payer, amount=5 * ONE, facilitator=relayer.address)
    before = opg.balanceOf(payee)
    tx = settle(authorization.payment_args(signature, amount=2 * ONE), sender=relayer)
    assert opg.balanceOf(payee) - before == 2 * ONE
    [event] = settled_events(facilitator, tx)
    assert (event.amount, event.scheme) == (2 * ONE, PaymentScheme.UPTO)


@pytest.mark.parametrize("upto", [False, True], ids=["exact-bound", "upto-bound"])
def test_bound_variants_emit_the_signed_request_hash(
    settle: Callable[..., Any], facilitator: Any, sign: Sign, payer: Any, relayer: Any, upto: bool
) -> None:
    authorization, signature = sign(payer, request_hash=REQUEST_HASH, facilitator=relayer.address if upto else None)
    tx = settle(authorization.payment_args(signature), sender=relayer)
    [event] = settled_events(facilitator, tx)
    assert bytes(event.request_hash) == REQUEST_HASH
    assert event.scheme == (PaymentScheme.UPTO_BOUND if upto else PaymentScheme.EXACT_BOUND)


def test_bound_signature_cannot_be_settled_with_another_request_hash(
    settle: Callable[..., Any], facilitator: Any, permit2: Any, sign: Sign, payer: Any, relayer: Any
) -> None:
    authorization, signature = sign(payer, request_hash=REQUEST_HASH)
    args = list(authorization.payment_args(signature))
    args[6] = b"\x01" * 32
    with ape.reverts(permit2.InvalidSigner):
        settle(tuple(args), sender=relayer)


def test_standard_x402_client_payload_settles_unchanged(
    settle: Callable[..., Any],
    facilitator: Any,
    payer: Any,
    payee: Any,
    relayer: Any,
    opg: Any,
    now: int,
    permit2_approved: None,
) -> None:
    """A v2 PaymentPayload built as an x402 client builds it survives the header round trip and settles."""
    requirements = PaymentRequirements(
        scheme="exact",
        network="eip155:84532",
        amount=ONE // 4,
        asset=opg.address,
        pay_to=payee.address,
        max_timeout_seconds=300,
        extra={"assetTransferMethod": "permit2", "name": "OpenGradient", "version": "1"},
    )
    payload = create_payment_payload(requirements, payer.private_key, spender=facilitator.address, now=now)
    received = decode_payment_signature_header(encode_header(payload))
    assert received == payload
    auth = received.payload.authorization
    assert (auth.valid_after, auth.deadline) == (now - 600, now + 300)
    before = opg.balanceOf(payee)
    settle(auth.payment_args(received.payload.signature), sender=relayer)
    assert opg.balanceOf(payee) - before == ONE // 4


def test_exact_front_runner_can_only_cause_the_same_transfer(
    settle: Callable[..., Any],
    facilitator: Any,
    sign: Sign,
    payer: Any,
    payee: Any,
    relayer: Any,
    stranger: Any,
    opg: Any,
) -> None:
    """Someone replaying an exact payload from the mempool pays the signed payee; the relayer's copy reverts."""
    authorization, signature = sign(payer)
    before, stranger_before = opg.balanceOf(payee), opg.balanceOf(stranger)
    settle(authorization.payment_args(signature), sender=stranger)
    assert opg.balanceOf(payee) - before == authorization.amount
    assert opg.balanceOf(stranger) == stranger_before
    with ape.reverts(facilitator.NonceAlreadyUsed, owner=payer.address, nonce=authorization.nonce):
        settle(authorization.payment_args(signature), sender=relayer)


# --- rejections, each with its named error ---------------------------------------------------------------------------


def test_reused_nonce(settle: Callable[..., Any], facilitator: Any, sign: Sign, payer: Any, relayer: Any) -> None:
    authorization, signature = sign(payer)
    settle(authorization.payment_args(signature), sender=relayer)
    with ape.reverts(facilitator.NonceAlreadyUsed, owner=payer.address, nonce=authorization.nonce):
        settle(authorization.payment_args(signature), sender=relayer)


def test_expired_deadline(
    settle: Callable[..., Any], facilitator: Any, sign: Sign, payer: Any, relayer: Any, chain: Any, now: int
) -> None:
    authorization, signature = sign(payer, deadline=now - 1)
    with ape.reverts(facilitator.PaymentExpired, deadline=now - 1):
        settle(authorization.payment_args(signature), sender=relayer)


def test_too_early(
    settle: Callable[..., Any], facilitator: Any, sign: Sign, payer: Any, relayer: Any, now: int
) -> None:
    authorization, signature = sign(payer, valid_after=now + 1000)
    with ape.reverts(facilitator.PaymentNotYetValid, validAfter=now + 1000):
        settle(authorization.payment_args(signature), sender=relayer)


@pytest.mark.parametrize("field", ["to", "amount", "token"])
def test_tampered_field_breaks_the_signature(
    settle: Callable[..., Any],
    facilitator: Any,
    permit2: Any,
    sign: Sign,
    payer: Any,
    relayer: Any,
    stranger: Any,
    project: Any,
    deployer: Any,
    field: str,
) -> None:
    authorization, signature = sign(payer)
    args = list(authorization.payment_args(signature))
    if field == "to":
        args[3] = stranger.address
    elif field == "amount":
        args[2] = ((authorization.token, authorization.amount + 1), authorization.nonce, authorization.deadline)
        args[7] = authorization.amount + 1
    else:
        other = project.FeeOnTransferToken.deploy(sender=deployer)
        args[2] = ((other.address, authorization.amount), authorization.nonce, authorization.deadline)
    with ape.reverts(permit2.InvalidSigner):
        settle(tuple(args), sender=relayer)


def test_wrong_spender(
    settle: Callable[..., Any], facilitator: Any, permit2: Any, sign: Sign, payer: Any, relayer: Any
) -> None:
    """A payload signed for another spender (e.g. the x402 reference proxy) does not settle here."""
    authorization, signature = sign(payer, spender="0x402085c248EeA27D92E8b30b2C58ed07f9E20001")
    with ape.reverts(permit2.InvalidSigner):
        settle(authorization.payment_args(signature), sender=relayer)


@pytest.mark.parametrize("other_chain", [1, 8453])
def test_wrong_chain_id(
    settle: Callable[..., Any], facilitator: Any, permit2: Any, sign: Sign, payer: Any, relayer: Any, other_chain: int
) -> None:
    authorization, signature = sign(payer, sign_chain_id=other_chain)
    with ape.reverts(permit2.InvalidSigner):
        settle(authorization.payment_args(signature), sender=relayer)


def test_wrong_signer(
    settle: Callable[..., Any], facilitator: Any, permit2: Any, sign: Sign, payer: Any, payers: list[Any], relayer: Any
) -> None:
    authorization, signature = sign(payer, key=payers[1].private_key)
    with ape.reverts(permit2.InvalidSigner):
        settle(authorization.payment_args(signature), sender=relayer)


def test_high_s_twin_of_a_valid_signature(
    settle: Callable[..., Any], facilitator: Any, sign: Sign, payer: Any, relayer: Any
) -> None:
    """(r, n - s, 55 - v) recovers the same signer, and Permit2 would accept it; the facilitator does not."""
    authorization, signature = sign(payer)
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    high_s = (n - int.from_bytes(signature[32:64], "big")).to_bytes(32, "big")
    twin = signature[:32] + high_s + bytes([55 - signature[64]])
    with ape.reverts(facilitator.MalleableSignature, s=high_s):
        settle(authorization.payment_args(twin), sender=relayer)


def test_malformed_signatures(
    settle: Callable[..., Any], facilitator: Any, sign: Sign, payer: Any, relayer: Any
) -> None:
    authorization, signature = sign(payer)
    with ape.reverts(facilitator.InvalidSignatureV, v=1):
        settle(authorization.payment_args(signature[:64] + b"\x01"), sender=relayer)
    with ape.reverts(facilitator.MalformedSignature, length=66):
        settle(authorization.payment_args(signature + b"\x00"), sender=relayer)
    with ape.reverts(facilitator.MalformedSignature, length=0):
        settle(authorization.payment_args(b""), sender=relayer)


def test_eip2098_compact_signature_settles(
    settle: Callable[..., Any], facilitator: Any, sign: Sign, payer: Any, relayer: Any
) -> None:
    authorization, signature = sign(payer)
    vs = int.from_bytes(signature[32:64], "big") | ((signature[64] - 27) << 255)
    compact = signature[:32] + vs.to_bytes(32, "big")
    [event] = settled_events(facilitator, settle(authorization.payment_args(compact), sender=relayer))
    assert event.amount == authorization.amount


def test_upto_over_amount(settle: Callable[..., Any], facilitator: Any, sign: Sign, payer: Any, relayer: Any) -> None:
    authorization, signature = sign(payer, amount=ONE, facilitator=relayer.address)
    with ape.reverts(facilitator.AmountExceedsPermitted, amount=ONE + 1, permitted=ONE):
        settle(authorization.payment_args(signature, amount=ONE + 1), sender=relayer)


def test_upto_by_someone_other_than_witness_facilitator(
    settle: Callable[..., Any], facilitator: Any, sign: Sign, payer: Any, relayer: Any, stranger: Any
) -> None:
    authorization, signature = sign(payer, facilitator=relayer.address)
    with ape.reverts(facilitator.UnauthorizedFacilitator, caller=stranger.address, facilitator=relayer.address):
        settle(authorization.payment_args(signature, amount=1), sender=stranger)


def test_exact_amount_must_be_the_permitted_amount(facilitator: Any, sign: Sign, payer: Any, relayer: Any) -> None:
    authorization, signature = sign(payer, amount=ONE)
    with ape.reverts(facilitator.ExactAmountMismatch, amount=ONE - 1, permitted=ONE):
        facilitator.settle(authorization.payment_args(signature, amount=ONE - 1), sender=relayer)


def test_fields_outside_the_witness_are_rejected(facilitator: Any, sign: Sign, payer: Any, relayer: Any) -> None:
    authorization, signature = sign(payer)
    args = list(authorization.payment_args(signature))
    args[4] = relayer.address  # a facilitator on an exact payment
    with ape.reverts(facilitator.FieldNotInWitness, scheme=PaymentScheme.EXACT):
        facilitator.settle(tuple(args), sender=relayer)
    args = list(authorization.payment_args(signature))
    args[6] = REQUEST_HASH  # a request hash on an unbound payment
    with ape.reverts(facilitator.FieldNotInWitness, scheme=PaymentScheme.EXACT):
        facilitator.settle(tuple(args), sender=relayer)


def test_zero_amount_owner_and_recipient(
    settle: Callable[..., Any], facilitator: Any, sign: Sign, payer: Any, relayer: Any
) -> None:
    authorization, signature = sign(payer, facilitator=relayer.address)
    with ape.reverts(facilitator.ZeroAmount):
        settle(authorization.payment_args(signature, amount=0), sender=relayer)
    args = list(authorization.payment_args(signature, amount=1))
    args[1] = ZERO_ADDRESS
    with ape.reverts(facilitator.ZeroOwner):
        settle(tuple(args), sender=relayer)
    for recipient in (ZERO_ADDRESS, facilitator.address, payer.address):
        args = list(authorization.payment_args(signature, amount=1))
        args[3] = recipient
        with ape.reverts(facilitator.InvalidRecipient, to=recipient):
            settle(tuple(args), sender=relayer)


def test_token_without_code(
    settle: Callable[..., Any], facilitator: Any, sign: Sign, payer: Any, relayer: Any, stranger: Any
) -> None:
    """An empty address as token: the reference proxy would 'succeed'; here it is TokenHasNoCode."""
    authorization, signature = sign(payer, token=stranger.address)
    with ape.reverts(facilitator.TokenHasNoCode, token=stranger.address):
        settle(authorization.payment_args(signature), sender=relayer)


def test_fee_on_transfer_token_is_rejected_not_recorded_as_paid(
    settle: Callable[..., Any],
    facilitator: Any,
    sign: Sign,
    project: Any,
    deployer: Any,
    payer: Any,
    payee: Any,
    relayer: Any,
) -> None:
    token = project.FeeOnTransferToken.deploy(sender=deployer)
    token.mint(payer, 100 * ONE, sender=deployer)
    token.approve(PERMIT2_ADDRESS, 2**256 - 1, sender=payer)
    authorization, signature = sign(payer, token=token.address, amount=10 * ONE)
    with ape.reverts(
        facilitator.TransferShortfall, token=token.address, to=payee.address, expected=10 * ONE, received=99 * ONE // 10
    ):
        settle(authorization.payment_args(signature), sender=relayer)
    assert token.balanceOf(payer) == 100 * ONE  # the whole payment reverted, nonce included


def test_reentrant_token_cannot_reenter(
    facilitator: Any, sign: Sign, project: Any, deployer: Any, payer: Any, relayer: Any, payers: list[Any]
) -> None:
    """A hostile token calling back into settle or settleOne from inside its transfer is refused by the guard."""
    token = project.ReentrantToken.deploy(sender=deployer)
    victim = payers[1]
    for account in (payer, victim):
        token.mint(account, 100 * ONE, sender=deployer)
        token.approve(PERMIT2_ADDRESS, 2**256 - 1, sender=account)
    inner_auth, inner_sig = sign(victim, token=token.address)
    inner = inner_auth.payment_args(inner_sig)
    attacks = {
        "ReentrancyGuardReentrantCall()": facilitator.settle.encode_input(inner),
        "OnlySelf(address)": facilitator.settleOne.encode_input(inner, relayer.address, 2**256 - 1),
    }
    packed_attacks = {
        "ReentrancyGuardReentrantCall()": SETTLE_PACKED + pack_payment(inner),
        "OnlySelf(address)": keccak256(b"settlePackedItem()")[:4]
        + bytes(12)
        + bytes.fromhex(relayer.address[2:])
        + b"\xff" * 32
        + pack_payment(inner),
    }
    for error, attack in [*attacks.items(), *packed_attacks.items()]:
        outer_auth, outer_sig = sign(payer, token=token.address)
        token.arm(facilitator.address, attack, sender=deployer)
        facilitator.settle(outer_auth.payment_args(outer_sig), sender=relayer)
        assert not token.lastCallSucceeded()
        assert bytes(token.lastCallData())[:4] == keccak256(error.encode())[:4]
    assert token.balanceOf(victim) == 100 * ONE
    # The victim's payment was never spent by the reentrant attempts: it still settles normally.
    assert facilitator.settle(inner, sender=relayer).return_value == ONE


def test_settle_one_is_internal_only(facilitator: Any, sign: Sign, payer: Any, stranger: Any) -> None:
    authorization, signature = sign(payer)
    with ape.reverts(facilitator.OnlySelf, caller=stranger.address):
        facilitator.settleOne(authorization.payment_args(signature), stranger.address, 2**256 - 1, sender=stranger)


def test_constructor_rejects_permit2_without_code(project: Any, deployer: Any, stranger: Any) -> None:
    with ape.reverts(project.PaymentFacilitator.InvalidPermit2, permit2=stranger.address):
        project.PaymentFacilitator.deploy(stranger.address, sender=deployer)


def test_no_admin_surface(facilitator: Any) -> None:
    """The ABI has no owner, pause, upgrade or withdraw: nothing that could move users' funds but settle."""
    mutating = sorted(
        abi.name
        for abi in facilitator.contract_type.abi
        if abi.type == "function" and abi.stateMutability != "view" and abi.stateMutability != "pure"
    )
    assert mutating == [
        "settle",
        "settleBatch",
        "settleBatchPacked",
        "settleBatchWithPermits",
        "settleOne",
        "settlePacked",
        "settlePackedItem",
        "settleWithPermit",
    ]
