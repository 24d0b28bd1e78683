/* convert_ref.c : lq_convert_ref(), the specification of dtype conversion.
 *
 * This version is the clean, minimal reference (rule 13): one element at a
 * time, no OpenMP, no intrinsics, integer arithmetic only. Every element is
 * decoded into an exact value (sign, class, significand * 2^exponent, NaN
 * payload) and encoded into the destination with a single round to nearest,
 * ties to even. So F64 -> F16/BF16/F8 rounds once, directly from the double,
 * and int -> float rounds once from the exact integer.
 *
 * Rules (lq_kernels.h):
 *   float -> float   RNE; overflow -> Inf (F16, BF16, F32, E5M2), NaN (E4M3);
 *                    NaN -> quiet NaN, sign and the top payload bits kept
 *                    (E4M3 has one NaN); subnormals in and out are exact.
 *   int/BOOL -> float  RNE of the exact integer, same overflow rules.
 *   int -> int       only when every source value fits (widening), else
 *                    LQ_ERR_UNSUPPORTED; BOOL -> int gives 0/1 (any non-zero
 *                    byte reads as 1); U8 -> BOOL gives (v != 0).
 *   float -> int/BOOL  LQ_ERR_UNSUPPORTED.
 *   same type        a byte copy (a signalling NaN stays as it is). */
#include "lq_internal.h"
#include "lq_kernels.h"
#include "convert_internal.h"

#include <string.h>

/* ==== number formats ==== */

typedef struct {
    int  exp_bits;
    int  mant_bits;
    int  bias;
    bool fn; /* "finite": no Inf, only the all-ones code is NaN (OCP E4M3FN) */
} float_fmt;

static bool float_fmt_of(lq_dtype t, float_fmt *f) {
    switch (t) {
    case LQ_DTYPE_F16:     *f = (float_fmt){ 5, 10, 15, false }; return true;
    case LQ_DTYPE_BF16:    *f = (float_fmt){ 8, 7, 127, false }; return true;
    case LQ_DTYPE_F32:     *f = (float_fmt){ 8, 23, 127, false }; return true;
    case LQ_DTYPE_F64:     *f = (float_fmt){ 11, 52, 1023, false }; return true;
    case LQ_DTYPE_F8_E4M3: *f = (float_fmt){ 4, 3, 7, true }; return true;
    case LQ_DTYPE_F8_E5M2: *f = (float_fmt){ 5, 2, 15, false }; return true;
    case LQ_DTYPE_BOOL: case LQ_DTYPE_U8: case LQ_DTYPE_I8: case LQ_DTYPE_I16: case LQ_DTYPE_U16:
    case LQ_DTYPE_I32: case LQ_DTYPE_U32: case LQ_DTYPE_I64: case LQ_DTYPE_U64:
    case LQ_DTYPE_F8_E8M0: case LQ_DTYPE_F8_E4M3FNUZ: case LQ_DTYPE_F8_E5M2FNUZ:
    case LQ_DTYPE_F4: case LQ_DTYPE_F6_E2M3: case LQ_DTYPE_F6_E3M2: case LQ_DTYPE_C64:
    case LQ_DTYPE_COUNT:
        return false;
    }
    return false;
}

/* value range of an integer dtype as (signed?, value bits); BOOL is 1 bit */
static bool int_range_of(lq_dtype t, bool *is_signed, int *vbits) {
    switch (t) {
    case LQ_DTYPE_BOOL: *is_signed = false; *vbits = 1;  return true;
    case LQ_DTYPE_U8:   *is_signed = false; *vbits = 8;  return true;
    case LQ_DTYPE_I8:   *is_signed = true;  *vbits = 8;  return true;
    case LQ_DTYPE_U16:  *is_signed = false; *vbits = 16; return true;
    case LQ_DTYPE_I16:  *is_signed = true;  *vbits = 16; return true;
    case LQ_DTYPE_U32:  *is_signed = false; *vbits = 32; return true;
    case LQ_DTYPE_I32:  *is_signed = true;  *vbits = 32; return true;
    case LQ_DTYPE_U64:  *is_signed = false; *vbits = 64; return true;
    case LQ_DTYPE_I64:  *is_signed = true;  *vbits = 64; return true;
    case LQ_DTYPE_F16: case LQ_DTYPE_BF16: case LQ_DTYPE_F32: case LQ_DTYPE_F64:
    case LQ_DTYPE_F8_E4M3: case LQ_DTYPE_F8_E5M2: case LQ_DTYPE_F8_E8M0:
    case LQ_DTYPE_F8_E4M3FNUZ: case LQ_DTYPE_F8_E5M2FNUZ: case LQ_DTYPE_F4:
    case LQ_DTYPE_F6_E2M3: case LQ_DTYPE_F6_E3M2: case LQ_DTYPE_C64: case LQ_DTYPE_COUNT:
        return false;
    }
    return false;
}

