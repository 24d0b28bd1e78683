/* cuda_stub.c : the lq_cuda_* entry points for a build without CUDA (CUDA=0
 * or no nvcc), replacing kernels/cuda/ (rule 4).
 *
 * Every operation returns LQ_ERR_UNSUPPORTED with a log line;
 * lq_cuda_device_count() is 0, so LQ_BACKEND_AUTO never picks CUDA and a
 * caller that checks the count first never sees an error. Freeing NULL is
 * the one success: cleanup paths may free unconditionally. */
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
