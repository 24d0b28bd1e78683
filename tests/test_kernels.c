/* test_kernels.c : the Llama forward-pass `_cpu` ops (kernels/cpu/llama_cpu.c,
 * matmul_cpu.c) against their `_ref` oracles (llama_ref.c), against float64
 * math written here, and against themselves across thread counts.
 *
 * Every comparison has a named error budget below, scaled the way the op's
 * rounding error scales (a dot product by its length and by Σ|x·w|, an
 * elementwise op by the ulp of its value). Shapes are odd on purpose: n = 1
 * (the GEMV path), n around the GEMV/GEMM switch and the register tile, cols
 * not a multiple of 16/32/64 and beyond the KC column block, rows beyond one
 * work item, F32/F16/BF16 weights, with and without bias, weights at an odd
 * address. Thread-count independence is checked bit for bit (1, 2, 3
 * threads). Fixtures come from fixed seeds; a failure prints the case, the
 * first mismatches and the max difference (LQ_TEST_VERBOSE=1: every check
 * prints its max difference and the fraction of its budget used). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lq_test.h"

/* ---- error budgets ----
 * eps = FLT_EPSILON (2^-23). A dot product of length K summed in a different
 * order differs from _ref by at most K·eps·Σ|terms| (the worst case, both
 * sides), in practice by ~sqrt(K)·eps·max|partial sum|; the budgets below are
 * the practical scale with room, far below what a wrong index or a dropped
 * term produces (>= |one term| ~ Σ/K). */
#define TOL_MATMUL_DOT 2.0  /* |cpu - ref| <= this · eps · sqrt(cols) · Σ|x·w| + eps·|y|      */
#define TOL_ELEM_ULPS 1.0   /* embed/rmsnorm/rope: bit-identical expected; allowed ulps of |y| */
#define TOL_ROPE_F64 4.0    /* rope vs f64 rotation, and p then -p: · eps · (|x0| + |x1|)    */
#define TOL_SWIGLU_ULPS 4.0 /* vf_exp is within 2 ulp of expf; then 1+e, ÷, ·: ulps of |y|  */
#define TOL_ATTN 1.0        /* attention: · eps · max|v| · (Σ|q·k|·scale + sqrt(np) + 1)     */
#define TOL_LSM_ULPS 2.0    /* log_softmax vs ref: · eps · (|logit| + |lse|)                 */
#define TOL_LSM_SUM 4.0     /* |Σ exp(out) - 1| <= this · eps · max(|logit| + |lse|)          */

#define MAX_REPORT 5 /* mismatches printed per check */

static const lq_dtype WDTYPES[] = {LQ_DTYPE_F32, LQ_DTYPE_F16, LQ_DTYPE_BF16};
static const int      THREADS[] = {1, 2, 3};

/* ---- fixtures ---- */

static float *randv(int64_t n, float scale, uint64_t seed) {
    float   *v = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    uint64_t s = seed;
    CU_ASSERT_FATAL(v != NULL);
    for (int64_t i = 0; i < n; i++)
        v[i] = scale * lq_test_randf(&s);
    return v;
}

/* a (rows, cols) weight of random values in [-1, 1) rounded to dtype; the data
 * sits `misalign` bytes past a malloc'ed block (free with free_weight) */
typedef struct {
    lq_weight w;
    uint8_t  *block;
} tweight;

static size_t dsize(lq_dtype t) { return t == LQ_DTYPE_F32 ? 4 : 2; }

static tweight make_weight(lq_dtype dt, int64_t rows, int64_t cols, uint64_t seed, size_t misalign) {
    tweight  tw;
    uint64_t s = seed;
    tw.block   = malloc((size_t)(rows * cols) * dsize(dt) + misalign + 1);
    CU_ASSERT_FATAL(tw.block != NULL);
    uint8_t *d = tw.block + misalign;
    for (int64_t i = 0; i < rows * cols; i++) {
        const float f = lq_test_randf(&s);
        if (dt == LQ_DTYPE_F32) {
            memcpy(d + 4 * i, &f, 4);
        } else {
            const uint16_t h = dt == LQ_DTYPE_F16 ? lq_f32_to_f16(f) : lq_f32_to_bf16(f);
            memcpy(d + 2 * i, &h, 2);
        }
    }
    tw.w = (lq_weight){dt, d, rows, cols, LQ_QT_NONE, NULL, NULL, NULL, 0};
    return tw;
}

static void free_weight(tweight *tw) { free(tw->block); }

