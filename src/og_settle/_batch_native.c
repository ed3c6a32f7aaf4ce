/*
 * og_settle._batch_native: the per-leaf text work of `og-settle batch build`, in C.
 *
 * encode_lines(block, start, end) reads JSON lines of OpenGradient leaves
 *   {"tee_id": "0x<64 hex>", "input_hash": "0x<64 hex>", "output_hash": "0x<64 hex>",
 *    "tee_signature": "0x<even hex, at most 2048 digits>", "timestamp": <JSON integer below 2**256>}
 * (keys in any order, JSON whitespace between tokens) and returns (encodings, stop): the ABI encoding of
 * (bytes32, bytes32, bytes32, bytes, uint256) of each line of block[start:end], and the offset of
 * the first line it did not take. It takes only lines it is sure of; any other line (blank, escaped or
 * duplicate keys, 0X, a negative or huge number, an error) is left to the Python code, which stays the
 * judge of what is valid and names the field that is wrong (og_settle._merkle_stream).
 *
 * encode_payloads(payloads) does the same for a list of queued records' payload texts: JSON objects holding a
 * leaf's fields and other keys (ref, leaf_hash, payer, ...) whose values are simple (a string without escapes, an
 * integer, true, false, null); it gives None for any payload it is not sure of, left to Python likewise
 * (og_settle.relayer._batching).
 *
 * parse_entries(block, start, end) reads a dump's values entries in that compact form back (for verify).
 *
 * render_values(encodings, tree_index, start, stop) writes the dump's "values" entries
 *   {"value":["0x..","0x..","0x..","0x..","<decimal>"],"treeIndex":N}
 * for encodings[start:stop], comma-separated, exactly as StandardMerkleTree.dump_json() writes them.
 *
 * The hashing, in C, with the GIL released (and split across threads when there is enough of it):
 *
 * keccak256(data) -> the 32-byte Keccak-256 digest (Ethereum's: the original Keccak padding 0x01, not SHA-3's 0x06).
 * leaf_hashes(encodings, threads) -> keccak256(keccak256(e)) of each encoding, concatenated (32 bytes each).
 * merkle_tree(leaves, sort, threads) -> (tree, tree_index): OpenZeppelin's flat StandardMerkleTree array (32
 *   bytes per node) over the concatenated leaf hashes, sorted first (stably) when sort is true; tree_index[i]
 *   is the slot of leaf i.
 * first_bad_node(nodes, threads) -> the first internal node of a flat tree that is not the hash of its sorted
 *   children, or -1.
 * render_nodes(nodes, start, stop) -> the dump's "0x.." strings of nodes[start:stop], comma-separated.
 * decode_nodes(text) and check_leaves(...) -> verify's reading of the tree text and of each block of values.
 *
 * On x86-64 CPUs with AVX2 (checked at import) four messages of equal length are hashed at once, one Keccak
 * state per 64-bit slot of 256-bit vectors, with AVX-512's rotates where the CPU has them; the environment
 * variables OG_SETTLE_NO_AVX2 and OG_SETTLE_NO_AVX512 turn those off (tests use them to check that every path
 * gives the same).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_native_common.h"

#define SIG_MAX 1024
#define HEAD 192 /* three words, the tail offset, the timestamp, the signature's length word */

static const char *KEYS[5] = {"tee_id", "input_hash", "output_hash", "tee_signature", "timestamp"};
static const Py_ssize_t KEY_LENGTHS[5] = {6, 10, 11, 13, 9};

static const char *skip_space(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r')) p++;
    return p;
}

typedef struct {
    const char *hex[4]; /* the digits after 0x */
    Py_ssize_t hex_length[4];
    uint32_t timestamp[8]; /* little-endian limbs of the uint256 */
} Leaf;

/* Multiply the 256-bit number by 10 and add a digit; 0 on overflow past 2**256 - 1. */
static int times_ten_plus(uint32_t limbs[8], unsigned digit) {
    uint64_t carry = digit;
    for (int i = 0; i < 8; i++) {
        uint64_t v = (uint64_t)limbs[i] * 10 + carry;
        limbs[i] = (uint32_t)v;
        carry = v >> 32;
    }
    return carry == 0;
}

/* Past one JSON value of a key that is not the leaf's, if it is a simple one this code is sure of: a string
 * without escapes or control characters, an integer, true, false or null; else NULL (Python judges the rest). */
static const char *skip_simple_value(const char *p, const char *end) {
    if (p >= end) return NULL;
    if (*p == '"') {
        for (p++; p < end; p++) {
            unsigned char c = (unsigned char)*p;
            if (c == '"') return p + 1;
            if (c == '\\' || c < 0x20) return NULL;
        }
        return NULL;
    }
    if (*p == '-' || (*p >= '0' && *p <= '9')) {
        if (*p == '-') p++;
        if (p >= end || *p < '0' || *p > '9') return NULL;
        if (*p == '0' && p + 1 < end && p[1] >= '0' && p[1] <= '9') return NULL;
        while (p < end && *p >= '0' && *p <= '9') p++;
        if (p < end && (*p == '.' || *p == 'e' || *p == 'E')) return NULL;
        return p;
    }
    static const char *const LITERALS[3] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t length = strlen(LITERALS[i]);
        if ((size_t)(end - p) >= length && memcmp(p, LITERALS[i], length) == 0) return p + length;
    }
    return NULL;
}

/* Parse one line [p, end); 1 if it is a leaf in the accepted form, else 0. With other_keys, keys other than the
 * leaf's are skipped when their value is a simple one (skip_simple_value), as in a queued record's payload. */
