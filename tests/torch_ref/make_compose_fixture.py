"""Write a tiny random CALM composition and the reference outputs calm must reproduce.

usage: PYTHONPATH=tests /usr/bin/python3 -m torch_ref.make_compose_fixture OUTDIR [--seed S]

OUTDIR/augment/{config.json, model.safetensors}   mA: C=24, L=4, NH=NKV=2, F=40, V=320
OUTDIR/anchor/{config.json, model.safetensors}    mB: C=32, L=4, NH=4, NKV=2, F=48, V=320
OUTDIR/comp/calm_config.json    {"format": "calm-composition", "version": 1,
                                 "anchor": {"path", "sha256"}, "augment": {"path", "sha256"},
                                 "connections": [[1, 0], [3, 3]], "heads": 8, ...}
OUTDIR/comp/calm.safetensors    calm.connections.<i>.{proj.weight [dB,dA], proj.bias [dB],
                                 q_proj/k_proj/v_proj/o_proj.weight [dB,dB]}, F32
OUTDIR/fixture.safetensors      F32: tokens, targets, weights [B,T] (ids stored as floats),
                                 logits [B,T,V], loss [1], logits_anchor [B,T,V] (mB alone),
                                 grad.<name> for every composition parameter;
                                 __metadata__: seed, dims, torch's own fp32-vs-fp64 error

The composition is compose_ref.Composition (an independent implementation of
src/compose.h). Connections (1, 0) and (3, 3) exercise the lowest anchor block (the
backward must stop there) and the last one (added right before the final norm), read mA
streams from two different blocks, and heads = 8 (head size 4) differs from mB's 4 query
and 2 KV heads and from mA's 2, so an implementation that takes the head count from the
wrong place fails.

Everything is computed in float64 on weights already rounded to float32, and rounded once
when stored, so the C code's error is its own float32 arithmetic.

Scales. Model weights are N(0, 0.2^2) (norms 1 + N(0, 0.1^2)) as in make_fixture.py, so
every block does visible work; composition weights are N(0, 1/fan_in), the proj bias
N(0, 0.1^2), and o_proj N(0, 1/dB) -- nonzero, so the cross-attention moves the logits
by O(1) (logits_anchor records mB alone to show it) and every composition tensor has a
gradient. Measured torch fp32 vs fp64 on this fixture (seed 1234), in the C test's ratio
max|a-ref| / (ATOL_K*max|ref| + RTOL*|ref|): worst 0.054 (grad of connections.1.k_proj),
loss relative error 7e-8; printed on every run and stored in the metadata as
torch_fp32_*. calm itself reaches 0.105 (tests/test_compose_fixture.c prints each tensor).
"""
import argparse
import hashlib
import json
import os
import sys

try:
    import torch
except ImportError:
    sys.exit("make_compose_fixture.py: torch not found.\nHINT: apt-get install python3-torch, and run it with "
             "/usr/bin/python3 (a pyenv/venv python does not see Debian's packages)")

from . import compose_ref, llama_ref, safetensors_io  # noqa: E402

BOS, EOS, PAD = 256, 257, 258
CONNECTIONS = [[1, 0], [3, 3]]
HEADS = 8  # neither mB's 4 query heads nor its 2 KV heads nor mA's 2
TOKENIZER_ID = "calm-bytes-v1"  # src/tokenizer.h TOK_ID

# Tolerances of tests/test_compose_fixture.c (keep equal).
ATOL_K, RTOL, LOSS_RTOL = 3e-5, 1e-4, 1e-5


def configs():
    mA = llama_ref.LlamaConfig(hidden_size=24, intermediate_size=40, num_hidden_layers=4, num_attention_heads=2,
                               num_key_value_heads=2, head_dim=12, vocab_size=320, max_position_embeddings=64)
    mB = llama_ref.LlamaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=4, num_attention_heads=4,
                               num_key_value_heads=2, head_dim=8, vocab_size=320, max_position_embeddings=64)
    return mA, mB


def make_batch(gen, B, T, V):
    tokens = torch.randint(0, V, (B, T), generator=gen)
    tokens[:, 0] = BOS
    targets = torch.cat([tokens[:, 1:], torch.randint(0, V, (B, 1), generator=gen)], dim=1)
    weights = torch.ones(B, T, dtype=torch.float64)
    weights[0, :3] = 0.0  # a masked prompt
    weights[1, T - 2:] = 0.0
    weights[0, 6] = 0.5
    weights[1, 2] = 0.5
    return tokens, targets, weights


def build(seed, dtype):
    """The models and composition with seeded weights rounded to float32, in dtype."""
    gen = torch.Generator().manual_seed(seed)
    cA, cB = configs()
    mA = llama_ref.LlamaForCausalLM(cA).double()
    mB = llama_ref.LlamaForCausalLM(cB).double()
    mA.init_random(std=0.2, norm_std=0.1, generator=gen)
    mB.init_random(std=0.2, norm_std=0.1, generator=gen)
    comp = compose_ref.Composition(mA, mB, CONNECTIONS, HEADS).double()
    comp.init_random(o_std=1.0 / (cB.hidden_size ** 0.5), bias_std=0.1, generator=gen)
    with torch.no_grad():  # the files hold F32: compute on exactly those values
        for p in comp.parameters():
            p.copy_(p.float().double())
    comp = comp.to(dtype)
    return comp, gen


