#!/usr/bin/env python3
"""make_quant_fixtures.py : golden GGML blocks for tests/test_quant.c from other implementations.

Run from the repository root (numpy and the PyPI `gguf` package, i.e. llama.cpp's gguf-py):

    python3 tests/data/quant/make_quant_fixtures.py [--ggml path/to/libggml-base.so]

Writes, next to this script (all little-endian, no headers; sizes follow from the shapes below):

  input.f32              4 x 256 f32: the rows every quantizer below sees (a fixed formula: smooth
                         values, a block of zeros, exact .5 ties for Q8_0, negative-dominant blocks,
                         tiny and large magnitudes), ROWS x COLS
  colw.f32               256 f32 column weights (an imatrix-like mean of squares), for the weighted k-quants
  {q8_0,q4_0,q5_0}.bin   gguf.quants.quantize(input, type): gguf-py's numpy ports of ggml's
                         quantize_row_*_ref, 4 rows of 8 blocks
  {q8_0,q4_0,q5_0}.deq.f32  gguf.quants.dequantize() of those bytes, 4 x 256 f32
  {q4_k,q6_k}.blocks.bin 4 hand-made blocks each (deterministic bytes with sane f16 scales)
  {q4_k,q6_k}.deq.f32    gguf.quants.dequantize() of them, 4 x 256 f32

With --ggml (llama.cpp's libggml-base.so, called through ctypes), also:

  {q4_k,q6_k}.ggml.bin   ggml's quantize_row_q4_K_ref / quantize_row_q6_K_ref of input.f32
  {q4_k,q6_k}_w.ggml.bin ggml's quantize_q4_K / quantize_q6_K of input.f32 with colw.f32 as the
                         importance matrix (the imatrix searches make_qkx3 / make_qp / make_qx)

gguf-py has no k-quant quantizer, hence the ggml library for those. The C test checks that
lq_quantize_ref/_cpu reproduce every .bin from input.f32 (and colw.f32) byte for byte, and that
lq_dequantize_ref reproduces every .deq.f32 bit for bit. `make test` reads the committed files and
never runs Python. The values are computed from float64 formulas and stored as f32, so the files
are identical on every run on the same numpy/libm; the test only needs them to be consistent with
each other, not reproducible across machines.
"""
import argparse
import ctypes
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf import quants

ROWS, COLS = 4, 256
HERE = os.path.dirname(os.path.abspath(__file__))


def make_input():
    i = np.arange(COLS, dtype=np.float64)
    x = np.zeros((ROWS, COLS), dtype=np.float64)
    # row 0: smooth values of varying amplitude
    x[0] = 0.02 * np.sin(0.37 * i + 0.1) * (1.0 + (i % 7) / 3.0)
    # row 1: block 0 smooth, block 1 zeros, block 2 exact .5 ties for Q8_0 (amax 127 -> d = 1),
    #        block 3 a single spike, the rest a ramp
    x[1] = 0.01 * np.cos(0.21 * i)
    x[1, 32:64] = 0.0
    x[1, 64:96] = np.array([127.0] + [((k % 9) - 4) + 0.5 for k in range(1, 32)])
    x[1, 96:128] = 0.0
    x[1, 100] = -3.0
    x[1, 128:] = np.linspace(-1.0, 0.75, COLS - 128)
    # row 2: negative-dominant blocks, magnitudes from 1e-3 to 10 block by block
    scale = 10.0 ** (np.floor(i / 32) / 2.0 - 3.0)
    x[2] = scale * (0.3 * np.sin(1.3 * i) - 0.7 * (np.sin(0.05 * i) ** 2))
    # row 3: tiny and large values side by side
    x[3] = np.where(i % 5 == 0, 3.0 * np.sin(i), 1e-5 * np.cos(3.0 * i))
    return x.astype(np.float32)


def make_colw():
    i = np.arange(COLS, dtype=np.float64)
    return (0.05 + (np.sin(0.9 * i) ** 2) + (i % 11) / 10.0).astype(np.float32)


