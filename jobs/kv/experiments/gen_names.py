#!/usr/bin/python3
"""Anchor data with number names (docs/kv-arithmetic.md, experiments): every value 0-49 gets a random
name of 2-6 letters, none of them a key of the table; NUM-MATH expressions write each operand as
digits or as its name, and lookups ("name+" -> value, half of them last digit first) teach the
anchor to hold an operand's value at the character after it.
Usage: gen_names.py TABLE_TSV OUT_DIR   (writes anchor.jsonl, eval_names.jsonl, names.json)"""
import json, random, sys
from kvgen import fresh_names, lookup_row, math_row, named_expression
out = sys.argv[2]; rng = random.Random(3)
codes = fresh_names(rng, set(l.split("\t")[0] for l in open(sys.argv[1])))
def expr(pc):
    return named_expression(rng, codes, pc)
with open(out + "/anchor.jsonl", "w") as f:
    for i in range(120000):
        ts, vs, ops, r = expr(0.5 if i % 4 else 0.0)
        f.write(math_row(ts, ops, r))
    for i in range(40000):
        ts, vs, ops, r = expr(0.5)
        f.write(lookup_row(rng, ts, vs, ops))
with open(out + "/eval_names.jsonl", "w") as f:
    for i in range(300):
        ts, vs, ops, r = expr(1.0)
        f.write(math_row(ts, ops, r))
json.dump(codes, open(out + "/names.json", "w"))
