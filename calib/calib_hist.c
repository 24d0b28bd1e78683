/* calib_hist.c : the activation histogram collector (NVIDIA's |x|
 * histogram with its extension rule, ONNX Runtime's signed histogram with
 * merge_histogram), the TensorRT cache writer and the JSON dump
 * (lq_calib.h). */
#include "lq_calib.h"

#include "calib_internal.h"
#include "lq_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

struct lq_hist {
    int64_t  n_bins0;      /* bins of the first range                       */
    /* |x| histogram */
    int64_t  nb;           /* 0 until the first non-zero value              */
    double   width;
    int64_t *counts;
    int64_t  zeros_pending;
    /* statistics */
    int64_t  count;
    double   mn, mx;
    /* signed histogram (ONNX Runtime) */
    bool     has_signed;
    int64_t  snb;          /* 0 until the first batch                        */
    double   sth;
    int64_t *scounts;
};

lq_status lq_hist_new(int64_t n_bins, bool signed_hist, lq_hist **out) {
    *out = NULL;
    if (n_bins == 0) n_bins = LQ_HIST_DEFAULT_BINS;
    LQ_RETURN_IF(n_bins < 2 || n_bins > (1 << 24), LQ_ERR_INVALID_ARG, "histogram: %lld bins is out of range [2, 2^24]",
                 (long long)n_bins);
    lq_hist *h = lq_calloc(1, sizeof *h);
    LQ_RETURN_IF(!h, LQ_ERR_NOMEM, "histogram: out of memory");
    h->n_bins0    = n_bins;
    h->has_signed = signed_hist;
    h->mn         = INFINITY;
    h->mx         = -INFINITY;
    *out          = h;
    return LQ_OK;
}

void lq_hist_free(lq_hist *h) {
    if (!h) return;
    lq_free(h->counts);
    lq_free(h->scounts);
    lq_free(h);
}

int64_t        lq_hist_count(const lq_hist *h) { return h->count; }
double         lq_hist_min(const lq_hist *h) { return h->count ? h->mn : 0; }
double         lq_hist_max(const lq_hist *h) { return h->count ? h->mx : 0; }
double         lq_hist_absmax(const lq_hist *h) { return h->count ? LQ_MAX(fabs(h->mn), fabs(h->mx)) : 0; }
int64_t        lq_hist_n_bins(const lq_hist *h) { return h->nb; }
double         lq_hist_width(const lq_hist *h) { return h->width; }
const int64_t *lq_hist_counts(const lq_hist *h) { return h->counts; }
bool           lq_hist_has_signed(const lq_hist *h) { return h->has_signed; }

static inline int64_t bin_of(double v, const lq_hist_range *r) {
    if (!(v >= r->lo && v <= r->hi)) return -1;
    int64_t b = (int64_t)((v - r->lo) * (double)r->n_bins / (r->hi - r->lo));
    if (b >= r->n_bins) b = r->n_bins - 1;
    return b;
}

void lq_histc_ref(const float *x, int64_t n, bool absval, const lq_hist_range *r, int64_t *counts) {
    for (int64_t i = 0; i < n; i++) {
        const double  v = absval ? fabs((double)x[i]) : (double)x[i];
        const int64_t b = bin_of(v, r);
        if (b >= 0) counts[b]++;
    }
}

void lq_histc_cpu(const float *x, int64_t n, bool absval, const lq_hist_range *r, int64_t *counts, int n_threads) {
#ifdef _OPENMP
    const int nt = n_threads > 0 ? n_threads : omp_get_max_threads();
    if (nt > 1 && n >= 65536 && r->n_bins <= (1 << 16)) {
        /* per-thread partial counts, summed in thread order (integers: exact) */
        int64_t *part = lq_calloc((size_t)nt * (size_t)r->n_bins, sizeof *part);
        if (part) {
#pragma omp parallel num_threads(nt)
            {
                const int     t  = omp_get_thread_num();
                const int64_t lo = n * t / nt, hi = n * (t + 1) / nt;
                lq_histc_ref(x + lo, hi - lo, absval, r, part + (int64_t)t * r->n_bins);
            }
            for (int t = 0; t < nt; t++)
                for (int64_t b = 0; b < r->n_bins; b++) counts[b] += part[(int64_t)t * r->n_bins + b];
            lq_free(part);
            return;
        }
    }
#else
    (void)n_threads;
#endif
    lq_histc_ref(x, n, absval, r, counts);
}

