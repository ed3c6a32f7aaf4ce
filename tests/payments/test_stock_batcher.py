"""StockPaymentBatcher: stock x402 payloads (signed as the SDK signs them) settled in batches through the canonical
proxies, each item isolated and gas-capped; the typed client's encoding and per-item x402 reasons; hostile payers,
tokens and callers; and the batch-of-50 gas figure of the snapshot."""

from __future__ import annotations

from typing import Any

import ape
import pytest
from eth_abi.abi import encode
from eth_account import Account
from eth_utils import keccak
from hypothesis import given
from hypothesis import strategies as st

from og_settle import (
    PERMIT2_ADDRESS,
    X402_EXACT_PERMIT2_PROXY,
    X402_UPTO_PERMIT2_PROXY,
    InvalidInput,
    ensure_opg_approval,
)
from og_settle.clients import (
    Receipt,
    StockPayment,
    StockPaymentBatcherClient,
    encode_batch,
    exact_proxy_call,
    group_batches,
)
from tests.support.deployed import Kept, kept_payers, kept_settled_by
from tests.support.stock import as_x402, stock_payment
from tests.support.tokens import deal_opg

ONE = 10**18
ITEM_GAS = 200_000
SETTLER_ROLE = keccak(text="SETTLER_ROLE")


@pytest.fixture(scope="module")
def kept_batcher(project: Any, deployer: Any, relayer: Any, chain: Any) -> Kept[Any]:
    def deploy() -> Any:
        exact, upto = X402_EXACT_PERMIT2_PROXY, X402_UPTO_PERMIT2_PROXY
        return project.StockPaymentBatcher.deploy(deployer.address, exact, upto, sender=deployer)

    return kept_settled_by(chain, deploy, admin=deployer, settler=relayer)


@pytest.fixture
def batcher(kept_batcher: Kept[Any]) -> Any:
    """The batcher, deployed once per module (again if a snapshot revert took it away: tests.support.deployed)."""
    return kept_batcher.get()


@pytest.fixture
def client(batcher: Any, chain: Any) -> StockPaymentBatcherClient:
    return StockPaymentBatcherClient(chain.provider.web3, batcher.address)


@pytest.fixture
def stock(opg: Any, payee: Any, chain_id: int, now: int, permit2_approved: None) -> Any:
    """``stock(key, charge=None, **fields) -> StockPayment``: an SDK-format payload, parsed by og-settle's x402
    types and reduced to what the batcher settles (``charge`` is the upto ``paymentRequirements.amount``)."""

    def make(key: Any, *, charge: int | None = None, **fields: Any) -> StockPayment:
        values: dict[str, Any] = {"chain_id": chain_id, "token": opg.address, "amount": ONE, "to": payee.address}
        values.update(fields)
        signed = stock_payment(key, now=now, **values)
        payload, requirements = as_x402(signed, chain_id, charge)
        return StockPayment.from_x402(payload, requirements)

    return make


def send(batcher: Any, client: StockPaymentBatcherClient, relayer: Any, payments: list[StockPayment], **kw: Any) -> Any:
    tx = batcher.settle(encode_batch(payments, batcher=batcher.address, item_gas=ITEM_GAS), sender=relayer, **kw)
    raw = client.w3.eth.get_transaction_receipt(tx.txn_hash)
    receipt = Receipt(
        tx_hash=bytes(raw["transactionHash"]),
        block_number=raw["blockNumber"],
        succeeded=raw["status"] == 1,
        gas_used=raw["gasUsed"],
        logs=raw["logs"],
    )
    return tx, client.outcomes(receipt, payments)


def test_exact_batch_isolates_each_failure_with_its_x402_reason(
    batcher: Any,
    client: StockPaymentBatcherClient,
    stock: Any,
    payers: list[Any],
    payee: Any,
    stranger: Any,
    relayer: Any,
    opg: Any,
    now: int,
) -> None:
    good = stock(payers[0].private_key, amount=2 * ONE)
    payments = [
        good,
        good,  # the same payload again: Permit2's nonce is spent by the first
        stock(payers[1].private_key, deadline=now - 5),
        stock(payers[2].private_key, sign_key=payers[3].private_key),
        stock(payers[3].private_key, amount=10**12 * ONE),  # more than the payer holds
        stock(payers[4].private_key, amount=3 * ONE, to=stranger.address),  # a second recipient
    ]
    before = {a: opg.balanceOf(a) for a in (payee.address, stranger.address, payers[0].address)}
    tx, outcomes = send(batcher, client, relayer, payments)

    assert [o.settled for o in outcomes] == [True, False, False, False, False, True]
    assert [o.reason for o in outcomes] == [
        None,
        "permit2_invalid_nonce",
        "permit2_deadline_expired",
        "invalid_permit2_signature",
        "permit2_simulation_failed",  # Permit2's Error("TRANSFER_FROM_FAILED") hides the token's reason
        None,
    ]
    assert outcomes[2].error is not None and outcomes[2].error.name == "SignatureExpired"
    assert outcomes[4].error is not None and outcomes[4].error.arg("arg0") == "TRANSFER_FROM_FAILED"
    assert opg.balanceOf(payee) == before[payee.address] + 2 * ONE
    assert opg.balanceOf(stranger) == before[stranger.address] + 3 * ONE
    assert opg.balanceOf(payers[0]) == before[payers[0].address] - 2 * ONE
    (summary,) = tx.decode_logs(batcher.BatchProcessed)
    assert (summary.proxy, summary.items, summary.settledMask) == (X402_EXACT_PERMIT2_PROXY, 6, 0b100001)
    assert tx.return_value == 0b100001


