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

    /// @dev The selector of Permit2's single `permitWitnessTransferFrom` (the function is overloaded).
    bytes4 private constant _PERMIT_WITNESS_TRANSFER_FROM = 0x137c29fe;
    /// @dev Permit2's `InvalidNonce()` (PermitErrors.sol), which {settleBatch} reports as {NonceAlreadyUsed}.
    bytes4 private constant _PERMIT2_INVALID_NONCE = 0x756688fe;
    /// @dev The `balanceBefore` that tells {settleOne} to read the recipient's balance itself. A recipient
    /// really holding this much cannot receive a non-zero amount, so the value never stands for a real balance.
    uint256 private constant _UNKNOWN_BALANCE = type(uint256).max;

    /// @dev What {settleBatch} knows about the last settled item's recipient balance.
    struct BalanceCache {
        address token;
        address to;
        uint256 balance;
    }

    /// @param permit2 The canonical Permit2 on this chain (0x000000000022D473030F116dDEE9F6B43aC78BA3).
    constructor(ISignatureTransfer permit2) {
        if (address(permit2).code.length == 0) revert InvalidPermit2(address(permit2));
        PERMIT2 = permit2;
    }

    /// @inheritdoc IPaymentFacilitator
    function settle(Payment calldata payment) external nonReentrant returns (uint256 amount) {
        amount = _check(payment, msg.sender);
        // Nonce: Permit2 would revert InvalidNonce(); checking first names the owner and nonce.
        address owner = payment.owner;
        uint256 nonce = payment.permit.nonce;
        if ((PERMIT2.nonceBitmap(owner, nonce >> 8) >> (nonce & 0xff)) & 1 != 0) revert NonceAlreadyUsed(owner, nonce);
        _transfer(payment, amount, _UNKNOWN_BALANCE);
    }

    /// @inheritdoc IPaymentFacilitator
    function settleBatch(Payment[] calldata payments) external nonReentrant returns (Result[] memory results) {
        uint256 count = payments.length;
        if (count == 0 || count > MAX_BATCH_SIZE) revert InvalidBatchSize(count);
        results = new Result[](count);
        uint256 scratch = _freeMemory();
        // The recipient balance left by the last settled item: a later item with the same token and recipient
        // starts from it instead of reading it again. A failed item reverts all its state, so it leaves this as is.
        BalanceCache memory cache = BalanceCache(address(0), address(0), _UNKNOWN_BALANCE);
        for (uint256 i; i < count; ++i) {
            Payment calldata payment = payments[i];
            (address token, address to) = _tokenAndRecipient(payment);
            uint256 balanceBefore = token == cache.token && to == cache.to ? cache.balance : _UNKNOWN_BALANCE;
            // An external self-call gives each item its own call frame, so a failure anywhere in it (our
            // checks, Permit2, the token, the balance-delta check) reverts that item and nothing else.
            (bool ok, bytes memory reason) =
                address(this).call(_settleOneCalldata(payment, msg.sender, balanceBefore));
            if (ok) {
                results[i].settled = true;
                (cache.token, cache.to, cache.balance) = (token, to, abi.decode(reason, (uint256)));
            } else {
                address owner = payment.owner;
                uint256 nonce = payment.permit.nonce;
                // Items skip the nonce pre-read of {settle}; Permit2's InvalidNonce() is reported as ours.
                if (reason.length == 4 && bytes4(reason) == _PERMIT2_INVALID_NONCE) {
                    reason = abi.encodeWithSelector(NonceAlreadyUsed.selector, owner, nonce);
                }
                if (reason.length >= 4) results[i].reason = bytes4(reason);
                emit PaymentFailed(i, owner, nonce, reason);
            }
            // Nothing allocated for this item is used again: reuse its memory for the next one.
            _setFreeMemory(scratch);
        }
    }

    /// @inheritdoc IPaymentFacilitator
    function settleOne(Payment calldata payment, address caller, uint256 balanceBefore)
        external
        returns (uint256 balanceAfter)
    {
        // Only reachable from settleBatch, which holds the reentrancy guard for the whole batch.
        if (msg.sender != address(this)) revert OnlySelf(msg.sender);
        uint256 amount = _check(payment, caller);
        balanceAfter = _transfer(payment, amount, balanceBefore);
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

    /// @dev Every check that needs no external call (see {settle}'s check order); returns the amount to move.
    function _check(Payment calldata payment, address caller) private view returns (uint256 amount) {
        Scheme scheme = payment.scheme;
        bool upto = scheme.isUpto();
        address facilitator = payment.facilitator;
        if ((!upto && facilitator != address(0)) || (!scheme.isBound() && payment.requestHash != 0)) {
            revert FieldNotInWitness(scheme);
        }

        // Time window (Permit2 checks the deadline too; checking here gives a named error first).
        uint256 validAfter = payment.validAfter;
        uint256 deadline = payment.permit.deadline;
        if (block.timestamp < validAfter) revert PaymentNotYetValid(validAfter, block.timestamp);
        if (block.timestamp > deadline) revert PaymentExpired(deadline, block.timestamp);

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
        if (upto && caller != facilitator) revert UnauthorizedFacilitator(caller, facilitator);

        // Token and signature shape.
        address token = payment.permit.permitted.token;
        if (token.code.length == 0) revert TokenHasNoCode(token);
        if (owner.code.length == 0) _checkSignatureShape(payment.signature);
    }

    /// @dev The interaction: Permit2 checks the signature, spends the nonce and moves `amount` from the owner
    /// straight to `payment.to`; the recipient's balance must then have grown by exactly `amount`. Emits
    /// PaymentSettled. Expects {_check} to have passed (it also validated the address fields read here).
    /// `balanceBefore` is the recipient's current balance if the caller knows it, else {_UNKNOWN_BALANCE}.
    function _transfer(Payment calldata payment, uint256 amount, uint256 balanceBefore)
        private
        returns (uint256 balanceAfter)
    {
        address token = payment.permit.permitted.token;
        address to = payment.to;
        if (balanceBefore == _UNKNOWN_BALANCE) balanceBefore = IERC20(token).balanceOf(to);
        _permitWitnessTransferFrom(payment, amount);
        balanceAfter = IERC20(token).balanceOf(to);
        uint256 received = balanceAfter > balanceBefore ? balanceAfter - balanceBefore : 0;
        if (received != amount) revert TransferShortfall(token, to, amount, received);
        emit PaymentSettled(
            payment.owner, to, payment.requestHash, token, amount, payment.permit.nonce, payment.scheme
        );
    }

    /// @dev `PERMIT2.permitWitnessTransferFrom(payment.permit, (payment.to, amount), payment.owner,
    /// payment.hash(), payment.scheme.typeString(), payment.signature)`, with the arguments laid out directly:
    /// the permit's four words are copied from the item's calldata as they are, and Permit2's revert data is
    /// bubbled up unchanged. Permit2's code was checked at deployment.
    function _permitWitnessTransferFrom(Payment calldata payment, uint256 amount) private {
        bytes32 witness = payment.hash();
        string memory typeString = payment.scheme.typeString();
        bytes calldata signature = payment.signature;
        address permit2 = address(PERMIT2);
        assembly ("memory-safe") {
            let data := mload(0x40)
            mstore(data, _PERMIT_WITNESS_TRANSFER_FROM)
            let args := add(data, 0x04)
            calldatacopy(args, add(payment, 0x40), 0x80) // permit: (token, amount), nonce, deadline
            mstore(add(args, 0x80), calldataload(add(payment, 0xc0))) // transferDetails.to
            mstore(add(args, 0xa0), amount) // transferDetails.requestedAmount
            mstore(add(args, 0xc0), calldataload(add(payment, 0x20))) // owner
            mstore(add(args, 0xe0), witness)
            mstore(add(args, 0x100), 0x140) // offset of witnessTypeString
            // witnessTypeString: length, then its bytes zero-padded to whole words.
            let typeLength := mload(typeString)
            let typePadded := and(add(typeLength, 0x1f), not(0x1f))
            mstore(add(args, 0x120), add(0x160, typePadded)) // offset of signature
            mstore(add(add(args, 0x140), typePadded), 0)
            mstore(add(args, 0x140), typeLength)
            mcopy(add(args, 0x160), add(typeString, 0x20), typeLength)
            // signature: length, then its bytes zero-padded to whole words.
            let sig := add(add(args, 0x160), typePadded)
            let sigPadded := and(add(signature.length, 0x1f), not(0x1f))
            mstore(add(sig, sigPadded), 0)
            mstore(sig, signature.length)
            calldatacopy(add(sig, 0x20), signature.offset, signature.length)
            let end := add(add(sig, 0x20), sigPadded)
            if iszero(call(gas(), permit2, 0, data, sub(end, data), 0, 0)) {
                returndatacopy(data, 0, returndatasize())
                revert(data, returndatasize())
            }
        }
    }

    /// @dev The item's token and recipient as raw words (so a malformed item cannot revert the whole batch
    /// here; its own frame rejects it), used only to compare with the balance cache.
    function _tokenAndRecipient(Payment calldata payment) private pure returns (address token, address to) {
        assembly ("memory-safe") {
            token := calldataload(add(payment, 0x40))
            to := calldataload(add(payment, 0xc0))
        }
    }

    /// @dev The free memory pointer.
    function _freeMemory() private pure returns (uint256 pointer) {
        assembly ("memory-safe") {
            pointer := mload(0x40)
        }
    }

    /// @dev Resets the free memory pointer to `pointer`, releasing everything allocated after it.
    function _setFreeMemory(uint256 pointer) private pure {
        assembly ("memory-safe") {
            mstore(0x40, pointer)
        }
    }

    /// @dev `abi.encodeCall(this.settleOne, (payment, batchCaller, balanceBefore))`, built by copying the item's
    /// ABI encoding straight from the batch's calldata (a tuple's encoding is position-independent: its offsets
    /// are relative to its own start) instead of re-encoding it field by field. `settleOne` decodes and
    /// validates it again.
    function _settleOneCalldata(Payment calldata payment, address batchCaller, uint256 balanceBefore)
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
            mstore(data, add(size, 0x64))
            mstore(add(data, 0x20), selector)
            mstore(add(data, 0x24), 0x60)
            mstore(add(data, 0x44), batchCaller)
            mstore(add(data, 0x64), balanceBefore)
            calldatacopy(add(data, 0x84), payment, size)
            mstore(0x40, add(add(data, 0x84), size))
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
