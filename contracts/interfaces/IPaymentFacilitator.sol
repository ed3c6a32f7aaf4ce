// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ISignatureTransfer} from "permit2/interfaces/ISignatureTransfer.sol";

/// @title IPaymentFacilitator
/// @notice The Permit2 `spender` for x402 v2 payments in OPG (or any plain ERC-20): it turns a payer's
/// Permit2 `PermitWitnessTransferFrom` signature into a transfer from the payer straight to the recipient,
/// singly or in batches where every item succeeds or fails on its own.
///
/// Signed messages. Every payment is an EIP-712 `PermitWitnessTransferFrom` over Permit2's domain
/// `EIP712Domain(string name,uint256 chainId,address verifyingContract)` = ("Permit2", chain id, Permit2),
/// with no version field, and `spender` = this contract. Four witness structs are accepted; all are named
/// `Witness` and differ in their fields, so their type hashes differ and a signature for one scheme can
/// never be settled as another:
///
/// | Scheme     | Witness struct                                                                     |
/// |------------|------------------------------------------------------------------------------------|
/// | Exact      | `Witness(address to,uint256 validAfter)` (x402 v2 exact, unchanged)                |
/// | Upto       | `Witness(address to,address facilitator,uint256 validAfter)` (x402 v2 upto)        |
/// | ExactBound | `Witness(address to,uint256 validAfter,bytes32 requestHash)`                       |
/// | UptoBound  | `Witness(address to,address facilitator,uint256 validAfter,bytes32 requestHash)`   |
///
/// The full type a client signs is
/// `PermitWitnessTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline,Witness witness)`
/// `TokenPermissions(address token,uint256 amount)` followed by the scheme's `Witness(...)` struct, for
/// example for ExactBound:
/// `PermitWitnessTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline,Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,uint256 validAfter,bytes32 requestHash)`.
/// (Referenced structs follow in alphabetical order: `TokenPermissions` < `Witness`.) The string handed to
/// Permit2 is the tail from `Witness witness)` on, see {witnessTypeString}.
///
/// Bound schemes: `requestHash` links the payment to the one request it pays for. og-settle's convention
/// (`og_settle.request_binding`) is a commitment, `keccak256(keccak256("og-settle/request-binding/v1") ‖
/// inputHash ‖ requestNonce)`: the inference's input hash (OpenGradient's request hash, the `inputHash` of its
/// settlement record or Merkle leaf) and a 32-byte nonce picked for that request, so identical requests (one
/// input hash) get distinct request hashes. It is signed by the payer and emitted in {PaymentSettled};
/// revealing (inputHash, requestNonce) proves which request a settled payment paid for. This contract does not
/// interpret it.
///
/// Security assumptions:
/// - Replay: Permit2's unordered nonce bitmap spends each (owner, nonce) once; this contract keeps no nonce
///   state of its own. Cross-chain replay is prevented by the chain id in Permit2's domain; cross-contract
///   replay by `spender` (this contract) being signed. A signature for one scheme cannot be replayed as
///   another because the witness type hashes differ.
/// - Front-running, exact schemes: anyone who sees an exact payload (for example in the mempool) can submit
///   it, but can only cause the very same transfer: the same amount (always the full permitted amount),
///   from the same payer, to the signed `witness.to`, with the same bound `requestHash`. The worst case is
///   that the payment settles in someone else's transaction; the relayer's own {settle} then reverts with
///   {NonceAlreadyUsed}, and in {settleBatch} that item fails alone (reported through {PaymentFailed}).
/// - Front-running, upto schemes: only `witness.facilitator` may settle (`msg.sender` of {settle} or
///   {settleBatch}), because the settled amount is chosen at settlement time.
/// - Signature malleability: for payers without code, 65-byte and 64-byte (EIP-2098) signatures must have a
///   low `s` (<= secp256k1n / 2) and `v` in {27, 28}; Permit2 itself accepts high-s signatures. Payers with
///   code (ERC-1271 wallets, EIP-7702 accounts) are verified by Permit2 through `isValidSignature`.
/// - Amounts: a settled amount is below 2^128 ({AmountTooLarge}), so that the packed forms and {PaymentSettled}
///   carry it in 16 bytes.
/// - Tokens: the token must have code (an empty address would "succeed" a transfer), and the recipient's
///   balance must grow by exactly the settled amount, so fee-on-transfer or rebasing-down tokens are
///   rejected ({TransferShortfall}) and never recorded as paid. The contract never holds tokens: Permit2
///   moves them from the payer straight to `witness.to`, and `witness.to` may not be this contract.
/// - Reentrancy: {settle} and {settleBatch} are guarded; a token that calls back into the facilitator
///   during a transfer makes that payment revert.
/// - Admin: there is none. No one can move users' funds, pause, or upgrade the contract.
/// - Gas griefing: a payer with code (an ERC-1271 wallet, or an EOA that delegates by EIP-7702 and still signs
///   x402 payloads with its ordinary key) is asked `isValidSignature` by Permit2, and that code may burn all the
///   gas it gets or revert with megabytes of data. In {settleBatch} each item's call gets at most
///   200,000 gas (`ITEM_GAS_LIMIT`); before each item the batch checks that it holds enough for that cap to apply despite
///   the 63/64 rule (else it reverts {InsufficientGasForItem}, so the caller's gas limit never decides which
///   items fail), and it copies and logs at most 256 bytes of an item's revert data. A griefing
///   item therefore costs the batch at most about one cap and fails with {ItemGasLimitExceeded}. {settle} has no
///   cap: its caller pays for the one payment it chose. Relayers should still simulate or isolate payers with
///   code off chain, so that the cap is rarely paid.
/// - Calldata: a batch is bounded by the block gas limit only; each item is processed in O(1), and
///   {MAX_BATCH_SIZE} bounds the batch length so a caller cannot build a result array that cannot be returned.
interface IPaymentFacilitator {
    /// @notice The four witness layouts a payer may sign (see the contract-level table).
    enum Scheme {
        Exact,
        Upto,
        ExactBound,
        UptoBound
    }

