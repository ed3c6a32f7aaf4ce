// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @title GasBurningWallet
/// @notice TEST DOUBLE ONLY. A hostile payer: an ERC-1271 wallet (or the code an EIP-7702 account delegates to)
/// whose `isValidSignature` burns every unit of gas it is given. Permit2 calls it for payers with code, so a batch
/// that settles its payment must cap that payment's gas for the others to go through.
contract GasBurningWallet {
    /// @notice Approves `spender` for `token` from this wallet (test set-up; anyone may call it).
    function approveToken(IERC20 token, address spender) external {
        token.approve(spender, type(uint256).max);
    }

    /// @notice Never returns: loops until the call runs out of gas.
    function isValidSignature(bytes32, bytes calldata) external view returns (bytes4) {
        uint256 sink;
        while (gasleft() > 0) {
            sink = uint256(keccak256(abi.encode(sink, block.timestamp)));
        }
        return bytes4(uint32(sink));
    }
}
