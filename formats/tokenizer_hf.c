/* tokenizer_hf.c : Hugging Face `tokenizer.json` with a BPE model, encoded as
 * huggingface/tokenizers does (tokenizer/added_vocabulary.rs, normalizers/,
 * pre_tokenizers/, models/bpe/{model,word}.rs, decoders/).
 *
 * Pipeline: ill-formed UTF-8 -> U+FFFD (maximal subparts, as a Rust String
 * or Python str would hold it); added tokens that are not `normalized` are
 * split out of the raw text (leftmost-longest, single_word / lstrip /
 * rstrip honoured); each remaining piece is normalized (Sequence, Prepend,
 * Replace, NFC, Strip) and `normalized` added tokens are split out of it;
 * the pre-tokenizers (Sequence, Metaspace, ByteLevel with GPT-2's regex,
 * Split with a regex or a string and any of the five behaviours) cut it
 * further; every piece then goes through BPE: ignore_merges (a piece in the
 * vocabulary is emitted whole), characters -> ids with byte_fallback
 * (<0xXX>) or unk_token (fuse_unk), then the lowest-rank adjacent merge,
 * leftmost first, until none applies.
 * Anything else (WordPiece/Unigram models, other normalizers, pre-tokenizers,
 * decoders, dropout, subword prefixes) is refused with LQ_ERR_UNSUPPORTED
 * rather than approximated. post_processor is only read for BOS/EOS. */
#include "tokenizer_internal.h"
#include "lq_json.h"

#include <stdio.h>
#include <string.h>

#define HF_MAX_STEPS 64 /* normalizers / pre-tokenizers / decoders after flattening */

enum { NM_PREPEND, NM_REPLACE, NM_NFC, NM_STRIP };
enum { PRE_METASPACE, PRE_BYTELEVEL, PRE_SPLIT };
enum { DEC_BYTELEVEL, DEC_METASPACE, DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP };
enum { SCHEME_ALWAYS, SCHEME_FIRST, SCHEME_NEVER };
enum { BEH_REMOVED, BEH_ISOLATED, BEH_MERGED_PREV, BEH_MERGED_NEXT, BEH_CONTIGUOUS };

/* a literal string or a compiled regex (tokenizers' String / Regex pattern) */
typedef struct {
    char      *lit;
    size_t     lit_len;
    lq__regex *re;
} hf_pattern;

typedef struct {
    uint8_t    type;
    hf_pattern pat; /* NM_REPLACE                      */
    char      *s;   /* NM_PREPEND text / NM_REPLACE content */
    size_t     s_len;
    bool       left, right; /* NM_STRIP                    */
} hf_norm;

typedef struct {
    uint8_t    type;
    char       repl[4]; /* PRE_METASPACE replacement (UTF-8) */
    uint8_t    repl_len;
    uint8_t    scheme;
    bool       split;
    bool       add_prefix_space, use_regex; /* PRE_BYTELEVEL */
    hf_pattern pat;                         /* PRE_SPLIT     */
    uint8_t    behavior;
    bool       invert;
} hf_pre;

typedef struct {
    uint8_t  type;
    char     repl[4]; /* DEC_METASPACE */
    uint8_t  repl_len;
    bool     prepend;
    char    *a, *b; /* DEC_REPLACE pattern -> content */
    size_t   a_len, b_len;
    uint32_t content; /* DEC_STRIP */
    int32_t  start, stop;
} hf_dec;

typedef struct {
    int32_t  id;
    char    *content;
    uint32_t len;
    char    *norm; /* content through the normalizer (for `normalized` tokens) */
    uint32_t norm_len;
    bool     single_word, lstrip, rstrip, normalized, special;
} hf_added;

/* added tokens of one matching set, bucketed by first byte, longest first */
typedef struct {
    int32_t *idx;
    int32_t  start[257];
} hf_matcher;

struct lq__hf {
    lq__strtab  vocab;  /* model vocabulary: string -> id (keys in t->piece) */
    lq__pairtab merges; /* (left id, right id) -> (rank, merged id)          */
    hf_added   *added;
    int32_t     n_added;
    int32_t    *added_of; /* id -> index in added[], -1                        */
    hf_matcher  raw, normd;
    hf_norm     norm[HF_MAX_STEPS];
    int         n_norm;
    hf_pre      pre[HF_MAX_STEPS];
    int         n_pre;
    hf_dec      dec[HF_MAX_STEPS];
    int         n_dec;
    lq__regex  *gpt2;
    int32_t     unk_id;
    bool        byte_fallback, fuse_unk, ignore_merges;
    int32_t     byte_tok[256];  /* "<0xXX>" -> id, -1 */
    uint32_t    byte_char[256]; /* byte-level: byte -> code point */
    int16_t     char_byte[324]; /* byte-level: code point -> byte, -1 */
    lq__buf     merge_text;     /* the merges as "a b\0", in rank order  */
    lq__ivec    merge_off;      /* offset of merge i in merge_text       */
};

/* ==== loading ==== */

typedef struct {
    const char *name;
    lq__hf     *h;
} loader;

static const char *jstr(const lq_json *o, const char *key) {
    const lq_json *v = o ? lq_json_get(o, key) : NULL;
    return v && v->type == LQ_JSON_STRING ? v->str : NULL;
}

/* missing or null -> def; a boolean -> its value; else error */
static lq_status jbool(const loader *L, const lq_json *o, const char *key, bool def, bool *out) {
    const lq_json *v = lq_json_get(o, key);
    *out             = def;
    if (!v || v->type == LQ_JSON_NULL) return LQ_OK;
    LQ_RETURN_IF(!lq_json_get_bool(v, out), LQ_ERR_FORMAT, "%s: \"%s\" is not a boolean", L->name, key);
    return LQ_OK;
}

static lq_status dup_str(const char *s, size_t n, char **out) {
    *out = lq_malloc(n + 1);
    LQ_RETURN_IF(!*out, LQ_ERR_NOMEM, "out of memory");
    if (n) memcpy(*out, s, n);
    (*out)[n] = 0;
    return LQ_OK;
}

/* {"String": s} or {"Regex": r} */
static lq_status load_pattern(const loader *L, const lq_json *o, const char *what, hf_pattern *p) {
    const lq_json *pat = lq_json_get(o, "pattern");
    LQ_RETURN_IF(!pat || pat->type != LQ_JSON_OBJECT || pat->n != 1 || pat->items[0].type != LQ_JSON_STRING,
                 LQ_ERR_FORMAT, "%s: %s has no {\"String\"|\"Regex\": ...} pattern", L->name, what);
    const lq_json *v = &pat->items[0];
    if (strcmp(v->key, "String") == 0) {
        LQ_RETURN_IF(v->str_len == 0, LQ_ERR_UNSUPPORTED, "%s: %s with an empty String pattern", L->name, what);
        return dup_str(v->str, v->str_len, &p->lit), p->lit_len = v->str_len, LQ_OK;
    }
    LQ_RETURN_IF(strcmp(v->key, "Regex") != 0, LQ_ERR_FORMAT, "%s: %s pattern kind '%s'", L->name, what, v->key);
    const lq_status st = lq__regex_compile(v->str, v->str_len, &p->re);
    LQ_RETURN_IF(st != LQ_OK, st,
                 "%s: %s: regex not supported (only the pre-split patterns of known tokenizers "
                 "are)",
                 L->name, what);
    return LQ_OK;
}

static void free_pattern(hf_pattern *p) {
    lq_free(p->lit);
    lq__regex_free(p->re);
}

/* one UTF-8 character as a string field (Metaspace replacement, Strip content) */
static lq_status load_char(const loader *L, const lq_json *o, const char *key, const char *def, char out[4],
                           uint8_t *len, uint32_t *cp_out) {
    const char *s = jstr(o, key);
    if (!s) s = def;
    LQ_RETURN_IF(!s, LQ_ERR_FORMAT, "%s: missing \"%s\"", L->name, key);
    uint32_t  cp;
    const int l = lq__utf8_next((const uint8_t *)s, strlen(s), &cp);
    LQ_RETURN_IF(l <= 0 || s[l] != 0, LQ_ERR_FORMAT, "%s: \"%s\" must be one character", L->name, key);
    memcpy(out, s, (size_t)l);
    *len = (uint8_t)l;
    if (cp_out) *cp_out = cp;
    return LQ_OK;
}

