"""Cutting batches: the batching policy decides when, the queue gives the items, and a Merkle batch's tree dump
is durable before the batch exists (a root is never recorded without its tree)."""

from __future__ import annotations

import functools
import io
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, Final, cast

import msgspec

from og_settle._hex import to_hex
from og_settle._merkle_hash import _native
from og_settle._merkle_stream import OgTree, og_encoding_of
from og_settle._time import iso_utc
from og_settle.relayer._config import RelayerConfig
from og_settle.relayer._log import EventLog
from og_settle.relayer._policy import CutForecast
from og_settle.relayer._states import BatchState, Lane
from og_settle.relayer._store import QueueStore
from og_settle.relayer._store_api import BatchContent

__all__ = ["BatchCutter", "leaf_encodings"]

_LANE_ORDER: Final = (Lane.PAYMENT, Lane.BATCH, Lane.INDIVIDUAL, Lane.METADATA)
# A Merkle batch of at least this many leaves is announced before it is built (building takes seconds).
_BIG_BATCH: Final = 10_000


class BatchCutter:
    """Settles private items (nothing goes on chain) and cuts the batches the policy calls for."""

    def __init__(
        self,
        store: QueueStore,
        config: RelayerConfig,
        log: EventLog,
        stop: threading.Event,
        *,
        settler: str | None = None,
    ) -> None:
        self.store = store
        self.settler = settler  # the account this instance signs with: upto payments naming another are not its
        self.config = config
        self.log = log
        self.stop = stop
        self._announced: dict[Lane, tuple[CutForecast, int]] = {}

    def settle_private(self) -> bool:
        items = self.store.claim_items(Lane.PRIVATE, 10_000, ttl=self.config.lease_ttl)
        if not items:
            return False
        self.store.settle_without_tx([i.id for i in items], "private: nothing is recorded on chain")
        self.log.info("private.settled", count=len(items))
        return True

    def cut_batches(self) -> bool:
        worked = False
        policy = self.config.policy
        for lane in _LANE_ORDER:
            while not self.stop.is_set():
                backlog = self.store.backlog(lane)
                trigger = policy.trigger(backlog, time.time(), drain=self.config.drain)
                if trigger is None:
                    self._announce(lane, policy.next_cut(backlog), 0 if backlog is None else backlog.count)
                    break
                if not self._room():
                    break
                # Claimed and batched in one step, so that another instance cannot put the same items in a batch.
                started = time.monotonic()
                batch = self.store.cut_batch(
                    lane,
                    policy.capacity(lane),
                    functools.partial(self.content, lane),
                    ttl=self.config.lease_ttl,
                    settler=self.settler,
                )
                if batch is None:
                    break  # the waiting items are other instances' (claimed and being batched)
                self.log.info(
                    "batch.built",
                    batch=batch.id,
                    lane=lane.value,
                    size=batch.size,
                    trigger=trigger,
                    root=batch.root,
                    dump=batch.dump_path,
                    build_s=round(time.monotonic() - started, 3),
                )
                worked = True
        return worked

    def _announce(self, lane: Lane, forecast: CutForecast | None, waiting: int) -> None:
        """Log when and why the lane's next batch will be cut, whenever that changes (new items, a cut)."""
        if forecast is None:
            self._announced.pop(lane, None)
            return
        if self._announced.get(lane) == (forecast, waiting):
            return
        self._announced[lane] = (forecast, waiting)
        self.log.info(
            "batch.next_cut",
            lane=lane.value,
            waiting=waiting,
            at=iso_utc(forecast.at),
            in_s=round(max(forecast.at - time.time(), 0.0), 1),
            trigger=forecast.trigger,
            size_in=forecast.size_in,
        )

    def _room(self) -> bool:
        ahead = self.config.build_ahead
        return ahead is None or len(self.store.held_batches(BatchState.BUILT)) < ahead

    def content(self, lane: Lane, payloads: Sequence[str]) -> BatchContent:
        """A Merkle batch's root and its tree dump (from its items' payloads), durable before the batch exists;
        nothing for other lanes."""
        if lane is not Lane.BATCH:
            return BatchContent()
        if len(payloads) >= _BIG_BATCH:
            self.log.info("batch.building", lane=lane.value, leaves=len(payloads))
        # The tree and its dump from the leaves' ABI encodings (hashed and rendered in C where it is built), the
        # dump written in blocks: a 100,000-leaf batch never holds its dump as one string.
        tree = OgTree.of(leaf_encodings(payloads))
        if self.config.blob_store is not None:
            # Durable before the batch exists, as below; the file's name is its blob id.
            buffer = io.BytesIO()
            tree.write_dump(buffer)
            blob_id = self.config.blob_store.put(buffer.getvalue())
            return BatchContent(root=tree.root, dump_path=self.config.blob_store.location(blob_id))
        if self.config.dump_dir is not None:
            # The dump is durable before the batch exists: a root is never recorded without its tree on disk.
            target = self.config.dump_dir / f"{to_hex(tree.root)}.json"
            write_durably(target, tree.write_dump)
            return BatchContent(root=tree.root, dump_path=str(target))
        buffer = io.BytesIO()
        tree.write_dump(buffer)
        return BatchContent(root=tree.root, dump=buffer.getvalue().decode("utf-8"))


class _LeafFields(msgspec.Struct):
    """The leaf's fields of a queued batch record (its payload holds more: ref, payer, leaf_hash, ...)."""

    tee_id: str
    input_hash: str
    output_hash: str
    tee_signature: str
    timestamp: int


_leaf_fields: Final = msgspec.json.Decoder(_LeafFields)


def _python_encoding(payload: str) -> bytes:
    fields = _leaf_fields.decode(payload)
    return og_encoding_of(fields.tee_id, fields.input_hash, fields.output_hash, fields.tee_signature, fields.timestamp)


def leaf_encodings(payloads: Sequence[str]) -> list[bytes]:
    """The ABI encoding of the OpenGradient leaf in each queued batch record's payload text, in order.

    The C extension (``_batch_native.encode_payloads``, where it is built) takes every payload it is sure of; the
    rest (escaped strings, odd spellings, errors) are decoded here, where msgspec and :func:`og_encoding_of` stay
    the judge of what is valid and name the field that is wrong. Both give the same bytes."""
    if _native is None:
        return [_python_encoding(payload) for payload in payloads]
    encodings: list[bytes | None] = _native.encode_payloads(payloads if isinstance(payloads, list) else list(payloads))
    if None not in encodings:  # every payload taken natively (the common case)
        return cast("list[bytes]", encodings)
    return [
        _python_encoding(payload) if encoded is None else encoded
        for encoded, payload in zip(encodings, payloads, strict=True)
    ]


def write_durably(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write a file at ``path`` with ``write`` atomically and fsync it (and its folder), so it survives a crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
