/* lq_kernels.h : compute kernels (public).
 *
 * Each op exists as a plain C reference (`_ref`: portable C11, no OpenMP, no
 * intrinsics; the spec and the test oracle), an optimized CPU version
 * (`_cpu`: OpenMP, vectorizable loops) and a CUDA version (`lq_cuda_*`).
 * CPU results must not depend on the thread count. Without CUDA in the build,
 * every lq_cuda_* entry returns LQ_ERR_UNSUPPORTED and
 * lq_cuda_device_count() returns 0. */
#ifndef LQ_KERNELS_H
#define LQ_KERNELS_H

#include "lq_common.h"
#include "lq_qtypes.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== dtype conversion ==== */

/*! lq_convert_ref() / lq_convert_cpu() :
 *  convert `n` elements from `src` (type `src_t`) to `dst` (type `dst_t`).
 *  Both types must be convertible (traits.convertible): floats, integers and
 *  BOOL. Float -> narrower float rounds to nearest even (lq_f32_to_* rules);
 *  F64 -> F16/BF16/F8 rounds once, directly (never through F32 twice).
 *  Float -> integer is refused (LQ_ERR_UNSUPPORTED). Same type: a copy.
 *  Buffers must not overlap. `n_threads` <= 0 means the OpenMP default. */
lq_status lq_convert_ref(lq_dtype dst_t, void *dst, lq_dtype src_t, const void *src, int64_t n);
lq_status lq_convert_cpu(lq_dtype dst_t, void *dst, lq_dtype src_t, const void *src, int64_t n, int n_threads);

/* ==== Llama-family forward-pass ops ====
 * Activations are f32, row-major: x (n, dim) means n rows of dim floats.
 * Weights keep their stored dtype (F32, F16 or BF16) and are read in place
 * (through the checkpoint's mapping): no f32 copy of a half-precision model.
 * Accumulation is f32 (`_cpu`) or f32 in a fixed order (`_ref`). */

/* a row-major weight matrix (rows = out features, cols = in features),
 * plain or quantized. Plain (qtype LQ_QT_NONE, or a KEEP type): rows * cols
 * elements of `dtype` (F32, F16 or BF16). Quantized (INT, FP8 or GGML
 * types): `data` holds rows in the lq layout of `qtype` (lq_qtypes.h; row r
 * at r * lq_qtype_row_bytes(qtype, cols)), `scales` and `zeros` beside it as
 * that header describes; `dtype` is ignored. Nothing is expanded to f32 in
 * memory: the matmuls dequantize inside their inner loops. */
typedef struct {
    lq_dtype       dtype;   /* plain: F32, F16 or BF16                        */
    const void    *data;
    int64_t        rows;
    int64_t        cols;
    lq_qtype       qtype;   /* LQ_QT_NONE (0) = plain                         */
    const float   *scales;  /* INT/FP8: lq_qtype_n_scales(qtype, rows, cols)  */
    const uint8_t *zeros;   /* INT asym: rows x n_groups, else NULL           */
    const int32_t *perm;    /* NULL, or cols entries (a permutation of [0, cols)):
                               stored column j holds input feature perm[j], so
                               y[r] = sum_j W[r][j] * x[perm[j]] (act-order GPTQ
                               with its groups made contiguous). The matmuls
                               gather x through it; lq_weight_row_f32 returns
                               the row in input-feature order; embedding tables
                               cannot have one. Device pointer for lq_cuda_*. */
    float          in_scale; /* > 0: W8A8 static int8 activations (INT8_CH
                               symmetric weights, no perm): the matmuls quantize
                               x with this per-tensor scale, q = clamp(rint(x /
                               in_scale), -128, 127), and accumulate int8 x int8
                               in int32; y = in_scale * s_w[r] * acc. 0: off  */
} lq_weight;

/* ==== quantization ==== */

/*! lq_quantize_cpu() : lq_quantize_ref() over OpenMP threads and SIMD, from a
 *  source of dtype F32, F16 or BF16 (converted exactly to f32 on the fly).
 *  Bit-identical to lq_quantize_ref() on the f32 values for any thread count
 *  (rows are independent; fp8 per-tensor amax is an exact max). */
lq_status lq_quantize_cpu(lq_qtype t, lq_dtype src_t, const void *src, int64_t rows, int64_t cols,
                          const lq_quant_params *p, void *data, float *scales, uint8_t *zeros, int n_threads);

/*! lq_weight_row_f32() : dequantize (or convert) row r of w into out (cols f32),
 *  equal to the corresponding row of lq_dequantize_ref(). */
