"""``SettlementRegistry.settleIndividualBatch``: many individual records (ECDSA and OpenGradient RSA) in one
transaction, each item isolated and gas-capped, with its named reason when it fails; and its gas per inference."""

from __future__ import annotations

from typing import Any

import ape
import pytest
from eth_account import Account

from og_settle._hex import keccak256
from og_settle.clients import (
    IndividualBatchItem,
    OpenGradientSettlement,
    SettlementRegistryClient,
    TxSender,
    encode_individual_batch,
)
from tests.contracts.conftest import MAX_AGE, Deployment
from tests.contracts.test_tee_registry import new_key

BATCH_TARGET_PER_INFERENCE = 50_000


def head_time(chain: Any) -> int:
    return int(chain.blocks.head.timestamp)


def ecdsa_items(d: Deployment, n: int, *, timestamp: int, payer: str, seed: bytes = b"") -> list[IndividualBatchItem]:
    items = []
    for i in range(n):
        settlement, signature = d.individual(timestamp=timestamp, payer=payer, seed=seed + b"%d" % i)
        items.append(IndividualBatchItem(settlement, signature))
    return items


def rsa_items(d: Deployment, key: Any, n: int, *, timestamp: int, payer: str) -> list[IndividualBatchItem]:
    from tests.contracts.rsa_support import og_message

    items = []
    for i in range(n):
        input_hash, output_hash = keccak256(b"rsa in %d" % i), keccak256(b"rsa out %d" % i)
        settlement = OpenGradientSettlement(
            key.tee_id, input_hash, output_hash, timestamp, payer, b"walrus:" + b"%043d" % i
        )
        items.append(IndividualBatchItem(settlement, key.sign(og_message(input_hash, output_hash, timestamp))))
    return items


def digest_of(d: Deployment, item: IndividualBatchItem) -> bytes:
    s = item.settlement
    if isinstance(s, OpenGradientSettlement):
        return s.digest
    return bytes(d.settlement.individualDigest(s.as_abi()))


def failures(d: Deployment, receipt: Any) -> dict[int, str]:
    """Item index -> the named error of its SettlementItemFailed event."""
    client = SettlementRegistryClient(ape.chain.provider.web3, d.settlement.address)
    return {
        int(log.index): client.decode_error(bytes(log.reason)).name
        for log in d.settlement.SettlementItemFailed.from_receipt(receipt)
    }


def test_batch_settles_every_good_item_and_names_each_bad_one(
    deployment: Deployment, chain: Any, payer: Any, stranger: Any
) -> None:
    """A bad signature, an already-settled record, a timestamp outside the window, a disabled TEE and a zero
    payer each fail alone with their named error; the other items settle, through the typed client."""
    d = deployment
    w3 = chain.provider.web3
    client = SettlementRegistryClient(w3, d.settlement.address)
    relayer = TxSender(w3, Account.from_key(d.relayer.private_key))
    now = head_time(chain)
    good = ecdsa_items(d, 4, timestamp=now, payer=payer.address, seed=b"good")
    already = ecdsa_items(d, 1, timestamp=now, payer=payer.address, seed=b"already")[0]
    d.settlement.settleIndividual(already.settlement.as_abi(), already.signature, sender=d.relayer)
    wrong_signer = ecdsa_items(d, 1, timestamp=now, payer=payer.address, seed=b"forged")[0]
    forged = IndividualBatchItem(wrong_signer.settlement, new_key(7).sign_individual(d.domain, wrong_signer.settlement))
    old = ecdsa_items(d, 1, timestamp=now - MAX_AGE - 60, payer=payer.address, seed=b"old")[0]
    disabled_key = new_key(8)
    d.register(disabled_key)
    d.registry.disableTee(disabled_key.tee_id, sender=d.operator)
    disabled_settlement, disabled_sig = d.individual(key=disabled_key, timestamp=now, payer=payer.address)
    disabled = IndividualBatchItem(disabled_settlement, disabled_sig)
    items = [good[0], forged, good[1], already, old, good[2], disabled, good[3]]

    receipt = relayer.send(client.settle_individual_batch_call(items))
    outcomes = client.individual_batch_outcomes(receipt, len(items))

    named = {o.index: o.error.name for o in outcomes if o.error is not None}
    assert named == {
        1: "InvalidTeeSignature",
        3: "SettlementAlreadyRecorded",
        4: "TimestampTooOld",
        6: "TeeNotActive",
    }
    assert [o.settled for o in outcomes] == [True, False, True, False, False, True, False, True]
    for item, outcome in zip(items, outcomes, strict=True):
        assert client.is_settled(digest_of(d, item)) == (outcome.settled or item is already)
    settled = client.get_settlement(digest_of(d, good[0]))
    assert settled is not None and (settled.kind, settled.relayer) == ("individual", d.relayer.address)
    events = d.settlement.IndividualSettled.from_receipt(chain.get_receipt("0x" + receipt.tx_hash.hex()))
    assert [bytes(e.digest) for e in events] == [digest_of(d, g) for g in good]


