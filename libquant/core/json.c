/* json.c : strict RFC 8259 JSON reader and a small streaming writer.
 *
 * Reader: one iterative pass, so nesting costs heap bounded by max_depth and
 * never C stack. Values are built on a temporary node stack; when a container
 * closes, its children are copied (contiguous, document order) into an arena
 * of a few geometrically growing blocks owned by the document, together with
 * decoded strings and NUL-terminated number texts. Duplicate keys are found
 * when an object closes by merge-sorting pointers to its members, O(n log n)
 * for the 100k-key headers that safetensors files carry.
 *
 * Writer: a growing buffer and a stack of open containers; the first error is
 * sticky. Doubles print like Python's repr(): the shortest digit string that
 * strtod() reads back to the same double, fixed notation for decimal
 * exponents in [-4, 16), d.ddde+XX otherwise, integral values as "10000.0". */
#include "lq_json.h"
#include "lq_internal.h"

#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ==== shared helpers ==== */

static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static bool is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

typedef enum {
    U8_OK = 0,
    U8_BAD_BYTE,  /* 0x80-0xC1 as a lead byte, 0xF5-0xFF anywhere */
    U8_TRUNCATED, /* a continuation byte is missing               */
    U8_OVERLONG,
    U8_SURROGATE, /* U+D800-DFFF encoded directly                 */
    U8_TOO_BIG    /* above U+10FFFF                               */
} u8_err;

/* Length of the UTF-8 sequence starting at s[0] (s[0] >= 0x80, n >= 1), or 0
 * with *err set. *cp receives the code point when known. */
static size_t utf8_seq(const unsigned char *s, size_t n, u8_err *err, uint32_t *cp)
{
    const unsigned char c = s[0];
    size_t   len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1Fu, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0Fu, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07u, min = 0x10000;
    } else {
        *err = U8_BAD_BYTE;
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if (i >= n || (s[i] & 0xC0) != 0x80) {
            *err = U8_TRUNCATED;
            return 0;
        }
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    *cp = v;
    if (v < min) *err = U8_OVERLONG;
    else if (v >= 0xD800 && v <= 0xDFFF) *err = U8_SURROGATE;
    else if (v > 0x10FFFF) *err = U8_TOO_BIG;
    else return len;
    return 0;
}

static size_t utf8_put(uint32_t cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Scans the JSON number grammar at s[0..n):
 *   -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
 * *end receives the length scanned. Returns NULL when a number was read, or
 * the reason it is malformed (then *end is the offset of the offending byte). */
static const char *scan_number(const unsigned char *s, size_t n, size_t *end)
{
    size_t i = 0;
    if (i < n && s[i] == '-') i++;
    if (i >= n || !is_digit(s[i])) {
        *end = i;
        return "expected a digit after '-'";
    }
    if (s[i] == '0') {
        i++;
        if (i < n && is_digit(s[i])) {
            *end = i - 1;
            return "leading zeros are not allowed in numbers";
        }
    } else {
        while (i < n && is_digit(s[i])) i++;
    }
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || !is_digit(s[i])) {
            *end = i;
            return "expected a digit after the decimal point";
        }
        while (i < n && is_digit(s[i])) i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= n || !is_digit(s[i])) {
            *end = i;
            return "expected a digit in the exponent";
        }
        while (i < n && is_digit(s[i])) i++;
    }
    *end = i;
    return NULL;
}

/* strtod() honours LC_NUMERIC; JSON always uses '.'. `txt` is NUL-terminated.
 * `point` is the locale's decimal point ("." in the C locale). */
static lq_status json_strtod(const char *txt, size_t n, const char *point, double *out)
{
    const char *dot = memchr(txt, '.', n);
    if (dot == NULL || (point[0] == '.' && point[1] == '\0')) {
        *out = strtod(txt, NULL);
        return LQ_OK;
    }
    const size_t plen = strlen(point);
    char         small[128];
    char        *buf  = small;
    const size_t need = n + plen + 1;
    if (need > sizeof small) {
        buf = lq_malloc(need);
        if (buf == NULL) return LQ_ERR_NOMEM;
    }
    const size_t head = (size_t)(dot - txt);
    memcpy(buf, txt, head);
    memcpy(buf + head, point, plen);
    memcpy(buf + head + plen, dot + 1, n - head); /* includes the NUL */
    *out = strtod(buf, NULL);
    if (buf != small) lq_free(buf);
    return LQ_OK;
}

/* ==== arena ==== */

/* Blocks are chained newest first; the document struct itself lives in the
 * first block, so freeing the chain frees everything. */
typedef struct block {
    struct block *next;
    size_t        size; /* usable bytes after the header */
    size_t        used;
} block;

#define BLOCK_HDR      ((sizeof(block) + 15) & ~(size_t)15)
#define BLOCK_MAX_STEP ((size_t)64 << 20)

typedef struct {
    block *head;
    size_t next_size; /* size of the next regular block */
} arena;

static void arena_free(arena *a)
{
    block *b = a->head;
    while (b != NULL) {
        block *const next = b->next;
        lq_free(b);
        b = next;
    }
    a->head = NULL;
}

