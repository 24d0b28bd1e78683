/* qmatmul_cpu.c : lq_matmul_cpu() and lq_embed_cpu() for quantized weights
 * (every INT, FP8 and GGML type), fused: packed rows are decoded in
 * registers or into a few KiB of per-thread scratch, never into an f32 copy
 * of the matrix.
 *
 * Every decoder forms exactly the f32 weights of qmatmul_ref.c (the same f32
 * operations), so `_cpu` differs from `_ref` only in the summation order.
 * Decoders (AVX-512 / AVX2 / generic, following simd_internal.h):
 *   4-bit (int4 with groups of 32k, Q4_0, Q4_K): the 16 possible weights of
 *     a group are formed once into a 16-entry table (one zmm, two ymm on
 *     AVX2) and every nibble is looked up (vpermps): the lookup replaces the
 *     int->float conversion, the zero-point subtraction and the scale.
 *   8-bit (int8 with groups of 32k, Q8_0): widen, subtract the zero point,
 *     convert, scale.
 *   FP8: the e4m3 bits shifted into an f32 and scaled by 2^120 (exact).
 *   others (int2/int3, Q5_0, Q6_K, widths the above do not take): the
 *     reference decoder, lq__qrow_decode().
 * Two regimes, by n alone:
 *   decode, n <= QGEMV_MAX_N: GEMV over groups of QRB adjacent rows, one
 *     token tile (QTB) at a time. The fast kinds decode 32-element units
 *     straight into registers: for the 4-bit kinds the 16 packed bytes are
 *     broadcast as 4 dwords, a per-lane shift brings one nibble of each
 *     dword to the bottom and the table lookup takes it, so no widening
 *     shuffle is needed; the resulting element order is a fixed permutation
 *     within the unit (unit_elem_*), and x is permuted once per call to
 *     match. While a group is read, the next one is prefetched as one linear
 *     stream. The other kinds decode QKB columns of the group into a 4 KiB
 *     buffer that every token tile reuses. Packed bytes come from DRAM once
 *     per call whatever n is (later token tiles find them in L1/L2).
 *   prefill, n > QGEMV_MAX_N: QTR rows are decoded (in element order) into a
 *     per-thread f32 tile (QTR x cols) and multiplied by the plain f32
 *     blocked GEMM of matmul_cpu.c on one thread; tiles are spread over the
 *     threads. The decode is O(rows·cols), the GEMM O(n·rows·cols).
 * Each output element has one writer and a summation order that depends
 * only on (n, cols, the SIMD width), never on the thread count. */
#include "lq_internal.h"
#include "lq_kernels.h"
#include "simd_internal.h"
#include "qmatmul_internal.h"

#include <string.h>

/* ---- internal entry points. From qmatmul_ref.c: ---- */
/* ---- defined here, called by matmul_cpu.c and llama_cpu.c: ---- */

/* ---- tuning ---- */
#define QGEMV_MAX_N 16  /* n above this runs the GEMM                          */
#define QKB         256 /* columns decoded per chunk (a multiple of 256: Q4_K) */
#define QRB         4   /* rows per GEMV group                                 */
#if defined(LQ_SIMD_AVX512)
#define QTB 4 /* tokens per GEMV register tile: 16 accumulators + 4 weights */
#else
#define QTB 2
#endif
#define QTR 48 /* rows per GEMM tile (a multiple of every NR of matmul_cpu.c) */

typedef enum { DEC_GENERIC, DEC_INT4, DEC_INT8, DEC_Q8_0, DEC_Q4_0, DEC_Q4_K, DEC_FP8 } dec_kind;

/* the kinds the GEMV decodes straight into registers (the others go through a buffer) */
static bool fused_kind(dec_kind k) { return k != DEC_GENERIC && k != DEC_FP8; }

typedef struct {
    const lq_weight *w;
    dec_kind         kind;
    size_t           row_bytes;
    int64_t          group;    /* INT: elements per scale (cols for per-channel)      */
    int64_t          n_groups; /* INT: scales per row                                 */
    int              zsym;     /* INT sym: the zero point 2^(B-1)                     */
    int              pblock;   /* GEMV: x is permuted in blocks of this many, or 0    */
    int              perm[64]; /* position p of a block -> element (p < pblock)       */
} qplan;

/* ==== scalar helpers ==== */

static inline float half_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
#if defined(__F16C__)
    return _cvtsh_ss(h);
#else
    return lq_f16_to_f32(h);
#endif
}

/* Q4_K: dm[j] = d · sc_j and dm[8 + j] = dmin · m_j for the 8 sub-blocks (6-bit fields of the 12 bytes s) */
static LQ_ALWAYS_INLINE void q4k_dm(const uint8_t *s, float d, float dmin, float *dm) {
#if defined(__AVX2__)
    /* bytes A = s[0..4), B = s[4..8), C = s[8..12): sc = A & 63 | (C & 15) + ((A >> 6) << 4),
     * m = B & 63 | (C >> 4) + ((B >> 6) << 4); 16 bytes are read (the block goes on) */
    const __m128i v   = _mm_loadu_si128((const __m128i *)s);
    const __m128i lo6 = _mm_and_si128(v, _mm_set1_epi8(63));
    const __m128i hi2 = _mm_and_si128(_mm_srli_epi32(v, 2), _mm_set1_epi8(0x30)); /* (byte >> 6) << 4 */
    const __m128i c   = _mm_srli_si128(v, 8);
    const __m128i sch = _mm_or_si128(_mm_and_si128(c, _mm_set1_epi8(15)), hi2);
    const __m128i mh  = _mm_or_si128(_mm_and_si128(_mm_srli_epi32(c, 4), _mm_set1_epi8(15)), _mm_srli_si128(hi2, 4));
    const __m128i sc8 = _mm_unpacklo_epi32(lo6, sch), m8 = _mm_unpacklo_epi32(_mm_srli_si128(lo6, 4), mh);
    _mm256_storeu_ps(dm, _mm256_mul_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sc8))));
    _mm256_storeu_ps(dm + 8, _mm256_mul_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(m8))));
#else
    for (int j = 0; j < 4; j++) {
        dm[j]         = d * (float)(s[j] & 63);
        dm[8 + j]     = dmin * (float)(s[j + 4] & 63);
        dm[4 + j]     = d * (float)((s[j + 8] & 15) | ((s[j] >> 6) << 4));
        dm[8 + 4 + j] = dmin * (float)((s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4));
    }
