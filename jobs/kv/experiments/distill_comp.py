#!/usr/bin/python3
"""Can the paper's composition express what a glyph anchor needs? A diagnostic for
docs/kv-arithmetic.md (sixth session), not a method calm ships.

Trains a composition (tests/torch_ref/compose_ref.py, one connection A:B) not on the LM loss but to
make the composed anchor's stream after block B, at every position, equal the anchor's own stream
on the readable prompt, where each operand that is a name or key has its last letter replaced by the
glyph of its value (gen_glyphs.py), or with --sites only at each such operand's last letter and
the character after it (where patch_anchor.py --glyphs adds). Then scores greedy answers like compose_torch.py. If this
composition answers held-out keys, the cross-attention can carry what the anchor needs and a
failure of LM-loss training is one of optimisation, not of expressiveness.

Usage: distill_comp.py --mA DIR --mB DIR --glyphs GLYPHS_JSON --table TABLE_TSV --names NAMES_JSON
         --train FILE... --eval FILE... [--conn 3:0] [--steps 1500] [--lr 3e-3]"""
import argparse, json, math, random, re, time
import torch
from torch_ref import llama_ref, compose_ref

p = argparse.ArgumentParser()
p.add_argument("--mA", required=True); p.add_argument("--mB", required=True)
p.add_argument("--glyphs", required=True); p.add_argument("--table", required=True)
p.add_argument("--names", required=True)
p.add_argument("--train", nargs="+", required=True); p.add_argument("--eval", nargs="+", default=[])
p.add_argument("--conn", default="3:0"); p.add_argument("--steps", type=int, default=1500)
p.add_argument("--batch", type=int, default=64); p.add_argument("--lr", type=float, default=3e-3)
p.add_argument("--limit", type=int, default=100)
p.add_argument("--sites", action="store_true", help="match only each key's last letter and the character after it")
a = p.parse_args()
torch.set_num_threads(1); torch.manual_seed(21); random.seed(21)

mA, mB = llama_ref.load_model_dir(a.mA), llama_ref.load_model_dir(a.mB)
ca, cb = (int(x) for x in a.conn.split(":"))
comp = compose_ref.Composition(mA, mB, [(ca, cb)])
comp.init_random()
glyph = json.load(open(a.glyphs))
value = {l.split("\t")[0]: int(l.split("\t")[1]) for l in list(open(a.table))[1:]}
value.update({k: int(v) for v, k in json.load(open(a.names)).items()})
rows = [json.loads(l) for f in a.train for l in open(f)]


def readable(prompt):
    return "".join(w[:-1] + glyph[str(value[w])] if w in value else w for w in re.split(r"([-+=])", prompt))


def site_mask(prompt, T):
    """1 at each key's or name's last letter and the character after it (positions after BOS)."""
    m, pos = [0.0] * T, 1
    for w in re.split(r"([-+=])", prompt):
        if w in value:
            m[pos + len(w) - 1] = m[pos + len(w)] = 1.0
        pos += len(w)
    return m


def pad(seqs):
    T = max(len(s) for s in seqs)
    return torch.tensor([s + [258] * (T - len(s)) for s in seqs]), torch.tensor([[1.0] * len(s) + [0.0] * (T - len(s)) for s in seqs])




def anchor_block_out(toks, comp_on):
    """Anchor stream after block cb, with or without the composition's addition."""
    m = mB
    h = m.embed(toks)
    cos, sin = m.rope(h.shape[1], h.dtype, h.device)
    for l, layer in enumerate(m.model.layers[:cb + 1]):
        h = layer(h, cos, sin)
    if comp_on:
        hA = comp.augment_streams(toks)[ca]
        h = h + comp.calm.connections[0](h, hA)
    return h


params = [q for _, q in comp.composition_parameters()]
opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.01, betas=(0.9, 0.95))
t0 = time.time()
for s in range(a.steps):
    lr = a.lr * min(1, (s + 1) / 76) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / a.steps)))
    for g in opt.param_groups: g["lr"] = lr
    rs = random.sample(rows, a.batch)
    kt, w = pad([[256] + list((r["prompt"] + r["target"]).encode()) for r in rs])
    rt, _ = pad([[256] + list((readable(r["prompt"]) + r["target"]).encode()) for r in rs])
    if a.sites:
        w = torch.tensor([site_mask(r["prompt"], kt.shape[1]) for r in rs])
    with torch.no_grad():
        want = anchor_block_out(rt, False)
    got = anchor_block_out(kt, True)
    loss = (((got - want) ** 2).sum(-1) * w).sum() / w.sum()
    opt.zero_grad(); loss.backward(); opt.step()
    if s % 250 == 0 or s == a.steps - 1:
        print(f"distill step {s} mse {loss.item():.3f} {time.time() - t0:.0f}s", flush=True)


@torch.no_grad()
def evaluate(f):
    ok, rs = 0, [json.loads(l) for l in open(f)][:a.limit]
    for r in rs:
        x = torch.tensor([[256] + list(r["prompt"].encode())])
        out = []
        for _ in range(8):
            t = int(comp(x)[0][0, -1].argmax())
            if t == 257: break
            out.append(t); x = torch.cat([x, torch.tensor([[t]])], 1)
        ok += bytes(out) == r["target"].encode()
    return ok / len(rs)


print("RESULT distilled", json.dumps({f.split("/")[-1]: evaluate(f) for f in a.eval}), flush=True)
