"""The gateway's protocol logic, without HTTP: price, authorise, run, attest, settle, record.

One paid request goes through :class:`Gateway` in this order, and nothing is charged until the last steps:

1. the request is validated and priced (:meth:`Gateway.requirements`), or refused with a named error;
2. without a payment: 402 with ``PAYMENT-REQUIRED`` (upto first, metered on output tokens; then exact);
3. with one (:meth:`Gateway.authorize`): decode it, match it against this request's requirements (scheme,
   network, asset, recipient, amount), refuse a payment already in flight or settled here, and verify it
   through the facilitator (signature, Permit2 nonce, allowance, balance, time window);
4. the model runs behind the TEE, which signs the answer (:class:`~og_settle.gateway.StandInTee`);
5. the inference record for the settlement mode is built and checked by the relayer's intake;
6. the payment settles through the facilitator: exact for its price, upto for the metered amount;
7. the record is queued for the relayer (batch, individual, metadata) and the DA blob stored.

A failure before step 6 charges nothing; the client's signed payment stays unused (it lapses at its deadline).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

from og_settle._errors import InvalidInput
from og_settle._hashing import SettlementMode
from og_settle._hex import to_hex
from og_settle._x402 import (
    PaymentPayload,
    PaymentRequired,
    PaymentRequirements,
    SettleResponse,
    decode_payment_signature_header,
)
from og_settle.gateway._facilitator_client import FacilitatorClient
from og_settle.gateway._models import InferenceRequest, ModelOutput
from og_settle.gateway._pricing import ModelPrice
from og_settle.gateway._tee import StandInTee, TeeAttestation

if TYPE_CHECKING:
    from og_settle._blobs import BlobStore
    from og_settle._networks import Network
    from og_settle.gateway._sink import SettlementSink

__all__ = ["Authorized", "Gateway", "GatewayConfig", "GatewayError", "PaymentRejected", "Recorded"]

_DEFAULT_MODE: Final = SettlementMode.BATCH


class GatewayError(Exception):
    """A request the gateway refuses before any payment is touched (answered with ``status``).

    Attributes:
        status: the HTTP status (400, 404, 413, 502, 503, 504).
        code: a short machine-readable code (``invalid_request``, ``model_not_found``, ...).
        message: one line naming the field and the problem.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class PaymentRejected(Exception):
    """A payment the gateway will not accept; answered 402 with ``PAYMENT-REQUIRED`` naming the reason.

    Attributes:
        reason: an x402 reason code (``permit2_amount_mismatch``, ``permit2_invalid_nonce``, ...).
        message: one line saying what was wrong.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """How a gateway prices and where it is paid.

    Attributes:
        network: the network payments are made on (Base or Base Sepolia).
        pay_to: the operator's address that receives payments.
        prices: the served models and their prices, by model name.
        max_timeout_seconds: how long a signed payment may stay valid (``maxTimeoutSeconds``).
        asset_name: the token's EIP-712 name, in ``extra.name``.
        asset_version: the token's EIP-712 version, in ``extra.version``.
        model_timeout: seconds the model may take before the request fails (504, nothing charged).
    """

    network: Network
    pay_to: str
    prices: Mapping[str, ModelPrice]
    max_timeout_seconds: int = 300
    asset_name: str = "OpenGradient"
    asset_version: str = "1"
    model_timeout: float = 120.0


@dataclass(frozen=True, slots=True)
class Authorized:
    """A verified payment for one request.

    Attributes:
        payload: the client's payment.
        requirements: the requirements it satisfies (ours, as offered).
        price: the model's price.
        payer: who pays.
        key: ``payer:nonce``, the payment's identity while in flight.
    """

    payload: PaymentPayload
    requirements: PaymentRequirements
    price: ModelPrice
    payer: str
    key: str

    @property
    def scheme(self) -> str:
        return self.requirements.scheme


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the gateway did with an inference after it was paid.

    Attributes:
        mode: the settlement mode.
        blob_id: the DA blob holding its data, when one was stored.
        queue_key: the relayer queue's idempotency key for it, when queued.
        tx_hash: the data-settlement transaction, when already known.
    """

    mode: SettlementMode
    blob_id: str | None = None
    queue_key: str | None = None
    tx_hash: str | None = None


