/* prune.c : magnitude and N:M pruning decided on the mapped source and
 * applied while the writer streams the tensor (lq_prune.h). */
#include "lq_prune.h"

#include "lq_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

static int es_of(lq_dtype d) { return d == LQ_DTYPE_F32 ? 4 : d == LQ_DTYPE_F16 || d == LQ_DTYPE_BF16 ? 2 : 0; }

/* |x| as f32 bits of element i (exact for all three dtypes); 0xFFFFFFFF for non-finite */
static inline uint32_t mag_bits(const void *p, lq_dtype d, int64_t i) {
    uint32_t u;
    if (d == LQ_DTYPE_F32) {
        memcpy(&u, (const uint8_t *)p + 4 * i, 4);
    } else {
        uint16_t h;
        memcpy(&h, (const uint8_t *)p + 2 * i, 2);
        if (d == LQ_DTYPE_BF16) {
            u = (uint32_t)h << 16;
        } else {
            const float f = lq_f16_to_f32(h);
            memcpy(&u, &f, 4);
        }
    }
    u &= 0x7fffffffu;
    return u >= 0x7f800000u ? 0xffffffffu : u;
}

static int64_t numel_of(const lq_tensor_info *t) {
    uint64_t n = 0;
    lq_tensor_info_numel(t, &n);
    return (int64_t)n;
}

/* counts[bin] over every element of every tensor; bin = high 16 bits, or the
 * low 16 bits of elements whose high half is `hi` (hi >= 0) */
static lq_status count_bins(const lq_prune_rule *r, int64_t nt, int64_t hi, uint64_t *counts, int n_threads) {
    memset(counts, 0, 65536 * sizeof *counts);
    bool bad = false;
    for (int64_t t = 0; t < nt; t++) {
        const lq_tensor_info *s = r[t].src;
        const int64_t         n = numel_of(s);
#ifdef _OPENMP
        const int nth = n >= (1 << 16) ? (n_threads > 0 ? n_threads : omp_get_max_threads()) : 1;
#else
        const int nth = 1;
        (void)n_threads;
#endif
        uint64_t *part = lq_calloc((size_t)nth * 65536, sizeof *part);
        LQ_RETURN_IF(!part, LQ_ERR_NOMEM, "prune: out of memory");
#pragma omp parallel num_threads(nth) reduction(|| : bad)
        {
#ifdef _OPENMP
            const int th = omp_get_thread_num();
#else
            const int th = 0;
#endif
            uint64_t     *c  = part + (size_t)th * 65536;
            const int64_t lo = n * th / nth, up = n * (th + 1) / nth;
            for (int64_t i = lo; i < up; i++) {
                const uint32_t b = mag_bits(s->data, s->dtype, i);
                if (b == 0xffffffffu) bad = true;
                if (hi < 0)
                    c[b >> 16]++;
                else if ((int64_t)(b >> 16) == hi)
                    c[b & 0xffffu]++;
            }
        }
        for (int th = 0; th < nth; th++)
            for (int b = 0; b < 65536; b++) counts[b] += part[(size_t)th * 65536 + (size_t)b];
        lq_free(part);
        LQ_RETURN_IF(bad, LQ_ERR_FORMAT, "prune: tensor '%s' has a non-finite weight", s->name);
    }
    return LQ_OK;
}

