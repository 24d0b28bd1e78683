/* quantize_cpu.c : lq_quantize_cpu(), lq_quantize_ref() over OpenMP threads
 * with SIMD fast paths, from an F32, F16 or BF16 source.
 *
 * Rows are independent: a `schedule(dynamic)` loop hands rows to threads; a
 * row is converted exactly to f32 in the thread's scratch (checking that every
 * value is finite; the source is prefetched a few KB ahead), then quantized
 * by that thread alone. The result is bit-identical to lq_quantize_ref() on
 * the converted values for any thread count, because every fast path
 * evaluates the reference's float operations in the same order with the same
 * rounding: divisions stay divisions, rintf is the SIMD round-to-nearest-even,
 * roundf is rebuilt exactly from truncations, products are never fused into
 * FMAs (the build is ISO C, -ffp-contract=off; clang is told so below), and
 * only maxima and minima, exact in any order, are taken across lanes. The
 * sequential sums of the k-quant searches stay sequential: a SIMD lane holds
 * one sub-block, never a slice of one.
 *
 * Fast paths:
 *   Q8_0, Q4_0, Q5_0   LQ_VL blocks at a time, their maxima and scales as lanes;
 *   INT                every width and group, LQ_VL groups at a time, codes
 *                      packed straight from the registers for 4 and 8 bits;
 *                      with the clip search, the f64 error of each candidate
 *                      in 8 partial sums (the order quantize_ref.c defines);
 *   Q4_K               ggml's make_qkx2 search, one sub-block per lane, four
 *                      groups of lanes staggered so their chains overlap;
 *   Q6_K               ggml's make_qx search, one sub-block per lane;
 *   FP8 per tensor     the tensor's amax (an exact max) first, then the rows.
 * Everything else (FP8 per channel, Q4_K/Q6_K with column weights, KEEP
 * conversions between dtypes) calls lq_quantize_ref() row by row. */
#include "lq_internal.h"
#include "lq_kernels.h"
#include "lq_qtypes.h"
#include "simd_internal.h"

#include <float.h>
#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma clang fp contract(off)
#endif

#define QK_K 256

/* ==== the few vector operations simd_internal.h does not have ====
 * vq_rne: round to nearest even (rintf); vq_trunc: toward zero;
 * vq_min(a, b) = a < b ? a : b (vf_max(a, b) = a > b ? a : b); masks with
 * vm_* and vq_sel(m, a, b) = m ? a : b; vm_bits: lane i -> bit i. */
#if defined(LQ_SIMD_AVX512)
typedef __mmask16 lq_vm;
static inline lq_vf    vq_rne(lq_vf v) { return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline lq_vf    vq_trunc(lq_vf v) { return _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC); }
static inline lq_vf    vq_min(lq_vf a, lq_vf b) { return _mm512_min_ps(a, b); }
static inline lq_vf    vq_abs(lq_vf a) { return _mm512_abs_ps(a); }
static inline lq_vf    vq_sqrt(lq_vf a) { return _mm512_sqrt_ps(a); }
static inline lq_vm    vm_lt(lq_vf a, lq_vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
static inline lq_vm    vm_gt(lq_vf a, lq_vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
static inline lq_vm    vm_ge(lq_vf a, lq_vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
static inline lq_vm    vm_eq(lq_vf a, lq_vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
static inline lq_vm    vm_and(lq_vm a, lq_vm b) { return (lq_vm)(a & b); }
static inline lq_vm    vm_andnot(lq_vm a, lq_vm b) { return (lq_vm)(~a & b); } /* !a && b */
static inline lq_vf    vq_sel(lq_vm m, lq_vf a, lq_vf b) { return _mm512_mask_blend_ps(m, b, a); }
static inline unsigned vm_bits(lq_vm m) { return (unsigned)m; }
/* LQ_VL integral values in [0, 255] (or [-128, 127]) as bytes */
static inline void vq_store_bytes(uint8_t *dst, lq_vf v) {
    _mm_storeu_si128((__m128i *)dst, _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v)));
}
/* LQ_VL codes < 16 as LQ_VL/2 bytes, code 2i in the low nibble of byte i:
 * in each 64-bit lane, code 2i+1 shifted down by 28 lands on bits 4..7 */
static inline void vq_store_nibbles(uint8_t *dst, lq_vf v) {
    const __m512i x = _mm512_cvtps_epi32(v);
    _mm_storel_epi64((__m128i *)dst, _mm512_cvtepi64_epi8(_mm512_or_si512(x, _mm512_srli_epi64(x, 28))));
}
#elif defined(LQ_SIMD_AVX2)
typedef __m256 lq_vm;
static inline lq_vf vq_rne(lq_vf v) { return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline lq_vf vq_trunc(lq_vf v) { return _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC); }
static inline lq_vf vq_min(lq_vf a, lq_vf b) { return _mm256_min_ps(a, b); }
static inline lq_vf vq_abs(lq_vf a) { return _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF))); }
static inline lq_vf vq_sqrt(lq_vf a) { return _mm256_sqrt_ps(a); }
static inline lq_vm vm_lt(lq_vf a, lq_vf b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
static inline lq_vm vm_gt(lq_vf a, lq_vf b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
static inline lq_vm vm_ge(lq_vf a, lq_vf b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
static inline lq_vm vm_eq(lq_vf a, lq_vf b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
static inline lq_vm vm_and(lq_vm a, lq_vm b) { return _mm256_and_ps(a, b); }
static inline lq_vm vm_andnot(lq_vm a, lq_vm b) { return _mm256_andnot_ps(a, b); }
static inline lq_vf vq_sel(lq_vm m, lq_vf a, lq_vf b) { return _mm256_blendv_ps(b, a, m); }
static inline unsigned vm_bits(lq_vm m) { return (unsigned)_mm256_movemask_ps(m); }
static inline void vq_store_bytes(uint8_t *dst, lq_vf v) {
    const __m256i x = _mm256_cvtps_epi32(v);
    /* values in [-128, 255]: exact as int16, then the low byte of each */
    const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(x), _mm256_extracti128_si256(x, 1));
    const __m128i lo = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, -1, -1, -1, -1, -1, -1, -1, -1);
    _mm_storel_epi64((__m128i *)dst, _mm_shuffle_epi8(w, lo));
}
static inline void vq_store_nibbles(uint8_t *dst, lq_vf v) {
    int32_t t[8];
    _mm256_storeu_si256((__m256i *)t, _mm256_cvtps_epi32(v));
    for (int i = 0; i < 4; i++)
        dst[i] = (uint8_t)(t[2 * i] | (t[2 * i + 1] << 4));
}
#else
typedef struct {
    int m[LQ_VL];
} lq_vm;
#define VQ_MAP(expr)                                                                                                   \
    lq_vf r;                                                                                                           \
    for (int i = 0; i < LQ_VL; i++)                                                                                    \
        r.v[i] = (expr);                                                                                               \
    return r
#define VM_MAP(expr)                                                                                                   \
    lq_vm r;                                                                                                           \
    for (int i = 0; i < LQ_VL; i++)                                                                                    \
        r.m[i] = (expr);                                                                                               \
    return r
static inline lq_vf vq_rne(lq_vf v) { VQ_MAP(rintf(v.v[i])); }
static inline lq_vf vq_trunc(lq_vf v) { VQ_MAP(truncf(v.v[i])); }
static inline lq_vf vq_min(lq_vf a, lq_vf b) { VQ_MAP(a.v[i] < b.v[i] ? a.v[i] : b.v[i]); }
static inline lq_vf vq_abs(lq_vf a) { VQ_MAP(fabsf(a.v[i])); }
static inline lq_vf vq_sqrt(lq_vf a) { VQ_MAP(sqrtf(a.v[i])); }
static inline lq_vm vm_lt(lq_vf a, lq_vf b) { VM_MAP(a.v[i] < b.v[i]); }
static inline lq_vm vm_gt(lq_vf a, lq_vf b) { VM_MAP(a.v[i] > b.v[i]); }
static inline lq_vm vm_ge(lq_vf a, lq_vf b) { VM_MAP(a.v[i] >= b.v[i]); }
static inline lq_vm vm_eq(lq_vf a, lq_vf b) { VM_MAP(a.v[i] == b.v[i]); }
static inline lq_vm vm_and(lq_vm a, lq_vm b) { VM_MAP(a.m[i] && b.m[i]); }
static inline lq_vm vm_andnot(lq_vm a, lq_vm b) { VM_MAP(!a.m[i] && b.m[i]); }
static inline lq_vf vq_sel(lq_vm m, lq_vf a, lq_vf b) { VQ_MAP(m.m[i] ? a.v[i] : b.v[i]); }
static inline unsigned vm_bits(lq_vm m) {
    unsigned b = 0;
    for (int i = 0; i < LQ_VL; i++)
        b |= (m.m[i] ? 1u : 0u) << i;
    return b;
}
static inline void vq_store_bytes(uint8_t *dst, lq_vf v) {
    for (int i = 0; i < LQ_VL; i++)
        dst[i] = (uint8_t)(int)v.v[i];
}
static inline void vq_store_nibbles(uint8_t *dst, lq_vf v) {
    for (int i = 0; i < LQ_VL / 2; i++)
        dst[i] = (uint8_t)((int)v.v[2 * i] | ((int)v.v[2 * i + 1] << 4));
}
#undef VQ_MAP
#undef VM_MAP
#endif

/* roundf (half away from zero) for |v| <= 130: trunc(v ± (1/2 - 2^-25)). The
 * sum is exact unless |v| < 1/2, where it rounds to at most 1 - 2^-24 or, for
 * |v| = 1/2 - 2^-25 and above, to 1: roundf's answer in both cases (checked
 * for every float of magnitude up to 130). Q8_0's x·(1/d) stays below 127.01. */
static inline lq_vf vq_roundf_small(lq_vf v) {
#if defined(LQ_SIMD_AVX512)
    const __m512i h = _mm512_set1_epi32(0x3EFFFFFF); /* 0.49999997f */
    const lq_vf   a = _mm512_castsi512_ps(
        _mm512_ternarylogic_epi32(_mm512_castps_si512(v), _mm512_set1_epi32((int)0x80000000u), h, 0xEA));
#elif defined(LQ_SIMD_AVX2)
    const lq_vf a = _mm256_or_ps(_mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u))),
                                 _mm256_castsi256_ps(_mm256_set1_epi32(0x3EFFFFFF)));
