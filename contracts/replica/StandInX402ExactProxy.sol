// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ISignatureTransfer} from "permit2/interfaces/ISignatureTransfer.sol";
import {IX402ExactPermit2Proxy, IX402Permit2Proxy} from "../interfaces/IX402Permit2Proxy.sol";
import {StandInX402Permit2ProxyBase} from "./StandInX402Permit2ProxyBase.sol";

/// @title StandInX402ExactProxy
/// @notice REPLICA ONLY: a stand-in for the x402 exact Permit2 proxy (canonically at
/// 0x402085c248EeA27D92E8b30b2C58ed07f9E20001), placed at that address on the local replica so stock x402
/// clients' payloads settle there as they do on Base. Same ABI, witness type string, checks, errors and events
/// as the original (see {IX402ExactPermit2Proxy}); never deployed to a public chain.
contract StandInX402ExactProxy is IX402ExactPermit2Proxy, StandInX402Permit2ProxyBase {
    /// @inheritdoc IX402Permit2Proxy
    string public constant WITNESS_TYPE_STRING =
        "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,uint256 validAfter)";

    /// @inheritdoc IX402Permit2Proxy
    bytes32 public constant WITNESS_TYPEHASH = keccak256("Witness(address to,uint256 validAfter)");

    /// @param permit2 The canonical Permit2.
    constructor(ISignatureTransfer permit2) StandInX402Permit2ProxyBase(permit2) {}

    /// @inheritdoc IX402ExactPermit2Proxy
    function settle(
        ISignatureTransfer.PermitTransferFrom calldata permit,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external nonReentrant {
        _settleExact(permit, owner, witness, signature);
        emit Settled();
    }

    /// @inheritdoc IX402ExactPermit2Proxy
    function settleWithPermit(
        EIP2612Permit calldata permit2612,
        ISignatureTransfer.PermitTransferFrom calldata permit,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external nonReentrant {
        _tryPermit(permit.permitted.token, owner, permit2612, permit.permitted.amount);
        _settleExact(permit, owner, witness, signature);
        emit SettledWithPermit();
    }

    function _settleExact(
        ISignatureTransfer.PermitTransferFrom calldata permit,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) private {
        uint256 amount = permit.permitted.amount;
        _checkParties(amount, owner, witness.to);
        bytes32 witnessHash = keccak256(abi.encode(WITNESS_TYPEHASH, witness.to, witness.validAfter));
        _pull(permit, amount, owner, witness.to, witness.validAfter, witnessHash, WITNESS_TYPE_STRING, signature);
    }
}
