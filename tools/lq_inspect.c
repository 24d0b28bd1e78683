/* lq_inspect.c : list the tensors of any supported checkpoint with their
 * statistics (min/max/mean/std over finite values, NaN/Inf counts, zero
 * fraction), as a table or as JSON (--json) on stdout.
 *
 * Statistics are computed in float64 over fixed chunks whose partial results
 * are combined in chunk order (Chan et al. pairwise mean/M2), so the output
 * is the same for every thread count. */
#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cli_util.h"

#define STAT_CHUNK 65536

typedef struct {
    uint64_t n_finite, n_nan, n_inf, n_zero;
    double   min, max, mean, m2;
    bool     have;      /* statistics meaningful for this dtype */
} tstats;

static void combine(tstats *a, const tstats *b) {
    if (b->n_finite) {
        if (!a->n_finite) {
            a->min = b->min, a->max = b->max, a->mean = b->mean, a->m2 = b->m2;
        } else {
            const double na = (double)a->n_finite, nb = (double)b->n_finite, n = na + nb;
            const double d = b->mean - a->mean;
            a->mean += d * nb / n;
            a->m2 += b->m2 + d * d * na * nb / n;
            if (b->min < a->min) a->min = b->min;
            if (b->max > a->max) a->max = b->max;
        }
    }
    a->n_finite += b->n_finite;
    a->n_nan += b->n_nan;
    a->n_inf += b->n_inf;
    a->n_zero += b->n_zero;
}

static void chunk_stats(tstats *s, const double *buf, int64_t m) {
    double sum = 0;
    for (int64_t i = 0; i < m; i++) {
        const double x = buf[i];
        if (isnan(x)) {
            s->n_nan++;
            continue;
        }
        if (isinf(x)) {
            s->n_inf++;
            continue;
        }
        if (x == 0) s->n_zero++;
        if (!s->n_finite || x < s->min) s->min = x;
        if (!s->n_finite || x > s->max) s->max = x;
        s->n_finite++;
        sum += x;
    }
    if (s->n_finite) {
        s->mean   = sum / (double)s->n_finite;
        double m2 = 0;
        for (int64_t i = 0; i < m; i++)
            if (isfinite(buf[i])) m2 += (buf[i] - s->mean) * (buf[i] - s->mean);
        s->m2 = m2;
    }
}

/* a GGML-typed tensor (GGUF): statistics of its dequantized values, row by row */
static void quantized_stats(const lq_tensor_info *t, tstats *out) {
    const int64_t  rows = t->n_dims == 2 ? t->shape[0] : 1, cols = t->shape[t->n_dims - 1];
    const uint64_t rb   = lq_qtype_row_bytes(t->qtype, cols);
    float         *f    = malloc((size_t)cols * sizeof *f);
    double        *d    = malloc((size_t)cols * sizeof *d);
    out->have           = f && d && rb && rb * (uint64_t)rows == t->nbytes;
    for (int64_t r = 0; r < rows && out->have; r++) {
        if (lq_dequantize_ref(t->qtype, (const uint8_t *)t->data + (uint64_t)r * rb, NULL, NULL, 1, cols, f) != LQ_OK) {
            out->have = false;
            break;
        }
        for (int64_t i = 0; i < cols; i++) d[i] = f[i];
        tstats s;
        memset(&s, 0, sizeof s);
        chunk_stats(&s, d, cols);
        combine(out, &s);
    }
    free(f);
    free(d);
}

static void compute_stats(const lq_tensor_info *t, uint64_t numel, int n_threads, tstats *out) {
    memset(out, 0, sizeof *out);
    if (t->qtype != LQ_QT_NONE) {
        quantized_stats(t, out);
        return;
    }
    const lq_dtype_traits *tr = lq_dtype_traits_of(t->dtype);
    if (!tr->convertible) return;
    out->have                  = true;
    const int64_t n_chunks     = (int64_t)((numel + STAT_CHUNK - 1) / STAT_CHUNK);
    tstats       *part         = calloc((size_t)(n_chunks ? n_chunks : 1), sizeof *part);
    if (!part) {
        out->have = false;
        return;
    }
    const size_t esz = tr->bits / 8;
    (void)n_threads;
#ifdef _OPENMP
#pragma omp parallel num_threads(n_threads > 0 ? n_threads : omp_get_max_threads())
#endif
    {
        double *buf = malloc(STAT_CHUNK * sizeof(double));
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t c = 0; c < n_chunks; c++) {
            const uint64_t o = (uint64_t)c * STAT_CHUNK;
            const int64_t  m = (int64_t)(numel - o < STAT_CHUNK ? numel - o : STAT_CHUNK);
            tstats        *s = &part[c];
            if (!buf || lq_convert_ref(LQ_DTYPE_F64, buf, t->dtype, (const uint8_t *)t->data + o * esz, m) != LQ_OK)
                continue;
            chunk_stats(s, buf, m);
        }
        free(buf);
    }
    for (int64_t c = 0; c < n_chunks; c++) combine(out, &part[c]);
    free(part);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: %s [options] PATH\n"
            "List the tensors of a checkpoint: name, dtype, shape, bytes, min/max/mean/std of the\n"
            "finite values, NaN/Inf counts and the fraction of zeros, then a summary line.\n"
            "\n"
            "PATH: a .safetensors file, a model directory (model.safetensors, a sharded\n"
            "      model.safetensors.index.json, pytorch_model.bin[.index.json]), a PyTorch\n"
            "      .bin zip, or a llama2.c legacy .bin (shown in the Hugging Face layout).\n"
            "\n"
            "options:\n"
            "  --json            one JSON document on stdout (tensors, summary, metadata)\n"
            "  --no-stats        header only: skip reading the data\n"
            "  --filter REGEX    only tensors whose name matches (POSIX extended regex)\n"
            "  -t, --threads N   [auto] threads for the statistics\n"
            "  -q, -v            quieter / more verbose on stderr\n"
            "  -V, --version     print the version\n"
            "  -h, --help        this help\n"
            "\n"
            "exit: 0 ok, 1 the input cannot be read (the message names the file and tensor), 2 usage.\n",
            g_tool);
}

