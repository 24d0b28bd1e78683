#!/usr/bin/env python3
"""make_expected.py : builds the tokenizer fixtures in tests/data/tokenizer/ and
the expected token ids that tests/test_tokenizer.c compares against.

Oracles (independent implementations, none of them ours):
  - Debian's `spm_encode` (sentencepiece 0.1.97) for SentencePiece models;
  - the `tokenizers` Python package (pip install tokenizers; 0.23.3 was used)
    for tokenizer.json files.

Run from the repository root (needs ../shared/data, spm_encode, tokenizers,
unicodedata2 is not needed here):

    python3 tests/data/tokenizer/make_expected.py [SHARED_DATA_DIR]

Writes (all small; see README.md in this directory):
  stress.txt.gz                 400 seeded lines mixing scripts, digits, marks,
                                contractions, emoji, odd whitespace (\\r, U+3000 ...)
  tok512_legacy.json.gz         tokenizer.json files built with `tokenizers` from
  tok512_metaspace.json.gz      tok512.vocab (Llama-2 style: Prepend+Replace
                                normalizer, or a Metaspace pre-tokenizer;
                                byte_fallback; merges derived from the pieces as
                                transformers' SentencePieceExtractor does)
  tok512_ud.model               tok512.model with some pieces retyped USER_DEFINED,
                                UNUSED and CONTROL
  tok512_nofb.model             tok512.model without byte pieces, byte_fallback off,
                                add_dummy_prefix and remove_extra_whitespaces off
  regex_patterns.txt            (committed by hand) the Llama-3 / Qwen2 / o200k split
                                regexes; variants of the GPT-2 tokenizer.json use them
  tests/fuzz/corpus/tokenizer/  seeds for tests/fuzz/fuzz_tokenizer.c: a mode byte
                                (vocab_size / 4) followed by a tokenizer file
  expected/*.ids.gz             one record per input line: "COUNT HASH" where HASH
                                is FNV-1a 32 over the ids as little-endian uint32,
                                followed by " : id id ..." for the first 16 lines
"""
import gzip
import io
import json
import os
import random
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "../../../../shared/data"))
FULL_LINES = 16

TINY = os.path.join(SHARED, "tinystories/tinystories_train_excerpt.txt")
WIKI = os.path.join(SHARED, "wikitext-2/wiki.test.lf.txt")
TOK512 = os.path.join(SHARED, "stories260K/tok512.model")
VOCAB512 = os.path.join(SHARED, "stories260K/tok512.vocab")
GPT2 = os.path.join(SHARED, "lora/gpt2-tigrinya-lora/tokenizer.json")


def fnv32(ids):
    h = 0x811C9DC5
    for i in ids:
        for b in int(i).to_bytes(4, "little"):
            h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def write_expected(name, rows):
    out = io.StringIO()
    for k, ids in enumerate(rows):
        out.write("%d %08x" % (len(ids), fnv32(ids)))
        if k < FULL_LINES:
            out.write(" :" + "".join(" %d" % i for i in ids))
        out.write("\n")
    os.makedirs(os.path.join(HERE, "expected"), exist_ok=True)
    with gzip.GzipFile(os.path.join(HERE, "expected", name), "wb", mtime=0) as f:
        f.write(out.getvalue().encode())
    print("  expected/%s: %d records, %d ids" % (name, len(rows), sum(len(r) for r in rows)))


def write_gz(name, data):
    with gzip.GzipFile(os.path.join(HERE, name), "wb", mtime=0) as f:
        f.write(data)


def read_lines(path):
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def spm_encode(model, path):
    with open(path, "rb") as f:
        out = subprocess.run(["spm_encode", "--model=" + model, "--output_format=id"], stdin=f,
                             capture_output=True, check=True).stdout.decode()
    rows = [[int(x) for x in l.split()] for l in out.split("\n")[:-1]]
    assert len(rows) == len(read_lines(path)), (model, path)
    return rows


def hf_lines(tok, path):
    lines = [l.decode("utf-8") for l in read_lines(path)]
    return [e.ids for e in tok.encode_batch(lines, add_special_tokens=False)]


# ---- protobuf (SentencePiece ModelProto) ----

