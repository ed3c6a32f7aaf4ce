"""The facilitator's chain reads for ``/verify``: one JSON-RPC batch request per verification.

A verification needs the latest block's timestamp, the payer's Permit2 nonce word, the payer's Permit2
allowance and its token balance. web3.py would make about ten round trips for these (six of them
``eth_chainId`` from its validation middleware); here they go out as one JSON-RPC batch over a pooled
HTTP/1.1 connection. Nothing that cannot change is read per request: the chain id is checked once at start-up.
Multicall3 is not assumed (the replica has none); JSON-RPC batches work on every node we target.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import httpx
from eth_abi.abi import encode

from og_settle._hex import keccak256

__all__ = ["AsyncRpcBatchReader", "CallFailed", "ChainSnapshot", "RpcBatchReader", "RpcError"]

_NONCE_BITMAP: Final = keccak256(b"nonceBitmap(address,uint256)")[:4]
_ALLOWANCE: Final = keccak256(b"allowance(address,address)")[:4]
_BALANCE_OF: Final = keccak256(b"balanceOf(address)")[:4]
_NONCES: Final = keccak256(b"nonces(address)")[:4]
_DOMAIN_SEPARATOR: Final = keccak256(b"DOMAIN_SEPARATOR()")[:4]


class RpcError(ConnectionError):
    """The node did not answer, or answered a batch with an error for one of its calls."""


@dataclass(frozen=True, slots=True)
class CallFailed:
    """In a ``tolerant`` batch, the place of a call the node answered with an error (an ``eth_call`` that
    reverted, for example).

    Attributes:
        error: the JSON-RPC error object.
    """

    error: Any


@dataclass(frozen=True, slots=True)
class ChainSnapshot:
    """What :func:`og_settle._x402_verify.verify_payment` reads, fetched at once (a ``ChainReader`` over the values).

    Attributes:
        timestamp: the latest block's timestamp.
        owner: the payer the values are for.
        token: the token the values are for.
        word_position: the Permit2 nonce word read.
        bitmap: that word.
        permit2_allowance: the payer's token allowance to Permit2.
        balance: the payer's token balance.
        token_nonce: the token's EIP-2612 ``nonces(owner)``, when read for a permit (``None`` if not read, or
            the token does not answer it).
        domain_separator: the token's ``DOMAIN_SEPARATOR()``, likewise.
    """

    timestamp: int
    owner: str
    token: str
    word_position: int
    bitmap: int
    permit2_allowance: int
    balance: int
    token_nonce: int | None = None
    domain_separator: bytes | None = None

    def nonce_bitmap(self, owner: str, word_position: int) -> int:
        self._check(owner, word_position=word_position)
        return self.bitmap

    def balance_of(self, token: str, owner: str) -> int:
        self._check(owner, token=token)
        return self.balance

    def allowance(self, token: str, owner: str, spender: str) -> int:
        self._check(owner, token=token)
        return self.permit2_allowance

    def _check(self, owner: str, *, token: str | None = None, word_position: int | None = None) -> None:
        if (
            owner != self.owner
            or (token is not None and token != self.token)
            or (word_position is not None and word_position != self.word_position)
        ):
            raise LookupError(f"snapshot for {self.owner}/{self.token}/{self.word_position} asked about another read")


def _uint(result: Any) -> int:
    """An eth_call result as a uint256; an empty result (no code at the address) reads as 0."""
    text = str(result).removeprefix("0x")
    return int(text[:64], 16) if text else 0


_NO_DELAY: Final = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def _snapshot_calls(permit2: str, owner: str, token: str, word: int, permit: bool) -> list[tuple[str, list[Any]]]:
    def call(to: str, data: bytes) -> tuple[str, list[Any]]:
        return "eth_call", [{"to": to, "data": "0x" + data.hex()}, "latest"]

    calls = [
        ("eth_getBlockByNumber", ["latest", False]),
        call(permit2, _NONCE_BITMAP + encode(["address", "uint256"], [owner, word])),
        call(token, _ALLOWANCE + encode(["address", "address"], [owner, permit2])),
        call(token, _BALANCE_OF + encode(["address"], [owner])),
    ]
    if permit:  # an EIP-2612 permit rides along: the token's nonce for the payer and its domain separator
        calls += [call(token, _NONCES + encode(["address"], [owner])), call(token, _DOMAIN_SEPARATOR)]
    return calls


def _word_or_none(result: Any) -> bytes | None:
    """An optional read's one-word answer (``None``: the call reverted, or answered less than a word)."""
    text = "" if isinstance(result, CallFailed) else str(result).removeprefix("0x")
    return bytes.fromhex(text[:64]) if len(text) >= 64 else None


def _snapshot(rpc_url: str, results: list[Any], owner: str, token: str, word: int) -> ChainSnapshot:
    block, bitmap, allowance, balance = results[:4]
    if not isinstance(block, dict) or "timestamp" not in block:
        raise RpcError(f"node {rpc_url}: eth_getBlockByNumber returned no block")
    failed = [r for r in results[1:4] if isinstance(r, CallFailed)]  # only the permit reads may fail
    if failed:
        raise RpcError(f"node {rpc_url}: eth_call failed: {failed[0]}")
    nonce, separator = (_word_or_none(r) for r in results[4:6]) if len(results) == 6 else (None, None)
    return ChainSnapshot(
        timestamp=int(str(block["timestamp"]), 16),
        owner=owner,
        token=token,
        word_position=word,
        bitmap=_uint(bitmap),
        permit2_allowance=_uint(allowance),
        balance=_uint(balance),
        token_nonce=None if nonce is None else int.from_bytes(nonce, "big"),
        domain_separator=separator,
    )


