/* matmul_cpu.c : lq_matmul_cpu(), y (n, rows) = x (n, cols) · Wᵀ + bias, W in F32/F16/BF16.
 *
 * Two regimes, chosen by n alone (never by the thread count):
 *   decode, n <= GEMV_MAX_N: GEMV. Memory-bound: each weight row is streamed
 *     once per GEMV_TB tokens (the later passes hit L1), converted on the fly
 *     (vcvtph2ps / bf16 shift) and FMA'd into one LQ_VL-lane accumulator per
 *     (row, token); GEMV_RB rows run side by side, and the next GEMV_RB rows
 *     are prefetched linearly meanwhile. Contiguous row ranges per thread.
 *   prefill, n > GEMV_MAX_N: GEMM, blocked as in BLIS (Van Zee & van de Geijn
 *     2015). For a block of NC_PANELS·NR rows and KC columns, the weights are
 *     converted to f32 once into a thread-local panel laid out k-major
 *     (panel[k][j], j < NR), then an MR x NR register tile of y runs over every
 *     token: per k, NV vector loads of the panel, MR broadcasts of x, MR·NV FMAs.
 *     Row blocks are the unit of work, so each y element has one writer.
 * Accumulation order: GEMV sums each dot product in LQ_VL lanes, then lanes
 * in a fixed tree; GEMM keeps one f32 chain per output in index order across
 * the KC blocks (the tile is reloaded from y). Either way the order depends
 * only on (row, token, n, cols), so the result is the same for any thread
 * count. Bias is added once, to the finished sum, as lq_matmul_ref does. */
#include "lq_internal.h"
#include "lq_kernels.h"
#include "simd_internal.h"
#include "qmatmul_internal.h"

#include <string.h>

/* ---- tuning, measured on Zen 5 (AVX-512) against variants: GEMV row groups
 * of 1/2/4/8 rows with 1/2/4 accumulators each, prefetch none / in-row /
 * next group; GEMM tiles 4..14 tokens x 2..6 vectors, KC 128..512, 1..4
 * panels per work item. Only the blocking changes with these; the GEMM's
 * result does not (one chain per output in index order), the GEMV's does
 * not depend on anything but n. ---- */
#ifndef GEMV_MAX_N
#define GEMV_MAX_N 16 /* n above this runs the GEMM (GEMV is faster up to ~20) */
#endif
#define GEMV_RB 4 /* weight rows per GEMV group                          */
#define GEMV_TB 4 /* tokens per pass over a row group                    */

#ifndef MR
#if defined(LQ_SIMD_AVX512)
#define MR 8 /* tokens per register tile                                  */
#define NV 3 /* vectors of rows per register tile: NR = 48 rows           */
#elif defined(LQ_SIMD_AVX2)
#define MR 6
#define NV 2
#else
#define MR 4
#define NV 2
#endif
#endif
#define NR (NV * LQ_VL)
#ifndef KC
#define KC 512 /* columns per packed panel                                */
#endif
#ifndef NC_PANELS
#define NC_PANELS 4 /* NR-row panels per work item, at most              */
#endif

static bool dtype_ok(lq_dtype t) { return t == LQ_DTYPE_F32 || t == LQ_DTYPE_F16 || t == LQ_DTYPE_BF16; }

static size_t dtype_size(lq_dtype t) { return t == LQ_DTYPE_F32 ? 4 : 2; }

/* ==== GEMV (decode) ==== */

/* rows wr[0..GEMV_RB) (repeats allowed) times NT token rows xr[]; y entries
 * written only for b < nr. One accumulator of LQ_VL lanes per (row, token),
 * then its lanes in a fixed tree. The group's rows are adjacent in memory, so
 * while they are read as GEMV_RB interleaved streams, the next group
 * (`next`, the same size) is prefetched as one linear stream, at the same
 * pace: the DRAM side then sees a single sequential read per thread. */
