/* lq_convert.c : any supported checkpoint -> a Hugging Face safetensors
 * directory (model.safetensors or shards + index, config.json, tokenizer and
 * generation files), optionally changing the float dtype.
 *
 * Nothing is lost on failure: everything is written into a hidden staging
 * directory beside OUTDIR, verified there (--verify), and only then renamed
 * into place. An interrupted run (Ctrl-C, SIGTERM) removes the staging
 * directory; a killed run leaves only the hidden ".OUTDIR.lq-tmp-*" folder.
 *
 * Norm weights: with --dtype f16/bf16, 1-D float tensors (RMSNorm weights,
 * biases) stay F32 by default. They are < 0.1% of the bytes, bf16 keeps only
 * 8 significant bits of a per-channel scale that multiplies every activation,
 * and loaders (transformers, vLLM) cast them to the model dtype on load
 * anyway; llama.cpp keeps them F32 for the same reason. --norms same
 * converts them too. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_util.h"

typedef struct {
    const lq_tensor_info *src;
    lq_dtype              dst;
} conv_job;

static lq_status fill_convert(void *dst, uint64_t offset, uint64_t nbytes, void *user) {
    const conv_job *j    = user;
    const uint32_t  dbits = lq_dtype_traits_of(j->dst)->bits, sbits = lq_dtype_traits_of(j->src->dtype)->bits;
    const uint64_t  e0   = offset * 8 / dbits, n = nbytes * 8 / dbits;
    return lq_convert_cpu(j->dst, dst, j->src->dtype, (const uint8_t *)j->src->data + e0 * sbits / 8, (int64_t)n, 1);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: %s [options] INPUT OUTDIR\n"
            "Convert a checkpoint to a Hugging Face safetensors directory.\n"
            "\n"
            "INPUT: a .safetensors file, a model directory (single or sharded safetensors,\n"
            "       pytorch_model.bin[.index.json]), a PyTorch .bin zip, or a llama2.c legacy\n"
            "       .bin (mapped to the HF Llama layout, q/k rows permuted to rotate_half order).\n"
            "OUTDIR: created; an existing non-empty directory needs --force.\n"
            "\n"
            "options:\n"
            "  --dtype T            [keep] float tensors to T: keep, f32, f16, bf16\n"
            "                       (round to nearest even; integer tensors are never changed)\n"
            "  --norms f32|same     [f32] with --dtype f16/bf16, 1-D float tensors (norm weights,\n"
            "                       biases) stay F32 (tiny, precision-sensitive; loaders cast them)\n"
            "                       or follow --dtype\n"
            "  --max-shard-size S   [0 = one file] bytes of tensor data per shard, e.g. 5GB (10^9),\n"
            "                       500MiB (2^20); shards are model-00001-of-0000N.safetensors\n"
            "                       with model.safetensors.index.json\n"
            "  --tokenizer FILE     copy FILE as tokenizer.model (default: tokenizer files beside\n"
            "                       INPUT; for a llama2.c file, a single *.model file beside it)\n"
            "  --verify             re-read the output and compare every tensor with the input\n"
            "  --force              replace the weight files of an existing OUTDIR\n"
            "  --dry-run            print the plan and the output size, write nothing\n"
            "  --json               print a JSON report on stdout instead of the summary line\n"
            "  -t, --threads N      [auto] threads\n"
            "  --no-fsync           skip fsync (faster on slow disks; not crash-safe)\n"
            "  --no-progress        no progress bar (it is shown only when stderr is a TTY)\n"
            "  -q, -v               quieter / more verbose\n"
            "  -V, --version        print the version\n"
            "  -h, --help           this help\n"
            "\n"
            "exit: 0 ok, 1 failure (nothing is left at OUTDIR), 2 usage.\n",
            g_tool);
}

/* config.json: the input's, with torch_dtype/dtype updated; or synthesized */
static lq_status write_config(const lq_checkpoint *ck, const char *stage, lq_dtype out_dtype, bool dtype_changed) {
    char out_path[PATH_MAX];
    if (!cli_join(out_path, sizeof out_path, stage, "config.json")) return LQ_ERR_INVALID_ARG;
    char  *text = NULL;
    size_t len  = 0;
    if (lq_checkpoint_kind(ck) == LQ_CKPT_LLAMA2C) {
        lq_model_config c;
        lq_checkpoint_config(ck, &c);
        c.dtype = out_dtype;
        if (lq_hfconfig_to_json(&c, &text, &len) != LQ_OK) return LQ_ERR_NOMEM;
    } else {
        char in_path[PATH_MAX];
        if (!cli_join(in_path, sizeof in_path, lq_checkpoint_dir(ck), "config.json")) return LQ_ERR_INVALID_ARG;
        if (access(in_path, F_OK) != 0) {
            DISPLAY(2, "%s: warning: no config.json beside the input; the output has none either\n", g_tool);
            return LQ_OK;
        }
        size_t n;
        char  *raw = cli_read_file(in_path, &n);
        if (!raw) return LQ_ERR_IO;
        lq_model_config c;
        lq_status       s = lq_hfconfig_parse(raw, n, in_path, &c); /* validates; refuses unsupported families */
        if (s != LQ_OK && s != LQ_ERR_UNSUPPORTED) {
            free(raw);
            return s;
        }
        if (s == LQ_ERR_UNSUPPORTED)
            DISPLAY(2, "%s: warning: %s: not a llama/mistral/qwen2 config; copied with the dtype updated\n", g_tool,
                    in_path);
        /* rewrite generically so unknown keys survive */
        lq_json_doc  *doc;
        lq_json_error je;
        s = lq_json_parse(raw, n, NULL, &doc, &je);
        free(raw);
        if (s != LQ_OK) return s;
        const lq_json  *root = lq_json_root(doc);
        lq_json_writer *w    = lq_json_writer_init(2);
        lq_json_obj_begin(w);
        bool wrote_dtype = false;
        for (uint32_t i = 0; i < root->n; i++) {
            const lq_json *v = &root->items[i];
            lq_json_key(w, v->key);
            if (dtype_changed && (!strcmp(v->key, "torch_dtype") || !strcmp(v->key, "dtype"))) {
                lq_json_str(w, out_dtype == LQ_DTYPE_BF16 ? "bfloat16" : out_dtype == LQ_DTYPE_F16 ? "float16" : "float32");
                wrote_dtype = true;
            } else {
                lq_json_value(w, v);
            }
        }
        if (dtype_changed && !wrote_dtype) {
            lq_json_key(w, "torch_dtype");
            lq_json_str(w, out_dtype == LQ_DTYPE_BF16 ? "bfloat16" : out_dtype == LQ_DTYPE_F16 ? "float16" : "float32");
        }
        lq_json_obj_end(w);
        lq_json_free(doc);
        s = lq_json_writer_finish(w, &text, &len);
        if (s != LQ_OK) return s;
    }
    FILE *f = fopen(out_path, "wb");
    int   ok = f && fwrite(text, 1, len, f) == len && fputc('\n', f) != EOF;
    if (f && (fflush(f) != 0 || fsync(fileno(f)) != 0)) ok = 0;
    if (f && fclose(f) != 0) ok = 0;
    lq_free(text);
    if (!ok) {
        cli_error("%s: cannot write: %s", out_path, strerror(errno));
        return LQ_ERR_IO;
    }
    return LQ_OK;
}

