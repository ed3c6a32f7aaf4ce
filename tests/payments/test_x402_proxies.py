"""The canonical x402 Permit2 proxies as stock clients use them: on the replica these are og-settle's stand-ins
(``contracts/replica/StandInX402*Proxy.sol``); on a fork of the real chain (``BASE_SEPOLIA_RPC_URL``) the same
tests run against the originals.

Payloads are signed exactly as the stock SDK signs them (``tests/support/stock.py``), and every documented
failure reverts with the original's named error, in the original's check order.
"""

from __future__ import annotations

from typing import Any

import ape
import pytest
from eth_utils import keccak

from og_settle import PERMIT2_ADDRESS, X402_EXACT_PERMIT2_PROXY, X402_UPTO_PERMIT2_PROXY
from tests.support.stock import StockPayment, stock_payment
from tests.support.tokens import deal_opg

ONE = 10**18
ZERO = "0x" + "00" * 20
EXACT_TYPE_STRING = (
    "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,uint256 validAfter)"
)
UPTO_TYPE_STRING = (
    "Witness witness)TokenPermissions(address token,uint256 amount)"
    "Witness(address to,address facilitator,uint256 validAfter)"
)
REENTRANCY_GUARD_SLOT = 0x9B779B17422D0DF92223018B32B4D1FA46E071723D6817E2486D003BECC55F00


@pytest.fixture(scope="module")
def exact_proxy(project: Any) -> Any:
    return project.IX402ExactPermit2Proxy.at(X402_EXACT_PERMIT2_PROXY)


@pytest.fixture(scope="module")
def upto_proxy(project: Any) -> Any:
    return project.IX402UptoPermit2Proxy.at(X402_UPTO_PERMIT2_PROXY)


@pytest.fixture
def pay(opg: Any, payee: Any, chain_id: int, now: int, permit2_approved: None) -> Any:
    def make(account: Any, **fields: Any) -> StockPayment:
        values: dict[str, Any] = {"chain_id": chain_id, "token": opg.address, "amount": ONE, "to": payee.address}
        values.update(fields)
        return stock_payment(account.private_key, now=now, **values)

    return make


def nonce_spent(permit2: Any, owner: str, nonce: int) -> bool:
    return bool((permit2.nonceBitmap(owner, nonce >> 8) >> (nonce & 0xFF)) & 1)


def test_views_match_the_originals(exact_proxy: Any, upto_proxy: Any) -> None:
    assert exact_proxy.PERMIT2() == PERMIT2_ADDRESS == upto_proxy.PERMIT2()
    assert exact_proxy.WITNESS_TYPE_STRING() == EXACT_TYPE_STRING
    assert upto_proxy.WITNESS_TYPE_STRING() == UPTO_TYPE_STRING
    assert exact_proxy.WITNESS_TYPEHASH() == keccak(text="Witness(address to,uint256 validAfter)")
    assert upto_proxy.WITNESS_TYPEHASH() == keccak(text="Witness(address to,address facilitator,uint256 validAfter)")


@pytest.mark.replica_only
def test_stand_ins_sit_at_the_canonical_addresses_with_a_constructed_guard(chain: Any) -> None:
    for address in (X402_EXACT_PERMIT2_PROXY, X402_UPTO_PERMIT2_PROXY):
        assert len(chain.provider.get_code(address)) > 0
        raw = chain.provider.make_request("eth_getStorageAt", [address, hex(REENTRANCY_GUARD_SLOT), "latest"])
        assert int(raw if isinstance(raw, str) else raw.hex(), 16) == 1  # NOT_ENTERED, as after a constructor


def test_stock_exact_payload_settles_by_anyone(
    exact_proxy: Any, pay: Any, payers: list[Any], payee: Any, stranger: Any, opg: Any, permit2: Any
) -> None:
    payment = pay(payers[0], amount=3 * ONE)
    before = (opg.balanceOf(payers[0]), opg.balanceOf(payee))
    tx = exact_proxy.settle(*payment.exact_args(), sender=stranger)
    assert (opg.balanceOf(payers[0]), opg.balanceOf(payee)) == (before[0] - 3 * ONE, before[1] + 3 * ONE)
    assert len(tx.decode_logs(exact_proxy.Settled)) == 1
    assert nonce_spent(permit2, payers[0].address, payment.nonce)
    with ape.reverts(permit2.InvalidNonce):  # replay
        exact_proxy.settle(*payment.exact_args(), sender=stranger)


def test_stock_upto_payload_settles_a_partial_amount_by_its_facilitator(
    upto_proxy: Any, pay: Any, payers: list[Any], payee: Any, relayer: Any, opg: Any
) -> None:
    payment = pay(payers[1], scheme="upto", amount=5 * ONE, facilitator=relayer.address)
    before = opg.balanceOf(payee)
    tx = upto_proxy.settle(*payment.upto_args(2 * ONE), sender=relayer)
    assert opg.balanceOf(payee) == before + 2 * ONE
    assert len(tx.decode_logs(upto_proxy.Settled)) == 1


