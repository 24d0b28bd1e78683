/* mixed_plan.c : the sensitivity table, the exact budget solver (Pareto
 * dynamic programming; a Lagrangian fallback) and the plan files
 * (lq_mixed.h). */
#include "lq_mixed.h"

#include "lq_internal.h"
#include "lq_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lq_status lq_sens_table_new(int64_t n_groups, int64_t n_cands, lq_sens_table **out) {
    *out = NULL;
    LQ_RETURN_IF(n_groups <= 0 || n_cands <= 0 || n_groups > (1 << 24) || n_cands > 256, LQ_ERR_INVALID_ARG,
                 "mixed: %lld groups x %lld candidates is not a table", (long long)n_groups, (long long)n_cands);
    lq_sens_table *t = lq_calloc(1, sizeof *t);
    LQ_RETURN_IF(!t, LQ_ERR_NOMEM, "mixed: out of memory");
    t->n_groups = n_groups;
    t->n_cands  = n_cands;
    t->groups   = lq_calloc((size_t)n_groups, sizeof *t->groups);
    t->cands    = lq_calloc((size_t)n_cands, sizeof *t->cands);
    t->bytes    = lq_calloc((size_t)(n_groups * n_cands), sizeof *t->bytes);
    t->kld      = lq_calloc((size_t)(n_groups * n_cands), sizeof *t->kld);
    if (!t->groups || !t->cands || !t->bytes || !t->kld) {
        lq_sens_table_free(t);
        LQ_RETURN_IF(1, LQ_ERR_NOMEM, "mixed: out of memory");
    }
    for (int64_t i = 0; i < n_groups * n_cands; i++) {
        t->bytes[i] = UINT64_MAX;
        t->kld[i]   = NAN;
    }
    *out = t;
    return LQ_OK;
}

void lq_sens_table_free(lq_sens_table *t) {
    if (!t) return;
    for (int64_t g = 0; t->groups && g < t->n_groups; g++) {
        lq_mixed_group *gr = &t->groups[g];
        for (int64_t j = 0; gr->tensors && j < gr->n_tensors; j++) lq_free(gr->tensors[j]);
        lq_free(gr->tensors);
        lq_free(gr->name);
        lq_free(gr->role);
    }
    lq_free(t->groups);
    lq_free(t->cands);
    lq_free(t->bytes);
    lq_free(t->kld);
    lq_free(t->model);
    lq_free(t->calib_sha256);
    lq_free(t);
}

/* ---- JSON helpers ---- */


static lq_status read_json_file(const char *path, lq_json_doc **doc) {
    char         *txt = NULL;
    size_t        len = 0;
    lq_json_error err;
    LQ_TRY(lq__read_file(path, 256u << 20, &txt, &len));
    const lq_status st = lq_json_parse(txt, len, NULL, doc, &err);
    lq_free(txt);
    LQ_RETURN_IF(st != LQ_OK, st, "%s: not JSON (byte %zu: %s)", path, err.offset, err.msg);
    return LQ_OK;
}

