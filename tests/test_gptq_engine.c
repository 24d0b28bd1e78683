/* test_gptq_engine.c : the block-by-block GPTQ engine (lq_gptq_run) on a
 * small synthetic model: its Hessians against an independent f64
 * computation through the `_ref` ops, resume after a cancelled run
 * (byte-identical), the stale work directory refusal, activation spilling,
 * true-sequential order, and the imatrix file. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lq_test.h"

#define NL 3
#define DIM 64
#define HID 128
#define VOCAB 300
#define NS 8
#define SEQ 48

static char g_model[4096];

static const char *model_dir(void) {
    if (g_model[0]) return g_model;
    snprintf(g_model, sizeof g_model, "%s", lq_test_tmpdir("gptq_engine_model"));
    lq_synth_params sp = lq_synth_default_params();
    sp.dim = DIM, sp.hidden = HID, sp.n_layers = NL, sp.n_heads = 4, sp.n_kv_heads = 2, sp.vocab = VOCAB;
    sp.max_pos = 128, sp.dtype = LQ_DTYPE_F32, sp.seed = 7;
    CU_ASSERT_FATAL(lq_synth_write(g_model, &sp, NULL) == LQ_OK);
    return g_model;
}

static lq_calib_set *calib(uint64_t seed) {
    int32_t  ids[4000];
    uint64_t s = 99;
    for (int i = 0; i < 4000; i++) ids[i] = 3 + (int32_t)(lq_test_rand(&s) % (VOCAB - 3));
    lq_calib_params cp = lq_calib_default_params();
    cp.n_samples       = NS;
    cp.seq_len         = SEQ;
    cp.seed            = seed;
    lq_calib_set *c    = NULL;
    CU_ASSERT_FATAL(lq_calib_from_tokens(ids, 4000, 1, &cp, &c) == LQ_OK);
    return c;
}

static lq_qtype all_int4(const char *name, void *user) {
    (void)name;
    (void)user;
    return LQ_QT_INT4_G32;
}

static lq_gptq_run_params params(const char *work) {
    lq_gptq_run_params p = lq_gptq_run_default_params();
    p.work_dir           = work;
    p.no_fsync           = true;
    p.options_text       = "test";
    return p;
}

/* every quantized byte of two results equal */
static bool same_results(const lq_gptq_result *a, const lq_gptq_result *b) {
    if (lq_gptq_result_count(a) != lq_gptq_result_count(b)) return false;
    for (int64_t i = 0; i < lq_gptq_result_count(a); i++) {
        const lq_gptq_layer *x = lq_gptq_result_layer(a, i), *y = lq_gptq_result_layer(b, i);
        const int64_t        R = x->q.shape[0], C = x->q.shape[1];
        const size_t         nb = (size_t)(lq_qtype_row_bytes(x->q.qtype, C) * (uint64_t)R);
        const size_t         ns = (size_t)lq_qtype_n_scales(x->q.qtype, R, C);
        if (strcmp(x->name, y->name) || x->q.qtype != y->q.qtype || memcmp(x->q.data, y->q.data, nb) ||
            memcmp(x->q.scales, y->q.scales, ns * 4) || x->stats.loss != y->stats.loss)
            return false;
    }
    return true;
}

static const float *tensor_f32(const lq_checkpoint *ck, const char *name) {
    const lq_tensor_info *t = lq_checkpoint_find(ck, name);
    CU_ASSERT_FATAL(t != NULL && t->dtype == LQ_DTYPE_F32);
    return t->data;
}

/* H = (2/NS) sum x x^T over all calibration tokens, f64 */
static void hessian(double *H, const float *x, int64_t n, int64_t C, bool first) {
    if (first) memset(H, 0, (size_t)(C * C) * sizeof(double));
    for (int64_t t = 0; t < n; t++)
        for (int64_t i = 0; i < C; i++)
            for (int64_t j = 0; j < C; j++) H[i * C + j] += 2.0 / NS * (double)x[t * C + i] * (double)x[t * C + j];
}

