"""ReplicaUSDC, the replica's USDC stand-in: EIP-3009 and EIP-2612 as USDC v2.2 offers them.

Signatures are made over the typed data the stock x402 SDK builds (``og_settle._eip3009`` mirrors its
``TransferWithAuthorization`` type and the token's ``{name, version, chainId, verifyingContract}`` domain;
tests/interop/test_x402_usdc.py signs with the SDK itself). Every case checks balances and the nonce state.
"""

from __future__ import annotations

import secrets
from typing import Any

import ape
import pytest
from eth_abi.abi import encode
from eth_account import Account
from eth_utils import keccak

from og_settle._eip712 import TokenDomain
from og_settle._eip3009 import Eip3009Authorization, sign_eip3009
from og_settle._networks import BASE, BASE_SEPOLIA
from tests.support.tokens import deal_opg

_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
USDC_PER_PAYER = 1_000 * 10**6


@pytest.fixture(scope="module")
def net(chain_id: int) -> Any:
    return BASE if chain_id == BASE.chain_id else BASE_SEPOLIA


@pytest.fixture
def domain(usdc: Any, net: Any, chain_id: int) -> TokenDomain:
    asset = net.asset("USDC")
    return TokenDomain(asset.eip712_name, asset.eip712_version, chain_id, usdc.address)


@pytest.fixture
def funded(usdc: Any, payers: list[Any], chain: Any) -> list[Any]:
    for account in payers:
        deal_opg(chain.provider, usdc, account.address, USDC_PER_PAYER)
    return payers


def _auth(payer: Any, to: Any, chain: Any, **fields: Any) -> Eip3009Authorization:
    """An authorisation from ``payer`` to ``to`` (accounts or contracts), valid for five minutes."""
    now = int(chain.pending_timestamp)
    values: dict[str, Any] = {
        "owner": str(payer.address),
        "to": str(to.address),
        "value": 1_250_000,
        "valid_after": 0,
        "valid_before": now + 300,
        "nonce": secrets.token_bytes(32),
    }
    values.update(fields)
    return Eip3009Authorization(**values)


def _args(auth: Eip3009Authorization) -> list[Any]:
    return [auth.owner, auth.to, auth.value, auth.valid_after, auth.valid_before, auth.nonce]


def _vrs(signature: bytes) -> list[Any]:
    return [signature[64], signature[:32], signature[32:64]]


def test_metadata_and_domain_are_usdcs(usdc: Any, net: Any, chain_id: int, domain: TokenDomain) -> None:
    asset = net.asset("USDC")
    assert (usdc.name(), usdc.symbol(), usdc.decimals()) == (asset.eip712_name, "USDC", 6)
    _, name, version, domain_chain, verifying, _, _ = usdc.eip712Domain()
    assert (name, version, domain_chain, verifying) == (asset.eip712_name, "2", chain_id, asset.address)
    assert bytes(usdc.DOMAIN_SEPARATOR()) == domain.separator()
    assert bytes(usdc.TRANSFER_WITH_AUTHORIZATION_TYPEHASH()) == keccak(
        text="TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,"
        "uint256 validBefore,bytes32 nonce)"
    )


@pytest.mark.parametrize("form", ["vrs", "bytes"])
def test_transfer_with_authorization_moves_once_and_spends_the_nonce(
    usdc: Any, funded: list[Any], payee: Any, stranger: Any, chain: Any, domain: TokenDomain, form: str
) -> None:
    payer = funded[0]
    auth = _auth(payer, payee, chain)
    signature = sign_eip3009(auth, payer.private_key, domain)
    tail = _vrs(signature) if form == "vrs" else [signature]
    before = (usdc.balanceOf(payer), usdc.balanceOf(payee))
    assert not usdc.authorizationState(payer, auth.nonce)

    tx = usdc.transferWithAuthorization(*_args(auth), *tail, sender=stranger)  # anyone may submit

    assert (usdc.balanceOf(payer), usdc.balanceOf(payee)) == (before[0] - auth.value, before[1] + auth.value)
    assert usdc.authorizationState(payer, auth.nonce)
    used = [log for log in tx.decode_logs(usdc.AuthorizationUsed)]
    assert [(log.authorizer, bytes(log.nonce)) for log in used] == [(payer.address, auth.nonce)]
    with ape.reverts(usdc.AuthorizationUsedOrCanceled, authorizer=payer.address, nonce=auth.nonce):
        usdc.transferWithAuthorization(*_args(auth), *tail, sender=stranger)
    assert usdc.balanceOf(payee) == before[1] + auth.value


