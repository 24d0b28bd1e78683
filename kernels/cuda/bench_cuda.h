/* bench_cuda.h : benchmarks of the CUDA kernels, for lq-bench; not installed.
 * Defined in kernels/cuda/bench_*.cu, or by kernels/cuda_stub.c (returning 1)
 * in a build without CUDA. */
#ifndef LQ_BENCH_CUDA_H
#define LQ_BENCH_CUDA_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/*! lq__bench_cuda_qmatmul() : the fused int4_g128 GEMV of lq_cuda_matmul on
 *  Llama-8B layer shapes (rows x cols: 4096x4096, 14336x4096, 4096x14336)
 *  at batch 1, 2, 4, 8, 16, after a correctness check against
 *  lq_matmul_ref. Prints per shape and batch the time, GB/s of weight bytes
 *  (packed codes + f32 scales) as a ratio to the device-to-device memcpy
 *  bandwidth measured in the same run (2 x bytes copied / time), and the
 *  time as a multiple of batch 1. Weights rotate through copies that
 *  exceed the L2 cache, so every call streams from HBM.
 *  @return 0, or 1 without a CUDA device (or build) or on a failure. */
int lq__bench_cuda_qmatmul(FILE *out);

/*! lq__bench_cuda_gptq() : lq_cuda_gptq (int4_g128, block 128, damp 0.01,
 *  without and with act-order) on 1B-class Linear shapes (rows x cols:
 *  2048x2048, 5632x2048, 2048x5632) with H = (2/4096) X^T X from a random
 *  X (4096 x cols) built by lq_cuda_hessian_accum, after a correctness check
 *  against lq_gptq_cpu. Prints per shape the Hessian time against one
 *  cublasSgemm of its size, and the GPTQ wall time (best of 3, outputs
 *  copied to the host) as a ratio to one cublasDgemm (rows x cols) ·
 *  (cols x cols) measured in the same run, the ceiling.
 *  @return 0, or 1 without a CUDA device (or build) or on a failure. */
int lq__bench_cuda_gptq(FILE *out);

#ifdef __cplusplus
}
#endif
#endif /* LQ_BENCH_CUDA_H */