static lq_status load_normalizer(const loader *L, const lq_json *o, int depth) {
    lq__hf *h = L->h;
    if (!o || o->type == LQ_JSON_NULL) return LQ_OK;
    const char *type = jstr(o, "type");
    LQ_RETURN_IF(!type || depth > 8, LQ_ERR_FORMAT, "%s: normalizer without a type", L->name);
    if (strcmp(type, "Sequence") == 0) {
        const lq_json *seq = lq_json_get(o, "normalizers");
        LQ_RETURN_IF(!seq || seq->type != LQ_JSON_ARRAY, LQ_ERR_FORMAT, "%s: Sequence without normalizers", L->name);
        for (uint32_t i = 0; i < seq->n; i++)
            LQ_TRY(load_normalizer(L, &seq->items[i], depth + 1));
        return LQ_OK;
    }
    LQ_RETURN_IF(h->n_norm >= HF_MAX_STEPS, LQ_ERR_UNSUPPORTED, "%s: more than %d normalizers", L->name, HF_MAX_STEPS);
    hf_norm *n = &h->norm[h->n_norm++];
    if (strcmp(type, "Prepend") == 0) {
        const lq_json *p = lq_json_get(o, "prepend");
        LQ_RETURN_IF(!p || p->type != LQ_JSON_STRING, LQ_ERR_FORMAT, "%s: Prepend without a string", L->name);
        n->type  = NM_PREPEND;
        n->s_len = p->str_len;
        return dup_str(p->str, p->str_len, &n->s);
    }
    if (strcmp(type, "Replace") == 0) {
        const lq_json *c = lq_json_get(o, "content");
        LQ_RETURN_IF(!c || c->type != LQ_JSON_STRING, LQ_ERR_FORMAT, "%s: Replace without content", L->name);
        n->type  = NM_REPLACE;
        n->s_len = c->str_len;
        LQ_TRY(dup_str(c->str, c->str_len, &n->s));
        return load_pattern(L, o, "Replace normalizer", &n->pat);
    }
    if (strcmp(type, "NFC") == 0) {
        n->type = NM_NFC;
        return LQ_OK;
    }
    if (strcmp(type, "Strip") == 0) {
        n->type = NM_STRIP;
        LQ_TRY(jbool(L, o, "strip_left", true, &n->left));
        return jbool(L, o, "strip_right", true, &n->right);
    }
    h->n_norm--;
    LQ_RETURN_IF(1, LQ_ERR_UNSUPPORTED,
                 "%s: normalizer \"%s\" is not supported (only Sequence, Prepend, Replace, NFC, "
                 "Strip)",
                 L->name, type);
}

static lq_status load_scheme(const loader *L, const lq_json *o, uint8_t *scheme) {
    const char *s = jstr(o, "prepend_scheme");
    bool        aps;
    const bool  has_aps =
        lq_json_get(o, "add_prefix_space") && lq_json_get_bool(lq_json_get(o, "add_prefix_space"), &aps);
    *scheme = SCHEME_ALWAYS;
    if (s) {
        if (strcmp(s, "always") == 0)
            *scheme = SCHEME_ALWAYS;
        else if (strcmp(s, "first") == 0)
            *scheme = SCHEME_FIRST;
        else if (strcmp(s, "never") == 0)
            *scheme = SCHEME_NEVER;
        else
            LQ_RETURN_IF(1, LQ_ERR_FORMAT, "%s: unknown prepend_scheme '%s'", L->name, s);
    }
    if (has_aps && !aps) {
        LQ_RETURN_IF(*scheme != SCHEME_NEVER && s, LQ_ERR_FORMAT,
                     "%s: add_prefix_space does not match declared prepend_scheme", L->name);
        *scheme = SCHEME_NEVER;
    }
    return LQ_OK;
}

static lq_status load_pretok(const loader *L, const lq_json *o, int depth) {
    lq__hf *h = L->h;
    if (!o || o->type == LQ_JSON_NULL) return LQ_OK;
    const char *type = jstr(o, "type");
    LQ_RETURN_IF(!type || depth > 8, LQ_ERR_FORMAT, "%s: pre_tokenizer without a type", L->name);
    if (strcmp(type, "Sequence") == 0) {
        const lq_json *seq = lq_json_get(o, "pretokenizers");
        LQ_RETURN_IF(!seq || seq->type != LQ_JSON_ARRAY, LQ_ERR_FORMAT, "%s: Sequence without pretokenizers", L->name);
        for (uint32_t i = 0; i < seq->n; i++)
            LQ_TRY(load_pretok(L, &seq->items[i], depth + 1));
        return LQ_OK;
    }
    LQ_RETURN_IF(h->n_pre >= HF_MAX_STEPS, LQ_ERR_UNSUPPORTED, "%s: more than %d pre-tokenizers", L->name,
                 HF_MAX_STEPS);
    hf_pre *p = &h->pre[h->n_pre++];
    if (strcmp(type, "Metaspace") == 0) {
        p->type = PRE_METASPACE;
        LQ_TRY(load_char(L, o, "replacement", NULL, p->repl, &p->repl_len, NULL));
        LQ_TRY(load_scheme(L, o, &p->scheme));
        return jbool(L, o, "split", true, &p->split);
    }
    if (strcmp(type, "ByteLevel") == 0) {
        p->type = PRE_BYTELEVEL;
        LQ_TRY(jbool(L, o, "add_prefix_space", true, &p->add_prefix_space));
        LQ_TRY(jbool(L, o, "use_regex", true, &p->use_regex));
        if (p->use_regex && !h->gpt2) LQ_TRY(lq__regex_compile(lq__gpt2_pattern, strlen(lq__gpt2_pattern), &h->gpt2));
        return LQ_OK;
    }
    if (strcmp(type, "Split") == 0) {
        p->type       = PRE_SPLIT;
        const char *b = jstr(o, "behavior");
        LQ_RETURN_IF(!b, LQ_ERR_FORMAT, "%s: Split without behavior", L->name);
        if (strcmp(b, "Removed") == 0)
            p->behavior = BEH_REMOVED;
        else if (strcmp(b, "Isolated") == 0)
            p->behavior = BEH_ISOLATED;
        else if (strcmp(b, "MergedWithPrevious") == 0)
            p->behavior = BEH_MERGED_PREV;
        else if (strcmp(b, "MergedWithNext") == 0)
            p->behavior = BEH_MERGED_NEXT;
        else if (strcmp(b, "Contiguous") == 0)
            p->behavior = BEH_CONTIGUOUS;
        else
            LQ_RETURN_IF(1, LQ_ERR_FORMAT, "%s: unknown Split behavior '%s'", L->name, b);
        LQ_TRY(jbool(L, o, "invert", false, &p->invert));
        return load_pattern(L, o, "Split pre-tokenizer", &p->pat);
    }
    h->n_pre--;
    LQ_RETURN_IF(1, LQ_ERR_UNSUPPORTED,
                 "%s: pre-tokenizer \"%s\" is not supported (only Sequence, Metaspace, ByteLevel, Split)", L->name,
                 type);
}

static lq_status load_decoder(const loader *L, const lq_json *o, int depth) {
    lq__hf *h = L->h;
    if (!o || o->type == LQ_JSON_NULL) return LQ_OK;
    const char *type = jstr(o, "type");
    LQ_RETURN_IF(!type || depth > 8, LQ_ERR_FORMAT, "%s: decoder without a type", L->name);
    if (strcmp(type, "Sequence") == 0) {
        const lq_json *seq = lq_json_get(o, "decoders");
        LQ_RETURN_IF(!seq || seq->type != LQ_JSON_ARRAY, LQ_ERR_FORMAT, "%s: Sequence without decoders", L->name);
        for (uint32_t i = 0; i < seq->n; i++)
            LQ_TRY(load_decoder(L, &seq->items[i], depth + 1));
        return LQ_OK;
    }
    LQ_RETURN_IF(h->n_dec >= HF_MAX_STEPS, LQ_ERR_UNSUPPORTED, "%s: more than %d decoders", L->name, HF_MAX_STEPS);
    hf_dec *d = &h->dec[h->n_dec++];
    if (strcmp(type, "ByteLevel") == 0) {
        d->type = DEC_BYTELEVEL;
        return LQ_OK;
    }
    if (strcmp(type, "Metaspace") == 0) {
        uint8_t scheme;
        d->type = DEC_METASPACE;
        LQ_TRY(load_char(L, o, "replacement", NULL, d->repl, &d->repl_len, NULL));
        LQ_TRY(load_scheme(L, o, &scheme));
        d->prepend = scheme != SCHEME_NEVER;
        return LQ_OK;
    }
    if (strcmp(type, "Replace") == 0) {
        hf_pattern p = {0};
        LQ_TRY(load_pattern(L, o, "Replace decoder", &p));
        const lq_json *c = lq_json_get(o, "content");
        if (p.re || !c || c->type != LQ_JSON_STRING) {
            free_pattern(&p);
            LQ_RETURN_IF(1, LQ_ERR_UNSUPPORTED, "%s: Replace decoder needs a String pattern and content", L->name);
        }
        d->type  = DEC_REPLACE;
        d->a     = p.lit;
        d->a_len = p.lit_len;
        d->b_len = c->str_len;
        return dup_str(c->str, c->str_len, &d->b);
    }
    if (strcmp(type, "ByteFallback") == 0) {
        d->type = DEC_BYTEFALLBACK;
        return LQ_OK;
    }
    if (strcmp(type, "Fuse") == 0) {
        d->type = DEC_FUSE;
        return LQ_OK;
    }
    if (strcmp(type, "Strip") == 0) {
        char           c[4];
        uint8_t        cl;
        const lq_json *a = lq_json_get(o, "start"), *b = lq_json_get(o, "stop");
        uint64_t       s0 = 0, s1 = 0;
        d->type = DEC_STRIP;
        LQ_TRY(load_char(L, o, "content", NULL, c, &cl, &d->content));
        LQ_RETURN_IF((a && !lq_json_get_u64(a, &s0)) || (b && !lq_json_get_u64(b, &s1)) || s0 > 1024 || s1 > 1024,
                     LQ_ERR_FORMAT, "%s: Strip decoder start/stop", L->name);
        d->start = (int32_t)s0;
        d->stop  = (int32_t)s1;
        return LQ_OK;
    }
    h->n_dec--;
    LQ_RETURN_IF(1, LQ_ERR_UNSUPPORTED,
                 "%s: decoder \"%s\" is not supported (only ByteLevel, Metaspace, Sequence, Replace, ByteFallback, "
                 "Fuse, Strip)",
                 L->name, type);
}

