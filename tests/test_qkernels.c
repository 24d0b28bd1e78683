/* test_qkernels.c : the fused quantized-weight kernels (qmatmul_ref.c,
 * qmatmul_cpu.c) for every quantized type of lq_qtypes.h.
 *
 * Fixtures are packed directly from a seed (random codes, scales, zero
 * points and GGML block fields; no quantizer involved). The oracle is a
 * float64 decoder written here from the layout spec (lq_qtypes.h, ggml's
 * block structs / REFERENCE.md 5.3), independent of the library's:
 *   lq_weight_row_f32   vs the f64 decode: equal after rounding to f32 for
 *                       the one-product types, within the two roundings
 *                       of f32 arithmetic for Q4_K and Q6_K (TOL_ROW)
 *   lq_matmul_ref       vs Σ x·w in f64 over the decoded matrix:
 *                       TOL_DOT · sqrt(cols) · Σ|x·w|
 *   lq_matmul_cpu       vs lq_matmul_ref, the same budget (the weights are
 *                       formed identically, only the summation order
 *                       differs), and bit-identical for 1, 2 and 3 threads
 *   lq_embed_*          bit-identical to lq_weight_row_f32
 * plus KEEP types (= plain weights), bias, odd row counts and the refusals.
 * And lq_weight_row_f32 against lq_dequantize_ref (libquant/core/quantize_ref.c),
 * bit for bit, on lq_quantize_ref output. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lq_test.h"

#define TOL_ROW 0x1p-22 /* Q4_K / Q6_K rows: relative to the magnitude of the terms */
#define TOL_DOT 1e-6    /* per sqrt(cols), relative to Σ|x·w| (f32 sums of cols terms) */

static const int64_t NS[]    = {1, 2, 3, 7, 16, 33, 64};
static const int     THREADS[] = {1, 2, 3};

/* ==== fixtures ==== */

typedef struct {
    lq_qtype t;
    int64_t  rows, cols;
    uint8_t *data;
    float   *scales;
    uint8_t *zeros;
    size_t   row_bytes;
} qfix;

static void put_f16(uint8_t *p, float v) {
    const uint16_t h = lq_f32_to_f16(v);
    p[0]             = (uint8_t)(h & 0xFF);
    p[1]             = (uint8_t)(h >> 8);
}

/* a value of magnitude [0.5, 1.5) · scale, random sign */
static float rand_mag(uint64_t *s, float scale) {
    const float u = lq_test_randf(s);
    return (u < 0 ? -1.f : 1.f) * (0.5f + fabsf(u)) * scale;
}

static void qfix_make(qfix *f, lq_qtype t, int64_t rows, int64_t cols, uint64_t seed) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(t);
    uint64_t               s  = seed;
    memset(f, 0, sizeof *f);
    f->t = t, f->rows = rows, f->cols = cols;
    f->row_bytes = (size_t)lq_qtype_row_bytes(t, cols);
    CU_ASSERT_FATAL(f->row_bytes > 0);
    f->data = malloc(f->row_bytes * (size_t)rows);
    CU_ASSERT_FATAL(f->data != NULL);
    for (size_t i = 0; i < f->row_bytes * (size_t)rows; i++) f->data[i] = (uint8_t)lq_test_rand(&s);
    if (tr->kind == LQ_QK_INT) { /* the padding bits of a row are zero */
        for (int64_t r = 0; r < rows; r++)
            for (uint64_t b = (uint64_t)cols * (uint64_t)tr->bits; b < 8 * f->row_bytes; b++)
                f->data[(size_t)r * f->row_bytes + b / 8] &= (uint8_t) ~(1u << (b % 8));
    }
    if (tr->kind == LQ_QK_FP8) /* no NaN bytes */
        for (size_t i = 0; i < f->row_bytes * (size_t)rows; i++)
            if ((f->data[i] & 0x7F) == 0x7F) f->data[i] ^= 1;
    if (tr->kind == LQ_QK_GGML) { /* finite f16 scales of a realistic size */
        const size_t nb = f->row_bytes * (size_t)rows / (size_t)tr->block_bytes;
        for (size_t i = 0; i < nb; i++) {
            uint8_t *const b = f->data + i * (size_t)tr->block_bytes;
            if (t == LQ_QT_Q6_K) {
                put_f16(b + 208, rand_mag(&s, 1.f / 256));
            } else {
                put_f16(b, rand_mag(&s, 1.f / 64));
                if (t == LQ_QT_Q4_K) put_f16(b + 2, fabsf(rand_mag(&s, 1.f / 128)));
            }
        }
    }
    const int64_t ns = lq_qtype_n_scales(t, rows, cols);
    if (ns > 0) {
        f->scales = malloc((size_t)ns * sizeof(float));
        CU_ASSERT_FATAL(f->scales != NULL);
        for (int64_t i = 0; i < ns; i++) f->scales[i] = rand_mag(&s, tr->kind == LQ_QK_FP8 ? 1.f / 512 : 1.f / 16);
    }
    if (lq_qtype_has_zeros(t) && ns > 0) {
        f->zeros = malloc((size_t)ns);
        CU_ASSERT_FATAL(f->zeros != NULL);
        for (int64_t i = 0; i < ns; i++) f->zeros[i] = (uint8_t)(lq_test_rand(&s) % (1u << tr->bits));
    }
}