static int find_single_model_file(const char *dir, char *out, size_t cap) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int            found = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const size_t l = strlen(e->d_name);
        if (l > 6 && !strcmp(e->d_name + l - 6, ".model")) {
            if (found++ == 0 && !cli_join(out, cap, dir, e->d_name)) found = 2;
        }
    }
    closedir(d);
    return found == 1;
}

/* compare the staged output with the input, tensor by tensor, byte by byte */
static int verify(const char *stage, const lq_checkpoint *in, const conv_job *jobs, const bool *keep, int64_t n) {
    lq_checkpoint *out;
    if (lq_checkpoint_open(stage, &out) != LQ_OK) {
        cli_error("--verify: the output cannot be re-read");
        return -1;
    }
    int      bad = 0;
    int64_t  n_keep = 0;
    uint8_t *buf = NULL;
    size_t   cap = 0;
    for (int64_t i = 0; i < n && !bad; i++) {
        if (!keep[i]) continue;
        n_keep++;
        const lq_tensor_info *a = lq_checkpoint_tensor(in, i), *b = lq_checkpoint_find(out, a->name);
        if (!b || b->dtype != jobs[i].dst || b->n_dims != a->n_dims ||
            memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->n_dims) != 0) {
            cli_error("--verify: tensor '%s' is missing or has the wrong dtype/shape in the output", a->name);
            bad = 1;
            break;
        }
        if (b->nbytes > cap) {
            free(buf);
            cap = b->nbytes;
            buf = malloc(cap);
            if (!buf) {
                bad = 1;
                break;
            }
        }
        if (b->nbytes && (fill_convert(buf, 0, b->nbytes, (void *)(uintptr_t)&jobs[i]) != LQ_OK ||
                          memcmp(buf, b->data, b->nbytes) != 0)) {
            cli_error("--verify: tensor '%s': output bytes differ from the converted input", a->name);
            bad = 1;
        }
    }
    if (!bad && lq_checkpoint_count(out) != n_keep) {
        cli_error("--verify: output has %lld tensors, expected %lld", (long long)lq_checkpoint_count(out),
                  (long long)n_keep);
        bad = 1;
    }
    free(buf);
    lq_checkpoint_close(out);
    return bad ? -1 : 0;
}

