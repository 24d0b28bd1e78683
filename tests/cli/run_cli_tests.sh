#!/usr/bin/env bash
# CLI behaviour tests: help/usage/exit codes, the malformed-input corpus
# (exit 1, one line naming the file, nothing left behind), conversions of the
# real stories260K model. Prints "N passed, M failed" and exits non-zero on
# any failure. Environment: BUILD (default build), LQ_SHARED_DATA.
set -u
BUILD=${BUILD:-build}
SHARED=${LQ_SHARED_DATA:-../shared/data}
T=$(mktemp -d "${TMPDIR:-/tmp}/lq-cli.XXXXXX")
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
INSPECT=$BUILD/lq-inspect
CONVERT=$BUILD/lq-convert

# ---- conventions: help, version, usage errors ----
for tool in lq-inspect lq-convert; do
    run "$BUILD/$tool" --help
    check "$tool --help exits 0" test $rc -eq 0
    check "$tool --help prints usage on stdout" grep -q "^usage: $tool" "$T/out"
    check "$tool --help writes nothing on stderr" test ! -s "$T/err"
    run "$BUILD/$tool" -h
    check "$tool -h exits 0" test $rc -eq 0
    run "$BUILD/$tool" --bogus-flag x y
    check "$tool unknown option exits 2" test $rc -eq 2
    check "$tool unknown option names it" grep -q "unknown option '--bogus-flag'" "$T/err"
    check "$tool usage error prints nothing on stdout" test ! -s "$T/out"
    run "$BUILD/$tool"
    check "$tool without arguments exits 2" test $rc -eq 2
    run "$BUILD/$tool" --version
    check "$tool --version" grep -q "^$tool [0-9]\+\.[0-9]\+\.[0-9]\+$" "$T/out"
    run "$BUILD/$tool" -q --version
    check "$tool -q --version is bare" grep -q "^[0-9]\+\.[0-9]\+\.[0-9]\+$" "$T/out"
done
run "$INSPECT" --threads zero x
check "--threads junk is a usage error" test $rc -eq 2
run "$CONVERT" --dtype f12 a b
check "--dtype junk is a usage error" test $rc -eq 2
run "$CONVERT" --max-shard-size 5XB a b
check "--max-shard-size junk is a usage error" test $rc -eq 2
run "$INSPECT" /nonexistent/model.safetensors
check "missing input exits 1" test $rc -eq 1
check "missing input names the path" grep -q "/nonexistent/model.safetensors" "$T/err"

# ---- malformed corpus: exit 1, one line naming the file, no output left ----
while IFS=$'\t' read -r name expect; do
    f=tests/data/bad/$name
    run "$INSPECT" "$f"
    check "inspect $name exits 1 (got $rc)" test $rc -eq 1
    check "inspect $name: one line on stderr" test "$(wc -l <"$T/err")" -eq 1
    check "inspect $name: message names the file" grep -qF "$f" "$T/err"
    check "inspect $name: message says '$expect'" grep -qF "$expect" "$T/err"
    check "inspect $name: nothing on stdout" test ! -s "$T/out"
    run "$CONVERT" "$f" "$T/out_$name"
    check "convert $name exits 1" test $rc -eq 1
    check "convert $name leaves no output" test ! -e "$T/out_$name"
    check "convert $name leaves no staging dir" test -z "$(ls -A "$T" | grep lq-tmp)"
done <tests/data/bad/EXPECTED.tsv

# ---- llama2.c: truncated and padded copies of the real model ----
L2C=$SHARED/stories260K/stories260K.bin
head -c 500000 "$L2C" >"$T/trunc.bin"
run "$INSPECT" "$T/trunc.bin"
check "truncated llama2.c exits 1" test $rc -eq 1
check "truncated llama2.c says truncated" grep -q "truncated" "$T/err"
{ cat "$L2C"; printf 'xxxx'; } >"$T/padded.bin"
run "$CONVERT" "$T/padded.bin" "$T/out_padded"
check "llama2.c with trailing bytes exits 1" test $rc -eq 1
check "llama2.c with trailing bytes says so" grep -q "trailing bytes" "$T/err"
check "llama2.c with trailing bytes leaves nothing" test ! -e "$T/out_padded"