def varint(b, i):
    x = s = 0
    while True:
        c = b[i]
        i += 1
        x |= (c & 0x7F) << s
        s += 7
        if not c & 0x80:
            return x, i


def fields(b):
    i, out = 0, []
    while i < len(b):
        k, i = varint(b, i)
        f, wt = k >> 3, k & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        else:
            raise ValueError("wire type %d" % wt)
        out.append((f, wt, v))
    return out


def enc_varint(x):
    out = bytearray()
    while True:
        b = x & 0x7F
        x >>= 7
        out.append(b | (0x80 if x else 0))
        if not x:
            return bytes(out)


def serialize(flds):
    out = bytearray()
    for f, wt, v in flds:
        out += enc_varint(f << 3 | wt)
        if wt == 0:
            out += enc_varint(v)
        elif wt == 2:
            out += enc_varint(len(v)) + v
        else:
            out += v
    return bytes(out)


def set_field(flds, f, wt, v):
    flds = [x for x in flds if x[0] != f]
    flds.append((f, wt, v))
    return sorted(flds, key=lambda x: x[0])


def modified_models():
    top = fields(open(TOK512, "rb").read())
    pieces = [fields(v) for f, _, v in top if f == 1]
    trainer = [fields(v) for f, _, v in top if f == 2][0]
    norm = [fields(v) for f, _, v in top if f == 3][0]

    def text(p):
        return [v for f, _, v in p if f == 1][0].decode()

    # USER_DEFINED (4), UNUSED (5), CONTROL (3) retypes
    retype = {"▁Once": 4, "ing": 4, "!": 4, "he": 5, "▁a": 5, "nd": 3, "▁to": 5}
    ud = []
    for p in pieces:
        t = retype.get(text(p))
        ud.append(set_field(p, 3, 0, t) if t else p)
    model_ud = serialize([(1, 2, serialize(p)) for p in ud] + [(2, 2, serialize(trainer)), (3, 2, serialize(norm))])
    # no byte pieces, byte_fallback off, no dummy prefix, keep extra whitespace
    nofb = [p for p in pieces if not re.fullmatch(r"<0x[0-9A-F]{2}>", text(p))]
    tr = set_field(trainer, 35, 0, 0)
    nm = set_field(set_field(norm, 3, 0, 0), 4, 0, 0)
    model_nofb = serialize([(1, 2, serialize(p)) for p in nofb] + [(2, 2, serialize(tr)), (3, 2, serialize(nm))])
    return model_ud, model_nofb


# ---- tokenizer.json fixtures ----

def llama2_style_jsons():
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    pieces = []
    for line in open(VOCAB512, encoding="utf-8"):
        p, s = line.rstrip("\n").split("\t")
        pieces.append((p, float(s)))
    vocab = {p: i for i, (p, _) in enumerate(pieces)}
    merges = []
    for merge, score in pieces:  # transformers' SentencePieceExtractor
        local = [(merge[:k], merge[k:], score) for k in range(1, len(merge))
                 if merge[:k] in vocab and merge[k:] in vocab]
        local.sort(key=lambda x: (vocab[x[0]], vocab[x[1]]))
        merges.extend(local)
    merges.sort(key=lambda m: m[2], reverse=True)
    merges = [(a, b) for a, b, _ in merges]
    out = {}
    for kind in ("legacy", "metaspace"):
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
        if kind == "legacy":
            tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
            tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                             decoders.Strip(" ", 1, 0)])
        else:
            tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
            tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=False)
        tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in ("<unk>", "<s>", "</s>")])
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                           special_tokens=[("<s>", 1)])
        out[kind] = tok.to_str()
    return out


def gpt2_variant(text, pattern, nfc, ignore_merges):
    """the same text surgery as variant_json() in tests/test_tokenizer.c"""
    start = text.index('"pre_tokenizer": {')
    end = text.index("},", start) + 2
    esc = pattern.replace("\\", "\\\\").replace('"', '\\"')
    pre = ('"pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "%s"}, '
           '"behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "add_prefix_space": false, '
           '"trim_offsets": true, "use_regex": false}]},' % esc)
    text = text[:start] + pre + text[end:]
    if nfc:
        text = text.replace('"normalizer": null,', '"normalizer": {"type": "NFC"},', 1)
    if ignore_merges:
        text = text.replace('"ignore_merges": false', '"ignore_merges": true', 1)
    return text


