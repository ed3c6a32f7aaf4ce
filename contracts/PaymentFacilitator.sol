// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {ISignatureTransfer} from "permit2/interfaces/ISignatureTransfer.sol";
import {IPaymentFacilitator} from "./interfaces/IPaymentFacilitator.sol";
import {PaymentWitness} from "./libraries/PaymentWitness.sol";

/// @title PaymentFacilitator
/// @notice x402 v2 exact and upto payments (and their request-bound variants) through Permit2, single or
/// batched. See {IPaymentFacilitator} for the signed types and the security assumptions.
/// @dev Holds no state and no tokens, and has no owner. The reentrancy guard lives in transient storage.
contract PaymentFacilitator is IPaymentFacilitator, ReentrancyGuardTransient {
    using PaymentWitness for Payment;
    using PaymentWitness for Scheme;

    /// @dev secp256k1n / 2: the largest `s` of a canonical (low-s) signature.
    uint256 private constant _HALF_CURVE_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;
    /// @dev Clears the top bit of an EIP-2098 `vs` word, leaving `s`.
    bytes32 private constant _LOWER_255_BITS = 0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff;

    /// @inheritdoc IPaymentFacilitator
    ISignatureTransfer public immutable PERMIT2;

    /// @inheritdoc IPaymentFacilitator
    uint256 public constant MAX_BATCH_SIZE = 256;

    /// @param permit2 The canonical Permit2 on this chain (0x000000000022D473030F116dDEE9F6B43aC78BA3).
    constructor(ISignatureTransfer permit2) {
        if (address(permit2).code.length == 0) revert InvalidPermit2(address(permit2));
        PERMIT2 = permit2;
    }

    /// @inheritdoc IPaymentFacilitator
    function settle(Payment calldata payment) external nonReentrant returns (uint256 amount) {
        return _settle(payment, msg.sender);
    }

    /// @inheritdoc IPaymentFacilitator
    function settleBatch(Payment[] calldata payments) external nonReentrant returns (Result[] memory results) {
        uint256 count = payments.length;
        if (count == 0 || count > MAX_BATCH_SIZE) revert InvalidBatchSize(count);
        results = new Result[](count);
        for (uint256 i; i < count; ++i) {
            Payment calldata payment = payments[i];
            // An external self-call gives each item its own call frame, so a failure anywhere in it (our
            // checks, Permit2, the token, the balance-delta check) reverts that item and nothing else.
            (bool ok, bytes memory reason) = address(this).call(_settleOneCalldata(payment, msg.sender));
            if (ok) {
                results[i].settled = true;
            } else {
                if (reason.length >= 4) results[i].reason = bytes4(reason);
                emit PaymentFailed(i, payment.owner, payment.permit.nonce, reason);
            }
        }
    }

    /// @inheritdoc IPaymentFacilitator
    function settleOne(Payment calldata payment, address caller) external returns (uint256 amount) {
        // Only reachable from settleBatch, which holds the reentrancy guard for the whole batch.
        if (msg.sender != address(this)) revert OnlySelf(msg.sender);
        return _settle(payment, caller);
    }

    /// @inheritdoc IPaymentFacilitator
    function witnessTypeString(Scheme scheme) external pure returns (string memory) {
        return scheme.typeString();
    }

    /// @inheritdoc IPaymentFacilitator
    function witnessHash(Payment calldata payment) external pure returns (bytes32) {
        return payment.hash();
    }

    /// @inheritdoc IPaymentFacilitator
    function permitDigest(Payment calldata payment) external view returns (bytes32) {
        return keccak256(
            abi.encodePacked(hex"1901", PERMIT2.DOMAIN_SEPARATOR(), payment.permitHash(address(this)))
        );
    }

    /// @dev Checks, then the Permit2 transfer, then the recipient's balance delta; emits PaymentSettled.
    function _settle(Payment calldata payment, address caller) private returns (uint256 amount) {
        Scheme scheme = payment.scheme;
        bool upto = scheme.isUpto();
        if ((!upto && payment.facilitator != address(0)) || (!scheme.isBound() && payment.requestHash != 0)) {
            revert FieldNotInWitness(scheme);
        }

        // Time window (Permit2 checks the deadline too; checking here gives a named error first).
        if (block.timestamp < payment.validAfter) revert PaymentNotYetValid(payment.validAfter, block.timestamp);
        if (block.timestamp > payment.permit.deadline) revert PaymentExpired(payment.permit.deadline, block.timestamp);

        // Amounts.
        amount = payment.amount;
        uint256 permitted = payment.permit.permitted.amount;
        if (amount == 0) revert ZeroAmount();
        if (upto) {
            if (amount > permitted) revert AmountExceedsPermitted(amount, permitted);
        } else if (amount != permitted) {
            revert ExactAmountMismatch(amount, permitted);
        }

        // Parties.
        address owner = payment.owner;
        address to = payment.to;
        if (owner == address(0)) revert ZeroOwner();
        if (to == address(0) || to == address(this) || to == owner) revert InvalidRecipient(to);
        if (upto && caller != payment.facilitator) revert UnauthorizedFacilitator(caller, payment.facilitator);

        // Token and signature shape.
        address token = payment.permit.permitted.token;
        if (token.code.length == 0) revert TokenHasNoCode(token);
        if (owner.code.length == 0) _checkSignatureShape(payment.signature);

        // Nonce: Permit2 would revert InvalidNonce(); checking first names the owner and nonce.
        uint256 nonce = payment.permit.nonce;
        if ((PERMIT2.nonceBitmap(owner, nonce >> 8) >> (nonce & 0xff)) & 1 != 0) revert NonceAlreadyUsed(owner, nonce);

        _pull(payment, amount);
        emit PaymentSettled(owner, to, payment.requestHash, token, amount, nonce, scheme);
    }

    /// @dev The interaction: Permit2 checks the signature, spends the nonce and moves `amount` from the owner
    /// straight to `payment.to`; the recipient's balance must then have grown by exactly `amount`.
    function _pull(Payment calldata payment, uint256 amount) private {
        address token = payment.permit.permitted.token;
        address to = payment.to;
        uint256 balanceBefore = IERC20(token).balanceOf(to);
        PERMIT2.permitWitnessTransferFrom(
            payment.permit,
            ISignatureTransfer.SignatureTransferDetails({to: to, requestedAmount: amount}),
            payment.owner,
            payment.hash(),
            payment.scheme.typeString(),
            payment.signature
        );
        uint256 balanceAfter = IERC20(token).balanceOf(to);
        uint256 received = balanceAfter > balanceBefore ? balanceAfter - balanceBefore : 0;
        if (received != amount) revert TransferShortfall(token, to, amount, received);
    }

    /// @dev `abi.encodeCall(this.settleOne, (payment, batchCaller))`, built by copying the item's ABI encoding
    /// straight from the batch's calldata (a tuple's encoding is position-independent: its offsets are relative
    /// to its own start) instead of re-encoding it field by field. `settleOne` decodes and validates it again.
    function _settleOneCalldata(Payment calldata payment, address batchCaller)
        private
        pure
        returns (bytes memory data)
    {
        uint256 signatureLength = payment.signature.length; // bounds-checked by the compiler
        bytes4 selector = this.settleOne.selector;
        assembly ("memory-safe") {
            // The item spans from its head to the end of its (padded) signature, and at least its 12-word head.
            let signatureOffset := calldataload(add(payment, 0x160))
            let size := add(add(signatureOffset, 0x20), and(add(signatureLength, 0x1f), not(0x1f)))
            if lt(size, 0x180) { size := 0x180 }
            data := mload(0x40)
            mstore(data, add(size, 0x44))
            mstore(add(data, 0x20), selector)
            mstore(add(data, 0x24), 0x40)
            mstore(add(data, 0x44), batchCaller)
            calldatacopy(add(data, 0x64), payment, size)
            mstore(0x40, add(add(data, 0x64), size))
        }
    }

    /// @dev Rejects EOA signatures that Permit2 would accept but that are not canonical: a high `s` (the
    /// malleable twin of a valid signature), a `v` other than 27/28, or a length other than 65 or 64.
    function _checkSignatureShape(bytes calldata signature) private pure {
        bytes32 s;
        if (signature.length == 65) {
            s = bytes32(signature[32:64]);
            uint8 v = uint8(signature[64]);
            if (v != 27 && v != 28) revert InvalidSignatureV(v);
        } else if (signature.length == 64) {
            s = bytes32(signature[32:64]) & _LOWER_255_BITS;
        } else {
            revert MalformedSignature(signature.length);
        }
        if (uint256(s) > _HALF_CURVE_ORDER) revert MalleableSignature(s);
    }
}
