/* test_tokenizer.c : the tokenizers (formats/tokenizer*.c) against
 * independent implementations.
 *
 * Oracles: Debian's spm_encode (run here when installed, on every line of
 * the TinyStories and WikiText files, and also frozen in
 * tests/data/tokenizer/expected/), HF `tokenizers` (frozen: ids produced by
 * tests/data/tokenizer/make_expected.py), and REFERENCE.md §9 for llama2.c.
 * Expected files hold one record per input line, "COUNT FNV32" plus the
 * full ids for the first lines. Also: decode round trips, hostile files
 * (truncated/garbled protobuf, tokenizer.bin and JSON), buffer-size queries,
 * empty text and ill-formed UTF-8. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "lq_test.h"
#include "lq_tokenizer.h"

CU_pSuite lq_test_tokenizer_suite(void);

#define DATA "tests/data/tokenizer/"
#define MAX_IDS (1 << 20)

static int32_t g_ids[MAX_IDS];

/* ---- helpers ---- */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* a whole gzip (or plain) file, NUL-terminated */
static char *gz_read(const char *path, size_t *len) {
    gzFile f = gzopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char  *buf = malloc(cap + 1);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) break;
            buf = nb;
        }
        const int r = gzread(f, buf + n, (unsigned)(cap - n));
        if (r <= 0) break;
        n += (size_t)r;
    }
    gzclose(f);
    buf[n] = 0;
    *len   = n;
    return buf;
}

typedef struct {
    char  **s;
    size_t *len;
    size_t  n;
} lines;

/* split on '\n' (a final newline does not start a line); pointers into buf */
static lines split_lines(char *buf, size_t len) {
    lines  L = {0};
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += buf[i] == '\n';
    if (len && buf[len - 1] != '\n') n++;
    L.s          = malloc((n + 1) * sizeof *L.s);
    L.len        = malloc((n + 1) * sizeof *L.len);
    size_t start = 0;
    for (size_t i = 0; i <= len && L.n < n; i++) {
        if (i == len || buf[i] == '\n') {
            L.s[L.n]     = buf + start;
            L.len[L.n++] = i - start;
            start        = i + 1;
        }
    }
    return L;
}

static void free_lines(lines *L) {
    free(L->s);
    free(L->len);
}

static uint32_t fnv32(const int32_t *ids, size_t n) {
    uint32_t h = 0x811C9DC5u;
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 4; b++)
            h = (h ^ (((uint32_t)ids[i] >> (8 * b)) & 0xFF)) * 0x01000193u;
    return h;
}

/* one record of an expected file: "COUNT HASH[ : id id ...]" */
typedef struct {
    size_t   count;
    uint32_t hash;
    int32_t *ids; /* NULL when only the digest is stored */
} record;

static record *read_expected(const char *name, size_t *n_rec) {
    char   path[512];
    size_t len;
    snprintf(path, sizeof path, DATA "expected/%s", name);
    char *buf = gz_read(path, &len);
    if (!buf) {
        fprintf(stderr, "\n  cannot read %s (run from the repository root)\n", path);
        return NULL;
    }
    lines   L   = split_lines(buf, len);
    record *rec = calloc(L.n + 1, sizeof *rec);
    for (size_t i = 0; i < L.n; i++) {
        L.s[i][L.len[i]] = 0;
        char *p          = L.s[i];
        rec[i].count     = strtoul(p, &p, 10);
        rec[i].hash      = (uint32_t)strtoul(p, &p, 16);
        if ((p = strchr(p, ':')) != NULL) {
            rec[i].ids = malloc((rec[i].count + 1) * sizeof(int32_t));
            for (size_t k = 0; k < rec[i].count; k++)
                rec[i].ids[k] = (int32_t)strtol(p + 1, &p, 10);
        }
    }
    *n_rec = L.n;
    free_lines(&L);
    free(buf);
    return rec;
}

static void free_expected(record *r, size_t n) {
    for (size_t i = 0; r && i < n; i++)
        free(r[i].ids);
    free(r);
}