def stress_text():
    rnd = random.Random(7)
    pools = ["abc XYZ", "0123456789", "  \t\r\u00a0\u3000\u2028\u0085", "'s 'S 'T 'Re 'LL 'd 'ſ 'm 'VE 'K",
             "éàüñß ÉÀÜ", "e\u0301a\u0300\u1100\u1161\u11a8\u0344\u0958", "日本語中文한국어", "Привет мир",
             "مرحبا ١٢٣", "😀👍🏽", "!?.,;:-_()[]{}/\\\"", "ǅǈ ʰʲ ⅣⅫ ½² \U0001e030\U00010d50", "<s></s><unk>",
             ["<mask>", " <mask> ", "x<mask>y", "<|endoftext|>", "fox", "foxes", "<mask>fox", "  "]]
    lines = []
    for _ in range(400):
        n = rnd.randint(0, 80)
        lines.append("".join(rnd.choice(rnd.choice(pools)) for _ in range(n)))  # a list pool gives whole strings
    return "".join(l + "\n" for l in lines)


def byte_level_seed(pattern):
    """a tiny byte-level tokenizer.json: every byte character, a few merges,
    added tokens with each flag, NFC, a Split regex and the usual decoders"""
    chars = []
    for b in range(256):
        keep = 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF
        chars.append(chr(b) if keep else None)
    n = 0
    for b in range(256):
        if chars[b] is None:
            chars[b] = chr(256 + n)
            n += 1
    vocab = {c: i for i, c in enumerate(chars)}
    merges = []
    for a, b in [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ġ", "a"), ("i", "n"), ("Ġ", "f"), ("o", "x")]:
        vocab.setdefault(a + b, len(vocab))
        merges.append([a, b])
    added = [{"id": len(vocab) + i, "content": c, "single_word": sw, "lstrip": ls, "rstrip": rs,
              "normalized": nm, "special": sp}
             for i, (c, sw, ls, rs, nm, sp) in enumerate([("<|endoftext|>", False, False, False, False, True),
                                                          ("<mask>", True, True, True, False, True),
                                                          ("fox", False, False, False, True, False)])]
    return json.dumps({"version": "1.0", "added_tokens": added, "normalizer": {"type": "NFC"},
                       "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                           {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
                           {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                            "use_regex": False}]},
                       "post_processor": None,
                       "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                                   "use_regex": True},
                       "model": {"type": "BPE", "dropout": None, "unk_token": None, "byte_fallback": False,
                                 "ignore_merges": True, "vocab": vocab, "merges": merges}},
                      ensure_ascii=False).encode()