static block *block_new(size_t size)
{
    size_t total;
    if (!lq__add_size(BLOCK_HDR, size, &total)) return NULL;
    block *const b = lq_malloc(total);
    if (b == NULL) return NULL;
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

/* `size` bytes aligned to 16; NULL when out of memory */
static void *arena_alloc(arena *a, size_t size)
{
    block *b = a->head;
    if (b != NULL) {
        const size_t off = (b->used + 15) & ~(size_t)15;
        if (off <= b->size && size <= b->size - off) {
            b->used = off + size;
            return (char *)b + BLOCK_HDR + off;
        }
    }
    if (size > a->next_size / 2 && b != NULL) {
        /* a big request gets a block of its own, behind the current one */
        block *const d = block_new(size);
        if (d == NULL) return NULL;
        d->used = size;
        d->next = b->next;
        b->next = d;
        return (char *)d + BLOCK_HDR;
    }
    const size_t bsz = LQ_MAX(a->next_size, size);
    block *const nb  = block_new(bsz);
    if (nb == NULL) return NULL;
    nb->next     = b;
    a->head      = nb;
    a->next_size = LQ_MIN(a->next_size * 2, BLOCK_MAX_STEP);
    nb->used     = size;
    return (char *)nb + BLOCK_HDR;
}

/* ==== reader ==== */

struct lq_json_doc {
    lq_json root;
    arena   mem;
};

lq_json_params lq_json_default_params(void)
{
    lq_json_params p;
    p.max_depth         = 64;
    p.reject_duplicates = true;
    return p;
}

typedef struct {
    size_t      base;    /* index of its first child in the node stack     */
    size_t      offset;  /* of its '[' or '{'                               */
    const char *key;     /* object: key of the member being parsed          */
    size_t      key_len;
    size_t      key_off;
    bool        is_obj;
} frame;

typedef struct {
    const unsigned char *s;
    size_t               len;
    size_t               pos;
    lq_json_params       p;
    const char          *point;   /* the locale's decimal point, for strtod */
    lq_json_error       *err;
    arena                mem;
    /* finished children of every open container, innermost last */
    lq_json             *nodes;
    size_t              *key_offs; /* parallel to nodes: offset of the member's key */
    size_t               n_nodes, cap_nodes;
    frame               *frames;
    size_t               n_frames, cap_frames;
    const lq_json      **sort;     /* duplicate check scratch, 2 * n pointers */
    size_t               cap_sort;
} parser;

static lq_status fail(parser *P, size_t offset, const char *fmt, ...) LQ_PRINTF(3, 4);

static lq_status fail(parser *P, size_t offset, const char *fmt, ...)
{
    if (P->err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        const int n = vsnprintf(P->err->msg, sizeof P->err->msg, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < sizeof P->err->msg)
            snprintf(P->err->msg + n, sizeof P->err->msg - (size_t)n, " at offset %zu", offset);
        P->err->offset = offset;
    }
    return LQ_ERR_FORMAT;
}

static lq_status fail_nomem(parser *P)
{
    if (P->err != NULL) {
        P->err->offset = P->pos;
        snprintf(P->err->msg, sizeof P->err->msg, "out of memory at offset %zu", P->pos);
    }
    return LQ_ERR_NOMEM;
}

/* "'x'" for printable ASCII, "byte 0xNN" otherwise */
static const char *describe(unsigned char c, char buf[16])
{
    if (c >= 0x20 && c < 0x7F) snprintf(buf, 16, "'%c'", c);
    else snprintf(buf, 16, "byte 0x%02x", c);
    return buf;
}

/* A key for an error message: quoted, escaped, cut at about 64 bytes on a
 * UTF-8 boundary. */
static void quote_key(const char *k, size_t n, char *out, size_t cap)
{
    LQ_ASSERT(cap >= 80);
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < n;) {
        if (o > 66) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        const unsigned char c = (unsigned char)k[i];
        if (c >= 0x80) {
            u8_err   e;
            uint32_t cp;
            const size_t l = utf8_seq((const unsigned char *)k + i, n - i, &e, &cp);
            LQ_ASSERT(l > 0); /* keys were validated */
            memcpy(out + o, k + i, l);
            o += l, i += l;
        } else if (c < 0x20 || c == '"' || c == '\\' || c == 0x7F) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
            i++;
        } else {
            out[o++] = (char)c;
            i++;
        }
    }
    out[o++] = '"';
    out[o]   = '\0';
}

static void skip_ws(parser *P)
{
    while (P->pos < P->len && is_ws(P->s[P->pos])) P->pos++;
}

/* Grows an lq_malloc'ed array to hold at least `need` elements. */
static bool grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return true;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) {
        if (!lq__mul_size(ncap, 2, &ncap)) return false;
    }
    size_t bytes;
    if (!lq__mul_size(ncap, elem, &bytes)) return false;
    void *const n = lq_malloc(bytes);
    if (n == NULL) return false;
    if (*cap) memcpy(n, *arr, *cap * elem);
    lq_free(*arr);
    *arr = n;
    *cap = ncap;
    return true;
}

static lq_status push_node(parser *P, const lq_json *v, size_t key_off)
{
    if (P->n_nodes == P->cap_nodes) {
        size_t cap_k = P->cap_nodes;
        void  *nodes = P->nodes, *keys = P->key_offs;
        if (!grow(&nodes, &P->cap_nodes, P->n_nodes + 1, sizeof(lq_json))) return fail_nomem(P);
        P->nodes = nodes;
        if (!grow(&keys, &cap_k, P->cap_nodes, sizeof(size_t))) return fail_nomem(P);
        P->key_offs = keys;
        LQ_ASSERT(cap_k >= P->cap_nodes);
    }
    P->nodes[P->n_nodes]    = *v;
    P->key_offs[P->n_nodes] = key_off;
    P->n_nodes++;
    return LQ_OK;
}

