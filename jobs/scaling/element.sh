#!/usr/bin/env bash
# One configuration of a scaling sweep: the measured `calm compose` run of its
# rank layout, then `calm plan`'s prediction for the same layout.
#   jobs/scaling/element.sh SWEEP.tsv INDEX OUTDIR   run configuration INDEX (1-based, header and # lines not counted)
#   jobs/scaling/element.sh --check SWEEP.tsv        check every line; print "configs=N max_ranks=R max_batch=B seqs=T[,T]"
#   jobs/scaling/element.sh --names SWEEP.tsv        check every line; print the names in order
# SWEEP.tsv: a header naming the columns name S A R M threads batch seq (any
# order), then one configuration a line; S = 0 is no pipeline (A = 0, M = 1):
# R = 1 one process, R > 1 data parallel; S >= 1 is R replicas of S anchor
# stages and A augment ranks running M micro-batches. batch is global.
# Writes OUTDIR/NAME.measured.jsonl (compose's log; the first step is
# warm-up), NAME.err (compose's stderr: a pipeline's report ends it),
# NAME.plan.jsonl and NAME.plan.txt (calm plan), NAME.config.json (the row,
# the commands, where and how it ran, "status": ok or failed, written last).
# Settings come from OUTDIR/sweep.conf (key=value, written by run.sh):
# anchor, augment, connections, data (a text file), steps, costs; without it
# OUTDIR/models/mB, OUTDIR/models/mA, 3:3,7:7, jobs/data/quickstart.txt, 6,
# OUTDIR/costs.json.
# Launch: one process runs directly; more under Slurm (SLURM_JOB_ID set) with
# srun --mpi=pmix, or mpirun with CALM_LAUNCH=mpirun (jobs/slurm-common.sh's
# convention), and mpirun outside Slurm. Ranks x threads beyond the cores of
# this node (nproc) set OMPI_MCA_mpi_yield_when_idle=1, as mpirun does by
# itself when it oversubscribes: under srun, 3 busy-polling ranks on 2 cores
# ran 20x slower than under mpirun.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
me=element.sh
die() { echo "$me: $*" >&2; exit 1; }

