/* qmatmul_cuda.cu : quantized weights on the device (INT 2/3/4/8-bit, FP8,
 * the GGML types): fused dequantize + GEMV, f16 tiles + cuBLAS for larger
 * n, and the embedding gather. The CPU reference is kernels/cpu/qmatmul_ref.c.
 *
 * Three paths, chosen by the weight and n:
 *   tensor-core GEMV (n <= 16; int4 and int8, any group of 32k, sym/asym;
 *     cols a multiple of 128 (int4) / 64 (int8), rows 16-byte aligned):
 *     a block of 8 warps owns 16 rows, each warp a slice of K. A lane loads
 *     one 16-byte word of packed codes from each of its two rows (rows g and
 *     g + 8 of the m16 tile), turns them into f16 pairs by bit tricks
 *     ((code | 0x6400) as f16 is 1024 + code, so (1024 + code) − (1024 + z)
 *     is code − z exactly, then × the group scale in f16) and feeds them as
 *     the A fragments of mma.m16n8k16 (f16 x f16 -> f32). The dot product does
 *     not care which physical column a "k" of the fragment is, so each lane's
 *     fragments come from the columns it loaded, and x (rounded to f16, as
 *     the F16 weight path does) is permuted once per call to match. One or
 *     two n8 tiles cover up to 16 tokens: every weight byte is read once for
 *     all tokens, and the tensor cores do the multiply-adds, so batch 16
 *     costs about what batch 1 does. The 8 warps' partial sums are added in
 *     a fixed order in shared memory: deterministic.
 *   CUDA-core GEMV (n <= 16, every other type or shape): one warp per row,
 *     each lane decodes 32-element units to f32 in registers (bit-identical
 *     to the reference weights) and accumulates all n tokens; a fixed
 *     shuffle tree per output.
 *   n > 16: rows are dequantized, at most 32 MB of f16 at a time, and
 *     multiplied by x (f16) with cublasGemmEx (f32 accumulation).
 * The embedding gather decodes with the same f32 unit decoder (__fmul_rn and
 * friends: no FMA contraction), so it is bit-identical to lq_embed_ref. */
#include "llama_cuda_internal.cuh"

#include <limits.h>
#include <stdint.h>
#include <string.h>

#define QG_WARPS    4   /* CUDA-core GEMV: rows per block, one warp each        */
#define QM_WARPS    8   /* tensor-core GEMV: warps per block, slices of K       */
#define QM_ROWS     16  /* tensor-core GEMV: rows per block (one m16 tile)      */
#define QGEMV_MAX_N 16  /* n above this: f16 tiles + cuBLAS                      */
#define EW_BLOCK    256 /* elementwise kernels                                  */
#define EMB_BLOCK   128
#define ROW_GRID_MAX 65535
#define TILE_BYTES  ((size_t)32 << 20) /* the f16 tile of the n > 16 path, at most */

enum { QK_INT = 0, QK_FP8 = 1, QK_GGML = 2 };

/* a quantized weight as the kernels see it (passed by value) */
struct qdesc {
    const uint8_t *data;
    const float   *scales;
    const uint8_t *zeros;
    int64_t        rows, cols, row_bytes;
    int64_t        group; /* INT: elements per scale (cols for per-channel) */
    int64_t        ng;    /* INT: scales per row                           */
    int            qtype, kind, bits, zsym, fp8_tensor, aligned4;
};

static qdesc make_qdesc(const lq_weight *w) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(w->qtype);
    qdesc                  q;
    memset(&q, 0, sizeof q);
    q.data       = static_cast<const uint8_t *>(w->data);
    q.scales     = w->scales;
    q.zeros      = w->zeros;
    q.rows       = w->rows;
    q.cols       = w->cols;
    q.row_bytes  = (int64_t)lq_qtype_row_bytes(w->qtype, w->cols);
    q.qtype      = (int)w->qtype;
    q.kind       = tr->kind == LQ_QK_INT ? QK_INT : tr->kind == LQ_QK_FP8 ? QK_FP8 : QK_GGML;
    q.bits       = tr->bits;
    q.group      = tr->kind == LQ_QK_INT && tr->group > 0 ? tr->group : w->cols;
    q.ng         = lq_qtype_n_groups(w->qtype, w->cols);
    q.zsym       = 1 << (tr->bits - 1);
    q.fp8_tensor = tr->kind == LQ_QK_FP8 && tr->group < 0;
    q.aligned4   = (uintptr_t)w->data % 4 == 0;
    return q;
}

