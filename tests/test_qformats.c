/* test_qformats.c : GPTQ (v1, v2) and compressed-tensors writers and readers.
 *
 * Quantized matrices are built directly from random codes, scales and zero
 * points (fixed seeds; no quantizer involved), written with each format,
 * read back through lq_checkpoint_open + lq_quant_config_load +
 * lq_qformat_load and compared byte for byte. Raw tensors are checked
 * against the published layouts (v1 symmetric 4-bit qzeros = 0x77777777,
 * v2 - v1 = 0x11111111 per word), and malformed checkpoints are made by
 * rewriting a good one. Also writes the interop fixtures under
 * tests/out/qformat_interop/ (tests/interop/README.md). */
#include <stdlib.h>
#include <string.h>

#include "lq_internal.h"
#include "lq_test.h"

#define ROWS 64
#define COLS 256

/* ---- fixtures ---- */

typedef struct {
    lq_qtensor t;
    char       name[128];
    uint8_t   *data;
    float     *scales;
    uint8_t   *zeros;
} qmat;

static void put_code(uint8_t *row, int b, int64_t k, unsigned c) {
    for (int i = 0; i < b; i++)
        if (c >> i & 1u) row[(k * b + i) >> 3] |= (uint8_t)(1u << ((k * b + i) & 7));
}

static float round_to(float x, lq_dtype dt) {
    if (dt == LQ_DTYPE_F16) return lq_f16_to_f32(lq_f32_to_f16(x));
    if (dt == LQ_DTYPE_BF16) return lq_bf16_to_f32(lq_f32_to_bf16(x));
    return x;
}

/* random matrix of type qt; zmin: smallest asymmetric zero point */
static void qmat_make(qmat *m, const char *name, lq_qtype qt, int64_t rows, int64_t cols, lq_dtype sdt, uint64_t seed,
                      unsigned zmin) {
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", name);
    const lq_qtype_traits *tr = lq_qtype_traits_of(qt);
    uint64_t               s  = seed * 7919u + 17u;
    if (tr->kind == LQ_QK_KEEP) {
        const int64_t n = rows * cols;
        m->data         = calloc((size_t)n, 4);
        for (int64_t i = 0; i < n; i++) {
            const float v = lq_test_randf(&s);
            if (qt == LQ_QT_F32)
                memcpy(m->data + 4 * i, &v, 4);
            else {
                const uint16_t h = qt == LQ_QT_F16 ? lq_f32_to_f16(v) : lq_f32_to_bf16(v);
                memcpy(m->data + 2 * i, &h, 2);
            }
        }
    } else {
        const uint64_t rb = lq_qtype_row_bytes(qt, cols);
        m->data           = calloc((size_t)(rows * (int64_t)rb), 1);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t k = 0; k < cols; k++) {
                const uint64_t x = lq_test_rand(&s);
                if (tr->kind == LQ_QK_INT) {
                    put_code(m->data + r * (int64_t)rb, tr->bits, k, (unsigned)(x & ((1u << tr->bits) - 1u)));
                } else {
                    uint8_t b = (uint8_t)x;
                    if ((b & 0x7F) == 0x7F) b ^= 1; /* no NaN */
                    m->data[r * cols + k] = b;
                }
            }
        const int64_t ns = lq_qtype_n_scales(qt, rows, cols);
        m->scales        = calloc((size_t)ns, sizeof *m->scales);
        for (int64_t i = 0; i < ns; i++) m->scales[i] = round_to(0.001f + 0.5f * (lq_test_randf(&s) + 1.f), sdt);
        if (lq_qtype_has_zeros(qt)) {
            const int64_t  nz   = rows * lq_qtype_n_groups(qt, cols);
            const unsigned span = (1u << tr->bits) - zmin;
            m->zeros            = calloc((size_t)nz, 1);
            for (int64_t i = 0; i < nz; i++) m->zeros[i] = (uint8_t)(zmin + lq_test_rand(&s) % span);
        }
    }
    m->t.name        = m->name;
    m->t.qtype       = qt;
    m->t.n_dims      = 2;
    m->t.shape[0]    = rows;
    m->t.shape[1]    = cols;
    m->t.data        = m->data;
    m->t.scales      = m->scales;
    m->t.zeros       = m->zeros;
    m->t.scale_dtype = sdt;
}

static void qmat_vector(qmat *m, const char *name, int64_t n, uint64_t seed) {
    qmat_make(m, name, LQ_QT_F32, 1, n, LQ_DTYPE_F32, seed, 0);
    m->t.n_dims   = 1;
    m->t.shape[0] = n;
    m->t.shape[1] = 0;
}

static void qmat_free(qmat *m) {
    free(m->data);
    free(m->scales);
    free(m->zeros);
}

static const char *k_config =
    "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"hidden_size\":64,"
    "\"zeta\":{\"b\":1,\"a\":[1,2.50,1e3]},\"big\":18446744073709551615,"
    "\"quantization_config\":{\"quant_method\":\"old\"},\"torch_dtype\":\"float32\"}";

static lq_qformat_write_params params(lq_qformat f) {
    lq_qformat_write_params p = lq_qformat_write_default_params();
    p.format                  = f;
    p.config_json             = k_config;
    p.config_json_len         = strlen(k_config);
    p.no_fsync                = true;
    return p;
}

static lq_qtensor *tensors_of(qmat *m, int n) {
    lq_qtensor *t = calloc((size_t)n, sizeof *t);
    for (int i = 0; i < n; i++) t[i] = m[i].t;
    return t;
}

static lq_status write_dir(const char *dir, qmat *m, int n, const lq_qformat_write_params *p) {
    lq_qtensor     *t  = tensors_of(m, n);
    const lq_status st = lq_qformat_write_dir(dir, t, n, p);
    free(t);
    return st;
}

/* byte equality of a loaded tensor with what was written */
static int same(const lq_qtensor *got, const lq_qtensor *want, lq_dtype want_sdt, const char *ctx) {
    int ok = got->qtype == want->qtype && got->n_dims == 2 && got->shape[0] == want->shape[0] &&
             got->shape[1] == want->shape[1];
    if (!ok) {
        printf("\n  %s: %s: qtype %s (want %s) shape [%lld, %lld]\n", ctx, want->name, lq_qtype_name(got->qtype),
               lq_qtype_name(want->qtype), (long long)got->shape[0], (long long)got->shape[1]);
        return 0;
    }
    const int64_t rows = want->shape[0], cols = want->shape[1];
    const lq_qtype_traits *tr = lq_qtype_traits_of(want->qtype);
    const uint64_t nbytes     = tr->kind == LQ_QK_KEEP ? (uint64_t)(rows * cols) * (tr->bits / 8)
                                                       : (uint64_t)rows * lq_qtype_row_bytes(want->qtype, cols);
    if (memcmp(got->data, want->data, nbytes) != 0) {
        printf("\n  %s: %s: data differs\n", ctx, want->name);
        return 0;
    }
    if (tr->kind == LQ_QK_KEEP) return 1;
    if ((want->g_idx != NULL) != (got->g_idx != NULL) ||
        (want->g_idx && memcmp(want->g_idx, got->g_idx, (size_t)cols * sizeof(int32_t)) != 0)) {
        printf("\n  %s: %s: g_idx differs\n", ctx, want->name);
        return 0;
    }
    const int64_t ns = lq_qtype_n_scales(want->qtype, rows, cols);
    if (memcmp(got->scales, want->scales, (size_t)ns * 4) != 0 || got->scale_dtype != want_sdt) {
        printf("\n  %s: %s: scales differ (dtype %s)\n", ctx, want->name, lq_dtype_name(got->scale_dtype));
        return 0;
    }
    if (lq_qtype_has_zeros(want->qtype)) {
        if (!got->zeros || memcmp(got->zeros, want->zeros, (size_t)(rows * lq_qtype_n_groups(want->qtype, cols))) != 0) {
            printf("\n  %s: %s: zeros differ\n", ctx, want->name);
            return 0;
        }
    } else if (got->zeros) {
        printf("\n  %s: %s: unexpected zeros\n", ctx, want->name);
        return 0;
    }
    return 1;
}

static char *module_of(const char *weight) {
    char *m = strdup(weight);
    m[strlen(m) - 7] = 0;
    return m;
}

/* open `dir`, check the config's format and every matrix of m[] */
static int check_dir(const char *dir, lq_qformat f, qmat *m, int n, const char *ctx) {
    lq_checkpoint   *ck = NULL;
    lq_quant_config *qc = NULL;
    int              ok = 1;
    if (lq_checkpoint_open(dir, &ck) != LQ_OK || lq_quant_config_load(ck, &qc) != LQ_OK || !qc) {
        printf("\n  %s: cannot open %s\n", ctx, dir);
        lq_checkpoint_close(ck);
        return 0;
    }
    if (lq_quant_config_format(qc) != f) ok = 0;
    for (int i = 0; i < n && ok; i++) {
        if (m[i].t.n_dims != 2 || strstr(m[i].name, "embed_tokens")) continue;
        char      *mod   = module_of(m[i].name);
        lq_qtensor got;
        void      *owned = NULL;
        const lq_status st = lq_qformat_load(ck, qc, mod, m[i].t.shape[0], m[i].t.shape[1], &got, &owned);
        const lq_dtype  sdt = f == LQ_QFMT_CT ? m[i].t.scale_dtype : LQ_DTYPE_F16;
        if (st != LQ_OK) {
            printf("\n  %s: load %s: %s (%s)\n", ctx, mod, lq_status_str(st), lq_test_last_error());
            ok = 0;
        } else {
            ok = same(&got, &m[i].t, sdt, ctx) && got.name && strcmp(got.name, m[i].name) == 0;
        }
        lq_free(owned);
        free(mod);
    }
    lq_quant_config_free(qc);
    lq_checkpoint_close(ck);
    return ok;
}

static char *copy_str(const char *s) { return strdup(s); }

/* ---- tests ---- */

static void test_qformats_names_and_supports(void) {
    CU_ASSERT_STRING_EQUAL(lq_qformat_name(LQ_QFMT_GPTQ), "gptq");
    CU_ASSERT_STRING_EQUAL(lq_qformat_name(LQ_QFMT_GPTQ_V2), "gptq_v2");
    CU_ASSERT_STRING_EQUAL(lq_qformat_name(LQ_QFMT_CT), "compressed-tensors");
    const char *why = NULL;
    /* stories260K down_proj: K = 172 */
    CU_ASSERT(!lq_qformat_supports(LQ_QFMT_GPTQ, LQ_QT_INT4_CH, 64, 172, &why));
    CU_ASSERT(why && strstr(why, "multiple of 32"));
    CU_ASSERT(lq_qformat_supports(LQ_QFMT_GPTQ, LQ_QT_INT8_CH, 64, 172, &why));
    CU_ASSERT_PTR_NULL(why);
    CU_ASSERT(lq_qformat_supports(LQ_QFMT_GPTQ_V2, LQ_QT_INT8_CH_ASYM, 64, 172, NULL));
    CU_ASSERT(!lq_qformat_supports(LQ_QFMT_GPTQ, LQ_QT_INT4_G32, 64, 172, NULL)); /* group does not divide */
    CU_ASSERT(lq_qformat_supports(LQ_QFMT_CT, LQ_QT_INT4_CH, 64, 172, NULL));     /* dense rows, padded */
    CU_ASSERT(lq_qformat_supports(LQ_QFMT_CT, LQ_QT_INT3_CH, 37, 172, NULL));
    CU_ASSERT(!lq_qformat_supports(LQ_QFMT_GPTQ, LQ_QT_INT3_G32, 48, 64, NULL)); /* qzeros: 48*3 bits */
    CU_ASSERT(lq_qformat_supports(LQ_QFMT_GPTQ, LQ_QT_INT3_G32, 64, 64, NULL));
    CU_ASSERT(!lq_qformat_supports(LQ_QFMT_GPTQ, LQ_QT_FP8_E4M3_CH, 64, 64, &why));
    CU_ASSERT(lq_qformat_supports(LQ_QFMT_CT, LQ_QT_FP8_E4M3_CH, 64, 172, NULL));
    CU_ASSERT(lq_qformat_supports(LQ_QFMT_CT, LQ_QT_FP8_E4M3_TENSOR, 64, 172, NULL));
    CU_ASSERT(!lq_qformat_supports(LQ_QFMT_CT, LQ_QT_Q4_0, 64, 256, NULL));
    CU_ASSERT(!lq_qformat_supports(LQ_QFMT_GPTQ, LQ_QT_Q8_0, 64, 256, NULL));
    CU_ASSERT(lq_qformat_supports(LQ_QFMT_GPTQ, LQ_QT_F16, 64, 172, NULL));
    CU_ASSERT(lq_qformat_supports(LQ_QFMT_CT, LQ_QT_BF16, 64, 172, NULL));
    CU_ASSERT(!lq_qformat_supports(LQ_QFMT_CT, LQ_QT_NONE, 64, 172, NULL));
    CU_ASSERT(!lq_qformat_supports((lq_qformat)7, LQ_QT_F16, 64, 172, NULL));
}