/* Decodes the string whose opening quote is at P->pos into the arena. */
static lq_status parse_string(parser *P, const char **out, size_t *out_len)
{
    const unsigned char *const s  = P->s;
    const size_t               at = P->pos;
    LQ_ASSERT(s[at] == '"');
    size_t end = at + 1;
    while (end < P->len && s[end] != '"') end += (s[end] == '\\') ? 2 : 1;
    if (end >= P->len) return fail(P, at, "unterminated string");

    /* decoded text is never longer than the raw text */
    char *const buf = arena_alloc(&P->mem, end - at);
    if (buf == NULL) return fail_nomem(P);
    size_t o = 0;
    char   cbuf[16];
    for (size_t i = at + 1; i < end;) {
        const unsigned char c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '\\') {
            buf[o++] = (char)c;
            i++;
        } else if (c < 0x20) {
            return fail(P, i, "control character 0x%02x in string must be escaped", c);
        } else if (c >= 0x80) {
            u8_err       e  = U8_OK;
            uint32_t     cp = 0;
            const size_t l  = utf8_seq(s + i, end - i, &e, &cp);
            switch (e) {
            case U8_OK: break;
            case U8_BAD_BYTE: return fail(P, i, "invalid UTF-8 byte 0x%02x in string", c);
            case U8_TRUNCATED: return fail(P, i, "truncated UTF-8 sequence in string");
            case U8_OVERLONG: return fail(P, i, "overlong UTF-8 sequence in string");
            case U8_SURROGATE: return fail(P, i, "UTF-8 encoded surrogate U+%04" PRIX32 " in string", cp);
            case U8_TOO_BIG: return fail(P, i, "UTF-8 sequence above U+10FFFF in string");
            }
            memcpy(buf + o, s + i, l);
            o += l, i += l;
        } else { /* backslash; the scan above guarantees i + 1 < end */
            const unsigned char e = s[i + 1];
            switch (e) {
            case '"': buf[o++] = '"'; break;
            case '\\': buf[o++] = '\\'; break;
            case '/': buf[o++] = '/'; break;
            case 'b': buf[o++] = '\b'; break;
            case 'f': buf[o++] = '\f'; break;
            case 'n': buf[o++] = '\n'; break;
            case 'r': buf[o++] = '\r'; break;
            case 't': buf[o++] = '\t'; break;
            case 'u': break;
            default: return fail(P, i, "invalid escape '\\' followed by %s in string", describe(e, cbuf));
            }
            if (e != 'u') {
                i += 2;
                continue;
            }
            uint32_t units[2];
            int      n_units = 0;
            size_t   j       = i;
            for (;;) {
                uint32_t u = 0;
                for (size_t k = 2; k < 6; k++) {
                    const unsigned char h = j + k < end ? s[j + k] : 0;
                    uint32_t            d;
                    if (h >= '0' && h <= '9') d = h - '0';
                    else if (h >= 'a' && h <= 'f') d = h - 'a' + 10u;
                    else if (h >= 'A' && h <= 'F') d = h - 'A' + 10u;
                    else return fail(P, j, "\\u escape needs 4 hex digits");
                    u = u << 4 | d;
                }
                units[n_units++] = u;
                j += 6;
                if (n_units == 2 || u < 0xD800 || u > 0xDBFF) break;
                /* a high surrogate must be followed by an escaped low one */
                if (j + 1 >= end || s[j] != '\\' || s[j + 1] != 'u')
                    return fail(P, i, "lone surrogate \\u%04" PRIx32 " in string", u);
            }
            uint32_t cp = units[0];
            if (n_units == 2) {
                if (units[1] < 0xDC00 || units[1] > 0xDFFF)
                    return fail(P, i, "lone surrogate \\u%04" PRIx32 " in string", units[0]);
                cp = 0x10000 + ((units[0] - 0xD800) << 10) + (units[1] - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return fail(P, i, "lone surrogate \\u%04" PRIx32 " in string", cp);
            }
            o += utf8_put(cp, buf + o);
            i = j;
        }
    }
    buf[o]   = '\0';
    *out     = buf;
    *out_len = o;
    P->pos   = end + 1;
    return LQ_OK;
}

/* ws "key" ws ':' ; stores the key in the innermost (object) frame */
static lq_status parse_member_key(parser *P, bool after_comma)
{
    char cbuf[16];
    skip_ws(P);
    if (P->pos >= P->len) return fail(P, P->pos, "unexpected end of input, expected an object key");
    if (P->s[P->pos] != '"') {
        if (after_comma && P->s[P->pos] == '}') return fail(P, P->pos, "trailing comma in object");
        return fail(P, P->pos, "expected a string key, got %s", describe(P->s[P->pos], cbuf));
    }
    frame *const f = &P->frames[P->n_frames - 1];
    f->key_off     = P->pos;
    LQ_TRY(parse_string(P, &f->key, &f->key_len));
    skip_ws(P);
    if (P->pos >= P->len) return fail(P, P->pos, "unexpected end of input, expected ':'");
    if (P->s[P->pos] != ':')
        return fail(P, P->pos, "expected ':' after object key, got %s", describe(P->s[P->pos], cbuf));
    P->pos++;
    return LQ_OK;
}

static lq_status parse_scalar(parser *P, lq_json *v)
{
    const unsigned char *const s = P->s + P->pos;
    const size_t               n = P->len - P->pos;
    char                       cbuf[16];
    static const struct {
        const char  *text;
        size_t       len;
        lq_json_type type;
    } lits[] = {{"true", 4, LQ_JSON_TRUE}, {"false", 5, LQ_JSON_FALSE}, {"null", 4, LQ_JSON_NULL}};

    switch (s[0]) {
    case '"':
        v->type = LQ_JSON_STRING;
        return parse_string(P, &v->str, &v->str_len);
    case 't':
    case 'f':
    case 'n':
        for (size_t k = 0; k < 3; k++) {
            if (s[0] != (unsigned char)lits[k].text[0]) continue;
            if (n < lits[k].len || memcmp(s, lits[k].text, lits[k].len) != 0)
                return fail(P, P->pos, "invalid literal, expected '%s'", lits[k].text);
            v->type = lits[k].type;
            P->pos += lits[k].len;
            return LQ_OK;
        }
        break;
    default:
        break;
    }
    if (s[0] != '-' && !is_digit(s[0])) return fail(P, P->pos, "expected a value, got %s", describe(s[0], cbuf));
    size_t            end;
    const char *const why = scan_number(s, n, &end);
    if (why != NULL) return fail(P, P->pos + end, "%s", why);
    char *const txt = arena_alloc(&P->mem, end + 1);
    if (txt == NULL) return fail_nomem(P);
    memcpy(txt, s, end);
    txt[end] = '\0';
    v->type  = LQ_JSON_NUMBER;
    v->num   = txt;
    if (json_strtod(txt, end, P->point, &v->num_f64) != LQ_OK) return fail_nomem(P);
    P->pos += end;
    return LQ_OK;
}

