/* qformat_dequant_ref.c : dequantize a GPTQ / compressed-tensors directory written by libquant into a dense f32
 * safetensors file (the REF argument of qformat_check.py). Act-order modules (lq_qformat_load returns a g_idx) are
 * dequantized the transformers way, w[r][k] = s[r][g_idx[k]] * (u[r][k] - z[r][g_idx[k]]), from the codes in the
 * file's column order. Not built by make; build by hand:
 *   gcc -std=c11 -D_GNU_SOURCE -Ilibquant/core -Ilibquant -Iformats -Ikernels -Icalib \
 *       tests/interop/qformat_dequant_ref.c build/libquant.a -fopenmp -lzip -lz -lm \
 *       [-L/usr/local/cuda/lib64 -lcusolver -lcublasLt -lcublas -lcudart -lstdc++] -o ref
 *   ./ref QDIR REF.safetensors */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "libquant.h"
int main(int argc, char **argv) {
    lq_checkpoint *ck; lq_quant_config *qc;
    if (lq_checkpoint_open(argv[1], &ck) || lq_quant_config_load(ck, &qc)) return 1;
    int64_t n = lq_checkpoint_count(ck), k = 0;
    lq_st_entry *e = calloc(n, sizeof *e); void **own = calloc(n, sizeof *own);
    char names[512][160]; int nn = 0;
    for (int64_t i = 0; i < n; i++) {
        const lq_tensor_info *t = lq_checkpoint_tensor(ck, i);
        const char *suf[] = {".qweight", ".weight_packed", ".weight", NULL};
        int s; size_t L = strlen(t->name);
        for (s = 0; suf[s]; s++) { size_t l = strlen(suf[s]); if (L > l && !strcmp(t->name + L - l, suf[s])) break; }
        if (!suf[s]) continue;
        char prefix[160]; snprintf(prefix, sizeof prefix, "%.*s", (int)(L - strlen(suf[s])), t->name);
        if (s == 2 && (t->n_dims != 2 || strncmp(t->name, "model.layers.", 13) != 0)) { e[k].name = t->name; e[k].dtype = t->dtype; e[k].n_dims = t->n_dims; memcpy(e[k].shape, t->shape, sizeof t->shape); e[k].data = t->data; k++; continue; }
        /* rows/cols from the weight_shape or the plain tensor or qweight */
        int64_t rows, cols;
        if (s == 2) { rows = t->shape[0]; cols = t->shape[1]; }
        else { char nm[200]; snprintf(nm, sizeof nm, "%s.weight_shape", prefix); const lq_tensor_info *ws = lq_checkpoint_find(ck, nm);
               if (ws) { rows = ((const int64_t *)ws->data)[0]; cols = ((const int64_t *)ws->data)[1]; }
               else { snprintf(nm, sizeof nm, "%s.g_idx", prefix); const lq_tensor_info *g = lq_checkpoint_find(ck, nm); cols = g->shape[0]; rows = t->shape[1]; } }
        lq_qtensor q; void *o = NULL;
        if (s == 2 && !qc) return 1;
        if (lq_qformat_load(ck, qc, prefix, rows, cols, &q, &o)) return 2;
        float *f = malloc(rows * cols * 4);
        if (!q.g_idx) {
            if (lq_dequantize_ref(q.qtype, q.data, q.scales, q.zeros, rows, cols, f)) return 3;
        } else { /* act-order: column k uses group g_idx[k] (lq_dequantize_ref with unit scales gives u - z per element
                  * only for contiguous groups, so decode the codes here) */
            const lq_qtype_traits *tr = lq_qtype_traits_of(q.qtype);
            const int64_t ng = lq_qtype_n_groups(q.qtype, cols);
            const uint64_t rb = lq_qtype_row_bytes(q.qtype, cols);
            for (int64_t r = 0; r < rows; r++)
                for (int64_t c = 0; c < cols; c++) {
                    const uint8_t *row = (const uint8_t *)q.data + r * rb;
                    const uint64_t bit = (uint64_t)c * tr->bits;
                    unsigned v = row[bit >> 3];
                    if ((bit & 7) + tr->bits > 8) v |= (unsigned)row[(bit >> 3) + 1] << 8;
                    const int u = (int)((v >> (bit & 7)) & ((1u << tr->bits) - 1u)), g = q.g_idx[c];
                    const int z = q.zeros ? q.zeros[r * ng + g] : 1 << (tr->bits - 1);
                    f[r * cols + c] = q.scales[r * ng + g] * (float)(u - z);
                }
        }
        snprintf(names[nn], 160, "%s.weight", prefix);
        e[k].name = names[nn++]; e[k].dtype = LQ_DTYPE_F32; e[k].n_dims = 2; e[k].shape[0] = rows; e[k].shape[1] = cols; e[k].data = f; k++;
    }
    lq_st_write_params p = lq_st_write_default_params();
    return lq_safetensors_write(argv[2], e, k, &p) ? 4 : 0;
}
