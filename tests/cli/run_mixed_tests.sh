#!/usr/bin/env bash
# lq-calib and the measured mixed-precision / W8A8 paths of lq-quant end to
# end on the real stories260K: usage errors, the ranges table and the
# TensorRT cache, --target-bpw / --target-size plans (budget kept, predicted
# and real KLD reported, plan records in the output), --plan reuse giving
# byte-identical output, presets, an infeasible budget, W8A8 written as
# compressed-tensors int-quantized and gated by lq-eval. Prints "N passed, M
# failed"; exits non-zero on any failure. Environment: BUILD, LQ_SHARED_DATA.
set -u
BUILD=${BUILD:-build}
SHARED=${LQ_SHARED_DATA:-../shared/data}
T=$(mktemp -d "${TMPDIR:-/tmp}/lq-mixed.XXXXXX")
trap 'rm -rf "$T"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { # check DESC CONDITION...
    local desc=$1; shift
    if "$@"; then ok; else bad "$desc"; fi
}
run() { # run CMD... -> $rc, $T/out, $T/err
    "$@" >"$T/out" 2>"$T/err"
    rc=$?
}
QUANT=$BUILD/lq-quant
CALIB=$BUILD/lq-calib
EVAL=$BUILD/lq-eval
HF=$SHARED/stories260K-hf
TS=$SHARED/tinystories/tinystories_train_excerpt.txt
head -c 100000 "$TS" >"$T/calib.txt"
tail -c +100001 "$TS" >"$T/eval.txt"

# ---- lq-calib ----
run "$CALIB" --help
check "lq-calib --help exits 0" test $rc -eq 0
check "lq-calib --help lists the methods" grep -q "entropy-ort" "$T/out"
run "$CALIB" "$HF"
check "lq-calib without --calib exits 2" test $rc -eq 2
run "$CALIB" --calib "$T/calib.txt" --method kl "$HF"
check "lq-calib unknown method exits 2" test $rc -eq 2
run "$CALIB" --calib "$T/missing.txt" "$HF"
check "lq-calib missing data exits 1" test $rc -eq 1
C="--calib $T/calib.txt --calib-samples 8 --calib-len 256"
run "$CALIB" $C --all-methods -o "$T/ranges.json" --trt-cache "$T/calib.cache" --dump-hist "$T/hist.json" "$HF"
check "lq-calib exits 0" test $rc -eq 0
check "lq-calib prints one line per capture point (5 layers x 4)" test "$(grep -c '^layers\.' "$T/out")" -eq 20
check "the ranges table lists every Linear with all methods" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["format"] == "libquant-activation-ranges" and r["method"] == "entropy"
t = r["tensors"]; assert len(t) == 35, len(t)
for e in t:
    m = e["amax_by_method"]
    assert set(m) == {"max", "entropy", "entropy-ort", "percentile", "mse"}, m
    assert 0 < e["amax"] <= e["absmax"] * 1.001 and abs(m["max"] - e["absmax"]) <= 1e-6 * e["absmax"]
    assert abs(e["scale"] - e["amax"] / 127) <= 1e-12 * e["amax"]
' "$T/ranges.json"
check "the TensorRT cache has the header and 35 scales matching the table" python3 -c '
import json, struct, sys
lines = open(sys.argv[1]).read().splitlines()
assert lines[0] == "TRT-8600-EntropyCalibration2", lines[0]
r = {e["name"] + ".input": e["amax"] for e in json.load(open(sys.argv[2]))["tensors"]}
assert len(lines) == 36
for l in lines[1:]:
    name, hexv = l.split(": ")
    s = struct.unpack(">f", bytes.fromhex(hexv))[0]
    assert abs(s - r[name] / 127) <= 1e-6 * s, (name, s, r[name])
' "$T/calib.cache" "$T/ranges.json"
check "the histogram dump has 20 histograms of 2048+ bins" python3 -c '
import json, sys
h = json.load(open(sys.argv[1])); assert len(h) == 20
assert all(len(x["counts"]) >= 2048 and x["name"].endswith(".input") for x in h)
' "$T/hist.json"
run "$CALIB" $C -t 1 -o "$T/ranges1.json" "$HF"
run "$CALIB" $C -t 2 -o "$T/ranges2.json" "$HF"
check "the ranges table does not depend on the thread count" cmp -s "$T/ranges1.json" "$T/ranges2.json"

# ---- W8A8 ----
run "$QUANT" --w8a8 --format gptq --calib "$T/calib.txt" "$HF" "$T/x"
check "--w8a8 to gptq exits 2" test $rc -eq 2
run "$QUANT" --w8a8 --format ct "$HF" "$T/x"
check "--w8a8 without ranges exits 2" test $rc -eq 2
run "$QUANT" --w8a8 --format ct --act-scales "$T/ranges.json" --calib "$T/calib.txt" --calib-samples 4 \
    --calib-len 256 --json "$HF" "$T/w8"