static LQ_ALWAYS_INLINE void gemv_tile(const lq_dtype dt, const int NT, float *y, const int64_t ldy,
                                       const float *const *xr, const uint8_t *const *wr, const int nr,
                                       const int64_t cols, const float *bias, const uint8_t *next) {
    lq_vf acc[GEMV_RB][GEMV_TB];
    LQ_UNROLL(8)
    for (int b = 0; b < GEMV_RB; b++) {
        LQ_UNROLL(4)
        for (int t = 0; t < NT; t++)
            acc[b][t] = vf_zero();
    }
    const size_t esz = dt == LQ_DTYPE_F32 ? 4 : 2;
    int64_t      k   = 0;
    for (; k + LQ_VL <= cols; k += LQ_VL) {
        if (next)
            for (size_t off = 0; off < GEMV_RB * LQ_VL * esz; off += 64)
                LQ_PREFETCH(next + (size_t)k * esz * GEMV_RB + off);
        lq_vf wv[GEMV_RB];
        LQ_UNROLL(8)
        for (int b = 0; b < GEMV_RB; b++)
            wv[b] = lq__load_w(dt, wr[b], k);
        LQ_UNROLL(4)
        for (int t = 0; t < NT; t++) {
            const lq_vf xv = vf_load(xr[t] + k);
            LQ_UNROLL(8)
            for (int b = 0; b < GEMV_RB; b++)
                acc[b][t] = vf_fma(wv[b], xv, acc[b][t]);
        }
    }
    if (k < cols) {
        const int rem = (int)(cols - k);
        lq_vf     wv[GEMV_RB];
        for (int b = 0; b < GEMV_RB; b++)
            wv[b] = lq__load_part_w(dt, wr[b], k, rem);
        for (int t = 0; t < NT; t++) {
            const lq_vf xv = vf_load_part(xr[t] + k, rem);
            for (int b = 0; b < GEMV_RB; b++)
                acc[b][t] = vf_fma(wv[b], xv, acc[b][t]);
        }
    }
    for (int t = 0; t < NT; t++)
        for (int b = 0; b < nr; b++) {
            const float s  = vf_hsum(acc[b][t]);
            y[t * ldy + b] = bias ? s + bias[b] : s;
        }
}

static LQ_ALWAYS_INLINE void gemv_group_dt(const lq_dtype dt, float *y, const float *x, const int64_t n,
                                           const lq_weight *w, const float *bias, const int64_t r0) {
    const int64_t  rows = w->rows, cols = w->cols;
    const int      nr  = (int)LQ_MIN((int64_t)GEMV_RB, rows - r0);
    const size_t   rsz = (size_t)cols * dtype_size(dt);
    const uint8_t *wr[GEMV_RB];
    for (int b = 0; b < GEMV_RB; b++)
        wr[b] = (const uint8_t *)w->data + (size_t)(r0 + LQ_MIN(b, nr - 1)) * rsz;
    const float *const bb = bias ? bias + r0 : NULL;
    for (int64_t t0 = 0; t0 < n; t0 += GEMV_TB) {
        const int    nt = (int)LQ_MIN((int64_t)GEMV_TB, n - t0);
        const float *xr[GEMV_TB];
        for (int t = 0; t < GEMV_TB; t++)
            xr[t] = x + (t0 + LQ_MIN(t, nt - 1)) * cols;
        float *const yt = y + t0 * rows + r0;
        /* prefetch on the first pass only (later passes find the group in L1) and not past the matrix */
        const uint8_t *next =
            t0 == 0 && r0 + 2 * GEMV_RB <= rows ? (const uint8_t *)w->data + (size_t)(r0 + GEMV_RB) * rsz : NULL;
        switch (nt) {
        case 1:
            gemv_tile(dt, 1, yt, rows, xr, wr, nr, cols, bb, next);
            break;
        case 2:
            gemv_tile(dt, 2, yt, rows, xr, wr, nr, cols, bb, next);
            break;
        case 3:
            gemv_tile(dt, 3, yt, rows, xr, wr, nr, cols, bb, next);
            break;
        default:
            gemv_tile(dt, 4, yt, rows, xr, wr, nr, cols, bb, next);
            break;
        }
    }
}

