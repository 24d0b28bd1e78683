/* qformat_write.c : GPTQ (v1 and v2) and compressed-tensors writers.
 *
 * The writers take lq_qtensor records in the lq layouts (lq_qtypes.h) and
 * emit the tensors of each format through lq_safetensors_write_dir, produced
 * on the fly by fill callbacks (no whole-model copies), plus config.json
 * (the source text with "quantization_config" added or replaced, every
 * other key kept in order) and, for GPTQ, quantize_config.json.
 *
 * GPTQ (AutoGPTQ qlinear_cuda_old pack(), GPTQModel): per Linear W [N, K],
 *   qweight I32 [K*b/32, N]  column n = the dense LSB-first stream of row n's
 *                            K codes, i.e. the lq row n seen as 32-bit words,
 *                            transposed (3-bit values straddle words, as in
 *                            AutoGPTQ's 3-bit packer);
 *   qzeros  I32 [G, N*b/32]  row g = the stream of the N zero points of group
 *                            g; v1 ("gptq") stores (z - 1) & (2^b - 1),
 *                            v2 ("gptq_v2") stores z;
 *   scales  F16 [G, N]; g_idx I32 [K] = k / group, or the act-order g_idx
 *                            given (codes stay in the original column order,
 *                            scales/qzeros row g = group g; desc_act true).
 * compressed-tensors (pack_quantized/helpers.py pack_to_int32, dense since
 *   vllm-project/compressed-tensors#715): weight_packed I32 [N, ceil(K*b/32)]
 *   is exactly the lq rows; weight_scale [N, K/G] ([N, 1] per channel) in the
 *   tensor's scale dtype; weight_shape I64 [2]; weight_zero_point I32
 *   [ceil(N*b/32), K/G] for asymmetric types (packed along dim 0);
 *   weight_g_idx I32 [K] for every module of a scheme written with actorder
 *   "group" (only when p->ct_actorder_group asks for it: compressed-tensors
 *   0.20 removed that mode and refuses such configs). FP8:
 *   `weight` F8_E4M3 + weight_scale [N, 1] or [1] (float-quantized).
 * Everything is validated before the first byte is written. */
#include "formats_internal.h"
#include "lq_qformats.h"

#include <stdlib.h>
#include <string.h>

/* ==== names and capabilities ==== */

const char *lq_qformat_name(lq_qformat f) {
    switch (f) {
    case LQ_QFMT_GPTQ: return "gptq";
    case LQ_QFMT_GPTQ_V2: return "gptq_v2";
    case LQ_QFMT_CT: return "compressed-tensors";
    }
    return "?";
}

static bool is_gptq(lq_qformat f) { return f == LQ_QFMT_GPTQ || f == LQ_QFMT_GPTQ_V2; }

bool lq_qformat_supports(lq_qformat f, lq_qtype t, int64_t rows, int64_t cols, const char **why) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(t);
    const char            *w  = NULL;
    if (f != LQ_QFMT_GPTQ && f != LQ_QFMT_GPTQ_V2 && f != LQ_QFMT_CT)
        w = "unknown quantized checkpoint format";
    else if (!tr || tr->kind == LQ_QK_NONE)
        w = "not a storage type";
    else if (rows <= 0 || cols <= 0)
        w = "the matrix is empty";
    else if (tr->kind == LQ_QK_GGML)
        w = "GGML block types are stored only in GGUF files";
    else if (tr->kind == LQ_QK_KEEP)
        w = NULL;
    else if (!lq_qtype_supports(t, cols, &w))
        ; /* w set by the table */
    else if (is_gptq(f) && tr->kind == LQ_QK_FP8)
        w = "GPTQ checkpoints store integer weights only (use compressed-tensors for fp8)";
    else if (is_gptq(f) && (cols * tr->bits) % 32 != 0)
        w = "GPTQ packs the input dimension into 32-bit words: cols * bits must be a multiple of 32";
    else if (is_gptq(f) && (rows * tr->bits) % 32 != 0)
        w = "GPTQ packs zero points along the output dimension: rows * bits must be a multiple of 32";
    if (why) *why = w;
    return w == NULL;
}

lq_qformat_write_params lq_qformat_write_default_params(void) {
    lq_qformat_write_params p;
    memset(&p, 0, sizeof p);
    p.format      = LQ_QFMT_GPTQ;
    p.model_dtype = LQ_DTYPE_F16;
    return p;
}

/* ==== bit streams ==== */

typedef unsigned (*code_fn)(const void *ctx, int64_t i);

/* word w of the dense LSB-first stream of n codes of b bits each */
static uint32_t stream_word(int b, int64_t n, int64_t w, code_fn code, const void *ctx) {
    const int64_t lo    = 32 * w;
    const int64_t first = lo / b;
    int64_t       last  = (lo + 32 + b - 1) / b; /* exclusive */
    if (last > n) last = n;
    uint64_t acc = 0;
    for (int64_t i = first; i < last; i++) {
        const int64_t  pos = i * b - lo;
        const uint64_t c   = code(ctx, i);
        acc |= pos >= 0 ? c << pos : c >> -pos;
    }
    return (uint32_t)acc;
}

