#!/usr/bin/env bash
# Checkpoints and resume (calm compose; single process and an MPI layout):
#   1. a run stopped by SIGUSR1 / SIGTERM (exit 75) or SIGINT (exit 130) and
#      resumed with --resume auto ends bit for bit like the uninterrupted run
#      (final parameters and every logged loss), at several stopping points;
#   2. the same for the pipeline (S=2, A=1), and a resume onto another layout;
#   3. crash safety: SIGKILL at random moments (20 single-process trials and
#      6 distributed ones, with a checkpoint every step so that many kills land
#      during a write); every time --resume auto finds a complete checkpoint
#      and the run finally ends bit for bit like the uninterrupted one;
#   4. a corrupt newest checkpoint (flipped byte, truncated part) is detected
#      and an older complete one is used; a missing directory is created.
# Usage: test_resume.sh CALM_BINARY
source "$(dirname "$0")/../lib.sh"
test_args 1 "$@"
set +e # failures are counted (fail), and runs are stopped on purpose
make_tmp
compose_inputs "$tmp"
STEPS=80
common=(--anchor "$tmp/mB" --augment "$tmp/mA" --data "$tmp/store" --seq-len 32 --batch 16 --steps $STEPS --warmup 5
        --log-every 1 --connections 1:1,3:2 --seed 7)
pipe=(--anchor-stages 2 --augment-ranks 1 --micro-batches 4)
run1() { "$calm" compose "${common[@]}" "$@"; }
runp() { mpirun -np 3 "$calm" compose "${common[@]}" "${pipe[@]}" "$@"; }
# started LOG [LINES]: wait until the run has logged LINES steps (training runs);
# up to 2 minutes: a sanitized build on two shared cores can take 10 s to start
started() { for _ in $(seq 2400); do [[ $(cat "$1" 2>/dev/null | wc -l) -ge ${2:-1} ]] && return 0; sleep 0.05; done; }
# until_done NAME RUNNER ARGS...: --resume auto until the run exits 0 (at most 40 starts)
until_done() {
  local name=$1 runner=$2; shift 2
  for _ in $(seq 40); do
    $runner --out "$tmp/$name" --log "$tmp/$name.jsonl" --resume auto "$@" 2>>"$tmp/$name.err" && return 0
  done
  fail "$name: did not finish"; tail -5 "$tmp/$name.err"; return 1
}

run1 --out "$tmp/ref" --log "$tmp/ref.jsonl" 2>/dev/null || fail "reference run"
runp --out "$tmp/refp" --log "$tmp/refp.jsonl" 2>/dev/null || fail "reference pipeline run"

# 1. Signals, single process, at several points.
n=0
for sig in USR1 TERM INT USR1; do
  n=$((n + 1)); name=sig$n
  "$calm" compose "${common[@]}" --out "$tmp/$name" --log "$tmp/$name.jsonl" --checkpoint-every 25 \
    2>"$tmp/$name.err" &
  pid=$!
  started "$tmp/$name.jsonl" $((n * 15 - 5))
  kill -"$sig" $pid; wait $pid; rc=$?
  want=75; [[ $sig == INT ]] && want=130
  [[ $rc -eq $want || $rc -eq 0 ]] || fail "$name: SIG$sig gave exit $rc, want $want"
  stopped=$(sed -n 's/.*stopped by signal [0-9]* after step \([0-9]*\).*/\1/p' "$tmp/$name.err")
  echo "SIG$sig: exit $rc, stopped after step ${stopped:-(finished first)}"
  until_done "$name" run1 --checkpoint-every 25 && same_run ref "$name"
done

# 2. Pipeline: USR1 to mpirun (it forwards USR1 to every rank), resume on the
#    same layout (bit for bit) and on another one (equal to 1e-5).
mpirun -np 3 "$calm" compose "${common[@]}" "${pipe[@]}" --out "$tmp/p1" --log "$tmp/p1.jsonl" 2>"$tmp/p1.err" &
# USR1 again every half second until mpirun exits: twice in four loaded full-suite
# runs (2026-12-06) the one USR1 sent to mpirun never reached the ranks, which
# then finished all 80 steps; a repeat is a no-op for a run already stopping.
pid=$!; started "$tmp/p1.jsonl" 30
for _ in $(seq 240); do kill -USR1 $pid 2>/dev/null || break; sleep 0.5; done
wait $pid; rc=$?
echo "pipeline SIGUSR1: exit $rc, stopped after step $(sed -n 's/.*stopped by signal [0-9]* after step \([0-9]*\).*/\1/p' "$tmp/p1.err")"
[[ $rc -eq 75 ]] || fail "pipeline: SIGUSR1 gave exit $rc, want 75"
cp -r "$tmp/p1" "$tmp/p2"; cp "$tmp/p1.jsonl" "$tmp/p2.jsonl"
until_done p1 runp && same_run refp p1
until_done p2 run1 # single process from the pipeline's checkpoint
grep -q "resuming at step" "$tmp/p2.err" || fail "p2 did not resume"
/usr/bin/python3 "$tests/tools/st_diff.py" "$tmp/refp/calm.safetensors" "$tmp/p2/calm.safetensors" --rtol 0 \
  --atol-frac 1e-5 || fail "resume onto another layout differs"

