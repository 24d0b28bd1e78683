/* synth.c : random-weight Llama checkpoints (see lq_synth.h). */
#include "lq_internal.h"
#include "lq_kernels.h"
#include "lq_synth.h"
#include "lq_formats.h"

#include <string.h>
#include <sys/stat.h>

typedef struct {
    uint64_t seed;
    lq_dtype dtype;
    bool     ones;
} gen;

/* splitmix64 of the element index: any chunk can be produced independently */
static lq_status fill(void *dst, uint64_t off, uint64_t nbytes, void *user) {
    const gen     *g   = user;
    const uint32_t esz = lq_dtype_traits_of(g->dtype)->bits / 8;
    const uint64_t e0 = off / esz, n = nbytes / esz;
    float          buf[1024];
    for (uint64_t i = 0; i < n; i += 1024) {
        const uint64_t m = n - i < 1024 ? n - i : 1024;
        for (uint64_t k = 0; k < m; k++) {
            uint64_t z = g->seed + (e0 + i + k) * 0x9E3779B97F4A7C15ULL;
            z          = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
            z          = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
            z ^= z >> 31;
            /* uniform in [-a, a) with a = 0.02 * sqrt(3): std 0.02 */
            buf[k] = g->ones ? 1.0f : (float)(((double)(z >> 11) * 0x1p-53 * 2.0 - 1.0) * 0.0346410161513775);
        }
        LQ_TRY(lq_convert_cpu(g->dtype, (uint8_t *)dst + i * esz, LQ_DTYPE_F32, buf, (int64_t)m, 1));
    }
    return LQ_OK;
}

lq_synth_params lq_synth_default_params(void) {
    lq_synth_params p;
    memset(&p, 0, sizeof p);
    p.dim = 2048, p.hidden = 5632, p.n_layers = 22, p.n_heads = 32, p.n_kv_heads = 4, p.vocab = 32000;
    p.max_pos = 2048, p.dtype = LQ_DTYPE_F16, p.seed = 1;
    return p;
}

lq_status lq_synth_write(const char *dir, const lq_synth_params *p, uint64_t *n_params) {
    LQ_RETURN_IF(p->dim <= 0 || p->hidden <= 0 || p->n_layers <= 0 || p->n_heads <= 0 || p->n_kv_heads <= 0 ||
                     p->vocab <= 0 || p->dim % p->n_heads || p->n_heads % p->n_kv_heads || (p->dim / p->n_heads) % 2,
                 LQ_ERR_INVALID_ARG, "synth: inconsistent shape (dim %lld, heads %lld/%lld)", (long long)p->dim,
                 (long long)p->n_heads, (long long)p->n_kv_heads);
    LQ_RETURN_IF(p->dtype != LQ_DTYPE_F32 && p->dtype != LQ_DTYPE_F16 && p->dtype != LQ_DTYPE_BF16,
                 LQ_ERR_INVALID_ARG, "synth: dtype must be F32, F16 or BF16");
    mkdir(dir, 0755);
    LQ_RETURN_IF(!lq__is_dir(dir), LQ_ERR_IO, "%s: cannot create the directory", dir);
    const int64_t hd = p->dim / p->n_heads, kvd = p->n_kv_heads * hd, D = p->dim, F = p->hidden;
    const int64_t n  = 2 + (p->tied ? 0 : 1) + p->n_layers * 9;
    lq_st_entry  *e  = lq_calloc((size_t)n, sizeof *e);
    gen          *g  = lq_calloc((size_t)n, sizeof *g);
    char         *nm = lq_calloc((size_t)n, 96);
    lq_status     st = LQ_OK;
    char         *path = NULL, *js = NULL;
    LQ_GOTO_IF(!e || !g || !nm, LQ_ERR_NOMEM, "synth: out of memory");
    int64_t  k = 0;
    uint64_t params = 0;
#define ADD(rows, cols, is_norm, ...)                                                         \
    do {                                                                                      \
        snprintf(nm + 96 * k, 96, __VA_ARGS__);                                               \
        g[k] = (gen){p->seed * 1000003u + (uint64_t)k, p->dtype, is_norm};                    \
        e[k] = (lq_st_entry){.name = nm + 96 * k, .dtype = p->dtype, .fill = fill, .fill_user = &g[k]}; \
        e[k].n_dims   = (rows) ? 2 : 1;                                                       \
        e[k].shape[0] = (rows) ? (rows) : (cols);                                             \
        e[k].shape[1] = (cols);                                                               \
        params += (uint64_t)((rows) ? (rows) : 1) * (uint64_t)(cols);                         \
        k++;                                                                                  \
    } while (0)
    ADD(p->vocab, D, false, "model.embed_tokens.weight");
    for (int64_t l = 0; l < p->n_layers; l++) {
        ADD(0, D, true, "model.layers.%lld.input_layernorm.weight", (long long)l);
        ADD(D, D, false, "model.layers.%lld.self_attn.q_proj.weight", (long long)l);
        ADD(kvd, D, false, "model.layers.%lld.self_attn.k_proj.weight", (long long)l);
        ADD(kvd, D, false, "model.layers.%lld.self_attn.v_proj.weight", (long long)l);
        ADD(D, D, false, "model.layers.%lld.self_attn.o_proj.weight", (long long)l);
        ADD(0, D, true, "model.layers.%lld.post_attention_layernorm.weight", (long long)l);
        ADD(F, D, false, "model.layers.%lld.mlp.gate_proj.weight", (long long)l);
        ADD(F, D, false, "model.layers.%lld.mlp.up_proj.weight", (long long)l);
        ADD(D, F, false, "model.layers.%lld.mlp.down_proj.weight", (long long)l);
    }
    ADD(0, D, true, "model.norm.weight");
    if (!p->tied) ADD(p->vocab, D, false, "lm_head.weight");
#undef ADD
    lq_st_write_params wp   = lq_st_write_default_params();
    const lq_kv        m[2] = {{"format", "pt"}, {"libquant_synthetic", "random weights, no knowledge"}};
    wp.metadata             = m;
    wp.n_metadata           = 2;
    wp.max_shard_size       = p->max_shard_size;
    wp.progress             = p->progress;
    wp.progress_user        = p->progress_user;
    LQ_GOTO_TRY(lq_safetensors_write_dir(dir, e, k, &wp));
    lq_model_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.model_type, sizeof c.model_type, "llama");
    snprintf(c.architecture, sizeof c.architecture, "LlamaForCausalLM");
    snprintf(c.hidden_act, sizeof c.hidden_act, "silu");
    c.vocab_size = p->vocab, c.hidden_size = D, c.intermediate_size = F, c.n_layers = p->n_layers;
    c.n_heads = p->n_heads, c.n_kv_heads = p->n_kv_heads, c.head_dim = hd, c.max_position_embeddings = p->max_pos;
    c.rms_norm_eps = 1e-5, c.rope_theta = 10000.0, c.tie_word_embeddings = p->tied;
    c.bos_token_id = 1, c.eos_token_id[0] = 2, c.n_eos = 1, c.dtype = p->dtype;
    size_t jl;
    LQ_GOTO_TRY(lq_hfconfig_to_json(&c, &js, &jl));
    path = lq__path_join(dir, "config.json");
    LQ_GOTO_IF(!path, LQ_ERR_NOMEM, "synth: out of memory");
    LQ_GOTO_TRY(lq__write_file_atomic(path, js, jl));
    if (n_params) *n_params = params;
done:
    lq_free(path);
    lq_free(js);
    lq_free(e);
    lq_free(g);
    lq_free(nm);
    return st;
}
