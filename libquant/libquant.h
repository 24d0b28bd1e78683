/* libquant.h : the public umbrella header. tools/ include only this.
 *
 * Modules, lowest first (each depends only on those above it):
 *   lq_common.h   core: status, logging, allocator, dtypes, tensor view
 *   lq_json.h     core: strict JSON reader and writer
 *   lq_formats.h  safetensors, PyTorch zip, llama2.c, config.json readers/writers
 *   lq_tokenizer.h SentencePiece / tokenizer.json / llama2.c tokenizers
 *   lq_kernels.h  compute kernels: _ref, OpenMP and CUDA (GPTQ solver included)
 *   lq_calib.h    calibration data: text, JSON Lines, token files -> windows; activation
 *                 histograms and range calibrators (entropy, max, percentile, MSE)
 *   lq_model.h    the Llama-family model runner (CPU and CUDA)
 *   lq_gptq.h     block-by-block GPTQ over a calibration set (resumable)
 *   lq_eval.h     live perplexity and KL divergence against a base model
 *   lq_synth.h    random-weight checkpoints for benchmarks
 *   lq_actstats.h activation histograms of every Linear input, calibrated ranges, TensorRT cache
 *   lq_mixed.h    sensitivity tables, the exact budget solver, plan files, the SVG chart
 *   lq_sensitivity.h  per-group sensitivity measured with the runner
 *   lq_prune.h    magnitude / N:M pruning streamed into safetensors */
#ifndef LIBQUANT_H
#define LIBQUANT_H

#include "lq_common.h"
#include "lq_json.h"
#include "lq_qtypes.h"
#include "lq_formats.h"
#include "lq_qformats.h"
#include "lq_tokenizer.h"
#include "lq_kernels.h"
#include "lq_calib.h"
#include "lq_model.h"
#include "lq_eval.h"
#include "lq_gptq.h"
#include "lq_synth.h"
#include "lq_actstats.h"
#include "lq_mixed.h"
#include "lq_sensitivity.h"
#include "lq_prune.h"

#endif