/* ==== argument check (shared with lq_convert_cpu) ==== */

static bool pair_supported(lq_dtype dst_t, lq_dtype src_t) {
    if (dst_t == src_t) return true;
    float_fmt f;
    if (float_fmt_of(dst_t, &f)) return true; /* any number -> float */
    bool ds, ss;
    int  db, sb;
    if (!int_range_of(dst_t, &ds, &db) || !int_range_of(src_t, &ss, &sb)) return false; /* float -> int */
    if (dst_t == LQ_DTYPE_BOOL) return src_t == LQ_DTYPE_U8;
    if (ss) return ds && db >= sb;
    return ds ? db > sb : db >= sb;
}

lq_status lq__convert_check(lq_dtype dst_t, const void *dst, lq_dtype src_t, const void *src, int64_t n,
                            const char *func) {
    const lq_dtype_traits *const dtr = lq_dtype_traits_of(dst_t);
    const lq_dtype_traits *const str = lq_dtype_traits_of(src_t);
    if (dtr == NULL || str == NULL) {
        lq__log(LQ_LOG_ERROR, func, "dtype out of range (dst %d, src %d)", (int)dst_t, (int)src_t);
        return LQ_ERR_INVALID_ARG;
    }
    if (n < 0) {
        lq__log(LQ_LOG_ERROR, func, "negative element count %lld", (long long)n);
        return LQ_ERR_INVALID_ARG;
    }
    if (!dtr->convertible || !str->convertible || !pair_supported(dst_t, src_t)) {
        lq__log(LQ_LOG_ERROR, func, "conversion %s -> %s is not supported%s", str->name, dtr->name,
                !dtr->convertible || !str->convertible ? " (dtype is not convertible)"
                : str->is_float                       ? " (float -> integer)"
                                                      : " (integer narrowing)");
        return LQ_ERR_UNSUPPORTED;
    }
    if (n == 0) return LQ_OK;
    if (dst == NULL || src == NULL) {
        lq__log(LQ_LOG_ERROR, func, "NULL buffer for %lld elements", (long long)n);
        return LQ_ERR_INVALID_ARG;
    }
    uint64_t db, sb;
    if (!lq_dtype_nbytes(dst_t, (uint64_t)n, &db) || !lq_dtype_nbytes(src_t, (uint64_t)n, &sb) ||
        db > SIZE_MAX || sb > SIZE_MAX) {
        lq__log(LQ_LOG_ERROR, func, "%lld elements overflow the address space", (long long)n);
        return LQ_ERR_INVALID_ARG;
    }
    const uintptr_t d0 = (uintptr_t)dst, s0 = (uintptr_t)src;
    if (d0 < s0 + sb && s0 < d0 + db) {
        lq__log(LQ_LOG_ERROR, func, "source and destination overlap");
        return LQ_ERR_INVALID_ARG;
    }
    return LQ_OK;
}

/* ==== exact values ==== */

typedef enum { NUM_ZERO, NUM_FINITE, NUM_INF, NUM_NAN } num_class;

typedef struct {
    bool      neg;
    num_class cls;
    int32_t   exp;     /* NUM_FINITE: |value| = sig * 2^exp, sig != 0 */
    uint64_t  sig;
    uint64_t  payload; /* NUM_NAN: the mantissa left-aligned at bit 63 */
} num;

