/* tokenizer_spm.c : SentencePiece `.model` files (google/sentencepiece,
 * src/sentencepiece_model.proto) with the BPE model, encoded exactly as
 * sentencepiece 0.1.97 does (normalizer.cc, bpe_model.cc,
 * sentencepiece_processor.cc), which is what Debian's `spm_encode` runs.
 *
 * Reading: a minimal protobuf wire-format walker (varints, length-delimited
 * fields, fixed32/fixed64; unknown fields skipped; every length checked
 * against the bytes left). Only the identity normalizer is supported (an
 * empty precompiled_charsmap): its flags add_dummy_prefix,
 * remove_extra_whitespaces and escape_whitespaces are honoured.
 *
 * Encoding: normalize (collapse/strip ' ' runs if asked, ' ' -> U+2581,
 * dummy prefix, an ill-formed UTF-8 byte -> U+FFFD), split into code points
 * (user-defined pieces as frozen whole symbols), repeatedly merge the
 * adjacent pair whose concatenation is a NORMAL/USER_DEFINED/UNUSED piece
 * of the highest score (leftmost on ties), re-split UNUSED pieces into the
 * pair that formed them, then map unknown pieces to <0xXX> byte pieces
 * (byte_fallback) or fuse runs of them into one <unk>. */
#include "tokenizer_internal.h"

#include <stdio.h>
#include <string.h>

enum { PT_NORMAL = 1, PT_UNKNOWN = 2, PT_CONTROL = 3, PT_USER = 4, PT_UNUSED = 5, PT_BYTE = 6 };

struct lq__spm {
    float     *score;    /* per piece                                   */
    uint8_t   *type;     /* PT_*                                        */
    lq__strtab normal;   /* NORMAL, USER_DEFINED, UNUSED: merge targets  */
    lq__strtab reserved; /* CONTROL, UNKNOWN, BYTE                       */
    lq__strtab user;     /* every prefix of a USER_DEFINED piece: its id
                            if it is one, else -2 (the prefix matcher)   */
    uint32_t user_max_len;
    bool     has_unused;
    int32_t  unk;          /* the UNKNOWN piece                            */
    int32_t  byte_id[256]; /* PieceToId("<0xXX>")                          */
    bool     byte_fallback, ws_suffix;
    bool     add_dummy_prefix, remove_extra_ws, escape_ws;
    char    *unk_surface;
    size_t   unk_surface_len;
};

/* ==== protobuf wire format ==== */

typedef struct {
    const uint8_t *p, *end, *base; /* base: start of the file, for messages */
    const char    *name;
} pb_reader;

static lq_status pb_varint(pb_reader *r, uint64_t *v) {
    uint64_t x = 0;
    for (int i = 0; i < 10; i++) {
        LQ_RETURN_IF(r->p >= r->end, LQ_ERR_FORMAT, "%s: truncated varint at offset %zu", r->name,
                     (size_t)(r->p - r->base));
        const uint8_t b = *r->p++;
        LQ_RETURN_IF(i == 9 && b > 1, LQ_ERR_FORMAT, "%s: varint overflows 64 bits at offset %zu", r->name,
                     (size_t)(r->p - 1 - r->base));
        x |= (uint64_t)(b & 0x7F) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            return LQ_OK;
        }
    }
    LQ_RETURN_IF(1, LQ_ERR_FORMAT, "%s: varint longer than 10 bytes at offset %zu", r->name, (size_t)(r->p - r->base));
}

/* next field key; wire types 3/4 (groups) are refused */
static lq_status pb_key(pb_reader *r, uint32_t *field, uint32_t *wt) {
    uint64_t k;
    LQ_TRY(pb_varint(r, &k));
    *field = (uint32_t)(k >> 3);
    *wt    = (uint32_t)(k & 7);
    LQ_RETURN_IF((k >> 3) == 0 || (k >> 3) > 0x1FFFFFFF, LQ_ERR_FORMAT, "%s: invalid field number at offset %zu",
                 r->name, (size_t)(r->p - r->base));
    LQ_RETURN_IF(*wt != 0 && *wt != 1 && *wt != 2 && *wt != 5, LQ_ERR_FORMAT,
                 "%s: unsupported wire type %u (field %u) at offset %zu", r->name, *wt, *field,
                 (size_t)(r->p - r->base));
    return LQ_OK;
}

