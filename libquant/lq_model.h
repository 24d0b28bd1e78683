/* lq_model.h : the Llama-family model runner (public; part of the algorithms
 * module, on top of formats and kernels).
 *
 * Opens any checkpoint lq_checkpoint_open() accepts (HF directory single or
 * sharded, .safetensors, .bin, llama2.c) with its config, maps the weights in
 * their stored dtype (F32/F16/BF16; no f32 copy), and runs the forward pass
 * on the CPU (OpenMP ops, or the plain-C reference ops as an oracle) or
 * entirely on CUDA. Memory: the weights (mapped) plus the KV cache (f32,
 * n_layers x max_seq x kv_dim x 2) plus activations for max_batch tokens. */
#ifndef LQ_MODEL_H
#define LQ_MODEL_H

#include "lq_common.h"
#include "lq_formats.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    lq_backend backend;   /* LQ_BACKEND_AUTO (CUDA when a device exists), _CPU or _CUDA  */
    int        n_threads; /* CPU threads; 0 = OpenMP default                            */
    int64_t    max_seq;   /* KV cache positions; 0 = min(max_position_embeddings, 4096) */
    int64_t    max_batch; /* tokens per internal forward step; 0 = 512                   */
    bool       use_ref;   /* CPU only: the plain-C `_ref` ops (the oracle; slow)         */
} lq_model_params;

lq_model_params lq_model_default_params(void);

typedef struct lq_model lq_model;

/*! lq_model_open() : @return LQ_OK; LQ_ERR_IO / LQ_ERR_FORMAT (unreadable or
 *  malformed input, a missing or mis-shaped tensor, named); LQ_ERR_UNSUPPORTED
 *  (architecture, weight dtype, rope type, or CUDA requested without a device);
 *  LQ_ERR_NOMEM. */
lq_status lq_model_open(const char *path, const lq_model_params *p, lq_model **out);
void      lq_model_free(lq_model *m); /* accepts NULL */

const lq_model_config *lq_model_config_of(const lq_model *m);
lq_backend             lq_model_backend(const lq_model *m);   /* the resolved backend */
int64_t                lq_model_max_seq(const lq_model *m);
/* bytes of weights as stored (what is read per token at decode) */
uint64_t               lq_model_weight_bytes(const lq_model *m);
/* the checkpoint behind the model (for tokenizer lookup, reports) */
const lq_checkpoint   *lq_model_checkpoint(const lq_model *m);

/*! lq_model_forward() : run tokens[0..n) at positions pos0 .. pos0+n-1.
 *  The KV cache keeps positions < pos0 from earlier calls (pos0 = 0 starts a
 *  fresh sequence). pos0 + n must be <= max_seq. Writes logits (n, vocab) to
 *  `logits`, or only the last row (vocab) when last_only.
 *  @return LQ_ERR_INVALID_ARG for out-of-range tokens or positions. */
lq_status lq_model_forward(lq_model *m, const int32_t *tokens, int64_t n, int64_t pos0, float *logits,
                           bool last_only);

#ifdef __cplusplus
}
#endif
#endif /* LQ_MODEL_H */
