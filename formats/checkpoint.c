/* checkpoint.c : open any supported checkpoint — a file or a model directory
 * — behind one tensor list.
 *
 * Detection is by content: "PK\3\4" is a PyTorch zip, a plausible safetensors
 * header length followed by '{' (after optional whitespace) is safetensors, a
 * header whose v0 size formula matches the file size exactly is llama2.c,
 * "GGUF" is a GGUF file (tensors keep their GGUF names; the config comes
 * from its keys).
 * Directories: model.safetensors.index.json, model.safetensors,
 * pytorch_model.bin.index.json, pytorch_model.bin, in that order. Shard
 * names from an index must be plain file names in the same directory (no
 * '/', no ".."); the index and the shards must agree exactly. */
#include "formats_internal.h"
#include "lq_qformats.h"

#include <stdlib.h>
#include <string.h>

#define INDEX_MAX_BYTES (64u << 20)

typedef struct {
    char           *path;
    lq_safetensors *st;
    lq_pytorch     *pt;
} shard;

struct lq_checkpoint {
    lq_ckpt_kind    kind;
    char           *dir;       /* NULL for a bare llama2.c file */
    lq_llama2c     *l2c;
    lq_gguf        *gguf;
    char           *gguf_path;
    shard          *shards;
    int32_t         n_shards;
    lq_tensor_info *t;         /* copies of the readers' records; alias_of remapped */
    int32_t        *t_shard;
    int64_t         n;
    int64_t        *by_name;
};

const char *lq_checkpoint_kind_name(lq_ckpt_kind k) {
    switch (k) {
    case LQ_CKPT_SAFETENSORS: return "safetensors";
    case LQ_CKPT_SAFETENSORS_DIR: return "safetensors directory";
    case LQ_CKPT_PYTORCH: return "pytorch zip";
    case LQ_CKPT_PYTORCH_DIR: return "pytorch directory";
    case LQ_CKPT_LLAMA2C: return "llama2.c v0";
    case LQ_CKPT_GGUF: return "gguf";
    }
    return "?";
}

void lq_checkpoint_close(lq_checkpoint *c) {
    if (!c) return;
    for (int32_t i = 0; i < c->n_shards; i++) {
        lq_safetensors_close(c->shards[i].st);
        lq_pytorch_close(c->shards[i].pt);
        lq_free(c->shards[i].path);
    }
    lq_free(c->shards);
    lq_llama2c_close(c->l2c);
    lq_gguf_close(c->gguf);
    lq_free(c->gguf_path);
    lq_free(c->t);
    lq_free(c->t_shard);
    lq_free(c->by_name);
    lq_free(c->dir);
    lq_free(c);
}

lq_ckpt_kind          lq_checkpoint_kind(const lq_checkpoint *c) { return c->kind; }
int64_t               lq_checkpoint_count(const lq_checkpoint *c) { return c->n; }
const lq_tensor_info *lq_checkpoint_tensor(const lq_checkpoint *c, int64_t i) {
    return (i >= 0 && i < c->n) ? &c->t[i] : NULL;
}
const char *lq_checkpoint_dir(const lq_checkpoint *c) { return c->dir; }
const char *lq_checkpoint_tensor_file(const lq_checkpoint *c, int64_t i) {
    if (i >= 0 && i < c->n && c->gguf) return c->gguf_path;
    if (i < 0 || i >= c->n || c->n_shards == 0) return NULL;
    return c->shards[c->t_shard[i]].path;
}

static int cmp_name_idx(const void *a, const void *b, void *ctx) {
    const lq_tensor_info *t = ctx;
    return strcmp(t[*(const int64_t *)a].name, t[*(const int64_t *)b].name);
}

