/* bench_gptq_cuda.cu : lq__bench_cuda_gptq(), lq_cuda_gptq on Linear shapes
 * of a 1B-class Llama (rows x cols: 2048x2048, 5632x2048, 2048x5632)
 * (bench_cuda.h).
 *
 * The ceiling is one cublasDgemm of the same size, (rows x cols) · (cols x
 * cols), measured in the same run: GPTQ's lazy-batch updates add up to half
 * of that product's flops, and the Cholesky, the inverse and the column loop
 * come on top, so the ratio says how far the solver is from pure f64 GEMM
 * speed. H = (2/n) X^T X for a random X (4096 x cols, f32, columns of
 * unequal scale) through lq_cuda_hessian_accum (timed too, against one
 * cublasSgemm of the same size); W is random. Each GPTQ figure is the best
 * of REPS synchronous calls after one warm-up call (wall clock: the call
 * includes its output copies to the host). A correctness check against
 * lq_gptq_cpu runs first. */
#include "bench_cuda.h"
#include "llama_cuda_internal.cuh"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REPS   3
#define N_CAL  4096
#define BLOCK  256

/* uniform in [-1, 1) from a hash of (i, seed), times scale(i % cols) */
static __global__ void fill_uniform(float *p, int64_t n, int64_t cols, float amp, int col_scale, uint32_t seed) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        uint32_t h = (uint32_t)i * 0x9E3779B1u ^ seed ^ (uint32_t)(i >> 32) * 0x85EBCA77u;
        h ^= h >> 16, h *= 0x7FEB352Du, h ^= h >> 15, h *= 0x846CA68Bu, h ^= h >> 16;
        const float u = (float)(h >> 8) * (1.f / 8388608.f) - 1.f;
        p[i]          = amp * u * (col_scale ? 1.f + (float)((i % cols) % 13) * 0.25f : 1.f);
    }
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* lq_cuda_gptq against lq_gptq_cpu on a small layer: >= 99.5 % equal codes, loss within 1e-3 */
static bool check(FILE *out) {
    const int64_t  R = 96, C = 384, n = 2 * C;
    const lq_qtype t = LQ_QT_INT4_G128;
    const int64_t  rb = (int64_t)lq_qtype_row_bytes(t, C), ns = lq_qtype_n_scales(t, R, C);
    float *const   w = (float *)malloc(sizeof(float) * (size_t)(R * C)), *const x = (float *)malloc(sizeof(float) * (size_t)(n * C));
    double *const  H  = (double *)calloc((size_t)(C * C), sizeof(double));
    uint8_t *const d1 = (uint8_t *)malloc((size_t)(R * rb)), *const d2 = (uint8_t *)malloc((size_t)(R * rb));
    float *const   s1 = (float *)malloc(sizeof(float) * (size_t)ns), *const s2 = (float *)malloc(sizeof(float) * (size_t)ns);
    int32_t *const g1 = (int32_t *)malloc(sizeof(int32_t) * (size_t)C), *const g2 = (int32_t *)malloc(sizeof(int32_t) * (size_t)C);
    void          *dw = NULL, *dh = NULL;
    bool           ok = w && x && H && d1 && d2 && s1 && s2 && g1 && g2;
    lq_gptq_stats  a, b;
    if (ok) {
        for (int64_t i = 0; i < R * C; i++) w[i] = 0.02f * ((float)(mix((uint64_t)i) % 2001) - 1000.f) / 1000.f;
        for (int64_t i = 0; i < n * C; i++)
            x[i] = ((float)(mix(7777 + (uint64_t)i) % 2001) - 1000.f) / 1000.f * (1.f + (float)(i % C % 5));
        lq_hessian_accum_ref(H, x, n, C, 2.0 / (double)n);
        lq_gptq_params p = lq_gptq_default_params();
        p.qtype = t, p.act_order = true;
        ok = lq_gptq_cpu(&p, w, R, C, H, d1, s1, NULL, g1, &a, 0) == LQ_OK &&
             lq_cuda_malloc(&dw, sizeof(float) * (size_t)(R * C)) == LQ_OK &&
             lq_cuda_malloc(&dh, sizeof(double) * (size_t)(C * C)) == LQ_OK &&
             lq_cuda_memcpy_h2d(dw, w, sizeof(float) * (size_t)(R * C)) == LQ_OK &&
             lq_cuda_memcpy_h2d(dh, H, sizeof(double) * (size_t)(C * C)) == LQ_OK &&
             lq_cuda_gptq(&p, (const float *)dw, R, C, (const double *)dh, d2, s2, NULL, g2, &b) == LQ_OK;
    }
    double same = 0;
    if (ok) {
        for (int64_t r = 0; r < R; r++)
            for (int64_t k = 0; k < C; k++) {
                const uint32_t *w1 = (const uint32_t *)(d1 + r * rb), *w2 = (const uint32_t *)(d2 + r * rb);
                const unsigned  c1 = (w1[k / 8] >> (4 * (k % 8))) & 15u, c2 = (w2[k / 8] >> (4 * (k % 8))) & 15u;
                same += c1 == c2;
            }
        same /= (double)(R * C);
        ok = same >= 0.995 && fabs(a.loss - b.loss) <= 1e-3 * a.loss && memcmp(g1, g2, sizeof(int32_t) * (size_t)C) == 0;
    }
    fprintf(out, "cuda gptq check int4_g128 act-order (%lld, %lld) vs lq_gptq_cpu: %s (%.2f %% equal codes, loss %.6g vs %.6g)\n",
            (long long)R, (long long)C, ok ? "ok" : "FAILED", 100.0 * same, ok ? b.loss : 0.0, ok ? a.loss : 0.0);
    (void)lq_cuda_free(dw), (void)lq_cuda_free(dh);
    free(w), free(x), free(H), free(d1), free(d2), free(s1), free(s2), free(g1), free(g2);
    return ok;
}

