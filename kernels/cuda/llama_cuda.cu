/* llama_cuda.cu : lq_cuda_llama_init/forward/free, a whole Llama-family
 * forward pass (llama, mistral, qwen2) on the device.
 *
 * The weights go up once, in their stored dtype (an F16 model stays F16;
 * quantized matrices stay packed, with their scales and zero points;
 * biases and inv_freq are f32), into one device allocation; the KV cache
 * (f32, (n_layers, max_seq, kv_dim) for keys and for values), the
 * activations and the matmul scratch share a second one. A forward call is
 * one host-to-device copy of the token ids, the kernels of
 * llama_ops_cuda.cu / matmul_cuda.cu back to back on the default stream, and
 * one device-to-host copy of the logits, which is also the only
 * synchronization. The sequence per layer is the one of lq_model's CPU path
 * (libquant/model.c): rmsnorm, q/k/v (k and v written straight into the
 * cache rows pos0.., then q and k roped in one launch), attention, o with
 * the residual add fused (x += att · Woᵀ), rmsnorm, gate/up, SwiGLU, down
 * (x += h · Wdᵀ). Per decoded token and layer: 2 rmsnorm, 4 activation
 * roundings (F16/BF16), 7 GEMV, rope, attention, SwiGLU. Not thread-safe
 * per model. */
#include "llama_cuda_internal.cuh"

#include <limits.h>
#include <stdint.h>
#include <string.h>

#define DEV_ALIGN 256 /* every buffer in the two allocations starts 256-byte aligned */

struct lq_cuda_llama {
    lq_llama_weights w;        /* the model's shapes; every pointer a device pointer */
    lq_llama_layer  *layers;   /* n_layers (host array of device pointers)           */
    int64_t          max_seq, max_batch;
    cublasHandle_t   blas;
    void            *wbuf;     /* device: weights, biases, inv_freq                  */
    size_t           wbytes;
    void            *abuf;     /* device: KV cache, activations, scratch             */
    size_t           abytes;
    float           *k_cache;  /* (n_layers, max_seq, kv_dim)                        */
    float           *v_cache;  /* (n_layers, max_seq, kv_dim)                        */
    float           *x;        /* (max_batch, dim) residual stream                   */
    float           *xb;       /* (max_batch, dim) normed input of a matmul group    */
    float           *q;        /* (max_batch, n_heads * head_dim)                    */
    float           *att;      /* (max_batch, n_heads * head_dim) attention output   */
    float           *hg, *hu;  /* (max_batch, hidden) gate (then SwiGLU) and up      */
    float           *logits;   /* (max_batch, vocab)                                 */
    void            *scratch;  /* activations rounded for F16/BF16 matmuls           */
    int32_t         *tokens;   /* (max_batch)                                        */
    lq_cuda_capture_fn cap;    /* statistics hook (lq_cuda_llama_set_capture) or NULL */
    void              *cap_user;
};

extern "C" void lq_cuda_llama_set_capture(lq_cuda_llama *m, lq_cuda_capture_fn fn, void *user) {
    m->cap      = fn;
    m->cap_user = user;
}

/* ---- device memory layout: the same code sizes (base == NULL) and places ---- */

typedef struct {
    char  *base;
    size_t off;
    bool   overflow;
} arena;

/* `count` elements of `esize` bytes; NULL while sizing */
static void *arena_take(arena *a, int64_t count, size_t esize) {
    size_t bytes = 0, start = 0, end = 0;
    if (count < 0 || !lq__mul_size((size_t)count, esize, &bytes) || !lq__add_size(a->off, DEV_ALIGN - 1, &start) ||
        !lq__add_size(start / DEV_ALIGN * DEV_ALIGN, bytes, &end)) {
        a->overflow = true;
        return NULL;
    }
    start  = start / DEV_ALIGN * DEV_ALIGN;
    a->off = end;
    return a->base ? a->base + start : NULL;
}

static size_t wt_esize(lq_dtype t) { return t == LQ_DTYPE_F32 ? 4 : 2; }

/* a quantized weight: rows x lq_qtype_row_bytes of packed rows, then its
 * lq_qtype_n_scales f32 scales and (asym) rows x n_groups zero points */