/* GPT-2's bytes_to_unicode() */
static void init_byte_level(lq__hf *h) {
    uint32_t n = 0;
    for (int i = 0; i < 324; i++)
        h->char_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        const bool keep = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        h->byte_char[b] = keep ? (uint32_t)b : 256 + n++;
        h->char_byte[h->byte_char[b]] = (int16_t)b;
    }
}

static int cmp_added_for_match(const hf_added *A, int32_t x, int32_t y, bool normd) {
    const hf_added *a = &A[x], *b = &A[y];
    const uint8_t  *sa = (const uint8_t *)(normd ? a->norm : a->content);
    const uint8_t  *sb = (const uint8_t *)(normd ? b->norm : b->content);
    const uint32_t  la = normd ? a->norm_len : a->len, lb = normd ? b->norm_len : b->len;
    if (sa[0] != sb[0]) return sa[0] < sb[0] ? -1 : 1;
    if (la != lb) return la > lb ? -1 : 1; /* longest first */
    return x < y ? -1 : (x > y);           /* same text twice: the first listed wins */
}

static lq_status build_matcher(lq__hf *h, hf_matcher *m, bool normd) {
    int32_t n = 0;
    for (int32_t i = 0; i < h->n_added; i++)
        n += h->added[i].normalized == normd && (normd ? h->added[i].norm_len : h->added[i].len) > 0;
    m->idx = lq_malloc(((size_t)n + 1) * sizeof *m->idx);
    LQ_RETURN_IF(!m->idx, LQ_ERR_NOMEM, "out of memory");
    n = 0;
    for (int32_t i = 0; i < h->n_added; i++)
        if (h->added[i].normalized == normd && (normd ? h->added[i].norm_len : h->added[i].len) > 0) m->idx[n++] = i;
    for (int32_t i = 1; i < n; i++) { /* insertion sort: few hundred entries at most in practice */
        const int32_t x = m->idx[i];
        int32_t       j = i;
        while (j > 0 && cmp_added_for_match(h->added, m->idx[j - 1], x, normd) > 0) {
            m->idx[j] = m->idx[j - 1];
            j--;
        }
        m->idx[j] = x;
    }
    int32_t k = 0;
    for (int b = 0; b < 256; b++) {
        m->start[b] = k;
        while (k < n && (uint8_t)(normd ? h->added[m->idx[k]].norm : h->added[m->idx[k]].content)[0] == b)
            k++;
    }
    m->start[256] = k;
    return LQ_OK;
}

static lq_status normalize_str(const lq__hf *h, const char *s, size_t n, lq__buf *out, int64_t *budget);

static int32_t token_id(const lq__hf *h, const char *s) {
    if (!s) return -1;
    const size_t n = strlen(s);
    for (int32_t i = 0; i < h->n_added; i++)
        if (h->added[i].len == n && memcmp(h->added[i].content, s, n) == 0) return h->added[i].id;
    return lq__strtab_get(&h->vocab, s, n);
}

static int32_t special_by_name(const lq__hf *h, const char *const *names) {
    for (int k = 0; names[k]; k++)
        for (int32_t i = 0; i < h->n_added; i++)
            if (h->added[i].special && strcmp(h->added[i].content, names[k]) == 0) return h->added[i].id;
    return -1;
}

/* BOS/EOS: TemplateProcessing's special tokens around $A, else well-known names */
static void find_bos_eos(lq_tokenizer *t, const lq_json *pp, int depth) {
    const lq__hf *h = t->hf;
    if (pp && pp->type == LQ_JSON_OBJECT && depth < 4) {
        const char *type = jstr(pp, "type");
        if (type && strcmp(type, "Sequence") == 0) {
            const lq_json *seq = lq_json_get(pp, "processors");
            for (uint32_t i = 0; seq && seq->type == LQ_JSON_ARRAY && i < seq->n; i++)
                find_bos_eos(t, &seq->items[i], depth + 1);
            return;
        }
        const lq_json *single = lq_json_get(pp, "single");
        if (type && strcmp(type, "TemplateProcessing") == 0 && single && single->type == LQ_JSON_ARRAY) {
            bool seen_seq = false;
            for (uint32_t i = 0; i < single->n; i++) {
                const lq_json *it = &single->items[i];
                const lq_json *sp = lq_json_get(it, "SpecialToken");
                if (lq_json_get(it, "Sequence")) seen_seq = true;
                if (!sp) continue;
                const int32_t id = token_id(h, jstr(sp, "id"));
                if (id < 0) continue;
                if (!seen_seq && t->bos < 0) t->bos = id;
                if (seen_seq && t->eos < 0) t->eos = id;
            }
        }
    }
    if (depth == 0) {
        static const char *const bos_names[] = {"<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>", NULL};
        static const char *const eos_names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", NULL};
        if (t->bos < 0) t->bos = special_by_name(h, bos_names);
        if (t->eos < 0) t->eos = special_by_name(h, eos_names);
    }
}

static lq_status load_added(const loader *L, const lq_json *arr, int32_t *max_id) {
    lq__hf *h = L->h;
    if (!arr || arr->type == LQ_JSON_NULL) return LQ_OK;
    LQ_RETURN_IF(arr->type != LQ_JSON_ARRAY, LQ_ERR_FORMAT, "%s: added_tokens is not an array", L->name);
    LQ_RETURN_IF(arr->n > LQ__TOK_MAX_VOCAB, LQ_ERR_FORMAT, "%s: %u added tokens", L->name, arr->n);
    h->added = lq_calloc((size_t)arr->n + 1, sizeof *h->added);
    LQ_RETURN_IF(!h->added, LQ_ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; i < arr->n; i++) {
        const lq_json *o  = &arr->items[i];
        const lq_json *id = lq_json_get(o, "id"), *c = lq_json_get(o, "content");
        uint64_t       v;
        LQ_RETURN_IF(o->type != LQ_JSON_OBJECT || !id || !lq_json_get_u64(id, &v) || v >= LQ__TOK_MAX_VOCAB || !c ||
                         c->type != LQ_JSON_STRING || c->str_len == 0 || c->str_len > LQ__TOK_MAX_PIECE_LEN,
                     LQ_ERR_FORMAT, "%s: added_tokens[%u] needs an id below %d and a non-empty content", L->name, i,
                     LQ__TOK_MAX_VOCAB);
        hf_added *a = &h->added[h->n_added++];
        a->id       = (int32_t)v;
        a->len      = (uint32_t)c->str_len;
        LQ_TRY(dup_str(c->str, c->str_len, &a->content));
        LQ_TRY(jbool(L, o, "single_word", false, &a->single_word));
        LQ_TRY(jbool(L, o, "lstrip", false, &a->lstrip));
        LQ_TRY(jbool(L, o, "rstrip", false, &a->rstrip));
        LQ_TRY(jbool(L, o, "normalized", true, &a->normalized));
        LQ_TRY(jbool(L, o, "special", false, &a->special));
        if (a->id > *max_id) *max_id = a->id;
    }
    return LQ_OK;
}