static uint32_t load_u32le(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ==== tensor producers (fill callbacks) ==== */

typedef enum {
    JOB_GPTQ_QWEIGHT, /* I32 [K*b/32, N]                   */
    JOB_GPTQ_QZEROS,  /* I32 [G, N*b/32]                   */
    JOB_GPTQ_SCALES,  /* F16 [G, N]                        */
    JOB_GPTQ_GIDX,    /* I32 [K]                           */
    JOB_CT_SCALES,    /* scale dtype [N, G] or [1]         */
    JOB_CT_ZEROS,     /* I32 [ceil(N*b/32), G]             */
    JOB_CT_I8,        /* I8 [N, K] = code - 128 (int-quantized) */
    JOB_CT_INSCALE    /* scale dtype [1]: input_scale       */
} job_kind;

typedef struct {
    job_kind          kind;
    const lq_qtensor *t;
    int               bits;
    int64_t           rows, cols, n_groups, group;
    uint64_t          row_bytes;
    int64_t           n_words; /* zero-point words per group (GPTQ) or per column (CT) */
    bool              v1;      /* GPTQ v1: zero points stored minus one                 */
    bool              has_z;   /* asymmetric: zero points from t->zeros                 */
    lq_dtype          sdt;     /* CT scales dtype                                       */
    unsigned          esize;   /* bytes per element                                     */
    int64_t           g;       /* stream context: the group being packed                */
} job;

static unsigned zero_of(const job *j, int64_t r, int64_t g) {
    return j->has_z ? j->t->zeros[r * j->n_groups + g] : 1u << (j->bits - 1);
}

typedef struct {
    const job *j;
    int64_t    g;
} zctx;

static unsigned gptq_zero_code(const void *ctx, int64_t n) {
    const zctx *c = ctx;
    const unsigned z = zero_of(c->j, n, c->g);
    return c->j->v1 ? (z - 1u) & ((1u << c->j->bits) - 1u) : z;
}

static unsigned ct_zero_code(const void *ctx, int64_t n) {
    const zctx *c = ctx;
    return zero_of(c->j, n, c->g);
}

static uint64_t scale_bits(float s, lq_dtype dt) {
    if (dt == LQ_DTYPE_F16) return lq_f32_to_f16(s);
    if (dt == LQ_DTYPE_BF16) return lq_f32_to_bf16(s);
    uint32_t u;
    memcpy(&u, &s, 4);
    return u;
}

static uint64_t job_elem(const job *j, uint64_t idx) {
    switch (j->kind) {
    case JOB_GPTQ_QWEIGHT: {
        const uint64_t w = idx / (uint64_t)j->rows, n = idx % (uint64_t)j->rows;
        return load_u32le((const uint8_t *)j->t->data + n * j->row_bytes + 4 * w);
    }
    case JOB_GPTQ_QZEROS: {
        const zctx c = {j, (int64_t)(idx / (uint64_t)j->n_words)};
        return stream_word(j->bits, j->rows, (int64_t)(idx % (uint64_t)j->n_words), gptq_zero_code, &c);
    }
    case JOB_GPTQ_SCALES: {
        const uint64_t g = idx / (uint64_t)j->rows, n = idx % (uint64_t)j->rows;
        return lq_f32_to_f16(j->t->scales[n * (uint64_t)j->n_groups + g]);
    }
    case JOB_GPTQ_GIDX:
        return j->t->g_idx ? (uint32_t)j->t->g_idx[idx] : (uint32_t)(int32_t)((int64_t)idx / j->group);
    case JOB_CT_SCALES: return scale_bits(j->t->scales[idx], j->sdt);
    case JOB_CT_I8: {
        const uint64_t r = idx / (uint64_t)j->cols, k = idx % (uint64_t)j->cols;
        return (uint8_t)(((const uint8_t *)j->t->data)[r * j->row_bytes + k] ^ 0x80u); /* u - 128 as int8 */
    }
    case JOB_CT_INSCALE: return scale_bits(j->t->in_scale, j->sdt);
    case JOB_CT_ZEROS: {
        const zctx c = {j, (int64_t)(idx % (uint64_t)j->n_groups)};
        return stream_word(j->bits, j->rows, (int64_t)(idx / (uint64_t)j->n_groups), ct_zero_code, &c);
    }
    }
    return 0;
}

/* elements are produced whole and their little-endian bytes clipped to the
 * requested range, so any (offset, nbytes) split works */
static lq_status job_fill(void *dst, uint64_t off, uint64_t nbytes, void *user) {
    const job     *j   = user;
    const uint64_t es  = j->esize, end = off + nbytes;
    uint8_t       *d   = dst;
    for (uint64_t e = off / es; e * es < end; e++) {
        const uint64_t v = job_elem(j, e);
        for (uint64_t k = 0; k < es; k++) {
            const uint64_t at = e * es + k;
            if (at >= off && at < end) d[at - off] = (uint8_t)(v >> (8 * k));
        }
    }
    return LQ_OK;
}

/* ==== the model's modules ==== */

/* a 2-D ".weight" that belongs to a Linear layer (not an embedding) */
static bool is_linear_name(const char *name) {
    static const char *const emb[] = {"embed_tokens", "wte", "wpe", "word_embeddings", "embed_positions",
                                      "position_embeddings", "tok_embeddings", "embeddings", "embed_in"};
    const size_t n = strlen(name);
    if (n <= 7 || strcmp(name + n - 7, ".weight") != 0) return false;
    const char *end = name + n - 7, *leaf = end;
    while (leaf > name && leaf[-1] != '.') leaf--;
    for (size_t i = 0; i < sizeof emb / sizeof emb[0]; i++)
        if ((size_t)(end - leaf) == strlen(emb[i]) && strncmp(leaf, emb[i], (size_t)(end - leaf)) == 0) return false;
    return true;
}

static bool is_quant_kind(lq_qkind k) { return k == LQ_QK_INT || k == LQ_QK_FP8; }

/* module name = weight name minus ".weight" (is_linear_name checked the suffix) */
static char *module_name(const char *weight) {
    const size_t n = strlen(weight) - 7;
    char        *m = lq_malloc(n + 1);
    if (m) {
        memcpy(m, weight, n);
        m[n] = 0;
    }
    return m;
}

/* "re"-safe exact pattern: ^name$ with every metacharacter escaped */
static char *exact_regex(const char *prefix, const char *name) {
    const size_t lp = strlen(prefix), n = strlen(name);
    char        *r  = lq_malloc(lp + 2 * n + 3);
    if (!r) return NULL;
    char *o = r;
    memcpy(o, prefix, lp);
    o += lp;
    *o++ = '^';
    for (const char *s = name; *s; s++) {
        if (strchr(".^$*+?()[]{}|\\", *s)) *o++ = '\\';
        *o++ = *s;
    }
    *o++ = '$';
    *o   = 0;
    return r;
}

static bool scale_exact(float s, lq_dtype dt) {
    const float back = dt == LQ_DTYPE_F16    ? lq_f16_to_f32(lq_f32_to_f16(s))
                       : dt == LQ_DTYPE_BF16 ? lq_bf16_to_f32(lq_f32_to_bf16(s))
                                             : s;
    return memcmp(&back, &s, 4) == 0 && s == s && s - s == 0.f; /* finite, same bits */
}

/* a g_idx that is not k / G (act-order) */
static bool act_ordered(const lq_qtensor *t) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(t->qtype);
    if (!t->g_idx || tr->kind != LQ_QK_INT) return false;
    const int64_t cols = t->shape[1], G = tr->group > 0 ? tr->group : cols;
    for (int64_t k = 0; k < cols; k++)
        if (t->g_idx[k] != k / G) return true;
    return false;
}

