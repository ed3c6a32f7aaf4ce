"""secp256k1 TEE keys: teeId and signer derivation, recovery of a 65-byte signature, and a signing key.

- ``teeId = keccak256(publicKey)`` over the 64-byte uncompressed public key (x ‖ y, no ``0x04``), and the TEE's
  signer address is the last 20 bytes of that same hash (its Ethereum address). ``TeeRegistry`` derives both on chain.
- Signatures are 65 bytes ``r ‖ s ‖ v`` with ``v`` in {27, 28} and low ``s`` (EIP-2), as OpenZeppelin's ``ECDSA``
  requires; anything else is refused before recovery.

Signing uses eth-keys (RFC 6979, low-s), recovery libsecp256k1 through coincurve. Nothing here imports ape or web3.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import coincurve
from eth_keys.datatypes import PrivateKey

from og_settle._errors import InvalidInput, InvariantViolation
from og_settle._hex import keccak256, parse_address, parse_bytes32, parse_hex_bytes, to_checksum_address, to_hex

if TYPE_CHECKING:  # the EIP-712 structs sit above this module; only their types are needed here
    from og_settle._attestation import (
        IndividualSettlement,
        InferenceAttestation,
        MetadataSettlement,
        TeeRegistration,
    )
    from og_settle._eip712 import Eip712Domain

__all__ = [
    "SECP256K1_N",
    "Secp256k1PublicKey",
    "TeeKey",
    "recover_signer",
    "secp256k1_public_key_bytes",
    "tee_id_for",
    "tee_signer_for",
]

SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def secp256k1_public_key_bytes(public_key: Any) -> bytes:
    """The 64-byte form (x ‖ y) of a public key given as 64 bytes, 65 with the ``0x04`` prefix, hex, or eth-keys."""
    raw = parse_hex_bytes(public_key, "public_key") if not hasattr(public_key, "to_bytes") else public_key.to_bytes()
    if len(raw) == 65 and raw[0] == 4:
        raw = raw[1:]
    if len(raw) != 64:
        raise InvalidInput(f"public_key: expected 64 bytes (x || y) or 65 with a 0x04 prefix, got {len(raw)} bytes")
    return bytes(raw)


def tee_id_for(public_key: Any) -> bytes:
    """The teeId of a secp256k1 TEE key: ``keccak256`` of its 64-byte uncompressed public key.

    ``public_key`` may be 64 bytes (x ‖ y), 65 bytes with the ``0x04`` prefix, either as hex, or an eth-keys
    ``PublicKey``. This is what ``TeeRegistry.registerTee`` derives on chain.
    """
    return keccak256(secp256k1_public_key_bytes(public_key))


def tee_signer_for(public_key: Any) -> str:
    """The checksummed signer address of a TEE key: the last 20 bytes of its teeId (its Ethereum address)."""
    return parse_address(to_hex(tee_id_for(public_key)[12:]), "signer")


def recover_signer(digest: bytes, signature: bytes) -> str:
    """The checksummed address that made the 65-byte ``signature`` over ``digest``.

    Raises InvalidInput for a signature the contracts would reject: wrong length, v not 27/28, or high s.
    """
    sig = parse_hex_bytes(signature, "signature")
    if len(sig) != 65:
        raise InvalidInput(f"signature: expected 65 bytes, got {len(sig)}")
    if sig[64] not in (27, 28):
        raise InvalidInput(f"signature: v must be 27 or 28, got {sig[64]}")
    if int.from_bytes(sig[32:64], "big") > SECP256K1_N // 2:
        raise InvalidInput("signature: s is in the upper half of the curve order (malleable form)")
    try:  # libsecp256k1 (coincurve, which eth-keys uses too) takes r || s || recovery id 0/1
        public_key = coincurve.PublicKey.from_signature_and_message(
            sig[:64] + bytes([sig[64] - 27]), parse_bytes32(digest, "digest"), hasher=None
        )
    except ValueError as err:  # r or s out of range, or no curve point for r
        raise InvalidInput(f"signature: does not recover to a public key ({err})") from None
    return to_checksum_address(keccak256(public_key.format(compressed=False)[1:])[12:])


@dataclass(frozen=True, slots=True)
class Secp256k1PublicKey:
    """A secp256k1 TEE public key.

    Attributes:
        raw: The 64-byte uncompressed public key (x ‖ y, no ``0x04`` prefix).
    """

    raw: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "raw", secp256k1_public_key_bytes(self.raw))

    @property
    def tee_id(self) -> bytes:
        """``keccak256(raw)``."""
        return keccak256(self.raw)

    @property
    def signer(self) -> str:
        """The key's Ethereum address (the last 20 bytes of its teeId)."""
        return parse_address(to_hex(self.tee_id[12:]), "signer")

    def verify(self, message_hash: bytes, signature: bytes) -> bool:
        """True when the 65-byte ``signature`` over the 32-byte ``message_hash`` was made by this key."""
        try:
            return recover_signer(message_hash, signature) == self.signer
        except InvalidInput:
            return False


