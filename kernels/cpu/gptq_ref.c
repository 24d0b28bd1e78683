/* gptq_ref.c : the GPTQ solver for one Linear (Frantar et al. 2022, arXiv
 * 2210.17323, Algorithm 1 with lazy batches), plain single-thread f64 loops
 * written from REFERENCE.md 6.1 (the IST-DASLab `fasterquant`). It is the
 * oracle for gptq_cpu.c and the CUDA solver; tests/interop/gptq_oracle.py is
 * the independent numpy version:
 *   dead columns -> H_jj = 1, W[:, j] = 0; static groups from the original W;
 *   act-order permutation (stable, decreasing diag H); H += damp*mean(diag)*I;
 *   L = chol(H); Hinv = L^-T L^-1; U = upper chol(Hinv);
 *   per block [i1, i2) of `block` columns, per column: refit the group at
 *   col % G == 0 from the outer W (which lacks this block's in-block
 *   updates: the reference's behaviour), q = Q(w), err = (w - q) / U_jj,
 *   W1[:, later] -= err * U[j, later]; after the block
 *   W[:, i2:] -= Err1 * U[i1:i2, i2:]; loss += (w - q)^2 / U_jj^2 / 2.
 * Q is the lq INT rule (quant_internal.h, the code of lq_quantize_ref) on the
 * f32 value of the f64 working weight, the scale rounded to scale_dtype
 * first; the mse option searches shrink factors 1 - i/100, i < 80, under
 * sum |Q(x) - x|^2.4, keeping the first minimum. Memory: five C x C f64
 * matrices; meant for tests, not for large layers. */
#include "gptq_internal.h"
#include "lq_internal.h"

#include <math.h>
#include <string.h>

lq_gptq_params lq_gptq_default_params(void) {
    lq_gptq_params p;
    memset(&p, 0, sizeof p);
    p.qtype       = LQ_QT_INT4_G128;
    p.damp        = 0.01;
    p.block_size  = 128;
    p.scale_dtype = LQ_DTYPE_F16;
    return p;
}

lq_status lq__gptq_check(const lq_gptq_params *p, const float *w, int64_t R, int64_t C, const double *H, void *data,
                         float *scales, uint8_t *zeros, int32_t *g_idx, lq__gptq_shape *sh) {
    LQ_TRY(lq__gptq_shape_of(p, w, R, C, H, data, scales, zeros, g_idx, sh));
    for (int64_t i = 0; i < R * C; i++)
        LQ_RETURN_IF(!isfinite(w[i]), LQ_ERR_INVALID_ARG, "gptq: weight row %lld has a non-finite value",
                     (long long)(i / C));
    for (int64_t i = 0; i < C * C; i++)
        LQ_RETURN_IF(!isfinite(H[i]), LQ_ERR_INVALID_ARG, "gptq: the Hessian has a non-finite value at (%lld, %lld)",
                     (long long)(i / C), (long long)(i % C));
    return LQ_OK;
}

lq_status lq__gptq_shape_of(const lq_gptq_params *p, const void *w, int64_t R, int64_t C, const void *H, void *data,
                            float *scales, uint8_t *zeros, int32_t *g_idx, lq__gptq_shape *sh) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(p ? p->qtype : LQ_QT_NONE);
    LQ_RETURN_IF(!p || !w || !H || !data || !scales || R <= 0 || C <= 0, LQ_ERR_INVALID_ARG,
                 "gptq: NULL buffer or empty matrix");
    uint64_t rc, cc;
    LQ_RETURN_IF(!lq__mul_u64((uint64_t)R, (uint64_t)C, &rc) || !lq__mul_u64((uint64_t)C, (uint64_t)C, &cc) ||
                     rc > (uint64_t)INT64_MAX / 8 || cc > (uint64_t)INT64_MAX / 8,
                 LQ_ERR_SHAPE, "gptq: a %lld x %lld layer is too large", (long long)R, (long long)C);
    LQ_RETURN_IF(!tr || tr->kind != LQ_QK_INT, LQ_ERR_SHAPE, "gptq: %s is not an integer type (int2..int8)",
                 tr ? tr->name : "?");
    const char *why = NULL;
    LQ_RETURN_IF(!lq_qtype_supports(p->qtype, C, &why), LQ_ERR_SHAPE, "gptq: %s cannot store %lld columns: %s",
                 tr->name, (long long)C, why);
    LQ_RETURN_IF(!tr->sym && !zeros, LQ_ERR_INVALID_ARG, "gptq: %s needs a zero-point buffer", tr->name);
    LQ_RETURN_IF(p->act_order && !p->static_groups && tr->group && !g_idx, LQ_ERR_INVALID_ARG,
                 "gptq: act-order without static groups needs a g_idx buffer");
    LQ_RETURN_IF(!(p->damp >= 0 && p->damp < 10), LQ_ERR_INVALID_ARG, "gptq: damp %g is outside [0, 10)", p->damp);
    LQ_RETURN_IF(p->block_size < 1 || p->block_size > 4096, LQ_ERR_INVALID_ARG, "gptq: block size %d", p->block_size);
    LQ_RETURN_IF(p->scale_dtype != LQ_DTYPE_F16 && p->scale_dtype != LQ_DTYPE_BF16 && p->scale_dtype != LQ_DTYPE_F32,
                 LQ_ERR_INVALID_ARG, "gptq: scales must be F16, BF16 or F32");
    memset(sh, 0, sizeof *sh);
    sh->R             = R;
    sh->C             = C;
    sh->bits          = tr->bits;
    sh->qmax          = (1 << tr->bits) - 1;
    sh->G             = tr->group ? tr->group : C;
    sh->ng            = lq_qtype_n_groups(p->qtype, C);
    sh->sym           = tr->sym;
    sh->mse           = p->mse;
    sh->act_order     = p->act_order;
    sh->static_groups = p->static_groups && tr->group;
    sh->sd            = p->scale_dtype;
    sh->block         = p->block_size;
    return LQ_OK;
}

