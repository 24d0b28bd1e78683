#!/usr/bin/env python3
"""qformat_check.py : check a GPTQ or compressed-tensors directory written by
libquant (lq_qformat_write_dir) against the f32 weights it should dequantize to.

usage: qformat_check.py QDIR REF.safetensors [--loaders numpy,ct,gptqmodel,hf]
                        [--tokens 1,403,407,261,378]

QDIR    the quantized model directory (config.json with quantization_config,
        model.safetensors or shards, for GPTQ also quantize_config.json).
REF     a safetensors file with the dense f32 state dict: every quantized
        Linear as its dequantized weight (w = s * (u - z), or s * e4m3 for fp8),
        every other tensor as written.

Loaders (each skipped with a note when its package is missing):
  numpy      an independent unpacker written from the published rules (no
             torch): GPTQ qweight/qzeros as dense LSB-first bit streams along
             the input / output dimension (v1 zero points + 1), g_idx groups;
             compressed-tensors weight_packed rows, weight_zero_point packed
             along dim 0, weight_g_idx groups, fp8 e4m3 decoded from its bit
             fields. Act-order files (a g_idx that is not k // G) are
             dequantized the transformers way,
             w[:, k] = scales[g_idx[k]] * (q[:, k] - zeros[g_idx[k]]), and
             must say so in the config (GPTQ desc_act true for the module,
             globally or through a `dynamic` override; compressed-tensors
             actorder "group"), since vLLM ignores g_idx otherwise. Must
             match REF exactly (the products are exact in f32).
  ct         compressed-tensors itself: QuantizationConfig.model_validate on
             our quantization_config (pydantic, extra keys forbidden), the
             module's scheme by compressed_tensors.utils.match.match_name,
             and the registered compressor's decompress().
  gptqmodel  GPTQModel.load(QDIR, backend=TORCH, device=cpu): its config
             parser (dynamic overrides, v1 -> v2 conversion) and
             TorchQuantLinear.dequantize_weight() per module, then a forward
             pass compared with the dense REF model.
  hf         transformers AutoModelForCausalLM with compressed-tensors
             (dequantize on load), weights and a forward pass against REF.
Exit status 0 when every check that ran passed.
"""
import argparse
import json
import os
import re
import struct
import sys

import numpy as np

FAILS = []


def report(ok, what, detail=""):
    print(("PASS  " if ok else "FAIL  ") + what + (f"  ({detail})" if detail else ""))
    if not ok:
        FAILS.append(what)


# ---- a small safetensors reader (numpy only) ----

def e4m3_table():
    t = np.zeros(256, dtype=np.float32)
    for v in range(256):
        s = -1.0 if v & 0x80 else 1.0
        e, m = (v >> 3) & 0xF, v & 7
        if e == 0xF and m == 7:
            t[v] = np.nan
        elif e == 0:
            t[v] = s * (m / 8.0) * 2.0 ** -6
        else:
            t[v] = s * (1 + m / 8.0) * 2.0 ** (e - 7)
    return t


E4M3 = e4m3_table()
NP_DTYPES = {"F32": "<f4", "F16": "<f2", "I32": "<i4", "I64": "<i8", "I8": "i1", "U8": "u1", "I16": "<i2",
             "F64": "<f8", "BF16": "<u2", "F8_E4M3": "u1"}


def read_safetensors(path):
    """name -> (dtype string, numpy array); BF16 and F8_E4M3 decoded to f32 as well (key + '#f32')"""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        dt = info["dtype"]
        arr = np.frombuffer(data[b:e], dtype=NP_DTYPES[dt]).reshape(info["shape"])
        out[name] = (dt, arr)
    return out


def as_f32(dt, arr):
    if dt == "BF16":
        return (arr.astype(np.uint32) << 16).view(np.float32)
    if dt == "F8_E4M3":
        return E4M3[arr]
    return arr.astype(np.float32)


