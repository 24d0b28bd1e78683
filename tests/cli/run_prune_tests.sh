#!/usr/bin/env bash
# lq-prune end to end on the real stories260K: usage errors, per-tensor and
# global magnitude pruning and 2:4 (sparsity read back with lq-inspect, which
# counts the zeros of the written file), embeddings/norms untouched, --keep
# and --tensor-sparsity rules, thread-count independence, nothing left on
# failure, prune -> quantize keeping the zeros, and lq-eval gates. Prints
# "N passed, M failed"; exits non-zero on any failure. Environment: BUILD,
# LQ_SHARED_DATA.
set -u
BUILD=${BUILD:-build}
SHARED=${LQ_SHARED_DATA:-../shared/data}
T=$(mktemp -d "${TMPDIR:-/tmp}/lq-prune.XXXXXX")
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
P=$BUILD/lq-prune
HF=$SHARED/stories260K-hf
TS=$SHARED/tinystories/tinystories_train_excerpt.txt
zeros() { # zeros DIR -> "name zero_fraction" lines
    "$BUILD/lq-inspect" --json "$1" | python3 -c '
import json, sys
for t in json.load(sys.stdin)["tensors"]:
    print(t["name"], t["zero_fraction"])'
}

run "$P" --help
check "--help exits 0" test $rc -eq 0
run "$P" "$HF" "$T/x"
check "no sparsity exits 2" test $rc -eq 2
run "$P" --sparsity 1.5 "$HF" "$T/x"
check "--sparsity 1.5 exits 2" test $rc -eq 2
run "$P" --nm 4:4 "$HF" "$T/x"
check "--nm 4:4 exits 2" test $rc -eq 2
run "$P" --nm 2:4 --sparsity 0.5 "$HF" "$T/x"
check "--nm with --sparsity exits 2" test $rc -eq 2
run "$P" --nm 3:7 "$HF" "$T/x"
check "--nm 3:7 on 64/172-wide rows exits 1 naming the tensor" sh -c "test $rc -eq 1 && grep -q 'multiple of 7' '$T/err'"
check "... and leaves nothing" test ! -e "$T/x"

run "$P" --sparsity 0.3 --json "$HF" "$T/p30"
check "30% exits 0" test $rc -eq 0
check "30% of every decoder Linear, reported" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert len(r["tensors"]) == 35 and abs(r["sparsity_pruned_tensors"] - 0.3) < 1e-3
assert all(abs(t["sparsity"] - 0.3) < 1e-3 for t in r["tensors"])
' "$T/out"
zeros "$T/p30" >"$T/z30"
check "the written file has those zeros, embeddings and norms untouched" python3 -c '
import sys
z = dict(l.split() for l in open(sys.argv[1]))
for k, v in z.items():
    v = float(v)
    if k.endswith("proj.weight"): assert 0.299 <= v <= 0.302, (k, v)
    else: assert v == 0.0, (k, v)
' "$T/z30"
run "$P" --sparsity 0.3 -t 1 "$HF" "$T/p30t1"
check "output does not depend on the thread count" cmp -s "$T/p30/model.safetensors" "$T/p30t1/model.safetensors"
check "config.json and the tokenizer are copied" sh -c "test -s '$T/p30/config.json' && test -s '$T/p30/tokenizer.model'"

run "$P" --sparsity 0.5 --global --json "$HF" "$T/g50"
check "global 50% exits 0" test $rc -eq 0
check "global: 50% overall, tensors differ" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
s = [t["sparsity"] for t in r["tensors"]]
assert abs(r["sparsity_pruned_tensors"] - 0.5) < 1e-5 and max(s) - min(s) > 0.05, (r["sparsity_pruned_tensors"], min(s), max(s))
' "$T/out"
run "$P" --nm 2:4 "$HF" "$T/n24"
check "2:4 exits 0" test $rc -eq 0
check "2:4: every group of 4 along the input has at most 2 non-zeros" python3 -c '
import struct, sys, json
raw = open(sys.argv[1], "rb").read()
hl = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + hl]); base = 8 + hl
import array
for k, v in hdr.items():
    if not k.endswith("proj.weight"): continue
    a, b = v["data_offsets"]; rows, cols = v["shape"]
    x = array.array("f", raw[base + a:base + b])
    for r in range(rows):
        for g in range(0, cols, 4):
            assert sum(1 for j in range(4) if x[r * cols + g + j] != 0) <= 2, (k, r, g)
' "$T/n24/model.safetensors"
run "$P" --sparsity 0.5 --keep 'self_attn' --tensor-sparsity 'down_proj=0.1' --json "$HF" "$T/r"
check "rules: attention kept dense, down_proj 10%, the rest 50%" python3 -c '
import json, sys
r = {t["name"]: t["sparsity"] for t in json.load(open(sys.argv[1]))["tensors"]}
assert not any("self_attn" in k for k in r)
assert all(abs(v - (0.1 if "down_proj" in k else 0.5)) < 1e-3 for k, v in r.items()), r
' "$T/out"
# prune -> quantize keeps the zeros (int4_g32 stores 0 exactly); lq-eval runs both
"$BUILD/lq-quant" --format ct --type int4_g32 --tensor-type 'down_proj=int4_ch' "$T/p30" "$T/p30q" >/dev/null 2>&1
run "$BUILD/lq-eval" "$T/p30q" --base "$HF" --text "$TS" --max-chars 20000 --ctx 256 --max-kld 2
check "pruned then quantized model loads and runs" test $rc -eq 0
run "$BUILD/lq-eval" "$T/p30" --base "$HF" --text "$TS" --max-chars 20000 --ctx 256 --max-kld 1 --json "$T/e30.json"
check "30% pruned model passes a KLD gate and is worse than the original" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["results"]
assert 0 < r["kld_mean"] < 1 and r["ppl_ratio"] > 1, r["kld_mean"]
' "$T/e30.json"

# Wanda (activation-aware) against magnitude at 50%
run "$P" --sparsity 0.5 --wanda "$HF" "$T/x"
check "--wanda without --calib exits 2" test $rc -eq 2
head -c 100000 "$TS" >"$T/calib.txt"
run "$P" --sparsity 0.5 --wanda --calib "$T/calib.txt" --calib-samples 16 --calib-len 256 --json "$HF" "$T/w50"
check "wanda 50% exits 0" test $rc -eq 0
run "$P" --sparsity 0.5 "$HF" "$T/m50"
"$BUILD/lq-eval" "$T/w50" --base "$HF" --text "$TS" --max-chars 30000 --ctx 256 --json "$T/ew.json" >/dev/null 2>&1
"$BUILD/lq-eval" "$T/m50" --base "$HF" --text "$TS" --max-chars 30000 --ctx 256 --json "$T/em.json" >/dev/null 2>&1
check "Wanda beats magnitude at 50% on mean KLD" python3 -c '
import json, sys
w, m = (json.load(open(p))["results"]["kld_mean"] for p in sys.argv[1:3])
assert w < m, (w, m)
' "$T/ew.json" "$T/em.json"

echo "prune cli: $pass passed, $fail failed"
test $fail -eq 0
