/* model.c : the Llama-family model runner (llama, mistral, qwen2).
 *
 * Maps Hugging Face tensor names onto lq_llama_weights (weights stay in the
 * checkpoint's mapping, in their stored dtype; only biases are copied to
 * f32), checks every shape against config.json, and runs the forward pass:
 *   x = embed(tokens)
 *   per layer: h = rmsnorm(x); q,k,v = h·Wqᵀ(+b) ...; rope(q,k); append k,v
 *              to the cache; x += attention(q, cache)·Woᵀ(+b)
 *              h = rmsnorm(x); x += (silu(h·Wgᵀ) ⊙ h·Wuᵀ)·Wdᵀ
 *   logits = rmsnorm(x)·lm_headᵀ
 * on the CPU (`_cpu` ops, or `_ref` ops as the oracle) or on CUDA through
 * lq_cuda_llama_* (the whole pass on the device). */
#include "block_internal.h"
#include "lq_internal.h"
#include "lq_kernels.h"
#include "lq_model.h"
#include "lq_qformats.h"

#include <string.h>

typedef struct {
    char                 *hf_name; /* owned */
    const lq_tensor_info *t;
} name_map;

struct lq_model {
    lq_checkpoint   *ck;
    lq_quant_config *qc;         /* GPTQ / compressed-tensors checkpoints, else NULL */
    name_map        *names;      /* GGUF checkpoints: HF name -> tensor, else NULL   */
    int64_t          n_names;
    void           **owned;      /* repacked quantized weights, scales, zero points  */
    int64_t          n_owned;
    lq_model_config  cfg;
    lq_model_params  p;
    lq_llama_weights w;
    lq_llama_layer  *layers;
    float           *inv_freq;
    float           *biases;     /* one block for all f32 biases */
    uint64_t         weight_bytes;
    /* CPU state */
    float   *k_cache, *v_cache;  /* (n_layers, max_seq, kv_dim) */
    float            *x, *logits_all;
    lq__block_scratch s;         /* per-block activations (block.c) */
    /* CUDA state */
    lq_cuda_llama *cuda;
    /* statistics hook (lq__model_set_capture) */
    lq__model_capture_fn cap;
    void                *cap_user;
};

lq_model_params lq_model_default_params(void) {
    lq_model_params p;
    memset(&p, 0, sizeof p);
    p.backend = LQ_BACKEND_AUTO;
    return p;
}

const lq_model_config *lq_model_config_of(const lq_model *m) { return &m->cfg; }
lq_backend             lq_model_backend(const lq_model *m) { return m->p.backend; }
int64_t                lq_model_max_seq(const lq_model *m) { return m->p.max_seq; }
uint64_t               lq_model_weight_bytes(const lq_model *m) { return m->weight_bytes; }
const lq_checkpoint   *lq_model_checkpoint(const lq_model *m) { return m->ck; }
const lq_llama_weights *lq__model_weights(const lq_model *m) { return &m->w; }

lq_llama_layer *lq__model_layer_mut(lq_model *m, int64_t layer) {
    return layer >= 0 && layer < m->w.n_layers ? &m->layers[layer] : NULL;
}
lq_llama_weights *lq__model_weights_mut(lq_model *m) { return &m->w; }

/* the device hook forwards to the model-level one with on_device set */
static lq_status cap_device(void *user, int64_t layer, int point, const float *x, int64_t n, int64_t cols) {
    lq_model *m = user;
    return m->cap(m->cap_user, layer, (lq__cap_point)point, x, n, cols, true);
}

void lq__model_set_capture(lq_model *m, lq__model_capture_fn fn, void *user) {
    m->cap      = fn;
    m->cap_user = user;
    if (m->cuda) lq_cuda_llama_set_capture(m->cuda, fn ? cap_device : NULL, m);
}

/* adapts the block's capture callback to the model-level one (adds the layer) */
typedef struct {
    lq_model *m;
    int64_t   layer;
} cap_adapter;

static lq_status cap_adapt(void *user, lq__cap_point p, const float *x, int64_t n, int64_t cols) {
    const cap_adapter *a = user;
    return a->m->cap(a->m->cap_user, a->layer, p, x, n, cols, false);
}

