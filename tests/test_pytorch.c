/* test_pytorch.c : the PyTorch zip reader (formats/pytorch_zip.c) and its
 * restricted pickle machine (formats/pickle.c).
 *
 * Golden files written by PyTorch itself (tests/data/pytorch, see
 * tests/data/make_pytorch_fixtures.py) are compared tensor by tensor with
 * expected.json: name, dtype, shape, alias, sha256 of the contiguous bytes.
 * Hostile inputs: a data.pkl calling os.system / builtins.eval, the legacy
 * format, TorchScript, big-endian, entries pointing outside the archive,
 * every truncation of small archives, seeded byte flips in data.pkl (the zip
 * rebuilt around it so the CRC holds and the pickle machine is reached), and
 * hand-assembled pickles probing every limit. Runs under ASan+UBSan in
 * `make check`; on failure the seed and iteration are printed. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>
#include <zlib.h>

#include "lq_test.h"
#include "pickle_internal.h"

#define PT_DIR "tests/data/pytorch/"

/* ==== byte buffer ==== */

typedef struct {
    uint8_t *p;
    size_t   n, cap;
} bbuf;

static void bb_put(bbuf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) abort();
        b->p   = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void bb_u8(bbuf *b, unsigned v) {
    const uint8_t c = (uint8_t)v;
    bb_put(b, &c, 1);
}

static void bb_le(bbuf *b, uint64_t v, int n) {
    for (int i = 0; i < n; i++) bb_u8(b, (unsigned)(v >> (8 * i)) & 0xff);
}

static void bb_cstr(bbuf *b, const char *s) { bb_put(b, s, strlen(s)); }

/* ==== pickle assembly ==== */

static void pk_str(bbuf *b, const char *s) { /* BINUNICODE */
    bb_u8(b, 'X');
    bb_le(b, strlen(s), 4);
    bb_cstr(b, s);
}

static void pk_int(bbuf *b, int64_t v) {
    if (v >= INT32_MIN && v <= INT32_MAX) { /* BININT */
        bb_u8(b, 'J');
        bb_le(b, (uint64_t)v, 4);
    } else { /* LONG1, 8 bytes */
        bb_u8(b, 0x8a);
        bb_u8(b, 8);
        bb_le(b, (uint64_t)v, 8);
    }
}

static void pk_global(bbuf *b, const char *mod, const char *name) {
    bb_u8(b, 'c');
    bb_cstr(b, mod);
    bb_u8(b, '\n');
    bb_cstr(b, name);
    bb_u8(b, '\n');
}

static void pk_int_tuple(bbuf *b, int n, const int64_t *v) {
    bb_u8(b, '(');
    for (int i = 0; i < n; i++) pk_int(b, v[i]);
    bb_u8(b, 't');
}

/* pushes _rebuild_tensor_v2(('storage', torch.<cls>, key, 'cpu', numel), offset, shape, stride, False, {}) */
static void pk_tensor(bbuf *b, const char *cls, const char *key, int64_t numel, int64_t offset, int n_dims,
                      const int64_t *shape, const int64_t *stride) {
    pk_global(b, "torch._utils", "_rebuild_tensor_v2");
    bb_u8(b, '(');
    bb_u8(b, '(');
    pk_str(b, "storage");
    pk_global(b, "torch", cls);
    pk_str(b, key);
    pk_str(b, "cpu");
    pk_int(b, numel);
    bb_u8(b, 't');
    bb_u8(b, 'Q');
    pk_int(b, offset);
    pk_int_tuple(b, n_dims, shape);
    pk_int_tuple(b, n_dims, stride);
    bb_u8(b, 0x89);
    bb_u8(b, '}');
    bb_u8(b, 't');
    bb_u8(b, 'R');
}

static void pk_begin(bbuf *b) {
    bb_u8(b, 0x80);
    bb_u8(b, 2);
    bb_u8(b, '}');
    bb_u8(b, '(');
}

static void pk_end(bbuf *b) {
    bb_u8(b, 'u');
    bb_u8(b, '.');
}

/* ==== zip assembly (STORED, no data descriptors) and extraction ==== */

typedef struct { /* an entry to write */
    const char    *name;
    const uint8_t *data;
    size_t         len;
} zentry;

typedef struct { /* an entry read back, owned */
    char    *name;
    uint8_t *data;
    size_t   len;
} zowned;

static void zowned_free(zowned *e, int n) {
    for (int i = 0; i < n; i++) {
        free(e[i].name);
        free(e[i].data);
    }
    free(e);
}

static zowned *zowned_read(const char *path, int *n_out) {
    int    err;
    zip_t *za = zip_open(path, ZIP_RDONLY, &err);
    if (!za) return NULL;
    const int n = (int)zip_get_num_entries(za, 0);
    zowned   *e = calloc((size_t)n, sizeof *e);
    for (int i = 0; e && i < n; i++) {
        zip_stat_t sb;
        zip_stat_index(za, (zip_uint64_t)i, 0, &sb);
        e[i].name = strdup(sb.name);
        e[i].len  = (size_t)sb.size;
        e[i].data = malloc(e[i].len ? e[i].len : 1);
        zip_file_t *f = zip_fopen_index(za, (zip_uint64_t)i, 0);
        if (!f || zip_fread(f, e[i].data, e[i].len) != (zip_int64_t)e[i].len) abort();
        zip_fclose(f);
    }
    zip_discard(za);
    *n_out = n;
    return e;
}

static void zip_build(bbuf *out, const zentry *e, int n) {
    bbuf    cd   = { 0 };
    uint32_t *ofs = calloc((size_t)n + 1, sizeof *ofs);
    for (int i = 0; i < n; i++) {
        const uint32_t crc  = (uint32_t)crc32(0L, e[i].data, (uInt)e[i].len);
        const size_t   nlen = strlen(e[i].name);
        ofs[i]              = (uint32_t)out->n;
        bb_le(out, 0x04034b50, 4);
        bb_le(out, 20, 2);
        bb_le(out, 0, 2);    /* flags */
        bb_le(out, 0, 2);    /* stored */
        bb_le(out, 0, 2);    /* time */
        bb_le(out, 0x21, 2); /* date 1980-01-01 */
        bb_le(out, crc, 4);
        bb_le(out, e[i].len, 4);
        bb_le(out, e[i].len, 4);
        bb_le(out, nlen, 2);
        bb_le(out, 0, 2);
        bb_put(out, e[i].name, nlen);
        bb_put(out, e[i].data, e[i].len);

        bb_le(&cd, 0x02014b50, 4);
        bb_le(&cd, 20, 2);
        bb_le(&cd, 20, 2);
        bb_le(&cd, 0, 2);
        bb_le(&cd, 0, 2);
        bb_le(&cd, 0, 2);
        bb_le(&cd, 0x21, 2);
        bb_le(&cd, crc, 4);
        bb_le(&cd, e[i].len, 4);
        bb_le(&cd, e[i].len, 4);
        bb_le(&cd, nlen, 2);
        bb_le(&cd, 0, 2);
        bb_le(&cd, 0, 2);
        bb_le(&cd, 0, 2);
        bb_le(&cd, 0, 2);
        bb_le(&cd, 0, 4);
        bb_le(&cd, ofs[i], 4);
        bb_put(&cd, e[i].name, nlen);
    }
    const size_t cd_off = out->n;
    bb_put(out, cd.p, cd.n);
    bb_le(out, 0x06054b50, 4);
    bb_le(out, 0, 2);
    bb_le(out, 0, 2);
    bb_le(out, (uint64_t)n, 2);
    bb_le(out, (uint64_t)n, 2);
    bb_le(out, cd.n, 4);
    bb_le(out, cd_off, 4);
    bb_le(out, 0, 2);
    free(cd.p);
    free(ofs);
}

