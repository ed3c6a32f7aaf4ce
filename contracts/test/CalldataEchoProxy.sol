// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title CalldataEchoProxy
/// @notice TEST DOUBLE ONLY. Stands where a StockPaymentBatcher expects an x402 proxy and reverts with the
/// keccak256 of the calldata it received, so a test can check, item by item, that the batcher turned its packed
/// encoding into exactly the proxy's ABI-encoded `settle` call.
contract CalldataEchoProxy {
    fallback() external {
        bytes32 digest = keccak256(msg.data);
        assembly ("memory-safe") {
            mstore(0, digest)
            revert(0, 32)
        }
    }
}
