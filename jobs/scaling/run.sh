#!/usr/bin/env bash
# Scaling sweeps of the benchmark composition (issue 25): every configuration
# (rank layout) of a sweep is run and timed, and `calm plan` predicts it; a
# table and plots compare the two.
#   jobs/scaling/run.sh [--sweep strong|weak|bubble|all|FILE.tsv[,...]] [--out DIR] [--local] [--steps N]
#                       [--preset bench|tiny] [--slurm-args "ARGS"] [--max-calib-tokens N]
#   --sweep     jobs/scaling/sweeps/NAME.tsv, all three, or your own sweep file (default all)
#   --out       results directory (default runs/scaling); run again into it to add sweeps
#   --local     run the elements one after another here (mpirun), without Slurm;
#               otherwise each sweep is a Slurm job array (jobs/scaling/sweep.sbatch),
#               one element at a time (--array=1-N%1), submitted with sbatch --wait
#   --steps     optimizer steps a measured run takes; the first is warm-up (default 6)
#   --preset    bench: the models of jobs/bench-pipeline.sh (mB d512 L8, mA d256 L8,
#               connections 3:3,7:7); tiny: d64/d32 L2, connection 1:1, for tests (default bench)
#   --slurm-args  more options for sbatch and srun, e.g. "--partition=cpu --constraint=icelake"
#   --max-calib-tokens  passed to calm plan --save-costs: micro-batches larger than this are
#               scaled from measured ones, not measured (default: calm plan's)
# Steps: the two frozen models (DIR/models, made once: calm train --steps 0),
# the per-layer costs (DIR/costs.json, measured once by calm plan --save-costs
# with two threads; under Slurm on a compute node through srun), each sweep's
# elements into DIR/SWEEP/ (jobs/scaling/element.sh), then
# jobs/scaling/collect.py DIR: DIR/results.md, DIR/results.jsonl, DIR/plots/.
# The timings are only worth something on an idle machine. Exit status 1 when
# an element failed (the others are still run and collected).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$root/jobs/scaling
sweeps=all out=$root/runs/scaling local=0 steps=6 preset=bench slurm_args="" calib_tokens=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --sweep) sweeps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --local) local=1; shift ;;
    --steps) steps=$2; shift 2 ;;
    --preset) preset=$2; shift 2 ;;
    --slurm-args) slurm_args=$2; shift 2 ;;
    --max-calib-tokens) calib_tokens=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
job=run.sh
source "$root/jobs/lib.sh"
die() { echo "run.sh: $*" >&2; exit 1; }
say() { echo "[scaling $(date +%H:%M:%S)] $*"; }
[[ $steps =~ ^[1-9][0-9]*$ ]] || die "--steps '$steps': a whole number >= 1"
[[ -z $calib_tokens || $calib_tokens =~ ^[1-9][0-9]*$ ]] || die "--max-calib-tokens '$calib_tokens': a whole number"
case "$preset" in
  bench) connections=3:3,7:7 ;;
  tiny) connections=1:1 ;;
  *) die "--preset '$preset': bench or tiny" ;;
esac
if [[ $local -eq 0 ]]; then
  if ! command -v sbatch >/dev/null || ! command -v srun >/dev/null; then
    die "no Slurm here (sbatch, srun): run with --local, or on the cluster's login node"
  fi
fi

