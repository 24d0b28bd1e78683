/* test_safetensors.c : the reader's rules, the writer's layout, round trips,
 * sharding, and the malformed corpus in tests/data/bad. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "lq_internal.h"
#include "lq_test.h"

/* build a file image: 8-byte length, header text (padded to 8 with spaces if
 * pad), data */
static uint8_t *image(const char *hdr, int pad, const void *data, size_t n_data, size_t *len) {
    size_t h = strlen(hdr);
    size_t p = pad ? (8 - h % 8) % 8 : 0;
    *len     = 8 + h + p + n_data;
    uint8_t *b = malloc(*len);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((h + p) >> (8 * i));
    memcpy(b + 8, hdr, h);
    memset(b + 8 + h, ' ', p);
    if (n_data) memcpy(b + 8 + h + p, data, n_data);
    return b;
}

/* the handle borrows the image: it stays alive until the next call (or NULL hdr) */
static lq_status open_img(const char *hdr, const void *data, size_t n, lq_safetensors **st) {
    static uint8_t *keep;
    free(keep);
    keep = NULL;
    if (!hdr) return LQ_OK;
    size_t len;
    keep = image(hdr, 1, data, n, &len);
    return lq_safetensors_open_memory(keep, len, "mem", st);
}

static void test_safetensors_minimal_and_lookup(void) {
    const float     v[3] = {1, 2, 3};
    lq_safetensors *st;
    CU_ASSERT_EQUAL_FATAL(open_img("{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
                                   "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                                   v, sizeof v, &st),
                          LQ_OK);
    CU_ASSERT_EQUAL(lq_safetensors_count(st), 2);
    /* listed in data order, found by name */
    CU_ASSERT_STRING_EQUAL(lq_safetensors_tensor(st, 0)->name, "a");
    const lq_tensor_info *b = lq_safetensors_find(st, "b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(((const float *)b->data)[0], 3.f);
    CU_ASSERT_EQUAL(b->nbytes, 4);
    CU_ASSERT_PTR_NULL(lq_safetensors_find(st, "c"));
    CU_ASSERT_PTR_NULL(lq_safetensors_metadata(st));
    lq_safetensors_close(st);
    open_img(NULL, NULL, 0, NULL);
}

static void test_safetensors_edge_cases_accepted(void) {
    lq_safetensors *st;
    /* empty header object, no data */
    CU_ASSERT_EQUAL(open_img("{}", NULL, 0, &st), LQ_OK);
    CU_ASSERT_EQUAL(lq_safetensors_count(st), 0);
    lq_safetensors_close(st);
    /* rank 0 (1 element) and zero-element tensors */
    const double d = 2.5;
    CU_ASSERT_EQUAL_FATAL(open_img("{\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]},"
                                   "\"z\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[8,8]}}",
                                   &d, 8, &st),
                          LQ_OK);
    CU_ASSERT_EQUAL(lq_safetensors_find(st, "s")->n_dims, 0);
    CU_ASSERT_EQUAL(lq_safetensors_find(st, "z")->nbytes, 0);
    lq_safetensors_close(st);
    /* whitespace before and after the JSON (writers may pad to a page) */
    size_t   len;
    uint8_t *b = image("\n\t {\"__metadata__\":{\"format\":\"pt\"}}\r\n   ", 0, NULL, 0, &len);
    CU_ASSERT_EQUAL(lq_safetensors_open_memory(b, len, "ws", &st), LQ_OK);
    const lq_json *m = lq_safetensors_metadata(st);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(lq_json_get_str(lq_json_get(m, "format")), "pt");
    lq_safetensors_close(st);
    free(b);
    /* every dtype name, including the opaque ones */
    static const char *names[] = {"BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64", "F16", "BF16",
                                  "F32", "F64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "C64"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        lq_dtype t;
        CU_ASSERT_EQUAL_FATAL(lq_dtype_from_name(names[i], strlen(names[i]), &t), LQ_OK);
        const uint32_t bytes = lq_dtype_traits_of(t)->bits / 8;
        char           hdr[128];
        snprintf(hdr, sizeof hdr, "{\"x\":{\"dtype\":\"%s\",\"shape\":[3],\"data_offsets\":[0,%u]}}", names[i], 3 * bytes);
        uint8_t zeros[64] = {0};
        CU_ASSERT_EQUAL(open_img(hdr, zeros, 3 * bytes, &st), LQ_OK);
        if (st) CU_ASSERT_EQUAL(lq_safetensors_find(st, "x")->dtype, t);
        lq_safetensors_close(st);
    }
    /* 4-bit elements that fill whole bytes */
    CU_ASSERT_EQUAL(open_img("{\"x\":{\"dtype\":\"F4\",\"shape\":[4],\"data_offsets\":[0,2]}}", "ab", 2, &st), LQ_OK);
    lq_safetensors_close(st);
    open_img(NULL, NULL, 0, NULL);
}

static void expect_status(const char *hdr, const void *data, size_t n, const char *fragment, lq_status want) {
    lq_safetensors *st = NULL;
    lq_test_quiet(1);
    const lq_status s = open_img(hdr, data, n, &st);
    CU_ASSERT_EQUAL(s, want);
    CU_ASSERT_PTR_NULL(st);
    if (!strstr(lq_test_last_error(), fragment)) {
        fprintf(stderr, "\n  expected '%s' in '%s'\n", fragment, lq_test_last_error());
        CU_FAIL("error message");
    }
    lq_test_quiet(0);
    lq_safetensors_close(st);
    open_img(NULL, NULL, 0, NULL);
}

static void expect_bad(const char *hdr, const void *data, size_t n, const char *fragment) {
    expect_status(hdr, data, n, fragment, LQ_ERR_FORMAT);
}

static void test_safetensors_rules_rejected(void) {
    const uint8_t z[64] = {0};
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               z, 12, "tensor 'b'");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", z, 8, "hole");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", z, 4, "needs 8");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", z, 8, "after the last tensor");
    expect_bad("{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", z, 4, "unknown dtype");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", z, 4, "shape[0]");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[18446744073709551616],\"data_offsets\":[0,4]}}", z, 4, "shape[0]");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[9223372036854775807,9223372036854775807],"
               "\"data_offsets\":[0,4]}}", z, 4, "overflows");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", z, 4, "pair");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", z, 8, "duplicate");
    expect_bad("{\"__metadata__\":{\"k\":[\"v\"]}}", NULL, 0, "not a string");
    expect_bad("{\"__metadata__\":\"x\"}", NULL, 0, "not an object");
    expect_bad("{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", z, 4, "NUL");
    expect_status("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", z, 4,
                  "rank 9", LQ_ERR_UNSUPPORTED);
    expect_bad("{\"a\":[]}", NULL, 0, "not an object");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x", z, 4, "header");
    /* length field cases */
    lq_safetensors *st = NULL;
    lq_test_quiet(1);
    const uint8_t short_file[7] = {0};
    CU_ASSERT_EQUAL(lq_safetensors_open_memory(short_file, 7, "m", &st), LQ_ERR_FORMAT);
    uint8_t big[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'};
    CU_ASSERT_EQUAL(lq_safetensors_open_memory(big, 16, "m", &st), LQ_ERR_FORMAT); /* 2^64-1: no overflow */
    CU_ASSERT(strstr(lq_test_last_error(), "limit") != NULL);
    lq_test_quiet(0);
}

