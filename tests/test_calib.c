/* test_calib.c : the calib suite (lq_calib.h). Token files written by numpy
 * (tests/data/calib/make_calib_fixtures.py, with the ids numpy wrote as raw
 * .expect.u32 to compare with), the TinyStories excerpt and WikiText-2
 * through the stories260K SentencePiece tokenizer (plain, gzip, concatenated
 * gzip members), JSON Lines, the window rule against offsets drawn by the
 * script's independent splitmix64, the file's sha256 against sha256sum, and
 * one documented error (logged exactly once) per malformed input. Leaks are
 * caught by `make check` (ASan). */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "calib_internal.h"
#include "lq_test.h"

#define FIX "tests/data/calib/"
/* `sha256sum ../shared/data/tinystories/tinystories_train_excerpt.txt` */
#define TINYSTORIES_SHA256 "727e8b228375be3075114c20729c93ed6e81ae5d8fe7faf7cb54b304f0322d70"
#define TINYSTORIES_BYTES 197290

static int32_t *read_u32(const char *path, int64_t *n) {
    size_t   len = 0;
    uint8_t *b   = lq_test_read_file(path, &len);
    CU_ASSERT_FATAL(b != NULL);
    CU_ASSERT_FATAL(len % 4 == 0);
    *n = (int64_t)(len / 4);
    return (int32_t *)b;
}

static lq_tokenizer *open_tok512(void) {
    lq_tokenizer *tok = NULL;
    CU_ASSERT_FATAL(lq_tokenizer_open(lq_test_shared("stories260K/tok512.model"), 512, &tok) == LQ_OK);
    CU_ASSERT_FATAL(lq_tokenizer_bos(tok) == 1);
    return tok;
}

static void sha256_of_file(const char *path, char hex[65]) {
    size_t   len = 0;
    uint8_t *b   = lq_test_read_file(path, &len);
    CU_ASSERT_FATAL(b != NULL);
    uint8_t d[32];
    lq_sha256(b, len, d);
    lq_sha256_hex(d, hex);
    free(b);
}

/* every window starts with BOS (when there is one) and equals the expected
 * stream at its recorded offset; offsets lie in [0, n - body] */
static bool windows_match(const lq_calib_set *c, const int32_t *stream, int64_t n) {
    const int64_t body = c->bos_id >= 0 ? c->seq_len - 1 : c->seq_len;
    for (int64_t i = 0; i < c->n_samples; i++) {
        const int32_t *w = c->tokens + i * c->seq_len;
        if (c->offsets[i] < 0 || c->offsets[i] > n - body) return false;
        if (c->bos_id >= 0 && *w++ != c->bos_id) return false;
        if (memcmp(w, stream + c->offsets[i], (size_t)body * sizeof *w) != 0) return false;
    }
    return true;
}

static bool same_windows(const lq_calib_set *a, const lq_calib_set *b) {
    return a->n_samples == b->n_samples && a->seq_len == b->seq_len && a->bos_id == b->bos_id &&
           memcmp(a->offsets, b->offsets, (size_t)a->n_samples * sizeof *a->offsets) == 0 &&
           memcmp(a->tokens, b->tokens, (size_t)(a->n_samples * a->seq_len) * sizeof *a->tokens) == 0;
}

/* the stream of a file through the in-memory path, as lq_calib_load sees it */
static int32_t *stream_of(const char *path, lq_calib_kind kind, bool gz, const lq_tokenizer *tok, int64_t *n) {
    size_t   len = 0;
    uint8_t *b   = lq_test_read_file(path, &len);
    CU_ASSERT_FATAL(b != NULL);
    int32_t *ids = NULL;
    CU_ASSERT_FATAL(lq__calib_parse_mem(kind, gz, b, len, path, tok, 512, 1 << 30, &ids, n) == LQ_OK);
    free(b);
    return ids;
}

static void test_calib_defaults_and_kinds(void) {
    const lq_calib_params p = lq_calib_default_params();
    CU_ASSERT_EQUAL(p.n_samples, 128);
    CU_ASSERT_EQUAL(p.seq_len, 512);
    CU_ASSERT_EQUAL(p.seed, 0);
    CU_ASSERT_TRUE(p.prepend_bos);
    CU_ASSERT_EQUAL(p.vocab_size, 0);
    CU_ASSERT_EQUAL(p.max_bytes, 4ull << 30);
    static const struct {
        const char   *name;
        lq_calib_kind kind;
    } K[] = {{"a.txt", LQ_CALIB_TEXT},       {"dir.d/A.TXT.GZ", LQ_CALIB_TEXT}, {"x.jsonl", LQ_CALIB_JSONL},
             {"x.JsonL.gz", LQ_CALIB_JSONL}, {"t.bin", LQ_CALIB_RAW_U16},       {"t.u16", LQ_CALIB_RAW_U16},
             {"t.u32", LQ_CALIB_RAW_U32},    {"t.NPY", LQ_CALIB_NPY},           {"t.npz", LQ_CALIB_NPZ}};
    lq_test_quiet(1);
    for (size_t i = 0; i < sizeof K / sizeof K[0]; i++) {
        lq_calib_kind k = LQ_CALIB_NPZ;
        CU_ASSERT_EQUAL(lq_calib_kind_of(K[i].name, &k), LQ_OK);
        CU_ASSERT_EQUAL(k, K[i].kind);
    }
    const char *bad[] = {"a.csv", "a.npy.gz", "a.u16.gz", "txt", "a.json", "", "a.gz"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lq_calib_kind k;
        CU_ASSERT_EQUAL(lq_calib_kind_of(bad[i], &k), LQ_ERR_UNSUPPORTED);
    }
    CU_ASSERT_EQUAL(lq_test_errors_logged(), 0); /* kind_of never logs */
    lq_test_quiet(0);
    CU_ASSERT_STRING_EQUAL(lq_calib_kind_name(LQ_CALIB_TEXT), "text");
    CU_ASSERT_STRING_EQUAL(lq_calib_kind_name(LQ_CALIB_JSONL), "jsonl");
    CU_ASSERT_STRING_EQUAL(lq_calib_kind_name(LQ_CALIB_RAW_U16), "u16");
    CU_ASSERT_STRING_EQUAL(lq_calib_kind_name(LQ_CALIB_RAW_U32), "u32");
    CU_ASSERT_STRING_EQUAL(lq_calib_kind_name(LQ_CALIB_NPY), "npy");
    CU_ASSERT_STRING_EQUAL(lq_calib_kind_name(LQ_CALIB_NPZ), "npz");
    lq_calib_free(NULL);
}

