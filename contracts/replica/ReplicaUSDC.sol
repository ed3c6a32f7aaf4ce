// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IEIP3009} from "../interfaces/IEIP3009.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";

/// @title ReplicaUSDC
/// @notice Stand-in for Circle's USDC on the local replicas only, never deployed to a public chain. Its runtime
/// code is placed at USDC's real address with `anvil_setCode` (Base Sepolia
/// 0x036CbD53842c5426634e7929541eC2318f3dCF7e, EIP-712 name "USDC"; Base 0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913,
/// name "USD Coin"; version "2" on both), and balances are written into OpenZeppelin's ERC-20 storage layout
/// by the replica's set-up. It offers what x402 clients and facilitators use of USDC (FiatToken v2.2): 6 decimals,
/// EIP-3009 `transferWithAuthorization` / `receiveWithAuthorization` / `cancelAuthorization` in both the
/// `(v, r, s)` and the `bytes signature` form (ERC-1271 for contract wallets), `authorizationState`, and
/// EIP-2612 `permit` in both forms, all over the same EIP-712 domain `{name, "2", chainId, this}`.
///
/// It is written on OpenZeppelin (ERC20, EIP712, Nonces, SignatureChecker), not on Circle's code. Differences
/// from the original: no proxy, owner, minters, blacklist or pause; failures are custom errors carrying values
/// (see {IEIP3009}) where FiatToken reverts with strings. OpenZeppelin's ERC20Permit is not used because it fixes
/// the EIP-712 version to "1"; `permit` here is the same few lines over the version-"2" domain.
/// @dev The constructor runs only in an `eth_call` that yields the runtime code (the EIP-712 name is an
/// immutable), so name and version are immutables and nothing else is set at construction. Because the code runs
/// at another address than the one it was built at, EIP712 rebuilds the domain separator from `address(this)`
/// on every use, which is correct at the real address.
contract ReplicaUSDC is ERC20, EIP712, Nonces, IERC20Permit, IEIP3009 {
    /// @notice EIP-712 type hash of `TransferWithAuthorization`.
    bytes32 public constant TRANSFER_WITH_AUTHORIZATION_TYPEHASH = keccak256(
        "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    /// @notice EIP-712 type hash of `ReceiveWithAuthorization`.
    bytes32 public constant RECEIVE_WITH_AUTHORIZATION_TYPEHASH = keccak256(
        "ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    /// @notice EIP-712 type hash of `CancelAuthorization`.
    bytes32 public constant CANCEL_AUTHORIZATION_TYPEHASH = keccak256("CancelAuthorization(address authorizer,bytes32 nonce)");
    /// @notice EIP-712 type hash of EIP-2612 `Permit`.
    bytes32 public constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");

    mapping(address authorizer => mapping(bytes32 nonce => bool used)) private _authorizationStates;

    /// @notice The EIP-2612 permit has expired.
    /// @param deadline The signed deadline.
    /// @param timestamp The block timestamp.
    error PermitExpired(uint256 deadline, uint256 timestamp);

    /// @param eip712Name The token's name and EIP-712 domain name: "USDC" on Base Sepolia, "USD Coin" on Base.
    constructor(string memory eip712Name) ERC20("", "") EIP712(eip712Name, "2") {}

    /// @notice The token name, which is also its EIP-712 domain name.
    function name() public view override returns (string memory) {
        return _EIP712Name();
    }

    /// @notice "USDC".
    function symbol() public pure override returns (string memory) {
        return "USDC";
    }

    /// @notice 6, as USDC.
    function decimals() public pure override returns (uint8) {
        return 6;
    }

    /// @notice The EIP-712 domain separator (for EIP-2612 and EIP-3009 signatures).
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @inheritdoc IERC20Permit
    function nonces(address owner) public view override(IERC20Permit, Nonces) returns (uint256) {
        return super.nonces(owner);
    }

    /// @inheritdoc IEIP3009
    function authorizationState(address authorizer, bytes32 nonce) external view returns (bool used) {
        return _authorizationStates[authorizer][nonce];
    }

    /// @inheritdoc IERC20Permit
    function permit(address owner, address spender, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
    {
        _permit(owner, spender, value, deadline, abi.encodePacked(r, s, v));
    }

    /// @notice EIP-2612 `permit` with a packed signature: ERC-1271 when `owner` has code, else ECDSA (USDC v2.2).
    /// @param owner The approving holder.
    /// @param spender The approved spender.
    /// @param value The allowance to set.
    /// @param deadline The signature's deadline (inclusive).
    /// @param signature `r ‖ s ‖ v` for an EOA, or whatever `owner`'s `isValidSignature` accepts.
    function permit(address owner, address spender, uint256 value, uint256 deadline, bytes memory signature) external {
        _permit(owner, spender, value, deadline, signature);
    }

    /// @inheritdoc IEIP3009
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
    ) external {
        _transferWithAuthorization(
            TRANSFER_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce, abi.encodePacked(r, s, v)
        );
    }

    /// @inheritdoc IEIP3009
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes memory signature
    ) external {
        _transferWithAuthorization(
            TRANSFER_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce, signature
        );
    }

    /// @inheritdoc IEIP3009
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
    ) external {
        if (msg.sender != to) revert CallerMustBePayee(msg.sender, to);
        _transferWithAuthorization(
            RECEIVE_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce, abi.encodePacked(r, s, v)
        );
    }

    /// @inheritdoc IEIP3009
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes memory signature
    ) external {
        if (msg.sender != to) revert CallerMustBePayee(msg.sender, to);
        _transferWithAuthorization(
            RECEIVE_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce, signature
        );
    }

    /// @inheritdoc IEIP3009
    function cancelAuthorization(address authorizer, bytes32 nonce, uint8 v, bytes32 r, bytes32 s) external {
        _cancelAuthorization(authorizer, nonce, abi.encodePacked(r, s, v));
    }

    /// @inheritdoc IEIP3009
    function cancelAuthorization(address authorizer, bytes32 nonce, bytes memory signature) external {
        _cancelAuthorization(authorizer, nonce, signature);
    }

    function _transferWithAuthorization(
        bytes32 typeHash,
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes memory signature
    ) private {
        if (block.timestamp <= validAfter) revert AuthorizationNotYetValid(validAfter, block.timestamp);
        if (block.timestamp >= validBefore) revert AuthorizationExpired(validBefore, block.timestamp);
        _requireUnused(from, nonce);
        bytes32 structHash = keccak256(abi.encode(typeHash, from, to, value, validAfter, validBefore, nonce));
        _requireSignedBy(from, structHash, signature);
        _authorizationStates[from][nonce] = true;
        emit AuthorizationUsed(from, nonce);
        _transfer(from, to, value);
    }

    function _cancelAuthorization(address authorizer, bytes32 nonce, bytes memory signature) private {
        _requireUnused(authorizer, nonce);
        _requireSignedBy(authorizer, keccak256(abi.encode(CANCEL_AUTHORIZATION_TYPEHASH, authorizer, nonce)), signature);
        _authorizationStates[authorizer][nonce] = true;
        emit AuthorizationCanceled(authorizer, nonce);
    }

    function _permit(address owner, address spender, uint256 value, uint256 deadline, bytes memory signature) private {
        if (block.timestamp > deadline) revert PermitExpired(deadline, block.timestamp);
        bytes32 structHash = keccak256(abi.encode(PERMIT_TYPEHASH, owner, spender, value, _useNonce(owner), deadline));
        _requireSignedBy(owner, structHash, signature);
        _approve(owner, spender, value);
    }

    function _requireUnused(address authorizer, bytes32 nonce) private view {
        if (_authorizationStates[authorizer][nonce]) revert AuthorizationUsedOrCanceled(authorizer, nonce);
    }

    function _requireSignedBy(address signer, bytes32 structHash, bytes memory signature) private view {
        if (!SignatureChecker.isValidSignatureNow(signer, _hashTypedDataV4(structHash), signature)) {
            revert InvalidSignature(signer);
        }
    }
}
