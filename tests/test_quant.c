/* test_quant.c : the quantizers (libquant/core/quantize_ref.c and
 * kernels/cpu/quantize_cpu.c) against float64 math written here, against
 * golden blocks made by other implementations, and against each other.
 *
 *   int_codes / fp8_codes  scales, zero points and codes recomputed in float64
 *                          from the contract (lq_qtypes.h) wherever the answer
 *                          is decidable (not within 1e-6 of a rounding tie),
 *                          the packed bit stream decoded here, error bounds
 *   int_scale_rules        zero groups, scales that round to 0, saturation
 *   known_packing          hand-computed words and zero points
 *   golden_*               gguf-py's Q8_0/Q4_0/Q5_0 bytes and dequantizations,
 *                          ggml's own Q4_K/Q6_K (plain and imatrix) bytes
 *                          (tests/data/quant, see make_quant_fixtures.py)
 *   cpu_matches_ref        lq_quantize_cpu == lq_quantize_ref bit for bit for
 *                          every type, F32/F16/BF16 sources, 1-3 threads, odd
 *                          shapes, clip search and column weights
 *   errors                 widths, non-finite values, NULL pointers
 *   monotone               RMS error falls with bits; the clip search never
 *                          raises the weighted error
 * Fixtures come from fixed seeds; failures print the case. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lq_test.h"

#define QDIR "tests/data/quant/"
#define MAX_REPORT 5
#define TIE_EPS 1e-6 /* fp8: a value this close (relative) to equidistant is not decidable */

/* ---- fixtures ---- */

/* ~N(0, 1): the sum of four uniforms, rescaled */
static float gauss(uint64_t *s) {
    const float u = lq_test_randf(s) + lq_test_randf(s) + lq_test_randf(s) + lq_test_randf(s);
    return u * 0.8660254f;
}

/* rows x cols of gaussians with per-row scales, outliers, a zero run and a negative row */
static float *make_matrix(int64_t rows, int64_t cols, uint64_t seed) {
    float   *x = malloc(sizeof(float) * (size_t)(rows * cols));
    uint64_t s = seed;
    CU_ASSERT_FATAL(x != NULL);
    for (int64_t r = 0; r < rows; r++) {
        const float sc = r % 3 == 0 ? 0.02f : r % 3 == 1 ? 1.5f : 3e-4f;
        for (int64_t k = 0; k < cols; k++) {
            float v = sc * gauss(&s);
            if ((lq_test_rand(&s) & 63) == 0) v *= 9.f; /* outliers */
            if (r % 4 == 3 && k >= 32 && k < 64) v = 0.f;
            if (r % 5 == 4) v = -fabsf(v) - 0.25f * sc;
            x[r * cols + k] = v;
        }
    }
    return x;
}

/* Is q (a float64 value the library computes in f32, relative error `rel`) so
 * close to n + 1/2 that the library's rounding could go either way? */
static bool near_tie(double q, double rel) {
    const double f = q - floor(q);
    return fabs(f - 0.5) <= rel * fabs(q) + 1e-12;
}
#define F32_REL 1.2e-7 /* 2^-23: one f32 rounding, with room */

/* round half to even in float64 */
static double rne(double v) { return nearbyint(v); }

/* the exact scale s (> 0) rounded to nearest-even in dtype dt, or NAN when the
 * answer is not decidable from a float64 s; 0 for an underflow */
static double round_dtype(double s, lq_dtype dt, bool *decidable) {
    int mant, emin;
    if (dt == LQ_DTYPE_F16) {
        mant = 10;
        emin = -14;
    } else if (dt == LQ_DTYPE_BF16) {
        mant = 7;
        emin = -126;
    } else {
        mant = 23;
        emin = -126;
    }
    int e = (int)floor(log2(s));
    if (e < emin) e = emin;
    /* the library rounds the f32 quotient: decidable unless it is near a tie
     * (for f32 scales only float64's own rounding of s matters) */
    const double ulp = ldexp(1.0, e - mant), m = s / ulp;
    *decidable       = !near_tie(m, dt == LQ_DTYPE_F32 ? 1e-15 : F32_REL);
    return rne(m) * ulp;
}

static double dtype_min_positive(lq_dtype dt) {
    return dt == LQ_DTYPE_F16 ? ldexp(1.0, -24) : dt == LQ_DTYPE_BF16 ? ldexp(1.0, -133) : ldexp(1.0, -149);
}

static double dtype_max(lq_dtype dt) {
    return dt == LQ_DTYPE_F16 ? 65504.0 : dt == LQ_DTYPE_BF16 ? 0x1.FEp127 : FLT_MAX;
}

/* code k of a dense LSB-first stream of little-endian 32-bit words (decoded here, not by the library) */
static unsigned stream_code(const uint8_t *row, int64_t k, int bits) {
    const uint64_t bit = (uint64_t)k * (uint64_t)bits;
    uint64_t       win = 0;
    for (int b = 0; b < 2; b++) {
        const uint8_t *w = row + 4 * (bit / 32 + (uint64_t)b);
        const uint64_t v = (uint64_t)w[0] | (uint64_t)w[1] << 8 | (uint64_t)w[2] << 16 | (uint64_t)w[3] << 24;
        win |= v << (32 * b);
    }
    return (unsigned)(win >> (bit % 32)) & ((1u << bits) - 1u);
}

static const char *tn(lq_qtype t) { return lq_qtype_name(t); }

/* ==== (a) INT: scales, zero points and codes from float64 ==== */

/* quantize x (rows x cols) to INT type t with scale dtype sd and check it all; returns false on a mismatch */
static bool int_case(lq_qtype t, const float *x, int64_t rows, int64_t cols, lq_dtype sd, int *undecided) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(t);
    const int64_t          ng = lq_qtype_n_groups(t, cols), G = tr->group > 0 ? tr->group : cols;
    const uint64_t         rb = lq_qtype_row_bytes(t, cols);
    const int              B = tr->bits, qmax = (1 << B) - 1;
    uint8_t               *data   = malloc((size_t)(rb * (uint64_t)rows) + 8); /* +8: stream_code reads a word ahead */
    float                 *scales = malloc(sizeof(float) * (size_t)(rows * ng));
    uint8_t               *zeros  = malloc((size_t)(rows * ng));
    float                 *deq    = malloc(sizeof(float) * (size_t)(rows * cols));
    CU_ASSERT_FATAL(data && scales && zeros && deq);
    memset(data + rb * (uint64_t)rows, 0, 8);
    lq_quant_params p = lq_quant_default_params();
    p.scale_dtype     = sd;
    CU_ASSERT_EQUAL_FATAL(lq_quantize_ref(t, x, rows, cols, &p, data, scales, tr->sym ? NULL : zeros), LQ_OK);
    CU_ASSERT_EQUAL_FATAL(lq_dequantize_ref(t, data, scales, tr->sym ? NULL : zeros, rows, cols, deq), LQ_OK);
    int bad = 0;
