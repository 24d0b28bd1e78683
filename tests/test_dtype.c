/* test_dtype.c : the dtype traits table, the exact scalar conversions and
 * lq_convert_ref() / lq_convert_cpu().
 *
 * The oracles here share no code with the library's bit manipulation:
 *   decoding  sign/exponent/mantissa fields put together with ldexp();
 *   rounding  a sorted table of every finite non-negative value of the target
 *             format (decoded as above), a binary search for the neighbours
 *             of |x| and an exact comparison with their midpoint (exact in
 *             double for every format here); ties go to the even code;
 *   wide      F64 <-> F32 and int -> F32/F64 against C casts (the FPU rounds
 *             to nearest even; fine in a test, never used by the library).
 * Random sample counts scale with LQ_TEST_SCALE (default 1; 0.1 under ASan,
 * where the suite must stay within ~20 s). The big parity sizes never drop
 * below a few chunks, so the chunked OpenMP path is always exercised. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lq_test.h"

#if defined(__SANITIZE_ADDRESS__)
#define LQ_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LQ_TEST_ASAN 1
#endif
#endif
#ifndef LQ_TEST_ASAN
#define LQ_TEST_ASAN 0
#endif

#define MAX_REPORT 5 /* mismatches printed per check */

static double test_scale(void) {
    const char *const s = getenv("LQ_TEST_SCALE");
    if (s && *s) {
        const double v = strtod(s, NULL);
        if (v > 0) return v;
    }
    return LQ_TEST_ASAN ? 0.1 : 1.0;
}

static int64_t scaled(int64_t n, int64_t at_least) {
    const int64_t v = (int64_t)((double)n * test_scale());
    return v < at_least ? at_least : v;
}

/* ---- bit helpers ---- */

