/* quantize_ref.c : lq_quantize_ref() and lq_dequantize_ref(), the plain-C
 * oracle of every type in the LQ_QTYPES table (lq_qtypes.h states the math).
 *
 *   KEEP  f32 / f16 / bf16 elements, round to nearest even.
 *   INT   RTN per group (GPTQ / compressed-tensors rule), optional clip search.
 *   FP8   OCP E4M3FN with an f32 scale per row or per tensor.
 *   GGML  the reference quantizers of ggml-quants.c (quantize_row_*_ref), so
 *         that the blocks equal llama-quantize's byte for byte: Q8_0, Q4_0,
 *         Q5_0, Q4_K (the make_qkx2 search) and Q6_K (the make_qx search);
 *         with column weights the k-quants follow ggml's imatrix variants
 *         (quantize_row_q4_K_impl / q6_K_impl: make_qkx3 + make_qp searches).
 *
 * Plain C, one thread, every float operation written out in the order that
 * ggml (or the contract) evaluates it and never contracted into an FMA: the
 * `_cpu` versions (kernels/cpu/quantize_cpu.c) must reproduce it bit for bit.
 * Where the contract leaves a choice this file makes it: the arithmetic is
 * f32 in the order the formulas are written (the asym range hi - lo is an f32
 * subtraction), the clip ratios are (100 - i)/100 as f32, the clip error is
 * summed in f64 in 8 interleaved partial sums, and a scale too large for the
 * scale dtype saturates at its largest finite value (as a scale rounding to 0
 * becomes the smallest). Nothing is allocated; the only failures are argument
 * errors. */
#include "lq_internal.h"
#include "lq_qtypes.h"
#include "quant_internal.h"

#include <float.h>
#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma clang fp contract(off)
#endif

#define QK_K 256 /* elements of a k-quant super-block */

/* ==== small helpers ==== */

static inline void put_le16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline uint16_t get_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline float    half_at(const uint8_t *p) { return lq_f16_to_f32(get_le16(p)); }

/* ggml's nearest_int(): round half to even, exact for |f| < 2^22 (the magic
 * 1.5·2^23 addition there is rint). Arguments out of that range, which ggml
 * asserts against, and NaN (below the lower bound) are clamped first, so the
 * result is always defined; the callers clamp it again to their code range. */
static inline int nearest_i(float f) {
    f = f > -4194303.f ? f : -4194303.f;
    f = f < 4194303.f ? f : 4194303.f;
    return (int)rintf(f);
}

