"""Chat requests and responses that exercise every canonicalisation and output rule, named by the rule they cover.

``CHAT_REQUESTS`` covers: temperature (absent, null, int, float, numeric string), ``developer`` -> ``system``, user
attachments reduced to ``{type[, filename]}`` (file objects, top-level filenames, none, non-object parts, empty
text), non-text user content, assistant tool-call reduction with and without defaults, ``tool`` and ``function``
roles, each optional field present / falsy / absent, dropped fields, and non-ASCII text. ``BAD_CHAT_REQUESTS`` are
refused by both implementations. ``random_requests`` adds seeded random variations of all of these.
"""

from __future__ import annotations

import random
from typing import Any

_USER = {"role": "user", "content": "What is the capital of France?"}
_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}

CHAT_REQUESTS: dict[str, dict[str, Any]] = {
    "minimal, temperature absent -> 0.0": {"model": "gpt-4.1", "messages": [_USER]},
    "temperature null -> 0.0": {"model": "gpt-4.1", "messages": [_USER], "temperature": None},
    "temperature int -> float": {"model": "gpt-4.1", "messages": [_USER], "temperature": 1},
    "temperature float": {"model": "gpt-4.1", "messages": [_USER], "temperature": 0.7},
    "temperature numeric string": {"model": "gpt-4.1", "messages": [_USER], "temperature": "0.25"},
    "developer -> system": {
        "model": "o3",
        "messages": [{"role": "developer", "content": "Be terse."}, _USER],
    },
    "system with list content kept as is": {
        "model": "o3",
        "messages": [{"role": "system", "content": [{"type": "text", "text": "Be terse."}]}, _USER],
    },
    "system without content": {"model": "o3", "messages": [{"role": "system"}, _USER]},
    "attachments reduced to type and filename": {
        "model": "gemini-2.5-flash",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe these."},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
                    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                    {"type": "file", "file": {"filename": "report.pdf", "file_data": "data:application/pdf;base64,JV"}},
                    {"type": "file", "file": {"file_id": "file-123"}},
                    {"type": "file", "filename": "top-level.txt", "file": "not an object"},
                    {"type": "file", "file": {"filename": ""}, "filename": "fallback.csv"},
                    {"image_url": {"url": "https://example.com/x.png"}},
                ],
            }
        ],
    },
    "text parts: empty, null and missing text become empty strings": {
        "model": "gpt-4.1",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": ""},
                    {"type": "text", "text": None},
                    {"type": "text"},
                    {"type": "text", "text": "kept", "cache_control": {"type": "ephemeral"}},
                ],
            }
        ],
    },
    "non-object parts become text parts": {
        "model": "gpt-4.1",
        "messages": [{"role": "user", "content": ["plain", 42, None, True, ["nested"]]}],
    },
    "non-string, non-list user content becomes str(content)": {
        "model": "gpt-4.1",
        "messages": [
            {"role": "user", "content": None},
            {"role": "user", "content": 3.5},
            {"role": "user", "content": {"text": "an object"}},
            {"role": "user"},
        ],
    },
    "assistant tool calls reduced to id/type/function{name,arguments}": {
        "model": "claude-sonnet-4-5",
        "messages": [
            _USER,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "index": 0,
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}', "extra": 1},
                    },
                    {"function": {}},
                    {"id": "call_3"},
                ],
                "refusal": None,
            },
            {"role": "tool", "content": "18C, sunny", "tool_call_id": "call_1", "name": "ignored"},
            {"role": "tool", "content": "no id"},
        ],
        "tools": [_TOOL],
    },
    "assistant with empty tool_calls and missing content": {
        "model": "gpt-4.1",
        "messages": [_USER, {"role": "assistant", "tool_calls": []}, {"role": "assistant", "content": ""}],
    },
    "function role keeps content and name": {
        "model": "gpt-4.1",
        "messages": [_USER, {"role": "function", "name": "lookup", "content": "{}", "extra": True}],
    },
    "every optional field present": {
        "model": "gpt-4.1",
        "messages": [_USER],
        "temperature": 0.2,
        "max_tokens": 256,
        "stop": ["\n\n", "END"],
        "tools": [_TOOL],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        "web_search": True,
    },
    "optional fields falsy: max_tokens 0 kept, the rest dropped": {
        "model": "gpt-4.1",
        "messages": [_USER],
        "max_tokens": 0,
        "stop": [],
        "tools": [],
        "response_format": {},
        "web_search": False,
    },
    "optional fields null are dropped": {
        "model": "gpt-4.1",
        "messages": [_USER],
        "max_tokens": None,
        "stop": None,
        "tools": None,
        "response_format": None,
        "web_search": None,
    },
    "stop as a string; web_search truthy non-bool becomes true": {
        "model": "gpt-4.1",
        "messages": [_USER],
        "stop": "END",
        "web_search": "yes",
        "response_format": {"type": "text"},
    },
    "unsigned fields are dropped": {
        "model": "gpt-4.1",
        "messages": [_USER],
        "n": 2,
        "top_p": 0.9,
        "tool_choice": "auto",
        "stream": True,
        "user": "someone",
        "seed": 7,
        "logprobs": True,
    },
    "non-ASCII text is escaped as json.dumps does": {
        "model": "gpt-4.1",
        "messages": [{"role": "user", "content": 'Grüße, 東京 🌧️ \u2028 \\ " \t'}],
    },
}

