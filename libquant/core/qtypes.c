/* qtypes.c : the table of quantization types and their size functions.
 * The quantizers themselves are in quantize_ref.c. */
#include "lq_internal.h"
#include "lq_qtypes.h"

#include <string.h>
#include <strings.h>

static const lq_qtype_traits k_traits[LQ_QT_COUNT] = {
#define LQ__QT_ROW(E, NAME, KIND, BITS, GROUP, SYM, BLOCK, BBYTES, GGML, DT) \
    {NAME, KIND, BITS, GROUP, SYM, BLOCK, BBYTES, GGML, DT},
    LQ_QTYPES(LQ__QT_ROW)
#undef LQ__QT_ROW
};

const lq_qtype_traits *lq_qtype_traits_of(lq_qtype t) {
    return (unsigned)t < (unsigned)LQ_QT_COUNT ? &k_traits[t] : NULL;
}

const char *lq_qtype_name(lq_qtype t) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(t);
    return tr ? tr->name : "?";
}

lq_status lq_qtype_from_name(const char *name, lq_qtype *out) {
    static const struct {
        const char *alias;
        lq_qtype    t;
    } aliases[] = {{"int8", LQ_QT_INT8_CH}, {"int4", LQ_QT_INT4_G128}, {"fp8", LQ_QT_FP8_E4M3_CH},
                   {"fp8_e4m3", LQ_QT_FP8_E4M3_CH}, {"keep_f32", LQ_QT_F32}};
    if (!name) return LQ_ERR_INVALID_ARG;
    for (int i = 1; i < LQ_QT_COUNT; i++)
        if (strcasecmp(name, k_traits[i].name) == 0) {
            *out = (lq_qtype)i;
            return LQ_OK;
        }
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcasecmp(name, aliases[i].alias) == 0) {
            *out = aliases[i].t;
            return LQ_OK;
        }
    return LQ_ERR_INVALID_ARG;
}

lq_qtype lq_qtype_from_ggml(int id) {
    if (id < 0) return LQ_QT_NONE;
    for (int i = 1; i < LQ_QT_COUNT; i++)
        if (k_traits[i].ggml_type == id) return (lq_qtype)i;
    return LQ_QT_NONE;
}

bool lq_qtype_supports(lq_qtype t, int64_t cols, const char **why) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(t);
    const char            *w  = NULL;
    if (!tr || tr->kind == LQ_QK_NONE)
        w = "not a storage type";
    else if (cols <= 0)
        w = "the row is empty";
    else if (tr->kind == LQ_QK_INT && tr->group > 0 && cols % tr->group != 0)
        w = tr->group == 32 ? "the row length is not a multiple of the group size 32"
            : tr->group == 64 ? "the row length is not a multiple of the group size 64"
                              : "the row length is not a multiple of the group size 128";
    else if (tr->kind == LQ_QK_GGML && cols % tr->block != 0)
        w = tr->block == 256 ? "the row length is not a multiple of the k-quant super-block (256)"
                             : "the row length is not a multiple of the block size 32";
    if (why) *why = w;
    return w == NULL;
}

uint64_t lq_qtype_row_bytes(lq_qtype t, int64_t cols) {
    if (!lq_qtype_supports(t, cols, NULL)) return 0;
    const lq_qtype_traits *tr = &k_traits[t];
    uint64_t               r;
    switch (tr->kind) {
    case LQ_QK_KEEP:
    case LQ_QK_FP8:
        return lq__mul_u64((uint64_t)cols, (uint64_t)tr->block_bytes, &r) ? r : 0;
    case LQ_QK_INT:
        if (!lq__mul_u64((uint64_t)cols, (uint64_t)tr->bits, &r)) return 0;
        return (r + 31) / 32 * 4;
    case LQ_QK_GGML:
        return lq__mul_u64((uint64_t)(cols / tr->block), (uint64_t)tr->block_bytes, &r) ? r : 0;
    case LQ_QK_NONE: break;
    }
    return 0;
}

int64_t lq_qtype_n_groups(lq_qtype t, int64_t cols) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(t);
    if (!tr || cols <= 0) return 0;
    if (tr->kind == LQ_QK_INT) return tr->group > 0 ? (cols + tr->group - 1) / tr->group : 1;
    if (tr->kind == LQ_QK_FP8) return tr->group == 0 ? 1 : 0;
    return 0;
}

int64_t lq_qtype_n_scales(lq_qtype t, int64_t rows, int64_t cols) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(t);
    if (!tr || rows <= 0 || cols <= 0) return 0;
    if (tr->kind == LQ_QK_FP8 && tr->group < 0) return 1;
    return rows * lq_qtype_n_groups(t, cols);
}

bool lq_qtype_has_zeros(lq_qtype t) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(t);
    return tr && tr->kind == LQ_QK_INT && !tr->sym;
}

double lq_qtype_bits_per_weight(lq_qtype t, int64_t rows, int64_t cols, lq_dtype scale_dtype) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(t);
    if (!tr || rows <= 0 || cols <= 0 || !lq_qtype_supports(t, cols, NULL)) return 0;
    const double n    = (double)rows * (double)cols;
    double       bits = (double)rows * (double)lq_qtype_row_bytes(t, cols) * 8.0;
    if (tr->kind == LQ_QK_INT || tr->kind == LQ_QK_FP8) {
        const lq_dtype_traits *st = lq_dtype_traits_of(scale_dtype);
        const double           ns = (double)lq_qtype_n_scales(t, rows, cols);
        bits += ns * (st ? st->bits : 32);
        if (lq_qtype_has_zeros(t)) bits += ns * tr->bits;
    }
    return bits / n;
}

lq_quant_params lq_quant_default_params(void) {
    lq_quant_params p;
    memset(&p, 0, sizeof p);
    p.scale_dtype = LQ_DTYPE_F16;
    return p;
}
