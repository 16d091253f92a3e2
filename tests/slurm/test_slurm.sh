#!/usr/bin/env bash
# A real Slurm: a one-node cluster on this machine (tests/slurm/cluster.sh)
# runs jobs/compose.sbatch with a tiny composition whose time limit (1 min)
# is shorter than the run. The job must be signalled (--signal=B:USR1@40),
# checkpoint, requeue itself, resume, and finish with the same parameters
# and logged losses, bit for bit, as an uninterrupted run of the same layout.
# Slurm holds a requeued job for two minutes (BeginTime); the test releases
# it after 10 s (`scontrol update JobId=.. StartTime=now`) to keep CI short.
# (Released at once, the new run's step can collide with the old one's
# clean-up and fail to launch.)
# Needs root (it starts munged, slurmctld and slurmd): skipped otherwise.
# Usage: test_slurm.sh CALM_BINARY
source "$(dirname "$0")/../lib.sh"
test_args 1 "$@"
set +e # failures are counted (fail), and scontrol fails while the job changes state
if [[ $(id -u) -ne 0 ]]; then echo "SKIP: starting a Slurm cluster needs root"; exit 77; fi
make_tmp
cluster=$tmp/cluster
cleanup() { # called by lib.sh at exit, before $tmp is removed
  [[ -n ${job:-} ]] && scancel "$job" 2>/dev/null
  "$tests/slurm/cluster.sh" stop "$cluster" >/dev/null 2>&1
}
"$tests/slurm/cluster.sh" start "$cluster" || exit 1
export SLURM_CONF=$cluster/slurm.conf

compose_inputs "$tmp"
# The job's parameters; the uninterrupted reference runs the same layout under mpirun.
params=(ANCHOR="$tmp/mB" AUGMENT="$tmp/mA" DATA="$tmp/store" OUT="$tmp/job" STEPS=1500 BATCH=16 SEQ_LEN=32 LR=3e-3
        CONNECTIONS=1:1,3:2 ANCHOR_STAGES=2 AUGMENT_RANKS=1 MICRO_BATCHES=4 CHECKPOINT_EVERY=50)
mpirun -np 3 "$calm" compose --anchor "$tmp/mB" --augment "$tmp/mA" --data "$tmp/store" --out "$tmp/ref" \
  --log "$tmp/ref.jsonl" --steps 1500 --batch 16 --seq-len 32 --lr 3e-3 --connections 1:1,3:2 --anchor-stages 2 \
  --augment-ranks 1 --micro-batches 4 2>"$tmp/ref.err" || { echo "FAIL: reference run"; tail "$tmp/ref.err"; exit 1; }

cd "$root"
job=$(env "${params[@]}" CALM_BIN="$calm" CALM_ROOT="$root" sbatch --parsable --time=1 --signal=B:USR1@40 \
      --output="$tmp/job.out" jobs/compose.sbatch) || { echo "FAIL: sbatch"; exit 1; }
echo "submitted job $job"
state="" pending_since=0
for t in $(seq 900); do # up to 15 minutes
  info=$(scontrol show job "$job" 2>/dev/null)
  state=$(sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' <<<"$info")
  case "$state" in
    COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED) break ;;
    PENDING) # release a requeued job once its previous run has been cleaned up (10 s)
      if grep -q "Reason=BeginTime" <<<"$info"; then
        [[ $pending_since -eq 0 ]] && pending_since=$t
        (( t - pending_since >= 10 )) && scontrol update JobId="$job" StartTime=now 2>/dev/null
      fi ;;
    *) pending_since=0 ;;
  esac
  sleep 1
done
restarts=$(scontrol show job "$job" | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p')
echo "job $job: $state after ${restarts:-?} requeue(s)"
[[ $state == COMPLETED ]] || fail "job ended $state"
[[ ${restarts:-0} -ge 1 ]] || fail "the job was never requeued"
grep -q "signal: asking calm to checkpoint" "$tmp/job.out" || fail "the batch shell was never signalled"
grep -q "stopped by signal 10 after step" "$tmp/job.out" || fail "calm did not checkpoint on the signal"
grep -q "resuming at step" "$tmp/job.out" || fail "the requeued job did not resume"
grep "stopped by signal\|resuming at step" "$tmp/job.out"
same_run ref job # the job against the uninterrupted run
[[ $failures -eq 0 ]] || { echo "--- job output"; grep -v "^step" "$tmp/job.out" | tail -40; }
finish "the Slurm job was signalled, requeued, resumed and matches the uninterrupted run"
