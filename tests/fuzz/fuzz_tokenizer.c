/* fuzz_tokenizer.c : libFuzzer target for the tokenizer readers and encoders.
 *
 * Input: one mode byte, then a tokenizer file (SentencePiece protobuf,
 * tokenizer.json or llama2.c tokenizer.bin). The mode byte times 4 is the
 * vocab_size passed to lq_tokenizer_open_mem (0: detect a .model/.json;
 * 128: a 512-token tokenizer.bin). Whatever opens must encode a fixed set of
 * strings (ASCII, multi-byte UTF-8, ill-formed UTF-8, added-token look-alikes)
 * and, when the input is long enough, its own tail as text; every id must be
 * in range, the size query must agree with the real call, and every id must
 * decode. Any violation abort()s. Replayed without libFuzzer by fuzz_main.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lq_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                                       \
    do {                                                                                                               \
        if (!(c)) {                                                                                                    \
            fprintf(stderr, "fuzz_tokenizer.c:%d: check failed: %s\n", __LINE__, #c);                                  \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

static void exercise(const lq_tokenizer *t, const char *s, size_t n) {
    size_t          need = 0;
    const lq_status q    = lq_tokenizer_encode(t, s, n, true, NULL, 0, &need);
    /* UNSUPPORTED: a hostile regex ran out of its backtracking budget */
    CHECK(q == LQ_OK || q == LQ_ERR_INVALID_ARG || q == LQ_ERR_UNSUPPORTED || q == LQ_ERR_NOMEM);
    if (q != LQ_ERR_INVALID_ARG) {
        CHECK(q != LQ_OK || need == 0);
        return;
    }
    int32_t *ids = malloc(need * sizeof *ids);
    CHECK(ids != NULL);
    size_t          k  = 0;
    const lq_status st = lq_tokenizer_encode(t, s, n, true, ids, need, &k);
    CHECK(st == LQ_OK && k == need);
    const int32_t nv = lq_tokenizer_vocab_size(t);
    char          piece[64];
    for (size_t i = 0; i < k; i++) {
        CHECK(ids[i] >= 0 && ids[i] < nv);
        const int m = lq_tokenizer_decode_piece(t, i ? ids[i - 1] : -1, ids[i], piece, sizeof piece);
        CHECK(m >= -1 && m <= (int)sizeof piece);
    }
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int32_t   vocab = (int32_t)data[0] * 4;
    lq_tokenizer   *t     = NULL;
    const lq_status st    = lq_tokenizer_open_mem(data + 1, size - 1, vocab, &t);
    CHECK(st == LQ_OK || st == LQ_ERR_FORMAT || st == LQ_ERR_UNSUPPORTED || st == LQ_ERR_NOMEM ||
          st == LQ_ERR_INVALID_ARG);
    CHECK((st == LQ_OK) == (t != NULL));
    if (!t) return 0;
    CHECK(lq_tokenizer_vocab_size(t) > 0);
    CHECK(lq_tokenizer_bos(t) < lq_tokenizer_vocab_size(t) && lq_tokenizer_eos(t) < lq_tokenizer_vocab_size(t));
    static const char *const texts[] = {
        "",
        " ",
        "Once upon a time, there was a little fox.",
        "  two  spaces \t tab\r\nnewline  ",
        "h\xC3\xA9llo \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80 e\xCC\x81",
        ("a\xFF"
         "b\xC0\xAF\xE6\x97\x80\x80"),
        "<s></s><unk><|endoftext|>[CLS] it's IT'S 12345",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        exercise(t, texts[i], strlen(texts[i]));
    if (size > 64) exercise(t, (const char *)data + size - 64, 64);
    for (int32_t id = 0; id < lq_tokenizer_vocab_size(t) && id < 600; id++) {
        char buf[8];
        CHECK(lq_tokenizer_decode_piece(t, -1, id, buf, sizeof buf) <= 8);
        (void)lq_tokenizer_piece(t, id);
    }
    lq_tokenizer_free(t);
    return 0;
}
