"""Write a tiny random Llama checkpoint and the reference outputs calm must reproduce.

usage: PYTHONPATH=tests /usr/bin/python3 -m torch_ref.make_fixture OUTDIR [--tied] [--gqa] [--seed S]

OUTDIR/model/config.json        HF LlamaConfig ("model_type": "llama")
OUTDIR/model/model.safetensors  F32 weights, HF tensor names (no lm_head.weight when tied)
OUTDIR/fixture.safetensors      F32:
    tokens, targets [B,T]   integer ids stored as floats (exact below 2^24)
    weights [B,T]           per-token loss weights (some 0, some 0.5, rest 1)
    logits [B,T,V], loss [1]
    grad.<param name>       dLoss/dparam for every parameter (tied: embed includes lm_head's part)
    grad.resid0 [B,T,C]     dLoss/d(embedding output) = input gradient of layer 0
    __metadata__: variant, seed, torch version, dims, and fp32-vs-fp64 error of torch itself

Everything is computed in float64 and rounded once to float32 when stored, so the
fixture is the exact answer to within fp32 rounding and the C code's error is its own.

Weights are N(0, 0.2) rather than the usual 0.02 so activations are far from trivial:
with C=48 every projection has output std ~1.4x its input, attention scores have std
~1.8 (mean max probability ~0.5: peaked, not one-hot), logits have std ~1.4 over V=320,
and the MLP's silu sees inputs well into its curved region. Norm weights are 1 + N(0, 0.1) so a C bug that
ignores them (or swaps input/post norm) shows.

fp32 vs fp64, measured by this script (the same fp32-rounded weights run in torch
float32 vs float64; printed on every run and recorded in the fixture metadata as
torch_fp32_*). ratio = max_i |a-b| / (ATOL_K*max|ref| + RTOL*|ref_i|), the measure and
constants of tests/test_torch_fixture.c:
    variant  logits max abs err  loss rel err  worst ratio (tensor)
    plain    6.1e-6 (|max| 4.6)  6.2e-8        0.035 (logits)
    gqa      3.6e-6 (|max| 6.2)  5.6e-8        0.031 (L1 k_proj grad)
    tied     6.1e-6 (|max| 6.2)  3.8e-8        0.114 (L0 k_proj grad)
The largest errors relative to a tensor's max|ref| are in the k_proj/q_proj gradients
(up to 4e-6 * max|ref|, ~30 fp32 ulps): the softmax backward P*(dP - sum(P*dP))
cancels, so those gradients are small differences of larger numbers. That is why the
C test's atol is 3e-5*max|ref| rather than 1e-5 (where tied reaches 0.33): torch's own
fp32 answer then uses ~1/9 of the budget, while every plausible bug tried by
check_ref.py (RoPE pairing/sign/theta, KV-head mapping, eps, norm weight, attention
scale, activation, loss weighting, tied embedding gradient) lands at ratio 1e3..5e4.
"""
import argparse
import json
import os
import sys

try:
    import torch
except ImportError:
    sys.exit("make_fixture.py: torch not found.\nHINT: apt-get install python3-torch, and run it with "
             "/usr/bin/python3 (a pyenv/venv python does not see Debian's packages)")

from . import llama_ref, safetensors_io  # noqa: E402

BOS, EOS, PAD = 256, 257, 258


def build(tied, gqa):
    # head_dim 12 != C/NH (48/4 = 12 too, but written explicitly so config.json carries it).
    # The gqa variant also moves eps and theta off their defaults (Llama-3's theta
    # 500000; eps 1e-3, large enough to change the normalised activations by ~1%),
    # so a C config loader that ignores rms_norm_eps or rope_theta fails there
    # while plain and tied pin down the common defaults.
    return llama_ref.LlamaConfig(hidden_size=48, intermediate_size=80, num_hidden_layers=2, num_attention_heads=4,
                                 num_key_value_heads=2 if gqa else 4, head_dim=12, vocab_size=320,
                                 rms_norm_eps=1e-3 if gqa else 1e-5, rope_theta=500000.0 if gqa else 10000.0,
                                 tie_word_embeddings=tied, max_position_embeddings=64)


def make_batch(gen, B, T, V):
    tokens = torch.randint(0, V, (B, T), generator=gen)
    tokens[:, 0] = BOS
    tokens[1, 9] = BOS  # a second document starting mid-row (attention still spans it)
    # targets: the next token, and a fresh id at the end; one target is BOS itself and
    # one is an id >= 259 (padding region of the vocabulary), both legal.
    targets = torch.cat([tokens[:, 1:], torch.randint(0, V, (B, 1), generator=gen)], dim=1)
    targets[0, 5] = BOS
    targets[1, 3] = 300
    weights = torch.ones(B, T, dtype=torch.float64)
    weights[0, :2] = 0.0  # masked prompt
    weights[1, 12:] = 0.0
    weights[0, 7] = 0.5
    weights[1, 4] = 0.5
    weights[1, 5] = 0.5
    return tokens, targets, weights


