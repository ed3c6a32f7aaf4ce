// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {RsaPss} from "../libraries/RsaPss.sol";

/// @title RsaPssHarness
/// @notice Test-only: exposes the RsaPss library, measures its gas, and flips every bit of a signature on chain.
contract RsaPssHarness {
    /// @notice `RsaPss.pssSha256(bytes,...)`: hashes `data` with SHA-256 and verifies.
    function verifyData(bytes calldata data, bytes calldata s, bytes calldata e, bytes calldata n)
        external
        view
        returns (bool)
    {
        return RsaPss.pssSha256(data, s, e, n);
    }

    /// @notice `RsaPss.tryPssSha256`: the rejection reason (0 = valid).
    function tryVerify(bytes32 digest, bytes calldata s, bytes calldata e, bytes calldata n)
        external
        view
        returns (RsaPss.PssError)
    {
        return RsaPss.tryPssSha256(digest, s, e, n);
    }

    /// @notice The verification's own gas: from the library call to its return, inputs already in memory.
    function verifyGas(bytes32 digest, bytes memory s, bytes memory e, bytes memory n)
        external
        view
        returns (RsaPss.PssError result, uint256 gasUsed)
    {
        uint256 before = gasleft();
        result = RsaPss.tryPssSha256(digest, s, e, n);
        gasUsed = before - gasleft();
    }

    /// @notice How often each reason came back when each single bit of `s` in [firstBit, firstBit + bitCount) was
    /// flipped in turn (index = reason; bit 0 is the most significant bit of s[0]).
    function bitFlipOutcomes(
        bytes32 digest,
        bytes memory s,
        bytes calldata e,
        bytes calldata n,
        uint256 firstBit,
        uint256 bitCount
    ) external view returns (uint256[9] memory counts) {
        bytes memory eMem = e;
        bytes memory nMem = n;
        for (uint256 i = firstBit; i < firstBit + bitCount; ++i) {
            bytes1 bit = bytes1(uint8(1) << uint8(7 - (i % 8)));
            s[i / 8] ^= bit;
            counts[uint256(RsaPss.tryPssSha256(digest, s, eMem, nMem))] += 1;
            s[i / 8] ^= bit;
        }
    }
}