static uint32_t bits_f32(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float f32_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint64_t bits_f64(double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

static double f64_of(uint64_t u) {
    double d;
    memcpy(&d, &u, 8);
    return d;
}

/* ---- the test's own description of the float formats ---- */

typedef struct {
    const char *name;
    lq_dtype    dt;
    int         eb, mb, bias;
    bool        fn; /* no Inf; only S.1111.111 is NaN */
} tfmt;

static const tfmt T_F16  = { "F16", LQ_DTYPE_F16, 5, 10, 15, false };
static const tfmt T_BF16 = { "BF16", LQ_DTYPE_BF16, 8, 7, 127, false };
static const tfmt T_E4M3 = { "F8_E4M3", LQ_DTYPE_F8_E4M3, 4, 3, 7, true };
static const tfmt T_E5M2 = { "F8_E5M2", LQ_DTYPE_F8_E5M2, 5, 2, 15, false };
static const tfmt T_F32  = { "F32", LQ_DTYPE_F32, 8, 23, 127, false };

static uint32_t t_sign_bit(const tfmt *f) { return 1u << (f->eb + f->mb); }
static uint32_t t_max_code(const tfmt *f) {
    const uint32_t e_all = (1u << f->eb) - 1, m_all = (1u << f->mb) - 1;
    return f->fn ? (e_all << f->mb) | (m_all - 1) : ((e_all << f->mb) - 1);
}
static bool t_is_nan(const tfmt *f, uint32_t c) {
    const uint32_t mag = c & (t_sign_bit(f) - 1);
    const uint32_t e_all = (1u << f->eb) - 1, m_all = (1u << f->mb) - 1;
    return f->fn ? mag == ((e_all << f->mb) | m_all) : (mag >> f->mb) == e_all && (mag & m_all) != 0;
}

/* decode a code of format f into a double, from its fields */
static double ref_decode(const tfmt *f, uint32_t c) {
    const bool     neg = (c & t_sign_bit(f)) != 0;
    const uint32_t e   = (c >> f->mb) & ((1u << f->eb) - 1);
    const uint32_t m   = c & ((1u << f->mb) - 1);
    double         v;
    if (t_is_nan(f, c)) return neg ? -NAN : NAN;
    if (!f->fn && e == (1u << f->eb) - 1) v = INFINITY;
    else if (e == 0) v = ldexp((double)m, 1 - f->bias - f->mb);
    else v = ldexp((double)(m + (1u << f->mb)), (int)e - f->bias - f->mb);
    return neg ? -v : v;
}

/* value of f32 bits from their fields (independent of the FPU) */
static double f32_value(uint32_t u) { return ref_decode(&T_F32, u); }

typedef struct {
    const tfmt *f;
    double     *v;    /* v[k] = value of positive code k, k = 0..max_code */
    uint32_t    max;  /* largest finite code */
    double      next; /* the value a code after max would have */
} rtable;

static rtable g_tab[4];

static const rtable *table_of(const tfmt *f) {
    const int slot = f == &T_F16 ? 0 : f == &T_BF16 ? 1 : f == &T_E4M3 ? 2 : 3;
    rtable   *t    = &g_tab[slot];
    if (t->v == NULL) {
        t->f   = f;
        t->max = t_max_code(f);
        t->v   = malloc(((size_t)t->max + 1) * sizeof *t->v);
        if (t->v == NULL) abort();
        for (uint32_t k = 0; k <= t->max; k++) t->v[k] = ref_decode(f, k);
        /* one quantum of the top binade above the largest finite value */
        t->next = t->v[t->max] + (t->v[t->max] - t->v[t->max - 1]);
    }
    return t;
}

static void free_tables(void) {
    for (int i = 0; i < 4; i++) {
        free(g_tab[i].v);
        g_tab[i].v = NULL;
    }
}

/* The expected code of RNE(x) in f, x not NaN. Overflow: Inf for IEEE-like
 * formats; for E4M3 NaN, or the largest finite value when `sat`. */
static uint32_t ref_round(const tfmt *f, double x, bool sat) {
    const rtable  *t    = table_of(f);
    const uint32_t sign = signbit(x) ? t_sign_bit(f) : 0;
    const double   a    = fabs(x);
    const uint32_t over = f->fn ? (sat ? t->max : t->max + 1) : t->max + 1; /* E4M3 max+1 is the NaN */
    if (isinf(a)) return sign | over;
    uint32_t lo = 0, hi = t->max; /* largest k with v[k] <= a */
    while (lo < hi) {
        const uint32_t mid = lo + (hi - lo + 1) / 2;
        if (t->v[mid] <= a) lo = mid;
        else hi = mid - 1;
    }
    const uint32_t k = lo;
    if (t->v[k] == a) return sign | k;
    const double   up  = k == t->max ? t->next : t->v[k + 1];
    const double   mid = (t->v[k] + up) / 2;
    const uint32_t r   = a < mid ? k : a > mid ? k + 1 : (k % 2 == 0 ? k : k + 1);
    return sign | (r > t->max ? over : r);
}

/* got (a code of f) is the correct conversion of x */
static bool round_ok(const tfmt *f, double x, uint32_t got, bool sat) {
    if (isnan(x)) return t_is_nan(f, got) && ((got & t_sign_bit(f)) != 0) == (signbit(x) != 0);
    return got == ref_round(f, x, sat);
}

/* ---- traits table ---- */

static const struct {
    lq_dtype    t;
    const char *name, *torch;
    uint32_t    bits;
    int32_t     st_order;
    bool        convertible;
} EXPECT[] = {
    { LQ_DTYPE_BOOL, "BOOL", "torch.bool", 8, 0, true },
    { LQ_DTYPE_U8, "U8", "torch.uint8", 8, 4, true },
    { LQ_DTYPE_I8, "I8", "torch.int8", 8, 5, true },
    { LQ_DTYPE_I16, "I16", "torch.int16", 16, 11, true },
    { LQ_DTYPE_U16, "U16", "torch.uint16", 16, 12, true },
    { LQ_DTYPE_I32, "I32", "torch.int32", 32, 15, true },
    { LQ_DTYPE_U32, "U32", "torch.uint32", 32, 16, true },
    { LQ_DTYPE_I64, "I64", "torch.int64", 64, 20, true },
    { LQ_DTYPE_U64, "U64", "torch.uint64", 64, 21, true },
    { LQ_DTYPE_F16, "F16", "torch.float16", 16, 13, true },
    { LQ_DTYPE_BF16, "BF16", "torch.bfloat16", 16, 14, true },
    { LQ_DTYPE_F32, "F32", "torch.float32", 32, 17, true },
    { LQ_DTYPE_F64, "F64", "torch.float64", 64, 19, true },
    { LQ_DTYPE_F8_E4M3, "F8_E4M3", "torch.float8_e4m3fn", 8, 7, true },
    { LQ_DTYPE_F8_E5M2, "F8_E5M2", "torch.float8_e5m2", 8, 6, true },
    { LQ_DTYPE_F8_E8M0, "F8_E8M0", "torch.float8_e8m0fnu", 8, 8, false },
    { LQ_DTYPE_F8_E4M3FNUZ, "F8_E4M3FNUZ", "torch.float8_e4m3fnuz", 8, 9, false },
    { LQ_DTYPE_F8_E5M2FNUZ, "F8_E5M2FNUZ", "torch.float8_e5m2fnuz", 8, 10, false },
    { LQ_DTYPE_F4, "F4", "", 4, 1, false },
    { LQ_DTYPE_F6_E2M3, "F6_E2M3", "", 6, 2, false },
    { LQ_DTYPE_F6_E3M2, "F6_E3M2", "", 6, 3, false },
    { LQ_DTYPE_C64, "C64", "torch.complex64", 64, 18, false },
};
#define N_EXPECT (sizeof EXPECT / sizeof EXPECT[0])

static void test_dtype_traits_table(void) {
    CU_ASSERT_EQUAL_FATAL(N_EXPECT, LQ_DTYPE_COUNT);
    uint32_t seen_order = 0;
    for (size_t i = 0; i < N_EXPECT; i++) {
        const lq_dtype_traits *const tr = lq_dtype_traits_of(EXPECT[i].t);
        CU_ASSERT_PTR_NOT_NULL_FATAL(tr);
        CU_ASSERT_STRING_EQUAL(tr->name, EXPECT[i].name);
        CU_ASSERT_STRING_EQUAL(tr->torch_name, EXPECT[i].torch);
        CU_ASSERT_EQUAL(tr->bits, EXPECT[i].bits);
        CU_ASSERT_EQUAL(tr->st_order, EXPECT[i].st_order);
        CU_ASSERT_EQUAL(tr->convertible, EXPECT[i].convertible);
        CU_ASSERT_STRING_EQUAL(lq_dtype_name(EXPECT[i].t), EXPECT[i].name);
        const bool is_int = EXPECT[i].t <= LQ_DTYPE_U64;
        CU_ASSERT_EQUAL(tr->is_float, !is_int);
        if (tr->st_order >= 0 && tr->st_order < 32) seen_order |= 1u << tr->st_order;
        /* name round trip through a buffer that is not NUL-terminated */
        char         buf[32];
        const size_t len = strlen(EXPECT[i].name);
        memset(buf, 'X', sizeof buf);
        memcpy(buf, EXPECT[i].name, len);
        lq_dtype back = LQ_DTYPE_COUNT;
        CU_ASSERT_EQUAL(lq_dtype_from_name(buf, len, &back), LQ_OK);
        CU_ASSERT_EQUAL(back, EXPECT[i].t);
        /* every proper prefix is rejected unless it is itself a name */
        for (size_t k = 0; k < len; k++) {
            lq_dtype        p  = LQ_DTYPE_COUNT;
            const lq_status st = lq_dtype_from_name(buf, k, &p);
            if (st == LQ_OK) CU_ASSERT_EQUAL(strlen(lq_dtype_name(p)), k);
        }
    }
    CU_ASSERT_EQUAL(seen_order, (1u << LQ_DTYPE_COUNT) - 1); /* a permutation of 0..21 */
    CU_ASSERT_TRUE(lq_dtype_traits_of(LQ_DTYPE_I8)->is_signed);
    CU_ASSERT_FALSE(lq_dtype_traits_of(LQ_DTYPE_U8)->is_signed);
    CU_ASSERT_FALSE(lq_dtype_traits_of(LQ_DTYPE_BOOL)->is_signed);
    CU_ASSERT_TRUE(lq_dtype_traits_of(LQ_DTYPE_BF16)->is_signed);

    CU_ASSERT_PTR_NULL(lq_dtype_traits_of(LQ_DTYPE_COUNT));
    CU_ASSERT_PTR_NULL(lq_dtype_traits_of((lq_dtype)-1));
    CU_ASSERT_STRING_EQUAL(lq_dtype_name(LQ_DTYPE_COUNT), "?");
    CU_ASSERT_STRING_EQUAL(lq_dtype_name((lq_dtype)1000), "?");

    lq_dtype d = LQ_DTYPE_COUNT;
    CU_ASSERT_EQUAL(lq_dtype_from_name("F8_E4M3FNUZ", 7, &d), LQ_OK); /* length-delimited */
    CU_ASSERT_EQUAL(d, LQ_DTYPE_F8_E4M3);
    CU_ASSERT_EQUAL(lq_dtype_from_name("F8_E4M3FNUZ", 11, &d), LQ_OK);
    CU_ASSERT_EQUAL(d, LQ_DTYPE_F8_E4M3FNUZ);
    CU_ASSERT_EQUAL(lq_dtype_from_name("f16", 3, &d), LQ_ERR_UNSUPPORTED); /* case-sensitive */
    CU_ASSERT_EQUAL(lq_dtype_from_name("F16 ", 4, &d), LQ_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(lq_dtype_from_name("F8", 2, &d), LQ_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(lq_dtype_from_name("", 0, &d), LQ_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(lq_dtype_from_name("F16\0", 4, &d), LQ_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(lq_dtype_from_name(NULL, 3, &d), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_dtype_from_name("F16", 3, NULL), LQ_ERR_INVALID_ARG);
}

static void test_dtype_nbytes(void) {
    uint64_t b = 12345;
    CU_ASSERT_TRUE(lq_dtype_nbytes(LQ_DTYPE_F32, 0, &b) && b == 0);
    CU_ASSERT_TRUE(lq_dtype_nbytes(LQ_DTYPE_F32, 3, &b) && b == 12);
    CU_ASSERT_TRUE(lq_dtype_nbytes(LQ_DTYPE_BF16, 5, &b) && b == 10);
    CU_ASSERT_TRUE(lq_dtype_nbytes(LQ_DTYPE_C64, 2, &b) && b == 16);
    CU_ASSERT_TRUE(lq_dtype_nbytes(LQ_DTYPE_BOOL, 9, &b) && b == 9);
    CU_ASSERT_TRUE(lq_dtype_nbytes(LQ_DTYPE_F4, 4, &b) && b == 2);
    CU_ASSERT_TRUE(lq_dtype_nbytes(LQ_DTYPE_F4, 2, &b) && b == 1);
    CU_ASSERT_TRUE(lq_dtype_nbytes(LQ_DTYPE_F6_E2M3, 4, &b) && b == 3);
    CU_ASSERT_TRUE(lq_dtype_nbytes(LQ_DTYPE_F6_E3M2, 12, &b) && b == 9);
    /* sub-byte totals that are not whole bytes */
    b = 777;
    CU_ASSERT_FALSE(lq_dtype_nbytes(LQ_DTYPE_F4, 3, &b));
    CU_ASSERT_FALSE(lq_dtype_nbytes(LQ_DTYPE_F6_E2M3, 2, &b));
    CU_ASSERT_FALSE(lq_dtype_nbytes(LQ_DTYPE_F6_E3M2, 6, &b));
    CU_ASSERT_EQUAL(b, 777); /* untouched on failure */
    /* overflow, and the largest sizes that still fit */
    CU_ASSERT_TRUE(lq_dtype_nbytes(LQ_DTYPE_U8, UINT64_MAX, &b) && b == UINT64_MAX);
    CU_ASSERT_TRUE(lq_dtype_nbytes(LQ_DTYPE_F16, UINT64_MAX / 2, &b) && b == UINT64_MAX - 1);
    CU_ASSERT_FALSE(lq_dtype_nbytes(LQ_DTYPE_F16, UINT64_MAX / 2 + 1, &b));
    CU_ASSERT_TRUE(lq_dtype_nbytes(LQ_DTYPE_F32, UINT64_MAX / 4, &b) && b == UINT64_MAX - 3);
    CU_ASSERT_FALSE(lq_dtype_nbytes(LQ_DTYPE_F32, (uint64_t)1 << 62, &b));
    CU_ASSERT_FALSE(lq_dtype_nbytes(LQ_DTYPE_F64, (uint64_t)1 << 61, &b));
    CU_ASSERT_TRUE(lq_dtype_nbytes(LQ_DTYPE_I64, ((uint64_t)1 << 61) - 1, &b) && b == UINT64_MAX - 7);
    CU_ASSERT_FALSE(lq_dtype_nbytes(LQ_DTYPE_U64, UINT64_MAX, &b));
    /* sub-byte sizes near the top: n*bits overflows, n*bits/8 does not */
    CU_ASSERT_TRUE(lq_dtype_nbytes(LQ_DTYPE_F4, UINT64_MAX - 1, &b) && b == UINT64_MAX / 2);
    CU_ASSERT_TRUE(lq_dtype_nbytes(LQ_DTYPE_F6_E2M3, UINT64_MAX - 3, &b) && b == (UINT64_MAX - 3) / 4 * 3);
    CU_ASSERT_FALSE(lq_dtype_nbytes(LQ_DTYPE_F4, UINT64_MAX, &b));
    /* bad arguments */
    CU_ASSERT_FALSE(lq_dtype_nbytes(LQ_DTYPE_COUNT, 1, &b));
    CU_ASSERT_FALSE(lq_dtype_nbytes(LQ_DTYPE_F32, 1, NULL));
}

/* ---- decoding: every code of a format ---- */

/* got_f32 is the exact value of code c of f (NaN: quiet, sign and payload kept) */
static bool decode_ok(const tfmt *f, uint32_t c, uint32_t got_f32) {
    const double ref = ref_decode(f, c);
    if (isnan(ref)) {
        const bool quiet_nan = (got_f32 & 0x7FC00000u) == 0x7FC00000u;
        const bool sign_ok   = ((got_f32 >> 31) != 0) == ((c & t_sign_bit(f)) != 0);
        /* the payload below the quiet bit is the source mantissa, left-aligned
         * (E4M3 has a single NaN and no payload) */
        const uint32_t m       = c & ((1u << f->mb) - 1);
        const uint32_t payload = f->fn ? 0 : (m << (23 - f->mb)) & 0x3FFFFFu;
        return quiet_nan && sign_ok && (got_f32 & 0x3FFFFFu) == payload;
    }
    const double v = f32_value(got_f32);
    return v == ref && (signbit(v) != 0) == (signbit(ref) != 0);
}

typedef float (*decode_fn)(uint32_t c);
static float dec_f16(uint32_t c) { return lq_f16_to_f32((uint16_t)c); }
static float dec_bf16(uint32_t c) { return lq_bf16_to_f32((uint16_t)c); }
static float dec_e4m3(uint32_t c) { return lq_e4m3_to_f32((uint8_t)c); }
static float dec_e5m2(uint32_t c) { return lq_e5m2_to_f32((uint8_t)c); }

static void store_code(const tfmt *f, void *buf, size_t i, uint32_t c) {
    if (f->eb + f->mb == 7) ((uint8_t *)buf)[i] = (uint8_t)c;
    else ((uint16_t *)buf)[i] = (uint16_t)c;
}

static uint32_t load_code(const tfmt *f, const void *buf, size_t i) {
    if (f->eb + f->mb == 7) return ((const uint8_t *)buf)[i];
    return ((const uint16_t *)buf)[i];
}

/* all codes: the scalar decoder against the field decoding; lq_convert_ref
 * and lq_convert_cpu (F32 destination) against the scalar decoder, bit for
 * bit; every other float destination holds every code exactly or rounds it
 * as ref_round says (F16 <-> BF16). */
static void check_decode_all(const tfmt *f, decode_fn dec) {
    const uint32_t n   = 1u << (1 + f->eb + f->mb);
    void *const    src = malloc((size_t)n * 2);
    uint32_t *const r32 = malloc((size_t)n * 4), *const c32 = malloc((size_t)n * 4);
    double *const   r64 = malloc((size_t)n * 8);
    uint16_t *const o16 = malloc((size_t)n * 2);
    CU_ASSERT_FATAL(src && r32 && c32 && r64 && o16);
    unsigned bad = 0;
    for (uint32_t c = 0; c < n; c++) {
        store_code(f, src, c, c);
        const uint32_t got = bits_f32(dec(c));
        if (!decode_ok(f, c, got) && bad++ < MAX_REPORT)
            printf("\n  %s decode %#x: got f32 %08x, want %.17g", f->name, c, got, ref_decode(f, c));
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_F32, r32, f->dt, src, n), LQ_OK);
    CU_ASSERT_EQUAL(lq_convert_cpu(LQ_DTYPE_F32, c32, f->dt, src, n, 2), LQ_OK);
    CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_F64, r64, f->dt, src, n), LQ_OK);
    unsigned bad_ref = 0, bad_cpu = 0, bad_64 = 0;
    for (uint32_t c = 0; c < n; c++) {
        const uint32_t want = bits_f32(dec(c));
        bad_ref += r32[c] != want;
        bad_cpu += c32[c] != want;
        const double ref = ref_decode(f, c);
        /* F64: the value exactly, NaN as a quiet NaN with the sign */
        const bool ok64 = isnan(ref) ? isnan(r64[c]) && (bits_f64(r64[c]) & 0x0008000000000000u) &&
                                           (signbit(r64[c]) != 0) == (signbit(ref) != 0)
                                     : bits_f64(r64[c]) == bits_f64(ref);
        if (!ok64 && bad_64++ < MAX_REPORT) printf("\n  %s -> F64 %#x: got %.17g", f->name, c, r64[c]);
    }
    CU_ASSERT_EQUAL(bad_ref, 0);
    CU_ASSERT_EQUAL(bad_cpu, 0);
    CU_ASSERT_EQUAL(bad_64, 0);
    /* into the 16-bit formats: exact for the F8 codes, RNE between F16 and BF16 */
    const tfmt *const dsts[] = { &T_F16, &T_BF16 };
    for (int k = 0; k < 2; k++) {
        if (dsts[k] == f) continue;
        CU_ASSERT_EQUAL(lq_convert_cpu(dsts[k]->dt, o16, f->dt, src, n, 3), LQ_OK);
        unsigned b = 0;
        for (uint32_t c = 0; c < n; c++) {
            if (!round_ok(dsts[k], ref_decode(f, c), o16[c], false) && b++ < MAX_REPORT)
                printf("\n  %s -> %s %#x: got %#x", f->name, dsts[k]->name, c, o16[c]);
        }
        CU_ASSERT_EQUAL(b, 0);
    }
    free(src), free(r32), free(c32), free(r64), free(o16);
}

static void test_dtype_f16_decode_all(void) { check_decode_all(&T_F16, dec_f16); }
static void test_dtype_bf16_decode_all(void) { check_decode_all(&T_BF16, dec_bf16); }
static void test_dtype_e4m3_decode_all(void) { check_decode_all(&T_E4M3, dec_e4m3); }
static void test_dtype_e5m2_decode_all(void) { check_decode_all(&T_E5M2, dec_e5m2); }

/* ---- encoding from f32 ---- */

typedef uint32_t (*encode_fn)(float x);
static uint32_t enc_f16(float x) { return lq_f32_to_f16(x); }
static uint32_t enc_bf16(float x) { return lq_f32_to_bf16(x); }
static uint32_t enc_e4m3(float x) { return lq_f32_to_e4m3(x); }
static uint32_t enc_e4m3_sat(float x) { return lq_f32_to_e4m3_sat(x); }
static uint32_t enc_e5m2(float x) { return lq_f32_to_e5m2(x); }

static encode_fn encoder_of(const tfmt *f) {
    return f == &T_F16 ? enc_f16 : f == &T_BF16 ? enc_bf16 : f == &T_E4M3 ? enc_e4m3 : enc_e5m2;
}

/* Every input through the scalar encoder(s), lq_convert_ref and
 * lq_convert_cpu, each against ref_round. */
static void check_encode(const tfmt *f, const uint32_t *in, size_t n, const char *what) {
    const encode_fn enc = encoder_of(f);
    void *const     r   = malloc(n * 2 + 1);
    void *const     c   = malloc(n * 2 + 1);
    CU_ASSERT_FATAL(r && c);
    CU_ASSERT_EQUAL(lq_convert_ref(f->dt, r, LQ_DTYPE_F32, in, (int64_t)n), LQ_OK);
    CU_ASSERT_EQUAL(lq_convert_cpu(f->dt, c, LQ_DTYPE_F32, in, (int64_t)n, 2), LQ_OK);
    unsigned bad = 0;
    for (size_t i = 0; i < n; i++) {
        const double   x    = f32_value(in[i]);
        const uint32_t got  = enc(f32_of(in[i]));
        const bool     sat  = f == &T_E4M3 ? round_ok(f, x, enc_e4m3_sat(f32_of(in[i])), true) : true;
        const bool     ok   = round_ok(f, x, got, false) && sat && got == load_code(f, r, i) &&
                        got == load_code(f, c, i);
        if (!ok && bad++ < MAX_REPORT)
            printf("\n  %s %s: f32 %08x (%.9g): scalar %#x ref %#x cpu %#x want %#x", f->name, what, in[i], x,
                   got, load_code(f, r, i), load_code(f, c, i), isnan(x) ? 0 : ref_round(f, x, false));
    }
    if (bad) printf("\n  %s %s: %u of %zu wrong", f->name, what, bad, n);
    CU_ASSERT_EQUAL(bad, 0);
    free(r), free(c);
}

/* every finite value of f, the midpoint between each pair of neighbours, and
 * the f32 values one ulp either side of each midpoint; both signs */
static uint32_t *interesting_inputs(const tfmt *f, size_t *n_out) {
    const rtable *const t = table_of(f);
    uint32_t *const     v = malloc(((size_t)t->max + 1) * 8 * sizeof *v + 64 * sizeof *v);
    if (v == NULL) return NULL;
    size_t n = 0;
    for (uint32_t k = 0; k <= t->max; k++) {
        const double   up  = k == t->max ? t->next : t->v[k + 1];
        const uint32_t val = bits_f32((float)t->v[k]); /* exact: every code is an f32 */
        const uint32_t mid = bits_f32((float)((t->v[k] + up) / 2)); /* exact: one more bit */
        const uint32_t list[4] = { val, mid, mid + 1, mid - 1 };
        for (int j = 0; j < 4; j++) {
            v[n++] = list[j];
            v[n++] = list[j] ^ 0x80000000u;
        }
    }
    /* zeros, f32 subnormals, the extremes, Inf and NaNs with payloads */
    const uint32_t extra[] = { 0x00000000u, 0x80000000u, 0x00000001u, 0x807FFFFFu, 0x00400000u, 0x00800000u,
                               0x7F7FFFFFu, 0xFF7FFFFFu, 0x7F800000u, 0xFF800000u, 0x7FC00000u, 0xFFC00000u,
                               0x7F800001u, 0xFF800001u, 0x7FA00000u, 0x7FFFFFFFu, 0xFFFFE000u, 0x7FBFFFFFu,
                               0x7F802000u, 0x7F810000u, 0x7F900000u, 0xFFF00000u, 0x477FF000u, 0x477FEFFFu,
                               0x33000000u, 0x33000001u, 0x38800000u, 0x387FFFFFu, 0x43E80000u, 0x43E80001u,
                               0x43F00000u, 0x47700000u, 0x476FFFFFu, 0x37000000u, 0x37000001u, 0x3A800000u,
                               0x3A000000u, 0x3A000001u, 0x3B400000u };
    for (size_t j = 0; j < sizeof extra / sizeof extra[0]; j++) v[n++] = extra[j];
    *n_out = n;
    return v;
}

static void check_encode_interesting(const tfmt *f) {
    size_t          n = 0;
    uint32_t *const in = interesting_inputs(f, &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    check_encode(f, in, n, "values/midpoints");
    free(in);
}

static void test_dtype_f16_encode_midpoints(void) {
    check_encode_interesting(&T_F16);
    /* the documented boundaries, spelled out */
    CU_ASSERT_EQUAL(lq_f32_to_f16(65504.0f), 0x7BFF);
    CU_ASSERT_EQUAL(lq_f32_to_f16(f32_of(0x477FEFFFu)), 0x7BFF); /* just below 65520 */
    CU_ASSERT_EQUAL(lq_f32_to_f16(65520.0f), 0x7C00);            /* the tie goes to Inf (even) */
    CU_ASSERT_EQUAL(lq_f32_to_f16(-65520.0f), 0xFC00);
    CU_ASSERT_EQUAL(lq_f32_to_f16(f32_of(0x7F7FFFFFu)), 0x7C00);
    CU_ASSERT_EQUAL(lq_f32_to_f16(f32_of(0x7F800000u)), 0x7C00);
    CU_ASSERT_EQUAL(lq_f32_to_f16(0x1p-24f), 0x0001);           /* smallest subnormal */
    CU_ASSERT_EQUAL(lq_f32_to_f16(0x1p-25f), 0x0000);           /* tie with 0 -> 0 */
    CU_ASSERT_EQUAL(lq_f32_to_f16(f32_of(0x33000001u)), 0x0001); /* just above */
    CU_ASSERT_EQUAL(lq_f32_to_f16(0x1.8p-24f), 0x0002);         /* tie 1|2 -> 2 */
    CU_ASSERT_EQUAL(lq_f32_to_f16(0x1.4p-23f), 0x0002);         /* tie 2|3 -> 2 */
    CU_ASSERT_EQUAL(lq_f32_to_f16(0x1.ffcp-15f), 0x0400);       /* tie max subnormal|min normal */
    CU_ASSERT_EQUAL(lq_f32_to_f16(0x1p-14f), 0x0400);
    CU_ASSERT_EQUAL(lq_f32_to_f16(f32_of(0x00000001u)), 0x0000);
    CU_ASSERT_EQUAL(lq_f32_to_f16(f32_of(0x80000001u)), 0x8000);
    CU_ASSERT_EQUAL(lq_f32_to_f16(-0.0f), 0x8000);
    CU_ASSERT_EQUAL(lq_f32_to_f16(1.0f + 0x1p-11f), 0x3C00); /* tie -> even */
    CU_ASSERT_EQUAL(lq_f32_to_f16(1.0f + 0x1.8p-10f), 0x3C02);
    /* NaN: quiet, sign and top payload kept, never Inf */
    CU_ASSERT_EQUAL(lq_f32_to_f16(f32_of(0x7FC00000u)), 0x7E00);
    CU_ASSERT_EQUAL(lq_f32_to_f16(f32_of(0x7F800001u)), 0x7E00);
    CU_ASSERT_EQUAL(lq_f32_to_f16(f32_of(0xFFA00000u)), 0xFF00);
    CU_ASSERT_EQUAL(lq_f32_to_f16(f32_of(0x7FFFFFFFu)), 0x7FFF);
}

static void test_dtype_bf16_encode_midpoints(void) {
    check_encode_interesting(&T_BF16);
    CU_ASSERT_EQUAL(lq_f32_to_bf16(f32_of(0x7F7F7FFFu)), 0x7F7F);
    CU_ASSERT_EQUAL(lq_f32_to_bf16(f32_of(0x7F7F8000u)), 0x7F80); /* tie at the top -> Inf */
    CU_ASSERT_EQUAL(lq_f32_to_bf16(f32_of(0x3F808000u)), 0x3F80); /* tie -> even */
    CU_ASSERT_EQUAL(lq_f32_to_bf16(f32_of(0x3F818000u)), 0x3F82); /* tie -> even, up */
    CU_ASSERT_EQUAL(lq_f32_to_bf16(f32_of(0x00008000u)), 0x0000); /* subnormal tie -> 0 */
    CU_ASSERT_EQUAL(lq_f32_to_bf16(f32_of(0x00008001u)), 0x0001);
    CU_ASSERT_EQUAL(lq_f32_to_bf16(f32_of(0x007FFFFFu)), 0x0080); /* rounds up into the normals */
    CU_ASSERT_EQUAL(lq_f32_to_bf16(f32_of(0x7F800001u)), 0x7FC0); /* a NaN that truncation would make Inf */
    CU_ASSERT_EQUAL(lq_f32_to_bf16(f32_of(0xFF810000u)), 0xFFC1);
    CU_ASSERT_EQUAL(lq_f32_to_bf16(f32_of(0xFF800000u)), 0xFF80);
}

static void test_dtype_f8_encode_boundaries(void) {
    check_encode_interesting(&T_E4M3);
    check_encode_interesting(&T_E5M2);
    /* E4M3 (torch.float8_e4m3fn): 464 is the tie between 448 and the missing
     * 480 and goes to the even 448; anything above overflows to NaN, or to
     * 448 when saturating. */
    const float above464 = f32_of(0x43E80001u);
    CU_ASSERT_EQUAL(lq_f32_to_e4m3(448.0f), 0x7E);
    CU_ASSERT_EQUAL(lq_f32_to_e4m3(464.0f), 0x7E);
    CU_ASSERT_EQUAL(lq_f32_to_e4m3(-464.0f), 0xFE);
    CU_ASSERT_EQUAL(lq_f32_to_e4m3(above464), 0x7F);
    CU_ASSERT_EQUAL(lq_f32_to_e4m3(-above464), 0xFF);
    CU_ASSERT_EQUAL(lq_f32_to_e4m3(480.0f), 0x7F);
    CU_ASSERT_EQUAL(lq_f32_to_e4m3(1e30f), 0x7F);
    CU_ASSERT_EQUAL(lq_f32_to_e4m3(INFINITY), 0x7F);
    CU_ASSERT_EQUAL(lq_f32_to_e4m3(-INFINITY), 0xFF);
    CU_ASSERT_EQUAL(lq_f32_to_e4m3(NAN), 0x7F);
    CU_ASSERT_EQUAL(lq_f32_to_e4m3(-NAN), 0xFF);
    CU_ASSERT_EQUAL(lq_f32_to_e4m3_sat(464.0f), 0x7E);
    CU_ASSERT_EQUAL(lq_f32_to_e4m3_sat(above464), 0x7E);
    CU_ASSERT_EQUAL(lq_f32_to_e4m3_sat(-1e30f), 0xFE);
    CU_ASSERT_EQUAL(lq_f32_to_e4m3_sat(INFINITY), 0x7E);
    CU_ASSERT_EQUAL(lq_f32_to_e4m3_sat(-INFINITY), 0xFE);
    CU_ASSERT_EQUAL(lq_f32_to_e4m3_sat(-NAN), 0xFF);
    CU_ASSERT_EQUAL(lq_f32_to_e4m3(0x1p-9f), 0x01);           /* smallest subnormal */
    CU_ASSERT_EQUAL(lq_f32_to_e4m3(0x1p-10f), 0x00);          /* tie with 0 -> 0 */
    CU_ASSERT_EQUAL(lq_f32_to_e4m3(f32_of(0x3A800001u)), 0x01);
    CU_ASSERT_EQUAL(lq_f32_to_e4m3(0x1.8p-9f), 0x02);         /* tie 1|2 -> 2 */
    CU_ASSERT_EQUAL(lq_f32_to_e4m3(0x1.ep-7f), 0x08);         /* tie 7|8 -> min normal */
    CU_ASSERT_EQUAL(lq_f32_to_e4m3(0x1p-6f), 0x08);
    CU_ASSERT_EQUAL(lq_f32_to_e4m3(1.0f), 0x38);
    /* E5M2: IEEE-like, 61440 is the tie between 57344 and 65536 (Inf, even) */
    CU_ASSERT_EQUAL(lq_f32_to_e5m2(57344.0f), 0x7B);
    CU_ASSERT_EQUAL(lq_f32_to_e5m2(f32_of(0x476FFFFFu)), 0x7B);
    CU_ASSERT_EQUAL(lq_f32_to_e5m2(61440.0f), 0x7C);
    CU_ASSERT_EQUAL(lq_f32_to_e5m2(-1e30f), 0xFC);
    CU_ASSERT_EQUAL(lq_f32_to_e5m2(INFINITY), 0x7C);
    CU_ASSERT_EQUAL(lq_f32_to_e5m2(0x1p-16f), 0x01);
    CU_ASSERT_EQUAL(lq_f32_to_e5m2(0x1p-17f), 0x00);
    CU_ASSERT_EQUAL(lq_f32_to_e5m2(f32_of(0x37000001u)), 0x01);
    CU_ASSERT_EQUAL(lq_f32_to_e5m2(f32_of(0x7FC00000u)), 0x7E);
    CU_ASSERT_EQUAL(lq_f32_to_e5m2(f32_of(0xFFE00000u)), 0xFF);
    CU_ASSERT_EQUAL(lq_f32_to_e5m2(f32_of(0x7F800001u)), 0x7E); /* sNaN stays NaN */
    /* round trips of every code */
    for (uint32_t c = 0; c < 256; c++) {
        /* E4M3 has a single NaN code, so every code comes back as it was */
        const uint8_t b = (uint8_t)c;
        CU_ASSERT_EQUAL(lq_f32_to_e4m3(lq_e4m3_to_f32(b)), c);
        CU_ASSERT_EQUAL(lq_f32_to_e4m3_sat(lq_e4m3_to_f32(b)), c);
        const uint32_t back = lq_f32_to_e5m2(lq_e5m2_to_f32(b));
        CU_ASSERT_EQUAL(back, t_is_nan(&T_E5M2, c) ? c | 0x02u : c); /* NaNs come back quiet */
    }
}

/* every 16-bit code survives f32 and back; NaNs come back quiet */
static void test_dtype_16bit_round_trip(void) {
    unsigned bad_f16 = 0, bad_bf16 = 0;
    for (uint32_t c = 0; c < 65536; c++) {
        const uint16_t h     = (uint16_t)c;
        const uint32_t wantf = t_is_nan(&T_F16, c) ? c | 0x0200u : c;
        const uint32_t wantb = t_is_nan(&T_BF16, c) ? c | 0x0040u : c;
        bad_f16 += lq_f32_to_f16(lq_f16_to_f32(h)) != wantf;
        bad_bf16 += lq_f32_to_bf16(lq_bf16_to_f32(h)) != wantb;
    }
    CU_ASSERT_EQUAL(bad_f16, 0);
    CU_ASSERT_EQUAL(bad_bf16, 0);
}

/* random f32 bit patterns: half uniform over all 2^32, half with exponents
 * around the ranges of the narrow formats (2^-28 .. 2^19) */
static void fill_random_f32(uint32_t *v, size_t n, uint64_t seed) {
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        const uint64_t r = lq_test_rand(&s);
        uint32_t       u = (uint32_t)r;
        if (i & 1) u = (u & 0x807FFFFFu) | ((uint32_t)(99 + (r >> 32) % 48) << 23);
        v[i] = u;
    }
}

static void test_dtype_encode_random(void) {
    const uint64_t  seed = 0x5EED0001;
    const size_t    n    = (size_t)scaled(10000000, 100000);
    uint32_t *const in   = malloc(n * 4);
    uint16_t *const o16  = malloc(n * 2);
    uint16_t *const ob16 = malloc(n * 2);
    CU_ASSERT_FATAL(in && o16 && ob16);
    fill_random_f32(in, n, seed);
    const tfmt *const fmts[] = { &T_F16, &T_BF16, &T_E4M3, &T_E5M2 };
    for (int k = 0; k < 4; k++) (void)table_of(fmts[k]); /* built before the threads read them */
    /* the OpenMP kernels on the whole sample */
    CU_ASSERT_EQUAL(lq_convert_cpu(LQ_DTYPE_F16, o16, LQ_DTYPE_F32, in, (int64_t)n, 0), LQ_OK);
    CU_ASSERT_EQUAL(lq_convert_cpu(LQ_DTYPE_BF16, ob16, LQ_DTYPE_F32, in, (int64_t)n, 0), LQ_OK);
    long bad[6] = { 0 };
    long first  = -1;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) reduction(+ : bad[:6])
#endif
    for (long i = 0; i < (long)n; i++) {
        const float  f = f32_of(in[i]);
        const double x = f32_value(in[i]);
        bad[0] += !round_ok(&T_F16, x, lq_f32_to_f16(f), false) || o16[i] != lq_f32_to_f16(f);
        bad[1] += !round_ok(&T_BF16, x, lq_f32_to_bf16(f), false) || ob16[i] != lq_f32_to_bf16(f);
        if (i % 4 == 0) { /* 256 codes: a quarter of the sample is plenty */
            bad[2] += !round_ok(&T_E4M3, x, lq_f32_to_e4m3(f), false);
            bad[3] += !round_ok(&T_E4M3, x, lq_f32_to_e4m3_sat(f), true);
            bad[4] += !round_ok(&T_E5M2, x, lq_f32_to_e5m2(f), false);
        }
    }
    for (int k = 0; k < 5; k++) {
        if (bad[k]) printf("\n  random f32 (seed %#llx, n %zu): check %d failed %ld times", (unsigned long long)seed,
                           n, k, bad[k]);
        CU_ASSERT_EQUAL(bad[k], 0);
    }
    /* the first mismatch in detail, if any (serial, cheap) */
    for (size_t i = 0; i < n && first < 0 && (bad[0] || bad[1]); i++) {
        const float f = f32_of(in[i]);
        if (!round_ok(&T_F16, f32_value(in[i]), lq_f32_to_f16(f), false) || o16[i] != lq_f32_to_f16(f) ||
            !round_ok(&T_BF16, f32_value(in[i]), lq_f32_to_bf16(f), false) || ob16[i] != lq_f32_to_bf16(f)) {
            first = (long)i;
            printf("\n  test nb %ld: f32 %08x -> f16 %04x (cpu %04x), bf16 %04x (cpu %04x)", first, in[i],
                   lq_f32_to_f16(f), o16[i], lq_f32_to_bf16(f), ob16[i]);
        }
    }
    /* the reference kernel on a slice, through the narrow formats */
    const int64_t nr = (int64_t)(n < 1000000 ? n : 1000000);
    const tfmt *const narrow[] = { &T_F16, &T_BF16, &T_E4M3, &T_E5M2 };
    for (int k = 0; k < 4; k++) {
        CU_ASSERT_EQUAL(lq_convert_ref(narrow[k]->dt, o16, LQ_DTYPE_F32, in, nr), LQ_OK);
        long b = 0;
        for (int64_t i = 0; i < nr; i++) b += load_code(narrow[k], o16, (size_t)i) != encoder_of(narrow[k])(f32_of(in[i]));
        CU_ASSERT_EQUAL(b, 0);
    }
    free(in), free(o16), free(ob16);
}

/* ---- F64 sources: one rounding, straight from the double ---- */

static void test_dtype_f64_direct_rounding(void) {
    /* 1 + 2^-11 + 2^-40 lies just above the F16 midpoint 1 + 2^-11; through
     * F32 it would first round to that midpoint and then tie down to 1.0 */
    const double cases[][2] = {
        /* F16 */
        { 1.0 + 0x1p-11 + 0x1p-40, 0x3C01 }, { -(1.0 + 0x1p-11 + 0x1p-40), 0xBC01 },
        { 1.0 + 0x1p-11 - 0x1p-40, 0x3C00 }, { 1.0 + 0x1p-11, 0x3C00 },
        { 65520.0 - 0x1p-30, 0x7BFF }, { 0x1p-25 + 0x1p-60, 0x0001 }, { 0x1p-25, 0x0000 },
        { 1e300, 0x7C00 }, { 4.9e-324, 0x0000 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t r = 0xAAAA, c = 0x5555;
        CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_F16, &r, LQ_DTYPE_F64, &cases[i][0], 1), LQ_OK);
        CU_ASSERT_EQUAL(lq_convert_cpu(LQ_DTYPE_F16, &c, LQ_DTYPE_F64, &cases[i][0], 1, 1), LQ_OK);
        CU_ASSERT_EQUAL(r, (uint16_t)cases[i][1]);
        CU_ASSERT_EQUAL(c, (uint16_t)cases[i][1]);
    }
    {
        const double x[4] = { 1.0 + 0x1p-8 + 0x1p-40, 1.0 + 0x1p-4 + 0x1p-40, 1.0 + 0x1p-3 + 0x1p-40,
                              1.0 + 0x1p-24 + 0x1p-50 };
        uint16_t     b = 0;
        uint8_t      e4 = 0, e5 = 0;
        uint32_t     f = 0;
        CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_BF16, &b, LQ_DTYPE_F64, &x[0], 1), LQ_OK);
        CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_F8_E4M3, &e4, LQ_DTYPE_F64, &x[1], 1), LQ_OK);
        CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_F8_E5M2, &e5, LQ_DTYPE_F64, &x[2], 1), LQ_OK);
        CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_F32, &f, LQ_DTYPE_F64, &x[3], 1), LQ_OK);
        CU_ASSERT_EQUAL(b, 0x3F81);
        CU_ASSERT_EQUAL(e4, 0x39);
        CU_ASSERT_EQUAL(e5, 0x3D);
        CU_ASSERT_EQUAL(f, 0x3F800001u);
    }
    /* every midpoint of every narrow format, nudged by one F64 ulp each way */
    const tfmt *const fmts[] = { &T_F16, &T_BF16, &T_E4M3, &T_E5M2 };
    for (int k = 0; k < 4; k++) {
        const rtable *const t  = table_of(fmts[k]);
        const size_t        n  = ((size_t)t->max + 1) * 6;
        double *const       in = malloc(n * sizeof *in);
        void *const         r  = malloc(n * 2), *const c = malloc(n * 2);
        CU_ASSERT_FATAL(in && r && c);
        size_t m = 0;
        for (uint32_t q = 0; q <= t->max; q++) {
            const double mid = (t->v[q] + (q == t->max ? t->next : t->v[q + 1])) / 2;
            const double l[3] = { mid, nextafter(mid, INFINITY), nextafter(mid, 0.0) };
            for (int j = 0; j < 3; j++) in[m++] = l[j], in[m++] = -l[j];
        }
        CU_ASSERT_EQUAL(lq_convert_ref(fmts[k]->dt, r, LQ_DTYPE_F64, in, (int64_t)m), LQ_OK);
        CU_ASSERT_EQUAL(lq_convert_cpu(fmts[k]->dt, c, LQ_DTYPE_F64, in, (int64_t)m, 3), LQ_OK);
        unsigned bad = 0;
        for (size_t i = 0; i < m; i++) {
            const uint32_t want = ref_round(fmts[k], in[i], false);
            if ((load_code(fmts[k], r, i) != want || load_code(fmts[k], c, i) != want) && bad++ < MAX_REPORT)
                printf("\n  F64 -> %s: %a: ref %#x cpu %#x want %#x", fmts[k]->name, in[i], load_code(fmts[k], r, i),
                       load_code(fmts[k], c, i), want);
        }
        CU_ASSERT_EQUAL(bad, 0);
        free(in), free(r), free(c);
    }
    /* random doubles: F64 -> F32 against the cast, F32 -> F64 exact */
    uint64_t       s  = 0x5EED0002;
    const size_t   n  = (size_t)scaled(200000, 20000);
    double *const  d  = malloc(n * 8);
    float *const   fo = malloc(n * 4);
    double *const  db = malloc(n * 8);
    CU_ASSERT_FATAL(d && fo && db);
    for (size_t i = 0; i < n; i++) {
        const uint64_t r = lq_test_rand(&s);
        uint64_t       u = r;
        if (i % 4 != 3) u = (u & 0x800FFFFFFFFFFFFFu) | ((uint64_t)(1023 - 160 + (r >> 52) % 300) << 52);
        d[i] = f64_of(u);
    }
    CU_ASSERT_EQUAL(lq_convert_cpu(LQ_DTYPE_F32, fo, LQ_DTYPE_F64, d, (int64_t)n, 2), LQ_OK);
    CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_F64, db, LQ_DTYPE_F32, fo, (int64_t)n), LQ_OK);
    unsigned bad32 = 0, bad64 = 0;
    for (size_t i = 0; i < n; i++) {
        const uint32_t got = bits_f32(fo[i]);
        if (isnan(d[i])) {
            /* quiet, sign kept, top 22 payload bits kept */
            const uint64_t u      = bits_f64(d[i]);
            const uint32_t want   = (uint32_t)(u >> 32 & 0x80000000u) | 0x7FC00000u | (uint32_t)(u >> 29 & 0x3FFFFFu);
            const uint64_t want64 = ((uint64_t)(want & 0x80000000u) << 32) | 0x7FF8000000000000u |
                                    ((uint64_t)(want & 0x3FFFFFu) << 29);
            bad32 += got != want;
            bad64 += bits_f64(db[i]) != want64;
        } else {
            bad32 += got != bits_f32((float)d[i]);
            bad64 += bits_f64(db[i]) != bits_f64((double)fo[i]);
        }
    }
    CU_ASSERT_EQUAL(bad32, 0);
    CU_ASSERT_EQUAL(bad64, 0);
    free(d), free(fo), free(db);
}

