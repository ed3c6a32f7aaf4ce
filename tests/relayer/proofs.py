"""Proof from chain state that a relayer run settled every record exactly once.

Every check reads the chain: BatchRecorded events and the dumps they point to, the registry's digests and its
IndividualSettled / MetadataSettled events, Permit2's nonce bitmap, PaymentSettled events and token balances.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from og_settle._hex import keccak256, parse_bytes32, to_hex
from og_settle._merkle import StandardMerkleTree
from og_settle.relayer import open_store
from tests.relayer.support import PAY_TO, LiveChain

__all__ = ["assert_settled_exactly_once", "opg_balance", "queued_digests"]

BALANCE_OF_SELECTOR = keccak256(b"balanceOf(address)")[:4]


def opg_balance(chain: LiveChain, holder: str) -> int:
    w3 = chain.web3()
    data = BALANCE_OF_SELECTOR + bytes.fromhex(holder[2:]).rjust(32, b"\0")
    return int.from_bytes(bytes(w3.eth.call({"to": chain.deployment.opg, "data": "0x" + data.hex()})), "big")


def assert_settled_exactly_once(
    chain: LiveChain,
    dump_dir: Path,
    batch_records: list[dict[str, Any]],
    payments: list[dict[str, Any]],
    single_digests: list[bytes],
    paid_before: int,
) -> None:
    """From chain state: every leaf is in exactly one recorded root, every digest is recorded, every payment
    settled exactly once and the payee received exactly the sum."""
    from og_settle._merkle import OG_LEAF_ENCODING, leaf_hash
    from og_settle.clients import PaymentFacilitatorClient, Permit2Client, SettlementRegistryClient
    from og_settle.relayer._calls import leaf

    w3 = chain.web3()
    registry = SettlementRegistryClient(w3, chain.deployment.settlement_registry)
    events = registry.batch_recorded_events()
    assert len({e["root"] for e in events}) == len(events)
    on_chain: Counter[bytes] = Counter()
    for event in events:
        pointer = event["da_pointer"].decode()
        assert pointer == "og-settle:" + to_hex(event["root"])
        tree = StandardMerkleTree.load_json((dump_dir / f"{to_hex(event['root'])}.json").read_bytes())
        assert tree.root == event["root"] and len(tree) == event["size"]
        for value in tree.values:
            on_chain[leaf_hash(OG_LEAF_ENCODING, value)] += 1
    expected = Counter(leaf_hash(OG_LEAF_ENCODING, leaf(r).values()) for r in batch_records)
    assert on_chain == expected, "every leaf must be recorded in exactly one root, and nothing else"

    for digest in single_digests:
        assert registry.is_settled(digest)
    single_events = [
        log["args"]["digest"]
        for event in (registry.contract.events.IndividualSettled, registry.contract.events.MetadataSettled)
        for log in event.get_logs(from_block=0)
    ]
    assert Counter(single_events) == Counter(single_digests), "each digest must be settled by exactly one event"
    assert registry.counters().inferences_in_batches == len(batch_records)

    permit2 = Permit2Client(w3, chain.deployment.permit2)
    facilitator = PaymentFacilitatorClient(w3, chain.deployment.payment_facilitator)
    per_payment = Counter((event.payer, event.nonce) for event in facilitator.settled_payments(from_block=0))
    total = 0
    for record in payments:
        auth = record["paymentPayload"]["payload"]["permit2Authorization"]
        key = (auth["from"], int(auth["nonce"]))
        assert permit2.nonce_spent(*key)
        assert per_payment[key] == 1, f"payment {key} settled {per_payment[key]} times"
        total += int(auth["permitted"]["amount"])
    assert sum(per_payment.values()) == len(payments)
    assert opg_balance(chain, PAY_TO) - paid_before == total


def queued_digests(db: Path | str) -> list[bytes]:
    """The digests of the queue's individual and metadata records (an SQLite file or a PostgreSQL URL)."""
    store = open_store(db, create=False)
    try:
        return [
            parse_bytes32(item.record()["digest"], "digest")
            for item in store.items()
            if item.lane is not None and item.lane.value in ("individual", "metadata")
        ]
    finally:
        store.close()
