/* test_gptq.c : the GPTQ solver for one Linear (lq_gptq_ref, lq_gptq_cpu) and
 * the Hessian accumulation (lq_hessian_accum_ref, _cpu):
 *   - H = c I gives exactly lq_quantize_ref's codes, scales and zeros;
 *   - ref vs OpenMP on correlated Hessians, OpenMP bit-identical for 1, 2
 *     and 3 threads, g_idx, GPTQ's objective below round-to-nearest's;
 *   - damping retries, bad input;
 *   - the numpy oracle's expected outputs (tests/data/gptq, written by
 *     tests/interop/make_gptq_fixtures.py with gptq_oracle.py), with the
 *     loss identity loss = 1/2 sum_r d_r H_damped d_r^T checked and RTN's
 *     loss under the same formula above GPTQ's.
 * Sections: helpers, solver tests, Hessian tests, oracle fixtures, and one
 * registration function at the end (engine tests go in test_gptq_engine.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lq_test.h"

/* ==== helpers ==== */

/* H = (2/n) X^T X for X (n x C) with correlated columns (x_j = z_j + 0.7 z_{j-1}) and optionally dead columns */
static double *make_hessian(int64_t C, int64_t n, uint64_t seed, int dead_every) {
    float  *x = malloc((size_t)(n * C) * sizeof *x);
    double *H = calloc((size_t)(C * C), sizeof *H);
    for (int64_t t = 0; t < n; t++) {
        float prev = 0;
        for (int64_t j = 0; j < C; j++) {
            const float z = lq_test_randf(&seed) * (1.0f + (float)(j % 7));
            x[t * C + j]  = dead_every && j % dead_every == 3 ? 0.f : z + 0.7f * prev;
            prev          = z;
        }
    }
    lq_hessian_accum_ref(H, x, n, C, 2.0 / (double)n);
    free(x);
    return H;
}

static float *make_weights(int64_t R, int64_t C, uint64_t seed) {
    float *w = malloc((size_t)(R * C) * sizeof *w);
    for (int64_t i = 0; i < R * C; i++) w[i] = 0.05f * lq_test_randf(&seed) * (i % 13 == 0 ? 4.f : 1.f);
    return w;
}

typedef struct {
    uint8_t      *data;
    float        *scales;
    uint8_t      *zeros;
    int32_t      *g_idx;
    lq_gptq_stats st;
} qout;

static void qout_alloc(qout *o, lq_qtype t, int64_t R, int64_t C) {
    memset(o, 0, sizeof *o);
    o->data   = calloc((size_t)(lq_qtype_row_bytes(t, C) * (uint64_t)R), 1);
    o->scales = calloc((size_t)lq_qtype_n_scales(t, R, C), sizeof(float));
    o->zeros  = calloc((size_t)lq_qtype_n_scales(t, R, C), 1);
    o->g_idx  = calloc((size_t)C, sizeof(int32_t));
}

static void qout_free(qout *o) {
    free(o->data);
    free(o->scales);
    free(o->zeros);
    free(o->g_idx);
}

/* code k of an LSB-first bit-stream row */
static unsigned code_at(const uint8_t *row, int64_t k, int bits) {
    const uint64_t bit = (uint64_t)k * (uint64_t)bits;
    const uint8_t *b   = row + (bit >> 3);
    unsigned       v   = b[0];
    if ((bit & 7) + (uint64_t)bits > 8) v |= (unsigned)b[1] << 8;
    return (v >> (bit & 7)) & ((1u << bits) - 1u);
}

/* dequantize with g_idx (or k / G when NULL) into out (R x C) */
static void dequant(lq_qtype t, const qout *o, int64_t R, int64_t C, float *out) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(t);
    const int64_t          G = tr->group ? tr->group : C, ng = lq_qtype_n_groups(t, C);
    const uint64_t         rb = lq_qtype_row_bytes(t, C);
    for (int64_t r = 0; r < R; r++)
        for (int64_t k = 0; k < C; k++) {
            const unsigned u = code_at(o->data + r * rb, k, tr->bits);
            const int64_t  g = o->g_idx ? o->g_idx[k] : k / G;
            const int      z = tr->sym ? 1 << (tr->bits - 1) : o->zeros[r * ng + g];
            out[r * C + k]   = o->scales[r * ng + g] * (float)((int)u - z);
        }
}

