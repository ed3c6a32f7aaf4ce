// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ITeeRegistry} from "../interfaces/ITeeRegistry.sol";

/// @title TeeRegistrationHash
/// @notice EIP-712 struct hashes the TeeRegistry verifies (documented in ITeeRegistry): the proofs of possession, one
/// per key type's registration struct, and a secp256k1 TEE's heartbeat. teeId derivation lives with the key types,
/// in TeeKeys.
library TeeRegistrationHash {
    bytes32 internal constant TEE_REGISTRATION_TYPEHASH = keccak256(
        "TeeRegistration(bytes32 teeId,address operator,bytes32 measurement,bytes32 attestationHash,address paymentAddress,string endpoint)"
    );

    bytes32 internal constant RSA_TEE_REGISTRATION_TYPEHASH = keccak256(
        "RsaTeeRegistration(bytes32 teeId,address operator,bytes32 measurement,bytes32 attestationHash,bytes32 tlsCertificateHash,address paymentAddress,string endpoint)"
    );

    bytes32 internal constant HEARTBEAT_TYPEHASH = keccak256("Heartbeat(bytes32 teeId,uint256 timestamp)");

    /// @notice EIP-712 struct hash of a secp256k1 TEE's `Heartbeat`.
    function heartbeatHash(bytes32 teeId, uint256 timestamp) internal pure returns (bytes32) {
        return keccak256(abi.encode(HEARTBEAT_TYPEHASH, teeId, timestamp));
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

    /// @notice EIP-712 struct hash of `RsaTeeRegistration` for `teeId` registered by `operator`.
    function hash(ITeeRegistry.RsaTeeRegistration calldata registration, bytes32 teeId, address operator)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(
            abi.encode(
                RSA_TEE_REGISTRATION_TYPEHASH,
                teeId,
                operator,
                registration.measurement,
                registration.attestationHash,
                registration.tlsCertificateHash,
                registration.paymentAddress,
                keccak256(bytes(registration.endpoint))
            )
        );
    }
}
