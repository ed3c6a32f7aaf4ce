// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title ReentrantToken
/// @notice TEST DOUBLE ONLY. An ERC-20 that, once armed, calls an arbitrary target with arbitrary calldata from
/// inside a transfer and records how that call ended (Permit2's SafeTransferLib would replace a bubbled
/// revert with "TRANSFER_FROM_FAILED", so the reason is kept here for the test to read). Real OPG never calls
/// out during a transfer, so the facilitator's reentrancy guard cannot be exercised with it.
contract ReentrantToken is ERC20 {
    address public target;
    bytes public attack;
    /// @notice Whether the last reentrant call succeeded, and its return or revert data.
    bool public lastCallSucceeded;
    bytes public lastCallData;

    constructor() ERC20("Reentrant", "REE") {}

    /// @notice Mints `amount` to `to` (test set-up).
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Makes the next transfer call `target_` with `attack_` before moving balances (one shot).
    function arm(address target_, bytes calldata attack_) external {
        target = target_;
        attack = attack_;
    }

    function _update(address from, address to, uint256 value) internal override {
        address callee = target;
        if (callee != address(0) && from != address(0)) {
            bytes memory data = attack;
            delete target;
            delete attack;
            (bool ok, bytes memory result) = callee.call(data);
            lastCallSucceeded = ok;
            lastCallData = result;
        }
        super._update(from, to, value);
    }
}
