/* test_sensitivity.c : activation statistics collected by the runner
 * (lq_actstats) and the per-group sensitivity measurement (lq_sens_*) on the
 * real stories260K model: the layer-0 statistics against an independent
 * computation through the `_ref` ops, thread-count independence, the KLD of
 * one quantized group against the same model with that group's dequantized
 * f32 weights (an independent path through the plain kernels), the KLD
 * floor, ordering by bits, and the weights being restored. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "block_internal.h"
#include "lq_test.h"

#define NS 3
#define SEQ 64

static lq_model *open_model(int n_threads) {
    lq_model_params mp = lq_model_default_params();
    mp.backend         = LQ_BACKEND_CPU;
    mp.n_threads       = n_threads;
    mp.max_seq         = 256;
    lq_model *m        = NULL;
    CU_ASSERT_FATAL(lq_model_open(lq_test_shared("stories260K-hf"), &mp, &m) == LQ_OK);
    return m;
}

static lq_calib_set *calib(void) {
    lq_tokenizer *tok = NULL;
    CU_ASSERT_FATAL(lq_tokenizer_open(lq_test_shared("stories260K-hf/tokenizer.model"), 512, &tok) == LQ_OK);
    size_t   len  = 0;
    uint8_t *text = lq_test_read_file(lq_test_shared("tinystories/tinystories_train_excerpt.txt"), &len);
    CU_ASSERT_FATAL(text != NULL);
    if (len > 20000) len = 20000;
    static int32_t ids[20000];
    size_t         n = 0;
    CU_ASSERT_FATAL(lq_tokenizer_encode(tok, (const char *)text, len, false, ids, 20000, &n) == LQ_OK);
    free(text);
    lq_calib_params cp = lq_calib_default_params();
    cp.n_samples       = NS;
    cp.seq_len         = SEQ;
    cp.seed            = 1;
    lq_calib_set *c    = NULL;
    CU_ASSERT_FATAL(lq_calib_from_tokens(ids, (int64_t)n, lq_tokenizer_bos(tok), &cp, &c) == LQ_OK);
    lq_tokenizer_free(tok);
    return c;
}

/* layer 0's q/k/v input is rmsnorm(embed(tokens)): recompute it with the
 * `_ref` ops and histogram it window by window, as the collector does */
