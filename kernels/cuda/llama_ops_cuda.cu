/* llama_ops_cuda.cu : the Llama forward-pass ops other than matmul on the
 * device: embedding gather, RMSNorm, RoPE, causal GQA attention over the f32
 * KV cache, SwiGLU and log-softmax.
 *
 * Each kernel follows its plain-C reference in kernels/cpu/llama_ref.c:
 * RMSNorm and log-softmax sum in f64, RoPE forms (float)pos · inv_freq in f32
 * and uses the accurate cosf/sinf, attention forms the scores q·k in index
 * order without FMA contraction (bit-identical scores) and an f32 softmax
 * with the maximum subtracted. Attention is one 256-thread block per
 * (token, head) that walks the keys in chunks of at most 8192 with an online
 * softmax (running max and sum, Milakov & Gimelshein 2018), so any position
 * fits in 37 KiB of shared memory; one chunk covers the whole history up to
 * 8192 positions, so short histories are a plain two-pass softmax. */
#include "llama_cuda_internal.cuh"

#include <limits.h>
#include <math.h>
#include <stdint.h>

#define EW_BLOCK      256  /* elementwise kernels                        */
#define ROW_BLOCK     256  /* one block per row: rmsnorm, log-softmax, embed */
#define ROW_GRID_MAX  65535
#define ATT_THREADS   256
#define ATT_MAX_CHUNK 8192 /* keys whose scores sit in shared memory at once */

/* ---- block reductions ---- */

struct op_max {
    __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
template <typename T> struct op_sum {
    __device__ T operator()(T a, T b) const { return a + b; }
};

template <typename T, typename Op> static __device__ __forceinline__ T warp_reduce(T v, Op op) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xFFFFFFFFu, v, o));
    return v;
}

/* op over every thread's v, returned to every thread. blockDim.x is a
 * multiple of 32 (<= 1024); `red` holds 33 shared slots. Starts with a
 * barrier, so back-to-back calls may share `red`, and is itself a barrier
 * for everything the block wrote to shared memory before it. */
template <typename T, typename Op> static __device__ T block_reduce(T v, T *red, Op op, T identity) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    v = warp_reduce(v, op);
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    if (warp == 0) {
        T r = lane < n_warps ? red[lane] : identity;
        r   = warp_reduce(r, op);
        if (lane == 0) red[32] = r;
    }
    __syncthreads();
    return red[32];
}

/* ---- GPU kernels ---- */

/* out (n, cols) = table rows ids[t] as f32; a bad id sets *bad and writes zeros */
static __global__ void embed_kernel(float *__restrict__ out, const void *__restrict__ table, int code,
                                    const int32_t *__restrict__ ids, int64_t n, int64_t rows, int64_t cols, int *bad) {
    for (int64_t t = blockIdx.x; t < n; t += gridDim.x) {
        const int32_t id = ids[t];
        const bool    ok = id >= 0 && id < rows;
        float *const  o  = out + t * cols;
        if (!ok && bad && threadIdx.x == 0) *bad = 1;
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
            o[c] = ok ? lq__wt_at(table, code, (int64_t)id * cols + c) : 0.f;
    }
}

/* y (n, dim) = x · 1/sqrt(mean(x²) + eps) ⊙ w; the sum of squares in f64 */
static __global__ void rmsnorm_kernel(float *y, const float *x, const void *__restrict__ w, int code, int64_t n,
                                      int64_t dim, float eps) {
    __shared__ double red[33];
    for (int64_t t = blockIdx.x; t < n; t += gridDim.x) {
        const float *xr = x + t * dim;
        float       *yr = y + t * dim;
        double       ss = 0;
        for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) ss += (double)xr[c] * (double)xr[c];
        ss              = block_reduce(ss, red, op_sum<double>(), 0.0); /* every read of xr is done: y may be x */
        const float inv = (float)(1.0 / sqrt(ss / (double)dim + (double)eps));
        for (int64_t c = threadIdx.x; c < dim; c += blockDim.x)
            yr[c] = __fmul_rn(__fmul_rn(xr[c], inv), lq__wt_at(w, code, c));
    }
}

