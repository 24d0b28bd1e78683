/* test_calib_hist.c : the activation histogram collector and the range
 * calibrators (calib/calib_hist.c, calib/calib_amax.c): binning ref vs
 * OpenMP, NVIDIA's extension rule and ONNX Runtime's merge rule against
 * single-batch computations by hand, the fast entropy search against the
 * literal one on many histograms (sparse, spiky, one bin, long empty tails,
 * ties), cases worked by hand, percentile/MSE/max on data with known
 * answers, the TensorRT cache bytes, errors, and agreement with the
 * independent Python oracle (tests/interop/entropy_oracle.py) on committed
 * fixtures of random and real (stories260K) histograms. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lq_test.h"

static void test_histc_ref_cpu(void) {
    uint64_t      s = 3;
    const int64_t n = 200003;
    float        *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = 3 * lq_test_randf(&s);
    x[7] = 3.0f; /* exactly hi: last bin */
    const lq_hist_range r  = {0, 3.0, 2048};
    int64_t            *a  = calloc(2048, sizeof *a), *b = calloc(2048, sizeof *b), *c = calloc(2048, sizeof *c);
    lq_histc_ref(x, n, true, &r, a);
    lq_histc_cpu(x, n, true, &r, b, 2);
    lq_histc_cpu(x, n, true, &r, c, 3);
    CU_ASSERT(memcmp(a, b, 2048 * sizeof *a) == 0);
    CU_ASSERT(memcmp(a, c, 2048 * sizeof *a) == 0);
    int64_t tot = 0;
    for (int i = 0; i < 2048; i++) tot += a[i];
    CU_ASSERT_EQUAL(tot, n);
    CU_ASSERT(a[2047] >= 1);
    /* an element by hand: 1.5 -> bin 1024 */
    int64_t       one[4] = {0};
    const float   v      = 1.5f;
    lq_hist_range r4     = {0, 3.0, 4};
    lq_histc_ref(&v, 1, false, &r4, one);
    CU_ASSERT(one[2] == 1);
    free(x);
    free(a);
    free(b);
    free(c);
}

/* NVIDIA's rule: a second batch with a larger max extends at the same width */
static void test_extension_rule(void) {
    lq_hist *h = NULL;
    CU_ASSERT_FATAL(lq_hist_new(8, true, &h) == LQ_OK);
    const float b1[4] = {0.5f, -1.0f, 2.0f, 0.0f}; /* max |x| 2 -> width 0.25, 8 bins */
    CU_ASSERT_FATAL(lq_hist_add(h, b1, 4, 1) == LQ_OK);
    CU_ASSERT_EQUAL(lq_hist_n_bins(h), 8);
    CU_ASSERT_DOUBLE_EQUAL(lq_hist_width(h), 0.25, 0);
    const int64_t e1[8] = {1, 0, 1, 0, 1, 0, 0, 1};
    CU_ASSERT(memcmp(lq_hist_counts(h), e1, sizeof e1) == 0);
    const float b2[2] = {2.6f, 0.3f}; /* ceil(2.6 / 0.25) = 11 bins */
    CU_ASSERT_FATAL(lq_hist_add(h, b2, 2, 1) == LQ_OK);
    CU_ASSERT_EQUAL(lq_hist_n_bins(h), 11);
    const int64_t e2[11] = {1, 1, 1, 0, 1, 0, 0, 1, 0, 0, 1};
    CU_ASSERT(memcmp(lq_hist_counts(h), e2, sizeof e2) == 0);
    CU_ASSERT_EQUAL(lq_hist_count(h), 6);
    CU_ASSERT_DOUBLE_EQUAL(lq_hist_absmax(h), 2.6, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(lq_hist_min(h), -1.0, 0);
    /* ONNX Runtime's merge: threshold 2, stride 0.5; 2.6 -> half = floor(0.6 / 0.5) + 1 = 2 bins each side */
    lq_hist_batch_plan p;
    CU_ASSERT_FATAL(lq_hist_plan(h, -0.1f, 0.2f, &p) == LQ_OK); /* within: ranges kept */
    CU_ASSERT_EQUAL(p.abs_r.n_bins, 11);
    CU_ASSERT_EQUAL(p.signed_r.n_bins, 12);
    CU_ASSERT_DOUBLE_EQUAL(p.signed_r.hi, 3.0, 1e-12);
    /* a first batch of zeros is counted once a range exists */
    lq_hist *z = NULL;
    CU_ASSERT_FATAL(lq_hist_new(4, false, &z) == LQ_OK);
    const float zeros[3] = {0, 0, 0}, later[1] = {1.0f};
    CU_ASSERT_FATAL(lq_hist_add(z, zeros, 3, 1) == LQ_OK);
    CU_ASSERT_EQUAL(lq_hist_n_bins(z), 0);
    CU_ASSERT_FATAL(lq_hist_add(z, later, 1, 1) == LQ_OK);
    CU_ASSERT_EQUAL(lq_hist_counts(z)[0], 3);
    CU_ASSERT_EQUAL(lq_hist_counts(z)[3], 1);
    /* errors */
    const float bad[2] = {1.0f, NAN};
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_hist_add(z, bad, 2, 1), LQ_ERR_FORMAT);
    lq_hist *e = NULL;
    CU_ASSERT_EQUAL(lq_hist_new(1, false, &e), LQ_ERR_INVALID_ARG);
    lq_hist *empty = NULL;
    CU_ASSERT_FATAL(lq_hist_new(0, false, &empty) == LQ_OK);
    double               a  = 0;
    const lq_amax_params ep = lq_amax_default_params(LQ_AMAX_ENTROPY);
    CU_ASSERT_EQUAL(lq_hist_amax(empty, &ep, &a, NULL), LQ_ERR_INVALID_ARG);
    const lq_amax_params op = lq_amax_default_params(LQ_AMAX_ENTROPY_ORT);
    CU_ASSERT_EQUAL(lq_hist_amax(z, &op, &a, NULL), LQ_ERR_INVALID_ARG); /* no signed histogram */
    lq_test_quiet(0);
    lq_hist_free(empty);
    lq_hist_free(z);
    lq_hist_free(h);
}

