/* test_w8a8.c : W8A8 static int8 (lq_weight.in_scale): activation
 * quantization ref vs OpenMP (ties, clamping), the int8 GEMM ref vs OpenMP
 * vs an int64 loop on odd shapes, the matmul against a float64 emulation
 * and across thread counts, compressed-tensors int-quantized written and
 * read back with its input scale, and the GPTQ and GGUF refusals. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lq_test.h"

static void test_quantize_act(void) {
    const float x[10] = {0.5f, 1.5f, 2.5f, -0.5f, -2.5f, 1000.f, -1000.f, 127.4f, -128.6f, 0.f};
    int8_t      a[10], b[10];
    lq_quantize_act_i8_ref(x, 10, 1.0f, a);
    lq_quantize_act_i8_cpu(x, 10, 1.0f, b, 2);
    const int8_t want[10] = {0, 2, 2, 0, -2, 127, -128, 127, -128, 0}; /* half to even, clamped */
    CU_ASSERT(memcmp(a, want, 10) == 0);
    CU_ASSERT(memcmp(a, b, 10) == 0);
    uint64_t s = 1;
    enum { N = 300000 };
    float  *y = malloc(N * sizeof *y);
    int8_t *p = malloc(N), *q = malloc(N);
    for (int i = 0; i < N; i++) y[i] = 40 * lq_test_randf(&s);
    lq_quantize_act_i8_ref(y, N, 0.3f, p);
    lq_quantize_act_i8_cpu(y, N, 0.3f, q, 3);
    CU_ASSERT(memcmp(p, q, N) == 0);
    free(y);
    free(p);
    free(q);
}

static void test_gemm_i8(void) {
    uint64_t s = 2;
    for (int rep = 0; rep < 12; rep++) {
        const int64_t n = 1 + (int64_t)(lq_test_rand(&s) % 40) + (rep == 0 ? 260 : 0);
        const int64_t k = 1 + (int64_t)(lq_test_rand(&s) % 200), rows = 1 + (int64_t)(lq_test_rand(&s) % 70);
        const int64_t ldb = (k + 3) / 4 * 4;
        int8_t       *a   = malloc((size_t)(n * k));
        uint8_t      *b   = malloc((size_t)(rows * ldb));
        int32_t      *c1 = malloc((size_t)(n * rows) * 4), *c2 = malloc((size_t)(n * rows) * 4);
        for (int64_t i = 0; i < n * k; i++) a[i] = (int8_t)(lq_test_rand(&s) & 0xff);
        for (int64_t i = 0; i < rows * ldb; i++) b[i] = (uint8_t)(lq_test_rand(&s) & 0xff);
        lq_gemm_i8_ref(c1, a, n, k, b, ldb, rows);
        lq_gemm_i8_cpu(c2, a, n, k, b, ldb, rows, 1 + rep % 3);
        CU_ASSERT(memcmp(c1, c2, (size_t)(n * rows) * 4) == 0);
        int bad = 0;
        for (int64_t t = 0; t < n; t++)
            for (int64_t r = 0; r < rows; r++) {
                int64_t acc = 0;
                for (int64_t j = 0; j < k; j++) acc += (int64_t)a[t * k + j] * ((int64_t)b[r * ldb + j] - 128);
                bad += acc != c1[t * rows + r];
            }
        CU_ASSERT_EQUAL(bad, 0);
        free(a);
        free(b);
        free(c1);
        free(c2);
    }
}

typedef struct {
    uint8_t *d;
    float   *sc;
    float   *w;
    int64_t  R, C;
} i8mat;

static i8mat make_i8(int64_t R, int64_t C, uint64_t *s) {
    i8mat m = {NULL, NULL, NULL, R, C};
    m.w     = malloc((size_t)(R * C) * sizeof *m.w);
    for (int64_t i = 0; i < R * C; i++) m.w[i] = 0.05f * lq_test_randf(s);
    m.d                      = malloc((size_t)(lq_qtype_row_bytes(LQ_QT_INT8_CH, C) * (uint64_t)R));
    m.sc                     = malloc((size_t)R * sizeof *m.sc);
    const lq_quant_params qp = lq_quant_default_params();
    CU_ASSERT_FATAL(lq_quantize_ref(LQ_QT_INT8_CH, m.w, R, C, &qp, m.d, m.sc, NULL) == LQ_OK);
    return m;
}

