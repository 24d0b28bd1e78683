/* test_gguf.c : the GGUF reader and the llama writer.
 *
 * Round trips for every KEEP and GGML type (bytes identical after undoing
 * the q/k row permutation, KV values, alignment, offsets); the permutation
 * against two independent truths (RoPE algebra: rotate_half on HF rows ==
 * interleaved RoPE on GGUF rows; and the llama2.c v0 file of stories260K,
 * whose weights are in GGUF's row order); config round trips; stories260K
 * with both of its tokenizers; a GPT-2 tokenizer.json; the checkpoint layer;
 * hostile files built by hand (every prefix, bad magic/version, huge counts,
 * duplicates, unknown types, misaligned offsets, bad ne0). Also writes the
 * interop fixtures under tests/out/gguf_interop/ (tests/interop/README.md). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lq_internal.h"
#include "lq_test.h"

/* ==== fixtures ==== */

static lq_model_config tiny_cfg(void) {
    lq_model_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.model_type, sizeof c.model_type, "llama");
    snprintf(c.architecture, sizeof c.architecture, "LlamaForCausalLM");
    snprintf(c.hidden_act, sizeof c.hidden_act, "silu");
    c.vocab_size              = 32;
    c.hidden_size             = 256;
    c.intermediate_size       = 512;
    c.n_layers                = 2;
    c.n_heads                 = 4;
    c.n_kv_heads              = 2;
    c.head_dim                = 64;
    c.max_position_embeddings = 128;
    c.rms_norm_eps            = 1e-5;
    c.rope_theta              = 10000.0;
    c.tie_word_embeddings     = true;
    c.bos_token_id            = 1;
    c.dtype                   = LQ_DTYPE_F32;
    return c;
}

#define MAX_T 64

typedef struct {
    lq_qtensor t[MAX_T];
    void      *buf[MAX_T];
    char       name[MAX_T][96];
    int        n;
} model;

static void model_free(model *m) {
    for (int i = 0; i < m->n; i++) free(m->buf[i]);
    m->n = 0;
}

/* GGML blocks with sane f16 scales and random payload (no quantizer needed) */
static void fill_ggml(lq_qtype q, uint8_t *p, uint64_t n_blocks, uint64_t *seed) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(q);
    for (uint64_t b = 0; b < n_blocks; b++) {
        uint8_t *blk = p + b * (uint64_t)tr->block_bytes;
        for (int k = 0; k < tr->block_bytes; k++) blk[k] = (uint8_t)lq_test_rand(seed);
        const uint16_t d = lq_f32_to_f16(0.01f + 0.02f * fabsf(lq_test_randf(seed)));
        const uint16_t m = lq_f32_to_f16(0.005f + 0.01f * fabsf(lq_test_randf(seed)));
        if (q == LQ_QT_Q6_K) {
            memcpy(blk + 208, &d, 2);
        } else {
            memcpy(blk, &d, 2);
            if (q == LQ_QT_Q4_K) memcpy(blk + 2, &m, 2);
        }
    }
}

/* a matrix (rows x cols) of type q, or a vector (rows) when cols == 0 */
static void add_tensor(model *m, const char *name, lq_qtype q, int64_t rows, int64_t cols, uint64_t *seed) {
    LQ_ASSERT(m->n < MAX_T);
    const int         i  = m->n++;
    lq_qtensor       *t  = &m->t[i];
    const lq_qtype_traits *tr = lq_qtype_traits_of(q);
    snprintf(m->name[i], sizeof m->name[i], "%s", name);
    memset(t, 0, sizeof *t);
    t->name   = m->name[i];
    t->qtype  = q;
    t->n_dims = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    const uint64_t row_bytes = cols ? lq_qtype_row_bytes(q, cols) : (uint64_t)tr->block_bytes;
    const size_t   nbytes    = (size_t)(row_bytes * (uint64_t)rows);
    uint8_t       *p         = malloc(nbytes ? nbytes : 1);
    m->buf[i]                = p;
    t->data                  = p;
    if (tr->kind == LQ_QK_GGML) {
        fill_ggml(q, p, nbytes / (size_t)tr->block_bytes, seed);
    } else {
        const size_t n = nbytes / (size_t)tr->block_bytes;
        for (size_t k = 0; k < n; k++) {
            const float f = lq_test_randf(seed);
            if (q == LQ_QT_F32) {
                memcpy(p + 4 * k, &f, 4);
            } else {
                const uint16_t h = q == LQ_QT_F16 ? lq_f32_to_f16(f) : lq_f32_to_bf16(f);
                memcpy(p + 2 * k, &h, 2);
            }
        }
    }
}

/* the llama tensors of `c`; matrices in `q` (ffn_down in `q_down`), vectors in `qv` */
static void build_model(model *m, const lq_model_config *c, lq_qtype q, lq_qtype q_down, lq_qtype qv, bool lm_head,
                        bool biases, uint64_t seed) {
    char          nm[96];
    const int64_t H = c->hidden_size, F = c->intermediate_size, QD = c->n_heads * c->head_dim,
                  KD = c->n_kv_heads * c->head_dim;
    m->n = 0;
    add_tensor(m, "model.embed_tokens.weight", q, c->vocab_size, H, &seed);
    for (int64_t l = 0; l < c->n_layers; l++) {
#define T(suffix, qq, r, cc)                                                                                           \
    do {                                                                                                               \
        snprintf(nm, sizeof nm, "model.layers.%lld.%s", (long long)l, suffix);                                         \
        add_tensor(m, nm, qq, r, cc, &seed);                                                                           \
    } while (0)
        T("input_layernorm.weight", qv, H, 0);
        T("self_attn.q_proj.weight", q, QD, H);
        T("self_attn.k_proj.weight", q, KD, H);
        T("self_attn.v_proj.weight", q, KD, H);
        T("self_attn.o_proj.weight", q, H, QD);
        if (biases) {
            T("self_attn.q_proj.bias", qv, QD, 0);
            T("self_attn.k_proj.bias", qv, KD, 0);
            T("self_attn.v_proj.bias", qv, KD, 0);
        }
        T("post_attention_layernorm.weight", qv, H, 0);
        T("mlp.gate_proj.weight", q, F, H);
        T("mlp.up_proj.weight", q, F, H);
        T("mlp.down_proj.weight", q_down, H, F);
#undef T
    }
    add_tensor(m, "model.norm.weight", qv, H, 0, &seed);
    if (lm_head) add_tensor(m, "lm_head.weight", q, c->vocab_size, H, &seed);
}

static const lq_qtensor *model_find(const model *m, const char *hf) {
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->t[i].name, hf) == 0) return &m->t[i];
    return NULL;
}

static bool is_q_or_k(const char *hf) { return strstr(hf, "q_proj") || strstr(hf, "k_proj"); }

/* GGUF row index of HF row r (per head of hd rows: HF p*hd/2 + i -> GGUF 2i + p) */
static int64_t gguf_row_of(int64_t r, int64_t hd) {
    const int64_t h = r / hd, j = r % hd, p = j / (hd / 2), i = j % (hd / 2);
    return h * hd + 2 * i + p;
}

