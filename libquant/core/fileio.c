/* fileio.c : read-only file mapping, atomic output files, small-file reads, paths.
 *
 * Atomic output (the "nothing lost" rule): data goes to ".<name>.tmp-XXXXXX"
 * in the destination directory; commit = fsync(file) + rename + fsync(dir).
 * An interrupted run leaves at most that hidden temporary, never a partial
 * file under the final name. */
#include "lq_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

lq_status lq__map_file(const char *path, lq__mapping *m) {
    memset(m, 0, sizeof *m);
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    LQ_RETURN_IF(fd < 0, LQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        const int e = errno;
        close(fd);
        LQ_RETURN_IF(1, LQ_ERR_IO, "%s: not a regular file%s%s", path, e ? ": " : "", e ? strerror(e) : "");
    }
    m->size = (size_t)sb.st_size;
    if (m->size > 0) {
        void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            const int e = errno;
            close(fd);
            LQ_RETURN_IF(1, LQ_ERR_IO, "%s: mmap failed: %s", path, strerror(e));
        }
        m->data   = p;
        m->mapped = true;
    }
    close(fd);
    return LQ_OK;
}

void lq__unmap_file(lq__mapping *m) {
    if (m && m->mapped && m->data) munmap((void *)(uintptr_t)m->data, m->size);
    if (m) memset(m, 0, sizeof *m);
}

struct lq__afile {
    int   fd;
    char *tmp;
    char *path;
};

char *lq__path_join(const char *dir, const char *name) {
    const size_t a = strlen(dir), b = strlen(name);
    char        *p = lq_malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a > 0 && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

char *lq__path_dirname(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return lq_strdup(".");
    if (slash == path) return lq_strdup("/");
    const size_t n = (size_t)(slash - path);
    char        *d = lq_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, path, n);
    d[n] = 0;
    return d;
}

bool lq__is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

bool lq__file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

lq_status lq__afile_open(const char *path, lq__afile **out) {
    *out = NULL;
    lq__afile *f = lq_calloc(1, sizeof *f);
    LQ_RETURN_IF(!f, LQ_ERR_NOMEM, "out of memory");
    const char *base = strrchr(path, '/');
    base             = base ? base + 1 : path;
    char *dir        = lq__path_dirname(path);
    const size_t n   = (dir ? strlen(dir) : 0) + strlen(base) + 32;
    f->tmp           = lq_malloc(n);
    f->path          = lq_strdup(path);
    if (!dir || !f->tmp || !f->path) {
        lq_free(dir);
        lq_free(f->tmp);
        lq_free(f->path);
        lq_free(f);
        LQ_RETURN_IF(1, LQ_ERR_NOMEM, "out of memory");
    }
    snprintf(f->tmp, n, "%s/.%s.tmp-XXXXXX", dir, base);
    lq_free(dir);
    f->fd = mkstemp(f->tmp);
    if (f->fd < 0) {
        const int e = errno;
        LQ_LOG_ERR("%s: cannot create a temporary file beside it: %s", path, strerror(e));
        lq_free(f->tmp);
        lq_free(f->path);
        lq_free(f);
        return LQ_ERR_IO;
    }
    fchmod(f->fd, 0644);
    *out = f;
    return LQ_OK;
}

lq_status lq__afile_write(lq__afile *f, const void *buf, size_t n) {
    const uint8_t *p = buf;
    while (n > 0) {
        const ssize_t w = write(f->fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0 && errno == EINTR) continue;
        LQ_RETURN_IF(w <= 0, LQ_ERR_IO, "%s: write failed: %s", f->path, strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return LQ_OK;
}

static void afile_free(lq__afile *f) {
    lq_free(f->tmp);
    lq_free(f->path);
    lq_free(f);
}

void lq__afile_abort(lq__afile *f) {
    if (!f) return;
    if (f->fd >= 0) close(f->fd);
    unlink(f->tmp);
    afile_free(f);
}

static void fsync_dir_of(const char *path) {
    char *dir = lq__path_dirname(path);
    if (!dir) return;
    const int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    lq_free(dir);
}

lq_status lq__afile_commit_opt(lq__afile *f, bool do_fsync) {
    if (do_fsync && fsync(f->fd) != 0) {
        LQ_LOG_ERR("%s: fsync failed: %s", f->path, strerror(errno));
        lq__afile_abort(f);
        return LQ_ERR_IO;
    }
    if (close(f->fd) != 0) {
        f->fd = -1;
        LQ_LOG_ERR("%s: close failed: %s", f->path, strerror(errno));
        lq__afile_abort(f);
        return LQ_ERR_IO;
    }
    f->fd = -1;
    if (rename(f->tmp, f->path) != 0) {
        LQ_LOG_ERR("%s: rename from %s failed: %s", f->path, f->tmp, strerror(errno));
        lq__afile_abort(f);
        return LQ_ERR_IO;
    }
    if (do_fsync) fsync_dir_of(f->path);
    afile_free(f);
    return LQ_OK;
}

lq_status lq__afile_commit(lq__afile *f) { return lq__afile_commit_opt(f, true); }

int lq__afile_fd(const lq__afile *f) { return f->fd; }

lq_status lq__write_file_atomic(const char *path, const void *buf, size_t n) {
    lq__afile *f;
    LQ_TRY(lq__afile_open(path, &f));
    const lq_status st = lq__afile_write(f, buf, n);
    if (st != LQ_OK) {
        lq__afile_abort(f);
        return st;
    }
    return lq__afile_commit(f);
}

lq_status lq__read_file(const char *path, size_t limit, char **out, size_t *out_len) {
    *out = NULL;
    if (out_len) *out_len = 0;
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    LQ_RETURN_IF(fd < 0, errno == ENOENT ? LQ_ERR_NOT_FOUND : LQ_ERR_IO, "%s: cannot open: %s", path,
                 strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        LQ_RETURN_IF(1, LQ_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > limit) {
        close(fd);
        LQ_RETURN_IF(1, LQ_ERR_FORMAT, "%s: %lld bytes, more than the %zu allowed", path, (long long)sb.st_size,
                     limit);
    }
    const size_t n   = (size_t)sb.st_size;
    char        *buf = lq_malloc(n + 1);
    if (!buf) {
        close(fd);
        LQ_RETURN_IF(1, LQ_ERR_NOMEM, "out of memory");
    }
    size_t got = 0;
    while (got < n) {
        const ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            close(fd);
            lq_free(buf);
            LQ_RETURN_IF(1, LQ_ERR_IO, "%s: read failed: %s", path, r < 0 ? strerror(errno) : "short read");
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    *out   = buf;
    if (out_len) *out_len = n;
    return LQ_OK;
}
