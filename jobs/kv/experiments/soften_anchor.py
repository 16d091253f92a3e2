#!/usr/bin/python3
"""Fine-tune a glyph anchor (gen_glyphs.py) to read faint glyphs: a diagnostic for
docs/kv-arithmetic.md, not part of the shipped method.

oracle_path.py finds that a glyph anchor's answer loss does not fall along the additive term a
composition would have to learn until the term is nearly whole: a partial glyph reads as a
confident wrong value, so descent from the composition's start (adding nothing) gets no signal.
This script trains the anchor on its own data with some glyphs made faint: the glyph's input
embedding replaced by e(letter) + lam * (e(glyph) - e(letter)), a random lowercase letter, lam
uniform in [--lam-min, 1], the target unchanged. An anchor that reads a glyph in proportion to
its strength should let the answer loss lead a composition toward the full term.

Usage: soften_anchor.py MODEL_DIR ANCHOR_JSONL GLYPHS_JSON OUT_DIR [--steps N] [--p P]
  writes OUT_DIR/config.json (copied) and OUT_DIR/model.safetensors"""
import argparse, json, os, random, shutil

import torch

from torch_ref import llama_ref, safetensors_io
import trainloop

ap = argparse.ArgumentParser()
ap.add_argument("model"); ap.add_argument("data"); ap.add_argument("glyphs"); ap.add_argument("out")
ap.add_argument("--steps", type=int, default=1500); ap.add_argument("--batch", type=int, default=64)
ap.add_argument("--lr", type=float, default=1e-3); ap.add_argument("--p", type=float, default=0.5,
                help="probability that a glyph in a prompt is made faint")
ap.add_argument("--lam-min", type=float, default=0.0)
ap.add_argument("--threads", type=int, default=1); ap.add_argument("--seed", type=int, default=3)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
rng = random.Random(a.seed)
m = llama_ref.load_model_dir(a.model)
glyph_ids = set(ord(c) for c in json.load(open(a.glyphs)).values())
rows = [json.loads(l) for l in open(a.data)]
BOS, EOS, PAD = 256, 257, 258
LOWER = [ord(c) for c in "abcdefghijklmnopqrstuvwxyz"]


def batch(rs):
    """Inputs, targets, loss weights (answer bytes and EOS), and the faint glyphs: (row, position,
    letter, lam)."""
    seqs = []
    for r in rs:
        pr, tg = list(r["prompt"].encode()), list(r["target"].encode())
        seqs.append(([BOS] + pr + tg, pr + tg + [EOS], [0] * len(pr) + [1] * (len(tg) + 1)))
    T = max(len(s[0]) for s in seqs)
    x = torch.full((len(rs), T), PAD); y = torch.full((len(rs), T), PAD); w = torch.zeros(len(rs), T)
    faint = []
    for i, (xi, yi, wi) in enumerate(seqs):
        x[i, :len(xi)] = torch.tensor(xi); y[i, :len(yi)] = torch.tensor(yi)
        w[i, :len(wi)] = torch.tensor(wi, dtype=torch.float)
        n_prompt = len(rs[i]["prompt"].encode())
        for t in range(1, n_prompt + 1):
            if xi[t] in glyph_ids and rng.random() < a.p:
                faint.append((i, t, rng.choice(LOWER), a.lam_min + (1 - a.lam_min) * rng.random()))
    return x, y, w, faint


n_faint = [0]


def step_loss():
    x, y, w, faint = batch(rng.sample(rows, a.batch))
    n_faint[0] = len(faint)
    E = m.model.embed_tokens.weight
    h = m.embed(x)
    if faint:
        i, t, letter, lam = (torch.tensor(v) for v in zip(*faint))
        mixed = E[letter] + lam[:, None] * (E[x[i, t]] - E[letter])
        h = h.index_put((i, t), mixed)
    return m.forward_embeds(h, y, w)[1]


trainloop.train(list(m.parameters()), a.steps, a.lr, step_loss, note=lambda: f" faint {n_faint[0]}")

os.makedirs(a.out, exist_ok=True)
shutil.copy(f"{a.model}/config.json", f"{a.out}/config.json")
state = [(k, v.detach().numpy()) for k, v in m.named_parameters()]
tmp = f"{a.out}/model.safetensors.tmp"
safetensors_io.write(tmp, state)
os.replace(tmp, f"{a.out}/model.safetensors")
print(f"wrote {a.out}")
