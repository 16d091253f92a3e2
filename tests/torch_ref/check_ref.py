"""Self-checks of the PyTorch reference, run as ctest torch_ref_check.

usage: PYTHONPATH=tests /usr/bin/python3 -m torch_ref.check_ref

1. Each piece against an independent formulation: RoPE against complex rotation,
   attention against per-head loops, RMSNorm and the weighted loss against their
   formulas, GQA against MHA with duplicated K/V rows, causality, tied naming.
2. torch.autograd.gradcheck of the whole model in float64 (loss and logits w.r.t.
   every parameter and the embedding output) on a tiny config.
3. safetensors_io round trip, F16/BF16 reading, rejection of bad offsets.
4. Mutation test of the fixture tolerance used by tests/test_torch_fixture.c: the
   float32 model must pass it comfortably, and each plausible implementation bug
   (wrong RoPE pairing, wrong KV-head mapping, eps dropped, ...) must fail it.
"""
import math
import os
import struct
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as Fn
from torch.nn.utils.stateless import functional_call

from . import llama_ref as R
from . import make_fixture as MF
from . import safetensors_io as S

ATOL_K, RTOL, LOSS_RTOL = MF.ATOL_K, MF.RTOL, MF.LOSS_RTOL

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def tiny_cfg(**kw):
    d = dict(hidden_size=8, intermediate_size=12, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=4, vocab_size=11, rms_norm_eps=1e-5, rope_theta=100.0)
    d.update(kw)
    return R.LlamaConfig(**d)