# sweep_rows TSV: every configuration as "LINE NAME S A R M THREADS BATCH SEQ",
# columns found by the header's names; a malformed line fails naming it.
sweep_rows() {
  [[ -r $1 ]] || die "cannot read sweep file '$1'"
  awk -v file="$1" '
    function bad(msg) { printf "%s line %d: %s\n", file, NR, msg > "/dev/stderr"; failed = 1; exit 1 }
    /^[ \t]*(#|$)/ { next }
    !header {
      header = 1
      for (i = 1; i <= NF; i++) col[$i] = i
      split("name S A R M threads batch seq", want, " ")
      for (k = 1; k <= 8; k++) if (!(want[k] in col)) bad("header has no column \"" want[k] "\" (need: name S A R M threads batch seq)")
      next
    }
    {
      n++
      name = $col["name"]
      where = "configuration " n " (\"" name "\")"
      if (name !~ /^[A-Za-z0-9._-]+$/) bad(where ": name must be letters, digits, . _ -")
      if (seen[name]++) bad(where ": the name is used twice")
      for (k = 2; k <= 8; k++) {
        v = $col[want[k]]
        if (v !~ /^[0-9]+$/) bad(where ": " want[k] " = \"" v "\" is not a whole number")
      }
      S = $col["S"] + 0; A = $col["A"] + 0; R = $col["R"] + 0; M = $col["M"] + 0
      t = $col["threads"] + 0; B = $col["batch"] + 0; T = $col["seq"] + 0
      if (R < 1 || t < 1 || B < 1 || T < 1) bad(where ": R, threads, batch and seq must be at least 1")
      if (S == 0 && (A != 0 || M != 1)) bad(where ": S = 0 (no pipeline) needs A = 0 and M = 1")
      if (S > 0 && (A < 1 || M < 1)) bad(where ": a pipeline (S >= 1) needs A >= 1 and M >= 1")
      if (B % (R * M)) bad(where ": batch " B " is not divisible by R x M = " R * M)
      print NR, name, S, A, R, M, t, B, T
    }
    END { if (!failed && !header) { printf "%s: no header line\n", file > "/dev/stderr"; exit 1 } }
  ' "$1"
}

if [[ ${1:-} == --check || ${1:-} == --names ]]; then
  [[ $# -eq 2 ]] || die "usage: $me $1 SWEEP.tsv"
  rows=$(sweep_rows "$2") || exit 1
  [[ -n $rows ]] || die "$2: no configurations"
  [[ $1 == --names ]] && { awk '{ print $2 }' <<<"$rows"; exit 0; }
  awk '{ r = $3 ? $5 * ($3 + $4) : $5; if (r > mr) mr = r; if ($8 > mb) mb = $8; if (!($9 in s)) { s[$9]; seqs = seqs (seqs ? "," : "") $9 } }
       END { printf "configs=%d max_ranks=%d max_batch=%d seqs=%s\n", NR, mr, mb, seqs }' <<<"$rows"
  exit 0
fi
[[ $# -eq 3 ]] || { sed -n "2,5p" "$0" >&2; exit 2; }
sweep=$1 index=$2 outdir=$3
[[ -r $sweep ]] && sweep=$(cd "$(dirname "$sweep")" && pwd)/$(basename "$sweep")
[[ $index =~ ^[1-9][0-9]*$ ]] || die "INDEX '$index' is not a positive whole number"
rows=$(sweep_rows "$sweep") || die "$sweep: a malformed line (above); no configuration run"
row=$(sed -n "${index}p" <<<"$rows")
[[ -n $row ]] || die "$sweep has $(grep -c . <<<"$rows") configurations, not $index"
read -r line name S A R M threads batch seq <<<"$row"
where="$sweep configuration $index ('$name', line $line)"

# The settings: OUTDIR/sweep.conf, else the defaults above.
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
anchor=$outdir/models/mB augment=$outdir/models/mA connections=3:3,7:7 data=$root/jobs/data/quickstart.txt
steps=6 costs=$outdir/costs.json
if [[ -f $outdir/sweep.conf ]]; then
  while IFS= read -r kv; do
    [[ $kv =~ ^[[:space:]]*(#|$) ]] && continue
    key=${kv%%=*} val=${kv#*=}
    case "$key" in
      anchor|augment|connections|data|steps|costs) printf -v "$key" '%s' "$val" ;;
      *) die "$outdir/sweep.conf: unknown setting '$key'" ;;
    esac
  done <"$outdir/sweep.conf"
fi
calm=${CALM_BIN:-$root/build/calm}
[[ -x $calm ]] || die "$where: no calm binary at $calm (build it, or set CALM_BIN)"
for d in "$anchor" "$augment"; do
  [[ -f $d/config.json ]] || die "$where: no model at $d (jobs/scaling/run.sh makes them)"
done
[[ -f $costs ]] || die "$where: no per-layer costs at $costs; measure them once with
  $calm plan --anchor $anchor --augment $augment --connections $connections --seq $seq --save-costs $costs"

base=$outdir/$name
status=failed why="" launch=() compose=() plan=()
json_str() { # a JSON string: backslash, quote, newline and tab escaped, other control characters dropped
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"} s=${s//$'\n'/\\n} s=${s//$'\t'/\\t}
  printf '"%s"' "$(tr -d '\000-\010\013-\037' <<<"$s")"
}
json_cmd() { local sep="" a; printf '['; for a in "$@"; do printf '%s%s' "$sep" "$(json_str "$a")"; sep=", "; done; printf ']'; }
# NAME.config.json, written last (on failure too, by the EXIT trap): the row, what ran, where.
write_config() {
  local tmpf=$base.config.json.tmp
  {
    printf '{"sweep": %s, "sweep_file": %s, "index": %d, "name": %s, ' "$(json_str "$(basename "$sweep" .tsv)")" \
      "$(json_str "$sweep")" "$index" "$(json_str "$name")"
    printf '"S": %d, "A": %d, "R": %d, "M": %d, "threads": %d, "batch": %d, "seq": %d, "ranks": %d, ' \
      "$S" "$A" "$R" "$M" "$threads" "$batch" "$seq" "$ranks"
    printf '"steps": %d, "cores": %d, "yield_when_idle": %d, "host": %s, "slurm_job": %s, ' "$steps" "$cores" \
      "$yield" "$(json_str "$(hostname -s)")" "$(json_str "${SLURM_ARRAY_JOB_ID:-${SLURM_JOB_ID:-}}")"
    printf '"launch": %s, "compose": %s, "plan": %s, ' "$(json_cmd "${launch[@]}")" "$(json_cmd "${compose[@]}")" \
      "$(json_cmd "${plan[@]}")"
    printf '"status": %s, "why": %s, "finished": %s}\n' "$(json_str "$status")" "$(json_str "$why")" \
      "$(json_str "$(date -Is)")"
  } >"$tmpf" && mv "$tmpf" "$base.config.json"
}
fail() { why=$1; echo "$me: $where: $why" >&2; exit 1; }

ranks=$R
[[ $S -gt 0 ]] && ranks=$((R * (S + A)))
cores=$(nproc)
yield=0
(( ranks * threads > cores )) && yield=1
trap 'write_config' EXIT
layout="dp,$R,$threads"
[[ $S -gt 0 ]] && layout="$S,$A,$R,$M,$threads"

# The prediction first: a layout the planner refuses fails before the measured run is spent.
plan=("$calm" plan --anchor "$anchor" --augment "$augment" --connections "$connections" --global-batch "$batch"
      --seq "$seq" --costs "$costs" --layout "$layout" --json "$base.plan.jsonl")
rm -f "$base.plan.jsonl" "$base.measured.jsonl" "$base.err" # no result of an earlier run survives this one
"${plan[@]}" >"$base.plan.txt" 2>&1 ||
  fail "calm plan --layout $layout failed: $(tail -n 1 "$base.plan.txt") (all of it in $base.plan.txt)"

if [[ $ranks -gt 1 ]]; then
  export OMPI_MCA_mpi_yield_when_idle=$yield
  if [[ -n ${SLURM_JOB_ID:-} && ${CALM_LAUNCH:-srun} == srun ]]; then
    # shellcheck disable=SC2206 # CALM_SRUN_ARGS: extra words, as in jobs/slurm-common.sh
    launch=(srun --mpi=pmix --kill-on-bad-exit=1 --ntasks="$ranks" --cpus-per-task="$threads" ${CALM_SRUN_ARGS:-})
    # Slurm's CPU count may differ from the cores (a test node claims more): srun counts its own
    (( ranks * threads > ${SLURM_CPUS_ON_NODE:-$cores} )) && launch+=(--overcommit)
  elif [[ -z ${SLURM_JOB_ID:-} || ${CALM_LAUNCH:-srun} == mpirun ]]; then
    # --oversubscribe: inside an allocation of fewer tasks; the polling is set above either way.
    # Two threads a rank must not be bound to one core (mpirun binds 2 ranks to cores).
    launch=(mpirun -np "$ranks" --oversubscribe)
    [[ $threads -gt 1 ]] && launch+=(--bind-to none)
    [[ $(id -u) -eq 0 ]] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  else
    fail "CALM_LAUNCH='$CALM_LAUNCH': use srun or mpirun"
  fi
fi
compose=("$calm" compose --anchor "$anchor" --augment "$augment" --connections "$connections" --batch "$batch"
         --seq-len "$seq" --steps "$steps" --warmup 1 --log-every 1 --threads "$threads" --expect-ranks "$ranks"
         --out "$base.run" --log "$base.measured.jsonl")
[[ $S -gt 0 ]] && compose+=(--anchor-stages "$S" --augment-ranks "$A" --micro-batches "$M")
compose+=("$data")
echo "$me: $name: $ranks rank(s) x $threads thread(s) on $cores core(s) of $(hostname -s): ${launch[*]:-(one process)} calm compose"
CALM_THREADS=$threads "${launch[@]}" "${compose[@]}" >"$base.err" 2>&1 ||
  fail "calm compose exited $?; the end of $base.err:
$(tail -n 15 "$base.err")"
[[ -s $base.measured.jsonl ]] || fail "calm compose wrote no log ($base.measured.jsonl)"
if [[ $S -gt 0 ]] && ! grep -q "^pipeline over" "$base.err"; then fail "no pipeline report in $base.err"; fi
status=ok
write_config
trap - EXIT
/usr/bin/python3 "$root/jobs/scaling/collect.py" --element "$base" || true