def test_upto_settles_through_the_batcher_as_facilitator(
    batcher: Any,
    client: StockPaymentBatcherClient,
    stock: Any,
    payers: list[Any],
    payee: Any,
    relayer: Any,
    opg: Any,
) -> None:
    mine = dict(scheme="upto", amount=5 * ONE, facilitator=batcher.address)
    partial = stock(payers[0].private_key, charge=2 * ONE, **mine)
    full = stock(payers[1].private_key, charge=5 * ONE, **mine)
    # Signed for the relayer account as the settler, not the batcher.
    foreign = stock(payers[2].private_key, charge=ONE, scheme="upto", amount=ONE, facilitator=relayer.address)
    with pytest.raises(InvalidInput, match=r"batch\[2\]: witness.facilitator .* is not the batcher"):
        client.settle_call([partial, full, foreign])
    before = opg.balanceOf(payee)
    data = (
        encode_batch([partial, full], batcher=batcher.address) + encode_batch([foreign], batcher=relayer.address)[54:]
    )  # append the foreign item's bytes after the shared header and the one recipient
    tx = batcher.settle(data, sender=relayer)
    assert tx.return_value == 0b011
    assert opg.balanceOf(payee) == before + 7 * ONE
    (failed,) = tx.decode_logs(batcher.PaymentFailed)
    assert (failed.index, failed.owner) == (2, payers[2].address)
    # The batcher always presents itself as witness.facilitator, so a payload naming another settler does not
    # match its signature (the client refuses it before sending, as above).
    error = client.decode_error(bytes(failed.reason))
    assert error.name == "InvalidSigner"
    # A single upto settlement goes through the batcher too (it is the announced facilitatorAddress).
    single = stock(payers[3].private_key, charge=ONE, **mine)
    _, (outcome,) = send(batcher, client, relayer, [single])
    assert (outcome.settled, outcome.amount) == (True, ONE)


def test_client_refuses_what_the_batcher_cannot_take(stock: Any, payers: list[Any], batcher: Any, relayer: Any) -> None:
    with pytest.raises(InvalidInput, match="zero charge"):
        stock(payers[0].private_key, scheme="upto", amount=ONE, facilitator=batcher.address, charge=0)
    with pytest.raises(InvalidInput, match="exceeds the permitted"):
        stock(payers[0].private_key, scheme="upto", amount=ONE, facilitator=batcher.address, charge=ONE + 1)
    with pytest.raises(InvalidInput, match="is not the canonical x402 exact proxy"):
        stock(payers[0].private_key, spender=relayer.address)
    with pytest.raises(InvalidInput, match="no payment"):
        encode_batch([], batcher=batcher.address)
    exact, upto = stock(payers[0].private_key), stock(payers[1].private_key, scheme="upto", facilitator=batcher.address)
    assert [len(g) for g in group_batches([exact, upto, exact] * 100)] == [200, 100]
    with pytest.raises(InvalidInput, match="must match"):
        encode_batch([exact, upto], batcher=batcher.address)


def test_only_settlers_may_settle(batcher: Any, stock: Any, payers: list[Any], stranger: Any) -> None:
    """Otherwise anyone could settle a stock upto payment naming the batcher for 1 wei and burn its nonce."""
    data = encode_batch(
        [stock(payers[0].private_key, scheme="upto", facilitator=batcher.address, charge=1)], batcher=batcher.address
    )
    with ape.reverts(batcher.AccessControlUnauthorizedAccount, account=stranger.address, neededRole=SETTLER_ROLE):
        batcher.settle(data, sender=stranger)


