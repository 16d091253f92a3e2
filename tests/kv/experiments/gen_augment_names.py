#!/usr/bin/python3
"""Number names known to mA only (docs/kv-arithmetic.md, experiments): every value 0-49 gets a random
2-6 letter name that is neither a key of the table nor one of the anchor's names (gen_names.py).
Writes lookups for mA ("name+" -> value, half last digit first; 30% number operands) and
NAME-MATH expressions over these names and numbers for the composition set and its evaluation:
mB cannot read the names, mA holds their values, so the composition must learn to carry mA's
values into mB over the whole value range.
Usage: gen_augment_names.py TABLE_TSV ANCHOR_NAMES_JSON OUT_DIR"""
import json, random, sys
table_path, anchor_names, out = sys.argv[1], sys.argv[2], sys.argv[3]
rng = random.Random(4)
used = set(l.split("\t")[0] for l in open(table_path)) | set(json.load(open(anchor_names)).values())
names = {}
for v in range(50):
    while True:
        k = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 6)))
        if k not in used:
            used.add(k); names[v] = k; break
def expr(p_name):
    vs = [rng.randint(0, 49) for _ in range(3)]; ops = [rng.choice("+-") for _ in range(2)]
    ts = [names[v] if rng.random() < p_name else str(v) for v in vs]
    if all(t.isdigit() for t in ts):
        i = rng.randrange(3); ts[i] = names[vs[i]]
    r = vs[0] + (vs[1] if ops[0] == "+" else -vs[1]); r = r + (vs[2] if ops[1] == "+" else -vs[2])
    return ts, vs, ops, r
with open(out + "/augment_names_lookup.jsonl", "w") as f:
    for _ in range(20000):
        ts, vs, ops, r = expr(0.7)
        upto = rng.randint(1, 3)
        p = "".join(ts[j] + (ops[j] if j < 2 else "=") for j in range(upto))
        t = str(vs[upto - 1]); t = t[::-1] if rng.random() < 0.5 else t
        f.write(json.dumps({"prompt": p, "target": t}) + "\n")
seen = set()
for name, n in (("eval_name_math", 300), ("compose_name_math", 3000)):
    with open(f"{out}/{name}.jsonl", "w") as f:
        made = 0
        while made < n:
            ts, vs, ops, r = expr(0.7)
            p = ts[0] + ops[0] + ts[1] + ops[1] + ts[2] + "="
            if p in seen: continue
            seen.add(p); made += 1
            f.write(json.dumps({"prompt": p, "target": str(r)}) + "\n")
json.dump(names, open(out + "/augment_names.json", "w"))
