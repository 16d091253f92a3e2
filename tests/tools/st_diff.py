#!/usr/bin/python3
"""Compare the tensors of two safetensors files.

    st_diff.py A B [--rtol R] [--atol-frac F]

Exits 0 when both files hold the same tensor names and shapes and every
element satisfies |a - b| <= atol + rtol * |b| with atol = F * max|b| of that
tensor; prints the worst tensor either way. Exits 1 otherwise."""
import argparse
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I32": np.int32, "I64": np.int64}


def load(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + b:8 + n + e], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--rtol", type=float, default=1e-5)
    ap.add_argument("--atol-frac", type=float, default=1e-6)
    args = ap.parse_args()
    a, b = load(args.a), load(args.b)
    if sorted(a) != sorted(b):
        print("tensor names differ:", sorted(set(a) ^ set(b)))
        return 1
    worst, worst_name = 0.0, None
    for name in a:
        x, y = a[name].astype(np.float64), b[name].astype(np.float64)
        if x.shape != y.shape:
            print(f"{name}: shape {x.shape} vs {y.shape}")
            return 1
        atol = args.atol_frac * max(np.abs(y).max(initial=0.0), 1e-30)
        ratio = (np.abs(x - y) / (atol + args.rtol * np.abs(y))).max(initial=0.0)
        if not np.isfinite(ratio) or ratio > worst:
            worst, worst_name = ratio, name
    print(f"{len(a)} tensors; worst {worst_name}: {worst:.3g} of tolerance")
    return 0 if worst <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
