/* qformat_read.c : "quantization_config" (GPTQ, compressed-tensors) and the
 * loader that turns one Linear module of such a checkpoint back into an
 * lq_qtensor in the lq layout, bit for bit what qformat_write.c was given.
 *
 * GPTQ: qweight I32 [K*b/32, N] is transposed into lq rows (owned), scales
 *   [G, N] -> f32 [N, G], qzeros unpacked (v1 "gptq": stored + 1). g_idx
 *   (and compressed-tensors' weight_g_idx) is checked as hostile input: I32
 *   [K], values in [0, K/G), every group exactly G columns; k / G (or no
 *   g_idx) is the plain layout, anything else (act-order, desc_act) comes
 *   back as lq_qtensor.g_idx with the codes in the file's column order and
 *   scale row g = group g, as transformers dequantizes it:
 *   w[:, k] = scales[g_idx[k]] * (q[:, k] - zeros[g_idx[k]]). `dynamic` is
 *   honoured as GPTQModel and vLLM do: the first key whose regex re.match()es
 *   the module name wins; "-:" leaves it plain, "+:" (or no prefix) overrides
 *   bits / group_size / sym / desc_act.
 * compressed-tensors: the module's config group is found as vLLM does (an
 *   exact name target, then a "re:" target, then the class "Linear"), after
 *   `ignore`. pack-quantized weight_packed is borrowed in place (it is the lq
 *   row layout); int-quantized / naive-quantized I8 weights are repacked;
 *   float-quantized fp8 is borrowed. Zero points are stored by
 *   compressed-tensors as zp + 2^(b-1), which is the lq zero point z.
 * Regexes are Python `re` patterns; they are translated to POSIX extended
 * regexes (glibc regcomp) for the subset checkpoints use: literals, '.',
 * escapes \. \d \w \s (and negations), classes, anchors, groups (also
 * "(?:"), alternation, * + ? {m,n} (lazy forms match the same names).
 * Lookarounds, backreferences and inline flags are refused. */
#include "formats_internal.h"
#include "lq_qformats.h"

#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#define QC_MAX_BYTES   (16u << 20)
#define QC_MAX_PATTERN 1024
#define QC_MAX_NAME    1024

typedef struct {
    char   *src;      /* the pattern or name as written, prefix ("re:", "-:", "+:") removed */
    regex_t re;
    bool    compiled; /* a regex (else an exact name or a class)                         */
    bool    is_class; /* compressed-tensors target "Linear"                               */
} pattern;

typedef struct {
    pattern pat;
    bool    skip;  /* "-:" */
    int     bits;  /* 0: the base value */
    int64_t group; /* 0: the base value (-1 per channel) */
    int     sym;   /* -1: the base value */
    int     desc_act; /* -1: the base value */
} gptq_override;

typedef struct {
    char    *name;
    pattern *targets;
    uint32_t n_targets;
    bool     has_weights;
    bool     is_float;
    int      bits;
    bool     sym;
    char     strategy[16];
    int64_t  group_size; /* 0: none */
    bool     dynamic;
    bool     actorder_group; /* weights "actorder": "group" / "dynamic" / true: loaders apply weight_g_idx */
    bool     has_input_acts;
    bool     act_static8; /* input_activations: int 8-bit symmetric tensor static (W8A8): read input_scale */
    char     format[32]; /* "" = the global format */
} ct_group;

struct lq_quant_config {
    lq_qformat format;
    char      *label;
    /* GPTQ */
    int            bits;
    int64_t        group; /* -1 per channel */
    bool           sym, desc_act, lm_head;
    gptq_override *dyn;
    uint32_t       n_dyn;
    /* compressed-tensors */
    char      ct_format[32];
    ct_group *groups;
    uint32_t  n_groups;
    pattern  *ignore;
    uint32_t  n_ignore;
};

/* ==== patterns ==== */

static void emit(char **d, const char *s) {
    const size_t n = strlen(s);
    memcpy(*d, s, n);
    *d += n;
}

/* Python re syntax -> POSIX ERE, anchored at the start as re.match() is. */
static lq_status py_to_ere(const char *label, const char *src, char **out) {
    const size_t n = strlen(src);
    LQ_RETURN_IF(n > QC_MAX_PATTERN, LQ_ERR_UNSUPPORTED, "%s: regex of %zu characters is longer than %d", label, n,
                 QC_MAX_PATTERN);
    char *o = lq_malloc(n * 14 + 8);
    LQ_RETURN_IF(!o, LQ_ERR_NOMEM, "out of memory");
    char *d  = o;
    bool  in = false, first = false; /* inside [...]; at its first position */
    emit(&d, "^(");
    for (size_t i = 0; i < n; i++) {
        const char c = src[i];
        if (in) {
            if (c == '\\' && i + 1 < n) {
                const char x = src[++i];
                if (x == 'd')
                    emit(&d, "0-9");
                else if (x == 'w')
                    emit(&d, "_[:alnum:]");
                else if (x == 's')
                    emit(&d, "[:space:]");
                else if (x == ']' || x == '^' || x == '-' || (x >= 'A' && x <= 'Z') || (x >= 'a' && x <= 'z') ||
                         (x >= '0' && x <= '9'))
                    goto unsupported;
                else
                    *d++ = x; /* POSIX brackets take every other character literally */
            } else if (c == ']' && !first) {
                in    = false;
                *d++ = ']';
            } else {
                *d++ = c;
            }
            first = false;
            continue;
        }
        switch (c) {
        case '\\': {
            LQ_RETURN_IF(i + 1 >= n, (lq_free(o), LQ_ERR_FORMAT), "%s: regex '%s' ends with a backslash", label, src);
            const char x = src[++i];
            if (x == 'd')
                emit(&d, "[0-9]");
            else if (x == 'D')
                emit(&d, "[^0-9]");
            else if (x == 'w')
                emit(&d, "[_[:alnum:]]");
            else if (x == 'W')
                emit(&d, "[^_[:alnum:]]");
            else if (x == 's')
                emit(&d, "[[:space:]]");
            else if (x == 'S')
                emit(&d, "[^[:space:]]");
            else if ((x >= 'A' && x <= 'Z') || (x >= 'a' && x <= 'z') || (x >= '0' && x <= '9'))
                goto unsupported; /* \b, \A, backreferences, ... */
            else if (strchr(".[]()*+?{}|^$\\", x)) {
                *d++ = '\\';
                *d++ = x;
            } else {
                *d++ = x;
            }
            break;
        }
        case '[':
            in    = true;
            first = true;
            *d++  = '[';
            if (i + 1 < n && src[i + 1] == '^') *d++ = src[++i];
            break;
        case '(':
            if (i + 1 < n && src[i + 1] == '?') {
                if (i + 2 < n && src[i + 2] == ':') {
                    i += 2;
                } else {
                    goto unsupported;
                }
            }
            *d++ = '(';
            break;
        case '*':
        case '+':
        case '?':
        case '}':
            *d++ = c;
            if (i + 1 < n && src[i + 1] == '?') i++; /* lazy: the same set of names matches */
            break;
        default: *d++ = c; break;
        }
    }
    LQ_RETURN_IF(in, (lq_free(o), LQ_ERR_FORMAT), "%s: regex '%s' has an unterminated character class", label, src);
    emit(&d, ")");
    *d   = 0;
    *out = o;
    return LQ_OK;
unsupported:
    lq_free(o);
    LQ_RETURN_IF(1, LQ_ERR_UNSUPPORTED,
                 "%s: regex '%s' uses a construct outside the supported subset (lookaround, backreference, inline "
                 "flag or escape class)",
                 label, src);
}

