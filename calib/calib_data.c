/* calib_data.c : calibration sets (lq_calib.h).
 *
 * The input is mapped whole, hashed (sha256 of the bytes as stored), gunzipped
 * through zlib when its name ends in .gz (under max_bytes), and turned into
 * one token stream: text through the tokenizer in a single encode call (the
 * encoders are O(n log n); WikiText-2's 1.3 MB test split takes ~0.3 s),
 * JSON Lines record by record through the strict JSON reader, raw u16/u32
 * ids, or .npy/.npz arrays (calib_npy.c). The windows are drawn with
 * splitmix64 (Steele, Lea, Flood 2014; Vigna's reference constants) and
 * arc4random_uniform's rejection rule, so the choice is exact and portable.
 * Every byte is hostile: sizes are overflow-checked and every failure is
 * logged once, naming the file (and line). */
#include "calib_internal.h"
#include "lq_internal.h"
#include "lq_json.h"

#include <string.h>
#include <strings.h>
#include <zlib.h>

#define CALIB_DEFAULT_MAX_BYTES (4ull << 30)

lq_calib_params lq_calib_default_params(void) {
    lq_calib_params p;
    memset(&p, 0, sizeof p);
    p.n_samples   = 128;
    p.seq_len     = 512;
    p.seed        = 0;
    p.prepend_bos = true;
    p.vocab_size  = 0;
    p.max_bytes   = CALIB_DEFAULT_MAX_BYTES;
    return p;
}

const char *lq_calib_kind_name(lq_calib_kind k) {
    switch (k) {
    case LQ_CALIB_TEXT:
        return "text";
    case LQ_CALIB_JSONL:
        return "jsonl";
    case LQ_CALIB_RAW_U16:
        return "u16";
    case LQ_CALIB_RAW_U32:
        return "u32";
    case LQ_CALIB_NPY:
        return "npy";
    case LQ_CALIB_NPZ:
        return "npz";
    }
    return "?";
}

static bool ends_with(const char *s, const char *suf) {
    const size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcasecmp(s + a - b, suf) == 0;
}

#define CALIB_KINDS ".txt, .txt.gz, .jsonl, .jsonl.gz, .bin or .u16 (uint16 ids), .u32 (uint32 ids), .npy, .npz"

lq_status lq_calib_kind_of(const char *path, lq_calib_kind *out) {
    static const struct {
        const char   *suf;
        lq_calib_kind kind;
    } T[] = {
        {".txt", LQ_CALIB_TEXT},       {".txt.gz", LQ_CALIB_TEXT}, {".jsonl", LQ_CALIB_JSONL},
        {".jsonl.gz", LQ_CALIB_JSONL}, {".bin", LQ_CALIB_RAW_U16}, {".u16", LQ_CALIB_RAW_U16},
        {".u32", LQ_CALIB_RAW_U32},    {".npy", LQ_CALIB_NPY},     {".npz", LQ_CALIB_NPZ},
    };
    if (!path || !out) return LQ_ERR_INVALID_ARG;
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
        if (ends_with(path, T[i].suf)) {
            *out = T[i].kind;
            return LQ_OK;
        }
    return LQ_ERR_UNSUPPORTED;
}

/* ==== token buffer ==== */

typedef struct {
    int32_t *v;
    int64_t  n, cap;
} tokbuf;

static lq_status tb_reserve(tokbuf *b, size_t more, const char *label) {
    uint64_t want;
    LQ_RETURN_IF(!lq__add_u64((uint64_t)b->n, more, &want) || want > (uint64_t)INT64_MAX / 8, LQ_ERR_NOMEM,
                 "%s: too many tokens", label);
    if ((int64_t)want <= b->cap) return LQ_OK;
    uint64_t cap = b->cap ? (uint64_t)b->cap : 4096;
    while (cap < want)
        cap *= 2;
    size_t bytes;
    LQ_RETURN_IF(!lq__mul_size((size_t)cap, sizeof(int32_t), &bytes), LQ_ERR_NOMEM, "%s: too many tokens", label);
    int32_t *v = lq_malloc(bytes);
    LQ_RETURN_IF(!v, LQ_ERR_NOMEM, "%s: out of memory for %llu tokens", label, (unsigned long long)cap);
    if (b->n) memcpy(v, b->v, (size_t)b->n * sizeof *v);
    lq_free(b->v);
    b->v   = v;
    b->cap = (int64_t)cap;
    return LQ_OK;
}