static void test_safetensors_bad_corpus(void) {
    /* every file of tests/data/bad (see make_bad_files.py) fails with the
     * expected message, naming the file */
    FILE *f = fopen("tests/data/bad/EXPECTED.tsv", "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    char line[512];
    int  n = 0;
    while (fgets(line, sizeof line, f)) {
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab           = 0;
        char *expect   = tab + 1;
        expect[strcspn(expect, "\n")] = 0;
        char path[600];
        snprintf(path, sizeof path, "tests/data/bad/%s", line);
        lq_checkpoint *ck = NULL;
        lq_test_quiet(1);
        const lq_status s = lq_checkpoint_open(path, &ck);
        CU_ASSERT(s != LQ_OK);
        CU_ASSERT_PTR_NULL(ck);
        if (!strstr(lq_test_last_error(), expect) || !strstr(lq_test_last_error(), path)) {
            fprintf(stderr, "\n  %s: expected '%s' and the path in '%s'\n", line, expect, lq_test_last_error());
            CU_FAIL("bad-corpus message");
        }
        lq_test_quiet(0);
        lq_checkpoint_close(ck);
        n++;
    }
    fclose(f);
    CU_ASSERT(n >= 25);
}

static void test_safetensors_truncations_never_crash(void) {
    /* every prefix of a valid file is refused cleanly (ASan checks the reads) */
    size_t   len;
    uint8_t *img = image("{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"BF16\",\"shape\":[2,3],"
                         "\"data_offsets\":[0,12]},\"b\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[12,20]}}",
                         1, "0123456789abcdefghij", 20, &len);
    lq_test_quiet(1);
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, img, cut);
        lq_safetensors *st = NULL;
        CU_ASSERT_EQUAL(lq_safetensors_open_memory(copy, cut, "cut", &st), LQ_ERR_FORMAT);
        lq_safetensors_close(st);
        free(copy);
    }
    /* byte flips anywhere in the header: never a crash, and success only if still valid */
    uint64_t seed = 7;
    for (int it = 0; it < 3000; it++) {
        uint8_t *copy = malloc(len);
        memcpy(copy, img, len);
        const size_t pos = 8 + lq_test_rand(&seed) % (len - 8);
        copy[pos] ^= (uint8_t)(1 + lq_test_rand(&seed) % 255);
        lq_safetensors *st = NULL;
        if (lq_safetensors_open_memory(copy, len, "flip", &st) == LQ_OK) {
            uint64_t sum = 0;
            for (int64_t i = 0; i < lq_safetensors_count(st); i++) {
                const lq_tensor_info *t = lq_safetensors_tensor(st, i);
                for (uint64_t k = 0; k < t->nbytes; k++) sum += ((const uint8_t *)t->data)[k];
            }
            (void)sum;
        }
        lq_safetensors_close(st);
        free(copy);
    }
    lq_test_quiet(0);
    free(img);
}

