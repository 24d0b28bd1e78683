/* block.c : one Llama-family decoder block on the CPU (see block_internal.h).
 *   h = rmsnorm(x); q,k,v = h·Wqᵀ(+b) ...; rope(q,k); append k,v to the
 *   cache; x += attention(q, cache)·Woᵀ(+b); h = rmsnorm(x);
 *   x += (silu(h·Wgᵀ) ⊙ h·Wuᵀ)·Wdᵀ */
#include "block_internal.h"
#include "lq_internal.h"

#include <string.h>

lq_status lq__block_scratch_alloc(lq__block_scratch *s, const lq_llama_weights *w, int64_t B) {
    memset(s, 0, sizeof *s);
    const int64_t QD = w->n_heads * w->head_dim, KVD = w->n_kv_heads * w->head_dim;
    s->xb  = lq_malloc((size_t)(B * LQ_MAX(w->dim, QD)) * sizeof(float));
    s->q   = lq_malloc((size_t)(B * QD) * sizeof(float));
    s->k   = lq_malloc((size_t)(B * KVD) * sizeof(float));
    s->v   = lq_malloc((size_t)(B * KVD) * sizeof(float));
    s->att = lq_malloc((size_t)(B * QD) * sizeof(float));
    s->ob  = lq_malloc((size_t)(B * w->dim) * sizeof(float));
    s->g   = lq_malloc((size_t)(B * w->hidden) * sizeof(float));
    s->u   = lq_malloc((size_t)(B * w->hidden) * sizeof(float));
    s->pos = lq_malloc((size_t)B * sizeof(int32_t));
    s->cap = B;
    if (!s->xb || !s->q || !s->k || !s->v || !s->att || !s->ob || !s->g || !s->u || !s->pos) {
        lq__block_scratch_free(s);
        LQ_RETURN_IF(1, LQ_ERR_NOMEM, "model: out of memory for the activations of %lld tokens", (long long)B);
    }
    return LQ_OK;
}

void lq__block_scratch_free(lq__block_scratch *s) {
    lq_free(s->xb);
    lq_free(s->q);
    lq_free(s->k);
    lq_free(s->v);
    lq_free(s->att);
    lq_free(s->ob);
    lq_free(s->g);
    lq_free(s->u);
    lq_free(s->pos);
    memset(s, 0, sizeof *s);
}

static void add_inplace(float *x, const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
}

lq_status lq__block_forward(const lq_llama_weights *w, const lq_llama_layer *y, float *x, int64_t n, int64_t pos0,
                            float *kc, float *vc, const lq__block_scratch *s, bool ref, int nt, lq__capture_fn cap,
                            void *user, int stop_after) {
    LQ_ASSERT(n <= s->cap);
    const int64_t D = w->dim, F = w->hidden, hd = w->head_dim, QD = w->n_heads * hd;
    const int64_t KVD = w->n_kv_heads * hd;
    for (int64_t t = 0; t < n; t++) s->pos[t] = (int32_t)(pos0 + t);
#define MATMUL(yy, xx, wt, b) \
    LQ_TRY(ref ? lq_matmul_ref((yy), (xx), n, (wt), (b)) : lq_matmul_cpu((yy), (xx), n, (wt), (b), nt))
#define CAPTURE(p, xx, cols)                                  \
    do {                                                      \
        if (cap) LQ_TRY(cap(user, (p), (xx), n, (cols)));     \
        if (stop_after == (int)(p)) return LQ_OK;             \
    } while (0)
    if (ref)
        lq_rmsnorm_ref(s->xb, x, &y->attn_norm, n, D, w->rms_eps);
    else
        lq_rmsnorm_cpu(s->xb, x, &y->attn_norm, n, D, w->rms_eps, nt);
    CAPTURE(LQ__CAP_QKV, s->xb, D);
    MATMUL(s->q, s->xb, &y->wq, y->bq);
    MATMUL(s->k, s->xb, &y->wk, y->bk);
    MATMUL(s->v, s->xb, &y->wv, y->bv);
    if (ref) {
        lq_rope_ref(s->q, s->pos, n, w->n_heads, hd, w->inv_freq, w->rope_neox);
        lq_rope_ref(s->k, s->pos, n, w->n_kv_heads, hd, w->inv_freq, w->rope_neox);
    } else {
        lq_rope_cpu(s->q, s->pos, n, w->n_heads, hd, w->inv_freq, w->rope_neox, nt);
        lq_rope_cpu(s->k, s->pos, n, w->n_kv_heads, hd, w->inv_freq, w->rope_neox, nt);
    }
    memcpy(kc + pos0 * KVD, s->k, (size_t)(n * KVD) * sizeof(float));
    memcpy(vc + pos0 * KVD, s->v, (size_t)(n * KVD) * sizeof(float));
    if (ref)
        lq_attention_ref(s->att, s->q, kc, vc, n, pos0, w->n_heads, w->n_kv_heads, hd, KVD);
    else
        LQ_TRY(lq_attention_cpu(s->att, s->q, kc, vc, n, pos0, w->n_heads, w->n_kv_heads, hd, KVD, nt));
    CAPTURE(LQ__CAP_O, s->att, QD);
    MATMUL(s->ob, s->att, &y->wo, y->bo);
    add_inplace(x, s->ob, n * D);
    if (ref)
        lq_rmsnorm_ref(s->xb, x, &y->ffn_norm, n, D, w->rms_eps);
    else
        lq_rmsnorm_cpu(s->xb, x, &y->ffn_norm, n, D, w->rms_eps, nt);
    CAPTURE(LQ__CAP_GATEUP, s->xb, D);
    MATMUL(s->g, s->xb, &y->w_gate, NULL);
    MATMUL(s->u, s->xb, &y->w_up, NULL);
    if (ref)
        lq_swiglu_ref(s->g, s->g, s->u, n * F);
    else
        lq_swiglu_cpu(s->g, s->g, s->u, n * F, nt);
    CAPTURE(LQ__CAP_DOWN, s->g, F);
    MATMUL(s->ob, s->g, &y->w_down, NULL);
    add_inplace(x, s->ob, n * D);
#undef CAPTURE
#undef MATMUL
    return LQ_OK;
}
