#!/usr/bin/env python3
"""Writes the malformed-input corpus into tests/data/bad/ (stdlib only).

Each file breaks exactly one rule of the safetensors format (or of a sharded
index); tests/cli/test_bad_inputs.sh checks that lq-inspect and lq-convert
refuse each with exit 1, a one-line message naming the file, and no output.
The expected message fragment for each file is in bad/EXPECTED.tsv.
Re-run after changing this script: python3 tests/data/make_bad_files.py
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "bad")


def st_bytes(header, data=b"", pad=True, raw_header=None):
    h = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def f32(*vals):
    return struct.pack("<%df" % len(vals), *vals)


GOOD_HDR = {"__metadata__": {"format": "pt"},
            "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
            "b": {"dtype": "F32", "shape": [2], "data_offsets": [24, 32]}}
GOOD_DATA = f32(1, 2, 3, 4, 5, 6) + f32(7, 8)

cases = []  # (file name, bytes, expected message fragment)


def add(name, blob, expect):
    cases.append((name, blob, expect))


good = st_bytes(GOOD_HDR, GOOD_DATA)
add("tiny.safetensors", b"\x05\x00\x00", "too small")
add("truncated.safetensors", good[:-5], "past the end")  # data shorter than offsets
add("header_past_end.safetensors", struct.pack("<Q", 4096) + b'{"a":1}', "runs past the end")
add("header_too_large.safetensors", struct.pack("<Q", 100_000_001) + b"{}" * 8, "over the 100,000,000-byte limit")
add("invalid_json.safetensors", st_bytes(None, b"", raw_header=b'{"a": {"dtype": "F32",}}'), "invalid JSON header")
add("invalid_utf8.safetensors",
    st_bytes(None, f32(1), raw_header=b'{"\xff\xfe":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'), "UTF-8")
add("duplicate_names.safetensors",
    st_bytes(None, f32(1, 2), raw_header=b'{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                                          b'"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'), "duplicate")
add("overlap.safetensors", st_bytes({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, f32(1, 2, 3)),
    "overlap")
add("gap.safetensors", st_bytes({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                  "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}, f32(1, 2, 3)), "hole")
add("leading_gap.safetensors", st_bytes({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, f32(1, 2)),
    "hole")
add("size_mismatch.safetensors", st_bytes({"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}},
                                           b"\0" * 20), "needs 24")
add("shape_overflow.safetensors",
    st_bytes({"a": {"dtype": "F32", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 4]}}, f32(1)),
    "overflows")
add("unknown_dtype.safetensors", st_bytes({"a": {"dtype": "F12", "shape": [1], "data_offsets": [0, 4]}}, f32(1)),
    "unknown dtype")
add("trailing_bytes.safetensors", good + b"\0" * 16, "after the last tensor")
add("metadata_not_string.safetensors",
    st_bytes({"__metadata__": {"format": 1}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, f32(1)),
    "not a string")
add("negative_shape.safetensors",
    st_bytes(None, f32(1), raw_header=b'{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}'),
    "not a non-negative integer")
add("fractional_offset.safetensors",
    st_bytes(None, f32(1), raw_header=b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}}'),
    "not non-negative integers")
add("end_before_begin.safetensors",
    st_bytes({"a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]},
              "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, f32(1)), "data_offsets")
add("not_an_object.safetensors", st_bytes(None, b"", raw_header=b"[1,2,3]"), "not a JSON object")
add("missing_field.safetensors", st_bytes({"a": {"dtype": "F32", "shape": [1]}}, f32(1)), "missing")
add("deep_nesting.safetensors", st_bytes(None, b"", raw_header=b"[" * 1000 + b"]" * 1000), "nesting")
add("subbyte_misaligned.safetensors", st_bytes({"a": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}},
                                               b"\0\0"), "whole bytes")

os.makedirs(OUT, exist_ok=True)
for name, blob, _ in cases:
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(blob)

# sharded directories with a broken index
def shard_dir(name, index, shards, expect):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f)
    for fn, blob in shards.items():
        with open(os.path.join(d, fn), "wb") as f:
            f.write(blob)
    cases.append((name, None, expect))


one = st_bytes({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, f32(1))
two = st_bytes({"b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, f32(2))
shard_dir("index_escape", {"weight_map": {"a": "../tiny.safetensors"}}, {}, "not a plain file name")
shard_dir("index_missing_tensor", {"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors",
                                                  "c": "s2.safetensors"}},
          {"s1.safetensors": one, "s2.safetensors": two}, "lists 3 tensors")
shard_dir("index_wrong_shard", {"weight_map": {"a": "s2.safetensors", "b": "s1.safetensors"}},
          {"s1.safetensors": one, "s2.safetensors": two}, "is listed in")
shard_dir("index_missing_file", {"weight_map": {"a": "s1.safetensors", "b": "nope.safetensors"}},
          {"s1.safetensors": one}, "cannot open")
shard_dir("index_bad_shard", {"weight_map": {"a": "s1.safetensors"}},
          {"s1.safetensors": one[:-1]}, "past the end")

with open(os.path.join(OUT, "EXPECTED.tsv"), "w") as f:
    for name, _, expect in cases:
        f.write("%s\t%s\n" % (name, expect))
print("wrote %d cases into %s" % (len(cases), OUT))
