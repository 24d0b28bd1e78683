/* actstats.c : activation histograms of every Linear input over a
 * calibration set, the calibrated ranges table and the TensorRT cache
 * (lq_actstats.h). */
#include "lq_actstats.h"

#include "block_internal.h"
#include "lq_internal.h"
#include "lq_json.h"
#include "lq_kernels.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const POINT_MODULES[LQ__CAP_COUNT][3] = {
    {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"},
    {"self_attn.o_proj", NULL, NULL},
    {"mlp.gate_proj", "mlp.up_proj", NULL},
    {"mlp.down_proj", NULL, NULL},
};

struct lq_actstats {
    int64_t   n_points, n_layers;
    lq_hist **h;
    char   ***modules; /* [point][j], NULL-terminated lists */
    int64_t  *n_mod;
    double    seconds;
    int64_t   tokens;
    int       n_threads;
    lq_status err;
    /* device collection scratch */
    int64_t *abs_counts, *signed_counts;
    int64_t  counts_cap;
};

lq_actstats_params lq_actstats_default_params(void) {
    lq_actstats_params p;
    memset(&p, 0, sizeof p);
    return p;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void lq_actstats_free(lq_actstats *s) {
    if (!s) return;
    for (int64_t i = 0; i < s->n_points; i++) {
        if (s->h) lq_hist_free(s->h[i]);
        if (s->modules && s->modules[i]) {
            for (int64_t j = 0; j < s->n_mod[i]; j++) lq_free(s->modules[i][j]);
            lq_free(s->modules[i]);
        }
    }
    lq_free(s->h);
    lq_free(s->modules);
    lq_free(s->n_mod);
    lq_free(s->abs_counts);
    lq_free(s->signed_counts);
    lq_free(s);
}

static char *module_name(int64_t layer, const char *sfx) {
    char buf[256];
    snprintf(buf, sizeof buf, "model.layers.%lld.%s", (long long)layer, sfx);
    return lq_strdup(buf);
}

/* grow the host buffers the device counts are copied into */
static lq_status counts_reserve(lq_actstats *s, int64_t n) {
    if (n <= s->counts_cap) return LQ_OK;
    lq_free(s->abs_counts);
    lq_free(s->signed_counts);
    s->counts_cap    = 0;
    s->abs_counts    = lq_malloc((size_t)n * sizeof *s->abs_counts);
    s->signed_counts = lq_malloc((size_t)n * sizeof *s->signed_counts);
    LQ_RETURN_IF(!s->abs_counts || !s->signed_counts, LQ_ERR_NOMEM,
                 "calibration: out of memory for a histogram of %lld bins", (long long)n);
    s->counts_cap = n;
    return LQ_OK;
}

static lq_status on_capture(void *user, int64_t layer, lq__cap_point p, const float *x, int64_t n, int64_t cols,
                            bool on_device) {
    lq_actstats  *s  = user;
    const int64_t pi = layer * LQ__CAP_COUNT + (int64_t)p;
    LQ_ASSERT(pi >= 0 && pi < s->n_points);
    lq_hist      *h  = s->h[pi];
    lq_status     st = LQ_OK;
    if (!on_device) {
        st = lq_hist_add(h, x, n * cols, s->n_threads);
    } else {
        float mn = 0, mx = 0;
        LQ_TRY(lq_cuda_minmax(x, n * cols, &mn, &mx));
        lq_hist_batch_plan plan;
        st = lq_hist_plan(h, mn, mx, &plan);
        if (st == LQ_OK) st = counts_reserve(s, LQ_MAX(plan.abs_r.n_bins, plan.has_signed ? plan.signed_r.n_bins : 0));
        if (st == LQ_OK)
            st = lq_cuda_histc(x, n * cols, true, plan.abs_r.lo, plan.abs_r.hi, plan.abs_r.n_bins, s->abs_counts);
        if (st == LQ_OK && plan.has_signed)
            st = lq_cuda_histc(x, n * cols, false, plan.signed_r.lo, plan.signed_r.hi, plan.signed_r.n_bins,
                               s->signed_counts);
        if (st == LQ_OK)
            st = lq_hist_commit(h, &plan, mn, mx, n * cols, s->abs_counts, plan.has_signed ? s->signed_counts : NULL);
    }
    LQ_RETURN_IF(st != LQ_OK, st, "calibration: the input of %s (layer %lld) cannot be histogrammed",
                 s->modules[pi][0], (long long)layer);
    return LQ_OK;
}

lq_status lq_actstats_collect(lq_model *m, const lq_calib_set *c, const lq_actstats_params *p_in, lq_actstats **out) {
    *out                     = NULL;
    const lq_actstats_params p = p_in ? *p_in : lq_actstats_default_params();
    const lq_llama_weights  *w = lq__model_weights(m);
    LQ_RETURN_IF(!c || c->n_samples <= 0 || c->seq_len <= 0, LQ_ERR_INVALID_ARG, "calibration: no windows");
    LQ_RETURN_IF(c->seq_len > lq_model_max_seq(m), LQ_ERR_INVALID_ARG,
                 "calibration: windows of %lld tokens exceed the model's context of %lld", (long long)c->seq_len,
                 (long long)lq_model_max_seq(m));
    lq_actstats *s = lq_calloc(1, sizeof *s);
    LQ_RETURN_IF(!s, LQ_ERR_NOMEM, "calibration: out of memory");
    lq_status st  = LQ_OK;
    float    *lg  = NULL;
    s->n_layers   = w->n_layers;
    s->n_points   = w->n_layers * LQ__CAP_COUNT;
    s->n_threads  = p.n_threads;
    s->h          = lq_calloc((size_t)s->n_points, sizeof *s->h);
    s->modules    = lq_calloc((size_t)s->n_points, sizeof *s->modules);
    s->n_mod      = lq_calloc((size_t)s->n_points, sizeof *s->n_mod);
    LQ_GOTO_IF(!s->h || !s->modules || !s->n_mod, LQ_ERR_NOMEM, "calibration: out of memory");
    for (int64_t l = 0; l < w->n_layers; l++)
        for (int pt = 0; pt < LQ__CAP_COUNT; pt++) {
            const int64_t i = l * LQ__CAP_COUNT + pt;
            LQ_GOTO_TRY(lq_hist_new(p.n_bins, p.signed_hist, &s->h[i]));
            s->modules[i] = lq_calloc(4, sizeof(char *));
            LQ_GOTO_IF(!s->modules[i], LQ_ERR_NOMEM, "calibration: out of memory");
            for (int j = 0; j < 3 && POINT_MODULES[pt][j]; j++) {
                s->modules[i][j] = module_name(l, POINT_MODULES[pt][j]);
                LQ_GOTO_IF(!s->modules[i][j], LQ_ERR_NOMEM, "calibration: out of memory");
                s->n_mod[i]++;
            }
        }
    lg = lq_malloc((size_t)w->vocab * sizeof *lg);
    LQ_GOTO_IF(!lg, LQ_ERR_NOMEM, "calibration: out of memory");
    const double t0 = now_s();
    lq__model_set_capture(m, on_capture, s);
    for (int64_t k = 0; k < c->n_samples; k++) {
        st = lq_model_forward(m, c->tokens + k * c->seq_len, c->seq_len, 0, lg, true);
        if (st != LQ_OK) break;
        s->tokens += c->seq_len;
        if (p.progress && p.progress((float)(k + 1) / (float)c->n_samples, "calibrate", p.progress_user)) {
            st = LQ_ERR_CANCELLED;
            LQ_LOG_ERR("calibration: interrupted");
            break;
        }
    }
    lq__model_set_capture(m, NULL, NULL);
    s->seconds = now_s() - t0;
    if (st != LQ_OK) goto done;
    lq_free(lg);
    *out = s;
    return LQ_OK;
done:
    lq_free(lg);
    lq_actstats_free(s);
    return st;
}

int64_t        lq_actstats_count(const lq_actstats *s) { return s->n_points; }
const lq_hist *lq_actstats_hist(const lq_actstats *s, int64_t i) {
    return i >= 0 && i < s->n_points ? s->h[i] : NULL;
}
int64_t lq_actstats_n_modules(const lq_actstats *s, int64_t i) {
    return i >= 0 && i < s->n_points ? s->n_mod[i] : 0;
}
const char *lq_actstats_module(const lq_actstats *s, int64_t i, int64_t j) {
    return i >= 0 && i < s->n_points && j >= 0 && j < s->n_mod[i] ? s->modules[i][j] : NULL;
}
double  lq_actstats_seconds(const lq_actstats *s) { return s->seconds; }
int64_t lq_actstats_tokens(const lq_actstats *s) { return s->tokens; }

lq_status lq_actstats_amax(const lq_actstats *s, const lq_amax_params *p, double *amax, int64_t *bins) {
    for (int64_t i = 0; i < s->n_points; i++) {
        int64_t         b  = -1;
        const lq_status st = lq_hist_amax(s->h[i], p, &amax[i], &b);
        LQ_RETURN_IF(st != LQ_OK, st, "calibration: no %s range for the input of %s",
                     lq_amax_method_name(p->method), s->modules[i][0]);
        if (bins) bins[i] = b;
    }
    return LQ_OK;
}

/* ---- outputs ---- */


lq_status lq_act_ranges_write_json(const lq_actstats *s, const lq_amax_params *method, bool all_methods,
                                   const lq_calib_set *c, const char *calib_name, const char *model_name,
                                   const char *path) {
    const int64_t P     = s->n_points;
    double       *amax  = lq_calloc((size_t)(P * (LQ_AMAX_COUNT + 1)), sizeof *amax);
    int64_t      *bins  = lq_calloc((size_t)P, sizeof *bins);
    lq_status     st    = LQ_OK;
    LQ_GOTO_IF(!amax || !bins, LQ_ERR_NOMEM, "calibration: out of memory");
    LQ_GOTO_TRY(lq_actstats_amax(s, method, amax, bins));
    if (all_methods)
        for (int mth = 0; mth < LQ_AMAX_COUNT; mth++) {
            const lq_amax_params q = lq_amax_default_params((lq_amax_method)mth);
            if (mth == LQ_AMAX_ENTROPY_ORT && !lq_hist_has_signed(s->h[0])) continue;
            LQ_GOTO_TRY(lq_actstats_amax(s, &q, amax + (mth + 1) * P, NULL));
        }
    lq_json_writer *w = lq_json_writer_init(2);
    lq_json_obj_begin(w);
    lq_json_key(w, "format");
    lq_json_str(w, "libquant-activation-ranges");
    lq_json_key(w, "version");
    lq_json_i64(w, 1);
    lq_json_key(w, "model");
    lq_json_str(w, model_name ? model_name : "");
    if (c) {
        lq_json_key(w, "calibration");
        lq_json_obj_begin(w);
        lq_json_key(w, "file");
        lq_json_str(w, calib_name ? calib_name : "");
        lq_json_key(w, "sha256");
        lq_json_str(w, c->sha256);
        lq_json_key(w, "samples");
        lq_json_i64(w, c->n_samples);
        lq_json_key(w, "seq_len");
        lq_json_i64(w, c->seq_len);
        lq_json_key(w, "tokens");
        lq_json_i64(w, s->tokens);
        lq_json_obj_end(w);
    }
    lq_json_key(w, "method");
    lq_json_str(w, lq_amax_method_name(method->method));
    if (method->method == LQ_AMAX_PERCENTILE) {
        lq_json_key(w, "percentile");
        lq_json_f64(w, method->percentile);
    }
    lq_json_key(w, "num_bits");
    lq_json_i64(w, method->num_bits);
    lq_json_key(w, "bins");
    lq_json_i64(w, lq_hist_n_bins(s->h[0]) ? LQ_HIST_DEFAULT_BINS : 0);
    lq_json_key(w, "tensors");
    lq_json_arr_begin(w);
    const double qmax = (double)((1 << (method->num_bits - 1)) - 1);
    for (int64_t i = 0; i < P; i++)
        for (int64_t j = 0; j < s->n_mod[i]; j++) {
            const lq_hist *h = s->h[i];
            lq_json_obj_begin(w);
            lq_json_key(w, "name");
            lq_json_str(w, s->modules[i][j]);
            lq_json_key(w, "input_of");
            lq_json_arr_begin(w);
            for (int64_t k = 0; k < s->n_mod[i]; k++) lq_json_str(w, s->modules[i][k]);
            lq_json_arr_end(w);
            lq_json_key(w, "amax");
            lq_json_f64(w, amax[i]);
            lq_json_key(w, "scale");
            lq_json_f64(w, amax[i] / qmax);
            lq_json_key(w, "bin");
            lq_json_i64(w, bins[i]);
            lq_json_key(w, "absmax");
            lq_json_f64(w, lq_hist_absmax(h));
            lq_json_key(w, "min");
            lq_json_f64(w, lq_hist_min(h));
            lq_json_key(w, "max");
            lq_json_f64(w, lq_hist_max(h));
            lq_json_key(w, "count");
            lq_json_i64(w, lq_hist_count(h));
            if (all_methods) {
                lq_json_key(w, "amax_by_method");
                lq_json_obj_begin(w);
                for (int mth = 0; mth < LQ_AMAX_COUNT; mth++) {
                    if (mth == LQ_AMAX_ENTROPY_ORT && !lq_hist_has_signed(h)) continue;
                    lq_json_key(w, lq_amax_method_name((lq_amax_method)mth));
                    lq_json_f64(w, amax[(mth + 1) * P + i]);
                }
                lq_json_obj_end(w);
            }
            lq_json_obj_end(w);
        }
    lq_json_arr_end(w);
    lq_json_obj_end(w);
    st = lq__json_write_atomic(w, path);
done:
    lq_free(amax);
    lq_free(bins);
    return st;
}

lq_status lq_act_hist_dump_json(const lq_actstats *s, const char *path) {
    lq_json_writer *w = lq_json_writer_init(0);
    lq_json_arr_begin(w);
    for (int64_t i = 0; i < s->n_points; i++) {
        /* {"name": ..., then the histogram's own members}: write the name, then splice */
        lq_json_writer *hw = lq_json_writer_init(0);
        lq_status       st = lq_hist_write_json(s->h[i], hw);
        char           *ht = NULL;
        size_t          hl = 0;
        if (lq_json_writer_finish(hw, &ht, &hl) != LQ_OK || st != LQ_OK) {
            lq_free(ht);
            lq_json_writer_free(w);
            LQ_RETURN_IF(1, st != LQ_OK ? st : LQ_ERR_NOMEM, "%s: cannot write the histogram of %s", path,
                         s->modules[i][0]);
        }
        lq_json_doc  *doc = NULL;
        lq_json_error err;
        st = lq_json_parse(ht, hl, NULL, &doc, &err);
        lq_free(ht);
        if (st != LQ_OK) {
            lq_json_writer_free(w);
            LQ_RETURN_IF(1, st, "%s: histogram JSON does not parse: %s", path, err.msg);
        }
        const lq_json *root = lq_json_root(doc);
        lq_json_obj_begin(w);
        lq_json_key(w, "name");
        char name[300];
        snprintf(name, sizeof name, "%s.input", s->modules[i][0]);
        lq_json_str(w, name);
        for (uint32_t k = 0; root->type == LQ_JSON_OBJECT && k < root->n; k++) {
            lq_json_key(w, root->items[k].key);
            lq_json_value(w, &root->items[k]);
        }
        lq_json_obj_end(w);
        lq_json_free(doc);
    }
    lq_json_arr_end(w);
    return lq__json_write_atomic(w, path);
}

lq_status lq_act_trt_cache_write(const lq_actstats *s, const double *amax, int trt_version, const char *path) {
    int64_t n = 0;
    for (int64_t i = 0; i < s->n_points; i++) n += s->n_mod[i];
    const char **names = lq_calloc((size_t)(n ? n : 1), sizeof *names);
    char       **own   = lq_calloc((size_t)(n ? n : 1), sizeof *own);
    double      *a     = lq_calloc((size_t)(n ? n : 1), sizeof *a);
    lq_status    st    = LQ_OK;
    LQ_GOTO_IF(!names || !own || !a, LQ_ERR_NOMEM, "calibration: out of memory");
    int64_t k = 0;
    for (int64_t i = 0; i < s->n_points; i++)
        for (int64_t j = 0; j < s->n_mod[i]; j++, k++) {
            char buf[300];
            snprintf(buf, sizeof buf, "%s.input", s->modules[i][j]);
            own[k] = lq_strdup(buf);
            LQ_GOTO_IF(!own[k], LQ_ERR_NOMEM, "calibration: out of memory");
            names[k] = own[k];
            a[k]     = amax[i];
        }
    st = lq_trt_cache_write(path, trt_version, names, a, n);
done:
    if (own)
        for (int64_t i = 0; i < n; i++) lq_free(own[i]);
    lq_free(own);
    lq_free(names);
    lq_free(a);
    return st;
}

/* ---- reading a ranges table ---- */

void lq_act_ranges_free(lq_act_ranges *r) {
    if (!r) return;
    for (int64_t i = 0; i < r->n; i++) lq_free(r->name[i]);
    lq_free(r->name);
    lq_free(r->amax);
    lq_free(r);
}

double lq_act_ranges_find(const lq_act_ranges *r, const char *module) {
    for (int64_t i = 0; i < r->n; i++)
        if (strcmp(r->name[i], module) == 0) return r->amax[i];
    return 0;
}

lq_status lq_act_ranges_read(const char *path, lq_act_ranges **out) {
    *out              = NULL;
    char         *txt = NULL;
    size_t        len = 0;
    lq_json_doc  *doc = NULL;
    lq_json_error err;
    lq_act_ranges *r  = NULL;
    lq_status     st  = lq__read_file(path, 64u << 20, &txt, &len);
    if (st != LQ_OK) return st;
    st = lq_json_parse(txt, len, NULL, &doc, &err);
    LQ_GOTO_IF(st != LQ_OK, st, "%s: not JSON (byte %zu: %s)", path, err.offset, err.msg);
    const lq_json *root = lq_json_root(doc);
    const char    *fmt  = lq_json_get_str(lq_json_get(root, "format"));
    LQ_GOTO_IF(!fmt || strcmp(fmt, "libquant-activation-ranges") != 0, LQ_ERR_FORMAT,
               "%s: not an activation ranges table (\"format\" is not \"libquant-activation-ranges\"; lq-calib "
               "writes one)", path);
    const lq_json *ts = lq_json_get(root, "tensors");
    LQ_GOTO_IF(!ts || ts->type != LQ_JSON_ARRAY, LQ_ERR_FORMAT, "%s: \"tensors\" is missing or not an array", path);
    r = lq_calloc(1, sizeof *r);
    LQ_GOTO_IF(!r, LQ_ERR_NOMEM, "%s: out of memory", path);
    r->name = lq_calloc(ts->n ? ts->n : 1, sizeof *r->name);
    r->amax = lq_calloc(ts->n ? ts->n : 1, sizeof *r->amax);
    LQ_GOTO_IF(!r->name || !r->amax, LQ_ERR_NOMEM, "%s: out of memory", path);
    const char *m = lq_json_get_str(lq_json_get(root, "method"));
    snprintf(r->method, sizeof r->method, "%s", m ? m : "?");
    int64_t nb = 8;
    if (lq_json_get(root, "num_bits") && !lq_json_get_i64(lq_json_get(root, "num_bits"), &nb)) nb = -1;
    LQ_GOTO_IF(nb != 8, LQ_ERR_FORMAT, "%s: \"num_bits\" must be 8 (int8 activations)", path);
    r->num_bits = 8;
    for (uint32_t i = 0; i < ts->n; i++) {
        const lq_json *e    = &ts->items[i];
        const char    *name = lq_json_get_str(lq_json_get(e, "name"));
        double         a    = 0;
        LQ_GOTO_IF(!name || !*name, LQ_ERR_FORMAT, "%s: tensors[%u] has no \"name\"", path, i);
        LQ_GOTO_IF(!lq_json_get_f64(lq_json_get(e, "amax"), &a) || !(a > 0) || !isfinite(a), LQ_ERR_FORMAT,
                   "%s: %s: \"amax\" must be a positive finite number", path, name);
        LQ_GOTO_IF(lq_act_ranges_find(r, name) > 0, LQ_ERR_FORMAT, "%s: %s is listed twice", path, name);
        r->name[r->n] = lq_strdup(name);
        LQ_GOTO_IF(!r->name[r->n], LQ_ERR_NOMEM, "%s: out of memory", path);
        r->amax[r->n++] = a;
    }
    *out = r;
    r    = NULL;
done:
    lq_act_ranges_free(r);
    lq_json_free(doc);
    lq_free(txt);
    return st;
}

/* ---- per-column sums of squares (Wanda, imatrix-like) ---- */

struct lq_colnorms {
    int64_t  n_points;
    int64_t *cols;
    double **sumsq;   /* per point: cols sums of x^2 over every token */
    char  ***modules; /* per point: NULL-terminated module names     */
    float   *host;    /* device capture staging                      */
    int64_t  host_cap;
    int64_t  tokens;
};

void lq_colnorms_free(lq_colnorms *s) {
    if (!s) return;
    for (int64_t i = 0; i < s->n_points; i++) {
        if (s->sumsq) lq_free(s->sumsq[i]);
        if (s->modules && s->modules[i]) {
            for (int j = 0; s->modules[i][j]; j++) lq_free(s->modules[i][j]);
            lq_free(s->modules[i]);
        }
    }
    lq_free(s->sumsq);
    lq_free(s->modules);
    lq_free(s->cols);
    lq_free(s->host);
    lq_free(s);
}

static lq_status on_colnorm(void *user, int64_t layer, lq__cap_point p, const float *x, int64_t n, int64_t cols,
                            bool on_device) {
    lq_colnorms  *s  = user;
    const int64_t pi = layer * LQ__CAP_COUNT + (int64_t)p;
    LQ_ASSERT(pi >= 0 && pi < s->n_points);
    if (!s->sumsq[pi]) {
        s->sumsq[pi] = lq_calloc((size_t)cols, sizeof(double));
        LQ_RETURN_IF(!s->sumsq[pi], LQ_ERR_NOMEM, "colnorms: out of memory");
        s->cols[pi] = cols;
    }
    if (on_device) {
        if (n * cols > s->host_cap) {
            lq_free(s->host);
            s->host     = lq_malloc((size_t)(n * cols) * sizeof(float));
            s->host_cap = s->host ? n * cols : 0;
            LQ_RETURN_IF(!s->host, LQ_ERR_NOMEM, "colnorms: out of memory");
        }
        LQ_TRY(lq_cuda_memcpy_d2h(s->host, x, (size_t)(n * cols) * sizeof(float)));
        x = s->host;
    }
    double *acc = s->sumsq[pi];
    for (int64_t t = 0; t < n; t++) /* token order: deterministic */
        for (int64_t j = 0; j < cols; j++) acc[j] += (double)x[t * cols + j] * (double)x[t * cols + j];
    return LQ_OK;
}

lq_status lq_colnorms_collect(lq_model *m, const lq_calib_set *c, lq_colnorms **out) {
    *out                      = NULL;
    const lq_llama_weights *w = lq__model_weights(m);
    LQ_RETURN_IF(!c || c->n_samples <= 0 || c->seq_len > lq_model_max_seq(m), LQ_ERR_INVALID_ARG,
                 "colnorms: no windows, or windows longer than the model's context");
    lq_colnorms *s = lq_calloc(1, sizeof *s);
    LQ_RETURN_IF(!s, LQ_ERR_NOMEM, "colnorms: out of memory");
    lq_status st = LQ_OK;
    float    *lg = NULL;
    s->n_points  = w->n_layers * LQ__CAP_COUNT;
    s->cols      = lq_calloc((size_t)s->n_points, sizeof *s->cols);
    s->sumsq     = lq_calloc((size_t)s->n_points, sizeof *s->sumsq);
    s->modules   = lq_calloc((size_t)s->n_points, sizeof *s->modules);
    lg           = lq_malloc((size_t)w->vocab * sizeof *lg);
    LQ_GOTO_IF(!s->cols || !s->sumsq || !s->modules || !lg, LQ_ERR_NOMEM, "colnorms: out of memory");
    for (int64_t l = 0; l < w->n_layers; l++)
        for (int pt = 0; pt < LQ__CAP_COUNT; pt++) {
            char **mods = lq_calloc(4, sizeof *mods);
            LQ_GOTO_IF(!mods, LQ_ERR_NOMEM, "colnorms: out of memory");
            s->modules[l * LQ__CAP_COUNT + pt] = mods;
            for (int j = 0; j < 3 && POINT_MODULES[pt][j]; j++) {
                mods[j] = module_name(l, POINT_MODULES[pt][j]);
                LQ_GOTO_IF(!mods[j], LQ_ERR_NOMEM, "colnorms: out of memory");
            }
        }
    lq__model_set_capture(m, on_colnorm, s);
    for (int64_t k = 0; k < c->n_samples && st == LQ_OK; k++)
        st = lq_model_forward(m, c->tokens + k * c->seq_len, c->seq_len, 0, lg, true);
    lq__model_set_capture(m, NULL, NULL);
    if (st != LQ_OK) goto done;
    s->tokens = c->n_samples * c->seq_len;
    lq_free(lg);
    *out = s;
    return LQ_OK;
done:
    lq_free(lg);
    lq_colnorms_free(s);
    return st;
}

const double *lq_colnorms_find(const lq_colnorms *s, const char *module, int64_t *cols) {
    for (int64_t i = 0; i < s->n_points; i++)
        for (int j = 0; s->modules[i] && s->modules[i][j]; j++)
            if (!strcmp(s->modules[i][j], module)) {
                if (cols) *cols = s->cols[i];
                return s->sumsq[i];
            }
    return NULL;
}