BAD_CHAT_REQUESTS: dict[str, Any] = {
    "not an object": ["model", "messages"],
    "no model": {"messages": [_USER]},
    "empty model": {"model": "", "messages": [_USER]},
    "model not a string": {"model": 4, "messages": [_USER]},
    "no messages": {"model": "gpt-4.1"},
    "empty messages": {"model": "gpt-4.1", "messages": []},
    "messages not a list": {"model": "gpt-4.1", "messages": {"role": "user"}},
    "a message that is not an object": {"model": "gpt-4.1", "messages": [_USER, "hello"]},
    "unknown role": {"model": "gpt-4.1", "messages": [{"role": "critic", "content": "x"}]},
    "missing role": {"model": "gpt-4.1", "messages": [{"content": "x"}]},
    "tools not a list": {"model": "gpt-4.1", "messages": [_USER], "tools": _TOOL},
    "temperature not a number": {"model": "gpt-4.1", "messages": [_USER], "temperature": "warm"},
    "temperature a list": {"model": "gpt-4.1", "messages": [_USER], "temperature": [1]},
    "tool call that is not an object": {
        "model": "gpt-4.1",
        "messages": [{"role": "assistant", "content": "", "tool_calls": ["call"]}],
    },
    "tool call function null": {
        "model": "gpt-4.1",
        "messages": [{"role": "assistant", "content": "", "tool_calls": [{"id": "c", "function": None}]}],
    },
}

_TOOL_CALLS = [
    {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
    {"id": "call_10", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
]

RESPONSES: dict[str, dict[str, Any]] = {
    "text": {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}]},
    "tool calls hash json.dumps(tool_calls, sort_keys=True)": {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "", "tool_calls": _TOOL_CALLS},
                "finish_reason": "tool_calls",
            }
        ]
    },
    "tool calls without finish_reason tool_calls hash the text": {
        "choices": [
            {
                "message": {"role": "assistant", "content": "text wins", "tool_calls": _TOOL_CALLS},
                "finish_reason": "stop",
            }
        ]
    },
    "content as a list of parts is joined": {
        "choices": [
            {
                "message": {"role": "assistant", "content": [{"type": "text", "text": "a"}, "b", {"type": "x"}]},
                "finish_reason": "stop",
            }
        ]
    },
    "null content hashes the empty string": {"choices": [{"message": {"content": None}, "finish_reason": "stop"}]},
    "no choices hashes the empty string": {"choices": []},
    "non-ASCII text is hashed as UTF-8": {"choices": [{"message": {"content": "Grüße 🌧️"}, "finish_reason": "stop"}]},
}