/* numpy's arrays: the whole stream equals the ids numpy wrote, windows too */
static void test_calib_token_files(void) {
    static const struct {
        const char   *file, *expect;
        lq_calib_kind kind;
    } F[] = {
        {"u2.npy", "u2", LQ_CALIB_NPY},         {"i4.npy", "i4", LQ_CALIB_NPY},
        {"i8_2d.npy", "i8_2d", LQ_CALIB_NPY},   {"u1.npy", "u1", LQ_CALIB_NPY},
        {"i2_v2.npy", "i2_v2", LQ_CALIB_NPY},   {"u8_v3.npy", "u8_v3", LQ_CALIB_NPY},
        {"two.npz", "two", LQ_CALIB_NPZ},       {"tokens.npz", "tokens", LQ_CALIB_NPZ},
        {"single.npz", "single", LQ_CALIB_NPZ}, {"raw.u16", "raw", LQ_CALIB_RAW_U16},
        {"raw.u32", "raw32", LQ_CALIB_RAW_U32},
    };
    lq_tokenizer *tok = open_tok512();
    for (size_t f = 0; f < sizeof F / sizeof F[0]; f++) {
        char p[256], e[256], hex[65];
        snprintf(p, sizeof p, FIX "%s", F[f].file);
        snprintf(e, sizeof e, FIX "%s.expect.u32", F[f].expect);
        int64_t  n_exp = 0, n = 0;
        int32_t *exp = read_u32(e, &n_exp);
        int32_t *ids = stream_of(p, F[f].kind, false, NULL, &n);
        CU_ASSERT_EQUAL(n, n_exp);
        CU_ASSERT(n == n_exp && memcmp(ids, exp, (size_t)n * sizeof *ids) == 0);
        lq_free(ids);

        lq_calib_params cp = lq_calib_default_params();
        cp.n_samples       = 6;
        cp.seq_len         = 100;
        cp.vocab_size      = 512;
        lq_calib_set *c = NULL, *b = NULL;
        CU_ASSERT_FATAL(lq_calib_load(p, NULL, &cp, &c) == LQ_OK); /* no tokenizer: no BOS */
        CU_ASSERT_EQUAL(c->kind, F[f].kind);
        CU_ASSERT_EQUAL(c->n_stream, n_exp);
        CU_ASSERT_EQUAL(c->n_samples, 6);
        CU_ASSERT_EQUAL(c->seq_len, 100);
        CU_ASSERT_EQUAL(c->bos_id, -1);
        CU_ASSERT(windows_match(c, exp, n_exp));
        sha256_of_file(p, hex);
        CU_ASSERT_STRING_EQUAL(c->sha256, hex);
        size_t   len = 0;
        uint8_t *raw = lq_test_read_file(p, &len);
        CU_ASSERT_EQUAL(c->file_bytes, len);
        free(raw);
        CU_ASSERT_FATAL(lq_calib_load(p, tok, &cp, &b) == LQ_OK); /* the tokenizer's BOS first */
        CU_ASSERT_EQUAL(b->bos_id, 1);
        CU_ASSERT(windows_match(b, exp, n_exp));
        if (!windows_match(c, exp, n_exp) || !windows_match(b, exp, n_exp)) fprintf(stderr, "\n  %s\n", p);
        lq_calib_free(c);
        lq_calib_free(b);
        free(exp);
    }
    lq_tokenizer_free(tok);
}

static void write_gz(const char *path, const void *data, size_t len, const char *mode) {
    gzFile g = gzopen(path, mode);
    CU_ASSERT_FATAL(g != NULL);
    CU_ASSERT_EQUAL(gzwrite(g, data, (unsigned)len), (int)len);
    CU_ASSERT_EQUAL(gzclose(g), Z_OK);
}

