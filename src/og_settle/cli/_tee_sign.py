"""``og-settle tee sign``: sign an inference with a secp256k1 TEE key, as the enclave would, and print the relayer
record (one JSON line for ``og-settle relayer submit``).

An enclave holds its key and signs inside; this command holds the key in a file or a variable, so it stands in for
the enclave (local runs, tests, walkthroughs). What it signs is what an enclave signs: the SettlementRegistry's
EIP-712 ``Inference`` (batch and private leaves), ``IndividualSettlement`` or ``MetadataSettlement``, in the
deployment's domain (its chain id and registry).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from og_settle._errors import InvalidInput

_MODES = ("individual", "batch", "private", "metadata")


def add_sign(commands: Any, tee_key_args: Callable[[argparse.ArgumentParser], None]) -> None:
    sign = commands.add_parser(
        "sign",
        help="sign an inference with a secp256k1 TEE key (a stand-in for the enclave) and print its relayer record",
    )
    sign.add_argument("--deployment", type=Path, required=True, help="deployments/<chain id>.json (the EIP-712 domain)")
    tee_key_args(sign)
    sign.add_argument("--mode", choices=_MODES, default="individual", help="the settlement mode (default: individual)")
    sign.add_argument("--input-hash", default=None, help="keccak256 of the request (0x + 64 hex digits)")
    sign.add_argument("--output-hash", default=None, help="keccak256 of the response (0x + 64 hex digits)")
    sign.add_argument(
        "--payer",
        default=None,
        help="the account that paid: signed in individual and metadata records, kept unsigned with a batch leaf",
    )
    sign.add_argument("--model", default=None, help="metadata: the model id")
    sign.add_argument("--input", default=None, help="metadata: the request text")
    sign.add_argument("--output", default=None, help="metadata: the response text")
    sign.add_argument("--metadata", default="", help="metadata: extra metadata text (default: empty)")
    sign.add_argument("--timestamp", type=int, default=None, help="the signed time in Unix seconds (default: now)")
    sign.add_argument("--ref", default=None, help="your own reference, kept with the record")
    sign.set_defaults(handler=_sign)


def _sign(args: argparse.Namespace) -> int:
    from og_settle._attestation import (
        IndividualSettlement,
        InferenceAttestation,
        MetadataSettlement,
        settlement_domain,
    )
    from og_settle._deploy import load_deployment
    from og_settle._hex import parse_address, parse_bytes32, to_hex
    from og_settle.tee import RsaTeeKey, load_signing_key

    deployment = load_deployment(args.deployment)
    if args.tee_key_env is not None:
        key = load_signing_key(env=args.tee_key_env)
    else:
        key = load_signing_key(path=args.tee_key_file)
    if isinstance(key, RsaTeeKey):
        raise InvalidInput(
            "--tee-key-file/--tee-key-env: an RSA TEE signs OpenGradient's settlement data, not these EIP-712 "
            "records: queue what its gateway sends (settlement_data records, or `og-settle gateway serve --queue`)"
        )
    timestamp = int(time.time()) if args.timestamp is None else args.timestamp
    domain = settlement_domain(deployment.chain_id, deployment.settlement_registry)
    record: dict[str, Any] = {"kind": "inference", "mode": args.mode}
    if args.ref is not None:
        record["ref"] = args.ref
    record.update(tee_id=to_hex(key.tee_id), timestamp=timestamp)
    _only_for(args, "metadata", ("model", "input", "output"))
    if args.mode == "metadata":
        for flag in ("input_hash", "output_hash"):
            if getattr(args, flag) is not None:
                raise InvalidInput(f"--{flag.replace('_', '-')}: a metadata record carries --input and --output")
        payer = parse_address(_required(args, "payer"), "--payer")
        model, given_input, given_output = (_required(args, name) for name in ("model", "input", "output"))
        meta = MetadataSettlement(
            key.tee_id, timestamp, payer, model, given_input.encode(), given_output.encode(), args.metadata.encode()
        )
        signature = key.sign_metadata(domain, meta)
        record.update(payer=payer, model=model, input=given_input, output=given_output, metadata=args.metadata)
    else:
        input_hash = parse_bytes32(_required(args, "input_hash"), "--input-hash")
        output_hash = parse_bytes32(_required(args, "output_hash"), "--output-hash")
        record.update(input_hash=to_hex(input_hash), output_hash=to_hex(output_hash))
        if args.mode == "individual":
            payer = parse_address(_required(args, "payer"), "--payer")
            individual = IndividualSettlement(key.tee_id, input_hash, output_hash, timestamp, payer)
            signature = key.sign_individual(domain, individual)
            record["payer"] = payer
        else:
            if args.payer is not None:  # not signed: kept with the leaf as the relayer's word
                record["payer"] = parse_address(args.payer, "--payer")
            signature = key.sign_inference(domain, InferenceAttestation(key.tee_id, input_hash, output_hash, timestamp))
    record["tee_signature"] = to_hex(signature)
    print(json.dumps(record))
    return 0


def _required(args: argparse.Namespace, name: str) -> str:
    value = getattr(args, name)
    if value is None:
        raise InvalidInput(f"--{name.replace('_', '-')}: required for --mode {args.mode}")
    return str(value)


def _only_for(args: argparse.Namespace, mode: str, names: tuple[str, ...]) -> None:
    if args.mode == mode:
        return
    for name in names:
        if getattr(args, name) is not None:
            raise InvalidInput(f"--{name}: only --mode {mode} records carry it")
