/* w8a8_cuda.cu : the W8A8 static int8 matmul on the device (lq_weight.in_scale
 * > 0), as kernels/cpu/w8a8_cpu.c: x quantized per tensor with the static
 * scale (division, rint, clamp to [-128, 127]) into int8 rows padded with
 * zeros to whole 32-bit words; one thread per output sums the row with
 * __dp4a over words (the weight's u8 codes with zero point 128 become s8 by
 * XOR 0x80 per byte; the padding's q = 0 cancels), exact in int32; the
 * epilogue is (s_x * s_w[r]) * acc (+ bias, or accumulated into y). The
 * int32 sums equal the CPU's, so y equals lq_matmul_cpu's bit for bit. */
#include "llama_cuda_internal.cuh"

#define W8_BLOCK 256

static __global__ void quant_act_kernel(int8_t *q, const float *x, int64_t n, int64_t k, int64_t k4, float s) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n * k4; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t t = i / k4, j = i % k4;
        float         v = 0.f;
        if (j < k) {
            v = rintf(__fdiv_rn(x[t * k + j], s));
            v = v > 127.f ? 127.f : v < -128.f ? -128.f : v;
        }
        q[i] = (int8_t)v;
    }
}

static __global__ void gemm_dp4a_kernel(float *y, const int8_t *q, const uint8_t *b, const float *ws, const float *bias,
                                        int64_t n, int64_t rows, int64_t words, float sx, int accumulate) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n * rows; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t t = i / rows, r = i % rows;
        const int    *qa = reinterpret_cast<const int *>(q + t * words * 4);
        const unsigned *wb = reinterpret_cast<const unsigned *>(b + r * words * 4);
        int           acc = 0;
        for (int64_t w = 0; w < words; w++) acc = __dp4a(qa[w], (int)(wb[w] ^ 0x80808080u), acc);
        float v = __fmul_rn(__fmul_rn(sx, ws[r]), (float)acc);
        if (bias) v = __fadd_rn(v, bias[r]);
        y[t * rows + r] = accumulate ? __fadd_rn(y[t * rows + r], v) : v;
    }
}

size_t lq__cuda_w8a8_scratch_bytes(int64_t n, const lq_weight *w) {
    return (size_t)n * (size_t)((w->cols + 3) / 4 * 4);
}

lq_status lq__cuda_w8a8(float *y, const float *x, int64_t n, const lq_weight *w, const float *bias, void *scratch,
                        bool reuse_scratch, bool accumulate) {
    LQ_RETURN_IF(w->qtype != LQ_QT_INT8_CH || w->perm || !(w->in_scale > 0), LQ_ERR_UNSUPPORTED,
                 "matmul: static int8 activations (W8A8) need int8_ch weights without a permutation");
    const int64_t k4 = (w->cols + 3) / 4 * 4;
    int8_t       *q  = static_cast<int8_t *>(scratch);
    if (!reuse_scratch) {
        quant_act_kernel<<<lq__grid_for(n * k4, W8_BLOCK), W8_BLOCK>>>(q, x, n, w->cols, k4, w->in_scale);
        LQ_CUDA_TRY(cudaGetLastError());
    }
    gemm_dp4a_kernel<<<lq__grid_for(n * w->rows, W8_BLOCK), W8_BLOCK>>>(
        y, q, static_cast<const uint8_t *>(w->data), w->scales, bias, n, w->rows, k4 / 4, w->in_scale, accumulate ? 1 : 0);
    LQ_CUDA_TRY(cudaGetLastError());
    return LQ_OK;
}
