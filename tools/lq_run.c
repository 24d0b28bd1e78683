/* lq_run.c : generate text from a prompt (greedy, temperature, top-p, seed)
 * on the CPU or CUDA, with llama2.c's `run` semantics: --steps counts
 * positions from BOS (prompt included), the prompt is echoed as it is fed,
 * generation stops early at BOS or EOS. The same model, prompt and options
 * give the same bytes (a fixed default seed; xorshift sampling). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli_util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: %s [options] MODEL [PROMPT]\n"
            "Generate text with a Llama-family model.\n"
            "\n"
            "MODEL: an HF model directory (single or sharded safetensors, pytorch_model.bin),\n"
            "       a .safetensors/.bin file beside its config.json, or a llama2.c .bin.\n"
            "\n"
            "options:\n"
            "  -p, --prompt TEXT    [\"\"] the prompt (or the second argument)\n"
            "  -n, --steps N        [256] positions to run, counted from BOS, prompt included\n"
            "  -t, --temp T         [1.0] temperature; 0 = greedy (argmax)\n"
            "  --top-p P            [0.9] nucleus sampling threshold; 0 or 1 = off\n"
            "  -s, --seed N         [42] sampling seed\n"
            "  --tokenizer PATH     tokenizer.json, tokenizer.model or llama2.c tokenizer.bin\n"
            "                       (default: the model directory's; for a llama2.c file,\n"
            "                       tokenizer.bin or a single tok*.bin beside it)\n"
            "  --device D           [auto] auto, cpu or cuda\n"
            "  --threads N          [auto] CPU threads\n"
            "  --ref                CPU: the plain-C reference kernels (slow; the oracle)\n"
            "  --ctx N              [model's] KV cache positions\n"
            "  -q, -v               quieter / more verbose (tokens/s on stderr with -v)\n"
            "  -V, --version        print the version\n"
            "  -h, --help           this help\n"
            "\n"
            "exit: 0 ok, 1 failure, 2 usage.\n",
            g_tool);
}

/* xorshift64* (Marsaglia / Vigna), as llama2.c's sampler uses */
static uint32_t rng_u32(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (uint32_t)((*s * 0x2545F4914F6CDD1DULL) >> 32);
}
static float rng_f32(uint64_t *s) { return (float)(rng_u32(s) >> 8) / 16777216.0f; }

typedef struct {
    float   p;
    int32_t i;
} prob_idx;

static int cmp_prob_desc(const void *a, const void *b) {
    const float x = ((const prob_idx *)a)->p, y = ((const prob_idx *)b)->p;
    return x > y ? -1 : x < y;
}