static lq_status load_merges(const loader *L, const lq_json *merges) {
    lq__hf   *h  = L->h;
    lq_status st = LQ_OK;
    LQ_RETURN_IF(!merges || merges->type != LQ_JSON_ARRAY, LQ_ERR_FORMAT, "%s: model.merges is not an array", L->name);
    LQ_TRY(lq__pairtab_init(&h->merges, merges->n));
    size_t cap     = 256;
    char  *scratch = lq_malloc(cap);
    LQ_RETURN_IF(!scratch, LQ_ERR_NOMEM, "out of memory");
    int32_t rank = 0;
    for (uint32_t i = 0; i < merges->n; i++) {
        const lq_json *m = &merges->items[i];
        const char    *a, *b;
        size_t         la, lb;
        if (m->type == LQ_JSON_STRING) {
            if (m->str_len >= 8 && memcmp(m->str, "#version", 8) == 0) continue; /* as tokenizers filters */
            const char *sp = memchr(m->str, ' ', m->str_len);
            LQ_GOTO_IF(!sp || memchr(sp + 1, ' ', m->str_len - (size_t)(sp + 1 - m->str)), LQ_ERR_FORMAT,
                       "%s: merge %u '%.*s' is not two tokens separated by one space", L->name, i,
                       (int)LQ_MIN(m->str_len, 64), m->str);
            a = m->str, la = (size_t)(sp - m->str), b = sp + 1, lb = m->str_len - la - 1;
        } else if (m->type == LQ_JSON_ARRAY && m->n == 2 && m->items[0].type == LQ_JSON_STRING &&
                   m->items[1].type == LQ_JSON_STRING) {
            a = m->items[0].str, la = m->items[0].str_len, b = m->items[1].str, lb = m->items[1].str_len;
        } else {
            LQ_GOTO_IF(1, LQ_ERR_FORMAT, "%s: merge %u is neither \"a b\" nor [\"a\", \"b\"]", L->name, i);
        }
        const int32_t ia = lq__strtab_get(&h->vocab, a, la), ib = lq__strtab_get(&h->vocab, b, lb);
        LQ_GOTO_IF(ia < 0 || ib < 0, LQ_ERR_FORMAT, "%s: merge %u references '%.*s', which is not in the vocabulary",
                   L->name, i, ia < 0 ? (int)LQ_MIN(la, 64) : (int)LQ_MIN(lb, 64), ia < 0 ? a : b);
        if (la + lb > cap) {
            cap = la + lb;
            lq_free(scratch);
            scratch = lq_malloc(cap);
            LQ_GOTO_IF(!scratch, LQ_ERR_NOMEM, "out of memory");
        }
        memcpy(scratch, a, la);
        memcpy(scratch + la, b, lb);
        const int32_t ic = lq__strtab_get(&h->vocab, scratch, la + lb);
        LQ_GOTO_IF(ic < 0, LQ_ERR_FORMAT, "%s: merge %u: '%.*s' is not in the vocabulary", L->name, i,
                   (int)LQ_MIN(la + lb, 64), scratch);
        lq__pairtab_set(&h->merges, (uint32_t)ia, (uint32_t)ib, rank++, ic); /* a later duplicate wins */
        /* kept as text for lq_tokenizer_merge() */
        LQ_GOTO_IF(h->merge_text.n + la + lb + 2 > (size_t)INT32_MAX, LQ_ERR_NOMEM, "%s: merges too large", L->name);
        LQ_GOTO_TRY(lq__ivec_push(&h->merge_off, (int32_t)h->merge_text.n));
        LQ_GOTO_TRY(lq__buf_put(&h->merge_text, a, la));
        LQ_GOTO_TRY(lq__buf_put(&h->merge_text, " ", 1));
        LQ_GOTO_TRY(lq__buf_put(&h->merge_text, b, lb));
        LQ_GOTO_TRY(lq__buf_put(&h->merge_text, "", 1));
    }
done:
    lq_free(scratch);
    return st;
}

static lq_status load_model(const loader *L, lq_tokenizer *t, const lq_json *model, const lq_json *added) {
    lq__hf        *h     = L->h;
    lq_status      st    = LQ_OK;
    const char    *type  = jstr(model, "type");
    const lq_json *vocab = lq_json_get(model, "vocab"), *merges = lq_json_get(model, "merges");
    LQ_RETURN_IF(type && strcmp(type, "BPE") != 0, LQ_ERR_UNSUPPORTED,
                 "%s: model type \"%s\" is not supported (only BPE)", L->name, type);
    LQ_RETURN_IF(!type && !merges, LQ_ERR_UNSUPPORTED, "%s: model without a type or merges (not BPE)", L->name);
    LQ_RETURN_IF(!vocab || vocab->type != LQ_JSON_OBJECT, LQ_ERR_FORMAT, "%s: model.vocab is not an object", L->name);
    LQ_RETURN_IF(vocab->n > LQ__TOK_MAX_VOCAB, LQ_ERR_FORMAT, "%s: %u vocabulary entries", L->name, vocab->n);
    const lq_json *dropout = lq_json_get(model, "dropout");
    double         dp      = 0;
    LQ_RETURN_IF(dropout && dropout->type != LQ_JSON_NULL && (!lq_json_get_f64(dropout, &dp) || dp != 0.0),
                 LQ_ERR_UNSUPPORTED, "%s: BPE dropout is not supported", L->name);
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2; k++) {
        const lq_json *v = lq_json_get(model, affixes[k]);
        LQ_RETURN_IF(v && v->type != LQ_JSON_NULL && !(v->type == LQ_JSON_STRING && v->str_len == 0),
                     LQ_ERR_UNSUPPORTED, "%s: BPE %s is not supported", L->name, affixes[k]);
    }
    LQ_TRY(jbool(L, model, "byte_fallback", false, &h->byte_fallback));
    LQ_TRY(jbool(L, model, "fuse_unk", false, &h->fuse_unk));
    LQ_TRY(jbool(L, model, "ignore_merges", false, &h->ignore_merges));

    int32_t max_id = -1;
    for (uint32_t i = 0; i < vocab->n; i++) {
        uint64_t v;
        LQ_RETURN_IF(!lq_json_get_u64(&vocab->items[i], &v) || v >= LQ__TOK_MAX_VOCAB, LQ_ERR_FORMAT,
                     "%s: vocabulary entry %u has no valid id", L->name, i);
        LQ_RETURN_IF(vocab->items[i].key_len > LQ__TOK_MAX_PIECE_LEN || vocab->items[i].key_len == 0, LQ_ERR_FORMAT,
                     "%s: vocabulary entry %u has an empty or huge token", L->name, i);
        if ((int32_t)v > max_id) max_id = (int32_t)v;
    }
    LQ_TRY(load_added(L, added, &max_id));
    LQ_RETURN_IF(max_id < 0, LQ_ERR_FORMAT, "%s: empty vocabulary", L->name);
    /* ids are dense in real files; a lone huge id must not cost gigabytes */
    LQ_RETURN_IF((uint64_t)max_id >= 2 * ((uint64_t)vocab->n + (uint64_t)h->n_added) + 65536, LQ_ERR_FORMAT,
                 "%s: id %d is far beyond the %u tokens listed", L->name, max_id, vocab->n + (uint32_t)h->n_added);
    const size_t n    = (size_t)max_id + 1;
    const char **src  = lq_calloc(n, sizeof *src);
    uint32_t    *lens = lq_calloc(n, sizeof *lens);
    LQ_GOTO_IF(!src || !lens, LQ_ERR_NOMEM, "out of memory (%zu ids)", n);
    for (uint32_t i = 0; i < vocab->n; i++) {
        uint64_t v;
        (void)lq_json_get_u64(&vocab->items[i], &v);
        LQ_GOTO_IF(src[v], LQ_ERR_FORMAT, "%s: id %llu appears twice in the vocabulary", L->name,
                   (unsigned long long)v);
        src[v]  = vocab->items[i].key;
        lens[v] = (uint32_t)vocab->items[i].key_len;
    }
    for (int32_t i = 0; i < h->n_added; i++)
        if (!src[h->added[i].id]) src[h->added[i].id] = h->added[i].content, lens[h->added[i].id] = h->added[i].len;
    LQ_GOTO_TRY(lq__tok_set_pieces(t, src, lens, (int32_t)n));
    /* the vocabulary table's keys live in t's piece arena */
    LQ_GOTO_TRY(lq__strtab_init(&h->vocab, vocab->n));
    for (uint32_t i = 0; i < vocab->n; i++) {
        uint64_t v;
        int32_t  old;
        (void)lq_json_get_u64(&vocab->items[i], &v);
        lq__strtab_put(&h->vocab, t->piece[v], t->piece_len[v], (int32_t)v, &old);
        LQ_GOTO_IF(old >= 0, LQ_ERR_FORMAT, "%s: token '%.*s' appears twice in the vocabulary", L->name,
                   (int)LQ_MIN(t->piece_len[v], 64u), t->piece[v]);
    }
    h->added_of = lq_malloc(n * sizeof *h->added_of);
    LQ_GOTO_IF(!h->added_of, LQ_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        h->added_of[i] = -1;
    for (int32_t i = 0; i < h->n_added; i++)
        h->added_of[h->added[i].id] = i;
    LQ_GOTO_TRY(load_merges(L, merges));

    h->unk_id       = -1;
    const char *unk = jstr(model, "unk_token");
    if (unk) {
        h->unk_id = lq__strtab_get(&h->vocab, unk, strlen(unk));
        LQ_GOTO_IF(h->unk_id < 0, LQ_ERR_FORMAT, "%s: unk_token '%.64s' is not in the vocabulary", L->name, unk);
    }
    for (int b = 0; b < 256; b++) {
        char bp[8];
        snprintf(bp, sizeof bp, "<0x%02X>", b);
        h->byte_tok[b] = lq__strtab_get(&h->vocab, bp, 6);
    }
done:
    lq_free(src);
    lq_free(lens);
    return st;
}