/* every INT type, each group size, sym and asym; fp8 and KEEP (CT) */
static void test_qformats_roundtrip_every_type(void) {
    static const lq_qformat fmts[] = {LQ_QFMT_GPTQ, LQ_QFMT_GPTQ_V2, LQ_QFMT_CT};
    int                     n_ok = 0, n_run = 0;
    for (int fi = 0; fi < 3; fi++)
        for (int q = 1; q < LQ_QT_COUNT; q++) {
            const lq_qtype         qt = (lq_qtype)q;
            const lq_qtype_traits *tr = lq_qtype_traits_of(qt);
            if (tr->kind != LQ_QK_INT && tr->kind != LQ_QK_FP8) continue;
            if (!lq_qformat_supports(fmts[fi], qt, ROWS, COLS, NULL)) {
                CU_ASSERT(tr->kind == LQ_QK_FP8 && fmts[fi] != LQ_QFMT_CT);
                continue;
            }
            char dname[96];
            snprintf(dname, sizeof dname, "rt_%s_%s", lq_qformat_name(fmts[fi]), tr->name);
            char *dir = copy_str(lq_test_tmpdir(dname));
            /* CT keeps the scale dtype: vary it */
            const lq_dtype sdt = fmts[fi] != LQ_QFMT_CT ? LQ_DTYPE_F16
                                 : q % 3 == 0           ? LQ_DTYPE_BF16
                                 : q % 3 == 1           ? LQ_DTYPE_F32
                                                        : LQ_DTYPE_F16;
            qmat m[5];
            qmat_make(&m[0], "model.embed_tokens.weight", LQ_QT_F32, 32, 64, LQ_DTYPE_F32, 1, 0);
            qmat_vector(&m[1], "model.layers.0.input_layernorm.weight", 64, 2);
            qmat_make(&m[2], "model.layers.0.self_attn.q_proj.weight", qt, ROWS, COLS, sdt, 3 + (uint64_t)q,
                      fmts[fi] == LQ_QFMT_GPTQ ? 1 : 0);
            qmat_make(&m[3], "model.layers.0.mlp.up_proj.weight", qt, 2 * ROWS, COLS, sdt, 99 + (uint64_t)q,
                      fmts[fi] == LQ_QFMT_GPTQ ? 1 : 0);
            qmat_make(&m[4], "lm_head.weight", LQ_QT_BF16, 32, 64, LQ_DTYPE_F32, 5, 0);
            lq_qformat_write_params p  = params(fmts[fi]);
            const lq_status         st = write_dir(dir, m, 5, &p);
            n_run++;
            if (st == LQ_OK && check_dir(dir, fmts[fi], m, 5, dname))
                n_ok++;
            else
                printf("\n  round trip failed: %s (%s)\n", dname, lq_status_str(st));
            for (int i = 0; i < 5; i++) qmat_free(&m[i]);
            free(dir);
        }
    CU_ASSERT_EQUAL(n_ok, n_run);
    CU_ASSERT_EQUAL(n_run, 32 + 32 + 34);
}

static const lq_tensor_info *raw(const lq_checkpoint *ck, const char *name) { return lq_checkpoint_find(ck, name); }

static uint32_t word_at(const lq_tensor_info *t, int64_t i) {
    uint32_t w;
    memcpy(&w, (const uint8_t *)t->data + 4 * i, 4);
    return w;
}

static void test_qformats_gptq_layout(void) {
    static const struct {
        lq_qtype qt;
        uint32_t v1_word, v2_word;
    } cases[] = {{LQ_QT_INT4_G32, 0x77777777u, 0x88888888u},
                 {LQ_QT_INT2_G64, 0x55555555u, 0xAAAAAAAAu},
                 {LQ_QT_INT8_CH, 0x7F7F7F7Fu, 0x80808080u}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const lq_qtype_traits *tr = lq_qtype_traits_of(cases[c].qt);
        char                  *dirs[2];
        qmat                   m;
        qmat_make(&m, "model.layers.0.self_attn.o_proj.weight", cases[c].qt, ROWS, COLS, LQ_DTYPE_F16, 11, 1);
        for (int v = 0; v < 2; v++) {
            char dn[64];
            snprintf(dn, sizeof dn, "layout_%s_v%d", tr->name, v + 1);
            dirs[v]                   = copy_str(lq_test_tmpdir(dn));
            lq_qformat_write_params p = params(v ? LQ_QFMT_GPTQ_V2 : LQ_QFMT_GPTQ);
            CU_ASSERT_EQUAL_FATAL(write_dir(dirs[v], &m, 1, &p), LQ_OK);
        }
        lq_checkpoint *ck[2];
        CU_ASSERT_EQUAL_FATAL(lq_checkpoint_open(dirs[0], &ck[0]), LQ_OK);
        CU_ASSERT_EQUAL_FATAL(lq_checkpoint_open(dirs[1], &ck[1]), LQ_OK);
        const int64_t ng = lq_qtype_n_groups(cases[c].qt, COLS), G = COLS / ng, b = tr->bits;
        const lq_tensor_info *z1 = raw(ck[0], "model.layers.0.self_attn.o_proj.qzeros");
        const lq_tensor_info *z2 = raw(ck[1], "model.layers.0.self_attn.o_proj.qzeros");
        CU_ASSERT_FATAL(z1 && z2);
        CU_ASSERT_EQUAL(z1->dtype, LQ_DTYPE_I32);
        CU_ASSERT(z1->n_dims == 2 && z1->shape[0] == ng && z1->shape[1] == ROWS * b / 32);
        int zok = 1;
        for (int64_t i = 0; i < ng * ROWS * b / 32; i++)
            zok &= word_at(z1, i) == cases[c].v1_word && word_at(z2, i) == cases[c].v2_word;
        CU_ASSERT(zok);
        const lq_tensor_info *qw = raw(ck[0], "model.layers.0.self_attn.o_proj.qweight");
        CU_ASSERT_FATAL(qw != NULL);
        CU_ASSERT(qw->dtype == LQ_DTYPE_I32 && qw->shape[0] == COLS * b / 32 && qw->shape[1] == ROWS);
        /* qweight[w][n] = word w of lq row n */
        const uint64_t rb   = lq_qtype_row_bytes(cases[c].qt, COLS);
        int            wok  = 1;
        for (int64_t w = 0; w < COLS * b / 32; w++)
            for (int64_t n = 0; n < ROWS; n++) {
                uint32_t x;
                memcpy(&x, m.data + n * (int64_t)rb + 4 * w, 4);
                wok &= word_at(qw, w * ROWS + n) == x;
            }
        CU_ASSERT(wok);
        const lq_tensor_info *sc = raw(ck[0], "model.layers.0.self_attn.o_proj.scales");
        CU_ASSERT_FATAL(sc != NULL);
        CU_ASSERT(sc->dtype == LQ_DTYPE_F16 && sc->shape[0] == ng && sc->shape[1] == ROWS);
        const int64_t gs = ng > 1 ? 1 : 0; /* scales[g][n] = lq scales[n][g] */
        uint16_t      h;
        memcpy(&h, (const uint8_t *)sc->data + 2 * (gs * ROWS + 3), 2);
        CU_ASSERT_EQUAL(lq_f16_to_f32(h), m.scales[3 * ng + gs]);
        const lq_tensor_info *gi = raw(ck[0], "model.layers.0.self_attn.o_proj.g_idx");
        CU_ASSERT_FATAL(gi != NULL);
        int gok = gi->dtype == LQ_DTYPE_I32 && gi->n_dims == 1 && gi->shape[0] == COLS;
        for (int64_t k = 0; k < COLS && gok; k++) gok &= (int64_t)word_at(gi, k) == k / G;
        CU_ASSERT(gok);
        lq_checkpoint_close(ck[0]);
        lq_checkpoint_close(ck[1]);
        qmat_free(&m);
        free(dirs[0]);
        free(dirs[1]);
    }
    /* asymmetric: v2 - v1 = 0x11111111 in every 4-bit word (zero points >= 1) */
    qmat m;
    qmat_make(&m, "model.layers.0.mlp.gate_proj.weight", LQ_QT_INT4_G128_ASYM, ROWS, COLS, LQ_DTYPE_F16, 21, 1);
    char *d1 = copy_str(lq_test_tmpdir("asym_v1")), *d2 = copy_str(lq_test_tmpdir("asym_v2"));
    lq_qformat_write_params p1 = params(LQ_QFMT_GPTQ), p2 = params(LQ_QFMT_GPTQ_V2);
    CU_ASSERT_EQUAL_FATAL(write_dir(d1, &m, 1, &p1), LQ_OK);
    CU_ASSERT_EQUAL_FATAL(write_dir(d2, &m, 1, &p2), LQ_OK);
    lq_checkpoint *c1, *c2;
    CU_ASSERT_EQUAL_FATAL(lq_checkpoint_open(d1, &c1), LQ_OK);
    CU_ASSERT_EQUAL_FATAL(lq_checkpoint_open(d2, &c2), LQ_OK);
    const lq_tensor_info *z1 = raw(c1, "model.layers.0.mlp.gate_proj.qzeros"), *z2 = raw(c2, "model.layers.0.mlp.gate_proj.qzeros");
    CU_ASSERT_FATAL(z1 && z2);
    int ok = 1;
    for (int64_t i = 0; i < 2 * ROWS * 4 / 32; i++) ok &= word_at(z2, i) - word_at(z1, i) == 0x11111111u;
    CU_ASSERT(ok);
    /* nibble n of word 0 is z[n][0] - 1 */
    CU_ASSERT_EQUAL(word_at(z1, 0) & 0xF, (uint32_t)(m.zeros[0] - 1));
    CU_ASSERT_EQUAL(word_at(z1, 0) >> 4 & 0xF, (uint32_t)(m.zeros[2] - 1));
    lq_checkpoint_close(c1);
    lq_checkpoint_close(c2);
    CU_ASSERT(check_dir(d1, LQ_QFMT_GPTQ, &m, 1, "asym v1"));
    CU_ASSERT(check_dir(d2, LQ_QFMT_GPTQ_V2, &m, 1, "asym v2"));
    /* quantize_config.json = config.json's quantization_config; other keys kept in order */
    char    path[512];
    size_t  la, lb;
    snprintf(path, sizeof path, "%s/config.json", d1);
    uint8_t *cfg = lq_test_read_file(path, &la);
    snprintf(path, sizeof path, "%s/quantize_config.json", d1);
    uint8_t *qcf = lq_test_read_file(path, &lb);
    CU_ASSERT_FATAL(cfg && qcf);
    lq_json_doc *dc = NULL, *dq = NULL;
    CU_ASSERT_EQUAL_FATAL(lq_json_parse((const char *)cfg, la, NULL, &dc, NULL), LQ_OK);
    CU_ASSERT_EQUAL_FATAL(lq_json_parse((const char *)qcf, lb, NULL, &dq, NULL), LQ_OK);
    const lq_json *root = lq_json_root(dc);
    static const char *const keys[] = {"architectures", "model_type", "hidden_size", "zeta", "big",
                                       "quantization_config", "torch_dtype"};
    CU_ASSERT_EQUAL_FATAL(root->n, 7);
    for (int i = 0; i < 7; i++) CU_ASSERT_STRING_EQUAL(root->items[i].key, keys[i]);
    CU_ASSERT_STRING_EQUAL(lq_json_get(root, "big")->num, "18446744073709551615");
    CU_ASSERT_STRING_EQUAL(lq_json_get(lq_json_get(root, "zeta"), "a")->items[1].num, "2.50");
    const lq_json *q = lq_json_get(root, "quantization_config");
    lq_json_writer *w1 = lq_json_writer_init(0), *w2 = lq_json_writer_init(0);
    lq_json_value(w1, q);
    lq_json_value(w2, lq_json_root(dq));
    char *t1, *t2;
    size_t l1, l2;
    CU_ASSERT_EQUAL_FATAL(lq_json_writer_finish(w1, &t1, &l1), LQ_OK);
    CU_ASSERT_EQUAL_FATAL(lq_json_writer_finish(w2, &t2, &l2), LQ_OK);
    CU_ASSERT(l1 == l2 && memcmp(t1, t2, l1) == 0);
    CU_ASSERT(strstr(t1, "\"bits\":4,\"group_size\":128,\"desc_act\":false,\"sym\":false") != NULL);
    CU_ASSERT(strstr(t1, "\"quant_method\":\"gptq\",\"checkpoint_format\":\"gptq\",\"pack_dtype\":\"int32\"") != NULL);
    CU_ASSERT(strstr(t1, "\"meta\":{\"quantizer\":[\"libquant:") != NULL);
    CU_ASSERT(strstr(t1, "\"dynamic\":null") != NULL);
    lq_free(t1);
    lq_free(t2);
    lq_json_free(dc);
    lq_json_free(dq);
    free(cfg);
    free(qcf);
    qmat_free(&m);
    free(d1);
    free(d2);
}

