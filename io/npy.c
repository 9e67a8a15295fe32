/* io/npy.c — a strict reader and writer of NumPy's .npy format (versions 1.0/2.0 read, 1.0
 * written), little-endian, C order. Layer: io <- core.
 *
 * The file is: "\x93NUMPY", major, minor, header length (uint16 for 1.0, uint32 for 2.0,
 * little-endian), an ASCII header that is a Python dict literal ending in '\n', then the raw
 * elements. Every byte is distrusted: the header is parsed by a small grammar that accepts
 * exactly {'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), } in any key order, sizes
 * are overflow-checked, and the data must be exactly count * itemsize bytes long.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "flashmask/io.h"
#include "fm_internal.h"
#include "io_internal.h"

/* the largest .npy header read (NumPy writes a few hundred bytes; 2.0 allows 4 GiB) */
enum { FM_NPY_HEAD_MAX = 1 << 16 };

static const struct {
    const char *descr;
    size_t size;
} npy_types[FM_NPY_DTYPE_COUNT] = {
    [FM_NPY_F8] = {"<f8", 8}, [FM_NPY_F4] = {"<f4", 4}, [FM_NPY_F2] = {"<f2", 2},
    [FM_NPY_I4] = {"<i4", 4}, [FM_NPY_U1] = {"|u1", 1}, [FM_NPY_B1] = {"|b1", 1},
};

const char *fm_npy_dtype_descr(fm_npy_dtype dtype)
{
    return (unsigned)dtype < FM_NPY_DTYPE_COUNT ? npy_types[dtype].descr : "?";
}

size_t fm_npy_dtype_size(fm_npy_dtype dtype)
{
    return (unsigned)dtype < FM_NPY_DTYPE_COUNT ? npy_types[dtype].size : 0;
}