/* q (n, hq, head_dim) and k (n, hk, head_dim) rotated in place, one thread
 * per pair; token t's heads are q's hq then k's hk */
static __global__ void rope_kernel(float *q, int64_t hq, float *k, int64_t hk, const int32_t *__restrict__ pos,
                                   int64_t pos0, int64_t n, int64_t head_dim, const float *__restrict__ inv_freq,
                                   bool neox) {
    const int64_t half = head_dim / 2, heads = hq + hk, total = n * heads * half;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int64_t i = idx % half, th = idx / half, t = th / heads, h = th - t * heads;
        const float   p = pos ? (float)pos[t] : (float)(pos0 + t);
        const float   a = __fmul_rn(p, inv_freq[i]);
        const float   c = cosf(a), s = sinf(a);
        float *const  v  = h < hq ? q + (t * hq + h) * head_dim : k + (t * hk + (h - hq)) * head_dim;
        const int64_t i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
        const float   x0 = v[i0], x1 = v[i1];
        v[i0]            = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
        v[i1]            = __fadd_rn(__fmul_rn(x1, c), __fmul_rn(x0, s));
    }
}

/* out (n, n_heads, hd): causal attention of query (t, h) over keys
 * 0 .. pos0 + t of kv head h / group. Block = (t, h). Shared memory:
 * qs (hd, padded to 4) | acc (G, hd) | e (chunk). Thread (g, i) of the
 * value pass owns acc[g][i] and sums keys j ≡ g (mod G) of each chunk;
 * the G partial rows are added at the end. */
static __global__ void __launch_bounds__(ATT_THREADS)
    attention_kernel(float *__restrict__ out, const float *__restrict__ q, const float *__restrict__ kc,
                     const float *__restrict__ vc, int64_t pos0, int n_heads, int group, int hd, int64_t kv_stride,
                     int chunk, int G, float scale, int vec) {
    extern __shared__ float4 att_smem[];
    __shared__ float        red[33];
    float *const            qs  = reinterpret_cast<float *>(att_smem);
    float *const            acc = qs + ((hd + 3) & ~3);
    float *const            e   = acc + G * hd;
    const int               GH  = G * hd;

    const int64_t t = blockIdx.x / n_heads;
    const int     h = (int)(blockIdx.x % n_heads), kvh = h / group;
    const float  *qv = q + (t * n_heads + h) * (int64_t)hd;
    for (int i = threadIdx.x; i < hd; i += blockDim.x) qs[i] = qv[i];
    for (int i = threadIdx.x; i < GH; i += blockDim.x) acc[i] = 0.f;
    __syncthreads();

    const int64_t      n_keys = pos0 + t + 1;
    const float *const kb = kc + (int64_t)kvh * hd, *const vb = vc + (int64_t)kvh * hd;
    float              m_run = -INFINITY, l_run = 0.f;
    for (int64_t c0 = 0; c0 < n_keys; c0 += chunk) {
        const int len = (int)(n_keys - c0 < chunk ? n_keys - c0 : chunk);
        /* scores: q·k summed in index order, multiply and add each rounded (as the reference) */
        float lmax = -INFINITY;
        for (int j = threadIdx.x; j < len; j += blockDim.x) {
            const float *kr = kb + (c0 + j) * kv_stride;
            float        d  = 0.f;
            if (vec) {
                const float4 *k4 = reinterpret_cast<const float4 *>(kr);
                const float4 *q4 = reinterpret_cast<const float4 *>(qs);
                for (int i = 0; i < hd / 4; i++) {
                    const float4 kk = __ldg(k4 + i), qq = q4[i];
                    d               = __fadd_rn(d, __fmul_rn(qq.x, kk.x));
                    d               = __fadd_rn(d, __fmul_rn(qq.y, kk.y));
                    d               = __fadd_rn(d, __fmul_rn(qq.z, kk.z));
                    d               = __fadd_rn(d, __fmul_rn(qq.w, kk.w));
                }
            } else {
                for (int i = 0; i < hd; i++) d = __fadd_rn(d, __fmul_rn(qs[i], __ldg(kr + i)));
            }
            d    = __fmul_rn(d, scale);
            e[j] = d;
            lmax = fmaxf(lmax, d);
        }
        const float m_new = fmaxf(m_run, block_reduce(lmax, red, op_max(), -INFINITY));
        float       lsum  = 0.f;
        for (int j = threadIdx.x; j < len; j += blockDim.x) {
            const float p = expf(e[j] - m_new);
            e[j]          = p;
            lsum += p;
        }
        const float l_chunk = block_reduce(lsum, red, op_sum<float>(), 0.f); /* also publishes e[] */
        const float alpha   = expf(m_run - m_new); /* 0 on the first chunk (m_run = -inf) */
        l_run               = l_run * alpha + l_chunk;
        for (int idx = threadIdx.x; idx < GH; idx += blockDim.x) {
            const int g = idx / hd, i = idx - g * hd;
            float     s = 0.f;
            for (int j = g; j < len; j += G) s += e[j] * __ldg(vb + (c0 + j) * kv_stride + i);
            acc[idx] = acc[idx] * alpha + s;
        }
        m_run = m_new;
        __syncthreads(); /* e[] is rewritten by the next chunk; acc is read below */
    }
    float *const o = out + (t * n_heads + h) * (int64_t)hd;
    for (int i = threadIdx.x; i < hd; i += blockDim.x) {
        float s = 0.f;
        for (int g = 0; g < G; g++) s += acc[g * hd + i];
        o[i] = s / l_run;
    }
}