static lq_status pattern_init(const char *label, pattern *p, const char *src, size_t len, bool regex) {
    memset(p, 0, sizeof *p);
    p->src = lq_malloc(len + 1);
    LQ_RETURN_IF(!p->src, LQ_ERR_NOMEM, "out of memory");
    memcpy(p->src, src, len);
    p->src[len] = 0;
    LQ_RETURN_IF(strlen(p->src) != len, LQ_ERR_FORMAT, "%s: a module pattern holds a NUL character", label);
    if (!regex) {
        p->is_class = strcmp(p->src, "Linear") == 0;
        return LQ_OK;
    }
    char *ere = NULL;
    LQ_TRY(py_to_ere(label, p->src, &ere));
    const int rc = regcomp(&p->re, ere, REG_EXTENDED | REG_NOSUB);
    lq_free(ere);
    if (rc != 0) {
        char msg[128];
        regerror(rc, &p->re, msg, sizeof msg);
        LQ_RETURN_IF(1, LQ_ERR_FORMAT, "%s: invalid regex '%s': %s", label, p->src, msg);
    }
    p->compiled = true;
    return LQ_OK;
}

static void pattern_free(pattern *p) {
    if (p->compiled) regfree(&p->re);
    lq_free(p->src);
}

static bool pattern_match_re(const pattern *p, const char *name) {
    return p->compiled && regexec(&p->re, name, 0, NULL, 0) == 0;
}

/* ==== config ==== */

void lq_quant_config_free(lq_quant_config *qc) {
    if (!qc) return;
    for (uint32_t i = 0; i < qc->n_dyn; i++) pattern_free(&qc->dyn[i].pat);
    lq_free(qc->dyn);
    for (uint32_t g = 0; g < qc->n_groups; g++) {
        for (uint32_t i = 0; i < qc->groups[g].n_targets; i++) pattern_free(&qc->groups[g].targets[i]);
        lq_free(qc->groups[g].targets);
        lq_free(qc->groups[g].name);
    }
    lq_free(qc->groups);
    for (uint32_t i = 0; i < qc->n_ignore; i++) pattern_free(&qc->ignore[i]);
    lq_free(qc->ignore);
    lq_free(qc->label);
    lq_free(qc);
}

lq_qformat lq_quant_config_format(const lq_quant_config *qc) { return qc->format; }

static bool absent(const lq_json *v) { return !v || v->type == LQ_JSON_NULL; }

static lq_status get_int(const char *label, const char *where, const lq_json *o, const char *key, int64_t *v,
                         bool required) {
    const lq_json *x = lq_json_get(o, key);
    if (absent(x)) {
        LQ_RETURN_IF(required, LQ_ERR_FORMAT, "%s: %s: \"%s\" is missing", label, where, key);
        return LQ_OK;
    }
    LQ_RETURN_IF(!lq_json_get_i64(x, v), LQ_ERR_FORMAT, "%s: %s: \"%s\" is not an integer", label, where, key);
    return LQ_OK;
}

static lq_status get_bool(const char *label, const char *where, const lq_json *o, const char *key, bool *v) {
    const lq_json *x = lq_json_get(o, key);
    if (absent(x)) return LQ_OK;
    LQ_RETURN_IF(!lq_json_get_bool(x, v), LQ_ERR_FORMAT, "%s: %s: \"%s\" is not true/false", label, where, key);
    return LQ_OK;
}

/* *v = NULL when absent */
static lq_status get_str(const char *label, const char *where, const lq_json *o, const char *key, const char **v) {
    const lq_json *x = lq_json_get(o, key);
    *v               = NULL;
    if (absent(x)) return LQ_OK;
    LQ_RETURN_IF(x->type != LQ_JSON_STRING || strlen(x->str) != x->str_len, LQ_ERR_FORMAT,
                 "%s: %s: \"%s\" is not a string", label, where, key);
    *v = x->str;
    return LQ_OK;
}

static lq_status check_bits(const char *label, const char *where, int64_t b) {
    LQ_RETURN_IF(b != 2 && b != 3 && b != 4 && b != 8, LQ_ERR_UNSUPPORTED,
                 "%s: %s: %lld-bit weights are not supported (2, 3, 4 or 8)", label, where, (long long)b);
    return LQ_OK;
}

static lq_status parse_gptq(const char *label, const lq_json *q, lq_quant_config *qc) {
    const char *where = "quantization_config";
    const char *fmt = NULL, *fmt2 = NULL;
    LQ_TRY(get_str(label, where, q, "checkpoint_format", &fmt));
    LQ_TRY(get_str(label, where, q, "format", &fmt2));
    if (!fmt) fmt = fmt2;
    bool marlin = false;
    LQ_TRY(get_bool(label, where, q, "is_marlin_format", &marlin));
    LQ_RETURN_IF(marlin, LQ_ERR_UNSUPPORTED, "%s: GPTQ checkpoint in the Marlin layout is not supported", label);
    if (!fmt || strcmp(fmt, "gptq") == 0)
        qc->format = LQ_QFMT_GPTQ;
    else if (strcmp(fmt, "gptq_v2") == 0)
        qc->format = LQ_QFMT_GPTQ_V2;
    else
        LQ_RETURN_IF(1, LQ_ERR_UNSUPPORTED, "%s: GPTQ checkpoint_format \"%s\" is not supported (gptq, gptq_v2)",
                     label, fmt);
    int64_t bits = 0, group = 0;
    const lq_json *bv = lq_json_get(q, "bits");
    LQ_RETURN_IF(bv && bv->type == LQ_JSON_STRING, LQ_ERR_UNSUPPORTED, "%s: %s: \"bits\" \"%s\" is not supported", label,
                 where, bv->str);
    LQ_TRY(get_int(label, where, q, "bits", &bits, true));
    LQ_TRY(check_bits(label, where, bits));
    LQ_TRY(get_int(label, where, q, "group_size", &group, true));
    LQ_RETURN_IF(group != -1 && group <= 0, LQ_ERR_FORMAT, "%s: %s: group_size %lld (-1 or positive)", label, where,
                 (long long)group);
    qc->bits  = (int)bits;
    qc->group = group;
    qc->sym   = true;
    LQ_TRY(get_bool(label, where, q, "sym", &qc->sym));
    LQ_TRY(get_bool(label, where, q, "desc_act", &qc->desc_act));
    LQ_TRY(get_bool(label, where, q, "lm_head", &qc->lm_head));
    const lq_json *dyn = lq_json_get(q, "dynamic");
    if (absent(dyn)) return LQ_OK;
    LQ_RETURN_IF(dyn->type != LQ_JSON_OBJECT, LQ_ERR_FORMAT, "%s: %s: \"dynamic\" is not an object", label, where);
    qc->dyn = lq_calloc(dyn->n ? dyn->n : 1, sizeof *qc->dyn);
    LQ_RETURN_IF(!qc->dyn, LQ_ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; i < dyn->n; i++) {
        const lq_json *e   = &dyn->items[i];
        gptq_override *o   = &qc->dyn[qc->n_dyn];
        const char    *key = e->key;
        size_t         kl  = e->key_len;
        bool           skip = false;
        if (kl >= 2 && (key[0] == '-' || key[0] == '+') && key[1] == ':') {
            skip = key[0] == '-';
            key += 2, kl -= 2;
        }
        qc->n_dyn++; /* counted first: pattern_free() releases a half-built entry */
        LQ_TRY(pattern_init(label, &o->pat, key, kl, true));
        o->skip     = skip;
        o->sym      = -1;
        o->desc_act = -1;
        LQ_RETURN_IF(e->type != LQ_JSON_OBJECT, LQ_ERR_FORMAT, "%s: dynamic \"%s\": the value is not an object", label,
                     e->key);
        char w2[64];
        snprintf(w2, sizeof w2, "dynamic entry %u", i);
        int64_t b = 0, g = 0;
        LQ_TRY(get_int(label, w2, e, "bits", &b, false));
        LQ_TRY(get_int(label, w2, e, "group_size", &g, false));
        if (b) LQ_TRY(check_bits(label, w2, b));
        LQ_RETURN_IF(g != 0 && g != -1 && g < 0, LQ_ERR_FORMAT, "%s: %s: group_size %lld", label, w2, (long long)g);
        o->bits  = (int)b;
        o->group = g;
        if (!absent(lq_json_get(e, "sym"))) {
            bool s = true;
            LQ_TRY(get_bool(label, w2, e, "sym", &s));
            o->sym = s;
        }
        if (!absent(lq_json_get(e, "desc_act"))) {
            bool d = false;
            LQ_TRY(get_bool(label, w2, e, "desc_act", &d));
            o->desc_act = d;
        }
    }
    return LQ_OK;
}

