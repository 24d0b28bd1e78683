/* gptq_cpu.c : the GPTQ solver over OpenMP threads (gptq_ref.c is the
 * oracle) and the Hessian accumulation.
 *
 * U, the upper Cholesky factor of H^-1, comes from one Cholesky: with J the
 * reversal permutation and J H J = M M^T (M lower), H = V V^T with V = J M J
 * upper, so H^-1 = V^-T V^-1 and U = V^-1 = J M^-1 J. Blocked right-looking
 * Cholesky and a blocked triangular inverse, parallel over rows and block
 * columns. The column loop is row-parallel (rows are independent in GPTQ: a
 * row's errors only update that row) over tiles of rows that share each row
 * of U; its arithmetic per element is the reference's, in the same order.
 * Every output element has one writer and a fixed summation order, so the
 * result does not depend on the thread count. */
#include "gptq_internal.h"
#include "lq_internal.h"

#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define NB 64      /* Cholesky / inverse block */
#define TILE_R 16  /* rows per tile in the column loop */

static int threads_of(int n) {
#ifdef _OPENMP
    return n > 0 ? n : omp_get_max_threads();
#else
    (void)n;
    return 1;
#endif
}

/* in-place lower Cholesky of m (n x n row-major; the upper triangle is ignored); false if not PD */
static bool chol_blocked(double *m, int64_t n, int nt) {
    for (int64_t k0 = 0; k0 < n; k0 += NB) {
        const int64_t k1 = LQ_MIN(k0 + NB, n);
        for (int64_t j = k0; j < k1; j++) {
            double d = m[j * n + j];
            for (int64_t k = k0; k < j; k++) d -= m[j * n + k] * m[j * n + k];
            if (!(d > 0) || !isfinite(d)) return false;
            const double ljj = sqrt(d);
            m[j * n + j]     = ljj;
            for (int64_t i = j + 1; i < k1; i++) {
                double v = m[i * n + j];
                for (int64_t k = k0; k < j; k++) v -= m[i * n + k] * m[j * n + k];
                m[i * n + j] = v / ljj;
            }
        }
        /* the panel below the diagonal block, then the trailing update (which reads other rows' panels) */
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t i = k1; i < n; i++) {
            double *mi = m + i * n;
            for (int64_t j = k0; j < k1; j++) {
                double v = mi[j];
                for (int64_t k = k0; k < j; k++) v -= mi[k] * m[j * n + k];
                mi[j] = v / m[j * n + j];
            }
        }
#pragma omp parallel for schedule(dynamic, 8) num_threads(nt)
        for (int64_t i = k1; i < n; i++) {
            double *mi = m + i * n;
            for (int64_t j = k1; j <= i; j++) {
                const double *mj = m + j * n;
                double        v  = 0;
                for (int64_t k = k0; k < k1; k++) v += mi[k] * mj[k];
                mi[j] -= v;
            }
        }
    }
    return true;
}

/* x = l^-1 (lower, n x n), blocked: diagonal blocks by substitution, then per block column */
static void trinv_blocked(const double *l, int64_t n, double *x, int nt) {
    memset(x, 0, (size_t)(n * n) * sizeof *x);
    const int64_t nb = (n + NB - 1) / NB;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int64_t b = 0; b < nb; b++) {
        const int64_t o = b * NB, e = LQ_MIN(o + NB, n);
        for (int64_t j = o; j < e; j++)
            for (int64_t i = j; i < e; i++) {
                double v = i == j ? 1.0 : 0.0;
                for (int64_t k = j; k < i; k++) v -= l[i * n + k] * x[k * n + j];
                x[i * n + j] = v / l[i * n + i];
            }
    }
