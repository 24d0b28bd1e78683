/* test_llama2c.c : the llama2.c v0 reader against the independent HF
 * conversion in ../shared/data/stories260K-hf (bit for bit), the q/k row
 * permutation on a synthetic file with an unshared classifier, and refusal
 * of truncated, padded and v1 files. */
#include <stdlib.h>
#include <string.h>

#include "lq_internal.h"
#include "lq_test.h"

static void test_llama2c_matches_reference_hf_conversion(void) {
    lq_llama2c     *m;
    lq_safetensors *ref;
    CU_ASSERT_EQUAL_FATAL(lq_llama2c_open(lq_test_shared("stories260K/stories260K.bin"), &m), LQ_OK);
    CU_ASSERT_EQUAL_FATAL(lq_safetensors_open(lq_test_shared("stories260K-hf/model.safetensors"), &ref), LQ_OK);
    const lq_llama2c_header *h = lq_llama2c_header_of(m);
    CU_ASSERT_EQUAL(h->dim, 64);
    CU_ASSERT_EQUAL(h->hidden_dim, 172);
    CU_ASSERT_EQUAL(h->n_layers, 5);
    CU_ASSERT_EQUAL(h->n_heads, 8);
    CU_ASSERT_EQUAL(h->n_kv_heads, 4);
    CU_ASSERT_EQUAL(h->vocab_size, 512);
    CU_ASSERT(h->shared_classifier);
    CU_ASSERT_EQUAL(lq_llama2c_count(m), lq_safetensors_count(ref));
    for (int64_t i = 0; i < lq_llama2c_count(m); i++) {
        const lq_tensor_info *a = lq_llama2c_tensor(m, i), *b = lq_safetensors_find(ref, a->name);
        if (!b) {
            fprintf(stderr, "\n  %s not in the reference\n", a->name);
            CU_FAIL("tensor name");
            continue;
        }
        CU_ASSERT_EQUAL(a->dtype, b->dtype);
        CU_ASSERT_EQUAL(a->n_dims, b->n_dims);
        CU_ASSERT_EQUAL(memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->n_dims), 0);
        CU_ASSERT_EQUAL(a->nbytes, b->nbytes);
        if (a->nbytes != b->nbytes || memcmp(a->data, b->data, a->nbytes) != 0) {
            fprintf(stderr, "\n  %s differs from the reference\n", a->name);
            CU_FAIL("tensor bytes");
        }
    }
    lq_model_config c, r;
    lq_llama2c_config(m, &c);
    CU_ASSERT_EQUAL_FATAL(lq_hfconfig_load(lq_test_shared("stories260K-hf/config.json"), &r), LQ_OK);
    CU_ASSERT_STRING_EQUAL(c.model_type, r.model_type);
    CU_ASSERT_STRING_EQUAL(c.architecture, r.architecture);
    CU_ASSERT_EQUAL(c.vocab_size, r.vocab_size);
    CU_ASSERT_EQUAL(c.hidden_size, r.hidden_size);
    CU_ASSERT_EQUAL(c.intermediate_size, r.intermediate_size);
    CU_ASSERT_EQUAL(c.n_layers, r.n_layers);
    CU_ASSERT_EQUAL(c.n_heads, r.n_heads);
    CU_ASSERT_EQUAL(c.n_kv_heads, r.n_kv_heads);
    CU_ASSERT_EQUAL(c.head_dim, r.head_dim);
    CU_ASSERT_EQUAL(c.max_position_embeddings, r.max_position_embeddings);
    CU_ASSERT_EQUAL(c.rms_norm_eps, r.rms_norm_eps);
    CU_ASSERT_EQUAL(c.rope_theta, r.rope_theta);
    CU_ASSERT_EQUAL(c.tie_word_embeddings, r.tie_word_embeddings);
    CU_ASSERT_EQUAL(c.bos_token_id, r.bos_token_id);
    CU_ASSERT_EQUAL(c.eos_token_id[0], r.eos_token_id[0]);
    CU_ASSERT_EQUAL(c.dtype, r.dtype);
    lq_safetensors_close(ref);
    lq_llama2c_close(m);
}

/* a synthetic v0 file: every float = its index in the file, unshared classifier */
static char *write_synthetic(const char *dir, int dim, int hid, int layers, int heads, int kv, int vocab, int seq,
                             int extra_bytes) {
    const int64_t hd = dim / heads, kvd = dim * kv / heads;
    const int64_t n  = (int64_t)vocab * dim + layers * (2 * dim + 2 * (int64_t)dim * dim + 2 * kvd * dim +
                                                      3 * (int64_t)hid * dim) +
                      dim + seq * hd + (int64_t)vocab * dim;
    const size_t len  = 28 + (size_t)n * 4 + (size_t)(extra_bytes > 0 ? extra_bytes : 0) -
                       (size_t)(extra_bytes < 0 ? -extra_bytes : 0);
    uint8_t     *b    = calloc(1, 28 + (size_t)n * 4 + 16);
    const int32_t hdr[7] = {dim, hid, layers, heads, kv, -vocab, seq};
    memcpy(b, hdr, 28);
    for (int64_t i = 0; i < n; i++) {
        const float f = (float)i;
        memcpy(b + 28 + i * 4, &f, 4);
    }
    static char path[512];
    snprintf(path, sizeof path, "%s/syn%d.bin", dir, extra_bytes);
    lq_test_write_file(path, b, len);
    free(b);
    return path;
}

