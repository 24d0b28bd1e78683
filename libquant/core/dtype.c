/* dtype.c : the dtype traits table and the exact scalar float conversions.
 *
 * The table is the single list of dtypes (rule 12): names, torch names, sizes,
 * the safetensors sort order and whether lq_convert_* can handle a type.
 *
 * The scalar conversions work on the IEEE-754 bit patterns with integer
 * arithmetic only: no _Float16, no FPU conversion instructions, so results do
 * not depend on the compiler, -march, FTZ/DAZ or the rounding mode. Rounding
 * is to nearest, ties to even, applied once to the exact f32 value; subnormal
 * results are produced exactly. Formats:
 *   f16   1.5.10  bias 15   Inf/NaN at exponent 31, max 65504
 *   bf16  1.8.7   bias 127  the top half of an f32
 *   e4m3  1.4.3   bias 7    OCP "FN": no Inf, NaN = S.1111.111, max 448
 *   e5m2  1.5.2   bias 15   IEEE-like, Inf and NaN, max 57344 */
#include "lq_common.h"
#include "lq_internal.h"

#include <string.h>

/* ==== traits table ==== */

/* designated fields, so a reordered struct cannot silently swap columns */
#define DT(nm, torch, nbits, order, flt, sgn, conv)                                                     \
    { .name = (nm), .torch_name = (torch), .bits = (nbits), .st_order = (order), .is_float = (flt),   \
      .is_signed = (sgn), .convertible = (conv) }

static const lq_dtype_traits traits[LQ_DTYPE_COUNT] = {
    [LQ_DTYPE_BOOL]        = DT("BOOL",         "torch.bool",             8,   0,   false,  false,  true),
    [LQ_DTYPE_U8]          = DT("U8",           "torch.uint8",            8,   4,   false,  false,  true),
    [LQ_DTYPE_I8]          = DT("I8",           "torch.int8",             8,   5,   false,  true,   true),
    [LQ_DTYPE_I16]         = DT("I16",          "torch.int16",            16,  11,  false,  true,   true),
    [LQ_DTYPE_U16]         = DT("U16",          "torch.uint16",           16,  12,  false,  false,  true),
    [LQ_DTYPE_I32]         = DT("I32",          "torch.int32",            32,  15,  false,  true,   true),
    [LQ_DTYPE_U32]         = DT("U32",          "torch.uint32",           32,  16,  false,  false,  true),
    [LQ_DTYPE_I64]         = DT("I64",          "torch.int64",            64,  20,  false,  true,   true),
    [LQ_DTYPE_U64]         = DT("U64",          "torch.uint64",           64,  21,  false,  false,  true),
    [LQ_DTYPE_F16]         = DT("F16",          "torch.float16",          16,  13,  true,   true,   true),
    [LQ_DTYPE_BF16]        = DT("BF16",         "torch.bfloat16",         16,  14,  true,   true,   true),
    [LQ_DTYPE_F32]         = DT("F32",          "torch.float32",          32,  17,  true,   true,   true),
    [LQ_DTYPE_F64]         = DT("F64",          "torch.float64",          64,  19,  true,   true,   true),
    [LQ_DTYPE_F8_E4M3]     = DT("F8_E4M3",      "torch.float8_e4m3fn",    8,   7,   true,   true,   true),
    [LQ_DTYPE_F8_E5M2]     = DT("F8_E5M2",      "torch.float8_e5m2",      8,   6,   true,   true,   true),
    [LQ_DTYPE_F8_E8M0]     = DT("F8_E8M0",      "torch.float8_e8m0fnu",   8,   8,   true,   false,  false),
    [LQ_DTYPE_F8_E4M3FNUZ] = DT("F8_E4M3FNUZ",  "torch.float8_e4m3fnuz",  8,   9,   true,   true,   false),
    [LQ_DTYPE_F8_E5M2FNUZ] = DT("F8_E5M2FNUZ",  "torch.float8_e5m2fnuz",  8,   10,  true,   true,   false),
    /* torch has only packed containers for these (float4_e2m1fn_x2 holds two
     * values per element), so there is no element-for-element torch name */
    [LQ_DTYPE_F4]          = DT("F4",           "",                       4,   1,   true,   true,   false),
    [LQ_DTYPE_F6_E2M3]     = DT("F6_E2M3",      "",                       6,   2,   true,   true,   false),
    [LQ_DTYPE_F6_E3M2]     = DT("F6_E3M2",      "",                       6,   3,   true,   true,   false),
    [LQ_DTYPE_C64]         = DT("C64",          "torch.complex64",        64,  18,  true,   true,   false),
};
#undef DT

