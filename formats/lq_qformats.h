/* lq_qformats.h : quantized checkpoint formats (public; formats module).
 *
 *   GGUF v3 (llama.cpp): reader (any GGUF v2/v3 file: KV pairs + tensors,
 *       GGML block types mapped to lq_qtypes) and a llama-architecture writer.
 *   GPTQ (AutoGPTQ / GPTQModel / vLLM / transformers): `qweight`, `qzeros`,
 *       `scales`, `g_idx` per Linear, `checkpoint_format` gptq (v1: zero
 *       points stored minus one) or gptq_v2, with `quantization_config` in
 *       config.json and a `quantize_config.json`; mixed bits through
 *       GPTQModel's `dynamic` overrides; act-order (`desc_act`) g_idx
 *       written and read as lq_qtensor.g_idx.
 *   compressed-tensors (llm-compressor / vLLM): `pack-quantized` (int2..int8
 *       packed), `int-quantized` (int8 stored as I8), `float-quantized` (fp8
 *       e4m3), with `config_groups` and `ignore`; several groups make
 *       `mixed-precision`; act-order `weight_g_idx` (actorder "group") read,
 *       and written on request.
 * Byte layouts and config keys: ../shared/docs/REFERENCE.md section 5. The
 * writers take lq_qtensor records in the lq layouts (lq_qtypes.h) and the
 * readers give the same records back, bit for bit. Every file is written
 * atomically. Depends on core and the rest of formats only. */
#ifndef LQ_QFORMATS_H
#define LQ_QFORMATS_H

#include "lq_formats.h"
#include "lq_qtypes.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== GGUF ==== */

typedef enum {
    LQ_GGUF_UINT8 = 0, LQ_GGUF_INT8 = 1, LQ_GGUF_UINT16 = 2, LQ_GGUF_INT16 = 3, LQ_GGUF_UINT32 = 4,
    LQ_GGUF_INT32 = 5, LQ_GGUF_FLOAT32 = 6, LQ_GGUF_BOOL = 7, LQ_GGUF_STRING = 8, LQ_GGUF_ARRAY = 9,
    LQ_GGUF_UINT64 = 10, LQ_GGUF_INT64 = 11, LQ_GGUF_FLOAT64 = 12
} lq_gguf_type;

typedef struct lq_gguf lq_gguf;

/*! lq_gguf_open() : map a GGUF file read-only and validate it as hostile
 *  input (version 2 or 3, sizes overflow-checked, unique keys and names,
 *  known tensor types, ne[0] a multiple of the block size, offsets equal to
 *  the running sum of aligned sizes, data inside the file). Tensors come in
 *  file order as lq_tensor_info with GGUF names and shape outermost first
 *  ([ne1, ne0]); F32/F16/BF16 tensors are plain dtypes, GGML block types
 *  have dtype U8 and qtype set. */
lq_status lq_gguf_open(const char *path, lq_gguf **out);
lq_status lq_gguf_open_memory(const void *buf, size_t len, const char *label, lq_gguf **out);
void                  lq_gguf_close(lq_gguf *g); /* accepts NULL */
uint32_t              lq_gguf_version(const lq_gguf *g);
uint32_t              lq_gguf_alignment(const lq_gguf *g);
int64_t               lq_gguf_count(const lq_gguf *g);
const lq_tensor_info *lq_gguf_tensor(const lq_gguf *g, int64_t i);
const lq_tensor_info *lq_gguf_find(const lq_gguf *g, const char *name);
/* the GGUF type id of tensor i as stored */
int lq_gguf_tensor_ggml_type(const lq_gguf *g, int64_t i);

/* key/value access; the getters return LQ_ERR_NOT_FOUND (no log) when the
 * key is absent and LQ_ERR_FORMAT when it has another type (integers of any
 * width and sign convert when the value fits) */
int64_t     lq_gguf_kv_count(const lq_gguf *g);
const char *lq_gguf_kv_key(const lq_gguf *g, int64_t i);
lq_gguf_type lq_gguf_kv_type(const lq_gguf *g, int64_t i);
lq_status   lq_gguf_get_i64(const lq_gguf *g, const char *key, int64_t *out);
lq_status   lq_gguf_get_f64(const lq_gguf *g, const char *key, double *out); /* FLOAT32/FLOAT64 */
lq_status   lq_gguf_get_bool(const lq_gguf *g, const char *key, bool *out);
/* a string value (borrowed, not NUL-terminated inside the file: a NUL-terminated copy kept by the handle) */
lq_status   lq_gguf_get_str(const lq_gguf *g, const char *key, const char **out);
/* an array: element type and count; elements with lq_gguf_array_* */
lq_status   lq_gguf_get_array(const lq_gguf *g, const char *key, lq_gguf_type *elem_type, uint64_t *n);
lq_status   lq_gguf_array_str(const lq_gguf *g, const char *key, uint64_t i, const char **s, uint64_t *len);
lq_status   lq_gguf_array_f64(const lq_gguf *g, const char *key, uint64_t i, double *out);
lq_status   lq_gguf_array_i64(const lq_gguf *g, const char *key, uint64_t i, int64_t *out);

