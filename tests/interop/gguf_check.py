#!/usr/bin/env python3
"""gguf_check.py MODEL.gguf DEQUANT.safetensors

Reads a llama GGUF written by libquant (lq_gguf_write_llama) with the PyPI
`gguf` package (llama.cpp's gguf-py: GGUFReader, gguf.quants.dequantize)
and checks it against what libquant itself says about the file:

  - the llama keys llama.cpp reads, with the value types it expects
    (integers UINT32, floats FLOAT32), general.quantization_version = 2
    exactly when a block-quantized tensor is present;
  - the tokenizer keys (when present): one token_type per token, scores for
    "llama", merges for "gpt2", special ids inside the vocabulary;
  - tensor names from the llama set, shapes consistent with the keys (as
    llama.cpp's loader demands), 1-D tensors F32, data offsets aligned;
  - every tensor dequantized by gguf-py equals, bit for bit, the f32 tensor
    of the same name in DEQUANT.safetensors (written by libquant's
    lq_dequantize_ref from the same file: tests/test_gguf.c).

Prints one line per problem and "ok: ..." at the end; exit status 1 on any
problem. Needs numpy and gguf (pip install gguf)."""
import json
import re
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf import GGUFReader, GGUFValueType as VT
from gguf.quants import dequantize

PLAIN = {QT.F32, QT.F16, QT.BF16}
LLAMA_KEYS = {
    "general.architecture": VT.STRING,
    "general.name": VT.STRING,
    "general.file_type": VT.UINT32,
    "llama.vocab_size": VT.UINT32,
    "llama.context_length": VT.UINT32,
    "llama.embedding_length": VT.UINT32,
    "llama.block_count": VT.UINT32,
    "llama.feed_forward_length": VT.UINT32,
    "llama.attention.head_count": VT.UINT32,
    "llama.attention.head_count_kv": VT.UINT32,
    "llama.rope.dimension_count": VT.UINT32,
    "llama.rope.freq_base": VT.FLOAT32,
    "llama.attention.layer_norm_rms_epsilon": VT.FLOAT32,
}
NAME_RE = re.compile(
    r"^(token_embd|output_norm|output|blk\.(0|[1-9][0-9]*)\."
    r"(attn_norm|attn_q|attn_k|attn_v|attn_output|ffn_norm|ffn_gate|ffn_up|ffn_down))\.(weight|bias)$")

problems = []