    /// @notice One payment: a Permit2 authorisation, its witness fields, and what to settle.
    /// @param scheme Which witness struct the payer signed.
    /// @param owner The payer (x402 `permit2Authorization.from`).
    /// @param permit The signed token, permitted amount, nonce and deadline.
    /// @param to The recipient, `witness.to` (x402 `payTo`).
    /// @param facilitator `witness.facilitator` for the upto schemes, the only address allowed to settle;
    /// must be zero for the exact schemes.
    /// @param validAfter `witness.validAfter`: the payment cannot settle before this timestamp.
    /// @param requestHash `witness.requestHash` for the bound schemes; must be zero for the unbound ones.
    /// @param amount The amount to transfer. Exact schemes: must equal `permit.permitted.amount`. Upto
    /// schemes: any non-zero amount up to `permit.permitted.amount`.
    /// @param signature The payer's signature: 65 bytes (r, s, v), 64 bytes (EIP-2098), or an ERC-1271 blob.
    struct Payment {
        Scheme scheme;
        address owner;
        ISignatureTransfer.PermitTransferFrom permit;
        address to;
        address facilitator;
        uint256 validAfter;
        bytes32 requestHash;
        uint256 amount;
        bytes signature;
    }

    /// @notice The outcome of one item of {settleBatch}.
    /// @param settled Whether the payment was transferred.
    /// @param reason The 4-byte selector of the error that stopped it (zero when settled; zero with
    /// `settled == false` when the item ran out of gas or reverted without data).
    struct Result {
        bool settled;
        bytes4 reason;
    }

    /// @notice A payment moved `amount` of `token` from `payer` to `to` through Permit2.
    /// @dev The event's data is packed, not ABI-encoded (the rich record costs 89 or 121 bytes of log data instead
    /// of six words): `to` (20 bytes) ‖ `token` (20) ‖ `amount` (16) ‖ `nonce` (32) ‖ `scheme` (1), and for the bound
    /// schemes `requestHash` (32) after them. `amount` is what the recipient received (equal to the amount
    /// transferred), `nonce` the Permit2 nonce spent, `scheme` the {Scheme} the payer signed, and `requestHash` the
    /// bound request hash (the unbound schemes have none). Only `payer` is indexed: (payer, nonce) is what a
    /// settlement is looked up by. `og_settle.clients.SettledPayment.from_log` decodes it.
    /// @param payer The Permit2 owner who signed.
    event PaymentSettled(address indexed payer);

    /// @notice Item `index` of a {settleBatch} call did not settle; nothing of it was written.
    /// @param index The item's position in the batch.
    /// @param payer The item's owner.
    /// @param nonce The item's Permit2 nonce (still unspent unless it was already spent before).
    /// @param reason The revert data of the failure, cut to its first 256 bytes (a custom error of
    /// this contract or of Permit2, or {ItemGasLimitExceeded} when the item used up its gas cap).
    event PaymentFailed(uint256 indexed index, address indexed payer, uint256 nonce, bytes reason);