#pragma omp parallel num_threads(nt)
    {
        double *t = lq_malloc(NB * NB * sizeof *t);
#pragma omp for schedule(dynamic, 1)
        for (int64_t jb = 0; jb < nb; jb++) {
            if (!t) continue;
            const int64_t jo = jb * NB, je = LQ_MIN(jo + NB, n), jw = je - jo;
            for (int64_t ib = jb + 1; ib < nb; ib++) {
                const int64_t io = ib * NB, ie = LQ_MIN(io + NB, n), iw = ie - io;
                /* t = sum_{k in [jo, io)} l[i][k] x[k][j] */
                memset(t, 0, (size_t)(iw * jw) * sizeof *t);
                for (int64_t i = 0; i < iw; i++) {
                    const double *li = l + (io + i) * n;
                    double       *ti = t + i * jw;
                    for (int64_t k = jo; k < io; k++) {
                        const double  a  = li[k];
                        const double *xk = x + k * n + jo;
                        for (int64_t j = 0; j < jw; j++) ti[j] += a * xk[j];
                    }
                }
                /* x[ib][jb] = -D_ib^-1 t, D_ib^-1 = x[ib][ib] (lower) */
                for (int64_t i = 0; i < iw; i++) {
                    double *xi = x + (io + i) * n + jo;
                    for (int64_t j = 0; j < jw; j++) {
                        double v = 0;
                        for (int64_t k = 0; k <= i; k++) v += x[(io + i) * n + io + k] * t[k * jw + j];
                        xi[j] = -v;
                    }
                }
            }
        }
        lq_free(t);
    }
}

/* u = upper Cholesky factor of (b + diag_add I)^-1 (b: n x n, symmetric); false if not PD */
static bool hinv_upper_fast(const double *b, int64_t n, double diag_add, double *u, double *t1, int nt) {
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) t1[i * n + j] = b[(n - 1 - i) * n + (n - 1 - j)] + (i == j ? diag_add : 0.0);
    if (!chol_blocked(t1, n, nt)) return false;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) t1[i * n + j] = 0;
    trinv_blocked(t1, n, u, nt);
    /* u <- J u J in place (a 180-degree rotation) */
    for (int64_t i = 0; i < n * n / 2; i++) {
        const double v = u[i];
        u[i]           = u[n * n - 1 - i];
        u[n * n - 1 - i] = v;
    }
    return true;
}

lq_status lq_gptq_cpu(const lq_gptq_params *p, const float *w, int64_t R, int64_t C, const double *H, void *data,
                      float *scales, uint8_t *zeros, int32_t *g_idx, lq_gptq_stats *st, int n_threads) {
    lq__gptq_shape sh;
    LQ_TRY(lq__gptq_check(p, w, R, C, H, data, scales, zeros, g_idx, &sh));
    const int     nt = threads_of(n_threads);
    lq_gptq_stats stats;
    memset(&stats, 0, sizeof stats);
    const int64_t  G = sh.G, ng = sh.ng, BS = sh.block;
    const uint64_t rb = lq_qtype_row_bytes(p->qtype, C);
    double        *W = lq_malloc((size_t)(R * C) * sizeof *W), *A = lq_malloc((size_t)(C * C) * sizeof *A);
    double        *U = lq_malloc((size_t)(C * C) * sizeof *U), *T = lq_malloc((size_t)(C * C) * sizeof *T);
    int64_t       *perm = lq_malloc((size_t)C * sizeof *perm);
    float         *ss = lq_malloc((size_t)(R * ng) * sizeof *ss);
    int           *zz = lq_malloc((size_t)(R * ng) * sizeof *zz);
    double        *loss_rows = lq_calloc((size_t)R, sizeof *loss_rows);
    lq_status      status = LQ_OK;
    if (!W || !A || !U || !T || !perm || !ss || !zz || !loss_rows) {
        LQ_LOG_ERR("gptq: out of memory for a %lld x %lld layer", (long long)R, (long long)C);
        status = LQ_ERR_NOMEM;
        goto done;
    }
    for (int64_t j = 0; j < C; j++) stats.dead_cols += H[j * C + j] == 0;
    for (int64_t j = 0; j < C; j++) perm[j] = j;
    memcpy(A, H, (size_t)(C * C) * sizeof *A);
    for (int64_t j = 0; j < C; j++)
        if (A[j * C + j] == 0) A[j * C + j] = 1;
    if (sh.act_order) {
        for (int64_t j = 0; j < C; j++) T[j] = A[j * C + j];
        lq__gptq_act_order(T, C, perm);
    }
    /* W: dead columns zeroed, static groups fitted in the original order, then permuted */
#pragma omp parallel num_threads(nt)
    {
        double *row = lq_malloc((size_t)C * sizeof *row);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < R; r++) {
            if (!row) continue;
            for (int64_t j = 0; j < C; j++) row[j] = H[j * C + j] == 0 ? 0.0 : (double)w[r * C + j];
            if (sh.static_groups)
                for (int64_t g = 0; g < ng; g++)
                    lq__gptq_fit(&sh, row + g * G, LQ_MIN(G, C - g * G), &ss[r * ng + g], &zz[r * ng + g]);
            for (int64_t j = 0; j < C; j++) W[r * C + j] = row[perm[j]];
        }
        lq_free(row);
    }
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < C; j++) T[i * C + j] = A[perm[i] * C + perm[j]];
    memcpy(A, T, (size_t)(C * C) * sizeof *A);
    double mean = 0, maxd = 0;
    for (int64_t j = 0; j < C; j++) {
        mean += A[j * C + j];
        maxd = fmax(maxd, fabs(A[j * C + j]));
    }
    mean /= (double)C;
    bool ok = false;
    for (int k = 0; !ok; k++) {
        double rel, add;
        if (!lq__gptq_damping(p, k, maxd, &rel, &add)) break;
        ok = hinv_upper_fast(A, C, rel * mean + add, U, T, nt);
        stats.damp    = rel;
        stats.retries = k;
    }
    if (!ok) {
        LQ_LOG_ERR("gptq: the %lld x %lld Hessian stays singular after %d damping increases", (long long)C,
                   (long long)C, stats.retries);
        status = LQ_ERR_NUMERIC;
        goto done;
    }
    memset(data, 0, (size_t)(rb * (uint64_t)R));
    const int64_t n_tiles = (R + TILE_R - 1) / TILE_R;
    bool          oom     = false;
