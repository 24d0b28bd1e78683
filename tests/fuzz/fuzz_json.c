/* fuzz_json.c : libFuzzer target for the strict JSON reader and the writer.
 *
 * Parses the input twice (duplicates rejected, then allowed): whatever the
 * first accepts, the second must accept with the same structure. Every
 * accepted document is written back with lq_json_value() (compact or
 * indented, chosen from the input length) and re-parsed: the copy must parse,
 * be structurally equal, and write back to the same bytes. Also checks the
 * getters' consistency. Any violation abort()s. Replayed without libFuzzer by
 * fuzz_main.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lq_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                  \
    do {                                                                          \
        if (!(c)) {                                                               \
            fprintf(stderr, "fuzz_json.c:%d: check failed: %s\n", __LINE__, #c);  \
            abort();                                                              \
        }                                                                         \
    } while (0)

/* recursion is bounded by max_depth (64 here) */
static int same(const lq_json *a, const lq_json *b)
{
    if (a->type != b->type || a->n != b->n) return 0;
    switch (a->type) {
    case LQ_JSON_NULL:
    case LQ_JSON_FALSE:
    case LQ_JSON_TRUE: return 1;
    case LQ_JSON_NUMBER: return strcmp(a->num, b->num) == 0;
    case LQ_JSON_STRING:
        return a->str_len == b->str_len && memcmp(a->str, b->str, a->str_len) == 0 && a->str[a->str_len] == '\0';
    case LQ_JSON_ARRAY:
    case LQ_JSON_OBJECT:
        for (uint32_t i = 0; i < a->n; i++) {
            const lq_json *x = &a->items[i], *y = &b->items[i];
            if (a->type == LQ_JSON_OBJECT &&
                (x->key_len != y->key_len || memcmp(x->key, y->key, x->key_len) != 0))
                return 0;
            if (!same(x, y)) return 0;
        }
        return 1;
    }
    return 0;
}

/* getters agree with each other on every node */
static void check_getters(const lq_json *v)
{
    uint64_t u;
    int64_t  i;
    double   f;
    bool     b;
    const bool is_u = lq_json_get_u64(v, &u);
    const bool is_i = lq_json_get_i64(v, &i);
    CHECK(lq_json_get_f64(v, &f) == (v->type == LQ_JSON_NUMBER));
    CHECK(lq_json_get_bool(v, &b) == (v->type == LQ_JSON_TRUE || v->type == LQ_JSON_FALSE));
    CHECK((lq_json_get_str(v) != NULL) == (v->type == LQ_JSON_STRING));
    if (is_u && u <= (uint64_t)INT64_MAX) CHECK(is_i && (uint64_t)i == u);
    if (is_i && i >= 0 && v->num[0] != '-') CHECK(is_u && (uint64_t)i == u); /* "-0" is no u64 */
    if (v->type == LQ_JSON_OBJECT) {
        /* the member lq_json_get() finds carries the key asked for */
        for (uint32_t k = 0; k < v->n && k < 64; k++) {
            const lq_json *m = &v->items[k];
            if (memchr(m->key, '\0', m->key_len) != NULL) continue;
            const lq_json *g = lq_json_get(v, m->key);
            CHECK(g != NULL && g->key_len == m->key_len && g >= m);
        }
    }
    if (v->type == LQ_JSON_ARRAY || v->type == LQ_JSON_OBJECT)
        for (uint32_t k = 0; k < v->n; k++) check_getters(&v->items[k]);
}

static char *write_doc(const lq_json *v, int indent, size_t *len)
{
    lq_json_writer *const w = lq_json_writer_init(indent);
    lq_json_value(w, v);
    char *out = NULL;
    CHECK(lq_json_writer_finish(w, &out, len) == LQ_OK);
    return out;
}

static void round_trip(const lq_json_doc *doc, const lq_json_params *p, int indent)
{
    size_t      n1  = 0, n2 = 0;
    char *const out = write_doc(lq_json_root(doc), indent, &n1);
    CHECK(out != NULL && strlen(out) == n1);
    lq_json_doc  *doc2 = NULL;
    lq_json_error err;
    const lq_status st = lq_json_parse(out, n1, p, &doc2, &err);
    if (st != LQ_OK) fprintf(stderr, "re-parse failed: %s\n", err.msg);
    CHECK(st == LQ_OK);
    CHECK(same(lq_json_root(doc), lq_json_root(doc2)));
    char *const out2 = write_doc(lq_json_root(doc2), indent, &n2);
    CHECK(n1 == n2 && memcmp(out, out2, n1) == 0);
    lq_free(out);
    lq_free(out2);
    lq_json_free(doc2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const int      indent = (int)(size % 3); /* 0, 1 or 2 */
    lq_json_params strict = lq_json_default_params();
    lq_json_params loose  = strict;
    loose.reject_duplicates = false;

    lq_json_doc    *d1 = NULL, *d2 = NULL;
    lq_json_error   e1, e2;
    const lq_status s1 = lq_json_parse((const char *)data, size, &strict, &d1, &e1);
    const lq_status s2 = lq_json_parse((const char *)data, size, &loose, &d2, &e2);
    CHECK(s1 == LQ_OK || s1 == LQ_ERR_FORMAT);
    CHECK(s2 == LQ_OK || s2 == LQ_ERR_FORMAT);
    CHECK((s1 == LQ_OK) == (d1 != NULL));
    if (s1 != LQ_OK) CHECK(e1.msg[0] != '\0' && e1.offset <= size);
    if (s2 != LQ_OK) CHECK(e2.msg[0] != '\0' && e2.offset <= size);
    /* only a duplicate key can make the strict parse fail where the loose one does not */
    if (s1 != LQ_OK && strncmp(e1.msg, "duplicate key", 13) != 0)
        CHECK(s2 != LQ_OK && e1.offset == e2.offset && strcmp(e1.msg, e2.msg) == 0);
    if (s1 == LQ_OK) {
        CHECK(s2 == LQ_OK && same(lq_json_root(d1), lq_json_root(d2)));
        check_getters(lq_json_root(d1));
        round_trip(d1, &strict, indent);
    }
    if (s2 == LQ_OK) {
        check_getters(lq_json_root(d2));
        round_trip(d2, &loose, indent);
    }
    lq_json_free(d1);
    lq_json_free(d2);
    return 0;
}
