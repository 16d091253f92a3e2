#!/usr/bin/python3
"""PyTorch speed baseline for `calm bench`: the same Llama, in float32, through
torch_ref.llama_ref (tests/torch_ref/, an independent implementation of HF's LlamaForCausalLM).

usage: PYTHONPATH=tests /usr/bin/python3 jobs/bench_torch.py [--dim 512 --layers 8 --heads 8 --kv-heads 0
           --ffn 1408 --vocab 320 --batch 8 --seq-len 256 --steps 5 --warmup 2 --threads 0]

Defaults are the benchmark config (as `calm bench`). Two modes, each timed over
--steps steps after --warmup untimed ones:
  full    forward + backward of every parameter + AdamW step
  frozen  parameters have requires_grad=False; the embedding output does, so the
          backward computes only input gradients (calm's GRAD_INPUT), no optimizer
Output, one line each (key=value, no spaces inside values), for jobs/bench-lm.sh:
  torch version=1.13.0a0 threads=2 blas=blis-openmp blis_arch=skx ...
  torch mode=full tokens_per_s=... step_ms=... step_ms_min=... model_gflops=... loss=...
  torch mode=frozen ...

BLAS. Debian's torch does its matmuls through libblas.so.3, which on this
project's machines is BLIS (libblis-openmp-dev). BLIS ignores torch.set_num_threads
and picks kernels by CPU model, so without care the baseline would run
single-threaded (BLIS's default) on whatever kernels BLIS guesses (`zen3` on a Zen 4,
~2/3 of `skx`'s speed here). So before torch loads, this script sets
BLIS_NUM_THREADS/OMP_NUM_THREADS to --threads and BLIS_ARCH_TYPE the way
calm_blas_init() (src/blas.c) does: a BLIS_ARCH_TYPE already in the environment
wins, else skx when the CPU has AVX-512 F/DQ/BW/VL, else haswell with AVX2+FMA.
--blis-arch auto leaves the choice to BLIS; --blis-arch NAME forces one. Both
programs then run the same GEMM kernels on the same threads, and the comparison
measures everything else.
"""
import argparse
import ctypes
import os
import sys
import time


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def blis_arch_ids(libdir):
    """name -> BLIS arch_t index, from the libblis.so.4 next to the BLIS libblas.so.3
    (the BLAS library itself does not export bli_*). {} if this is not BLIS."""
    try:
        lib = ctypes.CDLL(os.path.join(libdir, "libblis.so.4"))
        lib.bli_arch_string.restype = ctypes.c_char_p
        lib.bli_arch_string.argtypes = [ctypes.c_int]
        # arch_t values are contiguous from 0; BLIS 0.9 has < 40 of them.
        ids, i = {}, 0
        while i < 64:
            s = lib.bli_arch_string(i)
            if not s:
                break
            ids[s.decode()] = i
            i += 1
        return ids
    except (OSError, AttributeError):
        return {}


def setup_blas(threads, arch_flag):
    """Set the environment BLIS reads at its first call. Returns (blas, arch label).
    arch_flag "installed" leaves everything as Debian's torch runs by default:
    BLIS picks its kernels by CPU model and uses one thread (torch's own thread
    count does not reach BLIS)."""
    if arch_flag != "installed":
        os.environ["OMP_NUM_THREADS"] = str(threads)
        os.environ["BLIS_NUM_THREADS"] = str(threads)
    real = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")
    libdir = os.path.dirname(real)
    blas = os.path.basename(libdir) if "blis" in libdir else real
    ids = blis_arch_ids(libdir) if "blis" in libdir else {}
    if not ids:
        return blas, "n/a"
    names = {v: k for k, v in ids.items()}
    user = os.environ.get("BLIS_ARCH_TYPE")
    if arch_flag == "calm":
        if user:
            return blas, names.get(int(user), user) + "(user)"
        fl = cpu_flags()
        if {"avx512f", "avx512dq", "avx512bw", "avx512vl"} <= fl and "skx" in ids:
            arch_flag = "skx"
        elif {"avx2", "fma"} <= fl and "haswell" in ids:
            arch_flag = "haswell"
        else:
            arch_flag = "auto"
    if arch_flag == "installed":
        return blas, "as-installed"
    if arch_flag == "auto":
        os.environ.pop("BLIS_ARCH_TYPE", None)
        return blas, "blis-default"
    if arch_flag not in ids:
        sys.exit(f"bench_torch.py: --blis-arch {arch_flag}: this BLIS has {sorted(ids)}")
    os.environ["BLIS_ARCH_TYPE"] = str(ids[arch_flag])
    return blas, arch_flag


def flops_per_step(a, full):
    """Model FLOPs of one forward+backward: the formula of model_flops_per_step in
    src/model.c (kept equal so model_gflops compares like with like)."""
    N, C, Q, KV = a.batch * a.seq_len, a.dim, a.heads * a.head_dim, a.kv_heads * a.head_dim
    F, V, L, T = a.ffn, a.vocab, a.layers, a.seq_len
    mm = L * 2.0 * N * (C * Q + 2.0 * C * KV + Q * C + 3.0 * C * F) + 2.0 * N * C * V
    att = L * 2.0 * 2.0 * a.batch * a.heads * (T * (T + 1) / 2.0) * a.head_dim
    fwd = mm + att
    return fwd + 2.0 * mm + 2.0 * att if full else fwd + mm + 2.0 * att


