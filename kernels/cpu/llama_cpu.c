/* llama_cpu.c : the OpenMP + SIMD versions of the Llama forward-pass ops
 * other than matmul (matmul_cpu.c): embed, rmsnorm, rope, attention, swiglu,
 * log_softmax. Each is checked against its `_ref` in llama_ref.c.
 *
 * Work is split by rows (tokens) or by (token, query heads of a kv group);
 * each output element is written by one thread with a fixed operation order,
 * so every result is independent of the thread count. What differs from
 * `_ref`:
 *   embed, rmsnorm, rope       bit-identical (same formulas, same order; the
 *                              rmsnorm square sum stays a sequential f64 chain)
 *   swiglu                     exp from vf_exp (AVX-512: ~1 ulp from exact;
 *                              elsewhere libm expf, then bit-identical)
 *   attention                  per (token, head): scores, f32 softmax with the
 *                              max subtracted (sum in LQ_VL lanes, exp from
 *                              vf_exp), then Σ a_p·v_p in registers across p;
 *                              up to ATT_HB heads of a kv group share each key
 *                              and value load. With >= ATTN_KT_MIN_QUERIES
 *                              queries per kv head (prefill) the keys are
 *                              transposed once so that scores come LQ_VL at a
 *                              time without horizontal sums; O(n · pos) work
 *   log_softmax                the f64 exp sum in 8 lanes (AVX-512: an f64
 *                              exp with ~1e-16 relative error), so the
 *                              log-sum-exp nearly always rounds to _ref's. */
#include "lq_internal.h"
#include "lq_kernels.h"
#include "simd_internal.h"
#include "qmatmul_internal.h"

#include <math.h>
#include <string.h>

static bool dtype_ok(lq_dtype t) { return t == LQ_DTYPE_F32 || t == LQ_DTYPE_F16 || t == LQ_DTYPE_BF16; }

/* y[0..n) = f32 of elements [i0, i0+n) of an F32/F16/BF16 array */
static void row_to_f32(float *y, lq_dtype dt, const void *data, int64_t i0, int64_t n) {
    int64_t i = 0;
    if (dt == LQ_DTYPE_F32) {
        memcpy(y, (const uint8_t *)data + 4 * i0, (size_t)n * sizeof(float));
        return;
    }
    const uint16_t *src = (const uint16_t *)data + i0;
    if (dt == LQ_DTYPE_F16)
        for (; i + LQ_VL <= n; i += LQ_VL)
            vf_store(y + i, vf_load_f16(src + i));
    else
        for (; i + LQ_VL <= n; i += LQ_VL)
            vf_store(y + i, vf_load_bf16(src + i));
    for (; i < n; i++)
        y[i] = lq__elem_f32(dt, data, i0 + i);
}

/* ==== embed ==== */

/* quantized (and KEEP-typed) tables: qmatmul_cpu.c */

lq_status lq_embed_cpu(float *out, const lq_weight *table, const int32_t *ids, int64_t n, int n_threads) {
    if (table->qtype != LQ_QT_NONE) return lq__qembed_cpu(out, table, ids, n, n_threads);
    LQ_RETURN_IF(!dtype_ok(table->dtype), LQ_ERR_UNSUPPORTED, "embed: dtype %s is not F32/F16/BF16",
                 lq_dtype_name(table->dtype));
    for (int64_t t = 0; t < n; t++)
        LQ_RETURN_IF(ids[t] < 0 || ids[t] >= table->rows, LQ_ERR_INVALID_ARG,
                     "token id %d is outside the vocabulary [0, %lld)", ids[t], (long long)table->rows);
    const int64_t cols = table->cols;
    const int     nt   = lq__cpu_threads_for(n_threads, n * cols);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1 && n > 1)
#else
    (void)nt;
#endif
    for (int64_t t = 0; t < n; t++)
        row_to_f32(out + t * cols, table->dtype, table->data, ids[t] * cols, cols);
    return LQ_OK;
}

/* ==== rmsnorm ==== */

void lq_rmsnorm_cpu(float *y, const float *x, const lq_weight *w, int64_t n, int64_t dim, float eps, int n_threads) {
    LQ_ASSERT(dtype_ok(w->dtype));
    const int nt = lq__cpu_threads_for(n_threads, n * dim);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1 && n > 1)