# 3. SIGKILL at random moments; the run is its own process group (mpirun and ranks die together).
RANDOM=42
kill_trials() { # kill_trials NAME LAUNCHER TRIALS (LAUNCHER: "" or "mpirun -np 3")
  local name=$1 launch=$2 trials=$3 during=0 extra=()
  [[ -n $launch ]] && extra=("${pipe[@]}")
  for t in $(seq "$trials"); do
    # setsid: the run leads its own process group, so mpirun and its ranks die together
    # every other trial widens the window between the parts and DONE
    CALM_TEST_CKPT_DELAY_MS=$(( t % 2 * 40 )) setsid $launch "$calm" compose "${common[@]}" "${extra[@]}" --out "$tmp/$name" --log "$tmp/$name.jsonl" \
      --steps $CSTEPS --resume auto --checkpoint-every 1 --keep 2 >>"$tmp/$name.err" 2>&1 &
    local pid=$!
    started "$tmp/$name.jsonl" $(( $(cat "$tmp/$name.jsonl" 2>/dev/null | wc -l) + 1 ))
    sleep "0.$((RANDOM % 3))$((RANDOM % 10))"
    kill -9 -- -$pid 2>/dev/null; wait $pid 2>/dev/null
    # a kill during a write leaves a temp file or a step directory without DONE
    local half=$(ls -d "$tmp/$name/checkpoints"/*/*.tmp.* 2>/dev/null | wc -l)
    for d in "$tmp/$name/checkpoints"/step-*; do [[ -e $d/DONE ]] || half=$((half + 1)); done
    [[ $half -gt 0 ]] && during=$((during + 1))
  done
  echo "$name: $trials SIGKILLs, $during of them left a checkpoint half-written"
  local runner=run1; [[ -n $launch ]] && runner=runp
  until_done "$name" $runner --steps $CSTEPS --checkpoint-every 1 --keep 2
}
CSTEPS=300
run1 --out "$tmp/refc" --log "$tmp/refc.jsonl" --steps $CSTEPS 2>/dev/null || fail "reference run"
runp --out "$tmp/refcp" --log "$tmp/refcp.jsonl" --steps $CSTEPS 2>/dev/null || fail "reference pipeline run"
kill_trials crash1 "" 20 && same_run refc crash1
kill_trials crashp "mpirun -np 3" 6 && same_run refcp crashp

# 4. Corrupt checkpoints: the newest is skipped, an older complete one used.
run1 --out "$tmp/c" --log "$tmp/c.jsonl" --checkpoint-every 20 --keep 3 2>/dev/null
part=$tmp/c/checkpoints/step-$(printf %08d $STEPS)/part-00000.safetensors
size=$(stat -c %s "$part")
printf '\x55' | dd of="$part" bs=1 seek=$((size - 100)) conv=notrunc status=none # flip a byte in the data
run1 --out "$tmp/c" --log "$tmp/c.jsonl" --checkpoint-every 20 --keep 3 --resume auto 2>"$tmp/c.err" ||
  fail "resume past a corrupt checkpoint"
grep -q "checksum mismatch" "$tmp/c.err" && grep -q "resuming at step 60" "$tmp/c.err" ||
  { fail "flipped byte not detected or wrong fallback"; tail -5 "$tmp/c.err"; }
same_run ref c
truncate -s 500 "$tmp/c/checkpoints/step-$(printf %08d $STEPS)/part-00000.safetensors"
run1 --out "$tmp/c" --log "$tmp/c.jsonl" --checkpoint-every 20 --keep 3 --resume auto 2>"$tmp/c.err" ||
  fail "resume past a truncated checkpoint"
grep -q "resuming at step 60" "$tmp/c.err" || { fail "truncated part not skipped"; tail -5 "$tmp/c.err"; }
same_run ref c
# A missing checkpoint directory is created; nothing there means a fresh start.
run1 --out "$tmp/m" --log "$tmp/m.jsonl" --checkpoint-dir "$tmp/new/deep/ck" --checkpoint-every 40 --resume auto \
  2>"$tmp/m.err" || fail "missing checkpoint directory"
grep -q "no checkpoint in .*new/deep/ck: starting at step 0" "$tmp/m.err" && [[ -e $tmp/new/deep/ck/step-00000080/DONE ]] ||
  fail "missing checkpoint directory not created"
# Another wiring is refused, naming the difference.
run1 --out "$tmp/c" --resume auto --connections 3:3 2>"$tmp/w.err" && fail "resume with other connections accepted"
grep -q "connections: checkpoint \"1:1,3:2\", this run \"3:3\"" "$tmp/w.err" || { fail "no clear message"; cat "$tmp/w.err"; }
finish "every resume equals the uninterrupted run"
