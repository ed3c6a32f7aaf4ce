"""Gasless approval with the unmodified PyPI ``x402==2.25.0`` SDK: a first-time USDC payer pays over Permit2
through ``og-settle facilitator serve`` without ever sending a transaction.

The payer is a fresh key holding USDC (the replica's ReplicaUSDC at USDC's Base Sepolia address, with EIP-2612)
and nothing else: no ETH, no Permit2 allowance. The SDK's resource server declares x402's
``eip2612GasSponsoring`` extension (og-settle's ``/supported`` advertises it); its client, signing through
``EthAccountSignerWithRPC``, sees the missing allowance and adds an EIP-2612 permit for Permit2 to the payload;
og-settle verifies it and settles permit and payment in one transaction. Balances and nonces are read on chain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eth_account import Account

from og_settle import PERMIT2_ADDRESS
from og_settle._deploy import Deployment
from tests.interop.conftest import RunningFacilitator
from tests.support import sdk_envs
from tests.support.tokens import deal_opg

SCRIPT = Path(__file__).parent / "sdk" / "x402_payments.py"
USDC = 10**6
PRICE = USDC // 2  # the SDK's default spend control caps a USDC payment at $1


def pay(
    env: sdk_envs.SdkEnv,
    facilitator: RunningFacilitator,
    payer_key: str,
    payee: Any,
    usdc: Any,
    chain: Any,
    payments: list[dict[str, Any]],
    *,
    sponsored: bool,
) -> Any:
    job = {
        "facilitator": facilitator.url,
        "apiKey": facilitator.api_key,
        "network": f"eip155:{chain.chain_id}",
        "asset": usdc.address,
        "payTo": payee.address,
        "payerKey": payer_key,
        "maxTimeoutSeconds": 600,
        "rpcUrl": str(chain.provider.http_uri),
        "gasSponsoring": sponsored,
        "payments": [{**p, "tokenDomain": {"name": usdc.name(), "version": "2"}} for p in payments],
    }
    return sdk_envs.run_python(env, SCRIPT, input_json=job, timeout=240)


def fresh_payer(chain: Any, usdc: Any) -> Any:
    account = Account.create()
    deal_opg(chain.provider, usdc, account.address, 10 * USDC)  # any ERC-20's balance slot, not only OPG's
    return account


def untouched(chain: Any, address: str) -> bool:
    w3 = chain.provider.web3
    return int(w3.eth.get_transaction_count(address)) == 0 and int(w3.eth.get_balance(address)) == 0


def test_a_first_time_payer_pays_exact_and_upto_with_no_approval_transaction(
    x402_env: sdk_envs.SdkEnv,
    facilitator: RunningFacilitator,
    deployment_file: Path,
    payee: Any,
    usdc: Any,
    chain: Any,
) -> None:
    batcher = Deployment.from_json(deployment_file.read_text()).stock_payment_batcher
    network = f"eip155:{chain.chain_id}"
    assert "eip2612GasSponsoring" in facilitator.get("/supported")["extensions"]
    for scheme, charge in (("exact", None), ("upto", PRICE // 5)):
        payer = fresh_payer(chain, usdc)
        assert usdc.allowance(payer.address, PERMIT2_ADDRESS) == 0
        payee_before = usdc.balanceOf(payee)
        payment = {"scheme": scheme, "price": PRICE, "charge": charge, "settles": 2}
        out = pay(x402_env, facilitator, payer.key.hex(), payee, usdc, chain, [payment], sponsored=True)
        [paid] = out["payments"]

        info = paid["payload"]["extensions"]["eip2612GasSponsoring"]["info"]  # what the stock client signed
        assert (info["from"], info["asset"], info["spender"]) == (payer.address, usdc.address, PERMIT2_ADDRESS)
        assert (info["amount"], info["nonce"]) == (str(PRICE), "0")
        assert paid["verify"]["isValid"] is True, paid["verify"]
        first, replay = paid["settles"]
        assert first["success"] is True and first["network"] == network, first
        assert replay["success"] is True and replay["transaction"] == first["transaction"], replay
        tx = chain.provider.web3.eth.get_transaction(first["transaction"])
        assert tx["to"] == batcher  # settleWithPermits: the permit and the payment in one transaction

        moved = charge if charge is not None else PRICE
        assert usdc.balanceOf(payee) - payee_before == moved, scheme
        assert usdc.balanceOf(payer.address) == 10 * USDC - moved, scheme
        assert usdc.nonces(payer.address) == 1  # the permit was spent on chain, by the settlement
        assert untouched(chain, payer.address)  # no approval transaction, no ETH


def test_without_the_extension_a_first_time_payer_needs_an_approval(
    x402_env: sdk_envs.SdkEnv, facilitator: RunningFacilitator, payee: Any, usdc: Any, chain: Any
) -> None:
    """The control: when the resource server does not declare the extension the stock client signs no permit,
    and og-settle answers ``permit2_allowance_required`` with nothing moved."""
    payer = fresh_payer(chain, usdc)
    before = usdc.balanceOf(payee)
    out = pay(x402_env, facilitator, payer.key.hex(), payee, usdc, chain, [{"scheme": "exact", "price": PRICE}],
              sponsored=False)  # fmt: skip
    [paid] = out["payments"]
    assert "eip2612GasSponsoring" not in (paid["payload"].get("extensions") or {})
    assert paid["verify"]["isValid"] is False
    assert paid["verify"]["invalidReason"] == "permit2_allowance_required"
    [settled] = paid["settles"]
    assert settled.get("success") is not True, settled
    assert usdc.balanceOf(payee) == before


def test_npm_sdk_first_time_payer_pays_with_no_approval_transaction(
    x402_npm_env: sdk_envs.SdkEnv,
    facilitator: RunningFacilitator,
    deployment_file: Path,
    payee: Any,
    usdc: Any,
    chain: Any,
) -> None:
    """The same with the unmodified npm ``@x402/core`` + ``@x402/evm`` 2.27.0 (its exact client scheme, given an
    RPC URL, reads the allowance and the token nonce and signs the permit)."""
    npm_script = Path(__file__).parent / "npm" / "x402" / "exact_payment.mjs"
    payer = fresh_payer(chain, usdc)
    before = usdc.balanceOf(payee)
    job = {
        "facilitator": facilitator.url,
        "apiKey": facilitator.api_key,
        "network": f"eip155:{chain.chain_id}",
        "asset": usdc.address,
        "payTo": payee.address,
        "payerKey": "0x" + payer.key.hex().removeprefix("0x"),
        "maxTimeoutSeconds": 600,
        "price": str(PRICE),
        "settles": 2,
        "rpcUrl": str(chain.provider.http_uri),
        "gasSponsoring": True,
        "tokenDomain": {"name": usdc.name(), "version": "2"},
    }
    out = sdk_envs.run_node(x402_npm_env, npm_script, input_json=job, timeout=240)
    info = out["payload"]["extensions"]["eip2612GasSponsoring"]["info"]
    assert (info["from"], info["spender"], info["amount"]) == (payer.address, PERMIT2_ADDRESS, str(PRICE))
    assert out["verify"]["isValid"] is True, out["verify"]
    first, replay = out["settles"]
    assert first["success"] is True, first
    assert replay["success"] is True and replay["transaction"] == first["transaction"], replay
    batcher = Deployment.from_json(deployment_file.read_text()).stock_payment_batcher
    assert chain.provider.web3.eth.get_transaction(first["transaction"])["to"] == batcher
    assert usdc.balanceOf(payee) - before == PRICE
    assert usdc.nonces(payer.address) == 1 and untouched(chain, payer.address)
