// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ISignatureTransfer} from "permit2/interfaces/ISignatureTransfer.sol";
import {IX402Permit2Proxy, IX402UptoPermit2Proxy} from "../interfaces/IX402Permit2Proxy.sol";
import {StandInX402Permit2ProxyBase} from "./StandInX402Permit2ProxyBase.sol";

/// @title StandInX402UptoProxy
/// @notice REPLICA ONLY: a stand-in for the x402 upto Permit2 proxy (canonically at
/// 0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002), placed at that address on the local replica. Same ABI, witness
/// type string, checks, errors and events as the original (see {IX402UptoPermit2Proxy}); never deployed to a
/// public chain.
contract StandInX402UptoProxy is IX402UptoPermit2Proxy, StandInX402Permit2ProxyBase {
    /// @inheritdoc IX402Permit2Proxy
    string public constant WITNESS_TYPE_STRING =
        "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,address facilitator,uint256 validAfter)";

    /// @inheritdoc IX402Permit2Proxy
    bytes32 public constant WITNESS_TYPEHASH = keccak256("Witness(address to,address facilitator,uint256 validAfter)");

    /// @param permit2 The canonical Permit2.
    constructor(ISignatureTransfer permit2) StandInX402Permit2ProxyBase(permit2) {}

    /// @inheritdoc IX402UptoPermit2Proxy
    function settle(
        ISignatureTransfer.PermitTransferFrom calldata permit,
        uint256 amount,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external nonReentrant {
        if (amount > permit.permitted.amount) revert AmountExceedsPermitted();
        _settleUpto(permit, amount, owner, witness, signature);
        emit Settled();
    }

    /// @inheritdoc IX402UptoPermit2Proxy
    function settleWithPermit(
        EIP2612Permit calldata permit2612,
        ISignatureTransfer.PermitTransferFrom calldata permit,
        uint256 amount,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external nonReentrant {
        if (amount > permit.permitted.amount) revert AmountExceedsPermitted();
        _tryPermit(permit.permitted.token, owner, permit2612, permit.permitted.amount);
        _settleUpto(permit, amount, owner, witness, signature);
        emit SettledWithPermit();
    }

    function _settleUpto(
        ISignatureTransfer.PermitTransferFrom calldata permit,
        uint256 amount,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) private {
        _checkParties(amount, owner, witness.to);
        if (msg.sender != witness.facilitator) revert UnauthorizedFacilitator();
        bytes32 witnessHash =
            keccak256(abi.encode(WITNESS_TYPEHASH, witness.to, witness.facilitator, witness.validAfter));
        _pull(permit, amount, owner, witness.to, witness.validAfter, witnessHash, WITNESS_TYPE_STRING, signature);
    }
}
