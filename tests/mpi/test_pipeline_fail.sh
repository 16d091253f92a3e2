#!/usr/bin/env bash
# A failing rank ends the whole distributed job promptly, with its message:
#   1. a rank killed (SIGKILL) in the middle of training;
#   2. a bad file that only the augment ranks read (the anchor ranks would
#      otherwise wait for projections forever).
# Usage: test_pipeline_fail.sh CALM_BINARY
set -uo pipefail
calm=$1
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
export CALM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
"$calm" train --out "$tmp/mA" --dim 32 --layers 4 --heads 4 --steps 0 --seq-len 32 "$here/data/memorise.txt" 2>/dev/null
"$calm" train --out "$tmp/mB" --dim 48 --layers 4 --heads 4 --steps 0 --seq-len 32 "$here/data/memorise.txt" 2>/dev/null
common=(--anchor "$tmp/mB" --seq-len 32 --batch 8 --connections 1:1,3:2 --anchor-stages 2 --augment-ranks 1
        --micro-batches 4 --log-every 1000 "$here/data/memorise.txt")
status=0

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
if [[ -z "$victim" ]]; then echo "FAIL: no rank processes found under mpirun"; cat "$tmp/kill.out"; exit 1; fi
ms() { echo $(( $(date +%s%N) / 1000000 )); }
t0=$(ms)
kill -9 "$victim"
for _ in $(seq 300); do kill -0 "$mpid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$mpid" 2>/dev/null; then
  echo "FAIL: job still running 30 s after a rank was killed"; status=1; kill -9 "$mpid"
else
  wait "$mpid"; rc=$?
  dt=$(( $(ms) - t0 ))
  echo "killed rank $victim: job exited with status $rc after $dt ms"
  grep -q "signal 9" "$tmp/kill.out" || { echo "FAIL: the launcher did not report the killed rank:"; tail -5 "$tmp/kill.out"; status=1; }
  [[ $rc -ne 0 ]] || { echo "FAIL: exit status 0 after a rank was killed"; status=1; }
  (( dt < 10000 )) || { echo "FAIL: took $dt ms to exit (limit 10 s)"; status=1; }
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
  echo "FAIL: bad augment file: exit status $rc (124: hung)"; status=1
elif ! grep -q "mA_bad/model.safetensors" "$tmp/bad.out"; then
  echo "FAIL: the message does not name the bad file:"; tail -5 "$tmp/bad.out"; status=1
else
  echo "bad augment file: job exited with status $rc after ${dt} s, naming the file"
fi
[[ -e "$tmp/bad/calm.safetensors" ]] && { echo "FAIL: a failed job wrote a composition"; status=1; }
exit $status
