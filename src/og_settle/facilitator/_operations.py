"""The facilitator's operations around ``/verify`` and ``/settle``: who calls, their limits, usage, receipts.

:class:`Operations` is what :func:`~og_settle.facilitator.create_app` calls around the protocol logic, which
stays unaware of it. It reads only the x402 request body and answer (``paymentRequirements``' asset, amount and
payTo, the answer's payer, transaction and payment id), so it applies to every transfer method alike.

- **Callers.** A bearer key found in the store (``og-settle facilitator keys set``) is that key, with its
  limits; one from ``--api-keys-file``/``--api-keys-env`` is ``key-<first 12 hex digits of its SHA-256>``,
  without limits. ``/verify`` without a valid key is served as the anonymous caller ``""`` (it was open before
  keys had limits, and stays so) unless ``verify_requires_key``.
- **Before anything is sent:** the key's requests-per-second limit on the endpoint, then, for ``/settle``, the
  reservation of the charge in the asset's quotas (:mod:`og_settle.facilitator._limits`). Over a limit the
  request is answered 429 with ``Retry-After`` and recorded; nothing is settled.
- **After:** the reservation is spent (settled), kept (pending) or released (failed); the request is recorded
  (:mod:`og_settle.facilitator._usage`): a settle before it is answered, verifies by a writer thread that
  stores what gathered every few milliseconds in one transaction (so ``/verify`` does not wait for a disk
  flush; :meth:`Operations.close` writes the rest); a settlement's :class:`~og_settle.facilitator.Receipt` is stored
  and added to the answer's ``extensions["og-settle"]["receipt"]``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from og_settle._errors import InvalidInput
from og_settle._hex import parse_address, parse_uint256, to_hex
from og_settle._x402 import SettleResponse, VerifyResult
from og_settle.facilitator._auth import ApiKeys
from og_settle.facilitator._limits import KeyLimits, LimitExceeded
from og_settle.facilitator._receipts import Receipt, payload_digest, transfer_log_indexes
from og_settle.facilitator._store_ops import OperationsTables
from og_settle.facilitator._usage import UsageRecord, parse_groups, parse_period, usage_totals

__all__ = ["Caller", "Operations"]

EXTENSION: Final = "og-settle"
# How long a key read from the store is used before it is read again: a key added, changed or removed with
# `og-settle facilitator keys` takes effect on every instance within this many seconds.
KEY_CACHE_SECONDS: Final = 2.0


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made a request.

    Attributes:
        name: the key's name (``""``: anonymous or an open server).
        limits: its limits.
    """

    name: str
    limits: KeyLimits


@dataclass(frozen=True, slots=True)
class _Facts:
    """What a request body says of its payment, read leniently (a malformed body is rejected by the protocol)."""

    asset: str | None = None
    amount: int | None = None
    pay_to: str | None = None
    scheme: str | None = None
    network: str | None = None
    payload: Any = None

    @classmethod
    def of(cls, body: Any) -> _Facts:
        if not isinstance(body, Mapping) or not isinstance(body.get("paymentRequirements"), Mapping):
            return cls()
        reqs = body["paymentRequirements"]

        def read(parse: Any, value: Any, field: str) -> Any:
            try:
                return parse(value, field)
            except InvalidInput:
                return None

        amount = body.get("amount") if body.get("amount") is not None else reqs.get("amount")
        return cls(
            asset=read(parse_address, reqs.get("asset"), "asset"),
            amount=read(parse_uint256, amount, "amount"),
            pay_to=read(parse_address, reqs.get("payTo"), "payTo"),
            scheme=reqs.get("scheme") if isinstance(reqs.get("scheme"), str) else None,
            network=reqs.get("network") if isinstance(reqs.get("network"), str) else None,
            payload=body.get("paymentPayload"),
        )


def _payment_id(extensions: Mapping[str, Any] | None) -> str | None:
    ours = (extensions or {}).get(EXTENSION)
    value = ours.get("paymentId") if isinstance(ours, Mapping) else None
    return value if isinstance(value, str) else None


def _with_receipt(response: SettleResponse, receipt: Receipt) -> SettleResponse:
    extensions = dict(response.extensions or {})
    extensions[EXTENSION] = {**dict(extensions.get(EXTENSION) or {}), "receipt": receipt.to_json()}
    return dataclasses.replace(response, extensions=extensions)


