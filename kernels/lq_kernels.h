/* lq_kernels.h : compute kernels (public).
 *
 * Each op exists as a plain C reference (`_ref`: portable C11, no OpenMP, no
 * intrinsics; the spec and the test oracle), an optimized CPU version
 * (`_cpu`: OpenMP, vectorizable loops) and a CUDA version (`lq_cuda_*`).
 * CPU results must not depend on the thread count. Without CUDA in the build,
 * every lq_cuda_* entry returns LQ_ERR_UNSUPPORTED and
 * lq_cuda_device_count() returns 0. */
#ifndef LQ_KERNELS_H
#define LQ_KERNELS_H

#include "lq_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== dtype conversion ==== */

/*! lq_convert_ref() / lq_convert_cpu() :
 *  convert `n` elements from `src` (type `src_t`) to `dst` (type `dst_t`).
 *  Both types must be convertible (traits.convertible): floats, integers and
 *  BOOL. Float -> narrower float rounds to nearest even (lq_f32_to_* rules);
 *  F64 -> F16/BF16/F8 rounds once, directly (never through F32 twice).
 *  Float -> integer is refused (LQ_ERR_UNSUPPORTED). Same type: a copy.
 *  Buffers must not overlap. `n_threads` <= 0 means the OpenMP default. */
lq_status lq_convert_ref(lq_dtype dst_t, void *dst, lq_dtype src_t, const void *src, int64_t n);
lq_status lq_convert_cpu(lq_dtype dst_t, void *dst, lq_dtype src_t, const void *src, int64_t n, int n_threads);

/* ==== CUDA ==== */

/* number of usable CUDA devices; 0 without a driver, a device or CUDA in the build */
int lq_cuda_device_count(void);
/* true when this build contains CUDA kernels */
bool lq_cuda_compiled(void);
/* "NVIDIA H100 80GB HBM3, sm_90, 79 GiB" or a reason there is none; static storage */
const char *lq_cuda_device_name(void);

/* device memory helpers (LQ_ERR_CUDA / LQ_ERR_UNSUPPORTED on failure) */
lq_status lq_cuda_malloc(void **dptr, size_t n);
lq_status lq_cuda_free(void *dptr);
lq_status lq_cuda_memcpy_h2d(void *dst, const void *src, size_t n);
lq_status lq_cuda_memcpy_d2h(void *dst, const void *src, size_t n);
lq_status lq_cuda_synchronize(void);

/*! lq_cuda_convert() : lq_convert_ref semantics on device pointers, for the
 *  float types F32, F16, BF16, F8_E4M3, F8_E5M2 (others: LQ_ERR_UNSUPPORTED).
 *  Bit-identical to the CPU result. Synchronous. */
lq_status lq_cuda_convert(lq_dtype dst_t, void *dst, lq_dtype src_t, const void *src, int64_t n);

#ifdef __cplusplus
}
#endif
#endif /* LQ_KERNELS_H */
