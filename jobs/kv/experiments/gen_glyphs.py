#!/usr/bin/python3
"""Anchor data with one-character numerals (docs/kv-arithmetic.md, sixth session): every value 0-49
has a glyph (A-Z, then ASCII punctuation other than + - * = " \\), so an operand written that way
occupies a single position, where a composition can add a value. A glyph operand may stand among
random lowercase filler letters (up to 4 before; up to 2 after with probability --post), which
carry nothing, so that the letters of a KV-MATH prompt's keys are what the anchor expects around a
value: nothing it reads.
Usage: gen_glyphs.py OUT_DIR [--math N] [--glyph N] [--lookup N] [--post P]
  writes anchor.jsonl (NUM-MATH, GLYPH-MATH, glyph lookups, shuffled), eval_glyph.jsonl (300
  all-glyph expressions), eval_glyph_bare.jsonl (300 without fillers), glyphs.json"""
import argparse, json, random
from kvgen import expression, letters, math_row, row

GLYPHS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ!#$%&'(),./;<>?@[]^_`{|}~"[:50]
ap = argparse.ArgumentParser()
ap.add_argument("out"); ap.add_argument("--math", type=int, default=100000)
ap.add_argument("--glyph", type=int, default=100000); ap.add_argument("--lookup", type=int, default=30000)
ap.add_argument("--post", type=float, default=0.3)
args = ap.parse_args()
out, n_math, n_glyph, n_lookup = args.out, args.math, args.glyph, args.lookup
rng = random.Random(5)


def glyph(v, fill=True):
    if not fill:
        return GLYPHS[v]
    pre = letters(rng, rng.randint(1, 4)) if rng.random() < 0.7 else ""
    post = letters(rng, rng.randint(1, 2)) if rng.random() < args.post else ""
    return pre + GLYPHS[v] + post


def written(vs, p, fill=True):
    return [glyph(v, fill) if rng.random() < p else str(v) for v in vs]


rows = []
for _ in range(n_math):
    vs, ops, r = expression(rng)
    rows.append(math_row([str(v) for v in vs], ops, r))
for _ in range(n_glyph):
    vs, ops, r = expression(rng)
    rows.append(math_row(written(vs, 0.75), ops, r))
for _ in range(n_lookup):
    vs, ops, r = expression(rng)
    ts = written(vs, 0.75)
    upto = rng.randint(1, 3)
    rows.append(row("".join(ts[j] + (ops[j] if j < 2 else "=") for j in range(upto)), vs[upto - 1]))
rng.shuffle(rows)
open(out + "/anchor.jsonl", "w").writelines(rows)
for name, fill in (("eval_glyph", True), ("eval_glyph_bare", False)):
    with open(f"{out}/{name}.jsonl", "w") as f:
        for _ in range(300):
            vs, ops, r = expression(rng)
            f.write(math_row(written(vs, 1.0, fill), ops, r))
json.dump({v: GLYPHS[v] for v in range(50)}, open(out + "/glyphs.json", "w"))