static float elem_f32(lq_qtype q, const uint8_t *p, int64_t k) {
    if (q == LQ_QT_F32) {
        float f;
        memcpy(&f, p + 4 * k, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, p + 2 * k, 2);
    return q == LQ_QT_F16 ? lq_f16_to_f32(h) : lq_bf16_to_f32(h);
}

/* every tensor of the file equals its source: names, types, shapes, bytes
 * (q/k rows permuted, vectors as f32), data at aligned, running offsets */
static void check_tensors(const lq_gguf *g, const model *m, const lq_model_config *c) {
    CU_ASSERT_EQUAL_FATAL(lq_gguf_count(g), m->n);
    const uint32_t al   = lq_gguf_alignment(g);
    const uint8_t *base = lq_gguf_tensor(g, 0)->data;
    uint64_t       off  = 0;
    for (int64_t i = 0; i < lq_gguf_count(g); i++) {
        const lq_tensor_info *t = lq_gguf_tensor(g, i);
        char                  hf[128];
        CU_ASSERT_PTR_NOT_NULL_FATAL(lq_gguf_hf_name(t->name, hf, sizeof hf));
        const lq_qtensor *s = model_find(m, hf);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT_EQUAL((const uint8_t *)t->data - base, (ptrdiff_t)off);
        CU_ASSERT_EQUAL((uintptr_t)t->data % al, 0);
        off += (t->nbytes + al - 1) / al * al;
        if (s->n_dims == 1) {
            CU_ASSERT_EQUAL(t->n_dims, 1);
            CU_ASSERT_EQUAL(t->dtype, LQ_DTYPE_F32);
            CU_ASSERT_EQUAL(lq_gguf_tensor_ggml_type(g, i), 0);
            CU_ASSERT_EQUAL_FATAL(t->shape[0], s->shape[0]);
            const int64_t hd = is_q_or_k(hf) ? c->head_dim : 0;
            int           bad = 0;
            for (int64_t r = 0; r < s->shape[0]; r++) {
                const float want = elem_f32(s->qtype, s->data, r);
                float       got;
                memcpy(&got, (const uint8_t *)t->data + 4 * (hd ? gguf_row_of(r, hd) : r), 4);
                bad += memcmp(&want, &got, 4) != 0;
            }
            CU_ASSERT_EQUAL(bad, 0);
            continue;
        }
        const lq_qtype_traits *tr = lq_qtype_traits_of(s->qtype);
        CU_ASSERT_EQUAL(t->n_dims, 2);
        CU_ASSERT_EQUAL(t->shape[0], s->shape[0]);
        CU_ASSERT_EQUAL(t->shape[1], s->shape[1]);
        CU_ASSERT_EQUAL(lq_gguf_tensor_ggml_type(g, i), tr->ggml_type);
        if (tr->kind == LQ_QK_GGML) {
            CU_ASSERT_EQUAL(t->dtype, LQ_DTYPE_U8);
            CU_ASSERT_EQUAL(t->qtype, s->qtype);
        } else {
            CU_ASSERT_EQUAL(t->dtype, tr->dtype);
            CU_ASSERT_EQUAL(t->qtype, LQ_QT_NONE);
        }
        const uint64_t rb = lq_qtype_row_bytes(s->qtype, s->shape[1]);
        CU_ASSERT_EQUAL_FATAL(t->nbytes, rb * (uint64_t)s->shape[0]);
        const int64_t hd  = is_q_or_k(hf) ? c->head_dim : 0;
        int           bad = 0;
        for (int64_t r = 0; r < s->shape[0]; r++)
            bad += memcmp((const uint8_t *)t->data + (uint64_t)(hd ? gguf_row_of(r, hd) : r) * rb,
                          (const uint8_t *)s->data + (uint64_t)r * rb, rb) != 0;
        CU_ASSERT_EQUAL(bad, 0);
        if (bad) fprintf(stderr, "tensor %s: %d rows differ\n", t->name, bad);
    }
}

static int64_t get_i(const lq_gguf *g, const char *key) {
    int64_t v = -12345;
    CU_ASSERT_EQUAL(lq_gguf_get_i64(g, key, &v), LQ_OK);
    return v;
}

static const char *get_s(const lq_gguf *g, const char *key) {
    const char *s = "";
    CU_ASSERT_EQUAL(lq_gguf_get_str(g, key, &s), LQ_OK);
    return s;
}

static lq_gguf_write_params fast_params(void) {
    lq_gguf_write_params p = lq_gguf_write_default_params();
    p.no_fsync             = true;
    return p;
}

/* ==== names ==== */

static void test_gguf_names(void) {
    static const char *const pairs[][2] = {
        {"model.embed_tokens.weight", "token_embd.weight"},
        {"model.norm.weight", "output_norm.weight"},
        {"lm_head.weight", "output.weight"},
        {"model.layers.0.input_layernorm.weight", "blk.0.attn_norm.weight"},
        {"model.layers.12.self_attn.q_proj.weight", "blk.12.attn_q.weight"},
        {"model.layers.3.self_attn.k_proj.bias", "blk.3.attn_k.bias"},
        {"model.layers.3.self_attn.v_proj.weight", "blk.3.attn_v.weight"},
        {"model.layers.3.self_attn.o_proj.weight", "blk.3.attn_output.weight"},
        {"model.layers.7.post_attention_layernorm.weight", "blk.7.ffn_norm.weight"},
        {"model.layers.7.mlp.gate_proj.weight", "blk.7.ffn_gate.weight"},
        {"model.layers.7.mlp.up_proj.weight", "blk.7.ffn_up.weight"},
        {"model.layers.100.mlp.down_proj.bias", "blk.100.ffn_down.bias"},
    };
    char buf[128];
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        const char *r = lq_gguf_hf_name(pairs[i][1], buf, sizeof buf);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_STRING_EQUAL(r, pairs[i][0]);
    }
    static const char *const unknown[] = {"rope_freqs.weight", "blk.01.attn_q.weight", "blk.x.attn_q.weight",
                                          "blk.0.attn_q",      "blk.0.attn_q.scale",   "token_embd",
                                          "blk.0.ffn_gate_exps.weight", "blk..attn_q.weight", "",
                                          "blk.99999999.attn_q.weight"};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        CU_ASSERT_PTR_NULL(lq_gguf_hf_name(unknown[i], buf, sizeof buf));
    CU_ASSERT_PTR_NULL(lq_gguf_hf_name("blk.12.attn_q.weight", buf, 10)); /* does not fit */
    CU_ASSERT_PTR_NULL(lq_gguf_hf_name(NULL, buf, sizeof buf));
}

/* ==== round trips ==== */

static void round_trip(lq_qtype q) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(q);
    lq_model_config        c  = tiny_cfg();
    model                  m;
    /* vectors in the same KEEP type (converted to f32), else f16 */
    const lq_qtype qv = tr->kind == LQ_QK_KEEP ? q : LQ_QT_F16;
    build_model(&m, &c, q, q, qv, true, q == LQ_QT_F32, 7 + (uint64_t)q);
    char path[512];
    snprintf(path, sizeof path, "%s/m.gguf", lq_test_tmpdir("gguf_rt"));
    lq_gguf_write_params p = fast_params();
    p.name                 = "tiny";
    CU_ASSERT_EQUAL_FATAL(lq_gguf_write_llama(path, &c, m.t, m.n, &p), LQ_OK);
    lq_gguf *g;
    CU_ASSERT_EQUAL_FATAL(lq_gguf_open(path, &g), LQ_OK);
    CU_ASSERT_EQUAL(lq_gguf_version(g), 3);
    CU_ASSERT_EQUAL(lq_gguf_alignment(g), 32);
    check_tensors(g, &m, &c);
    CU_ASSERT_STRING_EQUAL(get_s(g, "general.architecture"), "llama");
    CU_ASSERT_STRING_EQUAL(get_s(g, "general.name"), "tiny");
    static const struct {
        lq_qtype q;
        int64_t  ft;
    } ft[] = {{LQ_QT_F32, 0}, {LQ_QT_F16, 1}, {LQ_QT_BF16, 32}, {LQ_QT_Q8_0, 7},
              {LQ_QT_Q4_0, 2}, {LQ_QT_Q5_0, 8}, {LQ_QT_Q4_K, 14}, {LQ_QT_Q6_K, 18}};
    for (size_t i = 0; i < sizeof ft / sizeof ft[0]; i++)
        if (ft[i].q == q) CU_ASSERT_EQUAL(get_i(g, "general.file_type"), ft[i].ft);
    int64_t qv2;
    CU_ASSERT_EQUAL(lq_gguf_get_i64(g, "general.quantization_version", &qv2),
                    tr->kind == LQ_QK_GGML ? LQ_OK : LQ_ERR_NOT_FOUND);
    if (tr->kind == LQ_QK_GGML) CU_ASSERT_EQUAL(qv2, 2);
    CU_ASSERT_EQUAL(get_i(g, "llama.embedding_length"), 256);
    CU_ASSERT_EQUAL(get_i(g, "llama.rope.dimension_count"), 64);
    /* integers are UINT32, floats FLOAT32 */
    for (int64_t i = 0; i < lq_gguf_kv_count(g); i++) {
        const char *k = lq_gguf_kv_key(g, i);
        if (strncmp(k, "llama.", 6) == 0)
            CU_ASSERT(lq_gguf_kv_type(g, i) == LQ_GGUF_UINT32 || lq_gguf_kv_type(g, i) == LQ_GGUF_FLOAT32);
    }
    lq_gguf_close(g);
    model_free(&m);
}

