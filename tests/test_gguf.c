/* test_gguf.c : placeholder until the suite lands */
#include "lq_test.h"

CU_pSuite lq_test_gguf_suite(void) { return lq_test_add_suite("gguf"); }