def main():
    ap = argparse.ArgumentParser(description="PyTorch training-step throughput baseline for calm bench")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=0, help="0: = heads")
    ap.add_argument("--ffn", type=int, default=1408)
    ap.add_argument("--vocab", type=int, default=320)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per mode")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=0, help="0: os.cpu_count()")
    ap.add_argument("--blis-arch", default="calm", help="calm (same rule as calm_blas_init), auto (BLIS's "
                    "own choice), installed (Debian torch as it runs by default: BLIS default kernels, one "
                    "BLIS thread) or a BLIS kernel set name (skx, haswell, zen3, ...)")
    ap.add_argument("--modes", default="full,frozen", help="full, frozen, compose (augment d256 L8 h4 ff704 "
                    "composed into the model above with connections 3:3,7:7)")
    a = ap.parse_args()
    a.threads = a.threads or os.cpu_count() or 1
    a.kv_heads = a.kv_heads or a.heads
    if a.dim % a.heads:
        sys.exit(f"bench_torch.py: --dim {a.dim} is not divisible by --heads {a.heads}")
    a.head_dim = a.dim // a.heads

    blas, arch = setup_blas(a.threads, a.blis_arch)
    import torch  # after the environment is set: BLIS reads it once, at its first call

    from torch_ref import llama_ref

    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    cfg = llama_ref.LlamaConfig(hidden_size=a.dim, intermediate_size=a.ffn, num_hidden_layers=a.layers,
                                num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
                                head_dim=a.head_dim, vocab_size=a.vocab,
                                max_position_embeddings=max(a.seq_len, 1024))
    model = llama_ref.LlamaForCausalLM(cfg).float()
    model.init_random(std=0.02)
    nparams = sum(p.numel() for p in model.parameters())
    # Random bytes as calm bench uses; every token weighted 1 (mean loss).
    tokens = torch.randint(0, 256, (a.batch, a.seq_len))
    targets = torch.randint(0, 256, (a.batch, a.seq_len))
    print(f"torch version={torch.__version__} threads={torch.get_num_threads()} blas={blas} blis_arch={arch} "
          f"dtype=float32 params={nparams} batch={a.batch}x{a.seq_len}", flush=True)

    for mode in a.modes.split(","):
        if mode == "compose":
            bench_compose(a, torch, llama_ref, model, cfg, tokens, targets)
            continue
        full = mode == "full"
        for p in model.parameters():
            p.requires_grad_(full)
            p.grad = None
        opt = torch.optim.AdamW(model.parameters(), lr=1e-6, weight_decay=0.1) if full else None
        times, loss = [], None
        for s in range(a.warmup + a.steps):
            t0 = time.perf_counter()
            if full:
                opt.zero_grad(set_to_none=True)
                loss = model(tokens, targets)[1]
            else:
                h0 = model.embed(tokens).detach().requires_grad_()
                loss = model.forward_embeds(h0, targets)[1]
            loss.backward()
            if full:
                opt.step()
            if s >= a.warmup:
                times.append(time.perf_counter() - t0)
        if not full:
            assert h0.grad is not None and all(p.grad is None for p in model.parameters())
        dt = sum(times) / len(times)
        ntok = a.batch * a.seq_len
        print(f"torch mode={mode} tokens_per_s={ntok / dt:.1f} step_ms={dt * 1e3:.1f} "
              f"step_ms_min={min(times) * 1e3:.1f} model_gflops={flops_per_step(a, full) / dt / 1e9:.1f} "
              f"loss={loss.item():.4f}", flush=True)
        del opt


def bench_compose(a, torch, llama_ref, anchor, cfg_b, tokens, targets):
    """The composition step of calm bench --compose, in PyTorch (tests/torch_ref/compose_ref.py)."""
    from torch_ref import compose_ref
    cfg_a = llama_ref.LlamaConfig(hidden_size=256, intermediate_size=704, num_hidden_layers=8,
                                  num_attention_heads=4, num_key_value_heads=4, head_dim=64,
                                  vocab_size=cfg_b.vocab_size, max_position_embeddings=cfg_b.max_position_embeddings)
    augment = llama_ref.LlamaForCausalLM(cfg_a).float()
    augment.init_random(std=0.02)
    comp = compose_ref.Composition(augment, anchor, [(3, 3), (7, 7)]).float()
    comp.init_random()
    comp.float()
    params = [p for _, p in comp.composition_parameters()]
    opt = torch.optim.AdamW(params, lr=1e-6, weight_decay=0.0)
    times = []
    for s in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = comp(tokens, targets)[1]
        loss.backward()
        opt.step()
        if s >= a.warmup:
            times.append(time.perf_counter() - t0)
    dt = sum(times) / len(times)
    print(f"torch mode=compose tokens_per_s={a.batch * a.seq_len / dt:.1f} step_ms={dt * 1e3:.1f} "
          f"step_ms_min={min(times) * 1e3:.1f} trainable={sum(p.numel() for p in params)} loss={loss.item():.4f}",
          flush=True)


if __name__ == "__main__":
    main()
