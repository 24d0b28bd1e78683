#!/usr/bin/env python3
"""gptq_oracle.py : an independent GPTQ for one Linear, in numpy float64,
written from ../shared/docs/REFERENCE.md section 6.1 (the IST-DASLab
formulation: torch.linalg.cholesky -> cholesky_inverse -> cholesky(upper),
lazy batches, the group refit from the outer W) with libquant's integer rule
(libquant/core/lq_qtypes.h: float32 arithmetic, round half to even, the
scale rounded to float16 before use). No code of libquant or of any GPTQ
project is used.

    gptq(W, H, bits, group, sym, act_order=False, static_groups=False,
         mse=False, damp=0.01, block=128)
      -> codes (R x C uint8, original column order), scales (R x n_groups
         float32), zeros (R x n_groups uint8), g_idx (C int32), loss
"""
import numpy as np

f32 = np.float32


def _round_scale(s):
    h = np.float16(s)  # round to nearest even
    if h == 0:
        h = np.frombuffer(np.uint16(1).tobytes(), np.float16)[0]  # smallest subnormal
    if not np.isfinite(h):
        h = np.float16(65504.0)
    return f32(h)


def _params(x, bits, sym, r=f32(1.0)):
    """scale, zero of the float32 values x shrunk by r (lq rule)"""
    qmax = (1 << bits) - 1
    lo = min(f32(x.min()), f32(0))
    hi = max(f32(x.max()), f32(0))
    amax = f32(np.abs(x).max())
    if sym:
        s = f32(1) if amax == 0 else _round_scale(f32(f32(amax * r) / f32(qmax * 0.5)))
        return s, 1 << (bits - 1)
    if lo == hi:
        return f32(1), 0
    lr, hr = f32(lo * r), f32(hi * r)
    s = _round_scale(f32(f32(hr - lr) / f32(qmax)))
    z = np.rint(f32(-lr / s))
    return s, int(min(max(z, 0), qmax))


def _quant(x, s, z, bits):
    """codes and float32 values of float32 x"""
    qmax = (1 << bits) - 1
    u = np.clip(np.rint(f32(x) / s) + f32(z), 0, qmax).astype(np.int64)
    return u, (s * (u - z).astype(f32)).astype(f32)


def _fit(x64, bits, sym, mse):
    x = x64.astype(f32)
    s, z = _params(x, bits, sym)
    if mse:
        best = np.inf
        for i in range(80):
            r = f32(f32(100 - i) / f32(100))
            si, zi = _params(x, bits, sym, r)
            _, q = _quant(x, si, zi, bits)
            e = np.sum(np.abs(q.astype(np.float64) - x.astype(np.float64)) ** 2.4)
            if e < best:
                best, s, z = e, si, zi
    return s, z


def _damping(damp, k, maxd):
    if k < 6:
        return damp + 0.01 * k, 0.0
    if k < 12:
        return damp + 0.05, 1e-6 * maxd * 10.0 ** (k - 6)
    return None


def gptq(W, H, bits, group, sym, act_order=False, static_groups=False, mse=False, damp=0.01, block=128):
    W = W.astype(np.float64).copy()
    H = H.astype(np.float64).copy()
    R, C = W.shape
    G = C if group <= 0 else group
    ng = (C + G - 1) // G
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    static = static_groups and group > 0
    ss = np.zeros((R, ng), f32)
    zz = np.zeros((R, ng), np.int64)
    if static:
        for r in range(R):
            for g in range(ng):
                ss[r, g], zz[r, g] = _fit(W[r, g * G:(g + 1) * G], bits, sym, mse)
    perm = np.arange(C)
    if act_order:
        perm = np.argsort(-np.diag(H), kind="stable")
        W = W[:, perm]
        H = H[perm][:, perm]
    mean, maxd = np.mean(np.diag(H)), np.max(np.abs(np.diag(H)))
    U = None
    k = 0
    while U is None:
        d = _damping(damp, k, maxd)
        if d is None:
            raise np.linalg.LinAlgError("singular")
        rel, add = d
        Hd = H + np.eye(C) * (rel * mean + add)
        try:
            L = np.linalg.cholesky(Hd)
            Linv = np.linalg.inv(L)
            Hinv = Linv.T @ Linv
            U = np.linalg.cholesky(Hinv).T
        except np.linalg.LinAlgError:
            U = None
            k += 1
    codes = np.zeros((R, C), np.uint8)
    g_idx = np.zeros(C, np.int32)
    loss = 0.0
    for i1 in range(0, C, block):
        i2 = min(i1 + block, C)
        W1 = W[:, i1:i2].copy()
        E1 = np.zeros_like(W1)
        for i in range(i2 - i1):
            col = i1 + i
            d = U[col, col]
            if static:
                g = (perm[col] if act_order else col) // G
            else:
                g = col // G
                if col % G == 0:
                    for r in range(R):
                        ss[r, g], zz[r, g] = _fit(W[r, col:col + G], bits, sym, mse)
            x = W1[:, i]
            u = np.zeros(R, np.int64)
            q = np.zeros(R, np.float64)
            for r in range(R):
                ur, qr = _quant(np.array([x[r]]), ss[r, g], zz[r, g], bits)
                u[r], q[r] = ur[0], float(qr[0])
            codes[:, perm[col]] = u
            g_idx[perm[col]] = g
            loss += float(np.sum((x - q) ** 2 / d ** 2 / 2))
            err = (x - q) / d
            W1[:, i + 1:] -= np.outer(err, U[col, col + 1:i2])
            E1[:, i] = err
        W[:, i2:] -= E1 @ U[i1:i2, i2:]
    return codes, ss, zz.astype(np.uint8), g_idx, loss