static lq_status parse_patterns(const char *label, const char *where, const lq_json *arr, pattern **out, uint32_t *n) {
    *out = NULL;
    *n   = 0;
    if (absent(arr)) return LQ_OK;
    LQ_RETURN_IF(arr->type != LQ_JSON_ARRAY, LQ_ERR_FORMAT, "%s: %s is not an array", label, where);
    *out = lq_calloc(arr->n ? arr->n : 1, sizeof **out);
    LQ_RETURN_IF(!*out, LQ_ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; i < arr->n; i++) {
        const lq_json *s = &arr->items[i];
        LQ_RETURN_IF(s->type != LQ_JSON_STRING, LQ_ERR_FORMAT, "%s: %s[%u] is not a string", label, where, i);
        const bool re = s->str_len >= 3 && strncmp(s->str, "re:", 3) == 0;
        (*n)++;
        LQ_TRY(pattern_init(label, &(*out)[i], re ? s->str + 3 : s->str, re ? s->str_len - 3 : s->str_len, re));
    }
    return LQ_OK;
}

static lq_status copy_name(const char *label, const char *where, const char *s, char *dst, size_t cap) {
    LQ_RETURN_IF(strlen(s) >= cap, LQ_ERR_UNSUPPORTED, "%s: %s \"%.40s\" is not a known value", label, where, s);
    memcpy(dst, s, strlen(s) + 1);
    return LQ_OK;
}

static lq_status parse_ct_group(const char *label, const lq_json *gj, ct_group *g) {
    char where[160];
    snprintf(where, sizeof where, "config group \"%.100s\"", gj->key);
    g->name = lq_strdup(gj->key);
    LQ_RETURN_IF(!g->name, LQ_ERR_NOMEM, "out of memory");
    LQ_RETURN_IF(gj->type == LQ_JSON_ARRAY, LQ_ERR_UNSUPPORTED,
                 "%s: %s: preset schemes (a list of targets) are not supported; expected a full scheme", label, where);
    LQ_RETURN_IF(gj->type != LQ_JSON_OBJECT, LQ_ERR_FORMAT, "%s: %s is not an object", label, where);
    const lq_json *targets = lq_json_get(gj, "targets");
    LQ_RETURN_IF(absent(targets), LQ_ERR_FORMAT, "%s: %s: \"targets\" is missing", label, where);
    LQ_TRY(parse_patterns(label, where, targets, &g->targets, &g->n_targets));
    const char *fmt = NULL;
    LQ_TRY(get_str(label, where, gj, "format", &fmt));
    if (fmt) LQ_TRY(copy_name(label, "format", fmt, g->format, sizeof g->format));
    const lq_json *ia = lq_json_get(gj, "input_activations");
    g->has_input_acts = !absent(ia);
    if (g->has_input_acts) {
        LQ_RETURN_IF(ia->type != LQ_JSON_OBJECT, LQ_ERR_FORMAT, "%s: %s: \"input_activations\" is not an object", label,
                     where);
        int64_t     abits = 8;
        bool        asym = true, adyn = false;
        const char *atype = NULL, *astrat = NULL;
        LQ_TRY(get_int(label, where, ia, "num_bits", &abits, false));
        LQ_TRY(get_bool(label, where, ia, "symmetric", &asym));
        LQ_TRY(get_bool(label, where, ia, "dynamic", &adyn));
        LQ_TRY(get_str(label, where, ia, "type", &atype));
        LQ_TRY(get_str(label, where, ia, "strategy", &astrat));
        g->act_static8 = abits == 8 && asym && !adyn && (!atype || !strcmp(atype, "int")) &&
                         (!astrat || !strcmp(astrat, "tensor"));
        if (!g->act_static8)
            LQ_LOG_WARN("%s: %s: input activations (%lld-bit %s %s%s) are not quantized by libquant's runner, which "
                        "runs this group weight-only (static int8 per-tensor is supported)",
                        label, where, (long long)abits, atype ? atype : "int", astrat ? astrat : "tensor",
                        adyn ? " dynamic" : "");
    }
    const lq_json *w = lq_json_get(gj, "weights");
    if (absent(w)) return LQ_OK;
    LQ_RETURN_IF(w->type != LQ_JSON_OBJECT, LQ_ERR_FORMAT, "%s: %s: \"weights\" is not an object", label, where);
    g->has_weights = true;
    int64_t bits   = 8; /* QuantizationArgs defaults */
    LQ_TRY(get_int(label, where, w, "num_bits", &bits, false));
    LQ_RETURN_IF(bits < 1 || bits > 64, LQ_ERR_FORMAT, "%s: %s: num_bits %lld", label, where, (long long)bits);
    g->bits = (int)bits;
    const char *type = NULL, *strategy = NULL;
    LQ_TRY(get_str(label, where, w, "type", &type));
    LQ_RETURN_IF(type && strcmp(type, "int") != 0 && strcmp(type, "float") != 0, LQ_ERR_FORMAT,
                 "%s: %s: weights type \"%s\" (int or float)", label, where, type);
    g->is_float = type && strcmp(type, "float") == 0;
    g->sym      = true;
    LQ_TRY(get_bool(label, where, w, "symmetric", &g->sym));
    int64_t gs = 0;
    LQ_TRY(get_int(label, where, w, "group_size", &gs, false));
    LQ_RETURN_IF(gs < -1, LQ_ERR_FORMAT, "%s: %s: group_size %lld", label, where, (long long)gs);
    LQ_TRY(get_str(label, where, w, "strategy", &strategy));
    if (!strategy) /* inferred as compressed-tensors does */
        strategy = gs > 0 ? "group" : gs == -1 ? "channel" : "tensor";
    LQ_TRY(copy_name(label, "strategy", strategy, g->strategy, sizeof g->strategy));
    g->group_size  = gs > 0 ? gs : 0;
    const lq_json *dy = lq_json_get(w, "dynamic");
    g->dynamic     = !absent(dy) && dy->type != LQ_JSON_FALSE; /* true or "local" */
    /* only informs a warning: weight_g_idx itself is what the loader applies */
    const lq_json *ao = lq_json_get(w, "actorder");
    g->actorder_group = !absent(ao) && (ao->type == LQ_JSON_TRUE ||
                                        (ao->type == LQ_JSON_STRING && (strcmp(ao->str, "group") == 0 ||
                                                                        strcmp(ao->str, "dynamic") == 0)));
    return LQ_OK;
}

