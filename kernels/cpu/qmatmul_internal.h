/* qmatmul_internal.h : the fused quantized kernels as the generic ops call them (not public).
 * qmatmul_ref.c holds the reference and the row decoder, qmatmul_cpu.c the OpenMP/SIMD versions;
 * lq_matmul_* and lq_embed_* route a quantized lq_weight here. */
#ifndef LQ_QMATMUL_INTERNAL_H
#define LQ_QMATMUL_INTERNAL_H

#include "lq_kernels.h"

/* LQ_ERR_INVALID_ARG / LQ_ERR_UNSUPPORTED (logged, naming `op`) for a weight the kernels cannot read */
lq_status lq__qweight_check(const lq_weight *w, const char *op);
/* elements [k0, k1) of row r, dequantized exactly as lq_dequantize_ref() */
void      lq__qrow_decode(const lq_weight *w, int64_t r, int64_t k0, int64_t k1, float *out);
lq_status lq__qmatmul_ref(float *y, const float *x, int64_t n, const lq_weight *w, const float *bias);
lq_status lq__qembed_ref(float *out, const lq_weight *table, const int32_t *ids, int64_t n);
lq_status lq__qmatmul_cpu(float *y, const float *x, int64_t n, const lq_weight *w, const float *bias, int n_threads);
lq_status lq__qembed_cpu(float *out, const lq_weight *table, const int32_t *ids, int64_t n, int n_threads);
/* w->perm set (llama_ref.c): gather x into perm order, then the plain matmul (_ref or _cpu) */
lq_status lq__matmul_perm(float *y, const float *x, int64_t n, const lq_weight *w, const float *bias, int n_threads,
                          bool ref);
/* W8A8 (w->in_scale != 0; w8a8_cpu.c): the weight check and the matmul, `_ref` or `_cpu` */
lq_status lq__w8a8_check(const lq_weight *w, const char *op);
lq_status lq__w8a8_matmul(float *y, const float *x, int64_t n, const lq_weight *w, const float *bias, int n_threads,
                          bool ref);

#endif
