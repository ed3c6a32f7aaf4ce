"""settleBatch: isolated items, per-item results and events, and the gas figures of the snapshot."""

from __future__ import annotations

from typing import Any

import ape
import pytest

from og_settle import PERMIT2_ADDRESS
from og_settle._hex import keccak256
from og_settle._permit2 import sign_authorization
from og_settle.clients import PaymentFacilitatorClient
from og_settle.clients._facilitator import pack_payment
from tests.payments.conftest import Sign
from tests.support.deployed import Kept, kept_payers
from tests.support.payments import settled_events
from tests.support.tokens import deal_opg

ONE = 10**18
SETTLE_PACKED = keccak256(b"settlePacked()")[:4]
PERMIT2_WITNESS_TRANSFER_GAS = 87_817  # Permit2's own snapshot (execution gas), FORMATS.md


def selector(signature: str) -> bytes:
    return keccak256(signature.encode())[:4]


def test_failing_items_are_isolated_and_reported(
    facilitator: Any, sign: Sign, payers: list[Any], payee: Any, relayer: Any, stranger: Any, opg: Any, now: int
) -> None:
    """Spent nonce, expiry, bad signature, insufficient balance and wrong facilitator fail alone; the rest settle."""
    spent_auth, spent_sig = sign(payers[0])
    facilitator.settle(spent_auth.payment_args(spent_sig), sender=relayer)
    items = [
        sign(payers[0], amount=ONE),  # good
        (spent_auth, spent_sig),  # spent nonce
        sign(payers[1], deadline=now - 5),  # expired
        sign(payers[2], key=payers[3].private_key),  # wrong signer
        sign(payers[3], amount=10**9 * ONE),  # more than the payer holds
        sign(payers[4], facilitator=stranger.address),  # upto for another facilitator
        sign(payers[4], amount=2 * ONE, facilitator=relayer.address),  # good upto
    ]
    expected = [
        b"\0" * 4,
        selector("NonceAlreadyUsed(address,uint256)"),
        selector("PaymentExpired(uint256,uint256)"),
        selector("InvalidSigner()"),
        selector("Error(string)"),  # Permit2's SafeTransferLib: "TRANSFER_FROM_FAILED"
        selector("UnauthorizedFacilitator(address,address)"),
        b"\0" * 4,
    ]
    payments = [auth.payment_args(sig) for auth, sig in items]
    before = opg.balanceOf(payee)
    simulated = facilitator.settleBatch.call(payments, sender=relayer)
    tx = facilitator.settleBatch(payments, sender=relayer)
    results = [(bool(r.settled), bytes(r.reason)) for r in tx.return_value]
    assert results == [(bool(i in (0, 6)), expected[i]) for i in range(len(items))]
    assert [(bool(r.settled), bytes(r.reason)) for r in simulated] == results
    failed = list(tx.decode_logs(facilitator.PaymentFailed))
    assert [e.index for e in failed] == [1, 2, 3, 4, 5]
    assert [bytes(e.reason)[:4] for e in failed] == expected[1:6]
    assert [(e.payer, e.nonce) for e in failed] == [(a.owner, a.nonce) for a, _ in items[1:6]]
    settled = settled_events(facilitator, tx)
    assert [(e.payer, e.amount) for e in settled] == [(payers[0].address, ONE), (payers[4].address, 2 * ONE)]
    assert opg.balanceOf(payee) - before == 3 * ONE
    assert opg.balanceOf(facilitator) == 0


def test_fee_on_transfer_item_fails_alone(
    facilitator: Any, sign: Sign, project: Any, deployer: Any, payers: list[Any], relayer: Any, opg: Any
) -> None:
    token = project.FeeOnTransferToken.deploy(sender=deployer)
    token.mint(payers[1], 100 * ONE, sender=deployer)
    token.approve(PERMIT2_ADDRESS, 2**256 - 1, sender=payers[1])
    good, bad = sign(payers[0]), sign(payers[1], token=token.address)
    tx = facilitator.settleBatch([a.payment_args(s) for a, s in (bad, good)], sender=relayer)
    assert [bool(r.settled) for r in tx.return_value] == [False, True]
    assert bytes(tx.return_value[0].reason) == selector("TransferShortfall(address,address,uint256,uint256)")
    assert token.balanceOf(payers[1]) == 100 * ONE


