/*
 * og_settle._intake_native: relayer intake's fast path for its most common record, a secp256k1 TEE's batch leaf.
 *
 * verify_leaves(lines, first_line, name, params, signer_for, secp) -> list with one entry per line of lines (a
 * list of bytes, line first_line first): the staged row (seq, kind, lane, key, payload, state, None, source) of a
 * line it is sure the Python code (og_settle.relayer._intake) accepts, else None, and the Python code judges the line.
 * It takes only a line that is, byte for byte,
 *
 *   {"kind": "inference", "mode": "batch"|"private", "ref": <null or a string of printable ASCII without " or \>,
 *    "tee_id": "0x<64 hex>", "input_hash": "0x<64 hex>", "output_hash": "0x<64 hex>",
 *    "tee_signature": "0x<130 hex>", "timestamp": <JSON integer of at most 15 digits>}
 *
 * (keys in any order, each at most once, mode and ref optional, JSON whitespace between tokens, no longer than
 * the record limit), whose timestamp is in the window, whose TEE's active key is a secp256k1 signer (asked of
 * signer_for(tee_id), which gives its 20-byte address or None; once per TEE per call), and whose signature is
 * r || s || v with v 27 or 28 and low s, recovering (libsecp256k1) to that signer from the EIP-712 digest
 * keccak256(prefix || keccak256(typehash || teeId || inputHash || outputHash || timestamp)). Anything else - an
 * escape, an unknown or repeated key, a payer, an RSA TEE, a bad signature - is left to Python, which stays the judge
 * and names what is wrong.
 *
 * params = (prefix (0x1901 || domain separator), typehash, lowest timestamp, highest timestamp, max line bytes,
 *           kind, batch lane, private lane, state): the Python values the row carries.
 * secp = (context, recoverable_signature_parse_compact, ecdsa_recover, ec_pubkey_serialize, uncompressed flag):
 *        addresses of coincurve's libsecp256k1 context and functions (see og_settle.relayer._intake_fast).
 *
 * The row's key is the leaf hash keccak256(keccak256(abi.encode(teeId, inputHash, outputHash, teeSignature,
 * timestamp))) and its payload the JSON Python writes for the leaf (sorted keys, compact, lowercase hex). The
 * hashing and the signature recovery run with the GIL released.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_native_common.h"

#define SIG_BYTES 65
#define ENCODED_BYTES (192 + 96) /* three words, the offset, the timestamp, the length word, the padded signature */
#define MAX_TIMESTAMP_DIGITS 15
#define MAX_REF 4096

typedef int (*ParseCompact)(const void *ctx, void *sig, const unsigned char *input64, int recid);
typedef int (*Recover)(const void *ctx, void *pubkey, const void *sig, const unsigned char *msg32);
typedef int (*Serialize)(const void *ctx, unsigned char *output, size_t *outputlen, const void *pubkey, unsigned int flags);

typedef struct {
    const void *ctx;
    ParseCompact parse_compact;
    Recover recover;
    Serialize serialize;
    unsigned int uncompressed;
} Secp;

typedef struct {
    int taken;           /* parsed and its TEE has a signer: to check */
    int is_private;      /* mode "private" */
    const char *hex[4];  /* tee_id, input_hash, output_hash, tee_signature: the digits after 0x */
    const char *ref;     /* the ref string's characters, or NULL for null / no ref */
    Py_ssize_t ref_length;
    uint64_t timestamp;
    const char *timestamp_text;
    Py_ssize_t timestamp_length;
    const unsigned char *signer; /* 20 bytes */
    unsigned char tee_id[32], input_hash[32], output_hash[32], signature[SIG_BYTES];
    unsigned char leaf[32];
} Line;

enum { K_KIND, K_MODE, K_REF, K_TEE_ID, K_INPUT, K_OUTPUT, K_SIGNATURE, K_TIMESTAMP, K_COUNT };
static const char *KEYS[K_COUNT] = {"kind", "mode", "ref", "tee_id", "input_hash", "output_hash", "tee_signature",
                                    "timestamp"};
