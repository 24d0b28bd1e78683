/* gptq_cpu.c : the GPTQ solver for one Linear over OpenMP threads
 * (Frantar et al. 2022, arXiv 2210.17323, Algorithm 1 with the lazy batch
 * updates of section 3; gptq_ref.c is the oracle), and the Hessian
 * accumulation H += alpha x^T x.
 *
 * U, the upper Cholesky factor of H^-1, comes from one Cholesky and one
 * triangular inverse: with J the reversal permutation and J H J = M M^T
 * (M lower), H = V V^T with V = J M J upper, so H^-1 = V^-T V^-1 and
 * U = V^-1 = J M^-1 J. The Cholesky is blocked right-looking (the panel
 * solved through the inverse of its diagonal block, the trailing update a
 * lower-triangle GEMM), the inverse goes by block rows (two GEMMs each).
 * The column loop runs each block of `block_size` columns over tiles of rows
 * (rows are independent in GPTQ) with the reference's arithmetic, then
 * W[:, i2:] -= Err · U[i1:i2, i2:] as one GEMM.
 *
 * Every GEMM is tiled into work units fixed by the shape alone; a unit owns
 * its outputs and sums over k in a fixed order (KC chunks, ascending), so
 * the results never depend on the thread count. */
#include "gptq_internal.h"
#include "lq_internal.h"
#include "simd_internal.h"

#include <math.h>
#include <string.h>
#if defined(__AVX512F__) || (defined(__AVX__) && defined(__FMA__))
#include <immintrin.h>
#endif

/* ==== f64 GEMM: C -= A·B over packed panels ==== */

/* register tile MR x NR, NR = 2 vectors; VD doubles per vector (GCC/Clang vector extension,
 * lowered to AVX-512, AVX or SSE2 by the target) */
#if defined(__AVX512F__)
#define VD 8
#define MR 8
#elif defined(__AVX__)
#define VD 4
#define MR 6
#else
#define VD 2
#define MR 4
#endif
#define NR (2 * VD)
#define KC 256 /* k per packed chunk                      */
#define MC (32 * MR) /* rows of C per work unit */
#define NC 256 /* columns of C per work unit (multiple of NR) */
#define NB 128 /* Cholesky / inverse block                  */

typedef double vd __attribute__((vector_size(VD * sizeof(double))));

#if defined(__AVX512F__)
#define VFMA(a, b, c) ((vd)_mm512_fmadd_pd(_mm512_set1_pd(a), (__m512d)(b), (__m512d)(c)))
#elif defined(__AVX__) && defined(__FMA__)
#define VFMA(a, b, c) ((vd)_mm256_fmadd_pd(_mm256_set1_pd(a), (__m256d)(b), (__m256d)(c)))
#else
#define VFMA(a, b, c) ((c) + (a) * (b))
#endif

/* GEMM workspace, allocated once per solver call: A packed whole (shared), B chunks per thread */
#define WS_B ((size_t)KC * NC)
#define WS_T ((size_t)MR * NR)
#define WS_PER_THREAD (WS_B + WS_T)

typedef struct {
    double *ap;    /* packed A: MR-row panels of k x MR, a_cap doubles */
    size_t  a_cap;
    double *buf;   /* nt * WS_PER_THREAD */
    int     nt;
} gemm_ws;

/* a read-only operand: element (r, c) = trans ? p[c * ld + r] : p[r * ld + c] */
typedef struct {
    const double *p;
    int64_t       ld;
    bool          trans;
} mview;

/* acc (MR x NR) = sum_k a[k][0..MR) (x) b[k][0..NR), k ascending; then C[0:MR, 0:NR] -= acc (c != NULL) or
 * out = acc */
