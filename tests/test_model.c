/* test_model.c : the model runner and the evaluator against numbers produced
 * by other implementations (../shared/data/stories260K/golden): the fox
 * sentence nll (llama2.c float32 forward), the two TinyStories windows
 * (an independent implementation), greedy text from llama2.c's `run`; plus
 * OpenMP vs reference logits, KV-cache decoding vs one-shot prefill, thread
 * count independence, and KL(M || M) = 0. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lq_test.h"

static const int32_t FOX[35] = {1,   385, 328, 432, 261, 280, 305, 330, 272, 414, 444, 272,
                                277, 264, 261, 262, 415, 271, 422, 410, 354, 422, 318, 264,
                                285, 265, 334, 341, 334, 412, 433, 259, 276, 411, 426};

static lq_model *open_model(const char *rel, bool ref, int threads) {
    lq_model_params p = lq_model_default_params();
    p.backend         = LQ_BACKEND_CPU;
    p.use_ref         = ref;
    p.n_threads       = threads;
    p.max_seq         = 512;
    lq_model *m       = NULL;
    CU_ASSERT_EQUAL(lq_model_open(lq_test_shared(rel), &p, &m), LQ_OK);
    return m;
}

static double fox_nll(lq_model *m, float *logits) {
    CU_ASSERT_EQUAL_FATAL(lq_model_forward(m, FOX, 35, 0, logits, false), LQ_OK);
    double nll = 0;
    for (int t = 0; t < 34; t++) {
        const float *l  = logits + t * 512;
        double       mx = l[0], s = 0;
        for (int v = 1; v < 512; v++) mx = l[v] > mx ? l[v] : mx;
        for (int v = 0; v < 512; v++) s += exp(l[v] - mx);
        nll -= l[FOX[t + 1]] - mx - log(s);
    }
    return nll;
}

static void test_model_fox_sentence_nll(void) {
    /* golden: nll 54.404121 (llama2.c float32), tolerance 1e-3 */
    static const char *models[] = {"stories260K/stories260K.bin", "stories260K-hf"};
    float             *logits   = malloc(35 * 512 * sizeof(float));
    for (int k = 0; k < 2; k++)
        for (int ref = 0; ref < 2; ref++) {
            lq_model *m = open_model(models[k], ref, 0);
            CU_ASSERT_PTR_NOT_NULL_FATAL(m);
            const double nll = fox_nll(m, logits);
            if (fabs(nll - 54.404121) > 1e-3) fprintf(stderr, "\n  %s ref=%d: nll %.6f\n", models[k], ref, nll);
            CU_ASSERT_DOUBLE_EQUAL(nll, 54.404121, 1e-3);
            CU_ASSERT_DOUBLE_EQUAL(exp(nll / 34), 4.953633, 1e-4);
            lq_model_free(m);
        }
    free(logits);
}