/*! lq_gguf_config() : the llama-family hyperparameters of the file as an HF
 *  config (general.architecture llama (or qwen2/mistral) and its keys;
 *  vocab_size from the tokenizer when the key is absent; tie_word_embeddings
 *  true when there is no `output.weight`). LQ_ERR_UNSUPPORTED for other
 *  architectures, LQ_ERR_FORMAT for missing mandatory keys (named). */
lq_status lq_gguf_config(const lq_gguf *g, lq_model_config *c);

typedef struct {
    const char    *name;           /* general.name; NULL = "model"                            */
    uint32_t       alignment;      /* 0 = 32                                                  */
    const char    *tokenizer_path; /* tokenizer.model, tokenizer.json or llama2.c tokenizer.bin
                                      (NULL: no tokenizer keys; llama.cpp then refuses the file) */
    bool           no_fsync;
    lq_progress_fn progress;
    void          *progress_user;
} lq_gguf_write_params;

lq_gguf_write_params lq_gguf_write_default_params(void);

/*! lq_gguf_write_llama() : write a llama-architecture GGUF v3 file from
 *  HF-named tensors (model.embed_tokens.weight, model.layers.N.*, model.norm
 *  .weight, lm_head.weight) in KEEP (f32/f16/bf16) or GGML types: names are
 *  mapped to GGUF's (token_embd, blk.N.attn_q, ..., output_norm, output),
 *  q_proj/k_proj rows permuted from HF rotate_half order to GGUF's
 *  interleaved order, 1-D tensors stored F32, general.file_type chosen from
 *  the most common matrix type, hyperparameters from `cfg`, tokenizer from
 *  p->tokenizer_path. INT/FP8 types: LQ_ERR_UNSUPPORTED (GGUF has none), an
 *  unknown name: LQ_ERR_FORMAT, each naming the tensor. */
lq_status lq_gguf_write_llama(const char *path, const lq_model_config *cfg, const lq_qtensor *t, int64_t n,
                              const lq_gguf_write_params *p);

/*! lq_gguf_hf_name() : the HF name of a llama GGUF tensor name
 *  ("blk.3.attn_q.weight" -> "model.layers.3.self_attn.q_proj.weight",
 *  "token_embd.weight" -> "model.embed_tokens.weight", "output.weight" ->
 *  "lm_head.weight"; .weight and .bias), written to buf (cap bytes).
 *  Returns buf, or NULL when the name is not one the writer produces (e.g.
 *  rope_freqs.weight) or does not fit. Names only: the tensor data stays in
 *  GGUF's layout (q/k rows in interleaved RoPE order). */
const char *lq_gguf_hf_name(const char *gguf_name, char *buf, size_t cap);

/* ==== GPTQ and compressed-tensors ==== */

typedef enum {
    LQ_QFMT_GPTQ = 0,  /* checkpoint_format "gptq" (v1: qzeros store z - 1)            */
    LQ_QFMT_GPTQ_V2,   /* checkpoint_format "gptq_v2" (qzeros store z)                 */
    LQ_QFMT_CT         /* compressed-tensors                                           */
} lq_qformat;

const char *lq_qformat_name(lq_qformat f); /* "gptq", "gptq_v2", "compressed-tensors" */

/*! lq_qformat_supports() : can format `f` store a rows x cols matrix of type
 *  `t`? (GPTQ: INT types with cols * bits a multiple of 32 and bits 2/3/4/8;
 *  compressed-tensors: INT and FP8 types; both: KEEP types as plain
 *  tensors.) When not, *why (if given) gets a static sentence. */
bool lq_qformat_supports(lq_qformat f, lq_qtype t, int64_t rows, int64_t cols, const char **why);

typedef struct {
    lq_qformat             format;
    const lq_model_config *cfg;            /* for config.json when config_json is NULL       */
    const char            *config_json;    /* source config.json text: kept, with
                                              "quantization_config" added or replaced       */
    size_t                 config_json_len;
    lq_dtype               model_dtype;    /* dtype of kept tensors (torch_dtype); informational */
    uint64_t               max_shard_size; /* 0 = one model.safetensors                      */
    bool                   no_fsync;
    bool                   ct_actorder_group; /* compressed-tensors: write act-order g_idx as weight_g_idx with
                                                 actorder "group" (vLLM and compressed-tensors before 0.20 load
                                                 it; 0.20 refuses it); false: such tensors are refused
                                                 (LQ_ERR_UNSUPPORTED naming the tensor) */
    int                    n_threads;
    lq_progress_fn         progress;
    void                  *progress_user;
} lq_qformat_write_params;