static int32_t sample(float *logits, int64_t V, float temp, float top_p, uint64_t *rng, prob_idx *scratch) {
    int32_t best = 0;
    for (int64_t v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = (int32_t)v;
    if (temp == 0.f) return best;
    const float mx = logits[best];
    double      s  = 0;
    for (int64_t v = 0; v < V; v++) s += (logits[v] = expf((logits[v] - mx) / temp));
    for (int64_t v = 0; v < V; v++) logits[v] = (float)(logits[v] / s);
    const float coin = rng_f32(rng);
    if (top_p <= 0.f || top_p >= 1.f) {
        float cdf = 0.f;
        for (int64_t v = 0; v < V; v++)
            if (coin < (cdf += logits[v])) return (int32_t)v;
        return (int32_t)(V - 1);
    }
    /* nucleus: drop tokens that cannot be in the top-p set before sorting */
    const float cutoff = (1.0f - top_p) / (float)(V - 1);
    int64_t     n      = 0;
    for (int64_t v = 0; v < V; v++)
        if (logits[v] >= cutoff) scratch[n].p = logits[v], scratch[n++].i = (int32_t)v;
    qsort(scratch, (size_t)n, sizeof *scratch, cmp_prob_desc);
    float   cum  = 0.f;
    int64_t last = n - 1;
    for (int64_t i = 0; i < n; i++)
        if ((cum += scratch[i].p) > top_p) {
            last = i;
            break;
        }
    const float r = coin * cum;
    float       c = 0.f;
    for (int64_t i = 0; i <= last; i++)
        if (r < (c += scratch[i].p)) return scratch[i].i;
    return scratch[last].i;
}

/* llama2.c's safe_printf: skip lone non-printable bytes */
static void put_piece(const char *p, int n) {
    if (n == 1 && (unsigned char)p[0] < 32 && p[0] != '\n' && p[0] != '\t' && p[0] != '\r' && p[0] != ' ') return;
    fwrite(p, 1, (size_t)n, stdout);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    cli_init("lq-run");
    const char     *model_path = NULL, *prompt = NULL, *tok_path = NULL, *device = "auto";
    int64_t         steps = 256, seed = 42, threads = 0, ctx = 0;
    double          temp = 1.0, top_p = 0.9;
    lq_model_params mp = lq_model_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_common_option(a, usage)) {
            continue;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            prompt = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "-n") || !strcmp(a, "--steps")) {
            if (!cli_parse_i64(cli_value(argc, argv, &i), 1, 1 << 24, &steps))
                cli_usage_error("--steps needs an integer >= 1, got '%s'", argv[i]);
        } else if (!strcmp(a, "-t") || !strcmp(a, "--temp")) {
            if (!cli_parse_f64(cli_value(argc, argv, &i), &temp) || temp < 0)
                cli_usage_error("--temp needs a number >= 0, got '%s'", argv[i]);
        } else if (!strcmp(a, "--top-p")) {
            if (!cli_parse_f64(cli_value(argc, argv, &i), &top_p) || top_p < 0 || top_p > 1)
                cli_usage_error("--top-p needs a number in [0, 1], got '%s'", argv[i]);
        } else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
            if (!cli_parse_i64(cli_value(argc, argv, &i), 0, INT64_MAX, &seed))
                cli_usage_error("--seed needs a non-negative integer, got '%s'", argv[i]);
        } else if (!strcmp(a, "--tokenizer")) {
            tok_path = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--device")) {
            device = cli_value(argc, argv, &i);
        } else if (cli_threads_option(argc, argv, &i, &threads)) {
            continue;
        } else if (!strcmp(a, "--ctx")) {
            if (!cli_parse_i64(cli_value(argc, argv, &i), 2, 1 << 24, &ctx))
                cli_usage_error("--ctx needs an integer >= 2, got '%s'", argv[i]);
        } else if (!strcmp(a, "--ref")) {
            mp.use_ref = true;
        } else if (a[0] == '-' && a[1]) {
            cli_usage_error("unknown option '%s'", a);
        } else if (!model_path) {
            model_path = a;
        } else if (!prompt) {
            prompt = a;
        } else {
            cli_usage_error("unexpected argument '%s'", a);
        }
    }
    if (!model_path) cli_usage_error("no MODEL given");
    if (!strcmp(device, "cpu"))
        mp.backend = LQ_BACKEND_CPU;
    else if (!strcmp(device, "cuda"))
        mp.backend = LQ_BACKEND_CUDA;
    else if (strcmp(device, "auto") != 0)
        cli_usage_error("--device: '%s' is not auto, cpu or cuda", device);
    if (mp.use_ref && mp.backend == LQ_BACKEND_AUTO) mp.backend = LQ_BACKEND_CPU;
    mp.n_threads = (int)threads;
    mp.max_seq   = ctx;
    mp.max_batch = 64;

    lq_model     *m   = NULL;
    lq_tokenizer *tok = NULL;
    int32_t      *ids = NULL;
    float        *logits = NULL;
    prob_idx     *scratch = NULL;
    int           rc = CLI_EXIT_FAIL;
    lq_status     st = lq_model_open(model_path, &mp, &m);
    if (st != LQ_OK) {
        cli_error_status(model_path, st);
        goto done;
    }
    if ((st = cli_open_tokenizer(model_path, m, tok_path, &tok)) != LQ_OK) {
        cli_error_status(tok_path ? tok_path : model_path, st);
        goto done;
    }
    const int64_t V = lq_model_config_of(m)->vocab_size;
    if (steps > lq_model_max_seq(m)) steps = lq_model_max_seq(m);
    const char *text = prompt ? prompt : "";
    size_t      n_ids = 0, cap = strlen(text) + 8;
    ids = malloc(cap * sizeof *ids);
    logits = malloc((size_t)V * sizeof *logits);
    scratch = malloc((size_t)V * sizeof *scratch);
    if (!ids || !logits || !scratch) {
        cli_error("out of memory");
        goto done;
    }
    if ((st = lq_tokenizer_encode(tok, text, strlen(text), true, ids, cap, &n_ids)) != LQ_OK) {
        cli_error_status("prompt", st);
        goto done;
    }
    if (n_ids == 0) {
        cli_error("the tokenizer has no BOS token and the prompt is empty");
        goto done;
    }
    const int32_t bos = lq_tokenizer_bos(tok), eos = lq_tokenizer_eos(tok);
    uint64_t      rng = (uint64_t)seed * 0x9E3779B97F4A7C15ULL + 1;
    int32_t       token = ids[0];
    int64_t       pos = 0, generated = 0;
    double        t_start = 0;
    /* the prompt in one batch (all but its last token), then one token per step */
    if (n_ids > 1) {
        const int64_t np = (int64_t)n_ids - 1 < steps ? (int64_t)n_ids - 1 : steps;
        if ((st = lq_model_forward(m, ids, np, 0, logits, true)) != LQ_OK) goto fail;
        for (int64_t i = 0; i < np; i++) {
            char buf[256];
            const int k = lq_tokenizer_decode_piece(tok, ids[i], ids[i + 1], buf, sizeof buf);
            if (k > 0) put_piece(buf, k);
        }
        pos   = np;
        token = ids[np];
    }
    fflush(stdout);
    t_start = now_s();
    for (; pos < steps; pos++) {
        if ((st = lq_model_forward(m, &token, 1, pos, logits, true)) != LQ_OK) goto fail;
        int32_t next;
        if (pos + 1 < (int64_t)n_ids) {
            next = ids[pos + 1];
        } else {
            next = sample(logits, V, (float)temp, (float)top_p, &rng, scratch);
            generated++;
        }
        if (next == bos || (next == eos && pos + 1 >= (int64_t)n_ids)) break;
        char      buf[256];
        const int k = lq_tokenizer_decode_piece(tok, token, next, buf, sizeof buf);
        if (k > 0) put_piece(buf, k);
        fflush(stdout);
        token = next;
    }
    printf("\n");
    if (generated > 0)
        DISPLAY(3, "%s: %lld tokens in %.3f s, %.1f tokens/s (%s)\n", g_tool, (long long)generated, now_s() - t_start,
                (double)generated / (now_s() - t_start), lq_model_backend(m) == LQ_BACKEND_CUDA ? "cuda" : "cpu");
    rc = CLI_EXIT_OK;
    goto done;
fail:
    cli_error_status("forward pass", st);
done:
    free(ids);
    free(logits);
    free(scratch);
    lq_tokenizer_free(tok);
    lq_model_free(m);
    if (rc == CLI_EXIT_OK && fflush(stdout) != 0) rc = CLI_EXIT_FAIL;
    return rc;
}
