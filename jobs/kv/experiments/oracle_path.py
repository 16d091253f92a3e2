#!/usr/bin/python3
"""Does the answer loss lead to the additive term that patch_anchor.py's screen finds? A diagnostic
for docs/kv-arithmetic.md (glyph anchors, gen_glyphs.py).

patch_anchor.py --glyphs shows that adding d = (anchor's stream on the readable prompt) - (its stream
on a prompt with other random keys) at each key's last letter and the character after it, after one
block, makes a glyph anchor answer a third of held-out KV-MATH. A composition is trained on the
answer loss alone, starting from adding nothing. This script measures the teacher-forced answer
loss (each answer's mean nats per byte, EOS included, averaged over the examples) along the
straight path alpha * d from 0 to 1.5 x the term, and the loss with only the part of d that is the
same for every value (its mean over the examples). At alpha = 0 it takes the steepest descent at
the sites and reports its cosine with d, with d - d_wrong (the term for another value: the part
that says which value), and with a random direction of the same size.

With --calm DIR --mA DIR (a trained composition of mA into this anchor with a connection into
block B) it also compares what that composition adds at the sites with d (size and cosines), and
with the term for every value: which value's term it resembles most at each site, whether that is
the key's value, and how often it is the same value everywhere.

Usage: oracle_path.py MODEL_DIR DATA_DIR GLYPHS_JSON [--block B] [--limit N] [--calm DIR --mA DIR]
  DATA_DIR from `calm data kv` (table.tsv, eval_kv_math.jsonl)."""
import argparse, json, random, re

import torch

from torch_ref import compose_ref, llama_ref, safetensors_io
from kvgen import letters

ap = argparse.ArgumentParser()
ap.add_argument("model"); ap.add_argument("data"); ap.add_argument("glyphs")
ap.add_argument("--block", type=int, default=0); ap.add_argument("--limit", type=int, default=100)
ap.add_argument("--calm"); ap.add_argument("--mA")
args = ap.parse_args()
if bool(args.calm) != bool(args.mA):
    ap.error("--calm and --mA go together")
torch.set_num_threads(1)
torch.manual_seed(0)
m = llama_ref.load_model_dir(args.model)
cfg = m.config
for q in m.parameters():
    q.requires_grad_(False)
comp = None
if args.calm:
    mA = llama_ref.load_model_dir(args.mA)
    cc = json.load(open(f"{args.calm}/calm_config.json"))
    conns = [tuple(c) for c in cc["connections"]]
    if args.block not in [b for _, b in conns]:
        ap.error(f"{args.calm} has no connection into block {args.block}")
    comp = compose_ref.Composition(mA, m, conns, cc.get("heads", 0))
    w = safetensors_io.read(f"{args.calm}/calm.safetensors")[0]
    with torch.no_grad():
        for name, q in comp.composition_parameters():
            q.copy_(torch.as_tensor(w[name]))
    ci = [b for _, b in conns].index(args.block)
    ca = conns[ci][0]
val = {r[0]: int(r[1]) for r in (l.rstrip("\n").split("\t") for l in list(open(f"{args.data}/table.tsv"))[1:])}
glyphs = json.load(open(args.glyphs))
BOS, EOS = 256, 257
rng = random.Random(1)


def stream(toks, delta=None):
    """Block outputs [L][T, C] and logits [T, V]; delta [T, C] is added after block args.block."""
    h = m.embed(torch.tensor([toks]))
    cos, sin = m.rope(h.shape[1], h.dtype, h.device)
    hs = []
    for i, layer in enumerate(m.model.layers):
        h = layer(h, cos, sin)
        if delta is not None and i == args.block:
            h = h + delta[None]
        hs.append(h[0])
    return hs, torch.nn.functional.linear(m.model.norm(h), m.lm_weight())[0]


def answer_loss(toks, n_prompt, delta=None):
    """Mean cross-entropy of the answer bytes and EOS, from the positions that predict them."""
    _, logits = stream(toks[:-1], delta)
    return torch.nn.functional.cross_entropy(logits[n_prompt - 1:], torch.tensor(toks[n_prompt:]))


def prepare(ex):
    """Tokens (prompt + answer + EOS), prompt length, site positions and the term d at them."""
    keys = re.split(r"[-+=]", ex["prompt"])[:-1]
    ops = re.findall(r"[-+=]", ex["prompt"])
    words = [k[:-1] + glyphs[str(val[k])] for k in keys]
    other = [letters(rng, len(k)) for k in keys]
    ans = list(ex["target"].encode()) + [EOS]
    kt = [BOS] + list(ex["prompt"].encode())
    st = [BOS] + list("".join(w + o for w, o in zip(words, ops)).encode())
    ot = [BOS] + list("".join(k + o for k, o in zip(other, ops)).encode())
    # the same prompt with each glyph replaced by that of another value: d - d_wrong is the part
    # of the term that says which value, at the same positions
    wrong = [k[:-1] + glyphs[str(rng.choice([v for v in range(50) if v != val[k]]))] for k in keys]
    wt = [BOS] + list("".join(w + o for w, o in zip(wrong, ops)).encode())
    hs, _ = stream(st)
    ho, _ = stream(ot)
    hw, _ = stream(wt)
    # the prompts have the same layout (each key as long as its glyph word), so positions match
    sites, pos = [], 1
    for k in keys:
        pos += len(k)
        sites += [pos - 1, pos]  # the key's last letter and the character after it
        pos += 1
    d = torch.zeros(len(kt) + len(ans) - 1, cfg.hidden_size)
    dw = torch.zeros_like(d)
    for s in sites:
        d[s] = hs[args.block][s] - ho[args.block][s]
        dw[s] = hs[args.block][s] - hw[args.block][s]
    return kt + ans, len(kt), st + ans, len(st), sites, d, dw