#pragma omp parallel num_threads(nt)
    {
        double *W1  = lq_malloc((size_t)(TILE_R * BS) * sizeof *W1);
        double *E1  = lq_malloc((size_t)(TILE_R * BS) * sizeof *E1);
        double *acc = lq_malloc((size_t)C * sizeof *acc);
        if (!W1 || !E1 || !acc) {
#pragma omp atomic write
            oom = true;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t tile = 0; tile < n_tiles; tile++) {
            if (!W1 || !E1 || !acc) continue;
            const int64_t r0 = tile * TILE_R, r1 = LQ_MIN(r0 + TILE_R, R);
            for (int64_t i1 = 0; i1 < C; i1 += BS) {
                const int64_t i2 = LQ_MIN(i1 + BS, C), cnt = i2 - i1;
                for (int64_t r = r0; r < r1; r++)
                    memcpy(W1 + (r - r0) * BS, W + r * C + i1, (size_t)cnt * sizeof *W1);
                for (int64_t i = 0; i < cnt; i++) {
                    const int64_t col  = i1 + i;
                    const double *urow = U + col * C + i1;
                    const double  d    = urow[i];
                    int64_t       g;
                    if (sh.static_groups) {
                        g = (sh.act_order ? perm[col] : col) / G;
                    } else {
                        g = col / G;
                        if (col % G == 0)
                            for (int64_t r = r0; r < r1; r++)
                                lq__gptq_fit(&sh, W + r * C + col, LQ_MIN(G, C - col), &ss[r * ng + g],
                                             &zz[r * ng + g]);
                    }
                    for (int64_t r = r0; r < r1; r++) {
                        double      *w1 = W1 + (r - r0) * BS;
                        const double x  = w1[i];
                        unsigned     u;
                        const double q = lq__gptq_quant(&sh, x, ss[r * ng + g], zz[r * ng + g], &u);
                        lq__put_code((uint8_t *)data + (uint64_t)r * rb, perm[col], sh.bits, u);
                        loss_rows[r] += (x - q) * (x - q) / (d * d) / 2;
                        const double err       = (x - q) / d;
                        E1[(r - r0) * BS + i] = err;
                        for (int64_t j = i + 1; j < cnt; j++) w1[j] -= err * urow[j];
                    }
                    if (g_idx && r0 == 0) g_idx[perm[col]] = (int32_t)g;
                }
                if (i2 < C)
                    for (int64_t r = r0; r < r1; r++) {
                        const double *e1 = E1 + (r - r0) * BS;
                        memset(acc, 0, (size_t)(C - i2) * sizeof *acc);
                        for (int64_t i = 0; i < cnt; i++) {
                            const double  e  = e1[i];
                            const double *ur = U + (i1 + i) * C + i2;
                            for (int64_t j = 0; j < C - i2; j++) acc[j] += e * ur[j];
                        }
                        double *wr = W + r * C + i2;
                        for (int64_t j = 0; j < C - i2; j++) wr[j] -= acc[j];
                    }
            }
        }
        lq_free(W1);
        lq_free(E1);
        lq_free(acc);
    }
    if (oom) {
        LQ_LOG_ERR("gptq: out of memory for the per-thread buffers");
        status = LQ_ERR_NOMEM;
        goto done;
    }
    for (int64_t r = 0; r < R; r++) stats.loss += loss_rows[r];
    for (int64_t r = 0; r < R; r++)
        for (int64_t g = 0; g < ng; g++) {
            scales[r * ng + g] = ss[r * ng + g];
            if (zeros) zeros[r * ng + g] = (uint8_t)zz[r * ng + g];
        }
