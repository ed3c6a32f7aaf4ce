"""Balance set-up for tokens on the fork (replica or real Base Sepolia), like Foundry's ``deal``."""

from __future__ import annotations

from typing import Any

import sha3

# Layouts tried in order: plain Solidity mappings at slots 0..9, then OpenZeppelin v5's upgradeable
# ERC20 namespaced storage (ERC-7201 "openzeppelin.storage.ERC20").
_OZ_ERC20_NAMESPACE = int("52c63247e1f47db19d5ce0460030c497f067ca4cebf71ba98eeadabe20bace00", 16)
_CANDIDATE_SLOTS = (*range(10), _OZ_ERC20_NAMESPACE)


def _balance_slot(holder: str, mapping_slot: int) -> int:
    data = bytes.fromhex(holder[2:]).rjust(32, b"\0") + mapping_slot.to_bytes(32, "big")
    return int.from_bytes(sha3.keccak_256(data).digest(), "big")


def deal_opg(provider: Any, token: Any, holder: str, amount: int) -> None:
    """Set ``holder``'s balance by finding the balances mapping's storage slot (fork only: the fork's
    anvil accepts ``anvil_setStorageAt``; nothing is written upstream)."""
    rpc = provider.make_request
    for slot in _CANDIDATE_SLOTS:
        key = hex(_balance_slot(holder, slot))
        before = rpc("eth_getStorageAt", [token.address, key, "latest"])
        rpc("anvil_setStorageAt", [token.address, key, "0x" + amount.to_bytes(32, "big").hex()])
        if token.balanceOf(holder) == amount:
            return
        rpc("anvil_setStorageAt", [token.address, key, before if isinstance(before, str) else before.hex()])
    raise RuntimeError(f"could not locate the balances mapping of token {token.address}")