static lq_status place_quantized(arena *a, const lq_weight *src, lq_weight *dst) {
    const uint64_t rb = lq_qtype_row_bytes(src->qtype, src->cols);
    const int64_t  ns = lq_qtype_n_scales(src->qtype, src->rows, src->cols);
    const int64_t  nz = lq_qtype_has_zeros(src->qtype) ? src->rows * lq_qtype_n_groups(src->qtype, src->cols) : 0;
    uint64_t       bytes = 0;
    if (!lq__mul_u64(rb, (uint64_t)src->rows, &bytes) || bytes > (uint64_t)INT64_MAX) {
        a->overflow = true;
        return LQ_OK;
    }
    dst->data   = arena_take(a, (int64_t)bytes, 1);
    dst->scales = ns > 0 ? static_cast<const float *>(arena_take(a, ns, sizeof(float))) : NULL;
    dst->zeros  = nz > 0 ? static_cast<const uint8_t *>(arena_take(a, nz, 1)) : NULL;
    if (dst->data)
        LQ_CUDA_TRY(cudaMemcpy(const_cast<void *>(dst->data), src->data, (size_t)bytes, cudaMemcpyHostToDevice));
    if (dst->scales)
        LQ_CUDA_TRY(cudaMemcpy(const_cast<float *>(dst->scales), src->scales, (size_t)ns * sizeof(float),
                               cudaMemcpyHostToDevice));
    if (dst->zeros)
        LQ_CUDA_TRY(cudaMemcpy(const_cast<uint8_t *>(dst->zeros), src->zeros, (size_t)nz, cudaMemcpyHostToDevice));
    dst->perm = src->perm ? static_cast<const int32_t *>(arena_take(a, src->cols, sizeof(int32_t))) : NULL;
    if (dst->perm)
        LQ_CUDA_TRY(cudaMemcpy(const_cast<int32_t *>(dst->perm), src->perm, (size_t)src->cols * sizeof(int32_t),
                               cudaMemcpyHostToDevice));
    return LQ_OK;
}

/* dst = src with its data placed (and, when placing, uploaded) */
static lq_status place_weight(arena *a, const lq_weight *src, lq_weight *dst) {
    *dst = *src;
    if (lq__cuda_is_quantized(src)) return place_quantized(a, src, dst);
    const lq_dtype dt    = lq__cuda_plain_view(src).dtype; /* KEEP types are plain */
    const int64_t  count = src->rows * src->cols;          /* no overflow: checked by check_model */
    dst->data            = arena_take(a, count, wt_esize(dt));
    if (dst->data)
        LQ_CUDA_TRY(cudaMemcpy(const_cast<void *>(dst->data), src->data, (size_t)count * wt_esize(dt),
                               cudaMemcpyHostToDevice));
    return LQ_OK;
}

/* an optional f32 vector (bias, inv_freq): NULL stays NULL */
static lq_status place_f32(arena *a, const float *src, int64_t n, const float **dst) {
    *dst = NULL;
    if (!src) return LQ_OK;
    float *const d = static_cast<float *>(arena_take(a, n, sizeof(float)));
    if (d) LQ_CUDA_TRY(cudaMemcpy(d, src, (size_t)n * sizeof(float), cudaMemcpyHostToDevice));
    *dst = d;
    return LQ_OK;
}

static bool same_weight(const lq_weight *a, const lq_weight *b) {
    return a->data == b->data && a->qtype == b->qtype && (a->qtype != LQ_QT_NONE || a->dtype == b->dtype) &&
           a->scales == b->scales && a->zeros == b->zeros && a->perm == b->perm && a->rows == b->rows &&
           a->cols == b->cols;
}

/* the matmuls of b and a prepare x the same way (the scratch can be reused) */
static bool same_prep(const lq_weight *a, const lq_weight *b) {
    return a->qtype == b->qtype && (a->qtype != LQ_QT_NONE || a->dtype == b->dtype) && !a->perm && !b->perm &&
           a->in_scale == b->in_scale;
}