def run(model, tokens, targets, weights):
    """Returns logits, loss, {grad name: tensor}, grad.resid0 (all detached)."""
    model.zero_grad(set_to_none=True)
    h0 = model.embed(tokens)
    h0.retain_grad()
    logits, loss = model.forward_embeds(h0, targets, weights)
    loss.backward()
    grads = {name: torch.zeros_like(p) if p.grad is None else p.grad.detach().clone()
             for name, p in model.named_parameters()}
    return logits.detach(), loss.detach(), grads, h0.grad.detach().clone()


# Tolerances of tests/test_torch_fixture.c (keep equal): tensors pass when
# |c - ref| <= ATOL_K*max|ref| + RTOL*|ref| elementwise; the loss when its relative
# error is <= LOSS_RTOL.
ATOL_K, RTOL, LOSS_RTOL = 3e-5, 1e-4, 1e-5


def close_ratio(a, ref):
    """The C test's measure: max |a-ref| / (ATOL_K*max|ref| + RTOL*|ref|); <= 1 passes."""
    a, ref = a.double(), ref.double()
    return ((a - ref).abs() / (ATOL_K * ref.abs().max() + RTOL * ref.abs())).max().item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--tied", action="store_true", help="tie_word_embeddings (no lm_head.weight)")
    ap.add_argument("--gqa", action="store_true", help="NKV = NH/2 grouped KV heads")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("-B", type=int, default=2)
    ap.add_argument("-T", type=int, default=16)
    args = ap.parse_args()
    variant = "tied" if args.tied else "gqa" if args.gqa else "plain"
    if args.tied and args.gqa:
        variant = "tied+gqa"

    torch.set_num_threads(1)  # tiny tensors: threads only add OpenMP overhead
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    cfg = build(args.tied, args.gqa)
    model = llama_ref.LlamaForCausalLM(cfg).double()
    model.init_random(std=0.2, norm_std=0.1, generator=gen)
    # The checkpoint stores F32: round the weights to fp32 values now, so the float64
    # reference runs on exactly the weights the C code will load.
    model.load_state_dict({k: v.float().double() for k, v in model.state_dict().items()})
    tokens, targets, weights = make_batch(gen, args.B, args.T, cfg.vocab_size)

    logits, loss, grads, dresid0 = run(model, tokens, targets, weights)

    # The same computation in fp32 (weights rounded to fp32 first, as the C code sees
    # them): how far torch itself lands from the fp64 answer.
    m32 = llama_ref.LlamaForCausalLM(cfg).float()
    m32.load_state_dict({k: v.float() for k, v in model.state_dict().items()})
    l32, loss32, g32, d32 = run(m32, tokens, targets, weights.float())
    err = {"logits": close_ratio(l32, logits), "grad.resid0": close_ratio(d32, dresid0)}
    for k in grads:
        err["grad." + k] = close_ratio(g32[k], grads[k])
    worst = max(err, key=err.get)
    loss_rel = abs(loss32.item() - loss.item()) / abs(loss.item())
    logits_abs = (l32.double() - logits).abs().max().item()

    mdir = os.path.join(args.outdir, "model")
    os.makedirs(mdir, exist_ok=True)
    with open(os.path.join(mdir, "config.json"), "w") as f:
        json.dump(cfg.to_hf_dict(BOS, EOS, PAD), f, indent=2, sort_keys=True)
        f.write("\n")
    safetensors_io.write(os.path.join(mdir, "model.safetensors"),
                         [(k, v.float()) for k, v in model.state_dict().items()],
                         {"format": "pt", "producer": "calm tests/torch_ref/make_fixture.py"})

    out = [("tokens", tokens.double()), ("targets", targets.double()), ("weights", weights),
           ("logits", logits), ("loss", loss.reshape(1))]
    out += [("grad." + k, v) for k, v in grads.items()]
    out.append(("grad.resid0", dresid0))
    meta = {"variant": variant, "seed": args.seed, "torch": torch.__version__, "B": args.B, "T": args.T,
            "dtype": "computed in float64, stored as F32",
            "torch_fp32_err_worst": f"{worst} {err[worst]:.3g}",
            "torch_fp32_loss_rel_err": f"{loss_rel:.3g}",
            "torch_fp32_logits_max_abs_err": f"{logits_abs:.3g}"}
    safetensors_io.write(os.path.join(args.outdir, "fixture.safetensors"), out, meta)

    gmin = min(v.abs().max().item() for v in grads.values())
    print(f"fixture {variant}: {args.outdir} loss={loss.item():.6f} |logits|max={logits.abs().max().item():.3f} "
          f"smallest per-tensor max|grad|={gmin:.3g} |grad.resid0|max={dresid0.abs().max().item():.3g}; "
          f"torch fp32 vs fp64: logits max abs {logits_abs:.3g}, loss rel {loss_rel:.3g}, "
          f"worst ratio {err[worst]:.3g} ({worst})")


if __name__ == "__main__":
    main()
