/* gptq_cuda.cu : GPTQ on the device (lq_cuda_gptq) and the Hessian
 * accumulation (lq_cuda_hessian_accum), with the semantics of lq_gptq_cpu
 * (GPTQ: Frantar et al. 2022, Alg. 1 with the lazy batch updates of 3.2 and
 * the Cholesky reformulation of 3.3; REFERENCE.md 6.1).
 *
 *   host:   argument checks, dead columns and the act-order permutation
 *           (stable, from diag H), the damping schedule (gptq_internal.h,
 *           shared with the CPU solvers), scales/zeros/g_idx/loss out.
 *   device: W^T (cols x rows f64, permuted, dead columns 0: column-major, so
 *           a thread per row reads a column coalesced); static group fits;
 *           M = J P^T (H + damping) P J gathered in f64, M = L L^T
 *           (cusolverDnXpotrf), X = L^-1 (cusolverDnXtrtri), U = J X J: the
 *           upper Cholesky factor of the damped permuted H^-1 (gptq_cpu.c
 *           derives it); per block of `block_size` columns one kernel in
 *           which SUB lanes own one row (rows are independent in GPTQ) and
 *           walk the block's columns in order, then
 *           W[:, i2:] -= Err1 U[i1:i2, i2:] as one cublasDgemm; the codes
 *           packed into the lq layout on the device.
 * The quantizer and the per-column arithmetic use __f*_rn / __d*_rn
 * intrinsics (no FMA contraction), so the device rounds exactly like
 * quantize_ref.c and gptq_cpu.c; only the cuSOLVER factorization and the
 * cuBLAS update sum in another order (codes may differ at rare ties). The
 * mse search uses the device pow(), within 2 ulp of the host's. */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cusolverDn.h>

#include <limits.h>
#include <math.h>
#include <string.h>

#include <mutex>

#include "llama_cuda_internal.cuh"
#include "lq_cuda_common.cuh"

extern "C" {
#include "../cpu/gptq_internal.h"
}

#define FULL_MASK   0xffffffffu
#define COL_THREADS 256       /* threads per block of the column kernel (SUB lanes per row)  */
#define LOCAL_BLOCK 256       /* block_size up to this keeps a row's block in local memory    */
#define MSE_GRID    80        /* the reference's shrink grid p = 1 - i/100, i < 80            */
#define HCHUNK      256       /* Hessian: rows per f32 GEMM                                   */
#define HSCRATCH    ((int64_t)64 << 20) /* Hessian: f32 scratch bytes (column tiles of x^T x) */
#define TILE        32

#define LQ_CUSOLVER_TRY(expr)                                                                                 \
    do {                                                                                                      \
        const cusolverStatus_t lq__s = (expr);                                                                \
        if (lq__s != CUSOLVER_STATUS_SUCCESS) {                                                               \
            lq__log(LQ_LOG_ERROR, __func__, "%s:%d: %s: cuSOLVER status %d", __FILE__, __LINE__, #expr,       \
                    (int)lq__s);                                                                              \
            return LQ_ERR_CUDA;                                                                               \
        }                                                                                                     \
    } while (0)

/* ---- the quantizer: lq INT rule, bit for bit (quantize_ref.c round_scale, int_params, int_code) ---- */

typedef struct {
    int  bits, qmax;
    bool sym, mse;
    int  sd; /* scale dtype: 0 f16, 1 bf16, 2 f32 */
} dq_spec;

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
    if (s == 0.f) return 1.40129846e-45f; /* FLT_TRUE_MIN */
    return s > 3.40282347e38f ? 3.40282347e38f : s;
}

/* int_params: scale and zero point of a range shrunk by r */
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

/* int_code on (float)w, and the f32 value it stands for (lq__gptq_quant) */
__device__ static double d_quant(const dq_spec &q, double w, float s, int z, unsigned *code) {
    float v = __fadd_rn(rintf(__fdiv_rn((float)w, s)), (float)z);
    v       = v > 0.f ? v : 0.f;
    v       = v < (float)q.qmax ? v : (float)q.qmax;
    *code   = (unsigned)v;
    return (double)__fmul_rn(s, (float)((int)*code - z));
}

__device__ static float d_shrink(int i) { return __fdiv_rn((float)(100 - i), 100.0f); }

/* lq__gptq_fit for one row, by the SUB lanes that own it (all 32 lanes of the
 * warp call it together). Element k of the group is Wt[col * R + r] with
 * col = map ? map[c0 + k] : c0 + k. min/max are order-free; each mse
 * candidate's error is summed by one lane in k order, and the first minimum
 * (smallest i) wins, as in the host's loop. */