static bool any_act_ordered(const lq_qtensor *t, int64_t n, lq_qtype only) {
    for (int64_t i = 0; i < n; i++)
        if ((only == LQ_QT_NONE || t[i].qtype == only) && act_ordered(&t[i])) return true;
    return false;
}

/* Validates one tensor against the format before anything is written. */
static lq_status check_tensor(const char *dir, const lq_qtensor *t, lq_qformat f, bool ct_group) {
    LQ_RETURN_IF(!t->name || !t->name[0], LQ_ERR_INVALID_ARG, "%s: a tensor has no name", dir);
    const lq_qtype_traits *tr = lq_qtype_traits_of(t->qtype);
    LQ_RETURN_IF(!tr || tr->kind == LQ_QK_NONE, LQ_ERR_INVALID_ARG, "%s: tensor '%s': invalid qtype", dir, t->name);
    LQ_RETURN_IF(t->n_dims < 0 || t->n_dims > LQ_MAX_DIMS, LQ_ERR_SHAPE, "%s: tensor '%s': bad rank %d", dir, t->name,
                 (int)t->n_dims);
    LQ_RETURN_IF(!t->data, LQ_ERR_INVALID_ARG, "%s: tensor '%s': no data", dir, t->name);
    LQ_RETURN_IF(t->g_idx && tr->kind != LQ_QK_INT, LQ_ERR_INVALID_ARG,
                 "%s: tensor '%s': a g_idx on a %s tensor (only integer types have groups)", dir, t->name, tr->name);
    if (tr->kind == LQ_QK_KEEP) return LQ_OK;
    LQ_RETURN_IF(tr->kind == LQ_QK_GGML, LQ_ERR_UNSUPPORTED, "%s: tensor '%s': %s is a GGUF-only block type (%s)",
                 dir, t->name, tr->name, lq_qformat_name(f));
    LQ_RETURN_IF(t->n_dims != 2 || !is_linear_name(t->name), LQ_ERR_INVALID_ARG,
                 "%s: tensor '%s': only 2-D Linear \".weight\" matrices can be quantized", dir, t->name);
    const int64_t rows = t->shape[0], cols = t->shape[1];
    const char   *why  = NULL;
    LQ_RETURN_IF(!lq_qformat_supports(f, t->qtype, rows, cols, &why), LQ_ERR_UNSUPPORTED,
                 "%s: tensor '%s' [%lld, %lld] as %s cannot be stored in %s: %s", dir, t->name, (long long)rows,
                 (long long)cols, tr->name, lq_qformat_name(f), why);
    LQ_RETURN_IF(t->scale_dtype != LQ_DTYPE_F16 && t->scale_dtype != LQ_DTYPE_BF16 && t->scale_dtype != LQ_DTYPE_F32,
                 LQ_ERR_INVALID_ARG, "%s: tensor '%s': scale dtype %s (F16, BF16 or F32)", dir, t->name,
                 lq_dtype_name(t->scale_dtype));
    LQ_RETURN_IF(!t->scales, LQ_ERR_INVALID_ARG, "%s: tensor '%s': no scales", dir, t->name);
    if (t->in_scale != 0) { /* W8A8: static int8 activations */
        LQ_RETURN_IF(is_gptq(f), LQ_ERR_UNSUPPORTED,
                     "%s: tensor '%s' has a static activation scale (W8A8), which the GPTQ format cannot hold; use "
                     "compressed-tensors", dir, t->name);
        LQ_RETURN_IF(t->qtype != LQ_QT_INT8_CH || t->g_idx, LQ_ERR_INVALID_ARG,
                     "%s: tensor '%s': W8A8 needs int8_ch weights without g_idx (got %s)", dir, t->name, tr->name);
        LQ_RETURN_IF(!(t->in_scale > 0) || !scale_exact(t->in_scale, t->scale_dtype),
                     LQ_ERR_INVALID_ARG, "%s: tensor '%s': input scale %g is not a positive %s value", dir, t->name,
                     (double)t->in_scale, lq_dtype_name(t->scale_dtype));
    }
    const bool has_z = lq_qtype_has_zeros(t->qtype);
    LQ_RETURN_IF(has_z && !t->zeros, LQ_ERR_INVALID_ARG, "%s: tensor '%s': %s needs zero points", dir, t->name,
                 tr->name);
    if (t->g_idx) { /* act-order GPTQ's floor(rank / G): values in range, every group exactly G columns */
        const int64_t G = tr->group > 0 ? tr->group : cols, ng = lq_qtype_n_groups(t->qtype, cols);
        int64_t      *cnt = lq_calloc((size_t)ng, sizeof *cnt);
        LQ_RETURN_IF(!cnt, LQ_ERR_NOMEM, "out of memory");
        lq_status st = LQ_OK;
        for (int64_t k = 0; k < cols && st == LQ_OK; k++) {
            if (t->g_idx[k] < 0 || t->g_idx[k] >= ng) {
                LQ_LOG_ERR("%s: tensor '%s': g_idx[%lld] = %d is outside [0, %lld)", dir, t->name, (long long)k,
                           (int)t->g_idx[k], (long long)ng);
                st = LQ_ERR_INVALID_ARG;
            } else {
                cnt[t->g_idx[k]]++;
            }
        }
        for (int64_t g = 0; g < ng && st == LQ_OK; g++)
            if (cnt[g] != G) {
                LQ_LOG_ERR("%s: tensor '%s': g_idx gives group %lld %lld columns, not %lld", dir, t->name,
                           (long long)g, (long long)cnt[g], (long long)G);
                st = LQ_ERR_INVALID_ARG;
            }
        lq_free(cnt);
        LQ_TRY(st);
    }
    LQ_RETURN_IF(f == LQ_QFMT_CT && act_ordered(t) && !ct_group, LQ_ERR_UNSUPPORTED,
                 "%s: tensor '%s' has an act-order g_idx: compressed-tensors removed actorder \"group\" (0.20 refuses "
                 "it); quantize with static groups (act-order with g_idx = k / G), write GPTQ, or ask for actorder "
                 "\"group\" explicitly (older vLLM / compressed-tensors)",
                 dir, t->name);
    /* GPTQ scales are F16 whatever the source dtype: exact conversions only */
    const lq_dtype sdt = is_gptq(f) ? LQ_DTYPE_F16 : t->scale_dtype;
    const int64_t  ns  = lq_qtype_n_scales(t->qtype, rows, cols);
    for (int64_t i = 0; i < ns; i++)
        LQ_RETURN_IF(!scale_exact(t->scales[i], sdt), LQ_ERR_UNSUPPORTED,
                     "%s: tensor '%s': scale %lld (%g) is not exactly representable as %s%s", dir, t->name,
                     (long long)i, (double)t->scales[i], lq_dtype_name(sdt),
                     is_gptq(f) ? " (GPTQ stores F16 scales; use compressed-tensors for other scale dtypes)" : "");
    if (has_z) {
        const int64_t  nz   = rows * lq_qtype_n_groups(t->qtype, cols);
        const unsigned zmax = (1u << tr->bits) - 1u;
        for (int64_t i = 0; i < nz; i++) {
            LQ_RETURN_IF(t->zeros[i] > zmax, LQ_ERR_INVALID_ARG, "%s: tensor '%s': zero point %u at %lld exceeds %u",
                         dir, t->name, t->zeros[i], (long long)i, zmax);
            LQ_RETURN_IF(f == LQ_QFMT_GPTQ && t->zeros[i] == 0, LQ_ERR_UNSUPPORTED,
                         "%s: tensor '%s': an asymmetric zero point of 0 (group %lld of row %lld) cannot be stored in "
                         "GPTQ v1 (it stores z - 1); write gptq_v2",
                         dir, t->name, (long long)(i % lq_qtype_n_groups(t->qtype, cols)),
                         (long long)(i / lq_qtype_n_groups(t->qtype, cols)));
        }
    }
    return LQ_OK;
}

