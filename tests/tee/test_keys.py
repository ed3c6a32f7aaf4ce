"""TEE key types: RSA (RSASSA-PSS through ``cryptography``) and secp256k1, their ids, and reading them safely."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from og_settle import InvalidInput
from og_settle._hex import keccak256
from og_settle.tee import (
    KeyType,
    RsaPublicKey,
    RsaTeeKey,
    Secp256k1PublicKey,
    TeeKey,
    load_signing_key,
    parse_public_key,
    recover_signer,
    tee_id_for,
    tee_message_hash,
    verify_tee_signature,
)

RSA_KEY = RsaTeeKey.generate(2048)
EC_KEY = TeeKey(bytes.fromhex("7e" * 32))
MESSAGE = tee_message_hash(keccak256(b"in"), keccak256(b"out"), 1_764_400_000)


def test_rsa_tee_id_is_keccak_of_the_der_spki() -> None:
    der = RSA_KEY.private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert RSA_KEY.public.der == der
    assert RSA_KEY.tee_id == keccak256(der)
    assert RsaPublicKey.from_pem(RSA_KEY.public.pem) == RSA_KEY.public
    assert parse_public_key(RSA_KEY.public.pem).tee_id == RSA_KEY.tee_id
    assert parse_public_key("0x" + der.hex()).tee_id == RSA_KEY.tee_id


def test_rsa_signature_verifies_and_every_single_bit_corruption_fails() -> None:
    """RSASSA-PSS over a 32-byte message: the honest signature verifies, none of its 2,048 one-bit variants does."""
    signature = RSA_KEY.sign(MESSAGE)
    assert len(signature) == 256
    assert verify_tee_signature(RSA_KEY.public, MESSAGE, signature)
    for bit in range(len(signature) * 8):
        corrupted = bytearray(signature)
        corrupted[bit // 8] ^= 0x80 >> (bit % 8)
        assert not RSA_KEY.public.verify(MESSAGE, bytes(corrupted)), bit
    assert not RSA_KEY.public.verify(MESSAGE[:-1] + bytes([MESSAGE[-1] ^ 1]), signature)


def test_rsa_verification_insists_on_pss_sha256_and_a_32_byte_salt() -> None:
    key = RSA_KEY.private_key
    other_salt = key.sign(MESSAGE, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=20), hashes.SHA256())
    other_hash = key.sign(MESSAGE, padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=32), hashes.SHA256())
    pkcs1 = key.sign(MESSAGE, padding.PKCS1v15(), hashes.SHA256())
    odd_lengths = (b"", b"\x00" * 255, b"\x01" * 257, RSA_KEY.sign(MESSAGE) + b"\x00")
    for signature in (other_salt, other_hash, pkcs1, *odd_lengths):
        assert not RSA_KEY.public.verify(MESSAGE, signature)


@pytest.mark.parametrize("bits", [2048, 3072, 4096])
def test_rsa_key_sizes_the_registry_accepts(bits: int) -> None:
    key = RsaTeeKey.generate(bits) if bits != 2048 else RSA_KEY
    assert key.public.bits == bits and key.public.signature_length == bits // 8
    assert key.public.verify(MESSAGE, key.sign(MESSAGE))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024), "1024 bits"),
        (lambda: rsa.generate_private_key(public_exponent=3, key_size=2048), "exponent 3"),
    ],
)
def test_rsa_keys_the_registry_refuses_are_refused(make: object, match: str) -> None:
    private = make()  # type: ignore[operator]
    der = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(InvalidInput, match=match):
        RsaPublicKey(der)


def test_rsa_public_key_must_be_canonical_der() -> None:
    der = RSA_KEY.public.der
    with pytest.raises(InvalidInput, match="public_key"):
        RsaPublicKey(der + b"\x00")
    with pytest.raises(InvalidInput, match="not a DER"):
        RsaPublicKey(b"\x30\x03\x02\x01\x01")
    with pytest.raises(InvalidInput, match="not a PEM"):
        RsaPublicKey.from_pem("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")


def test_secp256k1_keys_sign_the_same_message_hash() -> None:
    public = EC_KEY.public
    assert public.tee_id == tee_id_for(EC_KEY.public_key) == keccak256(EC_KEY.public_key)
    signature = EC_KEY.sign_message_hash(MESSAGE)
    assert verify_tee_signature(public, MESSAGE, signature)
    assert recover_signer(MESSAGE, signature) == public.signer == EC_KEY.address
    assert not public.verify(MESSAGE, signature[:64] + bytes([signature[64] ^ 1]))
    assert not public.verify(MESSAGE, bytes(64))  # 64-byte noise is not a signature
    assert KeyType.of(public) is KeyType.SECP256K1 and KeyType.of(RSA_KEY.public) is KeyType.RSA


@pytest.mark.parametrize("signature", [bytes(65), b"\x00" * 32 + b"\x01" * 32 + b"\x1b", b"\xff" * 64 + b"\x1b"])
def test_unrecoverable_ecdsa_signatures_are_a_named_input_error(signature: bytes) -> None:
    with pytest.raises(InvalidInput, match=r"^signature"):
        recover_signer(MESSAGE, signature)


def test_parse_public_key_tells_the_kinds_apart_and_checks_an_expected_kind() -> None:
    assert isinstance(parse_public_key(EC_KEY.public_key), Secp256k1PublicKey)
    assert isinstance(parse_public_key(b"\x04" + EC_KEY.public_key), Secp256k1PublicKey)
    assert isinstance(parse_public_key(RSA_KEY.public.der), RsaPublicKey)
    with pytest.raises(InvalidInput, match="SECP256K1 key where a RSA key"):
        parse_public_key(EC_KEY.public, KeyType.RSA)
    with pytest.raises(InvalidInput, match="not a DER"):
        parse_public_key(EC_KEY.public_key, KeyType.RSA)


def test_signing_keys_come_from_env_or_files_and_errors_never_echo_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pem = tmp_path / "tee.pem"
    pem.write_text(RSA_KEY.to_pem())
    loaded = load_signing_key(path=pem)
    assert isinstance(loaded, RsaTeeKey) and loaded.tee_id == RSA_KEY.tee_id
    monkeypatch.setenv("TEE_KEY", "0x" + "7e" * 32)
    assert load_signing_key(env="TEE_KEY") == EC_KEY
    secret = "0x" + "7e" * 31
    monkeypatch.setenv("TEE_KEY", secret)
    with pytest.raises(InvalidInput, match=r"^\$TEE_KEY: expected a PEM") as err:
        load_signing_key(env="TEE_KEY")
    assert secret not in str(err.value) and "7e7e" not in str(err.value)
    monkeypatch.delenv("TEE_KEY")
    with pytest.raises(InvalidInput, match=r"^\$TEE_KEY: not set"):
        load_signing_key(env="TEE_KEY")
    with pytest.raises(InvalidInput, match="cannot read"):
        load_signing_key(path=tmp_path / "missing.pem")
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(InvalidInput, match="not a readable"):
        load_signing_key(path=broken)