lq_status lq_sens_table_write_json(const lq_sens_table *t, const char *path) {
    lq_json_writer *w = lq_json_writer_init(1);
    lq_json_obj_begin(w);
    lq_json_key(w, "format");
    lq_json_str(w, "libquant-sensitivity");
    lq_json_key(w, "version");
    lq_json_i64(w, 1);
    lq_json_key(w, "model");
    lq_json_str(w, t->model ? t->model : "");
    lq_json_key(w, "calibration_sha256");
    lq_json_str(w, t->calib_sha256 ? t->calib_sha256 : "");
    lq_json_key(w, "calibration_tokens");
    lq_json_i64(w, t->calib_tokens);
    lq_json_key(w, "base_kld");
    lq_json_f64(w, t->base_kld);
    lq_json_key(w, "fixed_bytes");
    lq_json_u64(w, t->fixed_bytes);
    lq_json_key(w, "candidates");
    lq_json_arr_begin(w);
    for (int64_t c = 0; c < t->n_cands; c++) lq_json_str(w, lq_qtype_name(t->cands[c]));
    lq_json_arr_end(w);
    lq_json_key(w, "groups");
    lq_json_arr_begin(w);
    for (int64_t g = 0; g < t->n_groups; g++) {
        const lq_mixed_group *gr = &t->groups[g];
        lq_json_obj_begin(w);
        lq_json_key(w, "name");
        lq_json_str(w, gr->name ? gr->name : "");
        lq_json_key(w, "role");
        lq_json_str(w, gr->role ? gr->role : "");
        lq_json_key(w, "layer");
        lq_json_i64(w, gr->layer);
        lq_json_key(w, "numel");
        lq_json_i64(w, gr->numel);
        lq_json_key(w, "tensors");
        lq_json_arr_begin(w);
        for (int64_t j = 0; j < gr->n_tensors; j++) lq_json_str(w, gr->tensors[j]);
        lq_json_arr_end(w);
        lq_json_key(w, "kld");
        lq_json_obj_begin(w);
        for (int64_t c = 0; c < t->n_cands; c++) {
            lq_json_key(w, lq_qtype_name(t->cands[c]));
            lq_json_f64(w, t->kld[g * t->n_cands + c]); /* NAN -> null */
        }
        lq_json_obj_end(w);
        lq_json_key(w, "bytes");
        lq_json_obj_begin(w);
        for (int64_t c = 0; c < t->n_cands; c++) {
            lq_json_key(w, lq_qtype_name(t->cands[c]));
            if (t->bytes[g * t->n_cands + c] == UINT64_MAX)
                lq_json_null(w);
            else
                lq_json_u64(w, t->bytes[g * t->n_cands + c]);
        }
        lq_json_obj_end(w);
        lq_json_obj_end(w);
    }
    lq_json_arr_end(w);
    lq_json_obj_end(w);
    return lq__json_write_atomic(w, path);
}

static char *dup_str(const lq_json *v) {
    const char *s = lq_json_get_str(v);
    return lq_strdup(s ? s : "");
}