static bool key_less(const lq_json *a, const lq_json *b)
{
    const size_t n = LQ_MIN(a->key_len, b->key_len);
    const int    c = n ? memcmp(a->key, b->key, n) : 0;
    if (c != 0) return c < 0;
    if (a->key_len != b->key_len) return a->key_len < b->key_len;
    return a < b; /* equal keys stay in document order */
}

static bool key_eq(const lq_json *a, const lq_json *b)
{
    return a->key_len == b->key_len && (a->key_len == 0 || memcmp(a->key, b->key, a->key_len) == 0);
}

/* Members items[0..n) of one object; reports the duplicate whose second
 * occurrence comes first in the document. */
static lq_status check_duplicates(parser *P, const lq_json *items, const size_t *key_offs, size_t n)
{
    size_t dup = SIZE_MAX;
    if (n <= 16) {
        for (size_t j = 1; j < n && dup == SIZE_MAX; j++)
            for (size_t i = 0; i < j; i++)
                if (key_eq(&items[i], &items[j])) {
                    dup = j;
                    break;
                }
    } else {
        /* bottom-up merge sort of pointers: O(n log n) whatever the keys */
        size_t need;
        if (!lq__mul_size(n, 2, &need)) return fail_nomem(P);
        void *sv = (void *)P->sort;
        if (!grow(&sv, &P->cap_sort, need, sizeof(const lq_json *))) return fail_nomem(P);
        P->sort                = sv;
        const lq_json **src    = P->sort;
        const lq_json **dst    = P->sort + n;
        for (size_t i = 0; i < n; i++) src[i] = &items[i];
        for (size_t width = 1; width < n; width *= 2) {
            for (size_t lo = 0; lo < n; lo += 2 * width) {
                const size_t mid = LQ_MIN(lo + width, n), hi = LQ_MIN(lo + 2 * width, n);
                size_t       a = lo, b = mid, o = lo;
                while (a < mid && b < hi) dst[o++] = key_less(src[b], src[a]) ? src[b++] : src[a++];
                while (a < mid) dst[o++] = src[a++];
                while (b < hi) dst[o++] = src[b++];
            }
            const lq_json **const t = src;
            src = dst, dst = t;
        }
        for (size_t i = 1; i < n; i++)
            if (key_eq(src[i - 1], src[i])) {
                const size_t j = (size_t)(src[i] - items);
                if (j < dup) dup = j;
            }
    }
    if (dup == SIZE_MAX) return LQ_OK;
    char q[96];
    quote_key(items[dup].key, items[dup].key_len, q, sizeof q);
    return fail(P, key_offs[dup], "duplicate key %s", q);
}

/* Closes the innermost container: its children move from the node stack to
 * the arena and *v becomes the container. */
static lq_status close_container(parser *P, lq_json *v)
{
    const frame *const f = &P->frames[P->n_frames - 1];
    const size_t       n = P->n_nodes - f->base;
    if (n > UINT32_MAX) return fail(P, f->offset, "more than %" PRIu32 " elements in one container", UINT32_MAX);
    lq_json *items = NULL;
    if (n > 0) {
        items = arena_alloc(&P->mem, n * sizeof(lq_json));
        if (items == NULL) return fail_nomem(P);
        memcpy(items, P->nodes + f->base, n * sizeof(lq_json));
        if (f->is_obj && P->p.reject_duplicates && n > 1)
            LQ_TRY(check_duplicates(P, items, P->key_offs + f->base, n));
    }
    memset(v, 0, sizeof *v);
    v->type   = f->is_obj ? LQ_JSON_OBJECT : LQ_JSON_ARRAY;
    v->n      = (uint32_t)n;
    v->items  = items;
    v->offset = f->offset;
    P->n_nodes = f->base;
    P->n_frames--;
    return LQ_OK;
}

static lq_status parse_doc(parser *P, lq_json *root)
{
    char cbuf[16];
    if (P->len >= 3 && memcmp(P->s, "\xEF\xBB\xBF", 3) == 0) return fail(P, 0, "UTF-8 byte order mark is not allowed");
    for (;;) {
        /* a value is expected here */
        skip_ws(P);
        if (P->pos >= P->len) return fail(P, P->pos, "unexpected end of input, expected a value");
        const unsigned char c = P->s[P->pos];
        lq_json             v;
        memset(&v, 0, sizeof v);
        v.offset = P->pos;
        if (c == '[' || c == '{') {
            if (P->n_frames >= (size_t)P->p.max_depth)
                return fail(P, P->pos, "nesting deeper than %d", P->p.max_depth);
            void *fv = P->frames;
            if (!grow(&fv, &P->cap_frames, P->n_frames + 1, sizeof(frame))) return fail_nomem(P);
            P->frames       = fv;
            frame *const f  = &P->frames[P->n_frames++];
            memset(f, 0, sizeof *f);
            f->base   = P->n_nodes;
            f->offset = P->pos;
            f->is_obj = c == '{';
            P->pos++;
            skip_ws(P);
            if (P->pos < P->len && P->s[P->pos] == (f->is_obj ? '}' : ']')) {
                P->pos++;
                LQ_TRY(close_container(P, &v));
            } else {
                if (f->is_obj) LQ_TRY(parse_member_key(P, false));
                continue;
            }
        } else {
            LQ_TRY(parse_scalar(P, &v));
        }

        /* v is complete: attach it, closing every container that ends here */
        for (;;) {
            if (P->n_frames == 0) {
                *root = v;
                skip_ws(P);
                if (P->pos != P->len) return fail(P, P->pos, "trailing characters after the JSON value");
                return LQ_OK;
            }
            const frame *const f = &P->frames[P->n_frames - 1];
            if (f->is_obj) {
                v.key     = f->key;
                v.key_len = f->key_len;
            }
            LQ_TRY(push_node(P, &v, f->key_off));
            skip_ws(P);
            const char *const what = f->is_obj ? "object" : "array";
            if (P->pos >= P->len) return fail(P, P->pos, "unexpected end of input in %s", what);
            const unsigned char d = P->s[P->pos];
            if (d == ',') {
                P->pos++;
                if (f->is_obj) {
                    LQ_TRY(parse_member_key(P, true));
                } else {
                    skip_ws(P);
                    if (P->pos < P->len && P->s[P->pos] == ']') return fail(P, P->pos, "trailing comma in array");
                }
                break;
            }
            if (d == (f->is_obj ? '}' : ']')) {
                P->pos++;
                LQ_TRY(close_container(P, &v));
                continue;
            }
            return fail(P, P->pos, "expected ',' or '%c' in %s, got %s", f->is_obj ? '}' : ']', what,
                        describe(d, cbuf));
        }
    }
}

