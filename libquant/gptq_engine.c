/* gptq_engine.c : block-by-block GPTQ over a calibration set (lq_gptq.h).
 *
 * Work directory layout (all files written atomically):
 *   fingerprint.json       {"fingerprint", "model", "calibration", "options"}: hex sha256s
 *   state.json             {"blocks_done": k}
 *   block-NNNNN.safetensors per quantized Linear W: W.data (U8, lq layout),
 *                          W.scales (F32), W.zeros (U8, asym), W.g_idx (I32,
 *                          act-order), W.sum_x2 (F64, cols), W.stats (F64:
 *                          loss, damp, dead columns, retries, tokens);
 *                          metadata W = qtype name
 *   acts-NNNNN.f32         the input activations of block NNNNN (resumable
 *                          runs), n_samples x seq_len x dim f32, no header */
#include "block_internal.h"
#include "lq_gptq.h"
#include "lq_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define N_LIN 7
static const char *const LIN_NAME[N_LIN] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                            "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                            "mlp.down_proj"};
static const int         LIN_CAP[N_LIN]  = {LQ__CAP_QKV, LQ__CAP_QKV,    LQ__CAP_QKV, LQ__CAP_O,
                                            LQ__CAP_GATEUP, LQ__CAP_GATEUP, LQ__CAP_DOWN};

lq_gptq_run_params lq_gptq_run_default_params(void) {
    lq_gptq_run_params p;
    memset(&p, 0, sizeof p);
    p.solver  = lq_gptq_default_params();
    p.backend = LQ_BACKEND_CPU;
    return p;
}

struct lq_gptq_result {
    lq_gptq_layer   *layers;
    int64_t          n;
    char           **names;     /* owned copies, n */
    lq_safetensors **files;     /* one per block that holds quantized Linears */
    int64_t          n_files;
    char            *work_dir;
    bool             temporary;
    int64_t          resumed;
    char             fingerprint[65];
};

int64_t              lq_gptq_result_count(const lq_gptq_result *r) { return r->n; }
const lq_gptq_layer *lq_gptq_result_layer(const lq_gptq_result *r, int64_t i) {
    return i >= 0 && i < r->n ? &r->layers[i] : NULL;
}
const lq_gptq_layer *lq_gptq_result_find(const lq_gptq_result *r, const char *name) {
    for (int64_t i = 0; i < r->n; i++)
        if (!strcmp(r->layers[i].name, name)) return &r->layers[i];
    return NULL;
}
int64_t     lq_gptq_result_resumed_blocks(const lq_gptq_result *r) { return r->resumed; }
const char *lq_gptq_result_fingerprint(const lq_gptq_result *r) { return r->fingerprint; }

/* remove the files this engine writes in `dir`, then `dir` if it is empty */
static void remove_work_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        if (!strncmp(n, "block-", 6) || !strncmp(n, "acts-", 5) || !strcmp(n, "state.json") ||
            !strcmp(n, "fingerprint.json") || strstr(n, ".tmp")) {
            char *p = lq__path_join(dir, n);
            if (p) unlink(p);
            lq_free(p);
        }
    }
    closedir(d);
    rmdir(dir);
}

void lq_gptq_result_free(lq_gptq_result *r) {
    if (!r) return;
    for (int64_t i = 0; i < r->n_files; i++) lq_safetensors_close(r->files[i]);
    lq_free(r->files);
    for (int64_t i = 0; i < r->n; i++) lq_free(r->names[i]);
    lq_free(r->names);
    lq_free(r->layers);
    if (r->temporary && r->work_dir) remove_work_dir(r->work_dir);
    lq_free(r->work_dir);
    lq_free(r);
}

/* ==== activations: in RAM, or in a file read and written one sample at a time ==== */

typedef struct {
    float  *ram;
    int     fd;
    char   *path;     /* file-backed: its path (owned) */
    size_t  sample;   /* floats per sample */
    int64_t n;
} act_store;

static void act_close(act_store *a) {
    lq_free(a->ram);
    if (a->fd >= 0) close(a->fd);
    lq_free(a->path);
    a->ram  = NULL;
    a->fd   = -1;
    a->path = NULL;
}

static lq_status act_open(act_store *a, int64_t n, size_t sample, bool in_ram, const char *path, bool create) {
    memset(a, 0, sizeof *a);
    a->fd     = -1;
    a->n      = n;
    a->sample = sample;
    if (in_ram) {
        a->ram = lq_malloc((size_t)n * sample * sizeof(float));
        LQ_RETURN_IF(!a->ram, LQ_ERR_NOMEM, "gptq: out of memory for %lld x %zu activations (use --max-ram to spill "
                                            "them to the work directory)", (long long)n, sample);
        if (!create && path) { /* load a committed activation file */
            const int fd = open(path, O_RDONLY | O_CLOEXEC);
            LQ_RETURN_IF(fd < 0, LQ_ERR_IO, "gptq: cannot open %s: %s", path, strerror(errno));
            const size_t total = (size_t)n * sample * sizeof(float);
            size_t       done  = 0;
            while (done < total) {
                const ssize_t r = pread(fd, (char *)a->ram + done, total - done, (off_t)done);
                if (r <= 0) break;
                done += (size_t)r;
            }
            close(fd);
            LQ_RETURN_IF(done != total, LQ_ERR_FORMAT, "gptq: %s is shorter than %zu bytes (a damaged work directory)",
                         path, total);
        }
        return LQ_OK;
    }
    a->path = lq_malloc(strlen(path) + 1);
    LQ_RETURN_IF(!a->path, LQ_ERR_NOMEM, "gptq: out of memory");
    strcpy(a->path, path);
    a->fd = open(path, create ? (O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC) : (O_RDONLY | O_CLOEXEC), 0644);
    LQ_RETURN_IF(a->fd < 0, LQ_ERR_IO, "gptq: cannot open %s: %s", path, strerror(errno));
    if (!create) {
        struct stat sb;
        LQ_RETURN_IF(fstat(a->fd, &sb) != 0 || (uint64_t)sb.st_size != (uint64_t)n * sample * sizeof(float),
                     LQ_ERR_FORMAT, "gptq: %s does not hold %lld samples (a damaged work directory)", path,
                     (long long)n);
    }
    return LQ_OK;
}

static lq_status act_read(const act_store *a, int64_t i, float *dst) {
    const size_t bytes = a->sample * sizeof(float);
    if (a->ram) {
        memcpy(dst, a->ram + (size_t)i * a->sample, bytes);
        return LQ_OK;
    }
    size_t done = 0;
    while (done < bytes) {
        const ssize_t r = pread(a->fd, (char *)dst + done, bytes - done, (off_t)((size_t)i * bytes + done));
        LQ_RETURN_IF(r <= 0, LQ_ERR_IO, "gptq: reading %s: %s", a->path, r < 0 ? strerror(errno) : "short file");
        done += (size_t)r;
    }
    return LQ_OK;
}