static void test_gguf_round_trip_every_type(void) {
    int n = 0;
    for (int q = 1; q < LQ_QT_COUNT; q++) {
        const lq_qtype_traits *tr = lq_qtype_traits_of((lq_qtype)q);
        if (tr->kind != LQ_QK_KEEP && tr->kind != LQ_QK_GGML) continue;
        round_trip((lq_qtype)q);
        n++;
    }
    CU_ASSERT_EQUAL(n, 8);
}

/* mixed types, an alignment of 64, no lm_head, head_dim != hidden/heads, linear rope */
static void test_gguf_config_round_trip(void) {
    lq_model_config c = tiny_cfg();
    c.head_dim        = 32; /* 4 x 32 != 256 */
    c.rope_type       = LQ_ROPE_LINEAR;
    c.rope_factor     = 4.0;
    c.rope_theta      = 500000.0;
    c.rms_norm_eps    = 1e-6;
    c.tie_word_embeddings = true;
    model m;
    build_model(&m, &c, LQ_QT_Q8_0, LQ_QT_Q6_K, LQ_QT_BF16, false, false, 99);
    m.t[1].qtype = LQ_QT_F32; /* a few odd ones out */
    free(m.buf[1]);
    {
        uint64_t s = 5;
        model    tmp = {.n = 0};
        add_tensor(&tmp, m.name[1], LQ_QT_F32, m.t[1].shape[0], 0, &s);
        m.buf[1] = tmp.buf[0];
        m.t[1].data = tmp.buf[0];
    }
    char path[512];
    snprintf(path, sizeof path, "%s/m.gguf", lq_test_tmpdir("gguf_cfg"));
    lq_gguf_write_params p = fast_params();
    p.alignment            = 64;
    CU_ASSERT_EQUAL_FATAL(lq_gguf_write_llama(path, &c, m.t, m.n, &p), LQ_OK);
    lq_gguf *g;
    CU_ASSERT_EQUAL_FATAL(lq_gguf_open(path, &g), LQ_OK);
    CU_ASSERT_EQUAL(lq_gguf_alignment(g), 64);
    CU_ASSERT_EQUAL(get_i(g, "general.alignment"), 64);
    check_tensors(g, &m, &c);
    CU_ASSERT_EQUAL(get_i(g, "general.file_type"), 7);
    CU_ASSERT_EQUAL(get_i(g, "llama.attention.key_length"), 32);
    CU_ASSERT_STRING_EQUAL(get_s(g, "llama.rope.scaling.type"), "linear");
    lq_model_config r;
    CU_ASSERT_EQUAL_FATAL(lq_gguf_config(g, &r), LQ_OK);
    CU_ASSERT_STRING_EQUAL(r.model_type, "llama");
    CU_ASSERT_STRING_EQUAL(r.architecture, "LlamaForCausalLM");
    CU_ASSERT_EQUAL(r.vocab_size, c.vocab_size);
    CU_ASSERT_EQUAL(r.hidden_size, c.hidden_size);
    CU_ASSERT_EQUAL(r.intermediate_size, c.intermediate_size);
    CU_ASSERT_EQUAL(r.n_layers, c.n_layers);
    CU_ASSERT_EQUAL(r.n_heads, c.n_heads);
    CU_ASSERT_EQUAL(r.n_kv_heads, c.n_kv_heads);
    CU_ASSERT_EQUAL(r.head_dim, 32);
    CU_ASSERT_EQUAL(r.max_position_embeddings, c.max_position_embeddings);
    CU_ASSERT_EQUAL(r.rms_norm_eps, (double)(float)1e-6);
    CU_ASSERT_EQUAL(r.rope_theta, 500000.0);
    CU_ASSERT_EQUAL(r.rope_type, LQ_ROPE_LINEAR);
    CU_ASSERT_EQUAL(r.rope_factor, 4.0);
    CU_ASSERT(r.tie_word_embeddings);
    CU_ASSERT(!r.attention_bias);
    CU_ASSERT_EQUAL(r.bos_token_id, -1); /* no tokenizer */
    CU_ASSERT_EQUAL(r.n_eos, 0);
    CU_ASSERT_STRING_EQUAL(r.hidden_act, "silu");
    lq_gguf_close(g);
    model_free(&m);
}

/* rotate_half RoPE on HF rows == interleaved RoPE on the GGUF rows */
static void rope_rotate_half(float *x, int64_t hd, int64_t pos, double base) {
    for (int64_t i = 0; i < hd / 2; i++) {
        const double th = (double)pos * pow(base, -2.0 * (double)i / (double)hd);
        const double a = x[i], b = x[i + hd / 2];
        x[i]          = (float)(a * cos(th) - b * sin(th));
        x[i + hd / 2] = (float)(b * cos(th) + a * sin(th));
    }
}
static void rope_interleaved(float *x, int64_t hd, int64_t pos, double base) {
    for (int64_t i = 0; i < hd / 2; i++) {
        const double th = (double)pos * pow(base, -2.0 * (double)i / (double)hd);
        const double a = x[2 * i], b = x[2 * i + 1];
        x[2 * i]     = (float)(a * cos(th) - b * sin(th));
        x[2 * i + 1] = (float)(b * cos(th) + a * sin(th));
    }
}
static void matvec(const float *w, const float *x, int64_t rows, int64_t cols, float *y) {
    for (int64_t r = 0; r < rows; r++) {
        double s = 0;
        for (int64_t k = 0; k < cols; k++) s += (double)w[r * cols + k] * x[k];
        y[r] = (float)s;
    }
}

static void test_gguf_qk_permutation_is_rope_equivalent(void) {
    lq_model_config c = tiny_cfg();
    c.hidden_size     = 32;
    c.n_heads         = 4;
    c.n_kv_heads      = 2;
    c.head_dim        = 8;
    c.intermediate_size = 32;
    c.n_layers        = 1;
    model m;
    build_model(&m, &c, LQ_QT_F32, LQ_QT_F32, LQ_QT_F32, false, false, 3);
    char path[512];
    snprintf(path, sizeof path, "%s/m.gguf", lq_test_tmpdir("gguf_rope"));
    lq_gguf_write_params p = fast_params();
    CU_ASSERT_EQUAL_FATAL(lq_gguf_write_llama(path, &c, m.t, m.n, &p), LQ_OK);
    lq_gguf *g;
    CU_ASSERT_EQUAL_FATAL(lq_gguf_open(path, &g), LQ_OK);
    const float *wq_hf = model_find(&m, "model.layers.0.self_attn.q_proj.weight")->data;
    const float *wk_hf = model_find(&m, "model.layers.0.self_attn.k_proj.weight")->data;
    const float *wq_gg = lq_gguf_find(g, "blk.0.attn_q.weight")->data;
    const float *wk_gg = lq_gguf_find(g, "blk.0.attn_k.weight")->data;
    uint64_t     seed  = 11;
    float        x[32], y[32], qh[32], kh[16], qg[32], kg[16];
    for (int i = 0; i < 32; i++) x[i] = lq_test_randf(&seed), y[i] = lq_test_randf(&seed);
    matvec(wq_hf, x, 32, 32, qh);
    matvec(wq_gg, x, 32, 32, qg);
    matvec(wk_hf, y, 16, 32, kh);
    matvec(wk_gg, y, 16, 32, kg);
    const int64_t mpos = 7, npos = 3;
    for (int h = 0; h < 4; h++) rope_rotate_half(qh + 8 * h, 8, mpos, 10000), rope_interleaved(qg + 8 * h, 8, mpos, 10000);
    for (int h = 0; h < 2; h++) rope_rotate_half(kh + 8 * h, 8, npos, 10000), rope_interleaved(kg + 8 * h, 8, npos, 10000);
    double maxd = 0;
    for (int h = 0; h < 4; h++) {
        const int kvh = h / 2;
        double    a = 0, b = 0;
        for (int d = 0; d < 8; d++) a += (double)qh[8 * h + d] * kh[8 * kvh + d], b += (double)qg[8 * h + d] * kg[8 * kvh + d];
        maxd = fmax(maxd, fabs(a - b));
    }
    CU_ASSERT(maxd < 1e-5);
    /* and the vectors themselves are each other's permutation */
    for (int r = 0; r < 32; r++) CU_ASSERT(fabsf(qg[gguf_row_of(r, 8)] - qh[r]) < 1e-5f);
    lq_gguf_close(g);
    model_free(&m);
}