lq_status lq_prune_select(lq_prune_rule *r, int64_t nt, int64_t k, int n_threads) {
    int64_t total = 0;
    for (int64_t t = 0; t < nt; t++) {
        LQ_RETURN_IF(!r[t].src || !es_of(r[t].src->dtype), LQ_ERR_INVALID_ARG,
                     "prune: tensor '%s' is %s; magnitude pruning reads F32, F16 or BF16",
                     r[t].src ? r[t].src->name : "?", r[t].src ? lq_dtype_name(r[t].src->dtype) : "?");
        r[t].kind    = LQ_PRUNE_MAGNITUDE;
        r[t].thr     = 0;
        r[t].tie_end = 0;
        r[t].pruned  = 0;
        total += numel_of(r[t].src);
    }
    LQ_RETURN_IF(k < 0 || k > total, LQ_ERR_INVALID_ARG, "prune: %lld of %lld elements cannot be pruned",
                 (long long)k, (long long)total);
    if (k == 0) return LQ_OK;
    uint64_t *c = lq_malloc(65536 * sizeof *c);
    LQ_RETURN_IF(!c, LQ_ERR_NOMEM, "prune: out of memory");
    lq_status st = count_bins(r, nt, -1, c, n_threads);
    if (st != LQ_OK) goto done;
    uint64_t below = 0;
    int64_t  hi    = 0;
    while (below + c[hi] < (uint64_t)k) below += c[hi++];
    LQ_GOTO_TRY(count_bins(r, nt, hi, c, n_threads));
    int64_t lo = 0;
    while (below + c[lo] < (uint64_t)k) below += c[lo++];
    const uint32_t thr  = (uint32_t)(hi << 16 | lo);
    int64_t        need = k - (int64_t)below; /* elements equal to thr to prune, in order */
    for (int64_t t = 0; t < nt; t++) {
        const lq_tensor_info *s = r[t].src;
        const int64_t         n = numel_of(s);
        int64_t               pr = 0, tie_end = 0;
        for (int64_t i = 0; i < n; i++) {
            const uint32_t b = mag_bits(s->data, s->dtype, i);
            if (b < thr) {
                pr++;
            } else if (b == thr && need > 0) {
                pr++;
                need--;
                tie_end = i + 1;
            }
        }
        r[t].thr     = thr;
        r[t].tie_end = tie_end;
        r[t].pruned  = pr;
    }
    LQ_ASSERT(need == 0);
done:
    lq_free(c);
    return st;
}

lq_status lq_prune_nm_rule(lq_prune_rule *r, int n, int m) {
    const lq_tensor_info *s = r->src;
    LQ_RETURN_IF(!s || !es_of(s->dtype) || s->n_dims != 2, LQ_ERR_INVALID_ARG,
                 "prune: N:M needs a 2-D F32/F16/BF16 matrix ('%s')", s ? s->name : "?");
    LQ_RETURN_IF(m < 2 || m > 64 || n < 0 || n >= m, LQ_ERR_INVALID_ARG, "prune: %d:%d is not an N:M pattern", n, m);
    LQ_RETURN_IF(s->shape[1] % m != 0, LQ_ERR_INVALID_ARG,
                 "prune: '%s' has %lld input features, not a multiple of %d (N:M groups run along the input)", s->name,
                 (long long)s->shape[1], m);
    for (int64_t i = 0; i < numel_of(s); i++)
        LQ_RETURN_IF(mag_bits(s->data, s->dtype, i) == 0xffffffffu, LQ_ERR_FORMAT,
                     "prune: tensor '%s' has a non-finite weight", s->name);
    r->kind   = LQ_PRUNE_NM;
    r->n      = n;
    r->m      = m;
    r->pruned = numel_of(s) / m * (m - n);
    return LQ_OK;
}

lq_status lq_prune_wanda_rule(lq_prune_rule *r, const double *colsq, double sparsity) {
    const lq_tensor_info *s = r->src;
    LQ_RETURN_IF(!s || !es_of(s->dtype) || s->n_dims != 2 || !colsq, LQ_ERR_INVALID_ARG,
                 "prune: Wanda needs a 2-D F32/F16/BF16 matrix and its input norms ('%s')", s ? s->name : "?");
    LQ_RETURN_IF(!(sparsity >= 0 && sparsity <= 1), LQ_ERR_INVALID_ARG, "prune: sparsity %g", sparsity);
    for (int64_t i = 0; i < numel_of(s); i++)
        LQ_RETURN_IF(mag_bits(s->data, s->dtype, i) == 0xffffffffu, LQ_ERR_FORMAT,
                     "prune: tensor '%s' has a non-finite weight", s->name);
    for (int64_t j = 0; j < s->shape[1]; j++)
        LQ_RETURN_IF(!(colsq[j] >= 0) || !isfinite(colsq[j]), LQ_ERR_FORMAT,
                     "prune: the input norms of '%s' are not finite", s->name);
    r->kind   = LQ_PRUNE_WANDA;
    r->colsq  = colsq;
    r->row_k  = (int64_t)(sparsity * (double)s->shape[1] + 0.5);
    r->pruned = r->row_k * s->shape[0];
    return LQ_OK;
}

