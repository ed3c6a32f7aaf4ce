"""Settling stock x402 payloads: payments whose Permit2 spender is a canonical x402 proxy.

Every stock x402 client signs its Permit2 authorisation for the canonical exact or upto proxy, so such a payment
can only be settled by calling that proxy. This module does it three ways:

- one exact payment straight through the exact proxy (:func:`exact_proxy_call`; anyone may call it);
- many payments in one transaction through og-settle's ``StockPaymentBatcher``
  (:class:`StockPaymentBatcherClient`), each payment isolated and gas-capped;
- every upto payment through the batcher, even a single one: stock upto payloads name the account allowed to
  settle them (``witness.facilitator``), and for og-settle that is the batcher contract, the
  ``facilitatorAddress`` announced in ``/supported``.

Use from a facilitator's ``/settle`` (one payment) or its batching window (many)::

    from og_settle.clients import StockPaymentBatcherClient, StockPayment, TxSender

    batcher = StockPaymentBatcherClient(w3, deployment.stock_payment_batcher)
    payments = [StockPayment.from_x402(payload, requirements) for payload, requirements in window]
    for group in group_batches(payments):                    # same scheme and token, at most MAX_ITEMS each
        call = batcher.settle_call(group, chain_id=chain_id)  # raises InvalidInput for a payload it cannot take
        signed = sender.sign(call, nonce=sender.next_nonce(), gas=batcher.gas_limit(len(group)))
        ...broadcast, wait for the receipt...
        for outcome in batcher.outcomes(receipt, group):      # one per payment, in order
            outcome.settled, outcome.amount, outcome.reason    # reason: an x402 reason code when not settled

The settling account needs the batcher's ``SETTLER_ROLE`` (``og-settle deploy --relayer`` grants it). A payment
whose charge is zero (a zero upto settlement) must not be sent at all: x402 answers it ``success: true`` with an
empty transaction and the nonce stays unused; :meth:`StockPayment.from_x402` refuses it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from eth_abi.abi import encode as abi_encode

from og_settle._errors import InvalidInput
from og_settle._hex import keccak256, parse_address
from og_settle._networks import X402_EXACT_PERMIT2_PROXY, X402_UPTO_PERMIT2_PROXY
from og_settle.clients._base import ContractClient
from og_settle.clients._errors import NamedError, decode_revert, error_table, x402_reason
from og_settle.clients._facilitator import PaymentOutcome
from og_settle.clients._tx import ContractCall, Receipt

if TYPE_CHECKING:
    from og_settle._eip2612 import Eip2612Permit
    from og_settle._x402 import PaymentPayload, PaymentRequirements

__all__ = [
    "DEFAULT_ITEM_GAS",
    "MAX_ITEMS",
    "StockPayment",
    "StockPaymentBatcherClient",
    "encode_batch",
    "exact_proxy_call",
    "group_batches",
    "proxy_permit_2612",
    "stock_reason",
]

MAX_ITEMS: Final = 256
# Enough for a first-time payer with an ERC-1271 / EIP-7702 wallet doing a normal signature check (an EOA payment
# uses about 60k inside the proxy); a wallet burning more than this fails alone with ItemOutOfGas.
DEFAULT_ITEM_GAS: Final = 200_000
# Per batch: the transaction, role and guard checks, the recipients' balance reads, the summary event.
_BATCH_OVERHEAD_GAS: Final = 60_000
_PER_RECIPIENT_GAS: Final = 12_000
_GAS_RESERVE: Final = 1_000  # StockPaymentBatcher._GAS_RESERVE
_SCHEMES: Final = {"exact": 0, "upto": 1}
_PROXIES: Final = {"exact": X402_EXACT_PERMIT2_PROXY, "upto": X402_UPTO_PERMIT2_PROXY}
_EXACT_SETTLE: Final = keccak256(b"settle(((address,uint256),uint256,uint256),address,(address,uint256),bytes)")[:4]
_PERMIT_2612: Final = "(uint256,uint256,bytes32,bytes32,uint8)"  # IX402Permit2Proxy.EIP2612Permit
_EXACT_SETTLE_WITH_PERMIT: Final = keccak256(
    f"settleWithPermit({_PERMIT_2612},((address,uint256),uint256,uint256),address,(address,uint256),bytes)".encode()
)[:4]

# The canonical proxies' own errors (IX402Permit2Proxy.sol) and what x402 calls them. Permit2's and the token's
# errors (InvalidNonce(), SignatureExpired(uint256), InvalidSigner(), ERC20InsufficientBalance, ...) are named by
# og_settle.clients.x402_reason.
_PROXY_ERRORS: Final[Mapping[str, str]] = {
    "InvalidAmount": "permit2_invalid_amount",
    "InvalidOwner": "invalid_payload",
    "InvalidDestination": "invalid_permit2_recipient_mismatch",
    "PaymentTooEarly": "permit2_not_yet_valid",
    "Permit2612AmountMismatch": "permit2_amount_mismatch",
    "AmountExceedsPermitted": "invalid_upto_evm_payload_settlement_exceeds_amount",
    "UnauthorizedFacilitator": "upto_facilitator_mismatch",
}
# Batcher reasons, and Permit2's string revert when the token's transferFrom failed (balance or allowance).
_BATCHER_REASONS: Final[Mapping[str, str]] = {
    "ItemOutOfGas": "permit2_simulation_failed",
    "TokenWithoutCode": "permit2_token_mismatch",
    "RecipientDeltaMismatch": "permit2_token_mismatch",
    "WrongChain": "invalid_network",
}
_PROXY_ABI: Final = [{"type": "error", "name": name, "inputs": []} for name in _PROXY_ERRORS]


def stock_reason(error: NamedError) -> str:
    """The x402 reason code for a stock payment that failed with ``error`` (from the proxy, Permit2, the token or
    the batcher)."""
    if error.name in _PROXY_ERRORS and not error.args:
        return _PROXY_ERRORS[error.name]
    if error.name in _BATCHER_REASONS:
        return _BATCHER_REASONS[error.name]
    return x402_reason(error)


@dataclass(frozen=True, slots=True)
class StockPayment:
    """One stock x402 payment to settle, checked and reduced to what goes on chain.

    Attributes:
        scheme: ``"exact"`` or ``"upto"``.
        owner: the payer (``permit2Authorization.from``).
        token: the permitted token.
        permitted: the permitted (signed) amount.
        charge: the amount to move: the permitted amount for exact, ``paymentRequirements.amount`` for upto.
        nonce: the Permit2 nonce.
        deadline: the Permit2 deadline.
        to: ``witness.to`` (the ``payTo``).
        valid_after: ``witness.validAfter``.
        facilitator: ``witness.facilitator`` (upto), else None.
        signature: the payer's signature.
        chain_id: the chain of ``paymentRequirements.network``.
    """

    scheme: str
    owner: str
    token: str
    permitted: int
    charge: int
    nonce: int
    deadline: int
    to: str
    valid_after: int
    facilitator: str | None
    signature: bytes
    chain_id: int

    @property
    def proxy(self) -> str:
        """The canonical proxy the payload was signed for."""
        return _PROXIES[self.scheme]

    @classmethod
    def from_x402(cls, payload: PaymentPayload, requirements: PaymentRequirements) -> StockPayment:
        """The payment a verified x402 v2 ``/settle`` request asks for.

        For upto, ``requirements.amount`` is what to charge (x402 v2 settle semantics), at most the permitted
        amount. The payload must be a stock one: its spender is the canonical proxy for the scheme.

        Raises:
            InvalidInput: not a stock payload for this scheme, a zero or excessive charge, or a payload too big
                for the batch encoding; the message names the field.
        """
        scheme = requirements.scheme
        if scheme not in _SCHEMES:
            raise InvalidInput(f"scheme: stock payloads are 'exact' or 'upto', got {scheme!r}")
        auth = payload.payload.authorization
        if auth.spender.lower() != _PROXIES[scheme].lower():
            raise InvalidInput(
                f"permit2Authorization.spender: {auth.spender} is not the canonical x402 {scheme} proxy "
                f"{_PROXIES[scheme]}"
            )
        if (auth.facilitator is None) != (scheme == "exact") or auth.request_hash is not None:
            raise InvalidInput(f"permit2Authorization.witness: not a stock x402 {scheme} witness")
        charge = auth.amount if scheme == "exact" else requirements.amount
        if charge == 0:
            raise InvalidInput("amount: a zero charge settles without a transaction; do not send it")
        if charge > auth.amount:
            raise InvalidInput(f"amount: the charge {charge} exceeds the permitted {auth.amount}")
        if len(payload.payload.signature) > 0xFFFF:
            raise InvalidInput(f"signature: {len(payload.payload.signature)} bytes, at most 65535 fit a batch")
        return cls(
            scheme=scheme,
            owner=auth.owner,
            token=auth.token,
            permitted=auth.amount,
            charge=charge,
            nonce=auth.nonce,
            deadline=auth.deadline,
            to=auth.to,
            valid_after=auth.valid_after,
            facilitator=auth.facilitator,
            signature=bytes(payload.payload.signature),
            chain_id=requirements.chain_id,
        )


def _varuint(value: int) -> bytes:
    raw = value.to_bytes(32, "big").lstrip(b"\0")
    return bytes([len(raw)]) + raw


def group_batches(payments: Sequence[StockPayment], max_items: int = MAX_ITEMS) -> list[list[StockPayment]]:
    """Split payments into batches the batcher accepts: one scheme, token and chain each, at most ``max_items``
    items and 255 distinct recipients. Order is kept within each batch."""
    groups: dict[tuple[str, str, int], list[list[StockPayment]]] = {}
    for payment in payments:
        key = (payment.scheme, payment.token.lower(), payment.chain_id)
        batches = groups.setdefault(key, [[]])
        current = batches[-1]
        recipients = {p.to.lower() for p in current} | {payment.to.lower()}
        if len(current) >= max_items or len(recipients) > 255:
            current = []
            batches.append(current)
        current.append(payment)
    return [batch for batches in groups.values() for batch in batches if batch]


def encode_batch(payments: Sequence[StockPayment], *, batcher: str, item_gas: int = DEFAULT_ITEM_GAS) -> bytes:
    """The packed ``batch`` argument of ``StockPaymentBatcher.settle`` (layout in ``IStockPaymentBatcher.sol``).

    Raises:
        InvalidInput: an empty or oversized batch, mixed schemes, tokens or chains, more than 255 recipients, or
            an upto payment whose facilitator is not ``batcher``.
    """
    if not payments:
        raise InvalidInput("batch: no payment to settle")
    if len(payments) > MAX_ITEMS:
        raise InvalidInput(f"batch: {len(payments)} payments, at most {MAX_ITEMS} per batch (see group_batches)")
    if not 0 < item_gas < 2**32:
        raise InvalidInput(f"item_gas: expected 1..{2**32 - 1}, got {item_gas}")
    first = payments[0]
    batcher = parse_address(batcher, "batcher")
    recipients: dict[str, int] = {}
    items = bytearray()
    for index, payment in enumerate(payments):
        if (payment.scheme, payment.token.lower(), payment.chain_id) != (
            first.scheme,
            first.token.lower(),
            first.chain_id,
        ):
            raise InvalidInput(f"batch[{index}]: scheme, token and network must match the batch's first payment")
        if payment.scheme == "upto" and (payment.facilitator or "").lower() != batcher.lower():
            raise InvalidInput(
                f"batch[{index}]: witness.facilitator {payment.facilitator} is not the batcher {batcher}; "
                "only it may settle this upto payment here"
            )
        slot = recipients.setdefault(payment.to.lower(), len(recipients))
        if slot > 254:
            raise InvalidInput("batch: more than 255 distinct recipients (see group_batches)")
        items += bytes.fromhex(payment.owner[2:]) + bytes([slot]) + _varuint(payment.permitted)
        if payment.scheme == "upto":
            items += _varuint(payment.charge)
        items += _varuint(payment.nonce) + _varuint(payment.deadline) + _varuint(payment.valid_after)
        items += len(payment.signature).to_bytes(2, "big") + payment.signature
    header = (
        bytes([_SCHEMES[first.scheme]])
        + first.chain_id.to_bytes(8, "big")
        + item_gas.to_bytes(4, "big")
        + bytes.fromhex(first.token[2:])
        + bytes([len(recipients)])
        + b"".join(bytes.fromhex(address[2:]) for address in recipients)
    )
    return header + bytes(items)


def proxy_permit_2612(permit: Eip2612Permit) -> tuple[int, int, bytes, bytes, int]:
    """The x402 proxies' ``EIP2612Permit`` struct: (value, deadline, r, s, v)."""
    return (permit.value, permit.deadline, permit.r, permit.s, permit.v)


