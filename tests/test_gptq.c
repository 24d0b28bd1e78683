/* test_gptq.c : the GPTQ solver (lq_gptq_ref, lq_gptq_cpu) and the Hessian
 * accumulation: identity Hessian = round-to-nearest, ref vs OpenMP, thread
 * count invariance, act-order g_idx, the objective tr((W-Q) H (W-Q)^T)
 * below RTN's, damping retries, bad input; and the numpy oracle's expected
 * outputs (tests/data/gptq, written by tests/interop/gptq_oracle.py). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lq_test.h"

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
    uint8_t *data;
    float   *scales;
    uint8_t *zeros;
    int32_t *g_idx;
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

/* dequantize with g_idx (or k / G) into out (R x C) */
static void dequant(lq_qtype t, const qout *o, int64_t R, int64_t C, float *out) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(t);
    const int64_t          G  = tr->group ? tr->group : C, ng = lq_qtype_n_groups(t, C);
    const uint64_t         rb = lq_qtype_row_bytes(t, C);
    for (int64_t r = 0; r < R; r++)
        for (int64_t k = 0; k < C; k++) {
            const uint64_t bit = (uint64_t)k * (uint64_t)tr->bits;
            const uint8_t *b   = o->data + r * rb + (bit >> 3);
            unsigned       v   = b[0];
            if ((bit & 7) + (uint64_t)tr->bits > 8) v |= (unsigned)b[1] << 8;
            const unsigned u = (v >> (bit & 7)) & ((1u << tr->bits) - 1u);
            const int64_t  g = o->g_idx ? o->g_idx[k] : k / G;
            const int      z = tr->sym ? 1 << (tr->bits - 1) : o->zeros[r * ng + g];
            out[r * C + k]   = o->scales[r * ng + g] * (float)((int)u - z);
        }
}

/* the GPTQ objective sum_r (w_r - q_r)^T H (w_r - q_r) */
static double objective(const float *w, const float *q, int64_t R, int64_t C, const double *H) {
    double total = 0;
    double *d    = malloc((size_t)C * sizeof *d);
    for (int64_t r = 0; r < R; r++) {
        for (int64_t j = 0; j < C; j++) d[j] = (double)w[r * C + j] - (double)q[r * C + j];
        for (int64_t i = 0; i < C; i++) {
            double a = 0;
            for (int64_t j = 0; j < C; j++) a += H[i * C + j] * d[j];
            total += d[i] * a;
        }
    }
    free(d);
    return total;
}

static void test_identity_hessian_is_rtn(void) {
    const lq_qtype types[] = {LQ_QT_INT4_G32, LQ_QT_INT4_G128_ASYM, LQ_QT_INT8_CH, LQ_QT_INT3_CH, LQ_QT_INT2_G64,
                              LQ_QT_INT8_G32_ASYM};
    const int64_t  R = 24, C = 256;
    float         *w = make_weights(R, C, 11);
    double        *H = calloc((size_t)(C * C), sizeof *H);
    for (int64_t j = 0; j < C; j++) H[j * C + j] = 3.0;
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        const lq_qtype ty = types[t];
        qout           a, b, rtn;
        qout_alloc(&a, ty, R, C);
        qout_alloc(&b, ty, R, C);
        qout_alloc(&rtn, ty, R, C);
        lq_gptq_params p = lq_gptq_default_params();
        p.qtype          = ty;
        CU_ASSERT_FATAL(lq_gptq_ref(&p, w, R, C, H, a.data, a.scales, a.zeros, a.g_idx, &a.st) == LQ_OK);
        CU_ASSERT_FATAL(lq_gptq_cpu(&p, w, R, C, H, b.data, b.scales, b.zeros, b.g_idx, &b.st, 2) == LQ_OK);
        CU_ASSERT_FATAL(lq_quantize_ref(ty, w, R, C, NULL, rtn.data, rtn.scales, rtn.zeros) == LQ_OK);
        const size_t nb = (size_t)(lq_qtype_row_bytes(ty, C) * (uint64_t)R), ns = (size_t)lq_qtype_n_scales(ty, R, C);
        CU_ASSERT(memcmp(a.data, rtn.data, nb) == 0);
        CU_ASSERT(memcmp(a.scales, rtn.scales, ns * 4) == 0);
        CU_ASSERT(memcmp(b.data, rtn.data, nb) == 0);
        CU_ASSERT(memcmp(b.scales, rtn.scales, ns * 4) == 0);
        if (lq_qtype_has_zeros(ty)) CU_ASSERT(memcmp(a.zeros, rtn.zeros, ns) == 0);
        CU_ASSERT_EQUAL(a.st.retries, 0);
        qout_free(&a);
        qout_free(&b);
        qout_free(&rtn);
    }
    free(w);
    free(H);
}