static void test_llama2c_permutation_and_unshared_classifier(void) {
    const char *dir = lq_test_tmpdir("l2c");
    /* dim 16, 2 heads (head_dim 8), 1 kv head, hidden 24, 2 layers, vocab 10, seq 4 */
    const char *path = write_synthetic(dir, 16, 24, 2, 2, 1, 10, 4, 0);
    lq_llama2c *m;
    CU_ASSERT_EQUAL_FATAL(lq_llama2c_open(path, &m), LQ_OK);
    CU_ASSERT(!lq_llama2c_header_of(m)->shared_classifier);
    CU_ASSERT_EQUAL(lq_llama2c_count(m), 2 + 2 * 9 + 1);
    const int64_t dim = 16, V = 10, L = 2, kvd = 8, hid = 24, seq = 4, hd = 8;
    const int64_t off_wq = V * dim + L * dim; /* in floats from the start of the data */
    const int64_t off_wk = off_wq + L * dim * dim;
    for (int64_t i = 0; i < lq_llama2c_count(m); i++) {
        const lq_tensor_info *t = lq_llama2c_tensor(m, i);
        const float          *f = t->data;
        if (!strcmp(t->name, "model.layers.1.self_attn.q_proj.weight")) {
            /* HF row h*8 + j*4 + r = llama2.c row h*8 + 2r + j */
            for (int64_t h = 0; h < 2; h++)
                for (int64_t j = 0; j < 2; j++)
                    for (int64_t r = 0; r < 4; r++)
                        for (int64_t c = 0; c < dim; c++)
                            CU_ASSERT_EQUAL(f[(h * hd + j * 4 + r) * dim + c],
                                            (float)(off_wq + dim * dim + (h * hd + 2 * r + j) * dim + c));
        } else if (!strcmp(t->name, "model.layers.0.self_attn.k_proj.weight")) {
            CU_ASSERT_EQUAL(t->shape[0], kvd);
            for (int64_t j = 0; j < 2; j++)
                for (int64_t r = 0; r < 4; r++)
                    CU_ASSERT_EQUAL(f[(j * 4 + r) * dim + 3], (float)(off_wk + (2 * r + j) * dim + 3));
        } else if (!strcmp(t->name, "lm_head.weight")) {
            const int64_t off_cls = V * dim + L * (2 * dim + 2 * dim * dim + 2 * kvd * dim + 3 * hid * dim) + dim + seq * hd;
            CU_ASSERT_EQUAL(t->shape[0], V);
            CU_ASSERT_EQUAL(f[0], (float)off_cls);
        } else if (!strcmp(t->name, "model.layers.1.mlp.down_proj.weight")) {
            CU_ASSERT_EQUAL(t->shape[0], dim);
            CU_ASSERT_EQUAL(t->shape[1], hid);
        }
    }
    lq_model_config c;
    lq_llama2c_config(m, &c);
    CU_ASSERT(!c.tie_word_embeddings);
    CU_ASSERT_EQUAL(c.vocab_size, 10);
    lq_llama2c_close(m);
}

static void test_llama2c_refuses_bad_files(void) {
    const char *dir = lq_test_tmpdir("l2c_bad");
    lq_llama2c *m   = NULL;
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_llama2c_open(write_synthetic(dir, 16, 24, 2, 2, 1, 10, 4, -4), &m), LQ_ERR_FORMAT);
    CU_ASSERT(strstr(lq_test_last_error(), "truncated") != NULL);
    CU_ASSERT_EQUAL(lq_llama2c_open(write_synthetic(dir, 16, 24, 2, 2, 1, 10, 4, 8), &m), LQ_ERR_FORMAT);
    CU_ASSERT(strstr(lq_test_last_error(), "trailing bytes") != NULL);
    char path[512];
    /* heads that do not divide dim */
    const int32_t bad[7] = {16, 24, 2, 3, 1, 10, 4};
    snprintf(path, sizeof path, "%s/badhdr.bin", dir);
    lq_test_write_file(path, bad, 28);
    CU_ASSERT_EQUAL(lq_llama2c_open(path, &m), LQ_ERR_FORMAT);
    /* absurd sizes that would overflow naive arithmetic */
    const int32_t huge[7] = {1 << 30, 1 << 30, 1 << 30, 1, 1, -(1 << 30), 1 << 30};
    lq_test_write_file(path, huge, 28);
    CU_ASSERT_EQUAL(lq_llama2c_open(path, &m), LQ_ERR_FORMAT);
    const int32_t minvocab[7] = {16, 24, 2, 2, 1, INT32_MIN, 4};
    lq_test_write_file(path, minvocab, 28);
    CU_ASSERT_EQUAL(lq_llama2c_open(path, &m), LQ_ERR_FORMAT);
    /* v1 export */
    uint8_t v1[256] = {'2', '4', 'k', 'a', 1};
    lq_test_write_file(path, v1, sizeof v1);
    CU_ASSERT_EQUAL(lq_llama2c_open(path, &m), LQ_ERR_UNSUPPORTED);
    CU_ASSERT(strstr(lq_test_last_error(), "v1/v2") != NULL);
    lq_test_quiet(0);
    CU_ASSERT_PTR_NULL(m);
}

CU_pSuite lq_test_llama2c_suite(void) {
    CU_pSuite s = lq_test_add_suite("llama2c");
    LQ_ADD_TEST(s, test_llama2c_matches_reference_hf_conversion);
    LQ_ADD_TEST(s, test_llama2c_permutation_and_unshared_classifier);
    LQ_ADD_TEST(s, test_llama2c_refuses_bad_files);
    return s;
}
