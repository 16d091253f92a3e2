#!/usr/bin/python3
"""Is there a linear map from mA's stream to what a glyph anchor needs? A diagnostic for
docs/kv-arithmetic.md (sixth session), not a test.

For one-key expressions ("12+abc-7="), the anchor's stream after block 0 at the key's last letter
on the readable prompt (that letter replaced by the glyph of the key's value, gen_glyphs.py) is
what a composition into block 0 would have to produce there. Ridge regressions predict it from
mA's stream after its last block at the same position, and from an oracle (one-hot tens and ones
digits of the value); both are fitted on mA-only names (every value, gen_cut.py) and scored
(R^2) on keys outside the composition's 20%.

Usage: glyph_map.py MA_DIR MB_DIR GLYPHS_JSON NAMES_JSON TABLE_TSV"""
import json, random, sys
import torch, torch.nn.functional as Fn
from torch_ref import llama_ref

torch.set_num_threads(1)

mA, mB = llama_ref.load_model_dir(sys.argv[1]), llama_ref.load_model_dir(sys.argv[2])
glyph = json.load(open(sys.argv[3]))
names = {k: int(v) for v, k in json.load(open(sys.argv[4])).items()}
rows = [l.rstrip("\n").split("\t") for l in list(open(sys.argv[5]))[1:]]
val = {r[0]: int(r[1]) for r in rows}
held = [r[0] for r in rows if r[2] == "0"]
val.update(names)
rng = random.Random(1)


@torch.no_grad()
def last_stream(m, text, block, pos):
    h = m.embed(torch.tensor([[256] + list(text.encode())]))
    cos, sin = m.rope(h.shape[1], h.dtype, h.device)
    for layer in m.model.layers[:block + 1]:
        h = layer(h, cos, sin)
    return h[0, pos]


def collect(pool, n):
    XA, V, H = [], [], []
    for _ in range(n):
        ts = [str(rng.randint(0, 49)) for _ in range(3)]
        i, k = rng.randrange(3), rng.choice(pool)
        ts[i] = k
        ops = [rng.choice("+-") for _ in range(2)] + ["="]
        kv = "".join(t + o for t, o in zip(ts, ops))
        rd = "".join((t[:-1] + glyph[str(val[t])] if j == i else t) + o for j, (t, o) in enumerate(zip(ts, ops)))
        end = 1 + sum(len(t) + 1 for t in ts[:i]) + len(k) - 1
        XA.append(torch.cat([last_stream(mA, kv, mA.config.num_hidden_layers - 1, end), torch.ones(1)]))
        H.append(last_stream(mB, rd, 0, end))
        V.append(torch.cat([Fn.one_hot(torch.tensor(val[k] // 10), 5).float(),
                            Fn.one_hot(torch.tensor(val[k] % 10), 10).float(), torch.ones(1)]))
    return torch.stack(XA), torch.stack(V), torch.stack(H)


Xn, Vn, Hn = collect(sorted(names), 1500)
Xh, Vh, Hh = collect(held, 300)
print("ridge fitted on mA-only names -> R^2 on held-out keys of the anchor's glyph state after block 0")
for lam in (1, 10, 100):
    cells = []
    for tag, A, B in (("from mA's stream", Xn, Xh), ("from the value's digits (oracle)", Vn, Vh)):
        W = torch.linalg.solve(A.T @ A + lam * torch.eye(A.shape[1]), A.T @ Hn)
        r = Hh - B @ W
        cells.append(f"{tag}: {1 - (r ** 2).sum() / ((Hh - Hh.mean(0)) ** 2).sum():.2f}")
    print(f"lambda {lam}: " + "; ".join(cells))