/* an archive "m/" with data.pkl = `pkl` and storages data/<key> */
typedef struct {
    const char *key;
    const void *data;
    size_t      len;
} zstorage;

static void zip_torch(bbuf *out, const bbuf *pkl, const zstorage *s, int n_s) {
    zentry e[16];
    int    n = 0;
    e[n++]   = (zentry){ "m/data.pkl", pkl->p, pkl->n };
    char names[16][64];
    for (int i = 0; i < n_s && n < 15; i++) {
        snprintf(names[i], sizeof names[i], "m/data/%s", s[i].key);
        e[n++] = (zentry){ names[i], s[i].data, s[i].len };
    }
    e[n++] = (zentry){ "m/version", (const uint8_t *)"3\n", 2 };
    zip_build(out, e, n);
}

/* open from an exactly sized heap copy, so ASan sees any over-read */
static lq_status open_exact(const void *buf, size_t len, lq_pytorch **pt) {
    void *copy = malloc(len ? len : 1);
    if (len) memcpy(copy, buf, len);
    const lq_status st = lq_pytorch_open_memory(copy, len, "mem.bin", pt);
    free(copy);
    return st;
}

/* touches every byte of every tensor; checks nbytes against the shape */
static int check_tensors(const lq_pytorch *pt) {
    int bad = 0;
    for (int64_t i = 0; i < lq_pytorch_count(pt); i++) {
        const lq_tensor_info *t = lq_pytorch_tensor(pt, i);
        uint64_t              numel, nb;
        if (!t || !t->data || !t->name || t->n_dims < 0 || t->n_dims > LQ_MAX_DIMS) return 1;
        if (!lq_tensor_info_numel(t, &numel) || !lq_dtype_nbytes(t->dtype, numel, &nb) || nb != t->nbytes) bad++;
        if (t->alias_of >= i) bad++;
        uint8_t d[32];
        lq_sha256(t->data, (size_t)t->nbytes, d);
    }
    return bad;
}

static bool contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

/* ==== golden files ==== */

static lq_status status_of(const char *s) {
    if (strcmp(s, "FORMAT") == 0) return LQ_ERR_FORMAT;
    if (strcmp(s, "UNSUPPORTED") == 0) return LQ_ERR_UNSUPPORTED;
    return LQ_ERR_INVALID_ARG;
}

static void compare_tensors(const lq_pytorch *pt, const lq_json *list, const char *file) {
    CU_ASSERT_EQUAL_FATAL(lq_pytorch_count(pt), (int64_t)list->n);
    for (uint32_t i = 0; i < list->n; i++) {
        const lq_json        *e = &list->items[i];
        const lq_tensor_info *t = lq_pytorch_tensor(pt, i);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        const char *name  = lq_json_get_str(lq_json_get(e, "name"));
        const char *dtype = lq_json_get_str(lq_json_get(e, "dtype"));
        const char *sha   = lq_json_get_str(lq_json_get(e, "sha256"));
        const lq_json *shape = lq_json_get(e, "shape");
        int64_t        alias = -2;
        uint64_t       nbytes = 0;
        CU_ASSERT_FATAL(name && dtype && sha && shape && shape->type == LQ_JSON_ARRAY);
        CU_ASSERT(lq_json_get_i64(lq_json_get(e, "alias_of"), &alias));
        CU_ASSERT(lq_json_get_u64(lq_json_get(e, "nbytes"), &nbytes));
        int ok = strcmp(t->name, name) == 0 && strcmp(lq_dtype_name(t->dtype), dtype) == 0 &&
                 t->n_dims == (int32_t)shape->n && t->alias_of == alias && t->nbytes == nbytes;
        for (uint32_t d = 0; ok && d < shape->n; d++) {
            int64_t v = -1;
            ok = lq_json_get_i64(&shape->items[d], &v) && v == t->shape[d];
        }
        uint8_t digest[32];
        char    hex[65];
        lq_sha256(t->data, (size_t)t->nbytes, digest);
        lq_sha256_hex(digest, hex);
        ok = ok && strcmp(hex, sha) == 0;
        if (!ok)
            fprintf(stderr, "\n  %s tensor %u: got %s %s dims %d alias %lld nbytes %llu sha %s; want %s %s alias %lld sha %s\n",
                    file, i, t->name, lq_dtype_name(t->dtype), t->n_dims, (long long)t->alias_of,
                    (unsigned long long)t->nbytes, hex, name, dtype, (long long)alias, sha);
        CU_ASSERT(ok);
    }
}

