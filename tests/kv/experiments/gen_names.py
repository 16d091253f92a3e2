#!/usr/bin/python3
"""Anchor data with number names (docs/kv-arithmetic.md, experiments): every value 0-49 gets a random
name of 2-6 letters, none of them a key of the table; NUM-MATH expressions write each operand as
digits or as its name, and lookups ("name+" -> value, half of them last digit first) teach the
anchor to hold an operand's value at the character after it.
Usage: gen_names.py TABLE_TSV OUT_DIR   (writes anchor.jsonl, eval_names.jsonl, names.json)"""
import json, random, sys
out = sys.argv[2]; rng = random.Random(3)
table = set(l.split("\t")[0] for l in open(sys.argv[1]))
codes = {}
used = set(table)
for v in range(50):
    while True:
        k = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 6)))
        if k not in used: used.add(k); codes[v] = k; break
def operand(v, pc): return codes[v] if rng.random() < pc else str(v)
def expr(pc):
    vs = [rng.randint(0, 49) for _ in range(3)]; ops = [rng.choice("+-") for _ in range(2)]
    r = vs[0] + (vs[1] if ops[0] == "+" else -vs[1]); r = r + (vs[2] if ops[1] == "+" else -vs[2])
    return [operand(v, pc) for v in vs], vs, ops, r
with open(out + "/anchor.jsonl", "w") as f:
    for i in range(120000):
        ts, vs, ops, r = expr(0.5 if i % 4 else 0.0)
        f.write(json.dumps({"prompt": ts[0] + ops[0] + ts[1] + ops[1] + ts[2] + "=", "target": str(r)}) + "\n")
    for i in range(40000):
        ts, vs, ops, r = expr(0.5)
        upto = rng.randint(1, 3)
        p = "".join(ts[j] + (ops[j] if j < 2 else "=") for j in range(upto))
        t = str(vs[upto - 1]); t = t[::-1] if rng.random() < 0.5 else t
        f.write(json.dumps({"prompt": p, "target": t}) + "\n")
with open(out + "/eval_names.jsonl", "w") as f:
    for i in range(300):
        ts, vs, ops, r = expr(1.0)
        f.write(json.dumps({"prompt": ts[0] + ops[0] + ts[1] + ops[1] + ts[2] + "=", "target": str(r)}) + "\n")
json.dump(codes, open(out + "/names.json", "w"))
