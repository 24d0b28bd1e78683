/* test_checkpoint.c : format detection for files and directories, and the
 * config.json reader (defaults, renamed keys, the three families). */
#include <stdlib.h>
#include <string.h>

#include "lq_internal.h"
#include "lq_test.h"

static void test_checkpoint_detects_kinds(void) {
    lq_checkpoint *c;
    CU_ASSERT_EQUAL_FATAL(lq_checkpoint_open(lq_test_shared("stories260K-hf"), &c), LQ_OK);
    CU_ASSERT_EQUAL(lq_checkpoint_kind(c), LQ_CKPT_SAFETENSORS_DIR);
    CU_ASSERT_EQUAL(lq_checkpoint_count(c), 47);
    CU_ASSERT_PTR_NOT_NULL(lq_checkpoint_find(c, "model.norm.weight"));
    CU_ASSERT_PTR_NULL(lq_checkpoint_find(c, "lm_head.weight")); /* tied */
    lq_model_config cfg;
    CU_ASSERT_EQUAL(lq_checkpoint_config(c, &cfg), LQ_OK);
    CU_ASSERT_EQUAL(cfg.head_dim, 8);
    lq_checkpoint_close(c);
    CU_ASSERT_EQUAL_FATAL(lq_checkpoint_open(lq_test_shared("stories260K-hf/model.safetensors"), &c), LQ_OK);
    CU_ASSERT_EQUAL(lq_checkpoint_kind(c), LQ_CKPT_SAFETENSORS);
    lq_checkpoint_close(c);
    CU_ASSERT_EQUAL_FATAL(lq_checkpoint_open(lq_test_shared("stories260K/stories260K.bin"), &c), LQ_OK);
    CU_ASSERT_EQUAL(lq_checkpoint_kind(c), LQ_CKPT_LLAMA2C);
    CU_ASSERT_PTR_NULL(lq_checkpoint_dir(c));
    CU_ASSERT_EQUAL(lq_checkpoint_config(c, &cfg), LQ_OK);
    CU_ASSERT_EQUAL(cfg.n_kv_heads, 4);
    lq_checkpoint_close(c);
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_checkpoint_open("tests/data", &c), LQ_ERR_NOT_FOUND);
    CU_ASSERT(strstr(lq_test_last_error(), "no model.safetensors") != NULL);
    CU_ASSERT_EQUAL(lq_checkpoint_open("/nonexistent", &c), LQ_ERR_IO);
    CU_ASSERT_EQUAL(lq_checkpoint_open(lq_test_shared("stories260K/tok512.vocab"), &c), LQ_ERR_FORMAT);
    lq_test_quiet(0);
}

static lq_status parse(const char *json, lq_model_config *c) {
    return lq_hfconfig_parse(json, strlen(json), "test", c);
}