static void gemv_group_f32(float *y, const float *x, int64_t n, const lq_weight *w, const float *bias, int64_t r0) {
    gemv_group_dt(LQ_DTYPE_F32, y, x, n, w, bias, r0);
}
static void gemv_group_f16(float *y, const float *x, int64_t n, const lq_weight *w, const float *bias, int64_t r0) {
    gemv_group_dt(LQ_DTYPE_F16, y, x, n, w, bias, r0);
}
static void gemv_group_bf16(float *y, const float *x, int64_t n, const lq_weight *w, const float *bias, int64_t r0) {
    gemv_group_dt(LQ_DTYPE_BF16, y, x, n, w, bias, r0);
}

static void gemv(float *y, const float *x, int64_t n, const lq_weight *w, const float *bias, int nt) {
    void (*const group)(float *, const float *, int64_t, const lq_weight *, const float *, int64_t) =
        w->dtype == LQ_DTYPE_F32   ? gemv_group_f32
        : w->dtype == LQ_DTYPE_F16 ? gemv_group_f16
                                   : gemv_group_bf16;
    const int64_t n_groups = LQ_CEIL_DIV(w->rows, GEMV_RB);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1 && n_groups > 1)
#else
    (void)nt;
#endif
    for (int64_t g = 0; g < n_groups; g++)
        group(y, x, n, w, bias, g * GEMV_RB);
}

/* ==== GEMM (prefill) ==== */

/* panel[k][j] (k < kc, j < NR) = W[r0 + j][k0 + k] as f32; rows >= w->rows are 0 */
static void pack_panel(float *restrict panel, const lq_weight *w, int64_t r0, int64_t k0, int64_t kc) {
    const int64_t rows = w->rows, cols = w->cols;
    const size_t  esz = dtype_size(w->dtype);
    const int     nr  = (int)LQ_MIN((int64_t)NR, rows - r0);
    int64_t       k   = 0;
#if defined(LQ_SIMD_AVX512)
    /* 16 x 16 blocks: 16 rows of 16 columns converted, transposed in registers */
    for (; k + 16 <= kc; k += 16)
        for (int jb = 0; jb < NR; jb += 16) {
            __m512 r[16], t[16];
            for (int i = 0; i < 16; i++) {
                const int64_t  row = r0 + jb + i;
                const uint8_t *src = (const uint8_t *)w->data + ((size_t)row * (size_t)cols + (size_t)(k0 + k)) * esz;
                r[i]               = jb + i < nr ? lq__load_w(w->dtype, src, 0) : _mm512_setzero_ps();
            }
            for (int i = 0; i < 16; i += 2) {
                t[i]     = _mm512_unpacklo_ps(r[i], r[i + 1]);
                t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
            }
            for (int i = 0; i < 16; i += 4) {
                r[i]     = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
                r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
                r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
                r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
            }
            for (int i = 0; i < 4; i++) {
                t[i]      = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
                t[i + 4]  = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
                t[i + 8]  = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
                t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
            }
            for (int i = 0; i < 8; i++) {
                r[i]     = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
                r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
            }
            for (int i = 0; i < 16; i++)
                _mm512_storeu_ps(panel + (k + i) * NR + jb, r[i]);
        }
#endif
    if (k == kc) return;
    /* the rest (all of it without AVX-512): one row at a time, strided stores */
    for (int j = 0; j < NR; j++) {
        if (j >= nr) {
            for (int64_t kk = k; kk < kc; kk++)
                panel[kk * NR + j] = 0.f;
            continue;
        }
        const void *src = (const uint8_t *)w->data + (size_t)(r0 + j) * (size_t)cols * esz;
        for (int64_t kk = k; kk < kc; kk++)
            panel[kk * NR + j] = lq__elem_f32(w->dtype, src, k0 + kk);
    }
}

