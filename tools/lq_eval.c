/* lq_eval.c : perplexity of a model over a text or token file, and with
 * --base the KL divergence, same-top-token rate, delta-p and perplexity ratio
 * of the candidate against the base, both run side by side in one process.
 * CI gates (--max-kld, --min-top1, --max-ppl-ratio) exit 3 when missed. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cli_util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: %s [options] MODEL (--text FILE | --tokens FILE)\n"
            "Perplexity of MODEL, and with --base BASE its KL divergence from BASE,\n"
            "computed live on the same tokens (no logits file).\n"
            "\n"
            "input:\n"
            "  --text FILE          UTF-8 text, tokenized once as a whole (BOS first)\n"
            "  --tokens FILE        token ids: whitespace-separated integers, or raw\n"
            "                       little-endian int32 (any other content)\n"
            "  --max-chars N        [all] use only the first N bytes of --text\n"
            "  --tokenizer PATH     [BASE's, else MODEL's] tokenizer.json, tokenizer.model or llama2.c\n"
            "                       tokenizer.bin (a llama2.c model: tokenizer.bin or tok*.bin beside it)\n"
            "scoring:\n"
            "  --ctx N              [512] tokens per chunk (fresh KV cache per chunk)\n"
            "  --scoring MODE       [half] half: llama.cpp's llama-perplexity (BOS replaces each\n"
            "                       chunk's first token; logits ctx/2..ctx-2 scored);\n"
            "                       all: chunks as they are, logits 0..ctx-2 scored\n"
            "  --chunks N           [all] evaluate at most N chunks\n"
            "comparison and gates:\n"
            "  --base BASE          the reference model (same vocabulary)\n"
            "  --max-kld X          fail (exit 3) if mean KL(base||model) > X\n"
            "  --min-top1 P         fail (exit 3) if same-top-token %% < P (0..100)\n"
            "  --max-ppl-ratio R    fail (exit 3) if ppl(model)/ppl(base) > R\n"
            "output and execution:\n"
            "  --json FILE          write a JSON report (FILE '-' = stdout, replacing the text report)\n"
            "  --device D           [auto] auto, cpu or cuda\n"
            "  --threads N          [auto] CPU threads\n"
            "  --ref                CPU: the plain-C reference kernels (slow; the oracle)\n"
            "  --no-progress        no progress bar (shown only when stderr is a TTY)\n"
            "  -q, -v               quieter / more verbose\n"
            "  -V, --version        print the version\n"
            "  -h, --help           this help\n"
            "\n"
            "exit: 0 ok, 1 failure, 2 usage, 3 a gate was missed.\n",
            g_tool);
}

static int32_t *read_token_file(const char *path, int64_t *n_out) {
    size_t         len;
    uint8_t *const raw = (uint8_t *)cli_read_file(path, &len);
    if (!raw) return NULL;
    bool is_text = true;
    for (size_t i = 0; i < len && is_text; i++) is_text = isdigit(raw[i]) || isspace(raw[i]) || raw[i] == '-';
    int32_t *ids = malloc((len / (is_text ? 1 : 4) + 1) * sizeof *ids);
    int64_t  n   = 0;
    if (!ids) {
        free(raw);
        return NULL;
    }
    if (is_text) {
        char *p = (char *)raw, *end;
        for (;;) {
            while (*p && isspace((unsigned char)*p)) p++;
            if (!*p) break;
            const long v = strtol(p, &end, 10);
            if (end == p || v < 0 || v > INT32_MAX) {
                cli_error("%s: '%.20s' is not a token id", path, p);
                free(raw);
                free(ids);
                return NULL;
            }
            ids[n++] = (int32_t)v;
            p        = end;
        }
    } else {
        if (len % 4) {
            cli_error("%s: %zu bytes is not a whole number of int32 token ids", path, len);
            free(raw);
            free(ids);
            return NULL;
        }
        for (size_t i = 0; i < len / 4; i++)
            ids[n++] = (int32_t)((uint32_t)raw[4 * i] | (uint32_t)raw[4 * i + 1] << 8 | (uint32_t)raw[4 * i + 2] << 16 |
                                 (uint32_t)raw[4 * i + 3] << 24);
    }
    free(raw);
    *n_out = n;
    return ids;
}

static void sha256_file(const char *path, char hex[65]) {
    hex[0]  = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return;
    lq_sha256_ctx c;
    lq_sha256_init(&c);
    uint8_t buf[1 << 16];
    size_t  n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) lq_sha256_update(&c, buf, n);
    fclose(f);
    uint8_t d[32];
    lq_sha256_final(&c, d);
    lq_sha256_hex(d, hex);
}

/* a content hash of the weights: every tensor's name, dtype, shape and bytes in checkpoint order */
static void sha256_weights(const lq_model *m, char hex[65]) {
    const lq_checkpoint *ck = lq_model_checkpoint(m);
    lq_sha256_ctx        c;
    lq_sha256_init(&c);
    for (int64_t i = 0; i < lq_checkpoint_count(ck); i++) {
        const lq_tensor_info *t = lq_checkpoint_tensor(ck, i);
        lq_sha256_update(&c, t->name, strlen(t->name) + 1);
        lq_sha256_update(&c, lq_dtype_name(t->dtype), strlen(lq_dtype_name(t->dtype)) + 1);
        lq_sha256_update(&c, t->shape, sizeof(int64_t) * (size_t)t->n_dims);
        lq_sha256_update(&c, t->data, t->nbytes);
    }
    uint8_t d[32];
    lq_sha256_final(&c, d);
    lq_sha256_hex(d, hex);
}

