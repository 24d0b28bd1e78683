/* lq_synth.c : write a random-weight (synthetic) Hugging Face Llama
 * checkpoint of given shapes for benchmarks (lq_synth_write). */
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: %s [options] OUTDIR\n"
            "Write a random-weight (synthetic) Llama checkpoint: config.json + safetensors.\n"
            "Weights are uniform with std 0.02, norms 1, deterministic for a seed.\n"
            "\n"
            "options (defaults: a 1B-like shape):\n"
            "  --dim N            [2048] hidden size\n"
            "  --hidden N         [5632] MLP intermediate size\n"
            "  --layers N         [22]\n"
            "  --heads N          [32]\n"
            "  --kv-heads N       [4]\n"
            "  --vocab N          [32000]\n"
            "  --ctx N            [2048] max_position_embeddings\n"
            "  --dtype T          [f16] f32, f16 or bf16\n"
            "  --tied             tie lm_head to the embedding\n"
            "  --seed N           [1]\n"
            "  --max-shard-size S [one file] e.g. 2GB\n"
            "  -h, --help         this help\n",
            g_tool);
}

int main(int argc, char **argv) {
    cli_init("lq-synth");
    lq_synth_params p   = lq_synth_default_params();
    const char     *out = NULL, *dt = "f16";
    int64_t         seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a      = argv[i];
        int64_t    *target = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--dim")) {
            target = &p.dim;
        } else if (!strcmp(a, "--hidden")) {
            target = &p.hidden;
        } else if (!strcmp(a, "--layers")) {
            target = &p.n_layers;
        } else if (!strcmp(a, "--heads")) {
            target = &p.n_heads;
        } else if (!strcmp(a, "--kv-heads")) {
            target = &p.n_kv_heads;
        } else if (!strcmp(a, "--vocab")) {
            target = &p.vocab;
        } else if (!strcmp(a, "--ctx")) {
            target = &p.max_pos;
        } else if (!strcmp(a, "--seed")) {
            target = &seed;
        } else if (!strcmp(a, "--dtype")) {
            dt = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--tied")) {
            p.tied = true;
        } else if (!strcmp(a, "--max-shard-size")) {
            if (!cli_parse_size(cli_value(argc, argv, &i), &p.max_shard_size))
                cli_usage_error("--max-shard-size: '%s' is not a size", argv[i]);
        } else if (a[0] == '-') {
            cli_usage_error("unknown option '%s'", a);
        } else if (!out) {
            out = a;
        } else {
            cli_usage_error("unexpected argument '%s'", a);
        }
        if (target && !cli_parse_i64(cli_value(argc, argv, &i), target == &seed ? 0 : 1, 1 << 30, target))
            cli_usage_error("%s needs a positive integer, got '%s'", a, argv[i]);
    }
    if (!out) cli_usage_error("no OUTDIR given");
    p.dtype = !strcmp(dt, "f32") ? LQ_DTYPE_F32 : !strcmp(dt, "f16") ? LQ_DTYPE_F16 : !strcmp(dt, "bf16") ? LQ_DTYPE_BF16
                                                                                                       : LQ_DTYPE_COUNT;
    if (p.dtype == LQ_DTYPE_COUNT) cli_usage_error("--dtype: '%s' is not f32, f16 or bf16", dt);
    p.seed     = (uint64_t)seed;
    p.progress = cli_progress;
    uint64_t        params;
    const lq_status st = lq_synth_write(out, &p, &params);
    cli_progress_end();
    if (st != LQ_OK) {
        cli_error_status(out, st);
        return CLI_EXIT_FAIL;
    }
    char a[32];
    printf("%s: synthetic llama, %s parameters, %s\n", out, cli_commas(params, a, sizeof a), lq_dtype_name(p.dtype));
    return 0;
}
