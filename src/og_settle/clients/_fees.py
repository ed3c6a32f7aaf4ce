"""Replacing a stuck EIP-1559 transaction: same nonce, same call and gas, higher fees.

One home for the fee rules the relayer (``og_settle.relayer._sender``) and the x402 facilitator's settlement
engine (``og_settle.facilitator._engine``) share:

- a transaction pays at most ``max_fee_per_gas`` (maxFeePerGas), first send or replacement;
- a replacement raises both EIP-1559 fees by ``factor`` (at least :data:`MIN_FEE_BUMP`, +10%, what geth-based
  nodes such as Base's op-geth require of a replacement), and never pays less than a new transaction would;
- where the cap leaves no room for a +10% replacement, there is none (:meth:`FeeBump.replace` answers None).

Whichever version of one nonce is mined is the only one that can be: the others share its nonce.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

from og_settle._errors import InvalidInput, InvariantViolation

__all__ = ["MIN_FEE_BUMP", "UNDERPRICED", "FeeBump", "broadcast_priced", "tx_fees"]

# geth (and op-geth, Base's node) refuses a replacement that does not raise both fees by at least 10%.
MIN_FEE_BUMP: Final = 1.10
# What nodes answer a transaction priced below the current base fee (geth, op-geth, reth, anvil), lower-cased.
_UNDERPRICED_TEXTS: Final = (
    "less than block base fee",
    "fee cap less than",
    "transaction underpriced",
    "feecap too low",
)
UNDERPRICED: Final = "underpriced"


@dataclass(frozen=True, slots=True)
class FeeBump:
    """How settlement transactions are priced and replaced.

    Attributes:
        factor: what both EIP-1559 fees of a replacement are multiplied by (between 1.10 and 10).
        max_fee_per_gas: the cap on maxFeePerGas, in wei; no transaction, first or replacement, pays more.
    """

    factor: float = 1.125
    max_fee_per_gas: int = 100 * 10**9

    def __post_init__(self) -> None:
        if not MIN_FEE_BUMP <= self.factor <= 10:
            raise InvalidInput(
                f"fee_bump: must be between {MIN_FEE_BUMP} (nodes refuse smaller replacements) and 10, "
                f"got {self.factor}"
            )
        if self.max_fee_per_gas < 1:
            raise InvalidInput(f"max_fee_per_gas: must be positive, got {self.max_fee_per_gas}")

    def cap(self, fees: tuple[int, int]) -> tuple[int, int]:
        """``(maxFeePerGas, maxPriorityFeePerGas)`` for a new transaction, held to the cap."""
        max_fee = min(fees[0], self.max_fee_per_gas)
        return max_fee, min(fees[1], max_fee)

    def bumped(self, old: tuple[int, int], now: tuple[int, int]) -> tuple[int, int] | None:
        """The fees of a replacement for a transaction that pays ``old``, when a new one would pay ``now``; None
        when the cap leaves no room for one nodes would take (+10% on both fees)."""
        old_max, old_tip = old
        tip = max(math.ceil(old_tip * self.factor), now[1])
        max_fee = min(max(math.ceil(old_max * self.factor), now[0], tip), self.max_fee_per_gas)
        tip = min(tip, max_fee)
        if max_fee < math.ceil(old_max * MIN_FEE_BUMP) or tip < math.ceil(old_tip * MIN_FEE_BUMP):
            return None
        return max_fee, tip

    def replace(self, account: Any, raw: bytes, now: tuple[int, int]) -> tuple[bytes, bytes] | None:
        """``raw`` (signed by ``account``) signed again with the same nonce, call and gas at :meth:`bumped`
        fees: ``(raw, hash)`` of the replacement, or None at the cap."""
        fields = _unsigned(raw)
        fees = self.bumped((int(fields["maxFeePerGas"]), int(fields["maxPriorityFeePerGas"])), now)
        if fees is None:
            return None
        fields.update(maxFeePerGas=fees[0], maxPriorityFeePerGas=fees[1])
        signed = account.sign_transaction(fields)
        return bytes(signed.raw_transaction), bytes(signed.hash)


def broadcast_priced(sender: Any, raw: bytes) -> str:
    """``sender.broadcast(raw)`` (a ``TxSender``), except that a node refusing it for its price (below the base
    fee) answers :data:`UNDERPRICED` instead of raising: the transaction is replaced with higher fees later."""
    from web3.exceptions import Web3RPCError

    try:
        return str(sender.broadcast(raw))
    except (Web3RPCError, ValueError) as err:
        if any(text in str(err).lower() for text in _UNDERPRICED_TEXTS):
            return UNDERPRICED
        raise


def tx_fees(raw: bytes) -> tuple[int, int]:
    """``(maxFeePerGas, maxPriorityFeePerGas)`` of a signed EIP-1559 transaction."""
    fields = _unsigned(raw)
    return int(fields["maxFeePerGas"]), int(fields["maxPriorityFeePerGas"])


def _unsigned(raw: bytes) -> dict[str, Any]:
    """The fields of a signed EIP-1559 transaction, ready to be signed again (signature removed)."""
    from eth_account.typed_transactions.typed_transaction import TypedTransaction
    from hexbytes import HexBytes

    fields = dict(TypedTransaction.from_bytes(HexBytes(raw)).as_dict())
    if int(fields.get("type", 0)) != 2:
        raise InvariantViolation(f"expected an EIP-1559 transaction, got type {fields.get('type')}")
    for name in ("v", "r", "s"):
        fields.pop(name, None)
    return fields
