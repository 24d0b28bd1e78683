/* qmatmul_ref.c : the plain C reference of the quantized-weight ops: row
 * decoding (lq_weight_row_f32), the fused dequantize + matmul and the
 * embedding gather for every INT, FP8 and GGML type of lq_qtypes.h.
 *
 * Portable C11, no OpenMP, no intrinsics: the spec and the oracle of
 * qmatmul_cpu.c and qmatmul_cuda.cu. A weight element is formed exactly as
 * lq_dequantize_ref() forms it (the same f32 operations in the same order):
 *   INT   s · (float)(u − z)             z = zeros[r][g], or 2^(B−1) (sym)
 *   FP8   s · e4m3(byte)                 s per row, or one per tensor
 *   Q8_0  (float)q · d                   q int8, d f16
 *   Q4_0  (float)(q − 8) · d             Q5_0 likewise with q − 16
 *   Q4_K  (d·sc)·(float)q − (dmin·m)     two products rounded to f32 first
 *   Q6_K  (d·sc)·(float)(q − 32)
 * and the matmul sums x·w in f32 in index order, one row decoded at a time
 * into a cols-float buffer (never the whole matrix). Act-order weights
 * (lq_weight.perm, stored column j = input feature perm[j]): the matmuls see
 * x gathered through perm (lq__matmul_perm) and lq_weight_row_f32 scatters
 * the decoded row back to the input features' order; an embedding table
 * cannot have one. */
#include "lq_internal.h"
#include "lq_kernels.h"
#include "qmatmul_internal.h"

#include <string.h>

/* ==== checks ==== */

/*! lq__qweight_check() : is `w` (qtype != NONE) a weight the quantized ops
 *  can read? KEEP types pass when their data is there. Logs with `op`.
 *  @return LQ_ERR_UNSUPPORTED (no such qtype), LQ_ERR_SHAPE (negative shape,
 *  or a width the type cannot store), LQ_ERR_INVALID_ARG (NULL data, scales
 *  or zeros where the type needs them). */
lq_status lq__qweight_check(const lq_weight *w, const char *op) {
    LQ_RETURN_IF(w == NULL, LQ_ERR_INVALID_ARG, "%s: NULL weight", op);
    const lq_qtype_traits *tr = lq_qtype_traits_of(w->qtype);
    LQ_RETURN_IF(tr == NULL || tr->kind == LQ_QK_NONE, LQ_ERR_UNSUPPORTED, "%s: unknown quantization type %d", op,
                 (int)w->qtype);
    LQ_RETURN_IF(w->rows < 0 || w->cols < 0, LQ_ERR_SHAPE, "%s: %s weight has a negative shape (%lld, %lld)", op,
                 tr->name, (long long)w->rows, (long long)w->cols);
    const char *why = NULL;
    LQ_RETURN_IF(!lq_qtype_supports(w->qtype, w->cols, &why), LQ_ERR_SHAPE, "%s: %s weight (%lld, %lld): %s", op,
                 tr->name, (long long)w->rows, (long long)w->cols, why);
    LQ_RETURN_IF(w->data == NULL && w->rows > 0, LQ_ERR_INVALID_ARG, "%s: %s weight has no data", op, tr->name);
    LQ_RETURN_IF((tr->kind == LQ_QK_INT || tr->kind == LQ_QK_FP8) && w->scales == NULL && w->rows > 0,
                 LQ_ERR_INVALID_ARG, "%s: %s weight (%lld, %lld) has no scales", op, tr->name, (long long)w->rows,
                 (long long)w->cols);
    LQ_RETURN_IF(lq_qtype_has_zeros(w->qtype) && w->zeros == NULL && w->rows > 0, LQ_ERR_INVALID_ARG,
                 "%s: %s weight (%lld, %lld) has no zero points", op, tr->name, (long long)w->rows,
                 (long long)w->cols);
    return LQ_OK;
}

/* ==== row decoding ==== */

static float f16_at(const uint8_t *p) { return lq_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }

