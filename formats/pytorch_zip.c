/* pytorch_zip.c : reader for torch.save() zip checkpoints (pytorch_model.bin).
 *
 * Layout (pytorch/pytorch: torch/serialization.py, caffe2/serialize/
 * inline_container.cc): one top folder named after the saved file (or
 * "archive"), taken from the first entry and never assumed; <top>/data.pkl
 * is the pickled state_dict, <top>/data/<key> the raw little-endian bytes of
 * each storage, <top>/byteorder ("little" when absent). The archive is opened
 * with libzip's consistency checks (every local header against the central
 * directory), each storage is read into an owned buffer whose size must be
 * numel * itemsize of its persistent id, and every tensor view must lie
 * inside its storage (overflow-checked). Row-major views point into their
 * storage; other views (transposes, slices, broadcasts) get a contiguous copy.
 * The pickle is interpreted by pickle.c, which executes nothing.
 * Refused: non-zip input, the pre-1.6 raw-pickle format, TorchScript
 * archives, big-endian archives (LQ_ERR_UNSUPPORTED). */
#include "lq_formats.h"
#include "lq_internal.h"
#include "pickle_internal.h"

#include <stdlib.h>
#include <string.h>
#include <zip.h>

#define PT_MAX_PICKLE   (1ULL << 30) /* bytes of data.pkl                        */
#define PT_MAX_NAME     4096         /* bytes of an entry name we build          */
#define PT_DEFLATE_RATIO 1032        /* deflate expands at most ~1032:1           */

struct lq_pytorch {
    lq__pt_state_dict sd;       /* names, storages, view geometry               */
    uint8_t         **storage;  /* per sd.storages[i]: its bytes, owned (NULL if empty) */
    lq_tensor_info   *tensors;  /* sd.n_records, names borrowed from sd          */
    void            **copies;   /* per tensor: owned contiguous copy or NULL     */
};

/* data pointer for zero-byte tensors, so `data` is never NULL */
static const uint8_t empty_bytes[1];

/* the pickle that torch.save(_use_new_zipfile_serialization=False) starts
 * with: PROTO 2, LONG1 of 10 bytes = 0x1950a86a20f9469cfc6c */
static const uint8_t legacy_magic[] = { 0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                        0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19 };

void lq_pytorch_close(lq_pytorch *pt) {
    if (!pt) return;
    if (pt->storage)
        for (int64_t i = 0; i < pt->sd.n_storages; i++) lq_free(pt->storage[i]);
    if (pt->copies)
        for (int64_t i = 0; i < pt->sd.n_records; i++) lq_free(pt->copies[i]);
    lq_free(pt->storage);
    lq_free(pt->copies);
    lq_free(pt->tensors);
    lq__pickle_state_dict_free(&pt->sd);
    lq_free(pt);
}

int64_t lq_pytorch_count(const lq_pytorch *pt) { return pt ? pt->sd.n_records : 0; }

const lq_tensor_info *lq_pytorch_tensor(const lq_pytorch *pt, int64_t i) {
    if (!pt || i < 0 || i >= pt->sd.n_records) return NULL;
    return &pt->tensors[i];
}

/* ==== zip helpers ==== */

static char *join3(const char *a, const char *b, const char *c) {
    const size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    if (la + lb + lc >= PT_MAX_NAME) return NULL;
    char *s = lq_malloc(la + lb + lc + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, c, lc + 1);
    return s;
}

static bool starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

/*! read_entry() : the whole entry `idx` into a fresh lq_malloc'ed buffer
 *  (NULL for an empty entry). `want` is the required size, or UINT64_MAX for
 *  any size up to `limit`. The final read past the end makes libzip verify
 *  the CRC. `what` names the entry in messages (file and tensor). */
