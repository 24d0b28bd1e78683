/* eval.c : live perplexity and KL divergence (see lq_eval.h).
 *
 * Per scored position t with true next token y:
 *   nll      = -log p_c(y)
 *   KL       = sum_v p_b(v) (log p_b(v) - log p_c(v))      (f64, all of V)
 *   same-top = argmax p_b == argmax p_c
 *   dp       = p_c(y) - p_b(y)
 * Means come with standard errors sqrt(var / (N - 1)); ppl = exp(mean nll)
 * with error ppl * se(mean nll); the ppl ratio uses the paired difference
 * nll_c - nll_b, whose error is much smaller than either ppl's. Percentiles
 * interpolate linearly between order statistics. */
#include "lq_eval.h"
#include "lq_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

lq_eval_params lq_eval_default_params(void) {
    lq_eval_params p;
    memset(&p, 0, sizeof p);
    p.ctx  = 512;
    p.mode = LQ_SCORE_HALF;
    p.bos  = 1;
    return p;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* log-softmax of one row in f64, into lp; returns the argmax */
static int64_t log_softmax_f64(double *lp, const float *logits, int64_t V) {
    int64_t am = 0;
    for (int64_t v = 1; v < V; v++)
        if (logits[v] > logits[am]) am = v;
    const double mx = logits[am];
    double       s  = 0;
    for (int64_t v = 0; v < V; v++) s += exp((double)logits[v] - mx);
    const double lse = mx + log(s);
    for (int64_t v = 0; v < V; v++) lp[v] = (double)logits[v] - lse;
    return am;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* linear interpolation on sorted v[0..n) at fraction q in [0,1] */
static double pct(const double *v, int64_t n, double q) {
    if (n == 0) return NAN;
    const double r  = q * (double)(n - 1);
    const int64_t i = (int64_t)floor(r);
    if (i >= n - 1) return v[n - 1];
    return v[i] + (r - (double)i) * (v[i + 1] - v[i]);
}

static void mean_se(const double *v, int64_t n, double *mean, double *se) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += v[i];
    const double m = n ? s / (double)n : NAN;
    double       q = 0;
    for (int64_t i = 0; i < n; i++) q += (v[i] - m) * (v[i] - m);
    *mean = m;
    *se   = n > 1 ? sqrt(q / (double)n / (double)(n - 1)) : 0.0;
}

lq_status lq_eval_run(lq_model *cand, lq_model *base, const int32_t *tokens, int64_t n_tokens, const lq_eval_params *p_in,
                      lq_eval_result *r) {
    const lq_eval_params p = p_in ? *p_in : lq_eval_default_params();
    memset(r, 0, sizeof *r);
    const int64_t V = lq_model_config_of(cand)->vocab_size, ctx = p.ctx;
    LQ_RETURN_IF(ctx < (p.mode == LQ_SCORE_HALF ? 4 : 2), LQ_ERR_INVALID_ARG, "eval: --ctx %lld is too small",
                 (long long)ctx);
    LQ_RETURN_IF(ctx > lq_model_max_seq(cand) || (base && ctx > lq_model_max_seq(base)), LQ_ERR_INVALID_ARG,
                 "eval: --ctx %lld is more than the model's KV cache (%lld)", (long long)ctx,
                 (long long)lq_model_max_seq(cand));
    LQ_RETURN_IF(base && lq_model_config_of(base)->vocab_size != V, LQ_ERR_INVALID_ARG,
                 "eval: the base model's vocabulary (%lld) differs from the candidate's (%lld)",
                 (long long)lq_model_config_of(base)->vocab_size, (long long)V);
    int64_t n_chunks = n_tokens / ctx;
    if (p.max_chunks > 0 && n_chunks > p.max_chunks) n_chunks = p.max_chunks;
    LQ_RETURN_IF(n_chunks < 1, LQ_ERR_INVALID_ARG, "eval: %lld tokens are fewer than one chunk of %lld",
                 (long long)n_tokens, (long long)ctx);
    const int64_t first = p.mode == LQ_SCORE_HALF ? ctx / 2 : 0, per_chunk = ctx - 1 - first;
    const int64_t N     = n_chunks * per_chunk;
    float   *lc = lq_malloc((size_t)(ctx * V) * sizeof(float));
    float   *lb = base ? lq_malloc((size_t)(ctx * V) * sizeof(float)) : NULL;
    double  *pc = lq_malloc((size_t)V * sizeof(double)), *pb = lq_malloc((size_t)V * sizeof(double));
    double  *nll = lq_malloc((size_t)N * sizeof(double)), *nllb = lq_malloc((size_t)N * sizeof(double));
    double  *kld = lq_malloc((size_t)N * sizeof(double)), *dp = lq_malloc((size_t)N * sizeof(double));
    int32_t *chunk = lq_malloc((size_t)ctx * sizeof(int32_t));
    lq_status st   = LQ_OK;
    LQ_GOTO_IF(!lc || (base && !lb) || !pc || !pb || !nll || !nllb || !kld || !dp || !chunk, LQ_ERR_NOMEM,
               "eval: out of memory for %lld x %lld logits", (long long)ctx, (long long)V);
    int64_t k = 0, same = 0;
    double  t_fwd = 0;
    for (int64_t c = 0; c < n_chunks; c++) {
        if (p.progress) {
            char stage[64];
            snprintf(stage, sizeof stage, "chunk %lld/%lld", (long long)c + 1, (long long)n_chunks);
            LQ_GOTO_IF(p.progress((float)c / (float)n_chunks, stage, p.progress_user) != 0, LQ_ERR_CANCELLED,
                       "eval: cancelled");
        }
        memcpy(chunk, tokens + c * ctx, (size_t)ctx * sizeof(int32_t));
        if (p.mode == LQ_SCORE_HALF && p.bos >= 0) chunk[0] = p.bos;
        const double t0 = now_s();
        LQ_GOTO_TRY(lq_model_forward(cand, chunk, ctx, 0, lc, false));
        if (base) LQ_GOTO_TRY(lq_model_forward(base, chunk, ctx, 0, lb, false));
        t_fwd += now_s() - t0;
        for (int64_t j = first; j < ctx - 1; j++, k++) {
            const int32_t y  = tokens[c * ctx + j + 1];
            const int64_t ac = log_softmax_f64(pc, lc + j * V, V);
            nll[k]           = -pc[y];
            if (!base) continue;
            const int64_t ab = log_softmax_f64(pb, lb + j * V, V);
            nllb[k]          = -pb[y];
            double kl        = 0;
            for (int64_t v = 0; v < V; v++) {
                const double q = exp(pb[v]);
                if (q > 0) kl += q * (pb[v] - pc[v]);
            }
            kld[k] = kl > 0 ? kl : 0.0; /* rounding can give -1e-17 for identical rows */
            same += ac == ab;
            dp[k] = exp(pc[y]) - exp(pb[y]);
        }
    }
    if (p.progress) p.progress(1.f, "done", p.progress_user);
    r->n_chunks     = n_chunks;
    r->n_scored     = N;
    r->n_evaluated  = n_chunks * ctx * (base ? 2 : 1);
    r->seconds      = t_fwd;
    r->tokens_per_s = t_fwd > 0 ? (double)(n_chunks * ctx) * (base ? 2 : 1) / t_fwd : 0;
    mean_se(nll, N, &r->nll_mean, &r->nll_se);
    r->ppl    = exp(r->nll_mean);
    r->ppl_se = r->ppl * r->nll_se;
    if (base) {
        r->has_base = true;
        mean_se(nllb, N, &r->base_nll_mean, &r->base_nll_se);
        r->base_ppl    = exp(r->base_nll_mean);
        r->base_ppl_se = r->base_ppl * r->base_nll_se;
        /* paired log-ratio and correlation, before nll/nllb are reused */
        double sxy = 0, sxx = 0, syy = 0;
        for (int64_t i = 0; i < N; i++) {
            const double a = nll[i] - r->nll_mean, b = nllb[i] - r->base_nll_mean;
            sxy += a * b, sxx += a * a, syy += b * b;
            nll[i] -= nllb[i];
        }
        r->nll_cor = (sxx > 0 && syy > 0) ? sxy / sqrt(sxx * syy) : 1.0;
        mean_se(nll, N, &r->ln_ratio_mean, &r->ln_ratio_se);
        r->ppl_ratio    = exp(r->ln_ratio_mean);
        r->ppl_ratio_se = r->ppl_ratio * r->ln_ratio_se;
        mean_se(kld, N, &r->kld_mean, &r->kld_se);
        qsort(kld, (size_t)N, sizeof *kld, cmp_double);
        r->kld_min    = kld[0];
        r->kld_p01    = pct(kld, N, 0.01);
        r->kld_p05    = pct(kld, N, 0.05);
        r->kld_p10    = pct(kld, N, 0.10);
        r->kld_median = pct(kld, N, 0.50);
        r->kld_p90    = pct(kld, N, 0.90);
        r->kld_p95    = pct(kld, N, 0.95);
        r->kld_p99    = pct(kld, N, 0.99);
        r->kld_p999   = pct(kld, N, 0.999);
        r->kld_max    = kld[N - 1];
        r->top1       = (double)same / (double)N;
        r->top1_se    = N > 1 ? sqrt(r->top1 * (1 - r->top1) / (double)(N - 1)) : 0;
        mean_se(dp, N, &r->dp_mean, &r->dp_se);
        double ss = 0;
        for (int64_t i = 0; i < N; i++) ss += dp[i] * dp[i];
        r->dp_rms = sqrt(ss / (double)N);
        qsort(dp, (size_t)N, sizeof *dp, cmp_double);
        r->dp_min    = dp[0];
        r->dp_p01    = pct(dp, N, 0.01);
        r->dp_median = pct(dp, N, 0.50);
        r->dp_p99    = pct(dp, N, 0.99);
        r->dp_max    = dp[N - 1];
    }
done:
    lq_free(lc);
    lq_free(lb);
    lq_free(pc);
    lq_free(pb);
    lq_free(nll);
    lq_free(nllb);
    lq_free(kld);
    lq_free(dp);
    lq_free(chunk);
    return st;
}