class Operations:
    """Keys, limits, usage and receipts for one facilitator (see the module description).

    ``store`` holds keys, limit state, usage and receipts (the facilitator's settlement store); ``api_keys``
    are keys from a file or the environment; ``open_access`` serves every endpoint without a key (``--no-auth``);
    ``verify_requires_key`` refuses an anonymous ``/verify``; ``w3`` reads receipts for the settlement receipts.
    """

    def __init__(
        self,
        store: OperationsTables,
        w3: Any,
        *,
        api_keys: ApiKeys | None = None,
        open_access: bool = False,
        verify_requires_key: bool = False,
    ) -> None:
        self.store = store
        self.w3 = w3
        self.api_keys = api_keys
        self.open_access = open_access
        self.verify_requires_key = verify_requires_key
        self._keys: dict[str, tuple[float, tuple[str, KeyLimits] | None]] = {}
        self._receipts: dict[str, list[Any]] = {}
        self._receipts_guard = threading.Lock()
        self.usage_lost = 0  # verify records the store refused five times (reported by /health)
        self._pending: queue.Queue[UsageRecord | None] = queue.Queue()
        self._writer = threading.Thread(target=self._write_usage, name="usage-writer", daemon=True)
        self._writer.start()

    def close(self) -> None:
        """Write the usage records still queued, then stop the writer."""
        self._pending.put(None)
        self._writer.join()

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until the usage records queued so far are written."""
        deadline = time.monotonic() + timeout
        while self._pending.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)

    def _write_usage(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._pending.get()]
            while len(batch) < 500:
                try:
                    batch.append(self._pending.get(timeout=0.005))
                except queue.Empty:
                    break
            stopping = None in batch
            records = [r for r in batch if r is not None]
            for attempt in range(5):  # a database hiccup (a PostgreSQL restart) is waited out, briefly
                try:
                    if records:
                        self.store.add_usage(*records)
                    break
                except Exception:
                    if attempt == 4:
                        self.usage_lost += len(records)
                    time.sleep(0.2 * (attempt + 1))
            for _ in batch:
                self._pending.task_done()

    # -- before --------------------------------------------------------------------------------------------------

    def caller(self, authorization: str | None, endpoint: str) -> Caller | None:
        """The caller of a request, or None when it must be refused (401)."""
        token = ApiKeys.bearer(authorization)
        if token is not None:
            digest = hashlib.sha256(token.encode()).hexdigest()
            stored = self._key(digest)
            if stored is not None:
                return Caller(*stored)
            if self.api_keys is not None and self.api_keys.accepts(authorization):
                return Caller(f"key-{digest[:12]}", KeyLimits())
        if self.open_access or (endpoint == "verify" and not self.verify_requires_key):
            return Caller("", KeyLimits())
        return None

    def _key(self, digest: str) -> tuple[str, KeyLimits] | None:
        """The stored key with that digest, read at most every KEY_CACHE_SECONDS (this runs on the event loop)."""
        now = time.monotonic()
        cached = self._keys.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = self.store.key_by_digest(digest)
        if len(self._keys) > 10_000:
            self._keys.clear()
        self._keys[digest] = (now + KEY_CACHE_SECONDS, found)
        return found

    def admit(self, caller: Caller, endpoint: str) -> None:
        """Count the request against the caller's rate on ``endpoint``; LimitExceeded when over it."""
        rate = caller.limits.rate(endpoint)
        if rate is not None:
            self.store.admit(caller.name, endpoint, rate)

    def reserve(self, caller: Caller, body: Any) -> str | None:
        """Reserve the settlement's charge in the caller's quotas of its asset; the reservation's id (None when no
        quota applies). LimitExceeded when one would go over: nothing is reserved then."""
        facts = _Facts.of(body)
        if facts.asset is None:
            return None
        quotas = caller.limits.quotas_for(facts.asset)
        if not quotas or not facts.amount:
            return None
        hold = uuid.uuid4().hex
        self.store.reserve(hold, caller.name, facts.asset, facts.amount, quotas)
        return hold

    def refused(self, caller: Caller, endpoint: str, body: Any, limit: LimitExceeded) -> None:
        """Record a request answered 429."""
        facts = _Facts.of(body)
        self.store.add_usage(
            UsageRecord(
                at=time.time(),
                key=caller.name,
                endpoint=endpoint,
                outcome=limit.outcome,
                reason=limit.message,
                pay_to=facts.pay_to,
                asset=facts.asset,
                amount=facts.amount,
                scheme=facts.scheme,
                network=facts.network,
            )
        )

    # -- after ---------------------------------------------------------------------------------------------------

    def verified(self, caller: Caller, body: Any, result: VerifyResult) -> None:
        """Queue the record of a verify (written within milliseconds, see the module description)."""
        facts = _Facts.of(body)
        self._pending.put(
            UsageRecord(
                at=time.time(),
                key=caller.name,
                endpoint="verify",
                outcome="valid" if result.is_valid else "invalid",
                reason=None if result.invalid_reason is None else str(result.invalid_reason),
                payer=result.payer,
                pay_to=facts.pay_to,
                asset=facts.asset,
                amount=facts.amount,
                scheme=facts.scheme,
                network=facts.network,
                payment_id=_payment_id(result.extensions),
            )
        )

    def settle(
        self,
        run: Callable[[Any, dict[str, Any]], SettleResponse],
        caller: Caller,
        body: Any,
        hold: str | None,
        notes: dict[str, Any],
    ) -> SettleResponse:
        """``run(body, notes)`` (the protocol's settle), then :meth:`settled`. An exception is recorded (outcome
        ``error``) and raised again; it leaves the reservation held, since its transaction may have gone out: the
        quota errs on the safe side until its window ends."""
        try:
            response = run(body, notes)
        except Exception as err:
            facts = _Facts.of(body)
            self.store.add_usage(
                UsageRecord(
                    at=time.time(), key=caller.name, endpoint="settle", outcome="error", reason=type(err).__name__,
                    pay_to=facts.pay_to, asset=facts.asset, amount=facts.amount, scheme=facts.scheme,
                    network=facts.network,
                )
            )  # fmt: skip
            raise
        return self.settled(caller, body, response, hold)

    def settled(self, caller: Caller, body: Any, response: SettleResponse, hold: str | None) -> SettleResponse:
        """Finish the reservation, record the request, and add the receipt to a successful answer."""
        facts = _Facts.of(body)
        payment_id = _payment_id(response.extensions)
        pending = not response.success and response.error_reason == "settlement_pending"
        outcome = "settled" if response.success else "pending" if pending else "failed"
        if hold is not None:
            self.store.finish_hold(hold, payment_id, outcome)
        receipt = None
        if response.success and response.transaction and response.payer and facts.pay_to and facts.asset:
            amount = response.amount if response.amount is not None else facts.amount
            receipt = self._receipt(caller, facts, response, payment_id, amount)
        self.store.add_usage(
            UsageRecord(
                at=time.time(),
                key=caller.name,
                endpoint="settle",
                outcome=outcome,
                reason=response.error_reason,
                payer=response.payer,
                pay_to=facts.pay_to,
                asset=facts.asset,
                amount=response.amount if response.amount is not None else facts.amount,
                scheme=facts.scheme,
                network=response.network,
                transaction=response.transaction or None,
                block=None if receipt is None else receipt.block_number,
                payment_id=payment_id,
            )
        )
        return response if receipt is None else _with_receipt(response, receipt)

    def stored_receipt(self, response: SettleResponse) -> SettleResponse:
        """A settled answer (``GET /settle/status``) with its payment's stored receipt, when there is one."""
        payment_id = _payment_id(response.extensions)
        receipt = self.store.receipt(payment_id) if response.success and payment_id else None
        return response if receipt is None else _with_receipt(response, receipt)

    def _receipt(
        self, caller: Caller, facts: _Facts, response: SettleResponse, payment_id: str | None, amount: int | None
    ) -> Receipt | None:
        assert response.payer is not None and facts.pay_to is not None and facts.asset is not None
        digest = payload_digest(facts.payload)
        known = self.store.receipt(payment_id or digest)
        if known is not None:
            return known
        if amount is None:
            return None
        mined = self._chain_receipt(response.transaction)
        if mined is None:
            return None
        indexes = transfer_log_indexes(mined["logs"], facts.asset, response.payer, facts.pay_to, amount)
        draft = Receipt(
            network=response.network,
            transaction=response.transaction.lower(),
            block_number=int(mined["blockNumber"]),
            block_hash=to_hex(bytes(mined["blockHash"])),
            log_index=-1,
            asset=facts.asset,
            payer=response.payer,
            pay_to=facts.pay_to,
            amount=amount,
            scheme=facts.scheme or "",
            payment_id=payment_id or digest,
            payload_digest=digest,
            settled_at=time.time(),
        )
        return self.store.add_receipt(caller.name, draft, indexes)

    def _chain_receipt(self, transaction: str) -> Any:
        """The transaction's receipt from the node, fetched once for all the payments a batch settled (a few
        tries: a node slow under load must not turn a settled payment's answer into an error); None if the node
        does not answer, and the answer then goes without a receipt."""
        with self._receipts_guard:
            entry = self._receipts.get(transaction)
            if entry is None:
                entry = self._receipts[transaction] = [threading.Lock(), None]
                while len(self._receipts) > 256:
                    del self._receipts[next(iter(self._receipts))]
        with entry[0]:
            for attempt in range(3):
                if entry[1] is not None:
                    break
                try:
                    entry[1] = self.w3.eth.get_transaction_receipt(transaction)
                except Exception:
                    time.sleep(0.5 * (attempt + 1))
            return entry[1]

    # -- reports -------------------------------------------------------------------------------------------------

    def usage(self, caller: Caller, params: Mapping[str, str]) -> dict[str, Any]:
        """The ``GET /usage`` body for the caller: ``from``/``to`` (ISO 8601) and ``group`` (payer,payTo)."""
        unknown = sorted(set(params) - {"from", "to", "group"})
        if unknown:
            raise InvalidInput(f"{unknown[0]}: unknown query parameter (from, to and group are)")
        begin, end = parse_period(params.get("from"), params.get("to"), now=time.time())
        groups = parse_groups(params.get("group"))
        self.flush(timeout=5.0)  # the verifies answered so far are in the report
        return usage_totals(caller.name, begin, end, self.store.usage_records(caller.name, begin, end), groups)
