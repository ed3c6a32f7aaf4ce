// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IEIP3009
/// @notice EIP-3009 "Transfer With Authorization" as USDC (FiatToken v2.2) offers it: a payer signs an EIP-712
/// authorisation off chain, and anyone (`transferWithAuthorization`) or only the payee
/// (`receiveWithAuthorization`) submits it. Nonces are random 32-byte values, each usable once per authorizer,
/// and not sequential. Every signed function has two forms: `(v, r, s)` for EOAs, and `bytes signature`, which
/// is checked with ERC-1271 when the authorizer has code (a contract wallet) and as a 65-byte ECDSA signature
/// otherwise. x402's exact scheme pays stablecoins with `transferWithAuthorization` by default.
///
/// EIP-712 types (the token's own domain: `{name, version, chainId, verifyingContract}`):
/// - `TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)`
/// - `ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)`
/// - `CancelAuthorization(address authorizer,bytes32 nonce)`
///
/// An authorisation is valid strictly after `validAfter` and strictly before `validBefore` (block timestamps).
interface IEIP3009 {
    /// @notice An authorisation was used: its nonce is spent.
    /// @param authorizer The payer who signed it.
    /// @param nonce The authorisation's nonce.
    event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce);

    /// @notice An authorisation was cancelled before use: its nonce is spent.
    /// @param authorizer The payer who signed the cancellation.
    /// @param nonce The cancelled nonce.
    event AuthorizationCanceled(address indexed authorizer, bytes32 indexed nonce);

    /// @notice The authorisation is not valid yet.
    /// @param validAfter The signed lower bound (exclusive).
    /// @param timestamp The block timestamp.
    error AuthorizationNotYetValid(uint256 validAfter, uint256 timestamp);

    /// @notice The authorisation has expired.
    /// @param validBefore The signed upper bound (exclusive).
    /// @param timestamp The block timestamp.
    error AuthorizationExpired(uint256 validBefore, uint256 timestamp);

    /// @notice The nonce was already used or cancelled.
    /// @param authorizer The payer.
    /// @param nonce The nonce.
    error AuthorizationUsedOrCanceled(address authorizer, bytes32 nonce);

    /// @notice The signature is not the authorizer's (ECDSA, or ERC-1271 for a contract).
    /// @param authorizer Who should have signed.
    error InvalidSignature(address authorizer);

    /// @notice `receiveWithAuthorization` was called by someone other than the payee.
    /// @param caller The caller.
    /// @param payee The authorisation's `to`.
    error CallerMustBePayee(address caller, address payee);

    /// @notice Whether `authorizer`'s `nonce` is used or cancelled.
    /// @param authorizer The payer.
    /// @param nonce The nonce.
    /// @return used True once the nonce is used or cancelled.
    function authorizationState(address authorizer, bytes32 nonce) external view returns (bool used);

    /// @notice Move `value` from `from` to `to` with `from`'s signed authorisation; anyone may submit it.
    /// @param from The payer (signer).
    /// @param to The payee.
    /// @param value The amount, in the token's atomic units.
    /// @param validAfter Valid strictly after this timestamp.
    /// @param validBefore Valid strictly before this timestamp.
    /// @param nonce A unique 32-byte nonce chosen by the payer.
    /// @param v The signature's v (27 or 28).
    /// @param r The signature's r.
    /// @param s The signature's s (lower half of the curve order).
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external;

    /// @notice {transferWithAuthorization} with a packed signature: ERC-1271 when `from` has code, else ECDSA.
    /// @param from The payer (signer).
    /// @param to The payee.
    /// @param value The amount, in the token's atomic units.
    /// @param validAfter Valid strictly after this timestamp.
    /// @param validBefore Valid strictly before this timestamp.
    /// @param nonce A unique 32-byte nonce chosen by the payer.
    /// @param signature `r ‖ s ‖ v` for an EOA, or whatever `from`'s `isValidSignature` accepts.
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes memory signature
    ) external;

    /// @notice Like {transferWithAuthorization}, but only `to` may submit it, so the authorisation cannot be
    /// front-run into a plain transfer while the payee's own call (for example a deposit) is pending.
    /// @param from The payer (signer).
    /// @param to The payee, who must be the caller.
    /// @param value The amount, in the token's atomic units.
    /// @param validAfter Valid strictly after this timestamp.
    /// @param validBefore Valid strictly before this timestamp.
    /// @param nonce A unique 32-byte nonce chosen by the payer.
    /// @param v The signature's v (27 or 28).
    /// @param r The signature's r.
    /// @param s The signature's s.
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external;

    /// @notice {receiveWithAuthorization} with a packed signature: ERC-1271 when `from` has code, else ECDSA.
    /// @param from The payer (signer).
    /// @param to The payee, who must be the caller.
    /// @param value The amount, in the token's atomic units.
    /// @param validAfter Valid strictly after this timestamp.
    /// @param validBefore Valid strictly before this timestamp.
    /// @param nonce A unique 32-byte nonce chosen by the payer.
    /// @param signature `r ‖ s ‖ v` for an EOA, or whatever `from`'s `isValidSignature` accepts.
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes memory signature
    ) external;

    /// @notice Cancel an unused authorisation: its nonce can then never be used.
    /// @param authorizer The payer who signed the cancellation.
    /// @param nonce The nonce to cancel.
    /// @param v The signature's v.
    /// @param r The signature's r.
    /// @param s The signature's s.
    function cancelAuthorization(address authorizer, bytes32 nonce, uint8 v, bytes32 r, bytes32 s) external;

    /// @notice {cancelAuthorization} with a packed signature: ERC-1271 when `authorizer` has code, else ECDSA.
    /// @param authorizer The payer who signed the cancellation.
    /// @param nonce The nonce to cancel.
    /// @param signature `r ‖ s ‖ v` for an EOA, or whatever `authorizer`'s `isValidSignature` accepts.
    function cancelAuthorization(address authorizer, bytes32 nonce, bytes memory signature) external;
}
