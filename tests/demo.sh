#!/usr/bin/env bash
# The main job on the bundled real model: convert the llama2.c checkpoint of
# stories260K to a Hugging Face safetensors directory (f32, verified), then to
# a sharded bf16 copy, and inspect both. Output goes to build/demo/.
set -euo pipefail
SHARED=${1:-../shared/data}
OUT=build/demo
rm -rf "$OUT"
mkdir -p "$OUT"
set -x
build/lq-convert --verify "$SHARED/stories260K/stories260K.bin" "$OUT/stories260K-hf"
build/lq-inspect "$OUT/stories260K-hf"
build/lq-convert --verify --dtype bf16 --max-shard-size 300KB "$OUT/stories260K-hf" "$OUT/stories260K-bf16"
build/lq-inspect --no-stats "$OUT/stories260K-bf16"
set +x
if cmp -s <(build/lq-inspect --json "$OUT/stories260K-hf" | grep -v '"path"\|"file"') \
          <(build/lq-inspect --json "$SHARED/stories260K-hf" | grep -v '"path"\|"file"'); then
    echo "demo: the converted model matches the independent HF conversion tensor for tensor"
else
    echo "demo: MISMATCH with $SHARED/stories260K-hf" >&2
    exit 1
fi
set -x
build/lq-run -t 0 -n 120 "$OUT/stories260K-hf" "Once upon a time"
build/lq-eval "$OUT/stories260K-bf16" --base "$OUT/stories260K-hf" \
    --text "$SHARED/tinystories/tinystories_train_excerpt.txt" --max-chars 60000 --ctx 256 \
    --max-kld 0.01 --min-top1 95 --json "$OUT/eval-bf16.json"
# quantize (round-to-nearest) into the three deployment formats and prove each still works by running it
build/lq-quant --format compressed-tensors --type int8_ch "$OUT/stories260K-hf" "$OUT/stories260K-ct-int8"
build/lq-quant --format gptq --type int8_ch "$OUT/stories260K-hf" "$OUT/stories260K-gptq-int8"
build/lq-quant --format gguf --type q8_0 "$OUT/stories260K-hf" "$OUT/stories260K-q8_0.gguf"
for q in ct-int8 gptq-int8 q8_0.gguf; do
    build/lq-eval "$OUT/stories260K-$q" --base "$OUT/stories260K-hf" \
        --text "$SHARED/tinystories/tinystories_train_excerpt.txt" --max-chars 60000 --ctx 256 \
        --max-kld 0.005 --min-top1 97 --json "$OUT/eval-$q.json"
done
# GPTQ at 4 bits, calibrated on the first 100 kB of TinyStories and gated on the disjoint rest, next to RTN
head -c 100000 "$SHARED/tinystories/tinystories_train_excerpt.txt" >"$OUT/calib.txt"
tail -c +100001 "$SHARED/tinystories/tinystories_train_excerpt.txt" >"$OUT/heldout.txt"
build/lq-quant --format ct --type int4_g32 --tensor-type 'down_proj=int4_ch' "$OUT/stories260K-hf" "$OUT/stories260K-rtn-int4"
build/lq-quant --method gptq --calib "$OUT/calib.txt" --calib-samples 128 --calib-len 512 --format ct --type int4_g32 \
    --tensor-type 'down_proj=int4_ch' --work-dir "$OUT/gptq-work" "$OUT/stories260K-hf" "$OUT/stories260K-gptq-int4"
for q in rtn-int4 gptq-int4; do
    build/lq-eval "$OUT/stories260K-$q" --base "$OUT/stories260K-hf" --text "$OUT/heldout.txt" --ctx 512 \
        --max-kld 0.25 --min-top1 70 --json "$OUT/eval-$q.json"
done
# the measured mixed-precision plan at llama.cpp Q4_K_M's size (304,096 bytes) and W8A8 with entropy calibration
build/lq-quant --format ct --calib "$OUT/calib.txt" --mixed-embed --target-size 304096 \
    "$OUT/stories260K-hf" "$OUT/stories260K-mixed"
build/lq-quant --format ct --w8a8 --act-method entropy --calib "$OUT/calib.txt" --calib-samples 32 \
    "$OUT/stories260K-hf" "$OUT/stories260K-w8a8"
build/lq-eval "$OUT/stories260K-mixed" --base "$OUT/stories260K-hf" --text "$OUT/heldout.txt" --ctx 512 \
    --max-kld 0.0123 --json "$OUT/eval-mixed.json"
build/lq-eval "$OUT/stories260K-w8a8" --base "$OUT/stories260K-hf" --text "$OUT/heldout.txt" --ctx 512 \
    --min-top1 94 --json "$OUT/eval-w8a8.json"
set +x
python3 - "$OUT/eval-rtn-int4.json" "$OUT/eval-gptq-int4.json" <<'PY'
import json, sys
r, g = (json.load(open(p))["results"]["kld_mean"] for p in sys.argv[1:3])
print(f"demo: int4 mean KLD on held-out text: RTN {r:.4f}, GPTQ {g:.4f} ({r / g:.2f}x lower)")
sys.exit(0 if g < r else 1)
PY
