#!/usr/bin/env bash
# stories_gptq_table.sh : RTN vs GPTQ (with and without act-order) on the
# bundled stories260K at 4, 3 and 2 bits, printing the markdown table kept in
# docs/QUANTIZATION.md. Calibration: the first 100,000 bytes of the TinyStories
# excerpt (128 windows of 512 tokens); evaluation: the rest of the excerpt
# (disjoint) and the first 200,000 bytes of WikiText-2, ctx 512, llama.cpp's
# second-half scoring. Every Linear is quantized: the 64-column matrices with
# groups of 32 (or per channel), down_proj (172 columns) per channel. Act-order
# rows store g_idx in compressed-tensors with actorder "group" (--ct-actorder-group):
# the GPTQ container cannot hold stories260K's 172-row matrices at 4 bits.
# Not part of `make test` (a few minutes).
#   usage: tests/interop/stories_gptq_table.sh [BUILD] [SHARED]
set -eu
BUILD=${1:-build}
SHARED=${2:-../shared/data}
HF=$SHARED/stories260K-hf
TS=$SHARED/tinystories/tinystories_train_excerpt.txt
WIKI=$SHARED/wikitext-2/wiki.test.lf.txt
T=$(mktemp -d "${TMPDIR:-/tmp}/lq-gtable.XXXXXX")
trap 'rm -rf "$T"' EXIT
head -c 100000 "$TS" >"$T/calib.txt"
tail -c +100001 "$TS" >"$T/eval.txt"
head -c 200000 "$WIKI" >"$T/wiki.txt"
row() { # row BITS GROUP METHOD-LABEL [extra lq-quant args...]
    local bits=$1 group=$2 label=$3; shift 3
    local out=$T/m
    rm -rf "$out"
    "$BUILD/lq-quant" -q --format ct --type "int${bits}_${group}" --tensor-type "down_proj=int${bits}_ch" --json \
        "$@" "$HF" "$out" >"$T/q.json"
    "$BUILD/lq-eval" -q "$out" --base "$HF" --text "$T/eval.txt" --ctx 512 --json - >"$T/e1.json"
    "$BUILD/lq-eval" -q "$out" --base "$HF" --text "$T/wiki.txt" --ctx 512 --json - >"$T/e2.json"
    python3 - "$bits" "$group" "$label" "$T/q.json" "$T/e1.json" "$T/e2.json" <<'PY'
import json, sys
bits, group, label = sys.argv[1:4]
q = json.load(open(sys.argv[4]))
a, b = (json.load(open(p))["results"] for p in sys.argv[5:7])
loss = sum(l["loss"] for l in q["gptq"]["layers"]) if "gptq" in q else float("nan")
print(f"| int{bits} | {group} | {label} | {q['bits_per_weight_quantized']:.3f} | {a['kld_mean']:.5f} | "
      f"{100 * a['same_top_fraction']:.2f} | {a['ppl_ratio']:.4f} | {b['kld_mean']:.5f} | "
      f"{100 * b['same_top_fraction']:.2f} | {b['ppl_ratio']:.4f} |")
PY
}
CAL="--method gptq --calib $T/calib.txt --calib-samples 128 --calib-len 512"
echo "| bits | groups | method | bits/weight | TinyStories KLD | same top % | ppl ratio | WikiText-2 KLD | same top % | ppl ratio |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"
for bits in 4 3 2; do
    for group in g32 ch; do
        row $bits $group rtn
        row $bits $group "rtn clip-search" --clip-search
        row $bits $group gptq $CAL
        row $bits $group "gptq act-order" $CAL --act-order --ct-actorder-group
        row $bits $group "gptq act-order mse" $CAL --act-order --ct-actorder-group --mse
    done
done