def test_validity_window_is_strict_on_both_ends(
    usdc: Any, funded: list[Any], payee: Any, stranger: Any, chain: Any, domain: TokenDomain
) -> None:
    payer = funded[0]
    now = int(chain.pending_timestamp)
    early = _auth(payer, payee, chain, valid_after=now + 1000)
    with ape.reverts(usdc.AuthorizationNotYetValid):
        usdc.transferWithAuthorization(*_args(early), sign_eip3009(early, payer.private_key, domain), sender=stranger)
    late = _auth(payer, payee, chain, valid_before=now - 1)
    with ape.reverts(usdc.AuthorizationExpired):
        usdc.transferWithAuthorization(*_args(late), sign_eip3009(late, payer.private_key, domain), sender=stranger)
    assert not usdc.authorizationState(payer, early.nonce) and not usdc.authorizationState(payer, late.nonce)


def test_wrong_signer_altered_field_high_s_and_other_chain_are_refused(
    usdc: Any, funded: list[Any], payee: Any, stranger: Any, chain: Any, domain: TokenDomain
) -> None:
    payer = funded[0]
    auth = _auth(payer, payee, chain)
    good = sign_eip3009(auth, payer.private_key, domain)
    by_stranger = sign_eip3009(auth, stranger.private_key, domain)
    r, s, v = good[:32], int.from_bytes(good[32:64], "big"), good[64]
    malleable = r + (_N - s).to_bytes(32, "big") + bytes([55 - v])  # same signer, high s: must be refused
    other_chain = sign_eip3009(
        auth, payer.private_key, TokenDomain(domain.name, domain.version, domain.chain_id + 1, domain.token)
    )
    for signature in (by_stranger, malleable, other_chain):
        with ape.reverts(usdc.InvalidSignature, authorizer=payer.address):
            usdc.transferWithAuthorization(*_args(auth), signature, sender=stranger)
    more = Eip3009Authorization(auth.owner, auth.to, auth.value + 1, auth.valid_after, auth.valid_before, auth.nonce)
    with ape.reverts(usdc.InvalidSignature):
        usdc.transferWithAuthorization(*_args(more), good, sender=stranger)
    assert not usdc.authorizationState(payer, auth.nonce)
    usdc.transferWithAuthorization(*_args(auth), good, sender=stranger)  # the genuine one still works


def test_receive_with_authorization_only_by_the_payee(
    usdc: Any, funded: list[Any], payee: Any, stranger: Any, chain: Any, domain: TokenDomain
) -> None:
    payer = funded[0]
    auth = _auth(payer, payee, chain)
    digest_domain = domain.separator()
    struct = keccak(
        encode(
            ["bytes32", "address", "address", "uint256", "uint256", "uint256", "bytes32"],
            [
                keccak(
                    text="ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,"
                    "uint256 validBefore,bytes32 nonce)"
                ),
                *_args(auth),
            ],
        )
    )
    signed = Account._sign_hash(keccak(b"\x19\x01" + digest_domain + struct), payer.private_key)
    signature = bytes(signed.signature)
    with ape.reverts(usdc.CallerMustBePayee, caller=stranger.address, payee=payee.address):
        usdc.receiveWithAuthorization(*_args(auth), signature, sender=stranger)
    before = usdc.balanceOf(payee)
    usdc.receiveWithAuthorization(*_args(auth), *_vrs(signature), sender=payee)
    assert usdc.balanceOf(payee) == before + auth.value
    # A receive authorisation is not a transfer authorisation (different type hash).
    other = _auth(payer, payee, chain)
    with ape.reverts(usdc.InvalidSignature):
        usdc.transferWithAuthorization(*_args(other), signature, sender=stranger)


