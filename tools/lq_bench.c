/* lq_bench.c : benchmarks (make bench). Not a test: it prints figures, each
 * as a ratio to a ceiling measured in the same run on the same machine.
 *
 * convert: a generated ~2 GB F32 safetensors file (synthetic values) is
 *   converted to BF16 the way lq-convert does it (open + mmap, convert into
 *   the mapped temporary output, rename), with a warm page cache. The
 *   ceiling is a parallel memcpy with the same thread count. Rates count
 *   memory traffic (bytes read + bytes written), so a conversion that reads
 *   4 B and writes 2 B per element compares fairly with memcpy's 1 + 1. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu/bench_internal.h" /* ceilings and kernel sweeps of kernels/cpu (lq-bench only) */
#include "cuda/bench_cuda.h"    /* the CUDA sweeps (a stub without CUDA)                   */
#include "cli_util.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int g_threads;

static int n_threads(void) {
#ifdef _OPENMP
    return g_threads > 0 ? g_threads : omp_get_max_threads();
#else
    return 1;
#endif
}

/* parallel memcpy in 4 MB chunks: the bandwidth ceiling */
static void par_memcpy(uint8_t *dst, const uint8_t *src, size_t n) {
    const size_t  chunk = (size_t)4 << 20;
    const int64_t nc    = (int64_t)((n + chunk - 1) / chunk);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(n_threads())
#endif
    for (int64_t c = 0; c < nc; c++) {
        const size_t o = (size_t)c * chunk, m = n - o < chunk ? n - o : chunk;
        memcpy(dst + o, src + o, m);
    }
}