template <int SUB>
__device__ static void coop_fit(const dq_spec &q, const double *__restrict__ Wt, int64_t R, int64_t r,
                                const int64_t *__restrict__ map, int64_t c0, int64_t n, int sub, float *s_out,
                                int *z_out) {
    float lo = 0.f, hi = 0.f, amax = 0.f;
    for (int64_t k = sub; k < n; k += SUB) {
        const int64_t col = map ? map[c0 + k] : c0 + k;
        const float   v = (float)Wt[col * R + r], a = fabsf(v);
        lo              = v < lo ? v : lo;
        hi              = v > hi ? v : hi;
        amax            = a > amax ? a : amax;
    }
#pragma unroll
    for (int off = SUB / 2; off > 0; off >>= 1) {
        const float l2 = __shfl_xor_sync(FULL_MASK, lo, off, SUB);
        const float h2 = __shfl_xor_sync(FULL_MASK, hi, off, SUB);
        const float a2 = __shfl_xor_sync(FULL_MASK, amax, off, SUB);
        lo             = l2 < lo ? l2 : lo;
        hi             = h2 > hi ? h2 : hi;
        amax           = a2 > amax ? a2 : amax;
    }
    float s;
    int   z;
    d_params(q, lo, hi, amax, 1.f, &s, &z);
    if (q.mse) {
        double best = INFINITY;
        int    bi   = -1;
        for (int i = sub; i < MSE_GRID; i += SUB) {
            float si;
            int   zi;
            d_params(q, lo, hi, amax, d_shrink(i), &si, &zi);
            double e = 0;
            for (int64_t k = 0; k < n; k++) {
                const int64_t col = map ? map[c0 + k] : c0 + k;
                const double  x   = Wt[col * R + r];
                unsigned      u;
                const double  qq = d_quant(q, x, si, zi, &u);
                e                = __dadd_rn(e, pow(fabs(__dsub_rn(qq, (double)(float)x)), 2.4));
            }
            if (e < best) {
                best = e;
                bi   = i;
            }
        }
#pragma unroll
        for (int off = SUB / 2; off > 0; off >>= 1) {
            const double e2 = __shfl_xor_sync(FULL_MASK, best, off, SUB);
            const int    i2 = __shfl_xor_sync(FULL_MASK, bi, off, SUB);
            if (i2 >= 0 && (bi < 0 || e2 < best || (e2 == best && i2 < bi))) {
                best = e2;
                bi   = i2;
            }
        }
        if (bi >= 0) d_params(q, lo, hi, amax, d_shrink(bi), &s, &z);
    }
    *s_out = s;
    *z_out = z;
}

/* ---- GPU kernels: preparation ---- */

/* *first = min(*first, index of a non-finite element) */
template <typename T>
static __global__ void nonfinite_kernel(const T *__restrict__ x, int64_t n, unsigned long long *first) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        if (!isfinite(x[i])) atomicMin(first, (unsigned long long)i);
}

/* Wt (C x R, column-major: Wt[c * R + r]) = w[r][perm[c]] as f64, 0 for a dead column; 32 x 32 tiles */
static __global__ void prep_kernel(double *__restrict__ Wt, const float *__restrict__ w, const int64_t *__restrict__ perm,
                                   const unsigned char *__restrict__ dead, int64_t R, int64_t C) {
    __shared__ float tile[TILE][TILE + 1];
    const int64_t    c0 = (int64_t)blockIdx.x * TILE, r0 = (int64_t)blockIdx.y * TILE;
    for (int k = threadIdx.y; k < TILE; k += blockDim.y) {
        const int64_t r = r0 + k, c = c0 + threadIdx.x;
        float         v = 0.f;
        if (r < R && c < C) {
            const int64_t j = perm[c];
            v               = dead[j] ? 0.f : w[r * C + j];
        }
        tile[k][threadIdx.x] = v;
    }
    __syncthreads();
    for (int k = threadIdx.y; k < TILE; k += blockDim.y) {
        const int64_t c = c0 + k, r = r0 + threadIdx.x;
        if (r < R && c < C) Wt[c * R + r] = (double)tile[threadIdx.x][k];
    }
}

/* static groups: S/Z[g * R + r] fitted on the original (dead-zeroed) W, group g = original columns
 * [g G, g G + G), read from the permuted Wt through iperm in the original order */
template <int SUB>
static __global__ void __launch_bounds__(COL_THREADS)
    static_fit_kernel(const double *__restrict__ Wt, const int64_t *__restrict__ iperm, float *__restrict__ S,
                      int *__restrict__ Z, int64_t R, int64_t C, int64_t G, int64_t ng, dq_spec q) {
    const int64_t t    = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int     lane = threadIdx.x & 31, sub = threadIdx.x % SUB;
    if ((t - lane) / SUB >= R) return; /* the whole warp */
    const bool    live = t / SUB < R;
    const int64_t r    = live ? t / SUB : R - 1;
    for (int64_t g = 0; g < ng; g++) {
        float s;
        int   z;
        coop_fit<SUB>(q, Wt, R, r, iperm, g * G, LQ_MIN(G, C - g * G), sub, &s, &z);
        if (live && sub == 0) {
            S[g * R + r] = s;
            Z[g * R + r] = z;
        }
    }
}

/* M (n x n) = J P^T (H + add I) P J: M[i][j] = Hp[n-1-i][n-1-j], Hp = H permuted by perm with a zero diagonal
 * entry (dead column) read as 1. Symmetric, so row- and column-major agree. */