void lq_model_free(lq_model *m) {
    if (!m) return;
    lq_cuda_llama_free(m->cuda);
    lq_free(m->k_cache);
    lq_free(m->v_cache);
    lq_free(m->x);
    lq__block_scratch_free(&m->s);
    lq_free(m->logits_all);
    lq_free(m->layers);
    lq_free(m->inv_freq);
    lq_free(m->biases);
    for (int64_t i = 0; i < m->n_owned; i++) lq_free(m->owned[i]);
    lq_free(m->owned);
    for (int64_t i = 0; i < m->n_names; i++) lq_free(m->names[i].hf_name);
    lq_free(m->names);
    lq_quant_config_free(m->qc);
    lq_checkpoint_close(m->ck);
    lq_free(m);
}

/* GGUF checkpoints carry GGUF names: index them by their HF names once */
static lq_status index_gguf_names(lq_model *m) {
    const int64_t n = lq_checkpoint_count(m->ck);
    m->names        = lq_calloc((size_t)(n ? n : 1), sizeof *m->names);
    LQ_RETURN_IF(!m->names, LQ_ERR_NOMEM, "model: out of memory");
    for (int64_t i = 0; i < n; i++) {
        const lq_tensor_info *t = lq_checkpoint_tensor(m->ck, i);
        char                  buf[256];
        const char           *hf = lq_gguf_hf_name(t->name, buf, sizeof buf);
        if (!hf) continue; /* rope_freqs and other tensors the runner does not use */
        m->names[m->n_names].hf_name = lq_strdup(hf);
        LQ_RETURN_IF(!m->names[m->n_names].hf_name, LQ_ERR_NOMEM, "model: out of memory");
        m->names[m->n_names++].t = t;
    }
    return LQ_OK;
}

static const lq_tensor_info *find_tensor(const lq_model *m, const char *hf_name) {
    if (!m->names) return lq_checkpoint_find(m->ck, hf_name);
    for (int64_t i = 0; i < m->n_names; i++)
        if (!strcmp(m->names[i].hf_name, hf_name)) return m->names[i].t;
    return NULL;
}

