/* test_cuda.c : the GPU parity suite: lq_cuda_convert() against
 * lq_convert_cpu(), bit for bit, for every pair of F32, F16, BF16, F8_E4M3
 * and F8_E5M2, on every 8- and 16-bit pattern and on random data with
 * NaN/Inf/subnormals; plus the device memory helpers and the refusals.
 * The forward-pass ops (lq_cuda_matmul/embed/rmsnorm/rope/attention/swiglu/
 * log_softmax) against their `_ref` ops within the named budgets below, and
 * lq_cuda_llama_forward against a CPU forward built from the `_ref` ops, on
 * random models (F32/F16/BF16) and on stories260K (greedy tokens identical).
 * Quantized weights (every INT, FP8 and GGML type): lq_cuda_matmul against
 * lq_matmul_ref, lq_cuda_embed bit-exact, a quantized random model.
 *
 * run_tests registers this suite only when lq_cuda_device_count() > 0
 * (`make cuda-test`); it compiles in every build. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* ==== forward-pass ops and the whole model: CUDA against the `_ref` ops ====
 *
 * Error budgets (rule 19), each relative to the scale that bounds the error:
 *  - matmul: |cuda - ref| <= tol · (Σ_c |x_c w_rc| + |bias_r|) per output,
 *    tol = TOL_MATMUL_F32 · sqrt(cols) (f32 sums in another order; the
 *    typical error is ~6e-8 · sqrt(cols)). For F16/BF16 weights the CUDA path
 *    rounds the activations to the weight's type (lq_kernels.h), so the
 *    oracle is lq_matmul_ref on x rounded the same way (RNE, lq_convert_ref):
 *    the products are then identical and only the summation order differs.
 *    Against lq_matmul_ref on unrounded x the difference would be up to
 *    2^-11 (F16) or 2^-8 (BF16) of Σ|x w|.
 *  - embed: bit-exact (widening F16/BF16 to f32 is exact).
 *  - rmsnorm, rope, swiglu, log-softmax: TOL_ELEMWISE relative (a few ulp:
 *    device cosf/sinf/expf are within 2 ulp of the correctly rounded value).
 *  - attention: TOL_ATTENTION · max|v| (scores are bit-identical; softmax sums
 *    and the value sum run in another order).
 *  - whole model: max|cuda - ref| / max|ref| over the logits. The CPU oracle
 *    rounds every matmul input to the weight's type like the CUDA path, so
 *    the F16/BF16 budgets cover only rounding flips: an activation whose two
 *    f32 values (a few ulp apart after expf/cosf/summation order) straddle a
 *    half/bfloat16 rounding boundary rounds one ulp apart (2^-11 / 2^-8
 *    relative), and that propagates. A CPU emulation of the kernels (glibc
 *    math) measured 6e-4 (F16) and 3e-7 (BF16); device math adds flips, hence
 *    the margins. Wiring bugs show up as errors of order 1. */
#define TOL_MATMUL_F32 1e-6
#define TOL_ELEMWISE   2e-6
#define TOL_ATTENTION  2e-5
#define TOL_MODEL_F32  1e-4
#define TOL_MODEL_F16  1e-2
#define TOL_MODEL_BF16 2e-2

static size_t wt_size(lq_dtype t) { return t == LQ_DTYPE_F32 ? 4 : 2; }

static void free_const(const void *p) { free((void *)(uintptr_t)p); }

static void *dev_put(const void *host, size_t bytes) {
    void *d = NULL;
    CU_ASSERT_EQUAL_FATAL(lq_cuda_malloc(&d, bytes), LQ_OK);
    CU_ASSERT_EQUAL_FATAL(lq_cuda_memcpy_h2d(d, host, bytes), LQ_OK);
    return d;
}

static void dev_get(void *host, const void *dev, size_t bytes) {
    CU_ASSERT_EQUAL_FATAL(lq_cuda_memcpy_d2h(host, dev, bytes), LQ_OK);
}

static void dev_free(const void *d) { CU_ASSERT_EQUAL(lq_cuda_free((void *)(uintptr_t)d), LQ_OK); }

/* a host weight (rows, cols): offset + scale · U[-1, 1), rounded to dt; free with free_const(w.data) */
static lq_weight host_weight(lq_dtype dt, int64_t rows, int64_t cols, float scale, float offset, uint64_t *seed) {
    const int64_t n = rows * cols;
    float *const  f = malloc((size_t)n * sizeof(float));
    void *const   d = malloc((size_t)n * wt_size(dt));
    CU_ASSERT_FATAL(f && d);
    for (int64_t i = 0; i < n; i++) f[i] = offset + scale * lq_test_randf(seed);
    CU_ASSERT_EQUAL(lq_convert_ref(dt, d, LQ_DTYPE_F32, f, n), LQ_OK);
    free(f);
    const lq_weight w = {dt, d, rows, cols, LQ_QT_NONE, NULL, NULL, NULL, 0};
    return w;
}

/* the same weight on the device, `shift` elements past a 256-byte boundary; free with dev_free(base) */
static lq_weight dev_weight(const lq_weight *h, int64_t shift, void **base) {
    const size_t es = wt_size(h->dtype), bytes = (size_t)(h->rows * h->cols) * es;
    CU_ASSERT_EQUAL_FATAL(lq_cuda_malloc(base, bytes + (size_t)shift * es), LQ_OK);
    char *const d = (char *)*base + (size_t)shift * es;
    CU_ASSERT_EQUAL_FATAL(lq_cuda_memcpy_h2d(d, h->data, bytes), LQ_OK);
    lq_weight w = *h;
    w.data      = d;
    return w;
}

static void fill(float *v, int64_t n, float scale, uint64_t *seed) {
    for (int64_t i = 0; i < n; i++) v[i] = scale * lq_test_randf(seed);
}

/* elements with |got - want| > bound (bound[i], or bound_all when bound is
 * NULL); prints the first three and the worst diff/bound */
static int64_t outside(const char *what, const float *got, const float *want, const double *bound, double bound_all,
                       int64_t n) {
    int64_t bad = 0;
    double  worst = 0;
    for (int64_t i = 0; i < n; i++) {
        const double b = bound ? bound[i] : bound_all, d = fabs((double)got[i] - (double)want[i]);
        if (!(d <= b)) {
            if (bad < 3)
                printf("\n  %s: [%lld] cuda %.9g ref %.9g |diff| %.3g > %.3g", what, (long long)i, (double)got[i],
                       (double)want[i], d, b);
            bad++;
        }
        if (b > 0 && d / b > worst) worst = d / b;
    }
    if (bad) printf("\n  %s: %lld of %lld outside the budget (worst diff/budget %.3g)", what, (long long)bad,
                    (long long)n, worst);
    return bad;
}

/* one lq_cuda_matmul case against lq_matmul_ref */
static void matmul_case(lq_dtype dt, int64_t n, int64_t rows, int64_t cols, bool with_bias, int64_t shift,
                        uint64_t seed) {
    uint64_t        s  = seed;
    const lq_weight hw = host_weight(dt, rows, cols, 0.5f, 0.f, &s);
    float *const    x = malloc((size_t)(n * cols) * sizeof(float)), *const wf = malloc((size_t)(rows * cols) * 4);
    float *const    b = malloc((size_t)rows * sizeof(float)), *const want = malloc((size_t)(n * rows) * 4);
    float *const    got   = malloc((size_t)(n * rows) * sizeof(float));
    double *const   bound = malloc((size_t)(n * rows) * sizeof(double));
    CU_ASSERT_FATAL(x && wf && b && want && got && bound);
    fill(x, n * cols, 1.f, &s);
    fill(b, rows, 1.f, &s);
    CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_F32, wf, dt, hw.data, rows * cols), LQ_OK);
    float *const    xr = malloc((size_t)(n * cols) * sizeof(float)); /* x as the CUDA path multiplies it */
    uint16_t *const xh = malloc((size_t)(n * cols) * sizeof(uint16_t));
    CU_ASSERT_FATAL(xr && xh);
    if (dt == LQ_DTYPE_F32) {
        memcpy(xr, x, (size_t)(n * cols) * sizeof(float));
    } else {
        CU_ASSERT_EQUAL(lq_convert_ref(dt, xh, LQ_DTYPE_F32, x, n * cols), LQ_OK);
        CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_F32, xr, dt, xh, n * cols), LQ_OK);
    }
    CU_ASSERT_EQUAL(lq_matmul_ref(want, xr, n, &hw, with_bias ? b : NULL), LQ_OK);
    const double tol = TOL_MATMUL_F32 * sqrt((double)cols);
    for (int64_t t = 0; t < n; t++)
        for (int64_t r = 0; r < rows; r++) {
            double sum = with_bias ? fabs((double)b[r]) : 0;
            for (int64_t c = 0; c < cols; c++) sum += fabs((double)xr[t * cols + c] * (double)wf[r * cols + c]);
            bound[t * rows + r] = tol * sum + 1e-30;
        }
    void           *d_base = NULL;
    const lq_weight dw     = dev_weight(&hw, shift, &d_base);
    float *const    d_x    = dev_put(x, (size_t)(n * cols) * sizeof(float));
    float *const    d_b    = dev_put(b, (size_t)rows * sizeof(float));
    float          *d_y    = NULL;
    CU_ASSERT_EQUAL_FATAL(lq_cuda_malloc((void **)&d_y, (size_t)(n * rows) * sizeof(float)), LQ_OK);
    CU_ASSERT_EQUAL(lq_cuda_matmul(d_y, d_x, n, &dw, with_bias ? d_b : NULL), LQ_OK);
    dev_get(got, d_y, (size_t)(n * rows) * sizeof(float));
    char what[128];
    snprintf(what, sizeof what, "matmul %s n=%lld (%lld, %lld)%s shift %lld (seed %llu)", lq_dtype_name(dt),
             (long long)n, (long long)rows, (long long)cols, with_bias ? " +bias" : "", (long long)shift,
             (unsigned long long)seed);
    CU_ASSERT_EQUAL(outside(what, got, want, bound, 0, n * rows), 0);
    dev_free(d_base), dev_free(d_x), dev_free(d_b), dev_free(d_y);
    free_const(hw.data);
    free(x), free(xr), free(xh), free(wf), free(b), free(want), free(got), free(bound);
}

static const lq_dtype WEIGHT_TYPES[] = {LQ_DTYPE_F32, LQ_DTYPE_F16, LQ_DTYPE_BF16};
#define N_WEIGHT_TYPES (sizeof WEIGHT_TYPES / sizeof WEIGHT_TYPES[0])

static void test_cuda_matmul(void) {
    /* n = 1 runs the GEMV kernel for F16/BF16 (vectorized when cols % 8 == 0
     * and aligned), n > 1 cuBLAS */
    static const int64_t shapes[][3] = {{1, 37, 64},    {1, 64, 172},  {1, 300, 1024}, {1, 129, 8},
                                        {1, 4096, 4096}, {3, 37, 64},  {17, 64, 172},  {17, 129, 257},
                                        {64, 1000, 4096}};
    for (size_t a = 0; a < N_WEIGHT_TYPES; a++)
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            matmul_case(WEIGHT_TYPES[a], shapes[i][0], shapes[i][1], shapes[i][2], i % 2 == 0, 0, 1000 + 10 * i + a);
    /* a weight one element off alignment: the GEMV's scalar path */
    matmul_case(LQ_DTYPE_F16, 1, 33, 64, true, 1, 77);
    matmul_case(LQ_DTYPE_BF16, 1, 33, 64, false, 1, 78);
    matmul_case(LQ_DTYPE_F32, 2, 33, 64, false, 1, 79);
    /* refusals and the empty case */
    float          *d = NULL;
    const lq_weight w64 = {LQ_DTYPE_F64, NULL, 4, 4, LQ_QT_NONE, NULL, NULL, NULL, 0};
    CU_ASSERT_EQUAL_FATAL(lq_cuda_malloc((void **)&d, 256), LQ_OK);
    const lq_weight wf = {LQ_DTYPE_F32, d, 4, 4, LQ_QT_NONE, NULL, NULL, NULL, 0};
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_cuda_matmul(d, d, 1, &w64, NULL), LQ_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(lq_cuda_matmul(d, d, -1, &wf, NULL), LQ_ERR_SHAPE);
    CU_ASSERT_EQUAL(lq_cuda_matmul(NULL, d, 1, &wf, NULL), LQ_ERR_INVALID_ARG);
    lq_test_quiet(0);
    CU_ASSERT_EQUAL(lq_cuda_matmul(d, d, 0, &wf, NULL), LQ_OK);
    dev_free(d);
}

static void test_cuda_embed(void) {
    for (size_t a = 0; a < N_WEIGHT_TYPES; a++) {
        uint64_t        s   = 2000 + a;
        const int64_t   V   = 97, C = a == 1 ? 33 : 64, n = 40;
        const lq_weight hw  = host_weight(WEIGHT_TYPES[a], V, C, 2.f, 0.f, &s);
        int32_t         ids[40];
        for (int64_t t = 0; t < n; t++) ids[t] = (int32_t)(lq_test_rand(&s) % V);
        ids[0] = 0, ids[1] = (int32_t)(V - 1);
        float *const want = malloc((size_t)(n * C) * 4), *const got = malloc((size_t)(n * C) * 4);
        CU_ASSERT_FATAL(want && got);
        CU_ASSERT_EQUAL(lq_embed_ref(want, &hw, ids, n), LQ_OK);
        void           *base  = NULL;
        const lq_weight dw    = dev_weight(&hw, 0, &base);
        int32_t *const  d_ids = dev_put(ids, sizeof ids);
        float          *d_out = NULL;
        CU_ASSERT_EQUAL_FATAL(lq_cuda_malloc((void **)&d_out, (size_t)(n * C) * 4), LQ_OK);
        CU_ASSERT_EQUAL(lq_cuda_embed(d_out, &dw, d_ids, n), LQ_OK);
        dev_get(got, d_out, (size_t)(n * C) * 4);
        CU_ASSERT_EQUAL(memcmp(got, want, (size_t)(n * C) * 4), 0);
        /* an id outside the vocabulary */
        ids[7] = (int32_t)V;
        CU_ASSERT_EQUAL(lq_cuda_memcpy_h2d(d_ids, ids, sizeof ids), LQ_OK);
        lq_test_quiet(1);
        CU_ASSERT_EQUAL(lq_cuda_embed(d_out, &dw, d_ids, n), LQ_ERR_INVALID_ARG);
        CU_ASSERT(lq_test_errors_logged() >= 1);
        lq_test_quiet(0);
        dev_free(base), dev_free(d_ids), dev_free(d_out);
        free_const(hw.data);
        free(want), free(got);
    }
}