    /// @notice The amount to settle is zero.
    error ZeroAmount();
    /// @notice The payer is the zero address.
    error ZeroOwner();
    /// @notice The recipient is the zero address, this contract, or the payer itself.
    error InvalidRecipient(address to);
    /// @notice The payment's `validAfter` is still in the future.
    error PaymentNotYetValid(uint256 validAfter, uint256 timestamp);
    /// @notice The permit's deadline has passed.
    error PaymentExpired(uint256 deadline, uint256 timestamp);
    /// @notice The amount to settle is 2^128 or more (the packed forms and {PaymentSettled} carry 16 bytes; no
    /// token's payment comes near).
    error AmountTooLarge(uint256 amount);
    /// @notice An exact-scheme payment asked to move something other than the full permitted amount.
    error ExactAmountMismatch(uint256 amount, uint256 permitted);
    /// @notice An upto-scheme payment asked to move more than the permitted amount.
    error AmountExceedsPermitted(uint256 amount, uint256 permitted);
    /// @notice An upto-scheme payment was settled by someone other than `witness.facilitator`.
    error UnauthorizedFacilitator(address caller, address facilitator);
    /// @notice A field that is not part of the scheme's witness was set (facilitator for exact,
    /// requestHash for unbound), so the caller misdescribed what was signed.
    error FieldNotInWitness(Scheme scheme);
    /// @notice The token address has no code.
    error TokenHasNoCode(address token);
    /// @notice The payer's Permit2 nonce has already been spent (or invalidated).
    error NonceAlreadyUsed(address owner, uint256 nonce);
    /// @notice An EOA signature has a high `s` value (the malleable twin of a valid signature).
    error MalleableSignature(bytes32 s);
    /// @notice An EOA signature has a `v` other than 27 or 28.
    error InvalidSignatureV(uint8 v);
    /// @notice An EOA signature is neither 65 nor 64 bytes long.
    error MalformedSignature(uint256 length);
    /// @notice The recipient's balance grew by less (or more) than the amount transferred: a
    /// fee-on-transfer, rebasing or otherwise non-standard token.
    error TransferShortfall(address token, address to, uint256 expected, uint256 received);
    /// @notice {settleOne} was called by someone other than this contract.
    error OnlySelf(address caller);
    /// @notice A batch was empty or longer than {MAX_BATCH_SIZE}.
    error InvalidBatchSize(uint256 size);
    /// @notice {settleBatch} holds too little gas (`gasLeft`) for item `index` to get its whole gas cap.
    error InsufficientGasForItem(uint256 index, uint256 gasLeft);
    /// @notice A batch item used up its gas cap `gasLimit` without returning or reverting with data (reported in
    /// {PaymentFailed} and {Result}; never thrown by the batch itself).
    error ItemGasLimitExceeded(uint256 gasLimit);
    /// @notice A packed payment names an unknown scheme, or is shorter than its scheme's fields (`length` bytes
    /// including the signature).
    error MalformedPackedPayment(uint256 scheme, uint256 length);
    /// @notice The packed batch item framed at calldata offset `offset` runs past the end of the calldata.
    error MalformedPackedBatch(uint256 offset);
    /// @notice The Permit2 address given at deployment has no code.
    error InvalidPermit2(address permit2);

    /// @notice The Permit2 contract this facilitator spends through.
    function PERMIT2() external view returns (ISignatureTransfer);

    /// @notice The largest batch {settleBatch} accepts.
    function MAX_BATCH_SIZE() external view returns (uint256);

