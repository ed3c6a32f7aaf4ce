"""Deterministic deployment: predicted CREATE2 addresses, idempotent re-runs, roles, and fresh artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from og_settle import X402_EXACT_PERMIT2_PROXY, X402_UPTO_PERMIT2_PROXY
from og_settle._artifacts import DEPLOYABLE_CONTRACTS, artifact
from og_settle._deploy import Deployment, deploy, load_deployment, plan_deployment, role_id, salt_for
from scripts.deploy import ApeSender
from tests.support.upstream import own_ape_env


def without_metadata(code: bytes) -> bytes:
    """Code minus solc's trailing CBOR metadata, whose source hashes depend on where the checkout lives."""
    return code[: -(int.from_bytes(code[-2:], "big") + 2)]


@pytest.mark.parametrize("name", DEPLOYABLE_CONTRACTS)
def test_committed_artifacts_match_the_compiled_contracts(project: Any, name: str) -> None:
    """The ABI and code the package ships are those of the current sources (`make artifacts` refreshes them).

    The deployment uses the committed bytecode as is, so its CREATE2 addresses do not depend on the machine."""
    contract_type = getattr(project, name).contract_type
    shipped = artifact(name)
    compiled_init = bytes.fromhex(contract_type.deployment_bytecode.bytecode.removeprefix("0x"))
    compiled_runtime = bytes.fromhex(contract_type.runtime_bytecode.bytecode.removeprefix("0x"))
    stale = f"{name}: committed artifact is stale; run `make artifacts`"
    assert without_metadata(shipped.initcode) == without_metadata(compiled_init), stale
    assert without_metadata(shipped.runtime) == without_metadata(compiled_runtime), stale
    assert [dict(item) for item in shipped.abi] == [
        item.model_dump(mode="json", by_alias=True) for item in contract_type.abi
    ], stale


def test_salts_are_documented_values() -> None:
    import sha3

    for name in DEPLOYABLE_CONTRACTS:
        assert salt_for(name) == sha3.keccak_256(f"og-settle/{name}/v1".encode()).digest()


def test_deploy_lands_at_predicted_addresses_and_is_idempotent(
    deployer: Any, relayer: Any, admin: Any, chain: Any, project: Any, tmp_path: Path
) -> None:
    predicted = {plan.name: plan.address for plan in plan_deployment(deployer.address)}
    sender = ApeSender(deployer)
    first = deploy(sender, relayers=[relayer.address], operators=[admin.address], out_dir=tmp_path)

    assert (first.tee_registry, first.settlement_registry, first.payment_facilitator) == (
        predicted["TeeRegistry"],
        predicted["SettlementRegistry"],
        predicted["PaymentFacilitator"],
    )
    for address in predicted.values():
        assert len(chain.provider.get_code(address)) > 0
    registry = project.SettlementRegistry.at(first.settlement_registry)
    assert registry.hasRole(role_id("RELAYER_ROLE"), relayer)
    assert registry.hasRole(registry.ADMIN_ROLE(), deployer)
    assert registry.teeRegistry() == first.tee_registry
    assert project.TeeRegistry.at(first.tee_registry).hasRole(role_id("OPERATOR_ROLE"), admin)
    assert project.PaymentFacilitator.at(first.payment_facilitator).PERMIT2() == first.permit2
    batcher = project.StockPaymentBatcher.at(first.stock_payment_batcher)
    assert first.stock_payment_batcher == predicted["StockPaymentBatcher"]
    assert batcher.hasRole(role_id("SETTLER_ROLE"), relayer)
    assert (batcher.EXACT_PROXY(), batcher.UPTO_PROXY()) == (X402_EXACT_PERMIT2_PROXY, X402_UPTO_PERMIT2_PROXY)
    eip3009 = project.Eip3009Batcher.at(first.eip3009_batcher)
    assert first.eip3009_batcher == predicted["Eip3009Batcher"]
    assert eip3009.hasRole(role_id("SETTLER_ROLE"), relayer)
    assert len(first.transactions) == 9  # five CREATE2 deployments and four role grants

    written = load_deployment(tmp_path / f"{chain.chain_id}.json")
    assert written == first

    again = deploy(sender, relayers=[relayer.address], operators=[admin.address], out_dir=tmp_path)
    assert again == first
    assert again.transactions == ()  # a re-run detects everything and sends nothing


