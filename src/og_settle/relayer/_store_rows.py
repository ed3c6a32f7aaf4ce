"""Queue rows as records, for both stores: items read by position (100k-item reads are the hot path), batches and
transactions by column name."""

from __future__ import annotations

from typing import Any, Final

from og_settle.relayer._states import BatchState, ItemKind, ItemState, Lane
from og_settle.relayer._store_api import Batch, Item, TxRecord

# Enum members by stored value (a dict lookup; calling the enum costs more, once per column of 100k-item reads).
_KINDS: Final = {kind.value: kind for kind in ItemKind}
_LANES: Final = {lane.value: lane for lane in Lane}
_ITEM_STATES: Final = {state.value: state for state in ItemState}

# An item's columns in ``Item``'s field order, as ``item_view`` has them (states as reported).
ITEM_COLUMNS: Final = "id, kind, lane, key, payload, state, reason, batch_id, source, received_at, updated_at"
# The same from the stored rows (states as stored: the same for received and rejected items).
STORED_ITEMS: Final = "items AS i JOIN payloads AS p ON p.item_id = i.id"
STORED_COLUMNS: Final = (
    "i.id, i.kind, i.lane, i.key, p.payload, i.state, i.reason, i.batch_id, i.source, i.received_at, i.updated_at"
)


def item_state(value: str) -> ItemState:
    return _ITEM_STATES[value]


def item_of(row: Any) -> Item:
    """An item from a row of ``ITEM_COLUMNS``."""
    key, lane = row[3], row[2]
    return Item(
        int(row[0]),
        _KINDS[row[1]],
        None if lane is None else _LANES[lane],
        None if key is None else bytes(key),
        str(row[4]),
        _ITEM_STATES[row[5]],
        row[6],
        row[7],
        str(row[8]),
        float(row[9]),
        float(row[10]),
    )


def batch_of(row: Any) -> Batch:
    return Batch(
        id=int(row["id"]),
        lane=Lane(row["lane"]),
        state=BatchState(row["state"]),
        size=int(row["size"]),
        root=None if row["root"] is None else bytes(row["root"]),
        dump_path=row["dump_path"],
        dump=row["dump"],
        reason=row["reason"],
        attempts=int(row["attempts"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
    )


def tx_of(row: Any) -> TxRecord:
    return TxRecord(
        id=int(row["id"]),
        batch_id=int(row["batch_id"]),
        tx_hash=bytes(row["tx_hash"]),
        nonce=int(row["nonce"]),
        sender=str(row["sender"]),
        raw=bytes(row["raw"]),
        state=str(row["state"]),
        block_number=row["block_number"],
        gas_used=row["gas_used"],
        note=row["note"],
        created_at=float(row["created_at"]),
    )
