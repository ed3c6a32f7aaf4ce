"""Gas griefing by a payer with code (issue #12 H-1), on the fork with the genuine Permit2.

The payer holds an ordinary key (its x402 signature checks out off chain) but its account delegates, by EIP-7702,
to code whose ``isValidSignature`` burns all the gas it is given or reverts with a huge revert reason. Permit2
calls that code. Each batch item must be capped, the cap must really apply (63/64 rule), and the batch must copy
and log only a bounded part of an item's revert data.
"""

from __future__ import annotations

from typing import Any

import ape
import pytest

from og_settle._hex import keccak256
from tests.payments.conftest import Sign

ONE = 10**18
ITEM_GAS_LIMIT = 200_000  # PaymentFacilitator.ITEM_GAS_LIMIT (private: no getter on the hot dispatch path)
MAX_REVERT_DATA = 256  # PaymentFacilitator.MAX_REVERT_DATA


def selector(signature: str) -> bytes:
    return keccak256(signature.encode())[:4]


def delegate(chain: Any, account: Any, code_address: str) -> None:
    """EIP-7702: the account's code becomes the delegation designator 0xef0100 || address."""
    designator = "0xef0100" + code_address.removeprefix("0x").lower()
    chain.provider.make_request("anvil_setCode", [account.address, designator])


@pytest.fixture
def griefers(project: Any, deployer: Any, chain: Any, payers: list[Any], permit2_approved: None) -> list[Any]:
    """payers[3] burns all gas in isValidSignature; payers[4] reverts with 100,000 bytes. Undone after each test."""
    burner = project.GriefingWallet.deploy(0, sender=deployer)
    bomber = project.GriefingWallet.deploy(100_000, sender=deployer)
    delegate(chain, payers[3], burner.address)
    delegate(chain, payers[4], bomber.address)
    yield [payers[3], payers[4]]
    for account in (payers[3], payers[4]):
        chain.provider.make_request("anvil_setCode", [account.address, "0x"])


def test_a_griefing_payer_costs_the_batch_at_most_its_item_cap(
    facilitator: Any, sign: Sign, payers: list[Any], griefers: list[Any], relayer: Any, opg: Any, payee: Any
) -> None:
    """Ten honest payments around a gas burner and a revert bomb: the honest ones settle, the griefers fail with
    named reasons, and the batch costs at most the honest batch plus one item cap per griefer."""
    honest = [sign(payers[i % 3], amount=ONE + i) for i in range(10)]
    honest_args = [a.payment_args(s) for a, s in honest]
    honest_gas = facilitator.settleBatch.estimate_gas_cost(honest_args, sender=relayer)
    burner, bomber = (sign(griefer) for griefer in griefers)
    items = [*honest_args[:5], burner[0].payment_args(burner[1]), *honest_args[5:], bomber[0].payment_args(bomber[1])]
    before = opg.balanceOf(payee)
    tx = facilitator.settleBatch(items, sender=relayer, gas_limit=10_000_000)
    cap = ITEM_GAS_LIMIT
    assert tx.gas_used <= honest_gas + 2 * cap + 30_000, f"griefers cost {tx.gas_used - honest_gas} gas"
    results = [(bool(r.settled), bytes(r.reason)) for r in tx.return_value]
    assert [settled for settled, _ in results] == [True] * 5 + [False] + [True] * 5 + [False]
    assert results[5][1] == selector("ItemGasLimitExceeded(uint256)")
    assert opg.balanceOf(payee) - before == sum(ONE + i for i in range(10))
    failed = {event.index: bytes(event.reason) for event in tx.decode_logs(facilitator.PaymentFailed)}
    assert set(failed) == {5, 11}
    assert failed[5] == selector("ItemGasLimitExceeded(uint256)") + cap.to_bytes(32, "big")
    # The bomb's 100,000 bytes reach the batch, but only a bounded prefix is copied and logged.
    assert len(failed[11]) == MAX_REVERT_DATA


def test_the_gas_estimate_settles_every_item_and_less_gas_reverts_the_batch(
    facilitator: Any, sign: Sign, payers: list[Any], relayer: Any
) -> None:
    """An item never fails for lack of the caller's gas (63/64 rule): the node's estimate settles all items,
    and a gas limit too small for the next item's cap reverts the whole batch with a named error."""
    items = [a.payment_args(s) for a, s in (sign(payers[i % 3]) for i in range(4))]
    estimate = facilitator.settleBatch.estimate_gas_cost(items, sender=relayer)
    short = facilitator.settleBatch.call(items, sender=relayer, gas_limit=estimate)
    assert all(r.settled for r in short), "with the node's own estimate an item failed for lack of gas"
    with ape.reverts(facilitator.InsufficientGasForItem):
        facilitator.settleBatch(items, sender=relayer, gas_limit=estimate - 40_000)
    tx = facilitator.settleBatch(items, sender=relayer, gas_limit=estimate)
    assert all(r.settled for r in tx.return_value)
