/* test_calib.c : calibration sets: token files written by numpy
 * (tests/data/calib, make_calib_fixtures.py), the TinyStories text through
 * the SentencePiece tokenizer (plain and gzip), JSON Lines, window choice,
 * the file's sha256 against ../shared/data/SHA256SUMS, and malformed input. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "calib_internal.h"
#include "lq_test.h"

#define FIX "tests/data/calib/"

static int32_t *read_u32(const char *path, int64_t *n) {
    size_t   len = 0;
    uint8_t *b   = lq_test_read_file(path, &len);
    CU_ASSERT_FATAL(b != NULL);
    *n = (int64_t)(len / 4);
    return (int32_t *)b;
}

/* every window equals the expected stream at its recorded offset */
static bool windows_match(const lq_calib_set *c, const int32_t *stream, int64_t n) {
    const int64_t body = c->bos_id >= 0 ? c->seq_len - 1 : c->seq_len;
    for (int64_t i = 0; i < c->n_samples; i++) {
        const int32_t *w = c->tokens + i * c->seq_len;
        if (c->offsets[i] < 0 || c->offsets[i] + body > n) return false;
        if (c->bos_id >= 0 && *w++ != c->bos_id) return false;
        if (memcmp(w, stream + c->offsets[i], (size_t)body * 4) != 0) return false;
    }
    return true;
}

static void test_token_files(void) {
    const char *files[][2] = {{"u2.npy", "u2"},     {"i4.npy", "i4"},         {"i8_2d.npy", "i8_2d"},
                              {"two.npz", "two"},   {"single.npz", "single"}, {"raw.u16", "raw"}};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char p[256], e[256];
        snprintf(p, sizeof p, FIX "%s", files[f][0]);
        snprintf(e, sizeof e, FIX "%s.expect.u32", files[f][1]);
        int64_t  n_exp = 0;
        int32_t *exp   = read_u32(e, &n_exp);
        lq_calib_params cp = lq_calib_default_params();
        cp.n_samples       = 6;
        cp.seq_len         = 100;
        cp.vocab_size      = 512;
        lq_calib_set *c    = NULL;
        CU_ASSERT_FATAL(lq_calib_load(p, NULL, &cp, &c) == LQ_OK);
        CU_ASSERT_EQUAL(c->n_stream, n_exp);
        CU_ASSERT_EQUAL(c->bos_id, -1);
        CU_ASSERT(windows_match(c, exp, n_exp));
        size_t   len = 0;
        uint8_t *raw = lq_test_read_file(p, &len);
        uint8_t  d[32];
        char     hex[65];
        lq_sha256(raw, len, d);
        lq_sha256_hex(d, hex);
        CU_ASSERT_STRING_EQUAL(c->sha256, hex);
        CU_ASSERT_EQUAL(c->file_bytes, len);
        free(raw);
        lq_calib_free(c);
        free(exp);
    }
}

static void expect_error(const char *path, const lq_tokenizer *tok, const lq_calib_params *cp, lq_status want,
                         const char *msg) {
    lq_calib_set *c = NULL;
    lq_test_quiet(1);
    const lq_status s = lq_calib_load(path, tok, cp, &c);
    CU_ASSERT_EQUAL(s, want);
    CU_ASSERT_PTR_NULL(c);
    if (msg) CU_ASSERT(strstr(lq_test_last_error(), msg) != NULL);
    if (s != want || (msg && !strstr(lq_test_last_error(), msg)))
        fprintf(stderr, "\n  %s: status %d, message '%s'\n", path, (int)s, lq_test_last_error());
    lq_test_quiet(0);
}