/* ---- integers ---- */

typedef struct {
    lq_dtype t;
    int      bytes;
    bool     is_signed;
    int64_t  min;
    uint64_t max;
} tint;

static const tint INTS[] = {
    { LQ_DTYPE_BOOL, 1, false, 0, 1 },
    { LQ_DTYPE_U8, 1, false, 0, UINT8_MAX },
    { LQ_DTYPE_I8, 1, true, INT8_MIN, INT8_MAX },
    { LQ_DTYPE_I16, 2, true, INT16_MIN, INT16_MAX },
    { LQ_DTYPE_U16, 2, false, 0, UINT16_MAX },
    { LQ_DTYPE_I32, 4, true, INT32_MIN, INT32_MAX },
    { LQ_DTYPE_U32, 4, false, 0, UINT32_MAX },
    { LQ_DTYPE_I64, 8, true, INT64_MIN, INT64_MAX },
    { LQ_DTYPE_U64, 8, false, 0, UINT64_MAX },
};
#define N_INTS (sizeof INTS / sizeof INTS[0])

/* element i of an integer buffer as (negative?, magnitude) */
static void int_at(const tint *t, const void *buf, size_t i, bool *neg, uint64_t *mag) {
    uint64_t u = 0;
    memcpy(&u, (const unsigned char *)buf + i * (size_t)t->bytes, (size_t)t->bytes); /* little-endian */
    if (t->t == LQ_DTYPE_BOOL) u = u != 0;
    const int bits = 8 * t->bytes;
    *neg           = t->is_signed && ((u >> (bits - 1)) & 1);
    if (*neg) u = bits == 64 ? (uint64_t)0 - u : ((uint64_t)1 << bits) - u;
    *mag = u;
}