lq_qformat_write_params lq_qformat_write_default_params(void);

/*! lq_qformat_write_dir() : write `n` tensors into the existing directory
 *  `dir`: model.safetensors (or shards + index), config.json and, for GPTQ,
 *  quantize_config.json. Matrices with an INT/FP8 qtype become the format's
 *  tensors for module `name` minus ".weight"; KEEP tensors are written as
 *  they are. The quantization_config describes the majority scheme and
 *  lists every other module (GPTQ `dynamic`: "-:" for modules left plain,
 *  "+:" overrides for other bits/group sizes; compressed-tensors: one config
 *  group per scheme, `ignore` for plain Linear modules). Symmetric GPTQ v1
 *  4-bit qzeros words are 0x77777777. An asymmetric zero point of 0 cannot
 *  be stored in v1: LQ_ERR_UNSUPPORTED naming the tensor (use gptq_v2).
 *  Act-order (lq_qtensor.g_idx not NULL and not k / G, INT types only): the
 *  codes stay in the original column order and scale/zero row g is group g;
 *  GPTQ writes g_idx as given and "desc_act": true (grouped modules without
 *  act-order then get a "+:" {"desc_act": false} override in `dynamic`);
 *  compressed-tensors writes weight_g_idx (I32 [cols]) for every module of
 *  the scheme and the scheme's weights "actorder": "group", only with
 *  p->ct_actorder_group. A g_idx with a value outside [0, cols / G) or a
 *  group without exactly G columns, or a g_idx on a non-INT tensor:
 *  LQ_ERR_INVALID_ARG naming the tensor. */
lq_status lq_qformat_write_dir(const char *dir, const lq_qtensor *t, int64_t n, const lq_qformat_write_params *p);

typedef struct lq_quant_config lq_quant_config;

/*! lq_quant_config_parse() : the "quantization_config" object of a
 *  config.json text. *out = NULL (LQ_OK) when there is none;
 *  LQ_ERR_UNSUPPORTED for quant_method other than gptq and
 *  compressed-tensors (named), LQ_ERR_FORMAT for malformed values. */
lq_status lq_quant_config_parse(const char *config_json, size_t len, const char *label, lq_quant_config **out);
/* the same from the checkpoint's directory (config.json; *out NULL when the checkpoint has none) */
lq_status lq_quant_config_load(const lq_checkpoint *ck, lq_quant_config **out);
void      lq_quant_config_free(lq_quant_config *qc); /* accepts NULL */
lq_qformat lq_quant_config_format(const lq_quant_config *qc);

/*! lq_qformat_load() : the weight of Linear module `prefix` (e.g.
 *  "model.layers.0.mlp.down_proj"), which must be rows x cols, as an
 *  lq_qtensor in the lq layout. compressed-tensors packed data is borrowed
 *  from the mapping; GPTQ qweight is transposed into an owned buffer; scales
 *  (to f32) and zero points (unpacked to u8, v1's +1 applied) are owned. A
 *  module stored plain (prefix.weight, F32/F16/BF16) comes back as a KEEP
 *  type borrowing its tensor. *owned receives one lq_malloc'ed block holding
 *  every owned buffer (NULL when none); free it after the last use.
 *  GPTQ `g_idx` / compressed-tensors `weight_g_idx` (I32 [cols]): absent or
 *  k / G gives out->g_idx NULL (the plain layout); anything else (act-order)
 *  is validated as hostile input (every value in [0, cols / G), else
 *  LQ_ERR_FORMAT; every group exactly G columns, else LQ_ERR_UNSUPPORTED)
 *  and returned in out->g_idx (owned, inside *owned) with the codes in the
 *  file's column order: w[r][k] = s[r][g_idx[k]] * (u[r][k] - z[r][g_idx[k]]),
 *  as transformers dequantizes it. A non-trivial g_idx under desc_act false
 *  (or a scheme without actorder "group") is still applied, with a warning
 *  (vLLM would ignore it). LQ_ERR_FORMAT (named) for missing or mis-shaped
 *  tensors, LQ_ERR_UNSUPPORTED for a layout outside the table. */
lq_status lq_qformat_load(const lq_checkpoint *ck, const lq_quant_config *qc, const char *prefix, int64_t rows,
                          int64_t cols, lq_qtensor *out, void **owned);

#ifdef __cplusplus
}
#endif
#endif /* LQ_QFORMATS_H */
