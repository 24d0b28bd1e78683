/* tokenizer.c : the public tokenizer interface (lq_tokenizer.h) and what the
 * three back ends share: kind detection, hash tables, the BPE merge engine,
 * UTF-8 and the Unicode table lookups.
 *
 * The merge engine is the priority-queue formulation of BPE used by
 * SentencePiece (bpe_model.cc) and HF tokenizers (word.rs): O(n log n) in
 * the number of symbols, never a rescan. The back ends only differ in how a
 * pair is looked up and prioritised (highest score vs lowest merge rank) and
 * all break ties leftmost-first.
 *
 * Every input file is hostile: back ends check every length against the
 * bytes that remain and enforce the LQ__TOK_MAX_* limits. */
#include "tokenizer_internal.h"

#include <string.h>

/* ==== growable vectors ==== */

lq_status lq__ivec_push(lq__ivec *a, int32_t x) {
    if (a->n == a->cap) {
        const size_t cap = a->cap ? a->cap * 2 : 64;
        size_t       bytes;
        LQ_RETURN_IF(!lq__mul_size(cap, sizeof(int32_t), &bytes), LQ_ERR_NOMEM, "id vector overflow");
        int32_t *v = lq_malloc(bytes);
        LQ_RETURN_IF(!v, LQ_ERR_NOMEM, "out of memory (%zu ids)", cap);
        if (a->n) memcpy(v, a->v, a->n * sizeof(int32_t));
        lq_free(a->v);
        a->v   = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return LQ_OK;
}

void lq__ivec_free(lq__ivec *a) {
    lq_free(a->v);
    memset(a, 0, sizeof *a);
}

lq_status lq__buf_reserve(lq__buf *b, size_t extra) {
    size_t need;
    LQ_RETURN_IF(!lq__add_size(b->n, extra, &need) || need == SIZE_MAX, LQ_ERR_NOMEM, "buffer overflow");
    if (need + 1 <= b->cap) return LQ_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need + 1) {
        LQ_RETURN_IF(cap > SIZE_MAX / 2, LQ_ERR_NOMEM, "buffer overflow");
        cap *= 2;
    }
    char *p = lq_malloc(cap);
    LQ_RETURN_IF(!p, LQ_ERR_NOMEM, "out of memory (%zu bytes)", cap);
    if (b->n) memcpy(p, b->p, b->n);
    lq_free(b->p);
    b->p   = p;
    b->cap = cap;
    return LQ_OK;
}

lq_status lq__buf_put(lq__buf *b, const void *s, size_t n) {
    LQ_TRY(lq__buf_reserve(b, n));
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0; /* always NUL-terminated for convenience */
    return LQ_OK;
}

void lq__buf_free(lq__buf *b) {
    lq_free(b->p);
    memset(b, 0, sizeof *b);
}

/* ==== hash tables ==== */

uint32_t lq__hash_final(uint64_t h) { /* FNV-1a 64, mixed and folded */
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    return (uint32_t)(h ^ (h >> 32));
}

static uint32_t hash_bytes(const char *s, size_t n) {
    uint64_t h = lq__hash_init();
    for (size_t i = 0; i < n; i++)
        h = lq__hash_step(h, (uint8_t)s[i]);
    return lq__hash_final(h);
}

static size_t table_cap(size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2 + 16)
        cap *= 2;
    return cap;
}

lq_status lq__strtab_init(lq__strtab *t, size_t expected) {
    memset(t, 0, sizeof *t);
    LQ_RETURN_IF(expected > ((size_t)1 << 28), LQ_ERR_NOMEM, "hash table of %zu entries refused", expected);
    const size_t cap = table_cap(expected);
    t->ent           = lq_malloc(cap * sizeof *t->ent);
    LQ_RETURN_IF(!t->ent, LQ_ERR_NOMEM, "out of memory (hash table of %zu)", cap);
    for (size_t i = 0; i < cap; i++)
        t->ent[i].len = UINT32_MAX;
    t->mask = cap - 1;
    return LQ_OK;
}

void lq__strtab_free(lq__strtab *t) {
    lq_free(t->ent);
    memset(t, 0, sizeof *t);
}