def tiny_model(seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    m = R.LlamaForCausalLM(tiny_cfg(**kw)).double()
    m.init_random(std=0.5, norm_std=0.2, generator=g)
    return m, g


def check_rope():
    T, HS, theta = 9, 8, 500.0
    x = torch.randn(2, 3, T, HS, dtype=torch.float64)
    cos, sin = R.rope_cos_sin(T, HS, theta, torch.float64)
    got = R.apply_rope(x, cos, sin)
    # rotate_half pairs dimension i with i + HS/2: z_i = x_i + j x_{i+HS/2}, rotated by pos*theta^(-2i/HS)
    half = HS // 2
    z = torch.complex(x[..., :half], x[..., half:])
    # float64 exponents: an integer arange times a Python float is float32 in torch
    expo = -2.0 * torch.arange(half, dtype=torch.float64) / HS
    ang = torch.arange(T, dtype=torch.float64)[:, None] * theta**expo[None, :]
    z = z * torch.polar(torch.ones_like(ang), ang)
    want = torch.cat([z.real, z.imag], dim=-1)
    check(torch.allclose(got, want, atol=1e-13), "RoPE == complex rotation of (x_i, x_{i+HS/2})")
    # relative-position property: <rope(q,m), rope(k,n)> depends on m-n only
    q, k = torch.randn(HS, dtype=torch.float64), torch.randn(HS, dtype=torch.float64)
    qs = R.apply_rope(q.expand(T, HS), cos, sin)
    ks = R.apply_rope(k.expand(T, HS), cos, sin)
    check(abs((qs[5] @ ks[2]) - (qs[7] @ ks[4])).item() < 1e-12, "RoPE scores depend on relative position only")


def check_attention():
    m, _ = tiny_model(1)
    att = m.model.layers[0].self_attn
    B, T, C = 2, 6, 8
    x = torch.randn(B, T, C, dtype=torch.float64)
    cos, sin = R.rope_cos_sin(T, 4, 100.0, torch.float64)
    got = att(x, cos, sin)
    NH, NKV, HS = 4, 2, 4
    q = R.apply_rope((x @ att.q_proj.weight.T).view(B, T, NH, HS).transpose(1, 2), cos, sin)
    k = R.apply_rope((x @ att.k_proj.weight.T).view(B, T, NKV, HS).transpose(1, 2), cos, sin)
    v = (x @ att.v_proj.weight.T).view(B, T, NKV, HS).transpose(1, 2)
    out = torch.zeros(B, T, NH, HS, dtype=torch.float64)
    for b in range(B):
        for h in range(NH):
            kv = h // (NH // NKV)
            for t in range(T):
                s = torch.tensor([q[b, h, t] @ k[b, kv, u] / math.sqrt(HS) for u in range(t + 1)])
                p = torch.exp(s - s.max())
                p = p / p.sum()
                out[b, t, h] = sum(p[u] * v[b, kv, u] for u in range(t + 1))
    want = out.reshape(B, T, NH * HS) @ att.o_proj.weight.T
    check(torch.allclose(got, want, atol=1e-12), "attention == per-head loop (causal, GQA h // (NH/NKV))")


def check_norm_loss():
    norm = R.RMSNorm(8, 1e-3).double()
    with torch.no_grad():
        norm.weight.copy_(torch.randn(8, dtype=torch.float64))
    x = torch.randn(5, 8, dtype=torch.float64)
    want = torch.stack([x[i] / math.sqrt((x[i] ** 2).sum().item() / 8 + 1e-3) for i in range(5)]) * norm.weight
    check(torch.allclose(norm(x), want, atol=1e-13), "RMSNorm == x / sqrt(mean(x^2) + eps) * w")
    logits = torch.randn(2, 3, 7, dtype=torch.float64)
    tg = torch.randint(0, 7, (2, 3))
    w = torch.tensor([[1.0, 0.0, 0.5], [2.0, 1.0, 0.0]], dtype=torch.float64)
    lp = torch.log_softmax(logits, -1)
    want = -sum(w[b, t] * lp[b, t, tg[b, t]] for b in range(2) for t in range(3)) / w.sum()
    check(abs(R.weighted_cross_entropy(logits, tg, w) - want).item() < 1e-13, "loss == sum w*CE / sum w")
    zero = R.weighted_cross_entropy(logits, tg, torch.zeros_like(w))
    check(zero.item() == 0.0, "loss with all-zero weights is 0")


def check_model_structure():
    m, _ = tiny_model(2)
    tok = torch.randint(0, 11, (2, 7))
    logits, _ = m(tok)
    tok2 = tok.clone()
    tok2[:, 4:] = (tok2[:, 4:] + 1) % 11
    logits2, _ = m(tok2)
    check(torch.equal(logits[:, :4], logits2[:, :4]) and not torch.allclose(logits[:, 4:], logits2[:, 4:]),
          "causal: changing tokens >= 4 leaves logits < 4 unchanged")
    # GQA == MHA whose K/V rows are the KV heads repeated per query head
    mha = R.LlamaForCausalLM(tiny_cfg(num_key_value_heads=4)).double()
    sd = dict(m.state_dict())
    for n in list(sd):
        if n.endswith(("k_proj.weight", "v_proj.weight")):
            sd[n] = sd[n].view(2, 4, 8).repeat_interleave(2, dim=0).reshape(16, 8)
    mha.load_state_dict(sd)
    check(torch.allclose(mha(tok)[0], logits, atol=1e-12), "GQA == MHA with repeat_interleave'd K/V weights")
    tied, _ = tiny_model(3, tie_word_embeddings=True)
    names = [n for n, _ in tied.named_parameters()]
    check("lm_head.weight" not in names and len(names) == 1 + 2 * 9 + 1, "tied: no lm_head parameter")
    names_untied = [n for n, _ in m.named_parameters()]
    want = (["model.embed_tokens.weight"] +
            [f"model.layers.{i}.{s}" for i in range(2) for s in (
                "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
                "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight")] +
            ["model.norm.weight", "lm_head.weight"])
    check(names_untied == want, "parameter names are HF's, in HF order")
    cfg = R.LlamaConfig.from_dict(tiny_cfg(tie_word_embeddings=True).to_hf_dict())
    check(cfg == tiny_cfg(tie_word_embeddings=True), "config round trip through the HF dict")


def check_gradcheck():
    torch.manual_seed(0)
    for tied in (False, True):
        m, g = tiny_model(4, tie_word_embeddings=tied)
        names = [n for n, _ in m.named_parameters()]
        tok = torch.randint(0, 11, (2, 5), generator=g)
        tg = torch.randint(0, 11, (2, 5), generator=g)
        w = torch.tensor([[1.0, 0.5, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 2.0, 1.0]], dtype=torch.float64)
        h0 = m.embed(tok).detach().requires_grad_()
        params = [p.detach().clone().requires_grad_() for p in m.parameters()]

        def loss_fn(h, *ps):
            return _fwd(m, dict(zip(names, ps)), h, tg, w)[1]

        def logits_fn(h, *ps):
            return _fwd(m, dict(zip(names, ps)), h, tg, w)[0]

        ok1 = torch.autograd.gradcheck(loss_fn, (h0, *params), eps=1e-6, atol=1e-7, rtol=1e-5)
        ok2 = torch.autograd.gradcheck(logits_fn, (h0, *params), eps=1e-6, atol=1e-7, rtol=1e-5)
        check(ok1 and ok2, f"gradcheck float64 ({'tied' if tied else 'untied'}): loss and logits w.r.t. "
              f"resid0 and all {len(params)} parameters")


def _fwd(m, params, h, tg, w):
    class _Wrap(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, h, tg, w):
            return self.inner.forward_embeds(h, tg, w)

    return functional_call(_Wrap(m), {"inner." + k: v for k, v in params.items()}, (h, tg, w))


def check_safetensors():
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "a.safetensors")
        a = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
        S.write(p, [("x", a), ("s", np.float64(2.5).reshape(1))], {"k": "v"})
        t, meta = S.read(p)
        check(np.array_equal(t["x"], a) and t["s"][0] == 2.5 and meta == {"k": "v"}, "safetensors F32 round trip")
        with open(p, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
        check((8 + n) % 64 == 0, "data area 64-byte aligned")
        # hand-made F16 / BF16 file
        vals = np.array([1.0, -2.5, 0.1, 65504.0], dtype=np.float32)
        f16 = vals.astype("<f2").tobytes()
        bf16 = (vals.view(np.uint32) >> 16).astype("<u2").tobytes()
        import json
        hdr = json.dumps({"h": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]},
                          "b": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [8, 16]}}).encode()
        with open(p, "wb") as f:
            f.write(struct.pack("<Q", len(hdr)) + hdr + f16 + bf16)
        t, _ = S.read(p)
        check(np.array_equal(t["h"], vals.astype(np.float16).astype(np.float32)), "read F16")
        want_bf = ((vals.view(np.uint32) >> 16) << 16).view(np.float32).reshape(2, 2)
        check(np.array_equal(t["b"], want_bf), "read BF16 (truncated mantissa widened exactly)")
        hdr = json.dumps({"h": {"dtype": "F32", "shape": [4], "data_offsets": [0, 20]}}).encode()
        with open(p, "wb") as f:
            f.write(struct.pack("<Q", len(hdr)) + hdr + bytes(20))
        try:
            S.read(p)
            check(False, "rejects byte count != shape x dtype")
        except ValueError:
            check(True, "rejects byte count != shape x dtype")