static const int REQUIRED = (1 << K_KIND) | (1 << K_TEE_ID) | (1 << K_INPUT) | (1 << K_OUTPUT) | (1 << K_SIGNATURE) |
                            (1 << K_TIMESTAMP);

/* secp256k1's group order n, halved (rounded down): the largest low s. */
static const unsigned char HALF_N[32] = {0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                         0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x5D, 0x57, 0x6E, 0x73, 0x57, 0xA4,
                                         0x50, 0x1D, 0xDF, 0xE9, 0x2F, 0x46, 0x68, 0x1B, 0x20, 0xA0};

static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) p++;
    return p;
}

/* A JSON string without escapes at p: its characters in [*text, *text + *length); the position after it, or NULL. */
static const char *plain_string(const char *p, const char *end, const char **text, Py_ssize_t *length) {
    if (p >= end || *p != '"') return NULL;
    const char *start = ++p;
    while (p < end && *p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c > 0x7e || c == '\\') return NULL;
        p++;
    }
    if (p >= end) return NULL;
    *text = start;
    *length = p - start;
    return p + 1;
}

static int same(const char *text, Py_ssize_t length, const char *word) {
    return (size_t)length == strlen(word) && memcmp(text, word, (size_t)length) == 0;
}

/* "0x" + exactly digits hex digits, decoded into out; 0 if not so. */
static int hex_value(const char *text, Py_ssize_t length, Py_ssize_t digits, unsigned char *out, const char **start) {
    if (length != digits + 2 || text[0] != '0' || (text[1] != 'x' && text[1] != 'X')) return 0;
    for (Py_ssize_t i = 0; i < digits; i += 2) {
        int high = HEX[(unsigned char)text[2 + i]], low = HEX[(unsigned char)text[3 + i]];
        if (high < 0 || low < 0) return 0;
        out[i / 2] = (unsigned char)(high << 4 | low);
    }
    *start = text + 2;
    return 1;
}

/* Parse one line [p, end); 1 if it has the accepted form (the checks needing no key or signature done). */
static int parse(const char *p, const char *end, Line *line, long long lowest, long long highest) {
    int seen = 0;
    line->ref = NULL;
    line->is_private = 0;
    p = skip_ws(p, end);
    if (p >= end || *p != '{') return 0;
    p++;
    for (;;) {
        const char *key;
        Py_ssize_t key_length;
        p = plain_string(skip_ws(p, end), end, &key, &key_length);
        if (p == NULL) return 0;
        int field = -1;
        for (int i = 0; i < K_COUNT; i++) {
            if (same(key, key_length, KEYS[i])) field = i;
        }
        if (field < 0 || (seen & (1 << field))) return 0;
        seen |= 1 << field;
        p = skip_ws(p, end);
        if (p >= end || *p != ':') return 0;
        p = skip_ws(p + 1, end);
        const char *text;
        Py_ssize_t length;
        if (field == K_TIMESTAMP) {
            const char *digits = p;
            while (p < end && *p >= '0' && *p <= '9') p++;
            length = p - digits;
            if (length == 0 || length > MAX_TIMESTAMP_DIGITS || (digits[0] == '0' && length > 1)) return 0;
            if (p < end && (*p == '.' || *p == 'e' || *p == 'E')) return 0;
            uint64_t value = 0;
            for (Py_ssize_t i = 0; i < length; i++) value = value * 10 + (uint64_t)(digits[i] - '0');
            if ((long long)value < lowest || (long long)value > highest) return 0;
            line->timestamp = value;
            line->timestamp_text = digits;
            line->timestamp_length = length;
        } else if (field == K_REF && end - p >= 4 && memcmp(p, "null", 4) == 0) {
            p += 4;
        } else {
            p = plain_string(p, end, &text, &length);
            if (p == NULL) return 0;
            switch (field) {
            case K_KIND:
                if (!same(text, length, "inference")) return 0;
                break;
            case K_MODE:
                if (same(text, length, "private")) line->is_private = 1;
                else if (!same(text, length, "batch")) return 0;
                break;
            case K_REF:
                if (length > MAX_REF) return 0;
                line->ref = text;
                line->ref_length = length;
                break;
            case K_TEE_ID:
                if (!hex_value(text, length, 64, line->tee_id, &line->hex[0])) return 0;
                break;
            case K_INPUT:
                if (!hex_value(text, length, 64, line->input_hash, &line->hex[1])) return 0;
                break;
            case K_OUTPUT:
                if (!hex_value(text, length, 64, line->output_hash, &line->hex[2])) return 0;
                break;
            default: /* K_SIGNATURE */
                if (!hex_value(text, length, 2 * SIG_BYTES, line->signature, &line->hex[3])) return 0;
            }
        }
        p = skip_ws(p, end);
        if (p >= end) return 0;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p != '}') return 0;
        return skip_ws(p + 1, end) == end && (seen & REQUIRED) == REQUIRED;
    }
}

