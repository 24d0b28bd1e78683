/* cli_util.c : see cli_util.h. Only tools link this; it may exit(). */
#include "cli_util.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int         g_display_level = 2;
const char *g_tool          = "lq";
bool        g_progress      = false;

static volatile sig_atomic_t g_interrupted;

static void on_signal(int sig) {
    (void)sig;
    g_interrupted = 1;
}

bool cli_interrupted(void) { return g_interrupted != 0; }

static int g_lib_errors;

static void log_sink(lq_log_level level, const char *msg, void *user) {
    (void)user;
    if (level == LQ_LOG_ERROR) g_lib_errors++;
    const int need = level == LQ_LOG_ERROR ? 1 : level == LQ_LOG_WARN ? 2 : level == LQ_LOG_INFO ? 3 : 4;
    if (g_display_level < need) return;
    cli_progress_end();
    fprintf(stderr, "%s: %s%s\n", g_tool,
            level == LQ_LOG_ERROR ? "error: " : level == LQ_LOG_WARN ? "warning: " : "", msg);
}

void cli_init(const char *tool) {
    g_tool = tool;
    lq_log_set(log_sink, NULL);
    lq_log_set_level(LQ_LOG_DEBUG);
    g_progress = isatty(STDERR_FILENO) != 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

void cli_usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: error: ", g_tool);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help' for more information.\n", g_tool);
    exit(CLI_EXIT_USAGE);
}

void cli_error(const char *fmt, ...) {
    if (g_display_level < 1) return;
    cli_progress_end();
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: error: ", g_tool);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void cli_error_status(const char *what, lq_status st) {
    if (g_lib_errors == 0) cli_error("%s: %s", what, lq_status_str(st));
    g_lib_errors = 0;
}

void cli_version(void) {
    if (g_display_level < 2)
        printf("%s\n", lq_version());
    else
        printf("%s %s\n", g_tool, lq_version());
    exit(CLI_EXIT_OK);
}

bool cli_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out) {
    if (!s || !*s) return false;
    char *end;
    errno          = 0;
    const long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max) return false;
    *out = v;
    return true;
}

bool cli_parse_f64(const char *s, double *out) {
    if (!s || !*s) return false;
    char *end;
    errno          = 0;
    const double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) return false;
    *out = v;
    return true;
}

bool cli_parse_size(const char *s, uint64_t *out) {
    if (!s || !*s || *s == '-') return false;
    char *end;
    errno                  = 0;
    const unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return false;
    static const struct {
        const char *suffix;
        uint64_t    mul;
    } units[] = {{"", 1},
                 {"B", 1},
                 {"K", 1000ULL},
                 {"KB", 1000ULL},
                 {"KiB", 1ULL << 10},
                 {"M", 1000000ULL},
                 {"MB", 1000000ULL},
                 {"MiB", 1ULL << 20},
                 {"G", 1000000000ULL},
                 {"GB", 1000000000ULL},
                 {"GiB", 1ULL << 30},
                 {"T", 1000000000000ULL},
                 {"TB", 1000000000000ULL},
                 {"TiB", 1ULL << 40}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(end, units[i].suffix) == 0) {
            if (v > UINT64_MAX / units[i].mul) return false;
            *out = v * units[i].mul;
            return true;
        }
    return false;
}

bool cli_common_option(const char *a, void (*usage)(FILE *)) {
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
        usage(stdout);
        exit(CLI_EXIT_OK);
    }
    if (!strcmp(a, "-V") || !strcmp(a, "--version")) cli_version();
    if (!strcmp(a, "-q")) return g_display_level--, true;
    if (!strcmp(a, "-v")) return g_display_level++, true;
    if (!strcmp(a, "--no-progress")) return g_progress = false, true;
    return false;
}

bool cli_threads_option(int argc, char **argv, int *i, int64_t *threads) {
    if (strcmp(argv[*i], "-t") && strcmp(argv[*i], "--threads")) return false;
    if (!cli_parse_i64(cli_value(argc, argv, i), 1, 1024, threads))
        cli_usage_error("--threads needs an integer in 1..1024, got '%s'", argv[*i]);
    return true;
}

const char *cli_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) cli_usage_error("option '%s' needs a value", argv[*i]);
    return argv[++*i];
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool   g_bar_drawn;
static double g_last_draw;

int cli_progress(float done, const char *stage, void *user) {
    (void)user;
    if (g_progress && g_display_level >= 2) {
        const double t = now_s();
        if (t - g_last_draw >= 0.16 || done >= 1.f) {
            g_last_draw = t;
            char bar[31];
            const int filled = (int)(done * 30.f + 0.5f);
            for (int i = 0; i < 30; i++) bar[i] = i < filled ? '#' : '.';
            bar[30] = 0;
            fprintf(stderr, "\r[%s] %3d%% %-40.40s", bar, (int)(done * 100.f + 0.5f), stage ? stage : "");
            g_bar_drawn = true;
        }
    }
    return g_interrupted ? 1 : 0;
}

void cli_progress_end(void) {
    if (g_bar_drawn) fprintf(stderr, "\r%80s\r", "");
    g_bar_drawn = false;
}