static lq_status pb_bytes(pb_reader *r, pb_reader *sub) {
    uint64_t n;
    LQ_TRY(pb_varint(r, &n));
    const size_t left = (size_t)(r->end - r->p);
    LQ_RETURN_IF(n > left, LQ_ERR_FORMAT, "%s: length %llu at offset %zu exceeds the %zu bytes left", r->name,
                 (unsigned long long)n, (size_t)(r->p - r->base), left);
    *sub = (pb_reader){.p = r->p, .end = r->p + n, .base = r->base, .name = r->name};
    r->p += n;
    return LQ_OK;
}

static lq_status pb_skip(pb_reader *r, uint32_t wt) {
    uint64_t  v;
    pb_reader sub;
    size_t    n = 0;
    switch (wt) {
    case 0:
        return pb_varint(r, &v);
    case 2:
        return pb_bytes(r, &sub);
    case 1:
        n = 8;
        break;
    case 5:
        n = 4;
        break;
    default:
        LQ_ASSERT(0);
    }
    LQ_RETURN_IF((size_t)(r->end - r->p) < n, LQ_ERR_FORMAT, "%s: truncated fixed%zu field at offset %zu", r->name,
                 n * 8, (size_t)(r->p - r->base));
    r->p += n;
    return LQ_OK;
}

static lq_status pb_expect(const pb_reader *r, uint32_t field, uint32_t wt, uint32_t want) {
    LQ_RETURN_IF(wt != want, LQ_ERR_FORMAT, "%s: field %u has wire type %u, expected %u (offset %zu)", r->name, field,
                 wt, want, (size_t)(r->p - r->base));
    return LQ_OK;
}

static lq_status pb_float(pb_reader *r, float *f) {
    LQ_RETURN_IF(r->end - r->p < 4, LQ_ERR_FORMAT, "%s: truncated float at offset %zu", r->name,
                 (size_t)(r->p - r->base));
    const uint32_t u = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 | (uint32_t)r->p[3] << 24;
    memcpy(f, &u, 4);
    r->p += 4;
    return LQ_OK;
}

/* ==== ModelProto ==== */

typedef struct {
    const uint8_t *s;
    uint32_t       len;
    float          score;
    uint8_t        type;
} raw_piece;

typedef struct {
    uint64_t       model_type;
    bool           byte_fallback, ws_suffix;
    int32_t        bos_id, eos_id;
    const uint8_t *unk_surface;
    size_t         unk_surface_len;
    bool           has_unk_surface;
    /* normalizer */
    const uint8_t *norm_name;
    size_t         norm_name_len;
    size_t         charsmap_len;
    bool           add_dummy_prefix, remove_extra_ws, escape_ws;
} spec;

static lq_status parse_piece(pb_reader r, int32_t index, raw_piece *out) {
    *out = (raw_piece){.s = NULL, .len = 0, .score = 0.0f, .type = PT_NORMAL};
    while (r.p < r.end) {
        uint32_t f, wt;
        LQ_TRY(pb_key(&r, &f, &wt));
        if (f == 1) {
            pb_reader s;
            LQ_TRY(pb_expect(&r, f, wt, 2));
            LQ_TRY(pb_bytes(&r, &s));
            LQ_RETURN_IF(s.end - s.p > LQ__TOK_MAX_PIECE_LEN, LQ_ERR_FORMAT, "%s: piece %d is %zu bytes long", r.name,
                         index, (size_t)(s.end - s.p));
            out->s   = s.p;
            out->len = (uint32_t)(s.end - s.p);
        } else if (f == 2) {
            LQ_TRY(pb_expect(&r, f, wt, 5));
            LQ_TRY(pb_float(&r, &out->score));
        } else if (f == 3) {
            uint64_t v;
            LQ_TRY(pb_expect(&r, f, wt, 0));
            LQ_TRY(pb_varint(&r, &v));
            LQ_RETURN_IF(v < PT_NORMAL || v > PT_BYTE, LQ_ERR_FORMAT, "%s: piece %d has unknown type %llu", r.name,
                         index, (unsigned long long)v);
            out->type = (uint8_t)v;
        } else {
            LQ_TRY(pb_skip(&r, wt));
        }
    }
    LQ_RETURN_IF(out->len == 0, LQ_ERR_FORMAT, "%s: piece %d is empty", r.name, index);
    return LQ_OK;
}