static double code_agreement(const lq_qtype t, const void *a, const void *b, int64_t R, int64_t C) {
    float *da = malloc((size_t)(R * C) * 4), *db = malloc((size_t)(R * C) * 4);
    float *ones = malloc((size_t)(R * C) * 4);
    for (int64_t i = 0; i < R * C; i++) ones[i] = 1.f;
    /* codes only: dequantize with unit scales (sym zero point 2^(B-1)) */
    lq_dequantize_ref(t, a, ones, NULL, R, C, da);
    lq_dequantize_ref(t, b, ones, NULL, R, C, db);
    int64_t same = 0;
    for (int64_t i = 0; i < R * C; i++) same += da[i] == db[i];
    free(da);
    free(db);
    free(ones);
    return (double)same / (double)(R * C);
}

/* the engine's layer-0 q_proj and down_proj equal lq_gptq_ref on Hessians computed here with the _ref ops */
static void test_engine_hessians_match_reference(void) {
    lq_calib_set      *cs = calib(1);
    lq_gptq_run_params p  = params(NULL);
    p.tmp_parent          = lq_test_tmpdir("gptq_engine_tmp");
    lq_gptq_result *r     = NULL;
    CU_ASSERT_FATAL(lq_gptq_run(model_dir(), cs, all_int4, NULL, &p, &r) == LQ_OK);
    CU_ASSERT_EQUAL(lq_gptq_result_count(r), NL * 7);
    for (int64_t i = 0; i < lq_gptq_result_count(r); i++) {
        const lq_gptq_layer *l = lq_gptq_result_layer(r, i);
        CU_ASSERT(isfinite(l->stats.loss) && l->stats.loss > 0);
        CU_ASSERT_EQUAL(l->q.qtype, LQ_QT_INT4_G32);
        CU_ASSERT_EQUAL(l->in_count, NS * SEQ);
    }
    lq_checkpoint *ck = NULL;
    CU_ASSERT_FATAL(lq_checkpoint_open(model_dir(), &ck) == LQ_OK);
    lq_model_config cfg;
    CU_ASSERT_FATAL(lq_checkpoint_config(ck, &cfg) == LQ_OK);
    const int64_t HD = DIM / 4, KVD = 2 * HD;
    float *x = malloc(SEQ * DIM * 4), *h = malloc(SEQ * DIM * 4), *q = malloc(SEQ * DIM * 4);
    float *k = malloc(SEQ * KVD * 4), *v = malloc(SEQ * KVD * 4), *att = malloc(SEQ * DIM * 4);
    float *o = malloc(SEQ * DIM * 4), *g = malloc(SEQ * HID * 4), *u = malloc(SEQ * HID * 4);
    double *Hq = malloc(DIM * DIM * 8), *Hd = malloc(HID * HID * 8);
    float   inv[8];
    int32_t pos[SEQ];
    for (int i = 0; i < SEQ; i++) pos[i] = i;
    CU_ASSERT_FATAL(lq_rope_inv_freq(inv, HD, cfg.rope_theta, (int)cfg.rope_type, cfg.rope_factor, cfg.rope_low_freq_factor,
                                     cfg.rope_high_freq_factor, cfg.rope_original_max_pos) == LQ_OK);
#define WT(name, R, C) ((lq_weight){.dtype = LQ_DTYPE_F32, .data = tensor_f32(ck, name), .rows = (R), .cols = (C)})
    const lq_weight emb = WT("model.embed_tokens.weight", VOCAB, DIM);
    const lq_weight n1 = WT("model.layers.0.input_layernorm.weight", 1, DIM);
    const lq_weight n2 = WT("model.layers.0.post_attention_layernorm.weight", 1, DIM);
    const lq_weight wq = WT("model.layers.0.self_attn.q_proj.weight", DIM, DIM);
    const lq_weight wk = WT("model.layers.0.self_attn.k_proj.weight", KVD, DIM);
    const lq_weight wv = WT("model.layers.0.self_attn.v_proj.weight", KVD, DIM);
    const lq_weight wo = WT("model.layers.0.self_attn.o_proj.weight", DIM, DIM);
    const lq_weight wg = WT("model.layers.0.mlp.gate_proj.weight", HID, DIM);
    const lq_weight wu = WT("model.layers.0.mlp.up_proj.weight", HID, DIM);
    const lq_weight wd = WT("model.layers.0.mlp.down_proj.weight", DIM, HID);
#undef WT
    for (int s = 0; s < NS; s++) {
        CU_ASSERT_FATAL(lq_embed_ref(x, &emb, cs->tokens + s * SEQ, SEQ) == LQ_OK);
        lq_rmsnorm_ref(h, x, &n1, SEQ, DIM, (float)cfg.rms_norm_eps);
        hessian(Hq, h, SEQ, DIM, s == 0);
        lq_matmul_ref(q, h, SEQ, &wq, NULL);
        lq_matmul_ref(k, h, SEQ, &wk, NULL);
        lq_matmul_ref(v, h, SEQ, &wv, NULL);
        lq_rope_ref(q, pos, SEQ, 4, HD, inv, true);
        lq_rope_ref(k, pos, SEQ, 2, HD, inv, true);
        lq_attention_ref(att, q, k, v, SEQ, 0, 4, 2, HD, KVD);
        lq_matmul_ref(o, att, SEQ, &wo, NULL);
        for (int i = 0; i < SEQ * DIM; i++) x[i] += o[i];
        lq_rmsnorm_ref(h, x, &n2, SEQ, DIM, (float)cfg.rms_norm_eps);
        lq_matmul_ref(g, h, SEQ, &wg, NULL);
        lq_matmul_ref(u, h, SEQ, &wu, NULL);
        lq_swiglu_ref(g, g, u, SEQ * HID);
        hessian(Hd, g, SEQ, HID, s == 0);
    }
    lq_gptq_params sp = lq_gptq_default_params();
    sp.qtype          = LQ_QT_INT4_G32;
    struct {
        const char      *name;
        const lq_weight *w;
        const double    *H;
    } cases[] = {{"model.layers.0.self_attn.q_proj.weight", &wq, Hq}, {"model.layers.0.mlp.down_proj.weight", &wd, Hd}};
    for (int c = 0; c < 2; c++) {
        const int64_t R = cases[c].w->rows, C = cases[c].w->cols;
        uint8_t      *data = malloc((size_t)(lq_qtype_row_bytes(sp.qtype, C) * (uint64_t)R));
        float        *sc   = malloc((size_t)lq_qtype_n_scales(sp.qtype, R, C) * 4);
        lq_gptq_stats st;
        CU_ASSERT_FATAL(lq_gptq_ref(&sp, cases[c].w->data, R, C, cases[c].H, data, sc, NULL, NULL, &st) == LQ_OK);
        const lq_gptq_layer *l = lq_gptq_result_find(r, cases[c].name);
        CU_ASSERT_FATAL(l != NULL);
        const double agree = code_agreement(sp.qtype, data, l->q.data, R, C);
        CU_ASSERT(agree >= 0.99);
        CU_ASSERT(fabs(st.loss - l->stats.loss) <= 1e-3 * st.loss);
        if (agree < 0.99 || fabs(st.loss - l->stats.loss) > 1e-3 * st.loss)
            fprintf(stderr, "\n  %s: codes agree %.4f, loss %.6g vs %.6g\n", cases[c].name, agree, st.loss,
                    l->stats.loss);
        free(data);
        free(sc);
    }
    free(x), free(h), free(q), free(k), free(v), free(att), free(o), free(g), free(u), free(Hq), free(Hd);
    lq_checkpoint_close(ck);
    lq_gptq_result_free(r);
    lq_calib_free(cs);
}

