"""The EIP-712 messages the contracts verify for secp256k1 TEEs.

TEE keys themselves (secp256k1 and RSA: ids, signing, verification) live in :mod:`og_settle.tee`; ``TeeKey``,
``tee_id_for``, ``tee_signer_for`` and ``recover_signer`` are re-exported here for existing imports.

What this mirrors (``contracts/interfaces/ITeeRegistry.sol`` and ``ISettlementRegistry.sol``):

- The settlement registry's domain is ``{name: "OG Settlement Registry", version: "1", chainId,
  verifyingContract}``; the TEE registry's is ``{name: "OG TEE Registry", version: "1", ...}``.
- Four typed structs: ``Inference`` (what a TEE signs for a batch leaf), ``IndividualSettlement``,
  ``MetadataSettlement`` (the full record; EIP-712 hashes its dynamic members, so it commits to
  ``inputHash = keccak256(input)`` and ``outputHash = keccak256(output)``), and ``TeeRegistration`` (the key's
  proof of possession). The payer is part of the individual and metadata structs.

Hashes are computed by hand with eth-abi and keccak, and signing (``og_settle.tee.TeeKey``) uses eth-keys;
:meth:`Eip712Domain.typed_data` gives the same message as eth-account typed data, and the tests check both agree and
that the contracts accept the signatures. Nothing here imports ape or web3.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

from eth_abi.abi import encode

from og_settle._eip712 import Eip712Domain
from og_settle._errors import InvalidInput
from og_settle._hex import UINT256_MAX, keccak256, parse_address, parse_bytes32, parse_hex_bytes

# The key types live in og_settle.tee; these names stay importable from here.
from og_settle.tee._secp256k1 import (
    TeeKey,
    recover_signer,
    secp256k1_public_key_bytes,
    tee_id_for,
    tee_signer_for,
)

__all__ = [
    "INDIVIDUAL_SETTLEMENT_TYPE",
    "INFERENCE_TYPE",
    "MAX_METADATA_SIZE",
    "METADATA_SETTLEMENT_TYPE",
    "RSA_TEE_REGISTRATION_TYPE",
    "SETTLEMENT_DOMAIN_NAME",
    "TEE_REGISTRATION_TYPE",
    "TEE_REGISTRY_DOMAIN_NAME",
    "IndividualSettlement",
    "InferenceAttestation",
    "MetadataSettlement",
    "RsaTeeRegistration",
    "TeeKey",
    "TeeRegistration",
    "recover_signer",
    "settlement_domain",
    "tee_id_for",
    "tee_registry_domain",
    "tee_signer_for",
]

SETTLEMENT_DOMAIN_NAME: Final = "OG Settlement Registry"
TEE_REGISTRY_DOMAIN_NAME: Final = "OG TEE Registry"
DOMAIN_VERSION: Final = "1"

INFERENCE_TYPE: Final = "Inference(bytes32 teeId,bytes32 inputHash,bytes32 outputHash,uint256 timestamp)"
INDIVIDUAL_SETTLEMENT_TYPE: Final = (
    "IndividualSettlement(bytes32 teeId,bytes32 inputHash,bytes32 outputHash,uint256 timestamp,address payer)"
)
METADATA_SETTLEMENT_TYPE: Final = (
    "MetadataSettlement(bytes32 teeId,uint256 timestamp,address payer,string modelId,bytes input,bytes output,"
    "bytes metadata)"
)
TEE_REGISTRATION_TYPE: Final = (
    "TeeRegistration(bytes32 teeId,address operator,bytes32 measurement,bytes32 attestationHash,"
    "address paymentAddress,string endpoint)"
)
RSA_TEE_REGISTRATION_TYPE: Final = (
    "RsaTeeRegistration(bytes32 teeId,address operator,bytes32 measurement,bytes32 attestationHash,"
    "bytes32 tlsCertificateHash,address paymentAddress,string endpoint)"
)
_INFERENCE_TYPEHASH: Final = keccak256(INFERENCE_TYPE.encode())
_INDIVIDUAL_SETTLEMENT_TYPEHASH: Final = keccak256(INDIVIDUAL_SETTLEMENT_TYPE.encode())
# SettlementRegistry.MAX_METADATA_SIZE: bytes of modelId + input + output + metadata together.
MAX_METADATA_SIZE: Final = 64 * 1024
# TeeRegistry.MAX_ENDPOINT_LENGTH.
MAX_ENDPOINT_LENGTH: Final = 256


def _check_timestamp(value: Any) -> int:
    if type(value) is not int or not 0 <= value <= UINT256_MAX:
        raise InvalidInput(f"timestamp: expected an integer in [0, 2**256), got {value!r}")
    return value


# EIP-712


@lru_cache(maxsize=64)  # immutable; intake asks for it once per record
def settlement_domain(chain_id: int, registry: str) -> Eip712Domain:
    """The SettlementRegistry's domain at ``registry`` on ``chain_id``."""
    return Eip712Domain(SETTLEMENT_DOMAIN_NAME, DOMAIN_VERSION, chain_id, registry)