static lq_status parse_trainer(pb_reader r, spec *sp) {
    while (r.p < r.end) {
        uint32_t f, wt;
        uint64_t v;
        LQ_TRY(pb_key(&r, &f, &wt));
        switch (f) {
        case 3:
        case 24:
        case 35:
        case 41:
        case 42:
            LQ_TRY(pb_expect(&r, f, wt, 0));
            LQ_TRY(pb_varint(&r, &v));
            if (f == 3) sp->model_type = v;
            if (f == 24) sp->ws_suffix = v != 0;
            if (f == 35) sp->byte_fallback = v != 0;
            if (f == 41) sp->bos_id = (int32_t)(uint32_t)v; /* int32: low 32 bits, as protobuf does */
            if (f == 42) sp->eos_id = (int32_t)(uint32_t)v;
            break;
        case 44: {
            pb_reader s;
            LQ_TRY(pb_expect(&r, f, wt, 2));
            LQ_TRY(pb_bytes(&r, &s));
            sp->unk_surface     = s.p;
            sp->unk_surface_len = (size_t)(s.end - s.p);
            sp->has_unk_surface = true;
            break;
        }
        default:
            LQ_TRY(pb_skip(&r, wt));
        }
    }
    return LQ_OK;
}

static lq_status parse_normalizer(pb_reader r, spec *sp) {
    while (r.p < r.end) {
        uint32_t  f, wt;
        uint64_t  v;
        pb_reader s;
        LQ_TRY(pb_key(&r, &f, &wt));
        switch (f) {
        case 1:
        case 2:
            LQ_TRY(pb_expect(&r, f, wt, 2));
            LQ_TRY(pb_bytes(&r, &s));
            if (f == 1)
                sp->norm_name = s.p, sp->norm_name_len = (size_t)(s.end - s.p);
            else
                sp->charsmap_len = (size_t)(s.end - s.p);
            break;
        case 3:
        case 4:
        case 5:
            LQ_TRY(pb_expect(&r, f, wt, 0));
            LQ_TRY(pb_varint(&r, &v));
            if (f == 3) sp->add_dummy_prefix = v != 0;
            if (f == 4) sp->remove_extra_ws = v != 0;
            if (f == 5) sp->escape_ws = v != 0;
            break;
        default:
            LQ_TRY(pb_skip(&r, wt));
        }
    }
    return LQ_OK;
}

/* "<0xXX>" (upper-case hex, as ByteToPiece writes it) -> 0..255, else -1 */
static int piece_to_byte(const uint8_t *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        const int c = s[i];
        v *= 16;
        if (c >= '0' && c <= '9')
            v += c - '0';
        else if (c >= 'A' && c <= 'F')
            v += c - 'A' + 10;
        else if (c >= 'a' && c <= 'f')
            v += c - 'a' + 10; /* SentencePiece's PieceToByte accepts both */
        else
            return -1;
    }
    return v;
}

/* PieceToId: reserved pieces first, then normal ones, else <unk> */
static int32_t piece_to_id(const lq__spm *s, const char *p, size_t n) {
    int32_t id = lq__strtab_get(&s->reserved, p, n);
    if (id < 0) id = lq__strtab_get(&s->normal, p, n);
    return id < 0 ? s->unk : id;
}