#endif
}

static void q4k_scale_min(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m  = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        *m  = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* ==== decoding units, per SIMD level ====
 * lut16: the 16 weights of a 4-bit group, lut[u]
 *   lut_int(s, z)     lut[u] = s · (float)(u − z)     (INT, Q4_0)
 *   lut_mulsub(a, b)  lut[u] = a · (float)u − b       (Q4_K)
 * Natural order (the GEMM tile, embed), 32 elements from 16 bytes:
 *   int4_unit32(out, p, l)            int4 codes (LSB first) -> out[0..32)
 *   nib_split16(lo, llo, hi, lhi, p)  low nibbles -> lo[0..16) via llo, high -> hi[0..16) via lhi
 *   u8_unit16(out, p, s, z)           out[j] = s · (float)(p[j] − z), j < 16
 *   i8_unit16(out, p, d)              out[j] = (float)(int8)p[j] · d, j < 16
 * Register form (the GEMV), one 32-element unit as UV vectors:
 *   int4_vecs(o, p, l)      the 16 bytes are read as 4 dwords (8 nibbles each); lane j of
 *   q4_vecs(o, p, la, lb)   vector v takes dword d = j % 4, slot σ = j/4 + (LQ_VL/4)·v: a
 *                           per-lane shift and one table lookup, no widening shuffle. So
 *                           the vectors hold the unit's elements in the order unit_elem_*()
 *                           gives, and the GEMV multiplies them by x permuted the same way.
 *                           int4: nibble σ = element 8d + σ. Q4_0/Q4_K (low nibbles
 *                           first): nibble 2(σ%4) + σ/4, table la for σ < 4, lb above.
 *   u8_vecs(o, p, s, z), i8_vecs(o, p, d): 32 bytes, natural order */
#define UV (32 / LQ_VL) /* vectors per 32-element unit */

/* position p (< 32) of a unit in the register form -> its element in the unit */
static int unit_elem_int4(int p) {
    const int v = p / LQ_VL, j = p % LQ_VL, d = j % 4, s = j / 4 + (LQ_VL / 4) * v;
    return 8 * d + s;
}
/* Q4_0: element j < 16 is the low nibble of byte j, 16 + j its high nibble */
static int unit_elem_q4(int p) {
    const int v = p / LQ_VL, j = p % LQ_VL, d = j % 4, s = j / 4 + (LQ_VL / 4) * v;
    return 16 * (s / 4) + 4 * d + s % 4;
}

#if defined(LQ_SIMD_AVX512) || defined(LQ_SIMD_AVX2)
/* k_iota_z[z][u] = u − z: the unscaled table of a 4-bit group with zero point z,
 * read from memory so that forming a group's table costs one multiply (no
 * broadcast of z through the shuffle unit) */
#define IZ_ROW(z)                                                                                                      \
    {0.f - z, 1.f - z, 2.f - z, 3.f - z, 4.f - z, 5.f - z, 6.f - z, 7.f - z, 8.f - z, 9.f - z, 10.f - z, 11.f - z,        \
     12.f - z, 13.f - z, 14.f - z, 15.f - z}
static _Alignas(64) const float k_iota_z[16][16] = {IZ_ROW(0),  IZ_ROW(1),  IZ_ROW(2),  IZ_ROW(3), IZ_ROW(4),  IZ_ROW(5),
                                                    IZ_ROW(6),  IZ_ROW(7),  IZ_ROW(8),  IZ_ROW(9), IZ_ROW(10), IZ_ROW(11),
                                                    IZ_ROW(12), IZ_ROW(13), IZ_ROW(14), IZ_ROW(15)};
#undef IZ_ROW
#endif

#if defined(LQ_SIMD_AVX512)

typedef __m512 lut16;

static inline __m512 iota16(void) {
    return _mm512_setr_ps(0.f, 1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f, 8.f, 9.f, 10.f, 11.f, 12.f, 13.f, 14.f, 15.f);
}
static inline lut16 lut_int(float s, int z) {
    if ((unsigned)z < 16u) return _mm512_mul_ps(_mm512_set1_ps(s), _mm512_load_ps(k_iota_z[z]));
    return _mm512_mul_ps(_mm512_set1_ps(s), _mm512_sub_ps(iota16(), _mm512_set1_ps((float)z))); /* a bad zero point */
}
static inline lut16 lut_mulsub(float a, float b) {
    return _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(a), iota16()), _mm512_set1_ps(b));
}
static inline __m512i bytes16(const uint8_t *p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p)); }
static inline __m512i dwords4x4(const uint8_t *p) {
    return _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)p));
}

static inline void int4_unit32(float *out, const uint8_t *p, const lut16 *l) {
    const __m512i v  = bytes16(p);
    const __m512  ev = _mm512_permutexvar_ps(v, *l);                       /* elements 0, 2, .., 30 */
    const __m512  od = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), *l); /* elements 1, 3, .., 31 */
    const __m512i i0 = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i i1 = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    _mm512_storeu_ps(out, _mm512_permutex2var_ps(ev, i0, od));
    _mm512_storeu_ps(out + 16, _mm512_permutex2var_ps(ev, i1, od));
}
static inline void nib_split16(float *lo, const lut16 *llo, float *hi, const lut16 *lhi, const uint8_t *p) {
    const __m512i v = bytes16(p);
    _mm512_storeu_ps(lo, _mm512_permutexvar_ps(v, *llo));
    _mm512_storeu_ps(hi, _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), *lhi));
}
static inline void u8_unit16(float *out, const uint8_t *p, float s, int z) {
    const __m512i v = _mm512_sub_epi32(bytes16(p), _mm512_set1_epi32(z));
    _mm512_storeu_ps(out, _mm512_mul_ps(_mm512_set1_ps(s), _mm512_cvtepi32_ps(v)));
}
static inline void i8_unit16(float *out, const uint8_t *p, float d) {
    const __m512i v = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p));
    _mm512_storeu_ps(out, _mm512_mul_ps(_mm512_cvtepi32_ps(v), _mm512_set1_ps(d)));
}
/* out[j] = s · e4m3(p[j]), j < 16, exact: a normal e4m3 is its bits moved to the f32
 * field positions with the exponent bias corrected (integer ops), a subnormal
 * m · 2^-9 is formed by a conversion and an exact product; NaN (x.1111.111) apart */
