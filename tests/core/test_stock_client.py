"""The stock batcher client offline: reason codes for the proxies', Permit2's and the batcher's errors, batch
grouping limits and the packed header."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode
from eth_utils import keccak

from og_settle import InvalidInput
from og_settle.clients import StockPayment, encode_batch, group_batches, stock_reason
from og_settle.clients._errors import decode_revert, error_table
from og_settle.clients._stock import _PROXY_ABI

TOKEN = "0x240b09731D96979f50B2C649C9CE10FcF9C7987F"
BATCHER = "0x" + "ba" * 20


def payment(i: int, to: str, scheme: str = "exact") -> StockPayment:
    return StockPayment(
        scheme=scheme,
        owner="0x" + f"{i + 1:040x}",
        token=TOKEN,
        permitted=10**18,
        charge=10**18,
        nonce=i,
        deadline=2**40,
        to=to,
        valid_after=0,
        facilitator=BATCHER if scheme == "upto" else None,
        signature=b"\x11" * 65,
        chain_id=84532,
    )


def error(signature: str, *args: tuple[str, object]) -> bytes:
    types = [t for t, _ in args]
    return keccak(text=signature)[:4] + (encode(types, [v for _, v in args]) if args else b"")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (error("InvalidAmount()"), "permit2_invalid_amount"),
        (error("AmountExceedsPermitted()"), "invalid_upto_evm_payload_settlement_exceeds_amount"),
        (error("UnauthorizedFacilitator()"), "upto_facilitator_mismatch"),
        (error("PaymentTooEarly()"), "permit2_not_yet_valid"),
        (error("InvalidNonce()"), "permit2_invalid_nonce"),
        (error("SignatureExpired(uint256)", ("uint256", 5)), "permit2_deadline_expired"),
        (error("InvalidSigner()"), "invalid_permit2_signature"),
        (error("ItemOutOfGas(uint256)", ("uint256", 200_000)), "permit2_simulation_failed"),
    ],
)
def test_reasons(data: bytes, reason: str) -> None:
    table = error_table([_PROXY_ABI, [{"type": "error", "name": "ItemOutOfGas", "inputs": [{"type": "uint256"}]}]])
    assert stock_reason(decode_revert(data, table)) == reason


def test_header_layout_and_limits() -> None:
    data = encode_batch([payment(0, "0x" + "aa" * 20)], batcher=BATCHER, item_gas=123_456)
    assert data[0] == 0 and int.from_bytes(data[1:9], "big") == 84532
    assert int.from_bytes(data[9:13], "big") == 123_456 and data[13:33] == bytes.fromhex(TOKEN[2:])
    assert data[33] == 1 and data[34:54] == b"\xaa" * 20
    with pytest.raises(InvalidInput, match="item_gas"):
        encode_batch([payment(0, "0x" + "aa" * 20)], batcher=BATCHER, item_gas=0)
    with pytest.raises(InvalidInput, match="at most 256"):
        encode_batch([payment(i, "0x" + "aa" * 20) for i in range(257)], batcher=BATCHER)


def test_groups_split_at_255_recipients_and_256_items() -> None:
    many_recipients = [payment(i, "0x" + f"{i + 1:040x}") for i in range(300)]
    assert [len(g) for g in group_batches(many_recipients)] == [255, 45]
    one_recipient = [payment(i, "0x" + "aa" * 20) for i in range(600)]
    assert [len(g) for g in group_batches(one_recipient)] == [256, 256, 88]
    for group in group_batches(many_recipients):
        encode_batch(group, batcher=BATCHER)