static int parse_leaf(const char *p, const char *end, Leaf *leaf, int other_keys) {
    int seen = 0;
    p = skip_space(p, end);
    if (p >= end || *p != '{') return 0;
    p++;
    for (;;) {
        p = skip_space(p, end);
        if (p >= end || *p != '"') return 0;
        const char *key = ++p;
        while (p < end && *p != '"' && *p != '\\') p++;
        if (p >= end || *p != '"') return 0;
        Py_ssize_t key_length = p - key;
        p++;
        int field = -1;
        for (int i = 0; i < 5; i++) {
            if (key_length == KEY_LENGTHS[i] && memcmp(key, KEYS[i], (size_t)key_length) == 0) field = i;
        }
        if (field >= 0 && (seen & (1 << field))) return 0;
        if (field < 0 && !other_keys) return 0;
        p = skip_space(p, end);
        if (p >= end || *p != ':') return 0;
        p = skip_space(p + 1, end);
        if (field < 0) {
            p = skip_simple_value(p, end);
            if (p == NULL) return 0;
        } else if (field < 4) {
            if (end - p < 3 || p[0] != '"' || p[1] != '0' || p[2] != 'x') return 0;
            const char *digits = p + 3;
            p = digits;
            while (p < end && HEX[(unsigned char)*p] >= 0) p++;
            if (p >= end || *p != '"') return 0;
            Py_ssize_t length = p - digits;
            if (field < 3 ? length != 64 : (length % 2 != 0 || length > 2 * SIG_MAX)) return 0;
            leaf->hex[field] = digits;
            leaf->hex_length[field] = length;
            p++;
        } else {
            if (p >= end || *p < '0' || *p > '9') return 0;
            if (*p == '0' && p + 1 < end && p[1] >= '0' && p[1] <= '9') return 0; /* not JSON */
            memset(leaf->timestamp, 0, sizeof leaf->timestamp);
            while (p < end && *p >= '0' && *p <= '9') {
                if (!times_ten_plus(leaf->timestamp, (unsigned)(*p - '0'))) return 0;
                p++;
            }
            if (p < end && (*p == '.' || *p == 'e' || *p == 'E')) return 0;
        }
        if (field >= 0) seen |= 1 << field;
        p = skip_space(p, end);
        if (p >= end) return 0;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p != '}') return 0;
        p = skip_space(p + 1, end);
        return p == end && seen == 0x1f;
    }
}

static void put_hex(unsigned char *out, const char *digits, Py_ssize_t length) {
    for (Py_ssize_t i = 0; i < length; i += 2) {
        *out++ = (unsigned char)(HEX[(unsigned char)digits[i]] << 4 | HEX[(unsigned char)digits[i + 1]]);
    }
}

static void put_word(unsigned char *out, uint64_t value) {
    memset(out, 0, 24);
    for (int i = 0; i < 8; i++) out[31 - i] = (unsigned char)(value >> (8 * i));
}

static PyObject *encode(const Leaf *leaf) {
    Py_ssize_t signature = leaf->hex_length[3] / 2;
    Py_ssize_t padded = (signature + 31) / 32 * 32;
    PyObject *result = PyBytes_FromStringAndSize(NULL, HEAD + padded);
    if (result == NULL) return NULL;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    for (int i = 0; i < 3; i++) put_hex(out + 32 * i, leaf->hex[i], 64);
    put_word(out + 96, 160);
    for (int i = 0; i < 8; i++) {
        uint32_t limb = leaf->timestamp[7 - i];
        out[128 + 4 * i] = (unsigned char)(limb >> 24);
        out[129 + 4 * i] = (unsigned char)(limb >> 16);
        out[130 + 4 * i] = (unsigned char)(limb >> 8);
        out[131 + 4 * i] = (unsigned char)limb;
    }
    put_word(out + 160, (uint64_t)signature);
    put_hex(out + HEAD, leaf->hex[3], leaf->hex_length[3]);
    memset(out + HEAD + signature, 0, (size_t)(padded - signature));
    return result;
}

static PyObject *encode_lines(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer block;
    Py_ssize_t start, stop_at;
    if (!PyArg_ParseTuple(args, "y*nn", &block, &start, &stop_at)) return NULL;
    if (stop_at < block.len) block.len = stop_at < 0 ? 0 : stop_at; /* only [start, stop_at) is read */
    PyObject *encodings = PyList_New(0);
    if (encodings == NULL) {
        PyBuffer_Release(&block);
        return NULL;
    }
    const char *base = (const char *)block.buf;
    const char *end = base + block.len;
    const char *p = base + (start < 0 ? 0 : start > block.len ? block.len : start);
    Leaf leaf;
    while (p < end) {
        const char *line_end = memchr(p, '\n', (size_t)(end - p));
        if (line_end == NULL) line_end = end;
        if (!parse_leaf(p, line_end, &leaf, 0)) break;
        PyObject *encoded = encode(&leaf);
        if (encoded == NULL || PyList_Append(encodings, encoded) < 0) {
            Py_XDECREF(encoded);
            Py_DECREF(encodings);
            PyBuffer_Release(&block);
            return NULL;
        }
        Py_DECREF(encoded);
        p = line_end < end ? line_end + 1 : end;
    }
    Py_ssize_t stop = p - base;
    PyBuffer_Release(&block);
    return Py_BuildValue("(Nn)", encodings, stop);
}