lq_status lq__hf_load(lq_tokenizer *t, const uint8_t *data, size_t size, const char *name) {
    lq_json_doc  *doc = NULL;
    lq_json_error err;
    lq_status     st = lq_json_parse((const char *)data, size, NULL, &doc, &err);
    if (st != LQ_OK) {
        LQ_LOG_ERR("%s: invalid JSON: %s", name, err.msg);
        return st;
    }
    lq__hf *h = lq_calloc(1, sizeof *h);
    t->hf     = h;
    LQ_GOTO_IF(!h, LQ_ERR_NOMEM, "out of memory");
    init_byte_level(h);
    loader         L    = {.name = name, .h = h};
    const lq_json *root = lq_json_root(doc);
    LQ_GOTO_IF(root->type != LQ_JSON_OBJECT, LQ_ERR_FORMAT, "%s: the top level is not an object", name);
    const lq_json *model = lq_json_get(root, "model");
    LQ_GOTO_IF(!model || model->type != LQ_JSON_OBJECT, LQ_ERR_FORMAT, "%s: no \"model\" object", name);
    LQ_GOTO_TRY(load_model(&L, t, model, lq_json_get(root, "added_tokens")));
    LQ_GOTO_TRY(load_normalizer(&L, lq_json_get(root, "normalizer"), 0));
    LQ_GOTO_TRY(load_pretok(&L, lq_json_get(root, "pre_tokenizer"), 0));
    LQ_GOTO_TRY(load_decoder(&L, lq_json_get(root, "decoder"), 0));
    /* `normalized` added tokens match their normalized form */
    for (int32_t i = 0; i < h->n_added; i++) {
        hf_added *a = &h->added[i];
        if (!a->normalized) continue;
        lq__buf b      = {0};
        int64_t budget = (int64_t)1 << 24;
        st             = normalize_str(h, a->content, a->len, &b, &budget);
        if (st == LQ_OK && !b.p) st = lq__buf_put(&b, "", 0);
        if (st != LQ_OK) {
            lq__buf_free(&b);
            goto done;
        }
        a->norm     = b.p;
        a->norm_len = (uint32_t)b.n;
    }
    LQ_GOTO_TRY(build_matcher(h, &h->raw, false));
    LQ_GOTO_TRY(build_matcher(h, &h->normd, true));
    find_bos_eos(t, lq_json_get(root, "post_processor"), 0);
done:
    lq_json_free(doc);
    return st;
}

/* accessors for lq_tokenizer_token_type / lq_tokenizer_merge* (id in range) */
int         lq__hf_token_type(const lq_tokenizer *t, int32_t id);
int64_t     lq__hf_merge_count(const lq_tokenizer *t);
const char *lq__hf_merge(const lq_tokenizer *t, int64_t i);

int lq__hf_token_type(const lq_tokenizer *t, int32_t id) {
    const lq__hf *h = t->hf;
    if (!t->piece[id]) return 5;
    if (h->added_of[id] >= 0) return h->added[h->added_of[id]].special ? 3 : 4;
    if (id == h->unk_id) return 2;
    if (h->byte_fallback && t->piece_len[id] == 6) {
        unsigned b;
        char     tail;
        if (sscanf(t->piece[id], "<0x%2X%c", &b, &tail) == 2 && tail == '>' && b < 256 && h->byte_tok[b] == id)
            return 6;
    }
    return 1;
}

int64_t lq__hf_merge_count(const lq_tokenizer *t) { return (int64_t)t->hf->merge_off.n; }

const char *lq__hf_merge(const lq_tokenizer *t, int64_t i) {
    const lq__hf *h = t->hf;
    return i >= 0 && (uint64_t)i < h->merge_off.n ? h->merge_text.p + h->merge_off.v[i] : NULL;
}

void lq__hf_free(lq__hf *h) {
    if (!h) return;
    lq__buf_free(&h->merge_text);
    lq__ivec_free(&h->merge_off);
    lq__strtab_free(&h->vocab);
    lq__pairtab_free(&h->merges);
    for (int32_t i = 0; i < h->n_added; i++) {
        lq_free(h->added[i].content);
        lq_free(h->added[i].norm);
    }
    lq_free(h->added);
    lq_free(h->added_of);
    lq_free(h->raw.idx);
    lq_free(h->normd.idx);
    for (int i = 0; i < h->n_norm; i++) {
        free_pattern(&h->norm[i].pat);
        lq_free(h->norm[i].s);
    }
    for (int i = 0; i < h->n_pre; i++)
        free_pattern(&h->pre[i].pat);
    for (int i = 0; i < h->n_dec; i++) {
        lq_free(h->dec[i].a);
        lq_free(h->dec[i].b);
    }
    lq__regex_free(h->gpt2);
    lq_free(h);
}

/* bos_token / eos_token: a string, {"content": ...}, or null */
static bool config_token(const lq_json *root, const char *key, const char **content) {
    const lq_json *v = lq_json_get(root, key);
    if (!v) return false;
    if (v->type == LQ_JSON_OBJECT) v = lq_json_get(v, "content");
    *content = v && v->type == LQ_JSON_STRING ? v->str : NULL;
    return true;
}

void lq__hf_apply_config(lq_tokenizer *t, const char *config_path) {
    char  *text = NULL;
    size_t len  = 0;
    if (!t || t->kind != LQ_TOK_HF_BPE || lq__read_file(config_path, (size_t)64 << 20, &text, &len) != LQ_OK) return;
    lq_json_doc *doc = NULL;
    if (lq_json_parse(text, len, NULL, &doc, NULL) == LQ_OK && lq_json_root(doc)->type == LQ_JSON_OBJECT) {
        const char *c;
        if (config_token(lq_json_root(doc), "bos_token", &c)) t->bos = token_id(t->hf, c);
        if (config_token(lq_json_root(doc), "eos_token", &c)) t->eos = token_id(t->hf, c);
    } else {
        LQ_LOG_WARN("%s: not valid JSON; BOS/EOS taken from tokenizer.json", config_path);
    }
    lq_json_free(doc);
    lq_free(text);
}

/* ==== encoding ==== */

typedef struct {
    uint32_t off, len; /* bytes in the arena          */
    int32_t  tok;      /* an added token's id, or -1  */
    uint8_t  at_start; /* starts at original offset 0 */
} hf_split;

typedef struct {
    hf_split *v;
    size_t    n, cap;
} hf_splits;

typedef struct {
    uint32_t s, e;
    uint8_t  m;
} hf_match;

typedef struct {
    const lq_tokenizer *t;
    const lq__hf       *h;
    lq__buf             arena;
    hf_splits           cur, nxt;
    lq__buf             tmp, tmp2;
    hf_match           *mt;
    size_t              mt_n, mt_cap;
    lq__bpe_work        w;
    int64_t             budget; /* regex steps left for this encode call */
} hf_enc;

static lq_status split_push(hf_splits *v, hf_split s) {
    if (s.len == 0 && s.tok < 0) return LQ_OK; /* empty pieces are dropped, as PreTokenizedString::split does */
    if (v->n == v->cap) {
        const size_t cap = v->cap ? v->cap * 2 : 64;
        hf_split    *p   = lq_malloc(cap * sizeof *p);
        LQ_RETURN_IF(!p, LQ_ERR_NOMEM, "out of memory (%zu splits)", cap);
        if (v->n) memcpy(p, v->v, v->n * sizeof *p);
        lq_free(v->v);
        v->v   = p;
        v->cap = cap;
    }
    v->v[v->n++] = s;
    return LQ_OK;
}

