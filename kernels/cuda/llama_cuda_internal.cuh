/* llama_cuda_internal.cuh : the asynchronous launchers behind the CUDA
 * forward-pass ops, shared by matmul_cuda.cu, llama_ops_cuda.cu and
 * llama_cuda.cu. Not installed, not public.
 *
 * The public lq_cuda_<op>() entry points (lq_kernels.h) validate their
 * arguments, call these launchers on the default stream and synchronize.
 * lq_cuda_llama_forward() calls the launchers back to back with no
 * synchronization in between. Every launcher checks cudaGetLastError()
 * after its launch; faults inside a kernel surface at the next synchronizing
 * call (the caller's stream synchronize or device-to-host copy). */
#ifndef LLAMA_CUDA_INTERNAL_CUH
#define LLAMA_CUDA_INTERNAL_CUH

#include "lq_cuda_common.cuh"
#include "lq_kernels.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

/* cublasStatus_t -> LQ_ERR_CUDA, logged with the call and the status name */
#define LQ_CUBLAS_TRY(expr)                                                                                   \
    do {                                                                                                      \
        const cublasStatus_t lq__b = (expr);                                                                  \
        if (lq__b != CUBLAS_STATUS_SUCCESS) {                                                                 \
            lq__log(LQ_LOG_ERROR, __func__, "%s:%d: %s: %s", __FILE__, __LINE__, #expr,                       \
                    cublasGetStatusString(lq__b));                                                            \
            return LQ_ERR_CUDA;                                                                               \
        }                                                                                                     \
    } while (0)

/* weight dtype codes the kernels switch on (uniform branches) */
enum { LQ__WT_F32 = 0, LQ__WT_F16 = 1, LQ__WT_BF16 = 2 };

/* LQ__WT_* for F32/F16/BF16, -1 for anything else */
int lq__cuda_wt_code(lq_dtype t);

/* element i of a F32/F16/BF16 weight as f32 (exact) */
static __device__ __forceinline__ float lq__wt_at(const void *p, int code, int64_t i) {
    if (code == LQ__WT_F32) return static_cast<const float *>(p)[i];
    const unsigned int b = static_cast<const unsigned short *>(p)[i];
    if (code == LQ__WT_F16) return __half2float(__ushort_as_half(static_cast<unsigned short>(b)));
    return __uint_as_float(b << 16);
}

/* a grid for a grid-stride loop over `count` items, `block` threads each */
static inline unsigned int lq__grid_for(int64_t count, int block) {
    const int64_t g = (count + block - 1) / block;
    return (unsigned int)(g < 1 ? 1 : (g > (1 << 20) ? (1 << 20) : g));
}

/* ---- matmul (matmul_cuda.cu) ---- */

/*! lq__cuda_matmul_scratch_bytes() : device scratch that lq__cuda_matmul
 *  needs for `n` rows against `w` (0 for F32 weights). */
size_t lq__cuda_matmul_scratch_bytes(int64_t n, const lq_weight *w);

/*! lq__cuda_matmul() : y (n, w->rows) = x (n, w->cols) · wᵀ + bias, or with
 *  `accumulate` y += x · wᵀ + bias (the residual add fused: GEMV adds
 *  y + (acc + bias) like the reference, cuBLAS uses beta = 1 and adds the
 *  bias after), enqueued on the default stream. F32: cublasSgemm, no TF32.
 *  F16/BF16: x is rounded to the weight's type in `scratch`
 *  (lq__cuda_matmul_scratch_bytes bytes); n = 1 runs the GEMV kernel, n > 1
 *  cublasGemmEx with f32 accumulation. `reuse_scratch`: the previous call
 *  used the same x, n and weight dtype and the scratch still holds its
 *  prepared x (q/k/v and gate/up share their input). Dimensions <= INT_MAX
 *  (checked by the callers). */
lq_status lq__cuda_matmul(cublasHandle_t blas, float *y, const float *x, int64_t n, const lq_weight *w,
                          const float *bias, void *scratch, bool reuse_scratch, bool accumulate);

