"""Transactions signed locally with eth-account and sent over web3.py: gas, fees, nonces, receipts, retries.

The steps are separate on purpose (estimate, sign, broadcast, wait) so that the relayer can write the signed
transaction to disk between signing and broadcasting. ``TxSender.send`` chains them for one-off use.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from eth_account.signers.local import LocalAccount

from og_settle._errors import InvalidInput
from og_settle.clients._errors import ContractRevert, NamedError, decode_revert

__all__ = [
    "BroadcastOutcome",
    "ContractCall",
    "NodeUnavailable",
    "Receipt",
    "RetryPolicy",
    "SignedTx",
    "TxSender",
    "call_with_retries",
    "is_connection_error",
    "make_web3",
    "revert_data",
]

T = TypeVar("T")

# Messages nodes (geth, reth, anvil) answer eth_sendRawTransaction with, lower-cased.
_ALREADY_KNOWN: Final = ("already known", "known transaction", "already imported", "transaction already exists")
_NONCE_USED: Final = ("nonce too low", "nonce has already been used", "oldnonce", "replacement transaction underpriced")


class NodeUnavailable(ConnectionError):
    """The node did not answer within the retry policy's time budget."""


def is_connection_error(err: BaseException) -> bool:
    """True for failures to reach the node (refused, reset, timed out), which are worth retrying."""
    import requests
    from web3.exceptions import ProviderConnectionError, TimeExhausted

    if isinstance(err, ContractRevert | InvalidInput):
        return False
    if isinstance(err, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
        return True
    if isinstance(err, ProviderConnectionError | ConnectionError | TimeoutError):
        return not isinstance(err, TimeExhausted)
    if isinstance(err, requests.exceptions.HTTPError):
        response = err.response
        return response is not None and (response.status_code >= 500 or response.status_code == 429)
    return False


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter for calls to a node that may be down.

    Attributes:
        initial_delay: first wait, in seconds.
        max_delay: longest single wait.
        multiplier: growth of the wait per attempt.
        jitter: each wait is scaled by a random factor in [1 - jitter, 1 + jitter].
        max_elapsed: give up (``NodeUnavailable``) after this many seconds; None retries forever.
    """

    initial_delay: float = 0.25
    max_delay: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.25
    max_elapsed: float | None = 60.0

    def delays(self) -> Callable[[int], float]:
        def delay(attempt: int) -> float:
            base = min(self.max_delay, self.initial_delay * self.multiplier**attempt)
            return base * random.uniform(1 - self.jitter, 1 + self.jitter)

        return delay


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    what: str,
    on_retry: Callable[[str, int, float, BaseException], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> T:
    """Run ``fn``; on a connection error wait (backoff + jitter) and run it again, within the policy's budget."""
    started = time.monotonic()
    delay = policy.delays()
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as err:
            if not is_connection_error(err):
                raise
            wait = delay(attempt)
            elapsed = time.monotonic() - started
            if policy.max_elapsed is not None and elapsed + wait > policy.max_elapsed:
                raise NodeUnavailable(f"{what}: node unreachable for {elapsed:.1f}s: {err}") from err
            if should_stop is not None and should_stop():
                raise NodeUnavailable(f"{what}: node unreachable and a stop was requested: {err}") from err
            if on_retry is not None:
                on_retry(what, attempt + 1, wait, err)
            time.sleep(wait)
            attempt += 1


def make_web3(rpc_url: str, *, timeout: float = 10.0) -> Any:
    """A Web3 over HTTP whose own retries are off, so that ``call_with_retries`` decides."""
    from web3 import Web3

    if not rpc_url.startswith(("http://", "https://")):
        raise InvalidInput(f"rpc_url: expected an http(s):// URL, got {rpc_url!r}")
    provider = Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None)
    return Web3(provider)


def revert_data(err: BaseException) -> bytes | None:
    """The revert data a web3 exception carries, if it is a revert (None for other failures)."""
    from web3.exceptions import ContractLogicError, Web3RPCError

    raw: Any = None
    if isinstance(err, ContractLogicError):
        raw = err.data
        if raw is None:
            return b""
    elif isinstance(err, Web3RPCError) and isinstance(err.rpc_response, Mapping):
        error = err.rpc_response.get("error")
        if isinstance(error, Mapping) and "revert" in str(error.get("message", "")).lower():
            raw = error.get("data") or "0x"
        else:
            return None
    else:
        return None
    if isinstance(raw, Mapping):
        raw = raw.get("data", "0x")
    if isinstance(raw, bytes):
        return raw
    text = str(raw)
    try:
        return bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        return b""


