#!/usr/bin/python3
"""Can an anchor be composed at all? Activation patching, a diagnostic for docs/kv-arithmetic.md.

A composition adds to mB's residual stream, and mA knows a key's value only from the character
after the key on (its operator, or "="). So the best any composition can do on a KV-MATH prompt
("abc+de-fgh=") is to make mB's stream at those positions, and at "=" and the answer positions,
look as it would on the same expression with operands mB can read ("12+7-33=", or the operands
written as the anchor's number names with --names). This script does exactly that with mB's own
states: it runs mB on the readable prompt, copies its stream after the chosen blocks into a run
on the KV-MATH prompt, decodes greedily and scores the readable prompt's result.

Sites copied (operand k of the KV prompt aligned with operand k of the readable one):
  ops    the character after each operand (operator or "=")
  post   ops, plus every answer position (the readable run is decoded alongside)
  right  ops and the operand's own characters, aligned at its end (an upper bound no
         composition reaches: mA does not know a key's value inside the key)
  post-add  the sites of post, but adding the difference between the readable run and a run
         on other keys of the same lengths instead of copying: closer to what a composition
         can do, since it adds to mB's stream what mA knows (the value), not what mB made of
         the key's letters
  ops-add   the same addition at the sites of ops only: the answer positions' states after a
         late block already hold the readable prompt's result, which a composition would have
         to compute, so this is the fairer bound
Additions after several blocks compound (each block's difference already contains the earlier
ones'), so only the single-block "-add" rows are meaningful.
If even "post" after blocks 0..L-2 does not recover the readable accuracy, no composition that
writes where mA knows the values can teach mB the KV prompt: mB reads its operands from the
operand characters themselves, late in the network.

--same-length replaces each key by random letters as long as its readable operand, so that "right"
copies every position but the answers: what is left is what the answer positions read from the raw
operand characters in the blocks before the copy.

--context N makes the readable prompt an in-context binding (gen_context.py): the operands are
fresh variables of N letters (0: 2-6), bound in front of the expression ("q=12,x=7,m=33;q+x-m=");
the KV prompt's positions are matched with the expression's, after that prefix. --value-first
writes the bindings value first ("12=q,7=x,33=m;q+x-m=", gen_bind.py).

--glyphs GLYPHS_JSON is for anchors that read one-character numerals among filler letters
(gen_glyphs.py): the readable prompt keeps each key but for its last letter, which becomes the
glyph of the key's value ("abc+de-fgh=" -> "abM+dH-fg$="), and the sites are those last positions
as well as the characters after them: mA, trained on lookups cut right after a key (gen_cut.py),
knows the value at both.

Usage: patch_anchor.py MODEL_DIR DATA_DIR [--names NAMES_JSON | --glyphs GLYPHS_JSON
                     | --context N [--value-first]] [--limit N]
                     [--same-length]
  DATA_DIR from `calm data kv` (table.tsv, eval_kv_math.jsonl); NAMES_JSON maps values to the
  anchor's number names ({"12": "wxz", ...}), else the readable operands are digits."""
import argparse, json, random, re

import torch

from torch_ref import llama_ref
from kvgen import letters, new_key

ap = argparse.ArgumentParser()
ap.add_argument("model"); ap.add_argument("data")
ap.add_argument("--names"); ap.add_argument("--limit", type=int, default=100)
ap.add_argument("--same-length", action="store_true")
ap.add_argument("--context", type=int, default=-1)
ap.add_argument("--value-first", action="store_true")
ap.add_argument("--glyphs")
args = ap.parse_args()
if args.glyphs and (args.names or args.context >= 0 or args.same_length):
    ap.error("--glyphs excludes --names, --context and --same-length")
if args.same_length and args.context >= 0:
    ap.error("--same-length and --context exclude each other")
if args.value_first and args.context < 0:
    ap.error("--value-first needs --context")
torch.set_num_threads(1)
m = llama_ref.load_model_dir(args.model)
cfg = m.config
val = {r[0]: int(r[1]) for r in (l.rstrip("\n").split("\t") for l in list(open(f"{args.data}/table.tsv"))[1:])}
names = json.load(open(args.names)) if args.names else None
glyphs = json.load(open(args.glyphs)) if args.glyphs else None
back = (0, 1) if glyphs else (0,)  # sites: the character after each operand; with --glyphs its last one too
L, BOS, EOS = cfg.num_hidden_layers, 256, 257
rng = random.Random(0)
rng_other = random.Random(1)  # its own stream, so that the other sites' draws do not change


def run(toks, patch=None, add=False):
    """Block outputs [L][T, C] and logits [T, V]; patch = {block: [(position, state)]}, or with
    add, {block: [(position, delta)]} added to the stream instead of replacing it."""
    h = m.embed(torch.tensor([toks]))
    cos, sin = m.rope(h.shape[1], h.dtype, h.device)
    hs = []
    for i, layer in enumerate(m.model.layers):
        h = layer(h, cos, sin)
        if patch and i in patch:
            h = h.clone()
            for p, v in patch[i]:
                h[0, p] = h[0, p] + v if add else v
        hs.append(h[0])
    return hs, torch.nn.functional.linear(m.model.norm(h), m.lm_weight())[0]


