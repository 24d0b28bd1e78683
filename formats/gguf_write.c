/* gguf_write.c : the llama-architecture GGUF v3 writer and the HF <-> GGUF
 * tensor name tables.
 *
 * What llama.cpp (src/llama-model.cpp, src/llama-vocab.cpp, ggml gguf.cpp)
 * needs from a llama file, and what this writer emits:
 *   - keys: general.architecture "llama", general.name, general.file_type,
 *     general.quantization_version 2 when a GGML block type is present,
 *     llama.{vocab_size, context_length, embedding_length, block_count,
 *     feed_forward_length, attention.head_count, attention.head_count_kv,
 *     rope.dimension_count, rope.freq_base, attention.layer_norm_rms_epsilon}
 *     (+ attention.key_length/value_length when head_dim is not
 *     hidden/heads, + rope.scaling.type/factor for linear scaling); all
 *     integers UINT32, floats FLOAT32;
 *   - tokenizer keys: SentencePiece .model and llama2.c tokenizer.bin become
 *     tokenizer.ggml.model "llama" (tokens with U+2581 for spaces, scores,
 *     token_type, bos/eos/unknown ids, add_bos_token); a byte-level
 *     tokenizer.json becomes "gpt2" (tokens, token_type, merges "a b", a
 *     tokenizer.ggml.pre that names llama.cpp's copy of its split regex).
 *     Tokens must be unique (llama.cpp asserts it); the list is padded with
 *     "[PAD<id>]" unused tokens up to vocab_size;
 *   - tensors: GGUF names, ne[0] = columns, q/k rows permuted from HF's
 *     rotate_half order to GGUF's interleaved pairs (per head of hd rows:
 *     GGUF row 2i + p = HF row p*hd/2 + i), 1-D tensors as F32, data at the
 *     running sum of sizes padded to the alignment (32).
 * The file is built in a temporary beside the destination and renamed into
 * place (lq__afile), so a failed or cancelled write leaves nothing behind. */
#include "formats_internal.h"
#include "lq_qformats.h"
#include "lq_tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ==== tensor names ==== */

typedef struct {
    const char *hf, *gguf;
} name_pair;

/* inside a decoder layer: model.layers.N.<hf> <-> blk.N.<gguf> */
static const name_pair k_layer_names[] = {
    {"input_layernorm", "attn_norm"},        {"self_attn.q_proj", "attn_q"}, {"self_attn.k_proj", "attn_k"},
    {"self_attn.v_proj", "attn_v"},          {"self_attn.o_proj", "attn_output"},
    {"post_attention_layernorm", "ffn_norm"}, {"mlp.gate_proj", "ffn_gate"}, {"mlp.up_proj", "ffn_up"},
    {"mlp.down_proj", "ffn_down"}};
static const name_pair k_global_names[] = {
    {"model.embed_tokens", "token_embd"}, {"model.norm", "output_norm"}, {"lm_head", "output"}};

#define N_LAYER_NAMES (sizeof k_layer_names / sizeof k_layer_names[0])
#define N_GLOBAL_NAMES (sizeof k_global_names / sizeof k_global_names[0])
#define MAX_LAYER 9999999

typedef enum { ROLE_OTHER = 0, ROLE_Q, ROLE_K, ROLE_EMBED } tensor_role;

/* a decimal layer number without leading zeros followed by '.'; *rest after the dot */
static bool take_layer(const char *s, int64_t *layer, const char **rest) {
    int64_t v = 0;
    int     n = 0;
    while (s[n] >= '0' && s[n] <= '9') {
        if (n == 7) return false;
        v = v * 10 + (s[n] - '0');
        n++;
    }
    if (n == 0 || s[n] != '.' || (n > 1 && s[0] == '0') || v > MAX_LAYER) return false;
    *layer = v;
    *rest  = s + n + 1;
    return true;
}

/* "base.weight" / "base.bias": the length of base and the suffix, or NULL */
static const char *split_suffix(const char *name, size_t *base_len) {
    const char *dot = strrchr(name, '.');
    if (!dot || (strcmp(dot, ".weight") != 0 && strcmp(dot, ".bias") != 0)) return NULL;
    *base_len = (size_t)(dot - name);
    return dot + 1;
}