def f16_bytes(v):
    return np.array([v], dtype=np.float16).view(np.uint8)


def pseudo_bytes(n, seed):
    """n bytes of a 64-bit multiplicative hash of the index (no RNG state, same on every numpy)"""
    z = (np.arange(n, dtype=np.uint64) + np.uint64(seed)) * np.uint64(0x9E3779B97F4A7C15)
    z ^= z >> np.uint64(29)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    return ((z >> np.uint64(40)) & np.uint64(0xFF)).astype(np.uint8)


def hand_q4_k():
    blocks = []
    for b in range(4):
        body = pseudo_bytes(140, 1000 * b + 1)
        blk = np.concatenate([f16_bytes(0.0125 * (b + 1)), f16_bytes(0.003 * (b + 1) * (-1) ** b), body])
        blocks.append(blk)
    return np.stack(blocks)


def hand_q6_k():
    blocks = []
    for b in range(4):
        body = pseudo_bytes(208, 1000 * b + 7)
        blk = np.concatenate([body, f16_bytes(0.0021 * (b + 1) * (-1) ** (b // 2))])
        blocks.append(blk)
    return np.stack(blocks)


def write(name, arr):
    path = os.path.join(HERE, name)
    with open(path, "wb") as f:
        f.write(np.ascontiguousarray(arr).tobytes())
    print(f"{name}: {os.path.getsize(path)} bytes")


def ggml_fixtures(lib_path, x, colw):
    lib = ctypes.CDLL(lib_path)

    class InitParams(ctypes.Structure):
        _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p), ("no_alloc", ctypes.c_bool)]

    lib.ggml_init.restype = ctypes.c_void_p
    lib.ggml_init.argtypes = [InitParams]
    lib.ggml_free.argtypes = [ctypes.c_void_p]
    ctx = lib.ggml_init(InitParams(1 << 20, None, False))  # fills ggml's f16 -> f32 table
    fp = ctypes.POINTER(ctypes.c_float)
    for name, bb, row_ref, quant in (("q4_k", 144, lib.quantize_row_q4_K_ref, lib.quantize_q4_K),
                                     ("q6_k", 210, lib.quantize_row_q6_K_ref, lib.quantize_q6_K)):
        row_ref.argtypes = [fp, ctypes.c_void_p, ctypes.c_int64]
        quant.argtypes = [fp, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, fp]
        quant.restype = ctypes.c_size_t
        src = np.ascontiguousarray(x)
        out = np.zeros(ROWS * (COLS // 256) * bb, dtype=np.uint8)
        row_ref(src.ctypes.data_as(fp), out.ctypes.data, ROWS * COLS)
        write(f"{name}.ggml.bin", out)
        outw = np.zeros_like(out)
        w = np.ascontiguousarray(colw)
        quant(src.ctypes.data_as(fp), outw.ctypes.data, ROWS, COLS, w.ctypes.data_as(fp))
        write(f"{name}_w.ggml.bin", outw)
    lib.ggml_free(ctx)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ggml", help="path to llama.cpp's libggml-base.so for the k-quant quantizations")
    args = ap.parse_args()
    x, colw = make_input(), make_colw()
    write("input.f32", x)
    write("colw.f32", colw)
    for name, qt in (("q8_0", QT.Q8_0), ("q4_0", QT.Q4_0), ("q5_0", QT.Q5_0)):
        q = quants.quantize(x, qt)
        write(f"{name}.bin", q)
        write(f"{name}.deq.f32", quants.dequantize(q, qt).astype(np.float32))
    for name, qt, blocks in (("q4_k", QT.Q4_K, hand_q4_k()), ("q6_k", QT.Q6_K, hand_q6_k())):
        write(f"{name}.blocks.bin", blocks)
        write(f"{name}.deq.f32", quants.dequantize(blocks.reshape(1, -1), qt).astype(np.float32))
    if args.ggml:
        ggml_fixtures(args.ggml, x, colw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
