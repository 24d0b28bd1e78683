/* safetensors.c : safetensors reader (mmap, every rule of the reference
 * implementation) and atomic writer (single file or sharded directory).
 *
 * Reader rules, in the reference library's order (huggingface/safetensors
 * tensor.rs read_metadata + Metadata::validate): 8-byte length, header
 * <= 100 MB, header within the file; UTF-8 JSON (whitespace padding allowed),
 * known dtypes, string-only __metadata__, non-negative integer shapes and
 * offsets; sorted by offset the tensors tile the buffer with no hole and no
 * overlap; byte size = numel * bits / 8 with checked multiplies; last end +
 * 8 + N = file size. We also reject duplicate names (the reference keeps the
 * last one silently) and names containing NUL.
 *
 * Writer: tensors sorted like the reference writer (dtype descending in the
 * safetensors enum order, then name) or in caller order; header padded with
 * spaces to 8 bytes; data filled straight into a mapping of the temporary
 * output (posix_fallocate first, so a full disk is an error, not SIGBUS),
 * then fsync + rename. */
#include "lq_formats.h"
#include "lq_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

struct lq_safetensors {
    lq__mapping     map;         /* owned mapping, or data/size of a borrowed buffer */
    const uint8_t  *data;        /* the data buffer (after the header)               */
    uint64_t        header_size;
    lq_json_doc    *doc;         /* owns the names                                   */
    const lq_json  *metadata;
    lq_tensor_info *t;           /* in data-offset order                             */
    int64_t         n;
    int64_t        *by_name;     /* indices sorted by name                           */
    char           *label;
};

bool lq_tensor_info_numel(const lq_tensor_info *t, uint64_t *out) {
    uint64_t n = 1;
    for (int d = 0; d < t->n_dims; d++)
        if (t->shape[d] < 0 || !lq__mul_u64(n, (uint64_t)t->shape[d], &n)) return false;
    *out = n;
    return true;
}

