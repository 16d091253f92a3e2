#!/usr/bin/env bash
# The distributed composition (anchor pipeline + augment ranks + data
# parallel) equals the single-process composition: for every layout
# (S anchor stages, A augment ranks, R replicas) and M micro-batches, K steps
# from the same seed and data end with the same losses and composition
# parameters, relative difference <= 1e-5 (per tensor: max |a - b| / max |b|).
# Not bit-identical: the single process sums each weight gradient over the
# whole batch in one GEMM, the pipeline over micro-batches and replicas.
# Usage: test_pipeline.sh CALM_BINARY
set -euo pipefail
calm=$1
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export CALM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
q() { "$@" 2>"$tmp/log" || { cat "$tmp/log"; return 1; }; }
# Random frozen models (widths differ so the projection matters), a store.
q "$calm" train --out "$tmp/mA" --dim 32 --layers 4 --heads 4 --steps 0 --seed 5 --seq-len 32 "$here/data/memorise.txt"
q "$calm" train --out "$tmp/mB" --dim 48 --layers 4 --heads 4 --steps 0 --seed 6 --seq-len 32 "$here/data/memorise.txt"
q "$calm" shard build --quiet --out "$tmp/store" --seq-len 32 "$here/../jobs/data/quickstart.txt"
# Connections 1:1 and 3:2: the anchor backward stops at block 2, so with 4
# stages stage 0 has no backward and stage 3 no connection.
# --adam-eps 1e-4: see test_dp_train.sh (near-zero gradients and Adam).
common=(--anchor "$tmp/mB" --augment "$tmp/mA" --data "$tmp/store" --seq-len 32 --batch 16 --steps 4 --warmup 1
        --log-every 1 --connections 1:1,3:2 --adam-eps 1e-4 --seed 7)
q "$calm" compose --out "$tmp/single" --log "$tmp/single.jsonl" "${common[@]}"

status=0
for layout in "1 1 1" "2 1 1" "3 1 1" "2 2 1" "2 1 2" "4 2 1"; do
  read -r S A R <<<"$layout"
  np=$(( (S + A) * R ))
  for M in 1 4 8; do
    name="S${S}A${A}R${R}M${M}"
    if ! mpirun -np "$np" "$calm" compose --out "$tmp/$name" --log "$tmp/$name.jsonl" "${common[@]}" \
         --anchor-stages "$S" --augment-ranks "$A" --micro-batches "$M" 2>"$tmp/$name.err"; then
      echo "FAIL $name: run failed"; tail -5 "$tmp/$name.err"; status=1; continue
    fi
    if ! /usr/bin/python3 - "$tmp/single.jsonl" "$tmp/$name.jsonl" "$name" <<'PY'
import json, sys
a = [json.loads(l)["loss"] for l in open(sys.argv[1])]
b = [json.loads(l)["loss"] for l in open(sys.argv[2])]
assert len(a) == len(b) == 4, (len(a), len(b))
worst = max(abs(x - y) / abs(x) for x, y in zip(a, b))
print(f"{sys.argv[3]}: losses worst relative difference {worst:.1e}", end="; ")
sys.exit(0 if worst <= 1e-5 else 1)
PY
    then echo; echo "FAIL $name: losses differ"; status=1; fi
    if ! /usr/bin/python3 "$here/tools/st_diff.py" "$tmp/single/calm.safetensors" "$tmp/$name/calm.safetensors" \
         --rtol 0 --atol-frac 1e-5; then echo "FAIL $name: parameters differ"; status=1; fi
  done
done

# Ranks ordered by role (Slurm heterogeneous jobs: all anchors, then all augment ranks).
name=S2A1R2M4role
if mpirun -np 6 "$calm" compose --out "$tmp/$name" "${common[@]}" --anchor-stages 2 --augment-ranks 1 \
     --micro-batches 4 --rank-order role 2>"$tmp/$name.err"; then
  grep -q "ranks ordered by role" "$tmp/$name.err" || { echo "FAIL $name: layout table lacks the order"; status=1; }
  /usr/bin/python3 "$here/tools/st_diff.py" "$tmp/single/calm.safetensors" "$tmp/$name/calm.safetensors" \
    --rtol 0 --atol-frac 1e-5 || { echo "FAIL $name: parameters differ"; status=1; }
else
  echo "FAIL $name: run failed"; tail -5 "$tmp/$name.err"; status=1
fi

# The schedule can be printed without running anything.
"$calm" compose --out "$tmp/x" "${common[@]}" --anchor-stages 2 --augment-ranks 1 --micro-batches 4 --print-schedule \
  >"$tmp/grid" 2>&1
grep -q "^stage 1" "$tmp/grid" && grep -q "bubble" "$tmp/grid" || { echo "FAIL: --print-schedule"; cat "$tmp/grid"; status=1; }

# Bad layouts are refused before any work, naming what to change.
bad() { # bad NP "expected message" ARGS...
  local np=$1 want=$2; shift 2
  if mpirun -np "$np" "$calm" compose --out "$tmp/bad" "${common[@]}" "$@" >"$tmp/bad.out" 2>&1; then
    echo "FAIL: accepted $* on $np ranks"; status=1
  elif ! grep -q -- "$want" "$tmp/bad.out"; then
    echo "FAIL: no clear message for $* on $np ranks:"; tail -5 "$tmp/bad.out"; status=1
  fi
}
bad 4 "not a multiple" --anchor-stages 2 --augment-ranks 1
bad 6 "more than the anchor's 4 layers" --anchor-stages 5 --augment-ranks 1
bad 3 "not divisible" --anchor-stages 2 --augment-ranks 1 --micro-batches 3
bad 3 "expect-ranks 4" --anchor-stages 2 --augment-ranks 1 --expect-ranks 4
[[ -d "$tmp/bad" ]] && { echo "FAIL: a refused run wrote $tmp/bad"; status=1; }
[[ $status -eq 0 ]] && echo "every layout equals the single-process composition"
exit $status
