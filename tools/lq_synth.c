/* lq_synth.c : write a random-weight Hugging Face Llama checkpoint of given
 * shapes (config.json + model.safetensors, optionally sharded) for
 * benchmarks. Weights ~ uniform with std 0.02 (the HF initializer's scale),
 * norm weights 1; deterministic for a seed. Figures measured on such models
 * are labelled synthetic: the weights carry no knowledge. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_util.h"

typedef struct {
    uint64_t seed;
    lq_dtype dtype;
    bool     ones;
} gen;

static lq_status fill(void *dst, uint64_t off, uint64_t nbytes, void *user) {
    const gen     *g    = user;
    const uint32_t esz  = lq_dtype_traits_of(g->dtype)->bits / 8;
    const uint64_t e0   = off / esz, n = nbytes / esz;
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
        const lq_status s = lq_convert_cpu(g->dtype, (uint8_t *)dst + (i * esz), LQ_DTYPE_F32, buf, (int64_t)m, 1);
        if (s != LQ_OK) return s;
    }
    return LQ_OK;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: %s [options] OUTDIR\n"
            "Write a random-weight (synthetic) Llama checkpoint: config.json + safetensors.\n"
            "\n"
            "options (defaults: a 1B-like shape):\n"
            "  --dim N            [2048] hidden size\n"
            "  --hidden N         [5632] MLP intermediate size\n"
            "  --layers N         [22]\n"
            "  --heads N          [32]\n"
            "  --kv-heads N       [4]\n"
            "  --vocab N          [32000]\n"
            "  --ctx N            [2048] max_position_embeddings\n"
            "  --dtype T          [f16] f32, f16 or bf16\n"
            "  --tied             tie lm_head to the embedding\n"
            "  --seed N           [1]\n"
            "  --max-shard-size S [one file] e.g. 2GB\n"
            "  -h, --help         this help\n",
            g_tool);
}

int main(int argc, char **argv) {
    cli_init("lq-synth");
    int64_t     dim = 2048, hidden = 5632, layers = 22, heads = 32, kv = 4, vocab = 32000, ctx = 2048, seed = 1;
    const char *out = NULL, *dt = "f16";
    bool        tied = false;
    uint64_t    shard = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int64_t    *target = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--dim")) target = &dim;
        else if (!strcmp(a, "--hidden")) target = &hidden;
        else if (!strcmp(a, "--layers")) target = &layers;
        else if (!strcmp(a, "--heads")) target = &heads;
        else if (!strcmp(a, "--kv-heads")) target = &kv;
        else if (!strcmp(a, "--vocab")) target = &vocab;
        else if (!strcmp(a, "--ctx")) target = &ctx;
        else if (!strcmp(a, "--seed")) target = &seed;
        else if (!strcmp(a, "--dtype")) dt = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--tied")) tied = true;
        else if (!strcmp(a, "--max-shard-size")) {
            if (!cli_parse_size(cli_value(argc, argv, &i), &shard)) cli_usage_error("--max-shard-size: bad size");
        } else if (a[0] == '-') cli_usage_error("unknown option '%s'", a);
        else if (!out) out = a;
        else cli_usage_error("unexpected argument '%s'", a);
        if (target && !cli_parse_i64(cli_value(argc, argv, &i), target == &seed ? 0 : 1, 1 << 30, target))
            cli_usage_error("%s needs a positive integer", a);
    }
    if (!out) cli_usage_error("no OUTDIR given");
    const lq_dtype dtype = !strcmp(dt, "f32") ? LQ_DTYPE_F32 : !strcmp(dt, "f16") ? LQ_DTYPE_F16
                         : !strcmp(dt, "bf16") ? LQ_DTYPE_BF16 : LQ_DTYPE_COUNT;
    if (dtype == LQ_DTYPE_COUNT) cli_usage_error("--dtype: '%s' is not f32, f16 or bf16", dt);
    if (dim % heads || heads % kv || (dim / heads) % 2) cli_usage_error("dim, heads and kv-heads are inconsistent");
    const int64_t hd = dim / heads, kvd = kv * hd;
    mkdir(out, 0755);
    const int64_t n   = 2 + (tied ? 0 : 1) + layers * 9;
    lq_st_entry  *e   = calloc((size_t)n, sizeof *e);
    gen          *g   = calloc((size_t)n, sizeof *g);
    char        (*nm)[96] = calloc((size_t)n, sizeof *nm);
    if (!e || !g || !nm) return 1;
    int64_t k = 0;
#define ADD(rows, cols, is_norm, ...)                                                        \
    do {                                                                                     \
        snprintf(nm[k], sizeof nm[k], __VA_ARGS__);                                          \
        g[k] = (gen){(uint64_t)seed * 1000003u + (uint64_t)k, dtype, is_norm};              \
        e[k] = (lq_st_entry){.name = nm[k], .dtype = dtype, .fill = fill, .fill_user = &g[k]}; \
        if (rows) {                                                                          \
            e[k].n_dims = 2, e[k].shape[0] = rows, e[k].shape[1] = cols;                    \
        } else {                                                                             \
            e[k].n_dims = 1, e[k].shape[0] = cols;                                           \
        }                                                                                    \
        k++;                                                                                 \
    } while (0)
    ADD(vocab, dim, false, "model.embed_tokens.weight");
    for (int64_t l = 0; l < layers; l++) {
        ADD(0, dim, true, "model.layers.%lld.input_layernorm.weight", (long long)l);
        ADD(dim, dim, false, "model.layers.%lld.self_attn.q_proj.weight", (long long)l);
        ADD(kvd, dim, false, "model.layers.%lld.self_attn.k_proj.weight", (long long)l);
        ADD(kvd, dim, false, "model.layers.%lld.self_attn.v_proj.weight", (long long)l);
        ADD(dim, dim, false, "model.layers.%lld.self_attn.o_proj.weight", (long long)l);
        ADD(0, dim, true, "model.layers.%lld.post_attention_layernorm.weight", (long long)l);
        ADD(hidden, dim, false, "model.layers.%lld.mlp.gate_proj.weight", (long long)l);
        ADD(hidden, dim, false, "model.layers.%lld.mlp.up_proj.weight", (long long)l);
        ADD(dim, hidden, false, "model.layers.%lld.mlp.down_proj.weight", (long long)l);
    }
    ADD(0, dim, true, "model.norm.weight");
    if (!tied) ADD(vocab, dim, false, "lm_head.weight");
#undef ADD
    lq_st_write_params p = lq_st_write_default_params();
    const lq_kv        meta[2] = {{"format", "pt"}, {"libquant_synthetic", "random weights, no knowledge"}};
    p.metadata               = meta;
    p.n_metadata             = 2;
    p.max_shard_size         = shard;
    p.progress               = cli_progress;
    lq_status st             = lq_safetensors_write_dir(out, e, k, &p);
    cli_progress_end();
    if (st != LQ_OK) {
        cli_error_status(out, st);
        return 1;
    }
    lq_model_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.model_type, sizeof c.model_type, "llama");
    snprintf(c.architecture, sizeof c.architecture, "LlamaForCausalLM");
    snprintf(c.hidden_act, sizeof c.hidden_act, "silu");
    c.vocab_size = vocab, c.hidden_size = dim, c.intermediate_size = hidden, c.n_layers = layers;
    c.n_heads = heads, c.n_kv_heads = kv, c.head_dim = hd, c.max_position_embeddings = ctx;
    c.rms_norm_eps = 1e-5, c.rope_theta = 10000.0, c.tie_word_embeddings = tied;
    c.bos_token_id = 1, c.eos_token_id[0] = 2, c.n_eos = 1, c.dtype = dtype;
    char  *js;
    size_t jl;
    if (lq_hfconfig_to_json(&c, &js, &jl) != LQ_OK) return 1;
    char path[4096];
    if (!cli_join(path, sizeof path, out, "config.json")) return 1;
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(js, 1, jl, f) != jl || fputc('\n', f) == EOF || fclose(f) != 0) {
        cli_error("%s: cannot write", path);
        return 1;
    }
    lq_free(js);
    uint64_t params = 0;
    for (int64_t i = 0; i < k; i++) params += (uint64_t)e[i].shape[0] * (uint64_t)(e[i].n_dims == 2 ? e[i].shape[1] : 1);
    char a[32];
    printf("%s: synthetic llama, %s parameters, %s\n", out, cli_commas(params, a, sizeof a), lq_dtype_name(dtype));
    free(e);
    free(g);
    free(nm);
    return 0;
}
