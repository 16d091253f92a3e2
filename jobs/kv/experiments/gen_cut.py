#!/usr/bin/python3
"""mA data for a composition that reads mA at a key's last letter (docs/kv-arithmetic.md, sixth
session). A causal composition may read mA only up to the anchor's own position; an anchor that
takes an operand's value at the operand's last position therefore needs mA to know the value
there, not only at the character after it (where KV-LOOKUP teaches it). Writes:
  augment_cut.jsonl        lookups cut right after a key or name ("abc+de" -> de's value, half of
                           them last digit first), keys of the whole table and mA-only names
  augment_names_lookup.jsonl  lookups of the names cut after the next character, as KV-LOOKUP
  compose_name_math.jsonl, eval_name_math.jsonl   NAME-MATH over the names and numbers
  augment_names.json       the names: a random 2-6 letter name for every value 0-49, no key or
                           name a prefix of another, so the last letter ends it unambiguously
Usage: gen_cut.py TABLE_TSV OUT_DIR [N_CUT N_COMPOSE]"""
import random, sys
from kvgen import row, word, write_name_sets
table_path, out = sys.argv[1], sys.argv[2]
n_cut, n_compose = (int(a) for a in (sys.argv[3:5] if len(sys.argv) >= 5 else (30000, 3000)))
rng = random.Random(6)
table = {l.split("\t")[0]: int(l.split("\t")[1]) for l in list(open(table_path))[1:]}
taken = list(table)
names = {}
for v in range(50):
    while True:
        k = word(rng)
        if not any(k.startswith(t) or t.startswith(k) for t in taken):
            taken.append(k); names[v] = k; break
value = dict(table); value.update({k: v for v, k in names.items()})
keys = list(value)
def operand():
    """A number 0-49 (30%) or a random key or name."""
    v = rng.randint(0, 49)
    return str(v) if rng.random() < 0.3 else rng.choice(keys)
with open(out + "/augment_cut.jsonl", "w") as f:
    for _ in range(n_cut):
        ts = [rng.choice(keys) if i == 0 else operand() for i in range(3)]
        ops = [rng.choice("+-") for _ in range(2)]
        cand = [j for j, t in enumerate(ts) if not t.isdigit()]
        j = rng.choice(cand)
        p = "".join(ts[i] + ops[i] for i in range(j)) + ts[j]
        t = str(value[ts[j]]); t = t[::-1] if rng.random() < 0.5 else t
        f.write(row(p, t))
write_name_sets(rng, names, out, n_compose)
