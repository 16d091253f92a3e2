#!/usr/bin/env bash
# Data-parallel `calm train` under mpirun equals single-process training with
# the same global batch: same losses (relative 1e-5) and final weights within
# fp32 summation-order tolerance. Usage: test_dp_train.sh CALM_BINARY
set -euo pipefail
calm=$1
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# --adam-eps 1e-4: Adam's first steps move every weight by about +-lr whatever
# its gradient's size, so a gradient that is zero up to rounding would turn
# summation-order noise into lr-sized differences; eps keeps those weights still.
args=(--dim 64 --layers 2 --heads 4 --kv-heads 2 --seq-len 32 --batch 8 --steps 8 --warmup 2 --threads 1 --adam-eps 1e-4
      --log-every 1 --seed 3 "$here/data/memorise.txt")
"$calm" train --out "$tmp/single" --log "$tmp/single.jsonl" "${args[@]}" 2>/dev/null
status=0
for np in 2 4; do
  mpirun -np "$np" "$calm" train --out "$tmp/dp$np" --log "$tmp/dp$np.jsonl" "${args[@]}" 2>/dev/null
  # Weights and losses differ only by float summation order in the reduction.
  if ! /usr/bin/python3 - "$tmp/single.jsonl" "$tmp/dp$np.jsonl" <<'PY'
import json, sys
a = [json.loads(l)["loss"] for l in open(sys.argv[1])]
b = [json.loads(l)["loss"] for l in open(sys.argv[2])]
assert len(a) == len(b) == 8, (len(a), len(b))
worst = max(abs(x - y) / abs(x) for x, y in zip(a, b))
print(f"losses: worst relative difference {worst:.2e}")
sys.exit(0 if worst <= 1e-5 else 1)
PY
  then echo "FAIL: losses differ with $np ranks"; status=1; fi
  if ! /usr/bin/python3 "$here/tools/st_diff.py" "$tmp/single/model.safetensors" "$tmp/dp$np/model.safetensors" \
       --rtol 1e-5 --atol-frac 1e-6; then echo "FAIL: weights differ with $np ranks"; status=1; fi
done
# A world size that disagrees with Slurm's task count is refused.
if SLURM_STEP_NUM_TASKS=3 mpirun -np 2 "$calm" train --out "$tmp/bad" "${args[@]}" 2>"$tmp/err"; then
  echo "FAIL: world of 2 accepted although Slurm started 3 tasks"; status=1
elif ! grep -q "Slurm started 3 tasks" "$tmp/err"; then
  echo "FAIL: no clear message for a mis-launched job"; cat "$tmp/err"; status=1
fi
[[ $status -eq 0 ]] && echo "data-parallel train equals single process"
exit $status