static void test_malformed(void) {
    lq_calib_params cp = lq_calib_default_params();
    cp.n_samples       = 2;
    cp.seq_len         = 16;
    cp.vocab_size      = 512;
    expect_error(FIX "truncated.npy", NULL, &cp, LQ_ERR_FORMAT, "truncated.npy");
    expect_error(FIX "short_data.npy", NULL, &cp, LQ_ERR_FORMAT, "do not match");
    expect_error(FIX "fortran.npy", NULL, &cp, LQ_ERR_UNSUPPORTED, "Fortran");
    expect_error(FIX "bigendian.npy", NULL, &cp, LQ_ERR_UNSUPPORTED, "big-endian");
    expect_error(FIX "float.npy", NULL, &cp, LQ_ERR_UNSUPPORTED, "not an integer type");
    expect_error(FIX "negative.npy", NULL, &cp, LQ_ERR_INVALID_ARG, "outside");
    expect_error(FIX "u2.npy.csv", NULL, &cp, LQ_ERR_UNSUPPORTED, "unknown kind");
    expect_error(FIX "docs.jsonl", NULL, &cp, LQ_ERR_INVALID_ARG, "tokenizer");
    expect_error("tests/data/calib/missing.npy", NULL, &cp, LQ_ERR_IO, "missing.npy");
    lq_calib_params small = cp;
    small.vocab_size      = 100;
    expect_error(FIX "raw.u16", NULL, &small, LQ_ERR_INVALID_ARG, "outside the vocabulary");
    lq_calib_params longw = cp;
    longw.seq_len         = 5000;
    expect_error(FIX "u2.npy", NULL, &longw, LQ_ERR_INVALID_ARG, "fewer than one window");
    /* gzip: a bomb over the limit, a truncated stream */
    const char *dir = lq_test_tmpdir("calib");
    char        bomb[512], trunc[512];
    snprintf(bomb, sizeof bomb, "%s/bomb.txt.gz", dir);
    snprintf(trunc, sizeof trunc, "%s/trunc.u16", dir);
    gzFile g = gzopen(bomb, "wb9");
    CU_ASSERT_FATAL(g != NULL);
    char *zeros = calloc(1 << 20, 1);
    for (int i = 0; i < 3; i++) gzwrite(g, zeros, 1 << 20);
    gzclose(g);
    free(zeros);
    lq_tokenizer *tok = NULL;
    CU_ASSERT_FATAL(lq_tokenizer_open(lq_test_shared("stories260K/tok512.model"), 512, &tok) == LQ_OK);
    lq_calib_params lim = cp;
    lim.max_bytes       = 1 << 20;
    expect_error(bomb, tok, &lim, LQ_ERR_INVALID_ARG, "limit");
    size_t   len = 0;
    uint8_t *b   = lq_test_read_file(bomb, &len);
    snprintf(bomb, sizeof bomb, "%s/cut.txt.gz", dir);
    CU_ASSERT_FATAL(lq_test_write_file(bomb, b, len / 2) == 0);
    free(b);
    expect_error(bomb, tok, &cp, LQ_ERR_FORMAT, "truncated");
    uint8_t odd[3] = {1, 2, 3};
    CU_ASSERT_FATAL(lq_test_write_file(trunc, odd, 3) == 0);
    expect_error(trunc, NULL, &cp, LQ_ERR_FORMAT, "whole number");
    expect_error(FIX "bad_line.jsonl", tok, &cp, LQ_ERR_FORMAT, "bad_line.jsonl:2:");
    lq_tokenizer_free(tok);
}

static void test_text_and_gzip(void) {
    lq_tokenizer *tok = NULL;
    CU_ASSERT_FATAL(lq_tokenizer_open(lq_test_shared("stories260K/tok512.model"), 512, &tok) == LQ_OK);
    char ts[512];
    snprintf(ts, sizeof ts, "%s", lq_test_shared("tinystories/tinystories_train_excerpt.txt"));
    size_t   len  = 0;
    uint8_t *text = lq_test_read_file(ts, &len);
    CU_ASSERT_FATAL(text != NULL);
    int32_t *ids = malloc((len + 16) * sizeof *ids);
    size_t   n   = 0;
    CU_ASSERT_FATAL(lq_tokenizer_encode(tok, (const char *)text, len, true, ids, len + 16, &n) == LQ_OK);
    CU_ASSERT_EQUAL_FATAL(ids[0], 1);
    lq_calib_params cp = lq_calib_default_params();
    cp.n_samples       = 16;
    cp.seq_len         = 256;
    cp.seed            = 42;
    cp.vocab_size      = 512;
    lq_calib_set *a = NULL, *b = NULL, *c = NULL, *z = NULL;
    CU_ASSERT_FATAL(lq_calib_load(ts, tok, &cp, &a) == LQ_OK);
    CU_ASSERT_EQUAL(a->kind, LQ_CALIB_TEXT);
    CU_ASSERT_EQUAL(a->n_stream, (int64_t)n - 1);
    CU_ASSERT_EQUAL(a->bos_id, 1);
    CU_ASSERT(windows_match(a, ids + 1, (int64_t)n - 1));
    CU_ASSERT_FATAL(lq_calib_load(ts, tok, &cp, &b) == LQ_OK);
    CU_ASSERT(memcmp(a->tokens, b->tokens, (size_t)(16 * 256) * 4) == 0);
    cp.seed = 43;
    CU_ASSERT_FATAL(lq_calib_load(ts, tok, &cp, &c) == LQ_OK);
    CU_ASSERT(memcmp(a->offsets, c->offsets, 16 * sizeof(int64_t)) != 0);
    /* the file's sha256 as ../shared/data/SHA256SUMS lists it */
    size_t sl   = 0;
    char  *sums = (char *)lq_test_read_file(lq_test_shared("SHA256SUMS"), &sl);
    if (sums) {
        sums       = realloc(sums, sl + 1);
        sums[sl]   = 0;
        char *line = strstr(sums, "tinystories_train_excerpt.txt");
        CU_ASSERT_FATAL(line != NULL);
        while (line > sums && line[-1] != '\n') line--;
        CU_ASSERT(strncmp(line, a->sha256, 64) == 0);
        free(sums);
    }
    /* .txt.gz gives the same stream and windows */
    char gzp[512];
    snprintf(gzp, sizeof gzp, "%s/ts.txt.gz", lq_test_tmpdir("calib_gz"));
    gzFile g = gzopen(gzp, "wb6");
    CU_ASSERT_FATAL(g != NULL);
    CU_ASSERT_EQUAL(gzwrite(g, text, (unsigned)len), (int)len);
    gzclose(g);
    cp.seed = 42;
    CU_ASSERT_FATAL(lq_calib_load(gzp, tok, &cp, &z) == LQ_OK);
    CU_ASSERT_EQUAL(z->n_stream, a->n_stream);
    CU_ASSERT(memcmp(a->tokens, z->tokens, (size_t)(16 * 256) * 4) == 0);
    CU_ASSERT(strcmp(a->sha256, z->sha256) != 0);
    lq_calib_free(a), lq_calib_free(b), lq_calib_free(c), lq_calib_free(z);
    free(ids);
    free(text);
    lq_tokenizer_free(tok);
}