done:
    if (st) *st = stats;
    lq_free(W), lq_free(A), lq_free(U), lq_free(T), lq_free(perm), lq_free(ss), lq_free(zz), lq_free(loss_rows);
    return status;
}

/* H += alpha * x^T x: per chunk of <= 256 rows, f32 products summed in f32 (8 partial sums over the chunk, combined
 * in a fixed order), added to H in f64; the upper triangle is computed and mirrored */
#define HCHUNK 256
#define HTILE 32
lq_status lq_hessian_accum_cpu(double *H, const float *x, int64_t n, int64_t cols, double alpha, int n_threads) {
    LQ_RETURN_IF(!H || (!x && n) || n < 0 || cols <= 0, LQ_ERR_INVALID_ARG, "hessian: bad arguments");
    const int nt = threads_of(n_threads);
    float    *xt = lq_malloc((size_t)(cols * HCHUNK) * sizeof *xt);
    LQ_RETURN_IF(!xt, LQ_ERR_NOMEM, "hessian: out of memory");
    const int64_t nti = (cols + HTILE - 1) / HTILE, npairs = nti * (nti + 1) / 2;
    for (int64_t t0 = 0; t0 < n; t0 += HCHUNK) {
        const int64_t m  = LQ_MIN(HCHUNK, n - t0);
        const int64_t mp = (m + 7) / 8 * 8;
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t i = 0; i < cols; i++) {
            float *xi = xt + i * HCHUNK;
            for (int64_t t = 0; t < m; t++) xi[t] = x[(t0 + t) * cols + i];
            for (int64_t t = m; t < mp; t++) xi[t] = 0.f;
        }
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
        for (int64_t pr = 0; pr < npairs; pr++) {
            /* pair index -> (bi, bj), bi <= bj */
            int64_t bi = 0, rem = pr;
            while (rem >= nti - bi) {
                rem -= nti - bi;
                bi++;
            }
            const int64_t bj = bi + rem;
            for (int64_t i = bi * HTILE; i < LQ_MIN((bi + 1) * HTILE, cols); i++) {
                const float *xi = xt + i * HCHUNK;
                for (int64_t j = LQ_MAX(i, bj * HTILE); j < LQ_MIN((bj + 1) * HTILE, cols); j++) {
                    const float *xj = xt + j * HCHUNK;
                    float        a[8] = {0};
                    for (int64_t t = 0; t < mp; t += 8)
                        for (int k = 0; k < 8; k++) a[k] += xi[t + k] * xj[t + k];
                    const float  s = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
                    const double v = alpha * (double)s;
                    H[i * cols + j] += v;
                    if (j != i) H[j * cols + i] += v;
                }
            }
        }
    }
    lq_free(xt);
    return LQ_OK;
}
