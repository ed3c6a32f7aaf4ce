"""``og-settle payment``: requirements, sign and verify, run in-process through the real argument parser, offline."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from og_settle import OPG_ADDRESS
from og_settle._x402 import (
    PaymentPayload,
    PaymentRequirements,
    decode_payment_required_header,
    decode_payment_signature_header,
)
from og_settle.cli import main

PAYER = Account.from_key("0x" + "5a" * 32)
OTHER = Account.from_key("0x" + "6b" * 32)
PAY_TO = "0x000000000000000000000000000000000000dEaD"
SPENDER = "0x000000000000000000000000000000000000bEEF"
SETTLER = "0x000000000000000000000000000000000000cafE"
REQUEST = "0x" + "ab" * 32
KEY_ENV = "OG_SETTLE_TEST_PAYER_KEY"

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """``run(*argv, stdin=None) -> (exit code, stdout, stderr)`` with the payer's key in ``KEY_ENV``."""
    monkeypatch.setenv(KEY_ENV, PAYER.key.hex())

    def invoke(*argv: str, stdin: str | None = None) -> tuple[int, str, str]:
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def requirements_args(scheme: str = "exact", amount: int = 10**18, *extra: str) -> list[str]:
    args = ["payment", "requirements", "--scheme", scheme, "--amount", str(amount), "--pay-to", PAY_TO]
    args += ["--spender", SPENDER]
    if scheme == "upto":
        args += ["--facilitator", SETTLER]
    return args + list(extra)


def write(path: Path, body: Any) -> str:
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return str(path)


def signed(run: Run, tmp_path: Path, *sign_args: str, scheme: str = "exact") -> tuple[str, dict[str, Any]]:
    """(requirements file, payload JSON) for a fresh payment."""
    code, out, _ = run(*requirements_args(scheme))
    assert code == 0
    reqs = write(tmp_path / "requirements.json", out)
    code, out, _ = run("payment", "sign", reqs, "--key-env", KEY_ENV, *sign_args)
    assert code == 0
    return reqs, json.loads(out)


