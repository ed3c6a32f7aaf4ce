"""OpenGradient's request canonicalisation and output extraction, byte for byte.

The gateway signs a hash of a *reduced* request, not of the bytes the client sent. This module reduces a request
exactly as the OpenGradient SDK's ``build_inner_request`` (``opengradient/client/tee_verify.py``) and the gateway's
``_chat_request_to_dict`` do, and picks out the exact output text the gateway hashed, so that og-settle's
``request_hash`` and ``response_output_hash`` equal OpenGradient's for the same exchange (the test suite checks this
against the SDK itself, PyPI ``opengradient==1.1.4``, in its own virtualenv).

Chat requests (``messages``) reduce to:

- ``model`` (a non-empty string) and ``messages`` (a non-empty list of objects), each message by role:
  ``system`` and ``developer`` become ``{"role": "system", "content"}``; ``user`` keeps string content, and list
  content keeps text parts as ``{"type": "text", "text"}`` while every attachment shrinks to ``{type[, filename]}``
  (the filename from ``part.file.filename`` or ``part.filename``; the bytes are not hashed); ``assistant`` is
  ``{"role", "content" (or "")}`` plus, when present, ``tool_calls`` reduced to ``{id, type, function: {name,
  arguments}}`` (defaults ``""``, ``"function"``, ``""``, ``""``); ``tool`` keeps ``content`` and ``tool_call_id``;
  ``function`` keeps ``content`` and ``name``. Any other role is refused.
- ``temperature`` as ``float(temperature)``, ``0.0`` when absent or null.
- ``max_tokens`` when not null; ``stop``, ``tools`` (a list), ``response_format`` when truthy; ``web_search: true``
  when truthy. Everything else (``n``, ``top_p``, ``tool_choice``, ``stream``, ...) is not signed and is dropped.

Completion requests (``prompt``) reduce as the gateway's completions endpoint does: ``model``, ``prompt``,
``temperature`` (as above), ``max_tokens`` when not null, ``stop`` when truthy, ``web_search: true`` when truthy.

The quirks are kept on purpose (non-string user content becomes ``str(content)``, falsy text parts become ``""``):
matching the signer matters more than tidiness here. Canonicalising a canonical request changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from og_settle._errors import InvalidInput
from og_settle._hex import keccak256
from og_settle.tee._hashing import canonical_json

__all__ = [
    "UnsupportedRequest",
    "canonical_chat_request",
    "canonical_completion_request",
    "canonical_request",
    "request_hash",
    "response_output",
    "response_output_hash",
]


class UnsupportedRequest(InvalidInput):
    """A request OpenGradient's canonicalisation cannot express (no model, no messages, an unknown role, ...)."""


def _user_content(content: Any) -> Any:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return str(content)
    parts: list[Any] = []
    for part in content:
        if not isinstance(part, dict):
            parts.append({"type": "text", "text": str(part)})
            continue
        if part.get("type") == "text":
            parts.append({"type": "text", "text": part.get("text", "") or ""})
            continue
        entry: dict[str, Any] = {"type": part.get("type")}
        file_obj = part.get("file")
        filename = (file_obj.get("filename") if isinstance(file_obj, dict) else None) or part.get("filename")
        if filename:
            entry["filename"] = filename
        parts.append(entry)
    return parts


def _tool_call(call: Any, index: int) -> dict[str, Any]:
    if not isinstance(call, dict):
        raise UnsupportedRequest(f"tool_calls[{index}]: expected an object, got {type(call).__name__}")
    function = call.get("function", {})
    if not isinstance(function, dict):
        raise UnsupportedRequest(f"tool_calls[{index}].function: expected an object, got {type(function).__name__}")
    return {
        "id": call.get("id", ""),
        "type": call.get("type", "function"),
        "function": {"name": function.get("name", ""), "arguments": function.get("arguments", "")},
    }


def _message(message: dict[str, Any], index: int) -> dict[str, Any]:
    role = message.get("role")
    if role in ("system", "developer"):
        return {"role": "system", "content": message.get("content")}
    if role == "user":
        return {"role": "user", "content": _user_content(message.get("content"))}
    if role == "assistant":
        out: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
        calls = message.get("tool_calls")
        if calls:
            if not isinstance(calls, list):
                raise UnsupportedRequest(f"messages[{index}].tool_calls: expected a list, got {type(calls).__name__}")
            out["tool_calls"] = [_tool_call(call, i) for i, call in enumerate(calls)]
        return out
    if role == "tool":
        return {"role": "tool", "content": message.get("content"), "tool_call_id": message.get("tool_call_id")}
    if role == "function":
        return {"role": "function", "content": message.get("content"), "name": message.get("name")}
    raise UnsupportedRequest(f"messages[{index}].role: unknown message role {role!r}")