static void test_gguf_writer_refuses(void) {
    lq_model_config c = tiny_cfg();
    model           m;
    char            path[512];
    snprintf(path, sizeof path, "%s/m.gguf", lq_test_tmpdir("gguf_refuse"));
    lq_gguf_write_params p = fast_params();
    lq_test_quiet(1);
    /* INT types: GGUF has none */
    build_model(&m, &c, LQ_QT_F32, LQ_QT_F32, LQ_QT_F32, false, false, 1);
    lq_qtensor t = m.t[2];
    t.qtype      = LQ_QT_INT4_G128;
    lq_qtensor one[1] = {t};
    CU_ASSERT_EQUAL(lq_gguf_write_llama(path, &c, one, 1, &p), LQ_ERR_UNSUPPORTED);
    CU_ASSERT(strstr(lq_test_last_error(), "q_proj") != NULL);
    /* an unknown name */
    t       = m.t[2];
    t.name  = "model.layers.0.self_attn.rotary_emb.inv_freq";
    one[0]  = t;
    CU_ASSERT_EQUAL(lq_gguf_write_llama(path, &c, one, 1, &p), LQ_ERR_FORMAT);
    CU_ASSERT(strstr(lq_test_last_error(), "rotary_emb") != NULL);
    /* a layer past the config */
    t      = m.t[2];
    t.name = "model.layers.2.self_attn.q_proj.weight";
    one[0] = t;
    CU_ASSERT_EQUAL(lq_gguf_write_llama(path, &c, one, 1, &p), LQ_ERR_FORMAT);
    /* a row length that is not a block multiple */
    t          = m.t[2];
    t.qtype    = LQ_QT_Q4_K;
    t.shape[1] = 172;
    one[0]     = t;
    CU_ASSERT_EQUAL(lq_gguf_write_llama(path, &c, one, 1, &p), LQ_ERR_SHAPE);
    /* q rows that do not match heads x head_dim */
    t          = m.t[2];
    t.shape[0] = 128;
    one[0]     = t;
    CU_ASSERT_EQUAL(lq_gguf_write_llama(path, &c, one, 1, &p), LQ_ERR_SHAPE);
    /* duplicate names */
    lq_qtensor two[2] = {m.t[2], m.t[2]};
    CU_ASSERT_EQUAL(lq_gguf_write_llama(path, &c, two, 2, &p), LQ_ERR_INVALID_ARG);
    /* rope scaling other than linear */
    lq_model_config y = c;
    y.rope_type       = LQ_ROPE_YARN;
    y.rope_factor     = 4;
    CU_ASSERT_EQUAL(lq_gguf_write_llama(path, &y, m.t, m.n, &p), LQ_ERR_UNSUPPORTED);
    y.rope_type = LQ_ROPE_LLAMA3;
    CU_ASSERT_EQUAL(lq_gguf_write_llama(path, &y, m.t, m.n, &p), LQ_ERR_UNSUPPORTED);
    /* alignment */
    p.alignment = 24;
    CU_ASSERT_EQUAL(lq_gguf_write_llama(path, &c, m.t, m.n, &p), LQ_ERR_INVALID_ARG);
    lq_test_quiet(0);
    CU_ASSERT(!lq__file_exists(path));
    model_free(&m);
}

static int cancel_at_3(float done, const char *stage, void *user) {
    (void)done, (void)stage;
    return ++*(int *)user >= 3;
}

static void test_gguf_cancel_leaves_nothing(void) {
    lq_model_config c = tiny_cfg();
    model           m;
    build_model(&m, &c, LQ_QT_F16, LQ_QT_F16, LQ_QT_F32, false, false, 2);
    const char *dir = lq_test_tmpdir("gguf_cancel");
    char        path[512];
    snprintf(path, sizeof path, "%s/m.gguf", dir);
    lq_gguf_write_params p = fast_params();
    int                  calls = 0;
    p.progress             = cancel_at_3;
    p.progress_user        = &calls;
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_gguf_write_llama(path, &c, m.t, m.n, &p), LQ_ERR_CANCELLED);
    lq_test_quiet(0);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
    model_free(&m);
}

/* ==== stories260K ==== */

typedef struct {
    lq_checkpoint  *ck;
    lq_model_config cfg;
    lq_qtensor      t[64];
    int64_t         n;
} hf_model;

static bool load_stories(hf_model *h) {
    memset(h, 0, sizeof *h);
    if (lq_checkpoint_open(lq_test_shared("stories260K-hf"), &h->ck) != LQ_OK) return false;
    if (lq_hfconfig_load(lq_test_shared("stories260K-hf/config.json"), &h->cfg) != LQ_OK) return false;
    h->n = lq_checkpoint_count(h->ck);
    for (int64_t i = 0; i < h->n && i < 64; i++) {
        const lq_tensor_info *ti = lq_checkpoint_tensor(h->ck, i);
        lq_qtensor           *q  = &h->t[i];
        q->name                  = ti->name;
        q->qtype                 = LQ_QT_F32;
        q->n_dims                = ti->n_dims;
        q->shape[0]              = ti->shape[0];
        q->shape[1]              = ti->n_dims > 1 ? ti->shape[1] : 0;
        q->data                  = ti->data;
    }
    return true;
}

/* the llama2.c v0 file: every tensor of our GGUF equals its bytes */
static void check_against_llama2c(const lq_gguf *g) {
    size_t   len;
    uint8_t *f = lq_test_read_file(lq_test_shared("stories260K/stories260K.bin"), &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    const int64_t D = 64, Hd = 172, L = 5, KV = 32, V = 512;
    const float  *p = (const float *)(f + 28);
    struct {
        const char *name;
        int64_t     per_layer; /* floats per layer, 0: global */
        int64_t     n;
    } parts[] = {{"token_embd", 0, V * D},  {"attn_norm", D, 0},   {"attn_q", D * D, 0},  {"attn_k", KV * D, 0},
                 {"attn_v", KV * D, 0},     {"attn_output", D * D, 0}, {"ffn_norm", D, 0}, {"ffn_gate", Hd * D, 0},
                 {"ffn_down", D * Hd, 0},   {"ffn_up", Hd * D, 0}, {"output_norm", 0, D}};
    int checked = 0;
    for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++) {
        if (parts[k].per_layer == 0) {
            char nm[64];
            snprintf(nm, sizeof nm, "%s.weight", parts[k].name);
            const lq_tensor_info *t = lq_gguf_find(g, nm);
            CU_ASSERT_PTR_NOT_NULL_FATAL(t);
            CU_ASSERT_EQUAL(t->nbytes, (uint64_t)parts[k].n * 4);
            CU_ASSERT(memcmp(t->data, p, (size_t)parts[k].n * 4) == 0);
            p += parts[k].n;
            checked++;
            continue;
        }
        for (int64_t l = 0; l < L; l++) {
            char nm[64];
            snprintf(nm, sizeof nm, "blk.%lld.%s.weight", (long long)l, parts[k].name);
            const lq_tensor_info *t = lq_gguf_find(g, nm);
            CU_ASSERT_PTR_NOT_NULL_FATAL(t);
            CU_ASSERT_EQUAL(t->nbytes, (uint64_t)parts[k].per_layer * 4);
            const bool same = memcmp(t->data, p, (size_t)parts[k].per_layer * 4) == 0;
            CU_ASSERT(same);
            if (!same) fprintf(stderr, "%s differs from stories260K.bin\n", nm);
            p += parts[k].per_layer;
            checked++;
        }
    }
    CU_ASSERT_EQUAL(checked, 47);
    free(f);
}

