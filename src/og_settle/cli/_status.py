"""``og-settle status``: the settlement status of a batch, an inference or a payment, read from the chain.

Exit code 0 when it is settled on chain, 1 when it is not, 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from og_settle._errors import InvalidInput
from og_settle.cli._network import (
    add_network_option,
    add_rpc_url_option,
    check_node_network,
    node_web3,
    require_deployed,
)


def register(groups: Any) -> None:
    status = groups.add_parser("status")
    kinds = status.add_subparsers(dest="what", required=True, metavar="WHAT")

    batch = kinds.add_parser("batch", help="is this Merkle root recorded? (batch id, size, relayer, time)")
    _chain_args(batch)
    batch.add_argument("root", help="the batch's Merkle root (0x + 64 hex digits)")
    batch.set_defaults(handler=_batch)

    inference = kinds.add_parser(
        "inference",
        help="is this inference settled? by its digest (individual, metadata), or by its record and the batch dump",
    )
    _chain_args(inference)
    inference.add_argument("digest", nargs="?", default=None, help="the EIP-712 digest it was settled under")
    inference.add_argument(
        "--leaf",
        default=None,
        help="the batch leaf as JSON {tee_id, input_hash, output_hash, tee_signature, timestamp}",
    )
    inference.add_argument("--dump", type=Path, default=None, help="the batch's standard-v1 tree dump (with --leaf)")
    inference.add_argument(
        "--record",
        type=Path,
        default=None,
        help="an individual or metadata record as given to `relayer submit` (a JSON file; its first line if JSONL): "
        "checked under the digest it settles under",
    )
    inference.set_defaults(handler=_inference)

    payment = kinds.add_parser("payment", help="is this (payer, Permit2 nonce) spent, and by which settlement?")
    _chain_args(payment)
    payment.add_argument("payer", nargs="?", default=None, help="the payer's address (default: the --payload's)")
    payment.add_argument(
        "nonce", nargs="?", default=None, help="the Permit2 nonce, decimal or 0x hex (default: the --payload's)"
    )
    payment.add_argument("--from-block", type=int, default=0, help="first block to search for the settlement event")
    payment.add_argument(
        "--payload",
        type=Path,
        default=None,
        help="the x402 payment payload JSON (or a relayer payment record): settled only if the settlement that "
        "spent the nonce paid exactly this payment (without it, a spent nonce is reported but not called settled)",
    )
    payment.add_argument("--amount", default=None, help="with --payload, upto only: the metered amount to expect")
    payment.add_argument(
        "--input-hash",
        default=None,
        help="with --request-nonce: also check that the payment paid for the request with this input hash "
        "(its requestHash = og_settle.request_binding(input hash, nonce))",
    )
    payment.add_argument("--request-nonce", default=None, help="the request's 32-byte nonce (0x hex)")
    payment.set_defaults(handler=_payment)


def _chain_args(parser: argparse.ArgumentParser) -> None:
    add_rpc_url_option(parser, required=True, dest="rpc")
    parser.add_argument("--deployment", type=Path, required=True, help="deployments/<chain id>.json")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_network_option(parser)


def _clients(args: argparse.Namespace) -> tuple[Any, Any]:
    from og_settle._deploy import load_deployment
    from og_settle.clients import RetryPolicy

    deployment = load_deployment(args.deployment)
    check_node_network(args, args.rpc)
    w3 = node_web3(args.rpc)
    require_deployed(w3, deployment, args.deployment)
    return deployment, (w3, RetryPolicy(max_elapsed=20.0))


def _emit(args: argparse.Namespace, body: dict[str, Any], text: str) -> int:
    print(json.dumps(body) if args.json else text)
    return 0 if body.get("settled") else 1


def _batch(args: argparse.Namespace) -> int:
    from og_settle._hex import parse_bytes32, to_hex
    from og_settle.clients import SettlementRegistryClient

    root = parse_bytes32(args.root, "root")
    deployment, (w3, retry) = _clients(args)
    recorded = SettlementRegistryClient(w3, deployment.settlement_registry, retry=retry).get_batch(root)
    if recorded is None:
        return _emit(args, {"root": to_hex(root), "settled": False}, f"batch {to_hex(root)}: not recorded")
    body = {
        "root": to_hex(root),
        "settled": True,
        "batch_id": recorded.batch_id,
        "size": recorded.size,
        "relayer": recorded.relayer,
        "recorded_at": recorded.recorded_at,
    }
    text = (
        f"batch {to_hex(root)}: recorded as batch {recorded.batch_id}, {recorded.size} inferences, by "
        f"{recorded.relayer} at {recorded.recorded_at}"
    )
    return _emit(args, body, text)


def _inference(args: argparse.Namespace) -> int:
    from og_settle._hex import parse_bytes32, to_hex
    from og_settle._merkle import OG_LEAF_ENCODING, InferenceLeaf, StandardMerkleTree, leaf_hash
    from og_settle.clients import ContractRevert, SettlementRegistryClient

    if [args.digest, args.leaf, args.record].count(None) != 2:
        raise InvalidInput("give one of: a digest or --record (individual or metadata), or --leaf with --dump (batch)")
    deployment, (w3, retry) = _clients(args)
    if args.record is not None:
        args.digest = to_hex(_record_digest(args.record, deployment))
    registry = SettlementRegistryClient(w3, deployment.settlement_registry, retry=retry)
    if args.digest is not None:
        digest = parse_bytes32(args.digest, "digest")
        settlement = registry.get_settlement(digest)
        if settlement is None:
            return _emit(args, {"digest": to_hex(digest), "settled": False}, f"inference {to_hex(digest)}: not settled")
        body = {
            "digest": to_hex(digest),
            "settled": True,
            "mode": settlement.kind,
            "relayer": settlement.relayer,
            "recorded_at": settlement.recorded_at,
        }
        text = (
            f"inference {to_hex(digest)}: settled ({settlement.kind}) by {settlement.relayer} "
            f"at {settlement.recorded_at}"
        )
        return _emit(args, body, text)
    if args.dump is None:
        raise InvalidInput("--dump: a batch inference needs the batch's tree dump to build its proof")
    try:
        leaf = InferenceLeaf.from_json(json.loads(args.leaf))
    except json.JSONDecodeError as err:
        raise InvalidInput(f"--leaf: not JSON ({err})") from None
    if not args.dump.is_file():
        raise InvalidInput(f"--dump: {args.dump} is not a file")
    tree = StandardMerkleTree.load_json(args.dump.read_bytes())
    hashed = leaf_hash(OG_LEAF_ENCODING, leaf.values())
    proof = tree.proof(tree.index_of(hashed))
    recorded = registry.get_batch(tree.root)
    # verifyInferenceSignature: the root is recorded, the proof holds, AND the leaf's TEE is active and signed it.
    try:
        batch_id, signer = registry.verify_inference_signature(tree.root, leaf, proof)
        failed = None
    except ContractRevert as err:
        failed = err.error.name
    body = {
        "leaf_hash": to_hex(hashed),
        "root": to_hex(tree.root),
        "settled": failed is None,
        "batch_id": None if recorded is None else recorded.batch_id,
        "proof": [to_hex(p) for p in proof],
    }
    if failed is None:
        body["signer"] = signer
        by = signer if int(signer, 16) else f"the RSA TEE {to_hex(leaf.tee_id)}"  # RSA TEEs have no signer address
        text = f"inference {to_hex(hashed)}: settled in batch {batch_id} (root {to_hex(tree.root)}), signed by {by}"
    else:
        body["reason"] = failed
        text = f"inference {to_hex(hashed)}: not settled ({failed}; root {to_hex(tree.root)})"
    return _emit(args, body, text)


def _payment(args: argparse.Namespace) -> int:
    from og_settle._binding import request_binding
    from og_settle._hex import parse_address, parse_uint256, to_hex
    from og_settle.clients import PaymentFacilitatorClient, Permit2Client

    if args.payer is None or args.nonce is None:
        if args.payload is None or args.payer is not None:
            raise InvalidInput("payer, nonce: give both, or leave both out and give --payload")
        args.payer, args.nonce = _payer_and_nonce(args.payload)
    payer = parse_address(args.payer, "payer")
    try:
        nonce = parse_uint256(int(args.nonce, 0) if isinstance(args.nonce, str) else args.nonce, "nonce")
    except ValueError:
        raise InvalidInput(f"nonce: expected a decimal or 0x hex integer, got {args.nonce!r}") from None
    expected = None if args.payload is None else _payment_from_file(args.payload, args.amount, payer, nonce)
    link = _request_link(args)
    deployment, (w3, retry) = _clients(args)
    spent = Permit2Client(w3, deployment.permit2, retry=retry).nonce_spent(payer, nonce)
    found = None
    if spent:
        facilitator = PaymentFacilitatorClient(w3, deployment.payment_facilitator, retry=retry)
        found = facilitator.settled_payment(payer, nonce, from_block=args.from_block)
    body: dict[str, Any] = {"payer": payer, "nonce": str(nonce), "nonce_spent": spent, "settled": False}
    name = f"payment {payer}/{nonce}"
    if found is None:
        if spent:
            text = f"{name}: the Permit2 nonce is spent, but not by this facilitator"
        else:
            text = f"{name}: not settled (the Permit2 nonce is unspent)"
        body["detail"] = text.split(": ", 1)[1]
        return _emit(args, body, text)
    body.update(
        tx_hash=to_hex(found.tx_hash),
        block=found.block_number,
        amount=str(found.amount),
        to=found.to,
        token=found.token,
    )
    if expected is None:
        # (payer, nonce) does not identify a payment: the payer may have spent the nonce on another one.
        body["detail"] = f"the nonce was spent by a settlement of {found.describe()}; pass --payload to check it"
        return _emit(args, body, f"{name}: {body['detail']}")
    payment, upto_any = expected
    mismatch = found.mismatch(payment, any_amount_up_to_permitted=upto_any)
    if mismatch is not None:
        body["detail"] = f"the nonce was spent by a different payment ({found.describe()}; {mismatch})"
        return _emit(args, body, f"{name}: NOT settled: {body['detail']}")
    body.update(settled=True, detail=f"settled: {found.describe()}")
    text = f"{name}: settled in {to_hex(found.tx_hash)} (block {found.block_number})"
    if link is not None:
        input_hash, request_nonce = link
        linked = found.request_hash == request_binding(input_hash, request_nonce)
        body["pays_for"] = {"input_hash": to_hex(input_hash), "request_nonce": to_hex(request_nonce), "linked": linked}
        if not linked:
            body["settled"] = False
            body["detail"] = "settled, but for another request: its requestHash is not this request's binding"
            return _emit(args, body, f"{name}: {body['detail']}")
        text += f"; it paid for the request with input hash {to_hex(input_hash)}"
    return _emit(args, body, text)


def _request_link(args: argparse.Namespace) -> tuple[bytes, bytes] | None:
    """(input hash, request nonce) from --input-hash / --request-nonce, or None; they go together."""
    from og_settle._hex import parse_bytes32

    if (args.input_hash is None) != (args.request_nonce is None):
        raise InvalidInput("--input-hash and --request-nonce go together")
    if args.input_hash is None:
        return None
    if args.payload is None:
        raise InvalidInput("--input-hash: also pass --payload (the payment must be identified first)")
    return parse_bytes32(args.input_hash, "--input-hash"), parse_bytes32(args.request_nonce, "--request-nonce")


def _record_digest(path: Path, deployment: Any) -> bytes:
    """The EIP-712 digest an individual or metadata relayer record settles under (its queue key), the record
    checked as intake checks it at its own timestamp."""
    from og_settle.relayer import IntakeConfig, Rejected, parse_record

    try:
        with path.open("rb") as handle:
            record = json.loads(handle.readline())
    except OSError as err:
        raise InvalidInput(f"--record: cannot read {path}: {err.strerror or err}") from None
    except ValueError as err:
        raise InvalidInput(f"--record: {path} does not start with a JSON record ({err})") from None
    stamp = record.get("timestamp") if isinstance(record, dict) else None
    try:
        item = parse_record(record, IntakeConfig(deployment), source=str(path), now=stamp if type(stamp) is int else 0)
    except Rejected as err:
        raise InvalidInput(f"--record: {path}: {err}") from None
    if item.lane is None or item.lane.value not in ("individual", "metadata"):
        raise InvalidInput(f"--record: {path} is not an individual or metadata record (a batch leaf needs --leaf)")
    return item.key


def _read_payload(path: Path) -> tuple[Any, Any]:
    """The JSON document in ``path``, and the x402 ``paymentPayload`` in it (a payload, or a relayer record)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InvalidInput(f"--payload: cannot read {path}: {err.strerror or err}") from None
    except ValueError as err:
        raise InvalidInput(f"--payload: {path} is not JSON ({err})") from None
    if isinstance(document, dict) and "paymentPayload" in document:
        return document, document["paymentPayload"]
    return document, document


def _payer_and_nonce(path: Path) -> tuple[str, int]:
    from og_settle._x402 import PaymentPayload

    auth = PaymentPayload.from_json(_read_payload(path)[1]).payload.authorization
    return auth.owner, auth.nonce


def _payment_from_file(path: Path, amount: str | None, payer: str, nonce: int) -> tuple[Any, bool]:
    """The ``IPaymentFacilitator.Payment`` tuple of the payload in ``path`` and whether any amount up to the
    permitted one is acceptable (upto without ``--amount``)."""
    from og_settle._hex import parse_uint256
    from og_settle._x402 import PaymentPayload

    document, inner = _read_payload(path)
    if inner is not document:
        amount = amount if amount is not None else document.get("amount")
    payload = PaymentPayload.from_json(inner)
    auth = payload.payload.authorization
    if auth.owner.lower() != payer.lower() or auth.nonce != nonce:
        raise InvalidInput(f"--payload: it is the payment {auth.owner}/{auth.nonce}, not {payer}/{nonce}")
    settled = None if amount is None else parse_uint256(int(str(amount), 0), "amount")
    return auth.payment_args(payload.payload.signature, settled), auth.scheme.is_upto and settled is None