check "--w8a8 --act-scales exits 0" test $rc -eq 0
check "W8A8 is int-quantized with static tensor input scales" python3 -c '
import json, sys
q = json.load(open(sys.argv[1] + "/config.json"))["quantization_config"]
g = list(q["config_groups"].values())
assert any(x["format"] == "int-quantized" for x in g) or q["format"] == "int-quantized", q
ia = [x["input_activations"] for x in g if x.get("input_activations")]
assert ia and all(a["strategy"] == "tensor" and not a["dynamic"] and a["num_bits"] == 8 for a in ia), ia
' "$T/w8"
check "activation_ranges.json is in the output" test -s "$T/w8/activation_ranges.json"
run "$EVAL" "$T/w8" --base "$HF" --text "$T/eval.txt" --max-chars 30000 --min-top1 92
check "W8A8 passes an lq-eval same-top >= 92% gate (8 short windows of ranges; the full figure is in docs)" test $rc -eq 0

# ---- mixed precision ----
run "$QUANT" --format ct --target-bpw 5 "$HF" "$T/x"
check "--target-bpw without --calib exits 2" test $rc -eq 2
run "$QUANT" --format ct --target-bpw 5 --preset attn16-mlp4 --calib "$T/calib.txt" "$HF" "$T/x"
check "--target-bpw with --preset exits 2" test $rc -eq 2
M="--format ct --calib $T/calib.txt --sens-samples 4 --calib-len 128"
run "$QUANT" $M --target-bpw 1.5 "$HF" "$T/x"
check "an infeasible budget exits 2" test $rc -eq 2
check "... naming the smallest size" grep -qi "smallest" "$T/err"
check "... and writes nothing" test ! -e "$T/x"
run "$QUANT" $M --target-bpw 5 --sens-out "$T/sens.json" --json "$HF" "$T/m5"
check "--target-bpw 5 exits 0" test $rc -eq 0
check "the plan keeps the budget, reports predicted and real KLD" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["bits_per_weight_linear"] <= 5.0 + 1e-9, r["bits_per_weight_linear"]
p = r["plan"]; assert p["exact"] and p["predicted_kld"] > 0 and r["calibration_kld"] > 0
assert len(p["groups"]) == 20
' "$T/out"
for f in plan.json sensitivity.json sensitivity.svg; do
    check "the output has $f" test -s "$T/m5/$f"
done
check "the chart is SVG" grep -q "<svg" "$T/m5/sensitivity.svg"
run "$QUANT" --format ct --plan "$T/m5/plan.json" "$HF" "$T/p5"
check "--plan reuses a plan" test $rc -eq 0
check "... byte-identical weights" cmp -s "$T/m5/model.safetensors" "$T/p5/model.safetensors"
run "$QUANT" $M --target-bpw 5 --sensitivity "$T/sens.json" "$HF" "$T/s5"
check "--sensitivity reuses a measured table" test $rc -eq 0
check "... byte-identical weights" cmp -s "$T/m5/model.safetensors" "$T/s5/model.safetensors"
python3 - "$T/m5/plan.json" "$T/hand.json" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))
for g in p["groups"]:
    for k in ("bytes", "kld"):
        g.pop(k, None)
    g["type"] = "int8_ch"
json.dump(p, open(sys.argv[2], "w"))
EOF
run "$QUANT" --format ct --plan "$T/hand.json" --json "$HF" "$T/h8"
check "a hand-edited plan (all int8_ch) is honoured" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
t = [v for k, v in r["tensor_types"].items() if ".layers." in k and k.endswith("proj.weight")]
assert len(t) == 35 and set(t) == {"int8_ch"}, set(t)
' "$T/out"
run "$QUANT" --format ct --preset attn16-mlp4 --type int4_g32 --dry-run "$HF" "$T/x"
check "attn16-mlp4 keeps attention f16 and MLP 4-bit" sh -c "grep -q 'q_proj.weight.*-> f16' '$T/out' && grep -q 'up_proj.weight.*-> int4_g32' '$T/out' && grep -q 'down_proj.weight.*-> int4_ch' '$T/out'"
run "$QUANT" --format gguf --preset q4_k_m --dry-run "$HF" "$T/x.gguf"
check "q4_k_m preset: attn_v of layers 2 and 4 (use_more_bits for 5 layers) at q6_k (-> q8_0 here), layer 0 at q4_k (-> q5_0)" sh -c "grep -q 'layers.2.self_attn.v_proj.weight.*-> q8_0' '$T/out' && grep -q 'layers.4.self_attn.v_proj.weight.*-> q8_0' '$T/out' && grep -q 'layers.0.self_attn.v_proj.weight.*-> q5_0' '$T/out'"
run "$QUANT" $M --mixed-embed --target-size 304096 --json "$HF" "$T/ms"
check "--target-size 304096 exits 0" test $rc -eq 0
check "... and the written tensor data fits" python3 -c '
import json, sys
r = json.load(open(sys.argv[1])); assert r["bytes_out"] <= 304096, r["bytes_out"]
' "$T/out"

echo "mixed cli: $pass passed, $fail failed"
test $fail -eq 0
