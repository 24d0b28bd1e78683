/* llama2c.c : llama2.c legacy (v0) checkpoints presented in the Hugging Face
 * Llama layout (karpathy/llama2.c export.py legacy_export; run.c).
 *
 * Names: token_embedding -> model.embed_tokens, rms_att -> input_layernorm,
 * wq/wk/wv/wo -> self_attn.{q,k,v,o}_proj, rms_ffn -> post_attention_layernorm,
 * w1 -> mlp.gate_proj, w2 -> mlp.down_proj, w3 -> mlp.up_proj, rms_final ->
 * model.norm, wcls -> lm_head (only when the classifier is not shared).
 * llama2.c rotates interleaved pairs (2i, 2i+1); HF rotates (i, i + d/2). So
 * q_proj and k_proj rows are permuted within each head: HF row
 * h*d + j*d/2 + i = llama2.c row h*d + 2i + j (i < d/2, j in {0,1}); q has
 * n_heads heads, k has n_kv_heads. Everything else is borrowed from the
 * read-only mapping; only q and k are copied. v1/v2 exports (magic "ak42")
 * are refused with a clear message. */
#include "formats_internal.h"

#include <stdlib.h>
#include <string.h>

#define LLAMA2C_MAX_DIM (1 << 20)

struct lq_llama2c {
    lq__mapping       map;
    lq_llama2c_header h;
    lq_tensor_info   *t;
    int64_t           n;
    char             *names;   /* one block for all names */
    float           **copies;  /* permuted q/k, one per layer each */
    int64_t           n_copies;
};

static int32_t rd_i32(const uint8_t *p) { return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24); }

const lq_llama2c_header *lq_llama2c_header_of(const lq_llama2c *m) { return &m->h; }
int64_t                  lq_llama2c_count(const lq_llama2c *m) { return m->n; }
const lq_tensor_info    *lq_llama2c_tensor(const lq_llama2c *m, int64_t i) {
    return (i >= 0 && i < m->n) ? &m->t[i] : NULL;
}

void lq_llama2c_close(lq_llama2c *m) {
    if (!m) return;
    for (int64_t i = 0; i < m->n_copies; i++) lq_free(m->copies[i]);
    lq_free(m->copies);
    lq_free(m->t);
    lq_free(m->names);
    lq__unmap_file(&m->map);
    lq_free(m);
}

void lq_llama2c_config(const lq_llama2c *m, lq_model_config *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->model_type, sizeof c->model_type, "llama");
    snprintf(c->architecture, sizeof c->architecture, "LlamaForCausalLM");
    snprintf(c->hidden_act, sizeof c->hidden_act, "silu");
    c->vocab_size              = m->h.vocab_size;
    c->hidden_size             = m->h.dim;
    c->intermediate_size       = m->h.hidden_dim;
    c->n_layers                = m->h.n_layers;
    c->n_heads                 = m->h.n_heads;
    c->n_kv_heads              = m->h.n_kv_heads;
    c->head_dim                = m->h.dim / m->h.n_heads;
    c->max_position_embeddings = m->h.seq_len;
    c->rms_norm_eps            = 1e-5;
    c->rope_theta              = 10000.0;
    c->tie_word_embeddings     = m->h.shared_classifier;
    c->bos_token_id            = 1;
    c->eos_token_id[0]         = 2;
    c->n_eos                   = 1;
    c->dtype                   = LQ_DTYPE_F32;
}

/* llama2.c rows (interleaved pairs) -> HF rows (rotate_half), per head */
static void permute_rows(float *dst, const float *src, int64_t n_heads, int64_t head_dim, int64_t cols) {
    const int64_t half = head_dim / 2;
    for (int64_t h = 0; h < n_heads; h++)
        for (int64_t j = 0; j < 2; j++)
            for (int64_t i = 0; i < half; i++)
                memcpy(dst + (h * head_dim + j * half + i) * cols, src + (h * head_dim + 2 * i + j) * cols,
                       (size_t)cols * sizeof(float));
}