lq_status lq_json_parse(const char *text, size_t len, const lq_json_params *p, lq_json_doc **out,
                        lq_json_error *err)
{
    if (err != NULL) {
        err->offset = 0;
        err->msg[0] = '\0';
    }
    const lq_json_params params = p != NULL ? *p : lq_json_default_params();
    if (out == NULL || (text == NULL && len > 0) || params.max_depth < 0) {
        if (err != NULL) snprintf(err->msg, sizeof err->msg, "invalid argument");
        return LQ_ERR_INVALID_ARG;
    }
    *out = NULL;

    parser P;
    memset(&P, 0, sizeof P);
    P.s     = (const unsigned char *)text;
    P.len   = len;
    P.p     = params;
    P.err   = err;
    P.point = localeconv()->decimal_point;
    /* a typical document needs a few times its size in nodes */
    P.mem.next_size = LQ_MAX(LQ_MIN(len, (size_t)4 << 20), (size_t)256) * 4;

    lq_status          st;
    lq_json_doc *const doc = arena_alloc(&P.mem, sizeof *doc);
    if (doc == NULL) {
        st = fail_nomem(&P);
    } else if (len == 0) {
        st = fail(&P, 0, "empty input");
    } else {
        st = parse_doc(&P, &doc->root);
    }
    lq_free(P.nodes);
    lq_free(P.key_offs);
    lq_free(P.frames);
    lq_free((void *)P.sort);
    if (st != LQ_OK) {
        arena_free(&P.mem);
        return st;
    }
    doc->mem = P.mem;
    *out     = doc;
    return LQ_OK;
}

void lq_json_free(lq_json_doc *doc)
{
    if (doc == NULL) return;
    arena mem = doc->mem; /* doc lives inside it */
    arena_free(&mem);
}

const lq_json *lq_json_root(const lq_json_doc *doc) { return doc != NULL ? &doc->root : NULL; }

/* A linear scan from the last member, so the last duplicate wins. Objects in
 * config files are small; to visit every member of a large object (a
 * safetensors header), iterate `items` instead of calling this per key. */
const lq_json *lq_json_get(const lq_json *obj, const char *key)
{
    if (obj == NULL || key == NULL || obj->type != LQ_JSON_OBJECT || obj->items == NULL) return NULL;
    const size_t klen = strlen(key);
    for (uint32_t i = obj->n; i > 0; i--) {
        const lq_json *const m = &obj->items[i - 1];
        if (m->key != NULL && m->key_len == klen && memcmp(m->key, key, klen) == 0) return m;
    }
    return NULL;
}

/* magnitude of the decimal integer at s (no sign, no leading zero, nothing after it) */
static bool parse_magnitude(const char *s, uint64_t *out)
{
    if (!is_digit((unsigned char)s[0]) || (s[0] == '0' && s[1] != '\0')) return false;
    uint64_t x = 0;
    for (; *s != '\0'; s++) {
        if (!is_digit((unsigned char)*s)) return false;
        if (!lq__mul_u64(x, 10, &x) || !lq__add_u64(x, (uint64_t)(*s - '0'), &x)) return false;
    }
    *out = x;
    return true;
}

bool lq_json_get_u64(const lq_json *v, uint64_t *out)
{
    if (v == NULL || v->type != LQ_JSON_NUMBER || v->num == NULL || v->num[0] == '-') return false;
    uint64_t x;
    if (!parse_magnitude(v->num, &x)) return false;
    if (out != NULL) *out = x;
    return true;
}

bool lq_json_get_i64(const lq_json *v, int64_t *out)
{
    if (v == NULL || v->type != LQ_JSON_NUMBER || v->num == NULL) return false;
    const bool neg = v->num[0] == '-';
    uint64_t   m;
    if (!parse_magnitude(v->num + neg, &m)) return false;
    int64_t x;
    if (neg) {
        if (m > (uint64_t)INT64_MAX + 1) return false;
        x = m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m;
    } else {
        if (m > (uint64_t)INT64_MAX) return false;
        x = (int64_t)m;
    }
    if (out != NULL) *out = x;
    return true;
}

bool lq_json_get_f64(const lq_json *v, double *out)
{
    if (v == NULL || v->type != LQ_JSON_NUMBER) return false;
    if (out != NULL) *out = v->num_f64;
    return true;
}

bool lq_json_get_bool(const lq_json *v, bool *out)
{
    if (v == NULL || (v->type != LQ_JSON_TRUE && v->type != LQ_JSON_FALSE)) return false;
    if (out != NULL) *out = v->type == LQ_JSON_TRUE;
    return true;
}

const char *lq_json_get_str(const lq_json *v)
{
    return v != NULL && v->type == LQ_JSON_STRING ? v->str : NULL;
}

/* ==== writer ==== */

enum { WF_OBJ = 1, WF_NONEMPTY = 2 };

/* A NULL writer (lq_json_writer_init() out of memory) is accepted by every
 * call as a no-op, and lq_json_writer_finish(NULL, ...) returns LQ_ERR_NOMEM,
 * so callers check once at the end. */
