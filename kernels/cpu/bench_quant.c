/* bench_quant.c : lq__bench_quantize(), the quantization benchmark behind lq-bench.
 *
 * Times lq_quantize_cpu (RTN, default params: f16 scales) on one
 * Llama-8B-like F16 weight (ffn_down, 4096 x 14336, 117 MB) for q8_0, q4_0,
 * q4_k, q6_k, int8_ch, int4_g128, int4_g128_asym and int4_g128 with the clip
 * search. A figure is source bytes read per second, the best of several runs
 * (wall clock), divided by the read bandwidth measured (lq__bench_ceilings)
 * right before and right after it, the better of the two, so that load from
 * other processes lowers the ratio instead of inflating it. Before timing a
 * type, its first rows are checked against lq_quantize_ref bit for bit.
 * The whole run takes well under a minute on 2 cores. */
#include "bench_internal.h"
#include "lq_internal.h"
#include "lq_kernels.h"
#include "lq_qtypes.h"

#include <math.h>
#include <string.h>
#include <time.h>

#define B_ROWS 4096
#define B_COLS 14336
#define CHECK_ROWS 4
#define MIN_RUNS 2
#define MAX_RUNS 5
#define RUN_BUDGET_S 3.0 /* stop adding runs of one figure after this much time */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* splitmix64 of the index: N(0, 0.02)-ish weights (sum of 4 uniforms) with a
 * few large outliers, as F16 */
static void fill_f16(uint16_t *w, int64_t n) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (int64_t i = 0; i < n; i++) {
        uint64_t z = (uint64_t)i * 0x9E3779B97F4A7C15ULL + 0x1234567ULL;
        z          = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z          = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        const float u = (float)((z & 0xFFFF) + ((z >> 16) & 0xFFFF) + ((z >> 32) & 0xFFFF) + (z >> 48)) / 65536.f;
        float       v = (u - 2.f) * 0.035f;
        if ((z & 0x3FF) == 7) v *= 12.f;
        w[i] = lq_f32_to_f16(v);
    }
}

typedef struct {
    const char *label;
    lq_qtype    t;
    bool        clip;
} bq_case;

int lq__bench_quantize(int n_threads, FILE *out) {
    static const bq_case cases[] = {
        {"q8_0", LQ_QT_Q8_0, false},           {"q4_0", LQ_QT_Q4_0, false},
        {"q4_k", LQ_QT_Q4_K, false},           {"q6_k", LQ_QT_Q6_K, false},
        {"int8_ch", LQ_QT_INT8_CH, false},     {"int4_g128", LQ_QT_INT4_G128, false},
        {"int4_g128_asym", LQ_QT_INT4_G128_ASYM, false}, {"int4_g128+clip", LQ_QT_INT4_G128, true},
    };
    const int64_t  rows = B_ROWS, cols = B_COLS, n = rows * cols;
    const double   src_bytes = 2.0 * (double)n;
    uint16_t      *src       = lq_malloc(sizeof(uint16_t) * (size_t)n);
    const size_t   data_n    = (size_t)rows * (size_t)lq_qtype_row_bytes(LQ_QT_Q8_0, cols); /* the largest here */
    uint8_t       *data      = lq_malloc(data_n);
    float         *scales    = lq_malloc(sizeof(float) * (size_t)rows * (size_t)(cols / 32 + 1));
    uint8_t       *zeros     = lq_malloc((size_t)rows * (size_t)(cols / 32 + 1));
    float         *xf        = lq_malloc(sizeof(float) * CHECK_ROWS * (size_t)cols);
    uint8_t       *ref       = lq_malloc((size_t)CHECK_ROWS * (size_t)lq_qtype_row_bytes(LQ_QT_Q8_0, cols));
    float         *rscales   = lq_malloc(sizeof(float) * CHECK_ROWS * (size_t)(cols / 32 + 1));
    uint8_t       *rzeros    = lq_malloc((size_t)CHECK_ROWS * (size_t)(cols / 32 + 1));
    int            rc        = 0;
    if (!src || !data || !scales || !zeros || !xf || !ref || !rscales || !rzeros) {
        fprintf(out, "quantize: out of memory\n");
        rc = 1;
        goto done;
    }
    fill_f16(src, n);
    memset(data, 0, data_n);
    memset(scales, 0, sizeof(float) * (size_t)rows * (size_t)(cols / 32 + 1));
    memset(zeros, 0, (size_t)rows * (size_t)(cols / 32 + 1));
    for (int64_t i = 0; i < CHECK_ROWS * cols; i++)
        xf[i] = lq_f16_to_f32(src[i]);

    double fma, bw_before;
    lq__bench_ceilings(n_threads, &fma, &bw_before);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const bq_case  *k = &cases[c];
        lq_quant_params p = lq_quant_default_params();
        p.clip_search     = k->clip;
        /* correctness: the first rows against the reference */
        const uint64_t rb = lq_qtype_row_bytes(k->t, cols);
        const int64_t  ns = lq_qtype_n_scales(k->t, CHECK_ROWS, cols);
        if (lq_quantize_ref(k->t, xf, CHECK_ROWS, cols, &p, ref, rscales, rzeros) != LQ_OK ||
            lq_quantize_cpu(k->t, LQ_DTYPE_F16, src, CHECK_ROWS, cols, &p, data, scales, zeros, n_threads) != LQ_OK ||
            memcmp(ref, data, (size_t)(rb * CHECK_ROWS)) != 0 ||
            memcmp(rscales, scales, sizeof(float) * (size_t)ns) != 0 ||
            (lq_qtype_has_zeros(k->t) && memcmp(rzeros, zeros, (size_t)ns) != 0)) {
            fprintf(out, "quantize %s: MISMATCH against lq_quantize_ref\n", k->label);
            rc = 1;
            continue;
        }
        double       best = 1e30;
        const double t_start = now_s();
        for (int run = 0; run < MAX_RUNS; run++) {
            const double t0 = now_s();
            if (lq_quantize_cpu(k->t, LQ_DTYPE_F16, src, rows, cols, &p, data, scales, zeros, n_threads) != LQ_OK) {
                fprintf(out, "quantize %s: failed\n", k->label);
                rc = 1;
                break;
            }
            const double dt = now_s() - t0;
            if (dt < best) best = dt;
            if (run + 1 >= MIN_RUNS && now_s() - t_start > RUN_BUDGET_S) break;
        }
        double bw_after;
        lq__bench_ceilings(n_threads, &fma, &bw_after);
        const double bw  = bw_after > bw_before ? bw_after : bw_before;
        const double gbs = src_bytes / best / 1e9;
        fprintf(out, "quantize %-15s %lldx%lld f16: %6.2f GB/s  ratio %.3f of read bandwidth (%.1f GB/s)\n", k->label,
                (long long)rows, (long long)cols, gbs, bw > 0 ? gbs / bw : 0.0, bw);
        fflush(out);
        bw_before = bw_after;
    }
done:
    lq_free(src);
    lq_free(data);
    lq_free(scales);
    lq_free(zeros);
    lq_free(xf);
    lq_free(ref);
    lq_free(rscales);
    lq_free(rzeros);
    return rc;
}