static void qfix_free(qfix *f) { free(f->data), free(f->scales), free(f->zeros); }

/* dtype is ignored for quantized weights: a type that is not a weight dtype proves it */
static lq_weight qfix_weight(const qfix *f) {
    const lq_weight w = {LQ_DTYPE_F64, f->data, f->rows, f->cols, f->t, f->scales, f->zeros, NULL, 0};
    return w;
}

/* ==== the float64 decoder, from the spec ==== */

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static double f16d(const uint8_t *p) { return (double)lq_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }

/* element k of row r as the exact real value of the spec formula; *mag gets
 * the magnitude of the terms that f32 arithmetic rounds (for the budget) */
static double spec_elem(const qfix *f, int64_t r, int64_t k, double *mag) {
    const lq_qtype_traits *tr  = lq_qtype_traits_of(f->t);
    const uint8_t         *row = f->data + (size_t)r * f->row_bytes;
    double                 v   = 0;
    *mag                       = 0;
    switch ((int)tr->kind) {
    case LQ_QK_INT: { /* little-endian 32-bit words, element k at bit k·B */
        const int64_t  G = tr->group > 0 ? tr->group : f->cols, ng = lq_qtype_n_groups(f->t, f->cols);
        const uint64_t bit = (uint64_t)k * (uint64_t)tr->bits, wi = bit / 32, sh = bit % 32;
        uint64_t       word = le32(row + 4 * wi);
        if (sh + (uint64_t)tr->bits > 32) word |= (uint64_t)le32(row + 4 * (wi + 1)) << 32;
        const int u = (int)((word >> sh) & ((1u << tr->bits) - 1));
        const int z = f->zeros ? f->zeros[r * ng + k / G] : 1 << (tr->bits - 1);
        v           = (double)f->scales[r * ng + k / G] * (double)(u - z);
        break;
    }
    case LQ_QK_FP8: v = (double)f->scales[tr->group < 0 ? 0 : r] * (double)lq_e4m3_to_f32(row[k]); break;
    case LQ_QK_GGML: {
        const int      e = (int)(k % tr->block);
        const uint8_t *b = row + (size_t)(k / tr->block) * (size_t)tr->block_bytes;
        switch ((int)f->t) {
        case LQ_QT_Q8_0: v = f16d(b) * (double)(int8_t)b[2 + e]; break;
        case LQ_QT_Q4_0: v = f16d(b) * (double)(((e < 16 ? b[2 + e] : b[2 + e - 16] >> 4) & 15) - 8); break;
        case LQ_QT_Q5_0: {
            const int lo = (e < 16 ? b[6 + e] : b[6 + e - 16] >> 4) & 15, hi = (int)((le32(b + 2) >> e) & 1);
            v = f16d(b) * (double)((lo | hi << 4) - 16);
            break;
        }
        case LQ_QT_Q4_K: { /* 8 sub-blocks of 32; per 64 elements 32 bytes, low nibble first */
            const uint8_t *s = b + 4;
            const int      j = e / 32, l = e % 64;
            const int sc = j < 4 ? s[j] & 63 : (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
            const int m  = j < 4 ? s[j + 4] & 63 : (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
            const int q  = l < 32 ? b[16 + 32 * (e / 64) + l] & 15 : b[16 + 32 * (e / 64) + l - 32] >> 4;
            const double a = f16d(b) * sc * q, c = f16d(b + 2) * m;
            v    = a - c;
            *mag = fabs(a) + fabs(c);
            break;
        }
        case LQ_QT_Q6_K: { /* per 128: ql[l] = e_l | e_{l+64} << 4, ql[l+32] = e_{l+32} | e_{l+96} << 4 */
            const int      h = e / 128, i = e % 128, l = i % 32, quarter = i / 32;
            const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
            const int lo = quarter == 0 ? ql[l] & 15 : quarter == 1 ? ql[l + 32] & 15 : quarter == 2 ? ql[l] >> 4
                                                                                                     : ql[l + 32] >> 4;
            const int q = (lo | (((qh[l] >> (2 * quarter)) & 3) << 4)) - 32;
            v           = f16d(b + 208) * (double)(int8_t)b[192 + e / 16] * q;
            *mag        = fabs(v);
            break;
        }
        default: CU_FAIL("not a GGML type");
        }
        break;
    }
    default: CU_FAIL("not a quantized type");
    }
    return v;
}

/* the decoded matrix in f64 (rows x cols) */
static double *spec_matrix(const qfix *f) {
    double *const m = malloc(sizeof(double) * (size_t)(f->rows * f->cols));
    CU_ASSERT_FATAL(m != NULL);
    double mag;
    for (int64_t r = 0; r < f->rows; r++)
        for (int64_t k = 0; k < f->cols; k++) m[r * f->cols + k] = spec_elem(f, r, k, &mag);
    return m;
}

/* ==== shapes ==== */

static bool is_quantized(lq_qtype t) {
    const lq_qkind k = lq_qtype_traits_of(t)->kind;
    return k == LQ_QK_INT || k == LQ_QK_FP8 || k == LQ_QK_GGML;
}

/* a width the type stores, not a multiple of 64 where it need not be */
static int64_t cols_for(lq_qtype t, int variant) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(t);
    if (tr->kind == LQ_QK_GGML) return tr->block == 256 ? 512 : 160;
    if (tr->kind == LQ_QK_INT && tr->group > 0) return tr->group == 32 ? 160 : tr->group == 64 ? 320 : 384;
    return variant == 0 ? 301 : 96; /* per channel / fp8: odd (scalar paths) or a SIMD-friendly width */
}

/* ==== lq_weight_row_f32 vs the spec ==== */

static void test_qkernels_row_decode(void) {
    for (int ti = 1; ti < LQ_QT_COUNT; ti++) {
        const lq_qtype t = (lq_qtype)ti;
        if (!is_quantized(t)) continue;
        for (int variant = 0; variant < 2; variant++) {
            qfix f;
            qfix_make(&f, t, 7, cols_for(t, variant), 100 + (uint64_t)ti);
            const lq_weight w   = qfix_weight(&f);
            float *const    row = malloc(sizeof(float) * (size_t)f.cols);
            CU_ASSERT_FATAL(row != NULL);
            int bad = 0;
            for (int64_t r = 0; r < f.rows; r++) {
                CU_ASSERT_EQUAL_FATAL(lq_weight_row_f32(&w, r, row), LQ_OK);
                for (int64_t k = 0; k < f.cols; k++) {
                    double       mag;
                    const double want = spec_elem(&f, r, k, &mag);
                    const bool   ok   = mag == 0 ? row[k] == (float)want
                                                 : fabs((double)row[k] - want) <= TOL_ROW * mag + 1e-45;
                    if (!ok && bad++ < 3)
                        printf("\n  %s (%lld, %lld) row %lld col %lld: got %.9g want %.17g", lq_qtype_name(t),
                               (long long)f.rows, (long long)f.cols, (long long)r, (long long)k, (double)row[k],
                               want);
                }
            }
            CU_ASSERT_EQUAL(bad, 0);
            free(row);
            qfix_free(&f);
        }
    }
}

/* ==== matmuls ==== */

static float *rand_vec(int64_t n, float scale, uint64_t *s) {
    float *const v = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    CU_ASSERT_FATAL(v != NULL);
    for (int64_t i = 0; i < n; i++) v[i] = scale * lq_test_randf(s);
    return v;
}

/* |got - want| <= TOL_DOT · sqrt(cols) · Σ|x·w| (+ |bias|) for every output; prints the first misses */
static int check_dots(const char *what, const float *got, const float *x, const double *wm, const float *bias,
                      int64_t n, int64_t rows, int64_t cols, const float *ref) {
    int bad = 0;
    for (int64_t t = 0; t < n; t++)
        for (int64_t r = 0; r < rows; r++) {
            double dot = 0, mag = 0;
            for (int64_t k = 0; k < cols; k++) {
                const double p = (double)x[t * cols + k] * wm[r * cols + k];
                dot += p;
                mag += fabs(p);
            }
            if (bias) dot += bias[r], mag += fabs(bias[r]);
            const double want = ref ? (double)ref[t * rows + r] : dot;
            const double d    = fabs((double)got[t * rows + r] - want), bound = TOL_DOT * sqrt((double)cols) * mag;
            if (!(d <= bound)) {
                if (bad < 3)
                    printf("\n  %s: y[%lld][%lld] = %.9g want %.9g (|diff| %.3g > %.3g)", what, (long long)t,
                           (long long)r, (double)got[t * rows + r], want, d, bound);
                bad++;
            }
        }
    return bad;
}

static void matmul_case(lq_qtype t, int64_t rows, int64_t cols, bool with_bias, uint64_t seed) {
    qfix f;
    qfix_make(&f, t, rows, cols, seed);
    const lq_weight w  = qfix_weight(&f);
    double *const   wm = spec_matrix(&f);
    uint64_t        s  = seed * 7 + 1;
    const int64_t   NMAX = 64;
    float *const    x = rand_vec(NMAX * cols, 1.f, &s), *const bias = rand_vec(rows, 1.f, &s);
    float *const    ref = rand_vec(NMAX * rows, 0, &s), *const got = rand_vec(NMAX * rows, 0, &s);
    float *const    got1 = rand_vec(NMAX * rows, 0, &s);
    const float    *b    = with_bias ? bias : NULL;
    char            what[128];
    for (size_t i = 0; i < sizeof NS / sizeof NS[0]; i++) {
        const int64_t n = NS[i];
        snprintf(what, sizeof what, "%s (%lld, %lld) n=%lld%s (seed %llu)", lq_qtype_name(t), (long long)rows,
                 (long long)cols, (long long)n, with_bias ? " +bias" : "", (unsigned long long)seed);
        CU_ASSERT_EQUAL_FATAL(lq_matmul_ref(ref, x, n, &w, b), LQ_OK);
        CU_ASSERT_EQUAL(check_dots(what, ref, x, wm, b, n, rows, cols, NULL), 0);
        for (size_t j = 0; j < sizeof THREADS / sizeof THREADS[0]; j++) {
            memset(got, 0xFF, sizeof(float) * (size_t)(n * rows));
            CU_ASSERT_EQUAL_FATAL(lq_matmul_cpu(got, x, n, &w, b, THREADS[j]), LQ_OK);
            if (j == 0) {
                CU_ASSERT_EQUAL(check_dots(what, got, x, wm, b, n, rows, cols, ref), 0);
                memcpy(got1, got, sizeof(float) * (size_t)(n * rows));
            } else if (memcmp(got, got1, sizeof(float) * (size_t)(n * rows)) != 0) {
                printf("\n  %s: %d threads differ from 1 thread", what, THREADS[j]);
                CU_FAIL("thread-count dependence");
            }
        }
    }
    free(x), free(bias), free(ref), free(got), free(got1), free(wm);
    qfix_free(&f);
}

static void test_qkernels_matmul_int(void) {
    for (int ti = 1; ti < LQ_QT_COUNT; ti++) {
        const lq_qtype t = (lq_qtype)ti;
        if (lq_qtype_traits_of(t)->kind != LQ_QK_INT) continue;
        matmul_case(t, 37, cols_for(t, 0), ti % 2 == 0, 200 + (uint64_t)ti);
        if (lq_qtype_traits_of(t)->group == 0) matmul_case(t, 5, cols_for(t, 1), ti % 2 == 1, 300 + (uint64_t)ti);
    }
}

static void test_qkernels_matmul_fp8_ggml(void) {
    for (int ti = 1; ti < LQ_QT_COUNT; ti++) {
        const lq_qtype t = (lq_qtype)ti;
        const lq_qkind k = lq_qtype_traits_of(t)->kind;
        if (k != LQ_QK_FP8 && k != LQ_QK_GGML) continue;
        matmul_case(t, 37, cols_for(t, 0), true, 400 + (uint64_t)ti);
        matmul_case(t, 1, cols_for(t, 1), false, 500 + (uint64_t)ti);
    }
}

/* a Llama-like width through every regime of the fast kernels once (4096 columns, 19 rows) */
static void test_qkernels_matmul_wide(void) {
    static const lq_qtype ts[] = {LQ_QT_INT4_G128, LQ_QT_INT4_G32_ASYM, LQ_QT_INT8_CH, LQ_QT_Q8_0, LQ_QT_Q4_0,
                                  LQ_QT_Q4_K};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) matmul_case(ts[i], 19, 4096, i % 2 == 0, 600 + i);
}