/* element i of a plain F32/F16/BF16 array */
static float plain_at(lq_dtype dt, const void *data, int64_t i) {
    if (dt == LQ_DTYPE_F32) {
        float f;
        memcpy(&f, (const uint8_t *)data + 4 * i, 4);
        return f;
    }
    const uint8_t *p = (const uint8_t *)data + 2 * i;
    const uint16_t h = (uint16_t)(p[0] | (p[1] << 8));
    return dt == LQ_DTYPE_F16 ? lq_f16_to_f32(h) : lq_bf16_to_f32(h);
}

/* INT: the B-bit code of element k of a row, from the LSB-first bit stream */
static int int_code(const uint8_t *row, int bits, int64_t k) {
    const uint64_t bit = (uint64_t)k * (uint64_t)bits;
    const size_t   at  = (size_t)(bit >> 3);
    const unsigned sh  = (unsigned)(bit & 7u);
    unsigned       v   = (unsigned)row[at] >> sh;
    if (sh + (unsigned)bits > 8u) v |= (unsigned)row[at + 1] << (8u - sh); /* B <= 8: at most two bytes */
    return (int)(v & ((1u << bits) - 1u));
}

/* Q4_K: the 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes */
static void q4k_scale_min(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m  = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        *m  = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* one GGML block (tr->block elements) at `b` into out */
static void ggml_block(lq_qtype t, const uint8_t *b, float *out) {
    switch ((int)t) { /* GGML types only */
    case LQ_QT_Q8_0: { /* half d; int8 qs[32] */
        const float d = f16_at(b);
        for (int j = 0; j < 32; j++) out[j] = (float)(int8_t)b[2 + j] * d;
        break;
    }
    case LQ_QT_Q4_0: { /* half d; qs[16]: element j low nibble, j + 16 high */
        const float d = f16_at(b);
        for (int j = 0; j < 16; j++) {
            out[j]      = (float)((b[2 + j] & 15) - 8) * d;
            out[j + 16] = (float)((b[2 + j] >> 4) - 8) * d;
        }
        break;
    }
    case LQ_QT_Q5_0: { /* half d; u32 qh (bit j: 5th bit of element j); qs[16] as Q4_0 */
        const float    d  = f16_at(b);
        const uint32_t qh = (uint32_t)b[2] | ((uint32_t)b[3] << 8) | ((uint32_t)b[4] << 16) | ((uint32_t)b[5] << 24);
        for (int j = 0; j < 16; j++) {
            const int h0 = (int)((qh >> j) & 1u) << 4, h1 = (int)((qh >> (j + 16)) & 1u) << 4;
            out[j]       = (float)(((b[6 + j] & 15) | h0) - 16) * d;
            out[j + 16]  = (float)(((b[6 + j] >> 4) | h1) - 16) * d;
        }
        break;
    }
    case LQ_QT_Q4_K: { /* half d, dmin; scales[12]; qs[128]: per 64 elements 32 bytes, low nibble e_l, high e_{l+32} */
        const float    d = f16_at(b), dmin = f16_at(b + 2);
        const uint8_t *sc = b + 4, *qs = b + 16;
        for (int j = 0; j < 4; j++) {
            int s0, m0, s1, m1;
            q4k_scale_min(sc, 2 * j, &s0, &m0);
            q4k_scale_min(sc, 2 * j + 1, &s1, &m1);
            const float d0 = d * (float)s0, o0 = dmin * (float)m0, d1 = d * (float)s1, o1 = dmin * (float)m1;
            for (int l = 0; l < 32; l++) {
                out[64 * j + l]      = d0 * (float)(qs[32 * j + l] & 15) - o0;
                out[64 * j + 32 + l] = d1 * (float)(qs[32 * j + l] >> 4) - o1;
            }
        }
        break;
    }
    case LQ_QT_Q6_K: { /* ql[128]; qh[64]; int8 scales[16]; half d. Per 128: l < 32 */
        const float d = f16_at(b + 208);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
            const int8_t  *sc = (const int8_t *)(b + 192) + 8 * h;
            float         *o  = out + 128 * h;
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 15) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                o[l]         = d * (float)sc[is + 0] * (float)q1;
                o[l + 32]    = d * (float)sc[is + 2] * (float)q2;
                o[l + 64]    = d * (float)sc[is + 4] * (float)q3;
                o[l + 96]    = d * (float)sc[is + 6] * (float)q4;
            }
        }
        break;
    }
    default: LQ_ASSERT(0 && "not a GGML type");
    }
}

