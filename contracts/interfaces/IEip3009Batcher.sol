// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IEip3009Batcher
/// @notice Settles many EIP-3009 `transferWithAuthorization` payments of one token (x402's exact scheme for
/// stablecoins such as USDC) in one transaction, each payment isolated: it succeeds or fails on its own, and
/// failures are reported per item by {PaymentFailed} and in the returned bit mask.
///
/// Roles. Only holders of {SETTLER_ROLE} (the facilitator's settling account) may call {settle}. EIP-3009's
/// `transferWithAuthorization` itself may be submitted by anyone; the role keeps this contract from being used by
/// others (and their gas caps) in og-settle's name.
///
/// Security assumptions:
/// - Isolation: each item runs in a self-call ({settleItem}) with exactly the batch's per-item gas cap. Before each
///   item the contract checks that enough gas remains for the callee to receive the whole cap despite the 63/64
///   rule (EIP-150), and reverts the whole batch with {InsufficientGasForItem} otherwise, so an item that runs out
///   of gas did so within its own cap ({ItemOutOfGas}), never because the caller short-changed the batch. A payer
///   with code (an ERC-1271 wallet, an EIP-7702 account) whose `isValidSignature` burns gas burns at most the cap.
///   At most {MAX_REVERT_DATA} bytes of an item's revert data are copied.
/// - Delivery: an item succeeds only if the payee's balance grew by exactly `value` ({TransferShortfall}
///   otherwise, which undoes the item, authorisation included): a fee-on-transfer or lying token cannot pass a
///   short payment for a full one.
/// - Replay and front-running: the token spends each (from, nonce) once; a replayed item, or one that someone
///   submitted first, fails alone with the token's error and the others settle. (The front-run payment still
///   reached its payee, by the other transaction.) Cross-chain replay is prevented by the chain id in the token's
///   EIP-712 domain.
/// - Tokens: the token must have code ({TokenWithoutCode}): a call to an address without code succeeds while
///   moving nothing.
interface IEip3009Batcher {
    /// @notice One EIP-3009 authorisation: the `TransferWithAuthorization` fields and the payer's signature
    /// (65 bytes `r ‖ s ‖ v` for an EOA, sent with the token's `(v, r, s)` form; anything else with its `bytes`
    /// form, checked by ERC-1271 when `from` has code).
    struct Authorization {
        address from;
        address to;
        uint256 value;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 nonce;
        bytes signature;
    }

    /// @notice A batch was processed.
    /// @param token The token.
    /// @param items The number of items.
    /// @param settledMask Bit i is set when item i settled.
    event BatchProcessed(address indexed token, uint256 items, uint256 settledMask);

    /// @notice Item `index` did not settle; nothing of it happened.
    /// @param index The item's position in the batch.
    /// @param from The payer.
    /// @param nonce The authorisation's nonce.
    /// @param reason The item's revert data (at most {MAX_REVERT_DATA} bytes), or {ItemOutOfGas}.
    event PaymentFailed(uint256 indexed index, address indexed from, bytes32 nonce, bytes reason);

    /// @notice The admin is the zero address.
    error ZeroAddress();

    /// @notice The token has no code.
    /// @param token The token.
    error TokenWithoutCode(address token);

    /// @notice The batch has no items.
    error EmptyBatch();

    /// @notice The batch has more than {MAX_ITEMS} items.
    /// @param max The limit.
    error TooManyItems(uint256 max);

    /// @notice Too little gas is left to give item `index` its whole cap.
    /// @param index The item.
    /// @param gasLeft `gasleft()` before the item.
    /// @param needed The cap, its 1/63 and a small reserve.
    error InsufficientGasForItem(uint256 index, uint256 gasLeft, uint256 needed);

    /// @notice {settleItem} was called by someone other than this contract.
    /// @param caller The caller.
    error OnlySelf(address caller);

    /// @notice Reported (not raised) for an item that failed without data after using at least 15/16 of its cap.
    /// @param cap The per-item gas cap.
    error ItemOutOfGas(uint256 cap);

    /// @notice The payee's balance did not grow by exactly the authorised value.
    /// @param to The payee.
    /// @param expected The authorised value.
    /// @param received What the payee's balance grew by.
    error TransferShortfall(address to, uint256 expected, uint256 received);

    /// @notice The role allowed to call {settle}.
    /// @return role keccak256("SETTLER_ROLE").
    function SETTLER_ROLE() external view returns (bytes32 role);

    /// @notice The most items one batch may hold (the settled mask is one word).
    /// @return max 256.
    function MAX_ITEMS() external view returns (uint256 max);

    /// @notice The most bytes of an item's revert data copied into {PaymentFailed}.
    /// @return max 132.
    function MAX_REVERT_DATA() external view returns (uint256 max);

    /// @notice Settle `items` of `token`, each isolated with `itemGas`. Only {SETTLER_ROLE}.
    /// @param token The EIP-3009 token.
    /// @param itemGas The gas cap of each item.
    /// @param items The authorisations.
    /// @return settledMask Bit i is set when item i settled.
    function settle(address token, uint256 itemGas, Authorization[] calldata items)
        external
        returns (uint256 settledMask);

    /// @notice One item: the token's `transferWithAuthorization`, then the payee's balance check. Only this
    /// contract may call it (from {settle}), so that a failing item is undone entirely.
    /// @param token The EIP-3009 token.
    /// @param item The authorisation.
    function settleItem(address token, Authorization calldata item) external;
}