static void test_cuda_rmsnorm(void) {
    static const int64_t shapes[][2] = {{1, 64}, {5, 1000}, {3, 4097}};
    for (size_t a = 0; a < N_WEIGHT_TYPES; a++)
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            uint64_t        s = 3000 + 10 * i + a;
            const int64_t   n = shapes[i][0], D = shapes[i][1];
            const lq_weight hw = host_weight(WEIGHT_TYPES[a], 1, D, 0.1f, 1.f, &s);
            float *const    x = malloc((size_t)(n * D) * 4), *const want = malloc((size_t)(n * D) * 4);
            float *const    got = malloc((size_t)(n * D) * 4);
            double *const   bound = malloc((size_t)(n * D) * sizeof(double));
            CU_ASSERT_FATAL(x && want && got && bound);
            fill(x, n * D, 3.f, &s);
            lq_rmsnorm_ref(want, x, &hw, n, D, 1e-5f);
            for (int64_t k = 0; k < n * D; k++) bound[k] = TOL_ELEMWISE * fabs((double)want[k]) + 1e-30;
            void           *base = NULL;
            const lq_weight dw   = dev_weight(&hw, 0, &base);
            float *const    d_x  = dev_put(x, (size_t)(n * D) * 4);
            float          *d_y  = NULL;
            CU_ASSERT_EQUAL_FATAL(lq_cuda_malloc((void **)&d_y, (size_t)(n * D) * 4), LQ_OK);
            char what[96];
            snprintf(what, sizeof what, "rmsnorm %s (%lld, %lld)", lq_dtype_name(WEIGHT_TYPES[a]), (long long)n,
                     (long long)D);
            CU_ASSERT_EQUAL(lq_cuda_rmsnorm(d_y, d_x, &dw, n, D, 1e-5f), LQ_OK);
            dev_get(got, d_y, (size_t)(n * D) * 4);
            CU_ASSERT_EQUAL(outside(what, got, want, bound, 0, n * D), 0);
            /* in place */
            CU_ASSERT_EQUAL(lq_cuda_rmsnorm(d_x, d_x, &dw, n, D, 1e-5f), LQ_OK);
            dev_get(got, d_x, (size_t)(n * D) * 4);
            CU_ASSERT_EQUAL(outside(what, got, want, bound, 0, n * D), 0);
            dev_free(base), dev_free(d_x), dev_free(d_y);
            free_const(hw.data);
            free(x), free(want), free(got), free(bound);
        }
}

static void test_cuda_rope(void) {
    static const int64_t shapes[][3] = {{17, 4, 8}, {5, 2, 64}, {3, 3, 128}, {1, 1, 2}}; /* n, heads, head_dim */
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int neox = 0; neox < 2; neox++) {
            uint64_t      s = 4000 + 10 * i + (uint64_t)neox;
            const int64_t n = shapes[i][0], H = shapes[i][1], hd = shapes[i][2], cnt = n * H * hd;
            float         inv[64];
            int32_t       pos[17];
            CU_ASSERT_EQUAL(lq_rope_inv_freq(inv, hd, 10000.0, LQ_ROPE_DEFAULT, 1.0, 1.0, 4.0, 8192), LQ_OK);
            for (int64_t t = 0; t < n; t++) pos[t] = (int32_t)(lq_test_rand(&s) % 8192);
            pos[0] = n > 1 ? 0 : 8191;
            if (n > 1) pos[n - 1] = 8191;
            float *const x = malloc((size_t)cnt * 4), *const want = malloc((size_t)cnt * 4);
            float *const got = malloc((size_t)cnt * 4);
            CU_ASSERT_FATAL(x && want && got);
            fill(x, cnt, 1.f, &s);
            memcpy(want, x, (size_t)cnt * 4);
            lq_rope_ref(want, pos, n, H, hd, inv, neox != 0);
            float *const   d_x   = dev_put(x, (size_t)cnt * 4);
            int32_t *const d_pos = dev_put(pos, (size_t)n * sizeof(int32_t));
            float *const   d_inv = dev_put(inv, (size_t)(hd / 2) * sizeof(float));
            CU_ASSERT_EQUAL(lq_cuda_rope(d_x, d_pos, n, H, hd, d_inv, neox != 0), LQ_OK);
            dev_get(got, d_x, (size_t)cnt * 4);
            char what[96];
            snprintf(what, sizeof what, "rope %s n=%lld heads=%lld head_dim=%lld", neox ? "neox" : "interleaved",
                     (long long)n, (long long)H, (long long)hd);
            CU_ASSERT_EQUAL(outside(what, got, want, NULL, 2 * TOL_ELEMWISE, cnt), 0);
            dev_free(d_x), dev_free(d_pos), dev_free(d_inv);
            free(x), free(want), free(got);
        }
    lq_test_quiet(1);
    float d_dummy = 0;
    CU_ASSERT_EQUAL(lq_cuda_rope(&d_dummy, NULL, 1, 1, 3, &d_dummy, true), LQ_ERR_SHAPE); /* odd head_dim */
    lq_test_quiet(0);
}

static void attention_case(int64_t n, int64_t pos0, int64_t H, int64_t KVH, int64_t hd, int64_t stride,
                           uint64_t seed) {
    uint64_t      s     = seed;
    const int64_t rows  = pos0 + n, qn = n * H * hd;
    const size_t  cache = (size_t)(rows * stride) * sizeof(float);
    float *const  q = malloc((size_t)qn * 4), *const kc = malloc(cache), *const vc = malloc(cache);
    float *const  want = malloc((size_t)qn * 4), *const got = malloc((size_t)qn * 4);
    CU_ASSERT_FATAL(q && kc && vc && want && got);
    fill(q, qn, 2.f, &s);
    fill(kc, rows * stride, 1.f, &s);
    fill(vc, rows * stride, 1.f, &s);
    lq_attention_ref(want, q, kc, vc, n, pos0, H, KVH, hd, stride);
    float *const d_q = dev_put(q, (size_t)qn * 4), *const d_k = dev_put(kc, cache), *const d_v = dev_put(vc, cache);
    float       *d_o = NULL;
    CU_ASSERT_EQUAL_FATAL(lq_cuda_malloc((void **)&d_o, (size_t)qn * 4), LQ_OK);
    CU_ASSERT_EQUAL(lq_cuda_attention(d_o, d_q, d_k, d_v, n, pos0, H, KVH, hd, stride), LQ_OK);
    dev_get(got, d_o, (size_t)qn * 4);
    char what[128];
    snprintf(what, sizeof what, "attention n=%lld pos0=%lld heads %lld/%lld head_dim %lld stride %lld", (long long)n,
             (long long)pos0, (long long)H, (long long)KVH, (long long)hd, (long long)stride);
    CU_ASSERT_EQUAL(outside(what, got, want, NULL, TOL_ATTENTION, qn), 0); /* max|v| <= 1 */
    dev_free(d_q), dev_free(d_k), dev_free(d_v), dev_free(d_o);
    free(q), free(kc), free(vc), free(want), free(got);
}

static void test_cuda_attention(void) {
    attention_case(17, 0, 8, 4, 8, 32, 5001);      /* prefill, head_dim 8 (stories260K) */
    attention_case(7, 5, 4, 1, 64, 68, 5002);      /* a chunk after a history, padded rows */
    attention_case(1, 100, 6, 2, 6, 13, 5003);     /* decode; scalar loads (head_dim % 4 != 0) */
    attention_case(1, 9000, 4, 2, 64, 128, 5004);  /* two chunks of keys: online softmax */
    attention_case(3, 8190, 2, 2, 128, 256, 5005); /* queries on both sides of the chunk boundary */
    attention_case(2, 20000, 2, 1, 256, 256, 5006); /* three chunks, one value column per thread */
    attention_case(5, 3, 4, 2, 300, 604, 5007);    /* head_dim above the block size */
    float d_dummy = 0;
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_cuda_attention(&d_dummy, &d_dummy, &d_dummy, &d_dummy, 1, 0, 3, 2, 8, 16), LQ_ERR_SHAPE);
    CU_ASSERT_EQUAL(lq_cuda_attention(&d_dummy, &d_dummy, &d_dummy, &d_dummy, 1, 0, 1, 1, 1024, 1024),
                    LQ_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(lq_cuda_attention(&d_dummy, &d_dummy, &d_dummy, &d_dummy, 1, 0, 2, 1, 8, 4), LQ_ERR_SHAPE);
    lq_test_quiet(0);
}

static void test_cuda_swiglu(void) {
    uint64_t      s = 6000;
    const int64_t n = 100003;
    float *const  g = malloc((size_t)n * 4), *const u = malloc((size_t)n * 4);
    float *const  want = malloc((size_t)n * 4), *const got = malloc((size_t)n * 4);
    double *const bound = malloc((size_t)n * sizeof(double));
    CU_ASSERT_FATAL(g && u && want && got && bound);
    fill(g, n, 10.f, &s);
    fill(u, n, 1.f, &s);
    lq_swiglu_ref(want, g, u, n);
    for (int64_t i = 0; i < n; i++) bound[i] = TOL_ELEMWISE * fabs((double)want[i]) + 1e-30;
    float *const d_g = dev_put(g, (size_t)n * 4), *const d_u = dev_put(u, (size_t)n * 4);
    float       *d_o = NULL;
    CU_ASSERT_EQUAL_FATAL(lq_cuda_malloc((void **)&d_o, (size_t)n * 4), LQ_OK);
    CU_ASSERT_EQUAL(lq_cuda_swiglu(d_o, d_g, d_u, n), LQ_OK);
    dev_get(got, d_o, (size_t)n * 4);
    CU_ASSERT_EQUAL(outside("swiglu", got, want, bound, 0, n), 0);
    CU_ASSERT_EQUAL(lq_cuda_swiglu(d_g, d_g, d_u, n), LQ_OK); /* out aliases gate */
    dev_get(got, d_g, (size_t)n * 4);
    CU_ASSERT_EQUAL(outside("swiglu in place", got, want, bound, 0, n), 0);
    dev_free(d_g), dev_free(d_u), dev_free(d_o);
    free(g), free(u), free(want), free(got), free(bound);
}

static void test_cuda_log_softmax(void) {
    static const int64_t shapes[][2] = {{3, 32000}, {2, 5}, {1, 1}, {70000, 3}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        uint64_t      s = 7000 + i;
        const int64_t n = shapes[i][0], V = shapes[i][1], cnt = n * V;
        float *const  l = malloc((size_t)cnt * 4), *const want = malloc((size_t)cnt * 4);
        float *const  got = malloc((size_t)cnt * 4);
        double *const bound = malloc((size_t)cnt * sizeof(double));
        CU_ASSERT_FATAL(l && want && got && bound);
        fill(l, cnt, 10.f, &s);
        lq_log_softmax_ref(want, l, n, V);
        for (int64_t k = 0; k < cnt; k++)
            bound[k] = TOL_ELEMWISE * (1.0 + fabs((double)want[k]) + fabs((double)l[k]));
        float *const d_l = dev_put(l, (size_t)cnt * 4);
        float       *d_o = NULL;
        CU_ASSERT_EQUAL_FATAL(lq_cuda_malloc((void **)&d_o, (size_t)cnt * 4), LQ_OK);
        CU_ASSERT_EQUAL(lq_cuda_log_softmax(d_o, d_l, n, V), LQ_OK);
        dev_get(got, d_o, (size_t)cnt * 4);
        char what[64];
        snprintf(what, sizeof what, "log_softmax (%lld, %lld)", (long long)n, (long long)V);
        CU_ASSERT_EQUAL(outside(what, got, want, bound, 0, cnt), 0);
        CU_ASSERT_EQUAL(lq_cuda_log_softmax(d_l, d_l, n, V), LQ_OK); /* in place */
        dev_get(got, d_l, (size_t)cnt * 4);
        CU_ASSERT_EQUAL(outside(what, got, want, bound, 0, cnt), 0);
        dev_free(d_l), dev_free(d_o);
        free(l), free(want), free(got), free(bound);
    }
}

/* ---- the whole model ---- */

/* a CPU forward pass from the `_ref` ops, the oracle for lq_cuda_llama_forward */
typedef struct {
    const lq_llama_weights *w;
    int64_t                 max_seq;
    bool                    cast_act; /* round matmul inputs to the weight's type, as the CUDA path does */
    float                  *kc, *vc;  /* (n_layers, max_seq, kv_dim) */
} ref_llama;

static void ref_llama_init(ref_llama *r, const lq_llama_weights *w, int64_t max_seq, bool cast_act) {
    const size_t cache = (size_t)(w->n_layers * max_seq * w->n_kv_heads * w->head_dim) * sizeof(float);
    r->w               = w;
    r->max_seq         = max_seq;
    r->cast_act        = cast_act;
    r->kc              = calloc(1, cache);
    r->vc              = calloc(1, cache);
    CU_ASSERT_FATAL(r->kc && r->vc);
}

static void ref_llama_free(ref_llama *r) { free(r->kc), free(r->vc); }

static void ref_matmul(float *y, const float *x, int64_t n, const lq_weight *w, const float *bias, bool cast) {
    if (!cast || w->dtype == LQ_DTYPE_F32) {
        CU_ASSERT_EQUAL(lq_matmul_ref(y, x, n, w, bias), LQ_OK);
        return;
    }
    const int64_t   cnt = n * w->cols;
    uint16_t *const h   = malloc((size_t)cnt * 2);
    float *const    xr  = malloc((size_t)cnt * 4);
    CU_ASSERT_FATAL(h && xr);
    CU_ASSERT_EQUAL(lq_convert_ref(w->dtype, h, LQ_DTYPE_F32, x, cnt), LQ_OK);
    CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_F32, xr, w->dtype, h, cnt), LQ_OK);
    CU_ASSERT_EQUAL(lq_matmul_ref(y, xr, n, w, bias), LQ_OK);
    free(h), free(xr);
}

static void add_to(float *x, const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
}

