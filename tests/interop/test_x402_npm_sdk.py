"""The unmodified npm ``@x402/core`` + ``@x402/evm`` 2.27.0 pay an exact Permit2 payment through og-settle.

The Node script (``npm/x402/exact_payment.mjs``) drives the SDK's ``x402ResourceServer`` over
``HTTPFacilitatorClient`` (``createAuthHeaders`` sending the bearer key) and its ``x402Client`` with the EVM exact
scheme over a viem account. Balances and the receipt are checked on chain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from og_settle import X402_EXACT_PERMIT2_PROXY
from tests.interop.conftest import RunningFacilitator
from tests.support import sdk_envs

SCRIPT = Path(__file__).parent / "npm" / "x402" / "exact_payment.mjs"
ONE = 10**18


def test_npm_exact_verifies_settles_once_and_a_replay_answers_the_first_transaction(
    x402_npm_env: sdk_envs.SdkEnv,
    facilitator: RunningFacilitator,
    payers: list[Any],
    payee: Any,
    opg: Any,
    chain: Any,
    chain_id: int,
) -> None:
    payer = payers[3]
    payee_before, payer_before = opg.balanceOf(payee), opg.balanceOf(payer)
    job = {
        "facilitator": facilitator.url,
        "apiKey": facilitator.api_key,
        "network": f"eip155:{chain_id}",
        "asset": opg.address,
        "payTo": payee.address,
        "payerKey": payer.private_key,
        "maxTimeoutSeconds": 600,
        "price": str(3 * ONE // 2),
        "settles": 2,
    }
    out = sdk_envs.run_node(x402_npm_env, SCRIPT, input_json=job, timeout=240)

    assert out["kind"] is not None and out["kind"]["scheme"] == "exact"
    assert out["requirements"]["extra"]["assetTransferMethod"] == "permit2"
    authorization = out["payload"]["payload"]["permit2Authorization"]
    assert authorization["spender"] == X402_EXACT_PERMIT2_PROXY and authorization["from"] == payer.address
    assert out["verify"]["isValid"] is True and out["verify"]["payer"] == payer.address, out["verify"]
    first, replay = out["settles"]
    assert first["success"] is True, first
    receipt = chain.provider.web3.eth.get_transaction_receipt(first["transaction"])
    assert int(receipt["status"]) == 1
    assert replay["success"] is True and replay["transaction"] == first["transaction"], replay
    assert opg.balanceOf(payee) - payee_before == 3 * ONE // 2
    assert payer_before - opg.balanceOf(payer) == 3 * ONE // 2