def read_dir(qdir):
    idx = os.path.join(qdir, "model.safetensors.index.json")
    if os.path.exists(idx):
        files = sorted(set(json.load(open(idx))["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    t = {}
    for f in files:
        t.update(read_safetensors(os.path.join(qdir, f)))
    return t


# ---- independent unpacker ----

def unpack_rows(words, b, n):
    """(R, W) 32-bit words, each row a dense LSB-first stream -> (R, n) codes"""
    w = np.ascontiguousarray(words.astype("<u4"))
    by = w.view(np.uint8).reshape(w.shape[0], -1)
    bits = np.unpackbits(by, axis=1, bitorder="little")[:, : n * b].reshape(w.shape[0], n, b)
    return (bits.astype(np.int64) << np.arange(b)).sum(-1)


def gptq_module_params(q, name):
    bits, group, sym, skip = q["bits"], q["group_size"], q.get("sym", True), False
    desc = q.get("desc_act", False)
    for pat, ov in (q.get("dynamic") or {}).items():
        neg = pat.startswith("-:")
        p = pat[2:] if pat[:2] in ("-:", "+:") else pat
        if re.match(p, name):
            if neg:
                skip = True
            else:
                bits, group, sym = ov.get("bits", bits), ov.get("group_size", group), ov.get("sym", sym)
                desc = ov.get("desc_act", desc)
            break
    return bits, group, sym, skip, desc


def act_order_note(what, n_act, n_bad):
    """report the act-order modules seen and those whose config would make vLLM drop g_idx"""
    if n_act or n_bad:
        report(n_bad == 0, f"{what}: {n_act} act-order module(s) declared in the config",
               f"{n_bad} with a g_idx that is not k // G but desc_act false / no actorder \"group\"" if n_bad else "")


def numpy_gptq(q, t):
    v1 = q.get("checkpoint_format", q.get("format", "gptq")) == "gptq"
    out, n_act, n_bad = {}, 0, 0
    for key in t:
        if not key.endswith(".qweight"):
            continue
        mod = key[: -len(".qweight")]
        bits, group, sym, skip, desc = gptq_module_params(q, mod)
        assert not skip, f"{mod}: dynamic says -: but a qweight exists"
        qw = t[key][1]
        qz = t[mod + ".qzeros"][1]
        sdt, sc = t[mod + ".scales"]
        sc = as_f32(sdt, sc)
        K, N = qw.shape[0] * 32 // bits, qw.shape[1]
        plain = np.arange(K) // (group if group > 0 else K)
        gidx = t[mod + ".g_idx"][1].astype(np.int64) if mod + ".g_idx" in t else plain
        if not np.array_equal(gidx, plain):
            n_act += 1
            n_bad += not desc
        codes = unpack_rows(qw.T, bits, K)                     # [N, K]
        zeros = unpack_rows(qz, bits, N) + (1 if v1 else 0)    # [G, N]
        # transformers / GPTQModel: w[:, k] = scales[g_idx[k]] * (q[:, k] - zeros[g_idx[k]])
        w = sc[gidx].T.astype(np.float64) * (codes - zeros[gidx].T)
        out[mod + ".weight"] = w.astype(np.float32)
    act_order_note("GPTQ g_idx", n_act, n_bad)
    return out


def ct_scheme_for(q, name):
    for ign in q.get("ignore") or []:
        if (ign.startswith("re:") and re.match(ign[3:], name)) or ign == name:
            return None
    groups = list((q.get("config_groups") or {}).values())
    for kind in ("name", "re", "class"):
        for g in groups:
            for tg in g["targets"]:
                if kind == "name" and tg == name or kind == "re" and tg.startswith("re:") and re.match(tg[3:], name) \
                        or kind == "class" and tg == "Linear":
                    return g
    return None


def numpy_ct(q, t):
    out, n_act, n_bad = {}, 0, 0
    mods = {k[: -len(".weight_scale")] for k in t if k.endswith(".weight_scale")}
    for mod in sorted(mods):
        g = ct_scheme_for(q, mod)
        assert g is not None, f"{mod}: has weight_scale but no scheme"
        wa = g["weights"]
        sdt, sc = t[mod + ".weight_scale"]
        sc = as_f32(sdt, sc).astype(np.float64)
        if wa.get("type", "int") == "float":
            dt, w = t[mod + ".weight"]
            assert dt == "F8_E4M3"
            out[mod + ".weight"] = (as_f32(dt, w) * sc.reshape(-1, 1) if sc.size > 1 else as_f32(dt, w) * sc.item()).astype(np.float32)
            continue
        b = wa["num_bits"]
        N, K = (int(x) for x in t[mod + ".weight_shape"][1])
        u = unpack_rows(t[mod + ".weight_packed"][1], b, K)     # [N, K]
        G = sc.shape[1]
        gs = K // G
        if wa.get("symmetric", True):
            z = np.full((N, G), 1 << (b - 1))
        else:
            z = unpack_rows(t[mod + ".weight_zero_point"][1].T, b, N).T  # stored zp + 2^(b-1)
        k = np.arange(K) // gs
        if mod + ".weight_g_idx" in t:  # actorder "group": column k belongs to group weight_g_idx[k]
            gi = t[mod + ".weight_g_idx"][1].astype(np.int64)
            assert gi.shape == (K,) and gi.min() >= 0 and gi.max() < G, f"{mod}: weight_g_idx out of range"
            if not np.array_equal(gi, k):
                n_act += 1
                n_bad += wa.get("actorder") not in ("group", "dynamic", True)
            k = gi
        out[mod + ".weight"] = (sc[:, k] * (u - z[:, k])).astype(np.float32)
    act_order_note("compressed-tensors weight_g_idx", n_act, n_bad)
    return out


def compare(what, got, ref, exact):
    worst, names = 0.0, 0
    for name, w in got.items():
        r = as_f32(*ref[name])
        if w.shape != r.shape:
            report(False, f"{what}: {name}", f"shape {w.shape} vs {r.shape}")
            return
        d = np.abs(w.astype(np.float64) - r)
        tol = 0 if exact else 2.0 ** -10 * np.abs(r) + 1e-6  # f16 arithmetic in the loader
        if np.any(d > tol):
            i = np.unravel_index(np.argmax(d - tol), d.shape)
            report(False, f"{what}: {name}", f"max |diff| {d.max():.3g} at {i}: {w[i]} vs {r[i]}")
            return
        worst = max(worst, float(d.max()) if d.size else 0.0)
        names += 1
    report(names > 0, f"{what}: {names} modules", f"max |diff| {worst:.3g}{' (bit-exact)' if worst == 0 else ''}")


# ---- real loaders ----

def check_ct(q, t, ref):
    try:
        import torch
        from compressed_tensors import __version__ as ctv
        from compressed_tensors.compressors import BaseCompressor
        from compressed_tensors.quantization import QuantizationConfig
        from compressed_tensors.utils.match import match_name
    except ImportError as e:
        print(f"SKIP  compressed-tensors: {e}")
        return
    act = any((g.get("weights") or {}).get("actorder") == "group" for g in (q.get("config_groups") or {}).values())
    try:
        cfg = QuantizationConfig.model_validate(q)
    except Exception as e:  # noqa: BLE001 (a refusal is a result)
        if act:  # compressed-tensors#840 (0.20) removed actorder "group"; older versions and vLLM load it
            print(f"XFAIL compressed-tensors {ctv}: refuses actorder \"group\" ({str(e).splitlines()[0][:160]})")
            return
        raise
    report(True, f"compressed-tensors {ctv}: QuantizationConfig.model_validate accepted the config",
           f"format {cfg.format}, {len(cfg.config_groups)} group(s), ignore {len(cfg.ignore or [])}")

    def tt(name):
        dt, a = t[name]
        if dt == "BF16":
            return torch.from_numpy(a.astype(np.int16)).view(torch.bfloat16)
        if dt == "F8_E4M3":
            return torch.from_numpy(a.copy()).view(torch.float8_e4m3fn)
        return torch.from_numpy(a.copy())

    got = {}
    mods = sorted({k.rsplit(".", 1)[0] for k in t if k.endswith(".weight_scale")})
    for mod in mods:
        assert not any(match_name(mod, i) for i in (cfg.ignore or [])), mod
        scheme = None
        for g in cfg.config_groups.values():  # names and regexes first, then the class
            if any(match_name(mod, tg) for tg in g.targets):
                scheme = g
                break
        if scheme is None:
            scheme = next(g for g in cfg.config_groups.values() if "Linear" in g.targets)
        fmt = scheme.format or cfg.format
        fmt = getattr(fmt, "value", fmt)
        comp = BaseCompressor.get_value_from_registry(fmt)
        sd = {k[len(mod) + 1:]: tt(k) for k in t if k.startswith(mod + ".") and "." not in k[len(mod) + 1:]}
        w = comp.decompress(sd, scheme)["weight"]
        got[mod + ".weight"] = w.float().numpy()
    # decompress() returns the scale dtype (f16 arithmetic): within an f16 rounding of REF
    compare(f"compressed-tensors {ctv} decompress()", got, ref, exact=False)


def dense_model(qdir, ref_path):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    cfg = json.load(open(os.path.join(qdir, "config.json")))
    cfg.pop("quantization_config", None)
    conf = AutoConfig.for_model(**cfg)
    m = AutoModelForCausalLM.from_config(conf, torch_dtype=torch.float32)
    sd = {k: torch.from_numpy(as_f32(*v).copy()) for k, v in read_safetensors(ref_path).items()}
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert not unexpected, unexpected
    assert all("lm_head" in k or "rotary" in k for k in missing), missing
    if cfg.get("tie_word_embeddings"):
        m.tie_weights()
    return m.eval()


def compare_logits(what, model, dense, tokens):
    import torch
    ids = torch.tensor([tokens])
    with torch.no_grad():
        a = model(ids).logits.float()
        b = dense(ids).logits.float()
    d = (a - b).abs().max().item()
    scale = b.abs().max().item()
    same_argmax = bool((a.argmax(-1) == b.argmax(-1)).all())
    report(d <= 2e-2 * scale and same_argmax, f"{what}: logits vs dense REF over {len(tokens)} tokens",
           f"max |diff| {d:.3g} of max |logit| {scale:.3g}, argmax {'equal' if same_argmax else 'differs'}")


def check_gptqmodel(qdir, ref, ref_path, tokens):
    try:
        import torch
        from gptqmodel import BACKEND, GPTQModel
        from gptqmodel import __version__ as gv
    except ImportError as e:
        print(f"SKIP  gptqmodel: {e}")
        return
    q = json.load(open(os.path.join(qdir, "config.json")))["quantization_config"]
    try:
        # float16: the dtype of GPTQ scales (on CPU GPTQModel would pick bfloat16 and round them)
        m = GPTQModel.load(qdir, device="cpu", backend=BACKEND.TORCH, dtype=torch.float16)
    except ValueError as e:
        if q.get("checkpoint_format") == "gptq" and not q.get("sym", True) and "sym=False" in str(e):
            # GPTQModel's policy: v1 zero points of asymmetric checkpoints are trusted only from
            # gptqmodel >= 0.9 (older AutoGPTQ wrapped z = 0 to 2^b); libquant writes asymmetric v1
            # correctly (refusing z = 0) but does not claim to be gptqmodel. Use gptq_v2.
            print(f"XFAIL GPTQModel {gv}: refuses sym=False gptq (v1) from other producers: {e}")
            return
        raise
    got = {}
    for name, mod in m.model.named_modules():
        if hasattr(mod, "dequantize_weight") and hasattr(mod, "qweight"):
            got[name + ".weight"] = mod.dequantize_weight().T.float().numpy()
    compare(f"GPTQModel {gv} dequantize_weight()", got, ref, exact=False)
    # modules the config leaves plain must load as plain Linear
    plain = [n for n, mod in m.model.named_modules() if type(mod).__name__ == "Linear" and n != "lm_head"]
    expect = sorted(k[: -len(".weight")] for k, (dt, a) in ref.items()
                    if a.ndim == 2 and "_proj" in k and k[: -len(".weight")] + ".weight" not in got)
    report(sorted(plain) == expect, f"GPTQModel {gv}: modules left plain", f"{len(plain)}: {', '.join(plain[:3])}...")
    compare_logits(f"GPTQModel {gv}", m.model.float(), dense_model(qdir, ref_path), tokens)


def check_hf_ct(q, qdir, ref, ref_path, tokens):
    """transformers' two load paths: compressed (compressed-tensors applies each module's scheme and
    decompresses on the first forward) and dequantize-on-load. Known limits of transformers 5.23 with
    compressed-tensors 0.20, reported as XFAIL: the compressed path registers weight_zero_point unpacked
    ([N, G]; the meta-device compress() does not pack it) and so refuses every asymmetric checkpoint,
    packed [ceil(N*b/32), G] as compress() itself, vLLM and llm-compressor write it; the dequantize path
    applies the first config group to every dense module (get_dense_scheme), so it refuses mixed schemes."""
    try:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, CompressedTensorsConfig
    except ImportError as e:
        print(f"SKIP  transformers: {e}")
        return
    tv = transformers.__version__
    groups = list(q["config_groups"].values())
    asym = any(not (g.get("weights") or {}).get("symmetric", True) for g in groups)
    errors = []
    for path in ("compressed", "dequantize"):
        try:
            kw = {} if path == "compressed" else {"quantization_config": CompressedTensorsConfig(run_compressed=False)}
            m = AutoModelForCausalLM.from_pretrained(qdir, torch_dtype=torch.float32, **kw).eval()
            with torch.no_grad():
                m(torch.tensor([tokens[:2]]))  # the compressed path decompresses on the first forward
        except Exception as e:  # noqa: BLE001 (a loader failure is a result)
            errors.append(f"{path}: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
            continue
        sd = m.state_dict()
        got = {k: sd[k].float().numpy() for k in ref if k in sd and k.endswith("_proj.weight")}
        compare(f"transformers {tv} + compressed-tensors, {path} load (all Linear)", got, ref, exact=False)
        compare_logits(f"transformers {tv}, {path} load", m, dense_model(qdir, ref_path), tokens)
        return
    known = asym and len(groups) > 1
    act = any((g.get("weights") or {}).get("actorder") == "group" for g in groups)
    if act:
        print(f"XFAIL transformers {tv}: compressed-tensors without actorder \"group\" ({'; '.join(errors)})")
    elif known:
        print(f"XFAIL transformers {tv}: no load path takes an asymmetric mixed-scheme checkpoint ({'; '.join(errors)})")
    else:
        report(False, f"transformers {tv} load", "; ".join(errors))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("qdir")
    ap.add_argument("ref")
    ap.add_argument("--loaders", default="numpy,ct,gptqmodel,hf")
    ap.add_argument("--tokens", default="1,403,407,261,378,385,328,432,261,280")
    a = ap.parse_args()
    loaders = set(a.loaders.split(","))
    tokens = [int(x) for x in a.tokens.split(",")]
    cfg = json.load(open(os.path.join(a.qdir, "config.json")))
    q = cfg.get("quantization_config")
    if not q:
        sys.exit(f"{a.qdir}: config.json has no quantization_config")
    ref = read_safetensors(a.ref)
    t = read_dir(a.qdir)
    method = q.get("quant_method")
    print(f"{a.qdir}: quant_method {method}, {len(t)} tensors; reference {a.ref}: {len(ref)} tensors")
    if method == "gptq":
        qc = os.path.join(a.qdir, "quantize_config.json")
        if os.path.exists(qc):
            report(json.load(open(qc)) == q, "quantize_config.json equals config.json quantization_config")
        if "numpy" in loaders:
            compare("numpy unpacker (GPTQ rules)", numpy_gptq(q, t), ref, exact=True)
        if "gptqmodel" in loaders:
            check_gptqmodel(a.qdir, ref, a.ref, tokens)
    elif method == "compressed-tensors":
        if "numpy" in loaders:
            compare("numpy unpacker (compressed-tensors rules)", numpy_ct(q, t), ref, exact=True)
        if "ct" in loaders:
            check_ct(q, t, ref)
        if "hf" in loaders:
            check_hf_ct(q, a.qdir, ref, a.ref, tokens)
    else:
        sys.exit(f"quant_method {method!r} is not gptq or compressed-tensors")
    print(f"{len(FAILS)} failure(s)")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