int32_t lq__strtab_get(const lq__strtab *t, const char *s, size_t len) {
    if (!t->ent || len >= UINT32_MAX) return -1;
    return lq__strtab_get_hashed(t, s, len, hash_bytes(s, len));
}

int32_t lq__strtab_get_hashed(const lq__strtab *t, const char *s, size_t len, uint32_t h) {
    if (!t->ent || len >= UINT32_MAX) return -1;
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        const lq__strtab_ent *e = &t->ent[i];
        if (e->len == UINT32_MAX) return -1;
        if (e->hash == h && e->len == len && memcmp(e->s, s, len) == 0) return e->val;
    }
}

void lq__strtab_put(lq__strtab *t, const char *s, size_t len, int32_t val, int32_t *old) {
    LQ_ASSERT(t->ent && len < UINT32_MAX && t->n < t->mask / 2 + 8);
    const uint32_t h = hash_bytes(s, len);
    *old             = -1;
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        lq__strtab_ent *e = &t->ent[i];
        if (e->len == UINT32_MAX) {
            *e = (lq__strtab_ent){.s = s, .len = (uint32_t)len, .hash = h, .val = val};
            t->n++;
            return;
        }
        if (e->hash == h && e->len == len && memcmp(e->s, s, len) == 0) {
            *old = e->val;
            return;
        }
    }
}

static size_t hash_pair(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    return (size_t)(k ^ (k >> 33));
}

lq_status lq__pairtab_init(lq__pairtab *t, size_t expected) {
    memset(t, 0, sizeof *t);
    LQ_RETURN_IF(expected > ((size_t)1 << 28), LQ_ERR_NOMEM, "pair table of %zu entries refused", expected);
    const size_t cap = table_cap(expected);
    t->key           = lq_malloc(cap * sizeof *t->key);
    t->a             = lq_malloc(cap * sizeof *t->a);
    t->b             = lq_malloc(cap * sizeof *t->b);
    if (!t->key || !t->a || !t->b) {
        lq__pairtab_free(t);
        LQ_RETURN_IF(1, LQ_ERR_NOMEM, "out of memory (pair table of %zu)", cap);
    }
    for (size_t i = 0; i < cap; i++)
        t->key[i] = UINT64_MAX;
    t->mask = cap - 1;
    return LQ_OK;
}

void lq__pairtab_free(lq__pairtab *t) {
    lq_free(t->key);
    lq_free(t->a);
    lq_free(t->b);
    memset(t, 0, sizeof *t);
}

bool lq__pairtab_get(const lq__pairtab *t, uint32_t x, uint32_t y, int32_t *a, int32_t *b) {
    if (!t->key) return false;
    const uint64_t k = (uint64_t)x << 32 | y;
    for (size_t i = hash_pair(k) & t->mask;; i = (i + 1) & t->mask) {
        if (t->key[i] == UINT64_MAX) return false;
        if (t->key[i] == k) {
            *a = t->a[i];
            *b = t->b[i];
            return true;
        }
    }
}

void lq__pairtab_set(lq__pairtab *t, uint32_t x, uint32_t y, int32_t a, int32_t b) {
    LQ_ASSERT(t->key && t->n < t->mask / 2 + 8);
    const uint64_t k = (uint64_t)x << 32 | y;
    LQ_ASSERT(k != UINT64_MAX);
    for (size_t i = hash_pair(k) & t->mask;; i = (i + 1) & t->mask) {
        if (t->key[i] == UINT64_MAX || t->key[i] == k) {
            if (t->key[i] == UINT64_MAX) t->n++;
            t->key[i] = k;
            t->a[i]   = a;
            t->b[i]   = b;
            return;
        }
    }
}

/* ==== BPE merge engine ==== */

lq_status lq__bpe_work_syms(lq__bpe_work *w, size_t n) {
    if (n <= w->sym_cap) return LQ_OK;
    size_t cap = w->sym_cap ? w->sym_cap : 64;
    while (cap < n)
        cap *= 2;
    size_t bytes;
    LQ_RETURN_IF(!lq__mul_size(cap, sizeof *w->sym, &bytes), LQ_ERR_NOMEM, "symbol array overflow");
    lq__bpe_sym *s = lq_malloc(bytes);
    LQ_RETURN_IF(!s, LQ_ERR_NOMEM, "out of memory (%zu symbols)", cap);
    lq_free(w->sym);
    w->sym     = s;
    w->sym_cap = cap;
    return LQ_OK;
}