#else
    lq_vf a;
    for (int i = 0; i < LQ_VL; i++)
        a.v[i] = copysignf(0.49999997f, v.v[i]);
#endif
    return vq_trunc(vf_add(v, a));
}

/* the smallest lane, exactly (the negated largest of the negations) */
static inline float vq_hmin(lq_vf v) { return -vf_hmax(vf_sub(vf_zero(), v)); }

/* lane b of the result = the largest lane of m[b], b < LQ_VL (exact) */
static inline lq_vf vq_hmax_lanes(const lq_vf *m) {
#if defined(LQ_SIMD_AVX512)
    /* a transposing max tree on 128-bit chunks, then on lanes; the last
     * level leaves block j + 4t in lane 4j + t, put back by one permute */
    lq_vf a[8], b[4], c[2];
    for (int k = 0; k < 8; k++)
        a[k] = _mm512_max_ps(_mm512_shuffle_f32x4(m[2 * k], m[2 * k + 1], 0x44),
                             _mm512_shuffle_f32x4(m[2 * k], m[2 * k + 1], 0xEE));
    for (int k = 0; k < 4; k++)
        b[k] = _mm512_max_ps(_mm512_shuffle_f32x4(a[2 * k], a[2 * k + 1], 0x88),
                             _mm512_shuffle_f32x4(a[2 * k], a[2 * k + 1], 0xDD));
    for (int k = 0; k < 2; k++)
        c[k] = _mm512_max_ps(_mm512_shuffle_ps(b[2 * k], b[2 * k + 1], 0x44),
                             _mm512_shuffle_ps(b[2 * k], b[2 * k + 1], 0xEE));
    const lq_vf r = _mm512_max_ps(_mm512_shuffle_ps(c[0], c[1], 0x88), _mm512_shuffle_ps(c[0], c[1], 0xDD));
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), r);
#else
    float t[LQ_VL];
    for (int k = 0; k < LQ_VL; k++)
        t[k] = vf_hmax(m[k]);
    return vf_load(t);
#endif
}

