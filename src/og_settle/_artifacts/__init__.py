"""Committed ABIs and creation bytecode of og-settle's deployable contracts.

They let the relayer, the clients and the deploy code run without an Ape project or a compiler.
``ape run export_artifacts`` regenerates them from ``ape compile``; a test fails when they are stale.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

DEPLOYABLE_CONTRACTS = (
    "TeeRegistry",
    "SettlementRegistry",
    "PaymentFacilitator",
    "StockPaymentBatcher",
    "Eip3009Batcher",
)

__all__ = ["DEPLOYABLE_CONTRACTS", "Artifact", "abi", "artifact", "initcode"]


@dataclass(frozen=True, slots=True)
class Artifact:
    """One compiled contract.

    Attributes:
        name: contract name.
        abi: JSON ABI.
        initcode: creation bytecode, without constructor arguments.
        runtime: deployed bytecode.
    """

    name: str
    abi: tuple[dict[str, Any], ...]
    initcode: bytes
    runtime: bytes


@cache
def artifact(name: str) -> Artifact:
    try:
        text = resources.files(__name__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyError(f"no committed artifact for {name!r}; known: {', '.join(DEPLOYABLE_CONTRACTS)}") from None
    data = json.loads(text)
    return Artifact(
        name=data["contractName"],
        abi=tuple(data["abi"]),
        initcode=bytes.fromhex(data["initcode"].removeprefix("0x")),
        runtime=bytes.fromhex(data["runtime"].removeprefix("0x")),
    )


def abi(name: str) -> list[dict[str, Any]]:
    return list(artifact(name).abi)


def initcode(name: str) -> bytes:
    return artifact(name).initcode