static lq_status shape_error(const lq_tensor_info *t, const char *name, int64_t rows, int64_t cols) {
    char got[96] = "[";
    for (int d = 0; d < t->n_dims && d < 4; d++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    strcat(got, "]");
    if (rows)
        LQ_RETURN_IF(1, LQ_ERR_FORMAT, "model: tensor '%s' has shape %s, config.json implies [%lld, %lld]", name, got,
                     (long long)rows, (long long)cols);
    LQ_RETURN_IF(1, LQ_ERR_FORMAT, "model: tensor '%s' has shape %s, config.json implies [%lld]", name, got,
                 (long long)cols);
    return LQ_ERR_FORMAT;
}

/* find `name`, check dtype and shape (rows, cols; rows = 0 for a 1-D tensor) */
static lq_status get_weight(lq_model *m, const char *name, int64_t rows, int64_t cols, lq_weight *w) {
    const lq_tensor_info *t = find_tensor(m, name);
    LQ_RETURN_IF(!t, LQ_ERR_FORMAT, "model: tensor '%s' is missing", name);
    const lq_qtype_traits *qt = lq_qtype_traits_of(t->qtype);
    const bool            quantized = qt && qt->kind == LQ_QK_GGML;
    LQ_RETURN_IF(!quantized && t->dtype != LQ_DTYPE_F32 && t->dtype != LQ_DTYPE_F16 && t->dtype != LQ_DTYPE_BF16,
                 LQ_ERR_UNSUPPORTED, "model: tensor '%s' is %s; the runner takes F32, F16 or BF16 weights", name,
                 lq_dtype_name(t->dtype));
    LQ_RETURN_IF(quantized && rows == 0, LQ_ERR_UNSUPPORTED, "model: 1-D tensor '%s' is quantized (%s)", name,
                 qt->name);
    const bool ok = rows == 0 ? (t->n_dims == 1 && t->shape[0] == cols)
                              : (t->n_dims == 2 && t->shape[0] == rows && t->shape[1] == cols);
    if (!ok) return shape_error(t, name, rows, cols);
    memset(w, 0, sizeof *w);
    w->dtype = quantized ? LQ_DTYPE_U8 : t->dtype;
    w->qtype = quantized ? t->qtype : LQ_QT_NONE;
    w->data  = t->data;
    w->rows  = rows ? rows : 1;
    w->cols  = cols;
    m->weight_bytes += t->nbytes;
    return LQ_OK;
}

static lq_status keep_owned(lq_model *m, void *p) {
    if (!p) return LQ_OK;
    void **o = lq_malloc((size_t)(m->n_owned + 1) * sizeof *o);
    if (!o) {
        lq_free(p);
        LQ_RETURN_IF(1, LQ_ERR_NOMEM, "model: out of memory");
    }
    if (m->n_owned) memcpy(o, m->owned, (size_t)m->n_owned * sizeof *o);
    lq_free(m->owned);
    m->owned              = o;
    m->owned[m->n_owned++] = p;
    return LQ_OK;
}

/* an act-order (g_idx) module: columns stably sorted by group into an owned copy of the codes, so that group g
 * is columns [g*G, (g+1)*G) again, and w->perm = that order (the kernels gather x through it) */
static lq_status act_order_layout(lq_model *m, const lq_qtensor *qt, lq_weight *w) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(qt->qtype);
    const int64_t          C = w->cols, R = w->rows, ng = lq_qtype_n_groups(qt->qtype, C);
    const uint64_t         rb = lq_qtype_row_bytes(qt->qtype, C);
    int32_t               *perm = lq_malloc((size_t)C * sizeof *perm);
    int64_t               *next = lq_calloc((size_t)ng + 1, sizeof *next);
    uint8_t               *data = lq_calloc((size_t)(rb * (uint64_t)R), 1);
    if (!perm || !next || !data) {
        lq_free(perm), lq_free(next), lq_free(data);
        LQ_RETURN_IF(1, LQ_ERR_NOMEM, "model: out of memory");
    }
    for (int64_t k = 0; k < C; k++) next[qt->g_idx[k] + 1]++; /* counting sort: stable */
    for (int64_t g = 0; g < ng; g++) next[g + 1] += next[g];
    for (int64_t k = 0; k < C; k++) perm[next[qt->g_idx[k]]++] = (int32_t)k;
    lq_free(next);
    const int bits = tr->bits;
    for (int64_t r = 0; r < R; r++) {
        const uint8_t *src = (const uint8_t *)qt->data + (uint64_t)r * rb;
        uint8_t       *dst = data + (uint64_t)r * rb;
        for (int64_t c = 0; c < C; c++) {
            const uint64_t sb = (uint64_t)perm[c] * (uint64_t)bits, db = (uint64_t)c * (uint64_t)bits;
            unsigned       v  = src[sb >> 3];
            if ((sb & 7) + (uint64_t)bits > 8) v |= (unsigned)src[(sb >> 3) + 1] << 8;
            const unsigned u = (v >> (sb & 7)) & ((1u << bits) - 1u);
            dst[db >> 3] |= (uint8_t)(u << (db & 7));
            if ((db & 7) + (uint64_t)bits > 8) dst[(db >> 3) + 1] |= (uint8_t)(u >> (8 - (db & 7)));
        }
    }
    const lq_status st = keep_owned(m, perm); /* frees perm on failure */
    if (st != LQ_OK) {
        lq_free(data);
        return st;
    }
    LQ_TRY(keep_owned(m, data));
    w->data = data;
    w->perm = perm;
    return LQ_OK;
}

/* a Linear weight `<prefix>.weight`: plain, a GGML tensor (GGUF), or a GPTQ /
 * compressed-tensors module in the lq layout (never expanded to f32) */
static lq_status get_linear(lq_model *m, const char *prefix, int64_t rows, int64_t cols, lq_weight *w) {
    char name[160];
    snprintf(name, sizeof name, "%s.weight", prefix);
    if (!m->qc) return get_weight(m, name, rows, cols, w);
    lq_qtensor qt;
    void      *owned = NULL;
    LQ_TRY(lq_qformat_load(m->ck, m->qc, prefix, rows, cols, &qt, &owned));
    LQ_TRY(keep_owned(m, owned));
    const lq_qtype_traits *tr = lq_qtype_traits_of(qt.qtype);
    LQ_RETURN_IF(!tr || tr->kind == LQ_QK_NONE, LQ_ERR_FORMAT, "model: module '%s' has no usable weight", prefix);
    memset(w, 0, sizeof *w);
    w->rows = rows;
    w->cols = cols;
    w->data = qt.data;
    if (tr->kind == LQ_QK_KEEP) {
        w->dtype = tr->dtype;
        m->weight_bytes += (uint64_t)(rows * cols) * (uint64_t)tr->block_bytes;
        return LQ_OK;
    }
    w->dtype  = LQ_DTYPE_U8;
    w->qtype  = qt.qtype;
    w->scales = qt.scales;
    w->zeros  = qt.zeros;
    w->in_scale = qt.in_scale;
    if (qt.g_idx) LQ_TRY(act_order_layout(m, &qt, w));
    const int64_t ns = lq_qtype_n_scales(qt.qtype, rows, cols);
    m->weight_bytes += (uint64_t)rows * lq_qtype_row_bytes(qt.qtype, cols) + (uint64_t)ns * 4 +
                       (lq_qtype_has_zeros(qt.qtype) ? (uint64_t)ns : 0);
    return LQ_OK;
}

