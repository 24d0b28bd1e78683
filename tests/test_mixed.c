/* test_mixed.c : the mixed-precision budget solver and its files
 * (libquant/mixed_plan.c, mixed_chart.c): the exact solver against brute
 * force on random tables (unsupported cells and exact ties included), the
 * Lagrangian bound and plan, the infeasible budget, table and plan JSON
 * round trips, a hand-edited plan, hostile files, the SVG chart, and a
 * 7B-like table solved quickly. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lq_test.h"

static lq_sens_table *random_table(int64_t G, int64_t C, uint64_t *s, bool ties) {
    lq_sens_table *t = NULL;
    CU_ASSERT_FATAL(lq_sens_table_new(G, C, &t) == LQ_OK);
    static const lq_qtype cands[] = {LQ_QT_F16, LQ_QT_INT8_CH, LQ_QT_INT4_G32, LQ_QT_INT4_CH, LQ_QT_INT3_G32,
                                     LQ_QT_INT2_G32};
    for (int64_t c = 0; c < C; c++) t->cands[c] = cands[c];
    for (int64_t g = 0; g < G; g++) {
        char name[64];
        snprintf(name, sizeof name, "model.layers.%lld.mlp.down_proj", (long long)g);
        t->groups[g].name      = lq_strdup(name);
        t->groups[g].role      = lq_strdup("down");
        t->groups[g].layer     = (int32_t)g;
        t->groups[g].numel     = 1000;
        t->groups[g].tensors   = lq_calloc(1, sizeof(char *));
        snprintf(name, sizeof name, "model.layers.%lld.mlp.down_proj.weight", (long long)g);
        t->groups[g].tensors[0] = lq_strdup(name);
        t->groups[g].n_tensors  = 1;
        for (int64_t c = 0; c < C; c++) {
            const uint64_t b = 100 + (uint64_t)(C - c) * (50 + lq_test_rand(s) % 50);
            t->bytes[g * C + c] = (c > 0 && lq_test_rand(s) % 6 == 0) ? UINT64_MAX : (ties ? b / 50 * 50 : b);
            t->kld[g * C + c] = ties ? (double)(c + lq_test_rand(s) % 2) : (double)c * 0.01 + 1e-3 * (double)(lq_test_rand(s) % 100);
        }
    }
    return t;
}

/* brute force over every combination */
static double brute(const lq_sens_table *t, uint64_t budget, uint64_t *bytes_out) {
    const int64_t G = t->n_groups, C = t->n_cands;
    int64_t       idx[16] = {0};
    double        best    = INFINITY;
    uint64_t      bb      = 0;
    for (;;) {
        uint64_t b  = t->fixed_bytes;
        double   k  = 0;
        bool     ok = true;
        for (int64_t g = 0; g < G; g++) {
            if (t->bytes[g * C + idx[g]] == UINT64_MAX) ok = false;
            b += t->bytes[g * C + idx[g]] == UINT64_MAX ? 0 : t->bytes[g * C + idx[g]];
            k += t->kld[g * C + idx[g]];
        }
        if (ok && b <= budget && (k < best || (k == best && b < bb))) {
            best = k;
            bb   = b;
        }
        int64_t g = 0;
        while (g < G && ++idx[g] == C) idx[g++] = 0;
        if (g == G) break;
    }
    *bytes_out = bb;
    return best;
}

