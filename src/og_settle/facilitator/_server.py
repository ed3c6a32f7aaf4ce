"""An x402 facilitator over HTTP: ``POST /verify``, ``POST /settle`` and ``GET /supported`` (standard library only).

:class:`Facilitator` holds the protocol logic and knows nothing about HTTP: it turns a request body (already
parsed JSON) into the x402 answer. :class:`FacilitatorServer` is a ``ThreadingHTTPServer`` that reads bounded JSON
bodies, dispatches to it, and writes one JSON log line per request on stderr.

Verification is :func:`og_settle._x402.verify_payment` against the chain's latest block: the Permit2 spender must
be the deployment's PaymentFacilitator, an ``upto`` payment must name this server's relayer account as its
``witness.facilitator``, and the payer's Permit2 nonce must be unspent, with balance and Permit2 allowance enough.

Settlement verifies again and sends ``PaymentFacilitator.settle`` from the relayer account. Settlements are
serialised by one lock around one :class:`~og_settle.clients.TxSender`, so the locally tracked account nonce
never races; a second ``/settle`` of a payload that already settled fails verification with
``permit2_invalid_nonce`` before anything is sent. A revert (at gas estimation or mined) maps to its x402 reason
code through :func:`og_settle.clients.x402_reason`.

Settled amount: ``exact`` settles the permitted amount. ``upto`` settles the optional top-level ``amount`` of the
``/settle`` request (an og-settle extension: the resource server's metered price, ``1 <= amount <= permitted``),
or the permitted maximum (``paymentRequirements.amount``, which verification requires to equal it) when absent.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Final, TextIO

from og_settle._errors import InvalidInput

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from og_settle._deploy import Deployment
    from og_settle._x402 import PaymentPayload, PaymentRequirements, SettleResponse, VerifyResult

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "Facilitator",
    "FacilitatorServer",
    "HttpError",
    "NodeError",
    "RequestLog",
]

# A verify/settle request is one payload plus one requirements object: a few kilobytes.
DEFAULT_MAX_BODY_BYTES: Final = 65_536
# Seconds a connection may stay silent before its handler thread gives up on it.
_SOCKET_TIMEOUT: Final = 30.0
_SCHEMES: Final = ("exact", "upto")


class HttpError(Exception):
    """A request the server answers with ``status`` and ``{"error": message}``."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class NodeError(RuntimeError):
    """The chain node could not be reached; answered with 503."""


@dataclass(frozen=True, slots=True)
class _Request:
    """One parsed ``/verify`` or ``/settle`` body.

    Attributes:
        payload: the client's payment.
        requirements: the resource server's requirements it must satisfy.
        amount: ``/settle`` only: the amount to settle (upto), when the caller named one.
    """

    payload: PaymentPayload
    requirements: PaymentRequirements
    amount: int | None


