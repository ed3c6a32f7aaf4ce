"""The gateway's HTTP face: an ASGI app (Starlette) with OpenAI's routes, x402 payments and TEE fields.

Routes: ``POST /v1/chat/completions`` and ``POST /v1/completions`` (both also as server-sent events with
``"stream": true``), ``GET /health`` and ``GET /signing-key`` (the stand-in TEE's public key and id).

Answers:

* 200: the OpenAI-shaped answer plus ``tee_signature``, ``tee_request_hash``, ``tee_output_hash``,
  ``tee_timestamp`` and ``tee_id``; headers ``PAYMENT-RESPONSE`` (the settlement), and where they apply
  ``x-settlement-walrus-blob-id`` (the DA blob) and ``x-settlement-tx-hash`` (the data settlement). A
  completion also carries ``completion`` (what OpenGradient's SDK reads). A stream's last data frame before
  ``[DONE]`` carries the ``tee_*`` fields, ``finish_reason``, ``usage``, ``payment_response`` and the
  ``data_settlement_*`` fields.
* 402: ``PAYMENT-REQUIRED`` (and the same JSON as the body), with ``error`` naming the reason when a payment
  was offered and refused.
* 400 / 404 / 413 / 502 / 503 / 504: ``{"error": {"message", "type", "code"}}``, nothing charged.

One JSON log line per request goes to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from og_settle._errors import InvalidInput
from og_settle._hashing import SettlementMode
from og_settle._x402 import PAYMENT_REQUIRED_HEADER, PAYMENT_RESPONSE_HEADER, encode_header
from og_settle.facilitator import RequestLog
from og_settle.gateway._core import (
    Authorized,
    Gateway,
    GatewayError,
    PaymentRejected,
    Recorded,
    parse_settlement_mode,
)
from og_settle.gateway._facilitator_client import FacilitatorUnavailable
from og_settle.gateway._models import InferenceRequest, ModelOutput, RequestKind, parse_inference_request
from og_settle.gateway._tee import TeeAttestation

__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app"]

# A chat request with a long conversation is tens of kilobytes; a megabyte is generous.
DEFAULT_MAX_BODY_BYTES: Final = 1_048_576
SETTLEMENT_TYPE_HEADER: Final = "X-SETTLEMENT-TYPE"
TX_HASH_HEADER: Final = "x-settlement-tx-hash"
BLOB_ID_HEADER: Final = "x-settlement-walrus-blob-id"


# /settle was sent but no answer came back: the facilitator may or may not have settled. It settles one payment at most
# once, so the same payment sent again gets the answer and is charged at most once.
_SETTLEMENT_UNKNOWN: Final = (
    "the facilitator did not answer /settle, so whether the payment settled is unknown; send the same request with "
    "the same payment again (a payment is settled at most once)"
)


def _error(status: int, code: str, message: str) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "code": code}}, status_code=status)


async def _read_json(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise GatewayError(400, "invalid_request", f"Content-Length: not a number: {declared!r}")
        if int(declared) > limit:
            raise GatewayError(413, "body_too_large", f"body: {declared} bytes is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise GatewayError(413, "body_too_large", f"body: over the {limit}-byte limit")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks).decode("utf-8"))
    except UnicodeDecodeError:
        raise GatewayError(400, "invalid_json", "body: not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise GatewayError(
            400, "invalid_json", f"body: not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None


def _answer_body(
    request: InferenceRequest, output: ModelOutput, attestation: TeeAttestation, created: int
) -> dict[str, Any]:
    usage = {
        "prompt_tokens": output.prompt_tokens,
        "completion_tokens": output.completion_tokens,
        "total_tokens": output.prompt_tokens + output.completion_tokens,
    }
    ident = attestation.request_hash.hex()[:24]
    if request.kind == "completion":
        body: dict[str, Any] = {
            "id": f"cmpl-{ident}",
            "object": "text_completion",
            "created": created,
            "model": request.model,
            "choices": [{"text": output.text, "index": 0, "finish_reason": output.finish_reason}],
            "completion": output.text,
            "usage": usage,
        }
    else:
        message: dict[str, Any] = {"role": "assistant", "content": output.text}
        if output.tool_calls:
            message["tool_calls"] = [dict(call) for call in output.tool_calls]
        body = {
            "id": f"chatcmpl-{ident}",
            "object": "chat.completion",
            "created": created,
            "model": request.model,
            "choices": [{"index": 0, "message": message, "finish_reason": output.finish_reason}],
            "usage": usage,
        }
    body.update(attestation.response_fields())
    return body


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def _settlement_headers(settled: Any, recorded: Recorded) -> dict[str, str]:
    headers = {PAYMENT_RESPONSE_HEADER: encode_header(settled)}
    if recorded.blob_id is not None:
        headers[BLOB_ID_HEADER] = recorded.blob_id
    if recorded.tx_hash is not None:
        headers[TX_HASH_HEADER] = recorded.tx_hash
    return headers


class _Handler:
    def __init__(self, gateway: Gateway, max_body_bytes: int, log: RequestLog) -> None:
        self.gateway = gateway
        self.max_body_bytes = max_body_bytes
        self.log = log

    async def __call__(self, http: Request, kind: RequestKind) -> Response:
        started = time.monotonic()
        fields: dict[str, Any] = {}
        try:
            response = await self._handle(http, kind, fields)
        except GatewayError as err:
            fields["error"] = err.message
            # Raised before any settlement: say so where it is not obvious (the server's failures).
            message = err.message if err.status < 500 else f"{err.message}; nothing was charged"
            response = _error(err.status, err.code, message)
        except FacilitatorUnavailable as err:
            fields["error"] = str(err)
            response = _error(
                503, "facilitator_unavailable", "the payment facilitator is unavailable; nothing was charged"
            )
        self.log.write(
            "http.request",
            method=http.method,
            path=http.url.path,
            status=response.status_code,
            ms=_ms_since(started),
            **fields,
        )
        return response

    def _payment_required(self, request: InferenceRequest, http: Request, error: str | None) -> Response:
        price = self.gateway.price_of(request)
        required = self.gateway.payment_required(request, price, str(http.url), error)
        return JSONResponse(
            required.to_json(), status_code=402, headers={PAYMENT_REQUIRED_HEADER: encode_header(required)}
        )

    async def _handle(self, http: Request, kind: RequestKind, fields: dict[str, Any]) -> Response:
        gateway = self.gateway
        body = await _read_json(http, self.max_body_bytes)
        try:
            request = parse_inference_request(kind, body)
        except InvalidInput as err:
            raise GatewayError(400, "invalid_request", str(err)) from None
        mode = parse_settlement_mode(http.headers.get(SETTLEMENT_TYPE_HEADER))
        price = gateway.price_of(request)
        fields.update(model=request.model, mode=mode.value, stream=request.stream)
        header = http.headers.get("PAYMENT-SIGNATURE") or http.headers.get("X-PAYMENT")
        if not header:
            fields["payment"] = "required"
            return self._payment_required(request, http, None)
        verify_started = time.monotonic()
        try:
            auth = await gateway.authorize(request, price, header)
        except PaymentRejected as err:
            fields.update(payment="rejected", reason=err.reason)
            return self._payment_required(request, http, f"{err.reason}: {err.message}")
        fields.update(payer=auth.payer, scheme=auth.scheme, verify_ms=_ms_since(verify_started))
        if request.stream:
            return _PaidStream(self, request, mode, auth, fields)
        settled = False
        try:
            model_started = time.monotonic()
            output = await gateway.run(request)
            attestation = gateway.tee.attest(request, output)
            record = gateway.inference_record(mode, request, output, attestation, auth.payer)
            gateway.check_record(mode, record)
            settle_started = time.monotonic()
            fields["model_ms"] = round((settle_started - model_started) * 1000, 1)
            try:
                settlement = await gateway.settle(auth, output.completion_tokens)
            except FacilitatorUnavailable as err:
                fields["error"] = str(err)
                return _error(503, "settlement_unknown", _SETTLEMENT_UNKNOWN)
            fields["settle_ms"] = _ms_since(settle_started)
            settled = settlement.success
            if not settlement.success:
                reason = settlement.error_reason or "settlement_failed"
                fields.update(payment="settle_failed", reason=reason)
                return self._payment_required(request, http, f"{reason}: the payment did not settle")
            fields.update(transaction=settlement.transaction, amount=str(settlement.amount or auth.requirements.amount))
            recorded = await self._record(mode, record, request, output, attestation, auth, fields)
        finally:
            if not settled:
                await gateway.release(auth)
        answer = _answer_body(request, output, attestation, attestation.timestamp)
        return JSONResponse(answer, headers=_settlement_headers(settlement, recorded))

    async def _record(
        self,
        mode: SettlementMode,
        record: Any,
        request: InferenceRequest,
        output: ModelOutput,
        attestation: TeeAttestation,
        auth: Authorized,
        fields: dict[str, Any],
    ) -> Recorded:
        """Queue the inference record; the payment has settled, so a failure here is logged, not answered."""
        try:
            recorded = await self.gateway.record(mode, record, request, output, attestation, auth.payer)
        except Exception as err:  # the client paid and gets its answer; the operator sees the failure
            fields["record_error"] = f"{type(err).__name__}: {err}"
            return Recorded(mode)
        if recorded.queue_key is not None:
            fields["queued"] = recorded.queue_key
        if recorded.blob_id is not None:
            fields["blob"] = recorded.blob_id
        return recorded


class _PaidStream(Response):
    """A paid request answered as server-sent events; settles when the model is done (or the client left)."""

    media_type = "text/event-stream"

    def __init__(
        self,
        handler: _Handler,
        request: InferenceRequest,
        mode: SettlementMode,
        auth: Authorized,
        fields: dict[str, Any],
    ) -> None:
        super().__init__(status_code=200)
        # No Content-Length: the body is a stream of events whose length is not known in advance.
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
        self.handler, self.request, self.mode, self.auth, self.fields = handler, request, mode, auth, fields

    def _frame(self, data: Any) -> bytes:
        text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        return f"data: {text}\n\n".encode()

    def _delta(self, content: str) -> dict[str, Any]:
        if self.request.kind == "completion":
            return {
                "object": "text_completion",
                "model": self.request.model,
                "choices": [{"text": content, "index": 0, "finish_reason": None}],
            }
        return {
            "object": "chat.completion.chunk",
            "model": self.request.model,
            "choices": [{"delta": {"role": "assistant", "content": content}, "index": 0, "finish_reason": None}],
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gateway = self.handler.gateway
        disconnected = asyncio.Event()

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected.set()
                    return

        watcher = asyncio.create_task(watch())
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        pieces = 0
        output: ModelOutput | None = None
        failure: str | None = None
        stream: AsyncIterator[Any] = gateway.backend.stream(self.request)
        try:
            async with asyncio.timeout(gateway.config.model_timeout):
                async for item in stream:
                    if disconnected.is_set():
                        break
                    if isinstance(item, ModelOutput):
                        output = item
                        break
                    pieces += 1
                    await send(
                        {"type": "http.response.body", "body": self._frame(self._delta(item)), "more_body": True}
                    )
        except TimeoutError:
            failure = "model_timeout"
        except Exception as err:
            failure = f"model_error: {type(err).__name__}: {err}"
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        try:
            if output is None:
                await self._unfinished(send, disconnected.is_set(), pieces, failure)
            else:
                await self._finish(send, output)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            self.handler.log.write("http.stream", pieces=pieces, **self.fields)

    async def _unfinished(self, send: Send, disconnected: bool, pieces: int, failure: str | None) -> None:
        """The answer never completed: no TEE signature exists, so nothing is recorded; see the README for charges."""
        gateway = self.handler.gateway
        if disconnected and self.auth.scheme == "upto" and pieces:
            # The client left mid-stream: upto pays for the output it was sent (one piece ~ one token).
            try:
                settlement = await gateway.settle(self.auth, pieces)
            except FacilitatorUnavailable as err:  # nobody is left to tell; the log says what happened
                self.fields.update(disconnected=True, charged_pieces=pieces, settle_error=str(err))
            else:
                self.fields.update(
                    disconnected=True,
                    charged_pieces=pieces,
                    transaction=settlement.transaction,
                    settled=settlement.success,
                )
        else:
            await gateway.release(self.auth)
            self.fields.update(disconnected=disconnected, charged_pieces=0)
        if failure is not None:
            self.fields["error"] = failure
            code = failure.split(":", 1)[0]
            error = {"error": {"message": f"{failure}; nothing was charged", "type": "server_error", "code": code}}
            await send({"type": "http.response.body", "body": self._frame(error), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _finish(self, send: Send, output: ModelOutput) -> None:
        gateway = self.handler.gateway
        request, auth = self.request, self.auth
        attestation = gateway.tee.attest(request, output)
        record = gateway.inference_record(self.mode, request, output, attestation, auth.payer)
        try:
            gateway.check_record(self.mode, record)
            settlement = await gateway.settle(auth, output.completion_tokens)
        except (GatewayError, FacilitatorUnavailable) as err:
            await gateway.release(auth)
            if isinstance(err, GatewayError):  # refused before /settle
                message, code = f"{err.message}; nothing was charged", err.code
            else:
                message, code = _SETTLEMENT_UNKNOWN, "settlement_unknown"
            self.fields["error"] = message
            error = {"error": {"message": message, "type": "server_error", "code": code}}
            await send({"type": "http.response.body", "body": self._frame(error), "more_body": False})
            return
        if not settlement.success:
            reason = settlement.error_reason or "settlement_failed"
            self.fields.update(payment="settle_failed", reason=reason)
            error = {
                "error": {"message": f"{reason}: the payment did not settle", "type": "payment_error", "code": reason}
            }
            await send({"type": "http.response.body", "body": self._frame(error), "more_body": False})
            return
        self.fields.update(transaction=settlement.transaction)
        recorded = await self.handler._record(self.mode, record, request, output, attestation, auth, self.fields)
        final: dict[str, Any] = self._delta("")
        choice = final["choices"][0]
        if request.kind == "chat":
            choice["delta"] = {"tool_calls": [dict(c) for c in output.tool_calls]} if output.tool_calls else {}
        choice["finish_reason"] = output.finish_reason
        final["usage"] = {
            "prompt_tokens": output.prompt_tokens,
            "completion_tokens": output.completion_tokens,
            "total_tokens": output.prompt_tokens + output.completion_tokens,
        }
        final.update(attestation.response_fields())
        final["payment_response"] = encode_header(settlement)
        if recorded.blob_id is not None:
            final["data_settlement_blob_id"] = recorded.blob_id
        if recorded.tx_hash is not None:
            final["data_settlement_transaction_hash"] = recorded.tx_hash
        await send({"type": "http.response.body", "body": self._frame(final), "more_body": True})
        await send({"type": "http.response.body", "body": self._frame("[DONE]"), "more_body": False})


def create_app(
    gateway: Gateway, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, log: RequestLog | None = None
) -> Starlette:
    """The ASGI app for ``gateway``; its lifespan reads the facilitator's ``/supported`` and closes clients."""
    handler = _Handler(gateway, max_body_bytes, log or RequestLog())

    def route(kind: RequestKind) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(http: Request) -> Response:
            return await handler(http, kind)

        return endpoint

    async def health(_: Request) -> Response:
        return JSONResponse(
            {"status": "ok", "network": gateway.config.network.caip2, "tee_id": "0x" + gateway.tee.tee_id.hex()}
        )

    async def signing_key(_: Request) -> Response:
        return JSONResponse(
            {
                "tee_id": "0x" + gateway.tee.tee_id.hex(),
                "public_key": gateway.tee.public_key_pem,
                "stand_in": True,
                "attestation": None,
                "note": "STAND-IN TEE: an ordinary process holds this key; there is no enclave and no attestation",
            }
        )

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.facilitator.aclose()
            await gateway.backend.aclose()
            if gateway.sink is not None:
                gateway.sink.close()

    return Starlette(
        routes=[
            Route("/v1/chat/completions", route("chat"), methods=["POST"]),
            Route("/v1/completions", route("completion"), methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/signing-key", signing_key, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