def test_whole_batch_refusals_name_the_problem(
    batcher: Any, stock: Any, payers: list[Any], payee: Any, relayer: Any, chain_id: int
) -> None:
    data = encode_batch([stock(payers[0].private_key)], batcher=batcher.address)
    with ape.reverts(batcher.UnknownScheme, scheme=2):
        batcher.settle(b"\x02" + data[1:], sender=relayer)
    with ape.reverts(batcher.WrongChain, expected=8453 if chain_id != 8453 else 84532, actual=chain_id):
        batcher.settle(data[:1] + (8453 if chain_id != 8453 else 84532).to_bytes(8, "big") + data[9:], sender=relayer)
    with ape.reverts(batcher.MalformedBatch, offset=54 + 20):  # the recipient index byte of item 0
        batcher.settle(data[:74] + b"\x07" + data[75:], sender=relayer)
    with ape.reverts(batcher.MalformedBatch, offset=len(data) - 67):  # the signature (2 + 65 bytes) runs past the end
        batcher.settle(data[:-1], sender=relayer)
    with ape.reverts(batcher.EmptyBatch):
        batcher.settle(data[:54], sender=relayer)
    with ape.reverts(batcher.MalformedBatch, offset=0):
        batcher.settle(data[:20], sender=relayer)
    two = data[:33] + b"\x02" + data[34:54] + data[34:54] + data[54:]  # the same recipient twice
    with ape.reverts(batcher.InvalidRecipientTable, recipient=payee.address):
        batcher.settle(two, sender=relayer)
    itself = data[:34] + bytes.fromhex(batcher.address[2:]) + data[54:]
    with ape.reverts(batcher.InvalidRecipientTable, recipient=batcher.address):
        batcher.settle(itself, sender=relayer)


def test_token_without_code_is_refused(batcher: Any, stock: Any, payers: list[Any], relayer: Any) -> None:
    """The proxies and Permit2 would report a transfer of a token without code as a success and burn the nonce."""
    empty = "0xEeeeeEeeeEeEeeEeEeEeeEEEeeeeEeeeeeeeEEeE"
    data = encode_batch([stock(payers[0].private_key, token=empty)], batcher=batcher.address)
    with ape.reverts(batcher.TokenWithoutCode, token=empty):
        batcher.settle(data, sender=relayer)


def test_fee_on_transfer_token_reverts_the_batch(
    batcher: Any, stock: Any, project: Any, deployer: Any, payers: list[Any], payee: Any, relayer: Any
) -> None:
    token = project.FeeOnTransferToken.deploy(sender=deployer)
    for payer in payers[:2]:
        token.mint(payer, 100 * ONE, sender=deployer)
        token.approve(PERMIT2_ADDRESS, 2**256 - 1, sender=payer)
    payments = [stock(p.private_key, token=token.address, amount=10 * ONE) for p in payers[:2]]
    with ape.reverts(
        batcher.RecipientDeltaMismatch, recipient=payee.address, expected=20 * ONE, actual=198 * ONE // 10
    ):
        batcher.settle(encode_batch(payments, batcher=batcher.address), sender=relayer)
    assert token.balanceOf(payers[0]) == 100 * ONE


def test_recipient_that_also_pays_balances_out(
    batcher: Any, client: StockPaymentBatcherClient, stock: Any, payers: list[Any], payee: Any, relayer: Any, opg: Any
) -> None:
    """A recipient that pays another item (or itself) in the same batch: its expected change nets out."""
    payments = [
        stock(payers[0].private_key, amount=4 * ONE, to=payers[1].address),
        stock(payers[1].private_key, amount=ONE, to=payee.address),
        stock(payers[1].private_key, amount=ONE, to=payers[1].address),  # pays itself
    ]
    before = opg.balanceOf(payers[1])
    _, outcomes = send(batcher, client, relayer, payments)
    assert all(o.settled for o in outcomes)
    assert opg.balanceOf(payers[1]) == before + 3 * ONE


def test_replayed_batch_moves_nothing(
    batcher: Any, client: StockPaymentBatcherClient, stock: Any, payers: list[Any], payee: Any, relayer: Any, opg: Any
) -> None:
    payments = [stock(p.private_key) for p in payers[:3]]
    send(batcher, client, relayer, payments)
    before = opg.balanceOf(payee)
    tx, outcomes = send(batcher, client, relayer, payments)
    assert tx.return_value == 0
    assert {o.reason for o in outcomes} == {"permit2_invalid_nonce"}
    assert opg.balanceOf(payee) == before


