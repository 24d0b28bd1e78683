/* bench_qmatmul_cuda.cu : lq__bench_cuda_qmatmul(), the int4_g128 GEMV of
 * lq_cuda_matmul on Llama-8B layer shapes at batch 1..16 (bench_cuda.h).
 *
 * The ceiling is a device-to-device cudaMemcpy of 512 MiB measured in the
 * same run (bandwidth = 2 x bytes / time: it reads and writes every byte).
 * Each figure is the mean of REPS back-to-back calls (cudaEvent timing) on
 * copies of the matrix rotating through a 1 GiB pool, so that no call finds
 * its weights in the 50 MB L2. Weights are random codes and random scales
 * (no quantizer); the kernel's speed does not depend on the values. */
#include "bench_cuda.h"
#include "llama_cuda_internal.cuh"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define POOL_BYTES ((size_t)1 << 30)
#define COPY_BYTES ((size_t)512 << 20)
#define REPS 20
#define BLOCK 256

static __global__ void fill_bytes(uint32_t *p, size_t n_words, uint32_t seed) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n_words; i += stride) {
        uint32_t h = (uint32_t)i * 0x9E3779B1u ^ seed;
        h ^= h >> 16, h *= 0x7FEB352Du, h ^= h >> 15, h *= 0x846CA68Bu, h ^= h >> 16;
        p[i] = h;
    }
}

static __global__ void fill_scales(float *s, size_t n, uint32_t seed) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        uint32_t h = (uint32_t)i * 0x9E3779B1u ^ seed;
        h ^= h >> 16, h *= 0x7FEB352Du, h ^= h >> 15;
        s[i] = (1.f + (float)(h & 255u) / 256.f) / 32.f;
    }
}

static unsigned grid_for(size_t n) { return (unsigned)(n / BLOCK + 1 < 65535 ? n / BLOCK + 1 : 65535); }

static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* lq_cuda_matmul against lq_matmul_ref: |diff| <= 2e-3 · Σ|x·w| per output (f16 rounding of x and w) */
static bool check(FILE *out) {
    const int64_t  rows = 61, cols = 4096, ns[3] = {1, 5, 16};
    const lq_qtype t = LQ_QT_INT4_G128;
    const size_t   wb = (size_t)lq_qtype_row_bytes(t, cols) * rows;
    const int64_t  nsc = lq_qtype_n_scales(t, rows, cols);
    uint8_t *const hw = (uint8_t *)malloc(wb);
    float *const   hs = (float *)malloc(sizeof(float) * (size_t)nsc), *const hx = (float *)malloc(sizeof(float) * 16 * cols);
    float *const   want = (float *)malloc(sizeof(float) * 16 * rows), *const got = (float *)malloc(sizeof(float) * 16 * rows);
    float *const   row  = (float *)malloc(sizeof(float) * cols);
    void          *dw = NULL, *ds = NULL, *dx = NULL, *dy = NULL;
    bool           ok = hw && hs && hx && want && got && row;
    if (ok) {
        for (size_t i = 0; i < wb; i++) hw[i] = (uint8_t)mix(i);
        for (int64_t i = 0; i < nsc; i++) hs[i] = (float)(1 + mix(7 + (uint64_t)i) % 64) / 1024.f;
        for (int64_t i = 0; i < 16 * cols; i++) hx[i] = (float)((int64_t)(mix(99 + (uint64_t)i) % 2001) - 1000) / 1000.f;
        ok = lq_cuda_malloc(&dw, wb) == LQ_OK && lq_cuda_malloc(&ds, sizeof(float) * (size_t)nsc) == LQ_OK &&
             lq_cuda_malloc(&dx, sizeof(float) * 16 * cols) == LQ_OK &&
             lq_cuda_malloc(&dy, sizeof(float) * 16 * rows) == LQ_OK && lq_cuda_memcpy_h2d(dw, hw, wb) == LQ_OK &&
             lq_cuda_memcpy_h2d(ds, hs, sizeof(float) * (size_t)nsc) == LQ_OK &&
             lq_cuda_memcpy_h2d(dx, hx, sizeof(float) * 16 * cols) == LQ_OK;
    }
    const lq_weight h = {LQ_DTYPE_U8, hw, rows, cols, t, hs, NULL};
    const lq_weight d = {LQ_DTYPE_U8, dw, rows, cols, t, (const float *)ds, NULL};
    for (int k = 0; k < 3 && ok; k++) {
        const int64_t n = ns[k];
        ok = lq_matmul_ref(want, hx, n, &h, NULL) == LQ_OK && lq_cuda_matmul((float *)dy, (const float *)dx, n, &d, NULL) == LQ_OK &&
             lq_cuda_memcpy_d2h(got, dy, sizeof(float) * (size_t)(n * rows)) == LQ_OK;
        double worst = 0;
        for (int64_t r = 0; ok && r < rows; r++) {
            ok = lq_weight_row_f32(&h, r, row) == LQ_OK;
            for (int64_t tk = 0; ok && tk < n; tk++) {
                double mag = 0;
                for (int64_t c = 0; c < cols; c++) mag += fabs((double)hx[tk * cols + c] * (double)row[c]);
                const double e = fabs((double)got[tk * rows + r] - (double)want[tk * rows + r]) / (mag > 0 ? mag : 1);
                worst          = e > worst ? e : worst;
            }
        }
        if (!(worst <= 2e-3)) ok = false;
        fprintf(out, "cuda qmatmul check int4_g128 (%lld, %lld) n=%lld vs lq_matmul_ref: %s (max |diff| / sum|x*w| %.2e)\n",
                (long long)rows, (long long)cols, (long long)n, ok ? "ok" : "FAILED", worst);
    }
    (void)lq_cuda_free(dw), (void)lq_cuda_free(ds), (void)lq_cuda_free(dx), (void)lq_cuda_free(dy);
    free(hw), free(hs), free(hx), free(want), free(got), free(row);
    return ok;
}

