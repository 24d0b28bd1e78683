#!/usr/bin/env python3
"""An independent oracle for libquant's entropy (KL) calibrator.

NVIDIA's threshold search (pytorch-quantization / ModelOpt
`_compute_amax_entropy`, REFERENCE.md 6.2) written again here from its
description, in the literal form of the original: numpy.digitize over
linspace(0, i, 129) edges, a count of the non-empty bins per level (the original's Counter), P with the
outliers folded into the last bin, scipy-style normalised KL without
smoothing, and the LAST minimum. When ModelOpt (or pytorch-quantization) is
importable, its own function is run on the same histograms as well.

  entropy_oracle.py make-fixtures OUT.json [DUMP.json ...]
      seeded random histograms plus every histogram of the lq-calib
      --dump-hist files given (kind "real"), each with the oracle's bin
  entropy_oracle.py check DUMP.json ...
      the oracle's bin against the C search's (run `lq-calib --dump-hist`;
      the bin lq-calib printed comes from the same histograms)

The chosen bin i means amax = i * width. Exit 1 on a disagreement between
the oracle and NVIDIA's own code."""
import json
import math
import sys

import numpy as np


def nvidia_literal(counts, num_bits=8, unsigned=False, stride=1, start_bin=128):
    bins = np.array(counts, dtype=np.int64).copy()
    bins[0] = bins[1]
    total = int(np.sum(bins))
    nbins = 1 << (num_bits - 1 + int(unsigned))
    div = []
    for i in range(start_bin, len(bins) + 1, stride):
        space = np.linspace(0, i, num=nbins + 1)
        dig = np.digitize(range(i), space) - 1
        dig[bins[:i] == 0] = -1
        ok = dig != -1
        dens = np.bincount(dig[ok], weights=bins[:i][ok].astype(np.float64), minlength=nbins)
        per = np.bincount(dig[ok], minlength=nbins)  # Counter of the non-empty bins per level
        dens = np.where(per > 0, dens / np.maximum(per, 1), 0.0)
        q = np.zeros(i, dtype=np.float64)
        q[ok] = dens[dig[ok]]
        p = np.array(bins[:i], dtype=np.float64)
        p[-1] += np.sum(bins[i:])
        assert round(np.sum(q) + np.sum(bins[i:])) == total and round(np.sum(p)) == total
        p = p / p.sum()
        q = q / q.sum() if q.sum() > 0 else q
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(p > 0, np.where(q > 0, p * np.log(p / q), np.inf), 0.0)
        div.append(float(np.sum(terms)))
    div = np.array(div)
    last = len(div) - 1 - int(np.argmin(div[::-1]))
    return start_bin + last * stride


def nvidia_own(counts):
    """ModelOpt's (or pytorch-quantization's) own function, or None."""
    fn = None
    try:
        from modelopt.torch.quantization.calib.histogram import _compute_amax_entropy as fn  # noqa
    except Exception:
        try:
            from pytorch_quantization.calib.histogram import _compute_amax_entropy as fn  # noqa
        except Exception:
            return None
    edges = np.arange(len(counts) + 1, dtype=np.float64)  # width 1: amax == the bin index
    amax = fn(np.array(counts, dtype=np.int64), edges, 8, False, 1, 128)
    return int(round(float(amax)))


def random_cases(n_cases=24, seed=7):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_cases):
        n = int(rng.choice([256, 512, 1024, 2048]))
        shape = k % 4
        x = np.arange(n) / n
        if shape == 0:
            c = rng.poisson(1e4 * np.exp(-x * rng.uniform(3, 20)))
        elif shape == 1:
            c = rng.poisson(50.0, n) * (rng.random(n) < 0.2)
        elif shape == 2:
            c = rng.poisson(2e3 / (1 + np.arange(n)))
        else:
            g = np.abs(rng.standard_normal(200000)) * rng.uniform(0.5, 2)
            c, _ = np.histogram(g, bins=n, range=(0, g.max()))
        c = np.asarray(c, dtype=np.int64)
        c[1] += 1
        out.append({"name": f"random-{k}", "kind": "random", "counts": c.tolist()})
    return out


def real_cases(paths):
    out = []
    for p in paths:
        for h in json.load(open(p)):
            if h.get("n_bins", 0) >= 128:
                out.append({"name": h["name"], "kind": "real", "counts": h["counts"]})
    return out


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("make-fixtures", "check"):
        print(__doc__)
        return 2
    bad = 0
    own_used = 0
    if sys.argv[1] == "make-fixtures":
        cases = random_cases() + real_cases(sys.argv[3:])
    else:
        cases = real_cases(sys.argv[2:])
    for c in cases:
        c["oracle_bin"] = nvidia_literal(c["counts"])
        own = nvidia_own(c["counts"])
        if own is not None:
            own_used += 1
            c["nvidia_bin"] = own
            if own != c["oracle_bin"]:
                bad += 1
                print(f"DISAGREE {c['name']}: oracle {c['oracle_bin']} NVIDIA {own}", file=sys.stderr)
        print(f"{c['name']:50s} {c['kind']:6s} bins {len(c['counts']):5d} -> {c['oracle_bin']}"
              + (f" (NVIDIA's own: {c['nvidia_bin']})" if "nvidia_bin" in c else ""))
    print(f"{len(cases)} histograms; NVIDIA's own code {'ran on ' + str(own_used) if own_used else 'not importable'}; "
          f"{bad} disagreements", file=sys.stderr)
    if sys.argv[1] == "make-fixtures":
        json.dump({"generator": "tests/interop/entropy_oracle.py", "cases": cases}, open(sys.argv[2], "w"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