static void test_dtype_int_conversions(void) {
    uint8_t   src[64 * 8], ref[64 * 8], cpu[64 * 8];
    uint64_t  s = 0x5EED0003;
    lq_test_quiet(1);
    for (size_t a = 0; a < N_INTS; a++) {
        for (size_t b = 0; b < N_INTS; b++) {
            const tint *const st = &INTS[a], *const dt = &INTS[b];
            /* widening: the destination holds the whole source range */
            bool expect = dt->min <= st->min && dt->max >= st->max;
            if (dt->t == LQ_DTYPE_BOOL) expect = st->t == LQ_DTYPE_BOOL || st->t == LQ_DTYPE_U8;
            /* edge values and random ones */
            for (int i = 0; i < 64; i++) {
                uint64_t v = lq_test_rand(&s);
                if (i < 6) {
                    const uint64_t edge[6] = { 0, 1, st->max, (uint64_t)st->min, (uint64_t)-1, st->max - 1 };
                    v = edge[i];
                }
                memcpy(src + (size_t)i * (size_t)st->bytes, &v, (size_t)st->bytes);
            }
            lq_test_errors_logged();
            const lq_status rs = lq_convert_ref(dt->t, ref, st->t, src, 64);
            const lq_status cs = lq_convert_cpu(dt->t, cpu, st->t, src, 64, 2);
            CU_ASSERT_EQUAL(rs, expect ? LQ_OK : LQ_ERR_UNSUPPORTED);
            CU_ASSERT_EQUAL(cs, rs);
            if (!expect) {
                CU_ASSERT_EQUAL(lq_test_errors_logged(), 2);
                CU_ASSERT_PTR_NOT_NULL(strstr(lq_test_last_error(), lq_dtype_name(st->t)));
                CU_ASSERT_PTR_NOT_NULL(strstr(lq_test_last_error(), lq_dtype_name(dt->t)));
                continue;
            }
            CU_ASSERT_EQUAL(memcmp(ref, cpu, 64 * (size_t)dt->bytes), 0);
            if (st == dt) { /* same type: a byte copy, BOOL bytes included */
                CU_ASSERT_EQUAL(memcmp(ref, src, 64 * (size_t)dt->bytes), 0);
                continue;
            }
            unsigned bad = 0;
            for (size_t i = 0; i < 64; i++) {
                bool     sn, dn;
                uint64_t sm, dm;
                int_at(st, src, i, &sn, &sm);
                int_at(dt, ref, i, &dn, &dm);
                if (dt->t == LQ_DTYPE_BOOL) sm = sm != 0; /* U8 -> BOOL: non-zero is true */
                bad += sn != dn || sm != dm;
                if (dt->t == LQ_DTYPE_BOOL) bad += ref[i] > 1;
            }
            if (bad) printf("\n  %s -> %s: %u values changed", lq_dtype_name(st->t), lq_dtype_name(dt->t), bad);
            CU_ASSERT_EQUAL(bad, 0);
        }
    }
    lq_test_quiet(0);

    /* every I16 and U16 value into each float type */
    static uint16_t in16[65536];
    for (uint32_t i = 0; i < 65536; i++) in16[i] = (uint16_t)i;
    static uint8_t out[65536 * 8];
    const tfmt *const narrow[] = { &T_F16, &T_BF16, &T_E4M3, &T_E5M2 };
    for (int sgn = 0; sgn < 2; sgn++) {
        const lq_dtype st = sgn ? LQ_DTYPE_I16 : LQ_DTYPE_U16;
        for (int k = 0; k < 4; k++) {
            CU_ASSERT_EQUAL(lq_convert_cpu(narrow[k]->dt, out, st, in16, 65536, 2), LQ_OK);
            unsigned bad = 0;
            for (uint32_t i = 0; i < 65536; i++) {
                const double x = sgn ? (double)(int16_t)in16[i] : (double)in16[i];
                bad += load_code(narrow[k], out, i) != ref_round(narrow[k], x, false);
            }
            CU_ASSERT_EQUAL(bad, 0);
        }
        CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_F32, out, st, in16, 65536), LQ_OK);
        unsigned bad = 0;
        for (uint32_t i = 0; i < 65536; i++) {
            float f;
            memcpy(&f, out + 4 * i, 4);
            bad += f != (sgn ? (float)(int16_t)in16[i] : (float)in16[i]);
        }
        CU_ASSERT_EQUAL(bad, 0);
    }
    /* I32/U32/I64/U64 -> F32/F64 against the casts (one RNE) */
    const size_t n = 4096;
    int64_t *const v   = malloc(n * 8);
    int32_t *const v32 = malloc(n * 4);
    float *const   f   = malloc(n * 4);
    double *const  d   = malloc(n * 8);
    CU_ASSERT_FATAL(v && v32 && f && d);
    for (size_t i = 0; i < n; i++) {
        const uint64_t r = lq_test_rand(&s);
        const uint64_t m = r >> (r & 63); /* all magnitudes */
        const uint64_t u = (i & 1) ? (uint64_t)0 - m : m;
        memcpy(&v[i], &u, 8);
        const uint32_t w = (uint32_t)(u >> (r >> 58 & 31));
        memcpy(&v32[i], &w, 4);
    }
    const int64_t edges[] = { INT64_MIN, INT64_MAX, ((int64_t)1 << 53) + 1, ((int64_t)1 << 53) + 3,
                              ((int64_t)1 << 24) + 1, -(((int64_t)1 << 24) + 3), 0, -1 };
    memcpy(v, edges, sizeof edges);
    unsigned bad = 0;
    CU_ASSERT_EQUAL(lq_convert_cpu(LQ_DTYPE_F32, f, LQ_DTYPE_I64, v, (int64_t)n, 2), LQ_OK);
    CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_F64, d, LQ_DTYPE_I64, v, (int64_t)n), LQ_OK);
    for (size_t i = 0; i < n; i++) bad += bits_f32(f[i]) != bits_f32((float)v[i]) || d[i] != (double)v[i];
    CU_ASSERT_EQUAL(lq_convert_cpu(LQ_DTYPE_F32, f, LQ_DTYPE_U64, v, (int64_t)n, 2), LQ_OK);
    CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_F64, d, LQ_DTYPE_U64, v, (int64_t)n), LQ_OK);
    for (size_t i = 0; i < n; i++) bad += f[i] != (float)(uint64_t)v[i] || d[i] != (double)(uint64_t)v[i];
    CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_F32, f, LQ_DTYPE_I32, v32, (int64_t)n), LQ_OK);
    for (size_t i = 0; i < n; i++) bad += f[i] != (float)v32[i];
    CU_ASSERT_EQUAL(lq_convert_cpu(LQ_DTYPE_F32, f, LQ_DTYPE_U32, v32, (int64_t)n, 3), LQ_OK);
    for (size_t i = 0; i < n; i++) bad += f[i] != (float)(uint32_t)v32[i];
    CU_ASSERT_EQUAL(bad, 0);
    /* spelled out: 2^53 + 1 ties to even, U64 max is 2^64, overflow rules */
    const uint64_t big[3] = { ((uint64_t)1 << 53) + 1, UINT64_MAX, 300 };
    double         bd[3];
    uint16_t       bh[3];
    uint8_t        b8[3];
    CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_F64, bd, LQ_DTYPE_U64, big, 3), LQ_OK);
    CU_ASSERT(bd[0] == 0x1p53 && bd[1] == 0x1p64 && bd[2] == 300.0);
    CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_F16, bh, LQ_DTYPE_U64, big, 3), LQ_OK);
    CU_ASSERT(bh[0] == 0x7C00 && bh[1] == 0x7C00 && bh[2] == 0x5CB0);
    CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_F8_E4M3, b8, LQ_DTYPE_U64, big, 3), LQ_OK);
    CU_ASSERT(b8[0] == 0x7F && b8[1] == 0x7F && b8[2] == 0x79); /* 300 -> 288 */
    /* BOOL reads any non-zero byte as 1 */
    const uint8_t bools[4] = { 0, 1, 2, 255 };
    float         bf[4];
    uint8_t       bu[4];
    CU_ASSERT_EQUAL(lq_convert_cpu(LQ_DTYPE_F32, bf, LQ_DTYPE_BOOL, bools, 4, 1), LQ_OK);
    CU_ASSERT(bf[0] == 0.0f && bf[1] == 1.0f && bf[2] == 1.0f && bf[3] == 1.0f);
    CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_U8, bu, LQ_DTYPE_BOOL, bools, 4), LQ_OK);
    CU_ASSERT(bu[0] == 0 && bu[1] == 1 && bu[2] == 1 && bu[3] == 1);
    CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_BOOL, bu, LQ_DTYPE_U8, bools, 4), LQ_OK);
    CU_ASSERT(bu[0] == 0 && bu[1] == 1 && bu[2] == 1 && bu[3] == 1);
    free(v), free(v32), free(f), free(d);
}