static inline int clamp_i(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

static bool is_scale_dtype(lq_dtype d) { return d == LQ_DTYPE_F16 || d == LQ_DTYPE_BF16 || d == LQ_DTYPE_F32; }

/* s (>= 0 or +Inf) rounded to the scale dtype. A scale that rounds to 0
 * becomes the dtype's smallest positive value (contract); one that overflows
 * becomes its largest finite value (saturation, like e4m3_sat), so a scale is
 * always positive and finite. */
static float round_scale(float s, lq_dtype dt) {
    if (dt == LQ_DTYPE_F16) {
        uint16_t h = lq_f32_to_f16(s);
        if (h == 0) h = 0x0001u;
        if (h >= 0x7C00u) h = 0x7BFFu;
        return lq_f16_to_f32(h);
    }
    if (dt == LQ_DTYPE_BF16) {
        uint16_t h = lq_f32_to_bf16(s);
        if (h == 0) h = 0x0001u;
        if (h >= 0x7F80u) h = 0x7F7Fu;
        return lq_bf16_to_f32(h);
    }
    if (s == 0.f) return FLT_TRUE_MIN;
    return s > FLT_MAX ? FLT_MAX : s;
}

/* the clip-search shrink factors r_i = (100 - i) / 100, i = 0..20, as f32 */
#define N_CLIP 21
static inline float clip_ratio(int i) { return (float)(100 - i) / 100.0f; }

/* ==== INT: dense LSB-first bit stream ==== */

/* code u (< 2^bits) of element k into a zeroed row */
static inline void put_code(uint8_t *row, int64_t k, int bits, unsigned u) {
    const uint64_t pos = (uint64_t)k * (uint64_t)bits;
    const unsigned off = (unsigned)(pos & 7u);
    uint8_t       *b   = row + (pos >> 3);
    b[0] |= (uint8_t)(u << off);
    if (off + (unsigned)bits > 8u) b[1] |= (uint8_t)(u >> (8u - off));
}

static inline unsigned get_code(const uint8_t *row, int64_t k, int bits) {
    const uint64_t pos = (uint64_t)k * (uint64_t)bits;
    const unsigned off = (unsigned)(pos & 7u);
    const uint8_t *b   = row + (pos >> 3);
    unsigned       v   = b[0];
    if (off + (unsigned)bits > 8u) v |= (unsigned)b[1] << 8;
    return (v >> off) & ((1u << bits) - 1u);
}

typedef struct {
    int      bits;
    int      qmax; /* 2^bits - 1 */
    bool     sym;
    lq_dtype sd;   /* scale dtype */
} int_spec;

/* scale and zero point of a group whose range is shrunk by r */
static void int_params(const int_spec *sp, float lo, float hi, float amax, float r, float *s_out, int *z_out) {
    if (sp->sym) {
        /* 2·amax/qmax as amax/(qmax/2): the same rounded value, no overflow */
        const float hq = (float)sp->qmax * 0.5f;
        *s_out         = amax == 0.f ? 1.f : round_scale((amax * r) / hq, sp->sd);
        *z_out         = 1 << (sp->bits - 1);
        return;
    }
    if (lo == hi) { /* both 0: a group of zeros */
        *s_out = 1.f;
        *z_out = 0;
        return;
    }
    const float lr = lo * r, hr = hi * r;
    const float s  = round_scale((hr - lr) / (float)sp->qmax, sp->sd);
    const float zf = rintf(-lr / s);
    *s_out         = s;
    *z_out         = zf < 0.f ? 0 : zf > (float)sp->qmax ? sp->qmax : (int)zf;
}

static inline unsigned int_code(float x, float s, int z, int qmax) {
    float v = rintf(x / s) + (float)z;
    v       = v > 0.f ? v : 0.f;
    v       = v < (float)qmax ? v : (float)qmax;
    return (unsigned)v;
}

/* The clip search's error sum_k c_k (x_k - w_k)^2 (c = 1 without weights),
 * in f64: term k goes into partial sum k mod 8, in index order, and the
 * partials are added pairwise, ((p0+p1)+(p2+p3))+((p4+p5)+(p6+p7)) — a fixed
 * order that vector code can follow lane for lane. */
static inline double err_sum8(const double *p) {
    return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
}

static double int_group_err(const float *x, const float *cw, int64_t n, float s, int z, int qmax) {
    double p[8] = {0};
    for (int64_t k = 0; k < n; k++) {
        const float  w = s * (float)((int)int_code(x[k], s, z, qmax) - z);
        const double d = (double)x[k] - (double)w;
        p[k & 7] += (cw ? (double)cw[k] : 1.0) * (d * d);
    }
    return err_sum8(p);
}

/* one row: codes into `row` (row_bytes, zeroed here), scales/zeros per group */
static void int_row(const int_spec *sp, const float *x, int64_t cols, int64_t G, bool clip, const float *cw,
                    uint8_t *row, size_t row_bytes, float *scales, uint8_t *zeros) {
    memset(row, 0, row_bytes);
    for (int64_t g0 = 0, gi = 0; g0 < cols; g0 += G, gi++) {
        const float *xg = x + g0;
        const float *cg = cw ? cw + g0 : NULL;
        float        lo = 0.f, hi = 0.f, amax = 0.f;
        for (int64_t k = 0; k < G; k++) {
            const float v = xg[k], a = fabsf(v);
            lo            = v < lo ? v : lo;
            hi            = v > hi ? v : hi;
            amax          = a > amax ? a : amax;
        }
        float s;
        int   z;
        int_params(sp, lo, hi, amax, 1.f, &s, &z);
        if (clip) {
            double best = int_group_err(xg, cg, G, s, z, sp->qmax);
            for (int i = 1; i < N_CLIP; i++) {
                float si;
                int   zi;
                int_params(sp, lo, hi, amax, clip_ratio(i), &si, &zi);
                const double e = int_group_err(xg, cg, G, si, zi, sp->qmax);
                if (e < best) {
                    best = e;
                    s    = si;
                    z    = zi;
                }
            }
        }
        scales[gi] = s;
        if (zeros) zeros[gi] = (uint8_t)z;
        for (int64_t k = 0; k < G; k++)
            put_code(row, g0 + k, sp->bits, int_code(xg[k], s, z, sp->qmax));
    }
}

/* ==== FP8 e4m3 ==== */

static inline float fp8_scale(float amax, float r, lq_dtype sd) {
    return amax == 0.f ? 1.f : round_scale((amax * r) / 448.f, sd);
}

/* sum_k c_k (x_k - s·e4m3(x_k/s))^2 over one row, summed as int_group_err */
static double fp8_row_err(const float *x, const float *cw, int64_t n, float s) {
    double p[8] = {0};
    for (int64_t k = 0; k < n; k++) {
        const float  w = s * lq_e4m3_to_f32(lq_f32_to_e4m3_sat(x[k] / s));
        const double d = (double)x[k] - (double)w;
        p[k & 7] += (cw ? (double)cw[k] : 1.0) * (d * d);
    }
    return err_sum8(p);
}

static float row_amax(const float *x, int64_t n) {
    float m = 0.f;
    for (int64_t k = 0; k < n; k++) {
        const float a = fabsf(x[k]);
        m             = a > m ? a : m;
    }
    return m;
}

/* ==== GGML legacy blocks: Q8_0, Q4_0, Q5_0 ==== */

/* 1/d as ggml computes it, but finite: below |d| = 2^-128 ggml's 1/d is Inf
 * and its codes undefined (0·Inf); there the stored f16 d is 0 anyway */
static inline float inv_d(float d) {
    float id = d != 0.f ? 1.0f / d : 0.0f;
    if (id > FLT_MAX) id = FLT_MAX;
    if (id < -FLT_MAX) id = -FLT_MAX;
    return id;
}

/* block: half d; i8 qs[32]. d = amax/127, q = roundf(x·(1/d)). */
static void q8_0_block(const float *x, uint8_t *blk) {
    float amax = 0.f;
    for (int j = 0; j < 32; j++) {
        const float a = fabsf(x[j]);
        amax          = amax > a ? amax : a;
    }
    const float d  = amax / 127.f;
    const float id = inv_d(d);
    put_le16(blk, lq_f32_to_f16(d));
    for (int j = 0; j < 32; j++)
        blk[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id); /* |x·id| <= 127 + ulps */
}

/* the signed value of largest magnitude (the first of equals) */
static inline float signed_absmax(const float *x, int n) {
    float amax = 0.f, max = 0.f;
    for (int j = 0; j < n; j++) {
        const float a = fabsf(x[j]);
        if (amax < a) {
            amax = a;
            max  = x[j];
        }
    }
    return max;
}

/* ggml: MIN(top, (int8_t)(x·id + half)), i.e. truncation of a value that is
 * >= 0 for every x of the block; clamped at 0 too so it stays defined */
static inline int trunc_code(float v, int top) {
    v = v > 0.f ? v : 0.f;
    v = v < (float)top ? v : (float)top;
    return (int)v;
}

/* block: half d; u8 qs[16]: q_j | q_{j+16} << 4. d = max/-8. */
static void q4_0_block(const float *x, uint8_t *blk) {
    const float d  = signed_absmax(x, 32) / -8.f;
    const float id = inv_d(d);
    put_le16(blk, lq_f32_to_f16(d));
    for (int j = 0; j < 16; j++) {
        const int q0 = trunc_code(x[j] * id + 8.5f, 15);
        const int q1 = trunc_code(x[j + 16] * id + 8.5f, 15);
        blk[2 + j]   = (uint8_t)(q0 | (q1 << 4));
    }
}

/* block: half d; u32 qh (bit j = bit 4 of q_j); u8 qs[16] low nibbles. d = max/-16. */
static void q5_0_block(const float *x, uint8_t *blk) {
    const float d  = signed_absmax(x, 32) / -16.f;
    const float id = inv_d(d);
    uint32_t    qh = 0;
    put_le16(blk, lq_f32_to_f16(d));
    for (int j = 0; j < 16; j++) {
        const int q0 = trunc_code(x[j] * id + 16.5f, 31);
        const int q1 = trunc_code(x[j + 16] * id + 16.5f, 31);
        blk[6 + j]   = (uint8_t)((q0 & 0xF) | ((q1 & 0xF) << 4));
        qh |= (uint32_t)(q0 >> 4) << j;
        qh |= (uint32_t)(q1 >> 4) << (j + 16);
    }
    for (int b = 0; b < 4; b++)
        blk[2 + b] = (uint8_t)(qh >> (8 * b));
}

/* ==== GGML k-quants: the searches ==== */

/* ggml's make_qkx2_quants / make_qkx3_quants with use_mad = false (the two
 * differ only in the caller's weights and grid): fit x ≈ scale·L + min with
 * min <= 0 and L in [0, nmax]. First plain rounding at nmax/(max-min), then
 * for each grid point (rmin + rdelta·is + nmax)/(max-min), is = 0..nstep, the
 * rounding there followed by the weighted least-squares scale and min of
 * those L; the candidate with the smallest Σ w·(scale·L + min - x)² wins
 * (strictly smaller, so the earliest on ties). Returns the scale and sets
 * *neg_min = -min (>= 0). */
static float fit_affine(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min, float rmin,
                        float rdelta, int nstep) {
    uint8_t Laux[32];
    float   lo = x[0], hi = x[0];
    float   sum_w = w[0];
    float   sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (lo > 0) lo = 0;
    if (hi == lo) {
        memset(L, 0, (size_t)n);
        *neg_min = -lo;
        return 0.f;
    }
    float iscale = (float)nmax / (hi - lo);
    float scale  = 1 / iscale;
    float best   = 0;
    for (int i = 0; i < n; i++) {
        L[i]             = (uint8_t)clamp_i(nearest_i(iscale * (x[i] - lo)), 0, nmax);
        const float diff = scale * L[i] + lo - x[i];
        best += w[i] * (diff * diff);
    }
    /* as in ggml, a better fit's min moves the origin of the later grid points */
    for (int is = 0; is <= nstep; is++) {
        iscale      = (rmin + rdelta * (float)is + (float)nmax) / (hi - lo);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            const int l = clamp_i(nearest_i(iscale * (x[i] - lo)), 0, nmax);
            Laux[i]     = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min   = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min   = 0;
                this_scale = sum_xl / sum_l2;
            }
            float mad = 0;
            for (int i = 0; i < n; i++) {
                const float diff = this_scale * Laux[i] + this_min - x[i];
                mad += w[i] * (diff * diff);
            }
            if (mad < best) {
                memcpy(L, Laux, (size_t)n);
                best  = mad;
                scale = this_scale;
                lo    = this_min;
            }
        }
    }
    *neg_min = -lo;
    return scale;
}

