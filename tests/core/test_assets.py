"""Assets per network (``og_settle._networks``): OPG and USDC on both Base networks, operator-added tokens from an
assets file, and ``og-settle payment requirements`` building each asset's x402 requirements as the stock SDK does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from og_settle._errors import InvalidInput
from og_settle._networks import BASE, BASE_SEPOLIA, Asset, configured_network, load_assets, network
from og_settle.cli import main

PAY_TO = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
EURC = "0x808456652fdb597867f38412077A9182bf77359F"
EURC_TOML = f"""
[[asset]]
network = "base-sepolia"
symbol = "EURC"
address = "{EURC}"
decimals = 6
name = "EURC"
version = "2"
transfer_methods = ["eip3009", "permit2"]
"""


def test_usdc_and_opg_on_both_networks_are_what_the_stock_sdk_knows() -> None:
    """The stock SDK's default assets: Base Sepolia USDC named "USDC", Base USDC named "USD Coin", version "2"."""
    sepolia, base = BASE_SEPOLIA.asset("usdc"), network("eip155:8453").asset("USDC")
    assert (sepolia.address, sepolia.decimals, sepolia.eip712_name, sepolia.eip712_version) == (
        "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
        6,
        "USDC",
        "2",
    )
    assert (base.address, base.eip712_name, base.eip712_version) == (
        "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
        "USD Coin",
        "2",
    )
    assert sepolia.transfer_methods == ("eip3009", "permit2")
    assert BASE.asset("OPG").address == BASE.opg and BASE.asset("OPG").transfer_methods == ("permit2",)
    # x402: EIP-3009 requirements carry {name, version} and no assetTransferMethod (its absence means EIP-3009).
    assert sepolia.extra() == {"name": "USDC", "version": "2"}
    assert sepolia.extra("permit2") == {"assetTransferMethod": "permit2", "name": "USDC", "version": "2"}
    with pytest.raises(InvalidInput, match="'eip3009' is not one of its transfer methods"):
        BASE.asset("OPG").extra("eip3009")


def test_an_assets_file_adds_tokens_to_its_network_only(tmp_path: Path) -> None:
    toml = tmp_path / "assets.toml"
    toml.write_text(EURC_TOML)
    as_json = tmp_path / "assets.json"
    as_json.write_text(json.dumps({"asset": [{**_eurc(), "network": "eip155:8453"}]}))
    sepolia = configured_network("base-sepolia", toml)
    assert [a.symbol for a in sepolia.assets] == ["OPG", "USDC", "EURC"]
    assert sepolia.asset("eurc") == Asset("EURC", EURC, 6, "EURC", "2", ("eip3009", "permit2"))
    assert [a.symbol for a in configured_network("base", toml).assets] == ["OPG", "USDC"]
    assert [a.symbol for a in configured_network(8453, as_json).assets] == ["OPG", "USDC", "EURC"]


def _eurc() -> dict[str, object]:
    return {
        "network": "base-sepolia",
        "symbol": "EURC",
        "address": EURC,
        "decimals": 6,
        "name": "EURC",
        "version": "2",
        "transfer_methods": ["eip3009"],
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"symbol": "usdc"}, "base-sepolia already lists USDC"),
        ({"address": "0x036CbD53842c5426634e7929541eC2318f3dCF7e"}, "already lists USDC"),
        ({"name": None}, "eip3009 needs the token's EIP-712 name and version"),
        ({"transfer_methods": ["eip3009", "approve"]}, "transfer_methods: expected distinct values"),
        ({"transfer_methods": []}, "transfer_methods: expected distinct values"),
        ({"decimals": "6"}, "decimals: expected an integer"),
        ({"address": "0x1234"}, "address"),
        ({"network": "mars"}, "unknown network 'mars'"),
        ({"colour": "blue"}, "unknown key 'colour'"),
    ],
)
def test_a_bad_asset_entry_is_one_line_naming_it(tmp_path: Path, change: dict[str, object], message: str) -> None:
    entry = {key: value for key, value in {**_eurc(), **change}.items() if value is not None}
    path = tmp_path / "assets.json"
    path.write_text(json.dumps([entry]))
    with pytest.raises(InvalidInput, match=message) as raised:
        load_assets(path)
    assert "\n" not in str(raised.value) and "asset[0]" in str(raised.value)


def test_an_unreadable_or_invalid_assets_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read the assets file"):
        load_assets(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[asset]\n")
    with pytest.raises(InvalidInput, match="not valid TOML"):
        load_assets(bad)


def _requirements(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["payment", "requirements", "--pay-to", PAY_TO, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_payment_requirements_for_usdc_are_the_stock_sdks(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = _requirements(capsys, "--scheme", "exact", "--amount", "500000", "--asset", "USDC")
    assert code == 0
    assert json.loads(out) == {
        "scheme": "exact",
        "network": "eip155:84532",
        "amount": "500000",
        "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
        "payTo": PAY_TO,
        "maxTimeoutSeconds": 300,
        "extra": {"name": "USDC", "version": "2"},  # what x402's resource server builds for "$0.50"
    }
    code, out, _ = _requirements(capsys, "--scheme", "exact", "--amount", "1", "--asset", "usdc", "--network", "base")
    assert json.loads(out)["extra"] == {"name": "USD Coin", "version": "2"}
    # upto is Permit2 only: USDC's upto requirements name permit2.
    code, out, _ = _requirements(capsys, "--scheme", "upto", "--amount", "1", "--asset", "USDC")
    assert json.loads(out)["extra"]["assetTransferMethod"] == "permit2"
    code, _, err = _requirements(
        capsys, "--scheme", "upto", "--amount", "1", "--asset", "USDC", "--transfer-method", "eip3009"
    )
    assert code == 2 and "eip3009 pays the exact scheme only" in err
    # OPG stays Permit2, named OpenGradient, as before.
    code, out, _ = _requirements(capsys, "--scheme", "exact", "--amount", "1")
    assert json.loads(out)["extra"] == {"assetTransferMethod": "permit2", "name": "OpenGradient", "version": "1"}


def test_payment_requirements_take_operator_assets(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = _requirements(capsys, "--scheme", "exact", "--amount", "1", "--asset", "EURC")
    assert code == 2 and "--asset: 'EURC' is not an asset of base-sepolia" in err
    toml = tmp_path / "assets.toml"
    toml.write_text(EURC_TOML)
    code, out, _ = _requirements(capsys, "--scheme", "exact", "--amount", "1", "--asset", "EURC", "--assets", str(toml))
    assert (
        code == 0 and json.loads(out)["asset"] == EURC and json.loads(out)["extra"] == {"name": "EURC", "version": "2"}
    )
    code, _, err = _requirements(
        capsys, "--scheme", "exact", "--amount", "1", "--asset", EURC, "--transfer-method", "eip3009"
    )
    assert code == 2 and "eip3009 needs the token's EIP-712 name and version" in err


def test_eip3009_requirements_take_no_permit2_spender(capsys: pytest.CaptureFixture[str]) -> None:
    spender = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
    code, _, err = _requirements(capsys, "--scheme", "exact", "--amount", "1", "--asset", "USDC", "--spender", spender)
    assert code == 2 and "--spender: an EIP-3009 payment has no Permit2 spender" in err
    code, out, _ = _requirements(
        capsys,
        "--scheme",
        "exact",
        "--amount",
        "1",
        "--asset",
        "USDC",
        "--spender",
        spender,
        "--transfer-method",
        "permit2",
    )
    assert code == 0 and json.loads(out)["extra"]["spender"] == spender