static double welem(const lq_weight *w, int64_t i) {
    if (w->dtype == LQ_DTYPE_F32) {
        float f;
        memcpy(&f, (const uint8_t *)w->data + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, (const uint8_t *)w->data + 2 * i, 2);
    return w->dtype == LQ_DTYPE_F16 ? lq_f16_to_f32(h) : lq_bf16_to_f32(h);
}

static const char *dname(lq_dtype t) { return lq_dtype_name(t); }

/* got vs want with a per-element tolerance; prints the first mismatches and the
 * max difference on failure */
static bool check_close(const char *what, const float *got, const float *want, const double *tol, int64_t n) {
    int    bad   = 0;
    double worst = 0, worst_ratio = 0;
    for (int64_t i = 0; i < n; i++) {
        const double d     = fabs((double)got[i] - (double)want[i]);
        const bool   nan_g = isnan(got[i]), nan_w = isnan(want[i]);
        const bool   ok = (nan_g && nan_w) || (!nan_g && !nan_w && (got[i] == want[i] || d <= tol[i]));
        if (!nan_g && !nan_w && d > worst) worst = d;
        if (tol[i] > 0 && !nan_g && !nan_w && d / tol[i] > worst_ratio) worst_ratio = d / tol[i];
        if (!ok) {
            if (bad < MAX_REPORT)
                printf("\n  %s: [%lld] got %.9g want %.9g (diff %.3g, tol %.3g)", what, (long long)i, got[i], want[i],
                       d, tol[i]);
            bad++;
        }
    }
    if (getenv("LQ_TEST_VERBOSE")) printf("\n  %s: maxdiff = %.3e, %.3f of budget", what, worst, worst_ratio);
    if (bad)
        printf("\n  %s: TENSOR NOT OK, %d of %lld bad, maxdiff = %e (%.2f of budget)\n", what, bad, (long long)n, worst,
               worst_ratio);
    return bad == 0;
}

static bool check_same(const char *what, const float *a, const float *b, int64_t n) {
    if (memcmp(a, b, sizeof(float) * (size_t)n) == 0) return true;
    for (int64_t i = 0; i < n; i++)
        if (memcmp(a + i, b + i, sizeof(float)) != 0) {
            printf("\n  %s: thread counts disagree at [%lld]: %.9g vs %.9g\n", what, (long long)i, a[i], b[i]);
            break;
        }
    return false;
}

static double ulps_tol(double ulps, double v) { return ulps * FLT_EPSILON * fmax(fabs(v), FLT_MIN); }

/* ==== matmul ==== */

/* run _cpu (with `nt` threads) and _ref on one case and compare */
static bool matmul_case(const lq_weight *w, int64_t n, bool with_bias, int nt, uint64_t seed) {
    const int64_t rows = w->rows, cols = w->cols;
    float        *x = randv(n * cols, 1.f, seed);
    float        *b = with_bias ? randv(rows, 1.f, seed + 1) : NULL;
    float  *y = malloc(sizeof(float) * (size_t)(n * rows + 1)), *yr = malloc(sizeof(float) * (size_t)(n * rows + 1));
    double *tol = malloc(sizeof(double) * (size_t)(n * rows + 1));
    CU_ASSERT_FATAL(y && yr && tol);
    CU_ASSERT_EQUAL_FATAL(lq_matmul_cpu(y, x, n, w, b, nt), LQ_OK);
    CU_ASSERT_EQUAL_FATAL(lq_matmul_ref(yr, x, n, w, b), LQ_OK);
    for (int64_t t = 0; t < n; t++)
        for (int64_t r = 0; r < rows; r++) {
            double mag = 0;
            for (int64_t c = 0; c < cols; c++)
                mag += fabs((double)x[t * cols + c] * welem(w, r * cols + c));
            tol[t * rows + r] =
                TOL_MATMUL_DOT * FLT_EPSILON * sqrt((double)cols) * mag + FLT_EPSILON * fabs((double)yr[t * rows + r]);
        }
    char what[160];
    snprintf(what, sizeof what, "matmul %s n=%lld rows=%lld cols=%lld bias=%d threads=%d (seed %llu)", dname(w->dtype),
             (long long)n, (long long)rows, (long long)cols, with_bias, nt, (unsigned long long)seed);
    const bool ok = check_close(what, y, yr, tol, n * rows);
    free(x), free(b), free(y), free(yr), free(tol);
    return ok;
}

static void test_kernels_matmul_vs_ref(void) {
    static const int64_t shapes[][2] = {{1, 1},    {3, 5},     {17, 15},   {48, 16},  {33, 65},
                                        {97, 127}, {130, 257}, {200, 600}, {49, 1000}};
    /* GEMV up to n = 16, GEMM above (partial register tiles at 17, 20) */
    static const int64_t ns[] = {1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 20, 64};
    uint64_t             seed = 100;
    for (size_t d = 0; d < 3; d++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            tweight tw = make_weight(WDTYPES[d], shapes[s][0], shapes[s][1], seed++, s % 2 ? 2 : 0);
            for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
                /* the big shapes only at a few n, to stay fast under ASan */
                if (shapes[s][0] * shapes[s][1] > 20000 && ns[k] != 1 && ns[k] != 9 && ns[k] != 17 && ns[k] != 64)
                    continue;
                CU_ASSERT(matmul_case(&tw.w, ns[k], false, 2, seed++));
                CU_ASSERT(matmul_case(&tw.w, ns[k], true, 3, seed++));
            }
            free_weight(&tw);
        }
}