static void put_u64_word(unsigned char *out, uint64_t value) {
    memset(out, 0, 24);
    for (int i = 0; i < 8; i++) out[31 - i] = (unsigned char)(value >> (8 * i));
}

/* The signature recovers to the line's signer from the EIP-712 digest; then the leaf hash. 1 if all is well. */
static int check(Line *line, const Secp *secp, const unsigned char prefix[34], const unsigned char typehash[32]) {
    unsigned char v = line->signature[64];
    if (v != 27 && v != 28) return 0;
    if (memcmp(line->signature + 32, HALF_N, 32) > 0) return 0;
    unsigned char words[160], digest_input[66], digest[32];
    memcpy(words, typehash, 32);
    memcpy(words + 32, line->tee_id, 32);
    memcpy(words + 64, line->input_hash, 32);
    memcpy(words + 96, line->output_hash, 32);
    put_u64_word(words + 128, line->timestamp);
    memcpy(digest_input, prefix, 34);
    keccak256(words, sizeof words, digest_input + 34);
    keccak256(digest_input, sizeof digest_input, digest);
    /* libsecp256k1's opaque structs: 65 bytes for a recoverable signature, 64 for a public key */
    _Alignas(16) unsigned char signature[65], public_key[64], serialized[65];
    size_t serialized_length = sizeof serialized;
    if (!secp->parse_compact(secp->ctx, signature, line->signature, v - 27)) return 0;
    if (!secp->recover(secp->ctx, public_key, signature, digest)) return 0;
    if (!secp->serialize(secp->ctx, serialized, &serialized_length, public_key, secp->uncompressed)) return 0;
    if (serialized_length != 65 || serialized[0] != 4) return 0;
    unsigned char address[32];
    keccak256(serialized + 1, 64, address);
    if (memcmp(address + 12, line->signer, 20) != 0) return 0;
    unsigned char encoded[ENCODED_BYTES], inner[32];
    memcpy(encoded, line->tee_id, 32);
    memcpy(encoded + 32, line->input_hash, 32);
    memcpy(encoded + 64, line->output_hash, 32);
    put_u64_word(encoded + 96, 160);
    put_u64_word(encoded + 128, line->timestamp);
    put_u64_word(encoded + 160, SIG_BYTES);
    memcpy(encoded + 192, line->signature, SIG_BYTES);
    memset(encoded + 192 + SIG_BYTES, 0, ENCODED_BYTES - 192 - SIG_BYTES);
    keccak256(encoded, sizeof encoded, inner);
    keccak256(inner, 32, line->leaf);
    return 1;
}

static char *put_text(char *out, const char *text) {
    size_t length = strlen(text);
    memcpy(out, text, length);
    return out + length;
}