alphas = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5]
path = [0.0] * len(alphas)
readable = 0.0
cos_d, cos_r, cos_w, slope_d = [], [], [], []
comp_size, comp_cos_d, comp_cos_w = [], [], []
comp_best_cos, comp_best_hit, comp_best_value = [], [], []
examples = [json.loads(l) for l in open(f"{args.data}/eval_kv_math.jsonl")][:args.limit]
prepared = [prepare(ex) for ex in examples]
# the part of the term that is the same for every value: its mean over all examples, for a key's
# last letter and for the character after it (sites alternate: last letter, character after)
common = [torch.stack([p[5][p[4][i]] for p in prepared for i in range(j, len(p[4]), 2)]).mean(0) for j in (0, 1)]
common_loss, cos_c = 0.0, []
for ex, (toks, n_kt, rt, n_st, sites, d, dw) in zip(examples, prepared):
    readable += answer_loss(rt, n_st).item()
    dc = torch.zeros_like(d)
    for i, s_ in enumerate(sites):
        dc[s_] = common[i % 2]
    common_loss += answer_loss(toks, n_kt, dc).item()
    for j, al in enumerate(alphas):
        path[j] += answer_loss(toks, n_kt, al * d).item()
    if comp is not None:
        with torch.no_grad():
            hB, _ = stream(toks[:n_kt])
            hA = comp.augment_streams(torch.tensor([toks[:n_kt]]))[ca]
            added = comp.calm.connections[ci](hB[args.block][None], hA)[0][sites].flatten()
        dv, dwv = d[sites].flatten(), dw[sites].flatten()
        comp_size.append(float(added.norm() / dv.norm()))
        comp_cos_d.append(float(added @ dv / (added.norm() * dv.norm() + 1e-30)))
        comp_cos_w.append(float(added @ dwv / (added.norm() * dwv.norm() + 1e-30)))
        # every key written as value g's glyph, g = 0..49: the term for g at each site
        keys = re.split(r"[-+=]", ex["prompt"])[:-1]
        ops = re.findall(r"[-+=]", ex["prompt"])
        ho = stream(toks[:n_kt])[0][args.block]  # the KV prompt itself as the baseline
        per_site = added.view(len(sites), -1)
        best = torch.full((len(sites),), -2.0), torch.zeros(len(sites), dtype=torch.long)
        with torch.no_grad():
            for g in range(50):
                gt = [BOS] + list("".join(k[:-1] + glyphs[str(g)] + o for k, o in zip(keys, ops)).encode())
                dg = stream(gt)[0][args.block][sites] - ho[sites]
                c = torch.nn.functional.cosine_similarity(per_site, dg, dim=1)
                better = c > best[0]
                best[0][better], best[1][better] = c[better], g
        truth = torch.tensor([val[k] for k in keys for _ in range(2)])
        comp_best_cos += best[0].tolist()
        comp_best_hit += (best[1] == truth).tolist()
        comp_best_value += best[1].tolist()
    z = torch.zeros_like(d, requires_grad=True)
    answer_loss(toks, n_kt, z).backward()
    g = -z.grad[sites].flatten()  # steepest descent, at the sites only
    dv = d[sites].flatten()
    r = torch.randn_like(dv) * dv.norm() / dv.numel() ** 0.5
    cos_d.append(float(g @ dv / (g.norm() * dv.norm() + 1e-30)))
    cos_c.append(float(g @ dc[sites].flatten() / (g.norm() * dc[sites].norm() + 1e-30)))
    cos_w.append(float(g @ dw[sites].flatten() / (g.norm() * dw[sites].norm() + 1e-30)))
    cos_r.append(float(g @ r / (g.norm() * r.norm() + 1e-30)))
    slope_d.append(float(g @ dv))

n = len(examples)
print(f"{n} held-out KV-MATH examples, term added after block {args.block}")
print(f"answer loss on the readable prompt (glyphs): {readable / n:.3f}")
for al, v in zip(alphas, path):
    print(f"answer loss with {al:4.2f} x the term: {v / n:.3f}")
mean = lambda xs: sum(xs) / len(xs)
print(f"cosine(steepest descent at 0, term): mean {mean(cos_d):.3f}, "
      f"positive in {sum(c > 0 for c in cos_d)}/{n}")
print(f"answer loss with the term's value-independent part (its mean over examples) alone: {common_loss / n:.3f}")
print(f"cosine(steepest descent at 0, that part): mean {mean(cos_c):.3f}")
print(f"cosine(steepest descent at 0, term with the right value - term with a wrong one): mean {mean(cos_w):.3f}, "
      f"positive in {sum(c > 0 for c in cos_w)}/{n}")
print(f"cosine(steepest descent at 0, random direction): mean {mean(cos_r):.3f}")
print(f"first-order loss drop along the whole term: {mean(slope_d):.3f}")
if comp is not None:
    print(f"{args.calm} at the sites: size / size of the term {mean(comp_size):.3f}, "
          f"cosine with the term {mean(comp_cos_d):.3f}, with right - wrong {mean(comp_cos_w):.3f}")
    top = max(set(comp_best_value), key=comp_best_value.count)
    print(f"{args.calm} at each site, the value whose term it resembles most: the key's own value at "
          f"{mean(comp_best_hit):.3f} of {len(comp_best_hit)} sites (chance 0.02), cosine {mean(comp_best_cos):.3f}; "
          f"the commonest such value ({top}) at {comp_best_value.count(top) / len(comp_best_value):.3f}")
