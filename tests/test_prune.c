/* test_prune.c : magnitude and N:M pruning (libquant/prune.c) against the
 * sort-based oracle (per tensor, global over several tensors, F32/F16/BF16,
 * ties), Wanda against a selection-loop oracle, the streamed fill under arbitrary chunkings, and that pruned zeros
 * stay exact zeros after quantization to every type that can represent zero
 * (prune -> quantize -> dequantize). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lq_test.h"

/* a tensor of rows x cols random values in dtype dt, some repeated (ties) and some zero */
static lq_tensor_info make_tensor(const char *name, lq_dtype dt, int64_t rows, int64_t cols, uint64_t *s, float *f32) {
    const int64_t n = rows * cols;
    for (int64_t i = 0; i < n; i++) {
        const uint64_t r = lq_test_rand(s) % 16;
        f32[i]           = r == 0 ? 0.0f : r == 1 ? 0.25f : r == 2 ? -0.25f : lq_test_randf(s);
    }
    const size_t es = dt == LQ_DTYPE_F32 ? 4 : 2;
    void        *d  = malloc((size_t)n * es);
    CU_ASSERT_FATAL(lq_convert_ref(dt, d, LQ_DTYPE_F32, f32, n) == LQ_OK);
    CU_ASSERT_FATAL(lq_convert_ref(LQ_DTYPE_F32, f32, dt, d, n) == LQ_OK); /* f32 = the stored values exactly */
    lq_tensor_info t;
    memset(&t, 0, sizeof t);
    t.name     = name;
    t.dtype    = dt;
    t.n_dims   = 2;
    t.shape[0] = rows;
    t.shape[1] = cols;
    t.data     = d;
    t.nbytes   = (uint64_t)n * es;
    t.alias_of = -1;
    return t;
}

/* the pruned tensor through lq_prune_fill in chunks of `chunk` elements, as f32 */
static void fill_f32(lq_prune_rule *r, int64_t chunk, float *out) {
    const lq_tensor_info *t  = r->src;
    const size_t          es = t->dtype == LQ_DTYPE_F32 ? 4 : 2;
    uint8_t              *b  = malloc(t->nbytes);
    for (uint64_t off = 0; off < t->nbytes; off += (uint64_t)chunk * es) {
        const uint64_t nb = off + (uint64_t)chunk * es > t->nbytes ? t->nbytes - off : (uint64_t)chunk * es;
        CU_ASSERT_FATAL(lq_prune_fill(b + off, off, nb, r) == LQ_OK);
    }
    const int64_t n = (int64_t)(t->nbytes / es);
    CU_ASSERT_FATAL(lq_convert_ref(LQ_DTYPE_F32, out, t->dtype, b, n) == LQ_OK);
    free(b);
}

static int64_t mismatches(const float *a, const float *b, int64_t n) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += memcmp(&a[i], &b[i], 4) != 0 && !(a[i] == 0 && b[i] == 0);
    return bad;
}

static void test_magnitude_vs_oracle(void) {
    uint64_t       s     = 1;
    const lq_dtype dts[] = {LQ_DTYPE_F32, LQ_DTYPE_F16, LQ_DTYPE_BF16};
    int            cases = 0;
    for (int d = 0; d < 3; d++)
        for (int rep = 0; rep < 5; rep++) {
            const int64_t  R = 1 + (int64_t)(lq_test_rand(&s) % 60), C = 1 + (int64_t)(lq_test_rand(&s) % 300);
            float         *f = malloc((size_t)(R * C) * 4), *want = malloc((size_t)(R * C) * 4), *got = malloc((size_t)(R * C) * 4);
            lq_tensor_info t = make_tensor("model.layers.0.mlp.up_proj.weight", dts[d], R, C, &s, f);
            const int64_t  k = rep == 0 ? 0 : rep == 1 ? R * C : (int64_t)(lq_test_rand(&s) % (uint64_t)(R * C + 1));
            memcpy(want, f, (size_t)(R * C) * 4);
            CU_ASSERT_FATAL(lq_prune_magnitude_ref(want, R * C, k) == LQ_OK);
            lq_prune_rule r;
            memset(&r, 0, sizeof r);
            r.src = &t;
            CU_ASSERT_FATAL(lq_prune_select(&r, 1, k, 1 + rep % 2) == LQ_OK);
            CU_ASSERT_EQUAL(r.pruned, k);
            fill_f32(&r, 1 + rep * 7, got);
            CU_ASSERT_EQUAL(mismatches(got, want, R * C), 0);
            free((void *)(uintptr_t)t.data), free(f), free(want), free(got);
            cases++;
        }
    CU_ASSERT_EQUAL(cases, 15);
}

