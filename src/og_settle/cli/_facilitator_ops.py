"""``og-settle facilitator keys|usage|receipt``: API keys and their limits, usage reports, receipt checks.

- ``keys add|set|list|remove --store S``: bearer keys kept in the facilitator's store (SQLite file or
  ``postgresql://`` URL), each with its limits: ``--verify-rps``/``--settle-rps`` (requests per second) and
  ``--quota ASSET:AMOUNT/PERIOD`` (repeatable; PERIOD ``second|minute|hour|day|week`` or ``<N>s``). ``add``
  prints a new random key once (or registers the one in ``--key-env``); the store keeps only its SHA-256.
  Every server on the store sees a change within 2 seconds (it reads a key again after that long).
- ``usage --store S``: totals per key for ``[--from, --to)`` (ISO 8601), or with ``--records`` every request;
  ``--format text|json|jsonl|csv``, ``--output FILE``.
- ``receipt verify FILE --rpc-url URL``: checks each receipt in FILE (one JSON object, a ``/settle`` answer
  carrying one, or JSON lines) against the chain alone; ``--payload`` also checks the payload digest.

Exit codes: 0 done (every receipt holds); 1 a receipt does not hold; 2 bad input.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from og_settle._errors import InvalidInput
from og_settle.cli._network import add_rpc_url_option

_KEY_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def register_ops(commands: Any) -> None:
    keys = commands.add_parser("keys", help="API keys in the store, with their rate limits and spend quotas")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    for action, text in (
        ("add", "add a key (a new random one, printed once, or the one in --key-env) with its limits"),
        ("set", "replace a key's limits (options left out: unlimited)"),
        ("list", "list the keys and their limits"),
        ("remove", "remove a key"),
    ):
        sub = key_commands.add_parser(action, help=text)
        sub.add_argument("--store", required=True, help="the facilitator's store: SQLite file or postgresql:// URL")
        if action != "list":
            sub.add_argument("--name", required=True, help="the key's name (letters, digits, - _ .)")
        if action == "add":
            sub.add_argument("--key-env", default=None, help="environment variable holding the key to register")
        if action in ("add", "set"):
            sub.add_argument("--verify-rps", default=None, help="/verify requests per second (default: unlimited)")
            sub.add_argument("--settle-rps", default=None, help="/settle requests per second (default: unlimited)")
            sub.add_argument(
                "--quota", action="append", default=[], metavar="ASSET:AMOUNT/PERIOD", help="spend quota (repeatable)"
            )
        sub.add_argument("--json", action="store_true", help="print JSON")
        sub.set_defaults(handler=_keys)

    usage = commands.add_parser("usage", help="usage totals per key for a period, or every request (--records)")
    usage.add_argument("--store", required=True, help="the facilitator's store: SQLite file or postgresql:// URL")
    usage.add_argument("--key", default=None, help="only this key's usage (default: every key)")
    usage.add_argument("--from", dest="start", default=None, help="period start, ISO 8601 (inclusive)")
    usage.add_argument("--to", dest="end", default=None, help="period end, ISO 8601 (exclusive; default: now)")
    usage.add_argument("--group", default=None, help="split settled totals by payer and/or payTo (payer,payTo)")
    usage.add_argument("--records", action="store_true", help="every request instead of totals")
    usage.add_argument("--receipts", action="store_true", help="every receipt (settled payment) instead of totals")
    usage.add_argument("--format", choices=("text", "json", "jsonl", "csv"), default="text", help="output format")
    usage.add_argument("--output", type=Path, default=None, help="write to FILE instead of stdout")
    usage.set_defaults(handler=_usage)

    receipt = commands.add_parser("receipt", help="check settlement receipts against the chain")
    receipt_commands = receipt.add_subparsers(dest="receipt_command", required=True, metavar="ACTION")
    check = receipt_commands.add_parser("verify", help="check receipts against the chain alone")
    check.add_argument("file", type=Path, help="a receipt, a /settle answer holding one, or JSON lines of them")
    add_rpc_url_option(check, required=True)
    check.add_argument("--payload", type=Path, default=None, help="the paymentPayload JSON, to check its digest")
    check.set_defaults(handler=_receipt_verify)


def _limits(args: argparse.Namespace) -> Any:
    from og_settle.facilitator._limits import KeyLimits, parse_quota, parse_rate

    return KeyLimits(
        verify_per_second=None if args.verify_rps is None else parse_rate(args.verify_rps, "--verify-rps"),
        settle_per_second=None if args.settle_rps is None else parse_rate(args.settle_rps, "--settle-rps"),
        quotas=tuple(parse_quota(spec) for spec in args.quota),
    )


def _limits_json(limits: Any) -> dict[str, Any]:
    return {
        "verifyPerSecond": limits.verify_per_second,
        "settlePerSecond": limits.settle_per_second,
        "quotas": [q.spec() for q in limits.quotas],
    }


def _keys(args: argparse.Namespace) -> int:
    from og_settle.facilitator import open_settlement_store
    from og_settle.facilitator._auth import MIN_KEY_LENGTH
    from og_settle.facilitator._limits import KeyLimits

    name: str = getattr(args, "name", "") or ""
    if args.keys_command != "list" and (not name or not set(name) <= _KEY_NAME_CHARS or len(name) > 64):
        raise InvalidInput(f"--name: expected 1-64 letters, digits, '-', '_' or '.', got {name!r}")
    limits = _limits(args) if args.keys_command in ("add", "set") else KeyLimits()
    key = None
    if args.keys_command == "add":
        if args.key_env is not None:
            key = os.environ.get(args.key_env, "").strip()
            if len(key) < MIN_KEY_LENGTH:
                raise InvalidInput(f"--key-env: {args.key_env} must hold a key of at least {MIN_KEY_LENGTH} characters")
        else:
            key = secrets.token_urlsafe(32)
    store = open_settlement_store(args.store)
    try:
        if args.keys_command == "add":
            assert key is not None
            store.put_key(name, hashlib.sha256(key.encode()).hexdigest(), limits)
            shown = {"name": name, **_limits_json(limits)}
            if args.key_env is None:
                shown["key"] = key  # shown once: the store keeps only its digest
            print(json.dumps(shown) if args.json else " ".join(f"{k}={v}" for k, v in shown.items()))
        elif args.keys_command == "set":
            store.put_key(name, None, limits)
            print(json.dumps({"name": name, **_limits_json(limits)}) if args.json else f"{name}: limits replaced")
        elif args.keys_command == "remove":
            if not store.remove_key(name):
                raise InvalidInput(f"--name: no key named {name!r} in the store")
            print(json.dumps({"removed": name}) if args.json else f"{name}: removed")
        else:
            for key_name, key_limits in store.list_keys():
                row = {"name": key_name, **_limits_json(key_limits)}
                print(json.dumps(row) if args.json else " ".join(f"{k}={v}" for k, v in row.items()))
    finally:
        store.close()
    return 0


def _usage(args: argparse.Namespace) -> int:
    from og_settle.facilitator import open_settlement_store
    from og_settle.facilitator._usage import parse_groups, parse_period, usage_totals, write_records

    begin, end = parse_period(args.start, args.end, now=time.time())
    groups = parse_groups(args.group)
    if args.records and args.receipts:
        raise InvalidInput("--records/--receipts: choose one")
    if args.output is not None and args.output.is_dir():
        raise InvalidInput(f"--output: {args.output} is a directory")
    if args.store and not args.store.startswith(("postgres://", "postgresql://")) and not Path(args.store).is_file():
        raise InvalidInput(f"--store: no facilitator store at {args.store}")
    store = open_settlement_store(args.store)
    try:
        if args.records or args.receipts:
            rows = (
                [r.to_json() for r in store.usage_records(args.key, begin, end)]
                if args.records
                else [r.to_json() for r in store.receipts_between(args.key, begin, end)]
            )
            fmt = "jsonl" if args.format in ("text", "json") else args.format
            text = json.dumps(rows, indent=2) + "\n" if args.format == "json" else write_records(rows, fmt)
        else:
            keys = (
                [args.key] if args.key is not None else sorted({name for name, _ in store.list_keys()} | _seen(store))
            )
            reports = [usage_totals(key, begin, end, store.usage_records(key, begin, end), groups) for key in keys]
            text = _render(reports, args.format, groups)
    finally:
        store.close()
    if args.output is None:
        sys.stdout.write(text)
    else:
        try:
            args.output.write_text(text, encoding="utf-8")
        except OSError as err:
            raise InvalidInput(f"--output: cannot write {args.output}: {err.strerror or err}") from None
    return 0


def _seen(store: Any) -> set[str]:
    """The key names usage was recorded under (keys from files or the environment are not in the keys table)."""
    return {record.key for record in store.usage_records(None, 0.0, time.time() + 1)}


def _render(reports: list[dict[str, Any]], fmt: str, groups: tuple[str, ...]) -> str:
    from og_settle.facilitator._usage import write_records

    if fmt == "json":
        return json.dumps(reports, indent=2) + "\n"
    if fmt == "jsonl":
        return write_records(reports, "jsonl")
    rows = []
    for report in reports:
        counts = {f"{e}_{o}": n for e, by in report["requests"].items() for o, n in sorted(by.items())}
        for settled in report["settled"] or [{}]:
            rows.append({"key": report["key"], "from": report["from"], "to": report["to"], **settled, **counts})
    if fmt == "csv":
        names: list[str] = []
        for row in rows:
            names += [k for k in row if k not in names]
        return write_records([{n: row.get(n) for n in names} for row in rows], "csv")
    return "".join(" ".join(f"{k}={v}" for k, v in row.items()) + "\n" for row in rows)


def _receipts_in(path: Path) -> list[tuple[int, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInput(f"{path}: cannot read: {err}") from None
    try:
        whole = json.loads(text)
        documents = [(1, whole)]
    except json.JSONDecodeError:
        documents = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    documents.append((number, json.loads(line)))
                except json.JSONDecodeError as err:
                    raise InvalidInput(f"{path}:{number}: not JSON: {err.msg}") from None
    if not documents:
        raise InvalidInput(f"{path}: holds no receipt")
    found = []
    for number, document in documents:
        if isinstance(document, dict) and isinstance(document.get("extensions"), dict):
            document = (document["extensions"].get("og-settle") or {}).get("receipt", document)
        found.append((number, document))
    return found


def _receipt_verify(args: argparse.Namespace) -> int:
    from og_settle.clients import make_web3
    from og_settle.facilitator import Receipt, check_receipt
    from og_settle.facilitator._receipts import payload_digest

    receipts = [(n, Receipt.from_json(doc, f"{args.file}:{n}")) for n, doc in _receipts_in(args.file)]
    digest = None
    if args.payload is not None:
        try:
            digest = payload_digest(json.loads(args.payload.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InvalidInput(f"--payload: cannot read JSON from {args.payload}: {err}") from None
    w3 = make_web3(args.rpc_url)
    failed = 0
    for number, receipt in receipts:
        try:
            problems = check_receipt(receipt, w3)
        except Exception as err:  # the node: unreachable, or an answer web3 cannot read
            raise InvalidInput(f"--rpc-url: cannot read the chain at {args.rpc_url}: {type(err).__name__}") from None
        if digest is not None and digest != receipt.payload_digest:
            problems.append(f"payloadDigest: the payload's digest is {digest}, not {receipt.payload_digest}")
        where = f"{args.file}:{number}" if len(receipts) > 1 else str(args.file)
        if problems:
            failed += 1
            print(f"{where}: receipt does not hold: {'; '.join(problems)}")
        else:
            print(
                f"{where}: ok: {receipt.amount} of {receipt.asset} from {receipt.payer} to {receipt.pay_to} in"
                f" {receipt.transaction} (block {receipt.block_number}, log {receipt.log_index})"
            )
    return 1 if failed else 0
