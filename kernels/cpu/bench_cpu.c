/* bench_cpu.c : lq__bench_cpu_kernels(), the `_cpu` kernel benchmark behind lq-bench.
 *
 * Figures are ratios to two ceilings measured in the same run: the f32 FMA
 * peak (16 independent vector FMA chains per thread, enough to cover the
 * FMA latency x pipes of current x86 cores) and the read bandwidth (a
 * parallel vector sum over 1 GiB). Prefill matmuls are compute-bound and
 * compared with the peak; decode matmuls (n = 1) are bandwidth-bound and
 * compared with the read bandwidth, counting weight bytes only. The weights
 * of a decode run rotate through a pool of 768 MB so that no call finds its
 * matrix in the last-level cache.
 * Shared machines: every figure is the best of several runs (wall clock),
 * and its ceiling is re-measured (best of 5) right before and after it, so
 * that a ratio compares the kernel with the machine as it was at that
 * moment. Still, run it on a quiet machine: other processes make every
 * figure noisy (and a CPU-time clock does not help: in VMs it is often
 * tick-based, 4 ms). */
#include "bench_internal.h"
#include "lq_internal.h"
#include "lq_kernels.h"
#include "simd_internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_REPS 7                       /* timed runs per kernel figure      */
#define BW_BYTES ((size_t)1 << 30)     /* bandwidth buffer                  */
#define POOL_BYTES ((size_t)768 << 20) /* decode weight rotation pool       */
#define PREFILL_N 512

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

/* ==== ceilings ==== */

#define FMA_ITERS 4000000L /* per thread and run: ~20 ms */

/* one thread's FMA loop; returns a value that depends on every chain */
static float fma_loop(long iters, float seed) {
    const lq_vf b = vf_set1(0.999999f), c = vf_set1(1e-7f);
    lq_vf       a0 = vf_set1(seed), a1 = vf_set1(seed + 1), a2 = vf_set1(seed + 2), a3 = vf_set1(seed + 3);
    lq_vf       a4 = vf_set1(seed + 4), a5 = vf_set1(seed + 5), a6 = vf_set1(seed + 6), a7 = vf_set1(seed + 7);
    lq_vf       a8 = vf_set1(seed + 8), a9 = vf_set1(seed + 9), a10 = vf_set1(seed + 10), a11 = vf_set1(seed + 11);
    lq_vf       a12 = vf_set1(seed + 12), a13 = vf_set1(seed + 13), a14 = vf_set1(seed + 14), a15 = vf_set1(seed + 15);
    for (long i = 0; i < iters; i++) {
#define F(a) a = vf_fma(a, b, c);
        F(a0) F(a1) F(a2) F(a3) F(a4) F(a5) F(a6) F(a7) F(a8) F(a9) F(a10) F(a11) F(a12) F(a13) F(a14) F(a15)
#undef F
    }
    const lq_vf s =
        vf_add(vf_add(vf_add(vf_add(a0, a1), vf_add(a2, a3)), vf_add(vf_add(a4, a5), vf_add(a6, a7))),
               vf_add(vf_add(vf_add(a8, a9), vf_add(a10, a11)), vf_add(vf_add(a12, a13), vf_add(a14, a15))));
    return vf_hsum(s);
}

static double fma_peak_gflops(int nt) {
    double best = 0, t0 = 0, t1 = 0;
    float  sink = 0;
    for (int rep = 0; rep < 5; rep++) {
        t0 = now_s();
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) reduction(+ : sink)
#else
        (void)nt;
#endif
        sink += fma_loop(FMA_ITERS, (float)lq__cpu_thread_id());
        t1               = now_s();
        const double gfs = 2.0 * LQ_VL * 16.0 * (double)FMA_ITERS * nt / (t1 - t0) / 1e9;
        if (gfs > best) best = gfs;
    }
    if (sink == 12345.f) fputs("", stderr); /* keeps the loop alive */
    return best;
}

