"""Typed clients for the PaymentFacilitator (settle one or many x402 payments) and Permit2's nonce bitmap."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode

from og_settle._errors import InvalidInput
from og_settle._hex import keccak256, parse_address, parse_uint256
from og_settle._networks import PERMIT2_ADDRESS
from og_settle.clients._base import ContractClient
from og_settle.clients._errors import NamedError, decode_revert, x402_reason
from og_settle.clients._tx import ContractCall, Receipt, RetryPolicy, TxSender, call_with_retries, revert_data

if TYPE_CHECKING:
    from og_settle._eip2612 import Eip2612Permit

__all__ = ["PaymentFacilitatorClient", "PaymentOutcome", "Permit2Client", "SettledPayment", "pack_payment"]

_NONCE_BITMAP: Final = keccak256(b"nonceBitmap(address,uint256)")[:4]
_SETTLE_PACKED: Final = keccak256(b"settlePacked()")[:4]
_SETTLE_BATCH_PACKED: Final = keccak256(b"settleBatchPacked()")[:4]
# topic0 of PaymentSettled, whose data is packed (IPaymentFacilitator.sol documents the layout).
PAYMENT_SETTLED_TOPIC: Final = keccak256(b"PaymentSettled(address)")
_ZERO_WORD: Final = b"\0" * 32
_MAX_ITEM_BYTES: Final = 0xFFFF


def _uint(value: Any, name: str, size: int) -> bytes:
    number = parse_uint256(int(value), name)
    if number >> (8 * size):
        raise InvalidInput(f"{name}: {number} does not fit the packed form's {size} bytes (settle it through settle)")
    return number.to_bytes(size, "big")


def _address(value: Any, name: str) -> bytes:
    return bytes.fromhex(parse_address(str(value), name)[2:])


def pack_payment(payment: Any) -> bytes:
    """``settlePacked``'s encoding of an ``IPaymentFacilitator.Payment`` tuple (the layout is documented in
    ``IPaymentFacilitator.sol``): the scheme byte, owner, token, permitted amount (16 bytes), nonce, deadline (6
    bytes), recipient and ``validAfter`` (6 bytes), then the facilitator and amount (upto schemes only), the request
    hash (bound schemes only) and the signature.

    Raises InvalidInput for a tuple the packed form cannot carry: an amount above 2**128 - 1 or a timestamp above
    2**48 - 1 (the ABI ``settle`` takes those), an exact payment settling another amount than the permitted one, or
    a field that is not in the scheme's witness (a facilitator for exact, a request hash for an unbound scheme); the
    ABI ``settle`` reverts on the last two (``ExactAmountMismatch``, ``FieldNotInWitness``)."""
    scheme, owner, ((token, permitted), nonce, deadline), to, facilitator, valid_after, request_hash, amount, sig = (
        _payment_tuple(payment)
    )
    scheme = int(scheme)
    if not 0 <= scheme <= 3:
        raise InvalidInput(f"scheme: {scheme} is not a PaymentScheme value (0..3)")
    upto, bound = bool(scheme & 1), bool(scheme & 2)
    request = bytes(request_hash) if request_hash else _ZERO_WORD
    if len(request) != 32:
        raise InvalidInput(f"requestHash: {len(request)} bytes instead of 32")
    if not upto and int(amount) != int(permitted):
        raise InvalidInput(f"amount: an exact payment settles the permitted {permitted}, not {amount}")
    if not upto and int(_address(facilitator, "facilitator").hex(), 16) != 0:
        raise InvalidInput("facilitator: an exact payment's witness has none")
    if not bound and request != _ZERO_WORD:
        raise InvalidInput("requestHash: an unbound payment's witness has none")
    parts = [
        bytes([scheme]),
        _address(owner, "owner"),
        _address(token, "token"),
        _uint(permitted, "permitted amount", 16),
        _uint(nonce, "nonce", 32),
        _uint(deadline, "deadline", 6),
        _address(to, "to"),
        _uint(valid_after, "validAfter", 6),
    ]
    if upto:
        parts += [_address(facilitator, "facilitator"), _uint(amount, "amount", 16)]
    if bound:
        parts.append(request)
    parts.append(bytes(sig))
    return b"".join(parts)


def _packed_or_none(payment: Any) -> bytes | None:
    try:
        return pack_payment(payment)
    except InvalidInput:
        return None


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    """What one item of a ``settleBatch`` transaction did.

    Attributes:
        index: its position in the batch.
        payer: the Permit2 owner.
        nonce: the Permit2 nonce.
        settled: whether the payment was transferred.
        amount: the amount transferred (0 when not settled).
        error: the named error that stopped it, when not settled.
        reason: the x402 reason code for that error, when not settled.
    """

    index: int
    payer: str
    nonce: int
    settled: bool
    amount: int = 0
    error: NamedError | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class SettledPayment:
    """A ``PaymentSettled`` event: what a settlement that spent (payer, nonce) actually paid.

    (payer, nonce) alone does not identify a payment: the payer can sign another payment with the same Permit2
    nonce (say 1 wei to itself) and settle it first. :meth:`mismatch` compares the event with the payment one
    means.

    Attributes:
        tx_hash: the transaction that emitted it.
        block_number: its block.
        payer: the Permit2 owner.
        nonce: the Permit2 nonce.
        to: the recipient.
        token: the token.
        amount: the amount transferred.
        scheme: the ``IPaymentFacilitator.Scheme`` value.
        request_hash: the bound request hash (zero for unbound schemes).
    """

    tx_hash: bytes
    block_number: int
    payer: str
    nonce: int
    to: str
    token: str
    amount: int
    scheme: int
    request_hash: bytes

    def mismatch(self, payment: Any, *, any_amount_up_to_permitted: bool = False) -> str | None:
        """None if this settlement is ``payment`` (an ``IPaymentFacilitator.Payment`` tuple), else what differs.

        The recipient, token, amount (the tuple's settled amount; with ``any_amount_up_to_permitted``, any
        non-zero amount up to the permitted one, for an upto payment whose metered amount is unknown), scheme
        and request hash must all be equal; (payer, nonce) already are."""
        item = _payment_tuple(payment)
        (token, permitted), _nonce, _deadline = item[2]
        request_hash = bytes(item[6]) if item[6] else b"\0" * 32
        amount_ok = (0 < self.amount <= int(permitted)) if any_amount_up_to_permitted else self.amount == int(item[7])
        differences = [
            f"{name} {got} instead of {want}"
            for name, got, want, same in (
                ("to", self.to, item[3], self.to.lower() == str(item[3]).lower()),
                ("token", self.token, token, self.token.lower() == str(token).lower()),
                ("amount", self.amount, item[7], amount_ok),
                ("scheme", self.scheme, int(item[0]), self.scheme == int(item[0])),
                (
                    "requestHash",
                    "0x" + self.request_hash.hex(),
                    "0x" + request_hash.hex(),
                    self.request_hash == request_hash,
                ),
            )
            if not same
        ]
        return "; ".join(differences) or None

    @classmethod
    def from_log(cls, log: Any) -> SettledPayment | None:
        """The PaymentSettled event in a raw log (a receipt's or ``eth_getLogs``'), decoding its packed data; None
        for any other log (another event, or a log too short to be one). It does not check the log's address."""
        topics = [_raw(t) for t in log["topics"]]
        data = _raw(log["data"])
        if len(topics) != 2 or topics[0] != PAYMENT_SETTLED_TOPIC or len(data) not in (89, 121):
            return None
        scheme = data[88]
        if len(data) != (121 if scheme & 2 else 89):
            return None
        block = log["blockNumber"]
        return cls(
            tx_hash=_raw(log["transactionHash"]),
            block_number=int(block, 16) if isinstance(block, str) else int(block),
            payer=parse_address("0x" + topics[1][12:].hex(), "payer"),
            nonce=int.from_bytes(data[56:88], "big"),
            to=parse_address("0x" + data[:20].hex(), "to"),
            token=parse_address("0x" + data[20:40].hex(), "token"),
            amount=int.from_bytes(data[40:56], "big"),
            scheme=scheme,
            request_hash=data[89:121] if scheme & 2 else _ZERO_WORD,
        )

    def describe(self) -> str:
        """One line: what was paid to whom, in which transaction."""
        return f"{self.amount} of {self.token} to {self.to} in transaction 0x{self.tx_hash.hex()}"