#define FAIL(...)                                                                                                      \
    do {                                                                                                               \
        if (bad++ < MAX_REPORT) {                                                                                      \
            printf("\n  %s (scales %s) row %lld group %lld: ", tn(t), lq_dtype_name(sd), (long long)r, (long long)g);  \
            printf(__VA_ARGS__);                                                                                       \
        }                                                                                                              \
    } while (0)
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *row = data + (size_t)r * rb;
        for (int64_t g = 0; g < ng; g++) {
            const float *xg = x + r * cols + g * G;
            double       amax = 0, lo = 0, hi = 0;
            for (int64_t k = 0; k < G; k++) {
                amax = fmax(amax, fabs(xg[k]));
                lo   = fmin(lo, xg[k]);
                hi   = fmax(hi, xg[k]);
            }
            const double s  = scales[r * ng + g];
            /* the exact scale but for one float64 rounding; the asym range hi - lo is an f32 subtraction */
            const double se = tr->sym ? 2.0 * amax / qmax : (double)(float)(hi - lo) / qmax;
            /* the scale */
            if (se == 0) {
                if (s != 1.0) FAIL("zero group: scale %g, want 1", s);
            } else {
                bool         dec;
                const double want = round_dtype(se, sd, &dec);
                if (!dec)
                    (*undecided)++;
                else if (want == 0 ? s != dtype_min_positive(sd) : want > dtype_max(sd) ? s != dtype_max(sd) : s != want)
                    FAIL("scale %.9g, want %.9g (exact %.9g)", s, want, se);
            }
            /* the zero point */
            int z = 1 << (B - 1);
            if (!tr->sym) {
                z = zeros[r * ng + g];
                if (se != 0) {
                    const double zq = -lo / s;
                    if (near_tie(zq, F32_REL))
                        (*undecided)++;
                    else if (z != (int)fmin(fmax(rne(zq), 0), qmax))
                        FAIL("zero point %d, want %g", z, fmin(fmax(rne(zq), 0), qmax));
                } else if (z != 0) {
                    FAIL("zero group: zero point %d, want 0", z);
                }
            }
            /* the codes and the error */
            for (int64_t k = 0; k < G; k++) {
                const int64_t  col = g * G + k;
                const unsigned u   = stream_code(row, col, B);
                const double   q   = (double)xg[k] / s;
                if (near_tie(q, F32_REL)) {
                    /* sym: ±amax sits at ±(2^B-1)/2 by construction, a tie in exact math */
                    if (!(tr->sym && fabs(xg[k]) == amax)) (*undecided)++;
                } else {
                    const double want = fmin(fmax(rne(q) + z, 0), qmax);
                    if (u != (unsigned)want) FAIL("code %lld: %u, want %g (x %.9g)", (long long)col, u, want, xg[k]);
                }
                const double w = deq[r * cols + col], ww = (float)(s * ((double)u - z)); /* one f32 product */
                if (w != ww) FAIL("dequantized %lld: %.9g, want %.9g", (long long)col, w, ww);
                const double bound = 0.5 * s * 1.0001 + qmax * fabs(s - se) + 1e-30;
                if (se != 0 && fabs((double)xg[k] - w) > bound)
                    FAIL("error %g at column %lld over the bound %g", fabs((double)xg[k] - w), (long long)col, bound);
            }
        }
        /* the padding up to a whole word is zero */
        for (uint64_t bit = (uint64_t)cols * (uint64_t)B; bit < rb * 8; bit++)
            if ((row[bit / 8] >> (bit % 8)) & 1u) {
                const int64_t g = -1;
                FAIL("padding bit %llu is set", (unsigned long long)bit);
                break;
            }
    }
#undef FAIL
    if (bad) printf("\n  %s: %d mismatches\n", tn(t), bad);
    free(data);
    free(scales);
    free(zeros);
    free(deq);
    return bad == 0;
}

static void test_quant_int_codes(void) {
    const lq_dtype sds[] = {LQ_DTYPE_F16, LQ_DTYPE_BF16, LQ_DTYPE_F32};
    int            undecided = 0, n_checked = 0;
    for (int t = 1; t < LQ_QT_COUNT; t++) {
        const lq_qtype_traits *tr = lq_qtype_traits_of((lq_qtype)t);
        if (tr->kind != LQ_QK_INT) continue;
        const int64_t cols = tr->group > 0 ? 256 : 200, rows = 6;
        float        *x    = make_matrix(rows, cols, 1000 + (uint64_t)t);
        for (size_t d = 0; d < sizeof sds / sizeof sds[0]; d++) {
            CU_ASSERT(int_case((lq_qtype)t, x, rows, cols, sds[d], &undecided));
            n_checked += (int)(rows * cols);
        }
        free(x);
    }
    /* near-ties are rare: a handful in ~100k codes */
    if (undecided >= n_checked / 1000) printf("\n  %d of %d values not decidable\n", undecided, n_checked);
    CU_ASSERT(undecided < n_checked / 1000);
}

/* zero groups, scales that round to 0 in the scale dtype, scales beyond it */
static void test_quant_int_scale_rules(void) {
    const lq_dtype sds[] = {LQ_DTYPE_F16, LQ_DTYPE_BF16, LQ_DTYPE_F32};
    const lq_qtype ts[]  = {LQ_QT_INT4_G32, LQ_QT_INT4_G32_ASYM, LQ_QT_INT8_CH, LQ_QT_INT2_CH_ASYM};
    float          x[64];
    for (size_t d = 0; d < 3; d++)
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
            const lq_qtype t = ts[i];
            const bool     sym = lq_qtype_traits_of(t)->sym;
            int            undecided = 0;
            /* a zero group and a tiny one: 1e-30 (f16 scale rounds to 0), 1e-44 (bf16, f32 too) */
            const float tiny = sds[d] == LQ_DTYPE_F16 ? 1e-30f : 1.4e-44f;
            for (int k = 0; k < 64; k++)
                x[k] = k < 32 ? 0.f : (k % 2 ? tiny : -tiny);
            CU_ASSERT(int_case(t, x, 1, 64, sds[d], &undecided));
            uint8_t         data[64], zeros[2] = {0};
            float           sc[2];
            lq_quant_params p = lq_quant_default_params();
            p.scale_dtype     = sds[d];
            CU_ASSERT_EQUAL(lq_quantize_ref(t, x, 1, 64, &p, data, sc, zeros), LQ_OK);
            if (t == LQ_QT_INT4_G32 || t == LQ_QT_INT4_G32_ASYM) {
                CU_ASSERT_EQUAL(sc[0], 1.f);
                CU_ASSERT_EQUAL(sc[1], (float)dtype_min_positive(sds[d]));
                CU_ASSERT_EQUAL(stream_code(data, 0, 4), sym ? 8u : 0u);
            }
        }
    /* a range the f16 scale cannot hold saturates at 65504 (bf16 holds it) */
    for (int k = 0; k < 32; k++)
        x[k] = (k - 16) * 1e5f;
    uint8_t         data[16];
    float           sc;
    lq_quant_params p = lq_quant_default_params();
    CU_ASSERT_EQUAL(lq_quantize_ref(LQ_QT_INT4_G32, x, 1, 32, &p, data, &sc, NULL), LQ_OK);
    CU_ASSERT_EQUAL(sc, 65504.f);
    p.scale_dtype = LQ_DTYPE_BF16;
    CU_ASSERT_EQUAL(lq_quantize_ref(LQ_QT_INT4_G32, x, 1, 32, &p, data, &sc, NULL), LQ_OK);
    CU_ASSERT(fabs(sc - 1.6e6 / 7.5) <= 1.6e6 / 7.5 / 128);
}