static uint64_t load_bits(const void *p, int64_t i, int bytes) {
    const unsigned char *const b = (const unsigned char *)p + (size_t)i * (size_t)bytes;
    switch (bytes) {
    case 1: return b[0];
    case 2: { uint16_t v; memcpy(&v, b, 2); return v; }
    case 4: { uint32_t v; memcpy(&v, b, 4); return v; }
    default: { uint64_t v; memcpy(&v, b, 8); return v; }
    }
}

static void store_bits(void *p, int64_t i, int bytes, uint64_t v) {
    unsigned char *const b = (unsigned char *)p + (size_t)i * (size_t)bytes;
    switch (bytes) {
    case 1: b[0] = (unsigned char)v; break;
    case 2: { const uint16_t w = (uint16_t)v; memcpy(b, &w, 2); break; }
    case 4: { const uint32_t w = (uint32_t)v; memcpy(b, &w, 4); break; }
    default: memcpy(b, &v, 8); break;
    }
}

static num unpack_float(uint64_t bits, const float_fmt *f) {
    const int      mb    = f->mant_bits;
    const uint64_t emask = ((uint64_t)1 << f->exp_bits) - 1;
    const uint64_t mmask = ((uint64_t)1 << mb) - 1;
    const uint64_t e     = (bits >> mb) & emask;
    const uint64_t m     = bits & mmask;
    num            v     = { .neg = (bits >> (f->exp_bits + mb)) & 1, .cls = NUM_FINITE };
    if (f->fn ? (e == emask && m == mmask) : (e == emask && m != 0)) {
        v.cls     = NUM_NAN;
        v.payload = f->fn ? 0 : m << (64 - mb);
    } else if (!f->fn && e == emask) {
        v.cls = NUM_INF;
    } else if (e == 0 && m == 0) {
        v.cls = NUM_ZERO;
    } else if (e == 0) {
        v.sig = m;
        v.exp = 1 - f->bias - mb;
    } else {
        v.sig = m | ((uint64_t)1 << mb);
        v.exp = (int32_t)e - f->bias - mb;
    }
    return v;
}

static num int_num(bool neg, uint64_t mag) {
    return (num){ .neg = neg, .cls = mag ? NUM_FINITE : NUM_ZERO, .exp = 0, .sig = mag };
}

/* index of the highest set bit of x != 0, by halving (selects, not branches:
 * the data decides them) */
static int msb64(uint64_t x) {
    int p = 0;
    for (int w = 32; w > 0; w /= 2) {
        const int s = (x >> w) != 0 ? w : 0;
        x >>= s;
        p += s;
    }
    return p;
}

/* Round sig * 2^-shift (shift >= 1) to nearest, ties to even. */
static uint64_t round_shift(uint64_t sig, int shift) {
    if (shift > 64) return 0; /* sig < 2^64, so the value is < 1/2 */
    const uint64_t q    = shift == 64 ? 0 : sig >> shift;
    const uint64_t rem  = shift == 64 ? sig : sig & (((uint64_t)1 << shift) - 1);
    const uint64_t half = (uint64_t)1 << (shift - 1);
    return q + ((rem > half) | ((rem == half) & (q & 1)));
}

/* The destination code is (biased exponent - 1) << mant_bits plus the rounded
 * significand: in the normal range the significand carries the implicit one,
 * which adds the missing 1 to the exponent field, and a round-up that carries
 * out of the mantissa moves into the next binade by itself. Subnormals use
 * biased exponent 1 with the quantum of that binade. */