/*! lq__qrow_decode() : out[k - k0] = element k of row r for k in [k0, k1),
 *  for a quantized or KEEP weight that passed lq__qweight_check(). GGML
 *  types: k0 a multiple of the block, k1 one too or cols. */
void lq__qrow_decode(const lq_weight *w, int64_t r, int64_t k0, int64_t k1, float *out) {
    const lq_qtype_traits *tr  = lq_qtype_traits_of(w->qtype);
    const uint64_t         rb  = lq_qtype_row_bytes(w->qtype, w->cols);
    const uint8_t *const   row = (const uint8_t *)w->data + (size_t)r * (size_t)rb;
    switch (tr->kind) {
    case LQ_QK_KEEP:
        for (int64_t k = k0; k < k1; k++) out[k - k0] = plain_at(tr->dtype, w->data, r * w->cols + k);
        return;
    case LQ_QK_INT: {
        const int64_t G = tr->group > 0 ? tr->group : w->cols, ng = lq_qtype_n_groups(w->qtype, w->cols);
        const int     zs = 1 << (tr->bits - 1);
        for (int64_t k = k0; k < k1; k++) {
            const int64_t g = r * ng + k / G;
            const int     z = w->zeros ? (int)w->zeros[g] : zs;
            out[k - k0]     = w->scales[g] * (float)(int_code(row, tr->bits, k) - z);
        }
        return;
    }
    case LQ_QK_FP8: {
        const float s = w->scales[tr->group < 0 ? 0 : r];
        for (int64_t k = k0; k < k1; k++) out[k - k0] = s * lq_e4m3_to_f32(row[k]);
        return;
    }
    case LQ_QK_GGML: {
        LQ_ASSERT(k0 % tr->block == 0 && (k1 % tr->block == 0 || k1 == w->cols));
        for (int64_t k = k0; k < k1; k += tr->block)
            ggml_block(w->qtype, row + (size_t)(k / tr->block) * (size_t)tr->block_bytes, out + (k - k0));
        return;
    }
    case LQ_QK_NONE: break;
    }
    LQ_ASSERT(0 && "lq__qrow_decode: not a storage type");
}

lq_status lq_weight_row_f32(const lq_weight *w, int64_t r, float *out) {
    LQ_RETURN_IF(w == NULL || out == NULL, LQ_ERR_INVALID_ARG, "weight row: NULL argument");
    if (w->perm) { /* stored in perm order: scatter back to the input features' order */
        float *tmp = lq_malloc((size_t)LQ_MAX(w->cols, 1) * sizeof *tmp);
        LQ_RETURN_IF(!tmp, LQ_ERR_NOMEM, "weight row: out of memory");
        lq_weight plain = *w;
        plain.perm      = NULL;
        lq_status st    = lq_weight_row_f32(&plain, r, tmp);
        for (int64_t c = 0; c < w->cols && st == LQ_OK; c++) {
            if (w->perm[c] < 0 || w->perm[c] >= w->cols) {
                LQ_LOG_ERR("weight row: perm[%lld] = %d is outside [0, %lld)", (long long)c, w->perm[c],
                           (long long)w->cols);
                st = LQ_ERR_INVALID_ARG;
                break;
            }
            out[w->perm[c]] = tmp[c];
        }
        lq_free(tmp);
        return st;
    }
    if (w->qtype == LQ_QT_NONE) {
        LQ_RETURN_IF(w->dtype != LQ_DTYPE_F32 && w->dtype != LQ_DTYPE_F16 && w->dtype != LQ_DTYPE_BF16,
                     LQ_ERR_UNSUPPORTED, "weight row: dtype %s is not F32/F16/BF16", lq_dtype_name(w->dtype));
        LQ_RETURN_IF(r < 0 || r >= w->rows || w->cols < 0, LQ_ERR_INVALID_ARG,
                     "weight row: row %lld of a (%lld, %lld) weight", (long long)r, (long long)w->rows,
                     (long long)w->cols);
        LQ_RETURN_IF(w->data == NULL, LQ_ERR_INVALID_ARG, "weight row: NULL data");
        for (int64_t k = 0; k < w->cols; k++) out[k] = plain_at(w->dtype, w->data, r * w->cols + k);
        return LQ_OK;
    }
    LQ_TRY(lq__qweight_check(w, "weight row"));
    LQ_RETURN_IF(r < 0 || r >= w->rows, LQ_ERR_INVALID_ARG, "weight row: row %lld of a (%lld, %lld) %s weight",
                 (long long)r, (long long)w->rows, (long long)w->cols, lq_qtype_name(w->qtype));
    lq__qrow_decode(w, r, 0, w->cols, out);
    return LQ_OK;
}