static void test_pytorch_expected(void) {
    size_t   len;
    uint8_t *text = lq_test_read_file(PT_DIR "expected.json", &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    lq_json_doc  *doc = NULL;
    lq_json_error err;
    CU_ASSERT_EQUAL_FATAL(lq_json_parse((const char *)text, len, NULL, &doc, &err), LQ_OK);
    const lq_json *files = lq_json_get(lq_json_root(doc), "files");
    CU_ASSERT_FATAL(files && files->type == LQ_JSON_ARRAY && files->n >= 10);
    int n_good = 0, n_bad = 0;
    for (uint32_t f = 0; f < files->n; f++) {
        const lq_json *e    = &files->items[f];
        const char    *file = lq_json_get_str(lq_json_get(e, "file"));
        CU_ASSERT_PTR_NOT_NULL_FATAL(file);
        char path[512];
        snprintf(path, sizeof path, PT_DIR "%s", file);
        const lq_json *tensors = lq_json_get(e, "tensors");
        lq_pytorch    *pt      = NULL;
        if (tensors) {
            lq_test_quiet(1); /* mixed.bin warns about its nested dict */
            const lq_status st = lq_pytorch_open(path, &pt);
            if (st != LQ_OK) fprintf(stderr, "\n  %s: %s '%s'\n", path, lq_status_str(st), lq_test_last_error());
            CU_ASSERT_EQUAL(lq_test_errors_logged(), 0);
            lq_test_quiet(0);
            CU_ASSERT_EQUAL_FATAL(st, LQ_OK);
            compare_tensors(pt, tensors, file);
            lq_pytorch_close(pt);
            /* the same through open_memory */
            size_t   blen;
            uint8_t *buf = lq_test_read_file(path, &blen);
            CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
            lq_test_quiet(1);
            CU_ASSERT_EQUAL(lq_pytorch_open_memory(buf, blen, file, &pt), LQ_OK);
            lq_test_quiet(0);
            free(buf); /* the handle owns copies of everything */
            if (pt) compare_tensors(pt, tensors, file);
            lq_pytorch_close(pt);
            n_good++;
        } else {
            const char *want = lq_json_get_str(lq_json_get(e, "error"));
            const char *frag = lq_json_get_str(lq_json_get(e, "message"));
            CU_ASSERT_FATAL(want && frag);
            lq_test_quiet(1);
            const lq_status st = lq_pytorch_open(path, &pt);
            const int       n_err = lq_test_errors_logged();
            const char     *msg = lq_test_last_error();
            if (st != status_of(want) || !contains(msg, frag) || !contains(msg, path))
                fprintf(stderr, "\n  %s: got %s '%s', want %s with '%s'\n", path, lq_status_str(st), msg, want, frag);
            CU_ASSERT_EQUAL(st, status_of(want));
            CU_ASSERT_PTR_NULL(pt);
            CU_ASSERT(n_err >= 1);
            CU_ASSERT(contains(msg, frag));
            CU_ASSERT(contains(msg, path)); /* every message names the file */
            lq_test_quiet(0);
            n_bad++;
        }
    }
    CU_ASSERT(n_good >= 10);
    CU_ASSERT(n_bad >= 8);
    lq_json_free(doc);
    free(text);
}

static void test_pytorch_tied_and_views(void) {
    lq_pytorch *pt = NULL;
    CU_ASSERT_EQUAL_FATAL(lq_pytorch_open(PT_DIR "tied.bin", &pt), LQ_OK);
    CU_ASSERT_EQUAL_FATAL(lq_pytorch_count(pt), 4);
    const lq_tensor_info *emb = lq_pytorch_tensor(pt, 0), *head = lq_pytorch_tensor(pt, 3);
    CU_ASSERT_STRING_EQUAL(emb->name, "embed.weight");
    CU_ASSERT_STRING_EQUAL(head->name, "lm_head.weight");
    CU_ASSERT_EQUAL(emb->alias_of, -1);
    CU_ASSERT_EQUAL(head->alias_of, 0);
    CU_ASSERT_PTR_EQUAL(emb->data, head->data); /* one storage, read once */
    CU_ASSERT_EQUAL(lq_pytorch_tensor(pt, 1)->alias_of, -1);
    CU_ASSERT_PTR_NULL(lq_pytorch_tensor(pt, 4));
    CU_ASSERT_PTR_NULL(lq_pytorch_tensor(pt, -1));
    lq_pytorch_close(pt);

    /* views of one storage are not aliases of each other */
    CU_ASSERT_EQUAL_FATAL(lq_pytorch_open(PT_DIR "views.bin", &pt), LQ_OK);
    for (int64_t i = 0; i < lq_pytorch_count(pt); i++) CU_ASSERT_EQUAL(lq_pytorch_tensor(pt, i)->alias_of, -1);
    lq_pytorch_close(pt);

    lq_pytorch_close(NULL);
    CU_ASSERT_EQUAL(lq_pytorch_count(NULL), 0);
}

static void test_pytorch_malicious(void) {
    static const struct {
        const char *file, *global;
    } cases[] = { { "malicious.bin", "posix.system" }, { "malicious_eval.bin", "builtins.eval" } };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, PT_DIR "%s", cases[i].file);
        lq_pytorch *pt = NULL;
        lq_test_quiet(1);
        CU_ASSERT_EQUAL(lq_pytorch_open(path, &pt), LQ_ERR_FORMAT);
        CU_ASSERT_PTR_NULL(pt);
        CU_ASSERT(contains(lq_test_last_error(), cases[i].global));
        CU_ASSERT(contains(lq_test_last_error(), "is not allowed (only state_dict globals are)"));
        lq_test_quiet(0);
    }
}

static void expect_refused(const char *file, lq_status want, const char *frag) {
    char path[256];
    snprintf(path, sizeof path, PT_DIR "%s", file);
    lq_pytorch *pt = NULL;
    lq_test_quiet(1);
    const lq_status st = lq_pytorch_open(path, &pt);
    if (st != want || !contains(lq_test_last_error(), frag))
        fprintf(stderr, "\n  %s: %s '%s'\n", file, lq_status_str(st), lq_test_last_error());
    CU_ASSERT_EQUAL(st, want);
    CU_ASSERT_PTR_NULL(pt);
    CU_ASSERT(contains(lq_test_last_error(), frag));
    lq_test_quiet(0);
}

static void test_pytorch_refuses(void) {
    expect_refused("legacy.bin", LQ_ERR_FORMAT, "legacy (pre-1.6) torch.save format; re-save with a recent PyTorch");
    expect_refused("torchscript.pt", LQ_ERR_FORMAT, "TorchScript archive, not a state_dict");
    expect_refused("byteorder_big.bin", LQ_ERR_UNSUPPORTED, "big-endian");
    expect_refused("bad_opcode.bin", LQ_ERR_FORMAT, "INT");
    expect_refused("short_storage.bin", LQ_ERR_FORMAT, "tensor 'w'");
    expect_refused("bad_offset_storage.bin", LQ_ERR_FORMAT, "bad_offset_storage.bin");
    expect_refused("bad_offset_pkl.bin", LQ_ERR_FORMAT, "bad_offset_pkl.bin");
    expect_refused("expected.json", LQ_ERR_FORMAT, "not a zip archive");
    expect_refused("does-not-exist.bin", LQ_ERR_IO, "does-not-exist.bin");

    lq_pytorch *pt = NULL;
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_pytorch_open_memory(NULL, 0, NULL, &pt), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(lq_pytorch_open_memory("PK\x03\x04", 4, NULL, &pt), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(lq_pytorch_open_memory(NULL, 5, NULL, &pt), LQ_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(lq_pytorch_open_memory("x", 1, NULL, NULL), LQ_ERR_INVALID_ARG);
    lq_test_quiet(0);
}

/* every prefix of small archives is refused, none crashes */
static void test_pytorch_truncated(void) {
    static const char *const files[] = { "tied.bin", "special.bin", "proto4.bin" };
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char path[256];
        snprintf(path, sizeof path, PT_DIR "%s", files[f]);
        size_t   len;
        uint8_t *buf = lq_test_read_file(path, &len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
        lq_test_quiet(1);
        int accepted = 0;
        for (size_t n = 0; n < len; n++) {
            lq_pytorch     *pt = NULL;
            const lq_status st = open_exact(buf, n, &pt);
            if (st == LQ_OK) {
                fprintf(stderr, "\n  %s truncated to %zu bytes accepted\n", files[f], n);
                accepted++;
            }
            lq_pytorch_close(pt);
        }
        lq_test_quiet(0);
        CU_ASSERT_EQUAL(accepted, 0);
        lq_pytorch *pt = NULL;
        CU_ASSERT_EQUAL(open_exact(buf, len, &pt), LQ_OK);
        lq_pytorch_close(pt);
        free(buf);
    }
}

/* seeded byte flips in data.pkl; the zip is rebuilt so the CRC matches and
 * the pickle machine sees the mutation; also every truncation of the pickle */
static void test_pytorch_pickle_flips(void) {
    static const char *const files[] = { "tied.bin", "views.bin", "proto4.bin", "mixed.bin", "special.bin" };
    const int iters = 600;
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char path[256];
        snprintf(path, sizeof path, PT_DIR "%s", files[f]);
        int     n = 0;
        zowned *e = zowned_read(path, &n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        zentry *view = calloc((size_t)n, sizeof *view);
        for (int i = 0; i < n; i++) view[i] = (zentry){ e[i].name, e[i].data, e[i].len };
        int pk = -1;
        for (int i = 0; i < n; i++)
            if (strstr(e[i].name, "/data.pkl")) pk = i;
        CU_ASSERT_FATAL(pk >= 0);
        uint8_t *orig = malloc(e[pk].len);
        memcpy(orig, e[pk].data, e[pk].len);
        const size_t orig_len = e[pk].len;

        uint64_t seed = 0x5eed0000u + f, state = seed;
        int      n_ok = 0, bad = 0;
        lq_test_quiet(1);
        for (int it = 0; it < iters; it++) {
            memcpy(e[pk].data, orig, orig_len);
            const int flips = 1 + (int)(lq_test_rand(&state) % 4);
            for (int k = 0; k < flips; k++) {
                const size_t at = (size_t)(lq_test_rand(&state) % orig_len);
                e[pk].data[at]  = (k & 1) ? (uint8_t)lq_test_rand(&state) : (uint8_t)(e[pk].data[at] ^ (1u << (lq_test_rand(&state) % 8)));
            }
            bbuf z = { 0 };
            zip_build(&z, view, n);
            lq_pytorch *pt = NULL;
            if (open_exact(z.p, z.n, &pt) == LQ_OK) {
                n_ok++;
                if (check_tensors(pt)) {
                    fprintf(stderr, "\n  %s: inconsistent tensors (seed %llu, test nb %d)\n", files[f],
                            (unsigned long long)seed, it);
                    bad++;
                }
            }
            lq_pytorch_close(pt);
            free(z.p);
        }
        /* every strict prefix of the pickle lacks STOP */
        int accepted = 0;
        memcpy(e[pk].data, orig, orig_len);
        for (size_t cut = 0; cut < orig_len; cut++) {
            view[pk].len = cut;
            bbuf z       = { 0 };
            zip_build(&z, view, n);
            lq_pytorch *pt = NULL;
            accepted += open_exact(z.p, z.n, &pt) == LQ_OK;
            lq_pytorch_close(pt);
            free(z.p);
        }
        lq_test_quiet(0);
        CU_ASSERT_EQUAL(bad, 0);
        CU_ASSERT_EQUAL(accepted, 0);
        CU_ASSERT(n_ok < iters); /* the mutations do reach the parser */
        free(orig);
        free(view);
        zowned_free(e, n);
    }
}

/* ==== out of memory ==== */

typedef struct {
    long budget; /* allocations left before failing */
    long live;
} fail_alloc;

static void *failing_alloc(size_t size, void *opaque) {
    fail_alloc *const fa = opaque;
    if (fa->budget-- <= 0) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, 64, size ? size : 1) != 0) return NULL;
    fa->live++;
    return p;
}

