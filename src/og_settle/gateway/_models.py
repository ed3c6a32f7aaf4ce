"""Inference requests as the gateway accepts them, and the model backends that answer them.

:func:`parse_inference_request` validates an OpenAI-style ``/v1/chat/completions`` or ``/v1/completions`` body
and names the first bad field. A :class:`ModelBackend` turns a request into a :class:`ModelOutput`, whole or as
a stream of text pieces. Two backends ship:

* :class:`StandInEchoModel`: deterministic, offline, no weights. It answers a chat with the last user message
  and a completion with its prompt, counts whitespace-separated words as tokens, cuts at ``max_tokens`` (finish
  reason ``length``) and, when the request offers tools (and ``tool_choice`` is not ``"none"``), calls the
  first tool with ``{"input": <last user message>}``. It stands in for a model so tests can be exact.
* :class:`OpenAICompatibleBackend`: forwards to any OpenAI-compatible HTTP API (OpenAI, vLLM, llama.cpp's
  server, Ollama's ``/v1``) with httpx, optionally mapping gateway model names to upstream ones.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from og_settle._errors import InvalidInput

__all__ = [
    "MAX_TOKENS_LIMIT",
    "InferenceRequest",
    "ModelBackend",
    "ModelOutput",
    "OpenAICompatibleBackend",
    "StandInEchoModel",
    "parse_inference_request",
]

RequestKind = Literal["chat", "completion"]
# Largest max_tokens a request may ask for; it also bounds what upto may meter.
MAX_TOKENS_LIMIT: Final = 32_768
DEFAULT_MAX_TOKENS: Final = 4_096
_ROLES: Final = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


@dataclass(frozen=True, slots=True)
class InferenceRequest:
    """A validated request.

    Attributes:
        kind: ``"chat"`` (``/v1/chat/completions``) or ``"completion"`` (``/v1/completions``).
        model: the model name the client asked for.
        body: the request body as sent (what the TEE canonicalises and hashes).
        stream: whether the client asked for server-sent events.
        max_tokens: the most output tokens the client will take (the default when absent).
    """

    kind: RequestKind
    model: str
    body: Mapping[str, Any]
    stream: bool
    max_tokens: int

    @property
    def messages(self) -> Sequence[Mapping[str, Any]]:
        """The chat messages (a completion's prompt as one user message)."""
        if self.kind == "completion":
            return ({"role": "user", "content": self.body["prompt"]},)
        messages: Sequence[Mapping[str, Any]] = self.body["messages"]
        return messages

    @property
    def tools(self) -> Sequence[Mapping[str, Any]]:
        """The tools offered (chat only; empty when none)."""
        tools = self.body.get("tools") if self.kind == "chat" else None
        return tools if isinstance(tools, list) else ()


def _positive_int(body: Mapping[str, Any], name: str, limit: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit:
        raise InvalidInput(f"{name}: expected an integer from 1 to {limit}, got {value!r}")
    return value


def parse_inference_request(kind: RequestKind, body: Any) -> InferenceRequest:
    """Validate a request body; raises InvalidInput naming the first bad field."""
    if not isinstance(body, dict):
        raise InvalidInput(f"body: expected a JSON object, got {type(body).__name__}")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidInput("model: expected the model name as a non-empty string")
    if kind == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidInput("messages: expected a non-empty list of messages")
        for index, message in enumerate(messages):
            if not isinstance(message, dict):
                raise InvalidInput(f"messages[{index}]: expected a JSON object, got {type(message).__name__}")
            role = message.get("role")
            if role not in _ROLES:
                raise InvalidInput(f"messages[{index}].role: expected one of {sorted(_ROLES)}, got {role!r}")
            content = message.get("content")
            if content is not None and not isinstance(content, str | list):
                raise InvalidInput(f"messages[{index}].content: expected text or a list of parts")
        tools = body.get("tools")
        if tools is not None and not (isinstance(tools, list) and all(isinstance(t, dict) for t in tools)):
            raise InvalidInput("tools: expected a list of tool objects")
    else:
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            raise InvalidInput("prompt: expected the prompt as a string")
    temperature = body.get("temperature")
    if temperature is not None and (
        not isinstance(temperature, int | float) or isinstance(temperature, bool) or not 0 <= temperature <= 2
    ):
        raise InvalidInput(f"temperature: expected a number from 0 to 2, got {temperature!r}")
    stop = body.get("stop")
    if (
        stop is not None
        and not isinstance(stop, str)
        and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        raise InvalidInput("stop: expected a string or a list of strings")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidInput(f"stream: expected true or false, got {stream!r}")
    max_tokens = _positive_int(body, "max_tokens", MAX_TOKENS_LIMIT)
    return InferenceRequest(
        kind=kind,
        model=model,
        body=body,
        stream=stream,
        max_tokens=max_tokens if max_tokens is not None else DEFAULT_MAX_TOKENS,
    )


@dataclass(frozen=True, slots=True)
class ModelOutput:
    """What a model answered.

    Attributes:
        text: the answer text (empty when the model only called tools).
        finish_reason: ``"stop"``, ``"length"`` or ``"tool_calls"``.
        prompt_tokens: input tokens, as the backend counts them.
        completion_tokens: output tokens, as the backend counts them; upto payments are metered on these.
        tool_calls: OpenAI-style tool calls ``{id, type, function: {name, arguments}}``.
    """

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    tool_calls: tuple[Mapping[str, Any], ...] = field(default=())


class ModelBackend(Protocol):
    """A model the gateway can put behind its TEE: an enclave's upstream provider, or the stand-in."""

    async def generate(self, request: InferenceRequest) -> ModelOutput:
        """The whole answer."""
        ...

    def stream(self, request: InferenceRequest) -> AsyncIterator[str | ModelOutput]:
        """Text pieces as they come, then exactly one :class:`ModelOutput` with the whole answer."""
        ...

    async def aclose(self) -> None:
        """Release connections (called once at shutdown)."""
        ...


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


class StandInEchoModel:
    """A STAND-IN model: deterministic echo, no weights, nothing learned (see the module docstring)."""

    name: Final = "stand-in echo model"

    def __init__(self, *, delay: float = 0.0) -> None:
        # Seconds between streamed pieces: lets a test (or a demo) watch a stream arrive, or leave in the middle.
        self.delay = delay

    def _answer(self, request: InferenceRequest) -> ModelOutput:
        messages = request.messages
        user_texts = [_text_of(m.get("content")) for m in messages if m.get("role") == "user"]
        last = user_texts[-1] if user_texts else ""
        prompt_tokens = sum(len(_text_of(m.get("content")).split()) for m in messages)
        if request.tools and request.body.get("tool_choice") != "none":
            function = request.tools[0].get("function")
            name = function.get("name", "") if isinstance(function, dict) else ""
            call = {
                "id": "call_standin_0",
                "type": "function",
                "function": {"name": str(name), "arguments": json.dumps({"input": last})},
            }
            return ModelOutput("", "tool_calls", prompt_tokens, 1, (call,))
        words = (last if request.kind == "completion" else f"You said: {last}").split()
        finish = "stop"
        if len(words) > request.max_tokens:
            words, finish = words[: request.max_tokens], "length"
        return ModelOutput(" ".join(words), finish, prompt_tokens, len(words))

    async def generate(self, request: InferenceRequest) -> ModelOutput:
        return self._answer(request)

    async def stream(self, request: InferenceRequest) -> AsyncIterator[str | ModelOutput]:
        output = self._answer(request)
        for index, word in enumerate(output.text.split(" ") if output.text else ()):
            if self.delay:
                await asyncio.sleep(self.delay)
            yield word if index == 0 else " " + word
        yield output

    async def aclose(self) -> None:
        return None


class OpenAICompatibleBackend:
    """Forwards requests to an OpenAI-compatible API at ``base_url`` (e.g. ``https://api.openai.com/v1``).

    ``api_key`` is sent as a bearer token; ``model_map`` renames gateway models to upstream ones (identity for
    names not in it). Usage comes from the upstream's ``usage`` (requested with ``stream_options`` when
    streaming); an upstream that reports none is metered at 0 output tokens, so upto then charges nothing.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        model_map: Mapping[str, str] | None = None,
        timeout: float = 120.0,
    ) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)
        self._model_map = dict(model_map or {})

    def _upstream_body(self, request: InferenceRequest, *, stream: bool) -> tuple[str, dict[str, Any]]:
        body = dict(request.body)
        body["model"] = self._model_map.get(request.model, request.model)
        body.pop("web_search", None)
        body["stream"] = stream
        if stream:
            body["stream_options"] = {"include_usage": True}
        path = "/chat/completions" if request.kind == "chat" else "/completions"
        return path, body

    @staticmethod
    def _usage(data: Mapping[str, Any]) -> tuple[int, int]:
        usage = data.get("usage") or {}
        return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)

    async def generate(self, request: InferenceRequest) -> ModelOutput:
        path, body = self._upstream_body(request, stream=False)
        response = await self._client.post(path, json=body)
        response.raise_for_status()
        data = response.json()
        choice = data["choices"][0]
        prompt_tokens, completion_tokens = self._usage(data)
        if request.kind == "completion":
            return ModelOutput(
                str(choice.get("text") or ""),
                str(choice.get("finish_reason") or "stop"),
                prompt_tokens,
                completion_tokens,
            )
        message = choice.get("message") or {}
        calls = tuple(
            {"id": c.get("id", ""), "type": "function", "function": dict(c.get("function") or {})}
            for c in message.get("tool_calls") or ()
        )
        finish = "tool_calls" if calls else str(choice.get("finish_reason") or "stop")
        return ModelOutput(str(message.get("content") or ""), finish, prompt_tokens, completion_tokens, calls)

    async def stream(self, request: InferenceRequest) -> AsyncIterator[str | ModelOutput]:
        path, body = self._upstream_body(request, stream=True)
        pieces: list[str] = []
        finish, prompt_tokens, completion_tokens = "stop", 0, 0
        calls: dict[int, dict[str, Any]] = {}
        async with self._client.stream("POST", path, json=body) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data_text = line[5:].strip()
                if data_text == "[DONE]":
                    break
                chunk = json.loads(data_text)
                if chunk.get("usage"):
                    prompt_tokens, completion_tokens = self._usage(chunk)
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    text = delta.get("content") if request.kind == "chat" else choice.get("text")
                    if text:
                        pieces.append(text)
                        yield text
                    for call in delta.get("tool_calls") or ():
                        slot = calls.setdefault(
                            int(call.get("index", 0)),
                            {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
                        )
                        slot["id"] = call.get("id") or slot["id"]
                        function = call.get("function") or {}
                        slot["function"]["name"] += function.get("name") or ""
                        slot["function"]["arguments"] += function.get("arguments") or ""
                    if choice.get("finish_reason"):
                        finish = str(choice["finish_reason"])
        tool_calls = tuple(calls[k] for k in sorted(calls))
        yield ModelOutput(
            "".join(pieces), "tool_calls" if tool_calls else finish, prompt_tokens, completion_tokens, tool_calls
        )

    async def aclose(self) -> None:
        await self._client.aclose()
