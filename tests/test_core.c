/* test_core.c : status codes, logging, allocator, tensor views, SHA-256,
 * atomic files. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>

#include "lq_internal.h"
#include "lq_test.h"

static void test_core_status_values_pinned(void) {
    /* values are part of the ABI: never renumber */
    CU_ASSERT_EQUAL(LQ_OK, 0);
    CU_ASSERT_EQUAL(LQ_ERR_INVALID_ARG, 1);
    CU_ASSERT_EQUAL(LQ_ERR_NOMEM, 2);
    CU_ASSERT_EQUAL(LQ_ERR_IO, 3);
    CU_ASSERT_EQUAL(LQ_ERR_FORMAT, 4);
    CU_ASSERT_EQUAL(LQ_ERR_UNSUPPORTED, 5);
    CU_ASSERT_EQUAL(LQ_ERR_SHAPE, 6);
    CU_ASSERT_EQUAL(LQ_ERR_NUMERIC, 7);
    CU_ASSERT_EQUAL(LQ_ERR_CUDA, 8);
    CU_ASSERT_EQUAL(LQ_ERR_CANCELLED, 9);
    CU_ASSERT_EQUAL(LQ_ERR_NOT_FOUND, 10);
    for (int s = 0; s <= 10; s++) {
        const char *m = lq_status_str((lq_status)s);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT(strcmp(m, "unknown status") != 0);
        for (int t = 0; t < s; t++) CU_ASSERT(strcmp(m, lq_status_str((lq_status)t)) != 0);
    }
    CU_ASSERT_STRING_EQUAL(lq_status_str((lq_status)99), "unknown status");
    CU_ASSERT_STRING_EQUAL(lq_version(), LQ_VERSION_STRING);
}

static int  g_seen;
static char g_msg[256];
static void capture(lq_log_level level, const char *msg, void *user) {
    (void)level;
    *(int *)user += 1;
    snprintf(g_msg, sizeof g_msg, "%s", msg);
}

static void test_core_log_callback(void) {
    g_seen = 0;
    lq_log_set(capture, &g_seen);
    const lq_log_level old = lq_log_get_level();
    lq_log_set_level(LQ_LOG_WARN);
    LQ_LOG_ERR("value %d", 42);
    CU_ASSERT_EQUAL(g_seen, 1);
    CU_ASSERT_STRING_EQUAL(g_msg, "value 42");
    LQ_LOG_INFO("dropped");
    CU_ASSERT_EQUAL(g_seen, 1);
    lq_log_set_level(LQ_LOG_DEBUG);
    LQ_LOG_DEBUG("kept");
    CU_ASSERT_EQUAL(g_seen, 2);
    lq_log_set_level(old);
    lq_test_reinstall_log();
}

static size_t g_allocs;
static void  *my_alloc(size_t n, void *o) {
    (void)o;
    g_allocs++;
    void *p = NULL;
    return posix_memalign(&p, 64, n) == 0 ? p : NULL;
}
static void my_free(void *p, void *o) {
    (void)o;
    free(p);
}

static void test_core_allocator_hook(void) {
    const lq_allocator a = {my_alloc, my_free, NULL};
    lq_set_allocator(&a);
    g_allocs = 0;
    void *p  = lq_malloc(100);
    CU_ASSERT_PTR_NOT_NULL(p);
    CU_ASSERT_EQUAL(((uintptr_t)p) % 64, 0);
    CU_ASSERT_EQUAL(g_allocs, 1);
    lq_free(p);
    lq_set_allocator(NULL);
    CU_ASSERT_PTR_NULL(lq_calloc(SIZE_MAX / 2, 4)); /* overflow is refused, not wrapped */
    char *s = lq_strdup("abc");
    CU_ASSERT_STRING_EQUAL(s, "abc");
    lq_free(s);
    lq_free(NULL);
}

static void test_core_tensor_view(void) {
    float     data[24];
    lq_tensor t;
    const int64_t shape[3] = {2, 3, 4};
    CU_ASSERT_EQUAL_FATAL(lq_tensor_make(&t, LQ_DTYPE_F32, 3, shape, data, "x"), LQ_OK);
    CU_ASSERT_EQUAL(t.ne[0], 4);
    CU_ASSERT_EQUAL(t.ne[1], 3);
    CU_ASSERT_EQUAL(t.ne[2], 2);
    CU_ASSERT_EQUAL(t.nb[0], 4);
    CU_ASSERT_EQUAL(t.nb[1], 16);
    CU_ASSERT_EQUAL(t.nb[2], 48);
    CU_ASSERT_EQUAL(lq_tensor_nelements(&t), 24);
    CU_ASSERT(lq_tensor_is_contiguous(&t));
    t.nb[1] = 32; /* a strided view over a wider buffer */
    CU_ASSERT(!lq_tensor_is_contiguous(&t));
    const int64_t bad[1] = {-1};
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_tensor_make(&t, LQ_DTYPE_F32, 1, bad, data, "neg"), LQ_ERR_SHAPE);
    CU_ASSERT_EQUAL(lq_tensor_make(&t, LQ_DTYPE_F32, LQ_MAX_DIMS + 1, shape, data, "rank"), LQ_ERR_SHAPE);
    const int64_t huge[3] = {INT64_MAX, INT64_MAX, 4};
    CU_ASSERT_EQUAL(lq_tensor_make(&t, LQ_DTYPE_F32, 3, huge, data, "huge"), LQ_ERR_SHAPE);
    lq_test_quiet(0);
    CU_ASSERT_EQUAL(lq_tensor_make(&t, LQ_DTYPE_BF16, 0, NULL, data, "scalar"), LQ_OK);
    CU_ASSERT_EQUAL(lq_tensor_nelements(&t), 1);
}