def exact_proxy_call(payment: StockPayment, permit: Eip2612Permit | None = None) -> ContractCall:
    """One exact payment straight through the canonical exact proxy (``settle(permit, owner, witness, sig)``),
    or with the payer's EIP-2612 ``permit`` for Permit2 first (``settleWithPermit``; the proxy requires its value
    to equal the permitted amount and ignores a permit that fails, e.g. one already submitted).

    Anyone may send it; it reverts with the proxy's, Permit2's or the token's named error. The proxy checks neither
    that the token has code nor the recipient's balance: settle only tokens known to behave (OPG)."""
    if payment.scheme != "exact":
        raise InvalidInput("scheme: only exact payments go straight to the proxy; upto goes through the batcher")
    types = ["((address,uint256),uint256,uint256)", "address", "(address,uint256)", "bytes"]
    values: list[Any] = [
        ((payment.token, payment.permitted), payment.nonce, payment.deadline),
        payment.owner,
        (payment.to, payment.valid_after),
        payment.signature,
    ]
    selector, name = _EXACT_SETTLE, "settle"
    if permit is not None:
        types, values = [_PERMIT_2612, *types], [proxy_permit_2612(permit), *values]
        selector, name = _EXACT_SETTLE_WITH_PERMIT, "settleWithPermit"
    return ContractCall(
        to=X402_EXACT_PERMIT2_PROXY,
        data=selector + abi_encode(types, values),
        description=f"x402 exact proxy {name}(owner={payment.owner}, nonce={payment.nonce})",
    )