lq_status lq_weight_row_f32(const lq_weight *w, int64_t r, float *out);

/*! W8A8 pieces (see lq_weight.in_scale): lq_quantize_act_i8_*: q[i] =
 *  clamp(rint(x[i] / scale), -128, 127); lq_gemm_i8_*: c (n, rows) int32 =
 *  a (n, k) int8 times the int8 weight codes b (rows, row stride ldb bytes,
 *  u8 with zero point 128) transposed, exact. _ref and _cpu are identical. */
void lq_quantize_act_i8_ref(const float *x, int64_t n, float scale, int8_t *q);
void lq_quantize_act_i8_cpu(const float *x, int64_t n, float scale, int8_t *q, int n_threads);
void lq_gemm_i8_ref(int32_t *c, const int8_t *a, int64_t n, int64_t k, const uint8_t *b, int64_t ldb, int64_t rows);
void lq_gemm_i8_cpu(int32_t *c, const int8_t *a, int64_t n, int64_t k, const uint8_t *b, int64_t ldb, int64_t rows,
                    int n_threads);

/*! lq_matmul_ref() / lq_matmul_cpu() :
 *  y (n, w->rows) = x (n, w->cols) · wᵀ + bias (w->rows; f32, may be NULL).
 *  `_ref` accumulates each dot product in f32 in index order; `_cpu` may
 *  reorder the sum (blocked, SIMD) but each output is written by one thread
 *  in a fixed order, so it is deterministic for any thread count.
 *  Quantized weights (every INT, FP8 and GGML type) are dequantized inside
 *  the dot products (fused), never into an f32 copy of the matrix.
 *  @return LQ_ERR_UNSUPPORTED for a plain dtype other than F32/F16/BF16. */
lq_status lq_matmul_ref(float *y, const float *x, int64_t n, const lq_weight *w, const float *bias);
lq_status lq_matmul_cpu(float *y, const float *x, int64_t n, const lq_weight *w, const float *bias, int n_threads);

/*! lq_embed_*() : out (n, table->cols) = rows ids[i] of table, as f32
 *  (a quantized table is dequantized row by row).
 *  LQ_ERR_INVALID_ARG if an id is outside [0, table->rows). */
lq_status lq_embed_ref(float *out, const lq_weight *table, const int32_t *ids, int64_t n);
lq_status lq_embed_cpu(float *out, const lq_weight *table, const int32_t *ids, int64_t n, int n_threads);

/*! lq_rmsnorm_*() : y (n, dim) = x / sqrt(mean(x²) + eps) ⊙ w (w: 1 x dim weight,
 *  any weight dtype). The mean of squares is accumulated sequentially in f64 by
 *  both versions, so `_cpu` is bit-identical to `_ref`.
 *  y may equal x. */
void lq_rmsnorm_ref(float *y, const float *x, const lq_weight *w, int64_t n, int64_t dim, float eps);
void lq_rmsnorm_cpu(float *y, const float *x, const lq_weight *w, int64_t n, int64_t dim, float eps, int n_threads);

/*! lq_rope_inv_freq() : inv_freq[i] = theta^(-2i/head_dim), i < head_dim/2,
 *  computed in f64 and rounded once, then scaled per rope_type (linear: ÷factor;
 *  llama3: the smooth low/high-frequency rule; dynamic/yarn: LQ_ERR_UNSUPPORTED
 *  for now). *attn_scale receives the cos/sin multiplier (1 except yarn). */
lq_status lq_rope_inv_freq(float *inv_freq, int64_t head_dim, double theta, int rope_type, double factor,
                           double low_freq_factor, double high_freq_factor, int64_t original_max_pos);

/*! lq_rope_*() : rotate x (n, n_heads, head_dim) in place; row t is at
 *  position pos[t]; angle = (float)pos · inv_freq[i] in f32, cosf/sinf.
 *  neox = true: HF rotate_half pairs (i, i + head_dim/2);
 *  neox = false: interleaved pairs (2i, 2i + 1) (llama2.c, Meta, GGUF llama). */
void lq_rope_ref(float *x, const int32_t *pos, int64_t n, int64_t n_heads, int64_t head_dim, const float *inv_freq,
                 bool neox);
void lq_rope_cpu(float *x, const int32_t *pos, int64_t n, int64_t n_heads, int64_t head_dim, const float *inv_freq,
                 bool neox, int n_threads);