static __global__ void gather_kernel(double *__restrict__ M, const double *__restrict__ H,
                                     const int64_t *__restrict__ perm, int64_t n, double add) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n * n; idx += stride) {
        const int64_t i = idx / n, j = idx % n, a = perm[n - 1 - i], b = perm[n - 1 - j];
        double        v = H[a * n + b];
        if (i == j) v = __dadd_rn(v == 0.0 ? 1.0 : v, add);
        M[idx] = v;
    }
}

/* U (row-major, upper) = J X J with X = L^-1 (column-major, lower):
 * U[i][j] = X(n-1-i, n-1-j), i.e. U[n*n-1 - (a*n + b)] = X[a + b*n] (a >= b), 0 below the diagonal.
 * 32 x 32 tiles over (a, b): reads along a, writes along b, both coalesced. */
static __global__ void rotate_kernel(double *__restrict__ U, const double *__restrict__ X, int64_t n) {
    __shared__ double tile[TILE][TILE + 1];
    const int64_t     a0 = (int64_t)blockIdx.x * TILE, b0 = (int64_t)blockIdx.y * TILE;
    for (int k = threadIdx.y; k < TILE; k += blockDim.y) {
        const int64_t a = a0 + threadIdx.x, b = b0 + k;
        tile[k][threadIdx.x] = a < n && b < n && a >= b ? X[a + b * n] : 0.0;
    }
    __syncthreads();
    for (int k = threadIdx.y; k < TILE; k += blockDim.y) {
        const int64_t a = a0 + k, b = b0 + threadIdx.x;
        if (a < n && b < n) U[n * n - 1 - (a * n + b)] = tile[threadIdx.x][k];
    }
}

/* ---- GPU kernels: the column loop ---- */

/* One block [i1, i1 + cnt) of the column loop (gptq_cpu.c's tile loop). SUB
 * lanes own row r; lane `sub` keeps the block's columns j = sub + k SUB of
 * that row (W1) in local memory (LOC) or in W1g (block_size > LOCAL_BLOCK),
 * interleaved per thread so that every access is coalesced. Per column i:
 * the group's parameters (refit at col % G == 0 from the outer Wt, which
 * lacks this block's in-block updates: the reference's behaviour), x from
 * the owner lane, code, loss, err = (x - q) / U_ii into E (column-major
 * R x cnt for the GEMM), then each lane updates its columns j > i. */
template <int SUB, bool LOC>
static __global__ void __launch_bounds__(COL_THREADS)
    column_kernel(const double *__restrict__ Wt, double *__restrict__ W1g, const double *__restrict__ U,
                  const int64_t *__restrict__ perm, unsigned char *__restrict__ codes, float *__restrict__ S,
                  int *__restrict__ Z, double *__restrict__ E, double *__restrict__ loss, int64_t R, int64_t C,
                  int64_t i1, int cnt, int64_t G, dq_spec q, int stat, int act) {
    const int64_t t    = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t nt   = (int64_t)gridDim.x * blockDim.x;
    const int     lane = threadIdx.x & 31, sub = threadIdx.x % SUB;
    if ((t - lane) / SUB >= R) return; /* the whole warp: no barrier below, shuffles stay full */
    const bool    live = t / SUB < R;
    const int64_t r    = live ? t / SUB : R - 1;
    double        w1[LOC ? LOCAL_BLOCK / SUB : 1];
    auto          W1 = [&](int k) -> double & {
        if constexpr (LOC) return w1[k];
        else return W1g[(int64_t)k * nt + t];
    };
    const int nk = (cnt + SUB - 1) / SUB;
    for (int k = 0; k < nk; k++) {
        const int j = sub + k * SUB;
        W1(k)       = j < cnt ? Wt[(i1 + j) * R + r] : 0.0;
    }
    double l  = loss[r];
    float  cs = 1.f;
    int    cz = 0;
    if (!stat && i1 % G != 0) { /* the current group began in an earlier block */
        cs = S[(i1 / G) * R + r];
        cz = Z[(i1 / G) * R + r];
    }
    for (int i = 0; i < cnt; i++) {
        const int64_t col  = i1 + i;
        const double *urow = U + col * C + i1;
        const double  d    = urow[i];
        if (stat) {
            const int64_t g = (act ? perm[col] : col) / G;
            cs              = S[g * R + r];
            cz              = Z[g * R + r];
        } else if (col % G == 0) {
            coop_fit<SUB>(q, Wt, R, r, NULL, col, LQ_MIN(G, C - col), sub, &cs, &cz);
            if (live && sub == 0) {
                S[(col / G) * R + r] = cs;
                Z[(col / G) * R + r] = cz;
            }
        }
        const double x = __shfl_sync(FULL_MASK, W1(i / SUB), i % SUB, SUB);
        unsigned     u;
        const double qv  = d_quant(q, x, cs, cz, &u);
        const double dx  = __dsub_rn(x, qv);
        const double err = __ddiv_rn(dx, d);
        /* (x - q)^2 / d^2 / 2; halving is exact, so * 0.5 rounds as the host's / 2 */
        l = __dadd_rn(l, __dmul_rn(__ddiv_rn(__dmul_rn(dx, dx), __dmul_rn(d, d)), 0.5));
        if (live && sub == 0) {
            codes[perm[col] * R + r] = (unsigned char)u;
            E[(int64_t)i * R + r]    = err;
        }
        for (int k = i < sub ? 0 : (i - sub) / SUB + 1; k < nk; k++) {
            const int j = sub + k * SUB;
            if (j >= cnt) break;
            W1(k) = __dsub_rn(W1(k), __dmul_rn(err, urow[j]));
        }
    }
    if (live && sub == 0) loss[r] = l;
}

