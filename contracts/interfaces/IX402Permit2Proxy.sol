// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ISignatureTransfer} from "permit2/interfaces/ISignatureTransfer.sol";

/// @title IX402Permit2Proxy
/// @notice What the canonical x402 Permit2 proxies share: the x402 exact proxy at
/// 0x402085c248EeA27D92E8b30b2C58ed07f9E20001 and the upto proxy at 0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002,
/// CREATE2-deployed by the x402 project at the same address on every chain. Every stock x402 client (PyPI `x402`,
/// npm `x402/evm`, OpenGradient's `og-x402`) names one of them as the `spender` of its Permit2
/// `PermitWitnessTransferFrom` signature, so a stock payload can only be settled by calling that proxy.
///
/// This interface transcribes the proxies' published ABI (functions, events, errors) so og-settle can call
/// them by address; og-settle never depends on their bytecode. On the local replica, where they cannot exist,
/// `StandInX402ExactProxy` and `StandInX402UptoProxy` implement it.
///
/// Behaviour of `settle` (both proxies, in this order; upto checks the amount bound before): the settled amount
/// must be non-zero ({InvalidAmount}), `owner` and `witness.to` non-zero ({InvalidOwner}, {InvalidDestination}),
/// `block.timestamp >= witness.validAfter` ({PaymentTooEarly}); then Permit2's `permitWitnessTransferFrom`
/// moves the tokens from `owner` straight to `witness.to` (its own errors, such as `InvalidNonce()`,
/// `SignatureExpired(uint256)` or `InvalidSigner()`, and the token's, bubble up unchanged), and {Settled} is
/// emitted. Both functions are non-reentrant (a storage-based guard).
///
/// Security notes: the proxies hold no tokens and have no owner. They do not check that the token has code (a
/// token address without code "transfers" successfully and spends the nonce) nor that the recipient received the
/// full amount (fee-on-transfer tokens): callers that need either must check it themselves.
interface IX402Permit2Proxy {
    /// @notice EIP-2612 permit parameters for `settleWithPermit`, which approves Permit2 before settling.
    /// @param value The approval amount; must equal the Permit2 permitted amount.
    /// @param deadline The permit's deadline.
    /// @param r The signature's r.
    /// @param s The signature's s.
    /// @param v The signature's v.
    struct EIP2612Permit {
        uint256 value;
        uint256 deadline;
        bytes32 r;
        bytes32 s;
        uint8 v;
    }

    /// @notice A `settle` call transferred the tokens. It carries no parameters: the token's `Transfer` event
    /// and Permit2's spent nonce say what moved.
    event Settled();

    /// @notice A `settleWithPermit` call transferred the tokens.
    event SettledWithPermit();

    /// @notice The token's EIP-2612 `permit` reverted with `Error(string)`; settlement still went on.
    /// @param token The token whose `permit` was called.
    /// @param owner The payer.
    /// @param reason The revert reason.
    event EIP2612PermitFailedWithReason(address indexed token, address indexed owner, string reason);

    /// @notice The token's EIP-2612 `permit` reverted with `Panic(uint256)`; settlement still went on.
    /// @param token The token whose `permit` was called.
    /// @param owner The payer.
    /// @param errorCode The panic code.
    event EIP2612PermitFailedWithPanic(address indexed token, address indexed owner, uint256 errorCode);

    /// @notice The token's EIP-2612 `permit` reverted otherwise (custom error, empty data, out of gas).
    /// @param token The token whose `permit` was called.
    /// @param owner The payer.
    /// @param data The raw revert data.
    event EIP2612PermitFailedWithData(address indexed token, address indexed owner, bytes data);

    /// @notice The constructor was given the zero address as Permit2.
    error InvalidPermit2Address();

    /// @notice `witness.to` is the zero address.
    error InvalidDestination();

    /// @notice `block.timestamp` is before the signed `witness.validAfter`.
    error PaymentTooEarly();

    /// @notice `owner` is the zero address.
    error InvalidOwner();

    /// @notice The amount to settle is zero (a no-op settlement would only burn the nonce).
    error InvalidAmount();

    /// @notice `settleWithPermit`: the EIP-2612 permit's value differs from the Permit2 permitted amount.
    error Permit2612AmountMismatch();