static void check_spm_vocab(const lq_gguf *g) {
    lq_tokenizer *tok;
    CU_ASSERT_EQUAL_FATAL(lq_tokenizer_open(lq_test_shared("stories260K-hf/tokenizer.model"), 0, &tok), LQ_OK);
    CU_ASSERT_STRING_EQUAL(get_s(g, "tokenizer.ggml.model"), "llama");
    lq_gguf_type et;
    uint64_t     n;
    CU_ASSERT_EQUAL_FATAL(lq_gguf_get_array(g, "tokenizer.ggml.tokens", &et, &n), LQ_OK);
    CU_ASSERT_EQUAL(et, LQ_GGUF_STRING);
    CU_ASSERT_EQUAL_FATAL(n, 512);
    int bad = 0, types[7] = {0};
    for (uint64_t i = 0; i < n; i++) {
        const char *s;
        uint64_t    len;
        double      sc;
        int64_t     ty;
        CU_ASSERT_EQUAL_FATAL(lq_gguf_array_str(g, "tokenizer.ggml.tokens", i, &s, &len), LQ_OK);
        CU_ASSERT_EQUAL_FATAL(lq_gguf_array_f64(g, "tokenizer.ggml.scores", i, &sc), LQ_OK);
        CU_ASSERT_EQUAL_FATAL(lq_gguf_array_i64(g, "tokenizer.ggml.token_type", i, &ty), LQ_OK);
        const char *piece = lq_tokenizer_piece(tok, (int32_t)i);
        bad += len != strlen(piece) || memcmp(s, piece, len) != 0;
        bad += sc != (double)lq_tokenizer_score(tok, (int32_t)i);
        bad += ty != lq_tokenizer_token_type(tok, (int32_t)i);
        if (ty >= 0 && ty < 7) types[ty]++;
    }
    CU_ASSERT_EQUAL(bad, 0);
    /* tok512: <unk>, <s> </s>, 256 byte pieces, the rest normal */
    CU_ASSERT_EQUAL(types[2], 1);
    CU_ASSERT_EQUAL(types[3], 2);
    CU_ASSERT_EQUAL(types[6], 256);
    CU_ASSERT_EQUAL(types[1], 512 - 259);
    CU_ASSERT_EQUAL(get_i(g, "tokenizer.ggml.bos_token_id"), 1);
    CU_ASSERT_EQUAL(get_i(g, "tokenizer.ggml.eos_token_id"), 2);
    CU_ASSERT_EQUAL(get_i(g, "tokenizer.ggml.unknown_token_id"), 0);
    bool add_bos = false;
    CU_ASSERT_EQUAL(lq_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos), LQ_OK);
    CU_ASSERT(add_bos);
    lq_tokenizer_free(tok);
}

static void test_gguf_stories260K(void) {
    hf_model h;
    CU_ASSERT_FATAL(load_stories(&h));
    CU_ASSERT_EQUAL_FATAL(h.n, 47);
    const char *dir = lq_test_tmpdir("gguf_stories");
    char        path[512];
    snprintf(path, sizeof path, "%s/stories260K-f32.gguf", dir);
    lq_gguf_write_params p = fast_params();
    p.name                 = "stories260K";
    p.tokenizer_path       = lq_test_shared("stories260K-hf/tokenizer.model");
    char tok_path[512];
    snprintf(tok_path, sizeof tok_path, "%s", p.tokenizer_path);
    p.tokenizer_path = tok_path;
    CU_ASSERT_EQUAL_FATAL(lq_gguf_write_llama(path, &h.cfg, h.t, h.n, &p), LQ_OK);
    /* through the checkpoint layer */
    lq_checkpoint *ck;
    CU_ASSERT_EQUAL_FATAL(lq_checkpoint_open(path, &ck), LQ_OK);
    CU_ASSERT_EQUAL(lq_checkpoint_kind(ck), LQ_CKPT_GGUF);
    CU_ASSERT_STRING_EQUAL(lq_checkpoint_kind_name(LQ_CKPT_GGUF), "gguf");
    CU_ASSERT_EQUAL(lq_checkpoint_count(ck), 47);
    CU_ASSERT_STRING_EQUAL(lq_checkpoint_dir(ck), dir);
    CU_ASSERT_STRING_EQUAL(lq_checkpoint_tensor_file(ck, 0), path);
    CU_ASSERT_PTR_NOT_NULL(lq_checkpoint_find(ck, "blk.4.ffn_down.weight"));
    CU_ASSERT_PTR_NULL(lq_checkpoint_find(ck, "output.weight")); /* tied */
    lq_model_config r;
    CU_ASSERT_EQUAL_FATAL(lq_checkpoint_config(ck, &r), LQ_OK);
    CU_ASSERT_EQUAL(r.vocab_size, 512);
    CU_ASSERT_EQUAL(r.hidden_size, 64);
    CU_ASSERT_EQUAL(r.intermediate_size, 172);
    CU_ASSERT_EQUAL(r.n_layers, 5);
    CU_ASSERT_EQUAL(r.n_heads, 8);
    CU_ASSERT_EQUAL(r.n_kv_heads, 4);
    CU_ASSERT_EQUAL(r.head_dim, 8);
    CU_ASSERT_EQUAL(r.max_position_embeddings, 512);
    CU_ASSERT_EQUAL(r.rms_norm_eps, (double)1e-5f);
    CU_ASSERT_EQUAL(r.rope_theta, 10000.0);
    CU_ASSERT(r.tie_word_embeddings);
    CU_ASSERT_EQUAL(r.bos_token_id, 1);
    CU_ASSERT_EQUAL(r.n_eos, 1);
    CU_ASSERT_EQUAL(r.eos_token_id[0], 2);
    CU_ASSERT_EQUAL(r.dtype, LQ_DTYPE_F32);
    lq_checkpoint_close(ck);
    lq_gguf *g;
    CU_ASSERT_EQUAL_FATAL(lq_gguf_open(path, &g), LQ_OK);
    CU_ASSERT_EQUAL(get_i(g, "general.file_type"), 0);
    CU_ASSERT_EQUAL(get_i(g, "llama.vocab_size"), 512);
    CU_ASSERT_EQUAL(get_i(g, "llama.context_length"), 512);
    CU_ASSERT_EQUAL(get_i(g, "llama.feed_forward_length"), 172);
    CU_ASSERT_EQUAL(get_i(g, "llama.attention.head_count_kv"), 4);
    check_against_llama2c(g);
    check_spm_vocab(g);
    lq_gguf_close(g);
    /* llama2.c's tokenizer.bin: the same vocabulary (same-recipe model) */
    snprintf(tok_path, sizeof tok_path, "%s", lq_test_shared("stories260K/tok512.bin"));
    CU_ASSERT_EQUAL_FATAL(lq_gguf_write_llama(path, &h.cfg, h.t, h.n, &p), LQ_OK);
    CU_ASSERT_EQUAL_FATAL(lq_gguf_open(path, &g), LQ_OK);
    check_spm_vocab(g);
    lq_gguf_close(g);
    lq_checkpoint_close(h.ck);
}