const lq_dtype_traits *lq_dtype_traits_of(lq_dtype t) {
    if ((unsigned)t >= (unsigned)LQ_DTYPE_COUNT) return NULL;
    return &traits[t];
}

const char *lq_dtype_name(lq_dtype t) {
    const lq_dtype_traits *const tr = lq_dtype_traits_of(t);
    return tr ? tr->name : "?";
}

/* Pure lookup: no logging, the caller knows which file and tensor it parses.
 * @return LQ_OK, LQ_ERR_INVALID_ARG (NULL out, or NULL name with len > 0),
 *         LQ_ERR_UNSUPPORTED (no dtype of that name). */
lq_status lq_dtype_from_name(const char *name, size_t len, lq_dtype *out) {
    if (out == NULL || (name == NULL && len > 0)) return LQ_ERR_INVALID_ARG;
    for (int t = 0; t < LQ_DTYPE_COUNT; t++) {
        const char *const tn = traits[t].name;
        if (strlen(tn) == len && memcmp(tn, name, len) == 0) {
            *out = (lq_dtype)t;
            return LQ_OK;
        }
    }
    return LQ_ERR_UNSUPPORTED;
}

bool lq_dtype_nbytes(lq_dtype t, uint64_t n, uint64_t *out_bytes) {
    const lq_dtype_traits *const tr = lq_dtype_traits_of(t);
    if (tr == NULL || out_bytes == NULL) return false;
    /* n*bits/8 without forming n*bits, which can overflow when the result does not */
    const uint64_t whole = n / 8, part_bits = (n % 8) * tr->bits;
    if (part_bits % 8 != 0) return false;
    uint64_t bytes;
    if (!lq__mul_u64(whole, tr->bits, &bytes)) return false;
    if (!lq__add_u64(bytes, part_bits / 8, &bytes)) return false;
    *out_bytes = bytes;
    return true;
}

/* ==== scalar conversions ==== */

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float lq_f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t e    = (h >> 10) & 0x1Fu;
    uint32_t       m    = h & 0x3FFu;
    if (e == 0x1F) /* Inf, or NaN: payload kept, quiet bit set */
        return f32_from_bits(sign | 0x7F800000u | (m ? 0x00400000u | (m << 13) : 0));
    if (e != 0) return f32_from_bits(sign | ((e + 127 - 15) << 23) | (m << 13));
    if (m == 0) return f32_from_bits(sign);
    /* subnormal m * 2^-24: normalize so the leading one sits at bit 10 */
    uint32_t sh = 0;
    while (!(m & 0x400u)) {
        m <<= 1;
        sh++;
    }
    return f32_from_bits(sign | ((127 - 14 - sh) << 23) | ((m & 0x3FFu) << 13));
}

float lq_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) u |= 0x00400000u; /* quiet a signalling NaN */
    return f32_from_bits(u);
}

float lq_e4m3_to_f32(uint8_t v) {
    const uint32_t sign = (uint32_t)(v & 0x80u) << 24;
    const uint32_t e    = (v >> 3) & 0xFu;
    uint32_t       m    = v & 0x7u;
    if ((v & 0x7Fu) == 0x7Fu) return f32_from_bits(sign | 0x7FC00000u); /* the only NaN */
    if (e != 0) return f32_from_bits(sign | ((e + 127 - 7) << 23) | (m << 20));
    if (m == 0) return f32_from_bits(sign);
    /* subnormal m * 2^-9 */
    uint32_t sh = 0;
    while (!(m & 0x8u)) {
        m <<= 1;
        sh++;
    }
    return f32_from_bits(sign | ((127 - 6 - sh) << 23) | ((m & 0x7u) << 20));
}

