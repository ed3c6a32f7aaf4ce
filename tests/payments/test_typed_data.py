"""Typed data, x402 wire formats and off-chain verification, cross-checked against the contract and Permit2."""

from __future__ import annotations

from typing import Any

import pytest
import sha3
from eth_abi import encode
from eth_account.messages import encode_typed_data

from og_settle import PERMIT2_ADDRESS, InvalidInput
from og_settle._permit2 import ApprovalResult, PaymentScheme, ensure_opg_approval
from og_settle._x402 import (
    PaymentRequired,
    PaymentRequirements,
    ReasonCode,
    SettleResponse,
    create_payment_payload,
    decode_payment_required_header,
    decode_payment_response_header,
    decode_payment_signature_header,
    encode_header,
)
from og_settle._x402_verify import Web3ChainReader, reason_for_revert, verify_payment
from og_settle.clients._facilitator import pack_payment
from tests.payments.conftest import Sign

ONE = 10**18
REQUEST_HASH = bytes.fromhex("5e" * 32)


def keccak(data: bytes) -> bytes:
    return sha3.keccak_256(data).digest()


# Written out in full here, independently of og_settle, as a client would copy them from the NatSpec.
FULL_TYPES = {
    PaymentScheme.EXACT: "Witness(address to,uint256 validAfter)",
    PaymentScheme.UPTO: "Witness(address to,address facilitator,uint256 validAfter)",
    PaymentScheme.EXACT_BOUND: "Witness(address to,uint256 validAfter,bytes32 requestHash)",
    PaymentScheme.UPTO_BOUND: "Witness(address to,address facilitator,uint256 validAfter,bytes32 requestHash)",
}


@pytest.mark.parametrize("scheme", list(PaymentScheme), ids=[s.name for s in PaymentScheme])
def test_digest_by_hand_matches_eth_account_and_the_contract(
    facilitator: Any, sign: Sign, payer: Any, relayer: Any, chain_id: int, scheme: PaymentScheme
) -> None:
    """keccak(0x1901 ‖ domain ‖ hashStruct) by hand = eth-account's typed-data hash = the facilitator's view."""
    authorization, signature = sign(
        payer,
        facilitator=relayer.address if scheme.is_upto else None,
        request_hash=REQUEST_HASH if scheme.is_bound else None,
    )
    assert authorization.scheme == scheme
    witness_type = FULL_TYPES[scheme]
    tail = "Witness witness)TokenPermissions(address token,uint256 amount)" + witness_type
    full = "PermitWitnessTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline," + tail
    witness_values: list[Any] = [authorization.to]
    witness_types = ["address"]
    if scheme.is_upto:
        witness_values.append(relayer.address)
        witness_types.append("address")
    witness_values.append(authorization.valid_after)
    witness_types.append("uint256")
    if scheme.is_bound:
        witness_values.append(REQUEST_HASH)
        witness_types.append("bytes32")
    witness_hash = keccak(encode(["bytes32", *witness_types], [keccak(witness_type.encode()), *witness_values]))
    permitted = keccak(
        encode(
            ["bytes32", "address", "uint256"],
            [keccak(b"TokenPermissions(address token,uint256 amount)"), authorization.token, authorization.amount],
        )
    )
    struct_hash = keccak(
        encode(
            ["bytes32", "bytes32", "address", "uint256", "uint256", "bytes32"],
            [
                keccak(full.encode()),
                permitted,
                facilitator.address,
                authorization.nonce,
                authorization.deadline,
                witness_hash,
            ],
        )
    )
    domain = keccak(
        encode(
            ["bytes32", "bytes32", "uint256", "address"],
            [
                keccak(b"EIP712Domain(string name,uint256 chainId,address verifyingContract)"),
                keccak(b"Permit2"),
                chain_id,
                PERMIT2_ADDRESS,
            ],
        )
    )
    digest = keccak(b"\x19\x01" + domain + struct_hash)
    signable = encode_typed_data(full_message=authorization.typed_data(chain_id))
    assert keccak(b"\x19" + signable.version + signable.header + signable.body) == digest
    assert authorization.digest(chain_id) == digest
    assert authorization.witness_hash() == witness_hash
    args = authorization.payment_args(signature)
    assert bytes(facilitator.witnessHash(args)) == witness_hash
    assert bytes(facilitator.permitDigest(args)) == digest
    assert bytes(facilitator.permitDigestPacked(pack_payment(args))) == digest
    assert facilitator.witnessTypeString(int(scheme)) == tail == scheme.witness_type_string
    assert scheme.full_type == full