static int g_cancel_at;
static int cancel_at_block(float done, const char *stage, void *user) {
    (void)done;
    (void)user;
    char want[32];
    snprintf(want, sizeof want, "block %d/", g_cancel_at);
    return strstr(stage, want) != NULL;
}

static void test_engine_resume_is_byte_identical(void) {
    lq_calib_set      *cs = calib(2);
    const char        *wd = lq_test_tmpdir("gptq_engine_work");
    char               work[4096];
    snprintf(work, sizeof work, "%s/w", wd);
    lq_gptq_run_params full = params(NULL);
    full.tmp_parent         = wd;
    lq_gptq_result *a = NULL, *b = NULL, *c = NULL;
    CU_ASSERT_FATAL(lq_gptq_run(model_dir(), cs, all_int4, NULL, &full, &a) == LQ_OK);
    CU_ASSERT_EQUAL(lq_gptq_result_resumed_blocks(a), 0);
    /* cancelled when block 3 starts: blocks 1 and 2 are committed */
    lq_gptq_run_params p = params(work);
    p.progress           = cancel_at_block;
    g_cancel_at          = 3;
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_gptq_run(model_dir(), cs, all_int4, NULL, &p, &b), LQ_ERR_CANCELLED);
    lq_test_quiet(0);
    CU_ASSERT_PTR_NULL(b);
    p.progress = NULL;
    CU_ASSERT_FATAL(lq_gptq_run(model_dir(), cs, all_int4, NULL, &p, &b) == LQ_OK);
    CU_ASSERT_EQUAL(lq_gptq_result_resumed_blocks(b), 2);
    CU_ASSERT(same_results(a, b));
    CU_ASSERT_STRING_EQUAL(lq_gptq_result_fingerprint(a), lq_gptq_result_fingerprint(b));
    /* other options: refused with a message naming what differs */
    lq_gptq_run_params other = params(work);
    other.solver.damp        = 0.05;
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_gptq_run(model_dir(), cs, all_int4, NULL, &other, &c), LQ_ERR_INVALID_ARG);
    CU_ASSERT(strstr(lq_test_last_error(), "the options") != NULL);
    lq_calib_set *cs2 = calib(3);
    CU_ASSERT_EQUAL(lq_gptq_run(model_dir(), cs2, all_int4, NULL, &p, &c), LQ_ERR_INVALID_ARG);
    CU_ASSERT(strstr(lq_test_last_error(), "calibration windows") != NULL);
    lq_test_quiet(0);
    /* activations streamed through files give the same bytes */
    lq_gptq_run_params spill = params(NULL);
    spill.tmp_parent         = wd;
    spill.max_ram            = 1;
    CU_ASSERT_FATAL(lq_gptq_run(model_dir(), cs, all_int4, NULL, &spill, &c) == LQ_OK);
    CU_ASSERT(same_results(a, c));
    lq_gptq_result_free(c);
    c = NULL;
    /* two threads or one: the same bytes */
    lq_gptq_run_params one = params(NULL);
    one.tmp_parent         = wd;
    one.n_threads          = 1;
    CU_ASSERT_FATAL(lq_gptq_run(model_dir(), cs, all_int4, NULL, &one, &c) == LQ_OK);
    CU_ASSERT(same_results(a, c));
    /* the imatrix file: mean x^2 = sum_x2 / count */
    char ipath[4096];
    snprintf(ipath, sizeof ipath, "%s/imatrix.safetensors", wd);
    CU_ASSERT_FATAL(lq_gptq_write_imatrix(a, cs, ipath, true) == LQ_OK);
    lq_safetensors *st = NULL;
    CU_ASSERT_FATAL(lq_safetensors_open(ipath, &st) == LQ_OK);
    CU_ASSERT_EQUAL(lq_safetensors_count(st), 3 * NL * 7);
    const lq_tensor_info *m = lq_safetensors_find(st, "model.layers.1.mlp.down_proj.weight");
    const lq_tensor_info *s = lq_safetensors_find(st, "model.layers.1.mlp.down_proj.weight.sum_x2");
    CU_ASSERT_FATAL(m && s && m->dtype == LQ_DTYPE_F32 && m->shape[0] == HID && s->dtype == LQ_DTYPE_F64);
    for (int i = 0; i < HID; i++)
        CU_ASSERT(fabsf(((const float *)m->data)[i] - (float)(((const double *)s->data)[i] / (NS * SEQ))) <=
                  1e-6f * fabsf(((const float *)m->data)[i]));
    lq_safetensors_close(st);
    lq_gptq_result_free(a);
    lq_gptq_result_free(b);
    lq_gptq_result_free(c);
    lq_calib_free(cs);
    lq_calib_free(cs2);
}

