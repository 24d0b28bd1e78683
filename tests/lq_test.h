/* lq_test.h : helpers shared by the CUnit suites.
 *
 * Each tests/test_<module>.c exports `CU_pSuite lq_test_<module>_suite(void)`
 * and is listed in run_tests.c. Fixtures are generated in code from fixed
 * seeds, or read from ../shared/data (LQ_SHARED_DATA) and tests/data. */
#ifndef LQ_TEST_H
#define LQ_TEST_H

#include <CUnit/CUnit.h>
#include <stdint.h>
#include <stdio.h>

#include "libquant.h"

/* path under the shared data directory (LQ_SHARED_DATA, default ../shared/data);
 * returns a static buffer that the next call overwrites */
const char *lq_test_shared(const char *rel);
/* a fresh empty directory under tests/out/ for this process, e.g. "tests/out/12345/name" */
const char *lq_test_tmpdir(const char *name);
/* whole file into a malloc'ed buffer (NULL on failure) */
uint8_t *lq_test_read_file(const char *path, size_t *len);
int lq_test_write_file(const char *path, const void *buf, size_t len);
/* splitmix64: deterministic fixtures */
uint64_t lq_test_rand(uint64_t *state);
/* uniform in [-1, 1) */
float lq_test_randf(uint64_t *state);
/* silence the library's default log sink for tests that expect errors;
 * returns the number of error messages logged since the last call */
void lq_test_quiet(int on);
int  lq_test_errors_logged(void);
/* put the runner's log sink back (after a test installed its own) */
void lq_test_reinstall_log(void);
/* the last error message logged (empty if none) */
const char *lq_test_last_error(void);

/* the suites, one per tests/test_<module>.c */
CU_pSuite lq_test_core_suite(void);
CU_pSuite lq_test_json_suite(void);
CU_pSuite lq_test_dtype_suite(void);
CU_pSuite lq_test_safetensors_suite(void);
CU_pSuite lq_test_llama2c_suite(void);
CU_pSuite lq_test_pytorch_suite(void);
CU_pSuite lq_test_checkpoint_suite(void);
CU_pSuite lq_test_tokenizer_suite(void);
CU_pSuite lq_test_kernels_suite(void);
CU_pSuite lq_test_model_suite(void);
CU_pSuite lq_test_cuda_suite(void);
CU_pSuite lq_test_quant_suite(void);    /* test_quant.c: quantizers (ref, cpu)        */
CU_pSuite lq_test_qkernels_suite(void); /* test_qkernels.c: fused quantized matmuls   */
CU_pSuite lq_test_gguf_suite(void);     /* test_gguf.c: GGUF reader/writer            */
CU_pSuite lq_test_qformats_suite(void); /* test_qformats.c: GPTQ, compressed-tensors  */
CU_pSuite lq_test_calib_suite(void);    /* test_calib.c: calibration data             */
CU_pSuite lq_test_gptq_suite(void);     /* test_gptq.c: GPTQ solver, Hessians         */
CU_pSuite lq_test_calib_hist_suite(void);
CU_pSuite lq_test_mixed_suite(void);
CU_pSuite lq_test_sensitivity_suite(void);
CU_pSuite lq_test_w8a8_suite(void);
CU_pSuite lq_test_prune_suite(void);
CU_pSuite lq_test_gptq_engine_suite(void); /* test_gptq_engine.c: block-by-block GPTQ */

/* register a suite; aborts the runner on registry failure */
CU_pSuite lq_test_add_suite(const char *name);
#define LQ_ADD_TEST(suite, fn) CU_add_test((suite), #fn, (fn))

#endif
