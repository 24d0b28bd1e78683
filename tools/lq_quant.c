/* lq_quant.c : quantize a checkpoint into a format real engines load.
 *
 *   lq-quant --format gptq --type int4_g128 MODEL OUTDIR
 *   lq-quant --format compressed-tensors --type int8_ch MODEL OUTDIR
 *   lq-quant --format gguf --type q4_k MODEL out.gguf
 *   lq-quant --method gptq --calib data.txt --format gptq --type int4_g128 MODEL OUTDIR
 *
 * Plan: every tensor gets a type. By default the Linear weights of the
 * decoder layers (q/k/v/o and gate/up/down projections) get --type, and
 * everything else (embeddings, norms, lm_head, biases) keeps its source
 * dtype. --tensor-type 'REGEX=TYPE' rules (first match wins; POSIX extended
 * regexes searched anywhere in the HF tensor name, like llama-quantize's
 * --tensor-type) override that, --keep 'REGEX' keeps tensors as they are.
 * A tensor the chosen type cannot store (a row length that is not a multiple
 * of the group or block size; a GPTQ code stream that does not fill whole
 * 32-bit words) gets --fallback: for GGUF llama.cpp's chain (q4_k -> q5_0,
 * q6_k -> q8_0, then f16), otherwise the source dtype (listed in the
 * format's ignore/dynamic lists) or the given type; every fallback is named.
 *
 * --method gptq runs lq_gptq_run (block by block over --calib windows,
 * resumable with --work-dir) for every decoder Linear whose planned type is
 * an INT type; everything else goes through the RTN path above. The output
 * directory gets calibration.json (data sha256, windows, options, per-layer
 * GPTQ losses; deterministic, no timings).
 *
 * Output: OUTDIR is staged and renamed into place (GPTQ, compressed-tensors);
 * a .gguf file is written to a temporary and renamed. Nothing is left under
 * the output name on failure or Ctrl-C. */
#include <errno.h>
#include <limits.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli_util.h"

#define MAX_RULES 64

typedef struct {
    regex_t  re;
    char     text[256];
    lq_qtype type;   /* LQ_QT_NONE for --keep */
    bool     keep;
} rule;

typedef enum { OUT_GPTQ, OUT_GPTQ_V2, OUT_CT, OUT_GGUF } out_format;

typedef struct {
    const lq_tensor_info *src;
    lq_qtype              want;      /* what the plan asked for              */
    lq_qtype              type;      /* what is stored                       */
    const char           *why;       /* fallback reason or NULL              */
    bool                  skip;      /* tied alias: stored once              */
    int64_t               rows, cols;
    uint64_t              bytes_out; /* estimated                            */
    /* results */
    void    *data;
    float   *scales;
    uint8_t *zeros;
} job;

static void usage(FILE *f) {
    fprintf(f,
            "usage: %s [options] MODEL OUTPUT\n"
            "Quantize MODEL (an HF directory, .safetensors, .bin or llama2.c file) and write\n"
            "OUTPUT in a format inference engines load.\n"
            "\n"
            "format and types:\n"
            "  --format F           gptq (v1, what vLLM/transformers load), gptq_v2,\n"
            "                       compressed-tensors (ct), gguf; default: gguf when OUTPUT\n"
            "                       ends in .gguf, else required\n"
            "  --type T             [int4_g128; gguf: q8_0] type of the decoder Linear weights\n"
            "  --tensor-type R=T    type T for tensors whose HF name matches the POSIX extended\n"
            "                       regex R (searched anywhere; first rule wins; repeatable),\n"
            "                       e.g. 'mlp\\.down_proj=int8_ch' or 'embed_tokens=q8_0'\n"
            "  --keep R             keep tensors matching R in their source dtype (repeatable)\n"
            "  --fallback F         [auto] for tensors the type cannot store: auto (gguf: llama.cpp's\n"
            "                       chain q4_k->q5_0, q6_k->q8_0, then f16; others: keep the source\n"
            "                       dtype), keep, error, or a type\n"
            "  --method M           [rtn] rtn (round-to-nearest) or gptq (needs --calib)\n"
            "  --clip-search        choose each group's scale to minimize the squared error\n"
            "                       (shrinks the range by 1.00..0.80) instead of absmax\n"
            "  --act-stats FILE     safetensors of F32 per-input-column weights named like the\n"
            "                       modules' weights (e.g. mean x^2 of the activations) for the\n"
            "                       clip search and the k-quant searches\n"
            "  --scale-dtype D      [f16] int/fp8 scales: f16, bf16 or f32 (GPTQ: f16)\n"
            "mixed precision (REFERENCE.md 6.3):\n"
            "  --target-bpw B       choose one type per group (q/k/v, o, gate/up, down of each layer)\n"
            "                       minimizing the summed measured KLD with the grouped weights at\n"
            "                       <= B bits/weight (exact solver); needs --calib (or --sensitivity)\n"
            "  --target-size S      the same with every tensor written <= S bytes of tensor data\n"
            "                       (headers, config and a GGUF's tokenizer, ~13 KB for stories260K, come on top)\n"
            "  --candidates LIST    [f16,int8_ch,int4_g32,int4_g128,int4_ch,int3_g32,int3_ch,int2_g32;\n"
            "                       gguf: f16,q8_0,q6_k,q5_0,q4_k,q4_0] types to measure\n"
            "  --sens-samples N     [16] calibration windows for the sensitivity measurement (RTN;\n"
            "                       with --clip-search, or --method gptq --mse, the range-searching RTN)\n"
            "  --mixed-embed        the (tied) embedding is a group too (GGUF types, or f16/bf16)\n"
            "  --sensitivity FILE   reuse a measured table instead of measuring\n"
            "  --sens-out FILE      write the measured table (JSON); --chart FILE: an SVG chart of it\n"
            "  --plan-out FILE      write the plan (JSON; hand-editable); directory outputs also get\n"
            "                       plan.json, sensitivity.json and sensitivity.svg\n"
            "  --plan FILE          quantize with a plan file's per-tensor types\n"
            "  --preset P           attn16-mlp4 (attention f16, MLP --type or int4_g128) or q4_k_m\n"
            "                       (llama.cpp's rule; INT formats: 6-bit tensors -> int8_ch)\n"
            "W8A8 static int8 (compressed-tensors int-quantized, the form vLLM loads):\n"
            "  --w8a8               int8 per-channel weights + int8 per-tensor static input scales\n"
            "  --act-scales FILE    ranges table from lq-calib (else calibrated here on --calib)\n"
            "  --act-method M       [entropy] entropy, entropy-ort, max, percentile, mse\n"
            "GPTQ (--method gptq; ../shared/docs/REFERENCE.md 6.1):\n"
            "  --calib FILE         calibration data (GPTQ, --w8a8, --target-*): .txt[.gz], .jsonl[.gz], tokens\n"
            "                       .bin/.u16 (uint16), .u32, .npy, .npz (input_ids)\n"
            "  --calib-samples N    [128] windows       --calib-len L  [512] tokens per window\n"
            "  --seed S             [0] window choice\n"
            "  --act-order          quantize columns in decreasing Hessian-diagonal order (desc_act;\n"
            "                       writes g_idx)\n"
            "  --static-groups      group scales from the original weights (with --act-order: g_idx = k/G)\n"
            "  --ct-actorder-group  compressed-tensors: store --act-order's g_idx (actorder \"group\"; loaded by\n"
            "                       older vLLM / compressed-tensors < 0.20 and by lq-eval)\n"
            "  --damp X             [0.01] relative damping of the Hessian (raised automatically on\n"
            "                       Cholesky failure)\n"
            "  --gptq-block N       [128] lazy-batch width\n"
            "  --mse                search each group's range (|q-x|^2.4) instead of min/max\n"
            "  --true-sequential    q,k,v -> o -> gate,up -> down, each on the outputs of the\n"
            "                       already quantized parts of the block\n"
            "  --work-dir DIR       keep finished blocks in DIR; rerunning the same command resumes\n"
            "                       (other inputs or options are refused)\n"
            "  --max-ram SIZE       stream activations through the work directory above SIZE\n"
            "  --imatrix FILE       also write per-column sum x^2 and counts (usable by --act-stats)\n"
            "  --device D           [auto] auto, cpu or cuda\n"
            "output:\n"
            "  --tokenizer FILE     tokenizer for the output (default: MODEL's tokenizer files;\n"
            "                       GGUF embeds it: tokenizer.model, tokenizer.json, tokenizer.bin)\n"
            "  --max-shard-size S   [0 = one file] bytes per safetensors shard (e.g. 5GB)\n"
            "  --force              replace an existing OUTPUT\n"
            "  --dry-run            print the plan and the output size, write nothing\n"
            "  --json               a JSON report on stdout instead of the summary\n"
            "  -t, --threads N      [auto] threads\n"
            "  --no-fsync           skip fsync (not crash-safe)\n"
            "  --no-progress        no progress bar (shown only when stderr is a TTY)\n"
            "  -q, -v               quieter / more verbose\n"
            "  -V, --version        print the version\n"
            "  -h, --help           this help\n"
            "\n"
            "types (bits per weight with f16 scales on a 4096x4096 matrix):\n",
            g_tool);
    for (int t = 1; t < LQ_QT_COUNT; t++) {
        const lq_qtype_traits *tr = lq_qtype_traits_of((lq_qtype)t);
        const char *fmts = tr->kind == LQ_QK_GGML ? "gguf"
                           : tr->kind == LQ_QK_FP8 ? "ct"
                           : tr->kind == LQ_QK_KEEP ? "all"
                           : (tr->bits == 8 || tr->bits == 4 || tr->bits == 2 || tr->bits == 3) ? "gptq, ct"
                                                                                               : "ct";
        fprintf(f, "  %-18s %6.3f  %s\n", tr->name, lq_qtype_bits_per_weight((lq_qtype)t, 4096, 4096, LQ_DTYPE_F16),
                fmts);
    }
    fprintf(f, "\nexit: 0 ok, 1 failure (nothing is left at OUTPUT), 2 usage (an infeasible --target-* too).\n");
}

