"""Where intake learns each TEE's active key: the TEE registry on chain, or a fixed set of keys."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from og_settle.tee import KeyType, RegisteredTeeKey, TeePublicKey

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
    """Active TEE keys read from the deployed TeeRegistry with ``eth_call`` (``activeSigner``), cached per teeId for
    the life of this object (one intake run), so a batch of leaves from one TEE costs one read."""

    def __init__(self, w3: Any, registry: str, *, retry: Any = None) -> None:
        from og_settle.clients._base import ContractClient

        class _TeeRegistry(ContractClient):
            CONTRACT = "TeeRegistry"

        self._client = _TeeRegistry(w3, registry, retry=retry)
        self._cache: dict[bytes, RegisteredTeeKey | None] = {}

    def active_key(self, tee_id: bytes) -> RegisteredTeeKey | None:
        if tee_id not in self._cache:
            signer = str(self._client._read("activeSigner", tee_id))
            active = int(signer, 16) != 0
            self._cache[tee_id] = RegisteredTeeKey(tee_id, KeyType.SECP256K1, signer=signer) if active else None
        return self._cache[tee_id]
