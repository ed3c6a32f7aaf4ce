"""Settlement receipts: what a merchant keeps of each payment, checkable later against the chain alone.

A :class:`Receipt` names the ERC-20 ``Transfer`` log that moved the payment: the transaction, its block, the
log's index in that block, the token, payer, payTo and amount; plus the payment's id and the digest of the
payload the merchant forwarded. :func:`check_receipt` needs nothing but a node: the transaction must have
succeeded in that block, and the log at that index must be the token's ``Transfer(payer, payTo, amount)``.

The receipt travels in the ``/settle`` answer's ``extensions`` (``extensions["og-settle"]["receipt"]``), which
the stock x402 SDK keeps in its ``SettleResponse.extensions`` and hands to the resource server unchanged.

``payloadDigest`` is ``keccak256`` of the ``paymentPayload`` JSON in canonical form (keys sorted, no
whitespace, UTF-8, as Python's ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)``), so a
merchant can tie the receipt to the payload it holds (``og-settle facilitator receipt verify --payload``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from og_settle._errors import InvalidInput
from og_settle._hex import keccak256, parse_address, parse_bytes32, parse_uint256, to_hex
from og_settle._time import iso_utc, parse_iso

__all__ = ["RECEIPT_KIND", "Receipt", "check_receipt", "payload_digest", "transfer_log_indexes"]

RECEIPT_KIND: Final = "og-settle/receipt/v1"
TRANSFER_TOPIC: Final = keccak256(b"Transfer(address,address,uint256)")


def payload_digest(payload: Any) -> str:
    """``0x`` + keccak256 of the payload's canonical JSON."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return to_hex(keccak256(text.encode()))