static lq_status match_push(hf_enc *E, uint32_t s, uint32_t e, bool m) {
    if (E->mt_n == E->mt_cap) {
        const size_t cap = E->mt_cap ? E->mt_cap * 2 : 64;
        hf_match    *p   = lq_malloc(cap * sizeof *p);
        LQ_RETURN_IF(!p, LQ_ERR_NOMEM, "out of memory (%zu matches)", cap);
        if (E->mt_n) memcpy(p, E->mt, E->mt_n * sizeof *p);
        lq_free(E->mt);
        E->mt     = p;
        E->mt_cap = cap;
    }
    E->mt[E->mt_n++] = (hf_match){.s = s, .e = e, .m = m};
    return LQ_OK;
}

/* append bytes to the arena; their offset in *off */
static lq_status arena_put(hf_enc *E, const char *s, size_t n, uint32_t *off) {
    LQ_RETURN_IF(E->arena.n + n >= UINT32_MAX, LQ_ERR_INVALID_ARG, "text too large");
    *off = (uint32_t)E->arena.n;
    return lq__buf_put(&E->arena, s, n);
}

static size_t next_char(const char *s, size_t n, size_t i) {
    uint32_t  cp;
    const int l = lq__utf8_next((const uint8_t *)s + i, n - i, &cp);
    return i + (l > 0 ? (size_t)l : 1);
}

/* the pattern's matches over s[0..n): E->mt covers s in order, is_match set
 * on the matches (pattern.rs find_matches; Oniguruma's find_iter refuses an
 * empty match right where the previous match ended) */
static lq_status find_matches(hf_enc *E, const hf_pattern *p, const char *s, size_t n) {
    E->mt_n = 0;
    if (n == 0) return match_push(E, 0, 0, false);
    size_t prev = 0, from = 0, last_end = SIZE_MAX;
    while (from <= n) {
        size_t ms, me;
        if (p->re) {
            const int r = lq__regex_find(p->re, s, n, from, &ms, &me, &E->budget);
            LQ_RETURN_IF(r < 0, LQ_ERR_UNSUPPORTED, "regex backtracking limit exceeded (hostile pattern?)");
            if (r == 0) break;
            if (ms == me && ms == last_end) {
                if (ms >= n) break;
                from = next_char(s, n, ms);
                continue;
            }
        } else {
            const char *hit = p->lit_len <= n - from ? memmem(s + from, n - from, p->lit, p->lit_len) : NULL;
            if (!hit) break;
            ms = (size_t)(hit - s);
            me = ms + p->lit_len;
        }
        if (prev != ms) LQ_TRY(match_push(E, (uint32_t)prev, (uint32_t)ms, false));
        LQ_TRY(match_push(E, (uint32_t)ms, (uint32_t)me, true));
        prev = last_end = me;
        from            = me;
    }
    if (prev != n) LQ_TRY(match_push(E, (uint32_t)prev, (uint32_t)n, false));
    return LQ_OK;
}

/* normalizer.rs split(): E->mt + behavior -> pieces of `parent` into E->nxt */
static lq_status split_by(hf_enc *E, const hf_split *parent, uint8_t behavior, bool invert) {
    hf_match *m = E->mt;
    size_t    n = E->mt_n, k = 0;
    if (invert)
        for (size_t i = 0; i < n; i++)
            m[i].m = !m[i].m;
    bool prev_match = false;
    switch (behavior) {
    case BEH_ISOLATED:
        for (size_t i = 0; i < n; i++)
            m[i].m = 0; /* keep all */
        k = n;
        break;
    case BEH_REMOVED:
        k = n;
        break;
    case BEH_CONTIGUOUS:
        for (size_t i = 0; i < n; i++) {
            if (m[i].m == prev_match && k > 0)
                m[k - 1].e = m[i].e;
            else
                m[k++] = (hf_match){.s = m[i].s, .e = m[i].e, .m = 0};
            prev_match = m[i].m;
        }
        break;
    case BEH_MERGED_PREV:
        for (size_t i = 0; i < n; i++) {
            const bool is = m[i].m;
            if (is && !prev_match && k > 0)
                m[k - 1].e = m[i].e;
            else
                m[k++] = (hf_match){.s = m[i].s, .e = m[i].e, .m = 0};
            prev_match = is;
        }
        break;
    case BEH_MERGED_NEXT: {
        /* right to left, merging a match into the piece after it; the result
         * is built from the end of the array backwards */
        size_t w = n;
        for (size_t i = n; i-- > 0;) {
            const bool is = m[i].m;
            if (is && !prev_match && w < n)
                m[w].s = m[i].s;
            else
                m[--w] = (hf_match){.s = m[i].s, .e = m[i].e, .m = 0};
            prev_match = is;
        }
        memmove(m, m + w, (n - w) * sizeof *m);
        k = n - w;
        break;
    }
    }
    for (size_t i = 0; i < k; i++) {
        if (m[i].m) continue; /* removed */
        LQ_TRY(split_push(&E->nxt, (hf_split){.off      = parent->off + m[i].s,
                                              .len      = m[i].e - m[i].s,
                                              .tok      = -1,
                                              .at_start = parent->at_start && m[i].s == 0}));
    }
    return LQ_OK;
}

static bool is_word_char(uint32_t cp) { /* Rust regex \w */
    const int g = lq__uni_category(cp);
    return (g >= LQ__GC_LU && g <= LQ__GC_ME) || g == LQ__GC_ND || g == LQ__GC_NL || g == LQ__GC_PC || cp == 0x200C ||
           cp == 0x200D;
}

static uint32_t last_char(const char *s, size_t n, size_t *start) {
    size_t i = n;
    while (i > 0 && ((uint8_t)s[i - 1] & 0xC0) == 0x80 && n - i < 3)
        i--;
    if (i > 0) i--;
    uint32_t cp = 0xFFFD;
    if (lq__utf8_next((const uint8_t *)s + i, n - i, &cp) <= 0) cp = 0xFFFD;
    if (start) *start = i;
    return cp;
}

/* added_vocabulary.rs find_matches(): split `parent` on the added tokens of
 * matcher m (leftmost-longest) into E->nxt */
static lq_status extract_added(hf_enc *E, const hf_split *parent, const hf_matcher *m, bool normd) {
    const lq__hf *h = E->h;
    if (m->start[256] == 0) return split_push(&E->nxt, *parent);
    const char  *s   = E->arena.p + parent->off;
    const size_t n   = parent->len;
    size_t       cur = 0, start_offset = 0;
    while (cur < n) {
        /* the leftmost position where some token matches, the longest there */
        size_t  ms = 0, me = 0;
        int32_t hit = -1;
        for (size_t i = cur; i < n && hit < 0; i++) {
            const uint8_t b = (uint8_t)s[i];
            for (int32_t k = m->start[b]; k < m->start[b + 1]; k++) {
                const hf_added *a   = &h->added[m->idx[k]];
                const char     *txt = normd ? a->norm : a->content;
                const size_t    l   = normd ? a->norm_len : a->len;
                if (l <= n - i && memcmp(s + i, txt, l) == 0) {
                    hit = m->idx[k], ms = i, me = i + l;
                    break;
                }
            }
        }
        if (hit < 0) break;
        cur                = me;
        const hf_added *a  = &h->added[hit];
        size_t          st = ms, en = me;
        if (a->single_word) {
            uint32_t   cp;
            const bool start_space = ms == 0 || !is_word_char(last_char(s, ms, NULL));
            const bool stop_space =
                me == n || lq__utf8_next((const uint8_t *)s + me, n - me, &cp) <= 0 || !is_word_char(cp);
            if (!start_space || !stop_space) continue;
        }
        if (a->lstrip) {
            size_t ns = ms, cs;
            while (ns > 0 && lq__uni_is_space(last_char(s, ns, &cs)))
                ns = cs;
            st = LQ_MAX(ns, start_offset);
        }
        if (a->rstrip) {
            uint32_t cp;
            int      l;
            while (en < n && (l = lq__utf8_next((const uint8_t *)s + en, n - en, &cp)) > 0 && lq__uni_is_space(cp))
                en += (size_t)l;
        }
        if (start_offset < st)
            LQ_TRY(split_push(&E->nxt, (hf_split){.off      = parent->off + (uint32_t)start_offset,
                                                  .len      = (uint32_t)(st - start_offset),
                                                  .tok      = -1,
                                                  .at_start = parent->at_start && start_offset == 0}));
        LQ_TRY(split_push(&E->nxt, (hf_split){.off      = parent->off + (uint32_t)st,
                                              .len      = (uint32_t)(en - st),
                                              .tok      = a->id,
                                              .at_start = parent->at_start && st == 0}));
        start_offset = en;
    }
    if (start_offset < n)
        LQ_TRY(split_push(&E->nxt, (hf_split){.off      = parent->off + (uint32_t)start_offset,
                                              .len      = (uint32_t)(n - start_offset),
                                              .tok      = -1,
                                              .at_start = parent->at_start && start_offset == 0}));
    return LQ_OK;
}