static void print_ids(const char *label, const int32_t *ids, size_t n) {
    fprintf(stderr, "    %s (%zu):", label, n);
    for (size_t i = 0; i < n && i < 40; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

/* does `got` match the record? prints the first few mismatches */
static bool check_record(const char *what, size_t line, const record *r, const int32_t *got, size_t n,
                         int *n_reported) {
    const bool ok = n == r->count && fnv32(got, n) == r->hash &&
                    (!r->ids || (n == r->count && memcmp(got, r->ids, n * sizeof *got) == 0));
    if (!ok && (*n_reported)++ < 3) {
        fprintf(stderr, "\n  %s line %zu: expected %zu ids (hash %08x), got %zu (hash %08x)\n", what, line + 1,
                r->count, r->hash, n, fnv32(got, n));
        if (r->ids) print_ids("expected", r->ids, r->count);
        print_ids("got", got, n);
    }
    return ok;
}

static size_t encode(const lq_tokenizer *t, const char *s, size_t n, bool bos) {
    size_t          k  = 0;
    const lq_status st = lq_tokenizer_encode(t, s, n, bos, g_ids, MAX_IDS, &k);
    CU_ASSERT_EQUAL(st, LQ_OK);
    return st == LQ_OK ? k : 0;
}

/* collapse runs of ' ' and strip them at both ends (spm's remove_extra_whitespaces) */
static size_t collapse_spaces(const char *s, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ' && (o == 0 || out[o - 1] == ' ')) continue;
        out[o++] = s[i];
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    return o;
}

/* every line of text through t, against the expected records; returns lines matched */
static size_t check_lines(const lq_tokenizer *t, const lines *L, const char *expected, bool spm_collapse,
                          double *secs) {
    size_t  n_rec = 0, ok = 0;
    record *rec = read_expected(expected, &n_rec);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
    CU_ASSERT_EQUAL(n_rec, L->n);
    int          reported = 0;
    char        *tmp      = malloc(1 << 16);
    const double t0       = now();
    for (size_t i = 0; i < L->n && i < n_rec; i++) {
        const char *s = L->s[i];
        size_t      n = L->len[i];
        if (spm_collapse && n < (1 << 16)) {
            n = collapse_spaces(s, n, tmp);
            s = tmp;
        }
        const size_t k = encode(t, s, n, false);
        ok += check_record(expected, i, &rec[i], g_ids, k, &reported);
    }
    if (secs) *secs = now() - t0;
    free(tmp);
    free_expected(rec, n_rec);
    CU_ASSERT_EQUAL(ok, L->n);
    return ok;
}

static lines read_text(const char *path, char **buf) {
    size_t len = 0;
    *buf       = gz_read(path, &len);
    if (!*buf) {
        fprintf(stderr, "\n  cannot read %s\n", path);
        return (lines){0};
    }
    return split_lines(*buf, len);
}

static bool have_spm_encode(void) { return system("command -v spm_encode >/dev/null 2>&1") == 0; }

/* spm_encode on every line of `text_path`: the ids of line i must equal ours */
static size_t check_spm_encode_live(const lq_tokenizer *t, const char *model, const char *text_path, const lines *L) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "spm_encode --model='%s' --output_format=id < '%s'", model, text_path);
    FILE *p = popen(cmd, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    char    *line = NULL;
    size_t   cap = 0, i = 0, ok = 0;
    ssize_t  r;
    int      reported = 0;
    int32_t *want     = malloc(MAX_IDS * sizeof *want);
    while ((r = getline(&line, &cap, p)) >= 0 && i < L->n) {
        size_t n = 0;
        char  *q = line;
        for (;;) {
            char *e;
            long  v = strtol(q, &e, 10);
            if (e == q) break;
            if (n < MAX_IDS) want[n++] = (int32_t)v;
            q = e;
        }
        const size_t k    = encode(t, L->s[i], L->len[i], false);
        const bool   same = k == n && memcmp(g_ids, want, n * sizeof *want) == 0;
        if (!same && reported++ < 3) {
            fprintf(stderr, "\n  spm_encode vs ours, %s line %zu:\n", text_path, i + 1);
            print_ids("spm_encode", want, n);
            print_ids("ours", g_ids, k);
        }
        ok += same;
        i++;
    }
    free(line);
    free(want);
    CU_ASSERT_EQUAL(pclose(p), 0);
    CU_ASSERT_EQUAL(i, L->n);
    CU_ASSERT_EQUAL(ok, L->n);
    return ok;
}

static lq_tokenizer *open_or_fail(const char *path, int32_t vocab) {
    lq_tokenizer   *t  = NULL;
    const lq_status st = lq_tokenizer_open(path, vocab, &t);
    if (st != LQ_OK) fprintf(stderr, "\n  cannot open %s: %s\n", path, lq_status_str(st));
    return t;
}

/* open from a gzip'ed file through lq_tokenizer_open_mem */
static lq_tokenizer *open_gz(const char *path) {
    size_t        len;
    char         *buf = gz_read(path, &len);
    lq_tokenizer *t   = NULL;
    if (buf) CU_ASSERT_EQUAL(lq_tokenizer_open_mem(buf, len, 0, &t), LQ_OK);
    free(buf);
    return t;
}

/* ---- SentencePiece vs spm_encode ---- */

static void test_tokenizer_spm_matches_spm_encode(void) {
    const char *model = lq_test_shared("stories260K/tok512.model");
    char        model_path[1024];
    snprintf(model_path, sizeof model_path, "%s", model);
    lq_tokenizer *t = open_or_fail(model_path, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(lq_tokenizer_kind(t), LQ_TOK_SENTENCEPIECE);
    CU_ASSERT_EQUAL(lq_tokenizer_vocab_size(t), 512);
    CU_ASSERT_EQUAL(lq_tokenizer_bos(t), 1);
    CU_ASSERT_EQUAL(lq_tokenizer_eos(t), 2);
    const bool live = have_spm_encode();
    if (!live) fprintf(stderr, "\n  spm_encode not installed: comparing with the frozen ids only\n");
    static const struct {
        const char *file, *expected;
    } files[] = {{"tinystories/tinystories_train_excerpt.txt", "tok512_tinystories.ids.gz"},
                 {"wikitext-2/wiki.test.lf.txt", "tok512_wikitext.ids.gz"}};
    for (size_t f = 0; f < 2; f++) {
        char path[1024], *buf;
        snprintf(path, sizeof path, "%s", lq_test_shared(files[f].file));
        lines        L = read_text(path, &buf);
        double       secs;
        const size_t ok = check_lines(t, &L, files[f].expected, false, &secs);
        fprintf(stderr, "\n  tok512.model %s: %zu/%zu lines = frozen spm_encode ids (%.3f s)", files[f].file, ok, L.n,
                secs);
        if (live) {
            const size_t ok2 = check_spm_encode_live(t, model_path, path, &L);
            fprintf(stderr, "; %zu/%zu = spm_encode now", ok2, L.n);
        }
        free_lines(&L);
        free(buf);
    }
    /* the stress text (scripts, marks, odd whitespace, emoji) */
    char *buf;
    lines L = read_text(DATA "stress.txt.gz", &buf);
    check_lines(t, &L, "tok512_stress.ids.gz", false, NULL);
    free_lines(&L);
    free(buf);
    lq_tokenizer_free(t);
    fprintf(stderr, "\n");
}

/* USER_DEFINED / UNUSED / CONTROL pieces; no byte fallback (unknown runs fuse into one <unk>) */
static void test_tokenizer_spm_piece_types(void) {
    static const char *models[] = {"ud", "nofb"};
    char              *tbuf, *sbuf, path[1024], tiny[1024];
    snprintf(tiny, sizeof tiny, "%s", lq_test_shared("tinystories/tinystories_train_excerpt.txt"));
    lines T = read_text(tiny, &tbuf), S = read_text(DATA "stress.txt.gz", &sbuf);
    for (int m = 0; m < 2; m++) {
        snprintf(path, sizeof path, DATA "tok512_%s.model", models[m]);
        lq_tokenizer *t = open_or_fail(path, 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        char exp[128];
        snprintf(exp, sizeof exp, "tok512_%s_tinystories.ids.gz", models[m]);
        check_lines(t, &T, exp, false, NULL);
        snprintf(exp, sizeof exp, "tok512_%s_stress.ids.gz", models[m]);
        check_lines(t, &S, exp, false, NULL);
        if (have_spm_encode()) check_spm_encode_live(t, path, tiny, &T);
        lq_tokenizer_free(t);
    }
    free_lines(&T);
    free_lines(&S);
    free(tbuf);
    free(sbuf);
}

/* ---- llama2.c tokenizer.bin ---- */

static void test_tokenizer_llama2c_reference_ids(void) {
    lq_tokenizer *t = open_or_fail(lq_test_shared("stories260K/tok512.bin"), 512);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(lq_tokenizer_kind(t), LQ_TOK_LLAMA2C);
    CU_ASSERT_EQUAL(lq_tokenizer_bos(t), 1);
    CU_ASSERT_EQUAL(lq_tokenizer_eos(t), 2);
    /* REFERENCE.md §9 */
    static const int32_t once[]  = {1, 403, 407, 261, 378};
    static const int32_t fox[]   = {1,   385, 328, 432, 261, 280, 305, 330, 272, 414, 444, 272,
                                    277, 264, 261, 262, 415, 271, 422, 410, 354, 422, 318, 264,
                                    285, 265, 334, 341, 334, 412, 433, 259, 276, 411, 426};
    static const int32_t hello[] = {1, 270, 485, 306, 414, 410, 233, 154, 168, 233, 159, 175};
    static const struct {
        const char    *text;
        const int32_t *ids;
        size_t         n;
    } cases[] = {{"Once upon a time", once, 5},
                 {"One day, a clever fox found a shiny key under the old oak tree.", fox, 35},
                 {"h\xC3\xA9llo \xE6\x97\xA5\xE6\x9C\xAC", hello, 12}};
    for (size_t c = 0; c < 3; c++) {
        const size_t k = encode(t, cases[c].text, strlen(cases[c].text), true);
        CU_ASSERT_EQUAL(k, cases[c].n);
        CU_ASSERT_EQUAL(memcmp(g_ids, cases[c].ids, cases[c].n * sizeof(int32_t)), 0);
    }
    CU_ASSERT_STRING_EQUAL(lq_tokenizer_piece(t, 410), " ");
    /* decode(encode(x)) == x on every TinyStories line, and the llama2.c
     * encoder agrees with spm_encode wherever spm would not collapse spaces */
    char   *buf;
    lines   L = read_text(lq_test_shared("tinystories/tinystories_train_excerpt.txt"), &buf);
    size_t  n_rec;
    record *rec = read_expected("tok512_tinystories.ids.gz", &n_rec);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
    size_t round = 0, same_as_spm = 0, comparable = 0;
    char  *out = malloc(1 << 16);
    for (size_t i = 0; i < L.n; i++) {
        const size_t k = encode(t, L.s[i], L.len[i], true);
        size_t       o = 0;
        for (size_t j = 1; j < k; j++) {
            const int m = lq_tokenizer_decode_piece(t, g_ids[j - 1], g_ids[j], out + o, (1 << 16) - o);
            CU_ASSERT(m >= 0);
            if (m > 0) o += (size_t)m;
        }
        round += o == L.len[i] && memcmp(out, L.s[i], o) == 0;
        const bool extra_ws = L.len[i] == 0 || L.s[i][0] == ' ' || L.s[i][L.len[i] - 1] == ' ' ||
                              memmem(L.s[i], L.len[i], "  ", 2) != NULL;
        if (!extra_ws && i < n_rec) {
            comparable++;
            int rep = 0;
            same_as_spm += check_record("llama2.c vs spm", i, &rec[i], g_ids + 1, k - 1, &rep);
        }
    }
    fprintf(stderr, "\n  tok512.bin: %zu/%zu TinyStories lines round-trip; %zu/%zu = spm_encode\n", round, L.n,
            same_as_spm, comparable);
    CU_ASSERT_EQUAL(round, L.n);
    CU_ASSERT_EQUAL(same_as_spm, comparable);
    free(out);
    free_expected(rec, n_rec);
    free_lines(&L);
    free(buf);
    lq_tokenizer_free(t);
}

/* ---- Hugging Face tokenizer.json ---- */

static void test_tokenizer_hf_gpt2_matches_tokenizers(void) {
    const double  t0 = now();
    lq_tokenizer *t  = open_or_fail(lq_test_shared("lora/gpt2-tigrinya-lora/tokenizer.json"), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    const double t_open = now() - t0;
    CU_ASSERT_EQUAL(lq_tokenizer_kind(t), LQ_TOK_HF_BPE);
    CU_ASSERT_EQUAL(lq_tokenizer_vocab_size(t), 50257);
    CU_ASSERT_EQUAL(lq_tokenizer_eos(t), 50256);
    char  *buf;
    double secs;
    lines  L  = read_text(lq_test_shared("wikitext-2/wiki.test.lf.txt"), &buf);
    size_t ok = check_lines(t, &L, "gpt2_wikitext.ids.gz", false, &secs);
    fprintf(stderr, "\n  gpt2 tokenizer.json (open %.3f s): WikiText %zu/%zu lines = tokenizers (%.3f s)", t_open, ok,
            L.n, secs);
    /* decode is lossless for byte-level BPE */
    size_t round = 0;
    char  *out   = malloc(1 << 16);
    for (size_t i = 0; i < L.n; i++) {
        const size_t k = encode(t, L.s[i], L.len[i], false);
        size_t       o = 0;
        for (size_t j = 0; j < k; j++) {
            const int m = lq_tokenizer_decode_piece(t, j ? g_ids[j - 1] : -1, g_ids[j], out + o, (1 << 16) - o);
            if (m > 0) o += (size_t)m;
        }
        round += o == L.len[i] && memcmp(out, L.s[i], o) == 0;
    }
    CU_ASSERT_EQUAL(round, L.n);
    free(out);
    free_lines(&L);
    free(buf);
    /* the whole TinyStories file as one string */
    size_t len, n_rec;
    buf         = gz_read(lq_test_shared("tinystories/tinystories_train_excerpt.txt"), &len);
    record *rec = read_expected("gpt2_tinystories_whole.ids.gz", &n_rec);
    CU_ASSERT_FATAL(buf != NULL && rec != NULL && n_rec == 1);
    const size_t k = encode(t, buf, len, false);
    CU_ASSERT_EQUAL(k, rec[0].count);
    CU_ASSERT_EQUAL(fnv32(g_ids, k), rec[0].hash);
    CU_ASSERT_EQUAL(memcmp(g_ids, rec[0].ids, 1000 * sizeof(int32_t)), 0); /* ids[] holds the first 1000 */
    fprintf(stderr, "; TinyStories as one string: %zu ids %s\n", k, k == rec[0].count ? "match" : "DIFFER");
    free_expected(rec, n_rec);
    free(buf);
    lines S = read_text(DATA "stress.txt.gz", &buf);
    check_lines(t, &S, "gpt2_stress.ids.gz", false, NULL);
    free_lines(&S);
    free(buf);
    /* added tokens are split out first; ill-formed UTF-8 reads as U+FFFD */
    static const int32_t eot[] = {64, 50256, 65}, hello[] = {15496, 995, 50256, 632, 338, 48609, 0};
    CU_ASSERT_EQUAL(encode(t, "a<|endoftext|>b", 15, false), 3);
    CU_ASSERT_EQUAL(memcmp(g_ids, eot, sizeof eot), 0);
    const char *s = "Hello world<|endoftext|> It's 2024!";
    CU_ASSERT_EQUAL(encode(t, s, strlen(s), false), 7);
    CU_ASSERT_EQUAL(memcmp(g_ids, hello, sizeof hello), 0);
    CU_ASSERT_EQUAL(lq_tokenizer_decode_piece(t, -1, 50256, (char[8]){0}, 8), 0); /* special: "" */
    lq_tokenizer_free(t);
}

/* the GPT-2 file with `pattern` as a Split pre-tokenizer (the same text
 * surgery as make_expected.py's gpt2_variant) */
static char *variant_json(const char *src, size_t len, const char *pattern, bool nfc, bool ignore_merges,
                          size_t *out_len) {
    const char *a = strstr(src, "\"pre_tokenizer\": {");
    const char *b = a ? strstr(a, "},") : NULL;
    if (!a || !b) return NULL;
    b += 2;
    char *esc = malloc(strlen(pattern) * 2 + 1), *e = esc;
    for (const char *p = pattern; *p; p++) {
        if (*p == '\\' || *p == '"') *e++ = '\\';
        *e++ = *p;
    }
    *e        = 0;
    char *pre = malloc(strlen(esc) + 512);
    sprintf(pre,
            "\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
            "{\"Regex\": \"%s\"}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", "
            "\"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": false}]},",
            esc);
    char  *out = malloc(len + strlen(pre) + 64);
    size_t o   = 0;
    memcpy(out, src, (size_t)(a - src));
    o += (size_t)(a - src);
    memcpy(out + o, pre, strlen(pre));
    o += strlen(pre);
    memcpy(out + o, b, len - (size_t)(b - src));
    o += len - (size_t)(b - src);
    out[o] = 0;
    free(esc);
    free(pre);
    static const struct {
        const char *from, *to;
    } subst[2] = {{"\"normalizer\": null,", "\"normalizer\": {\"type\": \"NFC\"},"},
                  {"\"ignore_merges\": false", "\"ignore_merges\": true "}};
    for (int k = 0; k < 2; k++) {
        if ((k == 0 && !nfc) || (k == 1 && !ignore_merges)) continue;
        char *p = strstr(out, subst[k].from);
        if (!p) continue;
        const size_t fl = strlen(subst[k].from), tl = strlen(subst[k].to);
        char        *n2 = malloc(o + tl + 1);
        memcpy(n2, out, (size_t)(p - out));
        memcpy(n2 + (p - out), subst[k].to, tl);
        memcpy(n2 + (p - out) + tl, p + fl, o - (size_t)(p - out) - fl + 1);
        o = o - fl + tl;
        free(out);
        out = n2;
    }
    *out_len = o;
    return out;
}

/* GPT-2's vocabulary under the Llama-3, Qwen2 (with NFC) and o200k split regexes */
static void test_tokenizer_hf_regex_variants(void) {
    size_t len, plen;
    char  *src = gz_read(lq_test_shared("lora/gpt2-tigrinya-lora/tokenizer.json"), &len);
    char  *pat = gz_read(DATA "regex_patterns.txt", &plen);
    CU_ASSERT_FATAL(src != NULL && pat != NULL);
    char *wbuf, *sbuf;
    lines W = read_text(lq_test_shared("wikitext-2/wiki.test.lf.txt"), &wbuf);
    lines S = read_text(DATA "stress.txt.gz", &sbuf);
    lines P = split_lines(pat, plen);
    for (size_t i = 0; i < P.n; i++) {
        if (P.len[i] == 0 || P.s[i][0] == '#') continue;
        P.s[i][P.len[i]] = 0;
        char *tab        = strchr(P.s[i], '\t');
        CU_ASSERT_PTR_NOT_NULL_FATAL(tab);
        *tab             = 0;
        const char *name = P.s[i], *re = tab + 1;
        size_t      vlen = 0;
        char       *js   = variant_json(src, len, re, strcmp(name, "qwen2") == 0, strcmp(name, "llama3") == 0, &vlen);
        CU_ASSERT_PTR_NOT_NULL_FATAL(js);
        lq_tokenizer *t = NULL;
        CU_ASSERT_EQUAL_FATAL(lq_tokenizer_open_mem(js, vlen, 0, &t), LQ_OK);
        free(js);
        char   exp[128];
        double secs;
        snprintf(exp, sizeof exp, "gpt2_%s_wikitext.ids.gz", name);
        const size_t ok = check_lines(t, &W, exp, false, &secs);
        snprintf(exp, sizeof exp, "gpt2_%s_stress.ids.gz", name);
        const size_t ok2 = check_lines(t, &S, exp, false, NULL);
        fprintf(stderr, "\n  gpt2 + %s regex: WikiText %zu/%zu (%.3f s), stress %zu/%zu lines = tokenizers", name, ok,
                W.n, secs, ok2, S.n);
        lq_tokenizer_free(t);
    }
    fprintf(stderr, "\n");
    free_lines(&P);
    free_lines(&W);
    free_lines(&S);
    free(pat);
    free(src);
    free(wbuf);
    free(sbuf);
}

/* Llama-2 style tokenizer.json built from tok512's pieces = the SentencePiece model */
static void test_tokenizer_hf_llama2_style(void) {
    char              *buf;
    lines              L       = read_text(lq_test_shared("tinystories/tinystories_train_excerpt.txt"), &buf);
    static const char *kinds[] = {"legacy", "metaspace"};
    for (int k = 0; k < 2; k++) {
        char path[256];
        snprintf(path, sizeof path, DATA "tok512_%s.json.gz", kinds[k]);
        lq_tokenizer *t = open_gz(path);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        CU_ASSERT_EQUAL(lq_tokenizer_bos(t), 1);
        CU_ASSERT_EQUAL(lq_tokenizer_eos(t), 2);
        const size_t ok = check_lines(t, &L, "tok512_tinystories.ids.gz", true, NULL);
        fprintf(stderr, "\n  tok512_%s.json: %zu/%zu TinyStories lines = spm_encode", kinds[k], ok, L.n);
        /* special tokens in the text (ids from tokenizers) */
        static const int32_t legacy[] = {1, 281, 306, 414, 1, 263, 304, 341};
        static const int32_t meta[]   = {1, 281, 306, 414, 1, 424, 304, 341};
        CU_ASSERT_EQUAL(encode(t, "hello<s>world", 13, true), 8);
        CU_ASSERT_EQUAL(memcmp(g_ids, k == 0 ? legacy : meta, sizeof legacy), 0);
        /* decode: BOS + "Once upon a time" */
        const size_t n = encode(t, "Once upon a time", 16, true);
        char         out[64];
        size_t       o = 0;
        for (size_t j = 1; j < n; j++) {
            const int m = lq_tokenizer_decode_piece(t, g_ids[j - 1], g_ids[j], out + o, sizeof out - o);
            if (m > 0) o += (size_t)m;
        }
        CU_ASSERT(o == 16 && memcmp(out, "Once upon a time", 16) == 0);
        lq_tokenizer_free(t);
    }
    fprintf(stderr, "\n");
    free_lines(&L);
    free(buf);
}

/* added tokens with single_word / lstrip / rstrip / normalized, NFC,
 * ignore_merges and the Llama-3 regex on a tiny byte-level vocabulary (the
 * fuzz seed, after its mode byte) */
static void test_tokenizer_hf_added_tokens(void) {
    size_t len;
    char  *js = gz_read("tests/fuzz/corpus/tokenizer/byte_level_llama3_json", &len);
    CU_ASSERT_FATAL(js != NULL && len > 1);
    lq_tokenizer *t = NULL;
    CU_ASSERT_EQUAL_FATAL(lq_tokenizer_open_mem(js + 1, len - 1, 0, &t), LQ_OK);
    free(js);
    char        *buf;
    lines        L  = read_text(DATA "stress.txt.gz", &buf);
    const size_t ok = check_lines(t, &L, "byte_level_added_stress.ids.gz", false, NULL);
    fprintf(stderr, "\n  byte-level + added tokens: stress %zu/%zu lines = tokenizers\n", ok, L.n);
    free_lines(&L);
    free(buf);
    lq_tokenizer_free(t);
}

/* ---- API contract ---- */

static void test_tokenizer_small_buffer_and_empty_text(void) {
    lq_tokenizer *t[3] = {open_or_fail(lq_test_shared("stories260K/tok512.model"), 0),
                          open_or_fail(lq_test_shared("stories260K/tok512.bin"), 512),
                          open_or_fail(lq_test_shared("lora/gpt2-tigrinya-lora/tokenizer.json"), 0)};
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(t[i]);
        size_t      need = 0, k = 0;
        int32_t     ids[64];
        const char *s = "Once upon a time there was a fox.";
        CU_ASSERT_EQUAL(lq_tokenizer_encode(t[i], s, strlen(s), true, NULL, 0, &need), LQ_ERR_INVALID_ARG);
        CU_ASSERT(need > 2 && need < 64);
        CU_ASSERT_EQUAL(lq_tokenizer_encode(t[i], s, strlen(s), true, ids, need - 1, &k), LQ_ERR_INVALID_ARG);
        CU_ASSERT_EQUAL(k, need);
        CU_ASSERT_EQUAL(lq_tokenizer_encode(t[i], s, strlen(s), true, ids, need, &k), LQ_OK);
        CU_ASSERT_EQUAL(k, need);
        /* empty text: nothing, or BOS alone */
        CU_ASSERT_EQUAL(lq_tokenizer_encode(t[i], "", 0, false, ids, 64, &k), LQ_OK);
        CU_ASSERT_EQUAL(k, 0);
        CU_ASSERT_EQUAL(lq_tokenizer_encode(t[i], NULL, 0, true, ids, 64, &k), LQ_OK);
        CU_ASSERT_EQUAL(k, lq_tokenizer_bos(t[i]) >= 0 ? 1u : 0u);
        if (k == 1) CU_ASSERT_EQUAL(ids[0], lq_tokenizer_bos(t[i]));
        /* only spaces: SentencePiece strips them */
        CU_ASSERT_EQUAL(lq_tokenizer_encode(t[i], "   ", 3, false, ids, 64, &k), LQ_OK);
        if (i == 0) CU_ASSERT_EQUAL(k, 0);
        /* ids out of range */
        char piece[16];
        CU_ASSERT_EQUAL(lq_tokenizer_decode_piece(t[i], -1, -1, piece, sizeof piece), -1);
        CU_ASSERT_EQUAL(lq_tokenizer_decode_piece(t[i], -1, lq_tokenizer_vocab_size(t[i]), piece, sizeof piece), -1);
        CU_ASSERT_PTR_NULL(lq_tokenizer_piece(t[i], lq_tokenizer_vocab_size(t[i])));
        CU_ASSERT_EQUAL(lq_tokenizer_decode_piece(t[i], -1, lq_tokenizer_eos(t[i]), piece, sizeof piece), 0);
        lq_tokenizer_free(t[i]);
    }
    lq_tokenizer_free(NULL);
}