def _random_text(rng: random.Random) -> str:
    alphabet = 'abc XYZ 09 éü 東 🌧 \n\t"\\'
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["str", "int", "float", "none", "bool"] + (["list", "dict"] if depth < 2 else [])
    kind = rng.choice(kinds)
    if kind == "str":
        return _random_text(rng)
    if kind == "int":
        return rng.randrange(-5, 5000)
    if kind == "float":
        return rng.choice([0.0, 0.5, 1e-7, 2.5e10, -1.25])
    if kind == "none":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(0, 3))]
    return {_random_text(rng) or "k": _random_value(rng, depth + 1) for _ in range(rng.randrange(0, 3))}


def _random_part(rng: random.Random) -> Any:
    choice = rng.randrange(6)
    if choice == 0:
        return {"type": "text", "text": rng.choice([_random_text(rng), "", None])}
    if choice == 1:
        part: dict[str, Any] = {"type": rng.choice(["image_url", "file", "input_audio", None])}
        if rng.random() < 0.5:
            part["file"] = rng.choice([{"filename": _random_text(rng), "file_data": "QUJD"}, {"file_id": "f"}, "x"])
        if rng.random() < 0.3:
            part["filename"] = _random_text(rng)
        return part
    if choice == 2:
        return {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * rng.randrange(0, 40)}}
    return _random_value(rng, 1)


def _random_message(rng: random.Random) -> dict[str, Any]:
    role = rng.choice(["system", "developer", "user", "user", "assistant", "tool", "function"])
    message: dict[str, Any] = {"role": role}
    if rng.random() < 0.9:
        if role == "user" and rng.random() < 0.6:
            message["content"] = [_random_part(rng) for _ in range(rng.randrange(0, 4))]
        else:
            message["content"] = rng.choice([_random_text(rng), None, _random_value(rng, 1)])
    if role == "assistant" and rng.random() < 0.5:
        calls = []
        for _ in range(rng.randrange(0, 3)):
            call: dict[str, Any] = {}
            for name in ("id", "type", "index"):
                if rng.random() < 0.7:
                    call[name] = _random_value(rng, 2)
            if rng.random() < 0.8:
                call["function"] = {k: _random_text(rng) for k in ("name", "arguments", "extra") if rng.random() < 0.7}
            calls.append(call)
        message["tool_calls"] = calls
    for name in ("tool_call_id", "name", "extra"):
        if rng.random() < 0.3:
            message[name] = _random_value(rng, 2)
    return message


def random_requests(seed: int, count: int) -> list[dict[str, Any]]:
    """``count`` well-formed chat requests with seeded random messages, optional fields and extra fields."""
    rng = random.Random(seed)
    requests = []
    for _ in range(count):
        body: dict[str, Any] = {
            "model": rng.choice(["gpt-4.1", "claude-sonnet-4-5", "ü-model"]),
            "messages": [_random_message(rng) for _ in range(rng.randrange(1, 5))],
        }
        optional = {
            "temperature": lambda: rng.choice([None, 0, 1, 0.3, "0.9", 2.0]),
            "max_tokens": lambda: rng.choice([None, 0, 1, 4096]),
            "stop": lambda: rng.choice([None, [], "x", ["a", "b"], ""]),
            "tools": lambda: rng.choice([None, [], [_TOOL], [_random_value(rng, 1)]]),
            "response_format": lambda: rng.choice([None, {}, {"type": "json_object"}, "text"]),
            "web_search": lambda: rng.choice([None, False, True, 0, 1, "y"]),
            "top_p": lambda: rng.random(),
            "tool_choice": lambda: rng.choice(["auto", "none", {"type": "function"}]),
            "stream": lambda: rng.random() < 0.5,
        }
        for name, make in optional.items():
            if rng.random() < 0.5:
                body[name] = make()
        requests.append(body)
    return requests
