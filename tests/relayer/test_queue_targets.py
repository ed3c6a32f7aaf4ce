"""The facilitator's ``/settle_data`` queue and the gateway's queue sink take the relayer's queue as ``relayer submit
--db`` does: an SQLite file or a ``postgresql://`` URL (the relayer tests' real PostgreSQL server).

What they write is read back through ``open_store`` (what ``relayer run`` settles from): the items, their lanes, the
duplicate answers, the refused record and the deployment the queue is tied to.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import pytest

from og_settle._errors import InvalidInput
from og_settle.facilitator import SettlementDataQueue
from og_settle.gateway import RelayerQueueSink
from og_settle.relayer import Rejected, StaticTeeDirectory, bind_deployment, open_store
from tests.relayer.support import OFFLINE_DEPLOYMENT, TEE_KEY, inference_record
from tests.tee.test_intake_settlement_data import RSA, _gateway_data, _header


def test_settle_data_queues_into_the_relayers_queue(queue_db: str) -> None:
    settle_data = SettlementDataQueue(queue_db, OFFLINE_DEPLOYMENT, tee_directory=StaticTeeDirectory([RSA.public]))
    try:
        header = _header(_gateway_data())
        first = settle_data.submit("batch", header, source="settle_data:test")
        again = settle_data.submit("batch", header, source="settle_data:test")
        individual = settle_data.submit("individual", _header(_gateway_data(mode="individual")), source="t")
        with pytest.raises(Rejected):
            settle_data.submit("batch", "not base64 json", source="settle_data:test")
    finally:
        settle_data.close()
    assert first is not None and again is not None and individual is not None
    assert (first["status"], again["status"], again["jobId"]) == ("queued", "duplicate", first["jobId"])
    assert individual["settlementType"] == "individual"

    store = open_store(queue_db, create=False)
    try:
        status = store.status()
        assert dict(status.items_by_state) == {"received": 2, "rejected": 1}
        assert bind_deployment(store, None) == OFFLINE_DEPLOYMENT  # tied to the deployment it was fed for
    finally:
        store.close()
    other = dataclasses.replace(OFFLINE_DEPLOYMENT, settlement_registry="0x" + "99" * 20)
    with pytest.raises(InvalidInput):
        SettlementDataQueue(queue_db, other, tee_directory=None)


def test_the_gateway_sink_queues_each_mode(queue_db: str) -> None:
    now = int(time.time())  # one signing time: the same record twice is the same item
    sink = RelayerQueueSink(queue_db, OFFLINE_DEPLOYMENT, tee_keys=[TEE_KEY.public])
    try:
        receipts = [
            asyncio.run(sink.submit(inference_record(OFFLINE_DEPLOYMENT, index, mode=mode, now=now)))
            for index, mode in enumerate(("batch", "individual", "metadata"))
        ]
        repeated = asyncio.run(sink.submit(inference_record(OFFLINE_DEPLOYMENT, 0, mode="batch", now=now)))
    finally:
        sink.close()
    assert [r.duplicate for r in receipts] == [False, False, False] and all(r.key for r in receipts)
    assert repeated.duplicate and repeated.item_id == receipts[0].item_id

    store = open_store(queue_db, create=False)
    try:
        by_lane = {lane: dict(states) for lane, states in store.status().items_by_lane_and_state.items()}
    finally:
        store.close()
    assert by_lane == {"batch": {"received": 1}, "individual": {"received": 1}, "metadata": {"received": 1}}


def test_a_directory_as_queue_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="is a directory"):
        RelayerQueueSink(tmp_path, OFFLINE_DEPLOYMENT)


def test_the_gateway_sink_binds_the_queue_to_its_deployment(queue_db: str) -> None:
    """The sink ties a new queue to its deployment, as ``relayer submit`` and the facilitator's queue do, and a queue
    tied to another deployment is refused with one line naming both (before anything is queued)."""
    RelayerQueueSink(queue_db, OFFLINE_DEPLOYMENT, tee_keys=[TEE_KEY.public]).close()
    store = open_store(queue_db, create=False)
    try:
        assert bind_deployment(store, None) == OFFLINE_DEPLOYMENT
    finally:
        store.close()
    other = dataclasses.replace(OFFLINE_DEPLOYMENT, settlement_registry="0x" + "99" * 20)
    with pytest.raises(InvalidInput) as refused:
        RelayerQueueSink(queue_db, other, tee_keys=[TEE_KEY.public])
    message = str(refused.value)
    assert "\n" not in message and "cannot switch" in message and other.settlement_registry in message, message