/* the lq layout: row r, u32 word wd holds bits [32 wd, 32 wd + 32) of the LSB-first stream of codes (C x R,
 * column-major by original column) */
static __global__ void pack_kernel(uint32_t *__restrict__ out, const unsigned char *__restrict__ codes, int64_t R,
                                   int64_t C, int bits, int64_t n_words) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < R * n_words; t += stride) {
        const int64_t r = t % R, wd = t / R, b0 = wd * 32;
        const int64_t k1 = LQ_MIN(C - 1, (b0 + 31) / bits);
        uint32_t      v  = 0;
        for (int64_t k = b0 / bits; k <= k1; k++) {
            const uint32_t u   = codes[k * R + r];
            const int64_t  pos = k * bits - b0;
            v |= pos >= 0 ? u << pos : u >> -pos;
        }
        out[r * n_words + wd] = v;
    }
}

/* ---- kernel launchers ---- */

/* The process-wide handles (created on first use, kept for the life of the
 * process like lq_cuda_matmul's); g_mu serializes whole calls of
 * lq_cuda_gptq and lq_cuda_hessian_accum, which share them. */
static std::mutex         g_mu;
static cublasHandle_t     g_blas = NULL;
static cusolverDnHandle_t g_sol  = NULL;
static cusolverDnParams_t g_prm  = NULL;

static lq_status blas_handle(void) {
    if (!g_blas) LQ_TRY(lq__cuda_blas_create(&g_blas));
    return LQ_OK;
}

static lq_status solver_handles(void) {
    LQ_TRY(blas_handle());
    if (!g_sol) {
        LQ_CUSOLVER_TRY(cusolverDnCreate(&g_sol));
        LQ_CUSOLVER_TRY(cusolverDnSetStream(g_sol, 0));
    }
    if (!g_prm) LQ_CUSOLVER_TRY(cusolverDnCreateParams(&g_prm));
    return LQ_OK;
}

/* everything one call allocates, freed on every exit */
struct gptq_bufs {
    double        *Wt = NULL, *W1g = NULL, *M = NULL, *U = NULL, *E = NULL, *loss = NULL;
    int64_t       *perm = NULL, *iperm = NULL;
    unsigned char *dead = NULL, *codes = NULL;
    uint32_t      *packed = NULL;
    float         *S = NULL;
    int           *Z = NULL, *info = NULL;
    void          *work = NULL, *hwork = NULL;
    unsigned long long *bad = NULL;
    /* host */
    double        *diag = NULL, *hloss = NULL, *udiag = NULL;
    int64_t       *hperm = NULL, *hiperm = NULL;
    unsigned char *hdead = NULL;
    float         *hs = NULL;
    int           *hz = NULL;
    gptq_bufs()                             = default;
    gptq_bufs(const gptq_bufs &)            = delete;
    gptq_bufs &operator=(const gptq_bufs &) = delete;
    ~gptq_bufs() {
        void *dev[] = {Wt, W1g, M, U, E, loss, perm, iperm, dead, codes, packed, S, Z, info, work, bad};
        for (void *p : dev)
            if (p) (void)cudaFree(p);
        lq_free(hwork), lq_free(diag), lq_free(hloss), lq_free(udiag), lq_free(hperm), lq_free(hiperm);
        lq_free(hdead), lq_free(hs), lq_free(hz);
    }
};

template <typename T> static lq_status dalloc(T **p, int64_t count) {
    LQ_CUDA_TRY(cudaMalloc((void **)p, (size_t)LQ_MAX(count, (int64_t)1) * sizeof(T)));
    return LQ_OK;
}

template <typename T> static lq_status halloc(T **p, int64_t count) {
    *p = (T *)lq_malloc((size_t)LQ_MAX(count, (int64_t)1) * sizeof(T));
    LQ_RETURN_IF(!*p, LQ_ERR_NOMEM, "gptq (cuda): out of host memory (%lld bytes)", (long long)(count * sizeof(T)));
    return LQ_OK;
}

/* lanes per row: enough threads to fill the device on small layers, at most a warp */
static int lanes_for(int64_t R) {
    for (int sub = 4; sub < 32; sub *= 2)
        if (R * sub >= 32768) return sub;
    return 32;
}

template <int SUB>
static lq_status launch_static_fit(const gptq_bufs &b, int64_t R, int64_t C, int64_t G, int64_t ng, dq_spec q) {
    const unsigned grid = (unsigned)((R * SUB + COL_THREADS - 1) / COL_THREADS);
    static_fit_kernel<SUB><<<grid, COL_THREADS>>>(b.Wt, b.iperm, b.S, b.Z, R, C, G, ng, q);
    LQ_CUDA_TRY(cudaGetLastError());
    return LQ_OK;
}

