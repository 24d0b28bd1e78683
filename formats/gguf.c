/* gguf.c : GGUF v2/v3 reader (llama.cpp's file format) and the llama-family
 * hyperparameters of a GGUF file as an HF config. The writer and the tensor
 * name tables are in gguf_write.c.
 *
 * Byte layout (little-endian; ggml docs/gguf.md, REFERENCE.md 5.3):
 *   1. "GGUF", u32 version (2 or 3), u64 n_tensors, u64 n_kv.
 *   2. n_kv times: key (u64 length + bytes), u32 type, value. A string is a
 *      u64 length + bytes (no NUL); an array is u32 element type, u64 count,
 *      elements (no arrays of arrays).
 *   3. n_tensors times: name (u64 length + bytes), u32 n_dims, u64 ne[n_dims]
 *      (ne[0] innermost), u32 ggml type, u64 offset into the data section.
 *   4. zero padding to general.alignment (u32, default 32); the data section:
 *      each tensor at its offset, padded to the alignment.
 *
 * Every byte is hostile. Enforced: version 2..3; n_kv and n_tensors below
 * 2^20 and below what the bytes left could hold; keys 1..65535 bytes, no NUL,
 * unique; string values below 256 MiB; arrays of a known element type, their
 * byte size overflow-checked against the bytes left; BOOL bytes 0 or 1;
 * general.alignment a UINT32 power of two in [8, 2^20]; tensor names 1..63
 * bytes (GGML_MAX_NAME), no NUL, unique; n_dims <= 4; every ne[] <= INT64_MAX
 * with an element count that does not overflow int64; known ggml types (ids
 * that ggml has but libquant does not read: LQ_ERR_UNSUPPORTED); ne[0] a
 * multiple of the type's block; offsets equal to the running sum of aligned
 * sizes (what gguf.cpp demands); every tensor's bytes inside the file. */
#include "formats_internal.h"
#include "lq_qformats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_MAX_KV         (1 << 20)
#define GGUF_MAX_TENSORS    (1 << 20)
#define GGUF_MAX_KEY        65535u
#define GGUF_MAX_NAME       63u           /* GGML_MAX_NAME 64 with the NUL */
#define GGUF_MAX_STRING     (256u << 20)
#define GGUF_MAX_DIMS       4
#define GGUF_MAX_ALIGNMENT  (1u << 20)

typedef struct {
    const uint8_t *key;     /* in the file, key_len bytes                       */
    uint64_t       key_len;
    char          *key_z;   /* NUL-terminated copy (arena)                      */
    lq_gguf_type   type;
    lq_gguf_type   elem;    /* ARRAY: element type                              */
    uint64_t       n;       /* ARRAY: element count; STRING: byte length        */
    const uint8_t *val;     /* value bytes: scalar, string bytes, array items   */
    uint64_t      *str_off; /* STRING arrays: offset of element i's u64 length  */
    char          *str_z;   /* STRING: NUL-terminated copy (arena)              */
} gguf_kv;

struct lq_gguf {
    lq__mapping     map;      /* owned mapping (empty for a borrowed buffer) */
    const uint8_t  *buf;
    size_t          len;
    char           *label;
    uint32_t        version, alignment;
    gguf_kv        *kv;
    int64_t         n_kv;
    int64_t        *kv_by_key;
    lq_tensor_info *t;
    int            *ggml_type;
    int64_t         n;
    int64_t        *by_name;
    char           *arena;    /* NUL-terminated keys, string values, tensor names */
};

/* ---- ggml type ids: names for messages, which ones libquant reads ---- */

static const char *ggml_type_name(uint32_t id) {
    static const char *const names[] = {
        "f32",  "f16",   "q4_0",   "q4_1",   NULL,     NULL,    "q5_0",   "q5_1",   "q8_0",    "q8_1",
        "q2_k", "q3_k",  "q4_k",   "q5_k",   "q6_k",   "q8_k",  "iq2_xxs", "iq2_xs", "iq3_xxs", "iq1_s",
        "iq4_nl", "iq3_s", "iq2_s", "iq4_xs", "i8",    "i16",   "i32",    "i64",    "f64",     "iq1_m",
        "bf16", NULL,    NULL,     NULL,     "tq1_0",  "tq2_0", NULL,     NULL,     NULL,      "mxfp4"};
    return id < sizeof names / sizeof names[0] ? names[id] : NULL;
}

/* plain ggml element types that are dtypes of ours */
static bool ggml_plain_dtype(uint32_t id, lq_dtype *dt) {
    switch (id) {
    case 0: *dt = LQ_DTYPE_F32; return true;
    case 1: *dt = LQ_DTYPE_F16; return true;
    case 30: *dt = LQ_DTYPE_BF16; return true;
    case 24: *dt = LQ_DTYPE_I8; return true;
    case 25: *dt = LQ_DTYPE_I16; return true;
    case 26: *dt = LQ_DTYPE_I32; return true;
    case 27: *dt = LQ_DTYPE_I64; return true;
    case 28: *dt = LQ_DTYPE_F64; return true;
    default: return false;
    }
}

/* ---- bounded cursor ---- */

typedef struct {
    const uint8_t *p, *end, *base;
    const char    *label;
} cur;

static uint64_t rd64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static size_t left(const cur *c) { return (size_t)(c->end - c->p); }
static size_t at(const cur *c) { return (size_t)(c->p - c->base); }

static bool take_u32(cur *c, uint32_t *v) {
    if (left(c) < 4) return false;
    *v = rd32(c->p);
    c->p += 4;
    return true;
}
static bool take_u64(cur *c, uint64_t *v) {
    if (left(c) < 8) return false;
    *v = rd64(c->p);
    c->p += 8;
    return true;
}

