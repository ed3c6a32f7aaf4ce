"""The facilitator's ASGI application (Starlette): routing, body limits, auth, deadlines and the request log.

:func:`create_app` wraps a :class:`~og_settle.facilitator.Facilitator`, which holds the protocol logic. Routes:

- ``POST /verify`` (open), ``POST /settle`` (``Authorization: Bearer <key>`` when keys are configured);
- ``GET /supported`` and ``GET /health`` (open);
- ``GET /settle/status/{id}`` (authenticated): a payment id (its Permit2 digest) or a transaction hash;
- ``GET /usage`` (authenticated, with :class:`~og_settle.facilitator.Operations`): the calling key's totals;
- ``POST /settle_data`` (authenticated, when a settlement-data queue is given): OpenGradient's settlement data for the
  relayer (:mod:`og_settle.facilitator._settle_data`).

x402 rejections are HTTP 200 bodies; HTTP errors are reserved for what is not an x402 request: a body that is
not JSON (400), too large (413), a wrong path or method (404/405), a missing key (401), the node down (503).
Every request has a whole-request deadline, and its body a shorter one: a client too slow to send its body gets
408 within seconds, so a stalled client cannot hold up a shutdown. With ``operations``, per-key limits are
checked before anything is sent (429 with ``Retry-After`` over a limit), every verify and settle is recorded,
and a settlement's receipt is added to its answer (:mod:`og_settle.facilitator._operations`). ``/verify`` reads the
chain through an asyncio JSON-RPC client (one batch per request); blocking work (settlement, its store, the
status route) runs in worker threads, never on the event loop. Each request is one
JSON log line; a client that disconnects is logged (status 499), never a traceback.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Final

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from og_settle._errors import InvalidInput
from og_settle.facilitator._auth import ApiKeys
from og_settle.facilitator._chain import AsyncRpcBatchReader
from og_settle.facilitator._limits import LimitExceeded
from og_settle.facilitator._log import RequestLog
from og_settle.facilitator._operations import Caller, Operations
from og_settle.facilitator._protocol import Facilitator, NodeError
from og_settle.facilitator._settle_data import SETTLE_DATA_PATH, SettlementDataQueue, settle_data_handler

__all__ = ["DEFAULT_MAX_BODY_BYTES", "HttpError", "create_app"]

# A verify/settle request is one payload plus one requirements object: a few kilobytes.
DEFAULT_MAX_BODY_BYTES: Final = 65_536
_CLIENT_CLOSED: Final = 499  # nginx's code for "the client went away"; only ever logged


class HttpError(Exception):
    """A request answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _fields(request: Request) -> dict[str, Any]:
    fields: dict[str, Any] = request.scope.setdefault("og_settle.log", {})
    return fields


class _Guard:
    """Outermost middleware: the whole-request deadline and the one log line per request."""

    def __init__(self, app: ASGIApp, *, log: RequestLog, timeout: float) -> None:
        self.app = app
        self.log = log
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        fields: dict[str, Any] = scope.setdefault("og_settle.log", {})
        status: list[int] = []

        async def tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        try:
            with anyio.fail_after(self.timeout):
                await self.app(scope, receive, tracked)
        except TimeoutError:
            fields["error"] = f"request deadline: not done within {self.timeout:g}s"
            if not status:
                try:
                    await _send_json(send, 408, {"error": fields["error"]}, close=True)
                    status.append(408)
                except OSError:
                    status.append(_CLIENT_CLOSED)
        except (ClientDisconnect, OSError):
            fields["error"] = "client disconnected"
            status.append(_CLIENT_CLOSED)
        finally:
            client = scope.get("client")
            self.log.write(
                "http.request",
                method=scope["method"],
                path=scope["path"],
                status=status[0] if status else _CLIENT_CLOSED,
                ms=round((time.monotonic() - started) * 1000, 1),
                client=client[0] if client else None,
                **fields,
            )


