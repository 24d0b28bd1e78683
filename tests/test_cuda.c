/* test_cuda.c : the GPU parity suite: lq_cuda_convert() against
 * lq_convert_cpu(), bit for bit, for every pair of F32, F16, BF16, F8_E4M3
 * and F8_E5M2, on every 8- and 16-bit pattern and on random data with
 * NaN/Inf/subnormals; plus the device memory helpers and the refusals.
 *
 * run_tests registers this suite only when lq_cuda_device_count() > 0
 * (`make cuda-test`); it compiles in every build. */
#include <stdlib.h>
#include <string.h>

#include "lq_test.h"

static const lq_dtype CUDA_TYPES[] = { LQ_DTYPE_F32, LQ_DTYPE_F16, LQ_DTYPE_BF16, LQ_DTYPE_F8_E4M3,
                                       LQ_DTYPE_F8_E5M2 };
#define N_TYPES (sizeof CUDA_TYPES / sizeof CUDA_TYPES[0])

static size_t esize(lq_dtype t) { return lq_dtype_traits_of(t)->bits / 8; }

/* Converts `src` (n elements of st) on the device and on the CPU and
 * compares the bytes; prints the first mismatch. Returns the number of
 * differing elements (or n on a CUDA failure). */
static int64_t parity(lq_dtype dt, lq_dtype st, const void *src, int64_t n, const char *what) {
    const size_t   sb = (size_t)n * esize(st), db = (size_t)n * esize(dt);
    unsigned char *want = malloc(db + 1), *got = malloc(db + 1);
    void          *d_src = NULL, *d_dst = NULL;
    int64_t        bad   = n;
    CU_ASSERT_FATAL(want && got);
    CU_ASSERT_EQUAL(lq_convert_cpu(dt, want, st, src, n, 0), LQ_OK);
    memset(got, 0xA5, db + 1);
    if (lq_cuda_malloc(&d_src, sb) != LQ_OK || lq_cuda_malloc(&d_dst, db) != LQ_OK) goto done;
    if (lq_cuda_memcpy_h2d(d_src, src, sb) != LQ_OK) goto done;
    const lq_status st_conv = lq_cuda_convert(dt, d_dst, st, d_src, n);
    CU_ASSERT_EQUAL(st_conv, LQ_OK);
    if (st_conv != LQ_OK || lq_cuda_memcpy_d2h(got, d_dst, db) != LQ_OK) goto done;
    bad = 0;
    for (int64_t i = 0; i < n; i++) {
        const size_t e = esize(dt);
        if (memcmp(want + (size_t)i * e, got + (size_t)i * e, e) != 0) {
            if (bad == 0) {
                uint64_t s = 0, w = 0, g = 0;
                memcpy(&s, (const unsigned char *)src + (size_t)i * esize(st), esize(st));
                memcpy(&w, want + (size_t)i * e, e);
                memcpy(&g, got + (size_t)i * e, e);
                printf("\n  %s %s -> %s: element %lld src %#llx: cpu %#llx cuda %#llx", what, lq_dtype_name(st),
                       lq_dtype_name(dt), (long long)i, (unsigned long long)s, (unsigned long long)w,
                       (unsigned long long)g);
            }
            bad++;
        }
    }
    CU_ASSERT_EQUAL(got[db], 0xA5); /* host side: nothing past the end */
done:
    CU_ASSERT_EQUAL(lq_cuda_free(d_src), LQ_OK);
    CU_ASSERT_EQUAL(lq_cuda_free(d_dst), LQ_OK);
    free(want), free(got);
    return bad;
}

static void test_cuda_device(void) {
    CU_ASSERT_TRUE(lq_cuda_compiled());
    CU_ASSERT_TRUE(lq_cuda_device_count() > 0);
    const char *const name = lq_cuda_device_name();
    CU_ASSERT_PTR_NOT_NULL_FATAL(name);
    CU_ASSERT_PTR_NOT_NULL(strstr(name, "sm_"));
    CU_ASSERT_PTR_EQUAL(name, lq_cuda_device_name()); /* static storage */
    printf("\n  device: %s", name);
    /* the memory helpers round trip, and accept the empty cases */
    void *d = (void *)1;
    CU_ASSERT_EQUAL(lq_cuda_malloc(&d, 0), LQ_OK);
    CU_ASSERT_PTR_NULL(d);
    CU_ASSERT_EQUAL(lq_cuda_free(NULL), LQ_OK);
    CU_ASSERT_EQUAL(lq_cuda_memcpy_h2d(NULL, NULL, 0), LQ_OK);
    unsigned char in[1000], out[1000];
    for (int i = 0; i < 1000; i++) in[i] = (unsigned char)(i * 7 + 3);
    CU_ASSERT_EQUAL_FATAL(lq_cuda_malloc(&d, sizeof in), LQ_OK);
    CU_ASSERT_EQUAL(lq_cuda_memcpy_h2d(d, in, sizeof in), LQ_OK);
    CU_ASSERT_EQUAL(lq_cuda_synchronize(), LQ_OK);
    memset(out, 0, sizeof out);
    CU_ASSERT_EQUAL(lq_cuda_memcpy_d2h(out, d, sizeof out), LQ_OK);
    CU_ASSERT_EQUAL(memcmp(in, out, sizeof in), 0);
    CU_ASSERT_EQUAL(lq_cuda_free(d), LQ_OK);
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_cuda_malloc(NULL, 16), LQ_ERR_INVALID_ARG);
    lq_test_quiet(0);
}