/* a byte-level tokenizer.json (stock GPT-2): "gpt2", merges, pre "gpt-2" */
static void test_gguf_gpt2_tokenizer(void) {
    const char *tj = lq_test_shared("lora/gpt2-tigrinya-lora/tokenizer.json");
    char        tok_path[512];
    snprintf(tok_path, sizeof tok_path, "%s", tj);
    lq_model_config c = tiny_cfg();
    c.vocab_size      = 50257;
    c.hidden_size     = 32;
    c.n_heads         = 4;
    c.n_kv_heads      = 4;
    c.head_dim        = 8;
    c.intermediate_size = 32;
    c.n_layers        = 1;
    model m;
    build_model(&m, &c, LQ_QT_F16, LQ_QT_F16, LQ_QT_F32, false, false, 4);
    char path[512];
    snprintf(path, sizeof path, "%s/gpt2.gguf", lq_test_tmpdir("gguf_gpt2"));
    lq_gguf_write_params p = fast_params();
    p.tokenizer_path       = tok_path;
    CU_ASSERT_EQUAL_FATAL(lq_gguf_write_llama(path, &c, m.t, m.n, &p), LQ_OK);
    lq_gguf *g;
    CU_ASSERT_EQUAL_FATAL(lq_gguf_open(path, &g), LQ_OK);
    CU_ASSERT_STRING_EQUAL(get_s(g, "tokenizer.ggml.model"), "gpt2");
    CU_ASSERT_STRING_EQUAL(get_s(g, "tokenizer.ggml.pre"), "gpt-2");
    lq_gguf_type et;
    uint64_t     n;
    CU_ASSERT_EQUAL(lq_gguf_get_array(g, "tokenizer.ggml.tokens", &et, &n), LQ_OK);
    CU_ASSERT_EQUAL(n, 50257);
    CU_ASSERT_EQUAL(lq_gguf_get_array(g, "tokenizer.ggml.merges", &et, &n), LQ_OK);
    CU_ASSERT_EQUAL(et, LQ_GGUF_STRING);
    CU_ASSERT_EQUAL(n, 50000);
    CU_ASSERT_EQUAL(lq_gguf_get_array(g, "tokenizer.ggml.scores", &et, &n), LQ_ERR_NOT_FOUND);
    const char *s;
    uint64_t    len;
    CU_ASSERT_EQUAL(lq_gguf_array_str(g, "tokenizer.ggml.merges", 0, &s, &len), LQ_OK);
    CU_ASSERT(len == 4 && memcmp(s, "\xC4\xA0 t", 4) == 0); /* "Ġ t" */
    CU_ASSERT_EQUAL(lq_gguf_array_str(g, "tokenizer.ggml.tokens", 50256, &s, &len), LQ_OK);
    CU_ASSERT(len == 13 && memcmp(s, "<|endoftext|>", 13) == 0);
    int64_t ty;
    CU_ASSERT_EQUAL(lq_gguf_array_i64(g, "tokenizer.ggml.token_type", 50256, &ty), LQ_OK);
    CU_ASSERT_EQUAL(ty, 3);
    CU_ASSERT_EQUAL(lq_gguf_array_i64(g, "tokenizer.ggml.token_type", 100, &ty), LQ_OK);
    CU_ASSERT_EQUAL(ty, 1);
    /* wrong-type getters and out-of-range elements */
    lq_test_quiet(1);
    double d;
    CU_ASSERT_EQUAL(lq_gguf_array_f64(g, "tokenizer.ggml.tokens", 0, &d), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(lq_gguf_array_str(g, "tokenizer.ggml.tokens", 50257, &s, &len), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_gguf_get_f64(g, "llama.block_count", &d), LQ_ERR_FORMAT);
    CU_ASSERT(strstr(lq_test_last_error(), "llama.block_count") != NULL);
    CU_ASSERT_EQUAL(lq_gguf_get_str(g, "tokenizer.ggml.tokens", &s), LQ_ERR_FORMAT);
    bool b;
    CU_ASSERT_EQUAL(lq_gguf_get_bool(g, "general.name", &b), LQ_ERR_FORMAT);
    lq_test_quiet(0);
    CU_ASSERT_EQUAL(lq_gguf_get_f64(g, "no.such.key", &d), LQ_ERR_NOT_FOUND);
    CU_ASSERT_EQUAL(lq_gguf_get_f64(g, "llama.rope.freq_base", &d), LQ_OK);
    CU_ASSERT_EQUAL(d, 10000.0);
    lq_gguf_close(g);
    model_free(&m);
}

/* ==== hostile input ==== */

typedef struct {
    uint8_t *p;
    size_t   n, cap;
} bb;

static void b_put(bb *b, const void *s, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p   = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}
static void b_u32(bb *b, uint32_t v) {
    uint8_t x[4];
    for (int i = 0; i < 4; i++) x[i] = (uint8_t)(v >> (8 * i));
    b_put(b, x, 4);
}
static void b_u64(bb *b, uint64_t v) {
    uint8_t x[8];
    for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
    b_put(b, x, 8);
}
static void b_str(bb *b, const char *s) {
    b_u64(b, strlen(s));
    b_put(b, s, strlen(s));
}

/* knobs for a small hand-built file: two tensors "b" (q8_0 [2, 32]) and "a"
 * (f32 [8]), a few KV pairs; the file ends exactly with a's data */
typedef struct {
    const char *magic;
    uint32_t    version;
    int64_t     n_kv, n_t;        /* -1: the real counts */
    bool        dup_key, dup_name, nested, bool2, align_bad, align_type;
    uint32_t    type_b;           /* ggml type of b (8) */
    uint64_t    ne0_b;            /* 32 */
    uint64_t    off_a;            /* 96 (68 rounded to 32) */
    uint32_t    n_dims_a;         /* 1 */
    uint64_t    str_len_override; /* 0: real */
    const char *name_a;
} knobs;

static knobs ok_knobs(void) {
    return (knobs){.magic = "GGUF", .version = 3, .n_kv = -1, .n_t = -1, .type_b = 8, .ne0_b = 32, .off_a = 96,
                   .n_dims_a = 1, .name_a = "a"};
}

static uint8_t *build(const knobs *k, size_t *len) {
    bb b = {0};
    b_put(&b, k->magic, 4);
    b_u32(&b, k->version);
    const int n_kv = 4 + k->dup_key + k->nested;
    b_u64(&b, k->n_t >= 0 ? (uint64_t)k->n_t : 2);
    b_u64(&b, k->n_kv >= 0 ? (uint64_t)k->n_kv : (uint64_t)n_kv);
    b_str(&b, "general.architecture");
    b_u32(&b, LQ_GGUF_STRING);
    if (k->str_len_override) {
        b_u64(&b, k->str_len_override);
        b_put(&b, "llama", 5);
    } else {
        b_str(&b, "llama");
    }
    b_str(&b, "general.alignment");
    b_u32(&b, k->align_type ? LQ_GGUF_UINT64 : LQ_GGUF_UINT32);
    if (k->align_type)
        b_u64(&b, 32);
    else
        b_u32(&b, k->align_bad ? 48 : 32);
    b_str(&b, "tokenizer.ggml.scores");
    b_u32(&b, LQ_GGUF_ARRAY);
    b_u32(&b, LQ_GGUF_FLOAT32);
    b_u64(&b, 3);
    for (int i = 0; i < 3; i++) b_u32(&b, 0x3f800000u);
    b_str(&b, "x.flag");
    b_u32(&b, LQ_GGUF_BOOL);
    b_put(&b, k->bool2 ? "\x02" : "\x01", 1);
    if (k->dup_key) {
        b_str(&b, "x.flag");
        b_u32(&b, LQ_GGUF_UINT8);
        b_put(&b, "\x07", 1);
    }
    if (k->nested) {
        b_str(&b, "x.nested");
        b_u32(&b, LQ_GGUF_ARRAY);
        b_u32(&b, LQ_GGUF_ARRAY);
        b_u64(&b, 0);
    }
    /* tensor infos */
    b_str(&b, "b");
    b_u32(&b, 2);
    b_u64(&b, k->ne0_b);
    b_u64(&b, 2);
    b_u32(&b, k->type_b);
    b_u64(&b, 0);
    b_str(&b, k->dup_name ? "b" : k->name_a);
    b_u32(&b, k->n_dims_a);
    for (uint32_t d = 0; d < k->n_dims_a; d++) b_u64(&b, d == 0 ? 8 : 1);
    b_u32(&b, 0);
    b_u64(&b, k->off_a);
    while (b.n % 32) b_put(&b, "", 1);
    uint64_t seed = 1;
    uint8_t  blocks[68];
    fill_ggml(LQ_QT_Q8_0, blocks, 2, &seed);
    b_put(&b, blocks, 68);
    while (b.n % 32) b_put(&b, "", 1);
    for (int i = 0; i < 8; i++) {
        const float f = (float)i;
        b_put(&b, &f, 4);
    }
    *len = b.n;
    return b.p;
}

static lq_status open_built(const knobs *k) {
    size_t   len;
    uint8_t *img = build(k, &len);
    lq_gguf *g   = NULL;
    lq_status s  = lq_gguf_open_memory(img, len, "built", &g);
    lq_gguf_close(g);
    free(img);
    return s;
}

static void test_gguf_hand_built_valid(void) {
    knobs    k = ok_knobs();
    size_t   len;
    uint8_t *img = build(&k, &len);
    lq_gguf *g;
    CU_ASSERT_EQUAL_FATAL(lq_gguf_open_memory(img, len, "built", &g), LQ_OK);
    CU_ASSERT_EQUAL(lq_gguf_count(g), 2);
    CU_ASSERT_EQUAL(lq_gguf_kv_count(g), 4);
    const lq_tensor_info *b = lq_gguf_tensor(g, 0), *a = lq_gguf_find(g, "a");
    CU_ASSERT_STRING_EQUAL(b->name, "b");
    CU_ASSERT_EQUAL(b->qtype, LQ_QT_Q8_0);
    CU_ASSERT_EQUAL(b->dtype, LQ_DTYPE_U8);
    CU_ASSERT_EQUAL(b->shape[0], 2);
    CU_ASSERT_EQUAL(b->shape[1], 32);
    CU_ASSERT_EQUAL(b->nbytes, 68);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL(a->dtype, LQ_DTYPE_F32);
    CU_ASSERT_EQUAL(((const float *)a->data)[7], 7.0f);
    CU_ASSERT_EQUAL((const uint8_t *)a->data + 32, img + len);
    double d;
    CU_ASSERT_EQUAL(lq_gguf_array_f64(g, "tokenizer.ggml.scores", 2, &d), LQ_OK);
    CU_ASSERT_EQUAL(d, 1.0);
    bool f = false;
    CU_ASSERT_EQUAL(lq_gguf_get_bool(g, "x.flag", &f), LQ_OK);
    CU_ASSERT(f);
    /* a config needs the llama keys: named in the error */
    lq_model_config c;
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_gguf_config(g, &c), LQ_ERR_FORMAT);
    CU_ASSERT(strstr(lq_test_last_error(), "llama.embedding_length") != NULL);
    lq_test_quiet(0);
    lq_gguf_close(g);
    /* every proper prefix is refused, never read past */
    int accepted = 0;
    lq_test_quiet(1);
    for (size_t n = 0; n < len; n++) {
        uint8_t *cut = malloc(n ? n : 1);
        memcpy(cut, img, n);
        lq_gguf *h = NULL;
        const lq_status s = lq_gguf_open_memory(cut, n, "cut", &h);
        accepted += s == LQ_OK;
        CU_ASSERT(s == LQ_ERR_FORMAT);
        lq_gguf_close(h);
        free(cut);
    }
    lq_test_quiet(0);
    CU_ASSERT_EQUAL(accepted, 0);
    free(img);
}

