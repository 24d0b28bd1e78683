/* lq_json.h : strict JSON reader and a small streaming writer (public).
 *
 * Reader: RFC 8259 exactly. UTF-8 is validated (overlongs, surrogates and
 * code points above U+10FFFF rejected, in raw text and in \u escapes: a lone
 * surrogate escape is an error), no trailing commas, no comments, no leading
 * zeros, no NaN/Infinity, one value with only whitespace (SP TAB CR LF)
 * around it. Limits: nesting depth (default 64), and the input size the
 * caller accepts. Duplicate object keys are reported when asked.
 * The whole document lives in one arena owned by lq_json_doc.
 *
 * Numbers keep their source text, so integers up to 2^64-1 are read exactly
 * with lq_json_get_u64() and non-integers / negatives are detectable. */
#ifndef LQ_JSON_H
#define LQ_JSON_H

#include "lq_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    LQ_JSON_NULL = 0,
    LQ_JSON_FALSE,
    LQ_JSON_TRUE,
    LQ_JSON_NUMBER,
    LQ_JSON_STRING,
    LQ_JSON_ARRAY,
    LQ_JSON_OBJECT
} lq_json_type;

typedef struct lq_json lq_json;
struct lq_json {
    lq_json_type type;
    uint32_t     n;        /* ARRAY/OBJECT: number of children                    */
    const char  *str;      /* STRING: decoded, NUL-terminated (may hold \0 inside) */
    size_t       str_len;  /* STRING: decoded length in bytes                      */
    const char  *num;      /* NUMBER: source text, NUL-terminated                  */
    double       num_f64;  /* NUMBER: value as double (strtod, may round)          */
    lq_json     *items;    /* ARRAY/OBJECT: children, in document order           */
    const char  *key;      /* set on children of an OBJECT: decoded key            */
    size_t       key_len;
    size_t       offset;   /* byte offset of the value in the source text          */
};

typedef struct {
    int  max_depth;           /* arrays/objects nested deeper fail; default 64       */
    bool reject_duplicates;   /* duplicate keys in one object fail; default true      */
} lq_json_params;

lq_json_params lq_json_default_params(void);

typedef struct {
    size_t offset;            /* byte offset of the error in the input              */
    char   msg[160];          /* e.g. "invalid UTF-8 in string", "duplicate key 'a'" */
} lq_json_error;

typedef struct lq_json_doc lq_json_doc;

/*! lq_json_parse() : parse `len` bytes of `text` (need not be NUL-terminated).
 *  On failure returns LQ_ERR_FORMAT (or LQ_ERR_NOMEM) and fills `err` if not
 *  NULL; nothing is logged (the caller knows the file name and logs).
 *  `p` may be NULL for defaults. Free the result with lq_json_free(). */
lq_status lq_json_parse(const char *text, size_t len, const lq_json_params *p, lq_json_doc **out,
                        lq_json_error *err);
void           lq_json_free(lq_json_doc *doc); /* accepts NULL */
const lq_json *lq_json_root(const lq_json_doc *doc);

/* lookups; NULL when absent or when `obj` is not an object (last duplicate wins) */
const lq_json *lq_json_get(const lq_json *obj, const char *key);
/* true iff `v` is a NUMBER that is a non-negative integer in [0, 2^64-1]
 * written without fraction or exponent */
bool lq_json_get_u64(const lq_json *v, uint64_t *out);
/* true iff `v` is an integer NUMBER (no fraction/exponent) within int64 */
bool lq_json_get_i64(const lq_json *v, int64_t *out);
/* true iff `v` is a NUMBER */
bool lq_json_get_f64(const lq_json *v, double *out);
/* true iff `v` is TRUE or FALSE */
bool lq_json_get_bool(const lq_json *v, bool *out);
/* NUL-terminated string or NULL if `v` is not a STRING */
const char *lq_json_get_str(const lq_json *v);

/* ==== writer ====
 * Builds compact or indented JSON into a growing buffer. Errors (allocation,
 * misuse such as a value where a key is expected, invalid UTF-8 in a string)
 * are sticky and reported by lq_json_writer_finish(). Strings are escaped per
 * RFC 8259 (", \, control characters; non-ASCII written as UTF-8). */
typedef struct lq_json_writer lq_json_writer;

/* indent = 0: compact ({"a":1,"b":[1,2]}); > 0: that many spaces per level */
lq_json_writer *lq_json_writer_init(int indent);
void lq_json_obj_begin(lq_json_writer *w);
void lq_json_obj_end(lq_json_writer *w);
void lq_json_arr_begin(lq_json_writer *w);
void lq_json_arr_end(lq_json_writer *w);
void lq_json_key(lq_json_writer *w, const char *key);
void lq_json_str(lq_json_writer *w, const char *s);
void lq_json_strn(lq_json_writer *w, const char *s, size_t n);
void lq_json_u64(lq_json_writer *w, uint64_t v);
void lq_json_i64(lq_json_writer *w, int64_t v);
/* shortest repr that round-trips (%.17g trimmed); NaN/Inf written as null */
void lq_json_f64(lq_json_writer *w, double v);
void lq_json_bool(lq_json_writer *w, bool v);
void lq_json_null(lq_json_writer *w);
/* copy a parsed value (any type, recursively) */
void lq_json_value(lq_json_writer *w, const lq_json *v);

/*! lq_json_writer_finish() : on LQ_OK hands back the NUL-terminated text in
 *  *out (freed with lq_free) and its length; frees `w` in every case. Fails
 *  with LQ_ERR_INVALID_ARG if the document is not complete or was misused. */
lq_status lq_json_writer_finish(lq_json_writer *w, char **out, size_t *out_len);
void      lq_json_writer_free(lq_json_writer *w); /* discard; accepts NULL */

#ifdef __cplusplus
}
#endif
#endif /* LQ_JSON_H */