/* random histograms of several shapes: the fast search picks the literal search's bin */
static void fill_shape(int64_t *c, int64_t n, int shape, uint64_t *s) {
    for (int64_t j = 0; j < n; j++) {
        const double x = (double)j / (double)n;
        double       v = 0;
        switch (shape) {
        case 0: v = 1e5 * exp(-x * 12); break;                                    /* exponential */
        case 1: v = (lq_test_rand(s) % 7 == 0) ? (double)(lq_test_rand(s) % 1000) : 0; break; /* sparse */
        case 2: v = j < n / 3 ? 50.0 + (double)(lq_test_rand(s) % 50) : 0; break;  /* long empty tail */
        case 3: v = j == 5 ? 1e6 : (j % 97 == 0 ? 3 : 0); break;                  /* spiky */
        case 4: v = 10; break;                                                     /* flat: near-ties */
        default: v = 1e4 / (1.0 + (double)j); break;                              /* heavy tail */
        }
        c[j] = (int64_t)v;
    }
}

static void test_entropy_fast_vs_literal(void) {
    uint64_t s = 11;
    int      cases = 0;
    for (int shape = 0; shape < 6; shape++)
        for (int rep = 0; rep < 4; rep++) {
            const int64_t n = rep == 0 ? 2048 : 300 + (int64_t)(lq_test_rand(&s) % 900);
            int64_t      *c = calloc((size_t)n, sizeof *c);
            fill_shape(c, n, shape, &s);
            c[1] += 1; /* bins[0] = bins[1]: keep the total positive */
            int64_t bi_r = 0, bi_f = 0;
            double  kl_r = 0, kl_f = 0;
            const int64_t start = rep == 3 ? 64 : 128, stride = rep == 2 ? 3 : 1;
            CU_ASSERT_FATAL(lq_entropy_search_ref(c, n, 128, start, stride, &bi_r, &kl_r) == LQ_OK);
            CU_ASSERT_FATAL(lq_entropy_search(c, n, 128, start, stride, &bi_f, &kl_f) == LQ_OK);
            CU_ASSERT_EQUAL(bi_r, bi_f);
            CU_ASSERT(kl_r == kl_f || (isinf(kl_r) && isinf(kl_f)));
            if (bi_r != bi_f) fprintf(stderr, "shape %d n %lld: ref %lld fast %lld\n", shape, (long long)n,
                                      (long long)bi_r, (long long)bi_f);
            cases++;
            free(c);
        }
    CU_ASSERT_EQUAL(cases, 24);
}

/* worked by hand: every count in bins [0, 128) -> candidate 128 maps each bin
 * to its own level (Q = P): KL 0. Candidate 129 merges bins 0 and 1 into
 * level 0 (floor(128 / 129) = 0), which bins[0] = bins[1] makes lossless, and
 * leaves bin 128 empty: KL 0 as well; from 130 on two unequal bins share a
 * level. The last minimum is 129. */