lq_status lq__spm_load(lq_tokenizer *t, const uint8_t *data, size_t size, const char *name) {
    pb_reader r  = {.p = data, .end = data + size, .base = data, .name = name};
    spec      sp = {.model_type       = 1,
                    .bos_id           = 1,
                    .eos_id           = 2,
                    .add_dummy_prefix = true,
                    .remove_extra_ws  = true,
                    .escape_ws        = true};
    /* pass 1: structure, counts, specs (repeated embedded messages merge, so
     * a later occurrence overrides field by field, as protobuf does) */
    size_t n_pieces = 0;
    while (r.p < r.end) {
        uint32_t  f, wt;
        pb_reader sub;
        LQ_TRY(pb_key(&r, &f, &wt));
        if (f >= 1 && f <= 3) {
            LQ_TRY(pb_expect(&r, f, wt, 2));
            LQ_TRY(pb_bytes(&r, &sub));
            if (f == 1) {
                raw_piece rp; /* validated now, stored in pass 2 */
                LQ_TRY(parse_piece(sub, (int32_t)n_pieces, &rp));
                n_pieces++;
                LQ_RETURN_IF(n_pieces > LQ__TOK_MAX_VOCAB, LQ_ERR_FORMAT, "%s: more than %d pieces", name,
                             LQ__TOK_MAX_VOCAB);
            } else if (f == 2) {
                LQ_TRY(parse_trainer(sub, &sp));
            } else {
                LQ_TRY(parse_normalizer(sub, &sp));
            }
        } else {
            LQ_TRY(pb_skip(&r, wt));
        }
    }
    LQ_RETURN_IF(n_pieces == 0, LQ_ERR_FORMAT, "%s: no pieces", name);
    LQ_RETURN_IF(sp.model_type == 1, LQ_ERR_UNSUPPORTED,
                 "%s: a SentencePiece Unigram model; only BPE models (model_type 2) are supported", name);
    LQ_RETURN_IF(sp.model_type != 2, LQ_ERR_UNSUPPORTED,
                 "%s: SentencePiece model_type %llu (WORD/CHAR or unknown); only BPE (2) is supported", name,
                 (unsigned long long)sp.model_type);
    LQ_RETURN_IF(sp.charsmap_len > 0, LQ_ERR_UNSUPPORTED,
                 "%s: normalizer '%.*s' has a precompiled charsmap (e.g. nmt_nfkc); only the identity normalizer "
                 "is supported",
                 name, (int)LQ_MIN(sp.norm_name_len, 64), sp.norm_name ? (const char *)sp.norm_name : "");

    lq_status    st   = LQ_OK;
    raw_piece   *raw  = lq_calloc(n_pieces, sizeof *raw);
    const char **src  = lq_calloc(n_pieces, sizeof *src);
    uint32_t    *lens = lq_calloc(n_pieces, sizeof *lens);
    lq__spm     *s    = lq_calloc(1, sizeof *s);
    t->spm            = s; /* released by lq_tokenizer_free() on any error below */
    LQ_GOTO_IF(!raw || !src || !lens || !s, LQ_ERR_NOMEM, "out of memory (%zu pieces)", n_pieces);
    /* pass 2: the pieces */
    r        = (pb_reader){.p = data, .end = data + size, .base = data, .name = name};
    size_t k = 0;
    while (r.p < r.end) {
        uint32_t  f, wt;
        pb_reader sub;
        LQ_GOTO_TRY(pb_key(&r, &f, &wt));
        if (f == 1) {
            LQ_GOTO_TRY(pb_bytes(&r, &sub));
            LQ_GOTO_TRY(parse_piece(sub, (int32_t)k, &raw[k]));
            src[k]  = (const char *)raw[k].s;
            lens[k] = raw[k].len;
            k++;
        } else {
            LQ_GOTO_TRY(pb_skip(&r, wt));
        }
    }
    LQ_GOTO_TRY(lq__tok_set_pieces(t, src, lens, (int32_t)n_pieces));

    s->score = lq_malloc(n_pieces * sizeof *s->score);
    s->type  = lq_malloc(n_pieces);
    LQ_GOTO_IF(!s->score || !s->type, LQ_ERR_NOMEM, "out of memory");
    LQ_GOTO_TRY(lq__strtab_init(&s->normal, n_pieces));
    LQ_GOTO_TRY(lq__strtab_init(&s->reserved, n_pieces));
    size_t n_user = 0; /* prefixes of user-defined pieces */
    for (size_t i = 0; i < n_pieces; i++)
        if (raw[i].type == PT_USER) n_user += raw[i].len;
    LQ_GOTO_TRY(lq__strtab_init(&s->user, n_user));

    s->unk               = -1;
    bool byte_found[256] = {false};
    for (size_t i = 0; i < n_pieces; i++) {
        const int32_t  id   = (int32_t)i;
        const char    *p    = t->piece[i];
        const uint32_t n    = t->piece_len[i];
        const uint8_t  type = raw[i].type;
        s->score[i]         = raw[i].score;
        s->type[i]          = type;
        const bool normal   = type == PT_NORMAL || type == PT_USER || type == PT_UNUSED;
        int32_t    old;
        lq__strtab_put(normal ? &s->normal : &s->reserved, p, n, id, &old);
        LQ_GOTO_IF(old >= 0, LQ_ERR_FORMAT, "%s: piece %d '%.*s' is already defined (id %d)", name, id,
                   (int)LQ_MIN(n, 64u), p, old);
        if (type == PT_USER) {
            lq__strtab_put(&s->user, p, n, id, &old);
            if (n > s->user_max_len) s->user_max_len = n;
        }
        s->has_unused |= type == PT_UNUSED;
        if (type == PT_UNKNOWN) {
            LQ_GOTO_IF(s->unk >= 0, LQ_ERR_FORMAT, "%s: two unknown pieces (%d and %d)", name, s->unk, id);
            s->unk = id;
        }
        if (type == PT_BYTE) {
            LQ_GOTO_IF(!sp.byte_fallback, LQ_ERR_FORMAT, "%s: byte piece %d found although byte_fallback is false",
                       name, id);
            const int b = piece_to_byte((const uint8_t *)p, n);
            LQ_GOTO_IF(b < 0, LQ_ERR_FORMAT, "%s: byte piece %d '%.*s' is invalid", name, id, (int)LQ_MIN(n, 64u), p);
            byte_found[b] = true;
        }
    }
    LQ_GOTO_IF(s->unk < 0, LQ_ERR_FORMAT, "%s: no unknown piece (<unk>)", name);
    for (size_t i = 0; i < n_pieces; i++) /* the proper prefixes, after all whole pieces */
        for (uint32_t l = 1; s->type[i] == PT_USER && l < t->piece_len[i]; l++) {
            int32_t old;
            lq__strtab_put(&s->user, t->piece[i], l, -2, &old);
        }
    if (sp.byte_fallback)
        for (int b = 0; b < 256; b++)
            LQ_GOTO_IF(!byte_found[b], LQ_ERR_FORMAT, "%s: byte_fallback is on but piece <0x%02X> is missing", name, b);
    for (int b = 0; b < 256; b++) {
        char bp[8];
        snprintf(bp, sizeof bp, "<0x%02X>", b);
        s->byte_id[b] = piece_to_id(s, bp, 6);
    }
    const char  *surf = sp.has_unk_surface ? (const char *)sp.unk_surface : " \xE2\x81\x87 ";
    const size_t slen = sp.has_unk_surface ? sp.unk_surface_len : 5;
    s->unk_surface    = lq_malloc(slen + 1);
    LQ_GOTO_IF(!s->unk_surface, LQ_ERR_NOMEM, "out of memory");
    if (slen) memcpy(s->unk_surface, surf, slen);
    s->unk_surface_len  = slen;
    s->byte_fallback    = sp.byte_fallback;
    s->ws_suffix        = sp.ws_suffix;
    s->add_dummy_prefix = sp.add_dummy_prefix;
    s->remove_extra_ws  = sp.remove_extra_ws;
    s->escape_ws        = sp.escape_ws;
    t->bos              = (sp.bos_id >= 0 && (size_t)sp.bos_id < n_pieces) ? sp.bos_id : -1;
    t->eos              = (sp.eos_id >= 0 && (size_t)sp.eos_id < n_pieces) ? sp.eos_id : -1;
done:
    lq_free(raw);
    lq_free(src);
    lq_free(lens);
    return st;
}