/* tokens at positions pos0 .. pos0+n-1; logits (n, vocab), or the last row only */
static void ref_forward(ref_llama *r, const int32_t *tokens, int64_t n, int64_t pos0, float *logits, bool last_only) {
    const lq_llama_weights *w = r->w;
    const int64_t           D = w->dim, F = w->hidden, H = w->n_heads, KVH = w->n_kv_heads, hd = w->head_dim;
    const int64_t           QD = H * hd, KVD = KVH * hd, S = r->max_seq;
    const bool              cast = r->cast_act;
    float *const x = malloc((size_t)(n * D) * 4), *const xb = malloc((size_t)(n * D) * 4);
    float *const q = malloc((size_t)(n * QD) * 4), *const att = malloc((size_t)(n * QD) * 4);
    float *const ob = malloc((size_t)(n * D) * 4), *const g = malloc((size_t)(n * F) * 4);
    float *const u = malloc((size_t)(n * F) * 4);
    int32_t *const pos = malloc((size_t)n * sizeof(int32_t));
    CU_ASSERT_FATAL(x && xb && q && att && ob && g && u && pos);
    for (int64_t t = 0; t < n; t++) pos[t] = (int32_t)(pos0 + t);
    CU_ASSERT_EQUAL(lq_embed_ref(x, &w->embed, tokens, n), LQ_OK);
    for (int64_t l = 0; l < w->n_layers; l++) {
        const lq_llama_layer *y  = &w->layers[l];
        float *const          kc = r->kc + l * S * KVD, *const vc = r->vc + l * S * KVD;
        lq_rmsnorm_ref(xb, x, &y->attn_norm, n, D, w->rms_eps);
        ref_matmul(q, xb, n, &y->wq, y->bq, cast);
        ref_matmul(kc + pos0 * KVD, xb, n, &y->wk, y->bk, cast);
        ref_matmul(vc + pos0 * KVD, xb, n, &y->wv, y->bv, cast);
        lq_rope_ref(q, pos, n, H, hd, w->inv_freq, w->rope_neox);
        lq_rope_ref(kc + pos0 * KVD, pos, n, KVH, hd, w->inv_freq, w->rope_neox);
        lq_attention_ref(att, q, kc, vc, n, pos0, H, KVH, hd, KVD);
        ref_matmul(ob, att, n, &y->wo, y->bo, cast);
        add_to(x, ob, n * D);
        lq_rmsnorm_ref(xb, x, &y->ffn_norm, n, D, w->rms_eps);
        ref_matmul(g, xb, n, &y->w_gate, NULL, cast);
        ref_matmul(u, xb, n, &y->w_up, NULL, cast);
        lq_swiglu_ref(g, g, u, n * F);
        ref_matmul(ob, g, n, &y->w_down, NULL, cast);
        add_to(x, ob, n * D);
    }
    const int64_t first = last_only ? n - 1 : 0;
    lq_rmsnorm_ref(xb, x + first * D, &w->norm, n - first, D, w->rms_eps);
    ref_matmul(logits, xb, n - first, &w->lm_head, NULL, cast);
    free(x), free(xb), free(q), free(att), free(ob), free(g), free(u), free(pos);
}

/* max|got - want| / max|want| */
static double rel_err(const float *got, const float *want, int64_t n) {
    double md = 0, mw = 0;
    for (int64_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - (double)want[i]);
        if (!(d <= md)) md = d; /* NaN sticks */
        if (fabs((double)want[i]) > mw) mw = fabs((double)want[i]);
    }
    return mw > 0 ? md / mw : md;
}

/* a small random model: every weight in `dt` (mixed: some layer-0 weights
 * BF16/F32 instead, so that a matmul group mixes dtypes) */
typedef struct {
    lq_llama_weights w;
    lq_llama_layer  *layers;
    float           *inv_freq;
} rand_llama;

enum { RL_DIM = 64, RL_HIDDEN = 172, RL_LAYERS = 3, RL_HEADS = 4, RL_KV_HEADS = 2, RL_HEAD_DIM = 16, RL_VOCAB = 101 };

static float *rand_bias(int64_t n, uint64_t *s) {
    float *const b = malloc((size_t)n * sizeof(float));
    CU_ASSERT_FATAL(b != NULL);
    fill(b, n, 0.2f, s);
    return b;
}

static void rand_llama_init(rand_llama *m, lq_dtype dt, bool mixed, bool biases, bool neox, uint64_t seed) {
    uint64_t          s = seed;
    const int64_t     D = RL_DIM, F = RL_HIDDEN, hd = RL_HEAD_DIM, QD = RL_HEADS * hd, KVD = RL_KV_HEADS * hd;
    lq_llama_weights *w = &m->w;
    memset(m, 0, sizeof *m);
    m->layers   = calloc(RL_LAYERS, sizeof *m->layers);
    m->inv_freq = malloc((size_t)hd / 2 * sizeof(float));
    CU_ASSERT_FATAL(m->layers && m->inv_freq);
    CU_ASSERT_EQUAL(lq_rope_inv_freq(m->inv_freq, hd, 10000.0, LQ_ROPE_DEFAULT, 1.0, 1.0, 4.0, 8192), LQ_OK);
    w->dim = D, w->hidden = F, w->n_layers = RL_LAYERS, w->n_heads = RL_HEADS, w->n_kv_heads = RL_KV_HEADS;
    w->head_dim = hd, w->vocab = RL_VOCAB, w->rms_eps = 1e-5f, w->rope_neox = neox, w->inv_freq = m->inv_freq;
    w->layers   = m->layers;
    /* uniform weights with variance 1/cols keep the activations O(1) */
#define RW(rows, cols) host_weight(dt, (rows), (cols), sqrtf(3.f / (float)(cols)), 0.f, &s)
    w->embed   = host_weight(dt, RL_VOCAB, D, 1.f, 0.f, &s);
    w->norm    = host_weight(dt, 1, D, 0.1f, 1.f, &s);
    w->lm_head = RW(RL_VOCAB, D);
    for (int l = 0; l < RL_LAYERS; l++) {
        lq_llama_layer *y = &m->layers[l];
        y->attn_norm      = host_weight(dt, 1, D, 0.1f, 1.f, &s);
        y->ffn_norm       = host_weight(dt, 1, D, 0.1f, 1.f, &s);
        y->wq = RW(QD, D), y->wk = RW(KVD, D), y->wv = RW(KVD, D), y->wo = RW(D, QD);
        y->w_gate = RW(F, D), y->w_up = RW(F, D), y->w_down = RW(D, F);
        if (mixed && l == 0) {
            free_const(y->wk.data), free_const(y->wv.data), free_const(y->w_up.data);
            y->wk   = host_weight(LQ_DTYPE_BF16, KVD, D, sqrtf(3.f / (float)D), 0.f, &s);
            y->wv   = host_weight(LQ_DTYPE_F32, KVD, D, sqrtf(3.f / (float)D), 0.f, &s);
            y->w_up = host_weight(LQ_DTYPE_BF16, F, D, sqrtf(3.f / (float)D), 0.f, &s);
        }
        if (biases) y->bq = rand_bias(QD, &s), y->bk = rand_bias(KVD, &s), y->bv = rand_bias(KVD, &s);
        if (biases && l != 1) y->bo = rand_bias(D, &s);
    }
#undef RW
}

static void rand_llama_free(rand_llama *m) {
    free_const(m->w.embed.data), free_const(m->w.norm.data), free_const(m->w.lm_head.data);
    for (int l = 0; l < RL_LAYERS; l++) {
        const lq_llama_layer *y = &m->layers[l];
        const lq_weight *const all[] = {&y->attn_norm, &y->ffn_norm, &y->wq,   &y->wk,    &y->wv,
                                        &y->wo,        &y->w_gate,   &y->w_up, &y->w_down};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free_const(all[i]->data);
        free_const(y->bq), free_const(y->bk), free_const(y->bv), free_const(y->bo);
    }
    free(m->layers), free(m->inv_freq);
}

/* prefill 17 tokens (all logits), 3 decode steps, then a 4-token chunk
 * (last row) against ref_forward; then the refusals */
static void llama_parity(lq_dtype dt, bool mixed, bool biases, bool neox, double tol, uint64_t seed) {
    enum { S = 32, B = 17, N_TOK = 24 };
    rand_llama m;
    rand_llama_init(&m, dt, mixed, biases, neox, seed);
    const int64_t  V = RL_VOCAB;
    lq_cuda_llama *g = NULL;
    CU_ASSERT_EQUAL_FATAL(lq_cuda_llama_init(&m.w, S, B, &g), LQ_OK);
    ref_llama r;
    ref_llama_init(&r, &m.w, S, true);
    uint64_t s = seed ^ 0xABCDu;
    int32_t  tok[N_TOK];
    for (int i = 0; i < N_TOK; i++) tok[i] = (int32_t)(lq_test_rand(&s) % (uint64_t)V);
    float *const want = malloc((size_t)(B * V) * 4), *const got = malloc((size_t)(B * V) * 4);
    CU_ASSERT_FATAL(want && got);
    char what[96];
    snprintf(what, sizeof what, "llama %s%s%s%s (seed %llu)", lq_dtype_name(dt), mixed ? " mixed" : "",
             biases ? " +biases" : "", neox ? " neox" : " interleaved", (unsigned long long)seed);
    ref_forward(&r, tok, B, 0, want, false);
    CU_ASSERT_EQUAL(lq_cuda_llama_forward(g, tok, B, 0, got, false), LQ_OK);
    double e = rel_err(got, want, B * V), worst = e;
    printf("\n  %s: prefill %d rel err %.3g", what, B, e);
    CU_ASSERT(e < tol);
    for (int i = 0; i < 3; i++) {
        ref_forward(&r, tok + B + i, 1, B + i, want, true);
        CU_ASSERT_EQUAL(lq_cuda_llama_forward(g, tok + B + i, 1, B + i, got, true), LQ_OK);
        e = rel_err(got, want, V), worst = e > worst ? e : worst;
        CU_ASSERT(e < tol);
    }
    ref_forward(&r, tok + B + 3, 4, B + 3, want, true);
    CU_ASSERT_EQUAL(lq_cuda_llama_forward(g, tok + B + 3, 4, B + 3, got, true), LQ_OK);
    e = rel_err(got, want, V), worst = e > worst ? e : worst;
    CU_ASSERT(e < tol);
    printf(", worst over decode and chunk %.3g (budget %.0e)", worst, tol);
    lq_test_quiet(1);
    const int32_t bad_tok = (int32_t)V;
    CU_ASSERT_EQUAL(lq_cuda_llama_forward(g, tok, B + 1, 0, got, false), LQ_ERR_INVALID_ARG); /* > max_batch */
    CU_ASSERT_EQUAL(lq_cuda_llama_forward(g, tok, 4, S - 3, got, false), LQ_ERR_INVALID_ARG); /* > max_seq */
    CU_ASSERT_EQUAL(lq_cuda_llama_forward(g, &bad_tok, 1, 0, got, true), LQ_ERR_INVALID_ARG);
    lq_test_quiet(0);
    lq_cuda_llama_free(g);
    ref_llama_free(&r);
    free(want), free(got);
    rand_llama_free(&m);
}

static void test_cuda_llama_f32(void) {
    llama_parity(LQ_DTYPE_F32, false, false, true, TOL_MODEL_F32, 8001);
    llama_parity(LQ_DTYPE_F32, false, true, false, TOL_MODEL_F32, 8002);
}

static void test_cuda_llama_f16(void) { llama_parity(LQ_DTYPE_F16, false, true, true, TOL_MODEL_F16, 8003); }

static void test_cuda_llama_bf16(void) {
    llama_parity(LQ_DTYPE_BF16, false, false, true, TOL_MODEL_BF16, 8004);
    llama_parity(LQ_DTYPE_F16, true, true, true, TOL_MODEL_BF16, 8005); /* F16 with BF16/F32 weights mixed in */
}

static void test_cuda_llama_refusals(void) {
    rand_llama m;
    rand_llama_init(&m, LQ_DTYPE_F32, false, false, true, 8100);
    lq_cuda_llama   *g = (lq_cuda_llama *)(uintptr_t)1; /* must come back NULL */
    lq_llama_weights w = m.w;
    lq_test_quiet(1);
    w.n_kv_heads = 3; /* does not divide n_heads */
    CU_ASSERT_EQUAL(lq_cuda_llama_init(&w, 16, 4, &g), LQ_ERR_SHAPE);
    CU_ASSERT_PTR_NULL(g);
    w = m.w, w.embed.rows = RL_VOCAB - 1;
    CU_ASSERT_EQUAL(lq_cuda_llama_init(&w, 16, 4, &g), LQ_ERR_SHAPE);
    w = m.w, w.norm.dtype = LQ_DTYPE_F64;
    CU_ASSERT_EQUAL(lq_cuda_llama_init(&w, 16, 4, &g), LQ_ERR_UNSUPPORTED);
    w = m.w;
    CU_ASSERT_EQUAL(lq_cuda_llama_init(&w, 0, 4, &g), LQ_ERR_INVALID_ARG);
    CU_ASSERT(lq_test_errors_logged() >= 4);
    lq_test_quiet(0);
    lq_cuda_llama_free(NULL);
    rand_llama_free(&m);
}

/* the bundled real model: greedy decoding from BOS on the GPU must pick the
 * same 50 tokens as the CPU reference; then one 51-token prefill */
static lq_weight st_weight(const lq_safetensors *st, const char *name) {
    const lq_tensor_info *t = lq_safetensors_find(st, name);
    lq_weight             w = {LQ_DTYPE_F32, NULL, 0, 0, LQ_QT_NONE, NULL, NULL, NULL, 0};
    CU_ASSERT_PTR_NOT_NULL(t);
    if (!t) return w;
    w.dtype = t->dtype;
    w.data  = t->data;
    w.rows  = t->n_dims == 2 ? t->shape[0] : 1;
    w.cols  = t->n_dims == 2 ? t->shape[1] : t->shape[0];
    return w;
}

static int32_t argmax(const float *v, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return (int32_t)best;
}