template <int SUB, bool LOC>
static lq_status launch_columns(const gptq_bufs &b, int64_t R, int64_t C, int64_t i1, int cnt, int64_t G, dq_spec q,
                                bool stat, bool act) {
    const unsigned grid = (unsigned)((R * SUB + COL_THREADS - 1) / COL_THREADS);
    column_kernel<SUB, LOC><<<grid, COL_THREADS>>>(b.Wt, b.W1g, b.U, b.perm, b.codes, b.S, b.Z, b.E, b.loss, R, C,
                                                   i1, cnt, G, q, stat, act);
    LQ_CUDA_TRY(cudaGetLastError());
    return LQ_OK;
}

static lq_status static_fit(int sub, const gptq_bufs &b, int64_t R, int64_t C, int64_t G, int64_t ng, dq_spec q) {
    switch (sub) {
    case 4: return launch_static_fit<4>(b, R, C, G, ng, q);
    case 8: return launch_static_fit<8>(b, R, C, G, ng, q);
    case 16: return launch_static_fit<16>(b, R, C, G, ng, q);
    default: return launch_static_fit<32>(b, R, C, G, ng, q);
    }
}

static lq_status columns(int sub, bool loc, const gptq_bufs &b, int64_t R, int64_t C, int64_t i1, int cnt, int64_t G,
                         dq_spec q, bool stat, bool act) {
    switch (sub * 2 + (loc ? 1 : 0)) {
    case 9: return launch_columns<4, true>(b, R, C, i1, cnt, G, q, stat, act);
    case 8: return launch_columns<4, false>(b, R, C, i1, cnt, G, q, stat, act);
    case 17: return launch_columns<8, true>(b, R, C, i1, cnt, G, q, stat, act);
    case 16: return launch_columns<8, false>(b, R, C, i1, cnt, G, q, stat, act);
    case 33: return launch_columns<16, true>(b, R, C, i1, cnt, G, q, stat, act);
    case 32: return launch_columns<16, false>(b, R, C, i1, cnt, G, q, stat, act);
    case 65: return launch_columns<32, true>(b, R, C, i1, cnt, G, q, stat, act);
    default: return launch_columns<32, false>(b, R, C, i1, cnt, G, q, stat, act);
    }
}

/* U = upper Cholesky factor of (P^T H P + damping)^-1 with the retry schedule of lq__gptq_damping;
 * LQ_ERR_NUMERIC when every attempt fails */
static lq_status hinv_upper(const lq_gptq_params *p, const double *H, gptq_bufs &b, int64_t C, double mean,
                            double maxd, lq_gptq_stats *stats) {
    size_t dws = 0, hws = 0, dws2 = 0, hws2 = 0;
    LQ_CUSOLVER_TRY(cusolverDnXpotrf_bufferSize(g_sol, g_prm, CUBLAS_FILL_MODE_LOWER, C, CUDA_R_64F, b.M, C,
                                                CUDA_R_64F, &dws, &hws));
    LQ_CUSOLVER_TRY(cusolverDnXtrtri_bufferSize(g_sol, CUBLAS_FILL_MODE_LOWER, CUBLAS_DIAG_NON_UNIT, C, CUDA_R_64F,
                                                b.M, C, &dws2, &hws2));
    dws = LQ_MAX(dws, dws2), hws = LQ_MAX(hws, hws2);
    LQ_CUDA_TRY(cudaMalloc(&b.work, dws ? dws : 1));
    b.hwork = lq_malloc(hws ? hws : 1);
    LQ_RETURN_IF(!b.hwork, LQ_ERR_NOMEM, "gptq (cuda): out of host memory (%zu bytes)", hws);
    LQ_TRY(halloc(&b.udiag, C));
    const dim3 tb(TILE, 8), tg((unsigned)((C + TILE - 1) / TILE), (unsigned)((C + TILE - 1) / TILE));
    for (int k = 0;; k++) {
        double rel, add;
        if (!lq__gptq_damping(p, k, maxd, &rel, &add)) break;
        stats->damp    = rel;
        stats->retries = k;
        gather_kernel<<<lq__grid_for(C * C, 256), 256>>>(b.M, H, b.perm, C, rel * mean + add);
        LQ_CUDA_TRY(cudaGetLastError());
        int info = 0;
        LQ_CUSOLVER_TRY(cusolverDnXpotrf(g_sol, g_prm, CUBLAS_FILL_MODE_LOWER, C, CUDA_R_64F, b.M, C, CUDA_R_64F,
                                         b.work, dws, b.hwork, hws, b.info));
        LQ_CUDA_TRY(cudaMemcpy(&info, b.info, sizeof info, cudaMemcpyDeviceToHost));
        LQ_RETURN_IF(info < 0, LQ_ERR_CUDA, "gptq (cuda): cusolverDnXpotrf: bad parameter %d", -info);
        if (info > 0) continue; /* a leading minor is not positive definite */
        LQ_CUSOLVER_TRY(cusolverDnXtrtri(g_sol, CUBLAS_FILL_MODE_LOWER, CUBLAS_DIAG_NON_UNIT, C, CUDA_R_64F, b.M, C,
                                         b.work, dws, b.hwork, hws, b.info));
        LQ_CUDA_TRY(cudaMemcpy(&info, b.info, sizeof info, cudaMemcpyDeviceToHost));
        LQ_RETURN_IF(info < 0, LQ_ERR_CUDA, "gptq (cuda): cusolverDnXtrtri: bad parameter %d", -info);
        if (info > 0) continue;
        rotate_kernel<<<tg, tb>>>(b.U, b.M, C);
        LQ_CUDA_TRY(cudaGetLastError());
        /* the CPU factorization's test: every pivot (here every U_jj) finite and > 0 */
        LQ_CUDA_TRY(cudaMemcpy2D(b.udiag, sizeof(double), b.U, (size_t)(C + 1) * sizeof(double), sizeof(double),
                                 (size_t)C, cudaMemcpyDeviceToHost));
        bool ok = true;
        for (int64_t j = 0; j < C && ok; j++) ok = b.udiag[j] > 0 && isfinite(b.udiag[j]);
        if (ok) return LQ_OK;
    }
    LQ_LOG_ERR("gptq (cuda): the %lld x %lld Hessian stays singular after %d damping increases", (long long)C,
               (long long)C, stats->retries);
    return LQ_ERR_NUMERIC;
}