typedef struct {
    uint64_t begin, end;
    int64_t  idx;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_name_idx(const void *a, const void *b, void *ctx) {
    const lq_tensor_info *t = ctx;
    return strcmp(t[*(const int64_t *)a].name, t[*(const int64_t *)b].name);
}

static lq_status parse_tensor(const char *label, const lq_json *v, lq_tensor_info *t, uint64_t *begin,
                              uint64_t *end) {
    const char *name = v->key;
    LQ_RETURN_IF(v->type != LQ_JSON_OBJECT, LQ_ERR_FORMAT, "%s: tensor '%s': header entry is not an object", label,
                 name);
    const lq_json *dt = lq_json_get(v, "dtype"), *sh = lq_json_get(v, "shape"), *of = lq_json_get(v, "data_offsets");
    LQ_RETURN_IF(!dt || !sh || !of, LQ_ERR_FORMAT, "%s: tensor '%s': missing \"%s\"", label, name,
                 !dt ? "dtype" : !sh ? "shape" : "data_offsets");
    LQ_RETURN_IF(dt->type != LQ_JSON_STRING, LQ_ERR_FORMAT, "%s: tensor '%s': dtype is not a string", label, name);
    LQ_RETURN_IF(lq_dtype_from_name(dt->str, dt->str_len, &t->dtype) != LQ_OK, LQ_ERR_FORMAT,
                 "%s: tensor '%s': unknown dtype \"%.32s\"", label, name, dt->str);
    LQ_RETURN_IF(sh->type != LQ_JSON_ARRAY, LQ_ERR_FORMAT, "%s: tensor '%s': shape is not an array", label, name);
    LQ_RETURN_IF(sh->n > LQ_MAX_DIMS, LQ_ERR_UNSUPPORTED, "%s: tensor '%s': rank %u is more than the %d supported",
                 label, name, sh->n, LQ_MAX_DIMS);
    t->n_dims = (int32_t)sh->n;
    for (uint32_t d = 0; d < sh->n; d++) {
        uint64_t x;
        LQ_RETURN_IF(!lq_json_get_u64(&sh->items[d], &x), LQ_ERR_FORMAT,
                     "%s: tensor '%s': shape[%u] is not a non-negative integer", label, name, d);
        LQ_RETURN_IF(x > (uint64_t)INT64_MAX, LQ_ERR_FORMAT, "%s: tensor '%s': shape[%u] = %llu is too large", label,
                     name, d, (unsigned long long)x);
        t->shape[d] = (int64_t)x;
    }
    LQ_RETURN_IF(of->type != LQ_JSON_ARRAY || of->n != 2, LQ_ERR_FORMAT,
                 "%s: tensor '%s': data_offsets is not a [begin, end] pair", label, name);
    LQ_RETURN_IF(!lq_json_get_u64(&of->items[0], begin) || !lq_json_get_u64(&of->items[1], end), LQ_ERR_FORMAT,
                 "%s: tensor '%s': data_offsets are not non-negative integers", label, name);
    return LQ_OK;
}

static lq_status validate(lq_safetensors *st, size_t file_size) {
    const char    *label = st->label;
    const lq_json *root  = lq_json_root(st->doc);
    LQ_RETURN_IF(root->type != LQ_JSON_OBJECT, LQ_ERR_FORMAT, "%s: header is not a JSON object", label);
    int64_t n_tensors = 0;
    for (uint32_t i = 0; i < root->n; i++) n_tensors += strcmp(root->items[i].key, "__metadata__") != 0;
    st->t       = lq_calloc((size_t)(n_tensors ? n_tensors : 1), sizeof *st->t);
    st->by_name = lq_calloc((size_t)(n_tensors ? n_tensors : 1), sizeof *st->by_name);
    span *sp    = lq_calloc((size_t)(n_tensors ? n_tensors : 1), sizeof *sp);
    if (!st->t || !st->by_name || !sp) {
        lq_free(sp);
        LQ_RETURN_IF(1, LQ_ERR_NOMEM, "%s: out of memory for %lld tensors", label, (long long)n_tensors);
    }
    lq_status st_code = LQ_OK;
    int64_t   k       = 0;
    for (uint32_t i = 0; i < root->n && st_code == LQ_OK; i++) {
        const lq_json *v = &root->items[i];
        if (strcmp(v->key, "__metadata__") == 0 && v->key_len == 12) {
            if (v->type != LQ_JSON_OBJECT) {
                LQ_LOG_ERR("%s: __metadata__ is not an object", label);
                st_code = LQ_ERR_FORMAT;
                break;
            }
            for (uint32_t j = 0; j < v->n; j++)
                if (v->items[j].type != LQ_JSON_STRING) {
                    LQ_LOG_ERR("%s: __metadata__ value of \"%s\" is not a string", label, v->items[j].key);
                    st_code = LQ_ERR_FORMAT;
                    break;
                }
            st->metadata = v;
            continue;
        }
        if (strlen(v->key) != v->key_len || v->key_len == 0) {
            LQ_LOG_ERR("%s: a tensor name is empty or contains a NUL character", label);
            st_code = LQ_ERR_FORMAT;
            break;
        }
        lq_tensor_info *t = &st->t[k];
        t->name           = v->key;
        t->alias_of       = -1;
        st_code           = parse_tensor(label, v, t, &sp[k].begin, &sp[k].end);
        sp[k].idx         = k;
        k++;
    }
    if (st_code != LQ_OK) {
        lq_free(sp);
        return st_code;
    }
    st->n = n_tensors;
    qsort(sp, (size_t)n_tensors, sizeof *sp, cmp_span);
    const uint64_t buf_size = (uint64_t)file_size - 8 - st->header_size;
    uint64_t       prev_end = 0;
    lq_tensor_info *sorted  = lq_calloc((size_t)(n_tensors ? n_tensors : 1), sizeof *sorted);
    if (!sorted) {
        lq_free(sp);
        LQ_RETURN_IF(1, LQ_ERR_NOMEM, "%s: out of memory", label);
    }
    for (int64_t i = 0; i < n_tensors && st_code == LQ_OK; i++) {
        lq_tensor_info *t = &st->t[sp[i].idx];
        uint64_t        numel, bits, nbytes;
        if (sp[i].begin != prev_end || sp[i].end < sp[i].begin) {
            LQ_LOG_ERR("%s: tensor '%s': data_offsets [%llu, %llu) %s (the previous tensor ends at %llu)", label,
                       t->name, (unsigned long long)sp[i].begin, (unsigned long long)sp[i].end,
                       sp[i].end < sp[i].begin ? "end before begin"
                       : sp[i].begin > prev_end ? "leave a hole in the data buffer"
                                                : "overlap another tensor",
                       (unsigned long long)prev_end);
            st_code = LQ_ERR_FORMAT;
            break;
        }
        if (!lq_tensor_info_numel(t, &numel) || !lq__mul_u64(numel, lq_dtype_traits_of(t->dtype)->bits, &bits)) {
            LQ_LOG_ERR("%s: tensor '%s': element count overflows", label, t->name);
            st_code = LQ_ERR_FORMAT;
            break;
        }
        if (bits % 8 != 0) {
            LQ_LOG_ERR("%s: tensor '%s': %llu elements of %s do not fill whole bytes", label, t->name,
                       (unsigned long long)numel, lq_dtype_name(t->dtype));
            st_code = LQ_ERR_FORMAT;
            break;
        }
        nbytes = bits / 8;
        if (sp[i].end - sp[i].begin != nbytes) {
            LQ_LOG_ERR("%s: tensor '%s': data_offsets span %llu bytes but %s%s needs %llu", label, t->name,
                       (unsigned long long)(sp[i].end - sp[i].begin), lq_dtype_name(t->dtype),
                       t->n_dims ? " of its shape" : " scalar", (unsigned long long)nbytes);
            st_code = LQ_ERR_FORMAT;
            break;
        }
        if (sp[i].end > buf_size) {
            LQ_LOG_ERR("%s: tensor '%s': data_offsets end %llu is past the end of the data (%llu bytes)", label,
                       t->name, (unsigned long long)sp[i].end, (unsigned long long)buf_size);
            st_code = LQ_ERR_FORMAT;
            break;
        }
        t->nbytes = nbytes;
        t->data   = st->data + sp[i].begin;
        prev_end  = sp[i].end;
        sorted[i] = *t;
    }
    lq_free(sp);
    if (st_code == LQ_OK && prev_end != buf_size) {
        LQ_LOG_ERR("%s: %llu bytes after the last tensor (file is %zu bytes, tensors end at %llu)", label,
                   (unsigned long long)(buf_size - prev_end), file_size, (unsigned long long)(8 + st->header_size + prev_end));
        st_code = LQ_ERR_FORMAT;
    }
    if (st_code != LQ_OK) {
        lq_free(sorted);
        return st_code;
    }
    lq_free(st->t);
    st->t = sorted;
    for (int64_t i = 0; i < n_tensors; i++) st->by_name[i] = i;
    qsort_r(st->by_name, (size_t)n_tensors, sizeof *st->by_name, cmp_name_idx, st->t);
    return LQ_OK;
}

static lq_status open_buffer(lq_safetensors *st, const uint8_t *buf, size_t len) {
    const char *label = st->label;
    LQ_RETURN_IF(len < 8, LQ_ERR_FORMAT, "%s: %zu bytes, too small for a safetensors file (8-byte header length)",
                 label, len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | buf[i];
    LQ_RETURN_IF(n > LQ_SAFETENSORS_MAX_HEADER, LQ_ERR_FORMAT,
                 "%s: header length %llu is over the 100,000,000-byte limit", label, (unsigned long long)n);
    LQ_RETURN_IF(n > (uint64_t)len - 8, LQ_ERR_FORMAT,
                 "%s: header length %llu runs past the end of the file (%zu bytes): truncated or not safetensors",
                 label, (unsigned long long)n, len);
    st->header_size = n;
    st->data        = buf + 8 + n;
    lq_json_params jp = lq_json_default_params();
    jp.reject_duplicates = true;
    lq_json_error  je;
    const lq_status s = lq_json_parse((const char *)buf + 8, (size_t)n, &jp, &st->doc, &je);
    LQ_RETURN_IF(s == LQ_ERR_NOMEM, s, "%s: out of memory parsing the header", label);
    LQ_RETURN_IF(s != LQ_OK, LQ_ERR_FORMAT, "%s: invalid JSON header: %s", label,
                 je.msg);
    return validate(st, len);
}

static lq_status open_common(const uint8_t *buf, size_t len, const char *label, lq__mapping *map,
                             lq_safetensors **out) {
    lq_safetensors *st = lq_calloc(1, sizeof *st);
    char           *lb = lq_strdup(label ? label : "<memory>");
    if (!st || !lb) {
        lq_free(st);
        lq_free(lb);
        if (map) lq__unmap_file(map);
        LQ_RETURN_IF(1, LQ_ERR_NOMEM, "out of memory");
    }
    st->label = lb;
    if (map) st->map = *map;
    const lq_status s = open_buffer(st, buf, len);
    if (s != LQ_OK) {
        lq_safetensors_close(st);
        return s;
    }
    *out = st;
    return LQ_OK;
}

lq_status lq_safetensors_open(const char *path, lq_safetensors **out) {
    *out = NULL;
    lq__mapping m;
    LQ_TRY(lq__map_file(path, &m));
    return open_common(m.data, m.size, path, &m, out);
}

lq_status lq_safetensors_open_memory(const void *buf, size_t len, const char *label, lq_safetensors **out) {
    *out = NULL;
    LQ_RETURN_IF(!buf && len, LQ_ERR_INVALID_ARG, "NULL buffer");
    return open_common(buf, len, label, NULL, out);
}

void lq_safetensors_close(lq_safetensors *st) {
    if (!st) return;
    lq_json_free(st->doc);
    lq_free(st->t);
    lq_free(st->by_name);
    lq_free(st->label);
    lq__unmap_file(&st->map);
    lq_free(st);
}

int64_t lq_safetensors_count(const lq_safetensors *st) { return st->n; }

const lq_tensor_info *lq_safetensors_tensor(const lq_safetensors *st, int64_t i) {
    return (i >= 0 && i < st->n) ? &st->t[i] : NULL;
}

const lq_tensor_info *lq_safetensors_find(const lq_safetensors *st, const char *name) {
    int64_t lo = 0, hi = st->n;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        const int     c   = strcmp(st->t[st->by_name[mid]].name, name);
        if (c == 0) return &st->t[st->by_name[mid]];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const lq_json *lq_safetensors_metadata(const lq_safetensors *st) { return st->metadata; }
uint64_t       lq_safetensors_header_size(const lq_safetensors *st) { return st->header_size; }

/* ==== writer ==== */

lq_st_write_params lq_st_write_default_params(void) {
    lq_st_write_params p;
    memset(&p, 0, sizeof p);
    p.sort_like_reference = true;
    return p;
}

static int cmp_entry_ref(const void *a, const void *b, void *ctx) {
    const lq_st_entry *e = ctx;
    const lq_st_entry *x = &e[*(const int64_t *)a], *y = &e[*(const int64_t *)b];
    const int ox = lq_dtype_traits_of(x->dtype)->st_order, oy = lq_dtype_traits_of(y->dtype)->st_order;
    if (ox != oy) return ox > oy ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_entry_name(const void *a, const void *b, void *ctx) {
    const lq_st_entry *e = ctx;
    return strcmp(e[*(const int64_t *)a].name, e[*(const int64_t *)b].name);
}

static int cmp_kv(const void *a, const void *b) {
    return strcmp(((const lq_kv *)a)->key, ((const lq_kv *)b)->key);
}

static lq_status entry_nbytes(const char *path, const lq_st_entry *e, uint64_t *out) {
    const lq_dtype_traits *tr = lq_dtype_traits_of(e->dtype);
    LQ_RETURN_IF(!e->name || !e->name[0], LQ_ERR_INVALID_ARG, "%s: a tensor has no name", path);
    LQ_RETURN_IF(!tr, LQ_ERR_INVALID_ARG, "%s: tensor '%s': invalid dtype", path, e->name);
    LQ_RETURN_IF(e->n_dims < 0 || e->n_dims > LQ_MAX_DIMS, LQ_ERR_SHAPE, "%s: tensor '%s': bad rank %d", path,
                 e->name, (int)e->n_dims);
    LQ_RETURN_IF(!e->data && !e->fill, LQ_ERR_INVALID_ARG, "%s: tensor '%s': neither data nor fill", path, e->name);
    uint64_t n = 1;
    for (int d = 0; d < e->n_dims; d++)
        LQ_RETURN_IF(e->shape[d] < 0 || !lq__mul_u64(n, (uint64_t)e->shape[d], &n), LQ_ERR_SHAPE,
                     "%s: tensor '%s': bad shape", path, e->name);
    LQ_RETURN_IF(!lq_dtype_nbytes(e->dtype, n, out), LQ_ERR_SHAPE, "%s: tensor '%s': size overflows or is not whole bytes",
                 path, e->name);
    return LQ_OK;
}

/* the header text, unpadded; order[] receives the write order */
static lq_status build_header(const char *path, const lq_st_entry *e, int64_t n, const lq_st_write_params *p,
                              int64_t *order, uint64_t *nbytes, char **out, size_t *out_len) {
    uint64_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        LQ_TRY(entry_nbytes(path, &e[i], &nbytes[i]));
        LQ_RETURN_IF(!lq__add_u64(total, nbytes[i], &total), LQ_ERR_SHAPE, "%s: total size overflows", path);
        order[i] = i;
    }
    /* duplicate names: sort a copy by name */
    qsort_r(order, (size_t)n, sizeof *order, cmp_entry_name, (void *)(uintptr_t)e);
    for (int64_t i = 1; i < n; i++)
        LQ_RETURN_IF(strcmp(e[order[i]].name, e[order[i - 1]].name) == 0, LQ_ERR_INVALID_ARG,
                     "%s: duplicate tensor name '%s'", path, e[order[i]].name);
    if (p->sort_like_reference)
        qsort_r(order, (size_t)n, sizeof *order, cmp_entry_ref, (void *)(uintptr_t)e);
    else
        for (int64_t i = 0; i < n; i++) order[i] = i;

    lq_json_writer *w = lq_json_writer_init(0);
    LQ_RETURN_IF(!w, LQ_ERR_NOMEM, "out of memory");
    lq_json_obj_begin(w);
    if (p->n_metadata > 0) {
        lq_kv *kv = lq_calloc((size_t)p->n_metadata, sizeof *kv);
        if (!kv) {
            lq_json_writer_free(w);
            LQ_RETURN_IF(1, LQ_ERR_NOMEM, "out of memory");
        }
        memcpy(kv, p->metadata, (size_t)p->n_metadata * sizeof *kv);
        qsort(kv, (size_t)p->n_metadata, sizeof *kv, cmp_kv);
        lq_json_key(w, "__metadata__");
        lq_json_obj_begin(w);
        for (int32_t i = 0; i < p->n_metadata; i++) {
            lq_json_key(w, kv[i].key);
            lq_json_str(w, kv[i].value);
        }
        lq_json_obj_end(w);
        lq_free(kv);
    }
    uint64_t off = 0;
    for (int64_t i = 0; i < n; i++) {
        const lq_st_entry *x = &e[order[i]];
        lq_json_key(w, x->name);
        lq_json_obj_begin(w);
        lq_json_key(w, "dtype");
        lq_json_str(w, lq_dtype_name(x->dtype));
        lq_json_key(w, "shape");
        lq_json_arr_begin(w);
        for (int d = 0; d < x->n_dims; d++) lq_json_u64(w, (uint64_t)x->shape[d]);
        lq_json_arr_end(w);
        lq_json_key(w, "data_offsets");
        lq_json_arr_begin(w);
        lq_json_u64(w, off);
        off += nbytes[order[i]]; /* no overflow: total was checked */
        lq_json_u64(w, off);
        lq_json_arr_end(w);
        lq_json_obj_end(w);
    }
    lq_json_obj_end(w);
    const lq_status s = lq_json_writer_finish(w, out, out_len);
    LQ_RETURN_IF(s != LQ_OK, s, "%s: cannot build the header (invalid UTF-8 in a name?)", path);
    return LQ_OK;
}

/* Data is written with pwrite() from the source, or from a small per-thread
 * buffer that fill() produces into (it stays in cache, so memory traffic is
 * one read of the source and one write of the file's pages). pwrite rather
 * than a writable mapping: no page fault per 4 KiB page, and a full disk is
 * an error (ENOSPC), never a SIGBUS. */
#define FILL_CHUNK ((uint64_t)256 << 10)

static lq_status pwrite_all(int fd, const uint8_t *p, uint64_t n, uint64_t off) {
    while (n > 0) {
        const ssize_t w = pwrite(fd, p, n > (1u << 30) ? (1u << 30) : (size_t)n, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return LQ_ERR_IO;
        p += w, n -= (uint64_t)w, off += (uint64_t)w;
    }
    return LQ_OK;
}

static lq_status write_data(const char *path, int fd, uint64_t file_off, const lq_st_entry *x, uint64_t nbytes,
                            const lq_st_write_params *p) {
    const int64_t n_chunks = (int64_t)LQ_CEIL_DIV(nbytes, FILL_CHUNK);
    lq_status     st       = LQ_OK;
    int           err      = 0;
#ifdef _OPENMP
    const int nt = p->n_threads > 0 ? p->n_threads : omp_get_max_threads();
#pragma omp parallel num_threads(nt) if (n_chunks > 1)
#endif
    {
        uint8_t *buf = x->data ? NULL : lq_malloc(FILL_CHUNK);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t c = 0; c < n_chunks; c++) {
            const uint64_t o = (uint64_t)c * FILL_CHUNK;
            const uint64_t m = LQ_MIN(FILL_CHUNK, nbytes - o);
            lq_status      s = LQ_OK;
            if (x->data) {
                s = pwrite_all(fd, (const uint8_t *)x->data + o, m, file_off + o);
            } else if (!buf) {
                s = LQ_ERR_NOMEM;
            } else {
                s = x->fill(buf, o, m, x->fill_user);
                if (s == LQ_OK) s = pwrite_all(fd, buf, m, file_off + o);
            }
            if (s != LQ_OK) {
                const int e = errno;
#ifdef _OPENMP
#pragma omp critical(lq_st_write_err)
#endif
                if (st == LQ_OK) st = s, err = e;
            }
        }
        lq_free(buf);
    }
    (void)p;
    LQ_RETURN_IF(st == LQ_ERR_IO, st, "%s: write failed: %s", path, strerror(err));
    LQ_RETURN_IF(st != LQ_OK, st, "%s: tensor '%s': producing its data failed (%s)", path, x->name, lq_status_str(st));
    return LQ_OK;
}

lq_status lq_safetensors_write(const char *path, const lq_st_entry *e, int64_t n, const lq_st_write_params *p_in) {
    const lq_st_write_params p = p_in ? *p_in : lq_st_write_default_params();
    LQ_RETURN_IF(n < 0 || (n > 0 && !e), LQ_ERR_INVALID_ARG, "%s: bad tensor list", path);
    int64_t   *order  = lq_calloc((size_t)(n ? n : 1), sizeof *order);
    uint64_t  *nbytes = lq_calloc((size_t)(n ? n : 1), sizeof *nbytes);
    char      *hdr    = NULL;
    uint8_t   *head   = NULL;
    size_t     hlen   = 0;
    lq__afile *f      = NULL;
    lq_status  st     = LQ_OK;
    LQ_GOTO_IF(!order || !nbytes, LQ_ERR_NOMEM, "out of memory");
    LQ_GOTO_TRY(build_header(path, e, n, &p, order, nbytes, &hdr, &hlen));
    const uint64_t padded = (hlen + 7) / 8 * 8;
    uint64_t       data_size = 0;
    for (int64_t i = 0; i < n; i++) data_size += nbytes[i]; /* checked in build_header */
    LQ_GOTO_IF(padded > LQ_SAFETENSORS_MAX_HEADER, LQ_ERR_UNSUPPORTED, "%s: header of %llu bytes is over the limit",
               path, (unsigned long long)padded);
    head = lq_malloc((size_t)(8 + padded));
    LQ_GOTO_IF(!head, LQ_ERR_NOMEM, "out of memory");
    for (int i = 0; i < 8; i++) head[i] = (uint8_t)(padded >> (8 * i));
    memcpy(head + 8, hdr, hlen);
    memset(head + 8 + hlen, ' ', (size_t)(padded - hlen));
    LQ_GOTO_TRY(lq__afile_open(path, &f));
    LQ_GOTO_TRY(lq__afile_write(f, head, (size_t)(8 + padded)));
    const int fd  = lq__afile_fd(f);
    uint64_t  off = 8 + padded, done = 0;
    for (int64_t i = 0; i < n; i++) {
        const lq_st_entry *x = &e[order[i]];
        if (p.progress) {
            char stage[96];
            snprintf(stage, sizeof stage, "tensor %lld/%lld", (long long)i + 1, (long long)n);
            LQ_GOTO_IF(p.progress(data_size ? (float)((double)done / (double)data_size) : 0.f, stage,
                                  p.progress_user) != 0,
                       LQ_ERR_CANCELLED, "%s: cancelled", path);
        }
        LQ_GOTO_TRY(write_data(path, fd, off, x, nbytes[order[i]], &p));
        off += nbytes[order[i]];
        done += nbytes[order[i]];
    }
    if (p.progress) p.progress(1.f, "done", p.progress_user);
    st = lq__afile_commit_opt(f, !p.no_fsync);
    f  = NULL;
done:
    lq__afile_abort(f);
    lq_free(head);
    lq_free(hdr);
    lq_free(order);
    lq_free(nbytes);
    return st;
}

lq_status lq_safetensors_write_dir(const char *dir, const lq_st_entry *e, int64_t n, const lq_st_write_params *p_in) {
    const lq_st_write_params p = p_in ? *p_in : lq_st_write_default_params();
    LQ_RETURN_IF(!lq__is_dir(dir), LQ_ERR_IO, "%s: not a directory", dir);
    uint64_t *nbytes = lq_calloc((size_t)(n ? n : 1), sizeof *nbytes);
    int32_t  *shard  = lq_calloc((size_t)(n ? n : 1), sizeof *shard);
    lq_status st     = LQ_OK;
    char     *path = NULL, *json = NULL;
    LQ_GOTO_IF(!nbytes || !shard, LQ_ERR_NOMEM, "out of memory");
    int32_t  n_shards = 1;
    uint64_t cur = 0, total = 0;
    for (int64_t i = 0; i < n; i++) {
        LQ_GOTO_TRY(entry_nbytes(dir, &e[i], &nbytes[i]));
        if (p.max_shard_size > 0 && cur > 0 && cur + nbytes[i] > p.max_shard_size) {
            n_shards++;
            cur = 0;
        }
        shard[i] = n_shards - 1;
        cur += nbytes[i];
        total += nbytes[i];
    }
    LQ_GOTO_IF(n_shards > 99999, LQ_ERR_INVALID_ARG, "%s: %d shards is more than 99999", dir, n_shards);
    if (n_shards == 1) {
        path = lq__path_join(dir, "model.safetensors");
        LQ_GOTO_IF(!path, LQ_ERR_NOMEM, "out of memory");
        st = lq_safetensors_write(path, e, n, &p);
        goto done;
    }
    lq_st_entry *sub = lq_calloc((size_t)n, sizeof *sub);
    LQ_GOTO_IF(!sub, LQ_ERR_NOMEM, "out of memory");
    for (int32_t s = 0; s < n_shards && st == LQ_OK; s++) {
        int64_t m = 0;
        for (int64_t i = 0; i < n; i++)
            if (shard[i] == s) sub[m++] = e[i];
        char name[64];
        snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        lq_free(path);
        path = lq__path_join(dir, name);
        if (!path) {
            st = LQ_ERR_NOMEM;
            break;
        }
        st = lq_safetensors_write(path, sub, m, &p);
    }
    lq_free(sub);
    if (st != LQ_OK) goto done;
    /* index: weight_map sorted by name, as transformers writes it */
    int64_t *order = lq_calloc((size_t)n, sizeof *order);
    LQ_GOTO_IF(!order, LQ_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) order[i] = i;
    qsort_r(order, (size_t)n, sizeof *order, cmp_entry_name, (void *)(uintptr_t)e);
    lq_json_writer *w = lq_json_writer_init(2);
    if (!w) {
        lq_free(order);
        LQ_GOTO_IF(1, LQ_ERR_NOMEM, "out of memory");
    }
    lq_json_obj_begin(w);
    lq_json_key(w, "metadata");
    lq_json_obj_begin(w);
    lq_json_key(w, "total_size");
    lq_json_u64(w, total);
    lq_json_obj_end(w);
    lq_json_key(w, "weight_map");
    lq_json_obj_begin(w);
    for (int64_t i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", shard[order[i]] + 1, n_shards);
        lq_json_key(w, e[order[i]].name);
        lq_json_str(w, name);
    }
    lq_json_obj_end(w);
    lq_json_obj_end(w);
    lq_free(order);
    size_t len;
    LQ_GOTO_TRY(lq_json_writer_finish(w, &json, &len));
    lq_free(path);
    path = lq__path_join(dir, "model.safetensors.index.json");
    LQ_GOTO_IF(!path, LQ_ERR_NOMEM, "out of memory");
    /* a trailing newline, as json.dump + write("\n") in transformers */
    char *withnl = lq_malloc(len + 2);
    LQ_GOTO_IF(!withnl, LQ_ERR_NOMEM, "out of memory");
    memcpy(withnl, json, len);
    withnl[len] = '\n';
    st          = lq__write_file_atomic(path, withnl, len + 1);
    lq_free(withnl);
done:
    lq_free(json);
    lq_free(path);
    lq_free(nbytes);
    lq_free(shard);
    return st;
}