static void test_jsonl(void) {
    lq_tokenizer *tok = NULL;
    CU_ASSERT_FATAL(lq_tokenizer_open(lq_test_shared("stories260K/tok512.model"), 512, &tok) == LQ_OK);
    const char *docs[] = {"Once upon a time, there was a cat.", "The dog ran to the park. It was happy!",
                          "Lily said, \"hi\"."};
    int32_t     stream[512];
    int64_t     n = 0;
    for (int d = 0; d < 3; d++) {
        size_t k = 0;
        CU_ASSERT_FATAL(lq_tokenizer_encode(tok, docs[d], strlen(docs[d]), true, stream + n, 512 - (size_t)n, &k) ==
                        LQ_OK);
        n += (int64_t)k;
    }
    lq_calib_params cp = lq_calib_default_params();
    cp.n_samples       = 5;
    cp.seq_len         = 12;
    lq_calib_set *c    = NULL;
    CU_ASSERT_FATAL(lq_calib_load(FIX "docs.jsonl", tok, &cp, &c) == LQ_OK);
    CU_ASSERT_EQUAL(c->kind, LQ_CALIB_JSONL);
    CU_ASSERT_EQUAL(c->n_stream, n);
    CU_ASSERT(windows_match(c, stream, n));
    lq_calib_free(c);
    lq_tokenizer_free(tok);
}

static void test_window_choice(void) {
    int32_t ids[1000];
    for (int i = 0; i < 1000; i++) ids[i] = i;
    lq_calib_params cp = lq_calib_default_params();
    cp.n_samples       = 200;
    cp.seq_len         = 991; /* 11 possible offsets with BOS: 0..10 */
    lq_calib_set *c    = NULL;
    CU_ASSERT_FATAL(lq_calib_from_tokens(ids, 1000, 7, &cp, &c) == LQ_OK);
    int seen[11] = {0};
    for (int i = 0; i < 200; i++) {
        CU_ASSERT(c->offsets[i] >= 0 && c->offsets[i] <= 10);
        if (c->offsets[i] >= 0 && c->offsets[i] <= 10) seen[c->offsets[i]]++;
        CU_ASSERT_EQUAL(c->tokens[i * 991], 7);
        CU_ASSERT_EQUAL(c->tokens[i * 991 + 1], (int32_t)c->offsets[i]);
    }
    for (int k = 0; k < 11; k++) CU_ASSERT(seen[k] > 0); /* every offset drawn (p of a miss ~ 1e-7) */
    CU_ASSERT(windows_match(c, ids, 1000));
    lq_calib_free(c);
    cp.prepend_bos = false;
    cp.seq_len     = 1000;
    CU_ASSERT_FATAL(lq_calib_from_tokens(ids, 1000, 7, &cp, &c) == LQ_OK);
    CU_ASSERT_EQUAL(c->bos_id, -1);
    CU_ASSERT_EQUAL(c->offsets[0], 0);
    lq_calib_free(c);
    cp.seq_len = 1001;
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_calib_from_tokens(ids, 1000, 7, &cp, &c), LQ_ERR_INVALID_ARG);
    lq_test_quiet(0);
}

CU_pSuite lq_test_calib_suite(void) {
    CU_pSuite s = lq_test_add_suite("calib");
    LQ_ADD_TEST(s, test_token_files);
    LQ_ADD_TEST(s, test_malformed);
    LQ_ADD_TEST(s, test_text_and_gzip);
    LQ_ADD_TEST(s, test_jsonl);
    LQ_ADD_TEST(s, test_window_choice);
    return s;
}