/* ---- refusals ---- */

static void test_dtype_convert_refusals(void) {
    float    f[4] = { 1, 2, 3, 4 };
    uint32_t u[4];
    lq_test_quiet(1);
    /* float -> integer */
    CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_I32, u, LQ_DTYPE_F32, f, 4), LQ_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(lq_test_last_error(), "F32 -> I32"));
    CU_ASSERT_EQUAL(lq_convert_cpu(LQ_DTYPE_BOOL, u, LQ_DTYPE_F16, f, 4, 2), LQ_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(lq_convert_cpu(LQ_DTYPE_U8, u, LQ_DTYPE_F8_E4M3, f, 4, 2), LQ_ERR_UNSUPPORTED);
    /* dtypes that are never converted, either side, even for n = 0 */
    const lq_dtype opaque[] = { LQ_DTYPE_F8_E8M0, LQ_DTYPE_F8_E4M3FNUZ, LQ_DTYPE_F8_E5M2FNUZ, LQ_DTYPE_F4,
                                LQ_DTYPE_F6_E2M3, LQ_DTYPE_F6_E3M2, LQ_DTYPE_C64 };
    for (size_t i = 0; i < sizeof opaque / sizeof opaque[0]; i++) {
        lq_test_errors_logged();
        CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_F32, u, opaque[i], f, 1), LQ_ERR_UNSUPPORTED);
        CU_ASSERT_PTR_NOT_NULL(strstr(lq_test_last_error(), lq_dtype_name(opaque[i])));
        CU_ASSERT_EQUAL(lq_convert_cpu(opaque[i], u, LQ_DTYPE_F32, f, 1, 1), LQ_ERR_UNSUPPORTED);
        CU_ASSERT_EQUAL(lq_convert_cpu(opaque[i], u, opaque[i], f, 0, 1), LQ_ERR_UNSUPPORTED);
        CU_ASSERT_EQUAL(lq_test_errors_logged(), 3);
    }
    /* caller errors */
    CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_F16, u, LQ_DTYPE_F32, f, -1), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_convert_cpu(LQ_DTYPE_F16, u, LQ_DTYPE_F32, f, -5, 2), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_F16, NULL, LQ_DTYPE_F32, f, 1), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_convert_cpu(LQ_DTYPE_F16, u, LQ_DTYPE_F32, NULL, 1, 2), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_COUNT, u, LQ_DTYPE_F32, f, 1), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_convert_cpu(LQ_DTYPE_F32, u, (lq_dtype)-3, f, 1, 2), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_F16, (char *)f + 2, LQ_DTYPE_F32, f, 2), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_convert_cpu(LQ_DTYPE_F32, f, LQ_DTYPE_F32, f, 4, 2), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_convert_cpu(LQ_DTYPE_F64, f, LQ_DTYPE_F32, f + 1, 1, 2), LQ_ERR_INVALID_ARG);
    CU_ASSERT(lq_test_errors_logged() >= 9);
    lq_test_quiet(0);
    /* n = 0 needs no buffers; adjacent buffers are not overlapping */
    CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_F16, NULL, LQ_DTYPE_F32, NULL, 0), LQ_OK);
    CU_ASSERT_EQUAL(lq_convert_cpu(LQ_DTYPE_F16, NULL, LQ_DTYPE_F32, NULL, 0, 2), LQ_OK);
    CU_ASSERT_EQUAL(lq_convert_cpu(LQ_DTYPE_F32, f + 2, LQ_DTYPE_F32, f, 2, 2), LQ_OK);
    CU_ASSERT(f[2] == 1.0f && f[3] == 2.0f);
}

