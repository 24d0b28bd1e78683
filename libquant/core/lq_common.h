/* lq_common.h : the shared core of libquant (public).
 *
 * Status codes, logging and progress callbacks, the allocator hook, the dtype
 * traits table with exact scalar conversions, and the non-owning strided
 * tensor view. Every other module depends on this header and on nothing
 * below it. Nothing here allocates behind the caller's back except through
 * lq_malloc()/lq_free(). */
#ifndef LQ_COMMON_H
#define LQ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LQ_VERSION_MAJOR 0
#define LQ_VERSION_MINOR 1
#define LQ_VERSION_PATCH 0
#define LQ_VERSION_STRING "0.1.0"

/* ==== status ==== */

/* Values are pinned forever: scripts and bindings may store them. */
typedef enum {
    LQ_OK              = 0,
    LQ_ERR_INVALID_ARG = 1, /* caller passed something out of contract        */
    LQ_ERR_NOMEM       = 2,
    LQ_ERR_IO          = 3, /* open/read/write/mmap failed (errno is logged)  */
    LQ_ERR_FORMAT      = 4, /* file content is malformed or violates its spec */
    LQ_ERR_UNSUPPORTED = 5, /* dtype/op/backend not available in this build   */
    LQ_ERR_SHAPE       = 6, /* tensor shapes/strides incompatible             */
    LQ_ERR_NUMERIC     = 7, /* e.g. Hessian not positive definite             */
    LQ_ERR_CUDA        = 8,
    LQ_ERR_CANCELLED   = 9, /* progress callback asked to stop                */
    LQ_ERR_NOT_FOUND   = 10 /* a named tensor/key/file does not exist         */
} lq_status;

/*! lq_status_str() : a short English name; never NULL, static storage. */
const char *lq_status_str(lq_status s);

/*! lq_version() : "MAJOR.MINOR.PATCH", static storage. */
const char *lq_version(void);

/* ==== logging and progress ==== */

typedef enum { LQ_LOG_ERROR = 0, LQ_LOG_WARN = 1, LQ_LOG_INFO = 2, LQ_LOG_DEBUG = 3 } lq_log_level;

/* Receives one complete message without a trailing newline. */
typedef void (*lq_log_fn)(lq_log_level level, const char *msg, void *user);

/*! lq_log_set() : install `fn` (NULL restores the default, which writes
 *  "libquant: error: msg\n" to stderr for levels <= lq_log_get_level()).
 *  Not thread-safe against concurrent logging; call it at start-up. */
void lq_log_set(lq_log_fn fn, void *user);
/*! lq_log_set_level() : the default sink drops messages above `level`
 *  (default LQ_LOG_WARN). A custom sink receives everything up to `level`. */
void         lq_log_set_level(lq_log_level level);
lq_log_level lq_log_get_level(void);

/* done in [0,1]; stage is a short label ("convert", "tensor 3/47").
 * A non-zero return cancels the operation with LQ_ERR_CANCELLED. */
typedef int (*lq_progress_fn)(float done, const char *stage, void *user);

/* ==== allocation ==== */

typedef struct {
    void *(*alloc)(size_t size, void *opaque); /* must return 64-byte aligned memory or NULL */
    void (*free)(void *ptr, void *opaque);
    void *opaque;
} lq_allocator;

/*! lq_set_allocator() : NULL restores malloc-based defaults. Call before any
 *  other libquant function. Memory handed out by libquant is freed with lq_free(). */
void  lq_set_allocator(const lq_allocator *a);
void *lq_malloc(size_t size);              /* 64-byte aligned, NULL on failure */
void *lq_calloc(size_t n, size_t size);    /* overflow-checked, zeroed        */
void  lq_free(void *p);                    /* accepts NULL                    */
char *lq_strdup(const char *s);            /* freed with lq_free              */

/* ==== dtypes ==== */

/* Every safetensors dtype. The order here is ours (pinned); the writer's
 * sort order is a traits field. */
typedef enum {
    LQ_DTYPE_BOOL = 0,
    LQ_DTYPE_U8,
    LQ_DTYPE_I8,
    LQ_DTYPE_I16,
    LQ_DTYPE_U16,
    LQ_DTYPE_I32,
    LQ_DTYPE_U32,
    LQ_DTYPE_I64,
    LQ_DTYPE_U64,
    LQ_DTYPE_F16,
    LQ_DTYPE_BF16,
    LQ_DTYPE_F32,
    LQ_DTYPE_F64,
    LQ_DTYPE_F8_E4M3,     /* OCP E4M3FN: no Inf, NaN = S.1111.111, max 448  */
    LQ_DTYPE_F8_E5M2,     /* OCP E5M2: IEEE-like, Inf and NaN, max 57344    */
    /* read as opaque bytes: listed, sized, copied, never converted */
    LQ_DTYPE_F8_E8M0,
    LQ_DTYPE_F8_E4M3FNUZ,
    LQ_DTYPE_F8_E5M2FNUZ,
    LQ_DTYPE_F4,          /* 4 bits per element  */
    LQ_DTYPE_F6_E2M3,     /* 6 bits per element  */
    LQ_DTYPE_F6_E3M2,
    LQ_DTYPE_C64,
    LQ_DTYPE_COUNT
} lq_dtype;