class Facilitator:
    """The x402 facilitator's logic for one deployment, one node and one relayer account.

    ``w3`` is a connected ``Web3``; ``account`` signs settlements (it pays gas and is the ``upto`` settler).
    """

    def __init__(
        self, deployment: Deployment, w3: Any, account: LocalAccount, *, receipt_timeout: float = 60.0
    ) -> None:
        from og_settle._x402 import Web3ChainReader
        from og_settle.clients import PaymentFacilitatorClient, RetryPolicy, TxSender

        # Requests should fail fast when the node is down, not hang a client for a minute.
        retry = RetryPolicy(max_elapsed=5.0)
        self.deployment = deployment
        self.w3 = w3
        self.network = f"eip155:{deployment.chain_id}"
        self.spender = deployment.payment_facilitator
        self.relayer = str(account.address)
        self.reader = Web3ChainReader(w3, deployment.permit2)
        self.client = PaymentFacilitatorClient(w3, deployment.payment_facilitator, retry=retry)
        self.sender = TxSender(w3, account, chain_id=deployment.chain_id, retry=retry)
        self.receipt_timeout = receipt_timeout
        self._settle_lock = threading.Lock()
        # Set when a send failed in a way that leaves the account's next nonce unknown.
        self._resync_nonce = False

    def check_node(self) -> None:
        """Raise InvalidInput unless the node serves the deployment's chain and the facilitator has code there."""
        try:
            node_chain = int(self.w3.eth.chain_id)
            code = bytes(self.w3.eth.get_code(self.spender))
        except Exception as err:
            self._raise_if_node_down(err)
            raise
        if node_chain != self.deployment.chain_id:
            raise InvalidInput(
                f"--rpc: the node is chain {node_chain}, the deployment is for {self.deployment.chain_id}"
            )
        if not code:
            raise InvalidInput(f"--deployment: no PaymentFacilitator code at {self.spender} on chain {node_chain}")

    # -- endpoints ---------------------------------------------------------------------------------------------

    def supported(self) -> dict[str, Any]:
        """The ``GET /supported`` body: exact and upto over Permit2 on the deployment's chain."""
        from og_settle._x402 import X402_VERSION

        extra = {"assetTransferMethod": "permit2", "spender": self.spender, "facilitator": self.relayer}
        kinds = [
            {"x402Version": X402_VERSION, "scheme": scheme, "network": self.network, "extra": dict(extra)}
            for scheme in _SCHEMES
        ]
        return {"kinds": kinds, "extensions": [], "signers": {"eip155:*": [self.relayer]}}

    def verify(self, body: Any) -> VerifyResult:
        """The ``POST /verify`` answer; raises HttpError (400) for a malformed body, NodeError if the node is down."""
        from og_settle._x402 import ReasonCode, VerifyResult

        version = self._version(body)
        if version is not None:
            return VerifyResult(is_valid=False, invalid_reason=version, payer=None)
        request = self._parse(body, settling=False)
        if request.requirements.network != self.network:
            return VerifyResult(
                is_valid=False,
                invalid_reason=ReasonCode.INVALID_NETWORK,
                payer=request.payload.payload.authorization.owner,
            )
        return self._verify(request)

    def settle(self, body: Any, notes: dict[str, Any] | None = None) -> SettleResponse:
        """The ``POST /settle`` answer: verify, then settle on chain (one settlement at a time).

        ``notes``, when given, receives details for the log (the named revert of a failed settlement)."""
        from og_settle._x402 import ReasonCode, SettleResponse

        version = self._version(body)
        if version is not None:
            return SettleResponse(success=False, transaction="", network=self.network, error_reason=str(version))
        request = self._parse(body, settling=True)
        auth = request.payload.payload.authorization
        payer = auth.owner

        def failed(reason: str) -> SettleResponse:
            return SettleResponse(
                success=False, transaction="", network=self.network, payer=payer, error_reason=str(reason)
            )

        if request.requirements.network != self.network:
            return failed(ReasonCode.INVALID_NETWORK)
        amount = auth.amount if request.amount is None else request.amount
        if amount == 0:
            return failed(ReasonCode.PERMIT2_INVALID_AMOUNT)
        if amount > auth.amount or (not auth.scheme.is_upto and amount != auth.amount):
            return failed(ReasonCode.PERMIT2_AMOUNT_MISMATCH)
        with self._settle_lock:
            # Verified under the lock, so a concurrent duplicate sees the first one's spent nonce.
            result = self._verify(request)
            if not result.is_valid:
                return failed(str(result.invalid_reason))
            return self._send(request, amount, notes if notes is not None else {})

    # -- internals ---------------------------------------------------------------------------------------------

    @staticmethod
    def _version(body: Any) -> Any:
        """The reason code when the request's x402Version is present but not 2 (None when it is 2)."""
        from og_settle._x402 import X402_VERSION, ReasonCode

        if not isinstance(body, Mapping):
            raise HttpError(HTTPStatus.BAD_REQUEST, f"body: expected a JSON object, got {type(body).__name__}")
        if "x402Version" not in body:
            raise HttpError(HTTPStatus.BAD_REQUEST, "x402Version: missing")
        version = body["x402Version"]
        if not isinstance(version, int) or isinstance(version, bool):
            raise HttpError(HTTPStatus.BAD_REQUEST, f"x402Version: expected an integer, got {version!r}")
        payload = body.get("paymentPayload")
        payload_version = payload.get("x402Version", X402_VERSION) if isinstance(payload, Mapping) else X402_VERSION
        if version != X402_VERSION or payload_version != X402_VERSION:
            return ReasonCode.INVALID_X402_VERSION
        return None

    @staticmethod
    def _parse(body: Mapping[str, Any], *, settling: bool) -> _Request:
        from og_settle._hex import parse_uint256
        from og_settle._x402 import PaymentPayload, PaymentRequirements

        for name in ("paymentPayload", "paymentRequirements"):
            if name not in body:
                raise HttpError(HTTPStatus.BAD_REQUEST, f"{name}: missing")
            if not isinstance(body[name], Mapping):
                raise HttpError(
                    HTTPStatus.BAD_REQUEST, f"{name}: expected a JSON object, got {type(body[name]).__name__}"
                )
        try:
            payload = PaymentPayload.from_json(body["paymentPayload"])
        except InvalidInput as err:
            raise HttpError(HTTPStatus.BAD_REQUEST, _prefixed("paymentPayload", str(err))) from None
        try:
            requirements = PaymentRequirements.from_json(body["paymentRequirements"])
        except InvalidInput as err:
            raise HttpError(HTTPStatus.BAD_REQUEST, _prefixed("paymentRequirements", str(err))) from None
        amount = None
        if "amount" in body:
            if not settling:
                raise HttpError(HTTPStatus.BAD_REQUEST, "amount: only /settle takes a settlement amount")
            try:
                amount = parse_uint256(body["amount"], "amount")
            except InvalidInput as err:
                raise HttpError(HTTPStatus.BAD_REQUEST, str(err)) from None
        return _Request(payload=payload, requirements=requirements, amount=amount)

    def _verify(self, request: _Request) -> VerifyResult:
        from og_settle._x402 import verify_payment

        try:
            now = int(self.w3.eth.get_block("latest")["timestamp"])
            return verify_payment(
                request.payload,
                request.requirements,
                spender=self.spender,
                now=now,
                reader=self.reader,
                settler=self.relayer,
                permit2=self.deployment.permit2,
            )
        except InvalidInput as err:
            raise HttpError(HTTPStatus.BAD_REQUEST, str(err)) from None
        except Exception as err:
            self._raise_if_node_down(err)
            raise

    def _send(self, request: _Request, amount: int, notes: dict[str, Any]) -> SettleResponse:
        from og_settle._x402 import SettleResponse
        from og_settle.clients import ContractRevert, x402_reason

        signed = request.payload.payload
        payment = signed.authorization.payment_args(signed.signature, amount)
        payer = signed.authorization.owner
        try:
            if self._resync_nonce:
                self.sender.resync_nonce()
                self._resync_nonce = False
            receipt = self.client.send_settle(self.sender, payment, timeout=self.receipt_timeout)
        except ContractRevert as revert:
            error = revert.error
            notes["revert"] = str(error)
            return SettleResponse(
                success=False, transaction="", network=self.network, payer=payer, error_reason=x402_reason(error)
            )
        except Exception as err:
            # The nonce the failed attempt may have taken is unknown now: take the chain's count next time.
            self._resync_nonce = True
            self._raise_if_node_down(err)
            raise
        return SettleResponse(
            success=True, transaction="0x" + receipt.tx_hash.hex(), network=self.network, payer=payer, amount=amount
        )

    @staticmethod
    def _raise_if_node_down(err: BaseException) -> None:
        from og_settle.clients import NodeUnavailable, is_connection_error

        if isinstance(err, NodeUnavailable) or is_connection_error(err):
            raise NodeError(f"chain node unavailable ({type(err).__name__})") from err