def greedy(logits_after):
    """Greedy answer (up to 6 bytes, until EOS); logits_after(out) gives the logits of the prompt
    followed by the answer bytes so far."""
    out = []
    for _ in range(6):
        t = int(logits_after(out)[-1].argmax())
        if t == EOS:
            break
        out.append(t)
    return bytes(out).decode(errors="replace")


def decode(toks, patch=None, src=None, blocks=(), answers=False):
    """Greedy answer of toks; with answers, the answer positions are patched too, from the
    readable prompt src decoded alongside with the same answer tokens."""
    def logits_after(out):
        p = patch
        if answers:
            hs, _ = run(src + out)
            p = {b: list(patch[b]) + [(len(toks) + j, hs[b][len(src) + j]) for j in range(len(out))] for b in blocks}
        return run(toks + out, p)[1]
    return greedy(logits_after)


def decode_add(toks, other, src, sites, blocks, answers=True):
    """Greedy answer of toks with additive patches: at each site (position in toks and other,
    position in src) and, with answers, each answer position, after the given blocks, add the
    difference between the readable run src and the run on other, a KV prompt with other keys of
    the same lengths (both unpatched, decoded alongside with the same answer tokens). A composition
    adds a function of mA's stream, which knows the value but not what mB made of the key's
    letters: this is what it can do if mB's state there does not depend on those letters."""
    def logits_after(out):
        hs, _ = run(src + out)
        ho, _ = run(other + out)
        at = list(sites) + [(len(toks) + j, len(src) + j) for j in range(len(out) if answers else 0)]
        return run(toks + out, {b: [(k, hs[b][s_] - ho[b][k]) for k, s_ in at] for b in blocks}, add=True)[1]
    return greedy(logits_after)


def spans(words, pos=1):
    """(first, end) positions of each operand, from pos (after BOS); end is its operator's position."""
    s = []
    for w in words:
        s.append((pos, pos + len(w)))
        pos += len(w) + 1
    return s


# never after the last block: copying the answer positions' final states would copy the answer
block_sets = [[b] for b in range(L - 1)] + [list(range(b + 1)) for b in range(1, L - 1)]
score = {}
examples = [json.loads(l) for l in open(f"{args.data}/eval_kv_math.jsonl")][:args.limit]
with torch.no_grad():
    for ex in examples:
        keys = re.split(r"[-+=]", ex["prompt"])[:-1]
        ops = re.findall(r"[-+=]", ex["prompt"])
        if glyphs:
            words = [k[:-1] + glyphs[str(val[k])] for k in keys]
        else:
            words = [names[str(val[k])] if names else str(val[k]) for k in keys]
        if args.same_length:
            keys = [letters(rng, len(w)) for w in words]
            ex = {"prompt": "".join(k + o for k, o in zip(keys, ops)), "target": ex["target"]}
        prefix = ""
        if args.context >= 0:  # bind a fresh variable to each distinct key, in random order
            var = {}
            for k in keys:
                if k not in var:
                    var[k] = new_key(rng, set(val) | set(var.values()), args.context)
            defs = [f"{val[k]}={var[k]}" if args.value_first else f"{var[k]}={val[k]}" for k in var]
            rng.shuffle(defs)
            prefix = ",".join(defs) + ";"
            words = [var[k] for k in keys]
        kt = [BOS] + list(ex["prompt"].encode())
        st = [BOS] + list((prefix + "".join(w + o for w, o in zip(words, ops))).encode())
        hs, _ = run(st)
        pairs = list(zip(spans(keys), spans(words, 1 + len(prefix))))
        other = [letters(rng_other, len(k)) for k in keys]
        ot = [BOS] + list("".join(k + o for k, o in zip(other, ops)).encode())
        sites = [(ke - j, se - j) for (_, ke), (_, se) in pairs for j in back]
        hit = {"KV prompt, unpatched": decode(kt), "readable prompt": decode(st)}
        for blocks in block_sets:
            tag = ",".join(map(str, blocks))
            ops_patch = {b: [(k, hs[b][s_]) for k, s_ in sites] for b in blocks}
            right = {b: [(ke - j, hs[b][se - j]) for (ks, ke), (ss, se) in pairs
                         for j in range(min(se - ss, ke - ks) + 1)] for b in blocks}
            hit[f"ops after blocks {tag}"] = decode(kt, ops_patch)
            hit[f"post after blocks {tag}"] = decode(kt, ops_patch, st, blocks, answers=True)
            hit[f"right after blocks {tag}"] = decode(kt, right)
            hit[f"post-add after blocks {tag}"] = decode_add(kt, ot, st, sites, blocks)
            hit[f"ops-add after blocks {tag}"] = decode_add(kt, ot, st, sites, blocks, answers=False)
        for k, v in hit.items():
            score[k] = score.get(k, 0) + (v == ex["target"])
for k, v in score.items():
    print(f"{k:28s} {v / len(examples):.2f}")