static double median(double *v, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            const double t = v[j];
            v[j] = v[j - 1], v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct {
    uint64_t seed;
} gen_ctx;

static lq_status fill_synthetic(void *dst, uint64_t off, uint64_t nbytes, void *user) {
    const gen_ctx *g = user;
    float         *f = dst;
    for (uint64_t i = 0; i < nbytes / 4; i++) {
        uint64_t z = g->seed + off / 4 + i;
        z          = (z ^ (z >> 31)) * 0x9e3779b97f4a7c15ULL;
        f[i]       = (float)((int64_t)(z >> 40) - (1 << 23)) * 0x1p-27f; /* ~N(0, 0.03)-ish range */
    }
    return LQ_OK;
}

typedef struct {
    const lq_tensor_info *src;
} conv_ctx;

static lq_status fill_bf16(void *dst, uint64_t off, uint64_t nbytes, void *user) {
    const conv_ctx *c = user;
    return lq_convert_cpu(LQ_DTYPE_BF16, dst, LQ_DTYPE_F32, (const uint8_t *)c->src->data + off * 2,
                          (int64_t)(nbytes / 2), 1);
}

static int bench_convert(const char *dir, double size_gb, int reps) {
    char in_path[1024], out_dir[1024];
    snprintf(in_path, sizeof in_path, "%s/bench_f32.safetensors", dir);
    snprintf(out_dir, sizeof out_dir, "%s/bench_bf16", dir);
    mkdir(dir, 0755);
    mkdir(out_dir, 0755);
    /* 1. the input: 2 GB of F32 in 16 tensors of shape [rows, 4096] */
    const int      n_t  = 16;
    const uint64_t cols = 4096;
    const uint64_t rows = (uint64_t)(size_gb * 1e9 / 4.0 / (double)cols / n_t);
    gen_ctx        g    = {12345};
    lq_st_entry    e[16];
    char           names[16][64];
    memset(e, 0, sizeof e);
    for (int i = 0; i < n_t; i++) {
        snprintf(names[i], sizeof names[i], "model.layers.%d.mlp.up_proj.weight", i);
        e[i] = (lq_st_entry){.name = names[i], .dtype = LQ_DTYPE_F32, .n_dims = 2, .shape = {(int64_t)rows, (int64_t)cols},
                             .fill = fill_synthetic, .fill_user = &g};
    }
    lq_st_write_params wp = lq_st_write_default_params();
    wp.no_fsync           = true;
    wp.n_threads          = n_threads();
    struct stat sb;
    const uint64_t in_bytes = (uint64_t)n_t * rows * cols * 4;
    if (stat(in_path, &sb) != 0 || (uint64_t)sb.st_size < in_bytes) {
        fprintf(stderr, "bench: generating %s (%.2f GB, synthetic)\n", in_path, (double)in_bytes / 1e9);
        if (lq_safetensors_write(in_path, e, n_t, &wp) != LQ_OK) return 1;
    }
    lq_checkpoint *ck;
    if (lq_checkpoint_open(in_path, &ck) != LQ_OK) return 1;
    /* warm the page cache: read every page of the input */
    uint64_t sum = 0;
    for (int64_t i = 0; i < lq_checkpoint_count(ck); i++) {
        const lq_tensor_info *t = lq_checkpoint_tensor(ck, i);
        for (uint64_t k = 0; k < t->nbytes; k += 4096) sum += ((const uint8_t *)t->data)[k];
    }
    /* 2. the ceiling: parallel memcpy of 1 GB, warm buffers */
    const size_t mc = (size_t)1 << 30;
    uint8_t     *a = lq_malloc(mc), *b = lq_malloc(mc);
    if (!a || !b) return 1;
    memset(a, 1, mc);
    memset(b, 2, mc);
    double t_mc[5];
    for (int r = 0; r < 5; r++) {
        const double t0 = now_s();
        par_memcpy(b, a, mc);
        t_mc[r] = now_s() - t0;
    }
    const double memcpy_traffic = 2.0 * (double)mc / median(t_mc, 5) / 1e9; /* GB/s read + write */
    /* 3. the kernel alone: F32 -> BF16 in memory (the first 512 MB of input into b) */
    const lq_tensor_info *t0i = lq_checkpoint_tensor(ck, 0);
    const int64_t         kn  = (int64_t)(t0i->nbytes / 4);
    double                t_k[5];
    for (int r = 0; r < 5; r++) {
        const double t0 = now_s();
        lq_convert_cpu(LQ_DTYPE_BF16, b, LQ_DTYPE_F32, t0i->data, kn, n_threads());
        t_k[r] = now_s() - t0;
    }
    const double kernel_traffic = 6.0 * (double)kn / median(t_k, 5) / 1e9;
    lq_free(a);
    lq_free(b);
    /* 4. the whole conversion as lq-convert runs it (page cache, no fsync) */
    conv_ctx    cc[16];
    lq_st_entry o[16];
    memset(o, 0, sizeof o);
    for (int64_t i = 0; i < lq_checkpoint_count(ck); i++) {
        const lq_tensor_info *t = lq_checkpoint_tensor(ck, i);
        cc[i].src               = t;
        o[i] = (lq_st_entry){.name = t->name, .dtype = LQ_DTYPE_BF16, .n_dims = t->n_dims, .fill = fill_bf16,
                             .fill_user = &cc[i]};
        memcpy(o[i].shape, t->shape, sizeof t->shape);
    }
    double t_cv[9];
    reps = reps > 9 ? 9 : reps;
    char out_file[1100];
    snprintf(out_file, sizeof out_file, "%s/model.safetensors", out_dir);
    for (int r = 0; r < reps; r++) {
        unlink(out_file); /* as into a fresh directory: no old file to free inside the timing */
        sync();
        const double t0 = now_s();
        if (lq_safetensors_write_dir(out_dir, o, lq_checkpoint_count(ck), &wp) != LQ_OK) return 1;
        t_cv[r] = now_s() - t0;
    }
    const double tc           = median(t_cv, reps);
    const double conv_in_gbs  = (double)in_bytes / tc / 1e9;
    const double conv_traffic = 1.5 * (double)in_bytes / tc / 1e9;
    /* 5. second ceiling: writing the output's bytes into a new file's page cache */
    const uint64_t out_bytes = in_bytes / 2;
    uint8_t       *ob        = lq_malloc((size_t)out_bytes);
    if (!ob) return 1;
    memset(ob, 3, (size_t)out_bytes);
    lq_st_entry pe = {.name = "bytes", .dtype = LQ_DTYPE_U8, .n_dims = 1, .shape = {(int64_t)out_bytes}, .data = ob};
    double      t_pw[3];
    for (int r = 0; r < 3; r++) {
        unlink(out_file);
        sync();
        const double t0 = now_s();
        if (lq_safetensors_write_dir(out_dir, &pe, 1, &wp) != LQ_OK) return 1;
        t_pw[r] = now_s() - t0;
    }
    lq_free(ob);
    const double pw_traffic = 2.0 * (double)out_bytes / median(t_pw, 3) / 1e9;
    /* 6. durability cost: one more run with fsync (disk-bound, reported apart) */
    unlink(out_file);
    wp.no_fsync     = false;
    const double t1 = now_s();
    if (lq_safetensors_write_dir(out_dir, o, lq_checkpoint_count(ck), &wp) != LQ_OK) return 1;
    const double t_sync = now_s() - t1;
    lq_checkpoint_close(ck);
    (void)sum;
    printf("== convert F32 -> BF16 (synthetic %.2f GB safetensors, %d threads, warm page cache) ==\n",
           (double)in_bytes / 1e9, n_threads());
    printf("memcpy ceiling       : %7.2f GB/s traffic (read+write), median of 5, 1 GiB buffers\n", memcpy_traffic);
    printf("convert kernel       : %7.2f GB/s traffic  ratio %.2f of memcpy  (in-memory lq_convert_cpu)\n",
           kernel_traffic, kernel_traffic / memcpy_traffic);
    printf("convert file->file   : %7.2f GB/s traffic, %.2f GB/s of input, %.3f s  ratio %.2f of memcpy  (goal >= 0.50)\n",
           conv_traffic, conv_in_gbs, tc, conv_traffic / memcpy_traffic);
    printf("page-cache write     : %7.2f GB/s traffic  ratio %.2f of memcpy  (the output's bytes copied into a new file)\n",
           pw_traffic, pw_traffic / memcpy_traffic);
    printf("  with fsync (disk)  : %.3f s (%.2f GB/s of input; bound by the disk, not a goal)\n", t_sync,
           (double)in_bytes / t_sync / 1e9);
    return 0;
}

/* model: prefill and decode tokens/s of the runner on a synthetic Llama of
 * 307M parameters in F16 (dim 2048, ffn 5632, 32/4 heads, 4 layers, vocab
 * 32000: the shape llama.cpp was measured on), as ratios to the FMA peak
 * (prefill: 2 FLOP per weight per token + attention) and to the read
 * bandwidth (decode: every weight except the embedding table is read once
 * per token). */
static int bench_model(const char *dir, int reps) {
    char path[1024];
    snprintf(path, sizeof path, "%s/synthetic-307M-f16", dir);
    mkdir(dir, 0755);
    lq_synth_params sp = lq_synth_default_params();
    sp.n_layers        = 4;
    uint64_t n_params  = 0;
    fprintf(stderr, "bench: writing %s (synthetic)\n", path);
    if (lq_synth_write(path, &sp, &n_params) != LQ_OK) return 1;
    double fma = 0, bw = 0;
    lq__bench_ceilings(n_threads(), &fma, &bw);
    lq_model_params mp = lq_model_default_params();
    mp.backend         = LQ_BACKEND_CPU;
    mp.n_threads       = n_threads();
    mp.max_seq         = 512;
    mp.max_batch       = 512;
    lq_model *m;
    if (lq_model_open(path, &mp, &m) != LQ_OK) return 1;
    const int64_t V = sp.vocab, ctx = 512;
    int32_t      *tok = malloc((size_t)ctx * sizeof *tok);
    float        *lg  = malloc((size_t)(ctx * V) * sizeof *lg);
    if (!tok || !lg) return 1;
    uint64_t s = 99;
    for (int64_t i = 0; i < ctx; i++) {
        s      = s * 6364136223846793005ULL + 1442695040888963407ULL;
        tok[i] = (int32_t)((s >> 33) % (uint64_t)V);
    }
    const double   embed_params = (double)sp.vocab * (double)sp.dim;
    const double   mm_flops_tok = 2.0 * ((double)n_params - embed_params);
    /* causal attention: q·k and p·v over on average ctx/2 positions, per layer */
    const double   att_flops_tok = 2.0 * 2.0 * (double)(ctx / 2) * (double)sp.dim * (double)sp.n_layers;
    double         t_pf[9];
    reps = reps > 9 ? 9 : reps;
    for (int r = 0; r < reps; r++) {
        const double t0 = now_s();
        if (lq_model_forward(m, tok, ctx, 0, lg, false) != LQ_OK) return 1;
        t_pf[r] = now_s() - t0;
    }
    const double pf_tps    = (double)ctx / median(t_pf, reps);
    const double pf_gflops = pf_tps * (mm_flops_tok + att_flops_tok) / 1e9;
    /* decode: 64 single-token steps after a 64-token prompt */
    if (lq_model_forward(m, tok, 64, 0, lg, true) != LQ_OK) return 1;
    const int    n_dec = 64;
    const double t0    = now_s();
    for (int i = 0; i < n_dec; i++)
        if (lq_model_forward(m, &tok[64 + i], 1, 64 + i, lg, true) != LQ_OK) return 1;
    const double dec_tps   = n_dec / (now_s() - t0);
    /* ceilings again after the runs: the best of both (single measurements vary with the machine's load) */
    double fma2 = 0, bw2 = 0;
    lq__bench_ceilings(n_threads(), &fma2, &bw2);
    fma = fma2 > fma ? fma2 : fma;
    bw  = bw2 > bw ? bw2 : bw;
    const double bytes_tok = (double)lq_model_weight_bytes(m) - embed_params * 2.0;
    const double dec_gbs   = dec_tps * bytes_tok / 1e9;
    printf("== model: synthetic Llama %.0fM F16 (dim 2048, ffn 5632, 32/4 heads, 4 layers, vocab 32000), %d threads ==\n",
           (double)n_params / 1e6, n_threads());
    printf("ceilings             : FMA peak %.1f GFLOP/s, read bandwidth %.2f GB/s (best of before and after)\n", fma,
           bw);
    printf("prefill ctx 512      : %8.1f tokens/s, %.1f GFLOP/s  ratio %.2f of FMA peak (goal >= 0.6)\n", pf_tps,
           pf_gflops, pf_gflops / fma);
    printf("  vs llama.cpp       : %.2fx its 685 tokens/s (llama-perplexity, same shape, this machine kind; quoted, not run here)\n",
           pf_tps / 685.0);
    printf("decode batch 1       : %8.2f tokens/s, %.2f GB/s of weights  ratio %.2f of read bandwidth (goal >= 0.6)\n",
           dec_tps, dec_gbs, dec_gbs / bw);
    lq_model_free(m);
    free(tok);
    free(lg);
    return 0;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: %s [options] [BENCH...]\n"
            "Benchmarks; each figure is printed with the ceiling it is compared with,\n"
            "measured in the same run. BENCH: kernels, qkernels (quantized matmuls),\n"
            "quant (quantization throughput), cuda, model, convert, gptq (GPTQ time over\n"
            "one forward pass on the calibration set), calib (entropy search, statistics\n"
            "pass, W8A8 matmul) (default: all).\n"
            "\n"
            "options:\n"
            "  --dir DIR        [build/bench] where generated inputs and outputs go\n"
            "  --size-gb G      [2] size of the generated F32 input for 'convert'\n"
            "  --reps N         [3] repetitions (the median is reported)\n"
            "  --keep           keep the generated files\n"
            "  -t, --threads N  [auto] threads\n"
            "  -h, --help       this help\n",
            g_tool);
}

