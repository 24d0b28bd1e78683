/* test_json.c : the strict JSON reader and the writer (libquant/core/json.c).
 *
 * A JSONTestSuite-style table of must-accept (y_) and must-reject (n_) inputs,
 * each parsed from an exactly sized heap copy so ASan catches any read past
 * `len`; error messages and offsets; nesting limits (100000 levels, no stack
 * overflow); duplicate keys in 100k-key objects; exact u64/i64; the writer's
 * Python-compatible output (indent, escaping, float repr), misuse detection,
 * and every out-of-memory path through a failing allocator. */
#include <CUnit/CUnit.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lq_test.h"

CU_pSuite lq_test_json_suite(void);

/* ---- helpers ---- */

/* parse from an exactly sized heap copy (no NUL after the text) */
static lq_status parse_exact(const char *text, size_t len, const lq_json_params *p, lq_json_doc **doc,
                             lq_json_error *err)
{
    if (err != NULL) memset(err, 0, sizeof *err);
    char *const copy = malloc(len ? len : 1);
    if (copy == NULL) return LQ_ERR_NOMEM;
    if (len) memcpy(copy, text, len);
    const lq_status st = lq_json_parse(copy, len, p, doc, err);
    free(copy);
    return st;
}

static lq_status parse_str(const char *text, lq_json_doc **doc, lq_json_error *err)
{
    return parse_exact(text, strlen(text), NULL, doc, err);
}

static lq_status parse_str_p(const char *text, const lq_json_params *p, lq_json_doc **doc, lq_json_error *err)
{
    return parse_exact(text, strlen(text), p, doc, err);
}

/* structural equality; recursion is fine here, test documents are shallow */
static bool json_equal(const lq_json *a, const lq_json *b)
{
    if (a->type != b->type || a->n != b->n) return false;
    switch (a->type) {
    case LQ_JSON_NULL:
    case LQ_JSON_FALSE:
    case LQ_JSON_TRUE: return true;
    case LQ_JSON_NUMBER: return strcmp(a->num, b->num) == 0;
    case LQ_JSON_STRING: return a->str_len == b->str_len && memcmp(a->str, b->str, a->str_len) == 0;
    case LQ_JSON_ARRAY:
    case LQ_JSON_OBJECT:
        for (uint32_t i = 0; i < a->n; i++) {
            const lq_json *x = &a->items[i], *y = &b->items[i];
            if (a->type == LQ_JSON_OBJECT &&
                (x->key_len != y->key_len || memcmp(x->key, y->key, x->key_len) != 0))
                return false;
            if (!json_equal(x, y)) return false;
        }
        return true;
    }
    return false;
}

