#!/usr/bin/env bash
# lq-quant --method gptq end to end: usage errors, GPTQ on the real
# stories260K (compressed-tensors and GPTQ formats, act-order, true-sequential)
# gated by lq-eval, determinism across thread counts, the resume test (kill -9
# in the middle of a run, restart, byte-identical output), refusal of a stale
# work directory, --max-ram spilling, and the imatrix output. Prints
# "N passed, M failed"; exits non-zero on any failure. Environment: BUILD,
# LQ_SHARED_DATA.
set -u
BUILD=${BUILD:-build}
SHARED=${LQ_SHARED_DATA:-../shared/data}
T=$(mktemp -d "${TMPDIR:-/tmp}/lq-gptq.XXXXXX")
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
same_dir() { diff -r "$1" "$2" >/dev/null; }
QUANT=$BUILD/lq-quant
EVAL=$BUILD/lq-eval
HF=$SHARED/stories260K-hf
TS=$SHARED/tinystories/tinystories_train_excerpt.txt
head -c 100000 "$TS" >"$T/calib.txt"
tail -c +100001 "$TS" >"$T/eval.txt"

# ---- usage ----
run "$QUANT" --help
check "help mentions --method gptq" grep -q -- "--calib FILE" "$T/out"
run "$QUANT" --method gptq --format ct "$HF" "$T/x"
check "gptq without --calib exits 2" test $rc -eq 2
check "gptq without --calib says so" grep -q "needs --calib" "$T/err"
run "$QUANT" --method gptq --calib "$T/calib.txt" --format gguf "$HF" "$T/x.gguf"
check "gptq to gguf exits 2" test $rc -eq 2
run "$QUANT" --method rtn --act-order --format ct "$HF" "$T/x"
check "--act-order without gptq exits 2" test $rc -eq 2
run "$QUANT" --method gptq --calib "$T/calib.txt" --act-order --format ct "$HF" "$T/x"
check "--act-order to compressed-tensors without --static-groups exits 2" test $rc -eq 2
check "... and says why" grep -q "actorder" "$T/err"
run "$QUANT" --method gptq --calib "$T/calib.txt" --damp -1 --format ct "$HF" "$T/x"
check "negative --damp exits 2" test $rc -eq 2
run "$QUANT" --method gptq --calib "$T/nonexistent.txt" --format ct "$HF" "$T/x"
check "missing calibration file exits 1" test $rc -eq 1
check "missing calibration file leaves no output" test ! -e "$T/x"
printf 'x' >"$T/bad.npy"
run "$QUANT" --method gptq --calib "$T/bad.npy" --format ct "$HF" "$T/x"
check "malformed calibration file exits 1" test $rc -eq 1
check "malformed calibration file is named" grep -q "bad.npy" "$T/err"

# ---- GPTQ on stories260K, gated by lq-eval ----
G="--method gptq --calib $T/calib.txt --calib-samples 32 --calib-len 256 --type int4_g32 --tensor-type down_proj=int4_ch"
run "$QUANT" $G --format ct --json "$HF" "$T/ct"
check "gptq ct exits 0" test $rc -eq 0
check "gptq ct json report has per-layer losses and the calibration sha256" python3 -c '
import json, sys, hashlib
r = json.load(open(sys.argv[1])); g = r["gptq"]
assert len(g["layers"]) == 35, len(g["layers"])
assert all(l["loss"] >= 0 for l in g["layers"])
assert g["calibration"]["sha256"] == hashlib.sha256(open(sys.argv[2], "rb").read()).hexdigest()
assert len(g["calibration"]["window_offsets"]) == 32 and r["peak_rss_bytes"] > 0
' "$T/out" "$T/calib.txt"
check "calibration.json is written into the output" python3 -c '
import json, sys; c = json.load(open(sys.argv[1])); assert c["calibration"]["samples"] == 32 and "seconds" not in c["layers"][0]
' "$T/ct/calibration.json"
run "$EVAL" "$T/ct" --base "$HF" --text "$T/eval.txt" --max-chars 30000 --max-kld 0.2 --min-top1 70
check "gptq int4 ct passes the lq-eval gates (KLD < 0.2, top-1 > 70%)" test $rc -eq 0
run "$QUANT" $G --format ct -t 1 "$HF" "$T/ct1"
check "gptq output is byte-identical with 1 and 2 threads" same_dir "$T/ct" "$T/ct1"
run "$QUANT" $G --act-order --true-sequential --format gptq --fallback f16 "$HF" "$T/gq"
check "gptq act-order + true-sequential in GPTQ format exits 0" test $rc -eq 0
check "act-order GPTQ output has g_idx and desc_act" grep -q '"desc_act": true' "$T/gq/config.json"
run "$EVAL" "$T/gq" --base "$HF" --text "$T/eval.txt" --max-chars 30000 --max-kld 0.2
check "act-order GPTQ output loads and passes the gate" test $rc -eq 0