static void test_actstats_layer0_matches_reference(void) {
    lq_model     *m = open_model(2);
    lq_calib_set *c = calib();
    lq_actstats  *s = NULL;
    CU_ASSERT_FATAL(lq_actstats_collect(m, c, NULL, &s) == LQ_OK);
    const lq_model_config *cfg = lq_model_config_of(m);
    CU_ASSERT_EQUAL(lq_actstats_count(s), cfg->n_layers * 4);
    CU_ASSERT_EQUAL(lq_actstats_tokens(s), NS * SEQ);
    CU_ASSERT_STRING_EQUAL(lq_actstats_module(s, 0, 1), "model.layers.0.self_attn.k_proj");
    CU_ASSERT_STRING_EQUAL(lq_actstats_module(s, 3, 0), "model.layers.0.mlp.down_proj");
    CU_ASSERT_EQUAL(lq_actstats_n_modules(s, 2), 2);
    for (int64_t i = 0; i < lq_actstats_count(s); i++) {
        const int64_t cols = i % 4 == 3 ? cfg->intermediate_size : cfg->hidden_size;
        CU_ASSERT_EQUAL(lq_hist_count(lq_actstats_hist(s, i)), NS * SEQ * cols);
    }
    /* the reference */
    lq_checkpoint *ck = NULL;
    CU_ASSERT_FATAL(lq_checkpoint_open(lq_test_shared("stories260K-hf"), &ck) == LQ_OK);
    const lq_tensor_info *te = lq_checkpoint_find(ck, "model.embed_tokens.weight");
    const lq_tensor_info *tn = lq_checkpoint_find(ck, "model.layers.0.input_layernorm.weight");
    CU_ASSERT_FATAL(te && tn && te->dtype == LQ_DTYPE_F32);
    const int64_t D   = cfg->hidden_size;
    lq_weight     emb = {LQ_DTYPE_F32, te->data, te->shape[0], D, LQ_QT_NONE, NULL, NULL, NULL, 0};
    lq_weight     nw  = {tn->dtype, tn->data, 1, D, LQ_QT_NONE, NULL, NULL, NULL, 0};
    float        *x   = malloc((size_t)(SEQ * D) * sizeof *x);
    lq_hist      *h   = NULL;
    CU_ASSERT_FATAL(lq_hist_new(0, false, &h) == LQ_OK);
    for (int64_t k = 0; k < NS; k++) {
        CU_ASSERT_FATAL(lq_embed_ref(x, &emb, c->tokens + k * SEQ, SEQ) == LQ_OK);
        lq_rmsnorm_ref(x, x, &nw, SEQ, D, (float)cfg->rms_norm_eps);
        CU_ASSERT_FATAL(lq_hist_add(h, x, SEQ * D, 1) == LQ_OK);
    }
    const lq_hist *got = lq_actstats_hist(s, 0);
    CU_ASSERT_EQUAL(lq_hist_absmax(got), lq_hist_absmax(h));
    CU_ASSERT_EQUAL(lq_hist_n_bins(got), lq_hist_n_bins(h));
    CU_ASSERT_EQUAL(lq_hist_width(got), lq_hist_width(h));
    int64_t diff = 0;
    for (int64_t b = 0; b < lq_hist_n_bins(h); b++) diff += llabs(lq_hist_counts(got)[b] - lq_hist_counts(h)[b]);
    CU_ASSERT_EQUAL(diff, 0);
    /* max calibration is the running absmax */
    const lq_amax_params mx = lq_amax_default_params(LQ_AMAX_MAX);
    double              *a  = calloc((size_t)lq_actstats_count(s), sizeof *a);
    CU_ASSERT_FATAL(lq_actstats_amax(s, &mx, a, NULL) == LQ_OK);
    CU_ASSERT_DOUBLE_EQUAL(a[0], lq_hist_absmax(h), 1e-6 * lq_hist_absmax(h));
    const lq_amax_params en = lq_amax_default_params(LQ_AMAX_ENTROPY);
    CU_ASSERT_FATAL(lq_actstats_amax(s, &en, a, NULL) == LQ_OK);
    for (int64_t i = 0; i < lq_actstats_count(s); i++)
        CU_ASSERT(a[i] > 0 && a[i] <= (double)lq_hist_n_bins(lq_actstats_hist(s, i)) * lq_hist_width(lq_actstats_hist(s, i)) * (1 + 1e-12));
    /* the ranges table round trip */
    char path[4200];
    snprintf(path, sizeof path, "%s/ranges.json", lq_test_tmpdir("actstats"));
    CU_ASSERT_FATAL(lq_act_ranges_write_json(s, &en, true, c, "calib", "stories260K", path) == LQ_OK);
    lq_act_ranges *r = NULL;
    CU_ASSERT_FATAL(lq_act_ranges_read(path, &r) == LQ_OK);
    CU_ASSERT_EQUAL(r->n, cfg->n_layers * 7);
    CU_ASSERT_DOUBLE_EQUAL(lq_act_ranges_find(r, "model.layers.0.self_attn.v_proj"), a[0], 1e-12 * a[0]);
    CU_ASSERT_DOUBLE_EQUAL(lq_act_ranges_find(r, "model.layers.1.mlp.down_proj"), a[7], 1e-12 * a[7]);
    CU_ASSERT_EQUAL(lq_act_ranges_find(r, "model.layers.9.mlp.down_proj"), 0);
    CU_ASSERT_STRING_EQUAL(r->method, "entropy");
    lq_act_ranges_free(r);
    /* hostile tables */
    static const char *const bad[] = {
        "{}", "[1]", "{\"format\":\"libquant-activation-ranges\"}",
        "{\"format\":\"libquant-activation-ranges\",\"tensors\":[{\"name\":\"a\",\"amax\":-1}]}",
        "{\"format\":\"libquant-activation-ranges\",\"tensors\":[{\"name\":\"a\",\"amax\":1},{\"name\":\"a\",\"amax\":2}]}",
        "{\"format\":\"libquant-activation-ranges\",\"num_bits\":4,\"tensors\":[]}", "{\"format\":",
    };
    lq_test_quiet(1);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CU_ASSERT_FATAL(lq_test_write_file(path, bad[i], strlen(bad[i])) == 0);
        lq_act_ranges *rb = NULL;
        CU_ASSERT(lq_act_ranges_read(path, &rb) == LQ_ERR_FORMAT);
        CU_ASSERT(rb == NULL);
    }
    lq_test_quiet(0);
    free(a);
    free(x);
    lq_hist_free(h);
    lq_checkpoint_close(ck);
    lq_actstats_free(s);
    lq_calib_free(c);
    lq_model_free(m);
}

