/* hist_cuda.cu : activation statistics on the device for the calibration
 * pass: lq_cuda_minmax() (a two-level reduction; min/max are exact, so the
 * result does not depend on the order) and lq_cuda_histc() (the bin rule of
 * lq_histc_ref: (int64)((v - lo) * nb / (hi - lo)) in f64, v == hi in the
 * last bin, values outside [lo, hi] dropped; unsigned long long atomics on
 * integer counts, so the counts are exact and deterministic). Device input,
 * host results. */
#include <float.h>

#include "lq_cuda_common.cuh"
#include "lq_kernels.h"

#define HB 256

static __global__ void minmax_kernel(const float *x, int64_t n, float *bmin, float *bmax) {
    __shared__ float smn[HB], smx[HB];
    float            mn = FLT_MAX, mx = -FLT_MAX;
    for (int64_t i = (int64_t)blockIdx.x * HB + threadIdx.x; i < n; i += (int64_t)gridDim.x * HB) {
        const float v = x[i];
        mn            = fminf(mn, v);
        mx            = fmaxf(mx, v);
        if (v != v) mx = v; /* NaN propagates to the host check */
    }
    smn[threadIdx.x] = mn;
    smx[threadIdx.x] = mx;
    __syncthreads();
    for (int s = HB / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) {
            smn[threadIdx.x] = fminf(smn[threadIdx.x], smn[threadIdx.x + s]);
            const float a = smx[threadIdx.x], b = smx[threadIdx.x + s];
            smx[threadIdx.x] = (a != a || b != b) ? (a != a ? a : b) : fmaxf(a, b);
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        bmin[blockIdx.x] = smn[0];
        bmax[blockIdx.x] = smx[0];
    }
}

static __global__ void histc_kernel(const float *x, int64_t n, int absval, double lo, double hi, int64_t nb,
                                    unsigned long long *counts) {
    for (int64_t i = (int64_t)blockIdx.x * HB + threadIdx.x; i < n; i += (int64_t)gridDim.x * HB) {
        double v = (double)x[i];
        if (absval) v = fabs(v);
        if (!(v >= lo && v <= hi)) continue;
        int64_t b = (int64_t)((v - lo) * (double)nb / (hi - lo));
        if (b >= nb) b = nb - 1;
        atomicAdd(&counts[b], 1ull);
    }
}

static int grid_of(int64_t n) {
    const int64_t g = (n + HB - 1) / HB;
    return (int)(g < 1024 ? (g < 1 ? 1 : g) : 1024);
}

extern "C" lq_status lq_cuda_minmax(const float *x, int64_t n, float *mn, float *mx) {
    LQ_RETURN_IF(n <= 0 || !x, LQ_ERR_INVALID_ARG, "minmax: empty input");
    const int g   = grid_of(n);
    float    *dev = NULL;
    LQ_CUDA_TRY(cudaMalloc((void **)&dev, (size_t)2 * g * sizeof(float)));
    minmax_kernel<<<g, HB>>>(x, n, dev, dev + g);
    cudaError_t e = cudaGetLastError();
    float      *h = (float *)lq_malloc((size_t)2 * g * sizeof(float));
    if (e == cudaSuccess && h) e = cudaMemcpy(h, dev, (size_t)2 * g * sizeof(float), cudaMemcpyDeviceToHost);
    cudaFree(dev);
    if (e != cudaSuccess || !h) {
        lq_free(h);
        LQ_RETURN_IF(!h, LQ_ERR_NOMEM, "minmax: out of memory");
        LQ_CUDA_TRY(e);
    }
    float a = h[0], b = h[g];
    for (int i = 1; i < g; i++) {
        a = fminf(a, h[i]);
        b = (b != b || h[g + i] != h[g + i]) ? (b != b ? b : h[g + i]) : fmaxf(b, h[g + i]);
    }
    lq_free(h);
    *mn = a;
    *mx = b;
    return LQ_OK;
}

extern "C" lq_status lq_cuda_histc(const float *x, int64_t n, bool absval, double lo, double hi, int64_t n_bins,
                                   int64_t *counts_host) {
    LQ_RETURN_IF(n < 0 || !x || n_bins <= 0 || !(hi > lo) || !counts_host, LQ_ERR_INVALID_ARG,
                 "histc: bad arguments (%lld bins over [%g, %g])", (long long)n_bins, lo, hi);
    unsigned long long *dev = NULL;
    LQ_CUDA_TRY(cudaMalloc((void **)&dev, (size_t)n_bins * sizeof *dev));
    cudaError_t e = cudaMemset(dev, 0, (size_t)n_bins * sizeof *dev);
    if (e == cudaSuccess && n > 0) {
        histc_kernel<<<grid_of(n), HB>>>(x, n, absval ? 1 : 0, lo, hi, n_bins, dev);
        e = cudaGetLastError();
    }
    if (e == cudaSuccess)
        e = cudaMemcpy(counts_host, dev, (size_t)n_bins * sizeof *dev, cudaMemcpyDeviceToHost); /* u64 -> i64 bits */
    cudaFree(dev);
    LQ_CUDA_TRY(e);
    return LQ_OK;
}
