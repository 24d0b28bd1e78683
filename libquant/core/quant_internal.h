/* quant_internal.h : the INT quantization rule of quantize_ref.c (lq_qtypes.h)
 * for other quantizers that must round exactly like lq_quantize_ref (GPTQ:
 * kernels/cpu/gptq_*.c). Thin wrappers over quantize_ref.c's own static
 * functions, so there is one copy of the rule. Internal, not installed. */
#ifndef LQ_QUANT_INTERNAL_H
#define LQ_QUANT_INTERNAL_H

#include "lq_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* scale and zero point of a group with range lo = min(min x, 0), hi =
 * max(max x, 0), amax = max |x|, shrunk by r (1 = none), the scale rounded
 * to sd (F16, BF16, F32) before the zero point is derived from it;
 * sym: z = 2^(bits-1); asym: z = clamp(rint(-lo*r / s), 0, 2^bits - 1) */
void lq__int_group_params(int bits, bool sym, lq_dtype sd, float lo, float hi, float amax, float r, float *s, int *z);
/* clamp(rint(x / s) + z, 0, qmax), rint half to even, f32 arithmetic */
unsigned lq__int_code(float x, float s, int z, int qmax);
/* code u of element k into a zeroed LSB-first bit-stream row / read it back */
void     lq__put_code(uint8_t *row, int64_t k, int bits, unsigned u);
unsigned lq__get_code(const uint8_t *row, int64_t k, int bits);

#ifdef __cplusplus
}
#endif
#endif