/* ---- GPU: f32 decoding of 32-element units, as qmatmul_ref.c ---- */

static __device__ __forceinline__ float dev_f16(const uint8_t *p) {
    return __half2float(__ushort_as_half(static_cast<unsigned short>(p[0] | (p[1] << 8))));
}

static __device__ __forceinline__ uint32_t dev_le32(const uint8_t *p, bool aligned) {
    if (aligned) return __ldg(reinterpret_cast<const uint32_t *>(p));
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* OCP E4M3FN, exact (lq_e4m3_to_f32) */
static __device__ __forceinline__ float dev_e4m3(unsigned v) {
    const unsigned sign = (v & 0x80u) << 24, e = (v >> 3) & 15u, m = v & 7u;
    if ((v & 0x7Fu) == 0x7Fu) return __uint_as_float(sign | 0x7FC00000u);
    if (e != 0) return __uint_as_float(sign | ((e + 120u) << 23) | (m << 20));
    const float f = __fmul_rn((float)m, 0x1p-9f); /* subnormal m · 2^-9, exact */
    return sign ? -f : f;
}

/* INT, B bits: elements [k0, k0 + 32) of row r (k0 a multiple of 32); past cols: 0 */
template <int B> static __device__ __forceinline__ void int_unit(const qdesc &q, int64_t r, int64_t k0, float *w) {
    const uint8_t *row = q.data + r * q.row_bytes;
    const int64_t  w0 = k0 * B / 32, nw = q.row_bytes / 4;
    uint32_t       words[B + 1];
#pragma unroll
    for (int j = 0; j <= B; j++) words[j] = w0 + j < nw ? dev_le32(row + 4 * (w0 + j), q.aligned4) : 0u;
    const int64_t gi = r * q.ng + k0 / q.group; /* a unit never straddles a group */
    const float   s  = __ldg(q.scales + gi);
    const int     z  = q.zeros ? (int)q.zeros[gi] : q.zsym;
#pragma unroll
    for (int i = 0; i < 32; i++) {
        const int      bit = i * B, j = bit / 32, sh = bit % 32;
        const uint64_t v    = (uint64_t)words[j] | ((uint64_t)words[j + 1] << 32);
        const int      code = (int)((v >> sh) & ((1u << B) - 1u));
        w[i]                = k0 + i < q.cols ? __fmul_rn(s, (float)(code - z)) : 0.f;
    }
}

static __device__ __forceinline__ void q4k_scale_min(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m  = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        *m  = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* elements [32u, 32u + 32) of row r as f32 (past cols: 0) */
static __device__ __forceinline__ void decode_unit(const qdesc &q, int64_t r, int64_t u, float *w) {
    const int64_t k0 = u * 32;
    if (q.kind == QK_INT) {
        switch (q.bits) {
        case 2: int_unit<2>(q, r, k0, w); break;
        case 3: int_unit<3>(q, r, k0, w); break;
        case 4: int_unit<4>(q, r, k0, w); break;
        default: int_unit<8>(q, r, k0, w); break;
        }
        return;
    }
    const uint8_t *row = q.data + r * q.row_bytes;
    if (q.kind == QK_FP8) {
        const float s = __ldg(q.scales + (q.fp8_tensor ? 0 : r));
#pragma unroll
        for (int i = 0; i < 32; i++) w[i] = k0 + i < q.cols ? __fmul_rn(s, dev_e4m3(row[k0 + i])) : 0.f;
        return;
    }
    switch (q.qtype) {
    case LQ_QT_Q8_0: {
        const uint8_t *b = row + u * 34;
        const float    d = dev_f16(b);
#pragma unroll
        for (int i = 0; i < 32; i++) w[i] = __fmul_rn((float)(int8_t)b[2 + i], d);
        break;
    }
    case LQ_QT_Q4_0: {
        const uint8_t *b = row + u * 18;
        const float    d = dev_f16(b);
#pragma unroll
        for (int i = 0; i < 32; i++) w[i] = __fmul_rn((float)(((b[2 + i % 16] >> (4 * (i / 16))) & 15) - 8), d);
        break;
    }
    case LQ_QT_Q5_0: {
        const uint8_t *b  = row + u * 22;
        const float    d  = dev_f16(b);
        const uint32_t qh = (uint32_t)b[2] | ((uint32_t)b[3] << 8) | ((uint32_t)b[4] << 16) | ((uint32_t)b[5] << 24);
#pragma unroll
        for (int i = 0; i < 32; i++) {
            const int lo = (b[6 + i % 16] >> (4 * (i / 16))) & 15, hi = (int)((qh >> i) & 1u);
            w[i]         = __fmul_rn((float)((lo | (hi << 4)) - 16), d);
        }
        break;
    }
    case LQ_QT_Q4_K: { /* unit = sub-block j of super-block u / 8 */
        const uint8_t *b = row + (u / 8) * 144;
        const int      j = (int)(u % 8);
        int            sc, m;
        q4k_scale_min(b + 4, j, &sc, &m);
        const float    d1 = __fmul_rn(dev_f16(b), (float)sc), m1 = __fmul_rn(dev_f16(b + 2), (float)m);
        const uint8_t *qs = b + 16 + 32 * (j / 2);
        const int      sh = 4 * (j % 2);
#pragma unroll
        for (int i = 0; i < 32; i++) w[i] = __fsub_rn(__fmul_rn(d1, (float)((qs[i] >> sh) & 15)), m1);
        break;
    }
    default: { /* Q6_K: unit j = quarter (j % 4) of the 128-half j / 4 */
        const uint8_t *b = row + (u / 8) * 210;
        const int      j = (int)(u % 8), h = j / 4, qu = j % 4;
        const uint8_t *ql = b + 64 * h + 32 * (qu & 1), *qh = b + 128 + 32 * h;
        const int8_t  *sc = reinterpret_cast<const int8_t *>(b + 192) + 8 * h + 2 * qu;
        const float    d  = dev_f16(b + 208);
#pragma unroll
        for (int i = 0; i < 32; i++) {
            const int q6 = (((ql[i] >> (4 * (qu >> 1))) & 15) | (((qh[i] >> (2 * qu)) & 3) << 4)) - 32;
            w[i]         = __fmul_rn(__fmul_rn(d, (float)sc[i / 16]), (float)q6);
        }
        break;
    }
    }
}

/* ---- GPU: CUDA-core GEMV ---- */

/* y (n, rows) (+)= x (n, cols) · Wᵀ + bias for n <= NT: one warp per row,
 * lanes over 32-element units; `vec`: cols % 32 == 0 and x 16-byte aligned */
template <int NT>
static __global__ void __launch_bounds__(32 * QG_WARPS)
    qgemv_kernel(const qdesc q, float *__restrict__ y, const float *__restrict__ x, int n,
                 const float *__restrict__ bias, int accumulate, int vec) {
    const int     lane = threadIdx.x & 31;
    const int64_t row  = (int64_t)blockIdx.x * QG_WARPS + (threadIdx.x >> 5);
    if (row >= q.rows) return; /* the whole warp */
    const int64_t cols = q.cols, n_units = (cols + 31) / 32;
    float         acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0.f;
    for (int64_t u = lane; u < n_units; u += 32) {
        float w[32];
        decode_unit(q, row, u, w);
        const int64_t k0 = u * 32;
#pragma unroll
        for (int t = 0; t < NT; t++) {
            if (t >= n) break;
            const float *xt = x + t * cols + k0;
            float        a  = acc[t];
            if (vec) {
                const float4 *x4 = reinterpret_cast<const float4 *>(xt);
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    const float4 v = __ldg(x4 + i);
                    a += w[4 * i] * v.x;
                    a += w[4 * i + 1] * v.y;
                    a += w[4 * i + 2] * v.z;
                    a += w[4 * i + 3] * v.w;
                }
            } else {
#pragma unroll
                for (int i = 0; i < 32; i++)
                    if (k0 + i < cols) a += w[i] * __ldg(xt + i);
            }
            acc[t] = a;
        }
    }
#pragma unroll
    for (int t = 0; t < NT; t++) {
        float a = acc[t];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) a += __shfl_xor_sync(0xFFFFFFFFu, a, o);
        if (lane == 0 && t < n) {
            const float v = bias ? a + bias[row] : a;
            float      *o = y + (int64_t)t * q.rows + row;
            *o            = accumulate ? *o + v : v;
        }
    }
}

