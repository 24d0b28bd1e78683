/* calib_data.c : calibration sets (lq_calib.h). Reads the input whole (gzip
 * through zlib, .npz members through libzip) under a size limit, turns it
 * into one token stream, and draws the windows with splitmix64. */
#include "calib_internal.h"
#include "lq_internal.h"
#include "lq_json.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <zip.h>
#include <zlib.h>

lq_calib_params lq_calib_default_params(void) {
    lq_calib_params p;
    memset(&p, 0, sizeof p);
    p.n_samples   = 128;
    p.seq_len     = 512;
    p.prepend_bos = true;
    p.max_bytes   = 4ull << 30;
    return p;
}

const char *lq_calib_kind_name(lq_calib_kind k) {
    switch (k) {
    case LQ_CALIB_TEXT: return "text";
    case LQ_CALIB_JSONL: return "jsonl";
    case LQ_CALIB_RAW_U16: return "u16";
    case LQ_CALIB_RAW_U32: return "u32";
    case LQ_CALIB_NPY: return "npy";
    case LQ_CALIB_NPZ: return "npz";
    }
    return "?";
}

static bool ends_with(const char *s, const char *suf) {
    const size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcasecmp(s + a - b, suf) == 0;
}

lq_status lq_calib_kind_of(const char *path, lq_calib_kind *out) {
    static const struct {
        const char   *suf;
        lq_calib_kind k;
    } T[] = {{".txt", LQ_CALIB_TEXT},     {".txt.gz", LQ_CALIB_TEXT},   {".jsonl", LQ_CALIB_JSONL},
             {".jsonl.gz", LQ_CALIB_JSONL}, {".bin", LQ_CALIB_RAW_U16}, {".u16", LQ_CALIB_RAW_U16},
             {".u32", LQ_CALIB_RAW_U32},  {".npy", LQ_CALIB_NPY},       {".npz", LQ_CALIB_NPZ}};
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
        if (ends_with(path, T[i].suf)) {
            *out = T[i].k;
            return LQ_OK;
        }
    return LQ_ERR_UNSUPPORTED;
}

/* ---- token buffer ---- */
typedef struct {
    int32_t *v;
    int64_t  n, cap;
} tokbuf;

static lq_status tb_reserve(tokbuf *b, int64_t more) {
    if (b->n + more <= b->cap) return LQ_OK;
    int64_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + more) {
        LQ_RETURN_IF(cap > INT64_MAX / 2 / (int64_t)sizeof(int32_t), LQ_ERR_NOMEM, "calib: too many tokens");
        cap *= 2;
    }
    int32_t *v = lq_malloc((size_t)cap * sizeof *v);
    LQ_RETURN_IF(!v, LQ_ERR_NOMEM, "calib: out of memory for %lld tokens", (long long)cap);
    if (b->n) memcpy(v, b->v, (size_t)b->n * sizeof *v);
    lq_free(b->v);
    b->v   = v;
    b->cap = cap;
    return LQ_OK;
}

static lq_status tb_encode(tokbuf *b, const lq_tokenizer *tok, const char *text, size_t len, bool bos,
                           const char *label) {
    LQ_TRY(tb_reserve(b, (int64_t)len + 16));
    size_t          n = 0;
    const lq_status s = lq_tokenizer_encode(tok, text, len, bos, b->v + b->n, (size_t)(b->cap - b->n), &n);
    LQ_RETURN_IF(s != LQ_OK, s, "calib: %s: the tokenizer failed", label);
    b->n += (int64_t)n;
    return LQ_OK;
}

