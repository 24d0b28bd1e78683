#!/usr/bin/env python3
"""make_gptq_fixtures.py : run gptq_oracle.py on random matrices and on real
layers of the trained stories260K, and write the inputs with the oracle's
outputs into tests/data/gptq/<case>.safetensors (W f32, H f64, codes u8,
scales f32, zeros u8, g_idx i32, loss f64; options in the metadata). The
C suite `gptq` (tests/test_gptq.c) runs lq_gptq_ref and lq_gptq_cpu on the
same W, H and options and compares.

Real layers: H from real activations of layer 0 of stories260K-hf on the
TinyStories excerpt (token ids from Debian's spm_encode with tok512.model):
x = RMSNorm(embed(tokens)) * input_layernorm (the q/k/v input), and for
down_proj silu(x Wg^T) * (x Wu^T) of that x.

    python3 tests/interop/make_gptq_fixtures.py [SHARED_DATA]
"""
import json
import os
import subprocess
import sys

import numpy as np
from safetensors.numpy import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gptq_oracle import gptq  # noqa: E402

SHARED = sys.argv[1] if len(sys.argv) > 1 else "../shared/data"
OUT = "tests/data/gptq"
os.makedirs(OUT, exist_ok=True)


def write(name, W, H, bits, group, sym, act=False, static=False, mse=False):
    codes, scales, zeros, g_idx, loss = gptq(W, H, bits, group, sym, act, static, mse)
    qtype = f"int{bits}_" + ("ch" if group <= 0 else f"g{group}") + ("" if sym else "_asym")
    t = {"W": W.astype(np.float32), "H": H.astype(np.float64), "codes": codes, "scales": scales,
         "g_idx": g_idx, "loss": np.array([loss], np.float64)}
    if not sym:
        t["zeros"] = zeros
    meta = {"qtype": qtype, "act_order": str(int(act)), "static_groups": str(int(static)), "mse": str(int(mse)),
            "damp": "0.01", "block": "128", "producer": "tests/interop/gptq_oracle.py (numpy float64)"}
    save_file(t, f"{OUT}/{name}.safetensors", metadata=meta)
    print(f"{name}: {qtype} act={act} static={static} mse={mse} loss={loss:.6g}")


def random_case(seed, R, C, dead_every=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((600, C)) * (1 + np.arange(C) % 7)
    X[:, 1:] += 0.7 * X[:, :-1]
    if dead_every:
        X[:, np.arange(C) % dead_every == 3] = 0
    X = X.astype(np.float32)
    H = 2.0 / 600 * (X.astype(np.float64).T @ X.astype(np.float64))
    W = (0.05 * rng.standard_normal((R, C))).astype(np.float32)
    return W, H


W, H = random_case(1, 24, 128)
write("random_int4_g32", W, H, 4, 32, True)
write("random_int4_g128_act", W, H, 4, 128, True, act=True)
write("random_int3_ch_act", W, H, 3, -1, True, act=True)
W, H = random_case(2, 24, 128)
write("random_int2_g64_asym", W, H, 2, 64, False)
write("random_int8_ch_asym", W, H, 8, -1, False)
write("random_int4_g32_static_act", W, H, 4, 32, True, act=True, static=True)
write("random_int4_g64_mse", W, H, 4, 64, True, mse=True)
W, H = random_case(3, 16, 128, dead_every=10)
write("random_int4_g32_dead", W, H, 4, 32, True, act=True)

# real layer 0 of stories260K
m = load_file(f"{SHARED}/stories260K-hf/model.safetensors")
cfg = json.load(open(f"{SHARED}/stories260K-hf/config.json"))
text = open(f"{SHARED}/tinystories/tinystories_train_excerpt.txt", encoding="utf-8").read()[:20000]
ids = subprocess.run(["spm_encode", "--model", f"{SHARED}/stories260K/tok512.model", "--output_format=id"],
                     input=text, capture_output=True, text=True, check=True).stdout.split()
ids = np.array([1] + [int(i) for i in ids], np.int64)[:4096]
E = m["model.embed_tokens.weight"].astype(np.float64)[ids]
eps = cfg.get("rms_norm_eps", 1e-5)
x = E / np.sqrt(np.mean(E * E, axis=1, keepdims=True) + eps) * m["model.layers.0.input_layernorm.weight"]
x = x.astype(np.float32).astype(np.float64)
n = len(ids) / 512.0  # "samples" of 512 tokens: the scale does not change the result
Hx = 2.0 / n * (x.T @ x)
g = x @ m["model.layers.0.mlp.gate_proj.weight"].astype(np.float64).T
u = x @ m["model.layers.0.mlp.up_proj.weight"].astype(np.float64).T
h = (g / (1 + np.exp(-g)) * u).astype(np.float32).astype(np.float64)
Hh = 2.0 / n * (h.T @ h)
L = "model.layers.0."
write("stories_l0_q_proj_int4_g32", m[L + "self_attn.q_proj.weight"], Hx, 4, 32, True)
write("stories_l0_q_proj_int3_g32_act", m[L + "self_attn.q_proj.weight"], Hx, 3, 32, True, act=True)
write("stories_l0_k_proj_int4_g64_asym", m[L + "self_attn.k_proj.weight"], Hx, 4, 64, False)
write("stories_l0_down_proj_int4_ch", m[L + "mlp.down_proj.weight"], Hh, 4, -1, True)
write("stories_l0_gate_proj_int2_g32_act", m[L + "mlp.gate_proj.weight"], Hx, 2, 32, True, act=True)
