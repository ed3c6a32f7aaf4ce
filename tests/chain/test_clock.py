"""The fork's clock after Ape's isolation: anvil rewinds it with every snapshot revert; the suite moves it forward
to the wall clock again (tests/conftest.py), as a real chain's clock would be."""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import _clock_to_wall


def _mined_timestamp(chain: Any) -> int:
    chain.mine()
    return int(chain.provider.get_block("latest").timestamp)


def test_a_reverted_snapshot_rewinds_anvil_and_the_suite_moves_it_forward(chain: Any) -> None:
    snapshot = chain.snapshot()
    time.sleep(3)
    chain.restore(snapshot)
    assert _mined_timestamp(chain) <= time.time() - 2  # anvil's own behaviour: the clock went back with the state
    _clock_to_wall(chain)
    assert _mined_timestamp(chain) >= int(time.time()) - 1


def test_each_test_starts_on_the_wall_clock(chain: Any) -> None:
    # The test above took over 3 s, and Ape then reverted to the snapshot from before it, rewinding the clock.
    assert _mined_timestamp(chain) >= int(time.time()) - 1
