/* sensitivity.c : one group at a time quantized, the KL divergence of the
 * final logits measured by the runner (lq_sensitivity.h). */
#include "lq_sensitivity.h"

#include "block_internal.h"
#include "lq_internal.h"
#include "lq_kernels.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

lq_sens_params lq_sens_default_params(void) {
    lq_sens_params p;
    memset(&p, 0, sizeof p);
    p.qp = lq_quant_default_params();
    return p;
}

static const char *const ROLE[4]       = {"qkv", "o", "gateup", "down"};
static const char *const GROUP_SFX[4]  = {"self_attn.qkv", "self_attn.o_proj", "mlp.gateup", "mlp.down_proj"};
static const char *const MEMBERS[4][3] = {
    {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"},
    {"self_attn.o_proj.weight", NULL, NULL},
    {"mlp.gate_proj.weight", "mlp.up_proj.weight", NULL},
    {"mlp.down_proj.weight", NULL, NULL},
};

/* the lq_weight slots of group (layer, role) in the runner */
static int group_slots(lq_model *m, int64_t layer, int role, lq_weight **slots) {
    if (layer < 0) {
        lq_llama_weights *w = lq__model_weights_mut(m);
        slots[0]            = &w->embed;
        if (w->lm_head.data == w->embed.data) {
            slots[1] = &w->lm_head; /* tied: both views change together */
            return 2;
        }
        return 1;
    }
    lq_llama_layer *y = lq__model_layer_mut(m, layer);
    switch (role) {
    case 0: slots[0] = &y->wq; slots[1] = &y->wk; slots[2] = &y->wv; return 3;
    case 1: slots[0] = &y->wo; return 1;
    case 2: slots[0] = &y->w_gate; slots[1] = &y->w_up; return 2;
    default: slots[0] = &y->w_down; return 1;
    }
}

lq_status lq_sens_groups(const lq_model *m, bool include_embed, const lq_qtype *cands, int64_t n_cands,
                         lq_sens_table **out) {
    *out                      = NULL;
    const lq_llama_weights *w = lq__model_weights(m);
    const int64_t           G = w->n_layers * 4 + (include_embed ? 1 : 0);
    lq_sens_table          *t = NULL;
    LQ_TRY(lq_sens_table_new(G, n_cands, &t));
    lq_status st = LQ_OK;
    memcpy(t->cands, cands, (size_t)n_cands * sizeof *cands);
    for (int64_t g = 0; g < G; g++) {
        lq_mixed_group *gr = &t->groups[g];
        char            buf[256];
        if (g < w->n_layers * 4) {
            const int64_t l = g / 4;
            const int     r = (int)(g % 4);
            const lq_llama_layer *y = &w->layers[l];
            const lq_weight *ws[3] = {r == 0 ? &y->wq : r == 1 ? &y->wo : r == 2 ? &y->w_gate : &y->w_down,
                                      r == 0 ? &y->wk : r == 2 ? &y->w_up : NULL, r == 0 ? &y->wv : NULL};
            snprintf(buf, sizeof buf, "model.layers.%lld.%s", (long long)l, GROUP_SFX[r]);
            gr->name  = lq_strdup(buf);
            gr->role  = lq_strdup(ROLE[r]);
            gr->layer = (int32_t)l;
            int nm    = 0;
            while (nm < 3 && MEMBERS[r][nm]) nm++;
            gr->tensors = lq_calloc((size_t)nm, sizeof *gr->tensors);
            LQ_GOTO_IF(!gr->name || !gr->role || !gr->tensors, LQ_ERR_NOMEM, "sensitivity: out of memory");
            for (int j = 0; j < nm; j++) {
                snprintf(buf, sizeof buf, "model.layers.%lld.%s", (long long)l, MEMBERS[r][j]);
                gr->tensors[j] = lq_strdup(buf);
                LQ_GOTO_IF(!gr->tensors[j], LQ_ERR_NOMEM, "sensitivity: out of memory");
                gr->n_tensors++;
                gr->numel += ws[j]->rows * ws[j]->cols;
            }
        } else {
            const bool tied = w->lm_head.data == w->embed.data;
            gr->name        = lq_strdup("model.embed_tokens");
            gr->role        = lq_strdup("embed");
            gr->layer       = -1;
            gr->tensors     = lq_calloc(1, sizeof *gr->tensors);
            LQ_GOTO_IF(!gr->name || !gr->role || !gr->tensors, LQ_ERR_NOMEM, "sensitivity: out of memory");
            gr->tensors[0] = lq_strdup("model.embed_tokens.weight");
            LQ_GOTO_IF(!gr->tensors[0], LQ_ERR_NOMEM, "sensitivity: out of memory");
            gr->n_tensors = 1;
            gr->numel     = w->embed.rows * w->embed.cols;
            LQ_GOTO_IF(!tied, LQ_ERR_UNSUPPORTED,
                       "sensitivity: the embedding group needs a tied lm_head (untied models: measure the "
                       "decoder groups only)");
        }
    }
    *out = t;
    return LQ_OK;
done:
    lq_sens_table_free(t);
    return st;
}

/* a quantized (or converted) copy of one weight, owning its buffers */
typedef struct {
    lq_weight w;
    void     *data;
    float    *scales;
    uint8_t  *zeros;
} qcopy;

static void qcopy_free(qcopy *q) {
    lq_free(q->data);
    lq_free(q->scales);
    lq_free(q->zeros);
    memset(q, 0, sizeof *q);
}

static lq_status qcopy_make(const lq_weight *src, lq_qtype t, const lq_quant_params *qp, int nt, qcopy *q) {
    memset(q, 0, sizeof *q);
    const int64_t R = src->rows, C = src->cols;
    float        *f = lq_malloc((size_t)(R * C) * sizeof *f);
    LQ_RETURN_IF(!f, LQ_ERR_NOMEM, "sensitivity: out of memory");
    lq_status st = LQ_OK;
    for (int64_t r = 0; r < R && st == LQ_OK; r++) st = lq_weight_row_f32(src, r, f + r * C);
    if (st != LQ_OK) goto done;
    const lq_qtype_traits *tr = lq_qtype_traits_of(t);
    q->w                      = *src;
    q->w.perm                 = NULL;
    if (tr->kind == LQ_QK_KEEP) {
        uint64_t nb = 0;
        LQ_GOTO_IF(!lq_dtype_nbytes(tr->dtype, (uint64_t)(R * C), &nb), LQ_ERR_SHAPE, "sensitivity: matrix too large");
        q->data = lq_malloc((size_t)nb);
        LQ_GOTO_IF(!q->data, LQ_ERR_NOMEM, "sensitivity: out of memory");
        LQ_GOTO_TRY(lq_convert_cpu(tr->dtype, q->data, LQ_DTYPE_F32, f, R * C, nt));
        q->w.dtype  = tr->dtype;
        q->w.qtype  = LQ_QT_NONE;
        q->w.data   = q->data;
        q->w.scales = NULL;
        q->w.zeros  = NULL;
    } else {
        const uint64_t rb = lq_qtype_row_bytes(t, C);
        const int64_t  ns = lq_qtype_n_scales(t, R, C);
        q->data           = lq_malloc((size_t)(rb * (uint64_t)R) + 1);
        q->scales         = ns ? lq_malloc((size_t)ns * sizeof(float)) : NULL;
        q->zeros          = lq_qtype_has_zeros(t) ? lq_malloc((size_t)ns) : NULL;
        LQ_GOTO_IF(!q->data || (ns && !q->scales) || (lq_qtype_has_zeros(t) && !q->zeros), LQ_ERR_NOMEM,
                   "sensitivity: out of memory");
        LQ_GOTO_TRY(lq_quantize_cpu(t, LQ_DTYPE_F32, f, R, C, qp, q->data, q->scales, q->zeros, nt));
        q->w.qtype  = t;
        q->w.data   = q->data;
        q->w.scales = q->scales;
        q->w.zeros  = q->zeros;
    }
done:
    lq_free(f);
    if (st != LQ_OK) qcopy_free(q);
    return st;
}

/* sum over the L positions of one window of KL(base || q), both log-probabilities (L, V), in f64 */
static double window_kld(const float *lb, const float *lq, int64_t L, int64_t V) {
    double sum = 0;
    for (int64_t t = 0; t < L; t++) {
        double s = 0;
        for (int64_t v = 0; v < V; v++) {
            const double b = lb[t * V + v];
            s += exp(b) * (b - (double)lq[t * V + v]);
        }
        sum += s;
    }
    return sum;
}

/* mean KLD of the model's current weights against base log-probs */
static lq_status measure_kld(lq_model *m, const lq_calib_set *c, const float *base, float *lg, int nt, double *kld) {
    const int64_t V = lq__model_weights(m)->vocab, L = c->seq_len;
    double        sum = 0;
    for (int64_t k = 0; k < c->n_samples; k++) {
        LQ_TRY(lq_model_forward(m, c->tokens + k * L, L, 0, lg, false));
        lq_log_softmax_cpu(lg, lg, L, V, nt);
        sum += window_kld(base + k * L * V, lg, L, V);
    }
    *kld = sum / (double)(c->n_samples * L);
    return LQ_OK;
}

lq_status lq_sens_measure(lq_model *m, const lq_calib_set *c, const lq_sens_params *p_in, lq_sens_table *t) {
    const lq_sens_params p = p_in ? *p_in : lq_sens_default_params();
    LQ_RETURN_IF(lq_model_backend(m) != LQ_BACKEND_CPU, LQ_ERR_UNSUPPORTED,
                 "sensitivity: runs on the CPU backend (it swaps the runner's host weights)");
    LQ_RETURN_IF(!c || c->n_samples <= 0, LQ_ERR_INVALID_ARG, "sensitivity: no calibration windows");
    LQ_RETURN_IF(c->seq_len > lq_model_max_seq(m), LQ_ERR_INVALID_ARG,
                 "sensitivity: windows of %lld tokens exceed the model's context of %lld", (long long)c->seq_len,
                 (long long)lq_model_max_seq(m));
    const int64_t V = lq__model_weights(m)->vocab, L = c->seq_len, N = c->n_samples;
    float        *base = lq_malloc((size_t)(N * L * V) * sizeof *base);
    float        *lg   = lq_malloc((size_t)(L * V) * sizeof *lg);
    lq_status     st   = LQ_OK;
    LQ_GOTO_IF(!base || !lg, LQ_ERR_NOMEM,
               "sensitivity: out of memory for the base log-probabilities (%lld tokens x %lld vocab x 4 bytes)",
               (long long)(N * L), (long long)V);
    for (int64_t k = 0; k < N; k++) {
        LQ_GOTO_TRY(lq_model_forward(m, c->tokens + k * L, L, 0, base + k * L * V, false));
        lq_log_softmax_cpu(base + k * L * V, base + k * L * V, L, V, p.n_threads);
    }
    LQ_GOTO_TRY(measure_kld(m, c, base, lg, p.n_threads, &t->base_kld));
    lq_free(t->calib_sha256);
    t->calib_sha256 = lq_strdup(c->sha256);
    t->calib_tokens = N * L;
    int64_t total = 0, done_n = 0;
    for (int64_t i = 0; i < t->n_groups * t->n_cands; i++) total += t->bytes[i] != UINT64_MAX;
    for (int64_t g = 0; g < t->n_groups; g++) {
        const lq_mixed_group *gr = &t->groups[g];
        lq_weight            *slots[3];
        const int             ns = group_slots(m, gr->layer, (int)(g % 4), slots);
        const int             nq = gr->layer < 0 ? 1 : ns; /* tied embedding: one copy, two views */
        lq_weight             saved[3];
        for (int j = 0; j < ns; j++) saved[j] = *slots[j];
        for (int64_t ci = 0; ci < t->n_cands; ci++) {
            if (t->bytes[g * t->n_cands + ci] == UINT64_MAX) continue;
            qcopy q[3];
            memset(q, 0, sizeof q);
            for (int j = 0; j < nq && st == LQ_OK; j++) st = qcopy_make(&saved[j], t->cands[ci], &p.qp, p.n_threads, &q[j]);
            if (st == LQ_OK) {
                for (int j = 0; j < ns; j++) *slots[j] = q[gr->layer < 0 ? 0 : j].w;
                st = measure_kld(m, c, base, lg, p.n_threads, &t->kld[g * t->n_cands + ci]);
                for (int j = 0; j < ns; j++) *slots[j] = saved[j];
            }
            for (int j = 0; j < nq; j++) qcopy_free(&q[j]);
            if (st != LQ_OK) {
                LQ_LOG_ERR("sensitivity: %s at %s failed", gr->name, lq_qtype_name(t->cands[ci]));
                goto done;
            }
            LQ_LOG_DEBUG("sensitivity: %s %s: KLD %.6g", gr->name, lq_qtype_name(t->cands[ci]),
                         t->kld[g * t->n_cands + ci]);
            done_n++;
            if (p.progress && p.progress((float)done_n / (float)(total ? total : 1), "sensitivity", p.progress_user)) {
                LQ_LOG_ERR("sensitivity: interrupted");
                st = LQ_ERR_CANCELLED;
                goto done;
            }
        }
    }
done:
    lq_free(base);
    lq_free(lg);
    return st;
}

lq_status lq_sens_model_kld(lq_model *base, lq_model *q, const lq_calib_set *c, int n_threads, double *kld) {
    const int64_t V = lq__model_weights(base)->vocab, L = c->seq_len;
    LQ_RETURN_IF(lq__model_weights(q)->vocab != V, LQ_ERR_INVALID_ARG,
                 "kld: the models' vocabularies differ (%lld vs %lld)", (long long)V,
                 (long long)lq__model_weights(q)->vocab);
    float    *b  = lq_malloc((size_t)(L * V) * sizeof *b);
    float    *lg = lq_malloc((size_t)(L * V) * sizeof *lg);
    lq_status st = LQ_OK;
    double    sum = 0;
    LQ_GOTO_IF(!b || !lg, LQ_ERR_NOMEM, "kld: out of memory");
    for (int64_t k = 0; k < c->n_samples; k++) {
        LQ_GOTO_TRY(lq_model_forward(base, c->tokens + k * L, L, 0, b, false));
        LQ_GOTO_TRY(lq_model_forward(q, c->tokens + k * L, L, 0, lg, false));
        lq_log_softmax_cpu(b, b, L, V, n_threads);
        lq_log_softmax_cpu(lg, lg, L, V, n_threads);
        sum += window_kld(b, lg, L, V);
    }
    *kld = sum / (double)(c->n_samples * L);
done:
    lq_free(b);
    lq_free(lg);
    return st;
}