/* true-sequential: the first stage sees the same inputs; o_proj's inputs differ (quantized q,k,v) */
static void test_engine_true_sequential(void) {
    lq_calib_set      *cs = calib(4);
    const char        *wd = lq_test_tmpdir("gptq_engine_seq");
    lq_gptq_run_params p  = params(NULL);
    p.tmp_parent          = wd;
    lq_gptq_result *a = NULL, *b = NULL;
    CU_ASSERT_FATAL(lq_gptq_run(model_dir(), cs, all_int4, NULL, &p, &a) == LQ_OK);
    p.true_sequential = true;
    CU_ASSERT_FATAL(lq_gptq_run(model_dir(), cs, all_int4, NULL, &p, &b) == LQ_OK);
    const lq_gptq_layer *qa = lq_gptq_result_find(a, "model.layers.0.self_attn.q_proj.weight");
    const lq_gptq_layer *qb = lq_gptq_result_find(b, "model.layers.0.self_attn.q_proj.weight");
    const lq_gptq_layer *oa = lq_gptq_result_find(a, "model.layers.0.self_attn.o_proj.weight");
    const lq_gptq_layer *ob = lq_gptq_result_find(b, "model.layers.0.self_attn.o_proj.weight");
    CU_ASSERT_FATAL(qa && qb && oa && ob);
    CU_ASSERT_EQUAL(qa->stats.loss, qb->stats.loss);
    CU_ASSERT(memcmp(qa->in_sum_x2, qb->in_sum_x2, DIM * sizeof(double)) == 0);
    CU_ASSERT(memcmp(oa->in_sum_x2, ob->in_sum_x2, DIM * sizeof(double)) != 0);
    lq_gptq_result_free(a);
    lq_gptq_result_free(b);
    lq_calib_free(cs);
}

