/* convert_cpu.c : lq_convert_cpu(), the OpenMP version of lq_convert_ref().
 *
 * The element range is cut into fixed chunks of CHUNK elements; one
 * `omp parallel for schedule(static)` hands chunks to threads and each output
 * element is written once, by a pure function of its input element, so the
 * result is bit-identical to lq_convert_ref() for any thread count.
 *
 * The hot paths of checkpoint conversion (F32 -> BF16/F16, BF16/F16 -> F32,
 * F16 <-> BF16, same-type copies) have branch-free integer loops that gcc and
 * clang auto-vectorize at -O2 (those that narrow to F16 need the variable
 * shifts of AVX2; the others vectorize with SSE2).
 * Loads and stores go through memcpy: tensors inside a mapped file need not
 * be aligned. Every other pair runs lq_convert_ref() chunk by chunk. */
#include "lq_internal.h"
#include "lq_kernels.h"
#include "convert_internal.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define CHUNK ((int64_t)1 << 16) /* elements per work item: 256 KiB of F32 */

typedef void (*convert_fn)(void *restrict dst, const void *restrict src, int64_t n);

/* ---- hot elements (each must match lq_convert_ref bit for bit) ---- */

static inline uint16_t elem_f32_to_bf16(uint32_t u) {
    const uint32_t rne = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    const uint32_t nan = (u >> 16) | 0x0040u; /* quiet, sign and top payload kept */
    return (uint16_t)((u & 0x7FFFFFFFu) > 0x7F800000u ? nan : rne);
}

/* f32 -> f16, RNE. Normal results: rebias and round the low 13 bits, the
 * carry runs into the exponent (up to Inf, clamped). Subnormal results
 * (|x| < 2^-14): the 24-bit significand shifted right by 126 - exp, rounded;
 * the shift is clamped to [1, 31] (at 25 and beyond the result is 0). */
static inline uint16_t elem_f32_to_f16(uint32_t u) {
    const uint32_t a    = u & 0x7FFFFFFFu;
    const uint32_t sign = (u >> 16) & 0x8000u;
    const uint32_t nrm0 = (a - 0x38000000u + 0x0FFFu + ((a >> 13) & 1u)) >> 13;
    const uint32_t nrm  = nrm0 < 0x7C00u ? nrm0 : 0x7C00u;
    const uint32_t e    = a >> 23;
    const uint32_t ec   = e < 95u ? 95u : e > 125u ? 125u : e;
    const uint32_t sh   = 126u - ec;
    const uint32_t m    = (a & 0x7FFFFFu) | 0x800000u;
    const uint32_t sub  = (m + ((1u << (sh - 1)) - 1u) + ((m >> sh) & 1u)) >> sh;
    const uint32_t nan  = ((a >> 13) | 0x7E00u) & 0x7FFFu;
    const uint32_t mag  = a > 0x7F800000u ? nan : a < 0x38800000u ? sub : nrm;
    return (uint16_t)(sign | mag);
}

/* f16 -> f32. A subnormal input a * 2^-24 (a = 1..1023) is normalized by
 * four branch-free steps (shift by 8, 4, 2, 1 while the leading one is low
 * enough). Integer only: an (float)a conversion would be exact too, but
 * -ftrapping-math keeps gcc from if-converting it, and the loop would not
 * vectorize. */
static inline uint32_t elem_f16_to_f32(uint16_t h16) {
    const uint32_t h    = h16;
    const uint32_t sign = (h & 0x8000u) << 16;
    const uint32_t a    = h & 0x7FFFu;
    const uint32_t nrm  = (a << 13) + 0x38000000u;
    const uint32_t inf  = (a << 13) | 0x7F800000u | (a > 0x7C00u ? 0x00400000u : 0u);
    /* constant shifts and selects: vectorizable without variable shifts */
    const uint32_t m8   = a <= 0x7u ? a << 8 : a;
    const uint32_t k8   = a <= 0x7u ? 8u : 0u;
    const uint32_t m4   = m8 <= 0x7Fu ? m8 << 4 : m8;
    const uint32_t k4   = m8 <= 0x7Fu ? k8 + 4u : k8;
    const uint32_t m2   = m4 <= 0x1FFu ? m4 << 2 : m4;
    const uint32_t k2   = m4 <= 0x1FFu ? k4 + 2u : k4;
    const uint32_t m1   = m2 <= 0x3FFu ? m2 << 1 : m2;
    const uint32_t k1   = m2 <= 0x3FFu ? k2 + 1u : k2;
    /* the leading one of m1 sits at bit 10 and adds the 1 of exponent 113 - k1 */
    const uint32_t sub = (m1 << 13) + ((112u - k1) << 23);
    const uint32_t mag = a >= 0x7C00u ? inf : a >= 0x0400u ? nrm : a != 0 ? sub : 0u;
    return sign | mag;
}

static inline uint32_t elem_bf16_to_f32(uint16_t h) {
    const uint32_t u = (uint32_t)h << 16;
    return (u & 0x7FFFFFFFu) > 0x7F800000u ? u | 0x00400000u : u;
}

