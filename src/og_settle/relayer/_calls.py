"""What the relayer sends: the contract call that settles a batch, built from its queued records.

The chain-facing clients are imported lazily, so that the queue-only commands never import web3.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from og_settle._attestation import IndividualSettlement, MetadataSettlement
from og_settle._errors import InvariantViolation
from og_settle._hex import parse_bytes32, parse_hex_bytes, to_hex
from og_settle._merkle import InferenceLeaf
from og_settle.relayer._config import RelayerConfig
from og_settle.relayer._states import Lane
from og_settle.relayer._store import Batch, Item

__all__ = ["ChainView", "individual_item", "leaf", "payment_args", "settlement_call"]


@dataclass(slots=True)
class ChainView:
    """The chain-facing pieces: the node, the signing sender and the three contracts' clients."""

    w3: Any
    sender: Any
    registry: Any
    facilitator: Any
    permit2: Any


def settlement_call(chain: ChainView, config: RelayerConfig, batch: Batch, items: Sequence[Item]) -> Any:
    """The ``ContractCall`` that settles ``items`` (the batch's open items)."""
    if batch.lane is Lane.BATCH:
        if batch.root is None:
            raise InvariantViolation(f"batch {batch.id} has no root")
        pointer = (config.da_prefix + to_hex(batch.root)).encode()
        if config.blob_store is not None and batch.dump_path is not None:
            pointer = config.blob_store.pointer(batch.dump_path.rsplit("/", 1)[-1])
        return chain.registry.record_batch_call(batch.root, batch.size, pointer)
    if batch.lane is Lane.INDIVIDUAL:
        if len(items) > 1:  # one settleIndividualBatch: each item isolated, its failure named in the receipt
            return chain.registry.settle_individual_batch_call([individual_item(i.record()) for i in items])
        item = individual_item(items[0].record())
        if isinstance(item.settlement, IndividualSettlement):
            return chain.registry.settle_individual_call(item.settlement, item.signature)
        return chain.registry.settle_open_gradient_call(item.settlement, item.signature)
    if batch.lane is Lane.METADATA:
        record = items[0].record()
        return chain.registry.settle_metadata_call(
            MetadataSettlement(
                tee_id=parse_bytes32(record["tee_id"], "tee_id"),
                timestamp=int(record["timestamp"]),
                payer=record["payer"],
                model_id=record["model"],
                input=parse_hex_bytes(record["input_hex"], "input_hex"),
                output=parse_hex_bytes(record["output_hex"], "output_hex"),
                metadata=parse_hex_bytes(record["metadata_hex"], "metadata_hex"),
            ),
            parse_hex_bytes(record["tee_signature"], "tee_signature"),
        )
    if batch.lane is Lane.PAYMENT:
        return chain.facilitator.settle_batch_call([payment_args(item.record()) for item in items])
    raise InvariantViolation(f"batch {batch.id}: lane {batch.lane} has no transaction")


def leaf(record: dict[str, Any]) -> InferenceLeaf:
    return InferenceLeaf(
        tee_id=parse_bytes32(record["tee_id"], "tee_id"),
        input_hash=parse_bytes32(record["input_hash"], "input_hash"),
        output_hash=parse_bytes32(record["output_hash"], "output_hash"),
        tee_signature=parse_hex_bytes(record["tee_signature"], "tee_signature"),
        timestamp=int(record["timestamp"]),
    )


def individual_item(record: dict[str, Any]) -> Any:
    """The record's ``IndividualBatchItem``: an EIP-712 individual settlement, or an RSA TEE's OpenGradient one
    (``scheme: opengradient``, from x-settlement-data at intake) with its DA pointer."""
    from og_settle.clients import IndividualBatchItem, OpenGradientSettlement

    fields: dict[str, Any] = {
        "tee_id": parse_bytes32(record["tee_id"], "tee_id"),
        "input_hash": parse_bytes32(record["input_hash"], "input_hash"),
        "output_hash": parse_bytes32(record["output_hash"], "output_hash"),
        "timestamp": int(record["timestamp"]),
        "payer": record["payer"],
    }
    signature = parse_hex_bytes(record["tee_signature"], "tee_signature")
    if record.get("scheme") == "opengradient":
        pointer = str(record.get("da_pointer") or "").encode()  # where the full record is (the gateway's blob)
        return IndividualBatchItem(OpenGradientSettlement(**fields, da_pointer=pointer), signature)
    return IndividualBatchItem(IndividualSettlement(**fields), signature)


def payment_args(record: dict[str, Any]) -> tuple[Any, ...]:
    from og_settle._x402 import PaymentPayload

    payload = PaymentPayload.from_json(record["paymentPayload"])
    return payload.payload.authorization.payment_args(payload.payload.signature, int(record["amount"]))
