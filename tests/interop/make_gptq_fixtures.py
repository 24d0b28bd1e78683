#!/usr/bin/env python3
"""make_gptq_fixtures.py : run gptq_oracle.py on random matrices and on real
layers of the trained stories260K, and write the inputs with the oracle's
outputs into tests/data/gptq/*.safetensors. The C suite `gptq`
(tests/test_gptq.c, test_oracle_fixtures) runs lq_gptq_ref and lq_gptq_cpu on
the same W, H and options and compares.

One file holds one Hessian and every case solved against it (the Hessians
dominate the size):
    H                  f64 (C, C)
    W, W.<name>        f32 (R, C) the weights (named in <case>.weight)
    <case>.codes       u8  (R, C) unpacked codes, ORIGINAL column order
    <case>.scales      f32 (R, n_groups), groups in processing order
    <case>.zeros       u8  (R, n_groups), asym types only
    <case>.g_idx       i32 (C,)
    <case>.loss        f64 (1,)
__metadata__: "cases" (comma-separated), per case "<case>.weight", ".qtype"
(libquant's name), ".act_order", ".static_groups", ".mse" ("0"/"1"),
".damp", ".block_size", ".scale_dtype"; "producer", "source".

Random cases: H = (2/n) X^T X of correlated Gaussian X (x_j += 0.7 x_{j-1},
column scales 1..7), one file with dead (all-zero) input columns. Real cases:
layer 0 of ../shared/data/stories260K-hf on the first 20,000 characters of
the TinyStories excerpt, token ids from Debian's `spm_encode --model
stories260K/tok512.model --output_format=id` with BOS (1) in front, 4,096
tokens; x = RMSNorm(embed(ids)) * input_layernorm (the q/k/v and, as the
brief for these fixtures fixes it, also the gate/up input: no attention
residual), H_x = (2/n) x^T x with n = tokens / 512; down_proj's H from
h = silu(x Wg^T) * (x Wu^T) of the same x. Activations are rounded to f32
before the f64 products, like a real capture.

    python3 tests/interop/make_gptq_fixtures.py [--check] [SHARED_DATA]   (from the repository root)
--check writes into a temporary directory and compares with the committed files byte for byte (exit 1 on a
difference). Needs numpy, safetensors and spm_encode (apt-get install sentencepiece). numpy's BLAS/LAPACK
(H = X^T X, Cholesky, inverse) may round differently on another machine; the C suite tolerates that (codes >= 99.5%,
scales within 1 ulp), --check does not.
"""
import filecmp
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gptq_oracle import gptq  # noqa: E402

ARGS = [a for a in sys.argv[1:] if a != "--check"]
CHECK = "--check" in sys.argv[1:]
SHARED = ARGS[0] if ARGS else "../shared/data"
COMMITTED = "tests/data/gptq"
OUT = tempfile.mkdtemp(prefix="gptq_fixtures_") if CHECK else COMMITTED


