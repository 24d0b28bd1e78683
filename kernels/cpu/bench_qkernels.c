/* bench_qkernels.c : lq__bench_qmatmul(), the fused quantized matmuls of
 * lq_matmul_cpu on Llama-8B layer shapes, behind lq-bench.
 *
 * Weights are packed directly (random codes, random finite scales; no
 * quantizer): the kernels' speed does not depend on the values. Figures:
 *   decode  (n = 1)    GB/s of weight bytes incl. scales and zero points, as
 *                      a ratio to the read bandwidth; every call reads a
 *                      different copy of the matrix from a 640 MB pool, so
 *                      it streams from DRAM
 *   batch   (n = 2..16) time as a multiple of the batch-1 time
 *   prefill (n = 512)  GFLOP/s = 2·n·rows·cols / s, as a ratio to the FMA peak
 * Ceilings come from lq__bench_ceilings() before and after each type (the
 * better of the two), as in bench_cpu.c; each figure is the best of several
 * runs. About 30-60 s on a quiet machine. */
#include "bench_internal.h"
#include "lq_internal.h"
#include "lq_kernels.h"

#include <math.h>
#include <string.h>
#include <time.h>

#define N_REPS 5
#define POOL_BYTES ((size_t)640 << 20)
#define PREFILL_N 512
#define MAX_COLS 14336
#define MAX_ROWS 14336

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

static float rand_unit(uint64_t i) { return (float)(mix(i) >> 40) / (float)(1 << 24) * 2.f - 1.f; }

/* random bytes, then the f16 scales of GGML blocks made finite (|d| ~ 1/64) */
static void fill_packed(uint8_t *p, size_t bytes, lq_qtype t, uint64_t seed) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(t);
    const int64_t          n8 = (int64_t)(bytes / 8);
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (int64_t i = 0; i < n8; i++) {
        const uint64_t r = mix(seed + (uint64_t)i);
        memcpy(p + 8 * i, &r, 8);
    }
    if (tr->kind != LQ_QK_GGML) return;
    const uint16_t h   = lq_f32_to_f16(1.f / 64);
    const int      off = t == LQ_QT_Q6_K ? 208 : 0;
    for (size_t b = 0; b + (size_t)tr->block_bytes <= bytes; b += (size_t)tr->block_bytes) {
        memcpy(p + b + off, &h, 2);
        if (t == LQ_QT_Q4_K) memcpy(p + b + 2, &h, 2);
    }
}

/* lq_matmul_cpu against lq_matmul_ref on a small odd shape, n = 1 and 37 */
static bool check(lq_qtype t, int nt, FILE *out) {
    const int64_t rows = 77, cols = 512, ns[2] = {1, 37};
    const size_t  rb = (size_t)lq_qtype_row_bytes(t, cols);
    const int64_t nsc = lq_qtype_n_scales(t, rows, cols);
    uint8_t *const d = lq_malloc(rb * rows);
    float *const   s = lq_malloc(sizeof(float) * (size_t)LQ_MAX(nsc, 1));
    float *const   x = lq_malloc(sizeof(float) * 37 * cols), *const y = lq_malloc(sizeof(float) * 37 * rows);
    float *const   yr = lq_malloc(sizeof(float) * 37 * rows);
    bool           ok = d && s && x && y && yr;
    if (ok) {
        fill_packed(d, rb * rows, t, 5);
        for (int64_t i = 0; i < nsc; i++) s[i] = rand_unit(1000 + (uint64_t)i) / 16;
        for (int64_t i = 0; i < 37 * cols; i++) x[i] = rand_unit(2000 + (uint64_t)i);
        const lq_weight w = {LQ_DTYPE_U8, d, rows, cols, t, s, NULL, NULL, 0};
        for (int k = 0; k < 2 && ok; k++) {
            ok = lq_matmul_cpu(y, x, ns[k], &w, NULL, nt) == LQ_OK && lq_matmul_ref(yr, x, ns[k], &w, NULL) == LQ_OK;
            double worst = 0, scale = 0;
            for (int64_t i = 0; ok && i < ns[k] * rows; i++) scale = fmax(scale, fabs((double)yr[i]));
            for (int64_t i = 0; ok && i < ns[k] * rows; i++)
                worst = fmax(worst, fabs((double)y[i] - (double)yr[i]) / (scale > 0 ? scale : 1));
            if (!(worst <= 1e-5)) ok = false;
            if (!ok)
                fprintf(out, "qmatmul %s n=%lld: CHECK FAILED (max diff %.3g of max |y|)\n", lq_qtype_name(t),
                        (long long)ns[k], worst);
        }
    }
    lq_free(d), lq_free(s), lq_free(x), lq_free(y), lq_free(yr);
    return ok;
}