/* appends the ids of `text`; line > 0 names a JSON Lines record in messages.
 * No tokenizer emits more than one id per byte plus a dummy prefix and BOS,
 * so len + 16 is enough; a larger count (a size query, not logged by the
 * tokenizer) is honoured anyway. */
static lq_status tb_encode(tokbuf *b, const lq_tokenizer *tok, const char *text, size_t len, bool bos, int64_t vocab,
                           const char *label, int64_t line) {
    size_t want = len + 16;
    for (int attempt = 0; attempt < 2; attempt++) {
        LQ_TRY(tb_reserve(b, want, label));
        const size_t    cap = (size_t)(b->cap - b->n);
        size_t          got = 0;
        const lq_status s   = lq_tokenizer_encode(tok, text, len, bos, b->v + b->n, cap, &got);
        if (s == LQ_ERR_INVALID_ARG && got > cap) {
            want = got;
            continue;
        }
        if (s != LQ_OK) {
            if (line > 0)
                LQ_LOG_ERR("%s:%lld: the tokenizer failed (%s)", label, (long long)line, lq_status_str(s));
            else
                LQ_LOG_ERR("%s: the tokenizer failed (%s)", label, lq_status_str(s));
            return s;
        }
        for (size_t i = 0; i < got; i++) {
            const int32_t id = b->v[b->n + (int64_t)i];
            if (id < 0 || (vocab > 0 && id >= vocab)) {
                if (line > 0)
                    LQ_LOG_ERR("%s:%lld: the tokenizer gives id %d, outside the vocabulary [0, %lld)", label,
                               (long long)line, id, (long long)vocab);
                else
                    LQ_LOG_ERR("%s: the tokenizer gives id %d, outside the vocabulary [0, %lld)", label, id,
                               (long long)vocab);
                return LQ_ERR_INVALID_ARG;
            }
        }
        b->n += (int64_t)got;
        return LQ_OK;
    }
    LQ_RETURN_IF(1, LQ_ERR_FORMAT, "%s: the tokenizer's id count is not stable", label);
}

/* ==== gzip ==== */

