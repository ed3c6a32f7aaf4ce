"""``--network base``: a replica of Base mainnet (chain id 8453) with Permit2, OPG at its mainnet address and the
canonical x402 proxies; og-settle deploys on it, settles stock payloads signed for 8453 (exact straight through the
proxy, upto through the StockPaymentBatcher with the typed client and TxSender), and commands refuse a node of
the other network. The suite's default chain stays Base Sepolia; this module starts its own small Base replica."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_account import Account

from og_settle import BASE, PERMIT2_ADDRESS, X402_EXACT_PERMIT2_PROXY, X402_UPTO_PERMIT2_PROXY
from og_settle._deploy import Deployment, Web3Sender, deploy
from og_settle._hex import keccak256
from og_settle.clients import StockPayment, StockPaymentBatcherClient, TxSender, exact_proxy_call, make_web3
from og_settle.replica import DEV_MNEMONIC, ReplicaInfo, running_replica
from og_settle.replica._rpc import JsonRpc, RpcError
from tests.support.stock import StockPayment as SignedStock
from tests.support.stock import as_x402, stock_payment

ONE = 10**18
Account.enable_unaudited_hdwallet_features()
KEYS = [Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key for i in range(4)]
DEPLOYER, RELAYER, PAYER, PAYEE = (Account.from_key(k) for k in KEYS)


@pytest.fixture(scope="module")
def base() -> Iterator[ReplicaInfo]:
    with running_replica(network=BASE) as info:
        yield info


@pytest.fixture(scope="module")
def rpc(base: ReplicaInfo) -> JsonRpc:
    return JsonRpc(base.rpc_url)


@pytest.fixture(scope="module")
def deployment(base: ReplicaInfo, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    return deploy(
        Web3Sender(base.rpc_url, KEYS[0].hex()), relayers=[RELAYER.address], out_dir=tmp_path_factory.mktemp("d")
    )


def balance(rpc: JsonRpc, who: str) -> int:
    data = keccak256(b"balanceOf(address)")[:4] + encode(["address"], [who])
    return int(rpc.call("eth_call", {"to": BASE.opg, "data": "0x" + data.hex()}, "latest"), 16)


def send(rpc: JsonRpc, sender: str, to: str, data: bytes) -> dict[str, Any]:
    tx = rpc.call("eth_sendTransaction", {"from": sender, "to": to, "data": "0x" + data.hex(), "gas": hex(1_000_000)})
    return rpc.wait_for_receipt(tx)


def now(rpc: JsonRpc) -> int:
    return int(rpc.call("eth_getBlockByNumber", "latest", False)["timestamp"], 16)


def as_stock(signed: SignedStock, charge: int) -> StockPayment:
    return StockPayment.from_x402(*as_x402(signed, BASE.chain_id, charge))


def test_base_replica_holds_the_canonical_contracts(base: ReplicaInfo, rpc: JsonRpc) -> None:
    assert (base.chain_id, base.network, base.opg) == (8453, "base", "0xFbC2051AE2265686a469421b2C5A2D5462FbF5eB")
    for address in (PERMIT2_ADDRESS, BASE.opg, X402_EXACT_PERMIT2_PROXY, X402_UPTO_PERMIT2_PROXY):
        assert rpc.call("eth_getCode", address, "latest") not in ("0x", "0x0"), address
    assert balance(rpc, PAYER.address) > 0


def test_stock_exact_payment_signed_for_8453_settles_through_the_proxy(rpc: JsonRpc) -> None:
    approve = keccak256(b"approve(address,uint256)")[:4] + encode(["address", "uint256"], [PERMIT2_ADDRESS, 2**256 - 1])
    send(rpc, PAYER.address, BASE.opg, approve)
    signed = stock_payment(KEYS[2], chain_id=8453, token=BASE.opg, amount=2 * ONE, to=PAYEE.address, now=now(rpc))
    before = balance(rpc, PAYEE.address)
    send(rpc, RELAYER.address, X402_EXACT_PERMIT2_PROXY, exact_proxy_call(as_stock(signed, 2 * ONE)).data)
    assert balance(rpc, PAYEE.address) == before + 2 * ONE
    # The same signature for Base Sepolia's domain does not settle here (cross-chain replay).
    other = stock_payment(KEYS[2], chain_id=84532, token=BASE.opg, amount=ONE, to=PAYEE.address, now=now(rpc))
    with pytest.raises(RpcError, match="reverted"):
        send(rpc, RELAYER.address, X402_EXACT_PERMIT2_PROXY, exact_proxy_call(as_stock(other, ONE)).data)


def test_deploy_and_batched_upto_on_base(base: ReplicaInfo, rpc: JsonRpc, deployment: Deployment) -> None:
    assert (deployment.chain_id, deployment.opg) == (8453, BASE.opg)
    w3 = make_web3(base.rpc_url)
    batcher = StockPaymentBatcherClient(w3, deployment.stock_payment_batcher)
    assert batcher.is_settler(RELAYER.address)
    signed = stock_payment(
        KEYS[2],
        chain_id=8453,
        token=BASE.opg,
        amount=5 * ONE,
        to=PAYEE.address,
        now=now(rpc),
        scheme="upto",
        facilitator=deployment.stock_payment_batcher,
    )
    payments = [as_stock(signed, 3 * ONE)]
    sender = TxSender(w3, Account.from_key(KEYS[1]))
    before = balance(rpc, PAYEE.address)
    call = batcher.settle_call(payments, chain_id=8453)
    receipt = sender.send(call)
    (outcome,) = batcher.outcomes(receipt, payments)
    assert (outcome.settled, outcome.amount) == (True, 3 * ONE)
    assert balance(rpc, PAYEE.address) == before + 3 * ONE
    replay = batcher.outcomes(sender.send(call), payments)
    assert (replay[0].settled, replay[0].reason) == (False, "permit2_invalid_nonce")


def test_commands_refuse_a_node_of_the_other_network(base: ReplicaInfo, tmp_path: Path) -> None:
    deployment = tmp_path / "8453.json"
    deployment.write_text(
        Deployment(
            chain_id=8453, admin=DEPLOYER.address, tee_registry="a", settlement_registry="b", payment_facilitator="c"
        ).to_json()
    )
    argv = [
        sys.executable,
        "-m",
        "og_settle.cli",
        "status",
        "payment",
        "--rpc",
        base.rpc_url,
        "--deployment",
        str(deployment),
        "--network",
        "base-sepolia",
        DEPLOYER.address,
        "1",
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"og-settle: error: --network base-sepolia: the node at {base.rpc_url} is chain 8453, Base Sepolia is 84532"
    )
    proc = subprocess.run([*argv[:-4], "--network", "mainnet", *argv[-2:]], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "network: unknown network 'mainnet'" in proc.stderr