static void test_entropy_by_hand(void) {
    int64_t c[256];
    memset(c, 0, sizeof c);
    for (int j = 0; j < 128; j++) c[j] = 1 + j % 5;
    int64_t bi = 0;
    double  kl = 1;
    CU_ASSERT_FATAL(lq_entropy_search_ref(c, 256, 128, 128, 1, &bi, &kl) == LQ_OK);
    CU_ASSERT_EQUAL(bi, 129);
    CU_ASSERT_DOUBLE_EQUAL(kl, 0.0, 1e-15);
    /* a single level of data and an outlier beyond: i must cover the outlier (P>0, Q=0 is infinite) */
    int64_t d[256];
    memset(d, 0, sizeof d);
    d[0] = d[1] = 100;
    d[200]      = 1;
    CU_ASSERT_FATAL(lq_entropy_search(d, 256, 128, 128, 1, &bi, &kl) == LQ_OK);
    CU_ASSERT(bi >= 201 && isfinite(kl)); /* every i <= 200 leaves the outlier in an empty last bin: infinite */
}

static lq_hist *uniform_hist(int64_t n, float amax, bool sgn) {
    lq_hist *h = NULL;
    CU_ASSERT_FATAL(lq_hist_new(0, sgn, &h) == LQ_OK);
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = amax * ((float)i / (float)(n - 1)) * (i % 2 ? 1.f : -1.f);
    CU_ASSERT_FATAL(lq_hist_add(h, x, n, 2) == LQ_OK);
    free(x);
    return h;
}

static void test_percentile_mse_max(void) {
    lq_hist       *h = uniform_hist(1000001, 4.0f, true);
    double         a = 0;
    int64_t        b = 0;
    lq_amax_params p = lq_amax_default_params(LQ_AMAX_MAX);
    CU_ASSERT_FATAL(lq_hist_amax(h, &p, &a, &b) == LQ_OK);
    CU_ASSERT_DOUBLE_EQUAL(a, 4.0, 0);
    CU_ASSERT_EQUAL(b, -1);
    p = lq_amax_default_params(LQ_AMAX_PERCENTILE);
    CU_ASSERT_FATAL(lq_hist_amax(h, &p, &a, &b) == LQ_OK);
    CU_ASSERT_DOUBLE_EQUAL(a, 4.0 * 0.9999, 4.0 / 2048 + 1e-9); /* within one bin */
    p.percentile = 50;
    CU_ASSERT_FATAL(lq_hist_amax(h, &p, &a, &b) == LQ_OK);
    CU_ASSERT_DOUBLE_EQUAL(a, 2.0, 4.0 / 2048 + 1e-9);
    p = lq_amax_default_params(LQ_AMAX_MSE);
    CU_ASSERT_FATAL(lq_hist_amax(h, &p, &a, &b) == LQ_OK);
    CU_ASSERT(a > 3.9 && a <= 4.0); /* uniform data: clipping only hurts */
    p = lq_amax_default_params(LQ_AMAX_ENTROPY);
    CU_ASSERT_FATAL(lq_hist_amax(h, &p, &a, &b) == LQ_OK);
    CU_ASSERT(a > 0 && a <= 4.0 + 1e-9);
    p = lq_amax_default_params(LQ_AMAX_ENTROPY_ORT);
    CU_ASSERT_FATAL(lq_hist_amax(h, &p, &a, &b) == LQ_OK);
    CU_ASSERT(a > 0 && a <= 4.0 + 1e-9);
    lq_hist_free(h);
    /* a Gaussian-like tail: entropy clips, max does not */
    lq_hist *g = NULL;
    CU_ASSERT_FATAL(lq_hist_new(0, true, &g) == LQ_OK);
    uint64_t s = 5;
    float   *x = malloc(400000 * sizeof *x);
    for (int i = 0; i < 400000; i++) {
        double u = 0;
        for (int k = 0; k < 12; k++) u += (double)(lq_test_rand(&s) >> 11) * 0x1p-53;
        x[i] = (float)(u - 6);
    }
    CU_ASSERT_FATAL(lq_hist_add(g, x, 400000, 2) == LQ_OK);
    p = lq_amax_default_params(LQ_AMAX_ENTROPY);
    CU_ASSERT_FATAL(lq_hist_amax(g, &p, &a, &b) == LQ_OK);
    CU_ASSERT(a < lq_hist_absmax(g) && a > 2.0);
    free(x);
    lq_hist_free(g);
    CU_ASSERT_STRING_EQUAL(lq_amax_method_name(LQ_AMAX_ENTROPY_ORT), "entropy-ort");
    lq_amax_method m;
    CU_ASSERT(lq_amax_method_from_name("mse", &m) == LQ_OK && m == LQ_AMAX_MSE);
    CU_ASSERT(lq_amax_method_from_name("kl", &m) == LQ_ERR_INVALID_ARG);
}