static lq_status parse_ct(const char *label, const lq_json *q, lq_quant_config *qc) {
    qc->format = LQ_QFMT_CT;
    const char *fmt = NULL, *status = NULL;
    LQ_TRY(get_str(label, "quantization_config", q, "format", &fmt));
    if (fmt) LQ_TRY(copy_name(label, "format", fmt, qc->ct_format, sizeof qc->ct_format));
    LQ_TRY(get_str(label, "quantization_config", q, "quantization_status", &status));
    LQ_RETURN_IF(status && strcmp(status, "compressed") != 0 && strcmp(status, "frozen") != 0, LQ_ERR_UNSUPPORTED,
                 "%s: quantization_status \"%s\" is not supported (compressed)", label, status);
    const lq_json *groups = lq_json_get(q, "config_groups");
    LQ_RETURN_IF(absent(groups) || groups->type != LQ_JSON_OBJECT, LQ_ERR_FORMAT,
                 "%s: quantization_config: \"config_groups\" is missing or not an object", label);
    qc->groups = lq_calloc(groups->n ? groups->n : 1, sizeof *qc->groups);
    LQ_RETURN_IF(!qc->groups, LQ_ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; i < groups->n; i++) {
        qc->n_groups++;
        LQ_TRY(parse_ct_group(label, &groups->items[i], &qc->groups[i]));
    }
    return parse_patterns(label, "quantization_config.ignore", lq_json_get(q, "ignore"), &qc->ignore, &qc->n_ignore);
}

/* `q` is the quantization_config object; `default_method` for the legacy
 * quantize_config.json, which may lack quant_method */
static lq_status parse_object(const char *label, const lq_json *q, const char *default_method, lq_quant_config **out) {
    LQ_RETURN_IF(q->type != LQ_JSON_OBJECT, LQ_ERR_FORMAT, "%s: quantization_config is not an object", label);
    const char *method = NULL;
    LQ_TRY(get_str(label, "quantization_config", q, "quant_method", &method));
    if (!method) method = default_method;
    LQ_RETURN_IF(!method, LQ_ERR_FORMAT, "%s: quantization_config has no \"quant_method\"", label);
    const bool gptq = strcmp(method, "gptq") == 0, ct = strcmp(method, "compressed-tensors") == 0;
    LQ_RETURN_IF(!gptq && !ct, LQ_ERR_UNSUPPORTED,
                 "%s: quant_method \"%s\" is not supported (gptq, compressed-tensors)", label, method);
    lq_quant_config *qc = lq_calloc(1, sizeof *qc);
    LQ_RETURN_IF(!qc, LQ_ERR_NOMEM, "out of memory");
    qc->label = lq_strdup(label);
    lq_status st = qc->label ? LQ_OK : LQ_ERR_NOMEM;
    if (st == LQ_OK) st = gptq ? parse_gptq(label, q, qc) : parse_ct(label, q, qc);
    if (st != LQ_OK) {
        lq_quant_config_free(qc);
        return st;
    }
    *out = qc;
    return LQ_OK;
}

static lq_status parse_text(const char *text, size_t len, const char *label, bool whole, lq_quant_config **out) {
    *out = NULL;
    LQ_RETURN_IF(!text, LQ_ERR_INVALID_ARG, "%s: no text", label);
    lq_json_doc  *doc = NULL;
    lq_json_error err;
    const lq_status s = lq_json_parse(text, len, NULL, &doc, &err);
    LQ_RETURN_IF(s != LQ_OK, s, "%s: invalid JSON at byte %zu: %s", label, err.offset, err.msg);
    const lq_json *root = lq_json_root(doc);
    lq_status      st   = LQ_OK;
    if (root->type != LQ_JSON_OBJECT) {
        LQ_LOG_ERR("%s: not a JSON object", label);
        st = LQ_ERR_FORMAT;
    } else if (whole) {
        st = parse_object(label, root, "gptq", out);
    } else {
        const lq_json *q = lq_json_get(root, "quantization_config");
        if (!absent(q)) st = parse_object(label, q, NULL, out);
    }
    lq_json_free(doc);
    return st;
}

lq_status lq_quant_config_parse(const char *config_json, size_t len, const char *label, lq_quant_config **out) {
    LQ_RETURN_IF(!out, LQ_ERR_INVALID_ARG, "lq_quant_config_parse: no output");
    return parse_text(config_json, len, label ? label : "config.json", false, out);
}

static lq_status parse_file(const char *dir, const char *name, bool whole, lq_quant_config **out) {
    *out       = NULL;
    char *path = lq__path_join(dir, name);
    LQ_RETURN_IF(!path, LQ_ERR_NOMEM, "out of memory");
    lq_status st = LQ_OK;
    if (lq__file_exists(path)) {
        char  *text = NULL;
        size_t len  = 0;
        st          = lq__read_file(path, QC_MAX_BYTES, &text, &len);
        if (st == LQ_OK) st = parse_text(text, len, path, whole, out);
        lq_free(text);
    }
    lq_free(path);
    return st;
}

lq_status lq_quant_config_load(const lq_checkpoint *ck, lq_quant_config **out) {
    LQ_RETURN_IF(!ck || !out, LQ_ERR_INVALID_ARG, "lq_quant_config_load: bad arguments");
    *out            = NULL;
    const char *dir = lq_checkpoint_dir(ck);
    if (!dir) return LQ_OK;
    LQ_TRY(parse_file(dir, "config.json", false, out));
    if (*out) return LQ_OK;
    /* AutoGPTQ checkpoints before quantization_config moved into config.json */
    return parse_file(dir, "quantize_config.json", true, out);
}

/* ==== loading a module ==== */

static unsigned stream_get(const uint8_t *s, int b, int64_t i) {
    const uint64_t bit = (uint64_t)i * (uint64_t)b;
    const unsigned sh  = (unsigned)(bit & 7);
    unsigned       v   = s[bit >> 3];
    if (sh + (unsigned)b > 8) v |= (unsigned)s[(bit >> 3) + 1] << 8;
    return (v >> sh) & ((1u << b) - 1u);
}

static void stream_put(uint8_t *s, int b, int64_t i, unsigned code) {
    for (int k = 0; k < b; k++) {
        const uint64_t bit = (uint64_t)i * (uint64_t)b + (uint64_t)k;
        if (code >> k & 1u) s[bit >> 3] |= (uint8_t)(1u << (bit & 7));
    }
}

static uint16_t load_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t load_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static float load_scale(const uint8_t *p, lq_dtype dt) {
    if (dt == LQ_DTYPE_F16) return lq_f16_to_f32(load_u16(p));
    if (dt == LQ_DTYPE_BF16) return lq_bf16_to_f32(load_u16(p));
    const uint32_t u = load_u32(p);
    float          f;
    memcpy(&f, &u, 4);
    return f;
}

static const lq_tensor_info *find(const lq_checkpoint *ck, const char *prefix, const char *suffix) {
    char name[QC_MAX_NAME + 64];
    snprintf(name, sizeof name, "%s.%s", prefix, suffix);
    return lq_checkpoint_find(ck, name);
}

static const char *dtype_list(char *buf, size_t cap, const lq_dtype *dts, int n) {
    buf[0] = 0;
    for (int i = 0; i < n; i++) {
        const size_t l = strlen(buf);
        snprintf(buf + l, cap - l, "%s%s", i ? (i + 1 == n ? " or " : ", ") : "", lq_dtype_name(dts[i]));
    }
    return buf;
}