/* ggml's make_qx_quants with rmse_type 1: symmetric codes L - nmax in
 * [-nmax, nmax-1], scale fitted by weighted least squares (weights qw, or
 * x² without), over the inverse scales -(nmax + 0.1·is)/max, is = -9..9;
 * the candidate maximizing (Σwxl)²/Σwl² wins (strictly). */
static float fit_symmetric(int n, int nmax, const float *x, int8_t *L, const float *qw) {
    float amax = 0, vmax = 0;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            vmax = x[i];
        }
    }
    if (amax < 1e-15f) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = (float)(-nmax) / vmax;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int   l = clamp_i(nearest_i(iscale * x[i]), -nmax, nmax - 1);
        const float w = qw ? qw[i] : x[i] * x[i];
        L[i]          = (int8_t)(l + nmax);
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
    float best  = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)is) / vmax;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            const int   l = clamp_i(nearest_i(iscale * x[i]), -nmax, nmax - 1);
            const float w = qw ? qw[i] : x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + clamp_i(nearest_i(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best  = scale * sumlx;
        }
    }
    return scale;
}

/* ggml's make_qp_quants: codes of non-negative values (the sub-block scales
 * and mins of Q4_K with an imatrix) in [0, nmax], weighted by qw: a grid of 8
 * inverse scales (0.1·is + nmax)/max around nmax/max, then up to 5 rounds of
 * coordinate moves. L is u8 and the arithmetic wraps exactly as ggml's. */