static void test_cuda_llama_stories260k(void) {
    enum { L = 5, V = 512, GEN = 50, S = 64 };
    lq_safetensors *st = NULL;
    CU_ASSERT_EQUAL_FATAL(lq_safetensors_open(lq_test_shared("stories260K-hf/model.safetensors"), &st), LQ_OK);
    lq_llama_layer   layers[L];
    lq_llama_weights w;
    float            inv[4];
    memset(&w, 0, sizeof w);
    memset(layers, 0, sizeof layers);
    w.dim = 64, w.hidden = 172, w.n_layers = L, w.n_heads = 8, w.n_kv_heads = 4, w.head_dim = 8, w.vocab = V;
    w.rms_eps = 1e-5f, w.rope_neox = true, w.inv_freq = inv, w.layers = layers;
    CU_ASSERT_EQUAL(lq_rope_inv_freq(inv, 8, 10000.0, LQ_ROPE_DEFAULT, 1.0, 1.0, 4.0, 512), LQ_OK);
    w.embed   = st_weight(st, "model.embed_tokens.weight");
    w.norm    = st_weight(st, "model.norm.weight");
    w.lm_head = w.embed; /* tied */
    for (int l = 0; l < L; l++) {
        char nm[96];
#define LW(field, suffix)                                                                \
    snprintf(nm, sizeof nm, "model.layers.%d." suffix, l);                               \
    layers[l].field = st_weight(st, nm)
        LW(attn_norm, "input_layernorm.weight");
        LW(wq, "self_attn.q_proj.weight");
        LW(wk, "self_attn.k_proj.weight");
        LW(wv, "self_attn.v_proj.weight");
        LW(wo, "self_attn.o_proj.weight");
        LW(ffn_norm, "post_attention_layernorm.weight");
        LW(w_gate, "mlp.gate_proj.weight");
        LW(w_up, "mlp.up_proj.weight");
        LW(w_down, "mlp.down_proj.weight");
#undef LW
    }
    lq_cuda_llama *g = NULL;
    CU_ASSERT_EQUAL_FATAL(lq_cuda_llama_init(&w, S, GEN + 1, &g), LQ_OK);
    ref_llama r;
    ref_llama_init(&r, &w, S, false);
    int32_t      cpu[GEN + 1], gpu[GEN + 1];
    float *const want = malloc((size_t)(GEN + 1) * V * 4), *const got = malloc((size_t)(GEN + 1) * V * 4);
    CU_ASSERT_FATAL(want && got);
    cpu[0] = gpu[0] = 1; /* BOS */
    double worst = 0;
    for (int i = 0; i < GEN; i++) {
        ref_forward(&r, &cpu[i], 1, i, want, true);
        cpu[i + 1] = argmax(want, V);
        CU_ASSERT_EQUAL_FATAL(lq_cuda_llama_forward(g, &gpu[i], 1, i, got, true), LQ_OK);
        gpu[i + 1] = argmax(got, V);
        if (cpu[i] == gpu[i]) {
            const double e = rel_err(got, want, V);
            worst          = e > worst ? e : worst;
        }
    }
    int first_diff = -1;
    for (int i = 0; i <= GEN && first_diff < 0; i++)
        if (cpu[i] != gpu[i]) first_diff = i;
    printf("\n  stories260K greedy %d tokens: %s, worst logits rel err %.3g", GEN,
           first_diff < 0 ? "identical" : "DIFFER", worst);
    if (first_diff >= 0)
        printf(" (first at %d: cpu %d gpu %d)", first_diff, (int)cpu[first_diff], (int)gpu[first_diff]);
    CU_ASSERT_EQUAL(first_diff, -1);
    CU_ASSERT(worst < TOL_MODEL_F32);
    /* the whole sequence again as one prefill (overwrites both caches) */
    ref_forward(&r, cpu, GEN + 1, 0, want, false);
    CU_ASSERT_EQUAL(lq_cuda_llama_forward(g, cpu, GEN + 1, 0, got, false), LQ_OK);
    const double e = rel_err(got, want, (int64_t)(GEN + 1) * V);
    printf(", prefill of %d rel err %.3g", GEN + 1, e);
    CU_ASSERT(e < TOL_MODEL_F32);
    free(want), free(got);
    ref_llama_free(&r);
    lq_cuda_llama_free(g);
    lq_safetensors_close(st);
}

/* A figure, not a pass/fail check: batch-1 decode of a 4-layer F16 model
 * with Llama-3-8B layer shapes (dim 4096, hidden 14336, 32/8 heads, head_dim
 * 128, vocab 32000), the weight bytes read per token over the time per token,
 * as a fraction of a device-to-device copy measured in the same run
 * (lq_cuda_convert F16 -> F16: read + write). The weights repeat one random
 * block; bandwidth does not care. */
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_cuda_llama_decode_bandwidth(void) {
    enum { D = 4096, F = 14336, L = 4, H = 32, KVH = 8, HD = 128, V = 32000, STEPS = 20 };
    const size_t    big = (size_t)V * D > (size_t)F * D ? (size_t)V * D : (size_t)F * D; /* elements */
    uint16_t *const pat = malloc((big + 1) * sizeof(uint16_t)); /* lm_head starts one element in */
    CU_ASSERT_FATAL(pat != NULL);
    uint64_t s = 9001;
    for (size_t i = 0; i < (1u << 20); i++) pat[i] = lq_f32_to_f16(0.02f * lq_test_randf(&s));
    for (size_t i = 1u << 20; i < big + 1; i += 1u << 20)
        memcpy(pat + i, pat, (big + 1 - i < (1u << 20) ? big + 1 - i : (1u << 20)) * sizeof(uint16_t));
    lq_llama_layer   layers[L];
    lq_llama_weights w;
    float            inv[HD / 2];
    memset(&w, 0, sizeof w);
    memset(layers, 0, sizeof layers);
    CU_ASSERT_EQUAL(lq_rope_inv_freq(inv, HD, 500000.0, LQ_ROPE_DEFAULT, 1.0, 1.0, 4.0, 8192), LQ_OK);
    w.dim = D, w.hidden = F, w.n_layers = L, w.n_heads = H, w.n_kv_heads = KVH, w.head_dim = HD, w.vocab = V;
    w.rms_eps = 1e-5f, w.rope_neox = true, w.inv_freq = inv, w.layers = layers;
    const lq_weight norm = {LQ_DTYPE_F16, pat, 1, D, LQ_QT_NONE, NULL, NULL, NULL, 0};
    w.embed = (lq_weight){LQ_DTYPE_F16, pat, V, D, LQ_QT_NONE, NULL, NULL, NULL, 0};
    w.lm_head = w.embed;
    w.lm_head.data = pat + 1; /* not tied: its own copy on the device, read every step */
    w.norm = norm;
    uint64_t per_token = (uint64_t)V * D * 2;
    for (int l = 0; l < L; l++) {
        lq_llama_layer *y = &layers[l];
        y->attn_norm = y->ffn_norm = norm;
        y->wq = (lq_weight){LQ_DTYPE_F16, pat, H * HD, D, LQ_QT_NONE, NULL, NULL, NULL, 0};
        y->wk = (lq_weight){LQ_DTYPE_F16, pat, KVH * HD, D, LQ_QT_NONE, NULL, NULL, NULL, 0};
        y->wv = y->wk, y->wo = (lq_weight){LQ_DTYPE_F16, pat, D, H * HD, LQ_QT_NONE, NULL, NULL, NULL, 0};
        y->w_gate = (lq_weight){LQ_DTYPE_F16, pat, F, D, LQ_QT_NONE, NULL, NULL, NULL, 0}, y->w_up = y->w_gate;
        y->w_down = (lq_weight){LQ_DTYPE_F16, pat, D, F, LQ_QT_NONE, NULL, NULL, NULL, 0};
        per_token += 2 * ((uint64_t)2 * H * HD * D + (uint64_t)2 * KVH * HD * D + (uint64_t)3 * F * D);
    }
    lq_cuda_llama *g = NULL;
    CU_ASSERT_EQUAL_FATAL(lq_cuda_llama_init(&w, 64, 1, &g), LQ_OK);
    float *const logits = malloc((size_t)V * sizeof(float));
    CU_ASSERT_FATAL(logits != NULL);
    int32_t tok = 1;
    for (int i = 0; i < 2; i++) CU_ASSERT_EQUAL(lq_cuda_llama_forward(g, &tok, 1, i, logits, true), LQ_OK);
    const double t0 = now_s();
    for (int i = 0; i < STEPS; i++) CU_ASSERT_EQUAL(lq_cuda_llama_forward(g, &tok, 1, 2 + i, logits, true), LQ_OK);
    const double t_tok = (now_s() - t0) / STEPS;
    lq_cuda_llama_free(g);
    /* the ceiling: a 1 GiB device-to-device copy */
    const size_t copy_n = (size_t)1 << 29; /* F16 elements */
    void        *a = NULL, *b = NULL;
    CU_ASSERT_EQUAL_FATAL(lq_cuda_malloc(&a, copy_n * 2), LQ_OK);
    CU_ASSERT_EQUAL_FATAL(lq_cuda_malloc(&b, copy_n * 2), LQ_OK);
    CU_ASSERT_EQUAL(lq_cuda_convert(LQ_DTYPE_F16, b, LQ_DTYPE_F16, a, (int64_t)copy_n), LQ_OK);
    CU_ASSERT_EQUAL(lq_cuda_synchronize(), LQ_OK); /* a same-type convert is a cudaMemcpy, async for D2D */
    const double t1 = now_s();
    for (int i = 0; i < 5; i++) CU_ASSERT_EQUAL(lq_cuda_convert(LQ_DTYPE_F16, b, LQ_DTYPE_F16, a, (int64_t)copy_n), LQ_OK);
    CU_ASSERT_EQUAL(lq_cuda_synchronize(), LQ_OK);
    const double copy_gbs = 5.0 * 2.0 * (double)copy_n * 2 / (now_s() - t1) / 1e9;
    dev_free(a), dev_free(b);
    const double gbs = (double)per_token / t_tok / 1e9;
    printf("\n  decode F16 batch 1, %d layers (8B shapes): %.3f ms/token, %.0f GB/s = %.2f of the D2D copy (%.0f GB/s)",
           L, t_tok * 1e3, gbs, gbs / copy_gbs, copy_gbs);
    free(logits), free(pat);
}

/* ---- quantized weights (INT, FP8, GGML) ----
 * Budget: the tensor-core GEMV (int4/int8) and the n > 16 path round x and
 * the dequantized weights to f16 (2^-11 relative each, the weight through
 * its f16 scale too), so |cuda - ref| <= TOL_QMATMUL · Σ|x·w|; the
 * CUDA-core GEMV forms the reference's f32 weights and is far inside it.
 * The embedding is bit-exact. */
#define TOL_QMATMUL    2e-3
#define TOL_MODEL_QUANT 2e-2

typedef struct {
    lq_weight w; /* host pointers, malloc'ed */
    size_t    data_bytes;
    int64_t   n_scales, n_zeros;
} qhost;

/* random packed codes; scales (INT/FP8) and GGML block scales sized so that
 * the weights have a standard deviation of about `std` */
static qhost qhost_make(lq_qtype t, int64_t rows, int64_t cols, double std, uint64_t seed) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(t);
    uint64_t               s  = seed;
    qhost                  q;
    memset(&q, 0, sizeof q);
    q.data_bytes      = (size_t)lq_qtype_row_bytes(t, cols) * (size_t)rows;
    q.n_scales        = lq_qtype_n_scales(t, rows, cols);
    q.n_zeros         = lq_qtype_has_zeros(t) ? q.n_scales : 0;
    uint8_t *const d  = malloc(q.data_bytes + 1);
    float *const   sc = malloc(sizeof(float) * (size_t)(q.n_scales + 1));
    uint8_t *const z  = malloc((size_t)q.n_zeros + 1);
    CU_ASSERT_FATAL(d && sc && z);
    for (size_t i = 0; i < q.data_bytes; i++) d[i] = (uint8_t)lq_test_rand(&s);
    if (tr->kind == LQ_QK_FP8)
        for (size_t i = 0; i < q.data_bytes; i++)
            if ((d[i] & 0x7F) == 0x7F) d[i] ^= 1;
    /* the spread of the codes around the zero point */
    const double code_std = tr->kind == LQ_QK_INT ? (double)(1 << tr->bits) / sqrt(12.0)
                            : tr->kind == LQ_QK_FP8 ? 100.0
                            : t == LQ_QT_Q8_0       ? 73.0
                            : t == LQ_QT_Q4_0       ? 4.6
                            : t == LQ_QT_Q5_0       ? 9.2
                            : t == LQ_QT_Q4_K       ? 32.0 * 8.0
                                                    : 73.0 * 18.0;
    const float unit = (float)(std / code_std);
    for (int64_t i = 0; i < q.n_scales; i++) sc[i] = unit * (0.75f + 0.5f * fabsf(lq_test_randf(&s)));
    for (int64_t i = 0; i < q.n_zeros; i++) z[i] = (uint8_t)(lq_test_rand(&s) % (1u << tr->bits));
    if (tr->kind == LQ_QK_GGML)
        for (size_t b = 0; b < q.data_bytes; b += (size_t)tr->block_bytes) {
            const uint16_t h = lq_f32_to_f16(unit * (0.75f + 0.5f * fabsf(lq_test_randf(&s))));
            memcpy(d + b + (t == LQ_QT_Q6_K ? 208 : 0), &h, 2);
            if (t == LQ_QT_Q4_K) memcpy(d + b + 2, &h, 2);
        }
    const lq_weight w = {LQ_DTYPE_F32, d, rows, cols, t, sc, q.n_zeros ? z : NULL, NULL, 0};
    if (!q.n_zeros) free(z);
    q.w = w;
    return q;
}

static void qhost_free(qhost *q) {
    free_const(q->w.data), free_const(q->w.scales), free_const(q->w.zeros);
    memset(q, 0, sizeof *q);
}

/* the same weight on the device (free with qdev_free) */
static lq_weight qdev(const qhost *q) {
    lq_weight d = q->w;
    d.data      = dev_put(q->w.data, q->data_bytes);
    d.scales    = q->n_scales ? dev_put(q->w.scales, sizeof(float) * (size_t)q->n_scales) : NULL;
    d.zeros     = q->n_zeros ? dev_put(q->w.zeros, (size_t)q->n_zeros) : NULL;
    return d;
}

static void qdev_free(const lq_weight *d) {
    dev_free(d->data);
    if (d->scales) dev_free(d->scales);
    if (d->zeros) dev_free(d->zeros);
}