/* only some Linears: the rest are left to the caller */
static lq_qtype only_mlp(const char *name, void *user) {
    (void)user;
    return strstr(name, "mlp.") ? LQ_QT_INT8_CH_ASYM : LQ_QT_NONE;
}

static void test_engine_partial_and_errors(void) {
    lq_calib_set      *cs = calib(5);
    lq_gptq_run_params p  = params(NULL);
    p.tmp_parent          = lq_test_tmpdir("gptq_engine_partial");
    lq_gptq_result *r     = NULL;
    CU_ASSERT_FATAL(lq_gptq_run(model_dir(), cs, only_mlp, NULL, &p, &r) == LQ_OK);
    CU_ASSERT_EQUAL(lq_gptq_result_count(r), NL * 3);
    CU_ASSERT_PTR_NULL(lq_gptq_result_find(r, "model.layers.0.self_attn.q_proj.weight"));
    const lq_gptq_layer *l = lq_gptq_result_find(r, "model.layers.2.mlp.up_proj.weight");
    CU_ASSERT_FATAL(l != NULL);
    CU_ASSERT(l->q.zeros != NULL);
    lq_gptq_result_free(r);
    r = NULL;
    /* a calibration token outside the vocabulary */
    cs->tokens[5] = VOCAB + 10;
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_gptq_run(model_dir(), cs, only_mlp, NULL, &p, &r), LQ_ERR_INVALID_ARG);
    lq_test_quiet(0);
    CU_ASSERT_PTR_NULL(r);
    lq_calib_free(cs);
}

CU_pSuite lq_test_gptq_engine_suite(void) {
    CU_pSuite s = lq_test_add_suite("gptq_engine");
    LQ_ADD_TEST(s, test_engine_hessians_match_reference);
    LQ_ADD_TEST(s, test_engine_resume_is_byte_identical);
    LQ_ADD_TEST(s, test_engine_true_sequential);
    LQ_ADD_TEST(s, test_engine_partial_and_errors);
    return s;
}