# ---- resume: kill -9 in the middle, restart, byte-identical ----
# a synthetic model with enough blocks and work that a run lasts a few seconds
"$BUILD/lq-synth" --dim 256 --hidden 688 --layers 8 --heads 8 --kv-heads 4 --vocab 512 --ctx 512 --dtype f16 \
    "$T/syn" >/dev/null 2>&1
python3 -c '
import struct, sys
n = 200000; x = 12345
with open(sys.argv[1], "wb") as f:
    for i in range(n):
        x = (x * 1103515245 + 12345) % 2**31
        f.write(struct.pack("<H", 3 + x % 500))
' "$T/tok.u16"
S="--method gptq --calib $T/tok.u16 --calib-samples 48 --calib-len 512 --format ct --type int4_g128 --no-fsync"
run "$QUANT" $S "$T/syn" "$T/full"
check "synthetic gptq exits 0" test $rc -eq 0
"$QUANT" $S --work-dir "$T/wd" "$T/syn" "$T/resumed" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 3000); do
    [ -e "$T/wd/block-00002.safetensors" ] && break
    sleep 0.01
done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
killed=$?
check "the first run was killed in the middle (exit 137)" test $killed -eq 137
check "the killed run left no output" test ! -e "$T/resumed"
run "$QUANT" $S --work-dir "$T/wd" --json "$T/syn" "$T/resumed"
check "the restarted run exits 0" test $rc -eq 0
check "the restarted run skipped finished blocks" python3 -c '
import json, sys; r = json.load(open(sys.argv[1])); assert r["gptq"]["resumed_blocks"] >= 2, r["gptq"]["resumed_blocks"]
' "$T/out"
check "resumed output is byte-identical to an uninterrupted run" same_dir "$T/full" "$T/resumed"
run "$QUANT" $S --work-dir "$T/wd" --damp 0.02 "$T/syn" "$T/other"
check "a stale work directory is refused (exit 1)" test $rc -eq 1
check "the refusal says the options differ" grep -q "the options" "$T/err"
check "the refusal leaves no output" test ! -e "$T/other"
run "$QUANT" ${S/--calib-samples 48/--calib-samples 40} --work-dir "$T/wd" "$T/syn" "$T/other"
check "other calibration windows are refused" grep -q "calibration windows" "$T/err"
mkdir -p "$T/junkdir" && touch "$T/junkdir/file"
run "$QUANT" $S --work-dir "$T/junkdir" "$T/syn" "$T/other"
check "a non-empty foreign work directory is refused" test $rc -eq 1

# ---- --max-ram streams activations through files: same result ----
run "$QUANT" $S --max-ram 1MB "$T/syn" "$T/spilled"
check "--max-ram run exits 0" test $rc -eq 0
check "--max-ram output is byte-identical" same_dir "$T/full" "$T/spilled"
check "no temporary work directory is left beside the output" test -z "$(ls -A "$T" | grep '^\.lq-gptq')"

# ---- imatrix: written by the GPTQ pass, read by --act-stats ----
run "$QUANT" $G --format ct --imatrix "$T/imatrix.safetensors" "$HF" "$T/ct2"
check "--imatrix run exits 0" test $rc -eq 0
run "$QUANT" --format ct --type int4_g32 --fallback f16 --clip-search --act-stats "$T/imatrix.safetensors" "$HF" "$T/rtn_w"
check "the imatrix feeds --act-stats" test $rc -eq 0 -a -z "$(grep act-stats "$T/err")"

echo "gptq cli: $pass passed, $fail failed"
[ $fail -eq 0 ]
