#!/usr/bin/python3
"""Composition experiments in PyTorch: a CALM composition (tests/torch_ref/compose_ref.py) of two
calm model directories, trained on JSON Lines prompt/target files and scored by greedy exact match.
A research tool for docs/kv-arithmetic.md (the experiments table), not a test: it runs the same
method as `calm compose`, with switches for variants calm does not ship (--rope: rotary positions
in the cross-attention; --attend self: each anchor position reads only mA's state at the same
position, a position-wise map that is not the paper's method, to tell the cross-attention's
choice of position apart from the rest; --write-at keys: the composition's output is added only
at lowercase letters and the character after each run of them, i.e. at a KV prompt's keys and
their operators, a control for whether writing elsewhere, e.g. hedging at the answer positions,
is what keeps the composition from the keys' values).

  PYTHONPATH=tests /usr/bin/python3 jobs/kv/experiments/compose_torch.py --mA runs/kv-small/mA --mB runs/kv-small/mB \
      --train D/compose_kv_math.jsonl D/compose_num_math.jsonl --eval D/eval_kv_math.jsonl
"""
import argparse, json, math, random, re, time
import torch, torch.nn as nn, torch.nn.functional as Fn
from torch_ref import llama_ref, safetensors_io, compose_ref

p = argparse.ArgumentParser()
p.add_argument("--mA", required=True); p.add_argument("--mB", required=True)
p.add_argument("--train", nargs="+", required=True)
p.add_argument("--eval", nargs="+", default=[])
p.add_argument("--conn", default="3:0,3:1,3:2")
p.add_argument("--rope", type=int, default=0)
p.add_argument("--attend", choices=["causal", "self"], default="causal")
p.add_argument("--write-at", choices=["all", "keys"], default="all")
p.add_argument("--steps", type=int, default=1500); p.add_argument("--batch", type=int, default=64)
p.add_argument("--lr", type=float, default=3e-3); p.add_argument("--wd", type=float, default=0.01)
p.add_argument("--heads", type=int, default=0); p.add_argument("--limit", type=int, default=100)
p.add_argument("--threads", type=int, default=1); p.add_argument("--seed", type=int, default=21)
p.add_argument("--random-mA", type=int, default=0)
p.add_argument("--q-scale", type=float, default=1.0,
               help="scale q_proj's initial weights: the anchor's stream is un-normalised (norm 55-90 after block "
                    "0), so at 1 the cross-attention starts peaked on arbitrary positions (max probability 0.6)")
p.add_argument("--dump", default="", help="write every evaluated prompt with its greedy answer here (JSON Lines)")
p.add_argument("--slots", default="", help="TABLE.tsv: after training, report which value the composition "
               "writes after each key, read against the anchor's slot tables (mB/slots.safetensors, slot_anchor.py)")
a = p.parse_args()
torch.set_num_threads(a.threads); torch.manual_seed(a.seed); random.seed(a.seed)

mA, mB = llama_ref.load_model_dir(a.mA), llama_ref.load_model_dir(a.mB)
if a.random_mA:
    mA.init_random(std=0.02)
conn = [tuple(int(x) for x in c.split(":")) for c in a.conn.split(",")]


class RopeConn(compose_ref.CrossConnection):
    def forward(self, hB, hA):
        B, T, dB = hB.shape
        P = self.proj(hA)
        heads = lambda x: x.view(B, T, self.H, self.HS).transpose(1, 2)
        q, k, v = heads(self.q_proj(hB)), heads(self.k_proj(P)), heads(self.v_proj(P))
        if a.rope:
            cos, sin = llama_ref.rope_cos_sin(T, self.HS, 10000.0, q.dtype)
            q, k = llama_ref.apply_rope(q, cos, sin), llama_ref.apply_rope(k, cos, sin)
        s = (q @ k.transpose(-2, -1)) / math.sqrt(self.HS)
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        if a.attend == "self":
            causal = torch.eye(T, dtype=torch.bool)
        pr = torch.softmax(s.masked_fill(~causal, float("-inf")), dim=-1)
        out = self.o_proj((pr @ v).transpose(1, 2).reshape(B, T, dB))
        return out if comp.mask is None else out * comp.mask

def key_mask(tokens):
    """[B, T, 1]: 1 at lowercase letters and at the position after each run of them."""
    low = (tokens >= ord("a")) & (tokens <= ord("z"))
    after = torch.zeros_like(low)
    after[:, 1:] = low[:, :-1] & ~low[:, 1:]
    return (low | after).unsqueeze(-1).float()


class MaskedComposition(compose_ref.Composition):
    def forward(self, tokens, targets=None, weights=None):
        self.mask = key_mask(tokens) if a.write_at == "keys" else None
        return super().forward(tokens, targets, weights)


comp = MaskedComposition(mA, mB, conn, a.heads)
H = comp.H
comp.calm.connections = nn.ModuleList(RopeConn(mA.config.hidden_size, mB.config.hidden_size, H) for _ in conn)
comp.init_random()
with torch.no_grad():
    for c in comp.calm.connections:
        c.q_proj.weight.mul_(a.q_scale)

