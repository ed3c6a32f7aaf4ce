"""The unmodified PyPI ``x402==2.25.0`` SDK pays through ``og-settle facilitator serve`` on the fork.

Its resource server (``x402ResourceServerSync``) builds exact and upto requirements from our ``/supported``, its
client (``x402ClientSync``) signs them (spender hard-coded to the canonical x402 proxies), and its
``HTTPFacilitatorClientSync`` authenticating with ``create_headers`` verifies and settles them. Every amount is
checked on chain: balances, receipts and the Permit2 nonce bitmap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from og_settle import X402_EXACT_PERMIT2_PROXY, X402_UPTO_PERMIT2_PROXY
from og_settle._deploy import Deployment
from tests.interop.conftest import RunningFacilitator
from tests.support import sdk_envs

SCRIPT = Path(__file__).parent / "sdk" / "x402_payments.py"
ONE = 10**18


def pay(
    env: sdk_envs.SdkEnv,
    facilitator: RunningFacilitator,
    payer: Any,
    payee: Any,
    opg: Any,
    chain_id: int,
    payments: list[dict[str, Any]],
    *,
    api_key: str | None = "from-facilitator",
    concurrent: bool = False,
) -> Any:
    job = {
        "facilitator": facilitator.url,
        "apiKey": facilitator.api_key if api_key == "from-facilitator" else api_key,
        "network": f"eip155:{chain_id}",
        "asset": opg.address,
        "payTo": payee.address,
        "payerKey": payer.private_key,
        "maxTimeoutSeconds": 600,
        "payments": payments,
        "concurrentSettle": concurrent,
    }
    return sdk_envs.run_python(env, SCRIPT, input_json=job, timeout=240)


def nonce_used(permit2: Any, owner: str, nonce: int) -> bool:
    return bool((int(permit2.nonceBitmap(owner, nonce >> 8)) >> (nonce & 0xFF)) & 1)


def mined(chain: Any, tx: str) -> bool:
    return int(chain.provider.web3.eth.get_transaction_receipt(tx)["status"]) == 1


def test_resource_server_builds_both_schemes_from_supported(
    x402_env: sdk_envs.SdkEnv, facilitator: RunningFacilitator, payer: Any, payee: Any, opg: Any, chain_id: int
) -> None:
    """The SDK's resource server starts against /supported (it refuses unless both kinds are listed) and takes
    the upto settler from ``extra.facilitatorAddress``."""
    out = pay(x402_env, facilitator, payer, payee, opg, chain_id, [])
    exact, upto = out["kinds"]
    network = f"eip155:{chain_id}"
    assert (exact["scheme"], exact["network"], exact["x402Version"]) == ("exact", network, 2)
    assert (upto["scheme"], upto["network"], upto["x402Version"]) == ("upto", network, 2)
    assert upto["extra"]["facilitatorAddress"].startswith("0x")
    served = {(kind["scheme"], kind["network"]): kind for kind in facilitator.get("/supported")["kinds"]}
    assert served[("upto", network)]["extra"]["facilitatorAddress"] == upto["extra"]["facilitatorAddress"]
    assert served[("exact", network)].get("extra") == exact.get("extra")


def test_exact_verifies_settles_once_and_a_replay_answers_the_first_transaction(
    x402_env: sdk_envs.SdkEnv,
    facilitator: RunningFacilitator,
    payer: Any,
    payee: Any,
    opg: Any,
    chain: Any,
    chain_id: int,
) -> None:
    payee_before, payer_before = opg.balanceOf(payee), opg.balanceOf(payer)
    out = pay(x402_env, facilitator, payer, payee, opg, chain_id, [{"scheme": "exact", "price": 2 * ONE, "settles": 2}])
    [payment] = out["payments"]

    requirements = payment["requirements"]
    assert requirements["amount"] == str(2 * ONE) and requirements["asset"] == opg.address
    assert requirements["payTo"] == payee.address and requirements["extra"]["assetTransferMethod"] == "permit2"
    authorization = payment["payload"]["payload"]["permit2Authorization"]
    assert authorization["spender"] == X402_EXACT_PERMIT2_PROXY  # what the stock client always signs
    assert authorization["from"] == payer.address

    assert payment["verify"]["isValid"] is True, payment["verify"]
    assert payment["verify"]["payer"] == payer.address
    first, replay = payment["settles"]
    assert first["success"] is True, first
    assert first["payer"] == payer.address and first["network"] == f"eip155:{chain_id}"
    assert len(first["transaction"]) == 66 and mined(chain, first["transaction"])
    assert replay["success"] is True and replay["transaction"] == first["transaction"], replay

    assert opg.balanceOf(payee) - payee_before == 2 * ONE  # paid once, not twice
    assert payer_before - opg.balanceOf(payer) == 2 * ONE


def test_upto_charges_the_settled_amount_and_zero_sends_nothing(
    x402_env: sdk_envs.SdkEnv,
    facilitator: RunningFacilitator,
    payers: list[Any],
    payee: Any,
    opg: Any,
    permit2: Any,
    chain: Any,
    chain_id: int,
) -> None:
    """A partial upto moves exactly the charge (the SDK's settlement override); a zero upto is a success with an
    empty transaction and ``amount: "0"``, and leaves the Permit2 nonce unused."""
    payer = payers[1]
    payee_before, payer_before = opg.balanceOf(payee), opg.balanceOf(payer)
    partial = {"scheme": "upto", "price": 3 * ONE, "charge": ONE, "settles": 2}
    zero = {"scheme": "upto", "price": 3 * ONE, "charge": 0}
    out = pay(x402_env, facilitator, payer, payee, opg, chain_id, [partial, zero])
    upto_kind = out["kinds"][1]
    charged, nothing = out["payments"]

    settler = upto_kind["extra"]["facilitatorAddress"]
    assert charged["requirements"]["extra"]["facilitatorAddress"] == settler
    authorization = charged["payload"]["payload"]["permit2Authorization"]
    assert authorization["spender"] == X402_UPTO_PERMIT2_PROXY
    assert authorization["witness"]["facilitator"] == settler
    assert authorization["permitted"]["amount"] == str(3 * ONE)

    assert charged["verify"]["isValid"] is True, charged["verify"]
    first, replay = charged["settles"]
    assert first["success"] is True and first["amount"] == str(ONE), first
    assert mined(chain, first["transaction"])
    assert replay["success"] is True and replay["transaction"] == first["transaction"], replay

    assert nothing["verify"]["isValid"] is True, nothing["verify"]
    [settled] = nothing["settles"]
    assert (settled["success"], settled["transaction"], settled["amount"]) == (True, "", "0"), settled
    zero_nonce = int(nothing["payload"]["payload"]["permit2Authorization"]["nonce"])
    assert not nonce_used(permit2, payer.address, zero_nonce)
    assert nonce_used(permit2, payer.address, int(authorization["nonce"]))

    assert opg.balanceOf(payee) - payee_before == ONE
    assert payer_before - opg.balanceOf(payer) == ONE


def test_settle_without_the_bearer_key_moves_nothing(
    x402_env: sdk_envs.SdkEnv,
    facilitator: RunningFacilitator,
    payers: list[Any],
    payee: Any,
    opg: Any,
    chain_id: int,
) -> None:
    """Without ``create_headers`` (or with a wrong key) the SDK's /verify still works, /settle does not."""
    payer = payers[2]
    before = opg.balanceOf(payee)
    for key in (None, "not-the-key"):
        out = pay(x402_env, facilitator, payer, payee, opg, chain_id, [{"scheme": "exact", "price": ONE}], api_key=key)
        [payment] = out["payments"]
        assert payment["verify"]["isValid"] is True, payment["verify"]
        [settled] = payment["settles"]
        assert "error" in settled or settled["success"] is False, settled
    assert opg.balanceOf(payee) == before


def test_concurrent_settles_share_a_batch_and_each_caller_gets_its_answer(
    x402_env: sdk_envs.SdkEnv,
    batching_facilitator: RunningFacilitator,
    deployment_file: Path,
    payers: list[Any],
    payee: Any,
    opg: Any,
    chain: Any,
    chain_id: int,
) -> None:
    """Six stock payments settled at once through a facilitator with a batching window: fewer transactions than
    payments, every caller answered with a mined transaction, each paid exactly once (a replay answers the same
    transaction)."""
    payer = payers[0]
    before = opg.balanceOf(payee)
    payments = [{"scheme": "exact", "price": ONE, "settles": 2} for _ in range(6)]
    out = pay(x402_env, batching_facilitator, payer, payee, opg, chain_id, payments, concurrent=True)
    transactions = []
    for payment in out["payments"]:
        assert payment["verify"]["isValid"] is True, payment["verify"]
        first, replay = payment["settles"]
        assert first["success"] is True, first
        assert replay["success"] is True and replay["transaction"] == first["transaction"], replay
        assert mined(chain, first["transaction"])
        transactions.append(first["transaction"])
    assert len(set(transactions)) < len(transactions), transactions  # gathered into shared transactions
    batcher = Deployment.from_json(deployment_file.read_text()).stock_payment_batcher
    for tx in set(transactions):
        assert chain.provider.web3.eth.get_transaction(tx)["to"] == batcher  # the StockPaymentBatcher settled them
    assert opg.balanceOf(payee) - before == 6 * ONE
