"""The unmodified PyPI ``x402==2.25.0`` SDK pays USDC with EIP-3009 through ``og-settle facilitator serve``.

The resource server is priced in money (``"$0.50"``), as the SDK's own documentation does: it picks its default
asset for the network, USDC (``0x036C…CF7e`` on Base Sepolia), with ``extra: {name: "USDC", version: "2"}`` and no
``assetTransferMethod``, so its client signs an EIP-3009 ``TransferWithAuthorization`` over USDC's domain. On the
replica USDC is ReplicaUSDC, placed at that address. Balances and ``authorizationState`` are read on chain.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from og_settle import BASE, BASE_SEPOLIA
from og_settle._deploy import Deployment
from tests.interop.conftest import RunningFacilitator, running_facilitator
from tests.interop.test_x402_python_sdk import mined, pay
from tests.support import sdk_envs
from tests.support.tokens import deal_opg

USDC_PER_PAYER = 1_000 * 10**6
PRICE = 500_000  # "$0.50" in USDC's 6 decimals (the SDK client's default spend cap is $1)


@pytest.fixture
def usdc_payers(usdc: Any, payers: list[Any], chain: Any) -> list[Any]:
    for account in payers:
        deal_opg(chain.provider, usdc, account.address, USDC_PER_PAYER)
    return payers


@pytest.fixture
def usdc_facilitator(
    deployment_file: Path, chain: Any, relayer: Any, usdc_payers: list[Any], tmp_path: Path
) -> Iterator[RunningFacilitator]:
    with running_facilitator(deployment_file, str(chain.provider.http_uri), relayer.private_key, tmp_path) as running:
        yield running


def _net(chain_id: int) -> Any:
    return BASE if chain_id == BASE.chain_id else BASE_SEPOLIA


def test_supported_lists_usdc_with_eip3009_and_opg_with_permit2(
    usdc_facilitator: RunningFacilitator, chain_id: int
) -> None:
    net = _net(chain_id)
    kinds = {kind["scheme"]: kind for kind in usdc_facilitator.get("/supported")["kinds"]}
    exact = {a["symbol"]: a for a in kinds["exact"]["extra"]["assets"]}
    upto = {a["symbol"]: a for a in kinds["upto"]["extra"]["assets"]}
    usdc = net.asset("USDC")
    assert exact["USDC"] == {
        "symbol": "USDC",
        "address": usdc.address,
        "decimals": 6,
        "name": usdc.eip712_name,
        "version": "2",
        "transferMethods": ["eip3009", "permit2"],
    }
    assert exact["OPG"]["transferMethods"] == ["permit2"] and exact["OPG"]["address"] == net.opg
    assert upto["USDC"]["transferMethods"] == ["permit2"]  # x402's upto is Permit2 only


def test_stock_sdk_pays_usdc_with_eip3009_once_and_a_replay_answers_the_first_transaction(
    x402_env: sdk_envs.SdkEnv,
    usdc_facilitator: RunningFacilitator,
    usdc_payers: list[Any],
    payee: Any,
    usdc: Any,
    chain: Any,
    chain_id: int,
) -> None:
    payer = usdc_payers[0]
    before = (usdc.balanceOf(payer), usdc.balanceOf(payee))
    out = pay(
        x402_env, usdc_facilitator, payer, payee, usdc, chain_id, [{"scheme": "exact", "money": "$0.50", "settles": 2}]
    )
    [payment] = out["payments"]

    requirements = payment["requirements"]
    assert (requirements["asset"], requirements["amount"]) == (usdc.address, str(PRICE))
    assert requirements["extra"] == {"name": _net(chain_id).asset("USDC").eip712_name, "version": "2"}
    authorization = payment["payload"]["payload"]["authorization"]  # EIP-3009, not permit2Authorization
    assert (authorization["from"], authorization["to"], authorization["value"]) == (
        payer.address,
        payee.address,
        str(PRICE),
    )
    assert payment["verify"]["isValid"] is True, payment["verify"]
    first, replay = payment["settles"]
    assert first["success"] is True, first
    assert first["payer"] == payer.address and mined(chain, first["transaction"])
    assert replay["success"] is True and replay["transaction"] == first["transaction"], replay

    assert usdc.authorizationState(payer, bytes.fromhex(authorization["nonce"][2:]))
    assert (usdc.balanceOf(payer), usdc.balanceOf(payee)) == (before[0] - PRICE, before[1] + PRICE)  # once


def test_a_payer_without_usdc_is_refused_at_verify_and_nothing_moves(
    x402_env: sdk_envs.SdkEnv,
    usdc_facilitator: RunningFacilitator,
    usdc_payers: list[Any],
    payee: Any,
    usdc: Any,
    chain: Any,
    chain_id: int,
) -> None:
    payer = usdc_payers[1]
    deal_opg(chain.provider, usdc, payer.address, PRICE - 1)
    before = usdc.balanceOf(payee)
    out = pay(x402_env, usdc_facilitator, payer, payee, usdc, chain_id, [{"scheme": "exact", "money": "$0.50"}])
    [payment] = out["payments"]
    assert payment["verify"]["isValid"] is False
    assert payment["verify"]["invalidReason"] == "invalid_exact_evm_insufficient_balance", payment["verify"]
    [settle] = payment["settles"]
    assert settle.get("success") is not True, settle
    assert usdc.balanceOf(payee) == before and usdc.balanceOf(payer) == PRICE - 1


@pytest.fixture
def batching_usdc_facilitator(
    deployment_file: Path, chain: Any, relayer: Any, usdc_payers: list[Any], tmp_path: Path
) -> Iterator[RunningFacilitator]:
    """The same server gathering concurrent /settle calls for up to a second into one Eip3009Batcher call."""
    rpc = str(chain.provider.http_uri)
    with running_facilitator(
        deployment_file, rpc, relayer.private_key, tmp_path, ["--batch-window-ms", "1000"]
    ) as running:
        yield running


def test_concurrent_usdc_payments_settle_in_one_eip3009_batch(
    x402_env: sdk_envs.SdkEnv,
    batching_usdc_facilitator: RunningFacilitator,
    deployment_file: Path,
    usdc_payers: list[Any],
    payee: Any,
    usdc: Any,
    chain: Any,
    chain_id: int,
) -> None:
    assert batching_usdc_facilitator.start["eip3009Route"] == "Eip3009Batcher"
    payer = usdc_payers[2]
    prices = ["$0.10", "$0.20", "$0.30", "$0.40"]
    before = (usdc.balanceOf(payer), usdc.balanceOf(payee))
    out = pay(
        x402_env,
        batching_usdc_facilitator,
        payer,
        payee,
        usdc,
        chain_id,
        [{"scheme": "exact", "money": price} for price in prices],
        concurrent=True,
    )
    settles = [payment["settles"][0] for payment in out["payments"]]
    assert all(s["success"] is True for s in settles), settles
    transactions = {s["transaction"] for s in settles}
    assert len(transactions) == 1, settles  # one transaction settled all four
    [transaction] = transactions
    receipt = chain.provider.web3.eth.get_transaction_receipt(transaction)
    deployment = Deployment.from_json(deployment_file.read_text())
    assert receipt["to"] == deployment.eip3009_batcher and int(receipt["status"]) == 1
    for payment in out["payments"]:
        nonce = payment["payload"]["payload"]["authorization"]["nonce"]
        assert usdc.authorizationState(payer, bytes.fromhex(nonce[2:]))
    total = sum(100_000 * n for n in range(1, 5))
    assert (usdc.balanceOf(payer), usdc.balanceOf(payee)) == (before[0] - total, before[1] + total)


NPM_SCRIPT = Path(__file__).parent / "npm" / "x402" / "exact_payment.mjs"


def test_npm_x402_evm_pays_usdc_with_eip3009(
    x402_npm_env: sdk_envs.SdkEnv,
    usdc_facilitator: RunningFacilitator,
    usdc_payers: list[Any],
    payee: Any,
    usdc: Any,
    chain: Any,
    chain_id: int,
) -> None:
    """The unmodified npm @x402/core + @x402/evm 2.27.0, priced "$0.50": its default asset, USDC, over EIP-3009."""
    payer = usdc_payers[3]
    before = (usdc.balanceOf(payer), usdc.balanceOf(payee))
    job = {
        "facilitator": usdc_facilitator.url,
        "apiKey": usdc_facilitator.api_key,
        "network": f"eip155:{chain_id}",
        "asset": usdc.address,
        "payTo": payee.address,
        "payerKey": payer.private_key,
        "maxTimeoutSeconds": 600,
        "money": "$0.50",
        "settles": 2,
    }
    out = sdk_envs.run_node(x402_npm_env, NPM_SCRIPT, input_json=job, timeout=240)
    assert out["requirements"]["asset"] == usdc.address and "assetTransferMethod" not in out["requirements"]["extra"]
    authorization = out["payload"]["payload"]["authorization"]
    assert (authorization["from"], authorization["value"]) == (payer.address, str(PRICE))
    assert out["verify"]["isValid"] is True, out["verify"]
    first, replay = out["settles"]
    assert first["success"] is True and mined(chain, first["transaction"]), first
    assert replay["success"] is True and replay["transaction"] == first["transaction"], replay
    assert (usdc.balanceOf(payer), usdc.balanceOf(payee)) == (before[0] - PRICE, before[1] + PRICE)


def test_og_settle_payment_sign_makes_the_stock_sdks_usdc_payload(
    x402_env: sdk_envs.SdkEnv,
    usdc_facilitator: RunningFacilitator,
    usdc_payers: list[Any],
    payee: Any,
    usdc: Any,
    chain: Any,
    chain_id: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """For the requirements the stock server offers, ``og-settle payment sign`` writes what the stock client writes
    (same fields, same accepted requirements, same authorisation but for its random nonce and clock), and
    ``og-settle payment verify --rpc-url`` accepts both, through the facilitator's own EIP-3009 verifier."""
    import json

    from og_settle.cli import main

    payer = usdc_payers[2]
    out = pay(
        x402_env, usdc_facilitator, payer, payee, usdc, chain_id, [{"scheme": "exact", "money": "$0.50", "settles": 0}]
    )
    [payment] = out["payments"]
    stock = payment["payload"]
    (tmp_path / "requirements.json").write_text(json.dumps(payment["requirements"]))
    (tmp_path / "stock.json").write_text(json.dumps(stock))
    monkeypatch.setenv("OG_SETTLE_TEST_PAYER_KEY", payer.private_key)
    capsys.readouterr()
    assert main(["payment", "sign", str(tmp_path / "requirements.json"), "--key-env", "OG_SETTLE_TEST_PAYER_KEY"]) == 0
    ours = json.loads(capsys.readouterr().out)
    optional = {"resource", "extensions"}  # the stock client adds the server's resource; the CLI had none
    assert set(ours) - optional == {k for k, v in stock.items() if v is not None} - optional
    assert ours["accepted"] == stock["accepted"] == payment["requirements"]
    assert set(ours["payload"]) == set(stock["payload"]) == {"signature", "authorization"}
    mine, theirs = ours["payload"]["authorization"], stock["payload"]["authorization"]
    assert set(mine) == set(theirs)
    assert [mine[k] for k in ("from", "to", "value", "validAfter")] == [
        theirs[k] for k in ("from", "to", "value", "validAfter")
    ]
    assert abs(int(mine["validBefore"]) - int(theirs["validBefore"])) < 120 and mine["nonce"] != theirs["nonce"]
    assert len(bytes.fromhex(ours["payload"]["signature"][2:])) == len(bytes.fromhex(stock["payload"]["signature"][2:]))

    (tmp_path / "ours.json").write_text(json.dumps(ours))
    rpc = str(chain.provider.http_uri)
    for name in ("stock.json", "ours.json"):
        code = main(["payment", "verify", str(tmp_path / name), "--rpc-url", rpc, "--json"])
        result = json.loads(capsys.readouterr().out)
        assert code == 0 and result["isValid"] is True and result["payer"] == payer.address, (name, result)