def _prefixed(root: str, message: str) -> str:
    """``message`` with its field path rooted at ``root`` (the parsers name fields relative to their object)."""
    for prefix in ("paymentPayload.", "paymentRequirements."):
        if message.startswith(prefix):
            return message
    return f"{root}.{message}"


class RequestLog:
    """Writes one JSON object per line to ``stream`` (stderr by default), safely from many threads."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, event: str, **fields: Any) -> None:
        record = {"ts": round(time.time(), 3), "event": event, **fields}
        line = json.dumps(record, separators=(",", ":"), default=str)
        with self._lock:
            stream = self._stream if self._stream is not None else sys.stderr
            stream.write(line + "\n")
            stream.flush()


class FacilitatorServer(ThreadingHTTPServer):
    """The HTTP front of a :class:`Facilitator`. ``server_close`` waits for requests in flight (settlements)."""

    daemon_threads = False
    block_on_close = True

    def __init__(
        self,
        facilitator: Facilitator,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        log: RequestLog | None = None,
    ) -> None:
        self.facilitator = facilitator
        self.max_body_bytes = max_body_bytes
        self.log = log or RequestLog()
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        """The bound base URL, e.g. ``http://127.0.0.1:8402``."""
        host, port = self.server_address[:2]
        host = str(host)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: FacilitatorServer
    timeout = _SOCKET_TIMEOUT
    server_version = "og-settle-facilitator"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: every request gets one structured line from ``_dispatch`` instead."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        started = time.monotonic()
        path = self.path.split("?", 1)[0]
        routes: dict[str, tuple[str, Callable[[], tuple[Any, dict[str, Any]]]]] = {
            "/supported": ("GET", self._supported),
            "/verify": ("POST", self._verify),
            "/settle": ("POST", self._settle),
        }
        fields: dict[str, Any] = {}
        try:
            if path not in routes:
                raise HttpError(HTTPStatus.NOT_FOUND, f"path: no endpoint {path!r} (try /verify, /settle, /supported)")
            allowed, handler = routes[path]
            if method != allowed:
                raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"method: {path} takes {allowed}, not {method}")
            body, fields = handler()
            status = HTTPStatus.OK
        except HttpError as err:
            status, body = err.status, {"error": err.message}
            fields["error"] = err.message
            if status in (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, HTTPStatus.LENGTH_REQUIRED):
                self.close_connection = True
        except NodeError as err:
            status, body = HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(err)}
            fields["error"] = str(err)
        except Exception as err:  # answer and keep serving; the log says what broke
            status, body = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"}
            fields["error"] = f"{type(err).__name__}: {err}"
        # Logged before answering, so that a client that got its answer also finds the log line.
        self.server.log.write(
            "http.request",
            method=method,
            path=path,
            status=int(status),
            ms=round((time.monotonic() - started) * 1000, 1),
            client=self.client_address[0],
            **fields,
        )
        self._reply(status, body)

    def _reply(self, status: HTTPStatus, body: Any) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == HTTPStatus.METHOD_NOT_ALLOWED:
            self.send_header("Allow", "GET" if self.path.split("?", 1)[0] == "/supported" else "POST")
        self.end_headers()
        self.wfile.write(data)

    def _json_body(self) -> Any:
        if self.headers.get("Transfer-Encoding") is not None:
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "Transfer-Encoding: not supported; send a Content-Length")
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "Content-Length: missing")
        try:
            length = int(length_text)
        except ValueError:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"Content-Length: not an integer: {length_text!r}") from None
        if length < 0:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"Content-Length: negative: {length}")
        limit = self.server.max_body_bytes
        if length > limit:
            if length <= 16 * limit:  # drain it, so that the client reads our answer instead of a reset
                self.rfile.read(length)
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body: {length} bytes is over the {limit}-byte limit")
        data = self.rfile.read(length)
        if len(data) != length:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"body: ended after {len(data)} of {length} bytes")
        try:
            return json.loads(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise HttpError(HTTPStatus.BAD_REQUEST, "body: not UTF-8 text") from None
        except json.JSONDecodeError as err:
            raise HttpError(
                HTTPStatus.BAD_REQUEST, f"body: not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
            ) from None

    def _supported(self) -> tuple[Any, dict[str, Any]]:
        return self.server.facilitator.supported(), {}

    def _verify(self) -> tuple[Any, dict[str, Any]]:
        result = self.server.facilitator.verify(self._json_body())
        fields: dict[str, Any] = {"isValid": result.is_valid, "payer": result.payer}
        if result.invalid_reason is not None:
            fields["reason"] = str(result.invalid_reason)
        return result.to_json(), fields

    def _settle(self) -> tuple[Any, dict[str, Any]]:
        notes: dict[str, Any] = {}
        response = self.server.facilitator.settle(self._json_body(), notes)
        fields: dict[str, Any] = {"success": response.success, "payer": response.payer, **notes}
        if response.error_reason is not None:
            fields["reason"] = response.error_reason
        if response.transaction:
            fields["transaction"] = response.transaction
            fields["amount"] = str(response.amount)
        return response.to_json(), fields