static void failing_free(void *p, void *opaque) {
    fail_alloc *const fa = opaque;
    if (p) fa->live--;
    free(p);
}

/* every allocation of the reader fails in turn: LQ_ERR_NOMEM, nothing leaked */
static void test_pytorch_nomem_paths(void) {
    static const char *const files[] = { "views.bin", "tied.bin", "mixed.bin" };
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char path[256];
        snprintf(path, sizeof path, PT_DIR "%s", files[f]);
        size_t   len;
        uint8_t *buf = lq_test_read_file(path, &len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
        fail_alloc         fa = { 0, 0 };
        const lq_allocator a  = { failing_alloc, failing_free, &fa };
        int                ok = 0, n_fail = 0;
        lq_test_quiet(1);
        for (long budget = 0; budget < 100000 && !ok; budget++) {
            fa.budget = budget;
            fa.live   = 0;
            lq_set_allocator(&a);
            lq_pytorch     *pt = NULL;
            const lq_status st = lq_pytorch_open_memory(buf, len, files[f], &pt);
            if (st == LQ_OK) CU_ASSERT_EQUAL(check_tensors(pt), 0);
            lq_pytorch_close(pt);
            const long live = fa.live;
            lq_set_allocator(NULL);
            ok = st == LQ_OK;
            n_fail += st == LQ_ERR_NOMEM;
            char msg[160];
            snprintf(msg, sizeof msg, "%s, budget %ld: status %s, %ld allocations leaked", files[f], budget,
                     lq_status_str(st), live);
            CU_assertImplementation((st == LQ_OK || st == LQ_ERR_NOMEM) && live == 0, __LINE__, msg, __FILE__, "",
                                    CU_FALSE);
        }
        lq_test_quiet(0);
        CU_ASSERT(ok);
        CU_ASSERT(n_fail > 10);
        free(buf);
    }
}

/* ==== hand-assembled archives ==== */

static lq_status open_torch(const bbuf *pkl, const zstorage *s, int n_s, lq_pytorch **pt) {
    bbuf z = { 0 };
    zip_torch(&z, pkl, s, n_s);
    const lq_status st = open_exact(z.p, z.n, pt);
    free(z.p);
    return st;
}

static void test_pytorch_strides(void) {
    float storage[12];
    for (int i = 0; i < 12; i++) storage[i] = (float)i;
    const zstorage s[] = { { "0", storage, sizeof storage } };
    bbuf           p   = { 0 };
    pk_begin(&p);
    pk_str(&p, "t"); /* transpose of (2,6) viewed as (6,2) with strides (1,6) */
    pk_tensor(&p, "FloatStorage", "0", 12, 0, 2, (int64_t[]){ 6, 2 }, (int64_t[]){ 1, 6 });
    pk_str(&p, "bcast"); /* row 1..3 broadcast to 3 rows */
    pk_tensor(&p, "FloatStorage", "0", 12, 1, 2, (int64_t[]){ 3, 3 }, (int64_t[]){ 0, 1 });
    pk_str(&p, "slice"); /* offset 5, every 3rd element */
    pk_tensor(&p, "FloatStorage", "0", 12, 5, 1, (int64_t[]){ 3 }, (int64_t[]){ 3 });
    pk_str(&p, "t2"); /* the same view as "t": an alias sharing the copy */
    pk_tensor(&p, "FloatStorage", "0", 12, 0, 2, (int64_t[]){ 6, 2 }, (int64_t[]){ 1, 6 });
    pk_str(&p, "empty"); /* zero-size, offset past the end: never read */
    pk_tensor(&p, "FloatStorage", "0", 12, 99, 2, (int64_t[]){ 0, 5 }, (int64_t[]){ 5, 1 });
    pk_str(&p, "ones"); /* size-1 dims with arbitrary strides are still contiguous */
    pk_tensor(&p, "FloatStorage", "0", 12, 2, 3, (int64_t[]){ 1, 2, 1 }, (int64_t[]){ 77, 1, 99 });
    pk_str(&p, "scalar");
    pk_tensor(&p, "FloatStorage", "0", 12, 11, 0, NULL, NULL);
    pk_str(&p, "cube"); /* (2,2,2) permuted: strides (1,4,2) over 8 elements */
    pk_tensor(&p, "FloatStorage", "0", 12, 0, 3, (int64_t[]){ 2, 2, 2 }, (int64_t[]){ 1, 4, 2 });
    pk_end(&p);
    lq_pytorch *pt = NULL;
    CU_ASSERT_EQUAL_FATAL(open_torch(&p, s, 1, &pt), LQ_OK);
    CU_ASSERT_EQUAL_FATAL(lq_pytorch_count(pt), 8);
    const float *t = lq_pytorch_tensor(pt, 0)->data;
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 2; j++) CU_ASSERT_EQUAL(t[i * 2 + j], (float)(i + 6 * j));
    const float *b = lq_pytorch_tensor(pt, 1)->data;
    for (int i = 0; i < 9; i++) CU_ASSERT_EQUAL(b[i], (float)(1 + i % 3));
    const float *sl = lq_pytorch_tensor(pt, 2)->data;
    CU_ASSERT(sl[0] == 5.f && sl[1] == 8.f && sl[2] == 11.f);
    CU_ASSERT_EQUAL(lq_pytorch_tensor(pt, 3)->alias_of, 0);
    CU_ASSERT_PTR_EQUAL(lq_pytorch_tensor(pt, 3)->data, lq_pytorch_tensor(pt, 0)->data);
    CU_ASSERT_EQUAL(lq_pytorch_tensor(pt, 4)->nbytes, 0);
    CU_ASSERT_PTR_NOT_NULL(lq_pytorch_tensor(pt, 4)->data);
    const float *ones = lq_pytorch_tensor(pt, 5)->data;
    CU_ASSERT(ones[0] == 2.f && ones[1] == 3.f);
    CU_ASSERT_EQUAL(lq_pytorch_tensor(pt, 6)->n_dims, 0);
    CU_ASSERT_EQUAL(*(const float *)lq_pytorch_tensor(pt, 6)->data, 11.f);
    const float *c = lq_pytorch_tensor(pt, 7)->data;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            for (int k = 0; k < 2; k++) CU_ASSERT_EQUAL(c[i * 4 + j * 2 + k], (float)(i + 4 * j + 2 * k));
    lq_pytorch_close(pt);
    free(p.p);
}

