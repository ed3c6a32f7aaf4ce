"""Per-API-key limits: requests per second on ``/verify`` and ``/settle``, and spend quotas per asset and period.

The limits of a key are stored with the key (``og-settle facilitator keys set``) in the facilitator's store, and
so is their state (each rate's next allowed time, each quota window's running total), so they hold across
restarts and across several instances on one PostgreSQL database. This module holds the pure parts: the
types, the parsing of ``--quota`` specs, and the rate arithmetic (GCRA, the "generic cell rate algorithm": one
number per key and endpoint, the theoretical arrival time ``tat``; a request at ``now`` is admitted when
``max(tat, now) + 1/rate - now <= burst/rate``, with a burst of one second's worth of requests).

A quota applies to an asset (token address), whatever the transfer method (Permit2, EIP-3009, ...): the
charge is ``paymentRequirements.amount`` of that ``asset``. Its periods are fixed windows aligned on the Unix
epoch (so ``day`` is a UTC calendar day). A ``/settle`` reserves its charge in every window of the asset's
quotas before anything is sent, in one transaction under the key's lock; the reservation is released if the
settlement fails, kept while it is pending, and becomes spent when it settles. Concurrent ``/settle`` calls can
therefore never spend past a quota, on one instance or several.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final

from og_settle._errors import InvalidInput
from og_settle._hex import parse_address

__all__ = ["KeyLimits", "LimitExceeded", "Quota", "parse_period", "parse_quota", "rate_admit", "window_start"]

PERIODS: Final = {"second": 1, "minute": 60, "hour": 3600, "day": 86_400, "week": 604_800}
_SECONDS: Final = re.compile(r"^([1-9][0-9]{0,9})s$")
ENDPOINTS: Final = ("verify", "settle")


@dataclass(frozen=True, slots=True)
class Quota:
    """At most ``amount`` atomic units of ``asset`` settled per ``period`` seconds (epoch-aligned windows).

    Attributes:
        asset: the token address (checksummed).
        amount: the most that may be settled in one window (atomic units).
        period: the window length in seconds.
    """

    asset: str
    amount: int
    period: int

    def spec(self) -> str:
        """The ``--quota`` text that gives this quota back."""
        names = {seconds: name for name, seconds in PERIODS.items()}
        return f"{self.asset}:{self.amount}/{names.get(self.period, f'{self.period}s')}"


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """One API key's limits (None: unlimited).

    Attributes:
        verify_per_second: ``/verify`` requests per second.
        settle_per_second: ``/settle`` requests per second.
        quotas: spend quotas, any number per asset (e.g. per hour and per day).
    """

    verify_per_second: float | None = None
    settle_per_second: float | None = None
    quotas: tuple[Quota, ...] = ()

    def rate(self, endpoint: str) -> float | None:
        return self.verify_per_second if endpoint == "verify" else self.settle_per_second

    def quotas_for(self, asset: str) -> tuple[Quota, ...]:
        return tuple(q for q in self.quotas if q.asset.lower() == asset.lower())


class LimitExceeded(Exception):
    """A request over a limit: answered HTTP 429 with ``Retry-After: retry_after`` (whole seconds)."""

    def __init__(self, message: str, retry_after: float, outcome: str) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = max(1, math.ceil(retry_after))
        self.outcome = outcome  # "rate_limited" or "over_quota", as recorded in the usage


def parse_period(text: str, field: str = "period") -> int:
    """``second``/``minute``/``hour``/``day``/``week`` or ``<N>s``, in seconds."""
    if text in PERIODS:
        return PERIODS[text]
    match = _SECONDS.match(text)
    if match is None:
        raise InvalidInput(f"{field}: expected one of {', '.join(PERIODS)} or <seconds>s (e.g. 900s), got {text!r}")
    return int(match[1])


def parse_quota(spec: str, field: str = "--quota") -> Quota:
    """``ASSET:AMOUNT/PERIOD``, e.g. ``0x036CbD53842c5426634e7929541eC2318f3dCF7e:5000000/day``."""
    asset, sep, rest = spec.partition(":")
    amount, slash, period = rest.partition("/")
    if not sep or not slash:
        raise InvalidInput(f"{field}: expected ASSET:AMOUNT/PERIOD (e.g. 0x…:1000000/day), got {spec!r}")
    if not amount.isdigit() or len(amount) > 78 or int(amount) >= 2**256:
        raise InvalidInput(f"{field}: amount must be a whole number of atomic units, got {amount!r}")
    return Quota(parse_address(asset, f"{field} asset"), int(amount), parse_period(period, f"{field} period"))


def parse_rate(text: str, field: str) -> float:
    """A positive number of requests per second."""
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(f"{field}: expected requests per second (a positive number), got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise InvalidInput(f"{field}: expected requests per second (a positive number), got {text!r}")
    return value


def rate_admit(tat: float | None, now: float, rate: float) -> tuple[float | None, float]:
    """GCRA: ``(new tat, 0)`` when a request at ``now`` is admitted, ``(None, seconds to wait)`` when not."""
    interval = 1.0 / rate
    burst = max(1.0, math.floor(rate)) * interval  # one second's worth of requests, at least one
    new_tat = max(tat if tat is not None else now, now) + interval
    if new_tat - now <= burst + 1e-9:
        return new_tat, 0.0
    return None, new_tat - now - burst


def window_start(now: float, period: int) -> int:
    """The start (Unix seconds) of the quota window holding ``now``."""
    return int(now // period) * period