static lq_status read_entry(zip_t *za, zip_uint64_t idx, size_t archive_len, uint64_t want, uint64_t limit,
                            const char *label, const char *what, uint8_t **out, uint64_t *out_len) {
    lq_status   st = LQ_OK;
    zip_file_t *zf = NULL;
    uint8_t    *buf = NULL;
    zip_stat_t  sb;
    *out = NULL;
    zip_stat_init(&sb);
    LQ_RETURN_IF(zip_stat_index(za, idx, 0, &sb) != 0, LQ_ERR_FORMAT, "%s: %s: %s", label, what, zip_strerror(za));
    const zip_uint64_t need = ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD;
    LQ_RETURN_IF((sb.valid & need) != need, LQ_ERR_FORMAT, "%s: %s: sizes missing from the zip directory", label,
                 what);
    LQ_RETURN_IF((sb.valid & ZIP_STAT_ENCRYPTION_METHOD) && sb.encryption_method != ZIP_EM_NONE,
                 LQ_ERR_UNSUPPORTED, "%s: %s: encrypted zip entry", label, what);
    LQ_RETURN_IF(sb.comp_method != ZIP_CM_STORE && sb.comp_method != ZIP_CM_DEFLATE, LQ_ERR_UNSUPPORTED,
                 "%s: %s: zip compression method %d (only stored or deflated entries are read)", label, what,
                 (int)sb.comp_method);
    /* the entry's data must fit in the archive; deflate bounds the expansion */
    uint64_t bound = sb.comp_size;
    if (sb.comp_method == ZIP_CM_DEFLATE && !lq__mul_u64(sb.comp_size, PT_DEFLATE_RATIO, &bound)) bound = UINT64_MAX;
    LQ_RETURN_IF(sb.comp_size > archive_len || sb.size > bound, LQ_ERR_FORMAT,
                 "%s: %s: zip entry of %llu bytes (%llu stored) does not fit in a %zu-byte archive", label, what,
                 (unsigned long long)sb.size, (unsigned long long)sb.comp_size, archive_len);
    if (want != UINT64_MAX)
        LQ_RETURN_IF(sb.size != want, LQ_ERR_FORMAT, "%s: %s: zip entry holds %llu bytes, expected %llu", label,
                     what, (unsigned long long)sb.size, (unsigned long long)want);
    LQ_RETURN_IF(sb.size > limit || sb.size > SIZE_MAX, LQ_ERR_FORMAT,
                 "%s: %s: zip entry of %llu bytes exceeds the limit of %llu", label, what,
                 (unsigned long long)sb.size, (unsigned long long)limit);

    zf = zip_fopen_index(za, idx, 0);
    LQ_RETURN_IF(!zf, LQ_ERR_FORMAT, "%s: %s: cannot open zip entry: %s", label, what, zip_strerror(za));
    if (sb.size > 0) {
        buf = lq_malloc((size_t)sb.size);
        LQ_GOTO_IF(!buf, LQ_ERR_NOMEM, "%s: %s: out of memory for %llu bytes", label, what,
                   (unsigned long long)sb.size);
    }
    uint64_t got = 0;
    while (got < sb.size) {
        const zip_int64_t r = zip_fread(zf, buf + got, sb.size - got);
        LQ_GOTO_IF(r < 0, LQ_ERR_FORMAT, "%s: %s: zip read failed: %s", label, what, zip_file_strerror(zf));
        LQ_GOTO_IF(r == 0, LQ_ERR_FORMAT, "%s: %s: zip entry ends after %llu of %llu bytes", label, what,
                   (unsigned long long)got, (unsigned long long)sb.size);
        got += (uint64_t)r;
    }
    uint8_t           extra;
    const zip_int64_t r = zip_fread(zf, &extra, 1); /* EOF: libzip checks the CRC here */
    LQ_GOTO_IF(r < 0, LQ_ERR_FORMAT, "%s: %s: zip read failed: %s", label, what, zip_file_strerror(zf));
    LQ_GOTO_IF(r > 0, LQ_ERR_FORMAT, "%s: %s: zip entry is longer than its recorded %llu bytes", label, what,
               (unsigned long long)sb.size);
    *out     = buf;
    *out_len = sb.size;
    buf      = NULL;
done:
    if (zf) zip_fclose(zf);
    lq_free(buf);
    return st;
}


/* ==== views ==== */

typedef struct {
    const lq__pt_record *r;
    int64_t              idx;
} view_ref;