/* accessors for lq_tokenizer_score / lq_tokenizer_token_type (id in range) */
float lq__spm_score(const lq_tokenizer *t, int32_t id);
int   lq__spm_token_type(const lq_tokenizer *t, int32_t id);
float lq__spm_score(const lq_tokenizer *t, int32_t id) { return t->spm->score[id]; }
int   lq__spm_token_type(const lq_tokenizer *t, int32_t id) { return t->spm->type[id]; }

void lq__spm_free(lq__spm *s) {
    if (!s) return;
    lq_free(s->score);
    lq_free(s->type);
    lq__strtab_free(&s->normal);
    lq__strtab_free(&s->reserved);
    lq__strtab_free(&s->user);
    lq_free(s->unk_surface);
    lq_free(s);
}

/* ==== encoding ==== */

/* longest USER_DEFINED piece that prefixes p[0..n), 0 if none: walks the
 * prefix table, O(length of the match) like SentencePiece's trie */
static size_t user_match(const lq__spm *s, const char *p, size_t n) {
    if (s->user.n == 0) return 0;
    size_t   best = 0;
    uint64_t h    = lq__hash_init();
    for (size_t l = 1; l <= n && l <= s->user_max_len; l++) {
        h               = lq__hash_step(h, (uint8_t)p[l - 1]);
        const int32_t v = lq__strtab_get_hashed(&s->user, p, l, lq__hash_final(h));
        if (v == -1) break; /* no user piece starts this way */
        if (v >= 0) best = l;
    }
    return best;
}

