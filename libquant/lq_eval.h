/* lq_eval.h : perplexity and KL divergence of a model against a base model,
 * computed live, both models side by side on the same tokens (public).
 *
 * Scoring modes (ctx = chunk length, chunks cut from one tokenized stream):
 *   LQ_SCORE_ALL   each chunk is evaluated with a fresh KV cache at positions
 *                  0..ctx-1 as is; logits 0..ctx-2 predict tokens 1..ctx-1
 *                  (ctx-1 predictions per chunk).
 *   LQ_SCORE_HALF  llama.cpp's llama-perplexity: the first token of each
 *                  chunk is replaced by BOS, and only logits ctx/2 .. ctx-2
 *                  are scored (ctx/2 - 1 predictions per chunk), so figures
 *                  compare with llama-perplexity / --kl-divergence.
 * Statistics are accumulated in f64. KL(base || candidate) is exact over the
 * whole vocabulary (no 16-nat floor, unlike llama.cpp's compressed logits). */
#ifndef LQ_EVAL_H
#define LQ_EVAL_H

#include "lq_model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { LQ_SCORE_ALL = 0, LQ_SCORE_HALF = 1 } lq_score_mode;

typedef struct {
    int64_t        ctx;          /* chunk length in tokens (>= 2; HALF needs >= 4) */
    lq_score_mode  mode;
    int64_t        max_chunks;   /* 0 = every whole chunk of the stream            */
    int32_t        bos;          /* BOS id for LQ_SCORE_HALF (-1: no replacement)  */
    lq_progress_fn progress;
    void          *progress_user;
} lq_eval_params;

lq_eval_params lq_eval_default_params(void);

typedef struct {
    int64_t n_chunks, n_scored, n_evaluated; /* chunks, predictions, tokens run     */
    double  seconds, tokens_per_s;            /* wall time of the forward passes     */
    /* candidate */
    double nll_mean, nll_se, ppl, ppl_se;
    /* with a base model */
    bool   has_base;
    double base_nll_mean, base_nll_se, base_ppl, base_ppl_se;
    double kld_mean, kld_se, kld_min, kld_p01, kld_p05, kld_p10, kld_median, kld_p90, kld_p95, kld_p99, kld_p999,
        kld_max;
    double top1, top1_se;                    /* fraction of same argmax             */
    double dp_mean, dp_se, dp_rms, dp_min, dp_p01, dp_median, dp_p99, dp_max; /* p_cand - p_base of the true token */
    double ln_ratio_mean, ln_ratio_se;       /* mean of nll_cand - nll_base          */
    double ppl_ratio, ppl_ratio_se;          /* exp(ln_ratio_mean) with its error    */
    double nll_cor;                          /* correlation of per-token nll          */
} lq_eval_result;

/*! lq_eval_run() : evaluate `cand` (and `base` when not NULL) on tokens
 *  [0, n_tokens). Both models must share the vocabulary size. The chunks are
 *  cut at multiples of ctx; a trailing partial chunk is ignored.
 *  @return LQ_ERR_INVALID_ARG (too few tokens for one chunk, ctx over a
 *  model's max_seq, vocabularies differ), LQ_ERR_CANCELLED, model errors. */
lq_status lq_eval_run(lq_model *cand, lq_model *base, const int32_t *tokens, int64_t n_tokens,
                      const lq_eval_params *p, lq_eval_result *out);

#ifdef __cplusplus
}
#endif
#endif /* LQ_EVAL_H */
