/* convert_cuda.cu : lq_cuda_convert(), dtype conversion between the float
 * types F32, F16, BF16, F8_E4M3 and F8_E5M2 on the device.
 *
 * Bit-identical to lq_convert_ref(): every element is decoded to f32 (exact
 * for all five types, NaN payload left-aligned and made quiet) and encoded
 * once with round to nearest, ties to even, with integer operations only.
 * The cuda_fp16 / cuda_bf16 / cuda_fp8 intrinsics are not used: their
 * overflow (saturation), NaN payload and FTZ behaviour differ between types,
 * architectures and flags. The scalar functions are __host__ __device__ so
 * that the same code can be checked exhaustively on a machine without a GPU.
 * One grid-stride kernel per (source, destination) pair. */
#include "lq_cuda_common.cuh"
#include "lq_kernels.h"

#define LQ_HD static __host__ __device__ __forceinline__

/* ---- scalar conversions (the rules of dtype.c) ---- */

LQ_HD uint32_t f16_to_f32_bits(uint32_t h) {
    const uint32_t sign = (h & 0x8000u) << 16;
    const uint32_t e    = (h >> 10) & 0x1Fu;
    uint32_t       m    = h & 0x3FFu;
    if (e == 0x1Fu) return sign | 0x7F800000u | (m ? 0x00400000u | (m << 13) : 0u);
    if (e != 0) return sign | ((e + 112u) << 23) | (m << 13);
    if (m == 0) return sign;
    uint32_t sh = 0; /* subnormal m * 2^-24: bring the leading one to bit 10 */
    while (!(m & 0x400u)) {
        m <<= 1;
        sh++;
    }
    return sign | ((113u - sh) << 23) | ((m & 0x3FFu) << 13);
}

LQ_HD uint32_t bf16_to_f32_bits(uint32_t h) {
    const uint32_t u = h << 16;
    return (u & 0x7FFFFFFFu) > 0x7F800000u ? u | 0x00400000u : u;
}

LQ_HD uint32_t e4m3_to_f32_bits(uint32_t v) {
    const uint32_t sign = (v & 0x80u) << 24;
    const uint32_t e    = (v >> 3) & 0xFu;
    uint32_t       m    = v & 0x7u;
    if ((v & 0x7Fu) == 0x7Fu) return sign | 0x7FC00000u;
    if (e != 0) return sign | ((e + 120u) << 23) | (m << 20);
    if (m == 0) return sign;
    uint32_t sh = 0; /* subnormal m * 2^-9 */
    while (!(m & 0x8u)) {
        m <<= 1;
        sh++;
    }
    return sign | ((121u - sh) << 23) | ((m & 0x7u) << 20);
}

LQ_HD uint32_t e5m2_to_f32_bits(uint32_t v) { return f16_to_f32_bits(v << 8); }

/* Magnitude code of RNE(|x|) (finite f32 bits) in a format with mb mantissa
 * bits and exponent bias `bias`; may exceed the largest finite code. */
LQ_HD uint32_t round_mag(uint32_t ax, int mb, int bias) {
    const int e = (int)(ax >> 23);
    if (e == 0) return 0;
    const uint32_t m     = (ax & 0x7FFFFFu) | 0x800000u;
    const int      eb    = e - 127 + bias;
    const int      ebc   = eb < 1 ? 1 : eb;
    const int      shift = 23 - mb + (ebc - eb);
    if (shift > 25) return 0;
    const uint32_t q    = m >> shift;
    const uint32_t rem  = m & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1);
    return ((uint32_t)(ebc - 1) << mb) + q + ((rem > half || (rem == half && (q & 1u))) ? 1u : 0u);
}

LQ_HD uint32_t f32_bits_to_f16(uint32_t x) {
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t ax   = x & 0x7FFFFFFFu;
    if (ax > 0x7F800000u) return sign | 0x7E00u | ((ax >> 13) & 0x3FFu);
    if (ax == 0x7F800000u) return sign | 0x7C00u;
    const uint32_t c = round_mag(ax, 10, 15);
    return sign | (c > 0x7BFFu ? 0x7C00u : c);
}

