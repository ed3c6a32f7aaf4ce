"""One JSON object per line on stderr: the facilitator's request log and the server's own messages."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any, TextIO

from og_settle._time import iso_utc

__all__ = ["JsonLogHandler", "RequestLog", "route_uvicorn_logs"]


class RequestLog:
    """Writes one JSON object per line to ``stream`` (stderr by default), safely from many threads.

    Every line carries ``time`` (ISO 8601, UTC, milliseconds) and ``event``."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, event: str, **fields: Any) -> None:
        stamp = iso_utc(time.time())
        record = {"time": stamp, "event": event, **fields}
        line = json.dumps(record, separators=(",", ":"), default=str)
        with self._lock:
            stream = self._stream if self._stream is not None else sys.stderr
            try:
                stream.write(line + "\n")
                stream.flush()
            except (OSError, ValueError):  # stderr closed under us (shutdown): nothing left to tell
                pass


class JsonLogHandler(logging.Handler):
    """Routes a library's ``logging`` records (uvicorn's) into the request log as ``server.log`` lines, with the
    exception's type and message but no traceback."""

    def __init__(self, log: RequestLog) -> None:
        super().__init__()
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        fields: dict[str, Any] = {"level": record.levelname.lower(), "logger": record.name}
        if record.exc_info and record.exc_info[1] is not None:
            err = record.exc_info[1]
            fields["error"] = f"{type(err).__name__}: {err}"
        try:
            message = record.getMessage()
        except Exception:  # a library's bad format string must not take the server down
            message = str(record.msg)
        self.log.write("server.log", message=message, **fields)


def route_uvicorn_logs(log: RequestLog) -> None:
    """Send uvicorn's own messages (warnings and up) to ``log`` as ``server.log`` JSON lines, each with an ISO 8601
    ``time``; run uvicorn with ``log_config=None`` and ``access_log=False`` (the app writes its own line per
    request, with the same ``time``)."""
    handler = JsonLogHandler(log)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.asgi"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(logging.WARNING)
