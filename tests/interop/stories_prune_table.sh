#!/usr/bin/env bash
# Pruning vs quality on stories260K (docs/QUANTIZATION.md, issue 7): magnitude
# per tensor, magnitude with one global threshold, Wanda (128 windows of the
# first 100 kB), and N:M, every decoder
# Linear, evaluated by lq-eval --base (ctx 512, second-half scoring) on the
# TinyStories excerpt past its first 100,000 bytes. Prints markdown rows.
set -eu
BUILD=${BUILD:-build}
SHARED=${LQ_SHARED_DATA:-../shared/data}
T=$(mktemp -d "${TMPDIR:-/tmp}/lq-prunetab.XXXXXX")
trap 'rm -rf "$T"' EXIT
HF=$SHARED/stories260K-hf
tail -c +100001 "$SHARED/tinystories/tinystories_train_excerpt.txt" >"$T/eval.txt"
row() { # row NAME ARGS...
    local name=$1; shift
    "$BUILD/lq-prune" "$@" "$HF" "$T/m" >/dev/null
    "$BUILD/lq-eval" "$T/m" --base "$HF" --text "$T/eval.txt" --json "$T/e.json" >/dev/null 2>&1
    python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["results"]
print("| %s | %.4f | %.2f | %.3f |" % (sys.argv[2], r["kld_mean"], 100 * r["same_top_fraction"], r["ppl_ratio"]))' "$T/e.json" "$name"
    rm -rf "$T/m"
}
echo "| pruning | mean KLD | same top % | ppl ratio |"
echo "|---|---:|---:|---:|"
for s in 0.1 0.2 0.3 0.4 0.5 0.6 0.7; do row "magnitude per tensor $s" --sparsity $s; done
for s in 0.1 0.3 0.5 0.7; do row "magnitude global $s" --sparsity $s --global; done
head -c 100000 "$SHARED/tinystories/tinystories_train_excerpt.txt" >"$T/calib.txt"
for s in 0.1 0.3 0.5 0.7; do row "Wanda $s" --sparsity $s --wanda --calib "$T/calib.txt"; done
row "2:4 (0.5)" --nm 2:4
row "4:8 (0.5; down_proj, 172 wide, kept dense)" --nm 4:8 --keep down_proj