/* KEEP types are plain weights of that dtype, whatever w.dtype says */
static void test_qkernels_keep(void) {
    static const lq_qtype ts[] = {LQ_QT_F32, LQ_QT_F16, LQ_QT_BF16};
    uint64_t              s    = 700;
    const int64_t         rows = 9, cols = 70, n = 17;
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        const lq_dtype dt = lq_qtype_traits_of(ts[i])->dtype;
        float *const   wf = rand_vec(rows * cols, 1.f, &s), *const x = rand_vec(n * cols, 1.f, &s);
        void *const    wd = malloc((size_t)(rows * cols) * 4);
        float *const   a = rand_vec(n * rows, 0, &s), *const b = rand_vec(n * rows, 0, &s);
        float *const   row = rand_vec(cols, 0, &s), *const e1 = rand_vec(2 * cols, 0, &s), *const e2 =
                                                                                             rand_vec(2 * cols, 0, &s);
        CU_ASSERT_FATAL(wd != NULL);
        CU_ASSERT_EQUAL(lq_convert_ref(dt, wd, LQ_DTYPE_F32, wf, rows * cols), LQ_OK);
        const lq_weight plain = {dt, wd, rows, cols, LQ_QT_NONE, NULL, NULL, NULL, 0};
        const lq_weight keep  = {LQ_DTYPE_U8, wd, rows, cols, ts[i], NULL, NULL, NULL, 0};
        for (int k = 0; k < 2; k++) {
            const int64_t nn = k ? n : 1;
            CU_ASSERT_EQUAL(lq_matmul_ref(a, x, nn, &plain, NULL), LQ_OK);
            CU_ASSERT_EQUAL(lq_matmul_ref(b, x, nn, &keep, NULL), LQ_OK);
            CU_ASSERT_EQUAL(memcmp(a, b, sizeof(float) * (size_t)(nn * rows)), 0);
            CU_ASSERT_EQUAL(lq_matmul_cpu(a, x, nn, &plain, NULL, 2), LQ_OK);
            CU_ASSERT_EQUAL(lq_matmul_cpu(b, x, nn, &keep, NULL, 2), LQ_OK);
            CU_ASSERT_EQUAL(memcmp(a, b, sizeof(float) * (size_t)(nn * rows)), 0);
        }
        const int32_t ids[2] = {3, 8};
        CU_ASSERT_EQUAL(lq_embed_ref(e1, &plain, ids, 2), LQ_OK);
        CU_ASSERT_EQUAL(lq_embed_cpu(e2, &keep, ids, 2, 2), LQ_OK);
        CU_ASSERT_EQUAL(memcmp(e1, e2, sizeof(float) * (size_t)(2 * cols)), 0);
        CU_ASSERT_EQUAL(lq_weight_row_f32(&keep, 8, row), LQ_OK);
        CU_ASSERT_EQUAL(memcmp(row, e1 + cols, sizeof(float) * (size_t)cols), 0);
        CU_ASSERT_EQUAL(lq_weight_row_f32(&plain, 8, row), LQ_OK);
        CU_ASSERT_EQUAL(memcmp(row, e1 + cols, sizeof(float) * (size_t)cols), 0);
        free(wf), free(x), free(wd), free(a), free(b), free(row), free(e1), free(e2);
    }
}