/* sum_r (w_r - q_r) H (w_r - q_r)^T * scale, the H diagonal plus diag_add (dead diagonals as 1 when dead1) */
static double objective(const float *w, const float *q, int64_t R, int64_t C, const double *H, double diag_add,
                        bool dead1) {
    double  total = 0;
    double *d     = malloc((size_t)C * sizeof *d);
    for (int64_t r = 0; r < R; r++) {
        for (int64_t j = 0; j < C; j++) d[j] = (double)w[r * C + j] - (double)q[r * C + j];
        for (int64_t i = 0; i < C; i++) {
            double a = 0;
            for (int64_t j = 0; j < C; j++) {
                double h = H[i * C + j];
                if (i == j) h = (dead1 && h == 0 ? 1.0 : h) + diag_add;
                a += h * d[j];
            }
            total += d[i] * a;
        }
    }
    free(d);
    return total;
}

static double code_agreement(const uint8_t *a, const uint8_t *b, lq_qtype t, int64_t R, int64_t C) {
    const int      bits = lq_qtype_traits_of(t)->bits;
    const uint64_t rb   = lq_qtype_row_bytes(t, C);
    int64_t        same = 0;
    for (int64_t r = 0; r < R; r++)
        for (int64_t k = 0; k < C; k++) same += code_at(a + r * rb, k, bits) == code_at(b + r * rb, k, bits);
    return (double)same / (double)(R * C);
}

static size_t data_bytes(lq_qtype t, int64_t R, int64_t C) {
    return (size_t)(lq_qtype_row_bytes(t, C) * (uint64_t)R);
}

/* ==== solver tests ==== */

/* H = c I: no error feedback (U is diagonal), so GPTQ is round-to-nearest with lq_quantize_ref's rule */
static void test_identity_hessian_is_rtn(void) {
    const lq_qtype types[] = {LQ_QT_INT4_G32,      LQ_QT_INT4_G128_ASYM, LQ_QT_INT8_CH, LQ_QT_INT3_CH,
                              LQ_QT_INT2_G64,      LQ_QT_INT8_G32_ASYM,  LQ_QT_INT3_G64_ASYM,
                              LQ_QT_INT2_CH_ASYM};
    const int64_t  R = 24, C = 256;
    float         *w = make_weights(R, C, 11);
    double        *H = calloc((size_t)(C * C), sizeof *H);
    for (int64_t j = 0; j < C; j++) H[j * C + j] = 3.0;
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
        for (int act = 0; act < 2; act++) { /* equal diagonals: the stable act-order permutation is the identity */
            const lq_qtype ty = types[t];
            qout           a, b, rtn;
            qout_alloc(&a, ty, R, C);
            qout_alloc(&b, ty, R, C);
            qout_alloc(&rtn, ty, R, C);
            lq_gptq_params p = lq_gptq_default_params();
            p.qtype          = ty;
            p.act_order      = act;
            CU_ASSERT_FATAL(lq_gptq_ref(&p, w, R, C, H, a.data, a.scales, a.zeros, a.g_idx, &a.st) == LQ_OK);
            CU_ASSERT_FATAL(lq_gptq_cpu(&p, w, R, C, H, b.data, b.scales, b.zeros, b.g_idx, &b.st, 2) == LQ_OK);
            CU_ASSERT_FATAL(lq_quantize_ref(ty, w, R, C, NULL, rtn.data, rtn.scales, rtn.zeros) == LQ_OK);
            const size_t nb = data_bytes(ty, R, C), ns = (size_t)lq_qtype_n_scales(ty, R, C);
            CU_ASSERT(memcmp(a.data, rtn.data, nb) == 0);
            CU_ASSERT(memcmp(a.scales, rtn.scales, ns * 4) == 0);
            CU_ASSERT(memcmp(b.data, rtn.data, nb) == 0);
            CU_ASSERT(memcmp(b.scales, rtn.scales, ns * 4) == 0);
            if (lq_qtype_has_zeros(ty)) {
                CU_ASSERT(memcmp(a.zeros, rtn.zeros, ns) == 0);
                CU_ASSERT(memcmp(b.zeros, rtn.zeros, ns) == 0);
            }
            for (int64_t k = 0; k < C; k++) CU_ASSERT_EQUAL(a.g_idx[k], lq_qtype_traits_of(ty)->group ? k / lq_qtype_traits_of(ty)->group : 0);
            CU_ASSERT_EQUAL(a.st.retries, 0);
            CU_ASSERT_EQUAL(a.st.dead_cols, 0);
            qout_free(&a);
            qout_free(&b);
            qout_free(&rtn);
        }
    free(w);
    free(H);
}