void lq__bpe_work_free(lq__bpe_work *w) {
    lq_free(w->sym);
    lq_free(w->heap);
    memset(w, 0, sizeof *w);
}

/* a before b in the heap: higher priority, then leftmost */
static bool cand_before(const lq__bpe_cand *a, const lq__bpe_cand *b) {
    return a->prio > b->prio || (a->prio == b->prio && a->pos < b->pos);
}

static lq_status heap_push(lq__bpe_work *w, lq__bpe_cand c) {
    if (w->heap_n == w->heap_cap) {
        const size_t cap = w->heap_cap ? w->heap_cap * 2 : 64;
        size_t       bytes;
        LQ_RETURN_IF(!lq__mul_size(cap, sizeof *w->heap, &bytes), LQ_ERR_NOMEM, "heap overflow");
        lq__bpe_cand *h = lq_malloc(bytes);
        LQ_RETURN_IF(!h, LQ_ERR_NOMEM, "out of memory (heap of %zu)", cap);
        if (w->heap_n) memcpy(h, w->heap, w->heap_n * sizeof *h);
        lq_free(w->heap);
        w->heap     = h;
        w->heap_cap = cap;
    }
    size_t i = w->heap_n++;
    while (i > 0) {
        const size_t parent = (i - 1) / 2;
        if (!cand_before(&c, &w->heap[parent])) break;
        w->heap[i] = w->heap[parent];
        i          = parent;
    }
    w->heap[i] = c;
    return LQ_OK;
}

static lq__bpe_cand heap_pop(lq__bpe_work *w) {
    const lq__bpe_cand top  = w->heap[0];
    const lq__bpe_cand last = w->heap[--w->heap_n];
    size_t             i    = 0;
    for (;;) {
        size_t              best = i;
        const size_t        l = 2 * i + 1, r = l + 1;
        const lq__bpe_cand *bc = &last;
        if (l < w->heap_n && cand_before(&w->heap[l], bc)) best = l, bc = &w->heap[l];
        if (r < w->heap_n && cand_before(&w->heap[r], bc)) best = r;
        if (best == i) break;
        w->heap[i] = w->heap[best];
        i          = best;
    }
    if (w->heap_n) w->heap[i] = last;
    return top;
}

static lq_status maybe_push(lq__bpe_work *w, int32_t left, lq__bpe_pair_fn fn, void *ctx) {
    if (left < 0) return LQ_OK;
    const lq__bpe_sym *a = &w->sym[left];
    if (a->next < 0) return LQ_OK;
    double  prio;
    int32_t id;
    if (!fn(ctx, a, &w->sym[a->next], true, &prio, &id)) return LQ_OK;
    return heap_push(w, (lq__bpe_cand){.prio = prio, .pos = left, .new_id = id});
}

lq_status lq__bpe_merge(lq__bpe_work *w, int32_t n, lq__bpe_pair_fn fn, void *ctx) {
    w->heap_n = 0;
    for (int32_t i = 0; i + 1 < n; i++)
        LQ_TRY(maybe_push(w, i, fn, ctx));
    while (w->heap_n) {
        const lq__bpe_cand top = heap_pop(w);
        lq__bpe_sym       *a   = &w->sym[top.pos];
        if (a->len == 0 || a->next < 0) continue; /* merged away, or now last */
        lq__bpe_sym *b = &w->sym[a->next];
        double       prio;
        int32_t      id;
        if (!fn(ctx, a, b, false, &prio, &id) || id != top.new_id || prio != top.prio) continue; /* stale */
        a->id = id;
        a->len += b->len;
        a->next = b->next;
        b->len  = 0;
        if (a->next >= 0) w->sym[a->next].prev = top.pos;
        LQ_TRY(maybe_push(w, a->prev, fn, ctx));
        LQ_TRY(maybe_push(w, top.pos, fn, ctx));
    }
    return LQ_OK;
}

/* ==== UTF-8 ==== */