static void micro_kernel(int64_t kc, const double *restrict a, const double *restrict b, double *restrict c,
                         int64_t ldc, double *restrict out) {
    vd acc[MR][2];
    LQ_UNROLL(8)
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = (vd){0};
    for (int64_t k = 0; k < kc; k++) {
        const vd      b0 = *(const vd *)(b + k * NR), b1 = *(const vd *)(b + k * NR + VD);
        const double *ak = a + k * MR;
        LQ_UNROLL(8)
        for (int i = 0; i < MR; i++) {
            acc[i][0] = VFMA(ak[i], b0, acc[i][0]);
            acc[i][1] = VFMA(ak[i], b1, acc[i][1]);
        }
    }
    if (c) {
        LQ_UNROLL(8)
        for (int i = 0; i < MR; i++) {
            vd c0, c1;
            memcpy(&c0, c + i * ldc, sizeof c0);
            memcpy(&c1, c + i * ldc + VD, sizeof c1);
            c0 -= acc[i][0];
            c1 -= acc[i][1];
            memcpy(c + i * ldc, &c0, sizeof c0);
            memcpy(c + i * ldc + VD, &c1, sizeof c1);
        }
        return;
    }
    LQ_UNROLL(8)
    for (int i = 0; i < MR; i++) {
        memcpy(out + i * NR, &acc[i][0], sizeof(vd));
        memcpy(out + i * NR + VD, &acc[i][1], sizeof(vd));
    }
}

/* B[k0:k0+kc, j0:j1] as NR-column panels of kc x NR (row-major, zero padded) */
static void pack_b(double *restrict bp, const mview *B, int64_t k0, int64_t kc, int64_t j0, int64_t j1) {
    for (int64_t jp = j0; jp < j1; jp += NR) {
        double       *pp = bp + (jp - j0) * kc;
        const int64_t nr = LQ_MIN((int64_t)NR, j1 - jp);
        if (!B->trans) {
            for (int64_t kk = 0; kk < kc; kk++) {
                const double *src = B->p + (k0 + kk) * B->ld + jp;
                if (nr == NR) {
                    memcpy(pp + kk * NR, src, NR * sizeof *pp);
                } else {
                    for (int64_t jj = 0; jj < NR; jj++) pp[kk * NR + jj] = jj < nr ? src[jj] : 0.0;
                }
            }
        } else {
            for (int64_t jj = 0; jj < NR; jj++) {
                if (jj < nr) {
                    const double *src = B->p + (jp + jj) * B->ld + k0;
                    for (int64_t kk = 0; kk < kc; kk++) pp[kk * NR + jj] = src[kk];
                } else {
                    for (int64_t kk = 0; kk < kc; kk++) pp[kk * NR + jj] = 0.0;
                }
            }
        }
    }
}

/* one work unit: C[i0:i1, j0:j1] -= A[i0:i1, k_lo:k] · B[k_lo:k, j0:j1]; ap: the packed A (k per panel) */
static void gemm_unit(double *ws, const double *ap, int64_t i0, int64_t i1, int64_t j0, int64_t j1, int64_t k_lo,
                      int64_t k, const mview *B, double *C, int64_t ldc, bool c_lower) {
    double *bp = ws, *tile = ws + WS_B;
    for (int64_t k0 = k_lo; k0 < k; k0 += KC) {
        const int64_t kc = LQ_MIN((int64_t)KC, k - k0);
        pack_b(bp, B, k0, kc, j0, j1);
        for (int64_t ii = i0; ii < i1; ii += MR) {
            const int64_t mr = LQ_MIN((int64_t)MR, i1 - ii);
            const double *a  = ap + ii * k + k0 * MR; /* panel ii / MR, row k0 */
            for (int64_t jp = j0; jp < j1; jp += NR) {
                if (c_lower && jp > ii + mr - 1) break;
                const int64_t nr = LQ_MIN((int64_t)NR, j1 - jp);
                double *c = C + ii * ldc + jp;
                if (mr == MR && nr == NR && !(c_lower && jp + NR - 1 > ii)) {
                    micro_kernel(kc, a, bp + (jp - j0) * kc, c, ldc, NULL);
                    continue;
                }
                micro_kernel(kc, a, bp + (jp - j0) * kc, NULL, 0, tile);
                for (int64_t i = 0; i < mr; i++) {
                    const double *t    = tile + i * NR;
                    const int64_t jmax = c_lower ? LQ_MIN(nr, ii + i - jp + 1) : nr;
                    for (int64_t j = 0; j < jmax; j++) c[i * ldc + j] -= t[j];
                }
            }
        }
    }
}

/* C (m x n, ldc) -= A (m x k, row-major lda) · B (k x n). b_lower: B[k][j] = 0 for k < j (skipped). c_lower: only
 * C[i][j] with j <= i is computed and written. Work units of MC x NC outputs; each output's sum runs over KC chunks
 * from a start fixed by the shape (0, or the unit's first column with b_lower), so the thread count never matters. */
