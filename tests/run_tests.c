/* run_tests.c : the single CUnit runner.
 *
 * usage: run_tests [SUITE]     run every suite, or the one named
 *        run_tests --cuda-devices   print the CUDA device count
 * Returns non-zero when any assertion failed (CU_basic_run_tests() itself
 * reports success even then). The cuda suite is registered only when a
 * device exists. */
#include <CUnit/Basic.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lq_test.h"

static const struct {
    const char *name;
    CU_pSuite (*add)(void);
} SUITES[] = {
    {"core", lq_test_core_suite},           {"json", lq_test_json_suite},
    {"dtype", lq_test_dtype_suite},         {"safetensors", lq_test_safetensors_suite},
    {"llama2c", lq_test_llama2c_suite},     {"pytorch", lq_test_pytorch_suite},
    {"checkpoint", lq_test_checkpoint_suite},
    {"tokenizer", lq_test_tokenizer_suite},
    {"kernels", lq_test_kernels_suite},
    {"model", lq_test_model_suite},
    {"quant", lq_test_quant_suite},         {"qkernels", lq_test_qkernels_suite},
    {"gguf", lq_test_gguf_suite},           {"qformats", lq_test_qformats_suite},
    {"calib", lq_test_calib_suite},         {"gptq", lq_test_gptq_suite},
    {"gptq_engine", lq_test_gptq_engine_suite},
    {"calib_hist", lq_test_calib_hist_suite},  {"mixed", lq_test_mixed_suite},
    {"sensitivity", lq_test_sensitivity_suite}, {"w8a8", lq_test_w8a8_suite},
    {"prune", lq_test_prune_suite},
};

/* ---- helpers for the suites ---- */

static char g_path[4096];

const char *lq_test_shared(const char *rel) {
    const char *root = getenv("LQ_SHARED_DATA");
    snprintf(g_path, sizeof g_path, "%s/%s", root && *root ? root : "../shared/data", rel);
    return g_path;
}

static char g_tmp[4096];

const char *lq_test_tmpdir(const char *name) {
    char cmd[8300];
    snprintf(g_tmp, sizeof g_tmp, "tests/out/%ld/%s", (long)getpid(), name);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", g_tmp, g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "cannot create %s\n", g_tmp);
    return g_tmp;
}

uint8_t *lq_test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return NULL;
    }
    const long n = ftell(f);
    rewind(f);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf && len) *len = (size_t)n;
    return buf;
}

int lq_test_write_file(const char *path, const void *buf, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    const int ok = fwrite(buf, 1, len, f) == len;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

uint64_t lq_test_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z          = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z          = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

float lq_test_randf(uint64_t *s) { return (float)((double)(lq_test_rand(s) >> 11) * 0x1p-52 - 1.0); }

static int  g_quiet, g_errors;
static char g_last_error[1024];

static void test_log(lq_log_level level, const char *msg, void *user) {
    (void)user;
    if (level == LQ_LOG_ERROR) {
        g_errors++;
        snprintf(g_last_error, sizeof g_last_error, "%s", msg);
    }
    if (!g_quiet && level <= LQ_LOG_WARN) fprintf(stderr, "libquant: %s\n", msg);
}

void lq_test_reinstall_log(void) {
    lq_log_set(test_log, NULL);
    lq_log_set_level(LQ_LOG_WARN);
}

void lq_test_quiet(int on) {
    g_quiet = on;
    g_errors = 0;
    g_last_error[0] = 0;
}

int lq_test_errors_logged(void) {
    const int n = g_errors;
    g_errors    = 0;
    return n;
}

const char *lq_test_last_error(void) { return g_last_error; }

CU_pSuite lq_test_add_suite(const char *name) {
    CU_pSuite s = CU_add_suite(name, NULL, NULL);
    if (!s) {
        fprintf(stderr, "CUnit: cannot add suite %s: %s\n", name, CU_get_error_msg());
        exit(2);
    }
    return s;
}

int main(int argc, char **argv) {
    const char *only = argc > 1 ? argv[1] : NULL;
    if (only && strcmp(only, "--cuda-devices") == 0) {
        printf("%d\n", lq_cuda_device_count());
        return 0;
    }
    lq_log_set(test_log, NULL);
    if (CU_initialize_registry() != CUE_SUCCESS) return 2;
    int n_added = 0;
    for (size_t i = 0; i < sizeof SUITES / sizeof SUITES[0]; i++) {
        if (only && strcmp(only, SUITES[i].name) != 0) continue;
        SUITES[i].add();
        n_added++;
    }
    if (!only || strcmp(only, "cuda") == 0) {
        if (lq_cuda_device_count() > 0) {
            lq_test_cuda_suite();
            n_added++;
        } else {
            printf("cuda: skipped (%s)\n", lq_cuda_compiled() ? "no device" : "built without CUDA");
        }
    }
    if (n_added == 0) {
        fprintf(stderr, "run_tests: no suite named '%s'\n", only);
        CU_cleanup_registry();
        return 2;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    const unsigned failures = CU_get_number_of_failures();
    const unsigned run      = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    return (failures != 0 || run == 0) ? 1 : 0;
}