def _raw(value: Any) -> bytes:
    """Log fields arrive as bytes (web3) or 0x-hex strings (raw JSON-RPC)."""
    return bytes.fromhex(value[2:]) if isinstance(value, str) else bytes(value)


def _payment_tuple(payment: Any) -> tuple[Any, ...]:
    return tuple(payment)


def _token_permit(permit: Eip2612Permit) -> tuple[int, int, int, bytes, bytes]:
    """``IPaymentFacilitator.TokenPermit``: (value, deadline, v, r, s)."""
    return (permit.value, permit.deadline, permit.v, permit.r, permit.s)


class PaymentFacilitatorClient(ContractClient):
    """One deployed PaymentFacilitator. ``payment`` arguments are ``IPaymentFacilitator.Payment`` tuples, as
    ``og_settle.Permit2Authorization.payment_args(signature, amount)`` returns them."""

    CONTRACT = "PaymentFacilitator"

    # -- writes ------------------------------------------------------------------------------------------------

    def settle_call(self, payment: Any) -> ContractCall:
        """``settlePacked()`` with the packed payment (:func:`pack_payment`), or the ABI ``settle(payment)`` for one
        the packed form cannot carry (the chain then names what is wrong with it): reverts with the named error if
        the payment cannot settle."""
        item = _payment_tuple(payment)
        description = f"settle(owner={item[1]}, nonce={item[2][1]})"
        packed = _packed_or_none(item)
        if packed is None:
            return self._call("settle", (item,), description)
        return ContractCall(to=self.address, data=_SETTLE_PACKED + packed, description=description)

    def settle_batch_call(self, payments: Sequence[Any]) -> ContractCall:
        """``settleBatchPacked()`` with the packed payments, each after its 2-byte length, or the ABI
        ``settleBatch(payments)`` if any payment has no packed form: each item settles or fails on its own."""
        items = [_payment_tuple(p) for p in payments]
        description = f"settleBatch({len(items)} payments)"
        packed = [_packed_or_none(item) for item in items]
        framed = [len(p).to_bytes(2, "big") + p for p in packed if p is not None and len(p) <= _MAX_ITEM_BYTES]
        if len(framed) < len(items):
            return self._call("settleBatch", (items,), description)
        return ContractCall(to=self.address, data=_SETTLE_BATCH_PACKED + b"".join(framed), description=description)

    def settle_with_permit_call(self, permit: Eip2612Permit, payment: Any) -> ContractCall:
        """``settleWithPermit(permit, payment)``: the payer's EIP-2612 permit for Permit2 first (skipped when the
        allowance is already there, tolerated when someone submitted it first), then ``settle``."""
        item = _payment_tuple(payment)
        return self._call(
            "settleWithPermit", (_token_permit(permit), item), f"settleWithPermit(owner={item[1]}, nonce={item[2][1]})"
        )

    def settle_batch_with_permits_call(
        self, payments: Sequence[Any], permits: Sequence[tuple[int, Eip2612Permit]]
    ) -> ContractCall:
        """``settleBatchWithPermits(payments, permits)``: ``permits`` pairs an item's index with its payer's
        EIP-2612 permit, applied before the items; each item then settles or fails on its own."""
        items = [_payment_tuple(p) for p in payments]
        indexed = [(index, _token_permit(permit)) for index, permit in permits]
        return self._call(
            "settleBatchWithPermits",
            (items, indexed),
            f"settleBatchWithPermits({len(items)} payments, {len(indexed)} permits)",
        )

    def send_settle(self, sender: TxSender, payment: Any, **wait: Any) -> Receipt:
        return sender.send(self.settle_call(payment), **wait)

    def send_settle_batch(self, sender: TxSender, payments: Sequence[Any], **wait: Any) -> list[PaymentOutcome]:
        receipt = sender.send(self.settle_batch_call(payments), **wait)
        return self.batch_outcomes(receipt, payments)

    # -- reads -------------------------------------------------------------------------------------------------

    def max_batch_size(self) -> int:
        return int(self._read("MAX_BATCH_SIZE"))

    def permit_digest(self, payment: Any) -> bytes:
        return bytes(self._read("permitDigest", _payment_tuple(payment)))

    def permit_digest_packed(self, payment: Any) -> bytes:
        """The digest as the contract decodes the payment's packed encoding (what ``settlePacked`` sees)."""
        return bytes(self._read("permitDigestPacked", pack_payment(payment)))

    def simulate_settle(self, payment: Any, sender: str, *, gas: int | None = None) -> NamedError | None:
        """Would ``settle(payment)`` from ``sender`` (with at most ``gas``) succeed now? None if so, else the
        named error; a failure without revert data (out of gas) raises the node's error."""
        call = self.settle_call(payment)
        tx: dict[str, Any] = {"from": sender, "to": call.to, "data": "0x" + call.data.hex()}
        if gas is not None:
            tx["gas"] = gas

        def run() -> Any:
            return self.w3.eth.call(tx)

        try:
            self._retrying(run, "PaymentFacilitator.settle (simulation)")
        except Exception as err:
            data = revert_data(err)
            if data is None:
                raise
            return decode_revert(data, self.errors)
        return None

    def batch_outcomes(self, receipt: Receipt, payments: Sequence[Any]) -> list[PaymentOutcome]:
        """Per-item outcomes of a ``settleBatch`` receipt, from its PaymentSettled / PaymentFailed events.

        Items are matched to events by (payer, nonce) and every paid field for settled ones and by index for
        failed ones; an item with neither event is reported as not settled (``unknown``)."""
        items = [_payment_tuple(p) for p in payments]
        failed_ev = self.contract.events.PaymentFailed()
        settled: dict[tuple[str, int], SettledPayment] = {}
        failed: dict[int, bytes] = {}
        for log in receipt.logs:
            if str(log["address"]).lower() != self.address.lower():
                continue
            found = SettledPayment.from_log(log)
            if found is not None:
                settled[(found.payer.lower(), found.nonce)] = found
                continue
            try:
                decoded = failed_ev.process_log(log)
            except Exception:
                continue
            failed[int(decoded["args"]["index"])] = bytes(decoded["args"]["reason"])
        outcomes = []
        for index, item in enumerate(items):
            payer, nonce = str(item[1]), int(item[2][1])
            event = settled.get((payer.lower(), nonce))
            if event is not None and index not in failed and event.mismatch(item) is None:
                outcomes.append(
                    PaymentOutcome(index=index, payer=payer, nonce=nonce, settled=True, amount=event.amount)
                )
                continue
            error = decode_revert(failed.get(index, b""), self.errors) if index in failed else NamedError("unknown")
            outcomes.append(
                PaymentOutcome(
                    index=index, payer=payer, nonce=nonce, settled=False, error=error, reason=x402_reason(error)
                )
            )
        return outcomes

    def settled_payment(
        self, payer: str, nonce: int, *, from_block: int = 0, to_block: int | str = "latest"
    ) -> SettledPayment | None:
        """The ``PaymentSettled`` event that spent (payer, nonce) through this facilitator, if any. Whether it
        is the payment one means is :meth:`SettledPayment.mismatch`'s question."""
        for found in self.settled_payments(payer, from_block=from_block, to_block=to_block):
            if found.nonce == nonce:
                return found
        return None

    def settled_payments(
        self, payer: str | None = None, *, from_block: int = 0, to_block: int | str = "latest"
    ) -> list[SettledPayment]:
        """Every ``PaymentSettled`` event of this facilitator in the block range (of ``payer`` only, if given)."""
        topics: list[str | None] = ["0x" + PAYMENT_SETTLED_TOPIC.hex()]
        if payer is not None:
            topics.append("0x" + bytes(12).hex() + parse_address(payer, "payer")[2:].lower())
        query = {"address": self.address, "topics": topics, "fromBlock": from_block, "toBlock": to_block}

        def fetch() -> Any:
            return self.w3.eth.get_logs(query)

        logs = self._retrying(fetch, "eth_getLogs PaymentSettled")
        return [found for found in map(SettledPayment.from_log, logs) if found is not None]