static inline void fp8_unit16(float *out, const uint8_t *p, float s) {
    const __m512i v = bytes16(p), mag = _mm512_and_si512(v, _mm512_set1_epi32(0x7F));
    const __m512i sign = _mm512_slli_epi32(_mm512_and_si512(v, _mm512_set1_epi32(0x80)), 24);
    __m512 f = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_slli_epi32(mag, 20), _mm512_set1_epi32(120 << 23)));
    f        = _mm512_mask_mul_ps(f, _mm512_cmplt_epi32_mask(mag, _mm512_set1_epi32(8)), _mm512_cvtepi32_ps(mag),
                                  _mm512_set1_ps(0x1p-9f));
    f        = _mm512_mask_mov_ps(f, _mm512_cmpeq_epi32_mask(mag, _mm512_set1_epi32(0x7F)),
                                  _mm512_castsi512_ps(_mm512_set1_epi32(0x7FC00000)));
    f        = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(f), sign));
    _mm512_storeu_ps(out, _mm512_mul_ps(_mm512_set1_ps(s), f));
}

static inline void int4_vecs(lq_vf *o, const uint8_t *p, const lut16 *l) {
    const __m512i b = dwords4x4(p);
    o[0] = _mm512_permutexvar_ps(_mm512_srlv_epi32(b, _mm512_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12,
                                                                        12, 12)),
                                 *l);
    o[1] = _mm512_permutexvar_ps(_mm512_srlv_epi32(b, _mm512_setr_epi32(16, 16, 16, 16, 20, 20, 20, 20, 24, 24, 24,
                                                                        24, 28, 28, 28, 28)),
                                 *l);
}
static inline void q4_vecs(lq_vf *o, const uint8_t *p, const lut16 *la, const lut16 *lb) {
    const __m512i b = dwords4x4(p);
    o[0] = _mm512_permutexvar_ps(_mm512_srlv_epi32(b, _mm512_setr_epi32(0, 0, 0, 0, 8, 8, 8, 8, 16, 16, 16, 16, 24,
                                                                        24, 24, 24)),
                                 *la);
    o[1] = _mm512_permutexvar_ps(_mm512_srlv_epi32(b, _mm512_setr_epi32(4, 4, 4, 4, 12, 12, 12, 12, 20, 20, 20, 20,
                                                                        28, 28, 28, 28)),
                                 *lb);
}
static inline void u8_vecs(lq_vf *o, const uint8_t *p, float s, int z) {
    for (int h = 0; h < 2; h++)
        o[h] = _mm512_mul_ps(_mm512_set1_ps(s), _mm512_cvtepi32_ps(_mm512_sub_epi32(bytes16(p + 16 * h),
                                                                                    _mm512_set1_epi32(z))));
}
static inline void i8_vecs(lq_vf *o, const uint8_t *p, float d) {
    for (int h = 0; h < 2; h++)
        o[h] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 16 * h)))),
                             _mm512_set1_ps(d));
}

#elif defined(LQ_SIMD_AVX2)

typedef struct {
    __m256 lo, hi; /* entries 0..7 and 8..15 */
} lut16;

static inline lut16 lut_int(float s, int z) {
    const __m256 sv = _mm256_set1_ps(s);
    lut16        l;
    if ((unsigned)z < 16u) {
        l.lo = _mm256_mul_ps(sv, _mm256_load_ps(k_iota_z[z]));
        l.hi = _mm256_mul_ps(sv, _mm256_load_ps(k_iota_z[z] + 8));
        return l;
    }
    const __m256 zv = _mm256_set1_ps((float)z); /* a bad zero point */
    l.lo = _mm256_mul_ps(sv, _mm256_sub_ps(_mm256_setr_ps(0.f, 1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f), zv));
    l.hi = _mm256_mul_ps(sv, _mm256_sub_ps(_mm256_setr_ps(8.f, 9.f, 10.f, 11.f, 12.f, 13.f, 14.f, 15.f), zv));
    return l;
}
static inline lut16 lut_mulsub(float a, float b) {
    const __m256 av = _mm256_set1_ps(a), bv = _mm256_set1_ps(b);
    lut16        l;
    l.lo = _mm256_sub_ps(_mm256_mul_ps(av, _mm256_setr_ps(0.f, 1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f)), bv);
    l.hi = _mm256_sub_ps(_mm256_mul_ps(av, _mm256_setr_ps(8.f, 9.f, 10.f, 11.f, 12.f, 13.f, 14.f, 15.f)), bv);
    return l;
}
/* lut[idx & 15] per lane: two 8-entry permutes, bit 3 picks (moved to the sign bit for blendv) */
static inline __m256 lut_get(const lut16 *l, __m256i idx) {
    const __m256 a = _mm256_permutevar8x32_ps(l->lo, idx), b = _mm256_permutevar8x32_ps(l->hi, idx);
    return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}
static inline __m256i bytes8(const uint8_t *p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)); }
static inline __m256i dwords4x2(const uint8_t *p) {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
}
static inline __m256i shifts(int a, int b) { return _mm256_setr_epi32(a, a, a, a, b, b, b, b); }

