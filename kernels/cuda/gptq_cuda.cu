/* gptq_cuda.cu : GPTQ on the device (lq_cuda_gptq) and the Hessian
 * accumulation (lq_cuda_hessian_accum); semantics of lq_gptq_cpu.
 *
 *   host: shapes, dead columns and the act-order permutation (from diag H),
 *         the damping schedule, packing the codes.
 *   device: M = J P^T (H + damping) P J gathered in f64; M = L L^T
 *         (cusolverDnDpotrf); X = L^-1 (cusolverDnXtrtri); U = J X J, the
 *         upper Cholesky factor of the permuted H^-1 (see gptq_cpu.c);
 *         per block of columns one thread per row runs the reference's
 *         column loop (group fits from the outer W, f32 quantizer
 *         bit-identical to quantize_ref.c via __f*_rn arithmetic), then
 *         W[:, i2:] -= E1 U[i1:i2, i2:] as one cublasDgemm. */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cusolverDn.h>

#include "llama_cuda_internal.cuh"
#include "lq_cuda_common.cuh"

extern "C" {
#include "../cpu/gptq_internal.h"
}

#define GPTQ_MAX_BLOCK 256
#define ROW_THREADS 64

#define LQ_CUSOLVER_TRY(expr)                                                                                  \
    do {                                                                                                       \
        const cusolverStatus_t lq__s = (expr);                                                                 \
        if (lq__s != CUSOLVER_STATUS_SUCCESS) {                                                                \
            lq__log(LQ_LOG_ERROR, __func__, "%s:%d: %s: cuSOLVER status %d", __FILE__, __LINE__, #expr,        \
                    (int)lq__s);                                                                               \
            st = LQ_ERR_CUDA;                                                                                  \
            goto done;                                                                                         \
        }                                                                                                      \
    } while (0)