static lq_qtype bench_int4(const char *name, void *user) {
    (void)name;
    (void)user;
    return LQ_QT_INT4_G128;
}

/* GPTQ (lq_gptq_run, int4_g128) on the 1B-like synthetic shape: wall time as a ratio to one forward pass over the
 * same calibration windows (lq_model_forward, fresh KV cache per window). CPU: 2 of its 22 layers and 16 windows
 * (the ratio does not depend on the depth); CUDA: the whole model and 128 windows of 512 tokens. */
/* S windows of L random in-vocabulary tokens (seeded) */
static lq_calib_set *synth_calib(int64_t S, int64_t L, int64_t vocab, uint64_t seed) {
    const int64_t N   = S * L + 1;
    int32_t      *ids = malloc((size_t)N * sizeof *ids);
    if (!ids) return NULL;
    for (int64_t i = 0; i < N; i++) {
        seed   = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        ids[i] = (int32_t)((seed >> 33) % (uint64_t)vocab);
    }
    lq_calib_params cp = lq_calib_default_params();
    cp.n_samples       = S;
    cp.seq_len         = L;
    lq_calib_set *cs   = NULL;
    const lq_status st = lq_calib_from_tokens(ids, N, 1, &cp, &cs);
    free(ids);
    return st == LQ_OK ? cs : NULL;
}

