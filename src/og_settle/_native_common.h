/*
 * What og-settle's C extensions share (each includes this file; everything here is static): the hex digit table and
 * Keccak-256.
 */
#ifndef OG_SETTLE_NATIVE_COMMON_H
#define OG_SETTLE_NATIVE_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Each byte's value as a hex digit, or -1: a table, as branching on random digits mispredicts. */
static signed char HEX[256];

static void fill_hex_table(void) {
    memset(HEX, -1, sizeof HEX);
    for (int c = '0'; c <= '9'; c++) HEX[c] = (signed char)(c - '0');
    for (int c = 'a'; c <= 'f'; c++) HEX[c] = (signed char)(c - 'a' + 10);
    for (int c = 'A'; c <= 'F'; c++) HEX[c] = (signed char)(c - 'A' + 10);
}

/* ---------------------------------------------------------------------------------------------------------
 * Keccak-256, written from the Keccak reference's description (FIPS 202 section 3 with the original padding):
 * the state is 25 little-endian 64-bit lanes, the rate 136 bytes, the padding 0x01 .. 0x80.
 */

static const uint64_t ROUND_CONSTANTS[24] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808AULL, 0x8000000080008000ULL,
    0x000000000000808BULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
    0x000000000000008AULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000AULL,
    0x000000008000808BULL, 0x800000000000008BULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
    0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800AULL, 0x800000008000000AULL,
    0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL,
};

/* rho and pi together: following pi's single cycle through the 24 lanes other than lane 0, the lane reached at
 * step i (LANE_CYCLE[i]) receives the lane before it rotated by ROTATIONS[i]. */
static const unsigned char LANE_CYCLE[24] = {10, 7, 11, 17, 18, 3, 5, 16, 8, 21, 24, 4, 15, 23, 19, 13, 12, 2, 20, 14, 22, 9, 6, 1};
static const unsigned char ROTATIONS[24] = {1, 3, 6, 10, 15, 21, 28, 36, 45, 55, 2, 14, 27, 41, 56, 8, 25, 43, 62, 18, 39, 61, 20, 44};

#define ROTATE(x, n) (((x) << (n)) | ((x) >> (64 - (n))))
#define RATE 136

/* One Keccak-f[1600] permutation, for lanes of type T: a uint64_t (one state) or a vector of four (four states
 * side by side, one per vector slot). */
#define DEFINE_KECCAK_F1600(NAME, T, BROADCAST, ATTRIBUTES)                                            \
    ATTRIBUTES static void NAME(T a[25]) {                                                            \
        for (int round = 0; round < 24; round++) {                                                     \
            T c[5];                                                                                    \
            _Pragma("GCC unroll 5") for (int x = 0; x < 5; x++) c[x] =                                 \
                a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20];                                   \
            _Pragma("GCC unroll 5") for (int x = 0; x < 5; x++) {                                      \
                T d = c[(x + 4) % 5] ^ ROTATE(c[(x + 1) % 5], 1);                                      \
                _Pragma("GCC unroll 5") for (int y = 0; y < 25; y += 5) a[y + x] ^= d;                 \
            }                                                                                          \
            T carried = a[1];                                                                          \
            _Pragma("GCC unroll 24") for (int i = 0; i < 24; i++) {                                    \
                T next = a[LANE_CYCLE[i]];                                                             \
                a[LANE_CYCLE[i]] = ROTATE(carried, ROTATIONS[i]);                                      \
                carried = next;                                                                        \
            }                                                                                          \
            _Pragma("GCC unroll 5") for (int y = 0; y < 25; y += 5) {                                  \
                T row[5];                                                                              \
                _Pragma("GCC unroll 5") for (int x = 0; x < 5; x++) row[x] = a[y + x];                 \
                _Pragma("GCC unroll 5") for (int x = 0; x < 5; x++) a[y + x] =                         \
                    row[x] ^ (~row[(x + 1) % 5] & row[(x + 2) % 5]);                                   \
            }                                                                                          \
            a[0] ^= BROADCAST(ROUND_CONSTANTS[round]);                                                 \
        }                                                                                              \
    }

#define SAME(v) (v)
DEFINE_KECCAK_F1600(keccak_f1600, uint64_t, SAME, )

static uint64_t load_le(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void keccak256(const unsigned char *data, size_t length, unsigned char out[32]) {
    uint64_t a[25] = {0};
    for (; length >= RATE; data += RATE, length -= RATE) {
        for (int i = 0; i < RATE / 8; i++) a[i] ^= load_le(data + 8 * i);
        keccak_f1600(a);
    }
    unsigned char last[RATE] = {0};
    memcpy(last, data, length);
    last[length] ^= 0x01;
    last[RATE - 1] ^= 0x80;
    for (int i = 0; i < RATE / 8; i++) a[i] ^= load_le(last + 8 * i);
    keccak_f1600(a);
    for (int i = 0; i < 32; i++) out[i] = (unsigned char)(a[i / 8] >> (8 * (i % 8)));
}

#endif
