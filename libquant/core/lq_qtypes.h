/* lq_qtypes.h : the one table of quantization types (public; core module).
 *
 * Every quantized weight in libquant is a row-major matrix (rows = output
 * features, cols = input features) stored row by row in the layout of its
 * type, plus (for the integer and fp8 types) f32 scales and u8 zero points
 * kept beside it. The writers (GPTQ, compressed-tensors, GGUF), the readers,
 * the kernels, the CLI help and the tests all iterate this table.
 *
 * Row layouts ("lq layouts"), rows stored one after another, row r at byte
 * r * lq_qtype_row_bytes(t, cols):
 *   KEEP  (f32, f16, bf16)  plain elements of that dtype.
 *   INT   (intB_gG[_asym], intB_ch[_asym]; B = 2, 3, 4, 8)
 *         a dense bit stream of unsigned codes u in [0, 2^B), element k of
 *         the row at bit k*B, least significant bit first, in little-endian
 *         32-bit words; a row is padded with zero bits to a whole word
 *         (row_bytes = 4 * ceil(cols * B / 32)). This is compressed-tensors'
 *         `weight_packed` row and, transposed, GPTQ's `qweight` column.
 *         Group g of a row covers elements [g*G, (g+1)*G) (G = cols for
 *         per-channel types); cols must be a multiple of G.
 *         scales: rows x n_groups f32; zeros: rows x n_groups u8, or NULL
 *         for symmetric types whose zero point is 2^(B-1).
 *         w[r][k] = scales[r][g] * (float)((int)u[r][k] - (int)z[r][g]).
 *   FP8   (fp8_e4m3_ch, fp8_e4m3_tensor) one OCP E4M3FN byte per element;
 *         scales: rows f32 (per channel) or 1 f32 (per tensor); zeros NULL.
 *         w = scale * e4m3_to_f32(byte).
 *   GGML  (q8_0, q4_0, q5_0, q4_k, q6_k) ggml blocks exactly as in GGUF
 *         files (ggml-common.h); cols must be a multiple of the block size
 *         (32, or 256 for k-quants); scales and zeros are inside the blocks.
 *
 * Quantization math (what quantize_ref computes; the other implementations
 * are bit-identical to it):
 *   INT sym:  amax = max|x| over the group; s = 2*amax / (2^B - 1) (int4:
 *             amax/7.5, the GPTQ and compressed-tensors rule), rounded to
 *             the scale dtype; z = 2^(B-1); u = clamp(rint(x / s) + z, 0, 2^B-1).
 *   INT asym: lo = min(min x, 0), hi = max(max x, 0); s = (hi - lo) / (2^B - 1)
 *             rounded to the scale dtype; z = clamp(rint(-lo / s), 0, 2^B-1);
 *             u = clamp(rint(x / s) + z, 0, 2^B-1).
 *             rint = round half to even (torch.round). A group of zeros gets
 *             s = 1 (u = z, dequantizes to 0). A scale that rounds to 0 in
 *             the scale dtype becomes that dtype's smallest positive
 *             (subnormal) value; one beyond its range saturates to its
 *             largest finite value. Arithmetic is f32 in the order written
 *             (hi - lo is an f32 subtraction); bit-identity between the
 *             implementations relies on no FMA contraction (-std=c11 with gcc,
 *             a pragma for clang).
 *   clip search (optional): the range above is shrunk by r in
 *             {1, 0.99, ..., 0.80} (sym: amax*r; asym: lo*r, hi*r) and the r
 *             with the smallest sum_k c_k (x_k - w_k)^2 is kept (first on ties),
 *             c = the column weights when given (e.g. mean x^2 of the input
 *             activations per column), else 1; r = (100 - i) / 100 in f32, the
 *             error summed in f64 over 8 interleaved partial sums.
 *   FP8:      s = amax / 448 (per row or over the tensor), rounded to the
 *             scale dtype; byte = e4m3_sat(x / s); s = 1 for amax 0.
 *   GGML:     the ggml reference quantizers (quantize_row_*_ref): Q8_0 and
 *             Q4_0 as in REFERENCE.md 5.3, Q5_0, Q4_K with make_qkx2-style
 *             search, Q6_K with make_qx-style search.
 */
#ifndef LQ_QTYPES_H
#define LQ_QTYPES_H

#include "lq_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { LQ_QK_NONE = 0, LQ_QK_KEEP, LQ_QK_INT, LQ_QK_FP8, LQ_QK_GGML } lq_qkind;

