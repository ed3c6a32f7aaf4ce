"""The STAND-IN TEE: an RSA key in an ordinary process that hashes and signs answers as OpenGradient's enclaves do.

There is no enclave here and no attestation: the key lives in a file on the gateway's host, and nothing proves
to anyone which code holds it. What it does reproduce exactly is the enclave's *output*: for every answer,

* ``tee_request_hash`` = keccak256 of OpenGradient's canonical request (hex, no ``0x``);
* ``tee_output_hash`` = keccak256 of the answer text, or of ``json.dumps(tool_calls, sort_keys=True)`` when the
  model called tools (hex, no ``0x``);
* ``tee_timestamp`` = the signing time (unix seconds);
* ``tee_signature`` = base64 RSASSA-PSS (SHA-256, MGF1-SHA-256, 32-byte salt) over
  ``keccak256(requestHash ‖ outputHash ‖ uint256 timestamp)``;
* ``tee_id`` = ``0x`` + keccak256(DER SubjectPublicKeyInfo),

so OpenGradient's own verifier (the SDK's ``tee_verify.verify_response``) accepts it given the key the TEE
registry holds, and the same signature settles on chain. An operator replaces this with a real enclave that
signs the same way; the gateway around it does not change.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from og_settle._errors import InvalidInput
from og_settle._hex import to_hex
from og_settle.gateway._models import InferenceRequest, ModelOutput
from og_settle.tee import (
    RsaTeeKey,
    SettlementData,
    canonical_chat_request,
    canonical_completion_request,
    input_hash,
    output_hash,
    tee_message_hash,
)

__all__ = ["StandInTee", "TeeAttestation", "canonical_request", "output_text_for_hash"]


def canonical_request(request: InferenceRequest) -> dict[str, Any]:
    """The reduced request OpenGradient's gateway hashes, for a chat or a completion."""
    if request.kind == "chat":
        return canonical_chat_request(request.body)
    return canonical_completion_request(request.body)


def output_text_for_hash(output: ModelOutput) -> str:
    """The exact text the output hash covers: the answer, or ``json.dumps(tool_calls, sort_keys=True)``."""
    if output.finish_reason == "tool_calls" and output.tool_calls:
        return json.dumps([dict(call) for call in output.tool_calls], sort_keys=True)
    return output.text


def _hashed_output(output: ModelOutput) -> bytes:
    if output.finish_reason == "tool_calls" and output.tool_calls:
        return output_hash(tool_calls=[dict(call) for call in output.tool_calls])
    return output_hash(output.text)


@dataclass(frozen=True, slots=True)
class TeeAttestation:
    """What the TEE signed for one answer.

    Attributes:
        tee_id: keccak256 of the signing key's DER.
        request_hash: keccak256 of the canonical request.
        output_hash: keccak256 of the output.
        timestamp: signing time, unix seconds.
        signature: the RSA-PSS signature (raw bytes; base64 on the wire).
    """

    tee_id: bytes
    request_hash: bytes
    output_hash: bytes
    timestamp: int
    signature: bytes

    def response_fields(self) -> dict[str, Any]:
        """The ``tee_*`` fields of a gateway answer, spelled as OpenGradient's gateway spells them."""
        return {
            "tee_signature": base64.b64encode(self.signature).decode("ascii"),
            "tee_request_hash": self.request_hash.hex(),
            "tee_output_hash": self.output_hash.hex(),
            "tee_timestamp": self.timestamp,
            "tee_id": to_hex(self.tee_id),
        }


class StandInTee:
    """A STAND-IN for an enclave: holds an RSA signing key (no enclave, no attestation; see the module doc)."""

    def __init__(self, key: RsaTeeKey, *, clock: Callable[[], float] = time.time) -> None:
        if not isinstance(key, RsaTeeKey):
            raise InvalidInput(f"tee key: expected an RsaTeeKey, got {type(key).__name__}")
        self.key = key
        self._clock = clock

    @property
    def tee_id(self) -> bytes:
        """``keccak256(DER SubjectPublicKeyInfo)``."""
        return self.key.tee_id

    @property
    def public_key_der(self) -> bytes:
        """The DER SubjectPublicKeyInfo the TEE registry stores."""
        return self.key.public.der

    @property
    def public_key_pem(self) -> str:
        return self.key.public.pem

    @classmethod
    def generate(cls, bits: int = 2048) -> StandInTee:
        """A fresh key (for tests and throwaway runs)."""
        return cls(RsaTeeKey.generate(bits))

    @classmethod
    def load_or_create(cls, path: Path, bits: int = 2048) -> StandInTee:
        """The key in the PEM file at ``path``; a new one is generated and written there (mode 0600) if absent."""
        path = Path(path)
        if path.exists():
            try:
                return cls(RsaTeeKey.from_pem(path.read_bytes()))
            except InvalidInput as err:
                raise InvalidInput(f"{path}: {err}") from None
        tee = cls.generate(bits)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(tee.key.to_pem())
        return tee

    def attest(self, request: InferenceRequest, output: ModelOutput) -> TeeAttestation:
        """Hash the request and the output and sign them at the current time."""
        in_hash = input_hash(canonical_request(request))
        out_hash = _hashed_output(output)
        timestamp = int(self._clock())
        signature = self.key.sign_message_hash(tee_message_hash(in_hash, out_hash, timestamp))
        return TeeAttestation(self.tee_id, in_hash, out_hash, timestamp, signature)

    def settlement_data(
        self, attestation: TeeAttestation, request: InferenceRequest, output: ModelOutput, payer: str
    ) -> SettlementData:
        """OpenGradient's individual settlement data for this answer (what an individual DA blob holds)."""
        return SettlementData(
            mode="individual",
            tee_id=attestation.tee_id,
            input_hash=attestation.request_hash,
            output_hash=attestation.output_hash,
            tee_signature=attestation.signature,
            tee_timestamp=attestation.timestamp,
            input=canonical_request(request),
            output=output_text_for_hash(output),
            eth_address=payer,
        )
