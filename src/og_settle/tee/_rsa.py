"""RSA TEE keys, as OpenGradient's enclaves hold them: RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt.

- ``teeId = keccak256(DER SubjectPublicKeyInfo)``: the exact bytes the registry stores, so keys are kept in canonical
  DER (a PEM's body decodes to it). A DER that does not re-encode to itself is refused, since two encodings of one
  key would give two teeIds.
- Accepted keys: 2048 to 4096 bits, an odd public exponent of at least 65537 (what ``TeeRegistry`` accepts).
- The message a TEE signs is 32 bytes (``tee_message_hash``, or a heartbeat hash); PSS hashes it once more with
  SHA-256, so the PSS message representative is ``sha256(message)``, which the on-chain verifier recomputes with the
  sha256 precompile.
- Signatures are exactly as long as the modulus (256 bytes for RSA-2048); a signature of any other length is refused
  before any arithmetic. Signatures travel base64 on OpenGradient's wire and as raw bytes on chain.

All RSA arithmetic is PyPI ``cryptography`` (OpenSSL); nothing here does RSA by hand.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from og_settle._errors import InvalidInput, InvariantViolation
from og_settle._hex import keccak256, parse_hex_bytes, to_hex

__all__ = [
    "PSS_SALT_LENGTH",
    "RSA_MAX_BITS",
    "RSA_MIN_BITS",
    "RSA_MIN_EXPONENT",
    "RsaPublicKey",
    "RsaTeeKey",
    "decode_signature",
    "rsa_pss_sign",
    "rsa_pss_verify",
]

RSA_MIN_BITS: Final = 2048
RSA_MAX_BITS: Final = 4096
RSA_MIN_EXPONENT: Final = 65537
PSS_SALT_LENGTH: Final = 32


def _pss() -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=PSS_SALT_LENGTH)


def _spki_der(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _check_public(key: Any, field_name: str) -> rsa.RSAPublicKey:
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidInput(f"{field_name}: not an RSA public key ({type(key).__name__})")
    bits = key.key_size
    if not RSA_MIN_BITS <= bits <= RSA_MAX_BITS:
        raise InvalidInput(f"{field_name}: RSA key of {bits} bits; accepted are {RSA_MIN_BITS} to {RSA_MAX_BITS} bits")
    exponent = key.public_numbers().e
    if exponent < RSA_MIN_EXPONENT or exponent % 2 == 0:
        raise InvalidInput(f"{field_name}: public exponent {exponent}; it must be odd and at least {RSA_MIN_EXPONENT}")
    return key


def decode_signature(value: Any, field_name: str = "signature") -> bytes:
    """Signature bytes from ``bytes``, ``0x`` hex, or base64 text (OpenGradient's wire form); strict base64."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if not isinstance(value, str):
        raise InvalidInput(f"{field_name}: expected base64 or 0x hex text, got {type(value).__name__}")
    if value.startswith(("0x", "0X")):
        return parse_hex_bytes(value, field_name)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{field_name}: not base64 (nor 0x hex): {value[:40]!r}") from None


@dataclass(frozen=True, slots=True)
class RsaPublicKey:
    """An RSA TEE public key in canonical DER SubjectPublicKeyInfo form.

    Attributes:
        der: The DER-encoded SubjectPublicKeyInfo (what ``teeId`` hashes and the registry stores).
    """

    der: bytes
    _key: rsa.RSAPublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        der = parse_hex_bytes(self.der, "public_key")
        try:
            loaded = serialization.load_der_public_key(der)
        except (ValueError, UnsupportedAlgorithm):
            raise InvalidInput("public_key: not a DER SubjectPublicKeyInfo") from None
        key = _check_public(loaded, "public_key")
        if _spki_der(key) != der:
            raise InvalidInput("public_key: not canonical DER (it re-encodes differently; the teeId would change)")
        object.__setattr__(self, "der", der)
        object.__setattr__(self, "_key", key)

    @classmethod
    def from_pem(cls, pem: str | bytes) -> RsaPublicKey:
        """From a ``-----BEGIN PUBLIC KEY-----`` PEM (SubjectPublicKeyInfo)."""
        data = pem.encode() if isinstance(pem, str) else bytes(pem)
        try:
            loaded = serialization.load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm):
            raise InvalidInput("public_key: not a PEM public key (expected -----BEGIN PUBLIC KEY-----)") from None
        return cls(_spki_der(_check_public(loaded, "public_key")))

    @classmethod
    def parse(cls, value: Any) -> RsaPublicKey:
        """From an ``RsaPublicKey``, PEM text, DER bytes or ``0x`` hex of the DER."""
        if isinstance(value, RsaPublicKey):
            return value
        if (isinstance(value, str) and "-----BEGIN" in value) or (isinstance(value, bytes) and b"-----BEGIN" in value):
            return cls.from_pem(value)
        return cls(value)

    @property
    def tee_id(self) -> bytes:
        """``keccak256(der)``: OpenGradient's teeId of this key."""
        return keccak256(self.der)

    @property
    def pem(self) -> str:
        """The key as PEM text."""
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")

    @property
    def bits(self) -> int:
        return self._key.key_size

    @property
    def modulus(self) -> int:
        return self._key.public_numbers().n

    @property
    def exponent(self) -> int:
        return self._key.public_numbers().e

    @property
    def signature_length(self) -> int:
        """Bytes in a signature by this key (the modulus length)."""
        return (self.bits + 7) // 8

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True when ``signature`` is this key's RSASSA-PSS (SHA-256, MGF1-SHA-256, 32-byte salt) over ``message``."""
        return rsa_pss_verify(self, message, signature)


