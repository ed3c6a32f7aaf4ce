// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IStockPaymentBatcher
/// @notice Settles many stock x402 payments (payloads signed by unmodified x402 clients, whose Permit2 spender is
/// one of the canonical x402 proxies) in one transaction, by calling the canonical exact or upto proxy once per
/// payment. Each payment succeeds or fails on its own; failures are reported per item, by event and in the
/// returned bit mask.
///
/// Roles. Only holders of {SETTLER_ROLE} (the facilitator's settling account) may call {settle}. This matters
/// for upto: stock upto payloads name the account allowed to settle them (`witness.facilitator`), and for payloads
/// settled through this contract that account is this contract, the `facilitatorAddress` og-settle announces in
/// `/supported`. Were {settle} open, anyone could settle such a payment for 1 wei and burn its nonce.
///
/// Batch encoding (`batch`, packed big-endian, no ABI padding). Fields shared by every item come first:
///
/// | bytes  | field                                                                                     |
/// |--------|-------------------------------------------------------------------------------------------|
/// | 1      | scheme: 0 = exact (calls the exact proxy), 1 = upto (calls the upto proxy)                |
/// | 8      | chain id the batch was built for (must equal `block.chainid`)                             |
/// | 4      | per-item gas cap                                                                          |
/// | 20     | token (the `permitted.token` of every item)                                               |
/// | 1      | recipient count k (1..255); then k distinct recipients (`witness.to`) of 20 bytes each    |
///
/// Then the items, back to back until the end of `batch`, at most {MAX_ITEMS}:
///
/// | bytes  | field                                                                                     |
/// |--------|-------------------------------------------------------------------------------------------|
/// | 20     | owner (the payer, `permit2Authorization.from`)                                            |
/// | 1      | recipient index into the table above                                                      |
/// | var    | permitted amount                                                                          |
/// | var    | upto only: the amount to charge (0 < charge <= permitted)                                 |
/// | var    | Permit2 nonce                                                                             |
/// | var    | Permit2 deadline                                                                          |
/// | var    | `witness.validAfter`                                                                      |
/// | 2 + n  | signature length n, then the signature                                                    |
///
/// A `var` integer is one length byte L (0..32) followed by L big-endian bytes (L = 0 encodes zero). The upto
/// witness's `facilitator` is not encoded: it is this contract.
///
/// Security assumptions:
/// - Isolation: each item is one call to the proxy with exactly the batch's per-item gas cap. Before each call
///   the contract checks that enough gas remains for the callee to receive the whole cap despite the 63/64 rule
///   (EIP-150), and reverts the whole batch with {InsufficientGasForItem} otherwise. So an item that runs out of
///   gas did so within its own cap (reported as {ItemOutOfGas}), never because the caller short-changed the
///   batch. A payer with code (an ERC-1271 wallet or an EIP-7702 account) whose `isValidSignature` burns gas can
///   burn at most the cap, and the items after it still get theirs. An item that failed without revert data after
///   using at least 15/16 of its cap is reported as {ItemOutOfGas} (an out-of-gas deep inside the call leaves up
///   to 1/64 of the gas unused per call level). At most {MAX_REVERT_DATA} bytes of an item's revert data are
///   copied, so a hostile callee cannot make the batch pay for copying large revert data.
/// - Gas: each payment still pays the canonical proxy's own call (ABI decoding, its storage reentrancy guard,
///   re-encoding for Permit2, its event); the batch saves the 21,000 base cost, the cold accesses to the proxy,
///   Permit2, the token and the recipient, and most of the calldata.
/// - Replay: Permit2's nonce bitmap spends each (owner, nonce) once; a replayed item fails alone with Permit2's
///   `InvalidNonce()`. Cross-chain replay is prevented by the chain id in Permit2's domain, and a batch built for
///   another chain is refused as a whole ({WrongChain}).
/// - Tokens: the token must have code ({TokenWithoutCode}): the proxies and Permit2 would otherwise report a
///   transfer that moved nothing as a success. Every recipient's balance must grow by exactly what the settled
///   items paid it (less what it paid as an owner), checked once per recipient after all items
///   ({RecipientDeltaMismatch}); a fee-on-transfer or otherwise lying token makes the whole batch revert, since
///   every item shares the token. The contract never holds tokens: Permit2 moves them from the payer straight to
///   the recipient, and no recipient may be this contract.
/// - Reentrancy: {settle} is guarded and role-gated, so neither a hostile token nor a payer's wallet can reenter it.
/// - Calldata: parsing is bounded by `batch`; a field that runs past its end reverts the whole batch with
///   {MalformedBatch} naming the offset.
interface IStockPaymentBatcher {
    /// @notice One payment of the batch failed; the others are unaffected.
    /// @param index The item's position in the batch (0-based).
    /// @param owner The payer.
    /// @param nonce The payment's Permit2 nonce.
    /// @param reason The first {MAX_REVERT_DATA} bytes of the proxy's revert data (a custom error from the proxy,
    /// Permit2 or the token, such as `InvalidNonce()`), or `ItemOutOfGas(gasCap)` when the item used its whole cap.
    event PaymentFailed(uint256 indexed index, address indexed owner, uint256 nonce, bytes reason);

    /// @notice A batch was processed.
    /// @param proxy The canonical proxy called (exact or upto).
    /// @param token The token of every item.
    /// @param items The number of items.
    /// @param settledMask Bit i is set when item i settled.
    event BatchProcessed(address indexed proxy, address indexed token, uint256 items, uint256 settledMask);