static void test_qformats_write_errors(void) {
    lq_test_quiet(1);
    /* v1 cannot store an asymmetric zero point of 0 */
    qmat m;
    qmat_make(&m, "model.layers.0.mlp.gate_proj.weight", LQ_QT_INT4_G32_ASYM, ROWS, COLS, LQ_DTYPE_F16, 31, 1);
    m.zeros[5]                   = 0;
    char                   *dir  = copy_str(lq_test_tmpdir("err_v1_zero"));
    lq_qformat_write_params p    = params(LQ_QFMT_GPTQ);
    CU_ASSERT_EQUAL(write_dir(dir, &m, 1, &p), LQ_ERR_UNSUPPORTED);
    CU_ASSERT(strstr(lq_test_last_error(), "model.layers.0.mlp.gate_proj.weight") != NULL);
    CU_ASSERT(strstr(lq_test_last_error(), "gptq_v2") != NULL);
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CU_ASSERT(!lq__file_exists(path)); /* validated before anything is written */
    snprintf(path, sizeof path, "%s/config.json", dir);
    CU_ASSERT(!lq__file_exists(path));
    p = params(LQ_QFMT_GPTQ_V2); /* v2 stores it */
    CU_ASSERT_EQUAL(write_dir(dir, &m, 1, &p), LQ_OK);
    CU_ASSERT(check_dir(dir, LQ_QFMT_GPTQ_V2, &m, 1, "v2 zero 0"));
    qmat_free(&m);
    /* K = 172: int4 is not representable in GPTQ, int8 is */
    qmat_make(&m, "model.layers.0.mlp.down_proj.weight", LQ_QT_INT4_CH, 64, 172, LQ_DTYPE_F16, 32, 0);
    p = params(LQ_QFMT_GPTQ);
    CU_ASSERT_EQUAL(write_dir(dir, &m, 1, &p), LQ_ERR_UNSUPPORTED);
    CU_ASSERT(strstr(lq_test_last_error(), "down_proj") != NULL);
    qmat_free(&m);
    qmat_make(&m, "model.layers.0.mlp.down_proj.weight", LQ_QT_INT8_CH, 64, 172, LQ_DTYPE_F16, 33, 0);
    CU_ASSERT_EQUAL(write_dir(dir, &m, 1, &p), LQ_OK);
    CU_ASSERT(check_dir(dir, LQ_QFMT_GPTQ, &m, 1, "int8 K=172"));
    qmat_free(&m);
    /* fp8 and GGML types in GPTQ; a 1-D quantized tensor */
    qmat_make(&m, "model.layers.0.mlp.up_proj.weight", LQ_QT_FP8_E4M3_CH, 64, 64, LQ_DTYPE_F16, 34, 0);
    CU_ASSERT_EQUAL(write_dir(dir, &m, 1, &p), LQ_ERR_UNSUPPORTED);
    m.t.qtype = LQ_QT_Q8_0;
    p         = params(LQ_QFMT_CT);
    CU_ASSERT_EQUAL(write_dir(dir, &m, 1, &p), LQ_ERR_UNSUPPORTED);
    m.t.qtype = LQ_QT_FP8_E4M3_CH;
    m.t.name  = "model.layers.0.mlp.up_proj.scales";
    CU_ASSERT_EQUAL(write_dir(dir, &m, 1, &p), LQ_ERR_INVALID_ARG);
    qmat_free(&m);
    /* GPTQ scales are F16: BF16 scales convert only when exact */
    qmat_make(&m, "model.layers.0.mlp.up_proj.weight", LQ_QT_INT4_G64, 64, 128, LQ_DTYPE_BF16, 35, 0);
    p = params(LQ_QFMT_GPTQ);
    CU_ASSERT_EQUAL(write_dir(dir, &m, 1, &p), LQ_OK);
    CU_ASSERT(check_dir(dir, LQ_QFMT_GPTQ, &m, 1, "bf16 scales as f16"));
    m.scales[7] = lq_bf16_to_f32(lq_f32_to_bf16(70000.f)); /* beyond f16 */
    CU_ASSERT_EQUAL(write_dir(dir, &m, 1, &p), LQ_ERR_UNSUPPORTED);
    CU_ASSERT(strstr(lq_test_last_error(), "F16") != NULL);
    p = params(LQ_QFMT_CT); /* compressed-tensors keeps BF16 */
    CU_ASSERT_EQUAL(write_dir(dir, &m, 1, &p), LQ_OK);
    CU_ASSERT(check_dir(dir, LQ_QFMT_CT, &m, 1, "bf16 scales kept"));
    m.scales[7] = 1.0f + 1.0f / 1024; /* not a bf16 value */
    CU_ASSERT_EQUAL(write_dir(dir, &m, 1, &p), LQ_ERR_UNSUPPORTED);
    /* no config source */
    p.config_json = NULL;
    CU_ASSERT_EQUAL(write_dir(dir, &m, 1, &p), LQ_ERR_INVALID_ARG);
    qmat_free(&m);
    /* nothing quantized */
    qmat_make(&m, "model.layers.0.mlp.up_proj.weight", LQ_QT_F16, 64, 128, LQ_DTYPE_F16, 36, 0);
    p = params(LQ_QFMT_CT);
    CU_ASSERT_EQUAL(write_dir(dir, &m, 1, &p), LQ_ERR_INVALID_ARG);
    qmat_free(&m);
    free(dir);
    lq_test_quiet(0);
}

/* a stories260K-like mixed layer: int4 attention, int8 gate/up, plain down_proj and lm_head */
static int mixed_model(qmat *m, bool with_fp8) {
    int n = 0;
    qmat_make(&m[n++], "model.embed_tokens.weight", LQ_QT_F32, 32, 64, LQ_DTYPE_F32, 40, 0);
    qmat_vector(&m[n++], "model.layers.0.input_layernorm.weight", 64, 41);
    static const char *const att[] = {"q_proj", "k_proj", "v_proj", "o_proj"};
    for (int i = 0; i < 4; i++) {
        char name[96];
        snprintf(name, sizeof name, "model.layers.0.self_attn.%s.weight", att[i]);
        qmat_make(&m[n++], name, LQ_QT_INT4_G32, i == 1 || i == 2 ? 32 : 64, 64, LQ_DTYPE_F16, 42 + (uint64_t)i, 1);
    }
    qmat_make(&m[n++], "model.layers.0.mlp.gate_proj.weight", LQ_QT_INT8_CH, 172, 64, LQ_DTYPE_F16, 50, 0);
    qmat_make(&m[n++], "model.layers.0.mlp.up_proj.weight", LQ_QT_INT8_CH, 172, 64, LQ_DTYPE_F16, 51, 0);
    qmat_make(&m[n++], "model.layers.0.mlp.down_proj.weight", LQ_QT_F32, 64, 172, LQ_DTYPE_F32, 52, 0);
    if (with_fp8)
        qmat_make(&m[n++], "model.layers.1.self_attn.q_proj.weight", LQ_QT_FP8_E4M3_TENSOR, 64, 64, LQ_DTYPE_F32, 53,
                  0);
    qmat_make(&m[n++], "lm_head.weight", LQ_QT_F32, 32, 64, LQ_DTYPE_F32, 54, 0);
    return n;
}

static const lq_json *qconfig_of(const char *dir, lq_json_doc **doc) {
    char   path[512];
    size_t len;
    snprintf(path, sizeof path, "%s/config.json", dir);
    uint8_t *buf = lq_test_read_file(path, &len);
    *doc         = NULL;
    if (!buf || lq_json_parse((const char *)buf, len, NULL, doc, NULL) != LQ_OK) {
        free(buf);
        return NULL;
    }
    free(buf);
    return lq_json_get(lq_json_root(*doc), "quantization_config");
}