static int scalar_size(lq_gguf_type t) {
    switch (t) {
    case LQ_GGUF_UINT8: case LQ_GGUF_INT8: case LQ_GGUF_BOOL: return 1;
    case LQ_GGUF_UINT16: case LQ_GGUF_INT16: return 2;
    case LQ_GGUF_UINT32: case LQ_GGUF_INT32: case LQ_GGUF_FLOAT32: return 4;
    case LQ_GGUF_UINT64: case LQ_GGUF_INT64: case LQ_GGUF_FLOAT64: return 8;
    case LQ_GGUF_STRING: case LQ_GGUF_ARRAY: return 0;
    }
    return 0;
}

static const char *type_name(lq_gguf_type t) {
    static const char *const n[] = {"UINT8", "INT8",  "UINT16", "INT16",  "UINT32", "INT32",  "FLOAT32",
                                    "BOOL",  "STRING", "ARRAY", "UINT64", "INT64",  "FLOAT64"};
    return (unsigned)t < sizeof n / sizeof n[0] ? n[t] : "?";
}

/* a string: u64 length + bytes; *s points at the bytes */
static lq_status take_str(cur *c, uint64_t max, const uint8_t **s, uint64_t *n, const char *what, const char *whose) {
    uint64_t len;
    LQ_RETURN_IF(!take_u64(c, &len), LQ_ERR_FORMAT, "%s: truncated at offset %zu (length of %s%s)", c->label, at(c),
                 what, whose);
    LQ_RETURN_IF(len > max, LQ_ERR_FORMAT, "%s: %s%s is %llu bytes long (limit %llu) at offset %zu", c->label, what,
                 whose, (unsigned long long)len, (unsigned long long)max, at(c) - 8);
    LQ_RETURN_IF(len > left(c), LQ_ERR_FORMAT, "%s: truncated: %s%s of %llu bytes at offset %zu runs past the end",
                 c->label, what, whose, (unsigned long long)len, at(c) - 8);
    *s = c->p;
    *n = len;
    c->p += len;
    return LQ_OK;
}

static lq_status parse_kv(lq_gguf *g, cur *c, int64_t i, gguf_kv *kv) {
    const char *L = g->label;
    char        whose[96];
    snprintf(whose, sizeof whose, " %lld", (long long)i);
    LQ_TRY(take_str(c, GGUF_MAX_KEY, &kv->key, &kv->key_len, "key", whose));
    LQ_RETURN_IF(kv->key_len == 0 || memchr(kv->key, 0, kv->key_len), LQ_ERR_FORMAT,
                 "%s: key %lld is empty or contains a NUL byte", L, (long long)i);
    snprintf(whose, sizeof whose, "key '%.*s'", (int)LQ_MIN(kv->key_len, 64), (const char *)kv->key);
    uint32_t t;
    LQ_RETURN_IF(!take_u32(c, &t), LQ_ERR_FORMAT, "%s: %s: truncated before its type", L, whose);
    LQ_RETURN_IF(t > LQ_GGUF_FLOAT64, LQ_ERR_FORMAT, "%s: %s has unknown value type %u", L, whose, t);
    kv->type = (lq_gguf_type)t;
    if (kv->type == LQ_GGUF_STRING) {
        LQ_TRY(take_str(c, GGUF_MAX_STRING, &kv->val, &kv->n, "the value of ", whose));
        return LQ_OK;
    }
    if (kv->type != LQ_GGUF_ARRAY) {
        const size_t sz = (size_t)scalar_size(kv->type);
        LQ_RETURN_IF(left(c) < sz, LQ_ERR_FORMAT, "%s: %s: truncated %s value at offset %zu", L, whose,
                     type_name(kv->type), at(c));
        kv->val = c->p;
        LQ_RETURN_IF(kv->type == LQ_GGUF_BOOL && c->p[0] > 1, LQ_ERR_FORMAT, "%s: %s: BOOL value %u is not 0 or 1", L,
                     whose, c->p[0]);
        c->p += sz;
        return LQ_OK;
    }
    uint32_t e;
    LQ_RETURN_IF(!take_u32(c, &e) || !take_u64(c, &kv->n), LQ_ERR_FORMAT, "%s: %s: truncated array header", L, whose);
    LQ_RETURN_IF(e > LQ_GGUF_FLOAT64 || e == LQ_GGUF_ARRAY, LQ_ERR_FORMAT, "%s: %s: array element type %u is %s", L,
                 whose, e, e == LQ_GGUF_ARRAY ? "an array (nested arrays are not allowed)" : "unknown");
    kv->elem = (lq_gguf_type)e;
    kv->val  = c->p;
    if (kv->elem != LQ_GGUF_STRING) {
        uint64_t bytes;
        LQ_RETURN_IF(!lq__mul_u64(kv->n, (uint64_t)scalar_size(kv->elem), &bytes) || bytes > left(c), LQ_ERR_FORMAT,
                     "%s: %s: array of %llu %s elements runs past the end of the file", L, whose,
                     (unsigned long long)kv->n, type_name(kv->elem));
        if (kv->elem == LQ_GGUF_BOOL)
            for (uint64_t k = 0; k < kv->n; k++)
                LQ_RETURN_IF(c->p[k] > 1, LQ_ERR_FORMAT, "%s: %s: BOOL element %llu is %u, not 0 or 1", L, whose,
                             (unsigned long long)k, c->p[k]);
        c->p += bytes;
        return LQ_OK;
    }
    /* strings take at least 8 bytes each: bound the count before allocating */
    LQ_RETURN_IF(kv->n > left(c) / 8, LQ_ERR_FORMAT, "%s: %s: array of %llu strings runs past the end of the file", L,
                 whose, (unsigned long long)kv->n);
    kv->str_off = lq_malloc((size_t)(kv->n ? kv->n : 1) * sizeof *kv->str_off);
    LQ_RETURN_IF(!kv->str_off, LQ_ERR_NOMEM, "%s: out of memory for %s", L, whose);
    for (uint64_t k = 0; k < kv->n; k++) {
        kv->str_off[k] = (uint64_t)(c->p - kv->val);
        const uint8_t *s;
        uint64_t       n;
        char           w2[128];
        snprintf(w2, sizeof w2, "%s[%llu]", whose, (unsigned long long)k);
        LQ_TRY(take_str(c, GGUF_MAX_STRING, &s, &n, "", w2));
    }
    return LQ_OK;
}