/* ---- lq_convert_cpu against lq_convert_ref on every pair ---- */

static const lq_dtype CONVERTIBLE[] = { LQ_DTYPE_BOOL, LQ_DTYPE_U8, LQ_DTYPE_I8, LQ_DTYPE_I16, LQ_DTYPE_U16,
                                        LQ_DTYPE_I32, LQ_DTYPE_U32, LQ_DTYPE_I64, LQ_DTYPE_U64, LQ_DTYPE_F16,
                                        LQ_DTYPE_BF16, LQ_DTYPE_F32, LQ_DTYPE_F64, LQ_DTYPE_F8_E4M3,
                                        LQ_DTYPE_F8_E5M2 };
#define N_CONV (sizeof CONVERTIBLE / sizeof CONVERTIBLE[0])

/* Random elements of dtype t with a good share of specials: for floats,
 * one in eight with a zero exponent field (zero, subnormal), one in eight
 * all-ones (Inf, NaN), half with exponents near 1, the rest uniform bits. */
static void fill_random(lq_dtype t, void *buf, int64_t n, uint64_t seed) {
    const size_t   sz = lq_dtype_traits_of(t)->bits / 8;
    uint64_t       s  = seed;
    /* integers and the 8-bit floats: uniform bits cover everything */
    const int eb = t == LQ_DTYPE_F16 ? 5 : t == LQ_DTYPE_BF16 || t == LQ_DTYPE_F32 ? 8 : t == LQ_DTYPE_F64 ? 11 : 0;
    const int mb = t == LQ_DTYPE_F16 ? 10 : t == LQ_DTYPE_BF16 ? 7 : t == LQ_DTYPE_F32 ? 23 : 52;
    for (int64_t i = 0; i < n; i++) {
        const uint64_t r = lq_test_rand(&s);
        uint64_t       u = lq_test_rand(&s);
        if (eb) {
            const uint64_t emask = ((uint64_t)1 << eb) - 1, bias = emask >> 1;
            const uint64_t mant  = u & (((uint64_t)1 << mb) - 1);
            const uint64_t sign  = (r >> 8) & 1;
            uint64_t       e     = (u >> mb) & emask;
            switch (r & 7) {
            case 0: e = 0; break;
            case 1: e = emask; break;
            case 2: case 3: case 4: case 5: {
                /* binades around 1: the whole range of the narrow formats */
                const uint64_t span = bias < 40 ? bias : 40;
                e                   = bias - span + (r >> 16) % (2 * span + 1);
                break;
            }
            default: break;
            }
            u = (sign << (eb + mb)) | (e << mb) | ((r & 0x70) == 0x70 ? 0 : mant);
        } else if (lq_dtype_traits_of(t)->bits >= 16 && (r & 7) == 0) {
            u = (r >> 8) % 601 - 300; /* small values, both signs */
        }
        memcpy((unsigned char *)buf + (size_t)i * sz, &u, sz);
    }
}