/* ==== the write plan ==== */

typedef struct {
    lq_qtype qt;
    bool     a8; /* W8A8: static int8 input activations */
    int64_t  count, first;
} scheme;

typedef struct {
    lq_st_entry *e;
    job         *jobs;
    char       **names;   /* owned entry names */
    int64_t     *shapes;  /* CT weight_shape payloads, 2 per tensor */
    int64_t      n_e, n_jobs, n_names, n_shapes;
    uint64_t     bytes_out, bytes_dense;
} plan;

static void plan_free(plan *p) {
    for (int64_t i = 0; i < p->n_names; i++) lq_free(p->names[i]);
    lq_free(p->names);
    lq_free(p->e);
    lq_free(p->jobs);
    lq_free(p->shapes);
}

static lq_status add_entry(plan *p, const char *module, const char *suffix, lq_dtype dt, int32_t nd, int64_t d0,
                           int64_t d1, const void *data, job *jb) {
    const size_t lm = strlen(module), ls = strlen(suffix);
    char        *nm = lq_malloc(lm + ls + 2);
    LQ_RETURN_IF(!nm, LQ_ERR_NOMEM, "out of memory");
    memcpy(nm, module, lm);
    nm[lm] = '.';
    memcpy(nm + lm + 1, suffix, ls + 1);
    p->names[p->n_names++] = nm;
    lq_st_entry *e         = &p->e[p->n_e++];
    memset(e, 0, sizeof *e);
    e->name     = nm;
    e->dtype    = dt;
    e->n_dims   = nd;
    e->shape[0] = d0;
    e->shape[1] = d1;
    e->data     = data;
    if (jb) {
        e->fill      = job_fill;
        e->fill_user = jb;
    }
    uint64_t n = (uint64_t)d0 * (uint64_t)(nd > 1 ? d1 : 1), nb = 0;
    lq_dtype_nbytes(dt, n, &nb);
    p->bytes_out += nb;
    return LQ_OK;
}

static job *new_job(plan *p, job_kind k, const lq_qtensor *t, unsigned esize) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(t->qtype);
    job                   *j  = &p->jobs[p->n_jobs++];
    memset(j, 0, sizeof *j);
    j->kind      = k;
    j->t         = t;
    j->bits      = tr->bits;
    j->rows      = t->shape[0];
    j->cols      = t->shape[1];
    j->n_groups  = lq_qtype_n_groups(t->qtype, j->cols);
    j->group     = tr->group > 0 ? tr->group : j->cols;
    j->row_bytes = lq_qtype_row_bytes(t->qtype, j->cols);
    j->sdt       = t->scale_dtype;
    j->esize     = esize;
    j->has_z     = lq_qtype_has_zeros(t->qtype);
    return j;
}

