/* fuzz_calib.c : libFuzzer target for the calibration-data parsers
 * (calib_internal.h), through lq__calib_parse_mem: byte 0 picks the kind
 * (its low 7 bits modulo 6, in lq_calib_kind order: text, jsonl, u16, u32,
 * npy, npz) and, with its top bit set, gzip in front; the rest is the file.
 * Text and JSON Lines go through a small llama2.c tokenizer built in memory
 * (ids 0..258, a few letters and merges; BOS = 1). Checks on what is accepted: every
 * id in [0, vocab) (512 for token files, the tokenizer's vocabulary for
 * text), a raw file gives exactly len/width ids, and the windows drawn from
 * the stream (lq_calib_from_tokens) are slices of it after BOS. Any
 * violation abort()s; ASan/UBSan catch the rest. Replayed without libFuzzer
 * by fuzz_main.c; seeds come from tests/data/calib/make_calib_fixtures.py. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calib_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                                       \
    do {                                                                                                               \
        if (!(c)) {                                                                                                    \
            fprintf(stderr, "fuzz_calib.c:%d: check failed: %s\n", __LINE__, #c);                                      \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

#define TOKEN_VOCAB 512
#define LIMIT (1u << 20) /* decompressed bytes */

static void quiet(lq_log_level level, const char *msg, void *user) { (void)level, (void)msg, (void)user; }

/* llama2.c tokenizer.bin: u32 max_token_length, then per piece f32 score,
 * i32 length, bytes */
static const char *const merges[] = {" ",  "t",  "h",    "e",  "a",  "n",  "d",    "i",  "g",  " t",
                                     "th", "he", " the", "an", " a", "nd", " and", "in", "ing"};
#define N_MERGES (sizeof merges / sizeof merges[0])
#define L2C_VOCAB (259 + (int32_t)N_MERGES)

static size_t put_piece(uint8_t *out, float score, const char *s, size_t n) {
    memcpy(out, &score, 4);
    const int32_t len = (int32_t)n;
    memcpy(out + 4, &len, 4);
    memcpy(out + 8, s, n);
    return 8 + n;
}

static lq_tokenizer *tokenizer(void) {
    static lq_tokenizer *tok;
    if (tok) return tok;
    uint8_t  buf[8192];
    size_t   n   = 0;
    uint32_t max = 8;
    memcpy(buf, &max, 4);
    n += 4;
    n += put_piece(buf + n, 0.0f, "<unk>", 5);
    n += put_piece(buf + n, 0.0f, "<s>", 3);
    n += put_piece(buf + n, 0.0f, "</s>", 4);
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        n += put_piece(buf + n, 0.0f, s, 6);
    }
    for (size_t i = 0; i < N_MERGES; i++)
        n += put_piece(buf + n, (float)(N_MERGES - i), merges[i], strlen(merges[i]));
    CHECK(lq_tokenizer_open_mem(buf, n, L2C_VOCAB, &tok) == LQ_OK);
    CHECK(lq_tokenizer_bos(tok) == 1);
    return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lq_log_set(quiet, NULL);
    if (size < 1) return 0;
    const lq_calib_kind kind  = (lq_calib_kind)((data[0] & 0x7f) % 6);
    const bool          gz    = (data[0] & 0x80) != 0;
    const uint8_t      *b     = data + 1;
    const size_t        n     = size - 1;
    const bool          text  = kind == LQ_CALIB_TEXT || kind == LQ_CALIB_JSONL;
    const int64_t       vocab = text ? L2C_VOCAB : TOKEN_VOCAB;
    int32_t            *ids   = NULL;
    int64_t             count = -1;
    const lq_status     st    = lq__calib_parse_mem(kind, gz, b, n, "fuzz", tokenizer(), vocab, LIMIT, &ids, &count);
    if (st != LQ_OK) {
        CHECK(ids == NULL);
        return 0;
    }
    CHECK(ids != NULL && count >= 0);
    for (int64_t i = 0; i < count; i++)
        CHECK(ids[i] >= 0 && ids[i] < vocab);
    if (!gz && kind == LQ_CALIB_RAW_U16) CHECK(count == (int64_t)(n / 2));
    if (!gz && kind == LQ_CALIB_RAW_U32) CHECK(count == (int64_t)(n / 4));
    if (!gz && (kind == LQ_CALIB_NPY || kind == LQ_CALIB_NPZ)) CHECK(count <= (int64_t)LIMIT);
    if (kind == LQ_CALIB_TEXT) CHECK(count <= (int64_t)(gz ? LIMIT : n) + 1);
    /* windows over the stream: BOS, then stream[offset, offset + seq_len - 1) */
    if (count >= 1) {
        lq_calib_params p = lq_calib_default_params();
        p.n_samples       = 4;
        p.seq_len         = count < 16 ? count + 1 : 17;
        p.seed            = (uint64_t)count;
        p.vocab_size      = vocab;
        lq_calib_set *c   = NULL;
        CHECK(lq_calib_from_tokens(ids, count, 1, &p, &c) == LQ_OK);
        for (int64_t i = 0; i < c->n_samples; i++) {
            const int32_t *w = c->tokens + i * c->seq_len;
            CHECK(c->offsets[i] >= 0 && c->offsets[i] + c->seq_len - 1 <= count);
            CHECK(w[0] == 1);
            CHECK(memcmp(w + 1, ids + c->offsets[i], (size_t)(c->seq_len - 1) * sizeof *w) == 0);
        }
        lq_calib_free(c);
    }
    lq_free(ids);
    return 0;
}