/* ---- reading the input ---- */
static lq_status read_plain(const char *path, uint64_t limit, uint8_t **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    LQ_RETURN_IF(!f, LQ_ERR_IO, "calib: cannot open %s: %s", path, strerror(errno));
    size_t   cap = 1 << 16, n = 0;
    uint8_t *buf = lq_malloc(cap);
    lq_status st = LQ_OK;
    LQ_GOTO_IF(!buf, LQ_ERR_NOMEM, "calib: out of memory");
    for (;;) {
        if (n == cap) {
            LQ_GOTO_IF(cap > SIZE_MAX / 2, LQ_ERR_NOMEM, "calib: %s is too large", path);
            uint8_t *b2 = lq_malloc(cap * 2);
            LQ_GOTO_IF(!b2, LQ_ERR_NOMEM, "calib: out of memory reading %s", path);
            memcpy(b2, buf, n);
            lq_free(buf);
            buf = b2;
            cap *= 2;
        }
        const size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        LQ_GOTO_IF(n > limit, LQ_ERR_INVALID_ARG, "calib: %s is larger than the %llu-byte limit", path,
                   (unsigned long long)limit);
        if (r == 0) break;
    }
    LQ_GOTO_IF(ferror(f), LQ_ERR_IO, "calib: reading %s: %s", path, strerror(errno));
    fclose(f);
    *out = buf;
    *len = n;
    return LQ_OK;
done:
    fclose(f);
    lq_free(buf);
    return st;
}

lq_status lq__calib_gunzip(const uint8_t *src, size_t n, uint64_t limit, const char *label, uint8_t **out,
                           size_t *len) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    LQ_RETURN_IF(inflateInit2(&zs, 15 + 32) != Z_OK, LQ_ERR_NOMEM, "calib: zlib init failed");
    size_t   cap = n * 4 + 4096, have = 0;
    uint8_t *buf = lq_malloc(cap);
    lq_status st = LQ_OK;
    LQ_GOTO_IF(!buf, LQ_ERR_NOMEM, "calib: out of memory");
    zs.next_in = (Bytef *)(uintptr_t)src;
    size_t fed = 0;
    for (;;) {
        if (zs.avail_in == 0 && fed < n) {
            const size_t chunk = LQ_MIN(n - fed, (size_t)1 << 30);
            zs.next_in         = (Bytef *)(uintptr_t)(src + fed);
            zs.avail_in        = (uInt)chunk;
            fed += chunk;
        }
        if (have == cap) {
            LQ_GOTO_IF(cap >= limit, LQ_ERR_INVALID_ARG, "calib: %s decompresses to more than the %llu-byte limit",
                       label, (unsigned long long)limit);
            const size_t nc = (size_t)LQ_MIN((uint64_t)cap * 2, limit + 1);
            uint8_t     *b2 = lq_malloc(nc);
            LQ_GOTO_IF(!b2, LQ_ERR_NOMEM, "calib: out of memory decompressing %s", label);
            memcpy(b2, buf, have);
            lq_free(buf);
            buf = b2;
            cap = nc;
        }
        zs.next_out   = buf + have;
        zs.avail_out  = (uInt)LQ_MIN(cap - have, (size_t)1 << 30);
        const uInt av = zs.avail_out;
        const int  rc = inflate(&zs, Z_NO_FLUSH);
        have += av - zs.avail_out;
        LQ_GOTO_IF(have > limit, LQ_ERR_INVALID_ARG, "calib: %s decompresses to more than the %llu-byte limit", label,
                   (unsigned long long)limit);
        if (rc == Z_STREAM_END) break;
        LQ_GOTO_IF(rc != Z_OK && rc != Z_BUF_ERROR, LQ_ERR_FORMAT, "calib: %s is not valid gzip data (%s)", label,
                   zs.msg ? zs.msg : "corrupt stream");
        LQ_GOTO_IF(rc == Z_BUF_ERROR && zs.avail_in == 0 && fed == n, LQ_ERR_FORMAT, "calib: %s is truncated", label);
    }
    inflateEnd(&zs);
    *out = buf;
    *len = have;
    return LQ_OK;
done:
    inflateEnd(&zs);
    lq_free(buf);
    return st;
}