static void test_actstats_thread_independent(void) {
    lq_calib_set *c  = calib();
    lq_model     *m1 = open_model(1), *m2 = open_model(2);
    lq_actstats  *s1 = NULL, *s2 = NULL;
    lq_actstats_params p = lq_actstats_default_params();
    p.signed_hist        = true;
    p.n_threads          = 1;
    CU_ASSERT_FATAL(lq_actstats_collect(m1, c, &p, &s1) == LQ_OK);
    p.n_threads = 2;
    CU_ASSERT_FATAL(lq_actstats_collect(m2, c, &p, &s2) == LQ_OK);
    for (int64_t i = 0; i < lq_actstats_count(s1); i++) {
        const lq_hist *a = lq_actstats_hist(s1, i), *b = lq_actstats_hist(s2, i);
        CU_ASSERT_EQUAL(lq_hist_n_bins(a), lq_hist_n_bins(b));
        CU_ASSERT(memcmp(lq_hist_counts(a), lq_hist_counts(b), (size_t)lq_hist_n_bins(a) * sizeof(int64_t)) == 0);
    }
    lq_actstats_free(s1);
    lq_actstats_free(s2);
    lq_model_free(m1);
    lq_model_free(m2);
    lq_calib_free(c);
}

static double kld_of(const lq_sens_table *t, int64_t g, lq_qtype q) {
    for (int64_t c = 0; c < t->n_cands; c++)
        if (t->cands[c] == q) return t->kld[g * t->n_cands + c];
    return NAN;
}