/* ==== embed ==== */

static void test_qkernels_embed(void) {
    for (int ti = 1; ti < LQ_QT_COUNT; ti++) {
        const lq_qtype t = (lq_qtype)ti;
        if (!is_quantized(t)) continue;
        qfix f;
        qfix_make(&f, t, 11, cols_for(t, ti % 2), 800 + (uint64_t)ti);
        const lq_weight w      = qfix_weight(&f);
        const int32_t   ids[5] = {10, 0, 3, 3, 7};
        const int64_t   C      = f.cols;
        float *const    a = malloc(sizeof(float) * 5 * (size_t)C), *const b = malloc(sizeof(float) * 5 * (size_t)C);
        float *const    row = malloc(sizeof(float) * (size_t)C);
        CU_ASSERT_FATAL(a && b && row);
        CU_ASSERT_EQUAL(lq_embed_ref(a, &w, ids, 5), LQ_OK);
        CU_ASSERT_EQUAL(lq_embed_cpu(b, &w, ids, 5, 3), LQ_OK);
        for (int i = 0; i < 5; i++) {
            CU_ASSERT_EQUAL(lq_weight_row_f32(&w, ids[i], row), LQ_OK);
            CU_ASSERT_EQUAL(memcmp(a + i * C, row, sizeof(float) * (size_t)C), 0);
            CU_ASSERT_EQUAL(memcmp(b + i * C, row, sizeof(float) * (size_t)C), 0);
        }
        const int32_t bad[2] = {1, 11};
        lq_test_quiet(1);
        CU_ASSERT_EQUAL(lq_embed_ref(a, &w, bad, 2), LQ_ERR_INVALID_ARG);
        CU_ASSERT_EQUAL(lq_embed_cpu(a, &w, bad, 2, 2), LQ_ERR_INVALID_ARG);
        lq_test_quiet(0);
        free(a), free(b), free(row);
        qfix_free(&f);
    }
}

