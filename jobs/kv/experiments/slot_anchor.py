#!/usr/bin/python3
"""Train an anchor (from scratch) that reads operands both as digits and as *value vectors added
to its residual stream*, the interface a composition writes to (research tool, docs/kv-arithmetic.md).

NUM-MATH rows (`12+7-33=` -> `-14`) are used as they are, and, with probability --p-slot, as
SLOT-MATH: each operand, with probability --p-op (at least one), is replaced by a fresh random word
of 2-6 letters (never a key of the table), and its value v is added after block --block at the
character that follows the word (its operator or `=`) as E(v) = A[v // 10] + B[v % 10], two
learnt 10 x C tables. Digit operands get E(v) at their following character too with probability
--q-num, so that an addition there that agrees with the digits is harmless; with --q-lie, some of
those digits are replaced by random ones, so that the addition, not the characters, decides. A and B are saved
beside the model (slots.safetensors) for diagnosis; the model directory is a plain Llama.

  slot_anchor.py DATA_DIR OUT_DIR [--steps N] [--block B] [--p-slot P] ...
"""
import argparse, json, os, random, re, sys
import torch
from torch_ref import llama_ref, safetensors_io
import trainloop
from kvgen import word

ap = argparse.ArgumentParser()
ap.add_argument("data"); ap.add_argument("out")
ap.add_argument("--dim", type=int, default=128); ap.add_argument("--layers", type=int, default=4)
ap.add_argument("--heads", type=int, default=4); ap.add_argument("--ffn", type=int, default=352)
ap.add_argument("--steps", type=int, default=6000); ap.add_argument("--batch", type=int, default=64)
ap.add_argument("--lr", type=float, default=1e-3); ap.add_argument("--block", type=int, default=0)
ap.add_argument("--p-slot", type=float, default=0.5); ap.add_argument("--p-op", type=float, default=0.5)
ap.add_argument("--q-num", type=float, default=0.5)
ap.add_argument("--q-lie", type=float, default=0.0,
                help="share of the digit operands given E(v) whose digits are replaced by other random digits: "
                     "the anchor learns that an added value overrides the characters it reads")
ap.add_argument("--digit-noise", type=float, default=0.0,
                help="share of the digit operands without E(v) whose digits are replaced by random ones (target "
                     "unchanged): digits become a less certain channel than an added value")
ap.add_argument("--soft", type=float, default=1.0,
                help="each added E(v) is scaled by a factor drawn uniformly from [SOFT, 1]: below 1 the anchor "
                     "learns to read faint values, so that a composition's first small additions already move it")
ap.add_argument("--init", default="", help="start from this model directory instead of random weights")
ap.add_argument("--eval-only", action="store_true", help="with --init: only score the model, at several scales of E")
ap.add_argument("--limit", type=int, default=300); ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--seed", type=int, default=12)
a = ap.parse_args()
torch.set_num_threads(a.threads); torch.manual_seed(a.seed)
rng = random.Random(a.seed)

BOS, EOS, PAD = 256, 257, 258
keys = {l.split("\t")[0] for l in open(f"{a.data}/table.tsv").read().splitlines()[1:]}
rows = [json.loads(l) for l in open(f"{a.data}/anchor_num_math.jsonl")]
evals = [json.loads(l) for l in open(f"{a.data}/eval_num_math.jsonl")][:a.limit]

if a.init:
    m = llama_ref.load_model_dir(a.init)
    cfg = m.config
else:
    cfg = llama_ref.LlamaConfig(hidden_size=a.dim, intermediate_size=a.ffn, num_hidden_layers=a.layers,
                                num_attention_heads=a.heads, num_key_value_heads=a.heads, max_position_embeddings=64)
    m = llama_ref.LlamaForCausalLM(cfg)
    m.init_random(std=0.02)
C = cfg.hidden_size
A = torch.nn.Parameter(0.02 * torch.randn(10, C)); B = torch.nn.Parameter(0.02 * torch.randn(10, C))
if a.init and os.path.exists(f"{a.init}/slots.safetensors"):
    S = safetensors_io.read(f"{a.init}/slots.safetensors")[0]
    with torch.no_grad():
        A.copy_(torch.as_tensor(S["A"])); B.copy_(torch.as_tensor(S["B"]))


def random_digits(s):
    s = "".join(rng.choice("0123456789") for _ in s)
    return s.lstrip("0") or "0"


