#!/usr/bin/python3
"""la_ref.py: the matrices test_linalg.sh hands to la_run, and NumPy's answers.

  la_ref.py make DIR NAME N P Q ILL   write DIR/NAME.x.f32 [N, P] and DIR/NAME.y.f32 [N, Q]
                                      (float32, row-major); ILL=1 makes feature 3 a
                                      'massive activation': scaled by 1e4 around a mean of
                                      30 (large and nearly constant over tokens, as outlier
                                      features of real LLMs are), so cond([X 1]) ~ 1e7
  la_ref.py check DIR NAME P Q OUT.json LABEL
                                      compare la_run's OUT.json with NumPy in float64: CKA
                                      and the QR solution within 1e-5 relative; prints the
                                      float normal equations' error too, and with ILL
                                      requires it above 1e-5 (the digits QR keeps)
"""
import json
import sys

import numpy as np

TOL = 1e-5


def make(d, name, n, p, q, ill):
    rng = np.random.default_rng(n * 1000 + p * 10 + q + ill)
    # correlated features, as hidden states are
    x = rng.standard_normal((n, p)) @ (np.eye(p) + 0.3 * rng.standard_normal((p, p)))
    if ill:
        x[:, 3] = (x[:, 3] / np.std(x[:, 3]) + 30.0) * 1e4
    x = x.astype(np.float32)
    scale = np.ones(p)
    if ill:
        scale[3] = 1e-4  # so feature 3 matters as much as the others
    w = rng.standard_normal((q, p)) * scale
    b = rng.standard_normal(q)
    y = x.astype(np.float64) @ w.T + b + 0.1 * rng.standard_normal((n, q))
    x.tofile(f"{d}/{name}.x.f32")
    y.astype(np.float32).tofile(f"{d}/{name}.y.f32")
    json.dump({"ill": ill}, open(f"{d}/{name}.json", "w"))


def load(d, name, p, q):
    x = np.fromfile(f"{d}/{name}.x.f32", dtype=np.float32).reshape(-1, p).astype(np.float64)
    y = np.fromfile(f"{d}/{name}.y.f32", dtype=np.float32).reshape(-1, q).astype(np.float64)
    return x, y


def cka(x, y):
    xc, yc = x - x.mean(0), y - y.mean(0)
    return np.linalg.norm(yc.T @ xc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))


def rel(a, ref):
    return float(np.linalg.norm(a - ref) / np.linalg.norm(ref))


def check(d, name, p, q, out, label):
    x, y = load(d, name, p, q)
    ill = json.load(open(f"{d}/{name}.json"))["ill"]
    r = json.load(open(out))
    a = np.hstack([x, np.ones((len(x), 1))])
    ref = np.linalg.lstsq(a, y, rcond=None)[0]  # [P+1, Q]: W^T over b
    got = np.vstack([np.array(r["W"]).reshape(q, p).T, np.array(r["b"])[None, :]])
    normal = np.vstack([np.array(r["W_normal"]).reshape(q, p).T, np.array(r["b_normal"])[None, :]])
    e_cka = abs(r["cka"] - cka(x, y)) / cka(x, y)
    e_qr, e_ne = rel(got, ref), rel(normal, ref)
    print(f"{label}: cond([X 1]) {np.linalg.cond(a):.1e}; relative errors: CKA {e_cka:.1e}, "
          f"QR {e_qr:.1e}, float normal equations {e_ne:.1e}")
    ok = e_cka <= TOL and e_qr <= TOL
    if ill and e_ne <= TOL:
        print(f"{label}: the normal equations kept their digits: the case is not ill-conditioned enough")
        ok = False
    return ok


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        d, name, n, p, q, ill = sys.argv[2], sys.argv[3], *map(int, sys.argv[4:8])
        make(d, name, n, p, q, ill)
    elif cmd == "check":
        d, name, p, q, out, label = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7]
        sys.exit(0 if check(d, name, p, q, out, label) else 1)
    else:
        sys.exit(__doc__)