static void test_solver_vs_brute_force(void) {
    uint64_t s = 21;
    int      n = 0;
    for (int rep = 0; rep < 60; rep++) {
        const int64_t  G = 1 + (int64_t)(lq_test_rand(&s) % 7), C = 2 + (int64_t)(lq_test_rand(&s) % 4);
        lq_sens_table *t = random_table(G, C, &s, rep % 3 == 0);
        t->fixed_bytes   = rep % 2 ? 77 : 0;
        uint64_t lo = t->fixed_bytes, hi = t->fixed_bytes;
        for (int64_t g = 0; g < G; g++) {
            uint64_t mn = UINT64_MAX, mx = 0;
            for (int64_t c = 0; c < C; c++)
                if (t->bytes[g * C + c] != UINT64_MAX) {
                    mn = t->bytes[g * C + c] < mn ? t->bytes[g * C + c] : mn;
                    mx = t->bytes[g * C + c] > mx ? t->bytes[g * C + c] : mx;
                }
            lo += mn;
            hi += mx;
        }
        const uint64_t budget = lo + (hi - lo) * (uint64_t)(lq_test_rand(&s) % 101) / 100;
        uint64_t       bb     = 0;
        const double   want   = brute(t, budget, &bb);
        lq_mixed_plan  p;
        CU_ASSERT_FATAL(lq_mixed_solve(t, budget, &p) == LQ_OK);
        CU_ASSERT(p.exact);
        CU_ASSERT(p.bytes <= budget);
        CU_ASSERT(fabs(p.predicted_kld - want) <= 1e-12);
        CU_ASSERT(p.bytes == bb); /* ties: fewer bytes */
        lq_mixed_plan l;
        CU_ASSERT_FATAL(lq_mixed_solve_lagrangian(t, budget, &l) == LQ_OK);
        CU_ASSERT(l.bytes <= budget);
        CU_ASSERT(l.lower_bound <= want + 1e-12);
        CU_ASSERT(l.predicted_kld >= want - 1e-12);
        lq_mixed_plan_free(&p);
        lq_mixed_plan_free(&l);
        /* infeasible: one byte below the smallest plan */
        if (lo > 0) {
            lq_test_quiet(1);
            CU_ASSERT_EQUAL(lq_mixed_solve(t, lo - 1, &p), LQ_ERR_INVALID_ARG);
            CU_ASSERT(strstr(lq_test_last_error(), "smallest achievable size") != NULL);
            lq_test_quiet(0);
        }
        lq_sens_table_free(t);
        n++;
    }
    CU_ASSERT_EQUAL(n, 60);
}

