"""A committed gas snapshot (``gas-snapshot.json``), checked like ``forge snapshot --check``.

Tests record named figures. At the end of the session each recorded figure is compared with the committed
one; any change beyond the tolerance fails the session, whether up (a regression) or down (an improvement
the snapshot must be updated for). Set ``OG_SETTLE_GAS_SNAPSHOT=update`` to rewrite the recorded entries.
Entries not recorded in this run are kept as they are.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SNAPSHOT_PATH = Path(__file__).resolve().parents[2] / "gas-snapshot.json"
# Same compiler, same code and same chain give the same gas; the slack covers cold-vs-warm accounts that
# differ between the replica and the real chain.
RELATIVE_TOLERANCE = 0.01


@dataclass
class GasSnapshot:
    committed: dict[str, int]
    measured: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls) -> GasSnapshot:
        committed = json.loads(SNAPSHOT_PATH.read_text()) if SNAPSHOT_PATH.is_file() else {}
        return cls(committed=committed)

    def record(self, name: str, gas: int) -> int:
        """Record ``gas`` under ``name`` and return it, so a test can also assert a target on it."""
        self.measured[name] = int(gas)
        return int(gas)

    def finish(self) -> None:
        if not self.measured:
            return
        if os.environ.get("OG_SETTLE_GAS_SNAPSHOT") == "update":
            merged = {
                **(json.loads(SNAPSHOT_PATH.read_text()) if SNAPSHOT_PATH.is_file() else {}),
                **self.measured,
            }
            SNAPSHOT_PATH.write_text(json.dumps(dict(sorted(merged.items())), indent=2) + "\n")
            return
        problems = []
        for name, gas in sorted(self.measured.items()):
            expected = self.committed.get(name)
            if expected is None:
                problems.append(f"{name}: {gas} is not in the snapshot")
            elif abs(gas - expected) > expected * RELATIVE_TOLERANCE:
                problems.append(f"{name}: {gas} vs committed {expected} ({(gas - expected) / expected:+.2%})")
        if problems:
            pytest.fail(
                "gas snapshot mismatch (rerun with OG_SETTLE_GAS_SNAPSHOT=update if the change is explained):\n  "
                + "\n  ".join(problems),
                pytrace=False,
            )