/* replace every match of p in s by `with`, into out */
static lq_status replace_all(const hf_pattern *p, const char *s, size_t n, const char *with, size_t with_n,
                             lq__buf *out, int64_t *budget) {
    size_t from = 0, prev = 0, last_end = SIZE_MAX;
    LQ_TRY(lq__buf_reserve(out, n));
    while (from <= n) {
        size_t ms, me;
        if (p->re) {
            const int r = lq__regex_find(p->re, s, n, from, &ms, &me, budget);
            LQ_RETURN_IF(r < 0, LQ_ERR_UNSUPPORTED, "regex backtracking limit exceeded (hostile pattern?)");
            if (r == 0) break;
            if (ms == me && ms == last_end) {
                if (ms >= n) break;
                from = next_char(s, n, ms);
                continue;
            }
        } else {
            const char *hit = p->lit_len <= n - from ? memmem(s + from, n - from, p->lit, p->lit_len) : NULL;
            if (!hit) break;
            ms = (size_t)(hit - s);
            me = ms + p->lit_len;
        }
        LQ_TRY(lq__buf_put(out, s + prev, ms - prev));
        LQ_TRY(lq__buf_put(out, with, with_n));
        prev = last_end = from = me;
    }
    return lq__buf_put(out, s + prev, n - prev);
}

/* the normalizer chain on one string, into out */
static lq_status normalize_str(const lq__hf *h, const char *s, size_t n, lq__buf *out, int64_t *budget) {
    lq__buf     a = {0}, b = {0};
    lq_status   st = LQ_OK;
    const char *cs = s;
    size_t      cn = n;
    for (int i = 0; i < h->n_norm; i++) {
        const hf_norm *nm = &h->norm[i];
        b.n               = 0;
        switch (nm->type) {
        case NM_PREPEND:
            if (cn) LQ_GOTO_TRY(lq__buf_put(&b, nm->s, nm->s_len));
            LQ_GOTO_TRY(lq__buf_put(&b, cs, cn));
            break;
        case NM_REPLACE:
            LQ_GOTO_TRY(replace_all(&nm->pat, cs, cn, nm->s, nm->s_len, &b, budget));
            break;
        case NM_NFC:
            LQ_GOTO_TRY(lq__nfc(cs, cn, &b));
            break;
        case NM_STRIP: {
            size_t   lo = 0, hi = cn, cstart;
            uint32_t cp;
            int      l;
            while (nm->left && lo < hi && (l = lq__utf8_next((const uint8_t *)cs + lo, hi - lo, &cp)) > 0 &&
                   lq__uni_is_space(cp))
                lo += (size_t)l;
            while (nm->right && hi > lo && lq__uni_is_space(last_char(cs + lo, hi - lo, &cstart)))
                hi = lo + cstart;
            LQ_GOTO_TRY(lq__buf_put(&b, cs + lo, hi - lo));
            break;
        }
        }
        const lq__buf t = a; /* swap: the result becomes the next input */
        a               = b;
        b               = t;
        cs              = a.p ? a.p : "";
        cn              = a.n;
    }
    LQ_GOTO_TRY(lq__buf_put(out, cs, cn));
done:
    lq__buf_free(&a);
    lq__buf_free(&b);
    return st;
}

/* one pre-tokenizer over E->cur into E->nxt */
static lq_status pretokenize(hf_enc *E, const hf_pre *p) {
    const lq__hf *h = E->h;
    E->nxt.n        = 0;
    for (size_t i = 0; i < E->cur.n; i++) {
        hf_split sp = E->cur.v[i];
        if (sp.tok >= 0) {
            LQ_TRY(split_push(&E->nxt, sp));
            continue;
        }
        if (p->type == PRE_SPLIT) {
            LQ_TRY(find_matches(E, &p->pat, E->arena.p + sp.off, sp.len));
            LQ_TRY(split_by(E, &sp, p->behavior, p->invert));
        } else if (p->type == PRE_METASPACE) {
            E->tmp.n = 0;
            LQ_TRY(lq__buf_reserve(&E->tmp, (size_t)sp.len * 3 + 4));
            const char *s      = E->arena.p + sp.off;
            bool        starts = sp.len > 0 && s[0] == ' ';
            if (!starts && sp.len >= p->repl_len && memcmp(s, p->repl, p->repl_len) == 0) starts = true;
            if (!starts && (p->scheme == SCHEME_ALWAYS || (p->scheme == SCHEME_FIRST && sp.at_start)))
                LQ_TRY(lq__buf_put(&E->tmp, p->repl, p->repl_len));
            for (uint32_t k = 0; k < sp.len; k++) {
                if (s[k] == ' ')
                    LQ_TRY(lq__buf_put(&E->tmp, p->repl, p->repl_len));
                else
                    LQ_TRY(lq__buf_put(&E->tmp, s + k, 1));
            }
            hf_split ns = {.tok = -1, .at_start = sp.at_start, .len = (uint32_t)E->tmp.n};
            LQ_TRY(arena_put(E, E->tmp.p, E->tmp.n, &ns.off));
            if (p->split) {
                const hf_pattern pat = {.lit = (char *)(uintptr_t)p->repl, .lit_len = p->repl_len};
                LQ_TRY(find_matches(E, &pat, E->arena.p + ns.off, ns.len));
                LQ_TRY(split_by(E, &ns, BEH_MERGED_NEXT, false));
            } else {
                LQ_TRY(split_push(&E->nxt, ns));
            }
        } else { /* PRE_BYTELEVEL */
            hf_split ns = sp;
            if (p->add_prefix_space && !(sp.len > 0 && E->arena.p[sp.off] == ' ')) {
                E->tmp.n = 0;
                LQ_TRY(lq__buf_put(&E->tmp, " ", 1));
                LQ_TRY(lq__buf_put(&E->tmp, E->arena.p + sp.off, sp.len));
                ns.len = (uint32_t)E->tmp.n;
                LQ_TRY(arena_put(E, E->tmp.p, E->tmp.n, &ns.off));
            }
            const size_t first = E->nxt.n;
            if (p->use_regex) {
                const hf_pattern pat = {.re = h->gpt2};
                LQ_TRY(find_matches(E, &pat, E->arena.p + ns.off, ns.len));
                LQ_TRY(split_by(E, &ns, BEH_ISOLATED, false));
            } else {
                LQ_TRY(split_push(&E->nxt, ns));
            }
            /* bytes -> printable code points */
            for (size_t k = first; k < E->nxt.n; k++) {
                hf_split *q = &E->nxt.v[k];
                E->tmp.n    = 0;
                LQ_TRY(lq__buf_reserve(&E->tmp, (size_t)q->len * 2));
                for (uint32_t j = 0; j < q->len; j++)
                    E->tmp.n += lq__utf8_put(h->byte_char[(uint8_t)E->arena.p[q->off + j]], E->tmp.p + E->tmp.n);
                uint32_t off;
                LQ_TRY(arena_put(E, E->tmp.p, E->tmp.n, &off));
                q      = &E->nxt.v[k];
                q->off = off;
                q->len = (uint32_t)E->tmp.n;
            }
        }
    }
    const hf_splits t = E->cur;
    E->cur            = E->nxt;
    E->nxt            = t;
    return LQ_OK;
}

static bool hf_pair(void *vctx, const lq__bpe_sym *a, const lq__bpe_sym *b, bool is_push, double *prio,
                    int32_t *new_id) {
    (void)is_push;
    const lq__hf *h = vctx;
    int32_t       rank, id;
    if (a->id < 0 || b->id < 0 || !lq__pairtab_get(&h->merges, (uint32_t)a->id, (uint32_t)b->id, &rank, &id))
        return false;
    *prio   = -(double)rank;
    *new_id = id;
    return true;
}

