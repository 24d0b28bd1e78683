/* calib_amax.c : the range calibrators over an lq_hist: max, NVIDIA's
 * entropy search (literal and prefix-sum versions), ONNX Runtime's entropy
 * search, percentile and MSE (lq_calib.h; REFERENCE.md 6.2). */
#include "calib_internal.h"
#include "lq_calib.h"
#include "lq_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const NAMES[LQ_AMAX_COUNT] = {"max", "entropy", "entropy-ort", "percentile", "mse"};

const char *lq_amax_method_name(lq_amax_method m) {
    return (int)m >= 0 && m < LQ_AMAX_COUNT ? NAMES[m] : "?";
}

lq_status lq_amax_method_from_name(const char *s, lq_amax_method *out) {
    for (int i = 0; i < LQ_AMAX_COUNT; i++)
        if (s && !strcmp(s, NAMES[i])) {
            *out = (lq_amax_method)i;
            return LQ_OK;
        }
    return LQ_ERR_INVALID_ARG;
}

lq_amax_params lq_amax_default_params(lq_amax_method m) {
    lq_amax_params p;
    memset(&p, 0, sizeof p);
    p.method                 = m;
    p.percentile             = 99.99;
    p.num_bits               = 8;
    p.ort_num_quantized_bins = 128;
    p.start_bin              = 128;
    p.stride                 = 1;
    return p;
}

/* ---- NVIDIA's entropy search ---- */

/* KL(P||Q) of candidate i, literally (f64, index order) */
static double kl_literal(const int64_t *bins, int64_t i, int64_t total, int L, int64_t *lev_sum, int64_t *lev_nz) {
    memset(lev_sum, 0, (size_t)L * sizeof *lev_sum);
    memset(lev_nz, 0, (size_t)L * sizeof *lev_nz);
    int64_t qtot = 0;
    for (int64_t j = 0; j < i; j++) {
        if (bins[j] == 0) continue;
        const int64_t k = (int64_t)L * j / i;
        lev_sum[k] += bins[j];
        lev_nz[k]++;
        qtot += bins[j];
    }
    const int64_t out = total - qtot; /* bins[i..] (sum of all minus the first i) */
    double        kl  = 0;
    for (int64_t j = 0; j < i; j++) {
        const int64_t c = bins[j] + (j == i - 1 ? out : 0);
        if (c == 0) continue;
        const double p = (double)c / (double)total;
        if (bins[j] == 0) return INFINITY;
        const int64_t k = (int64_t)L * j / i;
        const double  q = (double)lev_sum[k] / (double)lev_nz[k] / (double)qtot;
        kl += p * log(p / q);
    }
    return kl;
}

static lq_status search_args(const int64_t *counts, int64_t n, int L, int64_t start, int64_t stride) {
    LQ_RETURN_IF(!counts || n < 2 || L < 2 || start < 1 || stride < 1 || start > n, LQ_ERR_INVALID_ARG,
                 "entropy: %lld bins, %d levels, start %lld, stride %lld is not a search", (long long)n, L,
                 (long long)start, (long long)stride);
    for (int64_t j = 0; j < n; j++) LQ_RETURN_IF(counts[j] < 0, LQ_ERR_INVALID_ARG, "entropy: negative count");
    return LQ_OK;
}

lq_status lq_entropy_search_ref(const int64_t *counts, int64_t n, int L, int64_t start, int64_t stride,
                                int64_t *best_i, double *best_kl) {
    LQ_TRY(search_args(counts, n, L, start, stride));
    int64_t *bins = lq_malloc((size_t)n * sizeof *bins);
    int64_t *ls   = lq_malloc((size_t)L * sizeof *ls);
    int64_t *lz   = lq_malloc((size_t)L * sizeof *lz);
    lq_status st  = LQ_OK;
    LQ_GOTO_IF(!bins || !ls || !lz, LQ_ERR_NOMEM, "entropy: out of memory");
    memcpy(bins, counts, (size_t)n * sizeof *bins);
    bins[0]       = bins[1];
    int64_t total = 0;
    for (int64_t j = 0; j < n; j++) total += bins[j];
    LQ_GOTO_IF(total <= 0, LQ_ERR_INVALID_ARG, "entropy: empty histogram");
    double  bk = INFINITY;
    int64_t bi = start;
    for (int64_t i = start; i <= n; i += stride) {
        const double kl = kl_literal(bins, i, total, L, ls, lz);
        if (kl <= bk) { /* the last minimum */
            bk = kl;
            bi = i;
        }
    }
    *best_i  = bi;
    *best_kl = bk;
done:
    lq_free(bins);
    lq_free(ls);
    lq_free(lz);
    return st;
}

