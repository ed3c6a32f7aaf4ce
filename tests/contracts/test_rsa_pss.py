"""RsaPss (contracts/libraries/RsaPss.sol) against signatures made by PyPI ``cryptography``.

Valid signatures come from ``cryptography`` over random keys and messages; every single-bit corruption of a signature
is rejected; each rule of EMSA-PSS-VERIFY has a vector that breaks it alone and gets its own named reason.
"""

from __future__ import annotations

import hashlib
from enum import IntEnum
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import given
from hypothesis import strategies as st

from tests.contracts.rsa_support import KEY_SIZES, encode_pss, og_message, rsa_key


class PssError(IntEnum):
    """RsaPss.PssError, in declaration order."""

    NONE = 0
    INVALID_LENGTH = 1
    SIGNATURE_OUT_OF_RANGE = 2
    MOD_EXP_FAILED = 3
    INVALID_TRAILER = 4
    INVALID_LEADING_BITS = 5
    INVALID_SALT_LENGTH = 6
    INVALID_PADDING = 7
    DIGEST_MISMATCH = 8


@pytest.fixture(scope="module")
def harness(project: Any, deployer: Any) -> Any:
    return project.RsaPssHarness.deploy(sender=deployer)


def check(harness: Any, key: Any, message: bytes, signature: bytes) -> PssError:
    return PssError(harness.tryVerify(hashlib.sha256(message).digest(), signature, key.e, key.n))


keys = st.sampled_from(KEY_SIZES).flatmap(lambda bits: st.integers(0, 1).map(lambda i: rsa_key(bits, i)))


@given(key=keys, message=st.binary(max_size=200))
def test_cryptography_signatures_verify(harness: Any, key: Any, message: bytes) -> None:
    """Every PSS signature cryptography makes, over any message and key size, verifies on chain."""
    signature = key.sign(message)
    assert check(harness, key, message, signature) is PssError.NONE
    assert harness.verifyData(message, signature, key.e, key.n) is True


@given(key=keys, message=st.binary(min_size=1, max_size=64), other=st.binary(min_size=1, max_size=64))
def test_other_message_is_a_digest_mismatch(harness: Any, key: Any, message: bytes, other: bytes) -> None:
    """A well-formed signature over another message fails only the final hash comparison."""
    if message == other:
        return
    assert check(harness, key, other, key.sign(message)) is PssError.DIGEST_MISMATCH
    assert harness.verifyData(other, key.sign(message), key.e, key.n) is False


@given(key=keys, timestamp=st.integers(0, 2**40), seed=st.binary(min_size=1, max_size=8))
def test_opengradient_message_verifies(harness: Any, key: Any, timestamp: int, seed: bytes) -> None:
    """OpenGradient's 32-byte message keccak256(inputHash ‖ outputHash ‖ uint256 timestamp), signed as its TEEs do."""
    message = og_message(hashlib.sha256(b"in" + seed).digest(), hashlib.sha256(b"out" + seed).digest(), timestamp)
    assert check(harness, key, message, key.sign(message)) is PssError.NONE


