/* block.c : one Llama-family decoder block (see block_internal.h), on the
 * CPU (`_cpu` or `_ref` ops) or on the device (lq_cuda_* ops), through one
 * body over a small op table:
 *   h = rmsnorm(x); q,k,v = h·Wqᵀ(+b) ...; rope(q,k); append k,v to the
 *   cache; x += attention(q, cache)·Woᵀ(+b); h = rmsnorm(x);
 *   x += (silu(h·Wgᵀ) ⊙ h·Wuᵀ)·Wdᵀ */
#include "block_internal.h"
#include "lq_internal.h"

#include <string.h>

typedef struct {
    bool ref;
    int  nt;
} cpu_ctx;

typedef struct {
    lq_status (*rmsnorm)(const cpu_ctx *c, float *y, const float *x, const lq_weight *w, int64_t n, int64_t dim,
                         float eps);
    lq_status (*matmul)(const cpu_ctx *c, float *y, const float *x, int64_t n, const lq_weight *w, const float *b);
    lq_status (*rope)(const cpu_ctx *c, float *x, const int32_t *pos, int64_t n, int64_t heads, int64_t hd,
                      const float *inv, bool neox);
    lq_status (*copy)(float *dst, const float *src, int64_t n);
    lq_status (*attention)(const cpu_ctx *c, float *out, const float *q, const float *kc, const float *vc, int64_t n,
                           int64_t pos0, int64_t h, int64_t kvh, int64_t hd, int64_t kvd);
    lq_status (*swiglu)(const cpu_ctx *c, float *out, const float *g, const float *u, int64_t n);
    lq_status (*add)(const cpu_ctx *c, float *y, const float *x, int64_t n);
} block_ops;

/* ---- CPU ---- */
static lq_status c_rmsnorm(const cpu_ctx *c, float *y, const float *x, const lq_weight *w, int64_t n, int64_t dim,
                           float eps) {
    if (c->ref)
        lq_rmsnorm_ref(y, x, w, n, dim, eps);
    else
        lq_rmsnorm_cpu(y, x, w, n, dim, eps, c->nt);
    return LQ_OK;
}
static lq_status c_matmul(const cpu_ctx *c, float *y, const float *x, int64_t n, const lq_weight *w, const float *b) {
    return c->ref ? lq_matmul_ref(y, x, n, w, b) : lq_matmul_cpu(y, x, n, w, b, c->nt);
}
static lq_status c_rope(const cpu_ctx *c, float *x, const int32_t *pos, int64_t n, int64_t heads, int64_t hd,
                        const float *inv, bool neox) {
    if (c->ref)
        lq_rope_ref(x, pos, n, heads, hd, inv, neox);
    else
        lq_rope_cpu(x, pos, n, heads, hd, inv, neox, c->nt);
    return LQ_OK;
}
static lq_status c_copy(float *dst, const float *src, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
    return LQ_OK;
}
static lq_status c_attention(const cpu_ctx *c, float *out, const float *q, const float *kc, const float *vc, int64_t n,
                             int64_t pos0, int64_t h, int64_t kvh, int64_t hd, int64_t kvd) {
    if (!c->ref) return lq_attention_cpu(out, q, kc, vc, n, pos0, h, kvh, hd, kvd, c->nt);
    lq_attention_ref(out, q, kc, vc, n, pos0, h, kvh, hd, kvd);
    return LQ_OK;
}
static lq_status c_swiglu(const cpu_ctx *c, float *out, const float *g, const float *u, int64_t n) {
    if (c->ref)
        lq_swiglu_ref(out, g, u, n);
    else
        lq_swiglu_cpu(out, g, u, n, c->nt);
    return LQ_OK;
}
static lq_status c_add(const cpu_ctx *c, float *y, const float *x, int64_t n) {
    (void)c;
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
    return LQ_OK;
}
static const block_ops CPU_OPS = {c_rmsnorm, c_matmul, c_rope, c_copy, c_attention, c_swiglu, c_add};

