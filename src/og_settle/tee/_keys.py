"""The TEE key types side by side: which kinds exist, how a key is read, and one verify for both.

``KeyType`` numbers are the registry's (``ITeeRegistry.KeyType``; 0 there means "not registered"). A TEE public
key is either a :class:`Secp256k1PublicKey` (64 bytes) or an :class:`RsaPublicKey` (DER SPKI); both have ``tee_id``
and ``verify(message_hash, signature)``. Signing keys are :class:`TeeKey` (secp256k1) and :class:`RsaTeeKey`; both have
``tee_id`` and ``sign_message_hash``.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from og_settle._errors import InvalidInput
from og_settle._hex import parse_bytes32, parse_hex_bytes
from og_settle.tee._rsa import RsaPublicKey, RsaTeeKey
from og_settle.tee._secp256k1 import Secp256k1PublicKey, TeeKey, recover_signer

__all__ = [
    "KeyType",
    "RegisteredTeeKey",
    "TeePublicKey",
    "TeeSigningKey",
    "load_signing_key",
    "parse_public_key",
    "verify_tee_signature",
]

TeePublicKey = Secp256k1PublicKey | RsaPublicKey
TeeSigningKey = TeeKey | RsaTeeKey


class KeyType(enum.IntEnum):
    """The kind of a TEE's signing key.

    Attributes:
        SECP256K1: a secp256k1 key: 64-byte public key, 65-byte ECDSA signatures, teeId = keccak256(x ‖ y).
        RSA: an RSA key (2048-4096 bits): DER SPKI public key, RSASSA-PSS signatures, teeId = keccak256(DER).
    """

    SECP256K1 = 1
    RSA = 2

    @classmethod
    def of(cls, key: TeePublicKey | TeeSigningKey) -> KeyType:
        if isinstance(key, Secp256k1PublicKey | TeeKey):
            return cls.SECP256K1
        return cls.RSA


@dataclass(frozen=True, slots=True)
class RegisteredTeeKey:
    """A TEE's active key as the TEE registry reports it: the signer address of a secp256k1 TEE, the public key of an
    RSA TEE (or both).

    Attributes:
        tee_id: The TEE's id.
        key_type: The kind of key.
        signer: The registered signer address (secp256k1 TEEs).
        public_key: The registered public key (RSA TEEs; secp256k1 when the registry returns it).
    """

    tee_id: bytes
    key_type: KeyType
    signer: str | None = None
    public_key: TeePublicKey | None = None

    def __post_init__(self) -> None:
        if self.signer is None and self.public_key is None:
            raise InvalidInput("registered key: needs a signer address or a public key")
        if self.public_key is not None and KeyType.of(self.public_key) is not self.key_type:
            kind = KeyType.of(self.public_key).name
            raise InvalidInput(f"registered key: a {kind} key for a {self.key_type.name} TEE")

    def verify(self, message_hash: bytes, signature: bytes) -> bool:
        """True when ``signature`` over ``message_hash`` was made by this registered key (never raises on bad bytes)."""
        if self.public_key is not None:
            return self.public_key.verify(message_hash, signature)
        try:
            return recover_signer(message_hash, signature) == self.signer
        except InvalidInput:
            return False


def parse_public_key(value: Any, key_type: KeyType | None = None) -> TeePublicKey:
    """A TEE public key from a typed key, PEM text, DER or 64/65-byte secp256k1 bytes (or their ``0x`` hex).

    Without ``key_type`` the kind is told by the encoding: PEM or a DER sequence is RSA, 64 or 65 bytes secp256k1.
    """
    if isinstance(value, Secp256k1PublicKey | RsaPublicKey):
        key: TeePublicKey = value
    elif isinstance(value, str | bytes) and (
        "-----BEGIN" in value if isinstance(value, str) else b"-----BEGIN" in value
    ):
        key = RsaPublicKey.from_pem(value)
    else:
        raw = parse_hex_bytes(value, "public_key")
        if key_type is KeyType.RSA or (key_type is None and len(raw) not in (64, 65)):
            key = RsaPublicKey(raw)
        else:
            key = Secp256k1PublicKey(raw)
    if key_type is not None and KeyType.of(key) is not key_type:
        raise InvalidInput(f"public_key: a {KeyType.of(key).name} key where a {key_type.name} key was expected")
    return key


def verify_tee_signature(public_key: TeePublicKey, message_hash: bytes, signature: bytes) -> bool:
    """True when ``signature`` over the 32-byte ``message_hash`` was made by ``public_key``.

    secp256k1: 65-byte low-s ECDSA over the hash itself. RSA: RSASSA-PSS (SHA-256, MGF1-SHA-256, 32-byte salt) with
    the hash as the message.
    """
    return public_key.verify(message_hash, signature)


def load_signing_key(*, env: str | None = None, path: Path | None = None) -> TeeSigningKey:
    """A TEE signing key from an environment variable or a file, never from the command line.

    The text is a PEM RSA private key, or a secp256k1 private key as ``0x`` + 64 hex digits. Errors name the source
    but never echo the key.
    """
    if (env is None) == (path is None):
        raise InvalidInput("give the TEE key through exactly one of an environment variable or a file")
    if env is not None:
        text = os.environ.get(env)
        source = f"${env}"
        if not text:
            raise InvalidInput(f"{source}: not set (it must hold the TEE's private key)")
    else:
        assert path is not None
        source = str(path)
        try:
            text = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as err:
            raise InvalidInput(f"{source}: cannot read the TEE key ({type(err).__name__})") from None
    text = text.strip()
    if "-----BEGIN" in text:
        try:
            return RsaTeeKey.from_pem(text)
        except InvalidInput:
            raise InvalidInput(f"{source}: not a readable unencrypted PEM RSA private key") from None
    try:
        return TeeKey(parse_bytes32(text, "private_key"))
    except InvalidInput:
        raise InvalidInput(f"{source}: expected a PEM RSA private key or 0x + 64 hex digits (secp256k1)") from None