LQ_HD uint32_t f32_bits_to_bf16(uint32_t x) {
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return ((x >> 16) | 0x0040u) & 0xFFFFu;
    return (x + 0x7FFFu + ((x >> 16) & 1u)) >> 16;
}

/* non-saturating: |x| > 464 (and Inf) become NaN, 464 ties to 448 */
LQ_HD uint32_t f32_bits_to_e4m3(uint32_t x) {
    const uint32_t sign = (x >> 24) & 0x80u;
    const uint32_t ax   = x & 0x7FFFFFFFu;
    if (ax >= 0x7F800000u) return sign | 0x7Fu;
    const uint32_t c = round_mag(ax, 3, 7);
    return sign | (c > 0x7Eu ? 0x7Fu : c);
}

LQ_HD uint32_t f32_bits_to_e5m2(uint32_t x) {
    const uint32_t sign = (x >> 24) & 0x80u;
    const uint32_t ax   = x & 0x7FFFFFFFu;
    if (ax > 0x7F800000u) return sign | 0x7Eu | ((ax >> 21) & 0x3u);
    if (ax == 0x7F800000u) return sign | 0x7Cu;
    const uint32_t c = round_mag(ax, 2, 15);
    return sign | (c > 0x7Bu ? 0x7Cu : c);
}

/* ---- per-type element access ---- */

template <lq_dtype T> struct elem;
template <> struct elem<LQ_DTYPE_F32> {
    typedef uint32_t storage;
    LQ_HD uint32_t   to_f32(uint32_t v) { return v; }
    LQ_HD uint32_t   from_f32(uint32_t x) { return x; }
};
template <> struct elem<LQ_DTYPE_F16> {
    typedef uint16_t storage;
    LQ_HD uint32_t   to_f32(uint32_t v) { return f16_to_f32_bits(v); }
    LQ_HD uint32_t   from_f32(uint32_t x) { return f32_bits_to_f16(x); }
};
template <> struct elem<LQ_DTYPE_BF16> {
    typedef uint16_t storage;
    LQ_HD uint32_t   to_f32(uint32_t v) { return bf16_to_f32_bits(v); }
    LQ_HD uint32_t   from_f32(uint32_t x) { return f32_bits_to_bf16(x); }
};
template <> struct elem<LQ_DTYPE_F8_E4M3> {
    typedef uint8_t storage;
    LQ_HD uint32_t  to_f32(uint32_t v) { return e4m3_to_f32_bits(v); }
    LQ_HD uint32_t  from_f32(uint32_t x) { return f32_bits_to_e4m3(x); }
};
template <> struct elem<LQ_DTYPE_F8_E5M2> {
    typedef uint8_t storage;
    LQ_HD uint32_t  to_f32(uint32_t v) { return e5m2_to_f32_bits(v); }
    LQ_HD uint32_t  from_f32(uint32_t x) { return f32_bits_to_e5m2(x); }
};

/* ---- GPU kernels ---- */

/* dst, src: (n) contiguous elements of DT, ST */
template <lq_dtype DT, lq_dtype ST>
static __global__ void convert_kernel(typename elem<DT>::storage *__restrict__ dst,
                                      const typename elem<ST>::storage *__restrict__ src, int64_t n) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const uint32_t x = elem<ST>::to_f32(src[i]);
        dst[i]           = (typename elem<DT>::storage)elem<DT>::from_f32(x);
    }
}

/* ---- kernel launchers ---- */

static const int BLOCK_SIZE = 256;
static const int MAX_BLOCKS = 32768; /* grid-stride beyond this */

template <lq_dtype DT, lq_dtype ST> static lq_status launch(void *dst, const void *src, int64_t n) {
    const int blocks = (int)LQ_MIN(LQ_CEIL_DIV(n, (int64_t)BLOCK_SIZE), (int64_t)MAX_BLOCKS);
    convert_kernel<DT, ST><<<blocks, BLOCK_SIZE>>>((typename elem<DT>::storage *)dst,
                                                   (const typename elem<ST>::storage *)src, n);
    LQ_CUDA_TRY(cudaGetLastError());
    return LQ_OK;
}