def tee_registry_domain(chain_id: int, registry: str) -> Eip712Domain:
    """The TeeRegistry's domain at ``registry`` on ``chain_id``."""
    return Eip712Domain(TEE_REGISTRY_DOMAIN_NAME, DOMAIN_VERSION, chain_id, registry)


@dataclass(frozen=True, slots=True)
class InferenceAttestation:
    """``Inference``: what an ECDSA TEE signs for a batch leaf's ``teeSignature``.

    Attributes:
        tee_id: The TEE's id (32 bytes).
        input_hash: keccak256 of the request bytes (32 bytes).
        output_hash: keccak256 of the response bytes (32 bytes).
        timestamp: The TEE's timestamp in seconds.
    """

    tee_id: bytes
    input_hash: bytes
    output_hash: bytes
    timestamp: int

    def __post_init__(self) -> None:
        for name in ("tee_id", "input_hash", "output_hash"):
            object.__setattr__(self, name, parse_bytes32(getattr(self, name), name))
        _check_timestamp(self.timestamp)

    def struct_hash(self) -> bytes:
        # abi.encode of static members is their 32-byte words in order (the timestamp was range-checked).
        timestamp = self.timestamp.to_bytes(32, "big")
        words = (_INFERENCE_TYPEHASH, self.tee_id, self.input_hash, self.output_hash, timestamp)
        return keccak256(b"".join(words))

    def message(self) -> dict[str, Any]:
        return {
            "teeId": self.tee_id,
            "inputHash": self.input_hash,
            "outputHash": self.output_hash,
            "timestamp": self.timestamp,
        }

    def typed_data(self, domain: Eip712Domain) -> dict[str, Any]:
        return domain.typed_data(INFERENCE_TYPE, self.message())


@dataclass(frozen=True, slots=True)
class IndividualSettlement:
    """``IndividualSettlement``: one inference, bound to its payer, as the TEE signs it for individual mode.

    Attributes:
        tee_id: The TEE's id (32 bytes).
        input_hash: keccak256 of the request bytes (32 bytes).
        output_hash: keccak256 of the response bytes (32 bytes).
        timestamp: The TEE's timestamp in seconds.
        payer: The checksummed address that paid for the inference (non-zero).
    """

    tee_id: bytes
    input_hash: bytes
    output_hash: bytes
    timestamp: int
    payer: str

    def __post_init__(self) -> None:
        for name in ("tee_id", "input_hash", "output_hash"):
            object.__setattr__(self, name, parse_bytes32(getattr(self, name), name))
        _check_timestamp(self.timestamp)
        object.__setattr__(self, "payer", parse_address(self.payer, "payer"))

    def struct_hash(self) -> bytes:
        # abi.encode of static members is their 32-byte words in order; an address is left-padded to a word.
        words = (
            _INDIVIDUAL_SETTLEMENT_TYPEHASH,
            self.tee_id,
            self.input_hash,
            self.output_hash,
            self.timestamp.to_bytes(32, "big"),
            bytes(12) + bytes.fromhex(self.payer[2:]),
        )
        return keccak256(b"".join(words))

    def message(self) -> dict[str, Any]:
        return {
            "teeId": self.tee_id,
            "inputHash": self.input_hash,
            "outputHash": self.output_hash,
            "timestamp": self.timestamp,
            "payer": self.payer,
        }

    def typed_data(self, domain: Eip712Domain) -> dict[str, Any]:
        return domain.typed_data(INDIVIDUAL_SETTLEMENT_TYPE, self.message())

    def as_abi(self) -> tuple[bytes, bytes, bytes, int, str]:
        """The tuple ``settleIndividual`` takes, in the struct's field order."""
        return (self.tee_id, self.input_hash, self.output_hash, self.timestamp, self.payer)