const lq_tensor_info *lq_checkpoint_find(const lq_checkpoint *c, const char *name) {
    int64_t lo = 0, hi = c->n;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        const int     r   = strcmp(c->t[c->by_name[mid]].name, name);
        if (r == 0) return &c->t[c->by_name[mid]];
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

lq_status lq_checkpoint_config(const lq_checkpoint *c, lq_model_config *out) {
    if (c->kind == LQ_CKPT_LLAMA2C) {
        lq_llama2c_config(c->l2c, out);
        return LQ_OK;
    }
    if (c->kind == LQ_CKPT_GGUF) return lq_gguf_config(c->gguf, out);
    char *p = lq__path_join(c->dir, "config.json");
    LQ_RETURN_IF(!p, LQ_ERR_NOMEM, "out of memory");
    if (!lq__file_exists(p)) {
        LQ_LOG_ERR("%s: no config.json beside the weights", c->dir);
        lq_free(p);
        return LQ_ERR_NOT_FOUND;
    }
    const lq_status s = lq_hfconfig_load(p, out);
    lq_free(p);
    return s;
}

/* gather the tensors of all shards (or the llama2.c reader) into c->t */
static lq_status collect(lq_checkpoint *c) {
    int64_t n = 0;
    if (c->l2c) n = lq_llama2c_count(c->l2c);
    if (c->gguf) n = lq_gguf_count(c->gguf);
    for (int32_t s = 0; s < c->n_shards; s++)
        n += c->shards[s].st ? lq_safetensors_count(c->shards[s].st) : lq_pytorch_count(c->shards[s].pt);
    c->t       = lq_calloc((size_t)(n ? n : 1), sizeof *c->t);
    c->t_shard = lq_calloc((size_t)(n ? n : 1), sizeof *c->t_shard);
    c->by_name = lq_calloc((size_t)(n ? n : 1), sizeof *c->by_name);
    LQ_RETURN_IF(!c->t || !c->t_shard || !c->by_name, LQ_ERR_NOMEM, "out of memory");
    int64_t k = 0;
    if (c->l2c)
        for (int64_t i = 0; i < lq_llama2c_count(c->l2c); i++) c->t[k++] = *lq_llama2c_tensor(c->l2c, i);
    if (c->gguf)
        for (int64_t i = 0; i < lq_gguf_count(c->gguf); i++) c->t[k++] = *lq_gguf_tensor(c->gguf, i);
    for (int32_t s = 0; s < c->n_shards; s++) {
        const int64_t base = k;
        const int64_t m    = c->shards[s].st ? lq_safetensors_count(c->shards[s].st) : lq_pytorch_count(c->shards[s].pt);
        for (int64_t i = 0; i < m; i++) {
            c->t[k] = c->shards[s].st ? *lq_safetensors_tensor(c->shards[s].st, i) : *lq_pytorch_tensor(c->shards[s].pt, i);
            if (c->t[k].alias_of >= 0) c->t[k].alias_of += base;
            c->t_shard[k++] = s;
        }
    }
    c->n = n;
    for (int64_t i = 0; i < n; i++) c->by_name[i] = i;
    qsort_r(c->by_name, (size_t)n, sizeof *c->by_name, cmp_name_idx, c->t);
    for (int64_t i = 1; i < n; i++) {
        const int64_t a = c->by_name[i - 1], b = c->by_name[i];
        LQ_RETURN_IF(strcmp(c->t[a].name, c->t[b].name) == 0, LQ_ERR_FORMAT, "tensor '%s' is in both %s and %s",
                     c->t[b].name, c->n_shards ? c->shards[c->t_shard[a]].path : "?",
                     c->n_shards ? c->shards[c->t_shard[b]].path : "?");
    }
    return LQ_OK;
}

static bool plain_file_name(const char *s) {
    return s[0] && s[0] != '.' && !strchr(s, '/') && !strchr(s, '\\') && strlen(s) < 256;
}

static lq_status open_shard(shard *sh, bool pytorch) {
    return pytorch ? lq_pytorch_open(sh->path, &sh->pt) : lq_safetensors_open(sh->path, &sh->st);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* an index file: {"metadata": {...}, "weight_map": {tensor: file}} */
static lq_status open_index(lq_checkpoint *c, const char *index_path, bool pytorch) {
    char        *text = NULL;
    size_t       len;
    lq_json_doc *doc = NULL;
    const char **files = NULL;
    lq_status    st;
    LQ_GOTO_TRY(lq__read_file(index_path, INDEX_MAX_BYTES, &text, &len));
    lq_json_error je;
    st = lq_json_parse(text, len, NULL, &doc, &je);
    LQ_GOTO_IF(st != LQ_OK, st == LQ_ERR_NOMEM ? st : LQ_ERR_FORMAT, "%s: invalid JSON: %s", index_path, je.msg);
    const lq_json *wm = lq_json_get(lq_json_root(doc), "weight_map");
    LQ_GOTO_IF(!wm || wm->type != LQ_JSON_OBJECT, LQ_ERR_FORMAT, "%s: no \"weight_map\" object", index_path);
    files = lq_calloc(wm->n ? wm->n : 1, sizeof *files);
    LQ_GOTO_IF(!files, LQ_ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; i < wm->n; i++) {
        const char *f = lq_json_get_str(&wm->items[i]);
        LQ_GOTO_IF(!f || !plain_file_name(f), LQ_ERR_FORMAT,
                   "%s: tensor '%s' maps to \"%s\", which is not a plain file name in this directory", index_path,
                   wm->items[i].key, f ? f : "(not a string)");
        files[i] = f;
    }
    qsort(files, wm->n, sizeof *files, cmp_str);
    int32_t n_unique = 0;
    for (uint32_t i = 0; i < wm->n; i++)
        if (i == 0 || strcmp(files[i], files[i - 1]) != 0) files[n_unique++] = files[i];
    LQ_GOTO_IF(n_unique == 0, LQ_ERR_FORMAT, "%s: weight_map is empty", index_path);
    c->shards = lq_calloc((size_t)n_unique, sizeof *c->shards);
    LQ_GOTO_IF(!c->shards, LQ_ERR_NOMEM, "out of memory");
    for (int32_t s = 0; s < n_unique; s++) {
        c->shards[s].path = lq__path_join(c->dir, files[s]);
        LQ_GOTO_IF(!c->shards[s].path, LQ_ERR_NOMEM, "out of memory");
        c->n_shards = s + 1;
        LQ_GOTO_TRY(open_shard(&c->shards[s], pytorch));
    }
    LQ_GOTO_TRY(collect(c));
    /* index <-> shards must agree both ways */
    LQ_GOTO_IF((int64_t)wm->n != c->n, LQ_ERR_FORMAT, "%s: lists %u tensors but the shards hold %lld", index_path,
               wm->n, (long long)c->n);
    for (uint32_t i = 0; i < wm->n; i++) {
        const lq_tensor_info *t = lq_checkpoint_find(c, wm->items[i].key);
        LQ_GOTO_IF(!t, LQ_ERR_FORMAT, "%s: tensor '%s' is not in %s", index_path, wm->items[i].key, wm->items[i].str);
        const char *in = c->shards[c->t_shard[t - c->t]].path;
        const char *base = strrchr(in, '/');
        LQ_GOTO_IF(strcmp(base ? base + 1 : in, wm->items[i].str) != 0, LQ_ERR_FORMAT,
                   "%s: tensor '%s' is listed in %s but found in %s", index_path, wm->items[i].key, wm->items[i].str, in);
    }
done:
    lq_free(files);
    lq_json_free(doc);
    lq_free(text);
    return st;
}

typedef enum { SNIFF_UNKNOWN, SNIFF_SAFETENSORS, SNIFF_ZIP, SNIFF_LLAMA2C, SNIFF_JSON, SNIFF_GGUF } sniff_kind;

static sniff_kind sniff(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return SNIFF_UNKNOWN;
    uint8_t b[32];
    const size_t n = fread(b, 1, sizeof b, f);
    fseek(f, 0, SEEK_END);
    const long size = ftell(f);
    fclose(f);
    const size_t plen = strlen(path);
    if (n >= 4 && memcmp(b, "GGUF", 4) == 0) return SNIFF_GGUF;
    if (plen >= 12 && strcmp(path + plen - 12, ".safetensors") == 0) return SNIFF_SAFETENSORS;
    if (n >= 4 && memcmp(b, "PK\x03\x04", 4) == 0) return SNIFF_ZIP;
    if (n >= 2 && b[0] == 0x80 && b[1] <= 5) return SNIFF_ZIP; /* a raw pickle: the zip reader explains */
    if (n >= 1 && b[0] == '{') return SNIFF_JSON;
    if (n >= 9) {
        uint64_t h = 0;
        for (int i = 7; i >= 0; i--) h = h << 8 | b[i];
        const uint8_t c = b[8];
        if (h >= 2 && h <= LQ_SAFETENSORS_MAX_HEADER && h + 8 <= (uint64_t)size &&
            (c == '{' || c == ' ' || c == '\t' || c == '\n' || c == '\r'))
            return SNIFF_SAFETENSORS;
    }
    if (n >= 28) return SNIFF_LLAMA2C; /* validated by its reader */
    return SNIFF_UNKNOWN;
}

static lq_status open_dir(lq_checkpoint *c, const char *dir) {
    static const struct {
        const char  *name;
        lq_ckpt_kind kind;
        bool         index, pytorch;
    } order[] = {{"model.safetensors.index.json", LQ_CKPT_SAFETENSORS_DIR, true, false},
                 {"model.safetensors", LQ_CKPT_SAFETENSORS_DIR, false, false},
                 {"pytorch_model.bin.index.json", LQ_CKPT_PYTORCH_DIR, true, true},
                 {"pytorch_model.bin", LQ_CKPT_PYTORCH_DIR, false, true}};
    c->dir = lq_strdup(dir);
    LQ_RETURN_IF(!c->dir, LQ_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        char *p = lq__path_join(dir, order[i].name);
        LQ_RETURN_IF(!p, LQ_ERR_NOMEM, "out of memory");
        if (!lq__file_exists(p)) {
            lq_free(p);
            continue;
        }
        c->kind = order[i].kind;
        lq_status s;
        if (order[i].index) {
            s = open_index(c, p, order[i].pytorch);
        } else {
            c->shards = lq_calloc(1, sizeof *c->shards);
            if (!c->shards) {
                lq_free(p);
                LQ_RETURN_IF(1, LQ_ERR_NOMEM, "out of memory");
            }
            c->shards[0].path = p;
            c->n_shards       = 1;
            p                 = NULL;
            s                 = open_shard(&c->shards[0], order[i].pytorch);
            if (s == LQ_OK) s = collect(c);
        }
        lq_free(p);
        return s;
    }
    LQ_RETURN_IF(1, LQ_ERR_NOT_FOUND,
                 "%s: no model.safetensors, model.safetensors.index.json, pytorch_model.bin or "
                 "pytorch_model.bin.index.json in this directory",
                 dir);
}

lq_status lq_checkpoint_open(const char *path, lq_checkpoint **out) {
    *out             = NULL;
    lq_checkpoint *c = lq_calloc(1, sizeof *c);
    LQ_RETURN_IF(!c, LQ_ERR_NOMEM, "out of memory");
    lq_status st = LQ_OK;
    if (lq__is_dir(path)) {
        st = open_dir(c, path);
    } else if (!lq__file_exists(path)) {
        LQ_LOG_ERR("%s: no such file or directory", path);
        st = LQ_ERR_IO;
    } else {
        const char *base = strrchr(path, '/');
        switch (sniff(path)) {
        case SNIFF_JSON: {
            /* an index file named directly */
            const bool pt = strstr(base ? base : path, "pytorch_model") != NULL;
            c->dir        = lq__path_dirname(path);
            c->kind       = pt ? LQ_CKPT_PYTORCH_DIR : LQ_CKPT_SAFETENSORS_DIR;
            st            = c->dir ? open_index(c, path, pt) : LQ_ERR_NOMEM;
            break;
        }
        case SNIFF_ZIP:
        case SNIFF_SAFETENSORS: {
            const bool pt = sniff(path) == SNIFF_ZIP;
            c->kind       = pt ? LQ_CKPT_PYTORCH : LQ_CKPT_SAFETENSORS;
            c->dir        = lq__path_dirname(path);
            c->shards     = lq_calloc(1, sizeof *c->shards);
            if (!c->dir || !c->shards || !(c->shards[0].path = lq_strdup(path))) {
                st = LQ_ERR_NOMEM;
                break;
            }
            c->n_shards = 1;
            st          = open_shard(&c->shards[0], pt);
            if (st == LQ_OK) st = collect(c);
            break;
        }
        case SNIFF_GGUF:
            c->kind      = LQ_CKPT_GGUF;
            c->dir       = lq__path_dirname(path);
            c->gguf_path = lq_strdup(path);
            if (!c->dir || !c->gguf_path) {
                st = LQ_ERR_NOMEM;
                break;
            }
            st = lq_gguf_open(path, &c->gguf);
            if (st == LQ_OK) st = collect(c);
            break;
        case SNIFF_LLAMA2C:
            c->kind = LQ_CKPT_LLAMA2C;
            st      = lq_llama2c_open(path, &c->l2c);
            if (st == LQ_OK) st = collect(c);
            break;
        case SNIFF_UNKNOWN:
            LQ_LOG_ERR("%s: not a safetensors, PyTorch zip, GGUF or llama2.c file (too small or unknown content)", path);
            st = LQ_ERR_FORMAT;
            break;
        }
    }
    if (st != LQ_OK) {
        lq_checkpoint_close(c);
        return st;
    }
    *out = c;
    return LQ_OK;
}
