#!/usr/bin/env bash
# What the distributed composition costs, measured on one machine (run it
# idle: BLIS threads spin, so anything else running distorts every figure).
#   1. the distributed code path at S=1, A=1 (one process per role) against
#      the single-process composition, same global batch;
#   2. per-stage busy time and idle (bubble) fraction of an S-stage pipeline
#      against the 1F1B ideal (S-1)/(M+S-1), and the bytes each rank sends per
#      step against the model's count (pipeline_report prints both).
# The composition is the benchmark's (docs/performance.md): mB d512 L8 h8
# ff1408, mA d256 L8 h4 ff704, connections 3:3,7:7, batch 8 x 256.
# Usage: jobs/bench-pipeline.sh [--steps N] [--out DIR]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
steps=6 out=$root/runs/bench-pipeline
while [[ $# -gt 0 ]]; do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "bench-pipeline.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
job=bench-pipeline.sh
source "$root/jobs/lib.sh"
job_local_calm
mkdir -p "$out"
[[ -d "$out/mB" ]] || "$calm" train --out "$out/mB" --dim 512 --layers 8 --heads 8 --ffn 1408 --steps 0 --seq-len 256 \
  "$root/jobs/data/quickstart.txt" 2>/dev/null
[[ -d "$out/mA" ]] || "$calm" train --out "$out/mA" --dim 256 --layers 8 --heads 4 --ffn 704 --steps 0 --seq-len 256 \
  "$root/jobs/data/quickstart.txt" 2>/dev/null
common=(--anchor "$out/mB" --augment "$out/mA" --connections 3:3,7:7 --batch 8 --seq-len 256 --steps "$steps"
        --warmup 1 --log-every 1 "$root/jobs/data/quickstart.txt")
tps() { # mean tokens/s over the steps after the first (JSONL log)
  /usr/bin/python3 -c 'import json,sys; r=[json.loads(l)["tokens_per_s"] for l in open(sys.argv[1])][1:]; print(f"{sum(r)/len(r):.0f}")' "$1"
}
echo "== single process"
for t in 1 2; do
  "$calm" compose --out "$out/single$t" --log "$out/single$t.jsonl" --threads "$t" "${common[@]}" 2>/dev/null
  echo "single process, $t thread(s): $(tps "$out/single$t.jsonl") tokens/s"
done
echo "== distributed path, S=1 A=1 (2 processes, 1 thread each)"
for M in 1 2 4 8; do
  CALM_THREADS=1 mpirun -np 2 "$calm" compose --out "$out/s1m$M" --log "$out/s1m$M.jsonl" --anchor-stages 1 \
    --augment-ranks 1 --micro-batches "$M" "${common[@]}" 2>"$out/s1m$M.err"
  echo "S=1 A=1 M=$M: $(tps "$out/s1m$M.jsonl") tokens/s"
  sed -n '/^pipeline over/,$p' "$out/s1m$M.err"
done
echo "== pipeline S=2 A=1 (3 processes on this machine's cores: idle times, not speed)"
for M in 1 4 8; do
  CALM_THREADS=1 mpirun -np 3 "$calm" compose --out "$out/s2m$M" --log "$out/s2m$M.jsonl" --anchor-stages 2 \
    --augment-ranks 1 --micro-batches "$M" "${common[@]}" 2>"$out/s2m$M.err"
  echo "S=2 A=1 M=$M: $(tps "$out/s2m$M.jsonl") tokens/s"
  sed -n '/^pipeline over/,$p' "$out/s2m$M.err"
done
