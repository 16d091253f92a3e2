#!/usr/bin/python3
"""Variants of the names anchor's data (docs/kv-arithmetic.md, activation patching): 150000 NUM-MATH
expressions with each operand written as its number name half of the time (every expression may
hold names, unlike gen_names.py's three quarters), plus 40000 lookups, shuffled, in OUT/anchor.jsonl.
  --names-from NAMES_JSON   the names of gen_names.py (its names.json)
  --alphabet A --length N   "hard" names: N letters over the alphabet A, so that no single letter
                            tells the value; also writes eval_names.jsonl (300 names-only
                            expressions) and names.json
Usage: gen_names_variants.py OUT_DIR (--names-from NAMES_JSON | --alphabet A --length N)"""
import argparse, itertools, json, random
from kvgen import lookup_row, math_row, named_expression
ap = argparse.ArgumentParser()
ap.add_argument("out"); ap.add_argument("--names-from"); ap.add_argument("--alphabet"); ap.add_argument("--length", type=int)
a = ap.parse_args()
if a.names_from:
    rng = random.Random(5)
    codes = {int(k): v for k, v in json.load(open(a.names_from)).items()}
else:
    rng = random.Random(7)
    combos = ["".join(c) for c in itertools.product(a.alphabet, repeat=a.length)]
    rng.shuffle(combos)
    codes = {v: combos[v] for v in range(50)}
def expr(pc):
    return named_expression(rng, codes, pc)
rows = []
for i in range(150000):
    ts, vs, ops, r = expr(0.5); rows.append(math_row(ts, ops, r))
for i in range(40000):
    ts, vs, ops, r = expr(0.5); rows.append(lookup_row(rng, ts, vs, ops))
rng.shuffle(rows)
open(a.out + "/anchor.jsonl", "w").writelines(rows)
if not a.names_from:
    with open(a.out + "/eval_names.jsonl", "w") as f:
        for i in range(300):
            ts, vs, ops, r = expr(1.0); f.write(math_row(ts, ops, r))
    json.dump({str(k): v for k, v in codes.items()}, open(a.out + "/names.json", "w"))
