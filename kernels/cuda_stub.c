/* cuda_stub.c : the lq_cuda_* entry points for a build without CUDA (CUDA=0
 * or no nvcc), replacing kernels/cuda/ (rule 4).
 *
 * Every operation returns LQ_ERR_UNSUPPORTED with a log line;
 * lq_cuda_device_count() is 0, so LQ_BACKEND_AUTO never picks CUDA and a
 * caller that checks the count first never sees an error. Freeing (NULL,
 * or a model that cannot exist) is the one success: cleanup paths may free
 * unconditionally. Keep this file in step with the lq_cuda_* declarations
 * of lq_kernels.h. */
#include "cuda/bench_cuda.h"
#include "lq_internal.h"
#include "lq_kernels.h"

#define NOT_BUILT "this libquant was built without CUDA (CUDA=0 or no nvcc)"

int lq_cuda_device_count(void) { return 0; }

bool lq_cuda_compiled(void) { return false; }

const char *lq_cuda_device_name(void) { return "none: " NOT_BUILT; }

lq_status lq_cuda_malloc(void **dptr, size_t n) {
    if (dptr) *dptr = NULL;
    LQ_LOG_ERR("cannot allocate %zu bytes: " NOT_BUILT, n);
    return LQ_ERR_UNSUPPORTED;
}

lq_status lq_cuda_free(void *dptr) {
    if (dptr == NULL) return LQ_OK;
    LQ_LOG_ERR(NOT_BUILT);
    return LQ_ERR_UNSUPPORTED;
}

lq_status lq_cuda_memcpy_h2d(void *dst, const void *src, size_t n) {
    (void)dst, (void)src;
    LQ_LOG_ERR("cannot copy %zu bytes: " NOT_BUILT, n);
    return LQ_ERR_UNSUPPORTED;
}

lq_status lq_cuda_memcpy_d2h(void *dst, const void *src, size_t n) {
    (void)dst, (void)src;
    LQ_LOG_ERR("cannot copy %zu bytes: " NOT_BUILT, n);
    return LQ_ERR_UNSUPPORTED;
}

lq_status lq_cuda_synchronize(void) {
    LQ_LOG_ERR(NOT_BUILT);
    return LQ_ERR_UNSUPPORTED;
}

lq_status lq_cuda_convert(lq_dtype dst_t, void *dst, lq_dtype src_t, const void *src, int64_t n) {
    (void)dst, (void)src;
    LQ_LOG_ERR("cannot convert %lld elements %s -> %s: " NOT_BUILT, (long long)n, lq_dtype_name(src_t),
               lq_dtype_name(dst_t));
    return LQ_ERR_UNSUPPORTED;
}

/* ---- forward-pass ops and the whole-model pass ---- */

lq_status lq_cuda_matmul(float *y, const float *x, int64_t n, const lq_weight *w, const float *bias) {
    (void)y, (void)x, (void)n, (void)w, (void)bias;
    LQ_LOG_ERR(NOT_BUILT);
    return LQ_ERR_UNSUPPORTED;
}

lq_status lq_cuda_embed(float *out, const lq_weight *table, const int32_t *ids, int64_t n) {
    (void)out, (void)table, (void)ids, (void)n;
    LQ_LOG_ERR(NOT_BUILT);
    return LQ_ERR_UNSUPPORTED;
}

lq_status lq_cuda_rmsnorm(float *y, const float *x, const lq_weight *w, int64_t n, int64_t dim, float eps) {
    (void)y, (void)x, (void)w, (void)n, (void)dim, (void)eps;
    LQ_LOG_ERR(NOT_BUILT);
    return LQ_ERR_UNSUPPORTED;
}

lq_status lq_cuda_rope(float *x, const int32_t *pos, int64_t n, int64_t n_heads, int64_t head_dim,
                       const float *inv_freq, bool neox) {
    (void)x, (void)pos, (void)n, (void)n_heads, (void)head_dim, (void)inv_freq, (void)neox;
    LQ_LOG_ERR(NOT_BUILT);
    return LQ_ERR_UNSUPPORTED;
}

lq_status lq_cuda_attention(float *out, const float *q, const float *k_cache, const float *v_cache, int64_t n,
                            int64_t pos0, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t kv_stride) {
    (void)out, (void)q, (void)k_cache, (void)v_cache, (void)n, (void)pos0, (void)n_heads, (void)n_kv_heads,
        (void)head_dim, (void)kv_stride;
    LQ_LOG_ERR(NOT_BUILT);
    return LQ_ERR_UNSUPPORTED;
}