# ---- mutation test of the C test's tolerance ----

ratio = MF.close_ratio


def worst_ratio(out, ref):
    """out/ref: (logits, loss, grads, dresid0) as returned by make_fixture.run."""
    r = {"logits": ratio(out[0], ref[0]), "grad.resid0": ratio(out[3], ref[3]),
         "loss": abs(out[1].item() - ref[1].item()) / (LOSS_RTOL * abs(ref[1].item()))}
    for k in ref[2]:
        r["grad." + k] = ratio(out[2][k], ref[2][k])
    k = max(r, key=r.get)
    return r[k], k


def _attn_tiled(self, x, cos, sin):
    """Mutation: query head h reads kv head h % NKV (torch.repeat) instead of h // (NH/NKV)."""
    B, T, _ = x.shape
    q = R.apply_rope(self.q_proj(x).view(B, T, self.NH, self.HS).transpose(1, 2), cos, sin)
    k = R.apply_rope(self.k_proj(x).view(B, T, self.NKV, self.HS).transpose(1, 2), cos, sin)
    v = self.v_proj(x).view(B, T, self.NKV, self.HS).transpose(1, 2)
    rep = self.NH // self.NKV
    k, v = k.repeat(1, rep, 1, 1), v.repeat(1, rep, 1, 1)
    s = (q @ k.transpose(-2, -1)) / math.sqrt(self.HS)
    s = s.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    return self.o_proj((torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, T, -1))


def _rope_interleaved(x, cos, sin):
    """Mutation: Meta's interleaved pairing (x_2i, x_2i+1) on HF-permuted weights."""
    half = x.shape[-1] // 2
    c, s = cos[:, :half].repeat_interleave(2, -1), sin[:, :half].repeat_interleave(2, -1)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    rot = torch.stack((-x2, x1), dim=-1).flatten(-2)
    return x * c + rot * s


def _norm_eps_outside(self, x):
    return self.weight * x / (x.pow(2).mean(-1, keepdim=True).sqrt() + self.eps)


def _norm_no_eps(self, x):
    return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True))


def _norm_no_weight(self, x):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)


def _attn_scale_hs(self, x, cos, sin):
    """Mutation: scores scaled by 1/HS. Folding the extra 1/sqrt(HS) into q leaves the
    rest of the reference untouched."""
    return _ORIG["attn"](_ScaledQ(self), x, cos, sin)


class _ScaledQ:
    def __init__(self, att):
        self.__dict__.update(NH=att.NH, NKV=att.NKV, HS=att.HS, k_proj=att.k_proj, v_proj=att.v_proj,
                             o_proj=att.o_proj)
        self.q_proj = lambda x: att.q_proj(x) / math.sqrt(att.HS)


def _loss_unweighted(logits, targets, weights=None):
    return Fn.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def _loss_binary_mask(logits, targets, weights=None):
    return _ORIG["loss"](logits, targets, (weights > 0).to(weights.dtype))


def _loss_mean_over_n(logits, targets, weights=None):
    V = logits.shape[-1]
    ce = Fn.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), reduction="none")
    return (ce * weights.reshape(-1)).mean()


