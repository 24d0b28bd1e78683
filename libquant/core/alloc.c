/* alloc.c : the allocator hook (zstd customMem style) and the tensor view helpers. */
#include "lq_internal.h"

#include <stdlib.h>
#include <string.h>

static lq_allocator g_alloc;

void lq_set_allocator(const lq_allocator *a) {
    if (a && a->alloc && a->free)
        g_alloc = *a;
    else
        memset(&g_alloc, 0, sizeof g_alloc);
}

void *lq_malloc(size_t size) {
    if (size == 0) size = 1;
    if (g_alloc.alloc) return g_alloc.alloc(size, g_alloc.opaque);
    void *p = NULL;
    if (posix_memalign(&p, 64, size) != 0) return NULL;
    return p;
}

void *lq_calloc(size_t n, size_t size) {
    size_t total;
    if (!lq__mul_size(n, size, &total)) return NULL;
    void *p = lq_malloc(total);
    if (p) memset(p, 0, total);
    return p;
}

void lq_free(void *p) {
    if (!p) return;
    if (g_alloc.free)
        g_alloc.free(p, g_alloc.opaque);
    else
        free(p);
}

char *lq_strdup(const char *s) {
    const size_t n = strlen(s) + 1;
    char        *d = lq_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ==== tensor view ==== */

lq_status lq_tensor_make(lq_tensor *t, lq_dtype dtype, int32_t n_dims, const int64_t *shape, void *data,
                         const char *name) {
    const lq_dtype_traits *tr = lq_dtype_traits_of(dtype);
    LQ_RETURN_IF(!t || !tr, LQ_ERR_INVALID_ARG, "bad tensor or dtype");
    LQ_RETURN_IF(n_dims < 0 || n_dims > LQ_MAX_DIMS, LQ_ERR_SHAPE, "%s: rank %d outside 0..%d",
                 name ? name : "tensor", (int)n_dims, LQ_MAX_DIMS);
    memset(t, 0, sizeof *t);
    t->dtype  = dtype;
    t->n_dims = n_dims;
    t->data   = data;
    t->name   = name;
    uint64_t stride_bits = tr->bits;
    for (int d = 0; d < LQ_MAX_DIMS; d++) {
        t->ne[d] = 1;
        t->nb[d] = 0;
    }
    for (int d = 0; d < n_dims; d++) {
        const int64_t n = shape[n_dims - 1 - d];
        LQ_RETURN_IF(n < 0, LQ_ERR_SHAPE, "%s: negative dimension", name ? name : "tensor");
        t->ne[d] = n;
        t->nb[d] = (size_t)(stride_bits / 8);
        LQ_RETURN_IF(!lq__mul_u64(stride_bits, (uint64_t)(n ? n : 1), &stride_bits), LQ_ERR_SHAPE,
                     "%s: element count overflows", name ? name : "tensor");
    }
    for (int d = n_dims; d < LQ_MAX_DIMS; d++) t->nb[d] = (size_t)(stride_bits / 8);
    return LQ_OK;
}

int64_t lq_tensor_nelements(const lq_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->n_dims; d++) n *= t->ne[d];
    return n;
}

bool lq_tensor_is_contiguous(const lq_tensor *t) {
    const lq_dtype_traits *tr = lq_dtype_traits_of(t->dtype);
    if (!tr) return false;
    uint64_t expect_bits = tr->bits;
    for (int d = 0; d < t->n_dims; d++) {
        if (t->ne[d] != 1 && (uint64_t)t->nb[d] * 8 != expect_bits) return false;
        expect_bits *= (uint64_t)t->ne[d];
    }
    return true;
}
