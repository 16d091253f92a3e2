"""An independent plain-PyTorch CALM composition (Bansal et al. 2024), written from the
documentation in src/compose.h, not from src/compose.c.

Two frozen decoders from llama_ref.py: the augmenting model mA (width dA) and the anchor
mB (width dB), both run on the same tokens. For connection i = (a, b), 0-based:
    hA = mA's residual stream after block a                       [B, T, dA]
    P  = proj(hA)        Linear dA -> dB with bias                 [B, T, dB]
    hB = mB's residual stream after block b (and after any earlier connection into b)
    q = q_proj(hB), k = k_proj(P), v = v_proj(P)   (Linear dB -> dB, no bias)
    split into H heads of size HS = dB / H; no RoPE in the cross-attention;
    scores = q k^T / sqrt(HS), causal: anchor position t attends to mA positions <= t
    hB <- hB + o_proj(softmax(scores) v)            (before block b+1)
Linear weights use PyTorch's [out, in] layout. Composition parameters are named
"calm.connections.<i>.{proj.weight, proj.bias, q_proj.weight, k_proj.weight,
v_proj.weight, o_proj.weight}" (named_parameters() of Composition yields exactly those
for the composition; the models' own parameters are under "augment." / "anchor." and
are frozen: requires_grad False).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as Fn

from . import llama_ref

PARAM_SUFFIXES = ("proj.weight", "proj.bias", "q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight")


class CrossConnection(nn.Module):
    def __init__(self, dA, dB, H):
        super().__init__()
        if dB % H:
            raise ValueError(f"cross-attention heads {H} do not divide the anchor width {dB}")
        self.H, self.HS = H, dB // H
        self.proj = nn.Linear(dA, dB, bias=True)
        self.q_proj = nn.Linear(dB, dB, bias=False)
        self.k_proj = nn.Linear(dB, dB, bias=False)
        self.v_proj = nn.Linear(dB, dB, bias=False)
        self.o_proj = nn.Linear(dB, dB, bias=False)

    def forward(self, hB, hA):
        """hB [B, T, dB], hA [B, T, dA] -> the addition to hB, [B, T, dB]."""
        B, T, dB = hB.shape
        P = self.proj(hA)

        def heads(x):  # [B, T, dB] -> [B, H, T, HS]
            return x.view(B, T, self.H, self.HS).transpose(1, 2)

        q, k, v = heads(self.q_proj(hB)), heads(self.k_proj(P)), heads(self.v_proj(P))
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.HS)  # [B, H, T(anchor), T(augment)]
        causal = torch.ones(T, T, dtype=torch.bool, device=hB.device).tril()
        probs = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)
        att = (probs @ v).transpose(1, 2).reshape(B, T, dB)
        return self.o_proj(att)


class Connections(nn.Module):
    def __init__(self, dA, dB, H, n):
        super().__init__()
        self.connections = nn.ModuleList(CrossConnection(dA, dB, H) for _ in range(n))


class Composition(nn.Module):
    def __init__(self, augment, anchor, connections, heads=0):
        """augment, anchor: llama_ref.LlamaForCausalLM; connections: [(a, b), ...];
        heads: cross-attention heads, 0 = the anchor's num_attention_heads."""
        super().__init__()
        ca, cb = augment.config, anchor.config
        if ca.vocab_size != cb.vocab_size:
            raise ValueError(f"vocabularies differ: augment {ca.vocab_size}, anchor {cb.vocab_size}")
        for a, b in connections:
            if not (0 <= a < ca.num_hidden_layers and 0 <= b < cb.num_hidden_layers):
                raise ValueError(f"connection {a}:{b} out of range")
        self.conn = [(int(a), int(b)) for a, b in connections]
        self.H = heads or cb.num_attention_heads
        self.augment, self.anchor = augment, anchor
        for p in list(augment.parameters()) + list(anchor.parameters()):
            p.requires_grad_(False)
        self.calm = Connections(ca.hidden_size, cb.hidden_size, self.H, len(self.conn))

    def composition_parameters(self):
        """(name, parameter) in the order of calm.safetensors: connection, then PARAM_SUFFIXES."""
        named = dict(self.named_parameters())
        return [(f"calm.connections.{i}.{s}", named[f"calm.connections.{i}.{s}"])
                for i in range(len(self.conn)) for s in PARAM_SUFFIXES]

    def augment_streams(self, tokens):
        """{a: mA's residual stream after block a} for every connected a."""
        m = self.augment
        h = m.embed(tokens)
        cos, sin = m.rope(h.shape[1], h.dtype, h.device)
        want, out = {a for a, _ in self.conn}, {}
        for l, layer in enumerate(m.model.layers):
            if not want - out.keys():
                break
            h = layer(h, cos, sin)
            if l in want:
                out[l] = h
        return out

    def forward(self, tokens, targets=None, weights=None):
        hA = self.augment_streams(tokens)
        m = self.anchor
        h = m.embed(tokens)
        cos, sin = m.rope(h.shape[1], h.dtype, h.device)
        for l, layer in enumerate(m.model.layers):
            h = layer(h, cos, sin)
            for i, (a, b) in enumerate(self.conn):  # in list order: a later one sees the earlier addition
                if b == l:
                    h = h + self.calm.connections[i](h, hA[a])
        logits = Fn.linear(m.model.norm(h), m.lm_weight())
        loss = None if targets is None else llama_ref.weighted_cross_entropy(logits, targets, weights)
        return logits, loss

    def init_random(self, o_std=None, bias_std=0.0, generator=None):
        """proj, q, k, v ~ N(0, 1/fan_in); proj bias ~ N(0, bias_std^2); o_proj ~ N(0, o_std^2)
        (o_std None or 0: zero, calm's step-0 init, where the composition computes exactly mB)."""
        with torch.no_grad():
            for name, p in self.composition_parameters():
                if name.endswith("o_proj.weight"):
                    std = o_std or 0.0
                elif name.endswith("proj.bias"):
                    std = bias_std
                else:
                    std = 1.0 / math.sqrt(p.shape[1])
                p.copy_(std * torch.randn(p.shape, generator=generator, dtype=torch.float64))