static bool parse_type(const char *s, lq_qtype *t) { return lq_qtype_from_name(s, t) == LQ_OK; }

static bool type_fits_format(lq_qtype t, out_format f) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(t);
    switch (tr->kind) {
    case LQ_QK_KEEP: return true;
    case LQ_QK_GGML: return f == OUT_GGUF;
    case LQ_QK_FP8: return f == OUT_CT;
    case LQ_QK_INT: return f != OUT_GGUF;
    case LQ_QK_NONE: return false;
    }
    return false;
}

static lq_qformat qformat_of(out_format f) {
    return f == OUT_GPTQ ? LQ_QFMT_GPTQ : f == OUT_GPTQ_V2 ? LQ_QFMT_GPTQ_V2 : LQ_QFMT_CT;
}

/* can the output store a rows x cols matrix of type t? */
static bool storable(out_format f, lq_qtype t, int64_t rows, int64_t cols, const char **why) {
    if (!lq_qtype_supports(t, cols, why)) return false;
    if (f == OUT_GGUF) return true;
    return lq_qformat_supports(qformat_of(f), t, rows, cols, why);
}

static lq_qtype keep_type(lq_dtype d, out_format f) {
    if (d == LQ_DTYPE_F16) return LQ_QT_F16;
    if (d == LQ_DTYPE_BF16) return LQ_QT_BF16;
    (void)f;
    return LQ_QT_F32;
}


/* estimated bytes of tensor data the format writes for one matrix */
static uint64_t est_bytes(out_format f, lq_qtype t, int64_t rows, int64_t cols, lq_dtype scale_dtype) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(t);
    if (tr->kind == LQ_QK_KEEP && f == OUT_GGUF && rows <= 1) return (uint64_t)cols * 4; /* 1-D: f32 */
    uint64_t       b  = (uint64_t)rows * lq_qtype_row_bytes(t, cols);
    const uint64_t ns = (uint64_t)lq_qtype_n_scales(t, rows, cols);
    const uint64_t sb = f == OUT_GPTQ || f == OUT_GPTQ_V2 ? 2 : lq_dtype_traits_of(scale_dtype)->bits / 8;
    if (tr->kind == LQ_QK_FP8) b += ns * sb;
    if (tr->kind == LQ_QK_INT) {
        const uint64_t ng = (uint64_t)lq_qtype_n_groups(t, cols);
        b += ns * sb;
        if (f == OUT_GPTQ || f == OUT_GPTQ_V2)
            b += ng * (((uint64_t)rows * (uint64_t)tr->bits + 31) / 32) * 4 + (uint64_t)cols * 4; /* qzeros, g_idx */
        else if (!tr->sym)
            b += (((uint64_t)rows * (uint64_t)tr->bits + 31) / 32) * 4 * ng;
        if (f == OUT_CT) b += 16; /* weight_shape */
    }
    return b;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* a tokenizer file for GGUF: --tokenizer, else tokenizer.model / tokenizer.json beside MODEL */
