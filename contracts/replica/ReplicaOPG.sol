// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title ReplicaOPG
/// @notice Stand-in for the OPG token on the local Base Sepolia replica only. Its runtime code is placed at
/// OPG's real address (0x240b09731D96979f50B2C649C9CE10FcF9C7987F) with `anvil_setCode`, so the constructor
/// never runs: name, symbol and decimals are therefore constants, and balances are written into the
/// standard OpenZeppelin storage layout by the replica's set-up. It is never deployed to a public chain.
contract ReplicaOPG is ERC20 {
    constructor() ERC20("OpenGradient", "OPG") {}

    function name() public pure override returns (string memory) {
        return "OpenGradient";
    }

    function symbol() public pure override returns (string memory) {
        return "OPG";
    }
}