static void test_global_vs_oracle(void) {
    uint64_t       s = 2;
    const int64_t  R[3] = {17, 40, 3}, C[3] = {64, 33, 500};
    float         *f[3], *cat = malloc((17 * 64 + 40 * 33 + 3 * 500) * 4);
    lq_tensor_info t[3];
    lq_prune_rule  r[3];
    int64_t        off = 0;
    for (int i = 0; i < 3; i++) {
        f[i] = malloc((size_t)(R[i] * C[i]) * 4);
        t[i] = make_tensor("model.layers.0.self_attn.q_proj.weight", i == 1 ? LQ_DTYPE_F16 : LQ_DTYPE_F32, R[i], C[i],
                           &s, f[i]);
        memcpy(cat + off, f[i], (size_t)(R[i] * C[i]) * 4);
        off += R[i] * C[i];
        memset(&r[i], 0, sizeof r[i]);
        r[i].src = &t[i];
    }
    const int64_t k = off / 2 + 3;
    CU_ASSERT_FATAL(lq_prune_magnitude_ref(cat, off, k) == LQ_OK);
    CU_ASSERT_FATAL(lq_prune_select(r, 3, k, 2) == LQ_OK);
    CU_ASSERT_EQUAL(r[0].pruned + r[1].pruned + r[2].pruned, k);
    off = 0;
    for (int i = 0; i < 3; i++) {
        float *got = malloc((size_t)(R[i] * C[i]) * 4);
        fill_f32(&r[i], 100, got);
        CU_ASSERT_EQUAL(mismatches(got, cat + off, R[i] * C[i]), 0);
        off += R[i] * C[i];
        free(got), free(f[i]), free((void *)(uintptr_t)t[i].data);
    }
    free(cat);
    /* errors */
    float          nanv[4] = {1, NAN, 2, 3};
    lq_tensor_info tn      = t[0];
    tn.data = nanv, tn.dtype = LQ_DTYPE_F32, tn.shape[0] = 1, tn.shape[1] = 4, tn.nbytes = 16;
    lq_prune_rule rn;
    memset(&rn, 0, sizeof rn);
    rn.src = &tn;
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_prune_select(&rn, 1, 2, 1), LQ_ERR_FORMAT);
    tn.data = (float[4]){1, 2, 3, 4};
    CU_ASSERT_EQUAL(lq_prune_select(&rn, 1, 5, 1), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_prune_nm_rule(&rn, 2, 3), LQ_ERR_INVALID_ARG); /* 4 columns are not groups of 3 */
    CU_ASSERT_EQUAL(lq_prune_nm_rule(&rn, 4, 4), LQ_ERR_INVALID_ARG);
    lq_test_quiet(0);
}

static void test_nm_vs_oracle(void) {
    uint64_t  s = 3;
    const int pats[3][2] = {{2, 4}, {4, 8}, {1, 4}};
    for (int p = 0; p < 3; p++) {
        const int64_t  R = 13, C = 64;
        float         *f = malloc(R * C * 4), *want = malloc(R * C * 4), *got = malloc(R * C * 4);
        lq_tensor_info t = make_tensor("model.layers.0.mlp.down_proj.weight", p == 1 ? LQ_DTYPE_BF16 : LQ_DTYPE_F32, R,
                                       C, &s, f);
        memcpy(want, f, R * C * 4);
        CU_ASSERT_FATAL(lq_prune_nm_ref(want, R, C, pats[p][0], pats[p][1]) == LQ_OK);
        lq_prune_rule r;
        memset(&r, 0, sizeof r);
        r.src = &t;
        CU_ASSERT_FATAL(lq_prune_nm_rule(&r, pats[p][0], pats[p][1]) == LQ_OK);
        fill_f32(&r, 5, got); /* chunks that split groups */
        CU_ASSERT_EQUAL(mismatches(got, want, R * C), 0);
        /* every group keeps at most N non-zeros */
        int bad = 0;
        for (int64_t g0 = 0; g0 < R * C; g0 += pats[p][1]) {
            int nz = 0;
            for (int j = 0; j < pats[p][1]; j++) nz += got[g0 + j] != 0;
            bad += nz > pats[p][0];
        }
        CU_ASSERT_EQUAL(bad, 0);
        free((void *)(uintptr_t)t.data), free(f), free(want), free(got);
    }
}

