/* lq_internal.h : helpers shared inside libquant; not installed, not for tools/.
 *
 * Assertions (programmer errors abort), error propagation macros, logging
 * entry points, overflow-checked size arithmetic, and the atomic output file. */
#ifndef LQ_INTERNAL_H
#define LQ_INTERNAL_H

#include "lq_common.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define LQ_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LQ_PRINTF(a, b)
#endif

void lq__log(lq_log_level level, const char *func, const char *fmt, ...) LQ_PRINTF(3, 4);
#ifdef __cplusplus
#define LQ_NORETURN [[noreturn]]
#else
#define LQ_NORETURN _Noreturn
#endif
LQ_NORETURN void lq__assert_fail(const char *file, int line, const char *expr);

#define LQ_ASSERT(x) do { if (!(x)) lq__assert_fail(__FILE__, __LINE__, #x); } while (0)
#define LQ_LOG_ERR(...)   lq__log(LQ_LOG_ERROR, __func__, __VA_ARGS__)
#define LQ_LOG_WARN(...)  lq__log(LQ_LOG_WARN, __func__, __VA_ARGS__)
#define LQ_LOG_INFO(...)  lq__log(LQ_LOG_INFO, __func__, __VA_ARGS__)
#define LQ_LOG_DEBUG(...) lq__log(LQ_LOG_DEBUG, __func__, __VA_ARGS__)

/* log at the detection site, then return */
#define LQ_RETURN_IF(cond, st, ...) do { if (cond) { LQ_LOG_ERR(__VA_ARGS__); return (st); } } while (0)
#define LQ_TRY(expr) do { lq_status lq__s = (expr); if (lq__s != LQ_OK) return lq__s; } while (0)
/* with a `done:` cleanup label and a local `lq_status st` */
#define LQ_GOTO_IF(cond, code, ...) do { if (cond) { LQ_LOG_ERR(__VA_ARGS__); st = (code); goto done; } } while (0)
#define LQ_GOTO_TRY(expr) do { st = (expr); if (st != LQ_OK) goto done; } while (0)

#define LQ_CEIL_DIV(a, b) (((a) + (b) - 1) / (b))
#define LQ_MIN(a, b) ((a) < (b) ? (a) : (b))
#define LQ_MAX(a, b) ((a) > (b) ? (a) : (b))

/* overflow-checked arithmetic: false on overflow, *out untouched then */
static inline bool lq__mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
    uint64_t r;
    if (__builtin_mul_overflow(a, b, &r)) return false;
    *out = r;
    return true;
}
static inline bool lq__add_u64(uint64_t a, uint64_t b, uint64_t *out) {
    uint64_t r;
    if (__builtin_add_overflow(a, b, &r)) return false;
    *out = r;
    return true;
}
static inline bool lq__mul_size(size_t a, size_t b, size_t *out) {
    size_t r;
    if (__builtin_mul_overflow(a, b, &r)) return false;
    *out = r;
    return true;
}
static inline bool lq__add_size(size_t a, size_t b, size_t *out) {
    size_t r;
    if (__builtin_add_overflow(a, b, &r)) return false;
    *out = r;
    return true;
}

/* ==== whole-file mapping (read-only) ==== */

typedef struct {
    const uint8_t *data; /* NULL for an empty file */
    size_t         size;
    bool           mapped;
} lq__mapping;

/* mmap PROT_READ/MAP_PRIVATE; errors name the path. */
lq_status lq__map_file(const char *path, lq__mapping *m);
void      lq__unmap_file(lq__mapping *m);

/* ==== atomic output file ====
 * Writes go to a temporary file in the destination's directory
 * (".<name>.tmp-XXXXXX"); commit() fsyncs, renames over `path` and fsyncs
 * the directory; abort() (or commit failing) unlinks the temporary. */
typedef struct lq__afile lq__afile;
lq_status lq__afile_open(const char *path, lq__afile **out);
lq_status lq__afile_write(lq__afile *f, const void *buf, size_t n);
lq_status lq__afile_commit(lq__afile *f); /* frees f in every case */
lq_status lq__afile_commit_opt(lq__afile *f, bool do_fsync); /* do_fsync=false: benchmarks only */
int       lq__afile_fd(const lq__afile *f); /* for ftruncate/mmap writers */
void      lq__afile_abort(lq__afile *f);  /* frees f; accepts NULL */

/* write a whole buffer to `path` atomically */
lq_status lq__write_file_atomic(const char *path, const void *buf, size_t n);
/* read a whole (small) file into a NUL-terminated lq_malloc'ed buffer, limit in bytes */
lq_status lq__read_file(const char *path, size_t limit, char **out, size_t *out_len);
/* finish a JSON writer (freeing it) and write its text plus a newline to `path` atomically */
struct lq_json_writer;
lq_status lq__json_write_atomic(struct lq_json_writer *w, const char *path);

/* path helpers; results freed with lq_free */
char *lq__path_join(const char *dir, const char *name);
char *lq__path_dirname(const char *path);
bool  lq__is_dir(const char *path);
bool  lq__file_exists(const char *path);

#ifdef __cplusplus
}
#endif
#endif /* LQ_INTERNAL_H */