/* dtype in dts[], rank nd and shape [d0(, d1)]; d < 0 leaves that dim free */
static lq_status expect(const char *label, const char *prefix, const lq_tensor_info *ti, const lq_dtype *dts, int n_dts,
                        int nd, int64_t d0, int64_t d1) {
    bool ok = false;
    for (int i = 0; i < n_dts; i++) ok |= ti->dtype == dts[i];
    char buf[96];
    LQ_RETURN_IF(!ok || ti->qtype != LQ_QT_NONE, LQ_ERR_FORMAT, "%s: module '%s': tensor '%s' has dtype %s, expected %s",
                 label, prefix, ti->name, ti->qtype != LQ_QT_NONE ? lq_qtype_name(ti->qtype) : lq_dtype_name(ti->dtype),
                 dtype_list(buf, sizeof buf, dts, n_dts));
    const bool shape_ok = ti->n_dims == nd && (nd < 1 || d0 < 0 || ti->shape[0] == d0) &&
                          (nd < 2 || d1 < 0 || ti->shape[1] == d1);
    if (!shape_ok) {
        char got[96] = "[", want[64];
        for (int d = 0; d < ti->n_dims; d++) {
            const size_t l = strlen(got);
            snprintf(got + l, sizeof got - l, "%s%lld", d ? ", " : "", (long long)ti->shape[d]);
        }
        strncat(got, "]", sizeof got - strlen(got) - 1);
        if (nd == 1)
            snprintf(want, sizeof want, "[%lld]", (long long)d0);
        else
            snprintf(want, sizeof want, "[%lld, %lld]", (long long)d0, (long long)d1);
        LQ_RETURN_IF(1, LQ_ERR_FORMAT, "%s: module '%s': tensor '%s' has shape %s, expected %s", label, prefix,
                     ti->name, got, want);
    }
    return LQ_OK;
}

static const lq_tensor_info *require(const char *label, const char *prefix, const lq_checkpoint *ck,
                                     const char *suffix, lq_status *st) {
    const lq_tensor_info *ti = find(ck, prefix, suffix);
    if (!ti) {
        LQ_LOG_ERR("%s: module '%s': tensor '%s.%s' is missing", label, prefix, prefix, suffix);
        *st = LQ_ERR_FORMAT;
    }
    return ti;
}

/* the INT type with these parameters (group 0 = per channel), or NONE */
static lq_qtype int_type(int bits, int group, bool sym) {
    for (int i = 1; i < LQ_QT_COUNT; i++) {
        const lq_qtype_traits *tr = lq_qtype_traits_of((lq_qtype)i);
        if (tr->kind == LQ_QK_INT && tr->bits == bits && tr->group == group && tr->sym == sym) return (lq_qtype)i;
    }
    return LQ_QT_NONE;
}

/* the lq group size for a format group size G over `cols` (-1: per channel),
 * or -1 when lq has no such type */
static int lq_group_of(int64_t G, int64_t cols) {
    if (G <= 0) return 0;
    if (G == 32 || G == 64 || G == 128) return (int)G;
    return G == cols ? 0 : -1;
}

static size_t al64(size_t x) { return (x + 63) & ~(size_t)63; }

typedef struct {
    uint8_t *data;
    float   *scales;
    uint8_t *zeros;
    int32_t *g_idx;
    char    *name;
} owned_parts;

static lq_status alloc_owned(size_t data, size_t n_scales, size_t n_zeros, size_t n_gidx, const char *prefix,
                             owned_parts *o, void **block) {
    const size_t nl = strlen(prefix) + 8;
    size_t       total = al64(data) + al64(n_scales * 4) + al64(n_zeros) + al64(n_gidx * 4) + nl;
    uint8_t     *b     = lq_calloc(1, total);
    LQ_RETURN_IF(!b, LQ_ERR_NOMEM, "out of memory (%zu bytes)", total);
    size_t off = 0;
    o->data    = data ? b + off : NULL;
    off += al64(data);
    o->scales = n_scales ? (float *)(void *)(b + off) : NULL;
    off += al64(n_scales * 4);
    o->zeros = n_zeros ? b + off : NULL;
    off += al64(n_zeros);
    o->g_idx = n_gidx ? (int32_t *)(void *)(b + off) : NULL;
    off += al64(n_gidx * 4);
    o->name = (char *)b + off;
    snprintf(o->name, nl, "%s.weight", prefix);
    *block = b;
    return LQ_OK;
}

static lq_status load_plain(const char *label, const lq_checkpoint *ck, const char *prefix, int64_t rows,
                            int64_t cols, const char *why, lq_qtensor *out) {
    const lq_tensor_info *w = find(ck, prefix, "weight");
    LQ_RETURN_IF(!w, LQ_ERR_FORMAT, "%s: module '%s': %s, but '%s.weight' is missing", label, prefix, why, prefix);
    static const lq_dtype fl[] = {LQ_DTYPE_F32, LQ_DTYPE_F16, LQ_DTYPE_BF16};
    LQ_TRY(expect(label, prefix, w, fl, 3, 2, rows, cols));
    out->name        = w->name;
    out->qtype       = w->dtype == LQ_DTYPE_F32 ? LQ_QT_F32 : w->dtype == LQ_DTYPE_F16 ? LQ_QT_F16 : LQ_QT_BF16;
    out->n_dims      = 2;
    out->shape[0]    = rows;
    out->shape[1]    = cols;
    out->data        = w->data;
    out->scale_dtype = LQ_DTYPE_F32;
    return LQ_OK;
}

/* a g_idx as hostile input: I32 [cols], values in [0, cols/G), every group exactly G columns (act-order GPTQ's
 * floor(rank / G)); *trivial when it is k / G (the plain layout) */
static lq_status check_g_idx(const char *label, const char *prefix, const lq_tensor_info *gi, int64_t cols,
                             int64_t G, bool *trivial) {
    static const lq_dtype i32[] = {LQ_DTYPE_I32};
    LQ_TRY(expect(label, prefix, gi, i32, 1, 1, cols, 0));
    const uint8_t *p  = gi->data;
    const int64_t  ng = cols / G;
    int64_t       *cnt = lq_calloc((size_t)(ng ? ng : 1), sizeof *cnt);
    LQ_RETURN_IF(!cnt, LQ_ERR_NOMEM, "out of memory");
    *trivial = true;
    for (int64_t k = 0; k < cols; k++) {
        const int32_t g = (int32_t)load_u32(p + 4 * k);
        if (g < 0 || g >= ng) {
            lq_free(cnt);
            LQ_RETURN_IF(1, LQ_ERR_FORMAT, "%s: module '%s': g_idx[%lld] = %d is outside [0, %lld)", label, prefix,
                         (long long)k, (int)g, (long long)ng);
        }
        cnt[g]++;
        *trivial &= g == k / G;
    }
    for (int64_t g = 0; g < ng; g++)
        if (cnt[g] != G) {
            const int64_t c = cnt[g];
            lq_free(cnt);
            LQ_RETURN_IF(1, LQ_ERR_UNSUPPORTED,
                         "%s: module '%s': g_idx gives group %lld %lld columns; act-order layouts need exactly %lld",
                         label, prefix, (long long)g, (long long)c, (long long)G);
        }
    lq_free(cnt);
    return LQ_OK;
}

static void copy_g_idx(const lq_tensor_info *gi, int64_t cols, int32_t *dst) {
    const uint8_t *p = gi->data;
    for (int64_t k = 0; k < cols; k++) dst[k] = (int32_t)load_u32(p + 4 * k);
}

static const lq_dtype k_scale_dtypes[] = {LQ_DTYPE_F16, LQ_DTYPE_BF16, LQ_DTYPE_F32};

