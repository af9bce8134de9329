#!/usr/bin/python3
"""Writes the seed corpus of the safetensors_header fuzz target.

Small hand-built files: valid ones for every dtype (incl. 0-d and empty
tensors, metadata) and one per corruption class the parser rejects.
Usage: /usr/bin/python3 tests/checkpoint/make_fuzz_corpus.py
"""
import json
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz",
                   "corpus", "safetensors_header")


def image(header, data=b"", length=None, pad=True):
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    n = len(text) if length is None else length
    return struct.pack("<Q", n) + text + data


def t(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


SEEDS = {
    "valid_f32": image({"__metadata__": {"format": "pt"},
                        "w": t("F32", [2, 2], 0, 16)},
                       struct.pack("<4f", 1, 2, 3, 4)),
    "valid_mixed": image({"a": t("F16", [3], 0, 6), "b": t("BF16", [1, 1], 6, 8),
                          "s": t("F32", [], 8, 12), "e": t("F32", [0, 5], 12, 12)},
                         bytes(range(12))),
    "valid_empty": image({}),
    "valid_metadata_only": image({"__metadata__": {"format": "pt", "k": "v"}}),
    "short": b"\x05\x00\x00",
    "len_past_end": image({}, length=64),
    "len_absurd": image({}, length=1 << 62),
    "not_utf8": image(b'{"\xff": 1}'),
    "not_json": image(b'{"a": '),
    "not_object": image([1, 2]),
    "entry_not_object": image({"a": 3}),
    "missing_dtype": image({"a": {"shape": [1], "data_offsets": [0, 4]}}, bytes(4)),
    "dtype_int": image({"a": t(7, [1], 0, 4)}, bytes(4)),
    "dtype_i8": image({"a": t("I8", [4], 0, 4)}, bytes(4)),
    "shape_float": image({"a": t("F32", [1.5], 0, 4)}, bytes(4)),
    "shape_negative": image({"a": t("F32", [-1, 2], 0, 0)}),
    "shape_overflow": image({"a": t("F32", [1 << 40, 1 << 40], 0, 4)}, bytes(4)),
    "offsets_past_end": image({"a": t("F32", [2], 0, 8)}, bytes(4)),
    "offsets_reversed": image({"a": t("F32", [1], 4, 0)}, bytes(4)),
    "size_mismatch": image({"a": t("BF16", [2, 2], 0, 4)}, bytes(4)),
    "overlap": image({"a": t("F32", [2], 0, 8), "b": t("F32", [2], 4, 12)}, bytes(12)),
    "hole": image({"a": t("F32", [1], 0, 4), "b": t("F32", [1], 8, 12)}, bytes(12)),
    "metadata_number": image({"__metadata__": {"n": 3}}),
    "duplicate_name": image(b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},'
                            b' "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}',
                            bytes(8)),
    "deep": image(b'{"a": {"shape": ' + b"[" * 64 + b"]" * 64 + b"}}"),
}

os.makedirs(OUT, exist_ok=True)
for name, blob in SEEDS.items():
    with open(os.path.join(OUT, name + ".safetensors"), "wb") as f:
        f.write(blob)
print(f"wrote {len(SEEDS)} seeds to {os.path.normpath(OUT)}")