/* ---- .npy ---- */
lq_status lq__calib_parse_npy(const uint8_t *b, size_t n, const char *label, int64_t vocab, int32_t **ids,
                              int64_t *count) {
    *ids   = NULL;
    *count = 0;
    LQ_RETURN_IF(n < 10 || memcmp(b, "\x93NUMPY", 6) != 0, LQ_ERR_FORMAT, "calib: %s is not a .npy file", label);
    const int major = b[6];
    size_t    hlen, hoff;
    if (major == 1) {
        hlen = (size_t)b[8] | ((size_t)b[9] << 8);
        hoff = 10;
    } else {
        LQ_RETURN_IF((major != 2 && major != 3) || n < 12, LQ_ERR_FORMAT, "calib: %s: unsupported .npy version %d",
                     label, major);
        hlen = (size_t)b[8] | ((size_t)b[9] << 8) | ((size_t)b[10] << 16) | ((size_t)b[11] << 24);
        hoff = 12;
    }
    LQ_RETURN_IF(hlen > n - hoff || hlen > (1u << 20), LQ_ERR_FORMAT, "calib: %s: the .npy header is truncated",
                 label);
    char hdr[4096];
    LQ_RETURN_IF(hlen >= sizeof hdr, LQ_ERR_FORMAT, "calib: %s: the .npy header is too long", label);
    memcpy(hdr, b + hoff, hlen);
    hdr[hlen] = 0;
    /* 'descr': '<u2', 'fortran_order': False, 'shape': (N,) or (S, L) */
    const char *d = strstr(hdr, "'descr'"), *fo = strstr(hdr, "'fortran_order'"), *sh = strstr(hdr, "'shape'");
    LQ_RETURN_IF(!d || !fo || !sh, LQ_ERR_FORMAT, "calib: %s: the .npy header lacks descr, fortran_order or shape",
                 label);
    char desc[8] = "";
    LQ_RETURN_IF(sscanf(d, "'descr' : '%7[^']'", desc) != 1 && sscanf(d, "'descr': '%7[^']'", desc) != 1,
                 LQ_ERR_FORMAT, "calib: %s: cannot read the .npy descr", label);
    const char *fv = strchr(fo + 15, ':');
    LQ_RETURN_IF(!fv, LQ_ERR_FORMAT, "calib: %s: malformed fortran_order", label);
    while (*++fv == ' ') {
    }
    LQ_RETURN_IF(strncmp(fv, "False", 5) != 0, LQ_ERR_UNSUPPORTED,
                 "calib: %s: Fortran-order arrays are not supported (save with np.ascontiguousarray)", label);
    const char *sp = strchr(sh, '(');
    LQ_RETURN_IF(!sp, LQ_ERR_FORMAT, "calib: %s: malformed shape", label);
    uint64_t total = 1;
    int      dims  = 0;
    for (const char *q = sp + 1; *q && *q != ')';) {
        if (*q == ' ' || *q == ',') {
            q++;
            continue;
        }
        LQ_RETURN_IF(*q < '0' || *q > '9', LQ_ERR_FORMAT, "calib: %s: malformed shape", label);
        uint64_t v = 0;
        while (*q >= '0' && *q <= '9') {
            LQ_RETURN_IF(v > (UINT64_MAX - 9) / 10, LQ_ERR_FORMAT, "calib: %s: shape overflows", label);
            v = v * 10 + (uint64_t)(*q++ - '0');
        }
        LQ_RETURN_IF(!lq__mul_u64(total, v, &total), LQ_ERR_FORMAT, "calib: %s: shape overflows", label);
        dims++;
    }
    LQ_RETURN_IF(dims < 1 || dims > 2, LQ_ERR_UNSUPPORTED, "calib: %s: token arrays must be 1-D or 2-D", label);
    const char end = desc[0];
    LQ_RETURN_IF(end == '>', LQ_ERR_UNSUPPORTED, "calib: %s: big-endian arrays ('%s') are not supported", label, desc);
    LQ_RETURN_IF((end != '<' && end != '|') || (desc[1] != 'u' && desc[1] != 'i') || !strchr("1248", desc[2]) ||
                     desc[3],
                 LQ_ERR_UNSUPPORTED, "calib: %s: dtype '%s' is not an integer type (u1..u8, i1..i8)", label, desc);
    const int      esz = desc[2] - '0';
    const bool     sgn = desc[1] == 'i';
    const size_t   off = hoff + hlen;
    uint64_t       need;
    LQ_RETURN_IF(!lq__mul_u64(total, (uint64_t)esz, &need) || need != n - off, LQ_ERR_FORMAT,
                 "calib: %s: %llu elements of %d bytes do not match the %zu data bytes", label,
                 (unsigned long long)total, esz, n - off);
    LQ_RETURN_IF(total > (uint64_t)INT64_MAX / 4, LQ_ERR_FORMAT, "calib: %s: too many tokens", label);
    int32_t *v = lq_malloc((size_t)(total ? total : 1) * sizeof *v);
    LQ_RETURN_IF(!v, LQ_ERR_NOMEM, "calib: out of memory");
    const uint8_t *p = b + off;
    for (uint64_t i = 0; i < total; i++, p += esz) {
        uint64_t u = 0;
        for (int k = 0; k < esz; k++) u |= (uint64_t)p[k] << (8 * k);
        int64_t x = (int64_t)u;
        if (sgn && esz < 8 && (u >> (8 * esz - 1)) & 1) x = (int64_t)(u | (~0ull << (8 * esz)));
        if (x < 0 || x > INT32_MAX || (vocab > 0 && x >= vocab)) {
            lq_free(v);
            LQ_RETURN_IF(1, LQ_ERR_INVALID_ARG, "calib: %s: token %lld at index %llu is outside [0, %lld)", label,
                         (long long)x, (unsigned long long)i, (long long)(vocab > 0 ? vocab : INT32_MAX));
        }
        v[i] = (int32_t)x;
    }
    *ids   = v;
    *count = (int64_t)total;
    return LQ_OK;
}

