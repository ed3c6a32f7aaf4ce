"""``og-settle relayer``: run the relayer, feed it records, and see where they stand."""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from og_settle._errors import InvalidInput
from og_settle.cli._fees import add_fee_options, fee_bump
from og_settle.cli._keys import account_from_env
from og_settle.cli._network import (
    add_network_option,
    add_rpc_url_option,
    check_node_network,
    node_web3,
    require_deployed,
)

_KEY_ENV_DEFAULT = "OG_SETTLE_RELAYER_KEY"
_SHARED_BUILD_AHEAD = 2
_DB_HELP = "the queue: an SQLite file, or a PostgreSQL URL (postgresql://user[:password]@host[:port]/dbname)"


def register(groups: Any) -> None:
    relayer = groups.add_parser("relayer")
    commands = relayer.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")

    run = commands.add_parser(
        "run",
        help="settle what the queue holds (reconciles with the chain first); SIGTERM/SIGINT stop it cleanly",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _db_and_deployment(run)
    add_rpc_url_option(run, required=True, dest="rpc")
    add_network_option(run)
    run.add_argument(
        "--key-env", default=_KEY_ENV_DEFAULT, help="environment variable holding the relayer's private key"
    )
    run.add_argument(
        "--preset",
        choices=("opengradient", "bulk"),
        default="opengradient",
        help="batching preset: opengradient = 20 items / 300 s idle / 900 s max age; bulk = 100,000 items",
    )
    run.add_argument("--max-batch", type=int, default=None, help="most leaves per Merkle batch (overrides --preset)")
    run.add_argument("--idle", type=float, default=None, help="cut a batch after this many idle seconds")
    run.add_argument("--max-age", type=float, default=None, help="cut a batch when its oldest item is this old (s)")
    run.add_argument("--payments-per-tx", type=int, default=50, help="payments per settleBatch transaction")
    run.add_argument("--payment-wait", type=float, default=2.0, help="longest a payment waits for company (s)")
    _add_sending_options(run)
    run.add_argument("--gas-margin", type=float, default=1.25, help="gas limit = estimate x this")
    run.add_argument("--poll", type=float, default=0.5, help="seconds between rounds when idle")
    run.add_argument("--dump-dir", type=Path, default=None, help="where Merkle dumps go (default: next to --db)")
    run.add_argument("--da-prefix", default="og-settle:", help="on-chain DA pointer = this prefix + the root")
    run.add_argument(
        "--blobs",
        type=Path,
        default=None,
        help="content-addressed DA store for dumps (its pointer goes on chain)",
    )
    run.add_argument("--drain", action="store_true", help="cut batches from whatever waits, without the triggers")
    run.add_argument(
        "--exit-when-done",
        action="store_true",
        help="exit once nothing is in flight: 0 if every item of the run settled, 1 if any failed",
    )
    run.add_argument(
        "--instance-id",
        default=None,
        help="this instance's id in the queue and in every log line (default: signer address@host); several"
        " instances on one postgresql:// queue each need their own key",
    )
    run.add_argument(
        "--lease-ttl",
        type=float,
        default=30.0,
        help="seconds a batch stays this instance's without renewal; another instance takes over a stopped"
        " instance's batches after this long (postgresql:// queues)",
    )
    run.add_argument(
        "--stall-timeout",
        type=float,
        default=None,
        help="seconds the main loop may make no progress (a hung node call, a deadlock) before this instance stops"
        " renewing its leases, logs relayer.stalled and exits 4 so that others adopt its batches (default: 3 x"
        " --lease-ttl, at least 30)",
    )
    run.add_argument("--verbose", action="store_true", help="also log debug events")
    run.set_defaults(handler=_run)

    submit = commands.add_parser(
        "submit", help="verify JSONL records (from files or stdin) and queue them; prints one JSON line per record"
    )
    _db_and_deployment(submit)
    submit.add_argument("files", nargs="*", default=["-"], help="JSONL files; - or nothing for stdin")
    add_rpc_url_option(
        submit,
        dest="rpc",
        from_env=False,
        help="check on chain: payments (nonce, allowance, balance) and each leaf's signer against the TEE registry",
    )
    submit.add_argument(
        "--allow-unverified",
        action="store_true",
        help="without --rpc-url, queue batch leaves marked unverified instead of refusing them (tee_unverifiable)",
    )
    submit.add_argument("--relayer-address", default=None, help="the relayer account (checked for upto payments)")
    submit.add_argument("--quiet", action="store_true", help="print only the summary")
    submit.add_argument(
        "--progress",
        action="store_true",
        help="report progress on stderr even when it is not a terminal (on one, big files always show it)",
    )
    submit.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes that verify records (default: one per CPU); any number gives the same result",
    )
    submit.set_defaults(handler=_submit)

    status = commands.add_parser("status", help="counts by state, the oldest pending record, the last transaction")
    status.add_argument("--db", required=True, help=_DB_HELP)
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(handler=_status)

    items = commands.add_parser("items", help="list queued records, optionally by state")
    items.add_argument("--db", required=True, help=_DB_HELP)
    items.add_argument("--state", default=None, help="received, batched, submitted, confirmed, failed or rejected")
    items.add_argument("--limit", type=int, default=100)
    items.set_defaults(handler=_items)