static lq_status act_write(act_store *a, int64_t i, const float *src) {
    const size_t bytes = a->sample * sizeof(float);
    if (a->ram) {
        memcpy(a->ram + (size_t)i * a->sample, src, bytes);
        return LQ_OK;
    }
    size_t done = 0;
    while (done < bytes) {
        const ssize_t r = pwrite(a->fd, (const char *)src + done, bytes - done, (off_t)((size_t)i * bytes + done));
        LQ_RETURN_IF(r <= 0, LQ_ERR_IO, "gptq: writing %s: %s", a->path, r < 0 ? strerror(errno) : "no space");
        done += (size_t)r;
    }
    return LQ_OK;
}

/* make `a` the committed file `path` (atomic rename; RAM stores are written out) */
static lq_status act_commit(act_store *a, const char *path, bool do_fsync) {
    if (a->ram) {
        lq__afile *f = NULL;
        LQ_TRY(lq__afile_open(path, &f));
        const lq_status s = lq__afile_write(f, a->ram, (size_t)a->n * a->sample * sizeof(float));
        if (s != LQ_OK) {
            lq__afile_abort(f);
            return s;
        }
        return lq__afile_commit_opt(f, do_fsync);
    }
    LQ_RETURN_IF(do_fsync && fsync(a->fd) != 0, LQ_ERR_IO, "gptq: fsync %s: %s", a->path, strerror(errno));
    LQ_RETURN_IF(rename(a->path, path) != 0, LQ_ERR_IO, "gptq: rename %s -> %s: %s", a->path, path, strerror(errno));
    lq_free(a->path);
    a->path = lq_malloc(strlen(path) + 1);
    LQ_RETURN_IF(!a->path, LQ_ERR_NOMEM, "gptq: out of memory");
    strcpy(a->path, path);
    return LQ_OK;
}

/* ==== fingerprint ==== */

static void hash_str(lq_sha256_ctx *c, const char *s) { lq_sha256_update(c, s, strlen(s) + 1); }
static void hash_i64(lq_sha256_ctx *c, int64_t v) { lq_sha256_update(c, &v, sizeof v); }

static void model_hash(const lq_checkpoint *ck, char hex[65]) {
    lq_sha256_ctx c;
    lq_sha256_init(&c);
    hash_str(&c, "lq-gptq model v1");
    for (int64_t i = 0; i < lq_checkpoint_count(ck); i++) {
        const lq_tensor_info *t = lq_checkpoint_tensor(ck, i);
        hash_str(&c, t->name);
        hash_i64(&c, (int64_t)t->dtype);
        for (int d = 0; d < t->n_dims; d++) hash_i64(&c, t->shape[d]);
        hash_i64(&c, (int64_t)t->nbytes);
        /* small tensors whole; large ones by 16 slices of 4 KiB spread evenly */
        if (t->nbytes <= (256u << 10)) {
            lq_sha256_update(&c, t->data, (size_t)t->nbytes);
        } else {
            for (uint64_t k = 0; k < 16; k++) {
                const uint64_t off = (t->nbytes - 4096) / 15 * k;
                lq_sha256_update(&c, (const uint8_t *)t->data + off, 4096);
            }
        }
    }
    uint8_t d[32];
    lq_sha256_final(&c, d);
    lq_sha256_hex(d, hex);
}

static void calib_hash(const lq_calib_set *cs, char hex[65]) {
    lq_sha256_ctx c;
    lq_sha256_init(&c);
    hash_str(&c, "lq-gptq calibration v1");
    hash_str(&c, cs->sha256);
    hash_i64(&c, cs->n_samples);
    hash_i64(&c, cs->seq_len);
    lq_sha256_update(&c, cs->tokens, (size_t)(cs->n_samples * cs->seq_len) * sizeof(int32_t));
    uint8_t d[32];
    lq_sha256_final(&c, d);
    lq_sha256_hex(d, hex);
}

static void options_hash(const lq_gptq_run_params *p, lq_backend backend, char hex[65]) {
    char buf[512];
    const lq_gptq_params *s = &p->solver;
    snprintf(buf, sizeof buf, "lq-gptq options v1 act_order=%d static_groups=%d mse=%d damp=%.17g block=%d scale=%d "
             "true_sequential=%d backend=%d", s->act_order, s->static_groups, s->mse, s->damp, s->block_size,
             (int)s->scale_dtype, p->true_sequential, (int)backend);
    lq_sha256_ctx c;
    lq_sha256_init(&c);
    hash_str(&c, buf);
    hash_str(&c, p->options_text ? p->options_text : "");
    uint8_t d[32];
    lq_sha256_final(&c, d);
    lq_sha256_hex(d, hex);
}

/* ==== small JSON files ==== */

static lq_status read_json(const char *path, lq_json_doc **doc) {
    char  *text = NULL;
    size_t len  = 0;
    LQ_TRY(lq__read_file(path, 1 << 16, &text, &len));
    const lq_status s = lq_json_parse(text, len, NULL, doc, NULL);
    lq_free(text);
    LQ_RETURN_IF(s != LQ_OK, LQ_ERR_FORMAT, "gptq: %s is not valid JSON (a damaged work directory)", path);
    return LQ_OK;
}

static lq_status write_state(const char *dir, int64_t blocks_done) {
    char *path = lq__path_join(dir, "state.json");
    LQ_RETURN_IF(!path, LQ_ERR_NOMEM, "gptq: out of memory");
    char buf[64];
    const int n = snprintf(buf, sizeof buf, "{\"blocks_done\": %lld}\n", (long long)blocks_done);
    const lq_status s = lq__write_file_atomic(path, buf, (size_t)n);
    lq_free(path);
    return s;
}