static int bench_gptq(const char *dir) {
    const bool      cuda = lq_cuda_device_count() > 0;
    char            path[1024];
    lq_synth_params sp = lq_synth_default_params();
    sp.n_layers        = cuda ? 22 : 2;
    snprintf(path, sizeof path, "%s/synthetic-gptq-%lldL-f16", dir, (long long)sp.n_layers);
    mkdir(dir, 0755);
    fprintf(stderr, "bench: writing %s (synthetic)\n", path);
    uint64_t n_params = 0;
    if (lq_synth_write(path, &sp, &n_params) != LQ_OK) return 1;
    const int64_t S = cuda ? 128 : 16, L = 512;
    lq_calib_set *cs = synth_calib(S, L, sp.vocab, 5);
    if (!cs) return 1;
    lq_model_params mp = lq_model_default_params();
    mp.backend         = cuda ? LQ_BACKEND_CUDA : LQ_BACKEND_CPU;
    mp.n_threads       = n_threads();
    mp.max_seq         = L;
    mp.max_batch       = L;
    lq_model *m        = NULL;
    if (lq_model_open(path, &mp, &m) != LQ_OK) return 1;
    float *lg = malloc((size_t)sp.vocab * sizeof *lg);
    if (!lg) return 1;
    const double t0 = now_s();
    for (int64_t i = 0; i < S; i++)
        if (lq_model_forward(m, cs->tokens + i * L, L, 0, lg, true) != LQ_OK) return 1;
    const double t_fwd = now_s() - t0;
    lq_model_free(m);
    lq_gptq_run_params gp = lq_gptq_run_default_params();
    gp.backend            = cuda ? LQ_BACKEND_CUDA : LQ_BACKEND_CPU;
    gp.n_threads          = n_threads();
    gp.tmp_parent         = dir;
    gp.no_fsync           = true;
    lq_gptq_result *r     = NULL;
    const double    t1    = now_s();
    if (lq_gptq_run(path, cs, bench_int4, NULL, &gp, &r) != LQ_OK) return 1;
    const double t_gptq = now_s() - t1;
    printf("== gptq: synthetic Llama 1B-like shape, %lld layers (%.0fM params), int4_g128, %lld x %lld calibration "
           "tokens, %s ==\n", (long long)sp.n_layers, (double)n_params / 1e6, (long long)S, (long long)L,
           cuda ? lq_cuda_device_name() : "CPU");
    printf("forward pass         : %8.2f s over the calibration windows\n", t_fwd);
    printf("gptq                 : %8.2f s  ratio %.2f of one forward pass (goal <= 3 on CUDA)\n", t_gptq,
           t_gptq / t_fwd);
    if (cuda) printf("  1B-like absolute    : %.1f s (goal <= 30 s on an H100; GPTQModel's test budget 116 s)\n", t_gptq);
    else
        printf("  1B-like estimate    : %.0f s on this CPU for 22 layers and 128 windows (x%.0f)\n",
               t_gptq * 11.0 * 8.0, 11.0 * 8.0);
    lq_gptq_result_free(r);
    lq_calib_free(cs);
    free(lg);
    char p[1200];
    snprintf(p, sizeof p, "%s/model.safetensors", path);
    unlink(p);
    snprintf(p, sizeof p, "%s/config.json", path);
    unlink(p);
    rmdir(path);
    return 0;
}