/* ==== (a) FP8 ==== */

/* the magnitudes of the e4m3 values, ascending: code c (0..126) is positive value c */
static double e4m3_value(int c) {
    const int e = (c >> 3) & 15, m = c & 7;
    return e == 0 ? ldexp(m, -9) : ldexp(8 + m, e - 10);
}

static void fp8_case(lq_qtype t, const float *x, int64_t rows, int64_t cols, int *undecided) {
    const bool tensor = lq_qtype_traits_of(t)->group < 0;
    uint8_t   *data   = malloc((size_t)(rows * cols));
    float     *sc     = malloc(sizeof(float) * (size_t)rows);
    float     *deq    = malloc(sizeof(float) * (size_t)(rows * cols));
    CU_ASSERT_FATAL(data && sc && deq);
    CU_ASSERT_EQUAL_FATAL(lq_quantize_ref(t, x, rows, cols, NULL, data, sc, NULL), LQ_OK);
    CU_ASSERT_EQUAL_FATAL(lq_dequantize_ref(t, data, sc, NULL, rows, cols, deq), LQ_OK);
    int    bad   = 0;
    double tamax = 0;
    for (int64_t i = 0; i < rows * cols; i++)
        tamax = fmax(tamax, fabs(x[i]));
    for (int64_t r = 0; r < rows; r++) {
        double amax = tamax;
        if (!tensor) {
            amax = 0;
            for (int64_t k = 0; k < cols; k++)
                amax = fmax(amax, fabs(x[r * cols + k]));
        }
        const double s = tensor ? sc[0] : sc[r];
        bool         dec;
        const double want = amax == 0 ? 1.0 : round_dtype(amax / 448.0, LQ_DTYPE_F16, &dec);
        if (amax != 0 && !dec)
            (*undecided)++;
        else if (s != want && bad++ < MAX_REPORT)
            printf("\n  %s row %lld: scale %.9g, want %.9g", tn(t), (long long)r, s, want);
        for (int64_t k = 0; k < cols; k++) {
            const double  q = fabs((double)x[r * cols + k] / s);
            const uint8_t b = data[r * cols + k];
            const int     c = b & 0x7F;
            /* the magnitude is a nearest e4m3 value to |x/s| (saturating at 448), the sign that of x */
            const double v = e4m3_value(c);
            const double dn = c > 0 ? fabs(q - e4m3_value(c - 1)) : INFINITY;
            const double up = c < 126 ? fabs(q - e4m3_value(c + 1)) : INFINITY;
            bool         ok = c != 127 && fabs(q - v) <= fmin(dn, up) * (1 + TIE_EPS);
            if (x[r * cols + k] != 0) ok = ok && ((b & 0x80) != 0) == (x[r * cols + k] < 0);
            const double w = deq[r * cols + k];
            ok             = ok && w == (float)(s * (b & 0x80 ? -v : v));
            /* e4m3 keeps 3 mantissa bits: relative error 2^-4, subnormal spacing 2^-9 */
            ok = ok && fabs(x[r * cols + k] - w) <= fmax(fabs(x[r * cols + k]) / 16, s * ldexp(1, -10)) * 1.0001 +
                                                        fmax(0, fabs(x[r * cols + k]) - 448 * s);
            if (!ok && bad++ < MAX_REPORT)
                printf("\n  %s [%lld,%lld]: x %.9g, byte 0x%02x, dequantized %.9g (scale %g)", tn(t), (long long)r,
                       (long long)k, x[r * cols + k], b, w, s);
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    free(data);
    free(sc);
    free(deq);
}

static void test_quant_fp8_codes(void) {
    int    undecided = 0;
    float *x         = make_matrix(7, 160, 77);
    fp8_case(LQ_QT_FP8_E4M3_CH, x, 7, 160, &undecided);
    fp8_case(LQ_QT_FP8_E4M3_TENSOR, x, 7, 160, &undecided);
    for (int k = 0; k < 160; k++) /* an all-zero row: scale 1 */
        x[k] = 0.f;
    fp8_case(LQ_QT_FP8_E4M3_CH, x, 7, 160, &undecided);
    CU_ASSERT(undecided <= 2);
    free(x);
}

/* KEEP types: exact conversions */
static void test_quant_keep(void) {
    float *x = make_matrix(3, 100, 5);
    float *y = malloc(sizeof(float) * 300);
    uint8_t *d = malloc(4 * 300);
    CU_ASSERT_FATAL(y && d);
    const lq_qtype ts[] = {LQ_QT_F32, LQ_QT_F16, LQ_QT_BF16};
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(lq_quantize_ref(ts[i], x, 3, 100, NULL, d, NULL, NULL), LQ_OK);
        CU_ASSERT_EQUAL(lq_dequantize_ref(ts[i], d, NULL, NULL, 3, 100, y), LQ_OK);
        for (int k = 0; k < 300; k++) {
            const float want = i == 0 ? x[k] : i == 1 ? lq_f16_to_f32(lq_f32_to_f16(x[k])) : lq_bf16_to_f32(lq_f32_to_bf16(x[k]));
            if (y[k] != want) {
                CU_FAIL("keep type does not round trip");
                printf("\n  %s [%d]: %.9g, want %.9g\n", tn(ts[i]), k, y[k], want);
                break;
            }
        }
    }
    free(x);
    free(y);
    free(d);
}

/* ==== (f) known packing ==== */

static void test_quant_known_packing(void) {
    lq_quant_params p = lq_quant_default_params();
    p.scale_dtype     = LQ_DTYPE_F32;
    /* int4 sym g32: x = (k mod 15) - 7, and 7.5 last: scale 7.5/7.5 = 1, zero point 8, u = x + 8 (15 at 7.5) */
    float x[32];
    for (int k = 0; k < 32; k++)
        x[k] = (float)(k % 15 - 7);
    x[31] = 7.5f;
    uint32_t w[4];
    float    s;
    CU_ASSERT_EQUAL(lq_quantize_ref(LQ_QT_INT4_G32, x, 1, 32, &p, w, &s, NULL), LQ_OK);
    CU_ASSERT_EQUAL(s, 1.f);
    CU_ASSERT_EQUAL(w[0], 0x87654321u);
    CU_ASSERT_EQUAL(w[1], 0x1FEDCBA9u);
    CU_ASSERT_EQUAL(w[2], 0x98765432u);
    CU_ASSERT_EQUAL(w[3], 0xF1FEDCBAu);
    /* ties round half to even (torch.round), not away from zero: s = 1 again, u = rint(x) + 8 */
    const float xt[8] = {7.5f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.5f};
    for (int k = 0; k < 32; k++)
        x[k] = k < 8 ? xt[k] : 0.f;
    CU_ASSERT_EQUAL(lq_quantize_ref(LQ_QT_INT4_G32, x, 1, 32, &p, w, &s, NULL), LQ_OK);
    CU_ASSERT_EQUAL(s, 1.f);
    CU_ASSERT_EQUAL(w[0], 0xC668AA8Fu); /* 15 8 10 10 8 6 6 12 from the low nibble */
    CU_ASSERT_EQUAL(w[1], 0x88888888u);
    CU_ASSERT_EQUAL(w[3], 0x88888888u);
    /* the same in int8 per channel: one byte per code, u = x + 128 */
    uint8_t b[32];
    CU_ASSERT_EQUAL(lq_quantize_ref(LQ_QT_INT8_CH, x, 1, 32, &p, b, &s, NULL), LQ_OK);
    CU_ASSERT_EQUAL(s, 7.5f / 127.5f);
    /* int3 per channel over 11 columns: codes straddle the first word (element 10 = bits 30..32) */
    float x3[11] = {-3.5f, -3, -2, -1, 0, 1, 2, 3, 3.5f, -1, 2};
    CU_ASSERT_EQUAL(lq_quantize_ref(LQ_QT_INT3_CH, x3, 1, 11, &p, w, &s, NULL), LQ_OK);
    CU_ASSERT_EQUAL(s, 1.f); /* 2·3.5/7 */
    /* u = clamp(rint(x) + 4, 0, 7): rint(-3.5) = -4 -> 0, rint(3.5) = 4 -> 8 -> 7 */
    const unsigned u3[11] = {0, 1, 2, 3, 4, 5, 6, 7, 7, 3, 6};
    uint64_t       stream = 0;
    for (int k = 0; k < 11; k++)
        stream |= (uint64_t)u3[k] << (3 * k);
    CU_ASSERT_EQUAL(w[0], (uint32_t)stream);
    CU_ASSERT_EQUAL(w[1], (uint32_t)(stream >> 32)); /* bit 32 (the top of element 10) and zero padding */
    CU_ASSERT_EQUAL(lq_qtype_row_bytes(LQ_QT_INT3_CH, 11), 8u);
    /* asym zero points (int4 g32, f32 scales): [-1, 3] -> s = 4/15, z = rint(3.75) = 4;
     * all positive -> z = 0; all negative -> z = 15 */
    float   xa[96];
    uint8_t z[3], da[48];
    float   sa[3];
    for (int k = 0; k < 32; k++) {
        xa[k]      = -1.f + 4.f * (float)k / 31.f;
        xa[32 + k] = 0.5f + 1.5f * (float)k / 31.f;
        xa[64 + k] = -2.f + 1.5f * (float)k / 31.f;
    }
    CU_ASSERT_EQUAL(lq_quantize_ref(LQ_QT_INT4_G32_ASYM, xa, 1, 96, &p, da, sa, z), LQ_OK);
    CU_ASSERT_EQUAL(sa[0], 4.f / 15.f);
    CU_ASSERT_EQUAL(z[0], 4);
    CU_ASSERT_EQUAL(sa[1], 2.f / 15.f);
    CU_ASSERT_EQUAL(z[1], 0);
    CU_ASSERT_EQUAL(sa[2], 2.f / 15.f);
    CU_ASSERT_EQUAL(z[2], 15);
    CU_ASSERT_EQUAL(da[0] & 0xF, 0); /* -1 = s·(0 - 4) + 1/15: rint(-3.75) + 4 = 0 */
}

/* ==== (b) golden files ==== */

static void *read_fixture(const char *name, size_t want_len) {
    char path[256];
    snprintf(path, sizeof path, QDIR "%s", name);
    size_t   len = 0;
    uint8_t *b   = lq_test_read_file(path, &len);
    if (!b || len != want_len) {
        printf("\n  %s: %s (%zu bytes, want %zu)\n", path, b ? "wrong size" : "cannot read", len, want_len);
        free(b);
        return NULL;
    }
    return b;
}

#define GR 4
#define GC 256

static bool same_bytes(const char *what, const uint8_t *got, const uint8_t *want, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i]) {
            printf("\n  %s: first difference at byte %zu: 0x%02x, want 0x%02x\n", what, i, got[i], want[i]);
            return false;
        }
    return true;
}