/* ==== against lq_dequantize_ref (libquant/core/quantize_ref.c) ==== */

/* on lq_quantize_ref output for every storage type: lq_weight_row_f32 equals
 * lq_dequantize_ref bit for bit, and lq_matmul_ref on the quantized weight
 * equals lq_matmul_ref on the dequantized f32 matrix bit for bit (the same
 * f32 weights summed in the same order) */
static void test_qkernels_vs_dequantize_ref(void) {
    for (int ti = 1; ti < LQ_QT_COUNT; ti++) {
        const lq_qtype         t  = (lq_qtype)ti;
        const lq_qtype_traits *tr = lq_qtype_traits_of(t);
        const int64_t          rows = 7, cols = tr->kind == LQ_QK_KEEP ? 301 : cols_for(t, 0), n = 3;
        uint64_t               s    = 1000 + (uint64_t)ti;
        float *const           src  = rand_vec(rows * cols, 2.f, &s), *const deq = rand_vec(rows * cols, 0, &s);
        float *const           row  = rand_vec(cols, 0, &s), *const x = rand_vec(n * cols, 1.f, &s);
        float *const           y1 = rand_vec(n * rows, 0, &s), *const y2 = rand_vec(n * rows, 0, &s);
        const int64_t          ns = lq_qtype_n_scales(t, rows, cols);
        uint8_t *const         data   = malloc((size_t)lq_qtype_row_bytes(t, cols) * (size_t)rows);
        float *const           scales = malloc(sizeof(float) * (size_t)(ns > 0 ? ns : 1));
        uint8_t *const         zeros  = malloc((size_t)(ns > 0 ? ns : 1));
        CU_ASSERT_FATAL(data && scales && zeros);
        for (int64_t i = 0; i < rows * cols; i += 13) src[i] *= 8.f; /* outliers: the scales differ per group */
        CU_ASSERT_EQUAL_FATAL(lq_quantize_ref(t, src, rows, cols, NULL, data, scales, zeros), LQ_OK);
        CU_ASSERT_EQUAL_FATAL(lq_dequantize_ref(t, data, scales, zeros, rows, cols, deq), LQ_OK);
        const lq_weight w = {LQ_DTYPE_F64, data, rows, cols, t, scales, lq_qtype_has_zeros(t) ? zeros : NULL, NULL, 0};
        int             bad = 0;
        for (int64_t r = 0; r < rows; r++) {
            CU_ASSERT_EQUAL(lq_weight_row_f32(&w, r, row), LQ_OK);
            if (memcmp(row, deq + r * cols, sizeof(float) * (size_t)cols) != 0) bad++;
        }
        if (bad) printf("\n  %s: %d rows differ from lq_dequantize_ref", tr->name, bad);
        CU_ASSERT_EQUAL(bad, 0);
        const lq_weight wf = {LQ_DTYPE_F32, deq, rows, cols, LQ_QT_NONE, NULL, NULL, NULL, 0};
        CU_ASSERT_EQUAL(lq_matmul_ref(y1, x, n, &w, NULL), LQ_OK);
        CU_ASSERT_EQUAL(lq_matmul_ref(y2, x, n, &wf, NULL), LQ_OK);
        CU_ASSERT_EQUAL(memcmp(y1, y2, sizeof(float) * (size_t)(n * rows)), 0);
        free(src), free(deq), free(row), free(x), free(y1), free(y2), free(data), free(scales), free(zeros);
    }
}