static void test_qformats_mixed_dynamic_and_ignore(void) {
    qmat m[12];
    int  n = mixed_model(m, false);
    /* GPTQ: majority int4 g32; "-:" for down_proj, "+:" for the int8 modules */
    char                   *dir = copy_str(lq_test_tmpdir("mixed_gptq"));
    lq_qformat_write_params p   = params(LQ_QFMT_GPTQ);
    CU_ASSERT_EQUAL_FATAL(write_dir(dir, m, n, &p), LQ_OK);
    CU_ASSERT(check_dir(dir, LQ_QFMT_GPTQ, m, n, "mixed gptq"));
    lq_json_doc   *doc = NULL;
    const lq_json *q   = qconfig_of(dir, &doc);
    CU_ASSERT_FATAL(q != NULL);
    int64_t v = 0;
    CU_ASSERT(lq_json_get_i64(lq_json_get(q, "bits"), &v) && v == 4);
    CU_ASSERT(lq_json_get_i64(lq_json_get(q, "group_size"), &v) && v == 32);
    CU_ASSERT_EQUAL(lq_json_get(q, "lm_head")->type, LQ_JSON_FALSE);
    const lq_json *dyn = lq_json_get(q, "dynamic");
    CU_ASSERT_FATAL(dyn && dyn->type == LQ_JSON_OBJECT);
    CU_ASSERT_EQUAL(dyn->n, 3);
    const lq_json *skip = lq_json_get(dyn, "-:^model\\.layers\\.0\\.mlp\\.down_proj$");
    CU_ASSERT(skip && skip->type == LQ_JSON_OBJECT && skip->n == 0);
    const lq_json *gate = lq_json_get(dyn, "+:^model\\.layers\\.0\\.mlp\\.gate_proj$");
    CU_ASSERT_FATAL(gate != NULL);
    CU_ASSERT(lq_json_get_i64(lq_json_get(gate, "bits"), &v) && v == 8);
    CU_ASSERT(lq_json_get_i64(lq_json_get(gate, "group_size"), &v) && v == -1);
    CU_ASSERT_PTR_NULL(lq_json_get(gate, "sym"));
    CU_ASSERT_PTR_NOT_NULL(lq_json_get(dyn, "+:^model\\.layers\\.0\\.mlp\\.up_proj$"));
    lq_json_free(doc);
    /* down_proj stays F32 as written */
    lq_checkpoint *ck;
    CU_ASSERT_EQUAL_FATAL(lq_checkpoint_open(dir, &ck), LQ_OK);
    const lq_tensor_info *dp = lq_checkpoint_find(ck, "model.layers.0.mlp.down_proj.weight");
    CU_ASSERT(dp && dp->dtype == LQ_DTYPE_F32);
    CU_ASSERT_PTR_NULL(lq_checkpoint_find(ck, "model.layers.0.mlp.down_proj.qweight"));
    lq_quant_config *qc = NULL;
    CU_ASSERT_EQUAL_FATAL(lq_quant_config_load(ck, &qc), LQ_OK);
    lq_qtensor t;
    void      *owned = (void *)1;
    CU_ASSERT_EQUAL(lq_qformat_load(ck, qc, "model.layers.0.mlp.down_proj", 64, 172, &t, &owned), LQ_OK);
    CU_ASSERT(t.qtype == LQ_QT_F32 && t.data == dp->data && owned == NULL);
    lq_quant_config_free(qc);
    lq_checkpoint_close(ck);
    free(dir);
    for (int i = 0; i < n; i++) qmat_free(&m[i]);

    /* compressed-tensors: one group per scheme, exact re: targets, ignore list; fp8 makes it mixed-precision */
    n   = mixed_model(m, true);
    dir = copy_str(lq_test_tmpdir("mixed_ct"));
    p   = params(LQ_QFMT_CT);
    p.max_shard_size = 8192; /* sharded output with an index */
    CU_ASSERT_EQUAL_FATAL(write_dir(dir, m, n, &p), LQ_OK);
    CU_ASSERT(check_dir(dir, LQ_QFMT_CT, m, n, "mixed ct"));
    q = qconfig_of(dir, &doc);
    CU_ASSERT_FATAL(q != NULL);
    CU_ASSERT_STRING_EQUAL(lq_json_get_str(lq_json_get(q, "format")), "mixed-precision");
    CU_ASSERT_STRING_EQUAL(lq_json_get_str(lq_json_get(q, "quantization_status")), "compressed");
    CU_ASSERT_STRING_EQUAL(lq_json_get_str(lq_json_get(q, "quant_method")), "compressed-tensors");
    CU_ASSERT_EQUAL(lq_json_get(q, "kv_cache_scheme")->type, LQ_JSON_NULL);
    double ratio = 0;
    CU_ASSERT(lq_json_get_f64(lq_json_get(q, "global_compression_ratio"), &ratio) && ratio > 1.0);
    const lq_json *groups = lq_json_get(q, "config_groups");
    CU_ASSERT_FATAL(groups && groups->n == 3);
    const lq_json *g0 = lq_json_get(groups, "group_0"), *g1 = lq_json_get(groups, "group_1"),
                  *g2 = lq_json_get(groups, "group_2");
    CU_ASSERT_FATAL(g0 && g1 && g2);
    CU_ASSERT_EQUAL(lq_json_get(g0, "targets")->n, 4);
    CU_ASSERT_STRING_EQUAL(lq_json_get(g0, "targets")->items[0].str, "re:^model\\.layers\\.0\\.self_attn\\.q_proj$");
    CU_ASSERT_STRING_EQUAL(lq_json_get_str(lq_json_get(g0, "format")), "pack-quantized");
    CU_ASSERT(lq_json_get_i64(lq_json_get(lq_json_get(g0, "weights"), "group_size"), &v) && v == 32);
    CU_ASSERT_STRING_EQUAL(lq_json_get_str(lq_json_get(lq_json_get(g1, "weights"), "strategy")), "channel");
    CU_ASSERT(lq_json_get_i64(lq_json_get(lq_json_get(g1, "weights"), "num_bits"), &v) && v == 8);
    CU_ASSERT_STRING_EQUAL(lq_json_get_str(lq_json_get(g2, "format")), "float-quantized");
    CU_ASSERT_STRING_EQUAL(lq_json_get_str(lq_json_get(lq_json_get(g2, "weights"), "type")), "float");
    CU_ASSERT_STRING_EQUAL(lq_json_get_str(lq_json_get(lq_json_get(g2, "weights"), "strategy")), "tensor");
    const lq_json *ign = lq_json_get(q, "ignore");
    CU_ASSERT_FATAL(ign && ign->n == 2);
    CU_ASSERT_STRING_EQUAL(ign->items[0].str, "model.layers.0.mlp.down_proj");
    CU_ASSERT_STRING_EQUAL(ign->items[1].str, "lm_head");
    lq_json_free(doc);
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    CU_ASSERT(lq__file_exists(path));
    snprintf(path, sizeof path, "%s/quantize_config.json", dir);
    CU_ASSERT(!lq__file_exists(path));
    CU_ASSERT_EQUAL_FATAL(lq_checkpoint_open(dir, &ck), LQ_OK);
    const lq_tensor_info *ws = lq_checkpoint_find(ck, "model.layers.0.self_attn.k_proj.weight_shape");
    CU_ASSERT(ws && ws->dtype == LQ_DTYPE_I64 && ws->n_dims == 1 && ws->shape[0] == 2);
    const lq_tensor_info *fs = lq_checkpoint_find(ck, "model.layers.1.self_attn.q_proj.weight_scale");
    CU_ASSERT(fs && fs->dtype == LQ_DTYPE_F32 && fs->n_dims == 1 && fs->shape[0] == 1);
    const lq_tensor_info *gs = lq_checkpoint_find(ck, "model.layers.0.mlp.gate_proj.weight_scale");
    CU_ASSERT(gs && gs->dtype == LQ_DTYPE_F16 && gs->n_dims == 2 && gs->shape[0] == 172 && gs->shape[1] == 1);
    lq_checkpoint_close(ck);
    free(dir);
    for (int i = 0; i < n; i++) qmat_free(&m[i]);

    /* one scheme: targets ["Linear"], plain Linear modules ignored */
    n = 0;
    qmat_make(&m[n++], "model.layers.0.mlp.up_proj.weight", LQ_QT_INT4_G128_ASYM, 64, 256, LQ_DTYPE_BF16, 60, 0);
    qmat_make(&m[n++], "model.layers.0.mlp.down_proj.weight", LQ_QT_BF16, 256, 64, LQ_DTYPE_F32, 61, 0);
    qmat_make(&m[n++], "lm_head.weight", LQ_QT_INT4_G128_ASYM, 32, 256, LQ_DTYPE_BF16, 62, 0);
    dir = copy_str(lq_test_tmpdir("single_ct"));
    p   = params(LQ_QFMT_CT);
    CU_ASSERT_EQUAL_FATAL(write_dir(dir, m, n, &p), LQ_OK);
    CU_ASSERT(check_dir(dir, LQ_QFMT_CT, m, n, "single ct"));
    q = qconfig_of(dir, &doc);
    CU_ASSERT_FATAL(q != NULL);
    CU_ASSERT_STRING_EQUAL(lq_json_get_str(lq_json_get(q, "format")), "pack-quantized");
    g0 = lq_json_get(lq_json_get(q, "config_groups"), "group_0");
    CU_ASSERT(g0 && lq_json_get(g0, "targets")->n == 1);
    CU_ASSERT_STRING_EQUAL(lq_json_get(g0, "targets")->items[0].str, "Linear");
    CU_ASSERT_EQUAL(lq_json_get(lq_json_get(g0, "weights"), "symmetric")->type, LQ_JSON_FALSE);
    ign = lq_json_get(q, "ignore");
    CU_ASSERT(ign && ign->n == 1 && strcmp(ign->items[0].str, "model.layers.0.mlp.down_proj") == 0);
    lq_json_free(doc);
    /* the same in GPTQ: lm_head true, sym false */
    p = params(LQ_QFMT_GPTQ_V2);
    CU_ASSERT_EQUAL_FATAL(write_dir(dir, m, n, &p), LQ_OK);
    CU_ASSERT(check_dir(dir, LQ_QFMT_GPTQ_V2, m, n, "single gptq"));
    q = qconfig_of(dir, &doc);
    CU_ASSERT_FATAL(q != NULL);
    CU_ASSERT_EQUAL(lq_json_get(q, "lm_head")->type, LQ_JSON_TRUE);
    CU_ASSERT_EQUAL(lq_json_get(q, "sym")->type, LQ_JSON_FALSE);
    CU_ASSERT_STRING_EQUAL(lq_json_get_str(lq_json_get(q, "checkpoint_format")), "gptq_v2");
    CU_ASSERT_EQUAL(lq_json_get(q, "dynamic")->n, 1);
    lq_json_free(doc);
    free(dir);
    for (int i = 0; i < n; i++) qmat_free(&m[i]);
}

/* compressed-tensors with padded rows (K*b not a multiple of 32) and odd N for the packed zero points */
static void test_qformats_ct_odd_shapes(void) {
    static const lq_qtype types[] = {LQ_QT_INT3_CH_ASYM, LQ_QT_INT2_CH_ASYM, LQ_QT_INT4_CH, LQ_QT_INT8_CH_ASYM,
                                     LQ_QT_FP8_E4M3_CH, LQ_QT_FP8_E4M3_TENSOR};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        qmat m[2];
        qmat_make(&m[0], "model.layers.0.mlp.down_proj.weight", types[i], 37, 172, LQ_DTYPE_F16, 70 + i, 0);
        qmat_make(&m[1], "model.layers.0.mlp.up_proj.weight", types[i], 172, 37, LQ_DTYPE_F32, 80 + i, 0);
        char                    *dir = copy_str(lq_test_tmpdir("ct_odd"));
        lq_qformat_write_params  p   = params(LQ_QFMT_CT);
        CU_ASSERT_EQUAL(write_dir(dir, m, 2, &p), LQ_OK);
        CU_ASSERT(check_dir(dir, LQ_QFMT_CT, m, 2, lq_qtype_name(types[i])));
        if (lq_qtype_has_zeros(types[i])) {
            lq_checkpoint *ck;
            CU_ASSERT_EQUAL_FATAL(lq_checkpoint_open(dir, &ck), LQ_OK);
            const lq_tensor_info *zp = lq_checkpoint_find(ck, "model.layers.0.mlp.down_proj.weight_zero_point");
            const int b = lq_qtype_traits_of(types[i])->bits;
            CU_ASSERT(zp && zp->dtype == LQ_DTYPE_I32 && zp->shape[0] == (37 * b + 31) / 32 && zp->shape[1] == 1);
            /* element 0 = the zero point of row 0, LSB first */
            CU_ASSERT_EQUAL(word_at(zp, 0) & ((1u << b) - 1u), m[0].zeros[0]);
            lq_checkpoint_close(ck);
        }
        qmat_free(&m[0]);
        qmat_free(&m[1]);
        free(dir);
    }
}

/* ---- malformed checkpoints ---- */

typedef struct {
    const char *drop;       /* tensor to leave out                    */
    const char *retype;     /* tensor whose dtype becomes `dtype`     */
    lq_dtype    dtype;
    const char *reshape;    /* tensor whose two dims are swapped      */
    const char *replace;    /* tensor whose bytes become `bytes`      */
    const void *bytes;
    const char *config;     /* config.json text, NULL to copy         */
} mutation;

static lq_status rewrite(const char *src, const char *dst, const mutation *mu) {
    lq_checkpoint *ck;
    lq_status      st = lq_checkpoint_open(src, &ck);
    if (st != LQ_OK) return st;
    const int64_t n = lq_checkpoint_count(ck);
    lq_st_entry  *e = calloc((size_t)n, sizeof *e);
    int64_t       m = 0;
    for (int64_t i = 0; i < n; i++) {
        const lq_tensor_info *t = lq_checkpoint_tensor(ck, i);
        if (mu->drop && strcmp(t->name, mu->drop) == 0) continue;
        lq_st_entry *x = &e[m++];
        x->name        = t->name;
        x->dtype       = t->dtype;
        x->n_dims      = t->n_dims;
        memcpy(x->shape, t->shape, sizeof x->shape);
        x->data = t->data;
        if (mu->retype && strcmp(t->name, mu->retype) == 0) x->dtype = mu->dtype;
        if (mu->reshape && strcmp(t->name, mu->reshape) == 0) {
            x->shape[0] = t->shape[1];
            x->shape[1] = t->shape[0];
        }
        if (mu->replace && strcmp(t->name, mu->replace) == 0) x->data = mu->bytes;
    }
    lq_st_write_params sp = lq_st_write_default_params();
    sp.no_fsync           = true;
    st                    = lq_safetensors_write_dir(dst, e, m, &sp);
    free(e);
    lq_checkpoint_close(ck);
    char   path[512];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/config.json", src);
    uint8_t *cfg = mu->config ? NULL : lq_test_read_file(path, &len);
    snprintf(path, sizeof path, "%s/config.json", dst);
    if (st == LQ_OK)
        lq_test_write_file(path, mu->config ? mu->config : (const char *)cfg, mu->config ? strlen(mu->config) : len);
    free(cfg);
    return st;
}