def _hostile_payer(kind: str, project: Any, deployer: Any, chain: Any, opg: Any) -> str:
    """A payer whose signature check burns all the gas it gets: a contract wallet or an EIP-7702 account."""
    wallet = project.GasBurningWallet.deploy(sender=deployer)
    if kind == "contract":
        deal_opg(chain.provider, opg, wallet.address, 100 * ONE)
        wallet.approveToken(opg.address, PERMIT2_ADDRESS, sender=deployer)
        return str(wallet.address)
    account = Account.from_key(keccak(text="og-settle 7702 payer"))
    chain.provider.make_request("anvil_setBalance", [account.address, hex(ONE)])
    deal_opg(chain.provider, opg, account.address, 100 * ONE)
    ensure_opg_approval(10 * ONE, private_key=account.key, web3=chain.provider.web3, token=opg.address)
    designator = "0xef0100" + wallet.address[2:].lower()  # EIP-7702 delegation to the wallet's code
    chain.provider.make_request("anvil_setCode", [account.address, designator])
    return str(account.address)


@pytest.mark.parametrize("kind", ["contract", "eip7702"])
def test_gas_burning_payer_fails_alone_within_its_cap(
    kind: str,
    batcher: Any,
    client: StockPaymentBatcherClient,
    stock: Any,
    project: Any,
    deployer: Any,
    chain: Any,
    opg: Any,
    payers: list[Any],
    payee: Any,
    relayer: Any,
) -> None:
    hostile = _hostile_payer(kind, project, deployer, chain, opg)
    burner = stock(payers[0].private_key)
    burner = StockPayment(**{**{f: getattr(burner, f) for f in StockPayment.__slots__}, "owner": hostile})
    payments = [
        stock(payers[1].private_key),
        burner,
        stock(payers[2].private_key),
        burner,
        stock(payers[3].private_key),
    ]
    before = opg.balanceOf(payee)
    gas = client.gas_limit(len(payments), item_gas=ITEM_GAS)
    tx, outcomes = send(batcher, client, relayer, payments, gas=gas)
    assert [o.settled for o in outcomes] == [True, False, True, False, True]
    for outcome in (outcomes[1], outcomes[3]):
        assert outcome.error is not None
        assert (outcome.error.name, outcome.error.arg("gasCap")) == ("ItemOutOfGas", ITEM_GAS)
    assert opg.balanceOf(payee) == before + 3 * ONE
    # Two burners cost at most their caps: the honest items are not starved and the batch stays bounded.
    assert tx.gas_used < 2 * ITEM_GAS + 3 * 80_000


def test_too_little_gas_reverts_the_whole_batch_instead_of_blaming_an_item(
    batcher: Any, stock: Any, payers: list[Any], relayer: Any, opg: Any, payee: Any
) -> None:
    """With less gas than an item's cap needs (63/64 rule), the batch reverts: the caller must send more."""
    payments = [stock(p.private_key) for p in payers[:3]]
    data = encode_batch(payments, batcher=batcher.address, item_gas=1_000_000)
    before = opg.balanceOf(payee)
    with ape.reverts(batcher.InsufficientGasForItem, index=0):
        batcher.settle(data, sender=relayer, gas=600_000)
    assert opg.balanceOf(payee) == before


def test_exact_straight_through_the_proxy(
    client: StockPaymentBatcherClient, stock: Any, payers: list[Any], stranger: Any, opg: Any, payee: Any
) -> None:
    call = exact_proxy_call(stock(payers[0].private_key, amount=3 * ONE))
    before = opg.balanceOf(payee)
    client.w3.eth.send_transaction({"from": stranger.address, "to": call.to, "data": call.data})
    assert opg.balanceOf(payee) == before + 3 * ONE


# --- gas ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kept_fifty_stock_payers(chain: Any, opg: Any) -> Kept[list[Any]]:
    return kept_payers(chain, opg, b"og-settle stock gas payer")


@pytest.fixture
def fifty_stock_payers(kept_fifty_stock_payers: Kept[list[Any]]) -> list[Any]:
    """Fifty fresh payers holding OPG, each approved through ensure_opg_approval (web3 + eth-account)."""
    return kept_fifty_stock_payers.get()


