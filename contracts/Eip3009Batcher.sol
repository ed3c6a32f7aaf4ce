// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IEIP3009} from "./interfaces/IEIP3009.sol";
import {IEip3009Batcher} from "./interfaces/IEip3009Batcher.sol";

/// @title Eip3009Batcher
/// @notice Settles batches of EIP-3009 `transferWithAuthorization` payments (x402 exact over USDC and other
/// EIP-3009 tokens), each isolated and gas-capped. See {IEip3009Batcher} for the security assumptions.
contract Eip3009Batcher is IEip3009Batcher, AccessControl, ReentrancyGuardTransient {
    /// @inheritdoc IEip3009Batcher
    bytes32 public constant SETTLER_ROLE = keccak256("SETTLER_ROLE");

    /// @inheritdoc IEip3009Batcher
    uint256 public constant MAX_ITEMS = 256;

    /// @inheritdoc IEip3009Batcher
    uint256 public constant MAX_REVERT_DATA = 132;

    /// @dev Gas kept back, on top of the cap and its 1/63, for the opcodes between the check and the CALL.
    uint256 private constant _GAS_RESERVE = 2_000;

    /// @param admin Holds DEFAULT_ADMIN_ROLE and grants {SETTLER_ROLE}.
    constructor(address admin) {
        if (admin == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @inheritdoc IEip3009Batcher
    function settle(address token, uint256 itemGas, Authorization[] calldata items)
        external
        nonReentrant
        onlyRole(SETTLER_ROLE)
        returns (uint256 settledMask)
    {
        if (token.code.length == 0) revert TokenWithoutCode(token);
        uint256 count = items.length;
        if (count == 0) revert EmptyBatch();
        if (count > MAX_ITEMS) revert TooManyItems(MAX_ITEMS);
        uint256 needed = itemGas + itemGas / 63 + _GAS_RESERVE;
        for (uint256 i; i < count; ++i) {
            uint256 freeMemory;
            assembly ("memory-safe") {
                freeMemory := mload(0x40)
            }
            if (_settleOne(token, itemGas, needed, i, items[i])) settledMask |= 1 << i;
            assembly ("memory-safe") {
                mstore(0x40, freeMemory) // the item's call and revert data are no longer used
            }
        }
        emit BatchProcessed(token, count, settledMask);
    }

    /// @inheritdoc IEip3009Batcher
    function settleItem(address token, Authorization calldata item) external {
        if (msg.sender != address(this)) revert OnlySelf(msg.sender);
        uint256 before = IERC20(token).balanceOf(item.to);
        bytes calldata signature = item.signature;
        if (signature.length == 65) {
            IEIP3009(token).transferWithAuthorization(
                item.from,
                item.to,
                item.value,
                item.validAfter,
                item.validBefore,
                item.nonce,
                uint8(signature[64]),
                bytes32(signature[0:32]),
                bytes32(signature[32:64])
            );
        } else {
            IEIP3009(token).transferWithAuthorization(
                item.from, item.to, item.value, item.validAfter, item.validBefore, item.nonce, signature
            );
        }
        if (item.from != item.to) {
            uint256 received = IERC20(token).balanceOf(item.to) - before;
            if (received != item.value) revert TransferShortfall(item.to, item.value, received);
        }
    }

    /// @dev Item `index` in a self-call with exactly `cap` gas; a failure is reported by {PaymentFailed}.
    function _settleOne(address token, uint256 cap, uint256 needed, uint256 index, Authorization calldata item)
        private
        returns (bool ok)
    {
        uint256 left = gasleft();
        if (left < needed) revert InsufficientGasForItem(index, left, needed);
        bytes memory data = abi.encodeCall(this.settleItem, (token, item));
        uint256 size;
        assembly ("memory-safe") {
            ok := call(cap, address(), 0, add(data, 0x20), mload(data), 0, 0)
            size := returndatasize()
        }
        if (ok) return true;
        bytes memory reason;
        if (size == 0 && left - gasleft() >= cap - cap / 16) {
            reason = abi.encodeWithSelector(ItemOutOfGas.selector, cap);
        } else {
            if (size > MAX_REVERT_DATA) size = MAX_REVERT_DATA;
            reason = new bytes(size);
            assembly ("memory-safe") {
                returndatacopy(add(reason, 0x20), 0, size)
            }
        }
        emit PaymentFailed(index, item.from, item.nonce, reason);
    }
}