/* best of 5 event-timed calls of cublasDgemm (m x k) · (k x n), in seconds; < 0 on failure */
static double time_dgemm(cublasHandle_t blas, int64_t m, int64_t n, int64_t k) {
    double     *A = NULL, *B = NULL, *Cm = NULL, best = -1;
    cudaEvent_t e0 = NULL, e1 = NULL;
    if (cudaMalloc((void **)&A, sizeof(double) * (size_t)(m * k)) == cudaSuccess &&
        cudaMalloc((void **)&B, sizeof(double) * (size_t)(k * n)) == cudaSuccess &&
        cudaMalloc((void **)&Cm, sizeof(double) * (size_t)(m * n)) == cudaSuccess && cudaEventCreate(&e0) == cudaSuccess &&
        cudaEventCreate(&e1) == cudaSuccess) {
        cudaMemset(A, 0, sizeof(double) * (size_t)(m * k)), cudaMemset(B, 0, sizeof(double) * (size_t)(k * n));
        const double one = 1.0, zero = 0.0;
        for (int r = 0; r < 6; r++) {
            cudaEventRecord(e0);
            const cublasStatus_t s = cublasDgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)m, (int)n, (int)k, &one, A,
                                                 (int)m, B, (int)k, &zero, Cm, (int)m);
            cudaEventRecord(e1);
            if (s != CUBLAS_STATUS_SUCCESS || cudaEventSynchronize(e1) != cudaSuccess) {
                best = -1;
                break;
            }
            float ms = 0;
            cudaEventElapsedTime(&ms, e0, e1);
            if (r > 0 && (best < 0 || ms * 1e-3 < best)) best = ms * 1e-3;
        }
    }
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaFree(A), cudaFree(B), cudaFree(Cm);
    (void)cudaGetLastError();
    return best;
}

/* best of 5 event-timed calls of cublasSgemm (m x k) · (k x n) (the Hessian's f32 GEMM), seconds */
static double time_sgemm(cublasHandle_t blas, int64_t m, int64_t n, int64_t k) {
    float      *A = NULL, *Cm = NULL;
    double      best = -1;
    cudaEvent_t e0 = NULL, e1 = NULL;
    if (cudaMalloc((void **)&A, sizeof(float) * (size_t)(m * k)) == cudaSuccess &&
        cudaMalloc((void **)&Cm, sizeof(float) * (size_t)(m * n)) == cudaSuccess && cudaEventCreate(&e0) == cudaSuccess &&
        cudaEventCreate(&e1) == cudaSuccess) {
        cudaMemset(A, 0, sizeof(float) * (size_t)(m * k));
        const float one = 1.f, zero = 0.f;
        for (int r = 0; r < 6; r++) {
            cudaEventRecord(e0);
            const cublasStatus_t s = cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_T, (int)m, (int)n, (int)k, &one, A,
                                                 (int)m, A, (int)n, &zero, Cm, (int)m);
            cudaEventRecord(e1);
            if (s != CUBLAS_STATUS_SUCCESS || cudaEventSynchronize(e1) != cudaSuccess) {
                best = -1;
                break;
            }
            float ms = 0;
            cudaEventElapsedTime(&ms, e0, e1);
            if (r > 0 && (best < 0 || ms * 1e-3 < best)) best = ms * 1e-3;
        }
    }
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaFree(A), cudaFree(Cm);
    (void)cudaGetLastError();
    return best;
}

