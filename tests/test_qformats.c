/* test_qformats.c : placeholder until the suite lands */
#include "lq_test.h"

CU_pSuite lq_test_qformats_suite(void) { return lq_test_add_suite("qformats"); }