int lq__utf8_next(const uint8_t *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    const uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int      len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, v = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, v = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, v = c & 0x07, min = 0x10000;
    else
        return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

size_t lq__utf8_put(uint32_t cp, char *out) {
    uint8_t *o = (uint8_t *)out;
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | cp >> 6);
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | cp >> 12);
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | cp >> 18);
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* length of the maximal ill-formed subpart at s (Unicode 3.9, "U+FFFD
 * substitution of maximal subparts"): the longest prefix of a well-formed
 * sequence, at least 1 */
static size_t maximal_subpart(const uint8_t *s, size_t n) {
    const uint8_t c  = s[0];
    uint8_t       lo = 0x80, hi = 0xBF;
    size_t        len;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 1;
    size_t i = 1;
    if (i < n && s[i] >= lo && s[i] <= hi) {
        for (i = 2; i < len && i < n && (s[i] & 0xC0) == 0x80;)
            i++;
    }
    return i;
}

lq_status lq__utf8_sanitize(const char *s, size_t n, lq__buf *out) {
    LQ_TRY(lq__buf_reserve(out, n));
    const uint8_t *u = (const uint8_t *)s;
    size_t         i = 0;
    while (i < n) {
        uint32_t  cp;
        const int l = lq__utf8_next(u + i, n - i, &cp);
        if (l > 0) {
            LQ_TRY(lq__buf_put(out, s + i, (size_t)l));
            i += (size_t)l;
        } else {
            LQ_TRY(lq__buf_put(out, "\xEF\xBF\xBD", 3));
            i += maximal_subpart(u + i, n - i);
        }
    }
    return LQ_OK;
}

/* ==== Unicode tables ==== */

int lq__uni_category(uint32_t cp) {
    if (cp > 0x10FFFF) return LQ__GC_CN;
    size_t lo = 0, hi = lq__uni_gc_runs_n; /* last run whose start <= cp */
    while (hi - lo > 1) {
        const size_t mid = (lo + hi) / 2;
        if ((lq__uni_gc_runs[mid] >> 5) <= cp)
            lo = mid;
        else
            hi = mid;
    }
    return (int)(lq__uni_gc_runs[lo] & 31);
}

bool lq__uni_is_space(uint32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    for (size_t i = 0; i < lq__uni_space_n; i++)
        if (cp >= lq__uni_space[i][0] && cp <= lq__uni_space[i][1]) return true;
    return false;
}

/* ==== piece table ==== */

lq_status lq__tok_set_pieces(lq_tokenizer *t, const char *const *src, const uint32_t *len, int32_t n) {
    LQ_ASSERT(n >= 0 && !t->piece);
    size_t total = 1;
    for (int32_t i = 0; i < n; i++)
        if (src[i]) LQ_RETURN_IF(!lq__add_size(total, (size_t)len[i] + 1, &total), LQ_ERR_NOMEM, "pieces overflow");
    t->piece       = lq_calloc((size_t)n + 1, sizeof *t->piece);
    t->piece_len   = lq_calloc((size_t)n + 1, sizeof *t->piece_len);
    t->piece_arena = lq_malloc(total);
    LQ_RETURN_IF(!t->piece || !t->piece_len || !t->piece_arena, LQ_ERR_NOMEM, "out of memory (%d pieces)", n);
    char *p = t->piece_arena;
    for (int32_t i = 0; i < n; i++) {
        if (!src[i]) continue;
        memcpy(p, src[i], len[i]);
        p[len[i]]       = 0;
        t->piece[i]     = p;
        t->piece_len[i] = len[i];
        p += len[i] + 1;
    }
    t->n_vocab = n;
    return LQ_OK;
}

int lq__tok_out(char *buf, size_t cap, const void *s, size_t n) {
    if (n > cap) n = cap;
    if (n > (size_t)INT32_MAX) n = INT32_MAX;
    if (n) memcpy(buf, s, n);
    return (int)n;
}

/* ==== public API ==== */

void lq_tokenizer_free(lq_tokenizer *t) {
    if (!t) return;
    lq__spm_free(t->spm);
    lq__l2c_free(t->l2c);
    lq__hf_free(t->hf);
    lq_free(t->piece);
    lq_free(t->piece_len);
    lq_free(t->piece_arena);
    lq_free(t);
}

/* `name` (a path, or "(memory)") only labels the error messages */
static lq_status open_named(const void *data, size_t size, int32_t vocab_size, const char *name, lq_tokenizer **out) {
    LQ_RETURN_IF(!out || (!data && size), LQ_ERR_INVALID_ARG, "NULL argument");
    *out = NULL;
    LQ_RETURN_IF(vocab_size < 0, LQ_ERR_INVALID_ARG, "negative vocab_size %d", vocab_size);
    const uint8_t *d = data;
    size_t         i = 0;
    while (i < size && (d[i] == ' ' || d[i] == '\t' || d[i] == '\r' || d[i] == '\n'))
        i++;
    if (i + 3 <= size && d[i] == 0xEF && d[i + 1] == 0xBB && d[i + 2] == 0xBF) i += 3; /* BOM */

    lq_tokenizer *t = lq_calloc(1, sizeof *t);
    LQ_RETURN_IF(!t, LQ_ERR_NOMEM, "out of memory");
    t->bos = t->eos = -1;
    lq_status st;
    if (i < size && d[i] == '{') {
        t->kind = LQ_TOK_HF_BPE;
        st      = lq__hf_load(t, d + i, size - i, name);
    } else if (vocab_size > 0 && lq__l2c_plausible(d, size, vocab_size)) {
        t->kind = LQ_TOK_LLAMA2C;
        st      = lq__l2c_load(t, d, size, vocab_size, name);
    } else if (size > 0 && d[0] == 0x0A) { /* ModelProto field 1 (pieces), length-delimited */
        t->kind = LQ_TOK_SENTENCEPIECE;
        st      = lq__spm_load(t, d, size, name);
    } else if (vocab_size > 0) {
        t->kind = LQ_TOK_LLAMA2C;
        st      = lq__l2c_load(t, d, size, vocab_size, name); /* reports what is wrong */
    } else {
        LQ_LOG_ERR("%s: not a tokenizer.json, a SentencePiece model or (vocab_size given) a llama2.c "
                   "tokenizer.bin",
                   name);
        st = LQ_ERR_FORMAT;
    }
    if (st != LQ_OK) {
        lq_tokenizer_free(t);
        return st;
    }
    *out = t;
    return LQ_OK;
}

lq_status lq_tokenizer_open(const char *path, int32_t vocab_size, lq_tokenizer **out) {
    LQ_RETURN_IF(!path || !out, LQ_ERR_INVALID_ARG, "NULL argument");
    *out = NULL;
    lq__mapping m;
    LQ_TRY(lq__map_file(path, &m));
    const lq_status st = open_named(m.data, m.size, vocab_size, path, out);
    lq__unmap_file(&m);
    return st;
}

lq_status lq_tokenizer_open_mem(const void *data, size_t size, int32_t vocab_size, lq_tokenizer **out) {
    return open_named(data, size, vocab_size, "(memory)", out);
}

lq_status lq_tokenizer_open_dir(const char *dir, lq_tokenizer **out) {
    LQ_RETURN_IF(!dir || !out, LQ_ERR_INVALID_ARG, "NULL argument");
    *out            = NULL;
    char *const js  = lq__path_join(dir, "tokenizer.json");
    char *const spm = lq__path_join(dir, "tokenizer.model");
    char *const cfg = lq__path_join(dir, "tokenizer_config.json");
    lq_status   st;
    if (!js || !spm || !cfg) {
        LQ_LOG_ERR("out of memory");
        st = LQ_ERR_NOMEM;
    } else if (lq__file_exists(js)) {
        st = lq_tokenizer_open(js, 0, out);
        if (st == LQ_OK && lq__file_exists(cfg)) lq__hf_apply_config(*out, cfg);
    } else if (lq__file_exists(spm)) {
        st = lq_tokenizer_open(spm, 0, out);
    } else {
        LQ_LOG_ERR("%s: neither tokenizer.json nor tokenizer.model", dir);
        st = LQ_ERR_NOT_FOUND;
    }
    lq_free(js);
    lq_free(spm);
    lq_free(cfg);
    return st;
}

lq_tok_kind lq_tokenizer_kind(const lq_tokenizer *t) { return t->kind; }
int32_t     lq_tokenizer_vocab_size(const lq_tokenizer *t) { return t->n_vocab; }
int32_t     lq_tokenizer_bos(const lq_tokenizer *t) { return t->bos; }
int32_t     lq_tokenizer_eos(const lq_tokenizer *t) { return t->eos; }

const char *lq_tokenizer_piece(const lq_tokenizer *t, int32_t id) {
    return (t && id >= 0 && id < t->n_vocab) ? t->piece[id] : NULL;
}

/* per-kind accessors, defined beside each back end's private tables */
float       lq__spm_score(const lq_tokenizer *t, int32_t id);
int         lq__spm_token_type(const lq_tokenizer *t, int32_t id);
float       lq__l2c_score(const lq_tokenizer *t, int32_t id);
int         lq__l2c_token_type(const lq_tokenizer *t, int32_t id);
int         lq__hf_token_type(const lq_tokenizer *t, int32_t id);
int64_t     lq__hf_merge_count(const lq_tokenizer *t);
const char *lq__hf_merge(const lq_tokenizer *t, int64_t i);

float lq_tokenizer_score(const lq_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_vocab) return 0.0f;
    switch (t->kind) {
    case LQ_TOK_SENTENCEPIECE: return lq__spm_score(t, id);
    case LQ_TOK_LLAMA2C: return lq__l2c_score(t, id);
    case LQ_TOK_HF_BPE: return 0.0f;
    }
    return 0.0f;
}