static inline void int4_unit32(float *out, const uint8_t *p, const lut16 *l) {
    for (int h = 0; h < 2; h++) {
        const __m256i v  = bytes8(p + 8 * h);
        const __m256  ev = lut_get(l, v), od = lut_get(l, _mm256_srli_epi32(v, 4));
        const __m256  u0 = _mm256_unpacklo_ps(ev, od), u1 = _mm256_unpackhi_ps(ev, od);
        _mm256_storeu_ps(out + 16 * h, _mm256_permute2f128_ps(u0, u1, 0x20));
        _mm256_storeu_ps(out + 16 * h + 8, _mm256_permute2f128_ps(u0, u1, 0x31));
    }
}
static inline void nib_split16(float *lo, const lut16 *llo, float *hi, const lut16 *lhi, const uint8_t *p) {
    for (int h = 0; h < 2; h++) {
        const __m256i v = bytes8(p + 8 * h);
        _mm256_storeu_ps(lo + 8 * h, lut_get(llo, v));
        _mm256_storeu_ps(hi + 8 * h, lut_get(lhi, _mm256_srli_epi32(v, 4)));
    }
}
static inline void u8_unit16(float *out, const uint8_t *p, float s, int z) {
    for (int h = 0; h < 2; h++) {
        const __m256i v = _mm256_sub_epi32(bytes8(p + 8 * h), _mm256_set1_epi32(z));
        _mm256_storeu_ps(out + 8 * h, _mm256_mul_ps(_mm256_set1_ps(s), _mm256_cvtepi32_ps(v)));
    }
}
static inline void i8_unit16(float *out, const uint8_t *p, float d) {
    for (int h = 0; h < 2; h++) {
        const __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + 8 * h)));
        _mm256_storeu_ps(out + 8 * h, _mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_set1_ps(d)));
    }
}
static inline void fp8_unit16(float *out, const uint8_t *p, float s) {
    for (int h = 0; h < 2; h++) {
        const __m256i v = bytes8(p + 8 * h), mag = _mm256_and_si256(v, _mm256_set1_epi32(0x7F));
        const __m256i sign = _mm256_slli_epi32(_mm256_and_si256(v, _mm256_set1_epi32(0x80)), 24);
        __m256 f = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_slli_epi32(mag, 20), _mm256_set1_epi32(120 << 23)));
        f        = _mm256_blendv_ps(f, _mm256_mul_ps(_mm256_cvtepi32_ps(mag), _mm256_set1_ps(0x1p-9f)),
                                    _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(8), mag)));
        f        = _mm256_blendv_ps(f, _mm256_castsi256_ps(_mm256_set1_epi32(0x7FC00000)),
                                    _mm256_castsi256_ps(_mm256_cmpeq_epi32(mag, _mm256_set1_epi32(0x7F))));
        f        = _mm256_castsi256_ps(_mm256_or_si256(_mm256_castps_si256(f), sign));
        _mm256_storeu_ps(out + 8 * h, _mm256_mul_ps(_mm256_set1_ps(s), f));
    }
}

static inline void int4_vecs(lq_vf *o, const uint8_t *p, const lut16 *l) {
    const __m256i b = dwords4x2(p);
    o[0]            = lut_get(l, _mm256_srlv_epi32(b, shifts(0, 4)));
    o[1]            = lut_get(l, _mm256_srlv_epi32(b, shifts(8, 12)));
    o[2]            = lut_get(l, _mm256_srlv_epi32(b, shifts(16, 20)));
    o[3]            = lut_get(l, _mm256_srlv_epi32(b, shifts(24, 28)));
}
static inline void q4_vecs(lq_vf *o, const uint8_t *p, const lut16 *la, const lut16 *lb) {
    const __m256i b = dwords4x2(p);
    o[0]            = lut_get(la, _mm256_srlv_epi32(b, shifts(0, 8)));
    o[1]            = lut_get(la, _mm256_srlv_epi32(b, shifts(16, 24)));
    o[2]            = lut_get(lb, _mm256_srlv_epi32(b, shifts(4, 12)));
    o[3]            = lut_get(lb, _mm256_srlv_epi32(b, shifts(20, 28)));
}
static inline void u8_vecs(lq_vf *o, const uint8_t *p, float s, int z) {
    for (int h = 0; h < 4; h++)
        o[h] = _mm256_mul_ps(_mm256_set1_ps(s),
                             _mm256_cvtepi32_ps(_mm256_sub_epi32(bytes8(p + 8 * h), _mm256_set1_epi32(z))));
}
static inline void i8_vecs(lq_vf *o, const uint8_t *p, float d) {
    for (int h = 0; h < 4; h++)
        o[h] = _mm256_mul_ps(
            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + 8 * h)))),
            _mm256_set1_ps(d));
}

#else /* generic */

typedef struct {
    float v[16];
} lut16;

static inline lut16 lut_int(float s, int z) {
    lut16 l;
    for (int u = 0; u < 16; u++) l.v[u] = s * (float)(u - z);
    return l;
}
static inline lut16 lut_mulsub(float a, float b) {
    lut16 l;
    for (int u = 0; u < 16; u++) l.v[u] = a * (float)u - b;
    return l;
}
static inline void int4_unit32(float *out, const uint8_t *p, const lut16 *l) {
    for (int j = 0; j < 16; j++) {
        out[2 * j]     = l->v[p[j] & 15];
        out[2 * j + 1] = l->v[p[j] >> 4];
    }
}
static inline void nib_split16(float *lo, const lut16 *llo, float *hi, const lut16 *lhi, const uint8_t *p) {
    for (int j = 0; j < 16; j++) {
        lo[j] = llo->v[p[j] & 15];
        hi[j] = lhi->v[p[j] >> 4];
    }
}
static inline void u8_unit16(float *out, const uint8_t *p, float s, int z) {
    for (int j = 0; j < 16; j++) out[j] = s * (float)((int)p[j] - z);
}
static inline void i8_unit16(float *out, const uint8_t *p, float d) {
    for (int j = 0; j < 16; j++) out[j] = (float)(int8_t)p[j] * d;
}
static inline void fp8_unit16(float *out, const uint8_t *p, float s) {
    for (int j = 0; j < 16; j++) out[j] = s * lq_e4m3_to_f32(p[j]);
}

static inline void int4_vecs(lq_vf *o, const uint8_t *p, const lut16 *l) {
    for (int i = 0; i < 32; i++) {
        const int e       = unit_elem_int4(i);
        o[i / LQ_VL].v[i % LQ_VL] = l->v[(p[e / 2] >> (4 * (e % 2))) & 15];
    }
}
static inline void q4_vecs(lq_vf *o, const uint8_t *p, const lut16 *la, const lut16 *lb) {
    for (int i = 0; i < 32; i++) {
        const int e       = unit_elem_q4(i);
        o[i / LQ_VL].v[i % LQ_VL] = (e < 16 ? la : lb)->v[(p[e % 16] >> (4 * (e / 16))) & 15];
    }
}
static inline void u8_vecs(lq_vf *o, const uint8_t *p, float s, int z) {
    for (int i = 0; i < 32; i++) o[i / LQ_VL].v[i % LQ_VL] = s * (float)((int)p[i] - z);
}
static inline void i8_vecs(lq_vf *o, const uint8_t *p, float d) {
    for (int i = 0; i < 32; i++) o[i / LQ_VL].v[i % LQ_VL] = (float)(int8_t)p[i] * d;
}

#endif