/* LQ_VL values to f16 bits (RNE, as to_f16) */
static inline void vq_to_f16(uint16_t *h, lq_vf v) {
#if defined(LQ_SIMD_AVX512)
    _mm256_storeu_si256((__m256i *)h, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#elif defined(LQ_SIMD_AVX2)
    _mm_storeu_si128((__m128i *)h, _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#else
    float t[LQ_VL];
    vf_store(t, v);
    for (int i = 0; i < LQ_VL; i++)
        h[i] = lq_f32_to_f16(t[i]);
#endif
}

/* ==== scalar pieces shared with the reference (same expressions) ==== */

/* f32 <-> f16 bits: F16C where the build has it (the same RNE, Inf on
 * overflow and subnormals as lq_f32_to_f16), else the library's */
static inline uint16_t to_f16(float f) {
#if defined(__F16C__)
    return (uint16_t)_cvtss_sh(f, 0);
#else
    return lq_f32_to_f16(f);
#endif
}
static inline float from_f16(uint16_t h) {
#if defined(__F16C__)
    return _cvtsh_ss(h);
#else
    return lq_f16_to_f32(h);
#endif
}

static inline void put_le16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline float half_at(const uint8_t *p) { return from_f16((uint16_t)(p[0] | (p[1] << 8))); }

static inline int nearest_i(float f) {
    f = f > -4194303.f ? f : -4194303.f;
    f = f < 4194303.f ? f : 4194303.f;
    return (int)rintf(f);
}
static inline int clamp_i(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

static float round_scale(float s, lq_dtype dt) {
    if (dt == LQ_DTYPE_F16) {
        uint16_t h = to_f16(s);
        if (h == 0) h = 0x0001u;
        if (h >= 0x7C00u) h = 0x7BFFu;
        return from_f16(h);
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

/* inv_d() of quantize_ref.c on lanes: 1/d, 0 for d = 0, kept finite */
static inline lq_vf vq_inv_d(lq_vf d) {
    const lq_vf id = vq_sel(vm_eq(d, vf_zero()), vf_zero(), vf_div(vf_set1(1.0f), d));
    return vf_max(vq_min(id, vf_set1(FLT_MAX)), vf_set1(-FLT_MAX));
}

/* round_scale() on lanes (s >= 0 or +Inf) */
static inline lq_vf vq_round_scale(lq_vf s, lq_dtype dt) {
    float    t[LQ_VL];
    uint16_t h[LQ_VL];
    if (dt == LQ_DTYPE_F16) {
#if defined(LQ_SIMD_AVX512)
        __m256i b = _mm512_cvtps_ph(s, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        b         = _mm256_min_epu16(_mm256_max_epu16(b, _mm256_set1_epi16(1)), _mm256_set1_epi16(0x7BFF));
        return _mm512_cvtph_ps(b);
#elif defined(LQ_SIMD_AVX2)
        __m128i b = _mm256_cvtps_ph(s, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        b         = _mm_min_epu16(_mm_max_epu16(b, _mm_set1_epi16(1)), _mm_set1_epi16(0x7BFF));
        return _mm256_cvtph_ps(b);
#endif
        vq_to_f16(h, s);
        for (int i = 0; i < LQ_VL; i++) {
            const uint16_t c = h[i] == 0 ? 0x0001u : h[i] >= 0x7C00u ? 0x7BFFu : h[i];
            t[i]             = from_f16(c);
        }
        return vf_load(t);
    }
    if (dt == LQ_DTYPE_BF16) {
        vf_store(t, s);
        for (int i = 0; i < LQ_VL; i++)
            t[i] = round_scale(t[i], dt);
        return vf_load(t);
    }
    const lq_vf r = vq_sel(vm_eq(s, vf_zero()), vf_set1(FLT_TRUE_MIN), s);
    return vq_min(r, vf_set1(FLT_MAX));
}

#define N_CLIP 21
static inline float clip_ratio(int i) { return (float)(100 - i) / 100.0f; }

/* ==== source rows ==== */

#define PREFETCH_AHEAD 4096 /* bytes: a page ahead, which the hardware prefetchers do not cross */
#if defined(__GNUC__) || defined(__clang__)
#define QPREFETCH(p) __builtin_prefetch((p), 0, 3)
#else
#define QPREFETCH(p) ((void)(p))
#endif

/* elements [off, off + cols) of the source as f32: the source itself (F32,
 * aligned) or the converted copy in buf. *bad = the first of them holding
 * Inf/NaN (relative to off), or -1. */
static const float *load_span(lq_dtype st, const void *src, int64_t off, int64_t cols, float *buf, int64_t *bad) {
    const float *x = buf;
    lq_vf         a0 = vf_zero(), a1 = vf_zero(); /* v - v is NaN exactly for Inf and NaN */
    int64_t       k  = 0;
    if (st == LQ_DTYPE_F32 && ((uintptr_t)src & 3u) == 0) {
        x = (const float *)src + off;
        for (; k + 2 * LQ_VL <= cols; k += 2 * LQ_VL) {
            const lq_vf v = vf_load(x + k), u = vf_load(x + k + LQ_VL);
            a0            = vf_add(a0, vf_sub(v, v));
            a1            = vf_add(a1, vf_sub(u, u));
        }
        for (; k < cols; k++)
            if (!(x[k] - x[k] == 0.f)) a0 = vf_set1(NAN);
    } else {
        /* one loop per dtype; the source is read once, a few cache lines ahead */
#define LQ_LOAD_LOOP(LOAD, ES)                                                                                         \
    for (; k + 2 * LQ_VL <= cols; k += 2 * LQ_VL) {                                                                    \
        QPREFETCH((const uint8_t *)src + (off + k) * (ES) + PREFETCH_AHEAD);                                        \
        const lq_vf v = LOAD(off + k), u = LOAD(off + k + LQ_VL);                                                       \
        vf_store(buf + k, v);                                                                                          \
        vf_store(buf + k + LQ_VL, u);                                                                                  \
        a0 = vf_add(a0, vf_sub(v, v));                                                                                 \
        a1 = vf_add(a1, vf_sub(u, u));                                                                                 \
    }
#define LQ_LOAD_F16(i) vf_load_f16((const uint16_t *)src + (i))
#define LQ_LOAD_BF16(i) vf_load_bf16((const uint16_t *)src + (i))
#define LQ_LOAD_F32(i) lq__load_w(LQ_DTYPE_F32, src, (i))
        if (st == LQ_DTYPE_F16) {
            LQ_LOAD_LOOP(LQ_LOAD_F16, 2)
        } else if (st == LQ_DTYPE_BF16) {
            LQ_LOAD_LOOP(LQ_LOAD_BF16, 2)
        } else {
            LQ_LOAD_LOOP(LQ_LOAD_F32, 4)
        }
#undef LQ_LOAD_LOOP
#undef LQ_LOAD_F16
#undef LQ_LOAD_BF16
#undef LQ_LOAD_F32
        for (; k < cols; k += LQ_VL) {
            const int   n = (int)LQ_MIN(LQ_VL, cols - k);
            const lq_vf v = lq__load_part_w(st, src, off + k, n);
            vf_store_part(buf + k, v, n);
            a0 = vf_add(a0, vf_sub(v, v));
        }
    }
    *bad = -1;
    if (!(vf_hsum(vf_add(a0, a1)) == 0.f))
        for (int64_t j = 0; j < cols; j++)
            if (!(x[j] - x[j] == 0.f)) {
                *bad = j;
                break;
            }
    return x;
}

static inline const float *load_row(lq_dtype st, const void *src, int64_t r, int64_t cols, float *buf, int64_t *bad) {
    return load_span(st, src, r * cols, cols, buf, bad);
}

/* ==== Q8_0, Q4_0, Q5_0 ==== */

#define BV (32 / LQ_VL) /* vectors per 32-element block */

/* |x| maxima of LQ_VL consecutive 32-element blocks, lane k = block k */
static inline lq_vf blocks_amax(const float *x) {
    lq_vf m[LQ_VL];
    for (int k = 0; k < LQ_VL; k++) {
        lq_vf a = vq_abs(vf_load(x + 32 * k));
        for (int i = 1; i < BV; i++)
            a = vf_max(a, vq_abs(vf_load(x + 32 * k + i * LQ_VL)));
        m[k] = a;
    }
    return vq_hmax_lanes(m);
}

/* Q8_0: d = amax/127, q = roundf(x·(1/d)) */
static void q8_0_blocks(const float *x, int nblk, const float *am, uint8_t *y) {
    float    id[LQ_VL];
    uint16_t h[LQ_VL];
    const lq_vf d = vf_div(vf_load(am), vf_set1(127.f));
    vf_store(id, vq_inv_d(d));
    vq_to_f16(h, d);
    for (int k = 0; k < nblk; k++, x += 32, y += 34) {
        const lq_vf v = vf_set1(id[k]);
        put_le16(y, h[k]);
        for (int i = 0; i < BV; i++)
            vq_store_bytes(y + 2 + i * LQ_VL, vq_roundf_small(vf_mul(vf_load(x + i * LQ_VL), v)));
    }
}

static void q8_0_row(const float *x, int64_t nb, uint8_t *y) {
    int64_t b = 0;
    for (; b + LQ_VL <= nb; b += LQ_VL) {
        float am[LQ_VL];
        vf_store(am, blocks_amax(x + 32 * b));
        q8_0_blocks(x + 32 * b, LQ_VL, am, y + 34 * b);
    }
    if (b < nb) {
        float am[LQ_VL] = {0};
        for (int64_t k = b; k < nb; k++) {
            lq_vf a = vf_zero();
            for (int i = 0; i < BV; i++)
                a = vf_max(a, vq_abs(vf_load(x + 32 * k + i * LQ_VL)));
            am[k - b] = vf_hmax(a);
        }
        q8_0_blocks(x + 32 * b, (int)(nb - b), am, y + 34 * b);
    }
}

/* the first value of largest magnitude amax in a block, 0 when amax is 0 (as ggml) */
static inline float block_signed_max(const float *x, float amax) {
    if (amax == 0.f) return 0.f;
    const lq_vf a    = vf_set1(amax);
    uint32_t    bits = 0; /* bit j: |x_j| == amax; one is set */
    for (int i = 0; i < BV; i++)
        bits |= (uint32_t)vm_bits(vm_eq(vq_abs(vf_load(x + i * LQ_VL)), a)) << (i * LQ_VL);
    return x[__builtin_ctz(bits)];
}

/* codes min(top, trunc(max(x·id + half, 0))) */
static inline lq_vf trunc_codes(lq_vf v, lq_vf id, lq_vf half, lq_vf top) {
    const lq_vf t = vf_max(vf_add(vf_mul(v, id), half), vf_zero());
    return vq_trunc(vq_min(t, top));
}

/* Q4_0 (nq = 8, 18-byte blocks) and Q5_0 (nq = 16, 22 bytes): d = max/-nq,
 * q = min(2nq-1, trunc(x·(1/d) + nq + 0.5)) */
static LQ_ALWAYS_INLINE void q4q5_blocks(const float *x, int nblk, const float *am, int nq, uint8_t *y) {
    float    sm[LQ_VL] = {0}, id[LQ_VL];
    uint16_t h[LQ_VL];
    for (int k = 0; k < nblk; k++)
        sm[k] = block_signed_max(x + 32 * k, am[k]);
    const lq_vf d = vf_div(vf_load(sm), vf_set1(-(float)nq));
    vf_store(id, vq_inv_d(d));
    vq_to_f16(h, d);
    const lq_vf half = vf_set1((float)nq + 0.5f), top = vf_set1((float)(2 * nq - 1)), v16 = vf_set1(16.f);
    const int   bb   = nq == 8 ? 18 : 22;
    for (int k = 0; k < nblk; k++, x += 32, y += bb) {
        const lq_vf v = vf_set1(id[k]);
        put_le16(y, h[k]);
        lq_vf q[BV];
        for (int i = 0; i < BV; i++)
            q[i] = trunc_codes(vf_load(x + i * LQ_VL), v, half, top);
        uint8_t *qs = y + 2;
        if (nq == 16) { /* bit 4 of each code into qh, the low nibbles stay */
            uint32_t qh = 0;
            for (int i = 0; i < BV; i++) {
                const lq_vm hb = vm_ge(q[i], v16);
                qh |= (uint32_t)vm_bits(hb) << (i * LQ_VL);
                q[i] = vq_sel(hb, vf_sub(q[i], v16), q[i]);
            }
            for (int j = 0; j < 4; j++)
                y[2 + j] = (uint8_t)(qh >> (8 * j));
            qs = y + 6;
        }
        /* byte j = q_j | q_{j+16} << 4, as the exact float q_j + 16·q_{j+16} */
        for (int i = 0; i < BV / 2; i++)
            vq_store_bytes(qs + i * LQ_VL, vf_add(q[i], vf_mul(q[i + BV / 2], v16)));
    }
}

static LQ_ALWAYS_INLINE void q4q5_row_(const float *x, int64_t nb, int nq, uint8_t *y) {
    const int64_t bb = nq == 8 ? 18 : 22;
    int64_t       b  = 0;
    for (; b + LQ_VL <= nb; b += LQ_VL) {
        float am[LQ_VL];
        vf_store(am, blocks_amax(x + 32 * b));
        q4q5_blocks(x + 32 * b, LQ_VL, am, nq, y + bb * b);
    }
    if (b < nb) {
        float am[LQ_VL] = {0};
        for (int64_t k = b; k < nb; k++) {
            lq_vf a = vf_zero();
            for (int i = 0; i < BV; i++)
                a = vf_max(a, vq_abs(vf_load(x + 32 * k + i * LQ_VL)));
            am[k - b] = vf_hmax(a);
        }
        q4q5_blocks(x + 32 * b, (int)(nb - b), am, nq, y + bb * b);
    }
}

/* Q4_0 and Q5_0 compiled apart: nq is a constant in each */
static void q4_0_row(const float *x, int64_t nb, uint8_t *y) { q4q5_row_(x, nb, 8, y); }
static void q5_0_row(const float *x, int64_t nb, uint8_t *y) { q4q5_row_(x, nb, 16, y); }
static void q4q5_row(const float *x, int64_t nb, int nq, uint8_t *y) {
    if (nq == 8)
        q4_0_row(x, nb, y);
    else
        q5_0_row(x, nb, y);
}

/* ==== INT, without the clip search ==== */

typedef struct {
    int      bits, qmax;
    bool     sym;
    lq_dtype sd;
} int_spec;

/* the scale and zero point of LQ_VL groups (lanes) from their statistics;
 * int_params() of quantize_ref.c with r = 1, lane by lane */
static inline void int_params_v(const int_spec *sp, lq_vf am, lq_vf lo, lq_vf hi, lq_vf *s_out, lq_vf *z_out) {
    const lq_vf zero = vf_zero(), one = vf_set1(1.f);
    if (sp->sym) {
        const lq_vf s = vq_round_scale(vf_div(am, vf_set1((float)sp->qmax * 0.5f)), sp->sd);
        *s_out        = vq_sel(vm_eq(am, zero), one, s);
        *z_out        = vf_set1((float)(1 << (sp->bits - 1)));
        return;
    }
    const lq_vm flat = vm_eq(lo, hi);
    const lq_vf s    = vq_round_scale(vf_div(vf_sub(hi, lo), vf_set1((float)sp->qmax)), sp->sd);
    const lq_vf z    = vq_min(vf_max(vq_rne(vf_div(vf_sub(zero, lo), s)), zero), vf_set1((float)sp->qmax));
    *s_out           = vq_sel(flat, one, s);
    *z_out           = vq_sel(flat, zero, z);
}

/* the codes of n elements (n <= LQ_VL) with scale s and zero point z */
static inline void int_codes(const int_spec *sp, const float *x, int64_t k, int n, lq_vf vs, lq_vf vz, uint8_t *row,
                             uint8_t *codes) {
    const lq_vf v = n == LQ_VL ? vf_load(x + k) : vf_load_part(x + k, n);
    lq_vf       c = vf_add(vq_rne(vf_div(v, vs)), vz);
    c             = vq_min(vf_max(c, vf_zero()), vf_set1((float)sp->qmax));
    if (n == LQ_VL) {
        if (sp->bits == 8)
            vq_store_bytes(row + k, c);
        else if (sp->bits == 4)
            vq_store_nibbles(row + k / 2, c); /* k is even */
        else
            vq_store_bytes(codes + k, c);
        return;
    }
    uint8_t t[LQ_VL]; /* the last elements of a per-channel row */
    vq_store_bytes(t, c);
    if (sp->bits == 8) {
        memcpy(row + k, t, (size_t)n);
    } else if (sp->bits == 4) {
        for (int j = 0; j < n; j += 2)
            row[(k + j) / 2] = (uint8_t)(t[j] | (j + 1 < n ? t[j + 1] << 4 : 0));
    } else {
        memcpy(codes + k, t, (size_t)n);
    }
}

/* One row: scales/zeros per group, and the codes, written straight into the
 * row for 8 and 4 bits, else into `codes` (cols bytes) for pack_codes().
 * Groups of G < cols go LQ_VL at a time, their statistics and scales as
 * lanes; a per-channel row is one group. */
static void int_row(const int_spec *sp, const float *x, int64_t cols, int64_t G, uint8_t *row, uint8_t *codes,
                    float *scales, uint8_t *zeros, const uint8_t *next, size_t next_bytes) {
    const lq_vf v0 = vf_zero();
    if (G == cols) {
        lq_vf   lo = v0, hi = v0, am = v0;
        int64_t k  = 0;
        for (; k + LQ_VL <= G; k += LQ_VL) {
            const lq_vf v = vf_load(x + k);
            lo            = vq_min(v, lo);
            hi            = vf_max(v, hi);
            am            = vf_max(vq_abs(v), am);
        }
        if (k < G) { /* zeros above the tail change no extremum: lo <= 0 <= hi */
            const lq_vf v = vf_load_part(x + k, (int)(G - k));
            lo            = vq_min(v, lo);
            hi            = vf_max(v, hi);
            am            = vf_max(vq_abs(v), am);
        }
        lq_vf vs, vz;
        int_params_v(sp, vf_set1(vf_hmax(am)), vf_set1(vq_hmin(lo)), vf_set1(vf_hmax(hi)), &vs, &vz);
        float s1[LQ_VL], z1[LQ_VL];
        vf_store(s1, vs);
        vf_store(z1, vz);
        scales[0] = s1[0];
        if (zeros) zeros[0] = (uint8_t)z1[0];
        /* the codes need the row's statistics, so the next row's source
         * (next_bytes at next, or none) is requested while they are written */
        const size_t step = next ? (next_bytes + (size_t)(G / LQ_VL)) / (size_t)(G / LQ_VL + 1) : 0;
        size_t       pf   = 0;
        for (k = 0; k < G; k += LQ_VL) {
            if (next && pf < next_bytes) {
                for (size_t e = pf + step; pf < e && pf < next_bytes; pf += 64)
                    QPREFETCH(next + pf);
            }
            int_codes(sp, x, k, (int)LQ_MIN(LQ_VL, G - k), vs, vz, row, codes);
        }
        return;
    }
    const int64_t ng = cols / G;
    for (int64_t g0 = 0; g0 < ng; g0 += LQ_VL) {
        const int    nb = (int)LQ_MIN(LQ_VL, ng - g0);
        const float *xb = x + g0 * G;
        lq_vf        m[LQ_VL], n[LQ_VL];
        for (int b = 0; b < LQ_VL; b++) {
            lq_vf a = v0, l = v0, h = v0;
            if (b < nb)
                for (int64_t k = 0; k < G; k += LQ_VL) {
                    const lq_vf v = vf_load(xb + b * G + k);
                    a             = vf_max(vq_abs(v), a);
                    l             = vq_min(v, l);
                    h             = vf_max(v, h);
                }
            m[b] = sp->sym ? a : h;
            n[b] = vf_sub(v0, l);
        }
        const lq_vf mx = vq_hmax_lanes(m);
        lq_vf       vs, vz;
        if (sp->sym)
            int_params_v(sp, mx, v0, v0, &vs, &vz);
        else
            int_params_v(sp, v0, vf_sub(v0, vq_hmax_lanes(n)), mx, &vs, &vz);
        float s1[LQ_VL], z1[LQ_VL];
        vf_store(s1, vs);
        vf_store(z1, vz);
        for (int b = 0; b < nb; b++) {
            scales[g0 + b] = s1[b];
            if (zeros) zeros[g0 + b] = (uint8_t)z1[b];
            const lq_vf bs = vf_set1(s1[b]), bz = vf_set1(z1[b]);
            for (int64_t k = 0; k < G; k += LQ_VL)
                int_codes(sp, x, (g0 + b) * G + k, LQ_VL, bs, bz, row, codes);
        }
    }
}

/* ==== INT with the clip search ==== */

/* the error sum of the clip search in f64: term k into partial sum k mod 8,
 * the partials added as ((p0+p1)+(p2+p3))+((p4+p5)+(p6+p7)) (quantize_ref.c) */
static inline double err_sum8(const double *p) {
    return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
}

/* 8 partial sums; err_add takes LQ_VL consecutive terms starting at a multiple of 8 */
#if defined(LQ_SIMD_AVX512)
typedef struct {
    __m512d p;
} err_acc;
static inline void err_init(err_acc *a) { a->p = _mm512_setzero_pd(); }
static inline __m512d err_term(__m512d x, __m512d w, const float *c8) {
    const __m512d d = _mm512_sub_pd(x, w), t = _mm512_mul_pd(d, d);
    return c8 ? _mm512_mul_pd(_mm512_cvtps_pd(_mm256_loadu_ps(c8)), t) : t;
}
static inline void err_add(err_acc *a, lq_vf x, lq_vf w, const float *c) {
    const __m256 xh = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1));
    const __m256 wh = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(w), 1));
    a->p = _mm512_add_pd(a->p, err_term(_mm512_cvtps_pd(_mm512_castps512_ps256(x)),
                                        _mm512_cvtps_pd(_mm512_castps512_ps256(w)), c));
    a->p = _mm512_add_pd(a->p, err_term(_mm512_cvtps_pd(xh), _mm512_cvtps_pd(wh), c ? c + 8 : NULL));
}
static inline double err_total(const err_acc *a) {
    double p[8];
    _mm512_storeu_pd(p, a->p);
    return err_sum8(p);
}
#elif defined(LQ_SIMD_AVX2)
typedef struct {
    __m256d lo, hi; /* partials 0-3, 4-7 */
} err_acc;
static inline void err_init(err_acc *a) { a->lo = a->hi = _mm256_setzero_pd(); }
static inline __m256d err_term(__m256d x, __m256d w, const float *c4) {
    const __m256d d = _mm256_sub_pd(x, w), t = _mm256_mul_pd(d, d);
    return c4 ? _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(c4)), t) : t;
}
static inline void err_add(err_acc *a, lq_vf x, lq_vf w, const float *c) {
    a->lo = _mm256_add_pd(a->lo, err_term(_mm256_cvtps_pd(_mm256_castps256_ps128(x)),
                                          _mm256_cvtps_pd(_mm256_castps256_ps128(w)), c));
    a->hi = _mm256_add_pd(a->hi, err_term(_mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)),
                                          _mm256_cvtps_pd(_mm256_extractf128_ps(w, 1)), c ? c + 4 : NULL));
}
static inline double err_total(const err_acc *a) {
    double p[8];
    _mm256_storeu_pd(p, a->lo);
    _mm256_storeu_pd(p + 4, a->hi);
    return err_sum8(p);
}
#else
typedef struct {
    double p[8];
} err_acc;
static inline void err_init(err_acc *a) { memset(a->p, 0, sizeof a->p); }
static inline void err_add(err_acc *a, lq_vf x, lq_vf w, const float *c) {
    for (int i = 0; i < LQ_VL; i++) {
        const double d = (double)x.v[i] - (double)w.v[i];
        a->p[i & 7] += (c ? (double)c[i] : 1.0) * (d * d);
    }
}
static inline double err_total(const err_acc *a) { return err_sum8(a->p); }
#endif

