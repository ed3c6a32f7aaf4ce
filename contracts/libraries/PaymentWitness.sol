// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IPaymentFacilitator} from "../interfaces/IPaymentFacilitator.sol";

/// @title PaymentWitness
/// @notice A payment's decoded terms (from either calldata form, see {IPaymentFacilitator}), and the EIP-712 hashing
/// of the four payment witnesses and of the Permit2 `PermitWitnessTransferFrom` message that carries them. The type
/// strings here are the single source of truth on-chain; the Python side (`og_settle._permit2`) holds the same
/// strings and the tests check both against each other.
library PaymentWitness {
    /// @notice One payment's terms in memory, one word per field, in the order of `IPaymentFacilitator.Payment`'s
    /// ABI head. Both calldata forms decode into it (the ABI struct by one copy of its head), and every check, the
    /// Permit2 call and the event read it.
    /// @param scheme The `IPaymentFacilitator.Scheme` value (0..3: bit 0 = upto, bit 1 = bound).
    /// @param signatureOffset Where the signature starts in calldata.
    /// @param signatureLength Its length in bytes.
    struct Terms {
        uint256 scheme;
        address owner;
        address token;
        uint256 permitted;
        uint256 nonce;
        uint256 deadline;
        address to;
        address facilitator;
        uint256 validAfter;
        bytes32 requestHash;
        uint256 amount;
        uint256 signatureOffset;
        uint256 signatureLength;
    }

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
    function isUpto(uint256 scheme) internal pure returns (bool) {
        return scheme & 1 != 0;
    }

    /// @notice Whether `scheme`'s witness carries a request hash.
    function isBound(uint256 scheme) internal pure returns (bool) {
        return scheme & 2 != 0;
    }

    /// @notice The witness type string handed to Permit2 for `scheme` (0..3).
    function typeString(uint256 scheme) internal pure returns (string memory) {
        if (scheme == uint256(IPaymentFacilitator.Scheme.Exact)) return EXACT_TYPE_STRING;
        if (scheme == uint256(IPaymentFacilitator.Scheme.Upto)) return UPTO_TYPE_STRING;
        if (scheme == uint256(IPaymentFacilitator.Scheme.ExactBound)) return EXACT_BOUND_TYPE_STRING;
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

    /// @notice The terms of an ABI-encoded payment: its scheme is validated (an out-of-range value reverts without
    /// data, as the ABI decoder does), and so are its addresses ({parties}) and its signature's bounds; its head is
    /// then copied as it is. Whether the fields match the scheme is {IPaymentFacilitator}'s check, not this one's.
    function terms(IPaymentFacilitator.Payment calldata payment) internal pure returns (Terms memory t) {
        IPaymentFacilitator.Scheme scheme = payment.scheme;
        parties(payment);
        bytes calldata signature = payment.signature;
        assembly ("memory-safe") {
            t := mload(0x40)
            mstore(0x40, add(t, 0x1a0))
            calldatacopy(t, payment, 0x160)
            mstore(t, scheme)
            mstore(add(t, 0x160), signature.offset)
            mstore(add(t, 0x180), signature.length)
        }
    }

    /// @notice Writes the terms of a packed payment (see {IPaymentFacilitator-settlePacked} for the layout) that spans
    /// calldata bytes [item, item + length): the signature is whatever follows the scheme's fields. The exact schemes
    /// carry no amount: theirs is the permitted one. Returns the terms' memory address (the
    /// caller types it as `Terms memory`: a function returning `Terms memory` would first allocate and zero a struct
    /// it never uses, about 280 gas). Reverts {IPaymentFacilitator.MalformedPackedPayment} for an
    /// unknown scheme or a payment too short for its scheme's fields (it does not check that the range lies inside
    /// calldata; the callers pass ranges that do).
    function packedTerms(uint256 item, uint256 length) internal pure returns (uint256 t) {
        uint256 scheme;
        uint256 fields;
        assembly ("memory-safe") {
            scheme := shr(248, calldataload(item))
            // 121 bytes for every scheme, 36 more for upto (facilitator, amount), 32 more for bound (requestHash).
            fields := add(121, add(mul(and(scheme, 1), 36), shl(4, and(scheme, 2))))
        }
        if (scheme > 3 || length < fields) revert IPaymentFacilitator.MalformedPackedPayment(scheme, length);
        assembly ("memory-safe") {
            t := mload(0x40)
            mstore(0x40, add(t, 0x1a0))
            mstore(t, scheme)
            mstore(add(t, 0x20), shr(96, calldataload(add(item, 1)))) // owner (20 bytes)
            mstore(add(t, 0x40), shr(96, calldataload(add(item, 21)))) // token (20)
            let permitted := shr(128, calldataload(add(item, 41))) // permitted amount (16)
            mstore(add(t, 0x60), permitted)
            mstore(add(t, 0x80), calldataload(add(item, 57))) // nonce (32)
            mstore(add(t, 0xa0), shr(208, calldataload(add(item, 89)))) // deadline (6)
            mstore(add(t, 0xc0), shr(96, calldataload(add(item, 95)))) // to (20)
            mstore(add(t, 0x100), shr(208, calldataload(add(item, 115)))) // validAfter (6)
            let o := add(item, 121)
            switch and(scheme, 1)
            case 0 {
                mstore(add(t, 0xe0), 0) // facilitator
                mstore(add(t, 0x140), permitted) // amount
            }
            default {
                mstore(add(t, 0xe0), shr(96, calldataload(o))) // facilitator (20)
                mstore(add(t, 0x140), shr(128, calldataload(add(o, 20)))) // amount (16)
                o := add(o, 36)
            }
            switch and(scheme, 2)
            case 0 { mstore(add(t, 0x120), 0) }
            default {
                mstore(add(t, 0x120), calldataload(o)) // requestHash (32)
                o := add(o, 32)
            }
            mstore(add(t, 0x160), o) // signature offset
            mstore(add(t, 0x180), sub(add(item, length), o)) // signature length
        }
    }

    /// @notice The EIP-712 struct hash of the payment's witness.
    function hash(Terms memory t) internal pure returns (bytes32 witness) {
        uint256 scheme = t.scheme;
        bytes32 typeHash = scheme == 0
            ? EXACT_TYPEHASH
            : scheme == 1 ? UPTO_TYPEHASH : scheme == 2 ? EXACT_BOUND_TYPEHASH : UPTO_BOUND_TYPEHASH;
        assembly ("memory-safe") {
            // abi.encode(typeHash, to, [facilitator,] validAfter[, requestHash]) in scratch memory past the free
            // pointer (not allocated: nothing else runs before the hash is taken).
            let m := mload(0x40)
            mstore(m, typeHash)
            mstore(add(m, 0x20), mload(add(t, 0xc0))) // to
            let o := add(m, 0x40)
            if and(scheme, 1) {
                mstore(o, mload(add(t, 0xe0))) // facilitator
                o := add(o, 0x20)
            }
            mstore(o, mload(add(t, 0x100))) // validAfter
            o := add(o, 0x20)
            if and(scheme, 2) {
                mstore(o, mload(add(t, 0x120))) // requestHash
                o := add(o, 0x20)
            }
            witness := keccak256(m, sub(o, m))
        }
    }

    /// @notice The EIP-712 struct hash of the whole `PermitWitnessTransferFrom` message, as Permit2 computes it
    /// when `spender` calls it.
    function permitHash(Terms memory t, address spender) internal pure returns (bytes32) {
        bytes32 typeHash = keccak256(abi.encodePacked(PERMIT_WITNESS_TRANSFER_FROM_STUB, typeString(t.scheme)));
        bytes32 permitted = keccak256(abi.encode(TOKEN_PERMISSIONS_TYPEHASH, t.token, t.permitted));
        return keccak256(abi.encode(typeHash, permitted, spender, t.nonce, t.deadline, hash(t)));
    }
}