/* quantize the fixture input (ref, and cpu from F32 with 2 threads) and compare with `file` */
static void golden_quantize(lq_qtype t, const char *file, const float *colw) {
    float *x = read_fixture("input.f32", sizeof(float) * GR * GC);
    CU_ASSERT_FATAL(x != NULL);
    const size_t n    = (size_t)lq_qtype_row_bytes(t, GC) * GR;
    uint8_t     *want = read_fixture(file, n);
    uint8_t     *got  = malloc(n);
    CU_ASSERT_FATAL(want != NULL && got != NULL);
    lq_quant_params p = lq_quant_default_params();
    p.col_weight      = colw;
    CU_ASSERT_EQUAL(lq_quantize_ref(t, x, GR, GC, &p, got, NULL, NULL), LQ_OK);
    CU_ASSERT(same_bytes(file, got, want, n));
    memset(got, 0, n);
    CU_ASSERT_EQUAL(lq_quantize_cpu(t, LQ_DTYPE_F32, x, GR, GC, &p, got, NULL, NULL, 2), LQ_OK);
    CU_ASSERT(same_bytes(file, got, want, n));
    free(x);
    free(want);
    free(got);
}

static void golden_dequantize(lq_qtype t, const char *blocks, int64_t rows, const char *deq) {
    const size_t n    = (size_t)lq_qtype_row_bytes(t, GC) * (size_t)rows;
    uint8_t     *b    = read_fixture(blocks, n);
    float       *want = read_fixture(deq, sizeof(float) * (size_t)rows * GC);
    float       *got  = malloc(sizeof(float) * (size_t)rows * GC);
    CU_ASSERT_FATAL(b && want && got);
    CU_ASSERT_EQUAL(lq_dequantize_ref(t, b, NULL, NULL, rows, GC, got), LQ_OK);
    for (int64_t i = 0; i < rows * GC; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0) {
            CU_FAIL("dequantization differs from gguf-py");
            printf("\n  %s: [%lld] %.9g, want %.9g\n", deq, (long long)i, got[i], want[i]);
            break;
        }
    free(b);
    free(want);
    free(got);
}

