"""Ape sees every contract source, run after run (issue #12 I-2).

Ape compiles in an isolated copy of the project under the temporary directory, except when the checkout itself
lies there (a fresh CI clone in /tmp): then it unpacks OpenZeppelin (over 500 files) into ``contracts/.cache``.
Its source scan stops at 500 files, so the next run lost our own contracts ("'LocalProject' object has no
attribute 'ReplicaOPG'"). ``make test`` compiles with a temporary directory of Ape's own, inside ``.cache/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"


def test_ape_sees_every_contract_source_and_unpacks_nothing_into_contracts(project: Any) -> None:
    """After compiling, contracts/ holds only our sources, and Ape's scan finds each of them."""
    assert project.PaymentFacilitator.contract_type.name == "PaymentFacilitator"  # compiles if anything changed
    ours = {path for path in CONTRACTS.rglob("*.sol") if ".cache" not in path.parts}
    unpacked = sorted(str(p.relative_to(CONTRACTS)) for p in (CONTRACTS / ".cache").rglob("*") if p.is_file())
    assert not unpacked, f"Ape unpacked {len(unpacked)} files into contracts/.cache (its scan stops at 500)"
    assert {Path(p) for p in project.sources.paths} == ours
    assert project.ReplicaOPG.contract_type.name == "ReplicaOPG"