/* calibration: NVIDIA's entropy threshold search on 2048-bin histograms of
 * Gaussian-like activations (goal <= 1 ms per tensor, the literal search for
 * scale); the statistics pass against one plain forward pass over the same
 * windows (goal <= 1.2); the W8A8 int8 matmul against the f32 one on the
 * same shape (a peer run side by side). */
static int bench_calib(const char *dir) {
    printf("== calib (entropy search, calibration pass, W8A8 matmul) ==\n");
    enum { NB = 2048, NH = 8 };
    int64_t *c = malloc((size_t)NB * NH * sizeof *c);
    if (!c) return 1;
    uint64_t x = 7;
    for (int h = 0; h < NH; h++)
        for (int64_t j = 0; j < NB; j++) {
            x                 = x * 6364136223846793005ULL + 1442695040888963407ULL;
            const double t    = (double)j / NB * (4.0 + h);
            c[h * NB + j]     = (int64_t)(1e6 * exp(-t * t / 2) + (double)((x >> 33) % 3));
        }
    double tf[NH], tr[NH];
    for (int h = 0; h < NH; h++) {
        int64_t b1 = 0, b2 = 0;
        double  k1 = 0, k2 = 0;
        double  t0 = now_s();
        if (lq_entropy_search(c + h * NB, NB, 128, 128, 1, &b1, &k1) != LQ_OK) return 1;
        tf[h] = now_s() - t0;
        t0    = now_s();
        if (h < 2 && lq_entropy_search_ref(c + h * NB, NB, 128, 128, 1, &b2, &k2) != LQ_OK) return 1;
        tr[h] = now_s() - t0;
        if (h < 2 && b1 != b2) printf("MISMATCH: fast %lld, literal %lld\n", (long long)b1, (long long)b2);
    }
    const double mf = median(tf, NH), mr = median(tr, 2);
    printf("entropy search 2048 bins : %8.3f ms per tensor  ratio %.2f of the 1 ms goal (literal O(B^2): %.1f ms, "
           "%.0fx)\n", 1e3 * mf, mf / 1e-3, 1e3 * mr, mr / mf);
    free(c);
    /* the statistics pass over a synthetic 2-layer 1B-like model */
    char            path[1024];
    lq_synth_params sp = lq_synth_default_params();
    sp.n_layers        = 2;
    snprintf(path, sizeof path, "%s/synthetic-calib-2L-f16", dir);
    mkdir(dir, 0755);
    if (lq_synth_write(path, &sp, NULL) != LQ_OK) return 1;
    const int64_t S = 8, L = 512;
    lq_calib_set *cs = synth_calib(S, L, sp.vocab, x);
    if (!cs) return 1;
    lq_model_params mp = lq_model_default_params();
    mp.backend         = LQ_BACKEND_AUTO;
    mp.n_threads       = n_threads();
    mp.max_seq         = L;
    lq_model *m        = NULL;
    if (lq_model_open(path, &mp, &m) != LQ_OK) return 1;
    float *lg = malloc((size_t)sp.vocab * sizeof *lg);
    if (!lg) return 1;
    double t0 = now_s();
    for (int64_t i = 0; i < S; i++)
        if (lq_model_forward(m, cs->tokens + i * L, L, 0, lg, true) != LQ_OK) return 1;
    const double t_fwd = now_s() - t0;
    lq_actstats *as    = NULL;
    lq_actstats_params ap = lq_actstats_default_params();
    ap.n_threads          = n_threads();
    if (lq_actstats_collect(m, cs, &ap, &as) != LQ_OK) return 1;
    printf("calibration pass         : %8.2f s vs one forward pass %.2f s  ratio %.2f (goal <= 1.2; %s, %lld tokens, "
           "2 layers of a 1B-like shape)\n",
           lq_actstats_seconds(as), t_fwd, lq_actstats_seconds(as) / t_fwd,
           lq_model_backend(m) == LQ_BACKEND_CUDA ? "cuda" : "cpu", (long long)(S * L));
    lq_actstats_free(as);
    lq_model_free(m);
    lq_calib_free(cs);
    free(lg);
    char p[1200];
    snprintf(p, sizeof p, "%s/model.safetensors", path);
    unlink(p);
    snprintf(p, sizeof p, "%s/config.json", path);
    unlink(p);
    rmdir(path);
    /* W8A8 vs f32 matmul, 512 tokens x (4096 -> 4096) */
    const int64_t T = 512, K = 4096, R = 4096;
    float        *xf = malloc((size_t)(T * K) * sizeof *xf), *wf = malloc((size_t)(R * K) * sizeof *wf);
    float        *y  = malloc((size_t)(T * R) * sizeof *y), *sc = malloc((size_t)R * sizeof *sc);
    uint8_t      *wq = malloc((size_t)(R * K));
    if (!xf || !wf || !y || !sc || !wq) return 1;
    for (int64_t i = 0; i < T * K; i++) xf[i] = (float)((int64_t)(i * 2654435761u % 2001) - 1000) * 1e-3f;
    for (int64_t i = 0; i < R * K; i++) wf[i] = (float)((int64_t)(i * 40503u % 2001) - 1000) * 1e-5f;
    const lq_quant_params qp = lq_quant_default_params();
    if (lq_quantize_cpu(LQ_QT_INT8_CH, LQ_DTYPE_F32, wf, R, K, &qp, wq, sc, NULL, n_threads()) != LQ_OK) return 1;
    const lq_weight w32 = {LQ_DTYPE_F32, wf, R, K, LQ_QT_NONE, NULL, NULL, NULL, 0};
    const lq_weight w8  = {LQ_DTYPE_U8, wq, R, K, LQ_QT_INT8_CH, sc, NULL, NULL, 1.0f / 127};
    double          t32[3], t8[3];
    for (int r = 0; r < 3; r++) {
        t0 = now_s();
        if (lq_matmul_cpu(y, xf, T, &w32, NULL, n_threads()) != LQ_OK) return 1;
        t32[r] = now_s() - t0;
        t0     = now_s();
        if (lq_matmul_cpu(y, xf, T, &w8, NULL, n_threads()) != LQ_OK) return 1;
        t8[r] = now_s() - t0;
    }
    const double g32 = 2.0 * (double)(T * K * R) / median(t32, 3) / 1e9, g8 = 2.0 * (double)(T * K * R) / median(t8, 3) / 1e9;
    printf("W8A8 matmul 512x4096x4096: %7.1f GOP/s vs f32 GEMM %.1f GFLOP/s  ratio %.2f (int8 x int8 -> int32, "
           "lq_matmul_cpu)\n", g8, g32, g8 / g32);
    free(xf);
    free(wf);
    free(y);
    free(sc);
    free(wq);
    return 0;
}