static void test_tokenizer_invalid_utf8(void) {
    lq_tokenizer *spm = open_or_fail(lq_test_shared("stories260K/tok512.model"), 0);
    lq_tokenizer *l2c = open_or_fail(lq_test_shared("stories260K/tok512.bin"), 512);
    lq_tokenizer *hf  = open_or_fail(lq_test_shared("lora/gpt2-tigrinya-lora/tokenizer.json"), 0);
    CU_ASSERT_FATAL(spm && l2c && hf);
    /* spm_encode 0.1.97 on these bytes: each ill-formed byte is U+FFFD,
     * which tok512 byte-falls back to EF BF BD */
    static const struct {
        const char *s;
        int32_t     spm[20], l2c[20];
    } cases[] = {
        {"a\xff"
         "b",
         {261, 242, 194, 192, 430, -1},
         {261, 258, 430, -1}},
        {"\xe6\x97", {410, 242, 194, 192, 242, 194, 192, -1}, {410, 233, 154, -1}},
        {"\xc0\xaf x", {410, 242, 194, 192, 242, 194, 192, 410, 444, -1}, {410, 195, 178, 410, 444, -1}},
        {"\xef\xbf\xbd", {410, 242, 194, 192, -1}, {410, 242, 194, 192, -1}},
        {"\x80\x80\x80\x80\x80 z",
         {410, 242, 194, 192, 242, 194, 192, 242, 194, 192, 242, 194, 192, 242, 194, 192, 410, 451, -1},
         {410, 131, 131, 131, 131, 131, 410, 451, -1}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const size_t n = strlen(cases[c].s);
        size_t       k = encode(spm, cases[c].s, n, false), m = 0;
        while (cases[c].spm[m] >= 0)
            m++;
        CU_ASSERT(k == m && memcmp(g_ids, cases[c].spm, m * sizeof(int32_t)) == 0);
        k = encode(l2c, cases[c].s, n, false);
        for (m = 0; cases[c].l2c[m] >= 0;)
            m++;
        CU_ASSERT(k == m && memcmp(g_ids, cases[c].l2c, m * sizeof(int32_t)) == 0);
    }
    /* tokenizer.json: ill-formed UTF-8 is what Python's errors="replace" makes of it */
    int32_t a[16];
    size_t  ka = encode(hf,
                        "a\xff"
                         "b",
                        3, false);
    CU_ASSERT_EQUAL(ka, 3);
    memcpy(a, g_ids, sizeof(int32_t) * 3);
    CU_ASSERT_EQUAL(encode(hf,
                           "a\xef\xbf\xbd"
                           "b",
                           5, false),
                    3);
    CU_ASSERT_EQUAL(memcmp(a, g_ids, 3 * sizeof(int32_t)), 0);
    CU_ASSERT_EQUAL(a[1], 4210);                          /* tokenizers: "\ufffd" -> 4210 */
    CU_ASSERT_EQUAL(encode(hf, "\xe6\x97", 2, false), 1); /* a truncated sequence is one U+FFFD */
    CU_ASSERT_EQUAL(g_ids[0], 4210);
    lq_tokenizer_free(spm);
    lq_tokenizer_free(l2c);
    lq_tokenizer_free(hf);
}

/* ---- hostile files ---- */

static lq_status open_bytes(const void *p, size_t n, int32_t vocab) {
    lq_tokenizer *t  = NULL;
    void         *cp = malloc(n ? n : 1); /* exactly sized: ASan sees any overread */
    if (n) memcpy(cp, p, n);
    const lq_status st = lq_tokenizer_open_mem(cp, n, vocab, &t);
    if (st == LQ_OK) {
        size_t k; /* whatever loaded must encode */
        CU_ASSERT(lq_tokenizer_encode(t, "hello world", 11, true, g_ids, MAX_IDS, &k) == LQ_OK);
    }
    CU_ASSERT_EQUAL(st == LQ_OK, t != NULL);
    lq_tokenizer_free(t);
    free(cp);
    return st;
}

/* a tiny protobuf writer for synthetic models */
typedef struct {
    uint8_t b[4096];
    size_t  n;
} pbuf;

static void pb_raw(pbuf *p, const void *s, size_t n) {
    memcpy(p->b + p->n, s, n);
    p->n += n;
}
static void pb_varint(pbuf *p, uint64_t v) {
    do {
        p->b[p->n++] = (uint8_t)((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
        v >>= 7;
    } while (v);
}
static void pb_key(pbuf *p, unsigned f, unsigned wt) { pb_varint(p, (uint64_t)f << 3 | wt); }
static void pb_bytes(pbuf *p, unsigned f, const void *s, size_t n) {
    pb_key(p, f, 2);
    pb_varint(p, n);
    pb_raw(p, s, n);
}
static void pb_piece(pbuf *p, const char *s, float score, int type) {
    pbuf q = {.n = 0};
    pb_bytes(&q, 1, s, strlen(s));
    pb_key(&q, 2, 5);
    pb_raw(&q, &score, 4);
    pb_key(&q, 3, 0);
    pb_varint(&q, (uint64_t)type);
    pb_bytes(p, 1, q.b, q.n);
}
/* a valid BPE model: <unk> a b ab, then the given extra raw trainer fields */
static void pb_model(pbuf *p, int model_type, const char *charsmap) {
    pb_piece(p, "<unk>", 0, 2);
    pb_piece(p, "<s>", 0, 3);
    pb_piece(p, "</s>", 0, 3);
    pb_piece(p, "a", -1, 1);
    pb_piece(p, "b", -2, 1);
    pb_piece(p, "ab", 0, 1);
    pb_piece(p, "\xE2\x96\x81", -3, 1);
    pbuf tr = {.n = 0};
    pb_key(&tr, 3, 0);
    pb_varint(&tr, (uint64_t)model_type);
    pbuf nm = {.n = 0};
    pb_bytes(&nm, 1, "identity", 8);
    if (charsmap) pb_bytes(&nm, 2, charsmap, strlen(charsmap));
    pb_bytes(p, 2, tr.b, tr.n);
    pb_bytes(p, 3, nm.b, nm.n);
}

static void test_tokenizer_hostile_sentencepiece(void) {
    lq_test_quiet(1);
    /* the synthetic model works */
    pbuf p = {.n = 0};
    pb_model(&p, 2, NULL);
    lq_tokenizer *t = NULL;
    CU_ASSERT_EQUAL_FATAL(lq_tokenizer_open_mem(p.b, p.n, 0, &t), LQ_OK);
    size_t k;
    CU_ASSERT_EQUAL(lq_tokenizer_encode(t, "ab ba", 5, false, g_ids, 16, &k), LQ_OK);
    /* "▁ab▁ba": ▁ a b ▁ b a -> ▁ ab ▁ b a */
    CU_ASSERT(k == 5 && g_ids[0] == 6 && g_ids[1] == 5 && g_ids[2] == 6 && g_ids[3] == 4 && g_ids[4] == 3);
    lq_tokenizer_free(t);
    /* every strict prefix of tok512.model is refused */
    size_t   len;
    uint8_t *m = lq_test_read_file(lq_test_shared("stories260K/tok512.model"), &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    /* (a prefix that stops right before the NormalizerSpec, field 3, is a
     * complete model with the default normalizer) */
    int bad = 0;
    for (size_t n = 0; n < len; n += (n < 64 || n > len - 40 ? 1 : 13)) {
        const lq_status st = open_bytes(m, n, 0);
        bad += !(st == LQ_ERR_FORMAT || st == LQ_ERR_UNSUPPORTED || (st == LQ_OK && m[n] == 0x1A));
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(open_bytes(m, len, 0), LQ_OK);
    /* random byte flips never crash (results vary) */
    uint64_t seed = 42;
    for (int i = 0; i < 300; i++) {
        uint8_t *c = malloc(len);
        memcpy(c, m, len);
        for (int f = 0; f < 1 + i % 4; f++)
            c[lq_test_rand(&seed) % len] ^= (uint8_t)(1 + lq_test_rand(&seed) % 255);
        (void)open_bytes(c, len, 0);
        free(c);
    }
    free(m);
    /* hand-made damage */
    static const uint8_t varint11[]   = {0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01};
    static const uint8_t varint_ovf[] = {0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F};
    static const uint8_t huge_len[]   = {0x0A, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00};
    static const uint8_t len_past[]   = {0x0A, 0x05, 0x0A, 0x01, 0x61};
    static const uint8_t group[]      = {0x0A, 0x02, 0x0B, 0x0C};
    static const uint8_t field0[]     = {0x0A, 0x02, 0x02, 0x00};
    static const uint8_t score_wt[]   = {0x0A, 0x05, 0x0A, 0x01, 0x61, 0x10, 0x01};
    CU_ASSERT_EQUAL(open_bytes(varint11, sizeof varint11, 0), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(open_bytes(varint_ovf, sizeof varint_ovf, 0), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(open_bytes(huge_len, sizeof huge_len, 0), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(open_bytes(len_past, sizeof len_past, 0), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(open_bytes(group, sizeof group, 0), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(open_bytes(field0, sizeof field0, 0), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(open_bytes(score_wt, sizeof score_wt, 0), LQ_ERR_FORMAT);
    /* semantic checks */
    p.n = 0;
    pb_model(&p, 1, NULL); /* Unigram */
    CU_ASSERT_EQUAL(open_bytes(p.b, p.n, 0), LQ_ERR_UNSUPPORTED);
    CU_ASSERT(strstr(lq_test_last_error(), "Unigram") != NULL);
    p.n = 0;
    pb_model(&p, 2, "\x10\x00\x00\x00xxxx"); /* nmt_nfkc-style charsmap */
    CU_ASSERT_EQUAL(open_bytes(p.b, p.n, 0), LQ_ERR_UNSUPPORTED);
    p.n = 0;
    pb_piece(&p, "a", 0, 1);
    pb_piece(&p, "a", 0, 1); /* duplicate */
    pb_model(&p, 2, NULL);
    CU_ASSERT_EQUAL(open_bytes(p.b, p.n, 0), LQ_ERR_FORMAT);
    p.n = 0;
    pb_piece(&p, "", 0, 1); /* empty piece */
    pb_model(&p, 2, NULL);
    CU_ASSERT_EQUAL(open_bytes(p.b, p.n, 0), LQ_ERR_FORMAT);
    p.n = 0;
    pb_piece(&p, "<0x41>", 0, 6); /* byte piece without byte_fallback */
    pb_model(&p, 2, NULL);
    CU_ASSERT_EQUAL(open_bytes(p.b, p.n, 0), LQ_ERR_FORMAT);
    p.n = 0;
    pb_piece(&p, "x", 0, 9); /* unknown type */
    pb_model(&p, 2, NULL);
    CU_ASSERT_EQUAL(open_bytes(p.b, p.n, 0), LQ_ERR_FORMAT);
    p.n = 0;
    pb_piece(&p, "<unk2>", 0, 2); /* a second unknown piece */
    pb_model(&p, 2, NULL);
    CU_ASSERT_EQUAL(open_bytes(p.b, p.n, 0), LQ_ERR_FORMAT);
    lq_test_quiet(0);
}

static void test_tokenizer_hostile_llama2c(void) {
    lq_test_quiet(1);
    size_t   len;
    uint8_t *m = lq_test_read_file(lq_test_shared("stories260K/tok512.bin"), &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    int bad = 0;
    for (size_t n = 0; n < len; n += 7)
        bad += open_bytes(m, n, 512) != LQ_ERR_FORMAT;
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(open_bytes(m, len, 512), LQ_OK);
    CU_ASSERT_EQUAL(open_bytes(m, len, 511), LQ_ERR_FORMAT); /* bytes left over */
    CU_ASSERT_EQUAL(open_bytes(m, len, 513), LQ_ERR_FORMAT);
    CU_ASSERT(strstr(lq_test_last_error(), "truncated") != NULL);
    CU_ASSERT_EQUAL(open_bytes(m, len, 0), LQ_ERR_FORMAT); /* vocab_size needed */
    uint8_t *c = malloc(len);
    memcpy(c, m, len);
    memcpy(c + 8, "\xFF\xFF\xFF\xFF", 4); /* token 0: length -1 */
    CU_ASSERT_EQUAL(open_bytes(c, len, 512), LQ_ERR_FORMAT);
    memcpy(c + 8, "\x00\x00\x00\x40", 4); /* token 0: length 1 GiB */
    CU_ASSERT_EQUAL(open_bytes(c, len, 512), LQ_ERR_FORMAT);
    free(c);
    free(m);
    /* a tiny vocabulary: byte fallback ids past the end become 0, no " " piece */
    static const uint8_t tiny[] = {1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 'a', 0, 0, 0x80, 0xBF, 1, 0, 0, 0, 'b'};
    lq_tokenizer        *t      = NULL;
    CU_ASSERT_EQUAL_FATAL(lq_tokenizer_open_mem(tiny, sizeof tiny, 2, &t), LQ_OK);
    size_t k;
    CU_ASSERT_EQUAL(lq_tokenizer_encode(t, "abz", 3, false, g_ids, 16, &k), LQ_OK);
    CU_ASSERT(k == 3 && g_ids[0] == 0 && g_ids[1] == 1 && g_ids[2] == 0);
    lq_tokenizer_free(t);
    lq_test_quiet(0);
}

static void test_tokenizer_hostile_json(void) {
    lq_test_quiet(1);
    static const struct {
        const char *js;
        lq_status   want;
    } cases[] = {
        {"{", LQ_ERR_FORMAT},
        {"{}", LQ_ERR_FORMAT},
        {"[1]", LQ_ERR_FORMAT},
        {"{\"model\": 1}", LQ_ERR_FORMAT},
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", LQ_ERR_UNSUPPORTED},
        {"{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", LQ_ERR_UNSUPPORTED},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": [], \"merges\": []}}", LQ_ERR_FORMAT},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}", LQ_ERR_FORMAT},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}", LQ_ERR_FORMAT},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a  b\"]}}",
         LQ_ERR_FORMAT},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [[\"a\"]]}}",
         LQ_ERR_FORMAT},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}}", LQ_ERR_FORMAT},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}}", LQ_ERR_FORMAT},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 99999999999}, \"merges\": []}}", LQ_ERR_FORMAT},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], \"unk_token\": \"<unk>\"}}",
         LQ_ERR_FORMAT},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], \"dropout\": 0.1}}",
         LQ_ERR_UNSUPPORTED},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], \"continuing_subword_prefix\": "
         "\"##\"}}",
         LQ_ERR_UNSUPPORTED},
        {"{\"normalizer\": {\"type\": \"NFKC\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": "
         "[]}}",
         LQ_ERR_UNSUPPORTED},
        {"{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(?<=a)b\"}, \"behavior\": "
         "\"Isolated\", \"invert\": false}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}",
         LQ_ERR_UNSUPPORTED},
        {"{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\p{Greek}+\"}, \"behavior\": "
         "\"Isolated\", \"invert\": false}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}",
         LQ_ERR_UNSUPPORTED},
        {"{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(a+)+\"}, \"behavior\": "
         "\"Isolated\", \"invert\": false}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}",
         LQ_ERR_UNSUPPORTED},
        {"{\"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": "
         "0}, \"merges\": []}}",
         LQ_ERR_UNSUPPORTED},
        {"{\"decoder\": {\"type\": \"WordPiece\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, "
         "\"merges\": []}}",
         LQ_ERR_UNSUPPORTED},
        {"{\"added_tokens\": [{\"id\": 5}], \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}",
         LQ_ERR_FORMAT},
        /* accepted: minimal files, tuple merges, a hole in the ids, NFC */
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 3}, \"merges\": [[\"a\", "
         "\"b\"]]}}",
         LQ_OK},
        {"{\"normalizer\": {\"type\": \"NFC\"}, \"model\": {\"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": "
         "[\"#version: 0.2\", \"a b\"]}}",
         LQ_OK},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const lq_status st = open_bytes(cases[i].js, strlen(cases[i].js), 0);
        if (st != cases[i].want)
            fprintf(stderr, "\n  case %zu: got %s, expected %s (%s)\n", i, lq_status_str(st),
                    lq_status_str(cases[i].want), lq_test_last_error());
        CU_ASSERT_EQUAL(st, cases[i].want);
    }
    /* truncations of a real tokenizer.json */
    size_t len;
    char  *js = gz_read(DATA "tok512_legacy.json.gz", &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(js);
    int bad = 0;
    for (size_t n = 0; n < len; n += 97)
        bad += open_bytes(js, n, 0) == LQ_OK;
    CU_ASSERT_EQUAL(bad, 0);
    free(js);
    /* a merge of unknown tokens names them */
    const char *u = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a zz\"]}}";
    CU_ASSERT_EQUAL(open_bytes(u, strlen(u), 0), LQ_ERR_FORMAT);
    CU_ASSERT(strstr(lq_test_last_error(), "zz") != NULL);
    lq_test_quiet(0);
}

