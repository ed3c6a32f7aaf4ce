"""EIP-3009 exact payments: x402's default for stablecoins such as USDC (``transferWithAuthorization``).

A stock client pays an ``exact`` requirement whose ``extra`` has no ``assetTransferMethod`` (or ``"eip3009"``)
with ``payload: {signature, authorization: {from, to, value, validAfter, validBefore, nonce}}``, signed over the
token's own EIP-712 domain (``extra.name``, ``extra.version``). :class:`Eip3009Payments` verifies and settles
such payloads for the :class:`~og_settle.facilitator.Facilitator`, with the stock SDK's reason codes:

- offline: scheme and network, the asset (configured on this network with the ``eip3009`` method, with the
  EIP-712 name and version of the requirements), recipient, value, the validity window at the latest block
  (``validBefore`` at least 6 s ahead, as the SDK), and the signature: an EOA's must recover to ``from``;
- one JSON-RPC batch: the latest block, ``from``'s and the token's code, ``authorizationState(from, nonce)`` and
  ``balanceOf(from)``; when ``from`` has code (a contract wallet, or an EIP-7702 account), a second call asks its
  ERC-1271 ``isValidSignature``, as the token will. An ERC-6492-wrapped signature is unwrapped when the wallet is
  deployed; a wallet that is not deployed is refused (``eip6492_factory_not_allowed``: no factory is allowed).

Settlement (the calls are built in :mod:`og_settle.facilitator._eip3009_calls`) calls the token's
``transferWithAuthorization`` (``v, r, s`` for a 65-byte signature, ``bytes``
otherwise) from the settling account, one payment per transaction, or gathers them into one
``Eip3009Batcher.settle`` when a batcher is deployed and a batch window is set. It is idempotent as the Permit2
path is (the store key is the authorisation's EIP-712 digest). An authorisation that someone else submitted first
(front-running it into a plain transfer) still paid the recipient: ``/settle`` then finds its
``AuthorizationUsed(from, nonce)`` log, checks that transaction's ``Transfer(from, to, value)`` and answers success
with that transaction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from eth_abi.abi import encode

from og_settle._eip712 import TokenDomain
from og_settle._eip3009 import (
    Eip3009Payload,
    Eip3009Payment,
    erc6492_inner,
    erc6492_wrapped,
    recover_eip3009_signer,
)
from og_settle._errors import InvalidInput
from og_settle._hex import keccak256
from og_settle._networks import EIP3009, Asset
from og_settle._x402 import PaymentRequirements, ReasonCode, SettleResponse, VerifyResult
from og_settle.facilitator._chain import CallFailed, RpcError
from og_settle.facilitator._eip3009_calls import ROUTE
from og_settle.facilitator._engine import Outcome, SettlementJob
from og_settle.facilitator._protocol import NodeError, payment_extension
from og_settle.facilitator._requests import Malformed, parse_envelope, where_in
from og_settle.facilitator._store import SettlementState

if TYPE_CHECKING:
    from og_settle.facilitator._chain import AsyncRpcBatchReader, RpcBatchReader
    from og_settle.facilitator._protocol import Facilitator

__all__ = ["Eip3009Payments", "Eip3009Verifier"]

# validBefore must leave this much time to land the transaction (the stock SDK's buffer).
VALID_BEFORE_BUFFER_S: Final = 6
# How far back (blocks) /settle looks for an authorisation someone else already used.
LANDED_LOOKBACK_BLOCKS: Final = 10_000
_AUTHORIZATION_STATE: Final = keccak256(b"authorizationState(address,bytes32)")[:4]
_BALANCE_OF: Final = keccak256(b"balanceOf(address)")[:4]
_IS_VALID_SIGNATURE: Final = keccak256(b"isValidSignature(bytes32,bytes)")[:4]
_ERC1271_MAGIC: Final = bytes.fromhex("1626ba7e")
_AUTHORIZATION_USED: Final = keccak256(b"AuthorizationUsed(address,bytes32)")
_TRANSFER_TOPIC: Final = keccak256(b"Transfer(address,address,uint256)")


@dataclass(frozen=True, slots=True)
class _Request:
    payment: Eip3009Payment
    requirements: PaymentRequirements
    amount: int | None

    @property
    def payer(self) -> str:
        return self.payment.payload.authorization.owner


@dataclass(frozen=True, slots=True)
class _Reads:
    timestamp: int
    payer_code: bool
    token_code: bool
    supported: bool
    used: bool
    balance: int | None  # None: not read (offline)


def _uint(result: Any) -> int:
    text = str(result).removeprefix("0x")
    return int(text[:64], 16) if text else 0


class Eip3009Verifier:
    """EIP-3009 verification on ``network`` for the ``assets`` that list ``eip3009``: the checks of ``/verify``.

    ``reader`` reads the chain; without one (``reader=None``) only the offline checks run: the envelope, the
    asset, recipient, value, the window at ``now`` and an EOA's signature. ``now``, when given, replaces the
    latest block's timestamp in the window check. ``og-settle payment verify`` uses it directly; the facilitator
    through :class:`Eip3009Payments`."""

    def __init__(
        self,
        assets: Sequence[Asset],
        *,
        network: str,
        reader: RpcBatchReader | None,
        pay_to_allowlist: Collection[str] | None = None,
        now: int | None = None,
    ) -> None:
        self.assets = {asset.address: asset for asset in assets if asset.supports(EIP3009)}
        self.network = network
        self.reader = reader
        self.pay_to_allowlist = pay_to_allowlist
        self.now = now
        self._known_code: set[str] = set()

    # -- parsing and offline checks ----------------------------------------------------------------------------

    def _parse(self, body: Any, *, settling: bool) -> _Request:
        requirements, amount = parse_envelope(body, settling=settling)
        payment = body["paymentPayload"]
        try:
            accepted = PaymentRequirements.from_json(payment.get("accepted"), "accepted")
        except InvalidInput as err:
            raise Malformed(ReasonCode.INVALID_PAYLOAD, where_in(str(err), "paymentPayload")) from None
        except AttributeError:
            raise Malformed(ReasonCode.INVALID_PAYLOAD, "paymentPayload.accepted: missing") from None
        try:
            payload = Eip3009Payload.from_json(payment["payload"], "paymentPayload.payload")
        except InvalidInput as err:
            raise Malformed(ReasonCode.INVALID_PAYLOAD, str(err)) from None
        if accepted.asset != requirements.asset:
            raise Malformed(
                ReasonCode.INVALID_PAYLOAD,
                f"paymentPayload.accepted.asset: {accepted.asset} is not the required {requirements.asset}",
            )
        if accepted.scheme != "exact" or requirements.scheme != "exact":
            raise Malformed(
                ReasonCode.UNSUPPORTED_SCHEME,
                f"scheme: EIP-3009 pays 'exact' only (accepted {accepted.scheme!r}, required {requirements.scheme!r})",
            )
        if accepted.network != requirements.network:
            raise Malformed(
                ReasonCode.INVALID_NETWORK, f"network: accepted {accepted.network}, required {requirements.network}"
            )
        asset = self.assets.get(requirements.asset)
        if asset is None:
            raise Malformed(
                ReasonCode.EIP3009_NOT_SUPPORTED,
                f"asset: {requirements.asset} is not an EIP-3009 asset this facilitator settles "
                f"({', '.join(f'{a.symbol} {a.address}' for a in self.assets.values()) or 'none'})",
            )
        extra = requirements.extra
        if "name" not in extra or "version" not in extra:
            raise Malformed(ReasonCode.MISSING_EIP712_DOMAIN, "extra: EIP-3009 needs the token's name and version")
        if extra["name"] != asset.eip712_name:
            raise Malformed(
                ReasonCode.EIP3009_TOKEN_NAME_MISMATCH,
                f"extra.name: {extra['name']!r} is not {asset.symbol}'s EIP-712 name {asset.eip712_name!r}",
            )
        if extra["version"] != asset.eip712_version:
            raise Malformed(
                ReasonCode.EIP3009_TOKEN_VERSION_MISMATCH,
                f"extra.version: {extra['version']!r} is not {asset.symbol}'s EIP-712 version {asset.eip712_version!r}",
            )
        assert asset.eip712_name is not None and asset.eip712_version is not None  # Asset checks eip3009 has both
        domain = TokenDomain(asset.eip712_name, asset.eip712_version, requirements.chain_id, asset.address)
        return _Request(Eip3009Payment(payload, domain), requirements, amount)

    def _precheck(self, request: _Request) -> VerifyResult | None:
        auth = request.payment.payload.authorization
        requirements = request.requirements

        def invalid(reason: ReasonCode, message: str) -> VerifyResult:
            return VerifyResult(is_valid=False, invalid_reason=reason, payer=auth.owner, invalid_message=message)

        if requirements.network != self.network:
            return invalid(
                ReasonCode.INVALID_NETWORK, f"network: {requirements.network} is not served here ({self.network})"
            )
        if self.pay_to_allowlist is not None and requirements.pay_to not in self.pay_to_allowlist:
            return invalid(
                ReasonCode.PAY_TO_NOT_ALLOWED, f"payTo: {requirements.pay_to} is not on this facilitator's allow-list"
            )
        if auth.to != requirements.pay_to:
            return invalid(
                ReasonCode.EIP3009_RECIPIENT_MISMATCH,
                f"authorization.to: signed {auth.to}, payTo is {requirements.pay_to}",
            )
        if auth.value != requirements.amount:
            return invalid(
                ReasonCode.EIP3009_VALUE_MISMATCH,
                f"authorization.value: signed {auth.value}, required {requirements.amount}",
            )
        if auth.value == 0:
            return invalid(ReasonCode.EIP3009_VALUE_MISMATCH, "authorization.value: zero")
        signature = request.payment.payload.signature
        if len(signature) == 65 and recover_eip3009_signer(auth, signature, request.payment.domain) is None:
            return invalid(ReasonCode.EIP3009_INVALID_SIGNATURE, "signature: not a canonical ECDSA signature")
        return None

    # -- chain reads -------------------------------------------------------------------------------------------

    def _calls(self, request: _Request) -> list[tuple[str, list[Any]]]:
        auth = request.payment.payload.authorization
        token = request.payment.token

        def call(to: str, data: bytes) -> tuple[str, list[Any]]:
            return "eth_call", [{"to": to, "data": "0x" + data.hex()}, "latest"]

        calls: list[tuple[str, list[Any]]] = [
            ("eth_getBlockByNumber", ["latest", False]),
            ("eth_getCode", [auth.owner, "latest"]),
            call(token, _AUTHORIZATION_STATE + encode(["address", "bytes32"], [auth.owner, auth.nonce])),
            call(token, _BALANCE_OF + encode(["address"], [auth.owner])),
        ]
        if token not in self._known_code:
            calls.append(("eth_getCode", [token, "latest"]))
        return calls

    def _reads(self, request: _Request, results: list[Any]) -> _Reads:
        block, payer_code, used, balance = results[:4]
        if not isinstance(block, dict) or "timestamp" not in block:
            raise NodeError("chain node unavailable: eth_getBlockByNumber returned no block")
        token_code = True
        if len(results) > 4:
            token_code = str(results[4]) not in ("0x", "0x0", "None")
            if token_code:
                self._known_code.add(request.payment.token)
        # A token whose authorizationState or balanceOf reverts cannot take this payment.
        supported = not isinstance(used, CallFailed) and not isinstance(balance, CallFailed)
        return _Reads(
            timestamp=int(str(block["timestamp"]), 16) if self.now is None else self.now,
            payer_code=isinstance(payer_code, str) and payer_code not in ("0x", "0x0"),
            token_code=token_code,
            supported=supported,
            used=supported and bool(_uint(used)),
            balance=_uint(balance) if supported else 0,
        )

    def _erc1271_call(self, request: _Request) -> tuple[str, list[Any]] | None:
        """The ``isValidSignature`` call for a payer with code, or None when the signature cannot be one."""
        signature = request.payment.payload.signature
        inner = erc6492_inner(signature)
        if inner is None:
            return None
        signature = inner
        digest = request.payment.payload.authorization.digest(request.payment.domain)
        data = _IS_VALID_SIGNATURE + encode(["bytes32", "bytes"], [digest, signature])
        owner = request.payment.payload.authorization.owner
        return "eth_call", [{"to": owner, "data": "0x" + data.hex()}, "latest"]

    def _conclude(self, request: _Request, reads: _Reads, erc1271: Any) -> VerifyResult:
        auth = request.payment.payload.authorization
        signature = request.payment.payload.signature

        def invalid(reason: ReasonCode, message: str) -> VerifyResult:
            return VerifyResult(is_valid=False, invalid_reason=reason, payer=auth.owner, invalid_message=message)

        if not reads.token_code:
            return invalid(ReasonCode.ASSET_NOT_DEPLOYED_CONTRACT, f"asset: no contract at {request.payment.token}")
        if not reads.supported:
            return invalid(
                ReasonCode.EIP3009_NOT_SUPPORTED, f"asset: {request.payment.token} has no authorizationState (EIP-3009)"
            )
        if auth.valid_before < reads.timestamp + VALID_BEFORE_BUFFER_S:
            return invalid(
                ReasonCode.EIP3009_VALID_BEFORE_EXPIRED,
                f"authorization.validBefore: {auth.valid_before} is not {VALID_BEFORE_BUFFER_S}s past the latest "
                f"block ({reads.timestamp})",
            )
        if auth.valid_after >= reads.timestamp:
            return invalid(
                ReasonCode.EIP3009_VALID_AFTER_FUTURE,
                f"authorization.validAfter: {auth.valid_after} is not before the latest block ({reads.timestamp})",
            )
        if reads.payer_code:
            if not (isinstance(erc1271, str) and bytes.fromhex(erc1271.removeprefix("0x")[:8]) == _ERC1271_MAGIC):
                return invalid(
                    ReasonCode.EIP3009_INVALID_SIGNATURE,
                    f"signature: {auth.owner} is a contract and its isValidSignature (ERC-1271) refuses it",
                )
        elif erc6492_wrapped(signature):
            return invalid(
                ReasonCode.EIP6492_FACTORY_NOT_ALLOWED,
                f"signature: ERC-6492 for the undeployed wallet {auth.owner}; this facilitator deploys no wallets",
            )
        elif recover_eip3009_signer(auth, signature, request.payment.domain) != auth.owner:
            return invalid(
                ReasonCode.EIP3009_INVALID_SIGNATURE,
                f"signature: not {auth.owner}'s over {request.payment.domain.name!r} v{request.payment.domain.version} "
                f"on chain {request.payment.domain.chain_id}",
            )
        if reads.used:
            return invalid(
                ReasonCode.EIP3009_NONCE_ALREADY_USED, f"authorization.nonce: 0x{auth.nonce.hex()} is already used"
            )
        if reads.balance is not None and reads.balance < auth.value:
            return invalid(
                ReasonCode.EIP3009_INSUFFICIENT_BALANCE, f"balance: {auth.owner} holds {reads.balance} < {auth.value}"
            )
        return VerifyResult(is_valid=True, payer=auth.owner)

    def _check(self, request: _Request) -> VerifyResult:
        early = self._precheck(request)
        if early is not None:
            return early
        reader = self.reader
        if reader is None:  # offline: the chain's part (code, nonce, balance) is unknown, the window is at now
            now = int(time.time()) if self.now is None else self.now
            return self._conclude(request, _Reads(now, False, True, True, False, None), None)
        try:
            reads = self._reads(request, reader.batch(self._calls(request), tolerant=True))
            erc1271 = None
            if reads.payer_code and (call := self._erc1271_call(request)) is not None:
                (erc1271,) = reader.batch([call], tolerant=True)
        except RpcError as err:
            raise NodeError(f"chain node unavailable: {err}") from err
        return self._conclude(request, reads, erc1271)

    # -- endpoints ---------------------------------------------------------------------------------------------

    def _rejected(self, err: Malformed, body: Any) -> VerifyResult:
        payer = None
        with contextlib.suppress(KeyError, TypeError):
            payer = str(body["paymentPayload"]["payload"]["authorization"]["from"])
        return VerifyResult(is_valid=False, invalid_reason=err.reason, payer=payer, invalid_message=err.message)

    def verify(self, body: Any) -> VerifyResult:
        """The ``/verify`` answer for ``body`` (``{x402Version, paymentPayload, paymentRequirements}``)."""
        try:
            request = self._parse(body, settling=False)
        except Malformed as err:
            return self._rejected(err, body)
        result = self._check(request)
        return dataclasses.replace(result, extensions=payment_extension(request.payment.key))


class Eip3009Payments(Eip3009Verifier):
    """EIP-3009 ``/verify`` and ``/settle`` for ``facilitator``, for the ``assets`` that list ``eip3009``.

    ``batch_route`` names the engine route that settles gathered payments in one transaction (an
    ``Eip3009Batcher``), or None to send one ``transferWithAuthorization`` per payment."""

    def __init__(self, facilitator: Facilitator, assets: Sequence[Asset], batch_route: str | None = None) -> None:
        super().__init__(
            assets,
            network=facilitator.network,
            reader=facilitator.reader,
            pay_to_allowlist=facilitator.pay_to_allowlist,
        )
        self.facilitator = facilitator
        self.route = batch_route or ROUTE

    async def verify_async(self, body: Any, reader: AsyncRpcBatchReader) -> VerifyResult:
        try:
            request = self._parse(body, settling=False)
        except Malformed as err:
            return self._rejected(err, body)
        result = self._precheck(request)
        if result is None:
            try:
                reads = self._reads(request, await reader.batch(self._calls(request), tolerant=True))
                erc1271 = None
                if reads.payer_code and (call := self._erc1271_call(request)) is not None:
                    (erc1271,) = await reader.batch([call], tolerant=True)
            except RpcError as err:
                raise NodeError(f"chain node unavailable: {err}") from err
            result = self._conclude(request, reads, erc1271)
        return dataclasses.replace(result, extensions=payment_extension(request.payment.key))

    def settle(self, body: Any, notes: dict[str, Any]) -> SettleResponse:
        f = self.facilitator
        try:
            request = self._parse(body, settling=True)
        except Malformed as err:
            payer = self._rejected(err, body).payer
            return SettleResponse(
                success=False,
                transaction="",
                network=f.network,
                payer=payer,
                error_reason=err.reason,
                error_message=err.message,
            )
        auth = request.payment.payload.authorization
        charge = request.amount if request.amount is not None else request.requirements.amount
        if charge != auth.value:
            return f._failed(
                auth.owner,
                ReasonCode.EIP3009_VALUE_MISMATCH,
                f"amount: exact charges the signed {auth.value}, not {charge}",
            )
        key = request.payment.key
        notes["id"] = key
        with f._keys.hold(key):
            response = self._settle_once(request, key, notes)
        return dataclasses.replace(response, extensions=payment_extension(key))

    def _settle_once(self, request: _Request, key: str, notes: dict[str, Any]) -> SettleResponse:
        f = self.facilitator
        auth = request.payment.payload.authorization
        record = f.store.get(key)
        if record is not None and record.state != SettlementState.FAILED:
            outcome = f._outcome_of(record, wait=f.receipt_timeout)
            if outcome.state != "failed":
                notes["replayed"] = True
                return f._answer(outcome, auth.owner, auth.value, False, notes)
        result = self._check(request)
        if not result.is_valid:
            if result.invalid_reason == ReasonCode.EIP3009_NONCE_ALREADY_USED:
                landed = self._landed(request.payment, notes)
                if landed is not None:
                    return landed
            return f._failed(auth.owner, str(result.invalid_reason), result.invalid_message)
        job = SettlementJob(key=key, payload=request.payment, amount=auth.value, route=self.route, network=f.network)
        try:
            outcome = f.engine.submit(job).result(timeout=f.receipt_timeout + 30.0)
        except FutureTimeout:
            outcome = Outcome("pending", "", str(ReasonCode.SETTLEMENT_PENDING), "the settlement is queued")
        except Exception as err:
            f._raise_if_node_down(err)
            raise
        if outcome.state == "failed":
            landed = self._landed(request.payment, notes)
            if landed is not None:
                return landed
            if outcome.reason is not None and outcome.reason.startswith("permit2_"):
                # The engine's generic verdict (no matching Transfer in the receipt): say why, in EIP-3009 terms.
                now = self._check(request)
                reason = now.invalid_reason if not now.is_valid else ReasonCode.EIP3009_SIMULATION_FAILED
                outcome = dataclasses.replace(
                    outcome, reason=str(reason), message=now.invalid_message or outcome.message
                )
        return f._answer(outcome, auth.owner, auth.value, False, notes)

    # -- someone else submitted the authorisation --------------------------------------------------------------

    def _landed(self, payment: Eip3009Payment, notes: dict[str, Any]) -> SettleResponse | None:
        """Success with the transaction that used this authorisation and moved exactly its value to its payee,
        if one is found in the last LANDED_LOOKBACK_BLOCKS blocks; None otherwise."""
        f = self.facilitator
        auth = payment.payload.authorization
        try:
            (latest,) = f.reader.batch([("eth_blockNumber", [])])
            start = max(0, int(str(latest), 16) - LANDED_LOOKBACK_BLOCKS)
            topics = ["0x" + _AUTHORIZATION_USED.hex(), "0x" + bytes.fromhex(auth.owner[2:]).rjust(32, b"\0").hex()]
            topics.append("0x" + auth.nonce.hex())
            query = {"address": payment.token, "topics": topics, "fromBlock": hex(start), "toBlock": "latest"}
            (logs,) = f.reader.batch([("eth_getLogs", [query])])
            for log in logs if isinstance(logs, list) else []:
                transaction = str(log.get("transactionHash", ""))
                (receipt,) = f.reader.batch([("eth_getTransactionReceipt", [transaction])])
                if isinstance(receipt, dict) and _moved(receipt, payment):
                    notes["landedElsewhere"] = True
                    return SettleResponse(success=True, transaction=transaction, network=f.network, payer=auth.owner)
        except RpcError as err:
            raise NodeError(f"chain node unavailable: {err}") from err
        return None


def _moved(receipt: Mapping[str, Any], payment: Eip3009Payment) -> bool:
    """Whether a successful receipt holds the token's ``Transfer(from, to, value)`` of ``payment``."""
    if str(receipt.get("status")) not in ("0x1", "1"):
        return False
    auth = payment.payload.authorization
    wanted = [
        "0x" + _TRANSFER_TOPIC.hex(),
        "0x" + bytes.fromhex(auth.owner[2:]).rjust(32, b"\0").hex(),
        "0x" + bytes.fromhex(auth.to[2:]).rjust(32, b"\0").hex(),
    ]
    for log in receipt.get("logs", []):
        if str(log.get("address", "")).lower() != payment.token.lower():
            continue
        if [str(t).lower() for t in log.get("topics", [])] != wanted:
            continue
        if _uint(log.get("data", "0x")) == auth.value:
            return True
    return False