@pytest.mark.parametrize("bits", [2048, 2049, 3072])
def test_every_single_bit_corruption_is_rejected(harness: Any, bits: int) -> None:
    """Flipping any one bit of a valid signature makes it fail with a named reason (on chain, all bits)."""
    key = rsa_key(bits)
    message = og_message(b"\x01" * 32, b"\x02" * 32, 1_700_000_000)
    signature = key.sign(message)
    digest = hashlib.sha256(message).digest()
    total = [0] * 9
    chunk = 512
    for first in range(0, len(signature) * 8, chunk):
        counts = harness.bitFlipOutcomes(digest, signature, key.e, key.n, first, chunk, gas=60_000_000)
        total = [a + int(b) for a, b in zip(total, counts, strict=True)]
    assert sum(total) == len(signature) * 8
    assert total[PssError.NONE] == 0, total
    # cryptography agrees on a sample of the same corruptions.
    for bit in range(0, len(signature) * 8, 97):
        flipped = bytearray(signature)
        flipped[bit // 8] ^= 0x80 >> (bit % 8)
        assert not key.verifies(bytes(flipped), message)


def test_encode_pss_matches_cryptography() -> None:
    """The test encoder (used for the malformed vectors) makes encodings cryptography accepts."""
    for bits in (2048, 2049):
        key = rsa_key(bits)
        message = b"reference encoding"
        em = encode_pss(hashlib.sha256(message).digest(), key.public.key_size)
        assert key.verifies(key.raw_sign(em), message)


def _raw(key: Any, em: bytes) -> bytes:
    return key.raw_sign(em)


@pytest.mark.parametrize("bits", [2048, 2049, 2055])
def test_each_rule_has_its_named_reason(harness: Any, bits: int) -> None:
    """One vector per EMSA-PSS rule, each breaking that rule alone."""
    key = rsa_key(bits)
    message = b"named reasons"
    m_hash = hashlib.sha256(message).digest()
    mod_bits = key.public.key_size

    assert check(harness, key, message, _raw(key, encode_pss(m_hash, mod_bits))) is PssError.NONE
    assert check(harness, key, message, _raw(key, encode_pss(m_hash, mod_bits, trailer=0xBB))) is (
        PssError.INVALID_TRAILER
    )
    assert check(harness, key, message, _raw(key, encode_pss(m_hash, mod_bits, ps_byte=0x01))) is (
        PssError.INVALID_PADDING
    )
    # A 20-byte salt (a valid PSS signature under another salt length): the separator is elsewhere.
    short_salt = key.private.sign(
        message, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=20), hashes.SHA256()
    )
    assert check(harness, key, message, short_salt) is PssError.INVALID_SALT_LENGTH
    # A corrupted salt: well-formed, but H no longer matches.
    good = encode_pss(m_hash, mod_bits)
    assert check(harness, key, b"other message", _raw(key, good)) is PssError.DIGEST_MISMATCH

    # Bits above emBits set.
    if mod_bits % 8 == 1:
        em = b"\x01" + encode_pss(m_hash, mod_bits)[1:]  # the output octet before EM must be zero
    else:
        em = next(
            e
            for salt in range(256)
            if int.from_bytes(e := encode_pss(m_hash, mod_bits, bytes([salt]) * 32, set_leading_bit=True), "big")
            < int.from_bytes(key.n, "big")
        )
    assert check(harness, key, message, _raw(key, em)) is PssError.INVALID_LEADING_BITS


def test_length_and_range_reasons(harness: Any) -> None:
    key = rsa_key(2048)
    message = b"lengths"
    signature = key.sign(message)
    assert check(harness, key, message, signature[1:]) is PssError.INVALID_LENGTH
    assert check(harness, key, message, b"\x00" + signature) is PssError.INVALID_LENGTH
    small = rsa_key(1024)
    assert check(harness, small, message, small.sign(message)) is PssError.INVALID_LENGTH  # below 2048 bits
    n = int.from_bytes(key.n, "big")
    assert check(harness, key, message, key.n) is PssError.SIGNATURE_OUT_OF_RANGE  # s == n
    s_plus_n = int.from_bytes(signature, "big") + n
    if s_plus_n < 2 ** (8 * key.k):  # s + n is congruent to s: the malleable twin must not verify
        assert check(harness, key, message, s_plus_n.to_bytes(key.k, "big")) is PssError.SIGNATURE_OUT_OF_RANGE
    assert check(harness, key, message, b"\xff" * key.k) is PssError.SIGNATURE_OUT_OF_RANGE


@given(key=keys, value=st.integers(min_value=0))
def test_random_signatures_never_verify(harness: Any, key: Any, value: int) -> None:
    """A random integer below n is not a signature (it fails some rule, never passes)."""
    s = value % int.from_bytes(key.n, "big")
    assert check(harness, key, b"m", s.to_bytes(key.k, "big")) is not PssError.NONE