/* HF name -> GGUF name; false when not a llama tensor */
static bool hf_to_gguf(const char *hf, char *out, size_t cap, int64_t *layer, tensor_role *role) {
    size_t      bl;
    const char *suf = split_suffix(hf, &bl);
    *layer          = -1;
    *role           = ROLE_OTHER;
    if (!suf) return false;
    for (size_t i = 0; i < N_GLOBAL_NAMES; i++)
        if (strlen(k_global_names[i].hf) == bl && memcmp(hf, k_global_names[i].hf, bl) == 0) {
            if (i == 0) *role = ROLE_EMBED;
            return (size_t)snprintf(out, cap, "%s.%s", k_global_names[i].gguf, suf) < cap;
        }
    const char *rest;
    if (strncmp(hf, "model.layers.", 13) != 0 || !take_layer(hf + 13, layer, &rest)) return false;
    const size_t rl = bl - (size_t)(rest - hf);
    for (size_t i = 0; i < N_LAYER_NAMES; i++)
        if (strlen(k_layer_names[i].hf) == rl && memcmp(rest, k_layer_names[i].hf, rl) == 0) {
            if (i == 1) *role = ROLE_Q;
            if (i == 2) *role = ROLE_K;
            return (size_t)snprintf(out, cap, "blk.%lld.%s.%s", (long long)*layer, k_layer_names[i].gguf, suf) < cap;
        }
    return false;
}

const char *lq_gguf_hf_name(const char *gguf_name, char *buf, size_t cap) {
    size_t      bl;
    const char *suf = gguf_name && buf ? split_suffix(gguf_name, &bl) : NULL;
    if (!suf) return NULL;
    for (size_t i = 0; i < N_GLOBAL_NAMES; i++)
        if (strlen(k_global_names[i].gguf) == bl && memcmp(gguf_name, k_global_names[i].gguf, bl) == 0)
            return (size_t)snprintf(buf, cap, "%s.%s", k_global_names[i].hf, suf) < cap ? buf : NULL;
    int64_t     layer;
    const char *rest;
    if (strncmp(gguf_name, "blk.", 4) != 0 || !take_layer(gguf_name + 4, &layer, &rest)) return NULL;
    const size_t rl = bl - (size_t)(rest - gguf_name);
    for (size_t i = 0; i < N_LAYER_NAMES; i++)
        if (strlen(k_layer_names[i].gguf) == rl && memcmp(rest, k_layer_names[i].gguf, rl) == 0)
            return (size_t)snprintf(buf, cap, "model.layers.%lld.%s.%s", (long long)layer, k_layer_names[i].hf, suf) <
                           cap
                       ? buf
                       : NULL;
    return NULL;
}

/* ==== growable byte buffer (the header) ==== */

typedef struct {
    uint8_t *p;
    size_t   n, cap;
    bool     oom;
    uint64_t n_kv;
} wbuf;

static void put(wbuf *b, const void *s, size_t n) {
    if (b->oom) return;
    if (n > b->cap - b->n) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->n < n) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        uint8_t *q = lq_malloc(cap);
        if (!q) {
            b->oom = true;
            return;
        }
        if (b->n) memcpy(q, b->p, b->n);
        lq_free(b->p);
        b->p   = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void put_u32(wbuf *b, uint32_t v) {
    const uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, x, 4);
}
static void put_u64(wbuf *b, uint64_t v) {
    uint8_t x[8];
    for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
    put(b, x, 8);
}
static void put_f32(wbuf *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    put_u32(b, u);
}
static void put_str(wbuf *b, const char *s, size_t n) {
    put_u64(b, n);
    put(b, s, n);
}
static void kv_key(wbuf *b, const char *key, lq_gguf_type t) {
    put_str(b, key, strlen(key));
    put_u32(b, (uint32_t)t);
    b->n_kv++;
}
static void kv_u32(wbuf *b, const char *key, uint32_t v) {
    kv_key(b, key, LQ_GGUF_UINT32);
    put_u32(b, v);
}
static void kv_f32(wbuf *b, const char *key, float v) {
    kv_key(b, key, LQ_GGUF_FLOAT32);
    put_f32(b, v);
}
static void kv_bool(wbuf *b, const char *key, bool v) {
    kv_key(b, key, LQ_GGUF_BOOL);
    const uint8_t x = v;
    put(b, &x, 1);
}
static void kv_str(wbuf *b, const char *key, const char *s) {
    kv_key(b, key, LQ_GGUF_STRING);
    put_str(b, s, strlen(s));
}
static void kv_array(wbuf *b, const char *key, lq_gguf_type elem, uint64_t n) {
    kv_key(b, key, LQ_GGUF_ARRAY);
    put_u32(b, (uint32_t)elem);
    put_u64(b, n);
}

/* ==== vocabulary ==== */

typedef struct {
    lq_tokenizer *tok;
    bool          gpt2;   /* tokenizer.ggml.model "gpt2" (else "llama") */
    const char   *pre;    /* gpt2: tokenizer.ggml.pre                   */
    int64_t       n;      /* tokens written (vocab_size)                */
    char        **s;      /* token i: s[i], len[i] bytes                */
    uint32_t     *len;
    char         *arena;
    int32_t       unk;
} vocab;

static void vocab_free(vocab *v) {
    lq_tokenizer_free(v->tok);
    lq_free(v->s);
    lq_free(v->len);
    lq_free(v->arena);
}