static char *put_lower_hex(char *out, const unsigned char *data, Py_ssize_t length) {
    static const char DIGITS[] = "0123456789abcdef";
    *out++ = '0';
    *out++ = 'x';
    for (Py_ssize_t i = 0; i < length; i++) {
        *out++ = DIGITS[data[i] >> 4];
        *out++ = DIGITS[data[i] & 15];
    }
    return out;
}

/* The payload as encode_payload writes it: {"input_hash","leaf_hash","output_hash","ref","tee_id",
 * "tee_signature","timestamp"}, sorted, compact. */
static PyObject *payload(const Line *line) {
    char buffer[1024 + MAX_REF];
    char *out = buffer;
    out = put_lower_hex(put_text(out, "{\"input_hash\":\""), line->input_hash, 32);
    out = put_lower_hex(put_text(out, "\",\"leaf_hash\":\""), line->leaf, 32);
    out = put_lower_hex(put_text(out, "\",\"output_hash\":\""), line->output_hash, 32);
    out = put_text(out, "\",\"ref\":");
    if (line->ref == NULL) {
        out = put_text(out, "null");
    } else {
        *out++ = '"';
        memcpy(out, line->ref, (size_t)line->ref_length);
        out += line->ref_length;
        *out++ = '"';
    }
    out = put_lower_hex(put_text(out, ",\"tee_id\":\""), line->tee_id, 32);
    out = put_lower_hex(put_text(out, "\",\"tee_signature\":\""), line->signature, SIG_BYTES);
    out = put_text(out, "\",\"timestamp\":");
    memcpy(out, line->timestamp_text, (size_t)line->timestamp_length);
    out += line->timestamp_length;
    *out++ = '}';
    return PyUnicode_DecodeASCII(buffer, out - buffer, NULL);
}

static int read_secp(PyObject *secp_tuple, Secp *secp) {
    unsigned long long values[4];
    if (!PyArg_ParseTuple(secp_tuple, "KKKKI", &values[0], &values[1], &values[2], &values[3], &secp->uncompressed)) {
        return 0;
    }
    secp->ctx = (const void *)(uintptr_t)values[0];
    secp->parse_compact = (ParseCompact)(uintptr_t)values[1];
    secp->recover = (Recover)(uintptr_t)values[2];
    secp->serialize = (Serialize)(uintptr_t)values[3];
    if (secp->ctx == NULL || secp->parse_compact == NULL || secp->recover == NULL || secp->serialize == NULL) {
        PyErr_SetString(PyExc_ValueError, "secp: a null address");
        return 0;
    }
    return 1;
}

/* One TEE's signer, as signer_for said (signer NULL: not a secp256k1 TEE with an active key). */
typedef struct {
    unsigned char tee_id[32];
    unsigned char address[20];
    int has_signer;
} Signer;