/* shapes drawn from a fixed seed: n across both regimes, any rows and cols */
static void test_kernels_matmul_random_shapes(void) {
    uint64_t st = 0x5eed;
    for (int c = 0; c < 16; c++) {
        const int64_t  n    = 1 + (int64_t)(lq_test_rand(&st) % 40);
        const int64_t  rows = 1 + (int64_t)(lq_test_rand(&st) % 150);
        const int64_t  cols = 1 + (int64_t)(lq_test_rand(&st) % 700);
        const lq_dtype dt   = WDTYPES[lq_test_rand(&st) % 3];
        const bool     bias = lq_test_rand(&st) % 2;
        tweight        tw   = make_weight(dt, rows, cols, 1000 + (uint64_t)c, (size_t)(c % 2) * 2);
        const bool     ok   = matmul_case(&tw.w, n, bias, 1 + c % 3, 2000 + (uint64_t)c);
        CU_ASSERT(ok);
        if (!ok) printf("\n  (random shape case %d of seed 0x5eed)\n", c);
        free_weight(&tw);
    }
}

static void test_kernels_matmul_threads(void) {
    static const int64_t ns[] = {1, 6, 9, 17, 40};
    for (size_t d = 0; d < 3; d++) {
        /* big enough that even n = 1 runs a thread team (LQ_PAR_MIN_WORK) */
        const int64_t rows = 3011, cols = 351;
        tweight       tw = make_weight(WDTYPES[d], rows, cols, 7 + d, 0);
        for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
            const int64_t n = ns[k];
            float        *x = randv(n * cols, 1.f, 77 + k), *b = randv(rows, 1.f, 99);
            float        *y[3];
            for (int i = 0; i < 3; i++) {
                y[i] = malloc(sizeof(float) * (size_t)(n * rows));
                CU_ASSERT_FATAL(y[i] != NULL);
                CU_ASSERT_EQUAL(lq_matmul_cpu(y[i], x, n, &tw.w, b, THREADS[i]), LQ_OK);
            }
            char what[96];
            snprintf(what, sizeof what, "matmul %s n=%lld", dname(WDTYPES[d]), (long long)n);
            CU_ASSERT(check_same(what, y[0], y[1], n * rows));
            CU_ASSERT(check_same(what, y[0], y[2], n * rows));
            for (int i = 0; i < 3; i++)
                free(y[i]);
            free(x), free(b);
        }
        free_weight(&tw);
    }
}

/* contract edges: empty sizes, an unsupported dtype, and a NaN that must stay in its own row of y */
static void test_kernels_matmul_edges(void) {
    tweight tw = make_weight(LQ_DTYPE_F16, 50, 40, 5, 0);
    float  *x = randv(20 * 40, 1.f, 6), *b = randv(50, 1.f, 8);
    float  *y = malloc(sizeof(float) * 20 * 50), *yr = malloc(sizeof(float) * 20 * 50);
    CU_ASSERT_FATAL(y && yr);
    CU_ASSERT_EQUAL(lq_matmul_cpu(y, x, 0, &tw.w, b, 2), LQ_OK);
    lq_weight empty = {LQ_DTYPE_F16, tw.w.data, 50, 0, LQ_QT_NONE, NULL, NULL, NULL, 0};
    CU_ASSERT_EQUAL(lq_matmul_cpu(y, x, 3, &empty, b, 2), LQ_OK);
    CU_ASSERT_EQUAL(lq_matmul_ref(yr, x, 3, &empty, b), LQ_OK);
    CU_ASSERT(memcmp(y, yr, sizeof(float) * 3 * 50) == 0);
    lq_weight bad = {LQ_DTYPE_I8, tw.w.data, 50, 40, LQ_QT_NONE, NULL, NULL, NULL, 0};
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_matmul_cpu(y, x, 3, &bad, NULL, 2), LQ_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(lq_test_errors_logged(), 1);
    lq_test_quiet(0);
    /* the last token carries a NaN (n = 20: the GEMM, in its partial last
     * register tile; n = 1: the GEMV); every other y element must stay finite */
    static const int64_t ns[] = {1, 20};
    for (size_t k = 0; k < 2; k++) {
        const int64_t n = ns[k], tn = n - 1;
        x[tn * 40 + 17] = NAN;
        CU_ASSERT_EQUAL(lq_matmul_cpu(y, x, n, &tw.w, b, 2), LQ_OK);
        CU_ASSERT_EQUAL(lq_matmul_ref(yr, x, n, &tw.w, b), LQ_OK);
        int wrong = 0;
        for (int64_t t = 0; t < n; t++)
            for (int64_t r = 0; r < 50; r++) {
                const float v = y[t * 50 + r];
                if (t == tn ? !isnan(v) : !(isfinite(v) && fabsf(v - yr[t * 50 + r]) < 1e-4f)) wrong++;
            }
        CU_ASSERT_EQUAL(wrong, 0);
        x[tn * 40 + 17] = 0.5f;
    }
    free(x), free(b), free(y), free(yr);
    free_weight(&tw);
}