_ORIG = {"loss": R.weighted_cross_entropy, "rope": R.apply_rope, "attn": R.Attention.forward,
         "norm": R.RMSNorm.forward, "silu": Fn.silu, "cos_sin": R.rope_cos_sin}

MUTATIONS = {
    "rope pairs (2i, 2i+1) instead of rotate_half": ("rope", _rope_interleaved, None),
    "rope sign flipped (rotate by -angle)": ("rope", lambda x, c, s: _ORIG["rope"](x, c, -s), None),
    "rope theta ignored (always 10000)":
        ("cos_sin", lambda T, HS, th, dt, dev=None: _ORIG["cos_sin"](T, HS, 10000.0, dt, dev), "gqa"),
    "kv head h % NKV instead of h // (NH/NKV)": ("attn", _attn_tiled, "gqa"),
    "rmsnorm eps outside the sqrt": ("norm", _norm_eps_outside, "gqa"),
    "rmsnorm eps dropped": ("norm", _norm_no_eps, "gqa"),
    "rmsnorm weight ignored": ("norm", _norm_no_weight, None),
    "attention scale 1/HS instead of 1/sqrt(HS)": ("attn", _attn_scale_hs, None),
    "gelu instead of silu": ("silu", lambda x: Fn.gelu(x), None),
    "loss ignores the weights": ("loss", _loss_unweighted, None),
    "loss treats weight 0.5 as 1": ("loss", _loss_binary_mask, None),
    "loss divided by N, not sum(w)": ("loss", _loss_mean_over_n, None),
}


def _patch(slot, fn):
    if slot == "loss":
        R.weighted_cross_entropy = fn
    elif slot == "rope":
        R.apply_rope = fn
    elif slot == "attn":
        R.Attention.forward = fn
    elif slot == "norm":
        R.RMSNorm.forward = fn
    elif slot == "silu":
        R.Fn.silu = fn
    elif slot == "cos_sin":
        R.rope_cos_sin = fn


def _fixture_model(variant, seed):
    g = torch.Generator().manual_seed(seed)
    cfg = MF.build(variant == "tied", variant == "gqa")
    m = R.LlamaForCausalLM(cfg).double()
    m.init_random(std=0.2, norm_std=0.1, generator=g)
    m.load_state_dict({k: v.float().double() for k, v in m.state_dict().items()})
    return m, MF.make_batch(g, 2, 16, cfg.vocab_size)


def check_tolerance():
    seed = 1234  # make_fixture.py's default
    refs = {}
    for variant in ("plain", "gqa", "tied"):
        m, (tok, tg, w) = _fixture_model(variant, seed)
        refs[variant] = (m, tok, tg, w, MF.run(m, tok, tg, w))
        m32 = R.LlamaForCausalLM(m.config).float()
        m32.load_state_dict({k: v.float() for k, v in m.state_dict().items()})
        r, k = worst_ratio(MF.run(m32, tok, tg, w.float()), refs[variant][4])
        check(r < 0.25, f"torch float32 passes the C test's tolerance with margin ({variant}: worst {r:.3f} at {k})")
    for what, (slot, fn, only) in MUTATIONS.items():
        _patch(slot, fn)
        try:
            worst = []
            for variant in ([only] if only else refs):
                m, tok, tg, w, ref = refs[variant]
                m._rope.clear()
                worst.append((*worst_ratio(MF.run(m, tok, tg, w), ref), variant))
            r, k, v = max(worst)
            check(r > 1, f"mutation caught: {what} ({v}: ratio {r:.3g} at {k})")
        finally:
            _patch(slot, _ORIG[slot])
            for v in refs.values():
                v[0]._rope.clear()
    # a tied model whose embedding gradient lacks the lm_head part
    m, tok, tg, w, ref = refs["tied"]
    h0 = m.embed(tok).detach().requires_grad_()
    m.zero_grad(set_to_none=True)
    m.forward_embeds(h0, tg, w)[1].backward()
    partial = torch.zeros_like(m.model.embed_tokens.weight).index_add_(0, tok.reshape(-1),
                                                                         h0.grad.reshape(-1, h0.shape[-1]))
    r = ratio(partial, ref[2]["model.embed_tokens.weight"])
    check(r > 1, f"mutation caught: tied embed grad without the lm_head part (ratio {r:.3g})")


def main():
    torch.set_num_threads(1)  # tiny tensors: threads only add OpenMP overhead (and spin under load)
    torch.manual_seed(0)  # every check sees the same random inputs on every run
    check_rope()
    check_attention()
    check_norm_loss()
    check_model_structure()
    check_safetensors()
    check_gradcheck()
    check_tolerance()
    if failures:
        print(f"{len(failures)} check(s) FAILED")
        sys.exit(1)
    print("all reference checks passed")


if __name__ == "__main__":
    main()