/* ==== row decoding ==== */

static qplan make_plan(const lq_weight *w) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(w->qtype);
    qplan                  q;
    memset(&q, 0, sizeof q);
    q.w         = w;
    q.kind      = DEC_GENERIC;
    q.row_bytes = (size_t)lq_qtype_row_bytes(w->qtype, w->cols);
    if (tr->kind == LQ_QK_INT) {
        q.group    = tr->group > 0 ? tr->group : w->cols;
        q.n_groups = lq_qtype_n_groups(w->qtype, w->cols);
        q.zsym     = 1 << (tr->bits - 1);
        if (tr->bits == 4 && q.group % 32 == 0) q.kind = DEC_INT4;
        if (tr->bits == 8 && q.group % 32 == 0) q.kind = DEC_INT8;
    } else if (w->qtype == LQ_QT_Q8_0) {
        q.kind = DEC_Q8_0;
    } else if (w->qtype == LQ_QT_Q4_0) {
        q.kind = DEC_Q4_0;
    } else if (w->qtype == LQ_QT_Q4_K) {
        q.kind = DEC_Q4_K;
    } else if (tr->kind == LQ_QK_FP8) {
        q.kind = DEC_FP8;
    }
    /* the element order of the register-form units (int4_vecs, q4_vecs) */
    if (q.kind == DEC_INT4 || q.kind == DEC_Q4_0) {
        q.pblock = 32;
        for (int p = 0; p < 32; p++) q.perm[p] = q.kind == DEC_INT4 ? unit_elem_int4(p) : unit_elem_q4(p);
    } else if (q.kind == DEC_Q4_K) { /* 64 elements: bytes 0..15 then 16..31 of the half; high nibbles +32 */
        q.pblock = 64;
        for (int p = 0; p < 64; p++) {
            const int e = unit_elem_q4(p % 32);
            q.perm[p]   = 32 * (e / 16) + 16 * (p / 32) + e % 16;
        }
    }
    return q;
}

/* out[0..kb) = row r, columns [k0, k0 + kb); k0 a multiple of QKB */
static void decode(const qplan *q, int64_t r, int64_t k0, int64_t kb, float *restrict out) {
    const lq_weight *const w   = q->w;
    const uint8_t *const   row = (const uint8_t *)w->data + (size_t)r * q->row_bytes;
    const int64_t          k1  = k0 + kb;
    switch (q->kind) {
    case DEC_INT4:
    case DEC_INT8: {
        const float *const   sc = w->scales + r * q->n_groups;
        const uint8_t *const zp = w->zeros ? w->zeros + r * q->n_groups : NULL;
        for (int64_t k = k0; k < k1;) {
            const int64_t g = k / q->group, end = LQ_MIN((g + 1) * q->group, k1);
            const int     z = zp ? (int)zp[g] : q->zsym;
            if (q->kind == DEC_INT4) {
                const lut16 l = lut_int(sc[g], z);
                for (; k < end; k += 32) int4_unit32(out + (k - k0), row + k / 2, &l);
            } else {
                for (; k < end; k += 16) u8_unit16(out + (k - k0), row + k, sc[g], z);
            }
        }
        return;
    }
    case DEC_Q8_0:
        for (int64_t k = k0; k < k1; k += 32) {
            const uint8_t *const b = row + (size_t)(k / 32) * 34;
            const float          d = half_at(b);
            i8_unit16(out + (k - k0), b + 2, d);
            i8_unit16(out + (k - k0) + 16, b + 18, d);
        }
        return;
    case DEC_Q4_0:
        for (int64_t k = k0; k < k1; k += 32) {
            const uint8_t *const b = row + (size_t)(k / 32) * 18;
            const lut16          l = lut_int(half_at(b), 8);
            nib_split16(out + (k - k0), &l, out + (k - k0) + 16, &l, b + 2);
        }
        return;
    case DEC_Q4_K:
        for (int64_t k = k0; k < k1; k += 256) {
            const uint8_t *const b = row + (size_t)(k / 256) * 144;
            const float          d = half_at(b), dmin = half_at(b + 2);
            float *const         o = out + (k - k0);
            for (int j = 0; j < 4; j++) {
                int s0, m0, s1, m1;
                q4k_scale_min(b + 4, 2 * j, &s0, &m0);
                q4k_scale_min(b + 4, 2 * j + 1, &s1, &m1);
                const lut16 la = lut_mulsub(d * (float)s0, dmin * (float)m0);
                const lut16 lb = lut_mulsub(d * (float)s1, dmin * (float)m1);
                const uint8_t *const qs = b + 16 + 32 * j;
                nib_split16(o + 64 * j, &la, o + 64 * j + 32, &lb, qs);
                nib_split16(o + 64 * j + 16, &la, o + 64 * j + 48, &lb, qs + 16);
            }
        }
        return;
    case DEC_FP8: {
        const float s = w->scales[lq_qtype_traits_of(w->qtype)->group < 0 ? 0 : r];
        int64_t     k = k0;
        for (; k + 16 <= k1; k += 16) fp8_unit16(out + (k - k0), row + k, s);
        for (; k < k1; k++) out[k - k0] = s * lq_e4m3_to_f32(row[k]);
        return;
    }
    case DEC_GENERIC: break;
    }
    lq__qrow_decode(w, r, k0, k1, out);
}

/* ==== GEMV (decode) ==== */

/* fused kinds: QRB rows x NT tokens, the packed rows decoded unit by unit
 * straight into registers and multiplied by x (permuted for the nibble
 * kinds). NA accumulators per (row, token): 2 for a lone token, so that the
 * FMA latency is covered, 1 otherwise. */
#define FMA_UNIT(WV, K)                                                                                                \
    do {                                                                                                               \
        LQ_PREFETCH(next);                                                                                             \
        LQ_PREFETCH(next + pf_step - 1);                                                                               \
        next += pf_step;                                                                                               \
        LQ_UNROLL(4)                                                                                                   \
        for (int v = 0; v < UV; v++) {                                                                                 \
            LQ_UNROLL(4)                                                                                               \
            for (int t = 0; t < NT; t++) {                                                                             \
                const lq_vf xv = vf_load(xr[t] + (K) + v * LQ_VL);                                                     \
                LQ_UNROLL(4)                                                                                           \
                for (int b = 0; b < QRB; b++)                                                                          \
                    acc[b][t][v % NA] = vf_fma((WV)[b][v], xv, acc[b][t][v % NA]);                                     \
            }                                                                                                          \
        }                                                                                                              \
    } while (0)