int lq__bench_qmatmul(int n_threads, FILE *out) {
    static const lq_qtype types[]                         = {LQ_QT_INT4_G128, LQ_QT_INT8_CH, LQ_QT_Q8_0, LQ_QT_Q4_0,
                                                             LQ_QT_Q4_K};
    static const struct { int64_t rows, cols; } shapes[] = {{4096, 4096}, {14336, 4096}, {4096, 14336}};
    static const int64_t batch[]                         = {2, 4, 8, 16};
    int                  rc                              = 0;
    uint8_t *const       pool = lq_malloc(POOL_BYTES);
    float *const         spool = lq_malloc(POOL_BYTES / 8);
    float *const         x     = lq_malloc(sizeof(float) * PREFILL_N * MAX_COLS);
    float *const         y     = lq_malloc(sizeof(float) * PREFILL_N * MAX_ROWS);
    if (!pool || !spool || !x || !y) {
        fprintf(out, "bench qmatmul: out of memory\n");
        rc = 1;
        goto done;
    }
    for (int64_t i = 0; i < PREFILL_N * MAX_COLS; i++) x[i] = rand_unit(7 + (uint64_t)i);
    memset(y, 0, sizeof(float) * PREFILL_N * MAX_ROWS);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!check(types[i], n_threads, out)) rc = 1;
    if (rc) goto done;
    fprintf(out, "qmatmul check vs lq_matmul_ref (77x512, n = 1 and 37, int4_g128 int8_ch q8_0 q4_0 q4_k): ok\n");

    double fma0, bw0;
    lq__bench_ceilings(n_threads, &fma0, &bw0);
    fprintf(out, "ceilings: FMA peak %.1f GFLOP/s, read bw %.1f GB/s\n", fma0, bw0);
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const lq_qtype t = types[ti];
        char           lines[3][3][200];
        double         gbs[3], tb1[3], tbn[3][4], gfl[3];
        fill_packed(pool, POOL_BYTES, t, 11 + ti);
        for (size_t i = 0; i < POOL_BYTES / 32; i++) spool[i] = rand_unit(3000 + i) / 16;
        for (size_t si = 0; si < 3; si++) {
            const int64_t rows = shapes[si].rows, cols = shapes[si].cols;
            const size_t  wb = (size_t)lq_qtype_row_bytes(t, cols) * (size_t)rows;
            const int64_t nsc = lq_qtype_n_scales(t, rows, cols);
            const size_t  copies = LQ_MIN(POOL_BYTES / wb, POOL_BYTES / 32 / (size_t)LQ_MAX(nsc, 1));
            const size_t  bytes  = wb + (size_t)nsc * sizeof(float);
            lq_weight     w      = {LQ_DTYPE_U8, pool, rows, cols, t, spool, NULL, NULL, 0};
            /* decode: each call on another copy */
            double best = 1e30;
            for (int r = -1; r < 4 * N_REPS; r++) {
                const size_t c = (size_t)(r + 1) % copies;
                w.data         = pool + c * wb;
                w.scales       = spool + c * (size_t)LQ_MAX(nsc, 1);
                const double t0 = now_s();
                if (lq_matmul_cpu(y, x, 1, &w, NULL, n_threads) != LQ_OK) rc = 1;
                if (r >= 0) best = LQ_MIN(best, now_s() - t0);
            }
            gbs[si] = (double)bytes / best / 1e9;
            tb1[si] = best;
            /* batch 2..16, the same rotation */
            for (size_t bi = 0; bi < 4; bi++) {
                double bb = 1e30;
                for (int r = 0; r < 2 * N_REPS; r++) {
                    const size_t c = (size_t)(r + 3) % copies;
                    w.data         = pool + c * wb;
                    w.scales       = spool + c * (size_t)LQ_MAX(nsc, 1);
                    const double t0 = now_s();
                    if (lq_matmul_cpu(y, x, batch[bi], &w, NULL, n_threads) != LQ_OK) rc = 1;
                    bb = LQ_MIN(bb, now_s() - t0);
                }
                tbn[si][bi] = bb;
            }
            /* prefill */
            w.data   = pool;
            w.scales = spool;
            best     = 1e30;
            for (int r = -1; r < N_REPS - 2; r++) {
                const double t0 = now_s();
                if (lq_matmul_cpu(y, x, PREFILL_N, &w, NULL, n_threads) != LQ_OK) rc = 1;
                if (r >= 0) best = LQ_MIN(best, now_s() - t0);
            }
            gfl[si] = 2.0 * PREFILL_N * (double)rows * (double)cols / best / 1e9;
        }
        double fma1, bw1;
        lq__bench_ceilings(n_threads, &fma1, &bw1);
        const double bw = LQ_MAX(bw0, bw1), fma = LQ_MAX(fma0, fma1);
        for (size_t si = 0; si < 3; si++) {
            snprintf(lines[si][0], sizeof lines[si][0],
                     "qmatmul %-9s decode  1x%lldx%-5lld  : %6.1f GB/s     ratio %.2f of read bw (%.0f)%s",
                     lq_qtype_name(t), (long long)shapes[si].cols, (long long)shapes[si].rows, gbs[si], gbs[si] / bw,
                     bw, t == LQ_QT_INT4_G128 ? "  (goal >= 0.50)" : "");
            snprintf(lines[si][1], sizeof lines[si][1],
                     "qmatmul %-9s batch   n=2/4/8/16    : %.2f / %.2f / %.2f / %.2f x the batch-1 time (%.3f ms)",
                     lq_qtype_name(t), tbn[si][0] / tb1[si], tbn[si][1] / tb1[si], tbn[si][2] / tb1[si],
                     tbn[si][3] / tb1[si], tb1[si] * 1e3);
            snprintf(lines[si][2], sizeof lines[si][2],
                     "qmatmul %-9s prefill %dx%lldx%-5lld: %6.1f GFLOP/s  ratio %.2f of FMA peak (%.0f)",
                     lq_qtype_name(t), PREFILL_N, (long long)shapes[si].cols, (long long)shapes[si].rows, gfl[si],
                     gfl[si] / fma, fma);
            for (int k = 0; k < 3; k++) fprintf(out, "%s\n", lines[si][k]);
        }
        fflush(out);
        bw0 = bw1, fma0 = fma1;
    }
done:
    lq_free(pool), lq_free(spool), lq_free(x), lq_free(y);
    return rc;
}