/* the split regexes of tokenizer.json files that llama.cpp knows by name */
static const char k_llama3_regex[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                                     "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char k_qwen2_regex[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                                    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

typedef struct {
    bool        byte_level, builtin_regex;
    const char *regex;
    int         n_split;
} pretok_scan;

static void scan_pretok(const lq_json *o, pretok_scan *s, int depth) {
    if (!o || o->type != LQ_JSON_OBJECT || depth > 8) return;
    const char *type = lq_json_get_str(lq_json_get(o, "type"));
    if (!type) return;
    if (strcmp(type, "ByteLevel") == 0) {
        bool use_regex = true;
        (void)lq_json_get_bool(lq_json_get(o, "use_regex"), &use_regex);
        s->byte_level = true;
        s->builtin_regex |= use_regex;
    } else if (strcmp(type, "Split") == 0) {
        s->n_split++;
        s->regex = lq_json_get_str(lq_json_get(lq_json_get(o, "pattern"), "Regex"));
    } else if (strcmp(type, "Sequence") == 0) {
        const lq_json *a = lq_json_get(o, "pretokenizers");
        for (uint32_t i = 0; a && a->type == LQ_JSON_ARRAY && i < a->n; i++) scan_pretok(&a->items[i], s, depth + 1);
    }
}

/* a tokenizer.json: byte-level BPE and llama.cpp's name for its pre-split */
static lq_status hf_pre(const char *path, const char **pre) {
    char         *text = NULL;
    size_t        len;
    lq_json_doc  *doc  = NULL;
    lq_json_error je;
    lq_status     st;
    LQ_GOTO_TRY(lq__read_file(path, (size_t)1 << 30, &text, &len));
    st = lq_json_parse(text, len, NULL, &doc, &je);
    LQ_GOTO_IF(st != LQ_OK, st == LQ_ERR_NOMEM ? st : LQ_ERR_FORMAT, "%s: invalid JSON: %s", path, je.msg);
    pretok_scan s = {0};
    scan_pretok(lq_json_get(lq_json_root(doc), "pre_tokenizer"), &s, 0);
    LQ_GOTO_IF(!s.byte_level, LQ_ERR_UNSUPPORTED,
               "%s: not a byte-level BPE tokenizer.json (no ByteLevel pre-tokenizer); for a SentencePiece-style "
               "tokenizer pass its tokenizer.model",
               path);
    if (s.n_split == 0 && s.builtin_regex) {
        *pre = "gpt-2";
    } else if (s.n_split == 1 && !s.builtin_regex && s.regex && strcmp(s.regex, k_llama3_regex) == 0) {
        *pre = "llama-bpe";
    } else if (s.n_split == 1 && !s.builtin_regex && s.regex && strcmp(s.regex, k_qwen2_regex) == 0) {
        *pre = "qwen2";
    } else {
        *pre = "default";
        LQ_LOG_WARN("%s: a pre-tokenizer llama.cpp does not know by name; writing tokenizer.ggml.pre \"default\" "
                    "(llama.cpp may split text differently)",
                    path);
    }
done:
    lq_json_free(doc);
    lq_free(text);
    return st;
}

static int cmp_tok(const void *a, const void *b, void *ctx) {
    const vocab  *v = ctx;
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    const int     r = memcmp(v->s[x], v->s[y], LQ_MIN(v->len[x], v->len[y]));
    if (r) return r;
    return v->len[x] < v->len[y] ? -1 : v->len[x] > v->len[y] ? 1 : (x < y ? -1 : 1);
}

static lq_status load_vocab(const char *path, const lq_model_config *cfg, vocab *v) {
    lq_status st = LQ_OK;
    int64_t  *ix = NULL;
    LQ_RETURN_IF(cfg->vocab_size > INT32_MAX, LQ_ERR_INVALID_ARG, "vocab_size %lld is too large",
                 (long long)cfg->vocab_size);
    LQ_TRY(lq_tokenizer_open(path, (int32_t)cfg->vocab_size, &v->tok));
    const lq_tok_kind kind = lq_tokenizer_kind(v->tok);
    const int32_t     nt   = lq_tokenizer_vocab_size(v->tok);
    if (kind == LQ_TOK_HF_BPE) {
        v->gpt2 = true;
        LQ_TRY(hf_pre(path, &v->pre));
    }
    LQ_RETURN_IF(nt > cfg->vocab_size, LQ_ERR_SHAPE, "%s: %d tokens, more than the model's vocab_size %lld", path, nt,
                 (long long)cfg->vocab_size);
    v->n   = cfg->vocab_size;
    v->unk = -1;
    /* token text: llama2.c stores ' ' for U+2581 and "\n<s>\n" / "\n</s>\n" */
    size_t total = 1;
    for (int32_t i = 0; i < nt; i++) {
        const char *p = lq_tokenizer_piece(v->tok, i);
        total += (p ? strlen(p) * 3 : 0) + 24;
    }
    total += (size_t)(v->n - nt) * 24;
    v->s     = lq_malloc((size_t)v->n * sizeof *v->s + 1);
    v->len   = lq_malloc((size_t)v->n * sizeof *v->len + 1);
    v->arena = lq_malloc(total);
    ix       = lq_malloc((size_t)v->n * sizeof *ix + 1);
    LQ_GOTO_IF(!v->s || !v->len || !v->arena || !ix, LQ_ERR_NOMEM, "%s: out of memory for %lld tokens", path,
               (long long)v->n);
    char *q = v->arena;
    for (int64_t i = 0; i < v->n; i++) {
        const char *p = i < nt ? lq_tokenizer_piece(v->tok, (int32_t)i) : NULL;
        v->s[i]       = q;
        if (!p) {
            q += snprintf(q, 24, "[PAD%lld]", (long long)i);
        } else if (kind == LQ_TOK_LLAMA2C && (strcmp(p, "\n<s>\n") == 0 || strcmp(p, "\n</s>\n") == 0)) {
            const size_t n = strlen(p) - 2;
            memcpy(q, p + 1, n);
            q += n;
        } else if (kind == LQ_TOK_LLAMA2C) {
            for (; *p; p++)
                if (*p == ' ')
                    memcpy(q, "\xE2\x96\x81", 3), q += 3;
                else
                    *q++ = *p;
        } else {
            const size_t n = strlen(p);
            memcpy(q, p, n);
            q += n;
        }
        v->len[i] = (uint32_t)(q - v->s[i]);
        *q++      = 0;
        if (v->unk < 0 && i < nt && lq_tokenizer_token_type(v->tok, (int32_t)i) == 2) v->unk = (int32_t)i;
    }
    /* llama.cpp keeps a text -> id map and asserts that it is one to one */
    for (int64_t i = 0; i < v->n; i++) ix[i] = i;
    qsort_r(ix, (size_t)v->n, sizeof *ix, cmp_tok, v);
    for (int64_t i = 1; i < v->n; i++) {
        const int64_t a = ix[i - 1], b = ix[i];
        LQ_GOTO_IF(v->len[a] == v->len[b] && memcmp(v->s[a], v->s[b], v->len[a]) == 0, LQ_ERR_FORMAT,
                   "%s: tokens %lld and %lld are both \"%.*s\" (llama.cpp needs unique tokens)", path,
                   (long long)LQ_MIN(a, b), (long long)LQ_MAX(a, b), (int)LQ_MIN(v->len[a], 64u), v->s[a]);
    }
done:
    lq_free(ix);
    return st;
}

static void put_vocab(wbuf *b, const vocab *v) {
    const int32_t nt = lq_tokenizer_vocab_size(v->tok);
    kv_str(b, "tokenizer.ggml.model", v->gpt2 ? "gpt2" : "llama");
    if (v->gpt2) kv_str(b, "tokenizer.ggml.pre", v->pre);
    kv_array(b, "tokenizer.ggml.tokens", LQ_GGUF_STRING, (uint64_t)v->n);
    for (int64_t i = 0; i < v->n; i++) put_str(b, v->s[i], v->len[i]);
    if (!v->gpt2) {
        kv_array(b, "tokenizer.ggml.scores", LQ_GGUF_FLOAT32, (uint64_t)v->n);
        for (int64_t i = 0; i < v->n; i++) put_f32(b, i < nt ? lq_tokenizer_score(v->tok, (int32_t)i) : -1000.0f);
    }
    kv_array(b, "tokenizer.ggml.token_type", LQ_GGUF_INT32, (uint64_t)v->n);
    for (int64_t i = 0; i < v->n; i++) put_u32(b, (uint32_t)(i < nt ? lq_tokenizer_token_type(v->tok, (int32_t)i) : 5));
    if (v->gpt2) {
        const int64_t nm = lq_tokenizer_merge_count(v->tok);
        kv_array(b, "tokenizer.ggml.merges", LQ_GGUF_STRING, (uint64_t)nm);
        for (int64_t i = 0; i < nm; i++) {
            const char *m = lq_tokenizer_merge(v->tok, i);
            put_str(b, m, strlen(m));
        }
    }
    const int32_t bos = lq_tokenizer_bos(v->tok), eos = lq_tokenizer_eos(v->tok);
    if (bos >= 0) kv_u32(b, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
    if (eos >= 0) kv_u32(b, "tokenizer.ggml.eos_token_id", (uint32_t)eos);
    if (v->unk >= 0) kv_u32(b, "tokenizer.ggml.unknown_token_id", (uint32_t)v->unk);
    kv_bool(b, "tokenizer.ggml.add_bos_token", bos >= 0);
    kv_bool(b, "tokenizer.ggml.add_eos_token", false);
}

/* ==== tensors ==== */

typedef struct {
    const lq_qtensor *src;
    char              name[64];
    tensor_role       role;
    int               ggml_type;
    uint32_t          n_dims;
    uint64_t          ne[2];
    int64_t           rows;          /* 1-D: elements (one per "row")          */
    uint64_t          src_row_bytes, dst_row_bytes;
    lq_dtype          src_dtype;     /* 1-D: converted to f32 from this dtype  */
    int64_t           heads, hd;     /* q/k permutation, else 0                */
    uint64_t          nbytes, offset;
} plan;

static uint64_t pad_to(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

static lq_status plan_tensor(const lq_model_config *cfg, const lq_qtensor *t, plan *p) {
    const char *nm = t->name ? t->name : "(null)";
    int64_t     layer;
    LQ_RETURN_IF(!t->name || !hf_to_gguf(t->name, p->name, sizeof p->name, &layer, &p->role), LQ_ERR_FORMAT,
                 "tensor '%s': not a llama tensor name GGUF has a name for", nm);
    LQ_RETURN_IF(layer >= cfg->n_layers, LQ_ERR_FORMAT, "tensor '%s': layer %lld is past num_hidden_layers %lld", nm,
                 (long long)layer, (long long)cfg->n_layers);
    const lq_qtype_traits *tr = lq_qtype_traits_of(t->qtype);
    LQ_RETURN_IF(!tr || tr->kind == LQ_QK_NONE, LQ_ERR_INVALID_ARG, "tensor '%s': no storage type", nm);
    /* GGUF has no per-column group index: act-order layouts cannot be stored */
    LQ_RETURN_IF(t->g_idx, LQ_ERR_UNSUPPORTED,
                 "tensor '%s' carries a g_idx (GPTQ act-order), which GGUF cannot store; write it as GPTQ, or "
                 "quantize with static groups or without act-order",
                 nm);
    LQ_RETURN_IF(t->in_scale != 0, LQ_ERR_UNSUPPORTED,
                 "tensor '%s' has a static activation scale (W8A8), which GGUF cannot store; write compressed-tensors",
                 nm);
    LQ_RETURN_IF(tr->kind == LQ_QK_INT || tr->kind == LQ_QK_FP8, LQ_ERR_UNSUPPORTED,
                 "tensor '%s': %s has no GGUF equivalent (GGUF stores f32/f16/bf16 and ggml block types)", nm,
                 tr->name);
    LQ_RETURN_IF(t->n_dims != 1 && t->n_dims != 2, LQ_ERR_INVALID_ARG, "tensor '%s': %d dimensions (1 or 2 expected)",
                 nm, t->n_dims);
    LQ_RETURN_IF(!t->data, LQ_ERR_INVALID_ARG, "tensor '%s': no data", nm);
    for (int d = 0; d < t->n_dims; d++)
        LQ_RETURN_IF(t->shape[d] <= 0, LQ_ERR_SHAPE, "tensor '%s': dimension %d is %lld", nm, d,
                     (long long)t->shape[d]);
    p->src  = t;
    p->rows = t->shape[0];
    if (t->n_dims == 1) {
        LQ_RETURN_IF(tr->kind != LQ_QK_KEEP, LQ_ERR_INVALID_ARG, "tensor '%s': a 1-D tensor must be f32/f16/bf16, not %s",
                     nm, tr->name);
        p->n_dims        = 1;
        p->ne[0]         = (uint64_t)t->shape[0];
        p->ggml_type     = 0;
        p->src_dtype     = tr->dtype;
        p->src_row_bytes = (uint64_t)tr->block_bytes;
        p->dst_row_bytes = 4;
    } else {
        const char *why;
        LQ_RETURN_IF(!lq_qtype_supports(t->qtype, t->shape[1], &why), LQ_ERR_SHAPE, "tensor '%s' (%lld x %lld) as %s: %s",
                     nm, (long long)t->shape[0], (long long)t->shape[1], tr->name, why);
        p->n_dims        = 2;
        p->ne[0]         = (uint64_t)t->shape[1];
        p->ne[1]         = (uint64_t)t->shape[0];
        p->ggml_type     = tr->ggml_type;
        p->src_dtype     = tr->dtype;
        p->src_row_bytes = p->dst_row_bytes = lq_qtype_row_bytes(t->qtype, t->shape[1]);
        LQ_RETURN_IF(p->src_row_bytes == 0, LQ_ERR_SHAPE, "tensor '%s': row size overflows", nm);
    }
    uint64_t src_bytes;
    LQ_RETURN_IF(!lq__mul_u64(p->dst_row_bytes, (uint64_t)p->rows, &p->nbytes) ||
                     !lq__mul_u64((uint64_t)p->rows, p->src_row_bytes, &src_bytes),
                 LQ_ERR_SHAPE, "tensor '%s': size overflows", nm);
    if (p->role == ROLE_Q || p->role == ROLE_K) {
        p->heads = p->role == ROLE_Q ? cfg->n_heads : cfg->n_kv_heads;
        p->hd    = cfg->head_dim;
        LQ_RETURN_IF(p->rows % p->hd != 0 || p->rows / p->hd != p->heads, LQ_ERR_SHAPE,
                     "tensor '%s': %lld rows, expected %lld heads x head_dim %lld (the RoPE row permutation needs it)",
                     nm, (long long)p->rows, (long long)p->heads, (long long)p->hd);
    }
    if (p->role == ROLE_EMBED && t->n_dims == 2)
        LQ_RETURN_IF(t->shape[0] != cfg->vocab_size, LQ_ERR_SHAPE, "tensor '%s': %lld rows but vocab_size is %lld", nm,
                     (long long)t->shape[0], (long long)cfg->vocab_size);
    return LQ_OK;
}

/* general.file_type (llama_ftype) from the most common matrix type */
static uint32_t file_type(const plan *p, int64_t n) {
    int64_t count[64] = {0}, elems[64] = {0};
    for (int64_t i = 0; i < n; i++)
        if (p[i].n_dims == 2 && p[i].ggml_type >= 0 && p[i].ggml_type < 64) {
            count[p[i].ggml_type]++;
            elems[p[i].ggml_type] += (int64_t)(p[i].ne[0] * p[i].ne[1]);
        }
    int best = 0;
    for (int k = 1; k < 64; k++)
        if (count[k] > count[best] || (count[k] == count[best] && elems[k] > elems[best])) best = k;
    switch (best) {
    case 1: return 1;                    /* MOSTLY_F16    */
    case 30: return 32;                  /* MOSTLY_BF16   */
    case 2: return 2;                    /* MOSTLY_Q4_0   */
    case 8: return 7;                    /* MOSTLY_Q8_0   */
    case 6: return 8;                    /* MOSTLY_Q5_0   */
    case 12: return count[14] ? 15 : 14; /* Q4_K_M / Q4_K_S */
    case 14: return 18;                  /* MOSTLY_Q6_K   */
    default: return 0;                   /* ALL_F32       */
    }
}

/* ==== buffered output ==== */

typedef struct {
    lq__afile *f;
    uint8_t   *buf;
    size_t     n, cap;
} out_buf;

static lq_status out_flush(out_buf *o) {
    if (o->n) LQ_TRY(lq__afile_write(o->f, o->buf, o->n));
    o->n = 0;
    return LQ_OK;
}

static lq_status out_put(out_buf *o, const void *s, size_t n) {
    const uint8_t *p = s;
    while (n) {
        if (o->n == o->cap) LQ_TRY(out_flush(o));
        const size_t k = LQ_MIN(n, o->cap - o->n);
        memcpy(o->buf + o->n, p, k);
        o->n += k;
        p += k;
        n -= k;
    }
    return LQ_OK;
}

static lq_status out_zeros(out_buf *o, uint64_t n) {
    static const uint8_t z[64];
    while (n) {
        const size_t k = (size_t)LQ_MIN(n, (uint64_t)sizeof z);
        LQ_TRY(out_put(o, z, k));
        n -= k;
    }
    return LQ_OK;
}

static float to_f32(lq_dtype dt, const uint8_t *p) {
    uint16_t h;
    float    f;
    if (dt == LQ_DTYPE_F32) {
        memcpy(&f, p, 4);
        return f;
    }
    memcpy(&h, p, 2);
    return dt == LQ_DTYPE_F16 ? lq_f16_to_f32(h) : lq_bf16_to_f32(h);
}

static lq_status write_data(out_buf *o, const plan *p, uint32_t alignment) {
    const uint8_t *src = p->src->data;
    for (int64_t r = 0; r < p->rows; r++) {
        int64_t s = r;
        if (p->hd) { /* GGUF row h*hd + 2i + q  <-  HF row h*hd + q*hd/2 + i */
            const int64_t h = r / p->hd, j = r % p->hd;
            s               = h * p->hd + (j % 2) * (p->hd / 2) + j / 2;
        }
        const uint8_t *row = src + (uint64_t)s * p->src_row_bytes;
        if (p->n_dims == 1) {
            const float f = to_f32(p->src_dtype, row);
            LQ_TRY(out_put(o, &f, 4));
        } else {
            LQ_TRY(out_put(o, row, (size_t)p->src_row_bytes));
        }
    }
    return out_zeros(o, pad_to(p->nbytes, alignment) - p->nbytes);
}

/* ==== the writer ==== */

lq_gguf_write_params lq_gguf_write_default_params(void) {
    lq_gguf_write_params p;
    memset(&p, 0, sizeof p);
    p.alignment = 32;
    return p;
}

static lq_status check_config(const lq_model_config *c) {
    LQ_RETURN_IF(c->vocab_size <= 0 || c->hidden_size <= 0 || c->intermediate_size <= 0 || c->n_layers <= 0 ||
                     c->n_heads <= 0 || c->n_kv_heads <= 0 || c->max_position_embeddings <= 0,
                 LQ_ERR_INVALID_ARG, "config: sizes must be positive");
    LQ_RETURN_IF(c->vocab_size > UINT32_MAX || c->hidden_size > UINT32_MAX || c->intermediate_size > UINT32_MAX ||
                     c->n_layers > UINT32_MAX || c->n_heads > UINT32_MAX || c->n_kv_heads > UINT32_MAX ||
                     c->max_position_embeddings > UINT32_MAX || c->head_dim > UINT32_MAX,
                 LQ_ERR_INVALID_ARG, "config: a size does not fit GGUF's UINT32");
    LQ_RETURN_IF(c->head_dim <= 0 || c->head_dim % 2 != 0, LQ_ERR_INVALID_ARG,
                 "config: head_dim %lld must be even and positive", (long long)c->head_dim);
    LQ_RETURN_IF(c->n_heads % c->n_kv_heads != 0, LQ_ERR_INVALID_ARG,
                 "config: %lld attention heads are not a multiple of %lld kv heads", (long long)c->n_heads,
                 (long long)c->n_kv_heads);
    LQ_RETURN_IF(strcmp(c->hidden_act, "silu") != 0 && c->hidden_act[0], LQ_ERR_UNSUPPORTED,
                 "config: hidden_act \"%s\" (llama GGUF files use silu)", c->hidden_act);
    switch (c->rope_type) {
    case LQ_ROPE_DEFAULT: break;
    case LQ_ROPE_LINEAR:
        LQ_RETURN_IF(!(c->rope_factor > 0), LQ_ERR_INVALID_ARG, "config: linear rope factor must be positive");
        break;
    case LQ_ROPE_DYNAMIC:
    case LQ_ROPE_LLAMA3:
    case LQ_ROPE_YARN:
        LQ_RETURN_IF(1, LQ_ERR_UNSUPPORTED,
                     "config: rope_scaling type %s is not written to GGUF (only linear scaling is)",
                     c->rope_type == LQ_ROPE_DYNAMIC ? "dynamic" : c->rope_type == LQ_ROPE_LLAMA3 ? "llama3" : "yarn");
    }
    if (c->sliding_window > 0 && c->sliding_window < c->max_position_embeddings)
        LQ_LOG_WARN("config: sliding_window %lld is dropped (the llama architecture attends to the whole context)",
                    (long long)c->sliding_window);
    return LQ_OK;
}

static int cmp_plan_name(const void *a, const void *b, void *ctx) {
    const plan *p = ctx;
    return strcmp(p[*(const int64_t *)a].name, p[*(const int64_t *)b].name);
}

lq_status lq_gguf_write_llama(const char *path, const lq_model_config *cfg, const lq_qtensor *t, int64_t n,
                              const lq_gguf_write_params *p) {
    LQ_RETURN_IF(!path || !cfg || (n > 0 && !t) || n < 0, LQ_ERR_INVALID_ARG, "NULL argument");
    const lq_gguf_write_params dp = lq_gguf_write_default_params();
    if (!p) p = &dp;
    const uint32_t align = p->alignment ? p->alignment : 32;
    LQ_RETURN_IF(align < 8 || align > (1u << 20) || (align & (align - 1)) != 0, LQ_ERR_INVALID_ARG,
                 "%s: alignment %u is not a power of two in [8, 2^20]", path, align);
    LQ_TRY(check_config(cfg));
    lq_status  st   = LQ_OK;
    plan      *pl   = lq_calloc((size_t)n + 1, sizeof *pl);
    int64_t   *ix   = lq_calloc((size_t)n + 1, sizeof *ix);
    vocab      voc  = {0};
    wbuf       hdr  = {0};
    out_buf    o    = {0};
    bool       ggml = false;
    LQ_GOTO_IF(!pl || !ix, LQ_ERR_NOMEM, "out of memory");
    uint64_t off = 0;
    for (int64_t i = 0; i < n; i++) {
        LQ_GOTO_TRY(plan_tensor(cfg, &t[i], &pl[i]));
        pl[i].offset = off;
        LQ_GOTO_IF(!lq__add_u64(off, pad_to(pl[i].nbytes, align), &off), LQ_ERR_SHAPE, "%s: data size overflows", path);
        ggml |= pl[i].ggml_type != 0 && pl[i].ggml_type != 1 && pl[i].ggml_type != 30;
        ix[i] = i;
    }
    qsort_r(ix, (size_t)n, sizeof *ix, cmp_plan_name, pl);
    for (int64_t i = 1; i < n; i++)
        LQ_GOTO_IF(strcmp(pl[ix[i - 1]].name, pl[ix[i]].name) == 0, LQ_ERR_INVALID_ARG,
                   "%s: tensors '%s' and '%s' both map to '%s'", path, pl[ix[i - 1]].src->name, pl[ix[i]].src->name,
                   pl[ix[i]].name);
    if (p->tokenizer_path) LQ_GOTO_TRY(load_vocab(p->tokenizer_path, cfg, &voc));

    /* ---- header ---- */
    put(&hdr, "GGUF", 4);
    put_u32(&hdr, 3);
    put_u64(&hdr, (uint64_t)n);
    put_u64(&hdr, 0); /* n_kv, patched below */
    kv_str(&hdr, "general.architecture", "llama");
    kv_str(&hdr, "general.name", p->name ? p->name : "model");
    if (align != 32) kv_u32(&hdr, "general.alignment", align);
    kv_u32(&hdr, "general.file_type", file_type(pl, n));
    if (ggml) kv_u32(&hdr, "general.quantization_version", 2);
    kv_u32(&hdr, "llama.vocab_size", (uint32_t)cfg->vocab_size);
    kv_u32(&hdr, "llama.context_length", (uint32_t)cfg->max_position_embeddings);
    kv_u32(&hdr, "llama.embedding_length", (uint32_t)cfg->hidden_size);
    kv_u32(&hdr, "llama.block_count", (uint32_t)cfg->n_layers);
    kv_u32(&hdr, "llama.feed_forward_length", (uint32_t)cfg->intermediate_size);
    kv_u32(&hdr, "llama.attention.head_count", (uint32_t)cfg->n_heads);
    kv_u32(&hdr, "llama.attention.head_count_kv", (uint32_t)cfg->n_kv_heads);
    if (cfg->head_dim * cfg->n_heads != cfg->hidden_size) {
        kv_u32(&hdr, "llama.attention.key_length", (uint32_t)cfg->head_dim);
        kv_u32(&hdr, "llama.attention.value_length", (uint32_t)cfg->head_dim);
    }
    kv_u32(&hdr, "llama.rope.dimension_count", (uint32_t)cfg->head_dim);
    kv_f32(&hdr, "llama.rope.freq_base", (float)cfg->rope_theta);
    kv_f32(&hdr, "llama.attention.layer_norm_rms_epsilon", (float)cfg->rms_norm_eps);
    if (cfg->rope_type == LQ_ROPE_LINEAR) {
        kv_str(&hdr, "llama.rope.scaling.type", "linear");
        kv_f32(&hdr, "llama.rope.scaling.factor", (float)cfg->rope_factor);
    }
    if (voc.tok) put_vocab(&hdr, &voc);
    for (int64_t i = 0; i < n; i++) {
        put_str(&hdr, pl[i].name, strlen(pl[i].name));
        put_u32(&hdr, pl[i].n_dims);
        for (uint32_t d = 0; d < pl[i].n_dims; d++) put_u64(&hdr, pl[i].ne[d]);
        put_u32(&hdr, (uint32_t)pl[i].ggml_type);
        put_u64(&hdr, pl[i].offset);
    }
    LQ_GOTO_IF(hdr.oom, LQ_ERR_NOMEM, "%s: out of memory for the header", path);
    for (int k = 0; k < 8; k++) hdr.p[16 + k] = (uint8_t)(hdr.n_kv >> (8 * k));

    /* ---- file ---- */
    o.cap = (size_t)4 << 20;
    o.buf = lq_malloc(o.cap);
    LQ_GOTO_IF(!o.buf, LQ_ERR_NOMEM, "out of memory");
    LQ_GOTO_TRY(lq__afile_open(path, &o.f));
    LQ_GOTO_TRY(out_put(&o, hdr.p, hdr.n));
    LQ_GOTO_TRY(out_zeros(&o, pad_to(hdr.n, align) - hdr.n));
    for (int64_t i = 0; i < n; i++) {
        LQ_GOTO_TRY(write_data(&o, &pl[i], align));
        if (p->progress) {
            char stage[96];
            snprintf(stage, sizeof stage, "gguf %lld/%lld", (long long)(i + 1), (long long)n);
            LQ_GOTO_IF(p->progress((float)(i + 1) / (float)n, stage, p->progress_user) != 0, LQ_ERR_CANCELLED,
                       "%s: cancelled", path);
        }
    }
    LQ_GOTO_TRY(out_flush(&o));
    st  = lq__afile_commit_opt(o.f, !p->no_fsync);
    o.f = NULL;
done:
    lq__afile_abort(o.f);
    lq_free(o.buf);
    lq_free(hdr.p);
    vocab_free(&voc);
    lq_free(pl);
    lq_free(ix);
    return st;
}
