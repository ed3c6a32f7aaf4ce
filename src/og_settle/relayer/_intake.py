"""Intake: parse, verify off-chain and normalise the records a relayer is asked to settle.

One record is one JSON object (one line of JSONL) with a ``kind``:

``{"kind": "inference", "mode": "batch"|"individual"|"metadata"|"private", ...}``
    ``tee_id``, ``timestamp`` and ``tee_signature`` always; ``input_hash`` and ``output_hash`` for batch,
    individual and private; ``payer`` for individual and metadata; for metadata the full record instead of the
    hashes: ``model`` (model id), ``input`` and ``output`` (UTF-8 strings, or ``0x`` hex under ``input_hex`` /
    ``output_hex``) and optional ``metadata`` (a string, a JSON object - stored as canonical JSON -, or
    ``metadata_hex``). An optional ``ref`` (string) is the caller's own reference and is kept.

``{"kind": "payment", "paymentPayload": {...}, "paymentRequirements": {...}, "amount": "..."}``
    An x402 v2 ``PaymentPayload`` and the ``PaymentRequirements`` it pays; ``amount`` (decimal string) is what
    to settle for the upto scheme (default: the permitted maximum). Optional ``ref``.

``{"kind": "settlement_data", "settlement_type": "batch"|"individual"|"private", "data": "<base64 JSON>"}``
    OpenGradient's settlement data as a gateway sends it to ``POST /settle_data`` (the ``x-settlement-type`` and
    ``x-settlement-data`` headers; see :class:`og_settle.tee.SettlementData`): snake_case keys, a base64 signature
    (RSA-PSS for OpenGradient's enclaves), a decimal-string timestamp. A batch record becomes a batch leaf carrying
    the raw signature bytes; an individual record (an RSA TEE's, its ``input`` and ``output`` matching the signed
    hashes) is settled with ``settleOpenGradient`` under ``keccak256(teeId ‖ message)``, with the optional
    ``da_pointer`` (text: where the full record is stored) recorded beside it; ``private`` carries nothing to
    settle. Optional ``ref``.

Verification before acceptance: field shapes and sizes; the timestamp must lie in the registry's window; and the
TEE's signature, against the key the TEE registry holds for ``tee_id`` (:class:`TeeDirectory`):

- a batch or private leaf's signer must be the registry's *active* key: a 65-byte ECDSA signature over the EIP-712
  ``Inference`` struct for a secp256k1 TEE, RSASSA-PSS over ``keccak256(inputHash ‖ outputHash ‖ uint256
  timestamp)`` for an RSA TEE. A leaf whose TEE is not active is refused (``tee_not_active``), one whose signature
  does not verify is refused (``invalid_tee_signature``). Without a directory the registry cannot be asked (a
  65-byte signature must still recover to the teeId's own signer): the leaf is refused (``tee_unverifiable``), or,
  only when ``allow_unverified`` is set, queued marked ``"tee_verified": false`` and reported ``unverified``;
- individual and metadata records carry an EIP-712 signature that must recover to the TEE's signer (the last 20
  bytes of ``tee_id``), and with a directory the TEE must be active as well.

For payments, ``og_settle._x402_verify.verify_payment`` (spender, recipient, token, amounts, time window, signature, and
with a chain reader also nonce, allowance and balance), whose x402 reason code becomes the rejection reason.

Idempotency keys: a batch or private record's leaf hash, an individual or metadata record's EIP-712 digest (the
key the registry records it under), and a payment's ``keccak256(abi.encode(payer, nonce))``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from eth_abi.abi import encode

from og_settle._attestation import (
    IndividualSettlement,
    MetadataSettlement,
    settlement_domain,
)
from og_settle._errors import InvalidInput
from og_settle._hashing import SettlementMode
from og_settle._hex import keccak256, parse_address, parse_bytes32, parse_hex_bytes, parse_uint256, to_hex
from og_settle._merkle import TEE_SIGNATURE_MAX_BYTES, InferenceLeaf
from og_settle._x402 import PaymentPayload, PaymentRequirements, ReasonCode
from og_settle._x402_verify import verify_payment
from og_settle.relayer._intake_checks import (
    DEFAULT_MAX_RECORD_BYTES,
    IntakeConfig,
    Rejected,
    active_key,
    check_tee_signature,
    in_window,
    leaf_item,
)
from og_settle.relayer._intake_og import parse_settlement_data, settlement_data_record
from og_settle.relayer._states import ItemKind, Lane
from og_settle.relayer._store import NewItem
from og_settle.relayer._tee_directory import RegistryTeeDirectory, StaticTeeDirectory, TeeDirectory

__all__ = [
    "DEFAULT_MAX_RECORD_BYTES",
    "IntakeConfig",
    "ParsedLine",
    "RegistryTeeDirectory",
    "Rejected",
    "StaticTeeDirectory",
    "TeeDirectory",
    "parse_jsonl",
    "parse_record",
    "parse_settlement_data",
    "payment_key",
]


_INFERENCE_FIELDS: Final = frozenset(
    {
        "kind",
        "mode",
        "ref",
        "tee_id",
        "input_hash",
        "output_hash",
        "timestamp",
        "tee_signature",
        "payer",
        "model",
        "input",
        "output",
        "metadata",
        "input_hex",
        "output_hex",
        "metadata_hex",
    }
)
_PAYMENT_FIELDS: Final = frozenset({"kind", "ref", "paymentPayload", "paymentRequirements", "amount"})


def _lane(value: Any) -> Lane:
    if not isinstance(value, str):
        raise Rejected("invalid_record", f"mode: expected a string, got {type(value).__name__}")
    try:
        return Lane(SettlementMode.parse(value).value)
    except InvalidInput as err:
        raise Rejected("invalid_record", f"mode: {err}") from None


def _text_or_hex(obj: Mapping[str, Any], name: str, *, required: bool, max_len: int) -> bytes:
    text, hexed = obj.get(name), obj.get(f"{name}_hex")
    if text is not None and hexed is not None:
        raise InvalidInput(f"{name}: give either {name} or {name}_hex, not both")
    if hexed is not None:
        return parse_hex_bytes(hexed, f"{name}_hex", max_len=max_len)
    if text is None:
        if required:
            raise InvalidInput(f"{name}: missing")
        return b""
    if isinstance(text, str):
        data = text.encode()
    elif name == "metadata" and isinstance(text, Mapping):
        data = json.dumps(text, sort_keys=True, separators=(",", ":")).encode()
    else:
        raise InvalidInput(f"{name}: expected a string, got {type(text).__name__}")
    if len(data) > max_len:
        raise InvalidInput(f"{name}: {len(data)} bytes is over the limit of {max_len}")
    return data


def _timestamp(obj: Mapping[str, Any], config: IntakeConfig, now: float) -> int:
    value = obj.get("timestamp")
    if value is None:
        raise InvalidInput("timestamp: missing")
    if type(value) is not int:
        raise InvalidInput(f"timestamp: expected a JSON integer, got {value!r}")
    return in_window(parse_uint256(value, "timestamp"), config, now)


def _inference(obj: Mapping[str, Any], config: IntakeConfig, source: str, now: float) -> NewItem:
    unknown = sorted(set(obj) - _INFERENCE_FIELDS)
    if unknown:
        raise InvalidInput(f"{unknown[0]}: unknown field for an inference record")
    lane = _lane(obj.get("mode", "batch"))
    ref = obj.get("ref")
    if ref is not None and not isinstance(ref, str | int):
        raise InvalidInput(f"ref: expected a string, got {type(ref).__name__}")
    if "tee_id" not in obj:
        raise InvalidInput("tee_id: missing")
    tee_id = parse_bytes32(obj["tee_id"], "tee_id")
    timestamp = _timestamp(obj, config, now)
    if "tee_signature" not in obj:
        raise InvalidInput("tee_signature: missing")
    signature = parse_hex_bytes(obj["tee_signature"], "tee_signature", max_len=TEE_SIGNATURE_MAX_BYTES)
    domain = settlement_domain(config.deployment.chain_id, config.deployment.settlement_registry)
    payload: dict[str, Any] = {"ref": ref, "tee_id": to_hex(tee_id), "timestamp": timestamp}
    payload["tee_signature"] = to_hex(signature)

    if lane is Lane.METADATA:
        for name in ("input_hash", "output_hash"):
            if name in obj:
                raise InvalidInput(f"{name}: a metadata record carries input and output, and the hashes follow")
        model = obj.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidInput("model: expected the model id as a non-empty string")
        record = MetadataSettlement(
            tee_id=tee_id,
            timestamp=timestamp,
            payer=parse_address(obj.get("payer"), "payer") if "payer" in obj else _missing("payer"),
            model_id=model,
            input=_text_or_hex(obj, "input", required=True, max_len=64 * 1024),
            output=_text_or_hex(obj, "output", required=True, max_len=64 * 1024),
            metadata=_text_or_hex(obj, "metadata", required=False, max_len=64 * 1024),
        )
        digest = domain.digest(record.struct_hash())
        check_tee_signature(tee_id, digest, signature)
        if config.tee_directory is not None:
            active_key(config, tee_id)
        payload.update(
            payer=record.payer,
            model=record.model_id,
            input_hex=to_hex(record.input),
            output_hex=to_hex(record.output),
            metadata_hex=to_hex(record.metadata),
            input_hash=to_hex(record.input_hash),
            output_hash=to_hex(record.output_hash),
            digest=to_hex(digest),
        )
        return NewItem(kind=ItemKind.INFERENCE, lane=lane, key=digest, payload=payload, source=source)

    for name in ("model", "input", "output", "metadata", "input_hex", "output_hex", "metadata_hex"):
        if name in obj:
            raise InvalidInput(f"{name}: only metadata records carry the full data")
    input_hash = parse_bytes32(obj.get("input_hash"), "input_hash") if "input_hash" in obj else _missing("input_hash")
    output_hash = (
        parse_bytes32(obj.get("output_hash"), "output_hash") if "output_hash" in obj else _missing("output_hash")
    )
    payload.update(input_hash=to_hex(input_hash), output_hash=to_hex(output_hash))

    if lane is Lane.INDIVIDUAL:
        settlement = IndividualSettlement(
            tee_id=tee_id,
            input_hash=input_hash,
            output_hash=output_hash,
            timestamp=timestamp,
            payer=parse_address(obj.get("payer"), "payer") if "payer" in obj else _missing("payer"),
        )
        digest = domain.digest(settlement.struct_hash())
        check_tee_signature(tee_id, digest, signature)
        if config.tee_directory is not None:
            active_key(config, tee_id)
        payload.update(payer=settlement.payer, digest=to_hex(digest))
        return NewItem(kind=ItemKind.INFERENCE, lane=lane, key=digest, payload=payload, source=source)

    # batch and private: a StandardMerkleTree leaf
    if "payer" in obj:
        payload["payer"] = parse_address(obj["payer"], "payer")
    leaf = InferenceLeaf(
        tee_id=tee_id, input_hash=input_hash, output_hash=output_hash, tee_signature=signature, timestamp=timestamp
    )
    return leaf_item(leaf, lane, config, domain, payload, source)


def _missing(name: str) -> Any:
    raise InvalidInput(f"{name}: missing")


def payment_key(payer: str, nonce: int) -> bytes:
    """The idempotency key of a payment: ``keccak256(abi.encode(payer, nonce))``."""
    return keccak256(encode(["address", "uint256"], [parse_address(payer, "payer"), nonce]))


def _payment(obj: Mapping[str, Any], config: IntakeConfig, source: str, now: float) -> NewItem:
    unknown = sorted(set(obj) - _PAYMENT_FIELDS)
    if unknown:
        raise InvalidInput(f"{unknown[0]}: unknown field for a payment record")
    if "paymentPayload" not in obj:
        raise InvalidInput("paymentPayload: missing")
    if "paymentRequirements" not in obj:
        raise InvalidInput("paymentRequirements: missing")
    try:
        payload = PaymentPayload.from_json(obj["paymentPayload"])
        requirements = PaymentRequirements.from_json(obj["paymentRequirements"])
    except InvalidInput as err:
        reason = "invalid_x402_version" if "x402Version" in str(err) else "invalid_payload"
        raise Rejected(reason, str(err), ItemKind.PAYMENT) from None
    deployment = config.deployment
    if requirements.chain_id != deployment.chain_id:
        raise Rejected(
            "invalid_network",
            f"paymentRequirements.network is {requirements.network}, this relayer settles on chain "
            f"{deployment.chain_id}",
            ItemKind.PAYMENT,
        )
    auth = payload.payload.authorization
    amount = auth.amount
    if obj.get("amount") is not None:
        amount = parse_uint256(obj["amount"], "amount")
        if auth.scheme.is_upto:
            if not 0 < amount <= auth.amount:
                raise Rejected(
                    "permit2_invalid_amount", f"amount {amount} is not in (0, {auth.amount}]", ItemKind.PAYMENT
                )
        elif amount != auth.amount:
            raise Rejected(
                "permit2_amount_mismatch",
                f"amount {amount} differs from the exact permitted amount {auth.amount}",
                ItemKind.PAYMENT,
            )
    if config.relayer is None and config.relayers and auth.scheme.is_upto and auth.facilitator is not None:
        known = {address.lower() for address in config.relayers}
        if auth.facilitator.lower() not in known:
            raise Rejected(
                ReasonCode.UPTO_FACILITATOR_MISMATCH.value,
                f"witness.facilitator: signed {auth.facilitator}, which no relayer instance of this queue signs with "
                f"({', '.join(sorted(config.relayers))})",
                ItemKind.PAYMENT,
            )
    verdict = verify_payment(
        payload,
        requirements,
        spender=deployment.payment_facilitator,
        now=int(now),
        reader=config.chain_reader,
        settler=config.relayer,
        permit2=deployment.permit2,
    )
    if not verdict.is_valid:
        reason = str(verdict.invalid_reason)
        raise Rejected(reason, f"payment from {auth.owner} (nonce {auth.nonce}) failed verification", ItemKind.PAYMENT)
    ref = obj.get("ref")
    if ref is not None and not isinstance(ref, str | int):
        raise InvalidInput(f"ref: expected a string, got {type(ref).__name__}")
    stored = {
        "ref": ref,
        "payer": auth.owner,
        "nonce": str(auth.nonce),
        "deadline": auth.deadline,
        "amount": str(amount),
        "paymentPayload": payload.to_json(),
        "paymentRequirements": requirements.to_json(),
    }
    return NewItem(
        kind=ItemKind.PAYMENT,
        lane=Lane.PAYMENT,
        key=payment_key(auth.owner, auth.nonce),
        payload=stored,
        source=source,
    )


def parse_record(obj: Any, config: IntakeConfig, *, source: str, now: float | None = None) -> NewItem:
    """Verify one decoded record; raises ``Rejected`` with a reason code (and the field) when it is not valid."""
    current = time.time() if now is None else now
    if not isinstance(obj, Mapping):
        raise Rejected("malformed", f"expected a JSON object, got {type(obj).__name__}")
    kind = obj.get("kind")
    try:
        if kind == "inference":
            return _inference(obj, config, source, current)
        if kind == "payment":
            return _payment(obj, config, source, current)
        if kind == "settlement_data":
            return settlement_data_record(obj, config, source, current)
    except Rejected:
        raise
    except InvalidInput as err:
        item_kind = ItemKind.PAYMENT if kind == "payment" else ItemKind.INFERENCE
        raise Rejected("invalid_payload" if kind == "payment" else "invalid_record", str(err), item_kind) from None
    raise Rejected(
        "unknown_kind", f"kind: expected 'inference', 'payment' or 'settlement_data', got {kind!r}", ItemKind.UNKNOWN
    )


@dataclass(frozen=True, slots=True)
class ParsedLine:
    """One JSONL line after parsing.

    Attributes:
        line: 1-based line number.
        source: ``<name>:<line>``.
        item: the verified record, or None when rejected.
        rejected: why it was rejected, or None.
        raw: the line's text (for storing a rejected record).
    """

    line: int
    source: str
    item: NewItem | None
    rejected: Rejected | None
    raw: str


def parse_jsonl(
    lines: Iterable[str | bytes],
    config: IntakeConfig,
    *,
    name: str = "stdin",
    now: float | None = None,
    first_line: int = 1,
) -> Iterator[ParsedLine]:
    """Parse JSONL; every non-blank line gives one ``ParsedLine`` (bad lines do not stop the good ones).

    ``first_line`` is the number of the first of ``lines`` (a chunk of a longer file)."""
    for number, raw_line in enumerate(lines, start=first_line):
        size = len(raw_line.encode() if isinstance(raw_line, str) else raw_line)
        text = raw_line if isinstance(raw_line, str) else raw_line.decode("utf-8", errors="replace")
        if not text.strip():
            continue
        source = f"{name}:{number}"
        if size > config.max_record_bytes:
            error = Rejected("oversized", f"{size} bytes is over the limit of {config.max_record_bytes}")
            yield ParsedLine(number, source, None, error, text[:4096])
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            yield ParsedLine(number, source, None, Rejected("malformed", f"not JSON: {err}"), text)
            continue
        try:
            item = parse_record(obj, config, source=source, now=now)
        except Rejected as err:
            yield ParsedLine(number, source, None, err, text)
            continue
        yield ParsedLine(number, source, item, None, text)