static void qmatmul_case(lq_qtype t, int64_t n, int64_t rows, int64_t cols, bool with_bias, uint64_t seed) {
    uint64_t        s  = seed;
    qhost           q  = qhost_make(t, rows, cols, 1.0 / sqrt((double)cols), seed * 3 + 1);
    const lq_weight dw = qdev(&q);
    float *const    x = malloc(sizeof(float) * (size_t)(n * cols)), *const b = malloc(sizeof(float) * (size_t)rows);
    float *const    want = malloc(sizeof(float) * (size_t)(n * rows)), *const got = malloc(sizeof(float) * (size_t)(n * rows));
    float *const    row = malloc(sizeof(float) * (size_t)cols);
    double *const   bound = malloc(sizeof(double) * (size_t)(n * rows));
    CU_ASSERT_FATAL(x && b && want && got && row && bound);
    fill(x, n * cols, 1.f, &s);
    fill(b, rows, 1.f, &s);
    CU_ASSERT_EQUAL_FATAL(lq_matmul_ref(want, x, n, &q.w, with_bias ? b : NULL), LQ_OK);
    for (int64_t r = 0; r < rows; r++) {
        CU_ASSERT_EQUAL_FATAL(lq_weight_row_f32(&q.w, r, row), LQ_OK);
        for (int64_t t2 = 0; t2 < n; t2++) {
            double sum = with_bias ? fabs((double)b[r]) : 0;
            for (int64_t c = 0; c < cols; c++) sum += fabs((double)x[t2 * cols + c] * (double)row[c]);
            bound[t2 * rows + r] = TOL_QMATMUL * sum + 1e-30;
        }
    }
    float *const d_x = dev_put(x, sizeof(float) * (size_t)(n * cols)), *const d_b = dev_put(b, sizeof(float) * (size_t)rows);
    float       *d_y = NULL;
    CU_ASSERT_EQUAL_FATAL(lq_cuda_malloc((void **)&d_y, sizeof(float) * (size_t)(n * rows)), LQ_OK);
    CU_ASSERT_EQUAL(lq_cuda_matmul(d_y, d_x, n, &dw, with_bias ? d_b : NULL), LQ_OK);
    dev_get(got, d_y, sizeof(float) * (size_t)(n * rows));
    char what[128];
    snprintf(what, sizeof what, "qmatmul %s n=%lld (%lld, %lld)%s (seed %llu)", lq_qtype_name(t), (long long)n,
             (long long)rows, (long long)cols, with_bias ? " +bias" : "", (unsigned long long)seed);
    CU_ASSERT_EQUAL(outside(what, got, want, bound, 0, n * rows), 0);
    qdev_free(&dw), dev_free(d_x), dev_free(d_b), dev_free(d_y);
    qhost_free(&q);
    free(x), free(b), free(want), free(got), free(row), free(bound);
}

/* every quantized type: the tensor-core GEMV (int4/int8, cols % 128 == 0),
 * the CUDA-core GEMV (everything at n <= 16) and the f16 tiles (n > 16) */
static void test_cuda_qmatmul(void) {
    static const int64_t ns[] = {1, 3, 8, 9, 16, 17, 40};
    for (int ti = 1; ti < LQ_QT_COUNT; ti++) {
        const lq_qtype         t  = (lq_qtype)ti;
        const lq_qtype_traits *tr = lq_qtype_traits_of(t);
        if (tr->kind == LQ_QK_KEEP) continue;
        const int64_t cols = tr->kind == LQ_QK_GGML ? (tr->block == 256 ? 512 : 160) : 384;
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            qmatmul_case(t, ns[i], 37, cols, i % 2 == 0, 3000 + 10 * (uint64_t)ti + i);
        if (tr->group <= 0) qmatmul_case(t, 2, 19, 301, true, 3500 + (uint64_t)ti); /* odd width: partial units */
    }
    /* Llama widths */
    qmatmul_case(LQ_QT_INT4_G128, 1, 4096, 4096, false, 3901);
    qmatmul_case(LQ_QT_INT4_G128, 16, 300, 14336, true, 3902);
    qmatmul_case(LQ_QT_INT8_CH, 5, 1000, 4096, false, 3903);
    qmatmul_case(LQ_QT_Q4_K, 1, 1000, 4096, false, 3904);
    qmatmul_case(LQ_QT_Q4_K, 64, 1000, 4096, true, 3905);
    /* refusals */
    qhost     q  = qhost_make(LQ_QT_INT4_G32_ASYM, 4, 64, 0.1, 3999);
    lq_weight dw = qdev(&q);
    float    *d  = NULL;
    CU_ASSERT_EQUAL_FATAL(lq_cuda_malloc((void **)&d, 4096), LQ_OK);
    lq_test_quiet(1);
    lq_weight bad = dw;
    bad.scales    = NULL;
    CU_ASSERT_EQUAL(lq_cuda_matmul(d, d, 1, &bad, NULL), LQ_ERR_INVALID_ARG);
    bad       = dw;
    bad.zeros = NULL;
    CU_ASSERT_EQUAL(lq_cuda_matmul(d, d, 1, &bad, NULL), LQ_ERR_INVALID_ARG);
    bad      = dw;
    bad.cols = 48;
    CU_ASSERT_EQUAL(lq_cuda_matmul(d, d, 1, &bad, NULL), LQ_ERR_SHAPE);
    bad       = dw;
    bad.qtype = LQ_QT_COUNT;
    CU_ASSERT_EQUAL(lq_cuda_matmul(d, d, 1, &bad, NULL), LQ_ERR_UNSUPPORTED);
    lq_test_quiet(0);
    dev_free(d);
    qdev_free(&dw);
    qhost_free(&q);
}

/* KEEP types behave like plain weights of their dtype, whatever w.dtype says */
static void test_cuda_qmatmul_keep(void) {
    uint64_t        s  = 3950;
    const lq_weight hw = host_weight(LQ_DTYPE_F16, 33, 64, 0.5f, 0.f, &s);
    void           *base = NULL;
    lq_weight       dw   = dev_weight(&hw, 0, &base), dk = dw;
    dk.dtype             = LQ_DTYPE_U8;
    dk.qtype             = LQ_QT_F16;
    float x[3 * 64], a[3 * 33], b[3 * 33];
    fill(x, 3 * 64, 1.f, &s);
    float *const d_x = dev_put(x, sizeof x);
    float       *d_y = NULL;
    CU_ASSERT_EQUAL_FATAL(lq_cuda_malloc((void **)&d_y, sizeof a), LQ_OK);
    for (int64_t n = 1; n <= 3; n += 2) {
        CU_ASSERT_EQUAL(lq_cuda_matmul(d_y, d_x, n, &dw, NULL), LQ_OK);
        dev_get(a, d_y, sizeof(float) * (size_t)(n * 33));
        CU_ASSERT_EQUAL(lq_cuda_matmul(d_y, d_x, n, &dk, NULL), LQ_OK);
        dev_get(b, d_y, sizeof(float) * (size_t)(n * 33));
        CU_ASSERT_EQUAL(memcmp(a, b, sizeof(float) * (size_t)(n * 33)), 0);
    }
    dev_free(base), dev_free(d_x), dev_free(d_y);
    free_const(hw.data);
}

static void test_cuda_qembed(void) {
    for (int ti = 1; ti < LQ_QT_COUNT; ti++) {
        const lq_qtype         t  = (lq_qtype)ti;
        const lq_qtype_traits *tr = lq_qtype_traits_of(t);
        if (tr->kind == LQ_QK_KEEP) continue;
        const int64_t   V = 57, C = tr->kind == LQ_QK_GGML ? (tr->block == 256 ? 256 : 96)
                                      : tr->group > 0        ? 128 /* INT groups of 32..128 */
                                                             : (ti % 2 ? 301 : 128);
        const int64_t   n = 9;
        uint64_t        s = 4000 + (uint64_t)ti;
        qhost           q = qhost_make(t, V, C, 1.0, s);
        const lq_weight dw = qdev(&q);
        int32_t         ids[9];
        for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)(lq_test_rand(&s) % V);
        ids[0] = 0, ids[1] = (int32_t)(V - 1);
        float *const want = malloc(sizeof(float) * (size_t)(n * C)), *const got = malloc(sizeof(float) * (size_t)(n * C));
        CU_ASSERT_FATAL(want && got);
        CU_ASSERT_EQUAL(lq_embed_ref(want, &q.w, ids, n), LQ_OK);
        int32_t *const d_ids = dev_put(ids, sizeof ids);
        float         *d_out = NULL;
        CU_ASSERT_EQUAL_FATAL(lq_cuda_malloc((void **)&d_out, sizeof(float) * (size_t)(n * C)), LQ_OK);
        CU_ASSERT_EQUAL(lq_cuda_embed(d_out, &dw, d_ids, n), LQ_OK);
        dev_get(got, d_out, sizeof(float) * (size_t)(n * C));
        if (memcmp(got, want, sizeof(float) * (size_t)(n * C)) != 0) {
            printf("\n  qembed %s: not bit-identical to lq_embed_ref", tr->name);
            CU_FAIL("qembed");
        }
        ids[4] = (int32_t)V;
        CU_ASSERT_EQUAL(lq_cuda_memcpy_h2d(d_ids, ids, sizeof ids), LQ_OK);
        lq_test_quiet(1);
        CU_ASSERT_EQUAL(lq_cuda_embed(d_out, &dw, d_ids, n), LQ_ERR_INVALID_ARG);
        lq_test_quiet(0);
        qdev_free(&dw), dev_free(d_ids), dev_free(d_out);
        qhost_free(&q);
        free(want), free(got);
    }
}

/* a random model whose matrices are quantized (a different type per matrix),
 * through lq_cuda_llama_forward against the `_ref` forward */
static void test_cuda_llama_quantized(void) {
    static const lq_qtype mix[2][7] = {
        /* wq, wk, wv, wo, gate, up, down (down has 172 columns: per-channel or FP8 only) */
        {LQ_QT_INT4_G32, LQ_QT_INT8_CH, LQ_QT_Q8_0, LQ_QT_Q4_0, LQ_QT_INT4_CH_ASYM, LQ_QT_Q5_0, LQ_QT_FP8_E4M3_CH},
        {LQ_QT_INT8_G64_ASYM, LQ_QT_INT3_G32, LQ_QT_INT2_G64_ASYM, LQ_QT_FP8_E4M3_TENSOR, LQ_QT_INT4_G64,
         LQ_QT_INT8_G32, LQ_QT_INT4_CH},
    };
    enum { S = 32, B = 17, N_TOK = 22 };
    for (int variant = 0; variant < 2; variant++) {
        rand_llama m;
        rand_llama_init(&m, LQ_DTYPE_F32, false, variant == 1, true, 8200 + (uint64_t)variant);
        qhost qs[RL_LAYERS * 7 + 2];
        int   nq = 0;
        for (int l = 0; l < RL_LAYERS; l++) {
            lq_llama_layer *y     = &m.layers[l];
            lq_weight *const all[7] = {&y->wq, &y->wk, &y->wv, &y->wo, &y->w_gate, &y->w_up, &y->w_down};
            for (int i = 0; i < 7; i++) {
                const lq_qtype t = mix[(variant + l) % 2][i];
                qs[nq]           = qhost_make(t, all[i]->rows, all[i]->cols, 1.0 / sqrt((double)all[i]->cols),
                                              9000 + (uint64_t)(100 * variant + 10 * l + i));
                free_const(all[i]->data);
                *all[i] = qs[nq++].w;
            }
        }
        free_const(m.w.embed.data), free_const(m.w.lm_head.data);
        qs[nq]      = qhost_make(LQ_QT_INT4_G64, RL_VOCAB, RL_DIM, 1.0, 9900 + (uint64_t)variant);
        m.w.embed   = qs[nq++].w;
        qs[nq]      = qhost_make(LQ_QT_Q8_0, RL_VOCAB, RL_DIM, 1.0 / sqrt((double)RL_DIM), 9950 + (uint64_t)variant);
        m.w.lm_head = qs[nq++].w;
        lq_cuda_llama *g = NULL;
        CU_ASSERT_EQUAL_FATAL(lq_cuda_llama_init(&m.w, S, B, &g), LQ_OK);
        ref_llama r;
        ref_llama_init(&r, &m.w, S, false);
        uint64_t s = 8300 + (uint64_t)variant;
        int32_t  tok[N_TOK];
        for (int i = 0; i < N_TOK; i++) tok[i] = (int32_t)(lq_test_rand(&s) % RL_VOCAB);
        float *const want = malloc(sizeof(float) * B * RL_VOCAB), *const got = malloc(sizeof(float) * B * RL_VOCAB);
        CU_ASSERT_FATAL(want && got);
        ref_forward(&r, tok, B, 0, want, false);
        CU_ASSERT_EQUAL(lq_cuda_llama_forward(g, tok, B, 0, got, false), LQ_OK);
        double worst = rel_err(got, want, B * RL_VOCAB);
        for (int i = 0; i < N_TOK - B; i++) {
            ref_forward(&r, tok + B + i, 1, B + i, want, true);
            CU_ASSERT_EQUAL(lq_cuda_llama_forward(g, tok + B + i, 1, B + i, got, true), LQ_OK);
            const double e = rel_err(got, want, RL_VOCAB);
            worst          = e > worst ? e : worst;
        }
        printf("\n  llama quantized (variant %d): worst rel err %.3g (budget %.0e)", variant, worst, TOL_MODEL_QUANT);
        CU_ASSERT(worst < TOL_MODEL_QUANT);
        lq_cuda_llama_free(g);
        ref_llama_free(&r);
        free(want), free(got);
        /* the quantized matrices are ours: free them, then what rand_llama still owns */
        for (int l = 0; l < RL_LAYERS; l++) {
            lq_llama_layer *y = &m.layers[l];
            y->wq.data = y->wk.data = y->wv.data = y->wo.data = NULL;
            y->w_gate.data = y->w_up.data = y->w_down.data = NULL;
        }
        m.w.embed.data = m.w.lm_head.data = NULL;
        for (int i = 0; i < nq; i++) qhost_free(&qs[i]);
        rand_llama_free(&m);
    }
}


/* ---- GPTQ on the device: lq_cuda_hessian_accum, lq_cuda_gptq, act-order matmuls, the engine ---- */
static void *dev_copy(const void *h, size_t n) {
    void *d = NULL;
    CU_ASSERT_FATAL(lq_cuda_malloc(&d, n) == LQ_OK);
    CU_ASSERT_FATAL(lq_cuda_memcpy_h2d(d, h, n) == LQ_OK);
    return d;
}

static void test_cuda_hessian(void) {
    const int64_t n = 700, C = 96;
    uint64_t      s = 3;
    float        *x = malloc((size_t)(n * C) * sizeof *x);
    for (int64_t i = 0; i < n * C; i++) x[i] = lq_test_randf(&s);
    double *h = calloc((size_t)(C * C), sizeof *h), *d = calloc((size_t)(C * C), sizeof *d);
    CU_ASSERT_FATAL(lq_hessian_accum_cpu(h, x, n, C, 0.25, 0) == LQ_OK);
    float  *dx = dev_copy(x, (size_t)(n * C) * 4);
    double *dh = dev_copy(d, (size_t)(C * C) * 8);
    CU_ASSERT_FATAL(lq_cuda_hessian_accum(dh, dx, n, C, 0.25) == LQ_OK);
    CU_ASSERT_FATAL(lq_cuda_memcpy_d2h(d, dh, (size_t)(C * C) * 8) == LQ_OK);
    double worst = 0;
    for (int64_t i = 0; i < C * C; i++) worst = fmax(worst, fabs(d[i] - h[i]) / (fabs(h[i]) + 1.0));
    CU_ASSERT(worst < 1e-5);
    lq_cuda_free(dx), lq_cuda_free(dh), free(x), free(h), free(d);
}