static void test_calib_text_and_gzip(void) {
    lq_tokenizer *tok = open_tok512();
    char          ts[512];
    snprintf(ts, sizeof ts, "%s", lq_test_shared("tinystories/tinystories_train_excerpt.txt"));
    size_t   len  = 0;
    uint8_t *text = lq_test_read_file(ts, &len);
    CU_ASSERT_FATAL(text != NULL);
    CU_ASSERT_EQUAL_FATAL(len, TINYSTORIES_BYTES);
    /* the stream is lq_tokenizer_encode of the whole text, without BOS */
    int32_t *ids = malloc((len + 16) * sizeof *ids);
    size_t   n   = 0;
    CU_ASSERT_FATAL(lq_tokenizer_encode(tok, (const char *)text, len, false, ids, len + 16, &n) == LQ_OK);
    CU_ASSERT_FATAL(n > 40000);
    int64_t  n_s    = 0;
    int32_t *stream = stream_of(ts, LQ_CALIB_TEXT, false, tok, &n_s);
    CU_ASSERT_EQUAL(n_s, (int64_t)n);
    CU_ASSERT(n_s == (int64_t)n && memcmp(stream, ids, n * sizeof *ids) == 0);
    lq_free(stream);

    lq_calib_params cp = lq_calib_default_params();
    cp.n_samples       = 16;
    cp.seq_len         = 256;
    cp.seed            = 42;
    cp.vocab_size      = 512;
    lq_calib_set *a = NULL, *b = NULL, *c = NULL, *z = NULL, *m = NULL;
    CU_ASSERT_FATAL(lq_calib_load(ts, tok, &cp, &a) == LQ_OK);
    CU_ASSERT_EQUAL(a->kind, LQ_CALIB_TEXT);
    CU_ASSERT_EQUAL(a->n_stream, (int64_t)n);
    CU_ASSERT_EQUAL(a->bos_id, 1);
    CU_ASSERT(windows_match(a, ids, (int64_t)n));
    CU_ASSERT_STRING_EQUAL(a->sha256, TINYSTORIES_SHA256);
    CU_ASSERT_EQUAL(a->file_bytes, TINYSTORIES_BYTES);
    /* the same seed gives the same windows; another seed others */
    CU_ASSERT_FATAL(lq_calib_load(ts, tok, &cp, &b) == LQ_OK);
    CU_ASSERT(same_windows(a, b));
    cp.seed = 43;
    CU_ASSERT_FATAL(lq_calib_load(ts, tok, &cp, &c) == LQ_OK);
    CU_ASSERT(windows_match(c, ids, (int64_t)n));
    CU_ASSERT(memcmp(a->offsets, c->offsets, 16 * sizeof(int64_t)) != 0);
    CU_ASSERT(!same_windows(a, c));

    /* .txt.gz of the same text: the same stream and windows; the sha256 is the .gz file's */
    const char *dir = lq_test_tmpdir("calib_gz");
    char        gzp[512], mp[512], hex[65];
    snprintf(gzp, sizeof gzp, "%s/ts.txt.gz", dir);
    write_gz(gzp, text, len, "wb6");
    cp.seed = 42;
    CU_ASSERT_FATAL(lq_calib_load(gzp, tok, &cp, &z) == LQ_OK);
    CU_ASSERT_EQUAL(z->kind, LQ_CALIB_TEXT);
    CU_ASSERT_EQUAL(z->n_stream, a->n_stream);
    CU_ASSERT(same_windows(a, z));
    sha256_of_file(gzp, hex);
    CU_ASSERT_STRING_EQUAL(z->sha256, hex);
    CU_ASSERT(strcmp(a->sha256, z->sha256) != 0);
    CU_ASSERT(z->file_bytes < (uint64_t)len);
    /* two gzip members concatenated (cat a.gz b.gz) decompress to the whole text */
    char p1[512], p2[512];
    snprintf(p1, sizeof p1, "%s/part1.gz", dir);
    snprintf(p2, sizeof p2, "%s/part2.gz", dir);
    write_gz(p1, text, len / 3, "wb9");
    write_gz(p2, text + len / 3, len - len / 3, "wb1");
    size_t   l1 = 0, l2 = 0;
    uint8_t *g1 = lq_test_read_file(p1, &l1), *g2 = lq_test_read_file(p2, &l2);
    CU_ASSERT_FATAL(g1 && g2);
    uint8_t *cat = malloc(l1 + l2);
    memcpy(cat, g1, l1);
    memcpy(cat + l1, g2, l2);
    snprintf(mp, sizeof mp, "%s/members.TXT.GZ", dir);
    CU_ASSERT_FATAL(lq_test_write_file(mp, cat, l1 + l2) == 0);
    CU_ASSERT_FATAL(lq_calib_load(mp, tok, &cp, &m) == LQ_OK);
    CU_ASSERT(same_windows(a, m));
    free(g1), free(g2), free(cat);

    lq_calib_free(a), lq_calib_free(b), lq_calib_free(c), lq_calib_free(z), lq_calib_free(m);
    free(ids);
    free(text);
    lq_tokenizer_free(tok);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* the whole WikiText-2 test split (1.3 MB) in seconds, not hours: the
 * encoders are not quadratic (~0.3 s here; the bound leaves room for ASan) */
static void test_calib_large_text(void) {
    lq_tokenizer *tok = open_tok512();
    char          wt[512];
    snprintf(wt, sizeof wt, "%s", lq_test_shared("wikitext-2/wiki.test.lf.txt"));
    lq_calib_params cp = lq_calib_default_params();
    cp.vocab_size      = 512;
    lq_calib_set *c    = NULL;
    const double  t0   = now_s();
    CU_ASSERT_FATAL(lq_calib_load(wt, tok, &cp, &c) == LQ_OK);
    const double dt = now_s() - t0;
    CU_ASSERT(dt < 30.0);
    if (dt >= 30.0) fprintf(stderr, "\n  WikiText-2 took %.1f s\n", dt);
    size_t   len  = 0;
    uint8_t *text = lq_test_read_file(wt, &len);
    CU_ASSERT_FATAL(text != NULL && len == 1287656);
    int32_t *ids = malloc((len + 16) * sizeof *ids);
    size_t   n   = 0;
    CU_ASSERT_FATAL(lq_tokenizer_encode(tok, (const char *)text, len, false, ids, len + 16, &n) == LQ_OK);
    CU_ASSERT_EQUAL(c->n_stream, (int64_t)n);
    CU_ASSERT_EQUAL(c->n_samples, 128);
    CU_ASSERT_EQUAL(c->seq_len, 512);
    CU_ASSERT(windows_match(c, ids, (int64_t)n));
    CU_ASSERT_STRING_EQUAL(c->sha256, "bbf94c53a05abe9ee670d3b6343608095822c85e26de37c70b24fc571964574a");
    free(ids);
    free(text);
    lq_calib_free(c);
    lq_tokenizer_free(tok);
}

static void test_calib_jsonl(void) {
    lq_tokenizer *tok    = open_tok512();
    const char   *docs[] = {"Once upon a time, there was a cat.", "The dog ran to the park. It was happy!",
                            "Lily said, \"hi\"."};
    int32_t       stream[512];
    int64_t       n = 0;
    for (int d = 0; d < 3; d++) { /* each record on its own, BOS first, in file order */
        size_t k = 0;
        CU_ASSERT_FATAL(lq_tokenizer_encode(tok, docs[d], strlen(docs[d]), true, stream + n, 512 - (size_t)n, &k) ==
                        LQ_OK);
        CU_ASSERT_EQUAL(stream[n], 1);
        n += (int64_t)k;
    }
    int64_t  n_s = 0;
    int32_t *s   = stream_of(FIX "docs.jsonl", LQ_CALIB_JSONL, false, tok, &n_s);
    CU_ASSERT_EQUAL(n_s, n);
    CU_ASSERT(n_s == n && memcmp(s, stream, (size_t)n * sizeof *s) == 0);
    lq_free(s);
    lq_calib_params cp = lq_calib_default_params();
    cp.n_samples       = 40;
    cp.seq_len         = 12;
    cp.vocab_size      = 512;
    lq_calib_set *c = NULL, *z = NULL;
    CU_ASSERT_FATAL(lq_calib_load(FIX "docs.jsonl", tok, &cp, &c) == LQ_OK);
    CU_ASSERT_EQUAL(c->kind, LQ_CALIB_JSONL);
    CU_ASSERT_EQUAL(c->n_stream, n);
    CU_ASSERT(windows_match(c, stream, n));
    /* .jsonl.gz: the same */
    size_t   len = 0;
    uint8_t *raw = lq_test_read_file(FIX "docs.jsonl", &len);
    CU_ASSERT_FATAL(raw != NULL);
    char gzp[512];
    snprintf(gzp, sizeof gzp, "%s/docs.jsonl.gz", lq_test_tmpdir("calib_jsonl"));
    write_gz(gzp, raw, len, "wb");
    free(raw);
    CU_ASSERT_FATAL(lq_calib_load(gzp, tok, &cp, &z) == LQ_OK);
    CU_ASSERT_EQUAL(z->kind, LQ_CALIB_JSONL);
    CU_ASSERT(same_windows(c, z));
    lq_calib_free(c);
    lq_calib_free(z);
    lq_tokenizer_free(tok);
}

/* offsets drawn by make_calib_fixtures.py's own splitmix64 (lq_calib.h's rule) */
static void test_calib_window_rule(void) {
    size_t len = 0;
    char  *txt = (char *)lq_test_read_file(FIX "windows.expect.txt", &len);
    CU_ASSERT_FATAL(txt != NULL);
    txt         = realloc(txt, len + 1);
    txt[len]    = 0;
    int   cases = 0;
    char *save  = NULL;
    for (char *line = strtok_r(txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char          *q = line;
        const int64_t  N = strtoll(q, &q, 10), L = strtoll(q, &q, 10), bos = strtoll(q, &q, 10);
        const uint64_t seed = strtoull(q, &q, 10);
        const int64_t  S    = strtoll(q, &q, 10);
        CU_ASSERT_FATAL(N > 0 && L > 0 && S > 0 && S <= 64);
        int32_t *ids = malloc((size_t)N * sizeof *ids);
        for (int64_t i = 0; i < N; i++)
            ids[i] = (int32_t)i;
        lq_calib_params cp = lq_calib_default_params();
        cp.n_samples       = S;
        cp.seq_len         = L;
        cp.seed            = seed;
        cp.prepend_bos     = bos >= 0;
        lq_calib_set *c    = NULL;
        CU_ASSERT_FATAL(lq_calib_from_tokens(ids, N, (int32_t)bos, &cp, &c) == LQ_OK);
        CU_ASSERT_EQUAL(c->bos_id, (int32_t)bos);
        for (int64_t i = 0; i < S; i++) {
            const int64_t want = strtoll(q, &q, 10);
            CU_ASSERT_EQUAL(c->offsets[i], want);
            if (c->offsets[i] != want)
                fprintf(stderr, "\n  N %lld L %lld seed %llu: offset %lld is %lld, want %lld\n", (long long)N,
                        (long long)L, (unsigned long long)seed, (long long)i, (long long)c->offsets[i],
                        (long long)want);
        }
        CU_ASSERT(windows_match(c, ids, N));
        lq_calib_free(c);
        free(ids);
        cases++;
    }
    CU_ASSERT_EQUAL(cases, 5);
    free(txt);
}

static void test_calib_window_choice(void) {
    int32_t ids[1000];
    for (int i = 0; i < 1000; i++)
        ids[i] = i;
    lq_calib_params cp = lq_calib_default_params();
    cp.n_samples       = 200;
    cp.seq_len         = 991; /* with BOS, 11 possible offsets: 0..10 */
    lq_calib_set *c    = NULL;
    CU_ASSERT_FATAL(lq_calib_from_tokens(ids, 1000, 7, &cp, &c) == LQ_OK);
    int seen[11] = {0};
    for (int i = 0; i < 200; i++) {
        CU_ASSERT(c->offsets[i] >= 0 && c->offsets[i] <= 10);
        if (c->offsets[i] >= 0 && c->offsets[i] <= 10) seen[c->offsets[i]]++;
        CU_ASSERT_EQUAL(c->tokens[i * 991], 7);
        CU_ASSERT_EQUAL(c->tokens[i * 991 + 1], (int32_t)c->offsets[i]);
    }
    for (int k = 0; k < 11; k++)
        CU_ASSERT(seen[k] > 0); /* every offset drawn (p of a miss ~ 1e-7) */
    CU_ASSERT(windows_match(c, ids, 1000));
    CU_ASSERT_EQUAL(c->kind, LQ_CALIB_RAW_U32);
    CU_ASSERT_EQUAL(c->file_bytes, 4000);
    lq_calib_free(c);
    /* no BOS: a window as long as the stream is the stream */
    cp.prepend_bos = false;
    cp.seq_len     = 1000;
    CU_ASSERT_FATAL(lq_calib_from_tokens(ids, 1000, 7, &cp, &c) == LQ_OK);
    CU_ASSERT_EQUAL(c->bos_id, -1);
    for (int i = 0; i < 200; i++)
        CU_ASSERT_EQUAL(c->offsets[i], 0);
    CU_ASSERT(memcmp(c->tokens + 199 * 1000, ids, sizeof ids) == 0);
    lq_calib_free(c);
    /* with BOS: seq_len = N + 1 still fits (N tokens after BOS) */
    cp.prepend_bos = true;
    cp.seq_len     = 1001;
    cp.n_samples   = 2;
    CU_ASSERT_FATAL(lq_calib_from_tokens(ids, 1000, 7, &cp, &c) == LQ_OK);
    CU_ASSERT_EQUAL(c->offsets[1], 0);
    lq_calib_free(c);
    /* sha256 over the ids as little-endian uint32 = the .u32 file holding them */
    int64_t         n32 = 0;
    int32_t        *raw = read_u32(FIX "raw32.expect.u32", &n32);
    lq_calib_set   *f = NULL, *m = NULL;
    lq_calib_params p2 = lq_calib_default_params();
    p2.n_samples       = 3;
    p2.seq_len         = 50;
    CU_ASSERT_FATAL(lq_calib_from_tokens(raw, n32, -1, &p2, &m) == LQ_OK);
    CU_ASSERT_FATAL(lq_calib_load(FIX "raw.u32", NULL, &p2, &f) == LQ_OK);
    CU_ASSERT_STRING_EQUAL(m->sha256, f->sha256);
    CU_ASSERT(same_windows(m, f));
    lq_calib_free(m);
    lq_calib_free(f);
    free(raw);
    /* the stream too short and bad parameters; each logged once */
    const struct {
        int64_t n_samples, seq_len, vocab;
        int32_t bos, bad_id;
    } B[] = {
        {2, 1002, 0, 7, -1},  /* N = 1000 < L' = 1001 */
        {2, 1001, 0, -1, -1}, /* no BOS: N < L */
        {0, 10, 0, 7, -1},    /* no windows */
        {2, 1, 0, 7, -1},     /* BOS and nothing else */
        {2, 10, 900, 7, -1},  /* ids 900.. >= vocab */
        {2, 10, 0, 7, 5},     /* a negative id */
        {2, 10, 5, 7, -1},    /* BOS >= vocab */
    };
    for (size_t i = 0; i < sizeof B / sizeof B[0]; i++) {
        lq_calib_params bp = lq_calib_default_params();
        bp.n_samples       = B[i].n_samples;
        bp.seq_len         = B[i].seq_len;
        bp.vocab_size      = B[i].vocab;
        if (B[i].bad_id >= 0) ids[B[i].bad_id] = -3;
        lq_test_quiet(1);
        c = (lq_calib_set *)(uintptr_t)1; /* must be reset to NULL */
        CU_ASSERT_EQUAL(lq_calib_from_tokens(ids, 1000, B[i].bos, &bp, &c), LQ_ERR_INVALID_ARG);
        CU_ASSERT_PTR_NULL(c);
        CU_ASSERT_EQUAL(lq_test_errors_logged(), 1);
        lq_test_quiet(0);
        if (B[i].bad_id >= 0) ids[B[i].bad_id] = B[i].bad_id;
    }
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_calib_from_tokens(NULL, 5, 1, NULL, &c), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_calib_load(NULL, NULL, NULL, &c), LQ_ERR_INVALID_ARG);
    lq_test_quiet(0);
}

/* each malformed input: the documented status, *out NULL, one log line
 * naming the file (and line), the message's key words */
static void expect_error(const char *path, const lq_tokenizer *tok, const lq_calib_params *cp, lq_status want,
                         const char *name, const char *msg) {
    lq_calib_set *c = (lq_calib_set *)(uintptr_t)1;
    lq_test_quiet(1);
    const lq_status s      = lq_calib_load(path, tok, cp, &c);
    const int       logged = lq_test_errors_logged();
    const char     *err    = lq_test_last_error();
    const bool      ok     = s == want && !c && logged == 1 && strstr(err, name) && (!msg || strstr(err, msg));
    CU_ASSERT_EQUAL(s, want);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_EQUAL(logged, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, name));
    if (msg) CU_ASSERT_PTR_NOT_NULL(strstr(err, msg));
    if (!ok)
        fprintf(stderr, "\n  %s: status %d (want %d), %d errors logged, message '%s'\n", path, (int)s, (int)want,
                logged, err);
    lq_test_quiet(0);
}

