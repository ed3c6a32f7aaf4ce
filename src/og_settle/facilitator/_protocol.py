"""The x402 v2 facilitator's protocol logic: ``/verify``, ``/settle`` and ``/supported`` answers, no HTTP.

:class:`Facilitator` turns a parsed JSON request body into the x402 answer, the way the reference SDK
(``x402==2.25.0``) expects it: every rejection is an answer (``isValid: false`` / ``success: false`` with an
x402 reason code and a message), never an exception; a malformed payload is ``invalid_payload``.

Two spenders are accepted:

- **the canonical x402 Permit2 proxies** (exact ``0x4020…0001``, upto ``0x4020…0002``), which every stock client
  hard-codes. These settle through og-settle's StockPaymentBatcher (``route="stock"``); for upto,
  ``witness.facilitator`` must be the batcher, the ``facilitatorAddress`` that ``/supported`` announces;
- **og-settle's PaymentFacilitator** (``route="facilitator"``): bound payments and rich events. Its upto settler
  is this server's account.

Amounts: ``exact`` charges the permitted amount. ``upto`` charges ``paymentRequirements.amount`` at settle time
(at most the permitted amount; ``paymentPayload.accepted.amount`` stays the maximum); ``"0"`` is a success with
``transaction: ""`` and ``amount: "0"`` and sends nothing. A top-level ``amount`` in the ``/settle`` body, the
older og-settle extension, is still read as an alias for the charge and takes precedence when present.

``/settle`` is idempotent: each payment is keyed by its Permit2 digest in a durable
:class:`~og_settle.facilitator.SettlementStore`; a payment already settled answers its original transaction
without sending anything, one whose receipt is late answers ``settlement_pending`` with the transaction hash
until a later call (or :meth:`Facilitator.status`) finds the receipt.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from og_settle._eip2612 import EIP2612_GAS_SPONSORING, Eip2612Permit, verify_with_permit
from og_settle._eip3009 import is_eip3009_body
from og_settle._errors import InvalidInput
from og_settle._networks import X402_EXACT_PERMIT2_PROXY, X402_UPTO_PERMIT2_PROXY
from og_settle._x402 import (
    X402_VERSION,
    PaymentRequirements,
    ReasonCode,
    SettleResponse,
    VerifyResult,
)
from og_settle.facilitator._chain import AsyncRpcBatchReader, ChainSnapshot, RpcBatchReader, RpcError
from og_settle.facilitator._engine import CallBuilder, Outcome, SettlementEngine, SettlementJob
from og_settle.facilitator._proxy import proxy_settle_call
from og_settle.facilitator._requests import Malformed, Permit2Request, parse_request
from og_settle.facilitator._store import SettlementState, SettlementStore, SqliteSettlementStore

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from og_settle._deploy import Deployment
    from og_settle._networks import Asset
    from og_settle.clients import FeeBump
    from og_settle.facilitator._eip3009 import Eip3009Payments

__all__ = ["Facilitator", "NodeError", "StockRoute"]

_SCHEMES: Final = ("exact", "upto")


EXTENSION: Final = "og-settle"


def payment_extension(key: str) -> dict[str, Any]:
    """The ``extensions`` of og-settle's answers: ``{"og-settle": {"paymentId": <Permit2 digest>}}``, the id
    ``GET /settle/status/<id>`` takes."""
    return {EXTENSION: {"paymentId": key}}


class NodeError(RuntimeError):
    """The chain node could not be reached; the HTTP layer answers 503."""


@dataclass(frozen=True, slots=True)
class StockRoute:
    """How payloads signed for the canonical x402 proxies settle.

    Attributes:
        batcher: the StockPaymentBatcher contract: it calls the proxies, and it is the upto
            ``facilitatorAddress`` (the only ``witness.facilitator`` accepted for upto).
        build: builds the batcher call settling a list of jobs.
    """

    batcher: str
    build: CallBuilder


@dataclass(frozen=True, slots=True)
class _Route:
    name: str
    spender: str
    settler: str | None


class _KeyLocks:
    """One lock per payment key, created on demand and dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