static PyObject *encode_payloads(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *payloads;
    if (!PyArg_ParseTuple(args, "O!", &PyList_Type, &payloads)) return NULL;
    Py_ssize_t count = PyList_GET_SIZE(payloads);
    PyObject *encodings = PyList_New(count);
    if (encodings == NULL) return NULL;
    Leaf leaf;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *payload = PyList_GET_ITEM(payloads, i);
        PyObject *encoded = NULL;
        if (PyUnicode_Check(payload)) {
            Py_ssize_t length;
            const char *text = PyUnicode_AsUTF8AndSize(payload, &length);
            if (text == NULL) {
                PyErr_Clear(); /* not encodable (a lone surrogate): Python judges it */
            } else if (parse_leaf(text, text + length, &leaf, 1)) {
                encoded = encode(&leaf);
                if (encoded == NULL) {
                    Py_DECREF(encodings);
                    return NULL;
                }
            }
        }
        PyList_SET_ITEM(encodings, i, encoded != NULL ? encoded : Py_NewRef(Py_None));
    }
    return encodings;
}

static char *put_lower_hex(char *out, const unsigned char *data, Py_ssize_t length) {
    static const char DIGITS[] = "0123456789abcdef";
    for (Py_ssize_t i = 0; i < length; i++) {
        *out++ = DIGITS[data[i] >> 4];
        *out++ = DIGITS[data[i] & 15];
    }
    return out;
}

static char *put_u64(char *out, uint64_t value) {
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    while (n > 0) *out++ = digits[--n];
    return out;
}

/* The decimal digits of a big-endian uint256. */
static char *put_decimal(char *out, const unsigned char *word) {
    int small = 1;
    for (int i = 0; i < 24; i++) small &= word[i] == 0;
    if (small) {
        uint64_t value = 0;
        for (int i = 24; i < 32; i++) value = value << 8 | word[i];
        return put_u64(out, value);
    }
    uint32_t limbs[8];
    for (int i = 0; i < 8; i++) {
        const unsigned char *b = word + 4 * (7 - i);
        limbs[i] = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    }
    char digits[80];
    int n = 0;
    for (;;) {
        uint64_t remainder = 0;
        int zero = 1;
        for (int i = 7; i >= 0; i--) {
            uint64_t v = remainder << 32 | limbs[i];
            limbs[i] = (uint32_t)(v / 10);
            remainder = v % 10;
            zero &= limbs[i] == 0;
        }
        digits[n++] = (char)('0' + remainder);
        if (zero) break;
    }
    while (n > 0) *out++ = digits[--n];
    return out;
}

static PyObject *render_values(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *encodings, *tree_index;
    Py_ssize_t start, stop;
    if (!PyArg_ParseTuple(args, "O!O!nn", &PyList_Type, &encodings, &PyList_Type, &tree_index, &start, &stop)) {
        return NULL;
    }
    if (start < 0 || stop > PyList_GET_SIZE(encodings) || stop > PyList_GET_SIZE(tree_index) || start > stop) {
        PyErr_SetString(PyExc_IndexError, "render_values: range out of bounds");
        return NULL;
    }
    Py_ssize_t capacity = 0;
    for (Py_ssize_t i = start; i < stop; i++) {
        PyObject *encoded = PyList_GET_ITEM(encodings, i);
        if (!PyBytes_Check(encoded) || PyBytes_GET_SIZE(encoded) < HEAD) {
            PyErr_SetString(PyExc_TypeError, "render_values: an encoding is not an OpenGradient leaf's");
            return NULL;
        }
        capacity += 2 * PyBytes_GET_SIZE(encoded) + 160;
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, capacity);
    if (result == NULL) return NULL;
    char *out = PyBytes_AS_STRING(result);
    for (Py_ssize_t i = start; i < stop; i++) {
        PyObject *encoded = PyList_GET_ITEM(encodings, i);
        const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(encoded);
        Py_ssize_t size = PyBytes_GET_SIZE(encoded);
        uint64_t signature = 0;
        for (int k = 0; k < 8; k++) signature = signature << 8 | data[184 + k];
        for (int k = 160; k < 184; k++) {
            if (data[k]) signature = UINT64_MAX;
        }
        if (signature > (uint64_t)(size - HEAD)) {
            Py_DECREF(result);
            PyErr_SetString(PyExc_ValueError, "render_values: a signature's length word is out of range");
            return NULL;
        }
        Py_ssize_t slot = PyLong_AsSsize_t(PyList_GET_ITEM(tree_index, i));
        if (slot < 0) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "render_values: a negative tree index");
            Py_DECREF(result);
            return NULL;
        }
        if (i > start) *out++ = ',';
        memcpy(out, "{\"value\":[", 10);
        out += 10;
        for (int k = 0; k < 3; k++) {
            memcpy(out, "\"0x", 3);
            out = put_lower_hex(out + 3, data + 32 * k, 32);
            memcpy(out, "\",", 2);
            out += 2;
        }
        memcpy(out, "\"0x", 3);
        out = put_lower_hex(out + 3, data + HEAD, (Py_ssize_t)signature);
        memcpy(out, "\",\"", 3);
        out = put_decimal(out + 3, data + 128);
        memcpy(out, "\"],\"treeIndex\":", 15);
        out = put_u64(out + 15, (uint64_t)slot);
        *out++ = '}';
    }
    if (_PyBytes_Resize(&result, out - PyBytes_AS_STRING(result)) < 0) return NULL;
    return result;
}

/* Expect the literal text at p; the position after it, or NULL. */
static const char *literal(const char *p, const char *end, const char *text) {
    size_t n = strlen(text);
    if ((size_t)(end - p) < n || memcmp(p, text, n) != 0) return NULL;
    return p + n;
}