static void test_files_round_trip(void) {
    uint64_t       s = 4;
    lq_sens_table *t = random_table(5, 4, &s, false);
    t->kld[3]        = NAN; /* not measured */
    t->bytes[3]      = UINT64_MAX;
    t->base_kld      = 1e-17;
    t->kld[1]        = 0.1 + 1e-16; /* bit-exact doubles */
    t->model         = lq_strdup("m");
    const char *dir  = lq_test_tmpdir("mixed");
    char        tp[4200], pp[4200], sp[4200];
    snprintf(tp, sizeof tp, "%s/sens.json", dir);
    snprintf(pp, sizeof pp, "%s/plan.json", dir);
    snprintf(sp, sizeof sp, "%s/chart.svg", dir);
    CU_ASSERT_FATAL(lq_sens_table_write_json(t, tp) == LQ_OK);
    lq_sens_table *r = NULL;
    CU_ASSERT_FATAL(lq_sens_table_read_json(tp, &r) == LQ_OK);
    CU_ASSERT_EQUAL(r->n_groups, 5);
    CU_ASSERT_EQUAL(r->n_cands, 4);
    for (int64_t i = 0; i < 20; i++) {
        CU_ASSERT(r->bytes[i] == t->bytes[i]);
        CU_ASSERT((isnan(r->kld[i]) && isnan(t->kld[i])) || memcmp(&r->kld[i], &t->kld[i], 8) == 0);
    }
    CU_ASSERT_STRING_EQUAL(r->groups[2].tensors[0], t->groups[2].tensors[0]);
    CU_ASSERT(r->base_kld == t->base_kld);
    lq_mixed_plan p;
    CU_ASSERT_FATAL(lq_mixed_solve(r, UINT64_MAX / 4, &p) == LQ_OK);
    CU_ASSERT_FATAL(lq_mixed_plan_write_json(r, &p, pp, "{\"note\": 1}") == LQ_OK);
    lq_plan_file *pf = NULL;
    CU_ASSERT_FATAL(lq_plan_file_read(pp, &pf) == LQ_OK);
    CU_ASSERT_EQUAL(pf->n, 5);
    for (int64_t g = 0; g < 5; g++) {
        CU_ASSERT_STRING_EQUAL(pf->tensor[g], r->groups[g].tensors[0]);
        CU_ASSERT_EQUAL(pf->type[g], p.types[g]);
    }
    lq_plan_file_free(pf);
    /* a hand-edited plan: types only */
    const char *hand = "{\"format\":\"libquant-plan\",\"groups\":[{\"type\":\"int4_g32\",\"tensors\":[\"a.weight\",\"b.weight\"]}]}";
    CU_ASSERT_FATAL(lq_test_write_file(pp, hand, strlen(hand)) == 0);
    CU_ASSERT_FATAL(lq_plan_file_read(pp, &pf) == LQ_OK);
    CU_ASSERT(pf->n == 2 && pf->type[1] == LQ_QT_INT4_G32);
    lq_plan_file_free(pf);
    /* hostile files */
    static const char *const bad_plans[] = {
        "{}", "{\"format\":\"libquant-plan\",\"groups\":[]}",
        "{\"format\":\"libquant-plan\",\"groups\":[{\"type\":\"int5\",\"tensors\":[\"a\"]}]}",
        "{\"format\":\"libquant-plan\",\"groups\":[{\"type\":\"int4\",\"tensors\":[]}]}",
        "{\"format\":\"libquant-plan\",\"groups\":[{\"type\":\"int4\",\"tensors\":[\"a\",\"a\"]}]}", "[",
    };
    lq_test_quiet(1);
    for (size_t i = 0; i < sizeof bad_plans / sizeof bad_plans[0]; i++) {
        CU_ASSERT_FATAL(lq_test_write_file(pp, bad_plans[i], strlen(bad_plans[i])) == 0);
        CU_ASSERT(lq_plan_file_read(pp, &pf) == LQ_ERR_FORMAT);
    }
    static const char *const bad_tables[] = {
        "{\"format\":\"libquant-sensitivity\",\"candidates\":[\"int4\"],\"groups\":[{\"name\":\"g\",\"layer\":0,"
        "\"numel\":-1,\"tensors\":[\"a\"],\"kld\":{}}]}",
        "{\"format\":\"libquant-sensitivity\",\"candidates\":[\"int4\",\"int4\"],\"groups\":[{}]}",
        "{\"format\":\"libquant-sensitivity\",\"candidates\":[\"x\"],\"groups\":[{}]}",
        "{\"format\":\"libquant-sensitivity\",\"candidates\":[\"int4\"],\"groups\":[{\"name\":\"g\",\"layer\":0,"
        "\"numel\":1,\"tensors\":[\"a\"],\"kld\":{\"int4_g128\":\"x\"}}]}",
    };
    lq_sens_table *bt = NULL;
    for (size_t i = 0; i < sizeof bad_tables / sizeof bad_tables[0]; i++) {
        CU_ASSERT_FATAL(lq_test_write_file(tp, bad_tables[i], strlen(bad_tables[i])) == 0);
        CU_ASSERT(lq_sens_table_read_json(tp, &bt) == LQ_ERR_FORMAT);
        CU_ASSERT(bt == NULL);
    }
    lq_test_quiet(0);
    /* the chart: well-formed (balanced tags), every group and type named */
    CU_ASSERT_FATAL(lq_sens_chart_svg(r, &p, "a <test> & chart", sp) == LQ_OK);
    size_t len = 0;
    char  *svg = (char *)lq_test_read_file(sp, &len);
    CU_ASSERT_FATAL(svg != NULL);
    svg = realloc(svg, len + 1);
    svg[len] = 0;
    CU_ASSERT(strstr(svg, "<svg") != NULL && strstr(svg, "</svg>") != NULL);
    CU_ASSERT(strstr(svg, "&lt;test&gt; &amp; chart") != NULL);
    int depth = 0, bad = 0;
    for (const char *c = svg; *c; c++) {
        if (c[0] != '<' || c[1] == '?') continue;
        const char *e = strchr(c, '>');
        if (!e) {
            bad++;
            break;
        }
        if (c[1] == '/')
            depth--;
        else if (e[-1] != '/')
            depth++;
        if (depth < 0) bad++;
    }
    CU_ASSERT_EQUAL(depth, 0);
    CU_ASSERT_EQUAL(bad, 0);
    for (int64_t c = 0; c < r->n_cands; c++) CU_ASSERT(strstr(svg, lq_qtype_name(r->cands[c])) != NULL);
    for (int64_t g = 0; g < r->n_groups; g++) CU_ASSERT(strstr(svg, r->groups[g].name) != NULL);
    free(svg);
    lq_mixed_plan_free(&p);
    lq_sens_table_free(r);
    lq_sens_table_free(t);
}

