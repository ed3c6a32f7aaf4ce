"""``OpenAICompatibleBackend`` against an OpenAI-compatible HTTP upstream on loopback.

No real model API is reachable offline, so the upstream is a TEST DOUBLE: a small Starlette app answering
``/v1/chat/completions`` and ``/v1/completions`` in OpenAI's wire format (whole answers, and server-sent events with
``stream_options.include_usage``), which also records what it was sent. It checks what the backend sends (model
mapping, bearer key, no gateway-only fields) and how it reads answers, usage and streamed tool calls.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from og_settle.gateway import ModelOutput, OpenAICompatibleBackend, parse_inference_request

SEEN: list[dict[str, Any]] = []


async def _chat(request: Request) -> Response:
    body = await request.json()
    SEEN.append({"path": "chat", "body": body, "auth": request.headers.get("authorization")})
    usage = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    if body.get("tools"):
        call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}
        if not body.get("stream"):
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
            return JSONResponse({"choices": [choice], "usage": usage})

        async def tool_events() -> AsyncIterator[str]:
            head = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": ""}}
            for delta in (
                {"tool_calls": [head]},
                {"tool_calls": [{"index": 0, "function": {"arguments": '{"q": '}}]},
                {"tool_calls": [{"index": 0, "function": {"arguments": '"x"}'}}]},
            ):
                yield f"data: {json.dumps({'choices': [{'index': 0, 'delta': delta, 'finish_reason': None}]})}\n\n"
            yield f"data: {json.dumps({'choices': [{'index': 0, 'delta': {}, 'finish_reason': 'tool_calls'}]})}\n\n"
            yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(tool_events(), media_type="text/event-stream")
    if not body.get("stream"):
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": "Paris is the capital."},
            "finish_reason": "stop",
        }
        return JSONResponse({"choices": [choice], "usage": usage})

    async def events() -> AsyncIterator[str]:
        for piece in ("Paris", " is", " the capital."):
            chunk = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            yield f"data: {json.dumps(chunk)}\n\n"
        yield f"data: {json.dumps({'choices': [{'index': 0, 'delta': {}, 'finish_reason': 'stop'}]})}\n\n"
        yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


async def _completion(request: Request) -> Response:
    body = await request.json()
    SEEN.append({"path": "completion", "body": body, "auth": request.headers.get("authorization")})
    return JSONResponse(
        {
            "choices": [{"index": 0, "text": "bonjour", "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 4, "completion_tokens": 1},
        }
    )


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", _chat, methods=["POST"]),
            Route("/v1/completions", _completion, methods=["POST"]),
        ]
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


async def _use(backend: OpenAICompatibleBackend, kind: Any, body: dict[str, Any], stream: bool) -> Any:
    request = parse_inference_request(kind, body)
    try:
        if not stream:
            return await backend.generate(request)
        return [item async for item in backend.stream(request)]
    finally:
        await backend.aclose()


def test_whole_answers_with_usage_model_mapping_and_key(upstream: str) -> None:
    SEEN.clear()
    backend = OpenAICompatibleBackend(upstream, api_key="sk-test", model_map={"gpt-4o": "gpt-4o-2024-08-06"})
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "capital of France?"}], "web_search": True}
    output = asyncio.run(_use(backend, "chat", body, stream=False))
    assert output == ModelOutput("Paris is the capital.", "stop", 9, 3)
    sent = SEEN[-1]
    assert sent["auth"] == "Bearer sk-test"
    assert sent["body"]["model"] == "gpt-4o-2024-08-06" and "web_search" not in sent["body"]
    completion = asyncio.run(
        _use(OpenAICompatibleBackend(upstream), "completion", {"model": "m", "prompt": "hi"}, False)
    )
    assert completion == ModelOutput("bonjour", "stop", 4, 1)
    assert SEEN[-1]["auth"] is None


def test_streams_pieces_then_the_whole_answer_with_streamed_usage(upstream: str) -> None:
    SEEN.clear()
    body = {"model": "m", "messages": [{"role": "user", "content": "capital?"}], "stream": True}
    items = asyncio.run(_use(OpenAICompatibleBackend(upstream), "chat", body, stream=True))
    assert items[:-1] == ["Paris", " is", " the capital."]
    assert items[-1] == ModelOutput("Paris is the capital.", "stop", 9, 3)
    assert SEEN[-1]["body"]["stream_options"] == {"include_usage": True}


def test_tool_calls_whole_and_streamed_in_fragments(upstream: str) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    body = {"model": "m", "messages": [{"role": "user", "content": "look it up"}], "tools": tools}
    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}
    whole = asyncio.run(_use(OpenAICompatibleBackend(upstream), "chat", body, stream=False))
    assert whole == ModelOutput("", "tool_calls", 9, 3, (call,))
    streamed = asyncio.run(_use(OpenAICompatibleBackend(upstream), "chat", {**body, "stream": True}, stream=True))
    assert streamed == [ModelOutput("", "tool_calls", 9, 3, (call,))]
