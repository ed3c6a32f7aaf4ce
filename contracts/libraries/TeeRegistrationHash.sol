// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ITeeRegistry} from "../interfaces/ITeeRegistry.sol";

/// @title TeeRegistrationHash
/// @notice teeId derivation and the EIP-712 proof-of-possession struct hash (documented in ITeeRegistry).
library TeeRegistrationHash {
    bytes32 internal constant TEE_REGISTRATION_TYPEHASH = keccak256(
        "TeeRegistration(bytes32 teeId,address operator,bytes32 measurement,bytes32 attestationHash,address paymentAddress,string endpoint)"
    );

    /// @notice teeId = keccak256(publicKey); signer = the last 20 bytes of the same hash.
    function teeIdAndSigner(bytes calldata publicKey) internal pure returns (bytes32 teeId, address signer) {
        teeId = keccak256(publicKey);
        signer = address(uint160(uint256(teeId)));
    }

    /// @notice EIP-712 struct hash of `TeeRegistration` for `teeId` registered by `operator`.
    function hash(ITeeRegistry.TeeRegistration calldata registration, bytes32 teeId, address operator)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(
            abi.encode(
                TEE_REGISTRATION_TYPEHASH,
                teeId,
                operator,
                registration.measurement,
                registration.attestationHash,
                registration.paymentAddress,
                keccak256(bytes(registration.endpoint))
            )
        );
    }
}
