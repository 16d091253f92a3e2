#!/usr/bin/python3
"""Anchor data for an in-context-binding anchor whose bindings are written value first
(docs/kv-arithmetic.md, experiments): "12=qv,7=tkr,33=m;qv+tkr-m=" -> "-14".

Why value first: at a binding's last letter the anchor has already seen the value, so one
attention hop from an operand in the expression to the matching binding fetches the value; with
"qv=12" the value lies after the match and needs a second hop. The fetched value is what a
composition can supply in a KV-MATH prompt, which has no bindings.

Rows (JSON Lines, prompt/target), keys 2-6 letters (or --key-len), never keys of the table:
  CTX-MATH    three distinct bound keys, one per operand (the KV-MATH form)
  CTX-LOOKUP  the same prompt cut after the first or second operand and its operator, answered by
              that operand's value, last digit first half of the time (so that the anchor holds
              both digits at that character, as mA does with KV-LOOKUP)
Usage: gen_bind.py TABLE_TSV OUT_JSONL N SEED [--lookup-share F (0.4)] [--key-len K (0: 2-6)]"""
import argparse, random

from kvgen import evaluate, new_keys, row

ap = argparse.ArgumentParser()
ap.add_argument("table"); ap.add_argument("out"); ap.add_argument("n", type=int); ap.add_argument("seed", type=int)
ap.add_argument("--lookup-share", type=float, default=0.4)
ap.add_argument("--key-len", type=int, default=0)
a = ap.parse_args()
rng = random.Random(a.seed)
table = set(l.split("\t")[0] for l in open(a.table))


with open(a.out, "w") as f:
    for _ in range(a.n):
        keys = new_keys(rng, table, 3, a.key_len)
        vals = rng.sample(range(50), 3)
        ops = [rng.choice("+-") for _ in range(2)]
        defs = [f"{v}={k}" for k, v in zip(keys, vals)]
        rng.shuffle(defs)
        head = ",".join(defs) + ";"
        if rng.random() < a.lookup_share:
            upto = rng.randint(1, 2)  # not after the third: "...=" is CTX-MATH's prompt
            p = "".join(keys[j] + ops[j] for j in range(upto))
            t = str(vals[upto - 1])
            f.write(row(head + p, t[::-1] if rng.random() < 0.5 else t))
        else:
            expr = keys[0] + ops[0] + keys[1] + ops[1] + keys[2] + "="
            f.write(row(head + expr, evaluate(vals, ops)))