/* ref vs OpenMP on correlated Hessians; OpenMP with 1, 2 and 3 threads bit-identical; g_idx; GPTQ's objective
 * tr((W-Q) H (W-Q)^T) below RTN's */
static void test_ref_cpu_and_objective(void) {
    struct {
        lq_qtype t;
        bool     act, stat, mse;
        int      dead;
        int64_t  R, C;
        int      block;
    } cases[] = {{LQ_QT_INT4_G32, false, false, false, 0, 40, 256, 128},
                 {LQ_QT_INT4_G128, true, false, false, 0, 40, 256, 128},
                 {LQ_QT_INT4_G64_ASYM, true, true, false, 9, 40, 256, 128},
                 {LQ_QT_INT3_CH, true, false, false, 0, 40, 256, 128},
                 {LQ_QT_INT2_G32, false, false, true, 0, 40, 256, 128},
                 {LQ_QT_INT8_CH_ASYM, false, false, false, 11, 40, 256, 128},
                 {LQ_QT_INT4_G32_ASYM, true, false, true, 0, 40, 256, 128},
                 {LQ_QT_INT4_G128, false, true, false, 0, 40, 256, 128},
                 /* odd shapes: partial Cholesky blocks, register tiles and row tiles; a block width that is not a
                  * multiple of the group (the refit quirk inside blocks) */
                 {LQ_QT_INT4_G32, true, false, false, 0, 301, 416, 48},
                 {LQ_QT_INT3_CH_ASYM, false, false, false, 7, 13, 173, 100},
                 {LQ_QT_INT8_G64, true, false, false, 0, 9, 320, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int64_t  R = cases[c].R, C = cases[c].C;
        float         *w = make_weights(R, C, 5 + c), *q = malloc((size_t)(R * C) * 4);
        double        *H = make_hessian(C, 2 * C + 88, 100 + c, cases[c].dead);
        lq_gptq_params p = lq_gptq_default_params();
        p.qtype          = cases[c].t;
        p.act_order      = cases[c].act;
        p.static_groups  = cases[c].stat;
        p.mse            = cases[c].mse;
        p.block_size     = cases[c].block;
        qout a, b, b1, b3, rtn;
        qout_alloc(&a, p.qtype, R, C);
        qout_alloc(&b, p.qtype, R, C);
        qout_alloc(&b1, p.qtype, R, C);
        qout_alloc(&b3, p.qtype, R, C);
        qout_alloc(&rtn, p.qtype, R, C);
        CU_ASSERT_FATAL(lq_gptq_ref(&p, w, R, C, H, a.data, a.scales, a.zeros, a.g_idx, &a.st) == LQ_OK);
        CU_ASSERT_FATAL(lq_gptq_cpu(&p, w, R, C, H, b.data, b.scales, b.zeros, b.g_idx, &b.st, 2) == LQ_OK);
        CU_ASSERT_FATAL(lq_gptq_cpu(&p, w, R, C, H, b1.data, b1.scales, b1.zeros, b1.g_idx, &b1.st, 1) == LQ_OK);
        CU_ASSERT_FATAL(lq_gptq_cpu(&p, w, R, C, H, b3.data, b3.scales, b3.zeros, b3.g_idx, &b3.st, 3) == LQ_OK);
        const size_t nb = data_bytes(p.qtype, R, C), ns = (size_t)lq_qtype_n_scales(p.qtype, R, C);
        CU_ASSERT(memcmp(b.data, b1.data, nb) == 0 && memcmp(b.scales, b1.scales, ns * 4) == 0);
        CU_ASSERT(memcmp(b.data, b3.data, nb) == 0 && memcmp(b.scales, b3.scales, ns * 4) == 0);
        CU_ASSERT(memcmp(b.zeros, b1.zeros, ns) == 0 && memcmp(b.zeros, b3.zeros, ns) == 0);
        CU_ASSERT_EQUAL(b.st.loss, b1.st.loss);
        CU_ASSERT_EQUAL(b.st.loss, b3.st.loss);
        const double agree = code_agreement(a.data, b.data, p.qtype, R, C);
        CU_ASSERT(agree >= 0.995);
        CU_ASSERT(fabs(a.st.loss - b.st.loss) <= 1e-3 * a.st.loss);
        CU_ASSERT_EQUAL(a.st.dead_cols, cases[c].dead ? (C + cases[c].dead - 4) / cases[c].dead : 0);
        CU_ASSERT_EQUAL(a.st.dead_cols, b.st.dead_cols);
        CU_ASSERT_EQUAL(a.st.retries, b.st.retries);
        CU_ASSERT(memcmp(a.g_idx, b.g_idx, (size_t)C * 4) == 0);
        /* g_idx: every group has exactly G members */
        const lq_qtype_traits *tr = lq_qtype_traits_of(p.qtype);
        const int64_t          G = tr->group ? tr->group : C, ng = lq_qtype_n_groups(p.qtype, C);
        int64_t               *cnt = calloc((size_t)ng, sizeof *cnt);
        for (int64_t k = 0; k < C; k++) {
            CU_ASSERT(a.g_idx[k] >= 0 && a.g_idx[k] < ng);
            if (a.g_idx[k] >= 0 && a.g_idx[k] < ng) cnt[a.g_idx[k]]++;
            if (!p.act_order || p.static_groups) CU_ASSERT_EQUAL(a.g_idx[k], k / G);
        }
        for (int64_t g = 0; g < ng; g++) CU_ASSERT_EQUAL(cnt[g], G);
        free(cnt);
        /* the objective: GPTQ below round-to-nearest */
        CU_ASSERT_FATAL(lq_quantize_ref(p.qtype, w, R, C, NULL, rtn.data, rtn.scales, rtn.zeros) == LQ_OK);
        free(rtn.g_idx);
        rtn.g_idx = NULL;
        dequant(p.qtype, &rtn, R, C, q);
        const double e_rtn = objective(w, q, R, C, H, 0, false);
        dequant(p.qtype, &a, R, C, q);
        const double e_gptq = objective(w, q, R, C, H, 0, false);
        CU_ASSERT(e_gptq < e_rtn);
        if (agree < 0.995 || !(e_gptq < e_rtn))
            printf("\n  case %zu (%s): ref/cpu agreement %.4f, objective gptq %.6g rtn %.6g\n", c,
                   lq_qtype_name(p.qtype), agree, e_gptq, e_rtn);
        qout_free(&a);
        qout_free(&b);
        qout_free(&b1);
        qout_free(&b3);
        qout_free(&rtn);
        free(H);
        free(w);
        free(q);
    }
}

static void test_damping_and_errors(void) {
    const int64_t R = 4, C = 32;
    float        *w = make_weights(R, C, 3);
    double       *H = calloc((size_t)(C * C), sizeof *H);
    for (int64_t j = 0; j < C; j++) H[j * C + j] = 1.0;
    /* an eigenvalue of -0.015: damping 0.01 fails, 0.02 succeeds */
    H[0 * C + 1] = H[1 * C + 0] = 1.015;
    lq_gptq_params p = lq_gptq_default_params();
    p.qtype          = LQ_QT_INT4_G32;
    qout o;
    qout_alloc(&o, p.qtype, R, C);
    CU_ASSERT_EQUAL(lq_gptq_ref(&p, w, R, C, H, o.data, o.scales, o.zeros, o.g_idx, &o.st), LQ_OK);
    CU_ASSERT_EQUAL(o.st.retries, 1);
    CU_ASSERT(fabs(o.st.damp - 0.02) < 1e-12);
    CU_ASSERT(isfinite(o.st.loss));
    for (int64_t i = 0; i < R; i++) CU_ASSERT(isfinite(o.scales[i]) && o.scales[i] > 0);
    CU_ASSERT_EQUAL(lq_gptq_cpu(&p, w, R, C, H, o.data, o.scales, o.zeros, o.g_idx, &o.st, 2), LQ_OK);
    CU_ASSERT_EQUAL(o.st.retries, 1);
    CU_ASSERT(fabs(o.st.damp - 0.02) < 1e-12);
    CU_ASSERT(isfinite(o.st.loss));
    /* -0.5: beyond every retry */
    H[0 * C + 1] = H[1 * C + 0] = 1.5;
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_gptq_ref(&p, w, R, C, H, o.data, o.scales, o.zeros, o.g_idx, &o.st), LQ_ERR_NUMERIC);
    CU_ASSERT_EQUAL(lq_gptq_cpu(&p, w, R, C, H, o.data, o.scales, o.zeros, o.g_idx, &o.st, 2), LQ_ERR_NUMERIC);
    CU_ASSERT_EQUAL(o.st.retries, 11);
    H[0 * C + 1] = H[1 * C + 0] = 0;
    w[5]         = NAN;
    CU_ASSERT_EQUAL(lq_gptq_ref(&p, w, R, C, H, o.data, o.scales, o.zeros, o.g_idx, &o.st), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_gptq_cpu(&p, w, R, C, H, o.data, o.scales, o.zeros, o.g_idx, &o.st, 2), LQ_ERR_INVALID_ARG);
    w[5] = 0;
    H[7] = INFINITY;
    CU_ASSERT_EQUAL(lq_gptq_ref(&p, w, R, C, H, o.data, o.scales, o.zeros, o.g_idx, &o.st), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_gptq_cpu(&p, w, R, C, H, o.data, o.scales, o.zeros, o.g_idx, &o.st, 2), LQ_ERR_INVALID_ARG);
    H[7] = NAN;
    CU_ASSERT_EQUAL(lq_gptq_cpu(&p, w, R, C, H, o.data, o.scales, o.zeros, o.g_idx, &o.st, 2), LQ_ERR_INVALID_ARG);
    H[7]    = 0;
    p.qtype = LQ_QT_FP8_E4M3_CH;
    CU_ASSERT_EQUAL(lq_gptq_ref(&p, w, R, C, H, o.data, o.scales, o.zeros, o.g_idx, &o.st), LQ_ERR_SHAPE);
    CU_ASSERT_EQUAL(lq_gptq_cpu(&p, w, R, C, H, o.data, o.scales, o.zeros, o.g_idx, &o.st, 2), LQ_ERR_SHAPE);
    p.qtype = LQ_QT_Q4_0;
    CU_ASSERT_EQUAL(lq_gptq_cpu(&p, w, R, C, H, o.data, o.scales, o.zeros, o.g_idx, &o.st, 2), LQ_ERR_SHAPE);
    p.qtype = LQ_QT_INT4_G64; /* 32 columns are not a multiple of 64 */
    CU_ASSERT_EQUAL(lq_gptq_cpu(&p, w, R, C, H, o.data, o.scales, o.zeros, o.g_idx, &o.st, 2), LQ_ERR_SHAPE);
    p.qtype     = LQ_QT_INT4_G32;
    p.act_order = true;
    CU_ASSERT_EQUAL(lq_gptq_ref(&p, w, R, C, H, o.data, o.scales, o.zeros, NULL, &o.st), LQ_ERR_INVALID_ARG);
    /* g_idx may be NULL with static groups (it is k / G) or without act-order */
    p.static_groups = true;
    CU_ASSERT_EQUAL(lq_gptq_cpu(&p, w, R, C, H, o.data, o.scales, o.zeros, NULL, &o.st, 2), LQ_OK);
    p.act_order = p.static_groups = false;
    CU_ASSERT_EQUAL(lq_gptq_ref(&p, w, R, C, H, o.data, o.scales, o.zeros, NULL, &o.st), LQ_OK);
    p.qtype = LQ_QT_INT4_G32_ASYM; /* asym needs zeros */
    CU_ASSERT_EQUAL(lq_gptq_cpu(&p, w, R, C, H, o.data, o.scales, NULL, o.g_idx, &o.st, 2), LQ_ERR_INVALID_ARG);
    lq_test_quiet(0);
    qout_free(&o);
    free(w);
    free(H);
}