/* ==== embed ==== */

static void test_kernels_embed(void) {
    static const int64_t cols_list[] = {1, 15, 16, 67, 4099}; /* the last one runs a thread team */
    for (size_t d = 0; d < 3; d++)
        for (size_t c = 0; c < sizeof cols_list / sizeof cols_list[0]; c++) {
            const int64_t rows = 37, cols = cols_list[c], n = 9;
            tweight       tw     = make_weight(WDTYPES[d], rows, cols, 30 + c, c % 2 ? 2 : 0);
            int32_t       ids[9] = {0, 36, 5, 5, 17, 1, 35, 0, 20};
            float *y = malloc(sizeof(float) * (size_t)(n * cols)), *yr = malloc(sizeof(float) * (size_t)(n * cols));
            CU_ASSERT_FATAL(y && yr);
            CU_ASSERT_EQUAL(lq_embed_ref(yr, &tw.w, ids, n), LQ_OK);
            for (size_t ti = 0; ti < 3; ti++) {
                memset(y, 0xFF, sizeof(float) * (size_t)(n * cols));
                CU_ASSERT_EQUAL(lq_embed_cpu(y, &tw.w, ids, n, THREADS[ti]), LQ_OK);
                char what[64];
                snprintf(what, sizeof what, "embed %s cols=%lld", dname(WDTYPES[d]), (long long)cols);
                CU_ASSERT(check_same(what, y, yr, n * cols));
            }
            lq_test_quiet(1);
            ids[4] = 37;
            CU_ASSERT_EQUAL(lq_embed_cpu(y, &tw.w, ids, n, 2), LQ_ERR_INVALID_ARG);
            ids[4] = -1;
            CU_ASSERT_EQUAL(lq_embed_cpu(y, &tw.w, ids, n, 2), LQ_ERR_INVALID_ARG);
            CU_ASSERT_EQUAL(lq_test_errors_logged(), 2);
            lq_test_quiet(0);
            free(y), free(yr);
            free_weight(&tw);
        }
}

/* ==== rmsnorm ==== */

static void test_kernels_rmsnorm(void) {
    static const int64_t dims[] = {1, 7, 16, 33, 2053};
    static const int64_t ns[]   = {1, 17}; /* 17 x 2053 runs a thread team */
    uint64_t             seed   = 40;
    for (size_t d = 0; d < 3; d++)
        for (size_t k = 0; k < sizeof dims / sizeof dims[0]; k++)
            for (size_t j = 0; j < 2; j++) {
                const int64_t dim = dims[k], n = ns[j];
                tweight       tw  = make_weight(WDTYPES[d], 1, dim, seed++, k % 2 ? 2 : 0);
                float        *x   = randv(n * dim, 3.f, seed++);
                float        *yr  = malloc(sizeof(float) * (size_t)(n * dim));
                float        *y   = malloc(sizeof(float) * (size_t)(n * dim));
                double       *tol = malloc(sizeof(double) * (size_t)(n * dim));
                CU_ASSERT_FATAL(y && yr && tol);
                lq_rmsnorm_ref(yr, x, &tw.w, n, dim, 1e-5f);
                for (int64_t i = 0; i < n * dim; i++)
                    tol[i] = ulps_tol(TOL_ELEM_ULPS, yr[i]);
                char what[80];
                snprintf(what, sizeof what, "rmsnorm %s dim=%lld n=%lld", dname(WDTYPES[d]), (long long)dim,
                         (long long)n);
                for (size_t ti = 0; ti < 3; ti++) {
                    lq_rmsnorm_cpu(y, x, &tw.w, n, dim, 1e-5f, THREADS[ti]);
                    CU_ASSERT(check_close(what, y, yr, tol, n * dim));
                }
                lq_rmsnorm_cpu(x, x, &tw.w, n, dim, 1e-5f, 2); /* in place */
                CU_ASSERT(check_same(what, x, y, n * dim));
                free(x), free(y), free(yr), free(tol);
                free_weight(&tw);
            }
}