static void test_trt_cache(void) {
    char path[4200];
    snprintf(path, sizeof path, "%s/calib.cache", lq_test_tmpdir("trt"));
    const char *names[2] = {"a.input", "b.input"};
    const double amax[2] = {127.0, 2.54};
    CU_ASSERT_FATAL(lq_trt_cache_write(path, 8600, names, amax, 2) == LQ_OK);
    size_t   len = 0;
    uint8_t *t   = lq_test_read_file(path, &len);
    CU_ASSERT_FATAL(t != NULL);
    const char *want = "TRT-8600-EntropyCalibration2\na.input: 3f800000\nb.input: 3ca3d70a\n";
    CU_ASSERT_EQUAL(len, strlen(want));
    CU_ASSERT(len == strlen(want) && memcmp(t, want, len) == 0);
    free(t);
    const double bad[1] = {0};
    lq_test_quiet(1);
    CU_ASSERT_EQUAL(lq_trt_cache_write(path, 8600, names, bad, 1), LQ_ERR_INVALID_ARG);
    lq_test_quiet(0);
}

/* tests/data/calib_hist/oracle.json: histograms with the bins the Python
 * oracle (an implementation of REFERENCE.md 6.2, and NVIDIA's own function
 * when installable) chose */
static void test_oracle_fixtures(void) {
    size_t   len = 0;
    uint8_t *txt = lq_test_read_file("tests/data/calib_hist/oracle.json", &len);
    CU_ASSERT_FATAL(txt != NULL);
    lq_json_doc *doc = NULL;
    CU_ASSERT_FATAL(lq_json_parse((const char *)txt, len, NULL, &doc, NULL) == LQ_OK);
    const lq_json *arr = lq_json_get(lq_json_root(doc), "cases");
    CU_ASSERT_FATAL(arr && arr->type == LQ_JSON_ARRAY && arr->n >= 20);
    int agree = 0, real = 0, nvidia = 0;
    for (uint32_t i = 0; i < arr->n; i++) {
        const lq_json *e = &arr->items[i], *cj = lq_json_get(e, "counts");
        int64_t        want = -1, n = cj->n;
        CU_ASSERT_FATAL(lq_json_get_i64(lq_json_get(e, "oracle_bin"), &want));
        int64_t nv = -1; /* NVIDIA's own function (ModelOpt), when the fixture generator could import it */
        if (lq_json_get_i64(lq_json_get(e, "nvidia_bin"), &nv)) {
            CU_ASSERT_EQUAL(nv, want);
            nvidia++;
        }
        int64_t *c = calloc((size_t)n, sizeof *c);
        for (int64_t j = 0; j < n; j++) lq_json_get_i64(&cj->items[j], &c[j]);
        int64_t br = 0, bf = 0;
        double  k1, k2;
        CU_ASSERT_FATAL(lq_entropy_search_ref(c, n, 128, 128, 1, &br, &k1) == LQ_OK);
        CU_ASSERT_FATAL(lq_entropy_search(c, n, 128, 128, 1, &bf, &k2) == LQ_OK);
        CU_ASSERT_EQUAL(br, want);
        CU_ASSERT_EQUAL(bf, want);
        agree += br == want && bf == want;
        const char *kind = lq_json_get_str(lq_json_get(e, "kind"));
        real += kind && !strcmp(kind, "real");
        free(c);
    }
    CU_ASSERT_EQUAL(agree, (int)arr->n);
    CU_ASSERT(real >= 10);
    CU_ASSERT_EQUAL(nvidia, (int)arr->n);
    printf("\n  entropy oracle: %d/%u histograms agree (%d real; NVIDIA ModelOpt's own bin on %d)\n", agree, arr->n,
           real, nvidia);
    lq_json_free(doc);
    free(txt);
}

CU_pSuite lq_test_calib_hist_suite(void) {
    CU_pSuite s = lq_test_add_suite("calib_hist");
    CU_add_test(s, "test_histc_ref_cpu", test_histc_ref_cpu);
    CU_add_test(s, "test_extension_rule", test_extension_rule);
    CU_add_test(s, "test_entropy_fast_vs_literal", test_entropy_fast_vs_literal);
    CU_add_test(s, "test_entropy_by_hand", test_entropy_by_hand);
    CU_add_test(s, "test_percentile_mse_max", test_percentile_mse_max);
    CU_add_test(s, "test_trt_cache", test_trt_cache);
    CU_add_test(s, "test_oracle_fixtures", test_oracle_fixtures);
    return s;
}