void lq__gptq_fit(const lq__gptq_shape *sh, const double *x, int64_t n, float *s_out, int *z_out) {
    float lo = 0.f, hi = 0.f, amax = 0.f;
    for (int64_t k = 0; k < n; k++) {
        const float v = (float)x[k], a = fabsf(v);
        lo            = v < lo ? v : lo;
        hi            = v > hi ? v : hi;
        amax          = a > amax ? a : amax;
    }
    float s;
    int   z;
    lq__int_group_params(sh->bits, sh->sym, sh->sd, lo, hi, amax, 1.f, &s, &z);
    if (sh->mse) { /* the reference's grid: shrink p = 1 - i/100, i < 80, norm 2.4; first minimum kept */
        double best = INFINITY;
        for (int i = 0; i < 80; i++) {
            const float r = (float)(100 - i) / 100.0f;
            float       si;
            int         zi;
            lq__int_group_params(sh->bits, sh->sym, sh->sd, lo, hi, amax, r, &si, &zi);
            double e = 0;
            for (int64_t k = 0; k < n; k++) {
                unsigned     u;
                const double q = lq__gptq_quant(sh, x[k], si, zi, &u);
                e += pow(fabs(q - (double)(float)x[k]), 2.4);
            }
            if (e < best) {
                best = e;
                s    = si;
                z    = zi;
            }
        }
    }
    *s_out = s;
    *z_out = z;
}

bool lq__gptq_damping(const lq_gptq_params *p, int k, double max_diag, double *rel, double *abs_add) {
    if (k < 6) {
        *rel     = p->damp + 0.01 * k;
        *abs_add = 0;
        return true;
    }
    if (k < 12) {
        *rel     = p->damp + 0.05;
        *abs_add = 1e-6 * max_diag * pow(10.0, (double)(k - 6));
        return true;
    }
    return false;
}

void lq__gptq_act_order(const double *diag, int64_t C, int64_t *perm) {
    for (int64_t i = 0; i < C; i++) perm[i] = i;
    /* insertion sort on (diag descending, index ascending) is O(C^2) worst case: use a merge sort */
    int64_t *tmp = lq_malloc((size_t)C * sizeof *tmp);
    if (!tmp) { /* fallback: insertion sort (stable) */
        for (int64_t i = 1; i < C; i++) {
            const int64_t v = perm[i];
            int64_t       j = i;
            while (j > 0 && diag[perm[j - 1]] < diag[v]) {
                perm[j] = perm[j - 1];
                j--;
            }
            perm[j] = v;
        }
        return;
    }
    for (int64_t w = 1; w < C; w *= 2) {
        for (int64_t lo = 0; lo < C; lo += 2 * w) {
            const int64_t mid = LQ_MIN(lo + w, C), hi = LQ_MIN(lo + 2 * w, C);
            int64_t       a = lo, b = mid, o = lo;
            while (a < mid && b < hi) tmp[o++] = diag[perm[b]] > diag[perm[a]] ? perm[b++] : perm[a++];
            while (a < mid) tmp[o++] = perm[a++];
            while (b < hi) tmp[o++] = perm[b++];
        }
        memcpy(perm, tmp, (size_t)C * sizeof *perm);
    }
    lq_free(tmp);
}