/* ==== rope ==== */

static float *default_inv_freq(int64_t head_dim, double theta) {
    float *f = malloc(sizeof(float) * (size_t)(head_dim / 2 + 1));
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT_EQUAL(lq_rope_inv_freq(f, head_dim, theta, LQ_ROPE_DEFAULT, 1, 1, 1, 0), LQ_OK);
    return f;
}

static void test_kernels_rope_vs_ref(void) {
    static const int64_t hds[]  = {2, 6, 64, 130, 300};
    int32_t              pos[7] = {0, 1, 2, 17, 1000, 32767, 131071};
    for (int neox = 0; neox < 2; neox++)
        for (size_t k = 0; k < sizeof hds / sizeof hds[0]; k++) {
            const int64_t hd = hds[k], H = 5, n = 7, len = n * H * hd; /* 300: a thread team */
            float        *inv = default_inv_freq(hd, 10000.0);
            float        *x = randv(len, 2.f, 50 + k), *xr = malloc(sizeof(float) * (size_t)len);
            float        *y   = malloc(sizeof(float) * (size_t)len);
            double       *tol = malloc(sizeof(double) * (size_t)len);
            CU_ASSERT_FATAL(xr && y && tol);
            memcpy(xr, x, sizeof(float) * (size_t)len);
            lq_rope_ref(xr, pos, n, H, hd, inv, neox);
            for (int64_t i = 0; i < len; i++)
                tol[i] = ulps_tol(TOL_ELEM_ULPS, xr[i]);
            char what[64];
            snprintf(what, sizeof what, "rope neox=%d head_dim=%lld", neox, (long long)hd);
            for (size_t ti = 0; ti < 3; ti++) {
                memcpy(y, x, sizeof(float) * (size_t)len);
                lq_rope_cpu(y, pos, n, H, hd, inv, neox, THREADS[ti]);
                CU_ASSERT(check_close(what, y, xr, tol, len));
            }
            free(inv), free(x), free(xr), free(y), free(tol);
        }
}

/* against a float64 rotation by the same f32 angle, and rotating by p then -p */
static void test_kernels_rope_closed_form(void) {
    const int64_t hd = 64, H = 2, n = 5, half = hd / 2, len = n * H * hd;
    int32_t       pos[5] = {0, 3, 100, 4095, 70000}, neg[5];
    for (int i = 0; i < 5; i++)
        neg[i] = -pos[i];
    float *inv = default_inv_freq(hd, 500000.0);
    for (int neox = 0; neox < 2; neox++) {
        float *x = randv(len, 1.f, 60 + neox), *y = malloc(sizeof(float) * (size_t)len);
        CU_ASSERT_FATAL(y != NULL);
        memcpy(y, x, sizeof(float) * (size_t)len);
        lq_rope_cpu(y, pos, n, H, hd, inv, neox, 2);
        int bad = 0;
        for (int64_t t = 0; t < n; t++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t i = 0; i < half; i++) {
                    const int64_t base = (t * H + h) * hd;
                    const int64_t i0 = base + (neox ? i : 2 * i), i1 = base + (neox ? i + half : 2 * i + 1);
                    const double  a  = (double)((float)pos[t] * inv[i]);
                    const double  r0 = x[i0] * cos(a) - x[i1] * sin(a), r1 = x[i1] * cos(a) + x[i0] * sin(a);
                    const double  tl = TOL_ROPE_F64 * FLT_EPSILON * (fabs(x[i0]) + fabs(x[i1]));
                    if (fabs(y[i0] - r0) > tl || fabs(y[i1] - r1) > tl) {
                        if (bad++ < MAX_REPORT)
                            printf("\n  rope f64 neox=%d t=%lld h=%lld i=%lld: (%.9g, %.9g) vs (%.9g, %.9g)", neox,
                                   (long long)t, (long long)h, (long long)i, y[i0], y[i1], r0, r1);
                    }
                }
        CU_ASSERT_EQUAL(bad, 0);
        lq_rope_cpu(y, neg, n, H, hd, inv, neox, 3);
        double *tol = malloc(sizeof(double) * (size_t)len);
        CU_ASSERT_FATAL(tol != NULL);
        for (int64_t i = 0; i < len; i++) {
            const int64_t j = i % hd, base = i - j;
            /* the partner of element j in its pair */
            const int64_t p = neox ? (j < half ? j + half : j - half) : (j ^ 1);
            tol[i]          = 2 * TOL_ROPE_F64 * FLT_EPSILON * (fabs(x[i]) + fabs(x[base + p]));
        }
        CU_ASSERT(check_close(neox ? "rope p then -p (neox)" : "rope p then -p", y, x, tol, len));
        free(x), free(y), free(tol);
    }
    free(inv);
}

