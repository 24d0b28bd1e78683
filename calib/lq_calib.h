/* lq_calib.h : calibration data (public; calib module, on top of core and
 * formats).
 *
 * A calibration set is n_samples windows of seq_len token ids, picked
 * reproducibly from one token stream:
 *   text      .txt, .txt.gz (zlib): the whole file is tokenized as one text
 *             (with the tokenizer's BOS when it has one).
 *   JSON Lines .jsonl, .jsonl.gz: every line an object with a string field
 *             `text` (other fields ignored; blank lines skipped); each record
 *             is tokenized on its own (BOS first) and the records are
 *             concatenated in file order.
 *   tokens    .bin/.u16/.u32 raw little-endian uint16 (.u16 and .bin) or
 *             uint32 (.u32) ids; .npy (little-endian u1/u2/u4/i2/i4/i8/u8
 *             integer arrays, C order, 1-D or 2-D read row-major as one
 *             stream); .npz (zip, stored or deflated, through libzip: the
 *             array named `input_ids`, else `tokens`, else the only one).
 *             Ids must be < the vocabulary size (when given) and >= 0.
 * The kind comes from the name (case-insensitive suffix); unknown suffixes
 * are refused with the list above.
 *
 * Windows: the stream has N tokens; with L = seq_len, window i starts at
 * offset o_i drawn uniformly from [0, N - L'] where L' = L - 1 when a BOS is
 * prepended (bos_id >= 0 and prepend_bos) else L; the window is [BOS] +
 * stream[o_i, o_i + L'). The draws come from a splitmix64 generator seeded
 * with `seed` (the k-th draw: splitmix64 output modulo (N - L' + 1) by
 * rejection of the biased top range), so the same file, tokenizer and
 * options give the same windows on every machine. N < L' is an error
 * (LQ_ERR_INVALID_ARG naming the file and both counts).
 *
 * Every input byte is hostile: sizes overflow-checked, a decompressed size
 * limit (max_bytes), JSON through the strict reader, .npy headers parsed
 * without eval. Errors are logged once, naming the file (and line). */
#ifndef LQ_CALIB_H
#define LQ_CALIB_H

#include "lq_common.h"
#include "lq_tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    LQ_CALIB_TEXT = 0, /* .txt, .txt.gz                     */
    LQ_CALIB_JSONL,    /* .jsonl, .jsonl.gz                 */
    LQ_CALIB_RAW_U16,  /* .bin, .u16                        */
    LQ_CALIB_RAW_U32,  /* .u32                              */
    LQ_CALIB_NPY,      /* .npy                              */
    LQ_CALIB_NPZ       /* .npz                              */
} lq_calib_kind;

const char *lq_calib_kind_name(lq_calib_kind k); /* "text", "jsonl", "u16", "u32", "npy", "npz" */
/* the kind from a file name; LQ_ERR_UNSUPPORTED (no log) for other suffixes */
lq_status lq_calib_kind_of(const char *path, lq_calib_kind *out);

typedef struct {
    int64_t  n_samples;   /* windows; 128                                               */
    int64_t  seq_len;     /* tokens per window, BOS included; 512                         */
    uint64_t seed;        /* 0                                                            */
    bool     prepend_bos; /* true: windows start with the tokenizer's BOS (when it has one) */
    int64_t  vocab_size;  /* > 0: token files must stay below it; 0 = unchecked            */
    uint64_t max_bytes;   /* limit on the decompressed input; 0 = 4 GiB                    */
} lq_calib_params;

lq_calib_params lq_calib_default_params(void);

typedef struct {
    lq_calib_kind kind;
    char          sha256[65];   /* hex sha256 of the input file's bytes as stored           */
    uint64_t      file_bytes;
    int64_t       n_stream;     /* tokens in the whole stream                              */
    int64_t       n_samples, seq_len;
    int32_t       bos_id;       /* the id put first in each window, or -1 when none         */
    int32_t      *tokens;       /* n_samples x seq_len ids                                 */
    int64_t      *offsets;      /* n_samples: stream offset of each window's first
                                   non-BOS token                                            */
} lq_calib_set;

/*! lq_calib_load() : read `path` and pick the windows. `tok` is required for
 *  text and JSON Lines (LQ_ERR_INVALID_ARG without one) and gives the BOS id
 *  for every kind (may be NULL for token files: then no BOS). `p` may be
 *  NULL (defaults). */
lq_status lq_calib_load(const char *path, const lq_tokenizer *tok, const lq_calib_params *p, lq_calib_set **out);
/*! lq_calib_from_tokens() : the same window choice over a token stream in
 *  memory (tests, callers with their own data); kind = LQ_CALIB_RAW_U32 and
 *  sha256 over the ids as little-endian uint32. */
lq_status lq_calib_from_tokens(const int32_t *ids, int64_t n, int32_t bos_id, const lq_calib_params *p,
                               lq_calib_set **out);
void lq_calib_free(lq_calib_set *c); /* accepts NULL */

#ifdef __cplusplus
}
#endif
#endif /* LQ_CALIB_H */