#define GOTO_CUDA(expr)                                                                                        \
    do {                                                                                                       \
        const cudaError_t lq__e = (expr);                                                                      \
        if (lq__e != cudaSuccess) {                                                                            \
            lq__log(LQ_LOG_ERROR, __func__, "%s:%d: %s: %s", __FILE__, __LINE__, #expr, cudaGetErrorString(lq__e)); \
            (void)cudaGetLastError();                                                                          \
            st = LQ_ERR_CUDA;                                                                                  \
            goto done;                                                                                         \
        }                                                                                                      \
    } while (0)
#define GOTO_BLAS(expr)                                                                                        \
    do {                                                                                                       \
        const cublasStatus_t lq__b = (expr);                                                                   \
        if (lq__b != CUBLAS_STATUS_SUCCESS) {                                                                  \
            lq__log(LQ_LOG_ERROR, __func__, "%s:%d: %s: %s", __FILE__, __LINE__, #expr,                        \
                    cublasGetStatusString(lq__b));                                                             \
            st = LQ_ERR_CUDA;                                                                                  \
            goto done;                                                                                         \
        }                                                                                                      \
    } while (0)

typedef struct {
    int      bits, qmax;
    bool     sym, mse;
    int      sd; /* 0 f16, 1 bf16, 2 f32 */
} dq_spec;

/* ---- the lq INT rule, bit for bit (quantize_ref.c: round_scale, int_params, int_code) ---- */
__device__ static float d_round_scale(float s, int sd) {
    if (sd == 0) {
        unsigned short h = __half_as_ushort(__float2half_rn(s));
        if (h == 0) h = 0x0001u;
        if (h >= 0x7C00u) h = 0x7BFFu;
        return __half2float(__ushort_as_half(h));
    }
    if (sd == 1) {
        unsigned short h = __bfloat16_as_ushort(__float2bfloat16_rn(s));
        if (h == 0) h = 0x0001u;
        if (h >= 0x7F80u) h = 0x7F7Fu;
        return __bfloat162float(__ushort_as_bfloat16(h));
    }
    if (s == 0.f) return 1.40129846e-45f;
    return s > 3.40282347e38f ? 3.40282347e38f : s;
}

__device__ static void d_params(const dq_spec &q, float lo, float hi, float amax, float r, float *s, int *z) {
    if (q.sym) {
        const float hq = __fmul_rn((float)q.qmax, 0.5f);
        *s             = amax == 0.f ? 1.f : d_round_scale(__fdiv_rn(__fmul_rn(amax, r), hq), q.sd);
        *z             = 1 << (q.bits - 1);
        return;
    }
    if (lo == hi) {
        *s = 1.f;
        *z = 0;
        return;
    }
    const float lr = __fmul_rn(lo, r), hr = __fmul_rn(hi, r);
    const float sc = d_round_scale(__fdiv_rn(__fsub_rn(hr, lr), (float)q.qmax), q.sd);
    const float zf = rintf(__fdiv_rn(-lr, sc));
    *s             = sc;
    *z             = zf < 0.f ? 0 : zf > (float)q.qmax ? q.qmax : (int)zf;
}

__device__ static double d_quant(const dq_spec &q, double w, float s, int z, unsigned *code) {
    float v = __fadd_rn(rintf(__fdiv_rn((float)w, s)), (float)z);
    v       = v > 0.f ? v : 0.f;
    v       = v < (float)q.qmax ? v : (float)q.qmax;
    *code   = (unsigned)v;
    return (double)__fmul_rn(s, (float)((int)*code - z));
}

/* group parameters of x[0..n) (stride 1) */
__device__ static void d_fit(const dq_spec &q, const double *x, int64_t n, float *s_out, int *z_out) {
    float lo = 0.f, hi = 0.f, amax = 0.f;
    for (int64_t k = 0; k < n; k++) {
        const float v = (float)x[k], a = fabsf(v);
        lo            = v < lo ? v : lo;
        hi            = v > hi ? v : hi;
        amax          = a > amax ? a : amax;
    }
    float s;
    int   z;
    d_params(q, lo, hi, amax, 1.f, &s, &z);
    if (q.mse) {
        double best = INFINITY;
        for (int i = 0; i < 80; i++) {
            const float r = __fdiv_rn((float)(100 - i), 100.0f);
            float       si;
            int         zi;
            d_params(q, lo, hi, amax, r, &si, &zi);
            double e = 0;
            for (int64_t k = 0; k < n; k++) {
                unsigned     u;
                const double qq = d_quant(q, x[k], si, zi, &u);
                e += pow(fabs(qq - (double)(float)x[k]), 2.4);
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

/* W (R x C f64, permuted, dead columns 0) from w (f32, original order); static fits on the original order */
__global__ static void prep_kernel(double *W, const float *w, const int64_t *perm, const unsigned char *dead, int64_t R,
                                   int64_t C, dq_spec q, bool stat, int64_t G, int64_t ng, float *ss, int *zz,
                                   double *scratch) {
    const int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= R) return;
    double *orig = scratch + r * C;
    for (int64_t j = 0; j < C; j++) orig[j] = dead[j] ? 0.0 : (double)w[r * C + j];
    if (stat)
        for (int64_t g = 0; g < ng; g++) {
            const int64_t o = g * G, n = C - o < G ? C - o : G;
            d_fit(q, orig + o, n, &ss[r * ng + g], &zz[r * ng + g]);
        }
    for (int64_t j = 0; j < C; j++) W[r * C + j] = orig[perm[j]];
}

/* M[i][j] = Hp[n-1-i][n-1-j] (+ add on the diagonal), Hp = the permuted H with dead diagonals 1 */
__global__ static void gather_kernel(double *M, const double *H, const int64_t *perm, int64_t n, double add) {
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= n * n) return;
    const int64_t i = idx / n, j = idx % n, a = perm[n - 1 - i], b = perm[n - 1 - j];
    double        v = H[a * n + b];
    if (i == j) v = (v == 0.0 ? 1.0 : v) + add;
    M[idx] = v;
}

/* U (row-major) = J X J where X (column-major) = L^-1, lower */
__global__ static void rotate_kernel(double *U, const double *X, int64_t n) {
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= n * n) return;
    const int64_t i = idx / n, j = idx % n;
    U[idx]          = i > j ? 0.0 : X[(n - 1 - i) + (n - 1 - j) * n];
}

/* one block [i1, i1 + cnt) of the column loop; one thread per row */
__global__ static void __launch_bounds__(ROW_THREADS)
    block_kernel(double *W, const double *U, const int64_t *perm, unsigned char *codes, float *ss, int *zz,
                 double *E1, double *loss, int64_t R, int64_t C, int64_t i1, int64_t cnt, int64_t BS, dq_spec q,
                 bool stat, bool act, int64_t G, int64_t ng) {
    const int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= R) return;
    double  w1[GPTQ_MAX_BLOCK];
    double *wr = W + r * C;
    for (int64_t i = 0; i < cnt; i++) w1[i] = wr[i1 + i];
    double l = loss[r];
    for (int64_t i = 0; i < cnt; i++) {
        const int64_t col  = i1 + i;
        const double *urow = U + col * C + i1;
        const double  d    = urow[i];
        int64_t       g;
        if (stat) {
            g = (act ? perm[col] : col) / G;
        } else {
            g = col / G;
            if (col % G == 0) d_fit(q, wr + col, C - col < G ? C - col : G, &ss[r * ng + g], &zz[r * ng + g]);
        }
        unsigned     u;
        const double x = w1[i];
        const double qv = d_quant(q, x, ss[r * ng + g], zz[r * ng + g], &u);
        codes[r * C + perm[col]] = (unsigned char)u;
        l += (x - qv) * (x - qv) / (d * d) / 2;
        const double err = (x - qv) / d;
        E1[r * BS + i]   = err;
        for (int64_t j = i + 1; j < cnt; j++) w1[j] -= err * urow[j];
    }
    loss[r] = l;
}

extern "C" lq_status lq_cuda_gptq(const lq_gptq_params *p, const float *w, int64_t R, int64_t C, const double *H,
                                  void *data, float *scales, uint8_t *zeros, int32_t *g_idx, lq_gptq_stats *st_out) {
    lq__gptq_shape sh;
    LQ_TRY(lq__gptq_shape_of(p, w, R, C, H, data, scales, zeros, g_idx, &sh));
    LQ_RETURN_IF(sh.block > GPTQ_MAX_BLOCK, LQ_ERR_UNSUPPORTED, "gptq (cuda): block size %d > %d", sh.block,
                 GPTQ_MAX_BLOCK);
    const int64_t  G = sh.G, ng = sh.ng, BS = sh.block;
    const uint64_t rb = lq_qtype_row_bytes(p->qtype, C);
    lq_gptq_stats  stats;
    memset(&stats, 0, sizeof stats);
    lq_status          st   = LQ_OK;
    cublasHandle_t     blas = NULL;
    cusolverDnHandle_t sol  = NULL;
    double *dW = NULL, *dM = NULL, *dU = NULL, *dE = NULL, *dLoss = NULL, *dScr = NULL;
    int64_t *dPerm = NULL;
    unsigned char *dDead = NULL, *dCodes = NULL;
    float  *dS = NULL;
    int    *dZ = NULL, *dInfo = NULL;
    void   *dWork = NULL, *hWork = NULL;
    double *diag  = (double *)lq_malloc((size_t)C * sizeof(double));
    int64_t *perm = (int64_t *)lq_malloc((size_t)C * sizeof(int64_t));
    unsigned char *dead = (unsigned char *)lq_malloc((size_t)C);
    unsigned char *codes = (unsigned char *)lq_malloc((size_t)(R * C));
    float  *hs = (float *)lq_malloc((size_t)(R * ng) * sizeof(float));
    int    *hz = (int *)lq_malloc((size_t)(R * ng) * sizeof(int));
    double *hl = (double *)lq_malloc((size_t)R * sizeof(double));
    bool    ok = false;
    double  mean = 0, maxd = 0;
    const dq_spec q = {sh.bits, sh.qmax, sh.sym, sh.mse,
                       sh.sd == LQ_DTYPE_F16 ? 0 : sh.sd == LQ_DTYPE_BF16 ? 1 : 2};
    if (!diag || !perm || !dead || !codes || !hs || !hz || !hl) {
        LQ_LOG_ERR("gptq (cuda): out of host memory");
        st = LQ_ERR_NOMEM;
        goto done;
    }
    GOTO_CUDA(cudaMemcpy2D(diag, sizeof(double), H, (size_t)(C + 1) * sizeof(double), sizeof(double), (size_t)C,
                           cudaMemcpyDeviceToHost));
    for (int64_t j = 0; j < C; j++) {
        if (!isfinite(diag[j])) {
            LQ_LOG_ERR("gptq (cuda): the Hessian has a non-finite diagonal at %lld", (long long)j);
            st = LQ_ERR_INVALID_ARG;
            goto done;
        }
        dead[j] = diag[j] == 0;
        stats.dead_cols += dead[j];
        if (dead[j]) diag[j] = 1;
        mean += diag[j];
        maxd = fmax(maxd, fabs(diag[j]));
        perm[j] = j;
    }
    mean /= (double)C;
    if (sh.act_order) lq__gptq_act_order(diag, C, perm);
    GOTO_CUDA(cudaMalloc((void **)&dW, (size_t)(R * C) * sizeof(double)));
    GOTO_CUDA(cudaMalloc((void **)&dScr, (size_t)(R * C) * sizeof(double)));
    GOTO_CUDA(cudaMalloc((void **)&dM, (size_t)(C * C) * sizeof(double)));
    GOTO_CUDA(cudaMalloc((void **)&dU, (size_t)(C * C) * sizeof(double)));
    GOTO_CUDA(cudaMalloc((void **)&dE, (size_t)(R * BS) * sizeof(double)));
    GOTO_CUDA(cudaMalloc((void **)&dLoss, (size_t)R * sizeof(double)));
    GOTO_CUDA(cudaMalloc((void **)&dPerm, (size_t)C * sizeof(int64_t)));
    GOTO_CUDA(cudaMalloc((void **)&dDead, (size_t)C));
    GOTO_CUDA(cudaMalloc((void **)&dCodes, (size_t)(R * C)));
    GOTO_CUDA(cudaMalloc((void **)&dS, (size_t)(R * ng) * sizeof(float)));
    GOTO_CUDA(cudaMalloc((void **)&dZ, (size_t)(R * ng) * sizeof(int)));
    GOTO_CUDA(cudaMalloc((void **)&dInfo, sizeof(int)));
    GOTO_CUDA(cudaMemcpy(dPerm, perm, (size_t)C * sizeof(int64_t), cudaMemcpyHostToDevice));
    GOTO_CUDA(cudaMemcpy(dDead, dead, (size_t)C, cudaMemcpyHostToDevice));
    GOTO_CUDA(cudaMemset(dLoss, 0, (size_t)R * sizeof(double)));
    prep_kernel<<<(unsigned)((R + ROW_THREADS - 1) / ROW_THREADS), ROW_THREADS>>>(
        dW, w, dPerm, dDead, R, C, q, sh.static_groups, G, ng, dS, dZ, dScr);
    GOTO_CUDA(cudaGetLastError());
    GOTO_BLAS(cublasCreate(&blas));
    GOTO_BLAS(cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH));
    LQ_CUSOLVER_TRY(cusolverDnCreate(&sol));
    {
        int    lwork = 0;
        size_t dws = 0, hws = 0;
        LQ_CUSOLVER_TRY(cusolverDnDpotrf_bufferSize(sol, CUBLAS_FILL_MODE_LOWER, (int)C, dM, (int)C, &lwork));
        LQ_CUSOLVER_TRY(cusolverDnXtrtri_bufferSize(sol, CUBLAS_FILL_MODE_LOWER, CUBLAS_DIAG_NON_UNIT, C, CUDA_R_64F,
                                                    dM, C, &dws, &hws));
        const size_t need = LQ_MAX((size_t)lwork * sizeof(double), dws);
        GOTO_CUDA(cudaMalloc(&dWork, need ? need : 1));
        hWork = lq_malloc(hws ? hws : 1);
        if (!hWork) {
            st = LQ_ERR_NOMEM;
            goto done;
        }
        const unsigned nn = (unsigned)((C * C + 255) / 256);
        for (int k = 0; !ok; k++) {
            double rel, add;
            if (!lq__gptq_damping(p, k, maxd, &rel, &add)) break;
            stats.damp    = rel;
            stats.retries = k;
            gather_kernel<<<nn, 256>>>(dM, H, dPerm, C, rel * mean + add);
            GOTO_CUDA(cudaGetLastError());
            int info = 0;
            LQ_CUSOLVER_TRY(cusolverDnDpotrf(sol, CUBLAS_FILL_MODE_LOWER, (int)C, dM, (int)C, (double *)dWork, lwork,
                                             dInfo));
            GOTO_CUDA(cudaMemcpy(&info, dInfo, sizeof info, cudaMemcpyDeviceToHost));
            if (info != 0) continue;
            LQ_CUSOLVER_TRY(cusolverDnXtrtri(sol, CUBLAS_FILL_MODE_LOWER, CUBLAS_DIAG_NON_UNIT, C, CUDA_R_64F, dM, C,
                                             dWork, dws, hWork, hws, dInfo));
            GOTO_CUDA(cudaMemcpy(&info, dInfo, sizeof info, cudaMemcpyDeviceToHost));
            if (info != 0) continue;
            rotate_kernel<<<nn, 256>>>(dU, dM, C);
            GOTO_CUDA(cudaGetLastError());
            ok = true;
        }
    }
    if (!ok) {
        LQ_LOG_ERR("gptq (cuda): the %lld x %lld Hessian stays singular after %d damping increases", (long long)C,
                   (long long)C, stats.retries);
        st = LQ_ERR_NUMERIC;
        goto done;
    }
    for (int64_t i1 = 0; i1 < C; i1 += BS) {
        const int64_t i2 = LQ_MIN(i1 + BS, C), cnt = i2 - i1;
        block_kernel<<<(unsigned)((R + ROW_THREADS - 1) / ROW_THREADS), ROW_THREADS>>>(
            dW, dU, dPerm, dCodes, dS, dZ, dE, dLoss, R, C, i1, cnt, BS, q, sh.static_groups, sh.act_order, G, ng);
        GOTO_CUDA(cudaGetLastError());
        if (i2 < C) {
            const double one = 1.0, minus = -1.0;
            GOTO_BLAS(cublasDgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)(C - i2), (int)R, (int)cnt, &minus,
                                  dU + i1 * C + i2, (int)C, dE, (int)BS, &one, dW + i2, (int)C));
        }
    }
    GOTO_CUDA(cudaMemcpy(codes, dCodes, (size_t)(R * C), cudaMemcpyDeviceToHost));
    GOTO_CUDA(cudaMemcpy(hs, dS, (size_t)(R * ng) * sizeof(float), cudaMemcpyDeviceToHost));
    GOTO_CUDA(cudaMemcpy(hz, dZ, (size_t)(R * ng) * sizeof(int), cudaMemcpyDeviceToHost));
    GOTO_CUDA(cudaMemcpy(hl, dLoss, (size_t)R * sizeof(double), cudaMemcpyDeviceToHost));
    memset(data, 0, (size_t)(rb * (uint64_t)R));
    for (int64_t r = 0; r < R; r++) {
        uint8_t *row = (uint8_t *)data + (uint64_t)r * rb;
        for (int64_t k = 0; k < C; k++) lq__put_code(row, k, sh.bits, codes[r * C + k]);
        for (int64_t g = 0; g < ng; g++) {
            scales[r * ng + g] = hs[r * ng + g];
            if (zeros) zeros[r * ng + g] = (uint8_t)hz[r * ng + g];
        }
        stats.loss += hl[r];
    }
    if (g_idx)
        for (int64_t c = 0; c < C; c++)
            g_idx[perm[c]] = (int32_t)(sh.static_groups ? (sh.act_order ? perm[c] : c) / G : c / G);