/* lower Cholesky of a (n x n, full, row-major) into l; false when not positive definite */
static bool cholesky_lower(const double *a, int64_t n, double *l) {
    memset(l, 0, (size_t)(n * n) * sizeof *l);
    for (int64_t j = 0; j < n; j++) {
        double d = a[j * n + j];
        for (int64_t k = 0; k < j; k++) d -= l[j * n + k] * l[j * n + k];
        if (!(d > 0) || !isfinite(d)) return false;
        const double ljj = sqrt(d);
        l[j * n + j]     = ljj;
        for (int64_t i = j + 1; i < n; i++) {
            double v = a[i * n + j];
            for (int64_t k = 0; k < j; k++) v -= l[i * n + k] * l[j * n + k];
            l[i * n + j] = v / ljj;
        }
    }
    return true;
}

/* U = upper Cholesky factor of H^-1 for the damped, permuted H; false when not positive definite */
static bool hinv_upper(const double *h, int64_t n, double *u, double *t1, double *t2) {
    if (!cholesky_lower(h, n, t1)) return false;
    /* t2 = L^-1 (lower), forward substitution column by column */
    memset(t2, 0, (size_t)(n * n) * sizeof *t2);
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = j; i < n; i++) {
            double v = i == j ? 1.0 : 0.0;
            for (int64_t k = j; k < i; k++) v -= t1[i * n + k] * t2[k * n + j];
            t2[i * n + j] = v / t1[i * n + i];
        }
    /* t1 = Hinv = L^-T L^-1 */
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double v = 0;
            for (int64_t k = LQ_MAX(i, j); k < n; k++) v += t2[k * n + i] * t2[k * n + j];
            t1[i * n + j] = v;
        }
    /* upper Cholesky of Hinv = (lower Cholesky)^T */
    if (!cholesky_lower(t1, n, t2)) return false;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) u[i * n + j] = j >= i ? t2[j * n + i] : 0.0;
    return true;
}

/* n1 * n2 elements of `size` bytes, overflow-checked; NULL on failure */
static void *alloc_n(int64_t n1, int64_t n2, size_t size) {
    size_t a, b;
    if (n1 < 0 || n2 < 0 || !lq__mul_size((size_t)n1, (size_t)n2, &a) || !lq__mul_size(a, size, &b)) return NULL;
    return lq_malloc(b ? b : 1);
}