#else
    (void)nt;
#endif
    for (int64_t t = 0; t < n; t++) {
        const float *xr = x + t * dim;
        float       *yr = y + t * dim;
        /* a sequential f64 chain, as in _ref: bit-identical, and cheap next to the matmuls */
        double ss = 0;
        for (int64_t c = 0; c < dim; c++)
            ss += (double)xr[c] * xr[c];
        const float inv  = (float)(1.0 / sqrt(ss / (double)dim + (double)eps));
        const lq_vf invv = vf_set1(inv);
        int64_t     c    = 0;
        for (; c + LQ_VL <= dim; c += LQ_VL)
            vf_store(yr + c, vf_mul(vf_mul(vf_load(xr + c), invv), lq__load_w(w->dtype, w->data, c)));
        for (; c < dim; c++)
            yr[c] = (xr[c] * inv) * lq__elem_f32(w->dtype, w->data, c);
    }
}

/* ==== rope ==== */

#define ROPE_CHUNK 128 /* frequency pairs whose cos/sin sit on the stack at once */

void lq_rope_cpu(float *x, const int32_t *pos, int64_t n, int64_t n_heads, int64_t head_dim, const float *inv_freq,
                 bool neox, int n_threads) {
    const int64_t half = head_dim / 2;
    const int     nt   = lq__cpu_threads_for(n_threads, 4 * n * n_heads * head_dim);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1 && n > 1)
#else
    (void)nt;
#endif
    for (int64_t t = 0; t < n; t++) {
        float cs[ROPE_CHUNK], sn[ROPE_CHUNK];
        for (int64_t i0 = 0; i0 < half; i0 += ROPE_CHUNK) {
            const int64_t m = LQ_MIN((int64_t)ROPE_CHUNK, half - i0);
            /* the same floats as _ref: angle rounded to f32, then cosf/sinf */
            for (int64_t i = 0; i < m; i++) {
                const float a = (float)pos[t] * inv_freq[i0 + i];
                cs[i]         = cosf(a);
                sn[i]         = sinf(a);
            }
            for (int64_t h = 0; h < n_heads; h++) {
                float *v = x + (t * n_heads + h) * head_dim;
                if (neox) {
                    float *lo = v + i0, *hi = v + half + i0;
                    for (int64_t i = 0; i < m; i++) {
                        const float x0 = lo[i], x1 = hi[i];
                        lo[i] = x0 * cs[i] - x1 * sn[i];
                        hi[i] = x1 * cs[i] + x0 * sn[i];
                    }
                } else {
                    float *p = v + 2 * i0;
                    for (int64_t i = 0; i < m; i++) {
                        const float x0 = p[2 * i], x1 = p[2 * i + 1];
                        p[2 * i]     = x0 * cs[i] - x1 * sn[i];
                        p[2 * i + 1] = x1 * cs[i] + x0 * sn[i];
                    }
                }
            }
        }
    }
}

/* ==== attention ==== */

/* Query heads that share a kv head are processed ATT_HB at a time: every key
 * and value vector loaded serves all of them, and their independent FMA
 * chains hide the FMA latency. Fewer heads than ATT_HB: the missing ones
 * repeat the last real head and are not stored. Each (token, head) output is
 * computed by the same operation sequence whatever it is grouped with. */
#define ATT_HB 4

static inline float dot_f32(const float *a, const float *b, int64_t n) {
    lq_vf   acc = vf_zero();
    int64_t i   = 0;
    for (; i + LQ_VL <= n; i += LQ_VL)
        acc = vf_fma(vf_load(a + i), vf_load(b + i), acc);
    if (i < n) acc = vf_fma(vf_load_part(a + i, (int)(n - i)), vf_load_part(b + i, (int)(n - i)), acc);
    return vf_hsum(acc);
}

/* att[h·lda + p] = q_h · k_p for p < np rounded up to LQ_VL (extra lanes are
 * garbage), keys transposed: kt[i·ldk + p]. Two key vectors x ATT_HB heads
 * per pass, one FMA chain each in index order over i. */