int lq_tokenizer_token_type(const lq_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_vocab) return 0;
    switch (t->kind) {
    case LQ_TOK_SENTENCEPIECE: return lq__spm_token_type(t, id);
    case LQ_TOK_LLAMA2C: return lq__l2c_token_type(t, id);
    case LQ_TOK_HF_BPE: return lq__hf_token_type(t, id);
    }
    return 0;
}

int64_t lq_tokenizer_merge_count(const lq_tokenizer *t) {
    return t && t->kind == LQ_TOK_HF_BPE ? lq__hf_merge_count(t) : 0;
}

const char *lq_tokenizer_merge(const lq_tokenizer *t, int64_t i) {
    return t && t->kind == LQ_TOK_HF_BPE ? lq__hf_merge(t, i) : NULL;
}

lq_status lq_tokenizer_encode(const lq_tokenizer *t, const char *text, size_t len, bool add_bos, int32_t *ids,
                              size_t cap, size_t *n_ids) {
    LQ_RETURN_IF(!t || !n_ids || (!text && len) || (!ids && cap), LQ_ERR_INVALID_ARG, "NULL argument");
    *n_ids = 0;
    LQ_RETURN_IF(len > LQ__TOK_MAX_TEXT, LQ_ERR_INVALID_ARG, "text of %zu bytes is too long (limit %zu)", len,
                 LQ__TOK_MAX_TEXT);
    lq__ivec  v  = {0};
    lq_status st = LQ_OK;
    if (add_bos && t->bos >= 0) st = lq__ivec_push(&v, t->bos);
    if (st == LQ_OK) {
        switch (t->kind) {
        case LQ_TOK_SENTENCEPIECE:
            st = lq__spm_encode(t, text ? text : "", len, &v);
            break;
        case LQ_TOK_LLAMA2C:
            st = lq__l2c_encode(t, text ? text : "", len, &v);
            break;
        case LQ_TOK_HF_BPE:
            st = lq__hf_encode(t, text ? text : "", len, &v);
            break;
        }
    }
    if (st == LQ_OK) {
        *n_ids = v.n;
        if (v.n > cap) {
            st = LQ_ERR_INVALID_ARG; /* a size query: not logged */
        } else if (v.n) {
            memcpy(ids, v.v, v.n * sizeof *ids);
        }
    }
    lq__ivec_free(&v);
    return st;
}

int lq_tokenizer_decode_piece(const lq_tokenizer *t, int32_t prev, int32_t id, char *buf, size_t cap) {
    if (!t || (!buf && cap) || id < 0 || id >= t->n_vocab || !t->piece[id]) return -1;
    switch (t->kind) {
    case LQ_TOK_SENTENCEPIECE:
        return lq__spm_decode(t, prev, id, buf, cap);
    case LQ_TOK_LLAMA2C:
        return lq__l2c_decode(t, prev, id, buf, cap);
    case LQ_TOK_HF_BPE:
        return lq__hf_decode(t, prev, id, buf, cap);
    }
    return -1;
}