class _Batches:
    """JSON-RPC batch framing shared by the blocking and the asyncio reader."""

    def __init__(self, rpc_url: str, permit2: str) -> None:
        self.rpc_url = rpc_url
        self.permit2 = permit2
        self._ids = itertools.count(1)

    def _frame(self, calls: Sequence[tuple[str, list[Any]]]) -> tuple[list[int], list[dict[str, Any]]]:
        ids = [next(self._ids) for _ in calls]
        body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in zip(ids, calls, strict=True)]
        return ids, body

    def _results(
        self, ids: list[int], calls: Sequence[tuple[str, list[Any]]], answers: Any, tolerant: bool = False
    ) -> list[Any]:
        if not isinstance(answers, list):
            raise RpcError(f"node {self.rpc_url}: a batch was answered with {type(answers).__name__}")
        by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
        results: list[Any] = []
        for i, (method, _) in zip(ids, calls, strict=True):
            answer = by_id.get(i)
            if answer is not None and "error" in answer and tolerant:
                results.append(CallFailed(answer["error"]))
                continue
            if answer is None or "error" in answer:
                error = None if answer is None else answer["error"]
                raise RpcError(f"node {self.rpc_url}: {method} failed: {error}")
            results.append(answer.get("result"))
        return results


class RpcBatchReader(_Batches):
    """Sends JSON-RPC batches to one node over a pooled, thread-safe ``httpx.Client``."""

    def __init__(self, rpc_url: str, permit2: str, *, timeout: float = 10.0, max_connections: int = 64) -> None:
        super().__init__(rpc_url, permit2)
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        # httpcore writes a request's head and body in two sends: without TCP_NODELAY, Nagle holds the body
        # back until the head is acknowledged, which costs milliseconds per batch on loopback.
        self._http = httpx.Client(
            timeout=timeout, transport=httpx.HTTPTransport(limits=limits, socket_options=_NO_DELAY)
        )

    def close(self) -> None:
        self._http.close()

    def batch(self, calls: Sequence[tuple[str, list[Any]]], *, tolerant: bool = False) -> list[Any]:
        """The results of ``(method, params)`` calls, in order; RpcError if the node fails or any call errs
        (with ``tolerant``, a call answered with an error gives :class:`CallFailed` in its place instead)."""
        ids, body = self._frame(calls)
        try:
            response = self._http.post(self.rpc_url, json=body)
            response.raise_for_status()
            answers = response.json()
        except (httpx.HTTPError, ValueError) as err:
            raise RpcError(f"node {self.rpc_url}: {type(err).__name__}: {err}") from err
        return self._results(ids, calls, answers, tolerant)

    def snapshot(self, owner: str, token: str, nonce: int, *, permit: bool = False) -> ChainSnapshot:
        """The latest timestamp and the payer's nonce word, Permit2 allowance and balance, in one round trip;
        with ``permit``, also the token's EIP-2612 nonce for the payer and its domain separator."""
        word = nonce >> 8
        results = self.batch(_snapshot_calls(self.permit2, owner, token, word, permit), tolerant=permit)
        return _snapshot(self.rpc_url, results, owner, token, word)

    def chain_id(self) -> int:
        (value,) = self.batch([("eth_chainId", [])])
        return int(str(value), 16)

    def code_size(self, address: str) -> int:
        (code,) = self.batch([("eth_getCode", [address, "latest"])])
        return len(str(code).removeprefix("0x")) // 2


class AsyncRpcBatchReader(_Batches):
    """:meth:`RpcBatchReader.snapshot` for an event loop (an aiohttp session, whose client stays cheap under
    hundreds of concurrent requests): ``/verify`` waits on the node without holding a worker thread. Create and
    close it inside the loop that uses it."""

    def __init__(self, rpc_url: str, permit2: str, *, timeout: float = 10.0, max_connections: int = 64) -> None:
        import aiohttp

        super().__init__(rpc_url, permit2)
        self._errors = (aiohttp.ClientError, TimeoutError, ValueError)
        connector = aiohttp.TCPConnector(limit=max_connections, keepalive_timeout=30)
        self._http = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout))

    async def aclose(self) -> None:
        await self._http.close()

    async def batch(self, calls: Sequence[tuple[str, list[Any]]], *, tolerant: bool = False) -> list[Any]:
        """:meth:`RpcBatchReader.batch` for an event loop."""
        ids, body = self._frame(calls)
        try:
            async with self._http.post(self.rpc_url, json=body) as response:
                response.raise_for_status()
                answers = await response.json(content_type=None)
        except self._errors as err:
            raise RpcError(f"node {self.rpc_url}: {type(err).__name__}: {err}") from err
        return self._results(ids, calls, answers, tolerant)

    async def snapshot(self, owner: str, token: str, nonce: int, *, permit: bool = False) -> ChainSnapshot:
        word = nonce >> 8
        results = await self.batch(_snapshot_calls(self.permit2, owner, token, word, permit), tolerant=permit)
        return _snapshot(self.rpc_url, results, owner, token, word)
