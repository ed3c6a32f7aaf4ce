"""Structured logs: one JSON object per line, written to stderr (or any text stream) and flushed at once.

Every line has ``ts`` (UTC, ISO 8601 with milliseconds), ``level`` and ``event``; the rest are the event's
fields (ids, transaction hashes, counts). Bytes are written as ``0x`` hex. Lines are flushed one by one so a
SIGKILL never loses a line that was written, and a supervisor can act on them as they come.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any, TextIO

from og_settle._time import iso_utc

__all__ = ["EventLog"]


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


class EventLog:
    """Writes one JSON line per event. ``quiet`` drops ``debug`` events."""

    def __init__(
        self, stream: TextIO | None = None, *, verbose: bool = False, context: Mapping[str, Any] | None = None
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._verbose = verbose
        # Fields every line carries after ``event`` (for example the relayer's ``instance`` id).
        self._context = {k: _jsonable(v) for k, v in (context or {}).items()}
        self._lock = threading.Lock()

    def emit(self, level: str, event: str, **fields: Any) -> None:
        if level == "debug" and not self._verbose:
            return
        record = {"ts": iso_utc(time.time()), "level": level, "event": event, **self._context}
        record.update({k: _jsonable(v) for k, v in fields.items()})
        line = json.dumps(record, separators=(",", ":"))
        with self._lock:
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (OSError, ValueError):  # a closed pipe must not take the relayer down
                pass

    def debug(self, event: str, **fields: Any) -> None:
        self.emit("debug", event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self.emit("info", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.emit("warning", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self.emit("error", event, **fields)
