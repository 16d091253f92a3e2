"""The training loop the experiment scripts share: AdamW (betas 0.9/0.95, weight decay 0.01), linear
warm-up over the first 5% of steps, cosine decay to 10% of the peak rate, gradient clipping at 1, and
a progress line every log_every steps with the loss, its moving average and the elapsed time."""
import math, time
import torch


def train(params, steps, lr, loss_fn, log_every=100, note=lambda: ""):
    """Run steps optimiser steps on loss_fn() (which samples its own batch and returns a scalar loss).
    note() may add a word to each progress line."""
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
    warm = steps // 20 + 1
    t0, ema = time.time(), None
    for s in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (s + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / steps)))
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if s % log_every == 0 or s == steps - 1:
            print(f"step {s} loss {loss.item():.3f} ema {ema:.3f}{note()} {time.time() - t0:.0f}s", flush=True)
