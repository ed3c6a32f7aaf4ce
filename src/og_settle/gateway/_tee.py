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
from og_settle._hashing import output_hash, tee_message_hash
from og_settle._hex import to_hex
from og_settle.gateway._models import InferenceRequest, ModelOutput

# INTEGRATION POINT: these come from og_settle.tee once it is on main (see _tee_pending's docstring).
from og_settle.gateway._tee_pending import (
    canonical_chat_request,
    canonical_completion_request,
    request_hash,
    rsa_pss_sign,
    rsa_tee_id,
)

__all__ = ["StandInTee", "TeeAttestation", "canonical_request"]


def canonical_request(request: InferenceRequest) -> dict[str, Any]:
    """The reduced request OpenGradient's gateway hashes, for a chat or a completion."""
    if request.kind == "chat":
        return canonical_chat_request(request.body)
    return canonical_completion_request(request.body)


def hashed_output(output: ModelOutput) -> bytes:
    """The output hash OpenGradient's gateway signs (tool calls take precedence on ``finish_reason == tool_calls``)."""
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

    def __init__(self, private_key: Any, *, clock: Callable[[], float] = time.time) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise InvalidInput("tee key: expected an RSA private key")
        if private_key.key_size < 2048:
            raise InvalidInput(f"tee key: {private_key.key_size} bits; the TEE registry needs at least 2048")
        self._key = private_key
        self._clock = clock
        self.public_key_der: bytes = private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key_pem: str = (
            private_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode("ascii")
        )
        self.tee_id: bytes = rsa_tee_id(self.public_key_der)

    @classmethod
    def generate(cls, bits: int = 2048) -> StandInTee:
        """A fresh key (for tests and throwaway runs)."""
        from cryptography.hazmat.primitives.asymmetric import rsa

        return cls(rsa.generate_private_key(public_exponent=65537, key_size=bits))

    @classmethod
    def load_or_create(cls, path: Path, bits: int = 2048) -> StandInTee:
        """The key in the PEM file at ``path``; a new one is generated and written there (mode 0600) if absent."""
        from cryptography.hazmat.primitives import serialization

        path = Path(path)
        if path.exists():
            try:
                key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            except (ValueError, TypeError) as err:
                raise InvalidInput(f"{path}: not an unencrypted PEM private key ({err})") from None
            return cls(key)
        tee = cls.generate(bits)
        pem = tee._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        return tee

    def attest(self, request: InferenceRequest, output: ModelOutput) -> TeeAttestation:
        """Hash the request and the output and sign them at the current time."""
        in_hash = request_hash(canonical_request(request))
        out_hash = hashed_output(output)
        timestamp = int(self._clock())
        signature = rsa_pss_sign(self._key, tee_message_hash(in_hash, out_hash, timestamp))
        return TeeAttestation(self.tee_id, in_hash, out_hash, timestamp, signature)

    def settlement_data(
        self,
        attestation: TeeAttestation,
        *,
        request: InferenceRequest | None = None,
        output: str | None = None,
        payer: str | None = None,
    ) -> dict[str, Any]:
        """OpenGradient's settlement data (the ``x-settlement-data`` JSON): snake_case keys, base64 signature.

        With ``request`` and ``output`` it is the individual form (adds ``input``, ``output``, ``timestamp``
        and ``eth_address``), which is what an individual settlement's DA blob holds.
        """
        data: dict[str, Any] = {
            "tee_id": to_hex(attestation.tee_id),
            "input_hash": to_hex(attestation.request_hash),
            "output_hash": to_hex(attestation.output_hash),
            "tee_signature": base64.b64encode(attestation.signature).decode("ascii"),
            "tee_timestamp": str(attestation.timestamp),
        }
        if request is not None and output is not None:
            data["input"] = json.dumps(canonical_request(request), sort_keys=True)
            data["output"] = output
            data["timestamp"] = str(attestation.timestamp)
            if payer is not None:
                data["eth_address"] = payer
        return data


def output_text_for_hash(output: ModelOutput) -> str:
    """The exact text the output hash covers (the answer, or the sorted tool-call JSON)."""
    if output.finish_reason == "tool_calls" and output.tool_calls:
        return json.dumps([dict(call) for call in output.tool_calls], sort_keys=True)
    return output.text
