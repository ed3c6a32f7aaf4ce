"""og-settle's x402 facilitator: protocol logic (:class:`Facilitator`), its ASGI app and a uvicorn server.

- :class:`Facilitator` answers ``/verify``, ``/settle`` and ``/supported`` bodies and knows no HTTP;
- :func:`create_app` is the Starlette app around it (auth, deadlines, request log);
- :class:`FacilitatorServer` serves the app with uvicorn on a socket from :func:`bind`;
- :class:`SettlementStore` / :class:`SqliteSettlementStore` keep settlements for idempotent ``/settle``
  (:func:`open_settlement_store` also opens a ``postgresql://`` store shared by several instances);
- :class:`Operations`: API keys with :class:`KeyLimits` (rates, :class:`Quota` s), :class:`UsageRecord` s and
  settlement :class:`Receipt` s (checked against the chain by :func:`check_receipt`).

Importing this package imports Starlette and uvicorn but not web3; constructing a :class:`Facilitator` does.
"""

from og_settle.facilitator._app import DEFAULT_MAX_BODY_BYTES, HttpError, create_app
from og_settle.facilitator._auth import ApiKeys
from og_settle.facilitator._engine import Outcome, SettlementEngine, SettlementJob
from og_settle.facilitator._limits import KeyLimits, LimitExceeded, Quota
from og_settle.facilitator._log import RequestLog
from og_settle.facilitator._operations import Operations
from og_settle.facilitator._protocol import Facilitator, NodeError, StockRoute
from og_settle.facilitator._receipts import Receipt, check_receipt
from og_settle.facilitator._serve import DEFAULT_BACKLOG, FacilitatorServer, bind
from og_settle.facilitator._settle_data import SettlementDataQueue
from og_settle.facilitator._store import (
    SettlementRecord,
    SettlementState,
    SettlementStore,
    SqliteSettlementStore,
    open_settlement_store,
)
from og_settle.facilitator._usage import UsageRecord

__all__ = [
    "DEFAULT_BACKLOG",
    "DEFAULT_MAX_BODY_BYTES",
    "ApiKeys",
    "Facilitator",
    "FacilitatorServer",
    "HttpError",
    "KeyLimits",
    "LimitExceeded",
    "NodeError",
    "Operations",
    "Outcome",
    "Quota",
    "Receipt",
    "RequestLog",
    "SettlementDataQueue",
    "SettlementEngine",
    "SettlementJob",
    "SettlementRecord",
    "SettlementState",
    "SettlementStore",
    "SqliteSettlementStore",
    "StockRoute",
    "UsageRecord",
    "bind",
    "check_receipt",
    "create_app",
    "open_settlement_store",
]
