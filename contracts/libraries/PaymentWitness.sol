// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IPaymentFacilitator} from "../interfaces/IPaymentFacilitator.sol";

/// @title PaymentWitness
/// @notice EIP-712 hashing of the four payment witnesses and of the Permit2 `PermitWitnessTransferFrom`
/// message that carries them. The type strings here are the single source of truth on-chain; the Python
/// side (`og_settle._permit2`) holds the same strings and the tests check both against each other.
library PaymentWitness {
    /// @dev keccak256("Witness(address to,uint256 validAfter)"), the x402 v2 exact witness.
    bytes32 internal constant EXACT_TYPEHASH = keccak256("Witness(address to,uint256 validAfter)");
    /// @dev keccak256("Witness(address to,address facilitator,uint256 validAfter)"), the x402 v2 upto witness.
    bytes32 internal constant UPTO_TYPEHASH = keccak256("Witness(address to,address facilitator,uint256 validAfter)");
    /// @dev The exact witness with the bound request hash appended.
    bytes32 internal constant EXACT_BOUND_TYPEHASH =
        keccak256("Witness(address to,uint256 validAfter,bytes32 requestHash)");
    /// @dev The upto witness with the bound request hash appended.
    bytes32 internal constant UPTO_BOUND_TYPEHASH =
        keccak256("Witness(address to,address facilitator,uint256 validAfter,bytes32 requestHash)");

    /// @dev Witness type strings as Permit2 expects them: the tail of the full type from `Witness witness)`,
    /// followed by the referenced structs in alphabetical order.
    string internal constant EXACT_TYPE_STRING =
        "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,uint256 validAfter)";
    string internal constant UPTO_TYPE_STRING =
        "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,address facilitator,uint256 validAfter)";
    string internal constant EXACT_BOUND_TYPE_STRING =
        "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,uint256 validAfter,bytes32 requestHash)";
    string internal constant UPTO_BOUND_TYPE_STRING =
        "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,address facilitator,uint256 validAfter,bytes32 requestHash)";

    /// @dev Permit2's `TokenPermissions` type hash and the head of its witness type (PermitHash.sol).
    bytes32 internal constant TOKEN_PERMISSIONS_TYPEHASH = keccak256("TokenPermissions(address token,uint256 amount)");
    string internal constant PERMIT_WITNESS_TRANSFER_FROM_STUB =
        "PermitWitnessTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline,";

    /// @notice Whether `scheme` lets the settler choose the amount (and restricts who may settle).
    function isUpto(IPaymentFacilitator.Scheme scheme) internal pure returns (bool) {
        return scheme == IPaymentFacilitator.Scheme.Upto || scheme == IPaymentFacilitator.Scheme.UptoBound;
    }

    /// @notice Whether `scheme`'s witness carries a request hash.
    function isBound(IPaymentFacilitator.Scheme scheme) internal pure returns (bool) {
        return scheme == IPaymentFacilitator.Scheme.ExactBound || scheme == IPaymentFacilitator.Scheme.UptoBound;
    }

    /// @notice The witness type string handed to Permit2 for `scheme`.
    function typeString(IPaymentFacilitator.Scheme scheme) internal pure returns (string memory) {
        if (scheme == IPaymentFacilitator.Scheme.Exact) return EXACT_TYPE_STRING;
        if (scheme == IPaymentFacilitator.Scheme.Upto) return UPTO_TYPE_STRING;
        if (scheme == IPaymentFacilitator.Scheme.ExactBound) return EXACT_BOUND_TYPE_STRING;
        return UPTO_BOUND_TYPE_STRING;
    }

    /// @notice The payment's four address fields, loaded straight from calldata and checked once to be clean
    /// 20-byte values: the check the ABI decoder would otherwise repeat on every access of each field. Dirty
    /// upper bits revert without data, exactly as the decoder does.
    function parties(IPaymentFacilitator.Payment calldata payment)
        internal
        pure
        returns (address owner, address token, address to, address facilitator)
    {
        assembly ("memory-safe") {
            owner := calldataload(add(payment, 0x20))
            token := calldataload(add(payment, 0x40))
            to := calldataload(add(payment, 0xc0))
            facilitator := calldataload(add(payment, 0xe0))
            if shr(160, or(or(owner, token), or(to, facilitator))) { revert(0, 0) }
        }
    }

    /// @notice The EIP-712 struct hash of the payment's witness.
    function hash(IPaymentFacilitator.Payment calldata payment) internal pure returns (bytes32) {
        IPaymentFacilitator.Scheme scheme = payment.scheme;
        (,, address to, address facilitator) = parties(payment);
        if (scheme == IPaymentFacilitator.Scheme.Exact) {
            return keccak256(abi.encode(EXACT_TYPEHASH, to, payment.validAfter));
        }
        if (scheme == IPaymentFacilitator.Scheme.Upto) {
            return keccak256(abi.encode(UPTO_TYPEHASH, to, facilitator, payment.validAfter));
        }
        if (scheme == IPaymentFacilitator.Scheme.ExactBound) {
            return keccak256(abi.encode(EXACT_BOUND_TYPEHASH, to, payment.validAfter, payment.requestHash));
        }
        return keccak256(
            abi.encode(UPTO_BOUND_TYPEHASH, to, facilitator, payment.validAfter, payment.requestHash)
        );
    }

    /// @notice The EIP-712 struct hash of the whole `PermitWitnessTransferFrom` message, as Permit2 computes it
    /// when `spender` calls it.
    function permitHash(IPaymentFacilitator.Payment calldata payment, address spender) internal pure returns (bytes32) {
        bytes32 typeHash = keccak256(abi.encodePacked(PERMIT_WITNESS_TRANSFER_FROM_STUB, typeString(payment.scheme)));
        bytes32 permitted = keccak256(
            abi.encode(TOKEN_PERMISSIONS_TYPEHASH, payment.permit.permitted.token, payment.permit.permitted.amount)
        );
        return keccak256(
            abi.encode(typeHash, permitted, spender, payment.permit.nonce, payment.permit.deadline, hash(payment))
        );
    }
}