static void test_matmul_w8a8(void) {
    uint64_t      s = 3;
    const int64_t R = 37, C = 71, N = 9;
    i8mat         m = make_i8(R, C, &s);
    float        *x = malloc((size_t)(N * C) * sizeof *x), *bias = malloc((size_t)R * sizeof *bias);
    for (int64_t i = 0; i < N * C; i++) x[i] = 2 * lq_test_randf(&s);
    for (int64_t r = 0; r < R; r++) bias[r] = lq_test_randf(&s);
    const float sx = 2.0f / 127;
    lq_weight   w  = {LQ_DTYPE_U8, m.d, R, C, LQ_QT_INT8_CH, m.sc, NULL, NULL, sx};
    float      *y1 = malloc((size_t)(N * R) * 4), *y2 = malloc((size_t)(N * R) * 4), *y3 = malloc((size_t)(N * R) * 4);
    CU_ASSERT_FATAL(lq_matmul_ref(y1, x, N, &w, bias) == LQ_OK);
    CU_ASSERT_FATAL(lq_matmul_cpu(y2, x, N, &w, bias, 1) == LQ_OK);
    CU_ASSERT_FATAL(lq_matmul_cpu(y3, x, N, &w, bias, 2) == LQ_OK);
    CU_ASSERT(memcmp(y1, y2, (size_t)(N * R) * 4) == 0);
    CU_ASSERT(memcmp(y1, y3, (size_t)(N * R) * 4) == 0);
    /* f64 emulation: dequantized activations times dequantized weights */
    double maxerr = 0, maxref = 0;
    const int64_t ldb = (int64_t)lq_qtype_row_bytes(LQ_QT_INT8_CH, C);
    for (int64_t t = 0; t < N; t++)
        for (int64_t r = 0; r < R; r++) {
            double acc = 0;
            for (int64_t k = 0; k < C; k++) {
                double q = nearbyint((double)x[t * C + k] / (double)sx);
                q        = q > 127 ? 127 : q < -128 ? -128 : q;
                acc += q * ((double)m.d[r * ldb + k] - 128);
            }
            const double want = acc * (double)sx * (double)m.sc[r] + bias[r];
            maxerr            = fmax(maxerr, fabs(want - y1[t * R + r]));
            maxref            = fmax(maxref, fabs(want));
        }
    CU_ASSERT(maxerr <= 1e-6 * maxref + 1e-6);
    /* and close to the float product (the quantization error is bounded) */
    double dev = 0;
    for (int64_t t = 0; t < N; t++)
        for (int64_t r = 0; r < R; r++) {
            double f = bias[r];
            for (int64_t k = 0; k < C; k++) f += (double)x[t * C + k] * (double)m.w[r * C + k];
            dev = fmax(dev, fabs(f - y1[t * R + r]));
        }
    CU_ASSERT(dev < 0.05);
    /* W8A8 needs int8_ch without act-order */
    lq_weight bad = w;
    bad.qtype     = LQ_QT_INT4_CH;
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_matmul_cpu(y1, x, N, &bad, NULL, 1), LQ_ERR_UNSUPPORTED);
    lq_test_quiet(0);
    free(x);
    free(bias);
    free(y1);
    free(y2);
    free(y3);
    free(m.d);
    free(m.sc);
    free(m.w);
}

