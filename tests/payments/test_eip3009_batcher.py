"""Eip3009Batcher: batches of EIP-3009 ``transferWithAuthorization`` payments (USDC), each item isolated.

Hostile cases as for the Permit2 batcher: a replayed item or batch, an authorisation someone else submitted first
(front-running: that payment still reaches the payee, by the other transaction), a token without code, callers
without the settler role, a payer whose ERC-1271 check burns all its gas, and a caller sending too little gas.
Every case checks balances and ``authorizationState`` on chain. The gas figures go in ``gas-snapshot.json``.
"""

from __future__ import annotations

import secrets
from typing import Any

import ape
import pytest
from eth_account import Account
from eth_utils import keccak

from og_settle._eip712 import TokenDomain
from og_settle._eip3009 import Eip3009Authorization, sign_eip3009
from og_settle._networks import BASE, BASE_SEPOLIA
from tests.support.deployed import Kept, kept_settled_by
from tests.support.tokens import deal_opg

ITEM_GAS = 200_000
FUNDS = 1_000 * 10**6
PRICE = 250_000
SETTLER_ROLE = keccak(text="SETTLER_ROLE")


@pytest.fixture(scope="module")
def kept_batcher(project: Any, deployer: Any, relayer: Any, chain: Any) -> Kept[Any]:
    def deploy() -> Any:
        return project.Eip3009Batcher.deploy(deployer.address, sender=deployer)

    return kept_settled_by(chain, deploy, admin=deployer, settler=relayer)


@pytest.fixture
def batcher(kept_batcher: Kept[Any]) -> Any:
    """The batcher, deployed once per module (again if a snapshot revert took it away: tests.support.deployed)."""
    return kept_batcher.get()


@pytest.fixture
def domain(usdc: Any, chain_id: int) -> TokenDomain:
    asset = (BASE if chain_id == BASE.chain_id else BASE_SEPOLIA).asset("USDC")
    assert asset.eip712_name is not None and asset.eip712_version is not None
    return TokenDomain(asset.eip712_name, asset.eip712_version, chain_id, usdc.address)


@pytest.fixture
def funded(usdc: Any, payers: list[Any], chain: Any) -> list[Any]:
    for account in payers:
        deal_opg(chain.provider, usdc, account.address, FUNDS)
    return payers


@pytest.fixture
def item(domain: TokenDomain, payee: Any, chain: Any) -> Any:
    """``item(key or account, **fields) -> (authorization tuple for the batcher, authorization)``."""

    def make(signer: Any, *, owner: str | None = None, **fields: Any) -> tuple[tuple[Any, ...], Eip3009Authorization]:
        key = getattr(signer, "private_key", signer)
        values: dict[str, Any] = {
            "owner": owner or Account.from_key(key).address,
            "to": payee.address,
            "value": PRICE,
            "valid_after": 0,
            "valid_before": int(chain.pending_timestamp) + 600,
            "nonce": secrets.token_bytes(32),
        }
        values.update(fields)
        auth = Eip3009Authorization(**values)
        signature = sign_eip3009(auth, key, domain)
        row = (auth.owner, auth.to, auth.value, auth.valid_after, auth.valid_before, auth.nonce, signature)
        return row, auth

    return make


def _failures(tx: Any, batcher: Any) -> dict[int, bytes]:
    return {int(log.event_arguments["index"]): bytes(log.reason) for log in tx.decode_logs(batcher.PaymentFailed)}


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def test_each_item_settles_or_fails_alone(
    batcher: Any, usdc: Any, funded: list[Any], payee: Any, relayer: Any, stranger: Any, item: Any, chain: Any
) -> None:
    good = [item(p) for p in funded[:3]]
    used, used_auth = item(funded[3])
    usdc.transferWithAuthorization(*used, sender=stranger)  # spent before the batch
    expired, _ = item(funded[4], valid_before=int(chain.pending_timestamp) - 1)
    before = usdc.balanceOf(payee)

    tx = batcher.settle(usdc.address, ITEM_GAS, [good[0][0], used, good[1][0], expired, good[2][0]], sender=relayer)

    assert tx.return_value == 0b10101
    failures = _failures(tx, batcher)
    assert sorted(failures) == [1, 3]
    assert failures[1][:4] == _selector("AuthorizationUsedOrCanceled(address,bytes32)")
    assert failures[3][:4] == _selector("AuthorizationExpired(uint256,uint256)")
    assert usdc.balanceOf(payee) == before + 3 * PRICE
    assert all(usdc.authorizationState(auth.owner, auth.nonce) for _, auth in good)
    assert usdc.authorizationState(used_auth.owner, used_auth.nonce)


def test_a_front_run_item_fails_alone_and_its_payment_still_landed(
    batcher: Any, usdc: Any, funded: list[Any], payee: Any, relayer: Any, stranger: Any, item: Any
) -> None:
    """Someone submits one of the signed authorisations first (the mempool shows them): the payee is still paid,
    by that transaction, and the batch settles the rest."""
    rows = [item(p) for p in funded[:3]]
    before = usdc.balanceOf(payee)
    usdc.transferWithAuthorization(*rows[1][0], sender=stranger)  # the front-runner
    tx = batcher.settle(usdc.address, ITEM_GAS, [row for row, _ in rows], sender=relayer)
    assert tx.return_value == 0b101
    assert list(_failures(tx, batcher)) == [1]
    assert usdc.balanceOf(payee) == before + 3 * PRICE  # all three payments arrived, one by the front-runner