lq_status lq_gptq_ref(const lq_gptq_params *p, const float *w, int64_t R, int64_t C, const double *H, void *data,
                      float *scales, uint8_t *zeros, int32_t *g_idx, lq_gptq_stats *st) {
    lq__gptq_shape sh;
    LQ_TRY(lq__gptq_check(p, w, R, C, H, data, scales, zeros, g_idx, &sh));
    lq_gptq_stats stats;
    memset(&stats, 0, sizeof stats);
    const int64_t  G = sh.G, ng = sh.ng, BS = sh.block;
    const uint64_t rb = lq_qtype_row_bytes(p->qtype, C);
    double        *W = alloc_n(R, C, sizeof(double)), *A = alloc_n(C, C, sizeof(double));
    double        *B = alloc_n(C, C, sizeof(double)), *U = alloc_n(C, C, sizeof(double));
    double        *T1 = alloc_n(C, C, sizeof(double)), *T2 = alloc_n(C, C, sizeof(double));
    double        *W1 = alloc_n(R, BS, sizeof(double)), *E1 = alloc_n(R, BS, sizeof(double));
    int64_t       *perm = alloc_n(C, 1, sizeof(int64_t));
    float         *ss   = alloc_n(R, ng, sizeof(float));
    int           *zz   = alloc_n(R, ng, sizeof(int));
    lq_status      status = LQ_OK;
    if (!W || !A || !B || !U || !T1 || !T2 || !W1 || !E1 || !perm || !ss || !zz) {
        LQ_LOG_ERR("gptq: out of memory for a %lld x %lld layer", (long long)R, (long long)C);
        status = LQ_ERR_NOMEM;
        goto done;
    }
    for (int64_t i = 0; i < R * C; i++) W[i] = (double)w[i];
    /* (1) dead columns */
    for (int64_t j = 0; j < C; j++)
        if (H[j * C + j] == 0) {
            stats.dead_cols++;
            for (int64_t r = 0; r < R; r++) W[r * C + j] = 0;
        }
    /* (2) static groups from the original (dead-zeroed) W, original column order */
    if (sh.static_groups)
        for (int64_t r = 0; r < R; r++)
            for (int64_t g = 0; g < ng; g++)
                lq__gptq_fit(&sh, W + r * C + g * G, LQ_MIN(G, C - g * G), &ss[r * ng + g], &zz[r * ng + g]);
    /* (3) act-order */
    for (int64_t j = 0; j < C; j++) perm[j] = j;
    memcpy(A, H, (size_t)(C * C) * sizeof *A);
    for (int64_t j = 0; j < C; j++)
        if (A[j * C + j] == 0) A[j * C + j] = 1;
    if (sh.act_order) {
        for (int64_t j = 0; j < C; j++) T1[j] = A[j * C + j];
        lq__gptq_act_order(T1, C, perm);
    }
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < C; j++) B[i * C + j] = A[perm[i] * C + perm[j]];
    memcpy(A, B, (size_t)(C * C) * sizeof *A);
    for (int64_t r = 0; r < R; r++) {
        for (int64_t j = 0; j < C; j++) T1[j] = W[r * C + perm[j]];
        memcpy(W + r * C, T1, (size_t)C * sizeof *W);
    }
    /* (4), (5) damping with retries, U = upper chol(H^-1) */
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
        memcpy(B, A, (size_t)(C * C) * sizeof *B);
        for (int64_t j = 0; j < C; j++) B[j * C + j] += rel * mean + add;
        ok = hinv_upper(B, C, U, T1, T2);
        stats.damp    = rel;
        stats.retries = k;
    }
    if (!ok) {
        LQ_LOG_ERR("gptq: the %lld x %lld Hessian stays singular after %d damping increases", (long long)C,
                   (long long)C, stats.retries);
        status = LQ_ERR_NUMERIC;
        goto done;
    }
    /* (6) the column loop */
    memset(data, 0, (size_t)(rb * (uint64_t)R));
    for (int64_t i1 = 0; i1 < C; i1 += BS) {
        const int64_t i2 = LQ_MIN(i1 + BS, C), cnt = i2 - i1;
        for (int64_t r = 0; r < R; r++)
            for (int64_t i = 0; i < cnt; i++) W1[r * BS + i] = W[r * C + i1 + i];
        for (int64_t i = 0; i < cnt; i++) {
            const int64_t col = i1 + i;
            const double  d   = U[col * C + col];
            int64_t       g;
            if (sh.static_groups) {
                g = (sh.act_order ? perm[col] : col) / G;
            } else {
                g = col / G;
                if (col % G == 0)
                    for (int64_t r = 0; r < R; r++) {
                        lq__gptq_fit(&sh, W + r * C + col, LQ_MIN(G, C - col), &ss[r * ng + g], &zz[r * ng + g]);
                    }
            }
            for (int64_t r = 0; r < R; r++) {
                const float  s = ss[r * ng + g];
                const int    z = zz[r * ng + g];
                const double x = W1[r * BS + i];
                unsigned     u;
                const double q = lq__gptq_quant(&sh, x, s, z, &u);
                lq__put_code((uint8_t *)data + (uint64_t)r * rb, perm[col], sh.bits, u);
                stats.loss += (x - q) * (x - q) / (d * d) / 2;
                const double err = (x - q) / d;
                E1[r * BS + i] = err;
                for (int64_t j = i + 1; j < cnt; j++) W1[r * BS + j] -= err * U[col * C + i1 + j];
            }
            if (g_idx) g_idx[perm[col]] = (int32_t)g;
        }
        for (int64_t r = 0; r < R; r++)
            for (int64_t j = i2; j < C; j++) {
                double acc = 0;
                for (int64_t i = 0; i < cnt; i++) acc += E1[r * BS + i] * U[(i1 + i) * C + j];
                W[r * C + j] -= acc;
            }
    }
    for (int64_t r = 0; r < R; r++)
        for (int64_t g = 0; g < ng; g++) {
            scales[r * ng + g] = ss[r * ng + g];
            if (zeros) zeros[r * ng + g] = (uint8_t)zz[r * ng + g];
        }
done:
    if (st) *st = stats;
    lq_free(W), lq_free(A), lq_free(B), lq_free(U), lq_free(T1), lq_free(T2), lq_free(W1), lq_free(E1);
    lq_free(perm), lq_free(ss), lq_free(zz);
    return status;
}

void lq_hessian_accum_ref(double *H, const float *x, int64_t n, int64_t cols, double alpha) {
    for (int64_t i = 0; i < cols; i++)
        for (int64_t j = 0; j < cols; j++) {
            double acc = 0;
            for (int64_t t = 0; t < n; t++) acc += (double)x[t * cols + i] * (double)x[t * cols + j];
            H[i * cols + j] += alpha * acc;
        }
}
