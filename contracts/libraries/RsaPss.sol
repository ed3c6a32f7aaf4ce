// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Bytes} from "@openzeppelin/contracts/utils/Bytes.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @title RsaPss
/// @notice RSASSA-PSS signature verification (RFC 8017 section 8.1.2 with EMSA-PSS-VERIFY, section 9.1.2) with
/// SHA-256 as the hash, MGF1 with SHA-256 as the mask generation function and a 32-byte salt: the parameters
/// OpenGradient's TEEs sign with (Python `cryptography`: `padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
/// salt_length=32)` with `hashes.SHA256()`).
/// @dev Modelled on OpenZeppelin's `RSA.sol` (`pkcs1Sha256`): a small library over two standard precompiles, `modexp`
/// (0x05, EIP-198, through OpenZeppelin's `Math.tryModExp`) for RSAVP1 and `sha256` (0x02) for the message hash,
/// MGF1 and the final hash comparison. Nothing else is needed, so it runs on any EVM chain with the Byzantium
/// precompiles (Base included).
///
/// Gas (RSA-2048, e = 65537): about 9.5k under EIP-2565 modexp pricing, about 37k under EIP-7883 (Osaka), where the
/// modexp call alone costs 32,768. The cost grows with the modulus size (quadratically in modexp) and linearly with
/// the exponent's bit length: callers that accept keys from others should bound both (the TEE registry accepts
/// 2048..4096-bit moduli and exponents below 2^32).
///
/// What this library checks, in RFC order, and the `PssError` each failure returns:
///  - the modulus is at least 2048 bits and has no leading zero byte, and the signature is exactly as long as the
///    modulus (`InvalidLength`);
///  - the signature representative is below the modulus, so that `s` and `s + n` cannot both verify
///    (`SignatureOutOfRange`);
///  - the modexp precompile succeeded (`ModExpFailed`: out of gas, or a zero modulus);
///  - EM's last octet is 0xbc (`InvalidTrailer`);
///  - the bits of EM above emBits = modBits - 1 are zero (`InvalidLeadingBits`);
///  - after unmasking, DB = PS ‖ 0x01 ‖ salt with the 0x01 separator exactly where a 32-byte salt puts it
///    (`InvalidSaltLength`) and PS all zero (`InvalidPadding`);
///  - H = SHA-256(0x00 × 8 ‖ mHash ‖ salt) (`DigestMismatch`: a well-formed signature over another message, or a
///    corrupted salt).
///
/// What it does NOT check (callers' business): that the key is the right one, that `e` is a sensible public exponent,
/// and replay. Like any signature, a valid one verifies every time it is presented: record what was settled.
/// PSS signatures are randomised (the salt), so the same message has many valid signatures; replay protection must
/// key on the signed message, never on the signature bytes.
library RsaPss {
    /// @notice Why a signature was rejected (`None`: it verified). Documented in the library NatSpec.
    enum PssError {
        None,
        InvalidLength,
        SignatureOutOfRange,
        ModExpFailed,
        InvalidTrailer,
        InvalidLeadingBits,
        InvalidSaltLength,
        InvalidPadding,
        DigestMismatch
    }

    /// @notice Salt length in bytes (= the SHA-256 output length, the common and OpenGradient choice).
    uint256 internal constant SALT_LENGTH = 32;

    /// @dev hLen + sLen + 2: EM holds at least the hash, the salt, the separator and the trailer.
    uint256 private constant _MIN_EM_LENGTH = 66;

    /// @notice Verifies an RSASSA-PSS (SHA-256, MGF1-SHA-256, 32-byte salt) signature `s` over `data` under the
    /// public key (`e`, `n`). `data` is hashed with SHA-256 first.
    function pssSha256(bytes memory data, bytes memory s, bytes memory e, bytes memory n) internal view returns (bool) {
        return tryPssSha256(sha256(data), s, e, n) == PssError.None;
    }

    /// @notice Verifies an RSASSA-PSS (SHA-256, MGF1-SHA-256, 32-byte salt) signature `s` whose message hash is
    /// `digest` (= SHA-256 of the signed message) under the public key (`e`, `n`).
    function pssSha256(bytes32 digest, bytes memory s, bytes memory e, bytes memory n) internal view returns (bool) {
        return tryPssSha256(digest, s, e, n) == PssError.None;
    }

    /// @notice Like `pssSha256(bytes32,...)`, but returns why a signature was rejected (`PssError.None` if it verified).
    /// @dev Never reverts; memory from `s`, `e` and `n` is not modified.
    function tryPssSha256(bytes32 digest, bytes memory s, bytes memory e, bytes memory n)
        internal
        view
        returns (PssError)
    {
        unchecked {
            uint256 length = n.length;
            // 2048 bits at least (as OpenZeppelin's RSA), a minimal modulus, and a signature of the modulus' length.
            if (length < 0x100 || length != s.length || n[0] == 0) return PssError.InvalidLength;
            if (!_lessThan(s, n)) return PssError.SignatureOutOfRange;

            // RSAVP1. n is non-zero (n[0] != 0), so tryModExp fails only when the precompile runs out of gas.
            (bool success, bytes memory em) = Math.tryModExp(s, e, n);
            if (!success || em.length != length) return PssError.ModExpFailed;

            // modBits = bit length of n; emBits = modBits - 1. When modBits = 8(length - 1) + 1, emLen = length - 1
            // and the modexp output's first octet must be zero (I2OSP "integer too large"): the mask below then covers
            // that whole octet and EM starts one octet later.
            uint256 topBits = 8 - Bytes.clz(n); // bit length of n[0], 1..8
            uint256 emStart = topBits == 1 ? 1 : 0;
            // The bits of the output's first octet above emBits, which must be zero.
            uint256 leadingMask = (0xff << (topBits - 1)) & 0xff;
            return _emsaPssVerify(digest, em, emStart, leadingMask);
        }
    }

    /// @dev EMSA-PSS-VERIFY over the modexp output `em` (length k), with EM = em[emStart:].
    function _emsaPssVerify(bytes32 digest, bytes memory em, uint256 emStart, uint256 leadingMask)
        private
        view
        returns (PssError)
    {
        uint256 emLen = em.length - emStart;
        if (emLen < _MIN_EM_LENGTH) return PssError.InvalidLength;
        uint256 dbLen = emLen - 33; // maskedDB ‖ H ‖ 0xbc
        bool ok;
        bytes32 h;
        bytes32 salt;
        uint256 status;
        assembly ("memory-safe") {
            let emPtr := add(em, 0x20)
            let db := add(emPtr, emStart)
            // status: 0 = ok so far, else the Error value.
            switch byte(0, mload(add(db, sub(emLen, 1))))
            case 0xbc {}
            default { status := 4 } // InvalidTrailer
            if iszero(status) {
                if and(byte(0, mload(emPtr)), leadingMask) { status := 5 } // InvalidLeadingBits
            }
            if iszero(status) {
                h := mload(add(db, dbLen))
                // MGF1-SHA-256(H, dbLen), XORed into maskedDB in place, one 32-byte block at a time. The last block
                // may spill past maskedDB into H, which was read above and is not read from memory again.
                let scratch := mload(0x40)
                mstore(scratch, h)
                ok := 1
                for { let i := 0 } lt(i, dbLen) { i := add(i, 0x20) } {
                    mstore(add(scratch, 0x20), shl(224, div(i, 0x20))) // the 4-byte big-endian counter
                    ok := and(ok, staticcall(gas(), 0x02, scratch, 0x24, add(scratch, 0x40), 0x20))
                    let p := add(db, i)
                    mstore(p, xor(mload(p), mload(add(scratch, 0x40))))
                }
                if iszero(ok) { status := 3 } // the sha256 precompile failed: out of gas
            }
            if iszero(status) {
                // Clear DB's bits above emBits (8 * emLen - emBits of them: none when emStart = 1).
                if iszero(emStart) { mstore8(db, and(byte(0, mload(db)), not(leadingMask))) }
                // DB = PS ‖ 0x01 ‖ salt, with psLen = dbLen - 33.
                let psLen := sub(dbLen, 33)
                switch byte(0, mload(add(db, psLen)))
                case 1 {}
                default { status := 6 } // InvalidSaltLength: the separator is not where a 32-byte salt puts it
                if iszero(status) {
                    let acc := 0
                    let full := and(psLen, not(0x1f))
                    for { let i := 0 } lt(i, full) { i := add(i, 0x20) } { acc := or(acc, mload(add(db, i))) }
                    let rest := and(psLen, 0x1f)
                    if rest { acc := or(acc, shr(sub(256, shl(3, rest)), mload(add(db, full)))) }
                    if acc { status := 7 } // InvalidPadding
                }
                salt := mload(add(db, sub(dbLen, 32)))
            }
        }
        if (status != 0) return PssError(status);
        // H' = SHA-256(0x00 x 8 ‖ mHash ‖ salt)
        if (sha256(abi.encodePacked(bytes8(0), digest, salt)) != h) return PssError.DigestMismatch;
        return PssError.None;
    }

    /// @dev s < n for two big-endian numbers of the same length (at least 32 bytes), as OpenZeppelin's RSA compares.
    function _lessThan(bytes memory s, bytes memory n) private pure returns (bool) {
        unchecked {
            uint256 length = n.length;
            for (uint256 i = 0; i < length; i += 0x20) {
                uint256 p = Math.min(i, length - 0x20);
                bytes32 sp;
                bytes32 np;
                assembly ("memory-safe") {
                    sp := mload(add(add(s, 0x20), p))
                    np := mload(add(add(n, 0x20), p))
                }
                if (sp < np) return true;
                if (sp > np) return false;
            }
            return false; // s == n
        }
    }
}
