#!/usr/bin/env bash
# quant_speed_vs_llamacpp.sh : quantization speed side by side with llama.cpp's
# llama-quantize on the same input (a synthetic F16 Llama, 8 layers of the
# 1B shape, ~0.9 GB), same thread count. Both read the same F16 weights: ours
# from safetensors, llama-quantize from the F16 GGUF that lq-quant writes.
# Rates are source bytes of the quantized matrices per second of quantization
# (lq-quant's --json quantize_seconds; llama-quantize's own "quant time").
#   usage: tests/interop/quant_speed_vs_llamacpp.sh LLAMA_CPP_BIN_DIR [THREADS] [BUILD]
set -eu
BIN=${1:?path to llama.cpp build/bin}
NT=${2:-2}
BUILD=${3:-build}
T=$(mktemp -d "${TMPDIR:-/tmp}/lq-speed.XXXXXX")
trap 'rm -rf "$T"' EXIT
"$BUILD/lq-synth" --layers 8 --vocab 32000 --dtype f16 "$T/m" >/dev/null
"$BUILD/lq-quant" -q --format gguf --type f16 "$T/m" "$T/m-f16.gguf" --tokenizer "${TOKENIZER:-../shared/data/stories260K-hf/tokenizer.model}" 2>/dev/null || true
if [ ! -s "$T/m-f16.gguf" ]; then echo "could not write the F16 GGUF" >&2; exit 1; fi
echo "| type | lq-quant GB/s | llama-quantize GB/s | speedup |"
echo "|---|---:|---:|---:|"
for pair in "q8_0 Q8_0" "q4_0 Q4_0" "q4_k Q4_K_S" "q6_k Q6_K"; do
    set -- $pair
    "$BUILD/lq-quant" -q -t "$NT" --no-fsync --format gguf --type "$1" --json "$T/m" "$T/ours.gguf" >"$T/r.json"
    ours=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["quantize_seconds"])' "$T/r.json")
    src=$(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(sum(1 for v in r["tensor_types"].values() if v not in ("f16", "f32")))' "$T/r.json")
    "$BIN/llama-quantize" "$T/m-f16.gguf" "$T/theirs.gguf" "$2" "$NT" >"$T/lc.log" 2>&1
    theirs_ms=$(grep -o 'quant time = *[0-9.]* ms' "$T/lc.log" | grep -o '[0-9.]*')
    # bytes of the F16 matrices both quantized: the 8 layers' Linear weights (7 per layer)
    bytes=$(python3 -c 'print(2 * 8 * (2*2048*2048 + 2*256*2048 + 3*2048*5632))')
    python3 -c '
import sys
b, ours, theirs_ms = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
# llama-quantize also quantizes token_embd/output (32000 x 2048); count them for it
b_lc = b + 2 * 2 * 32000 * 2048
print(f"| {sys.argv[4]} | {b/ours/1e9:.2f} | {b_lc/(theirs_ms/1e3)/1e9:.2f} | {(b/ours)/(b_lc/(theirs_ms/1e3)):.1f}x |")
' "$bytes" "$ours" "$theirs_ms" "$1"
    rm -f "$T/ours.gguf" "$T/theirs.gguf"
done