def save_file(tensors, path, metadata):
    """safetensors with a reproducible byte layout (safetensors.numpy.save_file orders the metadata at random):
    metadata keys sorted, tensors by decreasing element size then name (so every tensor is aligned to its
    element size), the header padded with spaces to a multiple of 8"""
    dt = {np.dtype(np.float64): "F64", np.dtype(np.float32): "F32", np.dtype(np.uint8): "U8",
          np.dtype(np.int32): "I32"}
    header, blobs, off = {"__metadata__": dict(sorted(metadata.items()))}, [], 0
    for name in sorted(tensors, key=lambda k: (-tensors[k].dtype.itemsize, k)):
        a = np.ascontiguousarray(tensors[name])
        b = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dt[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def qtype_name(bits, group, sym):
    return f"int{bits}_" + ("ch" if group <= 0 else f"g{group}") + ("" if sym else "_asym")


def write_file(fname, H, weights, cases, source):
    """weights: {tensor name: f32 array}; cases: [(case, weight name, bits, group, sym, act, static, mse)]"""
    t = {"H": np.ascontiguousarray(H, np.float64)}
    for k, v in weights.items():
        t[k] = np.ascontiguousarray(v, np.float32)
    meta = {"cases": ",".join(c[0] for c in cases), "producer": "tests/interop/gptq_oracle.py (numpy float64)",
            "source": source}
    for case, wname, bits, group, sym, act, static, mse in cases:
        codes, scales, zeros, g_idx, loss = gptq(t[wname], H, bits, group, sym, act, static, mse)
        t[f"{case}.codes"] = codes
        t[f"{case}.scales"] = scales
        if not sym:
            t[f"{case}.zeros"] = zeros
        t[f"{case}.g_idx"] = g_idx
        t[f"{case}.loss"] = np.array([loss], np.float64)
        for k, v in (("weight", wname), ("qtype", qtype_name(bits, group, sym)), ("act_order", str(int(act))),
                     ("static_groups", str(int(static))), ("mse", str(int(mse))), ("damp", "0.01"),
                     ("block_size", "128"), ("scale_dtype", "F16")):
            meta[f"{case}.{k}"] = v
        print(f"{fname}: {case:24s} {wname:8s} {qtype_name(bits, group, sym):12s} act={int(act)} "
              f"static={int(static)} mse={int(mse)} loss={loss:.6g}")
    save_file(t, f"{OUT}/{fname}.safetensors", metadata=meta)
    os.chmod(f"{OUT}/{fname}.safetensors", 0o644)


def random_hw(seed, R, C, n=600, dead_every=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, C)) * (1 + np.arange(C) % 7)
    X[:, 1:] += 0.7 * X[:, :-1]
    if dead_every:
        X[:, np.arange(C) % dead_every == 3] = 0
    X = X.astype(np.float32).astype(np.float64)
    H = 2.0 / n * (X.T @ X)
    W = (0.05 * rng.standard_normal((R, C)) * np.where(np.arange(R * C).reshape(R, C) % 13 == 0, 4, 1))
    return W.astype(np.float32), H