static int cmp_i64(int64_t a, int64_t b) { return (a > b) - (a < b); }

static int cmp_view(const void *pa, const void *pb) {
    const view_ref *a = pa, *b = pb;
    int             c = cmp_i64(a->r->storage, b->r->storage);
    if (!c) c = (a->r->offset > b->r->offset) - (a->r->offset < b->r->offset);
    if (!c) c = cmp_i64(a->r->n_dims, b->r->n_dims);
    for (int32_t d = 0; !c && d < a->r->n_dims; d++) c = cmp_i64(a->r->shape[d], b->r->shape[d]);
    for (int32_t d = 0; !c && d < a->r->n_dims; d++) c = cmp_i64(a->r->stride[d], b->r->stride[d]);
    return c ? c : cmp_i64(a->idx, b->idx);
}

static bool same_view(const lq__pt_record *a, const lq__pt_record *b) {
    if (a->storage != b->storage || a->offset != b->offset || a->n_dims != b->n_dims) return false;
    for (int32_t d = 0; d < a->n_dims; d++)
        if (a->shape[d] != b->shape[d] || a->stride[d] != b->stride[d]) return false;
    return true;
}

/* alias_of: the first (lowest-index) tensor with the very same view */
static lq_status find_aliases(lq_pytorch *pt, const char *label) {
    const int64_t n = pt->sd.n_records;
    for (int64_t i = 0; i < n; i++) pt->tensors[i].alias_of = -1;
    if (n < 2) return LQ_OK;
    view_ref *v = lq_malloc((size_t)n * sizeof *v);
    LQ_RETURN_IF(!v, LQ_ERR_NOMEM, "%s: out of memory", label);
    for (int64_t i = 0; i < n; i++) v[i] = (view_ref){ &pt->sd.records[i], i };
    qsort(v, (size_t)n, sizeof *v, cmp_view);
    int64_t first = v[0].idx;
    for (int64_t i = 1; i < n; i++) {
        if (same_view(v[i].r, v[i - 1].r))
            pt->tensors[v[i].idx].alias_of = first;
        else
            first = v[i].idx;
    }
    lq_free(v);
    return LQ_OK;
}

/* copies the strided view at `src` into `dst` in row-major order; shape
 * entries are all >= 1 and every address was checked against the storage */
static void gather(uint8_t *dst, const uint8_t *src, const lq__pt_record *r, size_t isz) {
    const int32_t last = r->n_dims - 1;
    int64_t       idx[LQ_MAX_DIMS] = { 0 };
    uint64_t      off              = 0; /* element offset of the current row */
    const size_t  row_bytes        = (size_t)r->shape[last] * isz;
    for (;;) {
        const uint8_t *row = src + off * isz;
        if (r->stride[last] == 1) {
            memcpy(dst, row, row_bytes);
        } else {
            const size_t step = (size_t)r->stride[last] * isz;
            for (int64_t j = 0; j < r->shape[last]; j++) memcpy(dst + (size_t)j * isz, row + (size_t)j * step, isz);
        }
        dst += row_bytes;
        int32_t d = last - 1;
        for (; d >= 0; d--) {
            off += (uint64_t)r->stride[d];
            if (++idx[d] < r->shape[d]) break;
            off -= (uint64_t)r->stride[d] * (uint64_t)idx[d];
            idx[d] = 0;
        }
        if (d < 0) break;
    }
}

/* fills pt->tensors[i] from record i: checks the view against its storage,
 * points into the storage or makes the contiguous copy */
