/* lq_formats.h : checkpoint readers and writers (public).
 *
 * Safetensors (single file and sharded directories), PyTorch zip checkpoints
 * (pytorch_model.bin, sharded with an index), llama2.c legacy v0 files, and
 * Hugging Face config.json. Every reader treats every byte as hostile:
 * sizes are overflow-checked, limits enforced, and errors name the file and
 * the tensor. Writers write atomically (temporary file + fsync + rename).
 * Depends on libquant/core only.
 *
 * Byte layouts (little-endian throughout):
 *
 * safetensors
 *   1. u64 N: header length (<= 100,000,000).
 *   2. N bytes: UTF-8 JSON object, optional SP/TAB/CR/LF around it:
 *      name -> {"dtype": "F32", "shape": [u64...], "data_offsets": [begin, end]}
 *      and optionally "__metadata__": {string: string}.
 *   3. the data buffer to EOF; offsets are relative to it. Sorted by offset,
 *      tensors must tile it exactly: first begin 0, each begin = previous end,
 *      end - begin = numel * bits / 8, last end + 8 + N = file size.
 *
 * llama2.c v0 (karpathy/llama2.c export.py legacy_export)
 *   7 x i32: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size
 *   (negative: separate classifier at the end), seq_len; then f32 arrays:
 *   embedding [V,dim], rms_att [L,dim], wq [L,dim,dim], wk [L,kv,dim],
 *   wv [L,kv,dim], wo [L,dim,dim], rms_ffn [L,dim], w1 [L,hid,dim],
 *   w2 [L,dim,hid], w3 [L,hid,dim], rms_final [dim], freq_cis_real and
 *   freq_cis_imag [seq_len, head_dim/2] each (ignored), wcls [V,dim] if unshared.
 *
 * PyTorch zip (torch.save since 1.6)
 *   A ZIP archive with one top folder: <top>/data.pkl (pickle, protocol 2+),
 *   <top>/data/<key> raw storages (STORED), <top>/byteorder, <top>/version.
 *   The pickle is interpreted by a restricted virtual machine that executes
 *   nothing: only state_dict opcodes and a whitelist of globals. */
#ifndef LQ_FORMATS_H
#define LQ_FORMATS_H

#include "lq_common.h"
#include "lq_json.h"
#include "lq_qtypes.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LQ_SAFETENSORS_MAX_HEADER 100000000ULL

/* One tensor as every reader presents it: contiguous, little-endian bytes. */
typedef struct {
    const char *name;                  /* NUL-terminated, owned by the reader         */
    lq_dtype    dtype;
    int32_t     n_dims;                /* 0 .. LQ_MAX_DIMS                            */
    int64_t     shape[LQ_MAX_DIMS];    /* outermost first (PyTorch order)             */
    const void *data;                  /* nbytes bytes, borrowed from the reader      */
    uint64_t    nbytes;
    int64_t     alias_of;              /* index of an earlier tensor with the very
                                          same bytes (tied weights), else -1          */
    lq_qtype    qtype;                 /* LQ_QT_NONE: plain `dtype` elements; a GGML
                                          type (GGUF files): `data` holds its blocks,
                                          dtype is U8 and shape the logical [rows, cols] */
} lq_tensor_info;

/* numel of a tensor_info (1 for rank 0); false on overflow */
bool lq_tensor_info_numel(const lq_tensor_info *t, uint64_t *out);

/* ==== safetensors reader ==== */

typedef struct lq_safetensors lq_safetensors;

/*! lq_safetensors_open() : mmap `path` read-only and validate every rule of
 *  the reference implementation plus duplicate names. Tensors are listed in
 *  data-offset order. @return LQ_OK, LQ_ERR_IO, LQ_ERR_FORMAT, LQ_ERR_NOMEM. */
lq_status lq_safetensors_open(const char *path, lq_safetensors **out);
/* the same over a caller-owned buffer that must outlive the handle (fuzzing) */
lq_status lq_safetensors_open_memory(const void *buf, size_t len, const char *label, lq_safetensors **out);
void                  lq_safetensors_close(lq_safetensors *st); /* accepts NULL */
int64_t               lq_safetensors_count(const lq_safetensors *st);
const lq_tensor_info *lq_safetensors_tensor(const lq_safetensors *st, int64_t i);
const lq_tensor_info *lq_safetensors_find(const lq_safetensors *st, const char *name);
/* the "__metadata__" object (string values only), or NULL when absent */
const lq_json *lq_safetensors_metadata(const lq_safetensors *st);
uint64_t       lq_safetensors_header_size(const lq_safetensors *st);