/* ==== refusals ==== */

static void test_qkernels_refusals(void) {
    qfix f;
    qfix_make(&f, LQ_QT_INT4_G32_ASYM, 4, 64, 900);
    float         y[4 * 64], x[64], row[64];
    const int32_t id = 0;
    memset(x, 0, sizeof x);
    lq_test_quiet(1);
    /* no such type */
    lq_weight w = qfix_weight(&f);
    w.qtype     = LQ_QT_COUNT;
    CU_ASSERT_EQUAL(lq_matmul_ref(y, x, 1, &w, NULL), LQ_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(lq_matmul_cpu(y, x, 1, &w, NULL, 1), LQ_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(lq_embed_ref(y, &w, &id, 1), LQ_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(lq_embed_cpu(y, &w, &id, 1, 1), LQ_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(lq_weight_row_f32(&w, 0, row), LQ_ERR_UNSUPPORTED);
    w.qtype = (lq_qtype)-3;
    CU_ASSERT_EQUAL(lq_matmul_cpu(y, x, 1, &w, NULL, 1), LQ_ERR_UNSUPPORTED);
    /* missing scales or zero points */
    w        = qfix_weight(&f);
    w.scales = NULL;
    CU_ASSERT_EQUAL(lq_matmul_ref(y, x, 1, &w, NULL), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_matmul_cpu(y, x, 1, &w, NULL, 1), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_weight_row_f32(&w, 0, row), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_embed_cpu(y, &w, &id, 1, 1), LQ_ERR_INVALID_ARG);
    w       = qfix_weight(&f);
    w.zeros = NULL;
    CU_ASSERT_EQUAL(lq_matmul_ref(y, x, 1, &w, NULL), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_matmul_cpu(y, x, 1, &w, NULL, 1), LQ_ERR_INVALID_ARG);
    w      = qfix_weight(&f);
    w.data = NULL;
    CU_ASSERT_EQUAL(lq_matmul_cpu(y, x, 1, &w, NULL, 1), LQ_ERR_INVALID_ARG);
    /* a width the type cannot store, a negative shape, a bad row */
    w      = qfix_weight(&f);
    w.cols = 48;
    CU_ASSERT_EQUAL(lq_matmul_ref(y, x, 1, &w, NULL), LQ_ERR_SHAPE);
    CU_ASSERT_EQUAL(lq_matmul_cpu(y, x, 1, &w, NULL, 1), LQ_ERR_SHAPE);
    CU_ASSERT_EQUAL(lq_weight_row_f32(&w, 0, row), LQ_ERR_SHAPE);
    w.cols = 0;
    CU_ASSERT_EQUAL(lq_matmul_cpu(y, x, 1, &w, NULL, 1), LQ_ERR_SHAPE);
    w      = qfix_weight(&f);
    w.rows = -1;
    CU_ASSERT_EQUAL(lq_matmul_cpu(y, x, 1, &w, NULL, 1), LQ_ERR_SHAPE);
    w = qfix_weight(&f);
    CU_ASSERT_EQUAL(lq_weight_row_f32(&w, 4, row), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_weight_row_f32(&w, -1, row), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_weight_row_f32(NULL, 0, row), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_matmul_cpu(y, x, -1, &w, NULL, 1), LQ_ERR_INVALID_ARG);
    const lq_weight q6 = {LQ_DTYPE_F32, f.data, 1, 300, LQ_QT_Q6_K, NULL, NULL, NULL, 0};
    CU_ASSERT_EQUAL(lq_matmul_cpu(y, x, 1, &q6, NULL, 1), LQ_ERR_SHAPE);
    const lq_weight plain = {LQ_DTYPE_U8, f.data, 1, 4, LQ_QT_NONE, NULL, NULL, NULL, 0};
    CU_ASSERT_EQUAL(lq_weight_row_f32(&plain, 0, row), LQ_ERR_UNSUPPORTED);
    lq_test_quiet(0);
    /* the empty cases */
    w = qfix_weight(&f);
    CU_ASSERT_EQUAL(lq_matmul_ref(y, x, 0, &w, NULL), LQ_OK);
    CU_ASSERT_EQUAL(lq_matmul_cpu(y, x, 0, &w, NULL, 2), LQ_OK);
    w.rows = 0;
    CU_ASSERT_EQUAL(lq_matmul_cpu(y, x, 1, &w, NULL, 2), LQ_OK);
    qfix_free(&f);
}

/* act-order weights (lq_weight.perm): y = W x[perm] against an f64 product over the rows scattered back to the
 * input order; lq_weight_row_f32 scatters */
static void test_qkernels_matmul_perm(void) {
    const lq_qtype types[] = {LQ_QT_INT4_G32, LQ_QT_INT3_G64_ASYM, LQ_QT_INT8_CH};
    const int64_t  R = 40, C = 256, ns[] = {1, 7, 70};
    uint64_t       s = 21;
    float         *w = malloc((size_t)(R * C) * 4), *x = malloc((size_t)(70 * C) * 4);
    for (int64_t i = 0; i < R * C; i++) w[i] = lq_test_randf(&s);
    for (int64_t i = 0; i < 70 * C; i++) x[i] = lq_test_randf(&s);
    int32_t *perm = malloc((size_t)C * 4);
    for (int64_t k = 0; k < C; k++) perm[k] = (int32_t)((k * 101 + 7) % C);
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        const lq_qtype ty = types[t];
        uint8_t       *d  = calloc((size_t)(lq_qtype_row_bytes(ty, C) * (uint64_t)R), 1);
        float         *sc = malloc((size_t)lq_qtype_n_scales(ty, R, C) * 4);
        uint8_t       *z  = malloc((size_t)lq_qtype_n_scales(ty, R, C));
        CU_ASSERT_FATAL(lq_quantize_ref(ty, w, R, C, NULL, d, sc, z) == LQ_OK);
        const lq_weight q = {LQ_DTYPE_U8, d, R, C, ty, sc, lq_qtype_has_zeros(ty) ? z : NULL, perm, 0};
        lq_weight       plain = q;
        plain.perm            = NULL;
        float *row = malloc((size_t)C * 4), *rowp = malloc((size_t)C * 4), *y1 = malloc((size_t)(70 * R) * 4);
        float *y2 = malloc((size_t)(70 * R) * 4);
        double *wo = malloc((size_t)(R * C) * 8); /* the matrix in the input features' order */
        for (int64_t r = 0; r < R; r++) {
            CU_ASSERT_FATAL(lq_weight_row_f32(&plain, r, row) == LQ_OK);
            CU_ASSERT_FATAL(lq_weight_row_f32(&q, r, rowp) == LQ_OK);
            for (int64_t c = 0; c < C; c++) {
                wo[r * C + perm[c]] = row[c];
                CU_ASSERT_EQUAL(rowp[perm[c]], row[c]);
            }
        }
        for (size_t k = 0; k < 3; k++) {
            const int64_t n = ns[k];
            CU_ASSERT_FATAL(lq_matmul_ref(y1, x, n, &q, NULL) == LQ_OK);
            CU_ASSERT_FATAL(lq_matmul_cpu(y2, x, n, &q, NULL, 2) == LQ_OK);
            for (int64_t i = 0; i < n; i++)
                for (int64_t r = 0; r < R; r++) {
                    double want = 0;
                    for (int64_t c = 0; c < C; c++) want += wo[r * C + c] * (double)x[i * C + c];
                    CU_ASSERT(fabs(y1[i * R + r] - want) <= 1e-4 * (1 + fabs(want)));
                    CU_ASSERT(fabs(y2[i * R + r] - want) <= 1e-4 * (1 + fabs(want)));
                }
        }
        free(d), free(sc), free(z), free(row), free(rowp), free(y1), free(y2), free(wo);
    }
    free(w), free(x), free(perm);
}

/* act-order weights: _cpu is independent of the thread count and equals _ref within f32 reordering, for the GEMV
 * and the GEMM paths; a perm entry outside [0, cols) is refused by every entry point; an embedding table with a
 * perm is refused; a group-sorted perm over a shuffled g_idx reproduces the dequantized original matrix */
static void test_qkernels_perm_checks(void) {
    const lq_qtype ty = LQ_QT_INT4_G64_ASYM;
    const int64_t  R = 96, C = 256, G = 64;
    uint64_t       s = 77;
    float         *w = malloc((size_t)(R * C) * 4), *x = malloc((size_t)(64 * C) * 4);
    for (int64_t i = 0; i < R * C; i++) w[i] = lq_test_randf(&s);
    for (int64_t i = 0; i < 64 * C; i++) x[i] = lq_test_randf(&s);
    /* act-order as GPTQ stores it: order = a shuffle, g_idx[order[j]] = j / G, codes and scales of the permuted
     * matrix (column j of wp = column order[j] of w) */
    int32_t *order = malloc((size_t)C * 4), *g_idx = malloc((size_t)C * 4), *perm = malloc((size_t)C * 4);
    for (int64_t k = 0; k < C; k++) order[k] = (int32_t)k;
    for (int64_t k = C - 1; k > 0; k--) {
        const int64_t j = (int64_t)(lq_test_rand(&s) % (uint64_t)(k + 1));
        const int32_t t = order[k];
        order[k] = order[j], order[j] = t;
    }
    for (int64_t j = 0; j < C; j++) g_idx[order[j]] = (int32_t)(j / G);
    /* the runtime's perm: columns stably sorted by g_idx (model.c), not `order` itself */
    int64_t at = 0;
    for (int32_t g = 0; g < C / G; g++)
        for (int64_t k = 0; k < C; k++)
            if (g_idx[k] == g) perm[at++] = (int32_t)k;
    float *wp = malloc((size_t)(R * C) * 4);
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < C; j++) wp[r * C + j] = w[r * C + perm[j]];
    const uint64_t rb = lq_qtype_row_bytes(ty, C);
    uint8_t       *d  = calloc((size_t)(rb * (uint64_t)R), 1);
    float         *sc = malloc((size_t)lq_qtype_n_scales(ty, R, C) * 4);
    uint8_t       *z  = malloc((size_t)lq_qtype_n_scales(ty, R, C));
    CU_ASSERT_FATAL(lq_quantize_ref(ty, wp, R, C, NULL, d, sc, z) == LQ_OK);
    lq_weight q = {LQ_DTYPE_U8, d, R, C, ty, sc, z, perm, 0};
    /* the dequantized original-order matrix, the transformers way: w[r][k] = s[r][g_idx[k]] * (u - z[r][g_idx[k]]) */
    float *deq = malloc((size_t)(R * C) * 4), *row = malloc((size_t)C * 4);
    CU_ASSERT_FATAL(lq_dequantize_ref(ty, d, sc, z, R, C, wp) == LQ_OK); /* wp: the stored (sorted) order */
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < C; j++) {
            const int64_t k = perm[j], g = g_idx[k];
            CU_ASSERT_EQUAL(g, j / G);
            deq[r * C + k] = wp[r * C + j];
        }
    int bad_rows = 0;
    for (int64_t r = 0; r < R; r++) {
        CU_ASSERT_FATAL(lq_weight_row_f32(&q, r, row) == LQ_OK);
        bad_rows += memcmp(row, deq + r * C, (size_t)C * 4) != 0;
    }
    CU_ASSERT_EQUAL(bad_rows, 0);
    float *y1 = malloc((size_t)(64 * R) * 4), *y2 = malloc((size_t)(64 * R) * 4), *y3 = malloc((size_t)(64 * R) * 4);
    static const int64_t ns[] = {1, 3, 64};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        const int64_t n = ns[i];
        CU_ASSERT_FATAL(lq_matmul_ref(y1, x, n, &q, NULL) == LQ_OK);
        CU_ASSERT_FATAL(lq_matmul_cpu(y2, x, n, &q, NULL, 1) == LQ_OK);
        CU_ASSERT_FATAL(lq_matmul_cpu(y3, x, n, &q, NULL, 3) == LQ_OK);
        CU_ASSERT(memcmp(y2, y3, (size_t)(n * R) * 4) == 0); /* any thread count, bit for bit */
        double worst = 0;
        for (int64_t t = 0; t < n; t++)
            for (int64_t r = 0; r < R; r++) {
                double want = 0;
                for (int64_t k = 0; k < C; k++) want += (double)deq[r * C + k] * (double)x[t * C + k];
                const double e1 = fabs(y1[t * R + r] - want), e2 = fabs(y2[t * R + r] - want);
                worst = fmax(worst, fmax(e1, e2) / (1 + fabs(want)));
            }
        if (worst > 1e-5) printf("\n  perm n=%lld: worst rel err %.3g\n", (long long)n, worst);
        CU_ASSERT(worst <= 1e-5);
    }
    /* refusals */
    lq_test_quiet(1);
    perm[17] = (int32_t)C;
    CU_ASSERT_EQUAL(lq_matmul_ref(y1, x, 2, &q, NULL), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_matmul_cpu(y1, x, 2, &q, NULL, 2), LQ_ERR_INVALID_ARG);
    CU_ASSERT(strstr(lq_test_last_error(), "perm[17]") != NULL);
    CU_ASSERT_EQUAL(lq_weight_row_f32(&q, 0, row), LQ_ERR_INVALID_ARG);
    perm[17] = -1;
    CU_ASSERT_EQUAL(lq_weight_row_f32(&q, 1, row), LQ_ERR_INVALID_ARG);
    perm[17] = 0;
    int32_t ids[2] = {0, 1};
    CU_ASSERT_EQUAL(lq_embed_ref(row, &q, ids, 1), LQ_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(lq_embed_cpu(row, &q, ids, 1, 2), LQ_ERR_UNSUPPORTED);
    lq_test_quiet(0);
    free(w), free(x), free(order), free(g_idx), free(perm), free(wp), free(d), free(sc), free(z), free(deq);
    free(row), free(y1), free(y2), free(y3);
}

CU_pSuite lq_test_qkernels_suite(void) {
    CU_pSuite s = lq_test_add_suite("qkernels");
    LQ_ADD_TEST(s, test_qkernels_matmul_perm);
    LQ_ADD_TEST(s, test_qkernels_perm_checks);
    LQ_ADD_TEST(s, test_qkernels_row_decode);
    LQ_ADD_TEST(s, test_qkernels_matmul_int);
    LQ_ADD_TEST(s, test_qkernels_matmul_fp8_ggml);
    LQ_ADD_TEST(s, test_qkernels_matmul_wide);
    LQ_ADD_TEST(s, test_qkernels_keep);
    LQ_ADD_TEST(s, test_qkernels_embed);
    LQ_ADD_TEST(s, test_qkernels_vs_dequantize_ref);
    LQ_ADD_TEST(s, test_qkernels_refusals);
    return s;
}