def test_cancel_authorization_spends_the_nonce_without_moving_tokens(
    usdc: Any, funded: list[Any], payee: Any, stranger: Any, chain: Any, domain: TokenDomain
) -> None:
    payer = funded[0]
    auth = _auth(payer, payee, chain)
    struct = keccak(
        encode(
            ["bytes32", "address", "bytes32"],
            [keccak(text="CancelAuthorization(address authorizer,bytes32 nonce)"), payer.address, auth.nonce],
        )
    )
    cancel = bytes(Account._sign_hash(keccak(b"\x19\x01" + domain.separator() + struct), payer.private_key).signature)
    with ape.reverts(usdc.InvalidSignature):
        usdc.cancelAuthorization(stranger.address, auth.nonce, cancel, sender=stranger)
    before = usdc.balanceOf(payer)
    tx = usdc.cancelAuthorization(payer.address, auth.nonce, *_vrs(cancel), sender=stranger)
    assert [bytes(log.nonce) for log in tx.decode_logs(usdc.AuthorizationCanceled)] == [auth.nonce]
    assert usdc.authorizationState(payer, auth.nonce)
    with ape.reverts(usdc.AuthorizationUsedOrCanceled):
        usdc.transferWithAuthorization(*_args(auth), sign_eip3009(auth, payer.private_key, domain), sender=stranger)
    assert usdc.balanceOf(payer) == before


def test_contract_wallet_pays_through_erc1271(
    project: Any,
    usdc: Any,
    payers: list[Any],
    payee: Any,
    stranger: Any,
    deployer: Any,
    chain: Any,
    domain: TokenDomain,
) -> None:
    owner = payers[1]
    wallet = project.OwnedWallet.deploy(owner.address, sender=deployer)
    deal_opg(chain.provider, usdc, wallet.address, USDC_PER_PAYER)
    auth = _auth(wallet, payee, chain)
    signature = sign_eip3009(auth, owner.private_key, domain)  # the owner's key signs for the wallet
    with ape.reverts(usdc.InvalidSignature, authorizer=wallet.address):
        usdc.transferWithAuthorization(*_args(auth), sign_eip3009(auth, stranger.private_key, domain), sender=stranger)
    usdc.transferWithAuthorization(*_args(auth), signature, sender=stranger)
    assert usdc.balanceOf(wallet) == USDC_PER_PAYER - auth.value
    assert usdc.authorizationState(wallet, auth.nonce)


def test_permit_sets_the_allowance_and_spends_the_permit_nonce(
    usdc: Any, funded: list[Any], stranger: Any, chain: Any, domain: TokenDomain
) -> None:
    from og_settle._networks import PERMIT2_ADDRESS

    payer = funded[0]
    nonce = usdc.nonces(payer)
    deadline = int(chain.pending_timestamp) + 600
    struct = keccak(
        encode(
            ["bytes32", "address", "address", "uint256", "uint256", "uint256"],
            [
                keccak(text="Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"),
                payer.address,
                PERMIT2_ADDRESS,
                2**256 - 1,
                nonce,
                deadline,
            ],
        )
    )
    signature = bytes(
        Account._sign_hash(keccak(b"\x19\x01" + domain.separator() + struct), payer.private_key).signature
    )
    usdc.permit(payer.address, PERMIT2_ADDRESS, 2**256 - 1, deadline, *_vrs(signature), sender=stranger)
    assert usdc.allowance(payer, PERMIT2_ADDRESS) == 2**256 - 1
    assert usdc.nonces(payer) == nonce + 1
    with ape.reverts(usdc.InvalidSignature):  # the same permit again: the nonce moved on
        usdc.permit(payer.address, PERMIT2_ADDRESS, 2**256 - 1, deadline, signature, sender=stranger)