/* load `module` from a mutated copy of `good`; the status, and the last error must contain `needle` */
static lq_status load_mutated(const char *good, const mutation *mu, const char *module, int64_t rows, int64_t cols,
                              const char *needle) {
    char *dir = copy_str(lq_test_tmpdir("bad"));
    lq_status st = rewrite(good, dir, mu);
    CU_ASSERT_EQUAL_FATAL(st, LQ_OK);
    lq_checkpoint   *ck = NULL;
    lq_quant_config *qc = NULL;
    CU_ASSERT_EQUAL_FATAL(lq_checkpoint_open(dir, &ck), LQ_OK);
    st = lq_quant_config_load(ck, &qc);
    if (st == LQ_OK) {
        lq_qtensor t;
        void      *owned = NULL;
        st               = lq_qformat_load(ck, qc, module, rows, cols, &t, &owned);
        lq_free(owned);
    }
    if (st != LQ_OK && needle && !strstr(lq_test_last_error(), needle))
        printf("\n  expected '%s' in: %s\n", needle, lq_test_last_error());
    if (st != LQ_OK && needle) CU_ASSERT(strstr(lq_test_last_error(), needle) != NULL);
    lq_quant_config_free(qc);
    lq_checkpoint_close(ck);
    free(dir);
    return st;
}

static void test_qformats_malformed_gptq(void) {
    qmat m[3];
    int  n   = 0;
    qmat_make(&m[n++], "model.layers.0.self_attn.q_proj.weight", LQ_QT_INT4_G32, 64, 64, LQ_DTYPE_F16, 90, 0);
    qmat_make(&m[n++], "model.layers.0.mlp.down_proj.weight", LQ_QT_F32, 64, 172, LQ_DTYPE_F32, 91, 0);
    qmat_make(&m[n++], "model.layers.0.mlp.up_proj.weight", LQ_QT_INT8_CH, 172, 64, LQ_DTYPE_F16, 92, 0);
    char                   *good = copy_str(lq_test_tmpdir("good_gptq"));
    lq_qformat_write_params p    = params(LQ_QFMT_GPTQ);
    CU_ASSERT_EQUAL_FATAL(write_dir(good, m, n, &p), LQ_OK);
    const char *Q = "model.layers.0.self_attn.q_proj";
    lq_test_quiet(1);
    mutation mu;
    memset(&mu, 0, sizeof mu);
    CU_ASSERT_EQUAL(load_mutated(good, &mu, Q, 64, 64, NULL), LQ_OK);
    /* missing scales */
    mu.drop = "model.layers.0.self_attn.q_proj.scales";
    CU_ASSERT_EQUAL(load_mutated(good, &mu, Q, 64, 64, "q_proj.scales' is missing"), LQ_ERR_FORMAT);
    memset(&mu, 0, sizeof mu);
    mu.drop = "model.layers.0.self_attn.q_proj.qzeros";
    CU_ASSERT_EQUAL(load_mutated(good, &mu, Q, 64, 64, "qzeros"), LQ_ERR_FORMAT);
    /* missing qweight and no plain weight */
    memset(&mu, 0, sizeof mu);
    mu.drop = "model.layers.0.self_attn.q_proj.qweight";
    CU_ASSERT_EQUAL(load_mutated(good, &mu, Q, 64, 64, "q_proj.weight' is missing"), LQ_ERR_FORMAT);
    /* wrong dtypes and shapes */
    memset(&mu, 0, sizeof mu);
    mu.retype = "model.layers.0.self_attn.q_proj.qweight";
    mu.dtype  = LQ_DTYPE_F32;
    CU_ASSERT_EQUAL(load_mutated(good, &mu, Q, 64, 64, "has dtype F32, expected I32"), LQ_ERR_FORMAT);
    memset(&mu, 0, sizeof mu);
    mu.retype = "model.layers.0.self_attn.q_proj.scales";
    mu.dtype  = LQ_DTYPE_I16;
    CU_ASSERT_EQUAL(load_mutated(good, &mu, Q, 64, 64, "expected F16, BF16 or F32"), LQ_ERR_FORMAT);
    memset(&mu, 0, sizeof mu);
    mu.reshape = "model.layers.0.self_attn.q_proj.qweight";
    CU_ASSERT_EQUAL(load_mutated(good, &mu, Q, 64, 64, "shape [64, 8], expected [8, 64]"), LQ_ERR_FORMAT);
    memset(&mu, 0, sizeof mu);
    CU_ASSERT_EQUAL(load_mutated(good, &mu, Q, 64, 128, "shape"), LQ_ERR_FORMAT); /* caller's shape differs */
    mu.retype = "model.layers.0.mlp.down_proj.weight";
    mu.dtype  = LQ_DTYPE_I32;
    CU_ASSERT_EQUAL(load_mutated(good, &mu, "model.layers.0.mlp.down_proj", 64, 172, "down_proj.weight"),
                    LQ_ERR_FORMAT);
    /* act-order g_idx */
    int32_t gidx[64];
    for (int k = 0; k < 64; k++) gidx[k] = k / 32;
    gidx[3]   = 1; /* group 1 gets 33 columns (a swap with column 40 would be a valid act-order g_idx) */
    memset(&mu, 0, sizeof mu);
    mu.replace = "model.layers.0.self_attn.q_proj.g_idx";
    mu.bytes   = gidx;
    CU_ASSERT_EQUAL(load_mutated(good, &mu, Q, 64, 64, "act-order layouts need exactly 32"), LQ_ERR_UNSUPPORTED);
    gidx[3] = 2; /* out of range */
    CU_ASSERT_EQUAL(load_mutated(good, &mu, Q, 64, 64, "is outside [0, 2)"), LQ_ERR_FORMAT);
    /* a v1 zero word holding 0xF (z = 16) */
    uint32_t zeros[2 * 8];
    for (int i = 0; i < 16; i++) zeros[i] = 0x77777777u;
    zeros[9]   = 0x777F7777u;
    mu.replace = "model.layers.0.self_attn.q_proj.qzeros";
    mu.bytes   = zeros;
    CU_ASSERT_EQUAL(load_mutated(good, &mu, Q, 64, 64, "cannot hold a zero point of 0"), LQ_ERR_FORMAT);
    /* zero points that are not 2^(b-1) in a sym config come back asymmetric */
    zeros[9] = 0x77767777u;
    CU_ASSERT_EQUAL(load_mutated(good, &mu, Q, 64, 64, NULL), LQ_OK);
    /* configs */
    memset(&mu, 0, sizeof mu);
    mu.config = "{\"quantization_config\":{\"quant_method\":\"awq\",\"bits\":4}}";
    CU_ASSERT_EQUAL(load_mutated(good, &mu, Q, 64, 64, "quant_method \"awq\" is not supported"), LQ_ERR_UNSUPPORTED);
    mu.config = "{\"quantization_config\":{\"bits\":4,\"group_size\":32}}";
    CU_ASSERT_EQUAL(load_mutated(good, &mu, Q, 64, 64, "no \"quant_method\""), LQ_ERR_FORMAT);
    mu.config = "{\"quantization_config\":{\"quant_method\":\"gptq\",\"bits\":5,\"group_size\":32}}";
    CU_ASSERT_EQUAL(load_mutated(good, &mu, Q, 64, 64, "5-bit"), LQ_ERR_UNSUPPORTED);
    mu.config = "{\"quantization_config\":{\"quant_method\":\"gptq\",\"bits\":\"4\",\"group_size\":32}}";
    CU_ASSERT_EQUAL(load_mutated(good, &mu, Q, 64, 64, "bits"), LQ_ERR_UNSUPPORTED);
    mu.config = "{\"quantization_config\":{\"quant_method\":\"gptq\",\"bits\":4}}";
    CU_ASSERT_EQUAL(load_mutated(good, &mu, Q, 64, 64, "\"group_size\" is missing"), LQ_ERR_FORMAT);
    mu.config = "{\"quantization_config\":{\"quant_method\":\"gptq\",\"bits\":4,\"group_size\":32,\"sym\":1}}";
    CU_ASSERT_EQUAL(load_mutated(good, &mu, Q, 64, 64, "\"sym\" is not true/false"), LQ_ERR_FORMAT);
    mu.config = "{\"quantization_config\":{\"quant_method\":\"gptq\",\"bits\":4,\"group_size\":32,"
                "\"checkpoint_format\":\"marlin\"}}";
    CU_ASSERT_EQUAL(load_mutated(good, &mu, Q, 64, 64, "marlin"), LQ_ERR_UNSUPPORTED);
    mu.config = "{\"quantization_config\":{\"quant_method\":\"gptq\",\"bits\":4,\"group_size\":32,"
                "\"dynamic\":{\"-:model\\\\.layers\\\\.(?!1)\":{}}}}";
    CU_ASSERT_EQUAL(load_mutated(good, &mu, Q, 64, 64, "outside the supported subset"), LQ_ERR_UNSUPPORTED);
    mu.config = "{\"quantization_config\":{\"quant_method\":\"gptq\",\"bits\":4,\"group_size\":32,"
                "\"dynamic\":{\"-:model[\":{}}}}";
    CU_ASSERT_EQUAL(load_mutated(good, &mu, Q, 64, 64, "regex"), LQ_ERR_FORMAT);
    mu.config = "{\"quantization_config\":{\"quant_method\":\"gptq\",\"bits\":4,\"group_size\":32,"
                "\"dynamic\":{\"-:.*q_proj\":{}}}}"; /* says plain, but has a qweight */
    CU_ASSERT_EQUAL(load_mutated(good, &mu, Q, 64, 64, "leaves it unquantized"), LQ_ERR_FORMAT);
    mu.config = "{\"quantization_config\":{\"quant_method\":\"gptq\",\"bits\":4,\"group_size\":32";
    CU_ASSERT_EQUAL(load_mutated(good, &mu, Q, 64, 64, "invalid JSON"), LQ_ERR_FORMAT);
    /* Python-style patterns: \d, (?:), lazy quantifiers, classes */
    mu.config = "{\"quantization_config\":{\"quant_method\":\"gptq\",\"bits\":4,\"group_size\":32,"
                "\"dynamic\":{\"-:.*?\\\\.mlp\\\\.down_proj\":{},"
                "\"+:model\\\\.layers\\\\.\\\\d+\\\\.mlp\\\\.(?:gate|up)_[p]roj$\":{\"bits\":8,\"group_size\":-1}}}}";
    CU_ASSERT_EQUAL(load_mutated(good, &mu, "model.layers.0.mlp.up_proj", 172, 64, NULL), LQ_OK);
    CU_ASSERT_EQUAL(load_mutated(good, &mu, "model.layers.0.mlp.down_proj", 64, 172, NULL), LQ_OK);
    /* without the override up_proj is read as 4-bit g32: its tensors do not fit */
    mu.config = "{\"quantization_config\":{\"quant_method\":\"gptq\",\"bits\":4,\"group_size\":32}}";
    CU_ASSERT_EQUAL(load_mutated(good, &mu, "model.layers.0.mlp.up_proj", 172, 64, "does not pack"), LQ_ERR_FORMAT);
    /* no quantization_config: every module is plain */
    mu.config = "{\"model_type\":\"llama\"}";
    CU_ASSERT_EQUAL(load_mutated(good, &mu, "model.layers.0.mlp.down_proj", 64, 172, NULL), LQ_OK);
    lq_test_quiet(0);
    /* the legacy quantize_config.json alone, without quant_method */
    lq_checkpoint   *ck;
    lq_quant_config *qc = NULL;
    char            *dir = copy_str(lq_test_tmpdir("legacy"));
    memset(&mu, 0, sizeof mu);
    mu.config = "{\"model_type\":\"llama\"}";
    CU_ASSERT_EQUAL_FATAL(rewrite(good, dir, &mu), LQ_OK);
    char path[512];
    snprintf(path, sizeof path, "%s/quantize_config.json", dir);
    const char *legacy = "{\"bits\":4,\"group_size\":32,\"desc_act\":false,\"sym\":true,\"damp_percent\":0.01}";
    CU_ASSERT_EQUAL(lq_test_write_file(path, legacy, strlen(legacy)), 0);
    CU_ASSERT_EQUAL_FATAL(lq_checkpoint_open(dir, &ck), LQ_OK);
    CU_ASSERT_EQUAL(lq_quant_config_load(ck, &qc), LQ_OK);
    CU_ASSERT_FATAL(qc != NULL);
    CU_ASSERT_EQUAL(lq_quant_config_format(qc), LQ_QFMT_GPTQ);
    lq_qtensor t;
    void      *owned = NULL;
    CU_ASSERT_EQUAL(lq_qformat_load(ck, qc, Q, 64, 64, &t, &owned), LQ_OK);
    CU_ASSERT(same(&t, &m[0].t, LQ_DTYPE_F16, "legacy"));
    lq_free(owned);
    lq_quant_config_free(qc);
    lq_checkpoint_close(ck);
    /* lq_quant_config_parse directly */
    const char *none = "{\"model_type\":\"llama\"}";
    qc               = (lq_quant_config *)1;
    CU_ASSERT_EQUAL(lq_quant_config_parse(none, strlen(none), "t", &qc), LQ_OK);
    CU_ASSERT_PTR_NULL(qc);
    free(dir);
    free(good);
    for (int i = 0; i < n; i++) qmat_free(&m[i]);
}