lq_status lq_sens_table_read_json(const char *path, lq_sens_table **out) {
    *out             = NULL;
    lq_json_doc   *doc = NULL;
    lq_sens_table *t   = NULL;
    LQ_TRY(read_json_file(path, &doc));
    lq_status      st   = LQ_OK;
    const lq_json *root = lq_json_root(doc);
    const char    *fmt  = lq_json_get_str(lq_json_get(root, "format"));
    LQ_GOTO_IF(!fmt || strcmp(fmt, "libquant-sensitivity") != 0, LQ_ERR_FORMAT,
               "%s: not a sensitivity table (\"format\" is not \"libquant-sensitivity\")", path);
    const lq_json *cj = lq_json_get(root, "candidates"), *gj = lq_json_get(root, "groups");
    LQ_GOTO_IF(!cj || cj->type != LQ_JSON_ARRAY || cj->n == 0 || !gj || gj->type != LQ_JSON_ARRAY || gj->n == 0,
               LQ_ERR_FORMAT, "%s: \"candidates\" and \"groups\" must be non-empty arrays", path);
    LQ_GOTO_TRY(lq_sens_table_new(gj->n, cj->n, &t));
    for (uint32_t c = 0; c < cj->n; c++) {
        const char *s = lq_json_get_str(&cj->items[c]);
        LQ_GOTO_IF(!s || lq_qtype_from_name(s, &t->cands[c]) != LQ_OK, LQ_ERR_FORMAT,
                   "%s: candidates[%u] is not a type name", path, c);
        for (uint32_t d = 0; d < c; d++)
            LQ_GOTO_IF(t->cands[d] == t->cands[c], LQ_ERR_FORMAT, "%s: candidate %s is listed twice", path, s);
    }
    t->model        = dup_str(lq_json_get(root, "model"));
    t->calib_sha256 = dup_str(lq_json_get(root, "calibration_sha256"));
    LQ_GOTO_IF(!t->model || !t->calib_sha256, LQ_ERR_NOMEM, "%s: out of memory", path);
    lq_json_get_i64(lq_json_get(root, "calibration_tokens"), &t->calib_tokens);
    lq_json_get_f64(lq_json_get(root, "base_kld"), &t->base_kld);
    lq_json_get_u64(lq_json_get(root, "fixed_bytes"), &t->fixed_bytes);
    for (uint32_t g = 0; g < gj->n; g++) {
        const lq_json  *e  = &gj->items[g];
        lq_mixed_group *gr = &t->groups[g];
        const char     *nm = lq_json_get_str(lq_json_get(e, "name"));
        LQ_GOTO_IF(!nm || !*nm, LQ_ERR_FORMAT, "%s: groups[%u] has no \"name\"", path, g);
        gr->name = lq_strdup(nm);
        gr->role = dup_str(lq_json_get(e, "role"));
        LQ_GOTO_IF(!gr->name || !gr->role, LQ_ERR_NOMEM, "%s: out of memory", path);
        int64_t v = 0;
        LQ_GOTO_IF(!lq_json_get_i64(lq_json_get(e, "layer"), &v) || v < -1 || v > INT32_MAX, LQ_ERR_FORMAT,
                   "%s: %s: \"layer\" is not an integer >= -1", path, nm);
        gr->layer = (int32_t)v;
        LQ_GOTO_IF(!lq_json_get_i64(lq_json_get(e, "numel"), &gr->numel) || gr->numel <= 0, LQ_ERR_FORMAT,
                   "%s: %s: \"numel\" is not a positive integer", path, nm);
        const lq_json *tj = lq_json_get(e, "tensors");
        LQ_GOTO_IF(!tj || tj->type != LQ_JSON_ARRAY || tj->n == 0, LQ_ERR_FORMAT,
                   "%s: %s: \"tensors\" is not a non-empty array", path, nm);
        gr->tensors = lq_calloc(tj->n, sizeof *gr->tensors);
        LQ_GOTO_IF(!gr->tensors, LQ_ERR_NOMEM, "%s: out of memory", path);
        for (uint32_t j = 0; j < tj->n; j++) {
            const char *s = lq_json_get_str(&tj->items[j]);
            LQ_GOTO_IF(!s || !*s, LQ_ERR_FORMAT, "%s: %s: tensors[%u] is not a name", path, nm, j);
            gr->tensors[j] = lq_strdup(s);
            LQ_GOTO_IF(!gr->tensors[j], LQ_ERR_NOMEM, "%s: out of memory", path);
            gr->n_tensors++;
        }
        const lq_json *kj = lq_json_get(e, "kld"), *bj = lq_json_get(e, "bytes");
        LQ_GOTO_IF(!kj || kj->type != LQ_JSON_OBJECT, LQ_ERR_FORMAT, "%s: %s: \"kld\" is not an object", path, nm);
        for (int64_t c = 0; c < t->n_cands; c++) {
            const lq_json *kv = lq_json_get(kj, lq_qtype_name(t->cands[c]));
            double         k  = NAN;
            if (kv && kv->type != LQ_JSON_NULL)
                LQ_GOTO_IF(!lq_json_get_f64(kv, &k) || !isfinite(k), LQ_ERR_FORMAT, "%s: %s: kld of %s is not a number",
                           path, nm, lq_qtype_name(t->cands[c]));
            t->kld[g * t->n_cands + c] = k;
            const lq_json *bv = bj ? lq_json_get(bj, lq_qtype_name(t->cands[c])) : NULL;
            uint64_t       b  = UINT64_MAX;
            if (bv && bv->type != LQ_JSON_NULL)
                LQ_GOTO_IF(!lq_json_get_u64(bv, &b) || b == UINT64_MAX, LQ_ERR_FORMAT,
                           "%s: %s: bytes of %s is not a size", path, nm, lq_qtype_name(t->cands[c]));
            t->bytes[g * t->n_cands + c] = b;
        }
    }
    *out = t;
    t    = NULL;
done:
    lq_sens_table_free(t);
    lq_json_free(doc);
    return st;
}

/* ---- solvers ---- */

void lq_mixed_plan_free(lq_mixed_plan *p) {
    if (!p) return;
    lq_free(p->choice);
    lq_free(p->types);
    memset(p, 0, sizeof *p);
}

static bool usable(const lq_sens_table *t, int64_t g, int64_t c) {
    return t->bytes[g * t->n_cands + c] != UINT64_MAX && isfinite(t->kld[g * t->n_cands + c]);
}

static lq_status plan_alloc(const lq_sens_table *t, lq_mixed_plan *p) {
    memset(p, 0, sizeof *p);
    p->n_groups = t->n_groups;
    p->choice   = lq_calloc((size_t)t->n_groups, sizeof *p->choice);
    p->types    = lq_calloc((size_t)t->n_groups, sizeof *p->types);
    if (!p->choice || !p->types) {
        lq_mixed_plan_free(p);
        LQ_RETURN_IF(1, LQ_ERR_NOMEM, "mixed: out of memory");
    }
    return LQ_OK;
}