lq_status lq_entropy_search(const int64_t *counts, int64_t n, int L, int64_t start, int64_t stride, int64_t *best_i,
                            double *best_kl) {
    LQ_TRY(search_args(counts, n, L, start, stride));
    int64_t *bins = lq_malloc((size_t)n * sizeof *bins);
    int64_t *S    = lq_malloc((size_t)(n + 1) * sizeof *S);  /* prefix sums of counts       */
    int64_t *Z    = lq_malloc((size_t)(n + 1) * sizeof *Z);  /* prefix counts of non-empty  */
    double  *F    = lq_malloc((size_t)(n + 1) * sizeof *F);  /* prefix sums of c ln c       */
    const int64_t n_cand = (n - start) / stride + 1;
    double  *kls  = lq_malloc((size_t)n_cand * sizeof *kls);
    int64_t *ls   = lq_malloc((size_t)L * sizeof *ls);
    int64_t *lz   = lq_malloc((size_t)L * sizeof *lz);
    double  *lnz  = lq_malloc((size_t)(n + 1) * sizeof *lnz); /* ln of non-empty bin counts per level */
    lq_status st  = LQ_OK;
    LQ_GOTO_IF(!bins || !S || !Z || !F || !kls || !ls || !lz || !lnz, LQ_ERR_NOMEM, "entropy: out of memory");
    lnz[0] = 0;
    for (int64_t j = 1; j <= n; j++) lnz[j] = log((double)j);
    memcpy(bins, counts, (size_t)n * sizeof *bins);
    bins[0] = bins[1];
    S[0] = Z[0] = 0;
    F[0]        = 0;
    for (int64_t j = 0; j < n; j++) {
        S[j + 1] = S[j] + bins[j];
        Z[j + 1] = Z[j] + (bins[j] != 0);
        F[j + 1] = F[j] + (bins[j] ? (double)bins[j] * log((double)bins[j]) : 0.0);
    }
    const int64_t total = S[n];
    LQ_GOTO_IF(total <= 0, LQ_ERR_INVALID_ARG, "entropy: empty histogram");
    const double lnT = log((double)total);
    double       mn  = INFINITY;
    /* candidates are independent: one writer per kls[ci], so any thread count gives the same values */
#pragma omp parallel for schedule(static) if (n_cand >= 256)
    for (int64_t ci = 0; ci < n_cand; ci++) {
        const int64_t i    = start + ci * stride;
        const int64_t qtot = S[i], out = total - qtot, last = bins[i - 1];
        double        kl;
        if (last == 0 && out > 0) {
            kl = INFINITY;
        } else {
            /* sum over j < i-1 of c ln c - c ln T, and the last bin apart */
            double       s   = F[i - 1] - (double)S[i - 1] * lnT;
            const double lnQ = log((double)qtot);
            int64_t      a   = 0; /* level k covers [ceil(k i / L), ceil((k+1) i / L)) */
            for (int k = 0; k < L; k++) {
                const int64_t b = ((int64_t)(k + 1) * i + L - 1) / L;
                if (a < b) {
                    const int64_t sum = S[b] - S[a];
                    if (sum != 0) {
                        /* ln(level mean / qtot) = ln sum - ln nz - ln qtot */
                        const double  lq  = log((double)sum) - lnz[Z[b] - Z[a]] - lnQ;
                        const int64_t sub = b == i ? sum - last : sum;
                        s -= (double)sub * lq;
                        if (b == i && last + out > 0) {
                            const double p = (double)(last + out) / (double)total;
                            s += (double)(last + out) * (log(p) - lq);
                        }
                    }
                }
                a = b;
            }
            kl = s / (double)total;
        }
        kls[ci] = kl;
    }
    for (int64_t ci = 0; ci < n_cand; ci++)
        if (kls[ci] < mn) mn = kls[ci];
    /* re-evaluate the near-minimal candidates literally; the last minimum wins */
    const double tol = 1e-9 * fabs(mn) + 1e-12;
    double       bk  = INFINITY;
    int64_t      bi  = start;
    for (int64_t ci = 0; ci < n_cand; ci++) {
        if (!(kls[ci] <= mn + tol) && isfinite(mn)) continue;
        const int64_t i  = start + ci * stride;
        const double  kl = kl_literal(bins, i, total, L, ls, lz);
        if (kl <= bk) {
            bk = kl;
            bi = i;
        }
    }
    *best_i  = bi;
    *best_kl = bk;
done:
    lq_free(bins);
    lq_free(S);
    lq_free(Z);
    lq_free(F);
    lq_free(kls);
    lq_free(ls);
    lq_free(lz);
    lq_free(lnz);
    return st;
}