static lq_status plan_tensor(plan *p, const lq_qtensor *t, lq_qformat f, lq_dtype model_dtype, bool ct_gidx) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(t->qtype);
    const unsigned         mb = lq_dtype_traits_of(model_dtype)->bits;
    if (tr->kind == LQ_QK_KEEP) {
        lq_st_entry *e = &p->e[p->n_e++];
        memset(e, 0, sizeof *e);
        e->name   = t->name;
        e->dtype  = tr->dtype;
        e->n_dims = t->n_dims;
        memcpy(e->shape, t->shape, sizeof e->shape);
        e->data  = t->data;
        uint64_t n = 1, nb = 0;
        for (int d = 0; d < t->n_dims; d++) n *= (uint64_t)t->shape[d];
        lq_dtype_nbytes(tr->dtype, n, &nb);
        p->bytes_out += nb;
        p->bytes_dense += n * mb / 8;
        return LQ_OK;
    }
    const int64_t rows = t->shape[0], cols = t->shape[1], ng = lq_qtype_n_groups(t->qtype, cols);
    const int     b    = tr->bits;
    p->bytes_dense += (uint64_t)rows * (uint64_t)cols * mb / 8;
    char *module = module_name(t->name);
    LQ_RETURN_IF(!module, LQ_ERR_NOMEM, "out of memory");
    p->names[p->n_names++] = module;
    if (is_gptq(f)) {
        job *jw = new_job(p, JOB_GPTQ_QWEIGHT, t, 4);
        LQ_TRY(add_entry(p, module, "qweight", LQ_DTYPE_I32, 2, cols * b / 32, rows, NULL, jw));
        job *jz     = new_job(p, JOB_GPTQ_QZEROS, t, 4);
        jz->v1      = f == LQ_QFMT_GPTQ;
        jz->n_words = rows * b / 32;
        LQ_TRY(add_entry(p, module, "qzeros", LQ_DTYPE_I32, 2, ng, jz->n_words, NULL, jz));
        LQ_TRY(add_entry(p, module, "scales", LQ_DTYPE_F16, 2, ng, rows, NULL, new_job(p, JOB_GPTQ_SCALES, t, 2)));
        LQ_TRY(add_entry(p, module, "g_idx", LQ_DTYPE_I32, 1, cols, 0, NULL, new_job(p, JOB_GPTQ_GIDX, t, 4)));
        return LQ_OK;
    }
    const unsigned ses = lq_dtype_traits_of(t->scale_dtype)->bits / 8;
    if (tr->kind == LQ_QK_FP8) {
        LQ_TRY(add_entry(p, module, "weight", LQ_DTYPE_F8_E4M3, 2, rows, cols, t->data, NULL));
        job *js = new_job(p, JOB_CT_SCALES, t, ses);
        if (tr->group < 0)
            LQ_TRY(add_entry(p, module, "weight_scale", t->scale_dtype, 1, 1, 0, NULL, js));
        else
            LQ_TRY(add_entry(p, module, "weight_scale", t->scale_dtype, 2, rows, 1, NULL, js));
        return LQ_OK;
    }
    if (t->in_scale > 0) { /* int-quantized: I8 weight, per-channel scale, static per-tensor input scale */
        job *jw = new_job(p, JOB_CT_I8, t, 1);
        LQ_TRY(add_entry(p, module, "weight", LQ_DTYPE_I8, 2, rows, cols, NULL, jw));
        LQ_TRY(add_entry(p, module, "weight_scale", t->scale_dtype, 2, rows, 1, NULL, new_job(p, JOB_CT_SCALES, t, ses)));
        LQ_TRY(add_entry(p, module, "input_scale", t->scale_dtype, 1, 1, 0, NULL, new_job(p, JOB_CT_INSCALE, t, ses)));
        return LQ_OK;
    }
    /* pack-quantized: the lq rows are weight_packed as they are */
    const int64_t words = (int64_t)(lq_qtype_row_bytes(t->qtype, cols) / 4);
    LQ_TRY(add_entry(p, module, "weight_packed", LQ_DTYPE_I32, 2, rows, words, t->data, NULL));
    LQ_TRY(add_entry(p, module, "weight_scale", t->scale_dtype, 2, rows, ng, NULL, new_job(p, JOB_CT_SCALES, t, ses)));
    int64_t *shp = &p->shapes[2 * p->n_shapes++];
    shp[0]       = rows;
    shp[1]       = cols;
    LQ_TRY(add_entry(p, module, "weight_shape", LQ_DTYPE_I64, 1, 2, 0, shp, NULL));
    if (ct_gidx) /* the scheme has actorder "group": every module of it carries weight_g_idx */
        LQ_TRY(add_entry(p, module, "weight_g_idx", LQ_DTYPE_I32, 1, cols, 0, NULL, new_job(p, JOB_GPTQ_GIDX, t, 4)));
    if (lq_qtype_has_zeros(t->qtype)) {
        /* compressed-tensors keeps a signed zero point zp in [-2^(b-1), 2^(b-1))
         * and pack_to_int32 stores zp + 2^(b-1); with q = u - 2^(b-1),
         * w = s (q - zp) = s (u - (zp + 2^(b-1))), so the stored code is our z. */
        job *jz     = new_job(p, JOB_CT_ZEROS, t, 4);
        jz->n_words = (rows * b + 31) / 32;
        LQ_TRY(add_entry(p, module, "weight_zero_point", LQ_DTYPE_I32, 2, jz->n_words, ng, NULL, jz));
    }
    return LQ_OK;
}

/* ==== quantization_config ==== */

static int cmp_scheme(const void *a, const void *b) {
    const scheme *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return x->first < y->first ? -1 : x->first > y->first;
}

static int64_t group_size_of(lq_qtype q) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(q);
    return tr->group > 0 ? tr->group : -1;
}

static const char *version_tag(char *buf, size_t n) {
    snprintf(buf, n, "libquant:%s", lq_version());
    return buf;
}

/* desc_act: vLLM drops g_idx when desc_act is false (and GPTQModel picks its kernels by it), so it is true as soon
 * as one module is act-ordered; a module with g_idx = k / G reads the same either way. When the modules disagree,
 * the grouped ones without act-order get a "+:" override {"desc_act": false} in `dynamic` (GPTQModel's make_quant
 * and vLLM's override_config read it), so that the loaders keep their plain kernels for them; a loader that ignores
 * `dynamic` still reads every module correctly with the global true. Per-channel modules need no override (their
 * g_idx is all 0; vLLM turns desc_act off for group_size -1 itself). */
static bool desc_act_off(const lq_qtensor *t, bool desc) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(t->qtype);
    return desc && tr->kind == LQ_QK_INT && tr->group > 0 && !act_ordered(t);
}