def rows(f):
    return [json.loads(l) for l in open(f)]
train = [r for f in a.train for r in rows(f)]

def encode(r):
    pr, tg = list(r["prompt"].encode()), list(r["target"].encode())
    toks = [256] + pr + tg + [257]
    w = [0] * (len(pr)) + [1] * (len(tg) + 1)
    return toks[:-1], toks[1:], w

def batch(rs):
    enc = [encode(r) for r in rs]
    T = max(len(e[0]) for e in enc)
    x = torch.full((len(rs), T), 258); y = torch.full((len(rs), T), 258); w = torch.zeros(len(rs), T)
    for i, (xi, yi, wi) in enumerate(enc):
        x[i, :len(xi)] = torch.tensor(xi); y[i, :len(yi)] = torch.tensor(yi); w[i, :len(wi)] = torch.tensor(wi, dtype=torch.float)
    return x, y, w

params = [q for q in comp.parameters() if q.requires_grad]
opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=a.wd, betas=(0.9, 0.95))
warm = a.steps // 20 + 1
def lr_at(s):
    if s < warm: return a.lr * (s + 1) / warm
    pr = (s - warm) / max(1, a.steps - warm)
    return a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * pr)))

answers = []


@torch.no_grad()
def evaluate(f, limit):
    rs = rows(f)[:limit]
    ok = 0
    # group by prompt length for batched greedy decoding
    groups = {}
    for r in rs: groups.setdefault(len(r["prompt"].encode()), []).append(r)
    for L, g in groups.items():
        x = torch.tensor([[256] + list(r["prompt"].encode()) for r in g])
        outs = [[] for _ in g]; done = [False] * len(g)
        for _ in range(8):
            logits, _ = comp(x)
            nxt = logits[:, -1].argmax(-1)
            for i, t in enumerate(nxt.tolist()):
                if not done[i]:
                    if t == 257: done[i] = True
                    else: outs[i].append(t)
            if all(done): break
            x = torch.cat([x, nxt[:, None]], 1)
        for r, o, d in zip(g, outs, done):
            ok += d and bytes(o) == r["target"].encode()
            answers.append({"file": f, "prompt": r["prompt"], "target": r["target"],
                            "answer": bytes(o).decode(errors="replace"), "ok": bool(d and bytes(o) == r["target"].encode())})
    return ok / len(rs)

t0 = time.time(); ema = None
for s in range(a.steps):
    for gp in opt.param_groups: gp["lr"] = lr_at(s)
    x, y, w = batch(random.sample(train, a.batch))
    _, loss = comp(x, y, w)
    opt.zero_grad(); loss.backward(); opt.step()
    ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
    if s % 100 == 0 or s == a.steps - 1:
        print(f"step {s} loss {loss.item():.3f} ema {ema:.3f} {time.time()-t0:.0f}s", flush=True)
res = {f.split("/")[-1]: evaluate(f, a.limit) for f in a.eval}


@torch.no_grad()
def site_values(f, limit):
    """Share of the sites after a key (its operator or '=') where the composition's addition is nearest,
    among E(0..49) of the anchor's slot tables, to E(the key's value); and its mean cosine with it."""
    table = {l.split("\t")[0]: int(l.split("\t")[1]) for l in open(a.slots).read().splitlines()[1:]}
    S = safetensors_io.read(a.mB + "/slots.safetensors")[0]
    Et = torch.stack([torch.as_tensor(S["A"])[v // 10] + torch.as_tensor(S["B"])[v % 10] for v in range(50)])
    added = {}
    conn_i = [i for i, (_, b) in enumerate(conn) if b == 0]
    def hook(i):
        def h(mod, inp, out):
            added[i] = out
        return h
    hs = [comp.calm.connections[i].register_forward_hook(hook(i)) for i in conn_i]
    hit = n = 0; cos = 0.0
    for r in rows(f)[:limit]:
        x = torch.tensor([[256] + list(r["prompt"].encode())])
        comp(x)
        add = sum(added[i] for i in conn_i)[0]
        for mt in re.finditer(r"[a-z]+", r["prompt"]):
            t = mt.end() + 1  # the character after the key, +1 for BOS
            d = add[t]
            sims = Fn.cosine_similarity(d[None], Et, dim=-1)
            v = table[mt.group()]
            hit += int(sims.argmax()) == v; cos += float(sims[v]); n += 1
    for h in hs:
        h.remove()
    return {"nearest_is_value": hit / n, "cos_with_value": cos / n}
if a.slots:
    for f in a.eval:
        if "kv_math" in f:
            res[f.split("/")[-1] + ":sites"] = site_values(f, a.limit)
if a.dump:
    with open(a.dump, "w") as fd:
        fd.writelines(json.dumps(x) + "\n" for x in answers)
print("RESULT", json.dumps(vars(a)), json.dumps(res), flush=True)