static float fit_positive(int n, int nmax, const float *x, uint8_t *L, const float *qw) {
    float max = 0;
    for (int i = 0; i < n; i++)
        max = max > x[i] ? max : x[i];
    if (max == 0) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = (float)nmax / max;
    for (int i = 0; i < n; i++)
        L[i] = (uint8_t)nearest_i(iscale * x[i]);
    const float scale = 1 / iscale;
    float       best  = 0;
    for (int i = 0; i < n; i++) {
        const float diff = x[i] - scale * L[i];
        best += qw[i] * diff * diff;
    }
    for (int is = -4; is <= 4; is++) {
        if (is == 0) continue;
        const float iscale_is = (0.1f * (float)is + (float)nmax) / max;
        const float scale_is  = 1 / iscale_is;
        float       mse       = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest_i(iscale_is * x[i]);
            l     = l < nmax ? l : nmax;
            const float diff = x[i] - scale_is * l;
            mse += qw[i] * diff * diff;
        }
        if (mse < best) {
            best   = mse;
            iscale = iscale_is;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_i(iscale * x[i]);
        l     = l < nmax ? l : nmax;
        L[i]  = (uint8_t)l;
        sumlx += qw[i] * x[i] * l;
        suml2 += qw[i] * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            const float w   = qw[i];
            float       slx = sumlx - w * x[i] * L[i];
            float       sl2 = suml2 - w * L[i] * L[i];
            if (slx > 0 && sl2 > 0) {
                int new_l = nearest_i(x[i] * sl2 / slx);
                new_l     = new_l < nmax ? new_l : nmax;
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i]  = (uint8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    return sumlx / suml2;
}

/* ==== GGML k-quant blocks: Q4_K, Q6_K ==== */

/* Q4_K block (144 bytes): half d, dmin; u8 scales[12] (8 six-bit scales and
 * mins); u8 qs[128] (per 64 elements 32 bytes: low nibble e_l, high e_{l+32}).
 * x = d·sc_j·q - dmin·m_j. */
static void q4_k_pack_scales(uint8_t *s12, const uint8_t *ls, const uint8_t *lm) {
    memset(s12, 0, 12);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            s12[j]     = ls[j];
            s12[j + 4] = lm[j];
        } else {
            s12[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            s12[j - 4] = (uint8_t)(s12[j - 4] | ((ls[j] >> 4) << 6));
            s12[j]     = (uint8_t)(s12[j] | ((lm[j] >> 4) << 6));
        }
    }
}

static inline void q4_k_scale_min(int j, const uint8_t *s12, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = s12[j] & 63;
        *m  = s12[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s12[j + 4] & 0xF) | ((s12[j - 4] >> 6) << 4));
        *m  = (uint8_t)((s12[j + 4] >> 4) | ((s12[j] >> 6) << 4));
    }
}