/* between the 16-bit formats through f32: the widening is exact, so this
 * rounds once, and NaN payloads follow the same left-aligned rule */
static inline uint16_t elem_f16_to_bf16(uint16_t h) { return elem_f32_to_bf16(elem_f16_to_f32(h)); }
static inline uint16_t elem_bf16_to_f16(uint16_t h) { return elem_f32_to_f16(elem_bf16_to_f32(h)); }

/* ---- hot loops ----
 * The inner loop has a constant trip count: gcc's -O2 cost model
 * ("very cheap") vectorizes only loops that need no epilogue and no runtime
 * alias check, so blocks of VBLK elements plus a scalar tail it is. */
#define VBLK 64

#define DEFINE_LOOP(name, S_T, D_T, elem)                                            \
    static void name(void *restrict dst, const void *restrict src, int64_t n) {      \
        const unsigned char *const s = (const unsigned char *)src;                   \
        unsigned char *const       d = (unsigned char *)dst;                         \
        int64_t                    i = 0;                                            \
        for (; i + VBLK <= n; i += VBLK) {                                           \
            for (int j = 0; j < VBLK; j++) {                                         \
                S_T x;                                                               \
                memcpy(&x, s + sizeof(S_T) * (size_t)(i + j), sizeof x);             \
                const D_T y = elem(x);                                               \
                memcpy(d + sizeof(D_T) * (size_t)(i + j), &y, sizeof y);             \
            }                                                                        \
        }                                                                            \
        for (; i < n; i++) {                                                         \
            S_T x;                                                                   \
            memcpy(&x, s + sizeof(S_T) * (size_t)i, sizeof x);                       \
            const D_T y = elem(x);                                                   \
            memcpy(d + sizeof(D_T) * (size_t)i, &y, sizeof y);                       \
        }                                                                            \
    }

DEFINE_LOOP(f32_to_bf16, uint32_t, uint16_t, elem_f32_to_bf16)
DEFINE_LOOP(f32_to_f16, uint32_t, uint16_t, elem_f32_to_f16)
DEFINE_LOOP(f16_to_f32, uint16_t, uint32_t, elem_f16_to_f32)
DEFINE_LOOP(bf16_to_f32, uint16_t, uint32_t, elem_bf16_to_f32)
DEFINE_LOOP(f16_to_bf16, uint16_t, uint16_t, elem_f16_to_bf16)
DEFINE_LOOP(bf16_to_f16, uint16_t, uint16_t, elem_bf16_to_f16)

static convert_fn hot_path(lq_dtype dst_t, lq_dtype src_t) {
    if (src_t == LQ_DTYPE_F32 && dst_t == LQ_DTYPE_BF16) return f32_to_bf16;
    if (src_t == LQ_DTYPE_F32 && dst_t == LQ_DTYPE_F16) return f32_to_f16;
    if (src_t == LQ_DTYPE_F16 && dst_t == LQ_DTYPE_F32) return f16_to_f32;
    if (src_t == LQ_DTYPE_BF16 && dst_t == LQ_DTYPE_F32) return bf16_to_f32;
    if (src_t == LQ_DTYPE_F16 && dst_t == LQ_DTYPE_BF16) return f16_to_bf16;
    if (src_t == LQ_DTYPE_BF16 && dst_t == LQ_DTYPE_F16) return bf16_to_f16;
    return NULL;
}

/* ---- entry point ---- */

lq_status lq_convert_cpu(lq_dtype dst_t, void *dst, lq_dtype src_t, const void *src, int64_t n, int n_threads) {
    LQ_TRY(lq__convert_check(dst_t, dst, src_t, src, n, __func__));
    if (n == 0) return LQ_OK;
    const convert_fn fn       = hot_path(dst_t, src_t);
    const bool       copy     = dst_t == src_t;
    const size_t     dsz      = lq_dtype_traits_of(dst_t)->bits / 8;
    const size_t     ssz      = lq_dtype_traits_of(src_t)->bits / 8;
    const int64_t    n_chunks = n / CHUNK + (n % CHUNK != 0); /* LQ_CEIL_DIV could overflow near INT64_MAX */
#ifdef _OPENMP
    const int nt = n_threads > 0 ? n_threads : omp_get_max_threads();
#pragma omp parallel for schedule(static) num_threads(nt) if (n_chunks > 1)
#else
    (void)n_threads;
#endif
    for (int64_t c = 0; c < n_chunks; c++) {
        const int64_t              i0  = c * CHUNK;
        const int64_t              len = LQ_MIN(CHUNK, n - i0);
        unsigned char *const       d   = (unsigned char *)dst + (size_t)i0 * dsz;
        const unsigned char *const s   = (const unsigned char *)src + (size_t)i0 * ssz;
        if (copy) {
            memcpy(d, s, (size_t)len * ssz);
        } else if (fn) {
            fn(d, s, len);
        } else {
            const lq_status st = lq_convert_ref(dst_t, d, src_t, s, len);
            LQ_ASSERT(st == LQ_OK); /* the pair was validated above */
        }
    }
    return LQ_OK;
}