/* normalizer.cc Normalizer::Normalize() for the identity normalizer */
static lq_status normalize(const lq__spm *s, const char *in, size_t n, lq__buf *out) {
    static const char ws[] = "\xE2\x96\x81";
    size_t            i    = 0;
    if (s->remove_extra_ws)
        while (i < n && in[i] == ' ')
            i++; /* leading spaces */
    if (i == n) return LQ_OK;
    LQ_TRY(lq__buf_reserve(out, (n - i) * 3 + 3));
    if (!s->ws_suffix && s->add_dummy_prefix) LQ_TRY(lq__buf_put(out, s->escape_ws ? ws : " ", s->escape_ws ? 3 : 1));
    bool is_prev_space = s->remove_extra_ws;
    while (i < n) {
        /* NormalizePrefix: a user-defined piece passes whole; else one
         * well-formed character (a literal U+FFFD counts as one); else one
         * byte becomes U+FFFD */
        const char *sp;
        size_t      sp_len, consumed;
        uint32_t    cp;
        size_t      l = user_match(s, in + i, n - i);
        if (l) {
            sp = in + i, sp_len = consumed = l;
        } else if ((l = (size_t)lq__utf8_next((const uint8_t *)in + i, n - i, &cp)) > 0) {
            sp = in + i, sp_len = consumed = l;
        } else {
            sp = "\xEF\xBF\xBD", sp_len = 3, consumed = 1;
        }
        while (is_prev_space && sp_len > 0 && sp[0] == ' ')
            sp++, sp_len--;
        if (sp_len) {
            for (size_t k = 0; k < sp_len; k++) {
                if (s->escape_ws && sp[k] == ' ')
                    LQ_TRY(lq__buf_put(out, ws, 3));
                else
                    LQ_TRY(lq__buf_put(out, sp + k, 1));
            }
            is_prev_space = sp[sp_len - 1] == ' ';
        }
        i += consumed;
        if (!s->remove_extra_ws) is_prev_space = false;
    }
    if (s->remove_extra_ws) {
        const char  *sym  = s->escape_ws ? ws : " ";
        const size_t slen = s->escape_ws ? 3 : 1;
        while (out->n >= slen && memcmp(out->p + out->n - slen, sym, slen) == 0)
            out->n -= slen;
    }
    if (s->ws_suffix && s->add_dummy_prefix) LQ_TRY(lq__buf_put(out, s->escape_ws ? ws : " ", s->escape_ws ? 3 : 1));
    return LQ_OK;
}

