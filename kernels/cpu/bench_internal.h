/* bench_internal.h : benchmarks of the `_cpu` kernels, called by lq-bench; not installed. */
#ifndef LQ_BENCH_INTERNAL_H
#define LQ_BENCH_INTERNAL_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/*! lq__bench_cpu_kernels() :
 *  Measures two ceilings on this machine with `n_threads` threads (<= 0: the
 *  OpenMP default): the f32 FMA peak (independent FMA chains, GFLOP/s) and
 *  the read-only streaming bandwidth (a parallel sum over a 1 GiB buffer,
 *  GB/s). Then, after a correctness check against lq_matmul_ref, times
 *  lq_matmul_cpu on Llama-1B-like shapes for F16, BF16 and F32 weights:
 *  prefill (x: 512 x 2048, GFLOP/s = 2·n·rows·cols / s, as a ratio to the FMA
 *  peak) and decode (n = 1, GB/s = weight bytes / s, as a ratio to the
 *  bandwidth; weights rotate through copies larger than the last-level cache
 *  so every call streams from DRAM), plus attention and the small ops.
 *  Each figure is the best of several runs, divided by its ceiling as
 *  re-measured right before and after it (the better of the two), so that
 *  load from other processes lowers ratios rather than inflating them.
 *  Prints to `out` one line per figure, e.g.
 *    "matmul f16 prefill 512x2048x5632 : 312.4 GFLOP/s  ratio 0.71 of FMA peak".
 *  Allocates up to ~1.5 GB; frees everything before returning.
 *  @return 0, or 1 if memory ran out or the correctness check failed. */
int lq__bench_cpu_kernels(int n_threads, FILE *out);

/*! lq__bench_ceilings() : the two ceilings alone (best of several runs):
 *  f32 FMA peak in GFLOP/s and read-only streaming bandwidth in GB/s (0 if
 *  the 1 GiB buffer cannot be allocated). */
void lq__bench_ceilings(int n_threads, double *fma_gflops, double *read_gbs);

/*! lq__bench_quantize() (bench_quant.c) : RTN quantization throughput of
 *  lq_quantize_cpu from an F16 source of Llama-8B-like shape for q8_0, q4_0,
 *  q4_k, q6_k, int8_ch, int4_g128 (sym/asym) and int4_g128 with the clip
 *  search: GB/s of source bytes read, as a ratio to the read bandwidth
 *  (lq__bench_ceilings, before and after, the better). One line per figure.
 *  @return 0, or 1 on failure. */
int lq__bench_quantize(int n_threads, FILE *out);

/*! lq__bench_qmatmul() (bench_qkernels.c) : fused quantized GEMV/GEMM of
 *  lq_matmul_cpu on Llama-8B layer shapes (4096x4096, 14336x4096,
 *  4096x14336) for int4_g128, int8_ch, q8_0, q4_0, q4_k: decode (n = 1) as
 *  GB/s of weight bytes (incl. scales) over the read bandwidth, batch 2..16
 *  as a ratio to the batch-1 time, prefill (n = 512) GFLOP/s over the FMA
 *  peak; after a correctness check against lq_matmul_ref. @return 0 or 1. */
int lq__bench_qmatmul(int n_threads, FILE *out);

#ifdef __cplusplus
}
#endif
#endif /* LQ_BENCH_INTERNAL_H */