struct lq_json_writer {
    char     *buf;
    size_t    len, cap;
    uint8_t  *stack; /* WF_* flags of each open container, innermost last */
    size_t    depth, cap_stack;
    int       indent;
    bool      key_pending; /* the innermost object has a key awaiting its value */
    bool      root_done;   /* the top-level value has been started */
    lq_status st;
};

static void werr(lq_json_writer *w, lq_status st, const char *func, const char *fmt, ...) LQ_PRINTF(4, 5);

static void werr(lq_json_writer *w, lq_status st, const char *func, const char *fmt, ...)
{
    if (w->st != LQ_OK) return;
    w->st = st;
    char    msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lq__log(LQ_LOG_ERROR, func, "%s", msg);
}

static bool reserve(lq_json_writer *w, size_t n)
{
    size_t need;
    if (!lq__add_size(w->len, n, &need) || !lq__add_size(need, 1, &need)) {
        werr(w, LQ_ERR_NOMEM, "lq_json_writer", "JSON text too large");
        return false;
    }
    if (need <= w->cap) return true;
    size_t ncap = LQ_MAX(w->cap, (size_t)256);
    while (ncap < need) {
        if (!lq__mul_size(ncap, 2, &ncap)) {
            ncap = need;
            break;
        }
    }
    char *const nb = lq_malloc(ncap);
    if (nb == NULL) {
        werr(w, LQ_ERR_NOMEM, "lq_json_writer", "out of memory growing the JSON buffer to %zu bytes", ncap);
        return false;
    }
    if (w->len) memcpy(nb, w->buf, w->len);
    lq_free(w->buf);
    w->buf = nb;
    w->cap = ncap;
    return true;
}