/* ==== Hessian accumulation ==== */

static void test_hessian_accum(void) {
    /* several passes of chunks (1100 rows) and several column strips (300 columns) */
    const int64_t n = 1100, C = 300;
    uint64_t      s = 9;
    float        *x = malloc((size_t)(n * C) * sizeof *x);
    for (int64_t i = 0; i < n * C; i++) x[i] = lq_test_randf(&s) * (1.f + (float)(i % C % 5));
    double *a = calloc((size_t)(C * C), sizeof *a), *b = calloc((size_t)(C * C), sizeof *b);
    double *b1 = calloc((size_t)(C * C), sizeof *b1), *b3 = calloc((size_t)(C * C), sizeof *b3);
    for (int64_t i = 0; i < C * C; i++) a[i] = b[i] = b1[i] = b3[i] = 0.25 * (double)(i % 3); /* accumulates */
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < i; j++) a[i * C + j] = b[i * C + j] = b1[i * C + j] = b3[i * C + j] = a[j * C + i];
    lq_hessian_accum_ref(a, x, n, C, 0.5);
    CU_ASSERT_EQUAL(lq_hessian_accum_cpu(b, x, n, C, 0.5, 2), LQ_OK);
    CU_ASSERT_EQUAL(lq_hessian_accum_cpu(b1, x, n, C, 0.5, 1), LQ_OK);
    CU_ASSERT_EQUAL(lq_hessian_accum_cpu(b3, x, n, C, 0.5, 3), LQ_OK);
    /* relative to each entry's scale sqrt(H_ii H_jj) (off-diagonal sums cancel: |H_ij| itself can be ~0) */
    double worst = 0;
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < C; j++)
            worst = fmax(worst, fabs(a[i * C + j] - b[i * C + j]) / sqrt(a[i * C + i] * a[j * C + j]));
    CU_ASSERT(worst < 1e-5);
    printf("\n  hessian %lld x %lld, %lld rows: cpu vs ref within %.2g of sqrt(H_ii H_jj) ", (long long)C, (long long)C,
           (long long)n, worst);
    CU_ASSERT(memcmp(b, b1, (size_t)(C * C) * sizeof *b) == 0);
    CU_ASSERT(memcmp(b, b3, (size_t)(C * C) * sizeof *b) == 0);
    int asym = 0;
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < C; j++) asym += b[i * C + j] != b[j * C + i];
    CU_ASSERT_EQUAL(asym, 0);
    /* a short call (one partial chunk) and a narrow one */
    memset(a, 0, (size_t)(C * C) * sizeof *a);
    memset(b, 0, (size_t)(C * C) * sizeof *b);
    lq_hessian_accum_ref(a, x, 7, 5, 1.0);
    CU_ASSERT_EQUAL(lq_hessian_accum_cpu(b, x, 7, 5, 1.0, 2), LQ_OK);
    for (int64_t i = 0; i < 25; i++) CU_ASSERT(fabs(a[i] - b[i]) <= 1e-5 * (fabs(a[i]) + 1.0));
    CU_ASSERT_EQUAL(lq_hessian_accum_cpu(b, x, 0, 5, 1.0, 2), LQ_OK);
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_hessian_accum_cpu(NULL, x, 7, 5, 1.0, 2), LQ_ERR_INVALID_ARG);
    lq_test_quiet(0);
    free(x), free(a), free(b), free(b1), free(b3);
}