/* X(ENUM, "name", kind, bits, group, sym, block, block_bytes, ggml_type, dtype) */
#define LQ__QT_INT_GROUPS(X, B)                                                                        \
    X(INT##B##_CH, "int" #B "_ch", LQ_QK_INT, B, 0, true, 1, 0, -1, LQ_DTYPE_U8)                       \
    X(INT##B##_CH_ASYM, "int" #B "_ch_asym", LQ_QK_INT, B, 0, false, 1, 0, -1, LQ_DTYPE_U8)            \
    X(INT##B##_G32, "int" #B "_g32", LQ_QK_INT, B, 32, true, 1, 0, -1, LQ_DTYPE_U8)                    \
    X(INT##B##_G32_ASYM, "int" #B "_g32_asym", LQ_QK_INT, B, 32, false, 1, 0, -1, LQ_DTYPE_U8)         \
    X(INT##B##_G64, "int" #B "_g64", LQ_QK_INT, B, 64, true, 1, 0, -1, LQ_DTYPE_U8)                    \
    X(INT##B##_G64_ASYM, "int" #B "_g64_asym", LQ_QK_INT, B, 64, false, 1, 0, -1, LQ_DTYPE_U8)         \
    X(INT##B##_G128, "int" #B "_g128", LQ_QK_INT, B, 128, true, 1, 0, -1, LQ_DTYPE_U8)                 \
    X(INT##B##_G128_ASYM, "int" #B "_g128_asym", LQ_QK_INT, B, 128, false, 1, 0, -1, LQ_DTYPE_U8)

#define LQ_QTYPES(X)                                                                                   \
    X(NONE, "none", LQ_QK_NONE, 0, 0, true, 1, 0, -1, LQ_DTYPE_U8)                                     \
    X(F32, "f32", LQ_QK_KEEP, 32, 0, true, 1, 4, 0, LQ_DTYPE_F32)                                      \
    X(F16, "f16", LQ_QK_KEEP, 16, 0, true, 1, 2, 1, LQ_DTYPE_F16)                                      \
    X(BF16, "bf16", LQ_QK_KEEP, 16, 0, true, 1, 2, 30, LQ_DTYPE_BF16)                                  \
    LQ__QT_INT_GROUPS(X, 8)                                                                            \
    LQ__QT_INT_GROUPS(X, 4)                                                                            \
    LQ__QT_INT_GROUPS(X, 3)                                                                            \
    LQ__QT_INT_GROUPS(X, 2)                                                                            \
    X(FP8_E4M3_CH, "fp8_e4m3_ch", LQ_QK_FP8, 8, 0, true, 1, 1, -1, LQ_DTYPE_F8_E4M3)                   \
    X(FP8_E4M3_TENSOR, "fp8_e4m3_tensor", LQ_QK_FP8, 8, -1, true, 1, 1, -1, LQ_DTYPE_F8_E4M3)          \
    X(Q8_0, "q8_0", LQ_QK_GGML, 8, 32, true, 32, 34, 8, LQ_DTYPE_U8)                                   \
    X(Q4_0, "q4_0", LQ_QK_GGML, 4, 32, true, 32, 18, 2, LQ_DTYPE_U8)                                   \
    X(Q5_0, "q5_0", LQ_QK_GGML, 5, 32, true, 32, 22, 6, LQ_DTYPE_U8)                                   \
    X(Q4_K, "q4_k", LQ_QK_GGML, 4, 32, false, 256, 144, 12, LQ_DTYPE_U8)                               \
    X(Q6_K, "q6_k", LQ_QK_GGML, 6, 16, true, 256, 210, 14, LQ_DTYPE_U8)

typedef enum {
#define LQ__QT_ENUM(E, ...) LQ_QT_##E,
    LQ_QTYPES(LQ__QT_ENUM)
#undef LQ__QT_ENUM
    LQ_QT_COUNT
} lq_qtype;

typedef struct {
    const char *name;        /* CLI spelling: "int4_g128", "q4_k", "f16"                    */
    lq_qkind    kind;
    int         bits;        /* bits per stored code (KEEP: per element; GGML: nominal)      */
    int         group;       /* INT: elements per scale, 0 = per channel; FP8: 0 per channel,
                                -1 per tensor; GGML: elements per sub-block scale            */
    bool        sym;         /* INT: symmetric, zero point 2^(bits-1)                        */
    int         block;       /* GGML: elements per block (32 or 256); others 1               */
    int         block_bytes; /* GGML: bytes per block; KEEP/FP8: bytes per element; INT 0    */
    int         ggml_type;   /* GGUF tensor type id, or -1 when GGUF has no such type        */
    lq_dtype    dtype;       /* KEEP: the dtype; FP8: F8_E4M3; INT/GGML: U8 (opaque bytes)   */
} lq_qtype_traits;

/* NULL when out of range */
const lq_qtype_traits *lq_qtype_traits_of(lq_qtype t);
const char            *lq_qtype_name(lq_qtype t); /* "?" when out of range */
/* case-insensitive name ("Q4_K" == "q4_k"); aliases: "int8" = int8_ch,
 * "int4" = int4_g128, "fp8" = fp8_e4m3_ch. LQ_ERR_INVALID_ARG when unknown
 * (logs nothing: the caller says where the name came from). */
lq_status lq_qtype_from_name(const char *name, lq_qtype *out);
/* the type whose ggml_type id is `id`, or LQ_QT_NONE */
lq_qtype lq_qtype_from_ggml(int id);

/*! lq_qtype_supports() : can `t` store rows of `cols` elements? When not,
 *  and `why` is given, *why is set to a static sentence ("172 columns are not
 *  a multiple of the group size 32"). */
bool lq_qtype_supports(lq_qtype t, int64_t cols, const char **why);
/* bytes of one row in the lq layout (0 when unsupported or on overflow) */
uint64_t lq_qtype_row_bytes(lq_qtype t, int64_t cols);
/* scales (and zeros) per row: INT ceil(cols/G) (1 per channel), FP8 per
 * channel 1, FP8 per tensor 0 (one scale for the whole tensor), else 0 */
int64_t lq_qtype_n_groups(lq_qtype t, int64_t cols);
/* number of f32 scales for a rows x cols matrix: rows*n_groups, 1 for
 * fp8 per tensor, 0 for KEEP/GGML */
int64_t lq_qtype_n_scales(lq_qtype t, int64_t rows, int64_t cols);
/* true when the type keeps u8 zero points beside the data (INT asym) */
bool lq_qtype_has_zeros(lq_qtype t);
/*! lq_qtype_bits_per_weight() : storage bits per weight of a rows x cols
 *  matrix including scales stored as `scale_dtype` and zero points stored at
 *  `bits` each (as GPTQ and compressed-tensors pack them). */
double lq_qtype_bits_per_weight(lq_qtype t, int64_t rows, int64_t cols, lq_dtype scale_dtype);

typedef struct {
    lq_dtype     scale_dtype; /* F16 (default), BF16 or F32: INT/FP8 scales are rounded to it */
    bool         clip_search; /* INT/FP8: search a shrink factor of the range                 */
    const float *col_weight;  /* cols importance weights for the clip search (and the GGML
                                 k-quant searches), e.g. mean x^2 per input column; or NULL */
} lq_quant_params;

lq_quant_params lq_quant_default_params(void);

/*! lq_quantize_ref() : quantize the f32 matrix x (rows x cols) to type `t`.
 *  data: rows * lq_qtype_row_bytes(t, cols) bytes; scales: lq_qtype_n_scales
 *  floats (may be NULL when 0); zeros: rows * n_groups bytes when
 *  lq_qtype_has_zeros (else may be NULL). `p` may be NULL (defaults).
 *  Non-finite inputs give LQ_ERR_INVALID_ARG (the message names the row);
 *  an unsupported width LQ_ERR_SHAPE. Plain C, single thread: the oracle. */
lq_status lq_quantize_ref(lq_qtype t, const float *x, int64_t rows, int64_t cols, const lq_quant_params *p,
                          void *data, float *scales, uint8_t *zeros);
/*! lq_dequantize_ref() : the inverse map, to f32 (rows x cols). */
lq_status lq_dequantize_ref(lq_qtype t, const void *data, const float *scales, const uint8_t *zeros, int64_t rows,
                            int64_t cols, float *out);

/* A quantized (or kept) matrix as the writers take it and the readers give
 * it back: the lq layout plus the dtype its scales have in the file. */
typedef struct {
    const char    *name;        /* HF name of the weight ("model.layers.0.mlp.up_proj.weight") */
    lq_qtype       qtype;       /* KEEP types: `data` holds plain elements                       */
    int32_t        n_dims;      /* 2 for matrices; 1 for vectors (KEEP only)                     */
    int64_t        shape[LQ_MAX_DIMS]; /* outermost first: [rows, cols]                          */
    const void    *data;
    const float   *scales;
    const uint8_t *zeros;
    lq_dtype       scale_dtype; /* how the scales are stored in the file: F16, BF16 or F32       */
    const int32_t *g_idx;       /* INT only, or NULL (= k / G): cols group indices (GPTQ
                                   act-order). data stays in the original column order; scale
                                   (and zero) column g of each row belongs to the columns k
                                   with g_idx[k] == g, and every group has exactly G members
                                   (GPTQ's floor(rank / G); cols is a multiple of G):
                                   w[r][k] = s[r][g_idx[k]] * (u[r][k] - z[r][g_idx[k]]).
                                   NULL or k / G means the plain layout                     */
    float          in_scale;    /* > 0: the static per-tensor int8 scale of the Linear's input
                                   (W8A8; compressed-tensors `input_scale`), as the runner uses
                                   it (already rounded to scale_dtype); 0: weight-only          */
} lq_qtensor;

#ifdef __cplusplus
}
#endif
#endif /* LQ_QTYPES_H */