/* an optional bias, copied to f32 into *dst (advanced); NULL when absent */
static lq_status get_bias(lq_model *m, const char *name, int64_t n, bool required, float **dst, const float **out) {
    const lq_tensor_info *t = find_tensor(m, name);
    *out                    = NULL;
    if (!t) {
        LQ_RETURN_IF(required, LQ_ERR_FORMAT, "model: bias '%s' is missing (config.json says the model has biases)",
                     name);
        return LQ_OK;
    }
    LQ_RETURN_IF(t->n_dims != 1 || t->shape[0] != n, LQ_ERR_FORMAT, "model: bias '%s' must have shape [%lld]", name,
                 (long long)n);
    const lq_status s = lq_convert_ref(LQ_DTYPE_F32, *dst, t->dtype, t->data, n);
    LQ_RETURN_IF(s != LQ_OK, s, "model: bias '%s' (%s) cannot be read as f32", name, lq_dtype_name(t->dtype));
    *out = *dst;
    *dst += n;
    m->weight_bytes += t->nbytes;
    return LQ_OK;
}

static lq_status map_weights(lq_model *m) {
    const lq_model_config *c   = &m->cfg;
    const int64_t          D   = c->hidden_size, F = c->intermediate_size, V = c->vocab_size, hd = c->head_dim;
    const int64_t          QD  = c->n_heads * hd, KVD = c->n_kv_heads * hd, L = c->n_layers;
    lq_llama_weights      *w   = &m->w;
    w->dim                     = D;
    w->hidden                  = F;
    w->n_layers                = L;
    w->n_heads                 = c->n_heads;
    w->n_kv_heads              = c->n_kv_heads;
    w->head_dim                = hd;
    w->vocab                   = V;
    w->rms_eps                 = (float)c->rms_norm_eps;
    /* HF layout (llama2.c files are permuted to it on load); GGUF keeps llama.cpp's interleaved q/k rows */
    w->rope_neox = lq_checkpoint_kind(m->ck) != LQ_CKPT_GGUF || strcmp(c->model_type, "qwen2") == 0; /* llama.cpp: NEOX for qwen2 */
    m->layers                  = lq_calloc((size_t)L, sizeof *m->layers);
    m->inv_freq                = lq_malloc((size_t)hd / 2 * sizeof(float));
    m->biases                  = lq_malloc((size_t)(L * (QD + 2 * KVD + D) + 1) * sizeof(float));
    LQ_RETURN_IF(!m->layers || !m->inv_freq || !m->biases, LQ_ERR_NOMEM, "model: out of memory");
    LQ_TRY(lq_rope_inv_freq(m->inv_freq, hd, c->rope_theta, (int)c->rope_type, c->rope_factor, c->rope_low_freq_factor,
                            c->rope_high_freq_factor, c->rope_original_max_pos));
    w->inv_freq = m->inv_freq;
    LQ_TRY(get_weight(m, "model.embed_tokens.weight", V, D, &w->embed));
    LQ_TRY(get_weight(m, "model.norm.weight", 0, D, &w->norm));
    if (find_tensor(m, "lm_head.weight") || (m->qc && find_tensor(m, "lm_head.qweight")) ||
        (m->qc && find_tensor(m, "lm_head.weight_packed"))) {
        LQ_TRY(get_linear(m, "lm_head", V, D, &w->lm_head));
    } else {
        LQ_RETURN_IF(!c->tie_word_embeddings, LQ_ERR_FORMAT,
                     "model: no lm_head.weight and config.json says tie_word_embeddings is false");
        w->lm_head = w->embed;
    }
    const bool qkv_bias = c->attention_bias, o_bias = c->attention_bias && strcmp(c->model_type, "qwen2") != 0;
    float     *bias     = m->biases;
    for (int64_t l = 0; l < L; l++) {
        lq_llama_layer *y = &m->layers[l];
        char            nm[128];
#define W(field, suffix, rows, cols)                                              \
    snprintf(nm, sizeof nm, "model.layers.%lld." suffix, (long long)l);            \
    LQ_TRY(get_weight(m, nm, rows, cols, &y->field))
#define LIN(field, suffix, rows, cols)                                            \
    snprintf(nm, sizeof nm, "model.layers.%lld." suffix, (long long)l);            \
    LQ_TRY(get_linear(m, nm, rows, cols, &y->field))
        W(attn_norm, "input_layernorm.weight", 0, D);
        LIN(wq, "self_attn.q_proj", QD, D);
        LIN(wk, "self_attn.k_proj", KVD, D);
        LIN(wv, "self_attn.v_proj", KVD, D);
        LIN(wo, "self_attn.o_proj", D, QD);
        W(ffn_norm, "post_attention_layernorm.weight", 0, D);
        LIN(w_gate, "mlp.gate_proj", F, D);
        LIN(w_up, "mlp.up_proj", F, D);
        LIN(w_down, "mlp.down_proj", D, F);
#undef LIN
#undef W
        LQ_RETURN_IF(c->mlp_bias, LQ_ERR_UNSUPPORTED, "model: mlp_bias is not supported");
#define B(field, suffix, n, req)                                                  \
    snprintf(nm, sizeof nm, "model.layers.%lld." suffix, (long long)l);            \
    LQ_TRY(get_bias(m, nm, n, req, &bias, &y->field))
        B(bq, "self_attn.q_proj.bias", QD, qkv_bias);
        B(bk, "self_attn.k_proj.bias", KVD, qkv_bias);
        B(bv, "self_attn.v_proj.bias", KVD, qkv_bias);
        B(bo, "self_attn.o_proj.bias", D, o_bias);
#undef B
    }
    w->layers = m->layers;
    return LQ_OK;
}