static lq_status load_gptq(const char *label, const lq_checkpoint *ck, const lq_quant_config *qc, const char *prefix,
                           int64_t rows, int64_t cols, lq_qtensor *out, void **owned) {
    int     bits = qc->bits;
    int64_t group = qc->group;
    bool    sym = qc->sym, desc_act = qc->desc_act, skip = strcmp(prefix, "lm_head") == 0 && !qc->lm_head;
    for (uint32_t i = 0; i < qc->n_dyn; i++) {
        const gptq_override *o = &qc->dyn[i];
        if (!pattern_match_re(&o->pat, prefix)) continue;
        if (o->skip) {
            skip = true;
        } else {
            if (o->bits) bits = o->bits;
            if (o->group) group = o->group;
            if (o->sym >= 0) sym = o->sym;
            if (o->desc_act >= 0) desc_act = o->desc_act;
        }
        break;
    }
    const lq_tensor_info *qw = find(ck, prefix, "qweight");
    if (!qw) return load_plain(label, ck, prefix, rows, cols, "it has no qweight", out);
    LQ_RETURN_IF(skip, LQ_ERR_FORMAT,
                 "%s: module '%s': the config leaves it unquantized (dynamic \"-:\" or lm_head false) but it has a "
                 "qweight",
                 label, prefix);
    const int64_t G  = group > 0 ? group : cols;
    const int     lg = lq_group_of(group, cols);
    LQ_RETURN_IF(cols % G != 0 || lg < 0, LQ_ERR_UNSUPPORTED,
                 "%s: module '%s': group_size %lld over %lld input features has no lq type (32, 64, 128 or -1 "
                 "dividing the row)",
                 label, prefix, (long long)group, (long long)cols);
    LQ_RETURN_IF((cols * bits) % 32 != 0 || (rows * bits) % 32 != 0, LQ_ERR_FORMAT,
                 "%s: module '%s': [%lld, %lld] at %d bits does not pack into whole 32-bit words", label, prefix,
                 (long long)rows, (long long)cols, bits);
    const int64_t  ng = cols / G, kw = cols * bits / 32, zw = rows * bits / 32;
    static const lq_dtype i32[] = {LQ_DTYPE_I32};
    lq_status      st = LQ_OK;
    LQ_TRY(expect(label, prefix, qw, i32, 1, 2, kw, rows));
    const lq_tensor_info *qz = require(label, prefix, ck, "qzeros", &st);
    const lq_tensor_info *sc = require(label, prefix, ck, "scales", &st);
    if (st != LQ_OK) return st;
    LQ_TRY(expect(label, prefix, qz, i32, 1, 2, ng, zw));
    LQ_TRY(expect(label, prefix, sc, k_scale_dtypes, 3, 2, ng, rows));
    const lq_tensor_info *gi = find(ck, prefix, "g_idx");
    bool                  gi_trivial = true;
    if (gi) LQ_TRY(check_g_idx(label, prefix, gi, cols, G, &gi_trivial));
    if (!gi_trivial && !desc_act)
        LQ_LOG_WARN("%s: module '%s': g_idx is not k / %lld but desc_act is false (vLLM ignores g_idx then); using "
                    "g_idx as transformers does",
                    label, prefix, (long long)G);

    /* zero points: v1 stores z - 1 */
    const bool     v1 = qc->format == LQ_QFMT_GPTQ;
    const unsigned mid = 1u << (bits - 1), zmax = (1u << bits) - 1u;
    bool           all_mid = true;
    const uint8_t *zd      = qz->data;
    for (int64_t g = 0; g < ng; g++)
        for (int64_t n = 0; n < rows; n++) {
            const unsigned z = stream_get(zd + (size_t)(g * zw * 4), bits, n) + (v1 ? 1u : 0u);
            LQ_RETURN_IF(z > zmax, LQ_ERR_FORMAT,
                         "%s: module '%s': qzeros[%lld] column %lld decodes to %u, outside %d bits (a v1 checkpoint "
                         "cannot hold a zero point of 0)",
                         label, prefix, (long long)g, (long long)n, z, bits);
            all_mid &= z == mid;
        }
    const bool     is_sym = sym && all_mid;
    const lq_qtype qt     = int_type(bits, lg, is_sym);
    LQ_RETURN_IF(qt == LQ_QT_NONE, LQ_ERR_UNSUPPORTED, "%s: module '%s': no lq type for %d bits, group %lld", label,
                 prefix, bits, (long long)group);
    const size_t row_bytes = (size_t)kw * 4;
    owned_parts  o;
    LQ_TRY(alloc_owned((size_t)rows * row_bytes, (size_t)(rows * ng), is_sym ? 0 : (size_t)(rows * ng),
                       gi_trivial ? 0 : (size_t)cols, prefix, &o, owned));
    if (!gi_trivial) copy_g_idx(gi, cols, o.g_idx);
    const uint8_t *wd = qw->data;
    for (int64_t w = 0; w < kw; w++)
        for (int64_t n = 0; n < rows; n++) memcpy(o.data + (size_t)n * row_bytes + 4 * (size_t)w, wd + 4 * (size_t)(w * rows + n), 4);
    const uint8_t *sd = sc->data;
    const size_t   es = lq_dtype_traits_of(sc->dtype)->bits / 8;
    for (int64_t g = 0; g < ng; g++)
        for (int64_t n = 0; n < rows; n++) o.scales[n * ng + g] = load_scale(sd + (size_t)(g * rows + n) * es, sc->dtype);
    if (!is_sym)
        for (int64_t g = 0; g < ng; g++)
            for (int64_t n = 0; n < rows; n++)
                o.zeros[n * ng + g] = (uint8_t)(stream_get(zd + (size_t)(g * zw * 4), bits, n) + (v1 ? 1u : 0u));
    out->name        = o.name;
    out->qtype       = qt;
    out->n_dims      = 2;
    out->shape[0]    = rows;
    out->shape[1]    = cols;
    out->data        = o.data;
    out->scales      = o.scales;
    out->zeros       = o.zeros;
    out->g_idx       = o.g_idx;
    out->scale_dtype = sc->dtype;
    return LQ_OK;
}

/* the config group of a module as vLLM finds it: an exact-name target, then
 * a "re:" target, then the class "Linear" (every module asked about is one) */
static const ct_group *ct_match(const lq_quant_config *qc, const char *prefix) {
    for (int pass = 0; pass < 3; pass++)
        for (uint32_t g = 0; g < qc->n_groups; g++)
            for (uint32_t i = 0; i < qc->groups[g].n_targets; i++) {
                const pattern *t = &qc->groups[g].targets[i];
                const bool     m = pass == 0   ? !t->compiled && !t->is_class && strcmp(t->src, prefix) == 0
                                   : pass == 1 ? pattern_match_re(t, prefix)
                                               : t->is_class;
                if (m) return &qc->groups[g];
            }
    return NULL;
}

static bool ct_ignored(const lq_quant_config *qc, const char *prefix) {
    for (uint32_t i = 0; i < qc->n_ignore; i++) {
        const pattern *p = &qc->ignore[i];
        if (p->is_class || pattern_match_re(p, prefix) || (!p->compiled && strcmp(p->src, prefix) == 0)) return true;
    }
    return false;
}