    /// @notice Settles one packed payment, reverting with a named error if it cannot: the cheapest way to settle.
    /// @dev The payment is the calldata after the selector (the function declares no parameters, so a plain ABI
    /// encoder sends the selector and the packed bytes after it). Packed layout, big-endian, no padding:
    ///
    /// | bytes | field                                                                    |
    /// |-------|--------------------------------------------------------------------------|
    /// | 1     | `scheme` ({Scheme}: bit 0 = upto, bit 1 = bound)                        |
    /// | 20    | `owner`                                                                  |
    /// | 20    | `permit.permitted.token`                                                 |
    /// | 16    | `permit.permitted.amount` (a uint128)                                    |
    /// | 32    | `permit.nonce`                                                           |
    /// | 6     | `permit.deadline` (a uint48)                                             |
    /// | 20    | `to`                                                                     |
    /// | 6     | `validAfter` (a uint48)                                                  |
    /// | 20+16 | upto schemes only: `facilitator`, then `amount` (the amount to settle, a uint128) |
    /// | 32    | bound schemes only: `requestHash`                                        |
    /// | rest  | `signature`: 65 bytes (r, s, v), 64 bytes (EIP-2098 r, vs), or an ERC-1271 blob |
    ///
    /// Amounts above 2^128 - 1 and timestamps above 2^48 - 1 (which x402 payments do not use: a price, and now
    /// plus a timeout) have no packed form; such a payment is settled through {settle}. Zero bytes cost calldata
    /// gas too, so the narrower fields save about 270 gas a payment against full words.
    /// The exact schemes settle the permitted amount; fields the scheme's witness lacks are absent, so they cannot
    /// be misdescribed. Checks and their order are {settle}'s; a payment too short for its scheme's fields, or with
    /// an unknown scheme, reverts {MalformedPackedPayment}.
    /// @return amount The amount transferred to `to`.
    function settlePacked() external returns (uint256 amount);

    /// @notice Settles many packed payments in one transaction; each item succeeds or fails on its own, exactly as
    /// in {settleBatch}.
    /// @dev The calldata after the selector is the items back to back, each a 2-byte big-endian length followed by
    /// that many bytes of packed payment ({settlePacked}'s layout). An item running past the end of the calldata
    /// reverts the batch ({MalformedPackedBatch}); so do no items or more than {MAX_BATCH_SIZE}
    /// ({InvalidBatchSize}), reentrancy, and too little gas for the next item's cap ({InsufficientGasForItem}).
    /// @return settled Bit `i` is set if item `i` settled (failures are reported by {PaymentFailed}).
    function settleBatchPacked() external returns (uint256 settled);

    /// @notice Settles one item of {settleBatchPacked} in its own call frame, so that a failure reverts only that
    /// item. Only callable by this contract; reverts {OnlySelf} otherwise.
    /// @dev Calldata after the selector: the batch's `msg.sender` (a word), the recipient's balance before (a word,
    /// as for {settleOne}), then the packed item.
    /// @return balanceAfter The recipient's balance of the token after this item's transfer.
    function settlePackedItem() external returns (uint256 balanceAfter);

    /// @notice Settles one ABI-encoded payment, reverting with a named error if it cannot.
    /// @dev Check order: scheme fields, time window, amounts, parties, caller (upto), signature shape; then the
    /// recipient's balance, which checks the token's code ({TokenHasNoCode}); then the Permit2 transfer (Permit2
    /// checks the nonce first, whose `InvalidNonce()` is reported as {NonceAlreadyUsed}); then the recipient's
    /// balance delta and the event. {settlePacked} settles the same payment for less calldata.
    /// Reverts with Permit2's own errors (`InvalidSigner`, `InvalidSignature`, `InvalidContractSignature`,
    /// `InvalidAmount`) when Permit2 rejects the signature, and with the token's error when it lacks
    /// balance or allowance.
    /// @param payment The payment to settle.
    /// @return amount The amount transferred to `payment.to`.
    function settle(Payment calldata payment) external returns (uint256 amount);

    /// @notice Settles many payments in one transaction; each item succeeds or fails on its own.
    /// @dev A failing item emits {PaymentFailed} with its revert reason (bounded) and leaves no trace (its nonce
    /// stays unspent unless it already was); the others settle. A spent nonce is reported as {NonceAlreadyUsed}.
    /// The recipient's balance is read once per run of consecutive settled items with the same token and
    /// recipient and carried from item to item; each item's balance delta is still checked on its own. For upto
    /// items, `msg.sender` must be the item's `witness.facilitator`. Each item's call gets at most 200,000 gas.
    /// Reverts only for a bad batch size, reentrancy, or too little gas left for the next item's cap
    /// ({InsufficientGasForItem}).
    /// @param payments The payments, at most {MAX_BATCH_SIZE}.
    /// @return results One entry per item, in order.
    function settleBatch(Payment[] calldata payments) external returns (Result[] memory results);

    /// @notice Settles one item of a batch in its own call frame, so that a failure reverts only that item.
    /// @dev Only callable by this contract (from {settleBatch}); reverts {OnlySelf} otherwise. Checks as {settle}.
    /// @param payment The item.
    /// @param caller The `msg.sender` of {settleBatch}, checked against `witness.facilitator` for upto.
    /// @param balanceBefore The recipient's balance of the item's token when the batch already knows it (the
    /// balance left by the last settled item with the same token and recipient; nothing can change it in
    /// between, and a failed item reverts all its state), or `type(uint256).max` to have it read here. The
    /// balance delta is checked against it per item.
    /// @return balanceAfter The recipient's balance of the token after this item's transfer.
    function settleOne(Payment calldata payment, address caller, uint256 balanceBefore)
        external
        returns (uint256 balanceAfter);