typedef struct {
    const char *name;          /* safetensors spelling, e.g. "BF16"             */
    const char *torch_name;    /* "torch.bfloat16"-style name ("" if none)      */
    uint32_t    bits;          /* bits per element                              */
    int32_t     st_order;      /* safetensors enum index (writer sorts on it)   */
    bool        is_float;
    bool        is_signed;
    bool        convertible;   /* lq_convert_ref/cpu() can read and write it    */
} lq_dtype_traits;

const lq_dtype_traits *lq_dtype_traits_of(lq_dtype t); /* NULL if out of range */
const char *lq_dtype_name(lq_dtype t);                  /* "?" if out of range */
/*! lq_dtype_from_name() : safetensors spelling (exact, case-sensitive).
 *  LQ_ERR_UNSUPPORTED for an unknown name; logs nothing (the caller names the file). */
lq_status lq_dtype_from_name(const char *name, size_t len, lq_dtype *out);
/* bytes of `n` elements; false on overflow or a sub-byte total that is not whole */
bool lq_dtype_nbytes(lq_dtype t, uint64_t n, uint64_t *out_bytes);

/* Exact scalar conversions. float -> narrow rounds to nearest, ties to even;
 * NaN stays NaN (quiet, sign kept); values beyond the largest finite value
 * become Inf for f16/bf16/e5m2 and NaN for e4m3 (which has no Inf) unless
 * `saturate` is used below. Subnormals are produced and read exactly. */
float    lq_f16_to_f32(uint16_t h);
uint16_t lq_f32_to_f16(float f);
float    lq_bf16_to_f32(uint16_t h);
uint16_t lq_f32_to_bf16(float f);
float    lq_e4m3_to_f32(uint8_t v);
uint8_t  lq_f32_to_e4m3(float f);          /* overflow -> NaN                 */
uint8_t  lq_f32_to_e4m3_sat(float f);      /* overflow -> +-448 (torch/TE)    */
float    lq_e5m2_to_f32(uint8_t v);
uint8_t  lq_f32_to_e5m2(float f);          /* overflow -> Inf                 */

/* ==== tensor view ==== */

#define LQ_MAX_DIMS 8

typedef enum { LQ_BACKEND_CPU = 0, LQ_BACKEND_CUDA = 1, LQ_BACKEND_AUTO = 2 } lq_backend;

/* Non-owning strided view, ggml vocabulary: ne[0] is the contiguous
 * dimension (columns), ne[1] rows, ... nb[] are strides in bytes.
 * For sub-byte dtypes only contiguous views are meaningful. */
typedef struct lq_tensor {
    lq_dtype    dtype;
    int32_t     n_dims;            /* 0 (scalar) .. LQ_MAX_DIMS              */
    int64_t     ne[LQ_MAX_DIMS];   /* elements per dim, ne[0] contiguous     */
    size_t      nb[LQ_MAX_DIMS];   /* stride in bytes per dim                */
    void       *data;              /* host or device pointer, see `backend`  */
    lq_backend  backend;
    const char *name;              /* borrowed, may be NULL                  */
} lq_tensor;

/*! lq_tensor_make() : a contiguous view over `data` from a shape given
 *  outermost first (the safetensors / PyTorch order). Returns LQ_ERR_SHAPE
 *  for n_dims > LQ_MAX_DIMS, negative dims, or an element count that overflows. */
lq_status lq_tensor_make(lq_tensor *t, lq_dtype dtype, int32_t n_dims, const int64_t *shape_outer_first,
                         void *data, const char *name);
int64_t lq_tensor_nelements(const lq_tensor *t);
bool    lq_tensor_is_contiguous(const lq_tensor *t);

/* ==== SHA-256 (FIPS 180-4), for reports and fixtures ==== */

typedef struct {
    uint32_t h[8];
    uint64_t n_bytes;
    uint8_t  buf[64];
    uint32_t n_buf;
} lq_sha256_ctx;

void lq_sha256_init(lq_sha256_ctx *c);
void lq_sha256_update(lq_sha256_ctx *c, const void *data, size_t n);
void lq_sha256_final(lq_sha256_ctx *c, uint8_t out[32]);
void lq_sha256(const void *data, size_t n, uint8_t out[32]);
/* 64 lowercase hex digits and a NUL */
void lq_sha256_hex(const uint8_t digest[32], char out[65]);

#ifdef __cplusplus
}
#endif
#endif /* LQ_COMMON_H */