static void test_calib_malformed(void) {
    lq_tokenizer   *tok = open_tok512();
    lq_calib_params cp  = lq_calib_default_params();
    cp.n_samples        = 2;
    cp.seq_len          = 16;
    cp.vocab_size       = 512;
    /* .npy / .npz */
    expect_error(FIX "truncated.npy", NULL, &cp, LQ_ERR_FORMAT, "truncated.npy", "truncated");
    expect_error(FIX "short_data.npy", NULL, &cp, LQ_ERR_FORMAT, "short_data.npy", "do not match");
    expect_error(FIX "fortran.npy", NULL, &cp, LQ_ERR_UNSUPPORTED, "fortran.npy", "Fortran");
    expect_error(FIX "bigendian.npy", NULL, &cp, LQ_ERR_UNSUPPORTED, "bigendian.npy", "big-endian");
    expect_error(FIX "float.npy", NULL, &cp, LQ_ERR_UNSUPPORTED, "float.npy", "not an integer type");
    expect_error(FIX "object.npy", NULL, &cp, LQ_ERR_UNSUPPORTED, "object.npy", "object arrays");
    expect_error(FIX "bad_dict.npy", NULL, &cp, LQ_ERR_FORMAT, "bad_dict.npy", "'shape' is not a tuple");
    expect_error(FIX "extra_key.npy", NULL, &cp, LQ_ERR_FORMAT, "extra_key.npy", "unexpected key 'x'");
    expect_error(FIX "negative.npy", NULL, &cp, LQ_ERR_INVALID_ARG, "negative.npy", "outside the vocabulary");
    expect_error(FIX "ambiguous.npz", NULL, &cp, LQ_ERR_FORMAT, "ambiguous.npz", "none is named input_ids");
    expect_error(FIX "bad_crc.npz", NULL, &cp, LQ_ERR_FORMAT, "bad_crc.npz:whatever.npy", NULL);
    lq_calib_params small = cp; /* ids >= vocab_size */
    small.vocab_size      = 100;
    expect_error(FIX "u2.npy", NULL, &small, LQ_ERR_INVALID_ARG, "u2.npy", "outside the vocabulary");
    expect_error(FIX "two.npz", NULL, &small, LQ_ERR_INVALID_ARG, "two.npz:input_ids.npy", "outside the vocabulary");
    expect_error(FIX "raw.u16", NULL, &small, LQ_ERR_INVALID_ARG, "raw.u16", "outside the vocabulary");
    char ts[512];
    snprintf(ts, sizeof ts, "%s", lq_test_shared("tinystories/tinystories_train_excerpt.txt"));
    expect_error(ts, tok, &small, LQ_ERR_INVALID_ARG, "tinystories_train_excerpt.txt", "the tokenizer gives id");
    /* names, missing tokenizer, missing file, too short */
    expect_error(FIX "u2.npy.csv", NULL, &cp, LQ_ERR_UNSUPPORTED, "u2.npy.csv", "unknown calibration file kind");
    expect_error(FIX "docs.jsonl", NULL, &cp, LQ_ERR_INVALID_ARG, "docs.jsonl", "tokenizer");
    expect_error(FIX "missing.npy", NULL, &cp, LQ_ERR_IO, "missing.npy", "cannot open");
    lq_calib_params longw = cp;
    longw.seq_len         = 5000;
    expect_error(FIX "u2.npy", NULL, &longw, LQ_ERR_INVALID_ARG, "u2.npy", "fewer than one window");
    expect_error(FIX "docs.jsonl", tok, &longw, LQ_ERR_INVALID_ARG, "docs.jsonl", "fewer than one window");
    /* JSON Lines: the message names the line */
    expect_error(FIX "bad_line.jsonl", tok, &cp, LQ_ERR_FORMAT, "bad_line.jsonl:2:", "no \"text\" field");
    expect_error(FIX "not_object.jsonl", tok, &cp, LQ_ERR_FORMAT, "not_object.jsonl:3:", "not a JSON object");
    expect_error(FIX "bad_json.jsonl", tok, &cp, LQ_ERR_FORMAT, "bad_json.jsonl:1:", "not valid JSON");

    /* size limits: a gzip bomb, a plain file, an .npz member over max_bytes */
    const char *dir = lq_test_tmpdir("calib_bad");
    char        p[512];
    snprintf(p, sizeof p, "%s/bomb.txt.gz", dir);
    char *zeros = calloc(3 << 20, 1);
    write_gz(p, zeros, 3 << 20, "wb9");
    free(zeros);
    lq_calib_params lim = cp;
    lim.max_bytes       = 1 << 20;
    expect_error(p, tok, &lim, LQ_ERR_FORMAT, "bomb.txt.gz", "limit (max_bytes)");
    lim.max_bytes = 1000;
    expect_error(FIX "raw.u16", NULL, &lim, LQ_ERR_FORMAT, "raw.u16", "limit (max_bytes)");
    lim.max_bytes = 2000; /* two.npz: 1742 bytes, its deflated input_ids.npy 2928 */
    expect_error(FIX "two.npz", NULL, &lim, LQ_ERR_FORMAT, "two.npz:input_ids.npy", "limit (max_bytes)");
    /* a truncated gzip stream; not gzip at all */
    size_t   len = 0;
    uint8_t *b   = lq_test_read_file(p, &len);
    CU_ASSERT_FATAL(b != NULL && len > 100);
    snprintf(p, sizeof p, "%s/cut.txt.gz", dir);
    CU_ASSERT_FATAL(lq_test_write_file(p, b, len / 2) == 0);
    expect_error(p, tok, &cp, LQ_ERR_FORMAT, "cut.txt.gz", "truncated");
    free(b);
    snprintf(p, sizeof p, "%s/plain.jsonl.gz", dir);
    CU_ASSERT_FATAL(lq_test_write_file(p, "{\"text\": \"x\"}\n", 14) == 0);
    expect_error(p, tok, &cp, LQ_ERR_FORMAT, "plain.jsonl.gz", "not valid gzip");
    /* a raw file with half an id; an empty text; a JSON Lines file of blank lines */
    snprintf(p, sizeof p, "%s/odd.u16", dir);
    CU_ASSERT_FATAL(lq_test_write_file(p, "\1\2\3", 3) == 0);
    expect_error(p, NULL, &cp, LQ_ERR_FORMAT, "odd.u16", "whole number");
    snprintf(p, sizeof p, "%s/empty.txt", dir);
    CU_ASSERT_FATAL(lq_test_write_file(p, "", 0) == 0);
    expect_error(p, tok, &cp, LQ_ERR_INVALID_ARG, "empty.txt", "has 0 tokens");
    snprintf(p, sizeof p, "%s/blank.jsonl", dir);
    CU_ASSERT_FATAL(lq_test_write_file(p, "\n  \r\n\n", 6) == 0);
    expect_error(p, tok, &cp, LQ_ERR_FORMAT, "blank.jsonl", "no records");
    lq_tokenizer_free(tok);
}

