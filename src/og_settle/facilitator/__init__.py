"""og-settle's x402 facilitator HTTP server: ``POST /verify``, ``POST /settle``, ``GET /supported``.

Importing this package does not import web3; constructing a :class:`Facilitator` does.
"""

from og_settle.facilitator._server import (
    DEFAULT_MAX_BODY_BYTES,
    Facilitator,
    FacilitatorServer,
    HttpError,
    NodeError,
    RequestLog,
)

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "Facilitator",
    "FacilitatorServer",
    "HttpError",
    "NodeError",
    "RequestLog",
]
