#!/usr/bin/env python3
"""make_calib_fixtures.py : token-file fixtures for the `calib` suite, written
by numpy (an independent .npy/.npz writer). Each array's ids are also written
as raw little-endian uint32 (<name>.expect.u32) for the comparison.

    cd tests/data/calib && python3 make_calib_fixtures.py
"""
import json

import numpy as np

rng = np.random.default_rng(7)
ids = rng.integers(3, 500, size=3000)


def expect(name, a):
    np.asarray(a, np.uint32).ravel().tofile(f"{name}.expect.u32")


np.save("u2.npy", ids.astype("<u2"))
expect("u2", ids)
np.save("i4.npy", ids[:2048].astype("<i4"))
expect("i4", ids[:2048])
np.save("i8_2d.npy", ids[:2400].reshape(4, 600).astype("<i8"))
expect("i8_2d", ids[:2400])
np.savez_compressed("two.npz", input_ids=ids[:1500].astype("<u4"), attention_mask=np.ones(1500, "u1"))
expect("two", ids[:1500])
np.savez("single.npz", whatever=ids[:1000].astype("<i4"))
expect("single", ids[:1000])
ids[:1200].astype("<u2").tofile("raw.u16")
expect("raw", ids[:1200])
# malformed
np.save("fortran.npy", np.asfortranarray(ids[:100].reshape(10, 10).astype("<u2")))
np.save("bigendian.npy", ids[:100].astype(">u2"))
np.save("float.npy", ids[:100].astype("<f4"))
with open("u2.npy", "rb") as f:
    good = f.read()
with open("truncated.npy", "wb") as f:
    f.write(good[:40])
with open("short_data.npy", "wb") as f:
    f.write(good[:-10])
np.save("negative.npy", np.array([5, 6, -1, 7], "<i4"))
with open("docs.jsonl", "w") as f:
    for t in ["Once upon a time, there was a cat.", "", "The dog ran to the park. It was happy!",
              "Lily said, \"hi\"."]:
        f.write(json.dumps({"id": 1, "text": t}) + "\n" if t else "\n")
with open("bad_line.jsonl", "w") as f:
    f.write(json.dumps({"text": "fine"}) + "\n" + json.dumps({"title": "no text"}) + "\n")