static void put_kv_f(lq_json_writer *w, const char *k, double v) {
    lq_json_key(w, k);
    lq_json_f64(w, v);
}

int main(int argc, char **argv) {
    cli_init("lq-eval");
    const char *model_path = NULL, *base_path = NULL, *text_path = NULL, *tokens_path = NULL, *tok_path = NULL;
    const char *json_path = NULL, *device = "auto", *scoring = "half";
    int64_t     ctx = 512, max_chunks = 0, threads = 0, max_chars = 0;
    double      max_kld = NAN, min_top1 = NAN, max_ratio = NAN;
    bool        use_ref = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_common_option(a, usage)) {
            continue;
        } else if (!strcmp(a, "--text")) {
            text_path = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--tokens")) {
            tokens_path = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--tokenizer")) {
            tok_path = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--max-chars")) {
            if (!cli_parse_i64(cli_value(argc, argv, &i), 1, INT64_MAX, &max_chars))
                cli_usage_error("--max-chars needs a positive integer");
        } else if (!strcmp(a, "--ctx")) {
            if (!cli_parse_i64(cli_value(argc, argv, &i), 4, 1 << 20, &ctx))
                cli_usage_error("--ctx needs an integer >= 4, got '%s'", argv[i]);
        } else if (!strcmp(a, "--scoring")) {
            scoring = cli_value(argc, argv, &i);
            if (strcmp(scoring, "half") && strcmp(scoring, "all"))
                cli_usage_error("--scoring: '%s' is not half or all", scoring);
        } else if (!strcmp(a, "--chunks")) {
            if (!cli_parse_i64(cli_value(argc, argv, &i), 1, INT64_MAX, &max_chunks))
                cli_usage_error("--chunks needs a positive integer");
        } else if (!strcmp(a, "--base")) {
            base_path = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--max-kld")) {
            if (!cli_parse_f64(cli_value(argc, argv, &i), &max_kld) || max_kld < 0)
                cli_usage_error("--max-kld needs a number >= 0");
        } else if (!strcmp(a, "--min-top1")) {
            if (!cli_parse_f64(cli_value(argc, argv, &i), &min_top1) || min_top1 < 0 || min_top1 > 100)
                cli_usage_error("--min-top1 needs a percentage in [0, 100]");
        } else if (!strcmp(a, "--max-ppl-ratio")) {
            if (!cli_parse_f64(cli_value(argc, argv, &i), &max_ratio) || max_ratio <= 0)
                cli_usage_error("--max-ppl-ratio needs a number > 0");
        } else if (!strcmp(a, "--json")) {
            json_path = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--device")) {
            device = cli_value(argc, argv, &i);
            if (strcmp(device, "auto") && strcmp(device, "cpu") && strcmp(device, "cuda"))
                cli_usage_error("--device: '%s' is not auto, cpu or cuda", device);
        } else if (cli_threads_option(argc, argv, &i, &threads)) {
            continue;
        } else if (!strcmp(a, "--ref")) {
            use_ref = true;
        } else if (a[0] == '-' && a[1]) {
            cli_usage_error("unknown option '%s'", a);
        } else if (!model_path) {
            model_path = a;
        } else {
            cli_usage_error("unexpected argument '%s'", a);
        }
    }
    if (!model_path) cli_usage_error("no MODEL given");
    if (!text_path == !tokens_path) cli_usage_error("give exactly one of --text FILE and --tokens FILE");
    if (!base_path && (!isnan(max_kld) || !isnan(min_top1) || !isnan(max_ratio)))
        cli_usage_error("--max-kld, --min-top1 and --max-ppl-ratio need --base");
    const bool gates = !isnan(max_kld) || !isnan(min_top1) || !isnan(max_ratio);
    const bool half  = !strcmp(scoring, "half");

    lq_model_params mp = lq_model_default_params();
    mp.backend         = !strcmp(device, "cpu") ? LQ_BACKEND_CPU : !strcmp(device, "cuda") ? LQ_BACKEND_CUDA : LQ_BACKEND_AUTO;
    if (use_ref) mp.backend = LQ_BACKEND_CPU;
    mp.use_ref   = use_ref;
    mp.n_threads = (int)threads;
    mp.max_seq   = ctx;
    mp.max_batch = ctx;
    lq_model     *m = NULL, *b = NULL;
    lq_tokenizer *tok = NULL;
    int32_t      *ids = NULL;
    char         *text = NULL;
    int64_t       n_ids = 0;
    int           rc = CLI_EXIT_FAIL;
    lq_status     st;
    char          data_sha[65] = "", model_sha[65] = "", base_sha[65] = "";
    if ((st = lq_model_open(model_path, &mp, &m)) != LQ_OK) {
        cli_error_status(model_path, st);
        goto done;
    }
    if (base_path && (st = lq_model_open(base_path, &mp, &b)) != LQ_OK) {
        cli_error_status(base_path, st);
        goto done;
    }
    int32_t bos = 1;
    if (text_path) {
        /* the reference's tokenizer when there is one (a GGUF candidate has none beside it) */
        const char *tok_model = b ? base_path : model_path;
        if ((st = cli_open_tokenizer(tok_model, b ? b : m, tok_path, &tok)) != LQ_OK) {
            cli_error_status(tok_path ? tok_path : tok_model, st);
            goto done;
        }
        bos = lq_tokenizer_bos(tok);
        size_t len;
        if (!(text = cli_read_file(text_path, &len))) goto done;
        if (max_chars > 0 && (size_t)max_chars < len) len = (size_t)max_chars;
        text[len]  = 0;
        size_t cap = len + 16, n = 0;
        ids        = malloc(cap * sizeof *ids);
        if (!ids || (st = lq_tokenizer_encode(tok, text, len, true, ids, cap, &n)) != LQ_OK) {
            cli_error_status(text_path, ids ? st : LQ_ERR_NOMEM);
            goto done;
        }
        n_ids = (int64_t)n;
        sha256_file(text_path, data_sha);
    } else {
        if (!(ids = read_token_file(tokens_path, &n_ids))) goto done;
        sha256_file(tokens_path, data_sha);
    }
    sha256_weights(m, model_sha);
    if (b) sha256_weights(b, base_sha);

    lq_eval_params ep = lq_eval_default_params();
    ep.ctx            = ctx;
    ep.mode           = half ? LQ_SCORE_HALF : LQ_SCORE_ALL;
    ep.max_chunks     = max_chunks;
    ep.bos            = bos;
    ep.progress       = g_progress ? cli_progress : NULL;
    lq_eval_result r;
    st = lq_eval_run(m, b, ids, n_ids, &ep, &r);
    cli_progress_end();
    if (st != LQ_OK) {
        cli_error_status("evaluation", st);
        goto done;
    }
    /* gates */
    char fail_msg[256] = "";
    if (b) {
        if (!isnan(max_kld) && r.kld_mean > max_kld)
            snprintf(fail_msg, sizeof fail_msg, "mean KLD %.6g > --max-kld %.6g (over by %.3g)", r.kld_mean, max_kld,
                     r.kld_mean - max_kld);
        else if (!isnan(min_top1) && 100.0 * r.top1 < min_top1)
            snprintf(fail_msg, sizeof fail_msg, "same-top-token %.3f%% < --min-top1 %.3f%% (short by %.3f points)",
                     100.0 * r.top1, min_top1, min_top1 - 100.0 * r.top1);
        else if (!isnan(max_ratio) && r.ppl_ratio > max_ratio)
            snprintf(fail_msg, sizeof fail_msg, "ppl ratio %.6f > --max-ppl-ratio %.6f (over by %.3g)", r.ppl_ratio,
                     max_ratio, r.ppl_ratio - max_ratio);
    }
    const char *dev  = lq_model_backend(m) == LQ_BACKEND_CUDA ? "cuda" : use_ref ? "cpu-ref" : "cpu";
    int         nthr = (int)threads;
