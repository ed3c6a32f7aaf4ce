"""Every log line og-settle writes carries an ISO 8601 UTC timestamp: the relayer's events, the facilitator's request
log (the gateway writes the same), and uvicorn's own messages as the facilitator and the gateway route them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from og_settle.facilitator._log import RequestLog, route_uvicorn_logs
from og_settle.relayer import EventLog

UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.asgi")


def _recent_iso(stamp: object) -> None:
    assert isinstance(stamp, str) and stamp.endswith("Z")
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert moment.tzinfo is not None and abs(datetime.now(UTC) - moment) < timedelta(minutes=1)


@pytest.fixture
def uvicorn_loggers() -> Iterator[None]:
    saved = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).level) for name in UVICORN}
    yield
    for name, (handlers, level) in saved.items():
        logging.getLogger(name).handlers = handlers
        logging.getLogger(name).setLevel(level)


def test_relayer_events_have_iso_timestamps() -> None:
    stream = io.StringIO()
    EventLog(stream).info("batch.next_cut", lane="batch")
    _recent_iso(json.loads(stream.getvalue())["ts"])


def test_the_request_log_has_iso_timestamps() -> None:
    stream = io.StringIO()
    RequestLog(stream).write("http.request", status=402)
    _recent_iso(json.loads(stream.getvalue())["time"])


def test_uvicorn_messages_have_iso_timestamps(uvicorn_loggers: None) -> None:
    """What the facilitator and the gateway do with uvicorn's own logging (its access log is off: each app writes
    its own line per request)."""
    stream = io.StringIO()
    route_uvicorn_logs(RequestLog(stream))
    logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
    logging.getLogger("uvicorn.error").info("Started server process")  # below warning: dropped
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["event"], line["message"]) for line in lines] == [("server.log", "Invalid HTTP request received.")]
    _recent_iso(lines[0]["time"])