/* ---- GPU: tensor-core GEMV (int4 / int8) ---- */

static __device__ __forceinline__ uint32_t h2_bits(__half2 v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    return u;
}
static __device__ __forceinline__ __half2 bits_h2(uint32_t u) {
    __half2 v;
    memcpy(&v, &u, 4);
    return v;
}

/* int4 word w (codes e0..e7, LSB first) -> f16 pair {e_i, e_{i+4}} dequantized: (e − z) · s */
static __device__ __forceinline__ uint32_t dq4(uint32_t w, int i, __half2 z1024, __half2 s) {
    return h2_bits(__hmul2(__hsub2(bits_h2(((w >> (4 * i)) & 0x000F000Fu) | 0x64006400u), z1024), s));
}
/* int8 word w (codes e0..e3) -> f16 pair {e_i, e_{i+2}} dequantized */
static __device__ __forceinline__ uint32_t dq8(uint32_t w, int i, __half2 z1024, __half2 s) {
    return h2_bits(__hmul2(__hsub2(bits_h2(((w >> (8 * i)) & 0x00FF00FFu) | 0x64006400u), z1024), s));
}

/* c (16 x 8, f32) += a (16 x 16, f16, row) · b (16 x 8, f16, col) */
static __device__ __forceinline__ void mma16816(float *c, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                                uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

static __device__ __forceinline__ uint32_t word_of(const uint4 &v, int i) {
    return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

/* Fragments (PTX ISA, mma.m16n8k16 .f16): lane = 4g + t; A regs {a0a1, a2a3,
 * a4a5, a6a7} = (row g, k 2t..2t+1), (row g+8, same), (row g, k 2t+8..),
 * (row g+8, k 2t+8..); B regs (k 2t..2t+1, n g), (k 2t+8.., n g); C (row g,
 * n 2t, 2t+1), (row g+8, n 2t, 2t+1). Lane t of an iteration owns physical
 * columns [col, col + LC) of its rows g, g+8: for int4, word j (8 codes)
 * gives steps (j, h), h = 0, 1, with k 2t..2t+1 <- codes {2h, 2h+4} and
 * k 2t+8.. <- codes {2h+1, 2h+5}; for int8, word j gives step j with codes
 * {0, 2} and {1, 3}. xp holds x in f16 permuted so that its pairs line up:
 * per 8 columns e0 e4 e1 e5 e2 e6 e3 e7 (int4), per 4 columns e0 e2 e1 e3
 * (int8). xp has 8·NB token rows, zero past n. */
template <int B, int NB>
static __global__ void __launch_bounds__(32 * QM_WARPS)
    qmma_kernel(const qdesc q, float *__restrict__ y, const __half *__restrict__ xp, int n,
                const float *__restrict__ bias, int accumulate) {
    constexpr int  LC = B == 4 ? 32 : 16; /* columns per lane per iteration: one uint4 of codes */
    constexpr int  KC = 4 * LC;           /* columns per warp per iteration                     */
    __shared__ float red[QM_WARPS][QM_ROWS][8 * NB + 1];
    const int      warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int64_t  r0 = (int64_t)blockIdx.x * QM_ROWS;
    const int64_t  ra = r0 + g < q.rows ? r0 + g : q.rows - 1, rb = r0 + g + 8 < q.rows ? r0 + g + 8 : q.rows - 1;
    const uint8_t *wa = q.data + ra * q.row_bytes, *wb = q.data + rb * q.row_bytes;
    const int64_t  iters = q.cols / KC;
    float          c[NB][4];
#pragma unroll
    for (int nb = 0; nb < NB; nb++) c[nb][0] = c[nb][1] = c[nb][2] = c[nb][3] = 0.f;
#pragma unroll 2
    for (int64_t it = warp; it < iters; it += QM_WARPS) {
        const int64_t col = it * KC + (int64_t)t * LC;
        const uint4   va  = __ldg(reinterpret_cast<const uint4 *>(wa + col * B / 8));
        const uint4   vb  = __ldg(reinterpret_cast<const uint4 *>(wb + col * B / 8));
        uint4         xv[NB][LC / 8];
#pragma unroll
        for (int nb = 0; nb < NB; nb++) {
            const uint4 *xs = reinterpret_cast<const uint4 *>(xp + (int64_t)(g + 8 * nb) * q.cols + col);
#pragma unroll
            for (int v = 0; v < LC / 8; v++) xv[nb][v] = __ldg(xs + v);
        }
        const int64_t ga = ra * q.ng + col / q.group, gb = rb * q.ng + col / q.group;
        const __half2 sa = __float2half2_rn(__ldg(q.scales + ga)), sb = __float2half2_rn(__ldg(q.scales + gb));
        const __half2 za = __float2half2_rn(1024.f + (float)(q.zeros ? q.zeros[ga] : q.zsym));
        const __half2 zb = __float2half2_rn(1024.f + (float)(q.zeros ? q.zeros[gb] : q.zsym));
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const uint32_t a = word_of(va, j), b = word_of(vb, j);
            if (B == 4) {
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const uint32_t a0 = dq4(a, 2 * h, za, sa), a2 = dq4(a, 2 * h + 1, za, sa);
                    const uint32_t a1 = dq4(b, 2 * h, zb, sb), a3 = dq4(b, 2 * h + 1, zb, sb);
#pragma unroll
                    for (int nb = 0; nb < NB; nb++) {
                        const int wi = 4 * j + 2 * h; /* u32 word of the lane's x: pairs wi, wi + 1 */
                        mma16816(c[nb], a0, a1, a2, a3, word_of(xv[nb][wi / 4], wi % 4),
                                 word_of(xv[nb][(wi + 1) / 4], (wi + 1) % 4));
                    }
                }
            } else {
                const uint32_t a0 = dq8(a, 0, za, sa), a2 = dq8(a, 1, za, sa);
                const uint32_t a1 = dq8(b, 0, zb, sb), a3 = dq8(b, 1, zb, sb);
#pragma unroll
                for (int nb = 0; nb < NB; nb++) {
                    const int wi = 2 * j;
                    mma16816(c[nb], a0, a1, a2, a3, word_of(xv[nb][wi / 4], wi % 4),
                             word_of(xv[nb][(wi + 1) / 4], (wi + 1) % 4));
                }
            }
        }
    }
#pragma unroll
    for (int nb = 0; nb < NB; nb++) {
        red[warp][g][8 * nb + 2 * t]         = c[nb][0];
        red[warp][g][8 * nb + 2 * t + 1]     = c[nb][1];
        red[warp][g + 8][8 * nb + 2 * t]     = c[nb][2];
        red[warp][g + 8][8 * nb + 2 * t + 1] = c[nb][3];
    }
    __syncthreads();
    for (int i = threadIdx.x; i < QM_ROWS * 8 * NB; i += blockDim.x) {
        const int     rr = i / (8 * NB), tok = i % (8 * NB);
        const int64_t r  = r0 + rr;
        if (r >= q.rows || tok >= n) continue;
        float s = 0.f;
#pragma unroll
        for (int wi = 0; wi < QM_WARPS; wi++) s += red[wi][rr][tok];
        const float v = bias ? s + bias[r] : s;
        float      *o = y + (int64_t)tok * q.rows + r;
        *o            = accumulate ? *o + v : v;
    }
}