def verify(run: Run, tmp_path: Path, payload: dict[str, Any], *args: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = run("payment", "verify", write(tmp_path / "payload.json", payload), "--json", *args)
    return code, json.loads(out)


def test_round_trip_requirements_sign_verify(run: Run, tmp_path: Path) -> None:
    code, out, _ = run(*requirements_args("exact", 123_456))
    assert code == 0
    requirements = json.loads(out)
    assert requirements == {
        "scheme": "exact",
        "network": "eip155:84532",
        "amount": "123456",
        "asset": OPG_ADDRESS,
        "payTo": PAY_TO,
        "maxTimeoutSeconds": 300,
        "extra": {"assetTransferMethod": "permit2", "name": "OpenGradient", "version": "1", "spender": SPENDER},
    }
    reqs = write(tmp_path / "requirements.json", out)

    code, out, _ = run("payment", "sign", reqs, "--key-env", KEY_ENV)
    assert code == 0
    body = json.loads(out)
    payload = PaymentPayload.from_json(body)
    auth = payload.payload.authorization
    assert payload.accepted == PaymentRequirements.from_json(requirements)
    assert (auth.owner, auth.token, auth.amount, auth.spender, auth.to) == (
        PAYER.address,
        OPG_ADDRESS,
        123_456,
        SPENDER,
        PAY_TO,
    )
    assert auth.deadline - auth.valid_after == 300 + 600  # x402 client defaults: now - 600 .. now + maxTimeout
    # eth-account's own typed-data encoding recovers the payer from the printed signature.
    message = encode_typed_data(full_message=auth.typed_data(84532))
    assert Account.recover_message(message, signature=payload.payload.signature) == PAYER.address

    code, out, err = run("payment", "verify", write(tmp_path / "payload.json", body), "--requirements", reqs, "--json")
    assert code == 0 and json.loads(out) == {"isValid": True, "payer": PAYER.address}
    assert err == ""  # checked against the server's requirements: no note
    code, out, err = run("payment", "verify", str(tmp_path / "payload.json"))
    assert code == 0 and out.startswith(f"valid: exact payment of 123456 (atomic) {OPG_ADDRESS} from {PAYER.address}")
    assert "pass --requirements" in err


def test_default_requirements_are_what_stock_clients_sign(run: Run, tmp_path: Path) -> None:
    """Without --spender, requirements carry no extra.spender and payments name the canonical x402 proxy, as
    every stock client does; upto's settler travels as x402's extra.facilitatorAddress; --network takes names."""
    from og_settle._networks import BASE, X402_EXACT_PERMIT2_PROXY, X402_UPTO_PERMIT2_PROXY

    base = ["payment", "requirements", "--amount", "5", "--pay-to", PAY_TO, "--network", "base"]
    code, out, _ = run(*base, "--scheme", "exact")
    exact = json.loads(out)
    assert code == 0 and exact["network"] == "eip155:8453" and exact["asset"] == BASE.opg
    assert exact["extra"] == {"assetTransferMethod": "permit2", "name": "OpenGradient", "version": "1"}
    code, out, _ = run("payment", "sign", write(tmp_path / "exact.json", exact), "--key-env", KEY_ENV)
    assert code == 0 and json.loads(out)["payload"]["permit2Authorization"]["spender"] == X402_EXACT_PERMIT2_PROXY

    code, out, _ = run(*base, "--scheme", "upto", "--facilitator", SETTLER)
    upto = json.loads(out)
    assert code == 0 and upto["extra"]["facilitatorAddress"] == SETTLER and "facilitator" not in upto["extra"]
    code, out, _ = run("payment", "sign", write(tmp_path / "upto.json", upto), "--key-env", KEY_ENV)
    authorization = json.loads(out)["payload"]["permit2Authorization"]
    assert authorization["spender"] == X402_UPTO_PERMIT2_PROXY and authorization["witness"]["facilitator"] == SETTLER
    code, result = verify(run, tmp_path, json.loads(out))
    assert code == 0 and result["isValid"] is True


def test_each_signature_uses_a_fresh_nonce(run: Run, tmp_path: Path) -> None:
    """Two signatures of the same requirements never share a Permit2 nonce (random 256-bit)."""
    _, first = signed(run, tmp_path)
    _, second = signed(run, tmp_path)
    assert first["payload"]["permit2Authorization"]["nonce"] != second["payload"]["permit2Authorization"]["nonce"]


def test_header_forms_round_trip(run: Run, tmp_path: Path) -> None:
    code, required_header, _ = run(*requirements_args("upto", 5 * 10**17, "--header", "--resource", "https://x/v1"))
    assert code == 0
    required = decode_payment_required_header(required_header.strip())
    assert required.resource == {"url": "https://x/v1"} and len(required.accepts) == 1
    assert required.accepts[0].scheme == "upto" and required.accepts[0].extra["facilitator"] == SETTLER

    code, signature_header, _ = run("payment", "sign", "-", "--key-env", KEY_ENV, "--header", stdin=required_header)
    assert code == 0
    payload = decode_payment_signature_header(signature_header.strip())
    assert payload.accepted == required.accepts[0] and payload.resource == {"url": "https://x/v1"}
    assert payload.payload.authorization.facilitator == SETTLER

    # As copied from `curl -i`: the header name may stay in front of the value.
    copied = f"PAYMENT-SIGNATURE: {signature_header.strip()}\n"
    code, out, _ = run("payment", "verify", "-", "--json", "--facilitator", SETTLER, stdin=copied)
    assert code == 0 and json.loads(out) == {"isValid": True, "payer": PAYER.address}
    reqs = write(tmp_path / "required.txt", required_header)
    code, out, _ = run("payment", "verify", write(tmp_path / "sig.txt", signature_header), "--requirements", reqs)
    assert code == 0 and out.startswith("valid: upto payment of 500000000000000000")


def test_payment_required_with_several_options(run: Run, tmp_path: Path) -> None:
    exact = json.loads(run(*requirements_args("exact", 7))[1])
    upto = json.loads(run(*requirements_args("upto", 9))[1])
    other = {**exact, "extra": {"assetTransferMethod": "eip2612", "name": "USDC", "version": "2"}}
    eip3009 = {**exact, "extra": {"assetTransferMethod": "eip3009", "name": "USDC", "version": "2"}}
    wrapper = write(tmp_path / "required.json", {"x402Version": 2, "accepts": [other, upto, exact, eip3009]})

    code, out, _ = run("payment", "sign", wrapper, "--key-env", KEY_ENV)
    assert code == 0 and json.loads(out)["accepted"] == upto  # the first option og-settle can pay
    code, out, _ = run("payment", "sign", wrapper, "--key-env", KEY_ENV, "--accept", "2")
    assert code == 0
    chosen = json.loads(out)
    assert chosen["accepted"] == exact
    # Against the whole PaymentRequired, verify picks the option with the payload's scheme and network.
    code, result = verify(run, tmp_path, chosen, "--requirements", wrapper)
    assert code == 0 and result["isValid"] is True
    code, out, _ = run("payment", "sign", wrapper, "--key-env", KEY_ENV, "--accept", "3")
    assert code == 0 and set(json.loads(out)["payload"]) == {"authorization", "signature"}  # EIP-3009
    code, _, err = run("payment", "sign", wrapper, "--key-env", KEY_ENV, "--accept", "0")
    assert code == 2 and "accepts[0]: og-settle pays" in err and "'eip2612'" in err


def set_path(body: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        body = body[key]
    body[last] = value


AUTH = "payload.permit2Authorization"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        # The permitted amount alone differs from the accepted one.
        ({f"{AUTH}.permitted.amount": "2000000000000000000"}, "permit2_amount_mismatch"),
        # Both raised together: consistent, but not what the payer signed.
        (
            {f"{AUTH}.permitted.amount": "2000000000000000000", "accepted.amount": "2000000000000000000"},
            "invalid_permit2_signature",
        ),
        ({f"{AUTH}.nonce": "12345"}, "invalid_permit2_signature"),
        ({f"{AUTH}.deadline": "99999999999"}, "invalid_permit2_signature"),
        ({f"{AUTH}.from": OTHER.address}, "invalid_permit2_signature"),
        ({f"{AUTH}.witness.to": OTHER.address, "accepted.payTo": OTHER.address}, "invalid_permit2_signature"),
        ({f"{AUTH}.witness.to": OTHER.address}, "invalid_permit2_recipient_mismatch"),
        ({f"{AUTH}.spender": OTHER.address}, "invalid_permit2_spender"),
        ({f"{AUTH}.permitted.token": OTHER.address}, "permit2_token_mismatch"),
        ({"accepted.scheme": "upto"}, "unsupported_scheme"),
        # Relabelled for another chain: against its own claim, the signature is for the wrong domain ...
        ({"accepted.network": "eip155:8453"}, "invalid_permit2_signature"),
        # ... and against the server's requirements, the network differs.
        ({"accepted.network": "eip155:8453", "--requirements": True}, "invalid_network"),
    ],
)
def test_tampered_payload_is_invalid(run: Run, tmp_path: Path, changes: dict[str, Any], reason: str) -> None:
    reqs, body = signed(run, tmp_path)
    assert verify(run, tmp_path, body)[0] == 0
    for path, value in changes.items():
        if not path.startswith("--"):
            set_path(body, path, value)
    code, result = verify(run, tmp_path, body, *(["--requirements", reqs] if "--requirements" in changes else []))
    payer = body["payload"]["permit2Authorization"]["from"]
    assert code == 1 and result.pop("invalidMessage")
    assert result == {"isValid": False, "invalidReason": reason, "payer": payer}