static void scores_t(float *att, int64_t lda, const float *const *qh, const float *kt, int64_t ldk, int64_t np,
                     int64_t hd) {
    const int64_t nv = LQ_CEIL_DIV(np, (int64_t)LQ_VL);
    int64_t       j  = 0;
    for (; j + 2 <= nv; j += 2) {
        lq_vf acc[ATT_HB][2];
        LQ_UNROLL(4)
        for (int h = 0; h < ATT_HB; h++)
            acc[h][0] = acc[h][1] = vf_zero();
        const float *kp = kt + j * LQ_VL;
        for (int64_t i = 0; i < hd; i++, kp += ldk) {
            const lq_vf k0 = vf_load(kp), k1 = vf_load(kp + LQ_VL);
            LQ_UNROLL(4)
            for (int h = 0; h < ATT_HB; h++) {
                const lq_vf qb = vf_set1(qh[h][i]);
                acc[h][0]      = vf_fma(qb, k0, acc[h][0]);
                acc[h][1]      = vf_fma(qb, k1, acc[h][1]);
            }
        }
        LQ_UNROLL(4)
        for (int h = 0; h < ATT_HB; h++) {
            vf_store(att + h * lda + j * LQ_VL, acc[h][0]);
            vf_store(att + h * lda + (j + 1) * LQ_VL, acc[h][1]);
        }
    }
    if (j < nv) {
        lq_vf acc[ATT_HB];
        LQ_UNROLL(4)
        for (int h = 0; h < ATT_HB; h++)
            acc[h] = vf_zero();
        const float *kp = kt + j * LQ_VL;
        for (int64_t i = 0; i < hd; i++, kp += ldk) {
            const lq_vf k0 = vf_load(kp);
            LQ_UNROLL(4)
            for (int h = 0; h < ATT_HB; h++)
                acc[h] = vf_fma(vf_set1(qh[h][i]), k0, acc[h]);
        }
        LQ_UNROLL(4)
        for (int h = 0; h < ATT_HB; h++)
            vf_store(att + h * lda + j * LQ_VL, acc[h]);
    }
}

/* o_h[i0 .. i0 + NVEC·LQ_VL) = Σ_p a_h[p] · v(p, i0 + ...), for h < nh */
static LQ_ALWAYS_INLINE void pv_vecs(const int NVEC, float *const *oh, int nh, const float *const *ah, const float *v,
                                     int64_t stride, int64_t np, int64_t i0) {
    lq_vf acc[ATT_HB][4];
    LQ_UNROLL(4)
    for (int h = 0; h < ATT_HB; h++) {
        LQ_UNROLL(4)
        for (int j = 0; j < NVEC; j++)
            acc[h][j] = vf_zero();
    }
    for (int64_t p = 0; p < np; p++) {
        lq_vf vv[4];
        LQ_UNROLL(4)
        for (int j = 0; j < NVEC; j++)
            vv[j] = vf_load(v + p * stride + i0 + j * LQ_VL);
        LQ_UNROLL(4)
        for (int h = 0; h < ATT_HB; h++) {
            const lq_vf ap = vf_set1(ah[h][p]);
            LQ_UNROLL(4)
            for (int j = 0; j < NVEC; j++)
                acc[h][j] = vf_fma(ap, vv[j], acc[h][j]);
        }
    }
    for (int h = 0; h < nh; h++) {
        LQ_UNROLL(4)
        for (int j = 0; j < NVEC; j++)
            vf_store(oh[h] + i0 + j * LQ_VL, acc[h][j]);
    }
}