/* check or create the fingerprint; *done = blocks already finished */
static lq_status open_work_dir(const char *dir, const char *fp_model, const char *fp_calib, const char *fp_opts,
                               const char *fp, int64_t n_layers, int64_t *done) {
    *done = 0;
    char *fpath = lq__path_join(dir, "fingerprint.json"), *spath = lq__path_join(dir, "state.json");
    lq_json_doc *doc = NULL;
    lq_status    st  = LQ_OK;
    LQ_GOTO_IF(!fpath || !spath, LQ_ERR_NOMEM, "gptq: out of memory");
    if (!lq__is_dir(dir)) LQ_GOTO_IF(mkdir(dir, 0755) != 0, LQ_ERR_IO, "gptq: cannot create the work directory %s: %s",
                                     dir, strerror(errno));
    if (lq__file_exists(fpath)) {
        LQ_GOTO_TRY(read_json(fpath, &doc));
        const lq_json *r = lq_json_root(doc);
        const char    *a = lq_json_get_str(lq_json_get(r, "fingerprint"));
        if (!a || strcmp(a, fp) != 0) {
            const char *m = lq_json_get_str(lq_json_get(r, "model")), *c = lq_json_get_str(lq_json_get(r, "calibration"));
            const char *o = lq_json_get_str(lq_json_get(r, "options"));
            char        what[128] = "";
            if (!m || strcmp(m, fp_model)) strcat(what, " the model,");
            if (!c || strcmp(c, fp_calib)) strcat(what, " the calibration windows,");
            if (!o || strcmp(o, fp_opts)) strcat(what, " the options,");
            if (what[0]) what[strlen(what) - 1] = 0;
            LQ_GOTO_IF(1, LQ_ERR_INVALID_ARG,
                       "gptq: the work directory %s belongs to another run (%s differ%s); remove it or choose another "
                       "--work-dir", dir, what[0] ? what + 1 : "its fingerprint", what[0] && strchr(what + 1, ',') ? "" : "s");
        }
        lq_json_free(doc);
        doc = NULL;
        if (lq__file_exists(spath)) {
            LQ_GOTO_TRY(read_json(spath, &doc));
            int64_t k = -1;
            LQ_GOTO_IF(!lq_json_get_i64(lq_json_get(lq_json_root(doc), "blocks_done"), &k) || k < 0 || k > n_layers,
                       LQ_ERR_FORMAT, "gptq: %s: blocks_done is not a number in [0, %lld]", spath, (long long)n_layers);
            *done = k;
        }
    } else {
        DIR *d = opendir(dir);
        LQ_GOTO_IF(!d, LQ_ERR_IO, "gptq: cannot read the work directory %s: %s", dir, strerror(errno));
        bool           empty = true;
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = false;
        closedir(d);
        LQ_GOTO_IF(!empty, LQ_ERR_INVALID_ARG,
                   "gptq: the work directory %s is not empty and has no fingerprint.json; choose an empty or new one",
                   dir);
        char buf[512];
        const int n = snprintf(buf, sizeof buf,
                               "{\"fingerprint\": \"%s\", \"model\": \"%s\", \"calibration\": \"%s\", \"options\": \"%s\"}\n",
                               fp, fp_model, fp_calib, fp_opts);
        LQ_GOTO_TRY(lq__write_file_atomic(fpath, buf, (size_t)n));
        LQ_GOTO_TRY(write_state(dir, 0));
    }
done:
    lq_json_free(doc);
    lq_free(fpath);
    lq_free(spath);
    return st;
}

/* ==== the engine ==== */

typedef struct {
    lq_qtype type;
    int64_t  rows, cols;
    uint8_t *data;
    float   *scales;
    uint8_t *zeros;
    int32_t *g_idx;     /* act-order without static groups, else NULL */
    float   *deq;       /* rows x cols f32: the quantized weight for the block forward */
    double   stats[5];  /* loss, damp, dead columns, retries, tokens */
    double   seconds;
} lin_out;

typedef struct {
    const lq_gptq_run_params *p;
    const lq_llama_weights   *w;
    const lq_calib_set       *cs;
    int                       nt;
    int64_t                   L, D, S, KVD;
    lq__block_scratch         sc;
    /* CUDA backend: the block runs on the device; host buffers stay for the activation store */
    bool                      cuda;
    lq__block_scratch         dsc;
    float                    *dx, *dkc, *dvc, *dinv;
    double                   *dH[LQ__CAP_COUNT];
    lq_llama_layer            dl;                 /* the block's weights on the device */
    void                     *dbuf[32];           /* device buffers of dl */
    int                       n_dbuf;
    float                    *x, *kc, *vc;
    double                   *H[LQ__CAP_COUNT];  /* raw sums x x^T of the stage's inputs */
    int64_t                   cols[LQ__CAP_COUNT];
    int64_t                   tokens;
    double                   *sum_x2[LQ__CAP_COUNT]; /* diag of the raw sums (kept for the block file) */
    lin_out                   lin[N_LIN];
    int64_t                   layer;
    int64_t                   n_stages_total, stage_i;
    double                   *seconds;            /* n_layers x 7 solve times of this run */
} engine;

static lq_status capture(void *user, lq__cap_point p, const float *x, int64_t n, int64_t cols) {
    engine *e = user;
    if (!e->H[p]) return LQ_OK;
    LQ_ASSERT(cols == e->cols[p]);
    if (e->cuda) return lq_cuda_hessian_accum(e->dH[p], x, n, cols, 1.0);
    return lq_hessian_accum_cpu(e->H[p], x, n, cols, 1.0, e->nt);
}

/* ---- CUDA: the current block's weights on the device ---- */
static void dev_free_layer(engine *e) {
    for (int i = 0; i < e->n_dbuf; i++) lq_cuda_free(e->dbuf[i]);
    e->n_dbuf = 0;
    memset(&e->dl, 0, sizeof e->dl);
}

static lq_status dev_upload(engine *e, const void *src, size_t bytes, void **out) {
    LQ_ASSERT(e->n_dbuf < (int)(sizeof e->dbuf / sizeof e->dbuf[0]));
    void *d = NULL;
    LQ_TRY(lq_cuda_malloc(&d, bytes ? bytes : 1));
    e->dbuf[e->n_dbuf++] = d;
    *out                 = d;
    return lq_cuda_memcpy_h2d(d, src, bytes);
}

static lq_status dev_weight(engine *e, const lq_weight *h, lq_weight *d) {
    const lq_dtype_traits *dt = lq_dtype_traits_of(h->dtype);
    LQ_RETURN_IF(h->qtype != LQ_QT_NONE || !dt, LQ_ERR_UNSUPPORTED, "gptq: a quantized source weight");
    *d = *h;
    void *p;
    LQ_TRY(dev_upload(e, h->data, (size_t)(h->rows * h->cols) * dt->bits / 8, &p));
    d->data = p;
    return LQ_OK;
}

static lq_status dev_bias(engine *e, const float *h, int64_t n, const float **d) {
    *d = NULL;
    if (!h) return LQ_OK;
    void *p;
    LQ_TRY(dev_upload(e, h, (size_t)n * sizeof(float), &p));
    *d = p;
    return LQ_OK;
}

static lq_status dev_upload_layer(engine *e, const lq_llama_layer *y) {
    dev_free_layer(e);
    const lq_weight *hs[9] = {&y->attn_norm, &y->wq, &y->wk, &y->wv, &y->wo, &y->ffn_norm, &y->w_gate, &y->w_up,
                              &y->w_down};
    lq_weight       *ds[9] = {&e->dl.attn_norm, &e->dl.wq, &e->dl.wk, &e->dl.wv, &e->dl.wo, &e->dl.ffn_norm,
                              &e->dl.w_gate,    &e->dl.w_up, &e->dl.w_down};
    for (int i = 0; i < 9; i++) LQ_TRY(dev_weight(e, hs[i], ds[i]));
    const int64_t QD = e->w->n_heads * e->w->head_dim;
    LQ_TRY(dev_bias(e, y->bq, QD, &e->dl.bq));
    LQ_TRY(dev_bias(e, y->bk, e->KVD, &e->dl.bk));
    LQ_TRY(dev_bias(e, y->bv, e->KVD, &e->dl.bv));
    LQ_TRY(dev_bias(e, y->bo, e->D, &e->dl.bo));
    return LQ_OK;
}