/* ==== safetensors writer ==== */

/* Fills `nbytes` bytes of a tensor's data starting at byte `offset` within it.
 * Called with disjoint ranges, possibly from several threads at once. */
typedef lq_status (*lq_fill_fn)(void *dst, uint64_t offset, uint64_t nbytes, void *user);

typedef struct {
    const char *name;
    lq_dtype    dtype;
    int32_t     n_dims;
    int64_t     shape[LQ_MAX_DIMS];  /* outermost first */
    const void *data;                /* the bytes, or NULL to use fill          */
    lq_fill_fn  fill;
    void       *fill_user;
} lq_st_entry;

typedef struct {
    const char *key;
    const char *value;
} lq_kv;

typedef struct {
    const lq_kv   *metadata;          /* written as "__metadata__", keys sorted    */
    int32_t        n_metadata;
    uint64_t       max_shard_size;    /* bytes of tensor data per shard; 0 = one file */
    bool           sort_like_reference; /* true: dtype-descending then name, as the
                                           reference writer; false: entry order      */
    bool           no_fsync;          /* skip fsync (benchmarks, tests)            */
    int            n_threads;         /* for fill; 0 = OpenMP default              */
    lq_progress_fn progress;
    void          *progress_user;
} lq_st_write_params;

lq_st_write_params lq_st_write_default_params(void);

/*! lq_safetensors_write() : write `n` tensors to the file `path` atomically.
 *  Header padded with spaces to a multiple of 8. */
lq_status lq_safetensors_write(const char *path, const lq_st_entry *entries, int64_t n,
                               const lq_st_write_params *p);
/*! lq_safetensors_write_dir() : into directory `dir` (must exist): one
 *  `model.safetensors`, or with p->max_shard_size > 0 and more than one shard
 *  `model-00001-of-0000N.safetensors` files (greedy in entry order; a tensor
 *  larger than the limit gets a shard of its own) plus
 *  `model.safetensors.index.json`. Each file is written atomically. */
lq_status lq_safetensors_write_dir(const char *dir, const lq_st_entry *entries, int64_t n,
                                   const lq_st_write_params *p);

/* ==== PyTorch zip checkpoints ==== */

typedef struct lq_pytorch lq_pytorch;

/*! lq_pytorch_open() : read a torch.save() zip (pytorch_model.bin). Refuses
 *  legacy raw pickles, TorchScript archives, unknown opcodes and any global
 *  outside the whitelist (LQ_ERR_FORMAT, naming it). Accepts a bare
 *  state_dict or one wrapped in {"state_dict": ...} / {"model": ...}.
 *  Tensors come in pickle order; non-contiguous views are made contiguous.
 *  Tensors that view the same storage bytes with the same shape get alias_of. */
lq_status lq_pytorch_open(const char *path, lq_pytorch **out);
lq_status lq_pytorch_open_memory(const void *buf, size_t len, const char *label, lq_pytorch **out);
void                  lq_pytorch_close(lq_pytorch *pt);
int64_t               lq_pytorch_count(const lq_pytorch *pt);
const lq_tensor_info *lq_pytorch_tensor(const lq_pytorch *pt, int64_t i);

/* ==== Hugging Face config.json ==== */

typedef enum {
    LQ_ROPE_DEFAULT = 0,
    LQ_ROPE_LINEAR,
    LQ_ROPE_DYNAMIC,
    LQ_ROPE_LLAMA3,
    LQ_ROPE_YARN
} lq_rope_type;

typedef struct {
    char         model_type[32];          /* "llama", "mistral", "qwen2"                 */
    char         architecture[64];        /* architectures[0], e.g. "LlamaForCausalLM"   */
    int64_t      vocab_size;
    int64_t      hidden_size;
    int64_t      intermediate_size;
    int64_t      n_layers;                /* num_hidden_layers                          */
    int64_t      n_heads;                 /* num_attention_heads                        */
    int64_t      n_kv_heads;              /* num_key_value_heads (default n_heads)      */
    int64_t      head_dim;                /* default hidden_size / n_heads              */
    int64_t      max_position_embeddings;
    double       rms_norm_eps;
    double       rope_theta;
    lq_rope_type rope_type;
    double       rope_factor;             /* linear/dynamic/llama3/yarn factor          */
    double       rope_low_freq_factor;    /* llama3                                     */
    double       rope_high_freq_factor;   /* llama3                                     */
    int64_t      rope_original_max_pos;   /* llama3/yarn original context               */
    double       rope_attention_factor;   /* yarn (0 = default)                         */
    double       rope_beta_fast, rope_beta_slow; /* yarn                                */
    bool         tie_word_embeddings;
    bool         attention_bias;          /* q,k,v(,o) biases; qwen2: q,k,v always     */
    bool         mlp_bias;
    int64_t      sliding_window;          /* 0 = none                                   */
    int64_t      bos_token_id;            /* -1 = none                                  */
    int64_t      eos_token_id[8];
    int32_t      n_eos;
    lq_dtype     dtype;                   /* dtype / torch_dtype; F32 if absent          */
    char         hidden_act[16];
} lq_model_config;