def rsa_pss_verify(public_key: RsaPublicKey, message: bytes, signature: bytes) -> bool:
    """Verify an RSASSA-PSS signature (SHA-256, MGF1-SHA-256, salt of exactly 32 bytes) over ``message``."""
    if not isinstance(signature, bytes | bytearray) or len(signature) != public_key.signature_length:
        return False
    try:
        public_key._key.verify(bytes(signature), bytes(message), _pss(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def rsa_pss_sign(private_key: rsa.RSAPrivateKey, message: bytes) -> bytes:
    """RSASSA-PSS (SHA-256, MGF1-SHA-256, 32-byte random salt) over ``message`` with a ``cryptography`` key."""
    return private_key.sign(bytes(message), _pss(), hashes.SHA256())


@dataclass(frozen=True, slots=True)
class RsaTeeKey:
    """An RSA TEE signing key (an enclave's key; outside an enclave it is a stand-in for tests and demos).

    Attributes:
        private_key: The ``cryptography`` RSA private key.
    """

    private_key: rsa.RSAPrivateKey = field(repr=False)
    _public: RsaPublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.private_key, rsa.RSAPrivateKey):
            raise InvalidInput(f"private_key: expected an RSA private key, got {type(self.private_key).__name__}")
        object.__setattr__(self, "_public", RsaPublicKey(_spki_der(self.private_key.public_key())))

    @classmethod
    def generate(cls, bits: int = 2048) -> RsaTeeKey:
        """A fresh key with exponent 65537."""
        if not RSA_MIN_BITS <= bits <= RSA_MAX_BITS:
            raise InvalidInput(f"bits: {bits}; accepted are {RSA_MIN_BITS} to {RSA_MAX_BITS}")
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=bits))

    @classmethod
    def from_pem(cls, pem: str | bytes, password: bytes | None = None) -> RsaTeeKey:
        """From a PKCS#8 or PKCS#1 PEM private key."""
        data = pem.encode() if isinstance(pem, str) else bytes(pem)
        try:
            key = serialization.load_pem_private_key(data, password=password)
        except (ValueError, TypeError, UnsupportedAlgorithm) as err:
            raise InvalidInput(f"private_key: not a readable PEM private key ({err})") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise InvalidInput(f"private_key: the PEM holds a {type(key).__name__}, not an RSA key")
        return cls(key)

    def to_pem(self) -> str:
        """The private key as unencrypted PKCS#8 PEM (for test fixtures and the stand-in TEE only)."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii")

    @property
    def public(self) -> RsaPublicKey:
        return self._public

    @property
    def tee_id(self) -> bytes:
        return self._public.tee_id

    def sign(self, message: bytes) -> bytes:
        """RSASSA-PSS over ``message`` (the 32-byte TEE message hash), verified before it is returned."""
        signature = rsa_pss_sign(self.private_key, message)
        if not self._public.verify(message, signature):
            raise InvariantViolation(f"RSA-PSS signature over {to_hex(bytes(message))} does not verify")
        return signature

    def sign_message_hash(self, message_hash: bytes) -> bytes:
        """A signature over OpenGradient's 32-byte TEE message hash; the same as :meth:`sign`."""
        return self.sign(message_hash)