/* c (MR, NR; row stride ldc) = [c +] x (MR, kc; row stride ldx) · panel (kc, NR) [+ bias (NR)].
 * With `load_c` the tile continues the chains left in c by the previous KC block. */
static void micro_kernel(int64_t kc, const float *restrict x, int64_t ldx, const float *restrict panel,
                         float *restrict c, int64_t ldc, bool load_c, const float *restrict bias) {
    lq_vf acc[MR][NV];
    LQ_UNROLL(16)
    for (int i = 0; i < MR; i++) {
        LQ_UNROLL(4)
        for (int j = 0; j < NV; j++)
            acc[i][j] = load_c ? vf_load(c + i * ldc + j * LQ_VL) : vf_zero();
    }
    for (int64_t k = 0; k < kc; k++) {
        lq_vf wv[NV];
        LQ_UNROLL(4)
        for (int j = 0; j < NV; j++)
            wv[j] = vf_load(panel + k * NR + j * LQ_VL);
        LQ_UNROLL(16)
        for (int i = 0; i < MR; i++) {
            const lq_vf xb = vf_set1(x[i * ldx + k]);
            LQ_UNROLL(4)
            for (int j = 0; j < NV; j++)
                acc[i][j] = vf_fma(xb, wv[j], acc[i][j]);
        }
    }
    if (bias) {
        LQ_UNROLL(4)
        for (int j = 0; j < NV; j++) {
            const lq_vf bv = vf_load(bias + j * LQ_VL);
            LQ_UNROLL(16)
            for (int i = 0; i < MR; i++)
                acc[i][j] = vf_add(acc[i][j], bv);
        }
    }
    LQ_UNROLL(16)
    for (int i = 0; i < MR; i++) {
        LQ_UNROLL(4)
        for (int j = 0; j < NV; j++)
            vf_store(c + i * ldc + j * LQ_VL, acc[i][j]);
    }
}

/* per-thread scratch, in floats */
#define SCR_PANEL (KC * NR * NC_PANELS)
#define SCR_X (MR * KC)
#define SCR_C (MR * NR)
#define SCR_BIAS NR
#define SCR_TOTAL (SCR_PANEL + SCR_X + SCR_C + SCR_BIAS)

/* one work item: rows [p0·NR, (p0+np)·NR) ∩ [0, rows), every token */
static void gemm_block(float *y, const float *x, int64_t n, const lq_weight *w, const float *bias, int64_t p0,
                       int64_t np, float *scr) {
    const int64_t rows = w->rows, cols = w->cols;
    float *const panel = scr, *const xt = scr + SCR_PANEL, *const ct = xt + SCR_X, *const bt = ct + SCR_C;
    for (int64_t k0 = 0; k0 < cols; k0 += KC) {
        const int64_t kc    = LQ_MIN((int64_t)KC, cols - k0);
        const bool    first = k0 == 0, last = k0 + kc == cols;
        for (int64_t p = 0; p < np; p++)
            pack_panel(panel + p * kc * NR, w, (p0 + p) * NR, k0, kc);
        for (int64_t t0 = 0; t0 < n; t0 += MR) {
            const int64_t mt  = LQ_MIN((int64_t)MR, n - t0);
            const float  *xs  = x + t0 * cols + k0;
            int64_t       ldx = cols;
            if (mt < MR) { /* the last token tile: padded with zero rows */
                memset(xt, 0, sizeof(float) * MR * KC);
                for (int64_t i = 0; i < mt; i++)
                    memcpy(xt + i * kc, xs + i * cols, sizeof(float) * (size_t)kc);
                xs  = xt;
                ldx = kc;
            }
            for (int64_t p = 0; p < np; p++) {
                const int64_t r  = (p0 + p) * NR;
                const int64_t nc = LQ_MIN((int64_t)NR, rows - r);
                float *const  yt = y + t0 * rows + r;
                const float  *pb = panel + p * kc * NR;
                if (mt == MR && nc == NR) {
                    micro_kernel(kc, xs, ldx, pb, yt, rows, !first, last && bias ? bias + r : NULL);
                    continue;
                }
                /* an edge tile: the same kernel on a copy, the valid part copied back */
                if (!first)
                    for (int64_t i = 0; i < mt; i++)
                        memcpy(ct + i * NR, yt + i * rows, sizeof(float) * (size_t)nc);
                const float *bp = NULL;
                if (last && bias) {
                    memset(bt, 0, sizeof(float) * NR);
                    memcpy(bt, bias + r, sizeof(float) * (size_t)nc);
                    bp = bt;
                }
                micro_kernel(kc, xs, ldx, pb, ct, NR, !first, bp);
                for (int64_t i = 0; i < mt; i++)
                    memcpy(yt + i * rows, ct + i * NR, sizeof(float) * (size_t)nc);
            }
        }
    }
}