/* write `v` with `indent` and hand back the text (NULL on failure) */
static char *write_value(const lq_json *v, int indent, size_t *len)
{
    lq_json_writer *const w = lq_json_writer_init(indent);
    lq_json_value(w, v);
    char  *out = NULL;
    size_t n   = 0;
    if (lq_json_writer_finish(w, &out, &n) != LQ_OK) return NULL;
    if (len) *len = n;
    return out;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* a buffer of `n` nested arrays, closed or not */
static char *nested_arrays(size_t n, bool closed, size_t *len)
{
    char *const s = malloc(2 * n + 1);
    if (s == NULL) return NULL;
    memset(s, '[', n);
    if (closed) memset(s + n, ']', n);
    *len    = closed ? 2 * n : n;
    s[*len] = '\0';
    return s;
}

/* ---- the accept/reject table ---- */

typedef struct {
    const char *name;
    const char *text;
    size_t      len;
    bool        ok;
} json_case;

/* sizeof keeps embedded NUL bytes */
#define Y(name, lit) {name, lit, sizeof(lit) - 1, true}
#define N(name, lit) {name, lit, sizeof(lit) - 1, false}

static const json_case CASES[] = {
    /* structure */
    Y("y_lonely_int", "42"),
    Y("y_lonely_string", "\"asd\""),
    Y("y_lonely_null", "null"),
    Y("y_lonely_true", "true"),
    Y("y_lonely_false", "false"),
    Y("y_empty_array", "[]"),
    Y("y_empty_object", "{}"),
    Y("y_ws_around", " \t\r\n[ ]\n\r\t "),
    Y("y_nested_arrays", "[[[]],[[],[]]]"),
    Y("y_object_basic", "{\"a\":1}"),
    Y("y_object_mixed", "{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\"}}"),
    Y("y_object_empty_key", "{\"\":0}"),
    Y("y_object_ws", "{ \"a\" : 1 , \"b\" : [ 2 , 3 ] }"),
    Y("y_object_key_utf8", "{\"\xc3\xa9\":1}"),
    Y("y_object_key_nul_escape", "{\"a\\u0000b\":1}"),
    Y("y_object_same_key_other_objects", "[{\"a\":1},{\"a\":2}]"),
    Y("y_object_case_keys", "{\"a\":1,\"A\":2,\"ab\":3}"),
    Y("y_array_ws_newlines", "[1 ,\n2\r\n,\t3]"),
    Y("y_string_brackets", "[\"[\",\"{\",\"]\",\"}\",\",\",\":\"]"),
    Y("y_string_comment_text", "\"/* not a comment */\""),
    /* numbers */
    Y("y_number_zero", "0"),
    Y("y_number_neg_zero", "-0"),
    Y("y_number_neg_zero_array", "[-0]"),
    Y("y_number_neg_zero_frac", "-0.0"),
    Y("y_number_zero_exp", "0e0"),
    Y("y_number_zero_exp_plus", "0E+1"),
    Y("y_number_exp_minus", "1e-1"),
    Y("y_number_frac_exp", "1.5E-10"),
    Y("y_number_negative", "-123"),
    Y("y_number_big_exp", "123e65"),
    Y("y_number_huge_exp", "1E400"),
    Y("y_number_neg_huge_exp", "-1E400"),
    Y("y_number_tiny_exp", "1e-400"),
    Y("y_number_long_exp", "1e0000000000000000000000001"),
    Y("y_number_2_64", "18446744073709551616"),
    Y("y_number_long_int", "123456789012345678901234567890123456789"),
    Y("y_number_small_frac", "0.000001"),
    Y("y_number_array", "[1,-2,3.5e+2,0.5]"),
    Y("y_number_ws_around", " 1 "),
    /* strings and escapes */
    Y("y_string_empty", "\"\""),
    Y("y_string_escapes", "\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\""),
    Y("y_string_u_escapes", "\"\\u0041\\u00e9\\u20AC\""),
    Y("y_string_u_nul", "\"\\u0000\""),
    Y("y_string_surrogate_pair", "\"\\uD834\\uDD1E\""),
    Y("y_string_surrogate_pair_max", "\"\\uDBFF\\uDFFF\""),
    Y("y_string_surrogate_pair_lower", "\"\\ud83d\\ude00\""),
    Y("y_string_noncharacter_escape", "\"\\uFFFF\\uFDD0\""),
    Y("y_string_del_raw", "\"\x7f\""),
    Y("y_string_utf8_2byte_min", "\"\xc2\x80\""),
    Y("y_string_utf8_2byte_max", "\"\xdf\xbf\""),
    Y("y_string_utf8_3byte_min", "\"\xe0\xa0\x80\""),
    Y("y_string_utf8_before_surrogates", "\"\xed\x9f\xbf\""),
    Y("y_string_utf8_after_surrogates", "\"\xee\x80\x80\""),
    Y("y_string_utf8_3byte_max", "\"\xef\xbf\xbf\""),
    Y("y_string_utf8_4byte_min", "\"\xf0\x90\x80\x80\""),
    Y("y_string_utf8_4byte_max", "\"\xf4\x8f\xbf\xbf\""),
    Y("y_string_utf8_emoji", "\"\xf0\x9f\x98\x80\""),
    Y("y_string_utf8_cjk", "\"\xe6\x97\xa5\xe6\x9c\xac\""),
    Y("y_string_utf8_bom_inside", "\"\xef\xbb\xbf\""),
    Y("y_string_escaped_quote_end", "\"a\\\"\""),
    Y("y_string_escaped_backslash_end", "\"a\\\\\""),
    /* ---- must reject ---- */
    N("n_empty", ""),
    N("n_ws_only", " \n\t"),
    N("n_bom_object", "\xef\xbb\xbf{}"),
    N("n_array_trailing_comma", "[1,]"),
    N("n_array_leading_comma", "[,1]"),
    N("n_array_double_comma", "[1,,2]"),
    N("n_array_only_comma", "[,]"),
    N("n_object_trailing_comma", "{\"a\":1,}"),
    N("n_object_only_comma", "{,}"),
    N("n_array_unclosed", "["),
    N("n_array_unclosed_value", "[1"),
    N("n_array_unclosed_comma", "[1,"),
    N("n_object_unclosed", "{"),
    N("n_object_key_only", "{\"a\""),
    N("n_object_colon_only", "{\"a\":"),
    N("n_object_unclosed_value", "{\"a\":1"),
    N("n_string_unclosed", "\"abc"),
    N("n_string_unclosed_in_array", "[\"a]"),
    N("n_string_escaped_final_quote", "\"\\\""),
    N("n_mismatch_array_brace", "[}"),
    N("n_mismatch_object_bracket", "{]"),
    N("n_mismatch_value_brace", "[1}"),
    N("n_object_bare_key", "{a:1}"),
    N("n_object_number_key", "{1:1}"),
    N("n_object_null_key", "{null:1}"),
    N("n_object_missing_colon", "{\"a\" 1}"),
    N("n_object_double_colon", "{\"a\"::1}"),
    N("n_object_single_quotes", "{'a':1}"),
    N("n_object_equals", "{\"a\"=1}"),
    N("n_object_semicolon", "{\"a\":1;\"b\":2}"),
    N("n_object_missing_value", "{\"a\":}"),
    N("n_array_semicolon", "[1;2]"),
    N("n_array_missing_comma", "[1 2]"),
    N("n_array_strings_missing_comma", "[\"a\",\"b\" \"c\"]"),
    N("n_array_colon", "[\"a\":1]"),
    /* numbers */
    N("n_number_leading_zero", "01"),
    N("n_number_neg_leading_zero", "-01"),
    N("n_number_double_zero", "00"),
    N("n_number_leading_zero_array", "[01]"),
    N("n_number_trailing_dot", "1."),
    N("n_number_trailing_dot_array", "[2.]"),
    N("n_number_leading_dot", ".1"),
    N("n_number_neg_leading_dot", "-.5"),
    N("n_number_dot_exp", "1.e1"),
    N("n_number_exp_empty", "1e"),
    N("n_number_exp_plus_empty", "1e+"),
    N("n_number_exp_minus_empty", "1E-"),
    N("n_number_double_exp", "1ee2"),
    N("n_number_frac_exp", "1e1.5"),
    N("n_number_two_dots", "0.1.2"),
    N("n_number_plus", "+1"),
    N("n_number_minus_only", "-"),
    N("n_number_double_minus", "--1"),
    N("n_number_hex", "0x1"),
    N("n_number_underscore", "1_000"),
    N("n_number_infinity", "Infinity"),
    N("n_number_neg_infinity", "-Infinity"),
    N("n_number_nan", "NaN"),
    N("n_number_arabic_digit", "\xd9\xa1"),
    N("n_number_minus_space", "- 1"),
    /* literals */
    N("n_literal_truncated_true", "tru"),
    N("n_literal_truncated_null", "nul"),
    N("n_literal_capital_true", "True"),
    N("n_literal_upper_null", "NULL"),
    N("n_literal_trailing_letter", "truex"),
    N("n_literal_null_extra_l", "nulll"),
    N("n_literal_glued", "[truefalse]"),
    /* strings */
    N("n_string_raw_tab", "\"a\tb\""),
    N("n_string_raw_newline", "\"a\nb\""),
    N("n_string_raw_nul", "\"a\0b\""),
    N("n_string_raw_0x1f", "\"\x1f\""),
    N("n_string_escape_x", "\"\\x41\""),
    N("n_string_escape_a", "\"\\a\""),
    N("n_string_escape_upper_u", "\"\\U0041\""),
    N("n_string_escape_short_u", "\"\\u12\""),
    N("n_string_escape_bad_hex", "\"\\u12G4\""),
    N("n_string_escape_u_at_end", "\"\\u"),
    N("n_string_escape_raw_tab", "\"\\\t\""),
    N("n_string_single_quoted", "'single'"),
    N("n_string_lone_high_surrogate", "\"\\uD800\""),
    N("n_string_lone_low_surrogate", "\"\\uDC00\""),
    N("n_string_high_then_bmp", "\"\\uD800\\u0041\""),
    N("n_string_high_then_char", "\"\\uD800x\""),
    N("n_string_high_high", "\"\\uDBFF\\uDBFF\""),
    N("n_string_low_high", "\"\\uDC00\\uD800\""),
    N("n_string_high_then_escape", "\"\\uD800\\n\""),
    /* UTF-8 */
    N("n_utf8_ff", "\"\xff\""),
    N("n_utf8_fe", "\"\xfe\""),
    N("n_utf8_f5", "\"\xf5\x80\x80\x80\""),
    N("n_utf8_5byte", "\"\xf8\x88\x80\x80\x80\""),
    N("n_utf8_overlong_nul", "\"\xc0\x80\""),
    N("n_utf8_overlong_c1", "\"\xc1\xbf\""),
    N("n_utf8_overlong_3byte", "\"\xe0\x80\x80\""),
    N("n_utf8_overlong_3byte_max", "\"\xe0\x9f\xbf\""),
    N("n_utf8_overlong_4byte", "\"\xf0\x80\x80\x80\""),
    N("n_utf8_overlong_4byte_max", "\"\xf0\x8f\xbf\xbf\""),
    N("n_utf8_surrogate_d800", "\"\xed\xa0\x80\""),
    N("n_utf8_surrogate_dfff", "\"\xed\xbf\xbf\""),
    N("n_utf8_surrogate_pair_raw", "\"\xed\xa0\xbd\xed\xb8\x80\""),
    N("n_utf8_above_10ffff", "\"\xf4\x90\x80\x80\""),
    N("n_utf8_lone_continuation", "\"\x80\""),
    N("n_utf8_lone_continuation_bf", "\"\xbf\""),
    N("n_utf8_truncated_2", "\"\xc3\""),
    N("n_utf8_truncated_3", "\"\xe6\x97\""),
    N("n_utf8_truncated_4", "\"\xf0\x9f\x98\""),
    N("n_utf8_truncated_at_eof", "\"\xc3"),
    N("n_utf8_bad_continuation", "\"\xc3\x28\""),
    N("n_utf8_bad_continuation_3", "\"\xe2\x28\xa1\""),
    N("n_utf8_in_key", "{\"\xff\":1}"),
    /* bytes outside strings */
    N("n_structure_ff", "\xff"),
    N("n_structure_ff_in_array", "[\xff]"),
    N("n_structure_nul", "\0"),
    N("n_structure_nul_in_array", "[\0]"),
    N("n_structure_nul_after", "[1]\0"),
    N("n_structure_nul_after_object", "{\"a\":1}\0"),
    N("n_structure_ws_nul", " \0 "),
    N("n_structure_form_feed", "[\f]"),
    N("n_structure_vertical_tab", "[\v1]"),
    N("n_structure_nbsp", "\xc2\xa0[]"),
    N("n_structure_trailing_vt", "[1]\x0b"),
    /* trailing content and comments */
    N("n_trailing_second_array", "[1] [2]"),
    N("n_trailing_second_number", "1 2"),
    N("n_trailing_brace", "{}}"),
    N("n_trailing_bracket", "[]]"),
    N("n_trailing_string", "\"a\"\"b\""),
    N("n_trailing_letter", "[1]x"),
    N("n_comment_block_after", "1 /* c */"),
    N("n_comment_line_after", "[1]//"),
    N("n_comment_block_before", "/* c */ 1"),
    N("n_comment_hash", "# c\n1"),
    /* duplicates are rejected by default */
    N("n_object_duplicate", "{\"a\":1,\"a\":2}"),
    N("n_object_duplicate_nested", "{\"x\":{\"k\":1,\"k\":1}}"),
    N("n_object_duplicate_empty_key", "{\"\":1,\"\":2}"),
    N("n_object_duplicate_escaped", "{\"a\":1,\"\\u0061\":2}"),
};

static void test_json_accept_reject_table(void)
{
    const size_t n = sizeof CASES / sizeof CASES[0];
    CU_ASSERT(n >= 120);
    for (size_t i = 0; i < n; i++) {
        const json_case *const c   = &CASES[i];
        lq_json_doc           *doc = NULL;
        lq_json_error          err;
        const lq_status        st = parse_exact(c->text, c->len, NULL, &doc, &err);
        char                   msg[400];
        if (c->ok) {
            snprintf(msg, sizeof msg, "%s must parse (got %s: %s)", c->name, lq_status_str(st), err.msg);
            CU_assertImplementation(st == LQ_OK && doc != NULL && lq_json_root(doc) != NULL, __LINE__, msg,
                                    __FILE__, "", CU_FALSE);
        } else {
            snprintf(msg, sizeof msg, "%s must be rejected with an error message (got %s)", c->name,
                     lq_status_str(st));
            CU_assertImplementation(st == LQ_ERR_FORMAT && doc == NULL && err.msg[0] != '\0' && err.offset <= c->len,
                                    __LINE__, msg, __FILE__, "", CU_FALSE);
        }
        lq_json_free(doc);
    }
}

/* ---- error messages ---- */

static void expect_error(const char *text, size_t len, const char *needle, size_t offset)
{
    lq_json_doc    *doc = NULL;
    lq_json_error   err;
    const lq_status st = parse_exact(text, len, NULL, &doc, &err);
    char            msg[400];
    snprintf(msg, sizeof msg, "error for input of %zu bytes: want \"%s\" at %zu, got \"%s\" at %zu", len, needle,
             offset, err.msg, err.offset);
    CU_assertImplementation(st == LQ_ERR_FORMAT && strstr(err.msg, needle) != NULL && err.offset == offset, __LINE__,
                            msg, __FILE__, "", CU_FALSE);
    lq_json_free(doc);
}

#define EXPECT_ERROR(lit, needle, off) expect_error(lit, sizeof(lit) - 1, needle, off)

static void test_json_error_messages(void)
{
    EXPECT_ERROR("[\"ab\xff\"]", "invalid UTF-8 byte 0xff in string", 4);
    EXPECT_ERROR("\"\xc0\x80\"", "invalid UTF-8 byte 0xc0 in string", 1);
    EXPECT_ERROR("\"\xe0\x80\x80\"", "overlong UTF-8 sequence", 1);
    EXPECT_ERROR("\"\xed\xa0\x80\"", "surrogate U+D800", 1);
    EXPECT_ERROR("\"\xf4\x90\x80\x80\"", "above U+10FFFF", 1);
    EXPECT_ERROR("\"x\xc3\"", "truncated UTF-8 sequence", 2);
    EXPECT_ERROR("\"a\tb\"", "control character 0x09", 2);
    EXPECT_ERROR("\"\\uD800\"", "lone surrogate \\ud800", 1);
    EXPECT_ERROR("\"\\q\"", "invalid escape", 1);
    EXPECT_ERROR("[1] x", "trailing characters after the JSON value", 4);
    EXPECT_ERROR("[1,]", "trailing comma in array", 3);
    EXPECT_ERROR("{\"a\":1,}", "trailing comma in object", 7);
    EXPECT_ERROR("[01]", "leading zeros", 1);
    EXPECT_ERROR("1.", "digit after the decimal point", 2);
    EXPECT_ERROR("1e+", "digit in the exponent", 3);
    EXPECT_ERROR("[\0]", "byte 0x00", 1);
    EXPECT_ERROR("\"abc", "unterminated string", 0);
    EXPECT_ERROR("[1", "unexpected end of input", 2);
    EXPECT_ERROR("tru", "expected 'true'", 0);
    EXPECT_ERROR("", "empty input", 0);
    EXPECT_ERROR("\xef\xbb\xbf{}", "byte order mark", 0);
    EXPECT_ERROR("{\"a\" 1}", "expected ':'", 5);
    EXPECT_ERROR("{\"model.norm.weight\":{},\"lm_head\":{},\"model.norm.weight\":{}}",
                 "duplicate key \"model.norm.weight\"", 37);
    /* a key that needs escaping, and one that is cut */
    EXPECT_ERROR("{\"a\\nb\":1,\"a\\nb\":2}", "duplicate key \"a\\u000ab\"", 10);
    char long_dup[600];
    char key[201];
    memset(key, 'k', 200);
    key[200] = '\0';
    const int n = snprintf(long_dup, sizeof long_dup, "{\"%s\":1,\"%s\":2}", key, key);
    expect_error(long_dup, (size_t)n, "duplicate key \"kkkkkkkkkk", 206);
    lq_json_doc  *doc = NULL;
    lq_json_error err;
    CU_ASSERT_EQUAL(parse_exact(long_dup, (size_t)n, NULL, &doc, &err), LQ_ERR_FORMAT);
    CU_ASSERT(strstr(err.msg, "...") != NULL);
    CU_ASSERT(strlen(err.msg) < sizeof err.msg - 1);
}

/* ---- values and lookups ---- */

static const char CONFIG_JSON[] =
    "{\n"
    "  \"architectures\": [\"LlamaForCausalLM\"],\n"
    "  \"hidden_size\": 4096,\n"
    "  \"rms_norm_eps\": 1e-05,\n"
    "  \"rope_theta\": 10000.0,\n"
    "  \"tie_word_embeddings\": false,\n"
    "  \"use_cache\": true,\n"
    "  \"rope_scaling\": null,\n"
    "  \"torch_dtype\": \"bfloat16\",\n"
    "  \"bos_token_id\": -1,\n"
    "  \"weird\": \"nul\\u0000inside \\ud83d\\ude00 caf\\u00e9\",\n"
    "  \"price\": 1.50\n"
    "}\n";

static void test_json_values_and_getters(void)
{
    lq_json_doc  *doc = NULL;
    lq_json_error err;
    CU_ASSERT_EQUAL_FATAL(parse_str(CONFIG_JSON, &doc, &err), LQ_OK);
    const lq_json *root = lq_json_root(doc);
    CU_ASSERT_EQUAL_FATAL(root->type, LQ_JSON_OBJECT);
    CU_ASSERT_EQUAL(root->n, 11);
    CU_ASSERT_EQUAL(root->offset, 0);
    CU_ASSERT_STRING_EQUAL(root->items[0].key, "architectures");
    CU_ASSERT_STRING_EQUAL(root->items[10].key, "price");

    const lq_json *arch = lq_json_get(root, "architectures");
    CU_ASSERT_FATAL(arch != NULL && arch->type == LQ_JSON_ARRAY && arch->n == 1);
    CU_ASSERT_STRING_EQUAL(lq_json_get_str(&arch->items[0]), "LlamaForCausalLM");
    CU_ASSERT_EQUAL(arch->items[0].offset, (size_t)(strstr(CONFIG_JSON, "\"LlamaFor") - CONFIG_JSON));
    CU_ASSERT_EQUAL(arch->offset, (size_t)(strchr(CONFIG_JSON, '[') - CONFIG_JSON));

    uint64_t u = 0;
    int64_t  i = 0;
    double   f = 0;
    bool     b = true;
    CU_ASSERT(lq_json_get_u64(lq_json_get(root, "hidden_size"), &u) && u == 4096);
    CU_ASSERT(lq_json_get_i64(lq_json_get(root, "hidden_size"), &i) && i == 4096);
    CU_ASSERT(lq_json_get_f64(lq_json_get(root, "rms_norm_eps"), &f) && f == 1e-05);
    CU_ASSERT(!lq_json_get_u64(lq_json_get(root, "rms_norm_eps"), &u));
    CU_ASSERT(!lq_json_get_u64(lq_json_get(root, "rope_theta"), &u));
    CU_ASSERT(!lq_json_get_i64(lq_json_get(root, "rope_theta"), &i));
    CU_ASSERT(lq_json_get_f64(lq_json_get(root, "rope_theta"), &f) && f == 10000.0);
    CU_ASSERT(lq_json_get_bool(lq_json_get(root, "tie_word_embeddings"), &b) && !b);
    CU_ASSERT(lq_json_get_bool(lq_json_get(root, "use_cache"), &b) && b);
    CU_ASSERT(!lq_json_get_bool(lq_json_get(root, "rope_scaling"), &b));
    CU_ASSERT_EQUAL(lq_json_get(root, "rope_scaling")->type, LQ_JSON_NULL);
    CU_ASSERT(!lq_json_get_u64(lq_json_get(root, "bos_token_id"), &u));
    CU_ASSERT(lq_json_get_i64(lq_json_get(root, "bos_token_id"), &i) && i == -1);
    CU_ASSERT_STRING_EQUAL(lq_json_get_str(lq_json_get(root, "torch_dtype")), "bfloat16");
    CU_ASSERT_PTR_NULL(lq_json_get_str(lq_json_get(root, "hidden_size")));
    CU_ASSERT(!lq_json_get_f64(lq_json_get(root, "torch_dtype"), &f));
    /* number text is kept verbatim */
    CU_ASSERT_STRING_EQUAL(lq_json_get(root, "price")->num, "1.50");
    CU_ASSERT_STRING_EQUAL(lq_json_get(root, "rms_norm_eps")->num, "1e-05");

    /* \u0000 decodes to a NUL inside the string; the pair to U+1F600 */
    const lq_json *weird = lq_json_get(root, "weird");
    static const char want[] = "nul\0inside \xf0\x9f\x98\x80 caf\xc3\xa9";
    CU_ASSERT_EQUAL_FATAL(weird->str_len, sizeof want - 1);
    CU_ASSERT(memcmp(weird->str, want, sizeof want) == 0); /* includes the terminating NUL */

    /* absent keys and non-objects */
    CU_ASSERT_PTR_NULL(lq_json_get(root, "missing"));
    CU_ASSERT_PTR_NULL(lq_json_get(root, "hidden"));
    CU_ASSERT_PTR_NULL(lq_json_get(arch, "0"));
    CU_ASSERT_PTR_NULL(lq_json_get(NULL, "a"));
    CU_ASSERT_PTR_NULL(lq_json_get(root, NULL));
    CU_ASSERT(!lq_json_get_u64(NULL, &u));
    CU_ASSERT(!lq_json_get_i64(NULL, &i));
    CU_ASSERT(!lq_json_get_f64(NULL, &f));
    CU_ASSERT(!lq_json_get_bool(NULL, &b));
    CU_ASSERT_PTR_NULL(lq_json_get_str(NULL));
    CU_ASSERT_PTR_NULL(lq_json_root(NULL));
    lq_json_free(doc);
    lq_json_free(NULL);

    /* 1E400 is valid JSON whose double is inf */
    CU_ASSERT_EQUAL_FATAL(parse_str("[1E400,-1E400,1e-400]", &doc, &err), LQ_OK);
    root = lq_json_root(doc);
    CU_ASSERT(isinf(root->items[0].num_f64) && root->items[0].num_f64 > 0);
    CU_ASSERT(isinf(root->items[1].num_f64) && root->items[1].num_f64 < 0);
    CU_ASSERT_EQUAL(root->items[2].num_f64, 0.0);
    lq_json_free(doc);
}

static void test_json_not_nul_terminated(void)
{
    /* only `len` bytes are read: the rest of the buffer is not JSON */
    static const char buf[] = "[1,2]garbage";
    lq_json_doc      *doc   = NULL;
    lq_json_error     err;
    CU_ASSERT_EQUAL(lq_json_parse(buf, 5, NULL, &doc, &err), LQ_OK);
    CU_ASSERT_EQUAL(lq_json_root(doc)->n, 2);
    lq_json_free(doc);
    CU_ASSERT_EQUAL(lq_json_parse("12345", 2, NULL, &doc, &err), LQ_OK);
    CU_ASSERT_STRING_EQUAL(lq_json_root(doc)->num, "12");
    lq_json_free(doc);
    CU_ASSERT_EQUAL(lq_json_parse("\"ab\"", 3, NULL, &doc, &err), LQ_ERR_FORMAT);
    CU_ASSERT_PTR_NULL(doc);
    /* a NUL inside the given length is an error, not an end marker */
    CU_ASSERT_EQUAL(lq_json_parse("[1]\0 ", 5, NULL, &doc, &err), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(err.offset, 3);
    /* argument checks */
    lq_json_params p = lq_json_default_params();
    CU_ASSERT_EQUAL(p.max_depth, 64);
    CU_ASSERT(p.reject_duplicates);
    p.max_depth = -1;
    CU_ASSERT_EQUAL(lq_json_parse("1", 1, &p, &doc, &err), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_json_parse("1", 1, NULL, NULL, &err), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_json_parse(NULL, 4, NULL, &doc, &err), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_json_parse(NULL, 0, NULL, &doc, NULL), LQ_ERR_FORMAT);
    CU_ASSERT_PTR_NULL(doc);
}

/* ---- integers ---- */

static void test_json_u64_i64_exact(void)
{
    static const struct {
        const char *text;
        bool        u_ok;
        uint64_t    u;
        bool        i_ok;
        int64_t     i;
    } T[] = {
        {"0", true, 0, true, 0},
        {"-0", false, 0, true, 0},
        {"1", true, 1, true, 1},
        {"-1", false, 0, true, -1},
        {"9007199254740993", true, 9007199254740993ULL, true, 9007199254740993LL},
        {"9223372036854775807", true, 9223372036854775807ULL, true, INT64_MAX},
        {"9223372036854775808", true, 9223372036854775808ULL, false, 0},
        {"-9223372036854775808", false, 0, true, INT64_MIN},
        {"-9223372036854775809", false, 0, false, 0},
        {"18446744073709551615", true, UINT64_MAX, false, 0},
        {"18446744073709551616", false, 0, false, 0},
        {"99999999999999999999", false, 0, false, 0},
        {"1.0", false, 0, false, 0},
        {"1e3", false, 0, false, 0},
        {"1E3", false, 0, false, 0},
        {"10.5", false, 0, false, 0},
        {"-1.5e-3", false, 0, false, 0},
    };
    for (size_t k = 0; k < sizeof T / sizeof T[0]; k++) {
        lq_json_doc  *doc = NULL;
        lq_json_error err;
        CU_ASSERT_EQUAL_FATAL(parse_str(T[k].text, &doc, &err), LQ_OK);
        const lq_json *v = lq_json_root(doc);
        uint64_t       u = 42;
        int64_t        i = 42;
        char           msg[160];
        snprintf(msg, sizeof msg, "u64/i64 of %s", T[k].text);
        const bool u_ok = lq_json_get_u64(v, &u);
        const bool i_ok = lq_json_get_i64(v, &i);
        CU_assertImplementation(u_ok == T[k].u_ok && (!u_ok || u == T[k].u) && i_ok == T[k].i_ok &&
                                    (!i_ok || i == T[k].i),
                                __LINE__, msg, __FILE__, "", CU_FALSE);
        CU_ASSERT(lq_json_get_f64(v, NULL));
        lq_json_free(doc);
    }
    /* exactness where double would round: 2^64-1 is not representable */
    lq_json_doc  *doc = NULL;
    lq_json_error err;
    CU_ASSERT_EQUAL_FATAL(parse_str("{\"n\":18446744073709551615,\"m\":18446744073709551614}", &doc, &err), LQ_OK);
    uint64_t a = 0, b = 0;
    CU_ASSERT(lq_json_get_u64(lq_json_get(lq_json_root(doc), "n"), &a));
    CU_ASSERT(lq_json_get_u64(lq_json_get(lq_json_root(doc), "m"), &b));
    CU_ASSERT_EQUAL(a, UINT64_MAX);
    CU_ASSERT_EQUAL(a - b, 1);
    CU_ASSERT_EQUAL(lq_json_get(lq_json_root(doc), "n")->num_f64, 18446744073709551616.0);
    lq_json_free(doc);
}

/* ---- nesting ---- */

static void test_json_nesting_limit(void)
{
    lq_json_doc  *doc = NULL;
    lq_json_error err;
    size_t        len;
    char         *s = nested_arrays(64, true, &len);
    CU_ASSERT_EQUAL(parse_exact(s, len, NULL, &doc, &err), LQ_OK);
    lq_json_free(doc);
    doc = NULL;
    free(s);
    s = nested_arrays(65, true, &len);
    CU_ASSERT_EQUAL(parse_exact(s, len, NULL, &doc, &err), LQ_ERR_FORMAT);
    CU_ASSERT_STRING_EQUAL(err.msg, "nesting deeper than 64 at offset 64");
    CU_ASSERT_EQUAL(err.offset, 64);
    free(s);

    /* objects count as levels too */
    lq_json_params p = lq_json_default_params();
    p.max_depth      = 4;
    CU_ASSERT_EQUAL(parse_str_p("{\"a\":[{\"b\":[]}]}", &p, &doc, &err), LQ_OK);
    lq_json_free(doc);
    CU_ASSERT_EQUAL(parse_str_p("{\"a\":[{\"b\":[{}]}]}", &p, &doc, &err), LQ_ERR_FORMAT);
    CU_ASSERT(strstr(err.msg, "nesting deeper than 4") != NULL);
    p.max_depth = 0;
    CU_ASSERT_EQUAL(parse_exact("7", 1, &p, &doc, &err), LQ_OK);
    lq_json_free(doc);
    CU_ASSERT_EQUAL(parse_exact("[]", 2, &p, &doc, &err), LQ_ERR_FORMAT);
}

static void test_json_deep_nesting_no_stack_overflow(void)
{
    const size_t  depth = 100000;
    lq_json_doc  *doc   = NULL;
    lq_json_error err;
    size_t        len;
    char *const   s = nested_arrays(depth, true, &len);
    CU_ASSERT_FATAL(s != NULL);
    CU_ASSERT_EQUAL(parse_exact(s, len, NULL, &doc, &err), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(err.offset, 64);
    CU_ASSERT_EQUAL(parse_exact(s, depth, NULL, &doc, &err), LQ_ERR_FORMAT); /* unclosed */

    /* allowed by the caller: parsed and written back without recursion */
    lq_json_params p = lq_json_default_params();
    p.max_depth      = (int)depth;
    CU_ASSERT_EQUAL_FATAL(parse_exact(s, len, &p, &doc, &err), LQ_OK);
    const lq_json *v = lq_json_root(doc);
    size_t         d = 1;
    while (v->n == 1) {
        v = &v->items[0];
        d++;
    }
    CU_ASSERT_EQUAL(d, depth);
    size_t      out_len = 0;
    char *const out     = write_value(lq_json_root(doc), 0, &out_len);
    CU_ASSERT_FATAL(out != NULL);
    CU_ASSERT_EQUAL(out_len, len);
    CU_ASSERT(memcmp(out, s, len) == 0);
    lq_free(out);
    lq_json_free(doc);
    p.max_depth = (int)depth - 1;
    CU_ASSERT_EQUAL(parse_exact(s, len, &p, &doc, &err), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(err.offset, depth - 1);
    free(s);
}

/* ---- duplicate keys ---- */

static void test_json_duplicates(void)
{
    static const char text[] = "{\"a\":1,\"b\":{\"x\":true},\"a\":2}";
    lq_json_doc      *doc    = NULL;
    lq_json_error     err;
    CU_ASSERT_EQUAL(parse_str(text, &doc, &err), LQ_ERR_FORMAT);
    CU_ASSERT_STRING_EQUAL(err.msg, "duplicate key \"a\" at offset 22");

    lq_json_params p    = lq_json_default_params();
    p.reject_duplicates = false;
    CU_ASSERT_EQUAL_FATAL(parse_exact(text, sizeof text - 1, &p, &doc, &err), LQ_OK);
    const lq_json *root = lq_json_root(doc);
    CU_ASSERT_EQUAL(root->n, 3);
    uint64_t u = 0;
    CU_ASSERT(lq_json_get_u64(lq_json_get(root, "a"), &u));
    CU_ASSERT_EQUAL(u, 2); /* last one wins */
    lq_json_free(doc);

    /* keys differing only after a NUL, or by length, are distinct */
    CU_ASSERT_EQUAL(parse_str("{\"a\\u0000b\":1,\"a\\u0000c\":2,\"a\":3,\"a\\u0000\":4}", &doc, &err), LQ_OK);
    lq_json_free(doc);
    CU_ASSERT_EQUAL(parse_str("{\"a\\u0000b\":1,\"a\\u0000b\":2}", &doc, &err), LQ_ERR_FORMAT);
}

/* {"k0":0,"k1":1,...}; when dup_at < n, member dup_at reuses key dup_of */
static char *big_object(size_t n, size_t dup_at, size_t dup_of, const char *prefix, size_t *len)
{
    const size_t cap = n * (strlen(prefix) + 120) + 16;
    char *const  s   = malloc(cap);
    if (s == NULL) return NULL;
    size_t o = 0;
    s[o++]   = '{';
    for (size_t i = 0; i < n; i++) {
        const size_t k = i == dup_at ? dup_of : i;
        o += (size_t)snprintf(s + o, cap - o,
                              "%s\"%s%zu.weight\":{\"dtype\":\"BF16\",\"shape\":[4096,4096],\"data_offsets\":[%zu,%zu]}",
                              i ? "," : "", prefix, k, i * 32, i * 32 + 32);
    }
    s[o++] = '}';
    s[o]   = '\0';
    *len   = o;
    return s;
}

static void test_json_large_object_performance(void)
{
    const size_t  n   = 100000;
    lq_json_doc  *doc = NULL;
    lq_json_error err;
    size_t        len;
    char         *s = big_object(n, SIZE_MAX, 0, "model.layers.", &len);
    CU_ASSERT_FATAL(s != NULL);
    double t0 = now_s();
    CU_ASSERT_EQUAL_FATAL(lq_json_parse(s, len, NULL, &doc, &err), LQ_OK);
    double dt = now_s() - t0;
    printf("\n    100k-key object (%zu bytes) parsed in %.3f s ", len, dt);
    /* not a timing test: the bound only catches quadratic behaviour (minutes), even under ASan on a busy machine */
    CU_ASSERT(dt < 30.0);
    const lq_json *root = lq_json_root(doc);
    CU_ASSERT_EQUAL(root->n, n);
    CU_ASSERT_STRING_EQUAL(root->items[n - 1].key, "model.layers.99999.weight");
    const lq_json *t = lq_json_get(root, "model.layers.54321.weight");
    CU_ASSERT_FATAL(t != NULL);
    uint64_t off = 0;
    CU_ASSERT(lq_json_get_u64(&lq_json_get(t, "data_offsets")->items[1], &off));
    CU_ASSERT_EQUAL(off, 54321u * 32 + 32);
    lq_json_free(doc);
    free(s);

    /* the duplicate is the last member and keys share a long prefix */
    char prefix[200];
    memset(prefix, 'p', sizeof prefix - 1);
    prefix[sizeof prefix - 1] = '\0';
    s  = big_object(n, n - 1, 3, prefix, &len);
    t0 = now_s();
    CU_ASSERT_EQUAL(lq_json_parse(s, len, NULL, &doc, &err), LQ_ERR_FORMAT);
    dt = now_s() - t0;
    CU_ASSERT(dt < 30.0);
    CU_ASSERT(strstr(err.msg, "duplicate key \"ppppp") != NULL);
    CU_ASSERT_EQUAL(s[err.offset], '"');
    CU_ASSERT(strncmp(s + err.offset - 1, ",\"pppp", 6) == 0);
    CU_ASSERT(err.offset > len - 400);
    free(s);

    /* two duplicates: the one whose second occurrence comes first is named */
    s = big_object(1000, 700, 5, "t", &len);
    char *const dup2 = strstr(s, "\"t900.weight\"");
    CU_ASSERT_FATAL(dup2 != NULL);
    memcpy(dup2, "\"t010.weight\"", 13); /* not a duplicate: "t10" differs from "t010" */
    CU_ASSERT_EQUAL(lq_json_parse(s, len, NULL, &doc, &err), LQ_ERR_FORMAT);
    CU_ASSERT(strstr(err.msg, "duplicate key \"t5.weight\"") != NULL);
    memcpy(dup2, "\"t100.weight\"", 13); /* duplicate of member 100, second occurrence at 900 */
    CU_ASSERT_EQUAL(lq_json_parse(s, len, NULL, &doc, &err), LQ_ERR_FORMAT);
    CU_ASSERT(strstr(err.msg, "duplicate key \"t5.weight\"") != NULL);
    const size_t off700 = (size_t)(strstr(s, ",\"t5.weight\":{\"dtype\":\"BF16\",\"shape\":[4096,4096],\"data_offsets\":[22400") - s) + 1;
    CU_ASSERT_EQUAL(err.offset, off700);
    free(s);
}

/* ---- writer ---- */

static void test_json_writer_roundtrip(void)
{
    static const char text[] =
        "{\"a\":[1,-0,2.50,1E400,18446744073709551615,\"x\\u0000y\"],\"b\":{},\"c\":[],\"d\":null,"
        "\"e\":true,\"f\":false,\"g\":{\"h\":[[],[{}]],\"\xc3\xa9\xf0\x9f\x98\x80\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u001f\"},"
        "\"\":\"\"}";
    lq_json_doc  *doc = NULL, *doc2 = NULL;
    lq_json_error err;
    CU_ASSERT_EQUAL_FATAL(parse_str(text, &doc, &err), LQ_OK);
    for (int indent = 0; indent <= 4; indent += 2) {
        size_t      n   = 0;
        char *const out = write_value(lq_json_root(doc), indent, &n);
        CU_ASSERT_FATAL(out != NULL);
        CU_ASSERT_EQUAL(strlen(out), n);
        CU_ASSERT_EQUAL_FATAL(lq_json_parse(out, n, NULL, &doc2, &err), LQ_OK);
        CU_ASSERT(json_equal(lq_json_root(doc), lq_json_root(doc2)));
        /* the second generation is byte-identical */
        size_t      n2   = 0;
        char *const out2 = write_value(lq_json_root(doc2), indent, &n2);
        CU_ASSERT(out2 != NULL && n2 == n && memcmp(out, out2, n) == 0);
        if (indent == 0) {
            CU_ASSERT_STRING_EQUAL(out, "{\"a\":[1,-0,2.50,1E400,18446744073709551615,\"x\\u0000y\"],\"b\":{},\"c\":[],"
                                        "\"d\":null,\"e\":true,\"f\":false,\"g\":{\"h\":[[],[{}]],"
                                        "\"\xc3\xa9\xf0\x9f\x98\x80\":\"\\\"\\\\/\\b\\f\\n\\r\\t\\u001f\"},\"\":\"\"}");
        }
        lq_free(out);
        lq_free(out2);
        lq_json_free(doc2);
        doc2 = NULL;
    }
    /* a sub-value on its own */
    size_t      n   = 0;
    char *const out = write_value(lq_json_get(lq_json_root(doc), "g"), 0, &n);
    CU_ASSERT_FATAL(out != NULL);
    CU_ASSERT(strncmp(out, "{\"h\":[[],[{}]],", 15) == 0);
    lq_free(out);
    lq_json_free(doc);
}

static void test_json_writer_python_indent(void)
{
    lq_json_writer *w = lq_json_writer_init(2);
    lq_json_obj_begin(w);
    lq_json_key(w, "architectures");
    lq_json_arr_begin(w);
    lq_json_str(w, "LlamaForCausalLM");
    lq_json_arr_end(w);
    lq_json_key(w, "hidden_size");
    lq_json_u64(w, 4096);
    lq_json_key(w, "rope_theta");
    lq_json_f64(w, 10000.0);
    lq_json_key(w, "rms_norm_eps");
    lq_json_f64(w, 1e-05);
    lq_json_key(w, "empty_obj");
    lq_json_obj_begin(w);
    lq_json_obj_end(w);
    lq_json_key(w, "empty_arr");
    lq_json_arr_begin(w);
    lq_json_arr_end(w);
    lq_json_key(w, "nested");
    lq_json_obj_begin(w);
    lq_json_key(w, "a");
    lq_json_arr_begin(w);
    lq_json_i64(w, 1);
    lq_json_arr_begin(w);
    lq_json_i64(w, 2);
    lq_json_obj_begin(w);
    lq_json_obj_end(w);
    lq_json_arr_end(w);
    lq_json_arr_end(w);
    lq_json_key(w, "b");
    lq_json_null(w);
    lq_json_key(w, "t");
    lq_json_bool(w, true);
    lq_json_key(w, "f");
    lq_json_bool(w, false);
    lq_json_obj_end(w);
    lq_json_key(w, "s");
    lq_json_str(w, "caf\xc3\xa9 \"q\" \\ \n");
    lq_json_obj_end(w);
    char  *out = NULL;
    size_t n   = 0;
    CU_ASSERT_EQUAL_FATAL(lq_json_writer_finish(w, &out, &n), LQ_OK);
    /* python3: json.dumps(d, indent=2, ensure_ascii=False) */
    static const char want[] =
        "{\n  \"architectures\": [\n    \"LlamaForCausalLM\"\n  ],\n  \"hidden_size\": 4096,\n  \"rope_theta\": "
        "10000.0,\n  \"rms_norm_eps\": 1e-05,\n  \"empty_obj\": {},\n  \"empty_arr\": [],\n  \"nested\": {\n    "
        "\"a\": [\n      1,\n      [\n        2,\n        {}\n      ]\n    ],\n    \"b\": null,\n    \"t\": true,\n "
        "   \"f\": false\n  },\n  \"s\": \"caf\xc3\xa9 \\\"q\\\" \\\\ \\n\"\n}";
    CU_ASSERT_STRING_EQUAL(out, want);
    CU_ASSERT_EQUAL(n, sizeof want - 1);
    lq_free(out);

    /* json.dumps([1, {"x": []}], indent=4) */
    w = lq_json_writer_init(4);
    lq_json_arr_begin(w);
    lq_json_u64(w, 1);
    lq_json_obj_begin(w);
    lq_json_key(w, "x");
    lq_json_arr_begin(w);
    lq_json_arr_end(w);
    lq_json_obj_end(w);
    lq_json_arr_end(w);
    CU_ASSERT_EQUAL_FATAL(lq_json_writer_finish(w, &out, &n), LQ_OK);
    CU_ASSERT_STRING_EQUAL(out, "[\n    1,\n    {\n        \"x\": []\n    }\n]");
    lq_free(out);

    /* compact, and a scalar document */
    w = lq_json_writer_init(0);
    lq_json_obj_begin(w);
    lq_json_key(w, "a");
    lq_json_i64(w, INT64_MIN);
    lq_json_key(w, "b");
    lq_json_u64(w, UINT64_MAX);
    lq_json_obj_end(w);
    CU_ASSERT_EQUAL_FATAL(lq_json_writer_finish(w, &out, &n), LQ_OK);
    CU_ASSERT_STRING_EQUAL(out, "{\"a\":-9223372036854775808,\"b\":18446744073709551615}");
    lq_free(out);
    w = lq_json_writer_init(2);
    lq_json_str(w, "only");
    CU_ASSERT_EQUAL_FATAL(lq_json_writer_finish(w, &out, &n), LQ_OK);
    CU_ASSERT_STRING_EQUAL(out, "\"only\"");
    lq_free(out);
}

static void test_json_writer_escaping(void)
{
    static const char raw[] = "\"\\\b\f\n\r\t\x01\x1f\x7f/\xc3\xa9\0end";
    lq_json_writer   *w     = lq_json_writer_init(0);
    lq_json_arr_begin(w);
    lq_json_strn(w, raw, sizeof raw - 1);
    lq_json_str(w, "plain");
    lq_json_strn(w, NULL, 0);
    lq_json_arr_end(w);
    char  *out = NULL;
    size_t n   = 0;
    CU_ASSERT_EQUAL_FATAL(lq_json_writer_finish(w, &out, &n), LQ_OK);
    CU_ASSERT_STRING_EQUAL(out, "[\"\\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u001f\x7f/\xc3\xa9\\u0000end\",\"plain\",\"\"]");
    lq_json_doc  *doc = NULL;
    lq_json_error err;
    CU_ASSERT_EQUAL_FATAL(lq_json_parse(out, n, NULL, &doc, &err), LQ_OK);
    const lq_json *s = &lq_json_root(doc)->items[0];
    CU_ASSERT_EQUAL(s->str_len, sizeof raw - 1);
    CU_ASSERT(memcmp(s->str, raw, sizeof raw - 1) == 0);
    lq_json_free(doc);
    lq_free(out);

    /* keys are escaped the same way */
    w = lq_json_writer_init(0);
    lq_json_obj_begin(w);
    lq_json_key(w, "k\"\n");
    lq_json_null(w);
    lq_json_obj_end(w);
    CU_ASSERT_EQUAL_FATAL(lq_json_writer_finish(w, &out, &n), LQ_OK);
    CU_ASSERT_STRING_EQUAL(out, "{\"k\\\"\\n\":null}");
    lq_free(out);
}

static void test_json_writer_f64_python_repr(void)
{
    static const struct {
        double      v;
        const char *want; /* python3 repr(v) */
    } T[] = {
        {1e-05, "1e-05"},
        {10000.0, "10000.0"},
        {0.1, "0.1"},
        {1e20, "1e+20"},
        {5e-324, "5e-324"},
        {1.7976931348623157e+308, "1.7976931348623157e+308"},
        {1e16, "1e+16"},
        {1e15, "1000000000000000.0"},
        {1234567890123456.0, "1234567890123456.0"},
        {0.0001, "0.0001"},
        {0.00012345, "0.00012345"},
        {-2.5e-7, "-2.5e-07"},
        {0.0, "0.0"},
        {-0.0, "-0.0"},
        {1.5, "1.5"},
        {100.0, "100.0"},
        {-3.0, "-3.0"},
        {1e100, "1e+100"},
        {1.0 / 3.0, "0.3333333333333333"},
        {2.0 / 3.0, "0.6666666666666666"},
        {0.1 + 0.2, "0.30000000000000004"},
        {2.2250738585072014e-308, "2.2250738585072014e-308"},
        {9007199254740992.0, "9007199254740992.0"},
        {123456789.125, "123456789.125"},
        {1e22, "1e+22"},
        {1e-7, "1e-07"},
        {3.14159, "3.14159"},
        /* 2^-1017: the nearest 16-digit string does not read back, its upper neighbour does */
        {0x1p-1017, "7.120236347223045e-307"},
        {0x1p-1007, "7.291122019556398e-304"},
    };
    for (size_t k = 0; k < sizeof T / sizeof T[0]; k++) {
        lq_json_writer *const w = lq_json_writer_init(0);
        lq_json_f64(w, T[k].v);
        char  *out = NULL;
        size_t n   = 0;
        CU_ASSERT_EQUAL_FATAL(lq_json_writer_finish(w, &out, &n), LQ_OK);
        char msg[200];
        snprintf(msg, sizeof msg, "f64 %.17g: want %s got %s", T[k].v, T[k].want, out);
        CU_assertImplementation(strcmp(out, T[k].want) == 0, __LINE__, msg, __FILE__, "", CU_FALSE);
        lq_free(out);
    }

    /* non-finite values become null */
    lq_json_writer *w = lq_json_writer_init(0);
    lq_json_arr_begin(w);
    lq_json_f64(w, NAN);
    lq_json_f64(w, INFINITY);
    lq_json_f64(w, -INFINITY);
    lq_json_arr_end(w);
    char  *out = NULL;
    size_t n   = 0;
    CU_ASSERT_EQUAL_FATAL(lq_json_writer_finish(w, &out, &n), LQ_OK);
    CU_ASSERT_STRING_EQUAL(out, "[null,null,null]");
    lq_free(out);

    /* random bit patterns read back exactly through our own parser */
    uint64_t seed = 0x5eed;
    int      bad  = 0;
    w             = lq_json_writer_init(0);
    lq_json_arr_begin(w);
    double vals[4000];
    for (int i = 0; i < 4000; i++) {
        double v;
        do {
            const uint64_t bits = lq_test_rand(&seed);
            memcpy(&v, &bits, sizeof v);
        } while (!isfinite(v));
        vals[i] = v;
        lq_json_f64(w, v);
    }
    lq_json_arr_end(w);
    CU_ASSERT_EQUAL_FATAL(lq_json_writer_finish(w, &out, &n), LQ_OK);
    lq_json_doc  *doc = NULL;
    lq_json_error err;
    CU_ASSERT_EQUAL_FATAL(lq_json_parse(out, n, NULL, &doc, &err), LQ_OK);
    for (int i = 0; i < 4000; i++) {
        const double r = lq_json_root(doc)->items[i].num_f64;
        if (memcmp(&r, &vals[i], sizeof r) != 0) {
            if (bad++ < 5) printf("\n    f64 round trip: %a -> %s (seed 0x5eed, value %d)", vals[i], lq_json_root(doc)->items[i].num, i);
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    lq_json_free(doc);
    lq_free(out);
}

typedef void (*misuse_fn)(lq_json_writer *w);

static void misuse_unclosed_array(lq_json_writer *w)
{
    lq_json_arr_begin(w);
    lq_json_u64(w, 1);
}
static void misuse_unclosed_object(lq_json_writer *w)
{
    lq_json_obj_begin(w);
}
static void misuse_value_without_key(lq_json_writer *w)
{
    lq_json_obj_begin(w);
    lq_json_u64(w, 1);
    lq_json_obj_end(w);
}
static void misuse_key_in_array(lq_json_writer *w)
{
    lq_json_arr_begin(w);
    lq_json_key(w, "a");
    lq_json_null(w);
    lq_json_arr_end(w);
}
static void misuse_key_at_top(lq_json_writer *w)
{
    lq_json_key(w, "a");
}
static void misuse_two_keys(lq_json_writer *w)
{
    lq_json_obj_begin(w);
    lq_json_key(w, "a");
    lq_json_key(w, "b");
    lq_json_null(w);
    lq_json_obj_end(w);
}
static void misuse_key_without_value(lq_json_writer *w)
{
    lq_json_obj_begin(w);
    lq_json_key(w, "a");
    lq_json_obj_end(w);
}
static void misuse_two_top_values(lq_json_writer *w)
{
    lq_json_u64(w, 1);
    lq_json_u64(w, 2);
}
static void misuse_wrong_close(lq_json_writer *w)
{
    lq_json_arr_begin(w);
    lq_json_obj_end(w);
    lq_json_arr_end(w); /* a valid call after the error does not clear it */
}
static void misuse_extra_close(lq_json_writer *w)
{
    lq_json_arr_begin(w);
    lq_json_arr_end(w);
    lq_json_arr_end(w);
}
static void misuse_nothing(lq_json_writer *w)
{
    (void)w;
}
static void misuse_bad_utf8_value(lq_json_writer *w)
{
    lq_json_str(w, "ok \xc3\x28");
}
static void misuse_bad_utf8_key(lq_json_writer *w)
{
    lq_json_obj_begin(w);
    lq_json_key(w, "\xed\xa0\x80");
    lq_json_null(w);
    lq_json_obj_end(w);
}
static void misuse_null_string(lq_json_writer *w)
{
    lq_json_str(w, NULL);
}
static void misuse_bad_number_text(lq_json_writer *w)
{
    lq_json v;
    memset(&v, 0, sizeof v);
    v.type = LQ_JSON_NUMBER;
    v.num  = "01";
    lq_json_value(w, &v);
}

static void test_json_writer_misuse(void)
{
    static const struct {
        const char *name;
        misuse_fn   fn;
    } T[] = {
        {"unclosed array", misuse_unclosed_array},
        {"unclosed object", misuse_unclosed_object},
        {"value without key", misuse_value_without_key},
        {"key in array", misuse_key_in_array},
        {"key at top level", misuse_key_at_top},
        {"two keys", misuse_two_keys},
        {"key without value", misuse_key_without_value},
        {"two top-level values", misuse_two_top_values},
        {"wrong close", misuse_wrong_close},
        {"extra close", misuse_extra_close},
        {"nothing written", misuse_nothing},
        {"invalid UTF-8 value", misuse_bad_utf8_value},
        {"invalid UTF-8 key", misuse_bad_utf8_key},
        {"NULL string", misuse_null_string},
        {"bad NUMBER text", misuse_bad_number_text},
    };
    lq_test_quiet(1);
    for (size_t k = 0; k < sizeof T / sizeof T[0]; k++) {
        lq_json_writer *const w = lq_json_writer_init(k % 2 ? 2 : 0);
        CU_ASSERT_FATAL(w != NULL);
        T[k].fn(w);
        char            sentinel[] = "sentinel";
        char           *out = sentinel;
        size_t          n   = 99;
        const lq_status st  = lq_json_writer_finish(w, &out, &n);
        char            msg[160];
        snprintf(msg, sizeof msg, "writer misuse '%s' must fail with LQ_ERR_INVALID_ARG (got %s)", T[k].name,
                 lq_status_str(st));
        CU_assertImplementation(st == LQ_ERR_INVALID_ARG && out == NULL && n == 0, __LINE__, msg, __FILE__, "",
                                CU_FALSE);
        CU_ASSERT(lq_test_errors_logged() >= 1);
    }
    lq_test_quiet(0);

    /* a NULL writer (init out of memory) is a no-op everywhere */
    lq_json_obj_begin(NULL);
    lq_json_key(NULL, "a");
    lq_json_f64(NULL, 1.0);
    lq_json_value(NULL, NULL);
    lq_json_obj_end(NULL);
    char *out = NULL;
    CU_ASSERT_EQUAL(lq_json_writer_finish(NULL, &out, NULL), LQ_ERR_NOMEM);
    CU_ASSERT_PTR_NULL(out);
    /* discarding a half-built writer */
    lq_json_writer *const w = lq_json_writer_init(0);
    lq_json_arr_begin(w);
    lq_json_str(w, "x");
    lq_json_writer_free(w);
    lq_json_writer_free(NULL);
}

static void test_json_value_hand_built(void)
{
    /* a NUMBER without source text is written from num_f64 */
    lq_json items[3];
    memset(items, 0, sizeof items);
    items[0].type    = LQ_JSON_NUMBER;
    items[0].num_f64 = 0.5;
    items[0].key     = "half";
    items[0].key_len = 4;
    items[1].type    = LQ_JSON_STRING;
    items[1].str     = "v";
    items[1].str_len = 1;
    items[1].key     = "k\0z";
    items[1].key_len = 3;
    items[2].type    = LQ_JSON_TRUE;
    items[2].key     = "t";
    items[2].key_len = 1;
    lq_json obj;
    memset(&obj, 0, sizeof obj);
    obj.type  = LQ_JSON_OBJECT;
    obj.n     = 3;
    obj.items = items;
    size_t      n   = 0;
    char *const out = write_value(&obj, 0, &n);
    CU_ASSERT_FATAL(out != NULL);
    CU_ASSERT_STRING_EQUAL(out, "{\"half\":0.5,\"k\\u0000z\":\"v\",\"t\":true}");
    CU_ASSERT_PTR_NOT_NULL(lq_json_get(&obj, "t"));
    CU_ASSERT_PTR_NULL(lq_json_get(&obj, "k")); /* the key holds a NUL */
    lq_free(out);
}

/* ---- out of memory ---- */

typedef struct {
    long budget; /* allocations left before failing */
    long live;
} fail_alloc;

static void *failing_alloc(size_t size, void *opaque)
{
    fail_alloc *const fa = opaque;
    if (fa->budget-- <= 0) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, 64, size ? size : 1) != 0) return NULL;
    fa->live++;
    return p;
}

static void failing_free(void *p, void *opaque)
{
    fail_alloc *const fa = opaque;
    fa->live--;
    free(p);
}

static void test_json_nomem_paths(void)
{
    /* deep enough and wide enough to reach every allocation site: arena
     * blocks, node/frame stacks, the duplicate sort, number copies */
    size_t      len;
    char *const big = big_object(300, SIZE_MAX, 0, "w", &len);
    CU_ASSERT_FATAL(big != NULL);
    fail_alloc         fa = {0, 0};
    const lq_allocator a  = {failing_alloc, failing_free, &fa};
    int                n_fail = 0, ok = 0;
    lq_test_quiet(1);
    for (long budget = 0; budget < 100000 && !ok; budget++) {
        fa.budget = budget;
        fa.live   = 0;
        lq_set_allocator(&a);
        lq_json_doc  *doc = NULL;
        lq_json_error err;
        lq_status     st = lq_json_parse(big, len, NULL, &doc, &err);
        char         *out = NULL;
        size_t        n   = 0;
        if (st == LQ_OK) {
            lq_json_writer *const w = lq_json_writer_init(2);
            lq_json_value(w, lq_json_root(doc));
            st = lq_json_writer_finish(w, &out, &n);
            lq_free(out);
            lq_json_free(doc);
            ok = st == LQ_OK;
        } else {
            CU_ASSERT_PTR_NULL(doc);
            CU_ASSERT(strstr(err.msg, "out of memory") != NULL);
        }
        const long live = fa.live;
        lq_set_allocator(NULL);
        if (st != LQ_OK) n_fail++;
        char msg[120];
        snprintf(msg, sizeof msg, "budget %ld: status %s, %ld allocations leaked", budget, lq_status_str(st), live);
        CU_assertImplementation((st == LQ_OK || st == LQ_ERR_NOMEM) && live == 0, __LINE__, msg, __FILE__, "",
                                CU_FALSE);
    }
    lq_test_quiet(0);
    CU_ASSERT(ok);
    CU_ASSERT(n_fail >= 5); /* several distinct allocation sites were hit */
    free(big);
}

CU_pSuite lq_test_json_suite(void)
{
    CU_pSuite s = lq_test_add_suite("json");
    LQ_ADD_TEST(s, test_json_accept_reject_table);
    LQ_ADD_TEST(s, test_json_error_messages);
    LQ_ADD_TEST(s, test_json_values_and_getters);
    LQ_ADD_TEST(s, test_json_not_nul_terminated);
    LQ_ADD_TEST(s, test_json_u64_i64_exact);
    LQ_ADD_TEST(s, test_json_nesting_limit);
    LQ_ADD_TEST(s, test_json_deep_nesting_no_stack_overflow);
    LQ_ADD_TEST(s, test_json_duplicates);
    LQ_ADD_TEST(s, test_json_large_object_performance);
    LQ_ADD_TEST(s, test_json_writer_roundtrip);
    LQ_ADD_TEST(s, test_json_writer_python_indent);
    LQ_ADD_TEST(s, test_json_writer_escaping);
    LQ_ADD_TEST(s, test_json_writer_f64_python_repr);
    LQ_ADD_TEST(s, test_json_writer_misuse);
    LQ_ADD_TEST(s, test_json_value_hand_built);
    LQ_ADD_TEST(s, test_json_nomem_paths);
    return s;
}