/* xp (n_pad, cols) f16 = x permuted for qmma_kernel<B>, rows n.. zero */
template <int B>
static __global__ void qprep_kernel(__half *__restrict__ xp, const float *__restrict__ x, int n, int n_pad,
                                    int64_t cols) {
    const int64_t count = (int64_t)n_pad * cols, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride) {
        const int64_t tok = i / cols, c = i % cols;
        int64_t       src;
        if (B == 4) {
            const int p = (int)(c % 8);
            src         = c - p + p / 2 + 4 * (p % 2);
        } else {
            const int p = (int)(c % 4);
            src         = c - p + (p == 1 ? 2 : p == 2 ? 1 : p);
        }
        xp[i] = tok < n ? __float2half_rn(x[tok * cols + src]) : __float2half_rn(0.f);
    }
}

/* ---- GPU: n > 16 (f16 tiles) and the embedding ---- */

/* tile (tr, cols) f16 = rows [r0, r0 + tr) dequantized */
static __global__ void qdequant_kernel(const qdesc q, int64_t r0, int64_t tr, __half *__restrict__ tile) {
    const int64_t upr = (q.cols + 31) / 32, count = tr * upr, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride) {
        const int64_t rr = i / upr, u = i % upr;
        float         w[32];
        decode_unit(q, r0 + rr, u, w);
        __half *const o = tile + rr * q.cols + u * 32;
#pragma unroll
        for (int k = 0; k < 32; k++)
            if (u * 32 + k < q.cols) o[k] = __float2half_rn(w[k]);
    }
}