/* ==== the numpy oracle's expected outputs (tests/data/gptq) ==== */

static const char *meta_str(const lq_json *meta, const char *cs, const char *key) {
    char k[256];
    snprintf(k, sizeof k, "%s.%s", cs, key);
    const char *v = lq_json_get_str(lq_json_get(meta, k));
    CU_ASSERT_FATAL(v != NULL);
    return v;
}

static const lq_tensor_info *need(const lq_safetensors *st, const char *cs, const char *key) {
    char k[256];
    snprintf(k, sizeof k, "%s%s%s", cs, *cs ? "." : "", key);
    const lq_tensor_info *t = lq_safetensors_find(st, k);
    CU_ASSERT_FATAL(t != NULL);
    return t;
}

/* distance in units in the last place of the scale dtype between two positive scales */
static int64_t scale_ulps(float a, float b, lq_dtype sd) {
    if (sd == LQ_DTYPE_F16) return llabs((int64_t)lq_f32_to_f16(a) - (int64_t)lq_f32_to_f16(b));
    if (sd == LQ_DTYPE_BF16) return llabs((int64_t)lq_f32_to_bf16(a) - (int64_t)lq_f32_to_bf16(b));
    uint32_t ua, ub;
    memcpy(&ua, &a, 4);
    memcpy(&ub, &b, 4);
    return llabs((int64_t)ua - (int64_t)ub);
}