static lq_status gptq_run(const lq_gptq_params *p, const float *w, int64_t R, int64_t C, const double *H, void *data,
                          float *scales, uint8_t *zeros, int32_t *g_idx, lq_gptq_stats *stats) {
    lq__gptq_shape sh;
    LQ_TRY(lq__gptq_shape_of(p, w, R, C, H, data, scales, zeros, g_idx, &sh));
    LQ_RETURN_IF(R > INT_MAX || C > INT_MAX, LQ_ERR_SHAPE, "gptq (cuda): %lld x %lld is beyond cuBLAS's int sizes",
                 (long long)R, (long long)C);
    const std::lock_guard<std::mutex> lock(g_mu);
    LQ_TRY(solver_handles());
    const int64_t  G = sh.G, ng = sh.ng, BS = sh.block;
    const int64_t  rb = (int64_t)lq_qtype_row_bytes(p->qtype, C), n_words = rb / 4;
    const dq_spec  q  = {sh.bits, sh.qmax, sh.sym, sh.mse, sh.sd == LQ_DTYPE_F16 ? 0 : sh.sd == LQ_DTYPE_BF16 ? 1 : 2};
    const int      sub = lanes_for(R);
    const bool     loc = BS <= LOCAL_BLOCK;
    const int64_t  nt  = (R * sub + COL_THREADS - 1) / COL_THREADS * COL_THREADS;
    gptq_bufs      b;

    /* non-finite inputs: LQ_ERR_INVALID_ARG, as lq__gptq_check */
    LQ_TRY(dalloc(&b.bad, 2));
    const unsigned long long none[2] = {ULLONG_MAX, ULLONG_MAX};
    unsigned long long       bad[2];
    LQ_CUDA_TRY(cudaMemcpy(b.bad, none, sizeof none, cudaMemcpyHostToDevice));
    nonfinite_kernel<float><<<lq__grid_for(R * C, 256), 256>>>(w, R * C, b.bad);
    nonfinite_kernel<double><<<lq__grid_for(C * C, 256), 256>>>(H, C * C, b.bad + 1);
    LQ_CUDA_TRY(cudaGetLastError());
    LQ_CUDA_TRY(cudaMemcpy(bad, b.bad, sizeof bad, cudaMemcpyDeviceToHost));
    LQ_RETURN_IF(bad[0] != ULLONG_MAX, LQ_ERR_INVALID_ARG, "gptq: weight row %lld has a non-finite value",
                 (long long)(bad[0] / (unsigned long long)C));
    LQ_RETURN_IF(bad[1] != ULLONG_MAX, LQ_ERR_INVALID_ARG, "gptq: the Hessian has a non-finite value at (%lld, %lld)",
                 (long long)(bad[1] / (unsigned long long)C), (long long)(bad[1] % (unsigned long long)C));

    /* (1) dead columns, (3) the act-order permutation, the damping's mean (in processing order, as the CPU) */
    LQ_TRY(halloc(&b.diag, C));
    LQ_TRY(halloc(&b.hperm, C));
    LQ_TRY(halloc(&b.hiperm, C));
    LQ_TRY(halloc(&b.hdead, C));
    LQ_CUDA_TRY(cudaMemcpy2D(b.diag, sizeof(double), H, (size_t)(C + 1) * sizeof(double), sizeof(double), (size_t)C,
                             cudaMemcpyDeviceToHost));
    for (int64_t j = 0; j < C; j++) {
        b.hdead[j] = b.diag[j] == 0;
        stats->dead_cols += b.hdead[j];
        if (b.hdead[j]) b.diag[j] = 1;
        b.hperm[j] = j;
    }
    if (sh.act_order) lq__gptq_act_order(b.diag, C, b.hperm);
    double mean = 0, maxd = 0;
    for (int64_t j = 0; j < C; j++) {
        b.hiperm[b.hperm[j]] = j;
        mean += b.diag[b.hperm[j]];
        maxd = fmax(maxd, fabs(b.diag[j]));
    }
    mean /= (double)C;

    LQ_TRY(dalloc(&b.perm, C));
    LQ_TRY(dalloc(&b.iperm, C));
    LQ_TRY(dalloc(&b.dead, C));
    LQ_TRY(dalloc(&b.Wt, R * C));
    LQ_TRY(dalloc(&b.S, R * ng));
    LQ_TRY(dalloc(&b.Z, R * ng));
    LQ_TRY(dalloc(&b.M, C * C));
    LQ_TRY(dalloc(&b.U, C * C));
    LQ_TRY(dalloc(&b.info, 1));
    LQ_CUDA_TRY(cudaMemcpy(b.perm, b.hperm, (size_t)C * sizeof(int64_t), cudaMemcpyHostToDevice));
    LQ_CUDA_TRY(cudaMemcpy(b.iperm, b.hiperm, (size_t)C * sizeof(int64_t), cudaMemcpyHostToDevice));
    LQ_CUDA_TRY(cudaMemcpy(b.dead, b.hdead, (size_t)C, cudaMemcpyHostToDevice));
    {
        const dim3 tb(TILE, 8), tg((unsigned)((C + TILE - 1) / TILE), (unsigned)((R + TILE - 1) / TILE));
        prep_kernel<<<tg, tb>>>(b.Wt, w, b.perm, b.dead, R, C);
        LQ_CUDA_TRY(cudaGetLastError());
    }
    /* (2) static groups from the original W */
    if (sh.static_groups) LQ_TRY(static_fit(sub, b, R, C, G, ng, q));

    /* (4), (5) */
    LQ_TRY(hinv_upper(p, H, b, C, mean, maxd, stats));
    const cudaError_t fe = cudaFree(b.M);
    b.M                  = NULL;
    LQ_CUDA_TRY(fe);

    /* (6) the column loop, block by block */
    LQ_TRY(dalloc(&b.E, R * BS));
    LQ_TRY(dalloc(&b.loss, R));
    LQ_TRY(dalloc(&b.codes, R * C));
    if (!loc) LQ_TRY(dalloc(&b.W1g, (BS + sub - 1) / sub * nt));
    LQ_CUDA_TRY(cudaMemset(b.loss, 0, (size_t)R * sizeof(double)));
    for (int64_t i1 = 0; i1 < C; i1 += BS) {
        const int64_t i2 = LQ_MIN(i1 + BS, C), cnt = i2 - i1;
        LQ_TRY(columns(sub, loc, b, R, C, i1, (int)cnt, G, q, sh.static_groups, sh.act_order));
        if (i2 < C) { /* Wt[:, i2:] -= E (R x cnt) . U[i1:i2, i2:] (row-major, so op T) */
            const double one = 1.0, minus = -1.0;
            LQ_CUBLAS_TRY(cublasDgemm(g_blas, CUBLAS_OP_N, CUBLAS_OP_T, (int)R, (int)(C - i2), (int)cnt, &minus, b.E,
                                      (int)R, b.U + i1 * C + i2, (int)C, &one, b.Wt + i2 * R, (int)R));
        }
    }

    /* (7) outputs: codes packed in the original column order, scales/zeros by group, the loss */
    LQ_TRY(dalloc(&b.packed, R * n_words));
    pack_kernel<<<lq__grid_for(R * n_words, 256), 256>>>(b.packed, b.codes, R, C, sh.bits, n_words);
    LQ_CUDA_TRY(cudaGetLastError());
    LQ_TRY(halloc(&b.hs, R * ng));
    LQ_TRY(halloc(&b.hz, R * ng));
    LQ_TRY(halloc(&b.hloss, R));
    LQ_CUDA_TRY(cudaMemcpy(data, b.packed, (size_t)(R * rb), cudaMemcpyDeviceToHost));
    LQ_CUDA_TRY(cudaMemcpy(b.hs, b.S, (size_t)(R * ng) * sizeof(float), cudaMemcpyDeviceToHost));
    LQ_CUDA_TRY(cudaMemcpy(b.hz, b.Z, (size_t)(R * ng) * sizeof(int), cudaMemcpyDeviceToHost));
    LQ_CUDA_TRY(cudaMemcpy(b.hloss, b.loss, (size_t)R * sizeof(double), cudaMemcpyDeviceToHost));
    for (int64_t r = 0; r < R; r++) {
        stats->loss += b.hloss[r];
        for (int64_t g = 0; g < ng; g++) {
            scales[r * ng + g] = b.hs[g * R + r];
            if (zeros) zeros[r * ng + g] = (uint8_t)b.hz[g * R + r];
        }
    }
    if (g_idx)
        for (int64_t c = 0; c < C; c++) {
            const int64_t k = b.hperm[c];
            g_idx[k]        = (int32_t)((sh.static_groups ? (sh.act_order ? k : c) : c) / G);
        }
    return LQ_OK;
}