lq_status lq_hist_plan(lq_hist *h, float bmin, float bmax, lq_hist_batch_plan *p) {
    memset(p, 0, sizeof *p);
    LQ_RETURN_IF(!isfinite(bmin) || !isfinite(bmax), LQ_ERR_FORMAT, "histogram: non-finite activation (%g .. %g)",
                 (double)bmin, (double)bmax);
    const double am = LQ_MAX(fabs((double)bmin), fabs((double)bmax));
    if (h->nb == 0) {
        p->abs_r = (lq_hist_range){0, am, am > 0 ? h->n_bins0 : 0};
    } else if (am > h->width * (double)h->nb) {
        const int64_t nb = (int64_t)ceil(am / h->width);
        LQ_RETURN_IF(nb > (1 << 26), LQ_ERR_FORMAT,
                     "histogram: an activation of %g is %lld bins of width %g away (range grew too much)", am,
                     (long long)nb, h->width);
        p->abs_r = (lq_hist_range){0, h->width * (double)nb, nb};
    } else {
        p->abs_r = (lq_hist_range){0, h->width * (double)h->nb, h->nb};
    }
    if (h->has_signed) {
        p->has_signed = true;
        const int64_t onb = h->snb ? h->snb : h->n_bins0;
        if (h->snb == 0 || am <= h->sth) {
            const double th = h->snb == 0 ? am : h->sth;
            p->signed_r     = (lq_hist_range){-th, th, onb};
        } else if (h->sth == 0) {
            p->signed_r = (lq_hist_range){-am, am, onb};
        } else {
            const double  stride = 2 * h->sth / (double)onb;
            const int64_t half   = (int64_t)floor((am - h->sth) / stride) + 1;
            LQ_RETURN_IF(half > (1 << 25), LQ_ERR_FORMAT, "histogram: the signed range grew too much (%g)", am);
            const double th = (double)half * stride + h->sth;
            p->signed_r     = (lq_hist_range){-th, th, onb + 2 * half};
        }
    }
    return LQ_OK;
}

lq_status lq_hist_commit(lq_hist *h, const lq_hist_batch_plan *p, float bmin, float bmax, int64_t n,
                         const int64_t *ac, const int64_t *sc) {
    if (n <= 0) return LQ_OK;
    /* |x| */
    if (p->abs_r.n_bins == 0) { /* all zeros, no range yet */
        h->zeros_pending += n;
    } else {
        int64_t *nc = lq_calloc((size_t)p->abs_r.n_bins, sizeof *nc);
        LQ_RETURN_IF(!nc, LQ_ERR_NOMEM, "histogram: out of memory (%lld bins)", (long long)p->abs_r.n_bins);
        for (int64_t b = 0; b < p->abs_r.n_bins; b++) nc[b] = ac[b];
        for (int64_t b = 0; b < h->nb; b++) nc[b] += h->counts[b];
        if (h->nb == 0) {
            nc[0] += h->zeros_pending;
            h->zeros_pending = 0;
            h->width         = p->abs_r.hi / (double)p->abs_r.n_bins;
        }
        lq_free(h->counts);
        h->counts = nc;
        h->nb     = p->abs_r.n_bins;
    }
    /* signed */
    if (h->has_signed) {
        LQ_RETURN_IF(!p->has_signed || !sc, LQ_ERR_INVALID_ARG, "histogram: the signed counts are missing");
        const int64_t nb = p->signed_r.n_bins;
        int64_t      *nc = lq_calloc((size_t)nb, sizeof *nc);
        LQ_RETURN_IF(!nc, LQ_ERR_NOMEM, "histogram: out of memory (%lld bins)", (long long)nb);
        for (int64_t b = 0; b < nb; b++) nc[b] = sc[b];
        if (h->snb) {
            const int64_t off = (nb - h->snb) / 2; /* 0 when the range is kept or replaced from threshold 0 */
            for (int64_t b = 0; b < h->snb; b++) nc[b + off] += h->scounts[b];
        }
        lq_free(h->scounts);
        h->scounts = nc;
        h->snb     = nb;
        h->sth     = p->signed_r.hi;
    }
    h->count += n;
    h->mn = LQ_MIN(h->mn, (double)bmin);
    h->mx = LQ_MAX(h->mx, (double)bmax);
    return LQ_OK;
}