@dataclass(frozen=True, slots=True)
class MetadataSettlement:
    """``MetadataSettlement``: the full record. Input and output hashes are keccak256 of the bytes, so with
    ``input`` = UTF-8 of ``json.dumps(request, sort_keys=True)`` they equal OpenGradient's ``inputHash``.

    Attributes:
        tee_id: The TEE's id (32 bytes).
        timestamp: The TEE's timestamp in seconds.
        payer: The checksummed address that paid for the inference (non-zero).
        model_id: The model identifier.
        input: The request bytes.
        output: The response bytes.
        metadata: Extra metadata bytes.
    """

    tee_id: bytes
    timestamp: int
    payer: str
    model_id: str
    input: bytes
    output: bytes
    metadata: bytes = field(default=b"")

    def __post_init__(self) -> None:
        object.__setattr__(self, "tee_id", parse_bytes32(self.tee_id, "tee_id"))
        _check_timestamp(self.timestamp)
        object.__setattr__(self, "payer", parse_address(self.payer, "payer"))
        if not isinstance(self.model_id, str):
            raise InvalidInput(f"model_id: expected a string, got {type(self.model_id).__name__}")
        for name in ("input", "output", "metadata"):
            if not isinstance(getattr(self, name), bytes):
                raise InvalidInput(f"{name}: expected bytes, got {type(getattr(self, name)).__name__}")
        if self.size > MAX_METADATA_SIZE:
            raise InvalidInput(f"metadata record: {self.size} bytes is over the limit of {MAX_METADATA_SIZE}")

    @property
    def size(self) -> int:
        """Bytes of model id, input, output and metadata together (what the contract caps)."""
        return len(self.model_id.encode()) + len(self.input) + len(self.output) + len(self.metadata)

    @property
    def input_hash(self) -> bytes:
        return keccak256(self.input)

    @property
    def output_hash(self) -> bytes:
        return keccak256(self.output)

    def struct_hash(self) -> bytes:
        return keccak256(
            encode(
                ["bytes32", "bytes32", "uint256", "address", "bytes32", "bytes32", "bytes32", "bytes32"],
                [
                    keccak256(METADATA_SETTLEMENT_TYPE.encode()),
                    self.tee_id,
                    self.timestamp,
                    self.payer,
                    keccak256(self.model_id.encode()),
                    self.input_hash,
                    self.output_hash,
                    keccak256(self.metadata),
                ],
            )
        )

    def message(self) -> dict[str, Any]:
        return {
            "teeId": self.tee_id,
            "timestamp": self.timestamp,
            "payer": self.payer,
            "modelId": self.model_id,
            "input": self.input,
            "output": self.output,
            "metadata": self.metadata,
        }

    def typed_data(self, domain: Eip712Domain) -> dict[str, Any]:
        return domain.typed_data(METADATA_SETTLEMENT_TYPE, self.message())

    def as_abi(self) -> tuple[bytes, int, str, str, bytes, bytes, bytes]:
        """The tuple ``settleMetadata`` takes, in the struct's field order."""
        return (self.tee_id, self.timestamp, self.payer, self.model_id, self.input, self.output, self.metadata)


@dataclass(frozen=True, slots=True)
class TeeRegistration:
    """What an operator submits to ``TeeRegistry.registerTee``.

    Attributes:
        public_key: The TEE's 64-byte uncompressed secp256k1 public key (x ‖ y).
        measurement: The approved enclave measurement (32 bytes).
        attestation_hash: keccak256 of the attestation report verified off-chain (32 bytes).
        payment_address: The checksummed address paid for this TEE's inferences.
        endpoint: The TEE's public endpoint (1..256 bytes of UTF-8).
    """

    public_key: bytes
    measurement: bytes
    attestation_hash: bytes
    payment_address: str
    endpoint: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "public_key", secp256k1_public_key_bytes(self.public_key))
        object.__setattr__(self, "measurement", parse_bytes32(self.measurement, "measurement"))
        object.__setattr__(self, "attestation_hash", parse_bytes32(self.attestation_hash, "attestation_hash"))
        object.__setattr__(self, "payment_address", parse_address(self.payment_address, "payment_address"))
        if not isinstance(self.endpoint, str) or not 0 < len(self.endpoint.encode()) <= MAX_ENDPOINT_LENGTH:
            raise InvalidInput(f"endpoint: expected 1..{MAX_ENDPOINT_LENGTH} bytes of text, got {self.endpoint!r}")

    @property
    def tee_id(self) -> bytes:
        return tee_id_for(self.public_key)

    @property
    def signer(self) -> str:
        return tee_signer_for(self.public_key)

    def struct_hash(self, operator: str) -> bytes:
        """The proof-of-possession struct hash for registration by ``operator``."""
        return keccak256(
            encode(
                ["bytes32", "bytes32", "address", "bytes32", "bytes32", "address", "bytes32"],
                [
                    keccak256(TEE_REGISTRATION_TYPE.encode()),
                    self.tee_id,
                    parse_address(operator, "operator"),
                    self.measurement,
                    self.attestation_hash,
                    self.payment_address,
                    keccak256(self.endpoint.encode()),
                ],
            )
        )

    def message(self, operator: str) -> dict[str, Any]:
        return {
            "teeId": self.tee_id,
            "operator": parse_address(operator, "operator"),
            "measurement": self.measurement,
            "attestationHash": self.attestation_hash,
            "paymentAddress": self.payment_address,
            "endpoint": self.endpoint,
        }

    def typed_data(self, domain: Eip712Domain, operator: str) -> dict[str, Any]:
        return domain.typed_data(TEE_REGISTRATION_TYPE, self.message(operator))

    def as_abi(self) -> tuple[bytes, bytes, bytes, str, str]:
        """The tuple ``registerTee`` takes, in the struct's field order."""
        return (self.public_key, self.measurement, self.attestation_hash, self.payment_address, self.endpoint)