static void plan_finish(const lq_sens_table *t, lq_mixed_plan *p) {
    p->bytes         = t->fixed_bytes;
    p->predicted_kld = 0;
    for (int64_t g = 0; g < t->n_groups; g++) {
        p->types[g] = t->cands[p->choice[g]];
        p->bytes += t->bytes[g * t->n_cands + p->choice[g]];
        p->predicted_kld += t->kld[g * t->n_cands + p->choice[g]];
    }
}

/* smallest bytes per group, and the feasibility check shared by both solvers */
static lq_status check_table(const lq_sens_table *t, uint64_t budget, uint64_t *min_rest) {
    min_rest[t->n_groups] = 0;
    for (int64_t g = t->n_groups - 1; g >= 0; g--) {
        uint64_t m = UINT64_MAX;
        for (int64_t c = 0; c < t->n_cands; c++)
            if (usable(t, g, c) && t->bytes[g * t->n_cands + c] < m) m = t->bytes[g * t->n_cands + c];
        LQ_RETURN_IF(m == UINT64_MAX, LQ_ERR_FORMAT, "mixed: group %s has no candidate both storable and measured",
                     t->groups[g].name ? t->groups[g].name : "?");
        LQ_RETURN_IF(min_rest[g + 1] > UINT64_MAX / 2 - m, LQ_ERR_INVALID_ARG, "mixed: sizes overflow");
        min_rest[g] = min_rest[g + 1] + m;
    }
    LQ_RETURN_IF(t->fixed_bytes > UINT64_MAX / 2 || t->fixed_bytes + min_rest[0] > budget, LQ_ERR_INVALID_ARG,
                 "mixed: no plan fits in %llu bytes: the smallest achievable size is %llu bytes (%llu outside the "
                 "groups + %llu with every group at its smallest candidate)",
                 (unsigned long long)budget, (unsigned long long)(t->fixed_bytes + min_rest[0]),
                 (unsigned long long)t->fixed_bytes, (unsigned long long)min_rest[0]);
    return LQ_OK;
}

typedef struct {
    uint64_t bytes;
    double   cost;
    int64_t  parent; /* index into the previous stage */
    int32_t  c;
} state;

static int state_cmp(const void *a, const void *b) {
    const state *x = a, *y = b;
    if (x->bytes != y->bytes) return x->bytes < y->bytes ? -1 : 1;
    if (x->cost != y->cost) return x->cost < y->cost ? -1 : 1;
    if (x->parent != y->parent) return x->parent < y->parent ? -1 : 1;
    return x->c < y->c ? -1 : x->c > y->c;
}