/* the in-memory parsers on edge cases the files above do not reach */
static void test_calib_parsers(void) {
    int32_t *ids = NULL;
    int64_t  n   = -1;
    /* a hand-made v1.0 header with spacing and a 2-D shape, no trailing comma */
    static const char h2[] = "{ 'descr' : '|u1' , \"fortran_order\":False,'shape':( 2 ,3 ) }\n";
    uint8_t           buf[256];
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (uint8_t)(sizeof h2 - 1);
    buf[9] = 0;
    memcpy(buf + 10, h2, sizeof h2 - 1);
    for (int i = 0; i < 6; i++)
        buf[10 + sizeof h2 - 1 + i] = (uint8_t)(10 + i);
    const size_t total = 10 + sizeof h2 - 1 + 6;
    CU_ASSERT_EQUAL_FATAL(lq__calib_parse_npy(buf, total, "hand.npy", 0, &ids, &n), LQ_OK);
    CU_ASSERT_EQUAL(n, 6);
    for (int i = 0; i < 6 && n == 6; i++)
        CU_ASSERT_EQUAL(ids[i], 10 + i);
    lq_free(ids);
    /* version 4 and a bad magic are refused; so is every truncation of a good file */
    lq_test_quiet(1);
    buf[6] = 4;
    CU_ASSERT_EQUAL(lq__calib_parse_npy(buf, total, "v4.npy", 0, &ids, &n), LQ_ERR_FORMAT);
    CU_ASSERT_PTR_NULL(ids);
    buf[6] = 1;
    buf[1] = 'n';
    CU_ASSERT_EQUAL(lq__calib_parse_npy(buf, total, "magic.npy", 0, &ids, &n), LQ_ERR_FORMAT);
    buf[1] = 'N';
    for (size_t cut = 0; cut < total; cut++) {
        CU_ASSERT_NOT_EQUAL(lq__calib_parse_npy(buf, cut, "cut.npy", 0, &ids, &n), LQ_OK);
        CU_ASSERT_PTR_NULL(ids);
    }
    /* shape (6) is not a tuple; a 3-D shape; a 0-D shape */
    static const char *bad[][2] = {
        {"{'descr': '<u1', 'fortran_order': False, 'shape': (6)}", "is not a tuple (N,)"},
        {"{'descr': '<u1', 'fortran_order': False, 'shape': (1, 2, 3)}", "1-D or 2-D"},
        {"{'descr': '<u1', 'fortran_order': False, 'shape': ()}", "1-D or 2-D"},
        {"{'descr': '<u1', 'fortran_order': False, 'shape': (6,), 'shape': (6,)}", "duplicate key"},
        {"{'descr': '<u1', 'fortran_order': 0, 'shape': (6,)}", "True or False"},
        {"{'descr': '<u1', 'shape': (6,)}", "lacks"},
        {"{'descr': [('a', '<u1')], 'fortran_order': False, 'shape': (6,)}", "structured"},
        {"{'descr': '<b1', 'fortran_order': False, 'shape': (6,)}", "not an integer type"},
        {"{'descr': '<u1', 'fortran_order': False, 'shape': (99999999999999999999,)}", "overflows"},
        {"{'descr': '<u1', 'fortran_order': False, 'shape': (6,)} x", "after the .npy header"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const size_t hl = strlen(bad[i][0]);
        uint8_t      b2[256];
        memcpy(b2, "\x93NUMPY\x01\x00", 8);
        b2[8] = (uint8_t)hl;
        b2[9] = 0;
        memcpy(b2 + 10, bad[i][0], hl);
        memset(b2 + 10 + hl, 1, 6);
        lq_test_quiet(1);
        CU_ASSERT_NOT_EQUAL(lq__calib_parse_npy(b2, 10 + hl + 6, "h.npy", 0, &ids, &n), LQ_OK);
        CU_ASSERT_PTR_NULL(ids);
        CU_ASSERT_PTR_NOT_NULL(strstr(lq_test_last_error(), bad[i][1]));
        if (!strstr(lq_test_last_error(), bad[i][1]))
            fprintf(stderr, "\n  header %zu: '%s'\n", i, lq_test_last_error());
    }
    /* gunzip: exactly at the limit passes, one byte more does not */
    uint8_t plain[5000], gz[6000];
    uLongf  gl = sizeof gz;
    for (int i = 0; i < 5000; i++)
        plain[i] = (uint8_t)(i * 7);
    CU_ASSERT_FATAL(compress2(gz, &gl, plain, sizeof plain, 9) == Z_OK); /* zlib format: also read */
    uint8_t *out = NULL;
    size_t   ol  = 0;
    CU_ASSERT_EQUAL(lq__calib_gunzip(gz, gl, 5000, "z", &out, &ol), LQ_OK);
    CU_ASSERT(ol == 5000 && memcmp(out, plain, 5000) == 0);
    lq_free(out);
    CU_ASSERT_EQUAL(lq__calib_gunzip(gz, gl, 4999, "z", &out, &ol), LQ_ERR_FORMAT);
    CU_ASSERT_PTR_NULL(out);
    /* trailing garbage after a member */
    gz[gl] = 'x';
    CU_ASSERT_EQUAL(lq__calib_gunzip(gz, gl + 1, 1 << 20, "z", &out, &ol), LQ_ERR_FORMAT);
    /* raw: u32 ids above INT32_MAX are refused even without a vocabulary */
    static const uint8_t big[8] = {1, 0, 0, 0, 0, 0, 0, 0x80};
    CU_ASSERT_EQUAL(lq__calib_parse_raw(big, 8, 4, "big.u32", 0, &ids, &n), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq__calib_parse_raw(big, 4, 4, "one.u32", 0, &ids, &n), LQ_OK);
    CU_ASSERT(n == 1 && ids[0] == 1);
    lq_free(ids);
    /* an empty raw file is an empty stream (the window check refuses it later) */
    CU_ASSERT_EQUAL(lq__calib_parse_raw(big, 0, 2, "empty.u16", 0, &ids, &n), LQ_OK);
    CU_ASSERT_EQUAL(n, 0);
    lq_free(ids);
    lq_test_quiet(0);
}

CU_pSuite lq_test_calib_suite(void) {
    CU_pSuite s = lq_test_add_suite("calib");
    LQ_ADD_TEST(s, test_calib_defaults_and_kinds);
    LQ_ADD_TEST(s, test_calib_token_files);
    LQ_ADD_TEST(s, test_calib_text_and_gzip);
    LQ_ADD_TEST(s, test_calib_large_text);
    LQ_ADD_TEST(s, test_calib_jsonl);
    LQ_ADD_TEST(s, test_calib_window_rule);
    LQ_ADD_TEST(s, test_calib_window_choice);
    LQ_ADD_TEST(s, test_calib_malformed);
    LQ_ADD_TEST(s, test_calib_parsers);
    return s;
}