static void test_wanda_vs_oracle(void) {
    uint64_t s = 5;
    for (int rep = 0; rep < 6; rep++) {
        const int64_t  R = 1 + (int64_t)(lq_test_rand(&s) % 20), C = 2 + (int64_t)(lq_test_rand(&s) % 200);
        float         *f = malloc((size_t)(R * C) * 4), *want = malloc((size_t)(R * C) * 4), *got = malloc((size_t)(R * C) * 4);
        double        *sq = malloc((size_t)C * sizeof *sq);
        lq_tensor_info t = make_tensor("model.layers.1.mlp.gate_proj.weight", rep % 2 ? LQ_DTYPE_F16 : LQ_DTYPE_F32, R, C,
                                       &s, f);
        for (int64_t j = 0; j < C; j++) sq[j] = rep == 0 ? 1.0 : (double)(lq_test_rand(&s) % 5); /* ties, zero norms */
        const double sp = (double)(lq_test_rand(&s) % 11) / 10;
        lq_prune_rule r;
        memset(&r, 0, sizeof r);
        r.src = &t;
        CU_ASSERT_FATAL(lq_prune_wanda_rule(&r, sq, sp) == LQ_OK);
        memcpy(want, f, (size_t)(R * C) * 4);
        CU_ASSERT_FATAL(lq_prune_wanda_ref(want, R, C, sq, r.row_k) == LQ_OK);
        fill_f32(&r, 3 + rep, got);
        CU_ASSERT_EQUAL(mismatches(got, want, R * C), 0);
        CU_ASSERT_EQUAL(r.row_k, (int64_t)(sp * (double)C + 0.5));
        if (rep == 0) { /* equal norms: Wanda is per-row magnitude */
            float *mag = malloc((size_t)C * 4);
            for (int64_t row = 0; row < R; row++) {
                memcpy(mag, f + row * C, (size_t)C * 4);
                CU_ASSERT_FATAL(lq_prune_magnitude_ref(mag, C, r.row_k) == LQ_OK);
                CU_ASSERT_EQUAL(mismatches(mag, got + row * C, C), 0);
            }
            free(mag);
        }
        free((void *)(uintptr_t)t.data), free(f), free(want), free(got), free(sq);
    }
}

/* prune -> quantize -> dequantize: the zeros stay exactly zero for every type that can represent 0 */
static void test_zeros_survive_quantization(void) {
    uint64_t      s = 4;
    const int64_t R = 8, C = 256;
    float        *w = malloc(R * C * 4), *back = malloc(R * C * 4);
    for (int64_t i = 0; i < R * C; i++) w[i] = lq_test_randf(&s) + (i % 7 == 0 ? 0.5f : 0.0f);
    CU_ASSERT_FATAL(lq_prune_magnitude_ref(w, R * C, R * C / 2) == LQ_OK);
    const lq_qtype ts[] = {LQ_QT_INT8_CH, LQ_QT_INT4_G32, LQ_QT_INT4_G32_ASYM, LQ_QT_INT4_CH_ASYM, LQ_QT_INT3_G32,
                           LQ_QT_INT2_G32_ASYM, LQ_QT_FP8_E4M3_CH, LQ_QT_Q8_0, LQ_QT_Q4_0, LQ_QT_Q5_0, LQ_QT_Q6_K};
    const lq_quant_params qp = lq_quant_default_params();
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        const uint64_t rb = lq_qtype_row_bytes(ts[i], C);
        const int64_t  ns = lq_qtype_n_scales(ts[i], R, C);
        uint8_t       *d  = malloc((size_t)(rb * R));
        float         *sc = ns ? malloc((size_t)ns * 4) : NULL;
        uint8_t       *z  = lq_qtype_has_zeros(ts[i]) ? malloc((size_t)ns) : NULL;
        CU_ASSERT_FATAL(lq_quantize_ref(ts[i], w, R, C, &qp, d, sc, z) == LQ_OK);
        CU_ASSERT_FATAL(lq_dequantize_ref(ts[i], d, sc, z, R, C, back) == LQ_OK);
        int64_t lost = 0;
        for (int64_t j = 0; j < R * C; j++) lost += w[j] == 0 && back[j] != 0;
        CU_ASSERT_EQUAL(lost, 0);
        if (lost) fprintf(stderr, "%s: %lld pruned zeros became non-zero\n", lq_qtype_name(ts[i]), (long long)lost);
        free(d), free(sc), free(z);
    }
    free(w);
    free(back);
}

CU_pSuite lq_test_prune_suite(void) {
    CU_pSuite s = lq_test_add_suite("prune");
    CU_add_test(s, "test_magnitude_vs_oracle", test_magnitude_vs_oracle);
    CU_add_test(s, "test_global_vs_oracle", test_global_vs_oracle);
    CU_add_test(s, "test_nm_vs_oracle", test_nm_vs_oracle);
    CU_add_test(s, "test_wanda_vs_oracle", test_wanda_vs_oracle);
    CU_add_test(s, "test_zeros_survive_quantization", test_zeros_survive_quantization);
    return s;
}
