/* calib_npy.c : token arrays in NumPy's .npy and .npz files (calib module).
 *
 * .npy (numpy/lib/format.py, "NPY format"):
 *   1. magic "\x93NUMPY" (6 bytes), major and minor version (1 byte each);
 *   2. header length: u16 little-endian for 1.x, u32 for 2.x and 3.x;
 *   3. the header: an ASCII (3.x: UTF-8) Python dict literal
 *      {'descr': '<u2', 'fortran_order': False, 'shape': (N,), } padded with
 *      spaces and ended by '\n';
 *   4. the data: prod(shape) elements, nothing after them.
 * The dict is read by a small recursive-descent reader, never evaluated:
 * exactly the three keys (no duplicates), descr a plain string, fortran_order
 * True/False, shape a tuple of decimal integers. Accepted: '<' or '|'
 * integer types u1 u2 u4 u8 i1 i2 i4 i8 ('>' only for one-byte types), C
 * order, 1-D or 2-D. Refused with LQ_ERR_UNSUPPORTED: other dtypes (float,
 * bool, object/pickled, structured), big-endian, Fortran order, other ranks.
 * Malformed headers and a data size other than prod(shape) * itemsize are
 * LQ_ERR_FORMAT.
 *
 * .npz: a zip of .npy members (numpy.savez / savez_compressed), opened with
 * libzip over the bytes in memory with its consistency checks; the member
 * input_ids.npy, else tokens.npy, else the only member; stored or deflated,
 * size limited, CRC checked. */
#include "calib_internal.h"
#include "lq_internal.h"

#include <string.h>
#include <zip.h>

#define NPY_MAX_HEADER (1u << 20) /* bytes of the header dict                */
#define NPZ_DEFLATE_RATIO 1032    /* deflate expands at most ~1032:1          */

/* ==== the header dict ==== */

typedef struct {
    const char *p, *e;
} cursor;