/* the codes against the stored (f16, 6-bit) scales and mins, then the nibbles;
 * a sub-block whose stored scale is 0 keeps the codes of its search */
static void q4_k_finish(const float *x, uint8_t *blk, uint8_t *L) {
    const float d = half_at(blk), dmin = half_at(blk + 2);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        q4_k_scale_min(j, blk + 4, &sc, &m);
        const float dj = d * sc;
        if (dj == 0) continue;
        const float dm = dmin * m;
        for (int i = 0; i < 32; i++)
            L[32 * j + i] = (uint8_t)clamp_i(nearest_i((x[32 * j + i] + dm) / dj), 0, 15);
    }
    uint8_t *q = blk + 16;
    for (int j = 0; j < QK_K; j += 64) {
        for (int l = 0; l < 32; l++)
            q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
        q += 32;
    }
}

/* quantize_row_q4_K_ref */
static void q4_k_block(const float *x, uint8_t *blk) {
    uint8_t L[QK_K], ls[8], lm[8];
    float   w[32], scales[8], mins[8];
    float   max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        const float *xj     = x + 32 * j;
        float        sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += xj[l] * xj[l];
        const float av_x = sqrtf(sum_x2 / 32.f);
        for (int l = 0; l < 32; l++)
            w[l] = av_x + fabsf(xj[l]);
        scales[j] = fit_affine(32, 15, xj, w, L + 32 * j, &mins[j], -1.f, 0.1f, 20);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min   = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; j++) {
        const uint8_t a = (uint8_t)nearest_i(inv_scale * scales[j]); /* u8 wrap, as ggml */
        const uint8_t b = (uint8_t)nearest_i(inv_min * mins[j]);
        ls[j]           = a < 63 ? a : 63;
        lm[j]           = b < 63 ? b : 63;
    }
    put_le16(blk, lq_f32_to_f16(max_scale / 63.f));
    put_le16(blk + 2, lq_f32_to_f16(max_min / 63.f));
    q4_k_pack_scales(blk + 4, ls, lm);
    q4_k_finish(x, blk, L);
}

/* quantize_row_q4_K_impl with quant_weights = cw (256 column weights) */
static void q4_k_block_weighted(const float *x, const float *cw, uint8_t *blk) {
    uint8_t L[QK_K], ls[8], lm[8];
    float   w[32], sw[8], scales[8], mins[8];
    float   sum_x2 = 0;
    for (int l = 0; l < QK_K; l++)
        sum_x2 += x[l] * x[l];
    const float sigma2 = 2.f * sum_x2 / (float)QK_K;
    for (int j = 0; j < 8; j++) {
        const float *xj = x + 32 * j;
        for (int l = 0; l < 32; l++)
            w[l] = cw[32 * j + l] * sqrtf(sigma2 + xj[l] * xj[l]);
        float sumw = 0;
        for (int l = 0; l < 32; l++)
            sumw += w[l];
        sw[j]     = sumw;
        scales[j] = fit_affine(32, 15, xj, w, L + 32 * j, &mins[j], -0.9f, 0.05f, 36);
    }
    const float d_block = fit_positive(8, 63, scales, ls, sw);
    const float m_block = fit_positive(8, 63, mins, lm, sw);
    put_le16(blk, lq_f32_to_f16(d_block));
    put_le16(blk + 2, lq_f32_to_f16(m_block));
    q4_k_pack_scales(blk + 4, ls, lm);
    q4_k_finish(x, blk, L);
}

/* Q6_K block (210 bytes): u8 ql[128]; u8 qh[64]; i8 scales[16]; half d.
 * x = d·scales[e/16]·(q - 32). quantize_row_q6_K_ref / _impl (qw = cw). */
static void q6_k_block(const float *x, const float *cw, uint8_t *blk) {
    int8_t L[QK_K];
    float  scales[16];
    float  max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < 16; ib++) {
        const float scale = fit_symmetric(16, 32, x + 16 * ib, L + 16 * ib, cw ? cw + 16 * ib : NULL);
        scales[ib]        = scale;
        const float abs_s = fabsf(scale);
        if (abs_s > max_abs_scale) {
            max_abs_scale = abs_s;
            max_scale     = scale;
        }
    }
    memset(blk, 0, 210);
    if (max_abs_scale < 1e-15f) return; /* all zero, d = +0 */
    const float iscale = -128.f / max_scale;
    put_le16(blk + 208, lq_f32_to_f16(1 / iscale));
    int8_t *const sc = (int8_t *)(blk + 192);
    for (int ib = 0; ib < 16; ib++)
        sc[ib] = (int8_t)clamp_i(nearest_i(iscale * scales[ib]), -128, 127);
    const float d = half_at(blk + 208);
    for (int j = 0; j < 16; j++) {
        const float dj = d * sc[j];
        if (dj == 0) continue;
        for (int i = 0; i < 16; i++)
            L[16 * j + i] = (int8_t)(clamp_i(nearest_i(x[16 * j + i] / dj), -32, 31) + 32);
    }
    uint8_t *ql = blk, *qh = blk + 128;
    for (int j = 0; j < QK_K; j += 128) {
        for (int l = 0; l < 32; l++) {
            const int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
            ql[l]        = (uint8_t)((q1 & 0xF) | ((q3 & 0xF) << 4));
            ql[l + 32]   = (uint8_t)((q2 & 0xF) | ((q4 & 0xF) << 4));
            qh[l]        = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
        }
        ql += 64;
        qh += 32;
    }
}