static __global__ void swiglu_kernel(float *out, const float *gate, const float *__restrict__ up, int64_t n) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float g = gate[i];
        out[i]        = g / (1.0f + expf(-g)) * up[i];
    }
}

static __global__ void add_kernel(float *y, const float *__restrict__ x, int64_t n) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) y[i] = __fadd_rn(y[i], x[i]);
}

/* out (n, vocab) = l - (max + log Σ exp(l - max)), the sum in f64 */
static __global__ void log_softmax_kernel(float *out, const float *logits, int64_t n, int64_t vocab) {
    __shared__ float  redf[33];
    __shared__ double redd[33];
    for (int64_t t = blockIdx.x; t < n; t += gridDim.x) {
        const float *l  = logits + t * vocab;
        float       *o  = out + t * vocab;
        float        mx = -INFINITY;
        for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x) mx = fmaxf(mx, l[v]);
        mx         = block_reduce(mx, redf, op_max(), -INFINITY);
        double sum = 0;
        for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x) sum += exp((double)l[v] - (double)mx);
        sum             = block_reduce(sum, redd, op_sum<double>(), 0.0); /* all reads done: out may be logits */
        const float lse = (float)((double)mx + log(sum));
        for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x) o[v] = l[v] - lse;
    }
}

/* ---- kernel launchers (asynchronous, default stream) ---- */

static unsigned int row_grid(int64_t n) { return (unsigned int)(n < ROW_GRID_MAX ? n : ROW_GRID_MAX); }

lq_status lq__cuda_embed(float *out, const lq_weight *table, const int32_t *ids, int64_t n, int *bad) {
    if (n == 0) return LQ_OK;
    if (lq__cuda_is_quantized(table)) return lq__cuda_qembed(out, table, ids, n, bad);
    const lq_dtype dt = lq__cuda_plain_view(table).dtype; /* KEEP types are plain */
    embed_kernel<<<row_grid(n), ROW_BLOCK>>>(out, table->data, lq__cuda_wt_code(dt), ids, n, table->rows,
                                             table->cols, bad);
    LQ_CUDA_TRY(cudaGetLastError());
    return LQ_OK;
}

lq_status lq__cuda_rmsnorm(float *y, const float *x, const lq_weight *w, int64_t n, int64_t dim, float eps) {
    if (n == 0) return LQ_OK;
    rmsnorm_kernel<<<row_grid(n), ROW_BLOCK>>>(y, x, w->data, lq__cuda_wt_code(w->dtype), n, dim, eps);
    LQ_CUDA_TRY(cudaGetLastError());
    return LQ_OK;
}

