// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IStockPaymentBatcher} from "./interfaces/IStockPaymentBatcher.sol";
import {IX402ExactPermit2Proxy, IX402Permit2Proxy, IX402UptoPermit2Proxy} from "./interfaces/IX402Permit2Proxy.sol";
import {Eip2612Approval} from "./libraries/Eip2612Approval.sol";

/// @title StockPaymentBatcher
/// @notice Settles batches of stock x402 payloads through the canonical x402 Permit2 proxies, each payment isolated
/// and gas-capped. See {IStockPaymentBatcher} for the batch encoding and the security assumptions.
/// @dev The proxies are called by address only (their ABI from {IX402ExactPermit2Proxy} / {IX402UptoPermit2Proxy}).
/// The per-item loop is assembly: it parses the packed item straight into one reused memory buffer holding the
/// proxy's ABI-encoded `settle` call, so an item costs its calldata, one warm call and a few hundred gas of
/// bookkeeping.
contract StockPaymentBatcher is IStockPaymentBatcher, AccessControl, ReentrancyGuardTransient {
    /// @inheritdoc IStockPaymentBatcher
    bytes32 public constant SETTLER_ROLE = keccak256("SETTLER_ROLE");

    /// @inheritdoc IStockPaymentBatcher
    uint256 public constant MAX_ITEMS = 256;

    /// @inheritdoc IStockPaymentBatcher
    uint256 public constant MAX_REVERT_DATA = 132;

    /// @inheritdoc IStockPaymentBatcher
    address public immutable EXACT_PROXY;

    /// @inheritdoc IStockPaymentBatcher
    address public immutable UPTO_PROXY;

    /// @dev Gas kept back, on top of the cap and its 1/64, for the few opcodes between the check and the CALL.
    uint256 private constant _GAS_RESERVE = 1_000;
    /// @dev The most gas each token call of {settleWithPermits} (`allowance`, `permit`) may use, and what the batch
    /// must hold before a permit for the cap to apply to its three capped calls despite the 63/64 rule.
    uint256 private constant _PERMIT_GAS_LIMIT = 100_000;
    uint256 private constant _PERMIT_GAS_REQUIRED = 3 * (_PERMIT_GAS_LIMIT * 64 / 63 + _GAS_RESERVE);
    /// @dev scheme (1) + chain id (8) + item gas (4) + token (20) + recipient count (1).
    uint256 private constant _HEADER_BYTES = 34;

    /// @dev What the item loop needs, laid out as 32-byte words (the loop reads them with `mload`).
    struct Batch {
        address proxy; // 0x00
        address token; // 0x20
        uint256 upto; // 0x40: 1 for upto, 0 for exact
        uint256 itemGas; // 0x60
        uint256 table; // 0x80: absolute calldata offset of the recipient table
        uint256 recipients; // 0xa0: recipient count k
        uint256 ledger; // 0xc0: memory: k x (balance before, expected change)
        uint256 items; // 0xe0: absolute calldata offset of the first item
        uint256 end; // 0x100: absolute calldata offset of the end of `batch`
        uint256 start; // 0x120: absolute calldata offset of `batch`
        uint256 selector; // 0x140: the proxy's `settle` selector, left-aligned
        uint256 unused; // 0x160
        uint256 gasNeeded; // 0x180: the least gasleft() before an item: cap + cap/63 + reserve
    }

    /// @param admin Holds DEFAULT_ADMIN_ROLE and grants {SETTLER_ROLE}.
    /// @param exactProxy The canonical x402 exact proxy (0x402085c248EeA27D92E8b30b2C58ed07f9E20001).
    /// @param uptoProxy The canonical x402 upto proxy (0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002).
    constructor(address admin, address exactProxy, address uptoProxy) {
        if (admin == address(0) || exactProxy == address(0) || uptoProxy == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        EXACT_PROXY = exactProxy;
        UPTO_PROXY = uptoProxy;
    }

    /// @inheritdoc IStockPaymentBatcher
    function settle(bytes calldata batch)
        external
        nonReentrant
        onlyRole(SETTLER_ROLE)
        returns (uint256 settledMask)
    {
        Batch memory b = _open(batch);
        settledMask = _settleOpened(batch, b);
    }

    /// @inheritdoc IStockPaymentBatcher
    function settleWithPermits(bytes calldata batch, OwnerPermit[] calldata permits)
        external
        nonReentrant
        onlyRole(SETTLER_ROLE)
        returns (uint256 settledMask)
    {
        Batch memory b = _open(batch);
        // Permit2 as the proxies hold it (a public getter on the originals too).
        address permit2 = address(IX402Permit2Proxy(b.proxy).PERMIT2());
        for (uint256 i; i < permits.length; ++i) {
            uint256 left = gasleft();
            if (left < _PERMIT_GAS_REQUIRED) revert InsufficientGasForPermit(i, left, _PERMIT_GAS_REQUIRED);
            OwnerPermit calldata p = permits[i];
            (bool approved,) = Eip2612Approval.approve(
                b.token, p.owner, permit2, p.value, p.value, p.deadline, p.v, p.r, p.s, _PERMIT_GAS_LIMIT
            );
            if (!approved) emit PermitFailed(i, p.owner);
        }
        settledMask = _settleOpened(batch, b);
    }

    /// @dev The items of an opened batch, the recipients' check and the event.
    function _settleOpened(bytes calldata batch, Batch memory b) private returns (uint256 settledMask) {
        uint256 items;
        (settledMask, items) = _settleItems(b);
        _checkRecipients(batch, b);
        emit BatchProcessed(b.proxy, b.token, items, settledMask);
    }

    /// @dev Reads and checks the shared fields, and records each recipient's balance before any item.
    function _open(bytes calldata batch) private view returns (Batch memory b) {
        if (batch.length < _HEADER_BYTES) revert MalformedBatch(0);
        uint8 scheme = uint8(batch[0]);
        if (scheme == 0) {
            (b.proxy, b.selector) = (EXACT_PROXY, uint256(uint32(IX402ExactPermit2Proxy.settle.selector)) << 224);
        } else if (scheme == 1) {
            (b.proxy, b.selector) = (UPTO_PROXY, uint256(uint32(IX402UptoPermit2Proxy.settle.selector)) << 224);
            b.upto = 1;
        } else {
            revert UnknownScheme(scheme);
        }
        uint256 chainId = uint64(bytes8(batch[1:9]));
        if (chainId != block.chainid) revert WrongChain(chainId, block.chainid);
        b.itemGas = uint32(bytes4(batch[9:13]));
        b.gasNeeded = b.itemGas + b.itemGas / 63 + _GAS_RESERVE;
        b.token = address(bytes20(batch[13:33]));
        if (b.token.code.length == 0) revert TokenWithoutCode(b.token);
        uint256 k = uint8(batch[33]);
        uint256 itemsAt = _HEADER_BYTES + 20 * k;
        if (k == 0) revert InvalidRecipientTable(address(0));
        if (batch.length < itemsAt) revert MalformedBatch(33);
        if (batch.length == itemsAt) revert EmptyBatch();
        b.recipients = k;
        uint256 ledger;
        assembly ("memory-safe") {
            let start := batch.offset
            mstore(add(b, 0x80), add(start, _HEADER_BYTES))
            mstore(add(b, 0xe0), add(start, itemsAt))
            mstore(add(b, 0x100), add(start, batch.length))
            mstore(add(b, 0x120), start)
            ledger := mload(0x40)
            mstore(0x40, add(ledger, shl(6, k)))
        }
        b.ledger = ledger;
        for (uint256 j; j < k; ++j) {
            address recipient = _recipient(b, j);
            if (recipient == address(this)) revert InvalidRecipientTable(recipient);
            for (uint256 i; i < j; ++i) {
                if (_recipient(b, i) == recipient) revert InvalidRecipientTable(recipient);
            }
            uint256 balanceBefore = IERC20(b.token).balanceOf(recipient);
            assembly ("memory-safe") {
                let entry := add(ledger, shl(6, j))
                mstore(entry, balanceBefore)
                mstore(add(entry, 0x20), 0)
            }
        }
    }

    /// @dev Calls the proxy once per item with exactly `itemGas`; returns the settled mask and the item count.
    function _settleItems(Batch memory b) private returns (uint256 mask, uint256 count) {
        assembly ("memory-safe") {
            function malformed(offset) {
                mstore(0, shl(224, 0x70ac562d)) // MalformedBatch(uint256)
                mstore(4, offset)
                revert(0, 36)
            }
            // PaymentFailed(index, owner, nonce, reason): the reason is ItemOutOfGas(cap) when the call failed
            // without data after using at least 15/16 of its cap (an out-of-gas deep inside the call leaves up to
            // 1/64 unused per call level), else at most MAX_REVERT_DATA bytes of its revert data.
            function reportFailure(buf, used, cap, index, owner) {
                let nonce := mload(add(buf, 0x44))
                let len := returndatasize()
                switch and(iszero(len), iszero(lt(used, sub(cap, shr(4, cap)))))
                case 1 {
                    mstore(add(buf, 0x60), shl(224, 0x3a05bb0d)) // ItemOutOfGas(uint256)
                    mstore(add(buf, 0x64), cap)
                    len := 36
                }
                default {
                    if gt(len, MAX_REVERT_DATA) { len := MAX_REVERT_DATA }
                    returndatacopy(add(buf, 0x60), 0, len)
                }
                mstore(add(add(buf, 0x60), len), 0)
                mstore(buf, nonce)
                mstore(add(buf, 0x20), 0x40)
                mstore(add(buf, 0x40), len)
                // PaymentFailed(uint256,address,uint256,bytes)
                log3(
                    buf,
                    add(0x60, and(add(len, 31), not(31))),
                    0x3a465d5b33852031c0c5c7321e4d4ba86e4aa5397018de1cc49f1422fc0a5a9c,
                    index,
                    owner
                )
            }

            let buf := mload(0x40)
            // Exact: (permit, owner, witness(to, validAfter), signature). Upto: (permit, amount, owner, witness(to,
            // facilitator, validAfter), signature): `owner` and `to` sit `shift` later, `validAfter` on 2 * shift.
            let shift := shl(5, mload(add(b, 0x40)))
            for { let p := mload(add(b, 0xe0)) } lt(p, mload(add(b, 0x100))) { count := add(count, 1) } {
                if eq(count, MAX_ITEMS) {
                    mstore(0, shl(224, 0x8c30c200)) // TooManyItems(uint256)
                    mstore(4, MAX_ITEMS)
                    revert(0, 36)
                }
                let owner := shr(96, calldataload(p))
                let r := byte(20, calldataload(p))
                if iszero(lt(r, mload(add(b, 0xa0)))) { malformed(sub(add(p, 20), mload(add(b, 0x120)))) }
                mstore(buf, mload(add(b, 0x140))) // the proxy's `settle` selector
                mstore(add(buf, 0x04), mload(add(b, 0x20))) // permit.permitted.token
                mstore(add(buf, add(0x84, shift)), owner)
                mstore(add(buf, add(0xa4, shift)), shr(96, calldataload(add(mload(add(b, 0x80)), mul(r, 20)))))
                // `var` integers: one length byte (0..32), then that many big-endian bytes.
                p := add(p, 21)
                let len := byte(0, calldataload(p))
                if gt(len, 32) { malformed(sub(p, mload(add(b, 0x120)))) }
                mstore(add(buf, 0x24), shr(shl(3, sub(32, len)), calldataload(add(p, 1)))) // permitted amount
                p := add(p, add(1, len))
                if shift {
                    len := byte(0, calldataload(p))
                    if gt(len, 32) { malformed(sub(p, mload(add(b, 0x120)))) }
                    mstore(add(buf, 0x84), shr(shl(3, sub(32, len)), calldataload(add(p, 1)))) // amount to charge
                    mstore(add(buf, 0xe4), address()) // witness.facilitator
                    p := add(p, add(1, len))
                }
                len := byte(0, calldataload(p))
                if gt(len, 32) { malformed(sub(p, mload(add(b, 0x120)))) }
                mstore(add(buf, 0x44), shr(shl(3, sub(32, len)), calldataload(add(p, 1)))) // permit.nonce
                p := add(p, add(1, len))
                len := byte(0, calldataload(p))
                if gt(len, 32) { malformed(sub(p, mload(add(b, 0x120)))) }
                mstore(add(buf, 0x64), shr(shl(3, sub(32, len)), calldataload(add(p, 1)))) // permit.deadline
                p := add(p, add(1, len))
                len := byte(0, calldataload(p))
                if gt(len, 32) { malformed(sub(p, mload(add(b, 0x120)))) }
                mstore(add(buf, add(0xc4, shl(1, shift))), shr(shl(3, sub(32, len)), calldataload(add(p, 1))))
                p := add(p, add(1, len))
                mstore(add(buf, add(0xe4, shl(1, shift))), add(0x100, shl(1, shift))) // offset of `signature`
                len := shr(240, calldataload(p)) // the signature's length
                let w := add(buf, add(0x124, shl(1, shift))) // where the signature's bytes go
                mstore(sub(w, 0x20), len)
                calldatacopy(w, add(p, 2), len)
                mstore(add(w, len), 0) // zero padding
                if gt(add(p, add(2, len)), mload(add(b, 0x100))) { malformed(sub(p, mload(add(b, 0x120)))) }
                p := add(p, add(2, len))

                // The callee must receive the whole cap despite the 63/64 rule, so that running out of gas is
                // the item's own doing: otherwise the caller sent too little gas and the whole batch reverts.
                let g := gas()
                if lt(g, mload(add(b, 0x180))) {
                    mstore(0, shl(224, 0xf4aa9cb0)) // InsufficientGasForItem(uint256,uint256,uint256)
                    mstore(4, count)
                    mstore(0x24, g)
                    mstore(0x44, mload(add(b, 0x180)))
                    revert(0, 0x64)
                }
                mstore(0, g) // scratch: gas before the call
                g := mload(add(b, 0x60)) // the cap
                len := add(sub(w, buf), and(add(len, 31), not(31))) // the call's size
                w := mload(b) // the proxy
                switch call(g, w, 0, buf, len, 0, 0)
                case 1 {
                    mask := or(mask, shl(count, 1))
                    // The recipient's expected change grows by the amount moved; an owner that is also a
                    // recipient paid it, so that recipient's expected change shrinks (mod 2^256, like the deltas).
                    w := mload(add(buf, add(0x24, mul(shift, 3)))) // exact: the permitted amount; upto: the charge
                    g := mload(add(b, 0xc0)) // the ledger
                    len := add(g, add(shl(6, r), 0x20))
                    mstore(len, add(mload(len), w))
                    r := mload(add(b, 0x80)) // the recipient table
                    for { let j := 0 } lt(j, mload(add(b, 0xa0))) { j := add(j, 1) } {
                        if eq(owner, shr(96, calldataload(add(r, mul(j, 20))))) {
                            len := add(g, add(shl(6, j), 0x20))
                            mstore(len, sub(mload(len), w))
                        }
                    }
                }
                default { reportFailure(buf, sub(mload(0), gas()), g, count, owner) }
            }
        }
    }

    /// @dev Every recipient's balance changed by exactly what the settled items account for.
    function _checkRecipients(bytes calldata, Batch memory b) private view {
        uint256 ledger = b.ledger;
        for (uint256 j; j < b.recipients; ++j) {
            address recipient = _recipient(b, j);
            uint256 before;
            uint256 expected;
            assembly ("memory-safe") {
                let entry := add(ledger, shl(6, j))
                before := mload(entry)
                expected := mload(add(entry, 0x20))
            }
            uint256 actual;
            unchecked {
                actual = IERC20(b.token).balanceOf(recipient) - before;
            }
            if (actual != expected) revert RecipientDeltaMismatch(recipient, expected, actual);
        }
    }

    /// @dev Recipient `j` of the table.
    function _recipient(Batch memory b, uint256 j) private pure returns (address recipient) {
        uint256 at = b.table + 20 * j;
        assembly ("memory-safe") {
            recipient := shr(96, calldataload(at))
        }
    }
}