static PyObject *verify_leaves(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *lines, *name, *params, *signer_for, *secp_tuple;
    Py_ssize_t first_line;
    if (!PyArg_ParseTuple(args, "O!nUO!OO!", &PyList_Type, &lines, &first_line, &name, &PyTuple_Type, &params,
                          &signer_for, &PyTuple_Type, &secp_tuple)) {
        return NULL;
    }
    Py_buffer prefix, typehash;
    long long lowest, highest;
    Py_ssize_t max_bytes;
    PyObject *kind, *batch_lane, *private_lane, *state;
    if (!PyArg_ParseTuple(params, "y*y*LLnOOOO", &prefix, &typehash, &lowest, &highest, &max_bytes, &kind, &batch_lane,
                          &private_lane, &state)) {
        return NULL;
    }
    PyObject *result = NULL, *held = NULL;
    Line *parsed = NULL;
    Signer *signers = NULL;
    Py_ssize_t signer_count = 0;
    Secp secp;
    if (prefix.len != 34 || typehash.len != 32) {
        PyErr_SetString(PyExc_ValueError, "params: the prefix is 34 bytes and the typehash 32");
        goto done;
    }
    if (!read_secp(secp_tuple, &secp)) goto done;
    /* our own list of the lines: the parsed fields point into them while the GIL is released, and the caller's list
     * could change meanwhile */
    held = PyList_GetSlice(lines, 0, PyList_GET_SIZE(lines));
    if (held == NULL) goto done;
    Py_ssize_t count = PyList_GET_SIZE(held);
    parsed = PyMem_Calloc((size_t)(count > 0 ? count : 1), sizeof(Line));
    signers = PyMem_Calloc((size_t)(count > 0 ? count : 1), sizeof(Signer));
    if (parsed == NULL || signers == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* 1. parse, and ask for each TEE's signer once (the GIL held: signer_for is Python) */
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(held, i);
        if (!PyBytes_Check(item)) continue;
        const char *text = PyBytes_AS_STRING(item);
        Py_ssize_t length = PyBytes_GET_SIZE(item);
        Line *line = &parsed[i];
        if (length > max_bytes || !parse(text, text + length, line, lowest, highest)) continue;
        Signer *found = NULL;
        for (Py_ssize_t k = signer_count - 1; k >= 0 && found == NULL; k--) {
            if (memcmp(signers[k].tee_id, line->tee_id, 32) == 0) found = &signers[k];
        }
        if (found == NULL) {
            found = &signers[signer_count++];
            memcpy(found->tee_id, line->tee_id, 32);
            PyObject *answer = PyObject_CallFunction(signer_for, "y#", (const char *)line->tee_id, (Py_ssize_t)32);
            if (answer == NULL) goto done;
            if (PyBytes_Check(answer) && PyBytes_GET_SIZE(answer) == 20) {
                memcpy(found->address, PyBytes_AS_STRING(answer), 20);
                found->has_signer = 1;
            } else if (answer != Py_None) {
                Py_DECREF(answer);
                PyErr_SetString(PyExc_TypeError, "signer_for: expected 20 bytes or None");
                goto done;
            }
            Py_DECREF(answer);
        }
        if (!found->has_signer) continue;
        line->signer = found->address;
        line->taken = 1;
    }
    /* 2. the digests, signatures and leaf hashes, the GIL released (signers is not resized any more) */
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++) {
        if (parsed[i].taken) parsed[i].taken = check(&parsed[i], &secp, prefix.buf, typehash.buf);
    }
    Py_END_ALLOW_THREADS
    /* 3. the rows */
    result = PyList_New(count);
    if (result == NULL) goto done;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *row;
        if (!parsed[i].taken) {
            row = Py_NewRef(Py_None);
        } else {
            Py_ssize_t number = first_line + i;
            PyObject *text = payload(&parsed[i]);
            PyObject *source = text == NULL ? NULL : PyUnicode_FromFormat("%U:%zd", name, number);
            PyObject *lane = parsed[i].is_private ? private_lane : batch_lane;
            row = source == NULL ? NULL
                                 : Py_BuildValue("(nOOy#OOOO)", number, kind, lane, (const char *)parsed[i].leaf,
                                                 (Py_ssize_t)32, text, state, Py_None, source);
            Py_XDECREF(text);
            Py_XDECREF(source);
            if (row == NULL) {
                Py_CLEAR(result);
                goto done;
            }
        }
        PyList_SET_ITEM(result, i, row);
    }
done:
    Py_XDECREF(held);
    PyMem_Free(parsed);
    PyMem_Free(signers);
    PyBuffer_Release(&prefix);
    PyBuffer_Release(&typehash);
    return result;
}

static PyMethodDef methods[] = {
    {"verify_leaves", verify_leaves, METH_VARARGS,
     "verify_leaves(lines, first_line, name, params, signer_for, secp) -> list: each line's staged row, or None "
     "where the Python code must judge it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_intake_native", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__intake_native(void) {
    fill_hex_table();
    return PyModule_Create(&module);
}