static void test_qformats_malformed_ct(void) {
    qmat m[2];
    qmat_make(&m[0], "model.layers.0.mlp.up_proj.weight", LQ_QT_INT4_G32_ASYM, 64, 64, LQ_DTYPE_F16, 95, 0);
    qmat_make(&m[1], "model.layers.0.mlp.gate_proj.weight", LQ_QT_FP8_E4M3_CH, 64, 64, LQ_DTYPE_F16, 96, 0);
    char                   *good = copy_str(lq_test_tmpdir("good_ct"));
    lq_qformat_write_params p    = params(LQ_QFMT_CT);
    CU_ASSERT_EQUAL_FATAL(write_dir(good, m, 2, &p), LQ_OK);
    const char *U = "model.layers.0.mlp.up_proj", *G = "model.layers.0.mlp.gate_proj";
    lq_test_quiet(1);
    mutation mu;
    memset(&mu, 0, sizeof mu);
    mu.drop = "model.layers.0.mlp.up_proj.weight_zero_point";
    CU_ASSERT_EQUAL(load_mutated(good, &mu, U, 64, 64, "up_proj.weight_zero_point' is missing"), LQ_ERR_FORMAT);
    mu.drop = "model.layers.0.mlp.up_proj.weight_shape";
    CU_ASSERT_EQUAL(load_mutated(good, &mu, U, 64, 64, "weight_shape"), LQ_ERR_FORMAT);
    mu.drop = "model.layers.0.mlp.gate_proj.weight_scale";
    CU_ASSERT_EQUAL(load_mutated(good, &mu, G, 64, 64, "gate_proj.weight_scale' is missing"), LQ_ERR_FORMAT);
    memset(&mu, 0, sizeof mu);
    const int64_t bad_shape[2] = {64, 65};
    mu.replace                 = "model.layers.0.mlp.up_proj.weight_shape";
    mu.bytes                   = bad_shape;
    CU_ASSERT_EQUAL(load_mutated(good, &mu, U, 64, 64, "weight_shape is [64, 65]"), LQ_ERR_FORMAT);
    memset(&mu, 0, sizeof mu);
    mu.reshape = "model.layers.0.mlp.up_proj.weight_scale";
    CU_ASSERT_EQUAL(load_mutated(good, &mu, U, 64, 64, "expected [64, 2]"), LQ_ERR_FORMAT);
    memset(&mu, 0, sizeof mu);
    mu.retype = "model.layers.0.mlp.gate_proj.weight";
    mu.dtype  = LQ_DTYPE_I8;
    CU_ASSERT_EQUAL(load_mutated(good, &mu, G, 64, 64, "expected F8_E4M3"), LQ_ERR_FORMAT);
    memset(&mu, 0, sizeof mu);
    mu.config = "{\"quantization_config\":{\"quant_method\":\"compressed-tensors\",\"format\":\"pack-quantized\","
                "\"config_groups\":{\"g\":{\"targets\":[\"Linear\"],\"weights\":{\"num_bits\":4,\"strategy\":"
                "\"block\",\"block_structure\":[128,128]}}}}}";
    CU_ASSERT_EQUAL(load_mutated(good, &mu, U, 64, 64, "strategy \"block\""), LQ_ERR_UNSUPPORTED);
    mu.config = "{\"quantization_config\":{\"quant_method\":\"compressed-tensors\",\"format\":\"nvfp4-pack-quantized\","
                "\"config_groups\":{\"g\":{\"targets\":[\"Linear\"],\"weights\":{\"num_bits\":4,\"type\":\"float\","
                "\"strategy\":\"tensor_group\",\"group_size\":16}}}}}";
    CU_ASSERT_EQUAL(load_mutated(good, &mu, U, 64, 64, "float weights of 4 bits"), LQ_ERR_UNSUPPORTED);
    mu.config = "{\"quantization_config\":{\"quant_method\":\"compressed-tensors\",\"format\":\"pack-quantized\"}}";
    CU_ASSERT_EQUAL(load_mutated(good, &mu, U, 64, 64, "config_groups"), LQ_ERR_FORMAT);
    mu.config = "{\"quantization_config\":{\"quant_method\":\"compressed-tensors\",\"format\":\"pack-quantized\","
                "\"config_groups\":{\"W4A16\":[\"Linear\"]}}}";
    CU_ASSERT_EQUAL(load_mutated(good, &mu, U, 64, 64, "preset"), LQ_ERR_UNSUPPORTED);
    /* regex targets (Python syntax) and ignore by regex */
    mu.config = "{\"quantization_config\":{\"quant_method\":\"compressed-tensors\",\"format\":\"mixed-precision\","
                "\"config_groups\":{\"a\":{\"targets\":[\"re:.*mlp\\\\.(up|down)_proj\"],\"weights\":{\"num_bits\":4,"
                "\"type\":\"int\",\"symmetric\":false,\"strategy\":\"group\",\"group_size\":32}},"
                "\"b\":{\"targets\":[\"re:model\\\\.layers\\\\.\\\\d+\\\\.mlp\\\\.[^u]\\\\w+$\"],\"weights\":{\"num_bits\":8,"
                "\"type\":\"float\",\"strategy\":\"channel\"}}},\"ignore\":[\"re:.*down_proj$\"]}}";
    CU_ASSERT_EQUAL(load_mutated(good, &mu, U, 64, 64, NULL), LQ_OK);
    CU_ASSERT_EQUAL(load_mutated(good, &mu, G, 64, 64, NULL), LQ_OK);
    /* an ignored module must be plain */
    mu.config = "{\"quantization_config\":{\"quant_method\":\"compressed-tensors\",\"format\":\"pack-quantized\","
                "\"config_groups\":{\"a\":{\"targets\":[\"Linear\"],\"weights\":{\"num_bits\":4,\"symmetric\":false,"
                "\"group_size\":32}}},\"ignore\":[\"model.layers.0.mlp.up_proj\"]}}";
    CU_ASSERT_EQUAL(load_mutated(good, &mu, U, 64, 64, "in the ignore list, but"), LQ_ERR_FORMAT);
    lq_test_quiet(0);
    free(good);
    qmat_free(&m[0]);
    qmat_free(&m[1]);
}

/* int-quantized (llm-compressor W8A8): weight I8 = u - 128, read as int8_ch */
static void test_qformats_ct_int_quantized(void) {
    enum { N = 48, K = 96 };
    int8_t   w[N * K];
    uint16_t s[N];
    uint64_t seed = 5;
    for (int i = 0; i < N * K; i++) w[i] = (int8_t)(lq_test_rand(&seed) & 0xFF);
    for (int i = 0; i < N; i++) s[i] = lq_f32_to_f16(0.01f * (float)(i + 1));
    lq_st_entry e[2];
    memset(e, 0, sizeof e);
    e[0] = (lq_st_entry){.name = "model.layers.0.mlp.up_proj.weight", .dtype = LQ_DTYPE_I8, .n_dims = 2,
                         .shape = {N, K}, .data = w};
    e[1] = (lq_st_entry){.name = "model.layers.0.mlp.up_proj.weight_scale", .dtype = LQ_DTYPE_F16, .n_dims = 2,
                         .shape = {N, 1}, .data = s};
    char              *dir = copy_str(lq_test_tmpdir("ct_int_quantized"));
    lq_st_write_params sp  = lq_st_write_default_params();
    sp.no_fsync            = true;
    CU_ASSERT_EQUAL_FATAL(lq_safetensors_write_dir(dir, e, 2, &sp), LQ_OK);
    const char *cfg = "{\"quantization_config\":{\"quant_method\":\"compressed-tensors\",\"format\":\"int-quantized\","
                      "\"quantization_status\":\"compressed\",\"config_groups\":{\"group_0\":{\"targets\":[\"Linear\"],"
                      "\"weights\":{\"num_bits\":8,\"type\":\"int\",\"symmetric\":true,\"strategy\":\"channel\"},"
                      "\"input_activations\":{\"num_bits\":8,\"type\":\"int\",\"symmetric\":true,\"strategy\":\"token\","
                      "\"dynamic\":true}}},\"ignore\":[\"lm_head\"]}}";
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    CU_ASSERT_EQUAL(lq_test_write_file(path, cfg, strlen(cfg)), 0);
    lq_checkpoint   *ck;
    lq_quant_config *qc;
    CU_ASSERT_EQUAL_FATAL(lq_checkpoint_open(dir, &ck), LQ_OK);
    CU_ASSERT_EQUAL_FATAL(lq_quant_config_load(ck, &qc), LQ_OK);
    lq_qtensor t;
    void      *owned = NULL;
    CU_ASSERT_EQUAL_FATAL(lq_qformat_load(ck, qc, "model.layers.0.mlp.up_proj", N, K, &t, &owned), LQ_OK);
    CU_ASSERT_EQUAL(t.qtype, LQ_QT_INT8_CH);
    int ok = 1;
    for (int i = 0; i < N * K; i++) ok &= ((const uint8_t *)t.data)[i] == (uint8_t)(w[i] + 128);
    for (int i = 0; i < N; i++) ok &= t.scales[i] == lq_f16_to_f32(s[i]);
    CU_ASSERT(ok);
    CU_ASSERT_PTR_NULL(t.zeros);
    CU_ASSERT_EQUAL(t.scale_dtype, LQ_DTYPE_F16);
    lq_free(owned);
    lq_quant_config_free(qc);
    lq_checkpoint_close(ck);
    free(dir);
}

/* ==== interop fixtures ====
 * stories260K quantized with lq_quantize_ref into every scheme family and
 * written to tests/out/qformat_interop/<name>/ (with tokenizer.model, which
 * GPTQModel needs), beside <name>.ref.safetensors: the dense f32 state dict
 * the directory should dequantize to. tests/interop/qformat_check.py reads
 * them back with compressed-tensors, GPTQModel and transformers. */

#define QF_INTEROP_DIR "tests/out/qformat_interop"

typedef struct {
    const char *name;
    lq_qformat  fmt;
    lq_qtype    attn, mlp, down, down0; /* q/k/v/o, gate/up, down_proj of layers 1-4, down_proj of layer 0 */
} interop_case;