lq_status lq_cuda_add(float *y, const float *x, int64_t n) {
    (void)y, (void)x, (void)n;
    LQ_LOG_ERR(NOT_BUILT);
    return LQ_ERR_UNSUPPORTED;
}

lq_status lq_cuda_memcpy_d2d(void *dst, const void *src, size_t n) {
    (void)dst, (void)src;
    LQ_LOG_ERR("cannot copy %zu bytes: " NOT_BUILT, n);
    return LQ_ERR_UNSUPPORTED;
}

lq_status lq_cuda_swiglu(float *out, const float *gate, const float *up, int64_t n) {
    (void)out, (void)gate, (void)up, (void)n;
    LQ_LOG_ERR(NOT_BUILT);
    return LQ_ERR_UNSUPPORTED;
}

lq_status lq_cuda_log_softmax(float *out, const float *logits, int64_t n, int64_t vocab) {
    (void)out, (void)logits, (void)n, (void)vocab;
    LQ_LOG_ERR(NOT_BUILT);
    return LQ_ERR_UNSUPPORTED;
}

lq_status lq_cuda_llama_init(const lq_llama_weights *w, int64_t max_seq, int64_t max_batch, lq_cuda_llama **out) {
    (void)w, (void)max_seq, (void)max_batch;
    if (out) *out = NULL;
    LQ_LOG_ERR(NOT_BUILT);
    return LQ_ERR_UNSUPPORTED;
}

lq_status lq_cuda_llama_forward(lq_cuda_llama *m, const int32_t *tokens, int64_t n, int64_t pos0, float *logits,
                                bool last_only) {
    (void)m, (void)tokens, (void)n, (void)pos0, (void)logits, (void)last_only;
    LQ_LOG_ERR(NOT_BUILT);
    return LQ_ERR_UNSUPPORTED;
}

void lq_cuda_llama_free(lq_cuda_llama *m) { (void)m; /* nothing can have been allocated */ }

/* ---- benchmarks (kernels/cuda/bench_cuda.h) ---- */

int lq__bench_cuda_qmatmul(FILE *out) {
    fprintf(out, "cuda qmatmul: no CUDA (" NOT_BUILT ")\n");
    return 1;
}

int lq__bench_cuda_gptq(FILE *out) {
    fprintf(out, "cuda gptq: no CUDA (" NOT_BUILT ")\n");
    return 1;
}

lq_status lq_cuda_hessian_accum(double *H, const float *x, int64_t n, int64_t cols, double alpha) {
    (void)H, (void)x, (void)n, (void)cols, (void)alpha;
    LQ_LOG_ERR(NOT_BUILT);
    return LQ_ERR_UNSUPPORTED;
}

lq_status lq_cuda_gptq(const lq_gptq_params *p, const float *w, int64_t rows, int64_t cols, const double *H,
                       void *data, float *scales, uint8_t *zeros, int32_t *g_idx, lq_gptq_stats *st) {
    (void)p, (void)w, (void)rows, (void)cols, (void)H, (void)data, (void)scales, (void)zeros, (void)g_idx, (void)st;
    LQ_LOG_ERR(NOT_BUILT);
    return LQ_ERR_UNSUPPORTED;
}

lq_status lq_cuda_minmax(const float *x, int64_t n, float *mn, float *mx) {
    (void)x, (void)n, (void)mn, (void)mx;
    LQ_LOG_ERR("minmax: " NOT_BUILT);
    return LQ_ERR_UNSUPPORTED;
}

lq_status lq_cuda_histc(const float *x, int64_t n, bool absval, double lo, double hi, int64_t n_bins,
                        int64_t *counts_host) {
    (void)x, (void)n, (void)absval, (void)lo, (void)hi, (void)n_bins, (void)counts_host;
    LQ_LOG_ERR("histc: " NOT_BUILT);
    return LQ_ERR_UNSUPPORTED;
}

void lq_cuda_llama_set_capture(lq_cuda_llama *m, lq_cuda_capture_fn fn, void *user) {
    (void)m, (void)fn, (void)user; /* no model can exist without CUDA */
}