template <lq_dtype DT> static lq_status launch_from(lq_dtype src_t, void *dst, const void *src, int64_t n) {
    switch (src_t) {
    case LQ_DTYPE_F32: return launch<DT, LQ_DTYPE_F32>(dst, src, n);
    case LQ_DTYPE_F16: return launch<DT, LQ_DTYPE_F16>(dst, src, n);
    case LQ_DTYPE_BF16: return launch<DT, LQ_DTYPE_BF16>(dst, src, n);
    case LQ_DTYPE_F8_E4M3: return launch<DT, LQ_DTYPE_F8_E4M3>(dst, src, n);
    case LQ_DTYPE_F8_E5M2: return launch<DT, LQ_DTYPE_F8_E5M2>(dst, src, n);
    default: break;
    }
    LQ_ASSERT(!"launch_from: dtype checked by the caller");
    return LQ_ERR_UNSUPPORTED;
}

static bool cuda_float(lq_dtype t) {
    return t == LQ_DTYPE_F32 || t == LQ_DTYPE_F16 || t == LQ_DTYPE_BF16 || t == LQ_DTYPE_F8_E4M3 ||
           t == LQ_DTYPE_F8_E5M2;
}

extern "C" lq_status lq_cuda_convert(lq_dtype dst_t, void *dst, lq_dtype src_t, const void *src, int64_t n) {
    const lq_dtype_traits *const dtr = lq_dtype_traits_of(dst_t);
    const lq_dtype_traits *const str = lq_dtype_traits_of(src_t);
    LQ_RETURN_IF(dtr == NULL || str == NULL, LQ_ERR_INVALID_ARG, "dtype out of range (dst %d, src %d)", (int)dst_t,
                 (int)src_t);
    LQ_RETURN_IF(n < 0, LQ_ERR_INVALID_ARG, "negative element count %lld", (long long)n);
    LQ_RETURN_IF(!cuda_float(dst_t) || !cuda_float(src_t), LQ_ERR_UNSUPPORTED,
                 "conversion %s -> %s is not supported on CUDA (F32, F16, BF16, F8_E4M3, F8_E5M2 only)", str->name,
                 dtr->name);
    if (n == 0) return LQ_OK;
    LQ_RETURN_IF(dst == NULL || src == NULL, LQ_ERR_INVALID_ARG, "NULL buffer for %lld elements", (long long)n);
    const size_t    dsz = dtr->bits / 8, ssz = str->bits / 8;
    const uintptr_t d0 = (uintptr_t)dst, s0 = (uintptr_t)src;
    LQ_RETURN_IF(d0 % dsz != 0 || s0 % ssz != 0, LQ_ERR_INVALID_ARG, "device buffers must be element-aligned");
    LQ_RETURN_IF((uint64_t)n > SIZE_MAX / 4, LQ_ERR_INVALID_ARG, "%lld elements overflow", (long long)n);
    LQ_RETURN_IF(d0 < s0 + (size_t)n * ssz && s0 < d0 + (size_t)n * dsz, LQ_ERR_INVALID_ARG,
                 "source and destination overlap");
    if (dst_t == src_t) {
        LQ_CUDA_TRY(cudaMemcpy(dst, src, (size_t)n * ssz, cudaMemcpyDeviceToDevice));
        LQ_CUDA_TRY(cudaDeviceSynchronize()); /* D2D copies return early; the contract is synchronous */
        return LQ_OK;
    }
    lq_status st = LQ_ERR_UNSUPPORTED;
    switch (dst_t) {
    case LQ_DTYPE_F32: st = launch_from<LQ_DTYPE_F32>(src_t, dst, src, n); break;
    case LQ_DTYPE_F16: st = launch_from<LQ_DTYPE_F16>(src_t, dst, src, n); break;
    case LQ_DTYPE_BF16: st = launch_from<LQ_DTYPE_BF16>(src_t, dst, src, n); break;
    case LQ_DTYPE_F8_E4M3: st = launch_from<LQ_DTYPE_F8_E4M3>(src_t, dst, src, n); break;
    case LQ_DTYPE_F8_E5M2: st = launch_from<LQ_DTYPE_F8_E5M2>(src_t, dst, src, n); break;
    default: break;
    }
    if (st != LQ_OK) return st;
    LQ_CUDA_TRY(cudaStreamSynchronize(0)); /* synchronous, and reports faults of the kernel */
    return LQ_OK;
}