static void test_quant_golden_legacy(void) {
    golden_quantize(LQ_QT_Q8_0, "q8_0.bin", NULL);
    golden_quantize(LQ_QT_Q4_0, "q4_0.bin", NULL);
    golden_quantize(LQ_QT_Q5_0, "q5_0.bin", NULL);
    golden_dequantize(LQ_QT_Q8_0, "q8_0.bin", GR, "q8_0.deq.f32");
    golden_dequantize(LQ_QT_Q4_0, "q4_0.bin", GR, "q4_0.deq.f32");
    golden_dequantize(LQ_QT_Q5_0, "q5_0.bin", GR, "q5_0.deq.f32");
}

static void test_quant_golden_kquants(void) {
    golden_dequantize(LQ_QT_Q4_K, "q4_k.blocks.bin", 4, "q4_k.deq.f32");
    golden_dequantize(LQ_QT_Q6_K, "q6_k.blocks.bin", 4, "q6_k.deq.f32");
    golden_quantize(LQ_QT_Q4_K, "q4_k.ggml.bin", NULL);
    golden_quantize(LQ_QT_Q6_K, "q6_k.ggml.bin", NULL);
    float *colw = read_fixture("colw.f32", sizeof(float) * GC);
    CU_ASSERT_FATAL(colw != NULL);
    golden_quantize(LQ_QT_Q4_K, "q4_k_w.ggml.bin", colw);
    golden_quantize(LQ_QT_Q6_K, "q6_k_w.ggml.bin", colw);
    free(colw);
}

/* ==== (c) lq_quantize_cpu == lq_quantize_ref ==== */

typedef struct {
    uint8_t *data;
    float   *scales;
    uint8_t *zeros;
} qbuf;

static qbuf qbuf_new(lq_qtype t, int64_t rows, int64_t cols, int fill) {
    const size_t db = (size_t)lq_qtype_row_bytes(t, cols) * (size_t)rows;
    const size_t ns = (size_t)lq_qtype_n_scales(t, rows, cols);
    qbuf         b  = {malloc(db + 1), malloc(sizeof(float) * (ns + 1)), malloc(ns + 1)};
    CU_ASSERT_FATAL(b.data && b.scales && b.zeros);
    memset(b.data, fill, db + 1);
    memset(b.scales, fill, sizeof(float) * (ns + 1));
    memset(b.zeros, fill, ns + 1);
    return b;
}

static void qbuf_free(qbuf *b) {
    free(b->data);
    free(b->scales);
    free(b->zeros);
}

/* the source x (rows x cols f32) as dtype dt at an odd address (free with free(*block)) */
static void *as_source(const float *x, int64_t n, lq_dtype dt, float *xf, void **block) {
    const size_t es = dt == LQ_DTYPE_F32 ? 4 : 2;
    uint8_t     *m  = malloc((size_t)n * es + 2);
    CU_ASSERT_FATAL(m != NULL);
    uint8_t *d = m + 2; /* F32 rows at a 2-byte offset take the copying path */
    for (int64_t i = 0; i < n; i++) {
        if (dt == LQ_DTYPE_F32) {
            memcpy(d + 4 * i, &x[i], 4);
            xf[i] = x[i];
        } else {
            const uint16_t h = dt == LQ_DTYPE_F16 ? lq_f32_to_f16(x[i]) : lq_f32_to_bf16(x[i]);
            memcpy(d + 2 * i, &h, 2);
            xf[i] = dt == LQ_DTYPE_F16 ? lq_f16_to_f32(h) : lq_bf16_to_f32(h);
        }
    }
    *block = m;
    return d;
}

static bool cpu_case(lq_qtype t, int64_t rows, int64_t cols, lq_dtype src_t, bool clip, const float *cw, uint64_t seed) {
    float        *x  = make_matrix(rows, cols, seed);
    float        *xf = malloc(sizeof(float) * (size_t)(rows * cols));
    void         *blk;
    const void   *src = as_source(x, rows * cols, src_t, xf, &blk);
    const size_t  db  = (size_t)lq_qtype_row_bytes(t, cols) * (size_t)rows;
    const size_t  ns  = (size_t)lq_qtype_n_scales(t, rows, cols);
    const bool    hz  = lq_qtype_has_zeros(t);
    lq_quant_params p = lq_quant_default_params();
    p.clip_search     = clip;
    p.col_weight      = cw;
    qbuf ref          = qbuf_new(t, rows, cols, 0x5A);
    bool ok           = lq_quantize_ref(t, xf, rows, cols, &p, ref.data, ref.scales, ref.zeros) == LQ_OK;
    for (int nt = 1; nt <= 3 && ok; nt++) {
        qbuf c = qbuf_new(t, rows, cols, 0xA5);
        ok     = lq_quantize_cpu(t, src_t, src, rows, cols, &p, c.data, c.scales, c.zeros, nt) == LQ_OK &&
             memcmp(c.data, ref.data, db) == 0 && memcmp(c.scales, ref.scales, sizeof(float) * ns) == 0 &&
             (!hz || memcmp(c.zeros, ref.zeros, ns) == 0);
        if (!ok) {
            printf("\n  %s %lldx%lld from %s, %d threads, clip %d, weights %d (seed %llu): cpu != ref", tn(t),
                   (long long)rows, (long long)cols, lq_dtype_name(src_t), nt, clip, cw != NULL,
                   (unsigned long long)seed);
            for (size_t i = 0; i < db; i++)
                if (c.data[i] != ref.data[i]) {
                    printf(" (byte %zu: 0x%02x vs 0x%02x)", i, c.data[i], ref.data[i]);
                    break;
                }
            printf("\n");
        }
        qbuf_free(&c);
    }
    qbuf_free(&ref);
    free(x);
    free(xf);
    free(blk);
    return ok;
}

