/* lq_mixed.h : mixed precision under a size budget (public; algorithms
 * module): the sensitivity table, the exact budget solver, plan files and
 * the sensitivity chart.
 *
 * A table has one row per group (what must share a type: q/k/v of a layer,
 * o_proj, gate/up, down_proj, optionally the embedding) and one column per
 * candidate type; each cell holds the group's storage bytes at that type
 * (UINT64_MAX: the output format cannot store it) and the KL divergence
 * measured with only that group quantized (lq_sensitivity.h).
 *
 * The additive model: the KLD of a plan is predicted as the sum of its
 * groups' measured KLDs. lq_mixed_solve() minimizes it under
 * fixed_bytes + sum bytes <= budget exactly (multiple-choice knapsack):
 * groups are added one by one, keeping the Pareto frontier of partial
 * plans (bytes, cost); a partial plan dominated by another (no fewer bytes
 * and no lower cost) can be replaced by it in any completion without
 * raising the cost or the bytes, so discarding it never loses the optimum;
 * partial plans that cannot fit even with the smallest candidates of the
 * remaining groups are dropped; the frontier after the last group holds an
 * optimal plan (its cheapest state within the budget). Ties: lower cost,
 * then fewer bytes, then the lexicographically smaller candidate indices.
 * Past LQ_MIXED_MAX_STATES states the solver switches to a Lagrangian
 * relaxation (exact = false) and reports the Lagrangian lower bound. */
#ifndef LQ_MIXED_H
#define LQ_MIXED_H

#include "lq_common.h"
#include "lq_qtypes.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LQ_MIXED_MAX_STATES 5000000

typedef struct {
    char    *name;      /* "model.layers.3.self_attn.qkv", "model.layers.3.mlp.down_proj", "model.embed_tokens" */
    char   **tensors;   /* member weight names (HF)                                        */
    int64_t  n_tensors;
    int64_t  numel;     /* weights in the group                                            */
    int32_t  layer;     /* block index, -1 for the embedding                               */
    char    *role;      /* "qkv", "o", "gateup", "down", "embed"                           */
} lq_mixed_group;

typedef struct {
    int64_t         n_groups, n_cands;
    lq_mixed_group *groups;
    lq_qtype       *cands;        /* n_cands candidate types                                */
    uint64_t       *bytes;        /* [g * n_cands + c]; UINT64_MAX = not storable            */
    double         *kld;          /* [g * n_cands + c]; NAN = not measured                   */
    double          base_kld;     /* the unquantized model against itself (0 up to rounding) */
    uint64_t        fixed_bytes;  /* bytes outside every group, counted in plan totals       */
    char           *model;        /* provenance (may be NULL)                                */
    char           *calib_sha256;
    int64_t         calib_tokens;
} lq_sens_table;

/* groups zeroed, bytes UINT64_MAX, kld NAN */
lq_status lq_sens_table_new(int64_t n_groups, int64_t n_cands, lq_sens_table **out);
void      lq_sens_table_free(lq_sens_table *t); /* accepts NULL */
/* JSON {"format": "libquant-sensitivity", "version": 1, "candidates": [...],
 * "groups": [{"name", "role", "layer", "numel", "tensors", "kld": {type: v},
 * "bytes": {type: v}}], ...}; doubles written to round-trip exactly. Atomic. */
lq_status lq_sens_table_write_json(const lq_sens_table *t, const char *path);
lq_status lq_sens_table_read_json(const char *path, lq_sens_table **out);

typedef struct {
    int64_t   n_groups;
    int32_t  *choice;        /* candidate index per group                          */
    lq_qtype *types;         /* the chosen type per group                          */
    uint64_t  bytes;         /* total, fixed_bytes included                        */
    double    predicted_kld; /* sum of the chosen cells' KLD                       */
    double    lower_bound;   /* proven lower bound of the additive optimum        */
    bool      exact;         /* optimal for the additive model                    */
} lq_mixed_plan;

/*! lq_mixed_solve() : minimize sum_g kld[g][c_g] subject to fixed_bytes +
 *  sum_g bytes[g][c_g] <= budget_bytes over the storable, measured cells.
 *  LQ_ERR_INVALID_ARG (the message gives the smallest achievable size) when
 *  no plan fits; LQ_ERR_FORMAT when a group has no usable candidate. */
lq_status lq_mixed_solve(const lq_sens_table *t, uint64_t budget_bytes, lq_mixed_plan *out);
/*! lq_mixed_solve_lagrangian() : the relaxation alone: bisection on lambda
 *  (each group takes argmin kld + lambda * bytes), the best feasible plan
 *  met, improved greedily; lower_bound = max over lambda of the dual. */
lq_status lq_mixed_solve_lagrangian(const lq_sens_table *t, uint64_t budget_bytes, lq_mixed_plan *out);
void      lq_mixed_plan_free(lq_mixed_plan *p); /* accepts a zeroed plan */

/* plan JSON: {"format": "libquant-plan", "version": 1, "budget"...,
 * "groups": [{"name", "type", "tensors", "bytes", "kld"}]}; extra_json (an
 * object's text, may be NULL) is embedded as "extra". Atomic. */
lq_status lq_mixed_plan_write_json(const lq_sens_table *t, const lq_mixed_plan *p, const char *path,
                                   const char *extra_json);

/* a plan file read back as per-tensor types (bytes and kld are optional, so
 * a hand-edited plan with only "type" changed loads) */
typedef struct {
    int64_t   n;
    char    **tensor;
    lq_qtype *type;
} lq_plan_file;

lq_status lq_plan_file_read(const char *path, lq_plan_file **out);
void      lq_plan_file_free(lq_plan_file *p); /* accepts NULL */

/*! lq_sens_chart_svg() : an SVG 1.1 chart of the table: groups along x
 *  (by layer), KLD on a log y axis, one colour and marker per candidate,
 *  legend and axis labels; the plan's choice ringed when given. Atomic. */
lq_status lq_sens_chart_svg(const lq_sens_table *t, const lq_mixed_plan *plan, const char *title, const char *path);

#ifdef __cplusplus
}
#endif
#endif /* LQ_MIXED_H */