done:
    if (st_out) *st_out = stats;
    if (sol) cusolverDnDestroy(sol);
    if (blas) cublasDestroy(blas);
    cudaFree(dW), cudaFree(dM), cudaFree(dU), cudaFree(dE), cudaFree(dLoss), cudaFree(dScr), cudaFree(dPerm);
    cudaFree(dDead), cudaFree(dCodes), cudaFree(dS), cudaFree(dZ), cudaFree(dInfo), cudaFree(dWork);
    lq_free(hWork), lq_free(diag), lq_free(perm), lq_free(dead), lq_free(codes), lq_free(hs), lq_free(hz), lq_free(hl);
    return st;
}

/* ---- Hessian accumulation ---- */
__global__ static void add_f32_to_f64(double *H, const float *S, int64_t n, double alpha) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) H[i] += alpha * (double)S[i];
}

extern "C" lq_status lq_cuda_hessian_accum(double *H, const float *x, int64_t n, int64_t cols, double alpha) {
    LQ_RETURN_IF(!H || (!x && n) || n < 0 || cols <= 0, LQ_ERR_INVALID_ARG, "hessian (cuda): bad arguments");
    static cublasHandle_t blas  = NULL; /* one per process, like the runner's */
    static float         *S     = NULL;
    static int64_t        s_cap = 0;
    if (!blas) LQ_TRY(lq__cuda_blas_create(&blas));
    if (s_cap < cols * cols) {
        if (S) cudaFree(S);
        S     = NULL;
        s_cap = 0;
        LQ_CUDA_TRY(cudaMalloc((void **)&S, (size_t)(cols * cols) * sizeof(float)));
        s_cap = cols * cols;
    }
    const float one = 1.f, zero = 0.f;
    for (int64_t t0 = 0; t0 < n; t0 += 256) {
        const int64_t m = LQ_MIN((int64_t)256, n - t0);
        /* column-major: X^T is cols x m (ld cols); S = X^T (X^T)^T */
        LQ_CUBLAS_TRY(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_T, (int)cols, (int)cols, (int)m, &one, x + t0 * cols,
                                  (int)cols, x + t0 * cols, (int)cols, &zero, S, (int)cols));
        add_f32_to_f64<<<lq__grid_for(cols * cols, 256), 256>>>(H, S, cols * cols, alpha);
        LQ_CUDA_TRY(cudaGetLastError());
    }
    LQ_CUDA_TRY(cudaDeviceSynchronize());
    return LQ_OK;
}