def run(comp, tokens, targets, weights):
    comp.zero_grad(set_to_none=True)
    logits, loss = comp(tokens, targets, weights)
    loss.backward()
    grads = {name: (torch.zeros_like(p) if p.grad is None else p.grad.detach().clone())
             for name, p in comp.composition_parameters()}
    for p in list(comp.augment.parameters()) + list(comp.anchor.parameters()):
        assert p.grad is None, "a frozen model parameter received a gradient"
    return logits.detach(), loss.detach(), grads


def close_ratio(a, ref):
    a, ref = a.double(), ref.double()
    return ((a - ref).abs() / (ATOL_K * ref.abs().max() + RTOL * ref.abs())).max().item()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_model(model, mdir):
    os.makedirs(mdir, exist_ok=True)
    with open(os.path.join(mdir, "config.json"), "w") as f:
        json.dump(model.config.to_hf_dict(BOS, EOS, PAD), f, indent=2, sort_keys=True)
        f.write("\n")
    path = os.path.join(mdir, "model.safetensors")
    safetensors_io.write(path, [(k, v.float()) for k, v in model.state_dict().items()],
                         {"format": "pt", "producer": "calm tests/torch_ref/make_compose_fixture.py"})
    return sha256(path)


def self_check(comp, tokens):
    """The reference's own invariants (float64, so exact or ~1e-15): o_proj = 0 gives mB's
    logits exactly; a changed token at t0 leaves every logit at t < t0 unchanged."""
    with torch.no_grad():
        logits, _ = comp(tokens)
        anchor, _ = comp.anchor(tokens)
        saved = [p.clone() for _, p in comp.composition_parameters()]
        for name, p in comp.composition_parameters():
            if name.endswith("o_proj.weight"):
                p.zero_()
        zero, _ = comp(tokens)
        assert torch.equal(zero, anchor), "reference: o_proj = 0 does not give mB's logits"
        for (_, p), s in zip(comp.composition_parameters(), saved):
            p.copy_(s)
        T = tokens.shape[1]
        for t0 in (1, T // 2, T - 1):
            changed = tokens.clone()
            changed[:, t0] = (changed[:, t0] + 37) % 259
            other, _ = comp(changed)
            assert (other[:, :t0] - logits[:, :t0]).abs().max().item() < 1e-12, "reference is not causal"
            assert (other[:, t0] - logits[:, t0]).abs().max().item() > 1e-3, "reference ignores token t0"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("-B", type=int, default=2)
    ap.add_argument("-T", type=int, default=12)
    args = ap.parse_args()
    torch.set_num_threads(1)
    outdir = os.path.abspath(args.outdir)

    comp, gen = build(args.seed, torch.float64)
    V = comp.anchor.config.vocab_size
    tokens, targets, weights = make_batch(gen, args.B, args.T, V)
    self_check(comp, tokens)
    logits, loss, grads = run(comp, tokens, targets, weights)
    with torch.no_grad():
        logits_anchor, _ = comp.anchor(tokens)

    # torch's own float32 answer on the same (fp32-valued) weights: how much of the
    # tolerance a correct float32 implementation uses.
    comp32, _ = build(args.seed, torch.float32)
    l32, loss32, g32 = run(comp32, tokens, targets, weights.float())
    err = {"logits": close_ratio(l32, logits)}
    for k in grads:
        err["grad." + k] = close_ratio(g32[k], grads[k])
    worst = max(err, key=err.get)
    loss_rel = abs(loss32.item() - loss.item()) / abs(loss.item())

    adir, bdir, cdir = (os.path.join(outdir, d) for d in ("augment", "anchor", "comp"))
    sha_a, sha_b = save_model(comp.augment, adir), save_model(comp.anchor, bdir)
    os.makedirs(cdir, exist_ok=True)
    safetensors_io.write(os.path.join(cdir, "calm.safetensors"),
                         [(k, p.detach().float()) for k, p in comp.composition_parameters()], {"format": "pt"})
    cfg = {"format": "calm-composition", "version": 1,
           "anchor": {"path": bdir, "sha256": sha_b}, "augment": {"path": adir, "sha256": sha_a},
           "connections": CONNECTIONS, "heads": HEADS,
           "augment_dim": comp.augment.config.hidden_size, "anchor_dim": comp.anchor.config.hidden_size,
           "tokenizer": TOKENIZER_ID}
    with open(os.path.join(cdir, "calm_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")

    out = [("tokens", tokens.double()), ("targets", targets.double()), ("weights", weights),
           ("logits", logits), ("loss", loss.reshape(1)), ("logits_anchor", logits_anchor)]
    out += [("grad." + k, v) for k, v in grads.items()]
    meta = {"seed": args.seed, "torch": torch.__version__, "B": args.B, "T": args.T,
            "connections": json.dumps(CONNECTIONS), "heads": HEADS,
            "dtype": "computed in float64, stored as F32",
            "torch_fp32_err_worst": f"{worst} {err[worst]:.3g}",
            "torch_fp32_loss_rel_err": f"{loss_rel:.3g}"}
    safetensors_io.write(os.path.join(outdir, "fixture.safetensors"), out, meta)

    gmin = min(v.abs().max().item() for v in grads.values())
    shift = (logits - logits_anchor).abs().max().item()
    print(f"compose fixture: {outdir} loss={loss.item():.6f} |logits|max={logits.abs().max().item():.3f} "
          f"max|logits - mB logits|={shift:.3f} smallest per-tensor max|grad|={gmin:.3g}; torch fp32 vs fp64: "
          f"loss rel {loss_rel:.3g}, worst ratio {err[worst]:.3g} ({worst})")


if __name__ == "__main__":
    main()
