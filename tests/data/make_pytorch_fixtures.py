#!/usr/bin/env python3
"""make_pytorch_fixtures.py : writes the PyTorch .bin fixtures of tests/data/pytorch/.

Uses PyTorch itself (an independent implementation) to write small torch.save()
zips, plus hand-made hostile archives, and records what a correct reader must
see in expected.json: for every tensor its name, dtype, shape, alias index and
the sha256 of its contiguous little-endian bytes; for every hostile file the
status and a fragment of the error message.

Nothing here ever loads a pickle: the malicious data.pkl is produced with
pickle.dumps() (which runs no reduce callable) and only written to disk.

Usage: python3 tests/data/make_pytorch_fixtures.py [outdir [corpusdir]]
       (defaults: tests/data/pytorch and tests/fuzz/corpus/pytorch)
The fuzz seeds are a few fixtures as they are plus, in the "LQPK" form of
tests/fuzz/fuzz_pytorch.c, their data.pkl with the storage sizes.
"""
import hashlib
import io
import json
import os
import pickle
import struct
import sys
import zipfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "pytorch")
CORPUS = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "..", "fuzz", "corpus", "pytorch")

DTYPE_NAME = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


def values(shape, dtype, salt=0.0):
    """deterministic, RNG-free values of `shape` converted to `dtype`"""
    n = 1
    for d in shape:
        n *= d
    x = torch.arange(n, dtype=torch.float64)
    if dtype == torch.bool:
        t = (torch.remainder(x * 7 + salt, 3) == 0)
    elif dtype.is_floating_point:
        t = (torch.sin(x * 0.37 + salt) * 3.0).to(dtype)
    else:
        t = (torch.remainder(x * 37 + salt, 251) - 120).to(dtype)
    return t.reshape(shape)


def le_bytes(t):
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    a = t.numpy()
    if a.dtype.byteorder == ">":
        a = a.byteswap()
    return a.tobytes()


def describe(sd):
    """tensor entries of a state dict in insertion order, non-tensors skipped"""
    out, seen = [], []
    for name, t in sd.items():
        if not isinstance(t, torch.Tensor):
            continue
        key = (t.storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()))
        alias = -1
        for j, k in enumerate(seen):
            if k == key:
                alias = j
                break
        seen.append(key)
        b = le_bytes(t)
        out.append({"name": name, "dtype": DTYPE_NAME[t.dtype], "shape": list(t.shape), "alias_of": alias,
                    "nbytes": len(b), "sha256": hashlib.sha256(b).hexdigest()})
    return out


expected = []


def save(rel, obj, sd=None, **kw):
    path = os.path.join(OUT, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save(obj, path, **kw)
    expected.append({"file": rel, "tensors": describe(sd if sd is not None else obj)})
    return path


def expect_error(rel, status, fragment):
    expected.append({"file": rel, "error": status, "message": fragment})


def read_zip(path):
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def write_zip(path, entries):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for name, data in entries:
            z.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data)


class Evil:
    """pickles as os.system("echo pwned"); never unpickled here"""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


class EvalEvil:
    def __reduce__(self):
        import builtins
        return (builtins.eval, ("__import__('os').system('echo pwned')",))


def write_corpus():
    """seeds for tests/fuzz/fuzz_pytorch.c"""
    os.makedirs(CORPUS, exist_ok=True)
    for rel in ("tied.bin", "views.bin", "special.bin", "proto4.bin", "malicious.bin"):
        with open(os.path.join(OUT, rel), "rb") as f:
            data = f.read()
        with open(os.path.join(CORPUS, rel), "wb") as f:
            f.write(data)
    for rel in ("dtypes.bin", "tied.bin", "views.bin", "mixed.bin", "proto4.bin", "wrapped_model.bin"):
        entries = dict(read_zip(os.path.join(OUT, rel)))
        top = next(iter(entries)).split("/")[0]
        sizes = []
        while "%s/data/%d" % (top, len(sizes)) in entries:
            sizes.append(len(entries["%s/data/%d" % (top, len(sizes))]))
        seed = b"LQPK" + bytes([len(sizes)]) + b"".join(struct.pack("<I", n) for n in sizes)
        with open(os.path.join(CORPUS, "pkl_" + rel.replace(".bin", ".lqpk")), "wb") as f:
            f.write(seed + entries[top + "/data.pkl"])


