"""The relayer: a durable queue of inference records and x402 payments, batched and settled on chain.

``og-settle relayer run`` drives it; ``relayer submit`` feeds it JSONL; ``relayer status`` shows it. Public names
are imported on first use (see ``og_settle._lazy``; the ``TYPE_CHECKING`` block below is where each lives), so a
command loads only the parts it uses: the queue, intake and status parts import neither web3 nor Ape;
:class:`Relayer` (the chain-facing engine) imports web3 when it is constructed.
"""

from typing import TYPE_CHECKING

from og_settle._lazy import lazy_exports

if TYPE_CHECKING:
    from og_settle.relayer._config import RelayerConfig, RelayerHalted, bind_deployment
    from og_settle.relayer._engine import Relayer
    from og_settle.relayer._intake import (
        DEFAULT_MAX_RECORD_BYTES,
        IntakeConfig,
        ParsedLine,
        Rejected,
        parse_jsonl,
        parse_record,
        parse_settlement_data,
        payment_key,
    )
    from og_settle.relayer._intake_submit import IntakeReport, default_workers, submit_records, verify_lines
    from og_settle.relayer._log import EventLog
    from og_settle.relayer._policy import BULK_BATCH_SIZE, BatchPolicy, Trigger
    from og_settle.relayer._queue_db import (
        is_postgres_url,
        lock_sqlite_queue,
        open_store,
        remove_sqlite_files,
        store_for_write,
    )
    from og_settle.relayer._sender import DEFAULT_CONFIRMATIONS, SenderConfig
    from og_settle.relayer._states import BatchState, ItemKind, ItemState, Lane
    from og_settle.relayer._status import FleetStatus, fleet_status, format_status, status_json
    from og_settle.relayer._store import (
        Batch,
        BatchLease,
        IntakeOutcome,
        Item,
        LaneBacklog,
        LeaseLost,
        NewItem,
        QueueStatus,
        QueueStore,
        SqliteStore,
        TxRecord,
    )
    from og_settle.relayer._store_api import BatchContent
    from og_settle.relayer._store_intake import RejectedRecord
    from og_settle.relayer._store_postgres import PostgresStore
    from og_settle.relayer._tee_directory import RegistryTeeDirectory, StaticTeeDirectory, TeeDirectory

__all__ = [
    "BULK_BATCH_SIZE",
    "DEFAULT_CONFIRMATIONS",
    "DEFAULT_MAX_RECORD_BYTES",
    "Batch",
    "BatchContent",
    "BatchLease",
    "BatchPolicy",
    "BatchState",
    "EventLog",
    "FleetStatus",
    "IntakeConfig",
    "IntakeOutcome",
    "IntakeReport",
    "Item",
    "ItemKind",
    "ItemState",
    "Lane",
    "LaneBacklog",
    "LeaseLost",
    "NewItem",
    "ParsedLine",
    "PostgresStore",
    "QueueStatus",
    "QueueStore",
    "RegistryTeeDirectory",
    "Rejected",
    "RejectedRecord",
    "Relayer",
    "RelayerConfig",
    "RelayerHalted",
    "SenderConfig",
    "SqliteStore",
    "StaticTeeDirectory",
    "TeeDirectory",
    "Trigger",
    "TxRecord",
    "bind_deployment",
    "default_workers",
    "fleet_status",
    "format_status",
    "is_postgres_url",
    "lock_sqlite_queue",
    "open_store",
    "parse_jsonl",
    "parse_record",
    "parse_settlement_data",
    "payment_key",
    "remove_sqlite_files",
    "status_json",
    "store_for_write",
    "submit_records",
    "verify_lines",
]

__getattr__, __dir__ = lazy_exports(__name__, __file__, __all__)