/* the pairs lq_convert_cpu has its own loops for: same-type copies and
 * conversions among F32, F16 and BF16 */
static bool hot_pair(lq_dtype dt, lq_dtype st) {
    const bool d = dt == LQ_DTYPE_F32 || dt == LQ_DTYPE_F16 || dt == LQ_DTYPE_BF16;
    const bool s = st == LQ_DTYPE_F32 || st == LQ_DTYPE_F16 || st == LQ_DTYPE_BF16;
    return dt == st || (d && s);
}

static void test_dtype_convert_parity(void) {
    /* 1000003 elements for the hot pairs; every other pair runs the
     * reference per chunk inside lq_convert_cpu, and 140009 elements (three
     * chunks of 64 Ki, the last one partial) exercise that at a tenth of the cost */
    const int64_t big_hot   = scaled(1000003, 140009);
    const int64_t big_other = 140009;
    const int64_t cap       = big_hot > big_other ? big_hot : big_other;
    const size_t  bytes     = (size_t)cap * 8 + 16;
    unsigned char *const src = malloc(bytes), *const r = malloc(bytes), *const c = malloc(bytes);
    CU_ASSERT_FATAL(src && r && c);
    const int threads[3] = { 1, 2, 3 };
    unsigned  n_pairs = 0;
    lq_test_quiet(1);
    for (size_t a = 0; a < N_CONV; a++) {
        const lq_dtype st = CONVERTIBLE[a];
        const uint64_t seed = 0x5EED1000 + a;
        memset(src, 0, 3);
        fill_random(st, src + 3, cap, seed);
        for (size_t b = 0; b < N_CONV; b++) {
            const lq_dtype dt     = CONVERTIBLE[b];
            const int64_t  sizes[4] = { 0, 1, 7, hot_pair(dt, st) ? big_hot : big_other };
            const size_t   dsz      = lq_dtype_traits_of(dt)->bits / 8;
            const lq_status rs = lq_convert_ref(dt, r + 1, st, src + 3, 7);
            if (rs != LQ_OK) {
                CU_ASSERT_EQUAL(rs, LQ_ERR_UNSUPPORTED);
                CU_ASSERT_EQUAL(lq_convert_cpu(dt, c + 1, st, src + 3, 7, 2), rs);
                continue;
            }
            n_pairs++;
            for (int si = 0; si < 4; si++) {
                const int64_t n = sizes[si];
                /* odd offsets for the small sizes and for 3 threads: unaligned rows */
                const size_t  so = si < 3 ? 3 : 0;
                memset(r, 0xA5, (size_t)n * dsz + 2);
                CU_ASSERT_EQUAL_FATAL(lq_convert_ref(dt, r + 1, st, src + so, n), LQ_OK);
                for (int ti = 0; ti < 3; ti++) {
                    const size_t do_ = ti == 2 ? 1 : 0;
                    memset(c, 0x5A, (size_t)n * dsz + 2);
                    CU_ASSERT_EQUAL(lq_convert_cpu(dt, c + do_, st, src + so, n, threads[ti]), LQ_OK);
                    if (n > 0 && memcmp(r + 1, c + do_, (size_t)n * dsz) != 0) {
                        int64_t i = 0;
                        while (memcmp(r + 1 + (size_t)i * dsz, c + do_ + (size_t)i * dsz, dsz) == 0) i++;
                        printf("\n  %s -> %s n=%lld threads=%d (seed %#llx, test nb %lld) differs",
                               lq_dtype_name(st), lq_dtype_name(dt), (long long)n, threads[ti],
                               (unsigned long long)seed, (long long)i);
                        CU_FAIL("lq_convert_cpu differs from lq_convert_ref");
                    }
                    /* nothing written past the end */
                    CU_ASSERT_EQUAL(c[do_ + (size_t)n * dsz], 0x5A);
                }
                CU_ASSERT_EQUAL(r[1 + (size_t)n * dsz], 0xA5);
            }
        }
    }
    lq_test_quiet(0);
    /* 15 dtypes: every float pair (36), int -> float (54), widening ints and BOOL/U8 */
    CU_ASSERT(n_pairs >= 36 + 54 + 9);
    /* the OpenMP default thread count gives the same bytes */
    fill_random(LQ_DTYPE_F32, src, big_hot, 0x5EED2000);
    CU_ASSERT_EQUAL(lq_convert_ref(LQ_DTYPE_BF16, r, LQ_DTYPE_F32, src, big_hot), LQ_OK);
    CU_ASSERT_EQUAL(lq_convert_cpu(LQ_DTYPE_BF16, c, LQ_DTYPE_F32, src, big_hot, 0), LQ_OK);
    CU_ASSERT_EQUAL(memcmp(r, c, (size_t)big_hot * 2), 0);
    free(src), free(r), free(c);
}