/* a Llama-3-8B-like table: 32 layers x 4 groups + embedding, 8 candidates, real byte sizes */
static void test_large_table_fast(void) {
    const int64_t  L = 32, G = L * 4 + 1, C = 8;
    lq_sens_table *t = NULL;
    CU_ASSERT_FATAL(lq_sens_table_new(G, C, &t) == LQ_OK);
    static const double bits[8] = {16, 8.25, 4.5, 4.125, 4.03, 3.5, 3.125, 2.5};
    const double        numel[4] = {4096.0 * 6144, 4096.0 * 4096, 2 * 4096.0 * 14336, 14336.0 * 4096};
    uint64_t            s = 9;
    for (int64_t c = 0; c < C; c++) t->cands[c] = (lq_qtype)(LQ_QT_F16 + c);
    for (int64_t g = 0; g < G; g++) {
        t->groups[g].name = lq_strdup("g");
        const double ne   = g < L * 4 ? numel[g % 4] : 128256.0 * 4096;
        for (int64_t c = 0; c < C; c++) {
            t->bytes[g * C + c] = (uint64_t)(ne * bits[c] / 8);
            t->kld[g * C + c]   = 1e-3 * pow(2.0, 16 - bits[c]) * (1 + 0.01 * (double)(lq_test_rand(&s) % 100));
        }
    }
    uint64_t total16 = 0;
    for (int64_t g = 0; g < G; g++) total16 += t->bytes[g * C];
    const clock_t t0 = clock();
    lq_mixed_plan p;
    CU_ASSERT_FATAL(lq_mixed_solve(t, total16 / 4 + total16 / 40, &p) == LQ_OK); /* ~4.4 bits */
    const double sec = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CU_ASSERT(p.bytes <= total16 / 4 + total16 / 40);
    lq_mixed_plan l;
    CU_ASSERT_FATAL(lq_mixed_solve_lagrangian(t, total16 / 4 + total16 / 40, &l) == LQ_OK);
    CU_ASSERT(l.lower_bound <= p.predicted_kld + 1e-12 && p.predicted_kld <= l.predicted_kld + 1e-12);
    printf("\n  7B-like table (129 groups x 8): %s solve in %.3f s, KLD %.4f (Lagrangian plan %.4f, bound %.4f)\n",
           p.exact ? "exact" : "fallback", sec, p.predicted_kld, l.predicted_kld, l.lower_bound);
    CU_ASSERT(sec < 5.0);
    for (int64_t g = 0; g < G; g++) lq_free(t->groups[g].name), t->groups[g].name = NULL;
    lq_mixed_plan_free(&p);
    lq_mixed_plan_free(&l);
    lq_sens_table_free(t);
}

CU_pSuite lq_test_mixed_suite(void) {
    CU_pSuite s = lq_test_add_suite("mixed");
    CU_add_test(s, "test_solver_vs_brute_force", test_solver_vs_brute_force);
    CU_add_test(s, "test_files_round_trip", test_files_round_trip);
    CU_add_test(s, "test_large_table_fast", test_large_table_fast);
    return s;
}