static void test_gguf_hostile_rejected(void) {
    static const struct {
        const char *what;
        const char *msg; /* a fragment of the error */
        lq_status   st;
    } cases[] = {
        {"bad magic", "bad magic", LQ_ERR_FORMAT},
        {"version 1", "version 1", LQ_ERR_FORMAT},
        {"version 4", "version 4", LQ_ERR_FORMAT},
        {"huge n_kv", "key/value pairs", LQ_ERR_FORMAT},
        {"huge n_tensors", "tensors", LQ_ERR_FORMAT},
        {"duplicate key", "duplicate key 'x.flag'", LQ_ERR_FORMAT},
        {"duplicate name", "duplicate tensor name 'b'", LQ_ERR_FORMAT},
        {"unknown type", "unknown ggml type id 99", LQ_ERR_FORMAT},
        {"unread type", "q4_1", LQ_ERR_UNSUPPORTED},
        {"misaligned offset", "tensor 'a' has data offset 68", LQ_ERR_FORMAT},
        {"ne0 not a block multiple", "tensor 'b': ne[0] = 48", LQ_ERR_FORMAT},
        {"n_dims 5", "tensor 'a' has 5 dimensions", LQ_ERR_FORMAT},
        {"nested array", "nested arrays", LQ_ERR_FORMAT},
        {"bool 2", "key 'x.flag': BOOL value 2", LQ_ERR_FORMAT},
        {"alignment 48", "general.alignment 48", LQ_ERR_FORMAT},
        {"alignment u64", "general.alignment is UINT64", LQ_ERR_FORMAT},
        {"huge string", "general.architecture", LQ_ERR_FORMAT},
        {"long name", "the name of tensor 1", LQ_ERR_FORMAT},
        {"offset past end", "tensor 'a' has data offset 4096", LQ_ERR_FORMAT},
    };
    static const char long_name[] = "a234567890123456789012345678901234567890123456789012345678901234";
    lq_test_quiet(1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        knobs k = ok_knobs();
        switch (i) {
        case 0: k.magic = "GGUG"; break;
        case 1: k.version = 1; break;
        case 2: k.version = 4; break;
        case 3: k.n_kv = (int64_t)1 << 40; break;
        case 4: k.n_t = (int64_t)1 << 19; break;
        case 5: k.dup_key = true; break;
        case 6: k.dup_name = true; break;
        case 7: k.type_b = 99; break;
        case 8: k.type_b = 3; break;
        case 9: k.off_a = 68; break;
        case 10: k.ne0_b = 48; break;
        case 11: k.n_dims_a = 5; break;
        case 12: k.nested = true; break;
        case 13: k.bool2 = true; break;
        case 14: k.align_bad = true; break;
        case 15: k.align_type = true; break;
        case 16: k.str_len_override = (uint64_t)1 << 62; break;
        case 17: k.name_a = long_name; break;
        case 18: k.off_a = 4096; break;
        }
        const lq_status s = open_built(&k);
        CU_ASSERT_EQUAL(s, cases[i].st);
        const bool named = strstr(lq_test_last_error(), cases[i].msg) != NULL &&
                           strstr(lq_test_last_error(), "built") != NULL;
        CU_ASSERT(named);
        if (s != cases[i].st || !named)
            fprintf(stderr, "case '%s': status %d, message '%s'\n", cases[i].what, s, lq_test_last_error());
    }
    lq_test_quiet(0);
}