/* ==== matmul and embed ==== */

/* a KEEP weight as the plain weight it is */
static lq_weight keep_as_plain(const lq_weight *w) {
    lq_weight p = *w;
    p.dtype     = lq_qtype_traits_of(w->qtype)->dtype;
    p.qtype     = LQ_QT_NONE;
    p.scales    = NULL;
    p.zeros     = NULL;
    return p;
}

/*! lq__qmatmul_ref() : lq_matmul_ref() for w->qtype != LQ_QT_NONE. */
lq_status lq__qmatmul_ref(float *y, const float *x, int64_t n, const lq_weight *w, const float *bias) {
    LQ_TRY(lq__qweight_check(w, "matmul"));
    if (lq_qtype_traits_of(w->qtype)->kind == LQ_QK_KEEP) {
        const lq_weight p = keep_as_plain(w);
        return lq_matmul_ref(y, x, n, &p, bias);
    }
    LQ_RETURN_IF(n < 0, LQ_ERR_INVALID_ARG, "matmul: n = %lld", (long long)n);
    if (n == 0 || w->rows == 0) return LQ_OK;
    const int64_t rows = w->rows, cols = w->cols;
    float *const  row  = lq_malloc((size_t)cols * sizeof(float));
    LQ_RETURN_IF(!row, LQ_ERR_NOMEM, "matmul: no memory for a row of %lld floats", (long long)cols);
    for (int64_t r = 0; r < rows; r++) {
        lq__qrow_decode(w, r, 0, cols, row);
        for (int64_t t = 0; t < n; t++) {
            const float *xt  = x + t * cols;
            float        acc = 0.f;
            for (int64_t c = 0; c < cols; c++) acc += xt[c] * row[c];
            y[t * rows + r] = bias ? acc + bias[r] : acc;
        }
    }
    lq_free(row);
    return LQ_OK;
}

/*! lq__qembed_ref() : lq_embed_ref() for table->qtype != LQ_QT_NONE. */
lq_status lq__qembed_ref(float *out, const lq_weight *table, const int32_t *ids, int64_t n) {
    LQ_TRY(lq__qweight_check(table, "embed"));
    LQ_RETURN_IF(table->perm, LQ_ERR_UNSUPPORTED, "embed: an act-order (perm) weight cannot be an embedding table");
    for (int64_t t = 0; t < n; t++) {
        LQ_RETURN_IF(ids[t] < 0 || ids[t] >= table->rows, LQ_ERR_INVALID_ARG,
                     "token id %d is outside the vocabulary [0, %lld)", ids[t], (long long)table->rows);
        lq__qrow_decode(table, ids[t], 0, table->cols, out + t * table->cols);
    }
    return LQ_OK;
}