@dataclass(frozen=True, slots=True)
class TeeKey:
    """A secp256k1 TEE signing key (in production it never leaves the enclave; here it signs test messages).

    Attributes:
        private_key: The 32-byte private key.
    """

    private_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        key = parse_bytes32(self.private_key, "private_key")
        if not 0 < int.from_bytes(key, "big") < SECP256K1_N:
            raise InvalidInput("private_key: not a valid secp256k1 private key")
        object.__setattr__(self, "private_key", key)

    @property
    def public_key(self) -> bytes:
        """The 64-byte uncompressed public key (x ‖ y)."""
        public: bytes = PrivateKey(self.private_key).public_key.to_bytes()
        return public

    @property
    def public(self) -> Secp256k1PublicKey:
        """The public key as a typed value."""
        return Secp256k1PublicKey(self.public_key)

    @property
    def tee_id(self) -> bytes:
        return tee_id_for(self.public_key)

    @property
    def address(self) -> str:
        return tee_signer_for(self.public_key)

    def sign_digest(self, digest: bytes) -> bytes:
        """A 65-byte (r ‖ s ‖ v) low-s signature over ``digest``, verified before it is returned."""
        signed = PrivateKey(self.private_key).sign_msg_hash(parse_bytes32(digest, "digest"))
        signature = signed.to_bytes()[:64] + bytes([signed.v + 27])  # eth-keys signs low-s (EIP-2)
        if recover_signer(digest, signature) != self.address:
            raise InvariantViolation(f"signature over {to_hex(digest)} does not recover to {self.address}")
        return signature

    def sign_message_hash(self, message_hash: bytes) -> bytes:
        """A signature over OpenGradient's 32-byte TEE message hash (``tee_message_hash``), as ``sign_digest``."""
        return self.sign_digest(message_hash)

    def sign_inference(self, domain: Eip712Domain, inference: InferenceAttestation) -> bytes:
        """The batch leaf's ``teeSignature``."""
        return self.sign_digest(domain.digest(inference.struct_hash()))

    def sign_individual(self, domain: Eip712Domain, settlement: IndividualSettlement) -> bytes:
        return self.sign_digest(domain.digest(settlement.struct_hash()))

    def sign_metadata(self, domain: Eip712Domain, record: MetadataSettlement) -> bytes:
        return self.sign_digest(domain.digest(record.struct_hash()))

    def sign_registration(self, domain: Eip712Domain, registration: TeeRegistration, operator: str) -> bytes:
        """The proof of possession ``registerTee`` checks (``domain`` is the TeeRegistry's)."""
        if registration.public_key != self.public_key:
            raise InvalidInput("registration.public_key: not this key's public key")
        return self.sign_digest(domain.digest(registration.struct_hash(operator)))