/* inv_freq, written independently in double the way transformers'
 * _compute_default_rope_parameters / _compute_llama3_parameters read */
static void test_kernels_rope_inv_freq(void) {
    const int64_t hd = 128;
    float         got[64];
    /* default, theta 10000 */
    CU_ASSERT_EQUAL(lq_rope_inv_freq(got, hd, 10000.0, LQ_ROPE_DEFAULT, 1, 1, 1, 0), LQ_OK);
    for (int i = 0; i < 64; i++)
        CU_ASSERT_EQUAL(got[i], (float)(1.0 / pow(10000.0, (2.0 * i) / 128.0)));
    CU_ASSERT_DOUBLE_EQUAL(got[1], 0.8659643233600653, 1e-7); /* 10000^(-1/64) */
    /* linear, factor 4 */
    CU_ASSERT_EQUAL(lq_rope_inv_freq(got, hd, 10000.0, LQ_ROPE_LINEAR, 4.0, 1, 1, 0), LQ_OK);
    for (int i = 0; i < 64; i++)
        CU_ASSERT_EQUAL(got[i], (float)(1.0 / pow(10000.0, (2.0 * i) / 128.0) / 4.0));
    /* llama3 (Llama 3.1 8B config) */
    const double theta = 500000.0, factor = 8.0, low = 1.0, high = 4.0, old_ctx = 8192.0;
    CU_ASSERT_EQUAL(lq_rope_inv_freq(got, hd, theta, LQ_ROPE_LLAMA3, factor, low, high, 8192), LQ_OK);
    int n_low = 0, n_mid = 0, n_high = 0;
    for (int i = 0; i < 64; i++) {
        const double inv     = 1.0 / pow(theta, (double)(2 * i) / (double)hd);
        const double wavelen = 6.283185307179586 / inv;
        const double low_wl = old_ctx / low, high_wl = old_ctx / high;
        double       want;
        if (wavelen < high_wl) {
            want = inv; /* high frequency: kept */
            n_high++;
        } else if (wavelen > low_wl) {
            want = inv / factor; /* low frequency: scaled */
            n_low++;
        } else {
            const double smooth = (old_ctx / wavelen - low) / (high - low);
            want                = (1.0 - smooth) * inv / factor + smooth * inv;
            n_mid++;
        }
        const float w = (float)want;
        if (fabsf(got[i] - w) > ulps_tol(1.0, w)) printf("\n  llama3 inv_freq[%d] = %.9g, want %.9g", i, got[i], w);
        CU_ASSERT(fabsf(got[i] - w) <= ulps_tol(1.0, w));
    }
    CU_ASSERT(n_low > 0 && n_mid > 0 && n_high > 0); /* the config exercises all three bands */
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_rope_inv_freq(got, hd, theta, LQ_ROPE_YARN, 8, 1, 4, 8192), LQ_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(lq_rope_inv_freq(got, 7, theta, LQ_ROPE_DEFAULT, 1, 1, 1, 0), LQ_ERR_INVALID_ARG);
    lq_test_quiet(0);
}

/* ==== attention ==== */

/* float64 causal GQA attention; also returns per (t, h) the error scale of TOL_ATTN */
static void attention_f64(double *out, double *scale_out, const float *q, const float *k, const float *v, int64_t n,
                          int64_t pos0, int64_t H, int64_t KVH, int64_t hd, int64_t stride) {
    const double sc  = 1.0 / sqrt((double)hd);
    double      *att = malloc(sizeof(double) * (size_t)(pos0 + n));
    CU_ASSERT_FATAL(att != NULL);
    for (int64_t t = 0; t < n; t++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t kvh = h / (H / KVH), np = pos0 + t + 1;
            const float  *qv = q + (t * H + h) * hd;
            double        mx = -INFINITY, qk_mag = 0, vmax = 0, sum = 0;
            for (int64_t p = 0; p < np; p++) {
                double d = 0, m = 0;
                for (int64_t i = 0; i < hd; i++) {
                    d += (double)qv[i] * k[p * stride + kvh * hd + i];
                    m += fabs((double)qv[i] * k[p * stride + kvh * hd + i]);
                    vmax = fmax(vmax, fabs(v[p * stride + kvh * hd + i]));
                }
                att[p] = d * sc;
                mx     = fmax(mx, att[p]);
                qk_mag = fmax(qk_mag, m * sc);
            }
            for (int64_t p = 0; p < np; p++)
                sum += (att[p] = exp(att[p] - mx));
            for (int64_t i = 0; i < hd; i++) {
                double o = 0;
                for (int64_t p = 0; p < np; p++)
                    o += att[p] / sum * v[p * stride + kvh * hd + i];
                out[(t * H + h) * hd + i] = o;
            }
            scale_out[t * H + h] = FLT_EPSILON * vmax * (qk_mag + sqrt((double)np) + 1);
        }
    free(att);
}