def fuzz_seeds(legacy_json, metaspace_json, patterns):
    out = os.path.join(HERE, "../../fuzz/corpus/tokenizer")
    os.makedirs(out, exist_ok=True)
    seeds = {
        "tok512_model": b"\x00" + open(TOK512, "rb").read(),
        "tok512_bin": b"\x80" + open(os.path.join(SHARED, "stories260K/tok512.bin"), "rb").read(),
        "tok512_ud_model": b"\x00" + open(os.path.join(HERE, "tok512_ud.model"), "rb").read(),
        "tok512_nofb_model": b"\x00" + open(os.path.join(HERE, "tok512_nofb.model"), "rb").read(),
        "tok512_legacy_json": b"\x00" + legacy_json,
        "tok512_metaspace_json": b"\x00" + metaspace_json,
        "byte_level_llama3_json": b"\x00" + byte_level_seed(patterns["llama3"]),
        "byte_level_o200k_json": b"\x00" + byte_level_seed(patterns["o200k"]),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print("  fuzz corpus: %d seeds, %d bytes" % (len(seeds), sum(len(d) for d in seeds.values())))


def main():
    from tokenizers import Tokenizer
    print("shared data:", SHARED)
    patterns = {}
    for line in open(os.path.join(HERE, "regex_patterns.txt"), encoding="utf-8"):
        if line.strip() and not line.startswith("#"):
            name, pattern = line.rstrip("\n").split("\t", 1)
            patterns[name] = pattern
    # 1. SentencePiece: spm_encode on tok512.model and two modified models
    write_expected("tok512_tinystories.ids.gz", spm_encode(TOK512, TINY))
    write_expected("tok512_wikitext.ids.gz", spm_encode(TOK512, WIKI))
    stress = stress_text()
    write_gz("stress.txt.gz", stress.encode())
    model_ud, model_nofb = modified_models()
    with open(os.path.join(HERE, "tok512_ud.model"), "wb") as f:
        f.write(model_ud)
    with open(os.path.join(HERE, "tok512_nofb.model"), "wb") as f:
        f.write(model_nofb)
    with tempfile.TemporaryDirectory() as tmp:
        sp = os.path.join(tmp, "stress.txt")
        open(sp, "wb").write(stress.encode())
        write_expected("tok512_stress.ids.gz", spm_encode(TOK512, sp))
        for name in ("ud", "nofb"):
            m = os.path.join(HERE, "tok512_%s.model" % name)
            write_expected("tok512_%s_tinystories.ids.gz" % name, spm_encode(m, TINY))
            write_expected("tok512_%s_stress.ids.gz" % name, spm_encode(m, sp))

        # 2. GPT-2 tokenizer.json through `tokenizers`
        gpt2 = Tokenizer.from_file(GPT2)
        gpt2.no_truncation()
        write_expected("gpt2_wikitext.ids.gz", hf_lines(gpt2, WIKI))
        write_expected("gpt2_stress.ids.gz", hf_lines(gpt2, sp))
        whole = open(TINY, encoding="utf-8", newline="").read()
        ids = gpt2.encode(whole, add_special_tokens=False).ids
        out = "%d %08x :%s\n" % (len(ids), fnv32(ids), "".join(" %d" % i for i in ids[:1000]))
        with gzip.GzipFile(os.path.join(HERE, "expected", "gpt2_tinystories_whole.ids.gz"), "wb", mtime=0) as f:
            f.write(out.encode())
        print("  expected/gpt2_tinystories_whole.ids.gz: %d ids (first 1000 listed)" % len(ids))

        # 3. GPT-2's vocabulary with the Llama-3 / Qwen2 / o200k split regexes
        text = open(GPT2, encoding="utf-8").read()
        for name, pattern in patterns.items():
            v = gpt2_variant(text, pattern, nfc=name == "qwen2", ignore_merges=name == "llama3")
            tok = Tokenizer.from_str(v)
            tok.no_truncation()
            write_expected("gpt2_%s_wikitext.ids.gz" % name, hf_lines(tok, WIKI))
            write_expected("gpt2_%s_stress.ids.gz" % name, hf_lines(tok, sp))

    # 4. Llama-2 style tokenizer.json from tok512's pieces; they must agree with
    #    spm_encode on every TinyStories line once spm's whitespace collapsing is
    #    applied to the input (the HF Llama converters do not collapse)
    spm_rows = spm_encode(TOK512, TINY)
    lines = [l.decode("utf-8") for l in read_lines(TINY)]
    jsons = llama2_style_jsons()
    for kind, js in jsons.items():
        write_gz("tok512_%s.json.gz" % kind, js.encode())
        tok = Tokenizer.from_str(js)
        got = [e.ids for e in tok.encode_batch([re.sub(" +", " ", l).strip(" ") for l in lines],
                                               add_special_tokens=False)]
        bad = sum(1 for a, b in zip(got, spm_rows) if a != b)
        print("  tok512_%s.json: tokenizers vs spm_encode on TinyStories: %d of %d lines differ" %
              (kind, bad, len(lines)))
        assert bad == 0

    # 5. fuzz seeds; the byte-level one (added tokens with every flag, NFC,
    #    ignore_merges, Llama-3 regex) is also checked on the stress text
    fuzz_seeds(jsons["legacy"].encode(), jsons["metaspace"].encode(), patterns)
    tok = Tokenizer.from_str(byte_level_seed(patterns["llama3"]).decode())
    with tempfile.TemporaryDirectory() as tmp:
        sp = os.path.join(tmp, "stress.txt")
        open(sp, "wb").write(stress.encode())
        write_expected("byte_level_added_stress.ids.gz", hf_lines(tok, sp))


if __name__ == "__main__":
    main()