static void gemm_sub(const gemm_ws *ws, int64_t m, int64_t n, int64_t k, const double *A, int64_t lda, mview B,
                     bool b_lower, double *C, int64_t ldc, bool c_lower) {
    if (m <= 0 || n <= 0 || k <= 0) return;
    const int64_t n_mp = LQ_CEIL_DIV(m, (int64_t)MR);
    LQ_ASSERT((size_t)(n_mp * MR * k) <= ws->a_cap);
    const int64_t n_mb = LQ_CEIL_DIV(m, (int64_t)MC), n_nb = LQ_CEIL_DIV(n, (int64_t)NC), units = n_mb * n_nb;
    const int     nt = ws->nt;
    (void)nt;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1 && m * n * k >= LQ_PAR_MIN_WORK)
#endif
    {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t pn = 0; pn < n_mp; pn++) {
            double       *dst = ws->ap + pn * MR * k;
            const int64_t mr  = LQ_MIN((int64_t)MR, m - pn * MR);
            for (int64_t i = 0; i < MR; i++) {
                if (i < mr) {
                    const double *src = A + (pn * MR + i) * lda;
                    for (int64_t kk = 0; kk < k; kk++) dst[kk * MR + i] = src[kk];
                } else {
                    for (int64_t kk = 0; kk < k; kk++) dst[kk * MR + i] = 0.0;
                }
            }
        }
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t u = 0; u < units; u++) {
            const int64_t nb = u / n_mb, mb = u % n_mb;
            const int64_t i0 = mb * MC, i1 = LQ_MIN(i0 + MC, m), j0 = nb * NC, j1 = LQ_MIN(j0 + NC, n);
            if (c_lower && j0 > i1 - 1) continue;
            const int64_t k_lo = b_lower ? LQ_MIN(j0, k) : 0;
            gemm_unit(ws->buf + (size_t)lq__cpu_thread_id() * WS_PER_THREAD, ws->ap, i0, i1, j0, j1, k_lo, k, &B, C,
                      ldc, c_lower);
        }
    }
}

/* ==== Cholesky and triangular inverse ==== */

/* unblocked lower Cholesky of the w x w diagonal block at d (row stride ld), in place; false if not PD */
static bool chol_diag(double *d, int64_t w, int64_t ld) {
    for (int64_t j = 0; j < w; j++) {
        double v = d[j * ld + j];
        for (int64_t k = 0; k < j; k++) v -= d[j * ld + k] * d[j * ld + k];
        if (!(v > 0) || !isfinite(v)) return false;
        const double ljj = sqrt(v);
        d[j * ld + j]    = ljj;
        for (int64_t i = j + 1; i < w; i++) {
            double s = d[i * ld + j];
            for (int64_t k = 0; k < j; k++) s -= d[i * ld + k] * d[j * ld + k];
            d[i * ld + j] = s / ljj;
        }
    }
    return true;
}

/* x (w x w, ld ldx, lower; zeroed above) = sign * l^-1 for the lower w x w block l (ld ldl) */
static void trinv_diag(const double *l, int64_t ldl, int64_t w, double *x, int64_t ldx, double sign) {
    for (int64_t i = 0; i < w; i++)
        for (int64_t j = i + 1; j < w; j++) x[i * ldx + j] = 0;
    for (int64_t j = 0; j < w; j++)
        for (int64_t i = j; i < w; i++) {
            double v = i == j ? 1.0 : 0.0;
            for (int64_t k = j; k < i; k++) v -= l[i * ldl + k] * x[k * ldx + j];
            x[i * ldx + j] = v / l[i * ldl + i];
        }
    if (sign < 0)
        for (int64_t i = 0; i < w; i++)
            for (int64_t j = 0; j <= i; j++) x[i * ldx + j] = -x[i * ldx + j];
}

/* in-place lower Cholesky of m (n x n row-major, lower triangle read; the strict upper triangle is left as is).
 * tmp: n * NB doubles, nd: NB * NB. false if not positive definite. */
