#!/usr/bin/env bash
# A failing rank ends the whole distributed job promptly, with its message:
#   1. a rank killed (SIGKILL) in the middle of training;
#   2. a bad file that only the augment ranks read (the anchor ranks would
#      otherwise wait for projections forever).
# Usage: test_pipeline_fail.sh CALM_BINARY
source "$(dirname "$0")/../lib.sh"
test_args 1 "$@"
set +e # failures are counted (fail), and the jobs here are meant to fail
make_tmp
compose_inputs "$tmp"
common=(--anchor "$tmp/mB" --seq-len 32 --batch 8 --connections 1:1,3:2 --anchor-stages 2 --augment-ranks 1
        --micro-batches 4 --log-every 1000 "$tests/data/memorise.txt")

# 1. SIGKILL one rank of a running job.
mpirun -np 3 "$calm" compose --augment "$tmp/mA" --out "$tmp/run" --steps 100000000 "${common[@]}" \
  >"$tmp/kill.out" 2>&1 &
mpid=$!
for _ in $(seq 100); do # wait until the job trains (ranks started, models loaded)
  grep -q "pipeline:" "$tmp/kill.out" && break
  sleep 0.1
done
sleep 1
victim=$(pgrep -P "$mpid" -f "calm compose" | tail -1)
[[ -n "$victim" ]] || { cat "$tmp/kill.out"; die "no rank processes found under mpirun"; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }
t0=$(ms)
kill -9 "$victim"
for _ in $(seq 300); do kill -0 "$mpid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$mpid" 2>/dev/null; then
  fail "job still running 30 s after a rank was killed"; kill -9 "$mpid"
else
  wait "$mpid"; rc=$?
  dt=$(( $(ms) - t0 ))
  echo "killed rank $victim: job exited with status $rc after $dt ms"
  grep -q "signal 9" "$tmp/kill.out" || { fail "the launcher did not report the killed rank:"; tail -5 "$tmp/kill.out"; }
  [[ $rc -ne 0 ]] || fail "exit status 0 after a rank was killed"
  (( dt < 10000 )) || fail "took $dt ms to exit (limit 10 s)"
fi

# 2. A truncated augmenting model: only the augment rank fails to load it.
cp -r "$tmp/mA" "$tmp/mA_bad"
truncate -s 1000 "$tmp/mA_bad/model.safetensors"
t0=$(date +%s)
timeout 60 mpirun -np 3 "$calm" compose --augment "$tmp/mA_bad" --out "$tmp/bad" --steps 10 "${common[@]}" \
  >"$tmp/bad.out" 2>&1
rc=$?
dt=$(( $(date +%s) - t0 ))
if [[ $rc -eq 0 || $rc -eq 124 ]]; then
  fail "bad augment file: exit status $rc (124: hung)"
elif ! grep -q "mA_bad/model.safetensors" "$tmp/bad.out"; then
  fail "the message does not name the bad file:"; tail -5 "$tmp/bad.out"
else
  echo "bad augment file: job exited with status $rc after ${dt} s, naming the file"
fi
[[ -e "$tmp/bad/calm.safetensors" ]] && fail "a failed job wrote a composition"
finish