lq_status lq_mixed_solve_lagrangian(const lq_sens_table *t, uint64_t budget, lq_mixed_plan *out) {
    const int64_t G = t->n_groups, C = t->n_cands;
    uint64_t     *min_rest = lq_calloc((size_t)(G + 1), sizeof *min_rest);
    int32_t      *cur      = lq_calloc((size_t)G, sizeof *cur);
    lq_status     st       = LQ_OK;
    LQ_GOTO_IF(!min_rest || !cur, LQ_ERR_NOMEM, "mixed: out of memory");
    LQ_GOTO_TRY(check_table(t, budget, min_rest));
    LQ_GOTO_TRY(plan_alloc(t, out));
    const double cap       = (double)(budget - t->fixed_bytes);
    double       best_cost = INFINITY, bound = -INFINITY;
    /* one relaxed solve: argmin kld + lambda * bytes per group; returns the dual value */
#define RELAX(lambda, dual, bytes_sum)                                                      \
    do {                                                                                    \
        dual      = -(lambda) * cap;                                                        \
        bytes_sum = 0;                                                                      \
        for (int64_t g = 0; g < G; g++) {                                                   \
            double  bv = INFINITY;                                                          \
            int32_t bc = -1;                                                                \
            for (int64_t c = 0; c < C; c++) {                                               \
                if (!usable(t, g, c)) continue;                                             \
                const double v = t->kld[g * C + c] + (lambda) * (double)t->bytes[g * C + c]; \
                if (v < bv || (v == bv && t->bytes[g * C + c] < t->bytes[g * C + bc])) {    \
                    bv = v;                                                                 \
                    bc = (int32_t)c;                                                        \
                }                                                                           \
            }                                                                               \
            cur[g] = bc;                                                                    \
            dual += bv;                                                                     \
            bytes_sum += (double)t->bytes[g * C + bc];                                      \
        }                                                                                   \
    } while (0)
    double lo = 0, hi = 1e-12, dual = 0, bsum = 0;
    /* the cost of a feasible relaxed plan is a candidate solution */
#define TAKE_IF_FEASIBLE()                                                                   \
    do {                                                                                     \
        if (bsum <= cap) {                                                                   \
            double cost = 0;                                                                 \
            for (int64_t g = 0; g < G; g++) cost += t->kld[g * C + cur[g]];                  \
            if (cost < best_cost) {                                                          \
                best_cost = cost;                                                            \
                memcpy(out->choice, cur, (size_t)G * sizeof *cur);                           \
            }                                                                                \
        }                                                                                    \
        if (dual > bound) bound = dual;                                                      \
    } while (0)
    RELAX(0.0, dual, bsum);
    TAKE_IF_FEASIBLE();
    for (int it = 0; it < 400 && bsum > cap; it++) {
        hi *= 2;
        RELAX(hi, dual, bsum);
        TAKE_IF_FEASIBLE();
    }
    for (int it = 0; it < 200; it++) {
        const double mid = 0.5 * (lo + hi);
        RELAX(mid, dual, bsum);
        TAKE_IF_FEASIBLE();
        if (bsum > cap)
            lo = mid;
        else
            hi = mid;
    }
#undef RELAX
#undef TAKE_IF_FEASIBLE
    LQ_GOTO_IF(!isfinite(best_cost), LQ_ERR_INVALID_ARG, "mixed: the relaxation found no feasible plan");
    /* greedy: the single change with the largest cost decrease that still fits, until none */
    for (;;) {
        uint64_t used = 0;
        for (int64_t g = 0; g < G; g++) used += t->bytes[g * C + out->choice[g]];
        double  gain = 0;
        int64_t bg = -1, bc = -1;
        for (int64_t g = 0; g < G; g++)
            for (int64_t c = 0; c < C; c++) {
                if (!usable(t, g, c) || c == out->choice[g]) continue;
                const uint64_t nb = used - t->bytes[g * C + out->choice[g]] + t->bytes[g * C + c];
                const double   d  = t->kld[g * C + out->choice[g]] - t->kld[g * C + c];
                if ((double)nb <= cap && d > gain) {
                    gain = d;
                    bg   = g;
                    bc   = c;
                }
            }
        if (bg < 0) break;
        out->choice[bg] = (int32_t)bc;
    }
    plan_finish(t, out);
    out->lower_bound = LQ_MIN(bound, out->predicted_kld);
    out->exact       = out->predicted_kld <= out->lower_bound;
done:
    lq_free(min_rest);
    lq_free(cur);
    if (st != LQ_OK) lq_mixed_plan_free(out);
    return st;
}

