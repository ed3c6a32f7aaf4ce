// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {ISignatureTransfer} from "permit2/interfaces/ISignatureTransfer.sol";
import {IX402Permit2Proxy} from "../interfaces/IX402Permit2Proxy.sol";

/// @title StandInX402Permit2ProxyBase
/// @notice REPLICA ONLY. The shared part of og-settle's stand-ins for the canonical x402 Permit2 proxies, which
/// exist on every public chain but whose bytecode no package registry ships. Written from the proxies' published
/// behaviour (ABI, witness type strings, checks and their order, custom errors, events); it is not their code.
/// The replica places the derived contracts' runtime code at the canonical addresses; nothing outside the
/// replica depends on this bytecode.
/// @dev Like the originals: Permit2 is an immutable set by the constructor (the replica runs the constructor in an
/// `eth_call` and copies the resulting runtime code, immutable included), and the reentrancy guard is
/// OpenZeppelin's storage-based one (the replica writes its NOT_ENTERED value, as a constructor would).
abstract contract StandInX402Permit2ProxyBase is IX402Permit2Proxy, ReentrancyGuard {
    /// @inheritdoc IX402Permit2Proxy
    ISignatureTransfer public immutable PERMIT2;

    /// @param permit2 The canonical Permit2 (0x000000000022D473030F116dDEE9F6B43aC78BA3).
    constructor(ISignatureTransfer permit2) {
        if (address(permit2) == address(0)) revert InvalidPermit2Address();
        PERMIT2 = permit2;
    }

    /// @dev The first checks of every settlement, in the originals' order: a non-zero amount, owner and recipient.
    function _checkParties(uint256 amount, address owner, address to) internal pure {
        if (amount == 0) revert InvalidAmount();
        if (owner == address(0)) revert InvalidOwner();
        if (to == address(0)) revert InvalidDestination();
    }

    /// @dev The last check (`validAfter`; Permit2 enforces the deadline), then the Permit2 witness transfer of
    /// `amount` from `owner` to `to`.
    function _pull(
        ISignatureTransfer.PermitTransferFrom calldata permit,
        uint256 amount,
        address owner,
        address to,
        uint256 validAfter,
        bytes32 witnessHash,
        string memory witnessTypeString,
        bytes calldata signature
    ) internal {
        if (block.timestamp < validAfter) revert PaymentTooEarly();
        PERMIT2.permitWitnessTransferFrom(
            permit,
            ISignatureTransfer.SignatureTransferDetails({to: to, requestedAmount: amount}),
            owner,
            witnessHash,
            witnessTypeString,
            signature
        );
    }

    /// @dev Tries the token's EIP-2612 `permit` for Permit2 after checking its value; a failing permit is
    /// reported by an event, since the approval may already exist.
    function _tryPermit(address token, address owner, EIP2612Permit calldata permit2612, uint256 permitted) internal {
        if (permit2612.value != permitted) revert Permit2612AmountMismatch();
        try IERC20Permit(token).permit(
            owner, address(PERMIT2), permit2612.value, permit2612.deadline, permit2612.v, permit2612.r, permit2612.s
        ) {}
        catch Error(string memory reason) {
            emit EIP2612PermitFailedWithReason(token, owner, reason);
        } catch Panic(uint256 errorCode) {
            emit EIP2612PermitFailedWithPanic(token, owner, errorCode);
        } catch (bytes memory data) {
            emit EIP2612PermitFailedWithData(token, owner, data);
        }
    }
}