int main(int argc, char **argv) {
    cli_init("lq-bench");
    const char *dir = "build/bench";
    double      size_gb = 2.0;
    int64_t     reps = 3, threads = 0;
    bool        keep = false, want_convert = false, want_kernels = false, want_model = false, any = false;
    bool        want_quant = false, want_qkernels = false, want_cuda = false, want_gptq = false, want_calib = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--dir")) {
            dir = cli_value(argc, argv, &i);
        } else if (!strcmp(a, "--size-gb")) {
            if (!cli_parse_f64(cli_value(argc, argv, &i), &size_gb) || size_gb <= 0 || size_gb > 64)
                cli_usage_error("--size-gb needs a number in (0, 64]");
        } else if (!strcmp(a, "--reps")) {
            if (!cli_parse_i64(cli_value(argc, argv, &i), 1, 9, &reps)) cli_usage_error("--reps needs 1..9");
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!cli_parse_i64(cli_value(argc, argv, &i), 1, 1024, &threads)) cli_usage_error("--threads needs 1..1024");
        } else if (!strcmp(a, "--keep")) {
            keep = true;
        } else if (!strcmp(a, "convert")) {
            want_convert = any = true;
        } else if (!strcmp(a, "kernels")) {
            want_kernels = any = true;
        } else if (!strcmp(a, "model")) {
            want_model = any = true;
        } else if (!strcmp(a, "quant")) {
            want_quant = any = true;
        } else if (!strcmp(a, "qkernels")) {
            want_qkernels = any = true;
        } else if (!strcmp(a, "cuda")) {
            want_cuda = any = true;
        } else if (!strcmp(a, "gptq")) {
            want_gptq = any = true;
        } else if (!strcmp(a, "calib")) {
            want_calib = any = true;
        } else {
            cli_usage_error("unknown option or benchmark '%s'", a);
        }
    }
    g_threads = (int)threads;
    int rc    = 0;
    if (!any || want_kernels) {
        printf("== kernels (lq_matmul_cpu and the forward ops on Llama-1B-like shapes) ==\n");
        fflush(stdout);
        rc |= lq__bench_cpu_kernels(n_threads(), stdout);
    }
    if (!any || want_qkernels) {
        printf("== qkernels (fused dequantize + matmul, lq_matmul_cpu, Llama-8B layer shapes) ==\n");
        fflush(stdout);
        rc |= lq__bench_qmatmul(n_threads(), stdout);
    }
    if (!any || want_quant) {
        printf("== quant (lq_quantize_cpu from F16, Llama-8B-like matrices) ==\n");
        fflush(stdout);
        rc |= lq__bench_quantize(n_threads(), stdout);
    }
    if (!any || want_cuda) {
        printf("== cuda (fused int4_g128 GEMV of lq_cuda_matmul, Llama-8B layer shapes, batch 1..16) ==\n");
        fflush(stdout);
        if (lq_cuda_device_count() > 0)
            rc |= lq__bench_cuda_qmatmul(stdout);
        else
            printf("skipped: %s\n", lq_cuda_device_name());
    }
    if (!any || want_model) rc |= bench_model(dir, (int)reps);
    if (!any || want_convert) rc |= bench_convert(dir, size_gb, (int)reps);
    if (!any || want_gptq) rc |= bench_gptq(dir);
    if (!any || want_calib) rc |= bench_calib(dir);
    if (!keep) {
        char p[1200];
        snprintf(p, sizeof p, "%s/bench_f32.safetensors", dir);
        unlink(p);
        snprintf(p, sizeof p, "%s/bench_bf16/model.safetensors", dir);
        unlink(p);
        snprintf(p, sizeof p, "%s/bench_bf16", dir);
        rmdir(p);
        const char *synth_files[] = {"model.safetensors", "config.json", ""};
        for (int i = 0; synth_files[i][0]; i++) {
            snprintf(p, sizeof p, "%s/synthetic-307M-f16/%s", dir, synth_files[i]);
            unlink(p);
        }
        snprintf(p, sizeof p, "%s/synthetic-307M-f16", dir);
        rmdir(p);
        rmdir(dir);
    }
    return rc ? CLI_EXIT_FAIL : 0;
}