    /// @notice The witness type string handed to Permit2 for `scheme` (the tail from `Witness witness)`).
    function witnessTypeString(Scheme scheme) external pure returns (string memory);

    /// @notice The EIP-712 hash of the payment's witness struct, as passed to Permit2.
    function witnessHash(Payment calldata payment) external pure returns (bytes32);

    /// @notice The EIP-712 digest Permit2 checks the payer's signature against (with `spender` = this
    /// contract and Permit2's domain separator on this chain).
    function permitDigest(Payment calldata payment) external view returns (bytes32);

    // --- gasless approval (EIP-2612 permit for Permit2) ---------------------------------------------------------

    /// @notice A payer's EIP-2612 `permit` of the payment's token, with Permit2 as the spender: it lets a payer
    /// who never approved Permit2 pay without sending a transaction. Typed data: the token's own EIP-712 domain,
    /// `Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)` with `owner` the
    /// payer, `spender` Permit2 and `nonce` the token's `nonces(owner)`.
    /// @param value The approval amount; it must cover the payment's amount.
    /// @param deadline The permit's deadline (the token checks it).
    /// @param v The signature's v.
    /// @param r The signature's r.
    /// @param s The signature's s.
    struct TokenPermit {
        uint256 value;
        uint256 deadline;
        uint8 v;
        bytes32 r;
        bytes32 s;
    }

    /// @notice An EIP-2612 permit for item `index` of a {settleBatchWithPermits} call (its owner and token).
    /// @param index The item the permit approves Permit2 for.
    /// @param permit The permit.
    struct ItemPermit {
        uint256 index;
        TokenPermit permit;
    }

    /// @notice {settleWithPermit}: after trying the permit, the payer's allowance to Permit2 (`allowance`) still
    /// falls short of the payment's `needed` amount (the permit was invalid, expired, spent without approving
    /// enough, or for too small a value).
    error PermitDidNotApprove(address token, address owner, uint256 allowance, uint256 needed);

    /// @notice {settleBatchWithPermits}: a permit names item `index` of a batch of `size` items.
    error InvalidPermitIndex(uint256 index, uint256 size);

    /// @notice Like {settle}, for a payer who may not have approved Permit2 yet: the payer's EIP-2612 `permit`
    /// is applied first, in the same transaction.
    /// @dev After {settle}'s checks, when the payer's allowance to Permit2 is below the amount, `permit` is called
    /// on the token; the outcome is judged by the allowance alone, so a permit that was front-run (someone
    /// submitted it first, spending the token's nonce) does not stop the payment. When the allowance already
    /// covers the amount the permit is not called at all. Reverts {PermitDidNotApprove} when the allowance still
    /// falls short, else as {settle}.
    /// @param permit The payer's EIP-2612 permit of the payment's token for Permit2.
    /// @param payment The payment to settle.
    /// @return amount The amount transferred to `payment.to`.
    function settleWithPermit(TokenPermit calldata permit, Payment calldata payment) external returns (uint256 amount);

    /// @notice Like {settleBatch}, with EIP-2612 permits for some items' payers, applied before the items.
    /// @dev Each permit is tried for its item's owner and token unless that owner's allowance to Permit2 already
    /// covers the item's amount; each attempt gets at most 100,000 gas (the batch reverts
    /// {InsufficientGasForItem} with the item's index if it cannot forward that much despite the 63/64 rule). A
    /// permit that fails is ignored: its item then settles only if the allowance is there anyway (for example
    /// because the permit was front-run), and otherwise fails alone with the token's error, as in {settleBatch}.
    /// Reverts {InvalidPermitIndex} for a permit naming no item.
    /// @param payments The payments, at most {MAX_BATCH_SIZE}.
    /// @param permits The permits, each naming its item.
    /// @return results One entry per item, in order.
    function settleBatchWithPermits(Payment[] calldata payments, ItemPermit[] calldata permits)
        external
        returns (Result[] memory results);

    /// @notice {permitDigest} of a packed payment ({settlePacked}'s layout, signature included).
    function permitDigestPacked(bytes calldata payment) external view returns (bytes32);
}