/*! lq_hfconfig_parse() : fill `c` from config.json text, with the defaults of
 *  transformers' Llama/Mistral/Qwen2 configurations for absent keys and both
 *  spellings of renamed keys. `label` names the source in messages.
 *  @return LQ_OK, LQ_ERR_FORMAT (bad JSON or values), LQ_ERR_UNSUPPORTED
 *  (model_type outside llama/mistral/qwen2). */
lq_status lq_hfconfig_parse(const char *json, size_t len, const char *label, lq_model_config *c);
lq_status lq_hfconfig_load(const char *path, lq_model_config *c);
/*! lq_hfconfig_to_json() : a config.json for `c` (indent 2), lq_free'd by caller */
lq_status lq_hfconfig_to_json(const lq_model_config *c, char **out, size_t *out_len);

/* ==== llama2.c ==== */

typedef struct {
    int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    bool    shared_classifier;
} lq_llama2c_header;

typedef struct lq_llama2c lq_llama2c;

/*! lq_llama2c_open() : read a legacy (v0) llama2.c checkpoint and present it
 *  in the Hugging Face Llama layout: HF tensor names, q_proj and k_proj rows
 *  permuted from interleaved-pair RoPE order to rotate_half order, no
 *  lm_head when the classifier is shared. */
lq_status lq_llama2c_open(const char *path, lq_llama2c **out);
void                     lq_llama2c_close(lq_llama2c *m);
const lq_llama2c_header *lq_llama2c_header_of(const lq_llama2c *m);
int64_t                  lq_llama2c_count(const lq_llama2c *m);
const lq_tensor_info    *lq_llama2c_tensor(const lq_llama2c *m, int64_t i);
/* the equivalent HF config (llama, eps 1e-5, theta 10000, f32) */
void lq_llama2c_config(const lq_llama2c *m, lq_model_config *c);

/* ==== any checkpoint ==== */

typedef enum {
    LQ_CKPT_SAFETENSORS = 0,   /* one .safetensors file                  */
    LQ_CKPT_SAFETENSORS_DIR,   /* directory: model.safetensors or index  */
    LQ_CKPT_PYTORCH,           /* one .bin zip                           */
    LQ_CKPT_PYTORCH_DIR,       /* directory: pytorch_model.bin or index  */
    LQ_CKPT_LLAMA2C,           /* llama2.c legacy file                   */
    LQ_CKPT_GGUF               /* GGUF v2/v3 file (GGUF tensor names)    */
} lq_ckpt_kind;

typedef struct lq_checkpoint lq_checkpoint;

/*! lq_checkpoint_open() : open a file or a model directory, detecting the
 *  kind from content (not only the name). Sharded directories are read
 *  through their index; every index entry must exist in its shard and every
 *  tensor of the shards must be in the index. */
lq_status lq_checkpoint_open(const char *path, lq_checkpoint **out);
void                  lq_checkpoint_close(lq_checkpoint *c);
lq_ckpt_kind          lq_checkpoint_kind(const lq_checkpoint *c);
const char           *lq_checkpoint_kind_name(lq_ckpt_kind k);
int64_t               lq_checkpoint_count(const lq_checkpoint *c);
const lq_tensor_info *lq_checkpoint_tensor(const lq_checkpoint *c, int64_t i);
const lq_tensor_info *lq_checkpoint_find(const lq_checkpoint *c, const char *name);
/* directory holding config.json / tokenizer files, or NULL (llama2.c file) */
const char *lq_checkpoint_dir(const lq_checkpoint *c);
/* the source file of tensor i (a shard path for sharded inputs) */
const char *lq_checkpoint_tensor_file(const lq_checkpoint *c, int64_t i);
/*! lq_checkpoint_config() : config.json of the directory, or the synthesized
 *  config of a llama2.c file. LQ_ERR_NOT_FOUND when there is none. */
lq_status lq_checkpoint_config(const lq_checkpoint *c, lq_model_config *out);

#ifdef __cplusplus
}
#endif
#endif /* LQ_FORMATS_H */
