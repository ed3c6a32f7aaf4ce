"""The unmodified PyPI ``opengradient==1.1.4`` SDK pays through og-settle on a ``--network base`` replica.

The SDK pays only on Base mainnet (``eip155:8453``) and reads the chain through ``BASE_MAINNET_RPC``, so this test
runs its own replica with chain id 8453 (``og-settle chain up --network base``: Permit2, OPG at its mainnet
address and the canonical x402 proxies), deploys og-settle on it with ``og-settle deploy`` and starts
``og-settle facilitator serve`` against it, all as child processes. The SDK's own x402 client
(``og.LLM.from_url(...).resolve_tee_connection().http_client``) pays an exact and an upto 402 answer; the payer
approves Permit2 with the SDK's ``ensure_opg_approval``. Balances are read on the replica.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from og_settle import X402_EXACT_PERMIT2_PROXY, X402_UPTO_PERMIT2_PROXY
from og_settle.clients import make_web3
from tests.interop.conftest import RunningFacilitator, running_facilitator
from tests.support import sdk_envs
from tests.support.children import json_child

SCRIPT = Path(__file__).parent / "sdk" / "opengradient_payment.py"
ONE = 10**18
# The replica's funded dev accounts (anvil's well-known test mnemonic): deployer/settler, payer and payee.
DEPLOYER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
PAYER_KEY = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6"
PAYEE = "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f"
_BALANCE_OF = [
    {
        "name": "balanceOf",
        "type": "function",
        "stateMutability": "view",
        "inputs": [{"name": "holder", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    }
]


@pytest.fixture(scope="module")
def base_replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``og-settle chain up --network base`` in a child process; its JSON start line."""
    log = tmp_path_factory.mktemp("base-replica") / "replica.log"
    argv = [sys.executable, "-m", "og_settle.cli", "chain", "up", "--network", "base", "--json"]
    with json_child("og-settle chain up --network base", argv, log) as child:
        yield child.start


@pytest.fixture(scope="module")
def base_facilitator(
    base_replica: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningFacilitator]:
    folder = tmp_path_factory.mktemp("base-facilitator")
    rpc = base_replica["rpc_url"]
    argv = [sys.executable, "-m", "og_settle.cli", "deploy", "--network", "base", "--rpc-url", rpc]
    argv += ["--out-dir", str(folder)]
    argv += ["--relayer", Account.from_key(DEPLOYER_KEY).address]  # the settling account gets its roles
    env = {**os.environ, "OG_SETTLE_DEPLOYER_KEY": DEPLOYER_KEY}
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"og-settle deploy exited {done.returncode}: {done.stderr.strip()}"
    network = ["--network", "base"]
    with running_facilitator(folder / "8453.json", rpc, DEPLOYER_KEY, folder, network) as running:
        yield running


def test_opengradient_sdk_pays_exact_and_upto_on_base(
    opengradient_env: sdk_envs.SdkEnv, base_replica: dict[str, Any], base_facilitator: RunningFacilitator
) -> None:
    assert base_replica["chain_id"] == 8453
    w3 = make_web3(base_replica["rpc_url"])
    opg = w3.eth.contract(address=base_replica["opg"], abi=_BALANCE_OF)
    payer = Account.from_key(PAYER_KEY).address
    payee_before, payer_before = opg.functions.balanceOf(PAYEE).call(), opg.functions.balanceOf(payer).call()

    job = {
        "facilitator": base_facilitator.url,
        "apiKey": base_facilitator.api_key,
        "asset": base_replica["opg"],
        "payTo": PAYEE,
        "payerKey": PAYER_KEY,
        "payments": [
            {"scheme": "exact", "price": str(2 * ONE)},
            {"scheme": "upto", "price": str(3 * ONE), "charge": str(ONE)},
        ],
    }
    env = {"BASE_MAINNET_RPC": base_replica["rpc_url"]}
    out = sdk_envs.run_python(opengradient_env, SCRIPT, input_json=job, env=env, timeout=240)

    assert int(out["approval"]["after"]) >= 1000 * ONE  # ensure_opg_approval approved Permit2 on the replica
    exact, upto = out["payments"]
    assert exact["payload"]["payload"]["permit2Authorization"]["spender"] == X402_EXACT_PERMIT2_PROXY
    assert upto["payload"]["payload"]["permit2Authorization"]["spender"] == X402_UPTO_PERMIT2_PROXY
    for payment in (exact, upto):
        assert payment["payload"]["accepted"]["network"] == "eip155:8453"
        assert payment["verify"]["isValid"] is True, payment["verify"]
        assert payment["settle"]["success"] is True, payment["settle"]
        assert payment["status"] == 200
        receipt = w3.eth.get_transaction_receipt(payment["settle"]["transaction"])
        assert int(receipt["status"]) == 1
    assert upto["settle"]["amount"] == str(ONE)

    assert opg.functions.balanceOf(PAYEE).call() - payee_before == 3 * ONE  # 2 exact + 1 charged of 3 upto
    assert payer_before - opg.functions.balanceOf(payer).call() == 3 * ONE
