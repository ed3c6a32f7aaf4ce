"""TeeKeys' strict-DER parser against ``cryptography``: it accepts exactly the canonical DER of an acceptable RSA key,
and every mutation of one is either refused with a named error or is itself canonical DER of the same shape."""

from __future__ import annotations

from typing import Any

import ape
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from og_settle._hex import keccak256
from tests.contracts.rsa_support import KEY_SIZES, rsa_key

NAMED = ("InvalidRsaPublicKey(uint256)", "InvalidRsaModulus(uint256)", "InvalidRsaExponent(uint256)")
# Ape names a pure call's custom error by selector only; either form identifies it.
SELECTORS = {keccak256(name.encode())[:4].hex() for name in NAMED} | {name.split("(")[0] for name in NAMED}


@pytest.fixture(scope="module")
def harness(project: Any, deployer: Any) -> Any:
    return project.TeeKeysHarness.deploy(sender=deployer)


@pytest.mark.parametrize("bits", KEY_SIZES)
def test_parses_cryptography_keys_and_stores_them_as_code(harness: Any, chain: Any, bits: int) -> None:
    key = rsa_key(bits)
    layout, modulus, exponent = harness.parse(key.der)
    assert (bytes(modulus), bytes(exponent)) == (key.n, key.e)
    assert layout[1] == key.k  # modulusLength
    receipt = harness.storeAndRead(key.der, sender=chain.provider.web3.eth.accounts[0])
    store, read_back = receipt.return_value
    assert bytes(read_back) == key.der
    code = bytes(chain.provider.web3.eth.get_code(store))
    assert code[0] == 0 and code.endswith(key.der)  # STOP, then the layout header, then the DER


def _canonical(der: bytes) -> bool:
    try:
        key = serialization.load_der_public_key(der)
    except Exception:
        return False
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    again = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return again == der


@given(
    bits=st.sampled_from((2048, 3072)),
    position=st.integers(0, 600),
    value=st.integers(0, 255),
    how=st.sampled_from(("set", "truncate", "append", "insert")),
)
def test_mutations_are_refused_by_name_or_canonical(
    harness: Any, bits: int, position: int, value: int, how: str
) -> None:
    """A mutated key either parses, and then cryptography loads it and re-encodes the very same bytes with the
    modulus and exponent the parser found, or is refused with one of TeeKeys' named errors."""
    der = bytearray(rsa_key(bits).der)
    position %= len(der)
    if how == "set":
        der[position] = value
    elif how == "truncate":
        del der[position:]
    elif how == "append":
        der += bytes([value])
    else:
        der.insert(position, value)
    mutated = bytes(der)
    try:
        _, modulus, exponent = harness.parse(mutated)
    except ape.exceptions.ContractLogicError as err:
        assert any(selector in repr(err) for selector in SELECTORS), err
        return
    assert _canonical(mutated)
    numbers = serialization.load_der_public_key(mutated).public_numbers()  # type: ignore[union-attr]
    assert int.from_bytes(bytes(modulus), "big") == numbers.n
    assert int.from_bytes(bytes(exponent), "big") == numbers.e
