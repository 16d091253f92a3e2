"""A small checkpoint shaped like a real Llama 3 release, and the logits calm must reproduce.

usage: PYTHONPATH=tests /usr/bin/python3 -m torch_ref.make_real_fixture OUTDIR

OUTDIR/model/config.json      rope_scaling llama3, attention_bias true, head_dim 16 != 48/4,
                              tied embeddings, eos_token_id a list, bos/pad null, torch_dtype bfloat16
OUTDIR/model/model-0000i-of-00003.safetensors + model.safetensors.index.json
                              BF16 weights in 3 shards as transformers writes them
                              (embedding + block 0 | block 1 | block 2 + final norm)
OUTDIR/input.txt              the text; calm reads its bytes after BOS (256)
OUTDIR/ref.safetensors        F32: tokens [T] (ids as floats), logits [T, V]

The logits are computed by llama_ref in float32 on the BF16 weights (what a BF16 model
run in F32 computes, and what calm's frozen 16-bit path computes). Weights N(0, 0.2) and
biases N(0, 0.2) make every term matter (see make_fixture.py); the sequence (43 tokens)
is longer than original_max_position_embeddings (16), so the llama3 scaling of the low
frequencies changes the answer: with plain RoPE the logits move by 5.7 (max|logit| 5.4),
far outside the tolerance.

Tolerance of tests/test_torch_real.c: |calm - ref| <= 3e-5 max|ref| + 1e-4 |ref|.
torch's own float32 answer differs from float64 by 1e-5 = 2e-6 max|ref| here (printed
on every run); calm measured 7.4e-6 max abs, ratio 0.04 of the budget.
"""
import json
import os
import sys

try:
    import torch
except ImportError:
    sys.exit("make_real_fixture.py: torch not found.\nHINT: apt-get install python3-torch, and run it with "
             "/usr/bin/python3 (a pyenv/venv python does not see Debian's packages)")

from . import llama_ref, safetensors_io  # noqa: E402

BOS = 256
TEXT = b"Sharded BF16 weights, llama3 RoPE, biases!"
SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
           "original_max_position_embeddings": 16}


def config(rope_scaling=SCALING):
    return llama_ref.LlamaConfig(hidden_size=48, intermediate_size=80, num_hidden_layers=3, num_attention_heads=4,
                                 num_key_value_heads=2, head_dim=16, vocab_size=320, rms_norm_eps=1e-5,
                                 rope_theta=500000.0, tie_word_embeddings=True, max_position_embeddings=64,
                                 attention_bias=True, rope_scaling=rope_scaling)


def shard_of(name):
    if name.startswith("model.embed_tokens") or name.startswith("model.layers.0."):
        return 1
    if name.startswith("model.layers.1."):
        return 2
    return 3


def write_sharded(model, outdir):
    """BF16 shards and the index, as save_pretrained(max_shard_size=...) lays them out."""
    shards = {1: [], 2: [], 3: []}
    for name, p in model.named_parameters():
        shards[shard_of(name)].append((name, p.detach().float()))
    weight_map, total = {}, 0
    for i, items in shards.items():
        fname = f"model-{i:05d}-of-00003.safetensors"
        safetensors_io.write(os.path.join(outdir, fname), items, {"format": "pt"}, dtype="BF16")
        for name, t in items:
            weight_map[name] = fname
            total += 2 * t.numel()
    with open(os.path.join(outdir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    outdir = sys.argv[1]
    mdir = os.path.join(outdir, "model")
    os.makedirs(mdir, exist_ok=True)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(2024)
    cfg = config()
    model = llama_ref.LlamaForCausalLM(cfg).double()
    model.init_random(std=0.2, norm_std=0.1, generator=gen)
    with torch.no_grad():  # the BF16 checkpoint is the model: round once, use the rounded weights
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float64))
    write_sharded(model, mdir)
    hf = cfg.to_hf_dict(bos=BOS, eos=257, pad=258)
    hf.update({"torch_dtype": "bfloat16", "eos_token_id": [257, 258], "bos_token_id": None})
    del hf["pad_token_id"]
    with open(os.path.join(mdir, "config.json"), "w") as f:
        json.dump(hf, f, indent=2, sort_keys=True)
    with open(os.path.join(outdir, "input.txt"), "wb") as f:
        f.write(TEXT)

    tokens = torch.tensor([[BOS] + list(TEXT)])
    with torch.no_grad():
        ref64, _ = model(tokens)
        ref32, _ = model.float()(tokens)
        plain = llama_ref.LlamaForCausalLM(config(rope_scaling=None)).double()
        plain.load_state_dict(model.double().state_dict())
        moved, _ = plain(tokens)
    amax = ref64.abs().max().item()
    print(f"torch fp32 vs fp64: max abs {(ref32.double() - ref64).abs().max().item():.3g} (|max| {amax:.3g}); "
          f"plain RoPE moves the logits by {(moved - ref64).abs().max().item():.3g}")
    safetensors_io.write(os.path.join(outdir, "ref.safetensors"),
                         [("tokens", tokens[0].float()), ("logits", ref32[0])], {"text": TEXT.decode()})


if __name__ == "__main__":
    main()