static int cmp_bytes(const uint8_t *a, uint64_t na, const uint8_t *b, uint64_t nb) {
    const int r = memcmp(a, b, (size_t)LQ_MIN(na, nb));
    if (r) return r;
    return na < nb ? -1 : na > nb ? 1 : 0;
}

static int cmp_kv_idx(const void *a, const void *b, void *ctx) {
    const gguf_kv *kv = ctx;
    const gguf_kv *x = &kv[*(const int64_t *)a], *y = &kv[*(const int64_t *)b];
    return cmp_bytes(x->key, x->key_len, y->key, y->key_len);
}

static int cmp_t_idx(const void *a, const void *b, void *ctx) {
    const lq_tensor_info *t = ctx;
    return strcmp(t[*(const int64_t *)a].name, t[*(const int64_t *)b].name);
}

static const gguf_kv *find_kv(const lq_gguf *g, const char *key) {
    const size_t kl = strlen(key);
    int64_t      lo = 0, hi = g->n_kv;
    while (lo < hi) {
        const int64_t  mid = lo + (hi - lo) / 2;
        const gguf_kv *kv  = &g->kv[g->kv_by_key[mid]];
        const int      r   = cmp_bytes(kv->key, kv->key_len, (const uint8_t *)key, kl);
        if (r == 0) return kv;
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

typedef struct {
    const uint8_t *name;
    uint64_t       name_len;
    uint64_t       offset;
} raw_tensor;

static lq_status parse_tensor(lq_gguf *g, cur *c, int64_t i, raw_tensor *r, lq_tensor_info *t, int *gtype) {
    const char *L = g->label;
    char        whose[32];
    snprintf(whose, sizeof whose, " %lld", (long long)i);
    LQ_TRY(take_str(c, GGUF_MAX_NAME, &r->name, &r->name_len, "the name of tensor", whose));
    LQ_RETURN_IF(r->name_len == 0 || memchr(r->name, 0, r->name_len), LQ_ERR_FORMAT,
                 "%s: tensor %lld has an empty name or one with a NUL byte", L, (long long)i);
    const int   nl = (int)r->name_len;
    const char *nm = (const char *)r->name;
    uint32_t    n_dims;
    LQ_RETURN_IF(!take_u32(c, &n_dims), LQ_ERR_FORMAT, "%s: tensor '%.*s': truncated before n_dims", L, nl, nm);
    LQ_RETURN_IF(n_dims > GGUF_MAX_DIMS, LQ_ERR_FORMAT, "%s: tensor '%.*s' has %u dimensions (at most %d)", L, nl, nm,
                 n_dims, GGUF_MAX_DIMS);
    uint64_t ne[GGUF_MAX_DIMS] = {1, 1, 1, 1}, numel = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        LQ_RETURN_IF(!take_u64(c, &ne[d]), LQ_ERR_FORMAT, "%s: tensor '%.*s': truncated in ne[%u]", L, nl, nm, d);
        LQ_RETURN_IF(ne[d] > (uint64_t)INT64_MAX, LQ_ERR_FORMAT, "%s: tensor '%.*s': ne[%u] = %llu is negative", L, nl,
                     nm, d, (unsigned long long)ne[d]);
        LQ_RETURN_IF(!lq__mul_u64(numel, ne[d], &numel) || numel > (uint64_t)INT64_MAX, LQ_ERR_FORMAT,
                     "%s: tensor '%.*s': the element count overflows", L, nl, nm);
    }
    uint32_t type;
    LQ_RETURN_IF(!take_u32(c, &type) || !take_u64(c, &r->offset), LQ_ERR_FORMAT,
                 "%s: tensor '%.*s': truncated before its type and offset", L, nl, nm);
    const lq_qtype q = lq_qtype_from_ggml((int)type);
    lq_dtype       dt;
    const bool     plain = ggml_plain_dtype(type, &dt);
    if (!plain && q == LQ_QT_NONE) {
        const char *gn = ggml_type_name(type);
        LQ_RETURN_IF(gn, LQ_ERR_UNSUPPORTED, "%s: tensor '%.*s' has ggml type %s (%u), which libquant does not read", L,
                     nl, nm, gn, type);
        LQ_RETURN_IF(1, LQ_ERR_FORMAT, "%s: tensor '%.*s' has unknown ggml type id %u", L, nl, nm, type);
    }
    uint64_t nbytes;
    if (plain) {
        LQ_RETURN_IF(!lq_dtype_nbytes(dt, numel, &nbytes), LQ_ERR_FORMAT, "%s: tensor '%.*s': byte size overflows", L,
                     nl, nm);
        t->dtype = dt;
        t->qtype = LQ_QT_NONE;
    } else {
        const lq_qtype_traits *tr = lq_qtype_traits_of(q);
        LQ_RETURN_IF(ne[0] % (uint64_t)tr->block != 0, LQ_ERR_FORMAT,
                     "%s: tensor '%.*s': ne[0] = %llu is not a multiple of the %s block size %d", L, nl, nm,
                     (unsigned long long)ne[0], tr->name, tr->block);
        nbytes = ne[0] / (uint64_t)tr->block * (uint64_t)tr->block_bytes;
        for (int d = 1; d < GGUF_MAX_DIMS; d++)
            LQ_RETURN_IF(!lq__mul_u64(nbytes, ne[d], &nbytes), LQ_ERR_FORMAT, "%s: tensor '%.*s': byte size overflows",
                         L, nl, nm);
        t->dtype = LQ_DTYPE_U8;
        t->qtype = q;
    }
    LQ_RETURN_IF(nbytes > (uint64_t)SIZE_MAX / 2, LQ_ERR_FORMAT, "%s: tensor '%.*s': %llu bytes is too large", L, nl,
                 nm, (unsigned long long)nbytes);
    t->n_dims = (int32_t)n_dims;
    for (uint32_t d = 0; d < n_dims; d++) t->shape[d] = (int64_t)ne[n_dims - 1 - d];
    t->nbytes   = nbytes;
    t->alias_of = -1;
    *gtype      = (int)type;
    return LQ_OK;
}

static lq_status parse(lq_gguf *g) {
    const char *L  = g->label;
    cur         c  = {.p = g->buf, .end = g->buf + g->len, .base = g->buf, .label = L};
    raw_tensor *rt = NULL;
    lq_status   st = LQ_OK;
    LQ_RETURN_IF(g->len < 4 || memcmp(g->buf, "GGUF", 4) != 0, LQ_ERR_FORMAT, "%s: not a GGUF file (bad magic)", L);
    c.p += 4;
    uint64_t n_t, n_kv;
    LQ_RETURN_IF(!take_u32(&c, &g->version), LQ_ERR_FORMAT, "%s: truncated GGUF header", L);
    LQ_RETURN_IF(g->version == 1, LQ_ERR_FORMAT, "%s: GGUF version 1 is obsolete (version 2 or 3 is read)", L);
    LQ_RETURN_IF(g->version < 2 || g->version > 3, LQ_ERR_FORMAT, "%s: GGUF version %u is not 2 or 3", L, g->version);
    LQ_RETURN_IF(!take_u64(&c, &n_t) || !take_u64(&c, &n_kv), LQ_ERR_FORMAT, "%s: truncated GGUF header", L);
    /* a key/value pair takes at least 13 bytes, a tensor info at least 24 */
    LQ_RETURN_IF(n_kv > GGUF_MAX_KV || n_kv > left(&c) / 13, LQ_ERR_FORMAT,
                 "%s: %llu key/value pairs is more than the file can hold (or the limit %d)", L,
                 (unsigned long long)n_kv, GGUF_MAX_KV);
    LQ_RETURN_IF(n_t > GGUF_MAX_TENSORS || n_t > left(&c) / 24, LQ_ERR_FORMAT,
                 "%s: %llu tensors is more than the file can hold (or the limit %d)", L, (unsigned long long)n_t,
                 GGUF_MAX_TENSORS);
    g->kv        = lq_calloc((size_t)n_kv + 1, sizeof *g->kv);
    g->kv_by_key = lq_calloc((size_t)n_kv + 1, sizeof *g->kv_by_key);
    g->t         = lq_calloc((size_t)n_t + 1, sizeof *g->t);
    g->ggml_type = lq_calloc((size_t)n_t + 1, sizeof *g->ggml_type);
    g->by_name   = lq_calloc((size_t)n_t + 1, sizeof *g->by_name);
    rt           = lq_calloc((size_t)n_t + 1, sizeof *rt);
    LQ_GOTO_IF(!g->kv || !g->kv_by_key || !g->t || !g->ggml_type || !g->by_name || !rt, LQ_ERR_NOMEM,
               "%s: out of memory", L);
    for (uint64_t i = 0; i < n_kv; i++) {
        g->n_kv = (int64_t)i + 1; /* so that close() frees str_off */
        LQ_GOTO_TRY(parse_kv(g, &c, (int64_t)i, &g->kv[i]));
    }
    g->n_kv = (int64_t)n_kv;
    for (int64_t i = 0; i < g->n_kv; i++) g->kv_by_key[i] = i;
    qsort_r(g->kv_by_key, (size_t)g->n_kv, sizeof *g->kv_by_key, cmp_kv_idx, g->kv);
    for (int64_t i = 1; i < g->n_kv; i++) {
        const gguf_kv *a = &g->kv[g->kv_by_key[i - 1]], *b = &g->kv[g->kv_by_key[i]];
        LQ_GOTO_IF(cmp_bytes(a->key, a->key_len, b->key, b->key_len) == 0, LQ_ERR_FORMAT, "%s: duplicate key '%.*s'",
                   L, (int)LQ_MIN(b->key_len, 200), (const char *)b->key);
    }
    g->alignment = 32;
    {
        const gguf_kv *al = find_kv(g, "general.alignment");
        if (al) {
            LQ_GOTO_IF(al->type != LQ_GGUF_UINT32, LQ_ERR_FORMAT, "%s: general.alignment is %s, not UINT32", L,
                       type_name(al->type));
            const uint32_t a = rd32(al->val);
            LQ_GOTO_IF(a < 8 || a > GGUF_MAX_ALIGNMENT || (a & (a - 1)) != 0, LQ_ERR_FORMAT,
                       "%s: general.alignment %u is not a power of two in [8, %u]", L, a, GGUF_MAX_ALIGNMENT);
            g->alignment = a;
        }
    }
    for (uint64_t i = 0; i < n_t; i++)
        LQ_GOTO_TRY(parse_tensor(g, &c, (int64_t)i, &rt[i], &g->t[i], &g->ggml_type[i]));
    g->n = (int64_t)n_t;
    /* the data section: header padded to the alignment; offsets are the running sum */
    const uint64_t hdr   = at(&c);
    const uint64_t data0 = (hdr + g->alignment - 1) / g->alignment * g->alignment;
    uint64_t       expect = 0;
    for (int64_t i = 0; i < g->n; i++) {
        lq_tensor_info *t  = &g->t[i];
        const int       nl = (int)rt[i].name_len;
        const char     *nm = (const char *)rt[i].name;
        LQ_GOTO_IF(rt[i].offset != expect, LQ_ERR_FORMAT,
                   "%s: tensor '%.*s' has data offset %llu, expected %llu (aligned running sum of the sizes)", L, nl, nm,
                   (unsigned long long)rt[i].offset, (unsigned long long)expect);
        uint64_t end, pad;
        LQ_GOTO_IF(!lq__add_u64(data0, rt[i].offset, &end) || !lq__add_u64(end, t->nbytes, &end) || end > g->len,
                   LQ_ERR_FORMAT, "%s: tensor '%.*s': data [%llu, +%llu) runs past the end of the file (%zu bytes)", L,
                   nl, nm, (unsigned long long)(data0 + rt[i].offset), (unsigned long long)t->nbytes, g->len);
        t->data = g->buf + data0 + rt[i].offset;
        LQ_GOTO_IF(!lq__add_u64(t->nbytes, g->alignment - 1, &pad) ||
                       !lq__add_u64(expect, pad / g->alignment * g->alignment, &expect),
                   LQ_ERR_FORMAT, "%s: tensor '%.*s': offsets overflow", L, nl, nm);
    }
    /* NUL-terminated copies: keys, string values, tensor names */
    size_t total = 1;
    for (int64_t i = 0; i < g->n_kv; i++) {
        total += (size_t)g->kv[i].key_len + 1;
        if (g->kv[i].type == LQ_GGUF_STRING) total += (size_t)g->kv[i].n + 1;
    }
    for (int64_t i = 0; i < g->n; i++) total += (size_t)rt[i].name_len + 1;
    g->arena = lq_malloc(total);
    LQ_GOTO_IF(!g->arena, LQ_ERR_NOMEM, "%s: out of memory (%zu bytes of names)", L, total);
    char *p = g->arena;
    for (int64_t i = 0; i < g->n_kv; i++) {
        gguf_kv *kv = &g->kv[i];
        memcpy(p, kv->key, (size_t)kv->key_len);
        p[kv->key_len] = 0;
        kv->key_z      = p;
        p += kv->key_len + 1;
        if (kv->type == LQ_GGUF_STRING) {
            memcpy(p, kv->val, (size_t)kv->n);
            p[kv->n]  = 0;
            kv->str_z = p;
            p += kv->n + 1;
        }
    }
    for (int64_t i = 0; i < g->n; i++) {
        memcpy(p, rt[i].name, (size_t)rt[i].name_len);
        p[rt[i].name_len] = 0;
        g->t[i].name      = p;
        p += rt[i].name_len + 1;
    }
    for (int64_t i = 0; i < g->n; i++) g->by_name[i] = i;
    qsort_r(g->by_name, (size_t)g->n, sizeof *g->by_name, cmp_t_idx, g->t);
    for (int64_t i = 1; i < g->n; i++)
        LQ_GOTO_IF(strcmp(g->t[g->by_name[i - 1]].name, g->t[g->by_name[i]].name) == 0, LQ_ERR_FORMAT,
                   "%s: duplicate tensor name '%s'", L, g->t[g->by_name[i]].name);
done:
    lq_free(rt);
    return st;
}

static lq_status open_common(const uint8_t *buf, size_t len, const char *label, lq__mapping *map, lq_gguf **out) {
    lq_gguf *g  = lq_calloc(1, sizeof *g);
    char    *lb = lq_strdup(label ? label : "<memory>");
    if (!g || !lb) {
        lq_free(g);
        lq_free(lb);
        if (map) lq__unmap_file(map);
        LQ_RETURN_IF(1, LQ_ERR_NOMEM, "out of memory");
    }
    g->label = lb;
    g->buf   = buf;
    g->len   = len;
    if (map) g->map = *map;
    const lq_status s = parse(g);
    if (s != LQ_OK) {
        lq_gguf_close(g);
        return s;
    }
    *out = g;
    return LQ_OK;
}

lq_status lq_gguf_open(const char *path, lq_gguf **out) {
    LQ_RETURN_IF(!path || !out, LQ_ERR_INVALID_ARG, "NULL argument");
    *out = NULL;
    lq__mapping m;
    LQ_TRY(lq__map_file(path, &m));
    return open_common(m.data, m.size, path, &m, out);
}

lq_status lq_gguf_open_memory(const void *buf, size_t len, const char *label, lq_gguf **out) {
    LQ_RETURN_IF(!out || (!buf && len), LQ_ERR_INVALID_ARG, "NULL argument");
    *out = NULL;
    return open_common(buf, len, label, NULL, out);
}

void lq_gguf_close(lq_gguf *g) {
    if (!g) return;
    for (int64_t i = 0; i < g->n_kv; i++) lq_free(g->kv[i].str_off);
    lq_free(g->kv);
    lq_free(g->kv_by_key);
    lq_free(g->t);
    lq_free(g->ggml_type);
    lq_free(g->by_name);
    lq_free(g->arena);
    lq_free(g->label);
    lq__unmap_file(&g->map);
    lq_free(g);
}

uint32_t lq_gguf_version(const lq_gguf *g) { return g->version; }
uint32_t lq_gguf_alignment(const lq_gguf *g) { return g->alignment; }
int64_t  lq_gguf_count(const lq_gguf *g) { return g->n; }

const lq_tensor_info *lq_gguf_tensor(const lq_gguf *g, int64_t i) {
    return (i >= 0 && i < g->n) ? &g->t[i] : NULL;
}

const lq_tensor_info *lq_gguf_find(const lq_gguf *g, const char *name) {
    int64_t lo = 0, hi = g->n;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        const int     r   = strcmp(g->t[g->by_name[mid]].name, name);
        if (r == 0) return &g->t[g->by_name[mid]];
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int lq_gguf_tensor_ggml_type(const lq_gguf *g, int64_t i) { return (i >= 0 && i < g->n) ? g->ggml_type[i] : -1; }

/* ==== key/value access ==== */

int64_t      lq_gguf_kv_count(const lq_gguf *g) { return g->n_kv; }
const char  *lq_gguf_kv_key(const lq_gguf *g, int64_t i) { return (i >= 0 && i < g->n_kv) ? g->kv[i].key_z : NULL; }
lq_gguf_type lq_gguf_kv_type(const lq_gguf *g, int64_t i) {
    return (i >= 0 && i < g->n_kv) ? g->kv[i].type : (lq_gguf_type)-1;
}

/* an integer element at p of type t; false for non-integer types or a UINT64 above INT64_MAX */
static bool int_at(lq_gguf_type t, const uint8_t *p, int64_t *out) {
    switch (t) {
    case LQ_GGUF_UINT8: *out = p[0]; return true;
    case LQ_GGUF_INT8: *out = (int8_t)p[0]; return true;
    case LQ_GGUF_UINT16: *out = (uint16_t)(p[0] | p[1] << 8); return true;
    case LQ_GGUF_INT16: *out = (int16_t)(uint16_t)(p[0] | p[1] << 8); return true;
    case LQ_GGUF_UINT32: *out = rd32(p); return true;
    case LQ_GGUF_INT32: *out = (int32_t)rd32(p); return true;
    case LQ_GGUF_UINT64: {
        const uint64_t v = rd64(p);
        if (v > (uint64_t)INT64_MAX) return false;
        *out = (int64_t)v;
        return true;
    }
    case LQ_GGUF_INT64: *out = (int64_t)rd64(p); return true;
    case LQ_GGUF_FLOAT32: case LQ_GGUF_BOOL: case LQ_GGUF_STRING: case LQ_GGUF_ARRAY: case LQ_GGUF_FLOAT64:
        return false;
    }
    return false;
}

static bool float_at(lq_gguf_type t, const uint8_t *p, double *out) {
    if (t == LQ_GGUF_FLOAT32) {
        const uint32_t u = rd32(p);
        float          f;
        memcpy(&f, &u, 4);
        *out = f;
        return true;
    }
    if (t == LQ_GGUF_FLOAT64) {
        const uint64_t u = rd64(p);
        memcpy(out, &u, 8);
        return true;
    }
    return false;
}

static lq_status wrong_type(const lq_gguf *g, const gguf_kv *kv, const char *want) {
    if (kv->type == LQ_GGUF_ARRAY)
        LQ_LOG_ERR("%s: key '%s' is an ARRAY of %s, not %s", g->label, kv->key_z, type_name(kv->elem), want);
    else
        LQ_LOG_ERR("%s: key '%s' is %s, not %s", g->label, kv->key_z, type_name(kv->type), want);
    return LQ_ERR_FORMAT;
}

lq_status lq_gguf_get_i64(const lq_gguf *g, const char *key, int64_t *out) {
    const gguf_kv *kv = find_kv(g, key);
    if (!kv) return LQ_ERR_NOT_FOUND;
    if (!int_at(kv->type, kv->val, out)) {
        LQ_RETURN_IF(kv->type == LQ_GGUF_UINT64, LQ_ERR_FORMAT, "%s: key '%s': %llu does not fit in int64", g->label,
                     key, (unsigned long long)rd64(kv->val));
        return wrong_type(g, kv, "an integer");
    }
    return LQ_OK;
}

lq_status lq_gguf_get_f64(const lq_gguf *g, const char *key, double *out) {
    const gguf_kv *kv = find_kv(g, key);
    if (!kv) return LQ_ERR_NOT_FOUND;
    return float_at(kv->type, kv->val, out) ? LQ_OK : wrong_type(g, kv, "FLOAT32 or FLOAT64");
}

lq_status lq_gguf_get_bool(const lq_gguf *g, const char *key, bool *out) {
    const gguf_kv *kv = find_kv(g, key);
    if (!kv) return LQ_ERR_NOT_FOUND;
    if (kv->type != LQ_GGUF_BOOL) return wrong_type(g, kv, "BOOL");
    *out = kv->val[0] != 0;
    return LQ_OK;
}

lq_status lq_gguf_get_str(const lq_gguf *g, const char *key, const char **out) {
    const gguf_kv *kv = find_kv(g, key);
    if (!kv) return LQ_ERR_NOT_FOUND;
    if (kv->type != LQ_GGUF_STRING) return wrong_type(g, kv, "STRING");
    *out = kv->str_z;
    return LQ_OK;
}

lq_status lq_gguf_get_array(const lq_gguf *g, const char *key, lq_gguf_type *elem_type, uint64_t *n) {
    const gguf_kv *kv = find_kv(g, key);
    if (!kv) return LQ_ERR_NOT_FOUND;
    if (kv->type != LQ_GGUF_ARRAY) return wrong_type(g, kv, "ARRAY");
    if (elem_type) *elem_type = kv->elem;
    if (n) *n = kv->n;
    return LQ_OK;
}

/* the array `key` with element i in range */
static lq_status array_elem(const lq_gguf *g, const char *key, uint64_t i, const gguf_kv **out) {
    const gguf_kv *kv = find_kv(g, key);
    if (!kv) return LQ_ERR_NOT_FOUND;
    if (kv->type != LQ_GGUF_ARRAY) return wrong_type(g, kv, "ARRAY");
    LQ_RETURN_IF(i >= kv->n, LQ_ERR_INVALID_ARG, "%s: key '%s': index %llu is past the %llu elements", g->label, key,
                 (unsigned long long)i, (unsigned long long)kv->n);
    *out = kv;
    return LQ_OK;
}

lq_status lq_gguf_array_str(const lq_gguf *g, const char *key, uint64_t i, const char **s, uint64_t *len) {
    const gguf_kv *kv;
    LQ_TRY(array_elem(g, key, i, &kv));
    if (kv->elem != LQ_GGUF_STRING) return wrong_type(g, kv, "an ARRAY of STRING");
    const uint8_t *p = kv->val + kv->str_off[i];
    *len             = rd64(p);
    *s               = (const char *)p + 8;
    return LQ_OK;
}

lq_status lq_gguf_array_f64(const lq_gguf *g, const char *key, uint64_t i, double *out) {
    const gguf_kv *kv;
    LQ_TRY(array_elem(g, key, i, &kv));
    const uint8_t *p = kv->val + i * (uint64_t)scalar_size(kv->elem);
    int64_t        v;
    if (float_at(kv->elem, p, out)) return LQ_OK;
    if (int_at(kv->elem, p, &v)) {
        *out = (double)v;
        return LQ_OK;
    }
    if (kv->elem == LQ_GGUF_UINT64) {
        *out = (double)rd64(p);
        return LQ_OK;
    }
    return wrong_type(g, kv, "a numeric ARRAY");
}

lq_status lq_gguf_array_i64(const lq_gguf *g, const char *key, uint64_t i, int64_t *out) {
    const gguf_kv *kv;
    LQ_TRY(array_elem(g, key, i, &kv));
    const uint8_t *p = kv->val + i * (uint64_t)scalar_size(kv->elem);
    if (int_at(kv->elem, p, out)) return LQ_OK;
    LQ_RETURN_IF(kv->elem == LQ_GGUF_UINT64, LQ_ERR_FORMAT, "%s: key '%s'[%llu]: %llu does not fit in int64", g->label,
                 key, (unsigned long long)i, (unsigned long long)rd64(p));
    return wrong_type(g, kv, "an integer ARRAY");
}

/* ==== hyperparameters ==== */

/* `<arch>.<name>` as an integer; LQ_ERR_FORMAT naming the key when mandatory and absent */
static lq_status arch_int(const lq_gguf *g, const char *arch, const char *name, bool mandatory, int64_t *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, name);
    const lq_status s = lq_gguf_get_i64(g, key, out);
    if (s == LQ_ERR_NOT_FOUND && mandatory) {
        LQ_LOG_ERR("%s: the mandatory key '%s' is missing", g->label, key);
        return LQ_ERR_FORMAT;
    }
    return s;
}

static lq_status arch_f64(const lq_gguf *g, const char *arch, const char *name, bool mandatory, double *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, name);
    const lq_status s = lq_gguf_get_f64(g, key, out);
    if (s == LQ_ERR_NOT_FOUND && mandatory) {
        LQ_LOG_ERR("%s: the mandatory key '%s' is missing", g->label, key);
        return LQ_ERR_FORMAT;
    }
    return s;
}