/* one case of one fixture file, both solvers */
static void oracle_case(const lq_safetensors *st, const char *file, const char *cs) {
    const lq_json *meta = lq_safetensors_metadata(st);
    lq_gptq_params p    = lq_gptq_default_params();
    CU_ASSERT_FATAL(lq_qtype_from_name(meta_str(meta, cs, "qtype"), &p.qtype) == LQ_OK);
    p.act_order     = !strcmp(meta_str(meta, cs, "act_order"), "1");
    p.static_groups = !strcmp(meta_str(meta, cs, "static_groups"), "1");
    p.mse           = !strcmp(meta_str(meta, cs, "mse"), "1");
    p.damp          = strtod(meta_str(meta, cs, "damp"), NULL);
    p.block_size    = atoi(meta_str(meta, cs, "block_size"));
    CU_ASSERT_FATAL(lq_dtype_from_name(meta_str(meta, cs, "scale_dtype"), strlen(meta_str(meta, cs, "scale_dtype")),
                                       &p.scale_dtype) == LQ_OK);
    const lq_tensor_info *tw = need(st, "", meta_str(meta, cs, "weight")), *th = need(st, "", "H");
    const lq_tensor_info *tq = need(st, cs, "codes"), *ts = need(st, cs, "scales"), *tg = need(st, cs, "g_idx");
    const lq_tensor_info *tl = need(st, cs, "loss");
    const bool            asym = lq_qtype_has_zeros(p.qtype);
    const lq_tensor_info *tz   = asym ? need(st, cs, "zeros") : NULL;
    const int64_t         R = tw->shape[0], C = tw->shape[1], ng = lq_qtype_n_groups(p.qtype, C);
    CU_ASSERT_FATAL(tw->dtype == LQ_DTYPE_F32 && th->dtype == LQ_DTYPE_F64 && tq->dtype == LQ_DTYPE_U8);
    CU_ASSERT_FATAL(th->shape[0] == C && th->shape[1] == C && tq->shape[0] == R && tq->shape[1] == C);
    CU_ASSERT_FATAL(ts->shape[0] == R && ts->shape[1] == ng && tg->shape[0] == C);
    const float   *w = tw->data;
    const double  *H = th->data, want_loss = ((const double *)tl->data)[0];
    const int      bits = lq_qtype_traits_of(p.qtype)->bits;
    const uint64_t rb   = lq_qtype_row_bytes(p.qtype, C);
    float         *q    = malloc((size_t)(R * C) * sizeof *q);
    double         loss[2] = {0, 0}, damp = 0;
    printf("\n  %-16s %-28s", file, cs);
    for (int impl = 0; impl < 2; impl++) {
        qout o;
        qout_alloc(&o, p.qtype, R, C);
        const lq_status s = impl ? lq_gptq_cpu(&p, w, R, C, H, o.data, o.scales, o.zeros, o.g_idx, &o.st, 2)
                                 : lq_gptq_ref(&p, w, R, C, H, o.data, o.scales, o.zeros, o.g_idx, &o.st);
        CU_ASSERT_FATAL(s == LQ_OK);
        const uint8_t *want = tq->data;
        int64_t        same = 0, same_s = 0, same_z = 0, worst_ulp = 0, worst_dz = 0;
        for (int64_t r = 0; r < R; r++)
            for (int64_t k = 0; k < C; k++) same += code_at(o.data + r * rb, k, bits) == want[r * C + k];
        for (int64_t i = 0; i < R * ng; i++) {
            const float   ws = ((const float *)ts->data)[i];
            const int64_t du = scale_ulps(o.scales[i], ws, p.scale_dtype);
            same_s += o.scales[i] == ws;
            worst_ulp = du > worst_ulp ? du : worst_ulp;
            if (tz) {
                const int64_t dz = llabs((int64_t)o.zeros[i] - (int64_t)((const uint8_t *)tz->data)[i]);
                same_z += dz == 0;
                worst_dz = dz > worst_dz ? dz : worst_dz;
            }
        }
        const double agree = (double)same / (double)(R * C), agree_s = (double)same_s / (double)(R * ng);
        const double rel   = fabs(o.st.loss - want_loss) / want_loss;
        CU_ASSERT(agree >= 0.995);
        CU_ASSERT(worst_ulp <= 1);
        CU_ASSERT(worst_dz <= 1);
        CU_ASSERT(memcmp(o.g_idx, tg->data, (size_t)C * 4) == 0);
        CU_ASSERT(rel <= (same == R * C ? 1e-6 : 1e-3));
        printf(" %s codes %7.3f%% scales %7.3f%%", impl ? "| cpu" : "ref", 100 * agree, 100 * agree_s);
        if (tz) printf(" zeros %7.3f%%", 100.0 * (double)same_z / (double)(R * ng));
        printf(" loss %.1e", rel);
        loss[impl] = o.st.loss;
        damp       = o.st.damp;
        if (!impl) { /* the loss identity: 1/2 sum_r d_r H_damped d_r^T, d = W (dead columns 0) - Q */
            CU_ASSERT_FATAL(o.st.retries < 6);
            double mean = 0;
            for (int64_t j = 0; j < C; j++) mean += H[j * C + j] == 0 ? 1.0 : H[j * C + j];
            mean /= (double)C;
            float *wd = malloc((size_t)(R * C) * sizeof *wd);
            for (int64_t r = 0; r < R; r++)
                for (int64_t j = 0; j < C; j++) wd[r * C + j] = H[j * C + j] == 0 ? 0.f : w[r * C + j];
            dequant(p.qtype, &o, R, C, q);
            const double obj_gptq = 0.5 * objective(wd, q, R, C, H, damp * mean, true);
            CU_ASSERT(fabs(obj_gptq - o.st.loss) <= 1e-6 * o.st.loss);
            /* round-to-nearest under the same formula */
            qout rtn;
            qout_alloc(&rtn, p.qtype, R, C);
            CU_ASSERT_FATAL(lq_quantize_ref(p.qtype, wd, R, C, NULL, rtn.data, rtn.scales, rtn.zeros) == LQ_OK);
            free(rtn.g_idx);
            rtn.g_idx = NULL;
            dequant(p.qtype, &rtn, R, C, q);
            const double obj_rtn = 0.5 * objective(wd, q, R, C, H, damp * mean, true);
            CU_ASSERT(obj_gptq < obj_rtn);
            printf(" (rtn/gptq %.2f)", obj_rtn / obj_gptq);
            qout_free(&rtn);
            free(wd);
        }
        qout_free(&o);
    }
    CU_ASSERT(fabs(loss[0] - loss[1]) <= 1e-3 * loss[0]);
    free(q);
}