/* "0x" + hex digits + '"' already past the opening quote: the digits' span, checked; NULL if not so. */
static const char *hex_string(const char *p, const char *end, const char **digits, Py_ssize_t *length) {
    if (!(p = literal(p, end, "0x"))) return NULL;
    *digits = p;
    while (p < end && HEX[(unsigned char)*p] >= 0) p++;
    if (p >= end || *p != '"') return NULL;
    *length = p - *digits;
    return p + 1;
}

/* One entry {"value":[...5 strings...],"treeIndex":N} in the compact canonical form; NULL if not so. */
static const char *parse_entry(const char *p, const char *end, Leaf *leaf, Py_ssize_t *slot) {
    if (!(p = literal(p, end, "{\"value\":[\""))) return NULL;
    for (int field = 0; field < 4; field++) {
        if (!(p = hex_string(p, end, &leaf->hex[field], &leaf->hex_length[field]))) return NULL;
        Py_ssize_t length = leaf->hex_length[field];
        if (field < 3 ? length != 64 : (length % 2 != 0 || length > 2 * SIG_MAX)) return NULL;
        if (!(p = literal(p, end, ",\""))) return NULL;
    }
    if (p >= end || *p < '0' || *p > '9' || (*p == '0' && p + 1 < end && p[1] != '"')) return NULL;
    memset(leaf->timestamp, 0, sizeof leaf->timestamp);
    while (p < end && *p >= '0' && *p <= '9') {
        if (!times_ten_plus(leaf->timestamp, (unsigned)(*p - '0'))) return NULL;
        p++;
    }
    if (!(p = literal(p, end, "\"],\"treeIndex\":"))) return NULL;
    if (p >= end || *p < '0' || *p > '9' || (*p == '0' && p + 1 < end && p[1] != '}')) return NULL;
    Py_ssize_t value = 0;
    int digits = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        if (++digits > 17) return NULL;
        value = value * 10 + (*p - '0');
        p++;
    }
    *slot = value;
    return literal(p, end, "}");
}

static PyObject *parse_entries(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer block;
    Py_ssize_t start, stop_at;
    if (!PyArg_ParseTuple(args, "y*nn", &block, &start, &stop_at)) return NULL;
    if (stop_at < block.len) block.len = stop_at < 0 ? 0 : stop_at;
    PyObject *encodings = PyList_New(0), *slots = PyList_New(0);
    const char *base = (const char *)block.buf, *end = base + block.len;
    const char *p = base + (start < 0 ? 0 : start > block.len ? block.len : start), *taken = p;
    Leaf leaf;
    Py_ssize_t slot;
    if (encodings == NULL || slots == NULL) goto fail;
    while (p < end) {
        const char *next = parse_entry(p, end, &leaf, &slot);
        if (next == NULL || (next < end && *next != ',')) break;
        PyObject *encoded = encode(&leaf);
        PyObject *index = encoded ? PyLong_FromSsize_t(slot) : NULL;
        int failed = index == NULL || PyList_Append(encodings, encoded) < 0 || PyList_Append(slots, index) < 0;
        Py_XDECREF(encoded);
        Py_XDECREF(index);
        if (failed) goto fail;
        taken = next;
        p = next < end ? next + 1 : end;
    }
    PyBuffer_Release(&block);
    return Py_BuildValue("(NNn)", encodings, slots, (Py_ssize_t)(taken - base));
fail:
    Py_XDECREF(encodings);
    Py_XDECREF(slots);
    PyBuffer_Release(&block);
    return NULL;
}

/* OpenZeppelin's commutative node hash: keccak256 of the two 32-byte children, the smaller first. */
static void hash_pair(const unsigned char *a, const unsigned char *b, unsigned char out[32]) {
    unsigned char pair[64];
    int a_first = memcmp(a, b, 32) < 0;
    memcpy(pair, a_first ? a : b, 32);
    memcpy(pair + 32, a_first ? b : a, 32);
    keccak256(pair, 64, out);
}

/* Four hashes at once, when the CPU has AVX2 (checked at import): four states in the four 64-bit slots of
 * 256-bit vectors, so one permutation's instructions serve four messages of the same length. */
#if defined(__GNUC__) && defined(__x86_64__)
#define FOUR_WAY 1
typedef uint64_t Lanes4 __attribute__((vector_size(32)));
#define FOUR(v) ((Lanes4){(v), (v), (v), (v)})
#define AVX2 __attribute__((target("avx2")))
DEFINE_KECCAK_F1600(keccak_f1600_x4_avx2, Lanes4, FOUR, AVX2)
/* The same with AVX-512's vector rotate and three-input logic where the CPU has them (the same results). */
DEFINE_KECCAK_F1600(keccak_f1600_x4_avx512, Lanes4, FOUR, __attribute__((target("avx2,avx512f,avx512vl"))))

static int four_way; /* the CPU has AVX2 */
static void (*keccak_f1600_x4)(Lanes4 a[25]) = keccak_f1600_x4_avx2;

AVX2 static void keccak256_x4(const unsigned char *const data[4], size_t length, unsigned char *const out[4]) {
    Lanes4 a[25];
    for (int i = 0; i < 25; i++) a[i] = FOUR(0);
    size_t offset = 0;
    for (; length - offset >= RATE; offset += RATE) {
        for (int i = 0; i < RATE / 8; i++) {
            size_t at = offset + 8 * (size_t)i;
            a[i] ^= (Lanes4){load_le(data[0] + at), load_le(data[1] + at), load_le(data[2] + at), load_le(data[3] + at)};
        }
        keccak_f1600_x4(a);
    }
    unsigned char last[4][RATE];
    memset(last, 0, sizeof last);
    for (int k = 0; k < 4; k++) {
        memcpy(last[k], data[k] + offset, length - offset);
        last[k][length - offset] ^= 0x01;
        last[k][RATE - 1] ^= 0x80;
    }
    for (int i = 0; i < RATE / 8; i++) {
        a[i] ^= (Lanes4){load_le(last[0] + 8 * i), load_le(last[1] + 8 * i), load_le(last[2] + 8 * i), load_le(last[3] + 8 * i)};
    }
    keccak_f1600_x4(a);
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < 32; i++) out[k][i] = (unsigned char)(a[i / 8][k] >> (8 * (i % 8)));
    }
}

