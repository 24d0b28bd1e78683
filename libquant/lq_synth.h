/* lq_synth.h : random-weight Hugging Face Llama checkpoints for benchmarks
 * (public). Figures measured on them are synthetic: the weights carry no
 * knowledge, only the shapes and dtypes of a real model. */
#ifndef LQ_SYNTH_H
#define LQ_SYNTH_H

#include "lq_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int64_t        dim, hidden, n_layers, n_heads, n_kv_heads, vocab, max_pos;
    lq_dtype       dtype;          /* F32, F16 or BF16                               */
    bool           tied;           /* no lm_head; tie_word_embeddings true            */
    uint64_t       seed;
    uint64_t       max_shard_size; /* 0 = one model.safetensors                        */
    lq_progress_fn progress;
    void          *progress_user;
} lq_synth_params;

/* a 1B-like shape: dim 2048, hidden 5632, 22 layers, 32/4 heads, vocab 32000, F16 */
lq_synth_params lq_synth_default_params(void);

/*! lq_synth_write() : config.json + safetensors into directory `dir` (created
 *  if missing). Weights uniform with std 0.02, norms 1, deterministic for the
 *  seed. *n_params (may be NULL) receives the parameter count. */
lq_status lq_synth_write(const char *dir, const lq_synth_params *p, uint64_t *n_params);

#ifdef __cplusplus
}
#endif
#endif /* LQ_SYNTH_H */