/* int_params() of quantize_ref.c: the scale and zero point of a group whose range is shrunk by r */
static void int_params_r(const int_spec *sp, float lo, float hi, float amax, float r, float *s_out, int *z_out) {
    if (sp->sym) {
        const float hq = (float)sp->qmax * 0.5f;
        *s_out         = amax == 0.f ? 1.f : round_scale((amax * r) / hq, sp->sd);
        *z_out         = 1 << (sp->bits - 1);
        return;
    }
    if (lo == hi) {
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

/* the clip-search error of one group (n elements at x, weights c or NULL) */
static double int_group_err_v(const int_spec *sp, const float *x, const float *c, int64_t n, float s, int z) {
    const lq_vf vs = vf_set1(s), vz = vf_set1((float)z), v0 = vf_zero(), vq = vf_set1((float)sp->qmax);
    float       ct[LQ_VL];
    err_acc     a;
    err_init(&a);
    for (int64_t k = 0; k < n; k += LQ_VL) {
        const int   m = (int)LQ_MIN(LQ_VL, n - k);
        const lq_vf v = m == LQ_VL ? vf_load(x + k) : vf_load_part(x + k, m);
        lq_vf       u = vf_add(vq_rne(vf_div(v, vs)), vz);
        u             = vq_min(vf_max(u, v0), vq);
        const lq_vf w = vf_mul(vs, vf_sub(u, vz)); /* s·(u - z): u - z is exact */
        const float *cp = c;
        if (c && m < LQ_VL) { /* zero terms above the tail: x = w = 0 adds +0 */
            memset(ct, 0, sizeof ct);
            memcpy(ct, c + k, sizeof(float) * (size_t)m);
            cp = ct;
        } else if (c) {
            cp = c + k;
        }
        err_add(&a, v, w, cp);
    }
    return err_total(&a);
}

/* one row of an INT type with the clip search (int_row() of quantize_ref.c) */
static void int_row_clip(const int_spec *sp, const float *x, int64_t cols, int64_t G, const float *cw, uint8_t *row,
                         uint8_t *codes, float *scales, uint8_t *zeros) {
    const lq_vf v0 = vf_zero();
    for (int64_t g0 = 0, gi = 0; g0 < cols; g0 += G, gi++) {
        const float *xg = x + g0;
        const float *cg = cw ? cw + g0 : NULL;
        lq_vf        lo = v0, hi = v0, am = v0;
        for (int64_t k = 0; k < G; k += LQ_VL) {
            const int   m = (int)LQ_MIN(LQ_VL, G - k);
            const lq_vf v = m == LQ_VL ? vf_load(xg + k) : vf_load_part(xg + k, m);
            lo            = vq_min(v, lo);
            hi            = vf_max(v, hi);
            am            = vf_max(vq_abs(v), am);
        }
        const float l = vq_hmin(lo), h = vf_hmax(hi), a = vf_hmax(am);
        float       s;
        int         z;
        int_params_r(sp, l, h, a, 1.f, &s, &z);
        double best = int_group_err_v(sp, xg, cg, G, s, z);
        for (int i = 1; i < N_CLIP; i++) {
            float si;
            int   zi;
            int_params_r(sp, l, h, a, clip_ratio(i), &si, &zi);
            const double e = int_group_err_v(sp, xg, cg, G, si, zi);
            if (e < best) {
                best = e;
                s    = si;
                z    = zi;
            }
        }
        scales[gi] = s;
        if (zeros) zeros[gi] = (uint8_t)z;
        const lq_vf vs = vf_set1(s), vz = vf_set1((float)z);
        for (int64_t k = 0; k < G; k += LQ_VL)
            int_codes(sp, x, g0 + k, (int)LQ_MIN(LQ_VL, G - k), vs, vz, row, codes);
    }
}

/* the dense LSB-first bit stream of a row of 2- or 3-bit codes, zero-padded to row_bytes */
static void pack_codes(const uint8_t *c, int64_t cols, int bits, uint8_t *row, size_t row_bytes) {
    size_t o = 0;
    if (bits == 2) {
        int64_t k = 0;
        for (; k + 4 <= cols; k += 4)
            row[o++] = (uint8_t)(c[k] | (c[k + 1] << 2) | (c[k + 2] << 4) | (c[k + 3] << 6));
        if (k < cols) {
            unsigned b = 0;
            for (int j = 0; k + j < cols; j++)
                b |= (unsigned)c[k + j] << (2 * j);
            row[o++] = (uint8_t)b;
        }
    } else {
        uint64_t acc = 0;
        int      nb  = 0;
        for (int64_t k = 0; k < cols; k++) {
            acc |= (uint64_t)c[k] << nb;
            nb += bits;
            while (nb >= 8) {
                row[o++] = (uint8_t)acc;
                acc >>= 8;
                nb -= 8;
            }
        }
        if (nb > 0) row[o++] = (uint8_t)acc;
    }
    memset(row + o, 0, row_bytes - o);
}

/* ==== Q4_K: the make_qkx2 search with one sub-block per lane ==== */

static inline void q4_k_scale_min(int j, const uint8_t *s12, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = s12[j] & 63;
        *m  = s12[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s12[j + 4] & 0xF) | ((s12[j - 4] >> 6) << 4));
        *m  = (uint8_t)((s12[j + 4] >> 4) | ((s12[j] >> 6) << 4));
    }
}

