"""The gateway's client of an x402 facilitator: the v2 HTTP API (``/supported``, ``/verify``, ``/settle``).

It speaks what the x402 reference SDK's ``HTTPFacilitatorClient`` speaks, so the gateway works with any x402
facilitator, og-settle's own (``og-settle facilitator serve``) or another: the request body is
``{x402Version: 2, paymentPayload, paymentRequirements}``; upto's charge travels as
``paymentRequirements.amount`` at settle time; a rejection is HTTP 200 with ``isValid: false`` or
``success: false``. ``/settle`` may need ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from og_settle._x402 import X402_VERSION, PaymentPayload, PaymentRequirements, SettleResponse

__all__ = ["FacilitatorClient", "FacilitatorUnavailable", "Verification"]


class FacilitatorUnavailable(RuntimeError):
    """The facilitator could not be reached or answered outside the protocol (the gateway answers 503)."""


@dataclass(frozen=True, slots=True)
class Verification:
    """A ``/verify`` answer.

    Attributes:
        is_valid: whether the payment would settle.
        reason: the x402 reason code when not valid.
        message: the facilitator's explanation, when it gave one.
        payer: the payer's address, when known.
    """

    is_valid: bool
    reason: str | None
    message: str | None
    payer: str | None


class FacilitatorClient:
    """Talks to one facilitator at ``url`` over httpx (connection pooling, a deadline per call)."""

    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = 90.0) -> None:
        import httpx

        self.url = url.rstrip("/")
        self._settle_headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(base_url=self.url, timeout=timeout)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Mapping[str, Any]:
        import httpx

        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise FacilitatorUnavailable(f"facilitator {self.url}{path}: {type(err).__name__}: {err}") from err
        if response.status_code != 200:
            raise FacilitatorUnavailable(
                f"facilitator {self.url}{path}: HTTP {response.status_code}: {response.text[:200]}"
            )
        try:
            body = response.json()
        except ValueError:
            raise FacilitatorUnavailable(f"facilitator {self.url}{path}: answer is not JSON") from None
        if not isinstance(body, Mapping):
            raise FacilitatorUnavailable(f"facilitator {self.url}{path}: answer is not a JSON object")
        return body

    async def supported(self) -> Mapping[str, Any]:
        """``GET /supported``."""
        return await self._call("GET", "/supported")

    @staticmethod
    def _body(payload: PaymentPayload, requirements: PaymentRequirements) -> dict[str, Any]:
        return {
            "x402Version": X402_VERSION,
            "paymentPayload": payload.to_json(),
            "paymentRequirements": requirements.to_json(),
        }

    async def verify(self, payload: PaymentPayload, requirements: PaymentRequirements) -> Verification:
        """``POST /verify``."""
        body = await self._call("POST", "/verify", json=self._body(payload, requirements))
        is_valid = body.get("isValid")
        if not isinstance(is_valid, bool):
            raise FacilitatorUnavailable(f"facilitator {self.url}/verify: answer has no boolean isValid")
        return Verification(
            is_valid=is_valid,
            reason=body.get("invalidReason"),
            message=body.get("invalidMessage"),
            payer=body.get("payer"),
        )

    async def settle(self, payload: PaymentPayload, requirements: PaymentRequirements) -> SettleResponse:
        """``POST /settle`` (for upto, ``requirements.amount`` is the charge)."""
        body = await self._call("POST", "/settle", json=self._body(payload, requirements), headers=self._settle_headers)
        try:
            return SettleResponse.from_json(body)
        except ValueError as err:
            raise FacilitatorUnavailable(f"facilitator {self.url}/settle: malformed answer ({err})") from None
