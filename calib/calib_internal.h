/* calib_internal.h : the in-memory parsers of calib_data.c, for the fuzz
 * target and the tests. Each treats every byte as hostile and logs once. */
#ifndef LQ_CALIB_INTERNAL_H
#define LQ_CALIB_INTERNAL_H

#include "lq_calib.h"

/* gzip (or zlib) data -> bytes, at most `limit` of them */
lq_status lq__calib_gunzip(const uint8_t *src, size_t n, uint64_t limit, const char *label, uint8_t **out,
                           size_t *len);
/* a .npy integer array -> ids (each in [0, vocab) when vocab > 0) */
lq_status lq__calib_parse_npy(const uint8_t *b, size_t n, const char *label, int64_t vocab, int32_t **ids,
                              int64_t *count);
/* a .npz (zip of .npy) -> the ids of input_ids.npy, tokens.npy or its only member */
lq_status lq__calib_parse_npz(const uint8_t *b, size_t n, uint64_t limit, const char *label, int64_t vocab,
                              int32_t **ids, int64_t *count);
/* JSON Lines with a string field "text" per record, each tokenized with BOS */
lq_status lq__calib_parse_jsonl(const uint8_t *b, size_t n, const char *label, const lq_tokenizer *tok, int32_t **ids,
                                int64_t *count);

#endif