static __global__ void qpack_kernel(__half *__restrict__ dst, const float *__restrict__ src, int64_t count) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride)
        dst[i] = __float2half_rn(src[i]);
}

static __global__ void qbias_kernel(float *__restrict__ y, const float *__restrict__ bias, int64_t n, int64_t rows) {
    const int64_t count = n * rows, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride) y[i] += bias[i % rows];
}

/* out (n, cols) = rows ids[t]; a bad id sets *bad and writes zeros */
static __global__ void qembed_kernel(float *__restrict__ out, const qdesc q, const int32_t *__restrict__ ids,
                                     int64_t n, int *bad) {
    const int64_t upr = (q.cols + 31) / 32;
    for (int64_t t = blockIdx.x; t < n; t += gridDim.x) {
        const int32_t id = ids[t];
        const bool    ok = id >= 0 && id < q.rows;
        if (!ok && bad && threadIdx.x == 0) *bad = 1;
        float *const o = out + t * q.cols;
        for (int64_t u = threadIdx.x; u < upr; u += blockDim.x) {
            float w[32];
            if (ok) decode_unit(q, id, u, w);
#pragma unroll
            for (int k = 0; k < 32; k++)
                if (u * 32 + k < q.cols) o[u * 32 + k] = ok ? w[k] : 0.f;
        }
    }
}