#ifdef _OPENMP
    if (!nthr) nthr = omp_get_max_threads();
#else
    nthr = 1;
#endif
    const bool json_stdout = json_path && !strcmp(json_path, "-");
    if (!json_stdout) {
        char a1[32], a2[32];
        printf("model: %s\n", model_path);
        if (b) printf("base: %s\n", base_path);
        printf("data: %s (%s tokens), ctx %lld, scoring %s, %lld chunks x %lld = %s predictions\n",
               text_path ? text_path : tokens_path, cli_commas((uint64_t)n_ids, a1, sizeof a1), (long long)ctx,
               half ? "half (llama.cpp)" : "all", (long long)r.n_chunks,
               (long long)(r.n_scored / (r.n_chunks ? r.n_chunks : 1)), cli_commas((uint64_t)r.n_scored, a2, sizeof a2));
        printf("perplexity: %.6f +/- %.6f (mean nll %.6f)\n", r.ppl, r.ppl_se, r.nll_mean);
        if (b) {
            printf("base perplexity: %.6f +/- %.6f\n", r.base_ppl, r.base_ppl_se);
            printf("ppl ratio: %.6f +/- %.6f (mean ln ratio %.6g +/- %.3g, nll correlation %.4f)\n", r.ppl_ratio,
                   r.ppl_ratio_se, r.ln_ratio_mean, r.ln_ratio_se, r.nll_cor);
            printf("mean KLD: %.6g +/- %.3g\n", r.kld_mean, r.kld_se);
            printf("KLD percentiles: median %.4g, p90 %.4g, p99 %.4g, p99.9 %.4g, max %.4g\n", r.kld_median, r.kld_p90,
                   r.kld_p99, r.kld_p999, r.kld_max);
            printf("same top token: %.3f%% +/- %.3f%%\n", 100.0 * r.top1, 100.0 * r.top1_se);
            printf("delta-p (true token): mean %.4g%% +/- %.3g%%, rms %.4g%%, p1 %.4g%%, median %.4g%%, p99 %.4g%%\n",
                   100 * r.dp_mean, 100 * r.dp_se, 100 * r.dp_rms, 100 * r.dp_p01, 100 * r.dp_median, 100 * r.dp_p99);
        }
        printf("speed: %.1f tokens/s (%s, %d threads)\n", r.tokens_per_s, dev, nthr);
        if (gates) printf("verdict: %s\n", fail_msg[0] ? "FAIL" : "PASS");
    }
    if (json_path) {
        lq_json_writer *w = lq_json_writer_init(2);
        lq_json_obj_begin(w);
        lq_json_key(w, "tool");
        lq_json_str(w, g_tool);
        lq_json_key(w, "version");
        lq_json_str(w, lq_version());
        lq_json_key(w, "model");
        lq_json_obj_begin(w);
        lq_json_key(w, "path");
        lq_json_str(w, model_path);
        lq_json_key(w, "weights_sha256");
        lq_json_str(w, model_sha);
        lq_json_obj_end(w);
        if (b) {
            lq_json_key(w, "base");
            lq_json_obj_begin(w);
            lq_json_key(w, "path");
            lq_json_str(w, base_path);
            lq_json_key(w, "weights_sha256");
            lq_json_str(w, base_sha);
            lq_json_obj_end(w);
        }
        lq_json_key(w, "data");
        lq_json_obj_begin(w);
        lq_json_key(w, "path");
        lq_json_str(w, text_path ? text_path : tokens_path);
        lq_json_key(w, "sha256");
        lq_json_str(w, data_sha);
        lq_json_key(w, "tokens");
        lq_json_i64(w, n_ids);
        if (max_chars) {
            lq_json_key(w, "max_chars");
            lq_json_i64(w, max_chars);
        }
        lq_json_obj_end(w);
        lq_json_key(w, "options");
        lq_json_obj_begin(w);
        lq_json_key(w, "ctx");
        lq_json_i64(w, ctx);
        lq_json_key(w, "scoring");
        lq_json_str(w, scoring);
        lq_json_key(w, "chunks");
        lq_json_i64(w, r.n_chunks);
        lq_json_key(w, "device");
        lq_json_str(w, dev);
        lq_json_key(w, "threads");
        lq_json_i64(w, nthr);
        lq_json_obj_end(w);
        lq_json_key(w, "results");
        lq_json_obj_begin(w);
        lq_json_key(w, "predictions");
        lq_json_i64(w, r.n_scored);
        put_kv_f(w, "ppl", r.ppl);
        put_kv_f(w, "ppl_se", r.ppl_se);
        put_kv_f(w, "nll_mean", r.nll_mean);
        put_kv_f(w, "tokens_per_s", r.tokens_per_s);
        if (b) {
            put_kv_f(w, "base_ppl", r.base_ppl);
            put_kv_f(w, "base_ppl_se", r.base_ppl_se);
            put_kv_f(w, "ppl_ratio", r.ppl_ratio);
            put_kv_f(w, "ppl_ratio_se", r.ppl_ratio_se);
            put_kv_f(w, "ln_ratio_mean", r.ln_ratio_mean);
            put_kv_f(w, "ln_ratio_se", r.ln_ratio_se);
            put_kv_f(w, "nll_correlation", r.nll_cor);
            put_kv_f(w, "kld_mean", r.kld_mean);
            put_kv_f(w, "kld_se", r.kld_se);
            lq_json_key(w, "kld_percentiles");
            lq_json_obj_begin(w);
            put_kv_f(w, "min", r.kld_min);
            put_kv_f(w, "p1", r.kld_p01);
            put_kv_f(w, "p5", r.kld_p05);
            put_kv_f(w, "p10", r.kld_p10);
            put_kv_f(w, "median", r.kld_median);
            put_kv_f(w, "p90", r.kld_p90);
            put_kv_f(w, "p95", r.kld_p95);
            put_kv_f(w, "p99", r.kld_p99);
            put_kv_f(w, "p99.9", r.kld_p999);
            put_kv_f(w, "max", r.kld_max);
            lq_json_obj_end(w);
            put_kv_f(w, "same_top_fraction", r.top1);
            put_kv_f(w, "same_top_se", r.top1_se);
            lq_json_key(w, "delta_p");
            lq_json_obj_begin(w);
            put_kv_f(w, "mean", r.dp_mean);
            put_kv_f(w, "se", r.dp_se);
            put_kv_f(w, "rms", r.dp_rms);
            put_kv_f(w, "min", r.dp_min);
            put_kv_f(w, "p1", r.dp_p01);
            put_kv_f(w, "median", r.dp_median);
            put_kv_f(w, "p99", r.dp_p99);
            put_kv_f(w, "max", r.dp_max);
            lq_json_obj_end(w);
        }
        lq_json_obj_end(w);
        if (gates) {
            lq_json_key(w, "gates");
            lq_json_obj_begin(w);
            if (!isnan(max_kld)) put_kv_f(w, "max_kld", max_kld);
            if (!isnan(min_top1)) put_kv_f(w, "min_top1_percent", min_top1);
            if (!isnan(max_ratio)) put_kv_f(w, "max_ppl_ratio", max_ratio);
            lq_json_key(w, "verdict");
            lq_json_str(w, fail_msg[0] ? "fail" : "pass");
            if (fail_msg[0]) {
                lq_json_key(w, "reason");
                lq_json_str(w, fail_msg);
            }
            lq_json_obj_end(w);
        }
        lq_json_obj_end(w);
        char  *js;
        size_t jl;
        if ((st = lq_json_writer_finish(w, &js, &jl)) != LQ_OK) {
            cli_error_status("JSON report", st);
            goto done;
        }
        FILE *jf = json_stdout ? stdout : fopen(json_path, "wb");
        const bool ok = jf && fwrite(js, 1, jl, jf) == jl && fputc('\n', jf) != EOF;
        if (jf && !json_stdout && fclose(jf) != 0) jf = NULL;
        lq_free(js);
        if (!ok || !jf) {
            cli_error("%s: cannot write the JSON report", json_path);
            goto done;
        }
    }
    if (fail_msg[0]) {
        fflush(stdout);
        fprintf(stderr, "%s: gate failed: %s\n", g_tool, fail_msg);
        rc = CLI_EXIT_GATE;
    } else {
        rc = CLI_EXIT_OK;
    }
done:
    free(ids);
    free(text);
    lq_tokenizer_free(tok);
    lq_model_free(m);
    lq_model_free(b);
    if (rc == CLI_EXIT_OK && fflush(stdout) != 0) rc = CLI_EXIT_FAIL;
    return rc;
}