#define OPTIONAL(expr)                                                                                                 \
    do {                                                                                                               \
        const lq_status lq__o = (expr);                                                                                \
        if (lq__o != LQ_OK && lq__o != LQ_ERR_NOT_FOUND) return lq__o;                                                 \
    } while (0)

lq_status lq_gguf_config(const lq_gguf *g, lq_model_config *c) {
    const char *L = g->label;
    memset(c, 0, sizeof *c);
    const char     *arch = NULL;
    const lq_status sa   = lq_gguf_get_str(g, "general.architecture", &arch);
    LQ_RETURN_IF(sa == LQ_ERR_NOT_FOUND, LQ_ERR_FORMAT, "%s: no general.architecture key", L);
    LQ_TRY(sa);
    const bool qwen = strcmp(arch, "qwen2") == 0, mistral = strcmp(arch, "mistral") == 0;
    LQ_RETURN_IF(!qwen && !mistral && strcmp(arch, "llama") != 0, LQ_ERR_UNSUPPORTED,
                 "%s: general.architecture \"%.64s\" is not supported (llama, qwen2, mistral)", L, arch);
    snprintf(c->model_type, sizeof c->model_type, "%s", arch);
    snprintf(c->architecture, sizeof c->architecture, "%s",
             qwen ? "Qwen2ForCausalLM" : mistral ? "MistralForCausalLM" : "LlamaForCausalLM");
    LQ_TRY(arch_int(g, arch, "embedding_length", true, &c->hidden_size));
    LQ_TRY(arch_int(g, arch, "feed_forward_length", true, &c->intermediate_size));
    LQ_TRY(arch_int(g, arch, "block_count", true, &c->n_layers));
    LQ_TRY(arch_int(g, arch, "attention.head_count", true, &c->n_heads));
    LQ_TRY(arch_int(g, arch, "context_length", true, &c->max_position_embeddings));
    LQ_TRY(arch_f64(g, arch, "attention.layer_norm_rms_epsilon", true, &c->rms_norm_eps));
    c->n_kv_heads = c->n_heads;
    OPTIONAL(arch_int(g, arch, "attention.head_count_kv", false, &c->n_kv_heads));
    c->rope_theta = 10000.0;
    OPTIONAL(arch_f64(g, arch, "rope.freq_base", false, &c->rope_theta));
    LQ_RETURN_IF(c->hidden_size <= 0 || c->intermediate_size <= 0 || c->n_layers <= 0 || c->n_heads <= 0 ||
                     c->n_kv_heads <= 0 || c->max_position_embeddings <= 0,
                 LQ_ERR_FORMAT, "%s: %s sizes must be positive", L, arch);
    LQ_RETURN_IF(c->n_heads % c->n_kv_heads != 0, LQ_ERR_FORMAT,
                 "%s: %s.attention.head_count %lld is not a multiple of head_count_kv %lld", L, arch,
                 (long long)c->n_heads, (long long)c->n_kv_heads);
    c->head_dim = -1;
    OPTIONAL(arch_int(g, arch, "attention.key_length", false, &c->head_dim));
    if (c->head_dim < 0) {
        LQ_RETURN_IF(c->hidden_size % c->n_heads != 0, LQ_ERR_FORMAT,
                     "%s: %s.embedding_length %lld is not a multiple of the head count %lld", L, arch,
                     (long long)c->hidden_size, (long long)c->n_heads);
        c->head_dim = c->hidden_size / c->n_heads;
    }
    int64_t vlen = c->head_dim, rot = c->head_dim;
    OPTIONAL(arch_int(g, arch, "attention.value_length", false, &vlen));
    OPTIONAL(arch_int(g, arch, "rope.dimension_count", false, &rot));
    LQ_RETURN_IF(c->head_dim <= 0 || c->head_dim % 2 != 0, LQ_ERR_FORMAT, "%s: head dimension %lld must be even", L,
                 (long long)c->head_dim);
    LQ_RETURN_IF(vlen != c->head_dim, LQ_ERR_UNSUPPORTED, "%s: value_length %lld differs from key_length %lld", L,
                 (long long)vlen, (long long)c->head_dim);
    LQ_RETURN_IF(rot != c->head_dim, LQ_ERR_UNSUPPORTED,
                 "%s: %s.rope.dimension_count %lld differs from the head dimension %lld (partial rotary)", L, arch,
                 (long long)rot, (long long)c->head_dim);
    LQ_RETURN_IF(!(c->rms_norm_eps > 0) || !(c->rope_theta > 0), LQ_ERR_FORMAT,
                 "%s: the RMS norm epsilon and rope.freq_base must be positive", L);
    /* rope scaling */
    {
        char        key[128];
        const char *type = NULL;
        snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
        OPTIONAL(lq_gguf_get_str(g, key, &type));
        double factor = 1.0;
        OPTIONAL(arch_f64(g, arch, "rope.scaling.factor", false, &factor));
        if (type && strcmp(type, "none") != 0) {
            if (strcmp(type, "linear") == 0) {
                c->rope_type = LQ_ROPE_LINEAR;
            } else if (strcmp(type, "yarn") == 0) {
                c->rope_type = LQ_ROPE_YARN;
                OPTIONAL(arch_int(g, arch, "rope.scaling.original_context_length", false, &c->rope_original_max_pos));
            } else {
                LQ_RETURN_IF(1, LQ_ERR_UNSUPPORTED, "%s: %s \"%.32s\" is not supported", L, key, type);
            }
            LQ_RETURN_IF(!(factor > 0), LQ_ERR_FORMAT, "%s: %s.rope.scaling.factor must be positive", L, arch);
            c->rope_factor = factor;
        }
        LQ_RETURN_IF(lq_gguf_find(g, "rope_freqs.weight") != NULL, LQ_ERR_UNSUPPORTED,
                     "%s: a rope_freqs.weight tensor (Llama-3.1 style frequency factors) is not supported", L);
    }
    /* vocabulary: the key, else the token list, else the embedding */
    c->vocab_size = -1;
    OPTIONAL(arch_int(g, arch, "vocab_size", false, &c->vocab_size));
    if (c->vocab_size < 0) {
        uint64_t     n;
        lq_gguf_type et;
        if (lq_gguf_get_array(g, "tokenizer.ggml.tokens", &et, &n) == LQ_OK) {
            c->vocab_size = n > (uint64_t)INT64_MAX ? -1 : (int64_t)n;
        } else {
            const lq_tensor_info *e = lq_gguf_find(g, "token_embd.weight");
            if (e && e->n_dims == 2) c->vocab_size = e->shape[0];
        }
    }
    LQ_RETURN_IF(c->vocab_size <= 0, LQ_ERR_FORMAT,
                 "%s: no vocabulary size (%s.vocab_size, tokenizer.ggml.tokens or token_embd.weight)", L, arch);
    c->tie_word_embeddings = lq_gguf_find(g, "output.weight") == NULL;
    c->attention_bias      = qwen || lq_gguf_find(g, "blk.0.attn_q.bias") != NULL;
    c->mlp_bias            = lq_gguf_find(g, "blk.0.ffn_up.bias") != NULL;
    /* special tokens: llama.cpp's defaults for a SentencePiece ("llama") vocabulary */
    const char *tm = NULL;
    OPTIONAL(lq_gguf_get_str(g, "tokenizer.ggml.model", &tm));
    const bool spm = tm && strcmp(tm, "llama") == 0;
    c->bos_token_id = spm ? 1 : -1;
    int64_t eos     = spm ? 2 : -1;
    OPTIONAL(lq_gguf_get_i64(g, "tokenizer.ggml.bos_token_id", &c->bos_token_id));
    OPTIONAL(lq_gguf_get_i64(g, "tokenizer.ggml.eos_token_id", &eos));
    if (eos >= 0) {
        c->eos_token_id[0] = eos;
        c->n_eos           = 1;
    }
    int64_t ft = -1;
    OPTIONAL(lq_gguf_get_i64(g, "general.file_type", &ft));
    c->dtype = ft == 0 ? LQ_DTYPE_F32 : ft == 32 ? LQ_DTYPE_BF16 : ft < 0 ? LQ_DTYPE_F32 : LQ_DTYPE_F16;
    snprintf(c->hidden_act, sizeof c->hidden_act, "silu");
    return LQ_OK;
}