static void test_checkpoint_config_defaults_and_renames(void) {
    lq_model_config c;
    /* Llama defaults */
    CU_ASSERT_EQUAL_FATAL(parse("{\"model_type\":\"llama\"}", &c), LQ_OK);
    CU_ASSERT_EQUAL(c.hidden_size, 4096);
    CU_ASSERT_EQUAL(c.intermediate_size, 11008);
    CU_ASSERT_EQUAL(c.n_kv_heads, 32);
    CU_ASSERT_EQUAL(c.head_dim, 128);
    CU_ASSERT_EQUAL(c.rms_norm_eps, 1e-6);
    CU_ASSERT_EQUAL(c.rope_theta, 10000.0);
    CU_ASSERT(!c.tie_word_embeddings);
    CU_ASSERT(!c.attention_bias);
    /* Mistral: 8 kv heads, 14336 */
    CU_ASSERT_EQUAL_FATAL(parse("{\"model_type\":\"mistral\",\"sliding_window\":4096}", &c), LQ_OK);
    CU_ASSERT_EQUAL(c.n_kv_heads, 8);
    CU_ASSERT_EQUAL(c.intermediate_size, 14336);
    CU_ASSERT_EQUAL(c.sliding_window, 4096);
    /* Qwen2: q/k/v biases always; sliding window only with use_sliding_window */
    CU_ASSERT_EQUAL_FATAL(parse("{\"model_type\":\"qwen2\",\"hidden_size\":896,\"num_attention_heads\":14,"
                                "\"num_key_value_heads\":2,\"sliding_window\":32768,\"use_sliding_window\":false,"
                                "\"tie_word_embeddings\":true,\"torch_dtype\":\"bfloat16\"}",
                                &c),
                          LQ_OK);
    CU_ASSERT(c.attention_bias);
    CU_ASSERT_EQUAL(c.sliding_window, 0);
    CU_ASSERT_EQUAL(c.head_dim, 64);
    CU_ASSERT_EQUAL(c.vocab_size, 151936);
    CU_ASSERT_EQUAL(c.dtype, LQ_DTYPE_BF16);
    /* Llama-3.2-1B style: llama3 rope_scaling, eos list, new "dtype" wins over torch_dtype */
    CU_ASSERT_EQUAL_FATAL(parse("{\"model_type\":\"llama\",\"hidden_size\":2048,\"num_attention_heads\":32,"
                                "\"num_key_value_heads\":8,\"head_dim\":64,\"rope_theta\":500000.0,"
                                "\"rope_scaling\":{\"factor\":32.0,\"high_freq_factor\":4.0,\"low_freq_factor\":1.0,"
                                "\"original_max_position_embeddings\":8192,\"rope_type\":\"llama3\"},"
                                "\"eos_token_id\":[128001,128008,128009],\"dtype\":\"float16\",\"torch_dtype\":\"float32\"}",
                                &c),
                          LQ_OK);
    CU_ASSERT_EQUAL(c.rope_type, LQ_ROPE_LLAMA3);
    CU_ASSERT_EQUAL(c.rope_factor, 32.0);
    CU_ASSERT_EQUAL(c.rope_original_max_pos, 8192);
    CU_ASSERT_EQUAL(c.rope_theta, 500000.0);
    CU_ASSERT_EQUAL(c.n_eos, 3);
    CU_ASSERT_EQUAL(c.eos_token_id[2], 128009);
    CU_ASSERT_EQUAL(c.dtype, LQ_DTYPE_F16);
    /* transformers v5: rope_parameters carries rope_theta; legacy "type" key */
    CU_ASSERT_EQUAL_FATAL(parse("{\"model_type\":\"llama\",\"rope_parameters\":{\"rope_type\":\"default\","
                                "\"rope_theta\":1000000.0}}",
                                &c),
                          LQ_OK);
    CU_ASSERT_EQUAL(c.rope_theta, 1000000.0);
    CU_ASSERT_EQUAL(c.rope_type, LQ_ROPE_DEFAULT);
    CU_ASSERT_EQUAL_FATAL(parse("{\"model_type\":\"llama\",\"rope_scaling\":{\"type\":\"linear\",\"factor\":2}}", &c),
                          LQ_OK);
    CU_ASSERT_EQUAL(c.rope_type, LQ_ROPE_LINEAR);
    CU_ASSERT_EQUAL(c.rope_factor, 2.0);
    /* refusals */
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(parse("{\"model_type\":\"gpt2\"}", &c), LQ_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(parse("{\"model_type\":\"llama\",\"hidden_act\":\"gelu\"}", &c), LQ_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(parse("{\"model_type\":\"llama\",\"num_attention_heads\":32,\"num_key_value_heads\":5}", &c),
                    LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(parse("{\"model_type\":\"llama\",\"hidden_size\":\"big\"}", &c), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(parse("{\"model_type\":\"llama\",\"torch_dtype\":\"int7\"}", &c), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(parse("{\"model_type\":\"llama\",\"rope_scaling\":{\"rope_type\":\"su\"}}", &c), LQ_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(parse("{\"model_type\":\"llama\",}", &c), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(parse("{}", &c), LQ_ERR_FORMAT);
    lq_test_quiet(0);
}

static void test_checkpoint_config_round_trip(void) {
    lq_model_config a, b;
    CU_ASSERT_EQUAL_FATAL(lq_hfconfig_load(lq_test_shared("stories260K-hf/config.json"), &a), LQ_OK);
    a.rope_type             = LQ_ROPE_LLAMA3;
    a.rope_factor           = 8;
    a.rope_low_freq_factor  = 1;
    a.rope_high_freq_factor = 4;
    a.rope_original_max_pos = 8192;
    char  *text;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(lq_hfconfig_to_json(&a, &text, &len), LQ_OK);
    CU_ASSERT_EQUAL_FATAL(lq_hfconfig_parse(text, len, "rt", &b), LQ_OK);
    lq_free(text);
    CU_ASSERT_EQUAL(memcmp(&a, &b, sizeof a), 0);
}

CU_pSuite lq_test_checkpoint_suite(void) {
    CU_pSuite s = lq_test_add_suite("checkpoint");
    LQ_ADD_TEST(s, test_checkpoint_detects_kinds);
    LQ_ADD_TEST(s, test_checkpoint_config_defaults_and_renames);
    LQ_ADD_TEST(s, test_checkpoint_config_round_trip);
    return s;
}