/* ==== dequantization of the GGML blocks (ggml's dequantize_row_*) ==== */

static void dq_q8_0(const uint8_t *b, float *y) {
    const float d = half_at(b);
    for (int j = 0; j < 32; j++)
        y[j] = (float)(int8_t)b[2 + j] * d;
}

static void dq_q4_0(const uint8_t *b, float *y) {
    const float d = half_at(b);
    for (int j = 0; j < 16; j++) {
        y[j]      = (float)((b[2 + j] & 0x0F) - 8) * d;
        y[j + 16] = (float)((b[2 + j] >> 4) - 8) * d;
    }
}

static void dq_q5_0(const uint8_t *b, float *y) {
    const float    d  = half_at(b);
    const uint32_t qh = (uint32_t)b[2] | (uint32_t)b[3] << 8 | (uint32_t)b[4] << 16 | (uint32_t)b[5] << 24;
    for (int j = 0; j < 16; j++) {
        const int h0 = (int)((qh >> j) & 1u) << 4, h1 = (int)((qh >> (j + 16)) & 1u) << 4;
        y[j]         = (float)(((b[6 + j] & 0x0F) | h0) - 16) * d;
        y[j + 16]    = (float)(((b[6 + j] >> 4) | h1) - 16) * d;
    }
}

static void dq_q4_k(const uint8_t *b, float *y) {
    const float    d = half_at(b), dmin = half_at(b + 2);
    const uint8_t *q = b + 16;
    for (int j = 0; j < 8; j += 2) {
        uint8_t sc, m;
        q4_k_scale_min(j, b + 4, &sc, &m);
        const float d1 = d * sc, m1 = dmin * m;
        q4_k_scale_min(j + 1, b + 4, &sc, &m);
        const float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; l++)
            *y++ = d1 * (float)(q[l] & 0xF) - m1;
        for (int l = 0; l < 32; l++)
            *y++ = d2 * (float)(q[l] >> 4) - m2;
        q += 32;
    }
}