/* ---- .npz: the member input_ids.npy, else tokens.npy, else the only one ---- */
lq_status lq__calib_parse_npz(const uint8_t *b, size_t n, uint64_t limit, const char *label, int64_t vocab,
                              int32_t **ids, int64_t *count) {
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(b, n, 0, &ze);
    LQ_RETURN_IF(!src, LQ_ERR_NOMEM, "calib: %s: %s", label, zip_error_strerror(&ze));
    zip_t *z = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
    if (!z) {
        zip_source_free(src);
        const lq_status s = LQ_ERR_FORMAT;
        LQ_LOG_ERR("calib: %s is not a valid .npz (zip) file: %s", label, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return s;
    }
    zip_error_fini(&ze);
    lq_status     st  = LQ_OK;
    uint8_t      *buf = NULL;
    zip_file_t   *zf  = NULL;
    const zip_int64_t ne = zip_get_num_entries(z, 0);
    zip_int64_t   pick = -1;
    const char   *want[] = {"input_ids.npy", "tokens.npy"};
    for (int w = 0; w < 2 && pick < 0; w++) pick = zip_name_locate(z, want[w], 0);
    if (pick < 0 && ne == 1) pick = 0;
    LQ_GOTO_IF(pick < 0, LQ_ERR_FORMAT, "calib: %s has %lld arrays and none is named input_ids or tokens", label,
               (long long)ne);
    zip_stat_t zs;
    LQ_GOTO_IF(zip_stat_index(z, (zip_uint64_t)pick, 0, &zs) != 0 || !(zs.valid & ZIP_STAT_SIZE), LQ_ERR_FORMAT,
               "calib: %s: cannot stat its array", label);
    LQ_GOTO_IF(zs.size > limit, LQ_ERR_INVALID_ARG, "calib: %s: the array is larger than the %llu-byte limit", label,
               (unsigned long long)limit);
    buf = lq_malloc((size_t)zs.size + 1);
    LQ_GOTO_IF(!buf, LQ_ERR_NOMEM, "calib: out of memory");
    zf = zip_fopen_index(z, (zip_uint64_t)pick, 0);
    LQ_GOTO_IF(!zf, LQ_ERR_FORMAT, "calib: %s: cannot open its array: %s", label, zip_strerror(z));
    zip_uint64_t got = 0;
    while (got < zs.size) {
        const zip_int64_t r = zip_fread(zf, buf + got, zs.size - got);
        LQ_GOTO_IF(r <= 0, LQ_ERR_FORMAT, "calib: %s: its array is truncated or corrupt", label);
        got += (zip_uint64_t)r;
    }
    char inner[1024];
    snprintf(inner, sizeof inner, "%s:%s", label, zs.valid & ZIP_STAT_NAME ? zs.name : "?");
    st = lq__calib_parse_npy(buf, (size_t)zs.size, inner, vocab, ids, count);
done:
    if (zf) zip_fclose(zf);
    zip_discard(z);
    lq_free(buf);
    return st;
}

/* ---- JSON Lines ---- */
lq_status lq__calib_parse_jsonl(const uint8_t *b, size_t n, const char *label, const lq_tokenizer *tok, int32_t **ids,
                                int64_t *count) {
    tokbuf    tb   = {0};
    lq_status st   = LQ_OK;
    int64_t   line = 0, records = 0;
    for (size_t i = 0; i < n;) {
        size_t e = i;
        while (e < n && b[e] != '\n') e++;
        line++;
        size_t a = i, z = e;
        while (a < z && (b[a] == ' ' || b[a] == '\t' || b[a] == '\r')) a++;
        while (z > a && (b[z - 1] == ' ' || b[z - 1] == '\t' || b[z - 1] == '\r')) z--;
        if (z > a) {
            lq_json_doc *doc = NULL;
            lq_json_error err;
            LQ_GOTO_IF(lq_json_parse((const char *)b + a, z - a, NULL, &doc, &err) != LQ_OK, LQ_ERR_FORMAT,
                       "calib: %s:%lld: not valid JSON", label, (long long)line);
            const lq_json *t = lq_json_get(lq_json_root(doc), "text");
            const char    *s = t ? lq_json_get_str(t) : NULL;
            if (!s) {
                lq_json_free(doc);
                LQ_GOTO_IF(1, LQ_ERR_FORMAT, "calib: %s:%lld: not an object with a string field \"text\"", label,
                           (long long)line);
            }
            st = tb_encode(&tb, tok, s, strlen(s), true, label);
            lq_json_free(doc);
            if (st != LQ_OK) goto done;
            records++;
        }
        i = e + 1;
    }
    LQ_GOTO_IF(records == 0, LQ_ERR_FORMAT, "calib: %s has no records", label);
    *ids   = tb.v;
    *count = tb.n;
    return LQ_OK;
done:
    lq_free(tb.v);
    return st;
}

/* ---- windows ---- */
static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z          = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z          = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [0, n) by rejection of the biased top range */
static uint64_t uniform(uint64_t *s, uint64_t n) {
    const uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    for (;;) {
        const uint64_t v = splitmix64(s);
        if (v < lim) return v % n;
    }
}

static lq_status make_windows(lq_calib_set *c, const int32_t *ids, int64_t n, int32_t bos, const lq_calib_params *p,
                              const char *label) {
    const int64_t L = p->seq_len, body = bos >= 0 ? L - 1 : L;
    LQ_RETURN_IF(p->n_samples <= 0 || L <= 0 || (bos >= 0 && L < 2), LQ_ERR_INVALID_ARG,
                 "calib: %lld windows of %lld tokens is not a valid request", (long long)p->n_samples, (long long)L);
    LQ_RETURN_IF(n < body, LQ_ERR_INVALID_ARG, "calib: %s has %lld tokens, fewer than one window of %lld", label,
                 (long long)n, (long long)body);
    uint64_t total;
    LQ_RETURN_IF(!lq__mul_u64((uint64_t)p->n_samples, (uint64_t)L, &total) || total > ((uint64_t)1 << 34),
                 LQ_ERR_INVALID_ARG, "calib: %lld x %lld tokens is too many", (long long)p->n_samples, (long long)L);
    c->tokens  = lq_malloc((size_t)total * sizeof *c->tokens);
    c->offsets = lq_malloc((size_t)p->n_samples * sizeof *c->offsets);
    LQ_RETURN_IF(!c->tokens || !c->offsets, LQ_ERR_NOMEM, "calib: out of memory");
    uint64_t s = p->seed;
    for (int64_t i = 0; i < p->n_samples; i++) {
        const int64_t o = (int64_t)uniform(&s, (uint64_t)(n - body + 1));
        int32_t      *w = c->tokens + i * L;
        c->offsets[i]   = o;
        if (bos >= 0) *w++ = bos;
        memcpy(w, ids + o, (size_t)body * sizeof *w);
    }
    c->n_stream  = n;
    c->n_samples = p->n_samples;
    c->seq_len   = L;
    c->bos_id    = bos;
    return LQ_OK;
}

void lq_calib_free(lq_calib_set *c) {
    if (!c) return;
    lq_free(c->tokens);
    lq_free(c->offsets);
    lq_free(c);
}

lq_status lq_calib_from_tokens(const int32_t *ids, int64_t n, int32_t bos_id, const lq_calib_params *p_in,
                               lq_calib_set **out) {
    *out                 = NULL;
    const lq_calib_params p = p_in ? *p_in : lq_calib_default_params();
    lq_calib_set *c      = lq_calloc(1, sizeof *c);
    LQ_RETURN_IF(!c, LQ_ERR_NOMEM, "calib: out of memory");
    c->kind = LQ_CALIB_RAW_U32;
    lq_sha256_ctx h;
    lq_sha256_init(&h);
    for (int64_t i = 0; i < n; i++) {
        const uint32_t v = (uint32_t)ids[i];
        const uint8_t  le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
        lq_sha256_update(&h, le, 4);
    }
    uint8_t d[32];
    lq_sha256_final(&h, d);
    lq_sha256_hex(d, c->sha256);
    c->file_bytes     = (uint64_t)n * 4;
    const lq_status s = make_windows(c, ids, n, p.prepend_bos ? bos_id : -1, &p, "the token stream");
    if (s != LQ_OK) {
        lq_calib_free(c);
        return s;
    }
    *out = c;
    return LQ_OK;
}

lq_status lq_calib_load(const char *path, const lq_tokenizer *tok, const lq_calib_params *p_in, lq_calib_set **out) {
    *out                    = NULL;
    const lq_calib_params p = p_in ? *p_in : lq_calib_default_params();
    const uint64_t        limit = p.max_bytes ? p.max_bytes : (4ull << 30);
    lq_calib_kind         kind;
    LQ_RETURN_IF(lq_calib_kind_of(path, &kind) != LQ_OK, LQ_ERR_UNSUPPORTED,
                 "calib: %s: unknown kind; use .txt, .txt.gz, .jsonl, .jsonl.gz, .bin/.u16 (uint16 tokens), .u32, "
                 ".npy or .npz", path);
    LQ_RETURN_IF((kind == LQ_CALIB_TEXT || kind == LQ_CALIB_JSONL) && !tok, LQ_ERR_INVALID_ARG,
                 "calib: %s is text; a tokenizer is needed (none was found beside the model: use --tokenizer)", path);
    uint8_t  *raw = NULL, *plain = NULL;
    size_t    n_raw = 0, n_plain = 0;
    int32_t  *ids = NULL;
    int64_t   n_ids = 0;
    lq_status st    = LQ_OK;
    lq_calib_set *c = NULL;
    LQ_GOTO_TRY(read_plain(path, limit, &raw, &n_raw));
    c = lq_calloc(1, sizeof *c);
    LQ_GOTO_IF(!c, LQ_ERR_NOMEM, "calib: out of memory");
    c->kind       = kind;
    c->file_bytes = n_raw;
    uint8_t d[32];
    lq_sha256(raw, n_raw, d);
    lq_sha256_hex(d, c->sha256);
    if (ends_with(path, ".gz")) {
        LQ_GOTO_TRY(lq__calib_gunzip(raw, n_raw, limit, path, &plain, &n_plain));
    } else {
        plain   = raw;
        n_plain = n_raw;
        raw     = NULL;
    }
    const int64_t vocab = p.vocab_size;
    switch (kind) {
    case LQ_CALIB_TEXT: {
        tokbuf tb = {0};
        st        = tb_encode(&tb, tok, (const char *)plain, n_plain, true, path);
        ids       = tb.v;
        n_ids     = tb.n;
        if (st != LQ_OK) goto done;
        /* the stream starts after the text's own BOS: windows get theirs */
        if (n_ids > 0 && lq_tokenizer_bos(tok) >= 0 && ids[0] == lq_tokenizer_bos(tok)) {
            memmove(ids, ids + 1, (size_t)(n_ids - 1) * sizeof *ids);
            n_ids--;
        }
        break;
    }
    case LQ_CALIB_JSONL: {
        LQ_GOTO_TRY(lq__calib_parse_jsonl(plain, n_plain, path, tok, &ids, &n_ids));
        break;
    }
    case LQ_CALIB_RAW_U16:
    case LQ_CALIB_RAW_U32: {
        const size_t esz = kind == LQ_CALIB_RAW_U16 ? 2 : 4;
        LQ_GOTO_IF(n_plain % esz != 0, LQ_ERR_FORMAT, "calib: %s: %zu bytes is not a whole number of %zu-byte tokens",
                   path, n_plain, esz);
        n_ids = (int64_t)(n_plain / esz);
        ids   = lq_malloc((size_t)(n_ids ? n_ids : 1) * sizeof *ids);
        LQ_GOTO_IF(!ids, LQ_ERR_NOMEM, "calib: out of memory");
        for (int64_t i = 0; i < n_ids; i++) {
            const uint8_t *q = plain + (size_t)i * esz;
            const uint32_t v = esz == 2 ? (uint32_t)(q[0] | q[1] << 8)
                                        : (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
            LQ_GOTO_IF(v > INT32_MAX || (vocab > 0 && v >= (uint64_t)vocab), LQ_ERR_INVALID_ARG,
                       "calib: %s: token %u at index %lld is outside the vocabulary [0, %lld)", path, v, (long long)i,
                       (long long)vocab);
            ids[i] = (int32_t)v;
        }
        break;
    }
    case LQ_CALIB_NPY: LQ_GOTO_TRY(lq__calib_parse_npy(plain, n_plain, path, vocab, &ids, &n_ids)); break;
    case LQ_CALIB_NPZ: LQ_GOTO_TRY(lq__calib_parse_npz(plain, n_plain, limit, path, vocab, &ids, &n_ids)); break;
    }
    if (kind == LQ_CALIB_TEXT || kind == LQ_CALIB_JSONL)
        for (int64_t i = 0; i < n_ids && vocab > 0; i++)
            LQ_GOTO_IF(ids[i] >= vocab, LQ_ERR_INVALID_ARG,
                       "calib: %s: the tokenizer gives id %d, outside the model's vocabulary of %lld", path, ids[i],
                       (long long)vocab);
    {
        const int32_t bos = tok && p.prepend_bos ? lq_tokenizer_bos(tok) : -1;
        LQ_GOTO_TRY(make_windows(c, ids, n_ids, bos, &p, path));
    }
    *out = c;
    c    = NULL;
done:
    lq_calib_free(c);
    lq_free(raw);
    lq_free(plain);
    lq_free(ids);
    return st;
}
