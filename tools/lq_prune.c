/* lq_prune.c : magnitude pruning of a checkpoint's decoder Linear weights,
 * unstructured (per tensor or one global threshold) or N:M along the input
 * dimension, streamed tensor by tensor into a safetensors directory in the
 * source dtypes (lq_prune.h). Embeddings, norms and lm_head are never
 * pruned; --tensor-sparsity overrides the sparsity per tensor by regex and
 * --keep leaves tensors dense. The output is staged and renamed into place.
 *
 *   lq-prune --sparsity 0.3 MODEL OUTDIR
 *   lq-prune --sparsity 0.5 --global MODEL OUTDIR
 *   lq-prune --nm 2:4 MODEL OUTDIR
 *   lq-prune --sparsity 0.5 --wanda --calib data.txt MODEL OUTDIR */
#include <limits.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_util.h"

#define MAX_RULES 64

typedef struct {
    regex_t re;
    char    text[256];
    double  sparsity; /* < 0: --keep */
} prule;

static void usage(FILE *f) {
    fprintf(f,
            "usage: %s [options] MODEL OUTDIR\n"
            "Prune MODEL's decoder Linear weights (q/k/v/o, gate/up/down) by magnitude and write\n"
            "a safetensors directory with the same dtypes; pruned weights are exact zeros.\n"
            "\n"
            "  --sparsity S         fraction of each pruned tensor's weights set to zero (0..1)\n"
            "  --global             one threshold over all pruned tensors together (S of their\n"
            "                       total), instead of S of each tensor\n"
            "  --nm N:M             N:M structured sparsity along the input dimension (2:4, 4:8):\n"
            "                       in each group of M the M-N smallest magnitudes are zeroed\n"
            "  --wanda              Wanda: per output row, zero the smallest |W_ij| * ||X_j||_2, the\n"
            "                       input column norms measured on --calib (activation-aware)\n"
            "  --calib FILE         calibration data for --wanda (.txt[.gz], .jsonl, token files)\n"
            "  --calib-samples N    [128] windows   --calib-len L [512] tokens   --seed S [0]\n"
            "  --tensor-sparsity R=S  sparsity S for tensors whose HF name matches the POSIX\n"
            "                       regex R (first rule wins; repeatable; S=0 leaves them dense)\n"
            "  --keep R             never prune tensors matching R\n"
            "  --dry-run            print the plan, write nothing\n"
            "  --json               a JSON report on stdout (per-tensor and overall sparsity)\n"
            "  --force              replace an existing OUTDIR's weights\n"
            "  -t, --threads N      [auto] threads\n"
            "  --no-fsync           skip fsync (not crash-safe)\n"
            "  --no-progress, -q, -v, -V/--version, -h/--help\n"
            "\n"
            "exit: 0 ok, 1 failure (nothing is left at OUTDIR), 2 usage.\n",
            g_tool);
}