static lq_status alloc_cpu(lq_model *m) {
    const lq_llama_weights *w   = &m->w;
    const int64_t           B   = m->p.max_batch, S = m->p.max_seq;
    const int64_t           KVD = w->n_kv_heads * w->head_dim;
    uint64_t                cache;
    LQ_RETURN_IF(!lq__mul_u64((uint64_t)(w->n_layers * S), (uint64_t)KVD * sizeof(float), &cache), LQ_ERR_NOMEM,
                 "model: KV cache size overflows");
    m->k_cache    = lq_malloc((size_t)cache);
    m->v_cache    = lq_malloc((size_t)cache);
    m->x          = lq_malloc((size_t)(B * w->dim) * sizeof(float));
    m->logits_all = lq_malloc((size_t)(B * w->vocab) * sizeof(float));
    LQ_RETURN_IF(!m->k_cache || !m->v_cache || !m->x || !m->logits_all, LQ_ERR_NOMEM,
                 "model: out of memory for the KV cache (%llu bytes) and activations",
                 (unsigned long long)(2 * cache));
    return lq__block_scratch_alloc(&m->s, w, B);
}

lq_status lq_model_open(const char *path, const lq_model_params *p_in, lq_model **out) {
    *out        = NULL;
    lq_model *m = lq_calloc(1, sizeof *m);
    LQ_RETURN_IF(!m, LQ_ERR_NOMEM, "out of memory");
    m->p         = p_in ? *p_in : lq_model_default_params();
    lq_status st = LQ_OK;
    LQ_GOTO_TRY(lq_checkpoint_open(path, &m->ck));
    LQ_GOTO_TRY(lq_checkpoint_config(m->ck, &m->cfg));
    if (lq_checkpoint_kind(m->ck) == LQ_CKPT_GGUF)
        LQ_GOTO_TRY(index_gguf_names(m));
    else
        LQ_GOTO_TRY(lq_quant_config_load(m->ck, &m->qc));
    if (m->p.max_seq <= 0) m->p.max_seq = LQ_MIN(m->cfg.max_position_embeddings, 4096);
    if (m->p.max_seq <= 0) m->p.max_seq = 4096;
    if (m->p.max_batch <= 0) m->p.max_batch = 512;
    m->p.max_batch = LQ_MIN(m->p.max_batch, m->p.max_seq);
    LQ_GOTO_TRY(map_weights(m));
    if (m->p.backend == LQ_BACKEND_AUTO) m->p.backend = lq_cuda_device_count() > 0 ? LQ_BACKEND_CUDA : LQ_BACKEND_CPU;
    if (m->p.backend == LQ_BACKEND_CUDA) {
        LQ_GOTO_IF(lq_cuda_device_count() <= 0, LQ_ERR_UNSUPPORTED, "model: --device cuda but %s",
                   lq_cuda_device_name());
        LQ_GOTO_IF(m->p.use_ref, LQ_ERR_INVALID_ARG, "model: the reference ops run on the CPU only");
        LQ_GOTO_TRY(lq_cuda_llama_init(&m->w, m->p.max_seq, m->p.max_batch, &m->cuda));
        m->logits_all = lq_malloc((size_t)m->w.vocab * sizeof(float)); /* last_only scratch */
        LQ_GOTO_IF(!m->logits_all, LQ_ERR_NOMEM, "model: out of memory");
    } else {
        LQ_GOTO_TRY(alloc_cpu(m));
    }
    *out = m;
    return LQ_OK;
done:
    lq_model_free(m);
    return st;
}