static bool chol_blocked(const gemm_ws *ws, double *m, int64_t n, double *tmp, double *nd) {
    for (int64_t k0 = 0; k0 < n; k0 += NB) {
        const int64_t k1 = LQ_MIN(k0 + NB, n), w = k1 - k0, rest = n - k1;
        if (!chol_diag(m + k0 * n + k0, w, n)) return false;
        if (!rest) break;
        /* panel L21 = A21 L11^-T = A21 (-L11^-1)^T subtracted from zero */
        trinv_diag(m + k0 * n + k0, n, w, nd, NB, -1.0);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(ws->nt) if (ws->nt > 1 && rest * w >= LQ_PAR_MIN_WORK)
#endif
        for (int64_t i = 0; i < rest; i++) {
            memcpy(tmp + i * w, m + (k1 + i) * n + k0, (size_t)w * sizeof *tmp);
            memset(m + (k1 + i) * n + k0, 0, (size_t)w * sizeof *m);
        }
        gemm_sub(ws, rest, w, w, tmp, w, (mview){nd, NB, true}, false, m + k1 * n + k0, n, false);
        /* trailing A22 -= L21 L21^T, lower triangle */
        gemm_sub(ws, rest, rest, w, m + k1 * n + k0, n, (mview){m + k1 * n + k0, n, true}, false, m + k1 * n + k1, n,
                 true);
    }
    return true;
}

/* x = l^-1 (both n x n; l lower, its strict upper triangle ignored; x lower with zeros above), by block rows:
 * X_II = L_II^-1, X[I, :I] = X_II · (-(L[I, :I] · X[:I, :I])). tmp: NB * n doubles, nd: NB * NB. */
static void trinv_blocked(const gemm_ws *ws, const double *l, int64_t n, double *x, double *tmp, double *nd) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(ws->nt) if (ws->nt > 1 && n * n >= LQ_PAR_MIN_WORK)
#endif
    for (int64_t i = 0; i < n; i++) memset(x + i * n, 0, (size_t)n * sizeof *x);
    for (int64_t io = 0; io < n; io += NB) {
        const int64_t w = LQ_MIN((int64_t)NB, n - io);
        trinv_diag(l + io * n + io, n, w, x + io * n + io, n, 1.0);
        if (!io) continue;
        memset(tmp, 0, (size_t)(w * io) * sizeof *tmp);
        gemm_sub(ws, w, io, io, l + io * n, n, (mview){x, n, false}, true, tmp, io, false);
        for (int64_t i = 0; i < w; i++)
            for (int64_t j = 0; j < w; j++) nd[i * NB + j] = -x[(io + i) * n + io + j];
        gemm_sub(ws, w, io, w, nd, NB, (mview){tmp, io, false}, false, x + io * n, n, false);
    }
}

/* u = upper Cholesky factor of (A + diag_add I)^-1 for A = H[perm][:, perm] with zero diagonals set to 1 (H: n x n,
 * symmetric; one triangle of A is read); t: n x n scratch, tmp: n * NB, nd: NB * NB. false if not positive
 * definite. */
static bool hinv_upper_fast(const gemm_ws *ws, const double *H, const int64_t *perm, int64_t n, double diag_add,
                            double *u, double *t, double *tmp, double *nd) {
    /* t = J A J, lower triangle */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(ws->nt) if (ws->nt > 1 && n * n >= LQ_PAR_MIN_WORK)
#endif
    for (int64_t i = 0; i < n; i++) {
        const double *hr = H + perm[n - 1 - i] * n;
        for (int64_t j = 0; j < i; j++) t[i * n + j] = hr[perm[n - 1 - j]];
        const double d = hr[perm[n - 1 - i]];
        t[i * n + i]   = (d == 0 ? 1.0 : d) + diag_add;
    }
    if (!chol_blocked(ws, t, n, tmp, nd)) return false;
    trinv_blocked(ws, t, n, u, tmp, nd);
    /* u <- J u J (a 180-degree rotation), row pairs swapped in parallel */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(ws->nt) if (ws->nt > 1 && n * n >= LQ_PAR_MIN_WORK)
#endif
    for (int64_t i = 0; i < (n + 1) / 2; i++) {
        double *r1 = u + i * n, *r2 = u + (n - 1 - i) * n;
        if (r1 == r2) {
            for (int64_t j = 0; j < n / 2; j++) {
                const double v = r1[j];
                r1[j]          = r1[n - 1 - j];
                r1[n - 1 - j]  = v;
            }
        } else {
            for (int64_t j = 0; j < n; j++) {
                const double v = r1[j];
                r1[j]          = r2[n - 1 - j];
                r2[n - 1 - j]  = v;
            }
        }
    }
    return true;
}

/* ==== the solver ==== */

#define TILE_R 8 /* rows per work unit of the column loop */