static double read_bw_gbs(const float *buf, size_t n_floats, int nt) {
    const int64_t blk = 1 << 14, n_blk = (int64_t)(n_floats / (size_t)blk);
    double        best = 0;
    float         sink = 0;
    for (int rep = 0; rep < 5; rep++) {
        const double t0 = now_s();
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) reduction(+ : sink)
#else
        (void)nt;
#endif
        for (int64_t b = 0; b < n_blk; b++) {
            const float *p  = buf + b * blk;
            lq_vf        s0 = vf_zero(), s1 = vf_zero(), s2 = vf_zero(), s3 = vf_zero();
            for (int64_t i = 0; i < blk; i += 4 * LQ_VL) {
                s0 = vf_add(s0, vf_load(p + i));
                s1 = vf_add(s1, vf_load(p + i + LQ_VL));
                s2 = vf_add(s2, vf_load(p + i + 2 * LQ_VL));
                s3 = vf_add(s3, vf_load(p + i + 3 * LQ_VL));
            }
            sink += vf_hsum(vf_add(vf_add(s0, s1), vf_add(s2, s3)));
        }
        const double gbs = (double)n_blk * (double)blk * 4.0 / (now_s() - t0) / 1e9;
        if (gbs > best) best = gbs;
    }
    if (sink == 12345.f) fputs("", stderr);
    return best;
}

/* ==== fixtures ==== */

/* n elements of `dt` with values of magnitude 2^-2 .. 1, random signs */
static void fill_weights(void *dst, lq_dtype dt, size_t n, uint64_t seed, int nt) {
    const int64_t chunk = 1 << 16, n_chunks = (int64_t)((n + (size_t)chunk - 1) / (size_t)chunk);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt)
#else
    (void)nt;
#endif
    for (int64_t c = 0; c < n_chunks; c++) {
        const size_t end = LQ_MIN(n, (size_t)(c + 1) * (size_t)chunk);
        for (size_t i = (size_t)c * (size_t)chunk; i < end; i++) {
            const uint64_t r = mix(seed + i);
            if (dt == LQ_DTYPE_F32) {
                const uint32_t u = (uint32_t)(r & 0x807FFFFFu) | ((uint32_t)(125 + (r >> 32) % 2) << 23);
                memcpy((uint8_t *)dst + 4 * i, &u, 4);
            } else {
                const uint16_t h = dt == LQ_DTYPE_F16 ? (uint16_t)((r & 0x83FFu) | ((13 + (r >> 32) % 2) << 10))
                                                      : (uint16_t)((r & 0x807Fu) | ((125 + (r >> 32) % 2) << 7));
                memcpy((uint8_t *)dst + 2 * i, &h, 2);
            }
        }
    }
}

static const char *dt_name(lq_dtype dt) { return dt == LQ_DTYPE_F16 ? "f16" : dt == LQ_DTYPE_BF16 ? "bf16" : "f32"; }

/* lq_matmul_cpu against lq_matmul_ref on a small odd shape; max |diff| / Σ|x·w| */
static bool check_matmul(lq_dtype dt, int nt, FILE *out) {
    static const int64_t ns[] = {1, 37};
    const int64_t        rows = 77, cols = 301;
    const size_t         esz = dt == LQ_DTYPE_F32 ? 4 : 2;
    void *const          w   = lq_malloc((size_t)(rows * cols) * esz);
    float *const x = lq_malloc(sizeof(float) * 37 * cols), *const y = lq_malloc(sizeof(float) * 37 * rows);
    float *const yr = lq_malloc(sizeof(float) * 37 * rows);
    bool         ok = w && x && y && yr;
    if (ok) {
        fill_weights(w, dt, (size_t)(rows * cols), 7, 1);
        fill_weights(x, LQ_DTYPE_F32, (size_t)(37 * cols), 9, 1);
        const lq_weight wt = {dt, w, rows, cols, LQ_QT_NONE, NULL, NULL, NULL, 0};
        for (size_t k = 0; k < sizeof ns / sizeof ns[0] && ok; k++) {
            ok = lq_matmul_cpu(y, x, ns[k], &wt, NULL, nt) == LQ_OK && lq_matmul_ref(yr, x, ns[k], &wt, NULL) == LQ_OK;
            double worst = 0;
            for (int64_t i = 0; ok && i < ns[k] * rows; i++) {
                const double d = fabs((double)y[i] - (double)yr[i]) / (cols * 1.0); /* |x·w| <= 1 each */
                if (d > worst) worst = d;
            }
            if (worst > 4.0 * FLT_EPSILON) ok = false;
            if (!ok)
                fprintf(out, "matmul %s n=%lld: CHECK FAILED (max diff %.3g per term)\n", dt_name(dt), (long long)ns[k],
                        worst);
        }
    }
    lq_free(w), lq_free(x), lq_free(y), lq_free(yr);
    return ok;
}

