/* convert_internal.h : shared by convert_ref.c and convert_cpu.c; not installed.
 *
 * One argument check for every conversion entry point, so the reference and
 * the OpenMP version accept and refuse exactly the same calls. */
#ifndef LQ_CONVERT_INTERNAL_H
#define LQ_CONVERT_INTERNAL_H

#include "lq_common.h"

/*! lq__convert_check() :
 *  Validates a conversion of `n` elements from `src_t` to `dst_t` and logs the
 *  reason on failure under `func` (the public entry point's name).
 *  @return LQ_OK, LQ_ERR_INVALID_ARG (n < 0, NULL buffers with n > 0, a dtype
 *          out of range, a byte size that overflows, overlapping buffers),
 *          LQ_ERR_UNSUPPORTED (a dtype that is not convertible, float -> int,
 *          a narrowing int -> int). */
lq_status lq__convert_check(lq_dtype dst_t, const void *dst, lq_dtype src_t, const void *src, int64_t n,
                            const char *func);

#endif
