"""``og-settle payment sign``/``verify`` for EIP-3009 (USDC, x402's exact scheme without ``assetTransferMethod``).

The payload the CLI signs has the stock SDK's shape; it verifies offline and on chain through the facilitator's own
EIP-3009 verifier, and the facilitator settles it on the replica's USDC, after which ``verify --rpc-url`` sees the
nonce spent. Bad input gets one line.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from og_settle._eip3009 import Eip3009Payload, TokenDomain, recover_eip3009_signer
from og_settle._networks import BASE_SEPOLIA
from tests.payments.test_facilitator_http import AUTH, Client, make_facilitator, serve
from tests.payments.test_payment_cli_chain import Run, run
from tests.support.tokens import deal_opg

__all__ = ["make_facilitator", "run", "serve"]  # fixtures shared with the Permit2 tests

KEY_ENV = "OG_SETTLE_TEST_PAYER_KEY"
PRICE = 750_000
PAYER_KEY = "0x" + "11" * 32
PAYEE = "0x" + "22" * 20


def _sign(run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, pay_to: str, *extra: str) -> Path:
    monkeypatch.setenv(KEY_ENV, key)
    code, out, err = run(
        "payment", "requirements", "--scheme", "exact", "--amount", str(PRICE), "--pay-to", pay_to, "--asset", "USDC"
    )
    assert code == 0, err
    reqs = tmp_path / "requirements.json"
    reqs.write_text(out)
    code, out, err = run("payment", "sign", str(reqs), "--key-env", KEY_ENV, *extra)
    assert code == 0, err
    signed = tmp_path / "payload.json"
    signed.write_text(out)
    return signed


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_signed_usdc_payload_is_the_stock_sdks_and_verifies_offline(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed = _sign(run, tmp_path, monkeypatch, PAYER_KEY, PAYEE)
    body = json.loads(signed.read_text())
    assert set(body) == {"x402Version", "accepted", "payload"}
    assert body["accepted"]["extra"] == {"name": "USDC", "version": "2"}  # no assetTransferMethod: EIP-3009
    assert set(body["payload"]) == {"signature", "authorization"}
    auth = body["payload"]["authorization"]
    assert set(auth) == {"from", "to", "value", "validAfter", "validBefore", "nonce"}
    assert (auth["to"], auth["value"], auth["validAfter"]) == (PAYEE, str(PRICE), "0")
    payload = Eip3009Payload.from_json(body["payload"])
    usdc = BASE_SEPOLIA.asset("USDC")
    domain = TokenDomain("USDC", "2", BASE_SEPOLIA.chain_id, usdc.address)
    assert recover_eip3009_signer(payload.authorization, payload.signature, domain) == auth["from"]

    code, out, _ = run("payment", "verify", str(signed), "--json")
    result = json.loads(out)
    assert code == 0 and (result["isValid"], result["payer"]) == (True, auth["from"]), out

    # The same as PAYMENT-SIGNATURE header values: signed with --header, verified from the header.
    header = _sign(run, tmp_path, monkeypatch, PAYER_KEY, PAYEE, "--header").read_text().strip()
    assert json.loads(base64.b64decode(header))["payload"]["authorization"]["to"] == PAYEE
    code, out, _ = run("payment", "verify", str(_write(tmp_path / "header.txt", f"PAYMENT-SIGNATURE: {header}")))
    assert code == 0 and out.startswith("valid: exact EIP-3009 payment of 750000"), out

    # A value changed after signing fails the signature check, with the stock reason code.
    body["payload"]["authorization"]["value"] = str(PRICE + 1)
    body["accepted"]["amount"] = str(PRICE + 1)
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(body))
    code, out, _ = run("payment", "verify", str(tampered))
    assert code == 1 and out.startswith("invalid: invalid_exact_evm_payload_signature"), out

    # A malformed authorisation is bad input: one line, exit 2.
    del body["payload"]["authorization"]["nonce"]
    code, out, err = run("payment", "verify", str(_write(tmp_path / "bad.json", json.dumps(body))))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert "paymentPayload.payload.authorization.nonce: missing" in err

    # Expired at --now.
    code, out, _ = run("payment", "verify", str(signed), "--now", str(int(auth["validBefore"])), "--json")
    assert code == 1 and json.loads(out)["invalidReason"] == "invalid_exact_evm_payload_authorization_valid_before"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--spender", PAYEE), "--spender: not for an EIP-3009 payment"),
        (("--record",), "--record: not for an EIP-3009 payment"),
        (("--request-hash", "0x" + "00" * 32), "--request-hash: not for an EIP-3009 payment"),
    ],
)
def test_permit2_only_options_are_one_line_errors(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: tuple[str, ...], message: str
) -> None:
    monkeypatch.setenv(KEY_ENV, PAYER_KEY)
    code, out, _ = run(
        "payment", "requirements", "--scheme", "exact", "--amount", "1", "--pay-to", PAYEE, "--asset", "USDC"
    )
    reqs = tmp_path / "r.json"
    reqs.write_text(out)
    code, out, err = run("payment", "sign", str(reqs), "--key-env", KEY_ENV, *argv)
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1, err


def test_a_cli_signed_usdc_payment_verifies_on_chain_and_settles_through_the_facilitator(
    run: Run,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    serve: Client,
    usdc: Any,
    payers: list[Any],
    payee: Any,
    chain: Any,
    chain_id: int,
    rpc_url: str,
) -> None:
    assert chain_id == BASE_SEPOLIA.chain_id and usdc.address == BASE_SEPOLIA.asset("USDC").address
    payer = payers[0]
    deal_opg(chain.provider, usdc, payer.address, PRICE)
    signed = _sign(run, tmp_path, monkeypatch, payer.private_key, payee.address)
    code, out, err = run("payment", "verify", str(signed), "--rpc-url", rpc_url, "--json")
    assert code == 0 and json.loads(out)["isValid"] is True, (out, err)

    before = (usdc.balanceOf(payer), usdc.balanceOf(payee))
    body = json.loads(signed.read_text())
    request = {"x402Version": 2, "paymentPayload": body, "paymentRequirements": body["accepted"]}
    settled = serve().post("/settle", json=request, headers=AUTH).json()
    assert settled["success"] is True and settled["payer"] == payer.address, settled
    assert (usdc.balanceOf(payer), usdc.balanceOf(payee)) == (before[0] - PRICE, before[1] + PRICE)

    code, out, _ = run("payment", "verify", str(signed), "--rpc-url", rpc_url, "--json")
    assert code == 1 and json.loads(out)["invalidReason"] == "invalid_exact_evm_nonce_already_used", out


def test_a_payer_short_of_usdc_is_invalid_on_chain_only(
    run: Run,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    usdc: Any,
    payers: list[Any],
    payee: Any,
    chain: Any,
    rpc_url: str,
) -> None:
    payer = payers[1]
    deal_opg(chain.provider, usdc, payer.address, PRICE - 1)
    signed = _sign(run, tmp_path, monkeypatch, payer.private_key, payee.address)
    assert run("payment", "verify", str(signed))[0] == 0  # offline: the balance is not read
    code, out, _ = run("payment", "verify", str(signed), "--rpc-url", rpc_url, "--json")
    assert code == 1 and json.loads(out)["invalidReason"] == "invalid_exact_evm_insufficient_balance", out
