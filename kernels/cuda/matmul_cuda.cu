/* matmul_cuda.cu : lq_cuda_matmul(), y (n, rows) = x (n, cols) · Wᵀ + bias on the device.
 *
 * F32 weights: cublasSgemm with CUBLAS_DEFAULT_MATH (no TF32). F16/BF16
 * weights: the activations are rounded to the weight's type (RNE) and the
 * products accumulated in f32: cublasGemmEx (CUBLAS_COMPUTE_32F) for n > 1,
 * and for n = 1 (decode) a GEMV kernel that streams each weight row once with
 * 16-byte loads, one warp per row. Both paths form the same products (a half
 * times a half is exact in f32); only the summation order differs.
 * Row-major W (rows, cols) is column-major (cols, rows), so yᵀ = W xᵀ is
 * GEMM(op(A) = Aᵀ, m = rows, n = n, k = cols, lda = ldb = cols, ldc = rows).
 * Quantized weights (INT, FP8, GGML) go to qmatmul_cuda.cu; KEEP-typed
 * weights (qtype F32/F16/BF16) are plain weights of that dtype. */
#include "llama_cuda_internal.cuh"

#include <limits.h>
#include <stdint.h>

#include <mutex>

#define GEMV_WARPS  4   /* rows per block: one warp per row, 128 threads       */
#define GEMV_UNROLL 4   /* independent 16-byte weight loads in flight per lane */
#define EW_BLOCK    256 /* elementwise kernels                                  */

/* ---- GPU kernels ---- */

/* an F16 / BF16 bit pattern (low 16 bits of b) as f32, exact */
template <int WT> static __device__ __forceinline__ float bits_to_f32(unsigned int b) {
    if constexpr (WT == LQ__WT_F16) return __half2float(__ushort_as_half(static_cast<unsigned short>(b & 0xFFFFu)));
    else return __uint_as_float((b & 0xFFFFu) << 16);
}

template <int WT> static __device__ __forceinline__ unsigned short f32_to_bits(float x) {
    if constexpr (WT == LQ__WT_F16) return __half_as_ushort(__float2half_rn(x));
    else return __bfloat16_as_ushort(__float2bfloat16_rn(x));
}

/* dst (count) = src rounded to the weight type, packed: the GemmEx operand */
template <int WT>
static __global__ void pack_kernel(unsigned short *__restrict__ dst, const float *__restrict__ src, int64_t count) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride)
        dst[i] = f32_to_bits<WT>(src[i]);
}

/* dst (count) = src rounded to the weight type, kept as f32: the GEMV operand
 * (rounding once here keeps the slow f32 -> f16 conversion out of the GEMV's
 * inner loop) */
template <int WT>
static __global__ void round_kernel(float *__restrict__ dst, const float *__restrict__ src, int64_t count) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride)
        dst[i] = bits_to_f32<WT>(f32_to_bits<WT>(src[i]));
}

/* acc + 8 packed weights (one uint4, element 0 in the low half of .x) · 8 activations */
template <int WT> static __device__ __forceinline__ float dot8(const uint4 w, const float4 a, const float4 b, float acc) {
    acc += a.x * bits_to_f32<WT>(w.x);
    acc += a.y * bits_to_f32<WT>(w.x >> 16);
    acc += a.z * bits_to_f32<WT>(w.y);
    acc += a.w * bits_to_f32<WT>(w.y >> 16);
    acc += b.x * bits_to_f32<WT>(w.z);
    acc += b.y * bits_to_f32<WT>(w.z >> 16);
    acc += b.z * bits_to_f32<WT>(w.w);
    acc += b.w * bits_to_f32<WT>(w.w >> 16);
    return acc;
}

/* y (rows) = W (rows, cols) · xr (cols) + bias, or y += that (`accumulate`,
 * added as y + (acc + bias), the reference's order). One warp per row; `vec`:
 * cols % 8 == 0 and W, xr 16-byte aligned, so every row starts aligned and
 * is read as uint4 (8 weights), GEMV_UNROLL loads issued before any use. */
