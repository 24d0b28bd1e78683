#!/usr/bin/env bash
# stories_quant_table.sh : quantize the bundled stories260K with every issue-4
# scheme and measure it against the f32 original on the TinyStories excerpt
# (ctx 512, llama.cpp's second-half scoring), printing the markdown table kept
# in docs/QUANTIZATION.md. Not part of `make test` (about a minute).
#   usage: tests/interop/stories_quant_table.sh [BUILD] [SHARED]
set -eu
BUILD=${1:-build}
SHARED=${2:-../shared/data}
HF=$SHARED/stories260K-hf
TS=$SHARED/tinystories/tinystories_train_excerpt.txt
T=$(mktemp -d "${TMPDIR:-/tmp}/lq-table.XXXXXX")
trap 'rm -rf "$T"' EXIT
row() { # row LABEL FORMAT TYPE [extra lq-quant args...]
    local label=$1 fmt=$2 type=$3; shift 3
    local out=$T/$label
    [ "$fmt" = gguf ] && out=$T/$label.gguf
    "$BUILD/lq-quant" -q --format "$fmt" --type "$type" --json "$@" "$HF" "$out" >"$T/q.json"
    "$BUILD/lq-eval" -q "$out" --base "$HF" --text "$TS" --ctx 512 --json - >"$T/e.json"
    python3 - "$label" "$T/q.json" "$T/e.json" <<'PY'
import json, sys
label, q, e = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))["results"]
fb = ", ".join(sorted({f["tensor"].split(".")[-2] + "->" + f["stored"] for f in q["fallbacks"]})) or "-"
print(f"| {label} | {q['bytes_out']:,} | {q['bits_per_weight_quantized']:.3f} | {e['kld_mean']:.6f} | "
      f"{100 * e['same_top_fraction']:.2f} | {e['ppl_ratio']:.4f} | {fb} |")
PY
}
echo "| scheme | bytes of tensor data | bits/weight (quantized tensors) | mean KLD | same top % | ppl ratio | fallbacks |"
echo "|---|---:|---:|---:|---:|---:|---|"
# ffn_down (172 columns) cannot take group-wise or block types: it falls back to f16 in every row,
# as in the llama.cpp peer runs (REFERENCE.md, issue 4)
row int8_ch ct int8_ch --fallback f16
row int8_ch_gptq gptq int8_ch --fallback f16
row int4_g32 ct int4_g32 --fallback f16
row int4_g32_asym ct int4_g32_asym --fallback f16
row int4_g32_clip ct int4_g32 --fallback f16 --clip-search
row int4_ch ct int4_ch --fallback f16
row int4_ch_asym ct int4_ch_asym --fallback f16
row q8_0 gguf q8_0
row q6_k gguf q6_k
row q4_k gguf q4_k
row q4_0 gguf q4_0
row fp8_e4m3_ch ct fp8_e4m3_ch
row int3_g32 ct int3_g32 --fallback f16
row int2_g32 ct int2_g32 --fallback f16