/* ---- kernel launchers ---- */

/* 4 or 8 when the tensor-core GEMV takes this weight, else 0 */
static int mma_bits(const lq_weight *w) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(w->qtype);
    if (!tr || tr->kind != LQ_QK_INT || (tr->bits != 4 && tr->bits != 8)) return 0;
    const int64_t kc = tr->bits == 4 ? 128 : 64;
    if (w->cols % kc != 0 || (uintptr_t)w->data % 16 != 0) return 0;
    return tr->bits; /* groups are 32k or the whole row: a lane's columns share a scale */
}

/* rows of the f16 tile of the n > 16 path */
static int64_t tile_rows(const lq_weight *w) {
    int64_t tr = (int64_t)(TILE_BYTES / 2 / (size_t)w->cols) / 16 * 16;
    if (tr < 16) tr = 16;
    return tr < w->rows ? tr : w->rows;
}

static size_t align256(size_t b) { return (b + 255) / 256 * 256; }

size_t lq__cuda_qmatmul_scratch_bytes(int64_t n, const lq_weight *w) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(w->qtype);
    if (!tr || n <= 0 || w->cols <= 0) return 0;
    if (n <= QGEMV_MAX_N) { /* the permuted f16 x of the tensor-core GEMV (alignment aside) */
        const bool int48 = tr->kind == LQ_QK_INT && (tr->bits == 4 || tr->bits == 8) &&
                           w->cols % (tr->bits == 4 ? 128 : 64) == 0;
        return int48 ? (size_t)(n <= 8 ? 8 : 16) * (size_t)w->cols * sizeof(__half) : 0;
    }
    return align256((size_t)n * (size_t)w->cols * sizeof(__half)) +
           (size_t)tile_rows(w) * (size_t)w->cols * sizeof(__half);
}