static LQ_ALWAYS_INLINE void fused_tile(const dec_kind KIND, const int NT, const qplan *q, int64_t r0, int nr,
                                        const float *const *xr, float *y, int64_t ldy, const float *bias,
                                        const uint8_t *next) {
    const int              NA = NT == 1 && KIND != DEC_Q4_K ? 2 : 1; /* Q4_K: its 8 tables need the registers */
    const lq_weight *const w  = q->w;
    const int64_t          cols = w->cols, ng = q->n_groups, G = q->group;
    const uint8_t         *rp[QRB];
    const float           *sc[QRB];
    const uint8_t         *zp[QRB];
    LQ_UNROLL(4)
    for (int b = 0; b < QRB; b++) {
        const int64_t r = r0 + LQ_MIN(b, nr - 1);
        rp[b]           = (const uint8_t *)w->data + (size_t)r * q->row_bytes;
        sc[b]           = w->scales ? w->scales + r * ng : NULL;
        zp[b]           = w->zeros ? w->zeros + r * ng : NULL;
    }
    lq_vf acc[QRB][QTB][2];
    LQ_UNROLL(4)
    for (int b = 0; b < QRB; b++) {
        LQ_UNROLL(4)
        for (int t = 0; t < NT; t++)
            acc[b][t][0] = acc[b][t][1] = vf_zero();
    }
    /* the next row group (adjacent in memory) is prefetched as one linear stream at the pace of this one */
    const size_t pf_step = QRB * q->row_bytes * 32 / (size_t)cols;
    lq_vf        wv[QRB][UV];
    switch (KIND) {
    case DEC_INT4:
        for (int64_t g = 0; g < ng; g++) {
            lut16 l[QRB];
            LQ_UNROLL(4)
            for (int b = 0; b < QRB; b++)
                l[b] = lut_int(sc[b][g], zp[b] ? (int)zp[b][g] : q->zsym);
            for (int64_t k = g * G; k < (g + 1) * G; k += 32) {
                LQ_UNROLL(4)
                for (int b = 0; b < QRB; b++)
                    int4_vecs(wv[b], rp[b] + ((size_t)k >> 1), &l[b]);
                FMA_UNIT(wv, k);
            }
        }
        break;
    case DEC_INT8:
        for (int64_t g = 0; g < ng; g++) {
            float s[QRB];
            int   z[QRB];
            LQ_UNROLL(4)
            for (int b = 0; b < QRB; b++)
                s[b] = sc[b][g], z[b] = zp[b] ? (int)zp[b][g] : q->zsym;
            for (int64_t k = g * G; k < (g + 1) * G; k += 32) {
                LQ_UNROLL(4)
                for (int b = 0; b < QRB; b++)
                    u8_vecs(wv[b], rp[b] + k, s[b], z[b]);
                FMA_UNIT(wv, k);
            }
        }
        break;
    /* GGML: the block scales of 8 blocks (Q8_0, Q4_0) or of a super-block (Q4_K) are
     * converted to f32 once into dq[][], so that the tables and products below take
     * them as broadcast memory operands */
    case DEC_Q8_0:
    case DEC_Q4_0: {
        const size_t bb = KIND == DEC_Q8_0 ? 34 : 18;
        float        dq[QRB][8];
        for (int64_t k = 0; k < cols; k += 32) {
            const int i = (int)((k / 32) % 8);
            if (i == 0) {
                const int nbk = (int)LQ_MIN((int64_t)8, (cols - k) / 32);
                LQ_UNROLL(4)
                for (int b = 0; b < QRB; b++)
                    for (int m = 0; m < nbk; m++) dq[b][m] = half_at(rp[b] + (size_t)(k / 32 + m) * bb);
            }
            LQ_UNROLL(4)
            for (int b = 0; b < QRB; b++) {
                const uint8_t *const blk = rp[b] + (size_t)(k / 32) * bb;
                if (KIND == DEC_Q8_0) {
                    i8_vecs(wv[b], blk + 2, dq[b][i]);
                } else {
                    const lut16 l = lut_int(dq[b][i], 8);
                    q4_vecs(wv[b], blk + 2, &l, &l);
                }
            }
            FMA_UNIT(wv, k);
        }
        break;
    }
    case DEC_Q4_K: {
        float dm[QRB][16]; /* per row: d·sc of the 8 sub-blocks, then dmin·m */
        for (int64_t k = 0; k < cols; k += 64) {
            const int j = (int)(k % 256) / 64;
            if (j == 0)
                LQ_UNROLL(4)
                for (int b = 0; b < QRB; b++) {
                    const uint8_t *const blk = rp[b] + (size_t)(k / 256) * 144;
                    q4k_dm(blk + 4, half_at(blk), half_at(blk + 2), dm[b]);
                }
            lut16 la[QRB], lb[QRB];
            LQ_UNROLL(4)
            for (int b = 0; b < QRB; b++) {
                la[b] = lut_mulsub(dm[b][2 * j], dm[b][8 + 2 * j]);
                lb[b] = lut_mulsub(dm[b][2 * j + 1], dm[b][9 + 2 * j]);
            }
            for (int u = 0; u < 2; u++) {
                LQ_UNROLL(4)
                for (int b = 0; b < QRB; b++)
                    q4_vecs(wv[b], rp[b] + (size_t)(k / 256) * 144 + 16 + 32 * j + 16 * u, &la[b], &lb[b]);
                FMA_UNIT(wv, k + 32 * u);
            }
        }
        break;
    }
    case DEC_FP8:
    case DEC_GENERIC: break;
    }
    for (int t = 0; t < NT; t++)
        for (int b = 0; b < nr; b++) {
            const float s  = vf_hsum(NA == 2 ? vf_add(acc[b][t][0], acc[b][t][1]) : acc[b][t][0]);
            y[t * ldy + b] = bias ? s + bias[b] : s;
        }
}
#undef FMA_UNIT