def parse_settlement_mode(value: str | None) -> SettlementMode:
    """``X-SETTLEMENT-TYPE`` as a mode (batch when absent); GatewayError 400 for an unknown one."""
    if value is None or not value.strip():
        return _DEFAULT_MODE
    try:
        return SettlementMode.parse(value.strip())
    except InvalidInput as err:
        raise GatewayError(400, "invalid_settlement_type", f"X-SETTLEMENT-TYPE: {err}") from None


class Gateway:
    """One gateway: a price list, a TEE with its model, a facilitator, and where inference records go."""

    def __init__(
        self,
        config: GatewayConfig,
        tee: StandInTee,
        backend: Any,
        facilitator: FacilitatorClient,
        *,
        sink: SettlementSink | None = None,
        blobs: BlobStore | None = None,
    ) -> None:
        self.config = config
        self.tee = tee
        self.backend = backend
        self.facilitator = facilitator
        self.sink = sink
        self.blobs = blobs
        self.upto_facilitator: str | None = None
        self._schemes: tuple[str, ...] = ("upto", "exact")
        # Payments in flight or settled here, by payer:nonce, with the time they stop mattering (their deadline).
        self._seen: dict[str, int] = {}
        self._seen_lock = asyncio.Lock()

    # -- start-up ----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Read the facilitator's ``/supported``: it must serve this network; upto needs its facilitatorAddress."""
        supported = await self.facilitator.supported()
        kinds = supported.get("kinds")
        network = self.config.network.caip2
        schemes: dict[str, Mapping[str, Any]] = {}
        for kind in kinds if isinstance(kinds, list) else ():
            if isinstance(kind, Mapping) and kind.get("network") == network and kind.get("x402Version") == 2:
                extra = kind.get("extra")
                schemes.setdefault(str(kind.get("scheme")), extra if isinstance(extra, Mapping) else {})
        if "exact" not in schemes and "upto" not in schemes:
            raise InvalidInput(
                f"--facilitator: {self.facilitator.url}/supported lists no exact or upto kind on {network}"
            )
        upto = schemes.get("upto")
        if upto is not None:
            # x402's name for the account that will call the upto proxy; older og-settle facilitators said
            # "facilitator".
            address = upto.get("facilitatorAddress") or upto.get("facilitator")
            self.upto_facilitator = str(address) if address else None
        self._schemes = tuple(s for s in ("upto", "exact") if s in schemes)

    # -- pricing -----------------------------------------------------------------------------------------------

    def price_of(self, request: InferenceRequest) -> ModelPrice:
        """The model's price; GatewayError 404 for a model this gateway does not serve."""
        price = self.config.prices.get(request.model)
        if price is None:
            served = ", ".join(sorted(self.config.prices))
            raise GatewayError(
                404, "model_not_found", f"model: {request.model!r} is not served here (served: {served})"
            )
        return price

    def requirements(self, request: InferenceRequest, price: ModelPrice) -> tuple[PaymentRequirements, ...]:
        """The ways this request can be paid: upto (metered, at most the max_tokens price), then exact."""
        network = self.config.network
        base_extra = {
            "assetTransferMethod": "permit2",
            "name": self.config.asset_name,
            "version": self.config.asset_version,
        }
        options: list[PaymentRequirements] = []
        schemes = self._schemes
        if "upto" in schemes and price.upto_per_output_token is not None and self.upto_facilitator is not None:
            extra = {**base_extra, "facilitatorAddress": self.upto_facilitator, "spender": network.x402_proxy("upto")}
            options.append(self._requirement("upto", price.upto_maximum(request.max_tokens), extra))
        if "exact" in schemes and price.exact is not None:
            extra = {**base_extra, "spender": network.x402_proxy("exact")}
            options.append(self._requirement("exact", price.exact, extra))
        if not options:
            raise GatewayError(503, "no_payment_scheme", f"model {price.model}: no payment scheme is available")
        return tuple(options)

    def _requirement(self, scheme: str, amount: int, extra: Mapping[str, Any]) -> PaymentRequirements:
        return PaymentRequirements(
            scheme=scheme,
            network=self.config.network.caip2,
            amount=amount,
            asset=self.config.network.opg,
            pay_to=self.config.pay_to,
            max_timeout_seconds=self.config.max_timeout_seconds,
            extra=extra,
        )

    def payment_required(
        self, request: InferenceRequest, price: ModelPrice, resource: str, error: str | None = None
    ) -> PaymentRequired:
        """The 402 body for this request."""
        return PaymentRequired(
            accepts=self.requirements(request, price),
            error=error,
            resource={"url": resource, "description": f"{request.kind} with {request.model}", "mimeType": ""},
        )

    # -- payment -----------------------------------------------------------------------------------------------

    async def authorize(self, request: InferenceRequest, price: ModelPrice, header: str) -> Authorized:
        """Decode, match and verify the client's ``PAYMENT-SIGNATURE``; PaymentRejected says why not."""
        try:
            payload = decode_payment_signature_header(header)
        except InvalidInput as err:
            raise PaymentRejected("invalid_payload", str(err)) from None
        accepted = payload.accepted
        offered = {r.scheme: r for r in self.requirements(request, price)}
        requirements = offered.get(accepted.scheme)
        if requirements is None:
            raise PaymentRejected("unsupported_scheme", f"scheme {accepted.scheme!r} is not offered for this request")
        if accepted.network != requirements.network:
            raise PaymentRejected(
                "invalid_network", f"network {accepted.network}; this gateway is paid on {requirements.network}"
            )
        if accepted.asset != requirements.asset:
            raise PaymentRejected(
                "permit2_token_mismatch", f"asset {accepted.asset}; the price is in {requirements.asset}"
            )
        if accepted.pay_to != requirements.pay_to:
            raise PaymentRejected(
                "invalid_permit2_recipient_mismatch", f"payTo {accepted.pay_to}, expected {requirements.pay_to}"
            )
        auth = payload.payload.authorization
        for what, amount in (("accepted.amount", accepted.amount), ("permitted amount", auth.amount)):
            if amount != requirements.amount:
                raise PaymentRejected(
                    "permit2_amount_mismatch",
                    f"{what} is {amount}; this request costs {requirements.amount} ({requirements.scheme})",
                )
        key = f"{auth.owner}:{auth.nonce}"
        async with self._seen_lock:
            now = int(time.time())
            for stale in [k for k, until in self._seen.items() if until < now]:
                del self._seen[stale]
            if key in self._seen:
                raise PaymentRejected("permit2_invalid_nonce", f"payment {key} was already used here")
            self._seen[key] = int(auth.deadline)
        try:
            verification = await self.facilitator.verify(payload, requirements)
        except BaseException:
            await self.release_key(key)
            raise
        if not verification.is_valid:
            await self.release_key(key)
            reason = verification.reason or "invalid_payload"
            raise PaymentRejected(reason, verification.message or f"the facilitator refused the payment ({reason})")
        return Authorized(payload=payload, requirements=requirements, price=price, payer=auth.owner, key=key)

    async def release(self, auth: Authorized) -> None:
        """Forget an unsettled payment, so the client may use it again."""
        await self.release_key(auth.key)

    async def release_key(self, key: str) -> None:
        async with self._seen_lock:
            self._seen.pop(key, None)

    def charge(self, auth: Authorized, output_tokens: int) -> int:
        """What the payment settles for: exact's price, or upto's metered amount (at most the authorised one)."""
        if auth.scheme == "exact":
            return auth.requirements.amount
        return min(auth.price.upto_charge(output_tokens), auth.requirements.amount)

    async def settle(self, auth: Authorized, output_tokens: int) -> SettleResponse:
        """Settle the payment through the facilitator (upto for the metered amount)."""
        amount = self.charge(auth, output_tokens)
        requirements = auth.requirements if auth.scheme == "exact" else replace(auth.requirements, amount=amount)
        response = await self.facilitator.settle(auth.payload, requirements)
        if not response.success:
            await self.release(auth)
        return response

    # -- the model and the TEE ---------------------------------------------------------------------------------

    async def run(self, request: InferenceRequest) -> ModelOutput:
        """The whole answer within the model deadline; GatewayError 502/504 when the model fails."""
        try:
            output: ModelOutput = await asyncio.wait_for(self.backend.generate(request), self.config.model_timeout)
        except TimeoutError:
            raise GatewayError(504, "model_timeout", f"the model took over {self.config.model_timeout:g}s") from None
        except GatewayError:
            raise
        except Exception as err:
            raise GatewayError(502, "model_error", f"the model failed: {type(err).__name__}: {err}") from None
        return output

    # -- inference settlement ----------------------------------------------------------------------------------

    def inference_record(
        self,
        mode: SettlementMode,
        request: InferenceRequest,
        output: ModelOutput,
        attestation: TeeAttestation,
        payer: str,
    ) -> dict[str, Any] | None:
        """The relayer intake record for this inference in ``mode`` (None for private).

        ``batch`` is a batch leaf signed by the TEE. ``individual`` and ``metadata`` are OpenGradient's individual
        settlement data (``x-settlement-data``: hashes, RSA signature, the request and the answer, the payer), which
        the relayer settles with ``settleOpenGradient``: the TEE's signature covers the hashes, the chain checks it,
        and the full record (for ``metadata`` with the model and its metadata) is the DA blob the pointer names. An
        RSA TEE signs no EIP-712 metadata record, so ``settleMetadata``'s on-chain copy of the data is not available
        to it; the blob, whose hashes the chain has verified, is the full record.
        """
        if mode is SettlementMode.PRIVATE:
            return None
        ref = f"gateway:{to_hex(attestation.request_hash)[:18]}:{attestation.timestamp}"
        if mode is SettlementMode.BATCH:
            return {
                "kind": "inference",
                "mode": mode.value,
                "ref": ref,
                "tee_id": to_hex(attestation.tee_id),
                "timestamp": attestation.timestamp,
                "tee_signature": to_hex(attestation.signature),
                "input_hash": to_hex(attestation.request_hash),
                "output_hash": to_hex(attestation.output_hash),
            }
        data = self.tee.settlement_data(attestation, request, output, payer).to_json()
        return {"kind": "settlement_data", "settlement_type": "individual", "ref": ref, "data": data}

    def check_record(self, mode: SettlementMode, record: Mapping[str, Any] | None) -> None:
        """Refuse (503, nothing charged) an inference the relayer would not accept, before settling the payment."""
        if record is None:
            return
        if self.sink is None:
            raise GatewayError(
                503, "settlement_unavailable", f"X-SETTLEMENT-TYPE {mode.value}: no relayer queue is configured"
            )
        try:
            self.sink.check(record)
        except InvalidInput as err:
            raise GatewayError(
                503, "settlement_unavailable", f"{mode.value} settlement refused by the relayer: {err}"
            ) from None

    async def record(
        self,
        mode: SettlementMode,
        record: Mapping[str, Any] | None,
        request: InferenceRequest,
        output: ModelOutput,
        attestation: TeeAttestation,
        payer: str,
    ) -> Recorded:
        """Store the DA blob (individual, metadata) and queue the record for the relayer."""
        if record is None:
            return Recorded(mode)
        blob_id = None
        if mode in (SettlementMode.INDIVIDUAL, SettlementMode.METADATA) and self.blobs is not None:
            data = dict(record["data"])
            if mode is SettlementMode.METADATA:
                data["model"] = request.model
                data["metadata"] = {
                    "finish_reason": output.finish_reason,
                    "usage": {"prompt_tokens": output.prompt_tokens, "completion_tokens": output.completion_tokens},
                }
            blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
            blob_id = await asyncio.to_thread(self.blobs.put, blob)
        if blob_id is not None and self.blobs is not None:
            # The chain records where the full record is; its hashes (checked on chain) commit to the blob.
            record = {**record, "da_pointer": self.blobs.pointer(blob_id).decode("ascii")}
        assert self.sink is not None  # check_record ran first
        receipt = await self.sink.submit(record)
        return Recorded(mode, blob_id=blob_id, queue_key=receipt.key)