/* ---- ONNX Runtime's entropy search ---- */

/* smooth_distribution(p, 1e-4): zeros -> eps, non-zeros -= eps * n0 / n1; false when all zero */
static bool smooth(double *p, int64_t n) {
    int64_t n0 = 0;
    for (int64_t j = 0; j < n; j++) n0 += p[j] == 0;
    if (n0 == n) return false;
    const double eps = 1e-4, eps1 = eps * (double)n0 / (double)(n - n0);
    for (int64_t j = 0; j < n; j++) p[j] += p[j] == 0 ? eps : -eps1;
    return true;
}

static double kl_norm(const double *p, const double *q, int64_t n) {
    double sp = 0, sq = 0, kl = 0;
    for (int64_t j = 0; j < n; j++) {
        sp += p[j];
        sq += q[j];
    }
    for (int64_t j = 0; j < n; j++) {
        const double a = p[j] / sp, b = q[j] / sq;
        if (a > 0) kl += b > 0 ? a * log(a / b) : INFINITY;
    }
    return kl;
}

lq_status lq_entropy_ort_search(const int64_t *hist, int64_t nb, double th, double mn, double mx, int nq,
                                double *amax, int64_t *half) {
    LQ_RETURN_IF(!hist || nb < nq || nq < 2 || !(th >= 0), LQ_ERR_INVALID_ARG,
                 "entropy-ort: %lld bins for %d quantized bins", (long long)nb, nq);
    const int64_t zero = nb / 2, hq = nq / 2;
    double       *p = lq_malloc((size_t)nb * sizeof *p), *q = lq_malloc((size_t)nb * sizeof *q);
    int64_t      *qb = lq_malloc((size_t)nq * sizeof *qb);
    lq_status     st = LQ_OK;
    LQ_GOTO_IF(!p || !q || !qb, LQ_ERR_NOMEM, "entropy-ort: out of memory");
    double  best = INFINITY;
    int64_t bi   = hq;
    double  blo = 0, bhi = 0;
    for (int64_t i = hq; i <= zero; i++) {
        const int64_t s = zero - i, e = LQ_MIN(zero + i + 1, nb), m = e - s;
        int64_t       lo_out = 0, hi_out = 0;
        for (int64_t j = 0; j < s; j++) lo_out += hist[j];
        for (int64_t j = e; j < nb; j++) hi_out += hist[j];
        for (int64_t j = 0; j < m; j++) p[j] = (double)hist[s + j];
        p[0] += (double)lo_out;
        p[m - 1] += (double)hi_out;
        const int64_t merged = m / nq;
        for (int k = 0; k < nq; k++) {
            int64_t sum = 0;
            for (int64_t j = k * merged; j < (k + 1) * merged; j++) sum += hist[s + j];
            qb[k] = sum;
        }
        for (int64_t j = (int64_t)nq * merged; j < m; j++) qb[nq - 1] += hist[s + j];
        memset(q, 0, (size_t)m * sizeof *q);
        for (int k = 0; k < nq; k++) {
            int64_t norm = 0;
            for (int64_t j = k * merged; j < (k + 1) * merged; j++) norm += p[j] != 0;
            if (norm)
                for (int64_t j = k * merged; j < (k + 1) * merged; j++) q[j] = (double)(qb[k] / norm); /* int64 store */
        }
        double kl = INFINITY;
        if (smooth(p, m) && smooth(q, m)) kl = kl_norm(p, q, m);
        if (kl < best) { /* the first minimum */
            best = kl;
            bi   = i;
            blo  = -th + 2 * th * (double)s / (double)nb;
            bhi  = -th + 2 * th * (double)e / (double)nb;
        }
    }
    if (blo < mn) blo = mn;
    if (bhi > mx) bhi = mx;
    *amax = LQ_MAX(fabs(blo), fabs(bhi));
    *half = bi;
done:
    lq_free(p);
    lq_free(q);
    lq_free(qb);
    return st;
}