static void test_sensitivity_measure(void) {
    lq_model       *m = open_model(2);
    lq_calib_set   *c = calib();
    const lq_qtype  cands[] = {LQ_QT_F16, LQ_QT_INT8_CH, LQ_QT_INT4_CH, LQ_QT_INT2_CH};
    lq_sens_table  *t = NULL;
    CU_ASSERT_FATAL(lq_sens_groups(m, true, cands, 4, &t) == LQ_OK);
    const lq_model_config *cfg = lq_model_config_of(m);
    CU_ASSERT_EQUAL_FATAL(t->n_groups, cfg->n_layers * 4 + 1);
    CU_ASSERT_STRING_EQUAL(t->groups[0].name, "model.layers.0.self_attn.qkv");
    CU_ASSERT_EQUAL(t->groups[0].n_tensors, 3);
    CU_ASSERT_EQUAL(t->groups[2].numel, 2 * cfg->hidden_size * cfg->intermediate_size);
    CU_ASSERT_STRING_EQUAL(t->groups[t->n_groups - 1].role, "embed");
    for (int64_t i = 0; i < t->n_groups * t->n_cands; i++) t->bytes[i] = 1;
    /* logits before, to check the weights are restored */
    float *before = malloc((size_t)(SEQ * cfg->vocab_size) * sizeof *before);
    float *after  = malloc((size_t)(SEQ * cfg->vocab_size) * sizeof *after);
    CU_ASSERT_FATAL(lq_model_forward(m, c->tokens, SEQ, 0, before, false) == LQ_OK);
    lq_sens_params sp = lq_sens_default_params();
    sp.n_threads      = 2;
    CU_ASSERT_FATAL(lq_sens_measure(m, c, &sp, t) == LQ_OK);
    CU_ASSERT_FATAL(lq_model_forward(m, c->tokens, SEQ, 0, after, false) == LQ_OK);
    CU_ASSERT(memcmp(before, after, (size_t)(SEQ * cfg->vocab_size) * sizeof *before) == 0);
    CU_ASSERT_EQUAL(t->base_kld, 0.0);
    CU_ASSERT_EQUAL(t->calib_tokens, NS * SEQ);
    for (int64_t g = 0; g < t->n_groups; g++) {
        const double f16 = kld_of(t, g, LQ_QT_F16), i8 = kld_of(t, g, LQ_QT_INT8_CH);
        const double i4 = kld_of(t, g, LQ_QT_INT4_CH), i2 = kld_of(t, g, LQ_QT_INT2_CH);
        CU_ASSERT(fabs(f16) < 1e-4); /* rounding can make it a hair negative */
        if (!(fabs(f16) < 1e-4)) fprintf(stderr, "f16 %g\n", f16);
        CU_ASSERT(i8 < i4 && i4 < i2);
        CU_ASSERT(i2 > 1e-3);
    }
    /* group 1 (o_proj of layer 0) at int4: the same model with that weight
     * dequantized to f32 by lq_dequantize_ref runs the plain f32 kernels */
    lq_model       *q   = open_model(2);
    lq_llama_layer *y   = lq__model_layer_mut(q, 0);
    const int64_t   R = y->wo.rows, C = y->wo.cols;
    float          *w   = malloc((size_t)(R * C) * sizeof *w);
    float          *dq  = malloc((size_t)(R * C) * sizeof *dq);
    uint8_t        *d   = malloc((size_t)(lq_qtype_row_bytes(LQ_QT_INT4_CH, C) * (uint64_t)R));
    float          *sc  = malloc((size_t)R * sizeof *sc);
    for (int64_t r = 0; r < R; r++) CU_ASSERT_FATAL(lq_weight_row_f32(&y->wo, r, w + r * C) == LQ_OK);
    const lq_quant_params qp = lq_quant_default_params();
    CU_ASSERT_FATAL(lq_quantize_ref(LQ_QT_INT4_CH, w, R, C, &qp, d, sc, NULL) == LQ_OK);
    CU_ASSERT_FATAL(lq_dequantize_ref(LQ_QT_INT4_CH, d, sc, NULL, R, C, dq) == LQ_OK);
    y->wo.data  = dq;
    y->wo.dtype = LQ_DTYPE_F32;
    y->wo.qtype = LQ_QT_NONE;
    double kq = -1;
    CU_ASSERT_FATAL(lq_sens_model_kld(m, q, c, 2, &kq) == LQ_OK);
    const double ks = kld_of(t, 1, LQ_QT_INT4_CH);
    CU_ASSERT(fabs(kq - ks) <= 1e-4 * ks + 1e-9);
    double k0 = -1;
    CU_ASSERT_FATAL(lq_sens_model_kld(m, m, c, 2, &k0) == LQ_OK);
    CU_ASSERT_EQUAL(k0, 0.0);
    free(w);
    free(dq);
    free(d);
    free(sc);
    free(before);
    free(after);
    lq_model_free(q);
    lq_sens_table_free(t);
    lq_calib_free(c);
    lq_model_free(m);
}

CU_pSuite lq_test_sensitivity_suite(void) {
    CU_pSuite s = lq_test_add_suite("sensitivity");
    CU_add_test(s, "test_actstats_layer0_matches_reference", test_actstats_layer0_matches_reference);
    CU_add_test(s, "test_actstats_thread_independent", test_actstats_thread_independent);
    CU_add_test(s, "test_sensitivity_measure", test_sensitivity_measure);
    return s;
}