/* one tensor "w" over storage "0" of `numel` f32 holding `bytes` bytes */
static lq_status open_one(int64_t numel, size_t bytes, int64_t offset, int n_dims, const int64_t *shape,
                          const int64_t *stride) {
    static uint8_t zeros[4096];
    const zstorage s[] = { { "0", zeros, bytes } };
    bbuf           p   = { 0 };
    pk_begin(&p);
    pk_str(&p, "w");
    pk_tensor(&p, "FloatStorage", "0", numel, offset, n_dims, shape, stride);
    pk_end(&p);
    lq_pytorch *pt = NULL;
    lq_test_quiet(1); /* resets the last error; the caller turns quiet off */
    const lq_status st = open_torch(&p, s, 1, &pt);
    if (st == LQ_OK) CU_ASSERT_EQUAL(check_tensors(pt), 0);
    lq_pytorch_close(pt);
    free(p.p);
    return st;
}

static void test_pytorch_view_bounds(void) {
    CU_ASSERT_EQUAL(open_one(6, 24, 0, 2, (int64_t[]){ 2, 3 }, (int64_t[]){ 3, 1 }), LQ_OK);
    /* one element past the storage */
    CU_ASSERT_EQUAL(open_one(6, 24, 1, 2, (int64_t[]){ 2, 3 }, (int64_t[]){ 3, 1 }), LQ_ERR_FORMAT);
    CU_ASSERT(contains(lq_test_last_error(), "tensor 'w'"));
    CU_ASSERT(contains(lq_test_last_error(), "mem.bin"));
    CU_ASSERT_EQUAL(open_one(6, 24, 0, 2, (int64_t[]){ 2, 3 }, (int64_t[]){ 4, 1 }), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(open_one(6, 24, 6, 1, (int64_t[]){ 1 }, (int64_t[]){ 1 }), LQ_ERR_FORMAT);
    /* storage entry size differs from the persistent id */
    CU_ASSERT_EQUAL(open_one(6, 20, 0, 1, (int64_t[]){ 5 }, (int64_t[]){ 1 }), LQ_ERR_FORMAT);
    CU_ASSERT(contains(lq_test_last_error(), "tensor 'w'"));
    CU_ASSERT_EQUAL(open_one(6, 28, 0, 1, (int64_t[]){ 5 }, (int64_t[]){ 1 }), LQ_ERR_FORMAT);
    /* extent and element-count overflows */
    CU_ASSERT_EQUAL(open_one(6, 24, 0, 2, (int64_t[]){ 5, 1 }, (int64_t[]){ INT64_C(1) << 62, 1 }), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(open_one(6, 24, 0, 8, (int64_t[]){ 2, 2, 2, 2, 2, 2, 2, 2 },
                             (int64_t[]){ INT64_C(1) << 61, INT64_C(1) << 61, INT64_C(1) << 61, INT64_C(1) << 61,
                                          INT64_C(1) << 61, INT64_C(1) << 61, INT64_C(1) << 61, INT64_C(1) << 61 }),
                    LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(open_one(6, 24, 0, 2, (int64_t[]){ INT64_C(1) << 40, INT64_C(1) << 40 }, (int64_t[]){ 0, 0 }),
                    LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(open_one(INT64_C(1) << 62, 24, 0, 1, (int64_t[]){ 1 }, (int64_t[]){ 1 }), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(open_one(INT64_MAX, 24, INT64_MAX, 1, (int64_t[]){ 1 }, (int64_t[]){ 1 }), LQ_ERR_FORMAT);
    /* all-broadcast over a one-element storage is fine */
    CU_ASSERT_EQUAL(open_one(1, 4, 0, 3, (int64_t[]){ 4, 5, 6 }, (int64_t[]){ 0, 0, 0 }), LQ_OK);
    /* ranks */
    CU_ASSERT_EQUAL(open_one(6, 24, 0, 8, (int64_t[]){ 1, 1, 1, 1, 1, 1, 2, 3 }, (int64_t[]){ 6, 6, 6, 6, 6, 6, 3, 1 }),
                    LQ_OK);
    CU_ASSERT_EQUAL(open_one(6, 24, 0, 9, (int64_t[]){ 1, 1, 1, 1, 1, 1, 1, 2, 3 },
                             (int64_t[]){ 6, 6, 6, 6, 6, 6, 6, 3, 1 }),
                    LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(open_one(6, 24, 0, 1, (int64_t[]){ 3 }, (int64_t[]){ -1 }), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(open_one(6, 24, 0, 1, (int64_t[]){ -3 }, (int64_t[]){ 1 }), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(open_one(6, 24, -1, 1, (int64_t[]){ 3 }, (int64_t[]){ 1 }), LQ_ERR_FORMAT);
}

static void test_pytorch_archive_layout(void) {
    bbuf p = { 0 };
    pk_begin(&p);
    pk_end(&p);
    float          f[2] = { 1, 2 };
    lq_pytorch    *pt   = NULL;
    bbuf           z    = { 0 };

    /* an empty state dict is fine, the top folder name is not fixed */
    zentry ok[] = { { "whatever-name/data.pkl", p.p, p.n } };
    zip_build(&z, ok, 1);
    CU_ASSERT_EQUAL(open_exact(z.p, z.n, &pt), LQ_OK);
    CU_ASSERT_EQUAL(lq_pytorch_count(pt), 0);
    lq_pytorch_close(pt);
    pt  = NULL;
    z.n = 0;

    lq_test_quiet(1);
    /* no top folder */
    zentry flat[] = { { "data.pkl", p.p, p.n } };
    zip_build(&z, flat, 1);
    CU_ASSERT_EQUAL(open_exact(z.p, z.n, &pt), LQ_ERR_FORMAT);
    z.n = 0;
    /* data.pkl missing */
    zentry nopkl[] = { { "m/data/0", (const uint8_t *)f, sizeof f } };
    zip_build(&z, nopkl, 1);
    CU_ASSERT_EQUAL(open_exact(z.p, z.n, &pt), LQ_ERR_FORMAT);
    CU_ASSERT(contains(lq_test_last_error(), "m/data.pkl"));
    z.n = 0;
    /* TorchScript by constants.pkl alone */
    zentry ts[] = { { "m/data.pkl", p.p, p.n }, { "m/constants.pkl", p.p, p.n } };
    zip_build(&z, ts, 2);
    CU_ASSERT_EQUAL(open_exact(z.p, z.n, &pt), LQ_ERR_FORMAT);
    CU_ASSERT(contains(lq_test_last_error(), "TorchScript"));
    z.n = 0;
    /* byteorder */
    zentry bo[] = { { "m/data.pkl", p.p, p.n }, { "m/byteorder", (const uint8_t *)"middle", 6 } };
    zip_build(&z, bo, 2);
    CU_ASSERT_EQUAL(open_exact(z.p, z.n, &pt), LQ_ERR_FORMAT);
    z.n = 0;
    bo[1] = (zentry){ "m/byteorder", (const uint8_t *)"big", 3 };
    zip_build(&z, bo, 2);
    CU_ASSERT_EQUAL(open_exact(z.p, z.n, &pt), LQ_ERR_UNSUPPORTED);
    z.n = 0;
    bo[1] = (zentry){ "m/byteorder", (const uint8_t *)"little", 6 };
    zip_build(&z, bo, 2);
    CU_ASSERT_EQUAL(open_exact(z.p, z.n, &pt), LQ_OK);
    lq_pytorch_close(pt);
    pt  = NULL;
    z.n = 0;

    /* a storage that is referenced but absent */
    bbuf q = { 0 };
    pk_begin(&q);
    pk_str(&q, "w");
    pk_tensor(&q, "FloatStorage", "7", 2, 0, 1, (int64_t[]){ 2 }, (int64_t[]){ 1 });
    pk_end(&q);
    const zstorage other[] = { { "0", f, sizeof f } };
    CU_ASSERT_EQUAL(open_torch(&q, other, 1, &pt), LQ_ERR_FORMAT);
    CU_ASSERT(contains(lq_test_last_error(), "tensor 'w'"));
    CU_ASSERT(contains(lq_test_last_error(), "m/data/7"));
    lq_test_quiet(0);
    free(q.p);
    free(z.p);
    free(p.p);
}

/* ==== the pickle machine directly ==== */

static lq_status run_pickle(const bbuf *b, lq__pt_state_dict *sd) {
    uint8_t *copy = malloc(b->n ? b->n : 1);
    if (b->n) memcpy(copy, b->p, b->n);
    lq_test_quiet(1); /* resets the last error; the caller turns quiet off */
    const lq_status st = lq__pickle_state_dict(copy, b->n, "t.pkl", sd);
    free(copy);
    return st;
}

static lq_status run_bytes(const char *bytes, size_t n) {
    bbuf b = { 0 };
    bb_put(&b, bytes, n);
    lq__pt_state_dict sd;
    const lq_status   st = run_pickle(&b, &sd);
    lq__pickle_state_dict_free(&sd);
    free(b.p);
    return st;
}
#define RUN(lit) run_bytes(lit, sizeof(lit) - 1)

static void test_pytorch_pickle_opcodes(void) {
    /* every byte that is not a supported opcode is refused, by name and offset */
    static const uint8_t supported[] = { '(', '.', 'G', 'J', 'K', 'M', 'N', 'Q', 'R', 'X', 'a', 'b',
                                         'c', 'e', 'h', 'j', 'q', 'r', 's', 't', 'u', ')', ']', '}',
                                         0x80, 0x81, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8c, 0x8d,
                                         0x93, 0x94, 0x95 };
    int n_refused = 0;
    for (int op = 0; op < 256; op++) {
        if (memchr(supported, op, sizeof supported)) continue;
        const char bytes[] = { (char)0x80, 2, (char)op, '.', '.', '.', '.', '.', '.', '.', '.', '.' };
        CU_ASSERT_EQUAL(run_bytes(bytes, sizeof bytes), LQ_ERR_FORMAT);
        char want[64];
        snprintf(want, sizeof want, "opcode 0x%02x", op);
        CU_ASSERT(contains(lq_test_last_error(), want));
        CU_ASSERT(contains(lq_test_last_error(), "byte 2"));
        CU_ASSERT(contains(lq_test_last_error(), "t.pkl"));
        n_refused++;
    }
    CU_ASSERT_EQUAL(n_refused, 256 - (int)sizeof supported);
    CU_ASSERT(RUN("\x80\x02(I1\n.") == LQ_ERR_FORMAT && contains(lq_test_last_error(), "(INT)"));
    CU_ASSERT(RUN("\x80\x02\x8f.") == LQ_ERR_FORMAT && contains(lq_test_last_error(), "EMPTY_SET"));

    CU_ASSERT_EQUAL(RUN("\x80\x02}."), LQ_OK);
    CU_ASSERT_EQUAL(RUN("\x80\x06}."), LQ_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(RUN(""), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(RUN("\x80\x02}"), LQ_ERR_FORMAT);  /* no STOP */
    CU_ASSERT_EQUAL(RUN("\x80\x02."), LQ_ERR_FORMAT);  /* STOP on an empty stack */
    CU_ASSERT_EQUAL(RUN("\x80\x02]."), LQ_ERR_FORMAT); /* not a dict */
    CU_ASSERT(contains(lq_test_last_error(), "not a dict"));
    CU_ASSERT_EQUAL(RUN("\x80\x02}(."), LQ_ERR_FORMAT); /* STOP right after MARK: empty frame */
    CU_ASSERT_EQUAL(RUN("\x80\x02t."), LQ_ERR_FORMAT);  /* TUPLE without MARK */
    CU_ASSERT_EQUAL(RUN("\x80\x02}(X\x01\x00\x00\x00" "au."), LQ_ERR_FORMAT); /* odd SETITEMS */
    CU_ASSERT_EQUAL(RUN("\x80\x02(}u."), LQ_ERR_FORMAT); /* SETITEMS with nothing below the MARK */
    CU_ASSERT_EQUAL(RUN("\x80\x02}]a."), LQ_ERR_FORMAT); /* APPEND onto a dict */
    CU_ASSERT_EQUAL(RUN("\x80\x02}X\x01\x00\x00\x00" "a\x85s."), LQ_ERR_FORMAT); /* SETITEM underflow */
    /* strings longer than the input */
    CU_ASSERT_EQUAL(RUN("\x80\x02X\xff\xff\xff\xff."), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(RUN("\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\xff."), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(RUN("\x80\x04\x8c\x05" "ab."), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(RUN("\x80\x04\x95\xff\x00\x00\x00\x00\x00\x00\x00}."), LQ_ERR_FORMAT); /* FRAME past end */
    CU_ASSERT_EQUAL(RUN("\x80\x02\x8a\xff."), LQ_ERR_FORMAT);
    /* memo */
    CU_ASSERT_EQUAL(RUN("\x80\x02}q\x00h\x00."), LQ_OK);
    CU_ASSERT_EQUAL(RUN("\x80\x02}h\x01."), LQ_ERR_FORMAT);
    CU_ASSERT(contains(lq_test_last_error(), "memo index 1 is not set"));
    CU_ASSERT_EQUAL(RUN("\x80\x02}r\xff\xff\xff\xff."), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(RUN("\x80\x02}j\xff\xff\xff\x7f."), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(RUN("\x80\x02q\x00}."), LQ_ERR_FORMAT); /* BINPUT on an empty stack */
    CU_ASSERT_EQUAL(RUN("\x80\x04}\x94h\x00."), LQ_OK);
    /* globals */
    CU_ASSERT_EQUAL(RUN("\x80\x02" "cos\nsystem\n."), LQ_ERR_FORMAT);
    CU_ASSERT(contains(lq_test_last_error(), "global 'os.system' is not allowed"));
    CU_ASSERT_EQUAL(RUN("\x80\x02" "c__builtin__\ngetattr\n."), LQ_ERR_FORMAT);
    CU_ASSERT(contains(lq_test_last_error(), "__builtin__.getattr"));
    CU_ASSERT_EQUAL(RUN("\x80\x02" "ctorch\nFloatStorage"), LQ_ERR_FORMAT); /* unterminated line */
    CU_ASSERT_EQUAL(RUN("\x80\x02" "ctorch\x00x\nTensor\n."), LQ_ERR_FORMAT);
    CU_ASSERT(contains(lq_test_last_error(), "torch\\x00x.Tensor"));
    CU_ASSERT_EQUAL(RUN("\x80\x04\x8c\x05posix\x8c\x06system\x93."), LQ_ERR_FORMAT);
    CU_ASSERT(contains(lq_test_last_error(), "posix.system"));
    CU_ASSERT_EQUAL(RUN("\x80\x04K\x01K\x02\x93."), LQ_ERR_FORMAT); /* STACK_GLOBAL of ints */
    CU_ASSERT_EQUAL(RUN("\x80\x02" "ccollections\nOrderedDict\n)R."), LQ_OK);
    CU_ASSERT_EQUAL(RUN("\x80\x02" "ccollections\nOrderedDict\n)\x81."), LQ_OK);
    CU_ASSERT_EQUAL(RUN("\x80\x02" "ccollections\nOrderedDict\nK\x01\x85R."), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(RUN("\x80\x02" "ctorch\nFloatStorage\n)R."), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(RUN("\x80\x02K\x01)R."), LQ_ERR_FORMAT); /* REDUCE on an int */
    CU_ASSERT_EQUAL(RUN("\x80\x02" "ccollections\nOrderedDict\nK\x01R."), LQ_ERR_FORMAT); /* args not a tuple */
    /* BUILD drops the state (OrderedDict._metadata) */
    CU_ASSERT_EQUAL(RUN("\x80\x02}}b."), LQ_OK);
    CU_ASSERT_EQUAL(RUN("\x80\x02}b."), LQ_ERR_FORMAT);
    /* floats, bools, None, big ints as values are skipped */
    CU_ASSERT_EQUAL(RUN("\x80\x02}(X\x01\x00\x00\x00" "aG?\xf0\x00\x00\x00\x00\x00\x00X\x01\x00\x00\x00" "b\x88"
                        "X\x01\x00\x00\x00" "cNX\x01\x00\x00\x00" "d\x8a\x09\x01\x02\x03\x04\x05\x06\x07\x08\x09u."),
                    LQ_OK);
}

static void test_pytorch_pickle_limits(void) {
    /* 70000 nested MARKs */
    bbuf b = { 0 };
    bb_u8(&b, 0x80);
    bb_u8(&b, 2);
    for (int i = 0; i < 70000; i++) bb_u8(&b, '(');
    bb_u8(&b, '.');
    lq__pt_state_dict sd;
    CU_ASSERT_EQUAL(run_pickle(&b, &sd), LQ_ERR_FORMAT);
    CU_ASSERT(contains(lq_test_last_error(), "MARK"));
    b.n = 0;
    /* a stack of 1.5M items (memo'd None pushed again and again) */
    bb_u8(&b, 0x80);
    bb_u8(&b, 2);
    bb_u8(&b, 'N');
    bb_u8(&b, 'q');
    bb_u8(&b, 0);
    for (int i = 0; i < 1500000; i++) {
        bb_u8(&b, 'h');
        bb_u8(&b, 0);
    }
    bb_u8(&b, '.');
    CU_ASSERT_EQUAL(run_pickle(&b, &sd), LQ_ERR_FORMAT);
    CU_ASSERT(contains(lq_test_last_error(), "stack deeper"));
    b.n = 0;
    /* a list that contains itself, under a state_dict key: skipped, no recursion */
    CU_ASSERT_EQUAL(RUN("\x80\x02}X\x01\x00\x00\x00" "a]q\x00h\x00" "as."), LQ_OK);
    CU_ASSERT_EQUAL(RUN("\x80\x02}q\x00X\x01\x00\x00\x00" "ah\x00s."), LQ_OK); /* dict inside itself */
    free(b.p);
}

static void test_pytorch_pickle_state_dict(void) {
    bbuf              b = { 0 };
    lq__pt_state_dict sd;
    /* wrappers: {"model": {...}} unwrapped; a nested non-tensor dict skipped */
    pk_begin(&b);
    pk_str(&b, "epoch");
    pk_int(&b, 7);
    pk_str(&b, "model");
    bb_u8(&b, '}');
    bb_u8(&b, '(');
    pk_str(&b, "a");
    pk_tensor(&b, "HalfStorage", "0", 4, 0, 1, (int64_t[]){ 4 }, (int64_t[]){ 1 });
    pk_str(&b, "cfg");
    bb_u8(&b, '}');
    pk_str(&b, "b");
    pk_tensor(&b, "HalfStorage", "0", 4, 2, 1, (int64_t[]){ 2 }, (int64_t[]){ 1 });
    bb_u8(&b, 'u');
    pk_end(&b);
    CU_ASSERT_EQUAL_FATAL(run_pickle(&b, &sd), LQ_OK);
    CU_ASSERT_EQUAL(sd.n_records, 2);
    CU_ASSERT_EQUAL(sd.n_storages, 1);
    CU_ASSERT_STRING_EQUAL(sd.records[0].name, "a");
    CU_ASSERT_STRING_EQUAL(sd.records[1].name, "b");
    CU_ASSERT_EQUAL(sd.records[1].offset, 2);
    CU_ASSERT_EQUAL(sd.storages[0].dtype, LQ_DTYPE_F16);
    CU_ASSERT_STRING_EQUAL(sd.storages[0].key, "0");
    lq__pickle_state_dict_free(&sd);
    lq__pickle_state_dict_free(&sd); /* idempotent */
    b.n = 0;

    /* "state_dict" whose value holds no tensor is not unwrapped */
    pk_begin(&b);
    pk_str(&b, "state_dict");
    bb_u8(&b, '}');
    pk_str(&b, "w");
    pk_tensor(&b, "LongStorage", "k_1", 3, 0, 1, (int64_t[]){ 3 }, (int64_t[]){ 1 });
    pk_end(&b);
    CU_ASSERT_EQUAL_FATAL(run_pickle(&b, &sd), LQ_OK);
    CU_ASSERT_EQUAL(sd.n_records, 1);
    CU_ASSERT_EQUAL(sd.storages[0].dtype, LQ_DTYPE_I64);
    lq__pickle_state_dict_free(&sd);
    b.n = 0;

    /* _rebuild_parameter and _rebuild_from_type_v2 around _rebuild_tensor_v2 */
    pk_begin(&b);
    pk_str(&b, "p");
    pk_global(&b, "torch._utils", "_rebuild_parameter");
    bb_u8(&b, '(');
    pk_tensor(&b, "BFloat16Storage", "0", 2, 0, 1, (int64_t[]){ 2 }, (int64_t[]){ 1 });
    bb_u8(&b, 0x88);
    bb_u8(&b, '}');
    bb_u8(&b, 't');
    bb_u8(&b, 'R');
    pk_str(&b, "q");
    pk_global(&b, "torch._tensor", "_rebuild_from_type_v2");
    bb_u8(&b, '(');
    pk_global(&b, "torch._utils", "_rebuild_tensor_v2");
    bb_u8(&b, 'N');
    bb_u8(&b, '(');
    bb_u8(&b, '(');
    pk_str(&b, "storage");
    pk_global(&b, "torch", "BoolStorage");
    pk_str(&b, "1");
    pk_str(&b, "cpu");
    pk_int(&b, 3);
    bb_u8(&b, 't');
    bb_u8(&b, 'Q');
    pk_int(&b, 0);
    pk_int_tuple(&b, 1, (int64_t[]){ 3 });
    pk_int_tuple(&b, 1, (int64_t[]){ 1 });
    bb_u8(&b, 0x89);
    bb_u8(&b, '}');
    bb_u8(&b, 't');
    bb_u8(&b, '}');
    bb_u8(&b, 't');
    bb_u8(&b, 'R');
    pk_end(&b);
    CU_ASSERT_EQUAL_FATAL(run_pickle(&b, &sd), LQ_OK);
    CU_ASSERT_EQUAL(sd.n_records, 2);
    CU_ASSERT_EQUAL(sd.n_storages, 2);
    lq__pickle_state_dict_free(&sd);
    b.n = 0;

    /* duplicate names, inconsistent storages, bad keys, bad persistent ids */
    pk_begin(&b);
    pk_str(&b, "w");
    pk_tensor(&b, "FloatStorage", "0", 4, 0, 1, (int64_t[]){ 4 }, (int64_t[]){ 1 });
    pk_str(&b, "w");
    pk_tensor(&b, "FloatStorage", "0", 4, 0, 1, (int64_t[]){ 4 }, (int64_t[]){ 1 });
    pk_end(&b);
    CU_ASSERT_EQUAL(run_pickle(&b, &sd), LQ_ERR_FORMAT);
    CU_ASSERT(contains(lq_test_last_error(), "duplicate tensor name 'w'"));
    b.n = 0;
    pk_begin(&b);
    pk_str(&b, "a");
    pk_tensor(&b, "FloatStorage", "0", 4, 0, 1, (int64_t[]){ 4 }, (int64_t[]){ 1 });
    pk_str(&b, "b");
    pk_tensor(&b, "HalfStorage", "0", 8, 0, 1, (int64_t[]){ 4 }, (int64_t[]){ 1 });
    pk_end(&b);
    CU_ASSERT_EQUAL(run_pickle(&b, &sd), LQ_ERR_FORMAT);
    CU_ASSERT(contains(lq_test_last_error(), "storage '0'"));
    b.n = 0;
    static const char *const bad_keys[] = { "../../etc/passwd", "", "a/b", "x.y",
                                            "0123456789012345678901234567890123456789012345678901234567890123456789" };
    for (size_t k = 0; k < sizeof bad_keys / sizeof bad_keys[0]; k++) {
        pk_begin(&b);
        pk_str(&b, "w");
        pk_tensor(&b, "FloatStorage", bad_keys[k], 4, 0, 1, (int64_t[]){ 4 }, (int64_t[]){ 1 });
        pk_end(&b);
        CU_ASSERT_EQUAL(run_pickle(&b, &sd), LQ_ERR_FORMAT);
        CU_ASSERT(contains(lq_test_last_error(), "storage key"));
        b.n = 0;
    }
    /* a tensor name that is not UTF-8 */
    pk_begin(&b);
    pk_str(&b, "\xc0\xaf");
    pk_tensor(&b, "FloatStorage", "0", 4, 0, 1, (int64_t[]){ 4 }, (int64_t[]){ 1 });
    pk_end(&b);
    CU_ASSERT_EQUAL(run_pickle(&b, &sd), LQ_ERR_FORMAT);
    b.n = 0;
    CU_ASSERT_EQUAL(RUN("\x80\x02(X\x07\x00\x00\x00storageK\x01K\x02K\x03K\x04tQ."), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(RUN("\x80\x02K\x01Q."), LQ_ERR_FORMAT);
    /* _rebuild_tensor_v2 argument checks */
    CU_ASSERT_EQUAL(RUN("\x80\x02\x63torch._utils\n_rebuild_tensor_v2\n)R."), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(RUN("\x80\x02\x63torch._utils\n_rebuild_tensor_v2\n(NK\x00)))\x89}tR."), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(RUN("\x80\x02\x63torch._utils\n_rebuild_parameter\n(NNNtR."), LQ_ERR_FORMAT);
    CU_ASSERT_EQUAL(RUN("\x80\x02\x63torch._tensor\n_rebuild_from_type_v2\n(NNNNtR."), LQ_ERR_FORMAT);
    free(b.p);
}

CU_pSuite lq_test_pytorch_suite(void) {
    CU_pSuite s = lq_test_add_suite("pytorch");
    LQ_ADD_TEST(s, test_pytorch_expected);
    LQ_ADD_TEST(s, test_pytorch_tied_and_views);
    LQ_ADD_TEST(s, test_pytorch_malicious);
    LQ_ADD_TEST(s, test_pytorch_refuses);
    LQ_ADD_TEST(s, test_pytorch_truncated);
    LQ_ADD_TEST(s, test_pytorch_pickle_flips);
    LQ_ADD_TEST(s, test_pytorch_nomem_paths);
    LQ_ADD_TEST(s, test_pytorch_strides);
    LQ_ADD_TEST(s, test_pytorch_view_bounds);
    LQ_ADD_TEST(s, test_pytorch_archive_layout);
    LQ_ADD_TEST(s, test_pytorch_pickle_opcodes);
    LQ_ADD_TEST(s, test_pytorch_pickle_limits);
    LQ_ADD_TEST(s, test_pytorch_pickle_state_dict);
    return s;
}
