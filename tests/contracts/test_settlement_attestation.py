"""og_settle._attestation offline: hand-built EIP-712 hashes agree with eth-account, teeId derivation, input checks."""

from __future__ import annotations

import json

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys.datatypes import PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from og_settle import InvalidInput
from og_settle._attestation import (
    MAX_METADATA_SIZE,
    IndividualSettlement,
    InferenceAttestation,
    MetadataSettlement,
    TeeKey,
    TeeRegistration,
    recover_signer,
    settlement_domain,
    tee_id_for,
    tee_registry_domain,
    tee_signer_for,
)
from og_settle._hashing import input_hash, output_hash
from og_settle._hex import keccak256

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
bytes32 = st.binary(min_size=32, max_size=32)
addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
uint256 = st.integers(0, 2**256 - 1)
keys = st.integers(1, SECP256K1_N - 1).map(lambda k: TeeKey(k.to_bytes(32, "big")))
domains = st.builds(settlement_domain, st.integers(1, 2**64), addresses)


def eth_account_digest(typed: dict[str, object]) -> tuple[bytes, object]:
    signable = encode_typed_data(full_message=typed)
    return keccak256(b"\x19" + signable.version + signable.header + signable.body), signable


@given(key=keys, domain=domains, tee_id=bytes32, i=bytes32, o=bytes32, ts=uint256, payer=addresses)
def test_individual_and_inference_match_eth_account(
    key: TeeKey, domain, tee_id: bytes, i: bytes, o: bytes, ts: int, payer: str
) -> None:
    """The hand-built digests equal eth-account's EIP-712 digests, and signatures recover through eth-account."""
    for message, sign in (
        (IndividualSettlement(tee_id, i, o, ts, payer), key.sign_individual),
        (InferenceAttestation(tee_id, i, o, ts), key.sign_inference),
    ):
        digest, signable = eth_account_digest(message.typed_data(domain))
        assert digest == domain.digest(message.struct_hash())
        assert Account.recover_message(signable, signature=sign(domain, message)) == key.address


@given(
    key=keys,
    domain=domains,
    ts=uint256,
    payer=addresses,
    data=st.lists(st.binary(max_size=200), min_size=3, max_size=3),
    model=st.text(max_size=40),
)
def test_metadata_matches_eth_account(key: TeeKey, domain, ts: int, payer: str, data: list[bytes], model: str) -> None:
    """EIP-712 hashes the dynamic members, so the metadata digest commits to keccak256(input) and keccak256(output)."""
    record = MetadataSettlement(key.tee_id, ts, payer, model, data[0], data[1], data[2])
    digest, signable = eth_account_digest(record.typed_data(domain))
    assert digest == domain.digest(record.struct_hash())
    assert Account.recover_message(signable, signature=key.sign_metadata(domain, record)) == key.address
    assert (record.input_hash, record.output_hash) == (keccak256(data[0]), keccak256(data[1]))


def test_metadata_hashes_follow_opengradient_conventions() -> None:
    """input = UTF-8 of json.dumps(request, sort_keys=True), output = the completion text: the same hashes."""
    request = {"model": "openai/gpt-4.1", "messages": [{"role": "user", "content": "héllo"}], "temperature": 0}
    completion = "Hi there."
    record = MetadataSettlement(
        b"\x01" * 32,
        1,
        "0x" + "22" * 20,
        "openai/gpt-4.1",
        json.dumps(request, sort_keys=True).encode(),
        completion.encode(),
    )
    assert record.input_hash == input_hash(request)
    assert record.output_hash == output_hash(completion)


@given(key=keys, operator=addresses, m=bytes32, att=bytes32, pay=addresses)
def test_registration_matches_eth_account(key: TeeKey, operator: str, m: bytes, att: bytes, pay: str) -> None:
    domain = tee_registry_domain(84532, "0x" + "11" * 20)
    registration = TeeRegistration(key.public_key, m, att, pay, "https://tee.example")
    digest, signable = eth_account_digest(registration.typed_data(domain, operator))
    assert digest == domain.digest(registration.struct_hash(operator))
    assert (
        Account.recover_message(signable, signature=key.sign_registration(domain, registration, operator))
        == key.address
    )


@given(key=keys)
def test_tee_id_and_signer_derivation(key: TeeKey) -> None:
    """teeId = keccak256(64-byte public key); the signer is its last 20 bytes, i.e. the key's Ethereum address."""
    public = key.public_key
    assert len(public) == 64
    assert tee_id_for(public) == tee_id_for(b"\x04" + public) == tee_id_for("0x" + public.hex()) == keccak256(public)
    assert tee_id_for(PrivateKey(key.private_key).public_key) == key.tee_id
    assert tee_signer_for(public) == Account.from_key(key.private_key).address == key.address
    assert tee_signer_for(public).lower() == "0x" + keccak256(public)[12:].hex()


def test_invalid_inputs_name_the_field() -> None:
    key = TeeKey(b"\x7e" * 32)
    with pytest.raises(InvalidInput, match="public_key"):
        tee_id_for(b"\x04" * 33)
    with pytest.raises(InvalidInput, match="private_key"):
        TeeKey(b"\x00" * 32)
    with pytest.raises(InvalidInput, match="payer"):
        IndividualSettlement(key.tee_id, b"\x00" * 32, b"\x00" * 32, 1, "0x1234")
    with pytest.raises(InvalidInput, match="input_hash"):
        IndividualSettlement(key.tee_id, b"\x00" * 31, b"\x00" * 32, 1, "0x" + "22" * 20)
    with pytest.raises(InvalidInput, match="timestamp"):
        InferenceAttestation(key.tee_id, b"\x00" * 32, b"\x00" * 32, -1)
    with pytest.raises(InvalidInput, match="metadata record"):
        MetadataSettlement(key.tee_id, 1, "0x" + "22" * 20, "", b"\x00" * MAX_METADATA_SIZE, b"x")
    with pytest.raises(InvalidInput, match="endpoint"):
        TeeRegistration(key.public_key, b"\x01" * 32, b"\x02" * 32, "0x" + "22" * 20, "")
    with pytest.raises(InvalidInput, match="chain_id"):
        settlement_domain(0, "0x" + "11" * 20)


def test_recover_signer_rejects_what_the_contracts_reject() -> None:
    key, digest = TeeKey(b"\x7e" * 32), keccak256(b"digest")
    signature = key.sign_digest(digest)
    assert recover_signer(digest, signature) == key.address
    s = int.from_bytes(signature[32:64], "big")
    high_s = signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - signature[64]])
    with pytest.raises(InvalidInput, match="upper half"):
        recover_signer(digest, high_s)
    with pytest.raises(InvalidInput, match="v must be"):
        recover_signer(digest, signature[:64] + b"\x01")
    with pytest.raises(InvalidInput, match="65 bytes"):
        recover_signer(digest, signature[:64])
