#!/usr/bin/env bash
# calm plan for named cluster shapes (docs/scaling.md, "Cluster plans"): the
# NTL paper preset's models and an 8B anchor with a 1B augment, on N nodes of
# 64 cores and 256 GB with a 100 Gb/s, 2 us network. Per-layer costs are
# measured here once (paper: micro-batches 1-32 of 256 tokens, ~2 min; 8B:
# one of 1 x 2048, ~9 min) and kept in OUT/*.costs.json; the plans are
# OUT/{paper,8b}-N.txt and .jsonl, and OUT/tables.md sums them up.
# The 8B and 1B models are jobs/bench-big.sh's (random BF16 weights of the
# published shapes; it writes them to runs/bench-big, 19 GB); without them
# the 8B plans are skipped with a message.
# Usage: jobs/scaling/cluster-plans.sh [--out DIR] [--nodes "8 64 512"] [--big DIR]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=$root/runs/scaling-extrap nodes="8 64 512" big=$root/runs/bench-big
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --nodes) nodes=$2; shift 2 ;;
    --big) big=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "cluster-plans.sh: unknown argument '$1' (--help)" >&2; exit 2 ;;
  esac
done
job=cluster-plans.sh
source "$root/jobs/lib.sh"
job_local_calm
mkdir -p "$out"
machine=(--cores-per-node 64 --mem-per-node 256 --net-latency-us 2 --net-gbps 100)
paper=(--anchor "$out/mB" --augment "$out/mA" --connections 3:3,7:7,7:11 --global-batch 1024 --seq 256)
big_args=(--anchor "$big/8b" --augment "$big/1b" --global-batch 512 --seq 2048)

# The paper preset's shapes (jobs/ntl.sh --preset paper), random weights: costs depend on shapes only.
[[ -f $out/mB/config.json ]] || "$calm" train --out "$out/mB" --dim 512 --layers 12 --heads 8 --steps 0 \
  --seq-len 128 --max-seq-len 256 "$root/tests/data/memorise.txt" 2>/dev/null
[[ -f $out/mA/config.json ]] || "$calm" train --out "$out/mA" --dim 256 --layers 8 --heads 4 --steps 0 \
  --seq-len 128 --max-seq-len 256 "$root/tests/data/memorise.txt" 2>/dev/null
if [[ ! -f $out/paper.costs.json ]]; then
  echo "== measuring the paper preset's per-layer costs (about 2 minutes; run it on an idle machine)"
  "$calm" plan "${paper[@]}" --nodes 512 "${machine[@]}" --save-costs "$out/paper.costs.json" --top 1 >/dev/null
fi
have_big=1
for m in 8b 1b; do [[ -f $big/$m/config.json ]] || have_big=0; done
if [[ $have_big == 1 && ! -f $out/8b.costs.json ]]; then
  echo "== measuring the 8B anchor's per-layer costs (about 9 minutes)"
  "$calm" plan "${big_args[@]}" --nodes 512 "${machine[@]}" --max-calib-tokens 2048 --save-costs "$out/8b.costs.json" \
    --top 1 >/dev/null
fi
[[ $have_big == 1 ]] || echo "cluster-plans.sh: no 8B/1B models in $big (jobs/bench-big.sh --anchors 8b writes them): 8B plans skipped" >&2
for n in $nodes; do
  echo "== $n nodes"
  "$calm" plan "${paper[@]}" --nodes "$n" "${machine[@]}" --costs "$out/paper.costs.json" --top 5 \
    --json "$out/paper-$n.jsonl" >"$out/paper-$n.txt"
  [[ $have_big == 1 ]] && "$calm" plan "${big_args[@]}" --nodes "$n" "${machine[@]}" --costs "$out/8b.costs.json" \
    --top 5 --json "$out/8b-$n.jsonl" >"$out/8b-$n.txt"
done
/usr/bin/python3 - "$out" "$nodes" <<'PY' >"$out/tables.md"
import json, os, sys
out, nodes = sys.argv[1], [int(n) for n in sys.argv[2].split()]
def name(r):
    if r["S"] == 0:
        return ("one process" if r["R"] == 1 else f"data parallel R={r['R']}") + f", {r['threads']} threads"
    return f"S={r['S']} A={r['A']} R={r['R']} M={r['M']}, {r['threads']} threads"
for model, title in (("paper", "NTL `paper` preset (mB d512 L12, mA d256 L8, F32, connections 3:3,7:7,7:11), "
                               "global batch 1024 x 256"),
                     ("8b", "Llama-3.1-8B anchor, Llama-3.2-1B augment (BF16, random weights of the published "
                            "shapes, the default 4 connections), global batch 512 x 2048")):
    if not os.path.exists(f"{out}/{model}-{nodes[0]}.jsonl"):
        continue
    print(f"**{title}**\n")
    print("| nodes x 64 cores | best layout | ranks | step | tokens/s | GB a rank | limited by | best pipeline "
          "| its step | refused (memory) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for n in nodes:
        rs = [json.loads(l) for l in open(f"{out}/{model}-{n}.jsonl")]
        ok = [r for r in rs if r["ok"]]
        mem = sum(1 for r in rs if not r["ok"] and "GB" in r["why"])
        if not ok:
            print(f"| {n} | none fits | | | | | | | | {mem} of {len(rs)} |")
            continue
        b, p = ok[0], next((r for r in ok if r["S"] > 0), None)
        lim = ("bubble %.0f%%" % (100 * b["bubble"]) if b["bubble"] >= 0.25
               else "communication" if b["comm_s"] > 0.25 * b["step_s"] else "compute")
        pipe = f"{name(p)} (bubble {100 * p['bubble']:.0f}%) | {p['step_s']:.3g} s" if p else "- | -"
        print(f"| {n} | {name(b)} | {b['ranks']} | {b['step_s']:.3g} s | {b['tokens_per_s']:,.0f} | "
              f"{b['mem_gb']:.1f} | {lim} | {pipe} | {mem} of {len(rs)} |")
    print()
PY
echo "== $out/tables.md"
cat "$out/tables.md"