/* ---- CUDA (device pointers) ---- */
static lq_status d_rmsnorm(const cpu_ctx *c, float *y, const float *x, const lq_weight *w, int64_t n, int64_t dim,
                           float eps) {
    (void)c;
    return lq_cuda_rmsnorm(y, x, w, n, dim, eps);
}
static lq_status d_matmul(const cpu_ctx *c, float *y, const float *x, int64_t n, const lq_weight *w, const float *b) {
    (void)c;
    return lq_cuda_matmul(y, x, n, w, b);
}
static lq_status d_rope(const cpu_ctx *c, float *x, const int32_t *pos, int64_t n, int64_t heads, int64_t hd,
                        const float *inv, bool neox) {
    (void)c;
    return lq_cuda_rope(x, pos, n, heads, hd, inv, neox);
}
static lq_status d_copy(float *dst, const float *src, int64_t n) {
    return lq_cuda_memcpy_d2d(dst, src, (size_t)n * sizeof(float));
}
static lq_status d_attention(const cpu_ctx *c, float *out, const float *q, const float *kc, const float *vc, int64_t n,
                             int64_t pos0, int64_t h, int64_t kvh, int64_t hd, int64_t kvd) {
    (void)c;
    return lq_cuda_attention(out, q, kc, vc, n, pos0, h, kvh, hd, kvd);
}
static lq_status d_swiglu(const cpu_ctx *c, float *out, const float *g, const float *u, int64_t n) {
    (void)c;
    return lq_cuda_swiglu(out, g, u, n);
}
static lq_status d_add(const cpu_ctx *c, float *y, const float *x, int64_t n) {
    (void)c;
    return lq_cuda_add(y, x, n);
}
static const block_ops CUDA_OPS = {d_rmsnorm, d_matmul, d_rope, d_copy, d_attention, d_swiglu, d_add};

/* ---- scratch ---- */
static lq_status scratch_alloc(lq__block_scratch *s, const lq_llama_weights *w, int64_t B, bool dev) {
    memset(s, 0, sizeof *s);
    s->on_device     = dev;
    const int64_t QD = w->n_heads * w->head_dim, KVD = w->n_kv_heads * w->head_dim;
    const size_t  sizes[9] = {(size_t)(B * LQ_MAX(w->dim, QD)), (size_t)(B * QD),         (size_t)(B * KVD),
                              (size_t)(B * KVD),                (size_t)(B * QD),         (size_t)(B * w->dim),
                              (size_t)(B * w->hidden),          (size_t)(B * w->hidden),  (size_t)B};
    void        **ptrs[9] = {(void **)&s->xb, (void **)&s->q,  (void **)&s->k, (void **)&s->v,  (void **)&s->att,
                             (void **)&s->ob, (void **)&s->g, (void **)&s->u, (void **)&s->pos};
    s->cap                = B;
    for (int i = 0; i < 9; i++) {
        const size_t bytes = sizes[i] * 4; /* f32 and int32 */
        if (dev) {
            if (lq_cuda_malloc(ptrs[i], bytes) != LQ_OK) *ptrs[i] = NULL;
        } else {
            *ptrs[i] = lq_malloc(bytes);
        }
        if (!*ptrs[i]) {
            lq__block_scratch_free(s);
            LQ_RETURN_IF(1, LQ_ERR_NOMEM, "model: out of %s memory for the activations of %lld tokens",
                         dev ? "device" : "host", (long long)B);
        }
    }
    return LQ_OK;
}

lq_status lq__block_scratch_alloc(lq__block_scratch *s, const lq_llama_weights *w, int64_t B) {
    return scratch_alloc(s, w, B, false);
}
lq_status lq__block_scratch_alloc_cuda(lq__block_scratch *s, const lq_llama_weights *w, int64_t B) {
    return scratch_alloc(s, w, B, true);
}

void lq__block_scratch_free(lq__block_scratch *s) {
    void *ptrs[9] = {s->xb, s->q, s->k, s->v, s->att, s->ob, s->g, s->u, s->pos};
    for (int i = 0; i < 9; i++) {
        if (!ptrs[i]) continue;
        if (s->on_device)
            lq_cuda_free(ptrs[i]);
        else
            lq_free(ptrs[i]);
    }
    memset(s, 0, sizeof *s);
}

