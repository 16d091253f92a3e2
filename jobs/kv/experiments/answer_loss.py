#!/usr/bin/python3
"""Answer loss of a model or a composition on prompt/target files, teacher-forced: each answer's
mean cross-entropy in nats per byte, EOS included, averaged over the examples (as oracle_path.py). `calm eval --task` scores
exact match only; this puts a trained composition on the same scale as oracle_path.py's losses.

Usage: answer_loss.py --mB DIR [--mA DIR --calm DIR] [--limit N] FILE...
  --calm: a composition directory (calm_config.json, calm.safetensors) of mA and mB"""
import argparse, json, os

import torch

from torch_ref import compose_ref, llama_ref, safetensors_io

ap = argparse.ArgumentParser()
ap.add_argument("--mB", required=True); ap.add_argument("--mA"); ap.add_argument("--calm")
ap.add_argument("--limit", type=int, default=100); ap.add_argument("files", nargs="+")
a = ap.parse_args()
if bool(a.mA) != bool(a.calm):
    ap.error("--mA and --calm go together")
torch.set_num_threads(1)

model = llama_ref.load_model_dir(a.mB)
if a.calm:
    cc = json.load(open(a.calm + "/calm_config.json"))
    conn = [tuple(c) for c in cc["connections"]]
    model = compose_ref.Composition(llama_ref.load_model_dir(a.mA), model, conn, cc.get("heads", 0))
    w = safetensors_io.read(a.calm + "/calm.safetensors")[0]
    with torch.no_grad():
        for name, p in model.composition_parameters():
            p.copy_(torch.as_tensor(w[name]))

with torch.no_grad():
    for f in a.files:
        rows = [json.loads(l) for l in open(f)][:a.limit]
        total = 0.0
        for r in rows:
            pr, tg = list(r["prompt"].encode()), list(r["target"].encode()) + [257]
            toks = torch.tensor([[256] + pr + tg[:-1]])
            logits = model(toks)[0][0]
            total += torch.nn.functional.cross_entropy(logits[len(pr):], torch.tensor(tg)).item()
        print(f"{os.path.basename(f)}: {total / len(rows):.3f} nats per answer byte ({len(rows)} examples)")
