"""``og-settle payment verify --rpc-url`` on the fork: the genuine Permit2's nonce bitmap, OPG balance and allowance.

The payload is made by ``og-settle payment sign`` and, where it should be valid, actually settled through the
PaymentFacilitator afterwards, so "valid" is checked against what the chain then accepts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from og_settle import PERMIT2_ADDRESS
from og_settle._x402 import PaymentPayload
from og_settle.cli import main

KEY_ENV = "OG_SETTLE_TEST_PAYER_KEY"
ONE = 10**18

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    def invoke(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


@pytest.fixture
def pay(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, facilitator: Any, payee: Any, chain_id: int
) -> Callable[..., tuple[str, str]]:
    """``pay(account, amount) -> (requirements file, payload file)``, both written by the CLI."""

    def make(account: Any, amount: int, *, network: str | None = None) -> tuple[str, str]:
        monkeypatch.setenv(KEY_ENV, account.private_key)
        code, out, err = run(
            "payment",
            "requirements",
            "--scheme",
            "exact",
            "--amount",
            str(amount),
            "--pay-to",
            payee.address,
            "--spender",
            facilitator.address,
            "--network",
            network or f"eip155:{chain_id}",
            "--max-timeout",
            "3600",
        )
        assert code == 0, err
        reqs = tmp_path / f"requirements-{account.address}.json"
        reqs.write_text(out)
        code, out, err = run("payment", "sign", str(reqs), "--key-env", KEY_ENV)
        assert code == 0, err
        payload = tmp_path / f"payload-{account.address}.json"
        payload.write_text(out)
        return str(reqs), str(payload)

    return make


def verify(run: Run, payload: str, reqs: str, rpc_url: str) -> tuple[int, dict[str, Any]]:
    code, out, err = run("payment", "verify", payload, "--requirements", reqs, "--rpc-url", rpc_url, "--json")
    assert code in (0, 1), err
    return code, json.loads(out)


def test_valid_until_settled_then_nonce_spent(
    run: Run,
    pay: Any,
    rpc_url: str,
    payer: Any,
    payee: Any,
    relayer: Any,
    facilitator: Any,
    opg: Any,
    permit2_approved: None,
) -> None:
    """Valid on chain means the facilitator settles it; once settled, the same payload fails on its spent nonce."""
    reqs, payload_file = pay(payer, 2 * ONE)
    code, result = verify(run, payload_file, reqs, rpc_url)
    assert code == 0 and result == {"isValid": True, "payer": payer.address}

    payload = PaymentPayload.from_json(json.loads(Path(payload_file).read_text()))
    before = opg.balanceOf(payee)
    facilitator.settle(payload.payload.authorization.payment_args(payload.payload.signature), sender=relayer)
    assert opg.balanceOf(payee) - before == 2 * ONE

    code, result = verify(run, payload_file, reqs, rpc_url)
    assert code == 1 and result.pop("invalidMessage").endswith("is already used")
    assert result == {"isValid": False, "invalidReason": "permit2_invalid_nonce", "payer": payer.address}
    # Offline, without the chain, the same payload still looks valid: the nonce check needs --rpc-url.
    code, out, _ = run("payment", "verify", payload_file, "--requirements", reqs, "--json")
    assert code == 0 and json.loads(out)["isValid"] is True


def test_missing_allowance(run: Run, pay: Any, rpc_url: str, payer: Any, opg: Any, permit2_approved: None) -> None:
    opg.approve(PERMIT2_ADDRESS, ONE, sender=payer)  # below the 2 OPG asked for
    reqs, payload = pay(payer, 2 * ONE)
    code, result = verify(run, payload, reqs, rpc_url)
    assert code == 1 and result["invalidReason"] == "permit2_allowance_required"


def test_insufficient_balance(run: Run, pay: Any, rpc_url: str, payer: Any, opg: Any, permit2_approved: None) -> None:
    reqs, payload = pay(payer, opg.balanceOf(payer) + 1)
    code, result = verify(run, payload, reqs, rpc_url)
    assert code == 1 and result["invalidReason"] == "permit2_insufficient_balance"


def test_node_on_another_chain_is_bad_input(run: Run, pay: Any, rpc_url: str, payer: Any, chain_id: int) -> None:
    reqs, payload = pay(payer, ONE, network="eip155:1")
    code, out, err = run("payment", "verify", payload, "--requirements", reqs, "--rpc-url", rpc_url)
    assert code == 2 and out == ""
    assert err == f"og-settle: error: --rpc-url: the node is chain {chain_id}, the requirements are for eip155:1\n"


def test_permit2_approve_lets_a_new_payer_pay(
    run: Run, pay: Any, rpc_url: str, opg: Any, chain: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh payer meets permit2_allowance_required; `og-settle permit2 approve` fixes it, once."""
    from eth_account import Account

    from tests.support.tokens import deal_opg

    fresh = Account.create()
    newcomer = SimpleNamespace(address=fresh.address, private_key=fresh.key.hex())
    chain.set_balance(fresh.address, ONE)
    deal_opg(chain.provider, opg, fresh.address, 10 * ONE)
    reqs, payload = pay(newcomer, 2 * ONE)
    code, result = verify(run, payload, reqs, rpc_url)
    assert code == 1 and result["invalidReason"] == "permit2_allowance_required"

    monkeypatch.setenv("OG_SETTLE_PAYER_KEY", newcomer.private_key)
    code, out, err = run("permit2", "approve", "--rpc-url", rpc_url, "--amount", str(5 * ONE), "--json")
    assert code == 0, err
    approved = json.loads(out)
    assert approved["allowance_before"] == "0" and approved["allowance_after"] == str(5 * ONE)
    assert approved["tx_hash"] and approved["spender"] == PERMIT2_ADDRESS
    assert opg.allowance(fresh.address, PERMIT2_ADDRESS) == 5 * ONE
    code, result = verify(run, payload, reqs, rpc_url)
    assert code == 0 and result == {"isValid": True, "payer": fresh.address}

    # Enough already: no second transaction. `--rpc` is the alias of `--rpc-url`.
    code, out, err = run("permit2", "approve", "--rpc", rpc_url, "--amount", str(2 * ONE), "--json")
    assert code == 0 and json.loads(out)["tx_hash"] is None, err


def test_permit2_approve_bad_key_and_dead_node_are_one_line_errors(
    run: Run, rpc_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OG_SETTLE_PAYER_KEY", "not-a-key")
    code, out, err = run("permit2", "approve", "--rpc-url", rpc_url, "--amount", "1")
    assert code == 2 and out == "" and err.count("\n") == 1 and "does not hold a private key" in err
    assert "not-a-key" not in err
    monkeypatch.setenv("OG_SETTLE_PAYER_KEY", "0x" + "11" * 32)
    code, out, err = run("permit2", "approve", "--rpc-url", "http://127.0.0.1:9", "--amount", "1")
    assert code == 2 and err.count("\n") == 1 and "cannot reach the node at http://127.0.0.1:9" in err
