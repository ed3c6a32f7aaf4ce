"""Test-only RSA helpers: stand-in enclave RSA keys made by ``cryptography``, OpenGradient-style PSS signatures, and
hand-built malformed encodings (each breaking exactly one EMSA-PSS rule) for the named-rejection tests.

Valid signatures always come from ``cryptography`` (``padding.PSS(MGF1(SHA256), salt_length=32)``, as
OpenGradient's gateway signs). The malformed ones need an encoding ``cryptography`` refuses to make, so
``encode_pss`` below follows RFC 8017 section 9.1.1 and ``raw_sign`` applies the private key (m^d mod n);
``test_encode_pss_matches_cryptography`` holds that encoder to ``cryptography``'s own verifier.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from og_settle._hex import keccak256

PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
# Key sizes the pool covers: the common sizes, plus odd bit lengths that move emLen and the leading-bits mask
# (2049 bits: emLen = k - 1, the modexp output's first octet must be zero).
KEY_SIZES = (2048, 2049, 2055, 3072, 4096)


@dataclass(frozen=True)
class RsaTeeKey:
    """A stand-in enclave RSA key (in production it never leaves the enclave)."""

    private: rsa.RSAPrivateKey

    @property
    def public(self) -> rsa.RSAPublicKey:
        return self.private.public_key()

    @property
    def der(self) -> bytes:
        """The DER SubjectPublicKeyInfo, what OpenGradient hashes into the teeId."""
        return self.public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    @property
    def tee_id(self) -> bytes:
        return keccak256(self.der)

    @property
    def k(self) -> int:
        return (self.public.key_size + 7) // 8

    @property
    def n(self) -> bytes:
        return self.public.public_numbers().n.to_bytes(self.k, "big")

    @property
    def e(self) -> bytes:
        e = self.public.public_numbers().e
        return e.to_bytes((e.bit_length() + 7) // 8, "big")

    def sign(self, message: bytes) -> bytes:
        """RSASSA-PSS (SHA-256, MGF1-SHA-256, 32-byte salt) over ``message``, as OpenGradient's TEEs sign."""
        return self.private.sign(message, PSS, hashes.SHA256())

    def verifies(self, signature: bytes, message: bytes) -> bool:
        try:
            self.public.verify(signature, message, PSS, hashes.SHA256())
        except Exception:
            return False
        return True

    def raw_sign(self, em: bytes) -> bytes:
        """m^d mod n over an arbitrary encoded message (for malformed encodings only)."""
        numbers = self.private.private_numbers()
        m = int.from_bytes(em, "big")
        assert m < numbers.public_numbers.n
        return pow(m, numbers.d, numbers.public_numbers.n).to_bytes(self.k, "big")


@functools.cache
def rsa_key(bits: int = 2048, index: int = 0) -> RsaTeeKey:
    """A cached key per (size, index): key generation is the slow part of these tests."""
    del index  # only part of the cache key
    return RsaTeeKey(rsa.generate_private_key(public_exponent=65537, key_size=bits))


def mgf1(seed: bytes, length: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return out[:length]


def encode_pss(
    m_hash: bytes,
    mod_bits: int,
    salt: bytes = b"\x11" * 32,
    *,
    trailer: int = 0xBC,
    ps_byte: int | None = None,
    set_leading_bit: bool = False,
) -> bytes:
    """EMSA-PSS-ENCODE (RFC 8017 9.1.1) with optional single-rule breakages; returns EM left-padded to k octets."""
    em_bits = mod_bits - 1
    em_len = (em_bits + 7) // 8
    h = hashlib.sha256(b"\x00" * 8 + m_hash + salt).digest()
    ps = bytearray(em_len - len(salt) - 32 - 2)
    if ps_byte is not None:
        ps[len(ps) // 2] = ps_byte
    db = bytes(ps) + b"\x01" + salt
    masked = bytearray(a ^ b for a, b in zip(db, mgf1(h, len(db)), strict=True))
    zero_bits = 8 * em_len - em_bits
    masked[0] &= 0xFF >> zero_bits
    if set_leading_bit:
        masked[0] |= (0x80 >> (zero_bits - 1)) if zero_bits else 0  # bit number emBits: just too high
    em = bytes(masked) + h + bytes([trailer])
    k = (mod_bits + 7) // 8
    return em.rjust(k, b"\x00")


def og_message(input_hash: bytes, output_hash: bytes, timestamp: int) -> bytes:
    """OpenGradient's signed 32-byte message: keccak256(inputHash ‖ outputHash ‖ uint256 timestamp)."""
    return keccak256(input_hash + output_hash + timestamp.to_bytes(32, "big"))


def registration_for(key: RsaTeeKey, measurement: bytes, payment_address: str, *, tls: bytes = b"\x00" * 32) -> Any:
    from og_settle._attestation import RsaTeeRegistration

    return RsaTeeRegistration(
        key.der, measurement, keccak256(b"nitro attestation document"), tls, payment_address, "https://og-tee.test"
    )


def register_rsa(d: Any, key: RsaTeeKey, measurement: bytes, *, tls: bytes = b"\x00" * 32) -> Any:
    """Registers ``key`` as an RSA TEE by ``d.operator``, with a proof of possession over the EIP-712 digest."""
    registration = registration_for(key, measurement, d.operator.address, tls=tls)
    proof = key.sign(d.registry_domain.digest(registration.struct_hash(d.operator.address)))
    return d.registry.registerRsaTee(registration.as_abi(), proof, sender=d.operator)


def heartbeat_message(tee_id: bytes, timestamp: int) -> bytes:
    """OpenGradient's heartbeat message: keccak256(teeId ‖ uint256 timestamp)."""
    return keccak256(tee_id + timestamp.to_bytes(32, "big"))
