#!/usr/bin/env bash
# The distributed composition (anchor pipeline + augment ranks + data
# parallel) equals the single-process composition: for every layout
# (S anchor stages, A augment ranks, R replicas) and M micro-batches, K steps
# from the same seed and data end with the same losses and composition
# parameters, relative difference <= 1e-5 (per tensor: max |a - b| / max |b|).
# Not bit-identical: the single process sums each weight gradient over the
# whole batch in one GEMM, the pipeline over micro-batches and replicas.
# Usage: test_pipeline.sh CALM_BINARY
source "$(dirname "$0")/../lib.sh"
test_args 1 "$@"
make_tmp
compose_inputs "$tmp"
# Connections 1:1 and 3:2: the anchor backward stops at block 2, so with 4
# stages stage 0 has no backward and stage 3 no connection.
# --adam-eps 1e-4: see test_dp_train.sh (near-zero gradients and Adam).
common=(--anchor "$tmp/mB" --augment "$tmp/mA" --data "$tmp/store" --seq-len 32 --batch 16 --steps 4 --warmup 1
        --log-every 1 --connections 1:1,3:2 --adam-eps 1e-4 --seed 7)
logged "$tmp/single.out" "$calm" compose --out "$tmp/single" --log "$tmp/single.jsonl" "${common[@]}"

for layout in "1 1 1" "2 1 1" "3 1 1" "2 2 1" "2 1 2" "4 2 1"; do
  read -r S A R <<<"$layout"
  np=$(( (S + A) * R ))
  for M in 1 4 8; do
    name="S${S}A${A}R${R}M${M}"
    if ! mpirun -np "$np" "$calm" compose --out "$tmp/$name" --log "$tmp/$name.jsonl" "${common[@]}" \
         --anchor-stages "$S" --augment-ranks "$A" --micro-batches "$M" 2>"$tmp/$name.err"; then
      fail "$name: run failed"; tail -5 "$tmp/$name.err"; continue
    fi
    losses_close "$name" "$tmp/single.jsonl" "$tmp/$name.jsonl" 4 || fail "$name: losses differ"
    /usr/bin/python3 "$tests/tools/st_diff.py" "$tmp/single/calm.safetensors" "$tmp/$name/calm.safetensors" \
      --rtol 0 --atol-frac 1e-5 || fail "$name: parameters differ"
  done
done

# Ranks ordered by role (Slurm heterogeneous jobs: all anchors, then all augment ranks).
name=S2A1R2M4role
if mpirun -np 6 "$calm" compose --out "$tmp/$name" "${common[@]}" --anchor-stages 2 --augment-ranks 1 \
     --micro-batches 4 --rank-order role 2>"$tmp/$name.err"; then
  grep -q "ranks ordered by role" "$tmp/$name.err" || fail "$name: layout table lacks the order"
  /usr/bin/python3 "$tests/tools/st_diff.py" "$tmp/single/calm.safetensors" "$tmp/$name/calm.safetensors" \
    --rtol 0 --atol-frac 1e-5 || fail "$name: parameters differ"
else
  fail "$name: run failed"; tail -5 "$tmp/$name.err"
fi

# The schedule can be printed without running anything.
"$calm" compose --out "$tmp/x" "${common[@]}" --anchor-stages 2 --augment-ranks 1 --micro-batches 4 --print-schedule \
  >"$tmp/grid" 2>&1
grep -q "^stage 1" "$tmp/grid" && grep -q "bubble" "$tmp/grid" || { fail "--print-schedule"; cat "$tmp/grid"; }

# Bad layouts are refused before any work, naming what to change.
bad() { # bad NP "expected message" ARGS...
  local np=$1 want=$2; shift 2
  if mpirun -np "$np" "$calm" compose --out "$tmp/bad" "${common[@]}" "$@" >"$tmp/bad.out" 2>&1; then
    fail "accepted $* on $np ranks"
  elif ! grep -q -- "$want" "$tmp/bad.out"; then
    fail "no clear message for $* on $np ranks:"; tail -5 "$tmp/bad.out"
  fi
}
bad 4 "not a multiple" --anchor-stages 2 --augment-ranks 1
bad 6 "more than the anchor's 4 layers" --anchor-stages 5 --augment-ranks 1
bad 3 "not divisible" --anchor-stages 2 --augment-ranks 1 --micro-batches 3
bad 3 "expect-ranks 4" --anchor-stages 2 --augment-ranks 1 --expect-ranks 4
[[ -d "$tmp/bad" ]] && fail "a refused run wrote $tmp/bad"
finish "every layout equals the single-process composition"