lq_status lq__cuda_rope(float *q, int64_t n_heads_q, float *k, int64_t n_heads_k, const int32_t *pos, int64_t pos0,
                        int64_t n, int64_t head_dim, const float *inv_freq, bool neox) {
    const int64_t total = n * (n_heads_q + n_heads_k) * (head_dim / 2);
    if (total == 0) return LQ_OK;
    rope_kernel<<<lq__grid_for(total, EW_BLOCK), EW_BLOCK>>>(q, n_heads_q, k, n_heads_k, pos, pos0, n, head_dim,
                                                             inv_freq, neox);
    LQ_CUDA_TRY(cudaGetLastError());
    return LQ_OK;
}

lq_status lq__cuda_attention(float *out, const float *q, const float *k_cache, const float *v_cache, int64_t n,
                             int64_t pos0, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t kv_stride) {
    if (n == 0) return LQ_OK;
    LQ_ASSERT(head_dim >= 1 && head_dim <= LQ__ATT_MAX_HEAD_DIM && n_kv_heads >= 1 && n_heads % n_kv_heads == 0);
    LQ_ASSERT(n * n_heads <= INT_MAX && n_heads <= INT_MAX);
    const int     hd    = (int)head_dim;
    const int     G     = hd >= ATT_THREADS ? 1 : ATT_THREADS / hd;
    const int64_t total = pos0 + n;
    const int     chunk = (int)(total < ATT_MAX_CHUNK ? total : ATT_MAX_CHUNK);
    const size_t  smem  = ((size_t)((hd + 3) & ~3) + (size_t)G * (size_t)hd + (size_t)chunk) * sizeof(float);
    const int     vec   = hd % 4 == 0 && kv_stride % 4 == 0 && (uintptr_t)k_cache % 16 == 0;
    const float   scale = 1.0f / sqrtf((float)head_dim); /* as lq_attention_ref */
    /* <= (512 + 512 + 8192) floats = 36 KiB: under the 48 KiB that needs no opt-in */
    LQ_ASSERT(smem + 33 * sizeof(float) <= 48 * 1024);
    attention_kernel<<<(unsigned int)(n * n_heads), ATT_THREADS, smem>>>(
        out, q, k_cache, v_cache, pos0, (int)n_heads, (int)(n_heads / n_kv_heads), hd, kv_stride, chunk, G, scale,
        vec);
    LQ_CUDA_TRY(cudaGetLastError());
    return LQ_OK;
}

lq_status lq__cuda_swiglu(float *out, const float *gate, const float *up, int64_t n) {
    if (n == 0) return LQ_OK;
    swiglu_kernel<<<lq__grid_for(n, EW_BLOCK), EW_BLOCK>>>(out, gate, up, n);
    LQ_CUDA_TRY(cudaGetLastError());
    return LQ_OK;
}

lq_status lq__cuda_log_softmax(float *out, const float *logits, int64_t n, int64_t vocab) {
    if (n == 0) return LQ_OK;
    log_softmax_kernel<<<row_grid(n), ROW_BLOCK>>>(out, logits, n, vocab);
    LQ_CUDA_TRY(cudaGetLastError());
    return LQ_OK;
}

/* ---- public entry points: validate, launch, synchronize ---- */

/* waits for the default stream; a launch error (st) wins over a fault */
static lq_status finish(lq_status st, const char *op) {
    const cudaError_t e = cudaStreamSynchronize(0);
    if (st != LQ_OK) return st;
    if (e != cudaSuccess) {
        LQ_LOG_ERR("%s: %s (%s)", op, cudaGetErrorString(e), cudaGetErrorName(e));
        (void)cudaGetLastError();
        return LQ_ERR_CUDA;
    }
    return LQ_OK;
}