int main(int argc, char **argv) {
    cli_init("lq-convert");
    const char *in_path = NULL, *out_dir = NULL, *dtype_s = "keep", *norms_s = "f32", *tokenizer = NULL;
    cli_out_opts oo = {0};
    bool        do_verify = false;
    int64_t     n_threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_common_option(a, usage)) {
            continue;
        } else if (!strcmp(a, "--dtype")) {
            dtype_s = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--norms")) {
            norms_s = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--tokenizer")) {
            tokenizer = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--verify")) {
            do_verify = true;
        } else if (cli_output_option(argc, argv, &i, &oo)) {
            continue;
        } else if (cli_threads_option(argc, argv, &i, &n_threads)) {
            continue;
        } else if (a[0] == '-' && a[1]) {
            cli_usage_error("unknown option '%s'", a);
        } else if (!in_path) {
            in_path = a;
        } else if (!out_dir) {
            out_dir = a;
        } else {
            cli_usage_error("unexpected argument '%s' (INPUT and OUTDIR are already given)", a);
        }
    }
    const uint64_t max_shard = oo.max_shard;
    const bool     force = oo.force, dry = oo.dry_run, json = oo.json, no_fsync = oo.no_fsync;
    if (!in_path || !out_dir) cli_usage_error("need INPUT and OUTDIR");
    lq_dtype target = LQ_DTYPE_COUNT; /* keep */
    if (!strcmp(dtype_s, "f32"))
        target = LQ_DTYPE_F32;
    else if (!strcmp(dtype_s, "f16"))
        target = LQ_DTYPE_F16;
    else if (!strcmp(dtype_s, "bf16"))
        target = LQ_DTYPE_BF16;
    else if (strcmp(dtype_s, "keep") != 0)
        cli_usage_error("--dtype: '%s' is not one of keep, f32, f16, bf16", dtype_s);
    if (strcmp(norms_s, "f32") != 0 && strcmp(norms_s, "same") != 0)
        cli_usage_error("--norms: '%s' is not f32 or same", norms_s);
    const bool norms_f32 = !strcmp(norms_s, "f32");

    lq_checkpoint *ck = NULL;
    lq_status      st = lq_checkpoint_open(in_path, &ck);
    if (st != LQ_OK) {
        cli_error_status(in_path, st);
        return CLI_EXIT_FAIL;
    }
    const int64_t n    = lq_checkpoint_count(ck);
    conv_job     *jobs = calloc((size_t)(n ? n : 1), sizeof *jobs);
    bool         *keep = calloc((size_t)(n ? n : 1), sizeof *keep);
    lq_st_entry  *ent  = calloc((size_t)(n ? n : 1), sizeof *ent);
    lq_kv        *meta = calloc((size_t)(n + 2), sizeof *meta);
    int           rc = CLI_EXIT_FAIL;
    char          stage[PATH_MAX] = "";
    if (!jobs || !keep || !ent || !meta) {
        cli_error("out of memory");
        goto done;
    }
    int32_t  n_meta = 0;
    int64_t  n_ent = 0;
    uint64_t bytes_in = 0, bytes_out = 0, n_params = 0;
    meta[n_meta++] = (lq_kv){"format", "pt"};
    for (int64_t i = 0; i < n; i++) {
        const lq_tensor_info  *t  = lq_checkpoint_tensor(ck, i);
        const lq_dtype_traits *tr = lq_dtype_traits_of(t->dtype);
        if (t->qtype != LQ_QT_NONE) {
            cli_error("%s: tensor '%s' is %s-quantized; lq-convert copies and converts float tensors only", in_path,
                      t->name, lq_qtype_name(t->qtype));
            goto done;
        }
        jobs[i].src = t;
        jobs[i].dst = t->dtype;
        if (target != LQ_DTYPE_COUNT && tr->is_float && tr->convertible && tr->bits >= 16) {
            const bool is_1d = t->n_dims <= 1;
            jobs[i].dst      = (is_1d && norms_f32 && (target == LQ_DTYPE_F16 || target == LQ_DTYPE_BF16))
                                   ? (t->dtype == LQ_DTYPE_F64 ? LQ_DTYPE_F32 : t->dtype == LQ_DTYPE_F32 ? LQ_DTYPE_F32 : target)
                                   : target;
        }
        bytes_in += t->nbytes;
        if (t->alias_of >= 0) {
            /* tied weights: keep one copy, record removed -> kept (as safetensors' convert.py) */
            meta[n_meta]  = (lq_kv){t->name, lq_checkpoint_tensor(ck, t->alias_of)->name};
            n_meta++;
            DISPLAY(3, "%s: '%s' shares its storage with '%s': stored once\n", g_tool, t->name,
                    lq_checkpoint_tensor(ck, t->alias_of)->name);
            continue;
        }
        keep[i] = true;
        uint64_t numel = 0, nb = 0;
        lq_tensor_info_numel(t, &numel);
        lq_dtype_nbytes(jobs[i].dst, numel, &nb);
        bytes_out += nb;
        n_params += numel;
        ent[n_ent].name   = t->name;
        ent[n_ent].dtype  = jobs[i].dst;
        ent[n_ent].n_dims = t->n_dims;
        memcpy(ent[n_ent].shape, t->shape, sizeof t->shape);
        if (jobs[i].dst == t->dtype) {
            ent[n_ent].data = t->data;
        } else {
            ent[n_ent].fill      = fill_convert;
            ent[n_ent].fill_user = &jobs[i];
        }
        n_ent++;
    }
    if (dry) {
        for (int64_t i = 0; i < n; i++) {
            const lq_tensor_info *t = jobs[i].src;
            printf("%-56s %-6s -> %-6s%s\n", t->name, lq_dtype_name(t->dtype), lq_dtype_name(jobs[i].dst),
                   keep[i] ? "" : "  (tied: stored once)");
        }
        char a[32], b[32];
        printf("plan: %lld tensors, %s bytes in -> %s bytes of tensor data out%s\n", (long long)n_ent,
               cli_commas(bytes_in, a, sizeof a), cli_commas(bytes_out, b, sizeof b),
               max_shard ? " (sharded)" : "");
        rc = CLI_EXIT_OK;
        goto done;
    }

    bool out_exists = false;
    if (cli_stage_begin(out_dir, lq_checkpoint_dir(ck), force, stage, sizeof stage, &out_exists) != 0) goto done;
    lq_st_write_params p = lq_st_write_default_params();
    p.metadata           = meta;
    p.n_metadata         = n_meta;
    p.max_shard_size     = max_shard;
    p.no_fsync           = no_fsync;
    p.n_threads          = (int)n_threads;
    p.progress           = cli_progress;
    st                   = lq_safetensors_write_dir(stage, ent, n_ent, &p);
    cli_progress_end();
    if (st != LQ_OK) {
        cli_error_status(out_dir, st);
        goto done;
    }
    /* config and tokenizer files */
    bool dtype_changed = false;
    lq_dtype cfg_dtype = LQ_DTYPE_F32;
    if (target != LQ_DTYPE_COUNT) {
        lq_model_config c;
        lq_log_set_level(LQ_LOG_ERROR);
        dtype_changed = lq_checkpoint_config(ck, &c) != LQ_OK || c.dtype != target;
        lq_log_set_level(LQ_LOG_DEBUG);
        cfg_dtype = target;
    } else if (lq_checkpoint_kind(ck) == LQ_CKPT_LLAMA2C) {
        cfg_dtype = LQ_DTYPE_F32;
    }
    if ((st = write_config(ck, stage, cfg_dtype, dtype_changed)) != LQ_OK) {
        cli_error_status("config.json", st);
        goto done;
    }
    const char *src_dir = lq_checkpoint_dir(ck);
    char        l2c_dir[PATH_MAX];
    if (!src_dir) {
        char tmp[PATH_MAX];
        snprintf(tmp, sizeof tmp, "%s", in_path);
        char *slash = strrchr(tmp, '/');
        if (slash)
            *slash = 0;
        else
            snprintf(tmp, sizeof tmp, ".");
        snprintf(l2c_dir, sizeof l2c_dir, "%s", tmp);
        src_dir = l2c_dir;
    }
    int n_copied = cli_copy_model_files(src_dir, stage, tokenizer);
    if (n_copied < 0) goto done;
    {
        char tok_to[PATH_MAX], found[PATH_MAX];
        if (!cli_join(tok_to, sizeof tok_to, stage, "tokenizer.model")) goto done;
        if (access(tok_to, F_OK) != 0 && lq_checkpoint_kind(ck) == LQ_CKPT_LLAMA2C &&
            find_single_model_file(src_dir, found, sizeof found)) {
            if (cli_copy_file(found, tok_to) != 0) {
                cli_error("cannot copy %s: %s", found, strerror(errno));
                goto done;
            }
            DISPLAY(3, "%s: copied %s as tokenizer.model\n", g_tool, found);
            n_copied++;
        }
    }
    if (do_verify && verify(stage, ck, jobs, keep, n) != 0) goto done;
    if (cli_stage_commit(stage, out_dir, out_exists) != 0) goto done;
    if (json) {
        lq_json_writer *w = lq_json_writer_init(2);
        lq_json_obj_begin(w);
        lq_json_key(w, "tool");
        lq_json_str(w, g_tool);
        lq_json_key(w, "version");
        lq_json_str(w, lq_version());
        lq_json_key(w, "input");
        lq_json_str(w, in_path);
        lq_json_key(w, "input_format");
        lq_json_str(w, lq_checkpoint_kind_name(lq_checkpoint_kind(ck)));
        lq_json_key(w, "output");
        lq_json_str(w, out_dir);
        lq_json_key(w, "tensors");
        lq_json_i64(w, n_ent);
        lq_json_key(w, "parameters");
        lq_json_u64(w, n_params);
        lq_json_key(w, "bytes_in");
        lq_json_u64(w, bytes_in);
        lq_json_key(w, "bytes_out");
        lq_json_u64(w, bytes_out);
        lq_json_key(w, "verified");
        lq_json_bool(w, do_verify);
        lq_json_obj_end(w);
        char  *text;
        size_t len;
        if (lq_json_writer_finish(w, &text, &len) == LQ_OK) {
            printf("%s\n", text);
            lq_free(text);
        }
    } else {
        char a[32], b[32];
        printf("%s: %lld tensors, %s parameters, %s bytes of tensor data%s, %d extra files%s\n", out_dir,
               (long long)n_ent, cli_commas(n_params, a, sizeof a), cli_commas(bytes_out, b, sizeof b),
               max_shard ? " (sharded)" : "", n_copied + 1, do_verify ? ", verified" : "");
    }
    rc = CLI_EXIT_OK;
done:
    if (stage[0]) cli_remove_tree(stage);
    free(jobs);
    free(keep);
    free(ent);
    free(meta);
    lq_checkpoint_close(ck);
    if (rc == CLI_EXIT_OK && fflush(stdout) != 0) rc = CLI_EXIT_FAIL;
    return rc;
}
