"""``og-settle payment``: write x402 payment requirements, sign a Permit2 or EIP-3009 payment, and verify one.

``requirements`` prints a ``PaymentRequirements`` JSON object, or with ``--header`` the value of a
``PAYMENT-REQUIRED`` header (the base64 x402 v2 ``PaymentRequired`` wrapper). ``sign`` reads requirements (JSON of
``PaymentRequirements`` or ``PaymentRequired``, or a ``PAYMENT-REQUIRED`` header value) from a file or ``-`` for
stdin, signs with the private key held in the environment variable named by ``--key-env`` (never on the command
line), and prints the ``PaymentPayload`` JSON, or with ``--header`` the ``PAYMENT-SIGNATURE`` header value.
``verify`` checks a payload (JSON or header value) as a facilitator's ``POST /verify`` does, offline, and with
``--rpc-url`` also on chain (Permit2 nonce unspent, Permit2 allowance, balance). Requirements of the exact scheme
without ``extra.assetTransferMethod`` (x402's default, e.g. ``--asset USDC``) are paid with EIP-3009, as the stock SDK
pays them (:mod:`og_settle.cli._payment_eip3009`).

Signing, parsing and verification are :mod:`og_settle._x402`'s; this module only reads, dispatches and prints.

Exit codes: 0 success (``verify``: the payment is valid); 1 ``verify`` found it invalid; 2 bad input (unreadable
file, malformed JSON or header, bad field, missing key, unreachable node).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from og_settle._errors import InvalidInput
from og_settle.cli._keys import account_from_env
from og_settle.cli._network import add_rpc_url_option, node_web3

if TYPE_CHECKING:
    from og_settle._networks import Network
    from og_settle._x402 import PaymentPayload, PaymentRequirements

# Bounds what a file or stdin can make us read; a real requirements or payload document is a few kilobytes.
_MAX_INPUT_BYTES: Final = 1_048_576
_DEFAULT_NETWORK: Final = "eip155:84532"


def register(groups: Any) -> None:
    payment = groups.add_parser("payment")
    commands = payment.add_subparsers(dest="payment_command", required=True, metavar="COMMAND")

    requirements = commands.add_parser(
        "requirements",
        help="print x402 PaymentRequirements JSON (or a PAYMENT-REQUIRED header value with --header)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    requirements.add_argument("--scheme", choices=("exact", "upto"), required=True, help="exact price or maximum")
    requirements.add_argument(
        "--amount", required=True, help="atomic units (18 decimals for OPG, 6 for USDC): price or maximum"
    )
    requirements.add_argument("--pay-to", required=True, help="the recipient's address (x402 payTo)")
    requirements.add_argument(
        "--asset",
        default=None,
        help="the token: a symbol of the network's assets (OPG, USDC, or one from --assets) or an ERC-20 address "
        "(default: the network's OPG; Base Sepolia's elsewhere)",
    )
    requirements.add_argument(
        "--assets", type=Path, default=None, help="TOML/JSON file of operator-added assets (as facilitator serve)"
    )
    requirements.add_argument(
        "--transfer-method",
        choices=("eip3009", "permit2"),
        default=None,
        help="how the payer's token moves: eip3009 (transferWithAuthorization, exact only; x402's default for USDC) "
        "or permit2 (default: the asset's preferred method; permit2 for an unlisted address)",
    )
    requirements.add_argument(
        "--network", default=_DEFAULT_NETWORK, help="network name (base-sepolia, base) or CAIP-2 id (eip155:<chain id>)"
    )
    requirements.add_argument("--max-timeout", default="300", help="seconds a signed payment stays valid")
    requirements.add_argument(
        "--spender",
        default=None,
        help="extra.spender: og-settle's PaymentFacilitator (default: none, so clients sign for the canonical "
        "x402 proxy, as every stock client does)",
    )
    requirements.add_argument(
        "--deployment",
        type=Path,
        default=None,
        help="deployments/<chain id>.json: its PaymentFacilitator is the spender (what `og-settle relayer submit` "
        "settles through); instead of --spender",
    )
    requirements.add_argument(
        "--facilitator",
        default=None,
        help="upto: who settles, written as extra.facilitatorAddress (the /supported upto facilitatorAddress), "
        "and as extra.facilitator with --spender",
    )
    requirements.add_argument("--request-hash", default=None, help="extra.requestHash: bind payments to a request")
    requirements.add_argument(
        "--token-name", default=None, help="extra.name, the EIP-712 name (default: the listed asset's, e.g. USDC)"
    )
    requirements.add_argument(
        "--token-version", default=None, help="extra.version, the EIP-712 version (default: the listed asset's)"
    )
    requirements.add_argument("--resource", default=None, help="resource URL for the PaymentRequired (--header)")
    requirements.add_argument("--header", action="store_true", help="print the PAYMENT-REQUIRED header value")
    requirements.set_defaults(handler=_requirements)

    sign = commands.add_parser(
        "sign",
        help="sign a Permit2 or EIP-3009 payment for requirements; prints PaymentPayload JSON or PAYMENT-SIGNATURE",
    )
    sign.add_argument("requirements", help="file or - (stdin): PaymentRequirements/PaymentRequired JSON or header")
    sign.add_argument("--key-env", required=True, help="environment variable holding the payer's private key")
    sign.add_argument("--accept", type=int, default=None, help="which PaymentRequired.accepts entry to pay")
    sign.add_argument(
        "--spender", default=None, help="the Permit2 spender (default: extra.spender, else the canonical x402 proxy)"
    )
    sign.add_argument(
        "--facilitator",
        default=None,
        help="upto: who may settle (default: extra.facilitator, else extra.facilitatorAddress)",
    )
    sign.add_argument("--request-hash", default=None, help="bind the payment to this request (0x + 64 hex digits)")
    sign.add_argument(
        "--gasless",
        action="store_true",
        help="if the payer has not approved Permit2, add its EIP-2612 permit (x402 eip2612GasSponsoring), so that "
        "the settlement approves and pays in one transaction; reads the token on --rpc-url",
    )
    add_rpc_url_option(sign, help="--gasless: a node of the payment's chain")
    shape = sign.add_mutually_exclusive_group()
    shape.add_argument("--header", action="store_true", help="print the PAYMENT-SIGNATURE header value")
    shape.add_argument(
        "--record",
        action="store_true",
        help="print a relayer record, {kind: payment, paymentPayload, paymentRequirements}, for `relayer submit`",
    )
    sign.set_defaults(handler=_sign)

    verify = commands.add_parser(
        "verify", help="verify a payment as x402 /verify does (offline; on chain too with --rpc-url)"
    )
    verify.add_argument("payload", help="file or - (stdin): PaymentPayload JSON or a PAYMENT-SIGNATURE header value")
    verify.add_argument(
        "--requirements", default=None, help="the server's requirements (file, JSON or header; default: accepted)"
    )
    add_rpc_url_option(verify, from_env=False, help="also check the nonce, allowance and balance on this node")
    verify.add_argument(
        "--spender",
        "--facilitator-address",
        dest="spender",
        default=None,
        help="the expected Permit2 spender (default: extra.spender, else the canonical x402 proxy)",
    )
    verify.add_argument(
        "--facilitator",
        default=None,
        help="upto: the expected settler (default: extra.facilitator, else extra.facilitatorAddress)",
    )
    verify.add_argument("--request-hash", default=None, help="the request the payment must be bound to")
    verify.add_argument(
        "--now", default=None, help="unix time to check the window at (default: latest block with --rpc-url, else now)"
    )
    verify.add_argument("--json", action="store_true", help="print the /verify body {isValid, invalidReason?, payer}")
    verify.set_defaults(handler=_verify)


# -- reading documents


def _read(source: str, argument: str) -> tuple[str, str]:
    """``(label, text)`` of a file or ``-`` (stdin); errors name the argument."""
    if source == "-":
        label = "<stdin>"
        data = sys.stdin.buffer.read(_MAX_INPUT_BYTES + 1)
    else:
        label = source
        try:
            with open(source, "rb") as handle:
                data = handle.read(_MAX_INPUT_BYTES + 1)
        except OSError as err:
            raise InvalidInput(f"{argument}: cannot read {source}: {err.strerror or err}") from None
    if len(data) > _MAX_INPUT_BYTES:
        raise InvalidInput(f"{argument}: {label} is over {_MAX_INPUT_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{argument}: {label} is not UTF-8 text") from None
    if not text.strip():
        raise InvalidInput(f"{argument}: {label} is empty")
    return label, text


def _document(text: str, label: str, header: str) -> Any:
    """The JSON value of ``text``: JSON itself when it starts with ``{``, else a base64 ``header`` value.

    A header value may keep its ``NAME:`` prefix, as copied from ``curl -i``.
    """
    from og_settle._x402 import decode_header

    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as err:
            raise InvalidInput(f"{label}: not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    name, colon, rest = stripped.partition(":")
    if colon and name.strip().lower() == header.lower():
        stripped = rest.strip()
    try:
        return decode_header(stripped, header)
    except InvalidInput as err:
        raise InvalidInput(f"{label}: {err}") from None


def _load_requirements(source: str, argument: str, accept: int | None) -> tuple[PaymentRequirements, Any]:
    """The chosen requirements and the PaymentRequired resource (None for a bare PaymentRequirements)."""
    from og_settle._x402 import PAYMENT_REQUIRED_HEADER, PaymentRequired, PaymentRequirements

    label, text = _read(source, argument)
    data = _document(text, label, PAYMENT_REQUIRED_HEADER)
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{label}: expected a JSON object, got {type(data).__name__}")
    try:
        if "accepts" not in data:
            if accept is not None:
                raise InvalidInput("--accept: the input is one PaymentRequirements, not a PaymentRequired list")
            return _payable_option(PaymentRequirements.from_json(data), "paymentRequirements"), None
        required = PaymentRequired.from_json(data)
        if accept is not None:
            if not 0 <= accept < len(required.accepts):
                raise InvalidInput(f"--accept: {accept} is out of range for {len(required.accepts)} accepts entries")
            return _payable_option(required.accepts[accept], f"accepts[{accept}]"), required.resource
        for option in required.accepts:
            if _payable(option):
                return option, required.resource
        raise InvalidInput("paymentRequired.accepts: no exact or upto option paid with permit2 or eip3009")
    except InvalidInput as err:
        raise InvalidInput(f"{label}: {err}") from None


def _payable(requirements: PaymentRequirements) -> bool:
    """Exact or upto with Permit2, or exact with EIP-3009 (no ``assetTransferMethod``, as x402's default)."""
    from og_settle.cli._payment_eip3009 import is_eip3009_requirements

    if requirements.scheme not in ("exact", "upto"):
        return False
    return requirements.extra.get("assetTransferMethod") == "permit2" or is_eip3009_requirements(requirements)


def _payable_option(requirements: PaymentRequirements, where: str) -> PaymentRequirements:
    if not _payable(requirements):
        method = requirements.extra.get("assetTransferMethod", "eip3009")
        raise InvalidInput(
            f"{where}: og-settle pays exact/upto with 'permit2' or exact with 'eip3009', got {requirements.scheme} "
            f"with {method!r}"
        )
    return requirements


def _load_payload(source: str) -> PaymentPayload | Mapping[str, Any]:
    """A Permit2 ``PaymentPayload``, or an EIP-3009 payload's JSON (checked by the facilitator's verifier)."""
    from og_settle._eip3009 import Eip3009Payload, is_eip3009_body
    from og_settle._x402 import PAYMENT_SIGNATURE_HEADER, PaymentPayload

    label, text = _read(source, "payload")
    data = _document(text, label, PAYMENT_SIGNATURE_HEADER)
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{label}: expected a JSON object, got {type(data).__name__}")
    if data.get("kind") == "payment" and isinstance(data.get("paymentPayload"), Mapping):
        data = data["paymentPayload"]  # a relayer record (`payment sign --record`)
    if is_eip3009_body({"paymentPayload": data}):
        try:  # a malformed payload is bad input (exit 2), as for Permit2; the verifier then judges the payment
            Eip3009Payload.from_json(data["payload"], "paymentPayload.payload")
        except InvalidInput as err:
            raise InvalidInput(f"{label}: {err}") from None
        return dict(data)
    try:
        return PaymentPayload.from_json(data)
    except InvalidInput as err:
        raise InvalidInput(f"{label}: {err}") from None


def _matching(accepted: PaymentRequirements, source: str) -> PaymentRequirements:
    """The server's requirements the payload answers: of a PaymentRequired, the first with its scheme and network."""
    from og_settle._x402 import PAYMENT_REQUIRED_HEADER, PaymentRequired, PaymentRequirements

    label, text = _read(source, "--requirements")
    data = _document(text, label, PAYMENT_REQUIRED_HEADER)
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{label}: expected a JSON object, got {type(data).__name__}")
    try:
        if "accepts" not in data:
            return PaymentRequirements.from_json(data)
        options = PaymentRequired.from_json(data).accepts
    except InvalidInput as err:
        raise InvalidInput(f"{label}: {err}") from None
    if not options:
        raise InvalidInput(f"{label}: paymentRequired.accepts: empty")
    same = [o for o in options if (o.scheme, o.network) == (accepted.scheme, accepted.network)]
    # None matching: check against the first, which then fails with unsupported_scheme or invalid_network.
    return next((o for o in same if o == accepted), same[0] if same else options[0])


# -- requirements


def _network(value: str, assets_file: Path | None = None) -> tuple[str, Network | None]:
    """``(CAIP-2 id, the named network with the operator's assets, or None)`` for a network name or CAIP-2 id;
    other eip155 ids are allowed."""
    from og_settle._networks import configured_network, network

    try:
        network(value)
    except InvalidInput:
        namespace, _, reference = value.partition(":")
        if namespace != "eip155" or not reference.isdigit():
            raise InvalidInput(
                f"--network: expected a network name (base-sepolia, base) or a CAIP-2 id like 'eip155:84532', "
                f"got {value!r}"
            ) from None
        if assets_file is not None:
            raise InvalidInput(f"--assets: {value} is not a named network (base-sepolia, base)") from None
        return value, None
    try:
        known = configured_network(value, assets_file)
    except InvalidInput as err:
        raise InvalidInput(f"--assets: {err}") from None
    return known.caip2, known


def _asset_extra(args: argparse.Namespace, known: Network | None) -> tuple[str, dict[str, Any]]:
    """The asset's address and the requirements' ``extra`` for its transfer method (--asset, --transfer-method,
    --token-name, --token-version)."""
    from og_settle._hex import parse_address
    from og_settle._networks import EIP3009, OPG_ADDRESS, PERMIT2

    chosen = args.asset if args.asset is not None else (known.opg if known is not None else OPG_ADDRESS)
    listed = None
    if known is not None:
        try:
            listed = known.find_asset(chosen) if chosen.startswith("0x") else known.asset(chosen)
        except InvalidInput as err:
            raise InvalidInput(f"--{err}") from None
    elif not chosen.startswith("0x"):
        raise InvalidInput(f"--asset: {chosen!r}: symbols are known on named networks only; give the address")
    address = listed.address if listed is not None else parse_address(chosen, "--asset")
    methods = listed.transfer_methods if listed is not None else (PERMIT2,)
    # The asset's preferred method, except that upto is Permit2 only.
    method = args.transfer_method or next((m for m in methods if args.scheme == "exact" or m == PERMIT2), methods[0])
    if method == EIP3009 and args.scheme != "exact":
        raise InvalidInput("--transfer-method: eip3009 pays the exact scheme only (x402's upto is Permit2)")
    if listed is not None:
        extra = listed.extra(method)
    else:
        extra = {} if method == EIP3009 else {"assetTransferMethod": PERMIT2}
    if args.token_name is not None:
        extra["name"] = args.token_name
    if args.token_version is not None:
        extra["version"] = args.token_version
    if method == EIP3009 and ("name" not in extra or "version" not in extra):
        raise InvalidInput("--token-name/--token-version: eip3009 needs the token's EIP-712 name and version")
    return address, extra


def _requirements(args: argparse.Namespace) -> int:
    from og_settle._hex import parse_address, parse_bytes32, parse_uint256, to_hex
    from og_settle._x402 import PaymentRequired, PaymentRequirements, encode_header

    caip2, known = _network(args.network, args.assets)

    amount = parse_uint256(args.amount, "--amount")
    if amount == 0:
        raise InvalidInput("--amount: must be positive (a zero payment cannot settle)")
    timeout = parse_uint256(args.max_timeout, "--max-timeout")
    if timeout == 0:
        raise InvalidInput("--max-timeout: must be positive")
    if args.deployment is not None:
        from og_settle._deploy import load_deployment

        if args.spender is not None:
            raise InvalidInput("--deployment: give either --spender or --deployment, not both")
        args.spender = load_deployment(args.deployment).payment_facilitator
    asset, extra = _asset_extra(args, known)
    if "assetTransferMethod" not in extra and (args.spender is not None or args.request_hash is not None):
        option = "--request-hash" if args.spender is None else ("--deployment" if args.deployment else "--spender")
        raise InvalidInput(
            f"{option}: an EIP-3009 payment has no Permit2 spender or request hash; add --transfer-method permit2"
        )
    if args.spender is not None:
        extra["spender"] = parse_address(args.spender, "--spender")
    if args.facilitator is not None:
        if args.scheme != "upto":
            raise InvalidInput("--facilitator: only the upto scheme names a settling facilitator")
        settler = parse_address(args.facilitator, "--facilitator")
        extra["facilitatorAddress"] = settler
        if args.spender is not None:
            extra["facilitator"] = settler
    if args.request_hash is not None:
        extra["requestHash"] = to_hex(parse_bytes32(args.request_hash, "--request-hash"))
    pay_to = parse_address(args.pay_to, "--pay-to")
    try:
        requirements = PaymentRequirements(
            scheme=args.scheme,
            network=caip2,
            amount=amount,
            asset=asset,
            pay_to=pay_to,
            max_timeout_seconds=timeout,
            extra=extra,
        )
    except InvalidInput as err:  # every other field was checked above: this is --network
        raise InvalidInput(f"--{err}") from None
    if args.header:
        resource = None if args.resource is None else {"url": args.resource}
        print(encode_header(PaymentRequired(accepts=(requirements,), resource=resource)))
    else:
        if args.resource is not None:
            raise InvalidInput("--resource: only the PaymentRequired wrapper (--header) carries a resource")
        print(json.dumps(requirements.to_json()))
    return 0


# -- sign


def _sign(args: argparse.Namespace) -> int:
    from og_settle._hex import parse_address, parse_bytes32
    from og_settle._x402 import create_payment_payload, encode_header

    requirements, resource = _load_requirements(args.requirements, "requirements", args.accept)
    key = account_from_env(args.key_env, holder="the payer").key
    if requirements.extra.get("assetTransferMethod") != "permit2":
        from og_settle.cli._payment_eip3009 import sign_eip3009_command

        return sign_eip3009_command(args, requirements, key, resource)
    spender = parse_address(args.spender, "--spender") if args.spender is not None else requirements.spender
    facilitator = None
    if requirements.scheme == "upto":
        facilitator = args.facilitator if args.facilitator is not None else requirements.settler
        if facilitator is None:
            raise InvalidInput("--facilitator: the upto scheme needs the settling facilitator's address")
        facilitator = parse_address(facilitator, "--facilitator")
    elif args.facilitator is not None:
        raise InvalidInput("--facilitator: the exact scheme's witness has no facilitator")
    request_hash = None if args.request_hash is None else parse_bytes32(args.request_hash, "--request-hash")
    if args.gasless and args.rpc_url is None:
        raise InvalidInput("--gasless: needs --rpc-url (the payer's allowance and the token's permit nonce)")
    payload = create_payment_payload(
        requirements,
        key,
        spender=parse_address(spender, "extra.spender"),
        facilitator=facilitator,
        request_hash=request_hash,
        resource=resource,
    )
    if args.gasless:
        from og_settle._eip2612 import gasless_permit, with_permit

        reader, _ = _chain(args.rpc_url, requirements.chain_id)
        permit = gasless_permit(reader.web3, requirements, key, deadline=payload.payload.authorization.deadline)
        if permit is not None:
            payload = with_permit(payload, permit)
    if args.record:
        body = {
            "kind": "payment",
            "paymentPayload": payload.to_json(),
            "paymentRequirements": payload.accepted.to_json(),
        }
        print(json.dumps(body))
    else:
        print(encode_header(payload) if args.header else json.dumps(payload.to_json()))
    return 0


# -- verify


def _chain(rpc_url: str, chain_id: int) -> tuple[Any, int]:
    """A ChainReader on ``rpc_url`` and the latest block's timestamp; checks the node serves ``chain_id``."""
    from og_settle._x402_verify import Web3ChainReader
    from og_settle.clients import is_connection_error

    web3 = node_web3(rpc_url)
    try:
        node_chain = int(web3.eth.chain_id)
        latest = int(web3.eth.get_block("latest")["timestamp"])
    except Exception as err:
        if is_connection_error(err):
            raise InvalidInput(f"--rpc-url: cannot reach the node at {rpc_url} ({type(err).__name__})") from None
        raise
    if node_chain != chain_id:
        raise InvalidInput(f"--rpc-url: the node is chain {node_chain}, the requirements are for eip155:{chain_id}")
    return Web3ChainReader(web3), latest


def _verify(args: argparse.Namespace) -> int:
    from og_settle._eip2612 import Eip2612Permit, token_permit_reads, verify_with_permit
    from og_settle._hex import parse_address, parse_bytes32, parse_uint256
    from og_settle._networks import X402_EXACT_PERMIT2_PROXY, X402_UPTO_PERMIT2_PROXY
    from og_settle._x402 import PaymentPayload
    from og_settle._x402_verify import verify_payment
    from og_settle.clients import is_connection_error

    loaded = _load_payload(args.payload)
    if not isinstance(loaded, PaymentPayload):
        return _verify_eip3009(args, loaded)
    payload = loaded
    requirements = payload.accepted if args.requirements is None else _matching(payload.accepted, args.requirements)
    spender = parse_address(args.spender, "--spender") if args.spender is not None else requirements.spender
    settler = args.facilitator if args.facilitator is not None else requirements.settler
    settler = None if settler is None else parse_address(settler, "--facilitator")
    request_hash = None if args.request_hash is None else parse_bytes32(args.request_hash, "--request-hash")
    reader, now = None, int(time.time())
    if args.rpc_url is not None:
        reader, now = _chain(args.rpc_url, requirements.chain_id)
    if args.now is not None:
        now = parse_uint256(args.now, "--now")
    spender = parse_address(spender, "extra.spender")
    permit = Eip2612Permit.from_extensions(payload.extensions)  # gasless approval (eip2612GasSponsoring)
    try:
        if reader is not None and permit is not None:
            auth = payload.payload.authorization
            token_nonce, separator = token_permit_reads(reader.web3, auth.token, auth.owner)
            result, _ = verify_with_permit(
                payload,
                requirements,
                permit=permit,
                reader=reader,
                now=now,
                token_nonce=token_nonce,
                domain_separator=separator,
                exact_value=spender in (X402_EXACT_PERMIT2_PROXY, X402_UPTO_PERMIT2_PROXY),  # the x402 proxies
                spender=spender,
                settler=settler,
                request_hash=request_hash,
            )
        else:
            result = verify_payment(
                payload,
                requirements,
                spender=spender,
                now=now,
                reader=reader,
                settler=settler,
                request_hash=request_hash,
            )
    except Exception as err:
        if args.rpc_url is not None and is_connection_error(err):
            raise InvalidInput(f"--rpc-url: lost the node at {args.rpc_url} ({type(err).__name__})") from None
        raise
    _accepted_note(args)
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        auth = payload.payload.authorization
        where = "offline and on chain"
        if reader is None:
            where = "offline; pass --rpc-url for nonce, allowance, balance"
        if result.is_valid:
            print(
                f"valid: {auth.scheme.x402_scheme} payment of {auth.amount} (atomic) {auth.token} from {auth.owner} "
                f"to {auth.to}, nonce {auth.nonce}, deadline {auth.deadline} ({where})"
            )
        else:
            print(f"invalid: {result.invalid_reason} (payer {auth.owner}; checked {where})")
    return 0 if result.is_valid else 1


def _accepted_note(args: argparse.Namespace) -> None:
    if args.requirements is None:
        print(
            "og-settle: note: checked against the payload's own 'accepted' requirements; "
            "pass --requirements to check against the server's",
            file=sys.stderr,
        )


def _verify_eip3009(args: argparse.Namespace, payload: Mapping[str, Any]) -> int:
    from og_settle._hex import parse_uint256
    from og_settle._x402 import PaymentRequirements
    from og_settle.cli._payment_eip3009 import report_eip3009

    for option, value in (("--spender", args.spender), ("--facilitator", args.facilitator)):
        if value is not None:
            raise InvalidInput(f"{option}: not for an EIP-3009 payment (it names no spender or settler)")
    if args.request_hash is not None:
        raise InvalidInput("--request-hash: an EIP-3009 payment is not bound to a request")
    try:
        accepted = PaymentRequirements.from_json(payload.get("accepted") or {}, "accepted")
    except InvalidInput as err:
        raise InvalidInput(f"paymentPayload.{err}") from None
    requirements = accepted if args.requirements is None else _matching(accepted, args.requirements)
    if args.rpc_url is not None:
        _chain(args.rpc_url, requirements.chain_id)  # the node is reachable and serves the requirements' chain
    now = None if args.now is None else parse_uint256(args.now, "--now")
    code = report_eip3009(payload, requirements, rpc_url=args.rpc_url, now=now, as_json=args.json)
    _accepted_note(args)
    return code
