"""Minimal safetensors reader/writer (the `safetensors` package is not a Debian package).

Format (https://github.com/huggingface/safetensors):
  8 bytes   little-endian u64 N = header length
  N bytes   JSON: {"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...,
                   "__metadata__": {"key": "value"}}   (metadata values are strings)
  data      tensors back to back; offsets are relative to the end of the header.
The writer pads the header with spaces so the data area starts 64-byte aligned (as
calm's C writer does) and stores tensors in the given order. The reader checks what
the C reader checks: header inside the file, offsets inside the data area and byte
counts equal to shape x dtype size.
"""
import json
import os
import struct

import numpy as np

# dtype name -> numpy dtype (little-endian). BF16 has no numpy dtype: read as uint16.
_DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}


def _bf16_to_f32(u16):
    return (u16.astype(np.uint32) << 16).view(np.float32)


def read(path, to_f32=True):
    """Returns (tensors: dict name -> np.ndarray, metadata: dict).

    to_f32: convert F16/BF16/F64 to float32 (BF16 exactly, by widening the bits);
    integer and bool tensors are returned as stored."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise ValueError(f"{path}: header length {n} runs past the end of the file ({len(blob)} bytes)")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = memoryview(blob)[8 + n:]
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    for name, info in header.items():
        dt = info["dtype"]
        if dt not in _DTYPES:
            raise ValueError(f"{path}: tensor {name}: unknown dtype {dt}")
        shape = tuple(int(s) for s in info["shape"])
        b, e = (int(x) for x in info["data_offsets"])
        if not (0 <= b <= e <= len(data)):
            raise ValueError(f"{path}: tensor {name}: offsets [{b}, {e}) outside the data area ({len(data)} bytes)")
        npdt = _DTYPES[dt]
        count = int(np.prod(shape, dtype=np.int64))
        if e - b != count * npdt.itemsize:
            raise ValueError(f"{path}: tensor {name}: {e - b} bytes for shape {list(shape)} x {dt}")
        arr = np.frombuffer(data[b:e], dtype=npdt, count=count).reshape(shape)
        if to_f32 and dt == "BF16":
            arr = _bf16_to_f32(arr.reshape(-1)).reshape(shape)
        elif to_f32 and dt in ("F16", "F64"):
            arr = arr.astype(np.float32)
        out[name] = np.array(arr)  # own the memory, writable
    return out, meta


def _f32_to_bf16(a):
    """float32 array -> BF16 bits (uint16), round to nearest even; NaN stays NaN."""
    u = np.ascontiguousarray(a, dtype="<f4").view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(a), np.uint16(0x7FC0), r)


def write(path, tensors, metadata=None, dtype="F32"):
    """Write tensors (dict or list of (name, array)) as F32 (or BF16 / F16), in order. Float
    arrays of any precision are rounded to float32 first (round to nearest even, numpy's
    cast), then to the 16-bit dtype (round to nearest even)."""
    items = list(tensors.items()) if isinstance(tensors, dict) else list(tensors)
    header = {}
    chunks = []
    off = 0
    for name, arr in items:
        if hasattr(arr, "detach"):  # torch tensor
            arr = arr.detach().cpu().numpy()
        a = np.ascontiguousarray(np.asarray(arr, dtype="<f4"))
        if dtype == "BF16":
            raw = _f32_to_bf16(a).tobytes()
        elif dtype == "F16":
            raw = a.astype("<f2").tobytes()
        else:
            raw = a.tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((-(8 + len(hj))) % 64)
    tmp = f"{path}.tmp{os.getpid()}"  # a reader never sees a half-written file
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for c in chunks:
            f.write(c)
    os.replace(tmp, path)
