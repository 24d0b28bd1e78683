/* device_cuda.cu : device discovery and the device memory helpers of lq_kernels.h.
 *
 * Thin, checked wrappers over the CUDA runtime on the current device. Every
 * failure comes back as LQ_ERR_CUDA with a log line (LQ_CUDA_TRY); a machine
 * without a driver or a GPU is not an error here: lq_cuda_device_count()
 * returns 0 and lq_cuda_device_name() says why. */
#include "lq_cuda_common.cuh"
#include "lq_kernels.h"

#include <stdio.h>
#include <string>

extern "C" int lq_cuda_device_count(void) {
    int               n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* no driver / no device: not sticky, clear it */
        return 0;
    }
    return n;
}

extern "C" bool lq_cuda_compiled(void) { return true; }

static std::string describe_device(void) {
    char              buf[512];
    int               n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(buf, sizeof buf, "none: %s", cudaGetErrorString(e));
        return buf;
    }
    if (n == 0) return "none: no CUDA device";
    int            dev = 0;
    cudaDeviceProp p;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&p, dev) != cudaSuccess) {
        (void)cudaGetLastError();
        return "none: cannot query the CUDA device";
    }
    snprintf(buf, sizeof buf, "%s, sm_%d%d, %zu GiB", p.name, p.major, p.minor, (size_t)(p.totalGlobalMem >> 30));
    return buf;
}

extern "C" const char *lq_cuda_device_name(void) {
    static const std::string name = describe_device(); /* initialized once, thread-safe (C++11) */
    return name.c_str();
}

extern "C" lq_status lq_cuda_malloc(void **dptr, size_t n) {
    LQ_RETURN_IF(dptr == NULL, LQ_ERR_INVALID_ARG, "NULL out-pointer");
    *dptr = NULL;
    if (n == 0) return LQ_OK;
    LQ_CUDA_TRY(cudaMalloc(dptr, n));
    return LQ_OK;
}

extern "C" lq_status lq_cuda_free(void *dptr) {
    if (dptr == NULL) return LQ_OK;
    LQ_CUDA_TRY(cudaFree(dptr));
    return LQ_OK;
}

extern "C" lq_status lq_cuda_memcpy_h2d(void *dst, const void *src, size_t n) {
    if (n == 0) return LQ_OK;
    LQ_RETURN_IF(dst == NULL || src == NULL, LQ_ERR_INVALID_ARG, "NULL buffer for %zu bytes", n);
    LQ_CUDA_TRY(cudaMemcpy(dst, src, n, cudaMemcpyHostToDevice));
    return LQ_OK;
}

extern "C" lq_status lq_cuda_memcpy_d2d(void *dst, const void *src, size_t n) {
    if (n == 0) return LQ_OK;
    LQ_RETURN_IF(dst == NULL || src == NULL, LQ_ERR_INVALID_ARG, "NULL buffer for %zu bytes", n);
    LQ_CUDA_TRY(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToDevice));
    return LQ_OK;
}

extern "C" lq_status lq_cuda_memcpy_d2h(void *dst, const void *src, size_t n) {
    if (n == 0) return LQ_OK;
    LQ_RETURN_IF(dst == NULL || src == NULL, LQ_ERR_INVALID_ARG, "NULL buffer for %zu bytes", n);
    LQ_CUDA_TRY(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToHost));
    return LQ_OK;
}

extern "C" lq_status lq_cuda_synchronize(void) {
    LQ_CUDA_TRY(cudaDeviceSynchronize());
    return LQ_OK;
}