@pytest.mark.parametrize("index", [0, 31, 63, 64])
def test_flipped_signature_byte_is_invalid(run: Run, tmp_path: Path, index: int) -> None:
    """Any changed byte of r, s or v makes the signature fail (wrong signer, non-canonical, or unrecoverable)."""
    _, body = signed(run, tmp_path)
    raw = bytearray.fromhex(body["payload"]["signature"][2:])
    raw[index] ^= 0x01
    body["payload"]["signature"] = "0x" + raw.hex()
    code, result = verify(run, tmp_path, body)
    assert code == 1 and result["invalidReason"] == "invalid_permit2_signature"


def test_server_requirements_override_what_the_client_claims(run: Run, tmp_path: Path) -> None:
    """A payload that re-labels a cheaper price as accepted is caught against the server's requirements."""
    code, out, _ = run(*requirements_args("exact", 10**18))
    server = write(tmp_path / "server.json", out)
    code, out, _ = run(*requirements_args("exact", 1))
    cheap = write(tmp_path / "cheap.json", out)
    code, out, _ = run("payment", "sign", cheap, "--key-env", KEY_ENV)
    body = json.loads(out)
    assert verify(run, tmp_path, body)[0] == 0  # self-consistent
    code, result = verify(run, tmp_path, body, "--requirements", server)
    assert code == 1 and result["invalidReason"] == "permit2_amount_mismatch"