/* rev_merge of bpe_model.cc: how an UNUSED piece was formed (the last push
 * wins), keyed by the piece's id */
typedef struct {
    uint32_t l_off, l_len, r_off, r_len;
} rev_entry;

typedef struct {
    const lq__spm *s;
    const char    *text;
    lq__pairtab    rev_of; /* (piece id, 0) -> index in rev[] */
    rev_entry     *rev;
    size_t         n_rev;
} spm_ctx;

static bool spm_pair(void *vctx, const lq__bpe_sym *a, const lq__bpe_sym *b, bool is_push, double *prio,
                     int32_t *new_id) {
    spm_ctx *c = vctx;
    if (a->frozen || b->frozen) return false;
    const int32_t id = lq__strtab_get(&c->s->normal, c->text + a->off, (size_t)a->len + b->len);
    if (id < 0) return false;
    const float sc = c->s->score[id];
    *prio          = sc != sc ? -1e300 : (double)sc; /* NaN: last, but deterministic */
    *new_id        = id;
    if (is_push && c->s->type[id] == PT_UNUSED) {
        int32_t k, unused;
        if (!lq__pairtab_get(&c->rev_of, (uint32_t)id, 0, &k, &unused)) {
            k = (int32_t)c->n_rev++; /* rev[] has room for every push */
            lq__pairtab_set(&c->rev_of, (uint32_t)id, 0, k, 0);
        }
        c->rev[k] = (rev_entry){.l_off = a->off, .l_len = a->len, .r_off = b->off, .r_len = b->len};
    }
    return true;
}

typedef struct {
    lq__ivec *out;
    bool      prev_unk;
} emit_state;

/* PopulateSentencePieceText for one (piece, id) */
static lq_status emit(const lq__spm *s, const char *p, size_t n, int32_t id, emit_state *e) {
    const bool is_unk = s->type[id] == PT_UNKNOWN;
    if (s->type[id] == PT_CONTROL) {
        LQ_TRY(lq__ivec_push(e->out, id));
    } else if (is_unk && s->byte_fallback) {
        for (size_t k = 0; k < n; k++)
            LQ_TRY(lq__ivec_push(e->out, s->byte_id[(uint8_t)p[k]]));
    } else if (!(is_unk && e->prev_unk)) { /* a run of unknown pieces is one <unk> */
        LQ_TRY(lq__ivec_push(e->out, id));
    }
    e->prev_unk = is_unk;
    return LQ_OK;
}

/* bpe_model.cc resegment(): UNUSED pieces go back to the pair that formed them */
static lq_status resegment(const spm_ctx *c, uint32_t off, uint32_t len, emit_state *e, int depth) {
    const lq__spm *s  = c->s;
    const int32_t  id = piece_to_id(s, c->text + off, len);
    int32_t        k, unused;
    if (s->type[id] == PT_UNUSED && depth < 64 && lq__pairtab_get(&c->rev_of, (uint32_t)id, 0, &k, &unused)) {
        const rev_entry r = c->rev[k];
        LQ_TRY(resegment(c, r.l_off, r.l_len, e, depth + 1));
        return resegment(c, r.r_off, r.r_len, e, depth + 1);
    }
    return emit(s, c->text + off, len, id, e);
}

