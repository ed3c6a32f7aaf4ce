"""The unmodified PyPI ``x402==2.25.0`` SDK against og-settle's per-key limits and receipts: its
``SettleResponse.extensions`` carries og-settle's receipt, which checks out against the chain alone, and a
settlement over the key's spend quota is refused with HTTP 429, on which the SDK raises (it reads only HTTP 200
bodies), with nothing settled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.interop.conftest import RunningFacilitator
from tests.interop.test_x402_python_sdk import ONE, pay
from tests.support import sdk_envs


def facilitator_cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "og_settle.cli", "facilitator", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_the_sdk_gets_a_receipt_and_raises_on_a_settle_over_the_quota(
    x402_env: sdk_envs.SdkEnv,
    facilitator: RunningFacilitator,
    payers: list[Any],
    payee: Any,
    opg: Any,
    chain: Any,
    chain_id: int,
    tmp_path: Path,
) -> None:
    # The facilitator's bearer key gets a quota of 3 OPG a day, in the store the server reads on every request.
    added = facilitator_cli(
        "keys", "add", "--store", str(tmp_path / "settlements.sqlite3"), "--name", "sdk-merchant",
        "--key-env", "SDK_KEY", "--quota", f"{opg.address}:{3 * ONE}/day",
        env={"SDK_KEY": facilitator.api_key},
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    before = opg.balanceOf(payee)

    first = pay(x402_env, facilitator, payers[1], payee, opg, chain_id, [{"scheme": "exact", "price": 2 * ONE}])
    [settled] = first["payments"][0]["settles"]
    assert settled["success"] is True, settled
    receipt = settled["extensions"]["og-settle"]["receipt"]
    assert receipt["transaction"] == settled["transaction"] and receipt["amount"] == str(2 * ONE)
    assert receipt["payer"] == payers[1].address and receipt["payTo"] == payee.address
    (tmp_path / "receipt.json").write_text(json.dumps(settled))  # the SDK's SettleResponse, as the merchant has it
    checked = facilitator_cli("receipt", "verify", str(tmp_path / "receipt.json"), "--rpc-url", chain.provider.http_uri)
    assert checked.returncode == 0 and ": ok: " in checked.stdout, checked.stdout + checked.stderr

    second = pay(x402_env, facilitator, payers[1], payee, opg, chain_id, [{"scheme": "exact", "price": 2 * ONE}])
    payment = second["payments"][0]
    assert payment["verify"]["isValid"] is True  # verify has no quota; the settle would spend past it
    [refused] = payment["settles"]
    assert refused["error"].startswith("ValueError: Facilitator settle failed (429)"), refused
    assert "over_quota" in refused["error"]
    assert opg.balanceOf(payee) - before == 2 * ONE  # the second payment moved nothing