def main():
    os.makedirs(OUT, exist_ok=True)
    T, F = True, False
    # (case, weight, bits, group, sym, act_order, static_groups, mse)
    W, H = random_hw(1, 48, 256)
    write_file("random", H, {"W": W}, [
        ("int4_g128", "W", 4, 128, T, F, F, F),
        ("int4_g32", "W", 4, 32, T, F, F, F),
        ("int4_g64_asym_act", "W", 4, 64, F, T, F, F),
        ("int3_g128_act", "W", 3, 128, T, T, F, F),
        ("int2_g64_asym", "W", 2, 64, F, F, F, F),
        ("int8_ch_act", "W", 8, -1, T, T, F, F),
        ("int3_ch_asym", "W", 3, -1, F, F, F, F),
        ("int4_g32_static_act", "W", 4, 32, T, T, T, F),
        ("int4_g128_asym_static", "W", 4, 128, F, F, T, F),
        ("int4_g64_mse", "W", 4, 64, T, F, F, T),
        ("int2_g32_asym_act_mse", "W", 2, 32, F, T, F, T),
        ("int8_g128_asym", "W", 8, 128, F, F, F, F),
    ], "random: W 0.05 N(0,1) (every 13th x4), H = (2/600) X^T X, correlated X, seed 1")
    W, H = random_hw(3, 32, 128, dead_every=10)
    write_file("random_dead", H, {"W": W}, [
        ("int4_g32_act", "W", 4, 32, T, T, F, F),
        ("int4_g32_static_act", "W", 4, 32, T, T, T, F),
        ("int3_ch_asym", "W", 3, -1, F, F, F, F),
        ("int8_g64_mse", "W", 8, 64, T, F, F, T),
    ], "random with 13 dead input columns (j % 10 == 3), seed 3")

    from safetensors.numpy import load_file  # the reader; files are written by save_file above
    m = load_file(f"{SHARED}/stories260K-hf/model.safetensors")
    cfg = json.load(open(f"{SHARED}/stories260K-hf/config.json"))
    text = open(f"{SHARED}/tinystories/tinystories_train_excerpt.txt", encoding="utf-8").read()[:20000]
    ids = subprocess.run(["spm_encode", "--model", f"{SHARED}/stories260K/tok512.model", "--output_format=id"],
                         input=text, capture_output=True, text=True, check=True).stdout.split()
    ids = np.array([1] + [int(i) for i in ids], np.int64)[:4096]
    assert len(ids) == 4096, len(ids)
    L = "model.layers.0."
    E = m["model.embed_tokens.weight"].astype(np.float64)[ids]
    eps = cfg.get("rms_norm_eps", 1e-5)
    x = E / np.sqrt(np.mean(E * E, axis=1, keepdims=True) + eps) * m[L + "input_layernorm.weight"]
    x = x.astype(np.float32).astype(np.float64)
    n = len(ids) / 512.0
    Hx = 2.0 / n * (x.T @ x)
    g = x @ m[L + "mlp.gate_proj.weight"].astype(np.float64).T
    u = x @ m[L + "mlp.up_proj.weight"].astype(np.float64).T
    h = (g / (1 + np.exp(-g)) * u).astype(np.float32).astype(np.float64)
    Hh = 2.0 / n * (h.T @ h)
    src = ("stories260K-hf layer 0, 4096 tokens of tinystories_train_excerpt.txt (spm_encode tok512.model, BOS), "
           "x = RMSNorm(embed) * input_layernorm")
    write_file("stories_l0_x", Hx, {"W.q_proj": m[L + "self_attn.q_proj.weight"],
                                    "W.k_proj": m[L + "self_attn.k_proj.weight"],
                                    "W.gate_proj": m[L + "mlp.gate_proj.weight"]}, [
        ("q_int4_g32", "W.q_proj", 4, 32, T, F, F, F),
        ("q_int3_g32_act", "W.q_proj", 3, 32, T, T, F, F),
        ("q_int4_g64_asym_static_act", "W.q_proj", 4, 64, F, T, T, F),
        ("k_int4_g64_asym", "W.k_proj", 4, 64, F, F, F, F),
        ("k_int8_ch", "W.k_proj", 8, -1, T, F, F, F),
        ("gate_int2_g32_act", "W.gate_proj", 2, 32, T, T, F, F),
        ("gate_int4_ch_asym_mse", "W.gate_proj", 4, -1, F, F, F, T),
    ], src)
    write_file("stories_l0_down", Hh, {"W.down_proj": m[L + "mlp.down_proj.weight"]}, [
        ("down_int4_ch", "W.down_proj", 4, -1, T, F, F, F),
        ("down_int3_ch_asym_act", "W.down_proj", 3, -1, F, T, F, F),
        ("down_int8_ch_mse", "W.down_proj", 8, -1, T, F, F, T),
    ], src + "; H from h = silu(x Wg^T) * (x Wu^T)")
    names = sorted(f for f in os.listdir(OUT) if f.endswith(".safetensors"))
    print(f"total {sum(os.path.getsize(f'{OUT}/{f}') for f in names)} bytes in {OUT}")
    if CHECK:
        bad = [f for f in names if not same_fixture(f"{OUT}/{f}", f"{COMMITTED}/{f}")]
        shutil.rmtree(OUT)
        print("check: " + ("differ: " + " ".join(bad) if bad else f"{len(names)} files match {COMMITTED}"))
        sys.exit(1 if bad else 0)


def same_fixture(a, b):
    """byte-identical, or (another BLAS, another thread count) the same metadata, tensors and discrete outputs, and
    the f64 ones (H, loss) within 1e-9 relative"""
    if filecmp.cmp(a, b, shallow=False):
        return True
    from safetensors import safe_open
    with safe_open(a, "np") as fa, safe_open(b, "np") as fb:
        if fa.metadata() != fb.metadata() or sorted(fa.keys()) != sorted(fb.keys()):
            return False
        for k in fa.keys():
            x, y = fa.get_tensor(k), fb.get_tensor(k)
            if x.dtype != y.dtype or x.shape != y.shape:
                return False
            ok = np.allclose(x, y, rtol=1e-9, atol=0) if x.dtype == np.float64 else np.array_equal(x, y)
            if not ok:
                print(f"  {b}: {k} differs")
                return False
    print(f"  {b}: equal up to f64 rounding (not byte-identical)")
    return True

if __name__ == "__main__":
    main()
