/* fuzz_calib.c : libFuzzer target for the calibration-data parsers
 * (calib_internal.h): the first input byte picks the parser (.npy, .npz,
 * gzip), the rest is the file. Accepted .npy/.npz arrays must have every id
 * in [0, 512) (the vocabulary passed); gunzip output must respect the size
 * limit. Any violation abort()s; ASan/UBSan catch the rest. Replayed without
 * libFuzzer by fuzz_main.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "calib_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                   \
    do {                                                                           \
        if (!(c)) {                                                                \
            fprintf(stderr, "fuzz_calib.c:%d: check failed: %s\n", __LINE__, #c); \
            abort();                                                               \
        }                                                                          \
    } while (0)

static void quiet(lq_log_level level, const char *msg, void *user) {
    (void)level, (void)msg, (void)user;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lq_log_set(quiet, NULL);
    if (size < 1) return 0;
    const uint8_t *b = data + 1;
    const size_t   n = size - 1;
    int32_t       *ids = NULL;
    int64_t        count = 0;
    switch (data[0] % 3) {
    case 0:
        if (lq__calib_parse_npy(b, n, "fuzz.npy", 512, &ids, &count) == LQ_OK)
            for (int64_t i = 0; i < count; i++) CHECK(ids[i] >= 0 && ids[i] < 512);
        break;
    case 1:
        if (lq__calib_parse_npz(b, n, 1 << 20, "fuzz.npz", 512, &ids, &count) == LQ_OK)
            for (int64_t i = 0; i < count; i++) CHECK(ids[i] >= 0 && ids[i] < 512);
        break;
    default: {
        uint8_t *out = NULL;
        size_t   len = 0;
        if (lq__calib_gunzip(b, n, 1 << 16, "fuzz.gz", &out, &len) == LQ_OK) CHECK(len <= (1 << 16));
        lq_free(out);
        break;
    }
    }
    lq_free(ids);
    return 0;
}