def test_a_record_twice_in_one_batch_settles_once(deployment: Deployment, chain: Any, payer: Any) -> None:
    d = deployment
    item = ecdsa_items(d, 1, timestamp=head_time(chain), payer=payer.address, seed=b"twice")[0]
    receipt = d.settlement.settleIndividualBatch(encode_individual_batch([item, item]), sender=d.relayer)
    assert failures(d, receipt) == {1: "SettlementAlreadyRecorded"}
    assert d.settlement.isSettled(digest_of(d, item))


def test_item_gas_cap_and_the_63_64_check(deployment: Deployment, chain: Any, payer: Any) -> None:
    """An item that needs more than its cap fails alone with ItemOutOfGas(cap); a transaction sent with too little
    gas for the next item's whole cap reverts as a whole with InsufficientGasForItem, settling nothing."""
    d = deployment
    items = ecdsa_items(d, 3, timestamp=head_time(chain), payer=payer.address, seed=b"cap")
    receipt = d.settlement.settleIndividualBatch(encode_individual_batch(items, item_gas=8_000), sender=d.relayer)
    assert failures(d, receipt) == {0: "ItemOutOfGas", 1: "ItemOutOfGas", 2: "ItemOutOfGas"}
    assert not any(d.settlement.isSettled(digest_of(d, i)) for i in items)

    batch = encode_individual_batch(items, item_gas=1_000_000)
    with ape.reverts(d.settlement.InsufficientGasForItem):
        d.settlement.settleIndividualBatch(batch, sender=d.relayer, gas=1_080_000)  # item 0 fits, item 1 not
    assert not any(d.settlement.isSettled(digest_of(d, i)) for i in items)
    receipt = d.settlement.settleIndividualBatch(batch, sender=d.relayer, gas=4_000_000)
    assert failures(d, receipt) == {}


def test_batch_access_and_encoding_errors(deployment: Deployment, chain: Any, payer: Any, stranger: Any) -> None:
    d = deployment
    item = ecdsa_items(d, 1, timestamp=head_time(chain), payer=payer.address, seed=b"errors")[0]
    batch = encode_individual_batch([item])
    with ape.reverts(d.settlement.AccessControlUnauthorizedAccount, account=stranger.address):
        d.settlement.settleIndividualBatch(batch, sender=stranger)
    with ape.reverts(d.settlement.OnlySelf, caller=d.relayer.address):
        d.settlement.settleBatchItem(item.settlement.tee_id, batch[37:], d.relayer.address, sender=d.relayer)
    with ape.reverts(d.settlement.MalformedSettlementBatch):
        d.settlement.settleIndividualBatch(batch[:-1], sender=d.relayer)  # truncated signature
    with ape.reverts(d.settlement.MalformedSettlementBatch):
        d.settlement.settleIndividualBatch(batch[:37], sender=d.relayer)  # no items
    with ape.reverts(d.settlement.MalformedSettlementBatch, offset=37):
        d.settlement.settleIndividualBatch(batch[:37] + b"\x07" + batch[38:], sender=d.relayer)  # unknown kind
    with ape.reverts(d.settlement.MalformedSettlementBatch, offset=38):
        d.settlement.settleIndividualBatch(batch[:38] + b"\x01" + batch[39:], sender=d.relayer)  # TEE index 1 of 1
    d.settlement.pause(sender=d.admin)
    with ape.reverts(d.settlement.EnforcedPause):
        d.settlement.settleIndividualBatch(batch, sender=d.relayer)