def main():
    os.makedirs(OUT, exist_ok=True)

    # every storage class, row-major
    save("dtypes.bin", {
        "f32": values((4, 8), torch.float32),
        "f16": values((3, 5), torch.float16, 1.0),
        "bf16": values((2, 6), torch.bfloat16, 2.0),
        "f64": values((3,), torch.float64, 3.0),
        "i64": values((5,), torch.int64, 4.0),
        "i32": values((2, 2), torch.int32, 5.0),
        "i16": values((3,), torch.int16, 6.0),
        "i8": values((4,), torch.int8, 7.0),
        "u8": values((4,), torch.uint8, 8.0),
        "bool": values((5,), torch.bool, 1.0),
    })

    # tied weights from a real module: OrderedDict with _metadata (BUILD), two names one storage
    class Tied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(6, 4)
            self.norm = torch.nn.LayerNorm(4)
            self.lm_head = torch.nn.Linear(4, 6, bias=False)
            self.lm_head.weight = self.embed.weight
            with torch.no_grad():
                self.embed.weight.copy_(values((6, 4), torch.float32))
                self.norm.weight.copy_(values((4,), torch.float32, 1.0))
                self.norm.bias.copy_(values((4,), torch.float32, 2.0))

    save("tied.bin", Tied().state_dict())

    # views: transpose, row slice with storage offset, column slice, broadcast (zero stride)
    base = values((4, 6), torch.float32)
    row = values((5,), torch.float16, 3.0)
    save("views.bin", {
        "base": base,
        "transposed": base.t(),
        "rows": base[1:3],
        "cols": base[:, 2:5],
        "strided": base[::2, ::3],
        "broadcast": row.expand(3, 5),
        "col_only": values((3, 4), torch.int64)[:, 1],
    })

    # int64, zero-size, scalar
    save("special.bin", {
        "ids": values((7,), torch.int64),
        "empty": torch.zeros((0, 4), dtype=torch.float32),
        "scalar": torch.tensor(2.5, dtype=torch.float32),
        "scalar_i64": torch.tensor(-3, dtype=torch.int64),
    })

    # non-tensor values in the state dict are skipped
    mixed = {"w": values((2, 3), torch.float32), "version": 3, "_metadata": 7, "name": "tiny",
             "config": {"dim": 4}, "pair": (1, 2.5), "flags": [True, None], "b": values((3,), torch.float16)}
    save("mixed.bin", mixed)

    # wrappers
    inner = {"layer.weight": values((3, 4), torch.float32), "layer.bias": values((3,), torch.float32, 1.0)}
    save("wrapped_state_dict.bin", {"state_dict": inner, "epoch": 3}, sd=inner)
    save("wrapped_model.bin", {"model": inner, "optimizer": {"lr": 0.1}}, sd=inner)

    # pickle protocol 4 (FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL)
    save("proto4.bin", {"w": values((2, 5), torch.float32), "h": values((4,), torch.bfloat16, 1.0),
                        "t": values((3, 2), torch.float16).t()}, pickle_protocol=4)

    # a sharded checkpoint with its index
    shards = {
        "pytorch_model-00001-of-00002.bin": {"model.a.weight": values((4, 4), torch.float32),
                                             "model.b.weight": values((2, 4), torch.float16, 1.0)},
        "pytorch_model-00002-of-00002.bin": {"lm_head.weight": values((6, 4), torch.float32, 2.0)},
    }
    weight_map, total = {}, 0
    for fname, sd in shards.items():
        save(os.path.join("sharded", fname), sd)
        for name, t in sd.items():
            weight_map[name] = fname
            total += t.numel() * t.element_size()
    with open(os.path.join(OUT, "sharded", "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2, sort_keys=True)
        f.write("\n")

    # ---- hostile inputs ----
    good = os.path.join(OUT, "dtypes.bin")

    # a valid torch zip whose data.pkl calls os.system (protocol 2: GLOBAL 'posix system')
    entries = read_zip(os.path.join(OUT, "tied.bin"))
    top = entries[0][0].split("/")[0]
    evil2 = pickle.dumps({"embed.weight": Evil()}, protocol=2)
    write_zip(os.path.join(OUT, "malicious.bin"),
              [(n, evil2 if n == top + "/data.pkl" else d) for n, d in entries])
    expect_error("malicious.bin", "FORMAT", "global '%s.system' is not allowed" % os.system.__module__)
    # the same with builtins.eval through STACK_GLOBAL (protocol 4)
    evil4 = pickle.dumps({"embed.weight": EvalEvil()}, protocol=4)
    write_zip(os.path.join(OUT, "malicious_eval.bin"),
              [(n, evil4 if n == top + "/data.pkl" else d) for n, d in entries])
    expect_error("malicious_eval.bin", "FORMAT", "global 'builtins.eval' is not allowed")

    # an opcode outside the state_dict set: INT ('I') at byte 11
    bad = b"\x80\x02}q\x00X\x01\x00\x00\x00aI1\ns."
    write_zip(os.path.join(OUT, "bad_opcode.bin"),
              [(n, bad if n == top + "/data.pkl" else d) for n, d in entries])
    expect_error("bad_opcode.bin", "FORMAT", "opcode 0x49 (INT) is not supported (data.pkl byte 11)")

    # the pre-1.6 format: a raw pickle starting with the magic number
    torch.save({"w": values((2, 2), torch.float32)}, os.path.join(OUT, "legacy.bin"),
               _use_new_zipfile_serialization=False)
    expect_error("legacy.bin", "FORMAT", "legacy (pre-1.6) torch.save format")

    # a TorchScript archive
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), os.path.join(OUT, "torchscript.pt"))
    expect_error("torchscript.pt", "FORMAT", "TorchScript archive, not a state_dict")

    # byteorder records
    entries = read_zip(good)
    top = entries[0][0].split("/")[0]
    write_zip(os.path.join(OUT, "byteorder_big.bin"), entries + [(top + "/byteorder", b"big")])
    expect_error("byteorder_big.bin", "UNSUPPORTED", "big-endian")
    sd_small = {"w": values((2, 3), torch.float32)}
    save("byteorder_little.bin", sd_small)
    entries = read_zip(os.path.join(OUT, "byteorder_little.bin"))
    write_zip(os.path.join(OUT, "byteorder_little.bin"), entries + [(entries[0][0].split("/")[0] + "/byteorder",
                                                                      b"little")])

    # a storage whose size disagrees with its persistent id
    entries = read_zip(os.path.join(OUT, "byteorder_little.bin"))
    write_zip(os.path.join(OUT, "short_storage.bin"),
              [(n, d[:-4] if n.endswith("/data/0") else d) for n, d in entries])
    expect_error("short_storage.bin", "FORMAT", "'w'")

    # central directory entries whose local header offset points outside the file
    for rel, target in (("bad_offset_storage.bin", "/data/0"), ("bad_offset_pkl.bin", "/data.pkl")):
        raw = bytearray(open(os.path.join(OUT, "byteorder_little.bin"), "rb").read())
        eocd = raw.rfind(b"PK\x05\x06")
        n_entries = struct.unpack_from("<H", raw, eocd + 10)[0]
        cd = struct.unpack_from("<I", raw, eocd + 16)[0]
        for _ in range(n_entries):
            assert raw[cd:cd + 4] == b"PK\x01\x02"
            nlen, xlen, clen = struct.unpack_from("<HHH", raw, cd + 28)
            name = bytes(raw[cd + 46:cd + 46 + nlen]).decode()
            if name.endswith(target):
                struct.pack_into("<I", raw, cd + 42, len(raw) + 0x10000)
            cd += 46 + nlen + xlen + clen
        open(os.path.join(OUT, rel), "wb").write(raw)
        expect_error(rel, "FORMAT", "")

    write_corpus()

    doc = {"generator": "tests/data/make_pytorch_fixtures.py", "torch": torch.__version__, "files": expected}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