extern "C" lq_status lq_cuda_gptq(const lq_gptq_params *p, const float *w, int64_t rows, int64_t cols, const double *H,
                                  void *data, float *scales, uint8_t *zeros, int32_t *g_idx, lq_gptq_stats *st) {
    lq_gptq_stats stats;
    memset(&stats, 0, sizeof stats);
    const lq_status s = gptq_run(p, w, rows, cols, H, data, scales, zeros, g_idx, &stats);
    if (st) *st = stats;
    return s;
}

/* ==== Hessian accumulation ==== */

/* H += alpha * S for the column tile [j0, j0 + jw) of x^T x: S (column-major, ld j1 = j0 + jw) holds rows
 * [0, j1) of it. Each pair i <= j is added once, to H[j][i] and (i < j) H[i][j], so H stays exactly
 * symmetric, one writer per element; 32 x 32 tiles so that both writes are coalesced. */
static __global__ void hess_add_kernel(double *__restrict__ H, const float *__restrict__ S, int64_t cols, int64_t j0,
                                       int64_t jw, double alpha) {
    __shared__ double tile[TILE][TILE + 1];
    const int64_t     j1 = j0 + jw, i0 = (int64_t)blockIdx.x * TILE, jj0 = (int64_t)blockIdx.y * TILE;
    if (i0 > j0 + jj0 + TILE - 1 || i0 >= j1) return; /* the whole block: below the diagonal */
    for (int k = threadIdx.y; k < TILE; k += blockDim.y) {
        const int64_t i = i0 + threadIdx.x, jj = jj0 + k, j = j0 + jj;
        double        v = 0.0;
        if (i < j1 && jj < jw && i <= j) {
            v                = __dmul_rn(alpha, (double)S[i + jj * j1]);
            H[j * cols + i]  = __dadd_rn(H[j * cols + i], v);
        }
        tile[k][threadIdx.x] = v;
    }
    __syncthreads();
    for (int k = threadIdx.y; k < TILE; k += blockDim.y) {
        const int64_t i = i0 + k, jj = jj0 + threadIdx.x, j = j0 + jj;
        if (i < j1 && jj < jw && i < j) H[i * cols + j] = __dadd_rn(H[i * cols + j], tile[threadIdx.x][k]);
    }
}