static lq_status gemm(float *y, const float *x, int64_t n, const lq_weight *w, const float *bias, int nt) {
    const int64_t n_panels = LQ_CEIL_DIV(w->rows, (int64_t)NR);
    /* about 8 work items per thread or more, so the dynamic schedule evens out */
    const int64_t per_item = LQ_MAX((int64_t)1, LQ_MIN((int64_t)NC_PANELS, n_panels / (8 * (int64_t)nt)));
    const int64_t n_items  = LQ_CEIL_DIV(n_panels, per_item);
    if (nt > n_items) nt = (int)n_items;
    float *const scr = lq_malloc(sizeof(float) * SCR_TOTAL * (size_t)nt);
    LQ_RETURN_IF(!scr, LQ_ERR_NOMEM, "matmul: no memory for %d x %d KiB of panel scratch", nt,
                 (int)(sizeof(float) * SCR_TOTAL / 1024));
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        float *const mine = scr + (size_t)lq__cpu_thread_id() * SCR_TOTAL;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t it = 0; it < n_items; it++) {
            const int64_t p0 = it * per_item;
            gemm_block(y, x, n, w, bias, p0, LQ_MIN(per_item, n_panels - p0), mine);
        }
    }
    lq_free(scr);
    return LQ_OK;
}

/* ==== entry point ==== */

/* quantized (and KEEP-typed) weights: qmatmul_cpu.c */

lq_status lq_matmul_cpu(float *y, const float *x, int64_t n, const lq_weight *w, const float *bias, int n_threads) {
    if (w->in_scale != 0) return lq__w8a8_matmul(y, x, n, w, bias, n_threads, false);
    if (w->perm) return lq__matmul_perm(y, x, n, w, bias, n_threads, false);
    if (w->qtype != LQ_QT_NONE) return lq__qmatmul_cpu(y, x, n, w, bias, n_threads);
    LQ_RETURN_IF(!dtype_ok(w->dtype), LQ_ERR_UNSUPPORTED, "matmul: weight dtype %s is not F32/F16/BF16",
                 lq_dtype_name(w->dtype));
    LQ_RETURN_IF(n < 0 || w->rows < 0 || w->cols < 0, LQ_ERR_INVALID_ARG, "matmul: negative shape");
    if (n == 0 || w->rows == 0) return LQ_OK;
    if (w->cols == 0) { /* empty dot products */
        for (int64_t t = 0; t < n; t++)
            for (int64_t r = 0; r < w->rows; r++)
                y[t * w->rows + r] = bias ? 0.f + bias[r] : 0.f;
        return LQ_OK;
    }
    const int nt = lq__cpu_threads_for(n_threads, n * w->rows * w->cols / 32); /* 1M MACs */
    if (n <= GEMV_MAX_N) {
        gemv(y, x, n, w, bias, nt);
        return LQ_OK;
    }
    return gemm(y, x, n, w, bias, nt);
}
