#!/usr/bin/python3
"""Anchor data with in-context keys (docs/kv-arithmetic.md, experiments): NUM-MATH whose operands may
be fresh keys bound in the prompt, "qv=12,tkr=7;tkr-qv+5=" -> "10".
KEY_LEN (optional) makes every key exactly that many letters (1: single-letter variables, an
easier binding to learn first) instead of 2-6.
DISTINCT=1 (optional) makes every expression use three distinct bound keys, one per operand (the
form of a KV-MATH expression), instead of 1-3 keys mixed with numbers.
Usage: gen_context.py TABLE_TSV OUT_JSONL N SEED [KEY_SHARE [KEY_LEN [DISTINCT]]]"""
import json, random, sys
from kvgen import evaluate, new_keys
out, n, seed = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
keyfrac = float(sys.argv[5]) if len(sys.argv) > 5 else 0.7
key_len = int(sys.argv[6]) if len(sys.argv) > 6 else 0
distinct = len(sys.argv) > 7 and sys.argv[7] == "1"
rng = random.Random(seed)
table = set(l.split("\t")[0] for l in open(sys.argv[1]))
with open(out, "w") as f:
    for _ in range(n):
        nk = 3 if distinct else rng.randint(1, 3)
        keys = new_keys(rng, table, nk, key_len)
        vals = rng.sample(range(50), nk)
        val = dict(zip(keys, vals))
        if distinct:
            ops = list(keys)
        else:
            ops = [rng.choice(keys) if rng.random() < keyfrac else str(rng.randint(0, 49)) for _ in range(3)]
        if not any(o in val for o in ops): ops[rng.randrange(3)] = rng.choice(keys)
        sig = [rng.choice("+-") for _ in range(2)]
        expr = ops[0] + sig[0] + ops[1] + sig[1] + ops[2]
        r = evaluate([val[o] if o in val else int(o) for o in ops], sig)
        used = list(keys)
        rng.shuffle(used)
        defs = ",".join(f"{k}={val[k]}" for k in used)
        f.write(json.dumps({"prompt": f"{defs};{expr}=", "target": str(r)}) + "\n")