async def _send_json(send: Send, status: int, body: Any, *, close: bool = False) -> None:
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _json_body(request: Request, limit: int, timeout: float) -> Any:
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise HttpError(400, f"Content-Length: not an integer: {length!r}")
        if int(length) > limit:
            raise HttpError(413, f"body: {length} bytes is over the {limit}-byte limit", {"Connection": "close"})
    chunks = bytearray()
    # A body is a few kilobytes: a client that takes longer than ``timeout`` to send it is stalling, and must
    # not hold a shutdown for the whole request deadline (which is sized for settlement receipts).
    with anyio.move_on_after(timeout) as reading:
        async for chunk in request.stream():
            chunks += chunk
            if len(chunks) > limit:
                raise HttpError(413, f"body: over the {limit}-byte limit", {"Connection": "close"})
    if reading.cancelled_caught:
        raise HttpError(408, f"body: not received within {timeout:g}s", {"Connection": "close"})
    try:
        return json.loads(chunks.decode("utf-8"))
    except UnicodeDecodeError:
        raise HttpError(400, "body: not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise HttpError(400, f"body: not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None


Handler = Callable[[Request], Awaitable[Any]]


def _endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Turns a handler's value into a JSON 200 and its errors into JSON error answers (never a traceback)."""

    async def run(request: Request) -> Response:
        fields = _fields(request)
        try:
            answer = await handler(request)
            return answer if isinstance(answer, Response) else JSONResponse(answer)
        except HttpError as err:
            fields["error"] = err.message
            return JSONResponse({"error": err.message}, status_code=err.status, headers=err.headers)
        except NodeError as err:
            fields["error"] = str(err)
            return JSONResponse({"error": str(err)}, status_code=503)
        except LimitExceeded as limit:
            fields.update(error=limit.message, limit=limit.outcome)
            headers = {"Retry-After": str(limit.retry_after)}
            return JSONResponse({"error": limit.message, "reason": limit.outcome}, status_code=429, headers=headers)
        except (ClientDisconnect, TimeoutError, anyio.get_cancelled_exc_class()):
            raise
        except Exception as err:  # answer and keep serving; the log line says what broke
            fields["error"] = f"{type(err).__name__}: {err}"
            return JSONResponse({"error": "internal error"}, status_code=500)

    return run


def create_app(
    facilitator: Facilitator,
    *,
    api_keys: ApiKeys | None = None,
    request_timeout: float = 60.0,
    body_timeout: float = 5.0,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    log: RequestLog | None = None,
    threads: int = 64,
    manage_facilitator: bool = True,
    settle_data: SettlementDataQueue | None = None,
    operations: Operations | None = None,
) -> Starlette:
    """The ASGI app serving ``facilitator``. ``request_timeout`` bounds a whole request (408 if it is not answered
    by then), ``body_timeout`` the reading of its body. With ``manage_facilitator`` the lifespan starts its settlement
    engine and closes it (after settlements in flight) at shutdown. ``api_keys=None`` leaves ``/settle`` open:
    only for tests and private networks. ``operations`` (keys in the store, limits, usage, receipts) takes over
    authentication from ``api_keys``."""
    log = log or RequestLog()

    def identify(request: Request, endpoint: str) -> Caller | None:
        """The caller (None without ``operations``); 401 when the request needs a valid key and lacks it."""
        header = request.headers.get("authorization")
        if operations is None:
            refused = endpoint != "verify" and api_keys is not None and not api_keys.accepts(header)
            caller = None
        else:
            caller = operations.caller(header, endpoint)
            refused = caller is None
        if refused:
            raise HttpError(
                401, "Authorization: a valid 'Bearer <key>' is required", {"WWW-Authenticate": 'Bearer realm="x402"'}
            )
        if caller is not None:
            _fields(request)["key"] = caller.name
        return caller

    def authorize(request: Request) -> None:
        identify(request, "settle")

    async def admit(caller: Caller | None, endpoint: str, body: Any) -> str | None:
        """Count the request against the caller's limits (429 over one); for /settle, reserve its charge."""
        if operations is None or caller is None:
            return None
        try:
            await in_thread(operations.admit, caller, endpoint)
            return await in_thread(operations.reserve, caller, body) if endpoint == "settle" else None
        except LimitExceeded as limit:
            await in_thread(operations.refused, caller, endpoint, body, limit)
            raise

    async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
        # Abandoned on the deadline: the thread finishes (a settlement is stored), the client gets 408.
        return await anyio.to_thread.run_sync(fn, *args, abandon_on_cancel=True)

    async def supported(request: Request) -> Any:
        return facilitator.supported()

    async def health(request: Request) -> Any:
        answer: dict[str, Any] = {"status": "ok", "network": facilitator.network}
        if operations is not None and operations.usage_lost:
            answer["usageRecordsLost"] = operations.usage_lost
        return answer

    readers: list[AsyncRpcBatchReader] = []

    async def verify(request: Request) -> Any:
        caller = identify(request, "verify")
        body = await _json_body(request, max_body_bytes, body_timeout)
        await admit(caller, "verify", body)
        result = await facilitator.verify_async(body, readers[0])
        if operations is not None and caller is not None:
            operations.verified(caller, body, result)
        fields = _fields(request)
        fields.update(isValid=result.is_valid, payer=result.payer)
        if result.invalid_reason is not None:
            fields["reason"] = str(result.invalid_reason)
        return result.to_json()

    async def settle(request: Request) -> Any:
        caller = identify(request, "settle")
        body = await _json_body(request, max_body_bytes, body_timeout)
        hold = await admit(caller, "settle", body)
        notes: dict[str, Any] = {}
        if operations is None or caller is None:
            response = await in_thread(facilitator.settle, body, notes)
        else:  # one thread for both, so a request past its deadline still has its reservation and usage settled
            response = await in_thread(operations.settle, facilitator.settle, caller, body, hold, notes)
        fields = _fields(request)
        fields.update(success=response.success, payer=response.payer, **notes)
        if response.error_reason is not None:
            fields["reason"] = response.error_reason
        if response.transaction:
            fields["transaction"] = response.transaction
        return response.to_json()

    async def status(request: Request) -> Any:
        authorize(request)
        ident = str(request.path_params["ident"])
        digits = ident.removeprefix("0x")
        if len(digits) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise HttpError(400, f"id: expected a payment id or transaction hash (0x + 64 hex digits), got {ident!r}")
        answers = await in_thread(facilitator.status, "0x" + digits)
        if operations is not None:
            answers = [await in_thread(operations.stored_receipt, answer) for answer in answers]
        if not answers:
            raise HttpError(404, f"id: no settlement known for {ident}")
        return {"settlements": [a.to_json() for a in answers]}

    async def usage(request: Request) -> Any:
        caller = identify(request, "usage")
        assert operations is not None and caller is not None
        try:
            return await in_thread(operations.usage, caller, dict(request.query_params))
        except InvalidInput as err:
            raise HttpError(400, str(err)) from None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        readers.append(facilitator.async_reader())
        if manage_facilitator:
            facilitator.start()
        log.write("facilitator.start", network=facilitator.network, settler=facilitator.relayer)
        try:
            yield
        finally:
            await readers.pop().aclose()
            if operations is not None:
                await anyio.to_thread.run_sync(operations.close)
            if manage_facilitator:
                await anyio.to_thread.run_sync(facilitator.close)
            log.write("facilitator.stop", reason="shutdown")

    routes = [
        Route("/verify", _endpoint(verify), methods=["POST"]),
        Route("/settle", _endpoint(settle), methods=["POST"]),
        Route("/settle/status/{ident}", _endpoint(status), methods=["GET"]),
        Route("/supported", _endpoint(supported), methods=["GET"]),
        Route("/health", _endpoint(health), methods=["GET"]),
    ]
    if operations is not None:
        routes.append(Route("/usage", _endpoint(usage), methods=["GET"]))
    if settle_data is not None:
        handler = settle_data_handler(
            settle_data,
            authorize=authorize,
            read_body=lambda request: _json_body(request, max_body_bytes, body_timeout),
            in_thread=in_thread,
            log_fields=_fields,
        )
        routes.append(Route(SETTLE_DATA_PATH, _endpoint(handler), methods=["POST"]))

    async def not_found(request: Request, exc: Exception) -> Response:
        message = f"path: no endpoint {request.url.path!r} (try /verify, /settle, /supported, /health)"
        _fields(request)["error"] = message
        return JSONResponse({"error": message}, status_code=404)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        message = f"method: {request.method} is not allowed on {request.url.path}"
        _fields(request)["error"] = message
        allow = getattr(exc, "headers", None) or {}
        return JSONResponse({"error": message}, status_code=405, headers=dict(allow))

    return Starlette(
        routes=routes,
        middleware=[Middleware(_Guard, log=log, timeout=request_timeout)],
        exception_handlers={404: not_found, 405: not_allowed},
        lifespan=lifespan,
    )
