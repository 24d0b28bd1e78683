/* mixed_chart.c : the sensitivity table drawn as an SVG chart (lq_mixed.h).
 * Groups along x in table order, log10 KLD along y, one colour and marker
 * per candidate type joined by lines, the plan's choices ringed. */
#include "lq_mixed.h"

#include "lq_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    char     *buf;
    size_t    len, cap;
    lq_status st;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) LQ_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->st != LQ_OK) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        const int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->st = LQ_ERR_INVALID_ARG;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        const size_t cap = 2 * b->cap + (size_t)n + 1;
        char        *nb  = lq_malloc(cap);
        if (!nb) {
            b->st = LQ_ERR_NOMEM;
            return;
        }
        if (b->len) memcpy(nb, b->buf, b->len);
        lq_free(b->buf);
        b->buf = nb;
        b->cap = cap;
    }
}

/* text with the XML specials escaped */
static void sb_text(sbuf *b, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '<': sb_printf(b, "&lt;"); break;
        case '>': sb_printf(b, "&gt;"); break;
        case '&': sb_printf(b, "&amp;"); break;
        case '"': sb_printf(b, "&quot;"); break;
        default: sb_printf(b, "%c", *s);
        }
    }
}

static const char *const COLORS[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                                     "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

/* marker k at (x, y) */
static void marker(sbuf *b, int k, double x, double y, const char *col) {
    switch (k % 4) {
    case 0: sb_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n", x, y, col); break;
    case 1: sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"7\" height=\"7\" fill=\"%s\"/>\n", x - 3.5, y - 3.5, col); break;
    case 2:
        sb_printf(b, "<polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f\" fill=\"%s\"/>\n", x, y - 4.5, x - 4, y + 3.5,
                  x + 4, y + 3.5, col);
        break;
    default:
        sb_printf(b, "<polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f\" fill=\"%s\"/>\n", x, y - 4.5, x + 4.5,
                  y, x, y + 4.5, x - 4.5, y, col);
    }
}

lq_status lq_sens_chart_svg(const lq_sens_table *t, const lq_mixed_plan *plan, const char *title, const char *path) {
    const int64_t G = t->n_groups, C = t->n_cands;
    double        lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < G * C; i++)
        if (isfinite(t->kld[i]) && t->kld[i] > 0) {
            lo = LQ_MIN(lo, t->kld[i]);
            hi = LQ_MAX(hi, t->kld[i]);
        }
    if (!isfinite(lo)) lo = 1e-6, hi = 1;
    const double ylo = floor(log10(lo)), yhi = LQ_MAX(ceil(log10(hi)), ylo + 1);
    const double L = 80, R = 190, TOP = 50, BOT = 130;
    const double W = LQ_MAX(640.0, L + R + 18.0 * (double)G), H = 480;
    const double pw = W - L - R, ph = H - TOP - BOT;
    sbuf         b = {NULL, 0, 0, LQ_OK};
#define XP(g) (L + pw * ((double)(g) + 0.5) / (double)G)
#define YP(v) (TOP + ph * (yhi - log10(v)) / (yhi - ylo))
    sb_printf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    sb_printf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%.0f\" height=\"%.0f\" "
                  "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"11\">\n", W, H, W, H);
    sb_printf(&b, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", W, H);
    sb_printf(&b, "<text x=\"%.1f\" y=\"24\" font-size=\"14\" text-anchor=\"middle\">Sensitivity: KL divergence with "
                  "one group quantized", W / 2);
    if (title) {
        sb_printf(&b, " (");
        sb_text(&b, title);
        sb_printf(&b, ")");
    }
    sb_printf(&b, "</text>\n");
    /* y grid and labels */
    for (double e = ylo; e <= yhi + 1e-9; e += 1) {
        const double y = TOP + ph * (yhi - e) / (yhi - ylo);
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#dddddd\"/>\n", L, y, L + pw, y);
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">1e%d</text>\n", L - 6, y + 4, (int)e);
    }
    sb_printf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"black\"/>\n", L, TOP,
              pw, ph);
    sb_printf(&b, "<text x=\"18\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 18 %.1f)\">mean KLD "
                  "(nats/token, log scale)</text>\n", TOP + ph / 2, TOP + ph / 2);
    sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">group (layer.role)</text>\n", L + pw / 2, H - 12);
    /* x labels */
    for (int64_t g = 0; g < G; g++) {
        const lq_mixed_group *gr = &t->groups[g];
        char                  lab[64];
        if (gr->layer >= 0)
            snprintf(lab, sizeof lab, "%d.%s", gr->layer, gr->role ? gr->role : "?");
        else
            snprintf(lab, sizeof lab, "%s", gr->role ? gr->role : "?");
        const double x = XP(g), y = TOP + ph + 10;
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" transform=\"rotate(-60 %.1f %.1f)\">", x, y, x, y);
        sb_text(&b, lab);
        sb_printf(&b, "<title>");
        sb_text(&b, gr->name);
        sb_printf(&b, "</title></text>\n");
    }
    /* one series per candidate */
    for (int64_t c = 0; c < C; c++) {
        const char *col = COLORS[c % (int64_t)(sizeof COLORS / sizeof COLORS[0])];
        bool        pen = false;
        sb_printf(&b, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"1.2\" d=\"", col);
        for (int64_t g = 0; g < G; g++) {
            const double v = t->kld[g * C + c];
            if (!isfinite(v) || v <= 0) {
                pen = false;
                continue;
            }
            sb_printf(&b, "%s%.1f %.1f ", pen ? "L" : "M", XP(g), YP(v));
            pen = true;
        }
        sb_printf(&b, "\"/>\n");
        for (int64_t g = 0; g < G; g++) {
            const double v = t->kld[g * C + c];
            if (isfinite(v) && v > 0) marker(&b, (int)c, XP(g), YP(v), col);
        }
        const double ly = TOP + 16.0 * (double)c;
        marker(&b, (int)c, W - R + 20, ly, col);
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", W - R + 32, ly + 4, lq_qtype_name(t->cands[c]));
    }
    if (plan) {
        for (int64_t g = 0; g < G; g++) {
            const double v = t->kld[g * C + plan->choice[g]];
            if (isfinite(v) && v > 0)
                sb_printf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"7\" fill=\"none\" stroke=\"black\" "
                              "stroke-width=\"1.5\"/>\n", XP(g), YP(v));
        }
        const double ly = TOP + 16.0 * (double)C + 8;
        sb_printf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"7\" fill=\"none\" stroke=\"black\" stroke-width=\"1.5\"/>\n",
                  W - R + 20, ly);
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\">plan: %.3g predicted</text>\n", W - R + 32, ly + 4,
                  plan->predicted_kld);
    }
    sb_printf(&b, "</svg>\n");
#undef XP
#undef YP
    lq_status st = b.st;
    if (st == LQ_OK) {
        lq__afile *f = NULL;
        st           = lq__afile_open(path, &f);
        if (st == LQ_OK) st = lq__afile_write(f, b.buf, b.len);
        if (st == LQ_OK)
            st = lq__afile_commit(f);
        else
            lq__afile_abort(f);
    } else {
        LQ_LOG_ERR("%s: cannot build the chart (out of memory)", path);
    }
    lq_free(b.buf);
    return st;
}