/* W8A8 (w->in_scale > 0; w8a8_cuda.cu): int8 activations in the scratch, dp4a */
size_t    lq__cuda_w8a8_scratch_bytes(int64_t n, const lq_weight *w);
lq_status lq__cuda_w8a8(float *y, const float *x, int64_t n, const lq_weight *w, const float *bias, void *scratch,
                        bool reuse_scratch, bool accumulate);

/*! lq__cuda_blas_create() : a handle on the default stream, CUBLAS_DEFAULT_MATH */
lq_status lq__cuda_blas_create(cublasHandle_t *out);

/* ---- quantized weights (qmatmul_cuda.cu; the checks in kernels/cpu/qmatmul_ref.c) ---- */

/* lq_weight with qtype != NONE: can the kernels read it? logs with `op` */
extern "C" lq_status lq__qweight_check(const lq_weight *w, const char *op);
/* lq__qweight_check, and dimensions <= INT_MAX */
lq_status lq__cuda_qweight_ok(const lq_weight *w, const char *op);
/* device scratch of lq__cuda_qmatmul for n rows of x */
size_t lq__cuda_qmatmul_scratch_bytes(int64_t n, const lq_weight *w);
/* lq__cuda_matmul for an INT/FP8/GGML weight (same contract; `reuse_scratch`:
 * the previous call had the same x, n and qtype) */
lq_status lq__cuda_qmatmul(cublasHandle_t blas, float *y, const float *x, int64_t n, const lq_weight *w,
                           const float *bias, void *scratch, bool reuse_scratch, bool accumulate);
/* lq__cuda_embed for an INT/FP8/GGML table (bit-identical to lq_embed_ref) */
lq_status lq__cuda_qembed(float *out, const lq_weight *table, const int32_t *ids, int64_t n, int *bad);

/* true for a KEEP-typed weight (qtype F32/F16/BF16): a plain weight of that dtype */
static inline bool lq__cuda_is_keep(const lq_weight *w) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(w->qtype);
    return w->qtype != LQ_QT_NONE && tr && tr->kind == LQ_QK_KEEP;
}
/* a KEEP-typed weight as the plain weight it is (others unchanged) */
static inline lq_weight lq__cuda_plain_view(const lq_weight *w) {
    lq_weight p = *w;
    if (lq__cuda_is_keep(w)) {
        p.dtype  = lq_qtype_traits_of(w->qtype)->dtype;
        p.qtype  = LQ_QT_NONE;
        p.scales = NULL;
        p.zeros  = NULL;
    }
    return p;
}
/* an INT/FP8/GGML weight (not plain, not KEEP) */
static inline bool lq__cuda_is_quantized(const lq_weight *w) { return w->qtype != LQ_QT_NONE && !lq__cuda_is_keep(w); }

/* ---- elementwise, norm, rope, attention (llama_ops_cuda.cu) ---- */

/* `bad` (device int, may be NULL) is set to 1 when an id is out of range;
 * that row is written as zeros */
lq_status lq__cuda_embed(float *out, const lq_weight *table, const int32_t *ids, int64_t n, int *bad);
lq_status lq__cuda_rmsnorm(float *y, const float *x, const lq_weight *w, int64_t n, int64_t dim, float eps);
/* rotates q (n, n_heads_q, head_dim) and, in the same launch, k (n,
 * n_heads_k, head_dim; may be NULL with n_heads_k = 0); positions pos[t]
 * when pos != NULL, else pos0 + t */
lq_status lq__cuda_rope(float *q, int64_t n_heads_q, float *k, int64_t n_heads_k, const int32_t *pos, int64_t pos0,
                        int64_t n, int64_t head_dim, const float *inv_freq, bool neox);
lq_status lq__cuda_attention(float *out, const float *q, const float *k_cache, const float *v_cache, int64_t n,
                             int64_t pos0, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t kv_stride);
lq_status lq__cuda_swiglu(float *out, const float *gate, const float *up, int64_t n);
lq_status lq__cuda_log_softmax(float *out, const float *logits, int64_t n, int64_t vocab);

/* the attention kernel's limit on head_dim (shared memory) */
#define LQ__ATT_MAX_HEAD_DIM 512

#endif /* LLAMA_CUDA_INTERNAL_CUH */