static double agreement(const uint8_t *a, const uint8_t *b, lq_qtype t, int64_t R, int64_t C) {
    const int      bits = lq_qtype_traits_of(t)->bits;
    const uint64_t rb   = lq_qtype_row_bytes(t, C);
    int64_t        same = 0;
    for (int64_t r = 0; r < R; r++)
        for (int64_t k = 0; k < C; k++) {
            const uint64_t bit = (uint64_t)k * (uint64_t)bits;
            unsigned       x = a[r * rb + (bit >> 3)] | (unsigned)((bit & 7) + (uint64_t)bits > 8 ? a[r * rb + (bit >> 3) + 1] << 8 : 0);
            unsigned       y = b[r * rb + (bit >> 3)] | (unsigned)((bit & 7) + (uint64_t)bits > 8 ? b[r * rb + (bit >> 3) + 1] << 8 : 0);
            same += ((x >> (bit & 7)) & ((1u << bits) - 1u)) == ((y >> (bit & 7)) & ((1u << bits) - 1u));
        }
    return (double)same / (double)(R * C);
}

/* ref vs OpenMP on correlated Hessians; OpenMP with 1 and 2 threads bit-identical; GPTQ's objective below RTN's */
static void test_ref_cpu_and_objective(void) {
    struct {
        lq_qtype t;
        bool     act, stat, mse;
        int      dead;
    } cases[] = {{LQ_QT_INT4_G32, false, false, false, 0},   {LQ_QT_INT4_G128, true, false, false, 0},
                 {LQ_QT_INT4_G64_ASYM, true, true, false, 9}, {LQ_QT_INT3_CH, true, false, false, 0},
                 {LQ_QT_INT2_G32, false, false, true, 0},     {LQ_QT_INT8_CH_ASYM, false, false, false, 11},
                 {LQ_QT_INT4_G32_ASYM, true, false, true, 0}, {LQ_QT_INT4_G128, false, true, false, 0}};
    const int64_t R = 40, C = 256;
    float        *w = make_weights(R, C, 5), *q = malloc((size_t)(R * C) * 4);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double        *H = make_hessian(C, 600, 100 + c, cases[c].dead);
        lq_gptq_params p = lq_gptq_default_params();
        p.qtype          = cases[c].t;
        p.act_order      = cases[c].act;
        p.static_groups  = cases[c].stat;
        p.mse            = cases[c].mse;
        qout a, b, b1, rtn;
        qout_alloc(&a, p.qtype, R, C);
        qout_alloc(&b, p.qtype, R, C);
        qout_alloc(&b1, p.qtype, R, C);
        qout_alloc(&rtn, p.qtype, R, C);
        CU_ASSERT_FATAL(lq_gptq_ref(&p, w, R, C, H, a.data, a.scales, a.zeros, a.g_idx, &a.st) == LQ_OK);
        CU_ASSERT_FATAL(lq_gptq_cpu(&p, w, R, C, H, b.data, b.scales, b.zeros, b.g_idx, &b.st, 2) == LQ_OK);
        CU_ASSERT_FATAL(lq_gptq_cpu(&p, w, R, C, H, b1.data, b1.scales, b1.zeros, b1.g_idx, &b1.st, 1) == LQ_OK);
        const size_t nb = (size_t)(lq_qtype_row_bytes(p.qtype, C) * (uint64_t)R);
        const size_t ns = (size_t)lq_qtype_n_scales(p.qtype, R, C);
        CU_ASSERT(memcmp(b.data, b1.data, nb) == 0 && memcmp(b.scales, b1.scales, ns * 4) == 0);
        CU_ASSERT_EQUAL(b.st.loss, b1.st.loss);
        const double agree = agreement(a.data, b.data, p.qtype, R, C);
        CU_ASSERT(agree >= 0.995);
        CU_ASSERT(fabs(a.st.loss - b.st.loss) <= 1e-3 * a.st.loss);
        CU_ASSERT_EQUAL(a.st.dead_cols, cases[c].dead ? (C + cases[c].dead - 4) / cases[c].dead : 0);
        CU_ASSERT(memcmp(a.g_idx, b.g_idx, (size_t)C * 4) == 0);
        /* g_idx: every group has exactly G members */
        const lq_qtype_traits *tr = lq_qtype_traits_of(p.qtype);
        const int64_t          G = tr->group ? tr->group : C, ng = lq_qtype_n_groups(p.qtype, C);
        int64_t                cnt[256] = {0};
        for (int64_t k = 0; k < C; k++) {
            CU_ASSERT(a.g_idx[k] >= 0 && a.g_idx[k] < ng);
            if (a.g_idx[k] >= 0 && a.g_idx[k] < 256) cnt[a.g_idx[k]]++;
            if (!p.act_order || p.static_groups) CU_ASSERT_EQUAL(a.g_idx[k], k / G);
        }
        for (int64_t g = 0; g < ng; g++) CU_ASSERT_EQUAL(cnt[g], G);
        /* the objective: GPTQ below round-to-nearest */
        CU_ASSERT_FATAL(lq_quantize_ref(p.qtype, w, R, C, NULL, rtn.data, rtn.scales, rtn.zeros) == LQ_OK);
        free(rtn.g_idx);
        rtn.g_idx = NULL;
        dequant(p.qtype, &rtn, R, C, q);
        const double e_rtn = objective(w, q, R, C, H);
        dequant(p.qtype, &a, R, C, q);
        const double e_gptq = objective(w, q, R, C, H);
        CU_ASSERT(e_gptq < e_rtn);
        if (agree < 0.995 || !(e_gptq < e_rtn))
            fprintf(stderr, "\n  case %zu (%s): ref/cpu agreement %.4f, objective gptq %.6g rtn %.6g\n", c,
                    lq_qtype_name(p.qtype), agree, e_gptq, e_rtn);
        qout_free(&a);
        qout_free(&b);
        qout_free(&b1);
        qout_free(&rtn);
        free(H);
    }
    free(w);
    free(q);
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
    CU_ASSERT_EQUAL(lq_gptq_cpu(&p, w, R, C, H, o.data, o.scales, o.zeros, o.g_idx, &o.st, 2), LQ_OK);
    CU_ASSERT_EQUAL(o.st.retries, 1);
    /* -0.5: beyond every retry */
    H[0 * C + 1] = H[1 * C + 0] = 1.5;
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_gptq_ref(&p, w, R, C, H, o.data, o.scales, o.zeros, o.g_idx, &o.st), LQ_ERR_NUMERIC);
    CU_ASSERT_EQUAL(lq_gptq_cpu(&p, w, R, C, H, o.data, o.scales, o.zeros, o.g_idx, &o.st, 2), LQ_ERR_NUMERIC);
    CU_ASSERT_EQUAL(o.st.retries, 11);
    H[0 * C + 1] = H[1 * C + 0] = 0;
    w[5]         = NAN;
    CU_ASSERT_EQUAL(lq_gptq_ref(&p, w, R, C, H, o.data, o.scales, o.zeros, o.g_idx, &o.st), LQ_ERR_INVALID_ARG);
    w[5]  = 0;
    H[7] = INFINITY;
    CU_ASSERT_EQUAL(lq_gptq_cpu(&p, w, R, C, H, o.data, o.scales, o.zeros, o.g_idx, &o.st, 2), LQ_ERR_INVALID_ARG);
    H[7]    = 0;
    p.qtype = LQ_QT_FP8_E4M3_CH;
    CU_ASSERT_EQUAL(lq_gptq_ref(&p, w, R, C, H, o.data, o.scales, o.zeros, o.g_idx, &o.st), LQ_ERR_SHAPE);
    p.qtype = LQ_QT_INT4_G64; /* 32 columns are not a multiple of 64 */
    CU_ASSERT_EQUAL(lq_gptq_cpu(&p, w, R, C, H, o.data, o.scales, o.zeros, o.g_idx, &o.st, 2), LQ_ERR_SHAPE);
    p.qtype     = LQ_QT_INT4_G32;
    p.act_order = true;
    CU_ASSERT_EQUAL(lq_gptq_ref(&p, w, R, C, H, o.data, o.scales, o.zeros, NULL, &o.st), LQ_ERR_INVALID_ARG);
    lq_test_quiet(0);
    qout_free(&o);
    free(w);
    free(H);
}

