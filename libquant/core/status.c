/* status.c : status names, version, logging sink, assertion failure.
 *
 * The library never prints except through the log callback; the default
 * sink writes "libquant: <level>: <func>: <msg>" lines to stderr. */
#include "lq_internal.h"

#include <stdarg.h>
#include <stdlib.h>

const char *lq_status_str(lq_status s) {
    switch (s) {
    case LQ_OK: return "ok";
    case LQ_ERR_INVALID_ARG: return "invalid argument";
    case LQ_ERR_NOMEM: return "out of memory";
    case LQ_ERR_IO: return "I/O error";
    case LQ_ERR_FORMAT: return "malformed input";
    case LQ_ERR_UNSUPPORTED: return "unsupported";
    case LQ_ERR_SHAPE: return "shape mismatch";
    case LQ_ERR_NUMERIC: return "numerical failure";
    case LQ_ERR_CUDA: return "CUDA error";
    case LQ_ERR_CANCELLED: return "cancelled";
    case LQ_ERR_NOT_FOUND: return "not found";
    }
    return "unknown status";
}

const char *lq_version(void) { return LQ_VERSION_STRING; }

static lq_log_fn    g_log_fn;
static void        *g_log_user;
static lq_log_level g_log_level = LQ_LOG_WARN;

void lq_log_set(lq_log_fn fn, void *user) {
    g_log_fn   = fn;
    g_log_user = user;
}

void         lq_log_set_level(lq_log_level level) { g_log_level = level; }
lq_log_level lq_log_get_level(void) { return g_log_level; }

static const char *level_name(lq_log_level l) {
    switch (l) {
    case LQ_LOG_ERROR: return "error";
    case LQ_LOG_WARN: return "warning";
    case LQ_LOG_INFO: return "info";
    case LQ_LOG_DEBUG: return "debug";
    }
    return "?";
}

void lq__log(lq_log_level level, const char *func, const char *fmt, ...) {
    if (level > g_log_level) return;
    char    msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g_log_fn) {
        g_log_fn(level, msg, g_log_user);
        return;
    }
    if (level >= LQ_LOG_DEBUG)
        fprintf(stderr, "libquant: %s: %s: %s\n", level_name(level), func, msg);
    else
        fprintf(stderr, "libquant: %s: %s\n", level_name(level), msg);
}

void lq__assert_fail(const char *file, int line, const char *expr) {
    fprintf(stderr, "%s:%d: LQ_ASSERT(%s) failed\n", file, line, expr);
    fflush(stderr);
    abort();
}
