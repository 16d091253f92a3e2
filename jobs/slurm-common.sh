# jobs/slurm-common.sh: sourced by the jobs/*.sbatch scripts.
#
# calm_run ARGS...  runs `calm ARGS...` on the job's tasks and makes the job
# survive preemption and time limits:
#   - launch: srun --mpi=pmix (CALM_LAUNCH=srun, the default) or, where srun
#     has no PMIx plugin, mpirun inside the allocation (CALM_LAUNCH=mpirun);
#     single-process commands run directly (CALM_LAUNCH=none);
#   - #SBATCH --signal=B:USR1@LEAD signals this batch shell LEAD seconds
#     before the end; the trap forwards USR1 to the job step (srun and mpirun
#     pass it on to every task), calm checkpoints after the current step and
#     exits 75;
#   - on exit 75 (or a failure after a signal) the job requeues itself with
#     `scontrol requeue`; the requeued script runs again from the top and
#     calm --resume auto continues from the newest complete checkpoint.
# Environment: CALM_BIN (default: build/calm of the checkout); CALM_RESULT:
# a file the finished run must have written (a step that failed to launch
# can end with status 0 without running calm at all).

CALM_ROOT=${CALM_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}
CALM_BIN=${CALM_BIN:-$CALM_ROOT/build/calm}
CALM_EXIT_REQUEUE=75

# A signal that arrives before calm runs is remembered and passed on as soon
# as it starts (bash's default action would end the batch shell).
calm_signalled=0
trap 'calm_signalled=1' USR1 TERM

calm_log_job() { echo "[calm job ${SLURM_JOB_ID:-?} restart ${SLURM_RESTART_COUNT:-0} $(date +%H:%M:%S)] $*"; }

# calm_watch PID [TARGET]: wait for the background job PID; a USR1/TERM to
# this shell is forwarded as USR1 to TARGET (default PID; "-PGID" for a
# process group). On exit 75, or a failure after a signal, requeue the job
# and exit; otherwise set calm_rc to the job's status.
calm_watch() {
  local pid=$1 target=${2:-$1}
  # shellcheck disable=SC2064
  trap "calm_signalled=1; calm_log_job 'signal: asking calm to checkpoint and stop'; kill -USR1 -- $target 2>/dev/null" USR1 TERM
  [[ $calm_signalled -eq 1 ]] && kill -USR1 -- "$target" 2>/dev/null
  while :; do # a trapped signal interrupts wait; wait again until the job ends
    wait "$pid"
    kill -0 "$pid" 2>/dev/null || break
  done
  wait "$pid"
  calm_rc=$?
  trap - USR1 TERM
  if [[ $calm_rc -eq $CALM_EXIT_REQUEUE || ( $calm_signalled -eq 1 && $calm_rc -ne 0 ) ]]; then
    calm_log_job "calm stopped (exit $calm_rc) with its checkpoint written: requeueing"
    scontrol requeue "$SLURM_JOB_ID"
    exit 0
  fi
}

calm_run() {
  [[ -x $CALM_BIN ]] || { calm_log_job "no calm binary at $CALM_BIN (set CALM_BIN or CALM_ROOT)"; exit 1; }
  local launch=()
  case "${CALM_LAUNCH:-srun}" in
    srun) launch=(srun --mpi=pmix --kill-on-bad-exit=1 ${CALM_SRUN_ARGS:-}) ;; # CALM_SRUN_ARGS: e.g. --het-group=0,1
    mpirun) launch=(mpirun -np "${SLURM_NTASKS:-1}") ;;
    none) launch=() ;;
    *) calm_log_job "CALM_LAUNCH='$CALM_LAUNCH': use srun, mpirun or none"; exit 2 ;;
  esac
  calm_log_job "starting: ${launch[*]} $CALM_BIN $*"
  "${launch[@]}" "$CALM_BIN" "$@" &
  calm_watch $!
  if [[ $calm_rc -eq 0 && -n ${CALM_RESULT:-} && ! -e $CALM_RESULT ]]; then
    calm_log_job "the job step ended with status 0 but $CALM_RESULT does not exist: calm did not run to the end"
    exit 1
  fi
  calm_log_job "calm finished with exit status $calm_rc"
  return "$calm_rc"
}