/* n1 * n2 elements of `size` bytes, overflow-checked; NULL on failure */
static void *alloc_n(int64_t n1, int64_t n2, size_t size) {
    size_t a, b;
    if (n1 < 0 || n2 < 0 || !lq__mul_size((size_t)n1, (size_t)n2, &a) || !lq__mul_size(a, size, &b)) return NULL;
    return lq_malloc(b ? b : 1);
}

lq_status lq_gptq_cpu(const lq_gptq_params *p, const float *w, int64_t R, int64_t C, const double *H, void *data,
                      float *scales, uint8_t *zeros, int32_t *g_idx, lq_gptq_stats *st, int n_threads) {
    lq__gptq_shape sh;
    LQ_TRY(lq__gptq_check(p, w, R, C, H, data, scales, zeros, g_idx, &sh));
    const int     nt = lq__cpu_threads(n_threads);
    lq_gptq_stats stats;
    memset(&stats, 0, sizeof stats);
    const int64_t  G = sh.G, ng = sh.ng, BS = sh.block;
    const uint64_t rb = lq_qtype_row_bytes(p->qtype, C);
    /* packed A: the lazy update (R x BS), the Cholesky panels (C x NB), the inverse's block rows (NB x C) */
    const int64_t  a_cap = LQ_MAX(LQ_MAX((R + MR) * BS, (C + MR) * NB), (NB + MR) * C);
    gemm_ws        ws    = {alloc_n(a_cap, 1, sizeof(double)), (size_t)a_cap,
                            alloc_n(nt, (int64_t)WS_PER_THREAD, sizeof(double)), nt};
    double        *W = alloc_n(R, C, sizeof(double));
    double        *U = alloc_n(C, C, sizeof(double)), *T = alloc_n(C, C, sizeof(double));
    double        *E = alloc_n(R, BS, sizeof(double)), *W1 = alloc_n(nt, TILE_R * BS, sizeof(double));
    double        *tmp = alloc_n(C, NB, sizeof(double)), *nd = alloc_n(NB, NB, sizeof(double));
    double        *rowbuf = alloc_n(nt, C, sizeof(double)), *loss_rows = alloc_n(R, 1, sizeof(double));
    int64_t       *perm = alloc_n(C, 1, sizeof(int64_t));
    float         *ss   = alloc_n(R, ng, sizeof(float));
    int           *zz   = alloc_n(R, ng, sizeof(int));
    lq_status      status = LQ_OK;
    if (!ws.ap || !ws.buf || !W || !U || !T || !E || !W1 || !tmp || !nd || !rowbuf || !loss_rows || !perm || !ss || !zz) {
        LQ_LOG_ERR("gptq: out of memory for a %lld x %lld layer", (long long)R, (long long)C);
        status = LQ_ERR_NOMEM;
        goto done;
    }
    /* (1) dead columns, (3) the act-order permutation (stable, decreasing diag) */
    for (int64_t j = 0; j < C; j++) {
        stats.dead_cols += H[j * C + j] == 0;
        T[j] = H[j * C + j] == 0 ? 1.0 : H[j * C + j];
        perm[j] = j;
    }
    if (sh.act_order) lq__gptq_act_order(T, C, perm);
    /* W: dead columns zeroed, (2) static groups fitted in the original order, then permuted */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
    for (int64_t r = 0; r < R; r++) {
        double *row = rowbuf + (size_t)lq__cpu_thread_id() * (size_t)C;
        for (int64_t j = 0; j < C; j++) row[j] = H[j * C + j] == 0 ? 0.0 : (double)w[r * C + j];
        if (sh.static_groups)
            for (int64_t g = 0; g < ng; g++)
                lq__gptq_fit(&sh, row + g * G, LQ_MIN(G, C - g * G), &ss[r * ng + g], &zz[r * ng + g]);
        for (int64_t j = 0; j < C; j++) W[r * C + j] = row[perm[j]];
        loss_rows[r] = 0;
    }
    /* (4), (5) damping with retries, U = upper chol(H^-1); the mean in the permuted order, as the reference */
    double mean = 0, maxd = 0;
    for (int64_t j = 0; j < C; j++) {
        const double d = H[perm[j] * C + perm[j]] == 0 ? 1.0 : H[perm[j] * C + perm[j]];
        mean += d;
        maxd = fmax(maxd, fabs(d));
    }
    mean /= (double)C;
    bool ok = false;
    for (int k = 0; !ok; k++) {
        double rel, add;
        if (!lq__gptq_damping(p, k, maxd, &rel, &add)) break;
        ok            = hinv_upper_fast(&ws, H, perm, C, rel * mean + add, U, T, tmp, nd);
        stats.damp    = rel;
        stats.retries = k;
    }
    if (!ok) {
        LQ_LOG_ERR("gptq: the %lld x %lld Hessian stays singular after %d damping increases", (long long)C,
                   (long long)C, stats.retries);
        status = LQ_ERR_NUMERIC;
        goto done;
    }
    /* (6) the column loop, block by block */
    memset(data, 0, (size_t)(rb * (uint64_t)R));
    const int64_t n_tiles = LQ_CEIL_DIV(R, (int64_t)TILE_R);
    for (int64_t i1 = 0; i1 < C; i1 += BS) {
        const int64_t i2 = LQ_MIN(i1 + BS, C), cnt = i2 - i1;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1 && R * cnt * cnt >= LQ_PAR_MIN_WORK)
#endif
        for (int64_t tile = 0; tile < n_tiles; tile++) {
            double       *w1 = W1 + (size_t)lq__cpu_thread_id() * (size_t)(TILE_R * BS);
            const int64_t r0 = tile * TILE_R, r1 = LQ_MIN(r0 + TILE_R, R);
            for (int64_t r = r0; r < r1; r++) memcpy(w1 + (r - r0) * BS, W + r * C + i1, (size_t)cnt * sizeof *w1);
            for (int64_t i = 0; i < cnt; i++) {
                const int64_t col  = i1 + i;
                const double *urow = U + col * C + i1;
                const double  d    = urow[i];
                int64_t       g;
                if (sh.static_groups) {
                    g = (sh.act_order ? perm[col] : col) / G;
                } else {
                    g = col / G;
                    if (col % G == 0) /* from the outer W: it lacks this block's in-block updates (reference) */
                        for (int64_t r = r0; r < r1; r++)
                            lq__gptq_fit(&sh, W + r * C + col, LQ_MIN(G, C - col), &ss[r * ng + g], &zz[r * ng + g]);
                }
                for (int64_t r = r0; r < r1; r++) {
                    double      *wr = w1 + (r - r0) * BS;
                    const double x  = wr[i];
                    unsigned     u;
                    const double q = lq__gptq_quant(&sh, x, ss[r * ng + g], zz[r * ng + g], &u);
                    lq__put_code((uint8_t *)data + (uint64_t)r * rb, perm[col], sh.bits, u);
                    loss_rows[r] += (x - q) * (x - q) / (d * d) / 2;
                    const double err = (x - q) / d;
                    E[r * BS + i]    = err;
                    for (int64_t j = i + 1; j < cnt; j++) wr[j] -= err * urow[j];
                }
                if (g_idx && r0 == 0) g_idx[perm[col]] = (int32_t)g;
            }
        }
        /* lazy batch update W[:, i2:] -= Err · U[i1:i2, i2:] */
        gemm_sub(&ws, R, C - i2, cnt, E, BS, (mview){U + i1 * C + i2, C, false}, false, W + i2, C, false);
    }
    for (int64_t r = 0; r < R; r++) stats.loss += loss_rows[r];
    for (int64_t r = 0; r < R; r++)
        for (int64_t g = 0; g < ng; g++) {
            scales[r * ng + g] = ss[r * ng + g];
            if (zeros) zeros[r * ng + g] = (uint8_t)zz[r * ng + g];
        }