static void test_cuda_gptq_vs_cpu(void) {
    struct {
        lq_qtype t;
        bool     act, stat;
        int64_t  R, C;
    } cases[] = {{LQ_QT_INT4_G128, false, false, 64, 256},     {LQ_QT_INT4_G32_ASYM, true, false, 256, 1024},
                 {LQ_QT_INT3_CH, true, false, 64, 256},        {LQ_QT_INT8_CH, false, false, 64, 256},
                 {LQ_QT_INT4_G128, true, true, 128, 512}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int64_t R = cases[c].R, C = cases[c].C, n = 2 * C;
        uint64_t      s = 40 + c;
        float        *w = malloc((size_t)(R * C) * 4), *x = malloc((size_t)(n * C) * 4);
        for (int64_t i = 0; i < R * C; i++) w[i] = 0.05f * lq_test_randf(&s);
        for (int64_t i = 0; i < n * C; i++) x[i] = lq_test_randf(&s) * (1.f + (float)(i % 5)) + (i % C ? 0.5f * x[i - 1] : 0.f);
        double *H = calloc((size_t)(C * C), 8);
        lq_hessian_accum_ref(H, x, n, C, 2.0 / (double)n);
        lq_gptq_params p = lq_gptq_default_params();
        p.qtype = cases[c].t, p.act_order = cases[c].act, p.static_groups = cases[c].stat;
        const size_t nb = (size_t)(lq_qtype_row_bytes(p.qtype, C) * (uint64_t)R), ns = (size_t)lq_qtype_n_scales(p.qtype, R, C);
        uint8_t *d1 = calloc(nb, 1), *d2 = calloc(nb, 1), *z1 = calloc(ns, 1), *z2 = calloc(ns, 1);
        float   *s1 = calloc(ns, 4), *s2 = calloc(ns, 4);
        int32_t *g1 = calloc((size_t)C, 4), *g2 = calloc((size_t)C, 4);
        lq_gptq_stats a, b;
        CU_ASSERT_FATAL(lq_gptq_cpu(&p, w, R, C, H, d1, s1, z1, g1, &a, 0) == LQ_OK);
        float  *dw = dev_copy(w, (size_t)(R * C) * 4);
        double *dh = dev_copy(H, (size_t)(C * C) * 8);
        CU_ASSERT_FATAL(lq_cuda_gptq(&p, dw, R, C, dh, d2, s2, z2, g2, &b) == LQ_OK);
        lq_weight wa = {LQ_DTYPE_U8, d1, R, C, p.qtype, s1, lq_qtype_has_zeros(p.qtype) ? z1 : NULL, NULL, 0};
        lq_weight wb = {LQ_DTYPE_U8, d2, R, C, p.qtype, s2, lq_qtype_has_zeros(p.qtype) ? z2 : NULL, NULL, 0};
        float    *ra = malloc((size_t)C * 4), *rb = malloc((size_t)C * 4);
        int64_t   same = 0;
        for (int64_t r = 0; r < R; r++) {
            lq_weight_row_f32(&wa, r, ra);
            lq_weight_row_f32(&wb, r, rb);
            for (int64_t k = 0; k < C; k++) same += ra[k] == rb[k];
        }
        CU_ASSERT((double)same / (double)(R * C) >= 0.995);
        CU_ASSERT(fabs(a.loss - b.loss) <= 1e-3 * a.loss);
        CU_ASSERT(memcmp(g1, g2, (size_t)C * 4) == 0);
        CU_ASSERT_EQUAL(a.retries, b.retries);
        lq_cuda_free(dw), lq_cuda_free(dh);
        free(w), free(x), free(H), free(d1), free(d2), free(z1), free(z2), free(s1), free(s2), free(g1), free(g2);
        free(ra), free(rb);
    }
}

static void test_cuda_matmul_perm(void) {
    const int64_t R = 48, C = 128, n = 5;
    uint64_t      s = 8;
    float        *w = malloc((size_t)(R * C) * 4), *x = malloc((size_t)(n * C) * 4);
    for (int64_t i = 0; i < R * C; i++) w[i] = lq_test_randf(&s);
    for (int64_t i = 0; i < n * C; i++) x[i] = lq_test_randf(&s);
    int32_t *perm = malloc((size_t)C * 4);
    for (int64_t k = 0; k < C; k++) perm[k] = (int32_t)((k * 37 + 11) % C);
    const lq_qtype t = LQ_QT_INT4_G32;
    uint8_t       *d = calloc((size_t)(lq_qtype_row_bytes(t, C) * (uint64_t)R), 1);
    float         *sc = malloc((size_t)lq_qtype_n_scales(t, R, C) * 4);
    CU_ASSERT_FATAL(lq_quantize_ref(t, w, R, C, NULL, d, sc, NULL) == LQ_OK);
    const lq_weight hw = {LQ_DTYPE_U8, d, R, C, t, sc, NULL, perm, 0};
    float          *y1 = malloc((size_t)(n * R) * 4), *y2 = malloc((size_t)(n * R) * 4);
    CU_ASSERT_FATAL(lq_matmul_ref(y1, x, n, &hw, NULL) == LQ_OK);
    void     *dd = dev_copy(d, (size_t)(lq_qtype_row_bytes(t, C) * (uint64_t)R));
    float    *ds = dev_copy(sc, (size_t)lq_qtype_n_scales(t, R, C) * 4);
    int32_t  *dp = dev_copy(perm, (size_t)C * 4);
    lq_weight dw = hw;
    dw.data = dd, dw.scales = ds, dw.perm = dp;
    float *dx = dev_copy(x, (size_t)(n * C) * 4), *dy = NULL;
    CU_ASSERT_FATAL(lq_cuda_malloc((void **)&dy, (size_t)(n * R) * 4) == LQ_OK);
    CU_ASSERT_FATAL(lq_cuda_matmul(dy, dx, n, &dw, NULL) == LQ_OK);
    CU_ASSERT_FATAL(lq_cuda_memcpy_d2h(y2, dy, (size_t)(n * R) * 4) == LQ_OK);
    for (int64_t i = 0; i < n * R; i++) CU_ASSERT(fabsf(y1[i] - y2[i]) <= 1e-4f * (1.f + fabsf(y1[i])));
    lq_cuda_free(dd), lq_cuda_free(ds), lq_cuda_free(dp);
    lq_cuda_free(dx), lq_cuda_free(dy);
    free(w), free(x), free(perm), free(d), free(sc), free(y1), free(y2);
}

/* a random permutation of [0, n) (malloc'ed) */
static int32_t *rand_perm(int64_t n, uint64_t seed) {
    int32_t *p = malloc((size_t)n * sizeof *p);
    uint64_t s = seed;
    CU_ASSERT_FATAL(p != NULL);
    for (int64_t k = 0; k < n; k++) p[k] = (int32_t)k;
    for (int64_t k = n - 1; k > 0; k--) {
        const int64_t j = (int64_t)(lq_test_rand(&s) % (uint64_t)(k + 1));
        const int32_t t = p[k];
        p[k] = p[j], p[j] = t;
    }
    return p;
}

/* act-order weights (lq_weight.perm) on the device: lq_cuda_matmul against lq_matmul_ref for the GEMV and GEMM
 * paths and several INT types; then a whole lq_cuda_llama whose matrices carry perms (uploaded by
 * lq_cuda_llama_init) against the `_ref` forward, with q/k/v and gate/up mixing perm and no perm so that the
 * scratch reuse between the matmuls of a group is exercised */
static void test_cuda_perm_parity(void) {
    static const lq_qtype types[] = {LQ_QT_INT4_G32, LQ_QT_INT8_G64_ASYM, LQ_QT_INT3_G32, LQ_QT_INT4_CH_ASYM};
    static const int64_t  ns[]    = {1, 5, 40};
    const int64_t         R = 72, C = 256;
    uint64_t              s = 77;
    float *x = malloc((size_t)(40 * C) * 4), *y1 = malloc((size_t)(40 * R) * 4), *y2 = malloc((size_t)(40 * R) * 4);
    CU_ASSERT_FATAL(x && y1 && y2);
    fill(x, 40 * C, 1.f, &s);
    float *dx = dev_copy(x, (size_t)(40 * C) * 4), *dy = NULL;
    CU_ASSERT_FATAL(lq_cuda_malloc((void **)&dy, (size_t)(40 * R) * 4) == LQ_OK);
    double worst = 0;
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        qhost     q    = qhost_make(types[t], R, C, 1.0 / sqrt((double)C), 7100 + t);
        int32_t  *perm = rand_perm(C, 7200 + t);
        lq_weight hw   = q.w;
        hw.perm        = perm;
        lq_weight dw   = qdev(&q);
        int32_t  *dp   = dev_copy(perm, (size_t)C * 4);
        dw.perm        = dp;
        for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
            const int64_t n = ns[k];
            CU_ASSERT_FATAL(lq_matmul_ref(y1, x, n, &hw, NULL) == LQ_OK);
            CU_ASSERT_FATAL(lq_cuda_matmul(dy, dx, n, &dw, NULL) == LQ_OK);
            CU_ASSERT_FATAL(lq_cuda_memcpy_d2h(y2, dy, (size_t)(n * R) * 4) == LQ_OK);
            const double e = rel_err(y2, y1, n * R);
            worst          = e > worst ? e : worst;
            if (!(e < TOL_QMATMUL))
                printf("\n  perm matmul %s n=%lld: rel err %.3g", lq_qtype_name(types[t]), (long long)n, e);
            CU_ASSERT(e < TOL_QMATMUL);
        }
        lq_cuda_free(dp);
        qdev_free(&dw);
        qhost_free(&q);
        free(perm);
    }
    printf("\n  perm matmuls: worst rel err %.3g (budget %.0e)", worst, TOL_QMATMUL);
    lq_cuda_free(dx), lq_cuda_free(dy);
    free(x), free(y1), free(y2);

    /* the whole model: wq, wk (perm), wv (none), wo (perm), gate (perm), up (none), down (per channel, perm) */
    enum { S = 32, B = 17, N_TOK = 22 };
    static const lq_qtype mix[7]  = {LQ_QT_INT4_G32,      LQ_QT_INT8_G64_ASYM, LQ_QT_INT4_G32, LQ_QT_INT4_G64,
                                     LQ_QT_INT4_G32_ASYM, LQ_QT_INT4_G32,      LQ_QT_INT4_CH};
    static const bool     with[7] = {true, true, false, true, true, false, true};
    rand_llama m;
    rand_llama_init(&m, LQ_DTYPE_F32, false, true, true, 8400);
    qhost    qs[RL_LAYERS * 7];
    int32_t *perms[RL_LAYERS * 7];
    int      nq = 0;
    for (int l = 0; l < RL_LAYERS; l++) {
        lq_llama_layer  *y      = &m.layers[l];
        lq_weight *const all[7] = {&y->wq, &y->wk, &y->wv, &y->wo, &y->w_gate, &y->w_up, &y->w_down};
        for (int i = 0; i < 7; i++) {
            qs[nq]    = qhost_make(mix[i], all[i]->rows, all[i]->cols, 1.0 / sqrt((double)all[i]->cols),
                                   8500 + (uint64_t)(10 * l + i));
            perms[nq] = with[i] ? rand_perm(all[i]->cols, 8600 + (uint64_t)(10 * l + i)) : NULL;
            free_const(all[i]->data);
            *all[i]      = qs[nq].w;
            all[i]->perm = perms[nq];
            nq++;
        }
    }
    lq_cuda_llama *g = NULL;
    CU_ASSERT_EQUAL_FATAL(lq_cuda_llama_init(&m.w, S, B, &g), LQ_OK);
    ref_llama r;
    ref_llama_init(&r, &m.w, S, false);
    uint64_t ts = 8700;
    int32_t  tok[N_TOK];
    for (int i = 0; i < N_TOK; i++) tok[i] = (int32_t)(lq_test_rand(&ts) % RL_VOCAB);
    float *const want = malloc(sizeof(float) * B * RL_VOCAB), *const got = malloc(sizeof(float) * B * RL_VOCAB);
    CU_ASSERT_FATAL(want && got);
    ref_forward(&r, tok, B, 0, want, false);
    CU_ASSERT_EQUAL(lq_cuda_llama_forward(g, tok, B, 0, got, false), LQ_OK);
    worst = rel_err(got, want, B * RL_VOCAB);
    for (int i = 0; i < N_TOK - B; i++) {
        ref_forward(&r, tok + B + i, 1, B + i, want, true);
        CU_ASSERT_EQUAL(lq_cuda_llama_forward(g, tok + B + i, 1, B + i, got, true), LQ_OK);
        const double e = rel_err(got, want, RL_VOCAB);
        worst          = e > worst ? e : worst;
    }
    printf("\n  llama with act-order perms: worst rel err %.3g (budget %.0e)", worst, TOL_MODEL_QUANT);
    CU_ASSERT(worst < TOL_MODEL_QUANT);
    lq_cuda_llama_free(g);
    ref_llama_free(&r);
    free(want), free(got);
    for (int l = 0; l < RL_LAYERS; l++) {
        lq_llama_layer *y = &m.layers[l];
        y->wq.data = y->wk.data = y->wv.data = y->wo.data = NULL;
        y->w_gate.data = y->w_up.data = y->w_down.data = NULL;
    }
    for (int i = 0; i < nq; i++) qhost_free(&qs[i]), free(perms[i]);
    rand_llama_free(&m);
}

static lq_qtype cuda_int4(const char *name, void *user) {
    (void)name, (void)user;
    return LQ_QT_INT4_G32;
}