/* one fused kind: rows [r0, r0 + nr), every token tile */
#define FUSED_GROUP(NAME, KIND)                                                                                        \
    static void NAME(const qplan *q, float *y, const float *x, int64_t n, const float *bias, int64_t r0, int nr) {    \
        const int64_t rows = q->w->rows, cols = q->w->cols;                                                            \
        const float  *bb   = bias ? bias + r0 : NULL;                                                                  \
        for (int64_t t0 = 0; t0 < n; t0 += QTB) {                                                                      \
            const int    nt = (int)LQ_MIN((int64_t)QTB, n - t0);                                                       \
            const float *xr[QTB];                                                                                      \
            for (int t = 0; t < QTB; t++)                                                                              \
                xr[t] = x + (t0 + LQ_MIN(t, nt - 1)) * cols;                                                           \
            float *const   yt   = y + t0 * rows + r0;                                                                  \
            /* the next group on the first pass; else this one again (in cache; no branch in the loop) */          \
            const uint8_t *next = (const uint8_t *)q->w->data +                                                        \
                                  (size_t)(t0 == 0 && r0 + 2 * QRB <= rows ? r0 + QRB : r0) * q->row_bytes;            \
            switch (nt) {                                                                                              \
            case 1: fused_tile(KIND, 1, q, r0, nr, xr, yt, rows, bb, next); break;                                     \
            case 2: fused_tile(KIND, LQ_MIN(2, QTB), q, r0, nr, xr, yt, rows, bb, next); break;                        \
            case 3: fused_tile(KIND, LQ_MIN(3, QTB), q, r0, nr, xr, yt, rows, bb, next); break;                        \
            default: fused_tile(KIND, QTB, q, r0, nr, xr, yt, rows, bb, next); break;                                  \
            }                                                                                                          \
        }                                                                                                              \
    }
FUSED_GROUP(group_int4, DEC_INT4)
FUSED_GROUP(group_int8, DEC_INT8)
FUSED_GROUP(group_q8_0, DEC_Q8_0)
FUSED_GROUP(group_q4_0, DEC_Q4_0)
FUSED_GROUP(group_q4_k, DEC_Q4_K)
#undef FUSED_GROUP

/* the other kinds: acc[t·QRB + b] (+)= Σ_k buf[b][k] · xr[t][k] over k < kb, for b < QRB,
 * t < NT, in LQ_VL lanes (`first` starts the chains at zero) */
static LQ_ALWAYS_INLINE void dot_tile(const int NT, lq_vf *acc_mem, const float *buf, const int64_t kb,
                                      const float *const *xr, const bool first) {
    lq_vf acc[QRB][QTB];
    LQ_UNROLL(4)
    for (int b = 0; b < QRB; b++) {
        LQ_UNROLL(4)
        for (int t = 0; t < NT; t++)
            acc[b][t] = first ? vf_zero() : acc_mem[t * QRB + b];
    }
    int64_t k = 0;
    for (; k + LQ_VL <= kb; k += LQ_VL) {
        lq_vf wv[QRB];
        LQ_UNROLL(4)
        for (int b = 0; b < QRB; b++)
            wv[b] = vf_load(buf + b * QKB + k);
        LQ_UNROLL(4)
        for (int t = 0; t < NT; t++) {
            const lq_vf xv = vf_load(xr[t] + k);
            LQ_UNROLL(4)
            for (int b = 0; b < QRB; b++)
                acc[b][t] = vf_fma(wv[b], xv, acc[b][t]);
        }
    }
    if (k < kb) {
        const int rem = (int)(kb - k);
        lq_vf     wv[QRB];
        for (int b = 0; b < QRB; b++)
            wv[b] = vf_load_part(buf + b * QKB + k, rem);
        for (int t = 0; t < NT; t++) {
            const lq_vf xv = vf_load_part(xr[t] + k, rem);
            for (int b = 0; b < QRB; b++)
                acc[b][t] = vf_fma(wv[b], xv, acc[b][t]);
        }
    }
    LQ_UNROLL(4)
    for (int b = 0; b < QRB; b++) {
        LQ_UNROLL(4)
        for (int t = 0; t < NT; t++)
            acc_mem[t * QRB + b] = acc[b][t];
    }
}

/* the other kinds: rows [r0, r0 + nr) decoded QKB columns at a time into buf
 * (QRB x QKB), each chunk used by every token tile */
static void group_generic(const qplan *q, float *y, const float *x, int64_t n, const float *bias, int64_t r0,
                          int nr, float *buf, lq_vf *acc) {
    const int64_t rows = q->w->rows, cols = q->w->cols;
    for (int64_t k0 = 0; k0 < cols; k0 += QKB) {
        const int64_t kb = LQ_MIN((int64_t)QKB, cols - k0);
        for (int b = 0; b < nr; b++)
            decode(q, r0 + b, k0, kb, buf + b * QKB);
        for (int64_t t0 = 0; t0 < n; t0 += QTB) {
            const int    nt = (int)LQ_MIN((int64_t)QTB, n - t0);
            const float *xr[QTB];
            for (int t = 0; t < QTB; t++)
                xr[t] = x + (t0 + LQ_MIN(t, nt - 1)) * cols + k0;
            lq_vf *const a = acc + t0 * QRB;
            switch (nt) {
            case 1: dot_tile(1, a, buf, kb, xr, k0 == 0); break;
#if QTB > 2
            case 2: dot_tile(2, a, buf, kb, xr, k0 == 0); break;
            case 3: dot_tile(3, a, buf, kb, xr, k0 == 0); break;
#endif
            default: dot_tile(QTB, a, buf, kb, xr, k0 == 0); break;
            }
        }
    }
    for (int64_t t = 0; t < n; t++)
        for (int b = 0; b < nr; b++) {
            const float s        = vf_hsum(acc[t * QRB + b]);
            y[t * rows + r0 + b] = bias ? s + bias[r0 + b] : s;
        }
}

static lq_status gemv(const qplan *q, float *y, const float *x, int64_t n, const float *bias, int nt) {
    const int64_t rows = q->w->rows, cols = q->w->cols, n_groups = LQ_CEIL_DIV(rows, (int64_t)QRB);
    float        *xp   = NULL;
    if (q->pblock) { /* x in the element order of the register-form units */
        xp = lq_malloc(sizeof(float) * (size_t)(n * cols));
        LQ_RETURN_IF(!xp, LQ_ERR_NOMEM, "matmul: no memory for %lld x %lld floats", (long long)n, (long long)cols);
    }
    const int64_t n_blocks = q->pblock ? n * (cols / q->pblock) : 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1 && n_groups > 1)
