"""An independent plain-PyTorch Llama decoder: what HF transformers' LlamaForCausalLM
computes (eager attention, no bias, rotate_half RoPE, grouped KV heads, SwiGLU MLP),
written from the math because transformers is not installed here.

It is calm's reference: tests/torch_ref/make_fixture.py runs it in float64 to make the
fixtures the C code must match, and jobs/bench_torch.py runs it in float32 as the speed
baseline. Parameter names are exactly HF's (named_parameters() yields
"model.layers.0.self_attn.q_proj.weight", ...), so a state dict loads from, and saves
to, a HF checkpoint unchanged. When tie_word_embeddings is set there is no lm_head
parameter: the logits use model.embed_tokens.weight, as HF does.

Dimension letters as in src/model.h: B batch, T time, C hidden_size, NH query heads,
NKV key/value heads, HS head_dim, F intermediate_size, L layers, V vocab_size.
"""
import json
import math
import os
from dataclasses import dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as Fn

from . import safetensors_io


@dataclass
class LlamaConfig:
    hidden_size: int = 512
    intermediate_size: int = 1408
    num_hidden_layers: int = 8
    num_attention_heads: int = 8
    num_key_value_heads: int = 8
    head_dim: int = 0  # 0: hidden_size // num_attention_heads (HF's default)
    vocab_size: int = 320
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = False
    max_position_embeddings: int = 2048
    attention_bias: bool = False  # bias on q, k, v, o projections
    rope_scaling: dict = None  # None, or {"rope_type": "llama3", "factor", "low_freq_factor", ...}

    def __post_init__(self):
        if not self.head_dim:
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        if self.head_dim % 2:
            raise ValueError("head_dim must be even for RoPE")
        if self.rope_scaling is not None:
            kind = self.rope_scaling.get("rope_type", self.rope_scaling.get("type"))
            if kind == "default":
                self.rope_scaling = None
            elif kind != "llama3":
                raise ValueError(f"rope_scaling type {kind!r} is not supported by llama_ref (llama3 or default)")

    @classmethod
    def from_dict(cls, d):
        """From a HF config.json dict; unknown keys (model_type, bos_token_id, ...) are ignored.
        Keys HF would honour but this reference does not implement are refused, so a
        fixture can never silently disagree with HF."""
        for k, ok in (("mlp_bias", False), ("hidden_act", "silu")):
            if k in d and d[k] != ok:
                raise ValueError(f"config {k}={d[k]!r} is not supported by llama_ref (want {ok!r})")
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names and v is not None}
        if "num_key_value_heads" not in kw:
            kw["num_key_value_heads"] = d["num_attention_heads"]
        return cls(**kw)

    @classmethod
    def load(cls, path):
        with open(path) as f:
            return cls.from_dict(json.load(f))

    def to_hf_dict(self, bos=256, eos=257, pad=258):
        """The full LlamaConfig key set, as transformers would write it."""
        return {
            "architectures": ["LlamaForCausalLM"],
            "attention_bias": bool(self.attention_bias),
            "attention_dropout": 0.0,
            "bos_token_id": bos,
            "eos_token_id": eos,
            "pad_token_id": pad,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "hidden_size": self.hidden_size,
            "initializer_range": 0.02,
            "intermediate_size": self.intermediate_size,
            "max_position_embeddings": self.max_position_embeddings,
            "mlp_bias": False,
            "model_type": "llama",
            "num_attention_heads": self.num_attention_heads,
            "num_hidden_layers": self.num_hidden_layers,
            "num_key_value_heads": self.num_key_value_heads,
            "pretraining_tp": 1,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_scaling": self.rope_scaling,
            "rope_theta": self.rope_theta,
            "tie_word_embeddings": bool(self.tie_word_embeddings),
            "torch_dtype": "float32",
            "use_cache": True,
            "vocab_size": self.vocab_size,
        }


class RMSNorm(nn.Module):
    def __init__(self, C, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(C))
        self.eps = eps

    def forward(self, x):
        # HF upcasts half precision to fp32 for the statistics; fp32/fp64 stay as they are.
        h = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def rope_cos_sin(T, HS, theta, dtype, device=None):
    """cos, sin [T, HS] in HF's layout: inv_freq = theta^(-arange(0,HS,2)/HS),
    freqs = pos (x) inv_freq [T, HS/2], emb = cat(freqs, freqs). Computed in float64
    and rounded once to dtype (HF computes in fp32; the difference is < 1 ulp of fp32
    for the short sequences of the fixtures)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, HS, 2, dtype=torch.float64, device=device) / HS))
    pos = torch.arange(T, dtype=torch.float64, device=device)
    freqs = torch.outer(pos, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def llama3_inv_freq(HS, theta, scaling):
    """transformers' _compute_llama3_parameters, written from its definition: wavelengths
    2*pi/inv_freq shorter than original_max_position_embeddings / high_freq_factor keep
    their frequency, longer than .. / low_freq_factor are divided by factor, and those in
    between interpolate with smooth = (old_len / wavelen - low) / (high - low)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, HS, 2, dtype=torch.float64) / HS))
    factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    old_len = scaling["original_max_position_embeddings"]
    out = []
    for f in inv_freq.tolist():
        wavelen = 2 * math.pi / f
        if wavelen < old_len / high:
            out.append(f)
        elif wavelen > old_len / low:
            out.append(f / factor)
        else:
            smooth = (old_len / wavelen - low) / (high - low)
            out.append((1 - smooth) * f / factor + smooth * f)
    return torch.tensor(out, dtype=torch.float64)