static lq_status check_weight(const lq_weight *w, const char *op) {
    LQ_RETURN_IF(w == NULL || w->data == NULL, LQ_ERR_INVALID_ARG, "%s: NULL weight", op);
    LQ_RETURN_IF(w->qtype != LQ_QT_NONE, LQ_ERR_UNSUPPORTED, "%s: %s weights are not supported (plain only)", op,
                 lq_qtype_name(w->qtype));
    LQ_RETURN_IF(lq__cuda_wt_code(w->dtype) < 0, LQ_ERR_UNSUPPORTED, "%s: weight dtype %s is not F32/F16/BF16", op,
                 lq_dtype_name(w->dtype));
    LQ_RETURN_IF(w->rows <= 0 || w->cols <= 0, LQ_ERR_SHAPE, "%s: weight shape (%lld, %lld)", op,
                 (long long)w->rows, (long long)w->cols);
    return LQ_OK;
}

extern "C" lq_status lq_cuda_embed(float *out, const lq_weight *table, const int32_t *ids, int64_t n) {
    LQ_RETURN_IF(n < 0, LQ_ERR_INVALID_ARG, "embed: n = %lld", (long long)n);
    if (n == 0) return LQ_OK;
    if (table && table->qtype != LQ_QT_NONE) { /* quantized or KEEP */
        LQ_TRY(lq__cuda_qweight_ok(table, "embed"));
        LQ_RETURN_IF(table->data == NULL || table->rows <= 0, LQ_ERR_INVALID_ARG, "embed: empty %s table",
                     lq_qtype_name(table->qtype));
    } else {
        LQ_TRY(check_weight(table, "embed"));
    }
    LQ_RETURN_IF(out == NULL || ids == NULL, LQ_ERR_INVALID_ARG, "embed: NULL buffer");
    int *bad = NULL;
    LQ_CUDA_TRY(cudaMalloc(&bad, sizeof(int)));
    int       host_bad = 0;
    lq_status st       = LQ_OK;
    cudaError_t e      = cudaMemset(bad, 0, sizeof(int));
    if (e == cudaSuccess) {
        st = lq__cuda_embed(out, table, ids, n, bad);
        if (st == LQ_OK) e = cudaMemcpy(&host_bad, bad, sizeof(int), cudaMemcpyDeviceToHost);
    }
    const cudaError_t fe = cudaFree(bad);
    if (st != LQ_OK) return st;
    if (e == cudaSuccess) e = fe;
    if (e != cudaSuccess) {
        LQ_LOG_ERR("embed: %s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
        (void)cudaGetLastError();
        return LQ_ERR_CUDA;
    }
    LQ_RETURN_IF(host_bad, LQ_ERR_INVALID_ARG, "embed: a token id is outside the vocabulary [0, %lld)",
                 (long long)table->rows);
    return LQ_OK;
}

extern "C" lq_status lq_cuda_rmsnorm(float *y, const float *x, const lq_weight *w, int64_t n, int64_t dim, float eps) {
    LQ_RETURN_IF(n < 0 || dim <= 0, LQ_ERR_SHAPE, "rmsnorm: n %lld, dim %lld", (long long)n, (long long)dim);
    if (n == 0) return LQ_OK;
    LQ_TRY(check_weight(w, "rmsnorm"));
    LQ_RETURN_IF(w->rows * w->cols < dim, LQ_ERR_SHAPE, "rmsnorm: weight (%lld, %lld) has fewer than dim %lld values",
                 (long long)w->rows, (long long)w->cols, (long long)dim);
    LQ_RETURN_IF(y == NULL || x == NULL, LQ_ERR_INVALID_ARG, "rmsnorm: NULL buffer");
    return finish(lq__cuda_rmsnorm(y, x, w, n, dim, eps), "rmsnorm");
}

extern "C" lq_status lq_cuda_rope(float *x, const int32_t *pos, int64_t n, int64_t n_heads, int64_t head_dim,
                                  const float *inv_freq, bool neox) {
    LQ_RETURN_IF(n < 0 || n_heads <= 0 || head_dim <= 0 || head_dim % 2, LQ_ERR_SHAPE,
                 "rope: n %lld, n_heads %lld, head_dim %lld (must be even)", (long long)n, (long long)n_heads,
                 (long long)head_dim);
    if (n == 0) return LQ_OK;
    LQ_RETURN_IF(x == NULL || pos == NULL || inv_freq == NULL, LQ_ERR_INVALID_ARG, "rope: NULL buffer");
    return finish(lq__cuda_rope(x, n_heads, NULL, 0, pos, 0, n, head_dim, inv_freq, neox), "rope");
}

extern "C" lq_status lq_cuda_attention(float *out, const float *q, const float *k_cache, const float *v_cache,
                                       int64_t n, int64_t pos0, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                                       int64_t kv_stride) {
    LQ_RETURN_IF(n < 0 || pos0 < 0 || n_heads <= 0 || n_kv_heads <= 0 || n_heads % n_kv_heads != 0, LQ_ERR_SHAPE,
                 "attention: n %lld, pos0 %lld, %lld heads, %lld kv heads (must divide)", (long long)n,
                 (long long)pos0, (long long)n_heads, (long long)n_kv_heads);
    LQ_RETURN_IF(head_dim <= 0 || head_dim > LQ__ATT_MAX_HEAD_DIM, LQ_ERR_UNSUPPORTED,
                 "attention: head_dim %lld outside [1, %d]", (long long)head_dim, LQ__ATT_MAX_HEAD_DIM);
    LQ_RETURN_IF(kv_stride < n_kv_heads * head_dim, LQ_ERR_SHAPE, "attention: kv_stride %lld < %lld kv heads x %lld",
                 (long long)kv_stride, (long long)n_kv_heads, (long long)head_dim);
    LQ_RETURN_IF(n > INT_MAX / n_heads || pos0 > INT32_MAX - n, LQ_ERR_SHAPE,
                 "attention: %lld tokens x %lld heads at position %lld is too large", (long long)n, (long long)n_heads,
                 (long long)pos0);
    if (n == 0) return LQ_OK;
    LQ_RETURN_IF(out == NULL || q == NULL || k_cache == NULL || v_cache == NULL, LQ_ERR_INVALID_ARG,
                 "attention: NULL buffer");
    return finish(lq__cuda_attention(out, q, k_cache, v_cache, n, pos0, n_heads, n_kv_heads, head_dim, kv_stride),
                  "attention");
}

extern "C" lq_status lq_cuda_swiglu(float *out, const float *gate, const float *up, int64_t n) {
    LQ_RETURN_IF(n < 0, LQ_ERR_SHAPE, "swiglu: n = %lld", (long long)n);
    if (n == 0) return LQ_OK;
    LQ_RETURN_IF(out == NULL || gate == NULL || up == NULL, LQ_ERR_INVALID_ARG, "swiglu: NULL buffer");
    return finish(lq__cuda_swiglu(out, gate, up, n), "swiglu");
}

extern "C" lq_status lq_cuda_add(float *y, const float *x, int64_t n) {
    LQ_RETURN_IF(n < 0, LQ_ERR_SHAPE, "add: n = %lld", (long long)n);
    if (n == 0) return LQ_OK;
    LQ_RETURN_IF(y == NULL || x == NULL, LQ_ERR_INVALID_ARG, "add: NULL buffer");
    add_kernel<<<lq__grid_for(n, EW_BLOCK), EW_BLOCK>>>(y, x, n);
    LQ_CUDA_TRY(cudaGetLastError());
    return finish(LQ_OK, "add");
}

extern "C" lq_status lq_cuda_log_softmax(float *out, const float *logits, int64_t n, int64_t vocab) {
    LQ_RETURN_IF(n < 0 || vocab <= 0, LQ_ERR_SHAPE, "log_softmax: n %lld, vocab %lld", (long long)n,
                 (long long)vocab);
    if (n == 0) return LQ_OK;
    LQ_RETURN_IF(out == NULL || logits == NULL, LQ_ERR_INVALID_ARG, "log_softmax: NULL buffer");
    return finish(lq__cuda_log_softmax(out, logits, n, vocab), "log_softmax");
}