@dataclass(frozen=True, slots=True)
class RsaTeeRegistration:
    """What an operator submits to ``TeeRegistry.registerRsaTee`` (an OpenGradient RSA enclave).

    The TEE proves possession by signing ``domain.digest(struct_hash(operator))`` (32 bytes) with RSASSA-PSS
    (SHA-256, MGF1-SHA-256, 32-byte salt), the TeeRegistry's EIP-712 domain binding chain id and registry address.

    Attributes:
        public_key: The TEE's RSA public key, DER SubjectPublicKeyInfo (teeId = keccak256 of these bytes).
        measurement: The approved enclave measurement (for AWS Nitro: keccak256(pcr0 ‖ pcr1 ‖ pcr2)).
        attestation_hash: keccak256 of the attestation report verified off-chain (32 bytes).
        tls_certificate_hash: keccak256 of the TEE's TLS certificate, or 32 zero bytes when not pinned.
        payment_address: The checksummed address paid for this TEE's inferences.
        endpoint: The TEE's public endpoint (1..256 bytes of UTF-8).
    """

    public_key: bytes
    measurement: bytes
    attestation_hash: bytes
    tls_certificate_hash: bytes
    payment_address: str
    endpoint: str

    def __post_init__(self) -> None:
        key = parse_hex_bytes(self.public_key, "public_key")
        if not key or key[0] != 0x30:
            raise InvalidInput("public_key: expected a DER SubjectPublicKeyInfo (starting 0x30)")
        object.__setattr__(self, "public_key", bytes(key))
        object.__setattr__(self, "measurement", parse_bytes32(self.measurement, "measurement"))
        object.__setattr__(self, "attestation_hash", parse_bytes32(self.attestation_hash, "attestation_hash"))
        object.__setattr__(
            self, "tls_certificate_hash", parse_bytes32(self.tls_certificate_hash, "tls_certificate_hash")
        )
        object.__setattr__(self, "payment_address", parse_address(self.payment_address, "payment_address"))
        if not isinstance(self.endpoint, str) or not 0 < len(self.endpoint.encode()) <= MAX_ENDPOINT_LENGTH:
            raise InvalidInput(f"endpoint: expected 1..{MAX_ENDPOINT_LENGTH} bytes of text, got {self.endpoint!r}")

    @property
    def tee_id(self) -> bytes:
        """keccak256(DER), OpenGradient's teeId."""
        return keccak256(self.public_key)

    def struct_hash(self, operator: str) -> bytes:
        """The proof-of-possession struct hash for registration by ``operator``."""
        return keccak256(
            encode(
                ["bytes32", "bytes32", "address", "bytes32", "bytes32", "bytes32", "address", "bytes32"],
                [
                    keccak256(RSA_TEE_REGISTRATION_TYPE.encode()),
                    self.tee_id,
                    parse_address(operator, "operator"),
                    self.measurement,
                    self.attestation_hash,
                    self.tls_certificate_hash,
                    self.payment_address,
                    keccak256(self.endpoint.encode()),
                ],
            )
        )

    def as_abi(self) -> tuple[bytes, bytes, bytes, bytes, str, str]:
        """The tuple ``registerRsaTee`` takes, in the struct's field order."""
        return (
            self.public_key,
            self.measurement,
            self.attestation_hash,
            self.tls_certificate_hash,
            self.payment_address,
            self.endpoint,
        )