    /// @notice The Permit2 contract the proxy transfers through (the canonical Permit2, an immutable).
    /// @return The Permit2 address.
    function PERMIT2() external view returns (ISignatureTransfer);

    /// @notice The witness type string the proxy hands to Permit2 (from `Witness witness)` on).
    /// @return The type string.
    function WITNESS_TYPE_STRING() external view returns (string memory);

    /// @notice The EIP-712 type hash of the proxy's `Witness` struct.
    /// @return The type hash.
    function WITNESS_TYPEHASH() external view returns (bytes32);
}

/// @title IX402ExactPermit2Proxy
/// @notice The x402 exact proxy: transfers exactly the permitted amount to the signed `witness.to`. Anyone may
/// call it; a copied payload can only cause the very same transfer.
interface IX402ExactPermit2Proxy is IX402Permit2Proxy {
    /// @notice The exact witness, `Witness(address to,uint256 validAfter)`.
    /// @param to The recipient (the x402 `payTo`).
    /// @param validAfter The earliest settlement time (stock clients sign 0); Permit2's deadline is the latest.
    struct Witness {
        address to;
        uint256 validAfter;
    }

    /// @notice Settles a stock x402 exact payment: `permit.permitted.amount` moves from `owner` to `witness.to`.
    /// @param permit The signed Permit2 permit (token, amount, nonce, deadline).
    /// @param owner The payer, who signed.
    /// @param witness The signed witness.
    /// @param signature The payer's signature (65 or 64 bytes for an EOA; anything its `isValidSignature`
    /// accepts for a payer with code).
    function settle(
        ISignatureTransfer.PermitTransferFrom calldata permit,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external;

    /// @notice Like {settle}, after trying the token's EIP-2612 `permit` to approve Permit2 (a failed permit is
    /// reported by an `EIP2612PermitFailedWith*` event, not a revert).
    /// @param permit2612 The EIP-2612 permit; its value must equal the permitted amount.
    /// @param permit The signed Permit2 permit.
    /// @param owner The payer.
    /// @param witness The signed witness.
    /// @param signature The payer's Permit2 signature.
    function settleWithPermit(
        EIP2612Permit calldata permit2612,
        ISignatureTransfer.PermitTransferFrom calldata permit,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external;
}

/// @title IX402UptoPermit2Proxy
/// @notice The x402 upto proxy: transfers a caller-chosen amount up to the permitted one, and only
/// `witness.facilitator` may call it (the settled amount is chosen at settlement time).
interface IX402UptoPermit2Proxy is IX402Permit2Proxy {
    /// @notice The upto witness, `Witness(address to,address facilitator,uint256 validAfter)`.
    /// @param to The recipient (the x402 `payTo`).
    /// @param facilitator The only account that may settle (the `facilitatorAddress` announced in `/supported`).
    /// @param validAfter The earliest settlement time.
    struct Witness {
        address to;
        address facilitator;
        uint256 validAfter;
    }

    /// @notice The amount to settle exceeds `permit.permitted.amount`.
    error AmountExceedsPermitted();

    /// @notice `msg.sender` is not the signed `witness.facilitator`.
    error UnauthorizedFacilitator();

    /// @notice Settles a stock x402 upto payment: `amount` (at most the permitted amount) moves to `witness.to`.
    /// @param permit The signed Permit2 permit.
    /// @param amount The amount to charge, `0 < amount <= permit.permitted.amount`.
    /// @param owner The payer.
    /// @param witness The signed witness; `witness.facilitator` must be `msg.sender`.
    /// @param signature The payer's signature.
    function settle(
        ISignatureTransfer.PermitTransferFrom calldata permit,
        uint256 amount,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external;

    /// @notice Like {settle}, after trying the token's EIP-2612 `permit` to approve Permit2.
    /// @param permit2612 The EIP-2612 permit; its value must equal the permitted amount.
    /// @param permit The signed Permit2 permit.
    /// @param amount The amount to charge.
    /// @param owner The payer.
    /// @param witness The signed witness.
    /// @param signature The payer's Permit2 signature.
    function settleWithPermit(
        EIP2612Permit calldata permit2612,
        ISignatureTransfer.PermitTransferFrom calldata permit,
        uint256 amount,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external;
}