@dataclass(frozen=True, slots=True)
class Receipt:
    """One settled payment, as a merchant keeps it.

    Attributes:
        network: CAIP-2 network (``eip155:<chain id>``).
        transaction: the settling transaction's hash.
        block_number: the block that holds it.
        block_hash: that block's hash (a reorg that drops the block makes the receipt fail its check).
        log_index: the ``Transfer`` log's index in the block.
        asset: the token.
        payer: who paid (the ``Transfer``'s ``from``).
        pay_to: who was paid (its ``to``).
        amount: the amount moved (atomic units).
        scheme: the x402 scheme.
        payment_id: the facilitator's id of the payment (``GET /settle/status/<id>``).
        payload_digest: keccak256 of the canonical ``paymentPayload`` JSON.
        settled_at: Unix time the facilitator saw it settle.
    """

    network: str
    transaction: str
    block_number: int
    block_hash: str
    log_index: int
    asset: str
    payer: str
    pay_to: str
    amount: int
    scheme: str
    payment_id: str
    payload_digest: str
    settled_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": RECEIPT_KIND,
            "network": self.network,
            "transaction": self.transaction,
            "blockNumber": self.block_number,
            "blockHash": self.block_hash,
            "logIndex": self.log_index,
            "asset": self.asset,
            "payer": self.payer,
            "payTo": self.pay_to,
            "amount": str(self.amount),
            "scheme": self.scheme,
            "paymentId": self.payment_id,
            "payloadDigest": self.payload_digest,
            "settledAt": iso_utc(self.settled_at, milliseconds=False),
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "receipt") -> Receipt:
        """Parse a receipt; InvalidInput names the bad field."""
        if not isinstance(data, Mapping):
            raise InvalidInput(f"{where}: expected a JSON object, got {type(data).__name__}")
        if data.get("kind") != RECEIPT_KIND:
            raise InvalidInput(f"{where}.kind: expected {RECEIPT_KIND!r}, got {data.get('kind')!r}")

        def field(name: str) -> Any:
            if name not in data:
                raise InvalidInput(f"{where}.{name}: missing")
            return data[name]

        def whole(name: str) -> int:
            value = field(name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidInput(f"{where}.{name}: expected a non-negative integer, got {value!r}")
            return value

        network = field("network")
        if not isinstance(network, str) or not network.startswith("eip155:") or not network[7:].isdigit():
            raise InvalidInput(f"{where}.network: expected eip155:<chain id>, got {network!r}")
        settled_at = parse_iso(str(field("settledAt")), f"{where}.settledAt")
        scheme = field("scheme")
        return cls(
            network=network,
            transaction=to_hex(parse_bytes32(field("transaction"), f"{where}.transaction")),
            block_number=whole("blockNumber"),
            block_hash=to_hex(parse_bytes32(field("blockHash"), f"{where}.blockHash")),
            log_index=whole("logIndex"),
            asset=parse_address(field("asset"), f"{where}.asset"),
            payer=parse_address(field("payer"), f"{where}.payer"),
            pay_to=parse_address(field("payTo"), f"{where}.payTo"),
            amount=parse_uint256(field("amount"), f"{where}.amount"),
            scheme=str(scheme),
            payment_id=to_hex(parse_bytes32(field("paymentId"), f"{where}.paymentId")),
            payload_digest=to_hex(parse_bytes32(field("payloadDigest"), f"{where}.payloadDigest")),
            settled_at=settled_at,
        )

    @property
    def chain_id(self) -> int:
        return int(self.network.removeprefix("eip155:"))


def _topic_address(topic: bytes) -> str:
    return "0x" + topic[-20:].hex()


def _is_transfer(log: Mapping[str, Any], asset: str, payer: str, pay_to: str, amount: int) -> bool:
    topics = [bytes(t) for t in log["topics"]]
    data = bytes(log["data"])
    return (
        str(log["address"]).lower() == asset.lower()
        and len(topics) == 3
        and topics[0] == TRANSFER_TOPIC
        and _topic_address(topics[1]) == payer.lower()
        and _topic_address(topics[2]) == pay_to.lower()
        and len(data) == 32
        and int.from_bytes(data, "big") == amount
    )


def transfer_log_indexes(
    logs: Sequence[Mapping[str, Any]], asset: str, payer: str, pay_to: str, amount: int
) -> list[int]:
    """The block log indexes of ``asset``'s ``Transfer(payer, pay_to, amount)`` logs among ``logs``."""
    return [int(log["logIndex"]) for log in logs if _is_transfer(log, asset, payer, pay_to, amount)]


def check_receipt(receipt: Receipt, w3: Any) -> list[str]:
    """What the chain (through the connected ``w3``) contradicts in ``receipt``; empty when the chain holds it."""
    from web3.exceptions import TransactionNotFound

    chain_id = int(w3.eth.chain_id)
    if chain_id != receipt.chain_id:
        return [f"network: the node is chain {chain_id}, the receipt is for {receipt.network}"]
    try:
        mined = w3.eth.get_transaction_receipt(receipt.transaction)
    except TransactionNotFound:
        return [f"transaction: {receipt.transaction} is not on chain {chain_id}"]
    problems = []
    if int(mined["status"]) != 1:
        problems.append(f"transaction: {receipt.transaction} reverted")
    if int(mined["blockNumber"]) != receipt.block_number:
        problems.append(f"blockNumber: the transaction is in block {mined['blockNumber']}, not {receipt.block_number}")
    if to_hex(bytes(mined["blockHash"])) != receipt.block_hash:
        problems.append(f"blockHash: the block is {to_hex(bytes(mined['blockHash']))}, not {receipt.block_hash}")
    logs = [log for log in mined["logs"] if int(log["logIndex"]) == receipt.log_index]
    if not logs:
        problems.append(f"logIndex: the transaction has no log {receipt.log_index}")
    elif not _is_transfer(logs[0], receipt.asset, receipt.payer, receipt.pay_to, receipt.amount):
        problems.append(
            f"logIndex: log {receipt.log_index} is not {receipt.asset}'s Transfer({receipt.payer}, {receipt.pay_to},"
            f" {receipt.amount})"
        )
    return problems