/* The node hashes of the children of nodes first .. first + 3 of a flat tree, into out[0..3]. */
static void hash_pairs_x4(const unsigned char *tree, Py_ssize_t first, unsigned char *const out[4]) {
    unsigned char pairs[4][64];
    const unsigned char *data[4] = {pairs[0], pairs[1], pairs[2], pairs[3]};
    for (int k = 0; k < 4; k++) {
        const unsigned char *a = tree + 32 * (2 * (first + k) + 1), *b = a + 32;
        int a_first = memcmp(a, b, 32) < 0;
        memcpy(pairs[k], a_first ? a : b, 32);
        memcpy(pairs[k] + 32, a_first ? b : a, 32);
    }
    keccak256_x4(data, 64, out);
}
#else
#define FOUR_WAY 0
#endif

/* ---------------------------------------------------------------------------------------------------------
 * Work split across threads: [0, n) in equal contiguous parts, the caller's thread taking the first; one
 * thread does it all when asked for one or when n is small. Callers hold no GIL and touch no Python object.
 */

typedef void (*RangeWork)(void *context, Py_ssize_t start, Py_ssize_t stop);

typedef struct {
    RangeWork work;
    void *context;
    Py_ssize_t start, stop;
} Part;

#define MAX_THREADS 16
#define PARALLEL_MIN 1024

static void *run_part(void *arg) {
    Part *part = (Part *)arg;
    part->work(part->context, part->start, part->stop);
    return NULL;
}

static void in_parallel(RangeWork work, void *context, Py_ssize_t n, int threads) {
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads < 2 || n < PARALLEL_MIN) {
        work(context, 0, n);
        return;
    }
    Part parts[MAX_THREADS];
    pthread_t ids[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int t = 0; t < threads; t++) parts[t] = (Part){work, context, n * t / threads, n * (t + 1) / threads};
    for (int t = 1; t < threads; t++) {
        started[t] = pthread_create(&ids[t], NULL, run_part, &parts[t]) == 0;
        if (!started[t]) run_part(&parts[t]); /* no thread to be had: do it here */
    }
    run_part(&parts[0]);
    for (int t = 1; t < threads; t++) {
        if (started[t]) pthread_join(ids[t], NULL);
    }
}

static int thread_count(PyObject *value) {
    long threads = PyLong_AsLong(value);
    if (threads == -1 && PyErr_Occurred()) return -1;
    return threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : (int)threads;
}

/* ---------------------------------------------------------------------------------------------------------
 * The Python functions
 */

static PyObject *py_keccak256(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "y*", &data)) return NULL;
    unsigned char digest[32];
    Py_BEGIN_ALLOW_THREADS keccak256((const unsigned char *)data.buf, (size_t)data.len, digest);
    Py_END_ALLOW_THREADS PyBuffer_Release(&data);
    return PyBytes_FromStringAndSize((const char *)digest, 32);
}

typedef struct {
    const unsigned char **data;
    const Py_ssize_t *length;
    unsigned char *out;
} LeafWork;

static void hash_leaves(void *context, Py_ssize_t start, Py_ssize_t stop) {
    const LeafWork *w = (const LeafWork *)context;
    unsigned char inner[32];
    Py_ssize_t i = start;
#if FOUR_WAY
    unsigned char middle[4][32];
    unsigned char *const middles[4] = {middle[0], middle[1], middle[2], middle[3]};
    const unsigned char *const middles_in[4] = {middle[0], middle[1], middle[2], middle[3]};
    while (four_way && i + 4 <= stop) {
        const Py_ssize_t *length = w->length + i;
        if (length[0] != length[1] || length[0] != length[2] || length[0] != length[3]) {
            keccak256(w->data[i], (size_t)length[0], inner); /* one alone, then four again */
            keccak256(inner, 32, w->out + 32 * i);
            i++;
            continue;
        }
        unsigned char *const outs[4] = {w->out + 32 * i, w->out + 32 * i + 32, w->out + 32 * i + 64, w->out + 32 * i + 96};
        keccak256_x4(w->data + i, (size_t)length[0], middles);
        keccak256_x4(middles_in, 32, outs);
        i += 4;
    }
#endif
    for (; i < stop; i++) {
        keccak256(w->data[i], (size_t)w->length[i], inner);
        keccak256(inner, 32, w->out + 32 * i);
    }
}