static void copy_file(const char *from, const char *to) {
    size_t   n;
    uint8_t *b = lq_test_read_file(from, &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(lq_test_write_file(to, b, n), 0);
    free(b);
}

static void test_tokenizer_open_dir(void) {
    const char *dir = lq_test_tmpdir("tokdir");
    char        d[512], p[600];
    snprintf(d, sizeof d, "%s", dir);
    lq_tokenizer *t = NULL;
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_tokenizer_open_dir(d, &t), LQ_ERR_NOT_FOUND);
    lq_test_quiet(0);
    snprintf(p, sizeof p, "%s/tokenizer.model", d);
    copy_file(lq_test_shared("stories260K/tok512.model"), p);
    CU_ASSERT_EQUAL_FATAL(lq_tokenizer_open_dir(d, &t), LQ_OK);
    CU_ASSERT_EQUAL(lq_tokenizer_kind(t), LQ_TOK_SENTENCEPIECE);
    lq_tokenizer_free(t);
    snprintf(p, sizeof p, "%s/tokenizer.json", d);
    copy_file(lq_test_shared("lora/gpt2-tigrinya-lora/tokenizer.json"), p);
    CU_ASSERT_EQUAL_FATAL(lq_tokenizer_open_dir(d, &t), LQ_OK);
    CU_ASSERT_EQUAL(lq_tokenizer_kind(t), LQ_TOK_HF_BPE);
    CU_ASSERT_EQUAL(lq_tokenizer_bos(t), -1);
    lq_tokenizer_free(t);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", d);
    const char *cfg = "{\"bos_token\": \"<|endoftext|>\", \"eos_token\": {\"content\": \"<|endoftext|>\"}}";
    CU_ASSERT_EQUAL(lq_test_write_file(p, cfg, strlen(cfg)), 0);
    CU_ASSERT_EQUAL_FATAL(lq_tokenizer_open_dir(d, &t), LQ_OK);
    CU_ASSERT_EQUAL(lq_tokenizer_bos(t), 50256);
    CU_ASSERT_EQUAL(lq_tokenizer_eos(t), 50256);
    lq_tokenizer_free(t);
    /* kind detection needs vocab_size for a tokenizer.bin */
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_tokenizer_open(lq_test_shared("stories260K/tok512.bin"), 0, &t), LQ_ERR_FORMAT);
    CU_ASSERT_PTR_NULL(t);
    lq_test_quiet(0);
}

CU_pSuite lq_test_tokenizer_suite(void) {
    CU_pSuite s = lq_test_add_suite("tokenizer");
    LQ_ADD_TEST(s, test_tokenizer_spm_matches_spm_encode);
    LQ_ADD_TEST(s, test_tokenizer_spm_piece_types);
    LQ_ADD_TEST(s, test_tokenizer_llama2c_reference_ids);
    LQ_ADD_TEST(s, test_tokenizer_hf_gpt2_matches_tokenizers);
    LQ_ADD_TEST(s, test_tokenizer_hf_regex_variants);
    LQ_ADD_TEST(s, test_tokenizer_hf_llama2_style);
    LQ_ADD_TEST(s, test_tokenizer_hf_added_tokens);
    LQ_ADD_TEST(s, test_tokenizer_small_buffer_and_empty_text);
    LQ_ADD_TEST(s, test_tokenizer_invalid_utf8);
    LQ_ADD_TEST(s, test_tokenizer_hostile_sentencepiece);
    LQ_ADD_TEST(s, test_tokenizer_hostile_llama2c);
    LQ_ADD_TEST(s, test_tokenizer_hostile_json);
    LQ_ADD_TEST(s, test_tokenizer_open_dir);
    return s;
}