# ---- the real model ----
run "$CONVERT" --verify "$L2C" "$T/hf"
check "convert stories260K.bin exits 0" test $rc -eq 0
check "convert prints its summary on stdout" grep -q "47 tensors" "$T/out"
check "convert writes config.json" test -s "$T/hf/config.json"
check "convert copies the tokenizer" cmp -s "$T/hf/tokenizer.model" "$SHARED/stories260K/tok512.model"
check "output directory is world-readable" test "$(stat -c %a "$T/hf")" = 755 -o "$(stat -c %a "$T/hf")" = 775
run "$INSPECT" --json "$T/hf"
check "inspect --json exits 0" test $rc -eq 0
check "inspect --json is valid JSON with 47 tensors" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d["tensors"]) == 47 and d["summary"]["tensors"] == 47 and d["summary"]["parameters"] == 260032
names = [t["name"] for t in d["tensors"]]
assert len(set(names)) == 47 and "model.layers.4.mlp.down_proj.weight" in names
' "$T/out"
run "$CONVERT" "$L2C" "$T/hf"
check "existing non-empty OUTDIR without --force exits 1" test $rc -eq 1
check "... and says to use --force" grep -q -- "--force" "$T/err"
run "$CONVERT" --force --dtype bf16 --max-shard-size 300KB --verify "$T/hf" "$T/hf"
check "converting into the input directory is refused" test $rc -eq 1
run "$CONVERT" --dtype bf16 --max-shard-size 300KB --verify "$T/hf" "$T/bf16"
check "bf16 sharded conversion exits 0" test $rc -eq 0
check "bf16 sharded conversion writes an index" test -s "$T/bf16/model.safetensors.index.json"
check "bf16 sharded conversion writes HF shard names" test -s "$T/bf16/model-00001-of-00002.safetensors"
check "bf16 config says bfloat16" grep -q '"torch_dtype": "bfloat16"' "$T/bf16/config.json"
run "$INSPECT" --json "$T/bf16"
check "sharded bf16 has 47 tensors, norms F32 and matrices BF16" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
t = {x["name"]: x for x in d["tensors"]}
assert len(t) == 47
assert t["model.norm.weight"]["dtype"] == "F32"
assert t["model.layers.0.self_attn.q_proj.weight"]["dtype"] == "BF16"
assert d["summary"]["bytes"] == 260032 * 2 + 11 * 64 * 2
' "$T/out"
run "$CONVERT" --force --dtype f32 "$T/bf16" "$T/hf"
check "--force replaces an existing output" test $rc -eq 0
check "--force removed the old single file" test -s "$T/hf/model.safetensors"
run "$CONVERT" --dry-run --dtype f16 "$L2C" "$T/dry"
check "--dry-run exits 0" test $rc -eq 0
check "--dry-run writes nothing" test ! -e "$T/dry"
check "--dry-run prints the plan" grep -q "^plan: 47 tensors" "$T/out"
run "$CONVERT" --json "$L2C" "$T/json"
check "convert --json is valid JSON" python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["tensors"]==47' "$T/out"