static void shape_str(const lq_tensor_info *t, char *buf, size_t cap) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < t->n_dims && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

static void json_num(lq_json_writer *w, double v, bool ok) {
    if (ok)
        lq_json_f64(w, v);
    else
        lq_json_null(w);
}

int main(int argc, char **argv) {
    cli_init("lq-inspect");
    const char *path = NULL, *filter = NULL;
    bool        json = false, stats = true;
    int64_t     n_threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_common_option(a, usage)) {
            continue;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--no-stats")) {
            stats = false;
        } else if (!strcmp(a, "--filter")) {
            filter = cli_value(argc, argv, &i);
        } else if (cli_threads_option(argc, argv, &i, &n_threads)) {
            continue;
        } else if (a[0] == '-' && a[1]) {
            cli_usage_error("unknown option '%s'", a);
        } else if (!path) {
            path = a;
        } else {
            cli_usage_error("more than one PATH ('%s' and '%s')", path, a);
        }
    }
    if (!path) cli_usage_error("no PATH given");
    regex_t re;
    if (filter && regcomp(&re, filter, REG_EXTENDED | REG_NOSUB) != 0)
        cli_usage_error("--filter: invalid regular expression '%s'", filter);

    lq_checkpoint  *ck = NULL;
    const lq_status st = lq_checkpoint_open(path, &ck);
    if (st != LQ_OK) {
        cli_error_status(path, st);
        if (filter) regfree(&re);
        return CLI_EXIT_FAIL;
    }
    const int64_t n = lq_checkpoint_count(ck);
    uint64_t      n_params = 0, n_bytes = 0, n_shown = 0;
    lq_json_writer *w = NULL;
    if (json) {
        w = lq_json_writer_init(2);
        lq_json_obj_begin(w);
        lq_json_key(w, "path");
        lq_json_str(w, path);
        lq_json_key(w, "format");
        lq_json_str(w, lq_checkpoint_kind_name(lq_checkpoint_kind(ck)));
        lq_json_key(w, "tensors");
        lq_json_arr_begin(w);
    } else {
        printf("%-52s %-8s %-16s %12s %11s %11s %11s %11s %5s %5s %6s\n", "name", "dtype", "shape", "bytes", "min",
               "max", "mean", "std", "nan", "inf", "zero%");
    }
    for (int64_t i = 0; i < n; i++) {
        const lq_tensor_info *t = lq_checkpoint_tensor(ck, i);
        if (filter && regexec(&re, t->name, 0, NULL, 0) != 0) continue;
        uint64_t numel = 0;
        lq_tensor_info_numel(t, &numel);
        tstats s;
        memset(&s, 0, sizeof s);
        if (stats) compute_stats(t, numel, (int)n_threads, &s);
        if (g_progress) {
            char stage[64];
            snprintf(stage, sizeof stage, "tensor %lld/%lld", (long long)i + 1, (long long)n);
            cli_progress((float)(i + 1) / (float)n, stage, NULL);
        }
        n_shown++;
        n_params += numel;
        n_bytes += t->nbytes;
        const bool   fin = s.have && s.n_finite > 0;
        const double sd  = fin ? sqrt(s.m2 / (double)s.n_finite) : 0.0;
        const double zf  = numel ? (double)s.n_zero / (double)numel : 0.0;
        if (json) {
            lq_json_obj_begin(w);
            lq_json_key(w, "name");
            lq_json_str(w, t->name);
            lq_json_key(w, "dtype");
            lq_json_str(w, t->qtype != LQ_QT_NONE ? lq_qtype_name(t->qtype) : lq_dtype_name(t->dtype));
            lq_json_key(w, "shape");
            lq_json_arr_begin(w);
            for (int d = 0; d < t->n_dims; d++) lq_json_i64(w, t->shape[d]);
            lq_json_arr_end(w);
            lq_json_key(w, "bytes");
            lq_json_u64(w, t->nbytes);
            lq_json_key(w, "parameters");
            lq_json_u64(w, numel);
            if (lq_checkpoint_tensor_file(ck, i)) {
                lq_json_key(w, "file");
                lq_json_str(w, lq_checkpoint_tensor_file(ck, i));
            }
            if (t->alias_of >= 0) {
                lq_json_key(w, "alias_of");
                lq_json_str(w, lq_checkpoint_tensor(ck, t->alias_of)->name);
            }
            if (stats && s.have) {
                lq_json_key(w, "min");
                json_num(w, s.min, fin);
                lq_json_key(w, "max");
                json_num(w, s.max, fin);
                lq_json_key(w, "mean");
                json_num(w, s.mean, fin);
                lq_json_key(w, "std");
                json_num(w, sd, fin);
                lq_json_key(w, "nan");
                lq_json_u64(w, s.n_nan);
                lq_json_key(w, "inf");
                lq_json_u64(w, s.n_inf);
                lq_json_key(w, "zero_fraction");
                lq_json_f64(w, zf);
            }
            lq_json_obj_end(w);
        } else {
            char shp[64], mn[16] = "-", mx[16] = "-", me[16] = "-", sds[16] = "-", nn[12] = "-", ni[12] = "-",
                          zs[12] = "-";
            shape_str(t, shp, sizeof shp);
            if (stats && s.have) {
                if (fin) {
                    snprintf(mn, sizeof mn, "%.4g", s.min);
                    snprintf(mx, sizeof mx, "%.4g", s.max);
                    snprintf(me, sizeof me, "%.4g", s.mean);
                    snprintf(sds, sizeof sds, "%.4g", sd);
                }
                snprintf(nn, sizeof nn, "%llu", (unsigned long long)s.n_nan);
                snprintf(ni, sizeof ni, "%llu", (unsigned long long)s.n_inf);
                snprintf(zs, sizeof zs, "%.2f", 100.0 * zf);
            }
            cli_progress_end();
            printf("%-52s %-8s %-16s %12llu %11s %11s %11s %11s %5s %5s %6s\n", t->name,
                   t->qtype != LQ_QT_NONE ? lq_qtype_name(t->qtype) : lq_dtype_name(t->dtype), shp,
                   (unsigned long long)t->nbytes, mn, mx, me, sds, nn, ni, zs);
        }
    }
    cli_progress_end();
    int rc = CLI_EXIT_OK;
    if (json) {
        lq_json_arr_end(w);
        lq_json_key(w, "summary");
        lq_json_obj_begin(w);
        lq_json_key(w, "tensors");
        lq_json_u64(w, n_shown);
        lq_json_key(w, "parameters");
        lq_json_u64(w, n_params);
        lq_json_key(w, "bytes");
        lq_json_u64(w, n_bytes);
        lq_json_obj_end(w);
        lq_model_config cfg;
        lq_log_set_level(LQ_LOG_WARN);
        if (lq_checkpoint_kind(ck) == LQ_CKPT_LLAMA2C) {
            lq_checkpoint_config(ck, &cfg);
            lq_json_key(w, "llama2c_header");
            lq_json_obj_begin(w);
            lq_json_key(w, "dim");
            lq_json_i64(w, cfg.hidden_size);
            lq_json_key(w, "n_layers");
            lq_json_i64(w, cfg.n_layers);
            lq_json_key(w, "n_heads");
            lq_json_i64(w, cfg.n_heads);
            lq_json_key(w, "n_kv_heads");
            lq_json_i64(w, cfg.n_kv_heads);
            lq_json_key(w, "vocab_size");
            lq_json_i64(w, cfg.vocab_size);
            lq_json_key(w, "shared_classifier");
            lq_json_bool(w, cfg.tie_word_embeddings);
            lq_json_obj_end(w);
        }
        lq_json_obj_end(w);
        char  *text;
        size_t len;
        if (lq_json_writer_finish(w, &text, &len) == LQ_OK) {
            fwrite(text, 1, len, stdout);
            fputc('\n', stdout);
            lq_free(text);
        } else {
            cli_error("cannot build the JSON report (a tensor name is not valid UTF-8?)");
            rc = CLI_EXIT_FAIL;
        }
    } else {
        char a[32], b[32], c[32];
        printf("%llu tensors, %s parameters, %s bytes (%s)\n", (unsigned long long)n_shown,
               cli_commas(n_params, a, sizeof a), cli_commas(n_bytes, b, sizeof b), cli_human_bytes(n_bytes, c, sizeof c));
    }
    if (filter) regfree(&re);
    lq_checkpoint_close(ck);
    if (fflush(stdout) != 0) rc = CLI_EXIT_FAIL;
    return rc;
}
