/* calib_internal.h : the in-memory parsers behind lq_calib_load()
 * (calib_data.c, calib_npy.c), for the tests and the fuzz target.
 *
 * Each takes `n` bytes at `b` (every byte hostile), names `label` (the file)
 * in its single log line, and on LQ_OK hands back an lq_malloc'ed stream of
 * *count ids in *ids (free with lq_free; *ids is not NULL even when *count is
 * 0). On failure *ids is NULL and nothing is left allocated. `vocab` > 0
 * bounds the ids to [0, vocab) (LQ_ERR_INVALID_ARG otherwise); every id is
 * >= 0 and <= INT32_MAX in any case. */
#ifndef LQ_CALIB_INTERNAL_H
#define LQ_CALIB_INTERNAL_H

#include "lq_calib.h"

#ifdef __cplusplus
extern "C" {
#endif

/* gzip (or zlib; concatenated gzip members too) -> at most `limit` bytes
 * (more is LQ_ERR_FORMAT); *out lq_malloc'ed */
lq_status lq__calib_gunzip(const uint8_t *src, size_t n, uint64_t limit, const char *label, uint8_t **out, size_t *len);
/* raw little-endian ids, `width` 2 (uint16) or 4 (uint32) bytes each */
lq_status lq__calib_parse_raw(const uint8_t *b, size_t n, size_t width, const char *label, int64_t vocab, int32_t **ids,
                              int64_t *count);
/* a .npy integer array, 1-D or 2-D, C order (header rules in calib_npy.c) */
lq_status lq__calib_parse_npy(const uint8_t *b, size_t n, const char *label, int64_t vocab, int32_t **ids,
                              int64_t *count);
/* a .npz: the member input_ids.npy, else tokens.npy, else the only one;
 * the member's size is limited to `limit` bytes */
lq_status lq__calib_parse_npz(const uint8_t *b, size_t n, uint64_t limit, const char *label, int64_t vocab,
                              int32_t **ids, int64_t *count);
/* text: lq_tokenizer_encode(tok, b, n, add_bos = false) in one call */
lq_status lq__calib_parse_text(const uint8_t *b, size_t n, const char *label, const lq_tokenizer *tok, int64_t vocab,
                               int32_t **ids, int64_t *count);
/* JSON Lines: per non-blank line an object with a string "text", each
 * encoded with add_bos = true, concatenated; errors name "label:line" */
lq_status lq__calib_parse_jsonl(const uint8_t *b, size_t n, const char *label, const lq_tokenizer *tok, int64_t vocab,
                                int32_t **ids, int64_t *count);
/* the whole path of lq_calib_load() after reading the file: gunzip when
 * `gzipped` (else n <= limit is required), then the parser of `kind`; text
 * and JSON Lines need `tok` (LQ_ERR_INVALID_ARG without) */
lq_status lq__calib_parse_mem(lq_calib_kind kind, bool gzipped, const uint8_t *b, size_t n, const char *label,
                              const lq_tokenizer *tok, int64_t vocab, uint64_t limit, int32_t **ids, int64_t *count);

/* the signed (ONNX Runtime) histogram of h: counts, bins, threshold (calib_hist.c) */
const int64_t *lq__hist_signed(const lq_hist *h, int64_t *nb, double *th);

#ifdef __cplusplus
}
#endif
#endif /* LQ_CALIB_INTERNAL_H */