def test_time_window(run: Run, tmp_path: Path) -> None:
    _, body = signed(run, tmp_path)
    auth = body["payload"]["permit2Authorization"]
    deadline, valid_after = int(auth["deadline"]), int(auth["witness"]["validAfter"])
    assert verify(run, tmp_path, body, "--now", str(deadline))[0] == 0  # the deadline itself is still valid
    assert verify(run, tmp_path, body, "--now", str(valid_after))[0] == 0
    code, result = verify(run, tmp_path, body, "--now", str(deadline + 1))
    assert code == 1 and result["invalidReason"] == "permit2_deadline_expired"
    code, result = verify(run, tmp_path, body, "--now", str(valid_after - 1))
    assert code == 1 and result["invalidReason"] == "permit2_not_yet_valid"
    code, out, _ = run("payment", "verify", str(tmp_path / "payload.json"), "--now", str(deadline + 1))
    assert code == 1 and out.startswith(f"invalid: permit2_deadline_expired (payer {PAYER.address}")


def test_upto_facilitator_and_request_binding(run: Run, tmp_path: Path) -> None:
    _, body = signed(run, tmp_path, "--request-hash", REQUEST, scheme="upto")
    witness = body["payload"]["permit2Authorization"]["witness"]
    assert witness["facilitator"] == SETTLER and witness["requestHash"] == REQUEST
    assert verify(run, tmp_path, body, "--request-hash", REQUEST)[0] == 0
    code, result = verify(run, tmp_path, body, "--facilitator", OTHER.address)
    assert code == 1 and result["invalidReason"] == "upto_facilitator_mismatch"
    code, result = verify(run, tmp_path, body, "--request-hash", "0x" + "cd" * 32)
    assert code == 1 and result["invalidReason"] == "invalid_permit2_request_hash"
    # Dropping the binding from the witness changes the signed type: the signature no longer matches.
    del body["payload"]["permit2Authorization"]["witness"]["requestHash"]
    code, result = verify(run, tmp_path, body)
    assert code == 1 and result["invalidReason"] == "invalid_permit2_signature"


GOOD_PAYLOAD = "GOOD_PAYLOAD"