    /// @notice The reason reported for an item that used up its whole gas cap (never thrown by {settle} itself).
    /// @param gasCap The per-item gas cap of the batch.
    error ItemOutOfGas(uint256 gasCap);

    /// @notice The constructor was given the zero address.
    error ZeroAddress();

    /// @notice The batch's scheme byte is neither 0 (exact) nor 1 (upto).
    /// @param scheme The byte found.
    error UnknownScheme(uint8 scheme);

    /// @notice The batch was built for another chain.
    /// @param expected The chain id encoded in the batch.
    /// @param actual `block.chainid`.
    error WrongChain(uint256 expected, uint256 actual);

    /// @notice The batch's token has no code.
    /// @param token The token.
    error TokenWithoutCode(address token);

    /// @notice The recipient table is empty, lists a recipient twice, or lists this contract.
    /// @param recipient The offending recipient (zero for an empty table).
    error InvalidRecipientTable(address recipient);

    /// @notice The batch holds no item.
    error EmptyBatch();

    /// @notice The batch holds more than {MAX_ITEMS} items.
    /// @param maxItems {MAX_ITEMS}.
    error TooManyItems(uint256 maxItems);

    /// @notice The batch encoding is broken: a field runs past the end, a `var` integer is longer than 32 bytes, or
    /// a recipient index is out of range.
    /// @param offset Where the broken field starts, in bytes from the start of `batch` (0: the header is short).
    error MalformedBatch(uint256 offset);

    /// @notice Less gas is left than item `index` needs to receive its whole cap: the caller must send more gas.
    /// @param index The item.
    /// @param available `gasleft()` before the item.
    /// @param required What the item needs (cap + cap/63 + a small reserve).
    error InsufficientGasForItem(uint256 index, uint256 available, uint256 required);

    /// @notice A recipient's balance did not change by what the settled items paid it (fee-on-transfer token).
    /// @param recipient The recipient.
    /// @param expected The change the settled items account for (mod 2^256).
    /// @param actual The observed change (mod 2^256).
    error RecipientDeltaMismatch(address recipient, uint256 expected, uint256 actual);

    /// @notice The role allowed to call {settle}: the facilitator's settling account(s).
    /// @return The role id, `keccak256("SETTLER_ROLE")`.
    function SETTLER_ROLE() external view returns (bytes32);

    /// @notice The canonical x402 exact Permit2 proxy this contract calls for scheme 0.
    /// @return The proxy's address.
    function EXACT_PROXY() external view returns (address);

    /// @notice The canonical x402 upto Permit2 proxy this contract calls for scheme 1.
    /// @return The proxy's address.
    function UPTO_PROXY() external view returns (address);

    /// @notice The largest number of items in one batch (one bit each in the settled mask).
    /// @return 256.
    function MAX_ITEMS() external view returns (uint256);

    /// @notice How many bytes of an item's revert data {PaymentFailed} carries at most.
    /// @return 132 (a selector and four words).
    function MAX_REVERT_DATA() external view returns (uint256);

    /// @notice Settles a batch of stock x402 payments, each isolated, see the encoding above.
    /// @param batch The packed batch.
    /// @return settledMask Bit i is set when item i settled.
    function settle(bytes calldata batch) external returns (uint256 settledMask);

    // --- gasless approval (EIP-2612 permit for Permit2) ---------------------------------------------------------

    /// @notice A payer's EIP-2612 `permit` of the batch's token with Permit2 as the spender (the data x402's
    /// `eip2612GasSponsoring` extension carries), for {settleWithPermits}.
    /// @param owner The payer who signed it.
    /// @param value The approval amount.
    /// @param deadline The permit's deadline.
    /// @param v The signature's v.
    /// @param r The signature's r.
    /// @param s The signature's s.
    struct OwnerPermit {
        address owner;
        uint256 value;
        uint256 deadline;
        uint8 v;
        bytes32 r;
        bytes32 s;
    }

    /// @notice {settleWithPermits}: permit `index` was tried and the owner's allowance to Permit2 is still below
    /// its value (an invalid or expired permit); that owner's items then fail alone unless already approved.
    /// @param index The permit's position in `permits`.
    /// @param owner The payer.
    event PermitFailed(uint256 indexed index, address indexed owner);

    /// @notice {settleWithPermits} holds too little gas (`available`) to give permit `index` its whole gas cap.
    error InsufficientGasForPermit(uint256 index, uint256 available, uint256 required);

    /// @notice Like {settle}, after applying EIP-2612 permits of the batch's token for Permit2, so that payers who
    /// never approved Permit2 pay in the same transaction.
    /// @dev Each permit is skipped when its owner's allowance to Permit2 already covers its value, and tried
    /// otherwise, with at most 100,000 gas per token call (the batch reverts {InsufficientGasForPermit} if it
    /// cannot forward that much). A failing permit never reverts the batch: a permit someone else submitted first
    /// leaves the approval in place, and the owner's items settle; an invalid one is reported by {PermitFailed},
    /// and the owner's items fail alone on the missing allowance. The permits run after the recipients' balances
    /// are recorded, so a token misbehaving in `permit` is still caught by {RecipientDeltaMismatch}.
    /// @param batch The packed batch (see {settle}).
    /// @param permits The permits, for the batch's token.
    /// @return settledMask Bit i is set when item i settled.
    function settleWithPermits(bytes calldata batch, OwnerPermit[] calldata permits)
        external
        returns (uint256 settledMask);
}