/* models/bpe/model.rs merge_word() + word.rs merge_all() */
static lq_status bpe_word(hf_enc *E, const char *s, size_t n, lq__ivec *out) {
    const lq__hf *h = E->h;
    if (n == 0) return LQ_OK;
    if (h->ignore_merges) {
        const int32_t id = lq__strtab_get(&h->vocab, s, n);
        if (id >= 0) return lq__ivec_push(out, id);
    }
    LQ_TRY(lq__bpe_work_syms(&E->w, n));
    lq__bpe_sym *sym = E->w.sym;
    int32_t      k = 0, unk_len = 0;
    bool         unk = false;
#define HF_ADD(idv, l)                                                                                                 \
    do {                                                                                                               \
        sym[k] = (lq__bpe_sym){.id = (idv), .prev = k - 1, .next = -1, .len = (uint32_t)(l)};                          \
        if (k > 0) sym[k - 1].next = k;                                                                                \
        k++;                                                                                                           \
    } while (0)
    for (size_t i = 0; i < n;) {
        const size_t  e  = next_char(s, n, i);
        const int32_t id = lq__strtab_get(&h->vocab, s + i, e - i);
        if (id >= 0) {
            if (unk) {
                HF_ADD(h->unk_id, unk_len);
                unk = false;
            }
            HF_ADD(id, e - i);
        } else {
            bool all = h->byte_fallback;
            for (size_t j = i; all && j < e; j++)
                all = h->byte_tok[(uint8_t)s[j]] >= 0;
            if (all) { /* a pending <unk> stays pending, as in model.rs */
                for (size_t j = i; j < e; j++)
                    HF_ADD(h->byte_tok[(uint8_t)s[j]], 1);
            } else if (h->unk_id >= 0) {
                if (unk && h->fuse_unk) {
                    unk_len += (int32_t)(e - i);
                } else {
                    if (unk) HF_ADD(h->unk_id, unk_len);
                    unk     = true;
                    unk_len = (int32_t)(e - i);
                }
            } /* else: the character is dropped */
        }
        i = e;
    }
    if (unk) HF_ADD(h->unk_id, unk_len);
#undef HF_ADD
    if (k == 0) return LQ_OK;
    LQ_TRY(lq__bpe_merge(&E->w, k, hf_pair, (void *)(uintptr_t)h));
    for (int32_t i = 0; i >= 0; i = E->w.sym[i].next)
        LQ_TRY(lq__ivec_push(out, E->w.sym[i].id));
    return LQ_OK;
}

lq_status lq__hf_encode(const lq_tokenizer *t, const char *text, size_t len, lq__ivec *out) {
    const lq__hf *h = t->hf;
    /* real pre-split patterns take a few dozen steps per character */
    hf_enc    E  = {.t = t, .h = h, .budget = ((int64_t)1 << 22) + 256 * (int64_t)len};
    lq_status st = LQ_OK;
    uint32_t  off;
    LQ_GOTO_TRY(lq__utf8_sanitize(text, len, &E.tmp));
    LQ_GOTO_TRY(arena_put(&E, E.tmp.p ? E.tmp.p : "", E.tmp.n, &off));
    const hf_split whole = {.off = off, .len = (uint32_t)E.tmp.n, .tok = -1, .at_start = 1};
    /* 1. added tokens that match the raw text */
    LQ_GOTO_TRY(extract_added(&E, &whole, &h->raw, false));
    /* 2. normalize the rest, then split out the normalized added tokens */
    {
        const hf_splits t1 = E.cur;
        E.cur              = E.nxt;
        E.nxt              = t1;
        E.nxt.n            = 0;
    }
    for (size_t i = 0; i < E.cur.n; i++) {
        hf_split sp = E.cur.v[i];
        if (sp.tok >= 0) {
            LQ_GOTO_TRY(split_push(&E.nxt, sp));
            continue;
        }
        if (h->n_norm) {
            E.tmp2.n = 0;
            LQ_GOTO_TRY(normalize_str(h, E.arena.p + sp.off, sp.len, &E.tmp2, &E.budget));
            sp.len = (uint32_t)E.tmp2.n;
            LQ_GOTO_TRY(arena_put(&E, E.tmp2.p ? E.tmp2.p : "", E.tmp2.n, &sp.off));
        }
        LQ_GOTO_TRY(extract_added(&E, &sp, &h->normd, true));
    }
    {
        const hf_splits t1 = E.cur;
        E.cur              = E.nxt;
        E.nxt              = t1;
    }
    /* 3. pre-tokenizers */
    for (int i = 0; i < h->n_pre; i++)
        LQ_GOTO_TRY(pretokenize(&E, &h->pre[i]));
    /* 4. the model */
    for (size_t i = 0; i < E.cur.n; i++) {
        const hf_split *sp = &E.cur.v[i];
        if (sp->tok >= 0)
            LQ_GOTO_TRY(lq__ivec_push(out, sp->tok));
        else
            LQ_GOTO_TRY(bpe_word(&E, E.arena.p + sp->off, sp->len, out));
    }
done:
    lq__buf_free(&E.arena);
    lq__buf_free(&E.tmp);
    lq__buf_free(&E.tmp2);
    lq_free(E.cur.v);
    lq_free(E.nxt.v);
    lq_free(E.mt);
    lq__bpe_work_free(&E.w);
    return st;
}

/* ==== decoding ==== */

int lq__hf_decode(const lq_tokenizer *t, int32_t prev, int32_t id, char *buf, size_t cap) {
    const lq__hf *h  = t->hf;
    const int32_t ai = h->added_of[id];
    if (ai >= 0 && h->added[ai].special) return 0; /* skip_special_tokens */
    /* the first piece: at the start or after BOS (tokenizers decodes a whole
     * sequence with special tokens skipped; this is its per-piece reading) */
    const bool first = prev < 0 || prev >= t->n_vocab || prev == t->bos;
    lq__buf    a = {0}, b = {0};
    int        ret = -1;
    if (ai >= 0 ? lq__buf_put(&a, h->added[ai].content, h->added[ai].len) != LQ_OK
                : lq__buf_put(&a, t->piece[id], t->piece_len[id]) != LQ_OK)
        goto out;
    bool fused = false;
    for (int i = 0; i < h->n_dec; i++) {
        const hf_dec *d   = &h->dec[i];
        const char   *cur = a.p;
        const size_t  n   = a.n;
        lq_status     st  = LQ_OK;
        b.n               = 0;
        switch (d->type) {
        case DEC_BYTELEVEL: { /* every character mapped back to its byte, else the piece as is */
            bool ok = true;
            for (size_t k = 0; k < n && ok && st == LQ_OK;) {
                uint32_t  cp;
                const int l = lq__utf8_next((const uint8_t *)cur + k, n - k, &cp);
                ok          = l > 0 && cp < 324 && h->char_byte[cp] >= 0;
                if (ok) {
                    const char c = (char)h->char_byte[cp];
                    st           = lq__buf_put(&b, &c, 1);
                    k += (size_t)l;
                }
            }
            if (!ok) b.n = 0, st = lq__buf_put(&b, cur, n);
            break;
        }
        case DEC_METASPACE: /* the first token loses every replacement character */
            for (size_t k = 0; k < n && st == LQ_OK;) {
                if (k + d->repl_len <= n && memcmp(cur + k, d->repl, d->repl_len) == 0) {
                    if (!(first && d->prepend)) st = lq__buf_put(&b, " ", 1);
                    k += d->repl_len;
                } else {
                    st = lq__buf_put(&b, cur + k++, 1);
                }
            }
            break;
        case DEC_REPLACE:
            for (size_t k = 0; k < n && st == LQ_OK;) {
                if (k + d->a_len <= n && memcmp(cur + k, d->a, d->a_len) == 0) {
                    st = lq__buf_put(&b, d->b, d->b_len);
                    k += d->a_len;
                } else {
                    st = lq__buf_put(&b, cur + k++, 1);
                }
            }
            break;
        case DEC_BYTEFALLBACK: { /* "<0xXX>" -> the byte */
            int  v  = 0;
            bool ok = n == 6 && memcmp(cur, "<0x", 3) == 0 && cur[5] == '>';
            for (int k = 3; ok && k < 5; k++) {
                const char c = cur[k];
                ok           = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
                v            = v * 16 + (c <= '9' ? c - '0' : (c | 32) - 'a' + 10);
            }
            const char c = (char)v;
            st           = ok ? lq__buf_put(&b, &c, 1) : lq__buf_put(&b, cur, n);
            break;
        }
        case DEC_FUSE:
            fused = true;
            st    = lq__buf_put(&b, cur, n);
            break;
        case DEC_STRIP: {
            /* after Fuse the text is one token: only its start (the first
             * piece) can be stripped here; its end is not known */
            char         c[4];
            const size_t cl = lq__utf8_put(d->content, c);
            size_t       lo = 0, hi = n;
            if (!fused || first)
                for (int32_t k = 0; k < d->start && lo + cl <= hi && memcmp(cur + lo, c, cl) == 0; k++)
                    lo += cl;
            if (!fused)
                for (int32_t k = 0; k < d->stop && hi >= lo + cl && memcmp(cur + hi - cl, c, cl) == 0; k++)
                    hi -= cl;
            st = lq__buf_put(&b, cur + lo, hi - lo);
            break;
        }
        }
        if (st != LQ_OK) goto out;
        const lq__buf sw = a;
        a                = b;
        b                = sw;
    }
    ret = lq__tok_out(buf, cap, a.p, a.n);
out:
    lq__buf_free(&a);
    lq__buf_free(&b);
    return ret;
}
