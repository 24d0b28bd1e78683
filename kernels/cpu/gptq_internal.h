/* gptq_internal.h : pieces shared by gptq_ref.c and gptq_cpu.c (and the CUDA
 * solver's host side): argument checks, the group quantizer with the
 * optional mse range search, the damping schedule, output packing. */
#ifndef LQ_GPTQ_INTERNAL_H
#define LQ_GPTQ_INTERNAL_H

#include "lq_kernels.h"

typedef struct {
    int64_t  R, C;
    int      bits, qmax;
    int64_t  G;       /* columns per group (C for per channel) */
    int64_t  ng;      /* groups per row                        */
    bool     sym, mse, act_order, static_groups;
    lq_dtype sd;
    int      block;   /* lazy batch width                      */
} lq__gptq_shape;

/* validate the arguments except the values (w and H may be device pointers) */
lq_status lq__gptq_shape_of(const lq_gptq_params *p, const void *w, int64_t R, int64_t C, const void *H, void *data,
                            float *scales, uint8_t *zeros, int32_t *g_idx, lq__gptq_shape *sh);
/* validate the arguments (types, shapes, finite inputs) */
lq_status lq__gptq_check(const lq_gptq_params *p, const float *w, int64_t R, int64_t C, const double *H, void *data,
                         float *scales, uint8_t *zeros, int32_t *g_idx, lq__gptq_shape *sh);

/* group parameters of x[0..n) (f64 working values, quantized as f32) */
void lq__gptq_fit(const lq__gptq_shape *sh, const double *x, int64_t n, float *s, int *z);

/* the f32 value a working weight quantizes to, and its code */
static inline double lq__gptq_quant(const lq__gptq_shape *sh, double w, float s, int z, unsigned *code);

/* damping attempt k (0, 1, ...): the relative damping and an absolute diagonal addition;
 * false when the schedule is exhausted (12 attempts: p->damp + 0.01 k for k < 6, then
 * p->damp + 0.05 with 1e-6 * max|diag| * 10^(k-6) added) */
bool lq__gptq_damping(const lq_gptq_params *p, int k, double max_diag, double *rel, double *abs_add);

/* stable order of the columns by decreasing diag (C values) */
void lq__gptq_act_order(const double *diag, int64_t C, int64_t *perm);

#include "quant_internal.h"

static inline double lq__gptq_quant(const lq__gptq_shape *sh, double w, float s, int z, unsigned *code) {
    const unsigned u = lq__int_code((float)w, s, z, sh->qmax);
    *code            = u;
    return (double)(s * (float)((int)u - z));
}

#endif