@dataclass(frozen=True, slots=True)
class ContractCall:
    """A contract call to make as a transaction.

    Attributes:
        to: the contract.
        data: the calldata.
        description: for logs and errors, for example ``recordBatch(root=0x..., size=20)``.
        value: wei sent along.
    """

    to: str
    data: bytes
    description: str
    value: int = 0


@dataclass(frozen=True, slots=True)
class SignedTx:
    """A transaction signed and ready to broadcast.

    Attributes:
        raw: the signed raw transaction.
        tx_hash: its hash.
        nonce: its nonce.
        gas: its gas limit.
        sender: the signing account.
    """

    raw: bytes
    tx_hash: bytes
    nonce: int
    gas: int
    sender: str


@dataclass(frozen=True, slots=True)
class Receipt:
    """A mined transaction.

    Attributes:
        tx_hash: its hash.
        block_number: the block it was mined in.
        succeeded: False when it reverted.
        gas_used: gas it used.
        logs: its logs, as web3 returned them.
        block_hash: the hash of the block it was mined in (a reorg that moves it changes this).
    """

    tx_hash: bytes
    block_number: int
    succeeded: bool
    gas_used: int
    logs: Sequence[Any] = field(default=())
    block_hash: bytes | None = None


class BroadcastOutcome:
    """What the node said to a raw transaction."""

    SENT: Final = "sent"
    ALREADY_KNOWN: Final = "already_known"
    NONCE_USED: Final = "nonce_used"