/* ---- the block ---- */
static lq_status forward(const block_ops *op, const cpu_ctx *c, const lq_llama_weights *w, const lq_llama_layer *y,
                         const float *inv_freq, float *x, int64_t n, int64_t pos0, float *kc, float *vc,
                         const lq__block_scratch *s, lq__capture_fn cap, void *user, int stop_after) {
    LQ_ASSERT(n <= s->cap);
    const int64_t D = w->dim, F = w->hidden, hd = w->head_dim, QD = w->n_heads * hd;
    const int64_t KVD = w->n_kv_heads * hd;
#define CAPTURE(p, xx, cols)                                  \
    do {                                                      \
        if (cap) LQ_TRY(cap(user, (p), (xx), n, (cols)));     \
        if (stop_after == (int)(p)) return LQ_OK;             \
    } while (0)
    LQ_TRY(op->rmsnorm(c, s->xb, x, &y->attn_norm, n, D, w->rms_eps));
    CAPTURE(LQ__CAP_QKV, s->xb, D);
    LQ_TRY(op->matmul(c, s->q, s->xb, n, &y->wq, y->bq));
    LQ_TRY(op->matmul(c, s->k, s->xb, n, &y->wk, y->bk));
    LQ_TRY(op->matmul(c, s->v, s->xb, n, &y->wv, y->bv));
    LQ_TRY(op->rope(c, s->q, s->pos, n, w->n_heads, hd, inv_freq, w->rope_neox));
    LQ_TRY(op->rope(c, s->k, s->pos, n, w->n_kv_heads, hd, inv_freq, w->rope_neox));
    LQ_TRY(op->copy(kc + pos0 * KVD, s->k, n * KVD));
    LQ_TRY(op->copy(vc + pos0 * KVD, s->v, n * KVD));
    LQ_TRY(op->attention(c, s->att, s->q, kc, vc, n, pos0, w->n_heads, w->n_kv_heads, hd, KVD));
    CAPTURE(LQ__CAP_O, s->att, QD);
    LQ_TRY(op->matmul(c, s->ob, s->att, n, &y->wo, y->bo));
    LQ_TRY(op->add(c, x, s->ob, n * D));
    LQ_TRY(op->rmsnorm(c, s->xb, x, &y->ffn_norm, n, D, w->rms_eps));
    CAPTURE(LQ__CAP_GATEUP, s->xb, D);
    LQ_TRY(op->matmul(c, s->g, s->xb, n, &y->w_gate, NULL));
    LQ_TRY(op->matmul(c, s->u, s->xb, n, &y->w_up, NULL));
    LQ_TRY(op->swiglu(c, s->g, s->g, s->u, n * F));
    CAPTURE(LQ__CAP_DOWN, s->g, F);
    LQ_TRY(op->matmul(c, s->ob, s->g, n, &y->w_down, NULL));
    LQ_TRY(op->add(c, x, s->ob, n * D));
#undef CAPTURE
    return LQ_OK;
}

lq_status lq__block_forward(const lq_llama_weights *w, const lq_llama_layer *y, float *x, int64_t n, int64_t pos0,
                            float *kc, float *vc, const lq__block_scratch *s, bool ref, int nt, lq__capture_fn cap,
                            void *user, int stop_after) {
    for (int64_t t = 0; t < n; t++) s->pos[t] = (int32_t)(pos0 + t);
    const cpu_ctx c = {ref, nt};
    return forward(&CPU_OPS, &c, w, y, w->inv_freq, x, n, pos0, kc, vc, s, cap, user, stop_after);
}

lq_status lq__block_forward_cuda(const lq_llama_weights *w, const lq_llama_layer *y, const float *inv_freq, float *x,
                                 int64_t n, int64_t pos0, float *kc, float *vc, const lq__block_scratch *s,
                                 lq__capture_fn cap, void *user, int stop_after) {
    int32_t *pos = lq_malloc((size_t)n * sizeof *pos);
    LQ_RETURN_IF(!pos, LQ_ERR_NOMEM, "model: out of memory");
    for (int64_t t = 0; t < n; t++) pos[t] = (int32_t)(pos0 + t);
    const lq_status st = lq_cuda_memcpy_h2d(s->pos, pos, (size_t)n * sizeof *pos);
    lq_free(pos);
    LQ_TRY(st);
    const cpu_ctx c = {false, 0};
    return forward(&CUDA_OPS, &c, w, y, inv_freq, x, n, pos0, kc, vc, s, cap, user, stop_after);
}
