#!/usr/bin/env bash
# The measured mixed-precision plan against uniform types and presets at equal
# size, and the W8A8 calibrators, on stories260K (docs/QUANTIZATION.md,
# issue 6). Calibration: the first 100,000 bytes of the TinyStories excerpt;
# evaluation: lq-eval --base (ctx 512, second-half scoring) on the rest of the
# excerpt (held out) and on the whole excerpt (the text the llama.cpp peer
# figures were measured on). Prints markdown rows. Environment: BUILD,
# LQ_SHARED_DATA, SAMPLES (sensitivity windows, 16), OUT (keep outputs there).
set -eu
BUILD=${BUILD:-build}
SHARED=${LQ_SHARED_DATA:-../shared/data}
SAMPLES=${SAMPLES:-16}
T=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/lq-mixtab.XXXXXX")}
mkdir -p "$T"
HF=$SHARED/stories260K-hf
TS=$SHARED/tinystories/tinystories_train_excerpt.txt
Q=$BUILD/lq-quant
E=$BUILD/lq-eval
head -c 100000 "$TS" >"$T/calib.txt"
tail -c +100001 "$TS" >"$T/eval.txt"
C="--calib $T/calib.txt --sens-samples $SAMPLES --calib-len 512"
G="--method gptq --calib-samples 128 --mse"

js() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($2)" "$1"; }
evalrow() { # evalrow NAME DIR JSON PRED
    local name=$1 dir=$2 json=$3 pred=$4
    "$E" "$dir" --base "$HF" --text "$T/eval.txt" --json "$T/e1.json" >/dev/null 2>&1
    "$E" "$dir" --base "$HF" --text "$TS" --json "$T/e2.json" >/dev/null 2>&1
    local bl bpw ck k1 t1 k2 t2
    bl=$(js "$json" 'r["bytes_linear"]')
    bpw=$(js "$json" '"%.3f" % r["bits_per_weight_linear"]')
    tot=$(js "$json" 'r["bytes_out"]')
    ck=$(js "$json" '"%.5f" % r["calibration_kld"] if "calibration_kld" in r else "-"')
    k1=$(js "$T/e1.json" '"%.5f" % r["results"]["kld_mean"]')
    t1=$(js "$T/e1.json" '"%.2f" % (100 * r["results"]["same_top_fraction"])')
    k2=$(js "$T/e2.json" '"%.5f" % r["results"]["kld_mean"]')
    t2=$(js "$T/e2.json" '"%.2f" % (100 * r["results"]["same_top_fraction"])')
    echo "| $name | $tot | $bl | $bpw | $pred | $ck | $k1 | $t1 | $k2 | $t2 |"
}
quant() { # quant NAME ARGS... -> row
    local name=$1; shift
    "$Q" --format ct --json "$@" "$HF" "$T/$name" >"$T/$name.json" 2>"$T/$name.err" || { cat "$T/$name.err" >&2; exit 1; }
    local pred
    pred=$(js "$T/$name.json" '"%.5f" % r["plan"]["predicted_kld"] if "plan" in r else "-"')
    evalrow "$name" "$T/$name" "$T/$name.json" "$pred"
}
bpw_of() { js "$T/$1.json" 'r["bits_per_weight_linear"]'; }

echo "| run | tensor bytes | linear bytes | bits/weight (linear) | predicted KLD | calib KLD | held-out KLD | same top % | excerpt KLD | same top % |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
# the sensitivity tables (decoder groups; and with the embedding for --target-size)
"$Q" --format ct $C --target-bpw 8 --sens-out "$T/sens.json" --dry-run "$HF" "$T/x" >/dev/null
"$Q" --format ct $C --mixed-embed --target-bpw 8 --sens-out "$T/sens_e.json" --dry-run "$HF" "$T/x" >/dev/null
# GPTQ with --mse: sensitivity measured with the range-searching RTN (what lq-quant does for --method gptq --mse)
"$Q" --format ct $C $G --target-bpw 8 --sens-out "$T/sens_g.json" --dry-run "$HF" "$T/x" >/dev/null
"$Q" --format ct $C $G --mixed-embed --target-bpw 8 --sens-out "$T/sens_ge.json" --dry-run "$HF" "$T/x" >/dev/null
S="--sensitivity $T/sens.json $C"
SG="--sensitivity $T/sens_g.json $C"
quant uniform-int4_g32 --type int4_g32 --tensor-type down_proj=int4_ch
B=$(bpw_of uniform-int4_g32)
quant "plan@uniform-int4" $S --target-bpw "$B"
quant uniform-int4_g32-gptq --type int4_g32 --tensor-type down_proj=int4_ch $G --calib "$T/calib.txt"
quant "plan@uniform-int4-gptq" $SG --target-bpw "$B" $G
quant preset-attn16-mlp4 --preset attn16-mlp4 --type int4_g32
B=$(bpw_of preset-attn16-mlp4)
quant "plan@attn16-mlp4" $S --target-bpw "$B"
quant preset-q4_k_m --preset q4_k_m --type int4_g32
B=$(bpw_of preset-q4_k_m)
quant "plan@q4_k_m" $S --target-bpw "$B"
for B in 4.5 5; do
    quant "plan@$B" $S --target-bpw "$B"
    quant "plan@$B-gptq" $SG --target-bpw "$B" $G
done
SE="--sensitivity $T/sens_e.json $C --mixed-embed"
quant "plan@304096B" $SE --target-size 304096
quant "plan@304096B-gptq" --sensitivity $T/sens_ge.json $C --mixed-embed --target-size 304096 $G

# W8A8: the calibrators
echo
echo "| W8A8 ranges | held-out KLD | same top % | excerpt KLD | same top % |"
echo "|---|---:|---:|---:|---:|"
for M in entropy entropy-ort max percentile mse; do
    "$Q" --format ct --w8a8 --act-method $M --calib "$T/calib.txt" --calib-samples 32 --json "$HF" "$T/w8-$M" \
        >"$T/w8-$M.json" 2>"$T/w8-$M.err" || { cat "$T/w8-$M.err" >&2; exit 1; }
    "$E" "$T/w8-$M" --base "$HF" --text "$T/eval.txt" --json "$T/e1.json" >/dev/null 2>&1
    "$E" "$T/w8-$M" --base "$HF" --text "$TS" --json "$T/e2.json" >/dev/null 2>&1
    echo "| $M | $(js "$T/e1.json" '"%.5f" % r["results"]["kld_mean"]') | $(js "$T/e1.json" '"%.2f" % (100 * r["results"]["same_top_fraction"])') | $(js "$T/e2.json" '"%.5f" % r["results"]["kld_mean"]') | $(js "$T/e2.json" '"%.2f" % (100 * r["results"]["same_top_fraction"])') |"
done
"$Q" --format ct --type int8_ch --json "$HF" "$T/int8-wo" >/dev/null 2>&1
"$E" "$T/int8-wo" --base "$HF" --text "$T/eval.txt" --json "$T/e1.json" >/dev/null 2>&1
"$E" "$T/int8-wo" --base "$HF" --text "$TS" --json "$T/e2.json" >/dev/null 2>&1
echo "| (weight-only int8_ch) | $(js "$T/e1.json" '"%.5f" % r["results"]["kld_mean"]') | $(js "$T/e1.json" '"%.2f" % (100 * r["results"]["same_top_fraction"])') | $(js "$T/e2.json" '"%.5f" % r["results"]["kld_mean"]') | $(js "$T/e2.json" '"%.2f" % (100 * r["results"]["same_top_fraction"])') |"