static void test_ct_int_quantized_round_trip(void) {
    uint64_t      s = 4;
    const int64_t R = 64, C = 172;
    i8mat         m  = make_i8(R, C, &s);
    const float   sx = lq_f16_to_f32(lq_f32_to_f16(0.0123f));
    lq_qtensor    t  = {"model.layers.0.mlp.down_proj.weight", LQ_QT_INT8_CH, 2, {R, C}, m.d, m.sc, NULL,
                        LQ_DTYPE_F16, NULL, sx};
    /* scales as stored (f16) so the round trip is exact */
    for (int64_t r = 0; r < R; r++) m.sc[r] = lq_f16_to_f32(lq_f32_to_f16(m.sc[r]));
    lq_model_config cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.model_type, sizeof cfg.model_type, "llama");
    cfg.hidden_size = C, cfg.intermediate_size = R, cfg.n_layers = 1, cfg.n_heads = 1, cfg.vocab_size = 8;
    cfg.n_kv_heads = 1, cfg.head_dim = C, cfg.max_position_embeddings = 16, cfg.rms_norm_eps = 1e-5;
    cfg.rope_theta = 10000;
    cfg.dtype                  = LQ_DTYPE_F16;
    lq_qformat_write_params wp = lq_qformat_write_default_params();
    wp.format                  = LQ_QFMT_CT;
    wp.cfg                     = &cfg;
    wp.no_fsync                = true;
    const char *dir            = lq_test_tmpdir("w8a8_ct");
    CU_ASSERT_FATAL(lq_qformat_write_dir(dir, &t, 1, &wp) == LQ_OK);
    lq_checkpoint   *ck = NULL;
    lq_quant_config *qc = NULL;
    CU_ASSERT_FATAL(lq_checkpoint_open(dir, &ck) == LQ_OK);
    const lq_tensor_info *wi = lq_checkpoint_find(ck, "model.layers.0.mlp.down_proj.weight");
    const lq_tensor_info *ii = lq_checkpoint_find(ck, "model.layers.0.mlp.down_proj.input_scale");
    CU_ASSERT_FATAL(wi && ii);
    CU_ASSERT(wi->dtype == LQ_DTYPE_I8 && ii->dtype == LQ_DTYPE_F16 && ii->n_dims == 1 && ii->shape[0] == 1);
    CU_ASSERT(((const int8_t *)wi->data)[5] == (int8_t)(m.d[5] - 128));
    CU_ASSERT_FATAL(lq_quant_config_load(ck, &qc) == LQ_OK && qc);
    lq_qtensor back;
    void      *owned = NULL;
    CU_ASSERT_FATAL(lq_qformat_load(ck, qc, "model.layers.0.mlp.down_proj", R, C, &back, &owned) == LQ_OK);
    CU_ASSERT_EQUAL(back.qtype, LQ_QT_INT8_CH);
    CU_ASSERT(back.in_scale == sx);
    const uint64_t rb = lq_qtype_row_bytes(LQ_QT_INT8_CH, C);
    int            diff = 0;
    for (int64_t r = 0; r < R; r++) {
        diff += memcmp((const uint8_t *)back.data + r * rb, m.d + r * rb, (size_t)C) != 0;
        diff += back.scales[r] != m.sc[r];
    }
    CU_ASSERT_EQUAL(diff, 0);
    lq_free(owned);
    lq_quant_config_free(qc);
    lq_checkpoint_close(ck);
    /* GPTQ and GGUF refuse static activation scales */
    wp.format = LQ_QFMT_GPTQ;
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_qformat_write_dir(lq_test_tmpdir("w8a8_gptq"), &t, 1, &wp), LQ_ERR_UNSUPPORTED);
    CU_ASSERT(strstr(lq_test_last_error(), "W8A8") != NULL);
    char gp[4300];
    snprintf(gp, sizeof gp, "%s/x.gguf", lq_test_tmpdir("w8a8_gguf"));
    lq_gguf_write_params gg = lq_gguf_write_default_params();
    const lq_status gs = lq_gguf_write_llama(gp, &cfg, &t, 1, &gg);
    if (gs != LQ_ERR_UNSUPPORTED) fprintf(stderr, "gguf: %d %s\n", (int)gs, lq_test_last_error());
    CU_ASSERT_EQUAL(gs, LQ_ERR_UNSUPPORTED);
    lq_qtensor neg = t;
    neg.in_scale   = 0.0123f; /* not an f16 value: refused rather than silently rounded */
    wp.format      = LQ_QFMT_CT;
    CU_ASSERT_EQUAL(lq_qformat_write_dir(lq_test_tmpdir("w8a8_neg"), &neg, 1, &wp), LQ_ERR_INVALID_ARG);
    lq_test_quiet(0);
    free(m.d);
    free(m.sc);
    free(m.w);
}

CU_pSuite lq_test_w8a8_suite(void) {
    CU_pSuite s = lq_test_add_suite("w8a8");
    CU_add_test(s, "test_quantize_act", test_quantize_act);
    CU_add_test(s, "test_gemm_i8", test_gemm_i8);
    CU_add_test(s, "test_matmul_w8a8", test_matmul_w8a8);
    CU_add_test(s, "test_ct_int_quantized_round_trip", test_ct_int_quantized_round_trip);
    return s;
}
