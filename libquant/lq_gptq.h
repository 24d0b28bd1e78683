/* lq_gptq.h : block-by-block GPTQ over a calibration set (public;
 * algorithms module, on top of the model runner, the kernels' GPTQ solver
 * and the calib module).
 *
 * The engine runs the model one decoder block at a time:
 *   acts = embed(calibration windows)            (n_samples x seq_len x dim)
 *   for each block:
 *     for each stage (all four Linear inputs at once, or with
 *     true_sequential [q,k,v] -> [o] -> [gate,up] -> [down]):
 *       run every sample through the block (already-quantized Linears of
 *       this block dequantized, the rest original) up to the stage's capture
 *       point, accumulating H = (2/n_samples) * sum x x^T per distinct input
 *       (f32 products per chunk, summed in f64);
 *       quantize the stage's Linears with the GPTQ solver (lq_gptq_cpu, or
 *       lq_cuda_gptq on the CUDA backend);
 *     acts = the quantized block applied to acts      (feeds the next block)
 *     write the block's results to the work directory and commit progress.
 * Memory: one block's weights (f32 copies of the Linear being solved and the
 * dequantized block), its Hessians (f64), and the activations (2 x
 * n_samples x seq_len x dim f32) — in RAM, or in files in the work directory
 * when max_ram would be exceeded (streamed one sample at a time). The
 * model's mapped weights are released (madvise) after each block. Finished
 * blocks live in work_dir/block-NNNNN.safetensors and are mapped back for
 * the output: the whole quantized model is never held in RAM.
 *
 * Resume: with a work directory, each finished block is committed
 * atomically (block file, then the next block's input activations, then
 * state.json); a run restarted with the same model, calibration windows and
 * options skips the finished blocks and gives byte-identical results. A work
 * directory made by another run (fingerprint mismatch) is refused.
 * Determinism: results do not depend on the thread count. */
#ifndef LQ_GPTQ_H
#define LQ_GPTQ_H

#include "lq_calib.h"
#include "lq_kernels.h"
#include "lq_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* the type GPTQ should give Linear weight `name` (HF name, e.g.
 * "model.layers.3.mlp.down_proj.weight"): an INT type, or LQ_QT_NONE to
 * leave it to the caller (it then stays original in the block forward) */
typedef lq_qtype (*lq_gptq_type_fn)(const char *name, void *user);

typedef struct {
    lq_gptq_params  solver;          /* .qtype is ignored: type_of decides per Linear   */
    bool            true_sequential;
    lq_backend      backend;         /* CPU or CUDA (AUTO: CUDA when a device exists)  */
    int             n_threads;
    const char     *work_dir;        /* kept between runs (resume); NULL: a temporary
                                        directory beside `tmp_parent`, removed by
                                        lq_gptq_result_free                             */
    const char     *tmp_parent;      /* where the temporary work directory goes ("." if NULL) */
    uint64_t        max_ram;         /* activations above this go to files; 0 = no limit */
    const char     *options_text;    /* the caller's canonical description of everything
                                        else that shapes the result (hashed into the
                                        fingerprint), e.g. the per-tensor types          */
    bool            no_fsync;
    lq_progress_fn  progress;
    void           *progress_user;
} lq_gptq_run_params;

lq_gptq_run_params lq_gptq_run_default_params(void);

typedef struct {
    const char   *name;       /* HF weight name                                       */
    lq_qtensor    q;          /* lq layout (+ g_idx with act-order), mapped from the
                                 work directory; valid until lq_gptq_result_free       */
    int32_t       layer;      /* decoder block                                        */
    lq_gptq_stats stats;      /* GPTQ loss, damping used, dead columns, retries       */
    double        seconds;    /* solve time (0 for blocks finished by an earlier run) */
    const double *in_sum_x2;  /* cols: sum over calibration tokens of x_k^2 (imatrix) */
    int64_t       in_count;   /* tokens behind in_sum_x2                              */
} lq_gptq_layer;

typedef struct lq_gptq_result lq_gptq_result;

/*! lq_gptq_run() : quantize the INT-typed Linear weights of the decoder
 *  blocks of `model_path` (an unquantized checkpoint lq_model_open accepts)
 *  on `calib`. @return LQ_OK; LQ_ERR_INVALID_ARG for a stale work directory
 *  (the message says what differs) or bad options; LQ_ERR_UNSUPPORTED for a
 *  quantized source; LQ_ERR_NUMERIC when a Hessian stays singular; I/O
 *  errors naming the file; LQ_ERR_CANCELLED when progress asks to stop
 *  (finished blocks stay committed in the work directory). */
lq_status lq_gptq_run(const char *model_path, const lq_calib_set *calib, lq_gptq_type_fn type_of, void *type_user,
                      const lq_gptq_run_params *p, lq_gptq_result **out);
void lq_gptq_result_free(lq_gptq_result *r); /* accepts NULL; removes a temporary work directory */

int64_t              lq_gptq_result_count(const lq_gptq_result *r);
const lq_gptq_layer *lq_gptq_result_layer(const lq_gptq_result *r, int64_t i); /* block order, q,k,v,o,gate,up,down */
const lq_gptq_layer *lq_gptq_result_find(const lq_gptq_result *r, const char *name);
int64_t              lq_gptq_result_resumed_blocks(const lq_gptq_result *r); /* blocks an earlier run finished */
const char          *lq_gptq_result_fingerprint(const lq_gptq_result *r);    /* hex sha256 */

/*! lq_gptq_write_imatrix() : the importance statistics of the same pass as a
 *  safetensors file: for each quantized Linear weight `W`, tensor `W` (F32,
 *  cols: mean x^2 per input column — what lq-quant --act-stats reads),
 *  `W.sum_x2` (F64, cols) and `W.count` (I64, [1]); metadata records the
 *  calibration file's sha256 and the window count and length. */
lq_status lq_gptq_write_imatrix(const lq_gptq_result *r, const lq_calib_set *calib, const char *path, bool no_fsync);

#ifdef __cplusplus
}
#endif
#endif /* LQ_GPTQ_H */