/* a ratio above 1 means the ceiling's runs were all slowed by other load */
static const char *disturbed(double ratio) { return ratio > 1.02 ? "  [ceiling disturbed: rerun when idle]" : ""; }

/* ==== the benchmark ==== */

int lq__bench_cpu_kernels(int n_threads, FILE *out) {
    const int nt                                         = lq__cpu_threads(n_threads);
    static const struct { int64_t rows, cols; } shapes[] = {{2048, 2048}, {5632, 2048}, {32000, 2048}};
    static const lq_dtype dts[]                          = {LQ_DTYPE_F16, LQ_DTYPE_BF16, LQ_DTYPE_F32};
    int                   rc                             = 0;

    float *const bw   = lq_malloc(BW_BYTES);
    void *const  pool = lq_malloc(POOL_BYTES);
    float *const x    = lq_malloc(sizeof(float) * PREFILL_N * 2048);
    float *const y    = lq_malloc(sizeof(float) * PREFILL_N * 32000);
    if (!bw || !pool || !x || !y) {
        fprintf(out, "bench kernels: out of memory\n");
        rc = 1;
        goto done;
    }
    fill_weights(bw, LQ_DTYPE_F32, BW_BYTES / 4, 1, nt); /* also the first touch, spread over threads */
    fill_weights(x, LQ_DTYPE_F32, PREFILL_N * 2048, 3, nt);
    memset(y, 0, sizeof(float) * PREFILL_N * 32000);

    fprintf(out, "kernels: %d threads, SIMD %s, vector %d x f32\n", nt, LQ_SIMD_NAME, LQ_VL);
    for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++)
        if (!check_matmul(dts[d], nt, out)) rc = 1;
    if (rc) goto done;
    fprintf(out, "matmul check vs lq_matmul_ref (77x301, n = 1 and 37, f16/bf16/f32): ok\n");
    double peak = fma_peak_gflops(nt), band = read_bw_gbs(bw, BW_BYTES / 4, nt);
    fprintf(out, "ceiling FMA peak     : %7.1f GFLOP/s  (f32, %d threads)\n", peak, nt);
    fprintf(out, "ceiling read bw      : %7.1f GB/s     (parallel sum over 1 GiB)\n", band);

    for (size_t d = 0; d < 3; d++) {
        const lq_dtype dt  = dts[d];
        const size_t   esz = dt == LQ_DTYPE_F32 ? 4 : 2;
        fill_weights(pool, dt, POOL_BYTES / esz, 11 + d, nt);
        for (size_t s = 0; s < 3; s++) {
            const int64_t rows = shapes[s].rows, cols = shapes[s].cols;
            const size_t  wbytes = (size_t)(rows * cols) * esz;
            const size_t  copies = POOL_BYTES / wbytes;
            lq_weight     w      = {dt, pool, rows, cols, LQ_QT_NONE, NULL, NULL, NULL, 0};
            /* prefill */
            double pk = fma_peak_gflops(nt), best = 1e30;
            if (lq_matmul_cpu(y, x, PREFILL_N, &w, NULL, nt) != LQ_OK) rc = 1; /* warm-up */
            for (int r = 0; r < N_REPS; r++) {
                const double t0 = now_s();
                if (lq_matmul_cpu(y, x, PREFILL_N, &w, NULL, nt) != LQ_OK) rc = 1;
                best = LQ_MIN(best, now_s() - t0);
            }
            pk                 = LQ_MAX(pk, fma_peak_gflops(nt));
            const double gflop = 2.0 * PREFILL_N * (double)rows * (double)cols / best / 1e9;
            fprintf(
                out,
                "matmul %-4s prefill %dx%lldx%-5lld : %6.1f GFLOP/s  ratio %.2f of FMA peak (%.0f)  (goal >= 0.60)%s\n",
                dt_name(dt), PREFILL_N, (long long)cols, (long long)rows, gflop, gflop / pk, pk, disturbed(gflop / pk));
            /* decode: every call on a different copy, so each streams from DRAM */
            double bwk = read_bw_gbs(bw, BW_BYTES / 4, nt);
            best       = 1e30;
            for (int r = -1; r < 4 * N_REPS; r++) {
                w.data          = (const uint8_t *)pool + (size_t)((r + 1) % (int)copies) * wbytes;
                const double t0 = now_s();
                if (lq_matmul_cpu(y, x, 1, &w, NULL, nt) != LQ_OK) rc = 1;
                if (r >= 0) best = LQ_MIN(best, now_s() - t0);
            }
            bwk             = LQ_MAX(bwk, read_bw_gbs(bw, BW_BYTES / 4, nt));
            const double gb = (double)wbytes / best / 1e9;
            fprintf(out,
                    "matmul %-4s decode  1x%lldx%-5lld    : %6.1f GB/s     ratio %.2f of read bw   (%.0f)  "
                    "(goal >= 0.60)%s\n",
                    dt_name(dt), (long long)cols, (long long)rows, gb, gb / bwk, bwk, disturbed(gb / bwk));
            peak = LQ_MAX(peak, pk);
            band = LQ_MAX(band, bwk);
        }
    }
    fprintf(out,
            "best ceilings seen   : %.1f GFLOP/s, %.1f GB/s (each ratio above uses the ceiling measured beside it)\n",
            peak, band);

    /* attention, Llama-1B shape: 32 heads, 4 kv heads, head_dim 64, one prefill of 512 and a decode at 512 */
    {
        const int64_t H = 32, KVH = 4, HD = 64, S = PREFILL_N, KVD = KVH * HD;
        float *const q = lq_malloc(sizeof(float) * S * H * HD), *const o = lq_malloc(sizeof(float) * S * H * HD);
        float *const kc = lq_malloc(sizeof(float) * (S + 1) * KVD), *const vc =
                                                                        lq_malloc(sizeof(float) * (S + 1) * KVD);
        if (q && o && kc && vc) {
            fill_weights(q, LQ_DTYPE_F32, (size_t)(S * H * HD), 21, nt);
            fill_weights(kc, LQ_DTYPE_F32, (size_t)((S + 1) * KVD), 22, nt);
            fill_weights(vc, LQ_DTYPE_F32, (size_t)((S + 1) * KVD), 23, nt);
            double tp = 1e30, tdec = 1e30;
            for (int r = 0; r < N_REPS; r++) {
                double t0 = now_s();
                if (lq_attention_cpu(o, q, kc, vc, S, 0, H, KVH, HD, KVD, nt) != LQ_OK) rc = 1;
                tp = LQ_MIN(tp, now_s() - t0);
                t0 = now_s();
                if (lq_attention_cpu(o, q, kc, vc, 1, S, H, KVH, HD, KVD, nt) != LQ_OK) rc = 1;
                tdec = LQ_MIN(tdec, now_s() - t0);
            }
            /* flops: QK and PV over the causal triangle */
            const double fl = 4.0 * (double)H * HD * (double)S * (double)(S + 1) / 2.0;
            fprintf(out,
                    "attention prefill 512 tok, 32/4 heads x 64 : %7.2f ms  %6.1f GFLOP/s  ratio %.2f of FMA peak\n",
                    tp * 1e3, fl / tp / 1e9, fl / tp / 1e9 / peak);
            fprintf(out, "attention decode at pos 512              : %7.3f ms\n", tdec * 1e3);
        } else {
            rc = 1;
        }
        lq_free(q), lq_free(o), lq_free(kc), lq_free(vc);
    }
done:
    lq_free(bw);
    lq_free(pool);
    lq_free(x);
    lq_free(y);
    return rc;
}

void lq__bench_ceilings(int n_threads, double *fma_gflops, double *read_gbs) {
    int nt = n_threads;
#ifdef _OPENMP
    if (nt <= 0) nt = omp_get_max_threads();
#else
    nt = 1;
#endif
    *fma_gflops    = fma_peak_gflops(nt);
    *read_gbs      = 0;
    float *const b = lq_malloc(BW_BYTES);
    if (!b) return;
    fill_weights(b, LQ_DTYPE_F32, BW_BYTES / 4, 1, nt);
    *read_gbs = read_bw_gbs(b, BW_BYTES / 4, nt);
    lq_free(b);
}
