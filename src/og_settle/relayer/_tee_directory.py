"""Where intake learns each TEE's active key: the TEE registry on chain, or a fixed set of keys."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any, Protocol

from og_settle.tee import KeyType, RegisteredTeeKey, RsaPublicKey, TeePublicKey

__all__ = ["RegistryTeeDirectory", "StaticTeeDirectory", "TeeDirectory"]


class TeeDirectory(Protocol):
    """Where intake learns a TEE's active key (the TEE registry, or a fixed set of keys)."""

    def active_key(self, tee_id: bytes) -> RegisteredTeeKey | None:
        """The TEE's key if it is registered and active now, else None."""
        ...


class StaticTeeDirectory:
    """A fixed set of TEE keys taken as active (a gateway queuing its own TEE's records; tests)."""

    def __init__(self, keys: Iterable[TeePublicKey]) -> None:
        self._keys = {key.tee_id: RegisteredTeeKey(key.tee_id, KeyType.of(key), public_key=key) for key in keys}

    def active_key(self, tee_id: bytes) -> RegisteredTeeKey | None:
        return self._keys.get(tee_id)


class RegistryTeeDirectory:
    """Active TEE keys read from the deployed TeeRegistry with ``eth_call``: a secp256k1 TEE's ``activeSigner``, an
    RSA TEE's ``isActive`` and DER key (``teePublicKey``).

    Answers are cached per teeId, so a batch of leaves from one TEE costs one or two reads: for the life of the object
    by default (one intake run), or for ``cache_seconds`` in a long-running server, so a TEE disabled on chain stops
    being accepted within that time.

    ``w3`` is a ``Web3`` or an RPC URL. Given a URL, each process makes its own connection on first use, so a
    directory made before intake forks its worker processes is safe to share with them.
    """

    def __init__(self, w3: Any, registry: str, *, retry: Any = None, cache_seconds: float | None = None) -> None:
        from og_settle.clients import TeeRegistryClient

        self._registry = registry
        self._retry = retry
        self._client_pid = os.getpid()
        self._client: Any = None if isinstance(w3, str) else TeeRegistryClient(w3, registry, retry=retry)
        self._url = w3 if isinstance(w3, str) else None
        self._cache_seconds = cache_seconds
        self._cache: dict[bytes, tuple[float, RegisteredTeeKey | None]] = {}

    def _registry_client(self) -> Any:
        if self._url is not None and (self._client is None or self._client_pid != os.getpid()):
            from og_settle.clients import TeeRegistryClient, make_web3

            self._client = TeeRegistryClient(make_web3(self._url), self._registry, retry=self._retry)
            self._client_pid = os.getpid()
        return self._client

    def _read(self, tee_id: bytes) -> RegisteredTeeKey | None:
        client = self._registry_client()
        kind, der = client.tee_public_key(tee_id)
        if kind == "secp256k1":
            signer = client.active_signer(tee_id)
            return RegisteredTeeKey(tee_id, KeyType.SECP256K1, signer=signer) if int(signer, 16) != 0 else None
        if kind == "rsa" and client.is_active(tee_id):
            return RegisteredTeeKey(tee_id, KeyType.RSA, public_key=RsaPublicKey(der))
        return None

    def active_key(self, tee_id: bytes) -> RegisteredTeeKey | None:
        now = time.monotonic()
        cached = self._cache.get(tee_id)
        if cached is not None and (self._cache_seconds is None or now - cached[0] < self._cache_seconds):
            return cached[1]
        key = self._read(tee_id)
        self._cache[tee_id] = (now, key)
        return key