class StockPaymentBatcherClient(ContractClient):
    """One deployed ``StockPaymentBatcher``: builds its ``settle`` calls and reads per-payment outcomes."""

    CONTRACT = "StockPaymentBatcher"

    def __init__(self, w3: Any, address: str, **kwargs: Any) -> None:
        super().__init__(w3, address, **kwargs)
        self.errors = {**error_table([self.abi, _PROXY_ABI])}

    def settle_call(
        self,
        payments: Sequence[StockPayment],
        *,
        chain_id: int | None = None,
        item_gas: int = DEFAULT_ITEM_GAS,
        permits: Sequence[Eip2612Permit] = (),
    ) -> ContractCall:
        """``settle(batch)`` for one batch (one scheme and token; see :func:`group_batches`), or
        ``settleWithPermits(batch, permits)`` when payers' EIP-2612 ``permits`` (for Permit2, of the batch's token)
        are to be applied first.

        ``chain_id``, when given, must be the payments' chain (the batcher refuses a batch for another chain).

        Raises:
            InvalidInput: see :func:`encode_batch`, or a payment for another chain than ``chain_id``.
        """
        if chain_id is not None and payments and payments[0].chain_id != chain_id:
            raise InvalidInput(f"network: the payments are for eip155:{payments[0].chain_id}, this chain is {chain_id}")
        batch = encode_batch(payments, batcher=self.address, item_gas=item_gas)
        scheme = payments[0].scheme
        if permits:
            if any(p.token != payments[0].token for p in permits):
                raise InvalidInput(f"permits: every permit must be for the batch's token {payments[0].token}")
            owners = [(p.owner, p.value, p.deadline, p.v, p.r, p.s) for p in permits]
            return self._call(
                "settleWithPermits",
                (batch, owners),
                f"StockPaymentBatcher.settleWithPermits({len(payments)} {scheme} payments, {len(owners)} permits)",
            )
        return self._call("settle", (batch,), f"StockPaymentBatcher.settle({len(payments)} {scheme} payments)")

    @staticmethod
    def gas_limit(count: int, *, item_gas: int = DEFAULT_ITEM_GAS, recipients: int = 1) -> int:
        """A gas limit with which no item can be short of its cap, whatever the payers' wallets do: every item
        may use its whole cap plus the 1/64 the batcher keeps back. Unused gas is not charged."""
        per_item = item_gas + item_gas // 63 + _GAS_RESERVE + 2_000
        return _BATCH_OVERHEAD_GAS + recipients * _PER_RECIPIENT_GAS + count * per_item

    def outcomes(self, receipt: Receipt, payments: Sequence[StockPayment]) -> list[PaymentOutcome]:
        """Per-payment outcomes of a mined ``settle`` receipt, in batch order.

        A payment settled unless a ``PaymentFailed`` event names its index. A reverted transaction settled
        nothing: every payment is reported with ``transaction_failed`` (retry them, or look at
        ``TxSender.replay_revert`` for the batch-level error such as InsufficientGasForItem)."""
        if not receipt.succeeded:
            reverted = NamedError(name="BatchReverted")
            return [
                PaymentOutcome(
                    index=i, payer=p.owner, nonce=p.nonce, settled=False, error=reverted, reason="transaction_failed"
                )
                for i, p in enumerate(payments)
            ]
        failed = self.indexed_failures(receipt, "PaymentFailed")
        outcomes = []
        for index, payment in enumerate(payments):
            if index in failed:
                error = decode_revert(failed[index], self.errors)
                outcomes.append(
                    PaymentOutcome(
                        index=index,
                        payer=payment.owner,
                        nonce=payment.nonce,
                        settled=False,
                        error=error,
                        reason=stock_reason(error),
                    )
                )
            else:
                outcomes.append(
                    PaymentOutcome(
                        index=index, payer=payment.owner, nonce=payment.nonce, settled=True, amount=payment.charge
                    )
                )
        return outcomes

    def settler_role(self) -> bytes:
        return bytes(self._read("SETTLER_ROLE"))

    def is_settler(self, account: str) -> bool:
        """Whether ``account`` may call ``settle``."""
        return bool(self._read("hasRole", self.settler_role(), parse_address(account, "account")))