/* every 8- and 16-bit source pattern into every other type */
static void test_cuda_convert_all_patterns(void) {
    uint16_t *const src = malloc(65536 * 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(src);
    for (size_t a = 0; a < N_TYPES; a++) {
        const lq_dtype st = CUDA_TYPES[a];
        if (st == LQ_DTYPE_F32) continue;
        const int64_t n = esize(st) == 1 ? 256 : 65536;
        for (int64_t i = 0; i < n; i++) {
            if (esize(st) == 1) ((uint8_t *)src)[i] = (uint8_t)i;
            else src[i] = (uint16_t)i;
        }
        for (size_t b = 0; b < N_TYPES; b++) CU_ASSERT_EQUAL(parity(CUDA_TYPES[b], st, src, n, "all patterns"), 0);
    }
    free(src);
}

/* F32 sources: every f32 that is a value or a midpoint (+-1 ulp) of a
 * narrow format is hit by the F16/BF16 patterns widened; here random bits
 * with a share of specials and of exponents around 1. */
static void fill_f32(uint32_t *v, int64_t n, uint64_t seed) {
    static const uint32_t special[] = { 0x00000000u, 0x80000000u, 0x00000001u, 0x807FFFFFu, 0x7F7FFFFFu,
                                        0x7F800000u, 0xFF800000u, 0x7FC00000u, 0x7F800001u, 0xFFA00000u,
                                        0x477FF000u, 0x477FEFFFu, 0x33000000u, 0x33000001u, 0x43E80000u,
                                        0x43E80001u, 0x47700000u, 0x476FFFFFu, 0x7F7F8000u, 0x3F808000u };
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++) {
        const uint64_t r = lq_test_rand(&s);
        uint32_t       u = (uint32_t)r;
        switch ((r >> 32) & 7) {
        case 0: u = special[(r >> 40) % (sizeof special / sizeof special[0])]; break;
        case 1: case 2: case 3: case 4: u = (u & 0x807FFFFFu) | ((uint32_t)(96 + (r >> 40) % 52) << 23); break;
        default: break;
        }
        v[i] = u;
    }
}

static void test_cuda_convert_random(void) {
    const int64_t   n   = 1000003;
    uint32_t *const f32 = malloc((size_t)n * 4);
    void *const     tmp = malloc((size_t)n * 4);
    CU_ASSERT_FATAL(f32 && tmp);
    fill_f32(f32, n, 0x5EEDC0DA);
    for (size_t a = 0; a < N_TYPES; a++) {
        const lq_dtype st = CUDA_TYPES[a];
        /* the other sources: random f32 narrowed on the CPU, so they carry
         * the same spread of values, NaN and Inf */
        const void *src = f32;
        if (st != LQ_DTYPE_F32) {
            CU_ASSERT_EQUAL(lq_convert_cpu(st, tmp, LQ_DTYPE_F32, f32, n, 0), LQ_OK);
            src = tmp;
        }
        const int64_t sizes[] = { 1, 7, 4097, n };
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
            for (size_t b = 0; b < N_TYPES; b++)
                CU_ASSERT_EQUAL(parity(CUDA_TYPES[b], st, src, sizes[k], "random (seed 0x5EEDC0DA)"), 0);
    }
    free(f32), free(tmp);
}

static void test_cuda_convert_refusals(void) {
    void *d = NULL;
    CU_ASSERT_EQUAL_FATAL(lq_cuda_malloc(&d, 64), LQ_OK);
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_cuda_convert(LQ_DTYPE_F32, d, LQ_DTYPE_I32, (char *)d + 32, 4), LQ_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(lq_test_last_error(), "I32"));
    CU_ASSERT_EQUAL(lq_cuda_convert(LQ_DTYPE_F64, d, LQ_DTYPE_F32, (char *)d + 32, 4), LQ_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(lq_cuda_convert(LQ_DTYPE_F16, d, LQ_DTYPE_F32, (char *)d + 32, -1), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_cuda_convert(LQ_DTYPE_F16, NULL, LQ_DTYPE_F32, d, 1), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_cuda_convert(LQ_DTYPE_F16, d, LQ_DTYPE_F32, (char *)d + 1, 1), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_cuda_convert(LQ_DTYPE_F32, d, LQ_DTYPE_F32, (char *)d + 4, 4), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_cuda_convert(LQ_DTYPE_COUNT, d, LQ_DTYPE_F32, (char *)d + 32, 1), LQ_ERR_INVALID_ARG);
    CU_ASSERT(lq_test_errors_logged() >= 7);
    lq_test_quiet(0);
    CU_ASSERT_EQUAL(lq_cuda_convert(LQ_DTYPE_F16, NULL, LQ_DTYPE_F32, NULL, 0), LQ_OK);
    CU_ASSERT_EQUAL(lq_cuda_free(d), LQ_OK);
}

CU_pSuite lq_test_cuda_suite(void) {
    CU_pSuite s = lq_test_add_suite("cuda");
    LQ_ADD_TEST(s, test_cuda_device);
    LQ_ADD_TEST(s, test_cuda_convert_all_patterns);
    LQ_ADD_TEST(s, test_cuda_convert_random);
    LQ_ADD_TEST(s, test_cuda_convert_refusals);
    return s;
}