done:
    if (st) *st = stats;
    lq_free(ws.ap), lq_free(ws.buf), lq_free(W), lq_free(U), lq_free(T), lq_free(E), lq_free(W1), lq_free(tmp);
    lq_free(nd), lq_free(rowbuf), lq_free(loss_rows), lq_free(perm), lq_free(ss), lq_free(zz);
    return status;
}

/* ==== Hessian accumulation ==== */

/* H += alpha * x^T x. Chunks of HCHUNK rows (the last one shorter), HPASS chunks per pass over H: each chunk
 * transposed (cols x m); per strip of HSTRIP columns [s0, s1) one f32 GEMM per chunk (lq_matmul_cpu: one FMA chain
 * per output over the chunk's rows, in order) gives G_c[0:s1, s0:s1] = chunk^T chunk; then the upper triangle is
 * added to H in f64, chunk after chunk, and mirrored. Several chunks per pass only save memory traffic: each element
 * still receives H + alpha G_1 + alpha G_2 + ... in chunk order. */
#define HCHUNK 256
#define HPASS 4
#define HSTRIP 256
#define HTILE 32
lq_status lq_hessian_accum_cpu(double *H, const float *x, int64_t n, int64_t cols, double alpha, int n_threads) {
    LQ_RETURN_IF(!H || (!x && n) || n < 0 || cols <= 0, LQ_ERR_INVALID_ARG, "hessian: bad arguments");
    if (!n) return LQ_OK;
    const int64_t m_max = LQ_MIN((int64_t)HCHUNK * HPASS, n), sw_max = LQ_MIN((int64_t)HSTRIP, cols);
    const int     nt    = lq__cpu_threads(n_threads);
    float        *xt    = alloc_n(cols, m_max, sizeof(float));
    float        *y     = alloc_n(cols * HPASS, sw_max, sizeof(float));
    lq_status     st    = LQ_OK;
    LQ_GOTO_IF(!xt || !y, LQ_ERR_NOMEM, "hessian: out of memory for %lld columns", (long long)cols);
    for (int64_t p0 = 0; p0 < n; p0 += (int64_t)HCHUNK * HPASS) {
        const int64_t pm = LQ_MIN((int64_t)HCHUNK * HPASS, n - p0), nch = LQ_CEIL_DIV(pm, (int64_t)HCHUNK);
        /* chunk c (rows p0 + c*HCHUNK ..) transposed at xt + c * HCHUNK * cols, cols x m_c */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1 && cols * pm >= LQ_PAR_MIN_WORK)
#endif
        for (int64_t i = 0; i < cols; i++)
            for (int64_t c = 0; c < nch; c++) {
                const int64_t t0 = c * HCHUNK, m = LQ_MIN((int64_t)HCHUNK, pm - t0);
                float        *dst = xt + t0 * cols + i * m;
                for (int64_t t = 0; t < m; t++) dst[t] = x[(p0 + t0 + t) * cols + i];
            }
        for (int64_t s0 = 0; s0 < cols; s0 += HSTRIP) {
            const int64_t s1 = LQ_MIN(s0 + HSTRIP, cols), sw = s1 - s0;
            for (int64_t c = 0; c < nch; c++) {
                const int64_t   t0 = c * HCHUNK, m = LQ_MIN((int64_t)HCHUNK, pm - t0);
                const float    *xc = xt + t0 * cols;
                const lq_weight wt = {.dtype = LQ_DTYPE_F32, .data = xc + s0 * m, .rows = sw, .cols = m};
                LQ_GOTO_TRY(lq_matmul_cpu(y + c * s1 * sw, xc, s1, &wt, NULL, nt)); /* G_c (s1 x sw) */
            }
            /* in HTILE x HTILE tiles (the mirrored writes stay in cache); H[a][b] and H[b][a], a <= b, come from
             * G_c[a][b - s0] alone, so each element has one writer */
            const int64_t n_ti = LQ_CEIL_DIV(s1, (int64_t)HTILE), n_tj = LQ_CEIL_DIV(sw, (int64_t)HTILE);
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 4) num_threads(nt) if (nt > 1 && s1 * sw >= LQ_PAR_MIN_WORK)
#endif
            for (int64_t tu = 0; tu < n_ti * n_tj; tu++) {
                const int64_t i0 = tu / n_tj * HTILE, j0 = tu % n_tj * HTILE;
                const int64_t i1 = LQ_MIN(i0 + HTILE, s1), j1 = LQ_MIN(j0 + HTILE, sw);
                if (i0 > s0 + j1 - 1) continue; /* entirely below the diagonal */
                for (int64_t i = i0; i < i1; i++)
                    for (int64_t jj = LQ_MAX(j0, i - s0); jj < j1; jj++) {
                        const int64_t j = s0 + jj;
                        double        h = H[i * cols + j];
                        for (int64_t c = 0; c < nch; c++) h += alpha * (double)y[c * s1 * sw + i * sw + jj];
                        H[i * cols + j] = h;
                        if (j != i) {
                            double g = H[j * cols + i];
                            for (int64_t c = 0; c < nch; c++) g += alpha * (double)y[c * s1 * sw + i * sw + jj];
                            H[j * cols + i] = g;
                        }
                    }
            }
        }
    }
done:
    lq_free(xt);
    lq_free(y);
    return st;
}