lq_status lq__cuda_qmatmul(cublasHandle_t blas, float *y, const float *x, int64_t n, const lq_weight *w,
                           const float *bias, void *scratch, bool reuse_scratch, bool accumulate) {
    if (n == 0) return LQ_OK;
    const qdesc   q = make_qdesc(w);
    const int64_t rows = w->rows, cols = w->cols;
    if (n <= QGEMV_MAX_N) {
        const int bits = mma_bits(w);
        if (bits) {
            const int      nb = n <= 8 ? 1 : 2;
            __half *const  xp = static_cast<__half *>(scratch);
            const unsigned grid = (unsigned)((rows + QM_ROWS - 1) / QM_ROWS);
            if (!reuse_scratch) {
                const int64_t count = (int64_t)8 * nb * cols;
                if (bits == 4) qprep_kernel<4><<<lq__grid_for(count, EW_BLOCK), EW_BLOCK>>>(xp, x, (int)n, 8 * nb, cols);
                else qprep_kernel<8><<<lq__grid_for(count, EW_BLOCK), EW_BLOCK>>>(xp, x, (int)n, 8 * nb, cols);
                LQ_CUDA_TRY(cudaGetLastError());
            }
            if (bits == 4 && nb == 1) qmma_kernel<4, 1><<<grid, 32 * QM_WARPS>>>(q, y, xp, (int)n, bias, accumulate);
            else if (bits == 4) qmma_kernel<4, 2><<<grid, 32 * QM_WARPS>>>(q, y, xp, (int)n, bias, accumulate);
            else if (nb == 1) qmma_kernel<8, 1><<<grid, 32 * QM_WARPS>>>(q, y, xp, (int)n, bias, accumulate);
            else qmma_kernel<8, 2><<<grid, 32 * QM_WARPS>>>(q, y, xp, (int)n, bias, accumulate);
            LQ_CUDA_TRY(cudaGetLastError());
            return LQ_OK;
        }
        const unsigned grid = (unsigned)((rows + QG_WARPS - 1) / QG_WARPS);
        const int      vec  = cols % 32 == 0 && (uintptr_t)x % 16 == 0;
        const int      nn = (int)n, acc = accumulate;
        if (n == 1) qgemv_kernel<1><<<grid, 32 * QG_WARPS>>>(q, y, x, nn, bias, acc, vec);
        else if (n == 2) qgemv_kernel<2><<<grid, 32 * QG_WARPS>>>(q, y, x, nn, bias, acc, vec);
        else if (n <= 4) qgemv_kernel<4><<<grid, 32 * QG_WARPS>>>(q, y, x, nn, bias, acc, vec);
        else if (n <= 8) qgemv_kernel<8><<<grid, 32 * QG_WARPS>>>(q, y, x, nn, bias, acc, vec);
        else qgemv_kernel<16><<<grid, 32 * QG_WARPS>>>(q, y, x, nn, bias, acc, vec);
        LQ_CUDA_TRY(cudaGetLastError());
        return LQ_OK;
    }
    /* n > 16: x to f16 once, then tiles of rows dequantized to f16 and multiplied by cuBLAS */
    __half *const xh   = static_cast<__half *>(scratch);
    __half *const tile = reinterpret_cast<__half *>(static_cast<char *>(scratch) +
                                                    align256((size_t)n * (size_t)cols * sizeof(__half)));
    if (!reuse_scratch) {
        qpack_kernel<<<lq__grid_for(n * cols, EW_BLOCK), EW_BLOCK>>>(xh, x, n * cols);
        LQ_CUDA_TRY(cudaGetLastError());
    }
    const int64_t TR  = tile_rows(w);
    const float   one = 1.f, beta = accumulate ? 1.f : 0.f;
    for (int64_t r0 = 0; r0 < rows; r0 += TR) {
        const int64_t tr = rows - r0 < TR ? rows - r0 : TR;
        qdequant_kernel<<<lq__grid_for(tr * ((cols + 31) / 32), EW_BLOCK), EW_BLOCK>>>(q, r0, tr, tile);
        LQ_CUDA_TRY(cudaGetLastError());
        LQ_CUBLAS_TRY(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)tr, (int)n, (int)cols, &one, tile, CUDA_R_16F,
                                   (int)cols, xh, CUDA_R_16F, (int)cols, &beta, y + r0, CUDA_R_32F, (int)rows,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
    if (bias) {
        qbias_kernel<<<lq__grid_for(n * rows, EW_BLOCK), EW_BLOCK>>>(y, bias, n, rows);
        LQ_CUDA_TRY(cudaGetLastError());
    }
    return LQ_OK;
}

lq_status lq__cuda_qembed(float *out, const lq_weight *table, const int32_t *ids, int64_t n, int *bad) {
    if (n == 0) return LQ_OK;
    const qdesc q = make_qdesc(table);
    qembed_kernel<<<(unsigned)(n < ROW_GRID_MAX ? n : ROW_GRID_MAX), EMB_BLOCK>>>(out, q, ids, n, bad);
    LQ_CUDA_TRY(cudaGetLastError());
    return LQ_OK;
}

lq_status lq__cuda_qweight_ok(const lq_weight *w, const char *op) {
    LQ_TRY(lq__qweight_check(w, op));
    LQ_RETURN_IF(w->rows > INT_MAX || w->cols > INT_MAX, LQ_ERR_SHAPE, "%s: %s weight (%lld, %lld) exceeds INT_MAX",
                 op, lq_qtype_name(w->qtype), (long long)w->rows, (long long)w->cols);
    return LQ_OK;
}
