#!/usr/bin/env bash
# GGUF interop: the files libquant writes, read by other implementations.
#
#  1. the PyPI gguf package (llama.cpp's gguf-py) reads every fixture of
#     tests/out/gguf_interop/ (written by `run_tests gguf`, regenerated here
#     when missing or older than the test binary) and its dequantization must
#     equal libquant's bit for bit (tests/interop/gguf_check.py);
#  2. when LLAMA_CPP_BIN names a llama.cpp build/bin with llama-simple,
#     llama.cpp's greedy text for "Once upon a time" from the stories260K
#     F32/F16/Q8_0 files must equal llama2.c's golden text.
# Without python3 + gguf + numpy it prints "skipped: gguf not importable" and
# exits 0. Environment: BUILD (default build), LQ_SHARED_DATA, LLAMA_CPP_BIN.
set -u
BUILD=${BUILD:-build}
SHARED=${LQ_SHARED_DATA:-../shared/data}
D=tests/out/gguf_interop
HERE=$(dirname "$0")

if ! python3 -c 'import gguf, numpy' >/dev/null 2>&1; then
    echo "skipped: gguf not importable"
    exit 0
fi
if [ ! -f "$D/stories260K-q8_0.dequant.safetensors" ] || [ "$BUILD/run_tests" -nt "$D/mixed.gguf" ]; then
    if ! LQ_SHARED_DATA=$SHARED "$BUILD/run_tests" gguf >"$D.log" 2>&1; then
        echo "FAIL: $BUILD/run_tests gguf (see $D.log)"
        exit 1
    fi
fi

fail=0
n=0
for stem in mixed stories260K-f32 stories260K-f16 stories260K-q8_0; do
    python3 "$HERE/gguf_check.py" "$D/$stem.gguf" "$D/$stem.dequant.safetensors" || fail=1
    n=$((n + 1))
done

L=${LLAMA_CPP_BIN:-}
if [ -n "$L" ] && [ -x "$L/llama-simple" ]; then
    golden=$SHARED/stories260K/golden/greedy_once_upon_a_time_64steps.txt
    for v in f32 f16 q8_0; do
        # 64 llama2.c steps = BOS + 4 prompt tokens + 60 generated; llama-simple
        # echoes the prompt after "<s> " and ends with a newline of its own
        out=$("$L/llama-simple" -m "$D/stories260K-$v.gguf" -n 60 "Once upon a time" 2>"$D/llama-simple-$v.log")
        if [ "${out#<s> }" == "$(cat "$golden")" ]; then
            echo "ok: llama.cpp greedy text of stories260K-$v.gguf equals the llama2.c golden"
        else
            echo "FAIL: llama.cpp greedy text of stories260K-$v.gguf differs from $golden:"
            echo "$out"
            fail=1
        fi
        n=$((n + 1))
    done
else
    echo "llama.cpp: skipped (set LLAMA_CPP_BIN to a llama.cpp build/bin with llama-simple)"
fi
[ $fail -eq 0 ] && echo "gguf interop: $n checks passed"
exit $fail