static lq_status layout_weights(lq_cuda_llama *m, const lq_llama_weights *w, arena *a) {
    const int64_t QD = w->n_heads * w->head_dim, KVD = w->n_kv_heads * w->head_dim;
    LQ_TRY(place_weight(a, &w->embed, &m->w.embed));
    if (same_weight(&w->lm_head, &w->embed)) m->w.lm_head = m->w.embed; /* tied: one copy */
    else LQ_TRY(place_weight(a, &w->lm_head, &m->w.lm_head));
    LQ_TRY(place_weight(a, &w->norm, &m->w.norm));
    LQ_TRY(place_f32(a, w->inv_freq, w->head_dim / 2, &m->w.inv_freq));
    for (int64_t l = 0; l < w->n_layers; l++) {
        const lq_llama_layer *s = &w->layers[l];
        lq_llama_layer       *d = &m->layers[l];
        LQ_TRY(place_weight(a, &s->attn_norm, &d->attn_norm));
        LQ_TRY(place_weight(a, &s->wq, &d->wq));
        LQ_TRY(place_weight(a, &s->wk, &d->wk));
        LQ_TRY(place_weight(a, &s->wv, &d->wv));
        LQ_TRY(place_weight(a, &s->wo, &d->wo));
        LQ_TRY(place_weight(a, &s->ffn_norm, &d->ffn_norm));
        LQ_TRY(place_weight(a, &s->w_gate, &d->w_gate));
        LQ_TRY(place_weight(a, &s->w_up, &d->w_up));
        LQ_TRY(place_weight(a, &s->w_down, &d->w_down));
        LQ_TRY(place_f32(a, s->bq, QD, &d->bq));
        LQ_TRY(place_f32(a, s->bk, KVD, &d->bk));
        LQ_TRY(place_f32(a, s->bv, KVD, &d->bv));
        LQ_TRY(place_f32(a, s->bo, w->dim, &d->bo));
    }
    return LQ_OK;
}

/* the matmul scratch: the largest rounded input of any matmul, for n = 1 or max_batch rows */
static size_t scratch_for(const lq_cuda_llama *m, const lq_weight *w, size_t max) {
    const size_t b1 = lq__cuda_matmul_scratch_bytes(1, w), bn = lq__cuda_matmul_scratch_bytes(m->max_batch, w);
    return LQ_MAX(max, LQ_MAX(b1, bn));
}

static size_t scratch_bytes(const lq_cuda_llama *m) {
    size_t max = scratch_for(m, &m->w.lm_head, 0);
    for (int64_t l = 0; l < m->w.n_layers; l++) {
        const lq_llama_layer *y = &m->layers[l];
        const lq_weight *const all[] = {&y->wq, &y->wk, &y->wv, &y->wo, &y->w_gate, &y->w_up, &y->w_down};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) max = scratch_for(m, all[i], max);
    }
    return max;
}

static void layout_acts(lq_cuda_llama *m, arena *a) {
    const lq_llama_weights *w  = &m->w;
    const int64_t           B  = m->max_batch;
    const int64_t           QD = w->n_heads * w->head_dim, KVD = w->n_kv_heads * w->head_dim;
    int64_t                 cache = 0;
    if (__builtin_mul_overflow(w->n_layers, m->max_seq, &cache) || __builtin_mul_overflow(cache, KVD, &cache))
        a->overflow = true;
    m->k_cache = static_cast<float *>(arena_take(a, cache, sizeof(float)));
    m->v_cache = static_cast<float *>(arena_take(a, cache, sizeof(float)));
    m->x       = static_cast<float *>(arena_take(a, B * w->dim, sizeof(float)));
    m->xb      = static_cast<float *>(arena_take(a, B * w->dim, sizeof(float)));
    m->q       = static_cast<float *>(arena_take(a, B * QD, sizeof(float)));
    m->att     = static_cast<float *>(arena_take(a, B * QD, sizeof(float)));
    m->hg      = static_cast<float *>(arena_take(a, B * w->hidden, sizeof(float)));
    m->hu      = static_cast<float *>(arena_take(a, B * w->hidden, sizeof(float)));
    m->logits  = static_cast<float *>(arena_take(a, B * w->vocab, sizeof(float)));
    m->scratch = arena_take(a, (int64_t)scratch_bytes(m), 1);
    m->tokens  = static_cast<int32_t *>(arena_take(a, B, sizeof(int32_t)));
}

/* ---- validation ---- */