def _requirements(opg: Any, payee: Any, scheme: str = "exact", **extra: Any) -> PaymentRequirements:
    return PaymentRequirements(
        scheme=scheme,
        network="eip155:84532",
        amount=ONE,
        asset=opg.address,
        pay_to=payee.address,
        max_timeout_seconds=120,
        extra={"assetTransferMethod": "permit2", "name": "OpenGradient", "version": "1", **extra},
    )


def test_headers_round_trip(opg: Any, payee: Any, payer: Any, facilitator: Any, now: int) -> None:
    requirements = _requirements(opg, payee, spender=facilitator.address)
    required = PaymentRequired(accepts=(requirements,), error="payment required", resource={"url": "/v1/chat"})
    assert decode_payment_required_header(encode_header(required)) == required
    payload = create_payment_payload(requirements, payer.private_key, now=now, resource={"url": "/v1/chat"})
    wire = payload.to_json()
    assert wire["x402Version"] == 2
    assert set(wire["payload"]["permit2Authorization"]) == {
        "from",
        "permitted",
        "spender",
        "nonce",
        "deadline",
        "witness",
    }
    assert wire["payload"]["permit2Authorization"]["witness"] == {"to": payee.address, "validAfter": str(now - 600)}
    assert decode_payment_signature_header(encode_header(payload)) == payload
    response = SettleResponse(success=True, transaction="0x" + "ab" * 32, network="eip155:84532", payer=payer.address)
    assert decode_payment_response_header(encode_header(response)) == response
    with pytest.raises(InvalidInput, match="PAYMENT-SIGNATURE"):
        decode_payment_signature_header("not base64!")
    with pytest.raises(InvalidInput, match="x402Version"):
        PaymentRequired.from_json({**required.to_json(), "x402Version": 1})
    with pytest.raises(InvalidInput, match="payTo"):
        PaymentRequirements.from_json({**requirements.to_json(), "payTo": "0x1234"})


def test_verify_offline_reason_codes(
    opg: Any, payee: Any, payer: Any, payers: list[Any], facilitator: Any, now: int
) -> None:
    """Each tampering yields its x402 reason code; a good payload verifies with the payer named."""
    requirements = _requirements(opg, payee, spender=facilitator.address)
    good = create_payment_payload(requirements, payer.private_key, now=now)
    check = lambda payload, reqs=requirements, at=now: verify_payment(  # noqa: E731
        payload, reqs, spender=facilitator.address, now=at
    )
    assert check(good).to_json() == {"isValid": True, "payer": payer.address}
    other = _requirements(opg, payers[1])
    assert check(good, other).invalid_reason == ReasonCode.INVALID_PERMIT2_RECIPIENT_MISMATCH
    assert check(good, at=good.payload.authorization.deadline + 1).invalid_reason == ReasonCode.PERMIT2_DEADLINE_EXPIRED
    early = create_payment_payload(requirements, payer.private_key, now=now + 10_000)
    assert check(early).invalid_reason == ReasonCode.PERMIT2_NOT_YET_VALID
    pricier = PaymentRequirements.from_json({**requirements.to_json(), "amount": str(2 * ONE)})
    assert check(good, pricier).invalid_reason == ReasonCode.PERMIT2_AMOUNT_MISMATCH
    other_token = PaymentRequirements.from_json({**requirements.to_json(), "asset": PERMIT2_ADDRESS})
    assert check(good, other_token).invalid_reason == ReasonCode.PERMIT2_TOKEN_MISMATCH
    foreign = create_payment_payload(requirements, payer.private_key, spender=payee.address, now=now)
    assert check(foreign).invalid_reason == ReasonCode.INVALID_PERMIT2_SPENDER
    wrong_chain = create_payment_payload(
        PaymentRequirements.from_json({**requirements.to_json(), "network": "eip155:8453"}), payer.private_key, now=now
    )
    relabelled = decode_payment_signature_header(encode_header(wrong_chain))
    relabelled = type(relabelled)(accepted=requirements, payload=relabelled.payload)
    assert check(relabelled).invalid_reason == ReasonCode.INVALID_PERMIT2_SIGNATURE
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    sig = good.payload.signature
    twin = sig[:32] + (n - int.from_bytes(sig[32:64], "big")).to_bytes(32, "big") + bytes([55 - sig[64]])
    malleable = type(good)(accepted=requirements, payload=type(good.payload)(twin, good.payload.authorization))
    assert check(malleable).invalid_reason == ReasonCode.INVALID_PERMIT2_SIGNATURE
    bound = create_payment_payload(
        _requirements(opg, payee, spender=facilitator.address, requestHash="0x" + "11" * 32), payer.private_key, now=now
    )
    assert check(bound, _requirements(opg, payee, requestHash="0x" + "22" * 32)).invalid_reason == (
        ReasonCode.INVALID_PERMIT2_REQUEST_HASH
    )
    upto_reqs = _requirements(opg, payee, "upto", spender=facilitator.address, facilitator=payers[2].address)
    upto = create_payment_payload(upto_reqs, payer.private_key, now=now)
    assert verify_payment(upto, upto_reqs, spender=facilitator.address, now=now, settler=payers[2].address).is_valid
    assert verify_payment(
        upto, upto_reqs, spender=facilitator.address, now=now, settler=payers[3].address
    ).invalid_reason == (ReasonCode.UPTO_FACILITATOR_MISMATCH)