static lq_status build_tensor(lq_pytorch *pt, int64_t i, const char *label) {
    const lq__pt_record  *r   = &pt->sd.records[i];
    const lq__pt_storage *s   = &pt->sd.storages[r->storage];
    lq_tensor_info       *t   = &pt->tensors[i];
    const size_t          isz = lq_dtype_traits_of(s->dtype)->bits / 8;

    t->name   = r->name;
    t->dtype  = s->dtype;
    t->n_dims = r->n_dims;
    uint64_t numel = 1;
    for (int32_t d = 0; d < r->n_dims; d++) {
        t->shape[d] = r->shape[d];
        LQ_RETURN_IF(!lq__mul_u64(numel, (uint64_t)r->shape[d], &numel), LQ_ERR_FORMAT,
                     "%s: tensor '%s': element count overflows", label, r->name);
    }
    LQ_RETURN_IF(!lq__mul_u64(numel, isz, &t->nbytes) || t->nbytes > SIZE_MAX, LQ_ERR_FORMAT,
                 "%s: tensor '%s': byte size overflows", label, r->name);
    if (numel == 0) {
        t->data = empty_bytes;
        return LQ_OK;
    }

    /* highest element the view touches: offset + sum (shape-1)*stride < storage numel */
    uint64_t last = r->offset, term;
    bool     contiguous = true;
    uint64_t expect     = 1;
    for (int32_t d = r->n_dims - 1; d >= 0; d--) {
        if (!lq__mul_u64((uint64_t)(r->shape[d] - 1), (uint64_t)r->stride[d], &term) ||
            !lq__add_u64(last, term, &last)) {
            LQ_LOG_ERR("%s: tensor '%s': view extent overflows (stride %lld in dim %d)", label, r->name,
                       (long long)r->stride[d], (int)d);
            return LQ_ERR_FORMAT;
        }
        if (r->shape[d] != 1 && (uint64_t)r->stride[d] != expect) contiguous = false;
        expect *= (uint64_t)r->shape[d]; /* <= numel: no overflow */
    }
    LQ_RETURN_IF(last >= s->numel, LQ_ERR_FORMAT,
                 "%s: tensor '%s': view (storage offset %llu, %d dims) reaches element %llu of storage '%s' "
                 "which holds %llu",
                 label, r->name, (unsigned long long)r->offset, (int)r->n_dims, (unsigned long long)last, s->key,
                 (unsigned long long)s->numel);
    const uint8_t *base = pt->storage[r->storage] + r->offset * isz; /* < storage bytes: checked above */
    if (contiguous) {
        t->data = base;
        return LQ_OK;
    }
    if (t->alias_of >= 0) { /* same view as an earlier tensor: share its copy */
        t->data = pt->tensors[t->alias_of].data;
        return LQ_OK;
    }
    pt->copies[i] = lq_malloc((size_t)t->nbytes);
    LQ_RETURN_IF(!pt->copies[i], LQ_ERR_NOMEM, "%s: tensor '%s': out of memory for a contiguous copy (%llu bytes)",
                 label, r->name, (unsigned long long)t->nbytes);
    gather(pt->copies[i], base, r, isz);
    t->data = pt->copies[i];
    return LQ_OK;
}

/* ==== open ==== */

static lq_status check_magic(const uint8_t *buf, size_t len, const char *label) {
    LQ_RETURN_IF(len < 4, LQ_ERR_FORMAT, "%s: %zu bytes, too small for a PyTorch zip checkpoint", label, len);
    if (len >= sizeof legacy_magic) {
        /* PROTO 2, then LONG1 magic; a protocol >= 4 pickle may put a FRAME between */
        const bool direct = buf[0] == 0x80 && memcmp(buf + 2, legacy_magic + 2, sizeof legacy_magic - 2) == 0;
        const bool framed = len >= sizeof legacy_magic + 9 && buf[0] == 0x80 && buf[2] == 0x95 &&
                            memcmp(buf + 11, legacy_magic + 2, sizeof legacy_magic - 2) == 0;
        LQ_RETURN_IF(direct || framed, LQ_ERR_FORMAT,
                     "%s: legacy (pre-1.6) torch.save format; re-save with a recent PyTorch", label);
    }
    LQ_RETURN_IF(memcmp(buf, "PK\x03\x04", 4) != 0, LQ_ERR_FORMAT,
                 "%s: not a zip archive (no PK\\x03\\x04 magic), so not a torch.save() checkpoint", label);
    return LQ_OK;
}

