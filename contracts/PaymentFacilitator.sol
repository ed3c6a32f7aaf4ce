// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {ISignatureTransfer} from "permit2/interfaces/ISignatureTransfer.sol";
import {IPaymentFacilitator} from "./interfaces/IPaymentFacilitator.sol";
import {Eip2612Approval} from "./libraries/Eip2612Approval.sol";
import {PaymentWitness} from "./libraries/PaymentWitness.sol";

/// @title PaymentFacilitator
/// @notice x402 v2 exact and upto payments (and their request-bound variants) through Permit2, single or
/// batched. See {IPaymentFacilitator} for the signed types and the security assumptions.
/// @dev Holds no state and no tokens, and has no owner. The reentrancy guard lives in transient storage.
contract PaymentFacilitator is IPaymentFacilitator, ReentrancyGuardTransient {
    using PaymentWitness for Payment;
    using PaymentWitness for PaymentWitness.Terms;
    using PaymentWitness for uint256;

    /// @dev secp256k1n / 2: the largest `s` of a canonical (low-s) signature.
    uint256 private constant _HALF_CURVE_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;
    /// @dev Clears the top bit of an EIP-2098 `vs` word, leaving `s`.
    bytes32 private constant _LOWER_255_BITS = 0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff;

    /// @inheritdoc IPaymentFacilitator
    ISignatureTransfer public immutable PERMIT2;

    /// @inheritdoc IPaymentFacilitator
    uint256 public constant MAX_BATCH_SIZE = 256;

    /// @dev The most gas one {settleBatch} item's call may use (see the gas-griefing assumption in the interface).
    /// Not exposed as a getter: every external function lengthens the selector dispatch each item's self-call
    /// goes through.
    uint256 private constant ITEM_GAS_LIMIT = 200_000;

    /// @dev The most bytes of an item's revert data that {settleBatch} copies and emits in {PaymentFailed}.
    uint256 private constant MAX_REVERT_DATA = 256;

    /// @dev What the batch must hold before an item's call for the call to get its whole cap: the EVM forwards at
    /// most 63/64 of what is left (EIP-150), so the cap plus its 64th, plus the call's own cost with margin.
    /// (ITEM_GAS_LIMIT * 64 / 63 + 2_000, written out for inline assembly.)
    uint256 private constant _ITEM_GAS_REQUIRED = 205_174;
    /// @dev An item whose call failed without revert data after using more than this (15/16 of the cap: each
    /// nested frame that runs out hands back up to 1/64 of its gas) is reported as {ItemGasLimitExceeded}.
    uint256 private constant _ITEM_GAS_EXHAUSTED = 187_500;

    /// @dev The most gas each of {settleBatchWithPermits}' token calls (`allowance`, `permit`) may use, and what the
    /// batch must hold before a permit for that cap to apply despite the 63/64 rule (three capped calls in a row).
    uint256 private constant PERMIT_GAS_LIMIT = 100_000;
    uint256 private constant _PERMIT_GAS_REQUIRED = 3 * (PERMIT_GAS_LIMIT * 64 / 63 + 2_000);

    /// @dev The selector of Permit2's single `permitWitnessTransferFrom` (the function is overloaded).
    bytes4 private constant _PERMIT_WITNESS_TRANSFER_FROM = 0x137c29fe;
    /// @dev Permit2's `InvalidNonce()` (PermitErrors.sol), which is reported as {NonceAlreadyUsed}.
    bytes4 private constant _PERMIT2_INVALID_NONCE = 0x756688fe;
    /// @dev The `balanceBefore` that tells {settleOne} to read the recipient's balance itself. A recipient
    /// really holding this much cannot receive a non-zero amount, so the value never stands for a real balance.
    uint256 private constant _UNKNOWN_BALANCE = type(uint256).max;

    /// @param permit2 The canonical Permit2 on this chain (0x000000000022D473030F116dDEE9F6B43aC78BA3).
    constructor(ISignatureTransfer permit2) {
        if (address(permit2).code.length == 0) revert InvalidPermit2(address(permit2));
        PERMIT2 = permit2;
    }

    /// @dev OpenZeppelin's `nonReentrant` (the same transient slot and error, so the guarded functions exclude each
    /// other), written out for {settlePacked}: the library's internal calls cost about 140 gas a payment.
    modifier nonReentrantInline() {
        bytes32 slot = _reentrancyGuardStorageSlot();
        bytes4 reentrant = ReentrancyGuardReentrantCall.selector;
        assembly ("memory-safe") {
            if tload(slot) {
                mstore(0x00, reentrant)
                revert(0x00, 0x04)
            }
            tstore(slot, 1)
        }
        _;
        assembly ("memory-safe") {
            tstore(slot, 0)
        }
    }

    /// @inheritdoc IPaymentFacilitator
    function settlePacked() external nonReentrantInline returns (uint256 amount) {
        PaymentWitness.Terms memory t = _packedTerms()(4, msg.data.length - 4);
        amount = _check(t, msg.sender);
        // The nonce is not pre-read: Permit2's InvalidNonce() comes back as NonceAlreadyUsed(owner, nonce).
        _transfer(t, amount, _UNKNOWN_BALANCE);
    }

    /// @inheritdoc IPaymentFacilitator
    function settleBatchPacked() external nonReentrant returns (uint256 settled) {
        uint256 end = msg.data.length;
        uint256 scratch = _freeMemory();
        // The recipient balance left by the last settled item (see settleBatch).
        (address cachedToken, address cachedTo, uint256 cachedBalance) = (address(0), address(0), _UNKNOWN_BALANCE);
        uint256 index;
        for (uint256 offset = 4; offset < end; ++index) {
            if (index == MAX_BATCH_SIZE) revert InvalidBatchSize(index + 1);
            (uint256 item, uint256 length, address token, address to) = _packedItem(offset, end);
            offset = item + length;
            uint256 balanceBefore = token == cachedToken && to == cachedTo ? cachedBalance : _UNKNOWN_BALANCE;
            (bool ok, uint256 outcome) = _trySettlePackedItem(index, item, length, balanceBefore);
            if (ok) {
                settled |= 1 << index;
                (cachedToken, cachedTo, cachedBalance) = (token, to, outcome);
            } else {
                (address owner, uint256 nonce) = _packedOwnerAndNonce(item);
                _reportFailure(index, owner, nonce, outcome != 0);
            }
            _setFreeMemory(scratch);
        }
        if (index == 0) revert InvalidBatchSize(0);
    }

    /// @inheritdoc IPaymentFacilitator
    function settlePackedItem() external returns (uint256 balanceAfter) {
        // Only reachable from settleBatchPacked, which holds the reentrancy guard for the whole batch.
        if (msg.sender != address(this)) revert OnlySelf(msg.sender);
        address settler;
        uint256 balanceBefore;
        assembly ("memory-safe") {
            settler := calldataload(0x04)
            balanceBefore := calldataload(0x24)
        }
        PaymentWitness.Terms memory t = _packedTerms()(0x44, msg.data.length - 0x44);
        balanceAfter = _transfer(t, _check(t, settler), balanceBefore);
    }

    /// @inheritdoc IPaymentFacilitator
    function settle(Payment calldata payment) external nonReentrant returns (uint256 amount) {
        amount = _check(payment, msg.sender);
        _transfer(payment, amount, _UNKNOWN_BALANCE);
    }

    /// @inheritdoc IPaymentFacilitator
    function settleBatch(Payment[] calldata payments) external nonReentrant returns (Result[] memory results) {
        return _settleBatch(payments);
    }

    /// @inheritdoc IPaymentFacilitator
    function settleWithPermit(TokenPermit calldata permit, Payment calldata payment)
        external
        nonReentrant
        returns (uint256 amount)
    {
        amount = _check(payment, msg.sender);
        (address owner, address token,,) = payment.parties();
        (bool approved, uint256 allowance) = Eip2612Approval.approve(
            token, owner, address(PERMIT2), amount, permit.value, permit.deadline, permit.v, permit.r, permit.s, gasleft()
        );
        if (!approved) revert PermitDidNotApprove(token, owner, allowance, amount);
        _transfer(payment, amount, _UNKNOWN_BALANCE);
    }

    /// @inheritdoc IPaymentFacilitator
    function settleBatchWithPermits(Payment[] calldata payments, ItemPermit[] calldata permits)
        external
        nonReentrant
        returns (Result[] memory results)
    {
        uint256 count = payments.length;
        for (uint256 i; i < permits.length; ++i) {
            uint256 index = permits[i].index;
            if (index >= count) revert InvalidPermitIndex(index, count);
            uint256 left = gasleft();
            if (left < _PERMIT_GAS_REQUIRED) revert InsufficientGasForItem(index, left);
            // Raw loads, as for the balance cache: a malformed item fails in its own frame later, not here.
            Payment calldata payment = payments[index];
            (address owner,) = _ownerAndNonce(payment);
            (address token,) = _tokenAndRecipient(payment);
            TokenPermit calldata p = permits[i].permit;
            Eip2612Approval.approve(
                token, owner, address(PERMIT2), payment.amount, p.value, p.deadline, p.v, p.r, p.s, PERMIT_GAS_LIMIT
            );
        }
        return _settleBatch(payments);
    }

    /// @dev {settleBatch}'s loop, shared with {settleBatchWithPermits} (the caller holds the reentrancy guard).
    function _settleBatch(Payment[] calldata payments) private returns (Result[] memory results) {
        uint256 count = payments.length;
        if (count == 0 || count > MAX_BATCH_SIZE) revert InvalidBatchSize(count);
        results = new Result[](count);
        uint256 scratch = _freeMemory();
        // The recipient balance left by the last settled item: a later item with the same token and recipient
        // starts from it instead of reading it again. A failed item reverts all its state, so it leaves this as is.
        (address cachedToken, address cachedTo, uint256 cachedBalance) = (address(0), address(0), _UNKNOWN_BALANCE);
        for (uint256 i; i < count; ++i) {
            Payment calldata payment = payments[i];
            (address token, address to) = _tokenAndRecipient(payment);
            uint256 balanceBefore = token == cachedToken && to == cachedTo ? cachedBalance : _UNKNOWN_BALANCE;
            // An external self-call gives each item its own call frame, so a failure anywhere in it (our
            // checks, Permit2, the token, the balance-delta check) reverts that item and nothing else.
            // The caller's gas must not decide which items fail: unless the item's call can get its whole cap,
            // the batch reverts (so a gas estimate that passes settles every item that can settle).
            (bool ok, uint256 outcome) = _trySettleOne(i, payment, balanceBefore);
            if (ok) {
                results[i].settled = true;
                (cachedToken, cachedTo, cachedBalance) = (token, to, outcome);
            } else {
                results[i].reason = _reportFailure(i, payment, outcome != 0);
            }
            // Nothing allocated for this item is used again: reuse its memory for the next one.
            _setFreeMemory(scratch);
        }
    }

    /// @dev {_reportFailure} for an ABI-encoded item. Raw loads: a malformed item must not be able to revert the batch.
    function _reportFailure(uint256 index, Payment calldata payment, bool exhausted) private returns (bytes4) {
        (address owner, uint256 nonce) = _ownerAndNonce(payment);
        return _reportFailure(index, owner, nonce, exhausted);
    }

    /// @dev Emits PaymentFailed for item `index` (of `owner` and `nonce`) with (at most {MAX_REVERT_DATA} bytes of)
    /// the revert data of its call and returns the data's selector (zero if it has none). An item that used up its
    /// gas cap is reported as {ItemGasLimitExceeded}.
    function _reportFailure(uint256 index, address owner, uint256 nonce, bool exhausted)
        private
        returns (bytes4 selector)
    {
        bytes memory reason =
            exhausted ? abi.encodeWithSelector(ItemGasLimitExceeded.selector, ITEM_GAS_LIMIT) : _returnData();
        if (reason.length >= 4) selector = bytes4(reason);
        emit PaymentFailed(index, owner, nonce, reason);
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
        return PaymentWitness.typeString(uint256(scheme));
    }

    /// @inheritdoc IPaymentFacilitator
    function witnessHash(Payment calldata payment) external pure returns (bytes32) {
        return PaymentWitness.hash(payment.terms());
    }

    /// @inheritdoc IPaymentFacilitator
    function permitDigest(Payment calldata payment) external view returns (bytes32) {
        return _permitDigest(payment.terms());
    }

    /// @inheritdoc IPaymentFacilitator
    function permitDigestPacked(bytes calldata payment) external view returns (bytes32) {
        uint256 item;
        assembly ("memory-safe") {
            item := payment.offset
        }
        return _permitDigest(_packedTerms()(item, payment.length));
    }

    /// @dev {PaymentWitness.packedTerms} typed as returning the terms it wrote (it returns their memory address): a
    /// Solidity function declared to return `Terms memory` first allocates and zeroes a struct it never uses, about
    /// 280 gas a payment, so the cast is on the function pointer, called as `_packedTerms()(item, length)`.
    function _packedTerms()
        private
        pure
        returns (function (uint256, uint256) internal pure returns (PaymentWitness.Terms memory) typed)
    {
        function (uint256, uint256) internal pure returns (uint256) decode = PaymentWitness.packedTerms;
        assembly ("memory-safe") {
            typed := decode
        }
    }

    /// @dev The EIP-712 digest Permit2 checks the signature of `t` against when this contract spends it.
    function _permitDigest(PaymentWitness.Terms memory t) private view returns (bytes32) {
        return keccak256(abi.encodePacked(hex"1901", PERMIT2.DOMAIN_SEPARATOR(), t.permitHash(address(this))));
    }

    /// @dev {_check} for an ABI-encoded payment, which (unlike a packed one) can name fields its scheme's witness
    /// lacks: a facilitator for the exact schemes or a request hash for the unbound ones ({FieldNotInWitness}).
    function _check(Payment calldata payment, address caller) private view returns (uint256 amount) {
        PaymentWitness.Terms memory t = payment.terms();
        uint256 scheme = t.scheme;
        if ((!scheme.isUpto() && t.facilitator != address(0)) || (!scheme.isBound() && t.requestHash != 0)) {
            revert FieldNotInWitness(Scheme(scheme));
        }
        amount = _check(t, caller);
    }

    /// @dev {_transfer} for an ABI-encoded payment that passed {_check}.
    function _transfer(Payment calldata payment, uint256 amount, uint256 balanceBefore)
        private
        returns (uint256 balanceAfter)
    {
        balanceAfter = _transfer(payment.terms(), amount, balanceBefore);
    }

    /// @dev Every check that needs no external call (see {settle}'s check order); returns the amount to move. The
    /// whole set is first evaluated as one expression; only a payment failing it goes through {_reportCheck}, which
    /// evaluates the checks one by one, in order, and reverts with the first one's named error.
    function _check(PaymentWitness.Terms memory t, address caller) private view returns (uint256 amount) {
        bool passed;
        address settler = caller;
        assembly ("memory-safe") {
            let upto := and(mload(t), 1)
            amount := mload(add(t, 0x140))
            let permitted := mload(add(t, 0x60))
            let owner := mload(add(t, 0x20))
            let to := mload(add(t, 0xc0))
            let length := mload(add(t, 0x180))
            let signature := mload(add(t, 0x160))
            let s := calldataload(add(signature, 0x20))
            let v := byte(0, calldataload(add(signature, 0x40)))
            // A canonical EOA signature: 65 bytes with v in {27, 28} and a low s, or 64 bytes (EIP-2098) with a
            // low s. Anything else may still be an owner-with-code's signature: {_reportCheck} reads the code.
            let canonical := or(
                and(eq(length, 65), and(or(eq(v, 27), eq(v, 28)), iszero(gt(s, _HALF_CURVE_ORDER)))),
                and(eq(length, 64), iszero(gt(and(s, _LOWER_255_BITS), _HALF_CURVE_ORDER)))
            )
            passed := and(
                and(
                    // time window
                    and(iszero(lt(timestamp(), mload(add(t, 0x100)))), iszero(gt(timestamp(), mload(add(t, 0xa0))))),
                    // amounts: non-zero and below 2^128; upto at most the permitted amount, exact exactly it
                    and(
                        and(iszero(iszero(amount)), iszero(shr(128, amount))),
                        or(and(upto, iszero(gt(amount, permitted))), eq(amount, permitted))
                    )
                ),
                and(
                    // parties; the caller for upto
                    and(
                        iszero(iszero(owner)),
                        and(iszero(iszero(to)), and(iszero(eq(to, address())), iszero(eq(to, owner))))
                    ),
                    and(or(iszero(upto), eq(settler, mload(add(t, 0xe0)))), canonical)
                )
            )
        }
        if (!passed) _reportCheck(t, caller);
    }

    /// @dev {_check}'s checks one by one, in order: reverts with the first failing one's named error. A payment that
    /// fails none of them here has a signature that is not canonical but whose owner has code (Permit2 asks it).
    function _reportCheck(PaymentWitness.Terms memory t, address caller) private view {
        // Time window (Permit2 checks the deadline too; checking here gives a named error first).
        uint256 validAfter = t.validAfter;
        uint256 deadline = t.deadline;
        if (block.timestamp < validAfter) revert PaymentNotYetValid(validAfter, block.timestamp);
        if (block.timestamp > deadline) revert PaymentExpired(deadline, block.timestamp);

        // Amounts.
        bool upto = t.scheme.isUpto();
        uint256 amount = t.amount;
        uint256 permitted = t.permitted;
        if (amount == 0) revert ZeroAmount();
        if (amount > type(uint128).max) revert AmountTooLarge(amount);
        if (upto) {
            if (amount > permitted) revert AmountExceedsPermitted(amount, permitted);
        } else if (amount != permitted) {
            revert ExactAmountMismatch(amount, permitted);
        }

        // Parties.
        address owner = t.owner;
        address to = t.to;
        if (owner == address(0)) revert ZeroOwner();
        if (to == address(0) || to == address(this) || to == owner) revert InvalidRecipient(to);
        if (upto && caller != t.facilitator) revert UnauthorizedFacilitator(caller, t.facilitator);

        _checkSignatureShape(owner, t.signatureOffset, t.signatureLength);
    }

    /// @dev The interaction: Permit2 checks the signature, spends the nonce and moves `amount` from the owner
    /// straight to `t.to`; the recipient's balance must then have grown by exactly `amount`. Emits PaymentSettled.
    /// Expects {_check} to have passed. `balanceBefore` is the recipient's current balance if the caller knows it,
    /// else {_UNKNOWN_BALANCE}. The balance reads also check the token's code ({TokenHasNoCode}).
    function _transfer(PaymentWitness.Terms memory t, uint256 amount, uint256 balanceBefore)
        private
        returns (uint256 balanceAfter)
    {
        address token = t.token;
        address to = t.to;
        if (balanceBefore == _UNKNOWN_BALANCE) balanceBefore = _balanceOf(token, to);
        _permitWitnessTransferFrom(t, amount);
        balanceAfter = _balanceOf(token, to);
        uint256 received;
        unchecked {
            received = balanceAfter > balanceBefore ? balanceAfter - balanceBefore : 0;
        }
        if (received != amount) revert TransferShortfall(token, to, amount, received);
        _emitPaymentSettled(t, amount);
    }

    /// @dev `IERC20(token).balanceOf(account)` without the high-level call's extra checks; the token's revert data is
    /// bubbled up. An answer shorter than a word reverts {TokenHasNoCode} if the token has no code (a call to an
    /// address without code succeeds and returns nothing), else without data. This is the token-code check: every
    /// settlement reads the recipient's balance after the transfer, and (unless the batch knows it) before.
    function _balanceOf(address token, address account) private view returns (uint256 amount) {
        bytes4 noCode = TokenHasNoCode.selector;
        assembly ("memory-safe") {
            mstore(0x00, 0x70a08231) // balanceOf(address)
            mstore(0x20, account)
            if iszero(staticcall(gas(), token, 0x1c, 0x24, 0x00, 0x20)) {
                let data := mload(0x40)
                returndatacopy(data, 0, returndatasize())
                revert(data, returndatasize())
            }
            if lt(returndatasize(), 0x20) {
                if iszero(extcodesize(token)) {
                    mstore(0x00, noCode)
                    mstore(0x04, token)
                    revert(0x00, 0x24)
                }
                revert(0, 0)
            }
            amount := mload(0x00)
        }
    }

    /// @dev Emits PaymentSettled(payer = t.owner) with its packed data (see the event's documentation): `to`,
    /// `token`, `amount`, `nonce`, `scheme`, and for the bound schemes `requestHash`.
    function _emitPaymentSettled(PaymentWitness.Terms memory t, uint256 amount) private {
        bytes32 topic = PaymentSettled.selector;
        assembly ("memory-safe") {
            // Each field is written over the zero tail of the one before it (fields go left to right).
            let data := mload(0x40)
            let scheme := mload(t)
            mstore(data, shl(96, mload(add(t, 0xc0)))) // to
            mstore(add(data, 20), shl(96, mload(add(t, 0x40)))) // token
            mstore(add(data, 40), shl(128, amount)) // 16 bytes: {_check} keeps amounts below 2^128
            mstore(add(data, 56), mload(add(t, 0x80))) // nonce
            mstore8(add(data, 88), scheme)
            mstore(add(data, 89), mload(add(t, 0x120))) // requestHash, logged for the bound schemes only
            log2(data, add(89, shl(4, and(scheme, 2))), topic, mload(add(t, 0x20)))
        }
    }

    /// @dev `PERMIT2.permitWitnessTransferFrom(permit, (t.to, amount), t.owner, t.hash(), typeString(t.scheme),
    /// signature)`, with the arguments laid out directly: the permit's four words are copied from the terms as they
    /// are, and Permit2's revert data is bubbled up unchanged except `InvalidNonce()`, which becomes
    /// {NonceAlreadyUsed}. Permit2's code was checked at deployment.
    function _permitWitnessTransferFrom(PaymentWitness.Terms memory t, uint256 amount) private {
        bytes32 witness = t.hash();
        string memory typeString = PaymentWitness.typeString(t.scheme);
        address permit2 = address(PERMIT2);
        bytes4 nonceAlreadyUsed = NonceAlreadyUsed.selector;
        assembly ("memory-safe") {
            let data := mload(0x40)
            mstore(data, _PERMIT_WITNESS_TRANSFER_FROM)
            let args := add(data, 0x04)
            mcopy(args, add(t, 0x40), 0x80) // permit: (token, amount), nonce, deadline
            mstore(add(args, 0x80), mload(add(t, 0xc0))) // transferDetails.to
            mstore(add(args, 0xa0), amount) // transferDetails.requestedAmount
            mstore(add(args, 0xc0), mload(add(t, 0x20))) // owner
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
            let sigLength := mload(add(t, 0x180))
            let sigPadded := and(add(sigLength, 0x1f), not(0x1f))
            mstore(add(sig, sigPadded), 0)
            mstore(sig, sigLength)
            calldatacopy(add(sig, 0x20), mload(add(t, 0x160)), sigLength)
            let end := add(add(sig, 0x20), sigPadded)
            if iszero(call(gas(), permit2, 0, data, sub(end, data), 0, 0)) {
                // Permit2's InvalidNonce() becomes NonceAlreadyUsed(owner, nonce), naming both.
                if eq(returndatasize(), 4) {
                    returndatacopy(data, 0, 4)
                    if eq(shr(224, mload(data)), shr(224, _PERMIT2_INVALID_NONCE)) {
                        mstore(data, nonceAlreadyUsed)
                        mstore(add(data, 0x04), mload(add(t, 0x20))) // owner
                        mstore(add(data, 0x24), mload(add(t, 0x80))) // nonce
                        revert(data, 0x44)
                    }
                }
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

    /// @dev The packed batch item framed at `offset` (a 2-byte length, then the item): where it starts, its length,
    /// and its token and recipient read raw for the balance cache (garbage for an item too short to hold them, which
    /// then fails in its own frame). Reverts {MalformedPackedBatch} if the item runs past the calldata's `end`.
    function _packedItem(uint256 offset, uint256 end)
        private
        pure
        returns (uint256 item, uint256 length, address token, address to)
    {
        assembly ("memory-safe") {
            length := shr(240, calldataload(offset))
            item := add(offset, 2)
            token := shr(96, calldataload(add(item, 21)))
            to := shr(96, calldataload(add(item, 95)))
        }
        if (item + length > end) revert MalformedPackedBatch(offset);
    }

    /// @dev A packed item's owner and nonce, read raw (for {PaymentFailed}).
    function _packedOwnerAndNonce(uint256 item) private pure returns (address owner, uint256 nonce) {
        assembly ("memory-safe") {
            owner := shr(96, calldataload(add(item, 1)))
            nonce := calldataload(add(item, 57))
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

    /// @dev `this.settleOne(payment, msg.sender, balanceBefore)` through {_callItem}. The call's input is built in
    /// free memory by copying the item's ABI encoding straight from the batch's calldata (a tuple's encoding is
    /// position-independent: its offsets are relative to its own start); `settleOne` decodes and validates it again.
    /// If the item's signature offset or length points outside the calldata, only the item's head is copied, so that
    /// item alone fails to decode.
    function _trySettleOne(uint256 index, Payment calldata payment, uint256 balanceBefore)
        private
        returns (bool ok, uint256 outcome)
    {
        bytes4 selector = this.settleOne.selector;
        uint256 data;
        uint256 size;
        assembly ("memory-safe") {
            // The item spans from its head to the end of its (padded) signature, and at least its 12-word head.
            let signatureOffset := calldataload(add(payment, 0x160))
            let signatureLength := calldataload(add(payment, signatureOffset))
            size := add(add(signatureOffset, 0x20), and(add(signatureLength, 0x1f), not(0x1f)))
            if or(lt(size, 0x180), gt(add(payment, size), calldatasize())) { size := 0x180 }
            data := mload(0x40)
            mstore(data, selector)
            mstore(add(data, 0x04), 0x60)
            mstore(add(data, 0x24), caller())
            mstore(add(data, 0x44), balanceBefore)
            calldatacopy(add(data, 0x64), payment, size)
            size := add(size, 0x64)
        }
        return _callItem(index, data, size);
    }

    /// @dev `this.settlePackedItem()` with `msg.sender`, `balanceBefore` and the item (calldata bytes
    /// [item, item + length), inside the calldata) through {_callItem}.
    function _trySettlePackedItem(uint256 index, uint256 item, uint256 length, uint256 balanceBefore)
        private
        returns (bool ok, uint256 outcome)
    {
        bytes4 selector = this.settlePackedItem.selector;
        uint256 data;
        assembly ("memory-safe") {
            data := mload(0x40)
            mstore(data, selector)
            mstore(add(data, 0x04), caller())
            mstore(add(data, 0x24), balanceBefore)
            calldatacopy(add(data, 0x44), item, length)
        }
        return _callItem(index, data, length + 0x44);
    }

    /// @dev Reverts {InsufficientGasForItem} unless the call below can get its whole {ITEM_GAS_LIMIT}; then calls this
    /// contract with the `size` bytes of input at `data` (free memory) and that much gas, and returns whether it
    /// succeeded and an outcome word: the word it returned if it succeeded, else 1 if it used up its gas (no revert
    /// data, more than {_ITEM_GAS_EXHAUSTED} spent) and 0 otherwise. An external self-call gives each item its own
    /// call frame, so a failure anywhere in it (our checks, Permit2, the token, the balance-delta check) reverts that
    /// item and nothing else; and the caller's gas does not decide which items fail (a gas estimate that passes
    /// settles every item that can settle).
    function _callItem(uint256 index, uint256 data, uint256 size) private returns (bool ok, uint256 outcome) {
        bytes4 insufficientGas = InsufficientGasForItem.selector;
        assembly ("memory-safe") {
            let before := gas()
            if lt(before, _ITEM_GAS_REQUIRED) {
                // revert InsufficientGasForItem(index, before)
                let err := mload(0x40)
                mstore(err, insufficientGas)
                mstore(add(err, 0x04), index)
                mstore(add(err, 0x24), before)
                revert(err, 0x44)
            }
            ok := call(ITEM_GAS_LIMIT, address(), 0, data, size, 0x00, 0x20)
            switch ok
            case 0 { outcome := and(iszero(returndatasize()), gt(sub(before, gas()), _ITEM_GAS_EXHAUSTED)) }
            default { outcome := mload(0x00) }
        }
    }

    /// @dev The first {MAX_REVERT_DATA} bytes of the last call's return data, as a new `bytes` in memory: an
    /// item's callee may return megabytes, which the batch would pay to copy and to log.
    function _returnData() private pure returns (bytes memory data) {
        assembly ("memory-safe") {
            let size := returndatasize()
            if gt(size, MAX_REVERT_DATA) { size := MAX_REVERT_DATA }
            data := mload(0x40)
            mstore(data, size)
            returndatacopy(add(data, 0x20), 0, size)
            mstore(0x40, add(add(data, 0x20), and(add(size, 0x1f), not(0x1f))))
        }
    }

    /// @dev The item's owner (its low 20 bytes) and nonce, read without the decoder's checks.
    function _ownerAndNonce(Payment calldata payment) private pure returns (address owner, uint256 nonce) {
        assembly ("memory-safe") {
            owner := and(calldataload(add(payment, 0x20)), 0xffffffffffffffffffffffffffffffffffffffff)
            nonce := calldataload(add(payment, 0x80))
        }
    }

    /// @dev Rejects EOA signatures that Permit2 would accept but that are not canonical: a high `s` (the malleable
    /// twin of a valid signature), a `v` other than 27/28, or a length other than 65 or 64. The signature is the
    /// `length` calldata bytes at `offset`. The owner's code is read only for a signature that is not canonical:
    /// an owner with code (ERC-1271 wallet, EIP-7702 account) may sign anything, which Permit2 verifies.
    function _checkSignatureShape(address owner, uint256 offset, uint256 length) private view {
        bytes32 s;
        uint256 v;
        assembly ("memory-safe") {
            // `s` is bytes 32..63 of both forms; `v` (byte 64) is used only for the 65-byte form.
            s := calldataload(add(offset, 0x20))
            v := byte(0, calldataload(add(offset, 0x40)))
        }
        if (length == 64) {
            (s, v) = (s & _LOWER_255_BITS, 27); // EIP-2098: the top bit of `vs` is the parity
        } else if (length != 65) {
            if (owner.code.length != 0) return;
            revert MalformedSignature(length);
        }
        if ((v == 27 || v == 28) && uint256(s) <= _HALF_CURVE_ORDER) return;
        if (owner.code.length != 0) return;
        if (v != 27 && v != 28) revert InvalidSignatureV(uint8(v));
        revert MalleableSignature(s);
    }
}