lq_status lq__calib_gunzip(const uint8_t *src, size_t n, uint64_t limit, const char *label, uint8_t **out,
                           size_t *len) {
    *out = NULL;
    *len = 0;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    LQ_RETURN_IF(inflateInit2(&zs, 15 + 32) != Z_OK, LQ_ERR_NOMEM, "%s: zlib initialisation failed", label);
    lq_status st   = LQ_OK;
    size_t    have = 0, fed = 0;
    /* first guess 4x the input, never above limit + 1 (one byte over proves a bomb) */
    size_t cap = n < SIZE_MAX / 8 ? n * 4 + 4096 : SIZE_MAX / 2;
    if (limit < (uint64_t)cap) cap = (size_t)limit + 1;
    uint8_t *buf = lq_malloc(cap);
    LQ_GOTO_IF(!buf, LQ_ERR_NOMEM, "%s: out of memory", label);
    for (;;) {
        if (zs.avail_in == 0 && fed < n) {
            const size_t chunk = LQ_MIN(n - fed, (size_t)1 << 30);
            zs.next_in         = (Bytef *)(uintptr_t)(src + fed);
            zs.avail_in        = (uInt)chunk;
            fed += chunk;
        }
        if (have == cap) {
            const uint64_t grown = LQ_MIN((uint64_t)cap * 2, limit + 1);
            LQ_GOTO_IF(grown > SIZE_MAX, LQ_ERR_NOMEM, "%s: too large to decompress here", label);
            uint8_t *b2 = lq_malloc((size_t)grown);
            LQ_GOTO_IF(!b2, LQ_ERR_NOMEM, "%s: out of memory decompressing (%llu bytes)", label,
                       (unsigned long long)grown);
            memcpy(b2, buf, have);
            lq_free(buf);
            buf = b2;
            cap = (size_t)grown;
        }
        zs.next_out      = buf + have;
        zs.avail_out     = (uInt)LQ_MIN(cap - have, (size_t)1 << 30);
        const uInt avail = zs.avail_out;
        const int  rc    = inflate(&zs, Z_NO_FLUSH);
        have += avail - zs.avail_out;
        LQ_GOTO_IF(have > limit, LQ_ERR_FORMAT, "%s: decompresses to more than the %llu-byte limit (max_bytes)", label,
                   (unsigned long long)limit);
        if (rc == Z_STREAM_END) {
            if (zs.avail_in == 0 && fed == n) break;
            /* concatenated members (cat a.gz b.gz), as gzip -d reads them */
            LQ_GOTO_IF(inflateReset(&zs) != Z_OK, LQ_ERR_FORMAT, "%s: zlib reset failed", label);
            continue;
        }
        LQ_GOTO_IF(rc == Z_BUF_ERROR && zs.avail_in == 0 && fed == n, LQ_ERR_FORMAT, "%s: the gzip stream is truncated",
                   label);
        LQ_GOTO_IF(rc != Z_OK && rc != Z_BUF_ERROR, LQ_ERR_FORMAT, "%s: not valid gzip data (%s)", label,
                   zs.msg ? zs.msg : "corrupt stream");
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

/* ==== raw ids ==== */

lq_status lq__calib_parse_raw(const uint8_t *b, size_t n, size_t width, const char *label, int64_t vocab, int32_t **ids,
                              int64_t *count) {
    *ids   = NULL;
    *count = 0;
    LQ_ASSERT(width == 2 || width == 4);
    LQ_RETURN_IF(n % width != 0, LQ_ERR_FORMAT, "%s: %zu bytes is not a whole number of %zu-byte ids", label, n, width);
    const size_t cnt = n / width;
    int32_t     *v   = lq_malloc(LQ_MAX(cnt, (size_t)1) * sizeof *v);
    LQ_RETURN_IF(!v, LQ_ERR_NOMEM, "%s: out of memory for %zu tokens", label, cnt);
    const uint64_t hi = vocab > 0 ? (uint64_t)vocab : (uint64_t)INT32_MAX + 1;
    for (size_t i = 0; i < cnt; i++) {
        const uint8_t *q = b + i * width;
        uint32_t       x = (uint32_t)q[0] | (uint32_t)q[1] << 8;
        if (width == 4) x |= (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
        if (x >= hi) {
            lq_free(v);
            LQ_RETURN_IF(1, LQ_ERR_INVALID_ARG, "%s: id %u at index %zu is outside the vocabulary [0, %llu)", label, x,
                         i, (unsigned long long)hi);
        }
        v[i] = (int32_t)x;
    }
    *ids   = v;
    *count = (int64_t)cnt;
    return LQ_OK;
}

/* ==== text ==== */

lq_status lq__calib_parse_text(const uint8_t *b, size_t n, const char *label, const lq_tokenizer *tok, int64_t vocab,
                               int32_t **ids, int64_t *count) {
    *ids      = NULL;
    *count    = 0;
    tokbuf tb = {0};
    /* one call over the whole text, no BOS: the windows get theirs */
    const lq_status st = tb_encode(&tb, tok, (const char *)b, n, false, vocab, label, 0);
    if (st != LQ_OK) {
        lq_free(tb.v);
        return st;
    }
    *ids   = tb.v;
    *count = tb.n;
    return LQ_OK;
}

/* ==== JSON Lines ==== */

lq_status lq__calib_parse_jsonl(const uint8_t *b, size_t n, const char *label, const lq_tokenizer *tok, int64_t vocab,
                                int32_t **ids, int64_t *count) {
    *ids              = NULL;
    *count            = 0;
    tokbuf       tb   = {0};
    lq_status    st   = LQ_OK;
    lq_json_doc *doc  = NULL;
    int64_t      line = 0, records = 0;
    for (size_t i = 0; i < n;) {
        const uint8_t *nl = memchr(b + i, '\n', n - i);
        const size_t   e  = nl ? (size_t)(nl - b) : n;
        line++;
        size_t a = i, z = e; /* JSON whitespace around the value; a blank line is skipped */
        while (a < z && (b[a] == ' ' || b[a] == '\t' || b[a] == '\r'))
            a++;
        while (z > a && (b[z - 1] == ' ' || b[z - 1] == '\t' || b[z - 1] == '\r'))
            z--;
        i = e + 1;
        if (z == a) continue;
        lq_json_error err;
        memset(&err, 0, sizeof err);
        const lq_status ps = lq_json_parse((const char *)b + a, z - a, NULL, &doc, &err);
        LQ_GOTO_IF(ps == LQ_ERR_NOMEM, LQ_ERR_NOMEM, "%s:%lld: out of memory parsing the record", label,
                   (long long)line);
        LQ_GOTO_IF(ps != LQ_OK, LQ_ERR_FORMAT, "%s:%lld: not valid JSON (column %zu: %s)", label, (long long)line,
                   err.offset + 1, err.msg);
        const lq_json *root = lq_json_root(doc);
        LQ_GOTO_IF(root->type != LQ_JSON_OBJECT, LQ_ERR_FORMAT, "%s:%lld: the record is not a JSON object", label,
                   (long long)line);
        const lq_json *t = lq_json_get(root, "text");
        LQ_GOTO_IF(!t, LQ_ERR_FORMAT, "%s:%lld: the record has no \"text\" field", label, (long long)line);
        LQ_GOTO_IF(t->type != LQ_JSON_STRING, LQ_ERR_FORMAT, "%s:%lld: the \"text\" field is not a string", label,
                   (long long)line);
        LQ_GOTO_TRY(tb_encode(&tb, tok, t->str, t->str_len, true, vocab, label, line));
        lq_json_free(doc);
        doc = NULL;
        records++;
    }
    LQ_GOTO_IF(records == 0, LQ_ERR_FORMAT, "%s: no records (every line is blank)", label);
    *ids   = tb.v;
    *count = tb.n;
    return LQ_OK;
done:
    lq_json_free(doc);
    lq_free(tb.v);
    return st;
}

/* ==== one input in memory -> the stream ==== */

lq_status lq__calib_parse_mem(lq_calib_kind kind, bool gzipped, const uint8_t *b, size_t n, const char *label,
                              const lq_tokenizer *tok, int64_t vocab, uint64_t limit, int32_t **ids, int64_t *count) {
    *ids   = NULL;
    *count = 0;
    LQ_RETURN_IF((kind == LQ_CALIB_TEXT || kind == LQ_CALIB_JSONL) && !tok, LQ_ERR_INVALID_ARG,
                 "%s is %s; a tokenizer is needed to read it", label, kind == LQ_CALIB_TEXT ? "text" : "JSON Lines");
    uint8_t *plain = NULL;
    if (gzipped) {
        LQ_TRY(lq__calib_gunzip(b, n, limit, label, &plain, &n));
        b = plain;
    } else {
        LQ_RETURN_IF(n > limit, LQ_ERR_FORMAT, "%s: %zu bytes is over the %llu-byte limit (max_bytes)", label, n,
                     (unsigned long long)limit);
    }
    lq_status st = LQ_ERR_INVALID_ARG;
    switch (kind) {
    case LQ_CALIB_TEXT:
        st = lq__calib_parse_text(b, n, label, tok, vocab, ids, count);
        break;
    case LQ_CALIB_JSONL:
        st = lq__calib_parse_jsonl(b, n, label, tok, vocab, ids, count);
        break;
    case LQ_CALIB_RAW_U16:
        st = lq__calib_parse_raw(b, n, 2, label, vocab, ids, count);
        break;
    case LQ_CALIB_RAW_U32:
        st = lq__calib_parse_raw(b, n, 4, label, vocab, ids, count);
        break;
    case LQ_CALIB_NPY:
        st = lq__calib_parse_npy(b, n, label, vocab, ids, count);
        break;
    case LQ_CALIB_NPZ:
        st = lq__calib_parse_npz(b, n, limit, label, vocab, ids, count);
        break;
    default:
        LQ_LOG_ERR("%s: unknown calibration kind %d", label, (int)kind);
        break;
    }
    lq_free(plain);
    return st;
}

/* ==== windows ==== */

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z          = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z          = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [0, m): outputs below 2^64 mod m are drawn again (OpenBSD's
 * arc4random_uniform), the rest taken modulo m */
static uint64_t uniform(uint64_t *state, uint64_t m) {
    const uint64_t min = (0 - m) % m;
    for (;;) {
        const uint64_t v = splitmix64(state);
        if (v >= min) return v % m;
    }
}

static lq_status check_params(const lq_calib_params *p, int32_t bos, const char *label) {
    LQ_RETURN_IF(p->n_samples < 1 || p->seq_len < 1 || (bos >= 0 && p->seq_len < 2), LQ_ERR_INVALID_ARG,
                 "%s: %lld windows of %lld tokens is not a valid request (n_samples >= 1, seq_len >= %d)", label,
                 (long long)p->n_samples, (long long)p->seq_len, bos >= 0 ? 2 : 1);
    LQ_RETURN_IF(p->vocab_size < 0 || p->vocab_size > (int64_t)INT32_MAX + 1, LQ_ERR_INVALID_ARG,
                 "%s: vocab_size %lld is out of range", label, (long long)p->vocab_size);
    LQ_RETURN_IF(bos >= 0 && p->vocab_size > 0 && bos >= p->vocab_size, LQ_ERR_INVALID_ARG,
                 "%s: BOS id %d is outside the vocabulary [0, %lld)", label, bos, (long long)p->vocab_size);
    size_t bytes;
    LQ_RETURN_IF(!lq__mul_size((size_t)p->n_samples, (size_t)p->seq_len, &bytes) ||
                     !lq__mul_size(bytes, sizeof(int32_t), &bytes) || (uint64_t)p->n_samples > SIZE_MAX / 8,
                 LQ_ERR_INVALID_ARG, "%s: %lld x %lld tokens is too many", label, (long long)p->n_samples,
                 (long long)p->seq_len);
    return LQ_OK;
}

/* fills c's windows from the stream (ids, n); p already checked */
static lq_status make_windows(lq_calib_set *c, const int32_t *ids, int64_t n, int32_t bos, const lq_calib_params *p,
                              const char *label) {
    const int64_t L = p->seq_len, body = bos >= 0 ? L - 1 : L;
    LQ_RETURN_IF(n < body, LQ_ERR_INVALID_ARG,
                 "%s: the stream has %lld tokens, fewer than one window needs (%lld = seq_len %lld%s)", label,
                 (long long)n, (long long)body, (long long)L, bos >= 0 ? " - 1 for BOS" : "");
    c->tokens  = lq_malloc((size_t)(p->n_samples * L) * sizeof *c->tokens);
    c->offsets = lq_malloc((size_t)p->n_samples * sizeof *c->offsets);
    LQ_RETURN_IF(!c->tokens || !c->offsets, LQ_ERR_NOMEM, "%s: out of memory for %lld x %lld tokens", label,
                 (long long)p->n_samples, (long long)L);
    uint64_t       state = p->seed;
    const uint64_t m     = (uint64_t)(n - body) + 1;
    for (int64_t i = 0; i < p->n_samples; i++) {
        const int64_t o = (int64_t)uniform(&state, m);
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
    LQ_RETURN_IF(!out || n < 0 || (!ids && n > 0), LQ_ERR_INVALID_ARG, "calibration: invalid token stream argument");
    *out                        = NULL;
    const lq_calib_params p     = p_in ? *p_in : lq_calib_default_params();
    const int32_t         bos   = p.prepend_bos && bos_id >= 0 ? bos_id : -1;
    const char           *label = "the token stream";
    LQ_TRY(check_params(&p, bos, label));
    const int64_t hi = p.vocab_size > 0 ? p.vocab_size : (int64_t)INT32_MAX + 1;
    for (int64_t i = 0; i < n; i++)
        LQ_RETURN_IF(ids[i] < 0 || ids[i] >= hi, LQ_ERR_INVALID_ARG,
                     "%s: id %d at index %lld is outside the vocabulary [0, %lld)", label, ids[i], (long long)i,
                     (long long)hi);
    lq_calib_set *c = lq_calloc(1, sizeof *c);
    LQ_RETURN_IF(!c, LQ_ERR_NOMEM, "calibration: out of memory");
    c->kind = LQ_CALIB_RAW_U32;
    lq_sha256_ctx h;
    lq_sha256_init(&h);
    uint8_t chunk[4096];
    size_t  k = 0;
    for (int64_t i = 0; i < n; i++) {
        const uint32_t v = (uint32_t)ids[i];
        chunk[k++]       = (uint8_t)v;
        chunk[k++]       = (uint8_t)(v >> 8);
        chunk[k++]       = (uint8_t)(v >> 16);
        chunk[k++]       = (uint8_t)(v >> 24);
        if (k == sizeof chunk) {
            lq_sha256_update(&h, chunk, k);
            k = 0;
        }
    }
    lq_sha256_update(&h, chunk, k);
    uint8_t d[32];
    lq_sha256_final(&h, d);
    lq_sha256_hex(d, c->sha256);
    c->file_bytes     = (uint64_t)n * 4;
    const lq_status s = make_windows(c, ids, n, bos, &p, label);
    if (s != LQ_OK) {
        lq_calib_free(c);
        return s;
    }
    *out = c;
    return LQ_OK;
}

lq_status lq_calib_load(const char *path, const lq_tokenizer *tok, const lq_calib_params *p_in, lq_calib_set **out) {
    LQ_RETURN_IF(!path || !out, LQ_ERR_INVALID_ARG, "calibration: NULL path or output");
    *out                        = NULL;
    const lq_calib_params p     = p_in ? *p_in : lq_calib_default_params();
    const uint64_t        limit = p.max_bytes ? p.max_bytes : CALIB_DEFAULT_MAX_BYTES;
    lq_calib_kind         kind;
    LQ_RETURN_IF(lq_calib_kind_of(path, &kind) != LQ_OK, LQ_ERR_UNSUPPORTED,
                 "%s: unknown calibration file kind; the name must end in " CALIB_KINDS, path);
    const int32_t bos = tok && p.prepend_bos ? lq_tokenizer_bos(tok) : -1;
    LQ_TRY(check_params(&p, bos, path));
    LQ_RETURN_IF((kind == LQ_CALIB_TEXT || kind == LQ_CALIB_JSONL) && !tok, LQ_ERR_INVALID_ARG,
                 "%s is %s; a tokenizer is needed to read it", path, kind == LQ_CALIB_TEXT ? "text" : "JSON Lines");
    lq__mapping   m;
    lq_calib_set *c     = NULL;
    int32_t      *ids   = NULL;
    int64_t       n_ids = 0;
    lq_status     st    = LQ_OK;
    LQ_TRY(lq__map_file(path, &m));
    c = lq_calloc(1, sizeof *c);
    LQ_GOTO_IF(!c, LQ_ERR_NOMEM, "%s: out of memory", path);
    c->kind              = kind;
    c->file_bytes        = m.size;
    const uint8_t *bytes = m.data ? m.data : (const uint8_t *)""; /* an empty file is not mapped */
    uint8_t        d[32];
    lq_sha256(bytes, m.size, d);
    lq_sha256_hex(d, c->sha256);
    const bool gz = (kind == LQ_CALIB_TEXT || kind == LQ_CALIB_JSONL) && ends_with(path, ".gz");
    LQ_GOTO_TRY(lq__calib_parse_mem(kind, gz, bytes, m.size, path, tok, p.vocab_size, limit, &ids, &n_ids));
    LQ_GOTO_TRY(make_windows(c, ids, n_ids, bos, &p, path));
    *out = c;
    c    = NULL;
done:
    lq_calib_free(c);
    lq_free(ids);
    lq__unmap_file(&m);
    return st;
}