float lq_e5m2_to_f32(uint8_t v) {
    /* e5m2 is f16 with the low 8 mantissa bits dropped */
    return lq_f16_to_f32((uint16_t)((uint32_t)v << 8));
}

/* Magnitude code of RNE(|x|) in a format with `mb` mantissa bits and exponent
 * bias `bias`, for |x| given as finite f32 bits. The code is the format's
 * (exponent << mb | mantissa) and may lie beyond its largest finite value:
 * the caller decides what overflow means. Subnormals are the biased-exponent-1
 * binade with a larger shift, so one formula covers both; the carry out of
 * the mantissa on round-up moves into the exponent field by itself. */
static uint32_t round_mag(uint32_t ax, int mb, int bias) {
    const int e = (int)(ax >> 23);
    if (e == 0) return 0; /* an f32 subnormal is < 2^-126, far below half of any quantum here */
    const uint32_t m  = (ax & 0x7FFFFFu) | 0x800000u; /* 24-bit significand, value m * 2^(e-150) */
    const int      eb = e - 127 + bias;               /* biased exponent in the target           */
    const int      ebc = eb < 1 ? 1 : eb;
    const int      shift = 23 - mb + (ebc - eb);      /* >= 13 for the formats used here         */
    if (shift > 25) return 0;                         /* m / 2^shift < 1/4                        */
    const uint32_t q    = m >> shift;
    const uint32_t rem  = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    const uint32_t qr   = q + (rem > half || (rem == half && (q & 1u)));
    return ((uint32_t)(ebc - 1) << mb) + qr;
}

uint16_t lq_f32_to_f16(float f) {
    const uint32_t x    = f32_bits(f);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t ax   = x & 0x7FFFFFFFu;
    if (ax > 0x7F800000u) return (uint16_t)(sign | 0x7E00u | ((ax >> 13) & 0x3FFu));
    if (ax == 0x7F800000u) return (uint16_t)(sign | 0x7C00u);
    const uint32_t c = round_mag(ax, 10, 15);
    return (uint16_t)(sign | (c > 0x7BFFu ? 0x7C00u : c));
}

uint16_t lq_f32_to_bf16(float f) {
    const uint32_t x = f32_bits(f);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((x >> 16) | 0x0040u);
    /* RNE on the low half; a carry into the exponent is correct, up to Inf */
    return (uint16_t)((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

/* e4m3: the largest finite is 0.1111.110 = 448; 0.1111.111 is NaN. A value
 * overflows when RNE would need the code after 448 (a virtual 480), i.e.
 * |x| > 464; exactly 464 ties to the even 448. This is what
 * c10::detail::fp8e4m3fn_from_fp32_value does (torch.float8_e4m3fn). */
static uint8_t f32_to_e4m3(float f, bool sat) {
    const uint32_t x    = f32_bits(f);
    const uint32_t sign = (x >> 24) & 0x80u;
    const uint32_t ax   = x & 0x7FFFFFFFu;
    if (ax > 0x7F800000u) return (uint8_t)(sign | 0x7Fu);
    const uint32_t c = ax == 0x7F800000u ? 0xFFu : round_mag(ax, 3, 7);
    if (c > 0x7Eu) return (uint8_t)(sign | (sat ? 0x7Eu : 0x7Fu));
    return (uint8_t)(sign | c);
}

uint8_t lq_f32_to_e4m3(float f) { return f32_to_e4m3(f, false); }
uint8_t lq_f32_to_e4m3_sat(float f) { return f32_to_e4m3(f, true); }

uint8_t lq_f32_to_e5m2(float f) {
    const uint32_t x    = f32_bits(f);
    const uint32_t sign = (x >> 24) & 0x80u;
    const uint32_t ax   = x & 0x7FFFFFFFu;
    if (ax > 0x7F800000u) return (uint8_t)(sign | 0x7Eu | ((ax >> 21) & 0x3u));
    if (ax == 0x7F800000u) return (uint8_t)(sign | 0x7Cu);
    const uint32_t c = round_mag(ax, 2, 15);
    return (uint8_t)(sign | (c > 0x7Bu ? 0x7Cu : c));
}