/* f32 value of element i */
static inline float elem_f32(const void *p, lq_dtype d, int64_t i) {
    if (d == LQ_DTYPE_F32) {
        float f;
        memcpy(&f, (const uint8_t *)p + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, (const uint8_t *)p + 2 * i, 2);
    if (d == LQ_DTYPE_F16) return lq_f16_to_f32(h);
    const uint32_t u = (uint32_t)h << 16;
    float          f;
    memcpy(&f, &u, 4);
    return f;
}

typedef struct {
    double  v;
    int64_t i;
} score_idx;

static int cmp_score(const void *x, const void *y) {
    const score_idx *p = x, *q = y;
    if (p->v != q->v) return p->v < q->v ? -1 : 1;
    return p->i < q->i ? -1 : p->i > q->i;
}

/* keep[j] for the m elements of the group starting at element g0: the n largest by (|x| desc, position asc) */
static void nm_keep(const lq_tensor_info *s, int64_t g0, int n, int m, bool *keep) {
    for (int j = 0; j < m; j++) {
        const uint32_t bj   = mag_bits(s->data, s->dtype, g0 + j);
        int            rank = 0; /* elements that outrank j */
        for (int q = 0; q < m; q++) {
            const uint32_t bq = mag_bits(s->data, s->dtype, g0 + q);
            rank += bq > bj || (bq == bj && q < j);
        }
        keep[j] = rank < n;
    }
}

lq_status lq_prune_fill(void *dst, uint64_t offset, uint64_t nbytes, void *user) {
    const lq_prune_rule  *r  = user;
    const lq_tensor_info *s  = r->src;
    const int             es = es_of(s->dtype);
    LQ_RETURN_IF(offset % (uint64_t)es || nbytes % (uint64_t)es, LQ_ERR_INVALID_ARG,
                 "prune: a write of '%s' is not element-aligned", s->name);
    memcpy(dst, (const uint8_t *)s->data + offset, (size_t)nbytes);
    const int64_t e0 = (int64_t)(offset / (uint64_t)es), e1 = e0 + (int64_t)(nbytes / (uint64_t)es);
    uint8_t      *d  = dst;
    if (r->kind == LQ_PRUNE_MAGNITUDE) {
        for (int64_t i = e0; i < e1; i++) {
            const uint32_t b = mag_bits(s->data, s->dtype, i);
            if (b < r->thr || (b == r->thr && i < r->tie_end)) memset(d + (i - e0) * es, 0, (size_t)es);
        }
    } else if (r->kind == LQ_PRUNE_WANDA) {
        const int64_t C = s->shape[1];
        score_idx    *v = lq_malloc((size_t)C * sizeof *v);
        LQ_RETURN_IF(!v, LQ_ERR_NOMEM, "prune: out of memory");
        for (int64_t row = e0 / C; row * C < e1; row++) {
            for (int64_t j = 0; j < C; j++)
                v[j] = (score_idx){fabs((double)elem_f32(s->data, s->dtype, row * C + j)) * sqrt(r->colsq[j]), j};
            qsort(v, (size_t)C, sizeof *v, cmp_score);
            for (int64_t q = 0; q < r->row_k; q++) {
                const int64_t i = row * C + v[q].i;
                if (i >= e0 && i < e1) memset(d + (i - e0) * es, 0, (size_t)es);
            }
        }
        lq_free(v);
    } else if (r->kind == LQ_PRUNE_NM) {
        bool keep[64];
        for (int64_t g0 = e0 / r->m * r->m; g0 < e1; g0 += r->m) {
            nm_keep(s, g0, r->n, r->m, keep);
            for (int j = 0; j < r->m; j++) {
                const int64_t i = g0 + j;
                if (i >= e0 && i < e1 && !keep[j]) memset(d + (i - e0) * es, 0, (size_t)es);
            }
        }
    }
    return LQ_OK;
}

/* ---- the oracle ---- */

typedef struct {
    float   a;
    int64_t i;
} mag_idx;

static int cmp_mag(const void *x, const void *y) {
    const mag_idx *p = x, *q = y;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    return p->i < q->i ? -1 : p->i > q->i;
}

lq_status lq_prune_magnitude_ref(float *w, int64_t n, int64_t k) {
    LQ_RETURN_IF(k < 0 || k > n, LQ_ERR_INVALID_ARG, "prune: k %lld of %lld", (long long)k, (long long)n);
    mag_idx *v = lq_malloc((size_t)(n ? n : 1) * sizeof *v);
    LQ_RETURN_IF(!v, LQ_ERR_NOMEM, "prune: out of memory");
    for (int64_t i = 0; i < n; i++) v[i] = (mag_idx){fabsf(w[i]), i};
    qsort(v, (size_t)n, sizeof *v, cmp_mag);
    for (int64_t j = 0; j < k; j++) w[v[j].i] = 0.0f;
    lq_free(v);
    return LQ_OK;
}

/* descending |x|, earlier position first */
static int cmp_mag_desc(const void *x, const void *y) {
    const mag_idx *p = x, *q = y;
    if (p->a != q->a) return p->a > q->a ? -1 : 1;
    return p->i < q->i ? -1 : p->i > q->i;
}

lq_status lq_prune_nm_ref(float *w, int64_t rows, int64_t cols, int n, int m) {
    LQ_RETURN_IF(m < 2 || m > 64 || n < 0 || n >= m || cols % m, LQ_ERR_INVALID_ARG, "prune: bad N:M");
    for (int64_t g0 = 0; g0 < rows * cols; g0 += m) {
        mag_idx v[64];
        for (int j = 0; j < m; j++) v[j] = (mag_idx){fabsf(w[g0 + j]), j};
        qsort(v, (size_t)m, sizeof *v, cmp_mag_desc);
        for (int j = n; j < m; j++) w[g0 + v[j].i] = 0.0f; /* all but the n largest */
    }
    return LQ_OK;
}

/* Wanda's oracle: k passes per row, each zeroing the smallest remaining score (earlier position on ties) */
lq_status lq_prune_wanda_ref(float *w, int64_t rows, int64_t cols, const double *colsq, int64_t k) {
    LQ_RETURN_IF(k < 0 || k > cols, LQ_ERR_INVALID_ARG, "prune: k %lld of %lld", (long long)k, (long long)cols);
    bool *gone = lq_calloc((size_t)(cols ? cols : 1), sizeof *gone);
    LQ_RETURN_IF(!gone, LQ_ERR_NOMEM, "prune: out of memory");
    for (int64_t r = 0; r < rows; r++) {
        memset(gone, 0, (size_t)cols * sizeof *gone);
        for (int64_t q = 0; q < k; q++) {
            int64_t best = -1;
            double  bv   = 0;
            for (int64_t j = 0; j < cols; j++) {
                if (gone[j]) continue;
                const double sc = fabs((double)w[r * cols + j]) * sqrt(colsq[j]);
                if (best < 0 || sc < bv) {
                    best = j;
                    bv   = sc;
                }
            }
            gone[best] = true;
        }
        for (int64_t j = 0; j < cols; j++)
            if (gone[j]) w[r * cols + j] = 0.0f;
    }
    lq_free(gone);
    return LQ_OK;
}
