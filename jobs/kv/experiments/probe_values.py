#!/usr/bin/python3
"""Where does a model hold operand values? A diagnostic for docs/kv-arithmetic.md, not a test.

Runs a model (tests/torch_ref/llama_ref.py) on three-operand expressions and takes its residual
stream after every block at the position right after each operand (its operator or "="), the
position a composition reads in a KV-MATH prompt. Linear probes (ridge, one-hot) for the operand's
first and last digit are fitted on one set of prompts and scored on another:

  --mode augment  fitted on number operands ("12+7-33="), on composition keys, or both; scored on
                  held-out keys: can a map learnt there read the values mA holds for other keys?
  --mode anchor   number operands only, fitted on a random half of the table's values, scored on
                  the other half: does mB gather an operand's value at the operator after it?

--names NAMES_JSON ({"12": "name", ...}: mA-only number names, gen_cut.py) adds a probe fitted on
those names, which cover every value.

--at last probes the operand's last character instead, where a composition reads mA for an anchor
that takes a value at the operand's own position (jobs/kv/experiments/gen_glyphs.py).

Usage: probe_values.py MODEL_DIR DATA_DIR [--mode augment|anchor] [--at after|last]
                      [--names NAMES_JSON]   (DATA_DIR from calm data kv)
"""
import argparse, json, random

import torch

from torch_ref import llama_ref

ap = argparse.ArgumentParser()
ap.add_argument("model"); ap.add_argument("data"); ap.add_argument("--mode", default="augment")
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--at", choices=("after", "last"), default="after")
ap.add_argument("--names")
args = ap.parse_args()
torch.set_num_threads(1)
m = llama_ref.load_model_dir(args.model)
cfg = m.config
rows = [line.rstrip("\n").split("\t") for line in open(f"{args.data}/table.tsv")][1:]
val = {r[0]: int(r[1]) for r in rows}
comp = [r[0] for r in rows if r[2] == "1"]
held = [r[0] for r in rows if r[2] == "0"]
numbers = sorted({str(v) for v in val.values()})
rng = random.Random(args.seed)


def collect(pool, n, as_numbers=False):
    """States [layer] -> [n*3, C] after each operand, and the operands' values."""
    X, Y = [[] for _ in range(cfg.num_hidden_layers)], []
    for _ in range(n):
        ks = [rng.choice(pool) for _ in range(3)]
        ops = [rng.choice("+-") for _ in range(2)] + ["="]
        words = [str(val[k]) if as_numbers else k for k in ks]
        toks = torch.tensor([[256] + list("".join(w + o for w, o in zip(words, ops)).encode())])
        h = m.embed(toks)
        cos, sin = m.rope(h.shape[1], h.dtype, h.device)
        pos = 0
        with torch.no_grad():
            hs = []
            for layer in m.model.layers:
                h = layer(h, cos, sin)
                hs.append(h[0])
        for w in words:
            pos += len(w) + 1
            for i in range(len(X)):
                X[i].append(hs[i][pos - (args.at == "last")])
            Y.append(int(w) if w.isdigit() else val[w])
    return [torch.stack(x) for x in X], torch.tensor(Y)


def first(y):
    return torch.where(y >= 10, y // 10, y)


def last(y):
    return y % 10


def probe(train, test, layer, digit):
    a = torch.cat([x[layer] for x, _ in train])
    a = torch.cat([a, torch.ones(len(a), 1)], 1)
    y = torch.cat([digit(yy) for _, yy in train])
    w = torch.linalg.solve(a.T @ a + torch.eye(a.shape[1]), a.T @ torch.nn.functional.one_hot(y, 10).float())
    x, yt = test
    x = torch.cat([x[layer], torch.ones(len(x[layer]), 1)], 1)
    return ((x @ w).argmax(1) == digit(yt)).float().mean().item()


if args.mode == "augment":
    num, ck, hk = collect(numbers, 600), collect(comp, 300), collect(held, 400)
    fits = (("numbers", [num]), ("composition keys", [ck]), ("both", [num, ck]))
    if args.names:
        names = {k: int(v) for v, k in json.load(open(args.names)).items()}
        val.update(names)
        fits += (("mA-only names", [collect(sorted(names), 600)]),)
    test = hk
    print("probe fitted on -> accuracy on held-out keys (first digit / last digit)")
else:
    keys = sorted(val)
    rng.shuffle(keys)
    fits = (("half of the values", [collect(keys[: len(keys) // 2], 600, True)]),)
    test = collect(keys[len(keys) // 2:], 400, True)
    print("probe fitted on -> accuracy on the other values (first digit / last digit)")
for layer in range(cfg.num_hidden_layers):
    cells = [f"{name}: {probe(tr, test, layer, first):.2f} / {probe(tr, test, layer, last):.2f}" for name, tr in fits]
    print(f"after block {layer}: " + "; ".join(cells))
