#!/usr/bin/env bash
# Data-parallel `calm train` under mpirun equals single-process training with
# the same global batch: same losses (relative 1e-5) and final weights within
# fp32 summation-order tolerance. Usage: test_dp_train.sh CALM_BINARY
source "$(dirname "$0")/../lib.sh"
test_args 1 "$@"
make_tmp
# --adam-eps 1e-4: Adam's first steps move every weight by about +-lr whatever
# its gradient's size, so a gradient that is zero up to rounding would turn
# summation-order noise into lr-sized differences; eps keeps those weights still.
args=(--dim 64 --layers 2 --heads 4 --kv-heads 2 --seq-len 32 --batch 8 --steps 8 --warmup 2 --threads 1 --adam-eps 1e-4
      --log-every 1 --seed 3 "$tests/data/memorise.txt")
logged "$tmp/single.out" "$calm" train --out "$tmp/single" --log "$tmp/single.jsonl" "${args[@]}"
for np in 2 4; do
  logged "$tmp/dp$np.out" mpirun -np "$np" "$calm" train --out "$tmp/dp$np" --log "$tmp/dp$np.jsonl" "${args[@]}"
  # Weights and losses differ only by float summation order in the reduction.
  losses_close "$np ranks" "$tmp/single.jsonl" "$tmp/dp$np.jsonl" 8 || fail "losses differ with $np ranks"
  /usr/bin/python3 "$tests/tools/st_diff.py" "$tmp/single/model.safetensors" "$tmp/dp$np/model.safetensors" \
    --rtol 1e-5 --atol-frac 1e-6 || fail "weights differ with $np ranks"
done
# A world size that disagrees with Slurm's task count is refused.
if SLURM_STEP_NUM_TASKS=3 mpirun -np 2 "$calm" train --out "$tmp/bad" "${args[@]}" 2>"$tmp/err"; then
  fail "world of 2 accepted although Slurm started 3 tasks"
elif ! grep -q "Slurm started 3 tasks" "$tmp/err"; then
  fail "no clear message for a mis-launched job"; cat "$tmp/err"
fi
finish "data-parallel train equals single process"