static const char *find_tokenizer(const lq_checkpoint *ck, const char *in_path, const char *given, char *buf,
                                  size_t cap) {
    if (given) return given;
    const char *dir = lq_checkpoint_dir(ck);
    char        tmp[PATH_MAX];
    if (!dir) {
        snprintf(tmp, sizeof tmp, "%s", in_path);
        char *slash = strrchr(tmp, '/');
        if (slash)
            *slash = 0;
        else
            snprintf(tmp, sizeof tmp, ".");
        dir = tmp;
    }
    static const char *const names[] = {"tokenizer.model", "tokenizer.json", "tokenizer.bin", "tok512.bin",
                                        "tok512.model"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (cli_join(buf, cap, dir, names[i]) && access(buf, R_OK) == 0) return buf;
    return NULL;
}

/* ---- mixed precision: presets, plans, the measured budget solver ---- */

typedef struct {
    int64_t   n, cap;
    char    **name;
    lq_qtype *type;
} type_map;

static void tmap_free(type_map *m) {
    for (int64_t i = 0; i < m->n; i++) free(m->name[i]);
    free(m->name);
    free(m->type);
    memset(m, 0, sizeof *m);
}

static int tmap_set(type_map *m, const char *name, lq_qtype t) {
    for (int64_t i = 0; i < m->n; i++)
        if (!strcmp(m->name[i], name)) {
            m->type[i] = t;
            return 0;
        }
    if (m->n == m->cap) {
        const int64_t cap = m->cap ? 2 * m->cap : 64;
        char        **nn  = realloc(m->name, (size_t)cap * sizeof *nn);
        if (nn) m->name = nn;
        lq_qtype *nt = nn ? realloc(m->type, (size_t)cap * sizeof *nt) : NULL;
        if (nt) m->type = nt;
        if (!nn || !nt) return -1;
        m->cap = cap;
    }
    m->name[m->n] = strdup(name);
    if (!m->name[m->n]) return -1;
    m->type[m->n++] = t;
    return 0;
}

static const lq_qtype *tmap_get(const type_map *m, const char *name) {
    for (int64_t i = 0; i < m->n; i++)
        if (!strcmp(m->name[i], name)) return &m->type[i];
    return NULL;
}

/* an INT type the matrix can hold at the same bits and symmetry: the wanted
 * group size, else smaller groups, else per channel (presets only; --type
 * keeps the documented fallback rules) */
static lq_qtype int_fit(out_format f, lq_qtype want, int64_t rows, int64_t cols) {
    if (storable(f, want, rows, cols, NULL)) return want;
    const lq_qtype_traits *w = lq_qtype_traits_of(want);
    if (w->kind != LQ_QK_INT) return want;
    lq_qtype best = LQ_QT_NONE;
    int      bestg = -1;
    for (int t = 1; t < LQ_QT_COUNT; t++) {
        const lq_qtype_traits *tr = lq_qtype_traits_of((lq_qtype)t);
        if (tr->kind != LQ_QK_INT || tr->bits != w->bits || tr->sym != w->sym) continue;
        const int g = tr->group ? tr->group : 0;
        if ((w->group && g > w->group) || !storable(f, (lq_qtype)t, rows, cols, NULL)) continue;
        if (g > bestg) { /* the largest group not above the wanted one; per channel (0) last */
            bestg = g;
            best  = (lq_qtype)t;
        }
    }
    return best != LQ_QT_NONE ? best : want;
}

/* llama.cpp's use_more_bits (REFERENCE.md 6.3) */
static bool use_more_bits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static int64_t layer_of(const char *name) {
    if (strncmp(name, "model.layers.", 13) != 0) return -1;
    return strtoll(name + 13, NULL, 10);
}

static bool has_suffix(const char *s, const char *sfx) {
    const size_t n = strlen(s), l = strlen(sfx);
    return n >= l && !strcmp(s + n - l, sfx);
}

/* presets as per-tensor types: attn16-mlp4 (attention projections f16, MLP
 * 4-bit) and q4_k_m (llama.cpp's rule: base 4-bit, attn_v and ffn_down at
 * more bits in the use_more_bits layers, tied embedding/output at 6 bits;
 * on INT formats 4-bit -> `base`, 6-bit -> int8_ch, embeddings kept) */
static int preset_plan(const char *preset, const lq_checkpoint *ck, out_format f, lq_qtype base, int64_t n_layers,
                       type_map *out) {
    const bool gguf = f == OUT_GGUF;
    const bool a16  = !strcmp(preset, "attn16-mlp4");
    for (int64_t i = 0; i < lq_checkpoint_count(ck); i++) {
        const lq_tensor_info *t = lq_checkpoint_tensor(ck, i);
        if (t->alias_of >= 0 || t->n_dims != 2) continue;
        const int64_t rows = t->shape[0], cols = t->shape[1];
        lq_qtype      ty   = LQ_QT_NONE;
        if (cli_is_layer_linear(t->name)) {
            const bool attn = strstr(t->name, ".self_attn.") != NULL;
            const int64_t l = layer_of(t->name);
            if (a16) {
                ty = attn ? LQ_QT_F16 : int_fit(f, base, rows, cols);
            } else {
                const bool more = (has_suffix(t->name, "v_proj.weight") || has_suffix(t->name, "down_proj.weight")) &&
                                  use_more_bits(l, n_layers);
                ty = more ? (gguf ? LQ_QT_Q6_K : LQ_QT_INT8_CH) : int_fit(f, base, rows, cols);
            }
        } else if (!a16 && gguf && (!strcmp(t->name, "lm_head.weight") || !strcmp(t->name, "model.embed_tokens.weight"))) {
            ty = LQ_QT_Q6_K;
        }
        if (ty != LQ_QT_NONE && tmap_set(out, t->name, ty) != 0) return -1;
    }
    return 0;
}

/* the bytes of each (group, candidate) in format f; UINT64_MAX when f cannot store it */
static void fill_group_bytes(lq_sens_table *t, const lq_checkpoint *ck, out_format f, lq_dtype scale_dtype) {
    for (int64_t g = 0; g < t->n_groups; g++) {
        const lq_mixed_group *gr = &t->groups[g];
        for (int64_t c = 0; c < t->n_cands; c++) {
            const lq_qtype ty = t->cands[c];
            uint64_t       b  = 0;
            const bool keep = lq_qtype_traits_of(ty)->kind == LQ_QK_KEEP;
            if (!type_fits_format(ty, f) || (gr->layer < 0 && f != OUT_GGUF && !keep)) b = UINT64_MAX;
            for (int64_t j = 0; j < gr->n_tensors && b != UINT64_MAX; j++) {
                const lq_tensor_info *ti = lq_checkpoint_find(ck, gr->tensors[j]);
                if (!ti || ti->n_dims != 2 || (!keep && !storable(f, ty, ti->shape[0], ti->shape[1], NULL))) {
                    b = UINT64_MAX;
                    break;
                }
                b += est_bytes(f, ty, ti->shape[0], ti->shape[1], scale_dtype);
            }
            t->bytes[g * t->n_cands + c] = b;
        }
    }
}

static int parse_type_list(const char *s, lq_qtype *out, int cap) {
    int         n = 0;
    const char *p = s;
    while (*p) {
        const char *e = strchr(p, ',');
        const size_t l = e ? (size_t)(e - p) : strlen(p);
        char         buf[64];
        if (l == 0 || l >= sizeof buf || n == cap) return -1;
        memcpy(buf, p, l);
        buf[l] = 0;
        if (!parse_type(buf, &out[n])) return -1;
        for (int i = 0; i < n; i++)
            if (out[i] == out[n]) return -1;
        n++;
        p += l + (e ? 1 : 0);
    }
    return n;
}

/* the default candidates per format: every practical width the format stores */
static int default_cands(out_format f, lq_qtype *c) {
    static const lq_qtype INTS[] = {LQ_QT_F16,      LQ_QT_INT8_CH,  LQ_QT_INT4_G32, LQ_QT_INT4_G128,
                                    LQ_QT_INT4_CH,  LQ_QT_INT3_G32, LQ_QT_INT3_CH,  LQ_QT_INT2_G32};
    static const lq_qtype GGML[] = {LQ_QT_F16, LQ_QT_Q8_0, LQ_QT_Q6_K, LQ_QT_Q5_0, LQ_QT_Q4_K, LQ_QT_Q4_0};
    const lq_qtype       *src  = f == OUT_GGUF ? GGML : INTS;
    const int             n    = f == OUT_GGUF ? (int)(sizeof GGML / sizeof GGML[0]) : (int)(sizeof INTS / sizeof INTS[0]);
    memcpy(c, src, (size_t)n * sizeof *c);
    return n;
}

/* calibration windows over --calib with the model's tokenizer */
static lq_status load_calib(const lq_checkpoint *ck, const char *in_path, const char *tokenizer, const char *calib_path,
                            int64_t samples, int64_t len, int64_t seed, int64_t vocab, lq_calib_set **out) {
    char          tokbuf[PATH_MAX];
    const char   *tokp = find_tokenizer(ck, in_path, tokenizer, tokbuf, sizeof tokbuf);
    lq_tokenizer *tok  = NULL;
    lq_status     st   = LQ_OK;
    if (tokp && (st = lq_tokenizer_open(tokp, (int32_t)vocab, &tok)) != LQ_OK) {
        cli_error_status(tokp, st);
        return st;
    }
    lq_calib_params cp = lq_calib_default_params();
    cp.n_samples       = samples;
    cp.seq_len         = len;
    cp.seed            = (uint64_t)seed;
    cp.vocab_size      = vocab;
    st                 = lq_calib_load(calib_path, tok, &cp, out);
    lq_tokenizer_free(tok);
    if (st != LQ_OK) cli_error_status(calib_path, st);
    return st;
}

typedef struct {
    const job *jobs;
    int64_t    n;
} type_ctx;

/* GPTQ takes the decoder Linears whose planned (post-fallback) type is an INT type */
static lq_qtype gptq_type_of(const char *name, void *user) {
    const type_ctx *c = user;
    for (int64_t i = 0; i < c->n; i++) {
        const job *j = &c->jobs[i];
        if (j->skip || strcmp(j->src->name, name) != 0) continue;
        return lq_qtype_traits_of(j->type)->kind == LQ_QK_INT ? j->type : LQ_QT_NONE;
    }
    return LQ_QT_NONE;
}

typedef struct {
    const char     *calib_path;
    lq_calib_set   *cs;
    lq_gptq_result *gr;
    lq_gptq_params  sp;
    bool            true_seq;
    int64_t         seed;
} gptq_info;

/* the calibration and GPTQ record: calibration.json in the output and "gptq" in --json (timings only there) */
static void gptq_json(lq_json_writer *w, const gptq_info *g, bool timings) {
    const char *base = strrchr(g->calib_path, '/');
    lq_json_obj_begin(w);
    lq_json_key(w, "method");
    lq_json_str(w, "gptq");
    lq_json_key(w, "calibration");
    lq_json_obj_begin(w);
    lq_json_key(w, "file");
    lq_json_str(w, base ? base + 1 : g->calib_path);
    lq_json_key(w, "kind");
    lq_json_str(w, lq_calib_kind_name(g->cs->kind));
    lq_json_key(w, "sha256");
    lq_json_str(w, g->cs->sha256);
    lq_json_key(w, "bytes");
    lq_json_u64(w, g->cs->file_bytes);
    lq_json_key(w, "stream_tokens");
    lq_json_i64(w, g->cs->n_stream);
    lq_json_key(w, "samples");
    lq_json_i64(w, g->cs->n_samples);
    lq_json_key(w, "seq_len");
    lq_json_i64(w, g->cs->seq_len);
    lq_json_key(w, "seed");
    lq_json_i64(w, g->seed);
    lq_json_key(w, "bos");
    lq_json_i64(w, g->cs->bos_id);
    lq_json_key(w, "window_offsets");
    lq_json_arr_begin(w);
    for (int64_t i = 0; i < g->cs->n_samples; i++) lq_json_i64(w, g->cs->offsets[i]);
    lq_json_arr_end(w);
    lq_json_obj_end(w);
    lq_json_key(w, "options");
    lq_json_obj_begin(w);
    lq_json_key(w, "act_order");
    lq_json_bool(w, g->sp.act_order);
    lq_json_key(w, "static_groups");
    lq_json_bool(w, g->sp.static_groups);
    lq_json_key(w, "mse");
    lq_json_bool(w, g->sp.mse);
    lq_json_key(w, "damp");
    lq_json_f64(w, g->sp.damp);
    lq_json_key(w, "block_size");
    lq_json_i64(w, g->sp.block_size);
    lq_json_key(w, "true_sequential");
    lq_json_bool(w, g->true_seq);
    lq_json_obj_end(w);
    lq_json_key(w, "fingerprint");
    lq_json_str(w, lq_gptq_result_fingerprint(g->gr));
    if (timings) {
        lq_json_key(w, "resumed_blocks");
        lq_json_i64(w, lq_gptq_result_resumed_blocks(g->gr));
    }
    lq_json_key(w, "layers");
    lq_json_arr_begin(w);
    for (int64_t i = 0; i < lq_gptq_result_count(g->gr); i++) {
        const lq_gptq_layer *l = lq_gptq_result_layer(g->gr, i);
        lq_json_obj_begin(w);
        lq_json_key(w, "name");
        lq_json_str(w, l->name);
        lq_json_key(w, "type");
        lq_json_str(w, lq_qtype_name(l->q.qtype));
        lq_json_key(w, "loss");
        lq_json_f64(w, l->stats.loss);
        lq_json_key(w, "damp");
        lq_json_f64(w, l->stats.damp);
        lq_json_key(w, "dead_columns");
        lq_json_i64(w, l->stats.dead_cols);
        lq_json_key(w, "retries");
        lq_json_i64(w, l->stats.retries);
        lq_json_key(w, "act_order_g_idx");
        lq_json_bool(w, l->q.g_idx != NULL);
        if (timings) {
            lq_json_key(w, "seconds");
            lq_json_f64(w, l->seconds);
        }
        lq_json_obj_end(w);
    }
    lq_json_arr_end(w);
    lq_json_obj_end(w);
}

int main(int argc, char **argv) {
    cli_init("lq-quant");
    const char *in_path = NULL, *out_path = NULL, *format_s = NULL, *type_s = NULL, *fallback_s = "auto";
    const char *method = "rtn", *tokenizer = NULL, *act_stats = NULL, *scale_s = "f16";
    cli_out_opts oo = {0};
    bool        clip = false;
    const char *calib_path = NULL, *work_dir = NULL, *imatrix_path = NULL, *device = "auto";
    int64_t     calib_samples = 128, calib_len = 512, seed = 0, gptq_block = 128;
    double      damp          = 0.01;
    uint64_t    max_ram       = 0;
    bool        act_order = false, static_groups = false, mse = false, true_seq = false, ct_group = false;
    int64_t     n_threads = 0;
    /* mixed precision and W8A8 */
    const char *preset = NULL, *plan_path = NULL, *sens_in = NULL, *sens_out = NULL, *chart_path = NULL;
    const char *plan_out = NULL, *cands_s = NULL, *act_scales = NULL, *act_method_s = "entropy";
    double      target_bpw = 0;
    uint64_t    target_size = 0;
    int64_t     sens_samples = 16;
    bool        mixed_embed = false, w8a8 = false;
    rule        rules[MAX_RULES];
    int         n_rules = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_common_option(a, usage)) {
            continue;
        } else if (!strcmp(a, "--format")) {
            format_s = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--type")) {
            type_s = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--tensor-type") || !strcmp(a, "--keep")) {
            const bool  keep = !strcmp(a, "--keep");
            const char *v    = cli_value(argc, argv, &i);
            if (n_rules == MAX_RULES) cli_usage_error("%s: at most %d rules", a, MAX_RULES);
            rule       *r = &rules[n_rules];
            const char *eq = keep ? NULL : strrchr(v, '=');
            if (!keep && (!eq || eq == v || !eq[1]))
                cli_usage_error("--tensor-type: '%s' is not REGEX=TYPE", v);
            const size_t rl = keep ? strlen(v) : (size_t)(eq - v);
            if (rl >= sizeof r->text) cli_usage_error("%s: regex too long", a);
            memcpy(r->text, v, rl);
            r->text[rl] = 0;
            r->keep     = keep;
            r->type     = LQ_QT_NONE;
            if (!keep && !parse_type(eq + 1, &r->type))
                cli_usage_error("--tensor-type: unknown type '%s' (see --help for the list)", eq + 1);
            const int rc = regcomp(&r->re, r->text, REG_EXTENDED | REG_NOSUB);
            if (rc != 0) {
                char msg[128];
                regerror(rc, &r->re, msg, sizeof msg);
                cli_usage_error("%s: bad regex '%s': %s", a, r->text, msg);
            }
            n_rules++;
        } else if (!strcmp(a, "--fallback")) {
            fallback_s = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--method")) {
            method = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--calib")) {
            calib_path = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--calib-samples") || !strcmp(a, "--calib-len") || !strcmp(a, "--seed") ||
                   !strcmp(a, "--gptq-block")) {
            const char *v   = cli_value(argc, argv, &i);
            int64_t    *dst = !strcmp(a, "--calib-samples") ? &calib_samples
                              : !strcmp(a, "--calib-len")   ? &calib_len
                              : !strcmp(a, "--seed")        ? &seed
                                                            : &gptq_block;
            if (!cli_parse_i64(v, dst == &seed ? 0 : 1, dst == &calib_len ? (1 << 20) : INT32_MAX, dst))
                cli_usage_error("%s: '%s' is not a valid number", a, v);
        } else if (!strcmp(a, "--damp")) {
            const char *v = cli_value(argc, argv, &i);
            if (!cli_parse_f64(v, &damp) || !(damp >= 0 && damp < 10)) cli_usage_error("--damp: '%s' is not in [0, 10)", v);
        } else if (!strcmp(a, "--act-order")) {
            act_order = true;
        } else if (!strcmp(a, "--ct-actorder-group")) {
            ct_group = true;
        } else if (!strcmp(a, "--static-groups")) {
            static_groups = true;
        } else if (!strcmp(a, "--mse")) {
            mse = true;
        } else if (!strcmp(a, "--true-sequential")) {
            true_seq = true;
        } else if (!strcmp(a, "--work-dir")) {
            work_dir = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--max-ram")) {
            const char *v = cli_value(argc, argv, &i);
            if (!cli_parse_size(v, &max_ram)) cli_usage_error("--max-ram: '%s' is not a size (e.g. 8GB)", v);
        } else if (!strcmp(a, "--imatrix")) {
            imatrix_path = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--device")) {
            device = cli_value(argc, argv, &i);
            if (strcmp(device, "auto") && strcmp(device, "cpu") && strcmp(device, "cuda"))
                cli_usage_error("--device: '%s' is not auto, cpu or cuda", device);
        } else if (!strcmp(a, "--preset")) {
            preset = cli_value(argc, argv, &i);
            if (strcmp(preset, "attn16-mlp4") && strcmp(preset, "q4_k_m"))
                cli_usage_error("--preset: '%s' is not attn16-mlp4 or q4_k_m", preset);
        } else if (!strcmp(a, "--plan")) {
            plan_path = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--target-bpw")) {
            const char *v = cli_value(argc, argv, &i);
            if (!cli_parse_f64(v, &target_bpw) || !(target_bpw > 0 && target_bpw <= 32))
                cli_usage_error("--target-bpw: '%s' is not in (0, 32]", v);
        } else if (!strcmp(a, "--target-size")) {
            const char *v = cli_value(argc, argv, &i);
            if (!cli_parse_size(v, &target_size) || target_size == 0)
                cli_usage_error("--target-size: '%s' is not a size (bytes, or e.g. 300KB)", v);
        } else if (!strcmp(a, "--candidates")) {
            cands_s = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--sensitivity")) {
            sens_in = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--sens-out")) {
            sens_out = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--plan-out")) {
            plan_out = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--chart")) {
            chart_path = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--sens-samples")) {
            const char *v = cli_value(argc, argv, &i);
            if (!cli_parse_i64(v, 1, 1 << 20, &sens_samples)) cli_usage_error("--sens-samples: '%s' is not valid", v);
        } else if (!strcmp(a, "--mixed-embed")) {
            mixed_embed = true;
        } else if (!strcmp(a, "--w8a8")) {
            w8a8 = true;
        } else if (!strcmp(a, "--act-scales")) {
            act_scales = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--act-method")) {
            act_method_s = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--clip-search")) {
            clip = true;
        } else if (!strcmp(a, "--act-stats")) {
            act_stats = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--scale-dtype")) {
            scale_s = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--tokenizer")) {
            tokenizer = cli_value(argc, argv, &i);
        } else if (cli_output_option(argc, argv, &i, &oo)) {
            continue;
        } else if (cli_threads_option(argc, argv, &i, &n_threads)) {
            continue;
        } else if (a[0] == '-' && a[1]) {
            cli_usage_error("unknown option '%s'", a);
        } else if (!in_path) {
            in_path = a;
        } else if (!out_path) {
            out_path = a;
        } else {
            cli_usage_error("unexpected argument '%s' (MODEL and OUTPUT are already given)", a);
        }
    }
    const uint64_t max_shard = oo.max_shard;
    const bool     force = oo.force, dry = oo.dry_run, json = oo.json, no_fsync = oo.no_fsync;
    if (!in_path || !out_path) cli_usage_error("need MODEL and OUTPUT");
    const bool gptq = !strcmp(method, "gptq");
    if (!gptq && strcmp(method, "rtn") != 0) cli_usage_error("--method: '%s' is not rtn or gptq", method);
    if (gptq && !calib_path) cli_usage_error("--method gptq needs --calib FILE");
    const bool mixed = target_bpw > 0 || target_size > 0;
    if (mixed && target_bpw > 0 && target_size > 0) cli_usage_error("give --target-bpw or --target-size, not both");
    if ((mixed ? 1 : 0) + (plan_path ? 1 : 0) + (preset ? 1 : 0) > 1)
        cli_usage_error("--target-bpw/--target-size, --plan and --preset each choose the types: give one");
    if (mixed && !calib_path && !sens_in)
        cli_usage_error("--target-bpw/--target-size measure sensitivity on --calib FILE (or reuse --sensitivity FILE)");
    if (!mixed && (sens_in || sens_out || chart_path || plan_out || cands_s || mixed_embed))
        cli_usage_error("--sensitivity, --sens-out, --chart, --plan-out, --candidates and --mixed-embed go with "
                        "--target-bpw or --target-size");
    lq_amax_method act_method = LQ_AMAX_ENTROPY;
    if (lq_amax_method_from_name(act_method_s, &act_method) != LQ_OK)
        cli_usage_error("--act-method: '%s' is not entropy, entropy-ort, max, percentile or mse", act_method_s);
    if (w8a8 && !act_scales && !calib_path)
        cli_usage_error("--w8a8 needs activation ranges: --act-scales FILE (from lq-calib) or --calib FILE");
    if (!w8a8 && act_scales) cli_usage_error("--act-scales goes with --w8a8");
    if (!gptq && !mixed && !w8a8 && calib_path)
        cli_usage_error("--calib goes with --method gptq, --w8a8 or --target-bpw/--target-size");
    if (!gptq && (work_dir || imatrix_path || act_order || static_groups || mse || true_seq))
        cli_usage_error("--work-dir, --imatrix, --act-order, --static-groups, --mse and --true-sequential "
                        "go with --method gptq");
    out_format fmt;
    const size_t ol = strlen(out_path);
    if (!format_s) {
        if (ol > 5 && !strcmp(out_path + ol - 5, ".gguf"))
            format_s = "gguf";
        else
            cli_usage_error("--format is required (gptq, gptq_v2, compressed-tensors or gguf)");
    }
    if (!strcmp(format_s, "gptq"))
        fmt = OUT_GPTQ;
    else if (!strcmp(format_s, "gptq_v2"))
        fmt = OUT_GPTQ_V2;
    else if (!strcmp(format_s, "compressed-tensors") || !strcmp(format_s, "ct"))
        fmt = OUT_CT;
    else if (!strcmp(format_s, "gguf"))
        fmt = OUT_GGUF;
    else
        cli_usage_error("--format: '%s' is not gptq, gptq_v2, compressed-tensors or gguf", format_s);
    if (gptq && act_order && !static_groups && fmt == OUT_CT && !ct_group)
        cli_usage_error("--act-order writes a g_idx, which compressed-tensors 0.20 refuses (actorder \"group\" was "
                        "removed): add --static-groups (llm-compressor's actorder \"weight\"), use --format gptq, or "
                        "--ct-actorder-group for older vLLM / compressed-tensors");
    if (gptq && fmt == OUT_GGUF)
        cli_usage_error("--method gptq: GGUF has no type for GPTQ's integer codes and group scales; use --format "
                        "gptq, gptq_v2 or compressed-tensors");
    if (w8a8 && fmt != OUT_CT)
        cli_usage_error("--w8a8 writes compressed-tensors int-quantized with static input scales: use --format "
                        "compressed-tensors (GPTQ and GGUF cannot hold activation scales)");
    if (w8a8 && (type_s || mixed || plan_path || preset))
        cli_usage_error("--w8a8 sets every decoder Linear to int8_ch: drop --type, --preset, --plan and --target-*");
    lq_qtype def_type = fmt == OUT_GGUF ? LQ_QT_Q8_0 : w8a8 ? LQ_QT_INT8_CH : LQ_QT_INT4_G128;
    if (type_s && !parse_type(type_s, &def_type)) cli_usage_error("--type: unknown type '%s' (see --help)", type_s);
    lq_qtype cands[LQ_QT_COUNT];
    int      n_cands = default_cands(fmt, cands);
    if (cands_s && (n_cands = parse_type_list(cands_s, cands, LQ_QT_COUNT)) <= 0)
        cli_usage_error("--candidates: '%s' is not a comma-separated list of distinct types (see --help)", cands_s);
    for (int c = 0; c < n_cands; c++)
        if (!type_fits_format(cands[c], fmt))
            cli_usage_error("--candidates: %s cannot be stored in %s", lq_qtype_name(cands[c]), format_s);
    if (!type_fits_format(def_type, fmt))
        cli_usage_error("--type %s cannot be stored in %s", lq_qtype_name(def_type), format_s);
    for (int r = 0; r < n_rules; r++)
        if (!rules[r].keep && !type_fits_format(rules[r].type, fmt))
            cli_usage_error("--tensor-type %s=%s: %s cannot be stored in %s", rules[r].text,
                            lq_qtype_name(rules[r].type), lq_qtype_name(rules[r].type), format_s);
    enum { FB_AUTO, FB_KEEP, FB_ERROR, FB_TYPE } fb = FB_AUTO;
    lq_qtype fb_type = LQ_QT_NONE;
    if (!strcmp(fallback_s, "keep"))
        fb = FB_KEEP;
    else if (!strcmp(fallback_s, "error"))
        fb = FB_ERROR;
    else if (strcmp(fallback_s, "auto") != 0) {
        if (!parse_type(fallback_s, &fb_type)) cli_usage_error("--fallback: '%s' is not auto, keep, error or a type", fallback_s);
        if (!type_fits_format(fb_type, fmt))
            cli_usage_error("--fallback %s cannot be stored in %s", fallback_s, format_s);
        fb = FB_TYPE;
    }
    lq_quant_params qp = lq_quant_default_params();
    if (!strcmp(scale_s, "f16"))
        qp.scale_dtype = LQ_DTYPE_F16;
    else if (!strcmp(scale_s, "bf16"))
        qp.scale_dtype = LQ_DTYPE_BF16;
    else if (!strcmp(scale_s, "f32"))
        qp.scale_dtype = LQ_DTYPE_F32;
    else
        cli_usage_error("--scale-dtype: '%s' is not f16, bf16 or f32", scale_s);
    if ((fmt == OUT_GPTQ || fmt == OUT_GPTQ_V2) && qp.scale_dtype != LQ_DTYPE_F16)
        cli_usage_error("--scale-dtype: GPTQ stores F16 scales");
    qp.clip_search = clip;

    int            rc = CLI_EXIT_FAIL;
    int64_t        n  = 0;
    type_map       tmap;
    memset(&tmap, 0, sizeof tmap);
    lq_model      *sm   = NULL; /* the source model on the CPU: sensitivity, activation statistics, real KLD */
    lq_calib_set  *scs  = NULL;
    lq_sens_table *tab  = NULL;
    lq_mixed_plan  plan;
    memset(&plan, 0, sizeof plan);
    bool           have_plan = false;
    lq_act_ranges *ranges    = NULL;
    char          *ranges_text = NULL;
    size_t         ranges_len  = 0;
    lq_checkpoint *ck = NULL, *stats = NULL;
    job           *jobs = NULL;
    lq_qtensor    *qt = NULL;
    gptq_info      gi;
    memset(&gi, 0, sizeof gi);
    gi.calib_path = calib_path;
    double t_gptq = 0;
    char           stage[PATH_MAX] = "";
    lq_status      st = lq_checkpoint_open(in_path, &ck);
    if (st != LQ_OK) {
        cli_error_status(in_path, st);
        goto done;
    }
    if (act_stats && (st = lq_checkpoint_open(act_stats, &stats)) != LQ_OK) {
        cli_error_status(act_stats, st);
        goto done;
    }
    lq_model_config cfg;
    if ((st = lq_checkpoint_config(ck, &cfg)) != LQ_OK) {
        cli_error_status("config.json", st);
        goto done;
    }
    {
        lq_quant_config *qc = NULL;
        lq_log_set_level(LQ_LOG_ERROR);
        const lq_status  qs = lq_quant_config_load(ck, &qc);
        lq_log_set_level(LQ_LOG_DEBUG);
        const bool already = (qs == LQ_OK && qc) || qs == LQ_ERR_UNSUPPORTED || lq_checkpoint_kind(ck) == LQ_CKPT_GGUF;
        lq_quant_config_free(qc);
        if (already) {
            cli_error("%s is already quantized; quantize from the original weights", in_path);
            goto done;
        }
    }


    /* ---- types chosen by a preset, a plan file or the measured budget solver ---- */
    if (preset) {
        const lq_qtype base = type_s ? def_type : fmt == OUT_GGUF ? LQ_QT_Q4_K : LQ_QT_INT4_G128;
        if (preset_plan(preset, ck, fmt, base, cfg.n_layers, &tmap) != 0) {
            cli_error("out of memory");
            goto done;
        }
    }
    if (plan_path) {
        lq_plan_file *pf = NULL;
        if ((st = lq_plan_file_read(plan_path, &pf)) != LQ_OK) {
            cli_error_status(plan_path, st);
            goto done;
        }
        bool bad = false;
        for (int64_t i = 0; i < pf->n && !bad; i++) {
            if (!lq_checkpoint_find(ck, pf->tensor[i])) {
                cli_error("%s: tensor '%s' is not in %s", plan_path, pf->tensor[i], in_path);
                bad = true;
            } else if (!type_fits_format(pf->type[i], fmt)) {
                cli_error("%s: '%s' is planned as %s, which %s cannot store", plan_path, pf->tensor[i],
                          lq_qtype_name(pf->type[i]), format_s);
                bad = true;
            } else if (tmap_set(&tmap, pf->tensor[i], pf->type[i]) != 0) {
                cli_error("out of memory");
                bad = true;
            }
        }
        lq_plan_file_free(pf);
        if (bad) goto done;
    }
    if (mixed || w8a8) {
        lq_model_params mp = lq_model_default_params();
        mp.backend         = LQ_BACKEND_CPU;
        mp.n_threads       = (int)n_threads;
        mp.max_seq         = calib_len;
        if ((st = lq_model_open(in_path, &mp, &sm)) != LQ_OK) {
            cli_error_status(in_path, st);
            goto done;
        }
        if (calib_path && load_calib(ck, in_path, tokenizer, calib_path, w8a8 ? calib_samples : sens_samples, calib_len,
                                     seed, cfg.vocab_size, &scs) != LQ_OK)
            goto done;
    }
    if (mixed) {
        if (sens_in) {
            if ((st = lq_sens_table_read_json(sens_in, &tab)) != LQ_OK) {
                cli_error_status(sens_in, st);
                goto done;
            }
            for (int64_t g = 0; g < tab->n_groups; g++)
                for (int64_t j = 0; j < tab->groups[g].n_tensors; j++)
                    if (!lq_checkpoint_find(ck, tab->groups[g].tensors[j])) {
                        cli_error("%s: tensor '%s' is not in %s (a table measured on another model?)", sens_in,
                                  tab->groups[g].tensors[j], in_path);
                        goto done;
                    }
            fill_group_bytes(tab, ck, fmt, qp.scale_dtype);
        } else {
            if ((st = lq_sens_groups(sm, mixed_embed, cands, n_cands, &tab)) != LQ_OK) {
                cli_error_status(in_path, st);
                goto done;
            }
            fill_group_bytes(tab, ck, fmt, qp.scale_dtype);
            lq_sens_params sp = lq_sens_default_params();
            sp.qp             = qp;
            /* GPTQ with --mse searches each group's range: the range-searching RTN predicts its errors better */
            sp.qp.clip_search = qp.clip_search || (gptq && mse);
            sp.n_threads      = (int)n_threads;
            sp.progress       = cli_progress;
            const double ts   = now_s();
            st                = lq_sens_measure(sm, scs, &sp, tab);
            cli_progress_end();
            if (st != LQ_OK) {
                cli_error_status(in_path, st);
                goto done;
            }
            free(tab->model);
            tab->model = lq_strdup(in_path);
            DISPLAY(3, "%s: sensitivity of %lld groups x %d candidates measured in %.1f s\n", g_tool,
                    (long long)tab->n_groups, n_cands, now_s() - ts);
        }
        /* the budget: --target-size counts every tensor written; --target-bpw the grouped weights only */
        uint64_t numel_g = 0, fixed = 0;
        for (int64_t g = 0; g < tab->n_groups; g++) numel_g += (uint64_t)tab->groups[g].numel;
        for (int64_t i = 0; i < lq_checkpoint_count(ck); i++) {
            const lq_tensor_info *t = lq_checkpoint_tensor(ck, i);
            bool                  in_group = t->alias_of >= 0;
            for (int64_t g = 0; g < tab->n_groups && !in_group; g++)
                for (int64_t j = 0; j < tab->groups[g].n_tensors && !in_group; j++)
                    in_group = !strcmp(tab->groups[g].tensors[j], t->name);
            if (in_group) continue;
            const int64_t rows = t->n_dims == 2 ? t->shape[0] : 1, cols = t->n_dims >= 1 ? t->shape[t->n_dims - 1] : 1;
            lq_qtype      ty   = keep_type(t->dtype, fmt);
            const lq_qtype *pt = tmap_get(&tmap, t->name);
            if (pt) ty = *pt;
            fixed += est_bytes(fmt, ty, rows, cols, qp.scale_dtype);
        }
        uint64_t budget;
        if (target_size) {
            tab->fixed_bytes = fixed;
            budget           = target_size;
        } else {
            tab->fixed_bytes = 0;
            budget           = (uint64_t)(target_bpw * (double)numel_g / 8.0);
        }
        if ((st = lq_mixed_solve(tab, budget, &plan)) != LQ_OK) {
            cli_error_status(target_size ? "--target-size" : "--target-bpw", st);
            rc = CLI_EXIT_USAGE;
            goto done;
        }
        have_plan = true;
        for (int64_t g = 0; g < tab->n_groups; g++)
            for (int64_t j = 0; j < tab->groups[g].n_tensors; j++)
                if (tmap_set(&tmap, tab->groups[g].tensors[j], plan.types[g]) != 0) {
                    cli_error("out of memory");
                    goto done;
                }
        const uint64_t gbytes = plan.bytes - tab->fixed_bytes;
        if (!json) printf("plan (%s, %s): %s bytes (%.3f bits/weight over %lld grouped weights), predicted KLD %.6g"
                   " (sum of measured group KLDs; lower bound %.6g)\n",
                plan.exact ? "exact" : "Lagrangian + greedy", target_size ? "--target-size" : "--target-bpw",
                cli_commas(plan.bytes, (char[32]){0}, 32), 8.0 * (double)gbytes / (double)(numel_g ? numel_g : 1),
                (long long)numel_g, plan.predicted_kld, plan.lower_bound);
        for (int64_t g = 0; g < tab->n_groups && !json; g++)
            printf("  %-40s %-12s %10llu B  KLD %.6g\n", tab->groups[g].name, lq_qtype_name(plan.types[g]),
                    (unsigned long long)tab->bytes[g * tab->n_cands + plan.choice[g]],
                    tab->kld[g * tab->n_cands + plan.choice[g]]);
        if (sens_out && (st = lq_sens_table_write_json(tab, sens_out)) != LQ_OK) {
            cli_error_status(sens_out, st);
            goto done;
        }
        if (plan_out && (st = lq_mixed_plan_write_json(tab, &plan, plan_out, NULL)) != LQ_OK) {
            cli_error_status(plan_out, st);
            goto done;
        }
        if (chart_path && (st = lq_sens_chart_svg(tab, &plan, in_path, chart_path)) != LQ_OK) {
            cli_error_status(chart_path, st);
            goto done;
        }
    }
    if (w8a8) {
        if (act_scales) {
            if ((st = lq_act_ranges_read(act_scales, &ranges)) != LQ_OK) {
                cli_error_status(act_scales, st);
                goto done;
            }
        } else {
            lq_actstats_params ap = lq_actstats_default_params();
            ap.signed_hist        = act_method == LQ_AMAX_ENTROPY_ORT;
            ap.n_threads          = (int)n_threads;
            ap.progress           = cli_progress;
            lq_actstats *as       = NULL;
            st                    = lq_actstats_collect(sm, scs, &ap, &as);
            cli_progress_end();
            const lq_amax_params amp = lq_amax_default_params(act_method);
            char rpath[PATH_MAX];
            snprintf(rpath, sizeof rpath, "%s.act-ranges.json.tmp", out_path);
            if (st == LQ_OK)
                st = lq_act_ranges_write_json(as, &amp, false, scs, calib_path, in_path, rpath);
            lq_actstats_free(as);
            if (st == LQ_OK) st = lq_act_ranges_read(rpath, &ranges);
            if (st == LQ_OK) {
                ranges_text = cli_read_file(rpath, &ranges_len);
            }
            unlink(rpath);
            if (st != LQ_OK || !ranges_text) {
                cli_error_status(calib_path, st != LQ_OK ? st : LQ_ERR_IO);
                goto done;
            }
        }
    }
    /* ---- plan ---- */
    n    = lq_checkpoint_count(ck);
    jobs = calloc((size_t)(n ? n : 1), sizeof *jobs);
    qt              = calloc((size_t)(n ? n : 1), sizeof *qt);
    if (!jobs || !qt) {
        cli_error("out of memory");
        goto done;
    }
    int64_t  n_fallback = 0, n_quant = 0, n_out = 0;
    uint64_t bytes_in = 0, bytes_out = 0, params_q = 0, params = 0, bytes_lin = 0, numel_lin = 0;
    double   bits_q = 0;
    for (int64_t i = 0; i < n; i++) {
        const lq_tensor_info  *t  = lq_checkpoint_tensor(ck, i);
        const lq_dtype_traits *dt = lq_dtype_traits_of(t->dtype);
        job                   *j  = &jobs[i];
        j->src                    = t;
        bytes_in += t->nbytes;
        if (t->alias_of >= 0) {
            j->skip = true;
            continue;
        }
        const bool matrix = t->n_dims == 2 && dt->is_float && dt->convertible;
        j->rows           = t->n_dims == 2 ? t->shape[0] : 1;
        j->cols           = t->n_dims >= 1 ? t->shape[t->n_dims - 1] : 1;
        const bool floaty = dt->is_float && dt->convertible;
        if (!floaty || t->n_dims > 2) {
            cli_error("%s: tensor '%s' (%s, %d-D) is not a float vector or matrix; lq-quant handles Llama-family "
                      "checkpoints only", in_path, t->name, lq_dtype_name(t->dtype), t->n_dims);
            goto done;
        }
        const lq_qtype keep = keep_type(t->dtype, fmt);
        lq_qtype want    = matrix && cli_is_layer_linear(t->name) ? def_type : keep;
        bool     matched = false;
        const lq_qtype *planned = tmap_get(&tmap, t->name);
        if (planned) {
            want    = *planned;
            matched = true;
        }
        for (int r = 0; r < n_rules && !matched; r++) {
            if (regexec(&rules[r].re, t->name, 0, NULL, 0) != 0) continue;
            matched = true;
            want    = rules[r].keep ? keep : rules[r].type;
        }
        if (!matrix && want != keep) {
            if (matched)
                DISPLAY(2, "%s: warning: '%s' is not a 2-D float matrix; kept as %s\n", g_tool, t->name,
                        lq_dtype_name(t->dtype));
            want = keep;
        }
        j->want = want;
        j->type = want;
        const char *why = NULL;
        if (want != LQ_QT_NONE && lq_qtype_traits_of(want)->kind != LQ_QK_KEEP &&
            !storable(fmt, want, j->rows, j->cols, &why)) {
            j->why = why;
            if (fb == FB_ERROR) {
                cli_error("'%s' [%lld, %lld] cannot be stored as %s: %s (--fallback error)", t->name,
                          (long long)j->rows, (long long)j->cols, lq_qtype_name(want), why);
                goto done;
            }
            lq_qtype next = keep;
            if (fb == FB_TYPE) {
                next = fb_type;
            } else if (fb == FB_AUTO && fmt == OUT_GGUF) {
                next = want == LQ_QT_Q4_K ? LQ_QT_Q5_0 : want == LQ_QT_Q6_K ? LQ_QT_Q8_0 : LQ_QT_F16;
                if (!lq_qtype_supports(next, j->cols, NULL)) next = LQ_QT_F16;
            }
            if (lq_qtype_traits_of(next)->kind != LQ_QK_KEEP && !storable(fmt, next, j->rows, j->cols, NULL))
                next = keep;
            j->type = next;
            n_fallback++;
        }
        uint64_t numel = 0;
        lq_tensor_info_numel(t, &numel);
        params += numel;
        j->bytes_out              = est_bytes(fmt, j->type, j->rows, j->cols, qp.scale_dtype);
        const lq_qtype_traits *tr = lq_qtype_traits_of(j->type);
        if (tr->kind != LQ_QK_KEEP) {
            n_quant++;
            params_q += numel;
            bits_q += (double)numel *
                      lq_qtype_bits_per_weight(j->type, j->rows, j->cols, fmt == OUT_GGUF ? LQ_DTYPE_F16 : qp.scale_dtype);
        }
        bytes_out += j->bytes_out;
        if (matrix && cli_is_layer_linear(t->name)) {
            bytes_lin += j->bytes_out;
            numel_lin += numel;
        }
        n_out++;
    }
    if (n_fallback)
        DISPLAY(2, "%s: warning: %lld of %lld tensor(s) required fallback quantization (-v lists them)\n", g_tool,
                (long long)n_fallback, (long long)n_out);
    for (int64_t i = 0; i < n; i++)
        if (jobs[i].why)
            DISPLAY(dry ? 4 : 3, "%s: '%s' [%lld, %lld]: %s cannot store it (%s); stored as %s\n", g_tool,
                    jobs[i].src->name, (long long)jobs[i].rows, (long long)jobs[i].cols, lq_qtype_name(jobs[i].want),
                    jobs[i].why, lq_qtype_name(jobs[i].type));
    const double bpw_q   = params_q ? bits_q / (double)params_q : 0;
    const double bpw_all = params ? 8.0 * (double)bytes_out / (double)params : 0;
    const double bpw_lin = numel_lin ? 8.0 * (double)bytes_lin / (double)numel_lin : 0;
    if (dry) {
        for (int64_t i = 0; i < n; i++) {
            const job *j = &jobs[i];
            char       shape[48];
            snprintf(shape, sizeof shape, "[%lld, %lld]", (long long)j->rows, (long long)j->cols);
            if (j->skip) {
                printf("%-52s %-14s %-5s -> (tied: stored once)\n", j->src->name, shape, lq_dtype_name(j->src->dtype));
                continue;
            }
            printf("%-52s %-14s %-5s -> %-16s %10llu B%s%s\n", j->src->name, shape, lq_dtype_name(j->src->dtype),
                   lq_qtype_name(j->type), (unsigned long long)j->bytes_out,
                   j->why ? "  fallback: " : "", j->why ? j->why : "");
        }
        char a[32], b[32];
        printf("plan: %lld tensors (%lld quantized, %lld fallbacks), %s -> %s bytes of tensor data (est.), "
               "%.3f bits/weight quantized, %.3f overall\n",
               (long long)n_out, (long long)n_quant, (long long)n_fallback, cli_commas(bytes_in, a, sizeof a),
               cli_commas(bytes_out, b, sizeof b), bpw_q, bpw_all);
        if (have_plan || preset || plan_path)
            printf("linear weights: %s bytes, %.3f bits/weight (%llu weights)\n", cli_commas(bytes_lin, a, sizeof a),
                   bpw_lin, (unsigned long long)numel_lin);
        rc = CLI_EXIT_OK;
        goto done;
    }

    /* ---- GPTQ ---- */
    if (gptq) {
        const double t_g = now_s();
        char         tokbuf[PATH_MAX];
        const char  *tokp = find_tokenizer(ck, in_path, tokenizer, tokbuf, sizeof tokbuf);
        lq_tokenizer *tok = NULL;
        if (tokp && (st = lq_tokenizer_open(tokp, (int32_t)cfg.vocab_size, &tok)) != LQ_OK) {
            cli_error_status(tokp, st);
            goto done;
        }
        lq_calib_params cp = lq_calib_default_params();
        cp.n_samples       = calib_samples;
        cp.seq_len         = calib_len;
        cp.seed            = (uint64_t)seed;
        cp.vocab_size      = cfg.vocab_size;
        st                 = lq_calib_load(calib_path, tok, &cp, &gi.cs);
        lq_tokenizer_free(tok);
        if (st != LQ_OK) {
            cli_error_status(calib_path, st);
            goto done;
        }
        /* everything in the plan that shapes GPTQ's result goes into the work directory's fingerprint */
        size_t cap = 64, len = 0;
        for (int64_t i = 0; i < n; i++) cap += strlen(jobs[i].src->name) + 24;
        char *opts = malloc(cap);
        if (!opts) {
            cli_error("out of memory");
            goto done;
        }
        len += (size_t)snprintf(opts + len, cap - len, "scale_dtype=%s\n", lq_dtype_name(qp.scale_dtype));
        for (int64_t i = 0; i < n; i++)
            if (!jobs[i].skip && len < cap)
                len += (size_t)snprintf(opts + len, cap - len, "%s=%s\n", jobs[i].src->name, lq_qtype_name(jobs[i].type));
        type_ctx           tc = {jobs, n};
        lq_gptq_run_params gp = lq_gptq_run_default_params();
        gp.solver.act_order     = act_order;
        gp.solver.static_groups = static_groups;
        gp.solver.mse           = mse;
        gp.solver.damp          = damp;
        gp.solver.block_size    = (int)gptq_block;
        gp.solver.scale_dtype   = qp.scale_dtype;
        gp.true_sequential      = true_seq;
        gp.backend = !strcmp(device, "cpu") ? LQ_BACKEND_CPU : !strcmp(device, "cuda") ? LQ_BACKEND_CUDA : LQ_BACKEND_AUTO;
        gp.n_threads            = (int)n_threads;
        gp.work_dir             = work_dir;
        char parent[PATH_MAX];
        snprintf(parent, sizeof parent, "%s", out_path);
        char *slash = strrchr(parent, '/');
        if (slash)
            *slash = 0;
        else
            snprintf(parent, sizeof parent, ".");
        gp.tmp_parent    = parent;
        gp.max_ram       = max_ram;
        gp.options_text  = opts;
        gp.no_fsync      = no_fsync;
        gp.progress      = cli_progress;
        gi.sp            = gp.solver;
        gi.true_seq      = true_seq;
        gi.seed          = seed;
        st               = lq_gptq_run(in_path, gi.cs, gptq_type_of, &tc, &gp, &gi.gr);
        free(opts);
        cli_progress_end();
        if (st != LQ_OK) {
            cli_error_status(work_dir ? work_dir : in_path, st);
            goto done;
        }
        if (lq_gptq_result_resumed_blocks(gi.gr) > 0)
            DISPLAY(2, "%s: resumed: %lld block(s) were already done in %s\n", g_tool,
                    (long long)lq_gptq_result_resumed_blocks(gi.gr), work_dir);
        if (imatrix_path && (st = lq_gptq_write_imatrix(gi.gr, gi.cs, imatrix_path, no_fsync)) != LQ_OK) {
            cli_error_status(imatrix_path, st);
            goto done;
        }
        t_gptq = now_s() - t_g;
    }

    /* ---- quantize ---- */
    const double t0 = now_s();
    uint64_t     src_quant_bytes = 0;
    int64_t      k = 0;
    for (int64_t i = 0; i < n; i++) {
        job *j = &jobs[i];
        if (j->skip) continue;
        const lq_tensor_info *t = j->src;
        lq_qtensor           *q = &qt[k++];
        q->name                 = t->name;
        q->n_dims               = t->n_dims;
        memcpy(q->shape, t->shape, sizeof q->shape);
        q->scale_dtype = fmt == OUT_GGUF ? LQ_DTYPE_F16 : qp.scale_dtype;
        q->qtype       = j->type;
        q->data        = t->data;
        const lq_qtype_traits *tr = lq_qtype_traits_of(j->type);
        if (tr->kind == LQ_QK_KEEP && tr->dtype == t->dtype) continue;
        if (tr->kind == LQ_QK_KEEP && t->n_dims != 2) { /* 1-D conversions: plain convert */
            uint64_t numel = 0, nb = 0;
            lq_tensor_info_numel(t, &numel);
            lq_dtype_nbytes(tr->dtype, numel, &nb);
            j->data = malloc(nb ? nb : 1);
            if (!j->data || lq_convert_cpu(tr->dtype, j->data, t->dtype, t->data, (int64_t)numel, (int)n_threads) != LQ_OK) {
                cli_error("'%s': cannot convert to %s", t->name, tr->name);
                goto done;
            }
            q->data = j->data;
            continue;
        }
        const lq_gptq_layer *gl = gi.gr ? lq_gptq_result_find(gi.gr, t->name) : NULL;
        if (gl) {
            q->data   = gl->q.data;
            q->scales = gl->q.scales;
            q->zeros  = gl->q.zeros;
            q->g_idx  = gl->q.g_idx;
            continue;
        }
        const uint64_t rb = lq_qtype_row_bytes(j->type, j->cols);
        const int64_t  ns = lq_qtype_n_scales(j->type, j->rows, j->cols);
        j->data           = malloc((size_t)(rb * (uint64_t)j->rows) + 1);
        j->scales         = ns ? malloc((size_t)ns * sizeof(float)) : NULL;
        j->zeros          = lq_qtype_has_zeros(j->type) ? malloc((size_t)ns) : NULL;
        if (!j->data || (ns && !j->scales) || (lq_qtype_has_zeros(j->type) && !j->zeros)) {
            cli_error("out of memory quantizing '%s'", t->name);
            goto done;
        }
        lq_quant_params p = qp;
        p.col_weight      = NULL;
        if (stats) {
            const lq_tensor_info *s = lq_checkpoint_find(stats, t->name);
            if (s && s->dtype == LQ_DTYPE_F32 && s->nbytes == (uint64_t)j->cols * 4)
                p.col_weight = s->data;
            else if (s)
                DISPLAY(2, "%s: warning: --act-stats: '%s' is not F32 [%lld]; ignored\n", g_tool, t->name,
                        (long long)j->cols);
        }
        char stage_label[64];
        snprintf(stage_label, sizeof stage_label, "quantize %lld/%lld", (long long)k, (long long)n_out);
        if (cli_progress((float)k / (float)(n_out ? n_out : 1), stage_label, NULL)) {
            cli_error("interrupted");
            goto done;
        }
        st = lq_quantize_cpu(j->type, t->dtype, t->data, j->rows, j->cols, &p, j->data, j->scales, j->zeros,
                             (int)n_threads);
        if (st != LQ_OK) {
            cli_error_status(t->name, st);
            goto done;
        }
        src_quant_bytes += t->nbytes;
        q->data   = j->data;
        q->scales = j->scales;
        q->zeros  = j->zeros;
    }
    if (w8a8) /* static int8 input scales for every int8 decoder Linear */
        for (int64_t i = 0; i < k; i++) {
            lq_qtensor *q = &qt[i];
            if (q->qtype != LQ_QT_INT8_CH || !cli_is_layer_linear(q->name)) continue;
            char          mod[512];
            const size_t  nl = strlen(q->name) - strlen(".weight");
            snprintf(mod, sizeof mod, "%.*s", (int)nl, q->name);
            const double a = lq_act_ranges_find(ranges, mod);
            if (!(a > 0)) {
                cli_error("%s: no activation range for %s", act_scales ? act_scales : calib_path, mod);
                goto done;
            }
            /* rounded to the stored scale dtype here, so the runner uses exactly what is written */
            const float sx = (float)(a / 127.0);
            q->in_scale    = q->scale_dtype == LQ_DTYPE_F16    ? lq_f16_to_f32(lq_f32_to_f16(sx))
                             : q->scale_dtype == LQ_DTYPE_BF16 ? lq_bf16_to_f32(lq_f32_to_bf16(sx))
                                                               : sx;
        }
    cli_progress_end();
    const double t_quant = now_s() - t0;

    /* ---- write ---- */
    const double t1 = now_s();
    if (fmt == OUT_GGUF) {
        struct stat sb;
        if (stat(out_path, &sb) == 0 && !force) {
            cli_error("%s exists; use --force to replace it", out_path);
            goto done;
        }
        char                 tokbuf[PATH_MAX];
        lq_gguf_write_params gp = lq_gguf_write_default_params();
        gp.tokenizer_path       = find_tokenizer(ck, in_path, tokenizer, tokbuf, sizeof tokbuf);
        gp.no_fsync             = no_fsync;
        gp.progress             = cli_progress;
        if (!gp.tokenizer_path)
            DISPLAY(2, "%s: warning: no tokenizer found beside %s (use --tokenizer); llama.cpp needs one\n", g_tool,
                    in_path);
        st = lq_gguf_write_llama(out_path, &cfg, qt, k, &gp);
        cli_progress_end();
        if (st != LQ_OK) {
            cli_error_status(out_path, st);
            goto done;
        }
    } else {
        bool out_exists = false;
        if (cli_stage_begin(out_path, lq_checkpoint_dir(ck), force, stage, sizeof stage, &out_exists) != 0) goto done;
        char  *cfg_text = NULL;
        size_t cfg_len  = 0;
        if (lq_checkpoint_dir(ck)) {
            char cpath[PATH_MAX];
            if (cli_join(cpath, sizeof cpath, lq_checkpoint_dir(ck), "config.json") && access(cpath, R_OK) == 0)
                cfg_text = cli_read_file(cpath, &cfg_len);
        }
        lq_qformat_write_params wp = lq_qformat_write_default_params();
        wp.format                  = qformat_of(fmt);
        wp.cfg                     = &cfg;
        wp.config_json             = cfg_text;
        wp.config_json_len         = cfg_len;
        wp.model_dtype             = cfg.dtype;
        wp.max_shard_size          = max_shard;
        wp.no_fsync                = no_fsync;
        wp.ct_actorder_group       = ct_group;
        wp.n_threads               = (int)n_threads;
        wp.progress                = cli_progress;
        st                         = lq_qformat_write_dir(stage, qt, k, &wp);
        cli_progress_end();
        free(cfg_text);
        if (st != LQ_OK) {
            cli_error_status(out_path, st);
            goto done;
        }
        const char *src_dir = lq_checkpoint_dir(ck);
        char        l2c_dir[PATH_MAX];
        if (!src_dir) {
            snprintf(l2c_dir, sizeof l2c_dir, "%s", in_path);
            char *slash = strrchr(l2c_dir, '/');
            if (slash)
                *slash = 0;
            else
                snprintf(l2c_dir, sizeof l2c_dir, ".");
            src_dir = l2c_dir;
        }
        if (cli_copy_model_files(src_dir, stage, tokenizer) < 0) goto done;
        if (gi.gr) {
            lq_json_writer *w = lq_json_writer_init(2);
            gptq_json(w, &gi, false);
            char  *text = NULL, mpath[PATH_MAX];
            size_t tlen = 0;
            if (lq_json_writer_finish(w, &text, &tlen) != LQ_OK || !cli_join(mpath, sizeof mpath, stage, "calibration.json") ||
                cli_write_file(mpath, text, tlen) != 0) {
                lq_free(text);
                cli_error("%s: cannot write calibration.json", out_path);
                goto done;
            }
            lq_free(text);
        }
        /* the records that explain the types and scales, beside the weights */
        if (have_plan) {
            char fp[PATH_MAX];
            if (!cli_join(fp, sizeof fp, stage, "plan.json") ||
                (st = lq_mixed_plan_write_json(tab, &plan, fp, NULL)) != LQ_OK ||
                !cli_join(fp, sizeof fp, stage, "sensitivity.json") || (st = lq_sens_table_write_json(tab, fp)) != LQ_OK ||
                !cli_join(fp, sizeof fp, stage, "sensitivity.svg") ||
                (st = lq_sens_chart_svg(tab, &plan, in_path, fp)) != LQ_OK) {
                cli_error("%s: cannot write the plan records", out_path);
                goto done;
            }
        }
        if (w8a8) {
            char   fp[PATH_MAX];
            size_t tl = ranges_len;
            char  *tx = ranges_text ? ranges_text : cli_read_file(act_scales, &tl);
            const int ok = tx && cli_join(fp, sizeof fp, stage, "activation_ranges.json") && cli_write_file(fp, tx, tl) == 0;
            if (tx != ranges_text) free(tx);
            if (!ok) {
                cli_error("%s: cannot write activation_ranges.json", out_path);
                goto done;
            }
        }
        if (cli_stage_commit(stage, out_path, out_exists) != 0) goto done;
    }
    const double t_write = now_s() - t1;

    /* ---- the written model against the source on the same windows ---- */
    double real_kld = -1;
    if (sm && scs && (have_plan || w8a8)) {
        lq_model       *om = NULL;
        lq_model_params mp = lq_model_default_params();
        mp.backend         = LQ_BACKEND_CPU;
        mp.n_threads       = (int)n_threads;
        mp.max_seq         = calib_len;
        st                 = lq_model_open(out_path, &mp, &om);
        if (st == LQ_OK) st = lq_sens_model_kld(sm, om, scs, (int)n_threads, &real_kld);
        lq_model_free(om);
        if (st != LQ_OK) {
            cli_error_status(out_path, st);
            goto done;
        }
        if (have_plan)
            DISPLAY(2, "%s: predicted KLD %.6g, measured %.6g on the %lld calibration windows\n", g_tool,
                    plan.predicted_kld, real_kld, (long long)scs->n_samples);
        else
            DISPLAY(2, "%s: W8A8 (%s ranges): KLD %.6g on the %lld calibration windows\n", g_tool,
                    ranges ? ranges->method : "?", real_kld, (long long)scs->n_samples);
    }

    /* ---- report ---- */
    uint64_t    size_out = 0;
    struct stat sb;
    if (fmt == OUT_GGUF) {
        if (stat(out_path, &sb) == 0) size_out = (uint64_t)sb.st_size;
    } else {
        lq_checkpoint *o = NULL;
        if (lq_checkpoint_open(out_path, &o) == LQ_OK) {
            for (int64_t i = 0; i < lq_checkpoint_count(o); i++) size_out += lq_checkpoint_tensor(o, i)->nbytes;
            lq_checkpoint_close(o);
        }
    }
    const double gbs = t_quant > 0 ? (double)src_quant_bytes / t_quant / 1e9 : 0;
    if (json) {
        lq_json_writer *w = lq_json_writer_init(2);
        lq_json_obj_begin(w);
        lq_json_key(w, "tool");
        lq_json_str(w, g_tool);
        lq_json_key(w, "version");
        lq_json_str(w, lq_version());
        lq_json_key(w, "input");
        lq_json_str(w, in_path);
        lq_json_key(w, "output");
        lq_json_str(w, out_path);
        lq_json_key(w, "format");
        lq_json_str(w, fmt == OUT_GGUF ? "gguf" : lq_qformat_name(qformat_of(fmt)));
        lq_json_key(w, "method");
        lq_json_str(w, method);
        lq_json_key(w, "type");
        lq_json_str(w, lq_qtype_name(def_type));
        lq_json_key(w, "tensors");
        lq_json_i64(w, n_out);
        lq_json_key(w, "quantized");
        lq_json_i64(w, n_quant);
        lq_json_key(w, "fallbacks");
        lq_json_arr_begin(w);
        for (int64_t i = 0; i < n; i++) {
            if (!jobs[i].why) continue;
            lq_json_obj_begin(w);
            lq_json_key(w, "tensor");
            lq_json_str(w, jobs[i].src->name);
            lq_json_key(w, "wanted");
            lq_json_str(w, lq_qtype_name(jobs[i].want));
            lq_json_key(w, "stored");
            lq_json_str(w, lq_qtype_name(jobs[i].type));
            lq_json_key(w, "reason");
            lq_json_str(w, jobs[i].why);
            lq_json_obj_end(w);
        }
        lq_json_arr_end(w);
        lq_json_key(w, "tensor_types");
        lq_json_obj_begin(w);
        for (int64_t i = 0; i < n; i++) {
            if (jobs[i].skip) continue;
            lq_json_key(w, jobs[i].src->name);
            lq_json_str(w, lq_qtype_name(jobs[i].type));
        }
        lq_json_obj_end(w);
        lq_json_key(w, "parameters");
        lq_json_u64(w, params);
        lq_json_key(w, "bytes_in");
        lq_json_u64(w, bytes_in);
        lq_json_key(w, "bytes_out");
        lq_json_u64(w, size_out);
        lq_json_key(w, "bits_per_weight_quantized");
        lq_json_f64(w, bpw_q);
        lq_json_key(w, "bits_per_weight_overall");
        lq_json_f64(w, params ? 8.0 * (double)size_out / (double)params : 0);
        lq_json_key(w, "bits_per_weight_linear");
        lq_json_f64(w, bpw_lin);
        lq_json_key(w, "bytes_linear");
        lq_json_u64(w, bytes_lin);
        if (have_plan) {
            lq_json_key(w, "plan");
            lq_json_obj_begin(w);
            lq_json_key(w, "exact");
            lq_json_bool(w, plan.exact);
            lq_json_key(w, "bytes");
            lq_json_u64(w, plan.bytes);
            lq_json_key(w, "fixed_bytes");
            lq_json_u64(w, tab->fixed_bytes);
            lq_json_key(w, "predicted_kld");
            lq_json_f64(w, plan.predicted_kld);
            lq_json_key(w, "lower_bound");
            lq_json_f64(w, plan.lower_bound);
            lq_json_key(w, "groups");
            lq_json_obj_begin(w);
            for (int64_t g = 0; g < tab->n_groups; g++) {
                lq_json_key(w, tab->groups[g].name);
                lq_json_str(w, lq_qtype_name(plan.types[g]));
            }
            lq_json_obj_end(w);
            lq_json_obj_end(w);
        }
        if (real_kld >= 0) {
            lq_json_key(w, "calibration_kld");
            lq_json_f64(w, real_kld);
        }
        if (w8a8) {
            lq_json_key(w, "w8a8");
            lq_json_obj_begin(w);
            lq_json_key(w, "ranges");
            lq_json_str(w, act_scales ? act_scales : "calibrated");
            lq_json_key(w, "method");
            lq_json_str(w, ranges ? ranges->method : "?");
            lq_json_obj_end(w);
        }
        lq_json_key(w, "quantize_seconds");
        lq_json_f64(w, t_quant);
        lq_json_key(w, "write_seconds");
        lq_json_f64(w, t_write);
        if (gi.gr) {
            lq_json_key(w, "gptq_seconds");
            lq_json_f64(w, t_gptq);
            lq_json_key(w, "gptq");
            gptq_json(w, &gi, true);
        }
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) == 0) {
            lq_json_key(w, "peak_rss_bytes");
            lq_json_u64(w, (uint64_t)ru.ru_maxrss * 1024u);
        }
        lq_json_obj_end(w);
        char  *text;
        size_t len;
        if (lq_json_writer_finish(w, &text, &len) == LQ_OK) {
            printf("%s\n", text);
            lq_free(text);
        }
    } else {
        char a[32], b[32];
        printf("%s: %s, %lld tensors (%lld quantized, %lld fallbacks), %s -> %s bytes (%.2fx smaller), "
               "%.3f bits/weight quantized, %.3f overall\n",
               out_path, fmt == OUT_GGUF ? "gguf" : lq_qformat_name(qformat_of(fmt)), (long long)n_out,
               (long long)n_quant, (long long)n_fallback, cli_commas(bytes_in, a, sizeof a),
               cli_commas(size_out, b, sizeof b), size_out ? (double)bytes_in / (double)size_out : 0, bpw_q,
               params ? 8.0 * (double)size_out / (double)params : 0);
        if (have_plan || preset || plan_path)
            printf("linear weights: %s bytes, %.3f bits/weight (%llu weights)\n", cli_commas(bytes_lin, a, sizeof a),
                   bpw_lin, (unsigned long long)numel_lin);
        DISPLAY(3, "%s: quantized %.1f MB in %.2f s (%.2f GB/s), wrote in %.2f s\n", g_tool,
                (double)src_quant_bytes / 1e6, t_quant, gbs, t_write);
    }
    rc = CLI_EXIT_OK;
done:
    if (stage[0]) cli_remove_tree(stage);
    if (jobs)
        for (int64_t i = 0; i < n; i++) {
            free(jobs[i].data);
            free(jobs[i].scales);
            free(jobs[i].zeros);
        }
    free(jobs);
    free(qt);
    lq_gptq_result_free(gi.gr);
    lq_calib_free(gi.cs);
    tmap_free(&tmap);
    if (have_plan) lq_mixed_plan_free(&plan);
    lq_sens_table_free(tab);
    lq_act_ranges_free(ranges);
    free(ranges_text);
    lq_calib_free(scs);
    lq_model_free(sm);
    for (int r = 0; r < n_rules; r++) regfree(&rules[r].re);
    lq_checkpoint_close(stats);
    lq_checkpoint_close(ck);
    if (rc == CLI_EXIT_OK && fflush(stdout) != 0) rc = CLI_EXIT_FAIL;
    return rc;
}