def _temperature(body: Mapping[str, Any]) -> float:
    value = body.get("temperature")
    if value is None:
        return 0.0
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise UnsupportedRequest(f"temperature: not a number: {value!r}") from None


def _model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise UnsupportedRequest("model: missing (expected a non-empty string)")
    return model


def _with_shared_options(body: Mapping[str, Any], canonical: dict[str, Any]) -> dict[str, Any]:
    """The optional fields chat and completion requests share: ``max_tokens`` when not null, ``stop`` when truthy,
    ``web_search: true`` when truthy (key order is irrelevant: the hash sorts keys)."""
    if body.get("max_tokens") is not None:
        canonical["max_tokens"] = body["max_tokens"]
    if body.get("stop"):
        canonical["stop"] = body["stop"]
    if body.get("web_search"):
        canonical["web_search"] = True
    return canonical


def canonical_chat_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """The reduced chat request OpenGradient hashes (``build_inner_request``'s ``canonical``)."""
    if not isinstance(body, Mapping):
        raise UnsupportedRequest(f"request: expected a JSON object, got {type(body).__name__}")
    model = _model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise UnsupportedRequest("messages: missing (expected a non-empty list)")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise UnsupportedRequest(f"messages[{index}]: expected an object, got {type(message).__name__}")
    canonical: dict[str, Any] = {
        "model": model,
        "messages": [_message(message, i) for i, message in enumerate(messages)],
        "temperature": _temperature(body),
    }
    if body.get("tools"):
        tools = body["tools"]
        if not isinstance(tools, list):
            raise UnsupportedRequest(f"tools: expected a list, got {type(tools).__name__}")
        canonical["tools"] = tools
    if body.get("response_format"):
        canonical["response_format"] = body["response_format"]
    return _with_shared_options(body, canonical)


def canonical_completion_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """The reduced completion (``/v1/completions``) request the gateway hashes."""
    if not isinstance(body, Mapping):
        raise UnsupportedRequest(f"request: expected a JSON object, got {type(body).__name__}")
    canonical: dict[str, Any] = {
        "model": _model(body),
        "prompt": body.get("prompt"),
        "temperature": _temperature(body),
    }
    if "prompt" not in body:
        raise UnsupportedRequest("prompt: missing")
    return _with_shared_options(body, canonical)


def canonical_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """A chat request (it has ``messages``) or a completion request (it has ``prompt``), canonicalised."""
    if isinstance(body, Mapping) and "messages" not in body and "prompt" in body:
        return canonical_completion_request(body)
    return canonical_chat_request(body)


def request_hash(body: Mapping[str, Any]) -> bytes:
    """``keccak256(json.dumps(canonical_request(body), sort_keys=True))``: OpenGradient's ``inputHash``."""
    return keccak256(canonical_json(canonical_request(body), "request"))


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        pieces = [part.get("text", "") if isinstance(part, dict) else str(part) for part in content]
        if not all(isinstance(piece, str) for piece in pieces):
            raise InvalidInput("response: a content part's text is not a string")
        return "".join(pieces)
    return ""


def response_output(response: Mapping[str, Any]) -> str:
    """The exact text the gateway hashed as a response's output.

    Chat: with ``finish_reason == "tool_calls"`` and a ``tool_calls`` list, ``json.dumps(tool_calls,
    sort_keys=True)``; otherwise the first choice's message content (a list of parts is joined by its text).
    Completion (a choice with ``text`` and no ``message``): that text. Anything else: ``""``.
    """
    if not isinstance(response, Mapping):
        raise InvalidInput(f"response: expected a JSON object, got {type(response).__name__}")
    choices = response.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message")
    if isinstance(message, dict):
        calls = message.get("tool_calls")
        if choice.get("finish_reason") == "tool_calls" and isinstance(calls, list):
            try:
                return json.dumps(calls, sort_keys=True)
            except (TypeError, ValueError) as err:
                raise InvalidInput(f"response: tool_calls are not JSON-serialisable: {err}") from None
        return _content_text(message.get("content"))
    if message is None and isinstance(choice.get("text"), str):
        text: str = choice["text"]
        return text
    return ""


def response_output_hash(response: Mapping[str, Any]) -> bytes:
    """``keccak256`` of :func:`response_output` as UTF-8: OpenGradient's ``outputHash``."""
    try:
        return keccak256(response_output(response).encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput("response: the output is not valid Unicode (it contains a lone surrogate)") from None