template <int WT>
static __global__ void __launch_bounds__(32 * GEMV_WARPS)
    gemv_kernel(float *__restrict__ y, const float *__restrict__ xr, const unsigned short *__restrict__ W,
                const float *__restrict__ bias, int64_t rows, int64_t cols, int vec, int accumulate) {
    const int     lane = threadIdx.x & 31;
    const int64_t row  = (int64_t)blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
    if (row >= rows) return; /* the whole warp: no block barrier below */
    const unsigned short *wr  = W + row * cols;
    float                 acc = 0.f;
    if (vec) {
        const uint4  *w8 = reinterpret_cast<const uint4 *>(wr);
        const float4 *x4 = reinterpret_cast<const float4 *>(xr);
        const int64_t n8 = cols >> 3;
        for (int64_t j0 = lane; j0 < n8; j0 += 32 * GEMV_UNROLL) {
            uint4 wv[GEMV_UNROLL];
#pragma unroll
            for (int u = 0; u < GEMV_UNROLL; u++) {
                const int64_t j = j0 + 32 * u;
                wv[u]           = j < n8 ? __ldg(w8 + j) : make_uint4(0u, 0u, 0u, 0u);
            }
#pragma unroll
            for (int u = 0; u < GEMV_UNROLL; u++) {
                const int64_t j = j0 + 32 * u;
                if (j < n8) acc = dot8<WT>(wv[u], __ldg(x4 + 2 * j), __ldg(x4 + 2 * j + 1), acc);
            }
        }
    } else {
        for (int64_t c = lane; c < cols; c += 32) acc += xr[c] * bits_to_f32<WT>(wr[c]);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xFFFFFFFFu, acc, o);
    if (lane == 0) {
        const float v = bias ? acc + bias[row] : acc;
        y[row]        = accumulate ? y[row] + v : v;
    }
}

/* y (n, rows) += bias (rows) */
static __global__ void bias_kernel(float *__restrict__ y, const float *__restrict__ bias, int64_t n, int64_t rows) {
    const int64_t count = n * rows, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride) y[i] += bias[i % rows];
}

/* ---- kernel launchers ---- */

int lq__cuda_wt_code(lq_dtype t) {
    if (t == LQ_DTYPE_F32) return LQ__WT_F32;
    if (t == LQ_DTYPE_F16) return LQ__WT_F16;
    if (t == LQ_DTYPE_BF16) return LQ__WT_BF16;
    return -1;
}

/* act-order weights: x gathered into perm order at the front of the scratch */
static size_t perm_bytes(int64_t n, const lq_weight *w) { return ((size_t)n * (size_t)w->cols * sizeof(float) + 255) & ~(size_t)255; }

__global__ static void gather_kernel(float *__restrict__ xp, const float *__restrict__ x, const int32_t *__restrict__ perm,
                                     int64_t n, int64_t cols) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n * cols; i += stride) {
        const int64_t t = i / cols, c = i % cols;
        xp[i]           = x[t * cols + perm[c]];
    }
}

size_t lq__cuda_matmul_scratch_bytes(int64_t n, const lq_weight *w) {
    if (w->in_scale > 0) return lq__cuda_w8a8_scratch_bytes(n, w);
    if (w->perm) {
        lq_weight plain = *w;
        plain.perm      = NULL;
        return perm_bytes(n, w) + lq__cuda_matmul_scratch_bytes(n, &plain);
    }
    if (lq__cuda_is_quantized(w)) return lq__cuda_qmatmul_scratch_bytes(n, w);
    if (lq__cuda_is_keep(w)) {
        const lq_weight p = lq__cuda_plain_view(w);
        return lq__cuda_matmul_scratch_bytes(n, &p);
    }
    if (w->dtype != LQ_DTYPE_F16 && w->dtype != LQ_DTYPE_BF16) return 0;
    return n == 1 ? (size_t)w->cols * sizeof(float) : (size_t)n * (size_t)w->cols * sizeof(unsigned short);
}