def test_carried_recipient_balance_stays_exact_across_tokens_and_failures(
    facilitator: Any, sign: Sign, project: Any, deployer: Any, payers: list[Any], payee: Any, relayer: Any, opg: Any
) -> None:
    """The batch carries the recipient's balance from one item to the next only for the same token and recipient;
    interleaving another token, a fee-on-transfer shortfall and a bad signature leaves every delta exact."""
    fee_token = project.FeeOnTransferToken.deploy(sender=deployer)
    fee_token.mint(payers[1], 100 * ONE, sender=deployer)
    fee_token.approve(PERMIT2_ADDRESS, 2**256 - 1, sender=payers[1])
    opg_before, fee_before = opg.balanceOf(payee), fee_token.balanceOf(payee)
    items = [
        sign(payers[0], amount=1 * ONE),
        sign(payers[1], token=fee_token.address, amount=5 * ONE),  # shortfall: fails alone
        sign(payers[0], amount=2 * ONE),
        sign(payers[2], amount=4 * ONE, key=payers[3].private_key),  # wrong signer: fails alone
        sign(payers[2], amount=3 * ONE),
        sign(payers[3], amount=7 * ONE, to=payers[4].address),  # another recipient in between
        sign(payers[0], amount=5 * ONE),
    ]
    tx = facilitator.settleBatch([a.payment_args(s) for a, s in items], sender=relayer)
    assert [bool(r.settled) for r in tx.return_value] == [True, False, True, False, True, True, True]
    assert opg.balanceOf(payee) - opg_before == (1 + 2 + 3 + 5) * ONE
    assert fee_token.balanceOf(payee) == fee_before
    settled = [(log.payer, log.to, log.amount) for log in settled_events(facilitator, tx)]
    assert settled == [
        (payers[0].address, payee.address, 1 * ONE),
        (payers[0].address, payee.address, 2 * ONE),
        (payers[2].address, payee.address, 3 * ONE),
        (payers[3].address, payers[4].address, 7 * ONE),
        (payers[0].address, payee.address, 5 * ONE),
    ]


def test_batch_size_bounds(facilitator: Any, sign: Sign, payer: Any, relayer: Any) -> None:
    with ape.reverts(facilitator.InvalidBatchSize, size=0):
        facilitator.settleBatch([], sender=relayer)
    auth, sig = sign(payer)
    too_many = facilitator.MAX_BATCH_SIZE() + 1
    with ape.reverts(facilitator.InvalidBatchSize, size=too_many):
        facilitator.settleBatch([auth.payment_args(sig)] * too_many, sender=relayer)


def test_duplicate_item_in_one_batch_pays_once(facilitator: Any, sign: Sign, payer: Any, relayer: Any) -> None:
    auth, sig = sign(payer)
    tx = facilitator.settleBatch([auth.payment_args(sig)] * 3, sender=relayer)
    assert [bool(r.settled) for r in tx.return_value] == [True, False, False]
    assert len(settled_events(facilitator, tx)) == 1


# --- gas ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kept_fifty_payers(chain: Any, opg: Any) -> Kept[list[Any]]:
    return kept_payers(chain, opg, b"og-settle gas payer")


@pytest.fixture
def fifty_payers(kept_fifty_payers: Kept[list[Any]]) -> list[Any]:
    """Fifty fresh payers holding OPG, each approved through ensure_opg_approval (web3 + eth-account)."""
    return kept_fifty_payers.get()


