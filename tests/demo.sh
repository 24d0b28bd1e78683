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
