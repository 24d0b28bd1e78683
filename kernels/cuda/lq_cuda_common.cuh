/* lq_cuda_common.cuh : what every .cu file under kernels/cuda/ includes first.
 *
 * The CUDA runtime, the internal helpers of libquant, and LQ_CUDA_TRY, which
 * turns a cudaError_t into LQ_ERR_CUDA with a log line naming the function,
 * file, line, the failed call and cudaGetErrorString(). It returns; it never
 * exits (llm.c's cudaCheck does, which is wrong inside a library). It also
 * clears the runtime's last-error slot, so a later cudaGetLastError() after a
 * kernel launch does not report this failure a second time. */
#ifndef LQ_CUDA_COMMON_CUH
#define LQ_CUDA_COMMON_CUH

#include <cuda_runtime.h>

#include "lq_internal.h" /* LQ_NORETURN spells [[noreturn]] in C++ */

#define LQ_CUDA_TRY(expr)                                                                                     \
    do {                                                                                                      \
        const cudaError_t lq__e = (expr);                                                                     \
        if (lq__e != cudaSuccess) {                                                                           \
            lq__log(LQ_LOG_ERROR, __func__, "%s:%d: %s: %s (%s)", __FILE__, __LINE__, #expr,                  \
                    cudaGetErrorString(lq__e), cudaGetErrorName(lq__e));                                      \
            (void)cudaGetLastError();                                                                         \
            return LQ_ERR_CUDA;                                                                               \
        }                                                                                                     \
    } while (0)

#endif /* LQ_CUDA_COMMON_CUH */