static void dq_q6_k(const uint8_t *b, float *y) {
    const float    d  = half_at(b + 208);
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t  *sc = (const int8_t *)(b + 192);
    for (int n = 0; n < QK_K; n += 128) {
        for (int l = 0; l < 32; l++) {
            const int is = l / 16;
            const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l]         = d * (float)sc[is] * (float)q1;
            y[l + 32]    = d * (float)sc[is + 2] * (float)q2;
            y[l + 64]    = d * (float)sc[is + 4] * (float)q3;
            y[l + 96]    = d * (float)sc[is + 6] * (float)q4;
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

/* ==== argument checks shared by both directions ==== */

static lq_status check_shape(const char *fn, lq_qtype t, int64_t rows, int64_t cols, const lq_qtype_traits **tr_out,
                             uint64_t *row_bytes) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(t);
    const char            *why = NULL;
    LQ_RETURN_IF(!tr || tr->kind == LQ_QK_NONE, LQ_ERR_INVALID_ARG, "%s: %d is not a storage type", fn, (int)t);
    LQ_RETURN_IF(rows < 0, LQ_ERR_INVALID_ARG, "%s: negative row count %lld", fn, (long long)rows);
    LQ_RETURN_IF(!lq_qtype_supports(t, cols, &why), LQ_ERR_SHAPE, "%s: %s cannot store rows of %lld columns: %s", fn,
                 tr->name, (long long)cols, why);
    const uint64_t rb = lq_qtype_row_bytes(t, cols);
    uint64_t       total, nel;
    LQ_RETURN_IF(rb == 0 || !lq__mul_u64(rb, (uint64_t)rows, &total) || total > SIZE_MAX ||
                     !lq__mul_u64((uint64_t)cols, (uint64_t)rows, &nel) || nel > SIZE_MAX / sizeof(float),
                 LQ_ERR_INVALID_ARG, "%s: %lld x %lld %s is too large", fn, (long long)rows, (long long)cols, tr->name);
    *tr_out    = tr;
    *row_bytes = rb;
    return LQ_OK;
}

/* ==== public entry points ==== */

lq_status lq_quantize_ref(lq_qtype t, const float *x, int64_t rows, int64_t cols, const lq_quant_params *p,
                          void *data, float *scales, uint8_t *zeros) {
    const lq_qtype_traits *tr;
    uint64_t               rb;
    LQ_TRY(check_shape("lq_quantize_ref", t, rows, cols, &tr, &rb));
    const lq_quant_params dp = lq_quant_default_params();
    if (!p) p = &dp;
    LQ_RETURN_IF(!is_scale_dtype(p->scale_dtype), LQ_ERR_INVALID_ARG, "scale dtype %s is not F16, BF16 or F32",
                 lq_dtype_name(p->scale_dtype));
    if (rows == 0) return LQ_OK;
    const int64_t n_scales = lq_qtype_n_scales(t, rows, cols);
    LQ_RETURN_IF(!x || !data, LQ_ERR_INVALID_ARG, "%s: NULL %s", tr->name, !x ? "input" : "output");
    LQ_RETURN_IF(n_scales > 0 && !scales, LQ_ERR_INVALID_ARG, "%s: NULL scales", tr->name);
    LQ_RETURN_IF(lq_qtype_has_zeros(t) && !zeros, LQ_ERR_INVALID_ARG, "%s: NULL zero points", tr->name);
    const float *cw = p->col_weight;
    if (cw)
        for (int64_t k = 0; k < cols; k++)
            LQ_RETURN_IF(!(cw[k] >= 0.f && cw[k] <= FLT_MAX), LQ_ERR_INVALID_ARG,
                         "column weight %lld is %g (must be finite and >= 0)", (long long)k, (double)cw[k]);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < cols; k++) {
            const float v = x[r * cols + k];
            LQ_RETURN_IF(!(v - v == 0.f), LQ_ERR_INVALID_ARG, "%s: row %lld has a non-finite value (%g at column %lld)",
                         tr->name, (long long)r, (double)v, (long long)k);
        }

    uint8_t *const out = data;
    switch (tr->kind) {
    case LQ_QK_KEEP:
        for (int64_t i = 0; i < rows * cols; i++) {
            if (t == LQ_QT_F32) {
                memcpy(out + 4 * i, &x[i], 4);
            } else {
                put_le16(out + 2 * i, t == LQ_QT_F16 ? lq_f32_to_f16(x[i]) : lq_f32_to_bf16(x[i]));
            }
        }
        break;
    case LQ_QK_INT: {
        const int_spec sp = {tr->bits, (1 << tr->bits) - 1, tr->sym, p->scale_dtype};
        const int64_t  G  = tr->group > 0 ? tr->group : cols;
        const int64_t  ng = lq_qtype_n_groups(t, cols);
        for (int64_t r = 0; r < rows; r++)
            int_row(&sp, x + r * cols, cols, G, p->clip_search, cw, out + (size_t)r * rb, (size_t)rb, scales + r * ng,
                    zeros ? zeros + r * ng : NULL);
        break;
    }
    case LQ_QK_FP8: {
        const int nr = p->clip_search ? N_CLIP : 1;
        if (tr->group < 0) { /* one scale for the tensor; the search sums the rows' errors in row order */
            float amax = 0.f;
            for (int64_t r = 0; r < rows; r++) {
                const float a = row_amax(x + r * cols, cols);
                amax          = a > amax ? a : amax;
            }
            float  s    = fp8_scale(amax, 1.f, p->scale_dtype);
            double best = 0;
            for (int i = 0; i < nr && nr > 1; i++) {
                const float si = fp8_scale(amax, clip_ratio(i), p->scale_dtype);
                double      e  = 0;
                for (int64_t r = 0; r < rows; r++)
                    e += fp8_row_err(x + r * cols, cw, cols, si);
                if (i == 0 || e < best) {
                    best = e;
                    s    = si;
                }
            }
            scales[0] = s;
            for (int64_t i = 0; i < rows * cols; i++)
                out[i] = lq_f32_to_e4m3_sat(x[i] / s);
        } else {
            for (int64_t r = 0; r < rows; r++) {
                const float *xr   = x + r * cols;
                const float  amax = row_amax(xr, cols);
                float        s    = fp8_scale(amax, 1.f, p->scale_dtype);
                double       best = 0;
                for (int i = 0; i < nr && nr > 1; i++) {
                    const float  si = fp8_scale(amax, clip_ratio(i), p->scale_dtype);
                    const double e  = fp8_row_err(xr, cw, cols, si);
                    if (i == 0 || e < best) {
                        best = e;
                        s    = si;
                    }
                }
                scales[r] = s;
                for (int64_t k = 0; k < cols; k++)
                    out[r * cols + k] = lq_f32_to_e4m3_sat(xr[k] / s);
            }
        }
        break;
    }
    case LQ_QK_GGML: {
        const int64_t nb = cols / tr->block;
        for (int64_t r = 0; r < rows; r++) {
            const float *xr = x + r * cols;
            uint8_t     *yr = out + (size_t)r * rb;
            for (int64_t b = 0; b < nb; b++) {
                const float *xb  = xr + b * tr->block;
                uint8_t     *blk = yr + (size_t)b * (size_t)tr->block_bytes;
                const float *cwb = cw ? cw + b * tr->block : NULL;
                if (t == LQ_QT_Q8_0)
                    q8_0_block(xb, blk);
                else if (t == LQ_QT_Q4_0)
                    q4_0_block(xb, blk);
                else if (t == LQ_QT_Q5_0)
                    q5_0_block(xb, blk);
                else if (t == LQ_QT_Q4_K && cwb)
                    q4_k_block_weighted(xb, cwb, blk);
                else if (t == LQ_QT_Q4_K)
                    q4_k_block(xb, blk);
                else
                    q6_k_block(xb, cwb, blk);
            }
        }
        break;
    }
    case LQ_QK_NONE: break;
    }
    return LQ_OK;
}

