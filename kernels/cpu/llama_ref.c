/* llama_ref.c : the plain C reference of every Llama forward-pass op.
 *
 * This is the spec and the oracle: portable C11, no OpenMP, no intrinsics,
 * sums in index order. The math follows Hugging Face's LlamaForCausalLM
 * (modeling_llama.py): RMSNorm in f32, rotate_half or interleaved RoPE,
 * scaled-dot-product attention with a causal mask and f32 softmax, SwiGLU
 * MLP. The optimized `_cpu` versions and the CUDA versions are tested
 * against these functions. */
#include "lq_formats.h"
#include "lq_internal.h"
#include "lq_kernels.h"
#include "qmatmul_internal.h"

#include <math.h>
#include <string.h>

/* element i of a F32/F16/BF16 weight (callers checked the dtype) */
static inline float weight_at(const lq_weight *w, int64_t i) {
    if (w->dtype == LQ_DTYPE_F32) {
        float f;
        memcpy(&f, (const uint8_t *)w->data + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, (const uint8_t *)w->data + 2 * i, 2);
    return w->dtype == LQ_DTYPE_F16 ? lq_f16_to_f32(h) : lq_bf16_to_f32(h);
}

static bool weight_dtype_ok(lq_dtype t) { return t == LQ_DTYPE_F32 || t == LQ_DTYPE_F16 || t == LQ_DTYPE_BF16; }

/* quantized (and KEEP-typed) weights: qmatmul_ref.c */

/* act-order weights (w->perm): y = W · x[perm], through a gathered copy of x */
lq_status lq__matmul_perm(float *y, const float *x, int64_t n, const lq_weight *w, const float *bias, int n_threads,
                          bool ref) {
    float *xp = lq_malloc((size_t)(n * w->cols) * sizeof *xp);
    LQ_RETURN_IF(!xp, LQ_ERR_NOMEM, "matmul: out of memory for %lld x %lld gathered inputs", (long long)n,
                 (long long)w->cols);
    for (int64_t t = 0; t < n; t++)
        for (int64_t c = 0; c < w->cols; c++) {
            const int32_t k = w->perm[c];
            if (k < 0 || k >= w->cols) {
                lq_free(xp);
                LQ_RETURN_IF(1, LQ_ERR_INVALID_ARG, "matmul: perm[%lld] = %d is outside [0, %lld)", (long long)c, k,
                             (long long)w->cols);
            }
            xp[t * w->cols + c] = x[t * w->cols + k];
        }
    lq_weight plain = *w;
    plain.perm      = NULL;
    const lq_status st = ref ? lq_matmul_ref(y, xp, n, &plain, bias) : lq_matmul_cpu(y, xp, n, &plain, bias, n_threads);
    lq_free(xp);
    return st;
}

lq_status lq_matmul_ref(float *y, const float *x, int64_t n, const lq_weight *w, const float *bias) {
    if (w->in_scale != 0) return lq__w8a8_matmul(y, x, n, w, bias, 1, true);
    if (w->perm) return lq__matmul_perm(y, x, n, w, bias, 1, true);
    if (w->qtype != LQ_QT_NONE) return lq__qmatmul_ref(y, x, n, w, bias);
    LQ_RETURN_IF(!weight_dtype_ok(w->dtype), LQ_ERR_UNSUPPORTED, "matmul: weight dtype %s is not F32/F16/BF16",
                 lq_dtype_name(w->dtype));
    for (int64_t t = 0; t < n; t++)
        for (int64_t r = 0; r < w->rows; r++) {
            float acc = 0.f;
            for (int64_t c = 0; c < w->cols; c++) acc += x[t * w->cols + c] * weight_at(w, r * w->cols + c);
            y[t * w->rows + r] = bias ? acc + bias[r] : acc;
        }
    return LQ_OK;
}

lq_status lq_embed_ref(float *out, const lq_weight *table, const int32_t *ids, int64_t n) {
    if (table->qtype != LQ_QT_NONE) return lq__qembed_ref(out, table, ids, n);
    LQ_RETURN_IF(!weight_dtype_ok(table->dtype), LQ_ERR_UNSUPPORTED, "embed: dtype %s is not F32/F16/BF16",
                 lq_dtype_name(table->dtype));
    for (int64_t t = 0; t < n; t++) {
        LQ_RETURN_IF(ids[t] < 0 || ids[t] >= table->rows, LQ_ERR_INVALID_ARG,
                     "token id %d is outside the vocabulary [0, %lld)", ids[t], (long long)table->rows);
        for (int64_t c = 0; c < table->cols; c++) out[t * table->cols + c] = weight_at(table, ids[t] * table->cols + c);
    }
    return LQ_OK;
}

void lq_rmsnorm_ref(float *y, const float *x, const lq_weight *w, int64_t n, int64_t dim, float eps) {
    for (int64_t t = 0; t < n; t++) {
        double ss = 0;
        for (int64_t c = 0; c < dim; c++) ss += (double)x[t * dim + c] * x[t * dim + c];
        const float inv = (float)(1.0 / sqrt(ss / (double)dim + (double)eps));
        for (int64_t c = 0; c < dim; c++) y[t * dim + c] = (x[t * dim + c] * inv) * weight_at(w, c);
    }
}

lq_status lq_rope_inv_freq(float *inv_freq, int64_t head_dim, double theta, int rope_type, double factor,
                           double low_freq_factor, double high_freq_factor, int64_t original_max_pos) {
    LQ_RETURN_IF(head_dim <= 0 || head_dim % 2 || !(theta > 0), LQ_ERR_INVALID_ARG, "rope: bad head_dim or theta");
    for (int64_t i = 0; i < head_dim / 2; i++) {
        double f = 1.0 / pow(theta, (double)(2 * i) / (double)head_dim);
        switch ((lq_rope_type)rope_type) {
        case LQ_ROPE_DEFAULT: break;
        case LQ_ROPE_LINEAR: f /= factor; break;
        case LQ_ROPE_LLAMA3: {
            /* transformers _compute_llama3_parameters */
            const double low_wavelen = (double)original_max_pos / low_freq_factor;
            const double high_wavelen = (double)original_max_pos / high_freq_factor;
            const double wavelen = 2.0 * M_PI / f;
            if (wavelen > low_wavelen) {
                f /= factor;
            } else if (wavelen >= high_wavelen) {
                const double s = ((double)original_max_pos / wavelen - low_freq_factor) /
                                 (high_freq_factor - low_freq_factor);
                f = (1.0 - s) * f / factor + s * f;
            }
            break;
        }
        case LQ_ROPE_DYNAMIC:
        case LQ_ROPE_YARN:
            LQ_RETURN_IF(1, LQ_ERR_UNSUPPORTED, "rope: %s scaling is not supported yet",
                         rope_type == LQ_ROPE_YARN ? "yarn" : "dynamic");
        }
        inv_freq[i] = (float)f;
    }
    return LQ_OK;
}

void lq_rope_ref(float *x, const int32_t *pos, int64_t n, int64_t n_heads, int64_t head_dim, const float *inv_freq,
                 bool neox) {
    const int64_t half = head_dim / 2;
    for (int64_t t = 0; t < n; t++)
        for (int64_t h = 0; h < n_heads; h++) {
            float *v = x + (t * n_heads + h) * head_dim;
            for (int64_t i = 0; i < half; i++) {
                const float   a  = (float)pos[t] * inv_freq[i];
                const float   c  = cosf(a), s = sinf(a);
                const int64_t i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
                const float   x0 = v[i0], x1 = v[i1];
                v[i0]            = x0 * c - x1 * s;
                v[i1]            = x1 * c + x0 * s;
            }
        }
}

void lq_attention_ref(float *out, const float *q, const float *k_cache, const float *v_cache, int64_t n, int64_t pos0,
                      int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t kv_stride) {
    const int64_t group = n_heads / n_kv_heads;
    const float   scale = 1.0f / sqrtf((float)head_dim);
    float        *att   = lq_malloc((size_t)(pos0 + n) * sizeof(float));
    LQ_ASSERT(att);
    for (int64_t t = 0; t < n; t++)
        for (int64_t h = 0; h < n_heads; h++) {
            const float  *qv  = q + (t * n_heads + h) * head_dim;
            const int64_t kvh = h / group, last = pos0 + t;
            float         mx  = -INFINITY;
            for (int64_t p = 0; p <= last; p++) {
                const float *kv = k_cache + p * kv_stride + kvh * head_dim;
                float        d  = 0.f;
                for (int64_t i = 0; i < head_dim; i++) d += qv[i] * kv[i];
                att[p] = d * scale;
                if (att[p] > mx) mx = att[p];
            }
            float sum = 0.f;
            for (int64_t p = 0; p <= last; p++) {
                att[p] = expf(att[p] - mx);
                sum += att[p];
            }
            float *o = out + (t * n_heads + h) * head_dim;
            for (int64_t i = 0; i < head_dim; i++) o[i] = 0.f;
            for (int64_t p = 0; p <= last; p++) {
                const float  a  = att[p] / sum;
                const float *vv = v_cache + p * kv_stride + kvh * head_dim;
                for (int64_t i = 0; i < head_dim; i++) o[i] += a * vv[i];
            }
        }
    lq_free(att);
}

void lq_swiglu_ref(float *out, const float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const float g = gate[i];
        out[i]        = g / (1.0f + expf(-g)) * up[i];
    }
}

void lq_log_softmax_ref(float *out, const float *logits, int64_t n, int64_t vocab) {
    for (int64_t t = 0; t < n; t++) {
        const float *l  = logits + t * vocab;
        float        mx = -INFINITY;
        for (int64_t v = 0; v < vocab; v++)
            if (l[v] > mx) mx = l[v];
        double sum = 0;
        for (int64_t v = 0; v < vocab; v++) sum += exp((double)l[v] - mx);
        const float lse = (float)((double)mx + log(sum));
        for (int64_t v = 0; v < vocab; v++) out[t * vocab + v] = l[v] - lse;
    }
}