def test_batch_settles_opengradient_rsa_records(deployment: Deployment, chain: Any, payer: Any) -> None:
    """RSA records and ECDSA records mix in one batch; a forged RSA signature fails alone with its PSS reason."""
    from tests.contracts.rsa_support import register_rsa, rsa_key
    from tests.contracts.test_settlement_gas import keccak256_measurement

    d = deployment
    key = rsa_key(2048)
    register_rsa(d, key, keccak256_measurement(d))
    now = head_time(chain)
    rsa = rsa_items(d, key, 3, timestamp=now, payer=payer.address)
    forged = IndividualBatchItem(rsa[1].settlement, rsa[0].signature)
    ecdsa = ecdsa_items(d, 1, timestamp=now, payer=payer.address, seed=b"mixed")[0]
    items = [rsa[0], forged, ecdsa, rsa[2]]
    receipt = d.settlement.settleIndividualBatch(encode_individual_batch(items), sender=d.relayer)
    assert failures(d, receipt) == {1: "InvalidRsaTeeSignature"}
    events = d.settlement.OpenGradientSettled.from_receipt(receipt)
    assert [bytes(e.digest) for e in events] == [rsa[0].settlement.digest, rsa[2].settlement.digest]
    assert [bytes(e.daPointer) for e in events] == [rsa[0].settlement.da_pointer, rsa[2].settlement.da_pointer]
    assert d.settlement.getSettlement(rsa[0].settlement.digest).kind == 3  # OpenGradient
    assert d.settlement.isSettled(digest_of(d, ecdsa))


@pytest.mark.gas
def test_individual_batch_gas(
    deployment: Deployment, chain: Any, payer: Any, payers: list[Any], gas_snapshot: Any
) -> None:
    """Gas per individual inference in a batch of 20 (five payers, one TEE): at most 50,000 (69k alone)."""
    d = deployment
    now = head_time(chain)
    items = []
    for i in range(20):
        settlement, signature = d.individual(timestamp=now, payer=payers[i % 5].address, seed=b"gas %d" % i)
        items.append(IndividualBatchItem(settlement, signature))
    receipt = d.settlement.settleIndividualBatch(encode_individual_batch(items), sender=d.relayer)
    assert failures(d, receipt) == {}
    per = gas_snapshot.record("settlement.settleIndividualBatch(20 ECDSA) per inference", receipt.gas_used // 20)
    gas_snapshot.record("settlement.settleIndividualBatch(20 ECDSA) total", receipt.gas_used)
    assert per <= BATCH_TARGET_PER_INFERENCE


@pytest.mark.gas
def test_opengradient_batch_gas(deployment: Deployment, chain: Any, payer: Any, gas_snapshot: Any) -> None:
    """Gas per OpenGradient (RSA-2048) inference in a batch of 20 (85,966 alone)."""
    from tests.contracts.rsa_support import register_rsa, rsa_key
    from tests.contracts.test_settlement_gas import keccak256_measurement

    d = deployment
    key = rsa_key(2048)
    register_rsa(d, key, keccak256_measurement(d))
    items = rsa_items(d, key, 20, timestamp=head_time(chain), payer=payer.address)
    receipt = d.settlement.settleIndividualBatch(encode_individual_batch(items), sender=d.relayer)
    assert failures(d, receipt) == {}
    gas_snapshot.record("settlement.settleIndividualBatch(20 RSA-2048) per inference", receipt.gas_used // 20)
    gas_snapshot.record("settlement.settleIndividualBatch(20 RSA-2048) total", receipt.gas_used)
