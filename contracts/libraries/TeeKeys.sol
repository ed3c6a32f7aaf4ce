// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {RsaPss} from "./RsaPss.sol";

/// @title TeeKeys
/// @notice The one home of TEE key types (`ITeeRegistry.KeyType`): teeId derivation, RSA public-key parsing and
/// storage, and signature verification per key type.
/// @dev Key types:
///  - `Secp256k1`: a 64-byte uncompressed public key (x ‖ y, no 0x04). teeId = keccak256(key); the signer address is
///    the last 20 bytes of that hash. Signatures are 65-byte ECDSA (OpenZeppelin, low-s only).
///  - `Rsa`: a DER SubjectPublicKeyInfo (rsaEncryption, NULL parameters), as OpenGradient's enclaves publish it.
///    teeId = keccak256(DER), exactly as OpenGradient derives it. Signatures are RSASSA-PSS with SHA-256,
///    MGF1-SHA-256 and a 32-byte salt over a 32-byte message (so the PSS message hash is SHA-256 of those 32
///    bytes), checked by `RsaPss` over the modexp and sha256 precompiles.
///
///  RSA keys are accepted only in strict DER (minimal lengths, minimal positive INTEGERs, nothing trailing), so one key
///  has exactly one encoding and therefore one teeId. The modulus must be 2048..4096 bits and odd; the exponent odd,
///  at least 65537 and below 2^32 (the bound keeps modexp's cost, which grows with the exponent's bit length, small).
///
///  Storage: an RSA key is written once, as the code of a small data contract (SSTORE2 style: the code is a STOP
///  opcode, a 7-byte layout header and the DER). Reading it back costs one EXTCODECOPY (2,600 gas cold, plus 3 per
///  word) instead of 9 to 17 cold SLOADs (2,100 each) for a 2048..4096-bit modulus; writing costs 200 gas per byte
///  of code instead of 22,100 per slot. This matters most where modexp is dear (EIP-7883), since every other cost of
///  a verification should stay small next to it.
library TeeKeys {
    /// @notice Where the modulus and exponent sit inside a DER SubjectPublicKeyInfo.
    /// @param modulusOffset Offset of the modulus' first (non-zero) byte.
    /// @param modulusLength Length of the modulus in bytes (without the DER sign byte).
    /// @param exponentOffset Offset of the exponent's first byte.
    /// @param exponentLength Length of the exponent in bytes (1..4).
    struct RsaKeyLayout {
        uint256 modulusOffset;
        uint256 modulusLength;
        uint256 exponentOffset;
        uint256 exponentLength;
    }

    /// @notice The DER SubjectPublicKeyInfo is not a strict-DER RSA key; `offset` is where parsing failed.
    error InvalidRsaPublicKey(uint256 offset);
    /// @notice The modulus is outside 2048..4096 bits, or even.
    error InvalidRsaModulus(uint256 bits);
    /// @notice The exponent is even, below 65537, or not below 2^32 (`exponent` = 2^256 - 1 when longer than 4 bytes).
    error InvalidRsaExponent(uint256 exponent);
    /// @notice Writing the key's data contract failed.
    error RsaKeyStoreFailed();

    uint256 internal constant MIN_RSA_BITS = 2048;
    uint256 internal constant MAX_RSA_BITS = 4096;
    uint256 internal constant MIN_RSA_EXPONENT = 65537;

    /// @dev AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL }: 30 0d 06 09 2a864886f70d010101 05 00.
    bytes15 private constant _RSA_ALGORITHM = 0x300d06092a864886f70d0101010500;
    /// @dev Offset of the layout header in a key store's code (after the STOP byte), and of the DER after it.
    uint256 private constant _HEADER_OFFSET = 1;
    uint256 private constant _DER_OFFSET = 8;

    // --- secp256k1 ---------------------------------------------------------------------------------------------------

    /// @notice teeId = keccak256(publicKey); signer = the last 20 bytes of the same hash.
    function secp256k1IdAndSigner(bytes calldata publicKey) internal pure returns (bytes32 teeId, address signer) {
        teeId = keccak256(publicKey);
        signer = address(uint160(uint256(teeId)));
    }

    /// @notice The address that made `signature` over `digest` (address(0) when unrecoverable or malleable).
    function recover(bytes32 digest, bytes calldata signature) internal pure returns (address recovered) {
        (recovered,,) = ECDSA.tryRecoverCalldata(digest, signature);
    }

    // --- RSA ---------------------------------------------------------------------------------------------------------

    /// @notice Parses and checks a DER SubjectPublicKeyInfo RSA key. Reverts InvalidRsaPublicKey, InvalidRsaModulus or
    /// InvalidRsaExponent.
    function parseRsaPublicKey(bytes calldata der) internal pure returns (RsaKeyLayout memory layout) {
        uint256 end = der.length;
        uint256 pos = _expectTag(der, 0, 0x30); // SubjectPublicKeyInfo SEQUENCE
        pos = _expectEnd(der, pos, end);
        if (pos + 15 > end || bytes15(der[pos:pos + 15]) != _RSA_ALGORITHM) revert InvalidRsaPublicKey(pos);
        pos = _expectTag(der, pos + 15, 0x03); // subjectPublicKey BIT STRING
        pos = _expectEnd(der, pos, end);
        if (_byteAt(der, pos) != 0) revert InvalidRsaPublicKey(pos); // no unused bits
        pos = _expectTag(der, pos + 1, 0x30); // RSAPublicKey SEQUENCE
        pos = _expectEnd(der, pos, end);
        uint256 length;
        (pos, length) = _integer(der, _expectTag(der, pos, 0x02));
        layout.modulusOffset = pos;
        layout.modulusLength = length;
        (pos, length) = _integer(der, _expectTag(der, pos + length, 0x02));
        if (pos + length != end) revert InvalidRsaPublicKey(pos + length);
        layout.exponentOffset = pos;
        layout.exponentLength = length;

        uint256 bits = 8 * layout.modulusLength - _leadingZeros(uint8(der[layout.modulusOffset]));
        bool odd = uint8(der[layout.modulusOffset + layout.modulusLength - 1]) & 1 == 1;
        if (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS || !odd) revert InvalidRsaModulus(bits);
        if (length > 4) revert InvalidRsaExponent(type(uint256).max);
        uint256 exponent = uint256(uint32(bytes4(der[pos:end]) >> (8 * (4 - length))));
        if (exponent < MIN_RSA_EXPONENT || exponent & 1 == 0) revert InvalidRsaExponent(exponent);
    }

    /// @notice Verifies an RSA-PSS signature over the 32-byte `message` against a key still in calldata (parsed by
    /// `parseRsaPublicKey`).
    function verifyRsaCalldata(
        bytes calldata der,
        RsaKeyLayout memory layout,
        bytes32 message,
        bytes calldata signature
    ) internal view returns (RsaPss.PssError) {
        bytes memory n = der[layout.modulusOffset:layout.modulusOffset + layout.modulusLength];
        bytes memory e = der[layout.exponentOffset:layout.exponentOffset + layout.exponentLength];
        return RsaPss.tryPssSha256(_sha256(message), signature, e, n);
    }

    /// @notice Writes the key (layout header + DER) as the code of a new data contract; returns its address.
    function storeRsaKey(bytes calldata der, RsaKeyLayout memory layout) internal returns (address store) {
        bytes memory data = abi.encodePacked(
            bytes1(0x00), // STOP: the data contract cannot be called into doing anything
            uint16(layout.modulusOffset),
            uint16(layout.modulusLength),
            uint16(layout.exponentOffset),
            uint8(layout.exponentLength),
            der
        );
        // Init code (10 bytes): PUSH2 len, DUP1, PUSH1 0x0a, RETURNDATASIZE (0), CODECOPY, RETURNDATASIZE (0), RETURN;
        // then the data it returns as the new contract's code.
        bytes memory initCode = abi.encodePacked(hex"61", uint16(data.length), hex"80600a3d393df3", data);
        assembly ("memory-safe") {
            store := create(0, add(initCode, 0x20), mload(initCode))
        }
        if (store == address(0)) revert RsaKeyStoreFailed();
    }

    /// @notice Verifies an RSA-PSS signature over the 32-byte `message` against the key in the data contract `store`.
    /// @dev One cold EXTCODECOPY for the header, then two warm ones for the modulus and exponent.
    function verifyRsa(address store, bytes32 message, bytes calldata signature)
        internal
        view
        returns (RsaPss.PssError)
    {
        bytes memory n;
        bytes memory e;
        assembly ("memory-safe") {
            extcodecopy(store, 0x00, _HEADER_OFFSET, 7) // into scratch space
            let header := mload(0x00)
            let modulusOffset := shr(240, header)
            let modulusLength := and(shr(224, header), 0xffff)
            let exponentOffset := and(shr(208, header), 0xffff)
            let exponentLength := byte(6, header)
            n := mload(0x40)
            mstore(n, modulusLength)
            extcodecopy(store, add(n, 0x20), add(_DER_OFFSET, modulusOffset), modulusLength)
            e := add(add(n, 0x20), and(add(modulusLength, 0x1f), not(0x1f)))
            mstore(e, exponentLength)
            mstore(add(e, 0x20), 0)
            extcodecopy(store, add(e, 0x20), add(_DER_OFFSET, exponentOffset), exponentLength)
            mstore(0x40, add(e, 0x40))
        }
        return RsaPss.tryPssSha256(_sha256(message), signature, e, n);
    }

    /// @notice The DER SubjectPublicKeyInfo kept in the data contract `store`.
    function rsaPublicKey(address store) internal view returns (bytes memory der) {
        uint256 size = store.code.length;
        if (size <= _DER_OFFSET) return der;
        der = new bytes(size - _DER_OFFSET);
        assembly ("memory-safe") {
            extcodecopy(store, add(der, 0x20), _DER_OFFSET, sub(size, _DER_OFFSET))
        }
    }

    /// @dev SHA-256 of the 32-byte `message` (the PSS message hash), through the precompile into scratch space.
    function _sha256(bytes32 message) private view returns (bytes32 digest) {
        assembly ("memory-safe") {
            mstore(0x00, message)
            if iszero(staticcall(gas(), 0x02, 0x00, 0x20, 0x00, 0x20)) { revert(0, 0) }
            digest := mload(0x00)
        }
    }

    // --- strict DER helpers ------------------------------------------------------------------------------------------

    function _byteAt(bytes calldata der, uint256 pos) private pure returns (uint8) {
        if (pos >= der.length) revert InvalidRsaPublicKey(pos);
        return uint8(der[pos]);
    }

    /// @dev Checks the tag at `pos`; returns the offset of the length octets after it.
    function _expectTag(bytes calldata der, uint256 pos, uint8 tag) private pure returns (uint256) {
        if (_byteAt(der, pos) != tag) revert InvalidRsaPublicKey(pos);
        return pos + 1;
    }

    /// @dev Reads a definite, minimally encoded length at `pos`; returns (content offset, content length).
    function _length(bytes calldata der, uint256 pos) private pure returns (uint256 offset, uint256 length) {
        uint8 first = _byteAt(der, pos);
        if (first < 0x80) return (pos + 1, first);
        if (first == 0x81) {
            length = _byteAt(der, pos + 1);
            if (length < 0x80) revert InvalidRsaPublicKey(pos);
            return (pos + 2, length);
        }
        if (first == 0x82) {
            length = (uint256(_byteAt(der, pos + 1)) << 8) | _byteAt(der, pos + 2);
            if (length < 0x100) revert InvalidRsaPublicKey(pos);
            return (pos + 3, length);
        }
        revert InvalidRsaPublicKey(pos);
    }

    /// @dev Reads a length at `pos` whose content must run exactly to `end`; returns the content offset.
    function _expectEnd(bytes calldata der, uint256 pos, uint256 end) private pure returns (uint256 offset) {
        uint256 length;
        (offset, length) = _length(der, pos);
        if (offset + length != end) revert InvalidRsaPublicKey(pos);
    }

    /// @dev Reads a minimal positive INTEGER's length at `pos`; returns (offset of its first magnitude byte, number of
    /// magnitude bytes), skipping the sign byte.
    function _integer(bytes calldata der, uint256 pos) private pure returns (uint256 offset, uint256 length) {
        (offset, length) = _length(der, pos);
        if (length == 0 || offset + length > der.length) revert InvalidRsaPublicKey(pos);
        uint8 first = uint8(der[offset]);
        if (first & 0x80 != 0) revert InvalidRsaPublicKey(offset); // negative
        if (first == 0) {
            // A leading zero is allowed only to keep a high bit positive, and never alone.
            if (length == 1 || uint8(der[offset + 1]) & 0x80 == 0) revert InvalidRsaPublicKey(offset);
            return (offset + 1, length - 1);
        }
    }

    function _leadingZeros(uint8 value) private pure returns (uint256 count) {
        while (count < 8 && value & (0x80 >> count) == 0) ++count;
    }
}
