"""Typed clients for the SettlementRegistry (build and send settlements, read state, check inclusion) and the
TeeRegistry (TEE types, measurements and PCRs, secp256k1 and RSA registration, heartbeats, views)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from og_settle._attestation import IndividualSettlement, MetadataSettlement, RsaTeeRegistration, TeeRegistration
from og_settle._errors import InvalidInput
from og_settle._hashing import tee_message_hash
from og_settle._hex import keccak256, parse_address, parse_bytes32, to_hex
from og_settle.clients._base import ContractClient
from og_settle.clients._tx import ContractCall, Receipt, TxSender
from og_settle.tee import KeyType, heartbeat_message_hash, open_gradient_digest

__all__ = [
    "KEY_TYPES",
    "OpenGradientSettlement",
    "RecordedBatch",
    "RecordedSettlement",
    "RegisteredTee",
    "RegistryCounters",
    "SettlementRegistryClient",
    "TeeRegistryClient",
]

_SETTLEMENT_KINDS: Final = ("none", "individual", "metadata", "opengradient")
# ITeeRegistry.KeyType and DisabledBy, by value.
KEY_TYPES: Final = ("none", *(kind.name.lower() for kind in sorted(KeyType)))  # og_settle.tee.KeyType, by value
_DISABLED_BY: Final = ("none", "operator", "admin")
_MAX_DA_POINTER_LENGTH: Final = 256


@dataclass(frozen=True, slots=True)
class OpenGradientSettlement:
    """OpenGradient's individual settlement, as ``SettlementRegistry.settleOpenGradient`` takes it.

    The RSA TEE signs only ``tee_message_hash(input_hash, output_hash, timestamp)``; the payer and DA pointer are the
    relayer's word (see ISettlementRegistry).

    Attributes:
        tee_id: keccak256 of the TEE's DER public key.
        input_hash: keccak256 of the canonical request.
        output_hash: keccak256 of the output.
        timestamp: the TEE's timestamp (seconds).
        payer: who paid (OpenGradient's ``eth_address``).
        da_pointer: where the full record is stored (for example a Walrus blob id), 0..256 bytes.
    """

    tee_id: bytes
    input_hash: bytes
    output_hash: bytes
    timestamp: int
    payer: str
    da_pointer: bytes = b""

    def __post_init__(self) -> None:
        object.__setattr__(self, "tee_id", parse_bytes32(self.tee_id, "tee_id"))
        object.__setattr__(self, "input_hash", parse_bytes32(self.input_hash, "input_hash"))
        object.__setattr__(self, "output_hash", parse_bytes32(self.output_hash, "output_hash"))
        if type(self.timestamp) is not int or not 0 <= self.timestamp < 2**256:
            raise InvalidInput(f"timestamp: expected an integer in [0, 2**256), got {self.timestamp!r}")
        object.__setattr__(self, "payer", parse_address(self.payer, "payer"))
        if not isinstance(self.da_pointer, bytes) or len(self.da_pointer) > _MAX_DA_POINTER_LENGTH:
            raise InvalidInput(f"da_pointer: expected at most {_MAX_DA_POINTER_LENGTH} bytes")

    @property
    def message_hash(self) -> bytes:
        """The 32 bytes the TEE signs with RSA-PSS."""
        return tee_message_hash(self.input_hash, self.output_hash, self.timestamp)

    @property
    def digest(self) -> bytes:
        """What the registry records it under: ``keccak256(teeId ‖ message_hash)``."""
        return open_gradient_digest(self.tee_id, self.input_hash, self.output_hash, self.timestamp)

    def as_abi(self) -> tuple[bytes, bytes, bytes, int, str, bytes]:
        return (self.tee_id, self.input_hash, self.output_hash, self.timestamp, self.payer, self.da_pointer)


@dataclass(frozen=True, slots=True)
class RegisteredTee:
    """A TEE as the TeeRegistry stores it.

    Attributes:
        tee_id: its id (keccak256 of the public key: 64-byte secp256k1 key or RSA DER).
        key_type: ``secp256k1`` or ``rsa``.
        signer: a secp256k1 TEE's signer address (the zero address for RSA TEEs).
        enabled: False once disabled.
        disabled_by: ``none``, ``operator`` or ``admin``.
        tee_type: the TEE type of its measurement (0 = LLMProxy).
        registered_at: block timestamp of registration.
        last_heartbeat: signed timestamp of its last heartbeat (registration time until one arrives).
        operator: who registered it.
        measurement: its measurement (for Nitro: the pcrHash).
        attestation_hash: keccak256 of its attestation report.
        tls_certificate_hash: keccak256 of its TLS certificate (zero when not pinned).
        payment_address: where its payments go.
        endpoint: its public endpoint.
    """

    tee_id: bytes
    key_type: str
    signer: str
    enabled: bool
    disabled_by: str
    tee_type: int
    registered_at: int
    last_heartbeat: int
    operator: str
    measurement: bytes
    attestation_hash: bytes
    tls_certificate_hash: bytes
    payment_address: str
    endpoint: str


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

    def settle_open_gradient_call(self, settlement: OpenGradientSettlement, signature: bytes) -> ContractCall:
        """``settleOpenGradient(settlement, signature)``; ``signature`` is the RSA TEE's PSS signature over
        ``settlement.message_hash`` (raw bytes, base64-decoded)."""
        return self._call(
            "settleOpenGradient",
            (settlement.as_abi(), bytes(signature)),
            f"settleOpenGradient(teeId={to_hex(settlement.tee_id)}, inputHash={to_hex(settlement.input_hash)})",
        )

    def settle_individual_batch_call(self, items: Sequence[Any], *, item_gas: int | None = None) -> ContractCall:
        """``settleIndividualBatch(batch)``: many ``IndividualBatchItem``s (ECDSA and OpenGradient RSA records
        alike) in one transaction, each isolated under ``item_gas`` (see ``og_settle.clients.encode_individual_batch``).
        """
        from og_settle.clients._individual_batch import DEFAULT_INDIVIDUAL_ITEM_GAS, encode_individual_batch

        batch = encode_individual_batch(items, item_gas=item_gas or DEFAULT_INDIVIDUAL_ITEM_GAS)
        return self._call("settleIndividualBatch", (batch,), f"settleIndividualBatch({len(items)} items)")

    def individual_batch_outcomes(self, receipt: Receipt, count: int) -> list[Any]:
        """Per-item ``IndividualOutcome``s of a mined ``settleIndividualBatch`` of ``count`` items, in batch order:
        an item settled unless a ``SettlementItemFailed`` event names it (with its decoded error). A reverted
        transaction settled nothing; every item is reported with the error ``BatchReverted``."""
        from og_settle.clients._errors import NamedError
        from og_settle.clients._individual_batch import IndividualOutcome

        if not receipt.succeeded:
            return [IndividualOutcome(i, False, NamedError(name="BatchReverted")) for i in range(count)]
        failed = self.indexed_failures(receipt, "SettlementItemFailed")
        return [
            IndividualOutcome(i, False, self.decode_error(failed[i])) if i in failed else IndividualOutcome(i, True)
            for i in range(count)
        ]

    def send_settle_open_gradient(
        self, sender: TxSender, settlement: OpenGradientSettlement, signature: bytes, **wait: Any
    ) -> Receipt:
        return sender.send(self.settle_open_gradient_call(settlement, signature), **wait)

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

    def open_gradient_digest(self, settlement: OpenGradientSettlement) -> bytes:
        """The registry's own digest of an OpenGradient settlement (equals ``settlement.digest``)."""
        return bytes(
            self._read(
                "openGradientDigest",
                settlement.tee_id,
                settlement.input_hash,
                settlement.output_hash,
                settlement.timestamp,
            )
        )

    def max_heartbeat_age(self) -> int:
        """Seconds an RSA TEE's last heartbeat may be old for ``settleOpenGradient`` (0: not required)."""
        return int(self._read("maxHeartbeatAge"))

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

        Returns ``(batch id, TEE signer)`` (the signer is the zero address for RSA TEEs, whose leaves carry RSA-PSS
        bytes); raises ContractRevert naming the failed check (UnknownBatchRoot, InvalidInclusionProof, TeeNotActive,
        InvalidTeeSignature, InvalidRsaTeeSignature)."""
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
        for name in ("IndividualSettled", "MetadataSettled", "OpenGradientSettled"):
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


class TeeRegistryClient(ContractClient):
    """One deployed TeeRegistry: TEE types, measurements, registration (secp256k1 and RSA), heartbeats and views.
    Writes are ``ContractCall``s for a ``TxSender``; reads are retried eth_calls with named reverts."""

    CONTRACT = "TeeRegistry"

    # -- writes ------------------------------------------------------------------------------------------------

    def add_tee_type_call(self, tee_type: int, name: str) -> ContractCall:
        return self._call("addTeeType", (tee_type, name), f"addTeeType({tee_type}, {name!r})")

    def approve_measurement_call(self, measurement: bytes, tee_type: int, version: str) -> ContractCall:
        measurement = parse_bytes32(measurement, "measurement")
        return self._call(
            "approveMeasurement", (measurement, tee_type, version), f"approveMeasurement({to_hex(measurement)})"
        )

    def approve_pcrs_call(self, pcrs: tuple[bytes, bytes, bytes], tee_type: int, version: str) -> ContractCall:
        """``approvePcrs``: the measurement becomes ``keccak256(pcr0 ‖ pcr1 ‖ pcr2)`` (48 bytes each)."""
        for index, pcr in enumerate(pcrs):
            if len(pcr) != 48:
                raise InvalidInput(f"pcr{index}: expected 48 bytes, got {len(pcr)}")
        return self._call(
            "approvePcrs", (*pcrs, tee_type, version), f"approvePcrs({to_hex(keccak256(b''.join(pcrs)))})"
        )

    def revoke_measurement_call(self, measurement: bytes) -> ContractCall:
        measurement = parse_bytes32(measurement, "measurement")
        return self._call("revokeMeasurement", (measurement,), f"revokeMeasurement({to_hex(measurement)})")

    def register_tee_call(self, registration: TeeRegistration, proof_of_possession: bytes) -> ContractCall:
        """``registerTee``: a secp256k1 TEE with its ECDSA proof of possession."""
        return self._call(
            "registerTee",
            (registration.as_abi(), bytes(proof_of_possession)),
            f"registerTee(teeId={to_hex(registration.tee_id)})",
        )

    def register_rsa_tee_call(self, registration: RsaTeeRegistration, proof_of_possession: bytes) -> ContractCall:
        """``registerRsaTee``: an RSA TEE; the proof is its RSA-PSS signature over
        ``registry_domain.digest(registration.struct_hash(operator))``."""
        return self._call(
            "registerRsaTee",
            (registration.as_abi(), bytes(proof_of_possession)),
            f"registerRsaTee(teeId={to_hex(registration.tee_id)})",
        )

    def heartbeat_call(self, tee_id: bytes, timestamp: int, signature: bytes) -> ContractCall:
        """``heartbeat``: an RSA TEE's RSA-PSS over ``heartbeat_message`` or a secp256k1 TEE's ECDSA signature over
        ``secp256k1_heartbeat_digest``."""
        tee_id = parse_bytes32(tee_id, "tee_id")
        return self._call(
            "heartbeat", (tee_id, timestamp, bytes(signature)), f"heartbeat(teeId={to_hex(tee_id)}, ts={timestamp})"
        )

    def disable_tee_call(self, tee_id: bytes) -> ContractCall:
        tee_id = parse_bytes32(tee_id, "tee_id")
        return self._call("disableTee", (tee_id,), f"disableTee({to_hex(tee_id)})")

    def enable_tee_call(self, tee_id: bytes) -> ContractCall:
        tee_id = parse_bytes32(tee_id, "tee_id")
        return self._call("enableTee", (tee_id,), f"enableTee({to_hex(tee_id)})")

    def set_heartbeat_window_call(self, window: int) -> ContractCall:
        return self._call("setHeartbeatWindow", (window,), f"setHeartbeatWindow({window})")

    # -- reads -------------------------------------------------------------------------------------------------

    @staticmethod
    def heartbeat_message(tee_id: bytes, timestamp: int) -> bytes:
        """What an RSA TEE signs for a heartbeat: ``keccak256(teeId ‖ uint256 timestamp)``."""
        return heartbeat_message_hash(tee_id, timestamp)

    def secp256k1_heartbeat_digest(self, tee_id: bytes, timestamp: int) -> bytes:
        """What a secp256k1 TEE signs for a heartbeat: the EIP-712 digest of ``Heartbeat(bytes32 teeId,uint256
        timestamp)`` under this registry's domain."""
        from eth_abi.abi import encode

        from og_settle._attestation import tee_registry_domain

        struct_hash = keccak256(
            encode(
                ["bytes32", "bytes32", "uint256"],
                [keccak256(b"Heartbeat(bytes32 teeId,uint256 timestamp)"), parse_bytes32(tee_id, "tee_id"), timestamp],
            )
        )
        return tee_registry_domain(int(self.w3.eth.chain_id), self.address).digest(struct_hash)

    def get_tee(self, tee_id: bytes) -> RegisteredTee | None:
        """The registered TEE, or None if no TEE has this id."""
        tee_id = parse_bytes32(tee_id, "tee_id")
        row = self._read("getTee", tee_id)
        (key_type, signer, enabled, disabled_by, tee_type, registered_at, last_heartbeat, operator) = row[:8]
        (measurement, attestation_hash, tls_hash, payment_address, endpoint) = row[8:]
        if int(key_type) == 0:
            return None
        return RegisteredTee(
            tee_id=tee_id,
            key_type=KEY_TYPES[int(key_type)],
            signer=str(signer),
            enabled=bool(enabled),
            disabled_by=_DISABLED_BY[int(disabled_by)],
            tee_type=int(tee_type),
            registered_at=int(registered_at),
            last_heartbeat=int(last_heartbeat),
            operator=str(operator),
            measurement=bytes(measurement),
            attestation_hash=bytes(attestation_hash),
            tls_certificate_hash=bytes(tls_hash),
            payment_address=str(payment_address),
            endpoint=str(endpoint),
        )

    def tee_public_key(self, tee_id: bytes) -> tuple[str, bytes]:
        """``(key type, public key)``: the DER SubjectPublicKeyInfo for RSA TEEs; empty for secp256k1 TEEs."""
        key_type, public_key = self._read("teePublicKey", parse_bytes32(tee_id, "tee_id"))
        return KEY_TYPES[int(key_type)], bytes(public_key)

    def is_active(self, tee_id: bytes) -> bool:
        return bool(self._read("isActive", parse_bytes32(tee_id, "tee_id")))

    def is_live(self, tee_id: bytes) -> bool:
        """Active, with a heartbeat (or registration) at most ``heartbeat_window()`` seconds old."""
        return bool(self._read("isLive", parse_bytes32(tee_id, "tee_id")))

    def active_signer(self, tee_id: bytes) -> str:
        """An active secp256k1 TEE's signer address (the zero address otherwise)."""
        return str(self._read("activeSigner", parse_bytes32(tee_id, "tee_id")))

    def heartbeat_window(self) -> int:
        return int(self._read("heartbeatWindow"))

    def tee_type_name(self, tee_type: int) -> str:
        return str(self._read("teeTypeName", tee_type))

    def compute_pcr_hash(self, pcr0: bytes, pcr1: bytes, pcr2: bytes) -> bytes:
        return bytes(self._read("computePcrHash", pcr0, pcr1, pcr2))

    def get_measurement(self, measurement: bytes) -> tuple[str, int, int, str]:
        """``(status, tee type, approved at, version)``; status is ``none``, ``approved`` or ``revoked``."""
        status, tee_type, approved_at, version = self._read("getMeasurement", parse_bytes32(measurement, "measurement"))
        return ("none", "approved", "revoked")[int(status)], int(tee_type), int(approved_at), str(version)

    def tee_count(self) -> int:
        return int(self._read("teeCount"))

    def _pages(self, count: int, fetch: Any, page: int) -> list[bytes]:
        ids: list[bytes] = []
        for offset in range(0, count, page):
            ids.extend(bytes(tee_id) for tee_id in fetch(offset, page))
        return ids

    def active_tee_ids(self, *, page: int = 200) -> list[bytes]:
        """Every active TEE, in registration order (paged eth_calls)."""
        return self._pages(self.tee_count(), lambda o, n: self._read("activeTeeIds", o, n), page)

    def active_tee_ids_by_type(self, tee_type: int, *, page: int = 200) -> list[bytes]:
        count = int(self._read("teeCountByType", tee_type))
        return self._pages(count, lambda o, n: self._read("activeTeeIdsByType", tee_type, o, n), page)

    def active_tee_ids_by_owner(self, operator: str, *, page: int = 200) -> list[bytes]:
        operator = parse_address(operator, "operator")
        count = int(self._read("teeCountByOwner", operator))
        return self._pages(count, lambda o, n: self._read("activeTeeIdsByOwner", operator, o, n), page)