/* rows == 0: a vector of `cols` values (any rows x cols with that product) */
static lq_status check_weight(const lq_weight *t, int64_t rows, int64_t cols, const char *what, int64_t layer) {
    if (t->qtype != LQ_QT_NONE) { /* quantized or KEEP: matrices only */
        LQ_RETURN_IF(rows == 0, LQ_ERR_UNSUPPORTED, "cuda llama: %s (layer %lld) is %s; norms must be plain", what,
                     (long long)layer, lq_qtype_name(t->qtype));
        LQ_TRY(lq__cuda_qweight_ok(t, what));
    } else {
        LQ_RETURN_IF(lq__cuda_wt_code(t->dtype) < 0, LQ_ERR_UNSUPPORTED,
                     "cuda llama: %s (layer %lld) is %s; F32, F16 or BF16 expected", what, (long long)layer,
                     lq_dtype_name(t->dtype));
    }
    LQ_RETURN_IF(t->data == NULL, LQ_ERR_INVALID_ARG, "cuda llama: %s (layer %lld) has no data", what,
                 (long long)layer);
    const bool ok = rows == 0 ? (t->rows >= 1 && t->cols >= 1 && t->rows <= cols && t->cols <= cols &&
                                 t->rows * t->cols == cols)
                              : (t->rows == rows && t->cols == cols);
    LQ_RETURN_IF(!ok, LQ_ERR_SHAPE, "cuda llama: %s (layer %lld) is (%lld, %lld), expected (%lld, %lld)", what,
                 (long long)layer, (long long)t->rows, (long long)t->cols, (long long)(rows ? rows : 1),
                 (long long)cols);
    return LQ_OK;
}

static lq_status check_model(const lq_llama_weights *w, int64_t max_seq, int64_t max_batch) {
    LQ_RETURN_IF(w == NULL, LQ_ERR_INVALID_ARG, "cuda llama: NULL weights");
    LQ_RETURN_IF(w->dim < 1 || w->hidden < 1 || w->n_layers < 0 || w->vocab < 1 || w->dim > INT_MAX ||
                     w->hidden > INT_MAX || w->vocab > INT_MAX || w->n_layers > INT_MAX,
                 LQ_ERR_SHAPE, "cuda llama: dim %lld, hidden %lld, %lld layers, vocab %lld", (long long)w->dim,
                 (long long)w->hidden, (long long)w->n_layers, (long long)w->vocab);
    LQ_RETURN_IF(w->n_heads < 1 || w->n_kv_heads < 1 || w->n_heads % w->n_kv_heads != 0 || w->head_dim < 2 ||
                     w->head_dim % 2 != 0 || w->n_heads > INT_MAX / w->head_dim,
                 LQ_ERR_SHAPE, "cuda llama: %lld heads, %lld kv heads, head_dim %lld", (long long)w->n_heads,
                 (long long)w->n_kv_heads, (long long)w->head_dim);
    LQ_RETURN_IF(w->head_dim > LQ__ATT_MAX_HEAD_DIM, LQ_ERR_UNSUPPORTED,
                 "cuda llama: head_dim %lld is above the attention kernel's %d", (long long)w->head_dim,
                 LQ__ATT_MAX_HEAD_DIM);
    LQ_RETURN_IF(max_seq < 1 || max_seq > INT32_MAX || max_batch < 1 || max_batch > INT_MAX / w->n_heads,
                 LQ_ERR_INVALID_ARG, "cuda llama: max_seq %lld, max_batch %lld", (long long)max_seq,
                 (long long)max_batch);
    LQ_RETURN_IF(w->inv_freq == NULL || (w->n_layers > 0 && w->layers == NULL), LQ_ERR_INVALID_ARG,
                 "cuda llama: NULL inv_freq or layers");
    const int64_t D = w->dim, F = w->hidden, QD = w->n_heads * w->head_dim, KVD = w->n_kv_heads * w->head_dim;
    LQ_TRY(check_weight(&w->embed, w->vocab, D, "embed", -1));
    LQ_TRY(check_weight(&w->lm_head, w->vocab, D, "lm_head", -1));
    LQ_TRY(check_weight(&w->norm, 0, D, "norm", -1));
    for (int64_t l = 0; l < w->n_layers; l++) {
        const lq_llama_layer *y = &w->layers[l];
        LQ_TRY(check_weight(&y->attn_norm, 0, D, "attn_norm", l));
        LQ_TRY(check_weight(&y->wq, QD, D, "wq", l));
        LQ_TRY(check_weight(&y->wk, KVD, D, "wk", l));
        LQ_TRY(check_weight(&y->wv, KVD, D, "wv", l));
        LQ_TRY(check_weight(&y->wo, D, QD, "wo", l));
        LQ_TRY(check_weight(&y->ffn_norm, 0, D, "ffn_norm", l));
        LQ_TRY(check_weight(&y->w_gate, F, D, "w_gate", l));
        LQ_TRY(check_weight(&y->w_up, F, D, "w_up", l));
        LQ_TRY(check_weight(&y->w_down, D, F, "w_down", l));
    }
    return LQ_OK;
}