/* a file from the writer: every prefix that cuts tensor data or header fails */
static void test_gguf_writer_file_truncated(void) {
    lq_model_config c = tiny_cfg();
    c.vocab_size      = 32;
    c.hidden_size     = 32;
    c.n_heads         = 2;
    c.n_kv_heads      = 1;
    c.head_dim        = 16;
    c.intermediate_size = 64;
    c.n_layers        = 1;
    model m;
    build_model(&m, &c, LQ_QT_Q4_0, LQ_QT_Q8_0, LQ_QT_F32, false, false, 8);
    char path[512];
    snprintf(path, sizeof path, "%s/m.gguf", lq_test_tmpdir("gguf_trunc"));
    lq_gguf_write_params p = fast_params();
    CU_ASSERT_EQUAL_FATAL(lq_gguf_write_llama(path, &c, m.t, m.n, &p), LQ_OK);
    size_t   len;
    uint8_t *img = lq_test_read_file(path, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(img);
    lq_gguf *g;
    CU_ASSERT_EQUAL_FATAL(lq_gguf_open_memory(img, len, "w", &g), LQ_OK);
    const lq_tensor_info *last = lq_gguf_tensor(g, lq_gguf_count(g) - 1);
    const size_t          end  = (size_t)((const uint8_t *)last->data - img) + last->nbytes;
    lq_gguf_close(g);
    int bad = 0;
    lq_test_quiet(1);
    for (size_t n = 0; n < len; n++) {
        uint8_t *cut = malloc(n ? n : 1);
        memcpy(cut, img, n);
        const lq_status s = lq_gguf_open_memory(cut, n, "cut", &g);
        bad += n < end ? s != LQ_ERR_FORMAT : s != LQ_OK;
        if (s == LQ_OK) lq_gguf_close(g);
        free(cut);
    }
    lq_test_quiet(0);
    CU_ASSERT_EQUAL(bad, 0);
    free(img);
    model_free(&m);
}

/* ==== interop fixtures ====
 * Written to tests/out/gguf_interop/ for tests/interop/run_gguf_check.sh
 * (the PyPI gguf package reads them back) and for the llama.cpp runs of
 * tests/interop/README.md: each X.gguf comes with X.dequant.safetensors,
 * every tensor of X.gguf (GGUF name, GGUF row order) dequantized to f32 by
 * lq_dequantize_ref. */

#define INTEROP_DIR "tests/out/gguf_interop"

static lq_status dequant_tensor(const lq_tensor_info *t, float *out) {
    const int64_t rows = t->n_dims == 2 ? t->shape[0] : 1, cols = t->shape[t->n_dims - 1];
    if (t->qtype != LQ_QT_NONE) return lq_dequantize_ref(t->qtype, t->data, NULL, NULL, rows, cols, out);
    const lq_qtype q = t->dtype == LQ_DTYPE_F32 ? LQ_QT_F32 : t->dtype == LQ_DTYPE_F16 ? LQ_QT_F16 : LQ_QT_BF16;
    for (int64_t k = 0; k < rows * cols; k++) out[k] = elem_f32(q, t->data, k);
    return LQ_OK;
}

static void write_dequant(const char *gguf_path, const char *st_path) {
    lq_gguf *g;
    CU_ASSERT_EQUAL_FATAL(lq_gguf_open(gguf_path, &g), LQ_OK);
    const int64_t n = lq_gguf_count(g);
    lq_st_entry  *e = calloc((size_t)n, sizeof *e);
    for (int64_t i = 0; i < n; i++) {
        const lq_tensor_info *t = lq_gguf_tensor(g, i);
        uint64_t              numel;
        CU_ASSERT_FATAL(lq_tensor_info_numel(t, &numel));
        float *f = malloc((size_t)numel * 4);
        CU_ASSERT_EQUAL(dequant_tensor(t, f), LQ_OK);
        e[i].name   = t->name;
        e[i].dtype  = LQ_DTYPE_F32;
        e[i].n_dims = t->n_dims;
        for (int d = 0; d < t->n_dims; d++) e[i].shape[d] = t->shape[d];
        e[i].data = f;
    }
    lq_st_write_params sp  = lq_st_write_default_params();
    sp.no_fsync            = true;
    sp.sort_like_reference = false;
    CU_ASSERT_EQUAL(lq_safetensors_write(st_path, e, n, &sp), LQ_OK);
    for (int64_t i = 0; i < n; i++) free((void *)(uintptr_t)e[i].data);
    free(e);
    lq_gguf_close(g);
}

/* replace the f32 matrix i of m by its quantization to q */
static void quantize_in_place(model *m, int i, lq_qtype q) {
    lq_qtensor   *t    = &m->t[i];
    const int64_t rows = t->shape[0], cols = t->shape[1];
    if (q == LQ_QT_F32) return;
    const uint64_t rb = lq_qtype_row_bytes(q, cols);
    CU_ASSERT_FATAL(rb > 0);
    uint8_t *d = malloc((size_t)(rb * (uint64_t)rows));
    if (lq_qtype_traits_of(q)->kind == LQ_QK_GGML) {
        CU_ASSERT_EQUAL_FATAL(lq_quantize_ref(q, t->data, rows, cols, NULL, d, NULL, NULL), LQ_OK);
    } else {
        for (int64_t k = 0; k < rows * cols; k++) {
            const float    f = ((const float *)t->data)[k];
            const uint16_t h = q == LQ_QT_F16 ? lq_f32_to_f16(f) : lq_f32_to_bf16(f);
            memcpy(d + 2 * k, &h, 2);
        }
    }
    if (m->buf[i]) free(m->buf[i]);
    m->buf[i] = d;
    t->data   = d;
    t->qtype  = q;
}

static void write_pair(const char *stem, const lq_model_config *c, const model *m, const char *tokenizer) {
    char gp[512], sp[512], tp[512];
    snprintf(gp, sizeof gp, INTEROP_DIR "/%s.gguf", stem);
    snprintf(sp, sizeof sp, INTEROP_DIR "/%s.dequant.safetensors", stem);
    lq_gguf_write_params p = fast_params();
    p.name                 = stem;
    if (tokenizer) {
        snprintf(tp, sizeof tp, "%s", tokenizer);
        p.tokenizer_path = tp;
    }
    CU_ASSERT_EQUAL_FATAL(lq_gguf_write_llama(gp, c, m->t, m->n, &p), LQ_OK);
    write_dequant(gp, sp);
}

static void test_gguf_interop_fixtures(void) {
    CU_ASSERT_EQUAL_FATAL(system("mkdir -p " INTEROP_DIR), 0);
    /* every KEEP and GGML type in one file (matrices are 256-column multiples) */
    static const lq_qtype rot[] = {LQ_QT_Q8_0, LQ_QT_Q4_0, LQ_QT_Q5_0, LQ_QT_Q4_K,
                                   LQ_QT_Q6_K, LQ_QT_F16,  LQ_QT_BF16, LQ_QT_F32};
    lq_model_config       c     = tiny_cfg();
    model                 m;
    char                  tok[512];
    c.vocab_size = 512; /* tok512, so that llama.cpp can load it */
    snprintf(tok, sizeof tok, "%s", lq_test_shared("stories260K-hf/tokenizer.model"));
    build_model(&m, &c, LQ_QT_F32, LQ_QT_F32, LQ_QT_F16, true, false, 42);
    int k = 0, seen[8] = {0};
    for (int i = 0; i < m.n; i++)
        if (m.t[i].n_dims == 2) {
            seen[k % 8]++;
            quantize_in_place(&m, i, rot[k++ % 8]);
        }
    for (int i = 0; i < 8; i++) CU_ASSERT(seen[i] > 0);
    write_pair("mixed", &c, &m, tok);
    model_free(&m);

    /* stories260K in f32, f16 and q8_0 (ffn_down: 172 columns, kept f16) */
    hf_model h;
    CU_ASSERT_FATAL(load_stories(&h));
    static const char *const stems[] = {"stories260K-f32", "stories260K-f16", "stories260K-q8_0"};
    for (int v = 0; v < 3; v++) {
        model s = {.n = (int)h.n};
        for (int i = 0; i < s.n; i++) {
            s.t[i]   = h.t[i];
            s.buf[i] = NULL;
            snprintf(s.name[i], sizeof s.name[i], "%s", h.t[i].name);
            s.t[i].name = s.name[i];
            if (v > 0 && s.t[i].n_dims == 2) {
                const bool down = strstr(s.name[i], "down_proj") != NULL;
                quantize_in_place(&s, i, v == 1 || down ? LQ_QT_F16 : LQ_QT_Q8_0);
            }
        }
        write_pair(stems[v], &h.cfg, &s, tok);
        if (v == 2) {
            /* quantized in HF order, stored in GGUF order: close to llama2.c's wq */
            char gp[512];
            snprintf(gp, sizeof gp, INTEROP_DIR "/%s.gguf", stems[v]);
            lq_gguf *g;
            CU_ASSERT_EQUAL_FATAL(lq_gguf_open(gp, &g), LQ_OK);
            CU_ASSERT_EQUAL(get_i(g, "general.file_type"), 7);
            CU_ASSERT_EQUAL(get_i(g, "general.quantization_version"), 2);
            const lq_tensor_info *q = lq_gguf_find(g, "blk.0.attn_q.weight");
            CU_ASSERT_EQUAL_FATAL(q->qtype, LQ_QT_Q8_0);
            CU_ASSERT_EQUAL(lq_gguf_find(g, "blk.0.ffn_down.weight")->dtype, LQ_DTYPE_F16);
            float    dq[64 * 64];
            size_t   len;
            uint8_t *f = lq_test_read_file(lq_test_shared("stories260K/stories260K.bin"), &len);
            CU_ASSERT_PTR_NOT_NULL_FATAL(f);
            CU_ASSERT_EQUAL(dequant_tensor(q, dq), LQ_OK);
            const float *wq = (const float *)(f + 28) + 512 * 64 + 5 * 64; /* after embedding, rms_att */
            double       se = 0, ss = 0;
            for (int i = 0; i < 64 * 64; i++) se += (dq[i] - wq[i]) * (double)(dq[i] - wq[i]), ss += (double)wq[i] * wq[i];
            CU_ASSERT(sqrt(se / ss) < 0.01);
            free(f);
            lq_gguf_close(g);
        }
        model_free(&s);
    }
    lq_checkpoint_close(h.ck);
}

CU_pSuite lq_test_gguf_suite(void) {
    CU_pSuite s = lq_test_add_suite("gguf");
    LQ_ADD_TEST(s, test_gguf_names);
    LQ_ADD_TEST(s, test_gguf_round_trip_every_type);
    LQ_ADD_TEST(s, test_gguf_config_round_trip);
    LQ_ADD_TEST(s, test_gguf_qk_permutation_is_rope_equivalent);
    LQ_ADD_TEST(s, test_gguf_writer_refuses);
    LQ_ADD_TEST(s, test_gguf_cancel_leaves_nothing);
    LQ_ADD_TEST(s, test_gguf_stories260K);
    LQ_ADD_TEST(s, test_gguf_gpt2_tokenizer);
    LQ_ADD_TEST(s, test_gguf_hand_built_valid);
    LQ_ADD_TEST(s, test_gguf_hostile_rejected);
    LQ_ADD_TEST(s, test_gguf_writer_file_truncated);
    LQ_ADD_TEST(s, test_gguf_interop_fixtures);
    return s;
}