static PyObject *py_leaf_hashes(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *sequence, *thread_arg;
    if (!PyArg_ParseTuple(args, "OO", &sequence, &thread_arg)) return NULL;
    int threads = thread_count(thread_arg);
    if (threads < 0) return NULL;
    PyObject *items = PySequence_Tuple(sequence); /* holds every item while the GIL is released */
    if (items == NULL) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(items);
    const unsigned char **data = PyMem_Malloc(sizeof *data * (size_t)(n ? n : 1));
    Py_ssize_t *length = PyMem_Malloc(sizeof *length * (size_t)(n ? n : 1));
    PyObject *result = NULL;
    if (data == NULL || length == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(items, i);
        if (!PyBytes_Check(item)) {
            PyErr_Format(PyExc_TypeError, "leaf_hashes: item %zd is not bytes", i);
            goto done;
        }
        data[i] = (const unsigned char *)PyBytes_AS_STRING(item);
        length[i] = PyBytes_GET_SIZE(item);
    }
    result = PyBytes_FromStringAndSize(NULL, 32 * n);
    if (result == NULL) goto done;
    LeafWork work = {data, length, (unsigned char *)PyBytes_AS_STRING(result)};
    Py_BEGIN_ALLOW_THREADS in_parallel(hash_leaves, &work, n, threads);
    Py_END_ALLOW_THREADS
done:
    PyMem_Free(data);
    PyMem_Free(length);
    Py_DECREF(items);
    return result;
}

typedef struct {
    uint64_t key; /* the hash's first 8 bytes, big-endian: the radix sort's key */
    const unsigned char *hash;
    Py_ssize_t index;
} SortItem;

#define DIGITS 65536 /* the radix sort's digits are 16 bits */

/* Sort items by hash, stably (as Python's and JavaScript's sorts): a least-significant-digit radix sort on the
 * keys (four passes, each stable, through `spare`), then equal keys put in order by their whole hashes. */
static void sort_items(SortItem *items, SortItem *spare, size_t *counts, Py_ssize_t n) {
    SortItem *from = items, *to = spare;
    for (int shift = 0; shift < 64; shift += 16) {
        memset(counts, 0, DIGITS * sizeof *counts);
        for (Py_ssize_t i = 0; i < n; i++) counts[(from[i].key >> shift) & (DIGITS - 1)]++;
        size_t total = 0;
        for (size_t d = 0; d < DIGITS; d++) {
            size_t count = counts[d];
            counts[d] = total;
            total += count;
        }
        for (Py_ssize_t i = 0; i < n; i++) to[counts[(from[i].key >> shift) & (DIGITS - 1)]++] = from[i];
        SortItem *swap = from;
        from = to;
        to = swap;
    } /* four passes: the items are back in `items` */
    for (Py_ssize_t i = 1; i < n; i++) {
        for (Py_ssize_t j = i; j > 0 && items[j - 1].key == items[j].key && memcmp(items[j - 1].hash, items[j].hash, 32) > 0; j--) {
            SortItem swap = items[j];
            items[j] = items[j - 1];
            items[j - 1] = swap;
        }
    }
}

typedef struct {
    unsigned char *tree;
    Py_ssize_t first; /* the level's first node */
} LevelWork;

static void hash_level(void *context, Py_ssize_t start, Py_ssize_t stop) {
    const LevelWork *w = (const LevelWork *)context;
    Py_ssize_t i = w->first + start;
#if FOUR_WAY
    for (; four_way && i + 4 <= w->first + stop; i += 4) {
        unsigned char *const outs[4] = {w->tree + 32 * i, w->tree + 32 * i + 32, w->tree + 32 * i + 64, w->tree + 32 * i + 96};
        hash_pairs_x4(w->tree, i, outs);
    }
#endif
    for (; i < w->first + stop; i++) {
        hash_pair(w->tree + 32 * (2 * i + 1), w->tree + 32 * (2 * i + 2), w->tree + 32 * i);
    }
}

/* Fill the internal nodes of a flat tree of size 2n - 1 whose leaves are in place, deepest level first. */
static void fill_internal(unsigned char *tree, Py_ssize_t n, int threads) {
    Py_ssize_t last = n - 2; /* the last internal node */
    if (last < 0) return;
    int depth = 0;
    while (((Py_ssize_t)2 << depth) - 2 < last) depth++; /* the depth of node `last` */
    for (; depth >= 0; depth--) {
        Py_ssize_t lo = ((Py_ssize_t)1 << depth) - 1;
        Py_ssize_t hi = ((Py_ssize_t)2 << depth) - 2;
        if (hi > last) hi = last;
        LevelWork work = {tree, lo};
        in_parallel(hash_level, &work, hi - lo + 1, threads);
    }
}

static PyObject *py_merkle_tree(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer leaves;
    int sort;
    PyObject *thread_arg;
    if (!PyArg_ParseTuple(args, "y*pO", &leaves, &sort, &thread_arg)) return NULL;
    int threads = thread_count(thread_arg);
    Py_ssize_t n = leaves.len / 32;
    PyObject *tree = NULL, *tree_index = NULL;
    SortItem *items = NULL, *spare = NULL;
    size_t *counts = NULL;
    if (threads < 0) goto fail;
    if (n == 0 || leaves.len % 32) {
        PyErr_SetString(PyExc_ValueError, "merkle_tree: expected one or more 32-byte leaf hashes");
        goto fail;
    }
    items = PyMem_Malloc(sizeof *items * (size_t)n);
    spare = sort ? PyMem_Malloc(sizeof *spare * (size_t)n) : NULL;
    counts = sort ? PyMem_Malloc(sizeof *counts * DIGITS) : NULL;
    tree = PyBytes_FromStringAndSize(NULL, 32 * (2 * n - 1));
    tree_index = PyList_New(n);
    if (items == NULL || (sort && (spare == NULL || counts == NULL)) || tree == NULL || tree_index == NULL) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto fail;
    }
    const unsigned char *hashes = (const unsigned char *)leaves.buf;
    unsigned char *nodes = (unsigned char *)PyBytes_AS_STRING(tree);
    Py_BEGIN_ALLOW_THREADS for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t key = 0;
        for (int k = 0; k < 8; k++) key = key << 8 | hashes[32 * i + k];
        items[i] = (SortItem){key, hashes + 32 * i, i};
    }
    if (sort) sort_items(items, spare, counts, n);
    for (Py_ssize_t position = 0; position < n; position++) { /* the leaves, reversed, in the last n slots */
        memcpy(nodes + 32 * (2 * n - 2 - position), items[position].hash, 32);
    }
    fill_internal(nodes, n, threads);
    Py_END_ALLOW_THREADS for (Py_ssize_t position = 0; position < n; position++) {
        PyObject *slot = PyLong_FromSsize_t(2 * n - 2 - position);
        if (slot == NULL) goto fail;
        PyList_SET_ITEM(tree_index, items[position].index, slot);
    }
    PyMem_Free(items);
    PyMem_Free(spare);
    PyMem_Free(counts);
    PyBuffer_Release(&leaves);
    return Py_BuildValue("(NN)", tree, tree_index);