/* ---- the model ---- */

extern "C" void lq_cuda_llama_free(lq_cuda_llama *m) {
    if (!m) return;
    if (m->blas) {
        const cublasStatus_t s = cublasDestroy(m->blas);
        if (s != CUBLAS_STATUS_SUCCESS) LQ_LOG_WARN("cublasDestroy: %s", cublasGetStatusString(s));
    }
    void *const bufs[2] = {m->wbuf, m->abuf};
    for (int i = 0; i < 2; i++) {
        const cudaError_t e = cudaFree(bufs[i]);
        if (e != cudaSuccess) {
            LQ_LOG_WARN("cudaFree: %s", cudaGetErrorString(e));
            (void)cudaGetLastError();
        }
    }
    lq_free(m->layers);
    lq_free(m);
}

static lq_status init_model(lq_cuda_llama *m, const lq_llama_weights *w, int64_t max_seq, int64_t max_batch) {
    m->w         = *w;
    m->max_seq   = max_seq;
    m->max_batch = max_batch;
    m->layers    = static_cast<lq_llama_layer *>(lq_calloc((size_t)LQ_MAX(w->n_layers, 1), sizeof *m->layers));
    LQ_RETURN_IF(!m->layers, LQ_ERR_NOMEM, "cuda llama: out of memory");
    m->w.layers = m->layers;

    arena a = {NULL, 0, false};
    LQ_TRY(layout_weights(m, w, &a));
    LQ_RETURN_IF(a.overflow, LQ_ERR_NOMEM, "cuda llama: weight size overflows");
    m->wbytes = a.off;
    LQ_CUDA_TRY(cudaMalloc(&m->wbuf, m->wbytes));
    a = arena{static_cast<char *>(m->wbuf), 0, false};
    LQ_TRY(layout_weights(m, w, &a)); /* uploads */

    a = arena{NULL, 0, false};
    layout_acts(m, &a);
    LQ_RETURN_IF(a.overflow, LQ_ERR_NOMEM, "cuda llama: KV cache size overflows (max_seq %lld)", (long long)max_seq);
    m->abytes = a.off;
    LQ_CUDA_TRY(cudaMalloc(&m->abuf, m->abytes));
    LQ_CUDA_TRY(cudaMemset(m->abuf, 0, m->abytes));
    a = arena{static_cast<char *>(m->abuf), 0, false};
    layout_acts(m, &a);

    LQ_TRY(lq__cuda_blas_create(&m->blas));
    LQ_CUDA_TRY(cudaStreamSynchronize(0));
    LQ_LOG_DEBUG("cuda llama: %zu bytes of weights, %zu bytes of KV cache and activations", m->wbytes, m->abytes);
    return LQ_OK;
}

extern "C" lq_status lq_cuda_llama_init(const lq_llama_weights *w, int64_t max_seq, int64_t max_batch,
                                        lq_cuda_llama **out) {
    LQ_RETURN_IF(out == NULL, LQ_ERR_INVALID_ARG, "cuda llama: NULL out");
    *out = NULL;
    LQ_TRY(check_model(w, max_seq, max_batch));
    lq_cuda_llama *m = static_cast<lq_cuda_llama *>(lq_calloc(1, sizeof *m));
    LQ_RETURN_IF(!m, LQ_ERR_NOMEM, "cuda llama: out of memory");
    const lq_status st = init_model(m, w, max_seq, max_batch);
    if (st != LQ_OK) {
        lq_cuda_llama_free(m);
        return st;
    }
    *out = m;
    return LQ_OK;
}

/* q/k/v and gate/up read the same input: the second and third matmul of a
 * group reuse the rounded input when the weight dtype is the same */
static lq_status matmul(lq_cuda_llama *m, float *y, const float *x, int64_t n, const lq_weight *w, const float *bias,
                        bool reuse) {
    return lq__cuda_matmul(m->blas, y, x, n, w, bias, m->scratch, reuse, false);
}

/* y += x · wᵀ (+ bias): o_proj and down_proj with the residual add fused */
static lq_status matmul_add(lq_cuda_llama *m, float *y, const float *x, int64_t n, const lq_weight *w,
                            const float *bias) {
    return lq__cuda_matmul(m->blas, y, x, n, w, bias, m->scratch, false, true);
}

