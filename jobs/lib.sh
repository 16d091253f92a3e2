# jobs/lib.sh: what the experiment pipelines (jobs/ntl.sh, jobs/kv/kv-arithmetic.sh) and benchmarks
# share; sourced, not run. The caller sets `job` (its name for messages) first.

# job_args "$@": the options every pipeline takes; sets preset, out, threads,
# pipeline and resume (defaults: tiny, "", $CALM_THREADS or 0, "", "").
# --help prints the script's leading comment.
job_args() {
  preset=tiny out="" threads=${CALM_THREADS:-0} pipeline="" resume=""
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --preset) preset=$2; shift 2 ;;
      --out) out=$2; shift 2 ;;
      --threads) threads=$2; shift 2 ;;
      --pipeline) pipeline=$2; shift 2 ;;
      --resume) resume=$2; shift 2 ;;
      -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
      *) echo "$job: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
  done
}

# job_launch: from $pipeline (S:A:M) the MPI launcher and the compose options
# of the pipelined compositions (launch=(), pipe=()); from $resume the
# checkpoint options of every training (ckpt=()).
job_launch() {
  launch=() pipe=() ckpt=()
  [[ -n $resume ]] && ckpt=(--checkpoint-every "$resume" --resume auto)
  [[ -z $pipeline ]] && return 0
  local pS pA pM
  IFS=: read -r pS pA pM <<<"$pipeline"
  [[ $pS =~ ^[0-9]+$ && $pA =~ ^[0-9]+$ && ${pM:-4} =~ ^[0-9]+$ ]] ||
    { echo "$job: --pipeline '$pipeline': expected S:A:M, e.g. 2:1:4" >&2; exit 2; }
  launch=(mpirun -np $((pS + pA)))
  [[ $(id -u) -eq 0 ]] && launch+=(--allow-run-as-root)
  (( pS + pA > $(nproc) )) && launch+=(--oversubscribe)
  pipe=(--anchor-stages "$pS" --augment-ranks "$pA" --micro-batches "${pM:-4}")
}

# Stopping (the .sbatch scripts send USR1 to the whole process group): the
# running calm checkpoints and exits 75, which ends the script with 75; a
# signal between trainings ends it at the next `job_next`.
job_stopped=0
trap 'job_stopped=1' USR1
job_next() { [[ $job_stopped -eq 0 ]] || { echo "$job: stopped by a signal" >&2; exit 75; }; }

# job_local_calm: for a benchmark on this machine's own MPI ranks: $calm (the
# build, made first if missing) and the environment under which mpirun may run
# as root and start more ranks than cores.
job_local_calm() {
  calm=${CALM_BIN:-$root/build/calm}
  [[ -x "$calm" ]] || { "$root/jobs/install-deps.sh"; "$root/jobs/build.sh"; }
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
}
