"""The fork's upstream is a faithful Base Sepolia: chain id, genuine Permit2, and OPG."""

from __future__ import annotations

import os
import time
from typing import Any

import ape
import sha3
from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data

from og_settle import BASE_SEPOLIA_CHAIN_ID, DETERMINISTIC_DEPLOYER, OPG_ADDRESS, PERMIT2_ADDRESS
from og_settle._networks import PERMIT2_SALT
from og_settle.replica import compile_permit2, create2_address
from tests.conftest import OPG_PER_PAYER


def keccak(data: bytes) -> bytes:
    return sha3.keccak_256(data).digest()


def test_chain_id_is_base_sepolia(chain: Any) -> None:
    assert chain.chain_id == BASE_SEPOLIA_CHAIN_ID == 84532
    # The fork node listens where `chain exec` (or, under a plain `ape test`, tests/conftest.py) told Ape to start
    # it, not on a port Ape drew itself.
    assert chain.provider.uri == os.environ["APE_FOUNDRY_HOST"]


def test_permit2_domain_separator_matches_python(permit2: Any) -> None:
    """Permit2's EIP-712 domain has no version: (name "Permit2", chainId, verifyingContract)."""
    typehash = keccak(b"EIP712Domain(string name,uint256 chainId,address verifyingContract)")
    expected = keccak(
        encode(
            ["bytes32", "bytes32", "uint256", "address"],
            [typehash, keccak(b"Permit2"), 84532, PERMIT2_ADDRESS],
        )
    )
    assert len(ape.chain.provider.get_code(PERMIT2_ADDRESS)) > 0
    assert permit2.DOMAIN_SEPARATOR() == expected


def test_permit2_create2_deploy_lands_at_canonical_address(chain: Any, deployer: Any) -> None:
    """Our local build of Permit2, CREATE2-deployed with its salt, lands exactly at the canonical address."""
    build = compile_permit2()
    assert create2_address(DETERMINISTIC_DEPLOYER, PERMIT2_SALT, build.initcode) == PERMIT2_ADDRESS
    original = bytes(chain.provider.get_code(PERMIT2_ADDRESS))
    # Clear the fork's copy (the upstream is untouched), then deploy again from source.
    chain.provider.make_request("anvil_setCode", [PERMIT2_ADDRESS, "0x"])
    chain.provider.make_request("anvil_setNonce", [PERMIT2_ADDRESS, "0x0"])  # else CREATE2 sees a collision
    assert len(chain.provider.get_code(PERMIT2_ADDRESS)) == 0
    deployer.transfer(DETERMINISTIC_DEPLOYER, 0, data=PERMIT2_SALT + build.initcode, gas=5_000_000)
    assert bytes(chain.provider.get_code(PERMIT2_ADDRESS)) == original


def test_opg_has_18_decimals_and_funded_payers(opg: Any, funded_payers: list[Any]) -> None:
    assert opg.address == OPG_ADDRESS
    assert opg.decimals() == 18
    assert opg.symbol() == "OPG"
    for account in funded_payers:
        assert opg.balanceOf(account) >= OPG_PER_PAYER
    assert opg.totalSupply() >= sum(opg.balanceOf(account) for account in funded_payers)


def test_permit2_signature_transfer_moves_opg(
    opg: Any, permit2: Any, payer: Any, stranger: Any, relayer: Any, permit2_approved: None
) -> None:
    """A PermitTransferFrom signed in Python with eth-account moves OPG through the genuine Permit2."""
    amount, nonce, deadline = 123 * 10**15, 0xC0FFEE, int(time.time()) + 3600
    typed = {
        "domain": {"name": "Permit2", "chainId": 84532, "verifyingContract": PERMIT2_ADDRESS},
        "types": {
            "PermitTransferFrom": [
                {"name": "permitted", "type": "TokenPermissions"},
                {"name": "spender", "type": "address"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
            "TokenPermissions": [{"name": "token", "type": "address"}, {"name": "amount", "type": "uint256"}],
        },
        "primaryType": "PermitTransferFrom",
        "message": {
            "permitted": {"token": OPG_ADDRESS, "amount": amount},
            "spender": relayer.address,
            "nonce": nonce,
            "deadline": deadline,
        },
    }
    signature = Account.sign_message(encode_typed_data(full_message=typed), payer.private_key).signature
    before_payer, before_to = opg.balanceOf(payer), opg.balanceOf(stranger)
    permit2.permitTransferFrom(
        ((OPG_ADDRESS, amount), nonce, deadline),
        (stranger.address, amount),
        payer.address,
        bytes(signature),
        sender=relayer,
    )
    assert opg.balanceOf(payer) == before_payer - amount
    assert opg.balanceOf(stranger) == before_to + amount
    # The same signature cannot move tokens twice: Permit2's nonce bitmap has spent it.
    with ape.reverts(permit2.InvalidNonce):
        permit2.permitTransferFrom(
            ((OPG_ADDRESS, amount), nonce, deadline),
            (stranger.address, amount),
            payer.address,
            bytes(signature),
            sender=relayer,
        )
