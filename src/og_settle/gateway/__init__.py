"""og-settle's paid-inference gateway: an x402 resource server in front of a (stand-in) TEE and a model.

``og-settle gateway serve`` runs it. The pieces: :class:`Gateway` (pricing, payment, settlement; no HTTP),
:func:`create_app` (the ASGI app), :class:`StandInTee` (an RSA key that hashes and signs as OpenGradient's
enclaves do; no enclave, no attestation), the model backends (:class:`StandInEchoModel`,
:class:`OpenAICompatibleBackend`), the DA blob store (:class:`LocalBlobStore`) and the relayer queue sink.

Importing this package does not import web3 or Ape.
"""

from og_settle._blobs import BlobStore, LocalBlobStore, blob_id_for
from og_settle.gateway._app import DEFAULT_MAX_BODY_BYTES, create_app
from og_settle.gateway._core import Authorized, Gateway, GatewayConfig, GatewayError, PaymentRejected, Recorded
from og_settle.gateway._facilitator_client import FacilitatorClient, FacilitatorUnavailable, Verification
from og_settle.gateway._models import (
    InferenceRequest,
    ModelBackend,
    ModelOutput,
    OpenAICompatibleBackend,
    StandInEchoModel,
    parse_inference_request,
)
from og_settle.gateway._pricing import ModelPrice, load_prices, parse_prices
from og_settle.gateway._sink import RelayerQueueSink, SettlementSink, SinkReceipt
from og_settle.gateway._tee import StandInTee, TeeAttestation, canonical_request

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "Authorized",
    "BlobStore",
    "FacilitatorClient",
    "FacilitatorUnavailable",
    "Gateway",
    "GatewayConfig",
    "GatewayError",
    "InferenceRequest",
    "LocalBlobStore",
    "ModelBackend",
    "ModelOutput",
    "ModelPrice",
    "OpenAICompatibleBackend",
    "PaymentRejected",
    "Recorded",
    "RelayerQueueSink",
    "SettlementSink",
    "SinkReceipt",
    "StandInEchoModel",
    "StandInTee",
    "TeeAttestation",
    "Verification",
    "blob_id_for",
    "canonical_request",
    "create_app",
    "load_prices",
    "parse_inference_request",
    "parse_prices",
]