static void test_quant_cpu_matches_ref(void) {
    static const int64_t  COLS[] = {64, 128, 256, 768, 172};
    static const lq_dtype SRC[]  = {LQ_DTYPE_F32, LQ_DTYPE_F16, LQ_DTYPE_BF16};
    float                 cw[768];
    uint64_t              s = 99;
    for (int k = 0; k < 768; k++)
        cw[k] = 0.1f + fabsf(lq_test_randf(&s)) * (k % 3 == 0 ? 5.f : 1.f);
    float *cw4864 = malloc(sizeof(float) * 4864);
    CU_ASSERT_FATAL(cw4864 != NULL);
    for (int k = 0; k < 4864; k++)
        cw4864[k] = cw[k % 768] + 0.001f * (float)(k / 768);
    int fails = 0;
    for (int t = 1; t < LQ_QT_COUNT; t++) {
        const lq_qtype_traits *tr = lq_qtype_traits_of((lq_qtype)t);
        const bool heavy = (tr->kind == LQ_QK_GGML && tr->block == 256);
        for (size_t c = 0; c < sizeof COLS / sizeof COLS[0]; c++) {
            const int64_t cols = COLS[c];
            if (!lq_qtype_supports((lq_qtype)t, cols, NULL)) continue;
            for (int64_t rows = 1; rows <= 7; rows += (cols >= 768 || heavy ? 3 : 2)) {
                const int      v   = (int)(rows + c + (size_t)t);
                const lq_dtype src = SRC[v % 3];
                /* plain; the clip search (INT/FP8) or column weights (k-quants); both */
                fails += !cpu_case((lq_qtype)t, rows, cols, src, false, NULL, 7 * (uint64_t)v + 1);
                fails += !cpu_case((lq_qtype)t, rows, cols, SRC[(v + 1) % 3], true, heavy ? cw : NULL, 7 * (uint64_t)v + 2);
                if (v % 2 == 0) fails += !cpu_case((lq_qtype)t, rows, cols, SRC[(v + 2) % 3], true, cw, 7 * (uint64_t)v + 3);
            }
        }
        /* rows wider than the 2048-element spans the fast paths convert at a time (4864 = 2·2048 + 768) */
        fails += !cpu_case((lq_qtype)t, 3, 4864, SRC[(t + 2) % 3], (t & 1) != 0, heavy && (t & 2) ? cw4864 : NULL,
                           7000 + (uint64_t)t);
        /* one matrix large enough to run on several threads (work above LQ_PAR_MIN_WORK) */
        const int64_t cols = lq_qtype_supports((lq_qtype)t, 768, NULL) ? 768 : 512;
        fails += !cpu_case((lq_qtype)t, 61, cols, SRC[t % 3], false, NULL, 5000 + (uint64_t)t);
        if (tr->kind == LQ_QK_INT || tr->kind == LQ_QK_FP8 || heavy)
            fails += !cpu_case((lq_qtype)t, 45, cols, SRC[(t + 1) % 3], !heavy, cw, 6000 + (uint64_t)t);
    }
    CU_ASSERT_EQUAL(fails, 0);
    free(cw4864);
}

/* special values through every fast path: zeros (and -0), ties, constants, tiny and huge values */
static void test_quant_cpu_special(void) {
    const int64_t rows = 8, cols = 512;
    float        *x    = malloc(sizeof(float) * (size_t)(rows * cols));
    CU_ASSERT_FATAL(x != NULL);
    for (int64_t k = 0; k < cols; k++) {
        x[0 * cols + k] = k % 2 ? 0.f : -0.f;
        x[1 * cols + k] = (float)((int)(k % 17) - 8) * 0.5f; /* exact halves: ties everywhere */
        x[2 * cols + k] = 0.75f;                          /* constant */
        x[3 * cols + k] = -0.75f;
        x[4 * cols + k] = (k % 7 ? 1e-30f : -3e-31f) * (float)(k % 5);
        x[5 * cols + k] = (k % 3 ? 6e4f : -6.5e4f) * (float)(k % 4);
        x[6 * cols + k] = k % 64 == 5 ? 100.f : 0.001f * (float)(k % 9);
        x[7 * cols + k] = k < 256 ? 0.f : (float)k * 1e-3f;
    }
    int fails = 0;
    for (int t = 1; t < LQ_QT_COUNT; t++) {
        const lq_qtype_traits *tr = lq_qtype_traits_of((lq_qtype)t);
        for (int clip = 0; clip < 2; clip++) {
            lq_quant_params p = lq_quant_default_params();
            p.clip_search     = clip;
            qbuf ref = qbuf_new((lq_qtype)t, rows, cols, 1), c = qbuf_new((lq_qtype)t, rows, cols, 2);
            const size_t db = (size_t)lq_qtype_row_bytes((lq_qtype)t, cols) * (size_t)rows;
            const size_t ns = (size_t)lq_qtype_n_scales((lq_qtype)t, rows, cols);
            const bool   ok = lq_quantize_ref((lq_qtype)t, x, rows, cols, &p, ref.data, ref.scales, ref.zeros) == LQ_OK &&
                            lq_quantize_cpu((lq_qtype)t, LQ_DTYPE_F32, x, rows, cols, &p, c.data, c.scales, c.zeros,
                                            2) == LQ_OK &&
                            memcmp(c.data, ref.data, db) == 0 && memcmp(c.scales, ref.scales, 4 * ns) == 0 &&
                            (!lq_qtype_has_zeros((lq_qtype)t) || memcmp(c.zeros, ref.zeros, ns) == 0);
            if (!ok) {
                printf("\n  special values: %s clip %d: cpu != ref\n", tr->name, clip);
                fails++;
            }
            qbuf_free(&ref);
            qbuf_free(&c);
        }
    }
    CU_ASSERT_EQUAL(fails, 0);
    free(x);
}

/* ==== (d) errors ==== */

