/* fuzz_safetensors.c : libFuzzer target for the safetensors header + JSON
 * reader. Every accepted file must tile its buffer: the tensors' bytes are
 * read (ASan catches any out-of-bounds view) and each is found by name. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lq_formats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lq_safetensors *st = NULL;
    if (lq_safetensors_open_memory(data, size, "fuzz", &st) != LQ_OK) return 0;
    uint64_t total = 0, sum = 0;
    for (int64_t i = 0; i < lq_safetensors_count(st); i++) {
        const lq_tensor_info *t = lq_safetensors_tensor(st, i);
        if (lq_safetensors_find(st, t->name) != t) abort();
        const uint8_t *p = t->data;
        for (uint64_t k = 0; k < t->nbytes; k++) sum += p[k];
        total += t->nbytes;
    }
    if (8 + lq_safetensors_header_size(st) + total != size) abort(); /* the tiling rule */
    (void)sum;
    lq_safetensors_close(st);
    return 0;
}