lq_status lq__spm_encode(const lq_tokenizer *t, const char *text, size_t len, lq__ivec *out) {
    const lq__spm *s    = t->spm;
    lq__buf        norm = {0};
    lq__bpe_work   w    = {0};
    spm_ctx        c    = {.s = s};
    lq_status      st;
    LQ_GOTO_TRY(normalize(s, text, len, &norm));
    if (norm.n == 0) goto done;
    LQ_GOTO_IF(norm.n > UINT32_MAX / 2, LQ_ERR_INVALID_ARG, "normalized text too long (%zu bytes)", norm.n);
    LQ_GOTO_TRY(lq__bpe_work_syms(&w, norm.n));
    /* split into characters; user-defined pieces are frozen whole symbols */
    int32_t n = 0;
    for (size_t i = 0; i < norm.n;) {
        size_t  l      = user_match(s, norm.p + i, norm.n - i);
        uint8_t frozen = l > 0;
        if (!l) {
            static const uint8_t one_char_len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
            l                                     = LQ_MIN((size_t)one_char_len[(uint8_t)norm.p[i] >> 4], norm.n - i);
        }
        w.sym[n] = (lq__bpe_sym){
            .id = -1, .prev = n - 1, .next = -1, .off = (uint32_t)i, .len = (uint32_t)l, .frozen = frozen};
        if (n > 0) w.sym[n - 1].next = n;
        n++;
        i += l;
    }
    c.text = norm.p;
    if (s->has_unused) { /* at most n - 1 + 2 * (n - 1) pushes */
        LQ_GOTO_TRY(lq__pairtab_init(&c.rev_of, (size_t)n * 3));
        c.rev = lq_malloc((size_t)n * 3 * sizeof *c.rev);
        LQ_GOTO_IF(!c.rev, LQ_ERR_NOMEM, "out of memory");
    }
    LQ_GOTO_TRY(lq__bpe_merge(&w, n, spm_pair, &c));
    emit_state e = {.out = out, .prev_unk = false};
    for (int32_t i = 0; i >= 0; i = w.sym[i].next)
        LQ_GOTO_TRY(resegment(&c, w.sym[i].off, w.sym[i].len, &e, 0));
done:
    lq__buf_free(&norm);
    lq__bpe_work_free(&w);
    lq__pairtab_free(&c.rev_of);
    lq_free(c.rev);
    return st;
}

/* ==== decoding ==== */

int lq__spm_decode(const lq_tokenizer *t, int32_t prev, int32_t id, char *buf, size_t cap) {
    const lq__spm *s    = t->spm;
    const char    *p    = t->piece[id];
    size_t         n    = t->piece_len[id];
    const uint8_t  type = s->type[id];
    if (type == PT_CONTROL) return 0;
    if (type == PT_UNKNOWN) return lq__tok_out(buf, cap, s->unk_surface, s->unk_surface_len);
    if (type == PT_BYTE) {
        const char b = (char)piece_to_byte((const uint8_t *)p, n);
        return lq__tok_out(buf, cap, &b, 1);
    }
    /* the first piece (at the start or after BOS) loses the whitespace the
     * dummy prefix added (SentencePiece strips it while the text is empty) */
    const bool first = prev < 0 || prev >= t->n_vocab || prev == t->bos;
    if (first && !s->ws_suffix && (s->add_dummy_prefix || s->remove_extra_ws) && n >= 3 &&
        memcmp(p, "\xE2\x96\x81", 3) == 0)
        p += 3, n -= 3;
    size_t o = 0;
    for (size_t i = 0; i < n && o < cap;) {
        if (i + 3 <= n && memcmp(p + i, "\xE2\x96\x81", 3) == 0) {
            buf[o++] = ' ';
            i += 3;
        } else {
            buf[o++] = p[i++];
        }
    }
    return (int)o;
}