def slotted(prompt, p_slot, p_op, q_num, q_lie=0.0, noise=0.0):
    """(text, [(char index of the character after an operand, value)]) for one NUM-MATH prompt."""
    parts = re.findall(r"\d+|[^\d]", prompt)
    ops = [i for i, s in enumerate(parts) if s.isdigit()]
    slot = set()
    if rng.random() < p_slot:
        slot = {i for i in ops if rng.random() < p_op} or {rng.choice(ops)}
    text, adds = "", []
    for i, s in enumerate(parts):
        if i in slot:
            w = word(rng)
            while w in keys:
                w = word(rng)
            text += w
            adds.append((len(text), int(s)))
        else:
            if s.isdigit() and rng.random() < q_num:
                if rng.random() < q_lie:
                    s = random_digits(s)
                text += s
                adds.append((len(text), int(parts[i])))
            else:
                text += random_digits(s) if s.isdigit() and rng.random() < noise else s
    return text, adds


def batch(rs, p_slot, p_op, q_num):
    seqs, inj = [], []
    for i, r in enumerate(rs):
        text, adds = slotted(r["prompt"], p_slot, p_op, q_num, a.q_lie, a.digit_noise)
        p, t = list(text.encode()), list(r["target"].encode())
        toks = [BOS] + p + t + [EOS]
        seqs.append((toks[:-1], toks[1:], [0] * len(p) + [1] * (len(t) + 1)))
        inj += [(i, pos + 1, v) for pos, v in adds]  # +1: BOS
    T = max(len(s[0]) for s in seqs)
    x = torch.full((len(rs), T), PAD); y = torch.full((len(rs), T), PAD); w = torch.zeros(len(rs), T)
    for i, (xi, yi, wi) in enumerate(seqs):
        x[i, :len(xi)] = torch.tensor(xi); y[i, :len(yi)] = torch.tensor(yi)
        w[i, :len(wi)] = torch.tensor(wi, dtype=torch.float)
    return x, y, w, inj


def forward(x, inj, y=None, w=None, soft=1.0, scale_all=1.0):
    h = m.embed(x)
    cos, sin = m.rope(h.shape[1], h.dtype, h.device)
    for l, layer in enumerate(m.model.layers):
        h = layer(h, cos, sin)
        if l == a.block and inj:
            i, t, v = (torch.tensor(c) for c in zip(*inj))
            scale = soft + (1.0 - soft) * torch.rand(len(v), 1) if soft < 1.0 else 1.0
            h = h.index_put((i, t), scale_all * scale * (A[v // 10] + B[v % 10]), accumulate=True)
    logits = torch.nn.functional.linear(m.model.norm(h), m.lm_weight())
    loss = None if y is None else llama_ref.weighted_cross_entropy(logits, y, w)
    return logits, loss


@torch.no_grad()
def accuracy(p_slot, p_op, q_num, scale=1.0):
    """Greedy exact match on the evaluation prompts, slotted as asked (fixed seed per call)."""
    state = rng.getstate(); rng.seed(99)
    ok = 0
    for r in evals:
        text, adds = slotted(r["prompt"], p_slot, p_op, q_num)
        x = [BOS] + list(text.encode()); inj = [(0, pos + 1, v) for pos, v in adds]; out = []
        for _ in range(6):
            logits, _ = forward(torch.tensor([x]), inj, scale_all=scale)
            t = int(logits[0, -1].argmax())
            if t == EOS:
                break
            out.append(t); x.append(t)
        ok += bytes(out) == r["target"].encode() and t == EOS
    rng.setstate(state)
    return ok / len(evals)


if a.eval_only:
    for sc in (0.25, 0.5, 0.75, 1.0):
        print(sc, json.dumps({"num_math_with_adds": accuracy(0, 0, 1.0, sc), "all_slots": accuracy(1.0, 1.0, 0, sc),
                              "one_slot": accuracy(1.0, 0.0, 0, sc)}), flush=True)
    sys.exit(0)


def step_loss():
    x, y, w, inj = batch(rng.sample(rows, a.batch), a.p_slot, a.p_op, a.q_num)
    return forward(x, inj, y, w, a.soft)[1]


trainloop.train(list(m.parameters()) + [A, B], a.steps, a.lr, step_loss, log_every=200)

res = {"num_math": accuracy(0, 0, 0), "num_math_with_adds": accuracy(0, 0, 1.0),
       "all_slots": accuracy(1.0, 1.0, 0), "one_slot": accuracy(1.0, 0.0, 0)}
print("RESULT", json.dumps(vars(a)), json.dumps(res), flush=True)
os.makedirs(a.out, exist_ok=True)
with open(f"{a.out}/config.json", "w") as f:
    json.dump(cfg.to_hf_dict(), f, indent=2)
for name, state in (("model", [(k, v.detach().numpy()) for k, v in m.named_parameters()]),
                    ("slots", [("A", A.detach().numpy()), ("B", B.detach().numpy())])):
    safetensors_io.write(f"{a.out}/{name}.safetensors.tmp", state)
    os.replace(f"{a.out}/{name}.safetensors.tmp", f"{a.out}/{name}.safetensors")
print(f"wrote {a.out}")