static void test_hessian_accum(void) {
    const int64_t n = 700, C = 72;
    uint64_t      s = 9;
    float        *x = malloc((size_t)(n * C) * sizeof *x);
    for (int64_t i = 0; i < n * C; i++) x[i] = lq_test_randf(&s);
    double *a = calloc((size_t)(C * C), sizeof *a), *b = calloc((size_t)(C * C), sizeof *b);
    double *b1 = calloc((size_t)(C * C), sizeof *b1);
    lq_hessian_accum_ref(a, x, n, C, 0.5);
    CU_ASSERT_EQUAL(lq_hessian_accum_cpu(b, x, n, C, 0.5, 2), LQ_OK);
    CU_ASSERT_EQUAL(lq_hessian_accum_cpu(b1, x, n, C, 0.5, 1), LQ_OK);
    double worst = 0;
    for (int64_t i = 0; i < C * C; i++) worst = fmax(worst, fabs(a[i] - b[i]) / (fabs(a[i]) + 1.0));
    CU_ASSERT(worst < 1e-5);
    CU_ASSERT(memcmp(b, b1, (size_t)(C * C) * sizeof *b) == 0);
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < C; j++) CU_ASSERT_EQUAL(b[i * C + j], b[j * C + i]);
    free(x), free(a), free(b), free(b1);
}