/* one CPU step of n <= max_batch tokens */
static lq_status forward_cpu(lq_model *m, const int32_t *tokens, int64_t n, int64_t pos0, float *logits, bool last_only) {
    const lq_llama_weights *w   = &m->w;
    const bool              ref = m->p.use_ref;
    const int               nt  = m->p.n_threads;
    const int64_t           D = w->dim, KVD = w->n_kv_heads * w->head_dim, S = m->p.max_seq;
    LQ_TRY(ref ? lq_embed_ref(m->x, &w->embed, tokens, n) : lq_embed_cpu(m->x, &w->embed, tokens, n, nt));
    for (int64_t l = 0; l < w->n_layers; l++) {
        cap_adapter a = {m, l};
        LQ_TRY(lq__block_forward(w, &w->layers[l], m->x, n, pos0, m->k_cache + l * S * KVD, m->v_cache + l * S * KVD,
                                 &m->s, ref, nt, m->cap ? cap_adapt : NULL, &a, -1));
    }
    const int64_t first = last_only ? n - 1 : 0, rows = n - first;
    if (ref)
        lq_rmsnorm_ref(m->s.xb, m->x + first * D, &w->norm, rows, D, w->rms_eps);
    else
        lq_rmsnorm_cpu(m->s.xb, m->x + first * D, &w->norm, rows, D, w->rms_eps, nt);
    return ref ? lq_matmul_ref(logits, m->s.xb, rows, &w->lm_head, NULL)
               : lq_matmul_cpu(logits, m->s.xb, rows, &w->lm_head, NULL, nt);
}

lq_status lq_model_forward(lq_model *m, const int32_t *tokens, int64_t n, int64_t pos0, float *logits, bool last_only) {
    LQ_RETURN_IF(n <= 0 || pos0 < 0 || pos0 + n > m->p.max_seq, LQ_ERR_INVALID_ARG,
                 "model: positions %lld..%lld are outside the KV cache (max_seq %lld)", (long long)pos0,
                 (long long)(pos0 + n - 1), (long long)m->p.max_seq);
    for (int64_t i = 0; i < n; i++)
        LQ_RETURN_IF(tokens[i] < 0 || tokens[i] >= m->w.vocab, LQ_ERR_INVALID_ARG,
                     "model: token id %d is outside the vocabulary [0, %lld)", tokens[i], (long long)m->w.vocab);
    const int64_t V = m->w.vocab;
    for (int64_t done = 0; done < n;) {
        const int64_t step = LQ_MIN(m->p.max_batch, n - done);
        const bool    last = done + step == n;
        float        *dst  = last_only ? (last ? logits : m->logits_all) : logits + done * V;
        if (m->cuda)
            LQ_TRY(lq_cuda_llama_forward(m->cuda, tokens + done, step, pos0 + done, dst, last_only));
        else
            LQ_TRY(forward_cpu(m, tokens + done, step, pos0 + done, dst, last_only));
        done += step;
    }
    return LQ_OK;
}
