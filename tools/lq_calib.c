/* lq_calib.c : activation range calibration (TensorRT-style entropy, ONNX
 * Runtime's entropy variant, max, percentile, MSE) of every Linear input of
 * a model over a calibration set.
 *
 *   lq-calib --calib data.txt MODEL -o ranges.json [--method entropy]
 *            [--trt-cache calib.cache] [--dump-hist hist.json]
 *
 * The ranges table (JSON, lq_actstats.h) feeds `lq-quant --w8a8
 * --act-scales`; the TensorRT cache is the text TensorRT and ONNX Runtime's
 * TensorRT EP read. Results on stdout, logs and progress on stderr. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: %s [options] --calib FILE MODEL\n"
            "Calibrate the int8 ranges of MODEL's Linear inputs over a calibration set:\n"
            "histograms of every activation (2048 bins of |x|, NVIDIA's collector), then\n"
            "one amax per tensor by the chosen method.\n"
            "\n"
            "data:\n"
            "  --calib FILE         .txt[.gz], .jsonl[.gz] (field text), tokens .bin/.u16, .u32,\n"
            "                       .npy, .npz (input_ids)\n"
            "  --calib-samples N    [32] windows       --calib-len L  [512] tokens per window\n"
            "  --seed S             [0] window choice  --tokenizer PATH  [MODEL's]\n"
            "method:\n"
            "  --method M           [entropy] entropy (TensorRT/ModelOpt: KL over 128 levels, last\n"
            "                       minimum), entropy-ort (ONNX Runtime: smoothed, symmetric,\n"
            "                       first minimum), max, percentile, mse\n"
            "  --percentile P       [99.99] for --method percentile\n"
            "  --bins N             [2048] histogram bins\n"
            "  --all-methods        also list every method's amax per tensor in the table\n"
            "output:\n"
            "  -o, --output FILE    the ranges table (JSON; lq-quant --act-scales reads it)\n"
            "  --trt-cache FILE     a TensorRT calibration cache (scale = amax/127 as f32 hex)\n"
            "  --trt-version V      [8600] the version in the cache header\n"
            "  --dump-hist FILE     every histogram as JSON (tests/interop/entropy_oracle.py reads it)\n"
            "  --json               a JSON report on stdout instead of the table\n"
            "execution:\n"
            "  --device D           [auto] auto, cpu or cuda\n"
            "  -t, --threads N      [auto] CPU threads\n"
            "  --no-progress        no progress bar (shown only when stderr is a TTY)\n"
            "  -q, -v               quieter / more verbose\n"
            "  -V, --version        print the version\n"
            "  -h, --help           this help\n"
            "\n"
            "exit: 0 ok, 1 failure, 2 usage.\n",
            g_tool);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    cli_init("lq-calib");
    const char *model_path = NULL, *calib_path = NULL, *tok_path = NULL, *out_path = NULL, *trt_path = NULL;
    const char *dump_path = NULL, *method_s = "entropy", *device = "auto";
    int64_t     samples = 32, len = 512, seed = 0, bins = 2048, trt_version = 8600, n_threads = 0;
    double      pct = 99.99;
    bool        all_methods = false, json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_common_option(a, usage)) continue;
        if (cli_threads_option(argc, argv, &i, &n_threads)) continue;
        if (!strcmp(a, "--calib")) {
            calib_path = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--calib-samples") || !strcmp(a, "--calib-len") || !strcmp(a, "--seed") ||
                   !strcmp(a, "--bins") || !strcmp(a, "--trt-version")) {
            const char *v   = cli_value(argc, argv, &i);
            int64_t    *dst = !strcmp(a, "--calib-samples") ? &samples
                              : !strcmp(a, "--calib-len")   ? &len
                              : !strcmp(a, "--seed")        ? &seed
                              : !strcmp(a, "--bins")        ? &bins
                                                            : &trt_version;
            const int64_t lo = dst == &seed ? 0 : dst == &bins ? 256 : 1;
            const int64_t hi = dst == &bins ? (1 << 20) : dst == &len ? (1 << 20) : INT32_MAX;
            if (!cli_parse_i64(v, lo, hi, dst)) cli_usage_error("%s: '%s' is not a number in [%lld, %lld]", a, v,
                                                                (long long)lo, (long long)hi);
        } else if (!strcmp(a, "--method")) {
            method_s = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--percentile")) {
            const char *v = cli_value(argc, argv, &i);
            if (!cli_parse_f64(v, &pct) || !(pct > 0 && pct <= 100))
                cli_usage_error("--percentile: '%s' is not in (0, 100]", v);
        } else if (!strcmp(a, "--all-methods")) {
            all_methods = true;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            out_path = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--trt-cache")) {
            trt_path = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--dump-hist")) {
            dump_path = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--tokenizer")) {
            tok_path = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--device")) {
            device = cli_value(argc, argv, &i);
            if (strcmp(device, "auto") && strcmp(device, "cpu") && strcmp(device, "cuda"))
                cli_usage_error("--device: '%s' is not auto, cpu or cuda", device);
        } else if (a[0] == '-' && a[1]) {
            cli_usage_error("unknown option '%s'", a);
        } else if (!model_path) {
            model_path = a;
        } else {
            cli_usage_error("unexpected argument '%s'", a);
        }
    }
    if (!model_path) cli_usage_error("need MODEL");
    if (!calib_path) cli_usage_error("need --calib FILE");
    lq_amax_method method;
    if (lq_amax_method_from_name(method_s, &method) != LQ_OK)
        cli_usage_error("--method: '%s' is not entropy, entropy-ort, max, percentile or mse", method_s);
    lq_amax_params ap = lq_amax_default_params(method);
    ap.percentile     = pct;

    int              rc = CLI_EXIT_FAIL;
    lq_model        *m  = NULL;
    lq_tokenizer    *tok = NULL;
    lq_calib_set    *cs  = NULL;
    lq_actstats     *as  = NULL;
    double          *amax = NULL;
    int64_t         *bin  = NULL;
    lq_model_params  mp  = lq_model_default_params();
    mp.backend           = !strcmp(device, "cpu") ? LQ_BACKEND_CPU : !strcmp(device, "cuda") ? LQ_BACKEND_CUDA
                                                                                             : LQ_BACKEND_AUTO;
    mp.n_threads         = (int)n_threads;
    mp.max_seq           = len;
    lq_status st         = lq_model_open(model_path, &mp, &m);
    if (st != LQ_OK) {
        cli_error_status(model_path, st);
        goto done;
    }
    st = cli_open_tokenizer(model_path, m, tok_path, &tok);
    if (st != LQ_OK && st != LQ_ERR_NOT_FOUND) {
        cli_error_status(tok_path ? tok_path : model_path, st);
        goto done;
    }
    lq_calib_params cp = lq_calib_default_params();
    cp.n_samples       = samples;
    cp.seq_len         = len;
    cp.seed            = (uint64_t)seed;
    cp.vocab_size      = lq_model_config_of(m)->vocab_size;
    if ((st = lq_calib_load(calib_path, tok, &cp, &cs)) != LQ_OK) {
        cli_error_status(calib_path, st);
        goto done;
    }
    /* the same windows through the plain forward pass: the overhead figure of the statistics */
    const double t0 = now_s();
    {
        float *lg = malloc((size_t)lq_model_config_of(m)->vocab_size * sizeof *lg);
        for (int64_t k = 0; lg && k < cs->n_samples && st == LQ_OK; k++)
            st = lq_model_forward(m, cs->tokens + k * cs->seq_len, cs->seq_len, 0, lg, true);
        free(lg);
        if (st != LQ_OK) {
            cli_error_status(model_path, st);
            goto done;
        }
    }
    const double        t_fwd = now_s() - t0;
    lq_actstats_params  sp    = lq_actstats_default_params();
    sp.n_bins                 = bins;
    sp.signed_hist            = method == LQ_AMAX_ENTROPY_ORT || all_methods || dump_path;
    sp.n_threads              = (int)n_threads;
    sp.progress               = cli_progress;
    st                        = lq_actstats_collect(m, cs, &sp, &as);
    cli_progress_end();
    if (st != LQ_OK) {
        cli_error_status(model_path, st);
        goto done;
    }
    const int64_t P = lq_actstats_count(as);
    amax            = calloc((size_t)P, sizeof *amax);
    bin             = calloc((size_t)P, sizeof *bin);
    if (!amax || !bin) {
        cli_error("out of memory");
        goto done;
    }
    const double t1 = now_s();
    if ((st = lq_actstats_amax(as, &ap, amax, bin)) != LQ_OK) {
        cli_error_status(model_path, st);
        goto done;
    }
    const double t_search = now_s() - t1;
    const char  *cbase    = strrchr(calib_path, '/');
    if (out_path && (st = lq_act_ranges_write_json(as, &ap, all_methods, cs, cbase ? cbase + 1 : calib_path,
                                                   model_path, out_path)) != LQ_OK) {
        cli_error_status(out_path, st);
        goto done;
    }
    if (trt_path && (st = lq_act_trt_cache_write(as, amax, (int)trt_version, trt_path)) != LQ_OK) {
        cli_error_status(trt_path, st);
        goto done;
    }
    if (dump_path && (st = lq_act_hist_dump_json(as, dump_path)) != LQ_OK) {
        cli_error_status(dump_path, st);
        goto done;
    }
    const double ratio = t_fwd > 0 ? lq_actstats_seconds(as) / t_fwd : 0;
    if (json) {
        lq_json_writer *w = lq_json_writer_init(2);
        lq_json_obj_begin(w);
        lq_json_key(w, "tool");
        lq_json_str(w, g_tool);
        lq_json_key(w, "version");
        lq_json_str(w, lq_version());
        lq_json_key(w, "model");
        lq_json_str(w, model_path);
        lq_json_key(w, "calibration");
        lq_json_obj_begin(w);
        lq_json_key(w, "file");
        lq_json_str(w, calib_path);
        lq_json_key(w, "sha256");
        lq_json_str(w, cs->sha256);
        lq_json_key(w, "samples");
        lq_json_i64(w, cs->n_samples);
        lq_json_key(w, "seq_len");
        lq_json_i64(w, cs->seq_len);
        lq_json_key(w, "seed");
        lq_json_i64(w, seed);
        lq_json_obj_end(w);
        lq_json_key(w, "method");
        lq_json_str(w, lq_amax_method_name(method));
        lq_json_key(w, "device");
        lq_json_str(w, lq_model_backend(m) == LQ_BACKEND_CUDA ? "cuda" : "cpu");
        lq_json_key(w, "forward_seconds");
        lq_json_f64(w, t_fwd);
        lq_json_key(w, "calibration_seconds");
        lq_json_f64(w, lq_actstats_seconds(as));
        lq_json_key(w, "calibration_over_forward");
        lq_json_f64(w, ratio);
        lq_json_key(w, "search_seconds");
        lq_json_f64(w, t_search);
        lq_json_key(w, "tensors");
        lq_json_arr_begin(w);
        for (int64_t i = 0; i < P; i++) {
            const lq_hist *h = lq_actstats_hist(as, i);
            lq_json_obj_begin(w);
            lq_json_key(w, "input_of");
            lq_json_arr_begin(w);
            for (int64_t j = 0; j < lq_actstats_n_modules(as, i); j++) lq_json_str(w, lq_actstats_module(as, i, j));
            lq_json_arr_end(w);
            lq_json_key(w, "absmax");
            lq_json_f64(w, lq_hist_absmax(h));
            lq_json_key(w, "amax");
            lq_json_f64(w, amax[i]);
            lq_json_key(w, "bin");
            lq_json_i64(w, bin[i]);
            lq_json_obj_end(w);
        }
        lq_json_arr_end(w);
        lq_json_obj_end(w);
        char  *text;
        size_t tl;
        if (lq_json_writer_finish(w, &text, &tl) == LQ_OK) {
            printf("%s\n", text);
            lq_free(text);
        }
    } else {
        printf("%-40s %12s %12s %12s %6s\n", "input of", "absmax", "amax", "scale", "bin");
        for (int64_t i = 0; i < P; i++) {
            const lq_hist *h = lq_actstats_hist(as, i);
            char           names[256] = "";
            for (int64_t j = 0; j < lq_actstats_n_modules(as, i); j++) {
                const char *mname = lq_actstats_module(as, i, j);
                const char *s     = j ? strrchr(mname, '.') + 1 : mname + strlen("model.");
                strncat(names, j ? "," : "", sizeof names - strlen(names) - 1);
                strncat(names, s, sizeof names - strlen(names) - 1);
            }
            printf("%-40s %12.6g %12.6g %12.6g %6lld\n", names, lq_hist_absmax(h), amax[i], amax[i] / 127.0,
                   (long long)bin[i]);
        }
        DISPLAY(2, "%s: %lld tensors, %lld tokens, method %s; calibration pass %.2f s = %.2fx one forward pass "
                   "(%.2f s), threshold search %.1f ms\n",
                g_tool, (long long)P, (long long)lq_actstats_tokens(as), lq_amax_method_name(method),
                lq_actstats_seconds(as), ratio, t_fwd, 1e3 * t_search);
    }
    rc = CLI_EXIT_OK;
done:
    free(amax);
    free(bin);
    lq_actstats_free(as);
    lq_calib_free(cs);
    lq_tokenizer_free(tok);
    lq_model_free(m);
    if (rc == CLI_EXIT_OK && fflush(stdout) != 0) rc = CLI_EXIT_FAIL;
    return rc;
}