/*! lq_attention_*() : causal grouped-query attention over a KV cache.
 *  q (n, n_heads * head_dim) holds positions pos0 .. pos0+n-1 (already roped);
 *  k_cache, v_cache (>= pos0+n rows, row stride kv_stride floats) hold keys and
 *  values for positions 0 .. pos0+n-1 (the caller appended this chunk's rows);
 *  query head h reads kv head h / (n_heads / n_kv_heads).
 *  out (n, n_heads * head_dim) = softmax(q kᵀ / sqrt(head_dim)) v, f32 softmax
 *  with the max subtracted. `_cpu` may use a scratch of its own. */
void lq_attention_ref(float *out, const float *q, const float *k_cache, const float *v_cache, int64_t n, int64_t pos0,
                      int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t kv_stride);
lq_status lq_attention_cpu(float *out, const float *q, const float *k_cache, const float *v_cache, int64_t n,
                           int64_t pos0, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t kv_stride,
                           int n_threads);

/*! lq_swiglu_*() : out[i] = silu(gate[i]) · up[i], silu(x) = x / (1 + exp(-x)). out may alias gate. */
void lq_swiglu_ref(float *out, const float *gate, const float *up, int64_t n);
void lq_swiglu_cpu(float *out, const float *gate, const float *up, int64_t n, int n_threads);

/*! lq_log_softmax_*() : out (n, vocab) = logits - logsumexp(logits) per row;
 *  the sum of exponentials is accumulated in f64. out may alias logits. */
void lq_log_softmax_ref(float *out, const float *logits, int64_t n, int64_t vocab);
void lq_log_softmax_cpu(float *out, const float *logits, int64_t n, int64_t vocab, int n_threads);

/* ==== a whole Llama-family model (llama, mistral, qwen2) ==== */

typedef struct {
    lq_weight    attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down;
    const float *bq, *bk, *bv, *bo; /* f32 biases (q/k/v: Qwen2, Llama attention_bias) or NULL */
} lq_llama_layer;

typedef struct {
    int64_t               dim, hidden, n_layers, n_heads, n_kv_heads, head_dim, vocab;
    float                 rms_eps;
    bool                  rope_neox;   /* true: HF rotate_half; false: interleaved pairs */
    const float          *inv_freq;    /* head_dim/2, from lq_rope_inv_freq()         */
    lq_weight             embed;       /* (vocab, dim)                                */
    lq_weight             norm;        /* (1, dim)                                    */
    lq_weight             lm_head;     /* (vocab, dim); = embed when tied             */
    const lq_llama_layer *layers;      /* n_layers                                    */
} lq_llama_weights;

/* ==== GPTQ (one Linear at a time; ../shared/docs/REFERENCE.md 6.1) ====
 * H is the layer-input Hessian (2/n_samples) * sum_t x_t x_t^T, cols x cols
 * f64, full (both triangles), symmetric. The quantizer is the lq INT rule of
 * lq_qtypes.h applied to the f32 value of each (updated) weight: the group's
 * scale is rounded to scale_dtype before it is used, so the stored model is
 * the one GPTQ optimized against. Everything else is f64. */
typedef struct {
    lq_qtype qtype;         /* an INT type: bits 2/3/4/8, group 32/64/128 or per channel, sym/asym */
    bool     act_order;     /* desc_act: columns processed in decreasing diag(H) order          */
    bool     static_groups; /* group parameters from the original W, before any update          */
    bool     mse;           /* per-group range shrink search, |q - x|^2.4 (reference `mse`)      */
    double   damp;          /* percdamp: H += damp * mean(diag H) * I; 0.01                      */
    int      block_size;    /* lazy batch width; 128                                             */
    lq_dtype scale_dtype;   /* F16 (GPTQ), BF16 or F32                                            */
} lq_gptq_params;

lq_gptq_params lq_gptq_default_params(void); /* int4_g128 sym, no act-order, damp 0.01, block 128, F16 */

typedef struct {
    double  loss;      /* sum over rows and columns of (w - q)^2 / U_jj^2 / 2 (the reference's "error") */
    double  damp;      /* relative damping finally used (p->damp plus automatic increases)              */
    int64_t dead_cols; /* columns with H_jj == 0 (their weights quantize as 0)                          */
    int     retries;   /* Cholesky failures before success                                               */
} lq_gptq_stats;

