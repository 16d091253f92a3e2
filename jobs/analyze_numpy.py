#!/usr/bin/python3
"""analyze_numpy.py DUMP [CKA_JSON]: linear CKA of every (mA layer, mB layer)
pair in single-process NumPy, from the hidden streams `calm analyze --dump
DUMP` wrote (DUMP/mA.A.rR.npy, DUMP/mB.B.rR.npy; the ranks' rows are
concatenated). The same definition as calm: features centred over all rows,
float64, CKA = ||Xa^T Xb||_F^2 / (||Xa^T Xa||_F ||Xb^T Xb||_F).

Prints one line of figures (seconds to load, seconds for the CKA matrix, peak
resident memory) and, given calm's cka.json, the largest relative difference
from calm's matrix; exits 1 when it exceeds --tol (default 1e-5).

NumPy's products go to whatever libblas.so.3 Debian's alternatives select (on
a machine with calm's packages, BLIS with OpenMP); BLIS_ARCH_TYPE and
OMP_NUM_THREADS choose its kernels and threads as for calm."""
import argparse
import glob
import json
import os
import re
import resource
import sys
import time

import numpy as np


def layer_files(dump, model):
    """{layer: [files in rank order]} for model 'A' or 'B'."""
    out = {}
    for path in glob.glob(os.path.join(dump, f"m{model}.*.r*.npy")):
        m = re.fullmatch(rf"m{model}\.(\d+)\.r(\d+)\.npy", os.path.basename(path))
        if m:
            out.setdefault(int(m.group(1)), []).append((int(m.group(2)), path))
    if not out:
        sys.exit(f"{dump}: no m{model}.LAYER.rRANK.npy files (written by calm analyze --dump)")
    layers = sorted(out)
    if layers != list(range(1, len(layers) + 1)):
        sys.exit(f"{dump}: m{model} layers {layers} are not 1..{len(layers)}")
    return [[p for _, p in sorted(out[l])] for l in layers]


def load_centred(paths):
    x = np.concatenate([np.load(p) for p in paths]).astype(np.float64)
    x -= x.mean(axis=0)
    return x


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dump")
    ap.add_argument("cka_json", nargs="?")
    ap.add_argument("--tol", type=float, default=1e-5)
    args = ap.parse_args()
    fa, fb = layer_files(args.dump, "A"), layer_files(args.dump, "B")

    t0 = time.perf_counter()
    xb = [load_centred(p) for p in fb]
    t_load = t_load_b = time.perf_counter() - t0
    t0 = time.perf_counter()
    gb = [np.linalg.norm(x.T @ x) for x in xb]
    cka = np.zeros((len(fa), len(fb)))
    for a, paths in enumerate(fa):
        t1 = time.perf_counter()
        xa = load_centred(paths)
        t_load += time.perf_counter() - t1
        ga = np.linalg.norm(xa.T @ xa)
        for b, x in enumerate(xb):
            cka[a, b] = np.linalg.norm(xa.T @ x) ** 2 / (ga * gb[b])
    t_cka = time.perf_counter() - t0 - (t_load - t_load_b)
    rows = xb[0].shape[0]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"numpy rows={rows} widths={xa.shape[1]}/{xb[0].shape[1]} pairs={cka.size} "
          f"load_s={t_load:.2f} cka_s={t_cka:.2f} peak_rss_mb={rss_mb:.0f}")
    if not args.cka_json:
        return 0
    calm = json.load(open(args.cka_json))
    c = np.array(calm["cka"])
    if c.shape != cka.shape or calm["tokens"] != rows:
        print(f"FAIL: calm's matrix is {c.shape} over {calm['tokens']} tokens, NumPy's {cka.shape} over {rows}")
        return 1
    rel = float(np.max(np.abs(c - cka) / np.maximum(np.abs(cka), 1e-300)))
    print(f"calm ranks={calm['ranks']} grid={calm['grid']} cka_s={calm.get('seconds_cka', float('nan')):.2f} "
          f"peak_rss_mb={calm.get('peak_rss_mb', float('nan')):.0f}; largest relative difference {rel:.1e}")
    if rel > args.tol:
        print(f"FAIL: calm's CKA differs from NumPy's by {rel:.1e} > {args.tol:.0e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