int main(int argc, char **argv) {
    cli_init("lq-prune");
    const char *in_path = NULL, *out_path = NULL, *nm_s = NULL, *calib_path = NULL;
    bool        wanda = false;
    int64_t     calib_samples = 128, calib_len = 512, seed = 0;
    double      sparsity = -1;
    bool        global   = false;
    cli_out_opts oo      = {0};
    int64_t     n_threads = 0;
    prule       rules[MAX_RULES];
    int         n_rules = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_common_option(a, usage)) continue;
        if (cli_output_option(argc, argv, &i, &oo)) continue;
        if (cli_threads_option(argc, argv, &i, &n_threads)) continue;
        if (!strcmp(a, "--sparsity")) {
            const char *v = cli_value(argc, argv, &i);
            if (!cli_parse_f64(v, &sparsity) || !(sparsity >= 0 && sparsity <= 1))
                cli_usage_error("--sparsity: '%s' is not in [0, 1]", v);
        } else if (!strcmp(a, "--global")) {
            global = true;
        } else if (!strcmp(a, "--wanda")) {
            wanda = true;
        } else if (!strcmp(a, "--calib")) {
            calib_path = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--calib-samples") || !strcmp(a, "--calib-len") || !strcmp(a, "--seed")) {
            const char *v   = cli_value(argc, argv, &i);
            int64_t    *dst = !strcmp(a, "--calib-samples") ? &calib_samples : !strcmp(a, "--calib-len") ? &calib_len : &seed;
            if (!cli_parse_i64(v, dst == &seed ? 0 : 1, 1 << 20, dst)) cli_usage_error("%s: '%s' is not valid", a, v);
        } else if (!strcmp(a, "--nm")) {
            nm_s = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--tensor-sparsity") || !strcmp(a, "--keep")) {
            const bool  keep = !strcmp(a, "--keep");
            const char *v    = cli_value(argc, argv, &i);
            if (n_rules == MAX_RULES) cli_usage_error("%s: at most %d rules", a, MAX_RULES);
            prule      *r  = &rules[n_rules];
            const char *eq = keep ? NULL : strrchr(v, '=');
            if (!keep && (!eq || eq == v || !eq[1])) cli_usage_error("--tensor-sparsity: '%s' is not REGEX=S", v);
            const size_t rl = keep ? strlen(v) : (size_t)(eq - v);
            if (rl >= sizeof r->text) cli_usage_error("%s: regex too long", a);
            memcpy(r->text, v, rl);
            r->text[rl] = 0;
            r->sparsity = -1;
            if (!keep && (!cli_parse_f64(eq + 1, &r->sparsity) || !(r->sparsity >= 0 && r->sparsity <= 1)))
                cli_usage_error("--tensor-sparsity: '%s' is not a sparsity in [0, 1]", eq + 1);
            if (regcomp(&r->re, r->text, REG_EXTENDED | REG_NOSUB) != 0) cli_usage_error("%s: bad regex '%s'", a, r->text);
            n_rules++;
        } else if (a[0] == '-' && a[1]) {
            cli_usage_error("unknown option '%s'", a);
        } else if (!in_path) {
            in_path = a;
        } else if (!out_path) {
            out_path = a;
        } else {
            cli_usage_error("unexpected argument '%s'", a);
        }
    }
    if (!in_path || !out_path) cli_usage_error("need MODEL and OUTDIR");
    int nm_n = 0, nm_m = 0;
    if (nm_s) {
        char extra;
        if (sscanf(nm_s, "%d:%d%c", &nm_n, &nm_m, &extra) != 2 || nm_m < 2 || nm_m > 64 || nm_n < 1 || nm_n >= nm_m)
            cli_usage_error("--nm: '%s' is not N:M with 1 <= N < M <= 64 (e.g. 2:4)", nm_s);
        if (sparsity >= 0 || global) cli_usage_error("--nm sets the sparsity (1 - N/M): drop --sparsity and --global");
    } else if (sparsity < 0 && n_rules == 0) {
        cli_usage_error("give --sparsity S, --nm N:M or --tensor-sparsity rules");
    }
    if (global && n_rules) cli_usage_error("--global uses one threshold for every tensor: drop --tensor-sparsity/--keep");
    if (wanda && (nm_s || global)) cli_usage_error("--wanda compares within each output row: drop --nm and --global");
    if (wanda != (calib_path != NULL)) cli_usage_error("--wanda and --calib go together");

    int            rc = CLI_EXIT_FAIL;
    lq_checkpoint *ck = NULL;
    lq_model      *wm = NULL; /* Wanda: the source model for the input statistics */
    lq_colnorms   *cn = NULL;
    lq_prune_rule *pr = NULL;
    lq_st_entry   *ent = NULL;
    char           stage[PATH_MAX] = "";
    lq_status      st = lq_checkpoint_open(in_path, &ck);
    if (st != LQ_OK) {
        cli_error_status(in_path, st);
        goto done;
    }
    const int64_t n = lq_checkpoint_count(ck);
    pr              = calloc((size_t)(n ? n : 1), sizeof *pr);
    ent             = calloc((size_t)(n ? n : 1), sizeof *ent);
    double *want    = calloc((size_t)(n ? n : 1), sizeof *want);
    if (!pr || !ent || !want) {
        free(want);
        cli_error("out of memory");
        goto done;
    }
    /* the sparsity each tensor asks for (-1: dense) */
    int64_t g_total = 0, n_ent = 0;
    for (int64_t i = 0; i < n; i++) {
        const lq_tensor_info *t = lq_checkpoint_tensor(ck, i);
        want[i]                 = -1;
        pr[i].src               = t;
        if (t->alias_of >= 0 || t->n_dims != 2 || !cli_is_layer_linear(t->name)) continue;
        double s     = nm_s ? 0 : sparsity;
        bool   match = false;
        for (int r = 0; r < n_rules && !match; r++)
            if (regexec(&rules[r].re, t->name, 0, NULL, 0) == 0) {
                match = true;
                s     = rules[r].sparsity;
            }
        if (s < 0) continue;
        if (t->dtype != LQ_DTYPE_F32 && t->dtype != LQ_DTYPE_F16 && t->dtype != LQ_DTYPE_BF16) {
            cli_error("%s: '%s' is %s; pruning reads F32, F16 or BF16 weights (quantize after pruning)", in_path,
                      t->name, lq_dtype_name(t->dtype));
            free(want);
            goto done;
        }
        want[i] = s;
        uint64_t ne = 0;
        lq_tensor_info_numel(t, &ne);
        g_total += (int64_t)ne;
    }
    /* decide */
    if (wanda) {
        lq_model_params mp = lq_model_default_params();
        mp.backend         = LQ_BACKEND_CPU;
        mp.n_threads       = (int)n_threads;
        mp.max_seq         = calib_len;
        lq_tokenizer *tok  = NULL;
        lq_calib_set *cs   = NULL;
        st                 = lq_model_open(in_path, &mp, &wm);
        if (st == LQ_OK) {
            const lq_status ts = cli_open_tokenizer(in_path, wm, NULL, &tok);
            if (ts != LQ_OK && ts != LQ_ERR_NOT_FOUND) st = ts;
        }
        if (st == LQ_OK) {
            lq_calib_params cp = lq_calib_default_params();
            cp.n_samples       = calib_samples;
            cp.seq_len         = calib_len;
            cp.seed            = (uint64_t)seed;
            cp.vocab_size      = lq_model_config_of(wm)->vocab_size;
            st                 = lq_calib_load(calib_path, tok, &cp, &cs);
        }
        if (st == LQ_OK) st = lq_colnorms_collect(wm, cs, &cn);
        lq_calib_free(cs);
        lq_tokenizer_free(tok);
        for (int64_t i = 0; i < n && st == LQ_OK; i++) {
            if (want[i] < 0) continue;
            char          mod[512];
            const char   *nm  = pr[i].src->name;
            int64_t       cols = 0;
            snprintf(mod, sizeof mod, "%.*s", (int)(strlen(nm) - strlen(".weight")), nm);
            const double *sq = lq_colnorms_find(cn, mod, &cols);
            if (!sq || cols != pr[i].src->shape[1]) {
                cli_error("%s: no input statistics for %s", in_path, mod);
                st = LQ_ERR_INVALID_ARG;
                break;
            }
            st = lq_prune_wanda_rule(&pr[i], sq, want[i]);
        }
    } else if (nm_s) {
        for (int64_t i = 0; i < n && st == LQ_OK; i++)
            if (want[i] >= 0) st = lq_prune_nm_rule(&pr[i], nm_n, nm_m);
    } else if (global) {
        lq_prune_rule *g  = calloc((size_t)(n ? n : 1), sizeof *g);
        int64_t       *gi = calloc((size_t)(n ? n : 1), sizeof *gi);
        int64_t        ng = 0;
        if (!g || !gi) {
            free(g), free(gi), free(want);
            cli_error("out of memory");
            goto done;
        }
        for (int64_t i = 0; i < n; i++)
            if (want[i] >= 0) {
                g[ng]    = pr[i];
                gi[ng++] = i;
            }
        st = lq_prune_select(g, ng, (int64_t)(sparsity * (double)g_total + 0.5), (int)n_threads);
        for (int64_t j = 0; j < ng && st == LQ_OK; j++) pr[gi[j]] = g[j];
        free(g);
        free(gi);
    } else {
        for (int64_t i = 0; i < n && st == LQ_OK; i++) {
            if (want[i] < 0) continue;
            uint64_t ne = 0;
            lq_tensor_info_numel(pr[i].src, &ne);
            st = lq_prune_select(&pr[i], 1, (int64_t)(want[i] * (double)ne + 0.5), (int)n_threads);
        }
    }
    free(want);
    if (st != LQ_OK) {
        cli_error_status(in_path, st);
        goto done;
    }
    uint64_t pruned = 0, targeted = 0, params = 0;
    for (int64_t i = 0; i < n; i++) {
        const lq_tensor_info *t  = lq_checkpoint_tensor(ck, i);
        uint64_t              ne = 0;
        lq_tensor_info_numel(t, &ne);
        if (t->alias_of >= 0) continue;
        params += ne;
        lq_st_entry *e = &ent[n_ent++];
        e->name        = t->name;
        e->dtype       = t->dtype;
        e->n_dims      = t->n_dims;
        memcpy(e->shape, t->shape, sizeof e->shape);
        e->data = t->data;
        if (pr[i].kind != LQ_PRUNE_NONE) {
            e->data      = NULL;
            e->fill      = lq_prune_fill;
            e->fill_user = &pr[i];
            pruned += (uint64_t)pr[i].pruned;
            targeted += ne;
        }
    }
    if (!oo.dry_run) {
        bool out_exists = false;
        if (cli_stage_begin(out_path, lq_checkpoint_dir(ck), oo.force, stage, sizeof stage, &out_exists) != 0) goto done;
        lq_st_write_params p = lq_st_write_default_params();
        p.max_shard_size     = oo.max_shard;
        p.no_fsync           = oo.no_fsync;
        p.n_threads          = (int)n_threads;
        p.progress           = cli_progress;
        st                   = lq_safetensors_write_dir(stage, ent, n_ent, &p);
        cli_progress_end();
        if (st != LQ_OK) {
            cli_error_status(out_path, st);
            goto done;
        }
        const char *dir = lq_checkpoint_dir(ck);
        char        cfg[PATH_MAX], dst[PATH_MAX];
        if (dir && cli_join(cfg, sizeof cfg, dir, "config.json") && access(cfg, R_OK) == 0 &&
            (!cli_join(dst, sizeof dst, stage, "config.json") || cli_copy_file(cfg, dst) != 0)) {
            cli_error("%s: cannot copy config.json", out_path);
            goto done;
        }
        if (dir && cli_copy_model_files(dir, stage, NULL) < 0) goto done;
        if (cli_stage_commit(stage, out_path, out_exists) != 0) goto done;
    }
    if (oo.json) {
        lq_json_writer *w = lq_json_writer_init(2);
        lq_json_obj_begin(w);
        lq_json_key(w, "tool");
        lq_json_str(w, g_tool);
        lq_json_key(w, "input");
        lq_json_str(w, in_path);
        lq_json_key(w, "output");
        lq_json_str(w, out_path);
        lq_json_key(w, "method");
        lq_json_str(w, wanda ? "wanda" : nm_s ? "nm" : global ? "magnitude-global" : "magnitude");
        if (nm_s) {
            lq_json_key(w, "nm");
            lq_json_str(w, nm_s);
        }
        lq_json_key(w, "tensors");
        lq_json_arr_begin(w);
        for (int64_t i = 0; i < n; i++) {
            if (pr[i].kind == LQ_PRUNE_NONE) continue;
            uint64_t ne = 0;
            lq_tensor_info_numel(pr[i].src, &ne);
            lq_json_obj_begin(w);
            lq_json_key(w, "name");
            lq_json_str(w, pr[i].src->name);
            lq_json_key(w, "pruned");
            lq_json_i64(w, pr[i].pruned);
            lq_json_key(w, "numel");
            lq_json_u64(w, ne);
            lq_json_key(w, "sparsity");
            lq_json_f64(w, (double)pr[i].pruned / (double)ne);
            lq_json_obj_end(w);
        }
        lq_json_arr_end(w);
        lq_json_key(w, "pruned");
        lq_json_u64(w, pruned);
        lq_json_key(w, "sparsity_pruned_tensors");
        lq_json_f64(w, targeted ? (double)pruned / (double)targeted : 0);
        lq_json_key(w, "sparsity_overall");
        lq_json_f64(w, params ? (double)pruned / (double)params : 0);
        lq_json_obj_end(w);
        char  *text;
        size_t len;
        if (lq_json_writer_finish(w, &text, &len) == LQ_OK) {
            printf("%s\n", text);
            lq_free(text);
        }
    } else {
        for (int64_t i = 0; i < n && (oo.dry_run || g_display_level >= 3); i++) {
            if (pr[i].kind == LQ_PRUNE_NONE) continue;
            uint64_t ne = 0;
            lq_tensor_info_numel(pr[i].src, &ne);
            printf("%-52s %10lld / %-10llu zero  %6.2f%%\n", pr[i].src->name, (long long)pr[i].pruned,
                   (unsigned long long)ne, 100.0 * (double)pr[i].pruned / (double)ne);
        }
        printf("%s: %s%s pruned %llu of %llu weights in the pruned tensors (%.2f%%), %.2f%% of all parameters\n",
               oo.dry_run ? "plan" : out_path, nm_s ? nm_s : wanda ? "wanda," : global ? "global magnitude," : "magnitude,",
               nm_s ? " structured:" : "", (unsigned long long)pruned, (unsigned long long)targeted,
               targeted ? 100.0 * (double)pruned / (double)targeted : 0, params ? 100.0 * (double)pruned / (double)params : 0);
    }
    rc = CLI_EXIT_OK;
done:
    if (stage[0]) cli_remove_tree(stage);
    for (int r = 0; r < n_rules; r++) regfree(&rules[r].re);
    free(pr);
    free(ent);
    lq_colnorms_free(cn);
    lq_model_free(wm);
    lq_checkpoint_close(ck);
    if (rc == CLI_EXIT_OK && fflush(stdout) != 0) rc = CLI_EXIT_FAIL;
    return rc;
}