lq_status lq_llama2c_open(const char *path, lq_llama2c **out) {
    *out          = NULL;
    lq_llama2c *m = lq_calloc(1, sizeof *m);
    LQ_RETURN_IF(!m, LQ_ERR_NOMEM, "out of memory");
    lq_status st = lq__map_file(path, &m->map);
    if (st != LQ_OK) {
        lq_free(m);
        return st;
    }
    const uint8_t *b = m->map.data;
    const size_t   size = m->map.size;
    LQ_GOTO_IF(size >= 4 && memcmp(b, "24ka", 4) == 0, LQ_ERR_UNSUPPORTED,
               "%s: llama2.c v1/v2 export (magic \"ak42\") is not supported; convert the legacy (v0) export", path);
    LQ_GOTO_IF(size < 28, LQ_ERR_FORMAT, "%s: %zu bytes, too small for a llama2.c header (28 bytes)", path, size);
    lq_llama2c_header *h = &m->h;
    h->dim        = rd_i32(b);
    h->hidden_dim = rd_i32(b + 4);
    h->n_layers   = rd_i32(b + 8);
    h->n_heads    = rd_i32(b + 12);
    h->n_kv_heads = rd_i32(b + 16);
    h->vocab_size = rd_i32(b + 20);
    h->seq_len    = rd_i32(b + 24);
    h->shared_classifier = h->vocab_size > 0;
    if (h->vocab_size < 0) {
        LQ_GOTO_IF(h->vocab_size == INT32_MIN, LQ_ERR_FORMAT, "%s: vocab_size out of range", path);
        h->vocab_size = -h->vocab_size;
    }
    LQ_GOTO_IF(h->dim <= 0 || h->hidden_dim <= 0 || h->n_layers <= 0 || h->n_heads <= 0 || h->n_kv_heads <= 0 ||
                   h->vocab_size <= 0 || h->seq_len <= 0 || h->dim > LLAMA2C_MAX_DIM ||
                   h->hidden_dim > LLAMA2C_MAX_DIM || h->n_layers > 4096 || h->vocab_size > (1 << 24) ||
                   h->seq_len > (1 << 24),
               LQ_ERR_FORMAT, "%s: implausible llama2.c header (dim %d, hidden %d, layers %d, heads %d/%d, vocab %d, seq %d)",
               path, h->dim, h->hidden_dim, h->n_layers, h->n_heads, h->n_kv_heads, h->vocab_size, h->seq_len);
    LQ_GOTO_IF(h->dim % h->n_heads != 0 || h->n_heads % h->n_kv_heads != 0 || (h->dim / h->n_heads) % 2 != 0,
               LQ_ERR_FORMAT, "%s: dim %d, n_heads %d, n_kv_heads %d are inconsistent", path, h->dim, h->n_heads,
               h->n_kv_heads);
    const int64_t D = h->dim, F = h->hidden_dim, L = h->n_layers, V = h->vocab_size, hd = D / h->n_heads;
    const int64_t KV = D * h->n_kv_heads / h->n_heads;
    /* element counts of the v0 layout, in file order; int64 cannot overflow with the limits above */
    const int64_t counts[] = {V * D, L * D, L * D * D, L * KV * D, L * KV * D, L * D * D, L * D,
                              L * F * D, L * D * F, L * F * D, D, (int64_t)h->seq_len * hd / 2,
                              (int64_t)h->seq_len * hd / 2, h->shared_classifier ? 0 : V * D};
    int64_t offs[15];
    offs[0] = 28;
    for (int i = 0; i < 14; i++) offs[i + 1] = offs[i] + counts[i] * 4;
    LQ_GOTO_IF((uint64_t)offs[14] != size, LQ_ERR_FORMAT,
               "%s: %zu bytes, but a llama2.c v0 file with this header has %lld (%s)", path, size, (long long)offs[14],
               (uint64_t)offs[14] > size ? "truncated" : "trailing bytes");
    enum { EMB, RMS_ATT, WQ, WK, WV, WO, RMS_FFN, W1, W2, W3, RMS_FINAL, FREQ_R, FREQ_I, WCLS };
    m->n = 2 + L * 9 + (h->shared_classifier ? 0 : 1);
    m->t = lq_calloc((size_t)m->n, sizeof *m->t);
    m->names  = lq_malloc((size_t)m->n * 64);
    m->copies = lq_calloc((size_t)(2 * L), sizeof *m->copies);
    LQ_GOTO_IF(!m->t || !m->names || !m->copies, LQ_ERR_NOMEM, "out of memory");
    int64_t k = 0;
#define ADD(nm_fmt, layer, data_ptr, rows, cols)                                   \
    do {                                                                            \
        char *nm = m->names + k * 64;                                              \
        snprintf(nm, 64, nm_fmt, (int)(layer));                                    \
        lq_tensor_info *t = &m->t[k++];                                            \
        t->name = nm;                                                               \
        t->dtype = LQ_DTYPE_F32;                                                   \
        t->alias_of = -1;                                                           \
        t->data = (data_ptr);                                                       \
        if ((rows) > 0) {                                                           \
            t->n_dims = 2, t->shape[0] = (rows), t->shape[1] = (cols);             \
        } else {                                                                    \
            t->n_dims = 1, t->shape[0] = (cols);                                    \
        }                                                                           \
        t->nbytes = (uint64_t)((rows) > 0 ? (rows) : 1) * (uint64_t)(cols) * 4u;   \
    } while (0)
    ADD("model.embed_tokens.weight%.0d", 0, b + offs[EMB], V, D);
    for (int64_t l = 0; l < L; l++) {
        float *q = lq_malloc((size_t)(D * D) * 4), *kk = lq_malloc((size_t)(KV * D) * 4);
        m->copies[m->n_copies++] = q;
        m->copies[m->n_copies++] = kk;
        LQ_GOTO_IF(!q || !kk, LQ_ERR_NOMEM, "out of memory");
        /* the mapping is only 4-byte aligned at offset 28: copy rows with memcpy */
        permute_rows(q, (const float *)(const void *)(b + offs[WQ] + l * D * D * 4), h->n_heads, hd, D);
        permute_rows(kk, (const float *)(const void *)(b + offs[WK] + l * KV * D * 4), h->n_kv_heads, hd, D);
        ADD("model.layers.%d.input_layernorm.weight", l, b + offs[RMS_ATT] + l * D * 4, 0, D);
        ADD("model.layers.%d.self_attn.q_proj.weight", l, q, D, D);
        ADD("model.layers.%d.self_attn.k_proj.weight", l, kk, KV, D);
        ADD("model.layers.%d.self_attn.v_proj.weight", l, b + offs[WV] + l * KV * D * 4, KV, D);
        ADD("model.layers.%d.self_attn.o_proj.weight", l, b + offs[WO] + l * D * D * 4, D, D);
        ADD("model.layers.%d.post_attention_layernorm.weight", l, b + offs[RMS_FFN] + l * D * 4, 0, D);
        ADD("model.layers.%d.mlp.gate_proj.weight", l, b + offs[W1] + l * F * D * 4, F, D);
        ADD("model.layers.%d.mlp.down_proj.weight", l, b + offs[W2] + l * D * F * 4, D, F);
        ADD("model.layers.%d.mlp.up_proj.weight", l, b + offs[W3] + l * F * D * 4, F, D);
    }
    ADD("model.norm.weight%.0d", 0, b + offs[RMS_FINAL], 0, D);
    if (!h->shared_classifier) ADD("lm_head.weight%.0d", 0, b + offs[WCLS], V, D);
#undef ADD
    LQ_ASSERT(k == m->n);
    *out = m;
    return LQ_OK;
done:
    lq_llama2c_close(m);
    return st;
}