/* Sub-blocks searched together: four groups of LQ_VL lanes, one sub-block
 * per lane. Every lane walks its own candidates in order. An element loop
 * ("pass") does one group's sums at its next grid point together with
 * another group's error at its current one; the groups are staggered (pass t:
 * sums of group t mod 4, error of group (t - 2) mod 4), so that between two
 * passes of a group another pass runs while that group's divisions and
 * updates complete, and the two halves of a pass are independent chains. */
#define QG 4
#define QL (QG * LQ_VL)

typedef struct {
    float scale[QL], neg_min[QL];
    float iscale[QL], origin[QL]; /* the winning grid point: L = clamp(rne(iscale·(x - origin))) */
    bool  flat[QL];               /* max == min: L = 0                                           */
} qkx_lanes;

/* The L of one grid point, as the reference: clamp(nearest(isc·(x - lo)), 0, 15).
 * CL_FULL clamps both ends, which is exact for every input. When every lane
 * has a positive finite isc (range above 1e-37), the clamp at 0 may as well
 * act on x - lo (for x < lo both give 0), and at grid points c <= 15 the
 * clamp at 15 cannot act (t <= c·(1+u)² < 15.5 since x - lo <= max - lo):
 * CL_TOP and CL_NONE. */
enum { CL_FULL, CL_TOP, CL_NONE };

static LQ_ALWAYS_INLINE lq_vf qk_code(int mode, lq_vf isc, lq_vf x, lq_vf lo) {
    if (mode == CL_FULL) {
        const lq_vf t = vq_rne(vf_mul(isc, vf_sub(x, lo)));
        return vq_min(vf_max(t, vf_zero()), vf_set1(15.f));
    }
    const lq_vf t = vq_rne(vf_mul(isc, vf_max(vf_sub(x, lo), vf_zero())));
    return mode == CL_TOP ? vq_min(t, vf_set1(15.f)) : t;
}

/* the state of one group of LQ_VL sub-blocks */
typedef struct {
    lq_vf x[32], w[32], l[32];
    lq_vf lo, hi, sum_w, sum_x, rng, scale, best, b_isc, b_org; /* as fit_affine, lane by lane */
    lq_vf isc, sl, sl2, sxl, ts, tm, mad;                       /* the candidate in flight    */
    lq_vm flat, valid;
    bool  fast, any;
} qk_group;

/* One element loop over both groups: the sums of `s` at its next grid point
 * (sl = Σ w·l, sl2 = Σ (w·l)·l, sxl = Σ (w·l)·x, and its codes l) when
 * smode >= 0, and the error Σ w·((ts·l + tm) - x)² of `m`'s candidate when
 * do_mad. */
static LQ_ALWAYS_INLINE void qk_pass(int smode, bool do_mad, qk_group *S, qk_group *M) {
    lq_vf sl = vf_zero(), sl2 = vf_zero(), sxl = vf_zero(), mad = vf_zero();
    for (int i = 0; i < 32; i++) {
        if (smode >= 0) {
            const lq_vf l  = qk_code(smode, S->isc, S->x[i], S->lo);
            const lq_vf wl = vf_mul(S->w[i], l);
            S->l[i]        = l;
            sl             = vf_add(sl, wl);
            sl2            = vf_add(sl2, vf_mul(wl, l));
            sxl            = vf_add(sxl, vf_mul(wl, S->x[i]));
        }
        if (do_mad) {
            const lq_vf diff = vf_sub(vf_add(vf_mul(M->ts, M->l[i]), M->tm), M->x[i]);
            mad              = vf_add(mad, vf_mul(M->w[i], vf_mul(diff, diff)));
        }
    }
    if (smode >= 0) {
        S->sl  = sl;
        S->sl2 = sl2;
        S->sxl = sxl;
    }
    if (do_mad) M->mad = mad;
}

static void qk_pass_any(int smode, bool do_mad, qk_group *S, qk_group *M) {
    if (do_mad) {
        if (smode == CL_NONE)
            qk_pass(CL_NONE, true, S, M);
        else if (smode == CL_TOP)
            qk_pass(CL_TOP, true, S, M);
        else if (smode == CL_FULL)
            qk_pass(CL_FULL, true, S, M);
        else
            qk_pass(-1, true, S, M);
    } else {
        if (smode == CL_NONE)
            qk_pass(CL_NONE, false, S, M);
        else if (smode == CL_TOP)
            qk_pass(CL_TOP, false, S, M);
        else
            qk_pass(CL_FULL, false, S, M);
    }
}

static inline float qk_grid(int is) { return -1.f + 0.1f * (float)is + 15.f; }

/* the clamp mode of g's sums at grid point c, after setting its isc */
static inline int qk_start(qk_group *g, float c) {
    g->isc = vf_div(vf_set1(c), g->rng);
    return !g->fast ? CL_FULL : c > 15.f ? CL_TOP : CL_NONE;
}

/* after the sums: the least-squares scale and min of the candidate */
static inline void qk_fit(qk_group *g) {
    const lq_vf zero = vf_zero();
    const lq_vf D    = vf_sub(vf_mul(g->sum_w, g->sl2), vf_mul(g->sl, g->sl));
    g->valid         = vm_andnot(g->flat, vm_gt(D, zero));
    g->any           = vm_bits(g->valid) != 0;
    lq_vf ts         = vf_div(vf_sub(vf_mul(g->sum_w, g->sxl), vf_mul(g->sum_x, g->sl)), D);
    lq_vf tm         = vf_div(vf_sub(vf_mul(g->sl2, g->sum_x), vf_mul(g->sl, g->sxl)), D);
    const lq_vm pos  = vm_gt(tm, zero);
    g->tm            = vq_sel(pos, zero, tm);
    g->ts            = vq_sel(pos, vf_div(g->sxl, g->sl2), ts);
}

static inline void qk_set_range(qk_group *g) {
    g->rng  = vf_sub(g->hi, g->lo);
    g->fast = (vm_bits(vm_gt(g->rng, vf_set1(1e-37f))) | vm_bits(g->flat)) == (1u << LQ_VL) - 1u;
}

/* after the error pass: keep the better candidates */
static inline void qk_update(qk_group *g) {
    if (!g->any) return;
    const lq_vm upd = vm_and(g->valid, vm_lt(g->mad, g->best));
    if (!vm_bits(upd)) return;
    g->best  = vq_sel(upd, g->mad, g->best);
    g->scale = vq_sel(upd, g->ts, g->scale);
    g->b_isc = vq_sel(upd, g->isc, g->b_isc);
    g->b_org = vq_sel(upd, g->lo, g->b_org);
    g->lo    = vq_sel(upd, g->tm, g->lo); /* as in ggml, later grid points start from the new min */
    qk_set_range(g);
}

#if defined(LQ_SIMD_AVX512)
/* r[i][j] <- r[j][i] for a 16 x 16 block of floats */
static inline void transpose16(lq_vf *r) {
    lq_vf t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i]     = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i]     = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        t[i]      = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4]  = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
        t[i + 8]  = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (int i = 0; i < 4; i++) {
        r[i]      = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8]  = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
        r[i + 4]  = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xDD);
    }
}
#endif

/* the weights av_x + |x|, the statistics and the plain rounding at 15/(max - min) */
static void qk_init(qk_group *g, const float *const *sb) {
    const lq_vf zero = vf_zero(), v15 = vf_set1(15.f);
    bool contiguous = true;
    for (int ln = 1; ln < LQ_VL; ln++)
        contiguous = contiguous && sb[ln] == sb[0] + 32 * ln;
#if defined(LQ_SIMD_AVX512)
    if (contiguous) {
        for (int h = 0; h < 2; h++) {
            lq_vf r[16];
            for (int ln = 0; ln < 16; ln++)
                r[ln] = vf_load(sb[0] + 32 * ln + 16 * h);
            transpose16(r);
            for (int i = 0; i < 16; i++)
                g->x[16 * h + i] = r[i];
        }
    } else
#endif
    {
        (void)contiguous;
        float tmp[32][LQ_VL];
        for (int ln = 0; ln < LQ_VL; ln++)
            for (int i = 0; i < 32; i++)
                tmp[i][ln] = sb[ln][i];
        for (int i = 0; i < 32; i++)
            g->x[i] = vf_load(tmp[i]);
    }
    lq_vf sx2 = zero;
    for (int i = 0; i < 32; i++)
        sx2 = vf_add(sx2, vf_mul(g->x[i], g->x[i]));
    const lq_vf av_x = vq_sqrt(vf_div(sx2, vf_set1(32.f)));
    for (int i = 0; i < 32; i++)
        g->w[i] = vf_add(av_x, vq_abs(g->x[i]));
    lq_vf l = g->x[0], h = g->x[0], sw = g->w[0];
    lq_vf sx = vf_mul(sw, g->x[0]);
    for (int i = 1; i < 32; i++) {
        l  = vq_min(g->x[i], l);
        h  = vf_max(g->x[i], h);
        sw = vf_add(sw, g->w[i]);
        sx = vf_add(sx, vf_mul(g->w[i], g->x[i]));
    }
    l        = vq_sel(vm_gt(l, zero), zero, l);
    g->lo    = l;
    g->hi    = h;
    g->sum_w = sw;
    g->sum_x = sx;
    g->flat  = vm_eq(h, l);
    g->rng   = vf_sub(h, l);
    const lq_vf is0 = vf_div(v15, g->rng);
    g->scale        = vf_div(vf_set1(1.f), is0);
    lq_vf bm        = zero;
    for (int i = 0; i < 32; i++) {
        const lq_vf c    = qk_code(CL_FULL, is0, g->x[i], l);
        const lq_vf diff = vf_sub(vf_add(vf_mul(g->scale, c), l), g->x[i]);
        bm               = vf_add(bm, vf_mul(g->w[i], vf_mul(diff, diff)));
    }
    g->best  = bm;
    g->b_isc = is0;
    g->b_org = l;
    qk_set_range(g);
}