def test_verify_with_chain_reader_and_settle(
    opg: Any,
    payee: Any,
    payer: Any,
    stranger: Any,
    facilitator: Any,
    relayer: Any,
    chain: Any,
    now: int,
    permit2_approved: None,
) -> None:
    """With a web3 reader: a fresh payload verifies, then after settling its nonce reads as spent."""
    reader = Web3ChainReader(chain.provider.web3)
    requirements = _requirements(opg, payee, spender=facilitator.address)
    payload = create_payment_payload(requirements, payer.private_key, now=now)
    verify = lambda p: verify_payment(p, requirements, spender=facilitator.address, now=now, reader=reader)  # noqa: E731
    assert verify(payload).is_valid
    auth = payload.payload.authorization
    facilitator.settle(auth.payment_args(payload.payload.signature), sender=relayer)
    assert verify(payload).invalid_reason == ReasonCode.PERMIT2_INVALID_NONCE
    opg.approve(PERMIT2_ADDRESS, 0, sender=stranger)
    broke = create_payment_payload(requirements, stranger.private_key, now=now)
    assert verify(broke).invalid_reason == ReasonCode.PERMIT2_ALLOWANCE_REQUIRED
    opg.approve(PERMIT2_ADDRESS, 2**256 - 1, sender=stranger)
    opg.transfer(payee, opg.balanceOf(stranger), sender=stranger)
    assert verify(broke).invalid_reason == ReasonCode.PERMIT2_INSUFFICIENT_BALANCE


def test_reason_for_revert_maps_contract_errors() -> None:
    assert (
        reason_for_revert(keccak(b"NonceAlreadyUsed(address,uint256)")[:4] + b"\0" * 64)
        == ReasonCode.PERMIT2_INVALID_NONCE
    )
    assert reason_for_revert(keccak(b"InvalidSigner()")[:4]) == ReasonCode.INVALID_PERMIT2_SIGNATURE
    assert reason_for_revert(b"") == ReasonCode.PERMIT2_SIMULATION_FAILED


def test_ensure_opg_approval_sends_only_when_below_minimum(opg: Any, stranger: Any, chain: Any) -> None:
    web3 = chain.provider.web3
    opg.approve(PERMIT2_ADDRESS, 5, sender=stranger)
    first = ensure_opg_approval(100 * ONE, private_key=stranger.private_key, web3=web3)
    assert (first.allowance_before, first.allowance_after) == (5, 100 * ONE)
    assert first.tx_hash is not None and len(first.tx_hash) == 66
    second = ensure_opg_approval(50 * ONE, private_key=stranger.private_key, web3=web3)
    assert second == ApprovalResult(allowance_before=100 * ONE, allowance_after=100 * ONE, tx_hash=None)
    assert opg.allowance(stranger, PERMIT2_ADDRESS) == 100 * ONE
    with pytest.raises(InvalidInput, match="approve_amount"):
        ensure_opg_approval(10, private_key=stranger.private_key, web3=web3, approve_amount=1)
