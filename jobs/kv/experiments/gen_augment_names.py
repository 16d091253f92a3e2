#!/usr/bin/python3
"""Number names known to mA only (docs/kv-arithmetic.md, experiments): every value 0-49 gets a random
2-6 letter name that is neither a key of the table nor one of the anchor's names (gen_names.py).
Writes lookups for mA ("name+" -> value, half last digit first; 30% number operands) and
NAME-MATH expressions over these names and numbers for the composition set and its evaluation:
mB cannot read the names, mA holds their values, so the composition must learn to carry mA's
values into mB over the whole value range.
Usage: gen_augment_names.py TABLE_TSV ANCHOR_NAMES_JSON OUT_DIR [N_COMPOSE (default 3000)]"""
import json, random, sys
from kvgen import fresh_names, write_name_sets
table_path, anchor_names, out = sys.argv[1], sys.argv[2], sys.argv[3]
n_compose = int(sys.argv[4]) if len(sys.argv) > 4 else 3000
rng = random.Random(4)
names = fresh_names(rng, set(l.split("\t")[0] for l in open(table_path)) |
                    set(json.load(open(anchor_names)).values()))
write_name_sets(rng, names, out, n_compose)