@pytest.mark.parametrize(
    ("argv", "stdin", "env", "message"),
    [
        (["payment", "sign", "-", "--key-env", "OG_SETTLE_UNSET_KEY"], "REQS", None, "--key-env: environment variable"),
        (["payment", "sign", "-", "--key-env", KEY_ENV], "REQS", "0xnothex", "--key-env: OG_SETTLE_TEST_PAYER_KEY"),
        (["payment", "sign", "-", "--key-env", KEY_ENV], "REQS", "0x" + "11" * 31, "found 62 characters"),
        (["payment", "sign", "-", "--key-env", KEY_ENV], "REQS", "0x" + "00" * 32, "valid secp256k1"),
        (["payment", "sign", "-", "--key-env", KEY_ENV, "--request-hash", "0x1234"], "REQS", None, "--request-hash"),
        (["payment", "sign", "-", "--key-env", KEY_ENV, "--facilitator", SETTLER], "REQS", None, "--facilitator"),
        (["payment", "sign", "-", "--key-env", KEY_ENV], '{"scheme": "exact"', None, "<stdin>: not valid JSON"),
        (["payment", "sign", "-", "--key-env", KEY_ENV], "bm90IGpzb24=", None, "PAYMENT-REQUIRED: not base64"),
        (["payment", "sign", "-", "--key-env", KEY_ENV], "", None, "requirements: <stdin> is empty"),
        (["payment", "sign", "missing.json", "--key-env", KEY_ENV], None, None, "requirements: cannot read"),
        (["payment", "verify", "-"], "%%%", None, "PAYMENT-SIGNATURE: not base64-encoded JSON"),
        (["payment", "verify", "-"], "[1, 2]", None, "PAYMENT-SIGNATURE"),
        (["payment", "verify", "-", "--spender", "0x1234"], GOOD_PAYLOAD, None, "--spender: expected a 20-byte"),
        (["payment", "verify", "-", "--now", "soon"], GOOD_PAYLOAD, None, "--now: not a decimal"),
        (["payment", "verify", "-", "--rpc-url", "ws://x"], GOOD_PAYLOAD, None, "--rpc-url: expected an http(s)"),
        (["payment", "verify", "-", "--rpc-url", "http://127.0.0.1:9"], GOOD_PAYLOAD, None, "--rpc-url: cannot reach"),
        (requirements_args("exact", 0), None, None, "--amount: must be positive"),
        (requirements_args("exact", 1, "--network", "mainnet"), None, None, "--network: expected a network name"),
        (requirements_args("exact", 1, "--pay-to", "0xdead"), None, None, "--pay-to: expected a 20-byte"),
        (requirements_args("exact", 1, "--facilitator", SETTLER), None, None, "--facilitator: only the upto"),
        (requirements_args("exact", 1, "--request-hash", "0x" + "ab" * 33), None, None, "--request-hash: expected 32"),
        (requirements_args("exact", 1, "--resource", "https://x"), None, None, "--resource: only"),
    ],
)
def test_malformed_input_exits_2_naming_the_field(
    run: Run,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    stdin: str | None,
    env: str | None,
    message: str,
) -> None:
    """Bad input prints one ``og-settle: error:`` line naming the field, nothing on stdout, and exits 2."""
    monkeypatch.chdir(tmp_path)
    if stdin == "REQS":
        stdin = run(*requirements_args("exact", 1))[1]
    elif stdin == GOOD_PAYLOAD:
        stdin = json.dumps(signed(run, tmp_path)[1])
    if env is not None:
        monkeypatch.setenv(KEY_ENV, env)
    code, out, err = run(*argv, stdin=stdin)
    assert code == 2 and out == ""
    assert err.startswith("og-settle: error: ") and err.count("\n") == 1, err
    assert message in err, err


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (f"{AUTH}.nonce", None, "payload.permit2Authorization.nonce: missing"),
        (f"{AUTH}.nonce", "-1", "nonce: not a decimal"),
        (f"{AUTH}.from", "0x12", "owner: expected a 20-byte address"),
        (f"{AUTH}.witness.requestHash", "0x" + "ab" * 31, "witness.requestHash: expected 32 bytes"),
        ("payload.signature", "0x123", "payload.signature: hex string has an odd number"),
        ("accepted.amount", 1.5, "amount: expected an integer"),
        ("x402Version", 1, "x402Version: expected 2"),
    ],
)
def test_malformed_payload_field_is_named(run: Run, tmp_path: Path, path: str, value: Any, field: str) -> None:
    _, body = signed(run, tmp_path)
    if value is None:
        *parents, last = path.split(".")
        target = body
        for key in parents:
            target = target[key]
        del target[last]
    else:
        set_path(body, path, value)
    code, out, err = run("payment", "verify", write(tmp_path / "payload.json", body))
    assert code == 2 and out == ""
    assert err.startswith(f"og-settle: error: {tmp_path / 'payload.json'}: ") and field in err, err


def test_secret_is_not_echoed(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """A malformed key in the environment is reported without printing the key."""
    secret = "0x" + "ab" * 31 + "zz"
    monkeypatch.setenv(KEY_ENV, secret)
    reqs = run(*requirements_args("exact", 1))[1]
    code, out, err = run("payment", "sign", "-", "--key-env", KEY_ENV, stdin=reqs)
    assert code == 2 and "ab" * 31 not in out + err