static void put(lq_json_writer *w, const char *s, size_t n)
{
    if (w->st != LQ_OK || !reserve(w, n)) return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void put_newline(lq_json_writer *w, size_t depth)
{
    if (w->indent <= 0 || w->st != LQ_OK) return;
    size_t n;
    if (!lq__mul_size(depth, (size_t)w->indent, &n) || !lq__add_size(n, 1, &n) || !reserve(w, n)) {
        werr(w, LQ_ERR_NOMEM, "lq_json_writer", "JSON text too large");
        return;
    }
    w->buf[w->len] = '\n';
    memset(w->buf + w->len + 1, ' ', n - 1);
    w->len += n;
}

/* RFC 8259 escaping; non-ASCII is validated and copied as UTF-8 */
static void put_string(lq_json_writer *w, const char *func, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *const u = (const unsigned char *)s;
    put(w, "\"", 1);
    size_t run = 0; /* start of the pending run of bytes copied verbatim */
    for (size_t i = 0; i < n && w->st == LQ_OK;) {
        const unsigned char c = u[i];
        if (c >= 0x80) {
            u8_err       e;
            uint32_t     cp;
            const size_t l = utf8_seq(u + i, n - i, &e, &cp);
            if (l == 0) {
                werr(w, LQ_ERR_INVALID_ARG, func, "invalid UTF-8 at byte %zu of a string", i);
                return;
            }
            i += l;
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        put(w, s + run, i - run);
        char   esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t el     = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            el     = 6;
            break;
        }
        put(w, esc, el);
        i++;
        run = i;
    }
    put(w, s + run, n - run);
    put(w, "\"", 1);
}

/* Called before every value: checks the grammar and writes the separator. */
static bool begin_value(lq_json_writer *w, const char *func)
{
    if (w->st != LQ_OK) return false;
    if (w->depth == 0) {
        if (w->root_done) {
            werr(w, LQ_ERR_INVALID_ARG, func, "a second top-level value");
            return false;
        }
        w->root_done = true;
        return true;
    }
    uint8_t *const top = &w->stack[w->depth - 1];
    if (*top & WF_OBJ) {
        if (!w->key_pending) {
            werr(w, LQ_ERR_INVALID_ARG, func, "a value where an object key is expected");
            return false;
        }
        w->key_pending = false;
        return true;
    }
    if (*top & WF_NONEMPTY) put(w, ",", 1);
    *top |= WF_NONEMPTY;
    put_newline(w, w->depth);
    return w->st == LQ_OK;
}

static void key_n(lq_json_writer *w, const char *func, const char *key, size_t n)
{
    if (w == NULL || w->st != LQ_OK) return;
    if (key == NULL && n > 0) {
        werr(w, LQ_ERR_INVALID_ARG, func, "NULL key");
        return;
    }
    if (w->depth == 0 || !(w->stack[w->depth - 1] & WF_OBJ)) {
        werr(w, LQ_ERR_INVALID_ARG, func, "a key outside an object");
        return;
    }
    if (w->key_pending) {
        werr(w, LQ_ERR_INVALID_ARG, func, "a key where a value is expected");
        return;
    }
    uint8_t *const top = &w->stack[w->depth - 1];
    if (*top & WF_NONEMPTY) put(w, ",", 1);
    *top |= WF_NONEMPTY;
    put_newline(w, w->depth);
    put_string(w, func, key != NULL ? key : "", n);
    if (w->indent > 0) put(w, ": ", 2);
    else put(w, ":", 1);
    w->key_pending = w->st == LQ_OK;
}

static void open_container(lq_json_writer *w, const char *func, bool is_obj)
{
    if (w == NULL || !begin_value(w, func)) return;
    void *sv = w->stack;
    if (!grow(&sv, &w->cap_stack, w->depth + 1, 1)) {
        werr(w, LQ_ERR_NOMEM, func, "out of memory at nesting depth %zu", w->depth + 1);
        return;
    }
    w->stack             = sv;
    w->stack[w->depth++] = is_obj ? WF_OBJ : 0;
    put(w, is_obj ? "{" : "[", 1);
}

static void close_container_w(lq_json_writer *w, const char *func, bool is_obj)
{
    if (w == NULL || w->st != LQ_OK) return;
    if (w->depth == 0 || ((w->stack[w->depth - 1] & WF_OBJ) != 0) != is_obj) {
        werr(w, LQ_ERR_INVALID_ARG, func, "no open %s to close", is_obj ? "object" : "array");
        return;
    }
    if (w->key_pending) {
        werr(w, LQ_ERR_INVALID_ARG, func, "object closed after a key without a value");
        return;
    }
    const bool nonempty = (w->stack[--w->depth] & WF_NONEMPTY) != 0;
    if (nonempty) put_newline(w, w->depth);
    put(w, is_obj ? "}" : "]", 1);
}

lq_json_writer *lq_json_writer_init(int indent)
{
    lq_json_writer *const w = lq_calloc(1, sizeof *w);
    if (w == NULL) return NULL;
    w->indent = indent > 0 ? indent : 0;
    w->st     = LQ_OK;
    return w;
}

void lq_json_writer_free(lq_json_writer *w)
{
    if (w == NULL) return;
    lq_free(w->buf);
    lq_free(w->stack);
    lq_free(w);
}

void lq_json_obj_begin(lq_json_writer *w) { open_container(w, __func__, true); }
void lq_json_obj_end(lq_json_writer *w) { close_container_w(w, __func__, true); }
void lq_json_arr_begin(lq_json_writer *w) { open_container(w, __func__, false); }
void lq_json_arr_end(lq_json_writer *w) { close_container_w(w, __func__, false); }

void lq_json_key(lq_json_writer *w, const char *key)
{
    key_n(w, __func__, key, key != NULL ? strlen(key) : 1);
}

static void strn(lq_json_writer *w, const char *func, const char *s, size_t n)
{
    if (w == NULL || w->st != LQ_OK) return;
    if (s == NULL && n > 0) {
        werr(w, LQ_ERR_INVALID_ARG, func, "NULL string");
        return;
    }
    if (!begin_value(w, func)) return;
    put_string(w, func, s != NULL ? s : "", n);
}

void lq_json_str(lq_json_writer *w, const char *s) { strn(w, __func__, s, s != NULL ? strlen(s) : 1); }
void lq_json_strn(lq_json_writer *w, const char *s, size_t n) { strn(w, __func__, s, n); }

static void put_raw_value(lq_json_writer *w, const char *func, const char *s, size_t n)
{
    if (w == NULL || !begin_value(w, func)) return;
    put(w, s, n);
}

void lq_json_u64(lq_json_writer *w, uint64_t v)
{
    char      b[24];
    const int n = snprintf(b, sizeof b, "%" PRIu64, v);
    put_raw_value(w, __func__, b, (size_t)n);
}

void lq_json_i64(lq_json_writer *w, int64_t v)
{
    char      b[24];
    const int n = snprintf(b, sizeof b, "%" PRId64, v);
    put_raw_value(w, __func__, b, (size_t)n);
}

void lq_json_bool(lq_json_writer *w, bool v)
{
    put_raw_value(w, __func__, v ? "true" : "false", v ? 4 : 5);
}

void lq_json_null(lq_json_writer *w) { put_raw_value(w, __func__, "null", 4); }

/* Does the decimal digits[0..nd) * 10^(e10 - nd + 1) read back as v? The
 * text has no decimal point, so the locale cannot interfere. */
static bool reads_back(const char *digits, int nd, int e10, double v)
{
    char b[48];
    snprintf(b, sizeof b, "%.*se%d", nd, digits, e10 - nd + 1);
    return strtod(b, NULL) == v;
}

/* Shortest decimal digits d0 d1 ... with v == d0.d1d2... * 10^e10 (v > 0,
 * finite). For each length the correctly rounded candidate is tried, then
 * the one a unit above it: at a power of two the gap below v is half the gap
 * above, and the nearest short string may fall outside while its upper
 * neighbour reads back (Python's repr picks that one too). */
static int shortest_digits(double v, char digits[20], int *e10)
{
    for (int prec = 0; prec <= 16; prec++) {
        char b[48];
        snprintf(b, sizeof b, "%.*e", prec, v);
        int         nd = 0;
        const char *p  = b;
        for (; *p != '\0' && *p != 'e'; p++)
            if (is_digit((unsigned char)*p)) digits[nd++] = *p;
        LQ_ASSERT(*p == 'e' && nd == prec + 1);
        int e = (int)strtol(p + 1, NULL, 10);
        if (reads_back(digits, nd, e, v) || prec == 16) {
            *e10 = e;
            return nd;
        }
        char up[20];
        memcpy(up, digits, (size_t)nd);
        int k = nd - 1;
        while (k >= 0 && up[k] == '9') up[k--] = '0';
        if (k < 0) { /* 99..9 + 1 = 100..0: one more decimal place */
            up[0] = '1';
            e++;
        } else {
            up[k]++;
        }
        if (reads_back(up, nd, e, v)) {
            memcpy(digits, up, (size_t)nd);
            while (nd > 1 && digits[nd - 1] == '0') nd--;
            *e10 = e;
            return nd;
        }
    }
    LQ_ASSERT(0);
    return 0;
}

/* Python repr() of a finite double into out (at least 32 bytes); returns the length. */
static size_t format_f64(double v, char *out)
{
    size_t o = 0;
    if (signbit(v)) {
        out[o++] = '-';
        v        = -v;
    }
    if (v == 0) {
        memcpy(out + o, "0.0", 4);
        return o + 3;
    }
    char      d[20];
    int       e;
    const int nd = shortest_digits(v, d, &e);
    if (e >= -4 && e < 16) {
        if (e >= 0) {
            for (int i = 0; i <= e; i++) out[o++] = i < nd ? d[i] : '0';
            out[o++] = '.';
            if (nd > e + 1) {
                memcpy(out + o, d + e + 1, (size_t)(nd - e - 1));
                o += (size_t)(nd - e - 1);
            } else {
                out[o++] = '0';
            }
        } else {
            out[o++] = '0';
            out[o++] = '.';
            for (int i = 0; i < -e - 1; i++) out[o++] = '0';
            memcpy(out + o, d, (size_t)nd);
            o += (size_t)nd;
        }
    } else {
        out[o++] = d[0];
        if (nd > 1) {
            out[o++] = '.';
            memcpy(out + o, d + 1, (size_t)(nd - 1));
            o += (size_t)(nd - 1);
        }
        o += (size_t)snprintf(out + o, 8, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
    out[o] = '\0';
    return o;
}

void lq_json_f64(lq_json_writer *w, double v)
{
    if (!isfinite(v)) {
        put_raw_value(w, __func__, "null", 4);
        return;
    }
    char         b[40];
    const size_t n = format_f64(v, b);
    put_raw_value(w, __func__, b, n);
}

typedef struct {
    const lq_json *c;
    uint32_t       i; /* next child */
} vframe;

static bool push_vframe(vframe **stack, size_t *depth, size_t *cap, const lq_json *c)
{
    void *sv = *stack;
    if (!grow(&sv, cap, *depth + 1, sizeof(vframe))) return false;
    *stack              = sv;
    (*stack)[(*depth)++] = (vframe){c, 0};
    return true;
}

/* Iterative, so a deep document costs heap, not C stack. `v` must be a tree
 * (a cycle in a hand-built value runs until memory is exhausted). */
void lq_json_value(lq_json_writer *w, const lq_json *v)
{
    static const char *const func = "lq_json_value";
    if (w == NULL || w->st != LQ_OK) return;
    if (v == NULL) {
        werr(w, LQ_ERR_INVALID_ARG, func, "NULL value");
        return;
    }
    vframe *stack = NULL;
    size_t  depth = 0, cap = 0;
    const lq_json *cur = v;
    while (w->st == LQ_OK) {
        if (cur != NULL) {
            size_t end;
            switch (cur->type) {
            case LQ_JSON_NULL: put_raw_value(w, func, "null", 4); break;
            case LQ_JSON_FALSE: put_raw_value(w, func, "false", 5); break;
            case LQ_JSON_TRUE: put_raw_value(w, func, "true", 4); break;
            case LQ_JSON_NUMBER:
                /* the source text keeps integers beyond 2^53 exact */
                if (cur->num == NULL) {
                    lq_json_f64(w, cur->num_f64);
                } else if (scan_number((const unsigned char *)cur->num, strlen(cur->num), &end) == NULL &&
                           cur->num[end] == '\0') {
                    put_raw_value(w, func, cur->num, end);
                } else {
                    werr(w, LQ_ERR_INVALID_ARG, func, "NUMBER text \"%.32s\" is not a JSON number", cur->num);
                }
                break;
            case LQ_JSON_STRING: strn(w, func, cur->str, cur->str_len); break;
            case LQ_JSON_ARRAY:
            case LQ_JSON_OBJECT:
                if (cur->n > 0 && cur->items == NULL) {
                    werr(w, LQ_ERR_INVALID_ARG, func, "container with %" PRIu32 " children and no items", cur->n);
                    break;
                }
                if (!push_vframe(&stack, &depth, &cap, cur)) {
                    werr(w, LQ_ERR_NOMEM, func, "out of memory at depth %zu", depth + 1);
                    break;
                }
                open_container(w, func, cur->type == LQ_JSON_OBJECT);
                break;
            default: werr(w, LQ_ERR_INVALID_ARG, func, "invalid value type %d", (int)cur->type); break;
            }
            cur = NULL;
        }
        if (w->st != LQ_OK || depth == 0) break;
        vframe *const top = &stack[depth - 1];
        if (top->i < top->c->n) {
            cur = &top->c->items[top->i++];
            if (top->c->type == LQ_JSON_OBJECT) {
                if (cur->key == NULL) {
                    werr(w, LQ_ERR_INVALID_ARG, func, "object member without a key");
                    break;
                }
                key_n(w, func, cur->key, cur->key_len);
            }
        } else {
            close_container_w(w, func, top->c->type == LQ_JSON_OBJECT);
            depth--;
        }
    }
    lq_free(stack);
}

lq_status lq_json_writer_finish(lq_json_writer *w, char **out, size_t *out_len)
{
    if (out != NULL) *out = NULL;
    if (out_len != NULL) *out_len = 0;
    if (w == NULL) return LQ_ERR_NOMEM; /* lq_json_writer_init() failed */
    if (out == NULL) werr(w, LQ_ERR_INVALID_ARG, __func__, "NULL out");
    if (w->st == LQ_OK && !w->root_done) werr(w, LQ_ERR_INVALID_ARG, __func__, "no value was written");
    if (w->st == LQ_OK && w->depth > 0)
        werr(w, LQ_ERR_INVALID_ARG, __func__, "%zu container(s) still open", w->depth);
    if (w->st == LQ_OK) reserve(w, 0);
    const lq_status st = w->st;
    if (st == LQ_OK) {
        w->buf[w->len] = '\0';
        *out           = w->buf;
        if (out_len != NULL) *out_len = w->len;
        w->buf = NULL;
    }
    lq_json_writer_free(w);
    return st;
}

lq_status lq__json_write_atomic(lq_json_writer *w, const char *path) {
    char  *text = NULL;
    size_t len  = 0;
    LQ_RETURN_IF(lq_json_writer_finish(w, &text, &len) != LQ_OK, LQ_ERR_NOMEM, "%s: cannot build the JSON text", path);
    lq__afile *f  = NULL;
    lq_status  st = lq__afile_open(path, &f);
    if (st == LQ_OK) st = lq__afile_write(f, text, len);
    if (st == LQ_OK) st = lq__afile_write(f, "\n", 1);
    lq_free(text);
    if (st != LQ_OK) {
        lq__afile_abort(f);
        return st;
    }
    return lq__afile_commit(f);
}