typedef struct {
    float base;
} fill_ctx;

static lq_status fill_ramp(void *dst, uint64_t off, uint64_t n, void *user) {
    const fill_ctx *c = user;
    float          *d = dst;
    for (uint64_t i = 0; i < n / 4; i++) d[i] = c->base + (float)(off / 4 + i);
    return LQ_OK;
}

static void test_safetensors_writer_layout(void) {
    const char *dir = lq_test_tmpdir("st_writer");
    char        path[512];
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    const uint16_t h[4] = {1, 2, 3, 4};
    const int64_t  i64[2] = {-5, 7};
    const uint8_t  u8[3] = {9, 8, 7};
    fill_ctx       fc = {100.f};
    lq_st_entry    e[4];
    memset(e, 0, sizeof e);
    e[0] = (lq_st_entry){.name = "z.small", .dtype = LQ_DTYPE_U8, .n_dims = 1, .shape = {3}, .data = u8};
    e[1] = (lq_st_entry){.name = "a.half", .dtype = LQ_DTYPE_BF16, .n_dims = 2, .shape = {2, 2}, .data = h};
    e[2] = (lq_st_entry){.name = "m.long", .dtype = LQ_DTYPE_I64, .n_dims = 1, .shape = {2}, .data = i64};
    e[3] = (lq_st_entry){.name = "b.ramp", .dtype = LQ_DTYPE_F32, .n_dims = 1, .shape = {5}, .fill = fill_ramp,
                         .fill_user = &fc};
    const lq_kv        meta[2] = {{"format", "pt"}, {"a_key", "v\"q"}};
    lq_st_write_params p       = lq_st_write_default_params();
    p.metadata                 = meta;
    p.n_metadata               = 2;
    p.no_fsync                 = true;
    CU_ASSERT_EQUAL_FATAL(lq_safetensors_write(path, e, 4, &p), LQ_OK);
    size_t   len;
    uint8_t *b = lq_test_read_file(path, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | b[i];
    CU_ASSERT_EQUAL(n % 8, 0);
    /* the reference writer's order: dtype descending (I64, F32, BF16, U8), metadata first, keys sorted */
    const char *expect = "{\"__metadata__\":{\"a_key\":\"v\\\"q\",\"format\":\"pt\"},"
                         "\"m.long\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},"
                         "\"b.ramp\":{\"dtype\":\"F32\",\"shape\":[5],\"data_offsets\":[16,36]},"
                         "\"a.half\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[36,44]},"
                         "\"z.small\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[44,47]}}";
    CU_ASSERT_EQUAL(memcmp(b + 8, expect, strlen(expect)), 0);
    for (size_t i = 8 + strlen(expect); i < 8 + n; i++) CU_ASSERT_EQUAL(b[i], ' ');
    CU_ASSERT_EQUAL(len, 8 + n + 47);
    free(b);
    lq_safetensors *st;
    CU_ASSERT_EQUAL_FATAL(lq_safetensors_open(path, &st), LQ_OK);
    const lq_tensor_info *r = lq_safetensors_find(st, "b.ramp");
    CU_ASSERT_EQUAL(((const float *)r->data)[4], 104.f);
    CU_ASSERT_EQUAL(memcmp(lq_safetensors_find(st, "m.long")->data, i64, 16), 0);
    CU_ASSERT_EQUAL(memcmp(lq_safetensors_find(st, "a.half")->data, h, 8), 0);
    lq_safetensors_close(st);
    /* duplicate names are refused and leave no file */
    e[1].name = "z.small";
    char path2[600];
    snprintf(path2, sizeof path2, "%s/dup.safetensors", dir);
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_safetensors_write(path2, e, 4, &p), LQ_ERR_INVALID_ARG);
    lq_test_quiet(0);
    CU_ASSERT(!lq__file_exists(path2));
}

