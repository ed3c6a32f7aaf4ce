"""The README's stock x402 resource server example runs, as printed, against ``og-settle facilitator serve``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.interop.conftest import RunningFacilitator
from tests.support import sdk_envs

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- interop: readme-example -->"


def readme_example() -> str:
    text = README.read_text()
    found = re.search(re.escape(MARKER) + r"\s*```python\n(.*?)```", text, re.DOTALL)
    assert found, f"README.md has no python block after {MARKER}"
    return found.group(1)


def test_readme_resource_server_example_settles(
    x402_env: sdk_envs.SdkEnv,
    facilitator: RunningFacilitator,
    payers: list[Any],
    payee: Any,
    opg: Any,
    chain: Any,
    chain_id: int,
) -> None:
    payer = payers[4]
    before = opg.balanceOf(payee)
    env = {
        "NETWORK": f"eip155:{chain_id}",
        "OPG": opg.address,
        "FACILITATOR_URL": facilitator.url,
        "FACILITATOR_KEY": facilitator.api_key,
        "PAY_TO": payee.address,
        "PAYER_KEY": payer.private_key,
    }
    settled = sdk_envs.run_python(x402_env, readme_example(), env=env, timeout=240)
    assert settled["success"] is True and settled["payer"] == payer.address, json.dumps(settled)
    assert int(chain.provider.web3.eth.get_transaction_receipt(settled["transaction"])["status"]) == 1
    assert opg.balanceOf(payee) - before == 5 * 10**17