static void gptq_config(lq_json_writer *w, const lq_qtensor *t, int64_t n, lq_qformat f, const scheme *maj) {
    const lq_qtype_traits *mt = lq_qtype_traits_of(maj->qt);
    const bool             desc = any_act_ordered(t, n, LQ_QT_NONE);
    bool                   lm_head_q = false;
    int64_t                n_dyn     = 0;
    for (int64_t i = 0; i < n; i++) {
        const lq_qkind k = lq_qtype_traits_of(t[i].qtype)->kind;
        if (strcmp(t[i].name, "lm_head.weight") == 0 && is_quant_kind(k)) lm_head_q = true;
        if ((k == LQ_QK_KEEP && t[i].n_dims == 2 && is_linear_name(t[i].name) &&
             strcmp(t[i].name, "lm_head.weight") != 0) ||
            (is_quant_kind(k) && (t[i].qtype != maj->qt || desc_act_off(&t[i], desc))))
            n_dyn++;
    }
    lq_json_obj_begin(w);
    lq_json_key(w, "bits");
    lq_json_i64(w, mt->bits);
    lq_json_key(w, "group_size");
    lq_json_i64(w, group_size_of(maj->qt));
    lq_json_key(w, "desc_act");
    lq_json_bool(w, desc);
    lq_json_key(w, "sym");
    lq_json_bool(w, mt->sym);
    lq_json_key(w, "damp_percent");
    lq_json_f64(w, 0.01);
    lq_json_key(w, "true_sequential");
    lq_json_bool(w, true);
    lq_json_key(w, "static_groups");
    lq_json_bool(w, false);
    lq_json_key(w, "lm_head");
    lq_json_bool(w, lm_head_q);
    lq_json_key(w, "dynamic");
    if (n_dyn == 0) {
        lq_json_null(w);
    } else {
        /* GPTQModel / vLLM apply the first pattern that re.match()es the module
         * name: "-:" leaves it unquantized, "+:" overrides the base scheme */
        lq_json_obj_begin(w);
        for (int pass = 0; pass < 2; pass++)
            for (int64_t i = 0; i < n; i++) {
                const lq_qtype_traits *tr = lq_qtype_traits_of(t[i].qtype);
                const bool plain = tr->kind == LQ_QK_KEEP && t[i].n_dims == 2 && is_linear_name(t[i].name) &&
                                   strcmp(t[i].name, "lm_head.weight") != 0;
                const bool other  = is_quant_kind(tr->kind) && t[i].qtype != maj->qt;
                const bool nodesc = is_quant_kind(tr->kind) && desc_act_off(&t[i], desc);
                if (!(pass == 0 ? plain : other || nodesc)) continue;
                char *m = module_name(t[i].name);
                char *r = m ? exact_regex(pass == 0 ? "-:" : "+:", m) : NULL;
                lq_json_key(w, r ? r : "");
                lq_json_obj_begin(w);
                if (pass == 1 && other) {
                    lq_json_key(w, "bits");
                    lq_json_i64(w, tr->bits);
                    lq_json_key(w, "group_size");
                    lq_json_i64(w, group_size_of(t[i].qtype));
                    if (tr->sym != mt->sym) {
                        lq_json_key(w, "sym");
                        lq_json_bool(w, tr->sym);
                    }
                }
                if (pass == 1 && nodesc) {
                    lq_json_key(w, "desc_act");
                    lq_json_bool(w, false);
                }
                lq_json_obj_end(w);
                lq_free(r);
                lq_free(m);
            }
        lq_json_obj_end(w);
    }
    lq_json_key(w, "quant_method");
    lq_json_str(w, "gptq");
    lq_json_key(w, "checkpoint_format");
    lq_json_str(w, f == LQ_QFMT_GPTQ ? "gptq" : "gptq_v2");
    lq_json_key(w, "pack_dtype");
    lq_json_str(w, "int32");
    lq_json_key(w, "meta");
    lq_json_obj_begin(w);
    lq_json_key(w, "quantizer");
    lq_json_arr_begin(w);
    char vb[64];
    lq_json_str(w, version_tag(vb, sizeof vb));
    lq_json_arr_end(w);
    lq_json_obj_end(w);
    lq_json_obj_end(w);
}

/* int8 weight-only is written pack-quantized, not int-quantized: vLLM maps
 * int-quantized to its W8A8 schemes, which need input_activations (a weight-
 * only int-quantized group trips its "w8a16 must be fp8" assertion), while
 * pack-quantized 8-bit loads as CompressedTensorsWNA16 (uint8b128), and
 * compressed-tensors itself infers pack-quantized for int weight-only. */
static const char *ct_format_of(lq_qtype q) {
    return lq_qtype_traits_of(q)->kind == LQ_QK_FP8 ? "float-quantized" : "pack-quantized";
}

static void ct_weights(lq_json_writer *w, lq_qtype q, bool act) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(q);
    lq_json_obj_begin(w);
    lq_json_key(w, "num_bits");
    lq_json_i64(w, tr->bits);
    lq_json_key(w, "type");
    lq_json_str(w, tr->kind == LQ_QK_FP8 ? "float" : "int");
    lq_json_key(w, "symmetric");
    lq_json_bool(w, tr->sym);
    lq_json_key(w, "group_size");
    if (tr->kind == LQ_QK_INT && tr->group > 0)
        lq_json_i64(w, tr->group);
    else
        lq_json_null(w);
    lq_json_key(w, "strategy");
    lq_json_str(w, tr->kind == LQ_QK_INT ? (tr->group > 0 ? "group" : "channel") : (tr->group < 0 ? "tensor" : "channel"));
    lq_json_key(w, "dynamic");
    lq_json_bool(w, false);
    if (act) {
        lq_json_key(w, "actorder");
        lq_json_str(w, "group");
    }
    lq_json_obj_end(w);
}