@pytest.mark.gas
def test_gas_batch_of_50_first_time_stock_payers(
    batcher: Any,
    client: StockPaymentBatcherClient,
    stock: Any,
    fifty_stock_payers: list[Any],
    payee: Any,
    relayer: Any,
    opg: Any,
    chain: Any,
    gas_snapshot: Any,
) -> None:
    """Fifty stock exact payments (SDK format: random 256-bit nonces, validAfter 0) from fifty first-time payers.

    Issue 9 aimed at 52,000 gas per payment (one alone through the proxy costs 82,551). Measured here: about
    53,900. The floor through the canonical proxy is above the target: the proxy's own call (ABI decoding, its
    storage reentrancy guard, re-encoding for Permit2, its event) leaves each payment at about 49,400 gas net of
    refunds before this contract adds anything, and a stock payment's calldata (random 256-bit nonce, 65-byte
    signature, owner, amount, deadline) is about 2,100 more, plus 420 of the 21,000 base. What this contract adds per
    payment (parsing, the capped call, the ledger) is about 1,000. The assertion guards that figure."""
    deal_opg(chain.provider, opg, payee.address, ONE)  # a provider's address already holds OPG
    payments = [stock(account.key, amount=ONE + i) for i, account in enumerate(fifty_stock_payers)]
    before = opg.balanceOf(payee)
    tx, outcomes = send(batcher, client, relayer, payments, gas=client.gas_limit(50))
    assert all(o.settled for o in outcomes)
    assert opg.balanceOf(payee) - before == sum(ONE + i for i in range(50))
    per_payment = gas_snapshot.record("StockPaymentBatcher.settle(50 exact, 50 payers) per payment", tx.gas_used // 50)
    gas_snapshot.record("StockPaymentBatcher.settle(50 exact, 50 payers) total", tx.gas_used)
    print(f"\nstock batch of 50 first-time payers: total {tx.gas_used}, per payment {per_payment}")
    assert per_payment <= 54_500


# --- the packed encoding, property-tested -----------------------------------------------------------------------

UINT = st.integers(min_value=0, max_value=2**256 - 1)


@pytest.fixture(scope="module")
def kept_echo_batcher(project: Any, deployer: Any, relayer: Any, chain: Any) -> Kept[Any]:
    def deploy() -> Any:
        echo = project.CalldataEchoProxy.deploy(sender=deployer).address
        return project.StockPaymentBatcher.deploy(deployer.address, echo, echo, sender=deployer)

    return kept_settled_by(chain, deploy, admin=deployer, settler=relayer)


@pytest.fixture
def echo_batcher(kept_echo_batcher: Kept[Any]) -> Any:
    """A batcher whose "proxies" revert with the keccak256 of the calldata they got."""
    return kept_echo_batcher.get()


@given(
    scheme=st.sampled_from(["exact", "upto"]),
    items=st.lists(
        st.tuples(UINT, UINT, UINT, UINT, UINT, st.binary(max_size=150), st.integers(min_value=0, max_value=2)),
        min_size=1,
        max_size=4,
    ),
)
def test_packed_items_become_the_proxy_abi_call(
    echo_batcher: Any, opg: Any, relayer: Any, accounts: Any, chain: Any, chain_id: int, scheme: str, items: Any
) -> None:
    """Any values (0 .. 2^256-1, any signature length) reach the proxy as exactly its ABI-encoded ``settle``."""
    recipients = [accounts[7].address, accounts[8].address, accounts[9].address]
    payments = [
        StockPayment(
            scheme=scheme,
            owner=accounts[i % 7].address,
            token=opg.address,
            permitted=max(permitted, charge),
            charge=charge if scheme == "upto" else max(permitted, charge),
            nonce=nonce,
            deadline=deadline,
            to=recipients[r],
            valid_after=valid_after,
            facilitator=echo_batcher.address if scheme == "upto" else None,
            signature=signature,
            chain_id=chain_id,
        )
        for i, (permitted, charge, nonce, deadline, valid_after, signature, r) in enumerate(items)
    ]
    with chain.isolate():
        tx = echo_batcher.settle(encode_batch(payments, batcher=echo_batcher.address), sender=relayer)
    reasons = {log.index: bytes(log.reason) for log in tx.decode_logs(echo_batcher.PaymentFailed)}
    for index, p in enumerate(payments):
        permit = ((p.token, p.permitted), p.nonce, p.deadline)
        if scheme == "exact":
            call = keccak(text="settle(((address,uint256),uint256,uint256),address,(address,uint256),bytes)")[:4]
            call += encode(
                ["((address,uint256),uint256,uint256)", "address", "(address,uint256)", "bytes"],
                [permit, p.owner, (p.to, p.valid_after), p.signature],
            )
        else:
            sig = "settle(((address,uint256),uint256,uint256),uint256,address,(address,address,uint256),bytes)"
            call = keccak(text=sig)[:4] + encode(
                ["((address,uint256),uint256,uint256)", "uint256", "address", "(address,address,uint256)", "bytes"],
                [permit, p.charge, p.owner, (p.to, echo_batcher.address, p.valid_after), p.signature],
            )
        assert reasons[index] == keccak(call), f"item {index}"