static void pv_accum(float *const *oh, int nh, const float *const *ah, const float *v, int64_t stride, int64_t np,
                     int64_t hd) {
    int64_t i = 0;
    for (; i + 4 * LQ_VL <= hd; i += 4 * LQ_VL)
        pv_vecs(4, oh, nh, ah, v, stride, np, i);
    switch ((hd - i) / LQ_VL) {
    case 3:
        pv_vecs(3, oh, nh, ah, v, stride, np, i);
        break;
    case 2:
        pv_vecs(2, oh, nh, ah, v, stride, np, i);
        break;
    case 1:
        pv_vecs(1, oh, nh, ah, v, stride, np, i);
        break;
    default:
        break;
    }
    i += (hd - i) / LQ_VL * LQ_VL;
    if (i < hd) {
        const int rem = (int)(hd - i);
        lq_vf     acc[ATT_HB];
        for (int h = 0; h < ATT_HB; h++)
            acc[h] = vf_zero();
        for (int64_t p = 0; p < np; p++) {
            const lq_vf vv = vf_load_part(v + p * stride + i, rem);
            for (int h = 0; h < ATT_HB; h++)
                acc[h] = vf_fma(vf_set1(ah[h][p]), vv, acc[h]);
        }
        for (int h = 0; h < nh; h++)
            vf_store_part(oh[h] + i, acc[h], rem);
    }
}

/* softmax in place over att[0 .. np) (room up to np rounded up to LQ_VL):
 * f32, max subtracted, the sum in lanes; tail lanes are -Inf, exp'ed to 0 */
static void softmax_row(float *att, int64_t np) {
    const int64_t np_pad = LQ_CEIL_DIV(np, (int64_t)LQ_VL) * LQ_VL;
    for (int64_t p = np; p < np_pad; p++)
        att[p] = -INFINITY;
    lq_vf mv = vf_set1(-INFINITY);
    for (int64_t p = 0; p < np_pad; p += LQ_VL)
        mv = vf_max(vf_load(att + p), mv);
    const lq_vf mxv = vf_set1(vf_hmax(mv));
    lq_vf       sv  = vf_zero();
    for (int64_t p = 0; p < np_pad; p += LQ_VL) {
        const lq_vf e = vf_exp(vf_sub(vf_load(att + p), mxv));
        vf_store(att + p, e);
        sv = vf_add(sv, e);
    }
    const lq_vf sum = vf_set1(vf_hsum(sv));
    for (int64_t p = 0; p < np_pad; p += LQ_VL)
        vf_store(att + p, vf_div(vf_load(att + p), sum));
}

/* nh (<= ATT_HB) query heads of one token, sharing keys/values 0 .. np-1.
 * Scores come from the transposed keys `kt` (row stride ldk) when given,
 * else from k directly. att: ATT_HB rows of ldk floats. */
static void attend_heads(float *const *oh, const float *const *qh, int nh, const float *k, const float *kt, int64_t ldk,
                         const float *v, int64_t stride, int64_t np, int64_t hd, float scale, float *att) {
    const int64_t np_pad = LQ_CEIL_DIV(np, (int64_t)LQ_VL) * LQ_VL;
    const float  *ah[ATT_HB];
    for (int h = 0; h < ATT_HB; h++)
        ah[h] = att + LQ_MIN(h, nh - 1) * ldk;
    if (kt) {
        scores_t(att, ldk, qh, kt, ldk, np, hd);
        const lq_vf sv = vf_set1(scale);
        for (int h = 0; h < nh; h++)
            for (int64_t p = 0; p < np_pad; p += LQ_VL)
                vf_store(att + h * ldk + p, vf_mul(vf_load(att + h * ldk + p), sv));
    } else {
        for (int h = 0; h < nh; h++)
            for (int64_t p = 0; p < np; p++)
                att[h * ldk + p] = dot_f32(qh[h], k + p * stride, hd) * scale;
    }
    for (int h = 0; h < nh; h++)
        softmax_row(att + h * ldk, np);
    pv_accum(oh, nh, ah, v, stride, np, hd);
}

/* Below this many query rows per kv head (tokens x group) the keys are read
 * in place (one horizontal sum per score); from it on they are first
 * transposed once per call, which every query of the group then reuses. */
#define ATTN_KT_MIN_QUERIES 8

