/* lq_tokenizer.h : tokenizers (public; part of the formats module).
 *
 * Three file kinds, one interface:
 *   - SentencePiece `.model` (protobuf ModelProto; BPE models, byte fallback,
 *     normalizer flags add_dummy_prefix / remove_extra_whitespaces /
 *     escape_whitespaces; the identity normalizer only)
 *   - Hugging Face `tokenizer.json` with a BPE model: Llama-2 style
 *     (Prepend/Replace normalizer or Metaspace pre-tokenizer, byte_fallback)
 *     and byte-level style (GPT-2 / Llama-3 / Qwen2: ByteLevel + Split regex
 *     pre-tokenizer, ignore_merges, NFC), added tokens split out first;
 *     Split regexes are matched by a small Oniguruma-compatible matcher and
 *     patterns outside its subset are refused (LQ_ERR_UNSUPPORTED)
 *   - llama2.c `tokenizer.bin` (scores, llama2.c's own encoder semantics)
 * Encoding never adds BOS/EOS by itself: callers ask (add_bos). Decoding of a
 * single id returns its text piece (bytes, not necessarily valid UTF-8 alone).
 * Every file is parsed as hostile input: lengths checked, limits enforced.
 * A loaded tokenizer is read-only: encode/decode may run concurrently. */
#ifndef LQ_TOKENIZER_H
#define LQ_TOKENIZER_H

#include "lq_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lq_tokenizer lq_tokenizer;

typedef enum {
    LQ_TOK_SENTENCEPIECE = 0,  /* .model                     */
    LQ_TOK_HF_BPE,             /* tokenizer.json, BPE model   */
    LQ_TOK_LLAMA2C             /* llama2.c tokenizer.bin      */
} lq_tok_kind;

/*! lq_tokenizer_open() : detect the kind from the content (protobuf,
 *  JSON, or llama2.c's binary) and load it. For a llama2.c tokenizer.bin,
 *  `vocab_size` must be the model's vocabulary size (the file does not store
 *  it, and must end after exactly that many tokens); pass 0 for the other
 *  kinds (a non-zero value does not prevent them from being detected).
 *  @return LQ_OK, LQ_ERR_IO, LQ_ERR_FORMAT, LQ_ERR_UNSUPPORTED (e.g. a Unigram
 *  model or a WordPiece tokenizer.json), LQ_ERR_NOMEM. */
lq_status lq_tokenizer_open(const char *path, int32_t vocab_size, lq_tokenizer **out);
/*! lq_tokenizer_open_mem() : the same from `size` bytes at `data` (e.g. a
 *  file already in memory, or a fuzzer's input). Nothing is retained:
 *  `data` may be freed once this returns. */
lq_status lq_tokenizer_open_mem(const void *data, size_t size, int32_t vocab_size, lq_tokenizer **out);
/* the same from a directory: tokenizer.json, else tokenizer.model; with a
 * tokenizer.json, bos_token/eos_token of a tokenizer_config.json beside it
 * (when present) set lq_tokenizer_bos()/lq_tokenizer_eos() */
lq_status lq_tokenizer_open_dir(const char *dir, lq_tokenizer **out);
void      lq_tokenizer_free(lq_tokenizer *t); /* accepts NULL */

lq_tok_kind lq_tokenizer_kind(const lq_tokenizer *t);
int32_t     lq_tokenizer_vocab_size(const lq_tokenizer *t);
int32_t     lq_tokenizer_bos(const lq_tokenizer *t); /* -1 if none */
int32_t     lq_tokenizer_eos(const lq_tokenizer *t); /* -1 if none */

/*! lq_tokenizer_encode() : encode `len` bytes of UTF-8 `text` (invalid UTF-8
 *  is handled as the reference implementation does: byte fallback or U+FFFD).
 *  Writes at most `cap` ids to `ids` and the total count to *n_ids; if the
 *  total exceeds cap, returns LQ_ERR_INVALID_ARG with *n_ids = the needed
 *  count (call again with a larger buffer). add_bos prepends BOS if the
 *  tokenizer has one. */
lq_status lq_tokenizer_encode(const lq_tokenizer *t, const char *text, size_t len, bool add_bos, int32_t *ids,
                              size_t cap, size_t *n_ids);

/*! lq_tokenizer_decode_piece() : the bytes that token `id` contributes to the
 *  text when it follows token `prev` (-1 at the start): SentencePiece and
 *  llama2.c drop the leading space of the first piece after BOS; byte tokens
 *  <0xXX> give their raw byte; "▁" becomes a space; byte-level tokens are
 *  mapped back to bytes. Returns the length written to buf (at most cap), or
 *  -1 for an invalid id. Control tokens (BOS/EOS) give "". */
int lq_tokenizer_decode_piece(const lq_tokenizer *t, int32_t prev, int32_t id, char *buf, size_t cap);

/* the vocabulary string of `id` as stored (NULL if out of range) */
const char *lq_tokenizer_piece(const lq_tokenizer *t, int32_t id);

/*! lq_tokenizer_score() : the score of `id` (SentencePiece and llama2.c:
 *  as stored, higher merges first); 0 for tokenizer.json BPE (merge ranks
 *  decide there) and for an id out of range. */
float lq_tokenizer_score(const lq_tokenizer *t, int32_t id);

/*! lq_tokenizer_token_type() : the kind of token `id`, numbered as
 *  SentencePiece and GGUF's tokenizer.ggml.token_type number them: 1 normal,
 *  2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte; 0 for an id out
 *  of range. SentencePiece: the piece type as stored. llama2.c: id 0
 *  unknown, ids 1-2 control (BOS, EOS), "<0xXX>" pieces byte, else normal.
 *  tokenizer.json: added tokens control when `special`, else user-defined;
 *  unk_token unknown; "<0xXX>" pieces byte with byte_fallback; ids missing
 *  from the vocabulary (holes) unused; else normal. */
int lq_tokenizer_token_type(const lq_tokenizer *t, int32_t id);

/*! lq_tokenizer_merge_count() / lq_tokenizer_merge() : the merges of a
 *  tokenizer.json BPE model in rank order, each as "left right" (one space;
 *  NUL-terminated, owned by the tokenizer). Count 0 and NULL for the other
 *  kinds and for i out of range. */
int64_t     lq_tokenizer_merge_count(const lq_tokenizer *t);
const char *lq_tokenizer_merge(const lq_tokenizer *t, int64_t i);

#ifdef __cplusplus
}
#endif
#endif /* LQ_TOKENIZER_H */