/* the whole engine on the device agrees with the CPU engine */
static void test_cuda_gptq_engine(void) {
    const char     *dir = lq_test_tmpdir("cuda_gptq_model");
    lq_synth_params sp  = lq_synth_default_params();
    sp.dim = 128, sp.hidden = 256, sp.n_layers = 2, sp.n_heads = 4, sp.n_kv_heads = 2, sp.vocab = 300, sp.max_pos = 128;
    sp.dtype = LQ_DTYPE_F16;
    CU_ASSERT_FATAL(lq_synth_write(dir, &sp, NULL) == LQ_OK);
    int32_t  ids[3000];
    uint64_t s = 1;
    for (int i = 0; i < 3000; i++) ids[i] = 3 + (int32_t)(lq_test_rand(&s) % 290);
    lq_calib_params cp = lq_calib_default_params();
    cp.n_samples = 8, cp.seq_len = 64;
    lq_calib_set *cs = NULL;
    CU_ASSERT_FATAL(lq_calib_from_tokens(ids, 3000, 1, &cp, &cs) == LQ_OK);
    lq_gptq_run_params p = lq_gptq_run_default_params();
    p.tmp_parent = lq_test_tmpdir("cuda_gptq_work");
    p.no_fsync   = true;
    lq_gptq_result *a = NULL, *b = NULL;
    CU_ASSERT_FATAL(lq_gptq_run(dir, cs, cuda_int4, NULL, &p, &a) == LQ_OK);
    p.backend = LQ_BACKEND_CUDA;
    CU_ASSERT_FATAL(lq_gptq_run(dir, cs, cuda_int4, NULL, &p, &b) == LQ_OK);
    CU_ASSERT_EQUAL_FATAL(lq_gptq_result_count(a), lq_gptq_result_count(b));
    for (int64_t i = 0; i < lq_gptq_result_count(a); i++) {
        const lq_gptq_layer *x = lq_gptq_result_layer(a, i), *y = lq_gptq_result_layer(b, i);
        CU_ASSERT(fabs(x->stats.loss - y->stats.loss) <= 0.02 * x->stats.loss);
    }
    lq_gptq_result_free(a), lq_gptq_result_free(b), lq_calib_free(cs);
}

/* ---- lq_cuda_gptq / lq_cuda_hessian_accum against lq_gptq_cpu / lq_hessian_accum_cpu ----
 * Codes may differ at rare rounding ties (cuSOLVER and cuBLAS sum in another
 * order), and a tie changes the rest of that row: budget >= 99.5 % equal
 * codes; a row whose codes all agree must have the same scales and zeros;
 * loss within 1e-3 relative; g_idx and the damping statistics identical. */
#define GQ_TOL_CODES 0.995
#define GQ_TOL_LOSS  1e-3
#define GQ_TOL_HESS  1e-5

static void *gq_dev_copy(const void *h, size_t n) {
    void *d = NULL;
    CU_ASSERT_FATAL(lq_cuda_malloc(&d, n) == LQ_OK);
    CU_ASSERT_FATAL(lq_cuda_memcpy_h2d(d, h, n) == LQ_OK);
    return d;
}

static unsigned gq_code(const uint8_t *row, int64_t k, int bits) {
    const uint64_t pos = (uint64_t)k * (uint64_t)bits;
    const unsigned off = (unsigned)(pos & 7u);
    unsigned       v   = row[pos >> 3];
    if (off + (unsigned)bits > 8u) v |= (unsigned)row[(pos >> 3) + 1] << 8;
    return (v >> off) & ((1u << bits) - 1u);
}

typedef struct {
    uint8_t      *data, *zeros;
    float        *scales;
    int32_t      *g_idx;
    lq_gptq_stats st;
} gq_out;

static void gq_alloc(gq_out *o, lq_qtype t, int64_t R, int64_t C) {
    const int64_t ns = lq_qtype_n_scales(t, R, C);
    o->data          = calloc((size_t)(lq_qtype_row_bytes(t, C) * (uint64_t)R), 1);
    o->zeros         = calloc((size_t)ns, 1);
    o->scales        = calloc((size_t)ns, sizeof(float));
    o->g_idx         = calloc((size_t)C, sizeof(int32_t));
    memset(&o->st, 0, sizeof o->st);
    CU_ASSERT_FATAL(o->data && o->zeros && o->scales && o->g_idx);
}

static void gq_free(gq_out *o) { free(o->data), free(o->zeros), free(o->scales), free(o->g_idx); }

/* H = (2/n) X^T X, X (n x C) with columns of unequal scale and neighbours correlated */
static double *gq_hessian(int64_t n, int64_t C, uint64_t seed) {
    float  *x = malloc((size_t)(n * C) * sizeof *x);
    double *H = calloc((size_t)(C * C), sizeof *H);
    CU_ASSERT_FATAL(x && H);
    for (int64_t t = 0; t < n; t++)
        for (int64_t j = 0; j < C; j++) {
            const float u = lq_test_randf(&seed) * (1.f + (float)(j % 5));
            x[t * C + j]  = j ? u + 0.5f * x[t * C + j - 1] : u;
        }
    lq_hessian_accum_ref(H, x, n, C, 2.0 / (double)n);
    free(x);
    return H;
}

/* lq_cuda_gptq(H, w) against lq_gptq_cpu; returns the number of failed checks (and prints them) */
static int gq_compare(const char *what, const lq_gptq_params *p, const float *w, int64_t R, int64_t C,
                      const double *H) {
    const lq_qtype_traits *tr   = lq_qtype_traits_of(p->qtype);
    const int              bits = tr->bits;
    const int64_t          ng = lq_qtype_n_groups(p->qtype, C), rb = (int64_t)lq_qtype_row_bytes(p->qtype, C);
    gq_out                 a, b;
    gq_alloc(&a, p->qtype, R, C);
    gq_alloc(&b, p->qtype, R, C);
    CU_ASSERT_FATAL(lq_gptq_cpu(p, w, R, C, H, a.data, a.scales, a.zeros, a.g_idx, &a.st, 0) == LQ_OK);
    float  *dw = gq_dev_copy(w, (size_t)(R * C) * sizeof(float));
    double *dh = gq_dev_copy(H, (size_t)(C * C) * sizeof(double));
    const lq_status s = lq_cuda_gptq(p, dw, R, C, dh, b.data, b.scales, b.zeros, b.g_idx, &b.st);
    CU_ASSERT_EQUAL(s, LQ_OK);
    int64_t same = 0, rows_same = 0, scale_bad = 0;
    for (int64_t r = 0; r < R; r++) {
        int64_t row_same = 0;
        for (int64_t k = 0; k < C; k++)
            row_same += gq_code(a.data + r * rb, k, bits) == gq_code(b.data + r * rb, k, bits);
        same += row_same;
        if (row_same != C) continue;
        rows_same++;
        for (int64_t g = 0; g < ng; g++)
            scale_bad += a.scales[r * ng + g] != b.scales[r * ng + g] ||
                         (!tr->sym && a.zeros[r * ng + g] != b.zeros[r * ng + g]);
    }
    /* padding bits of each row are zero on both sides */
    int64_t pad_bad = 0;
    for (int64_t r = 0; r < R; r++)
        for (int64_t bit = C * bits; bit < rb * 8; bit++) pad_bad += (b.data[r * rb + bit / 8] >> (bit % 8)) & 1;
    const double frac  = (double)same / (double)(R * C);
    const double lossd = fabs(a.st.loss - b.st.loss) / (a.st.loss > 0 ? a.st.loss : 1.0);
    const bool   gi_ok = memcmp(a.g_idx, b.g_idx, (size_t)C * sizeof(int32_t)) == 0;
    int          fails = 0;
    fails += s != LQ_OK;
    fails += !(frac >= GQ_TOL_CODES);
    fails += scale_bad != 0;
    fails += !(lossd <= GQ_TOL_LOSS);
    fails += !gi_ok;
    fails += pad_bad != 0;
    fails += a.st.retries != b.st.retries || a.st.damp != b.st.damp || a.st.dead_cols != b.st.dead_cols;
    if (fails)
        printf("\n  gptq %s %s %lldx%lld act %d static %d mse %d block %d: codes %.4f equal (%lld/%lld rows), "
               "%lld scale mismatches in equal rows, loss cpu %.9g cuda %.9g (rel %.2e), g_idx %s, pad bits %lld, "
               "retries %d/%d damp %g/%g dead %lld/%lld",
               what, lq_qtype_name(p->qtype), (long long)R, (long long)C, p->act_order, p->static_groups, p->mse,
               p->block_size, frac, (long long)rows_same, (long long)R, (long long)scale_bad, a.st.loss, b.st.loss,
               lossd, gi_ok ? "equal" : "DIFFERENT", (long long)pad_bad, a.st.retries, b.st.retries, a.st.damp,
               b.st.damp, (long long)a.st.dead_cols, (long long)b.st.dead_cols);
    CU_ASSERT(frac >= GQ_TOL_CODES);
    CU_ASSERT_EQUAL(scale_bad, 0);
    CU_ASSERT(lossd <= GQ_TOL_LOSS);
    CU_ASSERT(gi_ok);
    CU_ASSERT_EQUAL(pad_bad, 0);
    CU_ASSERT_EQUAL(a.st.retries, b.st.retries);
    CU_ASSERT_EQUAL(a.st.damp, b.st.damp);
    CU_ASSERT_EQUAL(a.st.dead_cols, b.st.dead_cols);
    lq_cuda_free(dw), lq_cuda_free(dh);
    gq_free(&a), gq_free(&b);
    return fails;
}

static float *gq_weights(int64_t R, int64_t C, uint64_t seed) {
    float *w = malloc((size_t)(R * C) * sizeof *w);
    CU_ASSERT_FATAL(w != NULL);
    for (int64_t i = 0; i < R * C; i++) w[i] = 0.05f * lq_test_randf(&seed) * (1.f + 0.5f * (float)(i % 3));
    return w;
}

/* H accumulated on the device over chunks (n not a multiple of 256), onto a non-zero H, with column tiles
 * (cols > 4096); exactly symmetric; n = 0 is a no-op */
static void test_cuda_hessian_accum_parity(void) {
    static const struct { int64_t n, C; } cases[] = {{700, 96}, {513, 100}, {1, 33}, {300, 4160}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int64_t n = cases[c].n, C = cases[c].C;
        uint64_t      s = 900 + c;
        float        *x = malloc((size_t)(n * C) * sizeof *x);
        double       *h = malloc((size_t)(C * C) * sizeof *h), *d = malloc((size_t)(C * C) * sizeof *d);
        CU_ASSERT_FATAL(x && h && d);
        for (int64_t i = 0; i < n * C; i++) x[i] = lq_test_randf(&s) * (1.f + (float)(i % C % 7));
        for (int64_t i = 0; i < C; i++)
            for (int64_t j = 0; j <= i; j++) h[i * C + j] = h[j * C + i] = i == j ? 3.0 : 0.25 * lq_test_randf(&s);
        double *dh = gq_dev_copy(h, (size_t)(C * C) * sizeof *h);
        float  *dx = gq_dev_copy(x, (size_t)(n * C) * sizeof *x);
        CU_ASSERT_FATAL(lq_hessian_accum_cpu(h, x, n, C, 0.375, 0) == LQ_OK);
        CU_ASSERT_FATAL(lq_cuda_hessian_accum(dh, dx, n, C, 0.375) == LQ_OK);
        CU_ASSERT_FATAL(lq_cuda_hessian_accum(dh, dx, 0, C, 0.375) == LQ_OK);
        CU_ASSERT_FATAL(lq_cuda_memcpy_d2h(d, dh, (size_t)(C * C) * sizeof *d) == LQ_OK);
        double  worst = 0;
        int64_t asym  = 0;
        for (int64_t i = 0; i < C; i++)
            for (int64_t j = 0; j < C; j++) {
                /* relative to sqrt(H_ii H_jj), the scale of entry (i, j) */
                const double e = fabs(d[i * C + j] - h[i * C + j]) / sqrt(h[i * C + i] * h[j * C + j]);
                worst          = e > worst ? e : worst;
                asym += d[i * C + j] != d[j * C + i];
            }
        if (!(worst <= GQ_TOL_HESS) || asym)
            printf("\n  hessian n %lld cols %lld: worst rel err %.3g, %lld asymmetric entries", (long long)n,
                   (long long)C, worst, (long long)asym);
        CU_ASSERT(worst <= GQ_TOL_HESS);
        CU_ASSERT_EQUAL(asym, 0);
        lq_cuda_free(dh), lq_cuda_free(dx);
        free(x), free(h), free(d);
    }
}

/* int4_g128, int4_g32_asym, int3_ch, int8_ch on 64x256 and 256x1024, plain / act-order / static / both */
static void test_cuda_gptq_parity(void) {
    static const lq_qtype types[] = {LQ_QT_INT4_G128, LQ_QT_INT4_G32_ASYM, LQ_QT_INT3_CH, LQ_QT_INT8_CH};
    static const struct { int64_t R, C; } shapes[] = {{64, 256}, {256, 1024}};
    for (size_t si = 0; si < 2; si++) {
        const int64_t R = shapes[si].R, C = shapes[si].C;
        double       *H = gq_hessian(2 * C, C, 70 + si);
        float        *w = gq_weights(R, C, 80 + si);
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
            for (int v = 0; v < 4; v++) {
                lq_gptq_params p = lq_gptq_default_params();
                p.qtype          = types[ti];
                p.act_order      = v & 1;
                p.static_groups  = (v & 2) != 0;
                if (p.static_groups && lq_qtype_traits_of(p.qtype)->group == 0) continue; /* a no-op per channel */
                (void)gq_compare("parity", &p, w, R, C, H);
            }
        free(H), free(w);
    }
}

/* the other paths: mse search, bf16/f32 scales, groups wider than the block (block 32) and a block beyond
 * the local-memory path (512), dead columns, int2 asym, a row count that leaves part of a warp idle */
static void test_cuda_gptq_paths(void) {
    for (int c = 0; c < 8; c++) {
        int64_t        R = 64, C = 256;
        lq_gptq_params p = lq_gptq_default_params();
        const char    *what = "";
        switch (c) {
        case 0: p.mse = true, what = "mse"; break;
        case 1: p.mse = true, p.qtype = LQ_QT_INT4_G32_ASYM, p.act_order = true, what = "mse"; break;
        case 2: p.scale_dtype = LQ_DTYPE_BF16, p.qtype = LQ_QT_INT4_G32_ASYM, what = "bf16 scales"; break;
        case 3: p.scale_dtype = LQ_DTYPE_F32, p.qtype = LQ_QT_INT8_CH, p.act_order = true, what = "f32 scales"; break;
        case 4: p.block_size = 32, p.act_order = true, what = "block 32"; break;
        case 5: p.block_size = 512, R = 96, C = 1024, p.qtype = LQ_QT_INT4_G32, what = "block 512"; break;
        case 6: p.act_order = true, p.qtype = LQ_QT_INT2_G64_ASYM, R = 37, what = "dead columns"; break;
        default: p.block_size = 100, p.qtype = LQ_QT_INT3_G32, R = 5, C = 320, what = "block 100"; break;
        }
        double *H = gq_hessian(2 * C, C, 500 + (uint64_t)c);
        float  *w = gq_weights(R, C, 600 + (uint64_t)c);
        if (c == 6) /* five dead columns: H_jj = 0 (their row and column of H zero) */
            for (int64_t j = 3; j < C; j += C / 5)
                for (int64_t k = 0; k < C; k++) H[j * C + k] = H[k * C + j] = 0;
        (void)gq_compare(what, &p, w, R, C, H);
        free(H), free(w);
    }
}