def test_exact_failures_in_the_originals_order(
    exact_proxy: Any, pay: Any, payers: list[Any], stranger: Any, permit2: Any, now: int
) -> None:
    with ape.reverts(exact_proxy.InvalidAmount):
        exact_proxy.settle(*pay(payers[0], amount=0).exact_args(), sender=stranger)
    payment = pay(payers[0])
    permit, owner, witness, signature = payment.exact_args()
    with ape.reverts(exact_proxy.InvalidOwner):
        exact_proxy.settle(permit, ZERO, witness, signature, sender=stranger)
    with ape.reverts(exact_proxy.InvalidDestination):
        exact_proxy.settle(*pay(payers[0], to=ZERO).exact_args(), sender=stranger)
    with ape.reverts(exact_proxy.PaymentTooEarly):
        exact_proxy.settle(*pay(payers[0], valid_after=now + 3600).exact_args(), sender=stranger)
    with ape.reverts(permit2.SignatureExpired, signatureDeadline=now - 1):
        exact_proxy.settle(*pay(payers[0], deadline=now - 1).exact_args(), sender=stranger)
    with ape.reverts(permit2.InvalidSigner):
        exact_proxy.settle(*pay(payers[0], sign_key=payers[1].private_key).exact_args(), sender=stranger)
    # A tampered witness (another recipient) no longer matches the signature.
    with ape.reverts(permit2.InvalidSigner):
        exact_proxy.settle(permit, owner, (stranger.address, 0), signature, sender=stranger)
    # An upto signature is not an exact one (spender and witness type differ), even with the same fields.
    upto = pay(payers[0], scheme="upto", facilitator=stranger.address)
    with ape.reverts(permit2.InvalidSigner):
        exact_proxy.settle(upto.permit(), owner, (upto.to, 0), upto.signature, sender=stranger)
    # Several faults at once: the first check in the originals' order wins.
    with ape.reverts(exact_proxy.InvalidAmount):
        exact_proxy.settle(*pay(payers[0], amount=0, to=ZERO, valid_after=now + 10).exact_args(), sender=stranger)


def test_upto_failures_in_the_originals_order(
    upto_proxy: Any, pay: Any, payers: list[Any], relayer: Any, stranger: Any, now: int
) -> None:
    payment = pay(payers[1], scheme="upto", amount=5 * ONE, facilitator=relayer.address)
    with ape.reverts(upto_proxy.AmountExceedsPermitted):
        upto_proxy.settle(*payment.upto_args(5 * ONE + 1), sender=relayer)
    with ape.reverts(upto_proxy.InvalidAmount):
        upto_proxy.settle(*payment.upto_args(0), sender=relayer)
    with ape.reverts(upto_proxy.UnauthorizedFacilitator):
        upto_proxy.settle(*payment.upto_args(ONE), sender=stranger)
    # The amount bound comes before the caller check, the zero check before it too.
    with ape.reverts(upto_proxy.AmountExceedsPermitted):
        upto_proxy.settle(*payment.upto_args(6 * ONE), sender=stranger)
    with ape.reverts(upto_proxy.InvalidAmount):
        upto_proxy.settle(*payment.upto_args(0), sender=stranger)
    early = pay(payers[1], scheme="upto", amount=ONE, facilitator=relayer.address, valid_after=now + 3600)
    with ape.reverts(upto_proxy.PaymentTooEarly):
        upto_proxy.settle(*early.upto_args(ONE), sender=relayer)


def test_settle_with_permit(
    exact_proxy: Any, upto_proxy: Any, pay: Any, payers: list[Any], relayer: Any, stranger: Any, opg: Any
) -> None:
    """OPG has no EIP-2612 ``permit``: the failed permit is reported by an event and the existing Permit2
    approval settles; a permit value other than the permitted amount reverts first."""
    payment = pay(payers[2], amount=2 * ONE)
    with ape.reverts(exact_proxy.Permit2612AmountMismatch):
        exact_proxy.settleWithPermit((ONE, 0, b"\0" * 32, b"\0" * 32, 27), *payment.exact_args(), sender=stranger)
    tx = exact_proxy.settleWithPermit((2 * ONE, 0, b"\0" * 32, b"\0" * 32, 27), *payment.exact_args(), sender=stranger)
    assert len(tx.decode_logs(exact_proxy.SettledWithPermit)) == 1
    failed = tx.decode_logs(exact_proxy.EIP2612PermitFailedWithData)
    assert [(e.token, e.owner) for e in failed] == [(opg.address, payers[2].address)]

    upto = pay(payers[2], scheme="upto", amount=3 * ONE, facilitator=relayer.address)
    permit2612 = (3 * ONE, 0, b"\0" * 32, b"\0" * 32, 27)
    with ape.reverts(upto_proxy.AmountExceedsPermitted):
        upto_proxy.settleWithPermit(permit2612, *upto.upto_args(4 * ONE), sender=relayer)
    tx = upto_proxy.settleWithPermit(permit2612, *upto.upto_args(ONE), sender=relayer)
    assert len(tx.decode_logs(upto_proxy.SettledWithPermit)) == 1


@pytest.mark.gas
@pytest.mark.replica_only
def test_gas_single_stock_exact_and_upto(
    exact_proxy: Any,
    upto_proxy: Any,
    pay: Any,
    payers: list[Any],
    payee: Any,
    relayer: Any,
    opg: Any,
    chain: Any,
    gas_snapshot: Any,
) -> None:
    """The stand-ins' single-settle figures (cold nonce word, payee already holding OPG), recorded to compare with
    the originals' as FORMATS.md measured them (exact 82,551, upto 83,678); the stand-ins are not their code."""
    deal_opg(chain.provider, opg, payee.address, ONE)
    exact = exact_proxy.settle(*pay(payers[3]).exact_args(), sender=relayer).gas_used
    upto_payment = pay(payers[4], scheme="upto", amount=2 * ONE, facilitator=relayer.address)
    upto = upto_proxy.settle(*upto_payment.upto_args(ONE), sender=relayer).gas_used
    gas_snapshot.record("StandInX402ExactProxy.settle", exact)
    gas_snapshot.record("StandInX402UptoProxy.settle", upto)
    print(f"\nstand-in proxies, single settle: exact {exact}, upto {upto} (originals: 82,551 / 83,678)")