def _db_and_deployment(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", required=True, help=_DB_HELP + " (an SQLite file is created if missing)")
    parser.add_argument(
        "--deployment",
        type=Path,
        default=None,
        help="deployments/<chain id>.json from `og-settle deploy` (needed the first time; the queue remembers it)",
    )


def _open(args: argparse.Namespace, store: Any = None, **options: Any) -> tuple[Any, Any]:
    from og_settle._deploy import load_deployment
    from og_settle.relayer import bind_deployment, is_postgres_url, open_store, remove_sqlite_files

    if store is not None:
        deployment = bind_deployment(store, None if args.deployment is None else load_deployment(args.deployment))
        _check_deployed(args, deployment)
        return store, deployment
    created = not is_postgres_url(args.db) and not Path(args.db).exists()
    store = open_store(args.db, **options)
    try:
        deployment = bind_deployment(store, None if args.deployment is None else load_deployment(args.deployment))
        _check_deployed(args, deployment)
    except BaseException:
        store.close()
        if created:  # a queue this run created and could not use: leave nothing behind
            remove_sqlite_files(args.db)
        raise
    return store, deployment


def _run(args: argparse.Namespace) -> int:
    from og_settle._lease import SignerLease
    from og_settle.clients import NodeUnavailable
    from og_settle.relayer import (
        BULK_BATCH_SIZE,
        BatchPolicy,
        EventLog,
        Relayer,
        RelayerConfig,
        RelayerHalted,
        is_postgres_url,
        lock_sqlite_queue,
    )

    account = account_from_env(args.key_env, holder="the relayer")
    # The relayer backs off while its node is down, so an unreachable node is no reason to refuse to start.
    chosen = check_node_network(args, args.rpc, unreachable_ok=True)
    base = BatchPolicy.bulk() if args.preset == "bulk" else BatchPolicy.opengradient()
    policy = BatchPolicy(
        max_items=args.max_batch if args.max_batch is not None else base.max_items,
        idle_seconds=args.idle if args.idle is not None else base.idle_seconds,
        max_age_seconds=args.max_age if args.max_age is not None else base.max_age_seconds,
        payments_per_tx=args.payments_per_tx,
        payment_max_wait_seconds=args.payment_wait,
    )
    if policy.max_items > BULK_BATCH_SIZE:
        print(f"og-settle: note: batches of {policy.max_items} leaves exceed the tested bulk size", file=sys.stderr)
    sending = _sending_config(args)  # bad values are refused before the queue is opened
    if args.lease_ttl <= 0:
        raise InvalidInput(f"--lease-ttl: must be positive, got {args.lease_ttl}")
    if args.stall_timeout is not None and args.stall_timeout <= 0:
        raise InvalidInput(f"--stall-timeout: must be positive, got {args.stall_timeout}")
    shared = is_postgres_url(args.db)
    instance = args.instance_id or f"{account.address}@{socket.gethostname()}"
    store, deployment = _open(args, worker=instance, lease_ttl=args.lease_ttl)
    if chosen is not None and chosen.chain_id != deployment.chain_id:
        store.close()
        raise InvalidInput(
            f"--network {chosen.name}: this queue settles to chain {deployment.chain_id}, "
            f"{chosen.label} is {chosen.chain_id}"
        )
    try:
        queue_lock = None if shared else lock_sqlite_queue(args.db)
    except InvalidInput:
        store.close()
        raise
    log = EventLog(verbose=args.verbose, context={"instance": instance})
    from_block = store.get_meta("log_from_block")
    config = RelayerConfig(
        policy=policy,
        sending=sending,
        poll_interval=args.poll,
        dump_dir=args.dump_dir if args.dump_dir is not None else _default_dump_dir(args.db),
        da_prefix=args.da_prefix,
        blob_store=_blob_store(args.blobs),
        gas_margin=args.gas_margin,
        drain=args.drain,
        exit_when_done=args.exit_when_done,
        log_from_block=int(from_block) if from_block is not None else 0,
        lease_ttl=args.lease_ttl,
        # On a shared queue an instance cuts a batch only when it has room to send it soon, so that the
        # instances share the work instead of the first one cutting it all.
        build_ahead=_SHARED_BUILD_AHEAD if shared else None,
        stall_timeout=args.stall_timeout,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if not stop.is_set():
            log.info("relayer.signal", signal=signal.Signals(signum).name, action="finishing the current step")
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    # One process at a time sends from this key on this chain (the facilitator takes the same lease): two
    # senders sharing a key replace each other's transactions.
    try:
        lease = SignerLease.acquire(deployment.chain_id, account.address, role="relayer")
    except InvalidInput:
        store.close()
        if queue_lock is not None:
            queue_lock.release()
        raise
    relayer = Relayer(
        store, deployment, account, rpc_url=args.rpc, config=config, log=log, stop=stop, on_stall=_exit_stalled
    )
    # Every instance's account is known to the queue (``relayer submit`` checks upto payments against them all).
    store.record_relayer_account(account.address, instance=instance, started_at=time.time())
    try:
        if from_block is None:
            # Events this relayer's work can produce are all after this block. The first instance on the queue
            # sets it; one starting at the same time must not move it past what the first already sent.
            start = str(max(relayer.chain.sender.block_number() - 1, 0))
            relayer.config = _with_from_block(config, int(store.init_meta("log_from_block", start)))
        return relayer.run()
    except RelayerHalted as err:
        print(f"og-settle: relayer halted: {err}", file=sys.stderr)
        return 3
    except NodeUnavailable as err:
        if not stop.is_set():
            raise
        # Stopped while the node was unreachable: nothing was lost (the queue is durable), so a clean stop.
        log.info("relayer.stopped", detail=str(err)[:200], items=dict(store.status().items_by_state))
        return 0
    finally:
        store.close()
        lease.release()
        if queue_lock is not None:
            queue_lock.release()


def _exit_stalled() -> None:
    """The watchdog found the main loop hung (``relayer.stalled`` is logged): a blocked call cannot be interrupted,
    so the process ends at once with status 4, for a supervisor to restart it. The kernel releases the signer
    lease and the queue's connection; the batches' leases run out and other instances adopt them."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(4)


def _add_sending_options(run: argparse.ArgumentParser) -> None:
    """How settlement transactions travel (``og_settle.relayer._sender``)."""
    group = run.add_argument_group("transactions in flight")
    group.add_argument(
        "--max-in-flight", type=int, default=4, help="most settlement transactions pending at once (consecutive nonces)"
    )
    group.add_argument(
        "--confirmations",
        type=_confirmations,
        default="auto",
        help="blocks deep before a settlement counts as settled; auto = 5 (about 10 s on Base), 1 on anvil/Hardhat",
    )
    group.add_argument(
        "--fee-bump-after",
        type=float,
        default=30.0,
        help="seconds unmined before a transaction is re-sent with higher fees",
    )
    group.add_argument(
        "--fee-bump-blocks", type=int, default=5, help="blocks unmined before a transaction is re-sent with higher fees"
    )
    add_fee_options(group)
    group.add_argument(
        "--receipt-timeout",
        type=float,
        default=60.0,
        help="seconds without a receipt before a transaction is re-broadcast",
    )


def _confirmations(value: str) -> int | None:
    """``--confirmations``: a block count, or ``auto`` (None: chosen from the node)."""
    if value == "auto":
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of blocks or auto, got {value!r}") from None


def _sending_config(args: argparse.Namespace) -> Any:
    from og_settle.relayer._sender import SenderConfig

    bump = fee_bump(args)
    try:
        return SenderConfig(
            max_in_flight=args.max_in_flight,
            confirmations=args.confirmations,
            fee_bump_after=args.fee_bump_after,
            fee_bump_blocks=args.fee_bump_blocks,
            fee_bump=bump.factor,
            max_fee_per_gas=bump.max_fee_per_gas,
            rebroadcast_after=args.receipt_timeout,
        )
    except InvalidInput as err:  # name the flag, not the field
        field, _, rest = str(err).partition(":")
        flag = "--receipt-timeout" if field == "rebroadcast_after" else "--" + field.replace("_", "-")
        raise InvalidInput(f"{flag}:{rest}") from None


def _check_deployed(args: argparse.Namespace, deployment: Any) -> None:
    """With a node (``--rpc-url``), refuse a deployment without code there. ``relayer run`` waits for a node that
    is down, so it skips the check then; ``submit`` fails on it."""
    from og_settle.clients import is_connection_error

    if args.rpc is None:
        return
    try:
        require_deployed(node_web3(args.rpc), deployment, args.deployment or "the queue's deployment")
    except Exception as err:
        if args.command != "run" or isinstance(err, InvalidInput) or not is_connection_error(err):
            raise


def _default_dump_dir(db: str) -> Path:
    from og_settle.relayer import is_postgres_url

    if is_postgres_url(db):
        return Path("relayer-dumps")
    return Path(db).parent / (Path(db).stem + "-dumps")


def _with_from_block(config: Any, block: int) -> Any:
    from dataclasses import replace

    return replace(config, log_from_block=block)


def _submit(args: argparse.Namespace) -> int:
    from og_settle.relayer import store_for_write

    # A submit that fails before the new queue holds any record removes the queue it created.
    with store_for_write(args.db) as store:
        return _submit_to(args, store)


def _submit_to(args: argparse.Namespace, store: Any) -> int:
    from og_settle.cli._progress import Progress
    from og_settle.relayer import IntakeConfig, default_workers, submit_records

    workers = default_workers() if args.workers is None else args.workers
    if workers < 1:
        raise InvalidInput(f"--workers: expected at least 1, got {workers}")
    store, deployment = _open(args, store)
    reader = None
    directory = None
    if args.rpc is not None:
        from og_settle._x402_verify import Web3ChainReader
        from og_settle.relayer import RegistryTeeDirectory

        # Neither is used before the verifying workers fork, and the directory connects in each process.
        reader = Web3ChainReader(node_web3(args.rpc), deployment.permit2)
        directory = RegistryTeeDirectory(args.rpc, deployment.tee_registry)
    # Upto payments must name a relayer account: --relayer-address, else any instance's that ran on this queue.
    accounts = () if args.relayer_address else tuple(store.relayer_accounts())
    config = IntakeConfig(
        deployment=deployment,
        relayer=args.relayer_address or (accounts[0] if len(accounts) == 1 else None),
        relayers=accounts,
        chain_reader=reader,
        tee_directory=directory,
        allow_unverified=args.allow_unverified,
    )
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    # What is loaded by now (web3 and the rest) lives as long as the process: the collector need not walk it again
    # each time intake's rows make a full collection due, nor touch it in the forked workers (copy-on-write).
    gc.freeze()
    try:
        for name in args.files:
            if name == "-":
                lines = _with_progress(sys.stdin.buffer, Progress("stdin", 0, sys.stderr, forced=args.progress), counts)
                reports = submit_records(store, lines, config, name="stdin", workers=workers)
                counts = _print_reports(reports, counts, args.quiet)
            else:
                path = Path(name)
                if not path.is_file():
                    raise InvalidInput(f"files: {name} is not a file")
                progress = Progress(path.name, path.stat().st_size, sys.stderr, forced=args.progress)
                with path.open("rb") as handle:
                    lines = _with_progress(handle, progress, counts)
                    reports = submit_records(store, lines, config, name=path.name, workers=workers)
                    counts = _print_reports(reports, counts, args.quiet)
                progress.close()
    finally:
        gc.unfreeze()  # a caller in the same process (tests) gets its collector back as it was
    print(json.dumps({"summary": counts}), flush=True)
    return 0 if counts["rejected"] == 0 else 1


def _with_progress(lines: Iterable[bytes], progress: Any, counts: dict[str, int]) -> Iterable[bytes]:
    """``lines`` as they are read, reporting the bytes read so far and the records already answered (``lines``
    itself when no progress is shown)."""
    return _reporting(lines, progress, counts) if progress.enabled else lines


def _reporting(lines: Iterable[bytes], progress: Any, counts: dict[str, int]) -> Iterator[bytes]:
    done = 0
    for line in lines:
        done += len(line)
        progress.update(done, f"read, {sum(counts.values()):,} records done")
        yield line


def _print_reports(reports: Any, counts: dict[str, int], quiet: bool) -> dict[str, int]:
    for report in reports:
        counts[report.status] += 1
        if not quiet:
            print(json.dumps(report.to_json()), flush=True)
    return counts


def _status(args: argparse.Namespace) -> int:
    from og_settle.relayer import fleet_status, format_status, open_store, status_json

    store = open_store(args.db, create=False)
    try:
        status = store.status()
        fleet = fleet_status(store)
    finally:
        store.close()
    print(json.dumps(status_json(status, fleet=fleet)) if args.json else format_status(status, fleet=fleet))
    return 0


def _items(args: argparse.Namespace) -> int:
    from og_settle.relayer import ItemState, open_store

    try:
        state = None if args.state is None else ItemState(args.state)
    except ValueError:
        raise InvalidInput(f"--state: unknown state {args.state!r}") from None
    store = open_store(args.db, create=False)
    try:
        for item in store.items(state=state, limit=args.limit):
            print(
                json.dumps(
                    {
                        "item": item.id,
                        "kind": item.kind.value,
                        "lane": None if item.lane is None else item.lane.value,
                        "state": item.state.value,
                        "reason": item.reason,
                        "batch": item.batch_id,
                        "source": item.source,
                        "key": None if item.key is None else "0x" + item.key.hex(),
                    }
                )
            )
    finally:
        store.close()
    return 0


def _blob_store(path: Path | None) -> Any:
    from og_settle._blobs import LocalBlobStore

    return None if path is None else LocalBlobStore(path)