class Facilitator:
    """The x402 facilitator for one deployment, one node and one settling account.

    ``w3`` is a connected ``Web3`` (for sending); verification reads go through one JSON-RPC batch per request
    to ``rpc_url`` (default: ``w3``'s endpoint). ``store`` keeps settlements (default: an in-memory SQLite
    store, which does not survive a restart: pass a file-backed one in production). ``stock`` enables the
    canonical-proxy spenders. ``batch_window`` (seconds, 0 = off) gathers concurrent settlements into one
    transaction per route (StockPaymentBatcher for stock payloads, ``settleBatch`` for PaymentFacilitator ones).
    ``pay_to_allowlist``, when given, is the only recipients this facilitator verifies and settles.
    ``assets`` are the tokens it announces and, for those listing ``eip3009``, settles with EIP-3009
    (:mod:`og_settle.facilitator._eip3009`); default: the assets of the deployment's named network
    (:mod:`og_settle._networks`), else its OPG. A settlement transaction unmined ``fee_bump_after`` seconds
    is replaced (same nonce, fees by ``fee_bump``, the relayer's rules) within ``receipt_timeout``; ``/settle``
    answers success once it is ``confirmations`` deep; ``on_event(name, fields)`` hears of each replacement
    (:mod:`og_settle.facilitator._engine`).
    """

    def __init__(
        self,
        deployment: Deployment,
        w3: Any,
        account: LocalAccount,
        *,
        rpc_url: str | None = None,
        store: SettlementStore | None = None,
        stock: StockRoute | None = None,
        receipt_timeout: float = 20.0,
        batch_window: float = 0.0,
        max_batch: int = 50,
        pay_to_allowlist: Collection[str] | None = None,
        assets: Sequence[Asset] | None = None,
        eip3009_batcher: str | None = None,
        fee_bump: FeeBump | None = None,
        fee_bump_after: float = 6.0,
        confirmations: int = 1,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        from og_settle._hex import parse_address
        from og_settle._networks import EIP3009, NETWORKS, Asset, network
        from og_settle.clients import PaymentFacilitatorClient, RetryPolicy, TxSender, x402_reason
        from og_settle.facilitator._eip3009 import Eip3009Payments
        from og_settle.facilitator._eip3009_calls import (
            BATCH_ROUTE,
            ROUTE,
            describe_eip3009_revert,
            eip3009_batch_builder,
            eip3009_call,
        )

        retry = RetryPolicy(max_elapsed=5.0)  # requests fail fast when the node is down
        self.deployment = deployment
        self.w3 = w3
        self.chain_id = deployment.chain_id
        self.network = f"eip155:{deployment.chain_id}"
        self.permit2 = deployment.permit2
        self.spender = deployment.payment_facilitator
        self.relayer = str(account.address)
        self.stock = stock
        self.receipt_timeout = receipt_timeout
        self.pay_to_allowlist = (
            None if pay_to_allowlist is None else frozenset(parse_address(a, "payTo") for a in pay_to_allowlist)
        )
        url = rpc_url if rpc_url is not None else str(w3.provider.endpoint_uri)
        self.reader = RpcBatchReader(url, deployment.permit2)
        self.client = PaymentFacilitatorClient(w3, deployment.payment_facilitator, retry=retry)
        self.store: SettlementStore = store if store is not None else SqliteSettlementStore(":memory:")
        sender = TxSender(w3, account, chain_id=deployment.chain_id, retry=retry)
        builders: dict[str, CallBuilder] = {"facilitator": self._facilitator_call, "proxy": proxy_settle_call}
        if stock is not None:
            builders["stock"] = stock.build
        if assets is None:
            named = any(n.chain_id == deployment.chain_id for n in NETWORKS)
            default = (Asset("OPG", deployment.opg, 18, "OpenGradient", "1", ("permit2",)),)
            assets = network(deployment.chain_id).assets if named else default
        self.assets: tuple[Asset, ...] = tuple(assets)
        builders[ROUTE] = eip3009_call
        self.eip3009_batcher = None if eip3009_batcher is None else parse_address(eip3009_batcher, "eip3009_batcher")
        if self.eip3009_batcher is not None:
            builders[BATCH_ROUTE] = eip3009_batch_builder(self.eip3009_batcher)

        def describe(error: Any) -> tuple[str, str]:
            return x402_reason(error), f"the settlement reverted: {error}"

        self.engine = SettlementEngine(
            sender,
            self.store,
            builders,
            # "proxy" and "eip3009" settle one payment per call.
            batchable=frozenset({"stock", "facilitator", BATCH_ROUTE}),
            batch_window=batch_window,
            max_batch=max_batch,
            receipt_timeout=receipt_timeout,
            describe_revert=describe,
            describe_route={ROUTE: describe_eip3009_revert, BATCH_ROUTE: describe_eip3009_revert},
            fee_bump=fee_bump,
            fee_bump_after=fee_bump_after,
            confirmations=confirmations,
            on_event=on_event,
        )
        self._routes: dict[tuple[str, str], _Route] = {
            ("exact", self.spender): _Route("facilitator", self.spender, None),
            ("upto", self.spender): _Route("facilitator", self.spender, self.relayer),
        }
        # Stock payloads: through the StockPaymentBatcher when there is one (the batcher is the upto settler),
        # else straight to the proxies from this account (then the upto settler).
        stock_name = "proxy" if stock is None else "stock"
        upto_settler = self.relayer if stock is None else parse_address(stock.batcher, "batcher")
        self._routes[("exact", X402_EXACT_PERMIT2_PROXY)] = _Route(stock_name, X402_EXACT_PERMIT2_PROXY, None)
        self._routes[("upto", X402_UPTO_PERMIT2_PROXY)] = _Route(stock_name, X402_UPTO_PERMIT2_PROXY, upto_settler)
        self._keys = _KeyLocks()
        self.eip3009: Eip3009Payments | None = (
            Eip3009Payments(self, self.assets, BATCH_ROUTE if self.eip3009_batcher is not None else None)
            if any(a.supports(EIP3009) for a in self.assets)
            else None
        )

    @property
    def upto_facilitator(self) -> str:
        """The ``facilitatorAddress`` announced for upto: the batcher when there is one, else this account."""
        return self.stock.batcher if self.stock is not None else self.relayer

    # -- life cycle --------------------------------------------------------------------------------------------

    def check_node(self) -> None:
        """Raise InvalidInput unless the node serves the deployment's chain and our contracts have code there."""
        try:
            node_chain = self.reader.chain_id()
            contracts = {"PaymentFacilitator": self.spender}
            if self.stock is not None:
                contracts["StockPaymentBatcher"] = self.stock.batcher
            if self.eip3009_batcher is not None:
                contracts["Eip3009Batcher"] = self.eip3009_batcher
                contracts["x402 exact proxy"] = X402_EXACT_PERMIT2_PROXY
                contracts["x402 upto proxy"] = X402_UPTO_PERMIT2_PROXY
            missing = [
                f"{name} ({address})" for name, address in contracts.items() if not self.reader.code_size(address)
            ]
            without_code = {
                p for p in (X402_EXACT_PERMIT2_PROXY, X402_UPTO_PERMIT2_PROXY) if not self.reader.code_size(p)
            }
        except RpcError as err:
            raise NodeError(f"chain node unavailable: {err}") from err
        if node_chain != self.chain_id:
            raise InvalidInput(f"--rpc: the node is chain {node_chain}, the deployment is for {self.chain_id}")
        if missing:
            raise InvalidInput(f"--deployment: no code on chain {node_chain} for {', '.join(missing)}")
        # A chain without the canonical proxies (a bare dev node) serves PaymentFacilitator payloads only.
        for key in [key for key in self._routes if key[1] in without_code]:
            del self._routes[key]

    def start(self) -> None:
        self.engine.start()

    def close(self) -> None:
        """Finish settlements in flight, then release the node connection and the store."""
        self.engine.stop()
        self.reader.close()
        self.store.close()

    # -- endpoints ---------------------------------------------------------------------------------------------

    def supported(self) -> dict[str, Any]:
        """The ``GET /supported`` body: exact (Permit2, and EIP-3009 for assets that have it) and upto (Permit2) on
        this deployment's network; each kind's ``extra.assets`` lists the configured tokens."""
        kinds = []
        for scheme in _SCHEMES:
            extra: dict[str, Any] = {"assetTransferMethod": "permit2", "paymentFacilitator": self.spender}
            if scheme == "upto":
                extra["facilitatorAddress"] = self.upto_facilitator
                extra["paymentFacilitatorSettler"] = self.relayer
            # The tokens paid with this scheme and how (upto is Permit2 only; exact also takes EIP-3009).
            extra["assets"] = [
                a.to_json() if scheme == "exact" else {**a.to_json(), "transferMethods": ["permit2"]}
                for a in self.assets
                if scheme == "exact" or a.supports("permit2")
            ]
            kinds.append({"x402Version": X402_VERSION, "scheme": scheme, "network": self.network, "extra": extra})
        # eip2612GasSponsoring: a payer without a Permit2 allowance may send an EIP-2612 permit for Permit2, which
        # the settlement applies first in the same transaction (every route takes it).
        return {"kinds": kinds, "extensions": [EIP2612_GAS_SPONSORING], "signers": {"eip155:*": [self.relayer]}}

    def verify(self, body: Any) -> VerifyResult:
        """The ``POST /verify`` answer. Raises NodeError only when the node cannot be reached."""
        if self.eip3009 is not None and is_eip3009_body(body):
            return self.eip3009.verify(body)
        try:
            request = parse_request(body, settling=False)
        except Malformed as err:
            return VerifyResult(is_valid=False, invalid_reason=err.reason, invalid_message=err.message)
        result, _ = self._check(request, request.requirements)
        return dataclasses.replace(result, extensions=payment_extension(self._key(request)))

    async def verify_async(self, body: Any, reader: AsyncRpcBatchReader) -> VerifyResult:
        """:meth:`verify` for an event loop: the chain reads go through ``reader`` without a worker thread; the
        checks themselves (parsing, one signature recovery) are short CPU work done in place."""
        if self.eip3009 is not None and is_eip3009_body(body):
            return await self.eip3009.verify_async(body, reader)
        try:
            request = parse_request(body, settling=False)
        except Malformed as err:
            return VerifyResult(is_valid=False, invalid_reason=err.reason, invalid_message=err.message)
        route = self._precheck(request, request.requirements)
        if isinstance(route, VerifyResult):
            return route
        auth = request.payload.payload.authorization
        try:
            snapshot = await reader.snapshot(auth.owner, auth.token, auth.nonce, permit=request.permit is not None)
        except RpcError as err:
            raise NodeError(f"chain node unavailable: {err}") from err
        result, _ = self._conclude(request, request.requirements, route, snapshot)
        return dataclasses.replace(result, extensions=payment_extension(self._key(request)))

    def async_reader(self) -> AsyncRpcBatchReader:
        """A new :class:`AsyncRpcBatchReader` on this facilitator's node (to create inside the serving loop)."""
        return AsyncRpcBatchReader(self.reader.rpc_url, self.permit2)

    def settle(self, body: Any, notes: dict[str, Any] | None = None) -> SettleResponse:
        """The ``POST /settle`` answer: verify, then settle on chain once. ``notes`` receives log details."""
        notes = notes if notes is not None else {}
        if self.eip3009 is not None and is_eip3009_body(body):
            return self.eip3009.settle(body, notes)
        try:
            request = parse_request(body, settling=True)
        except Malformed as err:
            return SettleResponse(
                success=False, transaction="", network=self.network, error_reason=err.reason, error_message=err.message
            )
        auth = request.payload.payload.authorization
        payer = auth.owner
        failed = functools.partial(self._failed, payer)

        requirements = request.requirements
        if requirements.network != self.network:
            return failed(ReasonCode.INVALID_NETWORK, f"network: {requirements.network} is not {self.network}")
        charge = request.amount if request.amount is not None else requirements.amount
        if auth.scheme.is_upto:
            if charge > auth.amount:
                return failed(
                    ReasonCode.UPTO_SETTLEMENT_EXCEEDS_AMOUNT, f"amount: {charge} exceeds the permitted {auth.amount}"
                )
            # Verification compares the signed maximum with the requirements' amount: the maximum stays that.
            requirements = dataclasses.replace(requirements, amount=auth.amount)
        elif charge != auth.amount:
            return failed(
                ReasonCode.PERMIT2_AMOUNT_MISMATCH, f"amount: exact charges the permitted {auth.amount}, not {charge}"
            )
        key = self._key(request)
        notes["id"] = key
        with self._keys.hold(key):
            response = self._settle_once(request, requirements, key, charge, notes)
        return dataclasses.replace(response, extensions=payment_extension(key))

    def status(self, ident: str) -> list[SettleResponse]:
        """The settlements stored under a payment id (its Permit2 digest) or a transaction hash, refreshed
        from the chain without waiting. Empty when nothing is known."""
        ident = ident.lower()
        record = self.store.get(ident)
        records = [record] if record is not None else self.store.by_transaction(ident)
        answers = []
        for record in records:
            outcome = self._outcome_of(record, wait=0.0)
            answer = self._answer(outcome, record.payer, record.amount, record.scheme == "upto", {"id": record.key})
            answers.append(dataclasses.replace(answer, extensions=payment_extension(record.key)))
        return answers

    # -- internals ---------------------------------------------------------------------------------------------

    def _settle_once(
        self, request: Permit2Request, requirements: PaymentRequirements, key: str, charge: int, notes: dict[str, Any]
    ) -> SettleResponse:
        """Settle payment ``key`` (its lock held): answer a stored settlement, or verify and send."""
        auth = request.payload.payload.authorization
        payer = auth.owner
        failed = functools.partial(self._failed, payer)

        record = self.store.get(key)
        if record is not None and record.state != SettlementState.FAILED:
            if record.amount != charge:
                return failed(
                    ReasonCode.PERMIT2_INVALID_NONCE,
                    f"this permit already settled for {record.amount} in {record.transaction}",
                    record.transaction,
                )
            outcome = self._outcome_of(record, wait=self.receipt_timeout)
            if outcome.state != "failed":
                notes["replayed"] = True
                return self._answer(outcome, payer, charge, auth.scheme.is_upto, notes)
        result, permit = self._check(request, requirements)
        if not result.is_valid:
            return failed(str(result.invalid_reason), result.invalid_message)
        if charge == 0:
            return SettleResponse(success=True, transaction="", network=self.network, payer=payer, amount=0)
        route = self._route(request)
        assert isinstance(route, _Route)  # _check passed, so the spender has a route
        if permit is not None:
            notes["permit"] = True
        job = SettlementJob(
            key=key, payload=request.payload, amount=charge, route=route.name, network=self.network, permit=permit
        )
        future = self.engine.submit(job)
        try:
            outcome = future.result(timeout=self.receipt_timeout + 30.0)
        except FutureTimeout:
            outcome = Outcome("pending", "", str(ReasonCode.SETTLEMENT_PENDING), "the settlement is queued")
        except Exception as err:
            self._raise_if_node_down(err)
            raise
        return self._answer(outcome, payer, charge, auth.scheme.is_upto, notes)

    def _failed(self, payer: str, reason: str, message: str | None, transaction: str = "") -> SettleResponse:
        return SettleResponse(
            success=False,
            transaction=transaction,
            network=self.network,
            payer=payer,
            error_reason=str(reason),
            error_message=message,
        )

    def _key(self, request: Permit2Request) -> str:
        """The payment's id: its Permit2 EIP-712 digest on this chain."""
        return "0x" + request.payload.payload.authorization.digest(self.chain_id, self.permit2).hex()

    def _route(self, request: Permit2Request) -> _Route | VerifyResult:
        auth = request.payload.payload.authorization
        route = self._routes.get((auth.scheme.x402_scheme, auth.spender))
        if route is None:
            accepted = sorted({spender for (scheme, spender) in self._routes if scheme == auth.scheme.x402_scheme})
            return VerifyResult(
                is_valid=False,
                invalid_reason=ReasonCode.INVALID_PERMIT2_SPENDER,
                payer=auth.owner,
                invalid_message=f"spender: {auth.spender} is not one this facilitator settles through "
                f"({', '.join(accepted)})",
            )
        if route.name == "stock" and auth.scheme.is_bound:
            return VerifyResult(
                is_valid=False,
                invalid_reason=ReasonCode.INVALID_PAYLOAD,
                payer=auth.owner,
                invalid_message="witness.requestHash: the canonical x402 proxies take no request hash",
            )
        return route

    def _precheck(self, request: Permit2Request, requirements: PaymentRequirements) -> VerifyResult | _Route:
        """The checks before any chain read: network, payTo allow-list, spender route."""
        auth = request.payload.payload.authorization
        if requirements.network != self.network:
            return VerifyResult(
                is_valid=False,
                invalid_reason=ReasonCode.INVALID_NETWORK,
                payer=auth.owner,
                invalid_message=f"network: {requirements.network} is not served here ({self.network})",
            )
        if self.pay_to_allowlist is not None and requirements.pay_to not in self.pay_to_allowlist:
            return VerifyResult(
                is_valid=False,
                invalid_reason=ReasonCode.PAY_TO_NOT_ALLOWED,
                payer=auth.owner,
                invalid_message=f"payTo: {requirements.pay_to} is not on this facilitator's allow-list",
            )
        return self._route(request)

    def _conclude(
        self, request: Permit2Request, requirements: PaymentRequirements, route: _Route, snapshot: ChainSnapshot
    ) -> tuple[VerifyResult, Eip2612Permit | None]:
        """The verification, and the EIP-2612 permit the settlement must apply (None: the allowance is there).
        x402's proxies want the permit's value equal to the permitted amount; PaymentFacilitator, covering it."""
        return verify_with_permit(
            request.payload,
            requirements,
            permit=request.permit,
            reader=snapshot,
            now=snapshot.timestamp,
            token_nonce=snapshot.token_nonce,
            domain_separator=snapshot.domain_separator,
            exact_value=route.name != "facilitator",
            permit2=self.permit2,
            spender=route.spender,
            settler=route.settler,
        )

    def _check(
        self, request: Permit2Request, requirements: PaymentRequirements
    ) -> tuple[VerifyResult, Eip2612Permit | None]:
        route = self._precheck(request, requirements)
        if isinstance(route, VerifyResult):
            return route, None
        auth = request.payload.payload.authorization
        try:
            snapshot = self.reader.snapshot(auth.owner, auth.token, auth.nonce, permit=request.permit is not None)
        except RpcError as err:
            raise NodeError(f"chain node unavailable: {err}") from err
        return self._conclude(request, requirements, route, snapshot)

    def _outcome_of(self, record: Any, *, wait: float) -> Outcome:
        if record.state == SettlementState.SETTLED:
            return Outcome("settled", record.transaction)
        if record.state == SettlementState.FAILED:
            return Outcome("failed", record.transaction, record.error_reason, "the settlement failed")
        try:
            return self.engine.resolve(record, wait=wait)
        except Exception as err:
            self._raise_if_node_down(err)
            raise

    def _answer(self, outcome: Outcome, payer: str, charge: int, upto: bool, notes: dict[str, Any]) -> SettleResponse:
        if outcome.revert is not None:
            notes["revert"] = outcome.revert
        if outcome.state == "settled":
            return SettleResponse(
                success=True,
                transaction=outcome.transaction,
                network=self.network,
                payer=payer,
                amount=charge if upto else None,
            )
        return SettleResponse(
            success=False,
            transaction=outcome.transaction,
            network=self.network,
            payer=payer,
            error_reason=outcome.reason or str(ReasonCode.TRANSACTION_FAILED),
            error_message=outcome.message,
        )

    def _facilitator_call(self, jobs: Sequence[SettlementJob]) -> Any:
        """``settle`` for one job, ``settleBatch`` (each item isolated) for several; their ``WithPermit(s)`` forms
        when a payer's EIP-2612 permit must be applied first."""
        payments = [
            j.permit2_payload.payload.authorization.payment_args(j.permit2_payload.payload.signature, j.amount)
            for j in jobs
        ]
        permits = [(i, j.permit) for i, j in enumerate(jobs) if j.permit is not None]
        if len(payments) == 1:
            if permits:
                return self.client.settle_with_permit_call(permits[0][1], payments[0])
            return self.client.settle_call(payments[0])
        if permits:
            return self.client.settle_batch_with_permits_call(payments, permits)
        return self.client.settle_batch_call(payments)

    @staticmethod
    def _raise_if_node_down(err: BaseException) -> None:
        from og_settle.clients import NodeUnavailable, is_connection_error

        if isinstance(err, NodeUnavailable | RpcError) or is_connection_error(err):
            raise NodeError(f"chain node unavailable ({type(err).__name__})") from err