def test_a_replayed_batch_moves_nothing(
    batcher: Any, usdc: Any, funded: list[Any], payee: Any, relayer: Any, item: Any
) -> None:
    rows = [item(p)[0] for p in funded[:3]]
    batcher.settle(usdc.address, ITEM_GAS, rows, sender=relayer)
    before = [usdc.balanceOf(payee), *(usdc.balanceOf(p) for p in funded[:3])]
    tx = batcher.settle(usdc.address, ITEM_GAS, rows, sender=relayer)
    assert tx.return_value == 0 and sorted(_failures(tx, batcher)) == [0, 1, 2]
    assert [usdc.balanceOf(payee), *(usdc.balanceOf(p) for p in funded[:3])] == before


def test_only_the_settler_may_settle_and_only_the_batcher_may_settle_an_item(
    batcher: Any, usdc: Any, funded: list[Any], payee: Any, stranger: Any, item: Any
) -> None:
    row, auth = item(funded[0])
    with ape.reverts(batcher.AccessControlUnauthorizedAccount, account=stranger.address, neededRole=SETTLER_ROLE):
        batcher.settle(usdc.address, ITEM_GAS, [row], sender=stranger)
    with ape.reverts(batcher.OnlySelf, caller=stranger.address):
        batcher.settleItem(usdc.address, row, sender=stranger)
    assert not usdc.authorizationState(auth.owner, auth.nonce)


def test_a_token_without_code_and_an_empty_batch_are_refused(
    batcher: Any, funded: list[Any], relayer: Any, stranger: Any, item: Any, usdc: Any
) -> None:
    row, _ = item(funded[0])
    with ape.reverts(batcher.TokenWithoutCode, token=stranger.address):
        batcher.settle(stranger.address, ITEM_GAS, [row], sender=relayer)
    with ape.reverts(batcher.EmptyBatch):
        batcher.settle(usdc.address, ITEM_GAS, [], sender=relayer)


def test_a_gas_burning_contract_payer_fails_alone_within_its_cap(
    batcher: Any,
    project: Any,
    deployer: Any,
    usdc: Any,
    funded: list[Any],
    payee: Any,
    relayer: Any,
    item: Any,
    chain: Any,
) -> None:
    wallet = project.GasBurningWallet.deploy(sender=deployer)
    deal_opg(chain.provider, usdc, wallet.address, FUNDS)
    burner, _ = item(funded[0], owner=wallet.address)  # any signature: the token asks the wallet (ERC-1271)
    rows = [item(funded[1])[0], burner, item(funded[2])[0]]
    before = usdc.balanceOf(payee)
    tx = batcher.settle(usdc.address, ITEM_GAS, rows, sender=relayer, gas=1_500_000)
    assert tx.return_value == 0b101
    failures = _failures(tx, batcher)
    # The wallet's loop ate the 63/64 the token passed it; with the 1/64 left the token refuses the signature.
    assert failures[1][:4] == _selector("InvalidSignature(address)")
    assert usdc.balanceOf(payee) == before + 2 * PRICE and usdc.balanceOf(wallet) == FUNDS
    assert tx.gas_used < ITEM_GAS + 2 * 80_000  # the burner cost its cap, no more


def test_too_little_gas_reverts_the_whole_batch_instead_of_blaming_an_item(
    batcher: Any, usdc: Any, funded: list[Any], payee: Any, relayer: Any, item: Any
) -> None:
    rows = [item(p)[0] for p in funded[:2]]
    before = usdc.balanceOf(payee)
    with ape.reverts(batcher.InsufficientGasForItem, index=0):
        batcher.settle(usdc.address, 1_000_000, rows, sender=relayer, gas=600_000)
    assert usdc.balanceOf(payee) == before


# --- gas ------------------------------------------------------------------------------------------------------------


@pytest.mark.gas
def test_gas_single_and_batched_eip3009(
    batcher: Any, usdc: Any, payee: Any, relayer: Any, item: Any, chain: Any, gas_snapshot: Any
) -> None:
    """x402 publishes no EIP-3009 figure to compare with; these are og-settle's own, on the replica's USDC."""
    keys = [keccak(text=f"og-settle eip3009 gas payer {i}") for i in range(51)]
    for key in keys:
        deal_opg(chain.provider, usdc, Account.from_key(key).address, FUNDS)
    single, _ = item(keys[50])
    tx = usdc.transferWithAuthorization(*single[:6], single[6][64], single[6][:32], single[6][32:64], sender=relayer)
    alone = gas_snapshot.record("ReplicaUSDC.transferWithAuthorization (EIP-3009 exact, single)", tx.gas_used)

    before = usdc.balanceOf(payee)
    rows = [item(key)[0] for key in keys[:50]]
    tx = batcher.settle(usdc.address, ITEM_GAS, rows, sender=relayer)
    assert tx.return_value == 2**50 - 1 and usdc.balanceOf(payee) == before + 50 * PRICE
    per_payment = gas_snapshot.record("Eip3009Batcher.settle(50 EIP-3009, 50 payers) per payment", tx.gas_used // 50)
    gas_snapshot.record("Eip3009Batcher.settle(50 EIP-3009, 50 payers) total", tx.gas_used)
    assert per_payment < alone  # batching saves each payment the 21,000 base cost, less the isolation's overhead
