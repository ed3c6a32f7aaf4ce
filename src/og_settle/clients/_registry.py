"""Typed client for the SettlementRegistry: build and send settlements, read state, check inclusion."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from og_settle._attestation import IndividualSettlement, MetadataSettlement
from og_settle._hex import parse_bytes32, to_hex
from og_settle.clients._base import ContractClient
from og_settle.clients._tx import ContractCall, Receipt, TxSender

__all__ = [
    "RecordedBatch",
    "RecordedSettlement",
    "RegistryCounters",
    "SettlementRegistryClient",
]

_SETTLEMENT_KINDS: Final = ("none", "individual", "metadata")


@dataclass(frozen=True, slots=True)
class RecordedBatch:
    """A batch root as the registry stores it.

    Attributes:
        root: the Merkle root.
        batch_id: sequential id (starting at 1).
        size: number of leaves.
        relayer: who recorded it.
        recorded_at: block timestamp of recording.
    """

    root: bytes
    batch_id: int
    size: int
    relayer: str
    recorded_at: int


@dataclass(frozen=True, slots=True)
class RecordedSettlement:
    """An individual or metadata settlement as the registry stores it.

    Attributes:
        digest: the EIP-712 digest it is recorded under.
        kind: ``individual`` or ``metadata``.
        relayer: who recorded it.
        recorded_at: block timestamp of recording.
    """

    digest: bytes
    kind: str
    relayer: str
    recorded_at: int


@dataclass(frozen=True, slots=True)
class RegistryCounters:
    """The registry's running totals.

    Individual and metadata settlements are not counted on chain (a counter would cost 2.9k gas per
    settlement); count their ``IndividualSettled`` / ``MetadataSettled`` events instead.

    Attributes:
        batches: batch roots recorded.
        inferences_in_batches: sum of recorded batch sizes.
    """

    batches: int
    inferences_in_batches: int


def _leaf_tuple(leaf: Any) -> tuple[Any, ...]:
    if hasattr(leaf, "values"):
        return tuple(leaf.values())
    return tuple(leaf)


class SettlementRegistryClient(ContractClient):
    """One deployed SettlementRegistry. Reads are eth_calls (retried on connection errors); writes are
    ``ContractCall``s that a ``TxSender`` signs and sends (``send_*`` do both)."""

    CONTRACT = "SettlementRegistry"

    # -- writes ------------------------------------------------------------------------------------------------

    def record_batch_call(self, root: bytes, size: int, da_pointer: bytes) -> ContractCall:
        """``recordBatch(root, size, daPointer)``."""
        root = parse_bytes32(root, "root")
        return self._call("recordBatch", (root, size, da_pointer), f"recordBatch(root={to_hex(root)}, size={size})")

    def settle_individual_call(self, settlement: IndividualSettlement, signature: bytes) -> ContractCall:
        """``settleIndividual(settlement, signature)``; ``signature`` is the TEE's EIP-712 signature."""
        return self._call(
            "settleIndividual",
            (settlement.as_abi(), signature),
            f"settleIndividual(teeId={to_hex(settlement.tee_id)}, inputHash={to_hex(settlement.input_hash)})",
        )

    def settle_metadata_call(self, record: MetadataSettlement, signature: bytes) -> ContractCall:
        """``settleMetadata(record, signature)``; ``signature`` is the TEE's EIP-712 signature."""
        return self._call(
            "settleMetadata",
            (record.as_abi(), signature),
            f"settleMetadata(teeId={to_hex(record.tee_id)}, model={record.model_id!r})",
        )

    def send_record_batch(self, sender: TxSender, root: bytes, size: int, da_pointer: bytes, **wait: Any) -> Receipt:
        return sender.send(self.record_batch_call(root, size, da_pointer), **wait)

    def send_settle_individual(
        self, sender: TxSender, settlement: IndividualSettlement, signature: bytes, **wait: Any
    ) -> Receipt:
        return sender.send(self.settle_individual_call(settlement, signature), **wait)

    def send_settle_metadata(
        self, sender: TxSender, record: MetadataSettlement, signature: bytes, **wait: Any
    ) -> Receipt:
        return sender.send(self.settle_metadata_call(record, signature), **wait)

    # -- reads -------------------------------------------------------------------------------------------------

    def get_batch(self, root: bytes) -> RecordedBatch | None:
        """The recorded batch for ``root``, or None if it was never recorded."""
        root = parse_bytes32(root, "root")
        relayer, batch_id, size, recorded_at = self._read("getBatch", root)
        if int(batch_id) == 0:
            return None
        return RecordedBatch(
            root=root, batch_id=int(batch_id), size=int(size), relayer=str(relayer), recorded_at=int(recorded_at)
        )

    def get_settlement(self, digest: bytes) -> RecordedSettlement | None:
        """The recorded individual or metadata settlement under ``digest``, or None."""
        digest = parse_bytes32(digest, "digest")
        kind, recorded_at, relayer = self._read("getSettlement", digest)
        if int(kind) == 0:
            return None
        return RecordedSettlement(
            digest=digest, kind=_SETTLEMENT_KINDS[int(kind)], relayer=str(relayer), recorded_at=int(recorded_at)
        )

    def is_settled(self, digest: bytes) -> bool:
        return bool(self._read("isSettled", parse_bytes32(digest, "digest")))

    def counters(self) -> RegistryCounters:
        batches, in_batches = self._read("counters")
        return RegistryCounters(
            batches=int(batches),
            inferences_in_batches=int(in_batches),
        )

    def individual_digest(self, settlement: IndividualSettlement) -> bytes:
        """The registry's own digest of ``settlement`` (what it records; equals the EIP-712 digest)."""
        return bytes(self._read("individualDigest", settlement.as_abi()))

    def metadata_digest(self, record: MetadataSettlement) -> bytes:
        return bytes(self._read("metadataDigest", record.as_abi()))

    def leaf_hash(self, leaf: Any) -> bytes:
        return bytes(self._read("leafHash", _leaf_tuple(leaf)))

    def verify_inclusion(self, root: bytes, leaf: Any, proof: Iterable[bytes]) -> bool:
        """True when ``root`` was recorded on chain and ``proof`` proves ``leaf`` in it."""
        return bool(self._read("verifyInclusion", parse_bytes32(root, "root"), _leaf_tuple(leaf), list(proof)))

    def verify_multi_inclusion(self, root: bytes, multiproof: Any) -> bool:
        """True when ``root`` was recorded and the multiproof (``StandardMerkleTree.multiproof``) proves its leaves."""
        return bool(
            self._read(
                "verifyMultiInclusion",
                parse_bytes32(root, "root"),
                [_leaf_tuple(leaf) for leaf in multiproof.leaves],
                list(multiproof.proof),
                list(multiproof.proof_flags),
            )
        )

    def verify_inference_signature(self, root: bytes, leaf: Any, proof: Iterable[bytes]) -> tuple[int, str]:
        """The complete proof that the leaf's TEE produced it and it was settled in a recorded batch.

        Returns ``(batch id, TEE signer)``; raises ContractRevert naming the failed check (UnknownBatchRoot,
        InvalidInclusionProof, TeeNotActive, InvalidTeeSignature)."""
        batch_id, signer = self._read(
            "verifyInferenceSignature", parse_bytes32(root, "root"), _leaf_tuple(leaf), list(proof)
        )
        return int(batch_id), str(signer)

    def batch_recorded_events(self, *, from_block: int = 0, to_block: int | str = "latest") -> list[dict[str, Any]]:
        """Every ``BatchRecorded`` event in the block range: batch id, root, relayer, size, DA pointer, tx."""
        event = self.contract.events.BatchRecorded

        def fetch() -> Any:
            return event.get_logs(from_block=from_block, to_block=to_block)

        logs = self._retrying(fetch, "eth_getLogs BatchRecorded")
        return [
            {
                "batch_id": int(log["args"]["batchId"]),
                "root": bytes(log["args"]["root"]),
                "relayer": str(log["args"]["relayer"]),
                "size": int(log["args"]["size"]),
                "da_pointer": bytes(log["args"]["daPointer"]),
                "tx_hash": bytes(log["transactionHash"]),
                "block_number": int(log["blockNumber"]),
            }
            for log in logs
        ]

    def settled_digests(self, receipt: Receipt) -> list[bytes]:
        """The digests an individual or metadata settlement transaction recorded."""
        digests = []
        for name in ("IndividualSettled", "MetadataSettled"):
            event = getattr(self.contract.events, name)()
            for log in receipt.logs:
                if log["address"].lower() != self.address.lower():
                    continue
                try:
                    decoded = event.process_log(log)
                except Exception:
                    continue
                digests.append(bytes(decoded["args"]["digest"]))
        return digests