lq_status lq_mixed_solve(const lq_sens_table *t, uint64_t budget, lq_mixed_plan *out) {
    memset(out, 0, sizeof *out);
    const int64_t G = t->n_groups, C = t->n_cands;
    uint64_t     *min_rest = lq_calloc((size_t)(G + 1), sizeof *min_rest);
    state       **stage    = lq_calloc((size_t)(G + 1), sizeof *stage);
    int64_t      *n_stage  = lq_calloc((size_t)(G + 1), sizeof *n_stage);
    state        *tmp      = NULL;
    lq_status     st       = LQ_OK;
    int64_t       total    = 0;
    LQ_GOTO_IF(!min_rest || !stage || !n_stage, LQ_ERR_NOMEM, "mixed: out of memory");
    LQ_GOTO_TRY(check_table(t, budget, min_rest));
    const uint64_t cap = budget - t->fixed_bytes;
    stage[0]           = lq_calloc(1, sizeof(state));
    LQ_GOTO_IF(!stage[0], LQ_ERR_NOMEM, "mixed: out of memory");
    stage[0][0] = (state){0, 0.0, -1, -1};
    n_stage[0]  = 1;
    for (int64_t g = 0; g < G; g++) {
        const int64_t np = n_stage[g];
        if (np > LQ_MIXED_MAX_STATES / C || total > LQ_MIXED_MAX_STATES) {
            LQ_LOG_WARN("mixed: the exact frontier outgrew %d states at group %lld; solving the Lagrangian "
                        "relaxation instead (the report gives the optimality gap)",
                        LQ_MIXED_MAX_STATES, (long long)g);
            for (int64_t k = 0; k <= G; k++) lq_free(stage[k]);
            memset(stage, 0, (size_t)(G + 1) * sizeof *stage);
            st = lq_mixed_solve_lagrangian(t, budget, out);
            goto done;
        }
        tmp = lq_malloc((size_t)(np * C) * sizeof *tmp);
        LQ_GOTO_IF(!tmp, LQ_ERR_NOMEM, "mixed: out of memory (%lld states)", (long long)(np * C));
        int64_t n = 0;
        for (int64_t s = 0; s < np; s++)
            for (int64_t c = 0; c < C; c++) {
                if (!usable(t, g, c)) continue;
                const uint64_t nb = stage[g][s].bytes + t->bytes[g * C + c];
                if (nb + min_rest[g + 1] > cap) continue;
                tmp[n++] = (state){nb, stage[g][s].cost + t->kld[g * C + c], s, (int32_t)c};
            }
        qsort(tmp, (size_t)n, sizeof *tmp, state_cmp);
        /* Pareto filter: bytes ascending, keep only strictly lower cost */
        int64_t m    = 0;
        double  best = INFINITY;
        for (int64_t i = 0; i < n; i++)
            if (tmp[i].cost < best) {
                best     = tmp[i].cost;
                tmp[m++] = tmp[i];
            }
        stage[g + 1]   = lq_malloc((size_t)(m ? m : 1) * sizeof(state));
        LQ_GOTO_IF(!stage[g + 1], LQ_ERR_NOMEM, "mixed: out of memory");
        memcpy(stage[g + 1], tmp, (size_t)m * sizeof(state));
        n_stage[g + 1] = m;
        total += m;
        lq_free(tmp);
        tmp = NULL;
        LQ_ASSERT(m > 0); /* min_rest guarantees a feasible continuation */
    }
    LQ_GOTO_TRY(plan_alloc(t, out));
    /* the frontier's costs decrease with bytes: the last state is the optimum */
    int64_t s = n_stage[G] - 1;
    for (int64_t g = G; g > 0; g--) {
        out->choice[g - 1] = stage[g][s].c;
        s                  = stage[g][s].parent;
    }
    plan_finish(t, out);
    out->lower_bound = out->predicted_kld;
    out->exact       = true;
    LQ_LOG_DEBUG("mixed: exact solve, %lld frontier states", (long long)total);
done:
    lq_free(tmp);
    for (int64_t k = 0; stage && k <= G; k++) lq_free(stage[k]);
    lq_free(stage);
    lq_free(n_stage);
    lq_free(min_rest);
    return st;
}

/* ---- plan files ---- */

lq_status lq_mixed_plan_write_json(const lq_sens_table *t, const lq_mixed_plan *p, const char *path,
                                   const char *extra_json) {
    lq_json_doc *extra = NULL;
    if (extra_json) {
        lq_json_error err;
        LQ_RETURN_IF(lq_json_parse(extra_json, strlen(extra_json), NULL, &extra, &err) != LQ_OK, LQ_ERR_INVALID_ARG,
                     "%s: the extra plan fields are not JSON (%s)", path, err.msg);
    }
    lq_json_writer *w = lq_json_writer_init(1);
    lq_json_obj_begin(w);
    lq_json_key(w, "format");
    lq_json_str(w, "libquant-plan");
    lq_json_key(w, "version");
    lq_json_i64(w, 1);
    lq_json_key(w, "model");
    lq_json_str(w, t->model ? t->model : "");
    lq_json_key(w, "bytes");
    lq_json_u64(w, p->bytes);
    lq_json_key(w, "fixed_bytes");
    lq_json_u64(w, t->fixed_bytes);
    lq_json_key(w, "predicted_kld");
    lq_json_f64(w, p->predicted_kld);
    lq_json_key(w, "lower_bound");
    lq_json_f64(w, p->lower_bound);
    lq_json_key(w, "exact");
    lq_json_bool(w, p->exact);
    if (extra) {
        lq_json_key(w, "extra");
        lq_json_value(w, lq_json_root(extra));
    }
    lq_json_key(w, "groups");
    lq_json_arr_begin(w);
    for (int64_t g = 0; g < t->n_groups; g++) {
        const lq_mixed_group *gr = &t->groups[g];
        lq_json_obj_begin(w);
        lq_json_key(w, "name");
        lq_json_str(w, gr->name ? gr->name : "");
        lq_json_key(w, "type");
        lq_json_str(w, lq_qtype_name(p->types[g]));
        lq_json_key(w, "tensors");
        lq_json_arr_begin(w);
        for (int64_t j = 0; j < gr->n_tensors; j++) lq_json_str(w, gr->tensors[j]);
        lq_json_arr_end(w);
        lq_json_key(w, "bytes");
        lq_json_u64(w, t->bytes[g * t->n_cands + p->choice[g]]);
        lq_json_key(w, "kld");
        lq_json_f64(w, t->kld[g * t->n_cands + p->choice[g]]);
        lq_json_obj_end(w);
    }
    lq_json_arr_end(w);
    lq_json_obj_end(w);
    lq_json_free(extra);
    return lq__json_write_atomic(w, path);
}

