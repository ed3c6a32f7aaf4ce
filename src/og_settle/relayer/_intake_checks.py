"""What relayer intake checks every record against: its configuration, the time window, and TEE signatures.

A batch or private leaf's signer is checked against the TEE registry's active key for its teeId (see
:mod:`og_settle.relayer._tee_directory`); individual and metadata records carry EIP-712 signatures that must recover to
the TEE's signer. Refusals are :class:`Rejected`, with a machine-readable reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from og_settle._attestation import InferenceAttestation, recover_signer
from og_settle._deploy import Deployment
from og_settle._eip712 import Eip712Domain
from og_settle._errors import InvalidInput
from og_settle._hex import parse_address, to_hex
from og_settle._merkle import OG_LEAF_ENCODING, InferenceLeaf, leaf_hash
from og_settle._x402_verify import ChainReader
from og_settle.relayer._states import ItemKind, Lane
from og_settle.relayer._store import NewItem
from og_settle.relayer._tee_directory import TeeDirectory
from og_settle.tee import KeyType, RegisteredTeeKey, tee_message_hash

__all__ = [
    "DEFAULT_MAX_RECORD_BYTES",
    "IntakeConfig",
    "Rejected",
    "active_key",
    "check_leaf_signer",
    "check_tee_signature",
    "in_window",
    "leaf_item",
]

# A metadata record may carry 64 KiB of data, which hex or JSON escaping can double; 256 KiB leaves room.
DEFAULT_MAX_RECORD_BYTES = 256 * 1024


class Rejected(InvalidInput):
    """A record that will not be queued; ``reason`` is a machine-readable code, the message says why.

    Attributes:
        reason: ``malformed``, ``oversized``, ``unknown_kind``, ``invalid_record``, ``invalid_tee_signature``,
            ``tee_not_active``, ``tee_unverifiable``, ``timestamp_too_old``, ``timestamp_in_future``, or an x402
            reason code for payments.
        detail: the explanation, naming the field.
        kind: what the record claimed to be.
    """

    def __init__(self, reason: str, detail: str, kind: ItemKind = ItemKind.INFERENCE) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.kind = kind

    def __reduce__(self) -> tuple[type[Rejected], tuple[str, str, ItemKind]]:
        # Worker processes send refusals back pickled; the default would call Rejected(message) alone.
        return (Rejected, (self.reason, self.detail, self.kind))


@dataclass(frozen=True, slots=True)
class IntakeConfig:
    """What intake checks records against.

    Attributes:
        deployment: the contracts the queue settles to (chain id, registry, facilitator, Permit2).
        relayer: the relayer account (the only one allowed to settle upto payments naming it).
        relayers: the accounts of a fleet of relayer instances (several on one queue); an upto payment must name
            one of them. Unused when ``relayer`` is set.
        max_record_bytes: longest accepted record (one JSONL line), in bytes.
        max_age_seconds: oldest accepted inference timestamp, relative to now (the registry's ``maxAge``).
        max_future_drift_seconds: latest accepted inference timestamp, relative to now.
        chain_reader: chain reads for payment verification (nonce, allowance, balance); None checks offline only.
        verify_tee_signatures: check ECDSA TEE signatures (individual and metadata always need them).
        tee_directory: where each leaf's TEE key is looked up (the TEE registry); None: leaves cannot be checked.
        allow_unverified: queue leaves that cannot be checked (no directory), marked unverified, instead of
            refusing them.
    """

    deployment: Deployment
    relayer: str | None = None
    relayers: tuple[str, ...] = ()
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    max_age_seconds: int = 3 * 24 * 3600
    max_future_drift_seconds: int = 300
    chain_reader: ChainReader | None = None
    verify_tee_signatures: bool = True
    tee_directory: TeeDirectory | None = None
    allow_unverified: bool = False


def in_window(timestamp: int, config: IntakeConfig, now: float) -> int:
    if timestamp > now + config.max_future_drift_seconds:
        raise Rejected(
            "timestamp_in_future",
            f"timestamp {timestamp} is more than {config.max_future_drift_seconds}s after now ({int(now)})",
        )
    if timestamp < now - config.max_age_seconds:
        raise Rejected(
            "timestamp_too_old",
            f"timestamp {timestamp} is more than {config.max_age_seconds}s before "
            f"now ({int(now)}); the registry would refuse it",
        )
    return timestamp


def active_key(config: IntakeConfig, tee_id: bytes) -> RegisteredTeeKey:
    assert config.tee_directory is not None
    key = config.tee_directory.active_key(tee_id)
    if key is None:
        raise Rejected("tee_not_active", f"tee_id {to_hex(tee_id)} is not an active TEE in the registry")
    return key


def check_leaf_signer(leaf: InferenceLeaf, config: IntakeConfig, domain: Eip712Domain, payload: dict[str, Any]) -> None:
    """A batch (or private) leaf's signature against the registry's active key for its TEE."""
    if config.tee_directory is None:
        if len(leaf.tee_signature) == 65:  # offline, an ECDSA signer can still be checked against the teeId itself
            attestation = InferenceAttestation(leaf.tee_id, leaf.input_hash, leaf.output_hash, leaf.timestamp)
            check_tee_signature(leaf.tee_id, domain.digest(attestation.struct_hash()), leaf.tee_signature)
        if not config.allow_unverified:
            raise Rejected(
                "tee_unverifiable",
                "no TEE registry to check the leaf's signer against (give the node's RPC URL, or queue it explicitly "
                "unverified)",
            )
        payload["tee_verified"] = False
        return
    key = active_key(config, leaf.tee_id)
    if key.key_type is KeyType.RSA:
        message = tee_message_hash(leaf.input_hash, leaf.output_hash, leaf.timestamp)
        kind = "RSA-PSS signature over keccak256(inputHash || outputHash || timestamp)"
    else:
        attestation = InferenceAttestation(leaf.tee_id, leaf.input_hash, leaf.output_hash, leaf.timestamp)
        message = domain.digest(attestation.struct_hash())
        kind = "ECDSA signature over the EIP-712 Inference struct"
    if not key.verify(message, leaf.tee_signature):
        raise Rejected(
            "invalid_tee_signature",
            f"tee_signature ({len(leaf.tee_signature)} bytes) is not the registered {key.key_type.name} key's {kind}",
        )


def check_tee_signature(tee_id: bytes, digest: bytes, signature: bytes) -> None:
    expected = parse_address(to_hex(tee_id[12:]), "tee_id")
    try:
        recovered = recover_signer(digest, signature)
    except InvalidInput as err:
        raise Rejected("invalid_tee_signature", str(err)) from None
    if recovered != expected:
        raise Rejected(
            "invalid_tee_signature", f"tee_signature recovers to {recovered}, not to the TEE's signer {expected}"
        )


def leaf_item(
    leaf: InferenceLeaf, lane: Lane, config: IntakeConfig, domain: Eip712Domain, payload: dict[str, Any], source: str
) -> NewItem:
    if config.verify_tee_signatures:
        check_leaf_signer(leaf, config, domain, payload)
    key = leaf_hash(OG_LEAF_ENCODING, leaf.values())
    payload["leaf_hash"] = to_hex(key)
    return NewItem(kind=ItemKind.INFERENCE, lane=lane, key=key, payload=payload, source=source)
