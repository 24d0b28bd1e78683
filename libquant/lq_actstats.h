/* lq_actstats.h : activation statistics of a model's Linear inputs over a
 * calibration set, and the per-tensor ranges (amax, int8 scale) calibrated
 * from them (public; algorithms module, on top of calib/ and the runner).
 *
 * The runner's forward pass is hooked at the four Linear inputs of every
 * block (rmsnorm(x) -> q/k/v, attention output -> o, rmsnorm -> gate/up,
 * silu(gate)*up -> down): each capture point has one lq_hist (calib/
 * lq_calib.h: running min/max, NVIDIA's |x| histogram of 2048 bins, the
 * ONNX Runtime signed histogram on request). Every window of the
 * calibration set is one fresh sequence, one forward pass, one batch per
 * point and window, windows in order, so the statistics do not depend on the
 * thread count. CPU: the histogram is counted on the host; CUDA: min/max and
 * the counts are computed on the device (lq_cuda_minmax, lq_cuda_histc) and
 * only the counts come back.
 *
 * Ranges table (lq_act_ranges_write_json, read back by lq_act_ranges_read):
 *   {"format": "libquant-activation-ranges", "version": 1,
 *    "model": ..., "calibration": {...}, "method": "entropy", "num_bits": 8,
 *    "tensors": [{"name": "model.layers.0.self_attn.q_proj", "input_of": [...
 *      the modules sharing this input ...], "amax": a, "scale": a/127,
 *      "absmax", "min", "max", "count", "bin", "amax_by_method": {...}}]}
 * One entry per Linear module (q/k/v repeat their shared point's values). */
#ifndef LQ_ACTSTATS_H
#define LQ_ACTSTATS_H

#include "lq_calib.h"
#include "lq_common.h"
#include "lq_model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int64_t        n_bins;      /* 0 = 2048                                            */
    bool           signed_hist; /* also the signed histogram ONNX Runtime's entropy needs */
    int            n_threads;
    lq_progress_fn progress;
    void          *progress_user;
} lq_actstats_params;

lq_actstats_params lq_actstats_default_params(void);

typedef struct lq_actstats lq_actstats;

/*! lq_actstats_collect() : run every window of `c` through `m` (fresh
 *  sequence each) and histogram the Linear inputs. The model's max_seq must
 *  hold c->seq_len. LQ_ERR_FORMAT on a non-finite activation (named). */
lq_status lq_actstats_collect(lq_model *m, const lq_calib_set *c, const lq_actstats_params *p, lq_actstats **out);
void      lq_actstats_free(lq_actstats *s); /* accepts NULL */

int64_t        lq_actstats_count(const lq_actstats *s); /* capture points: n_layers * 4 */
const lq_hist *lq_actstats_hist(const lq_actstats *s, int64_t i);
/* the modules fed by point i ("model.layers.L.self_attn.q_proj", ...) */
int64_t     lq_actstats_n_modules(const lq_actstats *s, int64_t i);
const char *lq_actstats_module(const lq_actstats *s, int64_t i, int64_t j);
double      lq_actstats_seconds(const lq_actstats *s); /* wall time of the collection */
int64_t     lq_actstats_tokens(const lq_actstats *s);

/*! lq_actstats_amax() : the calibrated amax of every point (count entries)
 *  with p (lq_hist_amax); bins gets the chosen bin (may be NULL). */
lq_status lq_actstats_amax(const lq_actstats *s, const lq_amax_params *p, double *amax, int64_t *bins);

/*! lq_act_ranges_write_json() : the ranges table (above) for `method`, with
 *  every method's amax listed beside it when all_methods; provenance from c
 *  and model_name. Atomic. */
lq_status lq_act_ranges_write_json(const lq_actstats *s, const lq_amax_params *method, bool all_methods,
                                   const lq_calib_set *c, const char *calib_name, const char *model_name,
                                   const char *path);
/*! lq_act_hist_dump_json() : every point's histogram as a JSON array of
 *  {"name": ..., <lq_hist_write_json fields>} (the input of
 *  tests/interop/entropy_oracle.py). Atomic. */
lq_status lq_act_hist_dump_json(const lq_actstats *s, const char *path);
/*! lq_act_trt_cache_write() : a TensorRT calibration cache (REFERENCE.md
 *  5.4) with one line per Linear module input ("<module>.input"). */
lq_status lq_act_trt_cache_write(const lq_actstats *s, const double *amax, int trt_version, const char *path);

/* a ranges table read back: module name -> amax */
typedef struct {
    int64_t n;
    char  **name;
    double *amax;
    char    method[32];
    int     num_bits;
} lq_act_ranges;

/*! lq_act_ranges_read() : hostile input: LQ_ERR_FORMAT naming what is wrong
 *  (not the format, a missing or non-positive amax, duplicate names). */
lq_status lq_act_ranges_read(const char *path, lq_act_ranges **out);
void      lq_act_ranges_free(lq_act_ranges *r);                             /* accepts NULL */
double    lq_act_ranges_find(const lq_act_ranges *r, const char *module); /* 0 when absent */

/* ---- per input column sums of squares over the calibration tokens ----
 * (the activation norms Wanda multiplies |W| by; an imatrix's in_sum2) */
typedef struct lq_colnorms lq_colnorms;
/*! lq_colnorms_collect() : every window through `m` (fresh sequence each),
 *  sum_t x_tj^2 per input column of every Linear input, f64, token order. */
lq_status lq_colnorms_collect(lq_model *m, const lq_calib_set *c, lq_colnorms **out);
void      lq_colnorms_free(lq_colnorms *s); /* accepts NULL */
/* the sums for module "model.layers.L.mlp.down_proj" (cols of them), or NULL */
const double *lq_colnorms_find(const lq_colnorms *s, const char *module, int64_t *cols);

#ifdef __cplusplus
}
#endif
#endif /* LQ_ACTSTATS_H */