static void test_oracle_fixtures(void) {
    const char *files[] = {"random", "random_dead", "stories_l0_x", "stories_l0_down"};
    int         n_cases = 0;
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char path[512];
        snprintf(path, sizeof path, "tests/data/gptq/%s.safetensors", files[f]);
        lq_safetensors *st = NULL;
        CU_ASSERT_FATAL(lq_safetensors_open(path, &st) == LQ_OK);
        const lq_json *meta = lq_safetensors_metadata(st);
        CU_ASSERT_FATAL(meta != NULL);
        const char *list = lq_json_get_str(lq_json_get(meta, "cases"));
        CU_ASSERT_FATAL(list != NULL);
        for (const char *c = list; *c;) {
            const char *e = strchr(c, ',');
            const size_t len = e ? (size_t)(e - c) : strlen(c);
            char         cs[128];
            CU_ASSERT_FATAL(len > 0 && len < sizeof cs);
            memcpy(cs, c, len);
            cs[len] = 0;
            oracle_case(st, files[f], cs);
            n_cases++;
            c += len + (e ? 1 : 0);
        }
        lq_safetensors_close(st);
    }
    printf("\n  %d oracle cases ", n_cases);
    CU_ASSERT_EQUAL(n_cases, 26);
}

/* ==== registration ==== */

CU_pSuite lq_test_gptq_suite(void) {
    CU_pSuite s = lq_test_add_suite("gptq");
    /* solver */
    LQ_ADD_TEST(s, test_identity_hessian_is_rtn);
    LQ_ADD_TEST(s, test_ref_cpu_and_objective);
    LQ_ADD_TEST(s, test_damping_and_errors);
    /* Hessian accumulation */
    LQ_ADD_TEST(s, test_hessian_accum);
    /* the numpy oracle */
    LQ_ADD_TEST(s, test_oracle_fixtures);
    return s;
}