static void qk_result(const qk_group *g, qkx_lanes *out, int lane0) {
    float          fl[LQ_VL];
    const unsigned fb = vm_bits(g->flat);
    vf_store(out->scale + lane0, vq_sel(g->flat, vf_zero(), g->scale));
    vf_store(fl, g->lo);
    for (int ln = 0; ln < LQ_VL; ln++) {
        out->neg_min[lane0 + ln] = -fl[ln];
        out->flat[lane0 + ln]    = (fb >> ln) & 1u;
    }
    vf_store(out->iscale + lane0, g->b_isc);
    vf_store(out->origin + lane0, g->b_org);
}

/* make_qkx2_quants(32, 15, x, w, L, &min, Laux, -1, 0.1, 20, false) with
 * ggml's Q4_K weights av_x + |x|, for the sub-blocks sb[0 .. n_groups·LQ_VL)
 * at once. Each lane performs the reference's float operations on its own
 * sub-block, in the same order (fit_affine in quantize_ref.c). */
static void q4_k_search(const float *const *sb, int n_groups, qkx_lanes *out) {
    qk_group G[QG];
    for (int g = 0; g < n_groups; g++)
        qk_init(&G[g], sb + g * LQ_VL);
    const int n_grid = 21;
    for (int t = 0; t < QG * n_grid + 2; t++) {
        const int gs = t % QG, ks = t / QG;             /* sums of gs at grid point ks */
        const int gm = (t + QG - 2) % QG, km = (t - 2) / QG; /* error of gm at km    */
        const bool do_s = ks < n_grid && gs < n_groups;
        const bool do_m = t >= 2 && km < n_grid && gm < n_groups && G[gm].any;
        if (!do_s && !do_m) continue;
        qk_group  *S = &G[do_s ? gs : gm], *M = &G[do_m ? gm : gs];
        const int smode = do_s ? qk_start(S, qk_grid(ks)) : -1;
        qk_pass_any(smode, do_m, S, M);
        if (do_s) qk_fit(S);
        if (do_m) qk_update(M);
    }
    for (int g = 0; g < n_groups; g++)
        qk_result(&G[g], out, g * LQ_VL);
}

/* one super-block from the searched scales and mins of its 8 sub-blocks */
static void q4_k_block_fast(const float *x, const qkx_lanes *s, int lane0, uint8_t *blk) {
    float   scales[8], mins[8];
    uint8_t ls[8], lm[8];
    float   max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        scales[j] = s->scale[lane0 + j];
        mins[j]   = s->neg_min[lane0 + j];
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min   = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; j++) {
        const uint8_t a = (uint8_t)nearest_i(inv_scale * scales[j]);
        const uint8_t b = (uint8_t)nearest_i(inv_min * mins[j]);
        ls[j]           = a < 63 ? a : 63;
        lm[j]           = b < 63 ? b : 63;
    }
    put_le16(blk, to_f16(max_scale / 63.f));
    put_le16(blk + 2, to_f16(max_min / 63.f));
    uint8_t *s12 = blk + 4;
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
    const float d = half_at(blk), dmin = half_at(blk + 2);
    float       L[QK_K]; /* the codes, as floats */
    const lq_vf zero = vf_zero(), v15 = vf_set1(15.f);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        q4_k_scale_min(j, s12, &sc, &m);
        const float  dj = d * sc;
        const float *xj = x + 32 * j;
        if (dj == 0) { /* keep the search's codes */
            const int ln = lane0 + j;
            for (int i = 0; i < 32; i++)
                L[32 * j + i] = s->flat[ln] ? 0.f
                                            : (float)clamp_i(nearest_i(s->iscale[ln] * (xj[i] - s->origin[ln])), 0, 15);
            continue;
        }
        const lq_vf vd = vf_set1(dj), vm = vf_set1(dmin * m);
        for (int i = 0; i < 32; i += LQ_VL) {
            const lq_vf q = vf_div(vf_add(vf_load(xj + i), vm), vd);
            vf_store(L + 32 * j + i, vq_min(vf_max(vq_rne(q), zero), v15));
        }
    }
    /* per 64 elements 32 bytes: low nibble e_l, high e_{l+32}, as the exact e_l + 16·e_{l+32} */
    const lq_vf v16 = vf_set1(16.f);
    uint8_t    *q   = blk + 16;
    for (int j = 0; j < QK_K; j += 64, q += 32)
        for (int l = 0; l < 32; l += LQ_VL)
            vq_store_bytes(q + l, vf_add(vf_load(L + j + l), vf_mul(vf_load(L + j + l + 32), v16)));
}

static void q4_k_row(const float *x, int64_t nb, uint8_t *y) {
    const int spv = QL / 8; /* super-blocks per search */
    for (int64_t b = 0; b < nb; b += spv) {
        const int    nsb      = (int)LQ_MIN(spv, nb - b);
        const int    n_groups = (nsb * 8 + LQ_VL - 1) / LQ_VL;
        const float *sb[QL];
        for (int ln = 0; ln < n_groups * LQ_VL; ln++) {
            int64_t bb = b + ln / 8;
            if (bb >= nb) bb = nb - 1; /* a spare lane repeats the last super-block */
            sb[ln] = x + bb * QK_K + 32 * (ln % 8);
        }
        qkx_lanes s;
        q4_k_search(sb, n_groups, &s);
        for (int k = 0; k < nsb; k++)
            q4_k_block_fast(x + (b + k) * QK_K, &s, 8 * k, y + (size_t)(b + k) * 144);
    }
}

/* ==== Q6_K: the make_qx search with one sub-block per lane ==== */

/* the search's result for LQ_VL sub-blocks of 16 */
typedef struct {
    float scale[LQ_VL], iscale[LQ_VL]; /* L = clamp(nearest(iscale·x), -32, 31) + 32 */
    bool  zero[LQ_VL];                 /* amax < 1e-15: scale 0, L = 0            */
} qx_lanes;

/* the sums of one candidate: sumlx = Σ (w·x)·l, suml2 = Σ (w·l)·l with w = x² */
static LQ_ALWAYS_INLINE void qx_sums(lq_vf isc, const lq_vf *xt, const lq_vf *wt, const lq_vf *wxt, lq_vf *slx,
                                     lq_vf *sl2) {
    const lq_vf lo = vf_set1(-32.f), hi = vf_set1(31.f);
    lq_vf       a = vf_zero(), b = vf_zero();
    for (int i = 0; i < 16; i++) {
        const lq_vf l = vq_min(vf_max(vq_rne(vf_mul(isc, xt[i])), lo), hi);
        a             = vf_add(a, vf_mul(wxt[i], l));
        b             = vf_add(b, vf_mul(vf_mul(wt[i], l), l));
    }
    *slx = a;
    *sl2 = b;
}

/* make_qx_quants(16, 32, x, L, 1, NULL) for the LQ_VL consecutive sub-blocks
 * of 16 at x, lane by lane in the reference's order (fit_symmetric in
 * quantize_ref.c). The candidates do not depend on each other, only the
 * choice among them does, so their sums are computed first, two at a time. */
static void q6_k_search(const float *x, qx_lanes *out) {
    lq_vf xt[16], wt[16], wxt[16];
#if defined(LQ_SIMD_AVX512)
    for (int ln = 0; ln < 16; ln++)
        xt[ln] = vf_load(x + 16 * ln);
    transpose16(xt);
#else
    {
        float tmp[16][LQ_VL];
        for (int ln = 0; ln < LQ_VL; ln++)
            for (int i = 0; i < 16; i++)
                tmp[i][ln] = x[16 * ln + i];
        for (int i = 0; i < 16; i++)
            xt[i] = vf_load(tmp[i]);
    }
#endif
    lq_vf amax = vf_zero(), vmax = vf_zero();
    for (int i = 0; i < 16; i++) {
        const lq_vf a   = vq_abs(xt[i]);
        const lq_vm upd = vm_gt(a, amax);
        amax            = vq_sel(upd, a, amax);
        vmax            = vq_sel(upd, xt[i], vmax);
        wt[i]           = vf_mul(xt[i], xt[i]);
        wxt[i]          = vf_mul(wt[i], xt[i]);
    }
    const lq_vm zero = vm_lt(amax, vf_set1(1e-15f));
    /* candidate 0: -nmax/max; then -(nmax + 0.1·is)/max, is = -9..9 without 0 */
    lq_vf isc[19], slx[19], sl2[19];
    isc[0] = vf_div(vf_set1(-32.f), vmax);
    for (int k = 1, is = -9; is <= 9; is++) {
        if (is == 0) continue;
        isc[k++] = vf_div(vf_set1(-(32.f + 0.1f * (float)is)), vmax);
    }
    for (int k = 0; k < 19; k += 2) {
        qx_sums(isc[k], xt, wt, wxt, &slx[k], &sl2[k]);
        if (k + 1 < 19) qx_sums(isc[k + 1], xt, wt, wxt, &slx[k + 1], &sl2[k + 1]);
    }
    const lq_vf z0 = vf_zero();
    lq_vf       scale = vq_sel(vm_eq(sl2[0], z0), z0, vf_div(slx[0], sl2[0]));
    lq_vf       best = vf_mul(scale, slx[0]), b_isc = isc[0];
    for (int k = 1; k < 19; k++) {
        const lq_vm upd = vm_and(vm_gt(sl2[k], z0), vm_gt(vf_mul(slx[k], slx[k]), vf_mul(best, sl2[k])));
        if (!vm_bits(upd)) continue;
        scale = vq_sel(upd, vf_div(slx[k], sl2[k]), scale);
        best  = vq_sel(upd, vf_mul(scale, slx[k]), best);
        b_isc = vq_sel(upd, isc[k], b_isc);
    }
    const unsigned zb = vm_bits(zero);
    vf_store(out->scale, vq_sel(zero, z0, scale));
    vf_store(out->iscale, b_isc);
    for (int ln = 0; ln < LQ_VL; ln++)
        out->zero[ln] = (zb >> ln) & 1u;
}

