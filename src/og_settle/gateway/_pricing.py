"""Per-model prices and the x402 payment requirements a gateway answers 402 with.

A price file is JSON::

    {"format": "og-settle-prices-v1",
     "models": {"gpt-4.1": {"exact": "2000000000000000", "upto_base": "100000000000000",
                            "upto_per_output_token": "1000000000000"}}}

Amounts are OPG's atomic units (18 decimals) as decimal strings or integers. ``exact`` is a flat price per
request; upto is metered: ``upto_base + upto_per_output_token * output tokens``, and the client authorises the
most that can cost, ``upto_base + upto_per_output_token * max_tokens``. A model without ``exact`` is offered
upto only, and one without ``upto_per_output_token`` exact only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from og_settle._errors import InvalidInput
from og_settle._hex import parse_uint256

__all__ = ["PRICES_FORMAT", "ModelPrice", "load_prices", "parse_prices"]

PRICES_FORMAT: Final = "og-settle-prices-v1"


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """What one model costs, in OPG atomic units.

    Attributes:
        model: the model name clients send.
        exact: the flat price per request (the exact scheme), or None when not offered.
        upto_base: upto's fixed part per request.
        upto_per_output_token: upto's price per output token, or None when upto is not offered.
    """

    model: str
    exact: int | None
    upto_base: int = 0
    upto_per_output_token: int | None = None

    def __post_init__(self) -> None:
        if self.exact is None and self.upto_per_output_token is None:
            raise InvalidInput(f"models.{self.model}: give an exact price, an upto price per output token, or both")
        if self.exact == 0:
            raise InvalidInput(f"models.{self.model}.exact: a price of 0 is not a payment; leave the model free")

    def upto_maximum(self, max_tokens: int) -> int:
        """The most an upto request with ``max_tokens`` can cost."""
        return self.upto_charge(max_tokens)

    def upto_charge(self, output_tokens: int) -> int:
        """What upto charges for ``output_tokens``."""
        if self.upto_per_output_token is None:
            raise InvalidInput(f"model {self.model}: upto is not offered")
        return self.upto_base + self.upto_per_output_token * output_tokens


def parse_prices(data: Any) -> dict[str, ModelPrice]:
    """Validate a price file's JSON; errors name the bad field."""
    if not isinstance(data, Mapping) or data.get("format") != PRICES_FORMAT:
        raise InvalidInput(f"format: expected {PRICES_FORMAT!r}")
    models = data.get("models")
    if not isinstance(models, Mapping) or not models:
        raise InvalidInput("models: expected an object of model name -> price")
    prices: dict[str, ModelPrice] = {}
    for name, entry in models.items():
        if not isinstance(entry, Mapping):
            raise InvalidInput(f"models.{name}: expected an object")
        unknown = sorted(set(entry) - {"exact", "upto_base", "upto_per_output_token"})
        if unknown:
            raise InvalidInput(f"models.{name}.{unknown[0]}: unknown field")

        def amount(key: str, entry: Mapping[str, Any] = entry, name: str = name) -> int | None:
            value = entry.get(key)
            return None if value is None else parse_uint256(value, f"models.{name}.{key}")

        prices[name] = ModelPrice(
            model=name,
            exact=amount("exact"),
            upto_base=amount("upto_base") or 0,
            upto_per_output_token=amount("upto_per_output_token"),
        )
    return prices


def load_prices(path: Path) -> dict[str, ModelPrice]:
    """Read and validate a price file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise InvalidInput(f"{path}: cannot read ({err.strerror or err})") from None
    except json.JSONDecodeError as err:
        raise InvalidInput(f"{path}: not JSON ({err.msg} at line {err.lineno})") from None
    try:
        return parse_prices(data)
    except InvalidInput as err:
        raise InvalidInput(f"{path}: {err}") from None