static uint64_t pack_float(const num *v, const float_fmt *f) {
    const int      mb       = f->mant_bits;
    const uint64_t emask    = ((uint64_t)1 << f->exp_bits) - 1;
    const uint64_t mmask    = ((uint64_t)1 << mb) - 1;
    const uint64_t sign     = (uint64_t)v->neg << (f->exp_bits + mb);
    const uint64_t nan_code = f->fn ? (emask << mb) | mmask
                                    : (emask << mb) | ((uint64_t)1 << (mb - 1)) | (v->payload >> (64 - mb));
    const uint64_t overflow = f->fn ? nan_code : emask << mb;
    const uint64_t max_code = f->fn ? (emask << mb) | (mmask - 1) : ((emask - 1) << mb) | mmask;
    switch (v->cls) {
    case NUM_ZERO: return sign;
    case NUM_NAN:  return sign | nan_code;
    case NUM_INF:  return sign | overflow;
    case NUM_FINITE: break;
    }
    /* |v| lies in [2^e, 2^(e+1)) */
    const int64_t e      = (int64_t)v->exp + msb64(v->sig);
    const int64_t eb     = e + f->bias;
    const int64_t ebc    = eb < 1 ? 1 : eb;
    const int64_t qexp   = ebc - f->bias - mb; /* exponent of the quantum */
    if (ebc > (int64_t)emask) return sign | overflow;
    const int64_t shift  = qexp - v->exp;
    const uint64_t q     = shift <= 0 ? v->sig << -shift : round_shift(v->sig, (int)LQ_MIN(shift, 65));
    const uint64_t code  = ((uint64_t)(ebc - 1) << mb) + q;
    return sign | (code > max_code ? overflow : code);
}

/* ==== element access ==== */

typedef enum { KIND_BOOL, KIND_UINT, KIND_SINT, KIND_FLOAT } elem_kind;

typedef struct {
    elem_kind kind;
    int       bytes;
    float_fmt f; /* KIND_FLOAT */
} elem_desc;

static elem_desc desc_of(lq_dtype t) {
    elem_desc d = { .bytes = (int)(lq_dtype_traits_of(t)->bits / 8) };
    bool      is_signed;
    int       vbits;
    if (float_fmt_of(t, &d.f)) d.kind = KIND_FLOAT;
    else if (t == LQ_DTYPE_BOOL) d.kind = KIND_BOOL;
    else if (int_range_of(t, &is_signed, &vbits)) d.kind = is_signed ? KIND_SINT : KIND_UINT;
    else LQ_ASSERT(!"desc_of: dtype not convertible");
    return d;
}

static num load_num(const elem_desc *d, const void *src, int64_t i) {
    const uint64_t bits = load_bits(src, i, d->bytes);
    switch (d->kind) {
    case KIND_BOOL: return int_num(false, bits != 0);
    case KIND_UINT: return int_num(false, bits);
    case KIND_SINT: {
        /* sign-extend from d->bytes * 8 bits, then take the magnitude */
        const int      sh  = 64 - 8 * d->bytes;
        const uint64_t neg = (bits >> (8 * d->bytes - 1)) & 1;
        const uint64_t ext = neg ? bits | (sh ? ~(uint64_t)0 << (64 - sh) : 0) : bits;
        return int_num(neg, neg ? (uint64_t)0 - ext : ext);
    }
    case KIND_FLOAT: return unpack_float(bits, &d->f);
    }
    return int_num(false, 0);
}

/* Integer destinations only receive integers that fit (pair_supported). */
static void store_num(const elem_desc *d, void *dst, int64_t i, const num *v) {
    switch (d->kind) {
    case KIND_BOOL: store_bits(dst, i, 1, v->cls != NUM_ZERO); return;
    case KIND_UINT:
    case KIND_SINT: store_bits(dst, i, d->bytes, v->neg ? (uint64_t)0 - v->sig : v->sig); return;
    case KIND_FLOAT: store_bits(dst, i, d->bytes, pack_float(v, &d->f)); return;
    }
}

/* ==== entry point ==== */

lq_status lq_convert_ref(lq_dtype dst_t, void *dst, lq_dtype src_t, const void *src, int64_t n) {
    LQ_TRY(lq__convert_check(dst_t, dst, src_t, src, n, __func__));
    if (n == 0) return LQ_OK;
    if (dst_t == src_t) {
        memcpy(dst, src, (size_t)n * (lq_dtype_traits_of(src_t)->bits / 8));
        return LQ_OK;
    }
    const elem_desc sd = desc_of(src_t), dd = desc_of(dst_t);
    for (int64_t i = 0; i < n; i++) {
        const num v = load_num(&sd, src, i);
        store_num(&dd, dst, i, &v);
    }
    return LQ_OK;
}