# The sweep files, each checked whole before anything runs.
[[ $sweeps == all ]] && sweeps=strong,weak,bubble
files=() names=() counts=() maxranks=() batch_all=0 seq_all=""
IFS=, read -r -a list <<<"$sweeps"
for s in "${list[@]}"; do
  f=$s
  [[ $s == */* || $s == *.tsv ]] || f=$here/sweeps/$s.tsv
  [[ -f $f ]] || die "no sweep '$s' (no file $f; the sweeps: $(cd "$here/sweeps" && ls -- *.tsv | sed 's/\.tsv$//' | tr '\n' ' '))"
  f=$(cd "$(dirname "$f")" && pwd)/$(basename "$f")
  info=$("$here/element.sh" --check "$f") || die "$f: fix the line above"
  read -r configs max_ranks max_batch seqs <<<"$(sed 's/[a-z_]*=//g' <<<"$info")" # "configs=N max_ranks=R ..."
  files+=("$f") names+=("$(basename "$f" .tsv)") counts+=("$configs") maxranks+=("$max_ranks")
  batch_all=$(( batch_all > max_batch ? batch_all : max_batch ))
  seq_all="${seq_all:+$seq_all,}$seqs"
done
seq_all=$(tr , '\n' <<<"$seq_all" | sort -un | paste -sd,)
[[ $seq_all =~ ^[0-9]+$ ]] ||
  die "the sweeps use sequence lengths $seq_all: the costs are measured for one; run them into separate --out"
ranks_all=$(printf '%s\n' "${maxranks[@]}" | sort -n | tail -n1)

job_local_calm # $calm, built if missing; mpirun may run as root and oversubscribe
mkdir -p "$out"
out=$(cd "$out" && pwd)
say "sweeps ${names[*]} ($(IFS=+; echo "${counts[*]}") configurations), $steps steps each, into $out"

# The models, once per results directory.
model_seq=$seq_all
[[ $preset == bench && $model_seq -lt 256 ]] && model_seq=256
want="preset=$preset seq=$model_seq"
if [[ -f $out/models/made ]]; then
  [[ $(cat "$out/models/made") == "$want" ]] ||
    die "$out/models holds models for '$(cat "$out/models/made")', not '$want': use another --out"
else
  say "making the frozen models ($preset) in $out/models"
  rm -rf "$out/models" && mkdir -p "$out/models"
  if [[ $preset == bench ]]; then
    mb=(--dim 512 --layers 8 --heads 8 --ffn 1408) ma=(--dim 256 --layers 8 --heads 4 --ffn 704)
  else
    mb=(--dim 64 --layers 2 --heads 4) ma=(--dim 32 --layers 2 --heads 4)
  fi
  "$calm" train --out "$out/models/mB" "${mb[@]}" --steps 0 --seq-len "$model_seq" "$root/jobs/data/quickstart.txt" \
    >"$out/models/train.log" 2>&1 || die "making mB failed: see $out/models/train.log"
  "$calm" train --out "$out/models/mA" "${ma[@]}" --steps 0 --seq-len "$model_seq" \
    "$root/jobs/data/quickstart.txt" >>"$out/models/train.log" 2>&1 || die "making mA failed: see $out/models/train.log"
  echo "$want" >"$out/models/made"
fi

# The per-layer costs, once per results directory: for micro-batches of the
# largest batch, over layouts of up to the sweeps' largest rank count (which
# reaches down to micro-batches of 1); calm plan scales the others.
costs=$out/costs.json
if [[ -f $costs ]] && grep -q "\"T\":[[:space:]]*${seq_all}[,}[:space:]]" "$costs"; then
  say "reusing the per-layer costs in $costs (delete it to measure again)"
else
  calib=("$calm" plan --anchor "$out/models/mB" --augment "$out/models/mA" --connections "$connections"
         --global-batch "$batch_all" --seq "$seq_all" --cores-per-node "$ranks_all" --threads 2 --save-costs "$costs")
  [[ -n $calib_tokens ]] && calib+=(--max-calib-tokens "$calib_tokens")
  if [[ $local -eq 0 ]]; then
    # shellcheck disable=SC2206 # --slurm-args: words
    calib=(srun --nodes=1 --ntasks=1 --cpus-per-task=2 --exclusive --job-name=calm-scaling-costs $slurm_args "${calib[@]}")
  fi
  say "measuring the per-layer costs (micro-batches up to $batch_all x $seq_all): ${calib[*]}"
  "${calib[@]}" >"$out/costs.log" 2>&1 || { tail -n 5 "$out/costs.log" >&2; die "measuring the costs failed: see $out/costs.log"; }
  grep "measured micro-batch" "$out/costs.log" | sed 's/^calm: plan: /  /' || true
fi

# report_new DIR NAMES...: print each element's outcome once its config.json appears.
declare -A reported=()
report_new() {
  local dir=$1 n st; shift
  for n in "$@"; do
    [[ -n ${reported[$dir/$n]:-} || ! -f $dir/$n.config.json ]] && continue
    reported[$dir/$n]=1
    st=$(/usr/bin/python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print(c["status"] + (": " + c["why"].splitlines()[0] if c["why"] else ""))' "$dir/$n.config.json" 2>&1) ||
      st="unreadable $dir/$n.config.json: $st"
    say "  $n: $st"
  done
}

failed=() id=""
# Interrupted, the script takes the array it submitted with it (Slurm would run the rest).
trap '[[ -n $id ]] && scancel "$id"; echo "run.sh: interrupted${id:+ (job array $id cancelled)}" >&2; exit 130' INT TERM
for k in "${!files[@]}"; do
  name=${names[$k]} n=${counts[$k]} dir=$out/${names[$k]}
  mkdir -p "$dir"
  cp "${files[$k]}" "$dir/$name.tsv"
  rm -f "$dir"/*.config.json # the collector reads these: a rerun leaves none of the last run's behind
  printf '%s\n' "# jobs/scaling/run.sh, $(date -Is)" "anchor=$out/models/mB" "augment=$out/models/mA" \
    "connections=$connections" "data=$root/jobs/data/quickstart.txt" "steps=$steps" "costs=$costs" >"$dir/sweep.conf"
  mapfile -t elems < <("$here/element.sh" --names "$dir/$name.tsv")
  if [[ $local -eq 1 ]]; then
    for i in $(seq "$n"); do
      say "$name [$i/$n] ${elems[$((i - 1))]}"
      "$here/element.sh" "$dir/$name.tsv" "$i" "$dir" || true
      report_new "$dir" "${elems[$((i - 1))]}"
    done
  else
    # shellcheck disable=SC2206 # --slurm-args: words
    sub=(sbatch --wait --parsable --array="1-$n%1" --ntasks="${maxranks[$k]}" --overcommit
         --job-name="calm-scaling-$name" --output="$dir/slurm-%A_%a.out" $slurm_args "$here/sweep.sbatch"
         "$dir/$name.tsv" "$dir")
    say "$name: submitting $n elements, one at a time: ${sub[*]}"
    CALM_ROOT=$root CALM_BIN=$calm "${sub[@]}" >"$dir/sbatch.out" 2>&1 &
    pid=$! id=""
    while kill -0 "$pid" 2>/dev/null; do
      if [[ -z $id ]]; then
        id=$(grep -m1 -E '^[0-9]+' "$dir/sbatch.out" | cut -d';' -f1) || true
        [[ -n $id ]] && say "$name: job array $id (squeue -r -j $id)"
      fi
      report_new "$dir" "${elems[@]}"
      sleep 5
    done
    wait "$pid" || say "$name: sbatch --wait exited $? (an element failed, or the job did: $dir/sbatch.out)"
    say "$name: job array $(head -n1 "$dir/sbatch.out") done; Slurm's output in $dir/slurm-*.out"
  fi
  report_new "$dir" "${elems[@]}"
  for e in "${elems[@]}"; do
    grep -qs '"status": "ok"' "$dir/$e.config.json" || failed+=("$name/$e")
  done
done

say "collecting"
/usr/bin/python3 "$here/collect.py" "$out"
if [[ ${#failed[@]} -gt 0 ]]; then
  die "${#failed[@]} element(s) failed: ${failed[*]} (their .err, .plan.txt and .config.json files say why)"
fi
say "done: $out/results.md, plots in $out/plots"