def problem(msg):
    problems.append(msg)
    print("FAIL:", msg)


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack_from("<Q", raw, 0)
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise SystemExit(f"{path}: {name} is {info['dtype']}, expected F32")
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(raw, dtype="<f4", count=(e - b) // 4, offset=base + b).reshape(info["shape"])
    return out


def scalar(reader, key):
    f = reader.fields.get(key)
    return None if f is None else f.contents()


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    gpath, spath = sys.argv[1], sys.argv[2]
    r = GGUFReader(gpath)
    ours = read_safetensors(spath)

    # ---- keys ----
    for key, vt in LLAMA_KEYS.items():
        f = r.fields.get(key)
        if f is None:
            problem(f"{gpath}: key {key} is missing")
        elif f.types[0] != vt:
            problem(f"{gpath}: key {key} is {f.types[0].name}, llama.cpp expects {vt.name}")
    if scalar(r, "general.architecture") != "llama":
        problem(f"{gpath}: general.architecture is {scalar(r, 'general.architecture')!r}")
    for key, f in r.fields.items():
        if key.startswith("llama.") and f.types[0] not in (VT.UINT32, VT.FLOAT32, VT.STRING):
            problem(f"{gpath}: {key} has type {f.types[0].name}")
    quantized = any(t.tensor_type not in PLAIN for t in r.tensors)
    qv = scalar(r, "general.quantization_version")
    if quantized and qv != 2:
        problem(f"{gpath}: block-quantized tensors but general.quantization_version = {qv}")
    if not quantized and qv is not None:
        problem(f"{gpath}: general.quantization_version {qv} without quantized tensors")
    n_vocab = scalar(r, "llama.vocab_size")
    n_embd = scalar(r, "llama.embedding_length")
    n_ff = scalar(r, "llama.feed_forward_length")
    n_head = scalar(r, "llama.attention.head_count")
    n_head_kv = scalar(r, "llama.attention.head_count_kv")
    hd = scalar(r, "llama.attention.key_length") or (n_embd // n_head)
    if scalar(r, "llama.rope.dimension_count") != hd:
        problem(f"{gpath}: rope.dimension_count {scalar(r, 'llama.rope.dimension_count')} != head dim {hd}")

    # ---- tokenizer ----
    model = scalar(r, "tokenizer.ggml.model")
    n_keys_tok = 0
    if model is not None:
        tokens = r.fields["tokenizer.ggml.tokens"]
        n_tok = len(tokens.data)
        n_keys_tok = n_tok
        if n_tok != n_vocab:
            problem(f"{gpath}: {n_tok} tokens, vocab_size {n_vocab}")
        texts = tokens.contents()
        if len(set(texts)) != n_tok:
            problem(f"{gpath}: duplicate tokens (llama.cpp asserts they are unique)")
        tt = r.fields.get("tokenizer.ggml.token_type")
        if tt is None or tt.types[-1] != VT.INT32 or len(tt.data) != n_tok:
            problem(f"{gpath}: tokenizer.ggml.token_type missing, not INT32 or of the wrong length")
        elif not all(1 <= int(x) <= 6 for x in tt.contents()):
            problem(f"{gpath}: token_type values outside 1..6")
        if model == "llama":
            sc = r.fields.get("tokenizer.ggml.scores")
            if sc is None or sc.types[-1] != VT.FLOAT32 or len(sc.data) != n_tok:
                problem(f"{gpath}: tokenizer.ggml.scores missing, not FLOAT32 or of the wrong length")
            if "<0x0A>" not in texts:
                problem(f"{gpath}: SentencePiece vocabulary without <0x0A> (llama.cpp's newline token)")
        elif model == "gpt2":
            m = r.fields.get("tokenizer.ggml.merges")
            if m is None or m.types[-1] != VT.STRING:
                problem(f"{gpath}: gpt2 vocabulary without tokenizer.ggml.merges")
            else:
                tset = set(texts)
                for s in m.contents():
                    a, _, b = s.partition(" ")
                    if a not in tset or b not in tset or a + b not in tset:
                        problem(f"{gpath}: merge {s!r} is not over vocabulary tokens")
                        break
            if scalar(r, "tokenizer.ggml.pre") is None:
                problem(f"{gpath}: gpt2 vocabulary without tokenizer.ggml.pre")
        else:
            problem(f"{gpath}: tokenizer.ggml.model {model!r}")
        for k in ("bos", "eos", "unknown"):
            v = scalar(r, f"tokenizer.ggml.{k}_token_id")
            if v is not None and not 0 <= v < n_tok:
                problem(f"{gpath}: tokenizer.ggml.{k}_token_id {v} outside the vocabulary")

    # ---- tensors ----
    expect_ne = {
        "token_embd.weight": [n_embd, n_vocab], "output.weight": [n_embd, n_vocab], "output_norm.weight": [n_embd],
        "attn_norm.weight": [n_embd], "ffn_norm.weight": [n_embd],
        "attn_q.weight": [n_embd, n_head * hd], "attn_k.weight": [n_embd, n_head_kv * hd],
        "attn_v.weight": [n_embd, n_head_kv * hd], "attn_output.weight": [n_head * hd, n_embd],
        "ffn_gate.weight": [n_embd, n_ff], "ffn_up.weight": [n_embd, n_ff], "ffn_down.weight": [n_ff, n_embd],
        "attn_q.bias": [n_head * hd], "attn_k.bias": [n_head_kv * hd], "attn_v.bias": [n_head_kv * hd],
    }
    names = [t.name for t in r.tensors]
    if set(names) != set(ours):
        problem(f"{gpath}: tensors {sorted(set(names) ^ set(ours))} are in only one of the two files")
    if "token_embd.weight" not in names:
        problem(f"{gpath}: no token_embd.weight")
    n_layers = scalar(r, "llama.block_count")
    for layer in range(n_layers):
        for part in ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up",
                     "ffn_down"):
            if f"blk.{layer}.{part}.weight" not in names:
                problem(f"{gpath}: blk.{layer}.{part}.weight is missing")
    n_values = 0
    for t in r.tensors:
        if not NAME_RE.match(t.name):
            problem(f"{gpath}: tensor name {t.name!r} is not a llama GGUF name")
            continue
        ne = [int(x) for x in t.shape]
        short = t.name.split(".", 2)[-1] if t.name.startswith("blk.") else t.name
        if short in expect_ne and ne != expect_ne[short]:
            problem(f"{gpath}: {t.name}: ne {ne}, expected {expect_ne[short]}")
        if len(ne) == 1 and t.tensor_type != QT.F32:
            problem(f"{gpath}: {t.name}: a 1-D tensor of type {t.tensor_type.name}, llama.cpp norms are F32")
        if t.data_offset % r.alignment != 0:
            problem(f"{gpath}: {t.name}: data offset {t.data_offset} is not a multiple of {r.alignment}")
        if t.name not in ours:
            continue
        mine = ours[t.name]
        if list(mine.shape) != ne[::-1]:
            problem(f"{gpath}: {t.name}: shape {list(mine.shape)} in {spath}, ne {ne} in the GGUF")
            continue
        theirs = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(mine.shape)
        if not np.array_equal(theirs.view(np.uint32), mine.view(np.uint32)):
            bad = np.flatnonzero(theirs.view(np.uint32) != mine.view(np.uint32))
            i = int(bad[0])
            problem(f"{gpath}: {t.name} ({t.tensor_type.name}): {bad.size} of {mine.size} values differ, "
                    f"first at {i}: gguf-py {theirs.flat[i]!r}, libquant {mine.flat[i]!r}")
        n_values += mine.size
    types = sorted({t.tensor_type.name for t in r.tensors})
    if problems:
        print(f"{gpath}: {len(problems)} problem(s)")
        return 1
    print(f"ok: {gpath}: {len(r.tensors)} tensors ({', '.join(types)}), {len(r.fields)} keys, "
          f"{n_keys_tok} tokens, {n_values} values equal to libquant's dequantization")
    return 0


if __name__ == "__main__":
    sys.exit(main())
