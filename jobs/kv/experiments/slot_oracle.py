#!/usr/bin/python3
"""What a slot anchor (slot_anchor.py) makes of KV-MATH prompts when each key's value is added as
E(v) after the anchor's slot block at the character after the key: the oracle a composition can at
best reach. Also the teacher-forced answer loss along alpha * E(v) and the cosine of the loss's
steepest descent at alpha = 0 with E(v) and with E(v) - E(wrong value) (research tool).

  slot_oracle.py MB_DIR DATA_DIR [--limit N] [--block B]
"""
import argparse, json, random, re
import torch, torch.nn.functional as Fn
from torch_ref import llama_ref, safetensors_io

ap = argparse.ArgumentParser()
ap.add_argument("mB"); ap.add_argument("data")
ap.add_argument("--limit", type=int, default=100); ap.add_argument("--block", type=int, default=0)
ap.add_argument("--base", type=float, default=0.0,
                help="measure the descent at base * mean_v E(v) at the sites instead of at 0 (the shared part)")
a = ap.parse_args()
m = llama_ref.load_model_dir(a.mB)
cfg = m.config
S = safetensors_io.read(f"{a.mB}/slots.safetensors")[0]
A, B = torch.as_tensor(S["A"]), torch.as_tensor(S["B"])
E = lambda v: A[v // 10] + B[v % 10]
Ebar = torch.stack([E(v) for v in range(50)]).mean(0)
table = {l.split("\t")[0]: int(l.split("\t")[1]) for l in open(f"{a.data}/table.tsv").read().splitlines()[1:]}
rows = [json.loads(l) for l in open(f"{a.data}/eval_kv_math.jsonl")][:a.limit]
rng = random.Random(5)


def run(tokens, adds, y=None, w=None):
    h = m.embed(tokens)
    cos, sin = m.rope(h.shape[1], h.dtype, None)
    for l, layer in enumerate(m.model.layers):
        h = layer(h, cos, sin)
        if l == a.block:
            h = h + adds
    logits = Fn.linear(m.model.norm(h), m.lm_weight())
    return logits, (None if y is None else llama_ref.weighted_cross_entropy(logits, y, w))


def sites(prompt):
    return [(mt.end() + 1, table[mt.group()]) for mt in re.finditer(r"[a-z]+", prompt)]


ok = 0
alphas = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5]
losses = {x: 0.0 for x in alphas}
cos_v = cos_d = loss_base = 0.0; n_sites = 0
for r in rows:
    p, t = list(r["prompt"].encode()), list(r["target"].encode())
    toks = torch.tensor([[256] + p + t + [257]])
    x, y = toks[:, :-1], toks[:, 1:]
    w = torch.tensor([[0.0] * len(p) + [1.0] * (len(t) + 1)])
    add = torch.zeros(1, x.shape[1], cfg.hidden_size)
    for pos, v in sites(r["prompt"]):
        add[0, pos] += E(v)
    for al in alphas:
        with torch.no_grad():
            losses[al] += run(x, al * add, y, w)[1].item() / len(rows)
    base = torch.zeros_like(add)
    for pos, v in sites(r["prompt"]):
        base[0, pos] += a.base * Ebar
    with torch.no_grad():
        loss_base += run(x, base, y, w)[1].item() / len(rows)
    z = base.clone().requires_grad_(True)
    run(x, z, y, w)[1].backward()
    for pos, v in sites(r["prompt"]):
        g = -z.grad[0, pos]
        wrong = rng.choice([u for u in range(50) if u != v])
        cos_v += Fn.cosine_similarity(g, E(v), dim=0).item()
        cos_d += Fn.cosine_similarity(g, E(v) - E(wrong), dim=0).item()
        n_sites += 1
    # greedy answer with the oracle addition
    with torch.no_grad():
        xx = [256] + p; out = []
        for _ in range(6):
            ad = torch.zeros(1, len(xx), cfg.hidden_size)
            for pos, v in sites(r["prompt"]):
                ad[0, pos] += E(v)
            nxt = int(run(torch.tensor([xx]), ad)[0][0, -1].argmax())
            if nxt == 257:
                break
            out.append(nxt); xx.append(nxt)
        ok += nxt == 257 and bytes(out) == r["target"].encode()
print(json.dumps({"base": a.base, "loss_at_base": round(loss_base, 3), "oracle_accuracy": ok / len(rows), "loss_along_alpha": {str(k): round(v, 3) for k, v in losses.items()},
                  "cos(descent, E(v))": round(cos_v / n_sites, 3), "cos(descent, E(v)-E(wrong))": round(cos_d / n_sites, 3)}))
