/* tokenizer_l2c.c : llama2.c `tokenizer.bin` (karpathy/llama2.c tokenizer.py
 * writes it, run.c reads it) with run.c's own encoder and decoder.
 *
 * File: u32 max_token_length, then per token (the model header's vocab_size
 * of them; the file does not store the count) f32 score, i32 length, bytes
 * (no NUL; SentencePiece's U+2581 already replaced by ' '). The file must
 * end exactly after the last token.
 *
 * Encoder (run.c encode): the id of the piece " " as a dummy prefix when
 * the text is not empty; then each UTF-8 code point (a lead byte and at most
 * 3 continuation bytes, exactly as run.c groups them) as a piece if the
 * vocabulary has it, else each byte as id byte + 3; then repeatedly merge
 * the adjacent pair whose concatenation is a piece with the strictly highest
 * score (scores must beat -1e10), leftmost on ties. No whitespace handling.
 * Where run.c would misbehave on a hostile vocabulary (no " " piece, fewer
 * than 259 pieces) we skip the prefix / use id 0 instead. */
#include "tokenizer_internal.h"

#include <stdio.h>
#include <string.h>

struct lq__l2c {
    float     *score;
    lq__strtab index; /* piece -> lowest id with that string */
    uint32_t   max_len;
    int32_t    space_id;
};

static uint32_t rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* walks the file; the error text (if any) goes to err */
static bool walk(const uint8_t *d, size_t size, int32_t vocab_size, char *err, size_t err_cap) {
    if (size < 4) {
        snprintf(err, err_cap, "%zu bytes, too short for the header", size);
        return false;
    }
    size_t off = 4;
    for (int32_t i = 0; i < vocab_size; i++) {
        if (size - off < 8) {
            snprintf(err, err_cap, "truncated at token %d of %d (offset %zu)", i, vocab_size, off);
            return false;
        }
        const int32_t len = (int32_t)rd_u32(d + off + 4);
        off += 8;
        if (len < 0 || len > LQ__TOK_MAX_PIECE_LEN || (size_t)len > size - off) {
            snprintf(err, err_cap, "token %d has length %d at offset %zu (%zu bytes left)", i, len, off - 4,
                     size - off);
            return false;
        }
        off += (size_t)len;
    }
    if (off != size) {
        snprintf(err, err_cap, "%zu bytes after token %d: vocab_size %d is smaller than the file's", size - off,
                 vocab_size - 1, vocab_size);
        return false;
    }
    return true;
}

bool lq__l2c_plausible(const uint8_t *data, size_t size, int32_t vocab_size) {
    char err[160];
    return vocab_size > 0 && vocab_size <= LQ__TOK_MAX_VOCAB && walk(data, size, vocab_size, err, sizeof err);
}

lq_status lq__l2c_load(lq_tokenizer *t, const uint8_t *d, size_t size, int32_t vocab_size, const char *name) {
    char err[160];
    LQ_RETURN_IF(vocab_size <= 0 || vocab_size > LQ__TOK_MAX_VOCAB, LQ_ERR_INVALID_ARG,
                 "%s: vocab_size %d out of range for a llama2.c tokenizer", name, vocab_size);
    LQ_RETURN_IF(!walk(d, size, vocab_size, err, sizeof err), LQ_ERR_FORMAT, "%s: not a llama2.c tokenizer.bin: %s",
                 name, err);
    lq_status    st  = LQ_OK;
    const char **src = lq_malloc((size_t)vocab_size * sizeof *src);
    uint32_t    *len = lq_malloc((size_t)vocab_size * sizeof *len);
    lq__l2c     *l   = lq_calloc(1, sizeof *l);
    t->l2c           = l;
    LQ_GOTO_IF(!src || !len || !l, LQ_ERR_NOMEM, "out of memory (%d tokens)", vocab_size);
    l->score = lq_malloc((size_t)vocab_size * sizeof *l->score);
    LQ_GOTO_IF(!l->score, LQ_ERR_NOMEM, "out of memory");
    size_t off = 4;
    for (int32_t i = 0; i < vocab_size; i++) {
        const uint32_t u = rd_u32(d + off);
        memcpy(&l->score[i], &u, 4);
        len[i] = rd_u32(d + off + 4);
        src[i] = (const char *)d + off + 8;
        off += 8 + len[i];
        if (len[i] > l->max_len) l->max_len = len[i];
    }
    LQ_GOTO_TRY(lq__tok_set_pieces(t, src, len, vocab_size));
    LQ_GOTO_TRY(lq__strtab_init(&l->index, (size_t)vocab_size));
    for (int32_t i = 0; i < vocab_size; i++) {
        int32_t old;
        lq__strtab_put(&l->index, t->piece[i], t->piece_len[i], i, &old);
    }
    l->space_id = lq__strtab_get(&l->index, " ", 1);
    t->bos      = vocab_size > 1 ? 1 : -1;
    t->eos      = vocab_size > 2 ? 2 : -1;
done:
    lq_free(src);
    lq_free(len);
    return st;
}

/* accessors for lq_tokenizer_score / lq_tokenizer_token_type (id in range):
 * run.c's conventions, 0 <unk>, 1 <s>, 2 </s>, "<0xXX>" byte pieces */
