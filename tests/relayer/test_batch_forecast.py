"""`relayer run` says when and why the next batch will be cut: the forecast agrees with the triggers, and the
batch cutter logs it (ISO 8601) whenever what waits changes, and only then."""

from __future__ import annotations

import io
import json
import threading
from datetime import datetime

import pytest

from og_settle.relayer import BatchPolicy, EventLog, LaneBacklog, QueueStore, Trigger
from og_settle.relayer._batching import BatchCutter
from og_settle.relayer._config import RelayerConfig
from og_settle.relayer._states import Lane
from tests.relayer.test_store import _item

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("lane", "oldest_ago", "newest_ago", "trigger"),
    [
        (Lane.BATCH, 10.0, 1.0, Trigger.IDLE),  # idle (300 s after the newest) comes before max age (900 s)
        (Lane.BATCH, 850.0, 1.0, Trigger.MAX_AGE),  # the oldest is 50 s from max age; idle would be 299 s
        (Lane.PAYMENT, 0.5, 0.5, Trigger.MAX_AGE),  # payments wait at most 2 s for company
    ],
)
def test_the_forecast_is_when_the_trigger_fires(lane: Lane, oldest_ago: float, newest_ago: float, trigger: str) -> None:
    policy = BatchPolicy.opengradient()
    backlog = LaneBacklog(lane, 3, NOW - oldest_ago, NOW - newest_ago)
    assert policy.trigger(backlog, NOW) is None
    forecast = policy.next_cut(backlog)
    assert forecast is not None
    assert (forecast.trigger, forecast.size_in) == (trigger, policy.capacity(lane) - 3)
    assert policy.trigger(backlog, forecast.at - 0.01) is None
    assert policy.trigger(backlog, forecast.at) == trigger


def test_lanes_that_never_wait_have_no_forecast() -> None:
    policy = BatchPolicy.opengradient()
    for lane in (Lane.INDIVIDUAL, Lane.METADATA, Lane.PRIVATE):
        assert policy.next_cut(LaneBacklog(lane, 1, NOW, NOW)) is None
    assert policy.next_cut(None) is None


def _events(stream: io.StringIO, name: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in lines if line["event"] == name]


def test_the_cutter_logs_the_next_cut_when_the_backlog_changes(store: QueueStore) -> None:
    stream = io.StringIO()
    # Payments: their lane waits for company and needs no Merkle leaves to cut.
    config = RelayerConfig(policy=BatchPolicy(payments_per_tx=5, payment_max_wait_seconds=300))
    cutter = BatchCutter(store, config, EventLog(stream), threading.Event())
    store.add_items([_item(n, Lane.PAYMENT) for n in range(2)])
    assert cutter.cut_batches() is False
    assert cutter.cut_batches() is False  # nothing changed: nothing logged again
    first = _events(stream, "batch.next_cut")
    assert len(first) == 1
    assert (first[0]["lane"], first[0]["waiting"], first[0]["trigger"], first[0]["size_in"]) == (
        "payment",
        2,
        "max_age",
        3,
    )
    at = datetime.fromisoformat(str(first[0]["at"]).replace("Z", "+00:00"))
    assert 290 <= at.timestamp() - datetime.now().timestamp() <= 301
    assert isinstance(first[0]["ts"], str) and str(first[0]["ts"]).endswith("Z")

    store.add_items([_item(n, Lane.PAYMENT) for n in range(2, 4)])
    cutter.cut_batches()
    second = _events(stream, "batch.next_cut")
    assert len(second) == 2 and (second[1]["waiting"], second[1]["size_in"]) == (4, 1)

    store.add_items([_item(4, Lane.PAYMENT)])  # the fifth fills the batch: cut by size, nothing left to forecast
    assert cutter.cut_batches() is True
    built = _events(stream, "batch.built")
    assert len(built) == 1 and built[0]["trigger"] == "size" and built[0]["size"] == 5
    assert len(_events(stream, "batch.next_cut")) == 2