static lq_weight *layer_field(lq_llama_layer *y, int j) {
    lq_weight *f[N_LIN] = {&y->wq, &y->wk, &y->wv, &y->wo, &y->w_gate, &y->w_up, &y->w_down};
    return f[j];
}

static const lq_weight *layer_field_c(const lq_llama_layer *y, int j) {
    const lq_weight *f[N_LIN] = {&y->wq, &y->wk, &y->wv, &y->wo, &y->w_gate, &y->w_up, &y->w_down};
    return f[j];
}

static void lin_free(lin_out *o) {
    lq_free(o->data);
    lq_free(o->scales);
    lq_free(o->zeros);
    lq_free(o->g_idx);
    lq_free(o->deq);
    memset(o, 0, sizeof *o);
}

static inline unsigned code_at(const uint8_t *row, int64_t k, int bits) {
    const uint64_t bit = (uint64_t)k * (uint64_t)bits;
    const uint8_t *b   = row + (bit >> 3);
    const unsigned off = (unsigned)(bit & 7);
    unsigned       v   = b[0];
    if (off + (unsigned)bits > 8u) v |= (unsigned)b[1] << 8;
    return (v >> off) & ((1u << bits) - 1u);
}

/* w[r][k] = s[r][g] * (u - z[r][g]), g = g_idx[k] or k / G */
static void dequantize_gidx(const lin_out *o) {
    const lq_qtype_traits *tr = lq_qtype_traits_of(o->type);
    const int64_t          ng = lq_qtype_n_groups(o->type, o->cols), G = tr->group ? tr->group : o->cols;
    const uint64_t         rb = lq_qtype_row_bytes(o->type, o->cols);
    const int              zs = 1 << (tr->bits - 1);
    for (int64_t r = 0; r < o->rows; r++) {
        const uint8_t *row = o->data + (uint64_t)r * rb;
        for (int64_t k = 0; k < o->cols; k++) {
            const int64_t g = o->g_idx ? o->g_idx[k] : k / G;
            const int     z = o->zeros ? o->zeros[r * ng + g] : zs;
            o->deq[r * o->cols + k] = o->scales[r * ng + g] * (float)((int)code_at(row, k, tr->bits) - z);
        }
    }
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static lq_status progress(engine *e, const char *what) {
    if (!e->p->progress) return LQ_OK;
    char label[96];
    snprintf(label, sizeof label, "gptq block %lld/%lld %s", (long long)e->layer + 1, (long long)e->w->n_layers, what);
    const float done = (float)e->stage_i / (float)(e->n_stages_total ? e->n_stages_total : 1);
    LQ_RETURN_IF(e->p->progress(done, label, e->p->progress_user) != 0, LQ_ERR_CANCELLED, "gptq: cancelled");
    return LQ_OK;
}

/* quantize Linear j of the current block against e->H[LIN_CAP[j]] (already scaled) */
static lq_status solve(engine *e, const lq_llama_layer *orig, int j) {
    lin_out         *o  = &e->lin[j];
    const lq_weight *sw = layer_field_c(orig, j);
    const int64_t    R = sw->rows, C = sw->cols;
    LQ_RETURN_IF(sw->qtype != LQ_QT_NONE, LQ_ERR_UNSUPPORTED, "gptq: layer %lld %s is already quantized",
                 (long long)e->layer, LIN_NAME[j]);
    const lq_gptq_params *sp0 = &e->p->solver;
    lq_gptq_params        sp  = *sp0;
    sp.qtype                  = o->type;
    const int64_t  ns = lq_qtype_n_scales(o->type, R, C);
    const uint64_t rb = lq_qtype_row_bytes(o->type, C);
    o->rows = R;
    o->cols = C;
    float *w32 = lq_malloc((size_t)(R * C) * sizeof(float));
    o->data    = lq_malloc((size_t)(rb * (uint64_t)R));
    o->scales  = lq_malloc((size_t)ns * sizeof(float));
    o->zeros   = lq_qtype_has_zeros(o->type) ? lq_malloc((size_t)ns) : NULL;
    o->g_idx   = lq_malloc((size_t)C * sizeof(int32_t));
    o->deq     = lq_malloc((size_t)(R * C) * sizeof(float));
    lq_status st = LQ_OK;
    LQ_GOTO_IF(!w32 || !o->data || !o->scales || (lq_qtype_has_zeros(o->type) && !o->zeros) || !o->g_idx || !o->deq,
               LQ_ERR_NOMEM, "gptq: out of memory for layer %lld %s", (long long)e->layer, LIN_NAME[j]);
    LQ_GOTO_TRY(lq_convert_cpu(LQ_DTYPE_F32, w32, sw->dtype, sw->data, R * C, e->nt));
    lq_gptq_stats gs;
    memset(&gs, 0, sizeof gs);
    const double t0 = now_s();
    if (e->p->backend == LQ_BACKEND_CUDA) {
        float *dw = NULL;
        st        = lq_cuda_malloc((void **)&dw, (size_t)(R * C) * sizeof(float));
        if (st == LQ_OK) st = lq_cuda_memcpy_h2d(dw, w32, (size_t)(R * C) * sizeof(float));
        if (st == LQ_OK) st = lq_cuda_gptq(&sp, dw, R, C, e->dH[LIN_CAP[j]], o->data, o->scales, o->zeros, o->g_idx, &gs);
        if (dw) lq_cuda_free(dw);
        LQ_GOTO_TRY(st);
    } else {
        LQ_GOTO_TRY(lq_gptq_cpu(&sp, w32, R, C, e->H[LIN_CAP[j]], o->data, o->scales, o->zeros, o->g_idx, &gs, e->nt));
    }
    o->seconds = now_s() - t0;
    /* g_idx is only kept when it is not k / G */
    {
        const lq_qtype_traits *tr = lq_qtype_traits_of(o->type);
        const int64_t          G  = tr->group ? tr->group : C;
        bool                   trivial = true;
        for (int64_t k = 0; k < C && trivial; k++) trivial = o->g_idx[k] == (int32_t)(k / G);
        if (trivial) {
            lq_free(o->g_idx);
            o->g_idx = NULL;
        }
    }
    dequantize_gidx(o);
    o->stats[0] = gs.loss;
    o->stats[1] = gs.damp;
    o->stats[2] = (double)gs.dead_cols;
    o->stats[3] = (double)gs.retries;
    o->stats[4] = (double)e->tokens;
    LQ_LOG_INFO("gptq: layer %lld %s %s: loss %.6g (damp %.3g, %lld dead columns, %d retries) in %.2f s",
                (long long)e->layer, LIN_NAME[j], lq_qtype_name(o->type), gs.loss, gs.damp, (long long)gs.dead_cols,
                gs.retries, o->seconds);
done:
    lq_free(w32);
    return st;
}

/* one pass over the samples through `y` (stop after `stop_after`, or the whole block writing `out`) */
static lq_status pass(engine *e, const lq_llama_layer *y, const act_store *in, act_store *out, int stop_after) {
    const size_t bytes = (size_t)(e->L * e->D) * sizeof(float);
    for (int64_t i = 0; i < e->S; i++) {
        LQ_TRY(act_read(in, i, e->x));
        if (e->cuda) {
            LQ_TRY(lq_cuda_memcpy_h2d(e->dx, e->x, bytes));
            LQ_TRY(lq__block_forward_cuda(e->w, &e->dl, e->dinv, e->dx, e->L, 0, e->dkc, e->dvc, &e->dsc, capture, e,
                                          stop_after));
            if (out) {
                LQ_TRY(lq_cuda_memcpy_d2h(e->x, e->dx, bytes));
                LQ_TRY(act_write(out, i, e->x));
            }
            continue;
        }
        LQ_TRY(lq__block_forward(e->w, y, e->x, e->L, 0, e->kc, e->vc, &e->sc, false, e->nt, capture, e,
                                 stop_after));
        if (out) LQ_TRY(act_write(out, i, e->x));
    }
    return LQ_OK;
}

static lq_status write_block_file(engine *e, const char *path, bool do_fsync) {
    lq_st_entry entries[N_LIN * 6];
    lq_kv       meta[N_LIN];
    char        names[N_LIN * 6][160];
    int         n = 0, nm = 0;
    for (int j = 0; j < N_LIN; j++) {
        const lin_out *o = &e->lin[j];
        if (o->type == LQ_QT_NONE) continue;
        char base[128];
        snprintf(base, sizeof base, "model.layers.%lld.%s.weight", (long long)e->layer, LIN_NAME[j]);
        const int64_t ns = lq_qtype_n_scales(o->type, o->rows, o->cols);
#define ENTRY(suffix, dt, count, ptr)                                                 \
    do {                                                                              \
        snprintf(names[n], sizeof names[n], "%s.%s", base, suffix);                   \
        memset(&entries[n], 0, sizeof entries[n]);                                    \
        entries[n].name     = names[n];                                               \
        entries[n].dtype    = (dt);                                                   \
        entries[n].n_dims   = 1;                                                      \
        entries[n].shape[0] = (count);                                                \
        entries[n].data     = (ptr);                                                  \
        n++;                                                                          \
    } while (0)
        ENTRY("data", LQ_DTYPE_U8, (int64_t)lq_qtype_row_bytes(o->type, o->cols) * o->rows, o->data);
        ENTRY("scales", LQ_DTYPE_F32, ns, o->scales);
        if (o->zeros) ENTRY("zeros", LQ_DTYPE_U8, ns, o->zeros);
        if (o->g_idx) ENTRY("g_idx", LQ_DTYPE_I32, o->cols, o->g_idx);
        ENTRY("sum_x2", LQ_DTYPE_F64, o->cols, e->sum_x2[LIN_CAP[j]]);
        ENTRY("stats", LQ_DTYPE_F64, 5, o->stats);
#undef ENTRY
        meta[nm].key   = names[n - 1]; /* "<W>.stats" */
        meta[nm].value = lq_qtype_name(o->type);
        nm++;
    }
    lq_st_write_params wp  = lq_st_write_default_params();
    wp.metadata            = meta;
    wp.n_metadata          = nm;
    wp.sort_like_reference = true; /* wide dtypes first: every tensor aligned in the mapping */
    wp.no_fsync            = !do_fsync;
    wp.n_threads           = e->nt;
    return lq_safetensors_write(path, entries, n, &wp);
}

static void release_pages(const void *p, uint64_t n) {
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t       a = ((uintptr_t)p + page - 1) & ~(page - 1), b = ((uintptr_t)p + n) & ~(page - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

static lq_status run_block(engine *e, const act_store *in, act_store *out, lq_gptq_type_fn type_of, void *tu) {
    const lq_llama_layer *orig = &e->w->layers[e->layer];
    lq_llama_layer        y    = *orig; /* the working block: quantized Linears swapped in */
    bool                  any  = false;
    if (e->cuda) LQ_TRY(dev_upload_layer(e, orig));
    for (int j = 0; j < N_LIN; j++) {
        char name[128];
        snprintf(name, sizeof name, "model.layers.%lld.%s.weight", (long long)e->layer, LIN_NAME[j]);
        lq_qtype t = type_of ? type_of(name, tu) : LQ_QT_NONE;
        const lq_qtype_traits *tr = lq_qtype_traits_of(t);
        if (t != LQ_QT_NONE && (!tr || tr->kind != LQ_QK_INT)) t = LQ_QT_NONE;
        e->lin[j].type = t;
        any |= t != LQ_QT_NONE;
    }
    const int stage_masks_seq[4] = {1 << LQ__CAP_QKV, 1 << LQ__CAP_O, 1 << LQ__CAP_GATEUP, 1 << LQ__CAP_DOWN};
    const int stage_all[1]       = {(1 << LQ__CAP_COUNT) - 1};
    const int *stages   = e->p->true_sequential ? stage_masks_seq : stage_all;
    const int  n_stages = e->p->true_sequential ? 4 : 1;
    lq_status  st       = LQ_OK;
    for (int s = 0; s < n_stages && any; s++) {
        int need = 0, last = -1;
        for (int j = 0; j < N_LIN; j++)
            if (e->lin[j].type != LQ_QT_NONE && (stages[s] & (1 << LIN_CAP[j]))) {
                need |= 1 << LIN_CAP[j];
                last = LQ_MAX(last, LIN_CAP[j]);
            }
        if (!need) continue;
        for (int c = 0; c < LQ__CAP_COUNT; c++) {
            if (!(need & (1 << c))) continue;
            const int64_t C = e->cols[c];
            e->H[c]         = lq_calloc((size_t)(C * C), sizeof(double));
            e->sum_x2[c]    = lq_calloc((size_t)C, sizeof(double));
            LQ_GOTO_IF(!e->H[c] || !e->sum_x2[c], LQ_ERR_NOMEM, "gptq: out of memory for a %lld x %lld Hessian",
                       (long long)C, (long long)C);
            if (e->cuda) {
                LQ_GOTO_TRY(lq_cuda_malloc((void **)&e->dH[c], (size_t)(C * C) * sizeof(double)));
                LQ_GOTO_TRY(lq_cuda_memcpy_h2d(e->dH[c], e->H[c], (size_t)(C * C) * sizeof(double)));
            }
        }
        LQ_GOTO_TRY(progress(e, "hessians"));
        e->tokens = e->S * e->L;
        LQ_GOTO_TRY(pass(e, &y, in, NULL, last));
        for (int c = 0; c < LQ__CAP_COUNT; c++) {
            if (!e->H[c]) continue;
            const int64_t C = e->cols[c];
            const double  a = 2.0 / (double)e->S;
            if (e->cuda) LQ_GOTO_TRY(lq_cuda_memcpy_d2h(e->H[c], e->dH[c], (size_t)(C * C) * sizeof(double)));
            for (int64_t k = 0; k < C; k++) e->sum_x2[c][k] = e->H[c][k * C + k];
            for (int64_t k = 0; k < C * C; k++) e->H[c][k] *= a;
            if (e->cuda) LQ_GOTO_TRY(lq_cuda_memcpy_h2d(e->dH[c], e->H[c], (size_t)(C * C) * sizeof(double)));
        }
        for (int j = 0; j < N_LIN; j++) {
            if (e->lin[j].type == LQ_QT_NONE || !(stages[s] & (1 << LIN_CAP[j]))) continue;
            LQ_GOTO_TRY(progress(e, LIN_NAME[j] + (j < 4 ? 10 : 4)));
            LQ_GOTO_TRY(solve(e, orig, j));
            lq_weight *f = layer_field(&y, j);
            *f           = (lq_weight){.dtype = LQ_DTYPE_F32, .data = e->lin[j].deq, .rows = e->lin[j].rows,
                                       .cols = e->lin[j].cols, .qtype = LQ_QT_NONE};
            if (e->cuda) LQ_GOTO_TRY(dev_weight(e, f, layer_field(&e->dl, j)));
        }
        for (int c = 0; c < LQ__CAP_COUNT; c++) {
            lq_free(e->H[c]);
            e->H[c] = NULL;
            if (e->dH[c]) lq_cuda_free(e->dH[c]);
            e->dH[c] = NULL;
        }
        e->stage_i++;
        /* sum_x2 stays until the block file is written */
    }
    if (out) {
        LQ_GOTO_TRY(progress(e, "outputs"));
        LQ_GOTO_TRY(pass(e, &y, in, out, -1));
    }
done:
    for (int c = 0; c < LQ__CAP_COUNT; c++) {
        lq_free(e->H[c]);
        e->H[c] = NULL;
        if (e->dH[c]) lq_cuda_free(e->dH[c]);
        e->dH[c] = NULL;
    }
    if (e->cuda) dev_free_layer(e);
    return st;
}

lq_status lq_gptq_run(const char *model_path, const lq_calib_set *cs, lq_gptq_type_fn type_of, void *type_user,
                      const lq_gptq_run_params *p_in, lq_gptq_result **out) {
    *out                 = NULL;
    lq_gptq_run_params p = p_in ? *p_in : lq_gptq_run_default_params();
    LQ_RETURN_IF(!cs || cs->n_samples <= 0 || cs->seq_len <= 0, LQ_ERR_INVALID_ARG, "gptq: empty calibration set");
    if (p.backend == LQ_BACKEND_AUTO) p.backend = lq_cuda_device_count() > 0 ? LQ_BACKEND_CUDA : LQ_BACKEND_CPU;
    LQ_RETURN_IF(p.backend == LQ_BACKEND_CUDA && lq_cuda_device_count() <= 0, LQ_ERR_UNSUPPORTED,
                 "gptq: --device cuda but %s", lq_cuda_device_name());
    lq_model_params mp = lq_model_default_params();
    mp.backend         = LQ_BACKEND_CPU;
    mp.n_threads       = p.n_threads;
    mp.max_seq         = cs->seq_len;
    mp.max_batch       = 1;
    lq_model       *m  = NULL;
    LQ_TRY(lq_model_open(model_path, &mp, &m));
    lq_gptq_result *r  = lq_calloc(1, sizeof *r);
    engine          e;
    memset(&e, 0, sizeof e);
    act_store in, nx;
    memset(&in, 0, sizeof in);
    memset(&nx, 0, sizeof nx);
    in.fd = nx.fd = -1;
    lq_status st  = LQ_OK;
    char     *path = NULL;
    LQ_GOTO_IF(!r, LQ_ERR_NOMEM, "gptq: out of memory");
    const lq_llama_weights *w = lq__model_weights(m);
    LQ_GOTO_IF(w->embed.qtype != LQ_QT_NONE, LQ_ERR_UNSUPPORTED, "gptq: %s is already quantized", model_path);
    LQ_GOTO_IF(cs->seq_len > lq_model_config_of(m)->max_position_embeddings &&
                   lq_model_config_of(m)->max_position_embeddings > 0,
               LQ_ERR_INVALID_ARG, "gptq: calibration windows of %lld tokens exceed the model's %lld positions",
               (long long)cs->seq_len, (long long)lq_model_config_of(m)->max_position_embeddings);
    for (int64_t i = 0; i < cs->n_samples * cs->seq_len; i++)
        LQ_GOTO_IF(cs->tokens[i] < 0 || cs->tokens[i] >= w->vocab, LQ_ERR_INVALID_ARG,
                   "gptq: calibration token %d is outside the model's vocabulary [0, %lld)", cs->tokens[i],
                   (long long)w->vocab);
    e.p   = &p;
    e.w   = w;
    e.cs  = cs;
    e.nt  = p.n_threads;
    e.L   = cs->seq_len;
    e.S   = cs->n_samples;
    e.D   = w->dim;
    e.KVD = w->n_kv_heads * w->head_dim;
    e.cols[LQ__CAP_QKV] = e.cols[LQ__CAP_GATEUP] = w->dim;
    e.cols[LQ__CAP_O]                            = w->n_heads * w->head_dim;
    e.cols[LQ__CAP_DOWN]                         = w->hidden;
    e.n_stages_total                             = w->n_layers * ((p.true_sequential ? 4 : 1));
    LQ_GOTO_TRY(lq__block_scratch_alloc(&e.sc, w, e.L));
    e.x  = lq_malloc((size_t)(e.L * e.D) * sizeof(float));
    e.kc = lq_malloc((size_t)(e.L * e.KVD) * sizeof(float));
    e.vc = lq_malloc((size_t)(e.L * e.KVD) * sizeof(float));
    e.seconds = lq_calloc((size_t)(w->n_layers * N_LIN), sizeof *e.seconds);
    LQ_GOTO_IF(!e.x || !e.kc || !e.vc || !e.seconds, LQ_ERR_NOMEM, "gptq: out of memory");
    e.cuda = p.backend == LQ_BACKEND_CUDA;
    if (e.cuda) {
        LQ_GOTO_TRY(lq__block_scratch_alloc_cuda(&e.dsc, w, e.L));
        LQ_GOTO_TRY(lq_cuda_malloc((void **)&e.dx, (size_t)(e.L * e.D) * sizeof(float)));
        LQ_GOTO_TRY(lq_cuda_malloc((void **)&e.dkc, (size_t)(e.L * e.KVD) * sizeof(float)));
        LQ_GOTO_TRY(lq_cuda_malloc((void **)&e.dvc, (size_t)(e.L * e.KVD) * sizeof(float)));
        LQ_GOTO_TRY(lq_cuda_malloc((void **)&e.dinv, (size_t)(w->head_dim / 2) * sizeof(float)));
        LQ_GOTO_TRY(lq_cuda_memcpy_h2d(e.dinv, w->inv_freq, (size_t)(w->head_dim / 2) * sizeof(float)));
    }

    /* work directory and fingerprint */
    char fm[65], fc[65], fo[65];
    model_hash(lq_model_checkpoint(m), fm);
    calib_hash(cs, fc);
    options_hash(&p, p.backend, fo);
    {
        lq_sha256_ctx c;
        lq_sha256_init(&c);
        hash_str(&c, fm);
        hash_str(&c, fc);
        hash_str(&c, fo);
        uint8_t d[32];
        lq_sha256_final(&c, d);
        lq_sha256_hex(d, r->fingerprint);
    }
    if (p.work_dir) {
        r->work_dir = lq_malloc(strlen(p.work_dir) + 1);
        LQ_GOTO_IF(!r->work_dir, LQ_ERR_NOMEM, "gptq: out of memory");
        strcpy(r->work_dir, p.work_dir);
    } else {
        char tmpl[4096];
        snprintf(tmpl, sizeof tmpl, "%s/.lq-gptq-XXXXXX", p.tmp_parent ? p.tmp_parent : ".");
        LQ_GOTO_IF(!mkdtemp(tmpl), LQ_ERR_IO, "gptq: cannot create a temporary work directory in %s: %s",
                   p.tmp_parent ? p.tmp_parent : ".", strerror(errno));
        r->temporary = true;
        r->work_dir  = lq_malloc(strlen(tmpl) + 1);
        LQ_GOTO_IF(!r->work_dir, LQ_ERR_NOMEM, "gptq: out of memory");
        strcpy(r->work_dir, tmpl);
    }
    int64_t done = 0;
    LQ_GOTO_TRY(open_work_dir(r->work_dir, fm, fc, fo, r->fingerprint, w->n_layers, &done));
    r->resumed = done;
    if (done > 0) LQ_LOG_INFO("gptq: resuming in %s: %lld of %lld blocks already done", r->work_dir, (long long)done,
                              (long long)w->n_layers);
    const bool     resumable = p.work_dir != NULL;
    const uint64_t act_bytes = (uint64_t)e.S * (uint64_t)(e.L * e.D) * sizeof(float);
    const bool     in_ram    = p.max_ram == 0 || 2 * act_bytes <= p.max_ram;
    if (!in_ram)
        LQ_LOG_INFO("gptq: activations (2 x %.1f MB) exceed --max-ram; streaming them through %s",
                    (double)act_bytes / 1e6, r->work_dir);
    const size_t sample = (size_t)(e.L * e.D);
    path                = lq_malloc(strlen(r->work_dir) + 64);
    LQ_GOTO_IF(!path, LQ_ERR_NOMEM, "gptq: out of memory");
    if (done < w->n_layers) {
        if (done == 0) {
            sprintf(path, "%s/acts-%05d.f32.tmp", r->work_dir, 0);
            LQ_GOTO_TRY(act_open(&in, e.S, sample, in_ram, path, true));
            for (int64_t i = 0; i < e.S; i++) {
                LQ_GOTO_TRY(lq_embed_cpu(e.x, &w->embed, cs->tokens + i * e.L, e.L, e.nt));
                LQ_GOTO_TRY(act_write(&in, i, e.x));
            }
        } else {
            sprintf(path, "%s/acts-%05lld.f32", r->work_dir, (long long)done);
            LQ_GOTO_TRY(act_open(&in, e.S, sample, in_ram, path, false));
        }
    }
    e.stage_i = done * (p.true_sequential ? 4 : 1);
    for (int64_t l = done; l < w->n_layers; l++) {
        e.layer         = l;
        const bool last = l + 1 == w->n_layers;
        if (!last) {
            sprintf(path, "%s/acts-next.f32.tmp", r->work_dir);
            LQ_GOTO_TRY(act_open(&nx, e.S, sample, in_ram, path, true));
        }
        LQ_GOTO_TRY(run_block(&e, &in, last ? NULL : &nx, type_of, type_user));
        sprintf(path, "%s/block-%05lld.safetensors", r->work_dir, (long long)l);
        LQ_GOTO_TRY(write_block_file(&e, path, !p.no_fsync));
        for (int j = 0; j < N_LIN; j++) {
            e.seconds[l * N_LIN + j] = e.lin[j].seconds;
            lin_free(&e.lin[j]);
        }
        for (int c = 0; c < LQ__CAP_COUNT; c++) {
            lq_free(e.sum_x2[c]);
            e.sum_x2[c] = NULL;
        }
        if (!last && (resumable || !in_ram)) {
            sprintf(path, "%s/acts-%05lld.f32", r->work_dir, (long long)l + 1);
            LQ_GOTO_TRY(act_commit(&nx, path, !p.no_fsync));
        }
        if (resumable) LQ_GOTO_TRY(write_state(r->work_dir, l + 1));
        if (in.path) unlink(in.path);
        act_close(&in);
        in = nx;
        memset(&nx, 0, sizeof nx);
        nx.fd = -1;
        /* the block's source weights are no longer needed: drop their pages */
        for (int j = 0; j < N_LIN; j++) {
            const lq_weight *f = layer_field_c(&w->layers[l], j);
            const lq_dtype_traits *dt = lq_dtype_traits_of(f->dtype);
            if (dt) release_pages(f->data, (uint64_t)(f->rows * f->cols) * (uint64_t)dt->bits / 8);
        }
    }
    if (p.progress) p.progress(1.f, "gptq", p.progress_user);

    /* map every block file back */
    r->n        = 0;
    r->files    = lq_calloc((size_t)w->n_layers, sizeof *r->files);
    r->layers   = lq_calloc((size_t)(w->n_layers * N_LIN), sizeof *r->layers);
    r->names    = lq_calloc((size_t)(w->n_layers * N_LIN), sizeof *r->names);
    LQ_GOTO_IF(!r->files || !r->layers || !r->names, LQ_ERR_NOMEM, "gptq: out of memory");
    for (int64_t l = 0; l < w->n_layers; l++) {
        sprintf(path, "%s/block-%05lld.safetensors", r->work_dir, (long long)l);
        lq_safetensors *f = NULL;
        LQ_GOTO_TRY(lq_safetensors_open(path, &f));
        r->files[r->n_files++] = f;
        const lq_json *meta    = lq_safetensors_metadata(f);
        for (int j = 0; j < N_LIN; j++) {
            char base[128], nm[160];
            snprintf(base, sizeof base, "model.layers.%lld.%s.weight", (long long)l, LIN_NAME[j]);
            snprintf(nm, sizeof nm, "%s.stats", base);
            const char *qn = meta ? lq_json_get_str(lq_json_get(meta, nm)) : NULL;
            if (!qn) continue;
            lq_qtype t;
            const lq_weight *sw = layer_field_c(&w->layers[l], j);
            const int64_t    R = sw->rows, C = sw->cols;
            LQ_GOTO_IF(lq_qtype_from_name(qn, &t) != LQ_OK || lq_qtype_traits_of(t)->kind != LQ_QK_INT, LQ_ERR_FORMAT,
                       "gptq: %s: '%s' has unknown type '%s'", path, base, qn);
            const int64_t ns = lq_qtype_n_scales(t, R, C);
#define GET(var, suffix, dt, count, required)                                                              \
    const lq_tensor_info *var;                                                                             \
    do {                                                                                                   \
        snprintf(nm, sizeof nm, "%s.%s", base, suffix);                                                    \
        var = lq_safetensors_find(f, nm);                                                                  \
        LQ_GOTO_IF((required) && !var, LQ_ERR_FORMAT, "gptq: %s lacks '%s'", path, nm);                   \
        LQ_GOTO_IF(var && (var->dtype != (dt) || var->n_dims != 1 || var->shape[0] != (int64_t)(count)),   \
                   LQ_ERR_FORMAT, "gptq: %s: '%s' has the wrong dtype or shape", path, nm);                \
    } while (0)
            GET(td, "data", LQ_DTYPE_U8, (int64_t)lq_qtype_row_bytes(t, C) * R, true);
            GET(ts, "scales", LQ_DTYPE_F32, ns, true);
            GET(tz, "zeros", LQ_DTYPE_U8, ns, lq_qtype_has_zeros(t));
            GET(tg, "g_idx", LQ_DTYPE_I32, C, false);
            GET(tx, "sum_x2", LQ_DTYPE_F64, C, true);
            GET(tt, "stats", LQ_DTYPE_F64, 5, true);
#undef GET
            if (tg) {
                const lq_qtype_traits *tr = lq_qtype_traits_of(t);
                const int64_t          ng = lq_qtype_n_groups(t, C);
                const int32_t         *g  = tg->data;
                for (int64_t k = 0; k < C; k++)
                    LQ_GOTO_IF(g[k] < 0 || g[k] >= ng, LQ_ERR_FORMAT, "gptq: %s: '%s' g_idx out of range", path, base);
                (void)tr;
            }
            lq_gptq_layer *o = &r->layers[r->n];
            r->names[r->n]   = lq_malloc(strlen(base) + 1);
            LQ_GOTO_IF(!r->names[r->n], LQ_ERR_NOMEM, "gptq: out of memory");
            strcpy(r->names[r->n], base);
            const double *sv = tt->data;
            o->name          = r->names[r->n];
            o->layer         = (int32_t)l;
            o->q.name        = o->name;
            o->q.qtype       = t;
            o->q.n_dims      = 2;
            o->q.shape[0]    = R;
            o->q.shape[1]    = C;
            o->q.data        = td->data;
            o->q.scales      = ts->data;
            o->q.zeros       = tz ? tz->data : NULL;
            o->q.g_idx       = tg ? tg->data : NULL;
            o->q.scale_dtype = p.solver.scale_dtype;
            o->stats.loss    = sv[0];
            o->stats.damp    = sv[1];
            o->stats.dead_cols = (int64_t)sv[2];
            o->stats.retries   = (int)sv[3];
            o->in_sum_x2       = tx->data;
            o->seconds         = e.seconds[l * N_LIN + j];
            o->in_count        = (int64_t)sv[4];
            r->n++;
        }
    }
    *out = r;
    r    = NULL;
done:
    act_close(&in);
    if (nx.path) unlink(nx.path);
    act_close(&nx);
    for (int j = 0; j < N_LIN; j++) lin_free(&e.lin[j]);
    for (int c = 0; c < LQ__CAP_COUNT; c++) {
        lq_free(e.H[c]);
        lq_free(e.sum_x2[c]);
    }
    lq__block_scratch_free(&e.sc);
    if (e.cuda) {
        lq__block_scratch_free(&e.dsc);
        dev_free_layer(&e);
        if (e.dx) lq_cuda_free(e.dx);
        if (e.dkc) lq_cuda_free(e.dkc);
        if (e.dvc) lq_cuda_free(e.dvc);
        if (e.dinv) lq_cuda_free(e.dinv);
    }
    lq_free(e.seconds);
    lq_free(e.x);
    lq_free(e.kc);
    lq_free(e.vc);
    lq_free(path);
    lq_gptq_result_free(r);
    lq_model_free(m);
    return st;
}

lq_status lq_gptq_write_imatrix(const lq_gptq_result *r, const lq_calib_set *cs, const char *path, bool no_fsync) {
    const int64_t n       = r->n;
    lq_st_entry  *e       = lq_calloc((size_t)(3 * n + 1), sizeof *e);
    char         *names   = lq_malloc((size_t)(3 * n + 1) * 160);
    float       **means   = lq_calloc((size_t)(n + 1), sizeof *means);
    int64_t      *counts  = lq_malloc((size_t)(n + 1) * sizeof *counts);
    lq_status     st      = LQ_OK;
    LQ_GOTO_IF(!e || !names || !means || !counts, LQ_ERR_NOMEM, "gptq: out of memory");
    for (int64_t i = 0; i < n; i++) {
        const lq_gptq_layer *l = &r->layers[i];
        const int64_t        C = l->q.shape[1];
        means[i]               = lq_malloc((size_t)C * sizeof(float));
        LQ_GOTO_IF(!means[i], LQ_ERR_NOMEM, "gptq: out of memory");
        for (int64_t k = 0; k < C; k++)
            means[i][k] = l->in_count > 0 ? (float)(l->in_sum_x2[k] / (double)l->in_count) : 0.f;
        counts[i] = l->in_count;
        char *n0 = names + (3 * i) * 160, *n1 = n0 + 160, *n2 = n1 + 160;
        snprintf(n0, 160, "%s", l->name);
        snprintf(n1, 160, "%s.sum_x2", l->name);
        snprintf(n2, 160, "%s.count", l->name);
        e[3 * i]     = (lq_st_entry){.name = n0, .dtype = LQ_DTYPE_F32, .n_dims = 1, .shape = {C}, .data = means[i]};
        e[3 * i + 1] = (lq_st_entry){.name = n1, .dtype = LQ_DTYPE_F64, .n_dims = 1, .shape = {C}, .data = l->in_sum_x2};
        e[3 * i + 2] = (lq_st_entry){.name = n2, .dtype = LQ_DTYPE_I64, .n_dims = 1, .shape = {1}, .data = &counts[i]};
    }
    {
        char samples[32], len[32];
        snprintf(samples, sizeof samples, "%lld", (long long)cs->n_samples);
        snprintf(len, sizeof len, "%lld", (long long)cs->seq_len);
        const lq_kv meta[] = {{"calibration_sha256", cs->sha256},
                              {"calibration_samples", samples},
                              {"calibration_seq_len", len},
                              {"producer", "libquant lq-quant --method gptq (inputs of the quantized model's blocks)"}};
        lq_st_write_params wp  = lq_st_write_default_params();
        wp.metadata            = meta;
        wp.n_metadata          = 4;
        wp.sort_like_reference = true;
        wp.no_fsync            = no_fsync;
        st                     = lq_safetensors_write(path, e, 3 * n, &wp);
    }
done:
    if (means)
        for (int64_t i = 0; i < n; i++) lq_free(means[i]);
    lq_free(means);
    lq_free(counts);
    lq_free(names);
    lq_free(e);
    return st;
}