/*! lq_gptq_ref() : quantize w (rows x cols f32, row-major; not modified)
 *  against H (not modified) into the lq layout of p->qtype: data (rows *
 *  lq_qtype_row_bytes bytes, codes in the ORIGINAL column order), scales and
 *  zeros (rows x n_groups, group g = the g-th group of columns in processing
 *  order), g_idx (cols int32: k / G without act-order or with static groups;
 *  floor(rank of k in the act-order permutation / G) with act-order alone;
 *  0 per channel). g_idx may be NULL unless act_order && !static_groups on a
 *  grouped type; when given it is always written. Cholesky failure: damp +=
 *  0.01 and retry (at most 5 increases), then damp + 0.05 with a diagonal
 *  floor 1e-6 * max|diag| * 10^j, j = 0..5, then LQ_ERR_NUMERIC (st->retries
 *  counts the failures: 11 then). Non-finite w or H: LQ_ERR_INVALID_ARG; a
 *  type that is not INT or a width it cannot store: LQ_ERR_SHAPE. Single
 *  thread, plain loops, the oracle (five cols x cols f64 matrices). */
lq_status lq_gptq_ref(const lq_gptq_params *p, const float *w, int64_t rows, int64_t cols, const double *H,
                      void *data, float *scales, uint8_t *zeros, int32_t *g_idx, lq_gptq_stats *st);
/*! lq_gptq_cpu() : the same over OpenMP threads with blocked f64 kernels
 *  (Cholesky, triangular inverse, the lazy-batch update as a GEMM). Results
 *  do not depend on n_threads (<= 0: the OpenMP default); they may differ
 *  from _ref in rare rounding ties (summation order). Memory: two cols x
 *  cols and one rows x cols f64 matrix, plus O((rows + cols) * 128). */
lq_status lq_gptq_cpu(const lq_gptq_params *p, const float *w, int64_t rows, int64_t cols, const double *H,
                      void *data, float *scales, uint8_t *zeros, int32_t *g_idx, lq_gptq_stats *st, int n_threads);

/*! lq_hessian_accum_ref() / _cpu() : H (cols x cols f64, full) += alpha *
 *  x^T x for x (n x cols f32 rows). _ref: f64 products summed in row order;
 *  _cpu: f32 products summed in f32 over fixed chunks of at most 256 rows
 *  (rows 0-255, 256-511, ... of this call; a GEMM), each chunk added to H in
 *  f64 in chunk order; H stays exactly symmetric if it was; independent of
 *  n_threads. */
void      lq_hessian_accum_ref(double *H, const float *x, int64_t n, int64_t cols, double alpha);
lq_status lq_hessian_accum_cpu(double *H, const float *x, int64_t n, int64_t cols, double alpha, int n_threads);

/* ==== CUDA ==== */

/* number of usable CUDA devices; 0 without a driver, a device or CUDA in the build */
int lq_cuda_device_count(void);
/* true when this build contains CUDA kernels */
bool lq_cuda_compiled(void);
/* "NVIDIA H100 80GB HBM3, sm_90, 79 GiB" or a reason there is none; static storage */
const char *lq_cuda_device_name(void);

/* device memory helpers (LQ_ERR_CUDA / LQ_ERR_UNSUPPORTED on failure) */
lq_status lq_cuda_malloc(void **dptr, size_t n);
lq_status lq_cuda_free(void *dptr);
lq_status lq_cuda_memcpy_h2d(void *dst, const void *src, size_t n);
lq_status lq_cuda_memcpy_d2h(void *dst, const void *src, size_t n);
lq_status lq_cuda_memcpy_d2d(void *dst, const void *src, size_t n);
lq_status lq_cuda_synchronize(void);

/*! lq_cuda_convert() : lq_convert_ref semantics on device pointers, for the
 *  float types F32, F16, BF16, F8_E4M3, F8_E5M2 (others: LQ_ERR_UNSUPPORTED).
 *  Bit-identical to the CPU result. Synchronous. */
lq_status lq_cuda_convert(lq_dtype dst_t, void *dst, lq_dtype src_t, const void *src, int64_t n);

/* CUDA versions of the forward-pass ops: the `_cpu` signatures without
 * n_threads, every pointer (and lq_weight.data) a device pointer, run on the
 * default stream, synchronous. F16/BF16 weights multiply activations cast to
 * the weight's type with f32 accumulation (cublasGemmEx); F32 weights use
 * f32 GEMM (cuBLAS, TF32 off). Quantized weights (INT 2/3/4/8-bit, FP8 and
 * the GGML types) run fused dequantize + GEMV/GEMM kernels; lq_weight.scales
 * and .zeros are device pointers too. */