/* the f32 scratch for x^T x tiles, kept for the life of the process (HSCRATCH bytes at most) */
static float     *g_hs     = NULL;
static int64_t    g_hs_cap = 0;

extern "C" lq_status lq_cuda_hessian_accum(double *H, const float *x, int64_t n, int64_t cols, double alpha) {
    LQ_RETURN_IF(!H || (!x && n) || n < 0 || cols <= 0, LQ_ERR_INVALID_ARG, "hessian (cuda): bad arguments");
    LQ_RETURN_IF(cols > INT_MAX, LQ_ERR_SHAPE, "hessian (cuda): %lld columns", (long long)cols);
    if (n == 0) return LQ_OK;
    const std::lock_guard<std::mutex> lock(g_mu);
    LQ_TRY(blas_handle());
    /* tile width: the scratch holds cols x jw floats */
    const int64_t jw_max = LQ_MIN(cols, LQ_MAX((int64_t)TILE, HSCRATCH / 4 / cols));
    if (g_hs_cap < cols * jw_max) {
        if (g_hs) (void)cudaFree(g_hs);
        g_hs     = NULL;
        g_hs_cap = 0;
        LQ_CUDA_TRY(cudaMalloc((void **)&g_hs, (size_t)(cols * jw_max) * sizeof(float)));
        g_hs_cap = cols * jw_max;
    }
    const float one = 1.f, zero = 0.f;
    const dim3  tb(TILE, 8);
    for (int64_t t0 = 0; t0 < n; t0 += HCHUNK) {
        const int64_t m  = LQ_MIN((int64_t)HCHUNK, n - t0);
        const float  *xc = x + t0 * cols;
        for (int64_t j0 = 0; j0 < cols; j0 += jw_max) {
            const int64_t jw = LQ_MIN(jw_max, cols - j0), j1 = j0 + jw;
            /* x chunk row-major (m x cols) = column-major A (cols x m, ld cols):
             * S (j1 x jw) = A[0:j1, :] . A[j0:j1, :]^T, f32 (TF32 off: CUBLAS_DEFAULT_MATH) */
            LQ_CUBLAS_TRY(cublasSgemm(g_blas, CUBLAS_OP_N, CUBLAS_OP_T, (int)j1, (int)jw, (int)m, &one, xc, (int)cols,
                                      xc + j0, (int)cols, &zero, g_hs, (int)j1));
            const dim3 tg((unsigned)((j1 + TILE - 1) / TILE), (unsigned)((jw + TILE - 1) / TILE));
            hess_add_kernel<<<tg, tb>>>(H, g_hs, cols, j0, jw, alpha);
            LQ_CUDA_TRY(cudaGetLastError());
        }
    }
    LQ_CUDA_TRY(cudaStreamSynchronize(0));
    return LQ_OK;
}
