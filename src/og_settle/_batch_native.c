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
 * parse_entries(block, start, end) reads a dump's values entries in that compact form back (for verify).
 *
 * render_values(encodings, tree_index, start, stop) writes the dump's "values" entries
 *   {"value":["0x..","0x..","0x..","0x..","<decimal>"],"treeIndex":N}
 * for encodings[start:stop], comma-separated, exactly as StandardMerkleTree.dump_json() writes them.
 *
 * Hashing stays in Python, through safe-pysha3.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define SIG_MAX 1024
#define HEAD 192 /* three words, the tail offset, the timestamp, the signature's length word */

static const char *KEYS[5] = {"tee_id", "input_hash", "output_hash", "tee_signature", "timestamp"};
static const Py_ssize_t KEY_LENGTHS[5] = {6, 10, 11, 13, 9};

/* Each byte's value as a hex digit, or -1: a table, as branching on random digits mispredicts. */
static signed char HEX[256];

static void fill_hex_table(void) {
    memset(HEX, -1, sizeof HEX);
    for (int c = '0'; c <= '9'; c++) HEX[c] = (signed char)(c - '0');
    for (int c = 'a'; c <= 'f'; c++) HEX[c] = (signed char)(c - 'a' + 10);
    for (int c = 'A'; c <= 'F'; c++) HEX[c] = (signed char)(c - 'A' + 10);
}

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

/* Parse one line [p, end); 1 if it is a leaf in the accepted form, else 0. */
static int parse_line(const char *p, const char *end, Leaf *leaf) {
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
        if (field < 0 || (seen & (1 << field))) return 0;
        seen |= 1 << field;
        p = skip_space(p, end);
        if (p >= end || *p != ':') return 0;
        p = skip_space(p + 1, end);
        if (field < 4) {
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
        if (!parse_line(p, line_end, &leaf)) break;
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

static PyMethodDef methods[] = {
    {"encode_lines", encode_lines, METH_VARARGS,
     "encode_lines(block, start, end) -> (encodings, stop): the ABI encodings of the OpenGradient leaves on "
     "the lines of block[start:end], up to the first line left to Python (stop is its offset)."},
    {"parse_entries", parse_entries, METH_VARARGS,
     "parse_entries(block, start, end) -> (encodings, tree_indexes, stop): the ABI encodings and tree indexes of "
     "the compact OpenGradient entries of a dump's values in block[start:end], comma-separated, up to the first "
     "entry in another form (stop is where the last one taken ends)."},
    {"render_values", render_values, METH_VARARGS,
     "render_values(encodings, tree_index, start, stop) -> bytes: the dump's values entries for "
     "encodings[start:stop], comma-separated."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_batch_native", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__batch_native(void) {
    fill_hex_table();
    return PyModule_Create(&module);
}