static lq_status load(const uint8_t *buf, size_t len, const char *label, lq_pytorch **out) {
    lq_status   st = LQ_OK;
    zip_t      *za = NULL;
    lq_pytorch *pt = NULL;
    char       *top = NULL, *path = NULL;
    const char **first_user = NULL; /* per storage: the first tensor name viewing it */
    uint8_t    *pkl = NULL, *bo = NULL;
    uint64_t    pkl_len = 0, bo_len = 0;
    zip_error_t zerr;
    zip_error_init(&zerr);

    LQ_GOTO_TRY(check_magic(buf, len, label));
    zip_source_t *src = zip_source_buffer_create(buf, len, 0, &zerr);
    LQ_GOTO_IF(!src, LQ_ERR_NOMEM, "%s: zip source: %s", label, zip_error_strerror(&zerr));
    za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &zerr);
    if (!za) {
        zip_source_free(src);
        LQ_GOTO_IF(1, LQ_ERR_FORMAT, "%s: not a valid zip archive: %s", label, zip_error_strerror(&zerr));
    }

    /* the top folder, from the first entry */
    const zip_int64_t n_entries = zip_get_num_entries(za, 0);
    LQ_GOTO_IF(n_entries <= 0, LQ_ERR_FORMAT, "%s: empty zip archive", label);
    const char *first = zip_get_name(za, 0, ZIP_FL_ENC_RAW);
    LQ_GOTO_IF(!first, LQ_ERR_FORMAT, "%s: zip entry 0 has no name", label);
    const char *slash = strchr(first, '/');
    LQ_GOTO_IF(!slash || slash == first || slash - first >= 1024, LQ_ERR_FORMAT,
               "%s: first zip entry '%.80s' is not inside a top folder", label, first);
    top = lq_malloc((size_t)(slash - first) + 2);
    LQ_GOTO_IF(!top, LQ_ERR_NOMEM, "%s: out of memory", label);
    memcpy(top, first, (size_t)(slash - first) + 1); /* with the '/' */
    top[slash - first + 1] = '\0';

    for (zip_int64_t i = 0; i < n_entries; i++) {
        const char *name = zip_get_name(za, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
        LQ_GOTO_IF(!name, LQ_ERR_FORMAT, "%s: zip entry %lld has no name", label, (long long)i);
        const char *rest = starts_with(name, top) ? name + strlen(top) : name;
        LQ_GOTO_IF(starts_with(rest, "code/") || strcmp(rest, "constants.pkl") == 0, LQ_ERR_FORMAT,
                   "%s: TorchScript archive, not a state_dict (entry '%.200s'); save model.state_dict() instead",
                   label, name);
    }

    /* byteorder: absent means little */
    path = join3(top, "byteorder", "");
    LQ_GOTO_IF(!path, LQ_ERR_NOMEM, "%s: out of memory", label);
    const zip_int64_t bo_idx = zip_name_locate(za, path, ZIP_FL_ENC_RAW);
    if (bo_idx >= 0) {
        LQ_GOTO_TRY(read_entry(za, (zip_uint64_t)bo_idx, len, UINT64_MAX, 64, label, path, &bo, &bo_len));
        LQ_GOTO_IF(bo_len == 3 && memcmp(bo, "big", 3) == 0, LQ_ERR_UNSUPPORTED,
                   "%s: big-endian checkpoint (byteorder \"big\"); re-save it on a little-endian machine", label);
        LQ_GOTO_IF(bo_len != 6 || memcmp(bo, "little", 6) != 0, LQ_ERR_FORMAT,
                   "%s: %s is neither \"little\" nor \"big\"", label, path);
    }
    lq_free(path);

    /* the pickle */
    path = join3(top, "data.pkl", "");
    LQ_GOTO_IF(!path, LQ_ERR_NOMEM, "%s: out of memory", label);
    const zip_int64_t pkl_idx = zip_name_locate(za, path, ZIP_FL_ENC_RAW);
    LQ_GOTO_IF(pkl_idx < 0, LQ_ERR_FORMAT, "%s: no %s in the archive (not a torch.save() checkpoint)", label, path);
    LQ_GOTO_TRY(read_entry(za, (zip_uint64_t)pkl_idx, len, UINT64_MAX, PT_MAX_PICKLE, label, path, &pkl, &pkl_len));
    lq_free(path);
    path = NULL;

    pt = lq_calloc(1, sizeof *pt);
    LQ_GOTO_IF(!pt, LQ_ERR_NOMEM, "%s: out of memory", label);
    LQ_GOTO_TRY(lq__pickle_state_dict(pkl, (size_t)pkl_len, label, &pt->sd));
    lq_free(pkl);
    pkl = NULL;

    const int64_t n_st = pt->sd.n_storages, n_t = pt->sd.n_records;
    if (n_t > 0) {
        pt->storage = lq_calloc((size_t)n_st, sizeof *pt->storage);
        pt->tensors = lq_calloc((size_t)n_t, sizeof *pt->tensors);
        pt->copies  = lq_calloc((size_t)n_t, sizeof *pt->copies);
        LQ_GOTO_IF(!pt->storage || !pt->tensors || !pt->copies, LQ_ERR_NOMEM, "%s: out of memory for %lld tensors",
                   label, (long long)n_t);
    }

    /* storages; messages name the first tensor viewing each */
    if (n_st > 0) {
        first_user = lq_malloc((size_t)n_st * sizeof *first_user);
        LQ_GOTO_IF(!first_user, LQ_ERR_NOMEM, "%s: out of memory", label);
        for (int64_t s = 0; s < n_st; s++) first_user[s] = NULL;
        for (int64_t i = n_t - 1; i >= 0; i--) first_user[pt->sd.records[i].storage] = pt->sd.records[i].name;
    }
    for (int64_t s = 0; s < n_st; s++) {
        const lq__pt_storage *ps = &pt->sd.storages[s];
        const char           *tn = first_user[s] ? first_user[s] : "?";
        uint64_t              want, got = 0;
        LQ_GOTO_IF(!lq_dtype_nbytes(ps->dtype, ps->numel, &want), LQ_ERR_FORMAT,
                   "%s: tensor '%s': storage '%s' of %llu elements overflows", label, tn, ps->key,
                   (unsigned long long)ps->numel);
        path = join3(top, "data/", ps->key);
        LQ_GOTO_IF(!path, LQ_ERR_NOMEM, "%s: out of memory", label);
        const zip_int64_t idx = zip_name_locate(za, path, ZIP_FL_ENC_RAW);
        LQ_GOTO_IF(idx < 0, LQ_ERR_FORMAT, "%s: tensor '%s': storage entry %s is missing", label, tn, path);
        char what[PT_MAX_NAME + 64];
        snprintf(what, sizeof what, "tensor '%s': %s", tn, path);
        LQ_GOTO_TRY(read_entry(za, (zip_uint64_t)idx, len, want, UINT64_MAX, label, what, &pt->storage[s], &got));
        lq_free(path);
        path = NULL;
    }
    zip_discard(za); /* read-only: nothing to write back */
    za = NULL;

    /* tensors */
    LQ_GOTO_TRY(find_aliases(pt, label));
    for (int64_t i = 0; i < n_t; i++) LQ_GOTO_TRY(build_tensor(pt, i, label));

    *out = pt;
    pt   = NULL;
done:
    if (za) zip_discard(za);
    zip_error_fini(&zerr);
    lq_pytorch_close(pt);
    lq_free(first_user);
    lq_free(top);
    lq_free(path);
    lq_free(pkl);
    lq_free(bo);
    return st;
}

lq_status lq_pytorch_open_memory(const void *buf, size_t len, const char *label, lq_pytorch **out) {
    LQ_RETURN_IF(!out || (!buf && len), LQ_ERR_INVALID_ARG, "NULL argument");
    *out = NULL;
    return load(buf, len, label ? label : "<memory>", out);
}

lq_status lq_pytorch_open(const char *path, lq_pytorch **out) {
    LQ_RETURN_IF(!path || !out, LQ_ERR_INVALID_ARG, "NULL argument");
    *out = NULL;
    lq__mapping m;
    LQ_TRY(lq__map_file(path, &m));
    const lq_status st = load(m.data, m.size, path, out);
    lq__unmap_file(&m);
    return st;
}
