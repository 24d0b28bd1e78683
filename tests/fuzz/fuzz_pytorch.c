/* fuzz_pytorch.c : libFuzzer target for the PyTorch zip reader and its
 * restricted pickle machine.
 *
 * Two input forms:
 *   - anything not starting with "LQPK" goes to lq_pytorch_open_memory() as is
 *     (zip structure, libzip consistency checks, CRCs);
 *   - "LQPK", u8 n (<= 16), n x u32le storage sizes, then a data.pkl: the
 *     target wraps the pickle and n storages "m/data/0".."m/data/<n-1>" in a
 *     valid STORED zip (CRCs computed), so mutations reach the pickle machine
 *     instead of dying at the CRC check.
 * Every accepted checkpoint is walked: each tensor's bytes are read (ASan
 * catches a view outside its storage), nbytes must equal numel * itemsize,
 * and an alias must point to an earlier tensor with identical bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "lq_formats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_STORAGES 16
#define MAX_STORAGE_BYTES (1u << 16)

typedef struct {
    uint8_t *p;
    size_t   n, cap;
} buf;

static int put(buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n) cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) return -1;
        b->p   = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
    return 0;
}

static int put_le(buf *b, uint64_t v, int n) {
    uint8_t t[8];
    for (int i = 0; i < n; i++) t[i] = (uint8_t)(v >> (8 * i));
    return put(b, t, (size_t)n);
}

/* one STORED entry: local header + data into `z`, central record into `cd` */
static int add_entry(buf *z, buf *cd, const char *name, const uint8_t *d, size_t n) {
    const uint32_t crc = (uint32_t)crc32(0L, d, (uInt)n);
    const size_t   nl = strlen(name), ofs = z->n;
    int            e  = 0;
    e |= put_le(z, 0x04034b50, 4) | put_le(z, 20, 2) | put_le(z, 0, 2) | put_le(z, 0, 2) | put_le(z, 0, 2);
    e |= put_le(z, 0x21, 2) | put_le(z, crc, 4) | put_le(z, n, 4) | put_le(z, n, 4) | put_le(z, nl, 2);
    e |= put_le(z, 0, 2) | put(z, name, nl) | put(z, d, n);
    e |= put_le(cd, 0x02014b50, 4) | put_le(cd, 20, 2) | put_le(cd, 20, 2) | put_le(cd, 0, 2) | put_le(cd, 0, 2);
    e |= put_le(cd, 0, 2) | put_le(cd, 0x21, 2) | put_le(cd, crc, 4) | put_le(cd, n, 4) | put_le(cd, n, 4);
    e |= put_le(cd, nl, 2) | put_le(cd, 0, 2) | put_le(cd, 0, 2) | put_le(cd, 0, 2) | put_le(cd, 0, 2);
    e |= put_le(cd, 0, 4) | put_le(cd, ofs, 4) | put(cd, name, nl);
    return e;
}

/* the "LQPK" form into a zip; -1 when the header is malformed */
static int wrap(const uint8_t *data, size_t size, buf *z) {
    if (size < 5) return -1;
    const unsigned n = data[4];
    if (n > MAX_STORAGES || size < 5 + 4 * (size_t)n) return -1;
    static uint8_t fill[MAX_STORAGE_BYTES];
    for (size_t i = 0; i < sizeof fill; i++) fill[i] = (uint8_t)(i * 31 + 7);
    const uint8_t *pkl = data + 5 + 4 * n;
    const size_t   pkl_len = size - 5 - 4 * (size_t)n;
    buf            cd = { 0 };
    int            e  = add_entry(z, &cd, "m/data.pkl", pkl, pkl_len);
    for (unsigned i = 0; i < n && !e; i++) {
        const uint32_t len = (uint32_t)data[5 + 4 * i] | (uint32_t)data[6 + 4 * i] << 8 |
                             (uint32_t)data[7 + 4 * i] << 16 | (uint32_t)data[8 + 4 * i] << 24;
        char name[32];
        snprintf(name, sizeof name, "m/data/%u", i);
        e |= add_entry(z, &cd, name, fill, len % (MAX_STORAGE_BYTES + 1));
    }
    const size_t cd_off = z->n;
    e |= put(z, cd.p, cd.n) | put_le(z, 0x06054b50, 4) | put_le(z, 0, 4) | put_le(z, n + 1, 2);
    e |= put_le(z, n + 1, 2) | put_le(z, cd.n, 4) | put_le(z, cd_off, 4) | put_le(z, 0, 2);
    free(cd.p);
    return e ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    buf z = { 0 };
    if (size >= 4 && memcmp(data, "LQPK", 4) == 0) {
        if (wrap(data, size, &z) != 0) {
            free(z.p);
            return 0;
        }
        data = z.p;
        size = z.n;
    }
    lq_pytorch *pt = NULL;
    if (lq_pytorch_open_memory(data, size, "fuzz", &pt) == LQ_OK) {
        unsigned sum = 0;
        for (int64_t i = 0; i < lq_pytorch_count(pt); i++) {
            const lq_tensor_info *t = lq_pytorch_tensor(pt, i);
            uint64_t              numel, nbytes;
            if (!t || !t->data || !lq_tensor_info_numel(t, &numel) || !lq_dtype_nbytes(t->dtype, numel, &nbytes) ||
                nbytes != t->nbytes)
                abort();
            const uint8_t *p = t->data;
            for (uint64_t k = 0; k < t->nbytes; k++) sum += p[k];
            if (t->alias_of >= 0) {
                const lq_tensor_info *a = lq_pytorch_tensor(pt, t->alias_of);
                if (t->alias_of >= i || !a || a->nbytes != t->nbytes || memcmp(a->data, t->data, t->nbytes) != 0)
                    abort();
            }
        }
        (void)sum;
    }
    lq_pytorch_close(pt);
    free(z.p);
    return 0;
}
