"""Typed clients for the PaymentFacilitator (settle one or many x402 payments) and Permit2's nonce bitmap."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode

from og_settle._addresses import PERMIT2_ADDRESS
from og_settle._hex import keccak256, parse_address, parse_uint256
from og_settle.clients._base import ContractClient
from og_settle.clients._errors import NamedError, decode_revert, x402_reason
from og_settle.clients._tx import ContractCall, Receipt, RetryPolicy, TxSender, call_with_retries, revert_data

__all__ = ["PaymentFacilitatorClient", "PaymentOutcome", "Permit2Client"]

_NONCE_BITMAP: Final = keccak256(b"nonceBitmap(address,uint256)")[:4]


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


def _payment_tuple(payment: Any) -> tuple[Any, ...]:
    return tuple(payment)


class PaymentFacilitatorClient(ContractClient):
    """One deployed PaymentFacilitator. ``payment`` arguments are ``IPaymentFacilitator.Payment`` tuples, as
    ``og_settle.Permit2Authorization.payment_args(signature, amount)`` returns them."""

    CONTRACT = "PaymentFacilitator"

    # -- writes ------------------------------------------------------------------------------------------------

    def settle_call(self, payment: Any) -> ContractCall:
        """``settle(payment)``: reverts with the named error if the payment cannot settle."""
        item = _payment_tuple(payment)
        return self._call("settle", (item,), f"settle(owner={item[1]}, nonce={item[2][1]})")

    def settle_batch_call(self, payments: Sequence[Any]) -> ContractCall:
        """``settleBatch(payments)``: each item settles or fails on its own."""
        items = [_payment_tuple(p) for p in payments]
        return self._call("settleBatch", (items,), f"settleBatch({len(items)} payments)")

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

    def simulate_settle(self, payment: Any, sender: str) -> NamedError | None:
        """Would ``settle(payment)`` from ``sender`` succeed now? None if so, else the named error."""
        call = self.settle_call(payment)

        def run() -> Any:
            return self.w3.eth.call({"from": sender, "to": call.to, "data": "0x" + call.data.hex()})

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

        Items are matched to events by (payer, nonce) for settled ones and by index for failed ones; an item
        with neither event is reported as not settled (``unknown``)."""
        items = [_payment_tuple(p) for p in payments]
        settled_ev = self.contract.events.PaymentSettled()
        failed_ev = self.contract.events.PaymentFailed()
        settled: dict[tuple[str, int], int] = {}
        failed: dict[int, bytes] = {}
        for log in receipt.logs:
            if str(log["address"]).lower() != self.address.lower():
                continue
            for event, sink in ((settled_ev, "settled"), (failed_ev, "failed")):
                try:
                    decoded = event.process_log(log)
                except Exception:
                    continue
                args = decoded["args"]
                if sink == "settled":
                    settled[(str(args["payer"]).lower(), int(args["nonce"]))] = int(args["amount"])
                else:
                    failed[int(args["index"])] = bytes(args["reason"])
                break
        outcomes = []
        for index, item in enumerate(items):
            payer, nonce = str(item[1]), int(item[2][1])
            amount = settled.get((payer.lower(), nonce))
            if amount is not None and index not in failed:
                outcomes.append(PaymentOutcome(index=index, payer=payer, nonce=nonce, settled=True, amount=amount))
                continue
            error = decode_revert(failed.get(index, b""), self.errors) if index in failed else NamedError("unknown")
            outcomes.append(
                PaymentOutcome(
                    index=index, payer=payer, nonce=nonce, settled=False, error=error, reason=x402_reason(error)
                )
            )
        return outcomes

    def settled_payment_log(
        self, payer: str, nonce: int, *, from_block: int = 0, to_block: int | str = "latest"
    ) -> dict[str, Any] | None:
        """The ``PaymentSettled`` event that spent (payer, nonce), if this facilitator settled it."""
        payer = parse_address(payer, "payer")
        event = self.contract.events.PaymentSettled

        def fetch() -> Any:
            return event.get_logs(argument_filters={"payer": payer}, from_block=from_block, to_block=to_block)

        for log in self._retrying(fetch, "eth_getLogs PaymentSettled"):
            if int(log["args"]["nonce"]) == nonce:
                return {
                    "tx_hash": bytes(log["transactionHash"]),
                    "block_number": int(log["blockNumber"]),
                    "amount": int(log["args"]["amount"]),
                    "to": str(log["args"]["to"]),
                }
        return None


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