static void test_kernels_attention(void) {
    static const struct {
        int64_t n, pos0, H, KVH, hd;
    } cases[] = {
        {1, 0, 4, 4, 8},    {1, 37, 8, 2, 16}, {5, 0, 4, 1, 13},   {7, 3, 8, 4, 64},
        {17, 20, 4, 2, 33}, {40, 0, 8, 2, 64}, {3, 100, 4, 1, 80}, {2, 5, 2, 1, 160},
        {4, 2, 6, 2, 24},   {3, 9, 8, 1, 32},  {1, 30, 8, 1, 64}, /* groups of 3 and 8 */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int64_t n = cases[c].n, pos0 = cases[c].pos0, H = cases[c].H, KVH = cases[c].KVH, hd = cases[c].hd;
        const int64_t stride = KVH * hd + 3, len = pos0 + n, qn = n * H * hd;
        float        *q = randv(qn, 1.5f, 70 + c), *k = randv(len * stride, 1.5f, 80 + c);
        float        *v = randv(len * stride, 1.f, 90 + c);
        float        *o[3], *orf = malloc(sizeof(float) * (size_t)qn), *o64f = malloc(sizeof(float) * (size_t)qn);
        double       *o64 = malloc(sizeof(double) * (size_t)qn), *sc = malloc(sizeof(double) * (size_t)(n * H));
        double       *tol = malloc(sizeof(double) * (size_t)qn);
        CU_ASSERT_FATAL(orf && o64f && o64 && sc && tol);
        attention_f64(o64, sc, q, k, v, n, pos0, H, KVH, hd, stride);
        for (int64_t i = 0; i < qn; i++) {
            o64f[i] = (float)o64[i];
            tol[i]  = TOL_ATTN * sc[i / hd] + ulps_tol(0.5, o64[i]);
        }
        lq_attention_ref(orf, q, k, v, n, pos0, H, KVH, hd, stride);
        char what[96];
        snprintf(what, sizeof what, "attention n=%lld pos0=%lld heads=%lld/%lld hd=%lld", (long long)n, (long long)pos0,
                 (long long)H, (long long)KVH, (long long)hd);
        for (int ti = 0; ti < 3; ti++) {
            o[ti] = malloc(sizeof(float) * (size_t)qn);
            CU_ASSERT_FATAL(o[ti] != NULL);
            CU_ASSERT_EQUAL(lq_attention_cpu(o[ti], q, k, v, n, pos0, H, KVH, hd, stride, THREADS[ti]), LQ_OK);
        }
        CU_ASSERT(check_close(what, o[0], o64f, tol, qn));
        CU_ASSERT(check_close("attention _ref vs f64 (the oracle itself)", orf, o64f, tol, qn));
        for (int64_t i = 0; i < qn; i++)
            tol[i] *= 2; /* both sides carry their own error */
        CU_ASSERT(check_close(what, o[0], orf, tol, qn));
        CU_ASSERT(check_same(what, o[0], o[1], qn));
        CU_ASSERT(check_same(what, o[0], o[2], qn));
        for (int ti = 0; ti < 3; ti++)
            free(o[ti]);
        free(q), free(k), free(v), free(orf), free(o64f), free(o64), free(sc), free(tol);
    }
    lq_test_quiet(1);
    float z[4] = {0};
    CU_ASSERT_EQUAL(lq_attention_cpu(z, z, z, z, 1, 0, 3, 2, 1, 2, 1), LQ_ERR_INVALID_ARG); /* 3 heads / 2 kv */
    lq_test_quiet(0);
}

/* ==== swiglu ==== */