def test_deployment_file_rejects_unknown_format(tmp_path: Path) -> None:
    from og_settle import InvalidInput

    path = tmp_path / "84532.json"
    path.write_text('{"format": "something-else"}')
    with pytest.raises(InvalidInput, match="format"):
        load_deployment(path)
    assert (
        Deployment.from_json(
            Deployment(
                chain_id=1, admin="0x" + "11" * 20, tee_registry="a", settlement_registry="b", payment_facilitator="c"
            ).to_json()
        ).chain_id
        == 1
    )


def test_ape_run_deploy_script_lands_at_predicted_addresses(deployer: Any, tmp_path: Path) -> None:
    """`ape run deploy` itself (the command the README gives for the real network), on a fork of the same upstream."""
    import shutil
    import subprocess

    ape_cli = shutil.which("ape")
    assert ape_cli is not None
    argv = [ape_cli, "run", "deploy", "--network", "base:sepolia-fork:foundry", "--account", "TEST::0"]
    argv += ["--out-dir", str(tmp_path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180, env=own_ape_env())
    assert done.returncode == 0, done.stderr[-2000:]
    written = load_deployment(tmp_path / "84532.json")
    predicted = {plan.name: plan.address for plan in plan_deployment(deployer.address)}
    assert written.admin == deployer.address
    assert (written.tee_registry, written.settlement_registry, written.payment_facilitator) == (
        predicted["TeeRegistry"],
        predicted["SettlementRegistry"],
        predicted["PaymentFacilitator"],
    )


def test_a_rerun_merges_into_the_deployment_file(
    deployer: Any, relayer: Any, admin: Any, stranger: Any, chain: Any, project: Any, tmp_path: Path
) -> None:
    """Re-running deploy keeps the file's operators, relayers and unknown keys; it lists only accounts that still
    hold their role, and refuses a file describing another deployment before sending anything."""
    import json

    from og_settle import InvalidInput

    sender = ApeSender(deployer)
    first = deploy(sender, relayers=[relayer.address], operators=[admin.address], out_dir=tmp_path)
    target = tmp_path / f"{first.chain_id}.json"
    target.write_text(json.dumps({**json.loads(target.read_text()), "notes": {"owner": "ops team"}}))

    lines: list[str] = []
    second = deploy(sender, relayers=[stranger.address], out_dir=tmp_path, log=lines.append)
    written = json.loads(target.read_text())
    assert written["relayers"] == [stranger.address, relayer.address]
    assert written["operators"] == [admin.address]
    assert written["notes"] == {"owner": "ops team"}
    assert (second.relayers, second.operators) == ((stranger.address, relayer.address), (admin.address,))
    assert f"updated {target}" in lines

    # An account whose role was revoked on chain is dropped from the file, with a line saying so.
    registry = project.SettlementRegistry.at(first.settlement_registry)
    registry.revokeRole(role_id("RELAYER_ROLE"), relayer.address, sender=deployer)
    lines.clear()
    third = deploy(sender, out_dir=tmp_path, log=lines.append)
    assert third.relayers == (stranger.address,)
    assert load_deployment(target).relayers == (stranger.address,)
    assert any(relayer.address in line and "no longer holds RELAYER_ROLE" in line for line in lines)

    # Another admin means other addresses: the file is not overwritten and nothing is sent.
    nonce = chain.provider.get_nonce(admin.address)
    before = target.read_text()
    with pytest.raises(InvalidInput, match="describes another deployment"):
        deploy(ApeSender(admin), out_dir=tmp_path)
    assert target.read_text() == before
    assert chain.provider.get_nonce(admin.address) == nonce