/* device-to-device memcpy bandwidth, GB/s counting read + write, best of 5 */
static double memcpy_gbs(void) {
    void       *a = NULL, *b = NULL;
    cudaEvent_t e0, e1;
    double      best = 0;
    if (cudaMalloc(&a, COPY_BYTES) != cudaSuccess || cudaMalloc(&b, COPY_BYTES) != cudaSuccess) goto done;
    cudaEventCreate(&e0), cudaEventCreate(&e1);
    cudaMemset(a, 1, COPY_BYTES);
    for (int r = 0; r < 6; r++) {
        cudaEventRecord(e0);
        cudaMemcpy(b, a, COPY_BYTES, cudaMemcpyDeviceToDevice);
        cudaEventRecord(e1);
        cudaEventSynchronize(e1);
        float ms = 0;
        cudaEventElapsedTime(&ms, e0, e1);
        const double gbs = 2.0 * (double)COPY_BYTES / (ms * 1e-3) / 1e9;
        if (r > 0 && gbs > best) best = gbs;
    }
    cudaEventDestroy(e0), cudaEventDestroy(e1);
done:
    cudaFree(a), cudaFree(b);
    (void)cudaGetLastError();
    return best;
}

extern "C" int lq__bench_cuda_qmatmul(FILE *out) {
    if (lq_cuda_device_count() <= 0) {
        fprintf(out, "cuda qmatmul: no CUDA device (%s)\n", lq_cuda_device_name());
        return 1;
    }
    static const struct { int64_t rows, cols; } shapes[] = {{4096, 4096}, {14336, 4096}, {4096, 14336}};
    static const int64_t batch[]                         = {1, 2, 4, 8, 16};
    const lq_qtype       t                               = LQ_QT_INT4_G128;
    int                  rc                              = 0;
    cublasHandle_t       blas                            = NULL;
    uint8_t             *pool = NULL;
    float               *spool = NULL, *x = NULL, *y = NULL;
    void                *scratch = NULL;
    cudaEvent_t          e0 = NULL, e1 = NULL;
    fprintf(out, "cuda qmatmul on %s\n", lq_cuda_device_name());
    if (!check(out)) return 1;
    const double bw = memcpy_gbs();
    fprintf(out, "cuda ceiling: device-to-device memcpy %.0f GB/s (2 x %zu MiB / time)\n", bw, COPY_BYTES >> 20);
    if (lq__cuda_blas_create(&blas) != LQ_OK || cudaMalloc((void **)&pool, POOL_BYTES) != cudaSuccess ||
        cudaMalloc((void **)&spool, POOL_BYTES / 8) != cudaSuccess ||
        cudaMalloc((void **)&x, sizeof(float) * 16 * 14336) != cudaSuccess ||
        cudaMalloc((void **)&y, sizeof(float) * 16 * 14336) != cudaSuccess ||
        cudaMalloc(&scratch, (size_t)16 * 14336 * 2 + 4096) != cudaSuccess || cudaEventCreate(&e0) != cudaSuccess ||
        cudaEventCreate(&e1) != cudaSuccess) {
        fprintf(out, "cuda qmatmul: out of device memory\n");
        rc = 1;
        goto done;
    }
    fill_bytes<<<grid_for(POOL_BYTES / 4), BLOCK>>>(reinterpret_cast<uint32_t *>(pool), POOL_BYTES / 4, 1u);
    fill_scales<<<grid_for(POOL_BYTES / 32), BLOCK>>>(spool, POOL_BYTES / 32, 2u);
    fill_scales<<<grid_for(16 * 14336), BLOCK>>>(x, 16 * 14336, 3u);
    if (cudaDeviceSynchronize() != cudaSuccess) {
        rc = 1;
        goto done;
    }
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int64_t rows = shapes[si].rows, cols = shapes[si].cols;
        const size_t  wb = (size_t)lq_qtype_row_bytes(t, cols) * (size_t)rows;
        const int64_t nsc = lq_qtype_n_scales(t, rows, cols);
        const size_t  copies = LQ_MIN(POOL_BYTES / wb, POOL_BYTES / 8 / sizeof(float) / (size_t)nsc);
        const double  bytes  = (double)wb + (double)nsc * sizeof(float);
        lq_weight     w      = {LQ_DTYPE_U8, pool, rows, cols, t, spool, NULL};
        double        t1     = 0;
        for (size_t bi = 0; bi < sizeof batch / sizeof batch[0]; bi++) {
            const int64_t n = batch[bi];
            for (int r = 0; r < 3; r++) /* warm-up */
                if (lq__cuda_matmul(blas, y, x, n, &w, NULL, scratch, false, false) != LQ_OK) rc = 1;
            cudaEventRecord(e0);
            for (int r = 0; r < REPS; r++) {
                const size_t c = (size_t)r % copies;
                w.data         = pool + c * wb;
                w.scales       = spool + c * (size_t)nsc;
                if (lq__cuda_matmul(blas, y, x, n, &w, NULL, scratch, false, false) != LQ_OK) rc = 1;
            }
            cudaEventRecord(e1);
            if (cudaEventSynchronize(e1) != cudaSuccess) {
                rc = 1;
                goto done;
            }
            float ms = 0;
            cudaEventElapsedTime(&ms, e0, e1);
            const double sec = (double)ms * 1e-3 / REPS, gbs = bytes / sec / 1e9;
            if (n == 1) t1 = sec;
            if (n == 1)
                fprintf(out,
                        "cuda qmatmul int4_g128 %5lldx%-5lld n=%-2lld: %8.2f us  %7.1f GB/s  ratio %.2f of memcpy  "
                        "(goal >= 0.80)\n",
                        (long long)rows, (long long)cols, (long long)n, sec * 1e6, gbs, gbs / bw);
            else
                fprintf(out,
                        "cuda qmatmul int4_g128 %5lldx%-5lld n=%-2lld: %8.2f us  %7.1f GB/s  ratio %.2f of memcpy  "
                        "%.2f x the n=1 time (goal <= 1.30)\n",
                        (long long)rows, (long long)cols, (long long)n, sec * 1e6, gbs, gbs / bw, sec / t1);
        }
    }
done:
    if (blas) (void)cublasDestroy(blas);
    cudaFree(pool), cudaFree(spool), cudaFree(x), cudaFree(y), cudaFree(scratch);
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    (void)cudaGetLastError();
    return rc;
}