def rope_cos_sin_llama3(T, HS, theta, scaling, dtype, device=None):
    """rope_cos_sin with the llama3-scaled inverse frequencies."""
    freqs = torch.outer(torch.arange(T, dtype=torch.float64), llama3_inv_freq(HS, theta, scaling))
    emb = torch.cat((freqs, freqs), dim=-1).to(device)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x, cos, sin):
    """x [B, heads, T, HS]; cos/sin [T, HS]."""
    return x * cos + rotate_half(x) * sin


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, NH, NKV, HS = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        self.NH, self.NKV, self.HS = NH, NKV, HS
        bias = bool(cfg.attention_bias)
        self.q_proj = nn.Linear(C, NH * HS, bias=bias)
        self.k_proj = nn.Linear(C, NKV * HS, bias=bias)
        self.v_proj = nn.Linear(C, NKV * HS, bias=bias)
        self.o_proj = nn.Linear(NH * HS, C, bias=bias)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.NH, self.HS).transpose(1, 2)   # [B,NH,T,HS]
        k = self.k_proj(x).view(B, T, self.NKV, self.HS).transpose(1, 2)  # [B,NKV,T,HS]
        v = self.v_proj(x).view(B, T, self.NKV, self.HS).transpose(1, 2)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        rep = self.NH // self.NKV
        if rep > 1:  # HF repeat_kv: query head h reads kv head h // rep
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.HS))  # [B,NH,T,T]
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        probs = torch.softmax(scores.float() if scores.dtype in (torch.float16, torch.bfloat16) else scores,
                              dim=-1).to(q.dtype)
        out = (probs @ v).transpose(1, 2).reshape(B, T, self.NH * self.HS)
        return self.o_proj(out)


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, F = cfg.hidden_size, cfg.intermediate_size
        self.gate_proj = nn.Linear(C, F, bias=False)
        self.up_proj = nn.Linear(C, F, bias=False)
        self.down_proj = nn.Linear(F, C, bias=False)

    def forward(self, x):
        return self.down_proj(Fn.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


def weighted_cross_entropy(logits, targets, weights=None):
    """sum_n w_n * CE_n / sum_n w_n over all B*T positions (0 if the weights sum to 0).
    targets are given explicitly (no shift, unlike HF's labels)."""
    V = logits.shape[-1]
    ce = Fn.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), reduction="none")
    if weights is None:
        return ce.mean()
    w = weights.reshape(-1).to(ce.dtype)
    wsum = w.sum()
    if wsum.item() == 0:
        return (ce * w).sum()  # 0, still connected to the graph
    return (ce * w).sum() / wsum


class LlamaForCausalLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.model = LlamaModel(cfg)
        if not cfg.tie_word_embeddings:
            self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self._rope = {}

    def lm_weight(self):
        return self.model.embed_tokens.weight if self.config.tie_word_embeddings else self.lm_head.weight

    def rope(self, T, dtype, device):
        key = (T, dtype, device)
        if key not in self._rope:
            c = self.config
            if c.rope_scaling is None:
                self._rope[key] = rope_cos_sin(T, c.head_dim, c.rope_theta, dtype, device)
            else:
                self._rope[key] = rope_cos_sin_llama3(T, c.head_dim, c.rope_theta, c.rope_scaling, dtype, device)
        return self._rope[key]

    def embed(self, tokens):
        """resid0 [B,T,C]: the embedding lookup, i.e. the input of layer 0."""
        return self.model.embed_tokens(tokens)

    def forward_embeds(self, h, targets=None, weights=None):
        """From resid0 [B,T,C] to (logits [B,T,V], loss or None)."""
        cos, sin = self.rope(h.shape[1], h.dtype, h.device)
        for layer in self.model.layers:
            h = layer(h, cos, sin)
        logits = Fn.linear(self.model.norm(h), self.lm_weight())
        loss = None if targets is None else weighted_cross_entropy(logits, targets, weights)
        return logits, loss

    def forward(self, tokens, targets=None, weights=None):
        return self.forward_embeds(self.embed(tokens), targets, weights)

    def init_random(self, std=0.02, norm_std=0.0, generator=None):
        """Linear/embedding weights and biases N(0, std); norm weights 1 + N(0, norm_std)."""
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("layernorm.weight") or name == "model.norm.weight":
                    p.copy_(1.0 + norm_std * torch.randn(p.shape, generator=generator, dtype=torch.float64))
                else:
                    p.copy_(std * torch.randn(p.shape, generator=generator, dtype=torch.float64))

    def load_hf_state(self, tensors):
        """tensors: dict HF name -> array. Every parameter must be present with its shape;
        an lm_head.weight in a tied checkpoint is ignored (HF ignores it too)."""
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name not in tensors:
                    raise KeyError(f"checkpoint lacks {name}")
                t = torch.as_tensor(tensors[name])
                if tuple(t.shape) != tuple(p.shape):
                    raise ValueError(f"{name}: shape {tuple(t.shape)}, model wants {tuple(p.shape)}")
                p.copy_(t.to(p.dtype))


def load_model_dir(path):
    """The model of a model directory as calm and HF write it (config.json, model.safetensors)."""
    m = LlamaForCausalLM(LlamaConfig.load(os.path.join(path, "config.json")))
    m.load_hf_state(safetensors_io.read(os.path.join(path, "model.safetensors"))[0])
    return m
