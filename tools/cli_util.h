/* cli_util.h : helpers shared by the command-line tools (never by the library).
 *
 * Checked number parsing (never atoi), display levels (zstd scale: 0 silent,
 * 1 errors, 2 default, 3 progress, 4 debug), a rate-limited progress bar on
 * stderr when it is a TTY, SIGINT/SIGTERM turned into cancellation, and the
 * exit-code convention: 0 ok, 1 runtime failure, 2 usage error, 3 failed
 * accuracy gate. */
#ifndef LQ_CLI_UTIL_H
#define LQ_CLI_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "libquant.h"

enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2, CLI_EXIT_GATE = 3 };

extern int         g_display_level;   /* default 2 */
extern const char *g_tool;            /* "lq-convert" */
extern bool        g_progress;        /* progress bar enabled (TTY and not --no-progress) */

#define DISPLAY(lvl, ...) do { if (g_display_level >= (lvl)) fprintf(stderr, __VA_ARGS__); } while (0)

/* install the tool's name, the stderr log sink and the signal handlers */
void cli_init(const char *tool);
/* "lq-x: error: <msg>\nTry 'lq-x --help' for more information.\n" to stderr, exit 2 */
_Noreturn void cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "lq-x: error: <msg>" to stderr (display level >= 1) */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* after a failed library call: "lq-x: error: <what>: <status>" unless the
 * library already logged an error for it (one clear line, not two) */
void cli_error_status(const char *what, lq_status st);
/* print "lq-x VERSION" (or the bare version with -q) and exit 0 */
_Noreturn void cli_version(void);

/* checked parsing; false on any junk, overflow or out-of-range value */
bool cli_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
bool cli_parse_f64(const char *s, double *out);
/* sizes: "123", "5GB"/"5G" (10^9), "5GiB" (2^30), KB/MB/TB and KiB/MiB/TiB alike */
bool cli_parse_size(const char *s, uint64_t *out);

/* the options every tool shares: -h/--help (usage(stdout), exit 0),
 * -V/--version, -q, -v, --no-progress. Returns true when `a` was one. */
bool cli_common_option(const char *a, void (*usage)(FILE *));
/* -t/--threads N (1..1024): true when argv[*i] was it (the value consumed) */
bool cli_threads_option(int argc, char **argv, int *i, int64_t *threads);

/* the options of the tools that write a checkpoint */
typedef struct {
    uint64_t max_shard; /* --max-shard-size S (0 = one file) */
    bool     force;     /* --force     */
    bool     dry_run;   /* --dry-run   */
    bool     json;      /* --json      */
    bool     no_fsync;  /* --no-fsync  */
} cli_out_opts;
/* true when argv[*i] was one of them (a value consumed); usage error on a bad size */
bool cli_output_option(int argc, char **argv, int *i, cli_out_opts *o);

/* option value: argv[*i + 1] or a usage error naming the option */
const char *cli_value(int argc, char **argv, int *i);

/* lq_progress_fn: draws "[####....] 42% stage" at most ~6 times a second when
 * g_progress; returns non-zero once SIGINT/SIGTERM arrived (cancels the job) */
int  cli_progress(float done, const char *stage, void *user);
void cli_progress_end(void);
bool cli_interrupted(void);

/* "dir/name" into buf; false (and an error message) if it does not fit */
bool cli_join(char *buf, size_t cap, const char *dir, const char *name);

/* a whole file, NUL-terminated, malloc'ed (free()); NULL with an error message naming it */
char *cli_read_file(const char *path, size_t *len);

/* the tokenizer for `m`: `tok_path` if given, else the model directory's
 * (tokenizer.json, tokenizer.model), else for a llama2.c file tokenizer.bin
 * or a single tok*.bin beside it */
lq_status cli_open_tokenizer(const char *model_path, const lq_model *m, const char *tok_path, lq_tokenizer **out);

/* Output directories are staged: cli_stage_begin() checks OUTDIR (not a
 * file, not the input's own directory `input_dir`, empty unless `force`) and
 * creates a hidden ".OUTDIR.lq-tmp-XXXXXX" beside it into `stage`;
 * cli_stage_commit() renames it into place (or, over an existing OUTDIR,
 * replaces its model files: weights, config.json, quantize_config.json) and
 * clears `stage` once nothing is left to remove; on failure, the caller runs
 * cli_remove_tree(stage) when stage[0]. All return 0 or -1 (message printed). */
int  cli_stage_begin(const char *out_dir, const char *input_dir, bool force, char *stage, size_t cap,
                     bool *out_exists);
int  cli_stage_commit(char *stage, const char *out_dir, bool out_exists);
void cli_remove_tree(const char *dir);
int  cli_copy_file(const char *from, const char *to); /* fsynced; -1 with errno */
int  cli_write_file(const char *path, const void *buf, size_t n); /* fsynced; -1 with errno */
/* tokenizer and generation files from src_dir into stage (`tokenizer`, if
 * given, becomes tokenizer.model); the number copied, or -1 */
int cli_copy_model_files(const char *src_dir, const char *stage, const char *tokenizer);

/* a decoder Linear weight of a Llama-family checkpoint ("model.layers.N.self_attn.{q,k,v,o}_proj.weight",
 * "model.layers.N.mlp.{gate,up,down}_proj.weight"): what lq-quant's --type and lq-prune apply to */
bool cli_is_layer_linear(const char *name);

/* "1,234,567" into buf */
const char *cli_commas(uint64_t v, char *buf, size_t cap);
/* "1.23 GB" style into buf */
const char *cli_human_bytes(uint64_t v, char *buf, size_t cap);

#endif