static void test_model_cpu_matches_reference(void) {
    /* OpenMP ops vs the plain-C reference: max relative error < 1e-5 over all logits */
    float    *a = malloc(35 * 512 * sizeof(float)), *b = malloc(35 * 512 * sizeof(float));
    lq_model *r = open_model("stories260K-hf", true, 0), *c = open_model("stories260K-hf", false, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(lq_model_forward(r, FOX, 35, 0, a, false), LQ_OK);
    CU_ASSERT_EQUAL(lq_model_forward(c, FOX, 35, 0, b, false), LQ_OK);
    double max_rel = 0, scale = 0;
    for (int i = 0; i < 35 * 512; i++) scale = fmax(scale, fabs(a[i]));
    for (int i = 0; i < 35 * 512; i++) max_rel = fmax(max_rel, fabs((double)a[i] - b[i]) / scale);
    if (max_rel >= 1e-5) fprintf(stderr, "\n  max relative error %.3g\n", max_rel);
    CU_ASSERT(max_rel < 1e-5);
    lq_model_free(r);
    lq_model_free(c);
    free(a);
    free(b);
}

static void test_model_kv_cache_decode_equals_prefill(void) {
    /* one token at a time through the KV cache gives the prefill's logits */
    float    *a = malloc(35 * 512 * sizeof(float)), *b = malloc(512 * sizeof(float));
    lq_model *m = open_model("stories260K/stories260K.bin", false, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(lq_model_forward(m, FOX, 35, 0, a, false), LQ_OK);
    double max_diff = 0;
    for (int t = 0; t < 35; t++) {
        CU_ASSERT_EQUAL_FATAL(lq_model_forward(m, FOX + t, 1, t, b, true), LQ_OK);
        for (int v = 0; v < 512; v++) max_diff = fmax(max_diff, fabs((double)a[t * 512 + v] - b[v]));
    }
    CU_ASSERT(max_diff < 1e-4);
    /* a prefix prefill then a chunk continuing the cache */
    CU_ASSERT_EQUAL(lq_model_forward(m, FOX, 20, 0, a, true), LQ_OK);
    CU_ASSERT_EQUAL(lq_model_forward(m, FOX + 20, 15, 20, a, false), LQ_OK);
    CU_ASSERT(fabs(a[14 * 512 + 5] - b[5]) < 1e-4); /* row 14 of the chunk = position 34 */
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_model_forward(m, FOX, 1, 512, b, true), LQ_ERR_INVALID_ARG);
    const int32_t bad = 512;
    CU_ASSERT_EQUAL(lq_model_forward(m, &bad, 1, 0, b, true), LQ_ERR_INVALID_ARG);
    lq_test_quiet(0);
    lq_model_free(m);
    free(a);
    free(b);
}

static void test_model_thread_count_independent(void) {
    float *a = malloc(35 * 512 * sizeof(float)), *b = malloc(35 * 512 * sizeof(float));
    for (int th = 1; th <= 3; th++) {
        lq_model *m = open_model("stories260K-hf", false, th);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_EQUAL(lq_model_forward(m, FOX, 35, 0, th == 1 ? a : b, false), LQ_OK);
        if (th > 1) CU_ASSERT_EQUAL(memcmp(a, b, 35 * 512 * sizeof(float)), 0);
        lq_model_free(m);
    }
    free(a);
    free(b);
}

static int32_t *tinystories_tokens(size_t max_chars, size_t *n) {
    lq_tokenizer *tok;
    CU_ASSERT_EQUAL_FATAL(lq_tokenizer_open(lq_test_shared("stories260K/tok512.bin"), 512, &tok), LQ_OK);
    size_t   len;
    uint8_t *text = lq_test_read_file(lq_test_shared("tinystories/tinystories_train_excerpt.txt"), &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    if (max_chars && len > max_chars) len = max_chars;
    int32_t *ids = malloc((len + 8) * sizeof *ids);
    CU_ASSERT_EQUAL(lq_tokenizer_encode(tok, (const char *)text, len, true, ids, len + 8, n), LQ_OK);
    lq_tokenizer_free(tok);
    free(text);
    return ids;
}

static void test_model_tinystories_windows(void) {
    /* golden: first 6000 characters -> 2806 tokens; windows 0-511 and 512-1023,
     * positions 0-511 each, predicting tokens 1-511: ppl 4.346364 and 4.656377 */
    size_t   n;
    int32_t *ids = tinystories_tokens(6000, &n);
    CU_ASSERT_EQUAL(n, 2806);
    lq_model *m = open_model("stories260K/stories260K.bin", false, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    lq_eval_params p = lq_eval_default_params();
    p.mode           = LQ_SCORE_ALL;
    p.ctx            = 512;
    lq_eval_result r;
    p.max_chunks = 1;
    CU_ASSERT_EQUAL_FATAL(lq_eval_run(m, NULL, ids, (int64_t)n, &p, &r), LQ_OK);
    CU_ASSERT_EQUAL(r.n_scored, 511);
    CU_ASSERT_DOUBLE_EQUAL(r.ppl, 4.346364, 1e-4);
    const double nll1 = r.nll_mean;
    CU_ASSERT_EQUAL_FATAL(lq_eval_run(m, NULL, ids + 512, 512, &p, &r), LQ_OK);
    CU_ASSERT_DOUBLE_EQUAL(r.ppl, 4.656377, 1e-4);
    p.max_chunks = 2;
    CU_ASSERT_EQUAL_FATAL(lq_eval_run(m, NULL, ids, (int64_t)n, &p, &r), LQ_OK);
    CU_ASSERT_DOUBLE_EQUAL(r.nll_mean, 1.503789, 1e-5);
    CU_ASSERT_DOUBLE_EQUAL(r.ppl, 4.498701, 1e-4);
    CU_ASSERT_DOUBLE_EQUAL(2 * r.nll_mean - nll1, log(4.656377), 2e-5);
    lq_model_free(m);
    free(ids);
}

static void test_model_kld_self_is_zero(void) {
    size_t   n;
    int32_t *ids = tinystories_tokens(12000, &n);
    lq_model *a = open_model("stories260K/stories260K.bin", false, 0), *b = open_model("stories260K-hf", false, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    lq_eval_params p = lq_eval_default_params(); /* llama.cpp scoring */
    p.ctx            = 128;
    lq_eval_result r;
    CU_ASSERT_EQUAL_FATAL(lq_eval_run(a, b, ids, (int64_t)n, &p, &r), LQ_OK);
    CU_ASSERT(r.has_base);
    CU_ASSERT_EQUAL(r.n_scored, r.n_chunks * 63);
    CU_ASSERT_EQUAL(r.kld_mean, 0.0); /* the same weights, the same kernels: bit-identical logits */
    CU_ASSERT_EQUAL(r.kld_max, 0.0);
    CU_ASSERT_EQUAL(r.top1, 1.0);
    CU_ASSERT_EQUAL(r.ppl_ratio, 1.0);
    CU_ASSERT_EQUAL(r.dp_rms, 0.0);
    CU_ASSERT_EQUAL(r.ppl, r.base_ppl);
    /* against the reference kernels: tiny but non-negative KL, same argmax */
    lq_model *c = open_model("stories260K-hf", true, 0);
    p.max_chunks = 2;
    CU_ASSERT_EQUAL_FATAL(lq_eval_run(c, b, ids, (int64_t)n, &p, &r), LQ_OK);
    CU_ASSERT(r.kld_mean >= 0 && r.kld_mean < 1e-9);
    CU_ASSERT(r.kld_min >= 0);
    CU_ASSERT(r.top1 > 0.999);
    lq_model_free(c);
    lq_model_free(a);
    lq_model_free(b);
    free(ids);
}

static void test_model_greedy_golden(void) {
    /* llama2.c `run -t 0 -n 200` from BOS, through our decode-piece rules */
    lq_model *m = open_model("stories260K-hf", false, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    lq_tokenizer *tok;
    CU_ASSERT_EQUAL_FATAL(lq_tokenizer_open(lq_test_shared("stories260K-hf/tokenizer.model"), 0, &tok), LQ_OK);
    size_t   glen;
    uint8_t *golden = lq_test_read_file(lq_test_shared("stories260K/golden/greedy_empty_prompt_200steps.txt"), &glen);
    CU_ASSERT_PTR_NOT_NULL_FATAL(golden);
    char   *out = calloc(1, 8192);
    size_t  k   = 0;
    int32_t token = 1;
    float   logits[512];
    for (int pos = 0; pos < 200; pos++) {
        CU_ASSERT_EQUAL_FATAL(lq_model_forward(m, &token, 1, pos, logits, true), LQ_OK);
        int32_t next = 0;
        for (int v = 1; v < 512; v++)
            if (logits[v] > logits[next]) next = v;
        const int n = lq_tokenizer_decode_piece(tok, token, next, out + k, 8192 - k);
        CU_ASSERT_FATAL(n >= 0);
        k += (size_t)n;
        token = next;
    }
    CU_ASSERT_EQUAL(k, glen);
    CU_ASSERT(k == glen && memcmp(out, golden, glen) == 0);
    free(out);
    free(golden);
    lq_tokenizer_free(tok);
    lq_model_free(m);
}

static void test_model_refuses_bad_checkpoints(void) {
    lq_model       *m = NULL;
    lq_model_params p = lq_model_default_params();
    p.backend         = LQ_BACKEND_CPU;
    lq_test_quiet(1);
    /* a directory whose config.json disagrees with its tensors */
    const char *dir = lq_test_tmpdir("model_bad");
    char        path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    size_t   len;
    uint8_t *st = lq_test_read_file(lq_test_shared("stories260K-hf/model.safetensors"), &len);
    CU_ASSERT_EQUAL_FATAL(lq_test_write_file(path, st, len), 0);
    free(st);
    snprintf(path, sizeof path, "%s/config.json", dir);
    const char *cfg = "{\"model_type\":\"llama\",\"vocab_size\":512,\"hidden_size\":64,\"intermediate_size\":176,"
                      "\"num_hidden_layers\":5,\"num_attention_heads\":8,\"num_key_value_heads\":4,"
                      "\"tie_word_embeddings\":true}";
    lq_test_write_file(path, cfg, strlen(cfg));
    CU_ASSERT_EQUAL(lq_model_open(dir, &p, &m), LQ_ERR_FORMAT);
    CU_ASSERT(strstr(lq_test_last_error(), "gate_proj") != NULL);
    /* untied without lm_head */
    cfg = "{\"model_type\":\"llama\",\"vocab_size\":512,\"hidden_size\":64,\"intermediate_size\":172,"
          "\"num_hidden_layers\":5,\"num_attention_heads\":8,\"num_key_value_heads\":4}";
    lq_test_write_file(path, cfg, strlen(cfg));
    CU_ASSERT_EQUAL(lq_model_open(dir, &p, &m), LQ_ERR_FORMAT);
    CU_ASSERT(strstr(lq_test_last_error(), "lm_head") != NULL);
    /* CUDA requested where there is no device */
    if (lq_cuda_device_count() == 0) {
        p.backend = LQ_BACKEND_CUDA;
        CU_ASSERT_EQUAL(lq_model_open(lq_test_shared("stories260K-hf"), &p, &m), LQ_ERR_UNSUPPORTED);
    }
    lq_test_quiet(0);
    CU_ASSERT_PTR_NULL(m);
}

/* ---- quantized checkpoints run through the native kernels ---- */

/* a counting allocator: live and peak bytes handed out by lq_malloc */
static size_t g_live, g_peak;
static void  *count_alloc(size_t size, void *opaque) {
    (void)opaque;
    uint8_t *p = aligned_alloc(64, (size + 64 + 63) / 64 * 64);
    if (!p) return NULL;
    memcpy(p, &size, sizeof size);
    if (size > 8000 && getenv("LQ_DEBUG_ALLOC")) fprintf(stderr, "ALLOC %zu\n", size);
    g_live += size;
    if (g_live > g_peak) g_peak = g_live;
    return p + 64;
}
static void count_free(void *ptr, void *opaque) {
    (void)opaque;
    uint8_t *p = (uint8_t *)ptr - 64;
    size_t   size;
    memcpy(&size, p, sizeof size);
    g_live -= size;
    free(p);
}

static size_t g_run_extra;

/* bytes libquant holds once lq_model_open(path) returns (one thread, 40 positions, batch 8);
 * with `logits`, also runs FOX and records the forward pass's extra peak in g_run_extra */
static size_t held_after_open(const char *path, float *logits) {
    const lq_allocator a = {count_alloc, count_free, NULL};
    lq_set_allocator(&a);
    g_live = g_peak   = 0;
    lq_model_params p = lq_model_default_params();
    p.backend         = LQ_BACKEND_CPU;
    p.max_seq         = 40;
    p.max_batch       = 8;
    p.n_threads       = 1;
    lq_model       *m = NULL;
    const lq_status st = lq_model_open(path, &p, &m);
    const size_t    held = g_live;
    g_peak               = 0;
    if (st == LQ_OK && logits) CU_ASSERT_EQUAL(lq_model_forward(m, FOX, 35, 0, logits, false), LQ_OK);
    g_run_extra = g_peak > held ? g_peak - held : 0;
    lq_model_free(m);
    const size_t live = g_live;
    lq_set_allocator(NULL);
    CU_ASSERT_EQUAL(st, LQ_OK);
    CU_ASSERT_EQUAL(live, 0);
    return held;
}

/* stories260K's decoder Linear weights quantized with `t` (others kept), written as `fmt` into dir/path */
static int write_quantized(const char *src, const char *out, lq_qtype t, bool gguf, uint64_t *f32_linear_bytes) {
    lq_checkpoint *ck = NULL;
    if (lq_checkpoint_open(src, &ck) != LQ_OK) return -1;
    lq_model_config cfg;
    lq_checkpoint_config(ck, &cfg);
    const int64_t n  = lq_checkpoint_count(ck);
    lq_qtensor   *qt = calloc((size_t)n, sizeof *qt);
    void        **bufs = calloc((size_t)n * 2, sizeof *bufs);
    int           rc   = 0;
    *f32_linear_bytes  = 0;
    for (int64_t i = 0; i < n && rc == 0; i++) {
        const lq_tensor_info *ti = lq_checkpoint_tensor(ck, i);
        lq_qtensor           *q  = &qt[i];
        q->name                  = ti->name;
        q->n_dims                = ti->n_dims;
        memcpy(q->shape, ti->shape, sizeof q->shape);
        q->qtype       = LQ_QT_F32;
        q->data        = ti->data;
        q->scale_dtype = LQ_DTYPE_F16;
        const int64_t rows = ti->shape[0], cols = ti->n_dims == 2 ? ti->shape[1] : 0;
        if (ti->n_dims != 2 || strncmp(ti->name, "model.layers.", 13) != 0 || !lq_qtype_supports(t, cols, NULL))
            continue;
        *f32_linear_bytes += ti->nbytes;
        bufs[2 * i]     = malloc(rows * lq_qtype_row_bytes(t, cols));
        bufs[2 * i + 1] = malloc(sizeof(float) * (size_t)(lq_qtype_n_scales(t, rows, cols) + 1));
        if (lq_quantize_ref(t, ti->data, rows, cols, NULL, bufs[2 * i], bufs[2 * i + 1], NULL) != LQ_OK) rc = -1;
        q->qtype  = t;
        q->data   = bufs[2 * i];
        q->scales = bufs[2 * i + 1];
    }
    if (rc == 0 && gguf) {
        lq_gguf_write_params gp = lq_gguf_write_default_params();
        gp.no_fsync             = true;
        gp.tokenizer_path       = strstr(src, "stories260K") ? lq_test_shared("stories260K-hf/tokenizer.model") : NULL;
        rc                      = lq_gguf_write_llama(out, &cfg, qt, n, &gp) == LQ_OK ? 0 : -1;
    } else if (rc == 0) {
        lq_qformat_write_params wp = lq_qformat_write_default_params();
        wp.format                  = LQ_QFMT_CT;
        wp.cfg                     = &cfg;
        wp.no_fsync                = true;
        rc                         = lq_qformat_write_dir(out, qt, n, &wp) == LQ_OK ? 0 : -1;
    }
    for (int64_t i = 0; i < 2 * n; i++) free(bufs[i]);
    free(bufs);
    free(qt);
    lq_checkpoint_close(ck);
    return rc;
}

static void test_model_quantized_runs_native(void) {
    /* lq_model_open on a quantized checkpoint keeps the packed weights (mapped or
     * repacked as integers): the peak of everything libquant allocates while
     * opening and running it stays far below an f32 copy of the quantized
     * matrices, and its logits stay close to the f32 model's. */
    static const struct {
        const char *name;
        lq_qtype    t;
        bool        gguf;
        double      max_kld;
    } cases[] = {{"ct_int8", LQ_QT_INT8_CH, false, 2e-3},
                 {"ct_int4_g32", LQ_QT_INT4_G32, false, 0.1},
                 {"q8_0.gguf", LQ_QT_Q8_0, true, 2e-3},
                 {"q4_0.gguf", LQ_QT_Q4_0, true, 0.2}};
    float    *ref = malloc(35 * 512 * sizeof(float)), *got = malloc(35 * 512 * sizeof(float));
    lq_model *base = open_model("stories260K-hf", false, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(base);
    CU_ASSERT_EQUAL_FATAL(lq_model_forward(base, FOX, 35, 0, ref, false), LQ_OK);
    lq_model_free(base);
    /* memory: a synthetic f32 model (2 layers, dim 256, hidden 768: 6.3 MB of decoder matrices) and
     * its quantized versions; what the mapped f32 model holds after open (checkpoint index, KV cache,
     * activations) is the baseline */
    char dir[400], synth[512];
    snprintf(dir, sizeof dir, "%s", lq_test_tmpdir("quantized_model"));
    snprintf(synth, sizeof synth, "%s/synth", dir);
    lq_synth_params sp = lq_synth_default_params();
    sp.dim = 256, sp.hidden = 768, sp.n_layers = 2, sp.n_heads = 8, sp.n_kv_heads = 4, sp.vocab = 512;
    sp.max_pos = 64, sp.dtype = LQ_DTYPE_F32, sp.tied = true;
    CU_ASSERT_EQUAL_FATAL(lq_synth_write(synth, &sp, NULL), LQ_OK);
    const size_t base_held = held_after_open(synth, NULL);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char path[512];
        snprintf(path, sizeof path, "%s/synth_%s", dir, cases[c].name);
        uint64_t f32_bytes = 0;
        if (!cases[c].gguf) CU_ASSERT_EQUAL_FATAL(mkdir(path, 0755), 0);
        CU_ASSERT_EQUAL_FATAL(write_quantized(synth, path, cases[c].t, cases[c].gguf, &f32_bytes), 0);
        CU_ASSERT_EQUAL(f32_bytes, 2 * 4 * (2 * 256 * 256 + 2 * 128 * 256 + 3 * 256 * 768));
        const size_t opened    = held_after_open(path, got);
        const size_t run_extra = g_run_extra;
        if (opened > base_held + f32_bytes / 8)
            fprintf(stderr, "\n  %s: %zu bytes held after open vs %zu for the f32 model; f32 weights %llu\n",
                    cases[c].name, opened, base_held, (unsigned long long)f32_bytes);
        /* beyond what the mapped f32 model holds, the quantized one keeps < 1/8 of an f32 copy
         * (f32 scales, repacked integers at most; compressed-tensors and GGUF data stay mapped) */
        CU_ASSERT(opened <= base_held + f32_bytes / 8);
        /* the forward pass adds only the kernels' fixed per-thread tiles (one thread: < 512 KiB) */
        CU_ASSERT(run_extra < 512 * 1024);
    }
    /* accuracy on the real model */
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, cases[c].name);
        uint64_t f32_bytes = 0;
        if (!cases[c].gguf) CU_ASSERT_EQUAL_FATAL(mkdir(path, 0755), 0);
        CU_ASSERT_EQUAL_FATAL(write_quantized(lq_test_shared("stories260K-hf"), path, cases[c].t, cases[c].gguf,
                                              &f32_bytes), 0);
        CU_ASSERT(f32_bytes > 600000); /* the decoder matrices the type can store (>= 25 of 35) */
        held_after_open(path, got);
        /* accuracy: mean KL(f32 || quantized) over the 35 positions */
        double kld = 0;
        int    same = 0;
        for (int t = 0; t < 35; t++) {
            const float *r = ref + t * 512, *q = got + t * 512;
            double       mr = r[0], mq = q[0], sr = 0, sq = 0;
            int          ar = 0, aq = 0;
            for (int v = 1; v < 512; v++) {
                if (r[v] > mr) mr = r[v], ar = v;
                if (q[v] > mq) mq = q[v], aq = v;
            }
            for (int v = 0; v < 512; v++) sr += exp(r[v] - mr), sq += exp(q[v] - mq);
            for (int v = 0; v < 512; v++) {
                const double lpr = r[v] - mr - log(sr), lpq = q[v] - mq - log(sq);
                kld += exp(lpr) * (lpr - lpq);
            }
            same += ar == aq;
        }
        kld /= 35;
        if (kld > cases[c].max_kld) fprintf(stderr, "\n  %s: KLD %.6f\n", cases[c].name, kld);
        CU_ASSERT(kld > 0 && kld < cases[c].max_kld);
        CU_ASSERT(same >= 25);
    }
    free(ref);
    free(got);
}

/* ---- act-order (desc_act) checkpoints ---- */

static unsigned code_at(const uint8_t *row, int b, int64_t k) {
    unsigned c = 0;
    for (int i = 0; i < b; i++) c |= (unsigned)(row[(k * b + i) >> 3] >> ((k * b + i) & 7) & 1u) << i;
    return c;
}

static void code_put(uint8_t *row, int b, int64_t k, unsigned c) {
    for (int i = 0; i < b; i++)
        if (c >> i & 1u) row[(k * b + i) >> 3] |= (uint8_t)(1u << ((k * b + i) & 7));
}

/* `src`'s decoder matrices quantized as GPTQ act-order stores them (a shuffled column order per matrix; group g =
 * the g-th G columns of that order; codes in the original order, g_idx[order[j]] = j / G) written as `fmt` into
 * qdir; the same model with those matrices dequantized the transformers way (w[:, k] = s[g_idx[k]] (u[:, k] -
 * z[g_idx[k]])) written as f32 into fdir. */
static int write_act_order(const char *src, const char *qdir, const char *fdir, lq_qtype t, lq_qformat fmt,
                           uint64_t seed) {
    lq_checkpoint *ck = NULL;
    if (lq_checkpoint_open(src, &ck) != LQ_OK) return -1;
    lq_model_config cfg;
    lq_checkpoint_config(ck, &cfg);
    const lq_qtype_traits *tr = lq_qtype_traits_of(t);
    const int64_t          n  = lq_checkpoint_count(ck);
    lq_qtensor            *qt = calloc((size_t)n, sizeof *qt);
    lq_st_entry           *fe = calloc((size_t)n, sizeof *fe);
    void                 **own = calloc((size_t)n * 5, sizeof *own);
    int                    rc  = qt && fe && own ? 0 : -1;
    uint64_t               s   = seed;
    for (int64_t i = 0; i < n && rc == 0; i++) {
        const lq_tensor_info *ti = lq_checkpoint_tensor(ck, i);
        lq_qtensor           *q  = &qt[i];
        q->name                  = ti->name;
        q->n_dims                = ti->n_dims;
        memcpy(q->shape, ti->shape, sizeof q->shape);
        q->qtype       = LQ_QT_F32;
        q->data        = ti->data;
        q->scale_dtype = LQ_DTYPE_F16;
        fe[i].name     = ti->name;
        fe[i].dtype    = ti->dtype;
        fe[i].n_dims   = ti->n_dims;
        memcpy(fe[i].shape, ti->shape, sizeof fe[i].shape);
        fe[i].data = ti->data;
        if (ti->n_dims != 2 || strncmp(ti->name, "model.layers.", 13) != 0) continue;
        const int64_t R = ti->shape[0], C = ti->shape[1], G = tr->group, ng = C / G;
        const uint64_t rb = lq_qtype_row_bytes(t, C);
        int32_t *order = malloc((size_t)C * 4), *g_idx = malloc((size_t)C * 4);
        float   *wp = malloc((size_t)(R * C) * 4), *deq = malloc((size_t)(R * C) * 4);
        uint8_t *dp = calloc((size_t)(rb * (uint64_t)R), 1), *d = calloc((size_t)(rb * (uint64_t)R), 1);
        float   *sc = malloc((size_t)(R * ng) * 4);
        uint8_t *z  = malloc((size_t)(R * ng));
        own[5 * i] = g_idx, own[5 * i + 1] = deq, own[5 * i + 2] = d, own[5 * i + 3] = sc, own[5 * i + 4] = z;
        if (!order || !g_idx || !wp || !deq || !dp || !d || !sc || !z || ti->dtype != LQ_DTYPE_F32) {
            free(order), free(wp), free(dp);
            rc = -1;
            break;
        }
        for (int64_t k = 0; k < C; k++) order[k] = (int32_t)k;
        for (int64_t k = C - 1; k > 0; k--) {
            const int64_t j = (int64_t)(lq_test_rand(&s) % (uint64_t)(k + 1));
            const int32_t x = order[k];
            order[k] = order[j], order[j] = x;
        }
        const float *w = ti->data;
        for (int64_t r = 0; r < R; r++)
            for (int64_t j = 0; j < C; j++) wp[r * C + j] = w[r * C + order[j]];
        if (lq_quantize_ref(t, wp, R, C, NULL, dp, sc, z) != LQ_OK || lq_dequantize_ref(t, dp, sc, z, R, C, wp) != LQ_OK)
            rc = -1;
        for (int64_t j = 0; j < C; j++) g_idx[order[j]] = (int32_t)(j / G);
        for (int64_t r = 0; r < R; r++)
            for (int64_t j = 0; j < C; j++) {
                code_put(d + r * (int64_t)rb, tr->bits, order[j], code_at(dp + r * (int64_t)rb, tr->bits, j));
                deq[r * C + order[j]] = wp[r * C + j];
            }
        free(order), free(wp), free(dp);
        q->qtype  = t;
        q->data   = d;
        q->scales = sc;
        q->zeros  = lq_qtype_has_zeros(t) ? z : NULL;
        q->g_idx  = g_idx;
        fe[i].data = deq;
    }
    if (rc == 0) {
        lq_qformat_write_params wp = lq_qformat_write_default_params();
        wp.format                  = fmt;
        wp.cfg                     = &cfg;
        wp.no_fsync                = true;
        wp.ct_actorder_group       = true;
        lq_st_write_params sp      = lq_st_write_default_params();
        sp.no_fsync                = true;
        if (lq_qformat_write_dir(qdir, qt, n, &wp) != LQ_OK || lq_safetensors_write_dir(fdir, fe, n, &sp) != LQ_OK)
            rc = -1;
        char   path[1024];
        size_t len = 0;
        snprintf(path, sizeof path, "%s/config.json", src);
        uint8_t *cj = lq_test_read_file(path, &len);
        snprintf(path, sizeof path, "%s/config.json", fdir);
        if (!cj || lq_test_write_file(path, cj, len) != 0) rc = -1;
        free(cj);
    }
    for (int64_t i = 0; own && i < 5 * n; i++) free(own[i]);
    free(own), free(qt), free(fe);
    lq_checkpoint_close(ck);
    return rc;
}

static lq_model *open_path(const char *path, lq_backend backend, bool ref, int threads) {
    lq_model_params p = lq_model_default_params();
    p.backend         = backend;
    p.use_ref         = ref;
    p.n_threads       = threads;
    p.max_seq         = 64;
    lq_model *m       = NULL;
    CU_ASSERT_EQUAL(lq_model_open(path, &p, &m), LQ_OK);
    return m;
}

static double max_abs_diff(const float *a, const float *b, int64_t n) {
    double d = 0;
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs((double)a[i] - (double)b[i]);
        if (!(e <= d)) d = e; /* NaN sticks */
    }
    return d;
}

static void test_model_act_order_gptq(void) {
    /* GPTQ v1 / v2 and compressed-tensors (actorder "group") checkpoints whose every decoder matrix has a shuffled
     * act-order g_idx run (the runner sorts the columns by group and gathers x through the permutation), and their
     * logits equal those of the f32 model holding the dequantized weights: the products are the same, only the f32
     * summation order differs. With a device, the CUDA pass (perm uploaded) agrees within the quantized budget. */
    static const struct {
        const char *name;
        lq_qtype    t;
        lq_qformat  f;
    } cases[] = {{"gptq_int4_g32", LQ_QT_INT4_G32, LQ_QFMT_GPTQ},
                 {"gptq_v2_int4_g64_asym", LQ_QT_INT4_G64_ASYM, LQ_QFMT_GPTQ_V2},
                 {"gptq_int8_g32", LQ_QT_INT8_G32, LQ_QFMT_GPTQ},
                 {"ct_int4_g32_asym", LQ_QT_INT4_G32_ASYM, LQ_QFMT_CT}};
    char dir[400], synth[512];
    snprintf(dir, sizeof dir, "%s", lq_test_tmpdir("act_order_model"));
    snprintf(synth, sizeof synth, "%s/synth", dir);
    lq_synth_params sp = lq_synth_default_params();
    sp.dim = 128, sp.hidden = 256, sp.n_layers = 2, sp.n_heads = 4, sp.n_kv_heads = 2, sp.vocab = 512;
    sp.max_pos = 64, sp.dtype = LQ_DTYPE_F32, sp.tied = true, sp.seed = 99;
    CU_ASSERT_EQUAL_FATAL(lq_synth_write(synth, &sp, NULL), LQ_OK);
    const int64_t NL = 35 * 512;
    float *want = malloc((size_t)NL * 4), *got = malloc((size_t)NL * 4), *orig = malloc((size_t)NL * 4);
    CU_ASSERT_FATAL(want && got && orig);
    lq_model *m0 = open_path(synth, LQ_BACKEND_CPU, false, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m0);
    CU_ASSERT_EQUAL_FATAL(lq_model_forward(m0, FOX, 35, 0, orig, false), LQ_OK);
    lq_model_free(m0);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char qdir[600], fdir[600];
        snprintf(qdir, sizeof qdir, "%s/%s", dir, cases[c].name);
        snprintf(fdir, sizeof fdir, "%s/%s_f32", dir, cases[c].name);
        CU_ASSERT_EQUAL_FATAL(mkdir(qdir, 0755), 0);
        CU_ASSERT_EQUAL_FATAL(mkdir(fdir, 0755), 0);
        CU_ASSERT_EQUAL_FATAL(write_act_order(synth, qdir, fdir, cases[c].t, cases[c].f, 1000 + c), 0);
        lq_model *mf = open_path(fdir, LQ_BACKEND_CPU, true, 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(mf);
        CU_ASSERT_EQUAL_FATAL(lq_model_forward(mf, FOX, 35, 0, want, false), LQ_OK);
        lq_model_free(mf);
        double scale = 0;
        for (int64_t i = 0; i < NL; i++) scale = fmax(scale, fabs(want[i]));
        /* the quantization is visible: the dequantized model is not the original one */
        CU_ASSERT(max_abs_diff(want, orig, NL) > 1e-3 * scale);
        for (int variant = 0; variant < 3; variant++) { /* _ref; _cpu one thread; _cpu three threads */
            lq_model *mq = open_path(qdir, LQ_BACKEND_CPU, variant == 0, variant == 2 ? 3 : 1);
            CU_ASSERT_PTR_NOT_NULL_FATAL(mq);
            CU_ASSERT_EQUAL(lq_model_forward(mq, FOX, 35, 0, got, false), LQ_OK);
            lq_model_free(mq);
            const double d = max_abs_diff(got, want, NL);
            if (!(d <= 1e-4)) fprintf(stderr, "\n  %s variant %d: max |logit diff| %.3g (max |logit| %.3g)\n",
                                      cases[c].name, variant, d, scale);
            CU_ASSERT(d <= 1e-4);
        }
        if (lq_cuda_device_count() > 0) {
            lq_model *mc = open_path(qdir, LQ_BACKEND_CUDA, false, 0);
            CU_ASSERT_PTR_NOT_NULL_FATAL(mc);
            CU_ASSERT_EQUAL(lq_model_forward(mc, FOX, 35, 0, got, false), LQ_OK);
            lq_model_free(mc);
            const double d = max_abs_diff(got, want, NL);
            printf("\n  %s on CUDA: max |logit diff| %.3g of max |logit| %.3g", cases[c].name, d, scale);
            CU_ASSERT(d <= 2e-2 * scale);
        }
    }
    free(want), free(got), free(orig);
}

CU_pSuite lq_test_model_suite(void) {
    CU_pSuite s = lq_test_add_suite("model");
    LQ_ADD_TEST(s, test_model_fox_sentence_nll);
    LQ_ADD_TEST(s, test_model_cpu_matches_reference);
    LQ_ADD_TEST(s, test_model_kv_cache_decode_equals_prefill);
    LQ_ADD_TEST(s, test_model_thread_count_independent);
    LQ_ADD_TEST(s, test_model_tinystories_windows);
    LQ_ADD_TEST(s, test_model_kld_self_is_zero);
    LQ_ADD_TEST(s, test_model_greedy_golden);
    LQ_ADD_TEST(s, test_model_refuses_bad_checkpoints);
    LQ_ADD_TEST(s, test_model_quantized_runs_native);
    LQ_ADD_TEST(s, test_model_act_order_gptq);
    return s;
}