static void test_kernels_swiglu(void) {
    static const int64_t ns[] = {1, 15, 16, 17, 100003};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        const int64_t      n = ns[k];
        float             *g = randv(n, 12.f, 110 + k), *u = randv(n, 2.f, 120 + k);
        static const float special[] = {0.f, -0.f, 100.f, -100.f, 88.f, -88.f, 89.5f, -89.5f, 1e-30f, -200.f, 30.f};
        for (size_t i = 0; i < sizeof special / sizeof special[0] && (int64_t)i < n; i++)
            g[i] = special[i];
        float  *yr = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
        double *tol = malloc(sizeof(double) * (size_t)n);
        CU_ASSERT_FATAL(yr && y && tol);
        lq_swiglu_ref(yr, g, u, n);
        for (int64_t i = 0; i < n; i++)
            tol[i] = ulps_tol(TOL_SWIGLU_ULPS, yr[i]);
        char what[48];
        snprintf(what, sizeof what, "swiglu n=%lld", (long long)n);
        float *y1 = malloc(sizeof(float) * (size_t)n);
        CU_ASSERT_FATAL(y1 != NULL);
        lq_swiglu_cpu(y1, g, u, n, 1);
        CU_ASSERT(check_close(what, y1, yr, tol, n));
        for (size_t ti = 1; ti < 3; ti++) {
            lq_swiglu_cpu(y, g, u, n, THREADS[ti]);
            CU_ASSERT(check_same(what, y, y1, n));
        }
        lq_swiglu_cpu(g, g, u, n, 2); /* out aliases gate */
        CU_ASSERT(check_same(what, g, y1, n));
        free(g), free(u), free(y), free(y1), free(yr), free(tol);
    }
}

/* ==== log_softmax ==== */

static void test_kernels_log_softmax(void) {
    static const int64_t vocabs[] = {1, 7, 16, 33, 32003};
    for (size_t k = 0; k < sizeof vocabs / sizeof vocabs[0]; k++) {
        const int64_t V = vocabs[k], n = 3, len = n * V;
        float        *l = randv(len, 8.f, 130 + k);
        if (V > 16) { /* a peaked row and a row with underflowing terms */
            l[5] = 60.f;
            for (int64_t i = V; i < 2 * V; i += 3)
                l[i] = -1e4f;
        }
        float  *yr  = malloc(sizeof(float) * (size_t)len), *y[3];
        double *tol = malloc(sizeof(double) * (size_t)len);
        CU_ASSERT_FATAL(yr && tol);
        lq_log_softmax_ref(yr, l, n, V);
        char what[48];
        snprintf(what, sizeof what, "log_softmax vocab=%lld", (long long)V);
        for (int ti = 0; ti < 3; ti++) {
            y[ti] = malloc(sizeof(float) * (size_t)len);
            CU_ASSERT_FATAL(y[ti] != NULL);
            lq_log_softmax_cpu(y[ti], l, n, V, THREADS[ti]);
        }
        for (int64_t t = 0; t < n; t++) {
            /* lse from the reference output: out = l - lse */
            double lse = 0, worst = 0;
            for (int64_t i = 0; i < V; i++)
                lse = fmax(lse, fabs((double)l[t * V + i] - yr[t * V + i]));
            for (int64_t i = 0; i < V; i++) {
                tol[t * V + i] = TOL_LSM_ULPS * FLT_EPSILON * (fabs(l[t * V + i]) + lse);
                worst          = fmax(worst, fabs(l[t * V + i]) + lse);
            }
            double s = 0;
            for (int64_t i = 0; i < V; i++)
                s += exp((double)y[0][t * V + i]);
            if (!(fabs(s - 1.0) <= TOL_LSM_SUM * FLT_EPSILON * worst))
                printf("\n  %s row %lld: sum of probabilities %.17g\n", what, (long long)t, s);
            CU_ASSERT(fabs(s - 1.0) <= TOL_LSM_SUM * FLT_EPSILON * worst);
        }
        CU_ASSERT(check_close(what, y[0], yr, tol, len));
        CU_ASSERT(check_same(what, y[0], y[1], len));
        CU_ASSERT(check_same(what, y[0], y[2], len));
        lq_log_softmax_cpu(l, l, n, V, 2); /* in place */
        CU_ASSERT(check_same(what, l, y[0], len));
        for (int ti = 0; ti < 3; ti++)
            free(y[ti]);
        free(l), free(yr), free(tol);
    }
}

CU_pSuite lq_test_kernels_suite(void) {
    CU_pSuite s = lq_test_add_suite("kernels");
    LQ_ADD_TEST(s, test_kernels_matmul_vs_ref);
    LQ_ADD_TEST(s, test_kernels_matmul_random_shapes);
    LQ_ADD_TEST(s, test_kernels_matmul_threads);
    LQ_ADD_TEST(s, test_kernels_matmul_edges);
    LQ_ADD_TEST(s, test_kernels_embed);
    LQ_ADD_TEST(s, test_kernels_rmsnorm);
    LQ_ADD_TEST(s, test_kernels_rope_vs_ref);
    LQ_ADD_TEST(s, test_kernels_rope_closed_form);
    LQ_ADD_TEST(s, test_kernels_rope_inv_freq);
    LQ_ADD_TEST(s, test_kernels_attention);
    LQ_ADD_TEST(s, test_kernels_swiglu);
    LQ_ADD_TEST(s, test_kernels_log_softmax);
    return s;
}