static const interop_case k_interop[] = {
    {"gptq_sym", LQ_QFMT_GPTQ, LQ_QT_INT4_G32, LQ_QT_INT8_G32, LQ_QT_INT8_CH, LQ_QT_F32},
    {"gptq_v2_asym", LQ_QFMT_GPTQ_V2, LQ_QT_INT4_G32_ASYM, LQ_QT_INT8_G64_ASYM, LQ_QT_INT8_CH_ASYM, LQ_QT_F32},
    {"gptq_3sym", LQ_QFMT_GPTQ, LQ_QT_INT3_G32, LQ_QT_INT8_G32, LQ_QT_INT8_CH, LQ_QT_F32},
    {"gptq_v2_3asym", LQ_QFMT_GPTQ_V2, LQ_QT_INT3_G32_ASYM, LQ_QT_INT8_G32, LQ_QT_INT8_CH_ASYM, LQ_QT_F32},
    {"gptq_v1_asym", LQ_QFMT_GPTQ, LQ_QT_INT4_G64_ASYM, LQ_QT_INT8_CH_ASYM, LQ_QT_INT8_CH_ASYM, LQ_QT_F32},
    {"gptq_2bit", LQ_QFMT_GPTQ, LQ_QT_INT2_G32, LQ_QT_F32, LQ_QT_F32, LQ_QT_F32},
    {"ct_w4a16", LQ_QFMT_CT, LQ_QT_INT4_G64, LQ_QT_INT4_G64, LQ_QT_F32, LQ_QT_F32},
    {"ct_asym", LQ_QFMT_CT, LQ_QT_INT4_G32_ASYM, LQ_QT_INT4_G32_ASYM, LQ_QT_F32, LQ_QT_F32},
    {"ct_mixed_sym", LQ_QFMT_CT, LQ_QT_INT4_G32, LQ_QT_INT8_CH, LQ_QT_FP8_E4M3_CH, LQ_QT_F32},
    {"ct_mixed_asym", LQ_QFMT_CT, LQ_QT_INT4_G32_ASYM, LQ_QT_INT8_CH, LQ_QT_FP8_E4M3_CH, LQ_QT_F32},
    {"ct_low", LQ_QFMT_CT, LQ_QT_INT2_G32_ASYM, LQ_QT_INT3_G32, LQ_QT_INT3_CH_ASYM, LQ_QT_INT3_CH_ASYM},
    {"ct_fp8_tensor", LQ_QFMT_CT, LQ_QT_FP8_E4M3_TENSOR, LQ_QT_FP8_E4M3_TENSOR, LQ_QT_FP8_E4M3_TENSOR,
     LQ_QT_FP8_E4M3_TENSOR},
};

static void test_qformats_interop_fixtures(void) {
    char   path[1024];
    size_t cfg_len = 0, tok_len = 0;
    snprintf(path, sizeof path, "%s", lq_test_shared("stories260K-hf/config.json"));
    uint8_t *cfg = lq_test_read_file(path, &cfg_len);
    snprintf(path, sizeof path, "%s", lq_test_shared("stories260K-hf/tokenizer.model"));
    uint8_t       *tok = lq_test_read_file(path, &tok_len);
    lq_checkpoint *ck  = NULL;
    if (!cfg || !tok || lq_checkpoint_open(lq_test_shared("stories260K-hf"), &ck) != LQ_OK) {
        printf("skipped (no %s)", lq_test_shared("stories260K-hf"));
        free(cfg);
        free(tok);
        return;
    }
    const int64_t n = lq_checkpoint_count(ck);
    for (size_t c = 0; c < sizeof k_interop / sizeof k_interop[0]; c++) {
        const interop_case *ic = &k_interop[c];
        snprintf(path, sizeof path, "rm -rf " QF_INTEROP_DIR "/%s && mkdir -p " QF_INTEROP_DIR "/%s", ic->name,
                 ic->name);
        CU_ASSERT_EQUAL_FATAL(system(path), 0);
        lq_qtensor  *t   = calloc((size_t)n, sizeof *t);
        lq_st_entry *e   = calloc((size_t)n, sizeof *e);
        void       **own = calloc((size_t)n * 4, sizeof *own);
        for (int64_t i = 0; i < n; i++) {
            const lq_tensor_info *ti = lq_checkpoint_tensor(ck, i);
            lq_qtype              q  = LQ_QT_F32;
            if (ti->n_dims == 2 && strstr(ti->name, "_proj.weight"))
                q = strstr(ti->name, "self_attn") ? ic->attn
                    : !strstr(ti->name, "down_proj") ? ic->mlp
                    : strstr(ti->name, "layers.0.") ? ic->down0
                                                    : ic->down;
            if (q != LQ_QT_F32 && !lq_qformat_supports(ic->fmt, q, ti->shape[0], ti->shape[1], NULL)) q = LQ_QT_F32;
            t[i] = (lq_qtensor){.name = ti->name, .qtype = LQ_QT_F32, .n_dims = ti->n_dims, .data = ti->data,
                                .scale_dtype = LQ_DTYPE_F16};
            memcpy(t[i].shape, ti->shape, sizeof t[i].shape);
            e[i] = (lq_st_entry){.name = ti->name, .dtype = LQ_DTYPE_F32, .n_dims = ti->n_dims, .data = ti->data};
            memcpy(e[i].shape, ti->shape, sizeof e[i].shape);
            if (q == LQ_QT_F32) continue;
            const int64_t r = ti->shape[0], k = ti->shape[1], nz = r * lq_qtype_n_groups(q, k);
            uint8_t      *data = calloc((size_t)r, (size_t)lq_qtype_row_bytes(q, k));
            float        *sc   = calloc((size_t)lq_qtype_n_scales(q, r, k), 4);
            uint8_t      *z    = calloc((size_t)nz + 1, 1);
            float        *deq  = calloc((size_t)(r * k), 4);
            own[4 * i] = data, own[4 * i + 1] = sc, own[4 * i + 2] = z, own[4 * i + 3] = deq;
            const lq_quant_params qp = lq_quant_default_params();
            CU_ASSERT_EQUAL_FATAL(lq_quantize_ref(q, ti->data, r, k, &qp, data, sc, z), LQ_OK);
            const bool hz = lq_qtype_has_zeros(q);
            if (ic->fmt == LQ_QFMT_GPTQ && hz)
                for (int64_t j = 0; j < nz; j++) z[j] = z[j] ? z[j] : 1; /* v1 cannot store 0 */
            CU_ASSERT_EQUAL_FATAL(lq_dequantize_ref(q, data, sc, hz ? z : NULL, r, k, deq), LQ_OK);
            t[i].qtype  = q;
            t[i].data   = data;
            t[i].scales = sc;
            t[i].zeros  = hz ? z : NULL;
            e[i].data   = deq;
        }
        lq_qformat_write_params p = lq_qformat_write_default_params();
        p.format                  = ic->fmt;
        p.config_json             = (const char *)cfg;
        p.config_json_len         = cfg_len;
        p.model_dtype             = LQ_DTYPE_F32;
        p.no_fsync                = true;
        snprintf(path, sizeof path, QF_INTEROP_DIR "/%s", ic->name);
        CU_ASSERT_EQUAL(lq_qformat_write_dir(path, t, n, &p), LQ_OK);
        snprintf(path, sizeof path, QF_INTEROP_DIR "/%s/tokenizer.model", ic->name);
        CU_ASSERT_EQUAL(lq_test_write_file(path, tok, tok_len), 0);
        snprintf(path, sizeof path, QF_INTEROP_DIR "/%s.ref.safetensors", ic->name);
        lq_st_write_params sp = lq_st_write_default_params();
        static const lq_kv meta[] = {{"format", "pt"}};
        sp.metadata           = meta;
        sp.n_metadata         = 1;
        sp.no_fsync           = true;
        CU_ASSERT_EQUAL(lq_safetensors_write(path, e, n, &sp), LQ_OK);
        /* and our own reader gives the same records back */
        qmat *m = calloc((size_t)n, sizeof *m);
        for (int64_t i = 0; i < n; i++) {
            m[i].t = t[i];
            snprintf(m[i].name, sizeof m[i].name, "%s", t[i].name);
        }
        snprintf(path, sizeof path, QF_INTEROP_DIR "/%s", ic->name);
        CU_ASSERT(check_dir(path, ic->fmt, m, (int)n, ic->name));
        free(m);
        for (int64_t i = 0; i < 4 * n; i++) free(own[i]);
        free(own);
        free(t);
        free(e);
    }
    lq_checkpoint_close(ck);
    free(cfg);
    free(tok);
}

/* act-order: a shuffled g_idx (floor(rank / G)) survives GPTQ v1/v2 with desc_act in the config; compressed-tensors
 * refuses it (actorder "group" is gone upstream); a g_idx whose groups are not G columns each is refused */
static void test_qformats_act_order(void) {
    static const lq_qformat fmts[] = {LQ_QFMT_GPTQ, LQ_QFMT_GPTQ_V2, LQ_QFMT_CT};
    const lq_qtype          types[] = {LQ_QT_INT4_G32, LQ_QT_INT4_G64_ASYM};
    int32_t                 order[COLS], gidx[COLS];
    uint64_t                s = 77;
    for (int k = 0; k < COLS; k++) order[k] = k;
    for (int k = COLS - 1; k > 0; k--) { /* Fisher-Yates */
        const int j = (int)(lq_test_rand(&s) % (uint64_t)(k + 1)), t = order[k];
        order[k] = order[j], order[j] = t;
    }
    for (int r = 0; r < 2; r++)
        for (int fi = 0; fi < 3; fi++) {
            const int G = lq_qtype_traits_of(types[r])->group;
            for (int k = 0; k < COLS; k++) gidx[order[k]] = k / G;
            char dname[64];
            snprintf(dname, sizeof dname, "act_%d_%d", r, fi);
            char *dir = copy_str(lq_test_tmpdir(dname));
            qmat  m[2];
            qmat_make(&m[0], "model.layers.0.self_attn.q_proj.weight", types[r], ROWS, COLS, LQ_DTYPE_F16, 5, 1);
            qmat_make(&m[1], "model.layers.0.mlp.up_proj.weight", types[r], ROWS, COLS, LQ_DTYPE_F16, 6, 1);
            m[0].t.g_idx               = gidx;
            lq_qformat_write_params p  = params(fmts[fi]);
            if (fmts[fi] == LQ_QFMT_CT) { /* compressed-tensors 0.20 removed actorder "group": only on request */
                lq_test_quiet(1);
                CU_ASSERT_EQUAL(write_dir(dir, m, 2, &p), LQ_ERR_UNSUPPORTED);
                CU_ASSERT(strstr(lq_test_last_error(), "actorder") != NULL);
                lq_test_quiet(0);
                p.ct_actorder_group = true;
            }
            CU_ASSERT_EQUAL(write_dir(dir, m, 2, &p), LQ_OK);
            CU_ASSERT(check_dir(dir, fmts[fi], m, 2, dname));
            char   cpath[512];
            size_t len = 0;
            snprintf(cpath, sizeof cpath, "%s/config.json", dir);
            char *cfg = (char *)lq_test_read_file(cpath, &len);
            CU_ASSERT_FATAL(cfg != NULL);
            cfg = realloc(cfg, len + 1);
            cfg[len] = 0;
            CU_ASSERT(strstr(cfg, fmts[fi] == LQ_QFMT_CT ? "\"actorder\": \"group\"" : "\"desc_act\": true") != NULL);
            free(cfg);
            /* one column moved to another group: refused */
            const int32_t keep = gidx[order[0]];
            gidx[order[0]]     = gidx[order[COLS - 1]];
            lq_test_quiet(1);
            CU_ASSERT_EQUAL(write_dir(dir, m, 2, &p), LQ_ERR_INVALID_ARG);
            CU_ASSERT(strstr(lq_test_last_error(), "g_idx") != NULL);
            lq_test_quiet(0);
            gidx[order[0]] = keep;
            qmat_free(&m[0]);
            qmat_free(&m[1]);
            free(dir);
        }
}

static char g_warning[1024];
static void warning_sink(lq_log_level level, const char *msg, void *user) {
    (void)user;
    if (level == LQ_LOG_WARN) snprintf(g_warning, sizeof g_warning, "%s", msg);
}

/* act-order, the rest: modules that disagree on act-order (desc_act true, "+:" {"desc_act": false} overrides for
 * the grouped ones without it, a trivial g_idx read back as NULL), writer refusals (a value out of range, a g_idx on
 * a plain or fp8 tensor, before compressed-tensors' actorder refusal), a valid act-order g_idx under desc_act false
 * (applied, with a warning), malformed weight_g_idx, and GGUF refusing any tensor with a g_idx */