static void hex_of(const char *s, size_t n, char out[65]) {
    uint8_t d[32];
    lq_sha256(s, n, d);
    lq_sha256_hex(d, out);
}

static void test_core_sha256_vectors(void) {
    /* FIPS 180-4 examples and a million 'a's */
    char h[65];
    hex_of("", 0, h);
    CU_ASSERT_STRING_EQUAL(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hex_of("abc", 3, h);
    CU_ASSERT_STRING_EQUAL(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hex_of(m, strlen(m), h);
    CU_ASSERT_STRING_EQUAL(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    lq_sha256_ctx c;
    lq_sha256_init(&c);
    char a[1001];
    memset(a, 'a', sizeof a);
    for (int i = 0; i < 1000; i++) lq_sha256_update(&c, a, i % 2 ? 999 : 1001); /* odd splits */
    uint8_t d[32];
    lq_sha256_final(&c, d);
    lq_sha256_hex(d, h);
    CU_ASSERT_STRING_EQUAL(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int  n = 0;
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void test_core_atomic_file(void) {
    const char *dir = lq_test_tmpdir("atomic");
    char        path[512];
    snprintf(path, sizeof path, "%s/out.bin", dir);
    /* abort leaves nothing, not even the temporary */
    lq__afile *f;
    CU_ASSERT_EQUAL_FATAL(lq__afile_open(path, &f), LQ_OK);
    CU_ASSERT_EQUAL(lq__afile_write(f, "half", 4), LQ_OK);
    CU_ASSERT_EQUAL(count_entries(dir), 1); /* the hidden temporary */
    CU_ASSERT(!lq__file_exists(path));
    lq__afile_abort(f);
    CU_ASSERT_EQUAL(count_entries(dir), 0);
    /* commit renames into place */
    CU_ASSERT_EQUAL(lq__write_file_atomic(path, "hello", 5), LQ_OK);
    CU_ASSERT_EQUAL(count_entries(dir), 1);
    char  *text;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(lq__read_file(path, 100, &text, &len), LQ_OK);
    CU_ASSERT_EQUAL(len, 5);
    CU_ASSERT_STRING_EQUAL(text, "hello");
    lq_free(text);
    /* an existing file is replaced whole */
    CU_ASSERT_EQUAL(lq__write_file_atomic(path, "bye", 3), LQ_OK);
    CU_ASSERT_EQUAL(lq__read_file(path, 100, &text, &len), LQ_OK);
    CU_ASSERT_STRING_EQUAL(text, "bye");
    lq_free(text);
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq__read_file(path, 2, &text, &len), LQ_ERR_FORMAT); /* over the limit */
    CU_ASSERT_EQUAL(lq__read_file("/nonexistent/x", 2, &text, &len), LQ_ERR_NOT_FOUND);
    CU_ASSERT_EQUAL(lq__afile_open("/nonexistent/dir/x", &f), LQ_ERR_IO);
    CU_ASSERT(strstr(lq_test_last_error(), "/nonexistent/dir/x") != NULL);
    lq_test_quiet(0);
}

static void test_core_paths(void) {
    char *p = lq__path_join("a/b", "c.json");
    CU_ASSERT_STRING_EQUAL(p, "a/b/c.json");
    lq_free(p);
    p = lq__path_join("a/", "c");
    CU_ASSERT_STRING_EQUAL(p, "a/c");
    lq_free(p);
    p = lq__path_dirname("x/y/z.bin");
    CU_ASSERT_STRING_EQUAL(p, "x/y");
    lq_free(p);
    p = lq__path_dirname("z.bin");
    CU_ASSERT_STRING_EQUAL(p, ".");
    lq_free(p);
    p = lq__path_dirname("/z");
    CU_ASSERT_STRING_EQUAL(p, "/");
    lq_free(p);
}

CU_pSuite lq_test_core_suite(void) {
    CU_pSuite s = lq_test_add_suite("core");
    LQ_ADD_TEST(s, test_core_status_values_pinned);
    LQ_ADD_TEST(s, test_core_log_callback);
    LQ_ADD_TEST(s, test_core_allocator_hook);
    LQ_ADD_TEST(s, test_core_tensor_view);
    LQ_ADD_TEST(s, test_core_sha256_vectors);
    LQ_ADD_TEST(s, test_core_atomic_file);
    LQ_ADD_TEST(s, test_core_paths);
    return s;
}