static void q6_k_block_fast(const float *x, uint8_t *blk) {
    float scales[16], iscl[16];
    bool  zero[16];
    for (int h = 0; h < 16; h += LQ_VL) {
        qx_lanes s;
        q6_k_search(x + 16 * h, &s);
        for (int ln = 0; ln < LQ_VL; ln++) {
            scales[h + ln] = s.scale[ln];
            iscl[h + ln]   = s.iscale[ln];
            zero[h + ln]   = s.zero[ln];
        }
    }
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < 16; ib++) {
        const float abs_s = fabsf(scales[ib]);
        if (abs_s > max_abs_scale) {
            max_abs_scale = abs_s;
            max_scale     = scales[ib];
        }
    }
    memset(blk, 0, 210);
    if (max_abs_scale < 1e-15f) return;
    const float iscale = -128.f / max_scale;
    put_le16(blk + 208, to_f16(1 / iscale));
    int8_t *const sc = (int8_t *)(blk + 192);
    for (int ib = 0; ib < 16; ib++)
        sc[ib] = (int8_t)clamp_i(nearest_i(iscale * scales[ib]), -128, 127);
    const float d = half_at(blk + 208);
    float       L[QK_K]; /* codes 0..63 as floats */
    const lq_vf lo = vf_set1(-32.f), hi = vf_set1(31.f), v32 = vf_set1(32.f);
    for (int j = 0; j < 16; j++) {
        const float  dj = d * sc[j];
        const float *xj = x + 16 * j;
        if (dj == 0) { /* keep the search's codes */
            for (int i = 0; i < 16; i++)
                L[16 * j + i] = zero[j] ? 0.f : (float)(clamp_i(nearest_i(iscl[j] * xj[i]), -32, 31) + 32);
            continue;
        }
        const lq_vf vd = vf_set1(dj);
        for (int i = 0; i < 16; i += LQ_VL) {
            const lq_vf q = vq_rne(vf_div(vf_load(xj + i), vd));
            vf_store(L + 16 * j + i, vf_add(vq_min(vf_max(q, lo), hi), v32));
        }
    }
    /* ql: low nibbles of e_l | e_{l+64} << 4 and e_{l+32} | e_{l+96} << 4; qh: the top 2 bits of all four */
    const lq_vf v16 = vf_set1(16.f), v4 = vf_set1(4.f), v64 = vf_set1(64.f), r16 = vf_set1(0.0625f);
    for (int n = 0; n < QK_K; n += 128) {
        uint8_t *ql = blk + n / 2, *qh = blk + 128 + n / 4;
        for (int l = 0; l < 32; l += LQ_VL) {
            lq_vf c[4], h[4], o[4];
            for (int q = 0; q < 4; q++) {
                c[q] = vf_load(L + n + l + 32 * q);
                h[q] = vq_trunc(vf_mul(c[q], r16)); /* exact: c >= 0, c/16 exact */
                o[q] = vf_sub(c[q], vf_mul(h[q], v16));
            }
            vq_store_bytes(ql + l, vf_add(o[0], vf_mul(o[2], v16)));
            vq_store_bytes(ql + l + 32, vf_add(o[1], vf_mul(o[3], v16)));
            vq_store_bytes(qh + l, vf_add(vf_add(h[0], vf_mul(h[1], v4)), vf_add(vf_mul(h[2], v16), vf_mul(h[3], v64))));
        }
    }
}

static void q6_k_row(const float *x, int64_t nb, uint8_t *y) {
    for (int64_t b = 0; b < nb; b++)
        q6_k_block_fast(x + b * QK_K, y + (size_t)b * 210);
}

/* ==== FP8 per tensor ==== */

static double fp8_row_err(const float *x, const float *cw, int64_t n, float s) {
    double p[8] = {0};
    for (int64_t k = 0; k < n; k++) {
        const float  w = s * lq_e4m3_to_f32(lq_f32_to_e4m3_sat(x[k] / s));
        const double d = (double)x[k] - (double)w;
        p[k & 7] += (cw ? (double)cw[k] : 1.0) * (d * d);
    }
    return err_sum8(p);
}

static inline float fp8_scale(float amax, float r, lq_dtype sd) {
    return amax == 0.f ? 1.f : round_scale((amax * r) / 448.f, sd);
}

/* ==== entry point ==== */

typedef struct {
    lq_qtype               t;
    const lq_qtype_traits *tr;
    lq_dtype               st;
    const void            *src;
    int64_t                rows, cols, ng;
    uint64_t               rb;
    const lq_quant_params *p;
    uint8_t               *data;
    float                 *scales;
    uint8_t               *zeros;
} qjob;

/* one row from its f32 values; LQ_OK or the reference's status */
static lq_status quant_row(const qjob *J, int64_t r, const float *x, uint8_t *codes) {
    const lq_qtype_traits *tr   = J->tr;
    const lq_quant_params *p    = J->p;
    uint8_t *const         yr   = J->data + (size_t)r * J->rb;
    float *const           sr   = J->scales ? J->scales + r * J->ng : NULL;
    uint8_t *const         zr   = J->zeros ? J->zeros + r * J->ng : NULL;
    const int64_t          cols = J->cols;
    switch (tr->kind) {
    case LQ_QK_KEEP:
        if (tr->dtype == J->st) { /* finite values convert back to themselves */
            memcpy(yr, (const uint8_t *)J->src + (size_t)r * J->rb, (size_t)J->rb);
            return LQ_OK;
        }
        break;
    case LQ_QK_INT: {
        const int_spec sp = {tr->bits, (1 << tr->bits) - 1, tr->sym, p->scale_dtype};
        const int64_t  G  = tr->group > 0 ? tr->group : cols;
        const size_t   es = J->st == LQ_DTYPE_F32 ? 4 : 2;
        const uint8_t *nx = r + 1 < J->rows ? (const uint8_t *)J->src + (size_t)(r + 1) * (size_t)cols * es : NULL;
        if (p->clip_search)
            int_row_clip(&sp, x, cols, G, p->col_weight, yr, codes, sr, zr);
        else
            int_row(&sp, x, cols, G, yr, codes, sr, zr, nx, (size_t)cols * es);
        if (tr->bits == 8 || tr->bits == 4) {
            const size_t used = (size_t)((cols * tr->bits + 7) / 8);
            memset(yr + used, 0, (size_t)J->rb - used);
        } else {
            pack_codes(codes, cols, tr->bits, yr, (size_t)J->rb);
        }
        return LQ_OK;
    }
    case LQ_QK_GGML:
        if (J->t == LQ_QT_Q8_0) {
            q8_0_row(x, cols / 32, yr);
            return LQ_OK;
        }
        if (J->t == LQ_QT_Q4_0 || J->t == LQ_QT_Q5_0) {
            q4q5_row(x, cols / 32, J->t == LQ_QT_Q4_0 ? 8 : 16, yr);
            return LQ_OK;
        }
        if (J->t == LQ_QT_Q4_K && !p->col_weight) {
            q4_k_row(x, cols / QK_K, yr);
            return LQ_OK;
        }
        if (J->t == LQ_QT_Q6_K && !p->col_weight) {
            q6_k_row(x, cols / QK_K, yr);
            return LQ_OK;
        }
        break;
    case LQ_QK_FP8:
    case LQ_QK_NONE: break;
    }
    return lq_quantize_ref(J->t, x, 1, cols, p, yr, sr, zr);
}

/* Types whose rows split into independent spans (whole blocks or groups):
 * a row is converted and quantized SPAN elements at a time, so that reading
 * the source from memory is spread over the row's computation instead of
 * preceding it. 0: whole rows. */
#define SPAN 2048
static int64_t span_of(const qjob *J) {
    const lq_qtype_traits *tr = J->tr;
    if (J->cols <= SPAN) return 0;
    if (J->t == LQ_QT_Q8_0 || J->t == LQ_QT_Q4_0 || J->t == LQ_QT_Q5_0) return SPAN;
    if (tr->kind == LQ_QK_INT && tr->group > 0) return SPAN; /* a multiple of every group */
    return 0;
}

/* elements [s0, s0 + n) of row r, from their f32 values x */
static void quant_span(const qjob *J, int64_t r, int64_t s0, int64_t n, const float *x, uint8_t *codes) {
    const lq_qtype_traits *tr = J->tr;
    uint8_t *const         yr = J->data + (size_t)r * J->rb;
    if (J->t == LQ_QT_Q8_0) {
        q8_0_row(x, n / 32, yr + (size_t)(s0 / 32) * 34);
    } else if (J->t == LQ_QT_Q4_0 || J->t == LQ_QT_Q5_0) {
        const int nq = J->t == LQ_QT_Q4_0 ? 8 : 16;
        q4q5_row(x, n / 32, nq, yr + (size_t)(s0 / 32) * (nq == 8 ? 18 : 22));
    } else {
        const int_spec sp = {tr->bits, (1 << tr->bits) - 1, tr->sym, J->p->scale_dtype};
        const int64_t  G = tr->group, g0 = r * J->ng + s0 / G;
        uint8_t *const row = yr + (size_t)(s0 * tr->bits / 8); /* s0 is a multiple of 8 */
        float *const   sc = J->scales + g0;
        uint8_t *const zr = J->zeros ? J->zeros + g0 : NULL;
        if (J->p->clip_search)
            int_row_clip(&sp, x, n, G, J->p->col_weight ? J->p->col_weight + s0 : NULL, row, codes + s0, sc, zr);
        else
            int_row(&sp, x, n, G, row, codes + s0, sc, zr, NULL, 0);
    }
}