bool cli_join(char *buf, size_t cap, const char *dir, const char *name) {
    const size_t a = strlen(dir), b = strlen(name);
    if (a + 1 + b + 1 > cap) {
        cli_error("path too long: %s/%s", dir, name);
        return false;
    }
    memcpy(buf, dir, a);
    buf[a] = '/';
    memcpy(buf + a + 1, name, b + 1);
    return true;
}

char *cli_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        cli_error("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char  *buf = NULL;
    long   n   = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0)
        buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        cli_error("%s: cannot read%s", path, buf ? "" : " (not a regular file, or out of memory)");
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    buf[n] = 0;
    *len   = (size_t)n;
    return buf;
}

const char *cli_commas(uint64_t v, char *buf, size_t cap) {
    char tmp[32];
    const int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    size_t    k = 0;
    for (int i = 0; i < n && k + 1 < cap; i++) {
        buf[k++] = tmp[i];
        if ((n - 1 - i) % 3 == 0 && i != n - 1 && k + 1 < cap) buf[k++] = ',';
    }
    buf[k] = 0;
    return buf;
}

const char *cli_human_bytes(uint64_t v, char *buf, size_t cap) {
    static const char *u[] = {"B", "KB", "MB", "GB", "TB"};
    double             x   = (double)v;
    int                i   = 0;
    while (x >= 1000.0 && i < 4) x /= 1000.0, i++;
    if (i == 0)
        snprintf(buf, cap, "%llu B", (unsigned long long)v);
    else
        snprintf(buf, cap, "%.2f %s", x, u[i]);
    return buf;
}

lq_status cli_open_tokenizer(const char *model_path, const lq_model *m, const char *tok_path, lq_tokenizer **out) {
    const int32_t V = (int32_t)lq_model_config_of(m)->vocab_size;
    if (tok_path) return lq_tokenizer_open(tok_path, V, out);
    const char *dir = lq_checkpoint_dir(lq_model_checkpoint(m));
    if (dir) return lq_tokenizer_open_dir(dir, out);
    /* a llama2.c file: tokenizer.bin or a single tok*.bin beside it */
    char d[4096];
    snprintf(d, sizeof d, "%s", model_path);
    char *slash = strrchr(d, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(d, sizeof d, ".");
    char path[4200];
    if (!cli_join(path, sizeof path, d, "tokenizer.bin")) return LQ_ERR_INVALID_ARG;
    struct stat sb;
    if (stat(path, &sb) == 0) return lq_tokenizer_open(path, V, out);
    DIR *dd = opendir(d);
    int  found = 0;
    if (dd) {
        struct dirent *e;
        while ((e = readdir(dd))) {
            const size_t l = strlen(e->d_name);
            if (!strncmp(e->d_name, "tok", 3) && l > 4 && !strcmp(e->d_name + l - 4, ".bin")) {
                if (found++ == 0 && !cli_join(path, sizeof path, d, e->d_name)) found = 2;
            }
        }
        closedir(dd);
    }
    if (found == 1) return lq_tokenizer_open(path, V, out);
    cli_error("%s: no tokenizer found beside the llama2.c file; pass --tokenizer", model_path);
    return LQ_ERR_NOT_FOUND;
}

bool cli_output_option(int argc, char **argv, int *i, cli_out_opts *o) {
    const char *a = argv[*i];
    if (!strcmp(a, "--max-shard-size")) {
        if (!cli_parse_size(cli_value(argc, argv, i), &o->max_shard))
            cli_usage_error("--max-shard-size: '%s' is not a size (e.g. 5GB, 500MiB, 1000000)", argv[*i]);
    } else if (!strcmp(a, "--force")) {
        o->force = true;
    } else if (!strcmp(a, "--dry-run")) {
        o->dry_run = true;
    } else if (!strcmp(a, "--json")) {
        o->json = true;
    } else if (!strcmp(a, "--no-fsync")) {
        o->no_fsync = true;
    } else {
        return false;
    }
    return true;
}

/* ---- output directories: staged beside the destination, renamed into place ---- */

static const char *const MODEL_FILES[] = {"tokenizer.json",          "tokenizer.model",   "tokenizer_config.json",
                                          "special_tokens_map.json", "added_tokens.json", "vocab.json",
                                          "merges.txt",              "generation_config.json"};

int cli_write_file(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(buf, 1, n, f) == n;
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) ok = 0;
    if (fclose(f) != 0) ok = 0;
    return ok ? 0 : -1;
}

int cli_copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb");
    if (!a) return -1;
    FILE *b = fopen(to, "wb");
    if (!b) {
        fclose(a);
        return -1;
    }
    char   buf[65536];
    size_t n;
    int    ok = 1;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0)
        if (fwrite(buf, 1, n, b) != n) ok = 0;
    if (ferror(a)) ok = 0;
    fclose(a);
    if (fflush(b) != 0 || fsync(fileno(b)) != 0) ok = 0;
    if (fclose(b) != 0) ok = 0;
    return ok ? 0 : -1;
}

void cli_remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char p[4096];
            if (cli_join(p, sizeof p, dir, e->d_name)) unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

