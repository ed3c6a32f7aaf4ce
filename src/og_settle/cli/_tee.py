"""``og-settle tee``: register a TEE (RSA or secp256k1), send its heartbeat, list and show registered TEEs.

- ``tee register``: the TEE's private key (a PEM RSA key, as OpenGradient's enclaves hold, or a secp256k1 key as
  ``0x`` + 64 hex digits) signs the proof of possession, bound to this chain, this registry and the operator; the
  operator (``OPERATOR_ROLE``) sends ``registerRsaTee`` / ``registerTee``. The measurement is given as its 32-byte
  hash or as AWS Nitro's three PCRs (``pcrHash = keccak256(pcr0 ‖ pcr1 ‖ pcr2)``); it must be approved, and
  ``--type`` (when given) must be the TEE type it was approved for.
- ``tee approve``: an admin approves a measurement (or PCRs) for a TEE type, adding the type's name if it is new.
- ``tee heartbeat``: the TEE signs its liveness at a timestamp (RSA: PSS over ``keccak256(teeId ‖ uint256
  timestamp)``, as OpenGradient's enclaves; secp256k1: ECDSA over the registry's EIP-712 ``Heartbeat``); anyone
  relays it.
- ``tee list`` (active TEEs, by type or owner) and ``tee show TEE_ID`` read the registry.

Private keys come only from environment variables or files, never from the command line: the TEE's from
``--tee-key-file`` or ``--tee-key-env``, the sending account's from ``--sender-key-env``. Errors are one line; a
transaction the registry refuses names the contract's error. Exit codes: 0 done, 1 refused on chain (or, for
``show``, not registered), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from og_settle._errors import InvalidInput
from og_settle.cli._keys import account_from_env
from og_settle.cli._network import add_rpc_url_option, node_web3, require_deployed

_SENDER_ENV_DEFAULT = "OG_SETTLE_OPERATOR_KEY"
_ZERO32 = bytes(32)


def register(groups: Any) -> None:
    tee = groups.add_parser("tee")
    commands = tee.add_subparsers(dest="tee_command", required=True, metavar="SUBCOMMAND")

    reg = commands.add_parser("register", help="register a TEE key under an approved measurement (OPERATOR_ROLE)")
    _chain_args(reg)
    _tee_key_args(reg)
    _sender_arg(reg, "the operator (OPERATOR_ROLE) that sends the registration and owns the TEE")
    _measurement_args(reg)
    reg.add_argument("--type", type=int, default=None, help="the TEE type the measurement must be approved for")
    reg.add_argument("--endpoint", required=True, help="the TEE's public endpoint (URL)")
    reg.add_argument("--payment-address", required=True, help="where payments for this TEE's inferences go")
    attestation = reg.add_mutually_exclusive_group(required=True)
    attestation.add_argument("--attestation", type=Path, help="the attestation report file (its keccak256 is stored)")
    attestation.add_argument("--attestation-hash", help="keccak256 of the attestation report (0x + 64 hex digits)")
    tls = reg.add_mutually_exclusive_group()
    tls.add_argument("--tls-cert", type=Path, help="the TEE's TLS certificate, DER or PEM (RSA TEEs; hash pinned)")
    tls.add_argument("--tls-cert-hash", help="keccak256 of the TLS certificate's DER (RSA TEEs)")
    reg.set_defaults(handler=_register)

    approve = commands.add_parser("approve", help="approve a measurement or Nitro PCRs for a TEE type (ADMIN_ROLE)")
    _chain_args(approve)
    _sender_arg(approve, "the admin (ADMIN_ROLE)")
    _measurement_args(approve)
    approve.add_argument("--type", type=int, required=True, help="the TEE type (uint8; 0 = LLMProxy)")
    approve.add_argument("--type-name", default=None, help="name the type first if it is not defined yet")
    approve.add_argument("--version", required=True, help="a label for the enclave build, e.g. 'tee-gateway v1.4.2'")
    approve.set_defaults(handler=_approve)

    beat = commands.add_parser("heartbeat", help="sign and send a TEE's heartbeat (anyone may relay it)")
    _chain_args(beat)
    _tee_key_args(beat)
    _sender_arg(beat, "the account that relays the heartbeat")
    beat.add_argument(
        "--timestamp", type=int, default=None, help="the signed time (default: the chain's latest block time)"
    )
    beat.set_defaults(handler=_heartbeat)

    listing = commands.add_parser("list", help="active TEEs, optionally of one type or one owner")
    _chain_args(listing)
    who = listing.add_mutually_exclusive_group()
    who.add_argument("--type", type=int, default=None, help="only TEEs of this type")
    who.add_argument("--owner", default=None, help="only TEEs this operator registered")
    listing.set_defaults(handler=_list)

    show = commands.add_parser("show", help="one TEE's record, key and liveness")
    _chain_args(show)
    show.add_argument("tee_id", help="the TEE's id (0x + 64 hex digits)")
    show.set_defaults(handler=_show)

    from og_settle.cli._tee_sign import add_sign

    add_sign(commands, _tee_key_args)


def _chain_args(parser: argparse.ArgumentParser) -> None:
    add_rpc_url_option(parser, required=True, dest="rpc")
    parser.add_argument("--deployment", type=Path, required=True, help="deployments/<chain id>.json")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _tee_key_args(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--tee-key-file", type=Path, help="file holding the TEE's private key (PEM RSA, or 0x hex)")
    source.add_argument("--tee-key-env", help="environment variable holding the TEE's private key")


def _sender_arg(parser: argparse.ArgumentParser, who: str) -> None:
    parser.add_argument(
        "--sender-key-env",
        default=_SENDER_ENV_DEFAULT,
        help=f"environment variable holding the private key of {who} (default: {_SENDER_ENV_DEFAULT})",
    )


def _measurement_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--measurement", help="the measurement hash (0x + 64 hex digits)")
    group.add_argument("--pcrs", nargs=3, metavar=("PCR0", "PCR1", "PCR2"), help="AWS Nitro PCRs, 48 bytes each (hex)")


def _hex_arg(value: str, flag: str, length: int | None = None) -> bytes:
    from og_settle._hex import parse_hex_bytes

    text = value.strip()
    data = parse_hex_bytes(text if text.startswith(("0x", "0X")) else "0x" + text, flag)
    if length is not None and len(data) != length:
        raise InvalidInput(f"{flag}: expected {length} bytes, got {len(data)}")
    return data


def _measurement(args: argparse.Namespace) -> tuple[bytes, tuple[bytes, bytes, bytes] | None]:
    from og_settle._hex import keccak256

    if args.pcrs is not None:
        pcrs = tuple(_hex_arg(p, f"--pcrs (pcr{i})", 48) for i, p in enumerate(args.pcrs))
        return keccak256(b"".join(pcrs)), (pcrs[0], pcrs[1], pcrs[2])
    return _hex_arg(args.measurement, "--measurement", 32), None


class _Chain:
    """The node, the deployment and the registry client, checked to belong together."""

    def __init__(self, args: argparse.Namespace) -> None:
        from og_settle._deploy import load_deployment
        from og_settle.clients import RetryPolicy, TeeRegistryClient

        self.deployment = load_deployment(args.deployment)
        self.w3 = node_web3(args.rpc)
        _node(lambda: require_deployed(self.w3, self.deployment, args.deployment), args.rpc)
        self.registry = TeeRegistryClient(self.w3, self.deployment.tee_registry, retry=RetryPolicy(max_elapsed=20.0))
        self.rpc = args.rpc

    def read(self, fn: Any) -> Any:
        return _node(fn, self.rpc)

    def sender(self, variable: str) -> Any:
        from og_settle.clients import TxSender

        account = account_from_env(variable, option="--sender-key-env", holder="the sending account")
        return TxSender(self.w3, account)

    def send(self, sender: Any, call: Any) -> Any:
        return self.read(lambda: sender.send(call))


def _node(fn: Any, rpc: str) -> Any:
    """Run a chain call; an unreachable node is one line (InvalidInput), a revert stays a ContractRevert."""
    from og_settle.clients import ContractRevert, NodeUnavailable, is_connection_error

    try:
        return fn()
    except ContractRevert:
        raise
    except NodeUnavailable as err:
        raise InvalidInput(f"--rpc-url: the node at {rpc} does not answer ({err})") from None
    except Exception as err:
        if is_connection_error(err):
            raise InvalidInput(f"--rpc-url: cannot reach the node at {rpc} ({type(err).__name__})") from None
        raise


def _refused(args: argparse.Namespace, err: Any, **context: Any) -> int:
    """A transaction or read the contract refused: one line naming its error."""
    body = {"ok": False, "error": err.error.name, "detail": str(err), **context}
    if args.json:
        print(json.dumps(body))
    else:
        print(f"og-settle: refused on chain: {err}")
    return 1


def _emit(args: argparse.Namespace, body: dict[str, Any], text: str) -> int:
    print(json.dumps(body) if args.json else text)
    return 0


def _signing_key(args: argparse.Namespace) -> Any:
    from og_settle.tee import load_signing_key

    if args.tee_key_env is not None:
        return load_signing_key(env=args.tee_key_env)
    return load_signing_key(path=args.tee_key_file)


def _file_hash(path: Path, flag: str) -> bytes:
    from og_settle._hex import keccak256

    try:
        return keccak256(path.read_bytes())
    except OSError as err:
        raise InvalidInput(f"{flag}: cannot read {path} ({err.strerror})") from None


def _tls_hash(args: argparse.Namespace) -> bytes:
    from og_settle._hex import keccak256

    if args.tls_cert_hash is not None:
        return _hex_arg(args.tls_cert_hash, "--tls-cert-hash", 32)
    if args.tls_cert is None:
        return _ZERO32
    try:
        data = args.tls_cert.read_bytes()
    except OSError as err:
        raise InvalidInput(f"--tls-cert: cannot read {args.tls_cert} ({err.strerror})") from None
    if b"-----BEGIN CERTIFICATE-----" in data:
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        try:
            data = x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
        except ValueError:
            raise InvalidInput(f"--tls-cert: {args.tls_cert} is not a readable PEM certificate") from None
    return keccak256(data)


def _check_measurement(chain: _Chain, measurement: bytes, tee_type: int | None) -> None:
    from og_settle._hex import to_hex

    status, approved_type, _, version = chain.read(lambda: chain.registry.get_measurement(measurement))
    if status != "approved":
        raise InvalidInput(
            f"--measurement: {to_hex(measurement)} is not approved ({status}); an admin approves it first "
            "(og-settle tee approve)"
        )
    if tee_type is not None and approved_type != tee_type:
        raise InvalidInput(
            f"--type: the measurement {to_hex(measurement)} ({version}) is approved for TEE type {approved_type}, "
            f"not {tee_type}"
        )


def _register(args: argparse.Namespace) -> int:
    from og_settle._attestation import RsaTeeRegistration, TeeRegistration, tee_registry_domain
    from og_settle._hex import parse_address, to_hex
    from og_settle.clients import ContractRevert
    from og_settle.tee import RsaTeeKey

    key = _signing_key(args)
    measurement, _ = _measurement(args)
    attestation = (
        _file_hash(args.attestation, "--attestation")
        if args.attestation is not None
        else _hex_arg(args.attestation_hash, "--attestation-hash", 32)
    )
    payment = parse_address(args.payment_address, "--payment-address")
    chain = _Chain(args)
    sender = chain.sender(args.sender_key_env)
    domain = tee_registry_domain(chain.deployment.chain_id, chain.deployment.tee_registry)
    if isinstance(key, RsaTeeKey):
        rsa = RsaTeeRegistration(key.public.der, measurement, attestation, _tls_hash(args), payment, args.endpoint)
        proof = key.sign(domain.digest(rsa.struct_hash(sender.address)))
        call = chain.registry.register_rsa_tee_call(rsa, proof)
        kind = "rsa"
    else:
        if args.tls_cert is not None or args.tls_cert_hash is not None:
            raise InvalidInput("--tls-cert: only RSA TEEs pin a TLS certificate in the registry")
        ec = TeeRegistration(key.public_key, measurement, attestation, payment, args.endpoint)
        call = chain.registry.register_tee_call(ec, key.sign_registration(domain, ec, sender.address))
        kind = "secp256k1"
    existing = chain.read(lambda: chain.registry.get_tee(key.tee_id))
    if existing is not None:
        raise InvalidInput(f"tee: {to_hex(key.tee_id)} is already registered (by {existing.operator})")
    _check_measurement(chain, measurement, args.type)
    try:
        receipt = chain.send(sender, call)
    except ContractRevert as err:
        return _refused(args, err, tee_id=to_hex(key.tee_id))
    body = {
        "ok": True,
        "tee_id": to_hex(key.tee_id),
        "key_type": kind,
        "operator": sender.address,
        "measurement": to_hex(measurement),
        "tx_hash": to_hex(receipt.tx_hash),
        "gas_used": receipt.gas_used,
    }
    text = f"registered {kind} TEE {to_hex(key.tee_id)} (operator {sender.address}, tx {to_hex(receipt.tx_hash)})"
    return _emit(args, body, text)


def _approve(args: argparse.Namespace) -> int:
    from og_settle._hex import to_hex
    from og_settle.clients import ContractRevert

    if not 0 <= args.type <= 255:
        raise InvalidInput(f"--type: expected 0..255, got {args.type}")
    measurement, pcrs = _measurement(args)
    chain = _Chain(args)
    sender = chain.sender(args.sender_key_env)
    sent = []
    try:
        if args.type_name is not None and not chain.read(lambda: chain.registry.tee_type_name(args.type)):
            sent.append(chain.send(sender, chain.registry.add_tee_type_call(args.type, args.type_name)))
        call = (
            chain.registry.approve_pcrs_call(pcrs, args.type, args.version)
            if pcrs is not None
            else chain.registry.approve_measurement_call(measurement, args.type, args.version)
        )
        sent.append(chain.send(sender, call))
    except ContractRevert as err:
        return _refused(args, err, measurement=to_hex(measurement))
    body = {
        "ok": True,
        "measurement": to_hex(measurement),
        "type": args.type,
        "tx_hashes": [to_hex(r.tx_hash) for r in sent],
    }
    return _emit(args, body, f"approved measurement {to_hex(measurement)} for TEE type {args.type}")


def _heartbeat(args: argparse.Namespace) -> int:
    from og_settle._hex import to_hex
    from og_settle.clients import ContractRevert
    from og_settle.tee import RsaTeeKey

    key = _signing_key(args)
    if args.timestamp is not None and args.timestamp < 0:
        raise InvalidInput(f"--timestamp: must not be negative, got {args.timestamp}")
    chain = _Chain(args)
    sender = chain.sender(args.sender_key_env)
    # The registry refuses a heartbeat from the future; the latest block's time is what it compares against.
    latest = chain.read(lambda: int(chain.w3.eth.get_block("latest")["timestamp"]))
    timestamp = latest if args.timestamp is None else args.timestamp
    if isinstance(key, RsaTeeKey):  # OpenGradient's enclaves: RSA-PSS over keccak256(teeId || uint256 timestamp)
        signature = key.sign(chain.registry.heartbeat_message(key.tee_id, timestamp))
    else:  # a secp256k1 TEE: ECDSA over the EIP-712 Heartbeat(teeId, timestamp) digest of this registry
        signature = key.sign_digest(chain.registry.secp256k1_heartbeat_digest(key.tee_id, timestamp))
    try:
        receipt = chain.send(sender, chain.registry.heartbeat_call(key.tee_id, timestamp, signature))
    except ContractRevert as err:
        return _refused(args, err, tee_id=to_hex(key.tee_id))
    body = {"ok": True, "tee_id": to_hex(key.tee_id), "timestamp": timestamp, "tx_hash": to_hex(receipt.tx_hash)}
    body["gas_used"] = receipt.gas_used
    return _emit(args, body, f"heartbeat {timestamp} for TEE {to_hex(key.tee_id)} (tx {to_hex(receipt.tx_hash)})")


def _describe(chain: _Chain, tee_id: bytes) -> dict[str, Any] | None:
    from og_settle._hex import to_hex

    tee = chain.read(lambda: chain.registry.get_tee(tee_id))
    if tee is None:
        return None
    live = chain.read(lambda: chain.registry.is_live(tee_id))
    active = chain.read(lambda: chain.registry.is_active(tee_id))
    _, public_key = chain.read(lambda: chain.registry.tee_public_key(tee_id))
    return {
        "tee_id": to_hex(tee_id),
        "key_type": tee.key_type,
        "signer": tee.signer if tee.key_type == "secp256k1" else None,
        "public_key": to_hex(public_key) if public_key else None,
        "active": active,
        "live": live,
        "enabled": tee.enabled,
        "disabled_by": tee.disabled_by,
        "tee_type": tee.tee_type,
        "operator": tee.operator,
        "measurement": to_hex(tee.measurement),
        "attestation_hash": to_hex(tee.attestation_hash),
        "tls_certificate_hash": to_hex(tee.tls_certificate_hash),
        "payment_address": tee.payment_address,
        "endpoint": tee.endpoint,
        "registered_at": tee.registered_at,
        "last_heartbeat": tee.last_heartbeat,
    }


def _list(args: argparse.Namespace) -> int:
    from og_settle._hex import parse_address

    chain = _Chain(args)
    if args.type is not None:
        ids = chain.read(lambda: chain.registry.active_tee_ids_by_type(args.type))
    elif args.owner is not None:
        owner = parse_address(args.owner, "--owner")
        ids = chain.read(lambda: chain.registry.active_tee_ids_by_owner(owner))
    else:
        ids = chain.read(lambda: chain.registry.active_tee_ids())
    rows = [row for row in (_describe(chain, bytes(tee_id)) for tee_id in ids) if row is not None]
    if args.json:
        print(json.dumps({"tees": rows}))
        return 0
    if not rows:
        print("no active TEEs")
    for row in rows:
        state = "live" if row["live"] else "not live"
        print(f"{row['tee_id']}  {row['key_type']:9}  type {row['tee_type']}  {state}  {row['endpoint']}")
    return 0


def _show(args: argparse.Namespace) -> int:
    tee_id = _hex_arg(args.tee_id, "tee_id", 32)
    chain = _Chain(args)
    row = _describe(chain, tee_id)
    if row is None:
        if args.json:
            print(json.dumps({"tee_id": "0x" + tee_id.hex(), "registered": False}))
        else:
            print(f"TEE 0x{tee_id.hex()}: not registered")
        return 1
    if args.json:
        print(json.dumps({"registered": True, **row}))
        return 0
    for name, value in row.items():
        print(f"{name:21} {value}")
    return 0
