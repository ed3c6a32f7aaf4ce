"""The link between a payment and the inference it pays for (issue #12 I-1).

A bound x402 payment (schemes ``exact``/``upto`` with ``witness.requestHash``) signs a 32-byte request hash,
and the PaymentFacilitator emits it in ``PaymentSettled``. On its own an inference's input hash would make a
poor request hash: identical requests share one input hash, so one payment could be shown as paying for any of
them. og-settle's request hash is therefore a commitment::

    requestHash = keccak256(REQUEST_BINDING_TAG ‖ inputHash ‖ requestNonce)

- ``inputHash`` is the inference's input hash as the TEE signs it (OpenGradient's request hash, the leaf's and
  the settlement record's ``inputHash``);
- ``requestNonce`` is 32 random bytes picked for this one request (by whoever issues the x402 requirements, who
  publishes ``extra.requestHash`` and keeps or returns the nonce with the inference's record);
- ``REQUEST_BINDING_TAG`` = ``keccak256("og-settle/request-binding/v1")`` keeps these hashes apart from any
  other 96-byte preimage.

Revealing (inputHash, requestNonce) proves that a settled payment paid for that request instance and no other:
the chain holds the payment's request hash (the event) and the inference's input hash (its settlement record or
Merkle leaf); nothing else needs to go on chain. Without the nonce the request hash reveals nothing about the
request. ``og-settle status payment … --input-hash … --request-nonce …`` checks a settled payment this way.
"""

from __future__ import annotations

import secrets
from typing import Final

from og_settle._hex import keccak256, parse_bytes32

__all__ = ["REQUEST_BINDING_TAG", "new_request_nonce", "request_binding"]

REQUEST_BINDING_TAG: Final = keccak256(b"og-settle/request-binding/v1")


def new_request_nonce() -> bytes:
    """32 random bytes for one request (from the operating system's CSPRNG)."""
    return secrets.token_bytes(32)


def request_binding(input_hash: bytes | str, request_nonce: bytes | str) -> bytes:
    """The request hash a bound payment signs for the request with ``input_hash`` and ``request_nonce``."""
    return keccak256(
        REQUEST_BINDING_TAG + parse_bytes32(input_hash, "input_hash") + parse_bytes32(request_nonce, "request_nonce")
    )