lq_status lq_cuda_matmul(float *y, const float *x, int64_t n, const lq_weight *w, const float *bias);
lq_status lq_cuda_embed(float *out, const lq_weight *table, const int32_t *ids, int64_t n);
lq_status lq_cuda_rmsnorm(float *y, const float *x, const lq_weight *w, int64_t n, int64_t dim, float eps);
lq_status lq_cuda_rope(float *x, const int32_t *pos, int64_t n, int64_t n_heads, int64_t head_dim,
                       const float *inv_freq, bool neox);
lq_status lq_cuda_attention(float *out, const float *q, const float *k_cache, const float *v_cache, int64_t n,
                            int64_t pos0, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t kv_stride);
lq_status lq_cuda_swiglu(float *out, const float *gate, const float *up, int64_t n);
lq_status lq_cuda_add(float *y, const float *x, int64_t n); /* y += x */
lq_status lq_cuda_log_softmax(float *out, const float *logits, int64_t n, int64_t vocab);

/* A complete forward pass on the GPU: weights uploaded once in their stored
 * dtype, activations and the KV cache (f32) stay on the device, only the
 * token ids go up and the logits come down. */
typedef struct lq_cuda_llama lq_cuda_llama;

/*! lq_cuda_llama_init() : upload `w` (host pointers; not retained) and size
 *  the KV cache for max_seq positions and the scratch for max_batch tokens. */
lq_status lq_cuda_llama_init(const lq_llama_weights *w, int64_t max_seq, int64_t max_batch, lq_cuda_llama **out);
/*! lq_cuda_llama_forward() : run tokens[0..n) at positions pos0..pos0+n-1
 *  (n <= max_batch, pos0+n <= max_seq; the cache keeps positions < pos0) and
 *  copy logits (n, vocab) to the host buffer `logits` (or only the last row
 *  when last_only). */
lq_status lq_cuda_llama_forward(lq_cuda_llama *m, const int32_t *tokens, int64_t n, int64_t pos0, float *logits,
                                bool last_only);
void lq_cuda_llama_free(lq_cuda_llama *m); /* accepts NULL */
/*! lq_cuda_llama_set_capture() : a statistics hook called by every
 *  lq_cuda_llama_forward at the four Linear inputs of each layer (point 0:
 *  rmsnorm(x) for q/k/v, 1: the attention output for o_proj, 2: rmsnorm for
 *  gate/up, 3: silu(gate)*up for down_proj) with the DEVICE rows (n, cols),
 *  complete when called (same stream). fn NULL removes it; an error stops the
 *  forward pass. */
typedef lq_status (*lq_cuda_capture_fn)(void *user, int64_t layer, int point, const float *x_dev, int64_t n,
                                        int64_t cols);
void lq_cuda_llama_set_capture(lq_cuda_llama *m, lq_cuda_capture_fn fn, void *user);

/* GPTQ on the device. lq_cuda_hessian_accum: device pointers H (cols x cols
 * f64) += alpha * x^T x (x: n x cols f32), as lq_hessian_accum_cpu (f32 GEMM
 * per chunk of at most 256 rows, TF32 off, added to H in f64).
 * lq_cuda_gptq: lq_gptq_cpu on the device: w (f32) and H (f64) are DEVICE
 * pointers (not modified), data/scales/zeros/g_idx/st HOST pointers, as in
 * lq_gptq_ref. Cholesky and inverse through cuSOLVER in f64. */
lq_status lq_cuda_hessian_accum(double *H, const float *x, int64_t n, int64_t cols, double alpha);
lq_status lq_cuda_gptq(const lq_gptq_params *p, const float *w, int64_t rows, int64_t cols, const double *H,
                       void *data, float *scales, uint8_t *zeros, int32_t *g_idx, lq_gptq_stats *st);

/* ==== activation statistics on the device (calibration) ====
 * x is a device pointer, results are host memory. lq_cuda_minmax: exact
 * min and max (a NaN anywhere makes max NaN). lq_cuda_histc: counts (n_bins,
 * overwritten) of x (or |x|) over [lo, hi] with lq_histc_ref's bin rule
 * (calib/lq_calib.h), exact integer counts. */
lq_status lq_cuda_minmax(const float *x, int64_t n, float *mn, float *mx);
lq_status lq_cuda_histc(const float *x, int64_t n, bool absval, double lo, double hi, int64_t n_bins,
                        int64_t *counts_host);

#ifdef __cplusplus
}
#endif
#endif /* LQ_KERNELS_H */