/* ---- percentile and MSE ---- */

static double fakequant(double c, double amax, int bits) {
    const double scale = (double)((1 << (bits - 1)) - 1) / amax;
    double       v     = nearbyint(c * scale);
    const double hi = (double)((1 << (bits - 1)) - 1), lo = -hi - 1;
    v = v > hi ? hi : v < lo ? lo : v;
    return v / scale;
}

lq_status lq_hist_amax(const lq_hist *h, const lq_amax_params *p, double *amax, int64_t *bin) {
    *amax = 0;
    if (bin) *bin = -1;
    LQ_RETURN_IF(!p || p->num_bits < 2 || p->num_bits > 16 || p->stride < 1, LQ_ERR_INVALID_ARG,
                 "calibration: bad parameters");
    LQ_RETURN_IF(lq_hist_count(h) == 0, LQ_ERR_INVALID_ARG, "calibration: empty histogram (no values were collected)");
    const double am = lq_hist_absmax(h);
    if (am == 0) {
        LQ_LOG_WARN("calibration: every value is 0; amax 1");
        *amax = 1;
        return LQ_OK;
    }
    const int64_t  nb = lq_hist_n_bins(h);
    const int64_t *c  = lq_hist_counts(h);
    const double   w  = lq_hist_width(h);
    int64_t        b  = -1;
    switch (p->method) {
    case LQ_AMAX_MAX: *amax = am; break;
    case LQ_AMAX_ENTROPY: {
        double  kl = 0;
        const int levels = 1 << (p->num_bits - 1);
        if (p->start_bin > nb) { /* fewer bins than the first candidate: nothing to search */
            *amax = am;
            break;
        }
        LQ_TRY(lq_entropy_search(c, nb, levels, p->start_bin, p->stride, &b, &kl));
        *amax = (double)b * w;
        break;
    }
    case LQ_AMAX_ENTROPY_ORT: {
        int64_t        snb = 0;
        double         th  = 0;
        const int64_t *sc  = lq__hist_signed(h, &snb, &th);
        LQ_RETURN_IF(!lq_hist_has_signed(h) || !sc, LQ_ERR_INVALID_ARG,
                     "calibration: entropy-ort needs the signed histogram (collect with signed_hist)");
        LQ_TRY(lq_entropy_ort_search(sc, snb, th, lq_hist_min(h), lq_hist_max(h), p->ort_num_quantized_bins, amax, &b));
        break;
    }
    case LQ_AMAX_PERCENTILE: {
        LQ_RETURN_IF(!(p->percentile > 0 && p->percentile <= 100), LQ_ERR_INVALID_ARG,
                     "calibration: percentile %g is not in (0, 100]", p->percentile);
        int64_t total = 0;
        for (int64_t j = 0; j < nb; j++) total += c[j];
        double cdf = 0;
        b          = nb - 1;
        for (int64_t j = 0; j < nb; j++) {
            cdf += (double)c[j] / (double)total;
            if (cdf >= p->percentile / 100) {
                b = j;
                break;
            }
        }
        *amax = (double)b * w;
        if (*amax <= 0) *amax = w; /* the first edge is 0: one bin instead of a zero range */
        break;
    }
    case LQ_AMAX_MSE: {
        double best = INFINITY;
        for (int64_t i = LQ_MIN(p->start_bin, nb - 1); i < nb; i += p->stride) {
            const double a = ((double)i + 0.5) * w;
            double       e = 0;
            for (int64_t j = 0; j < nb; j++) {
                if (!c[j]) continue;
                const double x = ((double)j + 0.5) * w, d = fakequant(x, a, p->num_bits) - x;
                e += d * d * (double)c[j];
            }
            if (e < best) { /* the first minimum */
                best = e;
                b    = i;
            }
        }
        *amax = ((double)b + 0.5) * w;
        break;
    }
    case LQ_AMAX_COUNT:
    default: LQ_RETURN_IF(1, LQ_ERR_INVALID_ARG, "calibration: unknown method %d", (int)p->method);
    }
    if (bin) *bin = b;
    return LQ_OK;
}
