/* lq_prune.h : magnitude pruning of checkpoint tensors, streamed (public;
 * algorithms module).
 *
 * Decisions are made on the exact f32 value of each stored element (F32,
 * F16 or BF16 tensors read in place) by its magnitude bits |x| (the f32 bit
 * pattern without the sign, monotonic in |x| for finite values):
 *   unstructured: the k elements of smallest magnitude become +0, ties at
 *     the threshold broken by position (earlier first; for a global selection
 *     across tensors, tensor order then position). The threshold is found by
 *     a two-pass radix select (65536 bins of the high 16 bits, then the low 16
 *     bits of the chosen bin): exact, O(n), no copy of the weights.
 *   N:M: in every group of M consecutive elements of a row (along the input
 *     dimension; cols % M == 0), the M - N of smallest magnitude become +0
 *     (ties: the later position is pruned).
 *   Wanda (Sun et al. 2023): in every row, the k = round(s * cols) elements of
 *     smallest |W_ij| * ||X_j||_2 become +0, ||X_j||_2 the norm of input
 *     column j over the calibration tokens (lq_colnorms_collect); f64 scores,
 *     ties: the earlier position is pruned.
 * lq_prune_fill() then produces any byte range of the pruned tensor in its own
 * dtype from the mapped source, so a writer streams it (bounded memory); the
 * kept elements are copied bit for bit. Non-finite weights are refused. */
#ifndef LQ_PRUNE_H
#define LQ_PRUNE_H

#include "lq_common.h"
#include "lq_formats.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { LQ_PRUNE_NONE = 0, LQ_PRUNE_MAGNITUDE, LQ_PRUNE_NM, LQ_PRUNE_WANDA } lq_prune_kind;

/* what happens to one tensor (filled by lq_prune_select / lq_prune_nm_rule) */
typedef struct {
    lq_prune_kind         kind;
    const lq_tensor_info *src;     /* F32, F16 or BF16, contiguous                              */
    uint32_t              thr;     /* MAGNITUDE: elements with |x| bits < thr are pruned, ...    */
    int64_t               tie_end; /* ... and those == thr at positions < tie_end (0: none)       */
    int                   n, m;    /* NM: keep n of every m                                       */
    const double         *colsq;   /* WANDA: cols sums of x^2 of the input columns (borrowed)     */
    int64_t               row_k;   /* WANDA: elements pruned per row                              */
    int64_t               pruned;  /* elements that become zero (computed)                        */
} lq_prune_rule;

/*! lq_prune_select() : one magnitude threshold over the `nt` tensors of
 *  `rules` (src set, kind MAGNITUDE) pruning the `k` smallest elements of all
 *  of them together (nt = 1: per tensor). Fills thr, tie_end and pruned.
 *  LQ_ERR_INVALID_ARG (k out of range, wrong dtype), LQ_ERR_FORMAT (a
 *  non-finite weight, named). */
lq_status lq_prune_select(lq_prune_rule *rules, int64_t nt, int64_t k, int n_threads);
/*! lq_prune_nm_rule() : an N:M rule for r->src (rows x cols, cols % m == 0) */
lq_status lq_prune_nm_rule(lq_prune_rule *r, int n, int m);
/*! lq_prune_wanda_rule() : a Wanda rule for r->src (rows x cols) with the
 *  input columns' sums of squares colsq (cols of them) */
lq_status lq_prune_wanda_rule(lq_prune_rule *r, const double *colsq, double sparsity);
/*! lq_prune_fill() : bytes [offset, offset + nbytes) of the pruned tensor (a
 *  safetensors fill callback: user = the lq_prune_rule). */
lq_status lq_prune_fill(void *dst, uint64_t offset, uint64_t nbytes, void *user);
/*! lq_prune_ref() : the oracle: sort-based pruning of an f32 copy in place
 *  (magnitude: the k smallest by (|x|, position); N:M as above). */
lq_status lq_prune_magnitude_ref(float *w, int64_t n, int64_t k);
lq_status lq_prune_nm_ref(float *w, int64_t rows, int64_t cols, int n, int m);
lq_status lq_prune_wanda_ref(float *w, int64_t rows, int64_t cols, const double *colsq, int64_t k);

#ifdef __cplusplus
}
#endif
#endif /* LQ_PRUNE_H */
