/* block_internal.h : one decoder block of the Llama-family forward pass on
 * the CPU, shared by the model runner (model.c) and the block-by-block
 * quantization engine (gptq_engine.c), which also needs the inputs of the
 * block's Linear layers (capture points). Internal to the algorithms module. */
#ifndef LQ_BLOCK_INTERNAL_H
#define LQ_BLOCK_INTERNAL_H

#include "lq_kernels.h"

/* the four distinct Linear inputs of a block, in forward order */
typedef enum {
    LQ__CAP_QKV = 0, /* rmsnorm(x): q_proj, k_proj, v_proj (n, dim)         */
    LQ__CAP_O,       /* attention output: o_proj (n, n_heads * head_dim)    */
    LQ__CAP_GATEUP,  /* rmsnorm(x + attn): gate_proj, up_proj (n, dim)      */
    LQ__CAP_DOWN,    /* silu(gate) * up: down_proj (n, hidden)              */
    LQ__CAP_COUNT
} lq__cap_point;

/* called with the input rows x (n, cols) of the Linear layers at point p */
typedef lq_status (*lq__capture_fn)(void *user, lq__cap_point p, const float *x, int64_t n, int64_t cols);

/* scratch for up to `n` tokens (sizes from lq__block_scratch_alloc) */
typedef struct {
    float   *xb, *q, *k, *v, *att, *ob, *g, *u;
    int32_t *pos;
    int64_t  cap;       /* tokens */
    bool     on_device; /* buffers are device memory (_alloc_cuda) */
} lq__block_scratch;

lq_status lq__block_scratch_alloc(lq__block_scratch *s, const lq_llama_weights *w, int64_t n_tokens);
lq_status lq__block_scratch_alloc_cuda(lq__block_scratch *s, const lq_llama_weights *w, int64_t n_tokens);
void      lq__block_scratch_free(lq__block_scratch *s); /* either kind */

/*! lq__block_forward() : x (n, dim) <- block `layer` applied to x, tokens at
 *  positions pos0 .. pos0+n-1; kc/vc hold this layer's cache (max positions
 *  x kv_dim; rows < pos0 from earlier calls). `cap` (may be NULL) sees each
 *  capture point; when stop_after >= 0 the pass returns right after that
 *  point has been captured (x is then left unchanged or partially updated:
 *  callers that stop early discard it). ref: the `_ref` ops. */
lq_status lq__block_forward(const lq_llama_weights *w, const lq_llama_layer *y, float *x, int64_t n, int64_t pos0,
                            float *kc, float *vc, const lq__block_scratch *s, bool ref, int n_threads,
                            lq__capture_fn cap, void *user, int stop_after);

/*! lq__block_forward_cuda() : the same with the lq_cuda_* ops: x, kc, vc, the
 *  scratch (from _alloc_cuda), inv_freq and every weight, norm and bias of
 *  `y` are device pointers. The capture callback receives device pointers. */
lq_status lq__block_forward_cuda(const lq_llama_weights *w, const lq_llama_layer *y, const float *inv_freq, float *x,
                                 int64_t n, int64_t pos0, float *kc, float *vc, const lq__block_scratch *s,
                                 lq__capture_fn cap, void *user, int stop_after);

/* the runner's weights (model.c): block views for the quantization engines */
struct lq_model;
const lq_llama_weights *lq__model_weights(const struct lq_model *m);
/* mutable views for the sensitivity measurement, which swaps one group of
 * Linears for quantized versions between forward passes (CPU backend only:
 * the CUDA runner holds its own device copies) */
lq_llama_weights *lq__model_weights_mut(struct lq_model *m);
lq_llama_layer   *lq__model_layer_mut(struct lq_model *m, int64_t layer); /* NULL when out of range */

/* a statistics hook on every forward pass of the runner: called at the four
 * capture points of each block with the Linear input rows; on_device: x is
 * a device pointer (CUDA backend). NULL fn removes it. */
typedef lq_status (*lq__model_capture_fn)(void *user, int64_t layer, lq__cap_point p, const float *x, int64_t n,
                                          int64_t cols, bool on_device);
void lq__model_set_capture(struct lq_model *m, lq__model_capture_fn fn, void *user);

#endif
