"""TEMPORARY: OpenGradient's request canonicalisation and RSA-PSS signing, until ``og_settle.tee`` lands.

INTEGRATION POINT. Issue 10 item 5 gives these functions one home, ``og_settle.tee`` (built in parallel by
another helper). The gateway imports them only through :mod:`og_settle.gateway._tee`; when ``og_settle.tee``
is on main, that module switches its import to it and this file is deleted. Until then this is the smallest
faithful version, checked in the tests against the OpenGradient SDK's own ``tee_verify`` functions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from og_settle._errors import InvalidInput
from og_settle._hex import keccak256

__all__ = ["canonical_chat_request", "canonical_completion_request", "request_hash", "rsa_pss_sign", "rsa_tee_id"]


def _user_content(content: Any) -> Any:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return str(content)
    parts: list[Any] = []
    for part in content:
        if not isinstance(part, dict):
            parts.append({"type": "text", "text": str(part)})
        elif part.get("type") == "text":
            parts.append({"type": "text", "text": part.get("text", "") or ""})
        else:
            entry: dict[str, Any] = {"type": part.get("type")}
            file_obj = part.get("file")
            filename = (file_obj.get("filename") if isinstance(file_obj, dict) else None) or part.get("filename")
            if filename:
                entry["filename"] = filename
            parts.append(entry)
    return parts


def _message(message: Mapping[str, Any]) -> dict[str, Any]:
    role = message.get("role")
    if role in ("system", "developer"):
        return {"role": "system", "content": message.get("content")}
    if role == "user":
        return {"role": "user", "content": _user_content(message.get("content"))}
    if role == "assistant":
        out: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
        if message.get("tool_calls"):
            out["tool_calls"] = [
                {
                    "id": call.get("id", ""),
                    "type": call.get("type", "function"),
                    "function": {
                        "name": (call.get("function") or {}).get("name", ""),
                        "arguments": (call.get("function") or {}).get("arguments", ""),
                    },
                }
                for call in message["tool_calls"]
            ]
        return out
    if role == "tool":
        return {"role": "tool", "content": message.get("content"), "tool_call_id": message.get("tool_call_id")}
    if role == "function":
        return {"role": "function", "content": message.get("content"), "name": message.get("name")}
    raise InvalidInput(f"messages: unknown role {role!r}")


def canonical_chat_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """The reduced chat request OpenGradient hashes (``build_inner_request``'s canonical dict)."""
    temperature = body.get("temperature")
    canonical: dict[str, Any] = {
        "model": body["model"],
        "messages": [_message(m) for m in body["messages"]],
        "temperature": float(temperature) if temperature is not None else 0.0,
    }
    if body.get("max_tokens") is not None:
        canonical["max_tokens"] = body["max_tokens"]
    for key in ("stop", "tools", "response_format"):
        if body.get(key):
            canonical[key] = body[key]
    if body.get("web_search"):
        canonical["web_search"] = True
    return canonical


def canonical_completion_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """The reduced completion request OpenGradient's gateway hashes."""
    temperature = body.get("temperature")
    canonical: dict[str, Any] = {
        "model": body["model"],
        "prompt": body["prompt"],
        "temperature": float(temperature) if temperature is not None else 0.0,
    }
    if body.get("max_tokens") is not None:
        canonical["max_tokens"] = body["max_tokens"]
    if body.get("stop"):
        canonical["stop"] = body["stop"]
    return canonical


def request_hash(canonical: Mapping[str, Any]) -> bytes:
    """``keccak256(json.dumps(canonical, sort_keys=True))``."""
    return keccak256(json.dumps(canonical, sort_keys=True).encode("utf-8"))


def rsa_pss_sign(private_key: Any, message: bytes) -> bytes:
    """RSASSA-PSS (SHA-256, MGF1-SHA-256, 32-byte salt) over ``message``."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    signature: bytes = private_key.sign(
        message, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256()
    )
    return signature


def rsa_tee_id(public_key_der: bytes) -> bytes:
    """``keccak256(DER SubjectPublicKeyInfo)``."""
    return keccak256(public_key_der)