static void skip_ws(cursor *c) {
    while (c->p < c->e && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static bool eat(cursor *c, char ch) {
    skip_ws(c);
    if (c->p < c->e && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

static bool peek(cursor *c, char ch) {
    skip_ws(c);
    return c->p < c->e && *c->p == ch;
}

/* a quoted string without escapes: 'abc' or "abc" */
static bool string_lit(cursor *c, const char **s, size_t *n) {
    skip_ws(c);
    if (c->p >= c->e || (*c->p != '\'' && *c->p != '"')) return false;
    const char  q = *c->p++;
    const char *a = c->p;
    while (c->p < c->e && *c->p != q) {
        if (*c->p == '\\' || *c->p == '\n') return false;
        c->p++;
    }
    if (c->p >= c->e) return false;
    *s = a;
    *n = (size_t)(c->p - a);
    c->p++;
    return true;
}

static bool word(cursor *c, const char *w) {
    skip_ws(c);
    const size_t n = strlen(w);
    if ((size_t)(c->e - c->p) < n || memcmp(c->p, w, n) != 0) return false;
    const char next = c->p + n < c->e ? c->p[n] : ' ';
    if ((next >= 'a' && next <= 'z') || (next >= 'A' && next <= 'Z') || (next >= '0' && next <= '9') || next == '_')
        return false;
    c->p += n;
    return true;
}

typedef struct {
    char     descr[8]; /* e.g. "<u2" */
    bool     fortran;
    int      ndim;
    uint64_t shape[2];
} npy_header;

/* shape: (), (N,), (S, L), (a, b, c) ...; a one-element tuple needs its comma
 * as in Python. More than two dimensions parse but are refused later. */
static lq_status read_shape(cursor *c, const char *label, npy_header *h) {
    LQ_RETURN_IF(!eat(c, '('), LQ_ERR_FORMAT, "%s: .npy header: 'shape' is not a tuple", label);
    int  ndim  = 0;
    bool comma = false;
    while (!peek(c, ')')) {
        skip_ws(c);
        LQ_RETURN_IF(c->p >= c->e || *c->p < '0' || *c->p > '9', LQ_ERR_FORMAT,
                     "%s: .npy header: 'shape' holds something other than integers", label);
        uint64_t v = 0;
        while (c->p < c->e && *c->p >= '0' && *c->p <= '9') {
            LQ_RETURN_IF(!lq__mul_u64(v, 10, &v) || !lq__add_u64(v, (uint64_t)(*c->p - '0'), &v), LQ_ERR_FORMAT,
                         "%s: .npy header: a dimension overflows", label);
            c->p++;
        }
        if (ndim < 2) h->shape[ndim] = v;
        LQ_RETURN_IF(ndim == 64, LQ_ERR_FORMAT, "%s: .npy header: too many dimensions", label);
        ndim++;
        comma = eat(c, ',');
        if (!comma) break;
    }
    LQ_RETURN_IF(!eat(c, ')'), LQ_ERR_FORMAT, "%s: .npy header: 'shape' is not a tuple of integers", label);
    LQ_RETURN_IF(ndim == 1 && !comma, LQ_ERR_FORMAT, "%s: .npy header: 'shape' (N) is not a tuple (N,)", label);
    h->ndim = ndim;
    return LQ_OK;
}

static lq_status read_header(const char *text, size_t len, const char *label, npy_header *h) {
    cursor c       = {text, text + len};
    bool   seen[3] = {false, false, false};
    memset(h, 0, sizeof *h);
    LQ_RETURN_IF(!eat(&c, '{'), LQ_ERR_FORMAT, "%s: the .npy header is not a dict", label);
    while (!peek(&c, '}')) {
        const char *k;
        size_t      kn;
        LQ_RETURN_IF(!string_lit(&c, &k, &kn) || !eat(&c, ':'), LQ_ERR_FORMAT, "%s: the .npy header dict is malformed",
                     label);
        int key = -1;
        if (kn == 5 && memcmp(k, "descr", 5) == 0) key = 0;
        if (kn == 13 && memcmp(k, "fortran_order", 13) == 0) key = 1;
        if (kn == 5 && memcmp(k, "shape", 5) == 0) key = 2;
        LQ_RETURN_IF(key < 0, LQ_ERR_FORMAT, "%s: .npy header: unexpected key '%.*s'", label,
                     (int)LQ_MIN(kn, (size_t)40), k);
        LQ_RETURN_IF(seen[key], LQ_ERR_FORMAT, "%s: .npy header: duplicate key '%.*s'", label, (int)kn, k);
        seen[key] = true;
        if (key == 0) {
            const char *d;
            size_t      dn;
            LQ_RETURN_IF(peek(&c, '['), LQ_ERR_UNSUPPORTED,
                         "%s: structured arrays are not token arrays (need an integer dtype)", label);
            LQ_RETURN_IF(!string_lit(&c, &d, &dn), LQ_ERR_FORMAT, "%s: .npy header: 'descr' is not a string", label);
            LQ_RETURN_IF(dn >= sizeof h->descr, LQ_ERR_UNSUPPORTED,
                         "%s: dtype '%.*s' is not an integer type (u1..u8, i1..i8)", label, (int)LQ_MIN(dn, (size_t)40),
                         d);
            memcpy(h->descr, d, dn);
            h->descr[dn] = 0;
        } else if (key == 1) {
            if (word(&c, "True"))
                h->fortran = true;
            else
                LQ_RETURN_IF(!word(&c, "False"), LQ_ERR_FORMAT, "%s: .npy header: 'fortran_order' is not True or False",
                             label);
        } else {
            LQ_TRY(read_shape(&c, label, h));
        }
        if (!eat(&c, ',')) break;
    }
    LQ_RETURN_IF(!eat(&c, '}'), LQ_ERR_FORMAT, "%s: the .npy header dict is malformed", label);
    skip_ws(&c);
    LQ_RETURN_IF(c.p != c.e, LQ_ERR_FORMAT, "%s: bytes after the .npy header dict", label);
    LQ_RETURN_IF(!seen[0] || !seen[1] || !seen[2], LQ_ERR_FORMAT,
                 "%s: the .npy header lacks 'descr', 'fortran_order' or 'shape'", label);
    return LQ_OK;
}

/* ==== .npy ==== */

lq_status lq__calib_parse_npy(const uint8_t *b, size_t n, const char *label, int64_t vocab, int32_t **ids,
                              int64_t *count) {
    *ids   = NULL;
    *count = 0;
    LQ_RETURN_IF(n < 10 || memcmp(b, "\x93NUMPY", 6) != 0, LQ_ERR_FORMAT, "%s is not a .npy file (bad magic)", label);
    const int major = b[6];
    LQ_RETURN_IF(major < 1 || major > 3, LQ_ERR_FORMAT, "%s: .npy version %d.%d is not 1.0, 2.0 or 3.0", label, major,
                 b[7]);
    size_t hlen, hoff;
    if (major == 1) {
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
        hoff = 10;
    } else {
        LQ_RETURN_IF(n < 12, LQ_ERR_FORMAT, "%s: the .npy header is truncated", label);
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        hoff = 12;
    }
    LQ_RETURN_IF(hlen > NPY_MAX_HEADER, LQ_ERR_FORMAT, "%s: .npy header of %zu bytes is over the %u limit", label, hlen,
                 NPY_MAX_HEADER);
    LQ_RETURN_IF(hlen > n - hoff, LQ_ERR_FORMAT, "%s: the .npy header is truncated (%zu bytes announced, %zu present)",
                 label, hlen, n - hoff);
    npy_header h;
    LQ_TRY(read_header((const char *)b + hoff, hlen, label, &h));

    /* dtype: byte order, kind, item size */
    const char  *d  = h.descr;
    const size_t dl = strlen(d);
    const bool   int_kind =
        dl == 3 && (d[1] == 'u' || d[1] == 'i') && (d[2] == '1' || d[2] == '2' || d[2] == '4' || d[2] == '8');
    LQ_RETURN_IF(dl >= 2 && (d[1] == 'O' || (d[0] == 'O' && dl == 1)), LQ_ERR_UNSUPPORTED,
                 "%s: object arrays (pickled Python objects) are not supported", label);
    LQ_RETURN_IF(!int_kind || (d[0] != '<' && d[0] != '|' && d[0] != '>'), LQ_ERR_UNSUPPORTED,
                 "%s: dtype '%s' is not an integer type (u1..u8, i1..i8)", label, d);
    const size_t esz = (size_t)(d[2] - '0');
    LQ_RETURN_IF(d[0] == '>' && esz > 1, LQ_ERR_UNSUPPORTED,
                 "%s: big-endian arrays ('%s') are not supported (save with .astype('<%c%c'))", label, d, d[1], d[2]);
    LQ_RETURN_IF(h.fortran, LQ_ERR_UNSUPPORTED,
                 "%s: Fortran-order arrays are not supported (save with np.ascontiguousarray)", label);
    LQ_RETURN_IF(h.ndim < 1 || h.ndim > 2, LQ_ERR_UNSUPPORTED,
                 "%s: token arrays must be 1-D or 2-D, this one has %d dimensions", label, h.ndim);

    uint64_t total = h.shape[0], need;
    LQ_RETURN_IF(h.ndim == 2 && !lq__mul_u64(total, h.shape[1], &total), LQ_ERR_FORMAT, "%s: the .npy shape overflows",
                 label);
    const size_t off = hoff + hlen, have = n - off;
    LQ_RETURN_IF(!lq__mul_u64(total, esz, &need) || need != have, LQ_ERR_FORMAT,
                 "%s: %llu elements of %zu bytes do not match the %zu data bytes", label, (unsigned long long)total,
                 esz, have);
    const bool    signd = d[1] == 'i';
    const int64_t hi    = vocab > 0 ? LQ_MIN(vocab, (int64_t)INT32_MAX + 1) : (int64_t)INT32_MAX + 1;
    int32_t      *v     = lq_malloc(LQ_MAX((size_t)total, (size_t)1) * sizeof *v); /* total <= have: no overflow */
    LQ_RETURN_IF(!v, LQ_ERR_NOMEM, "%s: out of memory for %llu tokens", label, (unsigned long long)total);
    const uint8_t *p = b + off;
    for (uint64_t i = 0; i < total; i++, p += esz) {
        uint64_t u = 0;
        for (size_t k = 0; k < esz; k++)
            u |= (uint64_t)p[k] << (8 * k);
        int64_t x;
        if (signd && esz < 8 && (u >> (8 * esz - 1)) & 1)
            x = (int64_t)(u | (~0ull << (8 * esz))); /* sign-extend */
        else
            x = (int64_t)u; /* u8 above INT64_MAX becomes negative: refused below */
        if (x < 0 || x >= hi) {
            lq_free(v);
            LQ_RETURN_IF(1, LQ_ERR_INVALID_ARG, "%s: token %lld at index %llu is outside the vocabulary [0, %lld)",
                         label, (long long)x, (unsigned long long)i, (long long)hi);
        }
        v[i] = (int32_t)x;
    }
    *ids   = v;
    *count = (int64_t)total;
    return LQ_OK;
}

/* ==== .npz ==== */

/* the member to read: input_ids.npy, else tokens.npy, else the only one */
static lq_status pick_member(zip_t *z, const char *label, zip_uint64_t *out) {
    static const char *const want[] = {"input_ids.npy", "tokens.npy"};
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
        const zip_int64_t i = zip_name_locate(z, want[w], ZIP_FL_ENC_RAW);
        if (i >= 0) {
            *out = (zip_uint64_t)i;
            return LQ_OK;
        }
    }
    const zip_int64_t ne = zip_get_num_entries(z, 0);
    if (ne == 1) {
        *out = 0;
        return LQ_OK;
    }
    LQ_LOG_ERR("%s holds %lld arrays and none is named input_ids or tokens", label, (long long)ne);
    return LQ_ERR_FORMAT;
}

lq_status lq__calib_parse_npz(const uint8_t *b, size_t n, uint64_t limit, const char *label, int64_t vocab,
                              int32_t **ids, int64_t *count) {
    *ids   = NULL;
    *count = 0;
    LQ_RETURN_IF(n < 22, LQ_ERR_FORMAT, "%s is not a .npz (zip) file: %zu bytes", label, n);
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(b, n, 0, &ze);
    if (!src) {
        LQ_LOG_ERR("%s: %s", label, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return LQ_ERR_NOMEM;
    }
    zip_t *z = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
    if (!z) {
        zip_source_free(src);
        LQ_LOG_ERR("%s is not a valid .npz (zip) file: %s", label, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return LQ_ERR_FORMAT;
    }
    zip_error_fini(&ze);
    lq_status    st  = LQ_OK;
    uint8_t     *buf = NULL;
    zip_file_t  *zf  = NULL;
    char         inner[512];
    zip_uint64_t idx = 0;
    LQ_GOTO_TRY(pick_member(z, label, &idx));
    zip_stat_t zs;
    zip_stat_init(&zs);
    const zip_uint64_t need = ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD | ZIP_STAT_NAME;
    LQ_GOTO_IF(zip_stat_index(z, idx, 0, &zs) != 0 || (zs.valid & need) != need, LQ_ERR_FORMAT,
               "%s: the zip directory lacks the member's sizes", label);
    snprintf(inner, sizeof inner, "%s:%s", label, zs.name);
    LQ_GOTO_IF((zs.valid & ZIP_STAT_ENCRYPTION_METHOD) && zs.encryption_method != ZIP_EM_NONE, LQ_ERR_UNSUPPORTED,
               "%s: encrypted zip member", inner);
    LQ_GOTO_IF(zs.comp_method != ZIP_CM_STORE && zs.comp_method != ZIP_CM_DEFLATE, LQ_ERR_UNSUPPORTED,
               "%s: zip compression method %d (only stored or deflated members are read)", inner, (int)zs.comp_method);
    uint64_t bound = zs.comp_size;
    if (zs.comp_method == ZIP_CM_DEFLATE && !lq__mul_u64(zs.comp_size, NPZ_DEFLATE_RATIO, &bound)) bound = UINT64_MAX;
    LQ_GOTO_IF(zs.comp_size > n || zs.size > bound, LQ_ERR_FORMAT,
               "%s: member of %llu bytes (%llu stored) does not fit in a %zu-byte archive", inner,
               (unsigned long long)zs.size, (unsigned long long)zs.comp_size, n);
    LQ_GOTO_IF(zs.size > limit || zs.size > SIZE_MAX - 1, LQ_ERR_FORMAT,
               "%s: member of %llu bytes is over the %llu-byte limit (max_bytes)", inner, (unsigned long long)zs.size,
               (unsigned long long)limit);
    buf = lq_malloc((size_t)zs.size + 1);
    LQ_GOTO_IF(!buf, LQ_ERR_NOMEM, "%s: out of memory for %llu bytes", inner, (unsigned long long)zs.size);
    zf = zip_fopen_index(z, idx, 0);
    LQ_GOTO_IF(!zf, LQ_ERR_FORMAT, "%s: cannot open the member: %s", inner, zip_strerror(z));
    zip_uint64_t got = 0;
    while (got < zs.size) {
        const zip_int64_t r = zip_fread(zf, buf + got, zs.size - got);
        LQ_GOTO_IF(r < 0, LQ_ERR_FORMAT, "%s: zip read failed: %s", inner, zip_file_strerror(zf));
        LQ_GOTO_IF(r == 0, LQ_ERR_FORMAT, "%s: the member ends after %llu of %llu bytes", inner,
                   (unsigned long long)got, (unsigned long long)zs.size);
        got += (zip_uint64_t)r;
    }
    uint8_t           extra;
    const zip_int64_t r = zip_fread(zf, &extra, 1); /* at EOF libzip checks the CRC */
    LQ_GOTO_IF(r < 0, LQ_ERR_FORMAT, "%s: zip read failed: %s", inner, zip_file_strerror(zf));
    LQ_GOTO_IF(r > 0, LQ_ERR_FORMAT, "%s: the member is longer than its recorded %llu bytes", inner,
               (unsigned long long)zs.size);
    st = lq__calib_parse_npy(buf, (size_t)zs.size, inner, vocab, ids, count);
done:
    if (zf) zip_fclose(zf);
    zip_discard(z);
    lq_free(buf);
    return st;
}