/* after the spans of an INT row: the zero padding, or the 2-/3-bit packing */
static void finish_row(const qjob *J, int64_t r, const uint8_t *codes) {
    const lq_qtype_traits *tr = J->tr;
    uint8_t *const         yr = J->data + (size_t)r * J->rb;
    if (tr->kind != LQ_QK_INT) return;
    if (tr->bits == 8 || tr->bits == 4) {
        const size_t used = (size_t)((J->cols * tr->bits + 7) / 8);
        memset(yr + used, 0, (size_t)J->rb - used);
    } else {
        pack_codes(codes, J->cols, tr->bits, yr, (size_t)J->rb);
    }
}

/* FP8 per tensor: amax over the tensor, the optional search, then the bytes */
static lq_status fp8_tensor(const qjob *J, int nt, float *bufs, int64_t *bad_row, int64_t *bad_col) {
    const int64_t rows = J->rows, cols = J->cols;
    const bool    clip = J->p->clip_search;
    (void)nt; /* without OpenMP */
    const float  *cw   = J->p->col_weight;
    float         amax = 0.f;
    int64_t       bad  = rows, badc = -1;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        float  *buf = bufs + (size_t)lq__cpu_thread_id() * (size_t)(cols + LQ_VL);
        float   m   = 0.f;
        int64_t b = rows, bc = -1;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 8)
#endif
        for (int64_t r = 0; r < rows; r++) {
            int64_t      c;
            const float *x = load_row(J->st, J->src, r, cols, buf, &c);
            if (c >= 0) {
                if (r < b) {
                    b  = r;
                    bc = c;
                }
                continue;
            }
            for (int64_t k = 0; k < cols; k++) {
                const float a = fabsf(x[k]);
                m             = a > m ? a : m;
            }
        }
#ifdef _OPENMP
#pragma omp critical(lq_quant_fp8)
#endif
        {
            amax = m > amax ? m : amax;
            if (b < bad) {
                bad  = b;
                badc = bc;
            }
        }
    }
    if (bad < rows) {
        *bad_row = bad;
        *bad_col = badc;
        return LQ_ERR_INVALID_ARG;
    }
    float s = fp8_scale(amax, 1.f, J->p->scale_dtype);
    if (clip) {
        double *err = lq_malloc(sizeof(double) * (size_t)rows * N_CLIP);
        if (!err) return LQ_ERR_NOMEM;
        float si[N_CLIP];
        for (int i = 0; i < N_CLIP; i++)
            si[i] = fp8_scale(amax, clip_ratio(i), J->p->scale_dtype);
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 4) num_threads(nt) if (nt > 1)
#endif
        for (int64_t r = 0; r < rows; r++) {
            float       *buf = bufs + (size_t)lq__cpu_thread_id() * (size_t)(cols + LQ_VL);
            int64_t      c;
            const float *x = load_row(J->st, J->src, r, cols, buf, &c);
            for (int i = 0; i < N_CLIP; i++)
                err[r * N_CLIP + i] = fp8_row_err(x, cw, cols, si[i]);
        }
        double best = 0;
        for (int i = 0; i < N_CLIP; i++) {
            double e = 0;
            for (int64_t r = 0; r < rows; r++)
                e += err[r * N_CLIP + i];
            if (i == 0 || e < best) {
                best = e;
                s    = si[i];
            }
        }
        lq_free(err);
    }
    J->scales[0] = s;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 8) num_threads(nt) if (nt > 1)
#endif
    for (int64_t r = 0; r < rows; r++) {
        float       *buf = bufs + (size_t)lq__cpu_thread_id() * (size_t)(cols + LQ_VL);
        int64_t      c;
        const float *x = load_row(J->st, J->src, r, cols, buf, &c);
        uint8_t     *y = J->data + (size_t)r * (size_t)cols;
        for (int64_t k = 0; k < cols; k++)
            y[k] = lq_f32_to_e4m3_sat(x[k] / s);
    }
    return LQ_OK;
}

lq_status lq_quantize_cpu(lq_qtype t, lq_dtype src_t, const void *src, int64_t rows, int64_t cols,
                          const lq_quant_params *p, void *data, float *scales, uint8_t *zeros, int n_threads) {
    const lq_qtype_traits *tr  = lq_qtype_traits_of(t);
    const char            *why = NULL;
    LQ_RETURN_IF(!tr || tr->kind == LQ_QK_NONE, LQ_ERR_INVALID_ARG, "%d is not a storage type", (int)t);
    LQ_RETURN_IF(rows < 0, LQ_ERR_INVALID_ARG, "negative row count %lld", (long long)rows);
    LQ_RETURN_IF(!lq_qtype_supports(t, cols, &why), LQ_ERR_SHAPE, "%s cannot store rows of %lld columns: %s",
                 tr->name, (long long)cols, why);
    LQ_RETURN_IF(src_t != LQ_DTYPE_F32 && src_t != LQ_DTYPE_F16 && src_t != LQ_DTYPE_BF16, LQ_ERR_UNSUPPORTED,
                 "%s: cannot quantize from %s (F32, F16 or BF16)", tr->name, lq_dtype_name(src_t));
    const lq_quant_params dp = lq_quant_default_params();
    if (!p) p = &dp;
    LQ_RETURN_IF(p->scale_dtype != LQ_DTYPE_F16 && p->scale_dtype != LQ_DTYPE_BF16 && p->scale_dtype != LQ_DTYPE_F32,
                 LQ_ERR_INVALID_ARG, "scale dtype %s is not F16, BF16 or F32", lq_dtype_name(p->scale_dtype));
    const uint64_t rb = lq_qtype_row_bytes(t, cols);
    uint64_t       total, nel;
    LQ_RETURN_IF(rb == 0 || !lq__mul_u64(rb, (uint64_t)rows, &total) || total > SIZE_MAX ||
                     !lq__mul_u64((uint64_t)cols, (uint64_t)rows, &nel) || nel > SIZE_MAX / sizeof(float),
                 LQ_ERR_INVALID_ARG, "%lld x %lld %s is too large", (long long)rows, (long long)cols, tr->name);
    if (rows == 0) return LQ_OK;
    LQ_RETURN_IF(!src || !data, LQ_ERR_INVALID_ARG, "%s: NULL %s", tr->name, !src ? "source" : "output");
    LQ_RETURN_IF(lq_qtype_n_scales(t, rows, cols) > 0 && !scales, LQ_ERR_INVALID_ARG, "%s: NULL scales", tr->name);
    LQ_RETURN_IF(lq_qtype_has_zeros(t) && !zeros, LQ_ERR_INVALID_ARG, "%s: NULL zero points", tr->name);
    if (p->col_weight)
        for (int64_t k = 0; k < cols; k++)
            LQ_RETURN_IF(!(p->col_weight[k] >= 0.f && p->col_weight[k] <= FLT_MAX), LQ_ERR_INVALID_ARG,
                         "column weight %lld is %g (must be finite and >= 0)", (long long)k, (double)p->col_weight[k]);

    /* the k-quant searches cost ~20x a plain pass: count them so small ones still split */
    const bool    heavy = (tr->kind == LQ_QK_GGML && tr->block == QK_K) || p->clip_search;
    const int64_t work  = (int64_t)LQ_MIN(nel, (uint64_t)1 << 40) * (heavy ? 20 : 1);
    const int nt = lq__cpu_threads_for(n_threads, work);
    const qjob J = {t, tr, src_t, src, rows, cols, lq_qtype_n_groups(t, cols), rb, p, data, scales, zeros};
    /* per thread: cols f32 (+ a vector of slack) and cols code bytes */
    const size_t per = (size_t)(cols + LQ_VL);
    float *const bufs  = lq_malloc(sizeof(float) * per * (size_t)nt);
    uint8_t *const cbs = lq_malloc(per * (size_t)nt);
    if (!bufs || !cbs) {
        lq_free(bufs);
        lq_free(cbs);
        LQ_LOG_ERR("%s: out of memory for %d row buffers of %lld columns", tr->name, nt, (long long)cols);
        return LQ_ERR_NOMEM;
    }
    int64_t   bad = rows, badc = -1;
    lq_status st  = LQ_OK;
    if (tr->kind == LQ_QK_FP8 && tr->group < 0) {
        st = fp8_tensor(&J, nt, bufs, &bad, &badc);
    } else {
        const int64_t chunk = LQ_MAX(1, ((int64_t)1 << 14) / cols);
        const int64_t span  = span_of(&J);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
        {
            const int tid = lq__cpu_thread_id();
            float    *buf = bufs + (size_t)tid * per;
            uint8_t  *cb  = cbs + (size_t)tid * per;
            int64_t   b = rows, bc = -1;
            lq_status s = LQ_OK;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, chunk)
#endif
            for (int64_t r = 0; r < rows; r++) {
                int64_t c = -1;
                if (span > 0) {
                    for (int64_t s0 = 0; s0 < cols && c < 0; s0 += span) {
                        const int64_t n = LQ_MIN(span, cols - s0);
                        const float  *x = load_span(src_t, src, r * cols + s0, n, buf, &c);
                        if (c >= 0)
                            c += s0;
                        else
                            quant_span(&J, r, s0, n, x, cb);
                    }
                    if (c < 0) finish_row(&J, r, cb);
                } else {
                    const float *x = load_row(src_t, src, r, cols, buf, &c);
                    if (c < 0) {
                        const lq_status rs = quant_row(&J, r, x, cb);
                        if (rs != LQ_OK && s == LQ_OK) s = rs;
                    }
                }
                if (c >= 0 && r < b) {
                    b  = r;
                    bc = c;
                }
            }
#ifdef _OPENMP
#pragma omp critical(lq_quant_rows)
#endif
            {
                if (b < bad) {
                    bad  = b;
                    badc = bc;
                }
                if (s != LQ_OK && st == LQ_OK) st = s;
            }
        }
        (void)chunk;
        if (bad < rows) st = LQ_ERR_INVALID_ARG;
    }
    if (bad < rows) {
        const float v = lq__elem_f32(src_t, src, bad * cols + badc);
        LQ_LOG_ERR("%s: row %lld has a non-finite value (%g at column %lld)", tr->name, (long long)bad, (double)v,
                   (long long)badc);
    } else if (st == LQ_ERR_NOMEM) {
        LQ_LOG_ERR("%s: out of memory for the clip search over %lld rows", tr->name, (long long)rows);
    }
    lq_free(bufs);
    lq_free(cbs);
    return st;
}
