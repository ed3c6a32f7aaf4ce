"""The packed calldata forms: ``settlePacked()`` / ``settleBatchPacked()`` (what og-settle's client sends), their
decoding against the ABI form's, malformed encodings, and the client's encoder."""

from __future__ import annotations

from typing import Any

import ape
import pytest

from og_settle import InvalidInput
from og_settle._hex import keccak256
from og_settle.clients import PaymentFacilitatorClient
from og_settle.clients._facilitator import pack_payment
from tests.payments.conftest import Sign
from tests.support.payments import settled_events

ONE = 10**18
REQUEST_HASH = bytes.fromhex("cd" * 32)
SETTLE_PACKED = keccak256(b"settlePacked()")[:4]


def selector(signature: str) -> bytes:
    return keccak256(signature.encode())[:4]


def client(facilitator: Any, chain: Any) -> PaymentFacilitatorClient:
    return PaymentFacilitatorClient(chain.provider.web3, facilitator.address)


@pytest.mark.parametrize("upto", [False, True], ids=["exact", "upto"])
@pytest.mark.parametrize("bound", [False, True], ids=["unbound", "bound"])
def test_every_scheme_decodes_to_the_signed_digest_and_settles(
    facilitator: Any, sign: Sign, payer: Any, payee: Any, relayer: Any, opg: Any, upto: bool, bound: bool
) -> None:
    fields: dict[str, Any] = {"amount": 3 * ONE}
    if upto:
        fields["facilitator"] = relayer.address
    if bound:
        fields["request_hash"] = REQUEST_HASH
    authorization, signature = sign(payer, **fields)
    payment = authorization.payment_args(signature, amount=2 * ONE if upto else None)
    packed = pack_payment(payment)
    assert len(packed) == 121 + 36 * upto + 32 * bound + 65
    assert bytes(facilitator.permitDigestPacked(packed)) == bytes(facilitator.permitDigest(payment))
    before = opg.balanceOf(payee)
    tx = relayer.transfer(facilitator.address, 0, data=SETTLE_PACKED + packed)
    [event] = settled_events(facilitator, tx)
    charged = 2 * ONE if upto else 3 * ONE
    assert opg.balanceOf(payee) - before == charged
    assert (event.payer, event.to, event.token, event.amount, event.nonce) == (
        payer.address,
        payee.address,
        opg.address,
        charged,
        authorization.nonce,
    )
    assert (event.scheme, event.request_hash) == (int(authorization.scheme), REQUEST_HASH if bound else bytes(32))
    assert event.mismatch(payment) is None


def test_malformed_packed_payments_are_named(facilitator: Any, sign: Sign, payer: Any, relayer: Any) -> None:
    authorization, signature = sign(payer)
    packed = pack_payment(authorization.payment_args(signature))
    with ape.reverts(facilitator.MalformedPackedPayment, scheme=4, length=len(packed)):
        facilitator.permitDigestPacked(b"\x04" + packed[1:])
    with ape.reverts(facilitator.MalformedPackedPayment, scheme=0, length=120):
        relayer.transfer(facilitator.address, 0, data=SETTLE_PACKED + packed[:120])
    # An upto payment cut after its exact-sized fields lacks its facilitator and amount.
    with ape.reverts(facilitator.MalformedPackedPayment, scheme=1, length=150):
        facilitator.permitDigestPacked(b"\x01" + packed[1:150])
    # Without the signature, it is the EOA's signature check that answers.
    with ape.reverts(facilitator.MalformedSignature, length=0):
        relayer.transfer(facilitator.address, 0, data=SETTLE_PACKED + packed[:121])


def test_the_encoder_refuses_what_a_scheme_cannot_carry(sign: Sign, payer: Any, relayer: Any) -> None:
    authorization, signature = sign(payer, amount=ONE)
    with pytest.raises(InvalidInput, match="permitted"):
        pack_payment(authorization.payment_args(signature, amount=ONE - 1))
    args = list(authorization.payment_args(signature))
    args[4] = relayer.address
    with pytest.raises(InvalidInput, match="facilitator"):
        pack_payment(args)
    args = list(authorization.payment_args(signature))
    args[6] = REQUEST_HASH
    with pytest.raises(InvalidInput, match="requestHash"):
        pack_payment(args)
    args[0] = 4
    with pytest.raises(InvalidInput, match="scheme"):
        pack_payment(args)