class TxSender:
    """Signs with a local key and sends through one node.

    ``gas_margin`` multiplies the node's gas estimate; ``max_fee = base_fee_multiplier * base fee + tip``.
    """

    def __init__(
        self,
        w3: Any,
        account: LocalAccount,
        *,
        chain_id: int | None = None,
        gas_margin: float = 1.25,
        base_fee_multiplier: int = 2,
        retry: RetryPolicy | None = None,
        on_retry: Callable[[str, int, float, BaseException], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        if gas_margin < 1.0:
            raise InvalidInput(f"gas_margin: must be at least 1.0, got {gas_margin}")
        self.w3 = w3
        self.account = account
        self.gas_margin = gas_margin
        self.base_fee_multiplier = base_fee_multiplier
        self.retry = retry or RetryPolicy()
        self._on_retry = on_retry
        self._should_stop = should_stop
        self._chain_id = chain_id
        self._next_nonce: int | None = None

    @property
    def address(self) -> str:
        return str(self.account.address)

    def _rpc(self, what: str, fn: Callable[[], T]) -> T:
        return call_with_retries(fn, self.retry, what=what, on_retry=self._on_retry, should_stop=self._should_stop)

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self._rpc("eth_chainId", lambda: self.w3.eth.chain_id))
        return self._chain_id

    # -- nonces ------------------------------------------------------------------------------------------------

    def chain_nonce(self, block: str = "pending") -> int:
        """The account's transaction count at ``block`` ("latest": mined; "pending": mined + mempool)."""
        return self.transaction_count(self.address, block)

    def transaction_count(self, address: str, block: str = "latest") -> int:
        """Any account's transaction count at ``block`` (for example another relayer instance's signer)."""
        return int(self._rpc("eth_getTransactionCount", lambda: self.w3.eth.get_transaction_count(address, block)))

    def resync_nonce(self) -> int:
        """Forget the local nonce and take the chain's pending count."""
        self._next_nonce = self.chain_nonce("pending")
        return self._next_nonce

    def next_nonce(self) -> int:
        """The nonce the next transaction uses: tracked locally, never below the chain's mined count."""
        if self._next_nonce is None:
            return self.resync_nonce()
        return self._next_nonce

    def nonce_used(self, nonce: int) -> None:
        """Record that ``nonce`` went into a transaction."""
        self._next_nonce = max(self._next_nonce or 0, nonce + 1)

    # -- building ----------------------------------------------------------------------------------------------

    def _revert(self, err: BaseException, call: ContractCall) -> ContractRevert | None:
        data = revert_data(err)
        if data is None:
            return None
        return ContractRevert(decode_revert(data), context=call.description)

    def simulate(self, call: ContractCall, block: int | str = "latest") -> bytes:
        """eth_call ``call`` from this account; raises ContractRevert with the named error if it reverts."""
        tx = {"from": self.address, "to": call.to, "data": "0x" + call.data.hex(), "value": call.value}
        try:
            result = self._rpc("eth_call", lambda: self.w3.eth.call(tx, block))
        except Exception as err:
            revert = self._revert(err, call)
            if revert is None:
                raise
            raise revert from err
        return bytes(result)

    def estimate_gas(self, call: ContractCall) -> int:
        """The node's estimate times ``gas_margin``, but at most the pending block's gas limit (a transaction asking
        for more is refused outright, while the estimate already shows the call fits); raises ContractRevert if the
        call would revert."""
        tx = {"from": self.address, "to": call.to, "data": "0x" + call.data.hex(), "value": call.value}
        try:
            estimate = int(self._rpc("eth_estimateGas", lambda: self.w3.eth.estimate_gas(tx)))
        except Exception as err:
            revert = self._revert(err, call)
            if revert is None:
                raise
            raise revert from err
        gas = int(estimate * self.gas_margin)
        if gas > estimate:
            block = self._rpc("eth_getBlockByNumber", lambda: self.w3.eth.get_block("pending"))
            gas = max(estimate, min(gas, int(block["gasLimit"])))
        return gas

    def fees(self) -> tuple[int, int]:
        """(maxFeePerGas, maxPriorityFeePerGas) for a transaction sent now."""
        block = self._rpc("eth_getBlockByNumber", lambda: self.w3.eth.get_block("latest"))
        base_fee = int(block.get("baseFeePerGas", 0) or 0)
        try:
            tip = int(self._rpc("eth_maxPriorityFeePerGas", lambda: self.w3.eth.max_priority_fee))
        except Exception as err:
            if is_connection_error(err):
                raise
            tip = 10**6  # nodes without the method: 0.001 gwei, enough on an L2
        return base_fee * self.base_fee_multiplier + tip, tip

    def sign(
        self, call: ContractCall, *, nonce: int, gas: int | None = None, fees: tuple[int, int] | None = None
    ) -> SignedTx:
        """Estimate (unless ``gas`` is given), price (unless ``fees``, (maxFeePerGas, maxPriorityFeePerGas), are
        given) and sign ``call`` with ``nonce``. Nothing is sent."""
        gas_limit = gas if gas is not None else self.estimate_gas(call)
        max_fee, tip = fees if fees is not None else self.fees()
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": self.chain_id,
            "nonce": nonce,
            "to": call.to,
            "data": "0x" + call.data.hex(),
            "value": call.value,
            "gas": gas_limit,
            "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": tip,
        }
        signed = self.account.sign_transaction(tx)
        return SignedTx(
            raw=bytes(signed.raw_transaction),
            tx_hash=bytes(signed.hash),
            nonce=nonce,
            gas=gas_limit,
            sender=self.address,
        )

    # -- sending -----------------------------------------------------------------------------------------------

    def broadcast(self, raw: bytes) -> str:
        """Send ``raw``; returns a ``BroadcastOutcome``. Sending the same bytes twice is harmless."""
        from web3.exceptions import Web3RPCError

        try:
            self._rpc("eth_sendRawTransaction", lambda: self.w3.eth.send_raw_transaction(raw))
        except Web3RPCError as err:
            message = str(err).lower()
            if any(text in message for text in _ALREADY_KNOWN):
                return BroadcastOutcome.ALREADY_KNOWN
            if any(text in message for text in _NONCE_USED):
                return BroadcastOutcome.NONCE_USED
            raise
        except ValueError as err:  # older web3 error shape
            message = str(err).lower()
            if any(text in message for text in _ALREADY_KNOWN):
                return BroadcastOutcome.ALREADY_KNOWN
            if any(text in message for text in _NONCE_USED):
                return BroadcastOutcome.NONCE_USED
            raise
        return BroadcastOutcome.SENT

    def receipt(self, tx_hash: bytes) -> Receipt | None:
        """The receipt of ``tx_hash``, or None while it is not mined (or unknown)."""
        from web3.exceptions import TransactionNotFound

        def fetch() -> Any:
            try:
                return self.w3.eth.get_transaction_receipt(tx_hash)
            except TransactionNotFound:
                return None

        raw = self._rpc("eth_getTransactionReceipt", fetch)
        if raw is None:
            return None
        return Receipt(
            tx_hash=bytes(raw["transactionHash"]),
            block_number=int(raw["blockNumber"]),
            succeeded=int(raw["status"]) == 1,
            gas_used=int(raw["gasUsed"]),
            logs=tuple(raw["logs"]),
            block_hash=bytes(raw["blockHash"]) if raw.get("blockHash") is not None else None,
        )

    def block_number(self) -> int:
        return int(self._rpc("eth_blockNumber", lambda: self.w3.eth.block_number))

    def block_hash(self, number: int) -> bytes | None:
        """The hash of the canonical block ``number`` (None if the chain is not that long)."""
        from web3.exceptions import BlockNotFound

        def fetch() -> Any:
            try:
                return self.w3.eth.get_block(number)
            except BlockNotFound:
                return None

        block = self._rpc("eth_getBlockByNumber", fetch)
        return None if block is None else bytes(block["hash"])

    def client_version(self) -> str:
        """The node's ``web3_clientVersion`` (for example ``anvil/v1.7.1``)."""
        return str(self._rpc("web3_clientVersion", lambda: self.w3.client_version))

    def mined_block(self, tx_hash: bytes) -> int | None:
        """The block ``tx_hash`` was mined in, from the transaction itself (not its receipt); None if the node
        does not know it or it is still pending."""
        from web3.exceptions import TransactionNotFound

        def fetch() -> Any:
            try:
                return self.w3.eth.get_transaction(tx_hash)
            except TransactionNotFound:
                return None

        found = self._rpc("eth_getTransactionByHash", fetch)
        number = None if found is None else found.get("blockNumber")
        return None if number is None else int(number)

    def has_code(self, address: str) -> bool:
        """Whether ``address`` has code (a contract, or an EIP-7702 delegation designator)."""
        return len(bytes(self._rpc("eth_getCode", lambda: self.w3.eth.get_code(address)))) > 0

    def latest_timestamp(self) -> int:
        """The latest block's timestamp (the next block's is at least this)."""
        block = self._rpc("eth_getBlockByNumber", lambda: self.w3.eth.get_block("latest"))
        return int(block["timestamp"])

    def confirmations(self, receipt: Receipt) -> int:
        """How many blocks deep ``receipt`` is (1 = in the latest block)."""
        return self.block_number() - receipt.block_number + 1

    def wait(self, tx_hash: bytes, *, timeout: float, confirmations: int = 1, poll: float = 0.1) -> Receipt | None:
        """Wait up to ``timeout`` seconds for ``tx_hash`` to be mined ``confirmations`` deep (None on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            receipt = self.receipt(tx_hash)
            if receipt is not None and self.confirmations(receipt) >= confirmations:
                return receipt
            if time.monotonic() >= deadline:
                return None
            if self._should_stop is not None and self._should_stop():
                return None
            time.sleep(poll)

    def send(self, call: ContractCall, *, timeout: float = 60.0, confirmations: int = 1) -> Receipt:
        """Estimate, sign, broadcast and wait for ``call``; raises ContractRevert if it reverts."""
        signed = self.sign(call, nonce=self.next_nonce())
        outcome = self.broadcast(signed.raw)
        if outcome == BroadcastOutcome.NONCE_USED:
            self.resync_nonce()
            signed = self.sign(call, nonce=self.next_nonce())
            self.broadcast(signed.raw)
        self.nonce_used(signed.nonce)
        receipt = self.wait(signed.tx_hash, timeout=timeout, confirmations=confirmations)
        if receipt is None:
            raise TimeoutError(f"{call.description}: no receipt for 0x{signed.tx_hash.hex()} within {timeout}s")
        if not receipt.succeeded:
            raise ContractRevert(self.replay_revert(call, receipt), context=call.description)
        return receipt

    def replay_revert(self, call: ContractCall, receipt: Receipt) -> NamedError:
        """Why a mined transaction reverted: replays it with eth_call on the state before its block, then, for
        checks that depend on the block itself (a deadline passed in the new block), on its block."""
        for block in (receipt.block_number - 1, receipt.block_number):
            try:
                self.simulate(call, block=block)
            except ContractRevert as revert:
                return revert.error
            except Exception as err:
                if is_connection_error(err):
                    raise
        return NamedError(name="unknown")