static int cancel_at_second(float done, const char *stage, void *user) {
    (void)done, (void)stage;
    return ++*(int *)user >= 2;
}

static void test_safetensors_cancel_leaves_nothing(void) {
    const char *dir = lq_test_tmpdir("st_cancel");
    char        path[512];
    snprintf(path, sizeof path, "%s/c.safetensors", dir);
    float       x[4] = {0};
    lq_st_entry e[3];
    memset(e, 0, sizeof e);
    for (int i = 0; i < 3; i++) {
        e[i]          = (lq_st_entry){.dtype = LQ_DTYPE_F32, .n_dims = 1, .shape = {4}, .data = x};
        e[i].name     = i == 0 ? "a" : i == 1 ? "b" : "c";
    }
    int                calls = 0;
    lq_st_write_params p     = lq_st_write_default_params();
    p.progress               = cancel_at_second;
    p.progress_user          = &calls;
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_safetensors_write(path, e, 3, &p), LQ_ERR_CANCELLED);
    lq_test_quiet(0);
    DIR *d = opendir(dir);
    int  n = 0;
    struct dirent *de;
    while ((de = readdir(d))) n += de->d_name[0] != '.' || strstr(de->d_name, "tmp") != NULL;
    closedir(d);
    CU_ASSERT_EQUAL(n, 0);
}

static void test_safetensors_reference_file_bit_exact(void) {
    /* rewriting the independent reference file with its own metadata
     * reproduces it byte for byte: same order, header text and padding */
    lq_safetensors *st;
    const char     *ref = lq_test_shared("stories260K-hf/model.safetensors");
    CU_ASSERT_EQUAL_FATAL(lq_safetensors_open(ref, &st), LQ_OK);
    const int64_t n = lq_safetensors_count(st);
    CU_ASSERT_EQUAL(n, 47);
    lq_st_entry *e = calloc((size_t)n, sizeof *e);
    for (int64_t i = 0; i < n; i++) {
        const lq_tensor_info *t = lq_safetensors_tensor(st, i);
        e[i].name               = t->name;
        e[i].dtype              = t->dtype;
        e[i].n_dims             = t->n_dims;
        memcpy(e[i].shape, t->shape, sizeof t->shape);
        e[i].data = t->data;
    }
    const lq_json *m = lq_safetensors_metadata(st);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    lq_kv kv[4];
    for (uint32_t i = 0; i < m->n && i < 4; i++) kv[i] = (lq_kv){m->items[i].key, m->items[i].str};
    lq_st_write_params p = lq_st_write_default_params();
    p.metadata           = kv;
    p.n_metadata         = (int32_t)m->n;
    p.no_fsync           = true;
    char path[512];
    snprintf(path, sizeof path, "%s/re.safetensors", lq_test_tmpdir("st_ref"));
    CU_ASSERT_EQUAL(lq_safetensors_write(path, e, n, &p), LQ_OK);
    size_t   la, lb;
    uint8_t *a = lq_test_read_file(path, &la), *b = lq_test_read_file(lq_test_shared("stories260K-hf/model.safetensors"), &lb);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(la, lb);
    CU_ASSERT(la == lb && memcmp(a, b, la) == 0);
    free(a);
    free(b);
    free(e);
    lq_safetensors_close(st);
}