void fm_npy_free(fm_npy *a)
{
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

/* ---------------------------------------------------------------- header grammar */

/* A cursor over the header text [p, end). */
typedef struct cursor {
    const char *p, *end;
    const char *name; /* file name for messages */
} cursor;

static void skip_spaces(cursor *c)
{
    while (c->p < c->end && *c->p == ' ') c->p++;
}

static int accept(cursor *c, char ch)
{
    skip_spaces(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted Python string without escapes ('...' or "..."), copied into buf. */
static fm_status parse_string(cursor *c, char *buf, size_t cap, const char *what)
{
    skip_spaces(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return fm_fail(FM_ERR_FORMAT, "%s: header: expected a quoted string for %s", c->name,
                       what);
    char quote = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != quote) {
        if (*c->p == '\\')
            return fm_fail(FM_ERR_FORMAT, "%s: header: escape sequence in %s", c->name, what);
        if (n + 1 >= cap)
            return fm_fail(FM_ERR_FORMAT, "%s: header: %s is too long", c->name, what);
        buf[n++] = *c->p++;
    }
    if (c->p >= c->end)
        return fm_fail(FM_ERR_FORMAT, "%s: header: unterminated string in %s", c->name, what);
    c->p++; /* closing quote */
    buf[n] = '\0';
    return FM_OK;
}

/* A non-negative decimal integer that fits int64 (digits only: no sign, no 'L' suffix). */
static fm_status parse_dim(cursor *c, int64_t *out, int index)
{
    skip_spaces(c);
    if (c->p >= c->end || *c->p < '0' || *c->p > '9')
        return fm_fail(FM_ERR_FORMAT, "%s: header: shape entry %d is not a non-negative integer",
                       c->name, index);
    int64_t v = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        int digit = *c->p++ - '0';
        if (v > (INT64_MAX - digit) / 10)
            return fm_fail(FM_ERR_OVERFLOW, "%s: header: shape entry %d does not fit int64",
                           c->name, index);
        v = v * 10 + digit;
    }
    *out = v;
    return FM_OK;
}

/* Python tuple of dims: "()", "(5,)", "(2, 3)", "(2, 3,)". "(5)" is the integer 5: refused. */
static fm_status parse_shape(cursor *c, fm_npy *a)
{
    if (!accept(c, '('))
        return fm_fail(FM_ERR_FORMAT, "%s: header: 'shape' is not a tuple", c->name);
    a->ndim = 0;
    if (accept(c, ')')) return FM_OK;
    for (;;) {
        if (a->ndim == FM_NPY_MAX_DIMS)
            return fm_fail(FM_ERR_FORMAT, "%s: header: more than %d dimensions", c->name,
                           FM_NPY_MAX_DIMS);
        fm_status st = parse_dim(c, &a->shape[a->ndim], a->ndim);
        if (st != FM_OK) return st;
        a->ndim++;
        int comma = accept(c, ',');
        if (accept(c, ')')) {
            if (a->ndim == 1 && !comma)
                return fm_fail(FM_ERR_FORMAT, "%s: header: shape '(n)' is not a tuple; "
                               "a 1-d shape is written '(n,)'", c->name);
            return FM_OK;
        }
        if (!comma)
            return fm_fail(FM_ERR_FORMAT, "%s: header: expected ',' or ')' in 'shape'",
                           c->name);
    }
}

static fm_status parse_header(cursor *c, fm_npy *a)
{
    int seen_descr = 0, seen_order = 0, seen_shape = 0;
    if (!accept(c, '{'))
        return fm_fail(FM_ERR_FORMAT, "%s: header does not start with '{'", c->name);
    while (!accept(c, '}')) {
        char key[32], descr[32];
        fm_status st = parse_string(c, key, sizeof key, "a key");
        if (st != FM_OK) return st;
        if (!accept(c, ':'))
            return fm_fail(FM_ERR_FORMAT, "%s: header: expected ':' after '%s'", c->name, key);
        if (strcmp(key, "descr") == 0 && !seen_descr) {
            seen_descr = 1;
            if ((st = parse_string(c, descr, sizeof descr, "'descr'")) != FM_OK) return st;
            int found = 0;
            for (int t = 0; t < FM_NPY_DTYPE_COUNT; t++)
                if (strcmp(descr, npy_types[t].descr) == 0) {
                    a->dtype = (fm_npy_dtype)t;
                    found = 1;
                }
            if (!found)
                return fm_fail(FM_ERR_FORMAT,
                               "%s: dtype '%s' is not supported (expected <f8, <f4, <f2, <i4, "
                               "|u1 or |b1: little-endian)", c->name, descr);
        } else if (strcmp(key, "fortran_order") == 0 && !seen_order) {
            seen_order = 1;
            skip_spaces(c);
            if ((size_t)(c->end - c->p) >= 5 && memcmp(c->p, "False", 5) == 0) {
                c->p += 5;
            } else if ((size_t)(c->end - c->p) >= 4 && memcmp(c->p, "True", 4) == 0) {
                return fm_fail(FM_ERR_FORMAT, "%s: fortran_order is True; only C order is "
                               "supported (save with np.ascontiguousarray)", c->name);
            } else {
                return fm_fail(FM_ERR_FORMAT, "%s: header: fortran_order is not False/True",
                               c->name);
            }
        } else if (strcmp(key, "shape") == 0 && !seen_shape) {
            seen_shape = 1;
            if ((st = parse_shape(c, a)) != FM_OK) return st;
        } else {
            return fm_fail(FM_ERR_FORMAT, "%s: header: unexpected or repeated key '%s'",
                           c->name, key);
        }
        if (!accept(c, ',')) { /* no comma: the dict must end here */
            if (!accept(c, '}'))
                return fm_fail(FM_ERR_FORMAT, "%s: header: expected ',' or '}'", c->name);
            break;
        }
    }
    if (!seen_descr || !seen_order || !seen_shape)
        return fm_fail(FM_ERR_FORMAT, "%s: header lacks '%s'", c->name,
                       !seen_descr ? "descr" : !seen_order ? "fortran_order" : "shape");
    skip_spaces(c); /* padding */
    if (c->p != c->end)
        return fm_fail(FM_ERR_FORMAT, "%s: header: unexpected text after the dict", c->name);
    return FM_OK;
}

/* ---------------------------------------------------------------- parsing a whole file */

static uint64_t load_le(const unsigned char *b, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)b[i] << (8 * i);
    return v;
}

static void store_le(unsigned char *b, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(v >> (8 * i));
}

/* The preamble and header of a .npy file whose first `avail` bytes are at b and whose whole
 * size is `size`: fills a's dtype and shape, checks that the data the header promises is
 * exactly what the file holds, and sets *data_offset. Needs only the header's bytes, so a file
 * lying about its size is refused before its body is read (fm_npy_read). */
static fm_status parse_head(const unsigned char *b, size_t avail, size_t size, const char *name,
                            fm_npy *a, size_t *data_offset, size_t *count_out)
{
    if (size < 10 || avail < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return fm_fail(FM_ERR_FORMAT, "%s: not a .npy file (missing the \\x93NUMPY magic)", name);
    int major = b[6], minor = b[7];
    size_t preamble;
    uint64_t header_len;
    if (major == 1 && minor == 0) {
        preamble = 10;
        header_len = load_le(b + 8, 2);
    } else if (major == 2 && minor == 0) {
        if (size < 12 || avail < 12)
            return fm_fail(FM_ERR_FORMAT, "%s: truncated in the preamble", name);
        preamble = 12;
        header_len = load_le(b + 8, 4);
    } else {
        return fm_fail(FM_ERR_FORMAT, "%s: format version %d.%d is not supported (1.0 or 2.0)",
                       name, major, minor);
    }
    if (header_len > size - preamble)
        return fm_fail(FM_ERR_FORMAT, "%s: header length %llu runs past the end of the file "
                       "(%zu bytes)", name, (unsigned long long)header_len, size);
    if (header_len > avail - preamble)
        return fm_fail(FM_ERR_FORMAT, "%s: header length %llu is above the %d bytes this "
                       "reader accepts", name, (unsigned long long)header_len, FM_NPY_HEAD_MAX);
    const char *h = (const char *)b + preamble;
    if (header_len == 0 || h[header_len - 1] != '\n')
        return fm_fail(FM_ERR_FORMAT, "%s: header does not end with a newline", name);
    for (uint64_t i = 0; i + 1 < header_len; i++) {
        unsigned char ch = (unsigned char)h[i];
        if (ch < 0x20 || ch > 0x7e)
            return fm_fail(FM_ERR_FORMAT, "%s: header byte %llu is 0x%02x, not printable ASCII",
                           name, (unsigned long long)i, ch);
    }
    cursor c = {h, h + header_len - 1, name};
    fm_status st = parse_header(&c, a);
    if (st != FM_OK) return st;

    /* sizes: count = product of shape; bytes = count * itemsize; both overflow-checked */
    size_t count, nbytes;
    if (fm_mul_sizes(&count, a->ndim, a->shape))
        return fm_fail(FM_ERR_OVERFLOW, "%s: the element count of the shape overflows", name);
    size_t item = npy_types[a->dtype].size;
    if (__builtin_mul_overflow(count, item, &nbytes))
        return fm_fail(FM_ERR_OVERFLOW, "%s: %zu elements of %zu bytes overflow size_t", name,
                       count, item);
    *data_offset = preamble + (size_t)header_len;
    size_t have = size - *data_offset;
    if (have != nbytes)
        return fm_fail(FM_ERR_FORMAT, "%s: %s: the header promises %zu bytes of data "
                       "(%zu elements of %s) but the file holds %zu",
                       name, have < nbytes ? "truncated" : "trailing bytes", nbytes, count,
                       npy_types[a->dtype].descr, have);
    *count_out = count;
    return FM_OK;
}

/* The elements at a->data, count of them, hold the file's little-endian bytes: put them in host
 * order in place (nothing to do on a little-endian host) and check bools. */
static fm_status data_to_host(fm_npy *a, const char *name)
{
    const size_t item = npy_types[a->dtype].size;
#if !(defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)
    if (item > 1)
        for (size_t i = 0; i < a->count; i++) {
            unsigned char *e = (unsigned char *)a->data + i * item;
            uint64_t bits = load_le(e, item);
            if (item == 8) memcpy(e, &bits, 8);
            else if (item == 4) { uint32_t u = (uint32_t)bits; memcpy(e, &u, 4); }
            else { uint16_t u = (uint16_t)bits; memcpy(e, &u, 2); }
        }
#endif
    if (a->dtype == FM_NPY_B1)
        for (size_t i = 0; i < a->count; i++) {
            const uint8_t e = ((const uint8_t *)a->data)[i];
            if (e > 1)
                return fm_fail(FM_ERR_FORMAT, "%s: bool element %zu is byte %u, not 0 or 1",
                               name, i, e);
        }
    (void)item;
    return FM_OK;
}

fm_status fm_npy_parse(const void *bytes, size_t size, const char *name, fm_npy *out)
{
    const unsigned char *b = bytes;
    fm_npy a;
    memset(&a, 0, sizeof a);
    memset(out, 0, sizeof *out);
    if (!name) name = "(npy)";
    if (!b && size) return fm_fail(FM_ERR_INVALID, "%s: NULL buffer", name);
    size_t data_offset, count;
    size_t avail = size < FM_NPY_HEAD_MAX + 12 ? size : FM_NPY_HEAD_MAX + 12;
    fm_status st = parse_head(b, avail, size, name, &a, &data_offset, &count);
    if (st != FM_OK) return st;
    size_t item = npy_types[a.dtype].size;

    /* copy, then into host order */
    a.count = count;
    a.data = fm_alloc(count ? count : 1, item, name);
    if (!a.data) return FM_ERR_NOMEM;
    if (count) memcpy(a.data, b + data_offset, count * item);
    if ((st = data_to_host(&a, name)) != FM_OK) {
        free(a.data);
        return st;
    }
    *out = a;
    return FM_OK;
}

fm_status fm_io_npy_read_hashed(const char *path, fm_npy *out, fm_sha256 *hash)
{
    memset(out, 0, sizeof *out);
    size_t size;
    FILE *f = fm_io_open_regular(path, &size); /* refuses FIFOs, devices, directories */
    if (!f) return FM_ERR_IO;
    /* the header first: a file whose size is not what its header promises (a sparse 4 GiB
     * file claiming 1 KiB of data) is refused before its body is read */
    unsigned char head[FM_NPY_HEAD_MAX + 12];
    size_t nhead = size < sizeof head ? size : sizeof head;
    if (fread(head, 1, nhead, f) != nhead) {
        fclose(f);
        return fm_fail(FM_ERR_IO, "%s: read failed or the file changed while being read", path);
    }
    fm_npy a;
    memset(&a, 0, sizeof a);
    size_t data_offset, count;
    fm_status st = parse_head(head, nhead, size, path, &a, &data_offset, &count);
    if (st != FM_OK) {
        fclose(f);
        return st;
    }
    /* the body straight into the array: one read, no intermediate copy of the file */
    const size_t nbytes = size - data_offset, in_head = nhead - data_offset;
    a.count = count;
    a.data = fm_alloc(count ? count : 1, npy_types[a.dtype].size, path);
    if (!a.data) {
        fclose(f);
        return FM_ERR_NOMEM;
    }
    memcpy(a.data, head + data_offset, in_head);
    size_t got = in_head + fread((unsigned char *)a.data + in_head, 1, nbytes - in_head, f);
    int extra = fgetc(f); /* the file may have grown since fstat: refuse rather than guess */
    int err = ferror(f);
    fclose(f);
    if (err || got != nbytes || extra != EOF) {
        free(a.data);
        return fm_fail(FM_ERR_IO, "%s: read failed or the file changed while being read", path);
    }
    if (hash) { /* the file's bytes as read: preamble and header, then the data */
        fm_sha256_update(hash, head, data_offset);
        fm_sha256_update(hash, a.data, nbytes);
    }
    if ((st = data_to_host(&a, path)) != FM_OK) {
        free(a.data);
        return st;
    }
    *out = a;
    return FM_OK;
}

fm_status fm_npy_read(const char *path, fm_npy *out)
{
    return fm_io_npy_read_hashed(path, out, NULL);
}

/* ---------------------------------------------------------------- writing */

fm_status fm_npy_write(const char *path, fm_npy_dtype dtype, int ndim, const int64_t *shape,
                       const void *data)
{
    if (dtype != FM_NPY_F8 && dtype != FM_NPY_F4 && dtype != FM_NPY_I4 && dtype != FM_NPY_U1 &&
        dtype != FM_NPY_B1)
        return fm_fail(FM_ERR_INVALID, "%s: writing dtype %s is not supported", path,
                       fm_npy_dtype_descr(dtype));
    if (ndim < 0 || ndim > FM_NPY_MAX_DIMS)
        return fm_fail(FM_ERR_INVALID, "%s: %d dimensions (at most %d)", path, ndim,
                       FM_NPY_MAX_DIMS);
    if (!path || (ndim > 0 && !shape) || !data)
        return fm_fail(FM_ERR_INVALID, "npy write: NULL path, shape or data");
    size_t count;
    if (fm_mul_sizes(&count, ndim, shape))
        return fm_fail(FM_ERR_OVERFLOW, "%s: shape is negative or overflows", path);

    /* header: the dict, padded with spaces so that preamble + header is a multiple of 64 */
    char header[512];
    int n = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     npy_types[dtype].descr);
    for (int d = 0; d < ndim; d++)
        n += snprintf(header + n, sizeof header - (size_t)n, "%lld%s", (long long)shape[d],
                      ndim == 1 ? "," : d + 1 < ndim ? ", " : "");
    n += snprintf(header + n, sizeof header - (size_t)n, "), }");
    size_t total = 10 + (size_t)n + 1; /* + '\n' */
    size_t padded = (total + 63) / 64 * 64;
    while ((size_t)n < padded - 10 - 1) header[n++] = ' ';
    header[n++] = '\n';

    unsigned char preamble[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
    store_le(preamble + 8, (uint64_t)n, 2);

    FILE *f = fopen(path, "wb");
    if (!f) return fm_fail(FM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    int ok = fwrite(preamble, 1, 10, f) == 10 && fwrite(header, 1, (size_t)n, f) == (size_t)n;
    size_t item = npy_types[dtype].size;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (ok && count) ok = fwrite(data, item, count, f) == count; /* already little-endian */
    size_t done = count;
#else
    size_t done = 0;
#endif
    unsigned char chunk[4096];
    size_t per_chunk = sizeof chunk / item;
    while (ok && done < count) { /* little-endian, whatever the host order */
        size_t m = count - done < per_chunk ? count - done : per_chunk;
        for (size_t i = 0; i < m; i++) {
            uint64_t bits = 0;
            const char *src = (const char *)data + (done + i) * item;
            if (item == 8) memcpy(&bits, src, 8);
            else if (item == 4) { uint32_t u; memcpy(&u, src, 4); bits = u; }
            else bits = *(const uint8_t *)src;
            store_le(chunk + i * item, bits, item);
        }
        ok = fwrite(chunk, item, m, f) == m;
        done += m;
    }
    if (fclose(f) != 0) ok = 0;
    if (!ok) {
        remove(path);
        return fm_fail(FM_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    return FM_OK;
}

/* ---------------------------------------------------------------- shape checks and loading */

static void format_shape(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    int n = snprintf(buf, cap, "(");
    for (int d = 0; d < ndim && (size_t)n < cap; d++) {
        if (shape[d] < 0) n += snprintf(buf + n, cap - (size_t)n, "%s*", d ? ", " : "");
        else n += snprintf(buf + n, cap - (size_t)n, "%s%lld", d ? ", " : "", (long long)shape[d]);
    }
    if ((size_t)n < cap) snprintf(buf + n, cap - (size_t)n, ")");
}

fm_status fm_npy_check_shape(const fm_npy *a, const char *name, int ndim, const int64_t *shape,
                             const char *dim_names)
{
    char got[160], want[160];
    format_shape(got, sizeof got, a->ndim, a->shape);
    format_shape(want, sizeof want, ndim, shape);
    if (a->ndim != ndim)
        return fm_fail(FM_ERR_FORMAT, "%s: shape %s has %d dimensions but [%s] = %s has %d",
                       name, got, a->ndim, dim_names, want, ndim);
    for (int d = 0; d < ndim; d++) {
        if (shape[d] >= 0 && a->shape[d] != shape[d]) {
            /* name the dimension: the d-th comma-separated entry of dim_names */
            const char *s = dim_names;
            for (int k = 0; k < d && s; k++) {
                s = strchr(s, ',');
                if (s) s++;
            }
            int len = s ? (int)strcspn(s, ",") : 1;
            return fm_fail(FM_ERR_FORMAT,
                           "%s: shape %s differs from [%s] = %s in dimension %d (%.*s: %lld, "
                           "expected %lld)",
                           name, got, dim_names, want, d, len, s ? s : "?",
                           (long long)a->shape[d], (long long)shape[d]);
        }
    }
    return FM_OK;
}

/* A floating-point tensor file of exactly `shape`, read once (its bytes fed to `hash` when
 * non-NULL: an initialised digest that this call finishes into hex, or discards on failure). */
fm_status fm_io_read_float_file(const char *path, int ndim, const int64_t *shape,
                                 const char *dims, fm_npy *a, fm_sha256 *hash, char hex[65])
{
    fm_status st = fm_io_npy_read_hashed(path, a, hash);
    if (st == FM_OK) st = fm_npy_check_shape(a, path, ndim, shape, dims);
    if (st == FM_OK && a->dtype != FM_NPY_F8 && a->dtype != FM_NPY_F4 && a->dtype != FM_NPY_F2)
        st = fm_fail(FM_ERR_FORMAT, "%s: dtype %s, expected a float (<f8, <f4 or <f2)", path,
                     fm_npy_dtype_descr(a->dtype));
    if (hash) {
        if (st == FM_OK) st = fm_sha256_hex(hash, hex);
        else fm_sha256_discard(hash);
    }
    if (st != FM_OK) fm_npy_free(a);
    return st;
}

/* a's elements as a new float64 buffer (what fm_npy_load_f64 returns). */
double *fm_io_npy_to_f64(const fm_npy *a, const char *path)
{
    double *x = fm_alloc(a->count ? a->count : 1, sizeof(double), path);
    if (x)
        for (size_t i = 0; i < a->count; i++) {
            if (a->dtype == FM_NPY_F8) x[i] = ((const double *)a->data)[i];
            else if (a->dtype == FM_NPY_F4) x[i] = ((const float *)a->data)[i];
            else x[i] = fm_half_to_float(((const uint16_t *)a->data)[i]);
        }
    return x;
}

/* A float64 tensor file (hash and hex as read_float_file's). */
fm_status fm_io_load_f64_hashed(const char *path, int ndim, const int64_t *shape,
                                 const char *dims, double **out, fm_sha256 *hash, char hex[65])
{
    fm_npy a;
    *out = NULL;
    fm_status st = fm_io_read_float_file(path, ndim, shape, dims, &a, hash, hex);
    if (st != FM_OK) return st;
    *out = fm_io_npy_to_f64(&a, path);
    fm_npy_free(&a);
    return *out ? FM_OK : FM_ERR_NOMEM;
}

fm_status fm_npy_load_f64(const char *path, int ndim, const int64_t *shape,
                          const char *dim_names, double **out)
{
    if (!out || !path || (ndim > 0 && !shape))
        return fm_fail(FM_ERR_INVALID, "npy load: NULL path, shape or output");
    return fm_io_load_f64_hashed(path, ndim, shape, dim_names, out, NULL, NULL);
}