lq_status lq_dequantize_ref(lq_qtype t, const void *data, const float *scales, const uint8_t *zeros, int64_t rows,
                            int64_t cols, float *out) {
    const lq_qtype_traits *tr;
    uint64_t               rb;
    LQ_TRY(check_shape("lq_dequantize_ref", t, rows, cols, &tr, &rb));
    if (rows == 0) return LQ_OK;
    LQ_RETURN_IF(!data || !out, LQ_ERR_INVALID_ARG, "%s: NULL %s", tr->name, !data ? "data" : "output");
    LQ_RETURN_IF(lq_qtype_n_scales(t, rows, cols) > 0 && !scales, LQ_ERR_INVALID_ARG, "%s: NULL scales", tr->name);
    LQ_RETURN_IF(lq_qtype_has_zeros(t) && !zeros, LQ_ERR_INVALID_ARG, "%s: NULL zero points", tr->name);
    const uint8_t *const in = data;
    switch (tr->kind) {
    case LQ_QK_KEEP:
        for (int64_t i = 0; i < rows * cols; i++) {
            if (t == LQ_QT_F32)
                memcpy(&out[i], in + 4 * i, 4);
            else
                out[i] = t == LQ_QT_F16 ? lq_f16_to_f32(get_le16(in + 2 * i)) : lq_bf16_to_f32(get_le16(in + 2 * i));
        }
        break;
    case LQ_QK_INT: {
        const int64_t G  = tr->group > 0 ? tr->group : cols;
        const int64_t ng = lq_qtype_n_groups(t, cols);
        const int     zs = 1 << (tr->bits - 1);
        for (int64_t r = 0; r < rows; r++) {
            const uint8_t *row = in + (size_t)r * rb;
            for (int64_t k = 0; k < cols; k++) {
                const int64_t g = r * ng + k / G;
                const int     z = zeros ? zeros[g] : zs;
                out[r * cols + k] = scales[g] * (float)((int)get_code(row, k, tr->bits) - z);
            }
        }
        break;
    }
    case LQ_QK_FP8:
        for (int64_t r = 0; r < rows; r++) {
            const float s = tr->group < 0 ? scales[0] : scales[r];
            for (int64_t k = 0; k < cols; k++)
                out[r * cols + k] = s * lq_e4m3_to_f32(in[r * cols + k]);
        }
        break;
    case LQ_QK_GGML: {
        const int64_t nb = cols / tr->block;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *blk = in + (size_t)r * rb + (size_t)b * (size_t)tr->block_bytes;
                float         *y   = out + r * cols + b * tr->block;
                if (t == LQ_QT_Q8_0)
                    dq_q8_0(blk, y);
                else if (t == LQ_QT_Q4_0)
                    dq_q4_0(blk, y);
                else if (t == LQ_QT_Q5_0)
                    dq_q5_0(blk, y);
                else if (t == LQ_QT_Q4_K)
                    dq_q4_k(blk, y);
                else
                    dq_q6_k(blk, y);
            }
        break;
    }
    case LQ_QK_NONE: break;
    }
    return LQ_OK;
}

/* ==== internal wrappers (quant_internal.h): the INT rule for other quantizers (GPTQ) ==== */

void lq__int_group_params(int bits, bool sym, lq_dtype sd, float lo, float hi, float amax, float r, float *s, int *z) {
    const int_spec sp = {bits, (1 << bits) - 1, sym, sd};
    int_params(&sp, lo, hi, amax, r, s, z);
}

unsigned lq__int_code(float x, float s, int z, int qmax) { return int_code(x, s, z, qmax); }

void lq__put_code(uint8_t *row, int64_t k, int bits, unsigned u) { put_code(row, k, bits, u); }

unsigned lq__get_code(const uint8_t *row, int64_t k, int bits) { return get_code(row, k, bits); }
