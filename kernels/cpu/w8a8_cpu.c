/* w8a8_cpu.c : W8A8 static int8 matmuls (lq_weight.in_scale > 0): the
 * activations quantized per tensor, q = clamp(rint(x / s_x), -128, 127)
 * (division, round half to even, as vLLM's static_scaled_int8_quant), the
 * int8 weight codes u (zero point 128) and q multiplied and summed exactly in
 * int32, y[t][r] = (s_x * s_w[r]) * acc + bias[r] (f32, in that order).
 * `_ref`: plain loops; `_cpu`: OpenMP over rows and AVX2 vpmaddubsw-free
 * integer dot products (u8 x s8 summed as sum u*q - 128 * sum q, both exact
 * in int32). The int32 sums are exact, so _ref and _cpu are bit-identical. */
#include "lq_internal.h"
#include "lq_kernels.h"
#include "qmatmul_internal.h"

#include <math.h>
#include <string.h>

#if defined(__AVX2__)
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
static int omp_max(void) { return omp_get_max_threads(); }
#else
static int omp_max(void) { return 1; }
#endif

static inline int8_t quant_act(float x, float s) {
    float v = rintf(x / s);
    v       = v > 127.f ? 127.f : v < -128.f ? -128.f : v;
    return (int8_t)v;
}

void lq_quantize_act_i8_ref(const float *x, int64_t n, float scale, int8_t *q) {
    for (int64_t i = 0; i < n; i++) q[i] = quant_act(x[i], scale);
}

void lq_quantize_act_i8_cpu(const float *x, int64_t n, float scale, int8_t *q, int n_threads) {
#pragma omp parallel for num_threads(n_threads > 0 ? n_threads : omp_max()) schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) q[i] = quant_act(x[i], scale);
}

void lq_gemm_i8_ref(int32_t *c, const int8_t *a, int64_t n, int64_t k, const uint8_t *b, int64_t ldb, int64_t rows) {
    for (int64_t t = 0; t < n; t++)
        for (int64_t r = 0; r < rows; r++) {
            int32_t acc = 0;
            for (int64_t j = 0; j < k; j++) acc += (int32_t)a[t * k + j] * ((int32_t)b[r * ldb + j] - 128);
            c[t * rows + r] = acc;
        }
}

/* sum_j a[j] * (b[j] - 128) */
static int32_t dot_i8(const int8_t *a, const uint8_t *b, int64_t k) {
    int64_t j   = 0;
    int32_t acc = 0;
#if defined(__AVX2__)
    __m256i vacc = _mm256_setzero_si256();
    const __m256i bias = _mm256_set1_epi16(128);
    for (; j + 16 <= k; j += 16) {
        const __m256i va = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(a + j)));
        const __m256i vb = _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(b + j))), bias);
        vacc             = _mm256_add_epi32(vacc, _mm256_madd_epi16(va, vb)); /* |a*b| <= 2^14: exact pairs */
    }
    int32_t lanes[8];
    _mm256_storeu_si256((__m256i *)lanes, vacc);
    for (int i = 0; i < 8; i++) acc += lanes[i];
#endif
    for (; j < k; j++) acc += (int32_t)a[j] * ((int32_t)b[j] - 128);
    return acc;
}

void lq_gemm_i8_cpu(int32_t *c, const int8_t *a, int64_t n, int64_t k, const uint8_t *b, int64_t ldb, int64_t rows,
                    int n_threads) {
#pragma omp parallel for num_threads(n_threads > 0 ? n_threads : omp_max()) schedule(static) if (n * rows * k > 65536)
    for (int64_t r = 0; r < rows; r++)
        for (int64_t t = 0; t < n; t++) c[t * rows + r] = dot_i8(a + t * k, b + r * ldb, k);
}

lq_status lq__w8a8_check(const lq_weight *w, const char *op) {
    LQ_RETURN_IF(w->qtype != LQ_QT_INT8_CH || w->perm || !w->scales || !w->data, LQ_ERR_UNSUPPORTED,
                 "%s: static int8 activations (W8A8) need int8_ch weights without a permutation (got %s%s)", op,
                 lq_qtype_name(w->qtype), w->perm ? " with act-order" : "");
    LQ_RETURN_IF(!(w->in_scale > 0) || !isfinite(w->in_scale), LQ_ERR_INVALID_ARG, "%s: input scale %g is not positive",
                 op, (double)w->in_scale);
    LQ_RETURN_IF(w->rows < 0 || w->cols <= 0, LQ_ERR_SHAPE, "%s: weight (%lld, %lld)", op, (long long)w->rows,
                 (long long)w->cols);
    return LQ_OK;
}

lq_status lq__w8a8_matmul(float *y, const float *x, int64_t n, const lq_weight *w, const float *bias, int n_threads,
                          bool ref) {
    LQ_TRY(lq__w8a8_check(w, "matmul"));
    if (n <= 0 || w->rows == 0) return LQ_OK;
    const int64_t K = w->cols, R = w->rows, ldb = (int64_t)lq_qtype_row_bytes(LQ_QT_INT8_CH, K);
    int8_t       *q = lq_malloc((size_t)(n * K));
    int32_t      *c = lq_malloc((size_t)(n * R) * sizeof *c);
    if (!q || !c) {
        lq_free(q);
        lq_free(c);
        LQ_RETURN_IF(1, LQ_ERR_NOMEM, "matmul: out of memory for %lld int8 activations", (long long)(n * K));
    }
    if (ref) {
        lq_quantize_act_i8_ref(x, n * K, w->in_scale, q);
        lq_gemm_i8_ref(c, q, n, K, w->data, ldb, R);
    } else {
        lq_quantize_act_i8_cpu(x, n * K, w->in_scale, q, n_threads);
        lq_gemm_i8_cpu(c, q, n, K, w->data, ldb, R, n_threads);
    }
    for (int64_t t = 0; t < n; t++)
        for (int64_t r = 0; r < R; r++) {
            const float v     = (w->in_scale * w->scales[r]) * (float)c[t * R + r];
            y[t * R + r]      = bias ? v + bias[r] : v;
        }
    lq_free(q);
    lq_free(c);
    return LQ_OK;
}
