#!/usr/bin/env python3
"""make_calib_fixtures.py : fixtures for the `calib` suite (tests/test_calib.c)
and the seed corpus of tests/fuzz/fuzz_calib.c.

numpy (an independent .npy/.npz writer) writes the token arrays; each
array's ids are also written as raw little-endian uint32 (<name>.expect.u32)
for the comparison. windows.expect.txt holds window offsets drawn by the
reference splitmix64 below (an independent implementation of lq_calib.h's
rule). The malformed files are each built to hit one documented error.

    cd tests/data/calib && python3 make_calib_fixtures.py

Deterministic except for the .npz members' zip timestamps (the time of writing);
numpy 2.4.6 wrote the committed files.
"""
import gzip
import io
import json
import os
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "..", "fuzz", "corpus", "calib")
os.chdir(HERE)

rng = np.random.default_rng(7)
ids = rng.integers(3, 500, size=1200)  # below the stories260K vocabulary (512), no BOS/EOS


def expect(name, a):
    np.asarray(a, np.uint32).ravel().tofile(f"{name}.expect.u32")


def save_version(path, a, version):
    with open(path, "wb") as f:
        np.lib.format.write_array(f, a, version=version)


def npy_bytes(a, version=None):
    f = io.BytesIO()
    np.lib.format.write_array(f, a, version=version)
    return f.getvalue()


def raw_npy(header, data=b"", major=1):
    """a .npy with a hand-written header dict (padded like numpy's)"""
    h = header.encode("latin1")
    pre = 10 if major == 1 else 12
    pad = (-(pre + len(h) + 1)) % 64
    h = h + b" " * pad + b"\n"
    size = struct.pack("<H", len(h)) if major == 1 else struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes([major, 0]) + size + h + data


# ---- good token files ----
np.save("u2.npy", ids.astype("<u2"))
expect("u2", ids)
np.save("i4.npy", ids[:800].astype("<i4"))
expect("i4", ids[:800])
np.save("i8_2d.npy", ids[:600].reshape(4, 150).astype("<i8"))
expect("i8_2d", ids[:600])
np.save("u1.npy", (ids[:300] % 256).astype("|u1"))
expect("u1", ids[:300] % 256)
save_version("i2_v2.npy", ids[:400].astype("<i2"), (2, 0))
expect("i2_v2", ids[:400])
save_version("u8_v3.npy", ids[:300].astype("<u8"), (3, 0))
expect("u8_v3", ids[:300])
# input_ids after another array, deflated (savez_compressed)
np.savez_compressed("two.npz", attention_mask=np.ones(700, "u1"), input_ids=ids[:700].astype("<u4"))
expect("two", ids[:700])
# tokens after another array, stored
np.savez("tokens.npz", other=np.arange(50, dtype="<i4"), tokens=ids[100:600].astype("<i4"))
expect("tokens", ids[100:600])
# the only array, whatever its name, stored
np.savez("single.npz", whatever=ids[:500].astype("<i4"))
expect("single", ids[:500])
ids[:600].astype("<u2").tofile("raw.u16")
expect("raw", ids[:600])
ids[:400].astype("<u4").tofile("raw.u32")
expect("raw32", ids[:400])

# ---- malformed token files ----
good = open("u2.npy", "rb").read()
open("truncated.npy", "wb").write(good[:40])  # header announces more than the file holds
open("short_data.npy", "wb").write(good[:-10])  # prod(shape) * 2 != data bytes
np.save("fortran.npy", np.asfortranarray(ids[:100].reshape(10, 10).astype("<u2")))
np.save("bigendian.npy", ids[:100].astype(">u2"))
np.save("float.npy", ids[:100].astype("<f4"))
np.save("object.npy", np.array([1, 2, None], dtype=object), allow_pickle=True)
np.save("negative.npy", np.array([5, 6, -1, 7], "<i4"))
open("bad_dict.npy", "wb").write(raw_npy(
    "{'descr': '<u2', 'fortran_order': False, 'shape': __import__('os').getpid(), }", b"\0\0"))
open("extra_key.npy", "wb").write(raw_npy(
    "{'descr': '<u2', 'fortran_order': False, 'shape': (1,), 'x': 1, }", b"\0\0"))
np.savez("ambiguous.npz", a=ids[:10].astype("<i4"), b=ids[:10].astype("<i4"))
crc = bytearray(open("single.npz", "rb").read())
crc[crc.index(b"\x93NUMPY") + 300] ^= 0x55  # in the stored data: the CRC no longer matches
open("bad_crc.npz", "wb").write(bytes(crc))

