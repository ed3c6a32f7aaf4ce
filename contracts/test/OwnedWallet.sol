// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title OwnedWallet
/// @notice TEST DOUBLE ONLY. A minimal ERC-1271 contract wallet: a signature is valid when it is its owner's ECDSA
/// signature of the hash. Used to check that EIP-3009 and EIP-2612 accept contract-wallet payers.
contract OwnedWallet is IERC1271 {
    address private immutable _OWNER;

    constructor(address owner) {
        _OWNER = owner;
    }

    /// @inheritdoc IERC1271
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(hash, signature);
        return err == ECDSA.RecoverError.NoError && signer == _OWNER ? IERC1271.isValidSignature.selector : bytes4(0);
    }
}
