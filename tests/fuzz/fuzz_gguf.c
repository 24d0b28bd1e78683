/* fuzz_gguf.c : libFuzzer target for the GGUF reader. Every accepted file is
 * walked completely: each tensor's bytes are read (ASan catches a view
 * outside the buffer) and found by name, its GGUF name mapped back to HF;
 * every key is read through each getter (scalars, strings, the first and
 * last element of arrays), and the llama config is derived. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lq_qformats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lq_gguf *g = NULL;
    if (lq_gguf_open_memory(data, size, "fuzz", &g) != LQ_OK) return 0;
    uint64_t sum = 0;
    for (int64_t i = 0; i < lq_gguf_count(g); i++) {
        const lq_tensor_info *t = lq_gguf_tensor(g, i);
        if (lq_gguf_find(g, t->name) != t) abort();
        const uint8_t *p = t->data;
        if (t->nbytes && (p < data || p + t->nbytes > data + size)) abort();
        for (uint64_t k = 0; k < t->nbytes; k++) sum += p[k];
        char hf[128];
        (void)lq_gguf_hf_name(t->name, hf, sizeof hf);
        if (lq_gguf_tensor_ggml_type(g, i) < 0) abort();
    }
    for (int64_t i = 0; i < lq_gguf_kv_count(g); i++) {
        const char *key = lq_gguf_kv_key(g, i);
        int64_t     v;
        double      d;
        bool        b;
        const char *s;
        (void)lq_gguf_get_i64(g, key, &v);
        (void)lq_gguf_get_f64(g, key, &d);
        (void)lq_gguf_get_bool(g, key, &b);
        if (lq_gguf_get_str(g, key, &s) == LQ_OK) sum += strlen(s);
        lq_gguf_type et;
        uint64_t     n;
        if (lq_gguf_get_array(g, key, &et, &n) == LQ_OK && n > 0) {
            const uint64_t idx[2] = {0, n - 1};
            for (int k = 0; k < 2; k++) {
                uint64_t len;
                if (lq_gguf_array_str(g, key, idx[k], &s, &len) == LQ_OK)
                    for (uint64_t c = 0; c < len; c++) sum += (uint8_t)s[c];
                (void)lq_gguf_array_f64(g, key, idx[k], &d);
                (void)lq_gguf_array_i64(g, key, idx[k], &v);
            }
            (void)lq_gguf_array_i64(g, key, n, &v); /* out of range */
        }
    }
    lq_model_config c;
    (void)lq_gguf_config(g, &c);
    (void)sum;
    lq_gguf_close(g);
    return 0;
}
