"""TEE keys and OpenGradient's TEE formats, in one home.

- Key types: secp256k1 (:class:`TeeKey`, :class:`Secp256k1PublicKey`; teeId = keccak256 of the 64-byte public key)
  and RSA (:class:`RsaTeeKey`, :class:`RsaPublicKey`; teeId = keccak256 of the DER SubjectPublicKeyInfo; RSASSA-PSS
  with SHA-256, MGF1-SHA-256 and a 32-byte salt, through PyPI ``cryptography``).
- OpenGradient's hashes: :func:`input_hash`, :func:`output_hash`, :func:`tee_message_hash`, and the request
  canonicalisation that comes before the input hash (:func:`canonical_request`, :func:`request_hash`), byte-identical
  to the OpenGradient SDK's ``build_inner_request``.
- A gateway response's proof: :func:`sign_response` (the TEE's side) and :func:`verify_response` (the client's).
- Settlement data (``x-settlement-data``) as gateways send it to ``POST /settle_data``: :class:`SettlementData`.

Nothing here imports web3 or Ape.
"""

from og_settle.tee._canonical import (
    UnsupportedRequest,
    canonical_chat_request,
    canonical_completion_request,
    canonical_request,
    request_hash,
    response_output,
    response_output_hash,
)
from og_settle.tee._hashing import (
    canonical_json,
    heartbeat_message_hash,
    input_hash,
    open_gradient_digest,
    output_hash,
    tee_message_hash,
)
from og_settle.tee._keys import (
    KeyType,
    RegisteredTeeKey,
    TeePublicKey,
    TeeSigningKey,
    load_signing_key,
    parse_public_key,
    verify_tee_signature,
)
from og_settle.tee._response import ResponseVerificationError, TeeProof, sign_response, verify_response
from og_settle.tee._rsa import (
    PSS_SALT_LENGTH,
    RSA_MAX_BITS,
    RSA_MIN_BITS,
    RSA_MIN_EXPONENT,
    RsaPublicKey,
    RsaTeeKey,
    decode_signature,
    rsa_pss_sign,
    rsa_pss_verify,
)
from og_settle.tee._secp256k1 import (
    Secp256k1PublicKey,
    TeeKey,
    recover_signer,
    tee_id_for,
    tee_signer_for,
)
from og_settle.tee._settlement_data import MAX_SETTLEMENT_DATA_BYTES, SETTLEMENT_DATA_MODES, SettlementData

__all__ = [
    "MAX_SETTLEMENT_DATA_BYTES",
    "PSS_SALT_LENGTH",
    "RSA_MAX_BITS",
    "RSA_MIN_BITS",
    "RSA_MIN_EXPONENT",
    "SETTLEMENT_DATA_MODES",
    "KeyType",
    "RegisteredTeeKey",
    "ResponseVerificationError",
    "RsaPublicKey",
    "RsaTeeKey",
    "Secp256k1PublicKey",
    "SettlementData",
    "TeeKey",
    "TeeProof",
    "TeePublicKey",
    "TeeSigningKey",
    "UnsupportedRequest",
    "canonical_chat_request",
    "canonical_completion_request",
    "canonical_json",
    "canonical_request",
    "decode_signature",
    "heartbeat_message_hash",
    "input_hash",
    "load_signing_key",
    "open_gradient_digest",
    "output_hash",
    "parse_public_key",
    "recover_signer",
    "request_hash",
    "response_output",
    "response_output_hash",
    "rsa_pss_sign",
    "rsa_pss_verify",
    "sign_response",
    "tee_id_for",
    "tee_message_hash",
    "tee_signer_for",
    "verify_response",
    "verify_tee_signature",
]