static lq_status load_ct_scales(const char *label, const char *prefix, const lq_checkpoint *ck, int64_t rows,
                                int64_t ng, bool per_tensor, owned_parts *o, lq_qtensor *out) {
    lq_status             st = LQ_OK;
    const lq_tensor_info *sc = require(label, prefix, ck, "weight_scale", &st);
    if (!sc) return st;
    if (per_tensor) {
        uint64_t n = 0;
        LQ_RETURN_IF(!lq_tensor_info_numel(sc, &n) || n != 1 || sc->n_dims > 2, LQ_ERR_FORMAT,
                     "%s: module '%s': tensor '%s' must hold one scale (per-tensor strategy)", label, prefix, sc->name);
        LQ_TRY(expect(label, prefix, sc, k_scale_dtypes, 3, sc->n_dims, -1, -1));
        o->scales[0] = load_scale(sc->data, sc->dtype);
    } else {
        LQ_TRY(expect(label, prefix, sc, k_scale_dtypes, 3, 2, rows, ng));
        const size_t es = lq_dtype_traits_of(sc->dtype)->bits / 8;
        for (int64_t i = 0; i < rows * ng; i++) o->scales[i] = load_scale((const uint8_t *)sc->data + (size_t)i * es, sc->dtype);
    }
    out->scale_dtype = sc->dtype;
    return LQ_OK;
}

static lq_status load_ct_int(const char *label, const lq_checkpoint *ck, const ct_group *grp, const char *fmt,
                             const char *prefix, int64_t rows, int64_t cols, lq_qtensor *out, void **owned) {
    const int bits = grp->bits;
    LQ_TRY(check_bits(label, grp->name, bits));
    int64_t G;
    if (strcmp(grp->strategy, "channel") == 0)
        G = cols;
    else if (strcmp(grp->strategy, "group") == 0 && grp->group_size > 0)
        G = grp->group_size;
    else
        LQ_RETURN_IF(1, LQ_ERR_UNSUPPORTED, "%s: module '%s': integer strategy \"%s\" is not supported (channel, group)",
                     label, prefix, grp->strategy);
    const int lg = strcmp(grp->strategy, "channel") == 0 ? 0 : lq_group_of(G, cols);
    LQ_RETURN_IF(cols % G != 0 || lg < 0, LQ_ERR_UNSUPPORTED,
                 "%s: module '%s': group size %lld over %lld input features has no lq type", label, prefix,
                 (long long)G, (long long)cols);
    const lq_qtype qt = int_type(bits, lg, grp->sym);
    LQ_RETURN_IF(qt == LQ_QT_NONE, LQ_ERR_UNSUPPORTED, "%s: module '%s': no lq type for %d bits, group %lld", label,
                 prefix, bits, (long long)G);
    const int64_t  ng = cols / G;
    const size_t   row_bytes = (size_t)lq_qtype_row_bytes(qt, cols);
    const unsigned mid = 1u << (bits - 1), zmax = (1u << bits) - 1u;
    const bool     packed = strcmp(fmt, "pack-quantized") == 0;
    LQ_RETURN_IF(!packed && strcmp(fmt, "int-quantized") != 0 && strcmp(fmt, "naive-quantized") != 0,
                 LQ_ERR_UNSUPPORTED, "%s: module '%s': format \"%s\" is not supported for integer weights", label,
                 prefix, fmt);
    static const lq_dtype i32[] = {LQ_DTYPE_I32}, i8[] = {LQ_DTYPE_I8}, ishape[] = {LQ_DTYPE_I64, LQ_DTYPE_I32};
    lq_status             st = LQ_OK;
    const lq_tensor_info *w  = require(label, prefix, ck, packed ? "weight_packed" : "weight", &st);
    if (!w) return st;
    bool borrow = false;
    if (packed) {
        LQ_TRY(expect(label, prefix, w, i32, 1, 2, rows, (int64_t)(row_bytes / 4)));
        const lq_tensor_info *ws = require(label, prefix, ck, "weight_shape", &st);
        if (!ws) return st;
        LQ_TRY(expect(label, prefix, ws, ishape, 2, 1, 2, 0));
        const uint8_t *p  = ws->data;
        const int64_t  d0 = ws->dtype == LQ_DTYPE_I64 ? (int64_t)(load_u32(p) | (uint64_t)load_u32(p + 4) << 32)
                                                      : (int32_t)load_u32(p);
        const int64_t  d1 = ws->dtype == LQ_DTYPE_I64 ? (int64_t)(load_u32(p + 8) | (uint64_t)load_u32(p + 12) << 32)
                                                      : (int32_t)load_u32(p + 4);
        LQ_RETURN_IF(d0 != rows || d1 != cols, LQ_ERR_FORMAT,
                     "%s: module '%s': weight_shape is [%lld, %lld], expected [%lld, %lld]", label, prefix,
                     (long long)d0, (long long)d1, (long long)rows, (long long)cols);
        /* borrowed when aligned and the padding bits of every row are zero */
        borrow = ((uintptr_t)w->data & 3) == 0;
        const uint64_t used = (uint64_t)cols * (uint64_t)bits;
        if (borrow && used % 32 != 0) {
            const uint32_t keep = (1u << (used % 32)) - 1u;
            for (int64_t r = 0; r < rows && borrow; r++)
                borrow = (load_u32((const uint8_t *)w->data + (size_t)r * row_bytes + row_bytes - 4) & ~keep) == 0;
        }
    } else {
        LQ_TRY(expect(label, prefix, w, i8, 1, 2, rows, cols));
    }
    const lq_tensor_info *gi = find(ck, prefix, "weight_g_idx");
    bool                  gi_trivial = true;
    if (gi) LQ_TRY(check_g_idx(label, prefix, gi, cols, G, &gi_trivial));
    if (!gi_trivial && !grp->actorder_group)
        LQ_LOG_WARN("%s: module '%s': weight_g_idx is not k / %lld but its scheme has no actorder \"group\" (vLLM "
                    "ignores it then); using weight_g_idx",
                    label, prefix, (long long)G);
    const lq_tensor_info *zp = NULL;
    if (!grp->sym) {
        zp = require(label, prefix, ck, "weight_zero_point", &st);
        if (!zp) return st;
        if (packed)
            LQ_TRY(expect(label, prefix, zp, i32, 1, 2, (rows * bits + 31) / 32, ng));
        else
            LQ_TRY(expect(label, prefix, zp, i8, 1, 2, rows, ng));
    }
    owned_parts o;
    LQ_TRY(alloc_owned(borrow ? 0 : (size_t)rows * row_bytes, (size_t)(rows * ng), grp->sym ? 0 : (size_t)(rows * ng),
                       gi_trivial ? 0 : (size_t)cols, prefix, &o, owned));
    if (!gi_trivial) copy_g_idx(gi, cols, o.g_idx);
    st = load_ct_scales(label, prefix, ck, rows, ng, false, &o, out);
    if (st == LQ_OK && packed && !borrow) {
        for (int64_t r = 0; r < rows; r++)
            for (int64_t k = 0; k < cols; k++)
                stream_put(o.data + (size_t)r * row_bytes, bits, k,
                           stream_get((const uint8_t *)w->data + (size_t)r * row_bytes, bits, k));
    } else if (st == LQ_OK && !packed) {
        const int8_t *q = w->data;
        for (int64_t r = 0; r < rows && st == LQ_OK; r++)
            for (int64_t k = 0; k < cols; k++) {
                const int u = q[r * cols + k] + (int)mid;
                if (u < 0 || u > (int)zmax) {
                    LQ_LOG_ERR("%s: module '%s': weight[%lld][%lld] = %d is outside %d-bit range", label, prefix,
                               (long long)r, (long long)k, q[r * cols + k], bits);
                    st = LQ_ERR_FORMAT;
                    break;
                }
                stream_put(o.data + (size_t)r * row_bytes, bits, k, (unsigned)u);
            }
    }
    if (st == LQ_OK && zp) {
        /* packed: the stored code zp + 2^(b-1) is z; int-quantized keeps zp as I8 */
        for (int64_t g = 0; g < ng && st == LQ_OK; g++)
            for (int64_t n = 0; n < rows; n++) {
                int z;
                if (packed) {
                    const int64_t zw = (rows * bits + 31) / 32;
                    /* column g of [zw, ng]: gather its words into the stream */
                    const int64_t  bit = n * bits;
                    uint64_t       acc = 0;
                    for (int64_t wv = bit / 32; wv <= (bit + bits - 1) / 32 && wv < zw; wv++)
                        acc |= (uint64_t)load_u32((const uint8_t *)zp->data + (size_t)(wv * ng + g) * 4)
                               << (32 * (wv - bit / 32));
                    z = (int)((acc >> (bit % 32)) & zmax);
                } else {
                    z = ((const int8_t *)zp->data)[n * ng + g] + (int)mid;
                    if (z < 0 || z > (int)zmax) {
                        LQ_LOG_ERR("%s: module '%s': weight_zero_point[%lld][%lld] is outside %d-bit range", label,
                                   prefix, (long long)n, (long long)g, bits);
                        st = LQ_ERR_FORMAT;
                        break;
                    }
                }
                o.zeros[n * ng + g] = (uint8_t)z;
            }
    }
    if (st != LQ_OK) {
        lq_free(*owned);
        *owned = NULL;
        return st;
    }
    if (grp->act_static8) { /* W8A8: the static input scale */
        const lq_tensor_info *is = require(label, prefix, ck, "input_scale", &st);
        float                 v  = 0;
        if (is && is->n_dims <= 1 && (is->n_dims == 0 || is->shape[0] == 1)) {
            if (is->dtype == LQ_DTYPE_F32) memcpy(&v, is->data, 4);
            if (is->dtype == LQ_DTYPE_F16 || is->dtype == LQ_DTYPE_BF16) {
                uint16_t h;
                memcpy(&h, is->data, 2);
                v = is->dtype == LQ_DTYPE_F16 ? lq_f16_to_f32(h) : lq_bf16_to_f32(h);
            }
        }
        if (st == LQ_OK && (!(v > 0) || !(v < INFINITY) || qt != LQ_QT_INT8_CH || !gi_trivial)) {
            LQ_LOG_ERR("%s: module '%s': static int8 activations need a positive F32/F16/BF16 input_scale of one "
                       "element and int8 per-channel symmetric weights",
                       label, prefix);
            st = LQ_ERR_FORMAT;
        }
        if (st != LQ_OK) {
            lq_free(*owned);
            *owned = NULL;
            return st;
        }
        out->in_scale = v;
    }
    out->name     = o.name;
    out->qtype    = qt;
    out->n_dims   = 2;
    out->shape[0] = rows;
    out->shape[1] = cols;
    out->data     = borrow ? w->data : o.data;
    out->scales   = o.scales;
    out->zeros    = o.zeros;
    out->g_idx    = o.g_idx;
    return LQ_OK;
}