lq_status lq_attention_cpu(float *out, const float *q, const float *k_cache, const float *v_cache, int64_t n,
                           int64_t pos0, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t kv_stride,
                           int n_threads) {
    LQ_RETURN_IF(n < 0 || pos0 < 0 || head_dim <= 0 || n_heads <= 0 || n_kv_heads <= 0 || n_heads % n_kv_heads ||
                     kv_stride < n_kv_heads * head_dim,
                 LQ_ERR_INVALID_ARG,
                 "attention: bad shape (n %lld, pos0 %lld, heads %lld/%lld, head_dim %lld, kv_stride %lld)",
                 (long long)n, (long long)pos0, (long long)n_heads, (long long)n_kv_heads, (long long)head_dim,
                 (long long)kv_stride);
    if (n == 0) return LQ_OK;
    const int64_t group = n_heads / n_kv_heads, n_hb = LQ_CEIL_DIV(group, (int64_t)ATT_HB);
    const float   scale = 1.0f / sqrtf((float)head_dim);
    const int64_t items = n * n_kv_heads * n_hb, len = pos0 + n;
    const int64_t ldk   = LQ_CEIL_DIV(len, (int64_t)LQ_VL) * LQ_VL; /* also the scores' row length */
    const bool    use_t = n * group >= ATTN_KT_MIN_QUERIES;
    int           nt    = lq__cpu_threads_for(n_threads, n * n_heads * len * head_dim);
    if (nt > items) nt = (int)items;
    const size_t n_kt = use_t ? (size_t)(n_kv_heads * head_dim * ldk) : 0, per = (size_t)(ATT_HB * ldk);
    float *const scr = lq_malloc(sizeof(float) * (n_kt + per * (size_t)nt));
    LQ_RETURN_IF(!scr, LQ_ERR_NOMEM, "attention: no memory for %zu floats of scratch", n_kt + per * (size_t)nt);
    float *const kt = use_t ? scr : NULL;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        float *const att = scr + n_kt + per * (size_t)lq__cpu_thread_id();
        if (use_t) {
            /* kt[(kvh·hd + i)·ldk + p] = k(p, kvh, i); the padding columns are 0 */
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (int64_t r = 0; r < n_kv_heads * head_dim; r++) {
                float *const       dst = kt + r * ldk;
                const float *const src = k_cache + r; /* r = kvh·hd + i */
                for (int64_t p = 0; p < len; p++)
                    dst[p] = src[p * kv_stride];
                for (int64_t p = len; p < ldk; p++)
                    dst[p] = 0.f;
            }
        }
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 4)
#endif
        for (int64_t it = 0; it < items; it++) {
            const int64_t t = it / (n_kv_heads * n_hb), kvh = it / n_hb % n_kv_heads, hb = it % n_hb;
            const int64_t h0 = kvh * group + hb * ATT_HB;
            const int     nh = (int)LQ_MIN((int64_t)ATT_HB, group - hb * ATT_HB);
            const float  *qh[ATT_HB];
            float        *oh[ATT_HB];
            for (int h = 0; h < ATT_HB; h++) {
                const int64_t hh = t * n_heads + h0 + LQ_MIN(h, nh - 1);
                qh[h]            = q + hh * head_dim;
                oh[h]            = out + hh * head_dim;
            }
            attend_heads(oh, qh, nh, k_cache + kvh * head_dim, use_t ? kt + kvh * head_dim * ldk : NULL, ldk,
                         v_cache + kvh * head_dim, kv_stride, pos0 + t + 1, head_dim, scale, att);
        }
    }
    lq_free(scr);
    return LQ_OK;
}

/* ==== swiglu ==== */

#define EW_CHUNK ((int64_t)1 << 14) /* elements per work item of an elementwise op */

void lq_swiglu_cpu(float *out, const float *gate, const float *up, int64_t n, int n_threads) {
    const int64_t n_chunks = LQ_CEIL_DIV(n, EW_CHUNK);
    const int     nt       = lq__cpu_threads_for(n_threads, n);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1 && n_chunks > 1)
#else
    (void)nt;
#endif
    for (int64_t ch = 0; ch < n_chunks; ch++) {
        const int64_t end = LQ_MIN(n, (ch + 1) * EW_CHUNK);
        const lq_vf   one = vf_set1(1.f), zero = vf_zero();
        int64_t       i = ch * EW_CHUNK;
        for (; i + LQ_VL <= end; i += LQ_VL) {
            const lq_vf g = vf_load(gate + i);
            vf_store(out + i, vf_mul(vf_div(g, vf_add(one, vf_exp(vf_sub(zero, g)))), vf_load(up + i)));
        }
        if (i < end) {
            const int   rem = (int)(end - i);
            const lq_vf g   = vf_load_part(gate + i, rem);
            vf_store_part(out + i, vf_mul(vf_div(g, vf_add(one, vf_exp(vf_sub(zero, g)))), vf_load_part(up + i, rem)),
                          rem);
        }
    }
}

