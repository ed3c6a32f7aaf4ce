// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title ReentrantToken
/// @notice TEST DOUBLE ONLY. An ERC-20 that, once armed, calls an arbitrary target with arbitrary calldata from
/// inside a transfer, and bubbles the call's revert. Real OPG never calls out during a transfer, so the
/// facilitator's reentrancy guard cannot be exercised with it; this hostile token exists for that test.
contract ReentrantToken is ERC20 {
    address public target;
    bytes public attack;

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
            (bool ok, bytes memory reason) = callee.call(data);
            if (!ok) {
                assembly ("memory-safe") {
                    revert(add(reason, 0x20), mload(reason))
                }
            }
        }
        super._update(from, to, value);
    }
}
