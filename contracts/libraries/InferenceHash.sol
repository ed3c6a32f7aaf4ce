// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ISettlementRegistry} from "../interfaces/ISettlementRegistry.sol";

/// @title InferenceHash
/// @notice Leaf and EIP-712 struct hashes for settled inferences. Type strings are documented in ISettlementRegistry.
library InferenceHash {
    bytes32 internal constant INFERENCE_TYPEHASH =
        keccak256("Inference(bytes32 teeId,bytes32 inputHash,bytes32 outputHash,uint256 timestamp)");

    bytes32 internal constant INDIVIDUAL_SETTLEMENT_TYPEHASH = keccak256(
        "IndividualSettlement(bytes32 teeId,bytes32 inputHash,bytes32 outputHash,uint256 timestamp,address payer)"
    );

    bytes32 internal constant METADATA_SETTLEMENT_TYPEHASH = keccak256(
        "MetadataSettlement(bytes32 teeId,uint256 timestamp,address payer,string modelId,bytes input,bytes output,bytes metadata)"
    );

    /// @notice The StandardMerkleTree leaf: keccak256(bytes.concat(keccak256(abi.encode(fields...)))).
    function leafHash(ISettlementRegistry.InferenceLeaf calldata leaf) internal pure returns (bytes32) {
        return keccak256(
            bytes.concat(
                keccak256(abi.encode(leaf.teeId, leaf.inputHash, leaf.outputHash, leaf.teeSignature, leaf.timestamp))
            )
        );
    }

    /// @notice OpenGradient's signed message: keccak256(inputHash ‖ outputHash ‖ uint256 timestamp), packed.
    function openGradientMessage(bytes32 inputHash, bytes32 outputHash, uint256 timestamp)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encodePacked(inputHash, outputHash, timestamp));
    }

    /// @notice The once-only key of an OpenGradient settlement: keccak256(teeId ‖ message) (64 bytes, so it never
    /// collides with an EIP-712 digest, whose preimage is 66 bytes, short of a keccak256 collision).
    function openGradientDigest(bytes32 teeId, bytes32 message) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(teeId, message));
    }

    /// @notice EIP-712 struct hash of `Inference`, what an ECDSA TEE signs for a batch leaf.
    function inferenceStructHash(bytes32 teeId, bytes32 inputHash, bytes32 outputHash, uint256 timestamp)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(INFERENCE_TYPEHASH, teeId, inputHash, outputHash, timestamp));
    }

    /// @notice EIP-712 struct hash of `IndividualSettlement`, from its fields.
    function individualStructHash(
        bytes32 teeId,
        bytes32 inputHash,
        bytes32 outputHash,
        uint256 timestamp,
        address payer
    ) internal pure returns (bytes32) {
        return keccak256(abi.encode(INDIVIDUAL_SETTLEMENT_TYPEHASH, teeId, inputHash, outputHash, timestamp, payer));
    }

    /// @notice EIP-712 struct hash of `IndividualSettlement`.
    function hash(ISettlementRegistry.IndividualSettlement calldata s) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(INDIVIDUAL_SETTLEMENT_TYPEHASH, s.teeId, s.inputHash, s.outputHash, s.timestamp, s.payer)
        );
    }

    /// @notice EIP-712 struct hash of `MetadataSettlement`, with the input and output hashes it commits to.
    /// @return structHash The struct hash.
    /// @return inputHash keccak256(record.input).
    /// @return outputHash keccak256(record.output).
    function hash(ISettlementRegistry.MetadataSettlement calldata record)
        internal
        pure
        returns (bytes32 structHash, bytes32 inputHash, bytes32 outputHash)
    {
        inputHash = keccak256(record.input);
        outputHash = keccak256(record.output);
        structHash = keccak256(
            abi.encode(
                METADATA_SETTLEMENT_TYPEHASH,
                record.teeId,
                record.timestamp,
                record.payer,
                keccak256(bytes(record.modelId)),
                inputHash,
                outputHash,
                keccak256(record.metadata)
            )
        );
    }
}