static void ct_config(lq_json_writer *w, const lq_qtensor *t, int64_t n, const scheme *sc, int64_t n_sc,
                      double ratio) {
    lq_json_obj_begin(w);
    lq_json_key(w, "config_groups");
    lq_json_obj_begin(w);
    for (int64_t s = 0; s < n_sc; s++) {
        char gname[32];
        snprintf(gname, sizeof gname, "group_%lld", (long long)s);
        lq_json_key(w, gname);
        lq_json_obj_begin(w);
        lq_json_key(w, "targets");
        lq_json_arr_begin(w);
        if (n_sc == 1) {
            lq_json_str(w, "Linear");
        } else {
            for (int64_t i = 0; i < n; i++) {
                if (t[i].qtype != sc[s].qt || (t[i].in_scale > 0) != sc[s].a8) continue;
                char *m = module_name(t[i].name);
                char *r = m ? exact_regex("re:", m) : NULL;
                lq_json_str(w, r ? r : "");
                lq_free(r);
                lq_free(m);
            }
        }
        lq_json_arr_end(w);
        lq_json_key(w, "weights");
        ct_weights(w, sc[s].qt, any_act_ordered(t, n, sc[s].qt));
        lq_json_key(w, "input_activations");
        if (sc[s].a8) { /* vLLM: CompressedTensorsW8A8Int8, static per-tensor */
            lq_json_obj_begin(w);
            lq_json_key(w, "num_bits");
            lq_json_i64(w, 8);
            lq_json_key(w, "type");
            lq_json_str(w, "int");
            lq_json_key(w, "symmetric");
            lq_json_bool(w, true);
            lq_json_key(w, "group_size");
            lq_json_null(w);
            lq_json_key(w, "strategy");
            lq_json_str(w, "tensor");
            lq_json_key(w, "dynamic");
            lq_json_bool(w, false);
            lq_json_key(w, "observer");
            lq_json_str(w, "minmax");
            lq_json_obj_end(w);
        } else {
            lq_json_null(w);
        }
        lq_json_key(w, "output_activations");
        lq_json_null(w);
        lq_json_key(w, "format");
        lq_json_str(w, sc[s].a8 ? "int-quantized" : ct_format_of(sc[s].qt));
        lq_json_obj_end(w);
    }
    lq_json_obj_end(w);
    bool one_format = true;
    for (int64_t s = 1; s < n_sc; s++)
        if (strcmp(sc[s].a8 ? "int-quantized" : ct_format_of(sc[s].qt),
                   sc[0].a8 ? "int-quantized" : ct_format_of(sc[0].qt)) != 0)
            one_format = false;
    lq_json_key(w, "format");
    lq_json_str(w, one_format ? (sc[0].a8 ? "int-quantized" : ct_format_of(sc[0].qt)) : "mixed-precision");
    lq_json_key(w, "global_compression_ratio");
    lq_json_f64(w, ratio);
    lq_json_key(w, "ignore");
    lq_json_arr_begin(w);
    bool lm_head_listed = false;
    for (int64_t i = 0; i < n; i++) {
        const lq_qkind k = lq_qtype_traits_of(t[i].qtype)->kind;
        if (strcmp(t[i].name, "lm_head.weight") == 0) lm_head_listed = true; /* quantized or ignored below */
        if (k != LQ_QK_KEEP || t[i].n_dims != 2 || !is_linear_name(t[i].name)) continue;
        char *m = module_name(t[i].name);
        lq_json_str(w, m ? m : "");
        lq_free(m);
    }
    if (!lm_head_listed) lq_json_str(w, "lm_head"); /* tied or absent: as llm-compressor lists it */
    lq_json_arr_end(w);
    lq_json_key(w, "kv_cache_scheme");
    lq_json_null(w);
    lq_json_key(w, "quant_method");
    lq_json_str(w, "compressed-tensors");
    lq_json_key(w, "quantization_status");
    lq_json_str(w, "compressed");
    lq_json_obj_end(w);
}

/* the quantization_config object as compact text (reused for both files) */
static lq_status build_qconfig(const lq_qtensor *t, int64_t n, const lq_qformat_write_params *p, double ratio,
                               char **out, size_t *len) {
    scheme *sc   = lq_calloc((size_t)n, sizeof *sc);
    int64_t n_sc = 0;
    LQ_RETURN_IF(!sc, LQ_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        if (!is_quant_kind(lq_qtype_traits_of(t[i].qtype)->kind)) continue;
        int64_t    s  = 0;
        const bool a8 = t[i].in_scale > 0;
        while (s < n_sc && (sc[s].qt != t[i].qtype || sc[s].a8 != a8)) s++;
        if (s == n_sc) sc[n_sc++] = (scheme){t[i].qtype, a8, 0, i};
        sc[s].count++;
    }
    qsort(sc, (size_t)n_sc, sizeof *sc, cmp_scheme);
    lq_json_writer *w = lq_json_writer_init(0);
    if (!w) {
        lq_free(sc);
        LQ_RETURN_IF(1, LQ_ERR_NOMEM, "out of memory");
    }
    if (is_gptq(p->format))
        gptq_config(w, t, n, p->format, &sc[0]);
    else
        ct_config(w, t, n, sc, n_sc, ratio);
    lq_free(sc);
    const lq_status st = lq_json_writer_finish(w, out, len);
    LQ_RETURN_IF(st != LQ_OK, st, "cannot build quantization_config (%s)", lq_status_str(st));
    return LQ_OK;
}

static lq_status write_text(const char *dir, const char *name, const char *text, size_t len, bool do_fsync) {
    char *path = lq__path_join(dir, name);
    LQ_RETURN_IF(!path, LQ_ERR_NOMEM, "out of memory");
    lq__afile *f  = NULL;
    lq_status  st = lq__afile_open(path, &f);
    if (st == LQ_OK) st = lq__afile_write(f, text, len);
    if (st == LQ_OK) st = lq__afile_write(f, "\n", 1);
    if (st == LQ_OK)
        st = lq__afile_commit_opt(f, do_fsync);
    else
        lq__afile_abort(f);
    lq_free(path);
    return st;
}

/* config.json: every key of the source in order, quantization_config
 * replaced in place or appended; indent 2 as transformers writes it */
