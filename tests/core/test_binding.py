"""og_settle.request_binding: the commitment a bound payment's requestHash makes to one request (issue #12 I-1)."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode
from eth_utils import keccak

from og_settle import InvalidInput, new_request_nonce, request_binding
from og_settle._binding import REQUEST_BINDING_TAG


def test_binding_is_the_tagged_abi_encoding_hashed() -> None:
    """requestHash = keccak256(abi.encode(tag, inputHash, requestNonce)) with the documented tag."""
    input_hash, nonce = keccak(b"input"), keccak(b"nonce")
    assert keccak(b"og-settle/request-binding/v1") == REQUEST_BINDING_TAG
    expected = keccak(encode(["bytes32", "bytes32", "bytes32"], [REQUEST_BINDING_TAG, input_hash, nonce]))
    assert request_binding(input_hash, nonce) == expected
    assert request_binding("0x" + input_hash.hex(), "0x" + nonce.hex()) == expected


def test_identical_requests_get_distinct_bindings() -> None:
    input_hash = keccak(b"the same request")
    nonces = {new_request_nonce() for _ in range(64)}
    assert len(nonces) == 64 and all(len(n) == 32 for n in nonces)
    assert len({request_binding(input_hash, n) for n in nonces}) == 64


def test_malformed_parts_are_refused() -> None:
    with pytest.raises(InvalidInput, match="request_nonce"):
        request_binding(keccak(b"x"), b"short")
