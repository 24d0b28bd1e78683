#!/usr/bin/env bash
# quant_speed_vs_llamacpp.sh : quantization speed side by side with llama.cpp's
# llama-quantize on the same F16 weights (a synthetic Llama: 8 layers of the
# 1B shape, vocab 32000, ~0.97 GB), same thread count, warm page cache.
# End to end, both: read the F16 input (ours: safetensors; llama-quantize: the
# F16 GGUF that lq-quant writes from it), quantize, write a GGUF (no fsync).
# Rate = F16 bytes of the input file / wall time. Also ours compute-only
# (lq-quant --json quantize_seconds, source bytes of the quantized matrices).
# Each figure is the better of two runs.
#   usage: tests/interop/quant_speed_vs_llamacpp.sh LLAMA_CPP_BIN_DIR [THREADS] [BUILD] [SHARED]
set -u
BIN=${1:?path to llama.cpp build/bin}
NT=${2:-2}
BUILD=${3:-build}
SHARED=${4:-../shared/data}
TOK=$SHARED/stories260K-hf/tokenizer.model
T=$(mktemp -d "${TMPDIR:-/tmp}/lq-speed.XXXXXX")
trap 'rm -rf "$T"' EXIT
now() { date +%s.%N; }
"$BUILD/lq-synth" --layers 8 --vocab 32000 --dtype f16 "$T/m" >/dev/null || exit 1
"$BUILD/lq-quant" -q --no-fsync --format gguf --type f16 --tokenizer "$TOK" "$T/m" "$T/m-f16.gguf" >/dev/null || exit 1
bytes=$(stat -c %s "$T/m/model.safetensors")
cat "$T/m/model.safetensors" "$T/m-f16.gguf" >/dev/null # warm both
echo "| type | lq-quant end to end GB/s | llama-quantize end to end GB/s | speedup | lq-quant compute only GB/s |"
echo "|---|---:|---:|---:|---:|"
# the same tensor types as llama-quantize's presets: token_embd like the rest, output q6_k (q8_0 for Q8_0)
for pair in "q8_0 Q8_0 q8_0" "q4_0 Q4_0 q6_k" "q4_k Q4_K_S q6_k" "q6_k Q6_K q6_k"; do
    set -- $pair
    best_ours=1e9 best_theirs=1e9
    for rep in 1 2; do
        t0=$(now)
        "$BUILD/lq-quant" -q -t "$NT" --no-fsync --format gguf --type "$1" --tensor-type "embed_tokens=$1" \
            --tensor-type "lm_head=$3" --tokenizer "$TOK" --json "$T/m" "$T/ours.gguf" >"$T/r.json" ||
            { echo "lq-quant failed"; continue 2; }
        t1=$(now)
        "$BIN/llama-quantize" "$T/m-f16.gguf" "$T/theirs.gguf" "$2" "$NT" >"$T/lc.log" 2>&1 ||
            { echo "llama-quantize failed:"; tail -5 "$T/lc.log"; continue 2; }
        t2=$(now)
        best_ours=$(python3 -c "print(min($best_ours, $t1 - $t0))")
        best_theirs=$(python3 -c "print(min($best_theirs, $t2 - $t1))")
        rm -f "$T/ours.gguf" "$T/theirs.gguf"
    done
    t0=0 t1=$best_ours t2=$(python3 -c "print($best_ours + $best_theirs)")
    python3 - "$bytes" "$t0" "$t1" "$t2" "$1" "$T/r.json" <<'PY'
import json, sys
b, t0, t1, t2, name, rj = float(sys.argv[1]), *map(float, sys.argv[2:5]), sys.argv[5], sys.argv[6]
r = json.load(open(rj))
# source bytes of what lq-quant quantized: every 2-D tensor (the 8 layers' matrices + embedding + lm_head)
src = 2 * (8 * (2*2048*2048 + 2*256*2048 + 3*2048*5632) + 2 * 32000 * 2048)
ours, theirs = b / (t1 - t0) / 1e9, b / (t2 - t1) / 1e9
print(f"| {name} | {ours:.2f} | {theirs:.2f} | {ours / theirs:.1f}x | {src / r['quantize_seconds'] / 1e9:.2f} |")
PY
done
