"""Independent safetensors reader/writer in pure Python + NumPy.

Written from the safetensors format description (8-byte little-endian header
length, a JSON header mapping tensor name -> {dtype, shape, data_offsets}, then
the raw little-endian data), not from any C++ code in this repository.

Reading: F32, F16 and BF16 tensors are returned as float32 arrays (BF16 is
widened exactly by shifting its 16 bits into the high half of a float32; F16
through numpy's IEEE half type, also exact). Integer dtypes are rejected with a
clear error because no supported architecture stores weights as integers.

Writing (used by the self-tests to build tiny checkpoints): float32 arrays are
stored as F32, F16 (numpy rounding) or BF16 (round-to-nearest-even).
"""

import json
import os
import struct

import numpy as np

# Header dtype string -> (bytes per element, decoder from raw little-endian bytes).
_ITEMSIZE = {"F32": 4, "F16": 2, "BF16": 2}


def bf16_bits_to_f32(bits):
    """uint16 array of bfloat16 bit patterns -> float32 array (exact)."""
    bits = np.asarray(bits, dtype=np.uint16)
    return (bits.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16_bits(x):
    """float32 array -> uint16 bfloat16 bit patterns, round-to-nearest-even.

    NaN stays NaN (quiet bit forced) rather than rounding into infinity.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    rounding = ((u >> 16) & 1) + 0x7FFF
    out = ((u + rounding) >> 16).astype(np.uint16)
    nan = np.isnan(x)
    if nan.any():
        out[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return out


def round_to_bf16(x):
    """float32 values rounded to the nearest bfloat16, returned as float32."""
    return bf16_bits_to_f32(f32_to_bf16_bits(x))


class SafetensorsError(Exception):
    pass


def read_header(path):
    """Returns (header dict without __metadata__, metadata dict, data start offset)."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise SafetensorsError(f"{path}: file shorter than the 8-byte header length")
        (n,) = struct.unpack("<Q", raw)
        size = os.fstat(f.fileno()).st_size
        if n > size - 8:
            raise SafetensorsError(f"{path}: header length {n} exceeds file size {size}")
        header = json.loads(f.read(n).decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    return header, meta, 8 + n


def load_file(path, names=None):
    """Loads tensors of one .safetensors file.

    Returns dict name -> (float32 ndarray, dtype string as stored).
    names: optional iterable restricting which tensors are decoded.
    """
    header, _, start = read_header(path)
    data = np.memmap(path, dtype=np.uint8, mode="r")
    data_len = data.shape[0] - start
    out = {}
    wanted = None if names is None else set(names)
    for name, info in header.items():
        if wanted is not None and name not in wanted:
            continue
        dtype = info["dtype"]
        shape = tuple(int(s) for s in info["shape"])
        begin, end = (int(v) for v in info["data_offsets"])
        if dtype not in _ITEMSIZE:
            raise SafetensorsError(
                f"{path}: tensor {name!r} has dtype {dtype}; only F32, F16, BF16 are supported")
        count = int(np.prod(shape)) if shape else 1
        if end - begin != count * _ITEMSIZE[dtype] or begin < 0 or end > data_len:
            raise SafetensorsError(
                f"{path}: tensor {name!r} offsets [{begin},{end}) do not match "
                f"shape {list(shape)} of {dtype} within {data_len} data bytes")
        raw = np.array(data[start + begin:start + end])  # copy out of the mmap
        if dtype == "F32":
            arr = raw.view("<f4").astype(np.float32)
        elif dtype == "F16":
            arr = raw.view("<f2").astype(np.float32)
        else:
            arr = bf16_bits_to_f32(raw.view("<u2"))
        out[name] = (arr.reshape(shape), dtype)
    del data
    return out


def load_dir(model_dir):
    """Loads every tensor of a checkpoint directory.

    With model.safetensors.index.json the weight_map decides which shard holds
    which tensor (every listed shard must exist and hold its tensors); without
    it every *.safetensors file in the directory is read. A tensor name found
    twice is an error.
    Returns dict name -> (float32 ndarray, stored dtype string).
    """
    index_path = os.path.join(model_dir, "model.safetensors.index.json")
    tensors = {}
    if os.path.exists(index_path):
        with open(index_path) as f:
            weight_map = json.load(f)["weight_map"]
        by_file = {}
        for name, fname in weight_map.items():
            by_file.setdefault(fname, []).append(name)
        for fname, names in sorted(by_file.items()):
            got = load_file(os.path.join(model_dir, fname), names)
            missing = set(names) - set(got)
            if missing:
                raise SafetensorsError(
                    f"{fname}: index lists {sorted(missing)[:5]} but the shard lacks them")
            tensors.update(got)
        return tensors
    files = sorted(p for p in os.listdir(model_dir) if p.endswith(".safetensors"))
    if not files:
        raise SafetensorsError(f"{model_dir}: no .safetensors files")
    for fname in files:
        for name, val in load_file(os.path.join(model_dir, fname)).items():
            if name in tensors:
                raise SafetensorsError(f"{model_dir}: tensor {name!r} appears in two files")
            tensors[name] = val
    return tensors


def save_file(path, tensors, dtype="F32", metadata=None):
    """Writes tensors (dict name -> array) to path in the given dtype.

    dtype: "F32", "F16", "BF16", or a dict name -> dtype.
    """
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        arr = np.asarray(tensors[name], dtype=np.float32)
        dt = dtype[name] if isinstance(dtype, dict) else dtype
        if dt == "F32":
            raw = arr.astype("<f4").tobytes()
        elif dt == "F16":
            raw = arr.astype("<f2").tobytes()
        elif dt == "BF16":
            raw = f32_to_bf16_bits(arr).astype("<u2").tobytes()
        else:
            raise SafetensorsError(f"cannot write dtype {dt}")
        header[name] = {"dtype": dt, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * ((8 - len(hbytes) % 8) % 8)  # keep data 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for b in blobs:
            f.write(b)