fail:
    PyMem_Free(items);
    PyMem_Free(spare);
    PyMem_Free(counts);
    Py_XDECREF(tree);
    Py_XDECREF(tree_index);
    PyBuffer_Release(&leaves);
    return NULL;
}

typedef struct {
    const unsigned char *nodes;
    Py_ssize_t first_bad; /* the lowest bad node found so far, or PY_SSIZE_T_MAX; updated atomically */
} CheckWork;

static void check_nodes(void *context, Py_ssize_t start, Py_ssize_t stop) {
    CheckWork *w = (CheckWork *)context;
    unsigned char digest[32];
    Py_ssize_t i = start;
#if FOUR_WAY
    unsigned char digests[4][32];
    unsigned char *const outs[4] = {digests[0], digests[1], digests[2], digests[3]};
    for (; four_way && i + 4 <= stop; i += 4) {
        if (i >= __atomic_load_n(&w->first_bad, __ATOMIC_RELAXED)) return;
        hash_pairs_x4(w->nodes, i, outs);
        int k = 0;
        while (k < 4 && memcmp(digests[k], w->nodes + 32 * (i + k), 32) == 0) k++;
        if (k < 4) {
            stop = i + k + 1; /* the scalar loop below finds it again and records it */
            break;
        }
    }
#endif
    for (; i < stop; i++) {
        if (i >= __atomic_load_n(&w->first_bad, __ATOMIC_RELAXED)) return;
        hash_pair(w->nodes + 32 * (2 * i + 1), w->nodes + 32 * (2 * i + 2), digest);
        if (memcmp(digest, w->nodes + 32 * i, 32) != 0) {
            Py_ssize_t seen = __atomic_load_n(&w->first_bad, __ATOMIC_RELAXED);
            while (i < seen && !__atomic_compare_exchange_n(&w->first_bad, &seen, i, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
            }
            return;
        }
    }
}

static PyObject *py_first_bad_node(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer nodes;
    PyObject *thread_arg;
    if (!PyArg_ParseTuple(args, "y*O", &nodes, &thread_arg)) return NULL;
    int threads = thread_count(thread_arg);
    if (threads < 0 || nodes.len % 32 || (nodes.len / 32) % 2 == 0) {
        if (threads >= 0) PyErr_SetString(PyExc_ValueError, "first_bad_node: expected an odd number of 32-byte nodes");
        PyBuffer_Release(&nodes);
        return NULL;
    }
    CheckWork work = {(const unsigned char *)nodes.buf, PY_SSIZE_T_MAX};
    Py_BEGIN_ALLOW_THREADS in_parallel(check_nodes, &work, nodes.len / 64, threads);
    Py_END_ALLOW_THREADS PyBuffer_Release(&nodes);
    return PyLong_FromSsize_t(work.first_bad == PY_SSIZE_T_MAX ? -1 : work.first_bad);
}

static PyObject *py_render_nodes(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer nodes;
    Py_ssize_t start, stop;
    if (!PyArg_ParseTuple(args, "y*nn", &nodes, &start, &stop)) return NULL;
    if (start < 0 || start > stop || 32 * stop > nodes.len) {
        PyErr_SetString(PyExc_IndexError, "render_nodes: range out of bounds");
        PyBuffer_Release(&nodes);
        return NULL;
    }
    Py_ssize_t count = stop - start;
    PyObject *result = PyBytes_FromStringAndSize(NULL, count ? 69 * count - 1 : 0);
    if (result != NULL) {
        char *out = PyBytes_AS_STRING(result);
        for (Py_ssize_t i = start; i < stop; i++) {
            if (i > start) *out++ = ',';
            memcpy(out, "\"0x", 3);
            out = put_lower_hex(out + 3, (const unsigned char *)nodes.buf + 32 * i, 32);
            *out++ = '"';
        }
    }
    PyBuffer_Release(&nodes);
    return result;
}


/* check_leaves(nodes, hashes, slots, first_leaf, used_by, first) -> bool: for a block of a dump's values (the
 * k-th has leaf hash hashes[32k:32k+32] and tree index slots[k]), check that every slot is a leaf slot not
 * yet in used_by (an int64 array, -1 where free, indexed by slot - first_leaf), then mark it used by value
 * first + k, and that every value hashes to its slot's node. False, with used_by as it was, if anything is
 * wrong: the caller then checks the block again the slow way and names the fault. */
static PyObject *py_check_leaves(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer nodes, hashes, used_by;
    PyObject *slots;
    Py_ssize_t first_leaf, first;
    if (!PyArg_ParseTuple(args, "y*y*O!nw*n", &nodes, &hashes, &PyList_Type, &slots, &first_leaf, &used_by, &first)) {
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(slots), size = nodes.len / 32, marked = 0;
    int64_t *used = (int64_t *)used_by.buf;
    Py_ssize_t used_count = used_by.len / (Py_ssize_t)sizeof(int64_t);
    int ok = hashes.len == 32 * count && used_by.itemsize == sizeof(int64_t) && first_leaf >= 0;
    for (; ok && marked < count; marked++) {
        Py_ssize_t slot = PyLong_AsSsize_t(PyList_GET_ITEM(slots, marked));
        if (slot == -1 && PyErr_Occurred()) PyErr_Clear();
        if (slot < first_leaf || slot >= size || slot - first_leaf >= used_count || used[slot - first_leaf] >= 0 ||
            memcmp((const char *)nodes.buf + 32 * slot, (const char *)hashes.buf + 32 * marked, 32) != 0) {
            ok = 0;
            break;
        }
        used[slot - first_leaf] = first + marked;
    }
    if (!ok) {
        while (marked-- > 0) used[PyLong_AsSsize_t(PyList_GET_ITEM(slots, marked)) - first_leaf] = -1;
    }
    PyBuffer_Release(&nodes);
    PyBuffer_Release(&hashes);
    PyBuffer_Release(&used_by);
    return PyBool_FromLong(ok);
}


/* decode_nodes(text) -> bytes | None: the 32-byte nodes of a dump's tree text, '"0x<64 hex digits>",' per node
 * (its framing already checked by the caller), or None if any of those digits is not a hex digit. */
static PyObject *py_decode_nodes(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer text;
    if (!PyArg_ParseTuple(args, "y*", &text)) return NULL;
    Py_ssize_t count = text.len / 69;
    PyObject *result = PyBytes_FromStringAndSize(NULL, 32 * count);
    if (result != NULL) {
        const unsigned char *in = (const unsigned char *)text.buf;
        unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
        int bad = 0;
        for (Py_ssize_t i = 0; i < count; i++, in += 69, out += 32) {
            for (int k = 0; k < 32; k++) {
                signed char high = HEX[in[3 + 2 * k]], low = HEX[in[4 + 2 * k]];
                bad |= (high | low) < 0;
                out[k] = (unsigned char)((high & 15) << 4 | (low & 15));
            }
        }
        if (bad) {
            Py_DECREF(result);
            result = Py_NewRef(Py_None);
        }
    }
    PyBuffer_Release(&text);
    return result;
}

static PyMethodDef methods[] = {
    {"encode_lines", encode_lines, METH_VARARGS,
     "encode_lines(block, start, end) -> (encodings, stop): the ABI encodings of the OpenGradient leaves on "
     "the lines of block[start:end], up to the first line left to Python (stop is its offset)."},
    {"encode_payloads", encode_payloads, METH_VARARGS,
     "encode_payloads(payloads) -> list[bytes | None]: the ABI encoding of the OpenGradient leaf in each queued "
     "record's payload text (a JSON object holding the leaf's fields and other keys with simple values), None for "
     "a payload left to Python."},
    {"parse_entries", parse_entries, METH_VARARGS,
     "parse_entries(block, start, end) -> (encodings, tree_indexes, stop): the ABI encodings and tree indexes of "
     "the compact OpenGradient entries of a dump's values in block[start:end], comma-separated, up to the first "
     "entry in another form (stop is where the last one taken ends)."},
    {"render_values", render_values, METH_VARARGS,
     "render_values(encodings, tree_index, start, stop) -> bytes: the dump's values entries for "
     "encodings[start:stop], comma-separated."},
    {"keccak256", py_keccak256, METH_VARARGS, "keccak256(data) -> bytes: the Keccak-256 digest (Ethereum's)."},
    {"leaf_hashes", py_leaf_hashes, METH_VARARGS,
     "leaf_hashes(encodings, threads) -> bytes: keccak256(keccak256(e)) of each encoding, 32 bytes each, "
     "concatenated."},
    {"merkle_tree", py_merkle_tree, METH_VARARGS,
     "merkle_tree(leaves, sort, threads) -> (tree, tree_index): the flat StandardMerkleTree array over the "
     "concatenated 32-byte leaf hashes (sorted stably first when sort is true), 32 bytes per node, and each "
     "leaf's slot in it."},
    {"first_bad_node", py_first_bad_node, METH_VARARGS,
     "first_bad_node(nodes, threads) -> int: the first internal node of a flat tree (32 bytes per node) that is "
     "not the hash of its sorted children, or -1."},
    {"render_nodes", py_render_nodes, METH_VARARGS,
     "render_nodes(nodes, start, stop) -> bytes: the dump's \"0x..\" strings of nodes[start:stop], comma-separated."},
    {"check_leaves", py_check_leaves, METH_VARARGS,
     "check_leaves(nodes, hashes, slots, first_leaf, used_by, first) -> bool: a block of a dump's values sits on "
     "free leaf slots (then marked in used_by) and hashes to them; False, used_by unchanged, if not."},
    {"decode_nodes", py_decode_nodes, METH_VARARGS,
     "decode_nodes(text) -> bytes | None: the 32-byte nodes of a dump's tree text ('\"0x<64 hex>\",' per node), "
     "or None if a digit is not hex."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_batch_native", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__batch_native(void) {
    fill_hex_table();
#if FOUR_WAY
    __builtin_cpu_init();
    four_way = __builtin_cpu_supports("avx2") && getenv("OG_SETTLE_NO_AVX2") == NULL;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && getenv("OG_SETTLE_NO_AVX512") == NULL) {
        keccak_f1600_x4 = keccak_f1600_x4_avx512;
    }
#endif
    return PyModule_Create(&module);
}
