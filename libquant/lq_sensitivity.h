/* lq_sensitivity.h : measured per-group sensitivity of a model to
 * quantization (public; algorithms module).
 *
 * A group is what must share one type in the formats engines load: q/k/v of
 * a layer (one fused QKV GEMM in vLLM), o_proj, gate/up (one fused GEMM),
 * down_proj, and optionally the embedding (with the lm_head when tied).
 * lq_sens_groups() lists them into an lq_sens_table (lq_mixed.h); the caller
 * fills table->bytes with what each candidate type costs in its output
 * format (UINT64_MAX where the format cannot store it); lq_sens_measure()
 * then quantizes ONE group at a time to one candidate (round-to-nearest,
 * lq_quantize_cpu with `qp`), runs the validation engine (lq_model_forward)
 * over the calibration windows and records the mean KL divergence of the
 * final next-token distributions from the unquantized model's:
 *   KLD = mean over every position of sum_v p(v) (log p(v) - log q(v)),
 * f64 sums, windows in order (deterministic for any thread count). The base
 * log-probabilities of every position are kept in memory (tokens x vocab x
 * 4 bytes). CPU backend only (the sensitivity run swaps host weights). */
#ifndef LQ_SENSITIVITY_H
#define LQ_SENSITIVITY_H

#include "lq_calib.h"
#include "lq_mixed.h"
#include "lq_model.h"
#include "lq_qtypes.h"

#ifdef __cplusplus
extern "C" {
#endif

/*! lq_sens_groups() : the groups of `m` (n_layers x {qkv, o, gateup, down},
 *  then the embedding when include_embed) with n_cands candidate columns
 *  `cands`. bytes stay UINT64_MAX and kld NAN until filled. */
lq_status lq_sens_groups(const lq_model *m, bool include_embed, const lq_qtype *cands, int64_t n_cands,
                         lq_sens_table **out);

typedef struct {
    lq_quant_params qp;        /* the RTN quantizer (scale dtype, clip search)        */
    int             n_threads;
    lq_progress_fn  progress;
    void           *progress_user;
} lq_sens_params;

lq_sens_params lq_sens_default_params(void);

/*! lq_sens_measure() : fill t->kld for every (group, candidate) whose bytes
 *  are not UINT64_MAX, and t->base_kld (the unquantized model against itself:
 *  0 up to rounding), t->calib_sha256, t->calib_tokens. `m` must be the
 *  model t was listed from, on the CPU backend; its weights are restored
 *  before returning. */
lq_status lq_sens_measure(lq_model *m, const lq_calib_set *c, const lq_sens_params *p, lq_sens_table *t);

/*! lq_sens_model_kld() : the same mean KLD of a whole model `q` (e.g. the
 *  written output) against `base` over the windows of c: the real KLD of a
 *  plan, to set beside its prediction. */
lq_status lq_sens_model_kld(lq_model *base, lq_model *q, const lq_calib_set *c, int n_threads, double *kld);

#ifdef __cplusplus
}
#endif
#endif /* LQ_SENSITIVITY_H */
