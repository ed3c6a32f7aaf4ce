"""The operations tables on both stores: keys and limits, rate admission, quota reservations, usage, receipts."""

from __future__ import annotations

import hashlib
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from og_settle._errors import InvalidInput
from og_settle.facilitator import KeyLimits, LimitExceeded, Quota, Receipt, UsageRecord, open_settlement_store
from og_settle.facilitator._limits import parse_quota, rate_admit

ASSET = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
TX = "0x" + "ab" * 32


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def test_keys_and_their_limits_are_stored(store_target: str) -> None:
    store = open_settlement_store(store_target)
    limits = KeyLimits(verify_per_second=20, settle_per_second=2.5, quotas=(Quota(ASSET, 10**6, 86_400),))
    store.put_key("merchant-a", digest("a" * 20), limits)
    with pytest.raises(InvalidInput, match="already holds key 'merchant-a'"):
        store.put_key("merchant-b", digest("a" * 20), KeyLimits())
    store.close()
    reopened = open_settlement_store(store_target)  # durable: a restart reads them back
    assert reopened.key_by_digest(digest("a" * 20)) == ("merchant-a", limits)
    assert reopened.key_by_digest(digest("b" * 20)) is None
    reopened.put_key("merchant-a", None, KeyLimits(settle_per_second=1))
    assert reopened.list_keys() == [("merchant-a", KeyLimits(settle_per_second=1))]
    with pytest.raises(InvalidInput, match="no key named 'nobody'"):
        reopened.put_key("nobody", None, KeyLimits())
    reopened.close()


def test_rate_admits_one_second_of_burst_then_refuses_with_the_wait() -> None:
    tat = None
    for _ in range(5):
        tat, wait = rate_admit(tat, 100.0, 5.0)
        assert tat is not None and wait == 0
    refused, wait = rate_admit(tat, 100.0, 5.0)
    assert refused is None and wait == pytest.approx(0.2)
    assert rate_admit(tat, 100.2, 5.0)[0] is not None  # one interval later, one more


def test_admit_counts_across_store_instances(store_target: str) -> None:
    """Two stores on one database (two server instances) share a key's rate."""
    first, second = open_settlement_store(store_target), open_settlement_store(store_target)
    admitted = refused = 0
    began = time.monotonic()
    for i in range(10):
        try:
            (first if i % 2 else second).admit("k", "settle", 3.0)
            admitted += 1
        except LimitExceeded as limit:
            assert limit.outcome == "rate_limited" and limit.retry_after >= 1
            refused += 1
    elapsed = time.monotonic() - began
    # A burst of 3 at once, then one more per third of a second that went by: never 10 of 10.
    assert 3 <= admitted <= 3 + math.ceil(elapsed * 3) and refused == 10 - admitted
    assert refused > 0 or elapsed > 2
    first.close()
    second.close()


def test_a_quota_is_reserved_spent_released_and_never_exceeded(store_target: str) -> None:
    store = open_settlement_store(store_target)
    quota = parse_quota(f"{ASSET}:1000/day")
    store.reserve("h1", "k", ASSET, 600, [quota])
    with pytest.raises(LimitExceeded, match=r"has 400 of its .*:1000/day left, the payment is 600") as over:
        store.reserve("h2", "k", ASSET, 600, [quota])
    assert over.value.outcome == "over_quota" and 1 <= over.value.retry_after <= 86_400
    store.finish_hold("h1", "0xpay1", "failed")  # released: room again
    store.reserve("h3", "k", ASSET, 600, [quota])
    store.finish_hold("h3", "0xpay3", "settled")
    store.reserve("h4", "k", ASSET, 400, [quota])
    store.finish_hold("h4", "0xpay4", "pending")  # kept while pending
    assert store.quota_used("k", quota) == 1000
    store.reserve("h5", "k", ASSET, 0, [quota])  # a replay of pay4 reserves again only if it fits: 0 does
    store.finish_hold("h5", "0xpay4", "settled")  # the replay settles pay4: pay4's first hold is spent
    assert store.quota_used("k", quota) == 1000
    store.close()


def test_concurrent_reservations_on_two_store_instances_stay_within_the_quota(store_target: str) -> None:
    stores = [open_settlement_store(store_target), open_settlement_store(store_target)]
    quota = parse_quota(f"{ASSET}:10/hour")
    granted: list[str] = []
    lock = threading.Lock()

    def attempt(i: int) -> None:
        try:
            stores[i % 2].reserve(f"h{i}", "k", ASSET, 1, [quota])
        except LimitExceeded:
            return
        with lock:
            granted.append(f"h{i}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(attempt, range(40)))
    assert len(granted) == 10
    assert stores[0].quota_used("k", quota) == 10
    for store in stores:
        store.close()


def _draft(payment: str, amount: int = 5) -> Receipt:
    return Receipt(
        network="eip155:84532", transaction=TX, block_number=7, block_hash="0x" + "cd" * 32, log_index=-1,
        asset=ASSET, payer="0x" + "11" * 20, pay_to="0x" + "22" * 20, amount=amount, scheme="exact",
        payment_id=payment, payload_digest="0x" + "ee" * 32, settled_at=1_800_000_000.0,
    )  # fmt: skip


def test_identical_transfers_in_one_transaction_get_one_log_each(store_target: str) -> None:
    store = open_settlement_store(store_target)
    first = store.add_receipt("k", _draft("0x01"), [3, 9])
    second = store.add_receipt("k", _draft("0x02"), [3, 9])
    assert first is not None and second is not None and (first.log_index, second.log_index) == (3, 9)
    assert store.add_receipt("k", _draft("0x01"), [3, 9]) == first  # the same payment: its stored receipt
    assert store.add_receipt("k", _draft("0x03"), [3, 9]) is None  # no Transfer left for a third
    assert [r.payment_id for r in store.receipts_between("k", 0, 2e9)] == ["0x01", "0x02"]
    assert store.receipts_between("other", 0, 2e9) == []
    store.close()


def test_usage_records_are_kept_in_order(store_target: str) -> None:
    store = open_settlement_store(store_target)
    records = [
        UsageRecord(at=100.0 + i, key="k", endpoint="settle", outcome="settled", amount=2**255 + i, asset=ASSET)
        for i in range(3)
    ]
    for record in records:
        store.add_usage(record)
    store.add_usage(UsageRecord(at=101.5, key="other", endpoint="verify", outcome="valid"))
    assert list(store.usage_records("k", 101.0, 200.0)) == records[1:]
    assert len(list(store.usage_records(None, 0, 200.0))) == 4
    store.close()
