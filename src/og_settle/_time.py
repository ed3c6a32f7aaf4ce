"""Timestamps as the project writes and reads them: ISO 8601 in UTC, with a ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime

from og_settle._errors import InvalidInput

__all__ = ["iso_utc", "parse_iso"]


def iso_utc(unix: float, *, milliseconds: bool = True) -> str:
    """Unix time as ISO 8601 UTC: ``2026-11-29T12:00:00.123Z``, or ``2026-11-29T12:00:00Z`` without
    ``milliseconds``."""
    spec = "milliseconds" if milliseconds else "seconds"
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec=spec).replace("+00:00", "Z")


def parse_iso(text: str, field: str) -> float:
    """An ISO 8601 date or date-time (UTC unless it names an offset) as Unix time; InvalidInput naming ``field``."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise InvalidInput(
            f"{field}: expected an ISO 8601 date or time (e.g. 2026-11-29T12:00:00Z), got {text!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
