// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";

/// @title Eip2612Approval
/// @notice Gasless Permit2 approval: a payer's EIP-2612 `permit(owner, Permit2, value, deadline, v, r, s)` applied
/// by the settling contract, tolerant of a permit that someone else already submitted.
/// @dev Anyone may submit an EIP-2612 permit, so a permit seen in the mempool can be front-run: the token then
/// spends its nonce, and our own `permit` call reverts although the approval it carried is in place. These helpers
/// therefore never revert on the permit itself: {approve} skips the permit when the allowance already covers what
/// is needed, tries it otherwise, and judges the outcome by the allowance alone. Every call is low-level with a gas
/// cap and copies at most one word of return data, so a token cannot make the caller pay for a return-data bomb.
library Eip2612Approval {
    /// @notice `token.allowance(owner, spender)`, or 0 if the call fails or answers less than one word (a token
    /// without code answers nothing).
    /// @param token The ERC-20.
    /// @param owner The payer.
    /// @param spender The spender (Permit2).
    /// @param gasCap The most gas the call may use.
    /// @return amount The allowance.
    function allowance(address token, address owner, address spender, uint256 gasCap)
        internal
        view
        returns (uint256 amount)
    {
        bytes memory data = abi.encodeCall(IERC20.allowance, (owner, spender));
        assembly ("memory-safe") {
            // Two statements: Yul evaluates arguments right to left, so `returndatasize()` in the same expression
            // as the call would read the previous call's.
            let ok := staticcall(gasCap, token, add(data, 0x20), mload(data), 0, 0)
            if and(ok, gt(returndatasize(), 0x1f)) {
                returndatacopy(0x00, 0, 0x20)
                amount := mload(0x00)
            }
        }
    }

    /// @notice Calls `token.permit(owner, spender, value, deadline, v, r, s)` with at most `gasCap` gas.
    /// @return ok Whether the call succeeded (a token without code "succeeds" without approving anything: callers
    /// judge by the allowance).
    function tryPermit(
        address token,
        address owner,
        address spender,
        uint256 value,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s,
        uint256 gasCap
    ) internal returns (bool ok) {
        bytes memory data = abi.encodeCall(IERC20Permit.permit, (owner, spender, value, deadline, v, r, s));
        assembly ("memory-safe") {
            ok := call(gasCap, token, 0, add(data, 0x20), mload(data), 0, 0)
        }
    }

    /// @notice Makes sure `owner` has approved `spender` for at least `needed`: when the allowance falls short,
    /// the permit is tried (each call capped at `gasCap`), and the allowance is read again.
    /// @return approved Whether the allowance now covers `needed` (through this permit, an earlier approval, or
    /// the same permit submitted by someone else first).
    /// @return allowanceAfter The allowance after the attempt.
    function approve(
        address token,
        address owner,
        address spender,
        uint256 needed,
        uint256 value,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s,
        uint256 gasCap
    ) internal returns (bool approved, uint256 allowanceAfter) {
        allowanceAfter = allowance(token, owner, spender, gasCap);
        if (allowanceAfter >= needed) return (true, allowanceAfter);
        tryPermit(token, owner, spender, value, deadline, v, r, s, gasCap);
        allowanceAfter = allowance(token, owner, spender, gasCap);
        approved = allowanceAfter >= needed;
    }
}