class Permit2Client:
    """Reads Permit2's unordered nonce bitmap (no ABI needed)."""

    def __init__(
        self,
        w3: Any,
        address: str = PERMIT2_ADDRESS,
        *,
        retry: RetryPolicy | None = None,
        on_retry: Callable[[str, int, float, BaseException], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.w3 = w3
        self.address = parse_address(address, "permit2")
        self.retry = retry or RetryPolicy()
        self._on_retry = on_retry
        self._should_stop = should_stop

    def _retrying(self, fn: Callable[[], Any], what: str) -> Any:
        return call_with_retries(fn, self.retry, what=what, on_retry=self._on_retry, should_stop=self._should_stop)

    def nonce_bitmap(self, owner: str, word_position: int) -> int:
        data = _NONCE_BITMAP + abi_encode(
            ["address", "uint256"], [parse_address(owner, "owner"), parse_uint256(word_position, "word_position")]
        )

        def call() -> Any:
            return self.w3.eth.call({"to": self.address, "data": "0x" + data.hex()})

        result = bytes(self._retrying(call, "Permit2.nonceBitmap"))
        (bitmap,) = abi_decode(["uint256"], result)
        return int(bitmap)

    def nonce_spent(self, owner: str, nonce: int) -> bool:
        """Whether Permit2 has spent (or the owner invalidated) ``nonce`` of ``owner``."""
        nonce = parse_uint256(nonce, "nonce")
        return bool(self.nonce_bitmap(owner, nonce >> 8) >> (nonce & 0xFF) & 1)