# ---- JSON Lines ----
with open("docs.jsonl", "w") as f:
    for t in ["Once upon a time, there was a cat.", "", "The dog ran to the park. It was happy!",
              "Lily said, \"hi\"."]:
        f.write(json.dumps({"id": 1, "text": t}) + "\n" if t else "\n")
with open("bad_line.jsonl", "w") as f:
    f.write(json.dumps({"text": "fine"}) + "\n" + json.dumps({"title": "no text"}) + "\n")
with open("not_object.jsonl", "w") as f:
    f.write(json.dumps({"text": "one"}) + "\n\n" + "[1, 2]\n")
with open("bad_json.jsonl", "w") as f:
    f.write('{"text": "trailing comma",}\n')


# ---- window offsets by an independent splitmix64 (lq_calib.h "Windows") ----
M64 = (1 << 64) - 1


def offsets(n_stream, seq_len, bos, seed, n_samples):
    body = seq_len - 1 if bos >= 0 else seq_len
    m = n_stream - body + 1
    state, out = seed, []
    while len(out) < n_samples:
        state = (state + 0x9E3779B97F4A7C15) & M64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        z ^= z >> 31
        if z < (1 << 64) % m:
            continue
        out.append(z % m)
    return out


with open("windows.expect.txt", "w") as f:
    f.write("# n_stream seq_len bos seed n_samples offsets... (stream = ids 0..n_stream-1)\n")
    for case in [(1000, 991, 7, 0, 20), (100000, 512, 1, 42, 16), (5000, 100, -1, M64, 8),
                 (1534, 512, 1, 3, 12), (512, 512, -1, 9, 3)]:
        f.write(" ".join(str(x) for x in list(case) + offsets(*case)) + "\n")

# ---- fuzz seeds: byte 0 = kind (lq_calib_kind) | 0x80 when gzipped, then the file ----
os.makedirs(CORPUS, exist_ok=True)
for old in os.listdir(CORPUS):
    os.remove(os.path.join(CORPUS, old))
TEXT, JSONL, U16, U32, NPY, NPZ = range(6)
story = b"Once upon a time, there was a little dog named Max.\n\nHe liked the sun. The end.\n"
small = ids[:64]


def seed(name, kind, data, gz=False, gz_flag=False):
    """gz: compress `data` and set the flag; gz_flag: set the flag only"""
    if gz:
        data = gzip.compress(data, mtime=0)
    open(os.path.join(CORPUS, name), "wb").write(bytes([kind | (0x80 if gz or gz_flag else 0)]) + data)


def npz_bytes(compressed, **arrays):
    f = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(f, **arrays)
    return f.getvalue()


seed("text", TEXT, story)
seed("text_gz", TEXT, story, gz=True)
seed("text_gz_cut", TEXT, gzip.compress(story, mtime=0)[:20], gz_flag=True)
seed("text_gz_two_members", TEXT, gzip.compress(story[:30], mtime=0) + gzip.compress(story[30:], mtime=0),
     gz_flag=True)
seed("text_invalid_utf8", TEXT, b"caf\xc3 \xff\xfe the end\x00 and\n")
seed("jsonl", JSONL, open("docs.jsonl", "rb").read())
seed("jsonl_gz", JSONL, open("docs.jsonl", "rb").read(), gz=True)
seed("jsonl_bad_line", JSONL, open("bad_line.jsonl", "rb").read())
seed("jsonl_not_object", JSONL, open("not_object.jsonl", "rb").read())
seed("u16", U16, small.astype("<u2").tobytes())
seed("u32", U32, small.astype("<u4").tobytes())
seed("u32_odd", U32, small.astype("<u4").tobytes()[:-1])
seed("npy_u2", NPY, npy_bytes(small.astype("<u2")))
seed("npy_i8_2d", NPY, npy_bytes(small.reshape(4, 16).astype("<i8")))
seed("npy_v2", NPY, npy_bytes(small.astype("<i2"), (2, 0)))
seed("npy_v3", NPY, npy_bytes(small.astype("<u1"), (3, 0)))
for name in ["truncated", "fortran", "bigendian", "float", "object", "negative", "bad_dict", "extra_key"]:
    seed("npy_" + name, NPY, open(name + ".npy", "rb").read())
seed("npz_two", NPZ, npz_bytes(True, attention_mask=np.ones(64, "u1"), input_ids=small.astype("<u4")))
seed("npz_single", NPZ, npz_bytes(False, x=small.astype("<i4")))
seed("npz_ambiguous", NPZ, open("ambiguous.npz", "rb").read())