/* counts over a degenerate range [-0, 0]: every value is 0 and lands in the middle bin, as numpy does */
static void histc_signed(const float *x, int64_t n, const lq_hist_range *r, int64_t *c, int nt) {
    if (r->hi == 0) {
        c[r->n_bins / 2] += n;
        return;
    }
    lq_histc_cpu(x, n, false, r, c, nt);
}

lq_status lq_hist_add(lq_hist *h, const float *x, int64_t n, int n_threads) {
    if (n <= 0) return LQ_OK;
    float mn = x[0], mx = x[0];
    bool  finite = true;
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        if (!isfinite(v)) finite = false;
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
    }
    LQ_RETURN_IF(!finite, LQ_ERR_FORMAT, "histogram: non-finite activation");
    lq_hist_batch_plan p;
    LQ_TRY(lq_hist_plan(h, mn, mx, &p));
    int64_t  *ac = lq_calloc((size_t)LQ_MAX(p.abs_r.n_bins, 1), sizeof *ac);
    int64_t  *sc = p.has_signed ? lq_calloc((size_t)p.signed_r.n_bins, sizeof *sc) : NULL;
    lq_status st = LQ_OK;
    LQ_GOTO_IF(!ac || (p.has_signed && !sc), LQ_ERR_NOMEM, "histogram: out of memory");
    if (p.abs_r.n_bins) lq_histc_cpu(x, n, true, &p.abs_r, ac, n_threads);
    if (p.has_signed) histc_signed(x, n, &p.signed_r, sc, n_threads);
    st = lq_hist_commit(h, &p, mn, mx, n, ac, sc);
done:
    lq_free(ac);
    lq_free(sc);
    return st;
}

/* ---- outputs ---- */

lq_status lq_trt_cache_write(const char *path, int trt_version, const char *const *names, const double *amax,
                             int64_t n) {
    lq__afile *f  = NULL;
    lq_status  st = lq__afile_open(path, &f);
    if (st != LQ_OK) return st;
    char line[600];
    int  l = snprintf(line, sizeof line, "TRT-%d-EntropyCalibration2\n", trt_version);
    st     = lq__afile_write(f, line, (size_t)l);
    for (int64_t i = 0; i < n && st == LQ_OK; i++) {
        const float s = (float)(amax[i] / 127.0);
        uint32_t    bits;
        memcpy(&bits, &s, 4);
        LQ_GOTO_IF(!isfinite(s) || !(s > 0) || strlen(names[i]) > 500 || strchr(names[i], '\n'), LQ_ERR_INVALID_ARG,
                   "%s: tensor %lld has no valid name or scale", path, (long long)i);
        l  = snprintf(line, sizeof line, "%s: %08x\n", names[i], bits);
        st = lq__afile_write(f, line, (size_t)l);
    }
    if (st == LQ_OK) return lq__afile_commit(f);
done:
    lq__afile_abort(f);
    return st;
}

lq_status lq_hist_write_json(const lq_hist *h, lq_json_writer *w) {
    lq_json_obj_begin(w);
    lq_json_key(w, "n_bins");
    lq_json_i64(w, h->nb);
    lq_json_key(w, "width");
    lq_json_f64(w, h->width);
    lq_json_key(w, "count");
    lq_json_i64(w, h->count);
    lq_json_key(w, "absmax");
    lq_json_f64(w, lq_hist_absmax(h));
    lq_json_key(w, "min");
    lq_json_f64(w, lq_hist_min(h));
    lq_json_key(w, "max");
    lq_json_f64(w, lq_hist_max(h));
    lq_json_key(w, "counts");
    lq_json_arr_begin(w);
    for (int64_t b = 0; b < h->nb; b++) lq_json_i64(w, h->counts[b]);
    lq_json_arr_end(w);
    if (h->has_signed && h->snb) {
        lq_json_key(w, "signed");
        lq_json_obj_begin(w);
        lq_json_key(w, "threshold");
        lq_json_f64(w, h->sth);
        lq_json_key(w, "counts");
        lq_json_arr_begin(w);
        for (int64_t b = 0; b < h->snb; b++) lq_json_i64(w, h->scounts[b]);
        lq_json_arr_end(w);
        lq_json_obj_end(w);
    }
    lq_json_obj_end(w);
    return LQ_OK;
}

const int64_t *lq__hist_signed(const lq_hist *h, int64_t *nb, double *th) {
    *nb = h->snb;
    *th = h->sth;
    return h->scounts;
}