static void test_safetensors_sharded_round_trip(void) {
    const char *dir = lq_test_tmpdir("st_shards");
    enum { N = 7 };
    float       data[N][100];
    char        names[N][32];
    lq_st_entry e[N];
    memset(e, 0, sizeof e);
    uint64_t seed = 3;
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < 100; k++) data[i][k] = lq_test_randf(&seed);
        snprintf(names[i], sizeof names[i], "layer.%d.weight", i);
        e[i] = (lq_st_entry){.name = names[i], .dtype = LQ_DTYPE_F32, .n_dims = 2, .shape = {10, 10}, .data = data[i]};
    }
    e[3].shape[0] = 5, e[3].shape[1] = 20;
    lq_st_write_params p = lq_st_write_default_params();
    p.max_shard_size     = 1000; /* 400 bytes each: two per shard -> 4 shards */
    p.no_fsync           = true;
    CU_ASSERT_EQUAL_FATAL(lq_safetensors_write_dir(dir, e, N, &p), LQ_OK);
    char path[600];
    snprintf(path, sizeof path, "%s/model-00004-of-00004.safetensors", dir);
    CU_ASSERT(lq__file_exists(path));
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    char  *idx;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(lq__read_file(path, 1 << 20, &idx, &len), LQ_OK);
    CU_ASSERT(strstr(idx, "\"total_size\": 2800") != NULL);
    CU_ASSERT(strstr(idx, "\"layer.6.weight\": \"model-00004-of-00004.safetensors\"") != NULL);
    lq_free(idx);
    lq_checkpoint *ck;
    CU_ASSERT_EQUAL_FATAL(lq_checkpoint_open(dir, &ck), LQ_OK);
    CU_ASSERT_EQUAL(lq_checkpoint_kind(ck), LQ_CKPT_SAFETENSORS_DIR);
    CU_ASSERT_EQUAL(lq_checkpoint_count(ck), N);
    for (int i = 0; i < N; i++) {
        const lq_tensor_info *t = lq_checkpoint_find(ck, names[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        CU_ASSERT_EQUAL(t->shape[0], e[i].shape[0]);
        CU_ASSERT_EQUAL(memcmp(t->data, data[i], 400), 0);
    }
    lq_checkpoint_close(ck);
    /* a single tensor over the limit gets a shard of its own */
    p.max_shard_size = 100;
    const char *dir2 = lq_test_tmpdir("st_shards2");
    CU_ASSERT_EQUAL(lq_safetensors_write_dir(dir2, e, N, &p), LQ_OK);
    snprintf(path, sizeof path, "%s/model-00007-of-00007.safetensors", dir2);
    CU_ASSERT(lq__file_exists(path));
}

CU_pSuite lq_test_safetensors_suite(void) {
    CU_pSuite s = lq_test_add_suite("safetensors");
    LQ_ADD_TEST(s, test_safetensors_minimal_and_lookup);
    LQ_ADD_TEST(s, test_safetensors_edge_cases_accepted);
    LQ_ADD_TEST(s, test_safetensors_rules_rejected);
    LQ_ADD_TEST(s, test_safetensors_bad_corpus);
    LQ_ADD_TEST(s, test_safetensors_truncations_never_crash);
    LQ_ADD_TEST(s, test_safetensors_writer_layout);
    LQ_ADD_TEST(s, test_safetensors_cancel_leaves_nothing);
    LQ_ADD_TEST(s, test_safetensors_reference_file_bit_exact);
    LQ_ADD_TEST(s, test_safetensors_sharded_round_trip);
    return s;
}