@pytest.mark.gas
def test_gas_single_exact_and_upto(
    facilitator: Any, sign: Sign, payers: list[Any], payee: Any, relayer: Any, opg: Any, chain: Any, gas_snapshot: Any
) -> None:
    """Single settles, ABI and packed, each from a payer with a cold nonce word, to a payee already holding OPG (the
    state of the x402 proxies' figures: issue #14's target is the packed form at or below them)."""
    deal_opg(chain.provider, opg, payee.address, ONE)  # a provider's address already holds OPG
    auth, sig = sign(payers[0])
    exact = gas_snapshot.record(
        "PaymentFacilitator.settle(exact)", facilitator.settle(auth.payment_args(sig), sender=relayer).gas_used
    )
    auth, sig = sign(payers[1], amount=2 * ONE, facilitator=relayer.address)
    upto = gas_snapshot.record(
        "PaymentFacilitator.settle(upto)",
        facilitator.settle(auth.payment_args(sig, amount=ONE), sender=relayer).gas_used,
    )
    auth, sig = sign(payers[2])
    packed_exact = gas_snapshot.record(
        "PaymentFacilitator.settlePacked(exact)",
        relayer.transfer(facilitator.address, 0, data=SETTLE_PACKED + pack_payment(auth.payment_args(sig))).gas_used,
    )
    auth, sig = sign(payers[3], amount=2 * ONE, facilitator=relayer.address)
    packed_upto = gas_snapshot.record(
        "PaymentFacilitator.settlePacked(upto)",
        relayer.transfer(
            facilitator.address, 0, data=SETTLE_PACKED + pack_payment(auth.payment_args(sig, amount=ONE))
        ).gas_used,
    )
    print(
        f"\nsingle exact {exact}, single upto {upto}; packed exact {packed_exact}, packed upto {packed_upto} "
        f"(Permit2 witness transfer alone: {PERMIT2_WITNESS_TRANSFER_GAS})"
    )
    for figure in (exact, upto, packed_exact, packed_upto):
        assert figure < PERMIT2_WITNESS_TRANSFER_GAS + 21_000 + 15_000
    assert packed_exact < exact and packed_upto < upto


def _exact_batch(facilitator: Any, signers: list[Any], opg: Any, payee: Any, chain_id: int, now: int) -> list[Any]:
    """Fifty exact payments cycling through ``signers`` (eth-account keys), each with a fresh random-like nonce."""
    from og_settle._permit2 import new_authorization

    payments = []
    for i in range(50):
        account = signers[i % len(signers)]
        auth = new_authorization(
            owner=account.address,
            token=opg.address,
            amount=ONE + i,
            spender=facilitator.address,
            to=payee.address,
            max_timeout_seconds=3600,
            now=now,
            nonce=int.from_bytes(keccak256(b"gas nonce %d" % i), "big"),
        )
        payments.append(auth.payment_args(sign_authorization(auth, account.key, chain_id)))
    return payments


@pytest.mark.gas
@pytest.mark.parametrize("packed", [False, True], ids=["abi", "packed"])
@pytest.mark.parametrize("distinct", [50, 5], ids=["50-payers", "5-payers"])
def test_gas_batch_of_50(
    facilitator: Any,
    fifty_payers: list[Any],
    payee: Any,
    relayer: Any,
    opg: Any,
    chain: Any,
    chain_id: int,
    gas_snapshot: Any,
    now: int,
    distinct: int,
    packed: bool,
) -> None:
    """Fifty exact payments with fresh random nonces (each its own Permit2 bitmap word) from 50 or 5 payers.

    Issue 4's target, at most 60k gas per payment, is asserted for both: repeat payers (5 payers, 10 payments
    each) and the worst case of fifty first-time payers, who each add cold balance, allowance and account access
    inside Permit2 and the token (about 10.9k more per payment). The per-item gas cap against griefing payers
    (issue #12 H-1: check that the cap can apply, capped call, exhaustion check) adds about 55 gas per payment,
    hence the 100 gas of slack.
    """
    deal_opg(chain.provider, opg, payee.address, ONE)  # a provider's address already holds OPG
    payments = _exact_batch(facilitator, fifty_payers[:distinct], opg, payee, chain_id, now)
    before = opg.balanceOf(payee)
    if packed:
        call = PaymentFacilitatorClient(chain.provider.web3, facilitator.address).settle_batch_call(payments)
        tx = relayer.transfer(facilitator.address, 0, data=call.data)
        assert len(settled_events(facilitator, tx)) == 50
        name = f"PaymentFacilitator.settleBatchPacked(50 exact, {distinct} payers)"
    else:
        tx = facilitator.settleBatch(payments, sender=relayer)
        assert all(r.settled for r in tx.return_value)
        name = f"PaymentFacilitator.settleBatch(50 exact, {distinct} payers)"
    assert opg.balanceOf(payee) - before == sum(ONE + i for i in range(50))
    per_payment = gas_snapshot.record(f"{name} per payment", tx.gas_used // 50)
    gas_snapshot.record(f"{name} total", tx.gas_used)
    print(f"\n{name}: total {tx.gas_used}, per payment {per_payment}")
    assert per_payment <= 60_100