static lq_status build_config(const lq_qformat_write_params *p, const char *qtext, size_t qlen, char **out,
                              size_t *len) {
    char          *gen = NULL;
    const char    *src = p->config_json;
    size_t         sl  = p->config_json_len;
    lq_json_doc   *doc = NULL, *qdoc = NULL;
    lq_json_writer *w  = NULL;
    lq_status      st  = LQ_OK;
    lq_json_error  err;
    if (!src) {
        LQ_GOTO_IF(!p->cfg, LQ_ERR_INVALID_ARG, "lq_qformat_write_dir: neither config_json nor cfg given");
        LQ_GOTO_TRY(lq_hfconfig_to_json(p->cfg, &gen, &sl));
        src = gen;
    }
    st = lq_json_parse(src, sl, NULL, &doc, &err);
    LQ_GOTO_IF(st != LQ_OK, st, "source config.json: invalid JSON at byte %zu: %s", err.offset, err.msg);
    const lq_json *root = lq_json_root(doc);
    LQ_GOTO_IF(root->type != LQ_JSON_OBJECT, LQ_ERR_FORMAT, "source config.json: not a JSON object");
    st = lq_json_parse(qtext, qlen, NULL, &qdoc, &err);
    LQ_GOTO_IF(st != LQ_OK, st, "quantization_config: invalid JSON at byte %zu: %s", err.offset, err.msg);
    w = lq_json_writer_init(2);
    LQ_GOTO_IF(!w, LQ_ERR_NOMEM, "out of memory");
    lq_json_obj_begin(w);
    bool replaced = false;
    for (uint32_t i = 0; i < root->n; i++) {
        const lq_json *v = &root->items[i];
        lq_json_key(w, v->key);
        if (strcmp(v->key, "quantization_config") == 0) {
            if (replaced) continue; /* duplicates are refused by the parser; defensive */
            lq_json_value(w, lq_json_root(qdoc));
            replaced = true;
        } else {
            lq_json_value(w, v);
        }
    }
    if (!replaced) {
        lq_json_key(w, "quantization_config");
        lq_json_value(w, lq_json_root(qdoc));
    }
    lq_json_obj_end(w);
    st = lq_json_writer_finish(w, out, len);
    w  = NULL;
    LQ_GOTO_IF(st != LQ_OK, st, "cannot build config.json (%s)", lq_status_str(st));
done:
    lq_json_writer_free(w);
    lq_json_free(qdoc);
    lq_json_free(doc);
    lq_free(gen);
    return st;
}

static lq_status pretty(const char *text, size_t len, char **out, size_t *out_len) {
    lq_json_doc  *doc = NULL;
    lq_json_error err;
    LQ_TRY(lq_json_parse(text, len, NULL, &doc, &err));
    lq_json_writer *w = lq_json_writer_init(2);
    if (!w) {
        lq_json_free(doc);
        LQ_RETURN_IF(1, LQ_ERR_NOMEM, "out of memory");
    }
    lq_json_value(w, lq_json_root(doc));
    const lq_status st = lq_json_writer_finish(w, out, out_len);
    lq_json_free(doc);
    return st;
}

lq_status lq_qformat_write_dir(const char *dir, const lq_qtensor *t, int64_t n, const lq_qformat_write_params *p_in) {
    const lq_qformat_write_params p = p_in ? *p_in : lq_qformat_write_default_params();
    LQ_RETURN_IF(!dir, LQ_ERR_INVALID_ARG, "lq_qformat_write_dir: no directory");
    LQ_RETURN_IF(n <= 0 || !t, LQ_ERR_INVALID_ARG, "%s: no tensors to write", dir);
    LQ_RETURN_IF(p.format != LQ_QFMT_GPTQ && p.format != LQ_QFMT_GPTQ_V2 && p.format != LQ_QFMT_CT,
                 LQ_ERR_INVALID_ARG, "%s: unknown quantized format %d", dir, (int)p.format);
    LQ_RETURN_IF(!p.config_json && !p.cfg, LQ_ERR_INVALID_ARG, "%s: neither config_json nor cfg given", dir);
    const lq_dtype_traits *md = lq_dtype_traits_of(p.model_dtype);
    const lq_dtype model_dtype = md && md->is_float && md->bits >= 16 ? p.model_dtype : LQ_DTYPE_F16;
    LQ_RETURN_IF(!lq__is_dir(dir), LQ_ERR_IO, "%s: not a directory", dir);

    int64_t n_quant = 0;
    for (int64_t i = 0; i < n; i++) {
        LQ_TRY(check_tensor(dir, &t[i], p.format, p.ct_actorder_group));
        if (is_quant_kind(lq_qtype_traits_of(t[i].qtype)->kind)) n_quant++;
    }
    LQ_RETURN_IF(n_quant == 0, LQ_ERR_INVALID_ARG, "%s: no tensor has an integer or fp8 type; nothing for %s to describe",
                 dir, lq_qformat_name(p.format));

    plan      pl;
    char     *qtext = NULL, *ctext = NULL, *qpretty = NULL;
    size_t    qlen = 0, clen = 0, qplen = 0;
    lq_status st   = LQ_OK;
    memset(&pl, 0, sizeof pl);
    const size_t per = 6; /* at most 5 entries/jobs/names per tensor (+1 module name) */
    pl.e      = lq_calloc((size_t)n * per, sizeof *pl.e);
    pl.jobs   = lq_calloc((size_t)n * per, sizeof *pl.jobs);
    pl.names  = lq_calloc((size_t)n * per, sizeof *pl.names);
    pl.shapes = lq_calloc((size_t)n * 2, sizeof *pl.shapes);
    LQ_GOTO_IF(!pl.e || !pl.jobs || !pl.names || !pl.shapes, LQ_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++)
        LQ_GOTO_TRY(plan_tensor(&pl, &t[i], p.format, model_dtype,
                                !is_gptq(p.format) && lq_qtype_traits_of(t[i].qtype)->kind == LQ_QK_INT &&
                                    any_act_ordered(t, n, t[i].qtype)));

    const double ratio = pl.bytes_out ? (double)pl.bytes_dense / (double)pl.bytes_out : 1.0;
    LQ_GOTO_TRY(build_qconfig(t, n, &p, ratio, &qtext, &qlen));
    LQ_GOTO_TRY(build_config(&p, qtext, qlen, &ctext, &clen));

    lq_st_write_params sp = lq_st_write_default_params();
    static const lq_kv meta[] = {{"format", "pt"}};
    sp.metadata           = meta;
    sp.n_metadata         = 1;
    sp.max_shard_size     = p.max_shard_size;
    sp.no_fsync           = p.no_fsync;
    sp.n_threads          = p.n_threads;
    sp.progress           = p.progress;
    sp.progress_user      = p.progress_user;
    LQ_GOTO_TRY(lq_safetensors_write_dir(dir, pl.e, pl.n_e, &sp));
    if (is_gptq(p.format)) {
        LQ_GOTO_TRY(pretty(qtext, qlen, &qpretty, &qplen));
        LQ_GOTO_TRY(write_text(dir, "quantize_config.json", qpretty, qplen, !p.no_fsync));
    }
    LQ_GOTO_TRY(write_text(dir, "config.json", ctext, clen, !p.no_fsync));
done:
    plan_free(&pl);
    lq_free(qtext);
    lq_free(ctext);
    lq_free(qpretty);
    return st;
}
