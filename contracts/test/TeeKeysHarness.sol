// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {TeeKeys} from "../libraries/TeeKeys.sol";

/// @title TeeKeysHarness
/// @notice Test-only: exposes TeeKeys' strict-DER RSA key parser and the key store's round trip.
contract TeeKeysHarness {
    /// @notice The parsed layout, and the modulus and exponent bytes it points at.
    function parse(bytes calldata der)
        external
        pure
        returns (TeeKeys.RsaKeyLayout memory layout, bytes memory modulus, bytes memory exponent)
    {
        layout = TeeKeys.parseRsaPublicKey(der);
        modulus = der[layout.modulusOffset:layout.modulusOffset + layout.modulusLength];
        exponent = der[layout.exponentOffset:layout.exponentOffset + layout.exponentLength];
    }

    /// @notice Stores the key as contract code and reads the DER back.
    function storeAndRead(bytes calldata der) external returns (address store, bytes memory readBack) {
        store = TeeKeys.storeRsaKey(der, TeeKeys.parseRsaPublicKey(der));
        readBack = TeeKeys.rsaPublicKey(store);
    }
}