extern "C" lq_status lq_cuda_llama_forward(lq_cuda_llama *m, const int32_t *tokens, int64_t n, int64_t pos0,
                                           float *logits, bool last_only) {
    LQ_RETURN_IF(m == NULL || tokens == NULL || logits == NULL, LQ_ERR_INVALID_ARG, "cuda llama: NULL argument");
    LQ_RETURN_IF(n < 1 || n > m->max_batch, LQ_ERR_INVALID_ARG, "cuda llama: %lld tokens, max_batch is %lld",
                 (long long)n, (long long)m->max_batch);
    LQ_RETURN_IF(pos0 < 0 || pos0 > m->max_seq - n, LQ_ERR_INVALID_ARG,
                 "cuda llama: positions %lld..%lld are outside the KV cache (max_seq %lld)", (long long)pos0,
                 (long long)(pos0 + n - 1), (long long)m->max_seq);
    const lq_llama_weights *w = &m->w;
    for (int64_t i = 0; i < n; i++)
        LQ_RETURN_IF(tokens[i] < 0 || tokens[i] >= w->vocab, LQ_ERR_INVALID_ARG,
                     "cuda llama: token id %d is outside the vocabulary [0, %lld)", tokens[i], (long long)w->vocab);
    const int64_t D = w->dim, F = w->hidden, H = w->n_heads, KVH = w->n_kv_heads, hd = w->head_dim;
    const int64_t KVD = KVH * hd, S = m->max_seq, V = w->vocab;
    const float   eps = w->rms_eps;

    LQ_CUDA_TRY(cudaMemcpy(m->tokens, tokens, (size_t)n * sizeof(int32_t), cudaMemcpyHostToDevice));
    LQ_TRY(lq__cuda_embed(m->x, &w->embed, m->tokens, n, NULL));
    for (int64_t l = 0; l < w->n_layers; l++) {
        const lq_llama_layer *y  = &m->layers[l];
        float *const          kc = m->k_cache + l * S * KVD, *const vc = m->v_cache + l * S * KVD;
        float *const          kn = kc + pos0 * KVD, *const vn = vc + pos0 * KVD; /* this chunk's cache rows */
#define CAPTURE(point, xx, cols)                                                   \
    if (m->cap) LQ_TRY(m->cap(m->cap_user, l, (point), (xx), n, (cols)))
        LQ_TRY(lq__cuda_rmsnorm(m->xb, m->x, &y->attn_norm, n, D, eps));
        CAPTURE(0, m->xb, D);
        LQ_TRY(matmul(m, m->q, m->xb, n, &y->wq, y->bq, false));
        LQ_TRY(matmul(m, kn, m->xb, n, &y->wk, y->bk, same_prep(&y->wk, &y->wq)));
        LQ_TRY(matmul(m, vn, m->xb, n, &y->wv, y->bv, same_prep(&y->wv, &y->wk)));
        LQ_TRY(lq__cuda_rope(m->q, H, kn, KVH, NULL, pos0, n, hd, w->inv_freq, w->rope_neox));
        LQ_TRY(lq__cuda_attention(m->att, m->q, kc, vc, n, pos0, H, KVH, hd, KVD));
        CAPTURE(1, m->att, H * hd);
        LQ_TRY(matmul_add(m, m->x, m->att, n, &y->wo, y->bo));
        LQ_TRY(lq__cuda_rmsnorm(m->xb, m->x, &y->ffn_norm, n, D, eps));
        CAPTURE(2, m->xb, D);
        LQ_TRY(matmul(m, m->hg, m->xb, n, &y->w_gate, NULL, false));
        LQ_TRY(matmul(m, m->hu, m->xb, n, &y->w_up, NULL, same_prep(&y->w_up, &y->w_gate)));
        LQ_TRY(lq__cuda_swiglu(m->hg, m->hg, m->hu, n * F));
        CAPTURE(3, m->hg, F);
#undef CAPTURE
        LQ_TRY(matmul_add(m, m->x, m->hg, n, &y->w_down, NULL));
    }
    const int64_t first = last_only ? n - 1 : 0, rows = n - first;
    LQ_TRY(lq__cuda_rmsnorm(m->xb, m->x + first * D, &w->norm, rows, D, eps));
    LQ_TRY(matmul(m, m->logits, m->xb, rows, &w->lm_head, NULL, false));
    /* waits for every kernel above and reports their faults */
    LQ_CUDA_TRY(cudaMemcpy(logits, m->logits, (size_t)(rows * V) * sizeof(float), cudaMemcpyDeviceToHost));
    return LQ_OK;
}