float lq__l2c_score(const lq_tokenizer *t, int32_t id);
int   lq__l2c_token_type(const lq_tokenizer *t, int32_t id);
float lq__l2c_score(const lq_tokenizer *t, int32_t id) { return t->l2c->score[id]; }
int   lq__l2c_token_type(const lq_tokenizer *t, int32_t id) {
    static const char hex[] = "0123456789ABCDEF";
    const char       *p     = t->piece[id];
    if (id == 0) return 2;
    if (id <= 2) return 3;
    if (t->piece_len[id] == 6 && memcmp(p, "<0x", 3) == 0 && p[5] == '>' && memchr(hex, p[3], 16) &&
        memchr(hex, p[4], 16))
        return 6;
    return 1;
}

void lq__l2c_free(lq__l2c *l) {
    if (!l) return;
    lq_free(l->score);
    lq__strtab_free(&l->index);
    lq_free(l);
}

typedef struct {
    const lq_tokenizer *t;
    char               *scratch; /* 2 * max_len bytes */
} l2c_ctx;

static bool l2c_pair(void *vctx, const lq__bpe_sym *a, const lq__bpe_sym *b, bool is_push, double *prio,
                     int32_t *new_id) {
    (void)is_push;
    const l2c_ctx      *c  = vctx;
    const lq_tokenizer *t  = c->t;
    const uint32_t      la = t->piece_len[a->id], lb = t->piece_len[b->id];
    memcpy(c->scratch, t->piece[a->id], la);
    memcpy(c->scratch + la, t->piece[b->id], lb);
    const int32_t id = lq__strtab_get(&t->l2c->index, c->scratch, (size_t)la + lb);
    if (id < 0) return false;
    const float sc = t->l2c->score[id];
    if (!(sc > -1e10f)) return false; /* run.c starts from best_score = -1e10 and needs '>' */
    *prio   = sc;
    *new_id = id;
    return true;
}

lq_status lq__l2c_encode(const lq_tokenizer *t, const char *text, size_t len, lq__ivec *out) {
    const lq__l2c *l  = t->l2c;
    lq__bpe_work   w  = {0};
    l2c_ctx        c  = {.t = t, .scratch = NULL};
    lq_status      st = LQ_OK;
    if (len == 0) return LQ_OK;
    LQ_GOTO_TRY(lq__bpe_work_syms(&w, len + 1));
    c.scratch = lq_malloc((size_t)l->max_len * 2 + 1);
    LQ_GOTO_IF(!c.scratch, LQ_ERR_NOMEM, "out of memory");
    int32_t n = 0;
#define L2C_ADD(tok)                                                                                                   \
    do {                                                                                                               \
        w.sym[n] = (lq__bpe_sym){.id = (tok), .prev = n - 1, .next = -1, .off = 0, .len = 1};                          \
        if (n > 0) w.sym[n - 1].next = n;                                                                              \
        n++;                                                                                                           \
    } while (0)
    if (l->space_id >= 0) L2C_ADD(l->space_id);
    const uint8_t *u = (const uint8_t *)text;
    for (size_t i = 0; i < len;) {
        /* run.c: a byte that is not a continuation starts a code point; at
         * most 4 bytes are gathered; a stray continuation byte starts one too */
        size_t g = 1;
        while (i + g < len && (u[i + g] & 0xC0) == 0x80 && g < 4)
            g++;
        const int32_t id = lq__strtab_get(&l->index, text + i, g);
        if (id >= 0) {
            L2C_ADD(id);
        } else {
            for (size_t k = 0; k < g; k++)
                L2C_ADD(u[i + k] + 3 < t->n_vocab ? (int32_t)u[i + k] + 3 : 0);
        }
        i += g;
    }
#undef L2C_ADD
    LQ_GOTO_TRY(lq__bpe_merge(&w, n, l2c_pair, &c));
    for (int32_t i = 0; i >= 0 && n > 0; i = w.sym[i].next)
        LQ_GOTO_TRY(lq__ivec_push(out, w.sym[i].id));
done:
    lq__bpe_work_free(&w);
    lq_free(c.scratch);
    return st;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

int lq__l2c_decode(const lq_tokenizer *t, int32_t prev, int32_t id, char *buf, size_t cap) {
    if (id == t->bos || id == t->eos) return 0;
    const char *p = t->piece[id];
    size_t      n = t->piece_len[id];
    if (prev == t->bos && n > 0 && p[0] == ' ') p++, n--; /* run.c decode, PR #89 */
    /* run.c: sscanf(piece, "<0x%02hhX>", &b) == 1 */
    if (n >= 4 && memcmp(p, "<0x", 3) == 0 && hexval((uint8_t)p[3]) >= 0) {
        int v = hexval((uint8_t)p[3]);
        if (n >= 5 && hexval((uint8_t)p[4]) >= 0) v = v * 16 + hexval((uint8_t)p[4]);
        const char b = (char)v;
        return lq__tok_out(buf, cap, &b, 1);
    }
    return lq__tok_out(buf, cap, p, n);
}