/* ==== log_softmax ==== */

#if defined(LQ_SIMD_AVX512)
/* exp(x) for f64 lanes: x = n·ln2 + r (fdlibm's split ln 2, exact products
 * for |n| < 2^20), |r| <= ln2/2, Taylor to degree 13 (truncation < 5e-18),
 * then scalef. Relative error ~1e-16; NaN propagates. */
static inline __m512d exp_pd(__m512d x) {
    x                              = _mm512_min_pd(_mm512_set1_pd(710.0), _mm512_max_pd(_mm512_set1_pd(-746.0), x));
    const __m512d nn               = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(1.4426950408889634074)),
                                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512d       r                = _mm512_fnmadd_pd(nn, _mm512_set1_pd(6.93147180369123816490e-01), x);
    r                              = _mm512_fnmadd_pd(nn, _mm512_set1_pd(1.90821492927058770002e-10), r);
    static const double inv_fact[] = {1.0 / 6227020800.0,
                                      1.0 / 479001600.0,
                                      1.0 / 39916800.0,
                                      1.0 / 3628800.0,
                                      1.0 / 362880.0,
                                      1.0 / 40320.0,
                                      1.0 / 5040.0,
                                      1.0 / 720.0,
                                      1.0 / 120.0,
                                      1.0 / 24.0,
                                      1.0 / 6.0,
                                      0.5,
                                      1.0,
                                      1.0};
    __m512d             p          = _mm512_set1_pd(inv_fact[0]);
    for (int i = 1; i < 14; i++)
        p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(inv_fact[i]));
    return _mm512_scalef_pd(p, nn);
}
#endif

/* Σ exp((double)l[v] - mx) over one row */
static double exp_sum_f64(const float *l, int64_t vocab, float mx) {
#if defined(LQ_SIMD_AVX512)
    const __m512d m  = _mm512_set1_pd((double)mx);
    __m512d       s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    int64_t       v = 0;
    for (; v + 16 <= vocab; v += 16) {
        const __m512 x = _mm512_loadu_ps(l + v);
        s0             = _mm512_add_pd(s0, exp_pd(_mm512_sub_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(x)), m)));
        s1             = _mm512_add_pd(s1, exp_pd(_mm512_sub_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(x, 1)), m)));
    }
    double sum = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
    for (; v < vocab; v++)
        sum += exp((double)l[v] - mx);
    return sum;
#else
    /* libm exp, in index order: _ref's sum exactly */
    double sum = 0;
    for (int64_t v = 0; v < vocab; v++)
        sum += exp((double)l[v] - mx);
    return sum;
#endif
}

void lq_log_softmax_cpu(float *out, const float *logits, int64_t n, int64_t vocab, int n_threads) {
    const int nt = lq__cpu_threads_for(n_threads, 8 * n * vocab);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1 && n > 1)
#else
    (void)nt;
#endif
    for (int64_t t = 0; t < n; t++) {
        const float *l = logits + t * vocab;
        float       *o = out + t * vocab;
        /* the max is order-free; vf_max(x, m) keeps m where x is NaN, as _ref's `>` does */
        lq_vf   mv = vf_set1(-INFINITY);
        int64_t v  = 0;
        for (; v + LQ_VL <= vocab; v += LQ_VL)
            mv = vf_max(vf_load(l + v), mv);
        float mx = vf_hmax(mv);
        for (; v < vocab; v++)
            if (l[v] > mx) mx = l[v];
        const double sum = exp_sum_f64(l, vocab, mx);
        const float  lse = (float)((double)mx + log(sum));
        const lq_vf  lv  = vf_set1(lse);
        for (v = 0; v + LQ_VL <= vocab; v += LQ_VL)
            vf_store(o + v, vf_sub(vf_load(l + v), lv));
        for (; v < vocab; v++)
            o[v] = l[v] - lse;
    }
}