#else
    (void)nt;
#endif
    {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t i = 0; i < n_blocks; i++) {
            const float *src = x + i * q->pblock; /* cols is a multiple of pblock: blocks never straddle rows */
            float       *dst = xp + i * q->pblock;
            for (int p = 0; p < q->pblock; p++)
                dst[p] = src[q->perm[p]];
        }
        const float *const xs = xp ? xp : x;
        if (!fused_kind(q->kind)) {
            _Alignas(64) float buf[QRB * QKB];
            lq_vf              acc[QRB * QGEMV_MAX_N];
            memset(buf, 0, sizeof buf); /* rows past the matrix in the last group read zeros */
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (int64_t g = 0; g < n_groups; g++)
                group_generic(q, y, xs, n, bias, g * QRB, (int)LQ_MIN((int64_t)QRB, rows - g * QRB), buf, acc);
        } else {
            void (*const group)(const qplan *, float *, const float *, int64_t, const float *, int64_t, int) =
                q->kind == DEC_INT4   ? group_int4
                : q->kind == DEC_INT8 ? group_int8
                : q->kind == DEC_Q8_0 ? group_q8_0
                : q->kind == DEC_Q4_0 ? group_q4_0
                                      : group_q4_k;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (int64_t g = 0; g < n_groups; g++)
                group(q, y, xs, n, bias, g * QRB, (int)LQ_MIN((int64_t)QRB, rows - g * QRB));
        }
    }
    lq_free(xp);
    return LQ_OK;
}

/* ==== GEMM (prefill) ==== */

static lq_status gemm(const qplan *q, float *y, const float *x, int64_t n, const float *bias, int nt) {
    const int64_t rows = q->w->rows, cols = q->w->cols, n_tiles = LQ_CEIL_DIV(rows, (int64_t)QTR);
    if (nt > n_tiles) nt = (int)n_tiles;
    const size_t per = (size_t)QTR * (size_t)cols + (size_t)n * QTR; /* floats: the tile, then its y */
    float *const scr = lq_malloc(sizeof(float) * per * (size_t)nt);
    LQ_RETURN_IF(!scr, LQ_ERR_NOMEM, "matmul: no memory for %d x %lld x %lld floats of tile scratch", nt,
                 (long long)QTR, (long long)(cols + n));
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        float *const wt = scr + per * (size_t)lq__cpu_thread_id(), *const yt = wt + (size_t)QTR * (size_t)cols;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t it = 0; it < n_tiles; it++) {
            const int64_t r0 = it * QTR, tr = LQ_MIN((int64_t)QTR, rows - r0);
            for (int64_t b = 0; b < tr; b++)
                for (int64_t k0 = 0; k0 < cols; k0 += QKB)
                    decode(q, r0 + b, k0, LQ_MIN((int64_t)QKB, cols - k0), wt + b * cols + k0);
            const lq_weight pw = {LQ_DTYPE_F32, wt, tr, cols, LQ_QT_NONE, NULL, NULL, NULL, 0};
            if (lq_matmul_cpu(yt, x, n, &pw, bias ? bias + r0 : NULL, 1) != LQ_OK) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
                failed = 1;
                continue;
            }
            for (int64_t t = 0; t < n; t++)
                memcpy(y + t * rows + r0, yt + t * tr, sizeof(float) * (size_t)tr);
        }
    }
    lq_free(scr);
    return failed ? LQ_ERR_NOMEM : LQ_OK; /* logged by lq_matmul_cpu */
}

/* ==== entry points ==== */

static lq_weight keep_as_plain(const lq_weight *w) {
    lq_weight p = *w;
    p.dtype     = lq_qtype_traits_of(w->qtype)->dtype;
    p.qtype     = LQ_QT_NONE;
    p.scales    = NULL;
    p.zeros     = NULL;
    return p;
}

/*! lq__qmatmul_cpu() : lq_matmul_cpu() for w->qtype != LQ_QT_NONE. */
lq_status lq__qmatmul_cpu(float *y, const float *x, int64_t n, const lq_weight *w, const float *bias, int n_threads) {
    LQ_TRY(lq__qweight_check(w, "matmul"));
    if (lq_qtype_traits_of(w->qtype)->kind == LQ_QK_KEEP) {
        const lq_weight p = keep_as_plain(w);
        return lq_matmul_cpu(y, x, n, &p, bias, n_threads);
    }
    LQ_RETURN_IF(n < 0, LQ_ERR_INVALID_ARG, "matmul: n = %lld", (long long)n);
    if (n == 0 || w->rows == 0) return LQ_OK;
    const qplan q  = make_plan(w);
    const int   nt = lq__cpu_threads_for(n_threads, n * w->rows * w->cols / 32);
    return n <= QGEMV_MAX_N ? gemv(&q, y, x, n, bias, nt) : gemm(&q, y, x, n, bias, nt);
}

/*! lq__qembed_cpu() : lq_embed_cpu() for table->qtype != LQ_QT_NONE (bit-identical to _ref). */
lq_status lq__qembed_cpu(float *out, const lq_weight *table, const int32_t *ids, int64_t n, int n_threads) {
    LQ_TRY(lq__qweight_check(table, "embed"));
    LQ_RETURN_IF(table->perm, LQ_ERR_UNSUPPORTED, "embed: an act-order (perm) weight cannot be an embedding table");
    if (lq_qtype_traits_of(table->qtype)->kind == LQ_QK_KEEP) {
        const lq_weight p = keep_as_plain(table);
        return lq_embed_cpu(out, &p, ids, n, n_threads);
    }
    for (int64_t t = 0; t < n; t++)
        LQ_RETURN_IF(ids[t] < 0 || ids[t] >= table->rows, LQ_ERR_INVALID_ARG,
                     "token id %d is outside the vocabulary [0, %lld)", ids[t], (long long)table->rows);
    const qplan   q    = make_plan(table);
    const int64_t cols = table->cols;
    const int     nt   = lq__cpu_threads_for(n_threads, n * cols);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1 && n > 1)
#else
    (void)nt;
#endif
    for (int64_t t = 0; t < n; t++)
        for (int64_t k0 = 0; k0 < cols; k0 += QKB)
            decode(&q, ids[t], k0, LQ_MIN((int64_t)QKB, cols - k0), out + t * cols + k0);
    return LQ_OK;
}
