#!/usr/bin/env python3
"""Writes small synthetic tokenizer.json files that exercise components the
four real tokenizers do not use. Their reference ids come from the Rust
library like the real ones (make_reference.js). Re-run to regenerate:
  /usr/bin/python3 tests/tokenizer/synthetic/make_synthetic.py
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def added(i, content, special=True, lstrip=False, rstrip=False, single_word=False,
          normalized=False):
    return {"id": i, "content": content, "single_word": single_word, "lstrip": lstrip,
            "rstrip": rstrip, "normalized": normalized, "special": special}


def write(name, tj):
    d = os.path.join(HERE, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False, indent=1)


def bpe(vocab, merges, **kw):
    m = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
         "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
         "ignore_merges": False, "vocab": vocab, "merges": merges}
    m.update(kw)
    return m


def closure(vocab, merges, prefix=""):
    # Makes every merge valid: both sides and the result are in the vocab.
    for a, b in merges:
        for t in (a, b, a + b[len(prefix):]):
            if t not in vocab:
                vocab[t] = len(vocab)


letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'-_ "

# 1. SentencePiece-like with a Metaspace pre-tokenizer (prepend "first",
#    split), byte fallback, unk, Metaspace decoder, <s> ... </s> template and
#    added tokens with lstrip / rstrip / single_word flags.
vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
for b in range(256):
    vocab["<0x%02X>" % b] = len(vocab)
for c in "▁" + letters.replace(" ", ""):
    vocab.setdefault(c, len(vocab))
merges = [("▁", "t"), ("h", "e"), ("▁t", "he"), ("i", "n"), ("▁", "a"), ("▁a", "n"), ("▁an", "d"),
          ("e", "r"), ("▁", "w"), ("o", "r"), ("▁w", "or"), ("l", "d"), ("▁wor", "ld"), ("▁", "▁"),
          ("▁▁", "▁▁"), ("1", "2"), ("12", "3")]
closure(vocab, merges)
n = len(vocab)
write("sp_metaspace", {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>"),
                     added(n, "<tool>", special=False, lstrip=True, rstrip=True),
                     added(n + 1, "[MASK]", special=True, single_word=True),
                     added(n + 2, "hello", special=False, normalized=True)],
    "normalizer": None,
    "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True},
    "post_processor": {"type": "TemplateProcessing",
                       "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                  {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                       "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                       "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]},
                                          "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}},
    "decoder": {"type": "Sequence", "decoders": [
        {"type": "ByteFallback"}, {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True}]},
    "model": bpe(vocab, [a + " " + b for a, b in merges], unk_token="<unk>", byte_fallback=True),
})

# 2. Word-piece-like BPE: continuing_subword_prefix / end_of_word_suffix,
#    fused unk, NFKC + Lowercase + Strip + Replace(regex) normalizers, Split
#    behaviours, Digits, and Replace/Strip/Fuse decoders.
vocab = {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2}
for c in letters.replace(" ", ""):
    vocab.setdefault(c, len(vocab))
    vocab.setdefault("##" + c, len(vocab))
    vocab.setdefault(c + "</w>", len(vocab))
    vocab.setdefault("##" + c + "</w>", len(vocab))
merges = [("t", "##h"), ("th", "##e</w>"), ("a", "##n"), ("an", "##d</w>"), ("##i", "##n"),
          ("##in", "##g</w>"), ("w", "##o"), ("wo", "##r"), ("wor", "##l"), ("worl", "##d</w>")]
closure(vocab, merges, prefix="##")
write("wordlike", {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [added(0, "[UNK]"), added(1, "[CLS]"), added(2, "[SEP]")],
    "normalizer": {"type": "Sequence", "normalizers": [
        {"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Strip", "strip_left": True, "strip_right": True},
        {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "}]},
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"String": " "}, "behavior": "Removed", "invert": False},
        {"type": "Digits", "individual_digits": True},
        {"type": "Split", "pattern": {"Regex": "[.,!?]"}, "behavior": "MergedWithPrevious", "invert": False},
        {"type": "Split", "pattern": {"String": "-"}, "behavior": "MergedWithNext", "invert": False},
        {"type": "Split", "pattern": {"Regex": "_"}, "behavior": "Contiguous", "invert": False},
        {"type": "Split", "pattern": {"Regex": "'"}, "behavior": "Isolated", "invert": True}]},
    "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 2], "cls": ["[CLS]", 1]},
    "decoder": {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "</w>"}, "content": " "},
        {"type": "Replace", "pattern": {"Regex": "^##"}, "content": ""},
        {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "model": bpe(vocab, [[a, b] for a, b in merges], unk_token="[UNK]", fuse_unk=True,
                 continuing_subword_prefix="##", end_of_word_suffix="</w>"),
})

# 3. Byte-level with add_prefix_space + use_regex in the ByteLevel
#    pre-tokenizer itself (GPT-2 style), a normalized added token, NFC, and
#    Metaspace-free ByteLevel decoding; prepend "always"/no-split Metaspace is
#    covered by #4.
bl = {}
def b2u():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}
m = b2u()
for b in range(256):
    bl[m[b]] = len(bl)
merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a"), ("e", "r"), ("Ġ", "Ġ"),
          ("ĠĠ", "ĠĠ"), ("Ċ", "Ċ"), ("1", "2"), ("o", "r")]
closure(bl, merges)
n = len(bl)
write("gpt2like", {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [added(n, "<|endoftext|>"), added(n + 1, "the end", special=False, normalized=True)],
    "normalizer": {"type": "NFC"},
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "post_processor": {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A", "type_id": 0}},
                                                  {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}],
         "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [n], "tokens": ["<|endoftext|>"]}}}]},
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": bpe(bl, [a + " " + b for a, b in merges], ignore_merges=True),
})

# 4. Metaspace prepend "always" without split, Prepend/Replace normalizers
#    absent; legacy add_prefix_space field on the decoder.
vocab = {"<unk>": 0}
for c in "▁" + letters.replace(" ", ""):
    vocab.setdefault(c, len(vocab))
merges = [("▁", "t"), ("h", "e"), ("▁t", "he"), ("▁", "▁")]
closure(vocab, merges)
write("metaspace_always", {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [added(0, "<unk>")],
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKD"}, {"type": "Replace", "pattern": {"String": "x"}, "content": "ks"}]},
    "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": False},
    "post_processor": None,
    "decoder": {"type": "Metaspace", "replacement": "▁", "add_prefix_space": True},
    "model": bpe(vocab, [a + " " + b for a, b in merges], unk_token="<unk>"),
})
