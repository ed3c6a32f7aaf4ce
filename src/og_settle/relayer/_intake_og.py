"""OpenGradient's settlement data at relayer intake: ``x-settlement-type`` and ``x-settlement-data`` become queue items.

A batch record becomes a batch leaf with the raw signature bytes (its signer checked against the TEE registry); an
RSA TEE's individual record is settled with ``SettlementRegistry.settleOpenGradient``; ``private`` settles nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final

from og_settle._attestation import settlement_domain
from og_settle._errors import InvalidInput
from og_settle._hashing import SettlementMode
from og_settle._hex import to_hex
from og_settle._merkle import InferenceLeaf
from og_settle.relayer._intake_checks import IntakeConfig, Rejected, active_key, in_window, leaf_item
from og_settle.relayer._states import ItemKind, Lane
from og_settle.relayer._store import NewItem
from og_settle.tee import KeyType, SettlementData, open_gradient_digest

__all__ = ["parse_settlement_data", "settlement_data_record"]

_SETTLEMENT_DATA_FIELDS: Final = frozenset({"kind", "ref", "settlement_type", "data", "da_pointer"})
# The registry's MAX_DA_POINTER_LENGTH.
_MAX_DA_POINTER_BYTES: Final = 256


def parse_settlement_data(
    settlement_type: str,
    data: str | bytes | Mapping[str, Any] | None,
    config: IntakeConfig,
    *,
    source: str,
    ref: str | int | None = None,
    now: float | None = None,
    da_pointer: str | None = None,
) -> NewItem | None:
    """Verify one OpenGradient settlement-data record (``x-settlement-type`` and ``x-settlement-data``).

    Returns the queue item, or None for ``private`` (nothing about the inference goes on chain). ``data`` is the
    header's base64 text, or the decoded JSON object. ``da_pointer`` (individual only) is where the full record is
    stored, recorded on chain with it (for example a Walrus blob id). Raises ``Rejected`` as :func:`parse_record`
    does.
    """
    current = time.time() if now is None else now
    try:
        mode = SettlementMode.parse(settlement_type)
    except InvalidInput as err:
        raise Rejected("invalid_record", f"x-settlement-type: {err}") from None
    if mode is SettlementMode.PRIVATE:
        return None
    if mode is SettlementMode.METADATA:
        raise Rejected("invalid_record", "x-settlement-type: metadata is not carried by x-settlement-data")
    if data is None:
        raise Rejected("invalid_record", f"x-settlement-data: missing (required for {mode.value})")
    try:
        record = (
            SettlementData.from_json(mode.value, data)
            if isinstance(data, Mapping)
            else SettlementData.from_header(mode.value, data)
        )
    except InvalidInput as err:
        raise Rejected("invalid_record", str(err)) from None
    timestamp = in_window(record.tee_timestamp, config, current)
    payload: dict[str, Any] = {
        "ref": ref,
        "format": "opengradient",
        "tee_id": to_hex(record.tee_id),
        "timestamp": timestamp,
        "tee_signature": to_hex(record.tee_signature),
        "input_hash": to_hex(record.input_hash),
        "output_hash": to_hex(record.output_hash),
    }
    if da_pointer is not None:
        if mode is not SettlementMode.INDIVIDUAL:
            raise Rejected("invalid_record", "da_pointer: only an individual record carries one (a batch has its own)")
        if not isinstance(da_pointer, str) or len(da_pointer.encode()) > _MAX_DA_POINTER_BYTES:
            raise Rejected("invalid_record", f"da_pointer: expected text of at most {_MAX_DA_POINTER_BYTES} bytes")
        payload["da_pointer"] = da_pointer
    if mode is SettlementMode.INDIVIDUAL:
        return _open_gradient_individual(record, config, payload, source)
    leaf = InferenceLeaf(record.tee_id, record.input_hash, record.output_hash, record.tee_signature, timestamp)
    domain = settlement_domain(config.deployment.chain_id, config.deployment.settlement_registry)
    return leaf_item(leaf, Lane.BATCH, config, domain, payload, source)


def _open_gradient_individual(
    record: SettlementData, config: IntakeConfig, payload: dict[str, Any], source: str
) -> NewItem:
    """An individual record, for ``SettlementRegistry.settleOpenGradient``: an RSA TEE's PSS signature over
    OpenGradient's message, recorded once under ``keccak256(teeId ‖ message)``."""
    try:
        record.check_payload()
    except InvalidInput as err:
        raise Rejected("invalid_record", str(err)) from None
    if config.tee_directory is None:
        if not config.allow_unverified:
            raise Rejected("tee_unverifiable", "no TEE registry to check the record's signer against")
        payload["tee_verified"] = False
    else:
        key = active_key(config, record.tee_id)
        if key.key_type is not KeyType.RSA:
            raise Rejected(
                "invalid_record",
                "individual settlement data is for RSA TEEs; a secp256k1 TEE signs an EIP-712 individual record",
            )
        if not key.verify(record.message_hash, record.tee_signature):
            raise Rejected("invalid_tee_signature", "tee_signature is not the registered RSA key's signature")
    digest = open_gradient_digest(record.tee_id, record.input_hash, record.output_hash, record.tee_timestamp)
    payload.update(
        scheme="opengradient",
        payer=record.eth_address,
        digest=to_hex(digest),
        input=record.input,
        output=record.output,
    )
    return NewItem(kind=ItemKind.INFERENCE, lane=Lane.INDIVIDUAL, key=digest, payload=payload, source=source)


def settlement_data_record(obj: Mapping[str, Any], config: IntakeConfig, source: str, now: float) -> NewItem:
    unknown = sorted(set(obj) - _SETTLEMENT_DATA_FIELDS)
    if unknown:
        raise InvalidInput(f"{unknown[0]}: unknown field for a settlement_data record")
    settlement_type = obj.get("settlement_type")
    if not isinstance(settlement_type, str):
        raise InvalidInput("settlement_type: expected private, batch or individual")
    ref = obj.get("ref")
    if ref is not None and not isinstance(ref, str | int):
        raise InvalidInput(f"ref: expected a string, got {type(ref).__name__}")
    item = parse_settlement_data(
        settlement_type, obj.get("data"), config, source=source, ref=ref, now=now, da_pointer=obj.get("da_pointer")
    )
    if item is None:
        raise Rejected("nothing_to_settle", "settlement_type private: nothing about the inference goes on chain")
    return item