/* ---- the numpy oracle's expected outputs ---- */
static const lq_tensor_info *need(const lq_safetensors *st, const char *name) {
    const lq_tensor_info *t = lq_safetensors_find(st, name);
    CU_ASSERT_FATAL(t != NULL);
    return t;
}

static void test_oracle_fixtures(void) {
    const char *cases[] = {"random_int4_g32",        "random_int4_g128_act",   "random_int3_ch_act",
                           "random_int2_g64_asym",   "random_int8_ch_asym",    "random_int4_g32_static_act",
                           "random_int4_g64_mse",    "random_int4_g32_dead",   "stories_l0_q_proj_int4_g32",
                           "stories_l0_q_proj_int3_g32_act", "stories_l0_k_proj_int4_g64_asym",
                           "stories_l0_down_proj_int4_ch", "stories_l0_gate_proj_int2_g32_act"};
    int n_cases = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char path[512];
        snprintf(path, sizeof path, "tests/data/gptq/%s.safetensors", cases[c]);
        lq_safetensors *st = NULL;
        CU_ASSERT_FATAL(lq_safetensors_open(path, &st) == LQ_OK);
        const lq_json *meta = lq_safetensors_metadata(st);
        CU_ASSERT_FATAL(meta != NULL);
        lq_gptq_params p = lq_gptq_default_params();
        CU_ASSERT_FATAL(lq_qtype_from_name(lq_json_get_str(lq_json_get(meta, "qtype")), &p.qtype) == LQ_OK);
        p.act_order     = !strcmp(lq_json_get_str(lq_json_get(meta, "act_order")), "1");
        p.static_groups = !strcmp(lq_json_get_str(lq_json_get(meta, "static_groups")), "1");
        p.mse           = !strcmp(lq_json_get_str(lq_json_get(meta, "mse")), "1");
        const lq_tensor_info *tw = need(st, "W"), *th = need(st, "H"), *tq = need(st, "codes");
        const lq_tensor_info *ts = need(st, "scales"), *tg = need(st, "g_idx"), *tl = need(st, "loss");
        const lq_tensor_info *tz = lq_safetensors_find(st, "zeros");
        const int64_t R = tw->shape[0], C = tw->shape[1], ng = lq_qtype_n_groups(p.qtype, C);
        CU_ASSERT_FATAL(tw->dtype == LQ_DTYPE_F32 && th->dtype == LQ_DTYPE_F64 && tq->dtype == LQ_DTYPE_U8);
        for (int impl = 0; impl < 2; impl++) {
            qout o;
            qout_alloc(&o, p.qtype, R, C);
            const lq_status s = impl ? lq_gptq_cpu(&p, tw->data, R, C, th->data, o.data, o.scales, o.zeros, o.g_idx,
                                                   &o.st, 2)
                                     : lq_gptq_ref(&p, tw->data, R, C, th->data, o.data, o.scales, o.zeros, o.g_idx,
                                                   &o.st);
            CU_ASSERT_FATAL(s == LQ_OK);
            const int      bits = lq_qtype_traits_of(p.qtype)->bits;
            const uint64_t rb   = lq_qtype_row_bytes(p.qtype, C);
            const uint8_t *want = tq->data;
            int64_t        same = 0, same_s = 0;
            for (int64_t r = 0; r < R; r++)
                for (int64_t k = 0; k < C; k++) {
                    const uint64_t bit = (uint64_t)k * (uint64_t)bits;
                    const uint8_t *b   = o.data + r * rb + (bit >> 3);
                    unsigned       v   = b[0];
                    if ((bit & 7) + (uint64_t)bits > 8) v |= (unsigned)b[1] << 8;
                    same += ((v >> (bit & 7)) & ((1u << bits) - 1u)) == want[r * C + k];
                }
            for (int64_t i = 0; i < R * ng; i++) same_s += o.scales[i] == ((const float *)ts->data)[i];
            const double agree = (double)same / (double)(R * C), agree_s = (double)same_s / (double)(R * ng);
            CU_ASSERT(agree >= 0.995);
            CU_ASSERT(agree_s >= 0.99);
            CU_ASSERT(memcmp(o.g_idx, tg->data, (size_t)C * 4) == 0);
            if (tz && lq_qtype_has_zeros(p.qtype)) {
                int64_t zs = 0;
                for (int64_t i = 0; i < R * ng; i++) zs += o.zeros[i] == ((const uint8_t *)tz->data)[i];
                CU_ASSERT((double)zs / (double)(R * ng) >= 0.99);
            }
            const double want_loss = ((const double *)tl->data)[0];
            CU_ASSERT(fabs(o.st.loss - want_loss) <= (same == R * C ? 1e-6 : 1e-2) * want_loss);
            if (agree < 0.995 || agree_s < 0.99)
                fprintf(stderr, "\n  oracle %s (%s): codes agree %.5f, scales %.5f, loss %.8g vs %.8g\n", cases[c],
                        impl ? "cpu" : "ref", agree, agree_s, o.st.loss, want_loss);
            qout_free(&o);
        }
        n_cases++;
        lq_safetensors_close(st);
    }
    CU_ASSERT_EQUAL(n_cases, (int)(sizeof cases / sizeof cases[0]));
}

CU_pSuite lq_test_gptq_suite(void) {
    CU_pSuite s = lq_test_add_suite("gptq");
    LQ_ADD_TEST(s, test_identity_hessian_is_rtn);
    LQ_ADD_TEST(s, test_ref_cpu_and_objective);
    LQ_ADD_TEST(s, test_damping_and_errors);
    LQ_ADD_TEST(s, test_hessian_accum);
    LQ_ADD_TEST(s, test_oracle_fixtures);
    return s;
}