static void test_qformats_act_order_edges(void) {
    int32_t  order[COLS], gidx[COLS], triv[COLS], bad[COLS];
    uint64_t s = 4242;
    for (int k = 0; k < COLS; k++) order[k] = k, triv[k] = k / 32;
    for (int k = COLS - 1; k > 0; k--) {
        const int j = (int)(lq_test_rand(&s) % (uint64_t)(k + 1)), t = order[k];
        order[k] = order[j], order[j] = t;
    }
    for (int k = 0; k < COLS; k++) gidx[order[k]] = k / 32;
    qmat m[5];
    qmat_make(&m[0], "model.layers.0.self_attn.q_proj.weight", LQ_QT_INT4_G32, ROWS, COLS, LQ_DTYPE_F16, 31, 1);
    qmat_make(&m[1], "model.layers.0.mlp.up_proj.weight", LQ_QT_INT4_G32, ROWS, COLS, LQ_DTYPE_F16, 32, 1);
    qmat_make(&m[2], "model.layers.0.mlp.gate_proj.weight", LQ_QT_INT4_G32, ROWS, COLS, LQ_DTYPE_F16, 33, 1);
    qmat_make(&m[3], "model.layers.0.self_attn.k_proj.weight", LQ_QT_INT8_CH, ROWS, COLS, LQ_DTYPE_F16, 34, 1);
    qmat_make(&m[4], "model.layers.0.self_attn.v_proj.weight", LQ_QT_INT8_G64_ASYM, ROWS, COLS, LQ_DTYPE_F16, 35, 1);
    m[0].t.g_idx = gidx;
    m[2].t.g_idx = triv; /* k / G given explicitly: the plain layout */
    int32_t gidx64[COLS];
    for (int k = 0; k < COLS; k++) gidx64[order[COLS - 1 - k]] = k / 64;
    m[4].t.g_idx = gidx64;

    /* GPTQ v2: desc_act true, overrides for up_proj and gate_proj only */
    char                   *dir = copy_str(lq_test_tmpdir("act_mixed"));
    lq_qformat_write_params p   = params(LQ_QFMT_GPTQ_V2);
    CU_ASSERT_EQUAL_FATAL(write_dir(dir, m, 5, &p), LQ_OK);
    lq_json_doc   *doc = NULL;
    const lq_json *q   = qconfig_of(dir, &doc);
    CU_ASSERT_FATAL(q != NULL);
    bool desc = false;
    CU_ASSERT(lq_json_get_bool(lq_json_get(q, "desc_act"), &desc) && desc);
    const lq_json *dyn = lq_json_get(q, "dynamic");
    CU_ASSERT_FATAL(dyn != NULL && dyn->type == LQ_JSON_OBJECT);
    static const char *const off[] = {"+:^model\\.layers\\.0\\.mlp\\.up_proj$", "+:^model\\.layers\\.0\\.mlp\\.gate_proj$"};
    for (int i = 0; i < 2; i++) {
        const lq_json *o = lq_json_get(dyn, off[i]);
        bool           d = true;
        CU_ASSERT(o != NULL && lq_json_get_bool(lq_json_get(o, "desc_act"), &d) && !d);
        CU_ASSERT(o != NULL && lq_json_get(o, "bits") == NULL); /* the majority scheme: only desc_act differs */
    }
    /* k_proj (per channel) needs none; v_proj (another scheme, act-order) gets bits but no desc_act */
    CU_ASSERT(lq_json_get(dyn, "+:^model\\.layers\\.0\\.self_attn\\.k_proj$") != NULL); /* int8: other bits */
    CU_ASSERT(lq_json_get(lq_json_get(dyn, "+:^model\\.layers\\.0\\.self_attn\\.k_proj$"), "desc_act") == NULL);
    const lq_json *v = lq_json_get(dyn, "+:^model\\.layers\\.0\\.self_attn\\.v_proj$");
    CU_ASSERT(v != NULL && lq_json_get(v, "desc_act") == NULL && lq_json_get(v, "bits") != NULL);
    CU_ASSERT(lq_json_get(dyn, "+:^model\\.layers\\.0\\.self_attn\\.q_proj$") == NULL);
    lq_json_free(doc);
    m[2].t.g_idx = NULL; /* read back as NULL */
    CU_ASSERT(check_dir(dir, LQ_QFMT_GPTQ_V2, m, 5, "act_mixed"));
    m[2].t.g_idx = triv;

    /* a valid act-order g_idx under desc_act false: applied, with a warning */
    mutation mu;
    memset(&mu, 0, sizeof mu);
    mu.config = "{\"quantization_config\":{\"quant_method\":\"gptq\",\"bits\":4,\"group_size\":32,\"sym\":true,"
                "\"desc_act\":false,\"checkpoint_format\":\"gptq_v2\"}}";
    g_warning[0] = 0;
    lq_log_set(warning_sink, NULL);
    CU_ASSERT_EQUAL(load_mutated(dir, &mu, "model.layers.0.self_attn.q_proj", ROWS, COLS, NULL), LQ_OK);
    lq_test_reinstall_log();
    CU_ASSERT(strstr(g_warning, "desc_act is false") != NULL && strstr(g_warning, "q_proj") != NULL);
    free(dir);

    /* writer refusals, each naming the tensor */
    lq_test_quiet(1);
    dir = copy_str(lq_test_tmpdir("act_bad"));
    static const lq_qformat fmts[] = {LQ_QFMT_GPTQ, LQ_QFMT_GPTQ_V2, LQ_QFMT_CT};
    for (int fi = 0; fi < 3; fi++) {
        p = params(fmts[fi]);
        memcpy(bad, gidx, sizeof bad);
        bad[order[5]] = -1;
        m[0].t.g_idx  = bad;
        CU_ASSERT_EQUAL(write_dir(dir, m, 1, &p), LQ_ERR_INVALID_ARG); /* CT: before the actorder refusal */
        CU_ASSERT(strstr(lq_test_last_error(), "g_idx[") && strstr(lq_test_last_error(), "q_proj"));
        bad[order[5]] = COLS / 32;
        CU_ASSERT_EQUAL(write_dir(dir, m, 1, &p), LQ_ERR_INVALID_ARG);
        CU_ASSERT(strstr(lq_test_last_error(), "outside [0, 8)") != NULL);
        m[0].t.g_idx = gidx;
    }
    qmat plain[2];
    qmat_make(&plain[0], "model.layers.0.self_attn.o_proj.weight", LQ_QT_F16, ROWS, COLS, LQ_DTYPE_F16, 36, 0);
    qmat_make(&plain[1], "model.layers.0.self_attn.q_proj.weight", LQ_QT_FP8_E4M3_CH, ROWS, COLS, LQ_DTYPE_F16, 37, 0);
    plain[0].t.g_idx = triv;
    plain[1].t.g_idx = triv;
    qmat two[2] = {m[1], plain[0]};
    p           = params(LQ_QFMT_GPTQ);
    CU_ASSERT_EQUAL(write_dir(dir, two, 2, &p), LQ_ERR_INVALID_ARG);
    CU_ASSERT(strstr(lq_test_last_error(), "o_proj") && strstr(lq_test_last_error(), "g_idx"));
    p = params(LQ_QFMT_CT);
    CU_ASSERT_EQUAL(write_dir(dir, &plain[1], 1, &p), LQ_ERR_INVALID_ARG);
    CU_ASSERT(strstr(lq_test_last_error(), "fp8_e4m3_ch") != NULL);
    lq_test_quiet(0);
    free(dir);

    /* compressed-tensors with actorder "group": weight_g_idx on every module of the scheme; malformed ones refused */
    dir = copy_str(lq_test_tmpdir("act_ct"));
    p   = params(LQ_QFMT_CT);
    p.ct_actorder_group = true;
    CU_ASSERT_EQUAL_FATAL(write_dir(dir, m, 2, &p), LQ_OK);
    m[1].t.g_idx = NULL;
    CU_ASSERT(check_dir(dir, LQ_QFMT_CT, m, 2, "act_ct"));
    lq_checkpoint *ck = NULL;
    CU_ASSERT_FATAL(lq_checkpoint_open(dir, &ck) == LQ_OK);
    const lq_tensor_info *up = lq_checkpoint_find(ck, "model.layers.0.mlp.up_proj.weight_g_idx");
    CU_ASSERT(up != NULL && up->dtype == LQ_DTYPE_I32 && up->n_dims == 1 && up->shape[0] == COLS &&
              memcmp(up->data, triv, sizeof triv) == 0); /* the trivial member of the scheme: k / G */
    lq_checkpoint_close(ck);
    const char *Q = "model.layers.0.self_attn.q_proj";
    lq_test_quiet(1);
    memset(&mu, 0, sizeof mu);
    mu.replace = "model.layers.0.self_attn.q_proj.weight_g_idx";
    memcpy(bad, gidx, sizeof bad);
    bad[order[0]] = bad[order[COLS - 1]]; /* one group 33 columns, another 31 */
    mu.bytes = bad;
    CU_ASSERT_EQUAL(load_mutated(dir, &mu, Q, ROWS, COLS, "act-order layouts need exactly 32"), LQ_ERR_UNSUPPORTED);
    bad[order[0]] = 1 << 30;
    CU_ASSERT_EQUAL(load_mutated(dir, &mu, Q, ROWS, COLS, "is outside [0, 8)"), LQ_ERR_FORMAT);
    memset(&mu, 0, sizeof mu);
    mu.drop = "model.layers.0.self_attn.q_proj.weight_g_idx"; /* without it: the plain layout */
    CU_ASSERT_EQUAL(load_mutated(dir, &mu, Q, ROWS, COLS, NULL), LQ_OK);
    lq_test_quiet(0);
    free(dir);

    /* GGUF has no g_idx: refused whatever the type, naming the tensor */
    lq_model_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.model_type, sizeof c.model_type, "llama");
    snprintf(c.architecture, sizeof c.architecture, "LlamaForCausalLM");
    snprintf(c.hidden_act, sizeof c.hidden_act, "silu");
    c.vocab_size = 32, c.hidden_size = COLS, c.intermediate_size = 512, c.n_layers = 1, c.n_heads = 4;
    c.n_kv_heads = 4, c.head_dim = 64, c.max_position_embeddings = 128, c.rms_norm_eps = 1e-5;
    c.rope_theta = 10000.0, c.tie_word_embeddings = true, c.dtype = LQ_DTYPE_F32;
    dir = copy_str(lq_test_tmpdir("act_gguf"));
    char path[512];
    snprintf(path, sizeof path, "%s/m.gguf", dir);
    lq_gguf_write_params gp = lq_gguf_write_default_params();
    gp.no_fsync             = true;
    lq_test_quiet(1);
    lq_qtensor gt = m[0].t;
    CU_ASSERT_EQUAL(lq_gguf_write_llama(path, &c, &gt, 1, &gp), LQ_ERR_UNSUPPORTED);
    CU_ASSERT(strstr(lq_test_last_error(), "q_proj") && strstr(lq_test_last_error(), "g_idx"));
    gt = plain[0].t; /* even a plain tensor with a g_idx (out of contract) */
    CU_ASSERT_EQUAL(lq_gguf_write_llama(path, &c, &gt, 1, &gp), LQ_ERR_UNSUPPORTED);
    CU_ASSERT(strstr(lq_test_last_error(), "o_proj") && strstr(lq_test_last_error(), "g_idx"));
    lq_test_quiet(0);
    CU_ASSERT(!lq__file_exists(path));
    free(dir);
    for (int i = 0; i < 5; i++) qmat_free(&m[i]);
    qmat_free(&plain[0]);
    qmat_free(&plain[1]);
}

CU_pSuite lq_test_qformats_suite(void) {
    CU_pSuite s = lq_test_add_suite("qformats");
    LQ_ADD_TEST(s, test_qformats_names_and_supports);
    LQ_ADD_TEST(s, test_qformats_roundtrip_every_type);
    LQ_ADD_TEST(s, test_qformats_gptq_layout);
    LQ_ADD_TEST(s, test_qformats_write_errors);
    LQ_ADD_TEST(s, test_qformats_mixed_dynamic_and_ignore);
    LQ_ADD_TEST(s, test_qformats_ct_odd_shapes);
    LQ_ADD_TEST(s, test_qformats_malformed_gptq);
    LQ_ADD_TEST(s, test_qformats_malformed_ct);
    LQ_ADD_TEST(s, test_qformats_ct_int_quantized);
    LQ_ADD_TEST(s, test_qformats_interop_fixtures);
    LQ_ADD_TEST(s, test_qformats_act_order);
    LQ_ADD_TEST(s, test_qformats_act_order_edges);
    return s;
}