/* H not positive definite: damping retries (0.02 after 0.01; the diagonal floor), and past every retry */
static void test_cuda_gptq_retry(void) {
    const int64_t R = 64, C = 256;
    float        *w = gq_weights(R, C, 31);
    for (int c = 0; c < 3; c++) {
        double *H = gq_hessian(C / 2, C, 32); /* rank C/2: singular */
        double  m = 0;
        for (int64_t j = 0; j < C; j++) m += H[j * C + j];
        m /= (double)C;
        /* shift by -s: smallest eigenvalue -s, mean diagonal m - s, s = f (m - s) */
        const double f = c == 0 ? 0.015 : 0.07, s = f * m / (1.0 + f);
        for (int64_t j = 0; j < C; j++) H[j * C + j] = c == 2 ? -1.0 : H[j * C + j] - s;
        lq_gptq_params p = lq_gptq_default_params();
        p.act_order      = c == 1;
        if (c < 2) {
            CU_ASSERT(gq_compare(c == 0 ? "retry damp" : "retry floor", &p, w, R, C, H) == 0);
        } else {
            gq_out a, b;
            gq_alloc(&a, p.qtype, R, C);
            gq_alloc(&b, p.qtype, R, C);
            float  *dw = gq_dev_copy(w, (size_t)(R * C) * sizeof(float));
            double *dh = gq_dev_copy(H, (size_t)(C * C) * sizeof(double));
            lq_test_quiet(1);
            CU_ASSERT_EQUAL(lq_gptq_cpu(&p, w, R, C, H, a.data, a.scales, a.zeros, a.g_idx, &a.st, 0), LQ_ERR_NUMERIC);
            CU_ASSERT_EQUAL(lq_cuda_gptq(&p, dw, R, C, dh, b.data, b.scales, b.zeros, b.g_idx, &b.st), LQ_ERR_NUMERIC);
            lq_test_quiet(0);
            CU_ASSERT_EQUAL(a.st.retries, b.st.retries);
            lq_cuda_free(dw), lq_cuda_free(dh);
            gq_free(&a), gq_free(&b);
        }
        free(H);
    }
    free(w);
}

/* non-finite inputs, a type GPTQ cannot produce, a missing g_idx; repeated calls give identical bytes */
static void test_cuda_gptq_refusals(void) {
    const int64_t  R = 8, C = 64;
    float         *w = gq_weights(R, C, 41);
    double        *H = gq_hessian(2 * C, C, 42);
    lq_gptq_params p = lq_gptq_default_params();
    p.qtype          = LQ_QT_INT4_G32;
    gq_out a, b;
    gq_alloc(&a, p.qtype, R, C);
    gq_alloc(&b, p.qtype, R, C);
    float  *dw = gq_dev_copy(w, (size_t)(R * C) * sizeof(float));
    double *dh = gq_dev_copy(H, (size_t)(C * C) * sizeof(double));
    CU_ASSERT_EQUAL(lq_cuda_gptq(&p, dw, R, C, dh, a.data, a.scales, a.zeros, a.g_idx, &a.st), LQ_OK);
    CU_ASSERT_EQUAL(lq_cuda_gptq(&p, dw, R, C, dh, b.data, b.scales, b.zeros, b.g_idx, &b.st), LQ_OK);
    CU_ASSERT(memcmp(a.data, b.data, (size_t)(lq_qtype_row_bytes(p.qtype, C) * (uint64_t)R)) == 0);
    CU_ASSERT(memcmp(a.scales, b.scales, (size_t)lq_qtype_n_scales(p.qtype, R, C) * sizeof(float)) == 0);
    CU_ASSERT_EQUAL(a.st.loss, b.st.loss);
    lq_test_quiet(1);
    const float nan = NAN;
    CU_ASSERT_FATAL(lq_cuda_memcpy_h2d(dw + 77, &nan, sizeof nan) == LQ_OK);
    CU_ASSERT_EQUAL(lq_cuda_gptq(&p, dw, R, C, dh, b.data, b.scales, b.zeros, b.g_idx, &b.st), LQ_ERR_INVALID_ARG);
    CU_ASSERT_FATAL(lq_cuda_memcpy_h2d(dw + 77, w + 77, sizeof(float)) == LQ_OK);
    const double inf = INFINITY;
    CU_ASSERT_FATAL(lq_cuda_memcpy_h2d(dh + 5 * C + 9, &inf, sizeof inf) == LQ_OK);
    CU_ASSERT_EQUAL(lq_cuda_gptq(&p, dw, R, C, dh, b.data, b.scales, b.zeros, b.g_idx, &b.st), LQ_ERR_INVALID_ARG);
    CU_ASSERT_FATAL(lq_cuda_memcpy_h2d(dh + 5 * C + 9, H + 5 * C + 9, sizeof(double)) == LQ_OK);
    p.qtype = LQ_QT_FP8_E4M3_CH;
    CU_ASSERT_EQUAL(lq_cuda_gptq(&p, dw, R, C, dh, b.data, b.scales, b.zeros, b.g_idx, &b.st), LQ_ERR_SHAPE);
    p.qtype     = LQ_QT_INT4_G32;
    p.act_order = true;
    CU_ASSERT_EQUAL(lq_cuda_gptq(&p, dw, R, C, dh, b.data, b.scales, b.zeros, NULL, &b.st), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_cuda_gptq(NULL, dw, R, C, dh, b.data, b.scales, b.zeros, b.g_idx, &b.st), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_cuda_hessian_accum(NULL, (const float *)dw, 4, C, 1.0), LQ_ERR_INVALID_ARG);
    lq_test_quiet(0);
    lq_cuda_free(dw), lq_cuda_free(dh);
    gq_free(&a), gq_free(&b);
    free(w), free(H);
}

/* W8A8 on the device: the same int32 sums and epilogue order as lq_matmul_cpu: bit-identical */
static void test_cuda_w8a8(void) {
    uint64_t      seed = 77;
    const int64_t R = 96, C = 173, N = 37; /* C not a multiple of 4: padded words */
    float        *w = malloc((size_t)(R * C) * sizeof *w), *x = malloc((size_t)(N * C) * sizeof *x);
    float        *sc = malloc((size_t)R * sizeof *sc), *b = malloc((size_t)R * sizeof *b);
    const uint64_t rb = lq_qtype_row_bytes(LQ_QT_INT8_CH, C);
    uint8_t      *d  = malloc((size_t)(rb * (uint64_t)R));
    fill(w, R * C, 0.05f, &seed);
    fill(x, N * C, 2.0f, &seed);
    fill(b, R, 1.0f, &seed);
    const lq_quant_params qp = lq_quant_default_params();
    CU_ASSERT_FATAL(lq_quantize_ref(LQ_QT_INT8_CH, w, R, C, &qp, d, sc, NULL) == LQ_OK);
    const lq_weight hw = {LQ_DTYPE_U8, d, R, C, LQ_QT_INT8_CH, sc, NULL, NULL, 2.0f / 127};
    float          *want = malloc((size_t)(N * R) * sizeof *want), *got = malloc((size_t)(N * R) * sizeof *got);
    CU_ASSERT_FATAL(lq_matmul_cpu(want, x, N, &hw, b, 2) == LQ_OK);
    lq_weight dw = hw;
    dw.data      = dev_put(d, (size_t)(rb * (uint64_t)R));
    dw.scales    = dev_put(sc, (size_t)R * sizeof *sc);
    float *dx = dev_put(x, (size_t)(N * C) * sizeof *x), *db = dev_put(b, (size_t)R * sizeof *b), *dy = NULL;
    CU_ASSERT_EQUAL_FATAL(lq_cuda_malloc((void **)&dy, (size_t)(N * R) * sizeof *dy), LQ_OK);
    CU_ASSERT_EQUAL(lq_cuda_matmul(dy, dx, N, &dw, db), LQ_OK);
    dev_get(got, dy, (size_t)(N * R) * sizeof *got);
    CU_ASSERT(memcmp(got, want, (size_t)(N * R) * sizeof *got) == 0);
    dev_free(dw.data);
    dev_free(dw.scales);
    dev_free(dx);
    dev_free(db);
    dev_free(dy);
    free(w), free(x), free(sc), free(b), free(d), free(want), free(got);
}

/* activation statistics on the device: min/max exact, histogram counts equal to lq_histc_ref */
static void test_cuda_hist(void) {
    uint64_t      seed = 78;
    const int64_t n    = 300001;
    float        *x    = malloc((size_t)n * sizeof *x);
    fill(x, n, 3.0f, &seed);
    x[5]          = 3.0f;
    float *dx     = dev_put(x, (size_t)n * sizeof *x);
    float  mn = 0, mx = 0, hmn = x[0], hmx = x[0];
    for (int64_t i = 0; i < n; i++) hmn = x[i] < hmn ? x[i] : hmn, hmx = x[i] > hmx ? x[i] : hmx;
    CU_ASSERT_EQUAL(lq_cuda_minmax(dx, n, &mn, &mx), LQ_OK);
    CU_ASSERT(mn == hmn && mx == hmx);
    for (int absval = 0; absval < 2; absval++) {
        const lq_hist_range r = {absval ? 0 : -3.0, 3.0, 2048};
        int64_t *want = calloc(2048, sizeof *want), *got = calloc(2048, sizeof *got);
        lq_histc_ref(x, n, absval, &r, want);
        CU_ASSERT_EQUAL(lq_cuda_histc(dx, n, absval, r.lo, r.hi, r.n_bins, got), LQ_OK);
        CU_ASSERT(memcmp(got, want, 2048 * sizeof *got) == 0);
        free(want), free(got);
    }
    dev_free(dx);
    free(x);
}

/* the device capture hook: statistics of the CUDA runner against the CPU runner's on stories260K (the
 * activations differ by rounding only: equal counts, absmax within 1e-3 relative, histograms within 0.5% L1) */
static void test_cuda_actstats(void) {
    int32_t ids[2048];
    for (int i = 0; i < 2048; i++) ids[i] = 3 + (i * 37) % 500;
    lq_calib_params cp = lq_calib_default_params();
    cp.n_samples = 4, cp.seq_len = 128;
    lq_calib_set *c = NULL;
    CU_ASSERT_FATAL(lq_calib_from_tokens(ids, 2048, 1, &cp, &c) == LQ_OK);
    lq_actstats *st[2] = {NULL, NULL};
    for (int dev = 0; dev < 2; dev++) {
        lq_model_params mp = lq_model_default_params();
        mp.backend         = dev ? LQ_BACKEND_CUDA : LQ_BACKEND_CPU;
        mp.max_seq         = 128;
        lq_model *m        = NULL;
        CU_ASSERT_FATAL(lq_model_open(lq_test_shared("stories260K-hf"), &mp, &m) == LQ_OK);
        CU_ASSERT_FATAL(lq_actstats_collect(m, c, NULL, &st[dev]) == LQ_OK);
        lq_model_free(m);
    }
    for (int64_t i = 0; i < lq_actstats_count(st[0]); i++) {
        const lq_hist *a = lq_actstats_hist(st[0], i), *b = lq_actstats_hist(st[1], i);
        CU_ASSERT_EQUAL(lq_hist_count(a), lq_hist_count(b));
        CU_ASSERT(fabs(lq_hist_absmax(a) - lq_hist_absmax(b)) <= 1e-3 * lq_hist_absmax(a));
        int64_t l1 = 0;
        const int64_t nb = lq_hist_n_bins(a) < lq_hist_n_bins(b) ? lq_hist_n_bins(a) : lq_hist_n_bins(b);
        for (int64_t j = 0; j < nb; j++) l1 += llabs(lq_hist_counts(a)[j] - lq_hist_counts(b)[j]);
        CU_ASSERT(l1 <= lq_hist_count(a) / 200 + 4);
    }
    lq_actstats_free(st[0]);
    lq_actstats_free(st[1]);
    lq_calib_free(c);
}

CU_pSuite lq_test_cuda_suite(void) {
    CU_pSuite s = lq_test_add_suite("cuda");
    LQ_ADD_TEST(s, test_cuda_device);
    LQ_ADD_TEST(s, test_cuda_convert_all_patterns);
    LQ_ADD_TEST(s, test_cuda_convert_random);
    LQ_ADD_TEST(s, test_cuda_convert_refusals);
    LQ_ADD_TEST(s, test_cuda_matmul);
    LQ_ADD_TEST(s, test_cuda_w8a8);
    LQ_ADD_TEST(s, test_cuda_hist);
    LQ_ADD_TEST(s, test_cuda_actstats);
    LQ_ADD_TEST(s, test_cuda_embed);
    LQ_ADD_TEST(s, test_cuda_rmsnorm);
    LQ_ADD_TEST(s, test_cuda_rope);
    LQ_ADD_TEST(s, test_cuda_attention);
    LQ_ADD_TEST(s, test_cuda_swiglu);
    LQ_ADD_TEST(s, test_cuda_log_softmax);
    LQ_ADD_TEST(s, test_cuda_llama_f32);
    LQ_ADD_TEST(s, test_cuda_llama_f16);
    LQ_ADD_TEST(s, test_cuda_llama_bf16);
    LQ_ADD_TEST(s, test_cuda_llama_refusals);
    LQ_ADD_TEST(s, test_cuda_llama_stories260k);
    LQ_ADD_TEST(s, test_cuda_llama_decode_bandwidth);
    LQ_ADD_TEST(s, test_cuda_qmatmul);
    LQ_ADD_TEST(s, test_cuda_qmatmul_keep);
    LQ_ADD_TEST(s, test_cuda_qembed);
    LQ_ADD_TEST(s, test_cuda_llama_quantized);
    LQ_ADD_TEST(s, test_cuda_perm_parity);
    LQ_ADD_TEST(s, test_cuda_hessian);
    LQ_ADD_TEST(s, test_cuda_gptq_vs_cpu);
    LQ_ADD_TEST(s, test_cuda_matmul_perm);
    LQ_ADD_TEST(s, test_cuda_gptq_engine);
    LQ_ADD_TEST(s, test_cuda_hessian_accum_parity);
    LQ_ADD_TEST(s, test_cuda_gptq_parity);
    LQ_ADD_TEST(s, test_cuda_gptq_paths);
    LQ_ADD_TEST(s, test_cuda_gptq_retry);
    LQ_ADD_TEST(s, test_cuda_gptq_refusals);
    return s;
}
