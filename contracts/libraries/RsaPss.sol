// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @title RsaPss
/// @notice RSASSA-PSS signature verification (RFC 8017 section 8.1.2 with EMSA-PSS-VERIFY, section 9.1.2) with
/// SHA-256 as the hash, MGF1 with SHA-256 as the mask generation function and a 32-byte salt: the parameters
/// OpenGradient's TEEs sign with (Python `cryptography`: `padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
/// salt_length=32)` with `hashes.SHA256()`).
/// @dev Modelled on OpenZeppelin's `RSA.sol` (`pkcs1Sha256`): a small library over two standard precompiles, `modexp`
/// (0x05, EIP-198) for RSAVP1 and `sha256` (0x02) for MGF1 and the final hash comparison. The modexp call is
/// OpenZeppelin's `Math.tryModExp` pattern written out (input built with MCOPY, the result over the input): the
/// library call itself spent about 1k gas more (its zero-modulus scan and re-encoding), a tenth of the whole
/// verification's budget. Nothing else is needed, so it runs on any EVM chain with the Byzantium
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

    /// @notice Like `pssSha256(bytes32,...)`, but returns why a signature was rejected (`PssError.None`: it verified).
    /// @dev Never reverts; memory from `s`, `e` and `n` is not modified.
    function tryPssSha256(bytes32 digest, bytes memory s, bytes memory e, bytes memory n)
        internal
        view
        returns (PssError)
    {
        unchecked {
            uint256 length = n.length;
            // 2048 bits at least (as OpenZeppelin's RSA), a minimal modulus, and a signature of the modulus' length.
            if (length < 0x100 || length != s.length) return PssError.InvalidLength;
            uint256 top = uint8(n[0]);
            if (top == 0) return PssError.InvalidLength;
            if (!_lessThan(s, n, length)) return PssError.SignatureOutOfRange;

            // RSAVP1: m = s^e mod n.
            (bool success, bytes memory em) = _modExp(s, e, n, length);
            if (!success) return PssError.ModExpFailed;

            // modBits = bit length of n; emBits = modBits - 1. When modBits = 8(length - 1) + 1, emLen = length - 1
            // and the modexp output's first octet must be zero (I2OSP "integer too large"): the mask below then covers
            // that whole octet and EM starts one octet later.
            uint256 topBits = Math.log2(top) + 1; // bit length of n[0], 1..8
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
                if iszero(status) {
                    // H' = SHA-256(0x00 x 8 ‖ mHash ‖ salt), compared with H.
                    let m := mload(0x40)
                    mstore(m, 0)
                    mstore(add(m, 8), digest)
                    mstore(add(m, 40), mload(add(db, sub(dbLen, 32))))
                    switch staticcall(gas(), 0x02, m, 72, 0x00, 0x20)
                    case 0 { status := 3 }
                    default { if iszero(eq(mload(0x00), h)) { status := 8 } } // DigestMismatch
                }
            }
        }
        return PssError(status);
    }

    /// @dev s < n for two big-endian numbers of `length` bytes (at least 32), compared word by word from the top as
    /// OpenZeppelin's RSA does.
    function _lessThan(bytes memory s, bytes memory n, uint256 length) private pure returns (bool result) {
        assembly ("memory-safe") {
            let last := sub(length, 0x20)
            for { let i := 0 } 1 { i := add(i, 0x20) } {
                let p := i
                if gt(p, last) { p := last }
                let sp := mload(add(add(s, 0x20), p))
                let np := mload(add(add(n, 0x20), p))
                if lt(sp, np) {
                    result := 1
                    break
                }
                if or(gt(sp, np), eq(p, last)) { break } // s > n, or s == n
            }
        }
    }

    /// @dev s^e mod n through the modexp precompile, as OpenZeppelin's `Math.tryModExp(bytes,bytes,bytes)` does, minus
    /// its zero-modulus scan (n[0] != 0 is already checked) and with MCOPY for the input: the result is written over
    /// the input. Fails only when the precompile runs out of gas.
    function _modExp(bytes memory s, bytes memory e, bytes memory n, uint256 length)
        private
        view
        returns (bool success, bytes memory result)
    {
        assembly ("memory-safe") {
            let eLength := mload(e)
            result := mload(0x40)
            mstore(result, length)
            mstore(add(result, 0x20), eLength)
            mstore(add(result, 0x40), length)
            let p := add(result, 0x60)
            mcopy(p, add(s, 0x20), length)
            p := add(p, length)
            mcopy(p, add(e, 0x20), eLength)
            p := add(p, eLength)
            mcopy(p, add(n, 0x20), length)
            p := add(p, length)
            success := staticcall(gas(), 0x05, result, sub(p, result), add(result, 0x20), length)
            success := and(success, eq(returndatasize(), length))
            mstore(result, length)
            mstore(0x40, add(add(result, 0x20), length))
        }
    }
}
