/* pickle_internal.h : the restricted pickle machine behind the PyTorch zip
 * reader (formats/pytorch_zip.c); not installed.
 *
 * lq__pickle_state_dict() interprets the `data.pkl` of a torch.save() zip
 * and returns the state_dict it describes as plain records: tensor names,
 * the storages they view (by zip key) and the view geometry. Nothing is
 * executed: opcodes run on a private stack and memo, and only the state_dict
 * globals are resolved (see pickle.c for the opcode list and the limits). */
#ifndef LQ_PICKLE_INTERNAL_H
#define LQ_PICKLE_INTERNAL_H

#include "lq_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* limits enforced by the machine (all data errors, LQ_ERR_FORMAT) */
#define LQ__PICKLE_MAX_STACK   (1u << 20) /* items on the stack, all frames     */
#define LQ__PICKLE_MAX_MARKS   (1u << 16) /* nested MARKs                       */
#define LQ__PICKLE_MAX_MEMO    (1u << 25) /* memo slots (also < input length)   */
#define LQ__PICKLE_MAX_GLOBAL  256        /* bytes of a GLOBAL module or name    */
#define LQ__PICKLE_MAX_KEY     64         /* bytes of a storage key              */

/* One storage, as named by the persistent ids ('storage', cls, key, loc, numel). */
typedef struct {
    char    *key;    /* owned, NUL-terminated; [A-Za-z0-9_-]+, the zip entry data/<key> */
    lq_dtype dtype;  /* from the storage class (FloatStorage -> F32, ...)             */
    uint64_t numel;  /* elements of `dtype` in the storage                            */
} lq__pt_storage;

/* One tensor of the state_dict: a strided view into a storage. */
typedef struct {
    char    *name;                  /* owned, NUL-terminated, valid UTF-8          */
    int64_t  storage;               /* index into lq__pt_state_dict.storages       */
    uint64_t offset;                /* storage offset in elements                  */
    int32_t  n_dims;                /* 0 .. LQ_MAX_DIMS                            */
    int64_t  shape[LQ_MAX_DIMS];    /* outermost first, each >= 0                  */
    int64_t  stride[LQ_MAX_DIMS];   /* in elements, each >= 0                      */
} lq__pt_record;

typedef struct {
    lq__pt_storage *storages;       /* unique by key                               */
    int64_t         n_storages;
    lq__pt_record  *records;        /* in pickle (insertion) order, unique names   */
    int64_t         n_records;
} lq__pt_state_dict;

/*! lq__pickle_state_dict() :
 *  Interprets `len` bytes of `buf` (a data.pkl) and fills `out` with the
 *  tensors of the top-level dict (OrderedDict or dict), unwrapping one level
 *  of {"state_dict": d} / {"model": d} when d is a dict holding tensors.
 *  Non-tensor values are skipped (nested dicts with a warning). `label`
 *  names the file in messages. `buf` is not retained. On failure `out` is
 *  left empty and the error has been logged.
 *  @return LQ_OK, LQ_ERR_FORMAT (malformed pickle, unknown opcode, global
 *          outside the whitelist, bad tensor arguments), LQ_ERR_UNSUPPORTED
 *          (pickle protocol > 5), LQ_ERR_NOMEM. */
lq_status lq__pickle_state_dict(const uint8_t *buf, size_t len, const char *label, lq__pt_state_dict *out);

/* frees everything `sd` owns and empties it; accepts an empty or NULL sd */
void lq__pickle_state_dict_free(lq__pt_state_dict *sd);

#ifdef __cplusplus
}
#endif
#endif /* LQ_PICKLE_INTERNAL_H */