static lq_status load_ct_fp8(const char *label, const lq_checkpoint *ck, const ct_group *grp, const char *fmt,
                             const char *prefix, int64_t rows, int64_t cols, lq_qtensor *out, void **owned) {
    LQ_RETURN_IF(grp->bits != 8 || !grp->sym, LQ_ERR_UNSUPPORTED,
                 "%s: module '%s': float weights of %d bits%s are not supported (fp8 e4m3, symmetric)", label, prefix,
                 grp->bits, grp->sym ? "" : ", asymmetric");
    LQ_RETURN_IF(strcmp(fmt, "float-quantized") != 0 && strcmp(fmt, "naive-quantized") != 0, LQ_ERR_UNSUPPORTED,
                 "%s: module '%s': format \"%s\" is not supported for fp8 weights", label, prefix, fmt);
    const bool ch = strcmp(grp->strategy, "channel") == 0, tensor = strcmp(grp->strategy, "tensor") == 0;
    LQ_RETURN_IF(!ch && !tensor, LQ_ERR_UNSUPPORTED,
                 "%s: module '%s': fp8 strategy \"%s\" is not supported (channel, tensor)", label, prefix,
                 grp->strategy);
    lq_status             st = LQ_OK;
    const lq_tensor_info *w  = require(label, prefix, ck, "weight", &st);
    if (!w) return st;
    static const lq_dtype f8[] = {LQ_DTYPE_F8_E4M3};
    LQ_TRY(expect(label, prefix, w, f8, 1, 2, rows, cols));
    owned_parts o;
    LQ_TRY(alloc_owned(0, ch ? (size_t)rows : 1, 0, 0, prefix, &o, owned));
    st = load_ct_scales(label, prefix, ck, rows, 1, tensor, &o, out);
    if (st != LQ_OK) {
        lq_free(*owned);
        *owned = NULL;
        return st;
    }
    out->name     = o.name;
    out->qtype    = ch ? LQ_QT_FP8_E4M3_CH : LQ_QT_FP8_E4M3_TENSOR;
    out->n_dims   = 2;
    out->shape[0] = rows;
    out->shape[1] = cols;
    out->data     = w->data;
    out->scales   = o.scales;
    return LQ_OK;
}

static lq_status load_ct(const char *label, const lq_checkpoint *ck, const lq_quant_config *qc, const char *prefix,
                         int64_t rows, int64_t cols, lq_qtensor *out, void **owned) {
    if (ct_ignored(qc, prefix)) return load_plain(label, ck, prefix, rows, cols, "it is in the ignore list", out);
    const ct_group *grp = ct_match(qc, prefix);
    if (!grp) return load_plain(label, ck, prefix, rows, cols, "no config group targets it", out);
    if (!grp->has_weights) return load_plain(label, ck, prefix, rows, cols, "its config group quantizes no weights", out);
    const char *fmt = grp->format[0] ? grp->format : qc->ct_format;
    if (!fmt[0] || strcmp(fmt, "mixed-precision") == 0)
        fmt = grp->is_float ? "float-quantized" : grp->has_input_acts ? "int-quantized" : "pack-quantized";
    if (strcmp(fmt, "dense") == 0) return load_plain(label, ck, prefix, rows, cols, "the format is dense", out);
    LQ_RETURN_IF(grp->dynamic, LQ_ERR_UNSUPPORTED, "%s: module '%s': dynamic weight quantization is not supported",
                 label, prefix);
    return grp->is_float ? load_ct_fp8(label, ck, grp, fmt, prefix, rows, cols, out, owned)
                         : load_ct_int(label, ck, grp, fmt, prefix, rows, cols, out, owned);
}

lq_status lq_qformat_load(const lq_checkpoint *ck, const lq_quant_config *qc, const char *prefix, int64_t rows,
                          int64_t cols, lq_qtensor *out, void **owned) {
    LQ_RETURN_IF(!ck || !prefix || !out || !owned, LQ_ERR_INVALID_ARG, "lq_qformat_load: bad arguments");
    *owned = NULL;
    memset(out, 0, sizeof *out);
    LQ_RETURN_IF(rows <= 0 || cols <= 0 || strlen(prefix) > QC_MAX_NAME, LQ_ERR_INVALID_ARG,
                 "lq_qformat_load: module '%.64s' [%lld, %lld]: bad arguments", prefix, (long long)rows,
                 (long long)cols);
    const char *label = lq_checkpoint_dir(ck) ? lq_checkpoint_dir(ck) : "checkpoint";
    if (!qc) return load_plain(label, ck, prefix, rows, cols, "the checkpoint has no quantization_config", out);
    return qc->format == LQ_QFMT_CT ? load_ct(label, ck, qc, prefix, rows, cols, out, owned)
                                    : load_gptq(label, ck, qc, prefix, rows, cols, out, owned);
}