/* one shape: H from a random X, then lq_cuda_gptq with and without act-order */
static int bench_shape(FILE *out, cublasHandle_t blas, int64_t R, int64_t C) {
    const lq_qtype t  = LQ_QT_INT4_G128;
    const int64_t  rb = (int64_t)lq_qtype_row_bytes(t, C), ns = lq_qtype_n_scales(t, R, C);
    float         *dx = NULL, *dw = NULL;
    double        *dh = NULL;
    uint8_t *const data  = (uint8_t *)malloc((size_t)(R * rb));
    float *const   sc    = (float *)malloc(sizeof(float) * (size_t)ns);
    int32_t *const g_idx = (int32_t *)malloc(sizeof(int32_t) * (size_t)C);
    int            rc    = 0;
    if (!data || !sc || !g_idx || cudaMalloc((void **)&dx, sizeof(float) * (size_t)(N_CAL * C)) != cudaSuccess ||
        cudaMalloc((void **)&dw, sizeof(float) * (size_t)(R * C)) != cudaSuccess ||
        cudaMalloc((void **)&dh, sizeof(double) * (size_t)(C * C)) != cudaSuccess) {
        fprintf(out, "cuda gptq %lldx%lld: out of memory\n", (long long)R, (long long)C);
        rc = 1;
        goto done;
    }
    fill_uniform<<<lq__grid_for(N_CAL * C, BLOCK), BLOCK>>>(dx, N_CAL * C, C, 1.f, 1, 11u);
    fill_uniform<<<lq__grid_for(R * C, BLOCK), BLOCK>>>(dw, R * C, C, 0.02f, 0, 12u);
    if (cudaMemset(dh, 0, sizeof(double) * (size_t)(C * C)) != cudaSuccess || cudaDeviceSynchronize() != cudaSuccess) {
        rc = 1;
        goto done;
    }
    {
        const double th0 = now_s();
        if (lq_cuda_hessian_accum(dh, dx, N_CAL, C, 2.0 / N_CAL) != LQ_OK) {
            rc = 1;
            goto done;
        }
        const double th = now_s() - th0, ts = time_sgemm(blas, C, C, N_CAL);
        fprintf(out, "cuda hessian %5d x %-5lld: %8.2f ms  (one sgemm %lldx%lldx%d: %.3f ms)  ratio %.1f\n", N_CAL,
                (long long)C, th * 1e3, (long long)C, (long long)C, N_CAL, ts * 1e3, ts > 0 ? th / ts : 0.0);
    }
    {
        const double td = time_dgemm(blas, R, C, C);
        for (int act = 0; act < 2 && rc == 0; act++) {
            lq_gptq_params p = lq_gptq_default_params();
            p.qtype          = t;
            p.act_order      = act != 0;
            lq_gptq_stats st;
            double        best = -1;
            for (int r = 0; r <= REPS; r++) { /* r = 0: warm-up */
                const double t0 = now_s();
                if (lq_cuda_gptq(&p, dw, R, C, dh, data, sc, NULL, g_idx, &st) != LQ_OK) {
                    rc = 1;
                    break;
                }
                const double el = now_s() - t0;
                if (r > 0 && (best < 0 || el < best)) best = el;
            }
            if (rc) break;
            fprintf(out,
                    "cuda gptq int4_g128%s %5lldx%-5lld: %8.2f ms  (one dgemm %lldx%lldx%lld: %.3f ms, %.1f TFLOP/s)  "
                    "ratio %.1f of the dgemm  (loss %.4g, retries %d)\n",
                    act ? " act-order" : "          ", (long long)R, (long long)C, best * 1e3, (long long)R,
                    (long long)C, (long long)C, td * 1e3, td > 0 ? 2.0 * (double)R * (double)C * (double)C / td / 1e12 : 0.0,
                    td > 0 ? best / td : 0.0, st.loss, st.retries);
        }
    }
done:
    cudaFree(dx), cudaFree(dw), cudaFree(dh);
    (void)cudaGetLastError();
    free(data), free(sc), free(g_idx);
    return rc;
}

extern "C" int lq__bench_cuda_gptq(FILE *out) {
    if (lq_cuda_device_count() <= 0) {
        fprintf(out, "cuda gptq: no CUDA device (%s)\n", lq_cuda_device_name());
        return 1;
    }
    static const struct { int64_t rows, cols; } shapes[] = {{2048, 2048}, {5632, 2048}, {2048, 5632}};
    fprintf(out, "cuda gptq on %s (block 128, damp 0.01, f16 scales; best of %d)\n", lq_cuda_device_name(), REPS);
    if (!check(out)) return 1;
    cublasHandle_t blas = NULL;
    if (lq__cuda_blas_create(&blas) != LQ_OK) return 1;
    int rc = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0] && rc == 0; i++)
        rc |= bench_shape(out, blas, shapes[i].rows, shapes[i].cols);
    (void)cublasDestroy(blas);
    return rc;
}