static void test_dtype_cleanup(void) {
    free_tables();
    CU_PASS("tables freed");
}

CU_pSuite lq_test_dtype_suite(void) {
    CU_pSuite s = lq_test_add_suite("dtype");
    LQ_ADD_TEST(s, test_dtype_traits_table);
    LQ_ADD_TEST(s, test_dtype_nbytes);
    LQ_ADD_TEST(s, test_dtype_f16_decode_all);
    LQ_ADD_TEST(s, test_dtype_bf16_decode_all);
    LQ_ADD_TEST(s, test_dtype_e4m3_decode_all);
    LQ_ADD_TEST(s, test_dtype_e5m2_decode_all);
    LQ_ADD_TEST(s, test_dtype_16bit_round_trip);
    LQ_ADD_TEST(s, test_dtype_f16_encode_midpoints);
    LQ_ADD_TEST(s, test_dtype_bf16_encode_midpoints);
    LQ_ADD_TEST(s, test_dtype_f8_encode_boundaries);
    LQ_ADD_TEST(s, test_dtype_encode_random);
    LQ_ADD_TEST(s, test_dtype_f64_direct_rounding);
    LQ_ADD_TEST(s, test_dtype_int_conversions);
    LQ_ADD_TEST(s, test_dtype_convert_refusals);
    LQ_ADD_TEST(s, test_dtype_convert_parity);
    LQ_ADD_TEST(s, test_dtype_cleanup);
    return s;
}