static void test_quant_errors(void) {
    float   x[4 * 172];
    uint8_t d[4 * 1024];
    float   s[64];
    uint8_t z[64];
    for (int k = 0; k < 4 * 172; k++)
        x[k] = 0.01f * (float)(k % 13);
    lq_test_quiet(1);
    /* widths */
    CU_ASSERT_EQUAL(lq_quantize_ref(LQ_QT_Q4_0, x, 4, 172, NULL, d, s, z), LQ_ERR_SHAPE);
    CU_ASSERT_PTR_NOT_NULL(strstr(lq_test_last_error(), "172"));
    CU_ASSERT_EQUAL(lq_quantize_ref(LQ_QT_INT4_G32, x, 4, 172, NULL, d, s, z), LQ_ERR_SHAPE);
    CU_ASSERT_PTR_NOT_NULL(strstr(lq_test_last_error(), "group size 32"));
    CU_ASSERT_EQUAL(lq_quantize_cpu(LQ_QT_Q4_K, LQ_DTYPE_F32, x, 2, 344, NULL, d, s, z, 2), LQ_ERR_SHAPE);
    CU_ASSERT_EQUAL(lq_quantize_cpu(LQ_QT_INT4_G32, LQ_DTYPE_F32, x, 4, 172, NULL, d, s, z, 2), LQ_ERR_SHAPE);
    CU_ASSERT_EQUAL(lq_dequantize_ref(LQ_QT_Q8_0, d, NULL, NULL, 4, 172, x), LQ_ERR_SHAPE);
    CU_ASSERT_EQUAL(lq_quantize_ref(LQ_QT_INT8_CH, x, 4, 172, NULL, d, s, z), LQ_OK); /* per channel takes any width */
    CU_ASSERT_EQUAL(lq_quantize_ref(LQ_QT_INT8_CH, x, 4, 0, NULL, d, s, z), LQ_ERR_SHAPE);
    /* non-finite values name the row */
    const float bad[] = {NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 3; i++) {
        x[2 * 128 + 77] = bad[i];
        CU_ASSERT_EQUAL(lq_quantize_ref(LQ_QT_Q8_0, x, 4, 128, NULL, d, s, z), LQ_ERR_INVALID_ARG);
        CU_ASSERT_PTR_NOT_NULL(strstr(lq_test_last_error(), "row 2"));
        for (int nt = 1; nt <= 3; nt++) {
            CU_ASSERT_EQUAL(lq_quantize_cpu(LQ_QT_INT4_G32, LQ_DTYPE_F32, x, 4, 128, NULL, d, s, z, nt),
                            LQ_ERR_INVALID_ARG);
            CU_ASSERT_PTR_NOT_NULL(strstr(lq_test_last_error(), "row 2"));
        }
        CU_ASSERT_EQUAL(lq_quantize_cpu(LQ_QT_FP8_E4M3_TENSOR, LQ_DTYPE_F32, x, 4, 128, NULL, d, s, z, 2),
                        LQ_ERR_INVALID_ARG);
        CU_ASSERT_PTR_NOT_NULL(strstr(lq_test_last_error(), "row 2"));
    }
    /* a NaN in the third span of a wide row: row and column are both named */
    float *wide = calloc(4 * 4864, sizeof(float));
    uint8_t *wd = malloc(4 * 4864 * 2);
    float   *ws = malloc(sizeof(float) * 4 * 4864 / 32);
    CU_ASSERT_FATAL(wide && wd && ws);
    wide[2 * 4864 + 4500] = NAN;
    CU_ASSERT_EQUAL(lq_quantize_cpu(LQ_QT_Q8_0, LQ_DTYPE_F32, wide, 4, 4864, NULL, wd, ws, NULL, 2), LQ_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(lq_test_last_error(), "row 2"));
    CU_ASSERT_PTR_NOT_NULL(strstr(lq_test_last_error(), "column 4500"));
    CU_ASSERT_EQUAL(lq_quantize_cpu(LQ_QT_INT4_G128, LQ_DTYPE_F32, wide, 4, 4864, NULL, wd, ws, NULL, 1),
                    LQ_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(lq_test_last_error(), "column 4500"));
    free(wide);
    free(wd);
    free(ws);
    uint16_t h[256];
    for (int k = 0; k < 256; k++)
        h[k] = lq_f32_to_f16(0.5f);
    h[128 + 3] = 0x7E00; /* an f16 NaN in row 1 */
    CU_ASSERT_EQUAL(lq_quantize_cpu(LQ_QT_Q4_0, LQ_DTYPE_F16, h, 2, 128, NULL, d, s, z, 2), LQ_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(lq_test_last_error(), "row 1"));
    x[2 * 128 + 77] = 0.f;
    /* NULL pointers and bad arguments */
    lq_quant_params p = lq_quant_default_params();
    CU_ASSERT_EQUAL(lq_quantize_ref(LQ_QT_Q8_0, NULL, 4, 128, NULL, d, s, z), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_quantize_ref(LQ_QT_Q8_0, x, 4, 128, NULL, NULL, s, z), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_quantize_ref(LQ_QT_INT4_G32, x, 4, 128, NULL, d, NULL, z), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_quantize_ref(LQ_QT_INT4_G32_ASYM, x, 4, 128, NULL, d, s, NULL), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_quantize_ref(LQ_QT_NONE, x, 4, 128, NULL, d, s, z), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_quantize_ref((lq_qtype)999, x, 4, 128, NULL, d, s, z), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_quantize_ref(LQ_QT_Q8_0, x, -1, 128, NULL, d, s, z), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_quantize_ref(LQ_QT_Q8_0, NULL, 0, 128, NULL, NULL, NULL, NULL), LQ_OK); /* nothing to do */
    p.scale_dtype = LQ_DTYPE_F64;
    CU_ASSERT_EQUAL(lq_quantize_ref(LQ_QT_INT4_G32, x, 4, 128, &p, d, s, z), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_quantize_cpu(LQ_QT_INT4_G32, LQ_DTYPE_F32, x, 4, 128, &p, d, s, z, 2), LQ_ERR_INVALID_ARG);
    p             = lq_quant_default_params();
    float cw[128] = {0};
    cw[5]         = -1.f;
    p.col_weight  = cw;
    CU_ASSERT_EQUAL(lq_quantize_ref(LQ_QT_INT4_G32, x, 4, 128, &p, d, s, z), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_quantize_cpu(LQ_QT_INT4_G32, LQ_DTYPE_F32, x, 4, 128, &p, d, s, z, 2), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_quantize_cpu(LQ_QT_Q8_0, LQ_DTYPE_F64, x, 2, 128, NULL, d, s, z, 2), LQ_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(lq_quantize_cpu(LQ_QT_Q8_0, LQ_DTYPE_F32, NULL, 2, 128, NULL, d, s, z, 2), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_dequantize_ref(LQ_QT_INT4_G32, d, NULL, NULL, 4, 128, x), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_dequantize_ref(LQ_QT_INT4_G32_ASYM, d, s, NULL, 4, 128, x), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_dequantize_ref(LQ_QT_Q8_0, NULL, NULL, NULL, 4, 128, x), LQ_ERR_INVALID_ARG);
    lq_test_quiet(0);
}

/* ==== (e) monotonicity ==== */

/* Σ c_k (x_k - w_k)² over the matrix after a round trip (c = 1 without weights) */
static double werr(lq_qtype t, const float *x, int64_t rows, int64_t cols, const lq_quant_params *p, const float *c) {
    qbuf   b = qbuf_new(t, rows, cols, 0);
    float *y = malloc(sizeof(float) * (size_t)(rows * cols));
    CU_ASSERT_FATAL(y != NULL);
    CU_ASSERT_EQUAL(lq_quantize_cpu(t, LQ_DTYPE_F32, x, rows, cols, p, b.data, b.scales, b.zeros, 2), LQ_OK);
    CU_ASSERT_EQUAL(lq_dequantize_ref(t, b.data, b.scales, b.zeros, rows, cols, y), LQ_OK);
    double e = 0;
    for (int64_t i = 0; i < rows * cols; i++) {
        const double d = (double)x[i] - y[i];
        e += (c ? c[i % cols] : 1.0) * d * d;
    }
    qbuf_free(&b);
    free(y);
    return e;
}

static double rms(lq_qtype t, const float *x, int64_t rows, int64_t cols) {
    return sqrt(werr(t, x, rows, cols, NULL, NULL) / (double)(rows * cols));
}

static void test_quant_monotone(void) {
    const int64_t rows = 16, cols = 512;
    float        *x    = malloc(sizeof(float) * (size_t)(rows * cols));
    uint64_t      s    = 4242;
    CU_ASSERT_FATAL(x != NULL);
    for (int64_t i = 0; i < rows * cols; i++)
        x[i] = gauss(&s);
    static const char *const fam[] = {"_ch", "_ch_asym", "_g32", "_g32_asym", "_g64", "_g128", "_g128_asym"};
    for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
        double prev = INFINITY;
        for (int b = 2; b <= 8; b = b == 4 ? 8 : b + 1) {
            char     name[32];
            lq_qtype t;
            snprintf(name, sizeof name, "int%d%s", b, fam[f]);
            CU_ASSERT_EQUAL_FATAL(lq_qtype_from_name(name, &t), LQ_OK);
            const double e = rms(t, x, rows, cols);
            if (!(e < prev)) printf("\n  %s: rms %g not below the narrower type's %g\n", name, e, prev);
            CU_ASSERT(e < prev);
            prev = e;
        }
    }
    const double q40 = rms(LQ_QT_Q4_0, x, rows, cols), q50 = rms(LQ_QT_Q5_0, x, rows, cols);
    const double q80 = rms(LQ_QT_Q8_0, x, rows, cols), q4k = rms(LQ_QT_Q4_K, x, rows, cols);
    const double q6k = rms(LQ_QT_Q6_K, x, rows, cols), f8 = rms(LQ_QT_FP8_E4M3_CH, x, rows, cols);
    CU_ASSERT(q40 > q50 && q50 > q80);
    CU_ASSERT(q4k < q40 && q6k < q4k && q80 < q6k);
    CU_ASSERT(f8 > 0 && f8 < q4k);
    /* 4-bit on N(0,1): a step of ~amax/7.5 ≈ 0.4, rms ≈ step/√12 ≈ 0.11 */
    CU_ASSERT(q40 < 0.15 && q4k < 0.12 && q80 < 0.01);

    /* the clip search never raises the weighted error of a group (it may keep r = 1); on these data it lowers the total */
    float *c = malloc(sizeof(float) * (size_t)cols);
    CU_ASSERT_FATAL(c != NULL);
    for (int64_t k = 0; k < cols; k++)
        c[k] = 0.2f + (float)(k % 7);
    static const lq_qtype ct[] = {LQ_QT_INT4_G128, LQ_QT_INT4_G32_ASYM, LQ_QT_INT3_CH, LQ_QT_INT8_CH_ASYM,
                                  LQ_QT_INT2_G64, LQ_QT_FP8_E4M3_CH, LQ_QT_FP8_E4M3_TENSOR};
    for (size_t i = 0; i < sizeof ct / sizeof ct[0]; i++)
        for (int w = 0; w < 2; w++) {
            lq_quant_params p = lq_quant_default_params(), pc = lq_quant_default_params();
            pc.clip_search    = true;
            pc.col_weight     = w ? c : NULL;
            const int64_t G   = lq_qtype_traits_of(ct[i])->group > 0 ? lq_qtype_traits_of(ct[i])->group : cols;
            /* per group (per row for fp8 per tensor: the whole matrix) */
            const bool tensor = lq_qtype_traits_of(ct[i])->group < 0;
            double     e0 = 0, e1 = 0;
            for (int64_t r = 0; r < (tensor ? 1 : rows); r++) {
                const int64_t nr = tensor ? rows : 1;
                const double  a  = werr(ct[i], x + r * cols, nr, cols, &p, w ? c : NULL);
                const double  b  = werr(ct[i], x + r * cols, nr, cols, &pc, w ? c : NULL);
                e0 += a;
                e1 += b;
                CU_ASSERT(b <= a * (1 + 1e-12));
                if (!tensor && G < cols) { /* group by group */
                    for (int64_t g = 0; g < cols / G; g++) {
                        float xs[128], cs[128];
                        for (int64_t k = 0; k < G; k++) {
                            xs[k] = x[r * cols + g * G + k];
                            cs[k] = c[g * G + k];
                        }
                        lq_quant_params pg = pc;
                        pg.col_weight      = w ? cs : NULL;
                        const double ga = werr(ct[i], xs, 1, G, &p, w ? cs : NULL);
                        const double gb = werr(ct[i], xs, 1, G, &pg, w ? cs : NULL);
                        if (!(gb <= ga * (1 + 1e-12)))
                            printf("\n  %s row %lld group %lld: clip %g > plain %g\n", tn(ct[i]), (long long)r,
                                   (long long)g, gb, ga);
                        CU_ASSERT(gb <= ga * (1 + 1e-12));
                    }
                }
            }
            /* at 2-4 bits clipping the tails of a Gaussian pays; at 8 bits and in fp8 it may not */
            if (lq_qtype_traits_of(ct[i])->kind == LQ_QK_INT && lq_qtype_traits_of(ct[i])->bits <= 4) {
                if (!(e1 < e0)) printf("\n  %s weights %d: clip search total %g, plain %g\n", tn(ct[i]), w, e1, e0);
                CU_ASSERT(e1 < e0);
            }
        }
    free(c);
    free(x);
}

CU_pSuite lq_test_quant_suite(void) {
    CU_pSuite s = lq_test_add_suite("quant");
    LQ_ADD_TEST(s, test_quant_int_codes);
    LQ_ADD_TEST(s, test_quant_int_scale_rules);
    LQ_ADD_TEST(s, test_quant_fp8_codes);
    LQ_ADD_TEST(s, test_quant_keep);
    LQ_ADD_TEST(s, test_quant_known_packing);
    LQ_ADD_TEST(s, test_quant_golden_legacy);
    LQ_ADD_TEST(s, test_quant_golden_kquants);
    LQ_ADD_TEST(s, test_quant_cpu_matches_ref);
    LQ_ADD_TEST(s, test_quant_cpu_special);
    LQ_ADD_TEST(s, test_quant_errors);
    LQ_ADD_TEST(s, test_quant_monotone);
    return s;
}
