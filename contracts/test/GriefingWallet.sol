// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title GriefingWallet
/// @notice TEST DOUBLE ONLY. Code an EIP-7702 payer delegates to (its account then has code, so Permit2 asks it
/// `isValidSignature` instead of recovering the signer). Its answer is hostile: with `revertBytes` zero it burns
/// all the gas it is given; otherwise it reverts with that many bytes of revert data. The payer still holds an
/// ordinary key, so off-chain x402 checks of its signature pass (issue #12 H-1).
contract GriefingWallet {
    uint256 private immutable _REVERT_BYTES;

    constructor(uint256 revertBytes) {
        _REVERT_BYTES = revertBytes;
    }

    /// @notice ERC-1271 as a griefer answers it: never with the magic value.
    function isValidSignature(bytes32, bytes calldata) external view returns (bytes4) {
        uint256 size = _REVERT_BYTES;
        if (size != 0) {
            assembly ("memory-safe") {
                revert(0, size)
            }
        }
        uint256 spins;
        assembly ("memory-safe") {
            for {} 1 {} {
                mstore(0, spins)
                spins := keccak256(0, 0x20)
            }
        }
        return bytes4(uint32(spins));
    }
}