# ---- interrupted runs never leave a partial output under the final name ----
python3 -c '
import json, struct, sys
n = 48 << 20  # 4 tensors of 48 MiB
h = {"t%d" % i: {"dtype": "F32", "shape": [n // 4], "data_offsets": [i * n, (i + 1) * n]} for i in range(4)}
b = json.dumps(h, separators=(",", ":")).encode(); b += b" " * ((8 - len(b) % 8) % 8)
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(b)) + b)
    f.truncate(8 + len(b) + 4 * n)
' "$T/big.safetensors"
for sig in TERM KILL; do
    "$CONVERT" --threads 1 --dtype f16 --no-fsync "$T/big.safetensors" "$T/sig_$sig" >/dev/null 2>&1 &
    pid=$!
    sleep 0.15
    kill -s $sig $pid 2>/dev/null
    { wait $pid; } 2>/dev/null
    rc=$?
    if [ $rc -eq 0 ]; then
        check "SIG$sig arrived after completion: output complete" test -s "$T/sig_$sig/model.safetensors"
    else
        check "SIG$sig: no output under the final name" test ! -e "$T/sig_$sig"
        # 143: the signal beat the handler's installation (a loaded machine); nothing was written yet
        [ $sig = TERM ] && check "SIGTERM: exit 1 (or killed before start) and the staging directory removed" \
            test \( $rc -eq 1 -o $rc -eq 143 \) -a -z "$(ls -A "$T" | grep "sig_TERM.lq-tmp")"
    fi
done
rm -f "$T/big.safetensors"

# ---- lq-run: llama2.c's greedy goldens, byte for byte, from both forms of the model ----
RUN=$BUILD/lq-run
EVAL=$BUILD/lq-eval
G=$SHARED/stories260K/golden
for tool in lq-run lq-eval lq-synth; do
    run "$BUILD/$tool" --help
    check "$tool --help exits 0 with usage on stdout" test $rc -eq 0 -a -s "$T/out"
    run "$BUILD/$tool" --bogus
    check "$tool unknown option exits 2" test $rc -eq 2
done
for model in "$L2C" "$SHARED/stories260K-hf"; do
    run "$RUN" -t 0 -n 200 "$model"
    check "lq-run greedy 200 steps from BOS ($model) = llama2.c golden" \
        cmp -s "$T/out" <(printf '%s\n' "$(cat "$G/greedy_empty_prompt_200steps.txt")")
    run "$RUN" -t 0 -n 64 "$model" "Once upon a time"
    check "lq-run greedy 'Once upon a time' 64 steps ($model) = golden" \
        cmp -s "$T/out" <(printf '%s\n' "$(cat "$G/greedy_once_upon_a_time_64steps.txt")")
done
run "$RUN" -n 40 -s 7 "$L2C" "Once"
cp "$T/out" "$T/sampled1"
run "$RUN" -n 40 -s 7 --threads 1 "$L2C" "Once"
check "lq-run sampling is deterministic for a seed, whatever the thread count" cmp -s "$T/out" "$T/sampled1"
run "$RUN" --device cuda "$L2C"
if [ "$("$BUILD/run_tests" --cuda-devices 2>/dev/null)" = 0 ]; then
    check "lq-run --device cuda without a GPU exits 1 with a message" test $rc -eq 1 -a -s "$T/err"
fi

# ---- lq-eval: llama.cpp-compatible perplexity, KLD, gates, JSON ----
TS=$SHARED/tinystories/tinystories_train_excerpt.txt
run "$EVAL" "$L2C" --tokenizer "$SHARED/stories260K/tok512.bin" --text "$TS" --ctx 512 --json "$T/ppl.json"
check "lq-eval llama.cpp mode exits 0" test $rc -eq 0
check "lq-eval: 196 chunks x 255 predictions, ppl within 0.5% of llama.cpp's 6.3032" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["options"]["chunks"] == 196 and r["results"]["predictions"] == 49980, r
assert abs(r["results"]["ppl"] / 6.3032 - 1) < 0.005, r["results"]["ppl"]
assert len(r["data"]["sha256"]) == 64 and len(r["model"]["weights_sha256"]) == 64
' "$T/ppl.json"
run "$EVAL" "$L2C" --base "$SHARED/stories260K-hf" --tokenizer "$SHARED/stories260K/tok512.bin" --text "$TS" \
    --max-chars 40000 --ctx 256 --max-kld 0 --min-top1 100 --max-ppl-ratio 1 --json -
check "lq-eval --base M M: exit 0" test $rc -eq 0
check "lq-eval --base M M: KLD exactly 0, 100% same top, verdict pass" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["results"]
assert r["kld_mean"] == 0 and r["kld_percentiles"]["max"] == 0 and r["same_top_fraction"] == 1 and r["ppl_ratio"] == 1
' "$T/out"
run "$EVAL" "$L2C" --base "$SHARED/stories260K-hf" --tokenizer "$SHARED/stories260K/tok512.bin" --text "$TS" \
    --max-chars 20000 --ctx 128 --max-ppl-ratio 0.9
check "a missed gate exits 3" test $rc -eq 3
check "a missed gate says which gate and by how much, in one line" \
    test "$(grep -c 'gate failed: ppl ratio 1.000000 > --max-ppl-ratio 0.900000 (over by 0.1)' "$T/err")" -eq 1
check "a missed gate prints verdict FAIL" grep -q "^verdict: FAIL" "$T/out"
run "$EVAL" "$L2C" --text "$TS" --ctx 128 --chunks 2
check "lq-eval finds the llama2.c tokenizer beside the model" test $rc -eq 0
mkdir -p "$T/lonely" && cp "$L2C" "$T/lonely/model.bin"
run "$EVAL" "$T/lonely/model.bin" --text "$TS"
check "lq-eval on a llama2.c file with no tokenizer beside it exits 1" test $rc -eq 1
check "... and says to pass --tokenizer" grep -q -- "--tokenizer" "$T/err"
run "$EVAL" "$L2C" --max-kld 1 --tokens "$TS"
check "gates without --base are a usage error" test $rc -eq 2

# ---- PyTorch fixtures, when present ----
if [ -d tests/data/pytorch ]; then
    for f in tests/data/pytorch/malicious*.bin; do
        [ -e "$f" ] || continue
        run "$INSPECT" "$f"
        check "malicious pickle $f exits 1" test $rc -eq 1
        check "malicious pickle message names the refused global" grep -q "global .* is not allowed" "$T/err"
        run "$CONVERT" "$f" "$T/out_mal"
        check "malicious pickle leaves no output" test ! -e "$T/out_mal"
    done
fi

# ---- lq-quant: plans, formats, fallbacks, atomic outputs; the outputs run in lq-eval ----
QUANT=$BUILD/lq-quant
HF=$SHARED/stories260K-hf
run "$QUANT" --help
check "lq-quant --help exits 0 and lists the types" test $rc -eq 0 -a -n "$(grep -E '^  q4_k .* gguf$' "$T/out")"
check "lq-quant --help lists int4_g128 for gptq and ct" grep -q "^  int4_g128 .* gptq, ct" "$T/out"
run "$QUANT" --format gptq --type int5_g32 "$HF" "$T/qx"
check "lq-quant unknown type exits 2" test $rc -eq 2
run "$QUANT" --format gguf --type int4_g128 "$HF" "$T/qx.gguf"
check "lq-quant int4 into gguf is a usage error" test $rc -eq 2 -a ! -e "$T/qx.gguf"
run "$QUANT" --format gptq --type q4_0 "$HF" "$T/qx"
check "lq-quant q4_0 into gptq is a usage error" test $rc -eq 2
run "$QUANT" "$HF" "$T/qx"
check "lq-quant without --format (not .gguf) is a usage error" test $rc -eq 2
run "$QUANT" --format ct --tensor-type '([=int8_ch' "$HF" "$T/qx"
check "lq-quant bad regex is a usage error naming it" test $rc -eq 2 -a -n "$(grep "bad regex" "$T/err")"
run "$QUANT" --format gptq --type int4_g32 --dry-run "$HF" "$T/qdry"
check "lq-quant --dry-run exits 0 and writes nothing" test $rc -eq 0 -a ! -e "$T/qdry"
check "lq-quant --dry-run shows the down_proj fallback and the size" \
    test -n "$(grep 'model.layers.0.mlp.down_proj.weight .* fallback: ' "$T/out")" -a -n "$(grep '^plan: ' "$T/out")"
run "$QUANT" --format gptq --type int4_g32 --fallback error "$HF" "$T/qerr"
check "lq-quant --fallback error exits 1 naming the tensor, nothing left" \
    test $rc -eq 1 -a -n "$(grep 'down_proj' "$T/err")" -a ! -e "$T/qerr" -a -z "$(ls -A "$T" | grep qerr)"
run "$QUANT" --format gptq --type int4_g32 --json "$HF" "$T/gptq"
check "lq-quant gptq exits 0" test $rc -eq 0
check "lq-quant gptq writes the files engines read" test -s "$T/gptq/model.safetensors" -a -s "$T/gptq/config.json" \
    -a -s "$T/gptq/quantize_config.json" -a -s "$T/gptq/tokenizer.model"
check "lq-quant gptq: quantization_config with bits 4, group 32, v1, dynamic skips; JSON report lists fallbacks" \
    python3 - "$T/gptq/config.json" "$T/out" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
q = c["quantization_config"]
assert q["quant_method"] == "gptq" and q["bits"] == 4 and q["group_size"] == 32 and q["sym"] is True, q
assert q.get("checkpoint_format", "gptq") == "gptq" and c["model_type"] == "llama", q
assert any(k.startswith("-:") and "down_proj" in k for k in q["dynamic"]), q["dynamic"]
r = json.load(open(sys.argv[2]))
assert r["quantized"] == 20 and len(r["fallbacks"]) == 15 and r["bytes_out"] > 0, r
assert all(f["stored"] == "f32" for f in r["fallbacks"]), r["fallbacks"]
PY
run "$INSPECT" "$T/gptq"
check "lq-inspect reads the GPTQ output" test $rc -eq 0
run "$QUANT" --format gptq --type int4_g32 "$HF" "$T/gptq"
check "lq-quant refuses to overwrite without --force" test $rc -eq 1
run "$QUANT" --format gptq --type int4_g32 --force -t 1 "$HF" "$T/gptq"
check "lq-quant --force replaces it" test $rc -eq 0
run "$QUANT" --format gptq --type int4_g32 -t 2 "$HF" "$T/gptq2"
check "lq-quant output is byte-identical for 1 and 2 threads" cmp -s "$T/gptq/model.safetensors" "$T/gptq2/model.safetensors"
run "$QUANT" --format ct --type int8_ch "$HF" "$T/ct8"
check "lq-quant compressed-tensors int8 exits 0" test $rc -eq 0
run "$QUANT" --format gguf --type q8_0 "$HF" "$T/q8.gguf"
check "lq-quant gguf q8_0 exits 0, warns about the 5 fallbacks" test $rc -eq 0 -a -s "$T/q8.gguf" \
    -a -n "$(grep '5 of 47 tensor(s) required fallback' "$T/err")"
run "$QUANT" --format gguf --type q4_k --tensor-type 'self_attn\.[qk]_proj=q8_0' --keep 'v_proj' --json "$HF" "$T/mix.gguf"
check "lq-quant rules: first match wins, --keep keeps, q4_k falls back to q5_0 like llama.cpp" python3 - "$T/out" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))["tensor_types"]
assert t["model.layers.0.self_attn.q_proj.weight"] == "q8_0", t
assert t["model.layers.0.self_attn.v_proj.weight"] == "f32", t
assert t["model.layers.0.self_attn.o_proj.weight"] == "q5_0", t
assert t["model.layers.0.mlp.down_proj.weight"] == "f16", t
assert t["model.embed_tokens.weight"] == "f32" and t["model.norm.weight"] == "f32", t
PY
run "$INSPECT" "$T/q8.gguf"
check "lq-inspect reads the GGUF output, names the block type, dequantized statistics" \
    test $rc -eq 0 -a -n "$(grep -E '^blk\.0\.attn_q\.weight +q8_0 +\[64, 64\] +4352 +-?[0-9.]+ ' "$T/out")"
run "$CONVERT" "$T/q8.gguf" "$T/q8conv"
check "lq-convert refuses a quantized GGUF with one line, nothing written" \
    test $rc -eq 1 -a "$(wc -l <"$T/err")" -eq 1 -a ! -e "$T/q8conv"
for q in "$T/gptq" "$T/ct8" "$T/q8.gguf"; do
    run "$EVAL" "$q" --base "$HF" --text "$TS" --max-chars 30000 --ctx 256 --max-kld 0.5 --json -
    check "lq-eval --base f32 runs the quantized $(basename "$q") natively (gates pass, KLD > 0)" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["results"]
assert 0 < r["kld_mean"] < 0.1 and r["same_top_fraction"] > 0.85, r
' "$T/out"
done
run "$EVAL" "$T/ct8" --base "$HF" --text "$TS" --max-chars 30000 --ctx 256 --min-top1 99.99
check "lq-eval gate on a quantized model exits 3" test $rc -eq 3

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