lq_status lq__cuda_blas_create(cublasHandle_t *out) {
    *out             = NULL;
    cublasHandle_t h = NULL;
    LQ_CUBLAS_TRY(cublasCreate(&h));
    cublasStatus_t s = cublasSetMathMode(h, CUBLAS_DEFAULT_MATH); /* no TF32 for Sgemm */
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetStream(h, 0);
    if (s != CUBLAS_STATUS_SUCCESS) {
        LQ_LOG_ERR("cannot configure the cuBLAS handle: %s", cublasGetStatusString(s));
        (void)cublasDestroy(h);
        return LQ_ERR_CUDA;
    }
    *out = h;
    return LQ_OK;
}

static lq_status add_bias(float *y, const float *bias, int64_t n, int64_t rows) {
    if (!bias) return LQ_OK;
    bias_kernel<<<lq__grid_for(n * rows, EW_BLOCK), EW_BLOCK>>>(y, bias, n, rows);
    LQ_CUDA_TRY(cudaGetLastError());
    return LQ_OK;
}

template <int WT>
static lq_status matmul_half(cublasHandle_t blas, float *y, const float *x, int64_t n, const lq_weight *w,
                             const float *bias, void *scratch, bool reuse, bool accumulate) {
    const int64_t count = n * w->cols;
    if (n == 1) {
        float *const xr = static_cast<float *>(scratch);
        if (!reuse) {
            round_kernel<WT><<<lq__grid_for(count, EW_BLOCK), EW_BLOCK>>>(xr, x, count);
            LQ_CUDA_TRY(cudaGetLastError());
        }
        const int vec = w->cols % 8 == 0 && (uintptr_t)w->data % 16 == 0 && (uintptr_t)xr % 16 == 0;
        const unsigned int grid = (unsigned int)((w->rows + GEMV_WARPS - 1) / GEMV_WARPS);
        gemv_kernel<WT><<<grid, 32 * GEMV_WARPS>>>(y, xr, static_cast<const unsigned short *>(w->data), bias, w->rows,
                                                   w->cols, vec, accumulate);
        LQ_CUDA_TRY(cudaGetLastError());
        return LQ_OK;
    }
    unsigned short *const xh = static_cast<unsigned short *>(scratch);
    if (!reuse) {
        pack_kernel<WT><<<lq__grid_for(count, EW_BLOCK), EW_BLOCK>>>(xh, x, count);
        LQ_CUDA_TRY(cudaGetLastError());
    }
    const float          one = 1.f, beta = accumulate ? 1.f : 0.f;
    const cudaDataType_t dt  = WT == LQ__WT_F16 ? CUDA_R_16F : CUDA_R_16BF;
    const int            m = (int)w->rows, nn = (int)n, k = (int)w->cols;
    LQ_CUBLAS_TRY(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, m, nn, k, &one, w->data, dt, k, xh, dt, k, &beta, y,
                               CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return add_bias(y, bias, n, w->rows);
}

lq_status lq__cuda_matmul(cublasHandle_t blas, float *y, const float *x, int64_t n, const lq_weight *w,
                          const float *bias, void *scratch, bool reuse_scratch, bool accumulate) {
    if (w->in_scale != 0) return lq__cuda_w8a8(y, x, n, w, bias, scratch, reuse_scratch, accumulate);
    if (w->perm) {
        float *xp = static_cast<float *>(scratch);
        gather_kernel<<<lq__grid_for(n * w->cols, EW_BLOCK), EW_BLOCK>>>(xp, x, w->perm, n, w->cols);
        LQ_CUDA_TRY(cudaGetLastError());
        lq_weight plain = *w;
        plain.perm      = NULL;
        return lq__cuda_matmul(blas, y, xp, n, &plain, bias, static_cast<char *>(scratch) + perm_bytes(n, w), false,
                               accumulate);
    }
    if (lq__cuda_is_quantized(w))
        return lq__cuda_qmatmul(blas, y, x, n, w, bias, scratch, reuse_scratch, accumulate);
    if (lq__cuda_is_keep(w)) {
        const lq_weight p = lq__cuda_plain_view(w);
        return lq__cuda_matmul(blas, y, x, n, &p, bias, scratch, reuse_scratch, accumulate);
    }
    switch (lq__cuda_wt_code(w->dtype)) {
    case LQ__WT_F32: {
        const float one = 1.f, beta = accumulate ? 1.f : 0.f;
        const int   m = (int)w->rows, nn = (int)n, k = (int)w->cols;
        LQ_CUBLAS_TRY(cublasSgemm(blas, CUBLAS_OP_T, CUBLAS_OP_N, m, nn, k, &one, static_cast<const float *>(w->data),
                                  k, x, k, &beta, y, m));
        return add_bias(y, bias, n, w->rows);
    }
    case LQ__WT_F16: return matmul_half<LQ__WT_F16>(blas, y, x, n, w, bias, scratch, reuse_scratch, accumulate);
    case LQ__WT_BF16: return matmul_half<LQ__WT_BF16>(blas, y, x, n, w, bias, scratch, reuse_scratch, accumulate);
    default: break;
    }
    LQ_LOG_ERR("matmul: weight dtype %s is not F32/F16/BF16", lq_dtype_name(w->dtype));
    return LQ_ERR_UNSUPPORTED;
}

/* The handle of the standalone lq_cuda_matmul(): created on first use on the
 * then-current device, kept for the life of the process (destroying it at
 * exit could run after the CUDA runtime is torn down). */
static lq_status global_blas(cublasHandle_t *out) {
    static std::mutex                 mu;
    static cublasHandle_t             h = NULL;
    const std::lock_guard<std::mutex> lock(mu);
    if (!h) LQ_TRY(lq__cuda_blas_create(&h));
    *out = h;
    return LQ_OK;
}

extern "C" lq_status lq_cuda_matmul(float *y, const float *x, int64_t n, const lq_weight *w, const float *bias) {
    LQ_RETURN_IF(w == NULL, LQ_ERR_INVALID_ARG, "matmul: NULL weight");
    if (w->qtype != LQ_QT_NONE) LQ_TRY(lq__cuda_qweight_ok(w, "matmul")); /* quantized or KEEP */
    const lq_weight pv = lq__cuda_plain_view(w);
    LQ_RETURN_IF(!lq__cuda_is_quantized(w) && lq__cuda_wt_code(pv.dtype) < 0, LQ_ERR_UNSUPPORTED,
                 "matmul: weight dtype %s is not F32/F16/BF16", lq_dtype_name(pv.dtype));
    LQ_RETURN_IF(n < 0 || n > INT_MAX || w->rows <= 0 || w->rows > INT_MAX || w->cols <= 0 || w->cols > INT_MAX,
                 LQ_ERR_SHAPE, "matmul: n %lld, weight (%lld, %lld) outside [1, INT_MAX]", (long long)n,
                 (long long)w->rows, (long long)w->cols);
    if (n == 0) return LQ_OK;
    LQ_RETURN_IF(y == NULL || x == NULL || w->data == NULL, LQ_ERR_INVALID_ARG, "matmul: NULL buffer");
    cublasHandle_t blas = NULL;
    LQ_TRY(global_blas(&blas));
    void        *scratch = NULL;
    const size_t sb      = lq__cuda_matmul_scratch_bytes(n, w);
    if (sb) LQ_CUDA_TRY(cudaMalloc(&scratch, sb));
    lq_status         st = lq__cuda_matmul(blas, y, x, n, w, bias, scratch, false, false);
    const cudaError_t se = cudaStreamSynchronize(0); /* also reports faults inside the kernels */
    const cudaError_t fe = cudaFree(scratch);
    if (st == LQ_OK && (se != cudaSuccess || fe != cudaSuccess)) {
        const cudaError_t e = se != cudaSuccess ? se : fe;
        LQ_LOG_ERR("matmul (%lld, %lld) x %lld rows: %s (%s)", (long long)w->rows, (long long)w->cols, (long long)n,
                   cudaGetErrorString(e), cudaGetErrorName(e));
        (void)cudaGetLastError();
        st = LQ_ERR_CUDA;
    }
    return st;
}