def test_a_payment_too_wide_for_the_packed_form_goes_through_the_abi_form(
    facilitator: Any, sign: Sign, payer: Any, payee: Any, relayer: Any, opg: Any, chain: Any, now: int
) -> None:
    """A deadline past 2**48 (a "never expires" permit) or an amount past 2**128 has no packed form: the encoder
    says so, and the client settles such a payment (alone or in a batch) through the ABI entry points."""
    far, far_sig = sign(payer, deadline=2**256 - 1)
    with pytest.raises(InvalidInput, match="deadline"):
        pack_payment(far.payment_args(far_sig))
    huge, huge_sig = sign(payer, amount=2**128, facilitator=relayer.address)
    with pytest.raises(InvalidInput, match="permitted amount"):
        pack_payment(huge.payment_args(huge_sig, amount=ONE))
    facilitator_client = client(facilitator, chain)
    near, near_sig = sign(payer)
    batch = facilitator_client.settle_batch_call([far.payment_args(far_sig), near.payment_args(near_sig)])
    assert batch.data[:4] == selector(
        "settleBatch((uint8,address,((address,uint256),uint256,uint256),address,address,uint256,bytes32,uint256,bytes)[])"
    )
    call = facilitator_client.settle_call(huge.payment_args(huge_sig, amount=ONE))
    assert call.data[:4] == facilitator.settle.encode_input(huge.payment_args(huge_sig, amount=ONE))[:4]
    before = opg.balanceOf(payee)
    tx = relayer.transfer(facilitator.address, 0, data=batch.data)
    assert [e.nonce for e in settled_events(facilitator, tx)] == [far.nonce, near.nonce]
    assert opg.balanceOf(payee) - before == 2 * ONE


def test_a_settled_amount_is_below_2_to_the_128(facilitator: Any, sign: Sign, payer: Any, relayer: Any) -> None:
    """The event and the packed forms carry amounts in 16 bytes; the ABI form refuses a larger one by name."""
    authorization, signature = sign(payer, amount=2**129, facilitator=relayer.address)
    with ape.reverts(facilitator.AmountTooLarge, amount=2**128):
        facilitator.settle(authorization.payment_args(signature, amount=2**128), sender=relayer)


def test_packed_batch_isolates_failures_and_reports_them(
    facilitator: Any, sign: Sign, payers: list[Any], payee: Any, relayer: Any, stranger: Any, opg: Any, chain: Any
) -> None:
    items = [
        sign(payers[0], amount=ONE),
        sign(payers[1], key=payers[2].private_key),  # wrong signer
        sign(payers[3], facilitator=stranger.address),  # upto for another facilitator
        sign(payers[4], amount=2 * ONE, facilitator=relayer.address, request_hash=REQUEST_HASH),
    ]
    payments = [auth.payment_args(sig) for auth, sig in items]
    facilitator_client = client(facilitator, chain)
    call = facilitator_client.settle_batch_call(payments)
    before = opg.balanceOf(payee)
    tx = relayer.transfer(facilitator.address, 0, data=call.data)
    assert opg.balanceOf(payee) - before == 3 * ONE
    failed = list(tx.decode_logs(facilitator.PaymentFailed))
    assert [(e.index, bytes(e.reason)[:4]) for e in failed] == [
        (1, selector("InvalidSigner()")),
        (2, selector("UnauthorizedFacilitator(address,address)")),
    ]
    assert [(e.payer, e.nonce) for e in failed] == [(a.owner, a.nonce) for a, _ in items[1:3]]
    outcomes = facilitator_client.batch_outcomes(tx, payments)
    assert [o.settled for o in outcomes] == [True, False, False, True]
    assert [o.reason for o in outcomes] == [None, "invalid_permit2_signature", "upto_facilitator_mismatch", None]
    mask = int.from_bytes(
        bytes(chain.provider.web3.eth.call({"from": relayer.address, "to": facilitator.address, "data": call.data})),
        "big",
    )
    assert mask == 0  # every item is now spent or bad: a replay settles nothing


def test_packed_batch_framing(facilitator: Any, sign: Sign, payer: Any, relayer: Any) -> None:
    batch_selector = selector("settleBatchPacked()")
    with ape.reverts(facilitator.InvalidBatchSize, size=0):
        relayer.transfer(facilitator.address, 0, data=batch_selector)
    authorization, signature = sign(payer)
    item = pack_payment(authorization.payment_args(signature))
    with ape.reverts(facilitator.MalformedPackedBatch, offset=4):
        relayer.transfer(facilitator.address, 0, data=batch_selector + (len(item) + 1).to_bytes(2, "big") + item)
    # Empty items (each fails alone, cheaply) past the limit: the batch reverts at the first one too many.
    too_many = b"\0\0" * (facilitator.MAX_BATCH_SIZE() + 1)
    with ape.reverts(facilitator.InvalidBatchSize, size=facilitator.MAX_BATCH_SIZE() + 1):
        relayer.transfer(facilitator.address, 0, data=batch_selector + too_many)


def test_settle_packed_item_is_internal_only(facilitator: Any, sign: Sign, payer: Any, stranger: Any) -> None:
    authorization, signature = sign(payer)
    data = selector("settlePackedItem()") + bytes(64) + pack_payment(authorization.payment_args(signature))
    with ape.reverts(facilitator.OnlySelf, caller=stranger.address):
        stranger.transfer(facilitator.address, 0, data=data)