int cli_stage_begin(const char *out_dir, const char *input_dir, bool force, char *stage, size_t cap,
                    bool *out_exists) {
    stage[0] = 0;
    struct stat sb;
    *out_exists = stat(out_dir, &sb) == 0;
    if (*out_exists && !S_ISDIR(sb.st_mode)) {
        cli_error("%s exists and is not a directory", out_dir);
        return -1;
    }
    if (*out_exists) {
        char r_out[4096], r_in[4096];
        if (input_dir && realpath(out_dir, r_out) && realpath(input_dir, r_in) && !strcmp(r_out, r_in)) {
            cli_error("%s is the input's own directory; write to another directory", out_dir);
            return -1;
        }
        DIR *d       = opendir(out_dir);
        int  n_files = 0;
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)))
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n_files++;
            closedir(d);
        }
        if (n_files > 0 && !force) {
            cli_error("%s exists and is not empty; use --force to replace its model files", out_dir);
            return -1;
        }
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", out_dir);
    size_t l = strlen(tmp);
    while (l > 1 && tmp[l - 1] == '/') tmp[--l] = 0;
    const char *slash = strrchr(tmp, '/');
    const int   sn    = slash ? snprintf(stage, cap, "%.*s/.%s.lq-tmp-XXXXXX", (int)(slash - tmp), tmp, slash + 1)
                              : snprintf(stage, cap, ".%s.lq-tmp-XXXXXX", tmp);
    if (sn < 0 || (size_t)sn >= cap) {
        cli_error("%s: path too long", out_dir);
        stage[0] = 0;
        return -1;
    }
    if (!mkdtemp(stage)) {
        cli_error("cannot create a staging directory beside %s: %s", out_dir, strerror(errno));
        stage[0] = 0;
        return -1;
    }
    const mode_t um = umask(0);
    umask(um);
    chmod(stage, 0777 & ~um);
    return 0;
}

static bool is_model_file(const char *n) {
    const size_t l = strlen(n);
    if ((l > 12 && !strcmp(n + l - 12, ".safetensors")) || strstr(n, ".safetensors.index.json") ||
        !strncmp(n, "pytorch_model", 13) || (l > 5 && !strcmp(n + l - 5, ".gguf")))
        return true;
    return !strcmp(n, "config.json") || !strcmp(n, "quantize_config.json");
}

int cli_stage_commit(char *stage, const char *out_dir, bool out_exists) {
    if (cli_interrupted()) {
        cli_error("interrupted");
        return -1;
    }
    if (!out_exists) {
        if (rename(stage, out_dir) != 0) {
            cli_error("cannot rename %s to %s: %s", stage, out_dir, strerror(errno));
            return -1;
        }
        stage[0] = 0;
        return 0;
    }
    DIR *d = opendir(out_dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!is_model_file(e->d_name)) continue;
            char pth[4096];
            if (cli_join(pth, sizeof pth, out_dir, e->d_name)) unlink(pth);
        }
        closedir(d);
    }
    DIR *s = opendir(stage);
    if (!s) return -1;
    struct dirent *e;
    int            rc = 0;
    while ((e = readdir(s))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char from[4096], to[4096];
        if (!cli_join(from, sizeof from, stage, e->d_name) || !cli_join(to, sizeof to, out_dir, e->d_name) ||
            rename(from, to) != 0) {
            cli_error("cannot move %s into %s: %s", from, out_dir, strerror(errno));
            rc = -1;
            break;
        }
    }
    closedir(s);
    return rc;
}

int cli_copy_model_files(const char *src_dir, const char *stage, const char *tokenizer) {
    int n_copied = 0;
    if (tokenizer && access(tokenizer, R_OK) != 0) {
        cli_error("--tokenizer: cannot read %s", tokenizer);
        return -1;
    }
    for (size_t k = 0; k < sizeof MODEL_FILES / sizeof MODEL_FILES[0]; k++) {
        char from[4096], to[4096];
        if (!cli_join(from, sizeof from, src_dir, MODEL_FILES[k])) return -1;
        if (tokenizer && !strcmp(MODEL_FILES[k], "tokenizer.model")) snprintf(from, sizeof from, "%s", tokenizer);
        if (access(from, R_OK) != 0) continue;
        if (!cli_join(to, sizeof to, stage, MODEL_FILES[k])) return -1;
        if (cli_copy_file(from, to) != 0) {
            cli_error("cannot copy %s to %s: %s", from, to, strerror(errno));
            return -1;
        }
        n_copied++;
    }
    return n_copied;
}

bool cli_is_layer_linear(const char *name) {
    static const char *const sfx[] = {".self_attn.q_proj.weight", ".self_attn.k_proj.weight",
                                      ".self_attn.v_proj.weight", ".self_attn.o_proj.weight",
                                      ".mlp.gate_proj.weight",    ".mlp.up_proj.weight",
                                      ".mlp.down_proj.weight"};
    if (strncmp(name, "model.layers.", 13) != 0) return false;
    const size_t n = strlen(name);
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
        const size_t l = strlen(sfx[i]);
        if (n > l && !strcmp(name + n - l, sfx[i])) return true;
    }
    return false;
}