void lq_plan_file_free(lq_plan_file *p) {
    if (!p) return;
    for (int64_t i = 0; i < p->n; i++) lq_free(p->tensor[i]);
    lq_free(p->tensor);
    lq_free(p->type);
    lq_free(p);
}

lq_status lq_plan_file_read(const char *path, lq_plan_file **out) {
    *out            = NULL;
    lq_json_doc  *doc = NULL;
    lq_plan_file *p   = NULL;
    LQ_TRY(read_json_file(path, &doc));
    lq_status      st   = LQ_OK;
    const lq_json *root = lq_json_root(doc);
    const char    *fmt  = lq_json_get_str(lq_json_get(root, "format"));
    LQ_GOTO_IF(!fmt || strcmp(fmt, "libquant-plan") != 0, LQ_ERR_FORMAT,
               "%s: not a plan (\"format\" is not \"libquant-plan\"; lq-quant --plan-out writes one)", path);
    const lq_json *gj = lq_json_get(root, "groups");
    LQ_GOTO_IF(!gj || gj->type != LQ_JSON_ARRAY || gj->n == 0, LQ_ERR_FORMAT, "%s: \"groups\" is not a non-empty array",
               path);
    int64_t cap = 0;
    for (uint32_t g = 0; g < gj->n; g++) {
        const lq_json *tj = lq_json_get(&gj->items[g], "tensors");
        LQ_GOTO_IF(!tj || tj->type != LQ_JSON_ARRAY || tj->n == 0, LQ_ERR_FORMAT,
                   "%s: groups[%u]: \"tensors\" is not a non-empty array", path, g);
        cap += tj->n;
    }
    p = lq_calloc(1, sizeof *p);
    LQ_GOTO_IF(!p, LQ_ERR_NOMEM, "%s: out of memory", path);
    p->tensor = lq_calloc((size_t)cap, sizeof *p->tensor);
    p->type   = lq_calloc((size_t)cap, sizeof *p->type);
    LQ_GOTO_IF(!p->tensor || !p->type, LQ_ERR_NOMEM, "%s: out of memory", path);
    for (uint32_t g = 0; g < gj->n; g++) {
        const lq_json *e  = &gj->items[g];
        const char    *ts = lq_json_get_str(lq_json_get(e, "type"));
        lq_qtype       ty = LQ_QT_NONE;
        LQ_GOTO_IF(!ts || lq_qtype_from_name(ts, &ty) != LQ_OK || ty == LQ_QT_NONE, LQ_ERR_FORMAT,
                   "%s: groups[%u]: \"type\" %s%s%s is not a type name", path, g, ts ? "'" : "", ts ? ts : "missing",
                   ts ? "'" : "");
        const lq_json *tj = lq_json_get(e, "tensors");
        for (uint32_t j = 0; j < tj->n; j++) {
            const char *s = lq_json_get_str(&tj->items[j]);
            LQ_GOTO_IF(!s || !*s, LQ_ERR_FORMAT, "%s: groups[%u].tensors[%u] is not a name", path, g, j);
            for (int64_t k = 0; k < p->n; k++)
                LQ_GOTO_IF(!strcmp(p->tensor[k], s), LQ_ERR_FORMAT, "%s: tensor %s is planned twice", path, s);
            p->tensor[p->n] = lq_strdup(s);
            LQ_GOTO_IF(!p->tensor[p->n], LQ_ERR_NOMEM, "%s: out of memory", path);
            p->type[p->n++] = ty;
        }
    }
    *out = p;
    p    = NULL;
done:
    lq_plan_file_free(p);
    lq_json_free(doc);
    return st;
}
